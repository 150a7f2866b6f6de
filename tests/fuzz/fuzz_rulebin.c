/*
 * libFuzzer target for core/rulebin: arbitrary bytes are either rejected
 * with EINVAL or load into a ruleset that compiles back to the same bytes.
 * The input's checksum is fixed up half the time so that the checks behind
 * it are reached too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proxyv2.h"
#include "rulebin.h"

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
			/* the string pool may be laid out differently, the rules not */
			struct ruleset *again = rulebin_load(out, len, &e);
			if (!again || again->n != rs->n)
				abort();
			rules_free(again);
			free(out);
		}
		rules_free(rs);
	} else if (errno != EINVAL && errno != ENOMEM) {
		abort();
	}
	free(b);
	return 0;
}
