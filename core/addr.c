/*
 * addr: parse and print socket addresses, prefix matching. See addr.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

static const uint8_t v4mapped[12] = { 0,0,0,0, 0,0,0,0, 0,0,0xff,0xff };

static int parse_u32(const char *s, const char *end, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (s == end)
		return -1;
	for (; s < end; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return -2;
	}
	*out = v;
	return 0;
}

static int fail(int e)
{
	errno = e;
	return -1;
}

int addr_unix(struct sg_addr *out, const char *path, int abstract)
{
	size_t n = strlen(path);
	memset(out, 0, sizeof *out);
	if (n == 0)
		return fail(EINVAL);
	/* a path keeps its NUL inside sun_path; an abstract name has the lead NUL */
	if (n >= sizeof out->u.un.sun_path)
		return fail(ENAMETOOLONG);
	out->u.un.sun_family = AF_UNIX;
	if (abstract) {
		memcpy(out->u.un.sun_path + 1, path, n);
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	} else {
		memcpy(out->u.un.sun_path, path, n + 1);
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	return 0;
}

int addr_parse_inet(const char *s, struct sg_addr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port;
	unsigned long p;

	memset(out, 0, sizeof *out);
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
			return fail(EINVAL);
		memcpy(host, s + 1, close - s - 1);
		host[close - s - 1] = 0;
		port = close + 2;
		if (inet_pton(AF_INET6, host, &out->u.in6.sin6_addr) != 1)
			return fail(EINVAL);
		out->u.in6.sin6_family = AF_INET6;
		out->len = sizeof out->u.in6;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof host)
			return fail(EINVAL);
		memcpy(host, s, colon - s);
		host[colon - s] = 0;
		port = colon + 1;
		if (inet_pton(AF_INET, host, &out->u.in4.sin_addr) != 1)
			return fail(EINVAL);
		out->u.in4.sin_family = AF_INET;
		out->len = sizeof out->u.in4;
	}
	int r = parse_u32(port, port + strlen(port), 65535, &p);
	if (r)
		return fail(r == -2 ? ERANGE : EINVAL);
	if (out->u.sa.sa_family == AF_INET6)
		out->u.in6.sin6_port = htons((uint16_t)p);
	else
		out->u.in4.sin_port = htons((uint16_t)p);
	return 0;
}

int addr_parse(const char *s, struct sg_addr *out)
{
	if (!strncmp(s, "unix:", 5)) {
		if (s[5] == '@')
			return addr_unix(out, s + 6, 1);
		return addr_unix(out, s + 5, 0);
	}
	if (!strncmp(s, "vsock:", 6)) {
		const char *cid = s + 6, *colon = strchr(cid, ':');
		unsigned long c, p;
		int r;

		memset(out, 0, sizeof *out);
		if (!colon)
			return fail(EINVAL);
		if ((r = parse_u32(cid, colon, 0xffffffffUL, &c)) ||
		    (r = parse_u32(colon + 1, colon + 1 + strlen(colon + 1), 0xffffffffUL, &p)))
			return fail(r == -2 ? ERANGE : EINVAL);
		out->u.vm.svm_family = AF_VSOCK;
		out->u.vm.svm_cid = (unsigned)c;
		out->u.vm.svm_port = (unsigned)p;
		out->len = sizeof out->u.vm;
		return 0;
	}
	return addr_parse_inet(s, out);
}

int addr_format_host(const struct sockaddr *sa, char *buf, size_t size)
{
	const void *a;

	if (sa->sa_family == AF_INET)
		a = &((const struct sockaddr_in *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6)
		a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	else
		return fail(EAFNOSUPPORT);
	if (!inet_ntop(sa->sa_family, a, buf, (socklen_t)size))
		return fail(ENOSPC);
	return (int)strlen(buf);
}

static int put(char *buf, size_t size, int n)
{
	if (n < 0 || (size_t)n >= size)
		return fail(ENOSPC);
	return n;
}

int addr_format(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	switch (sa->sa_family) {
	case AF_INET:
		if (addr_format_host(sa, host, sizeof host) < 0)
			return -1;
		return put(buf, size, snprintf(buf, size, "%s:%d", host, addr_port(sa)));
	case AF_INET6:
		if (addr_format_host(sa, host, sizeof host) < 0)
			return -1;
		return put(buf, size, snprintf(buf, size, "[%s]:%d", host, addr_port(sa)));
	case AF_UNIX: {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		size_t n = len > off ? len - off : 0;

		if (n > sizeof un->sun_path)
			n = sizeof un->sun_path;
		if (n == 0)
			return put(buf, size, snprintf(buf, size, "unix:"));
		if (un->sun_path[0] == 0)
			return put(buf, size, snprintf(buf, size, "unix:@%.*s", (int)(n - 1), un->sun_path + 1));
		return put(buf, size, snprintf(buf, size, "unix:%.*s", (int)strnlen(un->sun_path, n), un->sun_path));
	}
	case AF_VSOCK: {
		const struct sockaddr_vm *vm = (const struct sockaddr_vm *)sa;
		return put(buf, size, snprintf(buf, size, "vsock:%u:%u", vm->svm_cid, vm->svm_port));
	}
	}
	return fail(EAFNOSUPPORT);
}

int addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return -1;
}

int addr_to16(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa->sa_family == AF_INET) {
		memcpy(out, v4mapped, 12);
		memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return 0;
	}
	return fail(EAFNOSUPPORT);
}

int addr_is_v4mapped(const uint8_t a[16])
{
	return !memcmp(a, v4mapped, 12);
}

static void clear_host_bits(uint8_t a[16], unsigned plen)
{
	for (unsigned i = 0; i < 16; i++) {
		unsigned bits = plen > i * 8 ? plen - i * 8 : 0;
		if (bits < 8)
			a[i] &= (uint8_t)(0xff00u >> bits);
	}
}

int prefix_parse(const char *s, struct sg_prefix *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long plen;
	int v4;

	memset(out, 0, sizeof *out);
	if (!strcmp(s, "*"))
		return 0;
	if (hl == 0 || hl >= sizeof host)
		return fail(EINVAL);
	memcpy(host, s, hl);
	host[hl] = 0;
	v4 = !strchr(host, ':');
	if (v4) {
		memcpy(out->addr, v4mapped, 12);
		if (inet_pton(AF_INET, host, out->addr + 12) != 1)
			return fail(EINVAL);
	} else if (inet_pton(AF_INET6, host, out->addr) != 1) {
		return fail(EINVAL);
	}
	if (slash) {
		if (parse_u32(slash + 1, slash + 1 + strlen(slash + 1), v4 ? 32 : 128, &plen))
			return fail(EINVAL);
	} else {
		plen = v4 ? 32 : 128;
	}
	out->plen = (uint8_t)(v4 ? 96 + plen : plen);
	clear_host_bits(out->addr, out->plen);
	return 0;
}

int prefix_match(const struct sg_prefix *p, const uint8_t a[16])
{
	unsigned full = p->plen / 8, rest = p->plen % 8;

	if (memcmp(p->addr, a, full))
		return 0;
	if (rest && ((p->addr[full] ^ a[full]) & (uint8_t)(0xff00u >> rest)))
		return 0;
	return 1;
}

int prefix_match_sa(const struct sg_prefix *p, const struct sockaddr *sa)
{
	uint8_t a[16];

	if (addr_to16(sa, a))
		return 0;
	return prefix_match(p, a);
}

int prefix_format(const struct sg_prefix *p, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (p->plen == 0)
		return put(buf, size, snprintf(buf, size, "*"));
	if (p->plen >= 96 && addr_is_v4mapped(p->addr)) {
		inet_ntop(AF_INET, p->addr + 12, host, sizeof host);
		if (p->plen == 128)
			return put(buf, size, snprintf(buf, size, "%s", host));
		return put(buf, size, snprintf(buf, size, "%s/%u", host, p->plen - 96u));
	}
	inet_ntop(AF_INET6, p->addr, host, sizeof host);
	if (p->plen == 128)
		return put(buf, size, snprintf(buf, size, "%s", host));
	return put(buf, size, snprintf(buf, size, "%s/%u", host, p->plen));
}

int addr_to_family(struct sockaddr_storage *ss, socklen_t *len, int fam)
{
	struct sockaddr_storage t;

	memset(&t, 0, sizeof t);
	if (ss->ss_family == fam && (fam == AF_INET || fam == AF_INET6)) {
		*len = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
		return 0;
	}
	if (fam == AF_INET6 && ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&t;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = s4->sin_port;
		s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
		memcpy(s6->sin6_addr.s6_addr + 12, &s4->sin_addr, 4);
		*len = sizeof *s6;
	} else if (fam == AF_INET && ss->ss_family == AF_INET6 &&
		   addr_is_v4mapped(((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr)) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		struct sockaddr_in *s4 = (struct sockaddr_in *)&t;
		s4->sin_family = AF_INET;
		s4->sin_port = s6->sin6_port;
		memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
		*len = sizeof *s4;
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	*ss = t;
	return 0;
}

void addr_unmap(struct sockaddr_storage *ss, socklen_t *len)
{
	if (ss->ss_family == AF_INET6 && addr_is_v4mapped(((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr))
		addr_to_family(ss, len, AF_INET);
}
