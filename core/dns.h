/*
 * dns: DNS messages as RFC 1035 section 4 lays them out (header, question,
 * resource records, name compression of section 4.1.4), with the record
 * types of RFC 3596 (AAAA) and RFC 2782 (SRV). Only what the relay's
 * resolver listener needs: one question, answer records decoded into
 * structs, and messages built back from those structs.
 *
 * dns_parse() is a pure function from a buffer; names come out as text
 * ("www.example.com", no trailing dot, lower case kept as sent) and are
 * refused when a label holds a byte that a host name never has (a dot, a
 * space, a control character): such a message is FORMERR to us. EDNS0
 * (RFC 6891): the OPT record of the additional section is read, and
 * replies to a query that had one carry one.
 */
#ifndef SOCKGATE_DNS_H
#define SOCKGATE_DNS_H

#include <stddef.h>
#include <stdint.h>

#define DNS_NAME_MAX 254	/* text form with its NUL: 253 characters */
#define DNS_RR_MAX 64		/* answer records kept from one message (musl's getaddrinfo gives 48 at most) */
#define DNS_UDP_MAX 512		/* a reply over UDP without EDNS0 (RFC 1035 4.2.1) */
#define DNS_TCP_MAX 65535	/* a message over TCP: its length prefix is 16 bits */
/*
 * The payload size our OPT records advertise (queries to a server, and
 * replies): 1232, the size DNS Flag Day 2020 settled on, which fits an
 * IPv6 minimum MTU of 1280 less the headers, so nothing is fragmented.
 */
#define DNS_EDNS_PAYLOAD 1232

enum { DNS_A = 1, DNS_NS = 2, DNS_CNAME = 5, DNS_SOA = 6, DNS_PTR = 12, DNS_AAAA = 28, DNS_SRV = 33,
       DNS_OPT = 41, DNS_ANY = 255 };
enum { DNS_NOERROR = 0, DNS_FORMERR = 1, DNS_SERVFAIL = 2, DNS_NXDOMAIN = 3, DNS_NOTIMP = 4,
       DNS_REFUSED = 5, DNS_BADVERS = 16 /* extended, in the OPT record (RFC 6891 section 9) */ };
#define DNS_IN 1

struct dns_rr {
	char name[DNS_NAME_MAX];
	uint16_t type, class;
	uint32_t ttl;
	union {
		uint8_t a[4];
		uint8_t aaaa[16];
		char name[DNS_NAME_MAX];	/* CNAME, PTR, NS */
		struct {
			uint16_t prio, weight, port;
			char target[DNS_NAME_MAX];
		} srv;
	} d;
};

struct dns_msg {
	uint16_t id;
	unsigned qr:1, aa:1, tc:1, rd:1, ra:1;
	unsigned opt:1;			/* an OPT record in the additional section (EDNS0) */
	uint8_t opcode, rcode;		/* rcode: the header's 4 bits */
	uint8_t edns_version;		/* OPT: the version asked for */
	uint16_t edns_size;		/* OPT: the payload size advertised, as sent */
	uint16_t qdcount;		/* as sent; only the first question is kept */
	char qname[DNS_NAME_MAX];
	uint16_t qtype, qclass;
	size_t nan;			/* answers kept (types we know; others skipped) */
	size_t nan_all;			/* answer records in the message */
	uint32_t min_ttl;		/* smallest TTL among kept answers; 0 when none */
	struct dns_rr an[DNS_RR_MAX];
};

/*
 * Parse a message. Returns 0, or -1 with errno EBADMSG (malformed: short,
 * a name loops or runs past the end, a label with a byte no host name has,
 * a record's length disagrees with its type; in the authority and
 * additional sections, which are only walked, a record past the end unless
 * TC is set; more than one OPT record, one whose owner is not the root or
 * whose options overrun its data, RFC 6891 section 6.1) or EMSGSIZE (more than
 * DNS_RR_MAX answers of known types: the first ones are kept, the rest
 * dropped, and the message is still returned, with 0).
 */
int dns_parse(const uint8_t *buf, size_t len, struct dns_msg *m);

/* Text name to wire form; length written, or -1 with EINVAL / ENOSPC. */
int dns_name_wire(const char *name, uint8_t *out, size_t size);

/*
 * A query with RD set for one name and type; with edns (not 0), an OPT
 * record (RFC 6891 section 6.1.2) saying answers up to that many bytes fit
 * in a datagram. Returns the length, or -1 (EINVAL, ENOSPC).
 */
int dns_query_build(uint8_t *buf, size_t size, uint16_t id, const char *name, uint16_t type, uint16_t edns);

/*
 * A reply to m's question: header from m (id, opcode, rd), QR and RA set,
 * rcode, and the answers given. Records that do not fit in size are left
 * out and TC is set (RFC 2181 section 9). When m had an OPT record the
 * reply ends with one (RFC 6891 section 7), advertising DNS_EDNS_PAYLOAD
 * and holding the upper bits of an extended rcode (DNS_BADVERS). Returns
 * the length, or -1 with EINVAL (a name that cannot be written, an
 * extended rcode without OPT) or ENOSPC (not even the question fits).
 */
int dns_reply_build(uint8_t *buf, size_t size, const struct dns_msg *m, int rcode,
		    const struct dns_rr *an, size_t nan);

/*
 * DNS over TCP (RFC 1035 section 4.2.2, RFC 7766 section 8): every message
 * comes after its length, two bytes big-endian. Looks at what a stream has
 * delivered so far: 1 when a whole message is there (at buf + 2, *mlen
 * bytes long; it takes 2 + *mlen bytes of the stream), 0 when more must
 * arrive, or -1 with errno EBADMSG (a length shorter than a DNS header) or
 * EMSGSIZE (longer than max). Both errors show at once, from the prefix.
 */
int dns_tcp_frame(const uint8_t *buf, size_t len, size_t max, size_t *mlen);

/* "in-addr.arpa"/"ip6.arpa" name of an address (4 or 16 bytes). */
int dns_ptr_name(const uint8_t *a, size_t alen, char *out, size_t size);

/* The address of a reverse name; 4 or 16 (bytes written), or -1 (not one). */
int dns_ptr_addr(const char *name, uint8_t out[16]);

/*
 * Does a host name match a pattern? "*" matches any name; "*.example.com"
 * any name ending in ".example.com" (not example.com itself); otherwise the
 * names must be equal. ASCII case is ignored, as are trailing dots.
 */
int dns_name_match(const char *pattern, const char *name);

/* Is this text a host name we pass on (LDH labels, '_' allowed, 1-253)? */
int dns_name_ok(const char *name);

#endif
