/*
 * Fuzz target for core/lookup (the resolver protocol): requests and
 * replies parse without reading past the buffer, "need" never asks for
 * fewer bytes than given, and what parses builds back byte for byte; an
 * address list (lookup_addr_list) never gives more than LOOKUP_LIST_MAX.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lookup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[LOOKUP_MAX];
	struct lookup_req q;
	static struct lookup_rep r;
	size_t used = 0;

	int k = lookup_req_parse(data, size, &q, &used);
	if (k == LOOKUP_NEED && used <= size && size >= LOOKUP_HDR)
		abort();
	if (k == LOOKUP_DONE) {
		int n = lookup_req_build(out, sizeof out, &q);
		if (n < 0 || (size_t)n != used || memcmp(out, data, used))
			abort();
	}
	k = lookup_rep_parse(data, size, &r, &used);
	if (k == LOOKUP_DONE) {
		int n = lookup_rep_build(out, sizeof out, &r);
		if (n < 0 || (size_t)n != used || memcmp(out + 16, data + 16, used - 16) ||
		    memcmp(out, data, 4) || memcmp(out + 6, data + 6, 10))
			abort();
	}
	if (size < 512) {
		char s[512];
		struct lookup_addr xs[LOOKUP_LIST_MAX];
		memcpy(s, data, size);
		s[size] = 0;
		int n = lookup_addr_list(s, xs);
		if (n == 0 || n > LOOKUP_LIST_MAX || lookup_addr_list(s, NULL) != n)
			abort();
	}
	return 0;
}
