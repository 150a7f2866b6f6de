/*
 * Control files (core/ctlfile.h, sockgate-mkctl(8)): a regular file where a
 * rule's Unix socket path (or unsock's UNSOCK_DIR/PORT.sock) should be
 * names the real target. A connect() to a regular file fails at once with
 * ECONNREFUSED, and a bind() over one with EADDRINUSE, so the file is only
 * read then: sockets that are sockets cost nothing more.
 *
 * The Firecracker-style vsock multiplexer (Firecracker docs/vsock.md, "host
 * initiated connections") takes "CONNECT <port>\n" on its Unix socket and
 * answers "OK <host port>\n" once the guest accepted; anything else, or the
 * socket closing, means no connection, which the program sees as
 * ECONNREFUSED. The reply is read a byte at a time so that nothing of the
 * stream after it is consumed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/vm_sockets.h>

#include "ctlfile.h"
#include "file.h"	/* mono_ms() */
#include "proxyv2.h"	/* crc32c() */
#include "real.h"
#include "sg.h"
#include "sockfile.h"

/* Say once per file (and again when the message changes) why it was refused. */
static void report(const char *path, const char *why)
{
	static uint32_t last;
	uint32_t h = crc32c(crc32c(0, path, strlen(path)), why, strlen(why));
	if (__atomic_exchange_n(&last, h, __ATOMIC_RELAXED) != h)
		sg_msg("control file %s refused: %s", path, why);
}

int ctl_lookup(const struct sockaddr *sa, socklen_t len, struct ctlfile *c)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
	char path[sizeof un->sun_path + 1];
	struct ctl_error e;
	size_t off = offsetof(struct sockaddr_un, sun_path);

	if (sa->sa_family != AF_UNIX || len <= off + 1 || !un->sun_path[0])
		return 0;
	size_t n = len - off < sizeof un->sun_path ? len - off : sizeof un->sun_path;
	memcpy(path, un->sun_path, n);
	path[n] = 0;
	if (ctlfile_read(path, c, &e) == 0)
		return 1;
	if (errno == EINVAL) {
		report(path, e.msg);
		return -1;
	}
	return 0;	/* not a control file: the caller's error stands */
}

int ctl_socket(const struct ctlfile *c, int flags)
{
	struct sockaddr_storage ss;
	socklen_t l;

	ctlfile_sockaddr(c, &ss, &l);
	int s = REAL(socket)(ss.ss_family, SOCK_STREAM | flags, 0);
	if (s < 0)
		return -1;
	for (unsigned i = 0; i < c->nopt; i++) {
		const struct ctl_sockopt *o = &c->opt[i];
		int v32 = (int)o->value;
		unsigned long long v64 = o->value;
		size_t sz = ctlfile_sockopt_size(o->level, o->name);
		if (REAL(setsockopt)(s, (int)o->level, (int)o->name, sz == 8 ? (void *)&v64 : (void *)&v32,
				     (socklen_t)sz) < 0) {
			int e = errno;
			REAL(close)(s);
			return errno = e, -1;
		}
	}
	return s;
}

/* Wait until s is ready for events, in ticks, so that cancel is looked at. */
static int wait_ready(int s, short events, int64_t deadline, int (*cancel)(void *), void *arg)
{
	for (;;) {
		if (cancel && cancel(arg))
			return errno = ECANCELED, -1;
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return errno = ETIMEDOUT, -1;
		struct pollfd p = { .fd = s, .events = events };
		int r = poll(&p, 1, left > 200 ? 200 : (int)left);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

int ctl_fc_handshake(int s, uint32_t port, double timeout, int (*cancel)(void *), void *arg)
{
	char line[32], reply[40];
	int n = snprintf(line, sizeof line, "CONNECT %u\n", port);
	int64_t deadline = mono_ms() + (int64_t)(timeout * 1000);
	size_t off = 0, got = 0;

	while (off < (size_t)n) {
		ssize_t w = REAL(send)(s, line + off, (size_t)n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			off += (size_t)w;
			continue;
		}
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return errno = ECONNREFUSED, -1;
		if (wait_ready(s, POLLOUT, deadline, cancel, arg) < 0)
			return -1;
	}
	for (;;) {
		ssize_t r = REAL(recv)(s, reply + got, 1, MSG_DONTWAIT);
		if (r == 0)
			return errno = ECONNREFUSED, -1;	/* closed: nobody at that port */
		if (r < 0) {
			if (errno != EAGAIN && errno != EINTR)
				return errno = ECONNREFUSED, -1;
			if (wait_ready(s, POLLIN, deadline, cancel, arg) < 0)
				return -1;
			continue;
		}
		if (reply[got] == '\n')
			break;
		if (++got >= sizeof reply - 1)
			return errno = ECONNREFUSED, -1;	/* no line of that length is an answer */
	}
	reply[got] = 0;
	/* "OK <digits>" */
	if (got < 4 || memcmp(reply, "OK ", 3))
		return errno = ECONNREFUSED, -1;
	for (size_t i = 3; i < got; i++)
		if (reply[i] < '0' || reply[i] > '9')
			return errno = ECONNREFUSED, -1;
	return 0;
}

/*
 * unsock's UNSOCK_ACCEPT_CONVERT_ALL / _VSOCK: should an accepted peer of
 * family fam be shown as an inet address?
 */
int ctl_convert_peer(int fam)
{
	static int all = -1, vsock = -1;
	if (all < 0) {
		const char *a = getenv("UNSOCK_ACCEPT_CONVERT_ALL"), *v = getenv("UNSOCK_ACCEPT_CONVERT_VSOCK");
		vsock = v && *v && strcmp(v, "0");
		all = a && *a && strcmp(a, "0");
	}
	if (fam == AF_INET || fam == AF_INET6)
		return 0;
	return all || (fam == AF_VSOCK && vsock);
}

/*
 * bind() of a `bind ... -> unix PATH` rule found a regular file at PATH
 * (EADDRINUSE): when it is a control file, a socket of the target's family
 * is bound there instead and returned, for in_bind() to put behind the
 * program's fd. A Unix or abstract target is a Unix listener as any
 * (c->path becomes the target); another family (VSOCK, TCP, TIPC) is a
 * real listener of that family, which listen() and accept() reach
 * directly (c->ctlfam). A Firecracker multiplexer cannot be listened on.
 * -1 with EADDRINUSE for a file that is no control file, EINVAL for a
 * malformed one, or what socket()/bind() said.
 */
int ctl_bind(struct sgconn *c, const struct sockaddr *un, socklen_t len)
{
	struct ctlfile ctl;
	struct sockaddr_storage ss;
	socklen_t sl;
	int k = ctl_lookup(un, len, &ctl);

	if (k == 0)
		return errno = EADDRINUSE, -1;
	if (k < 0)
		return errno = EINVAL, -1;
	if (ctl.kind == CTL_FIRECRACKER) {
		report(((const struct sockaddr_un *)un)->sun_path, "a Firecracker multiplexer cannot be listened on");
		return errno = EINVAL, -1;
	}
	ctlfile_sockaddr(&ctl, &ss, &sl);
	int s = ctl_socket(&ctl, SOCK_CLOEXEC);
	if (s < 0)
		return -1;
	/* a stale file goes, a live one stays; never looser than mode=, even for a moment */
	if (ss.ss_family == AF_UNIX ?
	    bind_unix_path_mode(s, (const struct sockaddr_un *)&ss, sl, c->mode ? (long)c->mode : -1) < 0 :
	    REAL(bind)(s, (const struct sockaddr *)&ss, sl) < 0) {
		int e = errno;
		REAL(close)(s);
		return errno = e, -1;
	}
	c->ctlfam = ss.ss_family;
	if (ss.ss_family == AF_UNIX) {
		memset(c->path, 0, sizeof c->path);
		memcpy(c->path, ctl.path, strnlen(ctl.path, sizeof ctl.path));
		c->action = ctl.kind == CTL_ABSTRACT ? ACT_ABSTRACT : ACT_UNIX;
	}
	return s;
}

int ctl_accept(int fd, const struct sgconn *lc, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct sockaddr_storage p;
	socklen_t pl = sizeof p;

	memset(&p, 0, sizeof p);
	int nfd = REAL(accept4)(fd, (struct sockaddr *)&p, &pl, flags);
	if (nfd < 0)
		return -1;
	if (fd_flags(nfd))
		sg_forget(nfd);	/* the number may have been ours before */
	if (ctl_convert_peer(p.ss_family)) {
		/* the loopback address of the program's family; a VSOCK peer's port where it fits */
		uint32_t port = p.ss_family == AF_VSOCK ? ((struct sockaddr_vm *)&p)->svm_port : 0;
		struct sgconn *c = accepted_new(lc, port <= 65535 ? (uint16_t)port : 0);
		if (!c) {
			REAL(close)(nfd);
			return errno = ENOMEM, -1;
		}
		p = c->peer;
		pl = c->peerlen;
		accepted_set(nfd, c);
	}
	if (sa && len) {
		memcpy(sa, &p, pl < *len ? pl : *len);
		*len = pl;
	}
	return nfd;
}
