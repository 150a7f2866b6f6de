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
 * address, recvfrom() with room for one, sendmsg() and recvmsg(), and,
 * when a rule can swap a socket, setsockopt()/getsockopt() of the TCP/IP
 * options a Unix socket lacks (seccomp_filter.c). A UDP socket sent or
 * connected to a matched address becomes an AF_UNIX datagram socket, as
 * in the library's datagram path (preload/out.c): the supervisor sends its
 * datagrams and receives them, giving replies the source address the
 * program sent to. See sockgate-run(1), SECCOMP MODE, for what is not
 * covered.
 *
 * This file is the supervisor itself: the child that installs the filter
 * (built in seccomp_filter.c) and execs the program, the loop that takes
 * the notifications and hands each to its call's handler (stream sockets
 * in seccomp_stream.c, datagrams in seccomp_dgram.c), the blocking calls
 * parked until they can be answered, and the plumbing every handler uses:
 * the program's memory and descriptors, the sockets made here, the answers.
 * seccomp_int.h is what those files share.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "file.h"
#include "rules.h"
#include "seccomp.h"
#include "seccomp_int.h"
#include "util.h"

/* Linux 6.6: the supervisor runs on the CPU of the task that waits for it (include/uapi/linux/seccomp.h) */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define NREC 4096		/* sockets remembered for getsockname()/getpeername() (oldest go first) */
#define NPARK 64		/* blocking accept() calls waiting for a connection */

static struct ruleset **rsets;
static int nrsets;
static struct rec recs[NREC];
static unsigned rec_next;
static struct park parks[NPARK];
static int notify_fd = -1;

/* --- rules ------------------------------------------------------------------ */

const struct rule *sc_match(int dir, int proto, const struct sockaddr *sa, const struct ruleset **rsp)
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

/* --- the program's memory and descriptors ----------------------------------- */

/* Between buf and the program's iovecs riov[0..n) in order: 0 when all len bytes moved. */
int mem_iov(pid_t pid, void *buf, size_t len, const struct iovec *riov, int n, int write)
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

int mem_io(pid_t pid, uint64_t addr, void *buf, size_t len, int write)
{
	struct iovec r = { (void *)(uintptr_t)addr, len };
	return mem_iov(pid, buf, len, &r, 1, write);
}

/* Is the notification still pending (its task alive and waiting)? */
int still_valid(uint64_t id)
{
	return ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) == 0;
}

/* The address argument of a call: 0, or -1 when it cannot be read (let the kernel say so). */
int read_sockaddr(const struct seccomp_notif *n, uint64_t ptr, uint64_t len, struct sockaddr_storage *ss)
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
int take_fd(pid_t tid, int fd, int *cloexec)
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
ino_t fd_ino(pid_t tid, uint64_t fd)
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

struct rec *rec_find(ino_t ino)
{
	if (!ino)
		return NULL;
	for (unsigned i = 0; i < NREC; i++)
		if (recs[i].ino == ino)
			return &recs[i];
	return NULL;
}

struct rec *rec_add(int fd)
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

void sc_answer(uint64_t id, int64_t val, int err)
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
void sc_pass(uint64_t id)
{
	struct seccomp_notif_resp resp;

	memset(&resp, 0, sizeof resp);
	resp.id = id;
	resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
	ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/* Put s at the program's fd number (SETFD), or as a new fd answering the call (SEND). */
int sc_install(uint64_t id, int s, int fd, int cloexec, int send)
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
int swap_in(const struct seccomp_notif *n, int s, int cloexec, struct rec **rcp)
{
	struct rec *rc = rec_add(s);

	if (sc_install(n->id, s, (int)n->data.args[0], cloexec, 0) < 0) {
		if (rc)
			rc->ino = 0;
		sc_answer(n->id, -1, errno == ENOENT ? EINTR : errno);
		return -1;
	}
	*rcp = rc;
	return 0;
}

void set_nonblock(int s, int on)
{
	int fl = fcntl(s, F_GETFL);
	if (fl >= 0)
		fcntl(s, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* poll() one fd, EINTR retried: >0 ready, 0 timed out, -1 */
int wait_fd(int s, short ev, int ms)
{
	struct pollfd p = { .fd = s, .events = ev };
	int n;
	while ((n = poll(&p, 1, ms)) < 0 && errno == EINTR)
		;
	return n;
}

/* --- parked calls -------------------------------------------------------------- */

/* A free place for a call that waits, or NULL (the caller answers EAGAIN). */
struct park *park_new(void)
{
	for (int i = 0; i < NPARK; i++)
		if (!parks[i].used)
			return &parks[i];
	return NULL;
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
			sc_answer(parks[i].id, -1, EINTR);
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
	case __NR_setsockopt:
		return on_sockopt(&n, 1);
	case __NR_getsockopt:
		return on_sockopt(&n, 0);
	}
	sc_pass(n.id);
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
	struct sock_fprog prog;
	int strict = have_rule(RULE_CONNECT, ACT_REJECT);
	int binds = have_rule(RULE_BIND, 0);
	/* can a socket of ours take the program's place (and its options be asked of us)? */
	int swaps = binds || have_rule(RULE_CONNECT, ACT_UNIX) || have_rule(RULE_CONNECT, ACT_ABSTRACT) ||
		    have_rule(RULE_CONNECT, ACT_TCP);

	build_filter(&prog, strict, binds, have_rule(RULE_BIND, ACT_FDPASS), have_udp_rule(), swaps);
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
				sc_answer(parks[i].id, -1, EAGAIN);	/* SO_RCVTIMEO passed */
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
