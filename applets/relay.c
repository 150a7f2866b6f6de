/*
 * sockgate-relay: forwards stream connections from listeners (Unix, TCP,
 * inherited and systemd fds, sockets passed with SCM_RIGHTS) to one target
 * (TCP, Unix) or to the original destination named by an incoming PROXY
 * header and allowed by rules (sockgate-rules(5), direction "connect").
 *
 * One epoll loop, edge-triggered, non-blocking everywhere. Bytes move with
 * splice(2) through pipes that a connection holds only while bytes are in
 * flight (they come from and go back to a small pool), so an idle
 * connection costs its two sockets and one small record. PROXY protocol as
 * in haproxy's doc/proxy-protocol.txt, sections 2.1 (v1) and 2.2 (v2).
 *
 * The files: this one has the options, the loop, signals and timeouts;
 * relay_conn.c one connection's state machine and the pipe pool;
 * relay_listen.c the listeners; relay_int.h what they share.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "addr.h"
#include "file.h"
#include "relay_int.h"
#include "resolver.h"
#include "rules.h"
#include "util.h"

static const char usage[] =
	"sockgate-relay [-v] [-l LISTEN ...] [-f RULESFILE] [-r RULE ...] [--proxy-in]\n"
	"       [--proxy-out v1 | v2] [-c MAXCONNS] [--connect-timeout TIME] [--idle-timeout TIME]\n"
	"       [--header-timeout TIME] [--grace TIME] [--reuseport] [--backlog N]\n"
	"       [--pipe-size BYTES] [--ready-fd FD] [-u USER] [-g GROUP]\n"
	"       [-G GROUP,... | -k] [--chroot DIR] [--dns-server ADDR:PORT]\n"
	"       [--resolve-timeout TIME] [--resolve-keep TIME] TARGET";

struct relay R = {
	.cfg = {
		.connect_ms = 10000, .header_ms = 5000, .grace_ms = 30000,
		.backlog = 4096, .ready_fd = -1,
		.res = { .timeout_ms = 3000, .host_ttl = 30, .keep_ms = 3600000 },
		/* the kernel's default pipe-max-size: 512 KiB pipes cost ~20% more CPU per byte */
		.pipe_max = 1024 * 1024,
	},
	.fd_room = LONG_MAX,
};
static int64_t next_wake = INT64_MAX, grace_deadline;
static struct { int kind; int fd; } sigobj = { K_SIGNAL, -1 };

/* "10" or "10s" seconds, "500ms", "5m", "1h". */
static int64_t dur_arg(const char *s, const char *what)
{
	size_t n = strspn(s, "0123456789");
	char num[24];

	if (n == 0 || n >= sizeof num)
		die(EX_BADINPUT, "%s %s: not a duration (like 10, 10s, 500ms, 5m)", what, s);
	memcpy(num, s, n);
	num[n] = 0;
	int64_t v = num_arg(num, 0, 100000000, what);
	const char *u = s + n;
	if (!*u || !strcmp(u, "s"))
		return v * 1000;
	if (!strcmp(u, "ms"))
		return v;
	if (!strcmp(u, "m"))
		return v * 60000;
	if (!strcmp(u, "h"))
		return v * 3600000;
	die(EX_BADINPUT, "%s %s: unknown unit (s, ms, m, h)", what, s);
}

const char *rl_fmt_addr(const struct sg_addr *a, char *buf, size_t size)
{
	if (a->len == 0 || a->u.sa.sa_family == AF_UNSPEC || addr_format(&a->u.sa, a->len, buf, size) < 0)
		snprintf(buf, size, "unknown");
	return buf;
}

/* --- timers and epoll ---------------------------------------------------- */

void rl_set_deadline(struct conn *c, int64_t t)
{
	c->deadline = t;
	if (t && t < next_wake)
		next_wake = t;
}

void rl_ep_add(int fd, void *obj, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = obj };
	if (epoll_ctl(R.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die_sys("unable to add fd %d to epoll", fd);
}

void rl_side_add(struct side *s)
{
	if (s->in_ep)
		return;
	rl_ep_add(s->fd, s, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
	s->in_ep = 1;
}

/* At exit: what is left, so that leak checkers see a clean end. */
static void free_all(void)
{
	lsn_free_all();
	conn_pool_drain();
	resolver_free();
	rules_free(R.rules);
	R.rules = NULL;
	free(R.cfg.rules_inline);
	close(sigobj.fd);
	close(R.ep);
}

/* --- target, rules, privileges ------------------------------------------- */

static void target_parse(const char *s)
{
	snprintf(R.cfg.target_name, sizeof R.cfg.target_name, "%s", s);
	if (!strcmp(s, "original")) {
		R.cfg.original = 1;
		return;
	}
	if (!strncmp(s, "unix:", 5)) {
		if (addr_parse(s, &R.cfg.target) < 0)
			die(EX_BADINPUT, "bad target %s: %s", s, strerror(errno));
		return;
	}
	if (strncmp(s, "tcp:", 4))
		die(EX_BADINPUT, "bad target %s (tcp:HOST:PORT, unix:PATH, unix:@NAME, original)", s);
	s += 4;
	if (addr_parse_inet(s, &R.cfg.target) == 0)
		return;
	/* a host name: resolved once, at start */
	const char *colon = strrchr(s, ':');
	if (!colon || colon == s || !colon[1])
		die(EX_BADINPUT, "bad target tcp:%s (HOST:PORT)", s);
	char host[256];
	snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG }, *res;
	int r = getaddrinfo(host, colon + 1, &hints, &res);
	if (r)
		die(EX_BADINPUT, "unable to resolve target tcp:%s: %s", s, gai_strerror(r));
	memcpy(&R.cfg.target.u, res->ai_addr, res->ai_addrlen);
	R.cfg.target.len = res->ai_addrlen;
	freeaddrinfo(res);
}

/* --- the loop ------------------------------------------------------------- */

static void end_all(const char *why)
{
	while (R.conns)
		conn_end(R.conns, L_WARN, "%s", why);
}

static void on_signal(void)
{
	struct signalfd_siginfo si;

	while (read(sigobj.fd, &si, sizeof si) == (ssize_t)sizeof si) {
		switch (si.ssi_signo) {
		case SIGHUP:
			if (R.cfg.rules_file || R.cfg.rules_inline) {
				struct ruleset *rs = rules_from_file(R.cfg.rules_file, R.cfg.rules_inline, 0);
				if (rs) {
					rules_free(R.rules);
					R.rules = rs;
					resolver_rules(R.rules);
					info("reloaded the rules (%zu)", rs->n);
				}
			}
			break;
		case SIGTERM:
		case SIGINT:
			if (R.stopping) {
				end_all("relay stopped (second signal)");
				break;
			}
			R.stopping = 1;
			lsn_close_all();
			grace_deadline = R.now + R.cfg.grace_ms;
			info("stopping: no new connections; waiting for %ld open ones", R.nconns);
			break;
		}
	}
}

static void sweep(void)
{
	int64_t next = INT64_MAX;

	for (struct conn *c = R.conns, *nx; c; c = nx) {
		nx = c->next;
		if (c->deadline && c->deadline <= R.now) {
			switch (c->state) {
			case ST_HEADER:
				conn_end(c, L_WARN, "no complete PROXY header within %lld ms", (long long)R.cfg.header_ms);
				break;
			case ST_CONNECTING:
				conn_connect_failed(c, ETIMEDOUT, 1);
				break;
			case ST_RETRY:
				if (R.now >= c->connect_deadline)
					conn_end(c, L_WARN, "unable to connect to target: its backlog stayed full");
				else
					conn_connect(c);
				break;
			default:
				conn_end(c, L_INFO, "idle timeout");
				break;
			}
		}
		if (!c->dead && c->deadline && c->deadline < next)
			next = c->deadline;
	}
	next_wake = next;
}

static int loop(void)
{
	struct epoll_event evs[256];

	for (;;) {
		int64_t wake = next_wake;
		if (R.accept_resume && R.accept_resume < wake)
			wake = R.accept_resume;
		if (R.stopping && grace_deadline < wake)
			wake = grace_deadline;
		if (R.cfg.resolver && resolver_wake() < wake)
			wake = resolver_wake();
		int timeout = wake == INT64_MAX ? -1 : wake <= R.now ? 0 : wake - R.now > INT_MAX ? INT_MAX : (int)(wake - R.now);
		int n = epoll_wait(R.ep, evs, sizeof evs / sizeof evs[0], timeout);
		if (n < 0 && errno != EINTR)
			die_sys("epoll_wait");
		R.now = mono_ms();
		for (int i = 0; i < n; i++) {
			int kind = *(int *)evs[i].data.ptr;
			uint32_t e = evs[i].events;
			switch (kind) {
			case K_LISTEN:
				lsn_accept(evs[i].data.ptr);
				break;
			case K_FDPASS:
				lsn_recv(evs[i].data.ptr);
				break;
			case K_SIGNAL:
				on_signal();
				break;
			case K_RESOLVE:
			case K_DNSTCP:
				resolver_accept(((struct lsn *)evs[i].data.ptr)->fd, ((struct lsn *)evs[i].data.ptr)->name,
						kind == K_DNSTCP);
				break;
			case K_DNS:
				resolver_dgram(((struct lsn *)evs[i].data.ptr)->fd, ((struct lsn *)evs[i].data.ptr)->name);
				break;
			case K_RES_CLIENT:
			case K_RES_UPSTREAM:
			case K_RES_DONE:
				resolver_event(evs[i].data.ptr, e);
				break;
			case 0:		/* a listener closed earlier in this batch */
				break;
			default: {
				struct side *s = evs[i].data.ptr;
				if (s->c->dead)
					break;
				if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
					s->rd = 1;
				if (e & (EPOLLRDHUP | EPOLLHUP))
					s->hup = 1;
				if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
					s->wr = 1;
				conn_run(s->c);
			}
			}
		}
		if (R.now >= next_wake)
			sweep();
		if (R.cfg.resolver && R.now >= resolver_wake())
			resolver_sweep(R.now);
		if (R.accept_resume && R.now >= R.accept_resume) {
			R.accept_resume = 0;
			lsn_resume();
		}
		if (R.stopping && R.nconns && R.now >= grace_deadline)
			end_all("relay stopped (grace time over)");
		while (R.zombies) {
			struct conn *c = R.zombies;
			R.zombies = c->next;
			free(c);
		}
		if (R.stopping && R.nconns == 0) {
			info("stopped");
			free_all();
			return EX_OK;
		}
	}
}

int relay_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "listen", required_argument, 0, 'l' },
		{ "rules", required_argument, 0, 'f' },
		{ "rule", required_argument, 0, 'r' },
		{ "proxy-in", no_argument, 0, 'P' },
		{ "proxy-out", required_argument, 0, 'O' },
		{ "max-conns", required_argument, 0, 'c' },
		{ "connect-timeout", required_argument, 0, 'C' },
		{ "idle-timeout", required_argument, 0, 'I' },
		{ "header-timeout", required_argument, 0, 'H' },
		{ "grace", required_argument, 0, 'T' },
		{ "reuseport", no_argument, 0, 'R' },
		{ "backlog", required_argument, 0, 'B' },
		{ "pipe-size", required_argument, 0, 'S' },
		{ "ready-fd", required_argument, 0, 'D' },
		{ "user", required_argument, 0, 'u' },
		{ "group", required_argument, 0, 'g' },
		{ "groups", required_argument, 0, 'G' },
		{ "keep-groups", no_argument, 0, 'k' },
		{ "chroot", required_argument, 0, 'X' },
		{ "verbose", no_argument, 0, 'v' },
		{ "dns-server", required_argument, 0, 'N' },
		{ "resolve-timeout", required_argument, 0, 'W' },
		{ "resolve-keep", required_argument, 0, 'K' },
		{ 0 }
	};
	const char **lspecs = calloc(argc + 1, sizeof *lspecs);
	int nl = 0, o;

	std_options(argc, argv, usage);
	if (!lspecs)
		die_sys("unable to allocate");
	while ((o = getopt_long(argc, argv, "l:f:r:c:u:g:G:kv", lo, NULL)) != -1) {
		switch (o) {
		case 'l': lspecs[nl++] = optarg; break;
		case 'f': R.cfg.rules_file = optarg; break;
		case 'r': {
			size_t a = R.cfg.rules_inline ? strlen(R.cfg.rules_inline) : 0, b = strlen(optarg);
			char *n = realloc(R.cfg.rules_inline, a + b + 2);
			if (!n)
				die_sys("unable to allocate");
			if (a)
				n[a++] = '\n';
			memcpy(n + a, optarg, b + 1);
			R.cfg.rules_inline = n;
			break;
		}
		case 'P': R.cfg.proxy_in = 1; break;
		case 'O':
			if (!strcmp(optarg, "v1") || !strcmp(optarg, "1"))
				R.cfg.proxy_out = 1;
			else if (!strcmp(optarg, "v2") || !strcmp(optarg, "2"))
				R.cfg.proxy_out = 2;
			else
				die(EX_BADINPUT, "--proxy-out %s: v1 or v2", optarg);
			break;
		case 'c': R.cfg.max_conns = (long)num_arg(optarg, 0, 10000000, "--max-conns"); break;
		case 'C': R.cfg.connect_ms = dur_arg(optarg, "--connect-timeout"); break;
		case 'I': R.cfg.idle_ms = dur_arg(optarg, "--idle-timeout"); break;
		case 'H': R.cfg.header_ms = dur_arg(optarg, "--header-timeout"); break;
		case 'T': R.cfg.grace_ms = dur_arg(optarg, "--grace"); break;
		case 'R': R.cfg.reuseport = 1; break;
		case 'B': R.cfg.backlog = (int)num_arg(optarg, 1, INT_MAX, "--backlog"); break;
		case 'S': R.cfg.pipe_max = (unsigned)num_arg(optarg, 4096, 1 << 30, "--pipe-size"); break;
		case 'D': R.cfg.ready_fd = (int)num_arg(optarg, 0, INT_MAX, "--ready-fd"); break;
		case 'u': R.cfg.privs.user = optarg; break;
		case 'g': R.cfg.privs.group = optarg; break;
		case 'G': R.cfg.privs.groups = optarg; break;
		case 'k': R.cfg.privs.keepgroups = 1; break;
		case 'X': R.cfg.privs.chroot = optarg; break;
		case 'v': R.cfg.verbose = verbose = 1; break;
		case 'N': R.cfg.res.server = optarg; break;
		case 'W': R.cfg.res.timeout_ms = dur_arg(optarg, "--resolve-timeout"); break;
		case 'K': R.cfg.res.keep_ms = dur_arg(optarg, "--resolve-keep"); break;
		default: usage_die(usage);
		}
	}
	if (optind != argc - 1)
		usage_die(usage);
	target_parse(argv[optind]);
	if (R.cfg.connect_ms == 0)
		R.cfg.connect_ms = 1;
	if (R.cfg.header_ms == 0)
		R.cfg.header_ms = 1;
	if (R.cfg.original && !R.cfg.proxy_in)
		info("target original without --proxy-in: destinations come from passed sockets' records "
		     "or the accepted socket's local address");
	if (R.cfg.ready_fd >= 0 && fcntl(R.cfg.ready_fd, F_GETFD) < 0)
		die(EX_BADINPUT, "--ready-fd %d: not an open fd", R.cfg.ready_fd);
	if (R.cfg.rules_file || R.cfg.rules_inline)
		R.rules = rules_from_file(R.cfg.rules_file, R.cfg.rules_inline, 1);
	if (R.cfg.original && !R.rules)
		warn("target original with no rules: every destination is denied");

	/* more connections need more fds: take the hard limit */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}

	if (nl == 0 && getenv("LISTEN_FDS"))
		lspecs[nl++] = "systemd";
	if (nl == 0)
		usage_die(usage);
	for (int i = 0; i < nl; i++)
		lsn_open(lspecs[i]);
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	free(lspecs);

	R.chrooted = privs_drop(&R.cfg.privs);
	lsn_files_check();

	signal(SIGPIPE, SIG_IGN);
	sigobj.fd = signals_fd(0, NULL);
	if ((R.ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die_sys("unable to create an epoll instance");
	rl_ep_add(sigobj.fd, &sigobj, EPOLLIN);
	if (R.cfg.resolver) {
		R.cfg.res.tcp_idle_ms = R.cfg.idle_ms ? R.cfg.idle_ms : 10000;
		R.cfg.res.root = R.cfg.privs.chroot;
		resolver_setup(R.ep, &R.cfg.res);
		resolver_rules(R.rules);
	} else if (R.cfg.res.server) {
		die(EX_USAGE, "--dns-server needs a resolve:, dns: or dnstcp: listener");
	}
	for (struct lsn *l = R.lsns; l; l = l->next) {
		rl_ep_add(l->fd, l, EPOLLIN);
		info("listening on %s", l->name);
	}
	if (!R.cfg.original) {
		char tn[ADDR_STRLEN];
		info("forwarding to %s", rl_fmt_addr(&R.cfg.target, tn, sizeof tn));
	}
	lsn_fd_room();
	R.now = mono_ms();
	notify_ready(R.cfg.ready_fd);
	return loop();
}
