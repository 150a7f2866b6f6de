/*
 * UDP daemons under `bind udp ADDRESS -> unix PATH` (or abstract NAME)
 * rules (that say udp), and the port a bind to port 0 gets (for in.c too).
 *
 * The daemon's datagram socket becomes an AF_UNIX datagram socket bound at
 * PATH. A Unix sender has no inet address, so each one (by its socket
 * file, or abstract name) is shown to the daemon as the rule's source=
 * address, else the loopback address of the socket's family, with a port
 * of its own; a reply sent to that address and port goes to that sender's
 * Unix address. USRV_N senders are remembered; a reply for one forgotten
 * since is dropped, as a datagram to a port nobody has would be.
 *
 * Port 0: the kernel picks a free port of the family and protocol (a
 * socket bound to port 0 and closed at once), one whose path the rule's
 * template gives is not held by a live socket; that port is the one
 * getsockname() answers and the one %p puts in the path.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "real.h"
#include "sg.h"
#include "sockfile.h"

#define USRV_N 256
#define PORT0_TRIES 8

struct usrv {
	struct sockaddr_storage base;	/* the address senders are shown with (port 0) */
	socklen_t baselen;
	unsigned next;			/* the port the next new sender gets */
	struct usrv_ent {
		struct sockaddr_un un;
		socklen_t unlen;
		uint16_t port;		/* 0: free */
	} e[USRV_N];
};

int in_port0(const struct sockaddr *sa, socklen_t len, int type, const char *tmpl, int abstract,
	     struct sockaddr_storage *out)
{
	int fam = sa->sa_family;
	for (int i = 0; i < PORT0_TRIES; i++) {
		int s = (int)REAL(socket)(fam, type | SOCK_CLOEXEC, 0);
		if (s < 0)
			return -1;
		struct sockaddr_storage any;
		socklen_t al = len;
		memset(&any, 0, sizeof any);
		any.ss_family = (sa_family_t)fam;	/* the wildcard: the program may have no address */
		int r = REAL(bind)(s, (struct sockaddr *)&any, len);
		if (r == 0)
			r = REAL(getsockname)(s, (struct sockaddr *)&any, &al);
		int e = errno;
		REAL(close)(s);
		if (r < 0)
			return errno = e, -1;
		memcpy(out, sa, len);
		uint16_t port = fam == AF_INET ? ((struct sockaddr_in *)&any)->sin_port
					       : ((struct sockaddr_in6 *)&any)->sin6_port;
		if (fam == AF_INET)
			((struct sockaddr_in *)out)->sin_port = port;
		else
			((struct sockaddr_in6 *)out)->sin6_port = port;
		char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
		struct sg_addr a;
		if (!tmpl || abstract || rules_expand(tmpl, (struct sockaddr *)out, path, sizeof path) < 0 ||
		    addr_unix(&a, path, 0) < 0)
			return 0;
		e = errno;
		if (sockfile_clear(&a.u.un, a.len) >= 0)
			return errno = e, 0;	/* nobody there (a stale file is gone) */
		errno = e;
	}
	return errno = EADDRINUSE, -1;
}

int sock_is(int fd, int type, int domain)
{
	int t = 0, d = 0;
	socklen_t l = sizeof t;
	if (REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &t, &l) < 0 || t != type)
		return 0;
	l = sizeof d;
	return REAL(getsockopt)(fd, SOL_SOCKET, SO_DOMAIN, &d, &l) == 0 && d == domain;
}

int in_udp_bind(int fd, const struct sockaddr *sa, socklen_t len, int *handled)
{
	*handled = 0;
	if (!sa || len < sizeof(sa_family_t) || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    len < (sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) ||
	    !conf()->have_bind)
		return 0;
	const struct ruleset *rs;
	const struct rule *r = sg_match(RULE_BIND, RULE_UDP, sa, &rs);
	/* only a rule that says udp: UDP sockets of programs that rules without a protocol covered stay as they were */
	if (!r || r->proto != RULE_UDP || (r->action != ACT_UNIX && r->action != ACT_ABSTRACT))
		return 0;
	int domain = sa->sa_family;
	if (!sock_is(fd, SOCK_DGRAM, domain))
		return 0;
	*handled = 1;

	const char *tmpl = rules_str(rs, r->arg);
	int abstract = r->action == ACT_ABSTRACT;
	struct sockaddr_storage p0;
	if (addr_port(sa) == 0) {
		if (in_port0(sa, len, SOCK_DGRAM, tmpl, abstract, &p0) < 0)
			return -1;
		sa = (struct sockaddr *)&p0;
	}
	struct sgconn *c = conn_listener(domain, r, r->action, ST_UDPSRV, sa, len);
	struct usrv *u = calloc(1, sizeof *u);
	struct sg_addr a;
	int s = -1;
	if (!c || !u || !tmpl || rules_expand(tmpl, sa, c->path, sizeof c->path) < 0 ||
	    addr_unix(&a, c->path, abstract) < 0 ||
	    (s = REAL(socket)(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind_unix_path_mode(s, &a.u.un, a.len, r->mode ? (long)r->mode : -1) < 0) {
		int e = c && u ? errno : ENOMEM;
		if (s >= 0)
			REAL(close)(s);
		free(c);
		free(u);
		return errno = e, -1;
	}
	c->type = SOCK_DGRAM;
	c->srv = u;
	u->next = 1;
	const char *src = rules_str(rs, r->source);
	struct sg_addr sa2;
	u->baselen = sizeof u->base;
	if (src && addr_parse_inet(src, &sa2) == 0) {
		u->base = sa2.u.ss;
		if (addr_to_family(&u->base, &u->baselen, domain) < 0)
			u->baselen = 0;
	} else {
		u->baselen = 0;
	}
	if (!u->baselen) {
		memset(&u->base, 0, sizeof u->base);
		if (domain == AF_INET6) {
			struct sockaddr_in6 *p = (struct sockaddr_in6 *)&u->base;
			p->sin6_family = AF_INET6;
			p->sin6_addr = in6addr_loopback;
			u->baselen = sizeof *p;
		} else {
			struct sockaddr_in *p = (struct sockaddr_in *)&u->base;
			p->sin_family = AF_INET;
			p->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			u->baselen = sizeof *p;
		}
	}
	sockopt_carry(fd, s, domain, SOCK_DGRAM);
	if (sg_swap_in(fd, s, c, SF_IN) < 0) {
		int e = errno;
		if (!c->refs) {
			free(u);
			free(c);
		}
		return errno = e, -1;
	}
	return 0;
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

socklen_t in_udp_peer(struct sgconn *c, const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out)
{
	struct usrv *u = c->srv;
	*out = u->base;
	uint16_t port = 0;
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
	if (sa->sa_family == AF_UNIX && len > sizeof(sa_family_t) && len <= sizeof(struct sockaddr_un)) {
		for (unsigned i = 0; i < USRV_N && !port; i++)
			if (u->e[i].port && u->e[i].unlen == len && !memcmp(&u->e[i].un, un, len))
				port = u->e[i].port;
		if (!port) {
			/* a new sender: the next port, in the slot of that port (the oldest sender there goes) */
			port = (uint16_t)u->next;
			u->next = u->next >= 65535 ? 1 : u->next + 1;
			struct usrv_ent *e = &u->e[port % USRV_N];
			memcpy(&e->un, un, len);
			e->unlen = len;
			e->port = port;
		}
	}
	set_port(out, port);	/* an unnamed sender: port 0, which cannot be answered */
	return u->baselen;
}

ssize_t in_udp_send(int fd, const struct msghdr *msg, int flags)
{
	const struct sockaddr *sa = msg->msg_name;
	if (!sa || msg->msg_namelen < sizeof(sa_family_t) || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return REAL(sendmsg)(fd, msg, flags);
	struct sockaddr_storage to;
	socklen_t tl = msg->msg_namelen < sizeof to ? msg->msg_namelen : sizeof to;
	memset(&to, 0, sizeof to);
	memcpy(&to, sa, tl);
	int port = addr_port((struct sockaddr *)&to);
	uint8_t want[16], have[16];

	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	struct usrv *u = c && c->state == ST_UDPSRV ? c->srv : NULL;
	if (!u || port < 0 || addr_to16((struct sockaddr *)&to, want) < 0 ||
	    addr_to16((struct sockaddr *)&u->base, have) < 0 || memcmp(want, have, 16)) {
		pthread_mutex_unlock(&sg_lock);
		return errno = ENETUNREACH, -1;	/* only the senders can be answered */
	}
	struct usrv_ent *e = &u->e[port % USRV_N];
	struct sockaddr_un un;
	socklen_t ul = 0;
	if (port && e->port == port) {
		un = e->un;
		ul = e->unlen;
	}
	pthread_mutex_unlock(&sg_lock);
	if (!ul)
		return iov_total(msg->msg_iov, msg->msg_iovlen);	/* a sender no longer known: lost */
	struct msghdr m = *msg;
	m.msg_name = &un;
	m.msg_namelen = ul;
	ssize_t n = REAL(sendmsg)(fd, &m, flags);
	if (n < 0 && (errno == ECONNREFUSED || errno == ENOENT))
		return iov_total(msg->msg_iov, msg->msg_iovlen);	/* the sender is gone: UDP says nothing */
	return n;
}
