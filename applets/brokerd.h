/*
 * The relay's broker (sockgate-relay(8), BROKER): one request, read by the
 * relay like any PROXY header on a listener with the broker option, is
 * checked against the allow rules, answered with a socket made here and
 * already connecting, and the client's connection ends. No byte of the
 * program's traffic passes through the relay.
 */
#ifndef SOCKGATE_BROKERD_H
#define SOCKGATE_BROKERD_H

#include <stddef.h>

#include "addr.h"
#include "broker.h"

struct brq;

/*
 * Where may the request go (b->dest from b->client, proto a RULE_*)? 0
 * with target set, or -1 with why (relay_conn.c: the allow rules of target
 * original, name rules included, through core's relayconn_route).
 */
typedef int (*broker_route_fn)(void *ctx, const struct brq *b, int proto, struct sg_addr *target,
			       char *why, size_t size);

struct brq {
	int cl;				/* the client's Unix connection (not closed here) */
	struct broker_req rq;
	struct sg_addr dest;		/* the destination, IPv4-mapped unmapped (for rules) */
	struct sg_addr client;		/* who the header says asks */
	struct sg_addr target;		/* where the socket connects */
	int err;			/* why it was refused, 0 when it was not */
	char why[512];			/* for the log line */
};

/*
 * Serve a parsed request (b->rq, b->client set; perr the parser's errno
 * when it refused the request, else 0): decide with route, make the
 * socket and start its connect, reply on b->cl (ctx goes to route). Returns 0 when a socket
 * went to the client, -1 when the reply said no (b->err, b->why) or the
 * reply could not be sent (b->why). Never blocks.
 */
int broker_serve(struct brq *b, int perr, broker_route_fn route, void *ctx);

#endif
