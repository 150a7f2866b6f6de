/*
 * rules: the ruleset in memory (sockgate-rules(5)): the lookup index and
 * rules_match(), plus what a matched rule's user needs (rules_str(),
 * rules_expand() for the path templates), rules_same() and rules_free().
 * The text form (rules_parse(), rules_format()) is in rules_text.c, the
 * compiled form in rulebin.c.
 *
 * Lookup is first match wins. To stay fast with many rules, rules are
 * grouped by (direction, prefix length, prefix); a query probes one hash
 * bucket per prefix length present in its direction and keeps the
 * lowest-numbered rule that matches fully.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "rules.h"

/* ---- templates ------------------------------------------------------------- */

int rules_expand(const char *tmpl, const struct sockaddr *sa, char *buf, size_t size)
{
	size_t o = 0;
	char tmp[64];

	for (const char *s = tmpl; *s; s++) {
		const char *add = tmp;
		if (*s != '%') {
			tmp[0] = *s;
			tmp[1] = 0;
		} else {
			s++;
			switch (*s) {
			case '%':
				strcpy(tmp, "%");
				break;
			case 'a':
				if (!sa || addr_format_host(sa, tmp, sizeof tmp) < 0) {
					errno = EINVAL;
					return -1;
				}
				break;
			case 'p':
				if (!sa || addr_port(sa) < 0) {
					errno = EINVAL;
					return -1;
				}
				snprintf(tmp, sizeof tmp, "%d", addr_port(sa));
				break;
			case 'f':
				if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
					errno = EINVAL;
					return -1;
				}
				strcpy(tmp, sa->sa_family == AF_INET ? "4" : "6");
				break;
			case '0': case '1': case '2': case '3':
			case '4': case '5': case '6': case '7': {
				uint8_t a16[16];
				if (!sa || addr_to16(sa, a16) < 0) {
					errno = EINVAL;
					return -1;
				}
				unsigned g = (unsigned)(*s - '0');
				snprintf(tmp, sizeof tmp, "%05u", (unsigned)a16[2 * g] << 8 | a16[2 * g + 1]);
				break;
			}
			case 'P':
				if (!sa || addr_port(sa) < 0) {
					errno = EINVAL;
					return -1;
				}
				snprintf(tmp, sizeof tmp, "%05d", addr_port(sa));
				break;
			default:
				errno = EINVAL;
				return -1;
			}
		}
		size_t n = strlen(add);
		if (o + n >= size) {
			errno = ENAMETOOLONG;
			return -1;
		}
		memcpy(buf + o, add, n);
		o += n;
	}
	if (o >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	buf[o] = 0;
	return (int)o;
}

/* ---- the rules' fields ------------------------------------------------- */

static int str_same(const struct ruleset *a, uint32_t x, const struct ruleset *b, uint32_t y)
{
	const char *s = rules_str(a, x), *t = rules_str(b, y);
	return s && t ? !strcmp(s, t) : s == t;
}

int rules_same(const struct ruleset *ra, const struct rule *a, const struct ruleset *rb, const struct rule *b)
{
	return a->dir == b->dir && a->proto == b->proto && a->action == b->action &&
	       a->addr.plen == b->addr.plen && !memcmp(a->addr.addr, b->addr.addr, 16) &&
	       a->peer.plen == b->peer.plen && !memcmp(a->peer.addr, b->peer.addr, 16) &&
	       a->port_lo == b->port_lo && a->port_hi == b->port_hi &&
	       a->pport_lo == b->pport_lo && a->pport_hi == b->pport_hi &&
	       a->flags == b->flags && a->mode == b->mode && a->err == b->err &&
	       a->sender_uid == b->sender_uid && a->sender_gid == b->sender_gid &&
	       str_same(ra, a->arg, rb, b->arg) && str_same(ra, a->name, rb, b->name) &&
	       str_same(ra, a->source, rb, b->source) && str_same(ra, a->aux, rb, b->aux) &&
	       str_same(ra, a->host, rb, b->host) && str_same(ra, a->owner, rb, b->owner) &&
	       str_same(ra, a->group, rb, b->group);
}

const char *rules_str(const struct ruleset *rs, uint32_t off)
{
	if (off == RULE_NONE || off >= rs->strlen)
		return NULL;
	return rs->str + off;
}

/* ---- the index ------------------------------------------------------------ */

/*
 * Rules are grouped by (direction, prefix length, prefix). A query must
 * probe one group per prefix length that could hold a match; to avoid
 * probing every length present, each direction keeps small presence maps
 * saying which lengths occur near an address:
 *   - IPv4 (::ffff:a.b.c.d) prefixes of /8../32: a direct table by a.b,
 *     one bit per length (a /8../15 sets its bit in every a.b it covers);
 *   - IPv6 prefixes of /16../31: a direct table by the first 16 bits;
 *   - IPv6 prefixes of /32../128: a hash table by the first 32 bits.
 * Shorter prefixes (and classes with few rules) are probed always. A probe
 * compares 16 bytes and scans the group's candidates, which carry their
 * port range and protocol inline, in rule order: the first that matches
 * fully is the group's answer, and the lowest over all groups wins.
 */

struct cand {
	uint32_t rule;
	uint16_t plo, phi;
	uint8_t proto;
	uint8_t full;		/* needs the rest checked on the rule itself */
};

struct group {
	uint64_t hi, lo;	/* masked prefix */
	uint32_t start, count;	/* in index.cand */
	uint8_t dir, plen, used;
};

struct m6 {
	uint32_t key, used;
	uint64_t bits[2];	/* lengths 32..128, bit plen-32 */
};

#define DENSE_MIN 32		/* a class with fewer rules is probed always */

struct dirindex {
	uint8_t always4[130], nalways4;	/* lengths probed for every IPv4 query */
	uint8_t always6[130], nalways6;	/* ... for every IPv6 query */
	uint32_t *t4;			/* [65536]: lengths 104..128, bit plen-104 */
	uint16_t *t6a;			/* [65536]: lengths 16..31, bit plen-16 */
	struct m6 *t6b;			/* lengths 32..128 by the first 32 bits */
	size_t t6bmask;
};

struct index {
	struct group *tab;
	size_t mask;
	struct cand *cand;
	struct dirindex d[RULE_NDIR];
};

static void to64(const uint8_t a[16], uint64_t *hi, uint64_t *lo)
{
	uint64_t h = 0, l = 0;
	for (int i = 0; i < 8; i++) {
		h = h << 8 | a[i];
		l = l << 8 | a[i + 8];
	}
	*hi = h;
	*lo = l;
}

static uint64_t mask_hi(unsigned plen)
{
	return plen >= 64 ? ~0ull : plen == 0 ? 0 : ~0ull << (64 - plen);
}

static uint64_t mask_lo(unsigned plen)
{
	return plen <= 64 ? 0 : plen >= 128 ? ~0ull : ~0ull << (128 - plen);
}

static size_t hash_group(uint64_t hi, uint64_t lo, unsigned dir, unsigned plen)
{
	uint64_t h = hi * 0x9e3779b97f4a7c15ull ^ lo * 0xc2b2ae3d27d4eb4full ^ (dir << 8 | plen);
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return (size_t)(h ^ h >> 32);
}

static size_t hash32(uint32_t k)
{
	uint64_t h = k * 0x9e3779b97f4a7c15ull;
	return (size_t)(h >> 32 ^ h);
}

static int is_v4class(const struct sg_prefix *p)
{
	return p->plen >= 96 && addr_is_v4mapped(p->addr);
}

/* Does a prefix that is not in the IPv4 class still cover IPv4 addresses? */
static int covers_v4(const struct sg_prefix *p)
{
	static const uint8_t mapped[16] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };
	return p->plen <= 96 && prefix_match(p, mapped);
}

static void add_len(uint8_t *list, uint8_t *n, unsigned plen)
{
	for (unsigned i = 0; i < *n; i++)
		if (list[i] == plen)
			return;
	list[(*n)++] = (uint8_t)plen;
}

static int cmp_rules(const void *a, const void *b, void *ctx)
{
	const struct ruleset *rs = ctx;
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;
	const struct rule *x = &rs->rule[i], *y = &rs->rule[j];
	if (x->dir != y->dir)
		return x->dir - y->dir;
	if (x->addr.plen != y->addr.plen)
		return x->addr.plen - y->addr.plen;
	int c = memcmp(x->addr.addr, y->addr.addr, 16);
	if (c)
		return c;
	return i < j ? -1 : 1;
}

static void index_free(struct index *ix)
{
	if (!ix)
		return;
	for (int d = 0; d < RULE_NDIR; d++) {
		free(ix->d[d].t4);
		free(ix->d[d].t6a);
		free(ix->d[d].t6b);
	}
	free(ix->tab);
	free(ix->cand);
	free(ix);
}

static int build_dir(struct index *ix, const struct ruleset *rs, int dir)
{
	struct dirindex *di = &ix->d[dir];
	size_t n4 = 0, n6a = 0, n6b = 0;

	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rule[i];
		if (r->dir != dir)
			continue;
		unsigned pl = r->addr.plen;
		if (is_v4class(&r->addr))
			n4 += pl >= 104;
		else
			n6a += pl >= 16 && pl < 32, n6b += pl >= 32;
	}
	if (n4 >= DENSE_MIN && !(di->t4 = calloc(65536, sizeof *di->t4)))
		return -1;
	if (n6a >= DENSE_MIN && !(di->t6a = calloc(65536, sizeof *di->t6a)))
		return -1;
	if (n6b >= DENSE_MIN) {
		size_t size = 64;
		while (size < n6b * 2)
			size *= 2;
		if (!(di->t6b = calloc(size, sizeof *di->t6b)))
			return -1;
		di->t6bmask = size - 1;
	}
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rule[i];
		if (r->dir != dir)
			continue;
		unsigned pl = r->addr.plen;
		const uint8_t *a = r->addr.addr;
		if (is_v4class(&r->addr)) {
			if (pl >= 104 && di->t4) {
				unsigned top = (unsigned)a[12] << 8 | a[13];
				unsigned span = pl >= 112 ? 1 : 1u << (112 - pl);
				for (unsigned k = 0; k < span; k++)
					di->t4[top + k] |= 1u << (pl - 104);
			} else {
				add_len(di->always4, &di->nalways4, pl);
			}
			continue;
		}
		if (covers_v4(&r->addr))
			add_len(di->always4, &di->nalways4, pl);
		if (pl >= 16 && pl < 32 && di->t6a) {
			di->t6a[(unsigned)a[0] << 8 | a[1]] |= (uint16_t)(1u << (pl - 16));
		} else if (pl >= 32 && di->t6b) {
			uint32_t key = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
			size_t h = hash32(key) & di->t6bmask;
			while (di->t6b[h].used && di->t6b[h].key != key)
				h = (h + 1) & di->t6bmask;
			di->t6b[h].used = 1;
			di->t6b[h].key = key;
			di->t6b[h].bits[(pl - 32) / 64] |= 1ull << ((pl - 32) % 64);
		} else {
			add_len(di->always6, &di->nalways6, pl);
		}
	}
	return 0;
}

int rules_index(struct ruleset *rs)
{
	struct index *ix = calloc(1, sizeof *ix);
	uint32_t *order = NULL;
	size_t size = 16;

	if (!ix)
		goto nomem;
	while (size < rs->n * 2)
		size *= 2;
	ix->tab = calloc(size, sizeof *ix->tab);
	ix->cand = malloc((rs->n ? rs->n : 1) * sizeof *ix->cand);
	order = malloc((rs->n ? rs->n : 1) * sizeof *order);
	if (!ix->tab || !ix->cand || !order)
		goto nomem;
	ix->mask = size - 1;
	for (size_t i = 0; i < rs->n; i++)
		order[i] = (uint32_t)i;
	/* qsort_r (glibc, musl >= 1.2.3): two rulesets may be indexed at once */
	qsort_r(order, rs->n, sizeof *order, cmp_rules, (void *)rs);

	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rule[order[i]];
		ix->cand[i] = (struct cand){
			.rule = order[i], .plo = r->port_lo, .phi = r->port_hi, .proto = r->proto,
			.full = (r->flags & (RULE_F_IP4 | RULE_F_IP6)) || r->host != RULE_NONE || r->peer.plen || r->pport_lo ||
				r->pport_hi != 65535,
		};
	}
	for (size_t i = 0; i < rs->n;) {
		const struct rule *r = &rs->rule[order[i]];
		size_t j = i + 1;
		while (j < rs->n) {
			const struct rule *q = &rs->rule[order[j]];
			if (q->dir != r->dir || q->addr.plen != r->addr.plen || memcmp(q->addr.addr, r->addr.addr, 16))
				break;
			j++;
		}
		uint64_t hi, lo;
		to64(r->addr.addr, &hi, &lo);
		hi &= mask_hi(r->addr.plen);
		lo &= mask_lo(r->addr.plen);
		size_t h = hash_group(hi, lo, r->dir, r->addr.plen) & ix->mask;
		while (ix->tab[h].used)
			h = (h + 1) & ix->mask;
		ix->tab[h] = (struct group){ .hi = hi, .lo = lo, .start = (uint32_t)i, .count = (uint32_t)(j - i),
					     .dir = r->dir, .plen = r->addr.plen, .used = 1 };
		i = j;
	}
	for (int d = 1; d < RULE_NDIR; d++)
		if (build_dir(ix, rs, d))
			goto nomem;
	free(order);
	index_free(rs->index);
	rs->index = ix;
	return 0;
nomem:
	free(order);
	index_free(ix);
	errno = ENOMEM;
	return -1;
}

void rules_free(struct ruleset *rs)
{
	if (!rs)
		return;
	index_free(rs->index);
	free(rs->rule);
	free(rs->str);
	free(rs);
}

struct query {
	const struct ruleset *rs;
	const struct index *ix;
	const struct rules_query *q;
	uint64_t hi, lo;
	int port, v4, pport;
	const uint8_t *peer16;
	uint32_t best;
};

static int rule_rest(const struct rule *r, const struct query *qq)
{
	if (r->host != RULE_NONE &&
	    (!qq->q->host_ok || !qq->q->host_ok(qq->q->ctx, qq->rs->str + r->host)))
		return 0;
	if ((r->flags & RULE_F_IP4) && !qq->v4)
		return 0;
	if ((r->flags & RULE_F_IP6) && qq->v4)
		return 0;
	if (r->peer.plen || r->pport_lo != 0 || r->pport_hi != 65535) {
		if (!qq->peer16 || !prefix_match(&r->peer, qq->peer16) ||
		    qq->pport < r->pport_lo || qq->pport > r->pport_hi)
			return 0;
	}
	return 1;
}

static void probe(struct query *qq, unsigned plen)
{
	const struct index *ix = qq->ix;
	uint64_t hi = qq->hi & mask_hi(plen), lo = qq->lo & mask_lo(plen);
	unsigned dir = (unsigned)qq->q->dir;

	for (size_t h = hash_group(hi, lo, dir, plen) & ix->mask;; h = (h + 1) & ix->mask) {
		const struct group *g = &ix->tab[h];
		if (!g->used)
			return;
		if (g->hi != hi || g->lo != lo || g->plen != plen || g->dir != dir)
			continue;
		for (uint32_t i = 0; i < g->count; i++) {
			const struct cand *c = &ix->cand[g->start + i];
			if (c->rule >= qq->best)
				return;
			if (!(c->proto & qq->q->proto) || qq->port < c->plo || qq->port > c->phi)
				continue;
			if (c->full && !rule_rest(&qq->rs->rule[c->rule], qq))
				continue;
			qq->best = c->rule;
			return;
		}
		return;
	}
}

static void probe_bits(struct query *qq, uint64_t bits, unsigned base)
{
	while (bits) {
		unsigned b = (unsigned)__builtin_ctzll(bits);
		bits &= bits - 1;
		probe(qq, base + b);
	}
}

const struct rule *rules_match(const struct ruleset *rs, const struct rules_query *q)
{
	uint8_t a16[16], p16[16];
	struct query qq = { .rs = rs, .q = q, .best = UINT32_MAX, .pport = -1 };

	if (!rs || !(qq.ix = rs->index) || !q->addr || q->dir <= 0 || q->dir >= RULE_NDIR ||
	    addr_to16(q->addr, a16))
		return NULL;
	if (q->peer && !addr_to16(q->peer, p16)) {
		qq.peer16 = p16;
		qq.pport = addr_port(q->peer);
	}
	to64(a16, &qq.hi, &qq.lo);
	qq.port = addr_port(q->addr);
	qq.v4 = addr_is_v4mapped(a16);

	const struct dirindex *di = &qq.ix->d[q->dir];
	if (qq.v4) {
		for (unsigned k = 0; k < di->nalways4; k++)
			probe(&qq, di->always4[k]);
		if (di->t4)
			probe_bits(&qq, di->t4[(unsigned)a16[12] << 8 | a16[13]], 104);
	} else {
		for (unsigned k = 0; k < di->nalways6; k++)
			probe(&qq, di->always6[k]);
		if (di->t6a)
			probe_bits(&qq, di->t6a[(unsigned)a16[0] << 8 | a16[1]], 16);
		if (di->t6b) {
			uint32_t key = (uint32_t)(qq.hi >> 32);
			for (size_t h = hash32(key) & di->t6bmask; di->t6b[h].used; h = (h + 1) & di->t6bmask)
				if (di->t6b[h].key == key) {
					probe_bits(&qq, di->t6b[h].bits[0], 32);
					probe_bits(&qq, di->t6b[h].bits[1], 96);
					break;
				}
		}
	}
	return qq.best == UINT32_MAX ? NULL : &rs->rule[qq.best];
}

const struct rule *rules_match_name(const struct ruleset *rs, const char *name)
{
	if (!rs)
		return NULL;
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rule[i];
		if (r->dir == RULE_RESOLVE && r->host != RULE_NONE && dns_name_match(rs->str + r->host, name))
			return r;
	}
	return NULL;
}
