/*
 * fdpass: file descriptors over AF_UNIX with SCM_RIGHTS (unix(7), cmsg(3)),
 * and the versioned metadata record sent with a passed socket. The record
 * layout is in fdpass.h; sockgate-server(8) documents it for receivers.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

#include "be.h"
#include "fdpass.h"

/* Fixed part of a version 1 record, up to and including the name length. */
#define META_FIXED 43

/*
 * Room for as many fds as the kernel passes in one message (SCM_MAX_FD),
 * so that surplus fds arrive here and can be closed, rather than being
 * dropped by the kernel with MSG_CTRUNC.
 */
#define RECV_MAXFDS 253

int fdpass_send(int sock, const int *fds, size_t nfds, const void *data, size_t len, int flags)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(FDPASS_MAXFDS * sizeof(int))];
	} c;
	static const char zero;

	if (nfds < 1 || nfds > FDPASS_MAXFDS || (len && !data)) {
		errno = EINVAL;
		return -1;
	}
	if (!len) {
		/* a message must carry data for the fds to ride on */
		data = &zero;
		len = 1;
	}
	memset(&c, 0, sizeof c);
	struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = c.buf, .msg_controllen = CMSG_SPACE(nfds * sizeof(int)),
	};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));

	ssize_t n;
	do
		n = sendmsg(sock, &mh, flags | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;

	/*
	 * Datagram and seqpacket sends are whole. A stream may take part: the
	 * fds went with the first byte, so the rest must follow, and the
	 * caller's MSG_DONTWAIT cannot apply any more (the fds are gone).
	 */
	const char *p = (const char *)data + n;
	size_t left = len - (size_t)n;
	while (left) {
		n = send(sock, p, left, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		left -= (size_t)n;
	}
	return 0;
}

void fdpass_parse(struct msghdr *mh, int *fds, size_t *nfds, struct ucred *cr)
{
	size_t room = *nfds;

	*nfds = 0;
	if (cr) {
		cr->pid = 0;
		cr->uid = (uid_t)-1;
		cr->gid = (gid_t)-1;
	}
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET)
			continue;
		if (cm->cmsg_type == SCM_CREDENTIALS && cr && cm->cmsg_len >= CMSG_LEN(sizeof *cr)) {
			memcpy(cr, CMSG_DATA(cm), sizeof *cr);
			continue;
		}
		if (cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *d = CMSG_DATA(cm);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, d + i * sizeof(int), sizeof fd);
			if (*nfds < room)
				fds[(*nfds)++] = fd;
			else
				close(fd);
		}
	}
}

ssize_t fdpass_recv_from(int sock, int *fds, size_t *nfds, void *data, size_t len, int flags,
			 struct ucred *cr)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(RECV_MAXFDS * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
	} c;
	char dummy;

	/*
	 * A caller that wants only fds gives len 0; the byte the fds ride on
	 * goes to a scratch buffer and its truncation is not an error.
	 */
	struct iovec iov = { .iov_base = len ? data : &dummy, .iov_len = len ? len : 1 };
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = c.buf, .msg_controllen = sizeof c.buf,
	};
	ssize_t n;
	do
		n = recvmsg(sock, &mh, flags);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		*nfds = 0;
		return -1;
	}
	fdpass_parse(&mh, fds, nfds, cr);
	if (cr && cr->pid == 0) {
		/* no SCM_CREDENTIALS: a connected socket still knows its peer */
		struct ucred pc;
		socklen_t sl = sizeof pc;
		int e = errno;
		if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &pc, &sl) == 0 && pc.pid)
			*cr = pc;
		errno = e;
	}
	if ((mh.msg_flags & MSG_CTRUNC) || (len && (mh.msg_flags & MSG_TRUNC))) {
		errno = EMSGSIZE;
		return -1;
	}
	return len ? n : 0;
}

ssize_t fdpass_recv(int sock, int *fds, size_t *nfds, void *data, size_t len, int flags)
{
	return fdpass_recv_from(sock, fds, nfds, data, len, flags | MSG_CMSG_CLOEXEC, NULL);
}

int fdpass_receiver_setup(int sock)
{
	int on = 1;
	return setsockopt(sock, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
}

int fdpass_sender_ok(const struct ucred *cr, uid_t uid, gid_t gid)
{
	if (!cr->pid && cr->uid == (uid_t)-1)
		return 0;	/* nobody said who sent it */
	return cr->uid == 0 || cr->uid == geteuid() || (uid != (uid_t)-1 && cr->uid == uid) ||
	       (gid != (gid_t)-1 && cr->gid == gid);
}

int fdpass_fd_check(int fd, int type, unsigned families)
{
	int t = 0, d = 0;
	socklen_t l = sizeof t;

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l) < 0)
		return errno = ENOTSOCK, -1;
	if (type && t != type)
		return errno = EPROTOTYPE, -1;
	l = sizeof d;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &l) < 0)
		return errno = ENOTSOCK, -1;
	unsigned bit = d == AF_INET ? FDPASS_FAM_INET : d == AF_INET6 ? FDPASS_FAM_INET6 :
		       d == AF_UNIX ? FDPASS_FAM_UNIX : 0;
	if (families && !(families & bit))
		return errno = EAFNOSUPPORT, -1;
	return d;
}

/* One address into its family byte, port and 16 address bytes. */
static int put_addr(const struct sockaddr_storage *ss, socklen_t sl, unsigned char *fam,
		    unsigned char *port, unsigned char *a16)
{
	memset(a16, 0, 16);
	switch (ss->ss_family) {
	case AF_UNSPEC:
		*fam = 0;
		put16(port, 0);
		return 0;
	case AF_INET: {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		if (sl && sl < sizeof *in)
			break;
		*fam = AF_INET;
		put16(port, ntohs(in->sin_port));
		memcpy(a16, &in->sin_addr, 4);
		return 0;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		if (sl && sl < sizeof *in6)
			break;
		*fam = AF_INET6;
		put16(port, ntohs(in6->sin6_port));
		memcpy(a16, &in6->sin6_addr, 16);
		return 0;
	}
	}
	errno = EAFNOSUPPORT;
	return -1;
}

static int get_addr(unsigned fam, const unsigned char *port, const unsigned char *a16,
		    struct sockaddr_storage *ss, socklen_t *sl)
{
	memset(ss, 0, sizeof *ss);
	switch (fam) {
	case 0:
		ss->ss_family = AF_UNSPEC;
		*sl = 0;
		return 0;
	case AF_INET: {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)get16(port));
		memcpy(&in->sin_addr, a16, 4);
		*sl = sizeof *in;
		return 0;
	}
	case AF_INET6: {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)get16(port));
		memcpy(&in6->sin6_addr, a16, 16);
		*sl = sizeof *in6;
		return 0;
	}
	}
	return -1;
}

ssize_t fdpass_meta_encode(const struct fdpass_meta *m, void *buf, size_t size)
{
	unsigned char *p = buf;
	size_t nl = strnlen(m->rule, sizeof m->rule);

	if (nl > 255) {
		errno = ENOSPC;
		return -1;
	}
	size_t total = META_FIXED + nl;
	if (size < total) {
		errno = ENOSPC;
		return -1;
	}
	p[0] = FDPASS_META_VERSION;
	p[1] = 0;
	put16(p + 2, (unsigned)total);
	if (put_addr(&m->local, m->local_len, p + 4, p + 6, p + 10) < 0 ||
	    put_addr(&m->remote, m->remote_len, p + 5, p + 8, p + 26) < 0)
		return -1;
	p[42] = (unsigned char)nl;
	memcpy(p + 43, m->rule, nl);
	return (ssize_t)total;
}

int fdpass_meta_decode(const void *buf, size_t len, struct fdpass_meta *m)
{
	const unsigned char *p = buf;

	memset(m, 0, sizeof *m);
	if (len >= 1 && p[0] != FDPASS_META_VERSION) {
		errno = EPROTONOSUPPORT;
		return -1;
	}
	if (len < META_FIXED)
		goto bad;
	size_t total = get16(p + 2), nl = p[42];
	if (total < META_FIXED + nl || total > len)
		goto bad;
	if (get_addr(p[4], p + 6, p + 10, &m->local, &m->local_len) < 0 ||
	    get_addr(p[5], p + 8, p + 26, &m->remote, &m->remote_len) < 0)
		goto bad;
	if (memchr(p + 43, 0, nl))
		goto bad;
	memcpy(m->rule, p + 43, nl);
	m->rule[nl] = 0;
	m->version = p[0];
	return 0;
bad:
	memset(m, 0, sizeof *m);
	errno = EINVAL;
	return -1;
}

int fdpass_peer_check(int sock, uid_t uid, gid_t gid)
{
	struct ucred cr;
	socklen_t sl = sizeof cr;

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cr, &sl) < 0)
		return -1;
	/* an unconnected or datagram socket reports no peer: uid -1 */
	if ((uid != (uid_t)-1 && cr.uid != uid) || (gid != (gid_t)-1 && cr.gid != gid)) {
		errno = EPERM;
		return -1;
	}
	return 0;
}
