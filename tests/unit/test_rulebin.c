/*
 * Unit tests for core/rulebin: the compiled form round-trips, and any
 * damage (a flipped byte anywhere, truncation at any length, a field out
 * of range behind a valid checksum) rejects the whole file.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "damage.h"
#include "rulebin.h"

static const char text[] =
	"connect tcp 10.0.0.0/8:80 -> unix /run/web/%a-%p.sock proxy-v2 name=web\n"
	"connect udp [::1]:53 -> abstract dns\n"
	"bind tcp *:8080 -> fdpass /run/sg/web.sock mode=0660\n"
	"accept tcp 127.0.0.2:80 from 192.168.0.0/16 -> reject ETIMEDOUT rst\n"
	"connect 2001:db8::/32 -> nat64 64:ff9b::/96\n"
	"connect [::1]:443 -> tcp 127.0.0.1:8443 source=192.0.2.1:0\n"
	"bind -> systemd\n";

static const struct unit_seal seal = { 24, 28 };

static int rejected(const void *b, size_t len, const char *want)
{
	struct rules_error e = { .msg = "" };
	errno = 0;
	struct ruleset *rs = rulebin_load(b, len, &e);
	rules_free(rs);
	return unit_refused(rs == NULL, e.msg, want);
}

int main(void)
{
	struct rules_error e;
	struct ruleset *rs = rules_parse(text, strlen(text), &e);
	REQUIRE(rs != NULL, "source rules parse");
	void *bin;
	size_t len;
	CHECK(rulebin_write(rs, &bin, &len) == 0 && len > 28, "compile");
	CHECK(rulebin_is(bin, len) && !rulebin_is(text, strlen(text)), "rulebin_is tells the forms apart");

	struct ruleset *back = rulebin_load(bin, len, &e);
	CHECK(back && back->n == rs->n, "load the compiled form");
	int same = back && back->n == rs->n;
	for (size_t i = 0; same && i < rs->n; i++) {
		same = rules_same(rs, &rs->rule[i], back, &back->rule[i]);
		if (!same) {
			char a[512], b[512];
			rules_format(rs, &rs->rule[i], a, sizeof a);
			rules_format(back, &back->rule[i], b, sizeof b);
			printf("#   %s\n#   %s\n", a, b);
		}
	}
	CHECK(same, "every rule reads back the same");
	struct sg_addr d;
	addr_parse("10.9.9.9:80", &d);
	struct rules_query q = { RULE_CONNECT, RULE_TCP, &d.u.sa, NULL, NULL, NULL };
	CHECK(back && rules_match(back, &q) == &back->rule[0], "the loaded ruleset is indexed and matches");

	void *bin2;
	size_t len2;
	CHECK(back && rulebin_write(back, &bin2, &len2) == 0 && len2 == len && !memcmp(bin, bin2, len),
	      "compile(load(compile(x))) gives the same bytes");
	if (back)
		free(bin2);
	rules_free(back);

	unit_damage(bin, len, rejected);
	uint8_t *b = malloc(len);

	memcpy(b, bin, len);
	b[4] = 9;
	CHECK(rejected(b, len, "version 9"), "an unknown version is named");
	memcpy(b, bin, len);
	unit_put32le(b + 12, 1000000);
	CHECK(rejected(b, len, "do not add up"), "a rule count past the end");
	memcpy(b, bin, len);
	unit_put32le(b + 12, 0xffffffffu);
	CHECK(rejected(b, len, "do not add up"), "a rule count that would overflow");

	static const struct unit_field field[] = {
		{ 28 + 0, 9, "bad direction" },
		{ 28 + 1, 0, "bad protocol" },
		{ 28 + 2, 77, "bad action" },
		{ 28 + 20, 200, "bad prefix" },
		{ 28 + 19, 1, "bad prefix" },	/* host bits set under a /104 */
		{ 28 + 3, 1, "reserved" },
		{ 28 + 51, 0x80, "unknown option flags" },
		{ 28 + 63, 0x10, "string offset" },
		{ 28 + 5 * 88 + 60, 0, "does not check" },	/* tcp target now names a path */
	};
	unit_damage_fields(bin, len, seal, field, sizeof field / sizeof field[0], rejected);
	memcpy(b, bin, len);
	b[len - 1] = 'x';
	unit_reseal(b, len, seal);
	CHECK(rejected(b, len, "not terminated"), "an unterminated string pool");

	/* rules_load_any: the one loader for text and compiled files */
	memcpy(b, bin, len);
	b[28 + 2] = 77;
	unit_reseal(b, len, seal);
	memset(&e, 0xff, sizeof e);
	CHECK(!rules_load_any((char *)b, len, NULL, &e) && errno == EINVAL && e.line == 0 && e.col == 0 &&
	      !strncmp(e.msg, "compiled rules: rule 1: ", 24),
	      "a bad compiled file: no made-up position, a \"compiled rules: rule N\" message (%u:%u %s)",
	      e.line, e.col, e.msg);
	struct ruleset *any = rules_load_any(bin, len, NULL, &e);
	CHECK(any && any->n == 7, "a compiled file loads through rules_load_any");
	rules_free(any);
	CHECK(!rules_load_any(bin, len, "connect -> reject", &e) && errno == EINVAL &&
	      !strncmp(e.msg, "compiled rules:", 15), "no rules text is added to a compiled file");
	any = rules_load_any("connect 10.0.0.0/8 -> reject\n", 29, "bind -> systemd", &e);
	CHECK(any && any->n == 2 && any->rule[1].line == 2, "text and extra text: the extra rules come after");
	rules_free(any);
	CHECK(!rules_load_any("connect 10.0.0.0/8 -> reject", 28, "bind -> bogus", &e) && errno == EINVAL &&
	      e.line == 2 && e.col > 1, "a bad extra rule is named at its line:col (%u:%u)", e.line, e.col);

	free(b);
	free(bin);
	rules_free(rs);
	return unit_done();
}
