/*
 * broker: the broker's request (a PROXY v2 header with a sockgate TLV) and
 * reply, as laid out in broker.h. Pure functions, no I/O: the relay's
 * broker and the preload both call them, and a fuzz target too.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "broker.h"

#define TLV_LEN 4	/* version, op, reserved u16 */
#define MAX_ERRNO 4095	/* the kernel's errno range */

static int fail(int e)
{
	errno = e;
	return -1;
}

/* What version 1 asks of a request: 0, or the errno that refuses it. */
static int refusal(const struct broker_req *rq)
{
	if (rq->h.command != PROXY_CMD_PROXY ||
	    (rq->h.dst.ss_family != AF_INET && rq->h.dst.ss_family != AF_INET6))
		return EAFNOSUPPORT;
	/* does the op take this transport? UDP is never brokered */
	switch (rq->op) {
	case BROKER_OP_TCP:
		return rq->h.socktype == SOCK_STREAM ? 0 : EOPNOTSUPP;
	case BROKER_OP_PING:
	case BROKER_OP_RAW:
		return rq->h.socktype == 0 || rq->h.socktype == SOCK_DGRAM ? 0 : EOPNOTSUPP;
	}
	return EOPNOTSUPP;
}

int broker_req_parse(const void *buf, size_t len, struct broker_req *rq, size_t *n)
{
	const uint8_t *v;
	size_t vl;

	memset(rq, 0, sizeof *rq);
	int r = proxyv2_parse(buf, len, &rq->h, n);
	if (r < 0)
		*n = 0;
	if (r != PROXY_DONE)
		return r;
	if (rq->h.version != 2 || proxyv2_tlv_find(buf, *n, PP2_TYPE_SOCKGATE_BROKER, &v, &vl) < 0)
		return BROKER_NONE;
	if (vl < 1)
		return fail(EINVAL);
	if (v[0] != BROKER_VERSION)
		return fail(EPROTONOSUPPORT);
	if (vl < TLV_LEN)
		return fail(EINVAL);
	rq->version = v[0];
	rq->op = v[1];
	int e = refusal(rq);
	return e ? fail(e) : PROXY_DONE;
}

int broker_req_build(void *buf, size_t size, const struct broker_req *rq)
{
	uint8_t tlv[TLV_LEN] = { BROKER_VERSION, (uint8_t)rq->op, 0, 0 };

	if (refusal(rq))
		return fail(EINVAL);
	int n = proxyv2_build(buf, size, &rq->h, 0);
	if (n < 0)
		return -1;
	return proxyv2_tlv_append(buf, size, (size_t)n, PP2_TYPE_SOCKGATE_BROKER, tlv, sizeof tlv);
}

int broker_reply_encode(void *buf, size_t size, int status, int err)
{
	uint8_t *p = buf;

	if ((status == BROKER_OK && err) ||
	    (status == BROKER_REFUSED && (err <= 0 || err > MAX_ERRNO)) ||
	    (status != BROKER_OK && status != BROKER_REFUSED))
		return fail(EINVAL);
	if (size < BROKER_REPLY_LEN)
		return fail(ENOSPC);
	p[0] = BROKER_VERSION;
	p[1] = (uint8_t)status;
	p[2] = 0;
	p[3] = BROKER_REPLY_LEN;
	p[4] = (uint8_t)((unsigned)err >> 24);
	p[5] = (uint8_t)((unsigned)err >> 16);
	p[6] = (uint8_t)((unsigned)err >> 8);
	p[7] = (uint8_t)err;
	return BROKER_REPLY_LEN;
}

int broker_reply_decode(const void *buf, size_t len, int *status, int *err)
{
	const uint8_t *p = buf;

	if (len < 1)
		return fail(EINVAL);
	if (p[0] != BROKER_VERSION)
		return fail(EPROTONOSUPPORT);
	if (len < BROKER_REPLY_LEN)
		return fail(EINVAL);
	size_t l = (size_t)p[2] << 8 | p[3];
	uint32_t e = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
	if (l < BROKER_REPLY_LEN || l > len || p[1] > BROKER_REFUSED ||
	    (p[1] == BROKER_OK && e) || (p[1] == BROKER_REFUSED && (e == 0 || e > MAX_ERRNO)))
		return fail(EINVAL);
	*status = p[1];
	*err = (int)e;
	return 0;
}
