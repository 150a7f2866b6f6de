/*
 * rules_bench: time rules_match() over rulesets of random CIDR/port rules.
 * Prints ns per lookup for each size given (default 10 1000 100000).
 * Used by tests/bench/rules.sh; a fixed seed keeps runs comparable.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const long dflt[] = { 10, 1000, 100000 };
	int wide = argc > 1 && !strcmp(argv[1], "wide");
	if (wide)
		argc--, argv++;
	int nsizes = argc > 1 ? argc - 1 : 3;

	for (int k = 0; k < nsizes; k++) {
		long n = argc > 1 ? atol(argv[k + 1]) : dflt[k];
		size_t cap = (size_t)n * 96 + 64, len = 0;
		char *text = malloc(cap);
		for (long i = 0; i < n; i++) {
			uint32_t a = rnd();
			/* IPv4 /16../32 anywhere; IPv6 /32../64 anywhere (argv "wide": /8../32) */
			int plen = (wide ? 8 + (int)(rnd() % 25) : 16 + (int)(rnd() % 17));
			uint32_t b = rnd();
			int lo = (int)(rnd() % 60000), hi = lo + (int)(rnd() % 1000);
			if (rnd() % 4 == 0) {
				len += (size_t)snprintf(text + len, cap - len,
					"connect tcp [%x:%x:%x:%x::/%d]:%d-%d -> unix /run/r%ld.sock\n",
					(b >> 16) | 0x2000, b & 0xffff, a >> 16, a & 0xffff, wide ? 32 + plen : 16 + plen * 2 - 16,
					lo, hi, i);
			} else {
				len += (size_t)snprintf(text + len, cap - len,
					"connect tcp %u.%u.%u.%u/%d:%d-%d -> unix /run/r%ld.sock\n",
					a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255, plen, lo, hi, i);
			}
		}
		struct rules_error e;
		double t0 = now();
		struct ruleset *rs = rules_parse(text, len, &e);
		double tparse = now() - t0;
		if (!rs) {
			fprintf(stderr, "rules_bench: %u:%u: %s\n", e.line, e.col, e.msg);
			return 1;
		}
		/* queries: half aimed inside some rule's prefix, half random */
		enum { NQ = 4096 };
		static struct sockaddr_in6 q6[NQ];
		static struct sockaddr_in q4[NQ];
		static struct sockaddr *q[NQ];
		for (int i = 0; i < NQ; i++) {
			const struct rule *r = &rs->rule[rnd() % rs->n];
			uint8_t a[16];
			memcpy(a, r->addr.addr, 16);
			if (i & 1)
				for (int b = 0; b < 16; b++)
					a[b] = (uint8_t)rnd();
			if (addr_is_v4mapped(r->addr.addr)) {
				q4[i].sin_family = AF_INET;
				memcpy(&q4[i].sin_addr, a + 12, 4);
				q4[i].sin_port = htons((uint16_t)(r->port_lo + rnd() % 600));
				q[i] = (struct sockaddr *)&q4[i];
			} else {
				q6[i].sin6_family = AF_INET6;
				memcpy(&q6[i].sin6_addr, a, 16);
				q6[i].sin6_port = htons((uint16_t)(r->port_lo + rnd() % 600));
				q[i] = (struct sockaddr *)&q6[i];
			}
		}
		long iters = 2000000, hits = 0;
		t0 = now();
		for (long i = 0; i < iters; i++) {
			struct rules_query qq = { RULE_CONNECT, RULE_TCP, q[i & (NQ - 1)], NULL, NULL, NULL };
			hits += rules_match(rs, &qq) != NULL;
		}
		double t = now() - t0;
		printf("rules=%ld lookups=%ld ns_per_lookup=%.1f hits=%.0f%% parse_ms=%.1f\n", n, iters,
		       t * 1e9 / iters, 100.0 * hits / iters, tparse * 1e3);
		rules_free(rs);
		free(text);
	}
	return 0;
}
