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
 * for sockets made here, found by inode), accept()/listen() when a bind
 * rule exists, and, when a connect rule can apply to UDP, sendto() with an
 * address, recvfrom() with room for one, sendmsg() and recvmsg(). A UDP
 * socket sent or connected to a matched address becomes an AF_UNIX
 * datagram socket, as in the library's datagram path (preload/out.c): the
 * supervisor sends its datagrams and receives them, giving replies the
 * source address the program sent to. See sockgate-run(1), SECCOMP MODE,
 * for what is not covered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
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
#include "dgmap.h"
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
#define NDGRAM 64		/* datagram sockets made AF_UNIX (the oldest go first) */
#define DG_IOV 64		/* iovecs of a redirected sendmsg()/recvmsg() */
#define DG_MAX 65536		/* the largest datagram carried (UDP's own limit) */
#define DG_WAIT_MS 200		/* longest a blocking send waits for room before the datagram is dropped */

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

/* struct msghdr as the kernel reads it on 64-bit Linux (include/linux/socket.h's user_msghdr) */
struct kmsghdr {
	uint64_t name;
	uint32_t namelen, pad0;
	uint64_t iov, iovlen, control, controllen;
	int32_t flags, pad1;
};

/* A sendto()/sendmsg()/recvfrom()/recvmsg(): where its data and address are. */
struct dcall {
	int msg;
	struct kmsghdr mh;
	uint64_t mhaddr;
	struct iovec iov[DG_IOV];
	int niov;
	ssize_t total;
	uint64_t name, namelen;	/* recv*: namelen is where the length goes (recvfrom) */
	int flags;
};

/* A blocking accept() or recv with nothing there yet: answered when something comes. */
struct park {
	int used;
	uint64_t id;
	pid_t pid;
	uint64_t args[6];
	int lfd;		/* our copy of the listener (or of the datagram socket) */
	struct rec lr;
	int recv;		/* a recvfrom()/recvmsg(), else an accept */
	int64_t deadline;	/* for recv: SO_RCVTIMEO's end, or 0 */
	ino_t ino;		/* for recv: the datagram socket */
	struct dcall dc;
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

/* Could a connect rule send datagrams somewhere (a udp rule, or one for any protocol)? */
static int have_udp_rule(void)
{
	for (int i = 0; i < nrsets; i++)
		for (size_t j = 0; j < rsets[i]->n; j++) {
			const struct rule *r = &rsets[i]->rule[j];
			if (r->dir == RULE_CONNECT && r->proto != RULE_TCP && r->action != ACT_PASS)
				return 1;
		}
	return 0;
}

/* --- the filter ------------------------------------------------------------- */

struct bpf {
	struct sock_filter f[96];
	int label[96];		/* a jump's target to fix: a label, or -1 (jt) */
	int flabel[96];		/* the same for jf */
	int at[8];		/* where each label is */
	int n;
};
enum { L_ALLOW, L_NOTIFY, L_LEN2, L_LEN5, L_SENDTO, L_RECVFROM, L_NLABELS };

static void op(struct bpf *b, uint16_t code, uint32_t k)
{
	b->f[b->n] = (struct sock_filter)BPF_STMT(code, k);
	b->label[b->n] = b->flabel[b->n] = -1;
	b->n++;
}

/* a conditional jump to label when true (or when false, for jf), on to the next instruction otherwise */
static void jmp2(struct bpf *b, uint16_t code, uint32_t k, int label, int flabel)
{
	b->f[b->n] = (struct sock_filter)BPF_JUMP(BPF_JMP | code | BPF_K, k, 0, 0);
	b->label[b->n] = label;
	b->flabel[b->n] = flabel;
	b->n++;
}

static void jmp(struct bpf *b, uint16_t code, uint32_t k, int label)
{
	jmp2(b, code, k, label, -1);
}

static void here(struct bpf *b, int label)
{
	b->at[label] = b->n;
}

static void ld_arg(struct bpf *b, int i, int high)
{
	op(b, BPF_LD | BPF_W | BPF_ABS, (uint32_t)(offsetof(struct seccomp_data, args[i]) + (high ? 4 : 0)));
}

/* an address length argument (the low 32 bits: socklen_t is an int; little-endian) worth a look */
static void addrlen_check(struct bpf *b, int arg, int strict)
{
	ld_arg(b, arg, 0);
	if (strict) {
		jmp(b, BPF_JGE, 16, L_NOTIFY);
	} else {
		jmp(b, BPF_JEQ, sizeof(struct sockaddr_in), L_NOTIFY);
		jmp(b, BPF_JEQ, sizeof(struct sockaddr_in6), L_NOTIFY);
		jmp(b, BPF_JGT, sizeof(struct sockaddr_un), L_NOTIFY);
	}
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

/* a pointer argument: NULL passes, anything else comes here */
static void null_check(struct bpf *b, int arg, int then)
{
	ld_arg(b, arg, 0);
	jmp2(b, BPF_JEQ, 0, -1, then);
	ld_arg(b, arg, 1);
	jmp2(b, BPF_JEQ, 0, -1, then);
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
}

/*
 * The filter: other architectures' and x32 calls are allowed (not covered,
 * see the man page); connect()/bind() are sent here only with an address
 * length an inet address has (16, 28, or more than any Unix address, as
 * with sizeof(struct sockaddr_storage)), or any length from 16 on when a
 * reject rule must see every inet address. With datagram rules: sendto()
 * with an address (checked the same way), recvfrom() with room for one,
 * and sendmsg()/recvmsg() always (the address is behind a pointer BPF
 * cannot follow).
 */
static void build_filter(struct bpf *b, int strict, int binds, int fdpass, int dgrams)
{
	b->n = 0;
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	jmp2(b, BPF_JEQ, SG_AUDIT_ARCH, -1, L_ALLOW);
	op(b, BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	jmp(b, BPF_JGE, 0x40000000u, L_ALLOW);	/* __X32_SYSCALL_BIT */
#endif
	jmp(b, BPF_JEQ, __NR_connect, L_LEN2);
	if (binds)
		jmp(b, BPF_JEQ, __NR_bind, L_LEN2);
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
	if (dgrams) {
		jmp(b, BPF_JEQ, __NR_sendto, L_SENDTO);
		jmp(b, BPF_JEQ, __NR_recvfrom, L_RECVFROM);
		jmp(b, BPF_JEQ, __NR_sendmsg, L_NOTIFY);
		jmp(b, BPF_JEQ, __NR_recvmsg, L_NOTIFY);
	}
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	/* BPF jumps only forward: the blocks, then the two answers */
	here(b, L_LEN2);
	addrlen_check(b, 2, strict);
	if (dgrams) {
		here(b, L_SENDTO);
		null_check(b, 4, L_LEN5);
		here(b, L_LEN5);
		addrlen_check(b, 5, strict);
		here(b, L_RECVFROM);
		null_check(b, 4, L_NOTIFY);
	}
	here(b, L_ALLOW);
	op(b, BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	here(b, L_NOTIFY);
	op(b, BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF);
	for (int i = 0; i < b->n; i++) {
		if (b->label[i] >= 0)
			b->f[i].jt = (uint8_t)(b->at[b->label[i]] - i - 1);
		if (b->flabel[i] >= 0)
			b->f[i].jf = (uint8_t)(b->at[b->flabel[i]] - i - 1);
	}
}

/* --- the program's memory and descriptors ----------------------------------- */

/* Between buf and the program's iovecs riov[0..n) in order: 0 when all len bytes moved. */
static int mem_iov(pid_t pid, void *buf, size_t len, const struct iovec *riov, int n, int write)
{
	struct iovec l = { buf, len };
	ssize_t got = write ? process_vm_writev(pid, &l, 1, riov, (unsigned long)n, 0)
			    : process_vm_readv(pid, &l, 1, riov, (unsigned long)n, 0);

	if (got == (ssize_t)len)
		return 0;
	if (got < 0 && errno != ENOSYS && errno != EPERM)
		return -1;
	/* where process_vm_* is filtered away: the same through /proc/PID/mem */
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	int fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t done = 0;
	for (int i = 0; i < n && done < len; i++) {
		size_t k = riov[i].iov_len < len - done ? riov[i].iov_len : len - done;
		off_t at = (off_t)(uintptr_t)riov[i].iov_base;
		if ((write ? pwrite(fd, (char *)buf + done, k, at) : pread(fd, (char *)buf + done, k, at)) != (ssize_t)k)
			break;
		done += k;
	}
	close(fd);
	return done == len ? 0 : -1;
}

static int mem_io(pid_t pid, uint64_t addr, void *buf, size_t len, int write)
{
	struct iovec r = { (void *)(uintptr_t)addr, len };
	return mem_iov(pid, buf, len, &r, 1, write);
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

/*
 * Put s at the program's fd of the call (args[0]) and remember it: 0 and
 * its record (NULL when none is free), or -1 answered with the error.
 */
static int swap_in(const struct seccomp_notif *n, int s, int cloexec, struct rec **rcp)
{
	struct rec *rc = rec_add(s);

	if (install(n->id, s, (int)n->data.args[0], cloexec, 0) < 0) {
		if (rc)
			rc->ino = 0;
		answer(n->id, -1, errno == ENOENT ? EINTR : errno);
		return -1;
	}
	*rcp = rc;
	return 0;
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

static int call_open(const struct seccomp_notif *n, uint64_t ptr, uint64_t len, int dir, int proto, struct call *c)
{
	socklen_t l;

	c->fd = -1;
	c->domain = c->type = c->cloexec = 0;
	if (read_sockaddr(n, ptr, len, &c->sa) < 0)
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
	if (c->domain != c->sa.ss_family || (c->type != SOCK_STREAM && c->type != SOCK_DGRAM)) {
		close(c->fd);
		return pass(n->id), -1;
	}
	return 0;
}

/* --- datagrams ------------------------------------------------------------------ */

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
static void dgram_cleanup(void)
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
			if (sscanf(line, " tfd: %d events: %x data: %llx pos:%*d ino:%lx", &tfd, &ev, &data, &ino) != 4 ||
			    tfd != pfd || ino != (unsigned long)old)
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
	answer(n->id, -1, errno);
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
		return answer(n->id, -1, errno), -1;
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
		return answer(n->id, -1, EMSGSIZE);
	if (c->total && mem_iov(n->pid, data, (size_t)c->total, c->iov, c->niov, 0) < 0)
		return answer(n->id, -1, EFAULT);
	if (r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) {
		struct sockaddr_storage src;
		socklen_t sl;
		if (rc && rc->locallen)
			src = rc->local;
		else
			any_addr(dst->ss_family, 0, &src, &sl);
		if ((hl = header(r, &src, dst, SOCK_DGRAM, hdr, sizeof hdr)) < 0)
			return answer(n->id, -1, errno);
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
		return answer(n->id, -1, e == ENOENT || e == ENOTDIR || e == EPROTOTYPE || e == ENOTSOCK ? ECONNREFUSED : e);
	}
	answer(n->id, w >= hl ? w - hl : 0, 0);
}

/* connect() of a datagram socket by a rule: made AF_UNIX and connected to the target. */
static void dgram_connect(const struct seccomp_notif *n, const struct call *cl, const struct ruleset *rs,
			  const struct rule *r)
{
	struct sg_addr ta;
	struct dgram *d;
	struct stat st;
	int s;

	if (r->action != ACT_UNIX && r->action != ACT_ABSTRACT)
		return pass(n->id);	/* blackhole, nat64, tcp targets: as without rules (see the man page) */
	if (target(rs, r, &cl->dst, &ta) < 0)
		return answer(n->id, -1, errno);
	if (fstat(cl->fd, &st) == 0 && (d = dgram_find(st.st_ino)))
		s = dup(cl->fd);	/* ours already: connected again */
	else if ((s = dgram_open(n, cl, rs, r, &ta, &d)) < 0)
		return;
	if (connect(s, &ta.u.sa, ta.len) < 0) {
		int e = errno;
		close(s);
		return answer(n->id, -1, e == ENOENT || e == ENOTDIR || e == EPROTOTYPE ? ECONNREFUSED : e);
	}
	struct rec *rc = rec_find(d->ino);
	if (rc) {
		rc->peer = cl->sa;
		rc->peerlen = inet_len(cl->domain);
	}
	dgmap_add(&d->map, &ta.u.un, ta.len, (struct sockaddr *)&cl->sa, inet_len(cl->domain));
	close(s);
	answer(n->id, 0, 0);
}

static void on_send(const struct seccomp_notif *n)
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
		return pass(n->id);	/* no address: the kernel knows the way (or says EFAULT) */
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
			return pass(n->id);	/* a Unix address on our Unix socket: the kernel's */
		canon(&sa, &dst);
		if (!(r = match(RULE_CONNECT, RULE_UDP, (struct sockaddr *)&dst, &rs)) || r->action == ACT_PASS)
			return answer(n->id, -1, ENETUNREACH);	/* an AF_UNIX socket now: it cannot reach IP */
	}
	if (r->action == ACT_REJECT) {
		answer(n->id, -1, r->err ? r->err : ECONNREFUSED);
		goto out;
	}
	if (r->action != ACT_UNIX && r->action != ACT_ABSTRACT && r->action != ACT_BLACKHOLE) {
		if (d)
			answer(n->id, -1, ENETUNREACH);
		else
			pass(n->id);
		goto out;
	}
	if (dcall_iov(n, &c) < 0)
		goto out;
	if (r->action == ACT_BLACKHOLE) {
		answer(n->id, c.total, 0);	/* sent, never to arrive */
		goto out;
	}
	if (target(rs, r, &dst, &ta) < 0) {
		answer(n->id, -1, errno);
		goto out;
	}
	if (d ? (s = take_fd(n->pid, (int)n->data.args[0], NULL)) < 0 : (s = dgram_open(n, &cl, rs, r, &ta, &d)) < 0) {
		if (d && s < 0)
			pass(n->id);
		goto out;
	}
	dgmap_add(&d->map, &ta.u.un, ta.len, (struct sockaddr *)&sa, inet_len(sa.ss_family));
	dgram_send(n, &c, s, &ta, r, rec_find(d->ino), &dst);
	goto out;
pass:
	pass(n->id);
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
static int try_recv(uint64_t id, pid_t pid, const struct dcall *c, int s, ino_t ino)
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
		return answer(id, -1, errno), 1;
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
		return answer(id, -1, EFAULT), 1;
	answer(id, (c->flags & MSG_TRUNC) ? got : (ssize_t)copied, 0);
	return 1;
}

static void on_recv(const struct seccomp_notif *n)
{
	ino_t ino = fd_ino(n->pid, n->data.args[0]);
	struct dcall c;
	int s;

	if (!dgram_find(ino))
		return pass(n->id);
	if (dcall_head(n, &c) < 0)
		return answer(n->id, -1, EFAULT);
	if (dcall_iov(n, &c) < 0)
		return;
	if ((s = take_fd(n->pid, (int)n->data.args[0], NULL)) < 0)
		return pass(n->id);
	if (try_recv(n->id, n->pid, &c, s, ino)) {
		close(s);
		return;
	}
	struct timeval tv = { 0, 0 };
	socklen_t tl = sizeof tv;
	getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, &tl);
	for (int i = 0; i < NPARK; i++)
		if (!parks[i].used) {
			parks[i] = (struct park){ .used = 1, .id = n->id, .pid = n->pid, .lfd = s, .recv = 1, .ino = ino,
						  .dc = c };
			if (tv.tv_sec || tv.tv_usec)
				parks[i].deadline = mono_ms() + tv.tv_sec * 1000 + tv.tv_usec / 1000;
			return;
		}
	close(s);
	answer(n->id, -1, EAGAIN);
}

static void on_connect(const struct seccomp_notif *n)
{
	struct call cl;
	int s = -1;

	if (call_open(n, n->data.args[1], n->data.args[2], RULE_CONNECT, RULE_ANYPROTO, &cl) < 0)
		return;
	const struct ruleset *rs = cl.rs;
	const struct rule *r = cl.r;
	int fd = cl.fd, domain = cl.domain, type = cl.type;

	if (r->proto != RULE_ANYPROTO &&
	    !(r = match(RULE_CONNECT, type == SOCK_STREAM ? RULE_TCP : RULE_UDP, (struct sockaddr *)&cl.dst, &rs)))
		goto pass;
	if (r->action == ACT_REJECT) {
		/* answered here, never continued: the kernel must not see the address again */
		answer(n->id, -1, r->err ? r->err : ECONNREFUSED);
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
		answer(n->id, -1, EISCONN);	/* connected by us already, as TCP says */
		goto out;
	}
	struct sg_addr ta;
	struct sockaddr_storage local;
	socklen_t locallen;
	unsigned char hdr[HDR_MAX];
	int hl = 0;
	int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;

	pick_source(rs, r, &cl.dst, domain, &local, &locallen);
	if (target(rs, r, &cl.dst, &ta) < 0 ||
	    ((r->flags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)) &&
	     (hl = header(r, &local, &cl.dst, SOCK_STREAM, hdr, sizeof hdr)) < 0)) {
		answer(n->id, -1, errno);
		goto out;
	}
	int how = open_target(&ta, hdr, (size_t)hl, nonblock, &s);
	if (how < 0) {
		answer(n->id, -1, errno);
		goto out;
	}
	struct rec *rc;
	if (swap_in(n, s, cl.cloexec, &rc) < 0)
		goto out;
	if (rc) {
		rc->family = domain;
		rc->local = local;
		rc->locallen = locallen;
		rc->peer = cl.sa;
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

	if (!r || (peer && (r->listener || !r->peerlen)))
		return pass(n->id);	/* a datagram socket not connected: the kernel's ENOTCONN */
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

	if (call_open(n, n->data.args[1], n->data.args[2], RULE_BIND, RULE_TCP, &cl) < 0)
		return;
	const struct rule *r = cl.r;
	int fd = cl.fd;

	if ((r->action != ACT_UNIX && r->action != ACT_ABSTRACT && r->action != ACT_FDPASS) ||
	    cl.type != SOCK_STREAM) {
		pass(n->id);
		goto out;
	}
	char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
	struct sg_addr a;
	const char *tmpl = rules_str(cl.rs, r->arg);
	int nonblock = (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
	if (!tmpl || rules_expand(tmpl, (struct sockaddr *)&cl.dst, path, sizeof path) < 0 ||
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
	struct rec *rc;
	if (swap_in(n, s, cl.cloexec, &rc) < 0)
		goto out;
	if (rc) {
		rc->listener = 1;
		rc->family = cl.domain;
		rc->action = r->action;
		rc->rflags = r->flags;
		rc->local = cl.sa;
		rc->locallen = inet_len(cl.domain);
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
	if (p->recv ? try_recv(p->id, p->pid, &p->dc, p->lfd, p->ino) != 0
		    : try_accept(p->id, p->pid, p->args, p->lfd, &p->lr) != 0)
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
	case __NR_sendto:
	case __NR_sendmsg:
		return on_send(&n);
	case __NR_recvfrom:
	case __NR_recvmsg:
		return on_recv(&n);
	}
	pass(n.id);
}

/* Exit as the program did: the same code, or the same signal. */
static void __attribute__((noreturn)) exit_like(int status)
{
	dgram_cleanup();
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

	build_filter(&b, strict, binds, have_rule(RULE_BIND, ACT_FDPASS), have_udp_rule());
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
	/*
	 * The listener's number goes up by write() (sendmsg() may be in the
	 * filter now, and nobody would answer it); the supervisor takes the fd
	 * itself (pidfd_getfd) and hangs up when it has it.
	 */
	int msg[2] = { e, lfd };
	char ack;
	if (write(up, msg, sizeof msg) != (ssize_t)sizeof msg || e)
		_exit(EX_SYSFAIL);
	while (read(up, &ack, 1) < 0 && errno == EINTR)
		;
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

	int msg[2] = { 0, -1 }, e, status;
	ssize_t got = read(sp[0], msg, sizeof msg);
	e = got == (ssize_t)sizeof msg ? msg[0] : EPROTO;
	if (!e && (notify_fd = take_fd(pid, msg[1], NULL)) < 0)
		e = errno;
	close(sp[0]);
	if (e) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
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
		/* a parked task may be killed meanwhile: look again now and then; a receive may time out */
		int wait = np > 2 ? 1000 : -1;
		int64_t now = mono_ms();
		for (int i = 0; i < NPARK; i++)
			if (parks[i].used && parks[i].deadline)
				wait = parks[i].deadline <= now ? 0 : (int)(parks[i].deadline - now < wait ? parks[i].deadline - now : wait);
		int n = poll(p, (nfds_t)np, wait);
		if (n < 0 && errno != EINTR)
			die_sys("unable to poll");
		now = mono_ms();
		for (int i = 0; i < NPARK; i++)
			if (parks[i].used && parks[i].deadline && parks[i].deadline <= now) {
				answer(parks[i].id, -1, EAGAIN);	/* SO_RCVTIMEO passed */
				park_done(&parks[i]);
			}
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

/* --- the library out of the way ------------------------------------------------ */

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
