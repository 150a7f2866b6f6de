/*
 * The resolver listener of sockgate-relay: names for programs that have no
 * network. Lookups arrive in the resolver protocol (core/lookup.h, from
 * libsockgate.so's getaddrinfo() and friends) on stream sockets, or as DNS
 * messages (RFC 1035) on datagram sockets (programs that build their own
 * queries, redirected by a `connect udp *:53` rule) and on stream sockets
 * (DNS over TCP, RFC 7766, redirected by `connect tcp *:53`). All are answered the
 * same way: by the host's getaddrinfo()/getnameinfo() on a few worker
 * threads, or, with --dns-server, by queries this relay sends itself to
 * that server (never the container's packets passed on).
 *
 * Every job follows one path: job_start -> (query upstream | worker) ->
 * job_done (reply, remember the addresses) -> job_free. The relay's own
 * `resolve` rules decide which names may be looked up. Each client may
 * have RES_PER_CLIENT lookups in flight; past that its socket is not read
 * (stream) or its datagrams are dropped, so one busy container cannot
 * starve the others. Stream clients of both protocols share one record
 * (struct rcl) and one path: read, take whole messages, answer in any
 * order into the client's output, flush.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"
#include "be.h"
#include "dgmap.h"
#include "dns.h"
#include "file.h"
#include "lookup.h"
#include "proxyv2.h"
#include "resolver.h"
#include "util.h"

#define RES_PER_CLIENT 16	/* lookups in flight per client */
#define RES_PENDING_MAX 4096	/* in flight in all */
#define RES_OUT_MAX (256 * 1024)	/* replies a client leaves unread before it is dropped */
#define RES_WORKERS 4
#define RES_RETRY_MS 1000	/* a query to the server is sent again after this */
#define MEM_SLOTS 8192		/* remembered (address, name) pairs */
#define MEM_PROBE 16
#define DGRAM_BATCH 64
/*
 * EDNS0 payload sizes taken from a client's OPT record: under 512 counts as
 * 512, and 4096 at most, the starting point RFC 6891 section 6.2.5 gives
 * (both there); past that TC sends it to TCP, which carries any size.
 */
#define EDNS_SIZE_MIN DNS_UDP_MAX
#define EDNS_SIZE_MAX 4096
#define RES_IN_MAX 4096		/* a stream client's unread bytes: whole requests must fit */
_Static_assert(RES_IN_MAX >= 2 * LOOKUP_MAX, "a stream client's buffer holds a whole request and more");

enum { JT_LOOKUP = 1, JT_DNS };

struct rcl {				/* a client on a stream socket */
	int kind;			/* K_RES_CLIENT */
	int fd;
	int dns;			/* DNS over TCP, not the resolver protocol */
	int started;			/* DNS: past the point where a PROXY header may be */
	int eof;			/* it ended its sending: answer what it asked, then close */
	int64_t last;			/* DNS: when a byte last moved (the idle timeout) */
	int pending, paused, dead, want_out;
	int busy;			/* in a call that uses the record: not freed under it */
	int kicked;			/* on the kick list: may take requests again */
	struct rcl *knext;
	uint8_t in[RES_IN_MAX];
	size_t inlen;
	uint8_t *out;
	size_t olen, ocap;
	char name[64];			/* "unix:pid=N,uid=N" for messages */
	struct rcl *next, *prev;
};

struct job {
	int type;
	struct rcl *cl;			/* JT_LOOKUP, and JT_DNS over a stream */
	struct lookup_req req;
	int dfd;			/* JT_DNS on a datagram socket: the listener, and where the query came from */
	struct sockaddr_un from;
	socklen_t fromlen;
	struct dns_msg *q;
	char name[DNS_NAME_MAX];	/* the name looked up (after a diversion) */
	uint16_t qtype[2];
	uint16_t id[2];
	int nq, ndone;
	int rcode[2];
	struct dns_rr *rr;
	size_t nrr, rrcap;
	int64_t deadline, resend;
	int in_worker;
	struct job *next, *prev;	/* the pending list */
	struct job *wnext;		/* the workers' queue */
};

static struct resolver_opts opt;
static const struct ruleset *rrules;
static int ep = -1;
static struct rcl *clients;
static struct job *pending;
static long npending;
static struct rcl *kicks;	/* clients to read again once the current event is handled */
static int64_t wake = INT64_MAX;	/* the earliest resend or deadline of a job (never later) */

/* --server: one connected UDP socket; jobs by query id */
static struct { int kind; int fd; } up = { K_RES_UPSTREAM, -1 };
static struct job **byid;	/* 65536 entries; the low bit of the index is the subquery */

/* host mode: workers take jobs from a queue and hand them back through a pipe */
static struct { int kind; int fd; } done = { K_RES_DONE, -1 };
static int done_wr = -1;
static pthread_mutex_t wq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wq_cond = PTHREAD_COND_INITIALIZER;
static struct job *wq_head, *wq_tail;

static struct mem {
	uint8_t a16[16];
	int64_t until;			/* forgotten then: the TTL or --resolve-keep after the last lookup or use */
	int64_t used;			/* the last lookup or use: when the slots are full, the oldest goes */
	char name[DNS_NAME_MAX];
} *mem;

/* --- the memory of resolved addresses --------------------------------------- */

static size_t mem_hash(const uint8_t a16[16])
{
	uint64_t h = 1469598103934665603ull;
	for (int i = 0; i < 16; i++)
		h = (h ^ a16[i]) * 1099511628211ull;
	return (size_t)(h % MEM_SLOTS);
}

static void mem_add(const uint8_t a16[16], const char *name, uint32_t ttl, int64_t now)
{
	if (!mem && !(mem = calloc(MEM_SLOTS, sizeof *mem)))
		return;
	int64_t until = now + ((int64_t)ttl * 1000 > opt.keep_ms ? (int64_t)ttl * 1000 : opt.keep_ms);
	size_t h = mem_hash(a16), victim = h;
	for (size_t k = 0; k < MEM_PROBE; k++) {
		struct mem *m = &mem[(h + k) % MEM_SLOTS], *v = &mem[victim];
		if (m->until > now && !memcmp(m->a16, a16, 16) && !strcasecmp(m->name, name)) {
			if (until > m->until)
				m->until = until;
			m->used = now;
			return;
		}
		/* an expired slot if there is one, else the least recently used */
		int free_m = m->until <= now, free_v = v->until <= now;
		if (free_m > free_v || (free_m == free_v && m->used < v->used))
			victim = (h + k) % MEM_SLOTS;
	}
	struct mem *m = &mem[victim];
	memcpy(m->a16, a16, 16);
	m->until = until;
	m->used = now;
	snprintf(m->name, sizeof m->name, "%s", name);
}

void resolver_renew(const uint8_t a16[16], const char *name)
{
	mem_add(a16, name, 0, mono_ms());
}

int resolver_known(const uint8_t a16[16], const char *pattern, const char *only, char *name, size_t size)
{
	int64_t now = mono_ms();
	if (!mem)
		return 0;
	size_t h = mem_hash(a16);
	for (size_t k = 0; k < MEM_PROBE; k++) {
		const struct mem *m = &mem[(h + k) % MEM_SLOTS];
		if (m->until <= now || memcmp(m->a16, a16, 16) || !dns_name_match(pattern, m->name))
			continue;
		if (only && !dns_name_match(only, m->name))
			continue;
		snprintf(name, size, "%s", m->name);
		return 1;
	}
	return 0;
}

int resolver_seen(const uint8_t a16[16], char *name, size_t size)
{
	return resolver_known(a16, "*", NULL, name, size);
}

int resolver_addrs(const char *name, uint8_t (*a16)[16], int max)
{
	int64_t now = mono_ms();
	int n = 0;
	/* by name, not by address: a walk over the whole memory, paid only when a connect failed */
	for (size_t i = 0; mem && i < MEM_SLOTS && n < max; i++) {
		const struct mem *m = &mem[i];
		if (m->until <= now || strcasecmp(m->name, name))
			continue;
		int dup = 0;
		for (int k = 0; k < n && !dup; k++)
			dup = !memcmp(a16[k], m->a16, 16);
		if (!dup)
			memcpy(a16[n++], m->a16, 16);
	}
	return n;
}

/* --- jobs ----------------------------------------------------------------------- */

static void client_close(struct rcl *c);
static void kicks_run(void);
static void client_flush(struct rcl *c);
static void client_read(struct rcl *c);
static void client_send(struct rcl *c, const uint8_t *buf, size_t n);

/* A closed client's record goes once no job and no call uses it. */
static void client_release(struct rcl *c)
{
	if (c->dead && c->pending == 0 && c->busy == 0)
		free(c);
}

static void job_free(struct job *j)
{
	if (j->prev)
		j->prev->next = j->next;
	else if (pending == j)
		pending = j->next;
	if (j->next)
		j->next->prev = j->prev;
	npending--;
	if (byid)
		for (int i = 0; i < j->nq; i++)
			if (byid[j->id[i]] == j)
				byid[j->id[i]] = NULL;
	if (j->cl) {
		struct rcl *c = j->cl;
		c->pending--;
		/*
		 * not read here: that would let one client's answers feed its next requests forever;
		 * one that ended its sending is looked at again too, to be closed once all is answered
		 */
		if (!c->dead && (c->paused || c->eof) && c->pending < RES_PER_CLIENT && !c->kicked) {
			c->kicked = 1;
			c->busy++;
			c->knext = kicks;
			kicks = c;
		}
		client_release(c);
	}
	free(j->q);
	free(j->rr);
	free(j);
}

static int rr_add(struct job *j, const struct dns_rr *rr)
{
	if (j->nrr >= DNS_RR_MAX)
		return -1;
	/* grown as needed: most answers are a few records, a record is half a KiB */
	if (j->nrr == j->rrcap) {
		size_t cap = j->rrcap ? j->rrcap * 2 : 4;
		struct dns_rr *n = realloc(j->rr, cap * sizeof *n);
		if (!n)
			return -1;
		j->rr = n;
		j->rrcap = cap;
	}
	j->rr[j->nrr++] = *rr;
	return 0;
}

/* An A or AAAA record's address: 1, or 0 for another type. */
static int rr_addr(const struct dns_rr *rr, struct lookup_addr *x)
{
	if (rr->type != DNS_A && rr->type != DNS_AAAA)
		return 0;
	x->family = rr->type == DNS_A ? 4 : 6;
	memcpy(x->a, x->family == 4 ? rr->d.a : rr->d.aaaa, x->family == 4 ? 4 : 16);
	return 1;
}

/* The record (type and data) of an address; name, class and ttl are the caller's. */
static void rr_of_addr(struct dns_rr *rr, const struct lookup_addr *x)
{
	rr->type = x->family == 4 ? DNS_A : DNS_AAAA;
	memcpy(x->family == 4 ? rr->d.a : rr->d.aaaa, x->a, x->family == 4 ? 4 : 16);
}

static const char *client_name(const struct job *j, char *buf, size_t size)
{
	if (j->cl)
		return j->cl->name;
	if (j->fromlen > sizeof(sa_family_t) && j->from.sun_path[0])
		snprintf(buf, size, "unix:%.*s", (int)(sizeof j->from.sun_path), j->from.sun_path);
	else
		snprintf(buf, size, "an unnamed datagram socket");
	return buf;
}

/* The lookup protocol's status from what the subqueries found. */
static int lookup_status(const struct job *j, size_t naddr)
{
	int noerr = 1;
	if (naddr)
		return LOOKUP_OK;
	for (int i = 0; i < j->nq; i++) {
		if (j->rcode[i] == DNS_NXDOMAIN)
			return LOOKUP_NONAME;
		if (j->rcode[i] != DNS_NOERROR)
			noerr = 0;
	}
	if (noerr)
		return LOOKUP_NODATA;
	for (int i = 0; i < j->nq; i++)
		if (j->rcode[i] == DNS_REFUSED)
			return LOOKUP_REFUSED;
		else if (j->rcode[i] == DNS_FORMERR || j->rcode[i] == DNS_NOTIMP)
			return LOOKUP_FAIL;
	return LOOKUP_AGAIN;
}

static void reply_lookup(struct job *j, int status_override)
{
	struct lookup_rep r;
	static uint8_t buf[LOOKUP_MAX];
	uint32_t ttl = UINT32_MAX;

	memset(&r, 0, sizeof r);
	r.op = j->req.op;
	r.id = j->req.id;
	if (j->req.op == LOOKUP_NAME)
		snprintf(r.name, sizeof r.name, "%s", j->req.name);
	for (size_t i = 0; i < j->nrr; i++) {
		const struct dns_rr *rr = &j->rr[i];
		if (rr->ttl < ttl)
			ttl = rr->ttl;
		if (rr->type == DNS_CNAME && j->req.op == LOOKUP_NAME)
			snprintf(r.name, sizeof r.name, "%s", rr->d.name);
		else if (rr->type == DNS_PTR && j->req.op == LOOKUP_ADDR && !r.name[0])
			snprintf(r.name, sizeof r.name, "%s", rr->d.name);
		else if (r.naddr < LOOKUP_ADDR_MAX && rr_addr(rr, &r.addr[r.naddr]))
			r.naddr++;
	}
	r.ttl = ttl == UINT32_MAX ? 0 : ttl;
	if (status_override >= 0)
		r.status = (uint8_t)status_override;
	else if (j->req.op == LOOKUP_ADDR && r.name[0])
		r.status = LOOKUP_OK;
	else if (j->req.op == LOOKUP_ADDR)
		r.status = lookup_status(j, 0) == LOOKUP_NODATA ? LOOKUP_NONAME : (uint8_t)lookup_status(j, 0);
	else
		r.status = (uint8_t)lookup_status(j, r.naddr);
	if (r.status != LOOKUP_OK)
		r.naddr = 0;
	if (r.status != LOOKUP_OK && j->req.op == LOOKUP_ADDR)
		r.name[0] = 0;
	int n = lookup_rep_build(buf, sizeof buf, &r);
	if (n > 0)
		client_send(j->cl, buf, (size_t)n);
}

/*
 * A DNS message to whoever asked: a datagram, or over a stream after its
 * length (RFC 1035 4.2.2). msg has 2 bytes of room before it for that.
 */
static void dns_send(struct job *j, uint8_t *msg, size_t n)
{
	if (j->cl) {
		put16(msg - 2, (unsigned)n);
		client_send(j->cl, msg - 2, n + 2);
	} else if (sendto(j->dfd, msg, n, MSG_DONTWAIT, (struct sockaddr *)&j->from, j->fromlen) < 0) {
		int e = errno;
		struct sockaddr_un self, near;
		socklen_t selflen = sizeof self, nearlen;
		/*
		 * The client's path is its own view: a container that mounts our
		 * directory elsewhere, or our --chroot, leaves nothing there for
		 * us; its reply file is beside our socket all the same (dgmap.h).
		 */
		if ((e == ENOENT || e == ECONNREFUSED) &&
		    getsockname(j->dfd, (struct sockaddr *)&self, &selflen) == 0 &&
		    dgmap_beside(&j->from, j->fromlen, &self, selflen, opt.root, &near, &nearlen) == 0) {
			if (sendto(j->dfd, msg, n, MSG_DONTWAIT, (struct sockaddr *)&near, nearlen) >= 0)
				return;
			e = errno;
		}
		info("resolver: unable to answer %s: %s", j->from.sun_path[0] ? j->from.sun_path : "a client",
		     strerror(e));
	}
}

static void reply_dns(struct job *j, int rcode)
{
	static uint8_t buf[2 + DNS_TCP_MAX];
	/*
	 * over TCP an answer is whole; a datagram is cut with TC set at 512 bytes
	 * (RFC 1035 4.2.1), or at the size the query's OPT record gives (RFC 6891 6.2.3)
	 */
	size_t size = DNS_TCP_MAX;
	if (!j->cl && !j->q->opt)
		size = DNS_UDP_MAX;
	else if (!j->cl)
		size = j->q->edns_size < EDNS_SIZE_MIN ? EDNS_SIZE_MIN :
		       j->q->edns_size > EDNS_SIZE_MAX ? EDNS_SIZE_MAX : j->q->edns_size;
	int n = dns_reply_build(buf + 2, size, j->q, rcode, j->rr, rcode == DNS_NOERROR ? j->nrr : 0);
	if (n < 0)
		n = dns_reply_build(buf + 2, size, j->q, DNS_SERVFAIL, NULL, 0);
	if (n > 0)
		dns_send(j, buf + 2, (size_t)n);
}

/* A job's subqueries are all in (or it gave up): answer, remember, free. */
static void job_done(struct job *j, int timed_out)
{
	int64_t now = mono_ms();
	char cn[sizeof j->from.sun_path + 8];

	if (j->type == JT_LOOKUP && j->req.op == LOOKUP_ADDR) {
		/* a PTR answer is no address: nothing to remember */
	} else {
		for (size_t i = 0; i < j->nrr; i++) {
			const struct dns_rr *rr = &j->rr[i];
			struct lookup_addr x;
			if (!rr_addr(rr, &x))
				continue;
			uint8_t a16[16] = { [10] = 0xff, [11] = 0xff };
			memcpy(x.family == 4 ? a16 + 12 : a16, x.a, x.family == 4 ? 4 : 16);
			/* the name the client asked for, and the one the record is for */
			const char *asked = j->type == JT_LOOKUP ? j->req.name : j->q->qname;
			mem_add(a16, asked, rr->ttl, now);
			if (strcasecmp(rr->name, asked))
				mem_add(a16, rr->name, rr->ttl, now);
		}
	}
	if (verbose) {
		char what[512] = "";
		size_t o = 0;
		for (size_t i = 0; i < j->nrr && o < sizeof what - 64; i++) {
			const struct dns_rr *rr = &j->rr[i];
			char a[INET6_ADDRSTRLEN] = "";
			if (rr->type == DNS_A)
				inet_ntop(AF_INET, rr->d.a, a, sizeof a);
			else if (rr->type == DNS_AAAA)
				inet_ntop(AF_INET6, rr->d.aaaa, a, sizeof a);
			else if (rr->type == DNS_CNAME || rr->type == DNS_PTR)
				snprintf(a, sizeof a, "%.40s", rr->d.name);
			if (a[0])
				o += (size_t)snprintf(what + o, sizeof what - o, " %s", a);
		}
		info("resolver: %s for %s:%s%s", j->name, client_name(j, cn, sizeof cn),
		     timed_out ? " timed out" : j->nrr ? "" : " no answer", what);
	}
	if (j->type == JT_LOOKUP)
		reply_lookup(j, -1);
	else
		reply_dns(j, timed_out ? DNS_SERVFAIL : j->rcode[0]);
	job_free(j);
}

/* --- answers from a DNS server -------------------------------------------- */

static void up_send(struct job *j, int i)
{
	uint8_t q[DNS_NAME_MAX + 32];
	/* EDNS0, so that an answer past 512 bytes comes whole */
	int n = dns_query_build(q, sizeof q, j->id[i], j->name, j->qtype[i], DNS_EDNS_PAYLOAD);
	if (n > 0 && send(up.fd, q, (size_t)n, MSG_DONTWAIT) < 0)
		info("resolver: unable to send a query to %s: %s", opt.server, strerror(errno));
}

static int new_id(struct job *j, int i)
{
	for (int tries = 0; tries < 64; tries++) {
		uint16_t id;
		if (getrandom(&id, sizeof id, GRND_NONBLOCK) != sizeof id)
			id = (uint16_t)(mono_ms() * 2654435761u >> 7);
		if (!byid[id]) {
			byid[id] = j;
			j->id[i] = id;
			return 0;
		}
	}
	return -1;
}

static void up_read(void)
{
	uint8_t buf[65536];
	static struct dns_msg m;

	/* a bounded batch: the socket is level-triggered, the rest comes next round */
	for (int batch = 0; batch < DGRAM_BATCH; batch++) {
		ssize_t n = recv(up.fd, buf, sizeof buf, MSG_DONTWAIT);
		if (n < 0)
			return;
		if (dns_parse(buf, (size_t)n, &m) < 0 && errno != EMSGSIZE)
			continue;
		struct job *j = byid[m.id];
		if (!j || !m.qr)
			continue;
		int i = j->id[0] == m.id && !(j->ndone & 1) ? 0 : j->nq > 1 && j->id[1] == m.id && !(j->ndone & 2) ? 1 : -1;
		/* an answer must be to the question we asked (RFC 5452 section 9.1) */
		if (i < 0 || strcasecmp(m.qname, j->name) || m.qtype != j->qtype[i])
			continue;
		byid[m.id] = NULL;
		j->rcode[i] = m.rcode;
		j->ndone |= 1 << i;
		for (size_t k = 0; k < m.nan; k++)
			rr_add(j, &m.an[k]);
		if (j->ndone == (1 << j->nq) - 1)
			job_done(j, 0);
	}
}

/* --- answers from the host's resolver ------------------------------------- */

/*
 * Has the host a route to this A or AAAA record's address? connect() of a
 * UDP socket asks the kernel and sends nothing. An error that says nothing
 * about routes (no fds left) counts as yes: the address is kept.
 */
static int routable(const struct dns_rr *rr)
{
	struct sockaddr_storage ss;
	socklen_t len;

	memset(&ss, 0, sizeof ss);
	if (rr->type == DNS_A) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(9);
		memcpy(&s4->sin_addr, rr->d.a, 4);
		len = sizeof *s4;
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(9);
		memcpy(&s6->sin6_addr, rr->d.aaaa, 16);
		len = sizeof *s6;
	}
	int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), r = -1, e = errno;
	if (fd >= 0) {
		r = connect(fd, (struct sockaddr *)&ss, len);
		e = errno;
		close(fd);
	}
	return r == 0 || !(e == EAFNOSUPPORT || e == ENETUNREACH || e == EHOSTUNREACH || e == EADDRNOTAVAIL ||
			   e == ENETDOWN);
}

/*
 * AI_ADDRCONFIG's intent, address by address: of the addresses found, those
 * the host has no route to are left out, unless that is all of them (then
 * the connect's own error is the better answer). musl's AI_ADDRCONFIG only
 * asks whether each family's loopback address is routable, which an
 * IPv4-only host with ::1 on lo passes, so its AAAA answers would stay.
 */
static void drop_unroutable(struct job *j)
{
	int ok[DNS_RR_MAX], any = 0, all = 1;
	for (size_t i = 0; i < j->nrr; i++) {
		ok[i] = (j->rr[i].type != DNS_A && j->rr[i].type != DNS_AAAA) || routable(&j->rr[i]);
		if (j->rr[i].type == DNS_A || j->rr[i].type == DNS_AAAA) {
			any |= ok[i];
			all &= ok[i];
		}
	}
	if (!any || all)
		return;
	size_t n = 0;
	for (size_t i = 0; i < j->nrr; i++)
		if (ok[i])
			j->rr[n++] = j->rr[i];
	j->nrr = n;
}

static void host_run(struct job *j)
{
	struct dns_rr rr;

	memset(&rr, 0, sizeof rr);
	rr.class = DNS_IN;
	rr.ttl = opt.host_ttl;
	j->rcode[0] = j->rcode[1] = DNS_NOERROR;
	if (j->qtype[0] == DNS_PTR) {
		uint8_t a[16];
		int al = dns_ptr_addr(j->name, a);
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof ss);
		socklen_t sl;
		if (al == 4) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			memcpy(&s4->sin_addr, a, 4);
			sl = sizeof *s4;
		} else if (al == 16) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			memcpy(&s6->sin6_addr, a, 16);
			sl = sizeof *s6;
		} else {
			j->rcode[0] = DNS_NXDOMAIN;
			return;
		}
		char host[NI_MAXHOST];
		int r = getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL, 0, NI_NAMEREQD);
		if (r == 0 && dns_name_ok(host)) {
			snprintf(rr.name, sizeof rr.name, "%s", j->name);
			rr.type = DNS_PTR;
			snprintf(rr.d.name, sizeof rr.d.name, "%.253s", host);
			rr_add(j, &rr);
		} else {
			j->rcode[0] = r == EAI_AGAIN ? DNS_SERVFAIL : DNS_NXDOMAIN;
		}
		return;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_CANONNAME }, *res = NULL;
	hints.ai_family = j->nq == 2 ? AF_UNSPEC : j->qtype[0] == DNS_AAAA ? AF_INET6 : AF_INET;
	int r = getaddrinfo(j->name, NULL, &hints, &res);
	if (r) {
		int rc = r == EAI_NONAME ? DNS_NXDOMAIN : r == EAI_AGAIN ? DNS_SERVFAIL :
#ifdef EAI_NODATA
			 r == EAI_NODATA ? DNS_NOERROR :
#endif
			 DNS_SERVFAIL;
		j->rcode[0] = j->rcode[1] = rc;
		return;
	}
	const char *owner = j->name;
	if (res->ai_canonname && strcasecmp(res->ai_canonname, j->name) && dns_name_ok(res->ai_canonname)) {
		snprintf(rr.name, sizeof rr.name, "%s", j->name);
		rr.type = DNS_CNAME;
		snprintf(rr.d.name, sizeof rr.d.name, "%s", res->ai_canonname);
		rr_add(j, &rr);
		owner = res->ai_canonname;
	}
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		snprintf(rr.name, sizeof rr.name, "%s", owner);
		if (ai->ai_family == AF_INET) {
			rr.type = DNS_A;
			memcpy(rr.d.a, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
		} else if (ai->ai_family == AF_INET6) {
			rr.type = DNS_AAAA;
			memcpy(rr.d.aaaa, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
		} else {
			continue;
		}
		int dup = 0;
		for (size_t k = 0; k < j->nrr; k++)
			dup |= j->rr[k].type == rr.type && !memcmp(&j->rr[k].d, &rr.d, rr.type == DNS_A ? 4 : 16);
		if (!dup)
			rr_add(j, &rr);
	}
	freeaddrinfo(res);
	drop_unroutable(j);
}

static void *worker(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&wq_lock);
		while (!wq_head)
			pthread_cond_wait(&wq_cond, &wq_lock);
		struct job *j = wq_head;
		wq_head = j->wnext;
		if (!wq_head)
			wq_tail = NULL;
		pthread_mutex_unlock(&wq_lock);
		host_run(j);
		ssize_t w;
		do
			w = write(done_wr, &j, sizeof j);
		while (w < 0 && errno == EINTR);
	}
	return NULL;
}

static void done_read(void)
{
	struct job *js[64];
	for (;;) {
		ssize_t n = read(done.fd, js, sizeof js);
		if (n <= 0)
			return;
		for (size_t i = 0; i < (size_t)n / sizeof js[0]; i++) {
			js[i]->in_worker = 0;
			js[i]->ndone = (1 << js[i]->nq) - 1;
			job_done(js[i], 0);
		}
	}
}

/* --- starting a job ---------------------------------------------------------- */

/* Fixed answers of a `resolve NAME -> ADDR,...` rule, as A/AAAA records. */
static void fixed_answers(struct job *j, const char *list, const char *owner)
{
	struct lookup_addr a[LOOKUP_LIST_MAX];
	struct dns_rr rr;
	int n = lookup_addr_list(list, a);

	memset(&rr, 0, sizeof rr);
	rr.class = DNS_IN;
	rr.ttl = opt.host_ttl;
	snprintf(rr.name, sizeof rr.name, "%s", owner);
	for (int k = 0; k < n; k++) {
		rr_of_addr(&rr, &a[k]);
		for (int i = 0; i < j->nq; i++)
			if (j->qtype[i] == rr.type)
				rr_add(j, &rr);
	}
}

/*
 * Look j->name up for the types in j->qtype. Returns 0 when under way (or
 * answered), -1 with the job already answered and freed.
 */
static void job_start(struct job *j)
{
	char cn[sizeof j->from.sun_path + 8];
	int64_t now = mono_ms();

	j->next = pending;
	if (pending)
		pending->prev = j;
	pending = j;
	npending++;
	if (j->cl)
		j->cl->pending++;

	/* the relay's resolve rules: what may be looked up, diversions, fixed answers */
	const struct rule *r = NULL;
	int has_resolve = 0;
	for (size_t i = 0; rrules && i < rrules->n && !has_resolve; i++)
		has_resolve = rrules->rule[i].dir == RULE_RESOLVE;
	if (has_resolve && j->qtype[0] != DNS_PTR) {
		r = rules_match_name(rrules, j->name);
		if (!r || r->action == ACT_REJECT || r->action == ACT_UNIX || r->action == ACT_ABSTRACT) {
			warn("resolver: refused to resolve %s for %s: %s", j->name, client_name(j, cn, sizeof cn),
			     r ? "a resolve rule rejects it" : "no resolve rule allows it");
			for (int i = 0; i < j->nq; i++)
				j->rcode[i] = DNS_REFUSED;
			if (j->type == JT_LOOKUP)
				reply_lookup(j, LOOKUP_REFUSED);
			else
				reply_dns(j, DNS_REFUSED);
			job_free(j);
			return;
		}
		if (r->action == ACT_ADDRS) {
			fixed_answers(j, rrules->str + r->arg, j->name);
			j->ndone = (1 << j->nq) - 1;
			job_done(j, 0);
			return;
		}
		if (r->action == ACT_DIVERT) {
			/* the answer says so: the asked name is a CNAME of the other */
			struct dns_rr rr;
			memset(&rr, 0, sizeof rr);
			snprintf(rr.name, sizeof rr.name, "%s", j->name);
			rr.type = DNS_CNAME;
			rr.class = DNS_IN;
			rr.ttl = opt.host_ttl;
			snprintf(rr.d.name, sizeof rr.d.name, "%s", rrules->str + r->arg);
			rr_add(j, &rr);
			snprintf(j->name, sizeof j->name, "%s", rrules->str + r->arg);
		}
	}
	j->deadline = now + opt.timeout_ms;
	if (up.fd >= 0) {
		for (int i = 0; i < j->nq; i++) {
			if (new_id(j, i) < 0) {
				j->nq = i;
				break;
			}
		}
		if (j->nq == 0) {
			j->rcode[0] = DNS_SERVFAIL;
			job_done(j, 1);
			return;
		}
		for (int i = 0; i < j->nq; i++)
			up_send(j, i);
		j->resend = now + RES_RETRY_MS;
		if (j->resend < wake)
			wake = j->resend;
		return;
	}
	j->in_worker = 1;
	j->wnext = NULL;
	pthread_mutex_lock(&wq_lock);
	if (wq_tail)
		wq_tail->wnext = j;
	else
		wq_head = j;
	wq_tail = j;
	pthread_cond_signal(&wq_cond);
	pthread_mutex_unlock(&wq_lock);
}

int64_t resolver_wake(void)
{
	return wake;
}

void resolver_sweep(int64_t now)
{
	int64_t next = INT64_MAX;
	for (struct job *j = pending, *nx; j; j = nx) {
		nx = j->next;
		if (j->in_worker)
			continue;	/* getaddrinfo() cannot be stopped; the client has its own timeout */
		if (now >= j->deadline) {
			for (int i = 0; i < j->nq; i++)
				if (!(j->ndone & (1 << i)))
					j->rcode[i] = DNS_SERVFAIL;
			job_done(j, 1);
			continue;
		}
		if (now >= j->resend) {
			for (int i = 0; i < j->nq; i++)
				if (!(j->ndone & (1 << i)))
					up_send(j, i);
			j->resend = now + RES_RETRY_MS;
		}
		int64_t t = j->resend < j->deadline ? j->resend : j->deadline;
		if (t < next)
			next = t;
	}
	/* DNS over TCP: a connection with nothing asked and nothing moving is closed (RFC 7766 6.2.3) */
	for (struct rcl *c = clients, *nx; c; c = nx) {
		nx = c->next;
		if (!c->dns)
			continue;
		if (c->pending)
			c->last = now;	/* waiting for us is not idle */
		if (now - c->last >= opt.tcp_idle_ms) {
			if (verbose)
				info("resolver: %s idle for %lld ms: closing it", c->name, (long long)(now - c->last));
			client_close(c);
			client_release(c);
			continue;
		}
		if (c->last + opt.tcp_idle_ms < next)
			next = c->last + opt.tcp_idle_ms;
	}
	wake = next;
	kicks_run();
}

/* --- stream clients (the resolver protocol, DNS over TCP) ------------------ */

static void client_ep(struct rcl *c)
{
	/* not read after its end of file: level-triggered EPOLLIN/RDHUP would come back at once */
	uint32_t in = c->paused || c->eof ? 0 : EPOLLIN | EPOLLRDHUP;
	struct epoll_event ev = { .events = in | (c->want_out ? EPOLLOUT : 0), .data.ptr = c };
	epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static void client_close(struct rcl *c)
{
	if (c->dead)
		return;
	c->dead = 1;
	epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->out);
	c->out = NULL;
	c->olen = 0;
	/* jobs in flight keep the record until they end: client_release() */
}

/*
 * One send (out) or recv on a client's socket: the bytes moved, 0 when the
 * socket is not ready or (recv) at the client's end of file, which sets
 * c->eof, or -1 once the client is closed (an error).
 */
static ssize_t client_io(struct rcl *c, int out, void *buf, size_t len)
{
	for (;;) {
		ssize_t n = out ? send(c->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL) : recv(c->fd, buf, len, MSG_DONTWAIT);
		if (n > 0) {
			c->last = mono_ms();
			return n;
		}
		if (n == 0 && !out) {
			c->eof = 1;
			client_ep(c);
			return 0;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		client_close(c);
		return -1;
	}
}

/* A client that ended its sending is closed once everything it asked is answered and sent. */
static void client_end_check(struct rcl *c)
{
	if (c->dead || !c->eof || c->pending || c->olen)
		return;
	if (c->inlen)
		warn("resolver: %s ended its connection inside a %s: closing it", c->name,
		     c->dns ? "DNS message" : "request");
	client_close(c);
}

static void client_flush(struct rcl *c)
{
	size_t off = 0;
	while (off < c->olen) {
		ssize_t n = client_io(c, 1, c->out + off, c->olen - off);
		if (n < 0)
			return;
		if (n == 0)
			break;
		off += (size_t)n;
	}
	memmove(c->out, c->out + off, c->olen - off);
	c->olen -= off;
	int want = c->olen > 0;
	if (want != c->want_out) {
		c->want_out = want;
		client_ep(c);
	}
	client_end_check(c);
}

/* An answer for a stream client: queued behind the others, sent as far as the socket takes it. */
static void client_send(struct rcl *c, const uint8_t *buf, size_t n)
{
	if (c->dead)
		return;
	if (c->olen + n > RES_OUT_MAX) {
		warn("resolver: %s leaves its answers unread: closing it", c->name);
		client_close(c);
		return;
	}
	if (c->olen + n > c->ocap) {
		size_t cap = c->ocap ? c->ocap * 2 : 4096;
		while (cap < c->olen + n)
			cap *= 2;
		uint8_t *nb = realloc(c->out, cap);
		if (!nb) {
			client_close(c);
			return;
		}
		c->out = nb;
		c->ocap = cap;
	}
	memcpy(c->out + c->olen, buf, n);
	c->olen += n;
	client_flush(c);
}

static struct job *job_new(void)
{
	if (npending >= RES_PENDING_MAX)
		return NULL;
	return calloc(1, sizeof(struct job));
}

static int dns_job(struct job *j, const uint8_t *msg, size_t len);

/*
 * DNS over TCP from a `connect tcp *:53 -> unix PATH proxy-v2` rule starts
 * with a PROXY v2 header, skipped as on the datagram listener. Returns the
 * header's length (0: there is none), -1 while more must arrive to tell,
 * -2 once the client is closed (a malformed header).
 */
static long client_proxy(struct rcl *c)
{
	size_t k = c->inlen < PROXY_V2_SIGLEN ? c->inlen : PROXY_V2_SIGLEN;
	struct proxy_hdr h;
	size_t n;

	if (memcmp(c->in, PROXY_V2_SIG, k)) {
		c->started = 1;
		return 0;
	}
	if (k < PROXY_V2_SIGLEN)
		return -1;
	int r = proxyv2_parse(c->in, c->inlen, &h, &n);
	if (r == PROXY_DONE) {
		c->started = 1;
		return (long)n;
	}
	if (r == PROXY_NEED && c->inlen + n <= sizeof c->in)
		return -1;
	warn("resolver: %s sent %s PROXY header: closing it", c->name, r == PROXY_NEED ? "too long a" : "a malformed");
	client_close(c);
	return -2;
}

/* One DNS message from the stream into a job: 1 taken, 0 not (more must arrive, or no room), -1 closed. */
static int take_dns(struct rcl *c, size_t *off)
{
	size_t ml;
	int k = dns_tcp_frame(c->in + *off, c->inlen - *off, sizeof c->in - 2, &ml);
	if (k < 0) {
		/* the stream cannot be followed past a length we do not take */
		warn("resolver: %s sent a DNS message length of %u (12 to %zu taken): closing it", c->name,
		     get16(c->in + *off), sizeof c->in - 2);
		client_close(c);
		return -1;
	}
	struct job *j;
	if (k == 0 || !(j = job_new()))
		return 0;
	j->cl = c;
	*off += 2 + ml;
	if (dns_job(j, c->in + *off - ml, ml) == 0)
		job_start(j);
	return 1;
}

/* One request of the resolver protocol into a job; as take_dns(). */
static int take_lookup(struct rcl *c, size_t *off)
{
	struct lookup_req q;
	size_t used;
	int k = lookup_req_parse(c->in + *off, c->inlen - *off, &q, &used);
	if (k == LOOKUP_NEED)
		return 0;
	if (k < 0) {
		warn("resolver: %s sent a malformed request: closing it", c->name);
		client_close(c);
		return -1;
	}
	struct job *j = job_new();
	if (!j)
		return 0;
	*off += used;
	j->type = JT_LOOKUP;
	j->cl = c;
	j->req = q;
	if (q.op == LOOKUP_NAME) {
		snprintf(j->name, sizeof j->name, "%s", q.name);
		if (q.family == 4 || q.family == 6) {
			j->qtype[0] = q.family == 4 ? DNS_A : DNS_AAAA;
			j->nq = 1;
		} else {
			j->qtype[0] = DNS_A;
			j->qtype[1] = DNS_AAAA;
			j->nq = 2;
		}
	} else {
		dns_ptr_name(q.addr, q.alen, j->name, sizeof j->name);
		j->qtype[0] = DNS_PTR;
		j->nq = 1;
	}
	job_start(j);
	return 1;
}

/* Take the complete requests that have arrived, as many as the client may have in flight. */
static void client_take(struct rcl *c)
{
	size_t off = 0;
	if (c->dns && !c->started) {
		long h = client_proxy(c);
		if (h < 0)
			return;
		off = (size_t)h;
	}
	while (!c->dead && c->pending < RES_PER_CLIENT)
		if ((c->dns ? take_dns(c, &off) : take_lookup(c, &off)) <= 0)
			break;
	if (c->dead)
		return;
	memmove(c->in, c->in + off, c->inlen - off);
	c->inlen -= off;
	int pause = c->pending >= RES_PER_CLIENT || npending >= RES_PENDING_MAX;
	if (pause != c->paused) {
		c->paused = pause;
		client_ep(c);
	}
}

static void client_read(struct rcl *c)
{
	c->busy++;
	client_take(c);
	/* one read per wake-up at most: others get their turn */
	if (!c->dead && !c->paused && !c->eof && c->inlen < sizeof c->in) {
		ssize_t n = client_io(c, 0, c->in + c->inlen, sizeof c->in - c->inlen);
		if (n > 0) {
			c->inlen += (size_t)n;
			client_take(c);
		}
	}
	client_end_check(c);
	c->busy--;
}

void resolver_accept(int lfd, const char *lname, int dns)
{
	for (int i = 0; i < 64; i++) {
		int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
				warn_sys("resolver: unable to accept on %s", lname);
			return;
		}
		struct rcl *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->kind = K_RES_CLIENT;
		c->fd = fd;
		c->dns = dns;
		c->last = mono_ms();
		struct ucred uc;
		socklen_t ul = sizeof uc;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) == 0 && uc.pid > 0)
			snprintf(c->name, sizeof c->name, "unix:pid=%ld,uid=%ld", (long)uc.pid, (long)uc.uid);
		else
			snprintf(c->name, sizeof c->name, "a client of %.40s", lname);
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.ptr = c };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = clients;
		if (clients)
			clients->prev = c;
		clients = c;
		if (dns && c->last + opt.tcp_idle_ms < wake)
			wake = c->last + opt.tcp_idle_ms;
	}
}

/* --- DNS messages ----------------------------------------------------------------- */

/*
 * A DNS query into job j, whose stream client or datagram sender is set:
 * 0 when it is to be looked up (job_start), or -1 when it was answered at
 * once (FORMERR, NOTIMP) or dropped, and j freed.
 */
static int dns_job(struct job *j, const uint8_t *msg, size_t len)
{
	j->type = JT_DNS;
	if (!(j->q = malloc(sizeof *j->q)) || dns_parse(msg, len, j->q) < 0 || j->q->qr || j->q->qdcount != 1) {
		if (j->q && len >= 12) {
			/* answer FORMERR with the header alone (RFC 1035 4.1.1) */
			uint8_t r[2 + 12];
			memcpy(r + 2, msg, 12);
			r[4] = (uint8_t)((r[4] & 0x79) | 0x80);
			r[5] = 0x80 | DNS_FORMERR;
			memset(r + 6, 0, 8);
			dns_send(j, r + 2, 12);
		}
		free(j->q);
		free(j);
		return -1;
	}
	snprintf(j->name, sizeof j->name, "%s", j->q->qname);
	j->qtype[0] = j->q->qtype;
	j->nq = 1;
	if (j->q->opt && j->q->edns_version != 0) {
		reply_dns(j, DNS_BADVERS);	/* only version 0 exists (RFC 6891 section 6.1.3) */
		free(j->q);
		free(j);
		return -1;
	}
	int t = j->q->qtype;
	if (j->q->opcode != 0 || j->q->qclass != DNS_IN ||
	    !(t == DNS_A || t == DNS_AAAA || t == DNS_PTR || t == DNS_CNAME || t == DNS_SRV) ||
	    (up.fd < 0 && (t == DNS_CNAME || t == DNS_SRV))) {
		reply_dns(j, DNS_NOTIMP);
		free(j->q);
		free(j);
		return -1;
	}
	return 0;
}

static int sender_pending(const struct sockaddr_un *from, socklen_t len)
{
	int n = 0;
	for (struct job *j = pending; j; j = j->next)
		if (j->type == JT_DNS && !j->cl && j->fromlen == len && !memcmp(&j->from, from, len))
			n++;
	return n;
}

void resolver_dgram(int fd, const char *lname)
{
	uint8_t buf[4096];

	(void)lname;
	for (int i = 0; i < DGRAM_BATCH; i++) {
		struct job *j = NULL;
		struct sockaddr_un from;
		socklen_t fl = sizeof from;
		memset(&from, 0, sizeof from);
		ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
		if (n < 0)
			return;
		size_t off = 0;
		/* a PROXY v2 header in front (a rule with proxy-v2): skip it */
		if (n >= 16 && !memcmp(buf, PROXY_V2_SIG, PROXY_V2_SIGLEN)) {
			struct proxy_hdr h;
			if (proxyv2_parse(buf, (size_t)n, &h, &off) != PROXY_DONE)
				continue;
		}
		if (sender_pending(&from, fl) >= RES_PER_CLIENT || !(j = job_new()))
			continue;	/* as a loaded server would: the client asks again */
		j->dfd = fd;
		j->from = from;
		j->fromlen = fl;
		if (dns_job(j, buf + off, (size_t)n - off) == 0)
			job_start(j);
	}
}

/* --- setup ---------------------------------------------------------------------- */

void resolver_rules(const struct ruleset *rs)
{
	rrules = rs;
}

/* Clients whose answers went out read their next requests, once each. */
static void kicks_run(void)
{
	struct rcl *list = kicks;
	kicks = NULL;
	while (list) {
		struct rcl *c = list;
		list = c->knext;
		c->kicked = 0;
		c->busy--;
		if (!c->dead) {
			c->busy++;
			client_read(c);
			c->busy--;
		}
		client_release(c);
	}
}

void resolver_event(void *obj, uint32_t events)
{
	int kind = *(int *)obj;
	if (kind == K_RES_UPSTREAM) {
		up_read();
	} else if (kind == K_RES_DONE) {
		done_read();
	} else if (kind == K_RES_CLIENT) {
		struct rcl *c = obj;
		if (c->dead)
			return;
		c->busy++;
		if (c->eof && (events & (EPOLLHUP | EPOLLERR)))
			client_close(c);	/* gone both ways: its answers have nowhere to go */
		if (!c->dead && (events & EPOLLOUT))
			client_flush(c);
		if (!c->dead && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			client_read(c);
		c->busy--;
		client_release(c);
	}
	kicks_run();
}

void resolver_setup(int epfd, const struct resolver_opts *o)
{
	opt = *o;
	ep = epfd;
	if (opt.server) {
		struct sg_addr a;
		if (addr_parse_inet(opt.server, &a) < 0)
			die(EX_BADINPUT, "--dns-server %s: expected ADDR:PORT, e.g. 127.0.0.1:53 or [::1]:53", opt.server);
		if ((up.fd = socket(a.u.sa.sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
			die_sys("unable to create a socket for the DNS server");
		if (connect(up.fd, &a.u.sa, a.len) < 0)
			die_sys("unable to connect to DNS server %s", opt.server);
		if (!(byid = calloc(65536, sizeof *byid)))
			die_sys("unable to allocate");
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &up };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, up.fd, &ev) < 0)
			die_sys("unable to add the DNS socket to epoll");
		return;
	}
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die_sys("unable to create a pipe");
	done.fd = p[0];
	done_wr = p[1];
	fcntl(done.fd, F_SETFL, O_NONBLOCK);
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &done };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, done.fd, &ev) < 0)
		die_sys("unable to add the resolver's pipe to epoll");
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < RES_WORKERS; i++) {
		pthread_t t;
		pthread_attr_t at;
		pthread_attr_init(&at);
		pthread_attr_setstacksize(&at, 256 * 1024);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		int e = pthread_create(&t, &at, worker, NULL);
		pthread_attr_destroy(&at);
		if (e) {
			errno = e;
			die_sys("unable to start a resolver thread");
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void resolver_free(void)
{
	while (clients) {
		struct rcl *c = clients;
		client_close(c);
		client_release(c);
	}
	for (struct job *j = pending, *nx; j; j = nx) {
		nx = j->next;
		if (!j->in_worker)
			job_free(j);
	}
	free(byid);
	byid = NULL;
	free(mem);
	mem = NULL;
}
