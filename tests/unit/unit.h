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

static inline int unit_done(void)
{
	printf("1..%d\n", unit_n);
	return unit_failed ? 1 : 0;
}

#endif
