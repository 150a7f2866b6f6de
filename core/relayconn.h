/*
 * relayconn: what sockgate-relay decides for one connection, without the
 * sockets, so that it can be driven by a fuzz target (tests/fuzz/
 * fuzz_relayconn.c) with arbitrary bytes, splits and events:
 *   - reading the PROXY header from what a peek shows (how much to take,
 *     when to wait, when to give up);
 *   - the addresses the header gives, and where `original` may go under
 *     the allow rules;
 *   - the header written to the target;
 *   - one direction of the relay (bytes read, written, end of file,
 *     shutdown of the write side) and when the connection is done.
 * Pure functions: no I/O, no printing; reasons are written into a buffer.
 */
#ifndef SOCKGATE_RELAYCONN_H
#define SOCKGATE_RELAYCONN_H

#include <stddef.h>
#include <stdint.h>
#include "addr.h"
#include "proxyv2.h"
#include "rules.h"

enum relayconn_hdr {
	RC_HDR_NEED = 0,	/* wait for more bytes */
	RC_HDR_DONE,		/* *hdrlen bytes are the header: take exactly those */
	RC_HDR_BAD,		/* neither v1 nor v2, or malformed */
	RC_HDR_TOOLONG,		/* would be longer than max */
	RC_HDR_TRUNCATED,	/* the client shut down before the header ended */
	RC_HDR_EMPTY		/* the client closed without sending anything */
};

/*
 * What to do with the PROXY header, given the len bytes a peek shows at
 * buf (len 0: the client closed; a peek cannot show EOF behind data, so
 * eof says the client shut down its write side). On RC_HDR_DONE, *h is the
 * header and *hdrlen its length (<= len).
 */
int relayconn_header(const uint8_t *buf, size_t len, int eof, size_t max, struct proxy_hdr *h, size_t *hdrlen);

/*
 * The client and destination a complete header gives (left alone when it
 * names none). With original (the destination decides the target), a
 * header without a TCP destination is refused: -1 with the reason in why.
 */
int relayconn_addresses(const struct proxy_hdr *h, int original, struct sg_addr *client, struct sg_addr *dest,
			char *why, size_t size);

/*
 * original (and the broker): where may a connection of proto (RULE_TCP;
 * the broker's ICMP sockets RULE_ICMP) from client to dest go under rules
 * (NULL: none loaded)? 0 with *target set, or -1 with the reason in why.
 */
int relayconn_route(const struct ruleset *rules, const struct sg_addr *client, const struct sg_addr *dest,
		    int proto, int (*host_ok)(void *ctx, const char *pattern), void *ctx, const struct rule **matched,
		    struct sg_addr *target, char *why, size_t size);

/*
 * The PROXY header (version 1 or 2) for the target: the client and the
 * destination it asked for, the TLVs of the header that came in (in may be
 * NULL). Length written to buf, or -1.
 */
int relayconn_build_out(int version, const struct sg_addr *client, const struct sg_addr *dest,
			const struct proxy_hdr *in, uint8_t *buf, size_t size);

/* One direction of a relayed connection: from one socket to the other. */
struct relaydir {
	size_t inpipe;		/* read and not written yet */
	uint64_t bytes;		/* read from the source (pipes grow by it) */
	uint64_t sent;		/* written to the destination: what the log counts */
	unsigned eof:1;		/* the source ended */
	unsigned shut:1;	/* the destination's write side is shut down */
};

/* May the source be read now, into room for cap bytes? How many at most? */
size_t relaydir_room(const struct relaydir *d, size_t cap);
/* A read returned n (0: end of file). */
void relaydir_read(struct relaydir *d, size_t n);
/* A write took n of the inpipe bytes. */
void relaydir_wrote(struct relaydir *d, size_t n);
/* Is it time to shut down the destination's write side? (then set shut) */
int relaydir_shut_now(const struct relaydir *d);
/* Both directions ended and were passed on: the connection is done. */
int relayconn_done(const struct relaydir *up, const struct relaydir *down);

#endif
