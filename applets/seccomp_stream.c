/*
 * The stream side of sockgate-run --seccomp's supervisor (seccomp.c hands
 * it the notifications): connect() of a socket a connect rule matches
 * becomes a connection made here to the rule's target (after a PROXY
 * header when the rule asks) and put at the program's fd; bind() a bind
 * rule matches becomes a Unix listener (or a receiver of passed sockets)
 * in its place, whose accept()s are answered here with the real client's
 * address; getsockname()/getpeername() show the inet addresses the program
 * expects for every socket made here, and getsockopt()/setsockopt() its
 * TCP/IP options as the library answers them (core/fakeopt). Also the
 * pieces the datagram side (seccomp_dgram.c) uses too: the rule's target,
 * source and header, and call_open(), which reads a call's address and
 * takes its socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <linux/seccomp.h>

#include "addr.h"
#include "fdpass.h"
#include "file.h"
#include "proxyv2.h"
#include "rules.h"
#include "seccomp_int.h"
#include "sockfile.h"

#define CONNECT_WAIT_MS 2000	/* longest a redirected connect (and its header) may hold the supervisor */
#define HDR_WAIT_MS 1000	/* longest an accept waits for the PROXY header of its connection */

/* --- addresses --------------------------------------------------------------- */

socklen_t inet_len(int fam)
{
	return fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* IPv4-mapped IPv6 as plain IPv4 (for matching, templates and headers). */
void sc_canon(const struct sockaddr_storage *in, struct sockaddr_storage *out)
{
	socklen_t l = sizeof *out;

	*out = *in;
	addr_unmap(out, &l);
}

/* An inet address in family fam (IPv4 <-> ::ffff:IPv4): its length, or 0. */
socklen_t in_family(const struct sockaddr_storage *a, int fam, struct sockaddr_storage *out)
{
	socklen_t l = sizeof *out;

	*out = *a;
	if (addr_to_family(out, &l, fam) < 0) {
		memset(out, 0, sizeof *out);
		return 0;
	}
	return l;
}

void any_addr(int fam, int loopback, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof *ss);
	ss->ss_family = (sa_family_t)fam;
	if (loopback && fam == AF_INET)
		((struct sockaddr_in *)ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (loopback)
		((struct sockaddr_in6 *)ss)->sin6_addr = in6addr_loopback;
	*len = inet_len(fam);
}

/* The source a rule gives (source=), routing's choice, or the wildcard; in family fam. */
void pick_source(const struct ruleset *rs, const struct rule *r, const struct sockaddr_storage *dst,
			int fam, struct sockaddr_storage *out, socklen_t *len)
{
	const char *src = rules_str(rs, r->source);
	struct sg_addr a;
	struct sockaddr_storage got;
	socklen_t gl = sizeof got;

	if (src && addr_parse_inet(src, &a) == 0 && (*len = in_family(&a.u.ss, fam, out)))
		return;
	if (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
		/* the program's network namespace is ours: ask routing as it would */
		int s = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s >= 0 && connect(s, (const struct sockaddr *)dst, inet_len(dst->ss_family)) == 0 &&
		    getsockname(s, (struct sockaddr *)&got, &gl) == 0) {
			close(s);
			if (got.ss_family == AF_INET)
				((struct sockaddr_in *)&got)->sin_port = 0;
			else
				((struct sockaddr_in6 *)&got)->sin6_port = 0;
			if ((*len = in_family(&got, fam, out)))
				return;
		} else if (s >= 0) {
			close(s);
		}
	}
	any_addr(fam, 0, out, len);
}

/* Where a connect rule sends dst; -1 with errno. */
int sc_target(const struct ruleset *rs, const struct rule *r, const struct sockaddr_storage *dst,
	      struct sg_addr *ta)
{
	char path[sizeof ta->u.un.sun_path + 1];
	const char *arg = rules_str(rs, r->arg);

	if (!arg)
		return errno = EINVAL, -1;
	switch (r->action) {
	case ACT_UNIX:
	case ACT_ABSTRACT:
		if (rules_expand(arg, (const struct sockaddr *)dst, path, sizeof path) < 0)
			return -1;
		return addr_unix(ta, path, r->action == ACT_ABSTRACT);
	case ACT_TCP:
		return addr_parse_inet(arg, ta);
	}
	return errno = EOPNOTSUPP, -1;
}

int sc_header(const struct rule *r, const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
	      int socktype, unsigned char *buf, size_t size)
{
	struct proxy_hdr h;

	memset(&h, 0, sizeof h);
	h.version = (r->flags & RULE_F_PROXY_V1) ? 1 : 2;
	h.command = PROXY_CMD_PROXY;
	h.socktype = socktype;
	if (!in_family(src, dst->ss_family, &h.src))
		any_addr(dst->ss_family, 0, &h.src, &h.srclen);
	h.dst = *dst;
	h.srclen = h.dstlen = inet_len(dst->ss_family);
	if (h.version == 1)
		return proxyv1_build((char *)buf, size, &h);
	if (r->flags & RULE_F_NETNS)
		proxyv2_set_netns(&h);
	return proxyv2_build(buf, size, &h, (r->flags & RULE_F_CRC32C) ? PROXYV2_CRC32C : 0);
}

/* --- connect() ---------------------------------------------------------------- */


/*
 * Connect a new socket to the target and write the header: 0 connected,
 * 1 a TCP target still connecting (non-blocking caller, no header), or -1
 * with the errno a TCP program knows.
 */
static int open_target(const struct sg_addr *ta, const unsigned char *hdr, size_t hl, int nonblock, int *sp)
{
	int unix_ = ta->u.sa.sa_family == AF_UNIX;
	int s = socket(ta->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | (unix_ ? 0 : SOCK_NONBLOCK), 0);
	struct timeval tv = { CONNECT_WAIT_MS / 1000, (CONNECT_WAIT_MS % 1000) * 1000 };
	int e = 0, inprogress = 0;

	if (s < 0)
		return -1;
	if (unix_) {
		/* a full backlog waits (bounded), as a TCP SYN queue would */
		setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		if (connect(s, &ta->u.sa, ta->len) < 0) {
			e = errno;
			if (e == ENOENT || e == ENOTDIR || e == EPROTOTYPE || e == ENOTSOCK)
				e = ECONNREFUSED;
			else if (e == EAGAIN)
				e = ETIMEDOUT;
		}
	} else if (connect(s, &ta->u.sa, ta->len) < 0) {
		if (errno != EINPROGRESS)
			e = errno;
		else if (nonblock && !hl)
			inprogress = 1;
		else if (wait_fd(s, POLLOUT, CONNECT_WAIT_MS) <= 0)
			e = ETIMEDOUT;
		else {
			socklen_t l = sizeof e;
			getsockopt(s, SOL_SOCKET, SO_ERROR, &e, &l);
		}
	}
	for (size_t off = 0; !e && off < hl;) {
		ssize_t w = send(s, hdr + off, hl - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN && wait_fd(s, POLLOUT, CONNECT_WAIT_MS) > 0)
			continue;
		if (w <= 0)
			e = w < 0 ? errno : EPIPE;
		else
			off += (size_t)w;
	}
	if (e) {
		close(s);
		return errno = e, -1;
	}
	tv.tv_sec = tv.tv_usec = 0;
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	set_nonblock(s, nonblock);
	*sp = s;
	return inprogress;
}

/*
 * The rule for the address of a connect() or bind() and a copy of the
 * program's socket (its family and type): 0, or -1 when the call was let
 * through (no rule, no inet address) or the task has gone.
 */
int call_open(const struct seccomp_notif *n, uint64_t ptr, uint64_t len, int dir, int proto, struct call *c)
{
	socklen_t l;

	c->fd = -1;
	c->domain = c->type = c->cloexec = 0;
	if (read_sockaddr(n, ptr, len, &c->sa) < 0)
		return sc_pass(n->id), -1;
	sc_canon(&c->sa, &c->dst);
	if (!(c->r = sc_match(dir, proto, (struct sockaddr *)&c->dst, &c->rs)))
		return sc_pass(n->id), -1;
	if (!still_valid(n->id))
		return -1;
	if ((c->fd = take_fd(n->pid, (int)n->data.args[0], &c->cloexec)) < 0)
		return sc_pass(n->id), -1;
	l = sizeof c->domain;
	getsockopt(c->fd, SOL_SOCKET, SO_DOMAIN, &c->domain, &l);
	l = sizeof c->type;
	getsockopt(c->fd, SOL_SOCKET, SO_TYPE, &c->type, &l);
	if (c->domain != c->sa.ss_family || (c->type != SOCK_STREAM && c->type != SOCK_DGRAM)) {
		close(c->fd);
		return sc_pass(n->id), -1;
	}
	return 0;
}

void on_connect(const struct seccomp_notif *n)
{
	struct call cl;
	int s = -1;

	if (call_open(n, n->data.args[1], n->data.args[2], RULE_CONNECT, RULE_ANYPROTO, &cl) < 0)
		return;
	const struct ruleset *rs = cl.rs;
	const struct rule *r = cl.r;
	int fd = cl.fd, domain = cl.domain, type = cl.type;

	if (r->proto != RULE_ANYPROTO &&
	    !(r = sc_match(RULE_CONNECT, type == SOCK_STREAM ? RULE_TCP : RULE_UDP, (struct sockaddr *)&cl.dst, &rs)))
		goto pass;
	if (r->action == ACT_REJECT) {
		/* answered here, never continued: the kernel must not see the address again */
		sc_answer(n->id, -1, r->err ? r->err : ECONNREFUSED);
		goto out;
	}
	if (type == SOCK_DGRAM) {
		dgram_connect(n, &cl, rs, r);
		goto out;
	}
	if (r->action != ACT_UNIX && r->action != ACT_ABSTRACT && r->action != ACT_TCP)
		goto pass;	/* blackhole, nat64, pass: as without rules (see the man page) */

	struct stat st;
	if (fstat(fd, &st) == 0 && rec_find(st.st_ino)) {
		sc_answer(n->id, -1, EISCONN);	/* connected by us already, as TCP says */
		goto out;
	}
	struct sg_addr ta;
	struct sockaddr_storage local;
	socklen_t locallen;
	unsigned char hdr[HDR_MAX];
	int hl = 0;
	int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;

	pick_source(rs, r, &cl.dst, domain, &local, &locallen);
	if (sc_target(rs, r, &cl.dst, &ta) < 0 ||
	    ((r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) &&
	     (hl = sc_header(r, &local, &cl.dst, SOCK_STREAM, hdr, sizeof hdr)) < 0)) {
		sc_answer(n->id, -1, errno);
		goto out;
	}
	int how = open_target(&ta, hdr, (size_t)hl, nonblock, &s);
	if (how < 0) {
		sc_answer(n->id, -1, errno);
		goto out;
	}
	struct rec *rc;
	if (swap_in(n, s, cl.cloexec, &rc) < 0)
		goto out;
	if (rc) {
		rc->family = domain;
		rc->type = SOCK_STREAM;
		rc->inet = ta.u.sa.sa_family != AF_UNIX;
		rc->local = local;
		rc->locallen = locallen;
		rc->peer = cl.sa;
		rc->peerlen = inet_len(domain);
	}
	sc_answer(n->id, how ? -1 : 0, how ? EINPROGRESS : 0);
	goto out;
pass:
	sc_pass(n->id);
out:
	if (fd >= 0)
		close(fd);
	if (s >= 0)
		close(s);
}

/* --- getsockname(), getpeername() --------------------------------------------- */

void on_name(const struct seccomp_notif *n, int peer)
{
	struct rec *r = rec_find(fd_ino(n->pid, n->data.args[0]));
	uint32_t len;

	if (!r || (peer && (r->listener || !r->peerlen)))
		return sc_pass(n->id);	/* a datagram socket not connected: the kernel's ENOTCONN */
	const struct sockaddr_storage *a = peer ? &r->peer : &r->local;
	socklen_t al = peer ? r->peerlen : r->locallen;
	if (mem_io(n->pid, n->data.args[2], &len, sizeof len, 0) < 0 || (int32_t)len < 0)
		return sc_answer(n->id, -1, EFAULT);
	if (!still_valid(n->id))
		return;
	if ((len && mem_io(n->pid, n->data.args[1], (void *)a, len < al ? len : al, 1) < 0) ||
	    mem_io(n->pid, n->data.args[2], &al, sizeof al, 1) < 0)
		return sc_answer(n->id, -1, EFAULT);
	sc_answer(n->id, 0, 0);
}

/* --- getsockopt(), setsockopt() ---------------------------------------------- */

/*
 * The options the filter sends (TCP, IP, IPv6 levels; SO_DOMAIN,
 * SO_PROTOCOL and, with fdpass rules, SO_TYPE) of a socket made here are
 * answered as the library answers them (core/fakeopt); every other
 * socket's, and what fakeopt leaves to the Unix socket, go on to the
 * kernel. A socket connected to a tcp target is TCP: its options are real
 * but for the family and protocol the program gave it.
 */
void on_sockopt(const struct seccomp_notif *n, int set)
{
	struct rec *r = rec_find(fd_ino(n->pid, n->data.args[0]));
	int level = (int)n->data.args[1], name = (int)n->data.args[2], v = 0;
	unsigned char buf[256];
	uint32_t len;

	if (!r)
		return sc_pass(n->id);
	if (set) {
		len = (uint32_t)n->data.args[4];
		if (level == SOL_SOCKET || r->inet)
			return sc_pass(n->id);
		/* an int or a byte is kept; a longer value is accepted unread, as the library does */
		int keep = len == sizeof(int) || len == 1;
		if (keep && mem_io(n->pid, n->data.args[3], buf, len, 0) < 0)
			return sc_answer(n->id, -1, EFAULT);
		if (!still_valid(n->id))
			return;
		fakeopt_set(&r->opts, level, name, keep ? buf : NULL, len);
		return sc_answer(n->id, 0, 0);
	}
	int kind = fakeopt_get(&r->opts, level, name, r->family, r->type, &v);
	if (kind == FAKEOPT_KERNEL || (r->inet && level != SOL_SOCKET))
		return sc_pass(n->id);
	if (mem_io(n->pid, n->data.args[4], &len, sizeof len, 0) < 0)
		return sc_answer(n->id, -1, EFAULT);
	if ((int32_t)len < 0)
		return sc_answer(n->id, -1, EINVAL);
	memset(buf, 0, sizeof buf);
	if (kind == FAKEOPT_INT) {
		memcpy(buf, &v, sizeof v);
		if (len > sizeof v)
			len = sizeof v;
	} else if (len > sizeof buf) {
		len = sizeof buf;	/* zeros: more than TCP_INFO's size, the largest a program reads */
	}
	if (!still_valid(n->id))
		return;
	if ((len && mem_io(n->pid, n->data.args[3], buf, len, 1) < 0) ||
	    mem_io(n->pid, n->data.args[4], &len, sizeof len, 1) < 0)
		return sc_answer(n->id, -1, EFAULT);
	sc_answer(n->id, 0, 0);
}

/* --- bind(), listen(), accept() ------------------------------------------------ */

void on_bind(const struct seccomp_notif *n)
{
	struct call cl;
	int s = -1;

	if (call_open(n, n->data.args[1], n->data.args[2], RULE_BIND, RULE_TCP, &cl) < 0)
		return;
	const struct rule *r = cl.r;
	int fd = cl.fd;

	if ((r->action != ACT_UNIX && r->action != ACT_ABSTRACT && r->action != ACT_FDPASS) ||
	    cl.type != SOCK_STREAM) {
		sc_pass(n->id);
		goto out;
	}
	char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
	struct sg_addr a;
	const char *tmpl = rules_str(cl.rs, r->arg);
	int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
	if (!tmpl || rules_expand(tmpl, (struct sockaddr *)&cl.dst, path, sizeof path) < 0 ||
	    addr_unix(&a, path, r->action == ACT_ABSTRACT) < 0 ||
	    (s = socket(AF_UNIX, (r->action == ACT_FDPASS ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0)) < 0) {
		sc_answer(n->id, -1, errno);
		goto out;
	}
	if (bind_unix_path(s, &a.u.un, a.len) < 0) {
		sc_answer(n->id, -1, errno);
		goto out;
	}
	if (r->mode && r->action != ACT_ABSTRACT)
		chmod(path, (mode_t)r->mode);
	set_nonblock(s, nonblock);
	struct rec *rc;
	if (swap_in(n, s, cl.cloexec, &rc) < 0)
		goto out;
	if (rc) {
		rc->listener = 1;
		rc->family = cl.domain;
		rc->type = SOCK_STREAM;
		rc->action = r->action;
		rc->rflags = r->flags;
		rc->local = cl.sa;
		rc->locallen = inet_len(cl.domain);
	}
	sc_answer(n->id, 0, 0);
out:
	if (fd >= 0)
		close(fd);
	if (s >= 0)
		close(s);
}

void on_listen(const struct seccomp_notif *n)
{
	struct rec *r = rec_find(fd_ino(n->pid, n->data.args[0]));

	/* a receiver of passed sockets is a datagram socket: it has nothing to listen for */
	if (r && r->listener && r->action == ACT_FDPASS)
		return sc_answer(n->id, 0, 0);
	sc_pass(n->id);
}

/* Read and consume the PROXY header at the start of s: 1 with h, 0 LOCAL, -1 none or bad. */
static int read_header(int s, struct proxy_hdr *h)
{
	unsigned char buf[PROXY_V2_HDRLEN + 1024];
	int64_t t0 = mono_ms();
	size_t need;

	for (;;) {
		ssize_t got = recv(s, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT);
		if (got == 0)
			return -1;
		if (got > 0) {
			int r = proxyv2_parse(buf, (size_t)got, h, &need);
			if (r < 0 || (r == PROXY_NEED && (size_t)got >= sizeof buf))
				return -1;
			if (r == PROXY_DONE)
				return recv(s, buf, need, MSG_DONTWAIT) == (ssize_t)need ?
				       h->command == PROXY_CMD_PROXY && h->src.ss_family != AF_UNSPEC : -1;
		} else if (errno != EAGAIN && errno != EINTR) {
			return -1;
		}
		int64_t left = HDR_WAIT_MS - (mono_ms() - t0);
		if (left <= 0)
			return -1;
		wait_fd(s, POLLIN, (int)(left < 50 ? left : 50));
	}
}

/*
 * One connection from a listener made by a bind rule, given to the program
 * as accept() would: 1 answered, 0 none waiting, -1 answered with an error.
 */
int try_accept(uint64_t id, pid_t pid, const uint64_t *args, int lfd, const struct rec *lr)
{
	int flags = (int)args[3];
	int c = -1;
	struct sockaddr_storage peer, local;
	socklen_t peerlen, locallen;

	if (lr->action == ACT_FDPASS) {
		unsigned char meta[FDPASS_META_MAXLEN];
		size_t nf = 1;
		ssize_t m = fdpass_recv(lfd, &c, &nf, meta, sizeof meta, MSG_DONTWAIT);
		if (m < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (m < 0 && errno != EMSGSIZE) {
			sc_answer(id, -1, errno);
			return -1;
		}
		if (!nf)
			return 0;	/* a datagram with no socket: not for us */
		struct fdpass_meta md;
		peerlen = sizeof peer;
		if (fdpass_meta_decode(meta, (size_t)(m > 0 ? m : 0), &md) == 0 && md.remote.ss_family != AF_UNSPEC &&
		    (peerlen = in_family(&md.remote, lr->family, &peer)))
			;
		else if (getpeername(c, (struct sockaddr *)&peer, &(socklen_t){ sizeof peer }) < 0 ||
			 !(peerlen = in_family(&peer, lr->family, &peer)))
			peerlen = 0;
	} else {
		/* the listener may be blocking (its flags are the program's): look before taking */
		if (wait_fd(lfd, POLLIN, 0) <= 0)
			return 0;
		c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (c < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (c < 0) {
			sc_answer(id, -1, errno);
			return -1;
		}
		struct proxy_hdr h;
		int got = 0;
		any_addr(lr->family, 1, &peer, &peerlen);
		local = lr->local;
		locallen = lr->locallen;
		if (lr->rflags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
			memset(&h, 0, sizeof h);
			if ((got = read_header(c, &h)) < 0) {
				close(c);
				sc_answer(id, -1, ECONNABORTED);	/* as a connection gone before accept */
				return -1;
			}
		}
		socklen_t x;
		if (got > 0 && (x = in_family(&h.src, lr->family, &peer)))
			peerlen = x;
		else if (got > 0)
			any_addr(lr->family, 1, &peer, &peerlen);
		if (got > 0 && (x = in_family(&h.dst, lr->family, &local)))
			locallen = x;
		else
			local = lr->local;
		struct rec *rc = rec_add(c);
		if (rc) {
			rc->family = lr->family;
			rc->type = SOCK_STREAM;
			rc->local = local;
			rc->locallen = locallen;
			rc->peer = peer;
			rc->peerlen = peerlen;
		}
	}
	set_nonblock(c, (flags & SOCK_NONBLOCK) != 0);
	if (args[1] && args[2]) {
		uint32_t len;
		if (mem_io(pid, args[2], &len, sizeof len, 0) < 0 || (int32_t)len < 0 ||
		    (len && peerlen && mem_io(pid, args[1], &peer, len < peerlen ? len : peerlen, 1) < 0) ||
		    mem_io(pid, args[2], &peerlen, sizeof peerlen, 1) < 0) {
			close(c);
			sc_answer(id, -1, EFAULT);
			return -1;
		}
	}
	int r = sc_install(id, c, 0, (flags & SOCK_CLOEXEC) != 0, 1);
	close(c);
	if (r < 0)
		sc_answer(id, -1, errno == ENOENT ? EINTR : errno);
	return 1;
}

void on_accept(const struct seccomp_notif *n)
{
	struct rec *r = rec_find(fd_ino(n->pid, n->data.args[0]));
	uint64_t args[6];

	if (!r || !r->listener)
		return sc_pass(n->id);
	memcpy(args, n->data.args, sizeof args);
	if (n->data.nr != __NR_accept4)
		args[3] = 0;
	if (args[3] & ~(uint64_t)(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return sc_answer(n->id, -1, EINVAL);
	int lfd = take_fd(n->pid, (int)args[0], NULL);
	if (lfd < 0)
		return sc_pass(n->id);
	if (try_accept(n->id, n->pid, args, lfd, r) != 0) {
		close(lfd);
		return;
	}
	if (fcntl(lfd, F_GETFL) & O_NONBLOCK) {
		close(lfd);
		return sc_answer(n->id, -1, EAGAIN);
	}
	struct park *p = park_new();
	if (p) {
		*p = (struct park){ .used = 1, .id = n->id, .pid = n->pid, .lfd = lfd, .lr = *r };
		memcpy(p->args, args, sizeof args);
		return;
	}
	close(lfd);
	sc_answer(n->id, -1, EAGAIN);
}

