/*
 * libFuzzer target for core/rules: any input either parses or fails with
 * EINVAL and a line:col inside the input; each parsed rule formats back to
 * text that parses to the same rule (field by field, not only the same
 * text again); the ruleset compiles and loads from its compiled form to the
 * same rules; lookups on it never crash.
 *
 * Speed (tests/fuzz/README.md): the time per input went into allocation
 * under ASan, where every block is filled and then quarantined, so a
 * target that allocates much walks through fresh memory (page faults,
 * cache misses). The read-back parses therefore skip the lookup index
 * (rules_parse_unindexed), the parser starts with small arrays, and the
 * quarantine is kept to 16 MiB: a use after free within one input is
 * still caught, as each input allocates a few KiB.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rulebin.h"
#include "rules.h"

const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "quarantine_size_mb=16";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_error e;
	struct ruleset *rs = rules_parse((const char *)data, size, &e);

	if (!rs) {
		if (errno == EINVAL) {
			size_t lines = 1;
			for (size_t i = 0; i < size; i++)
				lines += data[i] == '\n';
			if (e.line < 1 || e.line > lines || !memchr(e.msg, 0, sizeof e.msg))
				abort();
		}
		return 0;
	}
	/* format -> parse gives the same rule, and the same text again */
	for (size_t i = 0; i < rs->n; i++) {
		char a[1024], b[1024];
		if (rules_format(rs, &rs->rule[i], a, sizeof a) < 0)
			continue;	/* too long to print: allowed */
		struct ruleset *one = rules_parse_unindexed(a, strlen(a), &e);
		if (!one || one->n != 1 || !rules_same(rs, &rs->rule[i], one, &one->rule[0]) ||
		    rules_format(one, &one->rule[0], b, sizeof b) < 0 || strcmp(a, b))
			abort();
		rules_free(one);
	}
	void *bin;
	size_t len;
	if (!rulebin_write(rs, &bin, &len)) {
		struct ruleset *back = rulebin_load(bin, len, &e);
		if (!back || back->n != rs->n)
			abort();
		for (size_t i = 0; i < rs->n; i++)
			if (!rules_same(rs, &rs->rule[i], back, &back->rule[i]))
				abort();
		rules_free(back);
		free(bin);
	}
	static const char *const q[] = { "10.1.2.3:80", "[2001:db8::1]:443", "127.0.0.1:0", "[::ffff:10.0.0.1]:53" };
	for (int d = RULE_CONNECT; d < RULE_NDIR; d++)
		for (size_t i = 0; i < 4; i++) {
			struct sg_addr a, p;
			addr_parse(q[i], &a);
			addr_parse(q[(i + 1) % 4], &p);
			struct rules_query qq = { d, RULE_TCP, &a.u.sa, &p.u.sa };
			const struct rule *r = rules_match(rs, &qq);
			if (r && (r < rs->rule || r >= rs->rule + rs->n))
				abort();
		}
	rules_free(rs);
	return 0;
}
