/*
 * Damage of a checked binary form (a compiled rules file, a control file):
 * the helpers every test shares that proves its reader refuses a flipped
 * bit, a cut, or a field out of range behind a valid checksum. A reader
 * under test is wrapped as rejected(buf, len, want): 1 when it refused buf
 * with EINVAL and, given want, a message that holds it.
 */
#ifndef SOCKGATE_DAMAGE_H
#define SOCKGATE_DAMAGE_H

#include <errno.h>
#include <stdint.h>

#include "proxyv2.h"	/* crc32c */
#include "unit.h"

typedef int unit_rejected_fn(const void *buf, size_t len, const char *want);

/* The verdict for a wrapper: did the reader fail (failed) as rejected() means? */
static inline int unit_refused(int failed, const char *msg, const char *want)
{
	if (!failed)
		return 0;
	if (want && !strstr(msg, want)) {
		printf("#   message was: %s\n", msg);
		return 0;
	}
	return errno == EINVAL;
}

static inline void unit_put32le(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Where a form keeps its checksum: CRC32C of bytes from..len, little-endian at at. */
struct unit_seal {
	size_t at, from;
};

/* Recompute the checksum after a deliberate change. */
static inline void unit_reseal(uint8_t *b, size_t len, struct unit_seal s)
{
	unit_put32le(b + s.at, crc32c(0, b + s.from, len - s.from));
}

/*
 * A flipped bit (0x40) in any byte of buf, and a cut at any length, must
 * each be refused. Two test points; the bytes and lengths that were
 * accepted are printed.
 */
static inline void unit_damage(const void *buf, size_t len, unit_rejected_fn *rejected)
{
	unsigned char *b = malloc(len ? len : 1);
	int all = b != NULL;
	for (size_t i = 0; b && i < len; i++) {
		memcpy(b, buf, len);
		b[i] ^= 0x40;
		if (!rejected(b, len, NULL)) {
			printf("#   flipping byte %zu was accepted\n", i);
			all = 0;
		}
	}
	free(b);
	CHECK(all, "a flipped bit in any of %zu bytes rejects the file", len);
	all = 1;
	for (size_t n = 0; n < len; n++)
		if (!rejected(buf, n, NULL)) {
			printf("#   truncation to %zu accepted\n", n);
			all = 0;
		}
	CHECK(all, "truncation at every length rejects the file");
}

/* One byte of the form set to val behind a valid checksum: refused with a message holding why. */
struct unit_field {
	size_t off;
	uint8_t val;
	const char *why;
};

/* A test point per field, each on a fresh copy of orig. */
static inline void unit_damage_fields(const uint8_t *orig, size_t len, struct unit_seal s,
				      const struct unit_field *f, size_t n, unit_rejected_fn *rejected)
{
	uint8_t *b = malloc(len);
	for (size_t i = 0; i < n; i++) {
		int ok = b != NULL;
		if (b) {
			memcpy(b, orig, len);
			b[f[i].off] = f[i].val;
			unit_reseal(b, len, s);
			ok = rejected(b, len, f[i].why);
		}
		CHECK(ok, "byte %zu = %u behind a valid checksum: %s", f[i].off, f[i].val, f[i].why);
	}
	free(b);
}

#endif
