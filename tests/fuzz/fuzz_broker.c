/*
 * libFuzzer target for the broker's request and reply (core/broker.h): any
 * input is either refused with one of the documented errnos, or needs more
 * bytes, or parses to a request that builds again to bytes that parse to
 * the same fields. The reply decoder gets the same input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct broker_req rq, rq2;
	unsigned char buf[PROXY_MAXLEN];
	size_t n = 0, n2 = 0;
	int st, e;

	errno = 0;
	if (broker_reply_decode(data, size, &st, &e) == 0) {
		if (st != BROKER_OK && st != BROKER_REFUSED)
			abort();
		unsigned char r[BROKER_REPLY_LEN];
		if (broker_reply_encode(r, sizeof r, st, e) != BROKER_REPLY_LEN ||
		    memcmp(r, data, 2) || memcmp(r + 4, data + 4, 4))
			abort();
	} else if (errno != EINVAL && errno != EPROTONOSUPPORT) {
		abort();
	}

	errno = 0;
	int r = broker_req_parse(data, size, &rq, &n);
	if (r < 0) {
		if (errno != EINVAL && errno != EPROTONOSUPPORT && errno != EAFNOSUPPORT && errno != EOPNOTSUPP)
			abort();
		return 0;
	}
	if (r == PROXY_NEED) {
		if (n == 0 || n > PROXY_MAXLEN)
			abort();
		return 0;
	}
	if (n == 0 || n > size)
		abort();
	if (r == BROKER_NONE)
		return 0;
	if (r != PROXY_DONE || rq.version != BROKER_VERSION)
		abort();
	int l = broker_req_build(buf, sizeof buf, &rq);
	if (l < 0) {
		/* only a request whose fields the builder cannot write back (long TLVs) */
		if (errno != EINVAL && errno != ENOSPC)
			abort();
		return 0;
	}
	if (broker_req_parse(buf, (size_t)l, &rq2, &n2) != PROXY_DONE || n2 != (size_t)l)
		abort();
	if (rq2.op != rq.op || rq2.h.socktype != rq.h.socktype || rq2.h.dstlen != rq.h.dstlen ||
	    memcmp(&rq2.h.dst, &rq.h.dst, rq.h.dstlen) || memcmp(&rq2.h.src, &rq.h.src, rq.h.srclen) ||
	    strcmp(rq2.h.authority, rq.h.authority) || strcmp(rq2.h.netns, rq.h.netns) ||
	    rq2.h.unique_id_len != rq.h.unique_id_len ||
	    memcmp(rq2.h.unique_id, rq.h.unique_id, rq.h.unique_id_len))
		abort();
	return 0;
}
