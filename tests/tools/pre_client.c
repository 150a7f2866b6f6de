/*
 * Test client for tests/preload.bats and the preload benchmark: plain TCP
 * code (as any program would have) that the library redirects.
 *
 *   pre_client errno HOST PORT            blocking connect; prints "ok" or the errno name
 *   pre_client nb HOST PORT [--gate FILE]  non-blocking connect, poll, SO_ERROR, 256 KiB
 *                                         echoed back and compared; with --gate, first
 *                                         shows the socket is not writable, then creates
 *                                         FILE (the server starts accepting)
 *   pre_client fill PATH                  connects to unix PATH until the backlog is full
 *                                         (then runs "nb" with the remaining arguments)
 *   pre_client epoll HOST PORT            registers EPOLLOUT before connect(), non-blocking
 *   pre_client threads HOST PORT T N      T threads x N connections, each echoes a line;
 *                                         counts /proc/self/fd before and after
 *   pre_client nbthreads HOST PORT T N    the same with non-blocking connects (poll, SO_ERROR)
 *   pre_client fork HOST PORT             a child after fork() and the parent each connect
 *   pre_client mmsg HOST PORT             UDP: sendmmsg() three datagrams, recvmmsg() the replies
 *   pre_client peer HOST PORT             prints getpeername/getsockname after connect
 *   pre_client bench N                    N connects to a loopback listener of its own
 *                                         through connect() and N through libc's own
 *                                         connect(), alternated; prints ns per connect of each
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *ename(int e)
{
	switch (e) {
	case ECONNREFUSED: return "ECONNREFUSED";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ETIMEDOUT: return "ETIMEDOUT";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case EHOSTUNREACH: return "EHOSTUNREACH";
	case ENETUNREACH: return "ENETUNREACH";
	case EINPROGRESS: return "EINPROGRESS";
	case EAGAIN: return "EAGAIN";
	case ECONNRESET: return "ECONNRESET";
	case EPIPE: return "EPIPE";
	}
	static char b[32];
	snprintf(b, sizeof b, "errno%d", e);
	return b;
}

static void fail(const char *what)
{
	printf("FAIL %s: %s\n", what, ename(errno));
	exit(1);
}

static socklen_t addr(const char *host, const char *port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)atoi(port));
		return sizeof *s4;
	}
	if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)atoi(port));
		return sizeof *s6;
	}
	fprintf(stderr, "bad host %s\n", host);
	exit(2);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the DIR's own fd */
}

static int write_all(int s, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(s, p, n);
		if (w < 0 && (errno == EINTR || errno == EAGAIN)) {
			struct pollfd pf = { s, POLLOUT, 0 };
			poll(&pf, 1, 1000);
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* one line out, the same line back */
static int echo_line(int s, const char *line)
{
	char buf[256];
	size_t n = strlen(line), got = 0;
	if (write_all(s, line, n) < 0)
		return -1;
	while (got < n) {
		ssize_t r = read(s, buf + got, sizeof buf - got);
		if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf = { s, POLLIN, 0 };
			if (poll(&pf, 1, 20000) != 1)
				return -1;
			continue;
		}
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return got == n && !memcmp(buf, line, n) ? 0 : -1;
}

static int cmd_errno(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t l = addr(argv[2], argv[3], &ss);
	int s = socket(ss.ss_family, SOCK_STREAM, 0);
	if (connect(s, (struct sockaddr *)&ss, l) == 0)
		printf("ok\n");
	else
		printf("%s\n", ename(errno));
	return 0;
}

static int cmd_peer(int argc, char **argv)
{
	struct sockaddr_storage ss, a;
	socklen_t l = addr(argv[2], argv[3], &ss), al = sizeof a;
	char h[64];
	int s = socket(ss.ss_family, SOCK_STREAM, 0);
	if (connect(s, (struct sockaddr *)&ss, l) < 0)
		fail("connect");
	if (getpeername(s, (struct sockaddr *)&a, &al) < 0)
		fail("getpeername");
	if (a.ss_family == AF_INET)
		printf("peer %s:%d\n", inet_ntop(AF_INET, &((struct sockaddr_in *)&a)->sin_addr, h, sizeof h),
		       ntohs(((struct sockaddr_in *)&a)->sin_port));
	else
		printf("peer family %d\n", a.ss_family);
	al = sizeof a;
	if (getsockname(s, (struct sockaddr *)&a, &al) < 0)
		fail("getsockname");
	printf("local family %s\n", a.ss_family == AF_INET ? "inet" : a.ss_family == AF_INET6 ? "inet6" : "other");
	int one = 1, v = -1, dom = 0;
	socklen_t vl = sizeof v;
	if (setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		fail("setsockopt TCP_NODELAY");
	vl = sizeof dom;
	getsockopt(s, SOL_SOCKET, SO_DOMAIN, &dom, &vl);
	printf("domain %s\n", dom == AF_INET ? "inet" : "other");
	int fl = fcntl(s, F_GETFD);
	printf("cloexec %d\n", !!(fl & FD_CLOEXEC));
	(void)v;
	if (echo_line(s, "peer-check\n") < 0)
		fail("echo");
	printf("echo ok\n");
	return 0;
}

static int cmd_nb(int argc, char **argv, int argi)
{
	struct sockaddr_storage ss;
	socklen_t l = addr(argv[argi], argv[argi + 1], &ss);
	const char *gate = argc > argi + 3 && !strcmp(argv[argi + 2], "--gate") ? argv[argi + 3] : NULL;
	int s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1, rcvbuf = 50000;
	setsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);	/* set before: carried over */
	int r = connect(s, (struct sockaddr *)&ss, l);
	printf("connect: %s\n", r == 0 ? "0" : ename(errno));
	setsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);	/* set while connecting */
	if (r < 0 && errno != EINPROGRESS)
		return 1;
	struct pollfd p = { s, POLLOUT, 0 };
	if (gate) {
		int n = poll(&p, 1, 300);
		printf("before accept: %s\n", n == 0 ? "not writable" : "writable");
		char c = 'x';
		ssize_t w = write(s, &c, 1);
		printf("early write: %s\n", w < 0 ? ename(errno) : "went");
		int fd = open(gate, O_CREAT | O_WRONLY, 0600);
		close(fd);
	}
	p.revents = 0;
	int n = poll(&p, 1, 10000);
	printf("poll: %s\n", n == 1 && (p.revents & POLLOUT) ? "writable" : "timeout");
	int err = -1;
	socklen_t el = sizeof err;
	getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el);
	printf("so_error: %d\n", err);
	printf("flags: %s %s\n", (fcntl(s, F_GETFL) & O_NONBLOCK) ? "nonblock" : "block",
	       (fcntl(s, F_GETFD) & FD_CLOEXEC) ? "cloexec" : "inherit");
	int ka = 0;
	socklen_t kl = sizeof ka;
	getsockopt(s, SOL_SOCKET, SO_KEEPALIVE, &ka, &kl);
	kl = sizeof rcvbuf;
	getsockopt(s, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &kl);
	printf("options: keepalive=%d rcvbuf=%d\n", ka, rcvbuf);
	/* 256 KiB of a pattern, echoed back: nothing lost, nothing reordered */
	size_t total = 256 * 1024, sent = 0, got = 0;
	char *out = malloc(total), *in = malloc(total);
	for (size_t i = 0; i < total; i++)
		out[i] = (char)('a' + (i * 7 + i / 251) % 26);
	while (got < total) {
		struct pollfd q = { s, POLLIN | (sent < total ? POLLOUT : 0), 0 };
		if (poll(&q, 1, 10000) <= 0) {
			printf("stalled at sent=%zu got=%zu\n", sent, got);
			return 1;
		}
		if ((q.revents & POLLOUT) && sent < total) {
			ssize_t w = send(s, out + sent, total - sent > 65536 ? 65536 : total - sent, MSG_NOSIGNAL);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				fail("send");
		}
		if (q.revents & (POLLIN | POLLHUP)) {
			ssize_t rr = recv(s, in + got, total - got, 0);
			if (rr > 0)
				got += (size_t)rr;
			else if (rr == 0 || errno != EAGAIN)
				fail("recv");
		}
	}
	printf("echo: %s %zu bytes\n", memcmp(in, out, total) ? "MISMATCH" : "same", total);
	free(in);
	free(out);
	close(s);
	return 0;
}

static int cmd_fill(int argc, char **argv)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	int n = 0;
	snprintf(un.sun_path, sizeof un.sun_path, "%s", argv[2]);
	for (;;) {
		int s = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(s, (struct sockaddr *)&un, sizeof un) < 0) {
			if (errno != EAGAIN)
				fail("fill connect");
			close(s);
			break;
		}
		n++;	/* kept open: it holds its place in the queue */
	}
	printf("filled %d\n", n);
	return cmd_nb(argc, argv, 3);
}

static int cmd_epoll(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t l = addr(argv[2], argv[3], &ss);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int s = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = 0x5eed };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev) < 0)
		fail("epoll_ctl");
	int r = connect(s, (struct sockaddr *)&ss, l);
	printf("connect: %s\n", r == 0 ? "0" : ename(errno));
	struct epoll_event got;
	int n = epoll_wait(ep, &got, 1, 5000);
	printf("epoll: %d data=%llx out=%d\n", n, (unsigned long long)got.data.u64, !!(got.events & EPOLLOUT));
	ev.events = EPOLLIN;
	epoll_ctl(ep, EPOLL_CTL_MOD, s, &ev);
	const char *msg = "via-epoll\n";
	if (write_all(s, msg, strlen(msg)) < 0)
		fail("write");
	n = epoll_wait(ep, &got, 1, 5000);
	char buf[64];
	ssize_t rr = read(s, buf, sizeof buf);
	printf("reply: %.*s", (int)(rr > 0 ? rr : 0), buf);
	return 0;
}

struct targ {
	struct sockaddr_storage ss;
	socklen_t l;
	int id, n, bad;
};

static int nonblocking_threads;

static void *thr(void *p)
{
	struct targ *t = p;
	char line[64];
	for (int j = 0; j < t->n; j++) {
		int s = socket(t->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking_threads ? SOCK_NONBLOCK : 0), 0);
		snprintf(line, sizeof line, "thread %d conn %d\n", t->id, j);
		int r = s < 0 ? -1 : connect(s, (struct sockaddr *)&t->ss, t->l);
		if (r < 0 && nonblocking_threads && errno == EINPROGRESS) {
			struct pollfd pf = { s, POLLOUT, 0 };
			int err = -1;
			socklen_t el = sizeof err;
			if (poll(&pf, 1, 20000) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
				r = 0;
		}
		if (r < 0 || echo_line(s, line) < 0)
			t->bad++;
		close(s);
	}
	return NULL;
}

static int cmd_threads(int argc, char **argv)
{
	int nt = atoi(argv[4]), n = atoi(argv[5]), bad = 0;
	struct targ t[64];
	pthread_t th[64];
	int before = count_fds();
	if (nt > 64)
		nt = 64;
	for (int i = 0; i < nt; i++) {
		t[i].l = addr(argv[2], argv[3], &t[i].ss);
		t[i].id = i;
		t[i].n = n;
		t[i].bad = 0;
		pthread_create(&th[i], NULL, thr, &t[i]);
	}
	for (int i = 0; i < nt; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
	}
	int after = count_fds();
	printf("connections %d failed %d fds %d->%d\n", nt * n, bad, before, after);
	return bad != 0;
}

static int cmd_fork(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t l = addr(argv[2], argv[3], &ss);
	int before = count_fds();
	pid_t pid = fork();
	int s = socket(ss.ss_family, SOCK_STREAM, 0);
	const char *who = pid == 0 ? "child\n" : "parent\n";
	int ok = s >= 0 && connect(s, (struct sockaddr *)&ss, l) == 0 && echo_line(s, who) == 0;
	close(s);
	if (pid == 0)
		_exit(ok ? 0 : 1);
	int st;
	waitpid(pid, &st, 0);
	printf("parent %s child %s fds %d->%d\n", ok ? "ok" : "FAIL",
	       WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "ok" : "FAIL", before, count_fds());
	return 0;
}

/* three datagrams out with sendmmsg(), the replies in with recvmmsg() */
static int cmd_mmsg(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t l = addr(argv[2], argv[3], &ss);
	int s = socket(ss.ss_family, SOCK_DGRAM, 0);
	struct mmsghdr v[3];
	struct iovec iov[3];
	char out[3][8], in[3][64];
	struct sockaddr_in from[3];	/* inet-sized, as a UDP program has */

	memset(v, 0, sizeof v);
	for (int i = 0; i < 3; i++) {
		snprintf(out[i], sizeof out[i], "m%d", i);
		iov[i].iov_base = out[i];
		iov[i].iov_len = strlen(out[i]);
		v[i].msg_hdr.msg_iov = &iov[i];
		v[i].msg_hdr.msg_iovlen = 1;
		v[i].msg_hdr.msg_name = &ss;
		v[i].msg_hdr.msg_namelen = l;
	}
	printf("sent %d\n", sendmmsg(s, v, 3, 0));
	memset(v, 0, sizeof v);
	for (int i = 0; i < 3; i++) {
		iov[i].iov_base = in[i];
		iov[i].iov_len = sizeof in[i];
		v[i].msg_hdr.msg_iov = &iov[i];
		v[i].msg_hdr.msg_iovlen = 1;
		v[i].msg_hdr.msg_name = &from[i];
		v[i].msg_hdr.msg_namelen = sizeof from[i];
	}
	int got = 0;
	while (got < 3) {
		int r = recvmmsg(s, v + got, 3 - got, 0, NULL);
		if (r <= 0)
			fail("recvmmsg");
		got += r;
	}
	char h[64];
	for (int i = 0; i < 3; i++)
		printf("%.*s from %s:%d\n", (int)v[i].msg_len, in[i],
		       inet_ntop(AF_INET, &from[i].sin_addr, h, sizeof h), ntohs(from[i].sin_port));
	return 0;
}

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/*
 * connect() as the program calls it (through the library when it is
 * preloaded) against libc's own connect() found in libc.so.6, alternated
 * connect by connect in one process, so both see the same machine state.
 * Prints the median ns per connect of each: "NS_VIA_PLT NS_LIBC".
 */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static int cmd_bench(int argc, char **argv)
{
	int n = atoi(argv[2]);
	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof a;
	int one = 1;
	void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	int (*libc_connect)(int, const struct sockaddr *, socklen_t) = libc ? dlsym(libc, "connect") : NULL;

	if (!libc_connect)
		fail("dlsym libc connect");
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &al) < 0)
		fail("listen");
	double *t[2] = { malloc(sizeof(double) * (size_t)n * 5), malloc(sizeof(double) * (size_t)n * 5) };
	int k[2] = { 0, 0 };
	for (int i = 0; i < 10 * n; i++) {
		int which = (i ^ (i >> 1)) & 1;	/* ABBA order: no side always goes first */
		int s = socket(AF_INET, SOCK_STREAM, 0);
		double t0 = now_ns();
		int r = which ? libc_connect(s, (struct sockaddr *)&a, sizeof a)
			      : connect(s, (struct sockaddr *)&a, sizeof a);
		t[which][k[which]++] = now_ns() - t0;
		if (r < 0)
			fail("connect");
		int c = accept(ls, NULL, NULL);
		close(c);
		close(s);
	}
	/* the median of each side: robust against the scheduler's outliers */
	qsort(t[0], (size_t)k[0], sizeof(double), cmp_double);
	qsort(t[1], (size_t)k[1], sizeof(double), cmp_double);
	double best_plt = t[0][k[0] / 2], best_libc = t[1][k[1] / 2];
	free(t[0]);
	free(t[1]);
	printf("%.0f %.0f\n", best_plt, best_libc);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc >= 4 && !strcmp(argv[1], "errno"))
		return cmd_errno(argc, argv);
	if (argc >= 4 && !strcmp(argv[1], "nb"))
		return cmd_nb(argc, argv, 2);
	if (argc >= 5 && !strcmp(argv[1], "fill"))
		return cmd_fill(argc, argv);
	if (argc >= 4 && !strcmp(argv[1], "epoll"))
		return cmd_epoll(argc, argv);
	if (argc >= 6 && !strcmp(argv[1], "threads"))
		return cmd_threads(argc, argv);
	if (argc >= 6 && !strcmp(argv[1], "nbthreads")) {
		nonblocking_threads = 1;
		return cmd_threads(argc, argv);
	}
	if (argc >= 4 && !strcmp(argv[1], "fork"))
		return cmd_fork(argc, argv);
	if (argc >= 4 && !strcmp(argv[1], "mmsg"))
		return cmd_mmsg(argc, argv);
	if (argc >= 4 && !strcmp(argv[1], "peer"))
		return cmd_peer(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "bench"))
		return cmd_bench(argc, argv);
	fprintf(stderr, "usage: see the comment at the top of pre_client.c\n");
	return 2;
}
