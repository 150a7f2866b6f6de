/*
 * rulebin: encode and load the compiled rules form (layout in rulebin.h).
 *
 * The loader trusts nothing: it checks the magic, version, sizes, the
 * CRC32C of the body, every field's range and every string offset, and
 * then the same per-rule meaning checks as the text parser (by formatting
 * each rule and parsing it again), so a loaded file means exactly what
 * `sockgate-asmgen --dump` shows. Any failed check rejects the whole file.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyv2.h"	/* crc32c() */
#include "rulebin.h"

#define HDR_SIZE 28
#define REC_SIZE 96

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }

int rulebin_is(const void *buf, size_t len)
{
	return len >= 4 && !memcmp(buf, RULEBIN_MAGIC, 4);
}

/* Strings are written in a fixed order (per rule: arg, name, source, aux, host, owner, group), so
 * that text -> bin -> text -> bin gives the same bytes. */
static uint32_t copy_str(const struct ruleset *rs, uint32_t off, uint8_t *pool, size_t *plen)
{
	const char *s = rules_str(rs, off);
	if (!s)
		return RULE_NONE;
	size_t n = strlen(s) + 1;
	memcpy(pool + *plen, s, n);
	uint32_t o = (uint32_t)*plen;
	*plen += n;
	return o;
}

int rulebin_write(const struct ruleset *rs, void **out, size_t *outlen)
{
	size_t strmax = 0;

	for (size_t i = 0; i < rs->n; i++) {
		const uint32_t offs[7] = { rs->rule[i].arg, rs->rule[i].name, rs->rule[i].source, rs->rule[i].aux,
					   rs->rule[i].host, rs->rule[i].owner, rs->rule[i].group };
		for (int k = 0; k < 7; k++)
			if (rules_str(rs, offs[k]))
				strmax += strlen(rules_str(rs, offs[k])) + 1;
	}
	if (rs->n > (UINT32_MAX - HDR_SIZE - strmax) / REC_SIZE) {
		errno = EOVERFLOW;
		return -1;
	}
	size_t total = HDR_SIZE + rs->n * REC_SIZE + strmax;
	uint8_t *b = calloc(1, total);
	if (!b) {
		errno = ENOMEM;
		return -1;
	}
	uint8_t *pool = b + HDR_SIZE + rs->n * REC_SIZE;
	size_t plen = 0;
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rule[i];
		uint8_t *p = b + HDR_SIZE + i * REC_SIZE;
		p[0] = r->dir;
		p[1] = r->proto;
		p[2] = r->action;
		memcpy(p + 4, r->addr.addr, 16);
		p[20] = r->addr.plen;
		memcpy(p + 21, r->peer.addr, 16);
		p[37] = r->peer.plen;
		put16(p + 38, r->port_lo);
		put16(p + 40, r->port_hi);
		put16(p + 42, r->pport_lo);
		put16(p + 44, r->pport_hi);
		put32(p + 48, r->flags);
		put32(p + 52, r->mode);
		put32(p + 56, (uint32_t)r->err);
		put32(p + 60, copy_str(rs, r->arg, pool, &plen));
		put32(p + 64, copy_str(rs, r->name, pool, &plen));
		put32(p + 68, copy_str(rs, r->source, pool, &plen));
		put32(p + 72, copy_str(rs, r->aux, pool, &plen));
		put32(p + 76, copy_str(rs, r->host, pool, &plen));
		put32(p + 80, r->sender_uid);
		put32(p + 84, r->sender_gid);
		put32(p + 88, copy_str(rs, r->owner, pool, &plen));
		put32(p + 92, copy_str(rs, r->group, pool, &plen));
	}
	memcpy(b, RULEBIN_MAGIC, 4);
	put16(b + 4, RULEBIN_VERSION);
	put16(b + 6, HDR_SIZE);
	put32(b + 8, (uint32_t)total);
	put32(b + 12, (uint32_t)rs->n);
	put32(b + 16, REC_SIZE);
	put32(b + 20, (uint32_t)plen);
	put32(b + 24, crc32c(0, b + HDR_SIZE, total - HDR_SIZE));
	*out = b;
	*outlen = total;
	return 0;
}

static struct ruleset *reject(struct rules_error *err, unsigned rule, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static struct ruleset *reject(struct rules_error *err, unsigned rule, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		memset(err, 0, sizeof *err);
		(void)rule;	/* a compiled file has no lines: the message names the rule */
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	errno = EINVAL;
	return NULL;
}

static int prefix_clean(const uint8_t a[16], unsigned plen)
{
	for (unsigned bit = plen; bit < 128; bit++)
		if (a[bit / 8] & (0x80 >> (bit % 8)))
			return 0;
	return 1;
}

#define KNOWN_FLAGS (RULE_F_PROXY_V2 | RULE_F_PROXY_V1 | RULE_F_NETNS | RULE_F_CRC32C | \
		     RULE_F_FASTOPEN_EPIPE | RULE_F_RST | RULE_F_IP4 | RULE_F_IP6 | RULE_F_SHUT_RD_RDWR | \
		     RULE_F_DNS64 | RULE_F_DISCOVER | RULE_F_NOREMOVE)

struct ruleset *rulebin_load(const void *buf, size_t len, struct rules_error *err)
{
	const uint8_t *b = buf;

	if (len < HDR_SIZE || !rulebin_is(buf, len))
		return reject(err, 0, "not a compiled rules file (bad magic or too short)");
	if (get16(b + 4) != RULEBIN_VERSION)
		return reject(err, 0, "compiled rules version %u, this build reads version %u", get16(b + 4),
			      RULEBIN_VERSION);
	uint32_t hsize = get16(b + 6), total = get32(b + 8), n = get32(b + 12), rsize = get32(b + 16),
		 slen = get32(b + 20);
	if (hsize != HDR_SIZE || rsize != REC_SIZE)
		return reject(err, 0, "compiled rules: unexpected header or record size");
	if (total != len)
		return reject(err, 0, "compiled rules: length %u in header, file has %zu bytes", total, len);
	if (n > (len - HDR_SIZE) / REC_SIZE || (uint64_t)HDR_SIZE + (uint64_t)n * REC_SIZE + slen != len)
		return reject(err, 0, "compiled rules: counts do not add up to the file length");
	if (crc32c(0, b + HDR_SIZE, len - HDR_SIZE) != get32(b + 24))
		return reject(err, 0, "compiled rules: checksum mismatch (file damaged)");
	const uint8_t *pool = b + HDR_SIZE + (size_t)n * REC_SIZE;
	if (slen && pool[slen - 1] != 0)
		return reject(err, 0, "compiled rules: string pool not terminated");

	struct ruleset *rs = calloc(1, sizeof *rs);
	if (!rs)
		goto nomem;
	rs->rule = calloc(n ? n : 1, sizeof *rs->rule);
	rs->str = malloc(slen ? slen : 1);
	if (!rs->rule || !rs->str)
		goto nomem;
	memcpy(rs->str, pool, slen);
	rs->strlen = slen;
	rs->n = n;

	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = b + HDR_SIZE + (size_t)i * REC_SIZE;
		struct rule *r = &rs->rule[i];
		r->dir = p[0];
		r->proto = p[1];
		r->action = p[2];
		memcpy(r->addr.addr, p + 4, 16);
		r->addr.plen = p[20];
		memcpy(r->peer.addr, p + 21, 16);
		r->peer.plen = p[37];
		r->port_lo = (uint16_t)get16(p + 38);
		r->port_hi = (uint16_t)get16(p + 40);
		r->pport_lo = (uint16_t)get16(p + 42);
		r->pport_hi = (uint16_t)get16(p + 44);
		r->flags = get32(p + 48);
		r->mode = get32(p + 52);
		r->err = (int32_t)get32(p + 56);
		r->arg = get32(p + 60);
		r->name = get32(p + 64);
		r->source = get32(p + 68);
		r->aux = get32(p + 72);
		r->host = get32(p + 76);
		r->sender_uid = get32(p + 80);
		r->sender_gid = get32(p + 84);
		r->owner = get32(p + 88);
		r->group = get32(p + 92);
		r->line = i + 1;

		const char *why = NULL;
		if (p[3] || p[46] || p[47])
			why = "reserved bytes not zero";
		else if (r->dir < 1 || r->dir >= RULE_NDIR)
			why = "bad direction";
		else if (r->proto < 1 || (r->proto & ~RULE_PROTOS))
			why = "bad protocol";
		else if (r->action < 1 || r->action >= ACT_NACTIONS)
			why = "bad action";
		else if (r->addr.plen > 128 || r->peer.plen > 128 || !prefix_clean(r->addr.addr, r->addr.plen) ||
			 !prefix_clean(r->peer.addr, r->peer.plen))
			why = "bad prefix";
		else if (r->port_lo > r->port_hi || r->pport_lo > r->pport_hi)
			why = "bad port range";
		else if (r->flags & ~KNOWN_FLAGS)
			why = "unknown option flags";
		else if (r->mode > 07777)
			why = "bad mode";
		else if ((r->arg != RULE_NONE && r->arg >= slen) || (r->name != RULE_NONE && r->name >= slen) ||
			 (r->source != RULE_NONE && r->source >= slen) || (r->aux != RULE_NONE && r->aux >= slen) ||
			 (r->host != RULE_NONE && r->host >= slen) || (r->owner != RULE_NONE && r->owner >= slen) ||
			 (r->group != RULE_NONE && r->group >= slen))
			why = "string offset out of range";
		if (why) {
			rules_free(rs);
			return reject(err, i + 1, "compiled rules: rule %u: %s", i + 1, why);
		}
		/* The meaning checks of the text parser: the rule must read back as itself. */
		char text[1024];
		struct rules_error e2 = { .msg = "too long" };
		struct ruleset *one = NULL;
		int ok = rules_format(rs, r, text, sizeof text) >= 0 &&
			 (one = rules_parse_unindexed(text, strlen(text), &e2)) != NULL && one->n == 1 &&
			 rules_same(one, &one->rule[0], rs, r);
		if (!ok) {
			rules_free(rs);
			reject(err, i + 1, "compiled rules: rule %u does not check: %s", i + 1,
			       one ? "it changes when read back" : e2.msg);
			rules_free(one);
			return NULL;
		}
		rules_free(one);
	}
	if (rules_index(rs))
		goto nomem;
	return rs;
nomem:
	rules_free(rs);
	if (err) {
		memset(err, 0, sizeof *err);
		snprintf(err->msg, sizeof err->msg, "out of memory");
	}
	errno = ENOMEM;
	return NULL;
}

struct ruleset *rules_load_any(const char *buf, size_t len, const char *extra, struct rules_error *err)
{
	if (rulebin_is(buf, len)) {
		if (extra && *extra) {
			if (err) {
				memset(err, 0, sizeof *err);
				snprintf(err->msg, sizeof err->msg, "compiled rules: no rules text can be added to them");
			}
			errno = EINVAL;
			return NULL;
		}
		return rulebin_load(buf, len, err);
	}
	if (!extra || !*extra)
		return rules_parse(buf, len, err);
	/* the file first, so that its line numbers stay right in messages */
	size_t el = strlen(extra), tl = len;
	char *text = malloc(len + el + 2);
	if (!text) {
		if (err) {
			memset(err, 0, sizeof *err);
			snprintf(err->msg, sizeof err->msg, "out of memory");
		}
		return errno = ENOMEM, NULL;
	}
	memcpy(text, buf, len);
	if (len && buf[len - 1] != '\n')
		text[tl++] = '\n';
	memcpy(text + tl, extra, el);
	tl += el;
	text[tl] = 0;
	struct ruleset *rs = rules_parse(text, tl, err);
	int e = errno;
	free(text);
	errno = e;
	return rs;
}
