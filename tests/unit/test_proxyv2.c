/*
 * Unit tests for core/proxyv2: the examples of haproxy's
 * doc/proxy-protocol.txt (section 2.1 worst cases, 2.2 layouts), CRC32C
 * check values (RFC 3720 B.4), table-driven valid and malformed headers,
 * every prefix of every header fed to the incremental parser, build -> parse
 * round trips, and single-byte corruption of CRC-protected headers.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/un.h>
#include <arpa/inet.h>

#include "addr.h"
#include "proxyv2.h"
#include "unit.h"

#define SIG "0d0a0d0a000d0a515549540a"

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = 0;
	unsigned v;

	while (*s) {
		if (*s == ' ') {
			s++;
			continue;
		}
		sscanf(s, "%2x", &v);
		out[n++] = (uint8_t)v;
		s += 2;
	}
	return n;
}

/* a test string fit for one TAP line */
static const char *esc(const char *s)
{
	static char out[4][512];
	static int k;
	char *o = out[k++ & 3], *p = o;

	for (; *s && p < o + sizeof out[0] - 3; s++) {
		if (*s == '\r' || *s == '\n') {
			*p++ = '\\';
			*p++ = *s == '\r' ? 'r' : 'n';
		} else {
			*p++ = *s;
		}
	}
	*p = 0;
	return o;
}

/* "-" for no address, else addr_format's text */
static const char *fmt(const struct sockaddr_storage *ss, socklen_t len, char *buf)
{
	if (ss->ss_family == AF_UNSPEC)
		return "-";
	if (addr_format((const struct sockaddr *)ss, len, buf, ADDR_STRLEN) < 0)
		return "?";
	return buf;
}

static void set_addr(struct sockaddr_storage *ss, socklen_t *len, const char *text)
{
	struct sg_addr a;

	memset(ss, 0, sizeof *ss);
	*len = 0;
	if (!strcmp(text, "-"))
		return;
	if (addr_parse(text, &a) < 0) {
		printf("# bad test address %s\n", text);
		exit(2);
	}
	memcpy(ss, &a.u.ss, a.len);
	*len = a.len;
}

/*
 * Feed every prefix of buf[0..len): each must ask for more with a count that
 * does not reach past the header (want), or be rejected when bad is set;
 * never DONE early.
 */
static int prefixes_ok(const uint8_t *buf, size_t len, size_t want, int bad)
{
	struct proxy_hdr h;
	size_t i, n;
	int r;

	for (i = 0; i < len; i++) {
		n = 0;
		r = proxyv2_parse(buf, i, &h, &n);
		if (r == PROXY_DONE)
			return 0;
		if (r == PROXY_NEED && (n == 0 || (want && i + n > want)))
			return 0;
		if (r < 0 && !bad)
			return 0;
		if (r < 0 && errno != EINVAL)
			return 0;
	}
	return 1;
}

static void test_crc32c(void)
{
	uint8_t b[32];
	int i;

	CHECK(crc32c(0, "123456789", 9) == 0xe3069283, "crc32c check value of \"123456789\"");
	memset(b, 0, sizeof b);
	CHECK(crc32c(0, b, 32) == 0x8a9136aa, "crc32c of 32 zero bytes (RFC 3720 B.4)");
	memset(b, 0xff, sizeof b);
	CHECK(crc32c(0, b, 32) == 0x62a8ab43, "crc32c of 32 0xff bytes (RFC 3720 B.4)");
	for (i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	CHECK(crc32c(0, b, 32) == 0x46dd794e, "crc32c of 0..31 (RFC 3720 B.4)");
	for (i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	CHECK(crc32c(0, b, 32) == 0x113fdb5c, "crc32c of 31..0 (RFC 3720 B.4)");
	CHECK(crc32c(crc32c(0, "1234", 4), "56789", 5) == 0xe3069283, "crc32c chains across calls");
	CHECK(crc32c(0, "", 0) == 0, "crc32c of nothing is 0");
}

struct v1_ok { const char *in, *src, *dst; };

static const struct v1_ok v1_good[] = {
	/* section 2.1 examples and worst cases */
	{ "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", "192.168.0.1:56324", "192.168.0.11:443" },
	{ "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
	  "255.255.255.255:65535", "255.255.255.255:65535" },
	{ "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	  "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535" },
	{ "PROXY UNKNOWN\r\n", "-", "-" },
	{ "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
	  "-", "-" },
	{ "PROXY TCP6 2001:db8::1 ::1 0 80\r\n", "[2001:db8::1]:0", "[::1]:80" },
	{ "PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 1 2\r\n", "[::ffff:10.0.0.1]:1", "[::ffff:10.0.0.2]:2" },
	{ "PROXY TCP4 0.0.0.0 10.1.2.3 0 0\r\n", "0.0.0.0:0", "10.1.2.3:0" },
	{ "PROXY UNKNOWN whatever the sender could not say\r\n", "-", "-" },
};

static const char *const v1_bad[] = {
	"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",		/* a field missing */
	"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n",	/* one too many */
	"PROXY TCP4 1.2.3.4  5.6.7.8 80 443\r\n",	/* two spaces */
	"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 \r\n",	/* trailing space */
	"PROXY  TCP4 1.2.3.4 5.6.7.8 80 443\r\n",
	"PROXY TCP5 1.2.3.4 5.6.7.8 80 443\r\n",
	"PROXY tcp4 1.2.3.4 5.6.7.8 80 443\r\n",
	"proxy TCP4 1.2.3.4 5.6.7.8 80 443\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 80 65536\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",	/* leading zero */
	"PROXY TCP4 1.2.3.4 5.6.7.8 +80 443\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 -1 443\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 8a 443\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 100000 443\r\n",
	"PROXY TCP4 1.2.3.256 5.6.7.8 80 443\r\n",
	"PROXY TCP4 1.2.3 5.6.7.8 80 443\r\n",
	"PROXY TCP4 ::1 5.6.7.8 80 443\r\n",		/* family mismatch */
	"PROXY TCP6 1.2.3.4 ::1 80 443\r\n",
	"PROXY TCP6 [::1] ::1 80 443\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\n",	/* LF without CR */
	"PROXY TCP4 1.2.3.4 5.6.7.8 80\r443\r\n",	/* stray CR */
	"PROXY TCP4\r\n",
	"PROXY \r\n",
	"PROXY UNKNOWNX\r\n",
	"PROXY\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 80 443\r\r\n",
	"GET / HTTP/1.0\r\n\r\n",
	"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655350\r\n", /* 108 */
};

static void test_v1(void)
{
	char in[256], a[ADDR_STRLEN], b[ADDR_STRLEN];
	struct proxy_hdr h;
	size_t i, n, l;
	int r;

	for (i = 0; i < sizeof v1_good / sizeof *v1_good; i++) {
		const struct v1_ok *t = &v1_good[i];
		l = strlen(t->in);
		/* with payload behind it: the header ends at the CRLF */
		snprintf(in, sizeof in, "%sGET / HTTP/1.0\r\n", t->in);
		r = proxyv2_parse(in, strlen(in), &h, &n);
		CHECK(r == PROXY_DONE && n == l && h.version == 1 && h.command == PROXY_CMD_PROXY &&
		    h.socktype == SOCK_STREAM, "v1 %zu: done at %zu bytes", i, l);
		CHECK_STR(fmt(&h.src, h.srclen, a), t->src, "v1 %zu: source", i);
		CHECK_STR(fmt(&h.dst, h.dstlen, b), t->dst, "v1 %zu: destination", i);
		CHECK(prefixes_ok((const uint8_t *)t->in, l, l, 0), "v1 %zu: every prefix asks for more, within the line", i);
	}
	CHECK(strlen(v1_good[4].in) == PROXY_V1_MAXLEN, "the longest example is 107 bytes");

	for (i = 0; i < sizeof v1_bad / sizeof *v1_bad; i++) {
		l = strlen(v1_bad[i]);
		errno = 0;
		r = proxyv2_parse(v1_bad[i], l, &h, &n);
		CHECK(r == -1 && errno == EINVAL, "v1 malformed %zu rejected: %s", i, esc(v1_bad[i]));
		CHECK(prefixes_ok((const uint8_t *)v1_bad[i], l, 0, 1), "v1 malformed %zu: no prefix is taken", i);
	}

	/* no CRLF within 107 bytes */
	memset(in, 'x', sizeof in);
	memcpy(in, "PROXY UNKNOWN ", 14);
	r = proxyv2_parse(in, 106, &h, &n);
	CHECK(r == PROXY_NEED && n == 1, "v1 106 bytes without CRLF: need more");
	r = proxyv2_parse(in, 107, &h, &n);
	CHECK(r == -1 && errno == EINVAL, "v1 107 bytes without CRLF: invalid");
	r = proxyv2_parse(in, 200, &h, &n);
	CHECK(r == -1 && errno == EINVAL, "v1 200 bytes without CRLF: invalid");
	r = proxyv2_parse("PROXY TCP4 1.2.3.4\0", 19, &h, &n);
	CHECK(r == -1, "v1 NUL byte rejected before the CRLF arrives");
	r = proxyv2_parse("PROXY TCP4 1\r2", 14, &h, &n);
	CHECK(r == -1, "v1 CR not followed by LF rejected early");
	r = proxyv2_parse("PROXY TCP4 1\r", 13, &h, &n);
	CHECK(r == PROXY_NEED && n == 2, "v1 trailing CR: waits for LF");
	r = proxyv2_parse("", 0, &h, &n);
	CHECK(r == PROXY_NEED && n == 15, "nothing yet: need at least 15 (the shortest header)");
	r = proxyv2_parse("PRO", 3, &h, &n);
	CHECK(r == PROXY_NEED && n == 12, "\"PRO\": need 12 more");
	r = proxyv2_parse("X", 1, &h, &n);
	CHECK(r == -1 && errno == EINVAL, "first byte neither 'P' nor CR: invalid at once");
	r = proxyv2_parse("PROXI", 5, &h, &n);
	CHECK(r == -1, "\"PROXI\": invalid at the 5th byte");
}

struct v2_ok {
	const char *hex, *src, *dst;
	int command, socktype;
	const char *authority, *netns;
	size_t uid_len;
	int crc;
};

static const struct v2_ok v2_good[] = {
	/* TCP over IPv4, the layout of section 2.2 */
	{ SIG "21 11 000c c0a80001 c0a8000b dc04 01bb", "192.168.0.1:56324", "192.168.0.11:443",
	  PROXY_CMD_PROXY, SOCK_STREAM, "", "", 0, 0 },
	/* UDP over IPv6 */
	{ SIG "21 22 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 0035 1f90",
	  "[2001:db8::1]:53", "[2001:db8::2]:8080", PROXY_CMD_PROXY, SOCK_DGRAM, "", "", 0, 0 },
	/* LOCAL (health check): addresses ignored */
	{ SIG "20 00 0000", "-", "-", PROXY_CMD_LOCAL, 0, "", "", 0, 0 },
	/* LOCAL with a family we do not know and no block: still accepted */
	{ SIG "20 ff 0000", "-", "-", PROXY_CMD_LOCAL, 0, "", "", 0, 0 },
	/* LOCAL carrying an IPv4 block: ignored */
	{ SIG "20 11 000c 01020304 05060708 0001 0002", "-", "-", PROXY_CMD_LOCAL, 0, "", "", 0, 0 },
	/* PROXY over UNSPEC */
	{ SIG "21 00 0000", "-", "-", PROXY_CMD_PROXY, 0, "", "", 0, 0 },
	/* AUTHORITY TLV */
	{ SIG "21 11 001a c0a80001 c0a8000b dc04 01bb 02000b 6578616d706c652e636f6d",
	  "192.168.0.1:56324", "192.168.0.11:443", PROXY_CMD_PROXY, SOCK_STREAM, "example.com", "", 0, 0 },
	/* NOOP, an unknown type, an empty AUTHORITY, ALPN: skipped */
	{ SIG "21 11 001c c0a80001 c0a8000b dc04 01bb 040000 e00002abcd 020000 010002 6832",
	  "192.168.0.1:56324", "192.168.0.11:443", PROXY_CMD_PROXY, SOCK_STREAM, "", "", 0, 0 },
	/* UNIQUE_ID and NETNS */
	{ SIG "21 11 0018 c0a80001 c0a8000b dc04 01bb 050003 010203 300003 626c75",
	  "192.168.0.1:56324", "192.168.0.11:443", PROXY_CMD_PROXY, SOCK_STREAM, "", "blu", 3, 0 },
	/* CRC32C, value computed independently */
	{ SIG "21 11 0013 c0a80001 c0a8000b dc04 01bb 030004 1c1ae9c6",
	  "192.168.0.1:56324", "192.168.0.11:443", PROXY_CMD_PROXY, SOCK_STREAM, "", "", 0, 1 },
	/* SSL TLV (client 1, verify 0) with a VERSION sub-TLV */
	{ SIG "21 11 0019 c0a80001 c0a8000b dc04 01bb 20000a 01 00000000 210002 7631",
	  "192.168.0.1:56324", "192.168.0.11:443", PROXY_CMD_PROXY, SOCK_STREAM, "", "", 0, 0 },
};

struct v2_bad { const char *hex, *why; };

static const struct v2_bad v2_bad[] = {
	{ "0d0a0d0a000d0a515549540b 21 11 000c 01020304 05060708 0001 0002", "last signature byte" },
	{ "0d0a0d0a010d0a515549540a 21 11 000c 01020304 05060708 0001 0002", "NUL of the signature" },
	{ SIG "11 11 000c 01020304 05060708 0001 0002", "version 1 in a binary header" },
	{ SIG "31 11 000c 01020304 05060708 0001 0002", "version 3" },
	{ SIG "01 11 000c 01020304 05060708 0001 0002", "version 0" },
	{ SIG "22 11 000c 01020304 05060708 0001 0002", "command 2" },
	{ SIG "2f 11 000c 01020304 05060708 0001 0002", "command 15" },
	{ SIG "21 41 000c 01020304 05060708 0001 0002", "family 4" },
	{ SIG "21 f1 000c 01020304 05060708 0001 0002", "family 15" },
	{ SIG "21 13 000c 01020304 05060708 0001 0002", "transport 3" },
	{ SIG "21 11 000b 01020304 05060708 0001 00", "IPv4 block cut short" },
	{ SIG "21 21 000c 01020304 05060708 0001 0002", "IPv6 with a 12-byte block" },
	{ SIG "21 31 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 0035 1f90",
	  "UNIX with a 36-byte block" },
	{ SIG "21 11 0011 01020304 05060708 0001 0002 020005 6162", "TLV value past the end" },
	{ SIG "21 11 000e 01020304 05060708 0001 0002 0200", "TLV header cut short" },
	{ SIG "21 11 000d 01020304 05060708 0001 0002 02", "one stray byte after the block" },
	{ SIG "21 11 0013 c0a80001 c0a8000b dc04 01bb 030004 1c1ae9c7", "CRC32C off by one bit" },
	{ SIG "21 11 0013 c0a80001 c0a8000b dc04 01bb 030004 00000000", "CRC32C zero" },
	{ SIG "21 11 0012 c0a80001 c0a8000b dc04 01bb 030003 1c1ae9", "CRC32C of 3 bytes" },
	{ SIG "21 11 0013 c0a80001 c0a8000b dc04 01bc 030004 1c1ae9c6", "CRC32C over a changed port" },
	{ SIG "21 11 0012 01020304 05060708 0001 0002 020003 610062", "NUL inside AUTHORITY" },
	{ SIG "21 11 0014 01020304 05060708 0001 0002 020001 61 020001 62", "two AUTHORITY TLVs" },
	{ SIG "21 11 0014 01020304 05060708 0001 0002 300001 61 300001 62", "two NETNS TLVs" },
	{ SIG "21 11 0014 01020304 05060708 0001 0002 050001 61 050001 62", "two UNIQUE_ID TLVs" },
	{ SIG "21 11 0013 01020304 05060708 0001 0002 200004 01000000", "SSL TLV shorter than 5" },
	{ SIG "20 11 000e 01020304 05060708 0001 0002 0200", "LOCAL with a broken TLV" },
};

static void test_v2(void)
{
	uint8_t buf[1024];
	char a[ADDR_STRLEN], b[ADDR_STRLEN];
	struct proxy_hdr h;
	size_t i, l, n;
	int r;

	for (i = 0; i < sizeof v2_good / sizeof *v2_good; i++) {
		const struct v2_ok *t = &v2_good[i];
		l = unhex(t->hex, buf);
		memcpy(buf + l, "payload", 7);
		r = proxyv2_parse(buf, l + 7, &h, &n);
		CHECK(r == PROXY_DONE && n == l && h.version == 2, "v2 %zu: done at %zu bytes", i, l);
		CHECK(h.command == t->command && h.socktype == t->socktype,
		    "v2 %zu: command %d socktype %d", i, h.command, h.socktype);
		CHECK_STR(fmt(&h.src, h.srclen, a), t->src, "v2 %zu: source", i);
		CHECK_STR(fmt(&h.dst, h.dstlen, b), t->dst, "v2 %zu: destination", i);
		CHECK(!strcmp(h.authority, t->authority) && h.authority_len == strlen(t->authority) &&
		    !strcmp(h.netns, t->netns) && h.unique_id_len == t->uid_len && h.has_crc32c == t->crc,
		    "v2 %zu: TLVs authority '%s' netns '%s' uid %zu crc %d", i, h.authority, h.netns,
		    h.unique_id_len, h.has_crc32c);
		CHECK(prefixes_ok(buf, l, l, 0), "v2 %zu: every prefix asks for more, within the header", i);
	}
	for (i = 0; i < sizeof v2_bad / sizeof *v2_bad; i++) {
		l = unhex(v2_bad[i].hex, buf);
		errno = 0;
		r = proxyv2_parse(buf, l, &h, &n);
		CHECK(r == -1 && errno == EINVAL, "v2 malformed rejected: %s", v2_bad[i].why);
		CHECK(prefixes_ok(buf, l, 0, 1), "v2 malformed, no prefix taken: %s", v2_bad[i].why);
	}

	/* early answers */
	l = unhex(SIG "21 11 000c", buf);
	r = proxyv2_parse(buf, 12, &h, &n);
	CHECK(r == PROXY_NEED && n == 4, "v2 signature only: need 4 more");
	r = proxyv2_parse(buf, 16, &h, &n);
	CHECK(r == PROXY_NEED && n == 12, "v2 fixed part: need the 12-byte block");
	l = unhex(SIG "41", buf);
	r = proxyv2_parse(buf, l, &h, &n);
	CHECK(r == -1, "v2 bad version seen at byte 13, before the length");
	l = unhex(SIG "21 51", buf);
	r = proxyv2_parse(buf, l, &h, &n);
	CHECK(r == -1, "v2 bad family seen at byte 14");
	l = unhex(SIG "21 11 0000", buf);
	r = proxyv2_parse(buf, l, &h, &n);
	CHECK(r == -1, "v2 length below the block size seen at byte 16");
	l = unhex(SIG "21 11 ffff", buf);
	r = proxyv2_parse(buf, l, &h, &n);
	CHECK(r == PROXY_NEED && n == 65535, "v2 largest length: need 65535 more");
	r = proxyv2_parse("\r\n\r\n\0\r\nQUIT\nX", 13, &h, &n);
	CHECK(r == -1, "v2 garbage after the signature");
	r = proxyv2_parse("\r\n\r\n\0\r\nQUIX", 12, &h, &n);
	CHECK(r == -1, "v2 signature wrong in the 12th byte");
	r = proxyv2_parse("\r\n\r", 3, &h, &n);
	CHECK(r == PROXY_NEED && n == 13, "v2 3 bytes of signature: need 13");

	/* oversized string TLVs */
	l = unhex(SIG "21 11 010f 01020304 05060708 0001 0002 020100", buf);
	memset(buf + l, 'a', 256);
	r = proxyv2_parse(buf, l + 256, &h, &n);
	CHECK(r == -1, "AUTHORITY of 256 bytes rejected");
	l = unhex(SIG "21 11 010e 01020304 05060708 0001 0002 0200ff", buf);
	memset(buf + l, 'a', 255);
	r = proxyv2_parse(buf, l + 255, &h, &n);
	CHECK(r == PROXY_DONE && h.authority_len == 255 && strlen(h.authority) == 255,
	    "AUTHORITY of 255 bytes kept whole");
	l = unhex(SIG "21 11 0090 01020304 05060708 0001 0002 050081", buf);
	memset(buf + l, 7, 129);
	r = proxyv2_parse(buf, l + 129, &h, &n);
	CHECK(r == -1, "UNIQUE_ID of 129 bytes rejected");
	l = unhex(SIG "21 11 008f 01020304 05060708 0001 0002 050080", buf);
	memset(buf + l, 7, 128);
	r = proxyv2_parse(buf, l + 128, &h, &n);
	CHECK(r == PROXY_DONE && h.unique_id_len == 128 && h.unique_id[127] == 7, "UNIQUE_ID of 128 bytes kept");
}

/* build -> parse must give back what went in */
struct rt { const char *src, *dst; int cmd, socktype; const char *auth, *ns, *uid; unsigned opts; };

static const struct rt rts[] = {
	{ "10.1.2.3:80", "192.0.2.1:40000", PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", 0 },
	{ "10.1.2.3:80", "192.0.2.1:40000", PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", PROXYV2_CRC32C },
	{ "[2001:db8::7]:443", "[::1]:1", PROXY_CMD_PROXY, SOCK_DGRAM, "www.example.org", "", "", PROXYV2_CRC32C },
	{ "[::ffff:1.2.3.4]:5", "[::ffff:6.7.8.9]:10", PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", 0 },
	{ "unix:/run/a.sock", "unix:/run/b/c.sock", PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", 0 },
	{ "unix:@abstract-name", "unix:/x", PROXY_CMD_PROXY, SOCK_DGRAM, "", "", "", PROXYV2_CRC32C },
	{ "-", "-", PROXY_CMD_PROXY, 0, "", "", "", 0 },
	{ "-", "-", PROXY_CMD_LOCAL, 0, "", "", "", PROXYV2_CRC32C },
	{ "1.1.1.1:1", "2.2.2.2:2", PROXY_CMD_PROXY, SOCK_STREAM, "a.example", "blue", "\x01\x02\x03", PROXYV2_CRC32C },
	{ "1.1.1.1:65535", "2.2.2.2:0", PROXY_CMD_PROXY, 0, "", "netns-x", "", 0 },
};

static void fill(struct proxy_hdr *h, const struct rt *t)
{
	memset(h, 0, sizeof *h);
	h->command = t->cmd;
	h->socktype = t->socktype;
	set_addr(&h->src, &h->srclen, t->src);
	set_addr(&h->dst, &h->dstlen, t->dst);
	h->authority_len = strlen(t->auth);
	memcpy(h->authority, t->auth, h->authority_len);
	h->netns_len = strlen(t->ns);
	memcpy(h->netns, t->ns, h->netns_len);
	h->unique_id_len = strlen(t->uid);
	memcpy(h->unique_id, t->uid, h->unique_id_len);
}

static void test_roundtrip(void)
{
	uint8_t buf[2048];
	char a[ADDR_STRLEN], b[ADDR_STRLEN], line[256];
	struct proxy_hdr h, g;
	size_t i, n, k;
	int l, r, bad;

	for (i = 0; i < sizeof rts / sizeof *rts; i++) {
		const struct rt *t = &rts[i];
		fill(&h, t);
		l = proxyv2_build(buf, sizeof buf, &h, t->opts);
		CHECK(l >= PROXY_V2_HDRLEN, "round trip %zu: built %d bytes", i, l);
		if (l < 0)
			continue;
		r = proxyv2_parse(buf, (size_t)l, &g, &n);
		CHECK(r == PROXY_DONE && n == (size_t)l, "round trip %zu: parsed whole", i);
		CHECK(g.command == t->cmd && g.socktype == (t->cmd == PROXY_CMD_LOCAL ? 0 : t->socktype),
		    "round trip %zu: command and socktype", i);
		CHECK_STR(fmt(&g.src, g.srclen, a), t->cmd == PROXY_CMD_LOCAL ? "-" : t->src, "round trip %zu: source", i);
		CHECK_STR(fmt(&g.dst, g.dstlen, b), t->cmd == PROXY_CMD_LOCAL ? "-" : t->dst, "round trip %zu: destination", i);
		CHECK(!strcmp(g.authority, t->auth) && !strcmp(g.netns, t->ns) &&
		    g.unique_id_len == strlen(t->uid) && !memcmp(g.unique_id, t->uid, g.unique_id_len) &&
		    g.has_crc32c == !!(t->opts & PROXYV2_CRC32C), "round trip %zu: TLVs", i);

		/* every size short of the header: ENOSPC, never a partial header */
		for (k = 0, bad = 0; k < (size_t)l; k++)
			if (proxyv2_build(buf + 1024, k, &h, t->opts) != -1 || errno != ENOSPC)
				bad++;
		CHECK(bad == 0, "round trip %zu: all %d too-small buffers give ENOSPC", i, l);

		if (!(t->opts & PROXYV2_CRC32C))
			continue;
		/*
		 * corrupt one byte at a time: never accepted as CRC-checked (a
		 * flipped TLV type byte turns the CRC TLV into another TLV, and a
		 * header without one is valid: receivers that need it check
		 * has_crc32c)
		 */
		for (k = 0, bad = 0; k < (size_t)l; k++) {
			static const uint8_t flips[] = { 0x01, 0x80, 0xff };
			for (size_t f = 0; f < sizeof flips; f++) {
				buf[k] ^= flips[f];
				if (proxyv2_parse(buf, (size_t)l, &g, &n) == PROXY_DONE && g.has_crc32c)
					bad++;
				buf[k] ^= flips[f];
			}
		}
		CHECK(bad == 0, "round trip %zu: no single corrupted byte of %d passes the CRC", i, l);
	}

	/* v1 build -> parse */
	static const char *const v1rt[][3] = {
		{ "192.0.2.1:4000", "10.0.0.1:80", "PROXY TCP4 192.0.2.1 10.0.0.1 4000 80\r\n" },
		{ "[2001:db8::1]:65535", "[::1]:443", "PROXY TCP6 2001:db8::1 ::1 65535 443\r\n" },
		{ "unix:/a", "unix:/b", "PROXY UNKNOWN\r\n" },
		{ "-", "-", "PROXY UNKNOWN\r\n" },
	};
	for (i = 0; i < sizeof v1rt / sizeof *v1rt; i++) {
		struct rt t = { v1rt[i][0], v1rt[i][1], PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", 0 };
		fill(&h, &t);
		l = proxyv1_build(line, sizeof line, &h);
		CHECK(l == (int)strlen(v1rt[i][2]) && !strcmp(line, v1rt[i][2]), "v1 build %zu: %s", i, esc(v1rt[i][2]));
		r = proxyv2_parse(line, strlen(line), &g, &n);
		CHECK(r == PROXY_DONE && n == strlen(line), "v1 build %zu parses back", i);
		if (strcmp(v1rt[i][2], "PROXY UNKNOWN\r\n")) {
			CHECK_STR(fmt(&g.src, g.srclen, a), v1rt[i][0], "v1 build %zu: source", i);
			CHECK_STR(fmt(&g.dst, g.dstlen, b), v1rt[i][1], "v1 build %zu: destination", i);
		}
		for (k = 0, bad = 0; k <= strlen(v1rt[i][2]); k++)
			if (proxyv1_build(line, k, &h) != -1 || errno != ENOSPC)
				bad++;
		CHECK(bad == 0, "v1 build %zu: every buffer without room for line and NUL gives ENOSPC", i);
	}
	struct rt lc = { "1.2.3.4:1", "5.6.7.8:2", PROXY_CMD_LOCAL, SOCK_STREAM, "", "", "", 0 };
	fill(&h, &lc);
	l = proxyv1_build(line, sizeof line, &h);
	CHECK(l == 15 && !strcmp(line, "PROXY UNKNOWN\r\n"), "v1 build of LOCAL is UNKNOWN");
}

static void test_build_errors(void)
{
	uint8_t buf[1024];
	char line[128];
	struct proxy_hdr h;
	struct rt mixed = { "1.2.3.4:1", "[::1]:2", PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", 0 };
	struct rt ok = { "1.2.3.4:1", "5.6.7.8:2", PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", 0 };
	struct rt half = { "1.2.3.4:1", "-", PROXY_CMD_PROXY, SOCK_STREAM, "", "", "", 0 };

	fill(&h, &mixed);
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: mixed families EINVAL");
	CHECK(proxyv1_build(line, sizeof line, &h) == -1 && errno == EINVAL, "v1 build: mixed families EINVAL");
	fill(&h, &half);
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: one address missing EINVAL");
	fill(&h, &ok);
	h.src.ss_family = h.dst.ss_family = AF_PACKET;
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: AF_PACKET EINVAL");
	fill(&h, &ok);
	h.socktype = SOCK_RAW;
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: SOCK_RAW EINVAL");
	fill(&h, &ok);
	h.command = 2;
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: command 2 EINVAL");
	fill(&h, &ok);
	h.authority_len = 256;
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: AUTHORITY of 256 EINVAL");
	fill(&h, &ok);
	h.unique_id_len = 129;
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: UNIQUE_ID of 129 EINVAL");
	fill(&h, &ok);
	h.netns_len = 300;
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "v2 build: NETNS of 300 EINVAL");

	/* the largest header we can make still parses */
	fill(&h, &ok);
	h.authority_len = 255;
	memset(h.authority, 'x', 255);
	h.netns_len = 255;
	memset(h.netns, 'y', 255);
	h.unique_id_len = 128;
	memset(h.unique_id, 'z', 128);
	int l = proxyv2_build(buf, sizeof buf, &h, PROXYV2_CRC32C);
	size_t n;
	struct proxy_hdr g;
	CHECK(l == 16 + 12 + 258 + 258 + 131 + 7, "largest IPv4 header is %d bytes", l);
	CHECK(l > 0 && proxyv2_parse(buf, (size_t)l, &g, &n) == PROXY_DONE && g.has_crc32c &&
	    g.authority_len == 255 && g.netns_len == 255 && g.unique_id_len == 128, "and parses back whole");
}

static void test_unix_forms(void)
{
	uint8_t buf[512];
	struct proxy_hdr h, g;
	struct sockaddr_un *un;
	size_t n;
	int l;

	/* a path of exactly 108 bytes has no NUL in the block */
	memset(&h, 0, sizeof h);
	h.command = PROXY_CMD_PROXY;
	h.socktype = SOCK_STREAM;
	un = (struct sockaddr_un *)&h.src;
	un->sun_family = AF_UNIX;
	memset(un->sun_path, 'p', sizeof un->sun_path);
	un->sun_path[0] = '/';
	h.srclen = sizeof *un;
	un = (struct sockaddr_un *)&h.dst;
	un->sun_family = AF_UNIX;	/* unnamed */
	h.dstlen = offsetof(struct sockaddr_un, sun_path);
	l = proxyv2_build(buf, sizeof buf, &h, 0);
	CHECK(l == 16 + 216, "UNIX header is 232 bytes");
	CHECK(proxyv2_parse(buf, (size_t)l, &g, &n) == PROXY_DONE, "UNIX header parses");
	un = (struct sockaddr_un *)&g.src;
	CHECK(g.src.ss_family == AF_UNIX && g.srclen == sizeof *un && un->sun_path[107] == 'p',
	    "108-byte path survives whole (len %u)", (unsigned)g.srclen);
	CHECK(g.dst.ss_family == AF_UNIX && g.dstlen == offsetof(struct sockaddr_un, sun_path),
	    "unnamed socket stays unnamed");
	un = (struct sockaddr_un *)&h.dst;
	memcpy(un->sun_path, "\0ab", 3);
	h.dstlen = offsetof(struct sockaddr_un, sun_path) + 3;
	l = proxyv2_build(buf, sizeof buf, &h, 0);
	CHECK(proxyv2_parse(buf, (size_t)l, &g, &n) == PROXY_DONE &&
	    g.dstlen == offsetof(struct sockaddr_un, sun_path) + 3 &&
	    !memcmp(((struct sockaddr_un *)&g.dst)->sun_path, "\0ab", 3), "abstract name \\0ab kept");
	h.dstlen = sizeof *un + 1;
	CHECK(proxyv2_build(buf, sizeof buf, &h, 0) == -1 && errno == EINVAL, "address length past sun_path EINVAL");
}

static void test_netns(void)
{
	struct proxy_hdr h, g;
	unsigned char buf[512];
	char want[256];
	size_t n;
	ssize_t l = readlink("/proc/self/ns/net", want, sizeof want - 1);

	memset(&h, 0, sizeof h);
	h.command = PROXY_CMD_LOCAL;
	CHECK(l > 0 && proxyv2_set_netns(&h) == 0 && h.netns_len == (size_t)l &&
	      !memcmp(h.netns, want, (size_t)l) && h.netns[l] == 0, "NETNS TLV names this process's namespace");
	int len = proxyv2_build(buf, sizeof buf, &h, 0);
	memset(&g, 0, sizeof g);
	CHECK(len > 0 && proxyv2_parse(buf, (size_t)len, &g, &n) == PROXY_DONE && g.netns_len == h.netns_len &&
	      !strcmp(g.netns, h.netns), "and comes back from a built header");
}

int main(void)
{
	test_netns();
	test_crc32c();
	test_v1();
	test_v2();
	test_roundtrip();
	test_build_errors();
	test_unix_forms();
	return unit_done();
}
