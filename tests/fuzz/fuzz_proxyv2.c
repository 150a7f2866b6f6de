/*
 * Fuzz target for core/proxyv2 (v1 and v2 parse). Besides "no crash, no
 * read past the buffer", it checks the parser's promises: a done header
 * lies within the input and is not done one byte earlier; "need N" is never
 * 0; and a header that parses builds back (v2 from any, v1 from TCP4/TCP6)
 * to one that parses to the same addresses and TLVs.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxyv2.h"

static void same(const struct proxy_hdr *a, const struct proxy_hdr *b, int tlvs)
{
	if (a->src.ss_family != b->src.ss_family || a->dst.ss_family != b->dst.ss_family ||
	    a->srclen != b->srclen || a->dstlen != b->dstlen ||
	    memcmp(&a->src, &b->src, a->srclen) || memcmp(&a->dst, &b->dst, a->dstlen))
		abort();
	if (tlvs && (a->authority_len != b->authority_len || strcmp(a->authority, b->authority) ||
	    a->netns_len != b->netns_len || strcmp(a->netns, b->netns) ||
	    a->unique_id_len != b->unique_id_len || memcmp(a->unique_id, b->unique_id, a->unique_id_len)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[PROXY_MAXLEN];
	struct proxy_hdr h, g;
	size_t n = 0, m;
	int r, l;

	r = proxyv2_parse(data, size, &h, &n);
	if (r == PROXY_NEED && n == 0)
		abort();
	if (r != PROXY_DONE)
		return 0;
	if (n == 0 || n > size)
		abort();
	if (proxyv2_parse(data, n - 1, &g, &m) == PROXY_DONE)
		abort();

	if (h.command == PROXY_CMD_PROXY) {
		l = proxyv2_build(out, sizeof out, &h, PROXYV2_CRC32C);
		if (l < 0)
			abort();
		if (proxyv2_parse(out, (size_t)l, &g, &m) != PROXY_DONE || m != (size_t)l || !g.has_crc32c)
			abort();
		same(&h, &g, 1);
		if (h.src.ss_family == AF_INET || h.src.ss_family == AF_INET6) {
			l = proxyv1_build((char *)out, sizeof out, &h);
			if (l < 0 || proxyv2_parse(out, (size_t)l, &g, &m) != PROXY_DONE)
				abort();
			if (h.socktype != SOCK_DGRAM)
				same(&h, &g, 0);
		}
	}
	return 0;
}
