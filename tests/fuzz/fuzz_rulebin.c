/*
 * libFuzzer target for core/rulebin: arbitrary bytes are either rejected
 * with EINVAL or load into a ruleset that compiles to a file which loads
 * back to the same rules (field by field) and compiles again to the same
 * bytes; an input whose string pool is already laid out as rulebin_write
 * lays it out (the strings of each rule in order, none shared or unused)
 * compiles back to exactly its own bytes. The input's checksum is fixed up
 * half the time so that the checks behind it are reached too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxyv2.h"
#include "rulebin.h"

/* Is the string pool laid out as rulebin_write would lay it out? */
static int canonical(const struct ruleset *rs)
{
	size_t off = 0;

	for (size_t i = 0; i < rs->n; i++) {
		const uint32_t o[3] = { rs->rule[i].arg, rs->rule[i].name, rs->rule[i].source };
		for (int k = 0; k < 3; k++) {
			if (o[k] == RULE_NONE)
				continue;
			if (o[k] != off)
				return 0;
			off += strlen(rs->str + off) + 1;
		}
	}
	return off == rs->strlen;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = malloc(size ? size : 1);
	memcpy(b, data, size);
	if (size > 28 && (data[size - 1] & 1)) {
		uint32_t c = crc32c(0, b + 28, size - 28);
		b[24] = (uint8_t)c;
		b[25] = (uint8_t)(c >> 8);
		b[26] = (uint8_t)(c >> 16);
		b[27] = (uint8_t)(c >> 24);
	}
	struct rules_error e;
	struct ruleset *rs = rulebin_load(b, size, &e);
	if (rs) {
		void *out;
		size_t len;
		if (rulebin_write(rs, &out, &len) == 0) {
			struct ruleset *again = rulebin_load(out, len, &e);
			if (!again || again->n != rs->n)
				abort();
			for (size_t i = 0; i < rs->n; i++)
				if (!rules_same(rs, &rs->rule[i], again, &again->rule[i]))
					abort();
			/* the compiled form is a fixed point */
			void *out2;
			size_t len2;
			if (rulebin_write(again, &out2, &len2) || len2 != len || memcmp(out, out2, len))
				abort();
			if (canonical(rs) && (len != size || memcmp(out, b, size)))
				abort();
			rules_free(again);
			free(out2);
			free(out);
		}
		rules_free(rs);
	} else if (errno != EINVAL && errno != ENOMEM) {
		abort();
	}
	free(b);
	return 0;
}
