/*
 * libFuzzer target for the relay's per-connection state machine
 * (core/relayconn, as applets/relay_conn.c runs it), with no sockets:
 *
 *   input = flags, split sizes, then what the client sends.
 *
 * The client's bytes arrive in the pieces the split sizes say. After each
 * piece the PROXY header decision is taken as the relay takes it from a
 * peek; a decision to take a header or to refuse a bad one must not change
 * when more bytes arrive. A complete header gives the addresses, the allow
 * rules (one of two rule sets, or none) decide an `original` target, and
 * the header the relay would write to the target must parse back to the
 * same addresses. Then both directions are relayed through a pipe of a
 * small size, with reads, partial writes and each side's end of file in
 * the order the input says: every byte must come out once and in order,
 * the write side is shut down once and only after the last byte, and the
 * connection is done exactly when both directions are.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "relayconn.h"

#define MAXHDR 16384

static const char rules_a[] =
	"connect tcp 127.0.0.1:8080 -> pass\n"
	"connect tcp 10.0.0.0/8:80-90 -> unix /run/sg/%a-%p.sock\n"
	"connect tcp [2001:db8::/32]:443 -> abstract sg-%f-%p\n"
	"connect tcp 10.9.0.0/16 -> tcp 127.0.0.1:9\n"
	"connect tcp 10.8.0.0/16 -> reject\n"
	"connect tcp 10.7.0.0/16 -> blackhole\n"
	"connect tcp 10.6.0.0/16 -> fdpass /x\n"
	"connect tcp 0.0.0.0/0:1-1023 -> unix /very/long/%a/%a/%a/%a/%a/%a/%a/%a/%a/%a/%a/%a/%a/%a\n"
	"connect tcp * -> pass ip6\n";
static const char rules_b[] = "connect tcp * -> pass\n";

static struct ruleset *ruleset(int which)
{
	static struct ruleset *rs[2];
	static const char *const text[2] = { rules_a, rules_b };
	if (!rs[which]) {
		struct rules_error e;
		rs[which] = rules_parse(text[which], strlen(text[which]), &e);
		if (!rs[which])
			abort();
	}
	return rs[which];
}

static int same_addr(const struct sockaddr_storage *a, socklen_t al, const struct sg_addr *b)
{
	return al == b->len && !memcmp(a, &b->u.ss, al);
}

/* One direction through a pipe of cap bytes: src -> out, checked. */
struct flow {
	struct relaydir d;
	const uint8_t *src;
	size_t srclen, srcoff;
	uint8_t pipe[256];
	size_t head;		/* the pipe's bytes are pipe[head .. head + d.inpipe) */
	const uint8_t *want;	/* what must come out, in order */
	size_t out;
	int shuts;
};

static void flow_read(struct flow *f, size_t cap, size_t n)
{
	size_t room = relaydir_room(&f->d, cap);
	if (!room)
		return;
	if (f->srcoff == f->srclen) {
		relaydir_read(&f->d, 0);
		return;
	}
	if (n > room)
		n = room;
	if (n > f->srclen - f->srcoff)
		n = f->srclen - f->srcoff;
	if (!n)
		n = 1;
	if (f->head + f->d.inpipe + n > sizeof f->pipe) {
		memmove(f->pipe, f->pipe + f->head, f->d.inpipe);
		f->head = 0;
	}
	memcpy(f->pipe + f->head + f->d.inpipe, f->src + f->srcoff, n);
	f->srcoff += n;
	relaydir_read(&f->d, n);
}

static void flow_write(struct flow *f, size_t n)
{
	if (n > f->d.inpipe)
		n = f->d.inpipe;
	if (f->d.shut && n)
		abort();	/* bytes after the shutdown */
	if (memcmp(f->pipe + f->head, f->want + f->out, n))
		abort();	/* out of order or altered */
	f->head += n;
	f->out += n;
	relaydir_wrote(&f->d, n);
	if (relaydir_shut_now(&f->d)) {
		if (f->out != f->srclen)
			abort();	/* shut down before the last byte */
		f->d.shut = 1;
		f->shuts++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	unsigned flags = data[0], nsplit = data[1] % 16;
	if (size < 2 + nsplit)
		return 0;
	const uint8_t *split = data + 2, *stream = data + 2 + nsplit;
	size_t len = size - 2 - nsplit;
	int original = flags & 1, version = (flags >> 1) % 3, eof_after = flags & 8;
	size_t cap = 1 + (size_t)((flags >> 4) * 16);	/* pipe size 1..241 */
	struct ruleset *rs = (flags & 0x60) == 0x60 ? NULL : ruleset((flags >> 5) & 1);

	/* the header, piece by piece */
	struct proxy_hdr h, h2;
	size_t arrived = 0, hdrlen = 0, hl2;
	int r = RC_HDR_NEED;
	for (unsigned i = 0; r == RC_HDR_NEED && arrived <= len; i++) {
		size_t piece = i < nsplit ? 1 + split[i] : len - arrived;
		arrived = arrived + piece > len ? len : arrived + piece;
		int eof = arrived == len && eof_after;
		r = relayconn_header(stream, arrived, eof, MAXHDR, &h, &hdrlen);
		if (r == RC_HDR_NEED && eof)
			abort();	/* waiting for bytes that will never come */
		if (r == RC_HDR_NEED && arrived == len)
			return 0;	/* the relay would wait (and time out) */
	}
	/* a decision taken does not change with more bytes */
	int again = relayconn_header(stream, len, eof_after, MAXHDR, &h2, &hl2);
	if (r == RC_HDR_DONE && (again != RC_HDR_DONE || hl2 != hdrlen || hdrlen > arrived || !hdrlen))
		abort();
	if (r == RC_HDR_BAD && again != RC_HDR_BAD)
		abort();
	if (r == RC_HDR_EMPTY && (arrived || !eof_after))
		abort();
	if (r != RC_HDR_DONE)
		return 0;

	/* the addresses and the target */
	struct sg_addr client, dest, target;
	char why[200] = "";
	addr_parse("127.0.0.1:40000", &client);
	addr_parse("127.0.0.1:8080", &dest);
	if (relayconn_addresses(&h, original, &client, &dest, why, sizeof why) < 0) {
		if (!original || !why[0])
			abort();
		return 0;
	}
	if (h.command == PROXY_CMD_PROXY && h.src.ss_family != AF_UNSPEC &&
	    (!same_addr(&h.src, h.srclen, &client) || !same_addr(&h.dst, h.dstlen, &dest)))
		abort();
	if (original) {
		why[0] = 0;
		if (relayconn_route(rs, &client, &dest, RULE_TCP, NULL, NULL, &(const struct rule *){ NULL }, &target, why, sizeof why) < 0) {
			if (!why[0] || !memchr(why, 0, sizeof why))
				abort();
			return 0;
		}
		int f = target.u.sa.sa_family;
		if (f != AF_INET && f != AF_INET6 && f != AF_UNIX)
			abort();
		/* allowed means a rule that sends somewhere matched */
		struct rules_query q = { RULE_CONNECT, RULE_TCP, &dest.u.sa,
					 client.u.sa.sa_family == AF_UNIX ? NULL : &client.u.sa };
		const struct rule *m = rs ? rules_match(rs, &q) : NULL;
		if (!m || (m->action != ACT_PASS && m->action != ACT_TCP && m->action != ACT_UNIX &&
			   m->action != ACT_ABSTRACT))
			abort();
		if (m->action == ACT_PASS && (target.len != dest.len || memcmp(&target.u, &dest.u, dest.len)))
			abort();
	}

	/* the header for the target parses back to the same addresses */
	if (version) {
		uint8_t out[PROXY_MAXLEN];
		struct proxy_hdr back;
		size_t blen = 0;
		int n = relayconn_build_out(version, &client, &dest, &h, out, sizeof out);
		if (n < 0) {
			if (version == 2)
				abort();	/* v2 carries any pair of addresses */
		} else {
			if (proxyv2_parse(out, (size_t)n, &back, &blen) != PROXY_DONE || blen != (size_t)n)
				abort();
			int fs = client.u.sa.sa_family, fd = dest.u.sa.sa_family;
			if (fs == fd && (fs == AF_INET || fs == AF_INET6) &&
			    (!same_addr(&back.src, back.srclen, &client) || !same_addr(&back.dst, back.dstlen, &dest)))
				abort();
		}
	}

	/* relay both ways: the rest of the stream up, the header bytes down */
	struct flow up = { .src = stream + hdrlen, .srclen = len - hdrlen, .want = stream + hdrlen };
	struct flow down = { .src = stream, .srclen = hdrlen, .want = stream };
	size_t step = 0;
	for (unsigned guard = 0; !relayconn_done(&up.d, &down.d); guard++) {
		if (guard > 100000)
			abort();	/* no progress */
		uint8_t op = len ? stream[step++ % len] : 0;
		size_t n = 1 + (op >> 3);
		if (guard > 4 * len + 64)
			op = (uint8_t)(guard & 3), n = cap;	/* the input is used up: drain */
		switch (op & 3) {
		case 0: flow_read(&up, cap, n); break;
		case 1: flow_write(&up, n); break;
		case 2: flow_read(&down, cap, n); break;
		case 3: flow_write(&down, n); break;
		}
	}
	if (up.out != up.srclen || down.out != down.srclen || up.shuts != 1 || down.shuts != 1 ||
	    up.d.bytes != up.srclen || up.d.sent != up.srclen || up.d.inpipe || down.d.inpipe)
		abort();
	return 0;
}
