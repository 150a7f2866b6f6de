/* Unit tests for core/dns and core/lookup (the resolver protocol). */
#include <errno.h>
#include <string.h>

#include "dns.h"
#include "lookup.h"
#include "unit.h"

static void t_query_roundtrip(void)
{
	uint8_t b[512];
	struct dns_msg m;
	int n = dns_query_build(b, sizeof b, 0x1234, "svc.test", DNS_AAAA, 0);
	CHECK(n == 12 + 10 + 4, "query length %d", n);
	CHECK(dns_parse(b, (size_t)n, &m) == 0, "query parses");
	CHECK(m.id == 0x1234 && m.rd && !m.qr && m.qdcount == 1, "header fields");
	CHECK_STR(m.qname, "svc.test", "question name");
	CHECK(m.qtype == DNS_AAAA && m.qclass == DNS_IN, "question type and class");
	for (int i = 0; i < n; i++)
		CHECK(dns_parse(b, (size_t)i, &m) < 0 && errno == EBADMSG, "cut at %d: EBADMSG", i);
	/* with EDNS0: an OPT record after the question, ARCOUNT 1, payload size in its class */
	n = dns_query_build(b, sizeof b, 1, "svc.test", DNS_A, 1232);
	CHECK(n == 12 + 10 + 4 + 11, "query with OPT length %d", n);
	CHECK(b[11] == 1 && !memcmp(b + n - 11, "\0\0\x29\x04\xd0\0\0\0\0\0\0", 11), "OPT record bytes");
	CHECK(dns_query_build(b, 12 + 10 + 4 + 10, 1, "svc.test", DNS_A, 1232) < 0 && errno == ENOSPC,
	      "no room for the OPT: ENOSPC");
}

static void t_reply(void)
{
	uint8_t b[512];
	struct dns_msg q, r;
	struct dns_rr an[3];
	int n = dns_query_build(b, sizeof b, 7, "www.svc.test", DNS_A, 0);
	dns_parse(b, (size_t)n, &q);
	memset(an, 0, sizeof an);
	strcpy(an[0].name, "www.svc.test");
	an[0].type = DNS_CNAME;
	an[0].ttl = 300;
	strcpy(an[0].d.name, "svc.test");
	strcpy(an[1].name, "svc.test");
	an[1].type = DNS_A;
	an[1].ttl = 60;
	memcpy(an[1].d.a, "\x7f\x00\x00\x05", 4);
	strcpy(an[2].name, "_http._tcp.svc.test");
	an[2].type = DNS_SRV;
	an[2].ttl = 90;
	an[2].d.srv.port = 8080;
	an[2].d.srv.prio = 1;
	strcpy(an[2].d.srv.target, "svc.test");
	n = dns_reply_build(b, sizeof b, &q, DNS_NOERROR, an, 3);
	CHECK(n > 0, "reply builds (%d)", n);
	CHECK(dns_parse(b, (size_t)n, &r) == 0, "reply parses");
	CHECK(r.qr && r.ra && r.rd && !r.tc && r.id == 7 && r.rcode == 0, "reply header");
	CHECK(r.nan == 3 && r.min_ttl == 60, "three answers, min ttl 60 (%zu, %u)", r.nan, r.min_ttl);
	CHECK_STR(r.an[0].d.name, "svc.test", "CNAME target");
	CHECK(!memcmp(r.an[1].d.a, "\x7f\x00\x00\x05", 4), "A rdata");
	CHECK(r.an[2].d.srv.port == 8080 && r.an[2].d.srv.prio == 1, "SRV fields");
	CHECK_STR(r.an[2].d.srv.target, "svc.test", "SRV target");
	/* too small a buffer: TC and fewer answers */
	int m = dns_reply_build(b, 60, &q, DNS_NOERROR, an, 3);
	CHECK(m > 0 && m <= 60, "truncated reply fits (%d)", m);
	CHECK(dns_parse(b, (size_t)m, &r) == 0 && r.tc && r.nan < 3, "TC set, %zu answers", r.nan);
	n = dns_reply_build(b, sizeof b, &q, DNS_NXDOMAIN, NULL, 0);
	CHECK(dns_parse(b, (size_t)n, &r) == 0 && r.rcode == DNS_NXDOMAIN && r.nan == 0, "NXDOMAIN");
}

static void t_bad(void)
{
	struct dns_msg m;
	/* a compression pointer to itself */
	uint8_t loop[] = { 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1 };
	CHECK(dns_parse(loop, sizeof loop, &m) < 0 && errno == EBADMSG, "pointer loop refused");
	/* a forward pointer */
	uint8_t fwd[] = { 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0, 0, 1, 0, 1 };
	CHECK(dns_parse(fwd, sizeof fwd, &m) < 0, "forward pointer refused");
	/* a label with a space */
	uint8_t sp[] = { 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', ' ', 'b', 0, 0, 1, 0, 1 };
	CHECK(dns_parse(sp, sizeof sp, &m) < 0, "space in a label refused");
	/* an A record of 5 bytes */
	uint8_t a5[] = { 0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0, 1, 'x', 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 5,
			 1, 2, 3, 4, 5 };
	CHECK(dns_parse(a5, sizeof a5, &m) < 0, "A of 5 bytes refused");
	uint8_t w[300];
	char longname[300];
	memset(longname, 'a', sizeof longname);
	longname[299] = 0;
	CHECK(dns_name_wire(longname, w, sizeof w) < 0 && errno == EINVAL, "300-byte name refused");
	CHECK(!dns_name_ok("a..b") && !dns_name_ok("") && !dns_name_ok("a b") && dns_name_ok("a.b.") &&
	      dns_name_ok("_sip._udp.example.net"), "dns_name_ok");
}

static void t_ptr_match(void)
{
	char n[128];
	uint8_t a[16];
	CHECK(dns_ptr_name((const uint8_t *)"\x7f\x00\x00\x01", 4, n, sizeof n) > 0, "ptr name v4");
	CHECK_STR(n, "1.0.0.127.in-addr.arpa", "v4 reverse name");
	CHECK(dns_ptr_addr(n, a) == 4 && !memcmp(a, "\x7f\x00\x00\x01", 4), "back to the address");
	uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	CHECK(dns_ptr_name(v6, 16, n, sizeof n) > 0 && dns_ptr_addr(n, a) == 16 && !memcmp(a, v6, 16),
	      "v6 reverse name round trip (%s)", n);
	CHECK(dns_ptr_addr("300.0.0.1.in-addr.arpa", a) < 0, "octet over 255 refused");
	CHECK(dns_ptr_addr("4.3.2.1.IN-ADDR.ARPA.", a) == 4 && !memcmp(a, "\x01\x02\x03\x04", 4),
	      "a trailing dot and capitals: the last octet first");
	CHECK(dns_ptr_addr("004.03.2.001.in-addr.arpa", a) == 4 && !memcmp(a, "\x01\x02\x03\x04", 4), "leading zeros");
	static const char *const badptr[] = { "1.2.3.in-addr.arpa", "1.2.3.4.5.in-addr.arpa", "+1.2.3.4.in-addr.arpa",
					      " 1.2.3.4.in-addr.arpa", "1.2..4.in-addr.arpa", "1234.2.3.4.in-addr.arpa",
					      "1.2.3.4x.in-addr.arpa", ".in-addr.arpa", "a.2.3.4.in-addr.arpa" };
	for (size_t i = 0; i < sizeof badptr / sizeof badptr[0]; i++)
		CHECK(dns_ptr_addr(badptr[i], a) < 0, "'%s' is not an IPv4 reverse name", badptr[i]);
	CHECK(dns_name_match("*", "x.y"), "* matches");
	CHECK(dns_name_match("*.Debian.org", "deb.debian.ORG."), "suffix, case and dot ignored");
	CHECK(!dns_name_match("*.debian.org", "debian.org"), "suffix does not match the bare name");
	CHECK(!dns_name_match("*.debian.org", "xdebian.org"), "suffix needs the dot");
	CHECK(dns_name_match("api.example.com", "API.example.com") && !dns_name_match("api.example.com", "pi.example.com"),
	      "exact names");
}

static void t_tcp_frame(void)
{
	uint8_t b[2 + 512 + 2];
	size_t ml = 0;
	int n = dns_query_build(b + 2, 512, 9, "svc.test", DNS_A, 0);
	b[0] = 0;
	b[1] = (uint8_t)n;
	for (int i = 0; i < 2 + n; i++)
		CHECK(dns_tcp_frame(b, (size_t)i, 512, &ml) == 0, "%d bytes of %d: need more", i, 2 + n);
	CHECK(dns_tcp_frame(b, (size_t)(2 + n), 512, &ml) == 1 && ml == (size_t)n, "whole message (%zu)", ml);
	/* a second message pipelined behind it does not change the first */
	b[2 + n] = 0;
	b[3 + n] = 12;
	CHECK(dns_tcp_frame(b, (size_t)(4 + n), 512, &ml) == 1 && ml == (size_t)n, "the first of two");
	CHECK(dns_tcp_frame(b, (size_t)(2 + n), (size_t)n - 1, &ml) < 0 && errno == EMSGSIZE,
	      "longer than max: EMSGSIZE from the prefix");
	b[1] = 11;
	CHECK(dns_tcp_frame(b, 2, 512, &ml) < 0 && errno == EBADMSG, "shorter than a header: EBADMSG at once");
	CHECK(dns_tcp_frame((const uint8_t *)"GET / HTTP/1.0\r\n", 16, 4094, &ml) < 0 && errno == EMSGSIZE,
	      "text is a length far too big");
	b[0] = 0xff;
	b[1] = 0xff;
	CHECK(dns_tcp_frame(b, 2, DNS_TCP_MAX, &ml) == 0, "65535 allowed, waits for the rest");
}

/* n A records for many.test (10.9.0.1 ...), an answer the size of the bats test's */
static void many_a(struct dns_rr *an, size_t n)
{
	memset(an, 0, n * sizeof *an);
	for (size_t i = 0; i < n; i++) {
		strcpy(an[i].name, "many.test");
		an[i].type = DNS_A;
		an[i].ttl = 30;
		memcpy(an[i].d.a, "\x0a\x09\x00", 3);
		an[i].d.a[3] = (uint8_t)(i + 1);
	}
}

static void t_edns(void)
{
	static uint8_t b[4096];
	static struct dns_msg q, r;
	static struct dns_rr an[40];
	int n = dns_query_build(b, sizeof b, 5, "many.test", DNS_A, 1232);
	CHECK(dns_parse(b, (size_t)n, &q) == 0 && q.opt && q.edns_size == 1232 && q.edns_version == 0,
	      "a query's OPT record is read");
	many_a(an, 40);
	/* 1232 bytes hold all 40, the OPT record after them */
	n = dns_reply_build(b, 1232, &q, DNS_NOERROR, an, 40);
	CHECK(n > 512 && n <= 1232, "reply of %d bytes", n);
	CHECK(dns_parse(b, (size_t)n, &r) == 0 && !r.tc && r.nan == 40 && r.opt && r.edns_size == DNS_EDNS_PAYLOAD,
	      "all 40 answers, no TC, OPT with our payload size (%zu, %d)", r.nan, r.opt);
	CHECK(b[11] == 1, "ARCOUNT 1");
	/* 512 bytes: cut before the OPT record, which is still there */
	n = dns_reply_build(b, 512, &q, DNS_NOERROR, an, 40);
	CHECK(n <= 512 && dns_parse(b, (size_t)n, &r) == 0 && r.tc && r.nan < 40 && r.opt,
	      "512: TC, %zu answers, OPT kept", r.nan);
	/* without OPT in the query, none in the reply */
	n = dns_query_build(b, sizeof b, 5, "many.test", DNS_A, 0);
	dns_parse(b, (size_t)n, &q);
	CHECK(!q.opt, "no OPT read where there is none");
	n = dns_reply_build(b, 512, &q, DNS_NOERROR, an, 2);
	CHECK(dns_parse(b, (size_t)n, &r) == 0 && !r.opt && b[11] == 0, "no OPT in the reply");
	CHECK(dns_reply_build(b, 512, &q, DNS_BADVERS, NULL, 0) < 0 && errno == EINVAL,
	      "an extended rcode needs OPT");
	/* BADVERS: 0 in the header, 1 in the OPT record's extended rcode */
	n = dns_query_build(b, sizeof b, 5, "many.test", DNS_A, 1232);
	b[n - 11 + 6] = 1;	/* version 1 */
	CHECK(dns_parse(b, (size_t)n, &q) == 0 && q.edns_version == 1, "version 1 read");
	n = dns_reply_build(b, 512, &q, DNS_BADVERS, NULL, 0);
	CHECK(n > 0 && (b[3] & 15) == 0 && b[n - 11 + 5] == 1 && b[n - 11 + 6] == 0,
	      "BADVERS split between the header and OPT, our version 0");

	/* malformed OPT records: FORMERR to the resolver */
	uint8_t two[64];
	n = dns_query_build(two, sizeof two, 5, "x.test", DNS_A, 1232);
	memcpy(two + n, two + n - 11, 11);
	two[11] = 2;
	CHECK(dns_parse(two, (size_t)n + 11, &q) < 0 && errno == EBADMSG, "two OPT records refused");
	two[11] = 1;
	uint8_t named[64];
	int k = dns_query_build(named, sizeof named, 5, "x.test", DNS_A, 0);
	named[11] = 1;
	memcpy(named + k, "\x01x\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00", 13);
	CHECK(dns_parse(named, (size_t)k + 13, &q) < 0 && errno == EBADMSG, "an OPT owned by 'x' refused");
	/* an option with 4 bytes of value fills the 8 bytes of data: good; with 5 it overruns */
	uint8_t opt[64];
	k = dns_query_build(opt, sizeof opt, 5, "x.test", DNS_A, 1232);
	opt[k - 1] = 8;
	memcpy(opt + k, "\x00\x0a\x00\x04" "abcd", 8);
	CHECK(dns_parse(opt, (size_t)k + 8, &q) == 0 && q.opt, "an OPT with one well-formed option");
	opt[k + 3] = 5;
	CHECK(dns_parse(opt, (size_t)k + 8, &q) < 0 && errno == EBADMSG, "an option overrunning the data refused");
	opt[k + 3] = 4;
	CHECK(dns_parse(opt, (size_t)k + 7, &q) < 0 && errno == EBADMSG, "an OPT cut short refused");
	/* a cut additional section is taken only with TC set */
	opt[2] |= 0x02;
	CHECK(dns_parse(opt, (size_t)k + 7, &q) == 0 && !q.opt, "with TC, a cut additional section is left");
}

static void t_lookup(void)
{
	uint8_t b[LOOKUP_MAX];
	struct lookup_req q = { .op = LOOKUP_NAME, .family = 6, .flags = LOOKUP_F_CANON, .id = 42 }, q2;
	strcpy(q.name, "svc.test");
	int n = lookup_req_build(b, sizeof b, &q);
	size_t used;
	CHECK(n == LOOKUP_HDR + 8, "request length");
	CHECK(lookup_req_parse(b, (size_t)n, &q2, &used) == LOOKUP_DONE && used == (size_t)n, "request parses");
	CHECK(q2.id == 42 && q2.family == 6 && q2.flags == LOOKUP_F_CANON, "request fields");
	CHECK_STR(q2.name, "svc.test", "request name");
	CHECK(lookup_req_parse(b, 5, &q2, &used) == LOOKUP_NEED && used == LOOKUP_HDR, "5 bytes: need a header");
	CHECK(lookup_req_parse(b, (size_t)n - 1, &q2, &used) == LOOKUP_NEED && used == (size_t)n, "need the rest");
	b[3] = 2;
	CHECK(lookup_req_parse(b, (size_t)n, &q2, &used) < 0, "version 2 refused");
	b[3] = 1;
	b[LOOKUP_HDR + 3] = ' ';
	CHECK(lookup_req_parse(b, (size_t)n, &q2, &used) < 0, "a name with a space refused");

	struct lookup_rep r = { .op = LOOKUP_NAME, .status = LOOKUP_OK, .id = 42, .ttl = 30, .naddr = 2 }, r2;
	strcpy(r.name, "svc.test");
	r.addr[0].family = 4;
	memcpy(r.addr[0].a, "\x7f\0\0\1", 4);
	r.addr[1].family = 6;
	r.addr[1].a[15] = 1;
	n = lookup_rep_build(b, sizeof b, &r);
	CHECK(n == LOOKUP_HDR + 2 + 8 + 5 + 17, "reply length %d", n);
	CHECK(lookup_rep_parse(b, (size_t)n, &r2, &used) == LOOKUP_DONE, "reply parses");
	CHECK(r2.naddr == 2 && r2.ttl == 30 && r2.addr[1].family == 6 && r2.addr[1].a[15] == 1, "reply fields");
	b[16] = 3;
	CHECK(lookup_rep_parse(b, (size_t)n, &r2, &used) < 0, "more addresses than bytes refused");
	b[16] = 2;
	b[4] = 0xff;
	CHECK(lookup_rep_parse(b, (size_t)n, &r2, &used) < 0, "a length over LOOKUP_MAX refused");

	struct lookup_addr xs[LOOKUP_LIST_MAX];
	CHECK(lookup_addr_list("127.0.0.7,::1", xs) == 2 && xs[0].family == 4 && !memcmp(xs[0].a, "\x7f\0\0\7", 4) &&
	      xs[1].family == 6 && xs[1].a[15] == 1, "an address list: IPv4 and IPv6, in order");
	CHECK(lookup_addr_list("10.0.0.1", NULL) == 1, "one address, counted without out");
	static const char *const badlists[] = { "", ",1.2.3.4", "1.2.3.4,", "1.2.3.4,,::1", "1.2.3", "svc.test",
						"1.2.3.4 ", "dead:beef", "::1%lo" };
	int allbad = 1;
	for (size_t i = 0; i < sizeof badlists / sizeof badlists[0]; i++)
		if (lookup_addr_list(badlists[i], xs) != -1) {
			printf("#   '%s' taken as an address list\n", badlists[i]);
			allbad = 0;
		}
	CHECK(allbad, "empty items, short forms, names and scoped addresses are no list");
	char many[17 * 4 + 1] = "";
	for (int i = 0; i < 17; i++)
		strcat(many, i ? ",::1" : "::1");
	CHECK(lookup_addr_list(many, xs) == -1 && lookup_addr_list(many + 4, xs) == 16, "16 addresses at most");
}

int main(void)
{
	t_query_roundtrip();
	t_reply();
	t_bad();
	t_ptr_match();
	t_tcp_frame();
	t_edns();
	t_lookup();
	return unit_done();
}
