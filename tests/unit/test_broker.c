/*
 * core/broker: request round trips (IPv4, IPv6, TLVs kept, every op),
 * incremental parsing, a plain PROXY header (no broker TLV), each refused
 * form with its errno; replies: round trip and every malformed form.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/un.h>

#include "broker.h"
#include "unit.h"

static void req4(struct broker_req *rq, const char *dst, int port, int op, int socktype)
{
	memset(rq, 0, sizeof *rq);
	struct sockaddr_in *s = (struct sockaddr_in *)&rq->h.src, *d = (struct sockaddr_in *)&rq->h.dst;
	s->sin_family = d->sin_family = AF_INET;
	inet_pton(AF_INET, "10.0.0.2", &s->sin_addr);
	s->sin_port = htons(40000);
	inet_pton(AF_INET, dst, &d->sin_addr);
	d->sin_port = htons((uint16_t)port);
	rq->h.srclen = rq->h.dstlen = sizeof *s;
	rq->h.command = PROXY_CMD_PROXY;
	rq->h.socktype = socktype;
	rq->op = op;
}

static void test_roundtrip(void)
{
	struct broker_req rq, got;
	unsigned char buf[1024];
	size_t n = 0;

	req4(&rq, "127.0.0.1", 5201, BROKER_OP_TCP, SOCK_STREAM);
	strcpy(rq.h.authority, "example.test");
	rq.h.authority_len = strlen(rq.h.authority);
	strcpy(rq.h.netns, "net:[4026531840]");
	rq.h.netns_len = strlen(rq.h.netns);
	int l = broker_req_build(buf, sizeof buf, &rq);
	CHECK(l > 16, "build an IPv4 TCP request (%d bytes)", l);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) == PROXY_DONE && n == (size_t)l,
	      "it parses whole (n=%zu)", n);
	CHECK(got.version == 1 && got.op == BROKER_OP_TCP && got.h.socktype == SOCK_STREAM, "version 1, op tcp");
	CHECK(!memcmp(&got.h.dst, &rq.h.dst, sizeof(struct sockaddr_in)) &&
	      !memcmp(&got.h.src, &rq.h.src, sizeof(struct sockaddr_in)), "addresses kept");
	CHECK_STR(got.h.authority, "example.test", "AUTHORITY kept");
	CHECK_STR(got.h.netns, "net:[4026531840]", "NETNS kept");

	/* in pieces: every prefix asks for more, never done */
	int ok = 1;
	for (int k = 0; k < l; k++) {
		int r = broker_req_parse(buf, (size_t)k, &got, &n);
		if (r != PROXY_NEED || n == 0 || k + n > (size_t)l)
			ok = 0;
	}
	CHECK(ok, "every prefix of a request is PROXY_NEED, never more than the rest");

	/* IPv6, ping */
	memset(&rq, 0, sizeof rq);
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&rq.h.src, *d6 = (struct sockaddr_in6 *)&rq.h.dst;
	s6->sin6_family = d6->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &d6->sin6_addr);
	rq.h.srclen = rq.h.dstlen = sizeof *s6;
	rq.h.command = PROXY_CMD_PROXY;
	rq.op = BROKER_OP_PING;
	l = broker_req_build(buf, sizeof buf, &rq);
	CHECK(l > 0 && broker_req_parse(buf, (size_t)l, &got, &n) == PROXY_DONE &&
	      got.op == BROKER_OP_PING && got.h.dst.ss_family == AF_INET6, "IPv6 ping request round trip");
	rq.op = BROKER_OP_RAW;
	l = broker_req_build(buf, sizeof buf, &rq);
	CHECK(l > 0 && broker_req_parse(buf, (size_t)l, &got, &n) == PROXY_DONE && got.op == BROKER_OP_RAW,
	      "raw ICMP request round trip");
	CHECK(broker_req_build(buf, 20, &rq) < 0 && errno == ENOSPC, "too small a buffer: ENOSPC");
}

/* A request whose broker TLV value is given bytes. */
static int with_tlv(unsigned char *buf, size_t size, const unsigned char *v, size_t vl, int socktype, int fam)
{
	struct broker_req rq;
	req4(&rq, "127.0.0.1", 80, BROKER_OP_TCP, socktype);
	if (fam == AF_UNIX) {
		memset(&rq.h.src, 0, sizeof rq.h.src);
		memset(&rq.h.dst, 0, sizeof rq.h.dst);
		rq.h.src.ss_family = rq.h.dst.ss_family = AF_UNIX;
		strcpy(((struct sockaddr_un *)&rq.h.dst)->sun_path, "/x");
		rq.h.srclen = rq.h.dstlen = sizeof(struct sockaddr_un);
	}
	int n = proxyv2_build(buf, size, &rq.h, 0);
	return n < 0 ? n : proxyv2_tlv_append(buf, size, (size_t)n, PP2_TYPE_SOCKGATE_BROKER, v, vl);
}

static void test_refused(void)
{
	unsigned char buf[1024];
	struct broker_req got;
	struct proxy_hdr h;
	size_t n;
	int l;

	/* a plain header: not a broker request */
	req4(&got, "127.0.0.1", 80, BROKER_OP_TCP, SOCK_STREAM);
	h = got.h;
	l = proxyv2_build(buf, sizeof buf, &h, 0);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) == BROKER_NONE && n == (size_t)l,
	      "a PROXY header without the TLV: BROKER_NONE with its length");
	l = proxyv1_build((char *)buf, sizeof buf, &h);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) == BROKER_NONE, "a v1 line: BROKER_NONE");
	CHECK(broker_req_parse("GET / HTTP/1.1\r\n", 16, &got, &n) < 0 && errno == EINVAL, "garbage: EINVAL");

	static const unsigned char v2[] = { 2, 1, 0, 0 }, shortv[] = { 1, 1 }, op9[] = { 1, 9, 0, 0 },
				   tcp[] = { 1, 1, 0, 0 }, longer[] = { 1, 1, 0, 0, 7, 7, 7 }, ping[] = { 1, 2, 0, 0 };
	l = with_tlv(buf, sizeof buf, v2, sizeof v2, SOCK_STREAM, AF_INET);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EPROTONOSUPPORT, "TLV version 2: EPROTONOSUPPORT");
	l = with_tlv(buf, sizeof buf, shortv, sizeof shortv, SOCK_STREAM, AF_INET);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EINVAL, "a short TLV: EINVAL");
	l = with_tlv(buf, sizeof buf, shortv, 0, SOCK_STREAM, AF_INET);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EINVAL, "an empty TLV: EINVAL");
	l = with_tlv(buf, sizeof buf, op9, sizeof op9, SOCK_STREAM, AF_INET);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EOPNOTSUPP, "unknown op: EOPNOTSUPP");
	l = with_tlv(buf, sizeof buf, tcp, sizeof tcp, SOCK_DGRAM, AF_INET);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EOPNOTSUPP && n == (size_t)l,
	      "TCP op on a UDP header: EOPNOTSUPP (UDP is never brokered)");
	l = with_tlv(buf, sizeof buf, ping, sizeof ping, SOCK_STREAM, AF_INET);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EOPNOTSUPP, "ping op on a stream header: EOPNOTSUPP");
	l = with_tlv(buf, sizeof buf, tcp, sizeof tcp, SOCK_STREAM, AF_UNIX);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EAFNOSUPPORT, "a Unix destination: EAFNOSUPPORT");
	l = with_tlv(buf, sizeof buf, longer, sizeof longer, SOCK_STREAM, AF_INET);
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) == PROXY_DONE && got.op == BROKER_OP_TCP,
	      "a longer version 1 TLV is accepted");
	/* a TLV that claims more than the header holds */
	l = with_tlv(buf, sizeof buf, tcp, sizeof tcp, SOCK_STREAM, AF_INET);
	buf[l - 5] = 0x10;
	CHECK(broker_req_parse(buf, (size_t)l, &got, &n) < 0 && errno == EINVAL, "a TLV past the end: EINVAL");
	CHECK(proxyv2_tlv_append(buf, sizeof buf, 3, 0xE1, "x", 1) < 0 && errno == EINVAL,
	      "append to no header: EINVAL");
}

static void test_reply(void)
{
	unsigned char b[16];
	int st = -1, e = -1;

	CHECK(broker_reply_encode(b, sizeof b, BROKER_OK, 0) == 8 && broker_reply_decode(b, 8, &st, &e) == 0 &&
	      st == BROKER_OK && e == 0, "OK round trip");
	CHECK(broker_reply_encode(b, sizeof b, BROKER_REFUSED, ECONNREFUSED) == 8 &&
	      broker_reply_decode(b, 8, &st, &e) == 0 && st == BROKER_REFUSED && e == ECONNREFUSED,
	      "refusal round trip keeps the errno");
	CHECK(broker_reply_encode(b, 4, BROKER_OK, 0) < 0 && errno == ENOSPC, "encode: ENOSPC");
	CHECK(broker_reply_encode(b, sizeof b, BROKER_OK, EPERM) < 0 && errno == EINVAL, "encode: OK with errno");
	CHECK(broker_reply_encode(b, sizeof b, BROKER_REFUSED, 0) < 0 && errno == EINVAL, "encode: refusal without errno");
	CHECK(broker_reply_encode(b, sizeof b, 7, 1) < 0 && errno == EINVAL, "encode: unknown status");
	broker_reply_encode(b, sizeof b, BROKER_REFUSED, EACCES);
	CHECK(broker_reply_decode(b, 7, &st, &e) < 0 && errno == EINVAL, "decode: short");
	CHECK(broker_reply_decode(b, 0, &st, &e) < 0 && errno == EINVAL, "decode: empty");
	b[0] = 2;
	CHECK(broker_reply_decode(b, 8, &st, &e) < 0 && errno == EPROTONOSUPPORT, "decode: version 2");
	b[0] = 1;
	b[3] = 9;
	CHECK(broker_reply_decode(b, 8, &st, &e) < 0 && errno == EINVAL, "decode: length past the data");
	memset(b + 8, 0, 4);
	CHECK(broker_reply_decode(b, 12, &st, &e) == 0 && e == EACCES, "decode: a longer reply is accepted");
	b[3] = 8;
	b[1] = 0;
	CHECK(broker_reply_decode(b, 8, &st, &e) < 0 && errno == EINVAL, "decode: OK with an errno");
	b[1] = 1;
	memset(b + 4, 0, 4);
	CHECK(broker_reply_decode(b, 8, &st, &e) < 0 && errno == EINVAL, "decode: refusal without errno");
	b[4] = 0x80;
	CHECK(broker_reply_decode(b, 8, &st, &e) < 0 && errno == EINVAL, "decode: errno out of range");
	b[4] = 0;
	b[7] = 1;
	b[1] = 2;
	CHECK(broker_reply_decode(b, 8, &st, &e) < 0 && errno == EINVAL, "decode: unknown status");
}

int main(void)
{
	test_roundtrip();
	test_refused();
	test_reply();
	return unit_done();
}
