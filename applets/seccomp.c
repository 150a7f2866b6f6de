/*
 * sockgate-run --seccomp: the rules of libsockgate(7) applied to programs
 * the library cannot reach (static executables, Go), from outside. The
 * program runs under a seccomp filter whose SECCOMP_RET_USER_NOTIF action
 * hands the socket calls the rules need to this process, which stays behind
 * as supervisor (seccomp_unotify(2); seccomp(2) for the filter and its
 * flags). The supervisor reads the call's address from the program's memory
 * (process_vm_readv(2), then SECCOMP_IOCTL_NOTIF_ID_VALID, so that an
 * address read from a process that is gone, or from another one that took
 * its pid, is never acted on), makes the AF_UNIX socket itself, puts it at
 * the program's fd number (SECCOMP_IOCTL_NOTIF_ADDFD with
 * SECCOMP_ADDFD_FLAG_SETFD) and answers the call. Everything no rule is
 * about goes on to the kernel unchanged (SECCOMP_USER_NOTIF_FLAG_CONTINUE).
 *
 * The filter sends as little as it can: only connect() and bind() with an
 * address length an inet address has, getsockname()/getpeername() (answered
 * for sockets made here, found by inode), and accept()/listen() when a bind
 * rule exists. See sockgate-run(1), SECCOMP MODE, for what is not covered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <elf.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "addr.h"
#include "fdpass.h"
#include "file.h"
#include "proxyv2.h"
#include "rules.h"
#include "seccomp.h"
#include "sockfile.h"
#include "util.h"

#if defined(__x86_64__)
#define SG_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SG_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "sockgate-run --seccomp: add this architecture's AUDIT_ARCH value"
#endif
/* Linux 6.6: the supervisor runs on the CPU of the task that waits for it (include/uapi/linux/seccomp.h) */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define CONNECT_WAIT_MS 2000	/* longest a redirected connect (and its header) may hold the supervisor */
#define HDR_WAIT_MS 1000	/* longest an accept waits for the PROXY header of its connection */
#define NREC 4096		/* sockets remembered for getsockname()/getpeername() (oldest go first) */
#define NPARK 64		/* blocking accept() calls waiting for a connection */
#define HDR_MAX 1024

/* A socket made here, as the program must see it. */
struct rec {
	ino_t ino;		/* 0: free */
	int listener;		/* a bind rule's socket (else a connection) */
	int family;		/* the program's socket family */
	int action;		/* for listeners: ACT_UNIX, ACT_ABSTRACT, ACT_FDPASS */
	uint32_t rflags;
	struct sockaddr_storage local, peer;
	socklen_t locallen, peerlen;
};

/* A blocking accept() with no connection yet: answered when one comes. */
struct park {
	int used;
	uint64_t id;
	pid_t pid;
	uint64_t args[6];
	int lfd;		/* our copy of the listener */
	struct rec lr;
};

static struct ruleset **rsets;
static int nrsets;
static struct rec recs[NREC];
static unsigned rec_next;
static struct park parks[NPARK];
static int notify_fd = -1;

/* --- rules ------------------------------------------------------------------ */

static const struct rule *match(int dir, int proto, const struct sockaddr *sa, const struct ruleset **rsp)
{
	struct rules_query q = { .dir = dir, .proto = proto, .addr = sa, .peer = NULL };

	for (int i = 0; i < nrsets; i++) {
		const struct rule *r = rules_match(rsets[i], &q);
		if (r) {
			*rsp = rsets[i];
			return r;
		}
	}
	return NULL;
}

/* Is any rule of dir there (with action act, or any when act is 0)? */
static int have_rule(int dir, int act)
{
	for (int i = 0; i < nrsets; i++)
		for (size_t j = 0; j < rsets[i]->n; j++)
			if (rsets[i]->rule[j].dir == dir && (!act || rsets[i]->rule[j].action == act))
				return 1;
	return 0;
}

/* --- the filter ------------------------------------------------------------- */

struct bpf {
	struct sock_filter f[64];
	int label[64];		/* jump targets to fix: index of the label, or -1 */
	int n;
};
enum { L_ALLOW = 1000, L_NOTIFY, L_ADDRLEN };

static void op(struct bpf *b, uint16_t code, uint32_t k)
{
	b->f[b->n] = (struct sock_filter)BPF_STMT(code, k);
	b->label[b->n++] = -1;
}

/* a conditional jump to label when true, on to the next instruction when false */
static void jmp(struct bpf *b, uint16_t code, uint32_t k, int label)
{
	b->f[b->n] = (struct sock_filter)BPF_JUMP(BPF_JMP | code | BPF_K, k, 0, 0);
	b->label[b->n++] = label;
}

/*
 * The filter: other architectures' and x32 calls are allowed (not covered,
 * see the man page); connect()/bind() are sent here only with an address
 * length an inet address has (16, 28, or more than any Unix address, as
 * with sizeof(struct sockaddr_storage)), or any length from 16 on when a
 * reject rule must see every inet address.
 */
static void build_filter(struct bpf *b, int strict, int binds, int fdpass)
{
	int at[3] = { 0, 0, 0 };

	b->n = 0;
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	jmp(b, BPF_JEQ, SG_AUDIT_ARCH, -2);	/* -2: skip the next one */
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	jmp(b, BPF_JGE, 0x40000000u, L_ALLOW);	/* __X32_SYSCALL_BIT */
#endif
	jmp(b, BPF_JEQ, __NR_connect, L_ADDRLEN);
	if (binds)
		jmp(b, BPF_JEQ, __NR_bind, L_ADDRLEN);
	jmp(b, BPF_JEQ, __NR_getsockname, L_NOTIFY);
	jmp(b, BPF_JEQ, __NR_getpeername, L_NOTIFY);
	if (binds) {
#ifdef __NR_accept
		jmp(b, BPF_JEQ, __NR_accept, L_NOTIFY);
#endif
		jmp(b, BPF_JEQ, __NR_accept4, L_NOTIFY);
	}
	if (fdpass)
		jmp(b, BPF_JEQ, __NR_listen, L_NOTIFY);
	at[0] = b->n;
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	at[2] = b->n;
	/* the low 32 bits of args[2] (little-endian): socklen_t is an int */
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2]));
	if (strict) {
		jmp(b, BPF_JGE, 16, L_NOTIFY);
	} else {
		jmp(b, BPF_JEQ, sizeof(struct sockaddr_in), L_NOTIFY);
		jmp(b, BPF_JEQ, sizeof(struct sockaddr_in6), L_NOTIFY);
		jmp(b, BPF_JGT, sizeof(struct sockaddr_un), L_NOTIFY);
	}
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	at[1] = b->n;
	op(b, BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);

	for (int i = 0; i < b->n; i++) {
		int l = b->label[i];
		if (l == -1)
			continue;
		if (l == -2) {
			b->f[i].jt = 1;
			continue;
		}
		int to = l == L_ALLOW ? at[0] : l == L_NOTIFY ? at[1] : at[2];
		b->f[i].jt = (uint8_t)(to - i - 1);
		b->f[i].jf = 0;
	}
	/* the arch check: equal goes past the ALLOW after it */
}

/* --- the program's memory and descriptors ----------------------------------- */

static int mem_io(pid_t pid, uint64_t addr, void *buf, size_t len, int write)
{
	struct iovec l = { buf, len }, r = { (void *)(uintptr_t)addr, len };
	ssize_t n = write ? process_vm_writev(pid, &l, 1, &r, 1, 0) : process_vm_readv(pid, &l, 1, &r, 1, 0);

	if (n == (ssize_t)len)
		return 0;
	if (n < 0 && errno != ENOSYS && errno != EPERM)
		return -1;
	/* where process_vm_* is filtered away: the same through /proc/PID/mem */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	int fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = write ? pwrite(fd, buf, len, (off_t)addr) : pread(fd, buf, len, (off_t)addr);
	close(fd);
	return n == (ssize_t)len ? 0 : -1;
}

/* Is the notification still pending (its task alive and waiting)? */
static int still_valid(uint64_t id)
{
	return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* The address argument of a call: 0, or -1 when it cannot be read (let the kernel say so). */
static int read_sockaddr(const struct seccomp_notif *n, uint64_t ptr, uint64_t len, struct sockaddr_storage *ss)
{
	size_t l = (uint32_t)len;

	memset(ss, 0, sizeof *ss);
	if (!ptr || l < sizeof(sa_family_t))
		return -1;
	if (l > sizeof *ss)
		l = sizeof *ss;
	/* checked with still_valid() before anything is done on it; a call let through needs no check */
	if (mem_io(n->pid, ptr, ss, l, 0) < 0)
		return -1;
	if (ss->ss_family == AF_INET && l >= sizeof(struct sockaddr_in))
		return 0;
	if (ss->ss_family == AF_INET6 && l >= sizeof(struct sockaddr_in6))
		return 0;
	return -1;
}

/* The thread group of a thread (pidfd_open wants a leader). */
static pid_t tgid_of(pid_t tid)
{
	char path[64], line[128];
	pid_t t = -1;

	snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "Tgid:", 5)) {
			t = (pid_t)strtol(line + 5, NULL, 10);
			break;
		}
	fclose(f);
	return t;
}

/* A copy of the program's fd (the same open file), and its close-on-exec flag. */
static int take_fd(pid_t tid, int fd, int *cloexec)
{
	/* a thread's own pidfd (PIDFD_THREAD, Linux 6.9), else its thread group leader's */
	int pfd = (int)syscall(SYS_pidfd_open, tid, O_EXCL);
	if (pfd < 0) {
		pid_t pid = tgid_of(tid);
		if (pid <= 0 || (pfd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
			return -1;
	}
	int c = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
	close(pfd);
	if (c < 0 || !cloexec)
		return c;
	/* fdinfo's flags carry O_CLOEXEC for the fd (fs/proc/fd.c) */
	char path[64], line[128];
	*cloexec = 0;
	snprintf(path, sizeof path, "/proc/%d/fdinfo/%d", (int)tid, fd);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = f >= 0 ? read(f, line, sizeof line - 1) : -1;
	if (n > 0) {
		line[n] = 0;
		char *fl = strstr(line, "flags:");
		if (fl)
			*cloexec = (strtol(fl + 6, NULL, 8) & O_CLOEXEC) != 0;
	}
	if (f >= 0)
		close(f);
	return c;
}

/* The inode of the program's fd, without taking it: 0 when none. */
static ino_t fd_ino(pid_t tid, uint64_t fd)
{
	char path[64];
	struct stat st;

	if (fd > INT32_MAX)
		return 0;
	snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)tid, (int)fd);
	if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return 0;
	return st.st_ino;
}

static struct rec *rec_find(ino_t ino)
{
	if (!ino)
		return NULL;
	for (unsigned i = 0; i < NREC; i++)
		if (recs[i].ino == ino)
			return &recs[i];
	return NULL;
}

static struct rec *rec_add(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return NULL;
	struct rec *r = rec_find(st.st_ino);
	/* the oldest connection goes; a listener stays as long as we run (it keeps accepting) */
	for (unsigned i = 0; !r && i < NREC; i++) {
		if (!recs[rec_next].listener)
			r = &recs[rec_next];
		rec_next = (rec_next + 1) % NREC;
	}
	if (!r)
		return NULL;
	memset(r, 0, sizeof *r);
	r->ino = st.st_ino;
	return r;
}

/* --- answers ----------------------------------------------------------------- */

static void answer(uint64_t id, int64_t val, int err)
{
	struct seccomp_notif_resp resp;

	memset(&resp, 0, sizeof resp);
	resp.id = id;
	resp.val = val;
	resp.error = err ? -err : 0;
	/* ENOENT: the task is gone or was interrupted; nothing to say to it */
	ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/*
 * Let the kernel do the call. Safe for what we redirect: the call we leave
 * alone is one we do not change, so a program that changes its memory in
 * between only gets what the kernel gives it anyway.
 */
static void pass(uint64_t id)
{
	struct seccomp_notif_resp resp;

	memset(&resp, 0, sizeof resp);
	resp.id = id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/* Put s at the program's fd number (SETFD), or as a new fd answering the call (SEND). */
static int install(uint64_t id, int s, int fd, int cloexec, int send)
{
	struct seccomp_notif_addfd a;

	memset(&a, 0, sizeof a);
	a.id = id;
	a.srcfd = (uint32_t)s;
	a.newfd = send ? 0 : (uint32_t)fd;
	a.newfd_flags = cloexec ? O_CLOEXEC : 0;
	a.flags = send ? SECCOMP_ADDFD_FLAG_SEND : SECCOMP_ADDFD_FLAG_SETFD;
	return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ADDFD, &a);
}

static void set_nonblock(int s, int on)
{
	int fl = fcntl(s, F_GETFL);
	if (fl >= 0)
		fcntl(s, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* --- addresses --------------------------------------------------------------- */

static socklen_t inet_len(int fam)
{
	return fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* IPv4-mapped IPv6 as plain IPv4 (for matching, templates and headers). */
static void canon(const struct sockaddr_storage *in, struct sockaddr_storage *out)
{
	socklen_t l = sizeof *out;

	*out = *in;
	addr_unmap(out, &l);
}

/* An inet address in family fam (IPv4 <-> ::ffff:IPv4): its length, or 0. */
static socklen_t in_family(const struct sockaddr_storage *a, int fam, struct sockaddr_storage *out)
{
	socklen_t l = sizeof *out;

	*out = *a;
	if (addr_to_family(out, &l, fam) < 0) {
		memset(out, 0, sizeof *out);
		return 0;
	}
	return l;
}

static void any_addr(int fam, int loopback, struct sockaddr_storage *ss, socklen_t *len)
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
static void pick_source(const struct ruleset *rs, const struct rule *r, const struct sockaddr_storage *dst,
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
static int target(const struct ruleset *rs, const struct rule *r, const struct sockaddr_storage *dst,
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

static int header(const struct rule *r, const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
		  unsigned char *buf, size_t size)
{
	struct proxy_hdr h;

	memset(&h, 0, sizeof h);
	h.version = (r->flags & RULE_F_PROXY_V1) ? 1 : 2;
	h.command = PROXY_CMD_PROXY;
	h.socktype = SOCK_STREAM;
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

static int wait_fd(int s, short ev, int ms)
{
	struct pollfd p = { .fd = s, .events = ev };
	int n;
	while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return n;
}

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
struct call {
	struct sockaddr_storage sa, dst;	/* as given; IPv4-mapped made IPv4 */
	const struct ruleset *rs;
	const struct rule *r;
	int fd, cloexec, domain, type;
};

static int call_open(const struct seccomp_notif *n, int dir, int proto, struct call *c)
{
	socklen_t l;

	c->fd = -1;
	c->domain = c->type = c->cloexec = 0;
	if (read_sockaddr(n, n->data.args[1], n->data.args[2], &c->sa) < 0)
		return pass(n->id), -1;
	canon(&c->sa, &c->dst);
	if (!(c->r = match(dir, proto, (struct sockaddr *)&c->dst, &c->rs)))
		return pass(n->id), -1;
	if (!still_valid(n->id))
		return -1;
	if ((c->fd = take_fd(n->pid, (int)n->data.args[0], &c->cloexec)) < 0)
		return pass(n->id), -1;
	l = sizeof c->domain;
	getsockopt(c->fd, SOL_SOCKET, SO_DOMAIN, &c->domain, &l);
	l = sizeof c->type;
	getsockopt(c->fd, SOL_SOCKET, SO_TYPE, &c->type, &l);
	return 0;
}

static void on_connect(const struct seccomp_notif *n)
{
	struct call cl;
	int s = -1;

	if (call_open(n, RULE_CONNECT, RULE_ANYPROTO, &cl) < 0)
		return;
	const struct ruleset *rs = cl.rs;
	const struct rule *r = cl.r;
	int fd = cl.fd, domain = cl.domain, type = cl.type, cloexec = cl.cloexec;
	struct sockaddr_storage sa = cl.sa, dst = cl.dst;

	if (domain != sa.ss_family || (type != SOCK_STREAM && type != SOCK_DGRAM))
		goto pass;
	if (r->proto != RULE_ANYPROTO &&
	    !(r = match(RULE_CONNECT, type == SOCK_STREAM ? RULE_TCP : RULE_UDP, (struct sockaddr *)&dst, &rs)))
		goto pass;
	if (r->action == ACT_REJECT) {
		/* answered here, never continued: the kernel must not see the address again */
		answer(n->id, -1, r->err ? r->err : ECONNREFUSED);
		goto out;
	}
	if (type != SOCK_STREAM || (r->action != ACT_UNIX && r->action != ACT_ABSTRACT && r->action != ACT_TCP))
		goto pass;	/* datagrams, blackhole, nat64, pass: as without rules (see the man page) */

	struct stat st;
	if (fstat(fd, &st) == 0 && rec_find(st.st_ino)) {
		answer(n->id, -1, EISCONN);	/* connected by us already, as TCP says */
		goto out;
	}
	struct sg_addr ta;
	struct sockaddr_storage local;
	socklen_t locallen;
	unsigned char hdr[HDR_MAX];
	int hl = 0;
	int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;

	pick_source(rs, r, &dst, domain, &local, &locallen);
	if (target(rs, r, &dst, &ta) < 0 ||
	    ((r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) &&
	     (hl = header(r, &local, &dst, hdr, sizeof hdr)) < 0)) {
		answer(n->id, -1, errno);
		goto out;
	}
	int how = open_target(&ta, hdr, (size_t)hl, nonblock, &s);
	if (how < 0) {
		answer(n->id, -1, errno);
		goto out;
	}
	struct rec *rc = rec_add(s);
	if (install(n->id, s, (int)n->data.args[0], cloexec, 0) < 0) {
		if (rc)
			rc->ino = 0;
		answer(n->id, -1, errno == ENOENT ? EINTR : errno);
		goto out;
	}
	if (rc) {
		rc->family = domain;
		rc->local = local;
		rc->locallen = locallen;
		rc->peer = sa;
		rc->peerlen = inet_len(domain);
	}
	answer(n->id, how ? -1 : 0, how ? EINPROGRESS : 0);
	goto out;
pass:
	pass(n->id);
out:
	if (fd >= 0)
		close(fd);
	if (s >= 0)
		close(s);
}

/* --- getsockname(), getpeername() --------------------------------------------- */

static void on_name(const struct seccomp_notif *n, int peer)
{
	struct rec *r = rec_find(fd_ino(n->pid, n->data.args[0]));
	uint32_t len;

	if (!r || (peer && r->listener))
		return pass(n->id);
	const struct sockaddr_storage *a = peer ? &r->peer : &r->local;
	socklen_t al = peer ? r->peerlen : r->locallen;
	if (mem_io(n->pid, n->data.args[2], &len, sizeof len, 0) < 0 || (int32_t)len < 0)
		return answer(n->id, -1, EFAULT);
	if (!still_valid(n->id))
		return;
	if ((len && mem_io(n->pid, n->data.args[1], (void *)a, len < al ? len : al, 1) < 0) ||
	    mem_io(n->pid, n->data.args[2], &al, sizeof al, 1) < 0)
		return answer(n->id, -1, EFAULT);
	answer(n->id, 0, 0);
}

/* --- bind(), listen(), accept() ------------------------------------------------ */

static void on_bind(const struct seccomp_notif *n)
{
	struct call cl;
	int s = -1;

	if (call_open(n, RULE_BIND, RULE_TCP, &cl) < 0)
		return;
	const struct ruleset *rs = cl.rs;
	const struct rule *r = cl.r;
	int fd = cl.fd, cloexec = cl.cloexec, domain = cl.domain;
	struct sockaddr_storage sa = cl.sa, dst = cl.dst;

	if ((r->action != ACT_UNIX && r->action != ACT_ABSTRACT && r->action != ACT_FDPASS) ||
	    domain != sa.ss_family || cl.type != SOCK_STREAM) {
		pass(n->id);
		goto out;
	}
	char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
	struct sg_addr a;
	const char *tmpl = rules_str(rs, r->arg);
	int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
	if (!tmpl || rules_expand(tmpl, (struct sockaddr *)&dst, path, sizeof path) < 0 ||
	    addr_unix(&a, path, r->action == ACT_ABSTRACT) < 0 ||
	    (s = socket(AF_UNIX, (r->action == ACT_FDPASS ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0)) < 0) {
		answer(n->id, -1, errno);
		goto out;
	}
	if (bind_unix_path(s, &a.u.un, a.len) < 0) {
		answer(n->id, -1, errno);
		goto out;
	}
	if (r->mode && r->action != ACT_ABSTRACT)
		chmod(path, (mode_t)r->mode);
	set_nonblock(s, nonblock);
	struct rec *rc = rec_add(s);
	if (install(n->id, s, (int)n->data.args[0], cloexec, 0) < 0) {
		if (rc)
			rc->ino = 0;
		answer(n->id, -1, errno == ENOENT ? EINTR : errno);
		goto out;
	}
	if (rc) {
		rc->listener = 1;
		rc->family = domain;
		rc->action = r->action;
		rc->rflags = r->flags;
		rc->local = sa;
		rc->locallen = inet_len(domain);
	}
	answer(n->id, 0, 0);
out:
	if (fd >= 0)
		close(fd);
	if (s >= 0)
		close(s);
}

static void on_listen(const struct seccomp_notif *n)
{
	struct rec *r = rec_find(fd_ino(n->pid, n->data.args[0]));

	/* a receiver of passed sockets is a datagram socket: it has nothing to listen for */
	if (r && r->listener && r->action == ACT_FDPASS)
		return answer(n->id, 0, 0);
	pass(n->id);
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
static int try_accept(uint64_t id, pid_t pid, const uint64_t *args, int lfd, const struct rec *lr)
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
			answer(id, -1, errno);
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
			answer(id, -1, errno);
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
				answer(id, -1, ECONNABORTED);	/* as a connection gone before accept */
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
			answer(id, -1, EFAULT);
			return -1;
		}
	}
	int r = install(id, c, 0, (flags & SOCK_CLOEXEC) != 0, 1);
	close(c);
	if (r < 0)
		answer(id, -1, errno == ENOENT ? EINTR : errno);
	return 1;
}

static void on_accept(const struct seccomp_notif *n)
{
	struct rec *r = rec_find(fd_ino(n->pid, n->data.args[0]));
	uint64_t args[6];

	if (!r || !r->listener)
		return pass(n->id);
	memcpy(args, n->data.args, sizeof args);
	if (n->data.nr != __NR_accept4)
		args[3] = 0;
	if (args[3] & ~(uint64_t)(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return answer(n->id, -1, EINVAL);
	int lfd = take_fd(n->pid, (int)args[0], NULL);
	if (lfd < 0)
		return pass(n->id);
	if (try_accept(n->id, n->pid, args, lfd, r) != 0) {
		close(lfd);
		return;
	}
	if (fcntl(lfd, F_GETFL) & O_NONBLOCK) {
		close(lfd);
		return answer(n->id, -1, EAGAIN);
	}
	for (int i = 0; i < NPARK; i++)
		if (!parks[i].used) {
			parks[i] = (struct park){ .used = 1, .id = n->id, .pid = n->pid, .lfd = lfd, .lr = *r };
			memcpy(parks[i].args, args, sizeof args);
			return;
		}
	close(lfd);
	answer(n->id, -1, EAGAIN);
}

static void park_done(struct park *p)
{
	close(p->lfd);
	p->used = 0;
}

/* A parked accept's listener is readable, or its task may have gone. */
static void park_try(struct park *p)
{
	if (!still_valid(p->id))
		return park_done(p);
	if (try_accept(p->id, p->pid, p->args, p->lfd, &p->lr) != 0)
		park_done(p);
}

/* Before a signal goes to the program: its parked accepts return EINTR, as a blocked accept would. */
static void parks_interrupt(void)
{
	for (int i = 0; i < NPARK; i++)
		if (parks[i].used) {
			answer(parks[i].id, -1, EINTR);
			park_done(&parks[i]);
		}
}

/* --- the supervisor ------------------------------------------------------------ */

static void on_notify(void)
{
	struct seccomp_notif n;

	memset(&n, 0, sizeof n);
	if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &n) < 0)
		return;		/* ENOENT: the task went away before we looked */
	switch (n.data.nr) {
	case __NR_connect:
		return on_connect(&n);
	case __NR_bind:
		return on_bind(&n);
	case __NR_getsockname:
		return on_name(&n, 0);
	case __NR_getpeername:
		return on_name(&n, 1);
	case __NR_listen:
		return on_listen(&n);
#ifdef __NR_accept
	case __NR_accept:
#endif
	case __NR_accept4:
		return on_accept(&n);
	}
	pass(n.id);
}

/* Exit as the program did: the same code, or the same signal. */
static void __attribute__((noreturn)) exit_like(int status)
{
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		sigset_t all;
		signal(sig, SIG_DFL);
		sigemptyset(&all);
		sigaddset(&all, sig);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		if (sig != SIGSTOP && sig != SIGTSTP)
			raise(sig);
		_exit(128 + sig);
	}
	_exit(WEXITSTATUS(status));
}

static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH };

/* In the child: install the filter, send its listener up, run the program. */
static void __attribute__((noreturn)) child(int up, const sigset_t *old, char **argv)
{
	struct bpf b;
	int strict = have_rule(RULE_CONNECT, ACT_REJECT);
	int binds = have_rule(RULE_BIND, 0);

	build_filter(&b, strict, binds, have_rule(RULE_BIND, ACT_FDPASS));
	struct sock_fprog prog = { .len = (unsigned short)b.n, .filter = b.f };
	int e = 0, lfd = -1;

	sigprocmask(SIG_SETMASK, old, NULL);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		e = errno;
	if (!e) {
		/* killable only, once the supervisor has the call: Go's preemption signals must not cut it off */
		lfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
				   SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
		if (lfd < 0 && errno == EINVAL)
			lfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (lfd < 0)
			e = errno;
	}
	/* sendmsg() is not in the filter, so this does not wait for the supervisor */
	if (e ? send(up, &e, sizeof e, MSG_NOSIGNAL) < 0 : fdpass_send(up, &lfd, 1, &e, sizeof e, 0) < 0)
		_exit(EX_SYSFAIL);
	if (e)
		_exit(EX_SYSFAIL);
	close(lfd);
	close(up);
	execvp(argv[0], argv);
	die(errno == ENOENT || errno == ENOTDIR ? EX_NOTFOUND : EX_CANNOTRUN, "unable to run %s: %s", argv[0],
	    strerror(errno));
}

void seccomp_run(struct ruleset **rs, int nrs, char **argv)
{
	int sp[2];
	sigset_t set, old;

	rsets = rs;
	nrsets = nrs;
	sigemptyset(&set);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		sigaddset(&set, forwarded[i]);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, &old) < 0)
		die_sys("unable to block signals");
	int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die_sys("unable to make a signalfd");
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		die_sys("unable to make a socket pair");
	pid_t pid = fork();
	if (pid < 0)
		die_sys("unable to fork");
	if (pid == 0) {
		close(sfd);
		close(sp[0]);
		child(sp[1], &old, argv);
	}
	close(sp[1]);

	int e = 0, status;
	size_t nf = 1;
	ssize_t got = fdpass_recv(sp[0], &notify_fd, &nf, &e, sizeof e, 0);
	close(sp[0]);
	if (got < (ssize_t)sizeof e || e || !nf) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		e = e ? e : EPROTO;
		die(EX_SYSFAIL, "unable to install the seccomp filter: %s (%s)", strerror(e),
		    e == EBUSY ? "a supervisor watches this process already: one per process, seccomp(2)"
			       : "this kernel or the container's own filter refuses seccomp user notification");
	}

	/* a notification is a round trip: switching CPUs would cost more than the work (older kernels: EINVAL) */
	ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
	for (;;) {
		struct pollfd p[2 + NPARK];
		int map[NPARK], np = 2;
		p[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = notify_fd, .events = POLLIN };
		for (int i = 0; i < NPARK; i++)
			if (parks[i].used) {
				map[np - 2] = i;
				p[np++] = (struct pollfd){ .fd = parks[i].lfd, .events = POLLIN };
			}
		/* a parked task may be killed meanwhile: look again now and then */
		int n = poll(p, (nfds_t)np, np > 2 ? 1000 : -1);
		if (n < 0 && errno != EINTR)
			die_sys("unable to poll");
		if (n == 0)
			for (int i = 0; i < NPARK; i++)
				if (parks[i].used && !still_valid(parks[i].id))
					park_done(&parks[i]);
		if (n <= 0)
			continue;
		if (p[1].revents & POLLIN)
			on_notify();
		else if (p[1].revents & (POLLHUP | POLLERR))
			p[1].fd = -1;	/* no task left under the filter; the program's exit comes next */
		for (int i = 2; i < np; i++)
			if (p[i].revents && parks[map[i - 2]].used)
				park_try(&parks[map[i - 2]]);
		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
				if ((int)si.ssi_signo != SIGCHLD) {
					parks_interrupt();
					kill(pid, (int)si.ssi_signo);
				}
			}
			pid_t w;
			while ((w = waitpid(-1, &status, WNOHANG)) > 0)
				if (w == pid)
					exit_like(status);
		}
		if (p[1].fd < 0 && notify_fd >= 0) {
			/* wait for the program's end without spinning on the hung-up listener */
			close(notify_fd);
			notify_fd = -1;
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			exit_like(status);
		}
	}
}

/* --- what the library can reach -------------------------------------------------- */

/* 1 when the section names of an ELF file include Go's, else 0. */
static int has_go_sections(int fd, const Elf64_Ehdr *eh)
{
	if (eh->e_shoff == 0 || eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0 ||
	    eh->e_shnum > 4096 || eh->e_shstrndx >= eh->e_shnum)
		return 0;
	size_t sz = (size_t)eh->e_shnum * sizeof(Elf64_Shdr);
	Elf64_Shdr *sh = malloc(sz);
	int go = 0;
	if (!sh || pread(fd, sh, sz, (off_t)eh->e_shoff) != (ssize_t)sz) {
		free(sh);
		return 0;
	}
	const Elf64_Shdr *st = &sh[eh->e_shstrndx];
	size_t nl = st->sh_size > (1u << 20) ? (1u << 20) : st->sh_size;
	char *names = malloc(nl + 1);
	if (names && pread(fd, names, nl, (off_t)st->sh_offset) == (ssize_t)nl) {
		names[nl] = 0;
		for (int i = 0; i < eh->e_shnum && !go; i++)
			if (sh[i].sh_name < nl && (!strcmp(names + sh[i].sh_name, ".go.buildinfo") ||
						    !strcmp(names + sh[i].sh_name, ".note.go.buildid")))
				go = 1;
	}
	free(names);
	free(sh);
	return go;
}

int elf_kind(const char *path)
{
	Elf64_Ehdr eh;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	int kind = -1;

	if (fd < 0)
		return -1;
	if (pread(fd, &eh, sizeof eh, 0) != (ssize_t)sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum > 4096)
		goto out;
	kind = ELF_STATIC;
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * sizeof ph)) != (ssize_t)sizeof ph) {
			kind = -1;
			goto out;
		}
		if (ph.p_type == PT_INTERP)
			kind = ELF_DYNAMIC;
	}
	/* Go calls the kernel itself, linked dynamically (cgo) or not */
	if (has_go_sections(fd, &eh))
		kind = ELF_GO;
out:
	close(fd);
	return kind;
}

void seccomp_hint(const char *program)
{
	char path[4096];
	const char *exe = program;

	if (!strchr(program, '/')) {
		const char *p = getenv("PATH");
		exe = NULL;
		for (; p && *p && !exe;) {
			size_t l = strcspn(p, ":");
			if ((size_t)snprintf(path, sizeof path, "%.*s/%s", (int)l, l ? p : ".", program) < sizeof path &&
			    access(path, X_OK) == 0)
				exe = path;
			p += l + (p[l] == ':');
		}
	}
	switch (exe ? elf_kind(exe) : -1) {
	case ELF_STATIC:
		warn("%s is linked statically, out of the library's reach: run it with --seccomp", program);
		break;
	case ELF_GO:
		warn("%s is a Go program, which calls the kernel without libc: run it with --seccomp", program);
		break;
	}
}

void preload_drop_self(void)
{
	const char *old = getenv("LD_PRELOAD");
	if (!old || !strstr(old, "libsockgate.so"))
		return;
	char *out = malloc(strlen(old) + 1);
	size_t o = 0;
	if (!out)
		die_sys("out of memory");
	for (const char *p = old; *p;) {
		size_t l = strcspn(p, " :");
		const char *base = memrchr(p, '/', l);
		base = base ? base + 1 : p;
		if (l && !((size_t)(p + l - base) == strlen("libsockgate.so") && !memcmp(base, "libsockgate.so", 14))) {
			if (o)
				out[o++] = ' ';
			memcpy(out + o, p, l);
			o += l;
		}
		p += l + (p[l] != 0);
	}
	out[o] = 0;
	if (o ? setenv("LD_PRELOAD", out, 1) : unsetenv("LD_PRELOAD"))
		die_sys("unable to set LD_PRELOAD");
	free(out);
}
