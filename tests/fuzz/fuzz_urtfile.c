/*
 * libFuzzer target for core/urtfile: arbitrary bytes as a u-relay-tproxy
 * compiled file (the header's length field is fixed up half the time, so the
 * entry checks behind it are reached), as gen-config.py text, as an index
 * file and as URELAY_TPROXY_IDX_FILES. Each is refused with EINVAL or gives
 * rule text that the rules parser accepts; a checked index file answers
 * urt_domain() for any address.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "urtfile.h"

static void rules_of(char *text)
{
	struct rules_error e;
	struct ruleset *rs = rules_parse(text, strlen(text), &e);
	/* what urtfile writes must always parse */
	if (!rs && errno != ENOMEM)
		abort();
	rules_free(rs);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_error e;
	char *text;
	uint8_t *b = malloc(size + 1);

	memcpy(b, data, size);
	b[size] = 0;
	if (size >= 16 && (data[size - 1] & 1)) {
		b[0] = 0xf2, b[1] = 0x00, b[2] = 0xa0, b[3] = 0x1f;
		b[6] = b[7] = 0;	/* no total length: any size */
	}
	if (urt_to_rules(b, size, &text, &e) == 0)
		rules_of(text);
	else if (errno != EINVAL && errno != ENOMEM)
		abort();
	if (urt_text_to_rules((const char *)data, size, &text, &e) == 0)
		rules_of(text);
	else if (errno != EINVAL && errno != ENOMEM)
		abort();

	if (size >= 8) {
		b[0] = 0xf2, b[1] = 0x00, b[2] = 0xa0, b[3] = 0x1e;
	}
	if (urt_idxfile_check(b, size, &e) == 0) {
		struct urt_idx t = { 0, 1, b, size };
		struct rules_idxsel sel = { data[size - 1] & 127, 0, 0, 0xffffffffu, 0, 0 };
		uint8_t ip[16] = { 0 };
		char name[129];
		memcpy(ip, data, size < 16 ? size : 16);
		size_t n = urt_domain(&t, 1, ip, &sel, name);
		if (n > 128 || strlen(name) != n)
			abort();
	}
	struct urt_idxspec it[8];
	memcpy(b, data, size);
	b[size] = 0;
	int n = urt_idxspec_parse((const char *)b, it, 8, &e);
	if (n < 0 && errno != EINVAL && errno != E2BIG)
		abort();
	for (int i = 0; i < n; i++)
		if (it[i].val < (const char *)b || it[i].val + it[i].vlen > (const char *)b + size)
			abort();
	free(b);
	return 0;
}
