/*
 * The answers of core/fakeopt.h: a table of the few options whose unset
 * value is not zero, and a small per-socket memory of what was set. The
 * defaults are Linux's (tcp_keepalive_time, _intvl, _probes and
 * ip_default_ttl in Documentation/networking/ip-sysctl.rst).
 */
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include "fakeopt.h"

static const struct fakeopt_def {
	int level, name, type, val;	/* type 0: any */
} defaults[] = {
	/* loopback's MTU of 65536 less the IPv4 and TCP headers with timestamps (iperf3 checks it) */
	{ IPPROTO_TCP, TCP_MAXSEG, SOCK_STREAM, 65483 },
	{ IPPROTO_TCP, TCP_KEEPIDLE, SOCK_STREAM, 7200 },
	{ IPPROTO_TCP, TCP_KEEPINTVL, SOCK_STREAM, 75 },
	{ IPPROTO_TCP, TCP_KEEPCNT, SOCK_STREAM, 9 },
	{ IPPROTO_IP, IP_TTL, 0, 64 },
	{ IPPROTO_IPV6, IPV6_UNICAST_HOPS, 0, 64 },
};

/* options the kernel reads back as 0 or 1 whatever was set */
static int boolean(int level, int name)
{
	return (level == IPPROTO_TCP && (name == TCP_NODELAY || name == TCP_CORK)) ||
	       (level == IPPROTO_IPV6 && name == IPV6_V6ONLY);
}

int fakeopt_get(const struct fakeopt *m, int level, int name, int family, int type, int *val)
{
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_DOMAIN:
			*val = family;
			return FAKEOPT_INT;
		case SO_TYPE:
			*val = type;
			return FAKEOPT_INT;
		case SO_PROTOCOL:
			*val = type == SOCK_STREAM ? IPPROTO_TCP : IPPROTO_UDP;
			return FAKEOPT_INT;
		}
		return FAKEOPT_KERNEL;
	}
	for (unsigned i = 0; m && i < m->n && i < FAKEOPT_N; i++)
		if (m->e[i].level == level && m->e[i].name == name) {
			*val = m->e[i].val;
			return FAKEOPT_INT;
		}
	for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
		if (defaults[i].level == level && defaults[i].name == name &&
		    (!defaults[i].type || defaults[i].type == type)) {
			*val = defaults[i].val;
			return FAKEOPT_INT;
		}
	return FAKEOPT_ZERO;
}

int fakeopt_set(struct fakeopt *m, int level, int name, const void *val, socklen_t len)
{
	int v;

	if (level == SOL_SOCKET)
		return 0;
	/* an int, or a byte (IP_TOS and IP_TTL take either); anything longer is accepted, not kept */
	if (!m || !val || (len != sizeof v && len != 1))
		return 1;
	if (len == 1)
		v = *(const unsigned char *)val;
	else
		memcpy(&v, val, sizeof v);
	if (boolean(level, name))
		v = v != 0;
	unsigned i = 0;
	while (i < m->n && i < FAKEOPT_N && !(m->e[i].level == level && m->e[i].name == name))
		i++;
	if (i == FAKEOPT_N)
		return 1;	/* full: accepted, reads back as unset */
	m->e[i] = (struct fakeopt_ent){ level, name, v };
	if (i == m->n)
		m->n++;
	return 1;
}
