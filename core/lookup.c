/*
 * lookup: build and parse the resolver protocol, version 1 (see lookup.h
 * and sockgate-relay(8)). Pure functions; a message is checked whole
 * (magic, version, length, every field's range) before anything is kept.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "be.h"
#include "lookup.h"

static int alen_of(int family)
{
	return family == 4 ? 4 : family == 6 ? 16 : -1;
}

int lookup_req_build(uint8_t *buf, size_t size, const struct lookup_req *q)
{
	size_t ql;
	const void *body;

	if (q->op == LOOKUP_NAME) {
		if (!dns_name_ok(q->name))
			return errno = EINVAL, -1;
		ql = strlen(q->name);
		body = q->name;
	} else if (q->op == LOOKUP_ADDR) {
		if (q->alen != 4 && q->alen != 16)
			return errno = EINVAL, -1;
		ql = q->alen;
		body = q->addr;
	} else {
		return errno = EINVAL, -1;
	}
	if (q->family != 0 && q->family != 4 && q->family != 6)
		return errno = EINVAL, -1;
	if (size < LOOKUP_HDR + ql)
		return errno = ENOSPC, -1;
	memcpy(buf, "SGQ", 3);
	buf[3] = LOOKUP_VERSION;
	put16(buf + 4, (unsigned)(LOOKUP_HDR + ql));
	buf[6] = q->op;
	buf[7] = q->family;
	put32(buf + 8, q->id);
	put16(buf + 12, q->flags);
	put16(buf + 14, (unsigned)ql);
	memcpy(buf + LOOKUP_HDR, body, ql);
	return (int)(LOOKUP_HDR + ql);
}

/* The common part: magic, version, length. */
static int frame(const uint8_t *buf, size_t len, const char *magic, size_t *used)
{
	*used = LOOKUP_HDR;
	for (size_t i = 0; i < 3 && i < len; i++)
		if (buf[i] != (uint8_t)magic[i])
			return errno = EBADMSG, -1;
	if (len >= 4 && buf[3] != LOOKUP_VERSION)
		return errno = EBADMSG, -1;
	if (len < 6)
		return LOOKUP_NEED;
	size_t total = get16(buf + 4);
	if (total < LOOKUP_HDR || total > LOOKUP_MAX)
		return errno = EBADMSG, -1;
	*used = total;
	return len < total ? LOOKUP_NEED : LOOKUP_DONE;
}

int lookup_req_parse(const uint8_t *buf, size_t len, struct lookup_req *q, size_t *used)
{
	int r = frame(buf, len, "SGQ", used);
	if (r != LOOKUP_DONE)
		return r;
	memset(q, 0, sizeof *q);
	q->op = buf[6];
	q->family = buf[7];
	q->id = get32(buf + 8);
	q->flags = (uint16_t)get16(buf + 12);
	size_t ql = get16(buf + 14);
	if (LOOKUP_HDR + ql != *used || (q->family != 0 && q->family != 4 && q->family != 6))
		return errno = EBADMSG, -1;
	if (q->op == LOOKUP_NAME) {
		if (ql == 0 || ql >= sizeof q->name)
			return errno = EBADMSG, -1;
		memcpy(q->name, buf + LOOKUP_HDR, ql);
		q->name[ql] = 0;
		if (strlen(q->name) != ql || !dns_name_ok(q->name))
			return errno = EBADMSG, -1;
	} else if (q->op == LOOKUP_ADDR) {
		if (ql != 4 && ql != 16)
			return errno = EBADMSG, -1;
		memcpy(q->addr, buf + LOOKUP_HDR, ql);
		q->alen = (uint8_t)ql;
	} else {
		return errno = EBADMSG, -1;
	}
	return LOOKUP_DONE;
}

int lookup_rep_build(uint8_t *buf, size_t size, const struct lookup_rep *r)
{
	size_t nl = strlen(r->name), o = LOOKUP_HDR + 2;

	if (r->naddr > LOOKUP_ADDR_MAX || nl > 253 || r->status >= LOOKUP_NSTATUS ||
	    (r->op != LOOKUP_NAME && r->op != LOOKUP_ADDR) || (nl && !dns_name_ok(r->name)))
		return errno = EINVAL, -1;
	if (size < o + nl)
		return errno = ENOSPC, -1;
	memcpy(buf, "SGA", 3);
	buf[3] = LOOKUP_VERSION;
	buf[6] = r->op;
	buf[7] = r->status;
	put32(buf + 8, r->id);
	put32(buf + 12, r->ttl);
	buf[16] = (uint8_t)r->naddr;
	buf[17] = (uint8_t)nl;
	memcpy(buf + o, r->name, nl);
	o += nl;
	for (size_t i = 0; i < r->naddr; i++) {
		int al = alen_of(r->addr[i].family);
		if (al < 0)
			return errno = EINVAL, -1;
		if (size < o + 1 + (size_t)al)
			return errno = ENOSPC, -1;
		buf[o++] = r->addr[i].family;
		memcpy(buf + o, r->addr[i].a, (size_t)al);
		o += (size_t)al;
	}
	put16(buf + 4, (unsigned)o);
	return (int)o;
}

int lookup_rep_parse(const uint8_t *buf, size_t len, struct lookup_rep *r, size_t *used)
{
	int k = frame(buf, len, "SGA", used);
	if (k != LOOKUP_DONE)
		return k;
	size_t end = *used, o = LOOKUP_HDR + 2;
	memset(r, 0, sizeof *r);
	if (end < o)
		return errno = EBADMSG, -1;
	r->op = buf[6];
	r->status = buf[7];
	r->id = get32(buf + 8);
	r->ttl = get32(buf + 12);
	r->naddr = buf[16];
	size_t nl = buf[17];
	if ((r->op != LOOKUP_NAME && r->op != LOOKUP_ADDR) || r->status >= LOOKUP_NSTATUS ||
	    r->naddr > LOOKUP_ADDR_MAX || nl > 253 || o + nl > end)
		return errno = EBADMSG, -1;
	memcpy(r->name, buf + o, nl);
	r->name[nl] = 0;
	if (nl && (strlen(r->name) != nl || !dns_name_ok(r->name)))
		return errno = EBADMSG, -1;
	o += nl;
	for (size_t i = 0; i < r->naddr; i++) {
		if (o >= end)
			return errno = EBADMSG, -1;
		int al = alen_of(buf[o]);
		if (al < 0 || o + 1 + (size_t)al > end)
			return errno = EBADMSG, -1;
		r->addr[i].family = buf[o];
		memcpy(r->addr[i].a, buf + o + 1, (size_t)al);
		o += 1 + (size_t)al;
	}
	if (o != end)
		return errno = EBADMSG, -1;
	return LOOKUP_DONE;
}

const char *lookup_status_name(int status)
{
	static const char *const names[LOOKUP_NSTATUS] = {
		"ok", "no such name", "no address of that family", "temporary failure", "failure", "refused",
	};
	return status >= 0 && status < LOOKUP_NSTATUS ? names[status] : "?";
}

int lookup_addr_list(const char *s, struct lookup_addr *out)
{
	int n = 0;

	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);
		char one[INET6_ADDRSTRLEN];
		struct lookup_addr x;
		if (len == 0 || len >= sizeof one || n == LOOKUP_LIST_MAX)
			return -1;
		memcpy(one, s, len);
		one[len] = 0;
		if (inet_pton(AF_INET, one, x.a) == 1)
			x.family = 4;
		else if (inet_pton(AF_INET6, one, x.a) == 1)
			x.family = 6;
		else
			return -1;
		if (out)
			out[n] = x;
		n++;
		if (!comma)
			return n;
		s = comma + 1;
	}
}
