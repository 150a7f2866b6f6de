/*
 * rulebin: the compiled, checked form of a ruleset, for the preload.
 *
 * Layout (all integers little-endian):
 *   header  magic "SGRB", u16 version, u16 header size, u32 total length,
 *           u32 rule count, u32 rule record size, u32 string pool size,
 *           u32 CRC32C of everything after the header
 *   rules   count fixed-size records (struct rule fields, little-endian)
 *   strings the string pool
 * rulebin_load() checks every field and offset and rejects the whole file
 * when anything is off; it never trusts a length it has not checked.
 */
#ifndef SOCKGATE_RULEBIN_H
#define SOCKGATE_RULEBIN_H

#include <stddef.h>
#include "rules.h"

#define RULEBIN_MAGIC "SGRB"
#define RULEBIN_VERSION 4	/* 2: the aux string (translate dev=, authority-idx=); 3: the host pattern; 4: sender= uid and gid */

/* Does the buffer start like a compiled rules file? */
int rulebin_is(const void *buf, size_t len);

/* Encode; *out is malloc'd. 0, or -1 with ENOMEM / EOVERFLOW. */
int rulebin_write(const struct ruleset *rs, void **out, size_t *outlen);

/* Decode and check; NULL with errno EINVAL (err says why) or ENOMEM. */
struct ruleset *rulebin_load(const void *buf, size_t len, struct rules_error *err);



/*
 * Rules from a file's contents, text or compiled, then extra text (may be
 * NULL; not with a compiled file). NULL with errno EINVAL and err filled:
 * for text, line:col of the fault; for a compiled file line 0 and a
 * message starting "compiled rules:" (a compiled file has no lines). Or
 * NULL with ENOMEM. The result never points into buf.
 */
struct ruleset *rules_load_any(const char *buf, size_t len, const char *extra, struct rules_error *err);
#endif
