/*
 * The broker action (libsockgate(7), BROKER): connect() of a TCP socket to
 * a destination a `broker PATH` rule names asks sockgate-relay's broker at
 * PATH (request and reply: core/broker.h) for a socket it made and started
 * connecting in its own network namespace, and puts that socket behind the
 * program's fd number with dup3(), keeping O_NONBLOCK, FD_CLOEXEC, changed
 * SOL_SOCKET options and epoll registrations, as the redirect does. From
 * then on the fd is a plain TCP socket that no wrapper treats specially:
 * getpeername(), TCP_INFO, sendfile() are the kernel's own.
 *
 * The broker answers without waiting for the TCP handshake, so asking is a
 * local round trip (bounded by BROKER_WAIT_MS); a non-blocking caller then
 * gets EINPROGRESS and polls the real socket, a blocking caller waits here
 * for the connect as the kernel would (SO_SNDTIMEO honoured).
 *
 * socket() of an ICMP socket (SOCK_DGRAM or SOCK_RAW, IPPROTO_ICMP or
 * IPPROTO_ICMPV6) that a `connect icmp * -> broker PATH` rule names is
 * answered with the broker's socket of that kind, made in its network
 * namespace, so ping(8) works where the program has no network. A refusal
 * is socket()'s EACCES (or the broker's kernel's errno).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "addr.h"
#include "broker.h"
#include "fdpass.h"
#include "real.h"
#include "sg.h"

#define BROKER_WAIT_MS 5000	/* the broker's reply; it never waits for the network */

/* The connection to the broker at path ("@name": abstract); fd or -1. */
static int dial(const char *path)
{
	struct sg_addr a;
	struct timeval tv = { BROKER_WAIT_MS / 1000, (BROKER_WAIT_MS % 1000) * 1000 };

	if (addr_unix(&a, path[0] == '@' ? path + 1 : path, path[0] == '@') < 0)
		return -1;
	int u = REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (u < 0)
		return -1;
	/* bounds a full backlog (connect) and a broker that does not answer (recv) */
	REAL(setsockopt)(u, SOL_SOCKET, SO_SNDTIMEO_OLD, &tv, sizeof tv);
	REAL(setsockopt)(u, SOL_SOCKET, SO_RCVTIMEO_OLD, &tv, sizeof tv);
	int r;
	do
		r = REAL(connect)(u, &a.u.sa, a.len);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		int e = errno;
		REAL(close)(u);
		/* no broker there is, to a TCP program, nobody listening */
		errno = e == ENOENT || e == ECONNREFUSED || e == ENOTDIR ? ECONNREFUSED : e == EAGAIN ? ETIMEDOUT : e;
		return -1;
	}
	return u;
}

/* Ask for a socket; the socket, or -1 with the broker's errno (or ours). */
static int ask(const char *path, const struct broker_req *rq)
{
	unsigned char buf[PROXY_V2_HDRLEN + 1024], rep[BROKER_REPLY_LEN];
	int n = broker_req_build(buf, sizeof buf, rq);
	if (n < 0)
		return -1;
	int u = dial(path);
	if (u < 0)
		return -1;
	int s = -1, e = EPROTO;
	size_t got = 0;
	const unsigned char *p = buf;
	for (size_t left = (size_t)n; left;) {
		ssize_t w = REAL(send)(u, p, left, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			e = errno == EAGAIN ? ETIMEDOUT : errno == EPIPE ? ECONNREFUSED : errno;
			goto out;
		}
		p += w;
		left -= (size_t)w;
	}
	/* the socket rides with the reply's first byte */
	while (got < sizeof rep) {
		int fds[1];
		size_t nfds = s < 0 ? 1 : 0;
		ssize_t k = nfds ? fdpass_recv(u, fds, &nfds, rep + got, sizeof rep - got, 0)
				 : REAL(recv)(u, rep + got, sizeof rep - got, 0);
		if (nfds)
			s = fds[0];
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			/* closed without a verdict: the broker turned the request away (its log says why) */
			e = k == 0 ? ECONNREFUSED : errno == EAGAIN ? ETIMEDOUT : errno;
			goto out;
		}
		got += (size_t)k;
	}
	int st, err;
	if (broker_reply_decode(rep, got, &st, &err) < 0) {
		e = EPROTO;
		goto out;
	}
	if (st == BROKER_REFUSED) {
		e = err;
		goto out;
	}
	if (s < 0) {
		e = EPROTO;
		goto out;
	}
	REAL(close)(u);
	return s;
out:
	if (s >= 0)
		REAL(close)(s);
	REAL(close)(u);
	errno = e;
	return -1;
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof ti;
	memset(&ti, 0, sizeof ti);
	if (REAL(getsockopt)(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) < 0)
		return -1;
	return ti.tcpi_state;
}

/* A blocking caller: wait for the connect, as connect(2) would. */
static int wait_connected(int fd)
{
	struct timeval tv = { 0, 0 };
	socklen_t l = sizeof tv;
	REAL(getsockopt)(fd, SOL_SOCKET, SO_SNDTIMEO_OLD, &tv, &l);
	int ms = tv.tv_sec || tv.tv_usec ? (int)(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000) : -1;
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int r = poll(&p, 1, ms);
	if (r < 0)
		return -1;	/* EINTR: as an interrupted connect, which goes on */
	if (r == 0)
		return errno = EINPROGRESS, -1;	/* SO_SNDTIMEO ran out, as the kernel says it */
	int err = 0;
	l = sizeof err;
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
		return -1;
	return err ? (errno = err, -1) : 0;
}

int out_broker_socket(int domain, int type, int *handled)
{
	struct broker_req rq;
	struct sg_addr any;
	const struct ruleset *rs;
	char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];

	/* the socket has no destination yet: the rule is asked about the family's any address */
	memset(&any, 0, sizeof any);
	any.u.sa.sa_family = (sa_family_t)domain;
	any.len = domain == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	const struct rule *r = sg_match(RULE_CONNECT, RULE_ICMP, &any.u.sa, &rs);
	*handled = r && r->action != ACT_PASS;
	if (!*handled)
		return -1;
	if (r->action != ACT_BROKER) {
		errno = r->action == ACT_REJECT && r->err ? r->err : EACCES;
		return -1;
	}
	const char *arg = rules_str(rs, r->arg);
	if (!arg || rules_expand(arg, &any.u.sa, path, sizeof path) < 0)
		return errno = EACCES, -1;
	memset(&rq, 0, sizeof rq);
	rq.op = (type & 0xf) == SOCK_RAW ? BROKER_OP_RAW : BROKER_OP_PING;
	rq.h.command = PROXY_CMD_PROXY;
	memcpy(&rq.h.dst, &any.u.ss, any.len);
	memcpy(&rq.h.src, &any.u.ss, any.len);
	rq.h.dstlen = rq.h.srclen = any.len;
	if (r->flags & RULE_F_NETNS)
		proxyv2_set_netns(&rq.h);
	int s = ask(path, &rq);
	if (s < 0) {
		/* no broker, or it said no: to socket() that is not being allowed */
		if (errno == ECONNREFUSED || errno == EPROTO || errno == ETIMEDOUT)
			errno = EACCES;
		return -1;
	}
	/* ask() received it close-on-exec and the broker made it non-blocking: as the caller asked */
	if (!(type & SOCK_CLOEXEC))
		REAL(fcntl)(s, F_SETFD, 0);
	if (!(type & SOCK_NONBLOCK))
		REAL(fcntl)(s, F_SETFL, REAL(fcntl)(s, F_GETFL) & ~O_NONBLOCK);
	return s;
}

int out_broker_connect(int fd, const struct sockaddr *sa, socklen_t len, const struct sockaddr *dst,
		       const struct ruleset *rs, const struct rule *r, int domain, int *handled)
{
	struct broker_req rq;
	char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
	const char *arg = rules_str(rs, r->arg);

	/* connecting, connected or listening: the kernel's answer (EALREADY, EISCONN, ...) */
	if (tcp_state(fd) != TCP_CLOSE)
		return *handled = 0, 0;
	*handled = 1;
	if (!arg || rules_expand(arg, dst, path, sizeof path) < 0)
		return -1;
	memset(&rq, 0, sizeof rq);
	rq.op = BROKER_OP_TCP;
	rq.h.command = PROXY_CMD_PROXY;
	rq.h.socktype = SOCK_STREAM;
	socklen_t al = domain == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	memcpy(&rq.h.dst, sa, al);
	rq.h.dstlen = al;
	/* the source: where the program bound, or the family's any address */
	socklen_t sl = sizeof rq.h.src;
	if (REAL(getsockname)(fd, (struct sockaddr *)&rq.h.src, &sl) < 0 || rq.h.src.ss_family != domain) {
		memset(&rq.h.src, 0, sizeof rq.h.src);
		rq.h.src.ss_family = (sa_family_t)domain;
	}
	rq.h.srclen = al;
	if (gai_lookup(dst, rq.h.authority, sizeof rq.h.authority))
		rq.h.authority_len = strlen(rq.h.authority);
	if (r->flags & RULE_F_NETNS)
		proxyv2_set_netns(&rq.h);
	int s = ask(path, &rq);
	if (s < 0)
		return -1;
	int fl = REAL(fcntl)(fd, F_GETFL);
	sockopt_carry(fd, s, domain, SOCK_STREAM);
	if (sg_swap_in(fd, s, NULL, 0) < 0)
		return -1;
	/* even when loopback finished the handshake already: polling is what such a caller does next */
	if (fl >= 0 && (fl & O_NONBLOCK))
		return errno = EINPROGRESS, -1;
	return wait_connected(fd);
}
