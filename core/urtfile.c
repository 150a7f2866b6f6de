/*
 * urtfile: read u-relay-tproxy's compiled rules, its gen-config.py text and
 * its index files, and give the sockgate rules they mean (layout and the
 * meaning of each type in urtfile.h; facts from u-relay-tproxy's preload.c,
 * type4.c, gen-config.py and gen-idx-file.py, written anew here).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "urtfile.h"

#define HDR 16
#define ENT 32
#define T4DATA 32
#define PATHMAX 107	/* sun_path less its NUL: u-relay-tproxy cut paths there */

static uint32_t be16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return be16(p) << 16 | be16(p + 2); }

struct sb {
	char *buf;
	size_t len, cap;
	int fail;
};

static void sbf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sbf(struct sb *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		int n = vsnprintf(b->buf ? b->buf + b->len : NULL, b->buf ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0 || b->fail) {
			b->fail = 1;
			return;
		}
		if (b->buf && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap ? b->cap * 2 : 1024;
		while (cap < b->len + (size_t)n + 1)
			cap *= 2;
		char *nb = realloc(b->buf, cap);
		if (!nb) {
			b->fail = 1;
			return;
		}
		b->buf = nb;
		b->cap = cap;
	}
}

static int fail(struct rules_error *err, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct rules_error *err, unsigned line, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		memset(err, 0, sizeof *err);
		err->line = line;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	errno = EINVAL;
	return -1;
}

int urt_is(const void *buf, size_t len)
{
	return len >= 4 && be32(buf) == URT_MAGIC;
}

/* One entry, whichever form it came from. */
struct ent {
	uint8_t pfx[16];
	unsigned plen, type;
	const uint8_t *path;	/* types 1, 2, 4 */
	size_t pathlen;
	uint8_t t3[16];		/* type 3: the new network bits */
	char dev[17];		/* type 3: SO_BINDTODEVICE, "" for none */
	struct rules_idxsel sel;	/* type 4 */
};

static int host_bits_clear(const uint8_t a[16], unsigned plen)
{
	for (unsigned bit = plen; bit < 128; bit++)
		if (a[bit / 8] & (0x80 >> (bit % 8)))
			return 0;
	return 1;
}

static void put_prefix(struct sb *b, const uint8_t a[16], unsigned plen, int brackets)
{
	char t[INET6_ADDRSTRLEN];
	if (plen >= 96 && addr_is_v4mapped(a)) {
		inet_ntop(AF_INET, a + 12, t, sizeof t);
		sbf(b, "%s/%u", t, plen - 96);
	} else {
		inet_ntop(AF_INET6, a, t, sizeof t);
		sbf(b, brackets ? "[%s/%u]" : "%s/%u", t, plen);
	}
}

/*
 * The path as a rule template: the first #//0_ ... #//7_ and #//P_ become
 * %0 ... %7 and %P (u-relay-tproxy replaced only the first of each), '%'
 * becomes %%. Bytes the rule text cannot carry refuse the entry.
 */
static int put_path(struct sb *b, const struct ent *e, unsigned line, struct rules_error *err)
{
	static const char marks[] = "01234567P";
	size_t n = e->pathlen, at[9];
	const uint8_t *p = e->path;

	if (n > PATHMAX)
		n = PATHMAX;
	const uint8_t *nul = memchr(p, 0, n);
	if (nul)
		n = (size_t)(nul - p);
	if (n == 0)
		return fail(err, line, "entry %u: type %u with an empty path", line, e->type);
	for (int k = 0; k < 9; k++) {
		char m[6] = { '#', '/', '/', marks[k], '_', 0 };
		const uint8_t *f = memmem(p, n, m, 5);
		at[k] = f ? (size_t)(f - p) : (size_t)-1;
	}
	sbf(b, " ");
	for (size_t i = 0; i < n; i++) {
		int k;
		for (k = 0; k < 9 && at[k] != i; k++)
			;
		if (k < 9) {
			sbf(b, "%%%c", marks[k]);
			i += 4;
		} else if (p[i] == '%') {
			sbf(b, "%%%%");
		} else if (p[i] <= 0x20 || p[i] == 0x7f || p[i] == '#' || p[i] == ';') {
			return fail(err, line, "entry %u: path has a byte 0x%02x that sockgate rules cannot carry",
				    line, p[i]);
		} else {
			sbf(b, "%c", p[i]);
		}
	}
	return 0;
}

static int emit(struct sb *b, const struct ent *e, unsigned line, struct rules_error *err)
{
	if (e->plen > 128)
		return fail(err, line, "entry %u: prefix length %u (at most 128)", line, e->plen);
	if (e->type > 4)
		return fail(err, line, "entry %u: type %u is not supported (0-4 are)", line, e->type);
	if (!host_bits_clear(e->pfx, e->plen)) {
		/* u-relay-tproxy compared the masked destination with it: never equal */
		sbf(b, "# entry %u never matches (host bits set in its prefix)\n", line);
		return 0;
	}
	sbf(b, "connect tcp ");
	if (e->plen == 0)
		sbf(b, "*");
	else
		put_prefix(b, e->pfx, e->plen, 1);
	switch (e->type) {
	case 0:
		sbf(b, " -> pass");
		break;
	case 1:
	case 2:
	case 4:
		sbf(b, " -> unix");
		if (put_path(b, e, line, err))
			return -1;
		if (e->type != 1)
			sbf(b, " proxy-v2 source=[::]:0");
		if (e->type == 4)
			sbf(b, " authority-idx=%u,%u,0x%x,0x%x,%u,%u", e->sel.idx_shift, e->sel.ent_shift,
			    e->sel.idx_mask, e->sel.ent_mask, e->sel.idx_offset, e->sel.ent_offset);
		break;
	case 3: {
		uint8_t a[16];
		memcpy(a, e->t3, 16);
		for (unsigned bit = e->plen; bit < 128; bit++)
			a[bit / 8] &= (uint8_t)~(0x80 >> (bit % 8));
		sbf(b, " -> translate ");
		put_prefix(b, a, e->plen, 0);
		if (e->dev[0]) {
			for (const char *c = e->dev; *c; c++)
				if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || *c == '/' || *c == '#' ||
				    *c == ';')
					return fail(err, line, "entry %u: bad device name", line);
			if (strlen(e->dev) > 15)
				return fail(err, line, "entry %u: device name longer than 15 bytes", line);
			sbf(b, " dev=%s", e->dev);
		}
		break;
	}
	}
	sbf(b, "\n");
	return 0;
}

static void sel_from(const uint8_t *d, struct rules_idxsel *s)
{
	/* version d[0] and flags d[1] were not read by u-relay-tproxy either */
	s->idx_shift = d[2];
	s->ent_shift = d[3];
	s->idx_mask = be32(d + 4);
	s->ent_mask = be32(d + 8);
	s->idx_offset = be32(d + 12);
	s->ent_offset = be32(d + 16);
}

static int finish(struct sb *b, char **text, struct rules_error *err)
{
	if (!b->buf)
		sbf(b, "%s", "");
	if (b->fail) {
		free(b->buf);
		if (err) {
			memset(err, 0, sizeof *err);
			snprintf(err->msg, sizeof err->msg, "out of memory");
		}
		errno = ENOMEM;
		return -1;
	}
	*text = b->buf;
	return 0;
}

int urt_to_rules(const void *buf, size_t len, char **text, struct rules_error *err)
{
	const uint8_t *f = buf;
	struct sb b = { 0 };

	if (len < HDR)
		return fail(err, 0, "u-relay-tproxy file: %zu bytes, shorter than its 16-byte header", len);
	if (be32(f) != URT_MAGIC)
		return fail(err, 0, "u-relay-tproxy file: bad magic 0x%08x (expected 0x%08x)", be32(f), URT_MAGIC);
	uint32_t n = be16(f + 4), units = be16(f + 6);
	uint64_t data = HDR + (uint64_t)n * ENT;
	if (data > len)
		return fail(err, 0, "u-relay-tproxy file: %u entries need %llu bytes, the file has %zu", n,
			    (unsigned long long)data, len);
	if (units && (uint64_t)units * 4096 != len)
		return fail(err, 0, "u-relay-tproxy file: header says %u bytes, the file has %zu",
			    units * 4096, len);
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *p = f + HDR + (size_t)i * ENT;
		struct ent e;
		unsigned line = i + 1;
		memset(&e, 0, sizeof e);
		memcpy(e.pfx, p, 16);
		e.plen = p[16];
		e.type = p[17];
		uint32_t dlen = be16(p + 18), off = be32(p + 20);
		if (data + off + dlen > len) {
			free(b.buf);
			return fail(err, line, "entry %u: data at %llu+%u runs past the end (%zu bytes)", line,
				    (unsigned long long)(data + off), dlen, len);
		}
		const uint8_t *d = f + data + off;
		if (e.type == 3) {
			if (dlen < 16) {
				free(b.buf);
				return fail(err, line, "entry %u: type 3 data is %u bytes (at least 16)", line, dlen);
			}
			memcpy(e.t3, d, 16);
			size_t dn = dlen - 16 < 16 ? dlen - 16 : 16;
			memcpy(e.dev, d + 16, dn);
			e.dev[16] = 0;
		} else if (e.type == 4) {
			if (dlen < T4DATA) {
				free(b.buf);
				return fail(err, line, "entry %u: type 4 data is %u bytes (at least %d)", line, dlen,
					    T4DATA);
			}
			sel_from(d, &e.sel);
			if (e.sel.idx_shift > 127 || e.sel.ent_shift > 127) {
				free(b.buf);
				return fail(err, line, "entry %u: type 4 shift past 127", line);
			}
			e.path = d + T4DATA;
			e.pathlen = dlen - T4DATA;
		} else {
			e.path = d;
			e.pathlen = dlen;
		}
		if (emit(&b, &e, line, err)) {
			free(b.buf);
			return -1;
		}
	}
	return finish(&b, text, err);
}

/* ---- gen-config.py text -------------------------------------------------- */

int urt_text_is(const char *buf, size_t len)
{
	int any = 0;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)buf[i] < 0x20 && buf[i] != '\n' && buf[i] != '\t' && buf[i] != '\r')
			return 0;	/* not text: a compiled file of some kind */
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - buf) : len;
		size_t j = i;
		while (j < e && (buf[j] == ' ' || buf[j] == '\t'))
			j++;
		if (j < e && buf[j] != '#' && buf[j] != '\r') {
			if (memmem(buf + j, e - j, "->", 2))
				return 0;
			/* the first line starts with an IPv6 prefix; a sockgate rule with a direction */
			size_t w = j;
			while (w < e && buf[w] != ' ' && buf[w] != '\t')
				w++;
			if (!any && !memchr(buf + j, ':', w - j))
				return 0;
			any = 1;
		}
		i = e + 1;
	}
	return any;
}

/* shlex-like words of one line: blanks split, quotes group, '#' at a word start ends the line. */
static int words(const char *s, size_t n, char w[3][256], int *nw)
{
	size_t i = 0;
	*nw = 0;
	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
			i++;
		if (i >= n || s[i] == '#')
			return 0;
		size_t o = 0;
		int have = 0;
		while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r') {
			char q = s[i];
			if (q == '\'' || q == '"') {
				const char *c = memchr(s + i + 1, q, n - i - 1);
				if (!c)
					return -1;
				size_t k = (size_t)(c - (s + i + 1));
				if (*nw < 3) {
					if (o + k >= 256)
						return -1;
					memcpy(w[*nw] + o, s + i + 1, k);
				}
				o += k;
				i += k + 2;
			} else {
				if (*nw < 3 && o + 1 < 256)
					w[*nw][o] = q;
				else if (*nw < 3)
					return -1;
				o++;
				i++;
			}
			have = 1;
		}
		if (have && *nw < 3)
			w[*nw][o] = 0;
		if (have)
			(*nw)++;
	}
}

static int v6_prefix(const char *s, uint8_t a[16], unsigned *plen)
{
	char h[64];
	const char *sl = strchr(s, '/');
	size_t hn = sl ? (size_t)(sl - s) : strlen(s);
	if (hn == 0 || hn >= sizeof h)
		return -1;
	memcpy(h, s, hn);
	h[hn] = 0;
	if (inet_pton(AF_INET6, h, a) != 1)
		return -1;
	*plen = 128;
	if (sl) {
		unsigned v = 0;
		if (!sl[1] || strlen(sl + 1) > 3)
			return -1;
		for (const char *c = sl + 1; *c; c++) {
			if (*c < '0' || *c > '9')
				return -1;
			v = v * 10 + (unsigned)(*c - '0');
		}
		if (v > 128)
			return -1;
		*plen = v;
	}
	return 0;
}

static int num(const char *s, size_t n, uint64_t max, uint64_t *out)
{
	char t[24];
	if (n == 0 || n >= sizeof t)
		return -1;
	memcpy(t, s, n);
	t[n] = 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(t, &end, 0);
	if (*end || errno || v > max || t[0] == '-' || t[0] == '+')
		return -1;
	*out = v;
	return 0;
}

int urt_text_to_rules(const char *buf, size_t len, char **text, struct rules_error *err)
{
	struct sb b = { 0 };
	unsigned line = 0;

	for (size_t i = 0; i < len;) {
		const char *nl = memchr(buf + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - buf) : len;
		char w[3][256];
		int nw;
		line++;
		if (words(buf + i, e - i, w, &nw) < 0) {
			free(b.buf);
			return fail(err, line, "unterminated quote or word too long");
		}
		i = e + 1;
		if (nw < 2) {	/* gen-config.py skipped these too */
			sbf(&b, "\n");
			continue;
		}
		struct ent en;
		memset(&en, 0, sizeof en);
		if (v6_prefix(w[0], en.pfx, &en.plen) || !host_bits_clear(en.pfx, en.plen)) {
			free(b.buf);
			return fail(err, line, "'%s' is not an IPv6 network (host bits must be clear)", w[0]);
		}
		uint64_t t = 2;
		if (nw >= 3 && num(w[2], strlen(w[2]), 255, &t)) {
			free(b.buf);
			return fail(err, line, "bad type '%s'", w[2]);
		}
		en.type = (unsigned)t;
		if (en.type == 3) {
			char *comma = strchr(w[1], ',');
			unsigned dummy;
			if (comma)
				*comma = 0;
			if (v6_prefix(w[1], en.t3, &dummy) || strchr(w[1], '/')) {
				free(b.buf);
				return fail(err, line, "type 3: '%s' is not an IPv6 address", w[1]);
			}
			if (comma)
				snprintf(en.dev, sizeof en.dev, "%.16s", comma + 1);
		} else if (en.type == 4) {
			/* "VERSION,FLAGS,IDX_SHIFT,ENT_SHIFT,IDX_MASK,ENT_MASK,IDX_OFFSET,ENT_OFFSET,R,R,R;PATH" */
			char *semi = strchr(w[1], ';');
			uint64_t v[11];
			const char *s = w[1];
			int k = 0;
			if (!semi) {
				free(b.buf);
				return fail(err, line, "type 4 needs 'N,N,N,N,N,N,N,N,N,N,N;PATH'");
			}
			for (; k < 11 && s < semi; k++) {
				const char *c = memchr(s, ',', (size_t)(semi - s));
				const char *we = c ? c : semi;
				uint64_t max = k < 4 ? 255 : UINT32_MAX;
				if (num(s, (size_t)(we - s), max, &v[k]))
					break;
				s = c ? c + 1 : semi;
				if (!c) {
					k++;
					break;
				}
			}
			if (k != 11 || s != semi || v[2] > 127 || v[3] > 127) {
				free(b.buf);
				return fail(err, line, "type 4: bad numbers before ';' (eleven, the shifts below 128)");
			}
			en.sel.idx_shift = (uint8_t)v[2];
			en.sel.ent_shift = (uint8_t)v[3];
			en.sel.idx_mask = (uint32_t)v[4];
			en.sel.ent_mask = (uint32_t)v[5];
			en.sel.idx_offset = (uint32_t)v[6];
			en.sel.ent_offset = (uint32_t)v[7];
			en.path = (const uint8_t *)semi + 1;
			en.pathlen = strlen(semi + 1);
		} else {
			en.path = (const uint8_t *)w[1];
			en.pathlen = strlen(w[1]);
		}
		if (emit(&b, &en, line, err)) {
			free(b.buf);
			return -1;
		}
	}
	return finish(&b, text, err);
}

/* ---- index files ------------------------------------------------------------- */

int urt_idxspec_parse(const char *s, struct urt_idxspec *out, int max, struct rules_error *err)
{
	int n = 0;
	unsigned item = 0;

	while (*s) {
		const char *end = strchr(s, ';');
		size_t tl = end ? (size_t)(end - s) : strlen(s);
		if (tl) {
			item++;
			size_t k = 0;
			while (k < tl && k < 20 && s[k] != '=' && s[k] != ',')
				k++;
			uint64_t v;
			if (k >= tl || (s[k] != '=' && s[k] != ',') || num(s, k, UINT32_MAX, &v))
				return fail(err, 0, "URELAY_TPROXY_IDX_FILES item %u: expected N,DOMAIN or N=FILE", item);
			if (k + 1 >= tl)
				return fail(err, 0, "URELAY_TPROXY_IDX_FILES item %u: empty %s", item,
					    s[k] == '=' ? "file name" : "domain");
			if (n >= max) {
				fail(err, 0, "URELAY_TPROXY_IDX_FILES: more than %d items", max);
				return errno = E2BIG, -1;
			}
			out[n].idx = (uint32_t)v;
			out[n].is_file = s[k] == '=';
			out[n].val = s + k + 1;
			out[n].vlen = tl - k - 1;
			n++;
		}
		s += tl;
		if (*s == ';')
			s++;
	}
	return n;
}

int urt_idxfile_check(const void *buf, size_t len, struct rules_error *err)
{
	const uint8_t *f = buf;

	if (len < 8)
		return fail(err, 0, "index file: %zu bytes, shorter than its 8-byte header", len);
	if (be32(f) != URT_IDX_MAGIC)
		return fail(err, 0, "index file: bad magic 0x%08x (expected 0x%08x)", be32(f), URT_IDX_MAGIC);
	uint64_t n = be32(f + 4), data = 8 + n * 8;
	if (data > len)
		return fail(err, 0, "index file: %llu entries do not fit in %zu bytes", (unsigned long long)n, len);
	for (uint64_t i = 0; i < n; i++) {
		const uint8_t *p = f + 8 + i * 8;
		if (i && be32(p) < be32(p - 8))
			return fail(err, 0, "index file: entry %llu out of order", (unsigned long long)i + 1);
		if (data + (uint64_t)be32(p + 4) * 4 >= len)
			return fail(err, 0, "index file: entry %llu points past the end", (unsigned long long)i + 1);
	}
	return 0;
}

static uint32_t shifted(const uint8_t ip[16], unsigned shift)
{
	uint64_t hi = 0, lo = 0;
	for (int i = 0; i < 8; i++) {
		hi = hi << 8 | ip[i];
		lo = lo << 8 | ip[8 + i];
	}
	if (shift >= 64)
		return (uint32_t)(hi >> (shift - 64));
	if (shift > 32)
		return (uint32_t)((hi << (64 - shift)) | (lo >> shift));
	return (uint32_t)(lo >> shift);
}

size_t urt_domain(const struct urt_idx *tab, size_t n, const uint8_t ip[16], const struct rules_idxsel *sel,
		  char out[129])
{
	uint32_t idx = sel->idx_offset + (shifted(ip, sel->idx_shift) & sel->idx_mask);
	uint32_t ent = sel->ent_offset + (shifted(ip, sel->ent_shift) & sel->ent_mask);
	const struct urt_idx *t = NULL;
	size_t o = 0;

	out[0] = 0;
	for (size_t i = 0; i < n && !t; i++)
		if (tab[i].idx == idx)
			t = &tab[i];
	if (!t)
		return 0;
	if (!t->is_file) {
		for (; o < t->len && o < 128 && t->data[o]; o++)
			out[o] = (char)t->data[o];
	} else {
		/* checked by urt_idxfile_check: header, count, order, offsets */
		const uint8_t *f = t->data;
		size_t cnt = be32(f + 4), lo = 0, hi = cnt, data = 8 + cnt * 8;
		const uint8_t *hit = NULL;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			uint32_t v = be32(f + 8 + mid * 8);
			if (v == ent) {
				hit = f + 8 + mid * 8;
				break;
			}
			if (v < ent)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (!hit)
			return 0;
		size_t at = data + (size_t)be32(hit + 4) * 4;
		for (; o < 128 && at + o < t->len && f[at + o]; o++)
			out[o] = (char)f[at + o];
	}
	out[o] = 0;
	int nib = 31;
	for (size_t i = o; i-- > 0;) {
		if (out[i] != '#')
			continue;
		out[i] = nib < 0 ? '0' : "0123456789abcdef"[(ip[nib / 2] >> (nib % 2 ? 0 : 4)) & 0xf];
		nib--;
	}
	return o;
}
