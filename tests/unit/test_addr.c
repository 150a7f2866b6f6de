/*
 * Unit tests for core/addr: every text form parsed and printed back, the
 * sun_path limit at its exact edge, prefixes and their matching (IPv4 also
 * in its ::ffff: form), and bad input.
 */
#include <errno.h>
#include <string.h>

#include "addr.h"
#include "unit.h"

static void roundtrip(const char *in, const char *want)
{
	struct sg_addr a;
	char buf[ADDR_STRLEN];
	int ok = addr_parse(in, &a) == 0 && addr_format(&a.u.sa, a.len, buf, sizeof buf) > 0;
	CHECK_STR(ok ? buf : "(failed)", want, "parse and format %s", in);
}

static void bad(const char *in, int err)
{
	struct sg_addr a;
	errno = 0;
	CHECK(addr_parse(in, &a) == -1 && errno == err, "'%s' is refused with %s", in, strerror(err));
}

int main(void)
{
	roundtrip("1.2.3.4:80", "1.2.3.4:80");
	roundtrip("[2001:db8::1]:443", "[2001:db8::1]:443");
	roundtrip("[::ffff:10.0.0.1]:53", "[::ffff:10.0.0.1]:53");
	roundtrip("0.0.0.0:0", "0.0.0.0:0");
	roundtrip("255.255.255.255:65535", "255.255.255.255:65535");
	roundtrip("unix:/run/x.sock", "unix:/run/x.sock");
	roundtrip("unix:@sockgate", "unix:@sockgate");
	roundtrip("vsock:3:5000", "vsock:3:5000");
	roundtrip("vsock:4294967295:1", "vsock:4294967295:1");

	bad("1.2.3.4", EINVAL);
	bad("1.2.3.4:", EINVAL);
	bad("1.2.3.4:65536", ERANGE);
	bad("1.2.3:80", EINVAL);
	bad("[::1:80", EINVAL);
	bad("[::1]80", EINVAL);
	bad("::1:80", EINVAL);
	bad("example.com:80", EINVAL);
	bad("unix:", EINVAL);
	bad("unix:@", EINVAL);
	bad("vsock:3", EINVAL);
	bad("vsock:x:1", EINVAL);
	bad("vsock:4294967296:1", ERANGE);
	bad("1.2.3.4:-1", EINVAL);

	/* sun_path is 108 bytes: a path keeps its NUL inside, so 107 fits */
	char path[200] = "unix:";
	memset(path + 5, 'p', 107);
	path[5 + 107] = 0;
	path[5] = '/';
	struct sg_addr a;
	CHECK(addr_parse(path, &a) == 0 && a.len == 2 + 108, "a 107-byte path fits, with its NUL");
	path[5 + 107] = 'p';
	path[5 + 108] = 0;
	bad(path, ENAMETOOLONG);
	char abs[200] = "unix:@";
	memset(abs + 6, 'a', 107);
	abs[6 + 107] = 0;
	CHECK(addr_parse(abs, &a) == 0 && a.len == 2 + 108 && a.u.un.sun_path[0] == 0,
	      "a 107-byte abstract name fits after its leading NUL");
	abs[6 + 107] = 'a';
	abs[6 + 108] = 0;
	bad(abs, ENAMETOOLONG);

	char small[8];
	addr_parse("1.2.3.4:80", &a);
	errno = 0;
	CHECK(addr_format(&a.u.sa, a.len, small, sizeof small) == -1 && errno == ENOSPC, "format into a small buffer");
	CHECK(addr_port(&a.u.sa) == 80, "addr_port");
	addr_parse("unix:/x", &a);
	CHECK(addr_port(&a.u.sa) == -1, "no port for a unix address");

	struct sg_prefix p;
	uint8_t v[16];
	struct sg_addr q;
	CHECK(prefix_parse("10.0.0.0/8", &p) == 0 && p.plen == 104, "IPv4 /8 is stored as /104");
	addr_parse("10.200.0.1:1", &q);
	CHECK(prefix_match_sa(&p, &q.u.sa), "10.200.0.1 in 10.0.0.0/8");
	addr_parse("[::ffff:10.200.0.1]:1", &q);
	CHECK(prefix_match_sa(&p, &q.u.sa), "::ffff:10.200.0.1 in 10.0.0.0/8");
	addr_parse("11.0.0.1:1", &q);
	CHECK(!prefix_match_sa(&p, &q.u.sa), "11.0.0.1 not in 10.0.0.0/8");
	CHECK(prefix_parse("10.1.2.3/8", &p) == 0 && p.addr[13] == 0 && p.addr[15] == 0, "host bits are cleared");
	CHECK(prefix_parse("2001:db8::/33", &p) == 0 && p.plen == 33, "IPv6 /33");
	addr_parse("[2001:db8:7fff::1]:1", &q);
	CHECK(prefix_match_sa(&p, &q.u.sa), "2001:db8:7fff::1 in 2001:db8::/33");
	addr_parse("[2001:db8:8000::1]:1", &q);
	CHECK(!prefix_match_sa(&p, &q.u.sa), "2001:db8:8000::1 not in 2001:db8::/33 (the odd bit)");
	CHECK(prefix_parse("*", &p) == 0 && p.plen == 0, "* is /0");
	addr_parse("[fe80::1]:1", &q);
	CHECK(prefix_match_sa(&p, &q.u.sa), "* matches IPv6");
	addr_parse("1.1.1.1:1", &q);
	CHECK(prefix_match_sa(&p, &q.u.sa), "* matches IPv4");
	CHECK(prefix_parse("0.0.0.0/0", &p) == 0 && p.plen == 96, "0.0.0.0/0 is IPv4 only (/96)");
	addr_parse("[fe80::1]:1", &q);
	CHECK(!prefix_match_sa(&p, &q.u.sa), "0.0.0.0/0 does not match IPv6");
	addr_to16(&q.u.sa, v);
	CHECK(!addr_is_v4mapped(v), "fe80::1 is not v4-mapped");
	addr_parse("unix:/x", &q);
	CHECK(!prefix_match_sa(&p, &q.u.sa), "a unix address matches no prefix");
	const char *badp[] = { "10.0.0.0/33", "2001:db8::/129", "10.0.0.0/", "10.0.0.0/x", "/8", "", "1.2.3.4/8/8",
			       "10.0.0.0/-1" };
	for (size_t i = 0; i < sizeof badp / sizeof badp[0]; i++) {
		errno = 0;
		CHECK(prefix_parse(badp[i], &p) == -1 && errno == EINVAL, "prefix '%s' is refused", badp[i]);
	}
	char buf[64];
	const char *fmt[][2] = { { "10.0.0.0/8", "10.0.0.0/8" }, { "1.2.3.4", "1.2.3.4" }, { "*", "*" },
				 { "2001:db8::/32", "2001:db8::/32" }, { "::1", "::1" }, { "::ffff:10.0.0.0/104", "10.0.0.0/8" } };
	for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
		prefix_parse(fmt[i][0], &p);
		CHECK(prefix_format(&p, buf, sizeof buf) > 0 && !strcmp(buf, fmt[i][1]), "prefix %s prints as %s",
		      fmt[i][0], fmt[i][1]);
	}

	/* IPv4 <-> IPv4-mapped IPv6, the one copy */
	struct sg_addr m;
	addr_parse("192.0.2.7:8080", &m);
	struct sockaddr_storage ss = m.u.ss;
	socklen_t sl = m.len;
	CHECK(addr_to_family(&ss, &sl, AF_INET6) == 0 && sl == sizeof(struct sockaddr_in6) &&
	      addr_format((struct sockaddr *)&ss, sl, buf, sizeof buf) > 0 && !strcmp(buf, "[::ffff:192.0.2.7]:8080"),
	      "IPv4 to its mapped IPv6 form (%s)", buf);
	addr_unmap(&ss, &sl);
	CHECK(sl == sizeof(struct sockaddr_in) && addr_format((struct sockaddr *)&ss, sl, buf, sizeof buf) > 0 &&
	      !strcmp(buf, "192.0.2.7:8080"), "and back with addr_unmap (%s)", buf);
	addr_parse("[2001:db8::1]:53", &m);
	ss = m.u.ss;
	sl = m.len;
	errno = 0;
	addr_unmap(&ss, &sl);
	CHECK(ss.ss_family == AF_INET6 && sl == m.len && errno == 0, "addr_unmap leaves plain IPv6 (and errno) alone");
	CHECK(addr_to_family(&ss, &sl, AF_INET) < 0 && errno == EAFNOSUPPORT && ss.ss_family == AF_INET6,
	      "plain IPv6 cannot become IPv4: EAFNOSUPPORT, unchanged");
	addr_parse("unix:/x", &m);
	ss = m.u.ss;
	sl = m.len;
	CHECK(addr_to_family(&ss, &sl, AF_INET6) < 0 && errno == EAFNOSUPPORT, "a unix address is no inet family");
	return unit_done();
}
