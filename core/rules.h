/*
 * rules: the one rule language of sockgate (see sockgate-rules(5)).
 *
 *   DIRECTION [PROTO] [ADDRESS] [from ADDRESS] -> ACTION [ARG] [OPTION...]
 *
 * rules_parse() is a pure function from a buffer to a ruleset; an error
 * carries line and column. rules_match() finds the first rule that matches
 * (first match wins) without scanning every rule: rules are indexed by the
 * prefix of their main address (one hash table per prefix length present).
 */
#ifndef SOCKGATE_RULES_H
#define SOCKGATE_RULES_H

#include <stddef.h>
#include <stdint.h>
#include "addr.h"

enum rule_dir {
	RULE_CONNECT = 1,	/* outgoing: connect(), sendto() */
	RULE_BIND = 2,		/* bind() / listen() in the preload */
	RULE_ACCEPT = 3,	/* an accepted socket (server, relay allow rules) */
	RULE_RESOLVE = 4,	/* a name lookup (preload: getaddrinfo; relay: its resolver) */
	RULE_NDIR
};

enum rule_proto {		/* a bit mask; 0 in a query is not allowed */
	RULE_TCP = 1,
	RULE_UDP = 2,
	RULE_ANYPROTO = 3,	/* tcp and udp: what "any" and no protocol mean */
	RULE_ICMP = 4,		/* ICMP sockets (socket() in the preload, the broker's ping ops); named only */
	RULE_PROTOS = 7		/* every bit a compiled rule may have */
};

enum rule_action {
	ACT_UNIX = 1,		/* unix PATH-TEMPLATE */
	ACT_ABSTRACT,		/* abstract NAME-TEMPLATE */
	ACT_TCP,		/* tcp ADDR:PORT */
	ACT_FDPASS,		/* fdpass PATH-TEMPLATE */
	ACT_SYSTEMD,		/* systemd [NAME] */
	ACT_REJECT,		/* reject [ERRNO] */
	ACT_BLACKHOLE,		/* blackhole */
	ACT_PASS,		/* pass (also: allow) */
	ACT_NAT64,		/* nat64 [PREFIX/96] (default 64:ff9b::/96) */
	ACT_TRANSLATE,		/* translate PREFIX/LEN [dev=NAME] */
	ACT_DIVERT,		/* resolve: look up another name (written as the bare name) */
	ACT_ADDRS,		/* resolve: fixed addresses ADDR[,ADDR...] (written bare) */
	ACT_BROKER,		/* broker PATH-TEMPLATE: a socket from sockgate-relay's broker (tcp only) */
	ACT_NACTIONS
};

/* Option flags (RULE_F_*) */
#define RULE_F_PROXY_V2		0x0001u	/* write (or expect) a PROXY v2 header */
#define RULE_F_PROXY_V1		0x0002u	/* PROXY v1 instead */
#define RULE_F_NETNS		0x0004u	/* add the NETNS TLV */
#define RULE_F_CRC32C		0x0008u	/* add the CRC32C TLV */
#define RULE_F_FASTOPEN_EPIPE	0x0010u	/* sendto(MSG_FASTOPEN) answers EPIPE */
#define RULE_F_RST		0x0020u	/* reject by RST (SO_LINGER 0) */
#define RULE_F_IP4		0x0040u	/* match IPv4 addresses only */
#define RULE_F_IP6		0x0080u	/* match IPv6 addresses only */
#define RULE_F_SHUT_RD_RDWR	0x0100u	/* shutdown(SHUT_RD) becomes SHUT_RDWR */
#define RULE_F_DNS64		0x0200u	/* nat64: getaddrinfo() synthesises PREFIX+IPv4 */
#define RULE_F_DISCOVER		0x0400u	/* nat64: the prefix from ipv4only.arpa (RFC 7050) */
#define RULE_F_NOREMOVE		0x0800u	/* bind: keep the socket file when the listener is closed */

#define RULE_NONE 0xffffffffu	/* "no string" in the offsets below */

/*
 * One rule. Strings are offsets into the ruleset's string pool so that the
 * compiled form (rulebin) can be a plain copy of these records.
 */
struct rule {
	uint8_t dir;		/* enum rule_dir */
	uint8_t proto;		/* enum rule_proto mask */
	uint8_t action;		/* enum rule_action */
	uint8_t acol;		/* column of the action word (at most 255), for messages; 0: unknown */
	struct sg_prefix addr;	/* main address: destination / bind / local */
	struct sg_prefix peer;	/* accept only: the remote address */
	uint16_t port_lo, port_hi;	/* 0-65535 = any */
	uint16_t pport_lo, pport_hi;	/* remote port range (accept) */
	uint32_t flags;		/* RULE_F_* */
	uint32_t mode;		/* socket file mode, 0 = leave alone */
	int32_t err;		/* errno for reject */
	uint32_t arg;		/* action argument (string offset) or RULE_NONE */
	uint32_t name;		/* rule name (string offset) or RULE_NONE */
	uint32_t source;	/* source=ADDR for PROXY headers, or RULE_NONE */
	uint32_t aux;		/* translate: dev=NAME; unix, abstract: authority-idx=...; or RULE_NONE */
	uint32_t sender_uid;	/* sender=UID[:GID]: who may pass sockets to an fdpass */
	uint32_t sender_gid;	/*   receiver besides root and itself; RULE_NONE = none */
	uint32_t line;		/* line in the source text, for messages */
	uint32_t host;		/* host name pattern (string offset) or RULE_NONE */
	uint32_t owner;		/* owner=USER of the socket file (a name or a number; string offset) or RULE_NONE */
	uint32_t group;		/* group=GROUP, the same */
};

struct ruleset {
	struct rule *rule;
	size_t n;
	char *str;		/* string pool: NUL-terminated strings */
	size_t strlen;
	void *index;		/* private: lookup index, built by rules_index() */
};

struct rules_error {
	unsigned line, col;	/* 1-based; 0 when not about a place */
	char msg[160];
};

/*
 * Parse rule text. Rules are separated by newlines or by ';' (for rules
 * given inline in an environment variable). Returns a ruleset with its
 * index built, or NULL with errno EINVAL (err filled) or ENOMEM.
 */
struct ruleset *rules_parse(const char *buf, size_t len, struct rules_error *err);

/*
 * The same without the lookup index (rules_match() finds nothing in the
 * result until rules_index() is called): for checks that only read the
 * rules, such as reading one formatted rule back. Building the index costs
 * more than parsing a short text.
 */
struct ruleset *rules_parse_unindexed(const char *buf, size_t len, struct rules_error *err);

/* Build (or rebuild) the lookup index; 0 or -1 with ENOMEM. */
int rules_index(struct ruleset *rs);

void rules_free(struct ruleset *rs);

struct rules_query {
	int dir;			/* enum rule_dir */
	int proto;			/* RULE_TCP, RULE_UDP or RULE_ICMP */
	const struct sockaddr *addr;	/* main address (inet) */
	const struct sockaddr *peer;	/* remote address, or NULL */
	/*
	 * A rule with a host name pattern matches only when this says yes for
	 * its pattern; without it such rules never match an address.
	 */
	int (*host_ok)(void *ctx, const char *pattern);
	void *ctx;
};

/* First matching rule, or NULL. Never allocates; safe from many threads. */
const struct rule *rules_match(const struct ruleset *rs, const struct rules_query *q);

/* First resolve rule whose pattern matches name (dns_name_match()), or NULL. */
const struct rule *rules_match_name(const struct ruleset *rs, const char *name);

/* A string of the pool, or NULL for RULE_NONE. */
const char *rules_str(const struct ruleset *rs, uint32_t off);

/*
 * Expand a path template for an address: %a the address (IPv4 dotted, IPv6
 * in full without brackets), %p the port, %f the family (4 or 6), %% a '%';
 * %0 ... %7 one 16-bit group of the address as IPv6 (IPv4 as ::ffff:a.b.c.d)
 * and %P the port, each as five decimal digits (u-relay-tproxy's #//0_ ...
 * #//7_ and #//P_).
 * Returns the length, or -1 with ENAMETOOLONG (does not fit size) or EINVAL.
 */
int rules_expand(const char *tmpl, const struct sockaddr *sa, char *buf, size_t size);

/* Write one rule back as text that parses to the same rule; length or -1. */
int rules_format(const struct ruleset *rs, const struct rule *r, char *buf, size_t size);

/*
 * Do two rules mean the same, field by field (strings by content, the
 * source line and struct padding not compared)? 1 or 0.
 */
int rules_same(const struct ruleset *ra, const struct rule *a, const struct ruleset *rb, const struct rule *b);

/*
 * authority-idx=IDX_SHIFT,ENT_SHIFT,IDX_MASK,ENT_MASK,IDX_OFFSET,ENT_OFFSET
 * (u-relay-tproxy's type 4 data): which index file and which entry of it
 * name the destination. 0, or -1 with EINVAL.
 */
struct rules_idxsel {
	uint8_t idx_shift, ent_shift;
	uint32_t idx_mask, ent_mask, idx_offset, ent_offset;
};
int rules_idxsel_parse(const char *s, size_t n, struct rules_idxsel *out);

/* Names used in text and messages. */
const char *rules_action_name(int action);
const char *rules_dir_name(int dir);

#endif
