/*
 * One connection of sockgate-relay, a state machine that the loop in
 * relay.c drives through conn_run(): the PROXY header or a broker request
 * (ST_HEADER), where it may go (the one target, or "original": the rules,
 * and the names this relay's resolver knows), the connect and its
 * fallback to other addresses of the name (ST_CONNECTING, ST_RETRY), the
 * relaying (ST_RELAY), and conn_end(), its one exit. The listeners
 * (relay_listen.c) hand it accepted and passed sockets (conn_new()). Bytes
 * move with splice(2) through pipes a connection holds only while bytes
 * are in flight, taken from and given back to the pool kept here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "addr.h"
#include "broker.h"
#include "brokerd.h"
#include "dns.h"
#include "fdpass.h"
#include "proxyv2.h"
#include "relay_int.h"
#include "relayconn.h"
#include "resolver.h"
#include "rules.h"
#include "util.h"

#define HEADER_MAX 16384	/* longest PROXY header we accept */
#define POOL_MAX 64		/* empty pipes kept for reuse */
#define POOL_GROWN_MAX 16	/* of them, at most this many keep a grown size */
#define GROW_AFTER (256 * 1024)	/* a direction that moved this much is bulk */
#define FB_MAX 3		/* other addresses of a name a failed connect tries */
#define FB_SCAN 16		/* addresses of the name looked at to pick them */

struct pipebuf {
	int rd, wr;
	unsigned cap, base;	/* size now, size as created */
	int nogrow;
	struct pipebuf *next;
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

static struct pipebuf *pool;
static int npool, npool_grown;	/* pipes in the pool; of them grown */
static unsigned char hdrbuf[HEADER_MAX];

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

void conn_pool_drain(void)
{
	while (pool) {
		struct pipebuf *p = pool;
		pool = p->next;
		pipe_free(p);
	}
	npool = npool_grown = 0;
}

/* Pooled pipes give way to connections: as many go as need more connections want. */
void conn_pool_trim(long need)
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

void conn_end(struct conn *c, int level, const char *fmt, ...)
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

static int fallback_may(struct conn *c);

void conn_connect(struct conn *c)
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
void conn_connect_failed(struct conn *c, int e, int timeout)
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

void conn_run(struct conn *c)
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

void conn_new(struct lsn *l, int fd, const struct sg_addr *peer, const struct fdpass_meta *m)
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
