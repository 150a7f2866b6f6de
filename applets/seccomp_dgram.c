/*
 * The datagram side of sockgate-run --seccomp's supervisor (seccomp.c
 * hands it the notifications; the filter sends these calls only when a
 * connect rule can apply to UDP): a UDP socket that connect()s or sends to
 * an address a rule redirects is replaced by an AF_UNIX datagram socket,
 * as in the library's datagram path (preload/out.c, core/dgmap), and from
 * then on the supervisor carries its sendto()/sendmsg() (after a PROXY
 * header when the rule asks) and its recvfrom()/recvmsg(), giving each
 * reply the inet address the program sent to as its source. A receive
 * with nothing there is parked in seccomp.c until a datagram comes.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <linux/seccomp.h>

#include "addr.h"
#include "dgmap.h"
#include "file.h"
#include "rules.h"
#include "seccomp_int.h"

#define NDGRAM 64		/* datagram sockets made AF_UNIX (the oldest go first) */
#define DG_MAX 65536		/* the largest datagram carried (UDP's own limit) */
#define DG_WAIT_MS 200		/* longest a blocking send waits for room before the datagram is dropped */

/*
 * A datagram socket made AF_UNIX here, as the library's datagram path does
 * (libsockgate(7)): bound to a socket file beside its target's (or in
 * $SOCKGATE_DGRAM_DIR) so that a server outside the program's network
 * namespace can answer, and the Unix targets it sent to, so that a reply's
 * source reads as the inet address the program sent to.
 */
struct dgram {
	ino_t ino;		/* 0: free */
	char path[sizeof ((struct sockaddr_un *)0)->sun_path];	/* the file we bound ("": autobound) */
	struct dgmap map;
};
static struct dgram dgrams[NDGRAM];
static unsigned dgram_next;

static struct dgram *dgram_find(ino_t ino)
{
	for (unsigned i = 0; ino && i < NDGRAM; i++)
		if (dgrams[i].ino == ino)
			return &dgrams[i];
	return NULL;
}

/* A free entry, or the oldest one (its file goes). */
static struct dgram *dgram_add(ino_t ino)
{
	struct dgram *d = &dgrams[dgram_next];

	dgram_next = (dgram_next + 1) % NDGRAM;
	if (d->ino && d->path[0])
		unlink(d->path);
	memset(d, 0, sizeof *d);
	d->ino = ino;
	return d;
}

/* At the end: the socket files bound for the program go. */
void dgram_cleanup(void)
{
	for (unsigned i = 0; i < NDGRAM; i++)
		if (dgrams[i].ino && dgrams[i].path[0])
			unlink(dgrams[i].path);
}

/* The source the program sees for a datagram from un: the address it sent to there, its peer, or nothing. */
static socklen_t dgram_from(const struct dgram *d, const struct rec *rc, const struct sockaddr_un *un, socklen_t ul,
			    struct sockaddr_storage *out)
{
	int fam = rc ? rc->family : AF_INET6;

	struct sockaddr_storage in;
	if (dgmap_find(&d->map, un, ul, &in))
		return in_family(&in, fam, out);
	if (rc && rc->peerlen)
		return in_family(&rc->peer, fam, out);
	socklen_t l;
	any_addr(fam, 0, out, &l);
	return l;
}

/* the keyword KEY (after any white space) and a number after it in BASE */
static const char *field(const char *p, const char *key, int base, unsigned long long *v)
{
	size_t k = strlen(key);
	char *e;
	while (*p == ' ' || *p == '\t' || *p == '\n')
		p++;
	if (strncmp(p, key, k))
		return NULL;
	p += k;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!(base == 10 ? (*p >= '0' && *p <= '9') || *p == '-' : isxdigit((unsigned char)*p)))
		return NULL;
	*v = base == 10 && *p == '-' ? (unsigned long long)strtoll(p, &e, 10) : strtoull(p, &e, base);
	return e;
}

/*
 * One line of an epoll fd's fdinfo (fs/eventpoll.c's ep_show_fdinfo):
 * "tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x". 0 and the
 * four fields we use, or -1 for any other line.
 */
static int epoll_fdinfo(const char *p, int *tfd, unsigned *ev, unsigned long long *data, unsigned long *ino)
{
	unsigned long long t, e, d, pos, i;
	if (!(p = field(p, "tfd:", 10, &t)) || !(p = field(p, "events:", 16, &e)) ||
	    !(p = field(p, "data:", 16, &d)) || !(p = field(p, "pos:", 10, &pos)) || !(p = field(p, "ino:", 16, &i)))
		return -1;
	*tfd = (int)t;
	*ev = (unsigned)e;
	*data = d;
	*ino = (unsigned long)i;
	return 0;
}

/*
 * Go registers a datagram socket with its epoll instance before it sends:
 * the socket put in its place must be registered there too, with the same
 * events and data (read from the epoll fds' fdinfo, fs/eventpoll.c), or
 * the program would wait for it forever. The key is our fd number (the
 * program's, where ours is free): the registration lasts as long as the
 * socket, and the old one goes with the old socket.
 */
static void epoll_carry(pid_t pid, int pfd, ino_t old, int s)
{
	char path[320], buf[4096], link[64];

	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *dir = opendir(path);
	struct dirent *e;
	while (dir && (e = readdir(dir))) {
		snprintf(path, sizeof path, "/proc/%d/fd/%s", (int)pid, e->d_name);
		ssize_t l = readlink(path, link, sizeof link - 1);
		if (l <= 0 || (link[l] = 0, strcmp(link, "anon_inode:[eventpoll]")))
			continue;
		int epfd = atoi(e->d_name);
		snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)pid, epfd);
		int f = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = f >= 0 ? read(f, buf, sizeof buf - 1) : -1;
		if (f >= 0)
			close(f);
		for (char *line = n > 0 ? (buf[n] = 0, buf) : NULL; line; line = strchr(line + 1, '\n')) {
			int tfd;
			unsigned ev;
			unsigned long long data;
			unsigned long ino;
			if (epoll_fdinfo(line, &tfd, &ev, &data, &ino) || tfd != pfd || ino != (unsigned long)old)
				continue;
			int ep = take_fd(pid, epfd, NULL);
			if (ep < 0)
				break;
			int k = pfd;
			if (fcntl(k, F_GETFD) >= 0 || dup2(s, k) < 0)
				k = s;
			struct epoll_event ee = { .events = ev, .data.u64 = data };
			epoll_ctl(ep, EPOLL_CTL_ADD, k, &ee);
			if (k != s)
				close(k);
			close(ep);
			break;
		}
	}
	if (dir)
		closedir(dir);
}

/*
 * Put an AF_UNIX datagram socket in the place of the program's (cl: its
 * copy, family, flags), bound where ta's server can answer it: our copy
 * of the new socket and its entry, or -1 answered with the error.
 */
static int dgram_open(const struct seccomp_notif *n, const struct call *cl, const struct ruleset *rs,
		      const struct rule *r, const struct sg_addr *ta, struct dgram **dp)
{
	static unsigned seq;
	struct sockaddr_un a;
	socklen_t al;
	struct stat old, st;
	int bound = 0, s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (s < 0 || fstat(cl->fd, &old) < 0)
		goto fail;
	/* the program's pid in the name, as the library's would be */
	bound = dgmap_path(getenv("SOCKGATE_DGRAM_DIR"), &ta->u.un, (long)n->pid, ++seq, &a, &al) == 0 &&
		    bind(s, (struct sockaddr *)&a, al) == 0;
	if (!bound) {
		sa_family_t af = AF_UNIX;	/* autobind: reachable from this namespace only */
		if (bind(s, (struct sockaddr *)&af, sizeof af) < 0)
			goto fail;
	}
	int fl = fcntl(cl->fd, F_GETFL);
	set_nonblock(s, fl >= 0 && (fl & O_NONBLOCK));
	struct sockaddr_storage mine;
	socklen_t ml = sizeof mine;
	struct rec *rc;
	if (fstat(s, &st) < 0)
		goto fail;
	if (swap_in(n, s, cl->cloexec, &rc) < 0) {
		if (bound)
			unlink(a.sun_path);
		close(s);
		return -1;
	}
	epoll_carry(n->pid, (int)n->data.args[0], old.st_ino, s);
	*dp = dgram_add(st.st_ino);
	if (bound)
		memcpy((*dp)->path, a.sun_path, sizeof (*dp)->path);
	if (rc) {
		rc->family = cl->domain;
		rc->type = SOCK_DGRAM;
		/* a socket the program bound keeps that address as its own */
		if (getsockname(cl->fd, (struct sockaddr *)&mine, &ml) == 0 && (addr_port((struct sockaddr *)&mine) > 0 ||
		    !addr_is_any(&mine))) {
			rc->local = mine;
			rc->locallen = ml;
		} else {
			pick_source(rs, r, &cl->dst, cl->domain, &rc->local, &rc->locallen);
		}
	}
	return s;
fail:
	sc_answer(n->id, -1, errno);
	if (s >= 0)
		close(s);
	if (bound > 0)
		unlink(a.sun_path);
	return -1;
}

/* The program's iovecs at iov (cnt of them): their total length, or -1 (EMSGSIZE, EFAULT). */
static ssize_t read_iov(pid_t pid, uint64_t iov, uint64_t cnt, struct iovec *out)
{
	size_t total = 0;

	if (cnt > DG_IOV)
		return errno = EMSGSIZE, -1;
	if (cnt && mem_io(pid, iov, out, (size_t)cnt * sizeof *out, 0) < 0)
		return errno = EFAULT, -1;
	for (uint64_t i = 0; i < cnt; i++) {
		if (out[i].iov_len > SSIZE_MAX - total)
			return errno = EINVAL, -1;
		total += out[i].iov_len;
	}
	return (ssize_t)total;
}

/* The call's address and flags (the iovecs come later, once the call is ours): -1 unreadable. */
static int dcall_head(const struct seccomp_notif *n, struct dcall *c)
{
	const __u64 *a = n->data.args;

	c->msg = n->data.nr == __NR_sendmsg || n->data.nr == __NR_recvmsg;
	if (c->msg) {
		c->mhaddr = a[1];
		if (mem_io(n->pid, a[1], &c->mh, sizeof c->mh, 0) < 0)
			return -1;
		c->name = c->mh.name;
		c->namelen = c->mh.namelen;
		c->flags = (int)a[2];
	} else {
		c->iov[0] = (struct iovec){ (void *)(uintptr_t)a[1], (size_t)a[2] };
		c->niov = 1;
		c->total = (ssize_t)a[2];
		c->flags = (int)a[3];
		c->name = a[4];
		c->namelen = a[5];
	}
	return 0;
}

/* The iovecs of a sendmsg()/recvmsg(): -1 answered with the error. */
static int dcall_iov(const struct seccomp_notif *n, struct dcall *c)
{
	if (!c->msg)
		return 0;
	if ((c->total = read_iov(n->pid, c->mh.iov, c->mh.iovlen, c->iov)) < 0)
		return sc_answer(n->id, -1, errno), -1;
	c->niov = (int)c->mh.iovlen;
	return 0;
}

/*
 * Send the program's datagram on s (ours) to ta, after a PROXY header
 * when the rule asks; answered. UDP never waits for its receiver: a full
 * queue drops the datagram (a blocking sender waits for room a little).
 */
static void dgram_send(const struct seccomp_notif *n, const struct dcall *c, int s, const struct sg_addr *ta,
		       const struct rule *r, const struct rec *rc, const struct sockaddr_storage *dst)
{
	static unsigned char data[DG_MAX];
	unsigned char hdr[HDR_MAX];
	int hl = 0;

	if (c->total > (ssize_t)sizeof data)
		return sc_answer(n->id, -1, EMSGSIZE);
	if (c->total && mem_iov(n->pid, data, (size_t)c->total, c->iov, c->niov, 0) < 0)
		return sc_answer(n->id, -1, EFAULT);
	if (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
		struct sockaddr_storage src;
		socklen_t sl;
		if (rc && rc->locallen)
			src = rc->local;
		else
			any_addr(dst->ss_family, 0, &src, &sl);
		if ((hl = sc_header(r, &src, dst, SOCK_DGRAM, hdr, sizeof hdr)) < 0)
			return sc_answer(n->id, -1, errno);
	}
	if (!still_valid(n->id))
		return;
	struct iovec v[2] = { { hdr, (size_t)hl }, { data, (size_t)c->total } };
	struct msghdr m = { .msg_name = (void *)&ta->u.un, .msg_namelen = ta->len, .msg_iov = v, .msg_iovlen = 2 };
	int blocking = !(fcntl(s, F_GETFL) & O_NONBLOCK) && !(c->flags & MSG_DONTWAIT);
	ssize_t w;
	int64_t t0 = mono_ms();
	while ((w = sendmsg(s, &m, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 && errno == EAGAIN && blocking &&
	       mono_ms() - t0 < DG_WAIT_MS)
		wait_fd(s, POLLOUT, DG_WAIT_MS);
	if (w < 0 && errno == EAGAIN && blocking)
		w = hl + c->total;	/* dropped, as UDP drops */
	if (w < 0) {
		int e = errno;
		return sc_answer(n->id, -1, e == ENOENT || e == ENOTDIR || e == EPROTOTYPE || e == ENOTSOCK ? ECONNREFUSED : e);
	}
	sc_answer(n->id, w >= hl ? w - hl : 0, 0);
}

/* connect() of a datagram socket by a rule: made AF_UNIX and connected to the target. */
void dgram_connect(const struct seccomp_notif *n, const struct call *cl, const struct ruleset *rs,
			  const struct rule *r)
{
	struct sg_addr ta;
	struct dgram *d;
	struct stat st;
	int s;

	if (r->action != ACT_UNIX && r->action != ACT_ABSTRACT)
		return sc_pass(n->id);	/* blackhole, nat64, tcp targets: as without rules (see the man page) */
	if (sc_target(rs, r, &cl->dst, &ta) < 0)
		return sc_answer(n->id, -1, errno);
	if (fstat(cl->fd, &st) == 0 && (d = dgram_find(st.st_ino)))
		s = dup(cl->fd);	/* ours already: connected again */
	else if ((s = dgram_open(n, cl, rs, r, &ta, &d)) < 0)
		return;
	if (connect(s, &ta.u.sa, ta.len) < 0) {
		int e = errno;
		close(s);
		return sc_answer(n->id, -1, e == ENOENT || e == ENOTDIR || e == EPROTOTYPE ? ECONNREFUSED : e);
	}
	struct rec *rc = rec_find(d->ino);
	if (rc) {
		rc->peer = cl->sa;
		rc->peerlen = inet_len(cl->domain);
	}
	dgmap_add(&d->map, &ta.u.un, ta.len, (struct sockaddr *)&cl->sa, inet_len(cl->domain));
	close(s);
	sc_answer(n->id, 0, 0);
}

void on_send(const struct seccomp_notif *n)
{
	struct dcall c;
	struct dgram *d;
	struct sockaddr_storage sa, dst;
	const struct ruleset *rs;
	const struct rule *r;
	struct sg_addr ta;
	struct call cl = { .fd = -1 };
	int s = -1;

	if (dcall_head(n, &c) < 0 || !c.name)
		return sc_pass(n->id);	/* no address: the kernel knows the way (or says EFAULT) */
	if (!(d = dgram_find(fd_ino(n->pid, n->data.args[0])))) {
		/* not ours yet: a datagram socket sending to a matched address becomes ours */
		if (call_open(n, c.name, c.namelen, RULE_CONNECT, RULE_UDP, &cl) < 0)
			return;
		if (cl.type != SOCK_DGRAM)
			goto pass;
		sa = cl.sa;
		dst = cl.dst;
		rs = cl.rs;
		r = cl.r;
	} else {
		if (read_sockaddr(n, c.name, c.namelen, &sa) < 0)
			return sc_pass(n->id);	/* a Unix address on our Unix socket: the kernel's */
		sc_canon(&sa, &dst);
		if (!(r = sc_match(RULE_CONNECT, RULE_UDP, (struct sockaddr *)&dst, &rs)) || r->action == ACT_PASS)
			return sc_answer(n->id, -1, ENETUNREACH);	/* an AF_UNIX socket now: it cannot reach IP */
	}
	if (r->action == ACT_REJECT) {
		sc_answer(n->id, -1, r->err ? r->err : ECONNREFUSED);
		goto out;
	}
	if (r->action != ACT_UNIX && r->action != ACT_ABSTRACT && r->action != ACT_BLACKHOLE) {
		if (d)
			sc_answer(n->id, -1, ENETUNREACH);
		else
			sc_pass(n->id);
		goto out;
	}
	if (dcall_iov(n, &c) < 0)
		goto out;
	if (r->action == ACT_BLACKHOLE) {
		sc_answer(n->id, c.total, 0);	/* sent, never to arrive */
		goto out;
	}
	if (sc_target(rs, r, &dst, &ta) < 0) {
		sc_answer(n->id, -1, errno);
		goto out;
	}
	if (d ? (s = take_fd(n->pid, (int)n->data.args[0], NULL)) < 0 : (s = dgram_open(n, &cl, rs, r, &ta, &d)) < 0) {
		if (d && s < 0)
			sc_pass(n->id);
		goto out;
	}
	dgmap_add(&d->map, &ta.u.un, ta.len, (struct sockaddr *)&sa, inet_len(sa.ss_family));
	dgram_send(n, &c, s, &ta, r, rec_find(d->ino), &dst);
	goto out;
pass:
	sc_pass(n->id);
out:
	if (cl.fd >= 0)
		close(cl.fd);
	if (s >= 0)
		close(s);
}

/*
 * A datagram for a recvfrom()/recvmsg() on our socket s: the data into the
 * program's buffers, the source as the address it sent to. 1 answered,
 * 0 nothing there yet (a blocking caller waits: parked).
 */
int try_recv(uint64_t id, pid_t pid, const struct dcall *c, int s, ino_t ino)
{
	static unsigned char data[DG_MAX];
	struct sockaddr_un from;
	size_t room = c->total > (ssize_t)sizeof data ? sizeof data : (size_t)c->total;
	struct iovec v = { data, room };
	struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &v, .msg_iovlen = 1 };
	ssize_t got = recvmsg(s, &m, MSG_DONTWAIT | (c->flags & (MSG_PEEK | MSG_TRUNC)));

	if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !(c->flags & MSG_DONTWAIT) &&
	    !(fcntl(s, F_GETFL) & O_NONBLOCK))
		return 0;
	if (got < 0)
		return sc_answer(id, -1, errno), 1;
	size_t copied = (size_t)got < room ? (size_t)got : room;
	struct sockaddr_storage src;
	socklen_t sl = 0;
	struct dgram *d = dgram_find(ino);
	if (d)
		sl = dgram_from(d, rec_find(ino), &from, m.msg_namelen, &src);
	if (!still_valid(id))
		return 1;
	/* recvfrom: namelen points at the room; recvmsg: it is the room, and the length goes in the msghdr */
	uint32_t have = c->msg ? (uint32_t)c->namelen : 0;
	int bad = copied && mem_iov(pid, data, copied, c->iov, c->niov, 1) < 0;
	if (!bad && c->name && !c->msg && mem_io(pid, c->namelen, &have, sizeof have, 0) < 0)
		bad = 1;
	if (!bad && c->name && sl && (int32_t)have > 0 && mem_io(pid, c->name, &src, have < sl ? have : sl, 1) < 0)
		bad = 1;
	if (!bad && c->msg) {
		struct kmsghdr mh = c->mh;
		mh.namelen = c->name ? sl : 0;
		mh.controllen = 0;	/* a Unix datagram's ancillary data means nothing to an inet program */
		mh.flags = (size_t)got > room ? MSG_TRUNC : 0;
		bad = mem_io(pid, c->mhaddr, &mh, sizeof mh, 1) < 0;
	} else if (!bad && c->name) {
		bad = mem_io(pid, c->namelen, &sl, sizeof sl, 1) < 0;
	}
	if (bad)
		return sc_answer(id, -1, EFAULT), 1;
	sc_answer(id, (c->flags & MSG_TRUNC) ? got : (ssize_t)copied, 0);
	return 1;
}

void on_recv(const struct seccomp_notif *n)
{
	ino_t ino = fd_ino(n->pid, n->data.args[0]);
	struct dcall c;
	int s;

	if (!dgram_find(ino))
		return sc_pass(n->id);
	if (dcall_head(n, &c) < 0)
		return sc_answer(n->id, -1, EFAULT);
	if (dcall_iov(n, &c) < 0)
		return;
	if ((s = take_fd(n->pid, (int)n->data.args[0], NULL)) < 0)
		return sc_pass(n->id);
	if (try_recv(n->id, n->pid, &c, s, ino)) {
		close(s);
		return;
	}
	struct timeval tv = { 0, 0 };
	socklen_t tl = sizeof tv;
	getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl);
	struct park *p = park_new();
	if (p) {
		*p = (struct park){ .used = 1, .id = n->id, .pid = n->pid, .lfd = s, .recv = 1, .ino = ino, .dc = c };
		if (tv.tv_sec || tv.tv_usec)
			p->deadline = mono_ms() + tv.tv_sec * 1000 + tv.tv_usec / 1000;
		return;
	}
	close(s);
	sc_answer(n->id, -1, EAGAIN);
}

