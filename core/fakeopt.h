/*
 * fakeopt: the socket options of a TCP or UDP socket that is an AF_UNIX
 * socket underneath (the library's redirected sockets, and sockgate-run
 * --seccomp's), shared by both so that a program sees the same answers
 * under either. The Unix socket has no TCP, IP or IPv6 level, and its
 * SO_DOMAIN and SO_PROTOCOL give it away: those are answered here, setting
 * them succeeds without effect and what was set reads back; everything
 * else at SOL_SOCKET is the Unix socket's to answer.
 */
#ifndef SOCKGATE_FAKEOPT_H
#define SOCKGATE_FAKEOPT_H

#include <sys/socket.h>

#define FAKEOPT_N 12	/* options remembered per socket (more are accepted, read back as unset) */

struct fakeopt {
	struct fakeopt_ent {
		int level, name, val;
	} e[FAKEOPT_N];
	unsigned n;
};

enum {
	FAKEOPT_KERNEL,	/* the Unix socket's own answer */
	FAKEOPT_INT,	/* an int, *val */
	FAKEOPT_ZERO,	/* zeros, as long as the caller's buffer (an option of no known value) */
};

/*
 * getsockopt(level, name) of a socket the program made of family and
 * type: one of the above. m (the values set, may be NULL) is consulted
 * first; unset options read as Linux's defaults where zero would make no
 * sense (TCP_MAXSEG: loopback's, as the socket's peer is on this host).
 */
int fakeopt_get(const struct fakeopt *m, int level, int name, int family, int type, int *val);

/*
 * setsockopt(level, name, val, len): 1 when answered here (success; an
 * int or a byte is remembered in m when m is not NULL), 0 when it is the
 * Unix socket's (SOL_SOCKET).
 */
int fakeopt_set(struct fakeopt *m, int level, int name, const void *val, socklen_t len);

#endif
