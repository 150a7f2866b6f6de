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
 * and swaps the connected socket in (pending.c); closing the pipe's write
 * end wakes pollers, which look the fd up again and find it writable, with
 * SO_ERROR 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "dgmap.h"
#include "ctlfile.h"
#include "file.h"
#include "proxyv2.h"
#include "real.h"
#include "sg.h"

#define HDR_MAX 1024

static socklen_t inet_len(int fam)
{
	return fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* IPv4-mapped IPv6 becomes plain IPv4 (for matching, templates, headers). */
static void canon(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	socklen_t l = sizeof *out;
	memset(out, 0, sizeof *out);
	memcpy(out, sa, sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	addr_unmap(out, &l);
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
		uint8_t pre[12];
		if (!arg || names_nat64_prefix(rs, r, 0, pre) < 0)
			return errno = EINVAL, -1;
		memset(ta, 0, sizeof *ta);
		ta->u.in6.sin6_family = AF_INET6;
		memcpy(ta->u.in6.sin6_addr.s6_addr, pre, 12);
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
	case ACT_TRANSLATE: {
		/* the prefix's network bits over the destination's (as IPv6), host bits kept */
		struct sg_prefix p;
		uint8_t a[16];
		if (!arg || prefix_parse(arg, &p) < 0 || addr_to16(dst, a) < 0)
			return errno = EINVAL, -1;
		for (unsigned i = 0; i < 16; i++) {
			unsigned bits = p.plen >= 8 * (i + 1) ? 8 : p.plen > 8 * i ? p.plen - 8 * i : 0;
			uint8_t m = (uint8_t)(0xff00u >> bits);
			a[i] = (uint8_t)((p.addr[i] & m) | (a[i] & ~m));
		}
		memset(ta, 0, sizeof *ta);
		ta->u.in6.sin6_family = AF_INET6;
		memcpy(ta->u.in6.sin6_addr.s6_addr, a, 16);
		ta->u.in6.sin6_port = htons((uint16_t)addr_port(dst));
		ta->len = sizeof ta->u.in6;
		return 0;
	}
	}
	errno = EINVAL;
	return -1;
}

/* translate dev=NAME: SO_BINDTODEVICE on the socket that connects. */
static int bind_dev(int s, const struct ruleset *rs, const struct rule *r)
{
	const char *dev = r->action == ACT_TRANSLATE ? rules_str(rs, r->aux) : NULL;
	if (!dev)
		return 0;
	return REAL(setsockopt)(s, SOL_SOCKET, SO_BINDTODEVICE, dev, (socklen_t)strlen(dev) + 1);
}

/* The source address routing would pick for dst (port 0), or -1. */
static int route_src(const struct sockaddr *dst, struct sockaddr_storage *out)
{
	int s = REAL(socket)(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
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
	socklen_t l = sizeof *ss;
	if (ss->ss_family == fam)
		return 0;
	if (fam == AF_INET && ss->ss_family == AF_INET6 && addr_is_any(ss)) {
		/* :: as IPv4 is 0.0.0.0: mark it mapped and convert */
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
		s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
	}
	int e = errno, r = addr_to_family(ss, &l, fam);
	errno = e;
	return r;
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
static int build_header(const struct sgconn *c, const struct ruleset *rs, const struct rule *r,
			const struct sockaddr *dst,
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
	if (r->aux != RULE_NONE && rules_str(rs, r->aux)) {
		/*
		 * authority-idx= (u-relay-tproxy type 4): the name from the index
		 * files, and the destination address left zero as it did
		 */
		const char *sel_s = rules_str(rs, r->aux);
		struct rules_idxsel sel;
		uint8_t a16[16];
		char name[129];
		const struct sgconf *cf = conf();
		if (rules_idxsel_parse(sel_s, strlen(sel_s), &sel) < 0 || addr_to16(dst, a16) < 0 ||
		    !urt_domain(cf->idx, cf->nidx, a16, &sel, name) || strlen(name) >= sizeof h.authority)
			return errno = EHOSTUNREACH, -1;
		snprintf(h.authority, sizeof h.authority, "%s", name);
		h.authority_len = strlen(h.authority);
		int port = addr_port((struct sockaddr *)&d);
		zero_addr(d.ss_family, &h.dst, &(socklen_t){ 0 });
		if (d.ss_family == AF_INET)
			((struct sockaddr_in *)&h.dst)->sin_port = htons((uint16_t)port);
		else
			((struct sockaddr_in6 *)&h.dst)->sin6_port = htons((uint16_t)port);
	} else if (gai_lookup(dst, h.authority, sizeof h.authority)) {
		h.authority_len = strlen(h.authority);
	}
	if (r->flags & RULE_F_NETNS)
		proxyv2_set_netns(&h);
	return proxyv2_build(buf, size, &h, (r->flags & RULE_F_CRC32C) ? PROXYV2_CRC32C : 0);
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

/* ---- datagrams ------------------------------------------------------------- */

/* Under sg_lock: remember that datagrams to dst went to ta. */
static void map_add(struct sgconn *c, const struct sg_addr *ta, const struct sockaddr *dst, socklen_t dlen)
{
	if (!c->map && !(c->map = calloc(1, sizeof *c->map)))
		return;
	dgmap_add(c->map, &ta->u.un, ta->len, dst, dlen);
}

/* Make fd an AF_UNIX datagram socket, bound so that replies can come back. */
static int dgram_swap(int fd, struct sgconn *c, const struct sg_addr *near)
{
	int nb = REAL(fcntl)(fd, F_GETFL);
	int s = REAL(socket)(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | ((nb >= 0 && (nb & O_NONBLOCK)) ? SOCK_NONBLOCK : 0), 0);

	if (s < 0)
		return -1;
	if (dgram_bind(s, c, near) < 0) {
		int e = errno;
		REAL(close)(s);
		errno = e;
		return -1;
	}
	sockopt_carry(fd, s, c->family, SOCK_DGRAM);
	c->state = ST_DGRAM;
	return sg_swap_in(fd, s, c, SF_IN);
}

/*
 * NAT64 for an IPv4 datagram socket: an AF_INET6 socket takes its place,
 * sending to PREFIX+IPv4 (RFC 6052 section 2.2); the program keeps seeing
 * the IPv4 addresses (getpeername, recvfrom: out_dgram_peer).
 */
static int dgram_swap6(int fd, struct sgconn *c)
{
	int nb = REAL(fcntl)(fd, F_GETFL);
	int s = REAL(socket)(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | ((nb >= 0 && (nb & O_NONBLOCK)) ? SOCK_NONBLOCK : 0), 0);

	if (s < 0)
		return -1;
	sockopt_carry(fd, s, c->family, SOCK_DGRAM);
	c->state = ST_DGRAM;
	return sg_swap_in(fd, s, c, SF_IN);
}

static struct sgconn *new_conn(int fd, int domain, int type, const struct rule *r)
{
	struct sgconn *c = conn_new(domain, type);
	socklen_t l = sizeof c->local;

	if (!c)
		return NULL;
	c->rflags = r ? r->flags : 0;
	c->action = r ? r->action : 0;
	/* a socket the program bound keeps that address as its own */
	if (REAL(getsockname)(fd, (struct sockaddr *)&c->local, &l) == 0 &&
	    (addr_port((struct sockaddr *)&c->local) > 0 || !addr_is_any(&c->local))) {
		c->locallen = l;
		c->local_known = 1;
	}
	return c;
}

/* sendmsg(msg) with hl bytes of hdr in front; the count excludes them. */
static ssize_t send_after(int fd, const struct msghdr *msg, int flags, const unsigned char *hdr, size_t hl)
{
	struct iovec iov[64];
	struct msghdr m = *msg;

	if (!hl)
		return REAL(sendmsg)(fd, msg, flags);
	if ((size_t)msg->msg_iovlen + 1 > sizeof iov / sizeof iov[0])	/* an int in musl */
		return errno = EMSGSIZE, -1;
	iov[0].iov_base = (void *)hdr;
	iov[0].iov_len = hl;
	memcpy(iov + 1, msg->msg_iov, msg->msg_iovlen * sizeof *iov);
	m.msg_iov = iov;
	m.msg_iovlen = msg->msg_iovlen + 1;
	ssize_t n = REAL(sendmsg)(fd, &m, flags);
	return n >= (ssize_t)hl ? n - (ssize_t)hl : n;
}

/* Send one datagram to ta, with a PROXY header in front when the rule asks. */
static ssize_t dgram_send(int fd, const struct msghdr *msg, int flags, const struct sg_addr *ta,
			  const struct sgconn *c, const struct ruleset *rs, const struct rule *r,
			  const struct sockaddr *dst)
{
	struct msghdr m = *msg;
	unsigned char hdr[HDR_MAX];
	int hl = 0;

	m.msg_name = (void *)&ta->u.un;
	m.msg_namelen = ta->len;
	if (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
		hl = build_header(c, rs, r, dst, SOCK_DGRAM, hdr, sizeof hdr);
		if (hl < 0)
			return -1;
	}
	ssize_t n = send_after(fd, &m, flags, hdr, (size_t)hl);
	if (n < 0)
		errno = unix_errno(errno);
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
	/* a ping socket is a datagram socket, but no UDP rule is about it */
	int proto = 0;
	l = sizeof proto;
	if (*type == SOCK_DGRAM && REAL(getsockopt)(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &l) == 0 &&
	    (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6))
		*type = SOCK_RAW;
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

/*
 * The header goes on the connected socket s before it is swapped in: all of
 * it when the caller blocks, what fits when not (the rest before the first
 * write). The slot flags that says, or -1.
 */
static int header_now(struct sgconn *c, int s, int nonblock)
{
	if (nonblock) {
		ssize_t w = REAL(send)(s, c->hdr, c->hdrlen, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0)
			c->hdroff = (size_t)w;
	} else if (send_all(s, c->hdr, c->hdrlen) < 0) {
		return -1;
	} else {
		c->hdroff = c->hdrlen;
	}
	if (c->hdroff < c->hdrlen)
		return SF_OUT;
	free(c->hdr);
	c->hdr = NULL;
	return 0;
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
	if (r->action == ACT_TRANSLATE) {
		/* as u-relay-tproxy: the program's own socket connects when its family can */
		struct sockaddr_storage t;
		memcpy(&t, &ta.u.ss, sizeof t);
		if (to_family(&t, domain) == 0) {
			if (bind_dev(fd, rs, r) < 0)
				return -1;
			return REAL(connect)(fd, (struct sockaddr *)&t, inet_len(domain));
		}
	}
	if (!(c = new_conn(fd, domain, SOCK_STREAM, r)))
		return -1;
	memcpy(&c->peer, sa, len);
	c->peerlen = len;
	if (r->action == ACT_BLACKHOLE) {
		pick_local(c, rs, r, dst, 0);
		return pending_start(fd, c, -1, NULL, -1);
	}
	if (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
		pick_local(c, rs, r, dst, 1);
		hl = build_header(c, rs, r, sa, SOCK_STREAM, hdr, sizeof hdr);
		if (hl < 0) {
			free(c);
			return -1;
		}
	} else {
		pick_local(c, rs, r, dst, 0);
	}
	int s = REAL(socket)(ta.u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
	if (s < 0) {
		free(c);
		return -1;
	}
	sockopt_carry(fd, s, domain, SOCK_STREAM);
	if (bind_dev(s, rs, r) < 0) {
		int be = errno;
		REAL(close)(s);
		free(c);
		errno = be;
		return -1;
	}
	int cr = REAL(connect)(s, &ta.u.sa, ta.len);
	int e = errno;
	long fc_port = -1;
	if (cr < 0 && e == ECONNREFUSED && ta.u.sa.sa_family == AF_UNIX) {
		/* a regular file where the socket should be: a control file names the target (ctl.c) */
		struct ctlfile ctl;
		int k = ctl_lookup(&ta.u.sa, ta.len, &ctl);
		if (k) {
			REAL(close)(s);
			s = k > 0 ? ctl_socket(&ctl, SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0)) : -1;
			if (s < 0) {
				e = k > 0 ? errno : ECONNREFUSED;
				free(c);
				return errno = e, -1;
			}
			ctlfile_sockaddr(&ctl, &ta.u.ss, &ta.len);
			sockopt_carry(fd, s, domain, SOCK_STREAM);
			cr = REAL(connect)(s, &ta.u.sa, ta.len);
			e = errno;
			if (ctl.kind == CTL_FIRECRACKER)
				fc_port = ctl.port;
		}
	}
	int is_unix = ta.u.sa.sa_family == AF_UNIX;

	if (cr < 0 && !((is_unix && e == EAGAIN && nonblock) || (!is_unix && e == EINPROGRESS))) {
		REAL(close)(s);
		free(c);
		if (is_unix && e == EAGAIN)
			e = ETIMEDOUT;	/* blocking, and SO_SNDTIMEO ran out */
		errno = is_unix ? unix_errno(e) : e;
		return -1;
	}
	if (fc_port >= 0 && !nonblock &&
	    ctl_fc_handshake(s, (uint32_t)fc_port, CONNECT_TIMEOUT_S, NULL, NULL) < 0) {
		e = errno;
		REAL(close)(s);
		free(c);
		return errno = e, -1;
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
	if ((cr < 0 && (is_unix || hl > 0)) || (fc_port >= 0 && nonblock)) {
		/* full backlog, TCP still connecting and a header must go first, or a multiplexer to answer */
		return pending_start(fd, c, s, &ta, fc_port);
	}
	unsigned flags = 0;
	if (hl > 0) {
		int hf = header_now(c, s, nonblock);
		if (hf < 0) {
			e = errno;
			REAL(close)(s);
			conn_put((c->refs = 1, c));
			errno = e;
			return -1;
		}
		flags = (unsigned)hf;
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
	int six = 0;
	if (ta.u.sa.sa_family != AF_UNIX && r->action != ACT_BLACKHOLE) {
		/* tcp/nat64 target for a datagram socket: connect to that address directly */
		struct sockaddr_storage t;
		memcpy(&t, &ta.u.ss, sizeof t);
		if (!(r->action == ACT_NAT64 && domain == AF_INET && ta.u.sa.sa_family == AF_INET6)) {
			if (to_family(&t, domain) < 0)
				return errno = EAFNOSUPPORT, -1;
			return REAL(connect)(fd, (struct sockaddr *)&t, inet_len(domain));
		}
		six = 1;	/* an IPv4 socket to a NAT64 address: an IPv6 socket in its place */
	}
	if (!c) {
		if (!(c = new_conn(fd, domain, SOCK_DGRAM, r)))
			return -1;
		pick_local(c, rs, r, dst, 0);
		if ((six ? dgram_swap6(fd, c) : dgram_swap(fd, c, &ta)) < 0) {
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
		int hl = build_header(c, rs, r, sa, SOCK_DGRAM, hdr, sizeof hdr);
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

/* Would a send to sa on fd be handled by a rule (or refused by SOCKGATE_STRICT)? */
int out_would_handle(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct sockaddr_storage dst;
	const struct ruleset *rs;
	int domain = 0, type = 0, strict;
	return lookup(fd, sa, len, &dst, &rs, &domain, &type, &strict) != NULL || strict;
}

/*
 * connect() again on a redirected fd: what TCP would answer (*handled =
 * 0: the record is gone, treat the fd as new).
 */
static int connect_swapped(int fd, const struct sockaddr *sa, socklen_t len, int *handled)
{
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	if (!c) {
		pthread_mutex_unlock(&sg_lock);
		return 0;	/* the fd was closed behind our back: a new socket */
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

/* connect(): 0/-1 when handled, else *handled = 0 and the caller goes to libc. */
int out_connect(int fd, const struct sockaddr *sa, socklen_t len, int *handled)
{
	struct sockaddr_storage dst;
	const struct ruleset *rs = NULL;
	int domain = 0, type = 0, strict;

	*handled = 0;
	if (unlikely(fd_flags(fd) & SF_SWAPPED)) {
		int ret = connect_swapped(fd, sa, len, handled);
		if (*handled)
			return ret;
	}
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

/*
 * A datagram on a redirected socket with no address: to its peer, after
 * the header its connect() built (or nowhere for a blackhole).
 */
static ssize_t dgram_send_connected(int fd, const struct msghdr *msg, int flags)
{
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	int act = c ? c->action : 0;
	unsigned char hdr[HDR_MAX];
	size_t hl = c && c->dghdr ? c->dghdrlen : 0;
	if (hl)
		memcpy(hdr, c->dghdr, hl);
	pthread_mutex_unlock(&sg_lock);
	if (act == ACT_BLACKHOLE)
		return iov_total(msg->msg_iov, msg->msg_iovlen);
	return send_after(fd, msg, flags, hdr, hl);
}

/*
 * A datagram to dst, which rule r of rs matched, on fd made AF_UNIX
 * already: to the rule's target, remembered so that replies show dst.
 */
static ssize_t dgram_send_to(int fd, const struct msghdr *msg, int flags, const struct sockaddr_storage *dst,
			     const struct ruleset *rs, const struct rule *r)
{
	if (r->action == ACT_REJECT)
		return errno = r->err ? r->err : ECONNREFUSED, -1;
	if (r->action == ACT_BLACKHOLE)
		return iov_total(msg->msg_iov, msg->msg_iovlen);
	struct sg_addr ta;
	if (target(rs, r, (const struct sockaddr *)dst, &ta) < 0)
		return -1;
	if (ta.u.sa.sa_family != AF_UNIX && !(r->action == ACT_NAT64 && ta.u.sa.sa_family == AF_INET6))
		return errno = ENETUNREACH, -1;
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	struct sgconn copy;
	if (c) {
		map_add(c, &ta, msg->msg_name, msg->msg_namelen);
		copy = *c;
	}
	pthread_mutex_unlock(&sg_lock);
	if (!c)
		return errno = EBADF, -1;
	if (r->source != RULE_NONE) {
		/* this destination's rule names its own source */
		copy.local_known = 0;
		pick_local(&copy, rs, r, (const struct sockaddr *)dst, 0);
	}
	return dgram_send(fd, msg, flags, &ta, &copy, rs, r, msg->msg_name);
}

/*
 * sendto(MSG_FASTOPEN) on a stream socket: connect as connect() would, then
 * send the data (after the header, if one is still to go).
 */
static ssize_t fastopen(int fd, const struct msghdr *msg, int flags, const struct sockaddr_storage *dst,
			const struct ruleset *rs, const struct rule *r, int domain)
{
	if ((r->flags & RULE_F_FASTOPEN_EPIPE) || (conf()->hacks & HACK_FASTOPEN))
		return errno = EPIPE, -1;
	if (r->action == ACT_BROKER) {
		/* no data in the SYN: the broker's socket connects, then this goes as a send */
		int h;
		if (out_broker_connect(fd, msg->msg_name, msg->msg_namelen, (const struct sockaddr *)dst, rs, r,
				       domain, &h) < 0 && errno != EINPROGRESS)
			return -1;
	} else if (stream_connect(fd, msg->msg_name, msg->msg_namelen, (const struct sockaddr *)dst, rs, r,
				  domain) < 0) {
		return -1;
	}
	if ((fd_flags(fd) & SF_OUT) && out_before_write(fd) < 0)
		return -1;
	struct msghdr m = *msg;
	m.msg_name = NULL;
	m.msg_namelen = 0;
	return REAL(sendmsg)(fd, &m, flags & ~MSG_FASTOPEN);
}

/* A send with an address on a socket that is not (or no longer) redirected. */
static ssize_t send_first(int fd, const struct msghdr *msg, int flags, int *handled)
{
	struct sockaddr_storage dst;
	const struct ruleset *rs = NULL;
	int domain = 0, type = 0, strict;

	if (!msg->msg_name)
		return 0;
	const struct rule *r = lookup(fd, msg->msg_name, msg->msg_namelen, &dst, &rs, &domain, &type, &strict);
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
		return fastopen(fd, msg, flags, &dst, rs, r, domain);
	}
	*handled = 1;
	if (r->action == ACT_REJECT)
		return errno = r->err ? r->err : ECONNREFUSED, -1;
	struct sgconn *c = new_conn(fd, domain, SOCK_DGRAM, r);
	if (!c)
		return -1;
	pick_local(c, rs, r, (struct sockaddr *)&dst, 0);
	struct sg_addr near;
	if (r->action == ACT_BLACKHOLE || target(rs, r, (struct sockaddr *)&dst, &near) < 0)
		near.u.sa.sa_family = AF_UNSPEC;
	if (r->action == ACT_NAT64 && near.u.sa.sa_family == AF_INET6 && domain == AF_INET6) {
		/* an IPv6 socket already: send to the translated address as it is */
		free(c);
		struct msghdr m = *msg;
		m.msg_name = &near.u.in6;
		m.msg_namelen = sizeof near.u.in6;
		return REAL(sendmsg)(fd, &m, flags);
	}
	if ((r->action == ACT_NAT64 && near.u.sa.sa_family == AF_INET6 ? dgram_swap6(fd, c)
								      : dgram_swap(fd, c, &near)) < 0) {
		free(c);
		return -1;
	}
	return dgram_send_to(fd, msg, flags, &dst, rs, r);
}

/*
 * sendto()/sendmsg() with an address, or on a redirected datagram socket.
 * *handled = 0: go to libc. Handles datagrams to matched destinations and
 * MSG_FASTOPEN on streams.
 */
ssize_t out_sendmsg(int fd, const struct msghdr *msg, int flags, int *handled)
{
	const struct sockaddr *sa = msg->msg_name;
	socklen_t len = msg->msg_namelen;

	*handled = 0;
	if (!(fd_flags(fd) & SF_SWAPPED))
		return send_first(fd, msg, flags, handled);
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	int st = c ? c->state : 0, domain = c ? c->family : 0, type = c ? c->type : 0;
	pthread_mutex_unlock(&sg_lock);
	if (!c)
		return send_first(fd, msg, flags, handled);
	if (st == ST_UDPSRV) {
		*handled = 1;
		return in_udp_send(fd, msg, flags);
	}
	if (st != ST_DGRAM)
		return 0;	/* a stream: the address is ignored, as TCP does */
	*handled = 1;
	if (!sa || len < sizeof(sa_family_t))
		return dgram_send_connected(fd, msg, flags);
	struct sockaddr_storage dst;
	const struct ruleset *rs = NULL;
	int strict;
	const struct rule *r = lookup(fd, sa, len, &dst, &rs, &domain, &type, &strict);
	if (r)
		return dgram_send_to(fd, msg, flags, &dst, rs, r);
	if (sa->sa_family == AF_INET || sa->sa_family == AF_INET6)
		return errno = ENETUNREACH, -1;
	return REAL(sendmsg)(fd, msg, flags);
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
	if (c && c->state == ST_UDPSRV) {
		rl = in_udp_peer(c, sa, *len, &res);	/* a UDP daemon's sender */
		pthread_mutex_unlock(&sg_lock);
		memcpy(sa, &res, rl);
		*len = rl;
		return;
	}
	if (!c || c->state != ST_DGRAM || !(sa->sa_family == AF_UNIX ||
					      (sa->sa_family == AF_INET6 && c->family == AF_INET))) {
		pthread_mutex_unlock(&sg_lock);
		return;
	}
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
	if (c->map)
		rl = dgmap_find(c->map, un, *len, &res);
	if (!rl && sa->sa_family == AF_INET6) {
		/* NAT64: the IPv4 address is the last 32 bits (RFC 6052 section 2.2, /96) */
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&res;
		memset(&res, 0, sizeof res);
		s4->sin_family = AF_INET;
		s4->sin_port = s6->sin6_port;
		memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		rl = sizeof *s4;
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
