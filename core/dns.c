/*
 * dns: parse and build DNS messages (RFC 1035 sections 4.1.1-4.1.4; AAAA
 * from RFC 3596 section 2.2; SRV from RFC 2782; the OPT record of EDNS0,
 * RFC 6891 section 6; the length prefix of DNS over TCP, RFC 1035 section
 * 4.2.2). Pure functions: no I/O,
 * no globals, every read bounds-checked against the buffer.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "be.h"
#include "dns.h"

static int label_byte_ok(uint8_t c)
{
	/* a host name's bytes, '_' (SRV, RFC 2782) and '*' (wildcards) */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '*';
}

/*
 * Read a name at *off; follows compression pointers (RFC 1035 4.1.4), each
 * to an earlier place than the last, so a loop cannot form. *off moves
 * past the name as it stands at *off.
 */
static int get_name(const uint8_t *buf, size_t len, size_t *off, char *out)
{
	size_t p = *off, o = 0, end = 0, limit = *off;
	int jumped = 0;

	for (;;) {
		if (p >= len)
			return -1;
		uint8_t l = buf[p];
		if ((l & 0xc0) == 0xc0) {
			if (p + 1 >= len)
				return -1;
			size_t to = (size_t)(l & 0x3f) << 8 | buf[p + 1];
			if (!jumped)
				end = p + 2;
			if (to >= limit)
				return -1;
			limit = to;
			p = to;
			jumped = 1;
			continue;
		}
		if (l & 0xc0)
			return -1;	/* 0x40/0x80: extended label types, obsolete */
		if (l == 0) {
			if (!jumped)
				end = p + 1;
			break;
		}
		if (p + 1 + l > len || o + l + 1 >= DNS_NAME_MAX)
			return -1;
		if (o)
			out[o++] = '.';
		for (size_t i = 0; i < l; i++) {
			uint8_t c = buf[p + 1 + i];
			if (!label_byte_ok(c))
				return -1;
			out[o++] = (char)c;
		}
		p += 1 + l;
	}
	out[o] = 0;
	*off = end;
	return 0;
}

/*
 * Step over a name whose text is not needed (authority and additional
 * records): its shape only; a compression pointer ends it.
 */
static int skip_name(const uint8_t *buf, size_t len, size_t *off)
{
	size_t p = *off;

	while (p < len && p - *off <= 255) {
		uint8_t l = buf[p];
		if ((l & 0xc0) == 0xc0) {
			if (p + 2 > len)
				return -1;
			*off = p + 2;
			return 0;
		}
		if (l & 0xc0)
			return -1;
		p += 1 + (size_t)l;
		if (l == 0) {
			*off = p;
			return 0;
		}
	}
	return -1;
}

/* OPT data: options of a 16-bit code and a 16-bit length, filling it exactly (RFC 6891 section 6.1.2). */
static int opt_options_ok(const uint8_t *p, size_t len)
{
	size_t o = 0;
	while (o < len) {
		if (len - o < 4 || len - o - 4 < get16(p + o + 2))
			return 0;
		o += 4 + (size_t)get16(p + o + 2);
	}
	return 1;
}

int dns_name_ok(const char *name)
{
	size_t n = strlen(name), lab = 0;

	if (n == 0 || n > DNS_NAME_MAX - 1)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (name[i] == '.') {
			if (lab == 0 && !(i == n - 1 && n > 1))
				return 0;
			lab = 0;
			continue;
		}
		if (!label_byte_ok((uint8_t)name[i]) || ++lab > 63)
			return 0;
	}
	return 1;
}

int dns_name_wire(const char *name, uint8_t *out, size_t size)
{
	size_t o = 0;
	const char *s = name;

	if (!dns_name_ok(name))
		return errno = EINVAL, -1;
	while (*s) {
		const char *dot = strchr(s, '.');
		size_t l = dot ? (size_t)(dot - s) : strlen(s);
		if (o + 1 + l >= size)
			return errno = ENOSPC, -1;
		out[o++] = (uint8_t)l;
		memcpy(out + o, s, l);
		o += l;
		s += l;
		if (*s == '.')
			s++;
	}
	if (o + 1 > size)
		return errno = ENOSPC, -1;
	out[o++] = 0;
	if (o > 255)
		return errno = EINVAL, -1;
	return (int)o;
}

/* An OPT pseudo-record (RFC 6891 section 6.1.2): root name, payload size in CLASS, version 0, no options. */
static int put_opt(uint8_t *p, size_t room, uint16_t payload)
{
	if (room < 11)
		return errno = ENOSPC, -1;
	p[0] = 0;
	put16(p + 1, DNS_OPT);
	put16(p + 3, payload);
	put32(p + 5, 0);
	put16(p + 9, 0);
	return 11;
}

int dns_query_build(uint8_t *buf, size_t size, uint16_t id, const char *name, uint16_t type, uint16_t edns)
{
	size_t opt = edns ? 11 : 0;
	if (size < 12 + 4 + opt)
		return errno = ENOSPC, -1;
	memset(buf, 0, 12);
	put16(buf, id);
	buf[2] = 0x01;		/* RD */
	put16(buf + 4, 1);
	int n = dns_name_wire(name, buf + 12, size - 12 - 4 - opt);
	if (n < 0)
		return -1;
	put16(buf + 12 + n, type);
	put16(buf + 14 + n, DNS_IN);
	n += 12 + 4;
	if (edns) {
		put_opt(buf + n, size - (size_t)n, edns);
		put16(buf + 10, 1);	/* ARCOUNT */
		n += 11;
	}
	return n;
}

int dns_parse(const uint8_t *buf, size_t len, struct dns_msg *m)
{
	size_t off = 12;
	int over = 0;

	memset(m, 0, sizeof *m);
	if (len < 12)
		return errno = EBADMSG, -1;
	m->id = get16(buf);
	m->qr = buf[2] >> 7;
	m->opcode = (buf[2] >> 3) & 0x0f;
	m->aa = (buf[2] >> 2) & 1;
	m->tc = (buf[2] >> 1) & 1;
	m->rd = buf[2] & 1;
	m->ra = buf[3] >> 7;
	m->rcode = buf[3] & 0x0f;
	m->qdcount = get16(buf + 4);
	unsigned ancount = get16(buf + 6);
	for (unsigned q = 0; q < m->qdcount; q++) {
		char tmp[DNS_NAME_MAX];
		if (get_name(buf, len, &off, q ? tmp : m->qname) < 0 || off + 4 > len)
			return errno = EBADMSG, -1;
		if (q == 0) {
			m->qtype = get16(buf + off);
			m->qclass = get16(buf + off + 2);
		}
		off += 4;
	}
	m->nan_all = ancount;
	for (unsigned i = 0; i < ancount; i++) {
		struct dns_rr rr;
		if (get_name(buf, len, &off, rr.name) < 0 || off + 10 > len)
			return errno = EBADMSG, -1;
		rr.type = get16(buf + off);
		rr.class = get16(buf + off + 2);
		rr.ttl = get32(buf + off + 4);
		if (rr.ttl > 0x7fffffffu)	/* RFC 2181 section 8 */
			rr.ttl = 0;
		size_t rdlen = get16(buf + off + 8);
		off += 10;
		if (off + rdlen > len)
			return errno = EBADMSG, -1;
		size_t r = off, rend = off + rdlen;
		int keep = rr.class == DNS_IN;
		switch (rr.type) {
		case DNS_A:
			if (rdlen != 4)
				return errno = EBADMSG, -1;
			memcpy(rr.d.a, buf + r, 4);
			break;
		case DNS_AAAA:
			if (rdlen != 16)
				return errno = EBADMSG, -1;
			memcpy(rr.d.aaaa, buf + r, 16);
			break;
		case DNS_CNAME:
		case DNS_PTR:
		case DNS_NS:
			if (get_name(buf, rend, &r, rr.d.name) < 0 || r != rend)
				return errno = EBADMSG, -1;
			break;
		case DNS_SRV:
			if (rdlen < 7)
				return errno = EBADMSG, -1;
			rr.d.srv.prio = get16(buf + r);
			rr.d.srv.weight = get16(buf + r + 2);
			rr.d.srv.port = get16(buf + r + 4);
			r += 6;
			if (get_name(buf, rend, &r, rr.d.srv.target) < 0 || r != rend)
				return errno = EBADMSG, -1;
			break;
		default:
			keep = 0;
		}
		off = rend;
		if (!keep)
			continue;
		if (m->nan == DNS_RR_MAX) {
			over = 1;
			continue;
		}
		if (m->nan == 0 || rr.ttl < m->min_ttl)
			m->min_ttl = rr.ttl;
		m->an[m->nan++] = rr;
	}
	/* authority records are walked over; of the additional ones only OPT is read */
	unsigned nscount = get16(buf + 8), arcount = get16(buf + 10);
	for (unsigned i = 0; i < nscount + arcount; i++) {
		size_t start = off;
		if (skip_name(buf, len, &off) < 0 || off + 10 > len || off + 10 + get16(buf + off + 8) > len) {
			if (m->tc)
				break;	/* a cut message (RFC 2181 section 9): what came whole is kept */
			return errno = EBADMSG, -1;
		}
		size_t rdlen = get16(buf + off + 8);
		if (i >= nscount && get16(buf + off) == DNS_OPT) {
			/* one at most, owned by the root (a single 0 byte), options well formed */
			if (m->opt || off != start + 1 || !opt_options_ok(buf + off + 10, rdlen))
				return errno = EBADMSG, -1;
			m->opt = 1;
			m->edns_size = get16(buf + off + 2);
			m->edns_version = buf[off + 5];
		}
		off += 10 + rdlen;
	}
	if (over)
		errno = EMSGSIZE;
	return 0;
}

/*
 * Writing names: each name is written whole (no compression pointers but
 * one: a name equal to the question's points at it), which keeps the
 * builder simple and the replies well within what clients accept.
 */
struct wbuf {
	uint8_t *b;
	size_t size, len;
	const char *qname;
};

static int put_name(struct wbuf *w, const char *name)
{
	if (w->qname && !strcasecmp(name, w->qname)) {
		if (w->len + 2 > w->size)
			return errno = ENOSPC, -1;
		put16(w->b + w->len, 0xc000 | 12);
		w->len += 2;
		return 0;
	}
	int n = dns_name_wire(name, w->b + w->len, w->size - w->len);
	if (n < 0)
		return -1;
	w->len += (size_t)n;
	return 0;
}

static int put_rr(struct wbuf *w, const struct dns_rr *rr)
{
	size_t start = w->len;
	if (put_name(w, rr->name) < 0 || w->len + 10 > w->size)
		goto nospc;
	uint8_t *h = w->b + w->len;
	put16(h, rr->type);
	put16(h + 2, rr->class ? rr->class : DNS_IN);
	put32(h + 4, rr->ttl);
	w->len += 10;
	size_t rd = w->len;
	switch (rr->type) {
	case DNS_A:
	case DNS_AAAA: {
		size_t n = rr->type == DNS_A ? 4 : 16;
		if (w->len + n > w->size)
			goto nospc;
		memcpy(w->b + w->len, rr->type == DNS_A ? rr->d.a : rr->d.aaaa, n);
		w->len += n;
		break;
	}
	case DNS_CNAME:
	case DNS_PTR:
	case DNS_NS: {
		const char *q = w->qname;
		w->qname = NULL;
		int r = put_name(w, rr->d.name);
		w->qname = q;
		if (r < 0)
			goto nospc;
		break;
	}
	case DNS_SRV: {
		if (w->len + 6 > w->size)
			goto nospc;
		put16(w->b + w->len, rr->d.srv.prio);
		put16(w->b + w->len + 2, rr->d.srv.weight);
		put16(w->b + w->len + 4, rr->d.srv.port);
		w->len += 6;
		const char *q = w->qname;
		w->qname = NULL;
		int r = put_name(w, rr->d.srv.target);
		w->qname = q;
		if (r < 0)
			goto nospc;
		break;
	}
	default:
		w->len = start;
		return errno = EINVAL, -1;
	}
	put16(h + 8, (unsigned)(w->len - rd));
	return 0;
nospc:
	w->len = start;
	if (errno != EINVAL)
		errno = ENOSPC;
	return -1;
}

int dns_reply_build(uint8_t *buf, size_t size, const struct dns_msg *m, int rcode,
		    const struct dns_rr *an, size_t nan)
{
	/* the OPT record's room is kept back from the start: answers are cut before it is */
	size_t opt = m->opt ? 11 : 0;
	struct wbuf w = { buf, size - (size < opt ? size : opt), 0, NULL };
	size_t n = 0;

	if (rcode < 0 || rcode > 0xfff || (rcode > 15 && !m->opt))
		return errno = EINVAL, -1;
	if (w.size < 12)
		return errno = ENOSPC, -1;
	memset(buf, 0, 12);
	put16(buf, m->id);
	buf[2] = (uint8_t)(0x80 | (m->opcode & 0x0f) << 3 | (m->rd ? 1 : 0));
	buf[3] = (uint8_t)(0x80 | (rcode & 0x0f));
	w.len = 12;
	if (m->qname[0]) {
		if (put_name(&w, m->qname) < 0 || w.len + 4 > w.size)
			return errno = errno == EINVAL ? EINVAL : ENOSPC, -1;
		put16(buf + w.len, m->qtype);
		put16(buf + w.len + 2, m->qclass);
		w.len += 4;
		put16(buf + 4, 1);
		w.qname = m->qname;
	}
	for (; n < nan; n++) {
		if (put_rr(&w, &an[n]) < 0) {
			if (errno == EINVAL)
				return -1;
			buf[2] |= 0x02;		/* TC */
			break;
		}
	}
	put16(buf + 6, (unsigned)n);
	if (opt) {
		put_opt(buf + w.len, size - w.len, DNS_EDNS_PAYLOAD);
		buf[w.len + 5] = (uint8_t)(rcode >> 4);	/* the extended rcode's upper 8 bits */
		put16(buf + 10, 1);
		w.len += opt;
	}
	return (int)w.len;
}

int dns_tcp_frame(const uint8_t *buf, size_t len, size_t max, size_t *mlen)
{
	if (len < 2)
		return 0;
	size_t n = get16(buf);
	if (n < 12)
		return errno = EBADMSG, -1;
	if (n > max)
		return errno = EMSGSIZE, -1;
	if (len - 2 < n)
		return 0;
	*mlen = n;
	return 1;
}

int dns_ptr_name(const uint8_t *a, size_t alen, char *out, size_t size)
{
	size_t o = 0;
	int k;
	static const char hex[] = "0123456789abcdef";

	if (alen == 4) {
		k = snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
		return k < 0 || (size_t)k >= size ? (errno = ENOSPC, -1) : k;
	}
	if (alen != 16)
		return errno = EINVAL, -1;
	if (size < 64 + sizeof "ip6.arpa")
		return errno = ENOSPC, -1;
	for (int i = 15; i >= 0; i--) {
		out[o++] = hex[a[i] & 15];
		out[o++] = '.';
		out[o++] = hex[a[i] >> 4];
		out[o++] = '.';
	}
	memcpy(out + o, "ip6.arpa", sizeof "ip6.arpa");
	return (int)(o + sizeof "ip6.arpa" - 1);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int dns_ptr_addr(const char *name, uint8_t out[16])
{
	size_t n = strlen(name);
	if (n > 1 && name[n - 1] == '.')
		n--;
	if (n > 13 && !strncasecmp(name + n - 13, ".in-addr.arpa", 13)) {
		/* four labels of 1-3 digits, the last octet first, up to ".in-addr.arpa" */
		const char *p = name;
		for (int i = 3; i >= 0; i--) {
			unsigned v = 0;
			int d = 0;
			while (d < 3 && p[d] >= '0' && p[d] <= '9')
				v = v * 10 + (unsigned)(p[d++] - '0');
			if (!d || v > 255 || (i && p[d] != '.'))
				return -1;
			out[i] = (uint8_t)v;
			p += d + (i ? 1 : 0);
		}
		if ((size_t)(p - name) != n - 13)
			return -1;
		return 4;
	}
	if (n == 64 + 8 && !strncasecmp(name + 64, "ip6.arpa", 8)) {
		for (int i = 0; i < 32; i++) {
			int h = hexval(name[2 * i]);
			if (h < 0 || name[2 * i + 1] != '.')
				return -1;
			int byte = 15 - i / 2;
			if (i % 2 == 0)
				out[byte] = (uint8_t)h;
			else
				out[byte] |= (uint8_t)(h << 4);
		}
		return 16;
	}
	return -1;
}

int dns_name_match(const char *pattern, const char *name)
{
	size_t pl = strlen(pattern), nl = strlen(name);

	if (pl == 1 && pattern[0] == '*')
		return nl > 0;
	if (pl && pattern[pl - 1] == '.')
		pl--;
	if (nl && name[nl - 1] == '.')
		nl--;
	if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
		size_t sl = pl - 1;	/* ".suffix" */
		return nl > sl && !strncasecmp(name + nl - sl, pattern + 1, sl);
	}
	return pl == nl && !strncasecmp(pattern, name, nl);
}
