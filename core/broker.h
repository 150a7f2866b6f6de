/*
 * broker: the request and reply of sockgate-relay's broker (see
 * sockgate-relay(8), BROKER), which makes a socket on the host after its
 * allow rules and passes it to the asking program with SCM_RIGHTS.
 *
 * A request is a PROXY protocol v2 header (core/proxyv2.h; haproxy's
 * proxy-protocol.txt section 2.2) that carries, besides what any header
 * carries (source, destination, AUTHORITY, NETNS, ...), one TLV of the
 * custom type PP2_TYPE_SOCKGATE_BROKER (0xE0, section 2.2.8) whose value is
 *   u8 version (1), u8 op (BROKER_OP_*), u16 reserved (0, ignored).
 * A longer value of version 1 is accepted (the rest skipped). Version 1
 * asks for an inet destination: TCP (transport STREAM) for BROKER_OP_TCP;
 * for the ICMP ops the transport is UNSPEC or DGRAM and the ports are 0.
 *
 * The reply (integers big-endian), with the socket attached (SCM_RIGHTS)
 * when the status is BROKER_OK:
 *   u8 version (1), u8 status, u16 length (8; longer accepted),
 *   u32 errno (0 with BROKER_OK; why it was refused otherwise).
 */
#ifndef SOCKGATE_BROKER_H
#define SOCKGATE_BROKER_H

#include <stddef.h>
#include <sys/types.h>

#include "proxyv2.h"

#define BROKER_VERSION 1
#define BROKER_REPLY_LEN 8

enum broker_op {
	BROKER_OP_TCP = 1,	/* a TCP socket, connecting to the destination */
	BROKER_OP_PING = 2,	/* an ICMP datagram ("ping") socket, SOCK_DGRAM/IPPROTO_ICMP(V6) */
	BROKER_OP_RAW = 3,	/* a raw ICMP socket, SOCK_RAW/IPPROTO_ICMP(V6) */
};

enum broker_status { BROKER_OK = 0, BROKER_REFUSED = 1 };

struct broker_req {
	int version;		/* of the broker TLV */
	int op;			/* enum broker_op */
	struct proxy_hdr h;	/* addresses and the other TLVs */
};

/* broker_req_parse results besides PROXY_DONE / PROXY_NEED */
#define BROKER_NONE 2		/* a complete PROXY header with no broker TLV; *n its length */

/*
 * Parse a request at the start of buf, incrementally like proxyv2_parse():
 * PROXY_DONE (*n = its length), PROXY_NEED (*n = bytes still needed at
 * least), BROKER_NONE, or -1 with errno: EINVAL (malformed),
 * EPROTONOSUPPORT (a broker TLV of another version), EAFNOSUPPORT (the
 * destination is not IPv4/IPv6), EOPNOTSUPP (an op this version does not
 * know, or a transport the op does not take: UDP is never brokered). *n
 * is 0 when the PROXY header itself is malformed, and its length on the
 * errors found after it was complete (the asker may be told why).
 */
int broker_req_parse(const void *buf, size_t len, struct broker_req *rq, size_t *n);

/* Build a request (rq->version is ignored); length, or -1 with ENOSPC / EINVAL. */
int broker_req_build(void *buf, size_t size, const struct broker_req *rq);

/* Encode a reply; BROKER_REPLY_LEN, or -1 with ENOSPC / EINVAL. */
int broker_reply_encode(void *buf, size_t size, int status, int err);

/*
 * Decode a reply: 0 with *status and *err, or -1 with EINVAL (malformed,
 * an OK with an errno, a refusal without one) / EPROTONOSUPPORT (version).
 */
int broker_reply_decode(const void *buf, size_t len, int *status, int *err);

#endif
