/*
 * proxyv2: build and parse the PROXY protocol header that tells a server who
 * the real client was when a proxy (or sockgate) stands between them.
 * Follows haproxy's doc/proxy-protocol.txt (2020/03/05): section 2.1 for the
 * v1 text line, 2.2 for the v2 binary header, 2.2.1-2.2.8 for TLVs.
 *
 * The parser is incremental so a relay can call it on whatever has arrived:
 * it answers "done, N bytes", "need at least N more", or invalid, and it
 * checks every field it can see as early as it can, so garbage is turned
 * away after the first wrong byte rather than after a timeout. A header that
 * is ambiguous (two AUTHORITY TLVs, a NUL inside a name) is rejected instead
 * of guessed at, since downstream code trusts what it says.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "be.h"
#include "proxyv2.h"

/* Address block sizes by family nibble (section 2.2). */
#define V2_LEN_INET	12
#define V2_LEN_INET6	36
#define V2_LEN_UNIX	216
#define V2_UNIX_PATH	108

#define V1_SIG "PROXY "
#define V1_SIGLEN 6
/* The shortest complete v1 line, "PROXY UNKNOWN\r\n". */
#define V1_MINLEN 15

/* Castagnoli polynomial 0x1EDC6F41, reflected (0x82F63B78). */
static const uint32_t crc32c_table[256] = {
	0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
	0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
	0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
	0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
	0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
	0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
	0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
	0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
	0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
	0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
	0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
	0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
	0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
	0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
	0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
	0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
	0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
	0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
	0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
	0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
	0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
	0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
	0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
	0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
	0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
	0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
	0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
	0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
	0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
	0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
	0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
	0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
	0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
	0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
	0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
	0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
	0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
	0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
	0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
	0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
	0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
	0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
	0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

static int fail(int e)
{
	errno = e;
	return -1;
}

/*
 * The spec gives AF_UNIX addresses as 108 raw bytes. A path is written up to
 * its NUL; an abstract name (leading NUL) up to its last non-NUL byte, so an
 * abstract name that itself ends in NULs cannot travel intact; all zeros is
 * an unnamed socket.
 */
static socklen_t unix_decode(const uint8_t *b, struct sockaddr_storage *ss)
{
	struct sockaddr_un *un = (struct sockaddr_un *)ss;
	size_t n;

	un->sun_family = AF_UNIX;
	if (b[0]) {
		n = strnlen((const char *)b, V2_UNIX_PATH);
		memcpy(un->sun_path, b, n);
		n += n < V2_UNIX_PATH;		/* count the NUL when it fits */
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	n = V2_UNIX_PATH;
	while (n > 1 && b[n - 1] == 0)
		n--;
	if (n == 1)
		return (socklen_t)offsetof(struct sockaddr_un, sun_path);
	memcpy(un->sun_path, b, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

static int unix_encode(uint8_t *b, const struct sockaddr_storage *ss, socklen_t len)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)ss;
	size_t off = offsetof(struct sockaddr_un, sun_path), n;

	memset(b, 0, V2_UNIX_PATH);
	if (len == 0)
		len = sizeof *un;
	if (len <= off)
		return 0;			/* unnamed */
	n = len - off;
	if (n > V2_UNIX_PATH)
		return fail(EINVAL);
	if (un->sun_path[0])
		n = strnlen(un->sun_path, n);
	memcpy(b, un->sun_path, n);
	return 0;
}

/* A string TLV: at most 255 bytes, no NUL inside, one occurrence. */
static int tlv_string(char *dst, size_t *dstlen, const uint8_t *v, size_t l, int *seen)
{
	if (*seen || l > 255 || memchr(v, 0, l))
		return -1;
	*seen = 1;
	memcpy(dst, v, l);
	dst[l] = 0;
	*dstlen = l;
	return 0;
}

/*
 * TLVs between off and total (section 2.2.1 ff.). Unknown types are skipped
 * as the spec asks; the ones we keep must be unique and well-formed.
 */
static int parse_tlvs(const uint8_t *p, size_t off, size_t total, struct proxy_hdr *h)
{
	static const uint8_t zero4[4];
	int seen_auth = 0, seen_uid = 0, seen_ns = 0, seen_crc = 0;
	uint32_t c;
	size_t l;

	while (off < total) {
		if (total - off < 3)
			return -1;
		l = get16(p + off + 1);
		if (l > total - off - 3)
			return -1;
		const uint8_t *v = p + off + 3;
		switch (p[off]) {
		case PP2_TYPE_AUTHORITY:
			if (tlv_string(h->authority, &h->authority_len, v, l, &seen_auth) < 0)
				return -1;
			break;
		case PP2_TYPE_NETNS:
			if (tlv_string(h->netns, &h->netns_len, v, l, &seen_ns) < 0)
				return -1;
			break;
		case PP2_TYPE_UNIQUE_ID:
			if (seen_uid || l > sizeof h->unique_id)
				return -1;
			seen_uid = 1;
			memcpy(h->unique_id, v, l);
			h->unique_id_len = l;
			break;
		case PP2_TYPE_CRC32C:
			/* 2.2.2: computed over the whole header with this field zeroed */
			if (seen_crc || l != 4)
				return -1;
			seen_crc = 1;
			c = crc32c(0, p, off + 3);
			c = crc32c(c, zero4, 4);
			c = crc32c(c, v + 4, total - off - 7);
			if (c != get32(v))
				return -1;
			h->has_crc32c = 1;
			break;
		case PP2_TYPE_SSL:
			/* client (1) and verify (4) come first; sub-TLVs follow */
			if (l < 5)
				return -1;
			break;
		default:
			break;
		}
		off += 3 + l;
	}
	return 0;
}

/* Address block length for a family nibble, or -1 when unknown. */
static int v2_addrlen(int fam)
{
	switch (fam) {
	case 0: return 0;
	case 1: return V2_LEN_INET;
	case 2: return V2_LEN_INET6;
	case 3: return V2_LEN_UNIX;
	}
	return -1;
}

static int parse_v2(const uint8_t *p, size_t len, struct proxy_hdr *h, size_t *n)
{
	int cmd = -1, fam = 0, tr = 0, alen = 0;
	size_t total;

	/* check what has arrived before asking for more */
	if (len > 12) {
		if ((p[12] >> 4) != 2 || (p[12] & 0xf) > PROXY_CMD_PROXY)
			return fail(EINVAL);
		cmd = p[12] & 0xf;
	}
	if (len > 13) {
		fam = p[13] >> 4;
		tr = p[13] & 0xf;
		alen = v2_addrlen(fam);
		/* LOCAL: the receiver must ignore the family (2.2) */
		if (cmd == PROXY_CMD_PROXY && (alen < 0 || tr > 2))
			return fail(EINVAL);
	}
	if (len < PROXY_V2_HDRLEN) {
		*n = PROXY_V2_HDRLEN - len;
		return PROXY_NEED;
	}
	total = PROXY_V2_HDRLEN + get16(p + 14);
	if (cmd == PROXY_CMD_PROXY && total < PROXY_V2_HDRLEN + (size_t)alen)
		return fail(EINVAL);
	if (len < total) {
		*n = total - len;
		return PROXY_NEED;
	}

	h->version = 2;
	h->command = cmd;
	h->socktype = tr == 1 ? SOCK_STREAM : tr == 2 ? SOCK_DGRAM : 0;
	if (cmd == PROXY_CMD_LOCAL) {
		h->socktype = 0;
		/* a LOCAL header's block means nothing; TLVs are read when findable */
		if (alen >= 0 && total >= PROXY_V2_HDRLEN + (size_t)alen &&
		    parse_tlvs(p, PROXY_V2_HDRLEN + alen, total, h) < 0)
			return fail(EINVAL);
		*n = total;
		return PROXY_DONE;
	}

	const uint8_t *a = p + PROXY_V2_HDRLEN;
	if (fam == 1) {
		struct sockaddr_in *s = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *d = (struct sockaddr_in *)&h->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		h->srclen = h->dstlen = sizeof *s;
	} else if (fam == 2) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *d = (struct sockaddr_in6 *)&h->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		h->srclen = h->dstlen = sizeof *s;
	} else if (fam == 3) {
		h->srclen = unix_decode(a, &h->src);
		h->dstlen = unix_decode(a + V2_UNIX_PATH, &h->dst);
	}
	if (parse_tlvs(p, PROXY_V2_HDRLEN + alen, total, h) < 0)
		return fail(EINVAL);
	*n = total;
	return PROXY_DONE;
}

/* A v1 port: decimal, 0..65535, no sign, no leading zero. */
static int v1_port(const char *s, uint16_t *out)
{
	unsigned long v = 0;
	size_t i, l = strlen(s);

	if (l == 0 || l > 5 || (l > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < l; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = htons((uint16_t)v);
	return 0;
}

/*
 * Section 2.1: "PROXY" SP ("TCP4" | "TCP6") SP src SP dst SP sport SP dport
 * CRLF, or "PROXY UNKNOWN" and anything up to CRLF; at most 107 bytes.
 * Separators are exactly one space.
 */
static int parse_v1(const uint8_t *p, size_t len, struct proxy_hdr *h, size_t *n)
{
	char line[PROXY_V1_MAXLEN + 1], *f[6], *s;
	size_t scan = len < PROXY_V1_MAXLEN ? len : PROXY_V1_MAXLEN, i, nf;
	const uint8_t *lf = memchr(p, '\n', scan);
	int fam;

	if (!lf) {
		/* a CR may only be the last byte so far, waiting for its LF */
		if (len >= PROXY_V1_MAXLEN || memchr(p, 0, len) || memchr(p, '\r', len - 1))
			return fail(EINVAL);
		*n = len < V1_MINLEN ? V1_MINLEN - len : 1;
		return PROXY_NEED;
	}
	i = (size_t)(lf - p);			/* index of LF */
	if (i < 1 || p[i - 1] != '\r' || memchr(p, '\r', i - 1) || memchr(p, 0, i))
		return fail(EINVAL);
	memcpy(line, p, i - 1);
	line[i - 1] = 0;

	h->version = 1;
	h->command = PROXY_CMD_PROXY;
	h->socktype = SOCK_STREAM;
	s = line + V1_SIGLEN;
	if (!strncmp(s, "UNKNOWN", 7) && (s[7] == 0 || s[7] == ' ')) {
		*n = i + 1;
		return PROXY_DONE;
	}
	for (nf = 0; nf < 6; nf++) {
		f[nf] = s;
		s = strchr(s, ' ');
		if (!s)
			break;
		*s++ = 0;
	}
	if (nf != 4 || s)
		return fail(EINVAL);
	for (nf = 0; nf < 5; nf++)
		if (!*f[nf])
			return fail(EINVAL);
	if (!strcmp(f[0], "TCP4"))
		fam = AF_INET;
	else if (!strcmp(f[0], "TCP6"))
		fam = AF_INET6;
	else
		return fail(EINVAL);
	if (fam == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&h->src;
		struct sockaddr_in *b = (struct sockaddr_in *)&h->dst;
		a->sin_family = b->sin_family = AF_INET;
		if (inet_pton(AF_INET, f[1], &a->sin_addr) != 1 ||
		    inet_pton(AF_INET, f[2], &b->sin_addr) != 1 ||
		    v1_port(f[3], &a->sin_port) < 0 || v1_port(f[4], &b->sin_port) < 0)
			return fail(EINVAL);
		h->srclen = h->dstlen = sizeof *a;
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&h->src;
		struct sockaddr_in6 *b = (struct sockaddr_in6 *)&h->dst;
		a->sin6_family = b->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, f[1], &a->sin6_addr) != 1 ||
		    inet_pton(AF_INET6, f[2], &b->sin6_addr) != 1 ||
		    v1_port(f[3], &a->sin6_port) < 0 || v1_port(f[4], &b->sin6_port) < 0)
			return fail(EINVAL);
		h->srclen = h->dstlen = sizeof *a;
	}
	*n = i + 1;
	return PROXY_DONE;
}

int proxyv2_parse(const void *buf, size_t len, struct proxy_hdr *h, size_t *n)
{
	const uint8_t *p = buf;
	size_t k;

	memset(h, 0, sizeof *h);
	if (len == 0) {
		*n = V1_MINLEN;
		return PROXY_NEED;
	}
	if (p[0] == 'P') {
		k = len < V1_SIGLEN ? len : V1_SIGLEN;
		if (memcmp(p, V1_SIG, k))
			return fail(EINVAL);
		if (len < V1_SIGLEN) {
			*n = V1_MINLEN - len;
			return PROXY_NEED;
		}
		return parse_v1(p, len, h, n);
	}
	k = len < PROXY_V2_SIGLEN ? len : PROXY_V2_SIGLEN;
	if (memcmp(p, PROXY_V2_SIG, k))
		return fail(EINVAL);
	return parse_v2(p, len, h, n);
}

static int put_tlv(uint8_t *b, size_t size, size_t *off, int type, const void *v, size_t l)
{
	if (size - *off < 3 + l)
		return fail(ENOSPC);
	b[*off] = (uint8_t)type;
	put16(b + *off + 1, (unsigned)l);
	memcpy(b + *off + 3, v, l);
	*off += 3 + l;
	return 0;
}

int proxyv2_build(void *buf, size_t size, const struct proxy_hdr *h, unsigned opts)
{
	uint8_t *b = buf;
	int sf = h->src.ss_family, df = h->dst.ss_family, fam, tr, alen;
	size_t off;

	if (h->authority_len > 255 || h->netns_len > 255 ||
	    h->unique_id_len > sizeof h->unique_id)
		return fail(EINVAL);
	if (h->command == PROXY_CMD_LOCAL) {
		fam = 0;
		tr = 0;
	} else if (h->command == PROXY_CMD_PROXY) {
		if (sf != df)
			return fail(EINVAL);
		switch (sf) {
		case AF_UNSPEC: fam = 0; break;
		case AF_INET: fam = 1; break;
		case AF_INET6: fam = 2; break;
		case AF_UNIX: fam = 3; break;
		default: return fail(EINVAL);
		}
		switch (h->socktype) {
		case 0: tr = 0; break;
		case SOCK_STREAM: tr = 1; break;
		case SOCK_DGRAM: tr = 2; break;
		default: return fail(EINVAL);
		}
	} else {
		return fail(EINVAL);
	}
	alen = v2_addrlen(fam);
	if (size < PROXY_V2_HDRLEN + (size_t)alen)
		return fail(ENOSPC);

	memcpy(b, PROXY_V2_SIG, PROXY_V2_SIGLEN);
	b[12] = (uint8_t)(0x20 | h->command);
	b[13] = (uint8_t)(fam << 4 | tr);
	uint8_t *a = b + PROXY_V2_HDRLEN;
	if (fam == 1) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)&h->src;
		const struct sockaddr_in *d = (const struct sockaddr_in *)&h->dst;
		memcpy(a, &s->sin_addr, 4);
		memcpy(a + 4, &d->sin_addr, 4);
		memcpy(a + 8, &s->sin_port, 2);
		memcpy(a + 10, &d->sin_port, 2);
	} else if (fam == 2) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&h->src;
		const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&h->dst;
		memcpy(a, &s->sin6_addr, 16);
		memcpy(a + 16, &d->sin6_addr, 16);
		memcpy(a + 32, &s->sin6_port, 2);
		memcpy(a + 34, &d->sin6_port, 2);
	} else if (fam == 3) {
		if (unix_encode(a, &h->src, h->srclen) < 0 ||
		    unix_encode(a + V2_UNIX_PATH, &h->dst, h->dstlen) < 0)
			return -1;
	}
	off = PROXY_V2_HDRLEN + (size_t)alen;
	if (h->authority_len &&
	    put_tlv(b, size, &off, PP2_TYPE_AUTHORITY, h->authority, h->authority_len) < 0)
		return -1;
	if (h->unique_id_len &&
	    put_tlv(b, size, &off, PP2_TYPE_UNIQUE_ID, h->unique_id, h->unique_id_len) < 0)
		return -1;
	if (h->netns_len &&
	    put_tlv(b, size, &off, PP2_TYPE_NETNS, h->netns, h->netns_len) < 0)
		return -1;
	if (opts & PROXYV2_CRC32C) {
		static const uint8_t zero4[4];
		size_t at = off + 3;
		if (put_tlv(b, size, &off, PP2_TYPE_CRC32C, zero4, 4) < 0)
			return -1;
		put16(b + 14, (unsigned)(off - PROXY_V2_HDRLEN));
		put32(b + at, crc32c(0, b, off));
	}
	put16(b + 14, (unsigned)(off - PROXY_V2_HDRLEN));
	return (int)off;
}

/* Section 2.1. Writes a NUL after the line; returns the line's length. */
int proxyv1_build(char *buf, size_t size, const struct proxy_hdr *h)
{
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	int sf = h->src.ss_family, df = h->dst.ss_family, r;
	unsigned sp, dp;

	if (h->command == PROXY_CMD_PROXY && sf != df)
		return fail(EINVAL);
	/* v1 can only name TCP over IPv4 or IPv6; all else is UNKNOWN */
	if (h->command != PROXY_CMD_PROXY || (sf != AF_INET && sf != AF_INET6) ||
	    (h->socktype != 0 && h->socktype != SOCK_STREAM)) {
		r = snprintf(buf, size, "PROXY UNKNOWN\r\n");
	} else {
		if (sf == AF_INET) {
			const struct sockaddr_in *s = (const struct sockaddr_in *)&h->src;
			const struct sockaddr_in *d = (const struct sockaddr_in *)&h->dst;
			inet_ntop(AF_INET, &s->sin_addr, sa, sizeof sa);
			inet_ntop(AF_INET, &d->sin_addr, da, sizeof da);
			sp = ntohs(s->sin_port);
			dp = ntohs(d->sin_port);
		} else {
			const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&h->src;
			const struct sockaddr_in6 *d = (const struct sockaddr_in6 *)&h->dst;
			inet_ntop(AF_INET6, &s->sin6_addr, sa, sizeof sa);
			inet_ntop(AF_INET6, &d->sin6_addr, da, sizeof da);
			sp = ntohs(s->sin6_port);
			dp = ntohs(d->sin6_port);
		}
		r = snprintf(buf, size, "PROXY TCP%c %s %s %u %u\r\n",
		    sf == AF_INET ? '4' : '6', sa, da, sp, dp);
	}
	if (r < 0 || (size_t)r >= size)
		return fail(ENOSPC);
	return r;
}

/*
 * The first TLV of a type in a complete v2 header that proxyv2_parse()
 * accepted (n its length). Custom types (0xE0-0xEF, section 2.2.8) are
 * what callers look for here: the parser skips them as the spec asks.
 */
int proxyv2_tlv_find(const void *buf, size_t n, int type, const uint8_t **val, size_t *vlen)
{
	const uint8_t *p = buf;
	int alen;

	if (n < PROXY_V2_HDRLEN || memcmp(p, PROXY_V2_SIG, PROXY_V2_SIGLEN) ||
	    PROXY_V2_HDRLEN + (size_t)get16(p + 14) != n)
		return fail(EINVAL);
	/* a LOCAL header's family may be anything; its block still has that size */
	if ((alen = v2_addrlen(p[13] >> 4)) < 0 || n < PROXY_V2_HDRLEN + (size_t)alen)
		return fail(EINVAL);
	for (size_t off = PROXY_V2_HDRLEN + (size_t)alen; off < n;) {
		if (n - off < 3)
			return fail(EINVAL);
		size_t l = get16(p + off + 1);
		if (l > n - off - 3)
			return fail(EINVAL);
		if (p[off] == type) {
			*val = p + off + 3;
			*vlen = l;
			return 0;
		}
		off += 3 + l;
	}
	return fail(ENOENT);
}

/*
 * Append a TLV to a v2 header of len bytes that proxyv2_build() made
 * (without the CRC32C option: the checksum would no longer match).
 */
int proxyv2_tlv_append(void *buf, size_t size, size_t len, int type, const void *v, size_t vlen)
{
	uint8_t *b = buf;
	size_t off = len;

	if (len < PROXY_V2_HDRLEN || len > size || vlen > 65535 ||
	    off + 3 + vlen - PROXY_V2_HDRLEN > 65535)
		return fail(EINVAL);
	if (put_tlv(b, size, &off, type, v, vlen) < 0)
		return -1;
	put16(b + 14, (unsigned)(off - PROXY_V2_HDRLEN));
	return (int)off;
}

int proxyv2_set_netns(struct proxy_hdr *h)
{
	ssize_t n = readlink("/proc/self/ns/net", h->netns, sizeof h->netns - 1);

	if (n <= 0)
		return -1;
	h->netns[n] = 0;
	h->netns_len = (size_t)n;
	return 0;
}
