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

/* Check a path template; return the shortest length it can expand to. */
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
