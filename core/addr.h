/*
 * addr: socket addresses as users write them, and prefix (CIDR) matching.
 *
 * Text forms: "1.2.3.4:80", "[2001:db8::1]:443", "unix:/path", "unix:@name"
 * (Linux abstract namespace), "vsock:CID:PORT". Every address is also kept
 * as a 16-byte IPv6 value where IPv4 is written in its ::ffff:0:0/96 form, so
 * one prefix table serves both families.
 */
#ifndef SOCKGATE_ADDR_H
#define SOCKGATE_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <linux/vm_sockets.h>

struct sg_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
		struct sockaddr_un un;
		struct sockaddr_vm vm;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
};

/* Longest text addr_format() writes, with its NUL (a full sun_path). */
#define ADDR_STRLEN (sizeof "unix:@" + sizeof ((struct sockaddr_un *)0)->sun_path + 8)

/* A prefix over the 16-byte form; IPv4 prefixes have plen >= 96. */
struct sg_prefix {
	uint8_t addr[16];
	uint8_t plen;
};

/*
 * Parse any text form above. Returns 0, or -1 with errno: EINVAL (not an
 * address), ENAMETOOLONG (a unix path that does not fit sun_path; never
 * truncated), ERANGE (port or CID out of range).
 */
int addr_parse(const char *s, struct sg_addr *out);

/* Parse "HOST:PORT" or "[V6]:PORT" with a numeric host only; as addr_parse. */
int addr_parse_inet(const char *s, struct sg_addr *out);

/* Fill a unix address; abstract names get the leading NUL. ENAMETOOLONG. */
int addr_unix(struct sg_addr *out, const char *path, int abstract);

/*
 * Format an address as addr_parse reads it. Returns the length written
 * (without NUL), or -1 with ENOSPC (buffer too small) or EAFNOSUPPORT.
 */
int addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size);

/* Format only the host part ("1.2.3.4", "2001:db8::1"), no brackets. */
int addr_format_host(const struct sockaddr *sa, char *buf, size_t size);

/* Port of an inet address in host order, or -1 for other families. */
int addr_port(const struct sockaddr *sa);

/*
 * The 16-byte form of an inet address: IPv4 becomes ::ffff:a.b.c.d.
 * Returns 0, or -1 with EAFNOSUPPORT.
 */
int addr_to16(const struct sockaddr *sa, uint8_t out[16]);

/* Is this 16-byte value an IPv4-mapped address (::ffff:0:0/96)? */
int addr_is_v4mapped(const uint8_t a[16]);

/*
 * Convert an inet address in place to family fam: IPv4 to its IPv4-mapped
 * IPv6 form or back; *len becomes the new family's size. 0, or -1 with
 * EAFNOSUPPORT (an IPv6 address that is not IPv4-mapped asked for as IPv4,
 * or not an inet family), ss unchanged then.
 */
int addr_to_family(struct sockaddr_storage *ss, socklen_t *len, int fam);

/* An IPv4-mapped IPv6 address becomes plain IPv4; anything else stays. */
void addr_unmap(struct sockaddr_storage *ss, socklen_t *len);

/*
 * Parse "10.0.0.0/8", "2001:db8::/32", "1.2.3.4" (a /32), "::1" (a /128),
 * "*" (/0, both families). IPv4 prefixes are stored as /96+n. The host bits
 * are cleared. Returns 0 or -1 with EINVAL.
 */
int prefix_parse(const char *s, struct sg_prefix *out);

/* Does the 16-byte address fall in the prefix? */
int prefix_match(const struct sg_prefix *p, const uint8_t a[16]);

/* Does the socket address fall in the prefix (IPv4 also in ::ffff: form)? */
int prefix_match_sa(const struct sg_prefix *p, const struct sockaddr *sa);

/* Format a prefix back ("10.0.0.0/8", "::/0" is written "*"). */
int prefix_format(const struct sg_prefix *p, char *buf, size_t size);

#endif
