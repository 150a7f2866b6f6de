/*
 * libsockgate.so: runs inside an unchanged program (LD_PRELOAD). Where no
 * rule matches, every call goes straight to libc: each wrapper first reads
 * one atomic flag word of the fd (sg.h) and only a redirected fd takes the
 * slow path. See libsockgate(7).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>
#include <netinet/in.h>

#include "real.h"
#include "sg.h"

/* ---- socket creation -------------------------------------------------------- */

EXPORT int socket(int domain, int type, int protocol)
{
	if (domain != AF_INET && domain != AF_INET6)
		return REAL(socket)(domain, type, protocol);
	const struct sgconf *cf = conf();
	if (unlikely(domain == AF_INET6) && cf->block_inet6) {
		errno = EAFNOSUPPORT;	/* unsock's UNSOCK_BLOCK_INET6 */
		return -1;
	}
	int t = type & 0xf;
	int icmp = (t == SOCK_DGRAM || t == SOCK_RAW) && protocol == (domain == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6);
	if (unlikely(icmp && cf->have_icmp)) {
		int handled;
		int fd = out_broker_socket(domain, type, &handled);
		if (handled)
			return fd;
	}
	int fd = REAL(socket)(domain, type, protocol);
	/* remember stream/datagram, so an unmatched connect() needs no getsockopt() */
	if (fd >= 0 && cf->have_connect && !icmp) {
		if (t == SOCK_STREAM || t == SOCK_DGRAM)
			slot_hint(fd, t == SOCK_STREAM ? SF_HSTREAM : SF_HDGRAM);
	}
	return fd;
}

/* ---- connect and sends ------------------------------------------------------ */

EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int handled;
	int r = out_connect(fd, sa, len, &handled);
	if (likely(!handled))
		return REAL(connect)(fd, sa, len);
	return r;
}

/* 0: go on; -1: fail with errno; 1: pretend n bytes went (datagram blackhole) */
static inline int before_write(int fd)
{
	if (likely(!(fd_flags(fd) & SF_OUT)))
		return 0;
	return out_before_write(fd);
}

/* A connected datagram socket with a per-datagram header: through sendmsg. */
static ssize_t via_sendmsg(int fd, const void *buf, size_t n, int flags)
{
	struct iovec iov = { (void *)buf, n };
	struct msghdr m;
	int handled;

	memset(&m, 0, sizeof m);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	ssize_t r = out_sendmsg(fd, &m, flags, &handled);
	return handled ? r : REAL(sendmsg)(fd, &m, flags);
}

EXPORT ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa, socklen_t len)
{
	unsigned f = fd_flags(fd);

	if (likely(!f && !sa))
		return REAL(sendto)(fd, buf, n, flags, sa, len);
	if (f & SF_OUT) {
		int b = before_write(fd);
		if (b < 0)
			return -1;
		if (b > 0)
			return (ssize_t)n;
	}
	if (sa || (f & SF_IN)) {
		struct iovec iov = { (void *)buf, n };
		struct msghdr m;
		int handled;

		memset(&m, 0, sizeof m);
		m.msg_name = (void *)sa;
		m.msg_namelen = len;
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		ssize_t r = out_sendmsg(fd, &m, flags, &handled);
		if (handled)
			return r;
	}
	int b = before_write(fd);
	if (b < 0)
		return -1;
	if (b > 0)
		return (ssize_t)n;
	return REAL(sendto)(fd, buf, n, flags, sa, len);
}

/*
 * The wrappers that other wrappers build on are static functions, called
 * directly: a call to an exported symbol would go through the PLT and could
 * reach another library's (or the program's) definition first.
 */
static ssize_t sg_sendmsg(int fd, const struct msghdr *msg, int flags)
{
	unsigned f = fd_flags(fd);

	if (likely(!f && !msg->msg_name))
		return REAL(sendmsg)(fd, msg, flags);
	if (f & SF_OUT) {
		int b = before_write(fd);
		if (b < 0)
			return -1;
		if (b > 0)
			return iov_total(msg->msg_iov, msg->msg_iovlen);
	}
	if (msg->msg_name || (f & SF_IN)) {
		int handled;
		ssize_t r = out_sendmsg(fd, msg, flags, &handled);
		if (handled)
			return r;
	}
	int b = before_write(fd);
	if (b < 0)
		return -1;
	if (b > 0)
		return iov_total(msg->msg_iov, msg->msg_iovlen);
	return REAL(sendmsg)(fd, msg, flags);
}

EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	return sg_sendmsg(fd, msg, flags);
}

EXPORT ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	unsigned f = fd_flags(fd);

	if (likely(!(f & (SF_OUT | SF_IN))))
		return REAL(send)(fd, buf, n, flags);
	int b = before_write(fd);
	if (b < 0)
		return -1;
	if (b > 0)
		return (ssize_t)n;
	if (f & SF_IN)
		return via_sendmsg(fd, buf, n, flags);
	return REAL(send)(fd, buf, n, flags);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	unsigned f = fd_flags(fd);

	if (likely(!(f & (SF_OUT | SF_IN))))
		return REAL(write)(fd, buf, n);
	int b = before_write(fd);
	if (b < 0)
		return -1;
	if (b > 0)
		return (ssize_t)n;
	if (f & SF_IN)
		return via_sendmsg(fd, buf, n, 0);	/* datagrams: a header may go first */
	return REAL(write)(fd, buf, n);
}

EXPORT ssize_t writev(int fd, const struct iovec *iov, int n)
{
	unsigned f = fd_flags(fd);

	if (likely(!(f & (SF_OUT | SF_IN))))
		return REAL(writev)(fd, iov, n);
	int b = before_write(fd);
	if (b < 0)
		return -1;
	if (b > 0)
		return iov_total(iov, (size_t)n);
	if ((f & SF_IN) && n >= 0) {
		struct msghdr m;
		int handled;
		memset(&m, 0, sizeof m);
		m.msg_iov = (struct iovec *)iov;
		m.msg_iovlen = (size_t)n;
		ssize_t r = out_sendmsg(fd, &m, 0, &handled);
		if (handled)
			return r;
	}
	return REAL(writev)(fd, iov, n);
}

EXPORT ssize_t sendfile(int out, int in, off_t *off, size_t n)
{
	int b = before_write(out);
	if (b < 0)
		return -1;
	return REAL(sendfile)(out, in, off, n);
}

EXPORT ssize_t sendfile64(int out, int in, off64_t *off, size_t n)
{
	int b = before_write(out);
	if (b < 0)
		return -1;
	return REAL(sendfile64)(out, in, off, n);
}

EXPORT ssize_t splice(int in, loff_t *offin, int out, loff_t *offout, size_t n, unsigned flags)
{
	int b = before_write(out);
	if (b < 0)
		return -1;
	return REAL(splice)(in, offin, out, offout, n, flags);
}

static void copy_out(const void *a, socklen_t alen, struct sockaddr *sa, socklen_t *len)
{
	memcpy(sa, a, alen < *len ? alen : *len);
	*len = alen;
}

/*
 * sendmmsg(): the whole batch goes to libc unless the fd is ours or a
 * message's destination matches a rule; then message by message through
 * sg_sendmsg() above (the count sent, or the error of the first one).
 */
EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int n, MMSG_FLAGS flags)
{
	int ours = (fd_flags(fd) & (SF_OUT | SF_IN | SF_SWAPPED)) != 0;

	for (unsigned i = 0; !ours && i < n; i++)
		if (vec[i].msg_hdr.msg_name && out_would_handle(fd, vec[i].msg_hdr.msg_name, vec[i].msg_hdr.msg_namelen))
			ours = 1;
	if (likely(!ours))
		return REAL(sendmmsg)(fd, vec, n, flags);
	unsigned i;
	for (i = 0; i < n; i++) {
		ssize_t r = sg_sendmsg(fd, &vec[i].msg_hdr, flags);
		if (r < 0)
			return i ? (int)i : -1;
		vec[i].msg_len = (unsigned)r;
	}
	return (int)i;
}

/* ---- receives: datagram peers are shown as the original destination -------- */

static int pending_recv(int fd)
{
	/* a pending connect's placeholder is no socket: nothing to read yet */
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	int st = c ? c->state : 0;
	pthread_mutex_unlock(&sg_lock);
	if (st == ST_PENDING || st == ST_BLACKHOLE) {
		errno = EAGAIN;
		return 1;
	}
	if (st == ST_FAILED) {
		errno = ENOTCONN;
		return 1;
	}
	return 0;
}

static ssize_t sg_recv(int fd, void *buf, size_t n, int flags)
{
	if (likely(!(fd_flags(fd) & SF_IN)) || !pending_recv(fd))
		return REAL(recv)(fd, buf, n, flags);
	return -1;
}

EXPORT ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return sg_recv(fd, buf, n, flags);
}

EXPORT ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		abort();	/* what glibc's fortify check does */
	return sg_recv(fd, buf, n, flags);
}

static ssize_t sg_recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *len)
{
	if (likely(!(fd_flags(fd) & SF_IN)))
		return REAL(recvfrom)(fd, buf, n, flags, sa, len);
	if (pending_recv(fd))
		return -1;
	if (!sa || !len)
		return REAL(recvfrom)(fd, buf, n, flags, sa, len);
	/* the unix sender's address may not fit the caller's inet-sized buffer */
	struct sockaddr_storage from;
	socklen_t fl = sizeof from;
	ssize_t r = REAL(recvfrom)(fd, buf, n, flags, (struct sockaddr *)&from, &fl);
	if (r >= 0) {
		out_dgram_peer(fd, (struct sockaddr *)&from, &fl);
		copy_out(&from, fl, sa, len);
	}
	return r;
}

EXPORT ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *len)
{
	return sg_recvfrom(fd, buf, n, flags, sa, len);
}

EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *sa,
			      socklen_t *len)
{
	if (n > buflen)
		abort();	/* what glibc's fortify check does */
	return sg_recvfrom(fd, buf, n, flags, sa, len);
}

EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	if (likely(!(fd_flags(fd) & SF_IN)))
		return REAL(recvmsg)(fd, msg, flags);
	if (pending_recv(fd))
		return -1;
	if (!msg->msg_name)
		return REAL(recvmsg)(fd, msg, flags);
	struct sockaddr_storage from;
	struct msghdr m = *msg;
	m.msg_name = &from;
	m.msg_namelen = sizeof from;
	ssize_t r = REAL(recvmsg)(fd, &m, flags);
	msg->msg_controllen = m.msg_controllen;
	msg->msg_flags = m.msg_flags;
	if (r >= 0) {
		socklen_t fl = m.msg_namelen;
		out_dgram_peer(fd, (struct sockaddr *)&from, &fl);
		copy_out(&from, fl, msg->msg_name, &msg->msg_namelen);
	}
	return r;
}

/* ---- addresses and options --------------------------------------------------- */

/* recvmmsg() on a redirected datagram socket: the batch's senders rewritten like recvmsg()'s. */
EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int n, MMSG_FLAGS flags, struct timespec *timeout)
{
	if (likely(!(fd_flags(fd) & SF_IN)))
		return REAL(recvmmsg)(fd, vec, n, flags, timeout);
	if (pending_recv(fd))
		return -1;
	struct sockaddr_storage from[64];
	void *name[64];
	socklen_t cap[64];
	if (n > 64)
		n = 64;		/* fewer messages per call, as recvmmsg may return */
	for (unsigned i = 0; i < n; i++) {
		name[i] = vec[i].msg_hdr.msg_name;
		cap[i] = vec[i].msg_hdr.msg_namelen;
		if (name[i]) {
			vec[i].msg_hdr.msg_name = &from[i];
			vec[i].msg_hdr.msg_namelen = sizeof from[i];
		}
	}
	int r = REAL(recvmmsg)(fd, vec, n, flags, timeout);
	for (unsigned i = 0; i < n; i++) {
		if (!name[i])
			continue;
		socklen_t fl = vec[i].msg_hdr.msg_namelen;
		vec[i].msg_hdr.msg_name = name[i];
		vec[i].msg_hdr.msg_namelen = cap[i];
		if (r > 0 && i < (unsigned)r) {
			out_dgram_peer(fd, (struct sockaddr *)&from[i], &fl);
			copy_out(&from[i], fl, name[i], &vec[i].msg_hdr.msg_namelen);
		}
	}
	return r;
}

EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	if (likely(!(fd_flags(fd) & SF_SWAPPED)))
		return REAL(getpeername)(fd, sa, len);
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	if (!c) {
		pthread_mutex_unlock(&sg_lock);
		return REAL(getpeername)(fd, sa, len);
	}
	struct sockaddr_storage p = c->peer;
	socklen_t pl = c->peerlen;
	int st = c->state;
	pthread_mutex_unlock(&sg_lock);
	if ((st != ST_CONNECTED && st != ST_DGRAM) || !pl)
		return errno = ENOTCONN, -1;
	if (!sa || !len)
		return errno = EFAULT, -1;
	copy_out(&p, pl, sa, len);
	return 0;
}

/*
 * u-relay-tproxy's "getsockname hack" (URELAY_TPROXY_LOCAL_FLAGS 0x40000):
 * a socket that is AF_UNIX underneath answers AF_INET6 [::]:0, whatever
 * the family the program made it with.
 */
static int unix_as_any6(struct sockaddr *sa, socklen_t *len)
{
	struct sockaddr_storage l;
	memset(&l, 0, sizeof l);
	l.ss_family = AF_INET6;
	if (!sa || !len)
		return errno = EFAULT, -1;
	copy_out(&l, sizeof(struct sockaddr_in6), sa, len);
	return 0;
}

EXPORT int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	if (likely(!(fd_flags(fd) & SF_SWAPPED))) {
		socklen_t room = len ? *len : 0;
		int r = REAL(getsockname)(fd, sa, len);
		if (likely(r < 0 || room < sizeof(sa_family_t) || sa->sa_family != AF_UNIX))
			return r;
		/* a Unix socket may be a redirected listener from another process (in_adopt) */
		if (!in_adopt(fd)) {
			if (unlikely(conf()->hacks & HACK_GETSOCKNAME))
				return *len = room, unix_as_any6(sa, len);
			return r;
		}
		*len = room;
	}
	if (unlikely(conf()->hacks & HACK_GETSOCKNAME)) {
		struct sockaddr_storage u;
		socklen_t ul = sizeof u;
		if (REAL(getsockname)(fd, (struct sockaddr *)&u, &ul) == 0 && u.ss_family == AF_UNIX)
			return unix_as_any6(sa, len);
	}
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	if (!c) {
		pthread_mutex_unlock(&sg_lock);
		return REAL(getsockname)(fd, sa, len);
	}
	struct sockaddr_storage l;
	socklen_t ll;
	memset(&l, 0, sizeof l);
	if (c->local_known) {
		l = c->local;
		ll = c->locallen;
	} else {
		l.ss_family = (sa_family_t)c->family;
		ll = c->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	}
	pthread_mutex_unlock(&sg_lock);
	if (!sa || !len)
		return errno = EFAULT, -1;
	copy_out(&l, ll, sa, len);
	return 0;
}

static int put_int(void *val, socklen_t *len, int v)
{
	if (!val || !len)
		return errno = EFAULT, -1;
	if (*len >= sizeof v) {
		memcpy(val, &v, sizeof v);
		*len = sizeof v;
	} else if (*len > 0) {
		memset(val, 0, *len);
		memcpy(val, &v, *len);
	}
	return 0;
}

EXPORT int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
{
	if (likely(!(fd_flags(fd) & SF_SWAPPED))) {
		int r = REAL(getsockopt)(fd, level, name, val, len);
		if (likely(r < 0 || level != SOL_SOCKET || name != SO_DOMAIN || !val || !len ||
			   *len < sizeof(int) || *(int *)val != AF_UNIX) || !in_adopt(fd))
			return r;
	}
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	if (!c) {
		pthread_mutex_unlock(&sg_lock);
		return REAL(getsockopt)(fd, level, name, val, len);
	}
	int st = c->state, fam = c->family, type = c->type, err = c->err, v = 0;
	int kind = fakeopt_get(&c->opts, level, name, fam, type, &v);
	if (level == SOL_SOCKET && name == SO_ERROR && st == ST_FAILED)
		c->err = 0;	/* read once, as the kernel does */
	if (level == SOL_SOCKET && st == ST_PENDING && c->s >= 0 && name != SO_ERROR && name != SO_DOMAIN &&
	    name != SO_TYPE && name != SO_PROTOCOL && name != SO_ACCEPTCONN) {
		int r;
		if ((name == SO_SNDTIMEO_OLD || name == SO_SNDTIMEO_NEW) && val && len && *len >= sizeof c->sndtimeo) {
			memcpy(val, &c->sndtimeo, sizeof c->sndtimeo);
			*len = sizeof c->sndtimeo;
			r = 0;
		} else {
			r = REAL(getsockopt)(c->s, level, name, val, len);
		}
		pthread_mutex_unlock(&sg_lock);
		return r;
	}
	pthread_mutex_unlock(&sg_lock);
	int placeholder = st == ST_PENDING || st == ST_BLACKHOLE;

	if (level == SOL_SOCKET) {
		if (kind == FAKEOPT_INT)
			return put_int(val, len, v);	/* SO_DOMAIN, SO_TYPE, SO_PROTOCOL */
		switch (name) {
		case SO_ERROR:
			if (st == ST_FAILED)
				return put_int(val, len, err);
			if (placeholder)
				return put_int(val, len, 0);
			break;
		case SO_ACCEPTCONN:
			return put_int(val, len, st == ST_RECEIVER);
		}
		if (placeholder) {
			if (val && len)
				memset(val, 0, *len);
			return 0;
		}
		return REAL(getsockopt)(fd, level, name, val, len);
	}
	/* TCP, IP and IPv6 options of a socket that is no longer IP: what was set, or core/fakeopt's */
	if (kind == FAKEOPT_INT)
		return put_int(val, len, v);
	if (val && len)
		memset(val, 0, *len);
	return 0;
}

EXPORT int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	if (likely(!(fd_flags(fd) & SF_SWAPPED)))
		return REAL(setsockopt)(fd, level, name, val, len);
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	int st = c ? c->state : 0;
	if (c && level == SOL_SOCKET && st == ST_PENDING) {
		/* the socket being connected takes it (the helper owns SO_SNDTIMEO until it is done) */
		int r = 0;
		if ((name == SO_SNDTIMEO_OLD || name == SO_SNDTIMEO_NEW) && val && len >= sizeof c->sndtimeo)
			memcpy(&c->sndtimeo, val, sizeof c->sndtimeo);
		else if (c->s >= 0)
			r = REAL(setsockopt)(c->s, level, name, val, len);
		pthread_mutex_unlock(&sg_lock);
		return r < 0 && (errno == ENOPROTOOPT || errno == EOPNOTSUPP) ? 0 : r;
	}
	/* TCP, IP and IPv6 options: accepted without effect, read back as set (core/fakeopt) */
	int faked = c && fakeopt_set(&c->opts, level, name, val, len);
	pthread_mutex_unlock(&sg_lock);
	if (!c)
		return REAL(setsockopt)(fd, level, name, val, len);
	if (faked || st == ST_PENDING || st == ST_BLACKHOLE)
		return 0;	/* accepted without effect */
	int r = REAL(setsockopt)(fd, level, name, val, len);
	if (r < 0 && (errno == ENOPROTOOPT || errno == EOPNOTSUPP))
		return 0;
	return r;
}

EXPORT int shutdown(int fd, int how)
{
	if (likely(!(fd_flags(fd) & SF_SWAPPED)))
		return REAL(shutdown)(fd, how);
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	int st = c ? c->state : 0;
	uint32_t rf = c ? c->rflags : 0;
	pthread_mutex_unlock(&sg_lock);
	if (!c)
		return REAL(shutdown)(fd, how);
	if (st == ST_PENDING || st == ST_BLACKHOLE || st == ST_FAILED)
		return errno = ENOTCONN, -1;
	if (how == SHUT_RD && ((rf & RULE_F_SHUT_RD_RDWR) || (conf()->hacks & HACK_SHUT_RD)))
		how = SHUT_RDWR;
	if ((how == SHUT_WR || how == SHUT_RDWR) && before_write(fd) < 0 && errno != EAGAIN)
		return -1;
	return REAL(shutdown)(fd, how);
}

/* ---- fd lifetime ------------------------------------------------------------ */

EXPORT int close(int fd)
{
	if (systemd_owns(fd))
		return errno = EBADF, -1;	/* not the program's to close: as if it were not open */
	unsigned f = fd_flags(fd);
	if (unlikely(f)) {
		if (f & SF_STATE)
			return sg_close(fd);
		slot_hint(fd, 0);
	}
	return REAL(close)(fd);
}

EXPORT int dup(int fd)
{
	int r = REAL(dup)(fd);
	if (r >= 0 && unlikely(fd_flags(fd) | fd_flags(r)))
		sg_copied(fd, r);
	return r;
}

/*
 * close_range() and closefrom() (glibc's closefrom() makes the system call
 * itself, so both are wrapped): the library's copies of passed sockets are
 * left open.
 */
EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	return systemd_close_range(first, last, flags);
}

EXPORT void closefrom(int low)
{
	unsigned first = low < 0 ? 0 : (unsigned)low;
	if (systemd_close_range(first, ~0u, 0) == 0)
		return;
	/* a kernel before 5.9: one by one, up to the fd limit */
	long max = sysconf(_SC_OPEN_MAX);
	for (long fd = first; fd < (max > 0 ? max : 1024); fd++)
		if (!systemd_owns((int)fd))
			REAL(close)((int)fd);
}

EXPORT int dup2(int fd, int fd2)
{
	if (systemd_owns(fd2) && fd != fd2)
		systemd_move(fd2);
	int r = REAL(dup2)(fd, fd2);
	if (r >= 0 && fd != fd2 && unlikely(fd_flags(fd) | fd_flags(fd2)))
		sg_copied(fd, fd2);
	return r;
}

EXPORT int dup3(int fd, int fd2, int flags)
{
	if (systemd_owns(fd2) && fd != fd2)
		systemd_move(fd2);
	int r = REAL(dup3)(fd, fd2, flags);
	if (r >= 0 && unlikely(fd_flags(fd) | fd_flags(fd2)))
		sg_copied(fd, fd2);
	return r;
}

static int do_fcntl(fcntl_fn real, int fd, int cmd, va_list ap)
{
	/* every fcntl argument is an int, a long or a pointer: pass a word */
	void *arg = va_arg(ap, void *);
	int r = real(fd, cmd, arg);
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && r >= 0 && unlikely(fd_flags(fd) | fd_flags(r)))
		sg_copied(fd, r);
	return r;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int r = do_fcntl(REAL(fcntl), fd, cmd, ap);
	va_end(ap);
	return r;
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	va_start(ap, cmd);
	int r = do_fcntl(REAL(fcntl64), fd, cmd, ap);
	va_end(ap);
	return r;
}

/* ---- the receiving side (bind/listen/accept): see libsockgate(7) ------------ */

EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	int handled;
	int r = systemd_bind(fd, sa, len, &handled);
	if (handled)
		return r;
	r = in_udp_bind(fd, sa, len, &handled);
	if (handled)
		return r;
	r = in_bind(fd, sa, len, &handled);
	return handled ? r : REAL(bind)(fd, sa, len);
}

/* A daemon that took a passed Unix socket removes its file before bind() or at exit: the file stays. */
EXPORT int unlink(const char *path)
{
	return systemd_keeps(path) ? 0 : REAL(unlink)(path);
}

EXPORT int unlinkat(int dirfd, const char *path, int flags)
{
	return dirfd == AT_FDCWD && !flags && systemd_keeps(path) ? 0 : REAL(unlinkat)(dirfd, path, flags);
}

EXPORT int listen(int fd, int backlog)
{
	if (likely(!(fd_flags(fd) & SF_SWAPPED)) && !in_adopt(fd))
		return REAL(listen)(fd, backlog);
	int handled;
	int r = in_listen(fd, backlog, &handled);
	return handled ? r : REAL(listen)(fd, backlog);
}

/*
 * A datagram socket that is a receiver made by another process (in_adopt)
 * fails a plain accept with EOPNOTSUPP: adopt it and take a passed socket.
 */
static int sg_accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	if (likely(!(fd_flags(fd) & SF_ACCEPT))) {
		int r = REAL(accept4)(fd, sa, len, flags);
		if (likely(r >= 0 || errno != EOPNOTSUPP))
			return r;
		if (!in_adopt(fd))
			return errno = EOPNOTSUPP, -1;
	}
	return in_accept(fd, sa, len, flags);
}

EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	return sg_accept4(fd, sa, len, flags);
}

/* accept4() with no flags is accept() */
EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return sg_accept4(fd, sa, len, 0);
}
