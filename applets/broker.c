/*
 * sockgate-relay's broker: a request (core/broker.h) names a destination;
 * the same allow rules as target `original` decide; the socket is made in
 * the relay's own network namespace, its connect started without waiting,
 * and the socket passed back with SCM_RIGHTS (unix(7)) in the reply. The
 * relay keeps nothing: its copy of the socket is closed once sent.
 *
 * The steps follow the relay's connection: decide -> make -> reply, one
 * exit that closes what is left. TCP sockets connect to the destination;
 * ICMP sockets (ping sockets and raw ones, for ping(8) in a namespace with
 * no network) are made when a `connect icmp` rule passes the client, and
 * the kernel here allows it (net.ipv4.ping_group_range for ping sockets,
 * CAP_NET_RAW for raw ones): its refusal is the client's errno. UDP is
 * never brokered: a datagram socket can be aimed anywhere with each
 * sendto().
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include "broker.h"
#include "fdpass.h"
#include "rules.h"
#include "brokerd.h"

static const char *op_name(int op)
{
	switch (op) {
	case BROKER_OP_TCP: return "tcp";
	case BROKER_OP_PING: return "ping";
	case BROKER_OP_RAW: return "raw icmp";
	}
	return "unknown op";
}

/* decide: the parser's verdict, then the rules. 0, or -1 with b->err and b->why. */
static int decide(struct brq *b, int perr, broker_route_fn route, void *ctx)
{
	if (perr) {
		b->err = perr;
		snprintf(b->why, sizeof b->why, "broker: refused a request: %s", strerror(perr));
		return -1;
	}
	char why[400];
	int tcp = b->rq.op == BROKER_OP_TCP;
	if (route(ctx, b, tcp ? RULE_TCP : RULE_ICMP, &b->target, why, sizeof why) < 0) {
		/* as the kernel refuses an ICMP socket, and a TCP connect nobody takes */
		b->err = tcp ? ECONNREFUSED : EACCES;
		snprintf(b->why, sizeof b->why, "broker: %s", why);
		return -1;
	}
	if (b->target.u.sa.sa_family != AF_INET && b->target.u.sa.sa_family != AF_INET6) {
		b->err = ECONNREFUSED;
		snprintf(b->why, sizeof b->why, "broker: denied: the rule sends it to a Unix socket, which is not brokered");
		return -1;
	}
	/* the program's socket's family: an IPv4 target is mapped for an IPv6 socket */
	if (addr_to_family(&b->target.u.ss, &b->target.len, b->rq.h.dst.ss_family) < 0) {
		b->err = EAFNOSUPPORT;
		snprintf(b->why, sizeof b->why, "broker: refused: an IPv6 target for an IPv4 socket");
		return -1;
	}
	return 0;
}

/* An ICMP socket as the op asks; fd, or -1 with b->err and b->why. */
static int make_icmp(struct brq *b)
{
	int f = b->rq.h.dst.ss_family, raw = b->rq.op == BROKER_OP_RAW;
	int s = socket(f, (raw ? SOCK_RAW : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC,
		       f == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	if (s < 0) {
		b->err = errno;
		snprintf(b->why, sizeof b->why, "broker: unable to create a %s socket: %s%s", op_name(b->rq.op),
			 strerror(errno), errno != EACCES && errno != EPERM ? "" : raw ?
			 " (the relay lacks CAP_NET_RAW)" : " (the relay's group is outside net.ipv4.ping_group_range)");
		return -1;
	}
	return s;
}

/* make: a socket of the program's family, its connect started. fd, or -1 with b->err. */
static int make(struct brq *b)
{
	if (b->rq.op != BROKER_OP_TCP)
		return make_icmp(b);
	int s = socket(b->target.u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s < 0) {
		b->err = errno;
		snprintf(b->why, sizeof b->why, "broker: unable to create a socket: %s", strerror(errno));
		return -1;
	}
	if (connect(s, &b->target.u.sa, b->target.len) < 0 && errno != EINPROGRESS) {
		b->err = errno;
		snprintf(b->why, sizeof b->why, "broker: unable to connect: %s", strerror(errno));
		close(s);
		return -1;
	}
	return s;
}

/* reply: the verdict, with the socket when there is one. 0 or -1 (b->why). */
static int reply(struct brq *b, int s)
{
	unsigned char r[BROKER_REPLY_LEN];

	broker_reply_encode(r, sizeof r, s >= 0 ? BROKER_OK : BROKER_REFUSED, s >= 0 ? 0 : b->err);
	int ok = s >= 0 ? fdpass_send(b->cl, &s, 1, r, sizeof r, MSG_DONTWAIT)
			: (send(b->cl, r, sizeof r, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)sizeof r ? 0 : -1);
	if (ok < 0) {
		/* a fresh connection's buffer holds 8 bytes: this client left or does not read */
		int e = errno;
		size_t l = s >= 0 ? 0 : strlen(b->why);
		snprintf(b->why + l, sizeof b->why - l, "%sunable to send the reply: %s", l ? "; " : "", strerror(e));
		return -1;
	}
	return 0;
}

int broker_serve(struct brq *b, int perr, broker_route_fn route, void *ctx)
{
	int s = -1, r = -1;

	b->err = 0;
	b->why[0] = 0;
	if (decide(b, perr, route, ctx) == 0 && (s = make(b)) >= 0) {
		snprintf(b->why, sizeof b->why, "brokered: passed a %s socket%s", op_name(b->rq.op),
			 b->rq.op == BROKER_OP_TCP ? ", connecting" : "");
		r = 0;
	}
	if (reply(b, s) < 0)
		r = -1;
	if (s >= 0)
		close(s);
	return r;
}
