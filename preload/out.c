/*
 * The outgoing side: connect() and sendto() of AF_INET/AF_INET6 sockets
 * whose destination matches a connect rule (libsockgate(7)).
 *
 * A redirected stream socket is made as a new socket of the target's family,
 * connected, given the PROXY header (haproxy proxy-protocol.txt, section 2.2,
 * or 2.1 for v1) and then put behind the program's fd number with dup3(),
 * carrying O_NONBLOCK, FD_CLOEXEC, changed SOL_SOCKET options and epoll
 * registrations. On failure the program's fd is left as it was.
 *
 * A non-blocking caller never waits. When the AF_UNIX listener's backlog is
 * full (EAGAIN, which no TCP program expects), or a TCP target with a PROXY
 * header is still connecting, the program's fd becomes the read end of a
 * pipe, which poll/select/epoll report neither writable nor readable, and
 * connect() says EINPROGRESS. A helper thread then makes a blocking connect
 * (woken by the kernel as soon as the listener accepts), writes the header,
 * and swaps the connected socket in; closing the pipe's write end wakes
 * pollers, which look the fd up again and find it writable, with SO_ERROR 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "proxyv2.h"
#include "real.h"
#include "sg.h"

#define CONNECT_TIMEOUT_S 120	/* a pending connect gives up (ETIMEDOUT) like TCP's SYN retries */
#define HDR_MAX 1024

static int unix_errno(int e)
{
	/* a TCP program knows "nobody listens there" as ECONNREFUSED */
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case ECONNREFUSED:
	case EPROTOTYPE:
	case ENOTSOCK:
		return ECONNREFUSED;
	}
	return e;
}

static socklen_t inet_len(int fam)
{
	return fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* IPv4-mapped IPv6 becomes plain IPv4 (for matching, templates, headers). */
static void canon(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof *out);
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (addr_is_v4mapped(s6->sin6_addr.s6_addr)) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)out;
			s4->sin_family = AF_INET;
			s4->sin_port = s6->sin6_port;
			memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
			return;
		}
		memcpy(out, sa, sizeof *s6);
		return;
	}
	memcpy(out, sa, sizeof(struct sockaddr_in));
}

static int is_any(const struct sockaddr_storage *ss)
{
	static const uint8_t zero[16];
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == 0;
	if (ss->ss_family == AF_INET6)
		return !memcmp(((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr, zero, 16);
	return 1;
}

static void zero_addr(int fam, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	ss->ss_family = (sa_family_t)fam;
	*len = inet_len(fam);
}

/* Where the rule sends this destination. -1 with ENAMETOOLONG / EINVAL. */
static int target(const struct ruleset *rs, const struct rule *r, const struct sockaddr *dst, struct sg_addr *ta)
{
	char path[sizeof ta->u.un.sun_path + 1];
	const char *arg = rules_str(rs, r->arg);

	switch (r->action) {
	case ACT_UNIX:
	case ACT_ABSTRACT:
		if (!arg || rules_expand(arg, dst, path, sizeof path) < 0)
			return -1;
		return addr_unix(ta, path, r->action == ACT_ABSTRACT);
	case ACT_TCP:
		if (!arg)
			return errno = EINVAL, -1;
		return addr_parse_inet(arg, ta);
	case ACT_NAT64: {
		struct sg_prefix p;
		if (!arg || prefix_parse(arg, &p) < 0)
			return errno = EINVAL, -1;
		memset(ta, 0, sizeof *ta);
		ta->u.in6.sin6_family = AF_INET6;
		memcpy(ta->u.in6.sin6_addr.s6_addr, p.addr, 12);
		if (dst->sa_family == AF_INET) {
			memcpy(ta->u.in6.sin6_addr.s6_addr + 12, &((const struct sockaddr_in *)dst)->sin_addr, 4);
			ta->u.in6.sin6_port = ((const struct sockaddr_in *)dst)->sin_port;
		} else {
			/* already IPv6: nothing to translate */
			memcpy(&ta->u.in6, dst, sizeof ta->u.in6);
		}
		ta->len = sizeof ta->u.in6;
		return 0;
	}
	}
	errno = EINVAL;
	return -1;
}

/* The source address routing would pick for dst (port 0), or -1. */
static int route_src(const struct sockaddr *dst, struct sockaddr_storage *out)
{
	int s = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	socklen_t l = sizeof *out;
	int r = -1;

	if (s < 0)
		return -1;
	if (REAL(connect)(s, dst, inet_len(dst->sa_family)) == 0 &&
	    REAL(getsockname)(s, (struct sockaddr *)out, &l) == 0) {
		if (out->ss_family == AF_INET)
			((struct sockaddr_in *)out)->sin_port = 0;
		else
			((struct sockaddr_in6 *)out)->sin6_port = 0;
		r = 0;
	}
	REAL(close)(s);
	return r;
}

/* Convert an inet address to family fam (IPv4 <-> ::ffff:IPv4); 0 or -1. */
static int to_family(struct sockaddr_storage *ss, int fam)
{
	struct sockaddr_storage t;
	if (ss->ss_family == fam)
		return 0;
	if (fam == AF_INET6 && ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t;
		memset(&t, 0, sizeof t);
		s6->sin6_family = AF_INET6;
		s6->sin6_port = s4->sin_port;
		s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(s6->sin6_addr.s6_addr + 12, &s4->sin_addr, 4);
		*ss = t;
		return 0;
	}
	if (fam == AF_INET && ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		if (!addr_is_v4mapped(s6->sin6_addr.s6_addr) && !is_any(ss))
			return -1;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&t;
		memset(&t, 0, sizeof t);
		s4->sin_family = AF_INET;
		s4->sin_port = s6->sin6_port;
		memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		*ss = t;
		return 0;
	}
	return -1;
}

/* The source address for a header and getsockname(): configured, bound, routed, or zero. */
static void pick_local(struct sgconn *c, const struct ruleset *rs, const struct rule *r,
		       const struct sockaddr *dst, int route)
{
	const char *src = r ? rules_str(rs, r->source) : NULL;
	struct sg_addr a;

	if (src && addr_parse_inet(src, &a) == 0) {
		memcpy(&c->local, &a.u.ss, sizeof c->local);
	} else if (c->local_known) {
		return;
	} else if (!route || route_src(dst, &c->local) < 0) {
		zero_addr(c->family, &c->local, &c->locallen);
		c->local_known = 1;
		return;
	}
	if (to_family(&c->local, c->family) < 0)
		zero_addr(c->family, &c->local, &c->locallen);
	c->locallen = inet_len(c->family);
	c->local_known = 1;
}

/* Build the PROXY header for a connection from c->local to dst; length or -1. */
static int build_header(const struct sgconn *c, const struct rule *r, const struct sockaddr *dst,
			int socktype, unsigned char *buf, size_t size)
{
	struct proxy_hdr h;
	struct sockaddr_storage d, s;

	memset(&h, 0, sizeof h);
	canon(dst, &d);
	s = c->local;
	if (to_family(&s, d.ss_family) < 0)
		zero_addr(d.ss_family, &s, &(socklen_t){ 0 });
	h.version = (r->flags & RULE_F_PROXY_V1) ? 1 : 2;
	h.command = PROXY_CMD_PROXY;
	h.socktype = socktype;
	h.src = s;
	h.dst = d;
	h.srclen = h.dstlen = inet_len(d.ss_family);
	if (h.version == 1)
		return proxyv1_build((char *)buf, size, &h);
	if (gai_lookup(dst, h.authority, sizeof h.authority))
		h.authority_len = strlen(h.authority);
	if (r->flags & RULE_F_NETNS) {
		ssize_t n = readlink("/proc/self/ns/net", h.netns, sizeof h.netns - 1);
		if (n > 0) {
			h.netns[n] = 0;
			h.netns_len = (size_t)n;
		}
	}
	return proxyv2_build(buf, size, &h, (r->flags & RULE_F_CRC32C) ? PROXYV2_CRC32C : 0);
}

/*
 * SOL_SOCKET options the program changed on its socket, carried to the new
 * one: compared with a fresh socket of the same kind (cached), so only what
 * the program set is copied.
 */
static const int copy_opts[] = { SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_LINGER, SO_RCVTIMEO_OLD,
				 SO_SNDTIMEO_OLD, SO_PRIORITY, SO_RCVLOWAT, SO_MARK, SO_PASSCRED };
#define NOPTS (sizeof copy_opts / sizeof copy_opts[0])
static struct optdef {
	int done;
	socklen_t len[NOPTS];
	unsigned char val[NOPTS][16];
} optdefs[2][2];	/* [v6][dgram] */

static void carry_opts(int from, int to, int fam, int type)
{
	struct optdef *d = &optdefs[fam == AF_INET6][type == SOCK_DGRAM];
	unsigned char v[16];

	if (!__atomic_load_n(&d->done, __ATOMIC_ACQUIRE)) {
		int s = socket(fam, type | SOCK_CLOEXEC, 0);
		if (s < 0)
			return;
		struct optdef t;
		memset(&t, 0, sizeof t);
		for (size_t i = 0; i < NOPTS; i++) {
			t.len[i] = sizeof t.val[i];
			if (REAL(getsockopt)(s, SOL_SOCKET, copy_opts[i], t.val[i], &t.len[i]) < 0)
				t.len[i] = 0;
		}
		REAL(close)(s);
		pthread_mutex_lock(&sg_lock);
		if (!d->done) {
			memcpy(d->len, t.len, sizeof t.len);
			memcpy(d->val, t.val, sizeof t.val);
			__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&sg_lock);
	}
	for (size_t i = 0; i < NOPTS; i++) {
		socklen_t l = sizeof v;
		if (!d->len[i] || REAL(getsockopt)(from, SOL_SOCKET, copy_opts[i], v, &l) < 0 ||
		    (l == d->len[i] && !memcmp(v, d->val[i], l)))
			continue;
		if ((copy_opts[i] == SO_SNDBUF || copy_opts[i] == SO_RCVBUF) && l == sizeof(int)) {
			int x;
			memcpy(&x, v, sizeof x);
			x /= 2;	/* the kernel doubled what was set */
			memcpy(v, &x, sizeof x);
		}
		REAL(setsockopt)(to, SOL_SOCKET, copy_opts[i], v, l);
	}
}

static void set_inode(struct sgconn *c, int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0)
		c->ino = st.st_ino;
}

/*
 * Under sg_lock: put newfd behind fd with fd's file status flags and
 * close-on-exec, moving epoll registrations along. Does not close newfd.
 */
static int put_behind(int fd, int newfd, int fl, int cloexec)
{
	struct stat st;
	struct epreg regs[16];
	int n = 0;

	if ((fd_flags(fd) & SF_EPREG) && fstat(fd, &st) == 0)
		n = ep_capture(fd, st.st_ino, regs, 16);
	if (REAL(dup3)(newfd, fd, cloexec ? O_CLOEXEC : 0) < 0)
		return -1;
	if (fl >= 0)
		REAL(fcntl)(fd, F_SETFL, fl);
	ep_restore(fd, regs, n);
	return 0;
}

/* Swap newfd in for fd and record c with flags. Closes newfd. */
int sg_swap_in(int fd, int newfd, struct sgconn *c, unsigned flags)
{
	int fl = REAL(fcntl)(fd, F_GETFL);
	int fdfl = REAL(fcntl)(fd, F_GETFD);

	pthread_mutex_lock(&sg_lock);
	int r = put_behind(fd, newfd, fl, fdfl >= 0 && (fdfl & FD_CLOEXEC));
	if (r == 0) {
		set_inode(c, fd);
		if (slot_set(fd, c, flags) < 0)
			r = -1;
	}
	pthread_mutex_unlock(&sg_lock);
	int e = errno;
	REAL(close)(newfd);
	errno = e;
	return r;
}

static int send_all(int s, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t w = REAL(send)(s, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- the helper thread for connects that cannot complete at once ---------- */

struct job {
	struct sgconn *c;
	int s;			/* our socket, connecting */
	struct sg_addr ta;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cancelled(struct sgconn *c)
{
	pthread_mutex_lock(&sg_lock);
	int r = c->refs <= 1;	/* only the helper still holds it: every fd was closed */
	pthread_mutex_unlock(&sg_lock);
	return r;
}

static void finish(struct job *j, int err)
{
	struct sgconn *c = j->c;
	int newfd = j->s;

	if (err) {
		REAL(close)(j->s);
		newfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	pthread_mutex_lock(&sg_lock);
	if (c->refs > 1 && newfd >= 0) {
		ino_t ph = c->ino, nino = 0;
		struct stat st;
		if (fstat(newfd, &st) == 0)
			nino = st.st_ino;
		for (unsigned k = 0; k < CHUNK_N; k++) {
			struct slot *sl = sg_chunks[k];
			if (!sl)
				continue;
			for (unsigned i = 0; i < SLOT_N; i++) {
				if (sl[i].conn != c)
					continue;
				int fd = (int)(k * SLOT_N + i);
				if (fstat(fd, &st) < 0 || st.st_ino != ph)
					continue;	/* closed behind our back */
				int fl = REAL(fcntl)(fd, F_GETFL), fdfl = REAL(fcntl)(fd, F_GETFD);
				if (fl >= 0)
					fl &= ~O_ACCMODE;
				put_behind(fd, newfd, fl, fdfl >= 0 && (fdfl & FD_CLOEXEC));
				unsigned f = __atomic_load_n(&sl[i].flags, __ATOMIC_RELAXED);
				f &= ~(SF_OUT | SF_IN);
				if (err)
					f |= SF_OUT;
				__atomic_store_n(&sl[i].flags, f, __ATOMIC_RELEASE);
			}
		}
		c->ino = nino;
		c->state = err ? ST_FAILED : ST_CONNECTED;
		c->err = err;
	}
	int pw = c->pw;
	c->pw = -1;
	c->s = -1;
	conn_put(c);
	pthread_mutex_unlock(&sg_lock);
	/* wakes poll/select sleeping on the placeholder: they look again and see the socket */
	if (pw >= 0)
		REAL(close)(pw);
	if (newfd >= 0)
		REAL(close)(newfd);
}

static void *helper(void *arg)
{
	struct job *j = arg;
	struct sgconn *c = j->c;
	struct timeval tick = { 0, 200000 }, old;
	double deadline = now() + CONNECT_TIMEOUT_S;
	int err = 0;
	int is_unix = j->ta.u.sa.sa_family == AF_UNIX;

	REAL(fcntl)(j->s, F_SETFL, REAL(fcntl)(j->s, F_GETFL) & ~O_NONBLOCK);
	REAL(setsockopt)(j->s, SOL_SOCKET, SO_SNDTIMEO_OLD, &tick, sizeof tick);
	for (;;) {
		if (cancelled(c)) {
			err = ECANCELED;
			break;
		}
		if (now() > deadline) {
			err = ETIMEDOUT;
			break;
		}
		if (is_unix) {
			/* blocking: the kernel wakes us when the listener's queue has room */
			if (REAL(connect)(j->s, &j->ta.u.sa, j->ta.len) == 0)
				break;
			if (errno == EAGAIN || errno == EINTR)
				continue;
			err = unix_errno(errno);
			break;
		}
		struct pollfd p = { .fd = j->s, .events = POLLOUT };
		if (poll(&p, 1, 200) > 0) {
			socklen_t l = sizeof err;
			if (REAL(getsockopt)(j->s, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
				err = errno;
			break;
		}
	}
	if (!err) {
		pthread_mutex_lock(&sg_lock);
		unsigned char *h = c->hdr;
		size_t off = c->hdroff, len = c->hdrlen;
		c->hdr = NULL;
		c->hdrlen = c->hdroff = 0;
		pthread_mutex_unlock(&sg_lock);
		while (h && off < len && !err) {
			ssize_t w = REAL(send)(j->s, h + off, len - off, MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && (errno == EAGAIN || errno == EINTR) && now() < deadline && !cancelled(c))
				continue;
			else
				err = w < 0 ? errno : EPIPE;
		}
		free(h);
	}
	pthread_mutex_lock(&sg_lock);
	old = c->sndtimeo;	/* the program may have set it meanwhile */
	c->s = -1;
	pthread_mutex_unlock(&sg_lock);
	REAL(setsockopt)(j->s, SOL_SOCKET, SO_SNDTIMEO_OLD, &old, sizeof old);
	finish(j, err == ECANCELED ? 0 : err);
	free(j);
	return NULL;
}

/* Put a placeholder behind fd and (with s >= 0) start the helper. Returns -1/EINPROGRESS. */
static int go_pending(int fd, struct sgconn *c, int s, const struct sg_addr *ta)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;
		if (s >= 0)
			REAL(close)(s);
		c->refs = 1;
		conn_put(c);
		return errno = e, -1;
	}
	c->pw = p[1];
	c->state = s >= 0 ? ST_PENDING : ST_BLACKHOLE;
	c->s = s;
	if (s >= 0) {
		socklen_t tl = sizeof c->sndtimeo;
		if (REAL(getsockopt)(s, SOL_SOCKET, SO_SNDTIMEO_OLD, &c->sndtimeo, &tl) < 0)
			memset(&c->sndtimeo, 0, sizeof c->sndtimeo);
	}
	if (sg_swap_in(fd, p[0], c, SF_OUT | SF_IN) < 0) {
		int e = errno;
		if (s >= 0)
			REAL(close)(s);
		c->refs = 1;	/* never published */
		conn_put(c);
		return errno = e, -1;
	}
	if (s < 0) {
		errno = EINPROGRESS;
		return -1;
	}
	struct job *j = malloc(sizeof *j);
	pthread_t t;
	pthread_attr_t at;
	sigset_t all, old;
	int ok = 0;

	if (j) {
		j->c = c;
		j->s = s;
		j->ta = *ta;
		pthread_mutex_lock(&sg_lock);
		c->refs++;
		pthread_mutex_unlock(&sg_lock);
		/* the helper takes no signal meant for the program */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 64 * 1024);
		ok = pthread_create(&t, &at, helper, j) == 0;
		pthread_attr_destroy(&at);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (!ok) {
		/* no thread: the connect fails as if refused by resources */
		if (j) {
			finish(j, EAGAIN);
			free(j);
		} else {
			REAL(close)(s);
		}
	}
	errno = EINPROGRESS;
	return -1;
}

/* ---- datagrams ------------------------------------------------------------- */

/* Under sg_lock: remember that datagrams to dst went to ta. */
static void map_add(struct sgconn *c, const struct sg_addr *ta, const struct sockaddr *dst, socklen_t dlen)
{
	unsigned i;
	if (!c->map && !(c->map = calloc(UMAP_N, sizeof *c->map)))
		return;
	for (i = 0; i < c->nmap && i < UMAP_N; i++)
		if (c->map[i].unlen == ta->len && !memcmp(&c->map[i].un, &ta->u.un, ta->len))
			break;
	if (i >= UMAP_N)
		i = c->nmap++ % UMAP_N;
	else if (i == c->nmap)
		c->nmap++;
	memcpy(&c->map[i].un, &ta->u.un, ta->len);
	c->map[i].unlen = ta->len;
	memset(&c->map[i].in, 0, sizeof c->map[i].in);
	memcpy(&c->map[i].in, dst, dlen);
	c->map[i].inlen = dlen;
}

/*
 * Bind a datagram client where its server can answer it. An autobound
 * (abstract) address belongs to the network namespace, so a server outside
 * the program's namespace could not reply to it; a socket file beside the
 * server's own (or in $SOCKGATE_DGRAM_DIR) is reachable wherever that file
 * is. Where no such file can be made, autobind.
 */
static int dgram_bind(int s, struct sgconn *c, const struct sg_addr *near)
{
	static unsigned seq;
	const char *dir = getenv("SOCKGATE_DGRAM_DIR");
	char d[sizeof near->u.un.sun_path], p[sizeof d + 64];
	struct sg_addr a;

	if (!dir && near && near->u.sa.sa_family == AF_UNIX && near->u.un.sun_path[0]) {
		memcpy(d, near->u.un.sun_path, sizeof d);
		d[sizeof d - 1] = 0;
		char *slash = strrchr(d, '/');
		if (slash)
			*(slash == d ? slash + 1 : slash) = 0;
		else
			strcpy(d, ".");
		dir = d;
	}
	if (dir && snprintf(p, sizeof p, "%s/.sockgate-dgram-%ld-%u", dir, (long)getpid(),
			    __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED)) < (int)sizeof p &&
	    addr_unix(&a, p, 0) == 0 && REAL(bind)(s, &a.u.sa, a.len) == 0) {
		memcpy(c->dgpath, a.u.un.sun_path, sizeof c->dgpath);
		c->dgpid = getpid();
		return 0;
	}
	sa_family_t af = AF_UNIX;
	return REAL(bind)(s, (struct sockaddr *)&af, sizeof af);
}

/* Make fd an AF_UNIX datagram socket, bound so that replies can come back. */
static int dgram_swap(int fd, struct sgconn *c, const struct sg_addr *near)
{
	int nb = REAL(fcntl)(fd, F_GETFL);
	int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | ((nb >= 0 && (nb & O_NONBLOCK)) ? SOCK_NONBLOCK : 0), 0);

	if (s < 0)
		return -1;
	if (dgram_bind(s, c, near) < 0) {
		int e = errno;
		REAL(close)(s);
		errno = e;
		return -1;
	}
	carry_opts(fd, s, c->family, SOCK_DGRAM);
	c->state = ST_DGRAM;
	return sg_swap_in(fd, s, c, SF_IN);
}

static struct sgconn *new_conn(int fd, int domain, int type, const struct rule *r)
{
	struct sgconn *c = calloc(1, sizeof *c);
	socklen_t l = sizeof c->local;

	if (!c)
		return NULL;
	c->pw = -1;
	c->s = -1;
	c->family = domain;
	c->type = type;
	c->rflags = r ? r->flags : 0;
	c->action = r ? r->action : 0;
	/* a socket the program bound keeps that address as its own */
	if (REAL(getsockname)(fd, (struct sockaddr *)&c->local, &l) == 0 &&
	    (addr_port((struct sockaddr *)&c->local) > 0 || !is_any(&c->local))) {
		c->locallen = l;
		c->local_known = 1;
	}
	return c;
}

/* Send one datagram to ta, with a PROXY header in front when the rule asks. */
static ssize_t dgram_send(int fd, const struct msghdr *msg, int flags, const struct sg_addr *ta,
			  const struct sgconn *c, const struct rule *r, const struct sockaddr *dst)
{
	struct msghdr m = *msg;
	unsigned char hdr[HDR_MAX];
	struct iovec iov[64];
	int hl = 0;

	if (ta) {
		m.msg_name = (void *)&ta->u.un;
		m.msg_namelen = ta->len;
	} else {
		m.msg_name = NULL;
		m.msg_namelen = 0;
	}
	if (r && (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) && c) {
		hl = build_header(c, r, dst, SOCK_DGRAM, hdr, sizeof hdr);
		if (hl < 0)
			return -1;
		if (m.msg_iovlen + 1 > sizeof iov / sizeof iov[0])
			return errno = EMSGSIZE, -1;
		iov[0].iov_base = hdr;
		iov[0].iov_len = (size_t)hl;
		memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof *iov);
		m.msg_iov = iov;
		m.msg_iovlen = msg->msg_iovlen + 1;
	}
	ssize_t n = REAL(sendmsg)(fd, &m, flags);
	if (n < 0 && ta)
		errno = unix_errno(errno);
	if (n >= hl)
		n -= hl;
	return n;
}

/* ---- connect --------------------------------------------------------------- */

static int sock_info(int fd, int *domain, int *type)
{
	socklen_t l = sizeof *type;
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, type, &l) < 0)
		return -1;
	l = sizeof *domain;
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, domain, &l) < 0)
		return -1;
	return 0;
}

/*
 * Which rule applies to a connect/sendto of fd to sa, and the socket's
 * domain and type. NULL when we leave the call alone.
 */
static const struct rule *lookup(int fd, const struct sockaddr *sa, socklen_t len,
				 struct sockaddr_storage *dst, const struct ruleset **rs,
				 int *domain, int *type, int *strict_refuse)
{
	*strict_refuse = 0;
	if (!sa || len < sizeof(sa_family_t) || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    len < inet_len(sa->sa_family))
		return NULL;
	const struct sgconf *cf = conf();
	if (unlikely(cf->broken)) {
		if (cf->strict && (*domain || sock_info(fd, domain, type) == 0) &&
		    (*type == SOCK_STREAM || *type == SOCK_DGRAM))
			*strict_refuse = 1;
		return NULL;
	}
	if (!cf->have_connect)
		return NULL;
	canon(sa, dst);
	const struct rule *r = sg_match(RULE_CONNECT, RULE_ANYPROTO, (struct sockaddr *)dst, rs);
	if (likely(!r))
		return NULL;
	if (r->proto != RULE_ANYPROTO && !*domain) {
		/* the type socket() noted spares a getsockopt() when no rule of that type matches */
		unsigned h = fd_flags(fd) & SF_HINTS;
		if (h && !sg_match(RULE_CONNECT, h == SF_HSTREAM ? RULE_TCP : RULE_UDP, (struct sockaddr *)dst, NULL))
			return NULL;
	}
	/* a redirected socket says what it was (the caller fills domain and type) */
	if ((!*domain && sock_info(fd, domain, type) < 0) || *domain != sa->sa_family)
		return NULL;
	if (*type != SOCK_STREAM && *type != SOCK_DGRAM)
		return NULL;
	if (r->proto != RULE_ANYPROTO)
		r = sg_match(RULE_CONNECT, *type == SOCK_STREAM ? RULE_TCP : RULE_UDP, (struct sockaddr *)dst, rs);
	if (!r || r->action == ACT_PASS || r->action == ACT_FDPASS || r->action == ACT_SYSTEMD)
		return NULL;
	return r;
}

static int stream_connect(int fd, const struct sockaddr *sa, socklen_t len, const struct sockaddr *dst,
			  const struct ruleset *rs, const struct rule *r, int domain)
{
	struct sg_addr ta;
	struct sgconn *c;
	int fl = REAL(fcntl)(fd, F_GETFL);
	int nonblock = fl >= 0 && (fl & O_NONBLOCK);
	unsigned char hdr[HDR_MAX];
	int hl = 0;

	if (r->action == ACT_REJECT) {
		errno = r->err ? r->err : ECONNREFUSED;
		return -1;
	}
	if (r->action == ACT_BLACKHOLE && !nonblock) {
		/* as a TCP connect whose SYNs are all dropped, without the wait */
		errno = ETIMEDOUT;
		return -1;
	}
	if (r->action != ACT_BLACKHOLE && target(rs, r, dst, &ta) < 0)
		return -1;
	if (!(c = new_conn(fd, domain, SOCK_STREAM, r)))
		return -1;
	memcpy(&c->peer, sa, len);
	c->peerlen = len;
	if (r->action == ACT_BLACKHOLE) {
		pick_local(c, rs, r, dst, 0);
		return go_pending(fd, c, -1, NULL);
	}
	if (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
		pick_local(c, rs, r, dst, 1);
		hl = build_header(c, r, sa, SOCK_STREAM, hdr, sizeof hdr);
		if (hl < 0) {
			free(c);
			return -1;
		}
	} else {
		pick_local(c, rs, r, dst, 0);
	}
	int s = socket(ta.u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (s < 0) {
		free(c);
		return -1;
	}
	carry_opts(fd, s, domain, SOCK_STREAM);
	int cr = REAL(connect)(s, &ta.u.sa, ta.len);
	int e = errno;
	int is_unix = ta.u.sa.sa_family == AF_UNIX;

	if (cr < 0 && !((is_unix && e == EAGAIN && nonblock) || (!is_unix && e == EINPROGRESS))) {
		REAL(close)(s);
		free(c);
		if (is_unix && e == EAGAIN)
			e = ETIMEDOUT;	/* blocking, and SO_SNDTIMEO ran out */
		errno = is_unix ? unix_errno(e) : e;
		return -1;
	}
	if (hl > 0) {
		c->hdr = malloc((size_t)hl);
		if (!c->hdr) {
			REAL(close)(s);
			free(c);
			return errno = ENOMEM, -1;
		}
		memcpy(c->hdr, hdr, (size_t)hl);
		c->hdrlen = (size_t)hl;
	}
	if (cr < 0 && (is_unix || hl > 0)) {
		/* full backlog, or TCP still connecting and a header must go first */
		return go_pending(fd, c, s, &ta);
	}
	unsigned flags = 0;
	if (hl > 0) {
		if (nonblock) {
			ssize_t w = REAL(send)(s, c->hdr, c->hdrlen, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w > 0)
				c->hdroff = (size_t)w;
		} else if (send_all(s, c->hdr, c->hdrlen) < 0) {
			e = errno;
			REAL(close)(s);
			conn_put((c->refs = 1, c));
			errno = e;
			return -1;
		} else {
			c->hdroff = c->hdrlen;
		}
		if (c->hdroff < c->hdrlen)
			flags |= SF_OUT;
		else {
			free(c->hdr);
			c->hdr = NULL;
		}
	}
	c->state = ST_CONNECTED;
	if (sg_swap_in(fd, s, c, flags) < 0) {
		e = errno;
		if (c->refs == 0)
			conn_put((c->refs = 1, c));
		errno = e;
		return -1;
	}
	if (cr < 0) {
		errno = EINPROGRESS;	/* a TCP target, connecting */
		return -1;
	}
	return 0;
}

static int dgram_connect(int fd, const struct sockaddr *sa, socklen_t len, const struct sockaddr *dst,
			 const struct ruleset *rs, const struct rule *r, int domain, struct sgconn *have)
{
	struct sg_addr ta;
	struct sgconn *c = have;

	if (r->action == ACT_REJECT) {
		errno = r->err ? r->err : ECONNREFUSED;
		return -1;
	}
	if (r->action == ACT_BLACKHOLE) {
		memset(&ta, 0, sizeof ta);
	} else if (target(rs, r, dst, &ta) < 0) {
		return -1;
	}
	if (ta.u.sa.sa_family != AF_UNIX && r->action != ACT_BLACKHOLE) {
		/* tcp/nat64 target for a datagram socket: connect to that address directly */
		struct sockaddr_storage t;
		memcpy(&t, &ta.u.ss, sizeof t);
		if (to_family(&t, domain) < 0)
			return errno = EAFNOSUPPORT, -1;
		return REAL(connect)(fd, (struct sockaddr *)&t, inet_len(domain));
	}
	if (!c) {
		if (!(c = new_conn(fd, domain, SOCK_DGRAM, r)))
			return -1;
		pick_local(c, rs, r, dst, 0);
		if (dgram_swap(fd, c, &ta) < 0) {
			free(c);
			return -1;
		}
	}
	if (r->action != ACT_BLACKHOLE && REAL(connect)(fd, &ta.u.sa, ta.len) < 0) {
		errno = unix_errno(errno);
		return -1;
	}
	pthread_mutex_lock(&sg_lock);
	memcpy(&c->peer, sa, len);
	c->peerlen = len;
	c->rflags = r->flags;
	c->action = r->action;
	if (r->action != ACT_BLACKHOLE)
		map_add(c, &ta, sa, len);
	free(c->dghdr);
	c->dghdr = NULL;
	c->dghdrlen = 0;
	if (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
		unsigned char hdr[HDR_MAX];
		int hl = build_header(c, r, sa, SOCK_DGRAM, hdr, sizeof hdr);
		if (hl > 0 && (c->dghdr = malloc((size_t)hl))) {
			memcpy(c->dghdr, hdr, (size_t)hl);
			c->dghdrlen = (size_t)hl;
		}
	}
	unsigned set = SF_IN | ((c->dghdr || r->action == ACT_BLACKHOLE) ? SF_OUT : 0);
	slot_setflags(fd, set, SF_OUT);
	pthread_mutex_unlock(&sg_lock);
	return 0;
}

int out_connect_swapped(int fd, const struct sockaddr *sa, socklen_t len, int *handled);

/* Would a send to sa on fd be handled by a rule (or refused by SOCKGATE_STRICT)? */
int out_would_handle(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct sockaddr_storage dst;
	const struct ruleset *rs;
	int domain = 0, type = 0, strict;
	return lookup(fd, sa, len, &dst, &rs, &domain, &type, &strict) != NULL || strict;
}

/* connect(): 0/-1 when handled, else *handled = 0 and the caller goes to libc. */
int out_connect(int fd, const struct sockaddr *sa, socklen_t len, int *handled)
{
	struct sockaddr_storage dst;
	const struct ruleset *rs = NULL;
	int domain = 0, type = 0, strict;

	*handled = 0;
	if (unlikely(fd_flags(fd) & SF_SWAPPED))
		return out_connect_swapped(fd, sa, len, handled);
	const struct rule *r = lookup(fd, sa, len, &dst, &rs, &domain, &type, &strict);
	if (likely(!r)) {
		if (unlikely(strict)) {
			*handled = 1;
			errno = EACCES;
			return -1;
		}
		return 0;
	}
	if (r->action == ACT_BROKER)
		return out_broker_connect(fd, sa, len, (struct sockaddr *)&dst, rs, r, domain, handled);
	*handled = 1;
	if (type == SOCK_DGRAM)
		return dgram_connect(fd, sa, len, (struct sockaddr *)&dst, rs, r, domain, NULL);
	return stream_connect(fd, sa, len, (struct sockaddr *)&dst, rs, r, domain);
}

/* connect() again on a redirected fd: what TCP would answer. */
int out_connect_swapped(int fd, const struct sockaddr *sa, socklen_t len, int *handled)
{
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	if (!c) {
		pthread_mutex_unlock(&sg_lock);
		return out_connect(fd, sa, len, handled);
	}
	*handled = 1;
	int state = c->state, err = c->err, domain = c->family;
	if (state == ST_FAILED && err)
		c->err = 0;
	pthread_mutex_unlock(&sg_lock);
	switch (state) {
	case ST_PENDING:
	case ST_BLACKHOLE:
		return errno = EALREADY, -1;
	case ST_RECEIVER:
		return errno = EISCONN, -1;	/* as for a listening TCP socket */
	case ST_BOUND:
		return errno = EOPNOTSUPP, -1;	/* bound as a receiver: cannot also connect */
	case ST_CONNECTED:
		return errno = EISCONN, -1;
	case ST_FAILED:
		return errno = err ? err : ECONNABORTED, -1;
	}
	/* a datagram socket connected again */
	if (sa && sa->sa_family == AF_UNSPEC) {
		pthread_mutex_lock(&sg_lock);
		c = slot_conn(fd);
		if (c) {
			c->peerlen = 0;
			free(c->dghdr);
			c->dghdr = NULL;
			slot_setflags(fd, 0, SF_OUT);
		}
		pthread_mutex_unlock(&sg_lock);
		return REAL(connect)(fd, sa, len);
	}
	struct sockaddr_storage dst;
	const struct ruleset *rs = NULL;
	int dom = domain, type = SOCK_DGRAM, strict;
	const struct rule *r = lookup(fd, sa, len, &dst, &rs, &dom, &type, &strict);
	if (!r)
		return errno = ENETUNREACH, -1;	/* an AF_UNIX socket now: it cannot reach IP */
	pthread_mutex_lock(&sg_lock);
	c = slot_conn(fd);
	if (c)
		c->refs++;
	pthread_mutex_unlock(&sg_lock);
	if (!c)
		return errno = EBADF, -1;
	int ret = dgram_connect(fd, sa, len, (struct sockaddr *)&dst, rs, r, domain, c);
	pthread_mutex_lock(&sg_lock);
	conn_put(c);
	pthread_mutex_unlock(&sg_lock);
	return ret;
}

/*
 * sendto()/sendmsg() with an address. *handled = 0: go to libc. Handles
 * datagrams to matched destinations and MSG_FASTOPEN on streams.
 */
ssize_t out_sendmsg(int fd, const struct msghdr *msg, int flags, int *handled)
{
	const struct sockaddr *sa = msg->msg_name;
	socklen_t len = msg->msg_namelen;
	unsigned f = fd_flags(fd);
	struct sockaddr_storage dst;
	const struct ruleset *rs = NULL;
	int domain = 0, type = 0, strict;
	const struct rule *r;

	*handled = 0;
	if (f & SF_SWAPPED) {
		pthread_mutex_lock(&sg_lock);
		struct sgconn *c = slot_conn(fd);
		int st = c ? c->state : 0;
		domain = c ? c->family : 0;
		type = c ? c->type : 0;
		pthread_mutex_unlock(&sg_lock);
		if (!c)
			goto fresh;
		if (st != ST_DGRAM) {
			/* a stream: the address is ignored, as TCP does */
			return 0;
		}
		*handled = 1;
		if (!sa || len < sizeof(sa_family_t)) {
			/* connected datagram socket */
			pthread_mutex_lock(&sg_lock);
			c = slot_conn(fd);
			struct sockaddr_storage peer;
			int act = c ? c->action : 0;
			unsigned char hdr[HDR_MAX];
			size_t hl = c && c->dghdr ? c->dghdrlen : 0;
			if (hl)
				memcpy(hdr, c->dghdr, hl);
			if (c)
				peer = c->peer;
			pthread_mutex_unlock(&sg_lock);
			(void)peer;
			if (act == ACT_BLACKHOLE) {
				size_t n = 0;
				for (size_t i = 0; i < msg->msg_iovlen; i++)
					n += msg->msg_iov[i].iov_len;
				return (ssize_t)n;
			}
			if (!hl)
				return REAL(sendmsg)(fd, msg, flags);
			struct iovec iov[64];
			struct msghdr m = *msg;
			if (msg->msg_iovlen + 1 > 64)
				return errno = EMSGSIZE, -1;
			iov[0].iov_base = hdr;
			iov[0].iov_len = hl;
			memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof *iov);
			m.msg_iov = iov;
			m.msg_iovlen = msg->msg_iovlen + 1;
			ssize_t n = REAL(sendmsg)(fd, &m, flags);
			return n >= (ssize_t)hl ? n - (ssize_t)hl : n;
		}
		r = lookup(fd, sa, len, &dst, &rs, &domain, &type, &strict);
		if (!r) {
			if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
				return errno = ENETUNREACH, -1;
			return REAL(sendmsg)(fd, msg, flags);
		}
		goto dgram;
	}
fresh:
	if (!sa)
		return 0;
	domain = type = 0;
	r = lookup(fd, sa, len, &dst, &rs, &domain, &type, &strict);
	if (!r) {
		if (strict) {
			*handled = 1;
			return errno = EACCES, -1;
		}
		return 0;
	}
	if (type == SOCK_STREAM) {
		if (!(flags & MSG_FASTOPEN))
			return 0;
		*handled = 1;
		if ((r->flags & RULE_F_FASTOPEN_EPIPE) || (conf()->hacks & HACK_FASTOPEN))
			return errno = EPIPE, -1;
		if (r->action == ACT_BROKER) {
			/* no data in the SYN: the broker's socket connects, then this goes as a send */
			int h;
			if (out_broker_connect(fd, sa, len, (struct sockaddr *)&dst, rs, r, domain, &h) < 0 &&
			    errno != EINPROGRESS)
				return -1;
		} else if (stream_connect(fd, sa, len, (struct sockaddr *)&dst, rs, r, domain) < 0) {
			return -1;
		}
		struct msghdr m = *msg;
		m.msg_name = NULL;
		m.msg_namelen = 0;
		return sendmsg(fd, &m, flags & ~MSG_FASTOPEN);
	}
	*handled = 1;
	if (r->action == ACT_REJECT)
		return errno = r->err ? r->err : ECONNREFUSED, -1;
	{
		struct sgconn *c = new_conn(fd, domain, SOCK_DGRAM, r);
		if (!c)
			return -1;
		pick_local(c, rs, r, (struct sockaddr *)&dst, 0);
		struct sg_addr near;
		if (r->action == ACT_BLACKHOLE || target(rs, r, (struct sockaddr *)&dst, &near) < 0)
			near.u.sa.sa_family = AF_UNSPEC;
		if (dgram_swap(fd, c, &near) < 0) {
			free(c);
			return -1;
		}
	}
dgram:
	if (r->action == ACT_REJECT)
		return errno = r->err ? r->err : ECONNREFUSED, -1;
	if (r->action == ACT_BLACKHOLE) {
		size_t n = 0;
		for (size_t i = 0; i < msg->msg_iovlen; i++)
			n += msg->msg_iov[i].iov_len;
		return (ssize_t)n;
	}
	struct sg_addr ta;
	if (target(rs, r, (struct sockaddr *)&dst, &ta) < 0)
		return -1;
	if (ta.u.sa.sa_family != AF_UNIX)
		return errno = ENETUNREACH, -1;
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	struct sgconn copy;
	if (c) {
		map_add(c, &ta, sa, len);
		copy = *c;
	}
	pthread_mutex_unlock(&sg_lock);
	if (!c)
		return errno = EBADF, -1;
	if (r->source != RULE_NONE) {
		/* this destination's rule names its own source */
		copy.local_known = 0;
		pick_local(&copy, rs, r, (struct sockaddr *)&dst, 0);
	}
	return dgram_send(fd, msg, flags, &ta, &copy, r, sa);
}

/*
 * Before a write on an fd flagged SF_OUT: send what is left of the header,
 * or say why the write cannot happen yet. 0 = go on writing; -1 = return
 * that with errno; 1 = datagram blackhole (pretend sent).
 */
int out_before_write(int fd)
{
	for (;;) {
		pthread_mutex_lock(&sg_lock);
		struct sgconn *c = slot_conn(fd);
		if (!c) {
			pthread_mutex_unlock(&sg_lock);
			return 0;
		}
		int fl = REAL(fcntl)(fd, F_GETFL);
		int nonblock = fl >= 0 && (fl & O_NONBLOCK);
		int st = c->state;
		if (st == ST_DGRAM) {
			int bh = c->action == ACT_BLACKHOLE;
			pthread_mutex_unlock(&sg_lock);
			return bh ? 1 : 0;
		}
		if (st == ST_FAILED) {
			int e = c->err ? c->err : EPIPE;
			c->err = 0;
			pthread_mutex_unlock(&sg_lock);
			return errno = e, -1;
		}
		if (st == ST_CONNECTED) {
			while (c->hdr && c->hdroff < c->hdrlen) {
				ssize_t w = REAL(send)(fd, c->hdr + c->hdroff, c->hdrlen - c->hdroff,
						       MSG_NOSIGNAL | MSG_DONTWAIT);
				if (w <= 0)
					break;
				c->hdroff += (size_t)w;
			}
			if (!c->hdr || c->hdroff >= c->hdrlen) {
				free(c->hdr);
				c->hdr = NULL;
				slot_setflags(fd, 0, SF_OUT);
				pthread_mutex_unlock(&sg_lock);
				return 0;
			}
		}
		pthread_mutex_unlock(&sg_lock);
		/* pending, blackholed, or the header does not fit yet */
		if (nonblock)
			return errno = EAGAIN, -1;
		if (st == ST_BLACKHOLE)
			return errno = ETIMEDOUT, -1;
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		poll(&p, 1, 200);
	}
}

/* A peer address for a datagram that came from a unix path (under no lock).
 * sa must point to a struct sockaddr_storage. */
void out_dgram_peer(int fd, struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_storage res;
	socklen_t rl = 0;

	if (!sa || !len || *len == 0)
		return;
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	if (!c || c->state != ST_DGRAM || sa->sa_family != AF_UNIX) {
		pthread_mutex_unlock(&sg_lock);
		return;
	}
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
	for (unsigned i = 0; c->map && i < c->nmap && i < UMAP_N; i++) {
		socklen_t ml = c->map[i].unlen;
		if (ml <= *len && !memcmp(&c->map[i].un, un, ml)) {
			memcpy(&res, &c->map[i].in, sizeof res);
			rl = c->map[i].inlen;
			break;
		}
	}
	if (!rl && c->peerlen) {
		memcpy(&res, &c->peer, sizeof res);
		rl = c->peerlen;
	}
	if (!rl)
		zero_addr(c->family, &res, &rl);
	pthread_mutex_unlock(&sg_lock);
	/* *len was the unix address's length, not the room: sa is a whole
	 * sockaddr_storage in every caller, so the inet address fits */
	memcpy(sa, &res, rl);
	*len = rl;
}

/* For the broker action (broker.c): what the redirect does to carry a socket over. */
void sg_carry_opts(int from, int to, int fam, int type)
{
	carry_opts(from, to, fam, type);
}

int sg_put_behind(int fd, int newfd, int fl, int cloexec)
{
	return put_behind(fd, newfd, fl, cloexec);
}
