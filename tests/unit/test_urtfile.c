/*
 * core/urtfile: u-relay-tproxy compiled files and gen-config.py text become
 * the sockgate rules they mean; damaged files are refused whole, with a
 * message naming what is wrong; index files name type 4 destinations.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "urtfile.h"

static void put16(uint8_t *p, unsigned v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v >> 16); put16(p + 2, v & 0xffff); }

/* A compiled file built by hand from the layout: entries, then data. */
struct built {
	uint8_t b[4096];
	size_t n, data;
};

static void begin(struct built *f, unsigned count)
{
	memset(f, 0, sizeof *f);
	put32(f->b, URT_MAGIC);
	put16(f->b + 4, count);
	put16(f->b + 6, 1);
	f->data = 0;
}

static void entry(struct built *f, const char *pfx, unsigned plen, unsigned type, const void *d, size_t dl)
{
	uint8_t *e = f->b + 16 + f->n * 32;
	unsigned count = (unsigned)f->b[4] << 8 | f->b[5];
	inet_pton(AF_INET6, pfx, e);
	e[16] = (uint8_t)plen;
	e[17] = (uint8_t)type;
	put16(e + 18, (unsigned)dl);
	put32(e + 20, (uint32_t)f->data);
	memcpy(f->b + 16 + count * 32 + f->data, d, dl);
	f->data += (dl + 7) & ~(size_t)7;
	f->n++;
}

static char *rules_of(const void *b, size_t len, struct rules_error *e)
{
	char *t = NULL;
	if (urt_to_rules(b, len, &t, e) < 0)
		return NULL;
	return t;
}

static int refused(const void *b, size_t len, const char *why)
{
	struct rules_error e;
	char *t = rules_of(b, len, &e);
	if (t) {
		free(t);
		return 0;
	}
	if (errno != EINVAL || !strstr(e.msg, why)) {
		printf("#   got errno %d, '%s'\n", errno, e.msg);
		return 0;
	}
	return 1;
}

int main(void)
{
	struct built f;
	struct rules_error e;
	char *t;

	begin(&f, 6);
	entry(&f, "fe8f:0:1::", 48, 2, "/run/u-relay/64-#//3_.sock", 27);
	entry(&f, "fe8f::3:0:0", 96, 1, "/run/sb/#//6_/#//7__#//P_%x#//7_", 33);
	entry(&f, "::ffff:127.0.0.0", 104, 0, "", 0);
	uint8_t t3[52] = { 0 };
	inet_pton(AF_INET6, "2a00:1098:2b::1:0:0", t3);
	memcpy(t3 + 16, "eth0", 4);
	entry(&f, "::ffff:0:0", 96, 3, t3, sizeof t3);
	uint8_t t4[32 + 16] = { 1, 0, 96, 0 };
	put32(t4 + 4, 0xffff);
	put32(t4 + 8, 0xffffffff);
	put32(t4 + 12, 7);
	memcpy(t4 + 32, "/run/t4.sock", 12);
	entry(&f, "fe8f:1::", 32, 4, t4, sizeof t4);
	entry(&f, "2001:db8::1", 64, 1, "/x", 2);
	t = rules_of(f.b, sizeof f.b, &e);
	CHECK(!t && strstr(e.msg, "entry 2: path has a byte 0x23"),
	      "a second #//7_ stays literal, and a '#' cannot be carried: refused (%s)", e.msg);
	free(t);
	begin(&f, 6);
	entry(&f, "fe8f:0:1::", 48, 2, "/run/u-relay/64-#//3_.sock", 27);
	entry(&f, "fe8f::3:0:0", 96, 1, "/run/sb/#//6_/#//7__#//P_%x", 27);
	entry(&f, "::ffff:127.0.0.0", 104, 0, "", 0);
	entry(&f, "::ffff:0:0", 96, 3, t3, sizeof t3);
	entry(&f, "fe8f:1::", 32, 4, t4, sizeof t4);
	entry(&f, "2001:db8::1", 64, 1, "/x", 2);
	t = rules_of(f.b, sizeof f.b, &e);
	CHECK_STR(t, "connect tcp [fe8f:0:1::/48] -> unix /run/u-relay/64-%3.sock proxy-v2 source=[::]:0\n"
		     "connect tcp [fe8f::3:0:0/96] -> unix /run/sb/%6/%7_%P%%x\n"
		     "connect tcp 127.0.0.0/8 -> pass\n"
		     "connect tcp 0.0.0.0/0 -> translate 2a00:1098:2b::1:0:0/96 dev=eth0\n"
		     "connect tcp [fe8f:1::/32] -> unix /run/t4.sock proxy-v2 source=[::]:0 "
		     "authority-idx=96,0,0xffff,0xffffffff,7,0\n"
		     "# entry 6 never matches (host bits set in its prefix)\n",
		  "all five types, IPv4-mapped prefixes as IPv4, a prefix with host bits");
	struct ruleset *rs = t ? rules_parse(t, strlen(t), &e) : NULL;
	CHECK(rs && rs->n == 5, "the text parses: 5 rules (%s)", rs ? "ok" : e.msg);
	rules_free(rs);
	free(t);

	CHECK(urt_is(f.b, sizeof f.b) && !urt_is(f.b + 1, 8), "urt_is: the magic");
	CHECK(refused(f.b, 15, "shorter than its 16-byte header"), "shorter than a header");
	CHECK(refused(f.b, 4095, "header says 4096 bytes"), "truncated by one byte");
	uint8_t c[4096];
	memcpy(c, f.b, sizeof c);
	c[0] = 0xf3;
	CHECK(refused(c, sizeof c, "bad magic"), "bad magic");
	memcpy(c, f.b, sizeof c);
	put16(c + 4, 200);
	CHECK(refused(c, sizeof c, "200 entries need"), "entry count past the end");
	memcpy(c, f.b, sizeof c);
	put32(c + 16 + 20, 4090);
	CHECK(refused(c, sizeof c, "entry 1: data at"), "data offset past the end");
	memcpy(c, f.b, sizeof c);
	put32(c + 16 + 20, 0xfffffff0u);
	CHECK(refused(c, sizeof c, "entry 1: data at"), "data offset that would wrap");
	memcpy(c, f.b, sizeof c);
	put16(c + 16 + 18, 0xffff);
	CHECK(refused(c, sizeof c, "entry 1: data at"), "data length past the end");
	memcpy(c, f.b, sizeof c);
	c[16 + 16] = 129;
	CHECK(refused(c, sizeof c, "prefix length 129"), "prefix length 129");
	memcpy(c, f.b, sizeof c);
	c[16 + 17] = 5;
	CHECK(refused(c, sizeof c, "type 5 is not supported"), "type 5");
	memcpy(c, f.b, sizeof c);
	put16(c + 16 + 3 * 32 + 18, 8);
	CHECK(refused(c, sizeof c, "entry 4: type 3 data is 8 bytes"), "short type 3 data");
	memcpy(c, f.b, sizeof c);
	put16(c + 16 + 4 * 32 + 18, 16);
	CHECK(refused(c, sizeof c, "entry 5: type 4 data is 16 bytes"), "short type 4 data");
	memcpy(c, f.b, sizeof c);
	put16(c + 16 + 18, 0);
	CHECK(refused(c, sizeof c, "entry 1: type 2 with an empty path"), "empty path");
	memcpy(c, f.b, sizeof c);
	c[16 + 6 * 32 + 5] = ' ';
	CHECK(refused(c, sizeof c, "entry 1: path has a byte 0x20"), "a space in a path");
	size_t bad = 0;
	for (size_t n = 0; n < sizeof f.b; n++)
		bad += !refused(f.b, n, "");
	CHECK(bad == 0, "every truncation refused (%zu accepted)", bad);
	/* no total length: any size that holds the entries and data */
	memcpy(c, f.b, sizeof c);
	put16(c + 6, 0);
	t = rules_of(c, 16 + 6 * 32 + 200, &e);
	CHECK(t != NULL, "total length 0: the size is not checked (%s)", t ? "ok" : e.msg);
	free(t);

	/* a path cut at 107 bytes as u-relay-tproxy did */
	char lp[200];
	memset(lp, 'a', sizeof lp);
	lp[0] = '/';
	begin(&f, 1);
	entry(&f, "::", 0, 1, lp, sizeof lp);
	t = rules_of(f.b, sizeof f.b, &e);
	CHECK(t && strlen(t) == strlen("connect tcp * -> unix \n") + 107, "a long path cut to 107 bytes");
	free(t);

	/* gen-config.py text */
	const char *text = "# comment\n"
			   "fe8f:0:1::/48 '/run/u-relay/64-#//3_.sock' 2\n"
			   "fe8f::3:0:0/96 \"/run/socketbox2/#//6_/#//7__#//P_\" 1\n"
			   "::ffff:127.0.0.0/104 '' 0\n"
			   "lonely\n"
			   "::ffff:0:0/96 2a00:1098:2b::1:0:0 3\n"
			   "2001:db8::/32 /run/default.sock\n"
			   "fe8f:1::/32 '1,0,96,0,0xffff,0xffffffff,0,0,0,0,0;/run/t4.sock' 4 # trailing\n";
	CHECK(urt_text_is(text, strlen(text)), "gen-config text is told apart");
	CHECK(!urt_text_is("connect * -> pass\n", 18), "sockgate text is not taken for it");
	CHECK(!urt_text_is("connect *\n", 10), "nor a sockgate rule missing its '->'");
	CHECK(!urt_text_is("SGRB\2\0::/0 x\n", 14), "nor binary bytes with a ':'");
	t = NULL;
	CHECK(urt_text_to_rules(text, strlen(text), &t, &e) == 0, "gen-config text reads (%s)", t ? "" : e.msg);
	CHECK_STR(t, "\n"
		     "connect tcp [fe8f:0:1::/48] -> unix /run/u-relay/64-%3.sock proxy-v2 source=[::]:0\n"
		     "connect tcp [fe8f::3:0:0/96] -> unix /run/socketbox2/%6/%7_%P\n"
		     "connect tcp 127.0.0.0/8 -> pass\n"
		     "\n"
		     "connect tcp 0.0.0.0/0 -> translate 2a00:1098:2b::1:0:0/96\n"
		     "connect tcp [2001:db8::/32] -> unix /run/default.sock proxy-v2 source=[::]:0\n"
		     "connect tcp [fe8f:1::/32] -> unix /run/t4.sock proxy-v2 source=[::]:0 "
		     "authority-idx=96,0,0xffff,0xffffffff,0,0\n",
		  "gen-config text: one line per input line, type 2 by default");
	free(t);
	struct { const char *in; unsigned line; const char *why; } badtext[] = {
		{ "fe8f::1/48 /x 2\n", 1, "not an IPv6 network" },
		{ "\n10.0.0.0/8 /x 2\n", 2, "not an IPv6 network" },
		{ "::/0 '/x 2\n", 1, "unterminated quote" },
		{ "::/0 /x two\n", 1, "bad type" },
		{ "::/0 1,2;/x 4\n", 1, "type 4: bad numbers" },
		{ "::/0 /x 4\n", 1, "type 4 needs" },
		{ "::/0 10.0.0.1 3\n", 1, "type 3" },
		{ "::/0 /x 9\n", 1, "type 9 is not supported" },
	};
	for (size_t i = 0; i < sizeof badtext / sizeof badtext[0]; i++) {
		t = NULL;
		int r = urt_text_to_rules(badtext[i].in, strlen(badtext[i].in), &t, &e);
		CHECK(r < 0 && errno == EINVAL && e.line == badtext[i].line && strstr(e.msg, badtext[i].why),
		      "text refused at line %u: %s (%s)", badtext[i].line, badtext[i].why, e.msg);
		free(t);
	}

	/* URELAY_TPROXY_IDX_FILES */
	struct urt_idxspec it[4];
	int n = urt_idxspec_parse("1,a.example;;2=/tmp/idx;0x10,h-#.example", it, 4, &e);
	CHECK(n == 3 && it[0].idx == 1 && !it[0].is_file && it[0].vlen == 9 && !memcmp(it[0].val, "a.example", 9) &&
	      it[1].idx == 2 && it[1].is_file && it[1].vlen == 8 && it[2].idx == 16,
	      "IDX_FILES: domains, files, hex numbers, empty items skipped");
	CHECK(urt_idxspec_parse("x,a", it, 4, &e) < 0 && errno == EINVAL, "IDX_FILES: a number is needed");
	CHECK(urt_idxspec_parse("1", it, 4, &e) < 0 && errno == EINVAL, "IDX_FILES: ',' or '=' is needed");
	CHECK(urt_idxspec_parse("1=", it, 4, &e) < 0 && strstr(e.msg, "empty file name"), "IDX_FILES: empty file");
	CHECK(urt_idxspec_parse("1,a;2,b", it, 1, &e) < 0 && errno == E2BIG, "IDX_FILES: too many");

	/* an index file: entries 5 and 9 */
	uint8_t ix[64] = { 0 };
	put32(ix, URT_IDX_MAGIC);
	put32(ix + 4, 2);
	put32(ix + 8, 5);
	put32(ix + 12, 0);
	put32(ix + 16, 9);
	put32(ix + 20, 4);
	memcpy(ix + 24, "five.example", 12);
	memcpy(ix + 24 + 16, "h-##.nine", 9);
	size_t ixl = 24 + 16 + 10;
	CHECK(urt_idxfile_check(ix, ixl, &e) == 0, "index file checks (%s)", e.msg);
	CHECK(urt_idxfile_check(ix, 7, &e) < 0, "index file: short header");
	CHECK(urt_idxfile_check(ix, 23, &e) < 0 && strstr(e.msg, "do not fit"), "index file: entries cut");
	CHECK(urt_idxfile_check(ix, 40, &e) < 0 && strstr(e.msg, "past the end"), "index file: name offset");
	put32(ix + 8, 10);
	CHECK(urt_idxfile_check(ix, ixl, &e) < 0 && strstr(e.msg, "out of order"), "index file: unsorted");
	put32(ix + 8, 5);
	ix[0] = 0;
	CHECK(urt_idxfile_check(ix, ixl, &e) < 0 && strstr(e.msg, "bad magic"), "index file: magic");
	ix[0] = 0xf2;

	struct urt_idx tab[2] = { { 1, 0, (const uint8_t *)"direct-#.example", 16 }, { 2, 1, ix, ixl } };
	/* fe8f:1::/32 with the index number in bits 8-15 and the entry in bits 0-7 */
	struct rules_idxsel sel = { 8, 0, 0xff, 0xff, 0, 0 };
	uint8_t ip[16];
	char name[129];
	inet_pton(AF_INET6, "fe8f:1::1a7", ip);
	CHECK(urt_domain(tab, 2, ip, &sel, name) == 16 && !strcmp(name, "direct-7.example"),
	      "a direct domain, '#' is the last hex digit: %s", name);
	inet_pton(AF_INET6, "fe8f:1::205", ip);
	CHECK(urt_domain(tab, 2, ip, &sel, name) == 12 && !strcmp(name, "five.example"), "an index entry: %s", name);
	inet_pton(AF_INET6, "fe8f:1::abcd:209", ip);
	CHECK(urt_domain(tab, 2, ip, &sel, name) == 9 && !strcmp(name, "h-09.nine"), "'#'s from the right: %s", name);
	inet_pton(AF_INET6, "fe8f:1::206", ip);
	CHECK(urt_domain(tab, 2, ip, &sel, name) == 0 && !name[0], "no such entry");
	inet_pton(AF_INET6, "fe8f:1::306", ip);
	CHECK(urt_domain(tab, 2, ip, &sel, name) == 0, "no such index");
	/* shifts past 32 and 64 take bits from the upper half */
	struct rules_idxsel hi = { 112, 0, 0xffff, 0, 0, 0 };
	struct urt_idx one = { 0xfe8f, 0, (const uint8_t *)"top", 3 };
	CHECK(urt_domain(&one, 1, ip, &hi, name) == 3, "shift 112 takes the first 16 bits");
	struct rules_idxsel mid = { 48, 0, 0xffff, 0, 0, 0 };
	struct urt_idx two = { 0x1234, 0, (const uint8_t *)"mid", 3 };
	inet_pton(AF_INET6, "fe8f:1:0:abcd:1234::", ip);
	CHECK(urt_domain(&two, 1, ip, &mid, name) == 3, "shift 48 spans the halves");

	struct rules_idxsel s2;
	CHECK(rules_idxsel_parse("96,0,0xffff,0xFFFFFFFF,7,0", 26, &s2) == 0 && s2.idx_shift == 96 &&
	      s2.ent_mask == 0xffffffffu && s2.idx_offset == 7, "authority-idx= numbers");
	CHECK(rules_idxsel_parse("128,0,0,0,0,0", 13, &s2) < 0, "authority-idx= shift 128 refused");
	CHECK(rules_idxsel_parse("1,2,3,4,5", 9, &s2) < 0, "authority-idx= needs six numbers");
	CHECK(rules_idxsel_parse("1,2,3,4,5,0x100000000", 21, &s2) < 0, "authority-idx= 32-bit numbers");
	return unit_done();
}
