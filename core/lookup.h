/*
 * lookup: the resolver protocol between libsockgate.so and the resolver
 * listener of sockgate-relay (sockgate-relay(8), "RESOLVER PROTOCOL").
 * Version 1. Every message is a 16-byte header and a body; integers are
 * big-endian; a stream may carry many requests, answered in any order
 * (matched by id).
 *
 * request:  "SGQ" 1 | u16 length | u8 op | u8 family | u32 id | u16 flags
 *           | u16 qlen | qlen bytes (a name, or a 4/16-byte address)
 * reply:    "SGA" 1 | u16 length | u8 op | u8 status | u32 id | u32 ttl
 *           | u8 naddr | u8 namelen | name | naddr x (u8 family 4|6, address)
 *
 * A name is 1-253 bytes of a host name (dns_name_ok()). family is 0 (any),
 * 4 or 6; op 1 is name to addresses, op 2 address to name. A reply's name
 * is the canonical name (op 1) or the name found (op 2).
 */
#ifndef SOCKGATE_LOOKUP_H
#define SOCKGATE_LOOKUP_H

#include <stddef.h>
#include <stdint.h>
#include "dns.h"

#define LOOKUP_VERSION 1
#define LOOKUP_HDR 16
#define LOOKUP_ADDR_MAX 64
#define LOOKUP_MAX (LOOKUP_HDR + 2 + 255 + LOOKUP_ADDR_MAX * 17)

enum { LOOKUP_NAME = 1, LOOKUP_ADDR = 2 };
enum { LOOKUP_OK = 0, LOOKUP_NONAME, LOOKUP_NODATA, LOOKUP_AGAIN, LOOKUP_FAIL, LOOKUP_REFUSED,
       LOOKUP_NSTATUS };
#define LOOKUP_F_CANON 0x0001u

enum { LOOKUP_DONE = 1, LOOKUP_NEED = 2 };

struct lookup_req {
	uint8_t op, family;
	uint16_t flags;
	uint32_t id;
	char name[DNS_NAME_MAX];	/* op 1 */
	uint8_t addr[16];		/* op 2 */
	uint8_t alen;			/* 4 or 16 */
};

struct lookup_addr {
	uint8_t family;			/* 4 or 6 */
	uint8_t a[16];
};

struct lookup_rep {
	uint8_t op, status;
	uint32_t id, ttl;
	char name[DNS_NAME_MAX];
	size_t naddr;
	struct lookup_addr addr[LOOKUP_ADDR_MAX];
};

/* Build; the length, or -1 with EINVAL (a field out of range) or ENOSPC. */
int lookup_req_build(uint8_t *buf, size_t size, const struct lookup_req *q);
int lookup_rep_build(uint8_t *buf, size_t size, const struct lookup_rep *r);

/*
 * Parse the message at the start of buf: LOOKUP_DONE with *used set to its
 * length, LOOKUP_NEED when more bytes must come (*used: how many in all,
 * once the header is there; else LOOKUP_HDR), or -1 with EBADMSG.
 */
int lookup_req_parse(const uint8_t *buf, size_t len, struct lookup_req *q, size_t *used);
int lookup_rep_parse(const uint8_t *buf, size_t len, struct lookup_rep *r, size_t *used);

const char *lookup_status_name(int status);

/*
 * "ADDR[,ADDR...]": 1 to LOOKUP_LIST_MAX numeric IPv4 or IPv6 addresses,
 * the fixed answers of a `resolve NAME -> ADDR,...` rule (and of
 * libdivert's variables). The count, with the addresses in out when it is
 * not NULL (room for LOOKUP_LIST_MAX), or -1 when s is no such list.
 */
#define LOOKUP_LIST_MAX 16
int lookup_addr_list(const char *s, struct lookup_addr *out);

#endif
