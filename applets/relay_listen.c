/*
 * The listeners of sockgate-relay: the -l specs (tcp:, unix:, fd:,
 * systemd, fdpass:, and resolve:, dns:, dnstcp:, whose clients resolver.c
 * serves), accepting connections and receiving passed sockets for
 * relay_conn.c (conn_new()), and pausing while -c or the fd limit leave no
 * room for one more connection, so that the rest wait in the kernel's
 * backlog. The loop in relay.c calls lsn_accept() or lsn_recv() when one
 * is readable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "addr.h"
#include "fdpass.h"
#include "relay_int.h"
#include "sockfile.h"
#include "util.h"

#define ACCEPT_BATCH 64
#define FD_MARGIN 8		/* a rules file re-read, a log line, a readiness fd */

static void listeners_pause(int on)
{
	for (struct lsn *l = R.lsns; l; l = l->next) {
		if (l->paused == on)
			continue;
		struct epoll_event ev = { .events = on ? 0 : EPOLLIN, .data.ptr = l };
		epoll_ctl(R.ep, EPOLL_CTL_MOD, l->fd, &ev);
		l->paused = on;
	}
}

/* Listen again after a pause, unless stopping, backing off, or still at -c or the fd room. */
void lsn_resume(void)
{
	if (R.stopping || R.accept_resume)
		return;
	if (R.max_paused) {
		if ((R.cfg.max_conns && R.nconns >= R.cfg.max_conns) || FDS_PER_CONN * (R.nconns + 1) > R.fd_room)
			return;
		R.max_paused = 0;
		if (R.cfg.verbose)
			info("accepting again (%ld connections)", R.nconns);
	}
	listeners_pause(0);
}

/* --- listeners ------------------------------------------------------------ */

/*
 * Whether need more connections would pass -c or the fd room; if so, stop
 * accepting (the rest wait in the kernel's backlog). Pooled pipes give way
 * to connections first.
 */
static int at_max(long need)
{
	conn_pool_trim(need);
	if ((R.cfg.max_conns && R.nconns + need > R.cfg.max_conns) || FDS_PER_CONN * (R.nconns + need) > R.fd_room) {
		if (!R.max_paused)
			info("holding %ld connections, as many as %s allows: the rest wait to be accepted", R.nconns,
			     R.cfg.max_conns && R.nconns + need > R.cfg.max_conns ? "-c" : "the fd limit");
		listeners_pause(1);
		R.max_paused = 1;
		return 1;
	}
	return 0;
}

/* The fds left for connections once the relay's own (listeners, epoll, signals) are open. */
void lsn_fd_room(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return;
	long open_now = 0;
	for (int fd = 0; fd < (int)rl.rlim_cur && fd < 65536; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			open_now++;
	R.fd_room = (long)rl.rlim_cur - open_now - FD_MARGIN;
	if (R.fd_room < FDS_PER_CONN * (long)FDPASS_MAXFDS)
		warn("the fd limit (%llu) leaves room for %ld connections at once", (unsigned long long)rl.rlim_cur,
		     R.fd_room > 0 ? R.fd_room / FDS_PER_CONN : 0);
	if (R.fd_room < FDS_PER_CONN)
		R.fd_room = FDS_PER_CONN;	/* one at a time, rather than none */
}

static void accept_pause(const char *name)
{
	warn_sys("unable to accept on %s (pausing 100ms)", name);
	listeners_pause(1);
	R.accept_resume = R.now + 100;
}

void lsn_accept(struct lsn *l)
{
	for (int i = 0; i < ACCEPT_BATCH && !at_max(1); i++) {
		struct sg_addr peer;
		peer.len = sizeof peer.u;
		int fd = accept4(l->fd, &peer.u.sa, &peer.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				accept_pause(l->name);
				return;
			}
			warn_sys("unable to accept on %s", l->name);
			return;
		}
		conn_new(l, fd, &peer, NULL);
	}
}

static void lsn_add(int kind, int fd, const char *name, const char *unlink_path);

/* A socket passed to an fdpass: listener: a connection, or a listening socket. */
static void take_passed(struct lsn *l, int fd, const struct fdpass_meta *m)
{
	int type = 0, acc = 0;
	socklen_t sl = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0 || type != SOCK_STREAM) {
		warn("%s: dropping a passed fd that is not a stream socket", l->name);
		close(fd);
		return;
	}
	sl = sizeof acc;
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl);
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0 && !(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (acc) {
		char name[256];
		struct sg_addr a;
		a.len = sizeof a.u;
		char an[ADDR_STRLEN] = "?";
		if (getsockname(fd, &a.u.sa, &a.len) == 0)
			rl_fmt_addr(&a, an, sizeof an);
		snprintf(name, sizeof name, "%.100s (passed through %.100s)", an, l->name);
		lsn_add(K_LISTEN, fd, name, NULL);
		info("listening on %s", name);
		return;
	}
	struct sg_addr peer;
	peer.len = sizeof peer.u;
	if (getpeername(fd, &peer.u.sa, &peer.len) < 0)
		peer.len = 0;
	conn_new(l, fd, &peer, m);
}

void lsn_recv(struct lsn *l)
{
	/* one message may carry FDPASS_MAXFDS connections */
	for (int i = 0; i < ACCEPT_BATCH && !at_max(FDPASS_MAXFDS); i++) {
		int fds[FDPASS_MAXFDS];
		size_t nfds = FDPASS_MAXFDS;
		unsigned char buf[FDPASS_META_MAXLEN];
		ssize_t n = fdpass_recv(l->fd, fds, &nfds, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0 && errno != EMSGSIZE) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				accept_pause(l->name);
				return;
			}
			warn_sys("unable to receive on %s", l->name);
			return;
		}
		struct fdpass_meta m, *mp = NULL;
		memset(&m, 0, sizeof m);
		if (n > 1 && fdpass_meta_decode(buf, (size_t)n, &m) == 0)
			mp = &m;
		else if (n > 1)
			info("%s: ignoring a metadata record I cannot read: %s", l->name, strerror(errno));
		for (size_t k = 0; k < nfds; k++)
			take_passed(l, fds[k], k == 0 ? mp : NULL);
	}
}

static void lsn_add(int kind, int fd, const char *name, const char *unlink_path)
{
	struct lsn *l = calloc(1, sizeof *l);
	if (!l)
		die_sys("unable to allocate");
	l->kind = kind;
	l->fd = fd;
	snprintf(l->name, sizeof l->name, "%s", name);
	l->unlink_path = unlink_path ? strdup(unlink_path) : NULL;
	l->next = R.lsns;
	R.lsns = l;
	if (R.ep > 0) {
		rl_ep_add(fd, l, EPOLLIN);
		if (R.max_paused || R.accept_resume) {
			l->paused = 0;
			listeners_pause(1);
		}
	}
}

struct lopts {
	long mode;			/* -1: leave alone */
	uid_t uid;
	gid_t gid;
	int backlog, reuseport, broker;
};

static void listen_tcp(const char *spec, const char *a, const struct lopts *o)
{
	struct sg_addr sa;
	char buf[80];
	const char *port = NULL;

	if (!strncmp(a, "*:", 2)) {
		port = a + 2;
		snprintf(buf, sizeof buf, "[::]:%.60s", port);
		a = buf;
	}
	if (addr_parse_inet(a, &sa) < 0)
		die(EX_BADINPUT, "bad listener %s: %s", spec, strerror(errno));
	int fd = socket(sa.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 && port && errno == EAFNOSUPPORT) {
		snprintf(buf, sizeof buf, "0.0.0.0:%.60s", port);
		if (addr_parse_inet(buf, &sa) < 0)
			die(EX_BADINPUT, "bad listener %s: %s", spec, strerror(errno));
		fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	}
	if (fd < 0)
		die_sys("unable to create a socket for %s", spec);
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if ((o->reuseport || R.cfg.reuseport) && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		die_sys("unable to set SO_REUSEPORT on %s", spec);
	if (sa.u.sa.sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&sa.u.in6.sin6_addr))
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);	/* dual-stack */
	if (bind(fd, &sa.u.sa, sa.len) < 0)
		die_sys("unable to bind %s", spec);
	if (listen(fd, o->backlog) < 0)
		die_sys("unable to listen on %s", spec);
	sa.len = sizeof sa.u;
	getsockname(fd, &sa.u.sa, &sa.len);
	char name[ADDR_STRLEN + 8], an[ADDR_STRLEN];
	snprintf(name, sizeof name, "tcp:%s", rl_fmt_addr(&sa, an, sizeof an));
	lsn_add(K_LISTEN, fd, name, NULL);
}

static void listen_unix(const char *spec, const char *a, const struct lopts *o, int kind)
{
	struct sg_addr sa;
	int type = kind == K_FDPASS || kind == K_DNS ? SOCK_DGRAM : SOCK_STREAM;

	if (addr_parse(a, &sa) < 0 || sa.u.sa.sa_family != AF_UNIX)
		die(EX_BADINPUT, "bad listener %s: %s", spec, errno ? strerror(errno) : "not a Unix address");
	int abstract = sa.u.un.sun_path[0] == 0;
	int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die_sys("unable to create a socket for %s", spec);
	/* with a mode asked for, nobody may connect before it is set */
	mode_t um = o->mode >= 0 ? umask(0077) : 0;
	int r = bind_unix_path(fd, &sa.u.un, sa.len);
	int e = errno;
	if (o->mode >= 0)
		umask(um);
	errno = e;
	if (r < 0)
		die_sys("unable to bind %s", spec);
	if (!abstract) {
		if ((o->uid != (uid_t)-1 || o->gid != (gid_t)-1) && chown(sa.u.un.sun_path, o->uid, o->gid) < 0)
			die_sys("unable to change the owner of %s", sa.u.un.sun_path);
		if (o->mode >= 0 && chmod(sa.u.un.sun_path, (mode_t)o->mode) < 0)
			die_sys("unable to change the mode of %s", sa.u.un.sun_path);
	}
	if (type == SOCK_STREAM && listen(fd, o->backlog) < 0)
		die_sys("unable to listen on %s", spec);
	char name[ADDR_STRLEN + 16], an[ADDR_STRLEN];
	rl_fmt_addr(&sa, an, sizeof an);
	const char *pre = kind == K_FDPASS ? "fdpass:" : kind == K_RESOLVE ? "resolve:" : kind == K_DNS ? "dns:" :
			  kind == K_DNSTCP ? "dnstcp:" : "";
	snprintf(name, sizeof name, "%s%s", pre, kind == K_FDPASS ? an + 5 : an);
	lsn_add(kind, fd, name, abstract ? NULL : sa.u.un.sun_path);
}

/* An inherited socket: a stream listener, or a Unix datagram socket that receives passed fds. */
static void listen_fd(int fd, const char *label)
{
	struct stat st;
	int type = 0, acc = 0, dom = 0;
	socklen_t l = sizeof type;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		die(EX_BADINPUT, "%s: fd %d is not a socket", label, fd);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	l = sizeof acc;
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l);
	l = sizeof dom;
	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l);
	int kind;
	if (type == SOCK_STREAM && acc)
		kind = K_LISTEN;
	else if (type == SOCK_DGRAM && dom == AF_UNIX)
		kind = K_FDPASS;
	else
		die(EX_BADINPUT, "%s: fd %d is not a listening stream socket nor a Unix datagram socket", label, fd);
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		die_sys("unable to set flags on fd %d", fd);
	struct sg_addr sa;
	sa.len = sizeof sa.u;
	char name[ADDR_STRLEN + 32], an[ADDR_STRLEN] = "?";
	if (getsockname(fd, &sa.u.sa, &sa.len) == 0)
		rl_fmt_addr(&sa, an, sizeof an);
	snprintf(name, sizeof name, "%s%s%s (%s)", kind == K_FDPASS ? "fdpass:" : "",
		 dom == AF_UNIX ? "" : "tcp:", an, label);
	lsn_add(kind, fd, name, NULL);
}

static void listen_systemd(const char *want)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");

	int n = sd_listen_count(pid, fds, getpid(), 4096), found = 0;
	if (n < 0 && errno == ENOENT)
		die(EX_BADINPUT, "systemd: LISTEN_FDS is not set (not started by socket activation?)");
	if (n < 0 && errno == ESRCH)
		die(EX_BADINPUT, "systemd: LISTEN_PID %s is not this process", pid ? pid : "(unset)");
	if (n < 0)
		die(EX_BADINPUT, "systemd: LISTEN_FDS %s: not a count from 0 to 4096", fds);
	const char *p = names;
	for (int i = 0; i < n; i++) {
		char nm[256] = "";
		if (p) {
			size_t k = strcspn(p, ":");
			snprintf(nm, sizeof nm, "%.*s", (int)k, p);
			p = p[k] ? p + k + 1 : NULL;
		}
		if (want && strcmp(want, nm))
			continue;
		char label[300];
		snprintf(label, sizeof label, "systemd fd %d%s%s", 3 + i, *nm ? " " : "", nm);
		listen_fd(3 + i, label);
		found++;
	}
	if (!found)
		die(EX_BADINPUT, "systemd: no socket %s%s in LISTEN_FDS", want ? "named " : "", want ? want : "");
}

/*
 * Where a listener's options start: at the first comma followed by a word
 * and '=' (mode=0660) or by "reuseport". Any other comma is the path's own
 * (unix:/srv/a,b.sock).
 */
static char *opts_start(char *s)
{
	for (char *c = strchr(s, ','); c; c = strchr(c + 1, ',')) {
		size_t w = strspn(c + 1, "abcdefghijklmnopqrstuvwxyz");
		if ((w && c[1 + w] == '=') ||
		    (w == 9 && !strncmp(c + 1, "reuseport", 9) && (c[10] == ',' || !c[10])) ||
		    (w == 6 && !strncmp(c + 1, "broker", 6) && (c[7] == ',' || !c[7])))
			return c;
	}
	return NULL;
}

void lsn_open(const char *spec)
{
	char *s = strdup(spec), *opt;
	struct lopts o = { .mode = -1, .uid = (uid_t)-1, .gid = (gid_t)-1, .backlog = R.cfg.backlog };

	if (!s)
		die_sys("unable to allocate");
	/* options after the address: unix:/run/x.sock,mode=0660,group=docker */
	if ((opt = opts_start(s)))
		*opt++ = 0;
	while (opt && *opt) {
		char *next = strchr(opt, ',');
		if (next)
			*next++ = 0;
		if (!strncmp(opt, "mode=", 5)) {
			char *end;
			errno = 0;
			o.mode = strtol(opt + 5, &end, 8);
			if (errno || *end || end == opt + 5 || o.mode < 0 || o.mode > 07777)
				die(EX_BADINPUT, "bad mode in %s (octal, like 0660)", spec);
		} else if (!strncmp(opt, "owner=", 6)) {
			o.uid = user_lookup(opt + 6, NULL, NULL);
		} else if (!strncmp(opt, "group=", 6)) {
			o.gid = group_lookup(opt + 6);
		} else if (!strncmp(opt, "backlog=", 8)) {
			o.backlog = (int)num_arg(opt + 8, 1, INT_MAX, "backlog");
		} else if (!strcmp(opt, "reuseport")) {
			o.reuseport = 1;
		} else if (!strcmp(opt, "broker")) {
			o.broker = 1;
		} else {
			die(EX_BADINPUT, "unknown listener option %s in %s (mode=, owner=, group=, backlog=, reuseport, "
			    "broker)", opt, spec);
		}
		opt = next;
	}
	struct lsn *before = R.lsns;
	if (!strncmp(s, "tcp:", 4))
		listen_tcp(spec, s + 4, &o);
	else if (!strncmp(s, "unix:", 5))
		listen_unix(spec, s, &o, K_LISTEN);
	else if (!strncmp(s, "fdpass:", 7)) {
		char a[ADDR_STRLEN + 8];
		snprintf(a, sizeof a, "%s%s", strncmp(s + 7, "unix:", 5) ? "unix:" : "", s + 7);
		listen_unix(spec, a, &o, K_FDPASS);
	} else if (!strncmp(s, "resolve:", 8) || !strncmp(s, "dns:", 4) || !strncmp(s, "dnstcp:", 7)) {
		int kind = s[0] == 'r' ? K_RESOLVE : s[3] == ':' ? K_DNS : K_DNSTCP;
		const char *u = strchr(s, ':') + 1;
		char a[ADDR_STRLEN + 8];
		snprintf(a, sizeof a, "%s%s", strncmp(u, "unix:", 5) ? "unix:" : "", u);
		listen_unix(spec, a, &o, kind);
		R.cfg.resolver = 1;
	} else if (!strncmp(s, "fd:", 3))
		listen_fd((int)num_arg(s + 3, 0, INT_MAX, "listener fd"), s);
	else if (!strcmp(s, "systemd"))
		listen_systemd(NULL);
	else if (!strncmp(s, "systemd:", 8))
		listen_systemd(s + 8);
	else
		die(EX_BADINPUT, "unknown listener %s (tcp:ADDR:PORT, unix:PATH, unix:@NAME, fd:N, systemd[:NAME], "
		    "fdpass:PATH, resolve:PATH, dns:PATH, dnstcp:PATH)", spec);
	for (struct lsn *l = R.lsns; l != before; l = l->next)
		l->broker = o.broker;
	free(s);
}

/*
 * Close every listener. The records are not freed: events for them may
 * still wait in the current batch, which skips kind 0.
 */
static struct lsn *closed_lsns;

void lsn_close_all(void)
{
	while (R.lsns) {
		struct lsn *l = R.lsns;
		R.lsns = l->next;
		close(l->fd);
		if (l->unlink_path && !R.chrooted && unlink(l->unlink_path) < 0 && errno != ENOENT)
			warn_sys("unable to remove %s", l->unlink_path);
		l->kind = 0;
		l->next = closed_lsns;
		closed_lsns = l;
	}
}

/* At exit: the records lsn_close_all() kept. */
void lsn_free_all(void)
{
	while (closed_lsns) {
		struct lsn *l = closed_lsns;
		closed_lsns = l->next;
		free(l->unlink_path);
		free(l);
	}
}

/*
 * After dropping privileges: a socket file in a directory the relay can no
 * longer write to cannot be removed at stop. Say so now, not only then.
 */
void lsn_files_check(void)
{
	for (struct lsn *l = R.lsns; l && !R.chrooted; l = l->next) {
		if (!l->unlink_path)
			continue;
		char dir[PATH_MAX];
		snprintf(dir, sizeof dir, "%s", l->unlink_path);
		char *slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = 0;
		else if (slash)
			*slash = 0;
		else
			snprintf(dir, sizeof dir, ".");
		struct stat ds, fs;
		uid_t me = geteuid();
		if (access(dir, W_OK | X_OK) < 0)
			warn("%s will be left at stop: its directory %s is not writable by the user the relay runs as",
			     l->unlink_path, dir);
		else if (stat(dir, &ds) == 0 && (ds.st_mode & S_ISVTX) && ds.st_uid != me &&
			 lstat(l->unlink_path, &fs) == 0 && fs.st_uid != me)
			warn("%s will be left at stop: its directory %s is sticky and the file is not the relay's user's",
			     l->unlink_path, dir);
	}
}
