/*
 * proxyv2: the PROXY protocol, version 2 (build and parse) and version 1
 * (parse, and build for peers that only read v1), as specified in haproxy's
 * doc/proxy-protocol.txt (2020/03/05): section 2.1 (v1), 2.2 (v2 binary
 * header), 2.2.1-2.2.8 (TLVs).
 *
 * Parsing is incremental: give it what has arrived so far and it answers
 * "done, the header was N bytes", "need at least N more bytes", or invalid.
 * A partial or malformed header is never reported as done.
 */
#ifndef SOCKGATE_PROXYV2_H
#define SOCKGATE_PROXYV2_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PROXY_V2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define PROXY_V2_SIGLEN 12
#define PROXY_V2_HDRLEN 16		/* signature + ver/cmd + fam + len */
#define PROXY_V1_MAXLEN 107		/* section 2.1: worst case with CRLF */
#define PROXY_MAXLEN (PROXY_V2_HDRLEN + 65535)

/* TLV types, section 2.2 */
#define PP2_TYPE_ALPN		0x01
#define PP2_TYPE_AUTHORITY	0x02
#define PP2_TYPE_CRC32C		0x03
#define PP2_TYPE_NOOP		0x04
#define PP2_TYPE_UNIQUE_ID	0x05
#define PP2_TYPE_SSL		0x20
#define PP2_TYPE_NETNS		0x30
#define PP2_TYPE_MIN_CUSTOM	0xE0	/* 2.2.8: 0xE0-0xEF for applications */
#define PP2_TYPE_SOCKGATE_BROKER 0xE0	/* a broker request (core/broker.h) */

enum proxy_cmd { PROXY_CMD_LOCAL = 0, PROXY_CMD_PROXY = 1 };

struct proxy_hdr {
	int version;			/* 1 or 2 */
	int command;			/* enum proxy_cmd */
	int socktype;			/* SOCK_STREAM, SOCK_DGRAM, or 0 (UNSPEC) */
	/* family AF_UNSPEC when the header carries no address (LOCAL, UNKNOWN) */
	struct sockaddr_storage src, dst;
	socklen_t srclen, dstlen;
	/* TLVs; lengths 0 when absent. Strings are NUL-terminated copies. */
	char authority[256];
	size_t authority_len;
	uint8_t unique_id[128];		/* spec: at most 128 bytes */
	size_t unique_id_len;
	char netns[256];
	size_t netns_len;
	int has_crc32c;			/* parse: a CRC32C TLV was present and matched */
};

/* proxyv2_parse results */
#define PROXY_DONE 0			/* *n = length of the whole header */
#define PROXY_NEED 1			/* *n = bytes still needed at least */

/*
 * Parse a v2 or v1 header at the start of buf. Returns PROXY_DONE or
 * PROXY_NEED as above, or -1 with errno EINVAL (not a PROXY header, or
 * malformed: bad signature, version, family, length, TLV past the end,
 * CRC32C mismatch). Never reads past len.
 */
int proxyv2_parse(const void *buf, size_t len, struct proxy_hdr *h, size_t *n);

/* Build options */
#define PROXYV2_CRC32C 0x1		/* add a CRC32C TLV */

/*
 * Build a v2 header from h (version ignored; AF_UNSPEC src/dst gives the
 * UNSPEC family; command LOCAL gives a LOCAL header). TLVs for the
 * non-empty authority, unique_id and netns fields. Returns the length, or
 * -1 with ENOSPC (buffer too small), EINVAL (mixed or unknown families,
 * a TLV too long).
 */
int proxyv2_build(void *buf, size_t size, const struct proxy_hdr *h, unsigned opts);

/* Build a v1 line ("PROXY TCP4 ..." or "PROXY UNKNOWN\r\n"); as above. */
int proxyv1_build(char *buf, size_t size, const struct proxy_hdr *h);

/*
 * The first TLV of type in a complete v2 header of n bytes (one that
 * proxyv2_parse() accepted): 0 with *val and *vlen pointing into buf, or -1
 * with ENOENT (none) or EINVAL (not a v2 header of n bytes).
 */
int proxyv2_tlv_find(const void *buf, size_t n, int type, const uint8_t **val, size_t *vlen);

/*
 * Append a TLV to a v2 header of len bytes built without PROXYV2_CRC32C,
 * fixing its length field. New length, or -1 with ENOSPC / EINVAL.
 */
int proxyv2_tlv_append(void *buf, size_t size, size_t len, int type, const void *v, size_t vlen);

/*
 * Fill h's NETNS TLV (section 2.2.8) with the network namespace of this
 * process, as /proc/self/ns/net names it ("net:[4026531992]"). 0, or -1
 * with errno (left empty).
 */
int proxyv2_set_netns(struct proxy_hdr *h);

/* CRC32C (Castagnoli), as the CRC32C TLV uses. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

#endif
