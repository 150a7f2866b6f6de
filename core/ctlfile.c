/*
 * ctlfile: encode, decode, read and write control files (layout in
 * ctlfile.h), and the option syntax sockgate-mkctl and libsockgate.so
 * (run as a program) share. The decoder trusts nothing it has not checked;
 * the encoder only writes what the decoder accepts again.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <linux/tipc.h>
#include <linux/vm_sockets.h>

#include "ctlfile.h"
#include "proxyv2.h"	/* crc32c() */

#ifndef SOL_TIPC
#define SOL_TIPC 271
#endif

#define KIND_BIT(k) (1u << (k))
#define ANY_KIND 0xffu

/* The socket options a control file may carry, and where each applies. */
static const struct optdef {
	const char *name;
	uint32_t level, opt;
	uint8_t size;			/* 4: int, 8: unsigned long long */
	uint64_t max;
	unsigned kinds;
} optdefs[] = {
	{ "SO_SNDBUF", SOL_SOCKET, SO_SNDBUF, 4, INT_MAX, ANY_KIND },
	{ "SO_RCVBUF", SOL_SOCKET, SO_RCVBUF, 4, INT_MAX, ANY_KIND },
	{ "SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE, 4, 1, ANY_KIND },
	{ "SO_PRIORITY", SOL_SOCKET, SO_PRIORITY, 4, 6, ANY_KIND },
	{ "TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY, 4, 1, KIND_BIT(CTL_TCP) },
	{ "SO_VM_SOCKETS_BUFFER_SIZE", AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, 8, UINT32_MAX, KIND_BIT(CTL_VSOCK) },
	{ "SO_VM_SOCKETS_BUFFER_MIN_SIZE", AF_VSOCK, SO_VM_SOCKETS_BUFFER_MIN_SIZE, 8, UINT32_MAX,
	  KIND_BIT(CTL_VSOCK) },
	{ "SO_VM_SOCKETS_BUFFER_MAX_SIZE", AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, 8, UINT32_MAX,
	  KIND_BIT(CTL_VSOCK) },
	{ "TIPC_IMPORTANCE", SOL_TIPC, TIPC_IMPORTANCE, 4, TIPC_CRITICAL_IMPORTANCE, KIND_BIT(CTL_TIPC) },
	{ "TIPC_CONN_TIMEOUT", SOL_TIPC, TIPC_CONN_TIMEOUT, 4, INT_MAX, KIND_BIT(CTL_TIPC) },
};
#define NOPTDEFS (sizeof optdefs / sizeof optdefs[0])

static const char *const kind_opt[] = {
	[CTL_VSOCK] = "--vsock", [CTL_FIRECRACKER] = "--firecracker", [CTL_TIPC] = "--tipc",
	[CTL_UNIX] = "--unix", [CTL_ABSTRACT] = "--abstract", [CTL_TCP] = "--tcp",
};
#define NKINDS (sizeof kind_opt / sizeof kind_opt[0])

static void put16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, v); put16(p + 2, v >> 16); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t get32(const uint8_t *p) { return get16(p) | get16(p + 2) << 16; }
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }

static int fail(struct ctl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct ctl_error *err, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof err->msg, fmt, ap);
		va_end(ap);
	}
	errno = EINVAL;
	return -1;
}

static const struct optdef *optdef_find(uint32_t level, uint32_t opt)
{
	for (size_t i = 0; i < NOPTDEFS; i++)
		if (optdefs[i].level == level && optdefs[i].opt == opt)
			return &optdefs[i];
	return NULL;
}

size_t ctlfile_sockopt_size(uint32_t level, uint32_t name)
{
	const struct optdef *d = optdef_find(level, name);
	return d ? d->size : 0;
}

int ctlfile_is(const void *buf, size_t len)
{
	return len >= 4 && !memcmp(buf, CTLFILE_MAGIC, 4);
}

/*
 * A path or name as stored: 1 to max bytes, no NUL and no control
 * characters (so that --show prints it on one line), absolute when asked.
 */
static const char *name_check(const uint8_t *p, size_t n, size_t max, int absolute)
{
	if (n == 0)
		return "empty path or name";
	if (n > max)
		return "path or name too long";
	if (absolute && p[0] != '/')
		return "path not absolute";
	for (size_t i = 0; i < n; i++)
		if (p[i] < 0x20 || p[i] == 0x7f)
			return "path or name holds a NUL or control character";
	return NULL;
}

/* The longest path (without its NUL) that fits sun_path with one. */
#define PATH_MAX_UN (sizeof ((struct sockaddr_un *)0)->sun_path - 1)

static const char *target_check(const struct ctlfile *c, const uint8_t *t, size_t tlen)
{
	switch (c->kind) {
	case CTL_VSOCK:
		return tlen == 8 ? NULL : "vsock target length is not 8";
	case CTL_FIRECRACKER:
		if (tlen < 4)
			return "firecracker target too short";
		return name_check(t + 4, tlen - 4, PATH_MAX_UN, 1);
	case CTL_TIPC:
		if (tlen != 16)
			return "tipc target length is not 16";
		if (t[2] || t[3])
			return "reserved bytes not zero";
		if (c->tipc_addrtype < TIPC_SERVICE_RANGE || c->tipc_addrtype > TIPC_SOCKET_ADDR)
			return "tipc address type not 1, 2 or 3";
		if (c->tipc_scope < TIPC_ZONE_SCOPE || c->tipc_scope > TIPC_NODE_SCOPE)
			return "tipc scope not 1, 2 or 3";
		return NULL;
	case CTL_UNIX:
		return name_check(t, tlen, PATH_MAX_UN, 1);
	case CTL_ABSTRACT:
		/* sun_path minus the leading NUL; no terminator is needed */
		return name_check(t, tlen, PATH_MAX_UN, 0);
	case CTL_TCP:
		if (tlen != 18)
			return "tcp target length is not 18";
		return c->port ? NULL : "tcp port 0";
	}
	return "unknown target kind";
}

int ctlfile_decode(const void *buf, size_t len, struct ctlfile *out, struct ctl_error *err)
{
	const uint8_t *b = buf;
	struct ctlfile c;

	if (len < CTLFILE_HDR || !ctlfile_is(buf, len))
		return fail(err, "not a control file (bad magic or too short)");
	if (get16(b + 4) != CTLFILE_VERSION)
		return fail(err, "control file version %u, this build reads version %u", get16(b + 4),
			    CTLFILE_VERSION);
	if (get16(b + 6) != CTLFILE_HDR)
		return fail(err, "control file: unexpected header size %u", get16(b + 6));
	if (get32(b + 8) != len)
		return fail(err, "control file: length %u in header, file has %zu bytes", get32(b + 8), len);
	if (len > CTLFILE_MAXLEN)
		return fail(err, "control file: longer than any valid one");
	size_t tlen = get16(b + 18), nopt = b[17];
	if (nopt > CTLFILE_MAXOPT)
		return fail(err, "control file: %zu socket options, at most %d", nopt, CTLFILE_MAXOPT);
	if (CTLFILE_HDR + tlen + nopt * 16 != len)
		return fail(err, "control file: lengths do not add up to the file length");
	if (crc32c(0, b + CTLFILE_HDR, len - CTLFILE_HDR) != get32(b + 12))
		return fail(err, "control file: checksum mismatch (file damaged)");

	memset(&c, 0, sizeof c);
	c.kind = b[16];
	const uint8_t *t = b + CTLFILE_HDR;
	switch (c.kind) {
	case CTL_VSOCK:
		if (tlen == 8) {
			c.cid = get32(t);
			c.port = get32(t + 4);
		}
		break;
	case CTL_FIRECRACKER:
		if (tlen > 4 && tlen - 4 <= PATH_MAX_UN) {
			c.port = get32(t);
			memcpy(c.path, t + 4, tlen - 4);
		}
		break;
	case CTL_TIPC:
		if (tlen == 16) {
			c.tipc_addrtype = t[0];
			c.tipc_scope = t[1];
			c.tipc_type = get32(t + 4);
			c.tipc_lower = get32(t + 8);
			c.tipc_upper = get32(t + 12);
		}
		break;
	case CTL_UNIX:
	case CTL_ABSTRACT:
		if (tlen <= PATH_MAX_UN)
			memcpy(c.path, t, tlen);
		break;
	case CTL_TCP:
		if (tlen == 18) {
			c.port = get16(t);
			memcpy(c.addr, t + 2, 16);
		}
		break;
	}
	const char *why = target_check(&c, t, tlen);
	if (why)
		return fail(err, "control file: %s", why);

	c.nopt = (unsigned)nopt;
	for (size_t i = 0; i < nopt; i++) {
		const uint8_t *o = t + tlen + i * 16;
		struct ctl_sockopt *so = &c.opt[i];
		so->level = get32(o);
		so->name = get32(o + 4);
		so->value = get64(o + 8);
		const struct optdef *d = optdef_find(so->level, so->name);
		if (!d)
			return fail(err, "control file: unknown socket option %u/%u", so->level, so->name);
		if (!(d->kinds & KIND_BIT(c.kind)))
			return fail(err, "control file: %s does not apply to a %s target", d->name,
				    kind_opt[c.kind] + 2);
		if (so->value > d->max)
			return fail(err, "control file: %s value %llu out of range", d->name,
				    (unsigned long long)so->value);
		for (size_t j = 0; j < i; j++)
			if (c.opt[j].level == so->level && c.opt[j].name == so->name)
				return fail(err, "control file: %s given twice", d->name);
	}
	*out = c;
	return 0;
}

ssize_t ctlfile_encode(const struct ctlfile *c, uint8_t *buf, size_t size, struct ctl_error *err)
{
	uint8_t b[CTLFILE_MAXLEN];
	size_t tlen = 0, plen = strnlen(c->path, sizeof c->path);
	uint8_t *t = b + CTLFILE_HDR;

	memset(b, 0, sizeof b);
	if (c->nopt > CTLFILE_MAXOPT)
		return fail(err, "at most %d socket options", CTLFILE_MAXOPT);
	if (plen > PATH_MAX_UN)
		return fail(err, "path or name too long");
	switch (c->kind) {
	case CTL_VSOCK:
		put32(t, c->cid);
		put32(t + 4, c->port);
		tlen = 8;
		break;
	case CTL_FIRECRACKER:
		put32(t, c->port);
		memcpy(t + 4, c->path, plen);
		tlen = 4 + plen;
		break;
	case CTL_TIPC:
		t[0] = c->tipc_addrtype;
		t[1] = c->tipc_scope;
		put32(t + 4, c->tipc_type);
		put32(t + 8, c->tipc_lower);
		put32(t + 12, c->tipc_upper);
		tlen = 16;
		break;
	case CTL_UNIX:
	case CTL_ABSTRACT:
		memcpy(t, c->path, plen);
		tlen = plen;
		break;
	case CTL_TCP:
		if (c->port > 65535)
			return fail(err, "tcp port out of range");
		put16(t, c->port);
		memcpy(t + 2, c->addr, 16);
		tlen = 18;
		break;
	default:
		return fail(err, "no target");
	}
	for (unsigned i = 0; i < c->nopt; i++) {
		uint8_t *o = t + tlen + i * 16;
		put32(o, c->opt[i].level);
		put32(o + 4, c->opt[i].name);
		put64(o + 8, c->opt[i].value);
	}
	size_t len = CTLFILE_HDR + tlen + c->nopt * 16;
	memcpy(b, CTLFILE_MAGIC, 4);
	put16(b + 4, CTLFILE_VERSION);
	put16(b + 6, CTLFILE_HDR);
	put32(b + 8, (uint32_t)len);
	b[16] = (uint8_t)c->kind;
	b[17] = (uint8_t)c->nopt;
	put16(b + 18, (uint32_t)tlen);
	put32(b + 12, crc32c(0, b + CTLFILE_HDR, len - CTLFILE_HDR));

	/* Only what reads back is written. */
	struct ctlfile again;
	struct ctl_error e;
	if (ctlfile_decode(b, len, &again, &e))
		return fail(err, "%s", e.msg + (strncmp(e.msg, "control file: ", 14) ? 0 : 14));
	if (size < len) {
		errno = ENOSPC;
		return -1;
	}
	memcpy(buf, b, len);
	return (ssize_t)len;
}

/* --- the option syntax -------------------------------------------------- */

/* A bounded number (strtonum); -1 when it is not one. */
static int num(const char *s, long long min, long long max, long long *out)
{
	const char *e = NULL;
	long long v = strtonum(s, min, max, &e);
	if (e)
		return -1;
	*out = v;
	return 0;
}

/* Split "A,B,C,D,E" into five fields of 1-15 characters; -1 otherwise. */
static int split5(const char *val, char w[5][16])
{
	for (int i = 0; i < 5; i++) {
		size_t n = strcspn(val, ",");
		if (n == 0 || n > 15 || (i < 4) != (val[n] == ','))
			return -1;
		memcpy(w[i], val, n);
		w[i][n] = 0;
		val += n + (i < 4);
	}
	return 0;
}

/* Split "A:B" at the last ':' into a (copied, bounded) and b. */
static int split_last(const char *val, char *a, size_t asize, const char **b)
{
	const char *colon = strrchr(val, ':');
	if (!colon || (size_t)(colon - val) >= asize)
		return -1;
	memcpy(a, val, (size_t)(colon - val));
	a[colon - val] = 0;
	*b = colon + 1;
	return 0;
}

static int set_path(struct ctlfile *c, const char *p, int absolute, struct ctl_error *err)
{
	const char *why = name_check((const uint8_t *)p, strlen(p), PATH_MAX_UN, absolute);
	if (why)
		return fail(err, "%s: %s", why, p);
	memset(c->path, 0, sizeof c->path);
	memcpy(c->path, p, strlen(p));
	return 0;
}

static int parse_target(struct ctlfile *c, enum ctl_kind kind, const char *val, struct ctl_error *err)
{
	char a[128];
	const char *b;
	long long v[5];

	switch (kind) {
	case CTL_VSOCK:
		if (split_last(val, a, sizeof a, &b) || num(b, 0, UINT32_MAX, &v[1]))
			return fail(err, "--vsock wants CID:PORT (CID a number or any), not %s", val);
		if (!strcmp(a, "any") || !strcmp(a, "-1"))
			v[0] = CTLFILE_CID_ANY;
		else if (num(a, 0, UINT32_MAX - 1, &v[0]))
			return fail(err, "--vsock: bad CID %s", a);
		c->cid = (uint32_t)v[0];
		c->port = (uint32_t)v[1];
		break;
	case CTL_FIRECRACKER: {
		const char *colon = strrchr(val, ':');
		if (!colon || num(colon + 1, 0, UINT32_MAX, &v[0]))
			return fail(err, "--firecracker wants PATH:PORT, not %s", val);
		if ((size_t)(colon - val) > PATH_MAX_UN)
			return fail(err, "path too long: %.*s", (int)(colon - val), val);
		char p[sizeof c->path + 1];
		memcpy(p, val, (size_t)(colon - val));
		p[colon - val] = 0;
		if (set_path(c, p, 1, err))
			return -1;
		c->port = (uint32_t)v[0];
		break;
	}
	case CTL_TIPC: {
		char w[5][16];
		if (split5(val, w) ||
		    num(w[0], 1, 3, &v[0]) || num(w[1], 1, 3, &v[1]) || num(w[2], 0, UINT32_MAX, &v[2]) ||
		    num(w[3], 0, UINT32_MAX, &v[3]) || num(w[4], 0, UINT32_MAX, &v[4]))
			return fail(err, "--tipc wants ADDRTYPE,SCOPE,TYPE,LOWER,UPPER (type and scope 1-3), not %s",
				    val);
		c->tipc_addrtype = (uint8_t)v[0];
		c->tipc_scope = (uint8_t)v[1];
		c->tipc_type = (uint32_t)v[2];
		c->tipc_lower = (uint32_t)v[3];
		c->tipc_upper = (uint32_t)v[4];
		break;
	}
	case CTL_UNIX:
		if (set_path(c, val, 1, err))
			return -1;
		break;
	case CTL_ABSTRACT:
		if (set_path(c, val[0] == '@' ? val + 1 : val, 0, err))
			return -1;
		break;
	case CTL_TCP: {
		struct sg_addr sa;
		if (addr_parse_inet(val, &sa) || addr_port(&sa.u.sa) <= 0)
			return fail(err, "--tcp wants ADDR:PORT (a numeric address, port 1-65535), not %s", val);
		addr_to16(&sa.u.sa, c->addr);
		c->port = (uint32_t)addr_port(&sa.u.sa);
		break;
	}
	}
	c->kind = kind;
	return 0;
}

static int parse_sockopt(struct ctlfile *c, const char *val, struct ctl_error *err)
{
	const char *eq = strchr(val, '=');
	const struct optdef *d = NULL;
	long long v;

	for (size_t i = 0; eq && i < NOPTDEFS; i++)
		if (strlen(optdefs[i].name) == (size_t)(eq - val) && !strncmp(optdefs[i].name, val, (size_t)(eq - val)))
			d = &optdefs[i];
	if (!eq || !d)
		return fail(err, "--sockopt wants NAME=VALUE with a known NAME (see sockgate-mkctl(8)), not %s", val);
	if (num(eq + 1, 0, (long long)d->max, &v))
		return fail(err, "--sockopt %s: value not a number from 0 to %llu: %s", d->name,
			    (unsigned long long)d->max, eq + 1);
	for (unsigned i = 0; i < c->nopt; i++)
		if (c->opt[i].level == d->level && c->opt[i].name == d->opt)
			return fail(err, "--sockopt %s given twice", d->name);
	if (c->nopt >= CTLFILE_MAXOPT)
		return fail(err, "at most %d socket options", CTLFILE_MAXOPT);
	c->opt[c->nopt++] = (struct ctl_sockopt){ d->level, d->opt, (uint64_t)v };
	return 0;
}

int ctlfile_option(struct ctlfile *c, const char *opt, const char *val, struct ctl_error *err)
{
	if (!strcmp(opt, "--sockopt"))
		return parse_sockopt(c, val, err);
	for (size_t k = 1; k < NKINDS; k++) {
		if (!kind_opt[k] || strcmp(opt, kind_opt[k]))
			continue;
		if (c->kind)
			return fail(err, "only one target: %s after %s", opt, kind_opt[c->kind]);
		return parse_target(c, (enum ctl_kind)k, val, err);
	}
	errno = ENOENT;
	return -1;
}

/* Append text to buf at *n (n counts what did not fit too). */
static void put_raw(char *buf, size_t size, size_t *n, const char *s)
{
	for (; *s; s++, (*n)++)
		if (*n + 1 < size)
			buf[*n] = *s;
}

/* Append s single-quoted when it holds anything a shell treats specially. */
static void put_word(char *buf, size_t size, size_t *n, const char *s)
{
	int plain = *s != 0;
	for (const char *p = s; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_/.:,=@%+-", *p))
			plain = 0;
	if (plain) {
		put_raw(buf, size, n, s);
		return;
	}
	put_raw(buf, size, n, "'");
	for (char ch[2] = { 0, 0 }; *s; s++) {
		ch[0] = *s;
		put_raw(buf, size, n, *s == '\'' ? "'\\''" : ch);
	}
	put_raw(buf, size, n, "'");
}

int ctlfile_format(const struct ctlfile *c, char *buf, size_t size)
{
	char val[sizeof c->path + 64];
	size_t n = 0;

	if (c->kind < 1 || c->kind >= (int)NKINDS) {
		errno = EINVAL;
		return -1;
	}
	switch (c->kind) {
	case CTL_VSOCK:
		if (c->cid == CTLFILE_CID_ANY)
			snprintf(val, sizeof val, "any:%u", c->port);
		else
			snprintf(val, sizeof val, "%u:%u", c->cid, c->port);
		break;
	case CTL_FIRECRACKER:
		snprintf(val, sizeof val, "%.*s:%u", (int)sizeof c->path, c->path, c->port);
		break;
	case CTL_TIPC:
		snprintf(val, sizeof val, "%u,%u,%u,%u,%u", c->tipc_addrtype, c->tipc_scope, c->tipc_type,
			 c->tipc_lower, c->tipc_upper);
		break;
	case CTL_UNIX:
	case CTL_ABSTRACT:
		snprintf(val, sizeof val, "%.*s", (int)sizeof c->path, c->path);
		break;
	case CTL_TCP: {
		struct sockaddr_in6 s6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)c->port) };
		struct sockaddr_in s4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)c->port) };
		int r;
		if (addr_is_v4mapped(c->addr)) {
			memcpy(&s4.sin_addr, c->addr + 12, 4);
			r = addr_format((struct sockaddr *)&s4, sizeof s4, val, sizeof val);
		} else {
			memcpy(&s6.sin6_addr, c->addr, 16);
			r = addr_format((struct sockaddr *)&s6, sizeof s6, val, sizeof val);
		}
		if (r < 0)
			return -1;
		break;
	}
	}
	put_raw(buf, size, &n, kind_opt[c->kind]);
	put_raw(buf, size, &n, " ");
	put_word(buf, size, &n, val);
	for (unsigned i = 0; i < c->nopt; i++) {
		const struct optdef *d = optdef_find(c->opt[i].level, c->opt[i].name);
		if (!d) {
			errno = EINVAL;
			return -1;
		}
		snprintf(val, sizeof val, " --sockopt %s=%llu", d->name, (unsigned long long)c->opt[i].value);
		put_raw(buf, size, &n, val);
	}
	if (size)
		buf[n < size ? n : size - 1] = 0;
	if (n >= size) {
		errno = ENOSPC;
		return -1;
	}
	return (int)n;
}

void ctlfile_sockaddr(const struct ctlfile *c, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	switch (c->kind) {
	case CTL_VSOCK: {
		struct sockaddr_vm *vm = (struct sockaddr_vm *)ss;
		vm->svm_family = AF_VSOCK;
		vm->svm_cid = c->cid;
		vm->svm_port = c->port;
		*len = sizeof *vm;
		return;
	}
	case CTL_TIPC: {
		struct sockaddr_tipc *ti = (struct sockaddr_tipc *)ss;
		ti->family = AF_TIPC;
		ti->addrtype = c->tipc_addrtype;
		ti->scope = (signed char)c->tipc_scope;
		ti->addr.nameseq.type = c->tipc_type;
		ti->addr.nameseq.lower = c->tipc_lower;
		ti->addr.nameseq.upper = c->tipc_upper;
		*len = sizeof *ti;
		return;
	}
	case CTL_FIRECRACKER:
	case CTL_UNIX:
	case CTL_ABSTRACT: {
		struct sockaddr_un *un = (struct sockaddr_un *)ss;
		size_t n = strnlen(c->path, sizeof c->path), skip = c->kind == CTL_ABSTRACT;
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path + skip, c->path, n);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + skip + n + !skip);
		return;
	}
	case CTL_TCP:
		if (addr_is_v4mapped(c->addr)) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)c->port);
			memcpy(&s4->sin_addr, c->addr + 12, 4);
			*len = sizeof *s4;
		} else {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)c->port);
			memcpy(&s6->sin6_addr, c->addr, 16);
			*len = sizeof *s6;
		}
		return;
	}
	*len = 0;
}

/* --- files ---------------------------------------------------------------- */

int ctlfile_create(const char *path, const struct ctlfile *c, mode_t mode)
{
	uint8_t b[CTLFILE_MAXLEN];
	ssize_t len = ctlfile_encode(c, b, sizeof b, NULL);
	if (len < 0)
		return -1;
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
	if (fd < 0)
		return -1;
	/* the mode asked, whatever the umask */
	int r = fchmod(fd, mode & 07777);
	for (ssize_t o = 0; !r && o < len;) {
		ssize_t w = write(fd, b + o, (size_t)(len - o));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = -1;
			break;
		}
		o += w;
	}
	if (close(fd))
		r = -1;
	if (r) {
		int e = errno;
		unlink(path);
		errno = e;
	}
	return r;
}

int ctlfile_read(const char *path, struct ctlfile *out, struct ctl_error *err)
{
	uint8_t b[CTLFILE_MAXLEN + 1];
	struct stat st;
	size_t len = 0;

	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	int e = fstat(fd, &st) ? errno : S_ISREG(st.st_mode) ? 0 : ENOTSOCK;
	if (e) {
		close(fd);
		errno = e;
		return -1;
	}
	while (len < sizeof b) {
		ssize_t r = read(fd, b + len, sizeof b - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			e = errno;
			close(fd);
			errno = e;
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	if (!ctlfile_is(b, len)) {
		errno = ENOTSOCK;
		return -1;
	}
	return ctlfile_decode(b, len, out, err);
}
