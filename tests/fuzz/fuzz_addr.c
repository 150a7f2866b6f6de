/*
 * libFuzzer target for core/addr: any text either parses or is refused
 * with errno set; a parsed address prints back to text that parses to the
 * same address; prefixes behave likewise and match their own address.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[256], out[ADDR_STRLEN];
	struct sg_addr a, b;
	struct sg_prefix p, q;

	if (size >= sizeof in)
		return 0;
	memcpy(in, data, size);
	in[size] = 0;
	errno = 0;
	if (addr_parse(in, &a) == 0) {
		if (addr_format(&a.u.sa, a.len, out, sizeof out) < 0)
			abort();
		if (addr_parse(out, &b) || a.len != b.len || memcmp(&a.u, &b.u, a.len))
			abort();
		uint8_t v[16];
		if (!addr_to16(&a.u.sa, v) && prefix_parse("*", &p) == 0 && !prefix_match(&p, v))
			abort();
	} else if (!errno) {
		abort();
	}
	if (prefix_parse(in, &p) == 0) {
		if (prefix_format(&p, out, sizeof out) < 0 || prefix_parse(out, &q) || p.plen != q.plen ||
		    memcmp(p.addr, q.addr, 16) || !prefix_match(&p, p.addr))
			abort();
	}
	return 0;
}
