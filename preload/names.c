/*
 * Names for a program with no network (libsockgate(7), "NAMES"): lookups
 * that a `resolve` rule sends to sockgate-relay's resolver listener in the
 * resolver protocol (core/lookup.h), diversions (`resolve NAME -> OTHER`,
 * and libdivert's environment form NAME=OTHER), fixed answers
 * (`resolve NAME -> ADDR,...`), NAT64 synthesis for `nat64 dns64`, and
 * u-relay-tproxy's gai-hack around the lookup (its static directory is
 * read by gaihack.c).
 *
 * glibc's resolver makes its sockets inside libc where no wrapper sees
 * them, so the lookup functions themselves are wrapped. A name that no
 * rule (and no variable) names goes to libc untouched. Results are built
 * the way glibc lays them out (each struct addrinfo one allocation with its
 * address behind it, the canonical name a separate one), so glibc's
 * freeaddrinfo() frees ours and its own alike.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef NETDB_INTERNAL
#define NETDB_INTERNAL (-1)	/* glibc's h_errno for "see errno"; musl has none */
#endif

#include "addr.h"
#include "dns.h"
#include "file.h"
#include "gaihack.h"
#include "lookup.h"
#include "real.h"
#include "sg.h"

#define DIVERT_DEPTH 4

struct answer {
	int status;			/* LOOKUP_* */
	int rejected;			/* by a reject rule: final, whatever else could answer */
	char canon[DNS_NAME_MAX];
	size_t naddr;
	struct lookup_addr addr[LOOKUP_ADDR_MAX];
};

int names_numeric(const char *s)
{
	struct in_addr v4;
	unsigned char v6[16];
	char tmp[INET6_ADDRSTRLEN];
	const char *pct = strchr(s, '%');

	if (inet_aton(s, &v4))
		return 1;
	/* a scoped address, fe80::1%eth0 */
	if (pct && (size_t)(pct - s) < sizeof tmp) {
		memcpy(tmp, s, (size_t)(pct - s));
		tmp[pct - s] = 0;
		s = tmp;
	}
	return inet_pton(AF_INET6, s, v6) == 1;
}

/* SOCKGATE_RESOLVE_TIMEOUT, in ms; default 5000. */
static int timeout_ms(void)
{
	const char *s = secure_getenv("SOCKGATE_RESOLVE_TIMEOUT");
	const char *e;
	if (!s || !*s)
		return 5000;
	long long v = strtonum(s, 1, 600000, &e);
	return e ? 5000 : (int)v;
}

/* The first resolve rule over the loaded rulesets that names this name. */
static const struct rule *resolve_rule(const char *name, const struct ruleset **rsp)
{
	const struct sgconf *c = conf();
	for (int i = 0; i < c->nrs; i++) {
		const struct rule *r = rules_match_name(c->rs[i], name);
		if (r) {
			*rsp = c->rs[i];
			return r;
		}
	}
	return NULL;
}

/*
 * libdivert's form: the environment variable named by the host name holds
 * the name to look up instead (or addresses). Only names with a dot, so
 * that a lookup of "PATH" or "HOME" never reads a variable.
 */
static const char *divert_env(const char *name)
{
	if (!strchr(name, '.'))
		return NULL;
	const char *v = secure_getenv(name);
	return v && *v ? v : NULL;
}

/* One request, one reply, on a new connection: a relay restart costs nothing. */
static int ask_relay(const struct rule *r, const struct ruleset *rs, const struct lookup_req *q, struct answer *a)
{
	uint8_t buf[LOOKUP_MAX];
	struct sg_addr ta;
	const char *arg = rules_str(rs, r->arg);
	int tmo = timeout_ms(), saved = errno;
	int64_t deadline = mono_ms() + tmo;
	struct lookup_rep rep;
	int fd = -1, ret = EAI_AGAIN;

	a->status = LOOKUP_AGAIN;
	if (!arg || addr_unix(&ta, arg, r->action == ACT_ABSTRACT) < 0)
		goto out;
	int n = lookup_req_build(buf, sizeof buf, q);
	if (n < 0) {
		ret = EAI_NONAME;
		goto out;
	}
	fd = REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = EAI_SYSTEM;
		goto out;
	}
	struct timeval tv = { tmo / 1000, (tmo % 1000) * 1000 };
	REAL(setsockopt)(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (REAL(connect)(fd, &ta.u.sa, ta.len) < 0)
		goto out;		/* absent or full: temporary, as a resolver that is down */
	if (REAL(send)(fd, buf, (size_t)n, MSG_NOSIGNAL) != n)
		goto out;
	size_t got = 0;
	for (;;) {
		int left = (int)(deadline - mono_ms());
		if (left <= 0)
			goto out;
		struct pollfd p = { fd, POLLIN, 0 };
		int k = poll(&p, 1, left);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			goto out;
		ssize_t m = REAL(recv)(fd, buf + got, sizeof buf - got, 0);
		if (m < 0 && errno == EINTR)
			continue;
		if (m <= 0) {
			ret = got ? EAI_FAIL : EAI_AGAIN;
			goto out;
		}
		got += (size_t)m;
		size_t used;
		int pr = lookup_rep_parse(buf, got, &rep, &used);
		if (pr < 0 || (pr == LOOKUP_NEED && got == sizeof buf)) {
			ret = EAI_FAIL;	/* not our protocol: nothing to wait for */
			goto out;
		}
		if (pr == LOOKUP_DONE)
			break;
	}
	if (rep.id != q->id || rep.op != q->op) {
		ret = EAI_FAIL;
		goto out;
	}
	a->status = rep.status;
	memcpy(a->canon, rep.name, sizeof a->canon);
	a->naddr = rep.naddr;
	memcpy(a->addr, rep.addr, rep.naddr * sizeof rep.addr[0]);
	ret = 0;
out:
	if (fd >= 0)
		REAL(close)(fd);
	errno = saved;
	return ret;
}

static int status_eai(int st)
{
	switch (st) {
	case LOOKUP_OK: return 0;
	case LOOKUP_NONAME: return EAI_NONAME;
	case LOOKUP_NODATA: return EAI_NODATA;
	case LOOKUP_AGAIN: return EAI_AGAIN;
	default: return EAI_FAIL;	/* failure, or refused by the relay's rules */
	}
}

/* Fixed addresses of a rule or variable (lookup_addr_list()): 0, or -1 when list is none. */
static int fixed(const char *list, const char *name, struct answer *a)
{
	int n = lookup_addr_list(list, a->addr);
	if (n < 0)
		return -1;
	a->naddr = (size_t)n;
	a->status = LOOKUP_OK;
	snprintf(a->canon, sizeof a->canon, "%s", name);
	return 0;
}

/*
 * What the rules (and libdivert's variables) make of a name. Returns 1 with
 * *eai and a filled (the lookup is ours), or 0 with *name_out set to the
 * name libc should look up (itself or a diversion; empty: node itself).
 */
static int resolve_name(const char *node, int family, struct answer *a, int *eai, char *name_out)
{
	char name[DNS_NAME_MAX];
	const struct ruleset *rs = NULL;

	name_out[0] = 0;
	if (strlen(node) >= sizeof name)
		return 0;	/* no rule names it: libc, untouched */
	strcpy(name, node);
	for (int depth = 0; depth < DIVERT_DEPTH; depth++) {
		const char *env = divert_env(name);
		if (env) {
			if (fixed(env, name, a) == 0) {
				*eai = 0;
				return 1;
			}
			if (!dns_name_ok(env))
				break;
			snprintf(name, sizeof name, "%s", env);
			continue;
		}
		const struct rule *r = conf()->have_resolve ? resolve_rule(name, &rs) : NULL;
		if (!r)
			break;
		const char *arg = rules_str(rs, r->arg);
		switch (r->action) {
		case ACT_DIVERT:
			snprintf(name, sizeof name, "%s", arg ? arg : name);
			continue;
		case ACT_ADDRS:
			/* checked by the parser; a damaged list is no name */
			*eai = fixed(arg ? arg : "", name, a) == 0 ? 0 : EAI_NONAME;
			return 1;
		case ACT_REJECT:
			*eai = EAI_NONAME;
			a->status = LOOKUP_NONAME;
			a->rejected = 1;
			return 1;
		case ACT_UNIX:
		case ACT_ABSTRACT: {
			/* the name the relay resolves is the one a PROXY header may name */
			snprintf(name_out, DNS_NAME_MAX, "%s", name);
			if (!dns_name_ok(name)) {
				*eai = EAI_NONAME;	/* no host has such a name (e.g. 300 bytes) */
				a->status = LOOKUP_NONAME;
				return 1;
			}
			struct lookup_req q = { .op = LOOKUP_NAME, .flags = LOOKUP_F_CANON };
			q.family = family == AF_INET ? 4 : family == AF_INET6 ? 6 : 0;
			q.id = (uint32_t)mono_ms() ^ (uint32_t)getpid();
			snprintf(q.name, sizeof q.name, "%s", name);
			*eai = ask_relay(r, rs, &q, a);
			if (!*eai)
				*eai = status_eai(a->status);
			return 1;
		}
		default:	/* pass: libc, with the name as it now stands */
			depth = DIVERT_DEPTH;
			break;
		}
	}
	snprintf(name_out, DNS_NAME_MAX, "%s", name);
	return 0;
}

/* --- NAT64 synthesis (RFC 6147 section 5.1.7, done in the client) --------------- */

/*
 * RFC 7050: the AAAA records of ipv4only.arpa are the well-known IPv4
 * addresses 192.0.0.170 and 192.0.0.171 behind the network's NAT64 prefix
 * (only /96 prefixes are taken here). Looked up once, by the first lookup
 * that needs it, through the rules like any name; never from connect(),
 * which must not block: until it is known, the rule's prefix is used.
 */
static pthread_once_t discover_once = PTHREAD_ONCE_INIT;
static uint8_t discovered[12];
static int discovered_ok;
static __thread int discovering;	/* the lookup of ipv4only.arpa itself: no synthesis */

static void discover(void)
{
	struct addrinfo h = { .ai_family = AF_INET6, .ai_socktype = SOCK_STREAM }, *res = NULL;
	discovering = 1;
	int e = getaddrinfo("ipv4only.arpa", NULL, &h, &res);
	discovering = 0;
	if (e != 0)
		return;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		const uint8_t *a = ((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr.s6_addr;
		if (!memcmp(a + 12, "\xc0\x00\x00\xaa", 4) || !memcmp(a + 12, "\xc0\x00\x00\xab", 4)) {
			memcpy(discovered, a, 12);
			__atomic_store_n(&discovered_ok, 1, __ATOMIC_RELEASE);
			break;
		}
	}
	freeaddrinfo(res);
}

int names_nat64_prefix(const struct ruleset *rs, const struct rule *r, int may_block, uint8_t pre[12])
{
	struct sg_prefix p;
	if (r->flags & RULE_F_DISCOVER) {
		if (may_block && !discovering)
			pthread_once(&discover_once, discover);
		if (__atomic_load_n(&discovered_ok, __ATOMIC_ACQUIRE)) {
			memcpy(pre, discovered, 12);
			return 0;
		}
	}
	if (prefix_parse(rules_str(rs, r->arg), &p) < 0)
		return -1;
	memcpy(pre, p.addr, 12);
	return 0;
}

/* The prefix of the first nat64 rule with dns64, or 0. */
static int dns64_prefix(uint8_t pre[12])
{
	const struct sgconf *c = conf();
	if (discovering)
		return 0;
	for (int i = 0; i < c->nrs; i++) {
		const struct ruleset *rs = c->rs[i];
		for (size_t k = 0; k < rs->n; k++) {
			const struct rule *r = &rs->rule[k];
			if (r->action == ACT_NAT64 && (r->flags & RULE_F_DNS64) &&
			    names_nat64_prefix(rs, r, 1, pre) == 0)
				return 1;
		}
	}
	return 0;
}

/* --- getaddrinfo ----------------------------------------------------------------- */

static struct addrinfo *ai_new(int family, const uint8_t *a, int port, int socktype, int protocol)
{
	struct addrinfo *ai = calloc(1, sizeof *ai + sizeof(struct sockaddr_in6));
	if (!ai)
		return NULL;
	ai->ai_family = family;
	ai->ai_socktype = socktype;
	ai->ai_protocol = protocol;
	ai->ai_addr = (struct sockaddr *)(ai + 1);
	if (family == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)ai->ai_addr;
		s->sin_family = AF_INET;
		s->sin_port = htons((uint16_t)port);
		memcpy(&s->sin_addr, a, 4);
		ai->ai_addrlen = sizeof *s;
	} else {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ai->ai_addr;
		s->sin6_family = AF_INET6;
		s->sin6_port = htons((uint16_t)port);
		memcpy(&s->sin6_addr, a, 16);
		ai->ai_addrlen = sizeof *s;
	}
	return ai;
}

static int numeric_port(const char *s)
{
	const char *e;
	strtonum(s, 0, 65535, &e);
	return !e;
}

/* The port of a service for a socket type: -1 when it has none (EAI_SERVICE). */
static int service_port(const char *service, int socktype, int flags, int *eai)
{
	const char *e;
	if (!service)
		return 0;
	long long v = strtonum(service, 0, 65535, &e);
	if (!e)
		return (int)v;
	if (flags & AI_NUMERICSERV) {
		*eai = EAI_NONAME;
		return -1;
	}
	struct servent se, *sp = NULL;
	char buf[1024];
	if (getservbyname_r(service, socktype == SOCK_DGRAM ? "udp" : "tcp", &se, buf, sizeof buf, &sp) || !sp) {
		*eai = EAI_SERVICE;
		return -1;
	}
	return ntohs((uint16_t)sp->s_port);
}

/* glibc's defaults for no hints */
static const struct addrinfo no_hints = { .ai_flags = AI_V4MAPPED | AI_ADDRCONFIG };

static int build_ai(const struct answer *a, const char *node, const char *service,
		    const struct addrinfo *hints, struct addrinfo **res)
{
	static const struct { int type, proto; } types[] = {
		{ SOCK_STREAM, IPPROTO_TCP }, { SOCK_DGRAM, IPPROTO_UDP }, { SOCK_RAW, 0 },
	};
	const struct addrinfo *h = hints ? hints : &no_hints;
	int family = h->ai_family, flags = h->ai_flags, want_type = h->ai_socktype, want_proto = h->ai_protocol;
	struct addrinfo *head = NULL, **tail = &head;
	int eai = 0, have6 = 0;
	uint8_t pre[12];
	int dns64 = (family == AF_INET6 || family == AF_UNSPEC) && dns64_prefix(pre);

	if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
		return EAI_FAMILY;
	for (size_t i = 0; i < a->naddr; i++)
		have6 |= a->addr[i].family == 6;
	/* IPv6 first, as RFC 6724's default policy puts ::1 and global IPv6 before IPv4 */
	for (int pass6 = 1; pass6 >= 0; pass6--) {
		for (size_t i = 0; i < a->naddr; i++) {
			const struct lookup_addr *x = &a->addr[i];
			int fam;
			uint8_t a16[16];
			if (pass6 && x->family == 6) {
				if (family == AF_INET)
					continue;
				fam = AF_INET6;
				memcpy(a16, x->a, 16);
			} else if (!pass6 && x->family == 4) {
				if (family == AF_INET || (family == AF_UNSPEC && !(dns64 && !have6))) {
					fam = AF_INET;
					memcpy(a16, x->a, 4);
				} else if (dns64 && !have6) {
					fam = AF_INET6;
					memcpy(a16, pre, 12);
					memcpy(a16 + 12, x->a, 4);
				} else if (family == AF_INET6 && (flags & AI_V4MAPPED) && (!have6 || (flags & AI_ALL))) {
					fam = AF_INET6;
					memset(a16, 0, 10);
					a16[10] = a16[11] = 0xff;
					memcpy(a16 + 12, x->a, 4);
				} else {
					continue;
				}
			} else {
				continue;
			}
			for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
				if (want_type && want_type != types[t].type)
					continue;
				if (!want_type && types[t].type == SOCK_RAW && service && !numeric_port(service))
					continue;	/* a named service means a transport (glibc's way) */
				if (want_proto && types[t].proto && want_proto != types[t].proto)
					continue;
				int port = service_port(service, types[t].type, flags, &eai);
				if (port < 0) {
					if (want_type)
						goto fail;
					eai = 0;
					continue;
				}
				struct addrinfo *ai = ai_new(fam, a16, port, types[t].type,
							     want_proto && types[t].proto ? want_proto : types[t].proto);
				if (!ai) {
					eai = EAI_MEMORY;
					goto fail;
				}
				*tail = ai;
				tail = &ai->ai_next;
			}
		}
	}
	if (!head) {
		eai = service && !eai ? EAI_SERVICE : eai ? eai : family == AF_UNSPEC ? EAI_NONAME : EAI_ADDRFAMILY;
		if (eai == EAI_SERVICE && service_port(service, want_type ? want_type : SOCK_STREAM, flags, &eai) >= 0)
			eai = family == AF_UNSPEC ? EAI_NONAME : EAI_ADDRFAMILY;
		return eai;
	}
	if (flags & AI_CANONNAME) {
		head->ai_canonname = strdup(a->canon[0] ? a->canon : node);
		if (!head->ai_canonname) {
			eai = EAI_MEMORY;
			goto fail;
		}
	}
	*res = head;
	return 0;
fail:
	freeaddrinfo(head);
	return eai;
}

/* --- AI_ADDRCONFIG where a rule carries the connection ------------------------ */

/*
 * AI_ADDRCONFIG asks for addresses of the families the host has configured
 * (glibc: other than loopback; musl: those a loopback can reach). In a
 * namespace with no network that is none, and a literal or a diverted name
 * gives EAI_NONAME although a rule would carry the connection: for those
 * the flag goes (libsockgate(7), "Names"). Other lookups keep it.
 */
static int carries(const struct rule *r)
{
	return r->action != ACT_PASS && r->action != ACT_REJECT;
}

/* Does a connect rule carry sa (its port; any port when any) for the socket type? */
static int connect_carries(const struct sockaddr *sa, int socktype, int any)
{
	const struct sgconf *c = conf();
	int protos = socktype == SOCK_DGRAM ? RULE_UDP : socktype == SOCK_STREAM ? RULE_TCP : RULE_ANYPROTO;
	int v4 = sa->sa_family == AF_INET;

	if (!any) {
		for (int p = RULE_TCP; p <= RULE_UDP; p <<= 1) {
			const struct rule *r = (protos & p) ? sg_match(RULE_CONNECT, p, sa, NULL) : NULL;
			if (r && carries(r))
				return 1;
		}
		return 0;
	}
	/* no port to go by: a rule that carries the address on some port */
	for (int i = 0; i < c->nrs; i++) {
		const struct ruleset *rs = c->rs[i];
		for (size_t k = 0; k < rs->n; k++) {
			const struct rule *r = &rs->rule[k];
			if (r->dir == RULE_CONNECT && (r->proto & protos) && r->host == RULE_NONE && carries(r) &&
			    !((r->flags & RULE_F_IP4) && !v4) && !((r->flags & RULE_F_IP6) && v4) &&
			    prefix_match_sa(&r->addr, sa))
				return 1;
		}
	}
	return 0;
}

/* Is node a literal address that a connect rule carries for this service? */
static int literal_carried(const char *node, const char *service, const struct addrinfo *h)
{
	struct addrinfo num = { .ai_flags = AI_NUMERICHOST, .ai_socktype = h->ai_socktype }, *res = NULL;
	int any = 1, port = 0, e = 0, yes = 0;

	num.ai_family = h->ai_family == AF_INET ? AF_INET : AF_UNSPEC;	/* AF_INET6 may map an IPv4 one */
	if (service) {
		port = service_port(service, h->ai_socktype == SOCK_DGRAM ? SOCK_DGRAM : SOCK_STREAM, 0, &e);
		any = port < 0;
	}
	if (REAL(getaddrinfo)(node, NULL, &num, &res) != 0)
		return 0;
	for (struct addrinfo *ai = res; ai && !yes; ai = ai->ai_next) {
		struct sockaddr_storage ss;
		if (ai->ai_addrlen > sizeof ss)
			continue;
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)(any ? 0 : port));
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)(any ? 0 : port));
		yes = connect_carries((struct sockaddr *)&ss, h->ai_socktype, any);
	}
	freeaddrinfo(res);
	return yes;
}

/* hints without AI_ADDRCONFIG, in copy (hints may be NULL: glibc's defaults) */
static const struct addrinfo *no_addrconfig(const struct addrinfo *hints, struct addrinfo *copy)
{
	*copy = hints ? *hints : no_hints;
	copy->ai_flags &= ~AI_ADDRCONFIG;
	return copy;
}

/*
 * A lookup as the rules (and libdivert's variables) say, else by libc:
 * getaddrinfo() itself when gai-hack is off, gai-hack's "real resolver"
 * when it is on. authority gets the name the relay looked up, when it was
 * asked; *final is set when a reject rule answered.
 */
static int lookup(const char *node, const char *service, const struct addrinfo *hints, struct addrinfo **res,
		  char *authority, int *final)
{
	struct answer a;
	char other[DNS_NAME_MAX];
	const struct addrinfo *h = hints ? hints : &no_hints;
	int flags = h->ai_flags, family = h->ai_family, eai = 0;

	struct addrinfo copy;

	if (node && *node && ((flags & AI_NUMERICHOST) || names_numeric(node))) {
		if ((flags & AI_ADDRCONFIG) && conf()->have_connect && literal_carried(node, service, h))
			hints = no_addrconfig(hints, &copy);
		return REAL(getaddrinfo)(node, service, hints, res);
	}
	/* a name with a dot may be diverted by libdivert's variable even with no rules */
	if (!node || !*node || (!conf()->have_resolve && !strchr(node, '.')))
		return REAL(getaddrinfo)(node, service, hints, res);
	memset(&a, 0, sizeof a);
	/* AI_V4MAPPED asks for IPv4 answers too */
	int ask = family == AF_INET6 && (flags & AI_V4MAPPED) ? AF_UNSPEC : family;
	uint8_t pre[12];
	if (family == AF_INET6 && dns64_prefix(pre))
		ask = AF_UNSPEC;
	if (!resolve_name(node, ask, &a, &eai, other)) {
		/* diverted by a rule or variable: what libc finds for the other name is the rule's answer */
		if (other[0] && strcmp(other, node) && (flags & AI_ADDRCONFIG))
			hints = no_addrconfig(hints, &copy);
		return REAL(getaddrinfo)(other[0] ? other : node, service, hints, res);
	}
	if (final)
		*final = a.rejected;
	snprintf(authority, DNS_NAME_MAX, "%s", other);
	/* as glibc: the service is checked before the name */
	if (service && !numeric_port(service)) {
		int st = h->ai_socktype, e = 0;
		if (flags & AI_NUMERICSERV)
			return EAI_NONAME;
		if ((st == SOCK_STREAM || st == SOCK_DGRAM) ? service_port(service, st, flags, &e) < 0 :
		    service_port(service, SOCK_STREAM, flags, &e) < 0 && service_port(service, SOCK_DGRAM, flags, &e) < 0)
			return EAI_SERVICE;
	}
	if (eai)
		return eai;
	eai = build_ai(&a, node, service, hints, res);
	return eai == 0 && a.naddr == 0 ? EAI_NONAME : eai;
}

/* What gai-hack takes for a failure of the real resolver. */
static int gaihack_failed(int e)
{
	return e == EAI_ADDRFAMILY || e == EAI_FAIL || e == EAI_AGAIN || e == EAI_NODATA || e == EAI_NONAME;
}

/*
 * gai-hack (URELAY_TPROXY_LOCAL_FLAGS 0x80000; libsockgate(7), "Names"):
 * its static directory answers before the lookup (h, H, H,R) and after it
 * failed (l, L, L,R), then PJTL_GAIHACK_SNI_PROXY, then no data. An
 * entry's value is a diversion (`resolve NAME -> VALUE`) looked up like
 * any name, rules included, without the directory; a name a reject rule
 * refuses stays refused.
 */
static int gaihack_lookup(const char *node, const char *service, const struct addrinfo *hints,
			  struct addrinfo **res, char *authority)
{
	char name[GAIHACK_NAMEMAX + 1], value[GAIHACK_FILEMAX];
	int localhost = 0, final = 0;

	if (!node || (hints->ai_flags & AI_NUMERICHOST) || names_numeric(node) || gaihack_name(node, name) < 0)
		return lookup(node, service, hints, res, authority, NULL);
	switch (gaihack_find(name, "hH", &localhost, value, sizeof value)) {
	case GAIHACK_FOUND:
		return lookup(value, service, hints, res, authority, NULL);
	case GAIHACK_FAILED:
		return EAI_AGAIN;
	}
	int e = lookup(node, service, hints, res, authority, &final);
	if (final || !gaihack_failed(e))
		return e;
	authority[0] = 0;
	switch (gaihack_find(name, "lL", &localhost, value, sizeof value)) {
	case GAIHACK_FOUND:
		return lookup(value, service, hints, res, authority, NULL);
	case GAIHACK_FAILED:
		return EAI_AGAIN;
	}
	if (localhost)
		return EAI_AGAIN;	/* never sent to the SNI proxy */
	gaihack_log(name);
	const char *sni = secure_getenv("PJTL_GAIHACK_SNI_PROXY");
	return sni && *sni ? lookup(sni, service, hints, res, authority, NULL) : EAI_NODATA;
}

EXPORT int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		       struct addrinfo **res)
{
	char authority[DNS_NAME_MAX] = "";
	int r;

	if (unlikely(conf()->hacks & HACK_GAI)) {
		/* a program with no network would be told that no address can do */
		struct addrinfo h = hints ? *hints : no_hints;
		h.ai_flags &= ~AI_ADDRCONFIG;
		r = gaihack_lookup(node, service, &h, res, authority);
	} else {
		r = lookup(node, service, hints, res, authority, NULL);
	}
	/* the name a PROXY header's AUTHORITY gives: the one the relay looked up, else the program's */
	if (r == 0 && node && *res && conf()->have_proxy)
		gai_remember(authority[0] ? authority : node, *res);
	return r;
}

/* --- gethostbyname family ------------------------------------------------------ */

/*
 * Fill a hostent in buf (glibc's layout: aliases and addresses as pointer
 * arrays in the caller's buffer). 0, or ERANGE.
 */
static int fill_hostent(const struct answer *a, const char *name, int af, struct hostent *he, char *buf,
			size_t len)
{
	size_t alen = af == AF_INET ? 4 : 16, n = 0;
	for (size_t i = 0; i < a->naddr; i++)
		n += (a->addr[i].family == 4) == (af == AF_INET);
	const char *canon = a->canon[0] ? a->canon : name;
	size_t need = (n + 1) * sizeof(char *) + sizeof(char *) + n * alen + strlen(canon) + 1 + sizeof(void *);
	if (len < need)
		return ERANGE;
	char *p = buf + ((uintptr_t)buf % sizeof(void *) ? sizeof(void *) - (uintptr_t)buf % sizeof(void *) : 0);
	char **addrs = (char **)p;
	char **aliases = addrs + n + 1;
	char *data = (char *)(aliases + 1);
	size_t k = 0;
	for (size_t i = 0; i < a->naddr; i++) {
		if ((a->addr[i].family == 4) != (af == AF_INET))
			continue;
		memcpy(data, a->addr[i].a, alen);
		addrs[k++] = data;
		data += alen;
	}
	addrs[k] = NULL;
	aliases[0] = NULL;
	strcpy(data, canon);
	he->h_name = data;
	he->h_aliases = aliases;
	he->h_addrtype = af;
	he->h_length = (int)alen;
	he->h_addr_list = addrs;
	return 0;
}

/*
 * The gethostbyname family's outcome of a lookup that gave eai (answer a):
 * the _r functions' return value, with *result and *herr set.
 */
static int hostent_result(int eai, const struct answer *a, const char *name, int af, struct hostent *ret,
			  char *buf, size_t buflen, struct hostent **result, int *herr)
{
	*result = NULL;
	switch (eai) {
	case 0:
		if (fill_hostent(a, name, af, ret, buf, buflen) == ERANGE) {
			h_errno = *herr = NETDB_INTERNAL;
			return ERANGE;
		}
		*result = ret;
		*herr = 0;
		return 0;
	case EAI_NODATA:
		*herr = NO_DATA;
		break;
	case EAI_AGAIN:
		*herr = TRY_AGAIN;
		break;
	case EAI_NONAME:
		*herr = HOST_NOT_FOUND;
		break;
	default:
		*herr = NO_RECOVERY;
	}
	h_errno = *herr;	/* glibc's _r forms set it too: Python reads it, not *herr */
	return *herr == TRY_AGAIN ? EAGAIN : 0;
}

/* 1 when ours (with *ret, *result and *herr set), else 0. */
static int names_hostent(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
			 struct hostent **result, int *herr, int *rv)
{
	struct answer a;
	char other[DNS_NAME_MAX];
	int eai = 0;

	if (!name || names_numeric(name) || (af != AF_INET && af != AF_INET6))
		return 0;
	memset(&a, 0, sizeof a);
	if (!resolve_name(name, af, &a, &eai, other)) {
		if (!other[0] || !strcmp(other, name))
			return 0;
		/* diverted to a name libc looks up */
		*rv = REAL(gethostbyname2_r)(other, af, ret, buf, buflen, result, herr);
		return 1;
	}
	if (eai == 0) {
		size_t n = 0;
		for (size_t i = 0; i < a.naddr; i++)
			n += (a.addr[i].family == 4) == (af == AF_INET);
		if (n == 0)
			eai = EAI_NODATA;
	}
	*rv = hostent_result(eai, &a, name, af, ret, buf, buflen, result, herr);
	return 1;
}

EXPORT int gethostbyname2_r(const char *name, int af, struct hostent *ret, char *buf, size_t buflen,
			    struct hostent **result, int *h_errnop)
{
	int rv;
	if (names_hostent(name, af, ret, buf, buflen, result, h_errnop, &rv))
		return rv;
	return REAL(gethostbyname2_r)(name, af, ret, buf, buflen, result, h_errnop);
}

EXPORT int gethostbyname_r(const char *name, struct hostent *ret, char *buf, size_t buflen,
			   struct hostent **result, int *h_errnop)
{
	int rv;
	if (names_hostent(name, AF_INET, ret, buf, buflen, result, h_errnop, &rv))
		return rv;
	return REAL(gethostbyname_r)(name, ret, buf, buflen, result, h_errnop);
}

static __thread struct hostent tls_he;
static __thread char tls_buf[LOOKUP_ADDR_MAX * 24 + DNS_NAME_MAX + 64];

EXPORT struct hostent *gethostbyname2(const char *name, int af)
{
	struct hostent *res = NULL;
	int herr = 0, rv;
	if (!names_hostent(name, af, &tls_he, tls_buf, sizeof tls_buf, &res, &herr, &rv))
		return REAL(gethostbyname2)(name, af);
	h_errno = herr;
	return res;
}

EXPORT struct hostent *gethostbyname(const char *name)
{
	struct hostent *res = NULL;
	int herr = 0, rv;
	if (!names_hostent(name, AF_INET, &tls_he, tls_buf, sizeof tls_buf, &res, &herr, &rv))
		return REAL(gethostbyname)(name);
	h_errno = herr;
	return res;
}

/* --- getnameinfo: reverse lookups through the relay of the `resolve *` rule ---- */

static const struct rule *reverse_rule(const struct ruleset **rsp)
{
	const struct sgconf *c = conf();
	for (int i = 0; i < c->nrs; i++) {
		const struct ruleset *rs = c->rs[i];
		for (size_t k = 0; k < rs->n; k++) {
			const struct rule *r = &rs->rule[k];
			if (r->dir == RULE_RESOLVE && !strcmp(rules_str(rs, r->host), "*")) {
				if (r->action != ACT_UNIX && r->action != ACT_ABSTRACT)
					return NULL;
				*rsp = rs;
				return r;
			}
		}
	}
	return NULL;
}

/*
 * The name of the address a16 (IPv4 as v4-mapped) from the relay of rule r:
 * 0 with the name in a->canon, EAI_NONAME or EAI_NODATA when it has none,
 * else the failure.
 */
static int reverse(const struct rule *r, const struct ruleset *rs, const uint8_t a16[16], struct answer *a)
{
	struct lookup_req q = { .op = LOOKUP_ADDR };
	if (addr_is_v4mapped(a16)) {
		q.alen = 4;
		memcpy(q.addr, a16 + 12, 4);
	} else {
		q.alen = 16;
		memcpy(q.addr, a16, 16);
	}
	q.id = (uint32_t)mono_ms();
	memset(a, 0, sizeof *a);
	int e = ask_relay(r, rs, &q, a);
	if (!e)
		e = a->status == LOOKUP_OK && a->canon[0] ? 0 : a->status == LOOKUP_OK ? EAI_NONAME : status_eai(a->status);
	return e;
}

EXPORT int getnameinfo(const struct sockaddr *sa, socklen_t salen, char *host, socklen_t hostlen, char *serv,
		       socklen_t servlen, int flags)
{
	const struct ruleset *rs = NULL;
	const struct rule *r;

	if (!host || !hostlen || (flags & NI_NUMERICHOST) || !sa ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || !conf()->have_resolve ||
	    !(r = reverse_rule(&rs)))
		return REAL(getnameinfo)(sa, salen, host, hostlen, serv, servlen, flags);
	if (salen < (sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)))
		return EAI_FAMILY;
	if (serv && servlen) {
		int e = REAL(getnameinfo)(sa, salen, NULL, 0, serv, servlen, flags);
		if (e)
			return e;
	}
	struct answer a;
	uint8_t a16[16];
	addr_to16(sa, a16);
	int e = reverse(r, rs, a16, &a);
	if (e == EAI_NONAME || e == EAI_NODATA) {
		if (flags & NI_NAMEREQD)
			return EAI_NONAME;
		return REAL(getnameinfo)(sa, salen, host, hostlen, NULL, 0, flags | NI_NUMERICHOST);
	}
	if (e)
		return e;
	if (flags & NI_NOFQDN) {
		char *dot = strchr(a.canon, '.');
		if (dot)
			*dot = 0;
	}
	if (strlen(a.canon) >= hostlen)
		return EAI_OVERFLOW;
	strcpy(host, a.canon);
	return 0;
}

/* --- gethostbyaddr: the same reverse lookup, as a hostent ------------------------ */

/* 1 when ours (with *ret, *result and *herr set, *rv the _r return value), else 0. */
static int names_hostaddr(const void *addr, socklen_t len, int type, struct hostent *ret, char *buf, size_t buflen,
			  struct hostent **result, int *herr, int *rv)
{
	const struct ruleset *rs = NULL;
	const struct rule *r;
	struct answer a;
	uint8_t a16[16] = { [10] = 0xff, [11] = 0xff };

	if (!addr || !((type == AF_INET && len == 4) || (type == AF_INET6 && len == 16)) ||
	    !conf()->have_resolve || !(r = reverse_rule(&rs)))
		return 0;
	memcpy(type == AF_INET ? a16 + 12 : a16, addr, len);
	int e = reverse(r, rs, a16, &a);
	if (e == EAI_NODATA)
		e = EAI_NONAME;		/* no name for the address: HOST_NOT_FOUND, as glibc says */
	/* the hostent holds the name and the address asked about, as glibc's does */
	a.naddr = 1;
	a.addr[0].family = type == AF_INET ? 4 : 6;
	memcpy(a.addr[0].a, addr, len);
	*rv = hostent_result(e, &a, a.canon, type, ret, buf, buflen, result, herr);
	return 1;
}

EXPORT int gethostbyaddr_r(const void *addr, socklen_t len, int type, struct hostent *ret, char *buf,
			   size_t buflen, struct hostent **result, int *h_errnop)
{
	int rv;
	if (names_hostaddr(addr, len, type, ret, buf, buflen, result, h_errnop, &rv))
		return rv;
	return REAL(gethostbyaddr_r)(addr, len, type, ret, buf, buflen, result, h_errnop);
}

EXPORT struct hostent *gethostbyaddr(const void *addr, socklen_t len, int type)
{
	struct hostent *res = NULL;
	int herr = 0, rv;
	if (!names_hostaddr(addr, len, type, &tls_he, tls_buf, sizeof tls_buf, &res, &herr, &rv))
		return REAL(gethostbyaddr)(addr, len, type);
	h_errno = herr;
	return res;
}
