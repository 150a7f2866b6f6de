/*
 * Unit tests for core/rules: parsing (good and bad input with line:col),
 * first-match lookup (checked against a plain linear scan on random rule
 * sets), templates, and writing rules back.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "unit.h"

static struct sg_addr A(const char *s)
{
	struct sg_addr a;
	if (addr_parse(s, &a)) {
		printf("# bad test address %s\n", s);
		exit(2);
	}
	return a;
}

static struct ruleset *P(const char *text)
{
	struct rules_error e;
	struct ruleset *rs = rules_parse(text, strlen(text), &e);
	if (!rs)
		printf("# parse failed: %u:%u: %s\n", e.line, e.col, e.msg);
	return rs;
}

/* Number (1-based) of the rule that matches, 0 for none. */
static int M(const struct ruleset *rs, int dir, int proto, const char *addr, const char *peer)
{
	struct sg_addr a = A(addr), p;
	if (peer)
		p = A(peer);
	struct rules_query q = { dir, proto, &a.u.sa, peer ? &p.u.sa : NULL, NULL, NULL };
	const struct rule *r = rules_match(rs, &q);
	return r ? (int)(r - rs->rule) + 1 : 0;
}

static void test_parse_good(void)
{
	struct ruleset *rs = P("# comment\n"
			       "connect tcp 10.0.0.0/8:80 -> unix /run/web/%a-%p.sock proxy-v2 name=web\n"
			       "\n   connect udp [::1]:53 -> abstract dns\t# trailing\n"
			       "bind tcp *:8080 -> fdpass /run/sg/web.sock mode=0660\n"
			       "accept tcp 127.0.0.2:80 from 192.168.0.0/16:1024-65535 -> unix /run/a.sock\n"
			       "accept *:1-1023 -> reject rst; connect * -> reject EACCES\n"
			       "connect 2001:db8::/32 -> nat64 64:ff9b::/96\n"
			       "connect [::1]:443 -> tcp 127.0.0.1:8443 source=192.0.2.1:0 ip6\n"
			       "bind -> systemd web\nbind -> systemd\nconnect -> blackhole\nconnect -> allow\n");
	REQUIRE(rs && rs->n == 12, "12 rules parsed from a mixed file");
	const struct rule *r = &rs->rule[0];
	CHECK(r->dir == RULE_CONNECT && r->proto == RULE_TCP && r->addr.plen == 104 && r->port_lo == 80 &&
	      r->port_hi == 80 && r->action == ACT_UNIX && (r->flags & RULE_F_PROXY_V2), "rule 1 fields");
	CHECK_STR(rules_str(rs, r->arg), "/run/web/%a-%p.sock", "rule 1 path template");
	CHECK_STR(rules_str(rs, r->name), "web", "rule 1 name");
	CHECK(r->line == 2, "rule 1 line number is 2");
	CHECK(rs->rule[1].proto == RULE_UDP && rs->rule[1].addr.plen == 128 && rs->rule[1].action == ACT_ABSTRACT,
	      "udp [::1]:53 abstract");
	CHECK(rs->rule[2].mode == 0660 && rs->rule[2].dir == RULE_BIND, "mode=0660 on a bind rule");
	CHECK(rs->rule[3].peer.plen == 96 + 16 && rs->rule[3].pport_lo == 1024, "from 192.168.0.0/16:1024-65535");
	CHECK(rs->rule[4].action == ACT_REJECT && rs->rule[4].err == ECONNREFUSED && (rs->rule[4].flags & RULE_F_RST),
	      "reject rst defaults to ECONNREFUSED");
	CHECK(rs->rule[5].err == EACCES && rs->rule[5].line == 7, "';' separates rules on one line");
	CHECK(rs->rule[6].action == ACT_NAT64 && rs->rule[6].addr.plen == 32, "nat64 rule");
	CHECK(rs->rule[7].action == ACT_TCP && rs->rule[7].source != RULE_NONE && (rs->rule[7].flags & RULE_F_IP6),
	      "tcp target with source= and ip6");
	CHECK_STR(rules_str(rs, rs->rule[8].arg), "web", "systemd NAME");
	CHECK(rs->rule[9].arg == RULE_NONE, "systemd without a name");
	CHECK(rs->rule[11].action == ACT_PASS, "allow is pass");
	rules_free(rs);

	rs = P("");
	CHECK(rs && rs->n == 0, "an empty file is an empty ruleset");
	rules_free(rs);
	rs = P("# only\n\n;;\n");
	CHECK(rs && rs->n == 0, "comments and empty rules only");
	rules_free(rs);
}

static const struct {
	const char *text;
	unsigned line, col;
	const char *msg;
} bad[] = {
	{ "conect tcp * -> pass", 1, 1, "expected a direction" },
	{ "connect tcp 10.0.0.0/33 -> pass", 1, 13, "bad address or prefix" },
	{ "connect tcp 10.0.0.1:99999 -> pass", 1, 22, "bad port" },
	{ "connect tcp 10.0.0.1:90-80 -> pass", 1, 22, "bad port" },
	{ "\n\nconnect tcp 10.0.0.1 pass", 3, 22, "expected '->'" },
	{ "connect tcp 10.0.0.1 ->", 1, 25, "expected an action" },
	{ "connect -> teleport", 1, 12, "unknown action" },
	{ "connect -> unix", 1, 17, "needs a path" },
	{ "connect -> unix /x/%q", 1, 20, "bad template" },
	{ "connect -> tcp 10.0.0.1", 1, 16, "bad target address" },
	{ "connect -> reject EWHAT", 1, 19, "unknown errno" },
	{ "connect -> pass frobnicate", 1, 17, "unknown option" },
	{ "bind * -> fdpass /x mode=0999", 1, 27, "bad mode" },
	{ "connect from 1.2.3.4 -> pass", 1, 9, "only for accept" },
	{ "accept tcp * from -> pass", 1, 19, "expected an address after 'from'" },
	{ "connect [::1 -> pass", 1, 9, "missing ']'" },
	{ "connect [10.0.0.1]:80 -> pass", 1, 9, "inside [ ]" },
	{ "connect -> nat64 64:ff9b::/64", 1, 18, "bad nat64 prefix" },
	{ "connect -> pass ip4 ip6", 1, 1, "match nothing" },
	{ "connect -> unix /" "0123456789012345678901234567890123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789", 1, 17, "too long" },
	{ "connect -> pass name=a\x01", 1, 23, "control character" },
	{ "connect -> pass source=nowhere", 1, 24, "bad source address" },
	{ "bind * -> fdpass /x sender=root", 1, 28, "bad sender" },
	{ "bind * -> fdpass /x sender=1:", 1, 28, "bad sender" },
	{ "bind * -> fdpass /x sender=4294967295", 1, 28, "bad sender" },
	{ "connect -> unix /x owner=root", 1, 20, "owner= is only for bind rules to unix or fdpass" },
	{ "bind * -> abstract x group=0", 1, 22, "group= is only for bind rules" },
	{ "bind * -> systemd noremove", 1, 19, "noremove is only for bind rules" },
	{ "bind * -> fdpass /x owner=-x", 1, 27, "bad owner (expected a user name or number)" },
	{ "bind * -> fdpass /x owner=a:b", 1, 27, "bad owner" },
	{ "bind * -> fdpass /x group=4294967295", 1, 27, "bad group (expected a group name or number)" },
	{ "bind * -> fdpass /x group=abcdefghijklmnopqrstuvwxyz0123456", 1, 27, "bad group" },
	{ "ok\n", 1, 1, "expected a direction" },
};

static void test_parse_bad(void)
{
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct rules_error e;
		errno = 0;
		struct ruleset *rs = rules_parse(bad[i].text, strlen(bad[i].text), &e);
		int ok = !rs && errno == EINVAL && e.line == bad[i].line && e.col == bad[i].col &&
			 strstr(e.msg, bad[i].msg);
		CHECK(ok, "bad rule %zu rejected at %u:%u with '%s'", i + 1, bad[i].line, bad[i].col, bad[i].msg);
		if (!ok)
			printf("#   got %s at %u:%u: %s\n", rs ? "success" : "error", e.line, e.col, e.msg);
		rules_free(rs);
	}
}

static void test_match(void)
{
	struct ruleset *rs = P("connect tcp 10.1.2.3:80 -> unix /a\n"		/* 1 */
			       "connect tcp 10.0.0.0/8:80-90 -> unix /b\n"		/* 2 */
			       "connect udp 10.0.0.0/8 -> unix /c\n"			/* 3 */
			       "connect [2001:db8::/32]:443 -> unix /d\n"		/* 4 */
			       "connect ::ffff:192.168.0.0/112 -> unix /e\n"		/* 5 */
			       "accept tcp 127.0.0.2:80 from 192.168.1.0/24 -> unix /f\n"	/* 6 */
			       "accept tcp 127.0.0.2:80 -> reject\n"			/* 7 */
			       "connect * -> pass ip6\n"				/* 8 */
			       "bind tcp *:8080 -> fdpass /g\n");			/* 9 */
	REQUIRE(rs != NULL, "the match rules parse");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "10.1.2.3:80", NULL) == 1, "exact address and port: rule 1");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "10.1.2.4:80", NULL) == 2, "prefix and port range: rule 2");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "10.1.2.3:91", NULL) == 0, "port outside every range: none");
	CHECK(M(rs, RULE_CONNECT, RULE_UDP, "10.1.2.3:80", NULL) == 3, "udp skips tcp rules: rule 3");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "[::ffff:10.1.2.3]:80", NULL) == 1,
	      "IPv4-mapped IPv6 destination matches the IPv4 rule");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "[2001:db8::1]:443", NULL) == 4, "IPv6 prefix: rule 4");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "[2001:db9::1]:443", NULL) == 8, "other IPv6: catch-all ip6 rule 8");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "192.168.3.4:1", NULL) == 5, "::ffff:-form prefix matches IPv4");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "172.16.0.1:1", NULL) == 0, "ip6 catch-all does not take IPv4");
	CHECK(M(rs, RULE_ACCEPT, RULE_TCP, "127.0.0.2:80", "192.168.1.9:5000") == 6, "accept with matching peer");
	CHECK(M(rs, RULE_ACCEPT, RULE_TCP, "127.0.0.2:80", "192.168.2.9:5000") == 7, "accept with other peer");
	CHECK(M(rs, RULE_ACCEPT, RULE_TCP, "127.0.0.2:80", NULL) == 7, "accept with no peer skips peer rules");
	CHECK(M(rs, RULE_BIND, RULE_TCP, "0.0.0.0:8080", NULL) == 9, "bind *:8080");
	CHECK(M(rs, RULE_BIND, RULE_TCP, "[::]:8080", NULL) == 9, "bind [::]:8080");
	CHECK(M(rs, RULE_BIND, RULE_TCP, "0.0.0.0:8081", NULL) == 0, "bind other port: none");
	struct sg_addr u = A("unix:/tmp/x");
	struct rules_query q = { RULE_CONNECT, RULE_TCP, &u.u.sa, NULL, NULL, NULL };
	CHECK(rules_match(rs, &q) == NULL, "a unix address matches nothing");
	rules_free(rs);

	rs = P("connect tcp 10.0.0.0/8 -> unix /late\nconnect tcp 10.1.0.0/16 -> unix /early");
	CHECK(rs && M(rs, RULE_CONNECT, RULE_TCP, "10.1.0.1:1", NULL) == 1, "first match wins over longest prefix");
	rules_free(rs);
}

/* ---- differential: index vs a plain scan on random rules ---- */

static uint64_t seed = 88172645463325252ull;
static uint32_t rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (uint32_t)seed;
}

static int naive(const struct ruleset *rs, const struct rules_query *q)
{
	uint8_t a[16], p[16];
	addr_to16(q->addr, a);
	int havep = q->peer && !addr_to16(q->peer, p);
	int port = addr_port(q->addr), pport = havep ? addr_port(q->peer) : -1;
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rule[i];
		if (r->dir != q->dir || !(r->proto & q->proto) || !prefix_match(&r->addr, a) || port < r->port_lo ||
		    port > r->port_hi)
			continue;
		if ((r->flags & RULE_F_IP4) && !addr_is_v4mapped(a))
			continue;
		if ((r->flags & RULE_F_IP6) && addr_is_v4mapped(a))
			continue;
		if (r->peer.plen || r->pport_lo || r->pport_hi != 65535) {
			if (!havep || !prefix_match(&r->peer, p) || pport < r->pport_lo || pport > r->pport_hi)
				continue;
		}
		return (int)i + 1;
	}
	return 0;
}

static void random_addr(char *buf, size_t size, int v4, int port)
{
	static const char *pool4[] = { "10.0.0.0", "10.1.0.0", "192.168.1.0", "127.0.0.1" };
	static const char *pool6[] = { "2001:db8::", "2001:db8:1::", "::", "fe80::" };
	/* mostly near a few bases so that rules overlap */
	if (v4) {
		struct in_addr ia;
		inet_pton(AF_INET, pool4[rnd() % 4], &ia);
		ia.s_addr ^= htonl(rnd() % 4 ? rnd() & 0xffff : rnd());
		char h[32];
		inet_ntop(AF_INET, &ia, h, sizeof h);
		snprintf(buf, size, "%s:%d", h, port);
	} else {
		struct in6_addr ia;
		inet_pton(AF_INET6, pool6[rnd() % 4], &ia);
		for (int k = rnd() % 4 ? 12 : 0; k < 16; k++)
			ia.s6_addr[k] ^= (uint8_t)rnd();
		if (rnd() % 8 == 0)
			inet_pton(AF_INET6, "::ffff:10.0.0.1", &ia);
		char h[64];
		inet_ntop(AF_INET6, &ia, h, sizeof h);
		snprintf(buf, size, "[%s]:%d", h, port);
	}
}

/*
 * Parse text and compare rules_match with the plain scan on n random
 * queries (IPv4 one time in v4of, directions 1..ndirs, ports < maxport);
 * adds to *nbad, *hit and *total.
 */
static void compare_on(const char *what, const char *text, size_t len, int n, int v4of, int ndirs, int maxport,
		       int *nbad, int *hit, int *total)
{
	struct rules_error e;
	struct ruleset *rs = rules_parse(text, len, &e);
	if (!rs) {
		printf("# %s: parse failed %u:%u %s\n", what, e.line, e.col, e.msg);
		(*nbad)++;
		return;
	}
	for (int k = 0; k < n; k++) {
		char qa[80], pa[80];
		random_addr(qa, sizeof qa, rnd() % (unsigned)v4of != 0, (int)(rnd() % (unsigned)maxport));
		random_addr(pa, sizeof pa, 1, (int)(rnd() % (unsigned)maxport));
		struct sg_addr a = A(qa), p = A(pa);
		struct rules_query q = { 1 + (int)(rnd() % (unsigned)ndirs), 1 + (int)(rnd() % 2), &a.u.sa,
					 rnd() % 2 ? &p.u.sa : NULL, NULL, NULL };
		const struct rule *r = rules_match(rs, &q);
		int got = r ? (int)(r - rs->rule) + 1 : 0, want = naive(rs, &q);
		(*total)++;
		*hit += want != 0;
		if (got != want && (*nbad)++ < 5)
			printf("# %s mismatch: %s got rule %d want %d (ruleset of %zu)\n", what, qa, got, want, rs->n);
	}
	rules_free(rs);
}

static void test_differential(void)
{
	int mismatches = 0, matched = 0, total = 0;
	for (int round = 0; round < 60; round++) {
		int nr = round < 30 ? 1 + (int)(rnd() % 20) : 40 + (int)(rnd() % 400);
		char *text = malloc((size_t)nr * 160 + 1);
		size_t len = 0;
		for (int i = 0; i < nr; i++) {
			char a[80];
			int v4 = rnd() % 3 != 0;
			random_addr(a, sizeof a, v4, 0);
			*strrchr(a, ':') = 0;	/* drop the port */
			if (!v4) {	/* strip brackets for a bare prefix */
				memmove(a, a + 1, strlen(a));
				a[strlen(a) - 1] = 0;
			}
			int plen = v4 ? (int)(rnd() % 33) : (int)(rnd() % 129);
			int lo = (int)(rnd() % 100), hi = lo + (int)(rnd() % 50);
			const char *dirs[] = { "connect", "accept", "bind" };
			const char *protos[] = { "tcp", "udp", "any" };
			const char *extra = rnd() % 10 == 0 ? " ip4" : rnd() % 10 == 0 ? " ip6" : "";
			const char *dir = dirs[rnd() % 3];
			char from[96] = "";
			if (!strcmp(dir, "accept") && rnd() % 2) {
				char pa[80];
				random_addr(pa, sizeof pa, 1, 0);
				*strrchr(pa, ':') = 0;
				snprintf(from, sizeof from, " from %s/%d", pa, (int)(rnd() % 33));
			}
			if (rnd() % 7 == 0)
				len += (size_t)sprintf(text + len, "%s %s * -> pass%s\n", dir, protos[rnd() % 3], extra);
			else if (v4)
				len += (size_t)sprintf(text + len, "%s %s %s/%d:%d-%d%s -> pass%s\n", dir,
						       protos[rnd() % 3], a, plen, lo, hi, from, extra);
			else
				len += (size_t)sprintf(text + len, "%s %s [%s/%d]:%d-%d%s -> pass%s\n", dir,
						       protos[rnd() % 3], a, plen, lo, hi, from, extra);
		}
		compare_on("differential", text, len, 400, 2, 3, 160, &mismatches, &matched, &total);
		free(text);
	}
	CHECK(mismatches == 0, "indexed lookup equals a linear scan on %d random queries (%d matched)", total,
	      matched);
	CHECK(matched > total / 10, "the random queries hit rules often enough to mean something");

	/*
	 * "Wide" sets: a few prefixes with many rules that differ by port (a
	 * port each, duplicates included, some ranges, both protocols, ip4/ip6
	 * and from clauses), so that groups are searched by port.
	 */
	mismatches = matched = total = 0;
	for (int round = 0; round < 20; round++) {
		int nr = 50 + (int)(rnd() % 600);
		char *text = malloc((size_t)nr * 160 + 1);
		size_t len = 0;
		static const char *pre[] = { "10.0.0.0/8", "10.1.0.0/16", "192.168.1.0/24", "127.0.0.1/32",
					     "[2001:db8::/32]", "[::/0]" };
		for (int i = 0; i < nr; i++) {
			const char *dirs[] = { "connect", "accept" };
			const char *protos[] = { "tcp", "udp", "any" };
			const char *dir = dirs[rnd() % 2];
			const char *extra = rnd() % 12 == 0 ? " ip4" : rnd() % 12 == 0 ? " ip6" : "";
			int lo = (int)(rnd() % 160), hi = rnd() % 8 == 0 ? lo + (int)(rnd() % 40) : lo;
			char from[64] = "";
			if (!strcmp(dir, "accept") && rnd() % 4 == 0)
				snprintf(from, sizeof from, " from 10.0.0.0/%d:%d-%d", (int)(rnd() % 17), (int)(rnd() % 100),
					 100 + (int)(rnd() % 60));
			len += (size_t)sprintf(text + len, "%s %s %s:%d-%d%s -> pass%s\n", dir, protos[rnd() % 3],
					       pre[rnd() % 6], lo, hi, from, extra);
		}
		compare_on("wide", text, len, 1000, 3, 2, 170, &mismatches, &matched, &total);
		free(text);
	}
	CHECK(mismatches == 0, "wide sets (many rules per prefix, by port): indexed lookup equals a linear scan "
	      "on %d random queries (%d matched)", total, matched);
	CHECK(matched > total / 10, "the wide queries hit rules often enough to mean something");
}

static void test_expand(void)
{
	struct sg_addr a = A("10.1.2.3:80"), b = A("[2001:db8::1]:443");
	char buf[108];
	CHECK(rules_expand("/run/%a-%p.sock", &a.u.sa, buf, sizeof buf) == 21 && !strcmp(buf, "/run/10.1.2.3-80.sock"),
	      "template with IPv4 address and port");
	CHECK(rules_expand("/run/%f/%a_%p%%", &b.u.sa, buf, sizeof buf) > 0 && !strcmp(buf, "/run/6/2001:db8::1_443%"),
	      "template with family, IPv6 address, %%%%");
	char small[10];
	errno = 0;
	CHECK(rules_expand("/run/%a.sock", &a.u.sa, small, sizeof small) == -1 && errno == ENAMETOOLONG,
	      "expansion that does not fit: ENAMETOOLONG");
	CHECK(rules_expand("/run/x", &a.u.sa, small, 7) == 6, "exact fit with the NUL");
	errno = 0;
	CHECK(rules_expand("/run/x", &a.u.sa, small, 6) == -1 && errno == ENAMETOOLONG, "one byte short");
	CHECK(rules_expand("/r/%5.%6.%7_%P", &a.u.sa, buf, sizeof buf) > 0 && !strcmp(buf, "/r/65535.02561.00515_00080"),
	      "%%5 %%6 %%7 %%P: IPv4 as ::ffff:a.b.c.d, five digits each (u-relay-tproxy's #//N_)");
	CHECK(rules_expand("/r/%0-%1-%7", &b.u.sa, buf, sizeof buf) > 0 && !strcmp(buf, "/r/08193-03512-00001"),
	      "%%0 %%1 %%7 of an IPv6 address");
	struct rules_error e;
	const char *two = "connect tcp 10.9.0.0/16 -> translate 127.0.0.0/16 dev=lo\n"
					 "connect tcp [fe8f:1::/32] -> unix /r/%P proxy-v2 authority-idx=8,0,0xff,0xff,0,0\n";
	struct ruleset *rs = rules_parse(two, strlen(two), &e);
	CHECK(rs && rs->n == 2 && rs->rule[0].action == ACT_TRANSLATE && !strcmp(rules_str(rs, rs->rule[0].aux), "lo") &&
	      !strcmp(rules_str(rs, rs->rule[1].aux), "8,0,0xff,0xff,0,0"), "translate dev=, authority-idx= (%s)",
	      rs ? "ok" : e.msg);
	if (rs) {
		CHECK(rules_format(rs, &rs->rule[0], buf, sizeof buf) > 0 &&
		      !strcmp(buf, "connect tcp 10.9.0.0/16 -> translate 127.0.0.0/16 dev=lo"),
		      "translate formats back: %s", buf);
	}
	rules_free(rs);
	/* a host named like a protocol keeps its 'any' (fuzz_rules found it dropped) */
	const char *words = "connect any tcp -> pass\nconnect any any -> pass\nconnect udp udp:53 -> pass\nconnect any icmp:7 -> pass\n";
	rs = rules_parse(words, strlen(words), &e);
	CHECK(rs && rs->n == 4, "hosts named tcp, any, udp, icmp parse (%s)", rs ? "ok" : e.msg);
	static const char *const back[] = { "connect any tcp -> pass", "connect any any -> pass", "connect udp udp:53 -> pass",
					    "connect any icmp:7 -> pass" };
	for (size_t i = 0; rs && i < rs->n && i < 4; i++) {
		CHECK(rules_format(rs, &rs->rule[i], buf, sizeof buf) > 0 && !strcmp(buf, back[i]), "formats back: %s", buf);
		struct ruleset *again = rules_parse(buf, strlen(buf), &e);
		CHECK(again && again->n == 1 && again->rule[0].proto == rs->rule[i].proto &&
		      again->rule[0].host != RULE_NONE && !strcmp(rules_str(again, again->rule[0].host), rules_str(rs, rs->rule[i].host)),
		      "and reads back as the same rule: %s", buf);
		rules_free(again);
	}
	rules_free(rs);
	static const struct { const char *t, *why; } badr[] = {
		{ "connect -> translate 127.0.0.1", "bad translate prefix" },
		{ "connect -> unix /x dev=lo", "dev= is only for translate" },
		{ "connect -> translate ::/0 dev=abcdefghijklmnop", "longer than 15" },
		{ "connect -> unix /x authority-idx=1,2,3,4,5,6", "needs proxy-v2" },
		{ "connect -> unix /x proxy-v2 authority-idx=1,2", "bad authority-idx" },
		{ "connect -> tcp 1.2.3.4:5 authority-idx=1,2,3,4,5,6", "only for unix" },
	};
	for (size_t i = 0; i < sizeof badr / sizeof badr[0]; i++) {
		rs = rules_parse(badr[i].t, strlen(badr[i].t), &e);
		CHECK(!rs && strstr(e.msg, badr[i].why), "refused: %s (%s)", badr[i].why, e.msg);
		rules_free(rs);
	}
}

/* Every field a rule can carry, every flag among them. */
static const char format_text[] =
	"connect tcp 10.0.0.0/8:80 -> unix /run/%a.sock proxy-v2 netns crc32c mode=0600 name=x\n"
	"accept udp [2001:db8::/32]:1-2 from 1.2.3.4:5 -> reject ETIMEDOUT rst\n"
	"bind * -> systemd web\n"
	"connect any 0.0.0.0/0 -> tcp [::1]:80 source=[::2]:0 fastopen=epipe shut-rd-rdwr ip6\n"
	"connect udp *:53 -> abstract dns proxy-v1 ip4\n"
	"connect 2001:db8::/32 -> nat64 64:ff9b::/96\n"
	"bind tcp 127.0.0.1:8080 -> fdpass /run/sg/web.sock mode=0660 owner=www-data group=1001 noremove\n"
	"connect -> blackhole\nconnect [::1]:443 -> pass\n";

static void test_format(void)
{
	struct ruleset *rs = P(format_text);
	REQUIRE(rs && rs->n == 9, "the format rules parse");
	uint32_t flags = 0;
	for (size_t i = 0; i < rs->n; i++)
		flags |= rs->rule[i].flags;
	CHECK(flags == (RULE_F_PROXY_V2 | RULE_F_PROXY_V1 | RULE_F_NETNS | RULE_F_CRC32C | RULE_F_FASTOPEN_EPIPE |
			RULE_F_RST | RULE_F_IP4 | RULE_F_IP6 | RULE_F_SHUT_RD_RDWR | RULE_F_NOREMOVE),
	      "the format rules carry every flag");
	char out[4096] = "", line[512];
	for (size_t i = 0; i < rs->n; i++) {
		CHECK(rules_format(rs, &rs->rule[i], line, sizeof line) > 0, "format rule %zu", i + 1);
		strcat(out, line);
		strcat(out, "\n");
	}
	/* compared with the parsed structure: the same text again would not
	 * show a field that formatting drops (it stays dropped) */
	struct ruleset *rs2 = P(out);
	REQUIRE(rs2 && rs2->n == rs->n, "formatted rules parse back");
	for (size_t i = 0; i < rs->n; i++) {
		rules_format(rs, &rs->rule[i], line, sizeof line);
		CHECK(rules_same(rs, &rs->rule[i], rs2, &rs2->rule[i]), "rule %zu reads back as the same rule: %s",
		      i + 1, line);
	}
	CHECK(rules_format(rs, &rs->rule[0], line, 10) == -1 && errno == ENOSPC, "format into a small buffer: ENOSPC");
	rules_free(rs);
	rules_free(rs2);
}

/* rules_same itself: a rule differs from itself with any field changed. */
static void test_same(void)
{
	struct ruleset *rs = P(format_text);
	REQUIRE(rs != NULL, "the format rules parse");
	struct rule a = rs->rule[0], b;
	CHECK(rules_same(rs, &a, rs, &a), "a rule is the same as itself");
	b = a, b.flags &= ~RULE_F_NETNS;
	CHECK(!rules_same(rs, &a, rs, &b), "a dropped flag makes a different rule");
	b = a, b.mode = 0;
	CHECK(!rules_same(rs, &a, rs, &b), "a dropped mode makes a different rule");
	b = a, b.name = RULE_NONE;
	CHECK(!rules_same(rs, &a, rs, &b), "a dropped name makes a different rule");
	b = a, b.arg = rs->rule[1].arg;
	CHECK(!rules_same(rs, &a, rs, &b), "another argument makes a different rule");
	b = a, b.port_hi = 81;
	CHECK(!rules_same(rs, &a, rs, &b), "another port range makes a different rule");
	b = a, b.sender_uid = 5;
	CHECK(!rules_same(rs, &a, rs, &b), "another sender uid makes a different rule");
	b = a, b.sender_gid = 5;
	CHECK(!rules_same(rs, &a, rs, &b), "another sender gid makes a different rule");
	struct rule f = rs->rule[6];	/* the fdpass rule: owner=, group= */
	b = f, b.owner = RULE_NONE;
	CHECK(!rules_same(rs, &f, rs, &b), "a dropped owner makes a different rule");
	b = f, b.group = f.owner;
	CHECK(!rules_same(rs, &f, rs, &b), "another group makes a different rule");
	b = a, b.line = 99;
	CHECK(rules_same(rs, &a, rs, &b), "the source line does not count");
	rules_free(rs);
}

/* sender=: parsed, formatted back, none by default. */
static void test_sender(void)
{
	struct ruleset *rs = P("bind * -> fdpass /a sender=1000:50\nbind * -> fdpass /b sender=:7\n"
			       "bind * -> fdpass /c sender=0\nbind * -> fdpass /d\n");
	REQUIRE(rs && rs->n == 4, "the sender rules parse");
	CHECK(rs->rule[0].sender_uid == 1000 && rs->rule[0].sender_gid == 50 && rs->rule[1].sender_uid == RULE_NONE &&
	      rs->rule[1].sender_gid == 7 && rs->rule[2].sender_uid == 0 && rs->rule[2].sender_gid == RULE_NONE &&
	      rs->rule[3].sender_uid == RULE_NONE && rs->rule[3].sender_gid == RULE_NONE,
	      "sender=UID:GID, :GID, UID; none by default");
	char line[256];
	const char *want[] = { "sender=1000:50", "sender=:7", "sender=0" };
	for (int i = 0; i < 3; i++)
		CHECK(rules_format(rs, &rs->rule[i], line, sizeof line) > 0 && strstr(line, want[i]),
		      "formatted with %s", want[i]);
	rules_free(rs);
}

static int host_is(void *ctx, const char *pattern)
{
	return !strcmp(pattern, (const char *)ctx);
}

static const char *F(const struct ruleset *rs, size_t i)
{
	static char buf[512];
	if (!rs || i >= rs->n || rules_format(rs, &rs->rule[i], buf, sizeof buf) < 0)
		return "(none)";
	return buf;
}

/* icmp: named only, never part of "any"; the any address stands for a socket with no destination */
static void test_icmp(void)
{
	struct ruleset *rs = P("connect * -> unix /a\n"			/* 1 */
			       "connect icmp * -> broker /b ip6\n"		/* 2 */
			       "connect icmp -> pass\n");			/* 3 */
	REQUIRE(rs != NULL, "icmp rules parse");
	CHECK(rs->rule[1].proto == RULE_ICMP && rs->rule[1].action == ACT_BROKER, "icmp broker rule");
	CHECK(M(rs, RULE_CONNECT, RULE_ICMP, "[::]:0", NULL) == 2, "an ICMPv6 socket: rule 2");
	CHECK(M(rs, RULE_CONNECT, RULE_ICMP, "0.0.0.0:0", NULL) == 3, "an ICMP socket: rule 3 (ip6 skips 2)");
	CHECK(M(rs, RULE_CONNECT, RULE_TCP, "0.0.0.0:0", NULL) == 1, "tcp skips icmp rules");
	CHECK(M(rs, RULE_CONNECT, RULE_ANYPROTO, "10.0.0.1:7", NULL) == 1, "any is tcp and udp, not icmp");
	rules_free(rs);
	struct rules_error e;
	const char *wrong[] = { "connect icmp *:7 -> pass", "connect icmp * -> unix /x", "bind icmp * -> pass",
			      "connect icmp *.example.com -> pass", "connect udp * -> broker /x" };
	for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
		struct ruleset *b = rules_parse(wrong[i], strlen(wrong[i]), &e);
		CHECK(b == NULL, "refused: %s (%s)", wrong[i], b ? "parsed" : e.msg);
		rules_free(b);
	}
}

static void test_names(void)
{
	struct ruleset *rs = P("resolve *.test -> unix /run/r.sock\n"
			       "resolve example.net -> sip.example.net\n"
			       "resolve fixed.example -> 127.0.0.7,::1\n"
			       "resolve bad.example -> reject\n"
			       "resolve -> pass\n"
			       "connect tcp *.debian.org:80 -> pass\n"
			       "connect tcp api.example.com:443 -> pass\n"
			       "connect tcp 10.0.0.0/8 -> pass\n"
			       "connect tcp 1.2.3.4 -> nat64\n"
			       "connect udp 1.2.3.5 -> nat64 64:ff9b::/96 dns64\n");
	CHECK(rs && rs->n == 10, "name rules parse");
	if (!rs)
		return;
	CHECK_STR(F(rs, 0), "resolve *.test -> unix /run/r.sock", "resolve unix written back");
	CHECK_STR(F(rs, 1), "resolve example.net -> sip.example.net", "diversion written back");
	CHECK_STR(F(rs, 2), "resolve fixed.example -> 127.0.0.7,::1", "fixed addresses written back");
	CHECK_STR(F(rs, 3), "resolve bad.example -> reject", "reject written back");
	CHECK_STR(F(rs, 4), "resolve * -> pass", "no pattern is *");
	CHECK_STR(F(rs, 5), "connect tcp *.debian.org:80 -> pass", "host pattern written back");
	CHECK_STR(F(rs, 8), "connect tcp 1.2.3.4 -> nat64 64:ff9b::/96", "nat64 gets the well-known prefix");
	CHECK(rs->rule[9].flags & RULE_F_DNS64, "dns64 flag");
	CHECK(rules_match_name(rs, "svc.test") == &rs->rule[0], "*.test matches svc.test");
	CHECK(rules_match_name(rs, "EXAMPLE.net") == &rs->rule[1], "exact name, any case");
	CHECK(rules_match_name(rs, "other.org") == &rs->rule[4], "the catch-all");
	struct sg_addr a = A("192.0.2.1:80");
	struct rules_query q = { RULE_CONNECT, RULE_TCP, &a.u.sa, NULL, NULL, NULL };
	CHECK(rules_match(rs, &q) == NULL, "a host rule never matches without host_ok");
	q.host_ok = host_is;
	q.ctx = (void *)"*.debian.org";
	CHECK(rules_match(rs, &q) == &rs->rule[5], "host_ok says yes: the host rule");
	q.ctx = (void *)"api.example.com";
	CHECK(rules_match(rs, &q) == NULL, "port 80 is not api.example.com:443");
	a = A("10.1.1.1:80");
	q.ctx = (void *)"nothing";
	CHECK(rules_match(rs, &q) == &rs->rule[7], "an address rule after host rules still matches");
	rules_free(rs);

	static const struct { const char *text; unsigned col; const char *msg; } badr[] = {
		{ "resolve a..b -> pass", 9, "bad name pattern" },
		{ "resolve *.x -> tcp 1.2.3.4:5", 16, "unknown resolve action" },
		{ "resolve x -> 1.2.3.4,", 14, "unknown resolve action" },
		{ "resolve x -> unix", 19, "needs a path" },
		{ "resolve x -> pass extra", 19, "unexpected" },
		{ "connect tcp a*b.com:80 -> pass", 13, "bad address" },
		{ "bind tcp svc.test:80 -> systemd", 10, "bad address" },
		{ "connect tcp 1.2.3.4 -> pass dns64", 1, "options of nat64" },
		{ "connect tcp 1.2.3.4 -> divert x.y", 24, "for resolve rules" },
	};
	for (size_t i = 0; i < sizeof badr / sizeof badr[0]; i++) {
		struct rules_error e;
		struct ruleset *b = rules_parse(badr[i].text, strlen(badr[i].text), &e);
		CHECK(!b && e.col == badr[i].col && strstr(e.msg, badr[i].msg), "'%s' -> 1:%u %s (got %u: %s)",
		      badr[i].text, badr[i].col, badr[i].msg, e.col, e.msg);
		rules_free(b);
	}
}

/* owner=, group=, noremove: kept as written (names are looked up where the file is made). */
static void test_owner(void)
{
	struct ruleset *rs = P("bind tcp *:80 -> unix /run/a.sock owner=www-data group=www\n"
			       "bind tcp *:81 -> fdpass /run/b.sock owner=0 group=4294967294 noremove\n"
			       "bind tcp *:82 -> fdpass /run/c.sock group=machine$\n");
	REQUIRE(rs && rs->n == 3, "the owner rules parse");
	CHECK_STR(rules_str(rs, rs->rule[0].owner), "www-data", "owner=www-data");
	CHECK_STR(rules_str(rs, rs->rule[0].group), "www", "group=www");
	CHECK(!(rs->rule[0].flags & RULE_F_NOREMOVE) && (rs->rule[1].flags & RULE_F_NOREMOVE), "noremove");
	CHECK_STR(rules_str(rs, rs->rule[1].group), "4294967294", "the largest gid");
	CHECK(rs->rule[2].owner == RULE_NONE, "no owner= by default");
	const char *want[] = { "owner=www-data group=www", "noremove owner=0 group=4294967294", "group=machine$" };
	for (int i = 0; i < 3; i++)
		CHECK(strstr(F(rs, (size_t)i), want[i]) != NULL, "formatted with %s: %s", want[i], F(rs, (size_t)i));
	rules_free(rs);
}

int main(void)
{
	test_names();
	test_icmp();
	test_parse_good();
	test_parse_bad();
	test_match();
	test_differential();
	test_expand();
	test_format();
	test_same();
	test_sender();
	test_owner();
	return unit_done();
}
