/*
 * urtfile: u-relay-tproxy's rules, read and turned into sockgate rules.
 *
 * u-relay-tproxy (github.com/PHJArea217/u-relay-tproxy) is driven by a
 * compiled file (URELAY_TPROXY_FILE) that its gen-config.py makes from lines
 * "PREFIX 'PATH' [TYPE]". The compiled layout, all integers big-endian:
 *
 *   header  u32 magic 0xf200a01f, u16 entry count, u16 total length in
 *           4096-byte units, u32 flags, u32 reserved            (16 bytes)
 *   entries 16-byte IPv6 prefix, u8 prefix length, u8 type, u16 data length,
 *           u32 data offset (from the end of the entries), 8 reserved
 *                                                               (32 bytes each)
 *   data    per type: 1, 2 a Unix path (NUL-padded); 3 a 16-byte IPv6
 *           address, a 16-byte SO_BINDTODEVICE name, 20 unused bytes;
 *           4 a 32-byte index selector, then the path
 *
 * Each entry becomes one line of sockgate-rules(5) text (first match wins in
 * both), so the preload, `sockgate-asmgen --dump` and the tests see the same
 * rules. Every count, offset and length is checked; a file that fails any
 * check is refused whole (u-relay-tproxy aborted the program instead).
 *
 * URELAY_TPROXY_IDX_FILES ("N,DOMAIN" or "N=FILE", ';'-separated) and the
 * index files (u32 magic 0xf200a01e, u32 count, sorted {u32 index, u32
 * offset/4} pairs, NUL-terminated names) give type 4 its AUTHORITY name.
 */
#ifndef SOCKGATE_URTFILE_H
#define SOCKGATE_URTFILE_H

#include <stddef.h>
#include <stdint.h>
#include "rules.h"

#define URT_MAGIC 0xf200a01fu
#define URT_IDX_MAGIC 0xf200a01eu

/* Does the buffer start with the compiled file's magic? */
int urt_is(const void *buf, size_t len);

/*
 * A compiled file to rule text (malloc'd, NUL-terminated; line N is entry
 * N). 0, or -1 with errno EINVAL (err: line = entry number or 0, msg) or
 * ENOMEM.
 */
int urt_to_rules(const void *buf, size_t len, char **text, struct rules_error *err);

/* gen-config.py's input to rule text; line numbers are the input's. */
int urt_text_to_rules(const char *buf, size_t len, char **text, struct rules_error *err);

/*
 * Does this text read as gen-config.py input: no line has "->", and the
 * first word of the first line is an IPv6 prefix (has a ':')?
 */
int urt_text_is(const char *buf, size_t len);

/* One item of URELAY_TPROXY_IDX_FILES. */
struct urt_idxspec {
	uint32_t idx;
	int is_file;		/* "N=FILE" (else "N,DOMAIN") */
	const char *val;	/* points into the parsed string */
	size_t vlen;
};

/*
 * Split URELAY_TPROXY_IDX_FILES into at most max items. Returns the count,
 * or -1 with EINVAL (err->msg says which item) or E2BIG.
 */
int urt_idxspec_parse(const char *s, struct urt_idxspec *out, int max, struct rules_error *err);

/* Check an index file's contents; 0, or -1 with EINVAL (err->msg). */
int urt_idxfile_check(const void *buf, size_t len, struct rules_error *err);

/* A loaded index: a direct domain, or a checked index file's bytes. */
struct urt_idx {
	uint32_t idx;
	int is_file;
	const uint8_t *data;
	size_t len;
};

/*
 * The AUTHORITY name for destination ip (16-byte form) under selector sel:
 * writes at most 128 bytes and a NUL to out. Returns the length, or 0 when
 * no index names it. '#' in a name becomes a hex digit of the address, the
 * rightmost '#' the last digit.
 */
size_t urt_domain(const struct urt_idx *tab, size_t n, const uint8_t ip[16], const struct rules_idxsel *sel,
		  char out[129]);

#endif
