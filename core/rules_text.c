/*
 * rules_text: the text form of the rule language (sockgate-rules(5)).
 *
 * rules_parse() is a pure function from a buffer to a ruleset; the only
 * state it keeps is the ruleset it builds, and an error carries line and
 * column. rules_format() is its inverse: one rule back to text that parses
 * to the same rule. Both read the same word tables (directions, actions,
 * flags, errno names), so the grammar lives in this one file, with the
 * names for messages (rules_dir_name(), rules_action_name()) and the
 * authority-idx= value's parser, which the preload calls too. The index and
 * rules_match() are in rules.c, the compiled form in rulebin.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "lookup.h"
#include "rules.h"

/* ---- small string pool --------------------------------------------------- */

struct pool {
	char *buf;
	size_t len, cap;
};

static uint32_t pool_add(struct pool *p, const char *s, size_t n)
{
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
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

static const char *const dir_names[RULE_NDIR] = { NULL, "connect", "bind", "accept", "resolve" };

static const char *const action_names[ACT_NACTIONS] = {
	NULL, "unix", "abstract", "tcp", "fdpass", "systemd", "reject", "blackhole", "pass", "nat64",
	"translate", "divert", "address", "broker",
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
	{ "dns64", RULE_F_DNS64 },
	{ "discover", RULE_F_DISCOVER },
	{ "noremove", RULE_F_NOREMOVE },
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
/*
 * Bytes of the input as a message may quote them: cut with "...", and
 * controls, DEL and every byte >= 0x80 (C1 controls, which a terminal
 * obeys, among them) shown as '?'.
 */
static const char *text_show(const char *s, size_t len, char *buf, size_t size)
{
	size_t n = len < size - 4 ? len : size - 4;
	memcpy(buf, s, n);
	strcpy(buf + n, n < len ? "..." : "");
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
			buf[i] = '?';
	return buf;
}

static const char *tok_show(const struct tok *t, char *buf, size_t size)
{
	return text_show(t->s, t->n, buf, size);
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
static int name_pattern_ok(const char *s)
{
	if (!strcmp(s, "*"))
		return 1;
	if (s[0] == '*' && s[1] == '.')
		s += 2;
	return dns_name_ok(s) && !strchr(s, '*');
}

static int parse_addrspec(struct parser *p, const struct tok *t, struct sg_prefix *pre,
			  uint16_t *lo, uint16_t *hi, uint32_t *hostp)
{
	char host[256], show[48];
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
	if (prefix_parse(host, pre)) {
		/* a host name or *.suffix: the address is checked against what was resolved */
		if (!hostp || t->s[0] == '[' || strchr(host, '/') || strchr(host, ':') || !name_pattern_ok(host) ||
		    !strpbrk(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"))
			return perr(p, t->col, "bad address or prefix '%s' (expected e.g. 10.0.0.0/8, [2001:db8::/32], "
				    "*, or a host name such as *.example.com)", text_show(host, strlen(host), show, sizeof show));
		memset(pre, 0, sizeof *pre);
		if ((*hostp = pool_add(&p->pool, host, strlen(host))) == RULE_NONE)
			return errno = ENOMEM, -1;
	}
	if (t->s[0] == '[' && pre->plen && addr_is_v4mapped(pre->addr) && !strchr(host, ':'))
		return perr(p, t->col, "IPv4 address '%s' inside [ ]", text_show(host, strlen(host), show, sizeof show));
	if (ports && parse_ports(ports, end, lo, hi))
		return perr(p, (unsigned)(t->col + (ports - t->s)),
			    "bad port or port range '%s' (expected N or N-M, 0-65535)",
			    text_show(ports, (size_t)(end - ports), show, sizeof show));
	return 0;
}

/* ---- templates ------------------------------------------------------------- */

/*
 * Check a path template; return the shortest length it can expand to. The
 * escapes are those rules_expand() (rules.c) knows.
 */
static int template_check(struct parser *p, const struct tok *t, size_t *minlen)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++) {
		if (t->s[i] != '%') {
			n++;
			continue;
		}
		if (i + 1 >= t->n || !strchr("apf%01234567P", t->s[i + 1])) {
			char show[8];
			return perr(p, (unsigned)(t->col + i), "bad template '%%%s' (known: %%a %%p %%f %%0-%%7 %%P %%%%)",
				    i + 1 < t->n ? text_show(t->s + i + 1, 1, show, sizeof show) : " ");
		}
		n++;	/* each expands to at least one byte */
		i++;
	}
	*minlen = n;
	return 0;
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

/* A decimal id below RULE_NONE from s[0..n); -1 when it is not one. */
static int parse_id(const char *s, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	if (!n || n > 10)
		return -1;
	for (size_t k = 0; k < n; k++) {
		if (s[k] < '0' || s[k] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[k] - '0');
	}
	if (v >= RULE_NONE)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* sender=UID, sender=UID:GID or sender=:GID (numbers: core looks nothing up). */
static int parse_sender(const struct tok *o, uint32_t *uid, uint32_t *gid)
{
	const char *v = o->s + 7, *end = o->s + o->n;
	const char *colon = memchr(v, ':', (size_t)(end - v));
	if (!colon)
		return parse_id(v, (size_t)(end - v), uid);
	if (colon > v && parse_id(v, (size_t)(colon - v), uid))
		return -1;
	return parse_id(colon + 1, (size_t)(end - colon - 1), gid);
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

static int add_rule(struct parser *p, const struct rule *rp);

/* An action's name is no diversion target (write "tcp." for a host named tcp). */
static int is_action_word(const struct tok *t)
{
	for (int a = 1; a < ACT_NACTIONS; a++)
		if (tok_is(t, action_names[a]))
			return 1;
	return tok_is(t, "allow");
}

/*
 * resolve [PATTERN] -> unix PATH | abstract NAME | pass | reject | OTHER-NAME
 *                     | ADDR[,ADDR...]
 */
static int parse_resolve(struct parser *p, const struct tok *tk, size_t nt, struct rule *r)
{
	char buf[256], show[48];
	size_t i = 1;

	r->proto = RULE_ANYPROTO;
	if (i < nt && !tok_is(&tk[i], "->")) {
		if (tok_copy(&tk[i], buf, sizeof buf) || !name_pattern_ok(buf))
			return perr(p, tk[i].col, "bad name pattern '%s' (expected *, a host name, or *.suffix)",
				    tok_show(&tk[i], show, sizeof show));
		if ((r->host = pool_add(&p->pool, buf, strlen(buf))) == RULE_NONE)
			return errno = ENOMEM, -1;
		i++;
	} else if ((r->host = pool_add(&p->pool, "*", 1)) == RULE_NONE) {
		return errno = ENOMEM, -1;
	}
	if (i >= nt || !tok_is(&tk[i], "->"))
		return perr(p, i < nt ? tk[i].col : tk[nt - 1].col + (unsigned)tk[nt - 1].n + 1,
			    "expected '->' after the name pattern");
	if (++i >= nt)
		return perr(p, tk[i - 1].col + 3, "expected an action after '->' (unix, abstract, pass, reject, "
			    "a host name, or addresses)");
	const struct tok *act = &tk[i++];
	if (tok_is(act, "unix") || tok_is(act, "abstract")) {
		size_t minlen = 0;
		r->action = tok_is(act, "unix") ? ACT_UNIX : ACT_ABSTRACT;
		if (i >= nt)
			return perr(p, act->col + (unsigned)act->n + 1, "'%.*s' needs a %s", (int)act->n, act->s,
				    r->action == ACT_UNIX ? "path" : "name");
		if (template_check(p, &tk[i], &minlen))
			return -1;
		if (minlen + 1 >= SUN_PATH_MAX)
			return perr(p, tk[i].col, "path too long for a unix socket address");
		r->arg = pool_add(&p->pool, tk[i].s, tk[i].n);
		i++;
	} else if (tok_is(act, "pass") || tok_is(act, "allow")) {
		r->action = ACT_PASS;
	} else if (tok_is(act, "reject")) {
		r->action = ACT_REJECT;
	} else if (tok_copy(act, buf, sizeof buf) == 0 && lookup_addr_list(buf, NULL) > 0) {
		r->action = ACT_ADDRS;
		r->arg = pool_add(&p->pool, act->s, act->n);
	} else if (tok_copy(act, buf, sizeof buf) == 0 && dns_name_ok(buf) && !strchr(buf, '*') &&
		   !is_action_word(act)) {
		r->action = ACT_DIVERT;
		r->arg = pool_add(&p->pool, act->s, act->n);
	} else {
		return perr(p, act->col, "unknown resolve action '%s' (expected unix, abstract, pass, reject, "
			    "a host name, or addresses)", tok_show(act, show, sizeof show));
	}
	if (i < nt)
		return perr(p, tk[i].col, "unexpected '%s' after a resolve rule's action",
			    tok_show(&tk[i], show, sizeof show));
	if ((r->action == ACT_DIVERT || r->action == ACT_ADDRS) && r->arg == RULE_NONE)
		return errno = ENOMEM, -1;
	return add_rule(p, r);
}

/*
 * A user or group as owner= and group= take it: a number below 2^32 - 1,
 * or a name of the portable set (letters, digits, '.', '_', '-', not first
 * '-', a trailing '$' for machine accounts), at most 32 bytes. Looked up
 * where the file is made, not here.
 */
static int id_word(const char *s, size_t n)
{
	uint32_t v;
	size_t digits = 0;

	while (digits < n && s[digits] >= '0' && s[digits] <= '9')
		digits++;
	if (digits == n)
		return parse_id(s, n, &v) == 0;
	if (n > 32 || s[0] == '-')
		return 0;
	for (size_t k = 0; k < n; k++)
		if (!((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z') || (s[k] >= '0' && s[k] <= '9') ||
		      s[k] == '.' || s[k] == '_' || s[k] == '-' || (s[k] == '$' && k == n - 1)))
			return 0;
	return 1;
}

/* Does the rule make a socket file (where owner=, group= and noremove apply)? */
static int file_rule(const struct rule *r)
{
	return r->dir == RULE_BIND && (r->action == ACT_UNIX || r->action == ACT_FDPASS);
}
#define FILE_RULES "only for bind rules to unix or fdpass (the socket files the library makes)"

static int parse_rule(struct parser *p, const struct tok *tk, size_t nt)
{
	struct rule r;
	size_t i = 0;
	char show[48], buf[128];

	memset(&r, 0, sizeof r);
	r.proto = RULE_ANYPROTO;
	r.port_hi = r.pport_hi = 65535;
	r.arg = r.name = r.source = r.aux = r.host = r.sender_uid = r.sender_gid = r.owner = r.group = RULE_NONE;
	r.line = p->line;

	for (int d = 1; d < RULE_NDIR; d++)
		if (tok_is(&tk[0], dir_names[d]))
			r.dir = (uint8_t)d;
	if (!r.dir)
		return perr(p, tk[0].col, "expected a direction (connect, bind, accept, resolve), got '%s'",
			    tok_show(&tk[0], show, sizeof show));
	if (r.dir == RULE_RESOLVE)
		return parse_resolve(p, tk, nt, &r);
	i = 1;
	if (i < nt && (tok_is(&tk[i], "tcp") || tok_is(&tk[i], "udp") || tok_is(&tk[i], "any") ||
		       tok_is(&tk[i], "icmp"))) {
		r.proto = tok_is(&tk[i], "tcp") ? RULE_TCP : tok_is(&tk[i], "udp") ? RULE_UDP :
			  tok_is(&tk[i], "icmp") ? RULE_ICMP : RULE_ANYPROTO;
		if (r.proto == RULE_ICMP && r.dir != RULE_CONNECT)
			return perr(p, tk[i].col, "'icmp' is for connect rules only");
		i++;
	}
	if (i < nt && !tok_is(&tk[i], "->") && !tok_is(&tk[i], "from")) {
		if (parse_addrspec(p, &tk[i], &r.addr, &r.port_lo, &r.port_hi,
				   r.dir == RULE_CONNECT || r.dir == RULE_ACCEPT ? &r.host : NULL))
			return -1;
		i++;
	}
	if (i < nt && tok_is(&tk[i], "from")) {
		if (r.dir != RULE_ACCEPT)
			return perr(p, tk[i].col, "'from' is only for accept rules");
		if (++i >= nt || tok_is(&tk[i], "->"))
			return perr(p, i < nt ? tk[i].col : tk[i - 1].col + (unsigned)tk[i - 1].n + 1,
				    "expected an address after 'from'");
		if (parse_addrspec(p, &tk[i], &r.peer, &r.pport_lo, &r.pport_hi, NULL))
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
			    "systemd, reject, blackhole, pass, nat64, translate, broker)");

	const struct tok *act = &tk[i++];
	r.acol = (uint8_t)(act->col > 255 ? 255 : act->col);
	for (int a = 1; a < ACT_NACTIONS; a++)
		if (tok_is(act, action_names[a]))
			r.action = (uint8_t)a;
	if (tok_is(act, "allow"))
		r.action = ACT_PASS;
	if (r.action == ACT_DIVERT || r.action == ACT_ADDRS)
		return perr(p, act->col, "'%s' is for resolve rules", action_names[r.action]);
	/* an ICMP socket has no port, and no destination when it is made */
	if (r.proto == RULE_ICMP && r.action && r.action != ACT_BROKER && r.action != ACT_PASS &&
	    r.action != ACT_REJECT)
		return perr(p, act->col, "'%s' is not for icmp rules (broker, pass or reject)", action_names[r.action]);
	if (r.proto == RULE_ICMP && (r.port_lo != 0 || r.port_hi != 65535 || r.host != RULE_NONE))
		return perr(p, tk[2].col, "an icmp rule takes no port and no host name");
	if (!r.action)
		return perr(p, act->col, "unknown action '%s' (expected unix, abstract, tcp, fdpass, systemd, "
			    "reject, blackhole, pass, nat64, translate, broker)", tok_show(act, show, sizeof show));

	const struct tok *arg = i < nt ? &tk[i] : NULL;
	size_t minlen = 0;
	switch (r.action) {
	case ACT_BROKER:
		/* a connected UDP socket could be aimed anywhere: UDP is never brokered */
		if (r.dir != RULE_CONNECT || (r.proto != RULE_TCP && r.proto != RULE_ICMP))
			return perr(p, act->col, "'broker' is for 'connect tcp' and 'connect icmp' rules only "
				    "(UDP is never brokered)");
		/* fall through */
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
		if (!arg || is_option_word(arg)) {
			/* RFC 6052 section 2.1: the well-known prefix */
			r.arg = pool_add(&p->pool, "64:ff9b::/96", 12);
			break;
		}
		if (tok_copy(arg, buf, sizeof buf) || prefix_parse(buf, &pre) || pre.plen != 96 ||
		    !strchr(buf, ':') || addr_is_v4mapped(pre.addr))
			return perr(p, arg->col, "bad nat64 prefix '%s' (expected an IPv6 /96 such as 64:ff9b::/96)",
				    tok_show(arg, show, sizeof show));
		r.arg = pool_add(&p->pool, arg->s, arg->n);
		i++;
		break;
	}
	case ACT_TRANSLATE: {
		struct sg_prefix pre;
		if (!arg)
			return perr(p, act->col + (unsigned)act->n + 1, "'translate' needs a PREFIX/LEN");
		if (tok_copy(arg, buf, sizeof buf) || !strchr(buf, '/') || prefix_parse(buf, &pre))
			return perr(p, arg->col, "bad translate prefix '%s' (expected e.g. 64:ff9b::/96 or 10.1.0.0/16)",
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
		if (known && (r.flags & RULE_F_NOREMOVE) && !file_rule(&r))
			return perr(p, o->col, "noremove is %s", FILE_RULES);
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
		} else if (o->n > 7 && !memcmp(o->s, "sender=", 7)) {
			if (parse_sender(o, &r.sender_uid, &r.sender_gid))
				return perr(p, o->col + 7, "bad sender (expected UID, UID:GID or :GID, numbers)");
		} else if (o->n > 7 && !memcmp(o->s, "source=", 7)) {
			struct sg_addr a;
			struct tok v = { o->s + 7, o->n - 7, o->col + 7 };
			if (tok_copy(&v, buf, sizeof buf) || addr_parse_inet(buf, &a))
				return perr(p, v.col, "bad source address '%s' (expected 1.2.3.4:0 or [::1]:0)",
					    tok_show(&v, show, sizeof show));
			r.source = pool_add(&p->pool, v.s, v.n);
		} else if ((o->n > 6 && !memcmp(o->s, "owner=", 6)) || (o->n > 6 && !memcmp(o->s, "group=", 6))) {
			int grp = o->s[0] == 'g';
			if (!file_rule(&r))
				return perr(p, o->col, "%.5s= is %s", o->s, FILE_RULES);
			if (!id_word(o->s + 6, o->n - 6))
				return perr(p, o->col + 6, "bad %s (expected a %s name or number)", grp ? "group" : "owner",
					    grp ? "group" : "user");
			*(grp ? &r.group : &r.owner) = pool_add(&p->pool, o->s + 6, o->n - 6);
		} else if (o->n > 4 && !memcmp(o->s, "dev=", 4)) {
			if (r.action != ACT_TRANSLATE)
				return perr(p, o->col, "dev= is only for translate");
			if (o->n - 4 > 15)
				return perr(p, o->col + 4, "device name longer than 15 bytes");
			for (size_t k = 4; k < o->n; k++)
				if ((unsigned char)o->s[k] < 0x21 || (unsigned char)o->s[k] > 0x7e || o->s[k] == '/')
					return perr(p, (unsigned)(o->col + k), "bad character in device name");
			r.aux = pool_add(&p->pool, o->s + 4, o->n - 4);
		} else if (o->n > 14 && !memcmp(o->s, "authority-idx=", 14)) {
			struct rules_idxsel sel;
			if (r.action != ACT_UNIX && r.action != ACT_ABSTRACT)
				return perr(p, o->col, "authority-idx= is only for unix and abstract");
			if (rules_idxsel_parse(o->s + 14, o->n - 14, &sel))
				return perr(p, o->col + 14, "bad authority-idx (expected IDX_SHIFT,ENT_SHIFT,"
					    "IDX_MASK,ENT_MASK,IDX_OFFSET,ENT_OFFSET)");
			r.aux = pool_add(&p->pool, o->s + 14, o->n - 14);
		} else {
			return perr(p, o->col, "unknown option '%s'", tok_show(o, show, sizeof show));
		}
	}
	if ((r.flags & RULE_F_IP4) && (r.flags & RULE_F_IP6))
		return perr(p, tk[0].col, "ip4 and ip6 together match nothing");
	if ((r.flags & RULE_F_PROXY_V1) && (r.flags & RULE_F_PROXY_V2))
		return perr(p, tk[0].col, "proxy-v1 and proxy-v2 together");
	if ((r.action == ACT_UNIX || r.action == ACT_ABSTRACT) && r.aux != RULE_NONE &&
	    !(r.flags & RULE_F_PROXY_V2))
		return perr(p, tk[0].col, "authority-idx= needs proxy-v2 (the name goes in its AUTHORITY TLV)");
	if ((r.flags & (RULE_F_DNS64 | RULE_F_DISCOVER)) && r.action != ACT_NAT64)
		return perr(p, tk[0].col, "dns64 and discover are options of nat64");

	return add_rule(p, &r);
}

static int add_rule(struct parser *p, const struct rule *rp)
{
	struct rule r = *rp;
	if (r.arg == RULE_NONE && (r.action == ACT_UNIX || r.action == ACT_ABSTRACT || r.action == ACT_FDPASS ||
				   r.action == ACT_TCP || r.action == ACT_NAT64 || r.action == ACT_TRANSLATE ||
				   r.action == ACT_BROKER))
		goto nomem;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 2;
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

static struct ruleset *parse(const char *buf, size_t len, struct rules_error *err, int index)
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
	if (index && rules_index(rs)) {
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

struct ruleset *rules_parse(const char *buf, size_t len, struct rules_error *err)
{
	return parse(buf, len, err, 1);
}

struct ruleset *rules_parse_unindexed(const char *buf, size_t len, struct rules_error *err)
{
	return parse(buf, len, err, 0);
}

/* ---- writing rules back: the inverse of parse_rule() ---------------------- */

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
	if (r->dir == RULE_RESOLVE) {
		const char *h = rules_str(rs, r->host), *a = rules_str(rs, r->arg);
		outf(&o, " %s ->", h ? h : "*");
		if (r->action == ACT_DIVERT || r->action == ACT_ADDRS)
			outf(&o, " %s", a ? a : "?");
		else if (r->action == ACT_UNIX || r->action == ACT_ABSTRACT)
			outf(&o, " %s %s", rules_action_name(r->action), a ? a : "?");
		else
			outf(&o, " %s", rules_action_name(r->action));
		goto done;
	}
	if (r->proto != RULE_ANYPROTO)
		outf(&o, " %s", r->proto == RULE_TCP ? "tcp" : r->proto == RULE_UDP ? "udp" : "icmp");
	if (r->host != RULE_NONE) {
		const char *h = rules_str(rs, r->host);
		outf(&o, " %s", h ? h : "?");
		if (r->port_lo == r->port_hi)
			outf(&o, ":%u", r->port_lo);
		else if (r->port_lo != 0 || r->port_hi != 65535)
			outf(&o, ":%u-%u", r->port_lo, r->port_hi);
	} else if (r->addr.plen || r->port_lo != 0 || r->port_hi != 65535) {
		out_addrspec(&o, &r->addr, r->port_lo, r->port_hi);
	}
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
	if (r->sender_uid != RULE_NONE && r->sender_gid != RULE_NONE)
		outf(&o, " sender=%u:%u", (unsigned)r->sender_uid, (unsigned)r->sender_gid);
	else if (r->sender_uid != RULE_NONE)
		outf(&o, " sender=%u", (unsigned)r->sender_uid);
	else if (r->sender_gid != RULE_NONE)
		outf(&o, " sender=:%u", (unsigned)r->sender_gid);
	if (r->source != RULE_NONE)
		outf(&o, " source=%s", rules_str(rs, r->source) ? rules_str(rs, r->source) : "?");
	if (r->aux != RULE_NONE)
		outf(&o, " %s=%s", r->action == ACT_TRANSLATE ? "dev" : "authority-idx",
		     rules_str(rs, r->aux) ? rules_str(rs, r->aux) : "?");
	if (r->owner != RULE_NONE)
		outf(&o, " owner=%s", rules_str(rs, r->owner) ? rules_str(rs, r->owner) : "?");
	if (r->group != RULE_NONE)
		outf(&o, " group=%s", rules_str(rs, r->group) ? rules_str(rs, r->group) : "?");
done:
	if (o.fail) {
		errno = ENOSPC;
		return -1;
	}
	return (int)o.len;
}

/* Six unsigned numbers, decimal or 0x hex, the shifts below 128. */
int rules_idxsel_parse(const char *s, size_t n, struct rules_idxsel *out)
{
	uint64_t v[6];
	size_t i = 0;

	for (int k = 0; k < 6; k++) {
		uint64_t x = 0;
		int hex = i + 1 < n && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X');
		size_t start;
		if (hex)
			i += 2;
		start = i;
		for (; i < n && s[i] != ','; i++) {
			int d;
			if (s[i] >= '0' && s[i] <= '9')
				d = s[i] - '0';
			else if (hex && s[i] >= 'a' && s[i] <= 'f')
				d = s[i] - 'a' + 10;
			else if (hex && s[i] >= 'A' && s[i] <= 'F')
				d = s[i] - 'A' + 10;
			else
				return errno = EINVAL, -1;
			x = x * (hex ? 16 : 10) + (uint64_t)d;
			if (x > UINT32_MAX)
				return errno = EINVAL, -1;
		}
		if (i == start || (k < 5 && (i >= n || s[i] != ',')) || (k == 5 && i != n))
			return errno = EINVAL, -1;
		i++;
		v[k] = x;
	}
	if (v[0] > 127 || v[1] > 127)
		return errno = EINVAL, -1;
	out->idx_shift = (uint8_t)v[0];
	out->ent_shift = (uint8_t)v[1];
	out->idx_mask = (uint32_t)v[2];
	out->ent_mask = (uint32_t)v[3];
	out->idx_offset = (uint32_t)v[4];
	out->ent_offset = (uint32_t)v[5];
	return 0;
}
