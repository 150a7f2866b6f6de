/*
 * A tiny TAP producer for the C unit tests: CHECK(cond, fmt, ...) is one
 * test point; unit_done() prints the plan and returns the exit status.
 * tests/run.sh counts the "ok" / "not ok" lines.
 */
#ifndef SOCKGATE_UNIT_H
#define SOCKGATE_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int unit_n, unit_failed;

/* Line-buffered, so that a crash (or a sanitizer's exit) loses no result. */
__attribute__((constructor)) static void unit_init(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* cond is evaluated once: it may have side effects. */
#define CHECK(cond, ...) do { \
	int unit_ok_ = !!(cond); \
	unit_n++; \
	if (unit_ok_) { \
		printf("ok %d - ", unit_n); \
	} else { \
		unit_failed++; \
		printf("not ok %d - ", unit_n); \
	} \
	printf(__VA_ARGS__); \
	if (!unit_ok_) \
		printf(" (%s:%d: %s)", __FILE__, __LINE__, #cond); \
	printf("\n"); \
} while (0)

#define CHECK_STR(got, want, ...) do { \
	const char *g_ = (got), *w_ = (want); \
	int eq_ = g_ && w_ && !strcmp(g_, w_); \
	CHECK(eq_, __VA_ARGS__); \
	if (!eq_) \
		printf("#   got  '%s'\n#   want '%s'\n", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
} while (0)

/*
 * A check the rest of the binary depends on: when it fails, the binary
 * stops with "Bail out!" and no plan, so the checks it would have skipped
 * count as a failure of the whole run (tests/run.sh) instead of vanishing
 * from a shorter plan.
 */
#define REQUIRE(cond, ...) do { \
	int unit_req_ = !!(cond); \
	CHECK(unit_req_, __VA_ARGS__); \
	if (!unit_req_) { \
		printf("Bail out! a required check failed; the rest did not run\n"); \
		exit(1); \
	} \
} while (0)

/*
 * Damage of a checked binary form: a flipped bit (0x40) in any byte of buf,
 * and a cut at any length, must each be rejected by rejects(). Two test
 * points; the bytes and lengths that were accepted are printed.
 */
static inline void unit_damage(const void *buf, size_t len, int (*rejects)(const void *, size_t))
{
	unsigned char *b = malloc(len ? len : 1);
	int all = b != NULL;
	for (size_t i = 0; b && i < len; i++) {
		memcpy(b, buf, len);
		b[i] ^= 0x40;
		if (!rejects(b, len)) {
			printf("#   flipping byte %zu was accepted\n", i);
			all = 0;
		}
	}
	free(b);
	CHECK(all, "a flipped bit in any of %zu bytes rejects the file", len);
	all = 1;
	for (size_t n = 0; n < len; n++)
		if (!rejects(buf, n)) {
			printf("#   truncation to %zu accepted\n", n);
			all = 0;
		}
	CHECK(all, "truncation at every length rejects the file");
}

static inline int unit_done(void)
{
	printf("1..%d\n", unit_n);
	return unit_failed ? 1 : 0;
}

#endif
