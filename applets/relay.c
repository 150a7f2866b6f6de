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
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "addr.h"
#include "broker.h"
#include "brokerd.h"
#include "dns.h"
#include "fdpass.h"
#include "file.h"
#include "proxyv2.h"
#include "relayconn.h"
#include "resolver.h"
#include "sockfile.h"
#include "rules.h"
#include "util.h"

static const char usage[] =
	"sockgate-relay [-v] [-l LISTEN ...] [-f RULESFILE] [-r RULE ...] [--proxy-in]\n"
	"       [--proxy-out v1 | v2] [-c MAXCONNS] [--connect-timeout TIME] [--idle-timeout TIME]\n"
	"       [--header-timeout TIME] [--grace TIME] [--reuseport] [--backlog N]\n"
	"       [--pipe-size BYTES] [--ready-fd FD] [-u USER] [-g GROUP]\n"
	"       [-G GROUP,... | -k] [--chroot DIR] [--dns-server ADDR:PORT]\n"
	"       [--resolve-timeout TIME] [--resolve-keep TIME] TARGET";

enum { K_LISTEN = 1, K_FDPASS, K_CLIENT, K_TARGET, K_SIGNAL, K_RESOLVE, K_DNS, K_DNSTCP };
enum { ST_HEADER = 1, ST_CONNECTING, ST_RETRY, ST_RELAY, ST_BROKER };
enum { L_INFO, L_WARN };

#define HEADER_MAX 16384	/* longest PROXY header we accept */
#define POOL_MAX 64		/* empty pipes kept for reuse */
#define POOL_GROWN_MAX 16	/* of them, at most this many keep a grown size */
#define GROW_AFTER (256 * 1024)	/* a direction that moved this much is bulk */
#define ACCEPT_BATCH 64
/*
 * What one connection may hold at once: the client, the target, and a pipe
 * (two fds) each way. The relay accepts only while that many are free for
 * every connection it holds, so an accepted client is never dropped for
 * want of an fd: at the limit the rest wait in the listen backlog.
 */
#define FDS_PER_CONN 6
#define FD_MARGIN 8		/* a rules file re-read, a log line, a readiness fd */
#define FB_MAX 3		/* other addresses of a name a failed connect tries */
#define FB_SCAN 16		/* addresses of the name looked at to pick them */

struct relay_cfg {
	int verbose;
	const char *rules_file;
	char *rules_inline;
	int proxy_in, proxy_out;	/* proxy_out: 0, 1 or 2 */
	long max_conns;			/* 0: no limit */
	int64_t connect_ms, idle_ms, header_ms, grace_ms;
	int reuseport, backlog;
	unsigned pipe_max;
	int ready_fd;
	struct privs privs;
	struct resolver_opts res;
	int resolver;			/* a resolve:, dns: or dnstcp: listener */
	int original;			/* target "original" */
	struct sg_addr target;
	char target_name[ADDR_STRLEN + 8];
};

struct lsn {
	int kind;			/* K_LISTEN or K_FDPASS */
	int fd;
	int paused;
	int broker;			/* listener option broker: serves broker requests */
	char *unlink_path;		/* a socket file we made, removed at exit */
	char name[ADDR_STRLEN + 32];
	struct lsn *next;
};

struct pipebuf {
	int rd, wr;
	unsigned cap, base;	/* size now, size as created */
	int nogrow;
	struct pipebuf *next;
};

struct dir {				/* one direction: from one socket to the other */
	struct pipebuf *p;
	struct relaydir s;		/* what was read, written, ended (core/relayconn) */
	unsigned rearm:1;
};

/*
 * A connect to an `original` destination failed and the relay resolved its
 * name to other addresses too: those still to try (RFC 8305's order: the
 * other family first, then alternating), and what the first attempt got.
 */
struct fallback {
	char name[DNS_NAME_MAX];
	uint8_t a16[FB_MAX][16];
	int n, next;
	char tried[160];		/* "[::1]:80 refused, 127.0.0.5:80 refused" */
};

struct conn;
struct side {
	int kind;			/* K_CLIENT or K_TARGET */
	int fd;
	unsigned rd:1, wr:1, in_ep:1, hup:1;	/* hup: the peer shut down its write side */
	struct conn *c;
};

struct conn {
	struct side cl, tg;
	struct dir up, down;		/* up: client to target */
	int state, dead;
	int64_t start, deadline, connect_deadline;
	unsigned char *obuf;		/* PROXY header still to send to the target */
	size_t olen, ooff;
	struct sg_addr client, dest, target;
	char *host;			/* the name a name rule allowed the destination by */
	char *authority;		/* the incoming header's AUTHORITY TLV (original), or NULL */
	struct fallback *fb;		/* after a failed connect: other addresses of the name */
	pid_t cpid;			/* Unix clients: SO_PEERCRED at -v */
	uid_t cuid;
	int broker;			/* came on a listener with the broker option */
	struct conn *prev, *next;
};

/* What the loop, the connections and the listeners share: one instance, R. */
struct relay {
	struct relay_cfg cfg;
	int ep;
	int64_t now;
	int64_t accept_resume;
	struct lsn *lsns;
	struct conn *conns, *zombies;
	long nconns;
	int max_paused, stopping, chrooted;
	long fd_room;			/* fds for connections and pooled pipes */
	struct ruleset *rules;
};

static struct relay R = {
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
static struct pipebuf *pool;
static int npool, npool_grown;	/* pipes in the pool; of them grown */
static struct { int kind; int fd; } sigobj = { K_SIGNAL, -1 };
static unsigned char hdrbuf[HEADER_MAX];

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

static const char *rl_fmt_addr(const struct sg_addr *a, char *buf, size_t size)
{
	if (a->len == 0 || a->u.sa.sa_family == AF_UNSPEC || addr_format(&a->u.sa, a->len, buf, size) < 0)
		snprintf(buf, size, "unknown");
	return buf;
}

/* --- pipes --------------------------------------------------------------- */

static struct pipebuf *pipe_get(void)
{
	struct pipebuf *p = pool;
	if (p) {
		pool = p->next;
		npool--;
		if (p->cap > p->base)
			npool_grown--;
		return p;
	}
	int fds[2];
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
		return NULL;
	if (!(p = calloc(1, sizeof *p))) {
		close(fds[0]);
		close(fds[1]);
		errno = ENOMEM;
		return NULL;
	}
	p->rd = fds[0];
	p->wr = fds[1];
	int sz = fcntl(fds[1], F_GETPIPE_SZ);
	p->cap = p->base = sz > 0 ? (unsigned)sz : 65536;
	return p;
}

static void pipe_free(struct pipebuf *p)
{
	close(p->rd);
	close(p->wr);
	free(p);
}

/*
 * Back to the pool; a pipe with bytes still in it is closed instead. A
 * grown pipe keeps its size (a bulk flow takes it back at once: the pool
 * is a stack) unless POOL_GROWN_MAX grown ones wait already: then it goes
 * back to its first size, so that idle pipes do not hold the user's
 * pipe-user-pages-soft allowance (beyond it, every new pipe gets one page).
 */
static void pipe_put(struct pipebuf *p, size_t inpipe)
{
	if (inpipe || npool >= POOL_MAX || FDS_PER_CONN * R.nconns + 2 * (npool + 1) > R.fd_room) {
		pipe_free(p);
		return;
	}
	if (p->cap > p->base) {
		if (npool_grown >= POOL_GROWN_MAX) {
			int r = fcntl(p->wr, F_SETPIPE_SZ, p->base);
			if (r <= 0) {
				pipe_free(p);
				return;
			}
			p->cap = (unsigned)r;
		} else {
			npool_grown++;
		}
	}
	p->next = pool;
	pool = p;
	npool++;
}

static void conn_pool_drain(void)
{
	while (pool) {
		struct pipebuf *p = pool;
		pool = p->next;
		pipe_free(p);
	}
	npool = npool_grown = 0;
}

/* Pooled pipes give way to connections: as many go as need more connections want. */
static void conn_pool_trim(long need)
{
	while (pool && FDS_PER_CONN * (R.nconns + need) + 2 * npool > R.fd_room) {
		struct pipebuf *p = pool;
		pool = p->next;
		npool--;
		if (p->cap > p->base)
			npool_grown--;
		pipe_free(p);
	}
}

/* A bulk flow gets a bigger pipe: fewer wake-ups per byte. */
static void pipe_grow(struct pipebuf *p)
{
	unsigned want = p->cap * 4 > R.cfg.pipe_max ? R.cfg.pipe_max : p->cap * 4;
	int r = fcntl(p->wr, F_SETPIPE_SZ, want);
	if (r > 0)
		p->cap = (unsigned)r;
	else
		p->nogrow = 1;
}

/* --- timers and epoll ---------------------------------------------------- */

static void rl_set_deadline(struct conn *c, int64_t t)
{
	c->deadline = t;
	if (t && t < next_wake)
		next_wake = t;
}

static void rl_ep_add(int fd, void *obj, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = obj };
	if (epoll_ctl(R.ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die_sys("unable to add fd %d to epoll", fd);
}

static void rl_side_add(struct side *s)
{
	if (s->in_ep)
		return;
	rl_ep_add(s->fd, s, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
	s->in_ep = 1;
}

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
static void lsn_resume(void)
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

/* --- connections ---------------------------------------------------------- */

static void fmt_client(const struct conn *c, char *buf, size_t size)
{
	int f = c->client.u.sa.sa_family;
	uint8_t a16[16];
	if (f == AF_UNIX && c->cpid > 0) {
		snprintf(buf, size, "unix:pid=%ld,uid=%ld", (long)c->cpid, (long)c->cuid);
		return;
	}
	rl_fmt_addr(&c->client, buf, size);
	/* a header from an unbound socket says 0.0.0.0:0: name the Unix peer too */
	if (c->cpid > 0 && (f == AF_INET || f == AF_INET6) && addr_port(&c->client.u.sa) == 0 &&
	    addr_to16(&c->client.u.sa, a16) == 0 && !memcmp(a16 + (f == AF_INET ? 12 : 0), "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
							  f == AF_INET ? 4 : 16)) {
		size_t l = strlen(buf);
		snprintf(buf + l, size - l, " (unix:pid=%ld,uid=%ld)", (long)c->cpid, (long)c->cuid);
	}
}

static void conn_end(struct conn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "CLIENT -> DEST[ via TARGET][ (HOST)]": how every log line of a connection starts. */
static void conn_label(const struct conn *c, char *buf, size_t size)
{
	char cl[ADDR_STRLEN + 32], t1[ADDR_STRLEN], t2[ADDR_STRLEN];

	fmt_client(c, cl, sizeof cl);
	if (c->target.len && c->dest.len && R.cfg.original &&
	    (c->target.len != c->dest.len || memcmp(&c->target.u, &c->dest.u, c->dest.len)))
		snprintf(buf, size, "%s -> %s via %s", cl, rl_fmt_addr(&c->dest, t1, sizeof t1),
			 rl_fmt_addr(&c->target, t2, sizeof t2));
	else
		snprintf(buf, size, "%s -> %s", cl, rl_fmt_addr(c->target.len ? &c->target : &c->dest, t1, sizeof t1));
	if (c->host) {
		size_t l = strlen(buf);
		snprintf(buf + l, size - l, " (%s)", c->host);
	}
}

static void conn_end(struct conn *c, int level, const char *fmt, ...)
{
	if (c->dead)
		return;
	if (level == L_WARN || R.cfg.verbose) {
		char why[256], lb[3 * ADDR_STRLEN + DNS_NAME_MAX + 48];
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, sizeof why, fmt, ap);
		va_end(ap);
		conn_label(c, lb, sizeof lb);
		int64_t d = R.now - c->start;
		char lost[160] = "";
		if (c->up.s.inpipe || c->down.s.inpipe)
			snprintf(lost, sizeof lost, " (discarded, read but not delivered: %zu bytes to target, %zu to client)",
				 c->up.s.inpipe, c->down.s.inpipe);
		if (c->state == ST_BROKER)	/* no byte of it passes here */
			(level == L_WARN ? warn : info)("%s: %s", lb, why);
		else
			(level == L_WARN ? warn : info)("%s: %llu bytes to target, %llu bytes to client, "
				"%lld.%03llds, %s%s", lb, (unsigned long long)c->up.s.sent,
				(unsigned long long)c->down.s.sent, (long long)(d / 1000), (long long)(d % 1000), why, lost);
	}
	c->dead = 1;
	close(c->cl.fd);
	if (c->tg.fd >= 0)
		close(c->tg.fd);
	if (c->up.p)
		pipe_put(c->up.p, c->up.s.inpipe);
	if (c->down.p)
		pipe_put(c->down.p, c->down.s.inpipe);
	free(c->obuf);
	c->obuf = NULL;
	free(c->host);
	c->host = NULL;
	free(c->authority);
	c->authority = NULL;
	free(c->fb);
	c->fb = NULL;
	/* unlink now, free after the current batch of events */
	if (c->prev)
		c->prev->next = c->next;
	else
		R.conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = R.zombies;
	R.zombies = c;
	R.nconns--;
	if (R.max_paused)
		lsn_resume();
	if (R.nconns == 0)
		conn_pool_drain();
}

static void side_name_err(struct conn *c, struct side *s, const char *op, int e)
{
	const char *who = s == &c->cl ? "client" : "target";
	if (e == ECONNRESET)
		conn_end(c, L_INFO, "reset by %s", who);
	else if (e == EPIPE)
		conn_end(c, L_INFO, "%s closed while %s was sending", who, s == &c->cl ? "target" : "client");
	else
		conn_end(c, L_INFO, "error %s %s: %s", op, who, strerror(e));
}

/*
 * Move what can move from src to dst through d's pipe. Returns 1 when bytes
 * moved, 0 when nothing could, -1 when the connection ended. Edge-triggered:
 * rd/wr are cleared only by EAGAIN; a drained pipe re-arms a source whose
 * EAGAIN may have meant "pipe full" rather than "nothing to read".
 */
static int pump(struct conn *c, struct side *src, struct side *dst, struct dir *d)
{
	int moved = 0;

	for (;;) {
		int progress = 0;
		if (!d->s.eof && src->rd && (!d->p || relaydir_room(&d->s, d->p->cap))) {
			if (!d->p && !(d->p = pipe_get())) {
				conn_end(c, L_WARN, "unable to create a pipe: %s", strerror(errno));
				return -1;
			}
			ssize_t n = splice(src->fd, NULL, d->p->wr, NULL, relaydir_room(&d->s, d->p->cap),
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				relaydir_read(&d->s, (size_t)n);
				progress = 1;
				if (d->s.bytes >= GROW_AFTER && d->p->cap < R.cfg.pipe_max && !d->p->nogrow)
					pipe_grow(d->p);
			} else if (n == 0) {
				relaydir_read(&d->s, 0);
				progress = 1;
			} else if (errno == EAGAIN) {
				src->rd = 0;
				d->rearm = d->s.inpipe > 0;
			} else if (errno != EINTR) {
				side_name_err(c, src, "reading from", errno);
				return -1;
			}
		}
		if (d->s.inpipe && dst->wr) {
			ssize_t n = splice(d->p->rd, NULL, dst->fd, NULL, d->s.inpipe,
					   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				relaydir_wrote(&d->s, (size_t)n);
				progress = 1;
				if (d->rearm) {
					src->rd = 1;
					d->rearm = 0;
				}
			} else if (n < 0 && errno == EAGAIN) {
				dst->wr = 0;
			} else if (n < 0 && errno != EINTR) {
				side_name_err(c, dst, "writing to", errno);
				return -1;
			}
		}
		if (relaydir_shut_now(&d->s)) {
			shutdown(dst->fd, SHUT_WR);
			d->s.shut = 1;
		}
		if (!progress)
			break;
		moved = 1;
	}
	if (d->p && !d->s.inpipe && (d->s.eof || !src->rd)) {
		pipe_put(d->p, 0);
		d->p = NULL;
	}
	return moved;
}

static void relay_run(struct conn *c)
{
	int moved = 0, r;

	if (c->obuf) {
		if (!c->tg.wr)
			goto down;
		ssize_t n = send(c->tg.fd, c->obuf + c->ooff, c->olen - c->ooff, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN) {
			c->tg.wr = 0;
			goto down;
		}
		if (n < 0) {
			side_name_err(c, &c->tg, "writing the PROXY header to", errno);
			return;
		}
		c->ooff += n;
		if (c->ooff < c->olen)
			goto down;
		free(c->obuf);
		c->obuf = NULL;
	}
	if ((r = pump(c, &c->cl, &c->tg, &c->up)) < 0)
		return;
	moved |= r;
down:
	if ((r = pump(c, &c->tg, &c->cl, &c->down)) < 0)
		return;
	moved |= r;
	if (relayconn_done(&c->up.s, &c->down.s)) {
		conn_end(c, L_INFO, "done");
		return;
	}
	if (moved && R.cfg.idle_ms)
		c->deadline = R.now + R.cfg.idle_ms;	/* later than before: next_wake stays a lower bound */
}

static void conn_connected(struct conn *c)
{
	if (c->fb) {
		char lb[3 * ADDR_STRLEN + DNS_NAME_MAX + 48], t[ADDR_STRLEN];
		conn_label(c, lb, sizeof lb);
		info("%s: %s, connected to %s instead", lb, c->fb->tried, rl_fmt_addr(&c->target, t, sizeof t));
	}
	c->state = ST_RELAY;
	c->tg.wr = 1;	/* a fresh connection; cl.rd is whatever the events said */
	rl_set_deadline(c, R.cfg.idle_ms ? R.now + R.cfg.idle_ms : 0);
	relay_run(c);
}

static void conn_connect_failed(struct conn *c, int e, int timeout);
static int fallback_may(struct conn *c);

static void conn_connect(struct conn *c)
{
	int fam = c->target.u.sa.sa_family;

	if (c->tg.fd < 0) {
		c->tg.fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (c->tg.fd < 0) {
			conn_end(c, L_WARN, "unable to create a socket: %s", strerror(errno));
			return;
		}
		if (fam != AF_UNIX) {
			int one = 1;
			setsockopt(c->tg.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		}
	}
	if (!c->connect_deadline)
		c->connect_deadline = R.now + R.cfg.connect_ms;
	if (connect(c->tg.fd, &c->target.u.sa, c->target.len) == 0) {
		rl_side_add(&c->tg);
		conn_connected(c);
		return;
	}
	if (errno == EINPROGRESS) {
		rl_side_add(&c->tg);
		c->state = ST_CONNECTING;
		/*
		 * another address of the name may be tried: this one gets half the
		 * time left (RFC 8305 would start the next one sooner, beside it)
		 */
		rl_set_deadline(c, fallback_may(c) ? R.now + (c->connect_deadline - R.now) / 2 : c->connect_deadline);
		return;
	}
	if (errno == EAGAIN && fam == AF_UNIX) {
		/* a full Unix backlog: no EINPROGRESS for AF_UNIX, so try again soon */
		c->state = ST_RETRY;
		rl_set_deadline(c, R.now + 20 < c->connect_deadline ? R.now + 20 : c->connect_deadline);
		return;
	}
	conn_connect_failed(c, errno, 0);
}

/* The header for the target: the real client and the address it asked for. */
static int build_out(struct conn *c, const struct proxy_hdr *in)
{
	unsigned char buf[1024];
	int n = relayconn_build_out(R.cfg.proxy_out, &c->client, &c->dest, in, buf, sizeof buf);

	if (n < 0)
		return -1;
	if (!(c->obuf = malloc(n)))
		return -1;
	memcpy(c->obuf, buf, n);
	c->olen = n;
	c->ooff = 0;
	return 0;
}

/*
 * Name rules: the destination must be an address that this relay's own
 * resolver returned for a name the pattern allows, still within that
 * answer's lifetime; what the client says (an AUTHORITY TLV) only narrows
 * it down, never widens it.
 */
struct hostq {
	uint8_t a16[16];
	const char *authority;		/* NULL when the header has none */
	char name[DNS_NAME_MAX];
};

static int host_ok(void *ctx, const char *pattern)
{
	struct hostq *h = ctx;
	return resolver_known(h->a16, pattern, h->authority, h->name, sizeof h->name);
}

/*
 * original mode: may this connection go to dest (the header's destination,
 * or another address of its name after a failed connect)? 0 with *target
 * set, or -1 with the reason in why.
 */
static int route_dest(struct conn *c, const struct sg_addr *dest, const char *authority, int proto,
		      struct sg_addr *target, char *why, size_t size)
{
	struct hostq hq = { .authority = authority };
	const struct rule *r;
	if (dest->len)
		addr_to16(&dest->u.sa, hq.a16);
	if (relayconn_route(R.rules, &c->client, dest, proto, host_ok, &hq, &r, target, why, size) < 0) {
		char seen[DNS_NAME_MAX];
		if (r || !R.rules || (dest->u.sa.sa_family != AF_INET && dest->u.sa.sa_family != AF_INET6))
			return -1;
		/* no rule: say what the AUTHORITY TLV claimed, and what this relay knows */
		if (hq.authority && resolver_seen(hq.a16, seen, sizeof seen) &&
		    !resolver_known(hq.a16, "*", hq.authority, seen, sizeof seen))
			snprintf(why, size, "denied: the AUTHORITY TLV names %.100s, which this relay did not resolve "
				 "to that address (it did for %.100s)", hq.authority, seen);
		else if (hq.authority && !resolver_seen(hq.a16, seen, sizeof seen))
			snprintf(why, size, "denied: no rule allows it (AUTHORITY %.100s; this relay resolved no "
				 "name to that address)", hq.authority);
		return -1;
	}
	if (r->host != RULE_NONE && !c->host && !(c->host = strdup(hq.name))) {
		snprintf(why, size, "denied: out of memory");
		return -1;
	}
	if (r->host != RULE_NONE)
		resolver_renew(hq.a16, hq.name);	/* in use: a pool or a cached address may come back later */
	return 0;
}

static int route_original(struct conn *c, const struct proxy_hdr *ph, int proto, char *why, size_t size)
{
	return route_dest(c, &c->dest, ph && ph->authority_len ? ph->authority : NULL, proto, &c->target, why, size);
}

/* The addresses are known (header read, or none expected): pick and connect. */
static void conn_start(struct conn *c, const struct proxy_hdr *h)
{
	if (!c->dest.len && (R.cfg.original || R.cfg.proxy_out)) {
		c->dest.len = sizeof c->dest.u;
		if (getsockname(c->cl.fd, &c->dest.u.sa, &c->dest.len) < 0)
			c->dest.len = 0;
		addr_unmap(&c->dest.u.ss, &c->dest.len);
	}
	if (R.cfg.original) {
		char why[512];
		if (route_original(c, h, RULE_TCP, why, sizeof why) < 0) {
			conn_end(c, L_WARN, "%s", why);
			return;
		}
		/* the name the program looked up: where to look for other addresses if the connect fails */
		if (h && h->authority_len && !(c->authority = strdup(h->authority))) {
			conn_end(c, L_WARN, "unable to allocate: %s", strerror(errno));
			return;
		}
	} else {
		c->target = R.cfg.target;
	}
	if (R.cfg.proxy_out && build_out(c, h) < 0) {
		conn_end(c, L_WARN, "unable to build the PROXY header: %s", strerror(errno));
		return;
	}
	conn_connect(c);
}

/* --- another address of the name, when a connect fails (RFC 8305) -------- */

/* Is there (maybe) another address to try after this attempt? */
static int fallback_may(struct conn *c)
{
	if (c->fb)
		return c->fb->next < c->fb->n;
	uint8_t d16[16];
	char name[DNS_NAME_MAX];
	return R.cfg.original && (c->authority || c->host ||
				(addr_to16(&c->dest.u.sa, d16) == 0 && resolver_seen(d16, name, sizeof name)));
}

/*
 * The first failure: which name, and which of its other addresses (at most
 * FB_MAX), in RFC 8305 section 4's order: the other family first, then
 * alternating. NULL when the destination has no name the relay resolved,
 * or the rules sent the connection somewhere else than the destination.
 */
static struct fallback *fallback_new(struct conn *c)
{
	uint8_t d16[16], all[FB_SCAN][16], *fam[2][FB_SCAN];
	char name[DNS_NAME_MAX];
	int nf[2] = { 0, 0 };
	struct fallback *fb;

	if (!R.cfg.original || c->target.len != c->dest.len || memcmp(&c->target.u, &c->dest.u, c->dest.len) ||
	    addr_to16(&c->dest.u.sa, d16) < 0)
		return NULL;
	if (c->authority || c->host)
		snprintf(name, sizeof name, "%s", c->authority ? c->authority : c->host);
	else if (!resolver_seen(d16, name, sizeof name))
		return NULL;
	if (!(fb = calloc(1, sizeof *fb)))
		return NULL;
	snprintf(fb->name, sizeof fb->name, "%s", name);
	int n = resolver_addrs(name, all, FB_SCAN), v4 = addr_is_v4mapped(d16);
	for (int i = 0; i < n; i++)
		if (memcmp(all[i], d16, 16)) {
			int g = addr_is_v4mapped(all[i]) == v4;	/* 0: the other family */
			fam[g][nf[g]++] = all[i];
		}
	for (int k = 0; fb->n < FB_MAX && (k < nf[0] || k < nf[1]); k++)
		for (int g = 0; g < 2 && fb->n < FB_MAX; g++)
			if (k < nf[g])
				memcpy(fb->a16[fb->n++], fam[g][k], 16);
	return fb;
}

/*
 * The connect to c->target failed (e): the next address of the name that
 * the allow rules pass, as c->target (0), or -1 when none is left. Each one
 * is checked as the destination was, with the name as its AUTHORITY.
 */
static int fallback_pick(struct conn *c, int e, int timeout)
{
	char t[ADDR_STRLEN], lb[3 * ADDR_STRLEN + DNS_NAME_MAX + 48], why[512];

	if (!c->fb && !(c->fb = fallback_new(c)))
		return -1;
	struct fallback *fb = c->fb;
	size_t l = strlen(fb->tried);
	snprintf(fb->tried + l, sizeof fb->tried - l, "%s%s %s", l ? ", " : "", rl_fmt_addr(&c->target, t, sizeof t),
		 timeout || e == ETIMEDOUT ? "timed out" : e == ECONNREFUSED ? "refused" :
		 e == EADDRNOTAVAIL ? "address not available" : "unreachable");
	while (fb->next < fb->n) {
		struct sg_addr cand, to;
		memset(&cand, 0, sizeof cand);
		cand.u.in6.sin6_family = AF_INET6;
		cand.u.in6.sin6_port = htons((uint16_t)addr_port(&c->dest.u.sa));
		memcpy(&cand.u.in6.sin6_addr, fb->a16[fb->next++], 16);
		cand.len = sizeof cand.u.in6;
		addr_unmap(&cand.u.ss, &cand.len);
		if (route_dest(c, &cand, fb->name, RULE_TCP, &to, why, sizeof why) == 0) {
			if (to.len == cand.len && !memcmp(&to.u, &cand.u, cand.len)) {
				c->target = cand;
				return 0;
			}
			snprintf(why, sizeof why, "a rule sends it to %s, not to the address", rl_fmt_addr(&to, t, sizeof t));
		}
		conn_label(c, lb, sizeof lb);
		warn("%s: no fallback to %s: %s", lb, rl_fmt_addr(&cand, t, sizeof t), why);
	}
	fb->tried[l] = 0;	/* the last one is the caller's to tell (or to wait for) */
	return -1;
}

/*
 * A connect failed with e, or (timeout) an attempt's share of
 * --connect-timeout ran out: another address of the same name when the
 * error says this one cannot be reached, within the time left; else the
 * end of the connection.
 */
static void conn_connect_failed(struct conn *c, int e, int timeout)
{
	int unreachable = timeout || e == ECONNREFUSED || e == ENETUNREACH || e == EHOSTUNREACH ||
			  e == EADDRNOTAVAIL || e == ETIMEDOUT;

	if (unreachable && R.now < c->connect_deadline && fallback_pick(c, e, timeout) == 0) {
		close(c->tg.fd);
		c->tg = (struct side){ .kind = K_TARGET, .fd = -1, .c = c };
		conn_connect(c);
		return;
	}
	if (timeout && R.now < c->connect_deadline) {
		rl_set_deadline(c, c->connect_deadline);	/* nothing else to try: this one gets the rest */
		return;
	}
	char tried[sizeof c->fb->tried + 16] = "";
	if (c->fb && c->fb->tried[0])
		snprintf(tried, sizeof tried, " (after %s)", c->fb->tried);
	conn_end(c, L_WARN, "unable to connect to target: %s%s", timeout ? "timed out" : strerror(e), tried);
}

static void broker_run(struct conn *c, const struct broker_req *rq, int perr);

/*
 * Read the PROXY header without reading past it: peek at what has arrived,
 * and take exactly the header's bytes once it is complete. On a broker
 * listener the header may be a broker request (core/broker.h).
 */
static void header_run(struct conn *c)
{
	struct broker_req rq;
	struct proxy_hdr h;
	size_t n = 0;

	for (;;) {
		ssize_t k = recv(c->cl.fd, hdrbuf, sizeof hdrbuf, MSG_PEEK);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN) {
			c->cl.rd = 0;
			return;
		}
		if (k < 0) {
			side_name_err(c, &c->cl, "reading the PROXY header from", errno);
			return;
		}
		if (k == 0) {
			/* a connect-and-close health check is no incident */
			conn_end(c, L_INFO, "client closed without sending anything");
			return;
		}
		int r = relayconn_header(hdrbuf, (size_t)k, c->cl.hup, sizeof hdrbuf, &h, &n);
		if (r == RC_HDR_BAD) {
			char hex[3 * 8 + 1] = "";
			for (int i = 0; i < 8 && i < k; i++)
				snprintf(hex + 3 * i, 4, " %02x", hdrbuf[i]);
			conn_end(c, L_WARN, "bad PROXY header: neither v1 nor v2, or malformed (starts with%s)", hex);
			return;
		}
		if (r == RC_HDR_TOOLONG) {
			conn_end(c, L_WARN, "bad PROXY header: longer than %d bytes", HEADER_MAX);
			return;
		}
		/* a peek never shows the end of file behind data: RDHUP does */
		if (r == RC_HDR_TRUNCATED) {
			conn_end(c, L_WARN, "client closed before a complete PROXY header");
			return;
		}
		if (r == RC_HDR_NEED) {
			/* wait for more; the next edge wakes us */
			c->cl.rd = 0;
			return;
		}
		break;
	}
	/* consume exactly the header */
	size_t got = 0;
	while (got < n) {
		ssize_t k = recv(c->cl.fd, hdrbuf, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			conn_end(c, L_WARN, "error reading the PROXY header: %s", k ? strerror(errno) : "end of file");
			return;
		}
		got += k;
	}
	if (c->broker) {
		/*
		 * a broker request is a complete PROXY v2 header with the broker
		 * TLV; any other header (v1 too) is relayed, where that is allowed
		 */
		size_t bn = 0;
		int br = broker_req_parse(hdrbuf, n, &rq, &bn);
		if (br == PROXY_DONE || (br < 0 && bn)) {
			/* a refused request was complete: the client hears why */
			broker_run(c, &rq, br < 0 ? errno : 0);
			return;
		}
		if (!R.cfg.proxy_in) {
			conn_end(c, L_WARN, "broker: not a broker request (a PROXY header without the broker TLV; "
				 "relaying it needs --proxy-in)");
			return;
		}
	}
	char why[200];
	if (relayconn_addresses(&h, R.cfg.original, &c->client, &c->dest, why, sizeof why) < 0) {
		conn_end(c, L_WARN, "%s", why);
		return;
	}
	c->cl.rd = 1;
	conn_start(c, &h);
}

/* The broker's allow rules are original's: the same route, name rules and all. */
static int broker_route(void *ctx, const struct brq *b, int proto, struct sg_addr *target, char *why, size_t size)
{
	struct conn *c = ctx;

	if (route_original(c, &b->rq.h, proto, why, size) < 0)
		return -1;
	*target = c->target;
	return 0;
}

/* One broker request (applets/broker.c): answered at once, then the connection ends. */
static void broker_run(struct conn *c, const struct broker_req *rq, int perr)
{
	struct brq b;

	memset(&b, 0, sizeof b);
	b.cl = c->cl.fd;
	b.rq = *rq;
	if (rq->h.src.ss_family != AF_UNSPEC) {
		memcpy(&c->client.u.ss, &rq->h.src, sizeof rq->h.src);
		c->client.len = rq->h.srclen;
	}
	memcpy(&c->dest.u.ss, &rq->h.dst, sizeof rq->h.dst);
	c->dest.len = rq->h.dstlen;
	addr_unmap(&c->client.u.ss, &c->client.len);
	addr_unmap(&c->dest.u.ss, &c->dest.len);
	b.dest = c->dest;
	b.client = c->client;
	c->state = ST_BROKER;
	int r = broker_serve(&b, perr, broker_route, c);
	if (b.target.len)
		c->target = b.target;
	addr_unmap(&c->target.u.ss, &c->target.len);
	conn_end(c, r == 0 ? L_INFO : L_WARN, "%s", b.why);
}

static void conn_run(struct conn *c)
{
	switch (c->state) {
	case ST_HEADER:
		if (c->cl.rd)
			header_run(c);
		break;
	case ST_CONNECTING:
		if (c->tg.wr) {
			int err = 0;
			socklen_t l = sizeof err;
			if (getsockopt(c->tg.fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
				err = errno;
			if (err) {
				conn_connect_failed(c, err, 0);
				return;
			}
			conn_connected(c);
		}
		break;
	case ST_RELAY:
		relay_run(c);
		break;
	}
}

static void conn_new(struct lsn *l, int fd, const struct sg_addr *peer, const struct fdpass_meta *m)
{
	struct conn *c = calloc(1, sizeof *c);
	if (!c) {
		warn("out of memory: dropping a connection on %s", l->name);
		close(fd);
		return;
	}
	c->cl = (struct side){ .kind = K_CLIENT, .fd = fd, .c = c };
	c->tg = (struct side){ .kind = K_TARGET, .fd = -1, .c = c };
	c->start = R.now;
	c->broker = l->broker;
	if (m && m->remote_len) {
		memcpy(&c->client.u.ss, &m->remote, sizeof m->remote);
		c->client.len = m->remote_len;
	} else if (peer) {
		c->client = *peer;
	}
	if (m && m->local_len) {
		memcpy(&c->dest.u.ss, &m->local, sizeof m->local);
		c->dest.len = m->local_len;
	}
	addr_unmap(&c->client.u.ss, &c->client.len);
	addr_unmap(&c->dest.u.ss, &c->dest.len);
	int fam = c->client.u.sa.sa_family;
	if (fam == AF_INET || fam == AF_INET6) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	} else if (R.cfg.verbose) {
		struct ucred uc;
		socklen_t ul = sizeof uc;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0 && uc.pid > 0) {
			c->cpid = uc.pid;
			c->cuid = uc.uid;
		}
	}
	c->next = R.conns;
	if (R.conns)
		R.conns->prev = c;
	R.conns = c;
	R.nconns++;
	rl_side_add(&c->cl);
	if (R.cfg.proxy_in || c->broker) {
		c->state = ST_HEADER;
		rl_set_deadline(c, R.now + R.cfg.header_ms);
		return;		/* the epoll edge tells when bytes are there */
	}
	conn_start(c, NULL);
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
static void lsn_fd_room(void)
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

static void lsn_accept(struct lsn *l)
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

static void lsn_recv(struct lsn *l)
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

static void lsn_open(const char *spec)
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

static void lsn_close_all(void)
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
static void lsn_free_all(void)
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
static void lsn_files_check(void)
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
