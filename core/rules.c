/*
 * rules: parse, index and match the rule language (sockgate-rules(5)).
 *
 * The parser is a pure function from a buffer; the only state it keeps is
 * the ruleset it builds. Lookup is first match wins. To stay fast with many
 * rules, rules are grouped by (direction, prefix length, prefix); a query
 * probes one hash bucket per prefix length present in its direction and
 * keeps the lowest-numbered rule that matches fully.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

/* ---- small string pool --------------------------------------------------- */

struct pool {
	char *buf;
	size_t len, cap;
};

static uint32_t pool_add(struct pool *p, const char *s, size_t n)
{
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 256;
		while (cap < p->len + n + 1)
			cap *= 2;
		char *b = realloc(p->buf, cap);
		if (!b)
			return RULE_NONE;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, s, n);
	p->buf[p->len + n] = 0;
	uint32_t off = (uint32_t)p->len;
	p->len += n + 1;
	return off;
}

/* ---- names ------------------------------------------------------------------ */

static const char *const dir_names[RULE_NDIR] = { NULL, "connect", "bind", "accept" };

static const char *const action_names[ACT_NACTIONS] = {
	NULL, "unix", "abstract", "tcp", "fdpass", "systemd", "reject", "blackhole", "pass", "nat64",
};

const char *rules_action_name(int action)
{
	return action > 0 && action < ACT_NACTIONS ? action_names[action] : "?";
}

const char *rules_dir_name(int dir)
{
	return dir > 0 && dir < RULE_NDIR ? dir_names[dir] : "?";
}

static const struct { const char *name; unsigned flag; } flag_names[] = {
	{ "proxy-v2", RULE_F_PROXY_V2 },
	{ "proxy-v1", RULE_F_PROXY_V1 },
	{ "netns", RULE_F_NETNS },
	{ "crc32c", RULE_F_CRC32C },
	{ "fastopen=epipe", RULE_F_FASTOPEN_EPIPE },
	{ "rst", RULE_F_RST },
	{ "ip4", RULE_F_IP4 },
	{ "ip6", RULE_F_IP6 },
	{ "shut-rd-rdwr", RULE_F_SHUT_RD_RDWR },
};

static const struct { const char *name; int err; } errno_names[] = {
	{ "ECONNREFUSED", ECONNREFUSED }, { "EACCES", EACCES }, { "EPERM", EPERM },
	{ "ENETUNREACH", ENETUNREACH }, { "EHOSTUNREACH", EHOSTUNREACH },
	{ "ETIMEDOUT", ETIMEDOUT }, { "ECONNRESET", ECONNRESET },
	{ "EADDRNOTAVAIL", EADDRNOTAVAIL }, { "EADDRINUSE", EADDRINUSE },
	{ "EAFNOSUPPORT", EAFNOSUPPORT }, { "ENOENT", ENOENT }, { "ENETDOWN", ENETDOWN },
	{ "EHOSTDOWN", EHOSTDOWN }, { "EPIPE", EPIPE }, { "EINVAL", EINVAL },
	{ "ECONNABORTED", ECONNABORTED }, { "EPROTONOSUPPORT", EPROTONOSUPPORT },
};

/* ---- tokens ----------------------------------------------------------------- */

struct tok {
	const char *s;
	size_t n;
	unsigned col;
};

#define MAXTOK 32

struct parser {
	struct pool pool;
	struct rule *rule;
	size_t n, cap;
	struct rules_error *err;
	unsigned line;
};

static int perr(struct parser *p, unsigned col, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int perr(struct parser *p, unsigned col, const char *fmt, ...)
{
	va_list ap;

	if (p->err) {
		p->err->line = p->line;
		p->err->col = col;
		va_start(ap, fmt);
		vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
		va_end(ap);
	}
	errno = EINVAL;
	return -1;
}

static int tok_is(const struct tok *t, const char *s)
{
	return t->n == strlen(s) && !memcmp(t->s, s, t->n);
}

/* Copy a token into a NUL-terminated buffer; 0, or -1 when it does not fit. */
static int tok_copy(const struct tok *t, char *buf, size_t size)
{
	if (t->n >= size)
		return -1;
	memcpy(buf, t->s, t->n);
	buf[t->n] = 0;
	return 0;
}

/* A printable excerpt of a token for messages. */
static const char *tok_show(const struct tok *t, char *buf, size_t size)
{
	size_t n = t->n < size - 4 ? t->n : size - 4;
	memcpy(buf, t->s, n);
	strcpy(buf + n, n < t->n ? "..." : "");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
			buf[i] = '?';
	return buf;
}

/* ---- addresses and ports ------------------------------------------------- */

static int parse_port(const char *s, const char *end, uint16_t *out)
{
	unsigned long v = 0;

	if (s == end || end - s > 5)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static int parse_ports(const char *s, const char *end, uint16_t *lo, uint16_t *hi)
{
	const char *dash = memchr(s, '-', end - s);

	if (!dash)
		return parse_port(s, end, lo) || (*hi = *lo, 0);
	if (parse_port(s, dash, lo) || parse_port(dash + 1, end, hi) || *lo > *hi)
		return -1;
	return 0;
}

/*
 * ADDRESS: "*", "*:PORTS", "CIDR", "CIDR:PORTS", "[V6CIDR]", "[V6CIDR]:PORTS",
 * or a bare IPv6 prefix (more than one ':') with no port.
 */
static int parse_addrspec(struct parser *p, const struct tok *t, struct sg_prefix *pre,
			  uint16_t *lo, uint16_t *hi)
{
	char host[64], show[48];
	const char *s = t->s, *end = t->s + t->n, *hend, *ports = NULL;

	*lo = 0;
	*hi = 65535;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', t->n);
		if (!close)
			return perr(p, t->col, "missing ']' in address '%s'", tok_show(t, show, sizeof show));
		s++;
		hend = close;
		if (close + 1 < end) {
			if (close[1] != ':')
				return perr(p, t->col, "expected ':PORT' after ']' in '%s'", tok_show(t, show, sizeof show));
			ports = close + 2;
		}
	} else {
		const char *c1 = memchr(s, ':', t->n);
		if (c1 && memchr(c1 + 1, ':', end - c1 - 1)) {
			hend = end;		/* bare IPv6 */
		} else if (c1) {
			hend = c1;
			ports = c1 + 1;
		} else {
			hend = end;
		}
	}
	if ((size_t)(hend - s) >= sizeof host || hend == s)
		return perr(p, t->col, "bad address '%s'", tok_show(t, show, sizeof show));
	memcpy(host, s, hend - s);
	host[hend - s] = 0;
	if (prefix_parse(host, pre))
		return perr(p, t->col, "bad address or prefix '%s' (expected e.g. 10.0.0.0/8, [2001:db8::/32], *)",
			    host);
	if (t->s[0] == '[' && pre->plen && addr_is_v4mapped(pre->addr) && !strchr(host, ':'))
		return perr(p, t->col, "IPv4 address '%s' inside [ ]", host);
	if (ports && parse_ports(ports, end, lo, hi))
		return perr(p, (unsigned)(t->col + (ports - t->s)),
			    "bad port or port range '%.*s' (expected N or N-M, 0-65535)", (int)(end - ports), ports);
	return 0;
}

/* ---- templates ------------------------------------------------------------- */

/* Check a path template; return the shortest length it can expand to. */
static int template_check(struct parser *p, const struct tok *t, size_t *minlen)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->s[i] != '%') {
			n++;
			continue;
		}
		if (i + 1 >= t->n || !strchr("apf%", t->s[i + 1]))
			return perr(p, (unsigned)(t->col + i), "bad template '%%%c' (known: %%a %%p %%f %%%%)",
				    i + 1 < t->n ? t->s[i + 1] : ' ');
		n++;	/* each expands to at least one byte */
		i++;
	}
	*minlen = n;
	return 0;
}

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

/* ---- one rule ----------------------------------------------------------- */

static int is_option_word(const struct tok *t)
{
	if (memchr(t->s, '=', t->n))
		return 1;
	for (size_t i = 0; i < sizeof flag_names / sizeof flag_names[0]; i++)
		if (tok_is(t, flag_names[i].name))
			return 1;
	return 0;
}

static int parse_errno(const struct tok *t, int32_t *out)
{
	for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
		if (tok_is(t, errno_names[i].name)) {
			*out = errno_names[i].err;
			return 0;
		}
	uint16_t v;
	if (!parse_port(t->s, t->s + t->n, &v) && v > 0 && v < 4096) {
		*out = v;
		return 0;
	}
	return -1;
}

static const char *errno_name(int e, char *buf, size_t size)
{
	for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
		if (errno_names[i].err == e)
			return errno_names[i].name;
	snprintf(buf, size, "%d", e);
	return buf;
}

#define SUN_PATH_MAX (sizeof ((struct sockaddr_un *)0)->sun_path)

static int parse_rule(struct parser *p, const struct tok *tk, size_t nt)
{
	struct rule r;
	size_t i = 0;
	char show[48], buf[128];

	memset(&r, 0, sizeof r);
	r.proto = RULE_ANYPROTO;
	r.port_hi = r.pport_hi = 65535;
	r.arg = r.name = r.source = RULE_NONE;
	r.line = p->line;

	for (int d = 1; d < RULE_NDIR; d++)
		if (tok_is(&tk[0], dir_names[d]))
			r.dir = (uint8_t)d;
	if (!r.dir)
		return perr(p, tk[0].col, "expected a direction (connect, bind, accept), got '%s'",
			    tok_show(&tk[0], show, sizeof show));
	i = 1;
	if (i < nt && (tok_is(&tk[i], "tcp") || tok_is(&tk[i], "udp") || tok_is(&tk[i], "any"))) {
		r.proto = tok_is(&tk[i], "tcp") ? RULE_TCP : tok_is(&tk[i], "udp") ? RULE_UDP : RULE_ANYPROTO;
		i++;
	}
	if (i < nt && !tok_is(&tk[i], "->") && !tok_is(&tk[i], "from")) {
		if (parse_addrspec(p, &tk[i], &r.addr, &r.port_lo, &r.port_hi))
			return -1;
		i++;
	}
	if (i < nt && tok_is(&tk[i], "from")) {
		if (r.dir != RULE_ACCEPT)
			return perr(p, tk[i].col, "'from' is only for accept rules");
		if (++i >= nt || tok_is(&tk[i], "->"))
			return perr(p, i < nt ? tk[i].col : tk[i - 1].col + (unsigned)tk[i - 1].n + 1,
				    "expected an address after 'from'");
		if (parse_addrspec(p, &tk[i], &r.peer, &r.pport_lo, &r.pport_hi))
			return -1;
		i++;
	}
	if (i >= nt)
		return perr(p, tk[nt - 1].col + (unsigned)tk[nt - 1].n + 1, "expected '->' and an action");
	if (!tok_is(&tk[i], "->"))
		return perr(p, tk[i].col, "expected '->' before the action, got '%s'",
			    tok_show(&tk[i], show, sizeof show));
	if (++i >= nt)
		return perr(p, tk[i - 1].col + 3, "expected an action after '->' (unix, abstract, tcp, fdpass, "
			    "systemd, reject, blackhole, pass, nat64)");

	const struct tok *act = &tk[i++];
	for (int a = 1; a < ACT_NACTIONS; a++)
		if (tok_is(act, action_names[a]))
			r.action = (uint8_t)a;
	if (tok_is(act, "allow"))
		r.action = ACT_PASS;
	if (!r.action)
		return perr(p, act->col, "unknown action '%s' (expected unix, abstract, tcp, fdpass, systemd, "
			    "reject, blackhole, pass, nat64)", tok_show(act, show, sizeof show));

	const struct tok *arg = i < nt ? &tk[i] : NULL;
	size_t minlen = 0;
	switch (r.action) {
	case ACT_UNIX:
	case ACT_ABSTRACT:
	case ACT_FDPASS:
		if (!arg)
			return perr(p, act->col + (unsigned)act->n + 1, "'%s' needs a %s", action_names[r.action],
				    r.action == ACT_ABSTRACT ? "name" : "path");
		if (template_check(p, arg, &minlen))
			return -1;
		if (minlen + (r.action == ACT_ABSTRACT ? 1 : 0) >= SUN_PATH_MAX)
			return perr(p, arg->col, "%s too long for a unix socket address (%zu bytes, at most %zu)",
				    r.action == ACT_ABSTRACT ? "name" : "path", minlen,
				    SUN_PATH_MAX - 1 - (r.action == ACT_ABSTRACT ? 1 : 0));
		r.arg = pool_add(&p->pool, arg->s, arg->n);
		i++;
		break;
	case ACT_TCP: {
		struct sg_addr a;
		if (!arg)
			return perr(p, act->col + (unsigned)act->n + 1, "'tcp' needs ADDR:PORT");
		if (tok_copy(arg, buf, sizeof buf) || addr_parse_inet(buf, &a))
			return perr(p, arg->col, "bad target address '%s' (expected 1.2.3.4:80 or [::1]:80)",
				    tok_show(arg, show, sizeof show));
		r.arg = pool_add(&p->pool, arg->s, arg->n);
		i++;
		break;
	}
	case ACT_NAT64: {
		struct sg_prefix pre;
		if (!arg)
			return perr(p, act->col + (unsigned)act->n + 1, "'nat64' needs an IPv6 PREFIX/96");
		if (tok_copy(arg, buf, sizeof buf) || prefix_parse(buf, &pre) || pre.plen != 96 ||
		    !strchr(buf, ':') || addr_is_v4mapped(pre.addr))
			return perr(p, arg->col, "bad nat64 prefix '%s' (expected an IPv6 /96 such as 64:ff9b::/96)",
				    tok_show(arg, show, sizeof show));
		r.arg = pool_add(&p->pool, arg->s, arg->n);
		i++;
		break;
	}
	case ACT_SYSTEMD:
		if (arg && !is_option_word(arg)) {
			r.arg = pool_add(&p->pool, arg->s, arg->n);
			i++;
		}
		break;
	case ACT_REJECT:
		r.err = ECONNREFUSED;
		if (arg && !is_option_word(arg)) {
			if (parse_errno(arg, &r.err))
				return perr(p, arg->col, "unknown errno '%s' (expected a name such as ECONNREFUSED)",
					    tok_show(arg, show, sizeof show));
			i++;
		}
		break;
	}

	for (; i < nt; i++) {
		const struct tok *o = &tk[i];
		int known = 0;
		for (size_t f = 0; f < sizeof flag_names / sizeof flag_names[0]; f++)
			if (tok_is(o, flag_names[f].name)) {
				r.flags |= flag_names[f].flag;
				known = 1;
			}
		if (known)
			continue;
		if (o->n > 5 && !memcmp(o->s, "mode=", 5)) {
			unsigned long m = 0;
			if (o->n > 10)
				return perr(p, o->col + 5, "bad mode (expected octal 0-7777)");
			for (size_t k = 5; k < o->n; k++) {
				if (o->s[k] < '0' || o->s[k] > '7')
					return perr(p, (unsigned)(o->col + k), "bad mode (expected octal 0-7777)");
				m = m * 8 + (unsigned)(o->s[k] - '0');
			}
			if (m > 07777)
				return perr(p, o->col + 5, "bad mode (expected octal 0-7777)");
			r.mode = (uint32_t)m;
		} else if (o->n > 5 && !memcmp(o->s, "name=", 5)) {
			for (size_t k = 5; k < o->n; k++)
				if ((unsigned char)o->s[k] < 0x21 || (unsigned char)o->s[k] > 0x7e)
					return perr(p, (unsigned)(o->col + k), "bad character in name");
			if (o->n - 5 > 255)
				return perr(p, o->col + 5, "name longer than 255 bytes");
			r.name = pool_add(&p->pool, o->s + 5, o->n - 5);
		} else if (o->n > 7 && !memcmp(o->s, "source=", 7)) {
			struct sg_addr a;
			struct tok v = { o->s + 7, o->n - 7, o->col + 7 };
			if (tok_copy(&v, buf, sizeof buf) || addr_parse_inet(buf, &a))
				return perr(p, v.col, "bad source address '%s' (expected 1.2.3.4:0 or [::1]:0)",
					    tok_show(&v, show, sizeof show));
			r.source = pool_add(&p->pool, v.s, v.n);
		} else {
			return perr(p, o->col, "unknown option '%s'", tok_show(o, show, sizeof show));
		}
	}
	if ((r.flags & RULE_F_IP4) && (r.flags & RULE_F_IP6))
		return perr(p, tk[0].col, "ip4 and ip6 together match nothing");
	if ((r.flags & RULE_F_PROXY_V1) && (r.flags & RULE_F_PROXY_V2))
		return perr(p, tk[0].col, "proxy-v1 and proxy-v2 together");
	if (r.arg == RULE_NONE && (r.action == ACT_UNIX || r.action == ACT_ABSTRACT || r.action == ACT_FDPASS ||
				   r.action == ACT_TCP || r.action == ACT_NAT64))
		goto nomem;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct rule *nr = realloc(p->rule, cap * sizeof *nr);
		if (!nr)
			goto nomem;
		p->rule = nr;
		p->cap = cap;
	}
	p->rule[p->n++] = r;
	return 0;
nomem:
	if (p->err) {
		p->err->line = p->line;
		p->err->col = 0;
		snprintf(p->err->msg, sizeof p->err->msg, "out of memory");
	}
	errno = ENOMEM;
	return -1;
}

struct ruleset *rules_parse(const char *buf, size_t len, struct rules_error *err)
{
	struct parser p = { .err = err, .line = 1 };
	struct tok tk[MAXTOK];
	size_t nt = 0, i = 0, linestart = 0;
	int in_comment = 0;

	if (err)
		memset(err, 0, sizeof *err);
	for (i = 0; i <= len; i++) {
		char c = i < len ? buf[i] : '\n';
		if (c == '\n' || (c == ';' && !in_comment)) {
			if (nt && parse_rule(&p, tk, nt))
				goto fail;
			nt = 0;
			if (c == '\n') {
				p.line++;
				linestart = i + 1;
				in_comment = 0;
			}
			continue;
		}
		if (in_comment)
			continue;
		if (c == '#') {
			in_comment = 1;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r')
			continue;
		if ((unsigned char)c < 0x20 || c == 0x7f) {
			perr(&p, (unsigned)(i - linestart + 1), "control character 0x%02x", (unsigned char)c);
			goto fail;
		}
		size_t s = i;
		while (i + 1 < len && !strchr(" \t\r\n;#", buf[i + 1]) && (unsigned char)buf[i + 1] >= 0x20)
			i++;
		if (nt == MAXTOK) {
			perr(&p, (unsigned)(s - linestart + 1), "too many words in one rule (at most %d)", MAXTOK);
			goto fail;
		}
		tk[nt].s = buf + s;
		tk[nt].n = i - s + 1;
		tk[nt].col = (unsigned)(s - linestart + 1);
		nt++;
	}

	struct ruleset *rs = calloc(1, sizeof *rs);
	if (!rs)
		goto nomem;
	rs->rule = p.rule;
	rs->n = p.n;
	rs->str = p.pool.buf;
	rs->strlen = p.pool.len;
	if (rules_index(rs)) {
		rules_free(rs);
		goto nomem_nofree;
	}
	return rs;
nomem:
	free(p.rule);
	free(p.pool.buf);
nomem_nofree:
	if (err) {
		err->line = 0;
		snprintf(err->msg, sizeof err->msg, "out of memory");
	}
	errno = ENOMEM;
	return NULL;
fail:
	free(p.rule);
	free(p.pool.buf);
	return NULL;
}

const char *rules_str(const struct ruleset *rs, uint32_t off)
{
	if (off == RULE_NONE || off >= rs->strlen)
		return NULL;
	return rs->str + off;
}

/* ---- the index ------------------------------------------------------------ */

struct group {
	uint8_t key[16];	/* masked prefix */
	uint8_t dir, plen, used;
	uint32_t start, count;	/* in idx->order */
};

struct index {
	struct group *tab;	/* open addressing, size a power of two */
	size_t mask;
	uint32_t *order;	/* rule numbers, grouped, ascending within a group */
	uint8_t plens[RULE_NDIR][130];	/* prefix lengths present, per direction */
	uint8_t nplens[RULE_NDIR];
};

static uint64_t hash_key(const uint8_t key[16], unsigned dir, unsigned plen)
{
	uint64_t a, b;
	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15ull)) + (dir << 8 | plen);
	h ^= h >> 31;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 29;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 32);
}

static void mask16(const uint8_t in[16], unsigned plen, uint8_t out[16])
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned bits = plen > i * 8 ? plen - i * 8 : 0;
		out[i] = bits >= 8 ? in[i] : (uint8_t)(in[i] & (0xff00u >> bits));
	}
}

static const struct ruleset *sort_rs;

static int cmp_rules(const void *a, const void *b)
{
	const struct rule *x = &sort_rs->rule[*(const uint32_t *)a];
	const struct rule *y = &sort_rs->rule[*(const uint32_t *)b];
	if (x->dir != y->dir)
		return x->dir - y->dir;
	if (x->addr.plen != y->addr.plen)
		return x->addr.plen - y->addr.plen;
	int c = memcmp(x->addr.addr, y->addr.addr, 16);
	if (c)
		return c;
	return *(const uint32_t *)a < *(const uint32_t *)b ? -1 : 1;
}

static void index_free(struct index *ix)
{
	if (ix) {
		free(ix->tab);
		free(ix->order);
		free(ix);
	}
}

int rules_index(struct ruleset *rs)
{
	struct index *ix = calloc(1, sizeof *ix);
	size_t size = 16;

	if (!ix)
		return -1;
	while (size < rs->n * 2)
		size *= 2;
	ix->tab = calloc(size, sizeof *ix->tab);
	ix->order = malloc((rs->n ? rs->n : 1) * sizeof *ix->order);
	if (!ix->tab || !ix->order) {
		index_free(ix);
		errno = ENOMEM;
		return -1;
	}
	ix->mask = size - 1;
	for (size_t i = 0; i < rs->n; i++)
		ix->order[i] = (uint32_t)i;
	/* qsort has no context argument in C11; the index is built once per load */
	sort_rs = rs;
	qsort(ix->order, rs->n, sizeof *ix->order, cmp_rules);
	sort_rs = NULL;

	uint8_t seen[RULE_NDIR][129] = { { 0 } };
	for (size_t i = 0; i < rs->n;) {
		const struct rule *r = &rs->rule[ix->order[i]];
		size_t j = i + 1;
		while (j < rs->n) {
			const struct rule *q = &rs->rule[ix->order[j]];
			if (q->dir != r->dir || q->addr.plen != r->addr.plen || memcmp(q->addr.addr, r->addr.addr, 16))
				break;
			j++;
		}
		uint8_t key[16];
		mask16(r->addr.addr, r->addr.plen, key);
		size_t h = hash_key(key, r->dir, r->addr.plen) & ix->mask;
		while (ix->tab[h].used)
			h = (h + 1) & ix->mask;
		struct group *g = &ix->tab[h];
		memcpy(g->key, key, 16);
		g->dir = r->dir;
		g->plen = r->addr.plen;
		g->used = 1;
		g->start = (uint32_t)i;
		g->count = (uint32_t)(j - i);
		if (!seen[r->dir][r->addr.plen]) {
			seen[r->dir][r->addr.plen] = 1;
			ix->plens[r->dir][ix->nplens[r->dir]++] = r->addr.plen;
		}
		i = j;
	}
	index_free(rs->index);
	rs->index = ix;
	return 0;
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

static int rule_matches_rest(const struct rule *r, const struct rules_query *q, int v4,
			     const uint8_t *peer16, int pport)
{
	if (!(r->proto & q->proto))
		return 0;
	if ((r->flags & RULE_F_IP4) && !v4)
		return 0;
	if ((r->flags & RULE_F_IP6) && v4)
		return 0;
	int port = addr_port(q->addr);
	if (port < r->port_lo || port > r->port_hi)
		return 0;
	if (r->peer.plen || r->pport_lo != 0 || r->pport_hi != 65535) {
		if (!peer16)
			return 0;
		if (!prefix_match(&r->peer, peer16) || pport < r->pport_lo || pport > r->pport_hi)
			return 0;
	}
	return 1;
}

const struct rule *rules_match(const struct ruleset *rs, const struct rules_query *q)
{
	const struct index *ix;
	uint8_t a16[16], p16[16], key[16];
	const uint8_t *peer16 = NULL;
	int pport = -1;
	uint32_t best = UINT32_MAX;

	if (!rs || !(ix = rs->index) || !q->addr || q->dir <= 0 || q->dir >= RULE_NDIR ||
	    addr_to16(q->addr, a16))
		return NULL;
	if (q->peer && !addr_to16(q->peer, p16)) {
		peer16 = p16;
		pport = addr_port(q->peer);
	}
	int v4 = addr_is_v4mapped(a16);
	for (unsigned k = 0; k < ix->nplens[q->dir]; k++) {
		unsigned plen = ix->plens[q->dir][k];
		mask16(a16, plen, key);
		size_t h = hash_key(key, (unsigned)q->dir, plen) & ix->mask;
		for (;; h = (h + 1) & ix->mask) {
			const struct group *g = &ix->tab[h];
			if (!g->used)
				break;
			if (g->dir != q->dir || g->plen != plen || memcmp(g->key, key, 16))
				continue;
			for (uint32_t i = 0; i < g->count; i++) {
				uint32_t n = ix->order[g->start + i];
				if (n >= best)
					break;
				if (rule_matches_rest(&rs->rule[n], q, v4, peer16, pport)) {
					best = n;
					break;
				}
			}
			break;
		}
	}
	return best == UINT32_MAX ? NULL : &rs->rule[best];
}

/* ---- writing rules back ------------------------------------------------- */

struct out {
	char *buf;
	size_t size, len;
	int fail;
};

static void outf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void outf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(o->buf + o->len, o->len < o->size ? o->size - o->len : 0, fmt, ap);
	va_end(ap);
	if (n < 0 || o->len + (size_t)n >= o->size)
		o->fail = 1;
	else
		o->len += (size_t)n;
}

static void out_addrspec(struct out *o, const struct sg_prefix *p, unsigned lo, unsigned hi)
{
	char pre[64];

	prefix_format(p, pre, sizeof pre);
	int v6 = p->plen && !(p->plen >= 96 && addr_is_v4mapped(p->addr));
	int ports = !(lo == 0 && hi == 65535);
	if (v6)
		outf(o, " [%s]", pre);
	else
		outf(o, " %s", pre);
	if (ports && lo == hi)
		outf(o, ":%u", lo);
	else if (ports)
		outf(o, ":%u-%u", lo, hi);
}

int rules_format(const struct ruleset *rs, const struct rule *r, char *buf, size_t size)
{
	struct out o = { buf, size, 0, 0 };
	char eb[16];

	if (size)
		buf[0] = 0;
	outf(&o, "%s", rules_dir_name(r->dir));
	if (r->proto != RULE_ANYPROTO)
		outf(&o, " %s", r->proto == RULE_TCP ? "tcp" : "udp");
	if (r->addr.plen || r->port_lo != 0 || r->port_hi != 65535)
		out_addrspec(&o, &r->addr, r->port_lo, r->port_hi);
	if (r->peer.plen || r->pport_lo != 0 || r->pport_hi != 65535) {
		outf(&o, " from");
		out_addrspec(&o, &r->peer, r->pport_lo, r->pport_hi);
	}
	outf(&o, " -> %s", rules_action_name(r->action));
	if (r->arg != RULE_NONE)
		outf(&o, " %s", rules_str(rs, r->arg) ? rules_str(rs, r->arg) : "?");
	if (r->action == ACT_REJECT && r->err != ECONNREFUSED)
		outf(&o, " %s", errno_name(r->err, eb, sizeof eb));
	for (size_t f = 0; f < sizeof flag_names / sizeof flag_names[0]; f++)
		if (r->flags & flag_names[f].flag)
			outf(&o, " %s", flag_names[f].name);
	if (r->mode)
		outf(&o, " mode=%04o", (unsigned)r->mode);
	if (r->name != RULE_NONE)
		outf(&o, " name=%s", rules_str(rs, r->name) ? rules_str(rs, r->name) : "?");
	if (r->source != RULE_NONE)
		outf(&o, " source=%s", rules_str(rs, r->source) ? rules_str(rs, r->source) : "?");
	if (o.fail) {
		errno = ENOSPC;
		return -1;
	}
	return (int)o.len;
}
