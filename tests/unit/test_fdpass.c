/*
 * core/fdpass: SCM_RIGHTS round trips over socketpairs (one fd, several,
 * more than the receiver has room for, cloexec, truncation), and the
 * metadata record: round trips and every malformed form.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdpass.h"
#include "unit.h"

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

static int same_file(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

static void test_pass(int type, const char *tname)
{
	int sp[2];
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, sp) < 0) {
		CHECK(0, "%s socketpair: %s", tname, strerror(errno));
		return;
	}
	int base = count_fds();

	/* one fd with data */
	int p[2];
	CHECK(pipe(p) == 0, "pipe");
	CHECK(fdpass_send(sp[0], &p[0], 1, "hello", 5, 0) == 0, "%s: send 1 fd", tname);
	int got[FDPASS_MAXFDS];
	size_t n = 4;
	char buf[64];
	ssize_t r = fdpass_recv(sp[1], got, &n, buf, sizeof buf, 0);
	CHECK(r == 5 && !memcmp(buf, "hello", 5), "%s: data arrives (r=%zd)", tname, r);
	CHECK(n == 1 && same_file(got[0], p[0]), "%s: the fd is the same pipe", tname);
	CHECK(n == 1 && (fcntl(got[0], F_GETFD) & FD_CLOEXEC), "%s: received fd has FD_CLOEXEC", tname);
	if (n == 1) {
		CHECK(write(p[1], "x", 1) == 1, "write into the pipe");
		char c = 0;
		CHECK(read(got[0], &c, 1) == 1 && c == 'x', "%s: the received fd reads the pipe", tname);
		close(got[0]);
	}

	/* several fds, no data (a byte goes along anyway) */
	int many[FDPASS_MAXFDS];
	for (int i = 0; i < FDPASS_MAXFDS; i++)
		many[i] = i % 2 ? p[1] : p[0];
	CHECK(fdpass_send(sp[0], many, FDPASS_MAXFDS, NULL, 0, 0) == 0, "%s: send %d fds", tname, FDPASS_MAXFDS);
	n = FDPASS_MAXFDS;
	r = fdpass_recv(sp[1], got, &n, NULL, 0, 0);
	CHECK(r == 0 && n == FDPASS_MAXFDS, "%s: %d fds received (r=%zd n=%zu)", tname, FDPASS_MAXFDS, r, n);
	int ok = 1;
	for (size_t i = 0; i < n; i++) {
		ok &= same_file(got[i], many[i]);
		close(got[i]);
	}
	CHECK(ok, "%s: every fd in order", tname);

	/* more fds than the receiver has room for: the extra ones are closed */
	int before = count_fds();
	CHECK(fdpass_send(sp[0], many, 5, "abc", 3, 0) == 0, "%s: send 5 fds", tname);
	n = 2;
	r = fdpass_recv(sp[1], got, &n, buf, sizeof buf, 0);
	CHECK(r == 3 && n == 2, "%s: 2 of 5 kept (r=%zd n=%zu)", tname, r, n);
	CHECK(count_fds() == before + 2, "%s: the other 3 were closed (fds %d, before %d)", tname, count_fds(), before);
	for (size_t i = 0; i < n; i++)
		close(got[i]);

	/* a receiver with no room for fds at all */
	CHECK(fdpass_send(sp[0], many, 3, "z", 1, 0) == 0, "%s: send 3 fds", tname);
	n = 0;
	r = fdpass_recv(sp[1], got, &n, buf, sizeof buf, 0);
	CHECK(r == 1 && n == 0 && count_fds() == before, "%s: room 0: all closed", tname);

	if (type != SOCK_STREAM) {
		/* data truncated: EMSGSIZE, the fd still returned */
		CHECK(fdpass_send(sp[0], &p[0], 1, "0123456789", 10, 0) == 0, "%s: send 10 bytes", tname);
		n = 1;
		errno = 0;
		r = fdpass_recv(sp[1], got, &n, buf, 4, 0);
		CHECK(r == -1 && errno == EMSGSIZE && n == 1, "%s: truncated data is EMSGSIZE, fd kept (r=%zd n=%zu)", tname, r, n);
		if (n == 1)
			close(got[0]);
	}

	/* nonblocking receive with nothing waiting */
	n = 1;
	errno = 0;
	r = fdpass_recv(sp[1], got, &n, buf, sizeof buf, MSG_DONTWAIT);
	CHECK(r == -1 && errno == EAGAIN && n == 0, "%s: EAGAIN when empty", tname);

	/* bad counts */
	errno = 0;
	CHECK(fdpass_send(sp[0], many, 0, "a", 1, 0) == -1 && errno == EINVAL, "%s: 0 fds is EINVAL", tname);
	errno = 0;
	CHECK(fdpass_send(sp[0], many, FDPASS_MAXFDS + 1, "a", 1, 0) == -1 && errno == EINVAL, "%s: 17 fds is EINVAL", tname);

	/* EOF */
	close(sp[0]);
	n = 1;
	r = fdpass_recv(sp[1], got, &n, buf, sizeof buf, type == SOCK_DGRAM ? MSG_DONTWAIT : 0);
	if (type == SOCK_DGRAM)
		CHECK(r == -1 && errno == EAGAIN && n == 0, "%s: a datagram socket has no EOF: EAGAIN", tname);
	else
		CHECK(r == 0 && n == 0, "%s: EOF is 0 (r=%zd)", tname, r);

	/* a peer that is gone: EPIPE, never SIGPIPE */
	errno = 0;
	int rr = fdpass_send(sp[1], &p[0], 1, "a", 1, 0);
	CHECK(rr == -1 && (errno == EPIPE || errno == ECONNREFUSED || errno == ENOTCONN),
	      "%s: send to a closed peer fails without a signal (%s)", tname, strerror(errno));
	close(sp[1]);
	close(p[0]);
	close(p[1]);
	CHECK(count_fds() == base - 2, "%s: no fd leaked (%d vs %d)", tname, count_fds(), base - 2);
}

static void v4(struct sockaddr_storage *ss, socklen_t *sl, const char *a, int port)
{
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof *ss);
	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	inet_pton(AF_INET, a, &in->sin_addr);
	*sl = sizeof *in;
}

static void v6(struct sockaddr_storage *ss, socklen_t *sl, const char *a, int port)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof *ss);
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(port);
	inet_pton(AF_INET6, a, &in6->sin6_addr);
	*sl = sizeof *in6;
}

static int meta_eq(const struct fdpass_meta *a, const struct fdpass_meta *b)
{
	return a->local_len == b->local_len && a->remote_len == b->remote_len &&
	       !memcmp(&a->local, &b->local, a->local_len) && !memcmp(&a->remote, &b->remote, a->remote_len) &&
	       a->local.ss_family == b->local.ss_family && a->remote.ss_family == b->remote.ss_family &&
	       !strcmp(a->rule, b->rule);
}

static void test_meta(void)
{
	struct fdpass_meta m, d;
	unsigned char buf[FDPASS_META_MAXLEN];

	memset(&m, 0, sizeof m);
	v4(&m.local, &m.local_len, "127.0.0.2", 80);
	v4(&m.remote, &m.remote_len, "192.0.2.7", 54321);
	strcpy(m.rule, "web");
	ssize_t n = fdpass_meta_encode(&m, buf, sizeof buf);
	CHECK(n == 46, "v4 record is 46 bytes (%zd)", n);
	static const unsigned char want[46] = {
		1, 0, 0, 46, AF_INET, AF_INET, 0, 80, 0xd4, 0x31,
		127, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		192, 0, 2, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		3, 'w', 'e', 'b',
	};
	CHECK(n == 46 && !memcmp(buf, want, 46), "v4 record bytes as documented (big-endian)");
	CHECK(fdpass_meta_decode(buf, n, &d) == 0 && meta_eq(&m, &d) && d.version == 1, "v4 round trip");

	/* truncated at every length */
	int all = 1;
	for (ssize_t l = 0; l < n; l++) {
		errno = 0;
		if (fdpass_meta_decode(buf, l, &d) != -1 || errno != EINVAL || d.rule[0])
			all = 0;
	}
	CHECK(all, "every truncation 0..45 is EINVAL");

	memset(&m, 0, sizeof m);
	v6(&m.local, &m.local_len, "2001:db8::1", 443);
	v6(&m.remote, &m.remote_len, "::ffff:10.1.2.3", 1);
	n = fdpass_meta_encode(&m, buf, sizeof buf);
	CHECK(n == 43, "v6 record without name is 43 bytes");
	CHECK(fdpass_meta_decode(buf, n, &d) == 0 && meta_eq(&m, &d) && d.rule[0] == 0, "v6 round trip");

	memset(&m, 0, sizeof m);
	n = fdpass_meta_encode(&m, buf, sizeof buf);
	CHECK(n == 43 && buf[4] == 0 && buf[5] == 0, "no addresses: families 0");
	CHECK(fdpass_meta_decode(buf, n, &d) == 0 && d.local.ss_family == AF_UNSPEC && d.local_len == 0 &&
	      d.remote.ss_family == AF_UNSPEC, "no addresses round trip");

	/* mixed, and a 255-byte name */
	memset(&m, 0, sizeof m);
	v4(&m.local, &m.local_len, "10.0.0.1", 65535);
	v6(&m.remote, &m.remote_len, "fe80::1", 0);
	memset(m.rule, 'n', 255);
	n = fdpass_meta_encode(&m, buf, sizeof buf);
	CHECK(n == 43 + 255, "255-byte name fits");
	CHECK(fdpass_meta_decode(buf, n, &d) == 0 && meta_eq(&m, &d), "long name round trip");
	errno = 0;
	CHECK(fdpass_meta_encode(&m, buf, 100) == -1 && errno == ENOSPC, "small buffer: ENOSPC");
	memset(m.rule, 'n', sizeof m.rule);
	errno = 0;
	CHECK(fdpass_meta_encode(&m, buf, sizeof buf) == -1 && errno == ENOSPC, "unterminated 256-byte name: ENOSPC");
	m.rule[0] = 0;
	m.local.ss_family = AF_UNIX;
	errno = 0;
	CHECK(fdpass_meta_encode(&m, buf, sizeof buf) == -1 && errno == EAFNOSUPPORT, "AF_UNIX: EAFNOSUPPORT");

	/* a longer record of the same version: the rest is skipped */
	memset(&m, 0, sizeof m);
	v4(&m.local, &m.local_len, "127.0.0.1", 8080);
	v4(&m.remote, &m.remote_len, "127.0.0.1", 40000);
	strcpy(m.rule, "r1");
	n = fdpass_meta_encode(&m, buf, sizeof buf);
	unsigned char big[80];
	memcpy(big, buf, n);
	memset(big + n, 0xee, sizeof big - n);
	big[2] = 0;
	big[3] = sizeof big;
	CHECK(fdpass_meta_decode(big, sizeof big, &d) == 0 && meta_eq(&m, &d), "longer record of version 1 accepted");
	CHECK(fdpass_meta_decode(big, sizeof big - 1, &d) == -1 && errno == EINVAL, "record length past the buffer: EINVAL");
	CHECK(fdpass_meta_decode(buf, n + 10, &d) == 0 && meta_eq(&m, &d), "bytes after the record ignored");

	/* malformed */
	unsigned char bad[64];
	memcpy(bad, buf, n);
	bad[0] = 2;
	errno = 0;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EPROTONOSUPPORT, "version 2: EPROTONOSUPPORT");
	bad[0] = 0;
	errno = 0;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EPROTONOSUPPORT, "version 0: EPROTONOSUPPORT");

	memcpy(bad, buf, n);
	bad[42] = 3;	/* name "r1" is 2 bytes; the record says 45 */
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "name length past the record end: EINVAL");
	bad[42] = 255;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "name length 255 past the end: EINVAL");

	memcpy(bad, buf, n);
	bad[3] = 42;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "record length below the fixed part: EINVAL");
	bad[3] = 44;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "record length cuts the name: EINVAL");
	bad[2] = 1;
	bad[3] = 45;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "record length 301 > buffer: EINVAL");

	memcpy(bad, buf, n);
	bad[4] = AF_UNIX;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "local family AF_UNIX: EINVAL");
	memcpy(bad, buf, n);
	bad[5] = 99;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "remote family 99: EINVAL");

	memcpy(bad, buf, n);
	bad[43] = 0;
	CHECK(fdpass_meta_decode(bad, n, &d) == -1 && errno == EINVAL, "NUL inside the name: EINVAL");

	/* meta sent over a socket with the fd */
	int sp[2];
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0, "dgram pair");
	CHECK(fdpass_send(sp[0], &sp[0], 1, buf, n, MSG_DONTWAIT) == 0, "send record with fd");
	int fd;
	size_t nf = 1;
	unsigned char rb[FDPASS_META_MAXLEN];
	ssize_t r = fdpass_recv(sp[1], &fd, &nf, rb, sizeof rb, 0);
	CHECK(r == n && nf == 1 && fdpass_meta_decode(rb, r, &d) == 0 && meta_eq(&m, &d) && !strcmp(d.rule, "r1"),
	      "record and fd arrive together");
	if (nf)
		close(fd);
	close(sp[0]);
	close(sp[1]);
}

static void test_peer(void)
{
	int sp[2];
	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0, "stream pair");
	CHECK(fdpass_peer_check(sp[0], (uid_t)-1, (gid_t)-1) == 0, "no requirement: ok");
	CHECK(fdpass_peer_check(sp[0], getuid(), getgid()) == 0, "own uid/gid: ok");
	errno = 0;
	CHECK(fdpass_peer_check(sp[0], getuid() + 1, (gid_t)-1) == -1 && errno == EPERM, "other uid: EPERM");
	errno = 0;
	CHECK(fdpass_peer_check(sp[0], (uid_t)-1, getgid() + 1) == -1 && errno == EPERM, "other gid: EPERM");
	close(sp[0]);
	close(sp[1]);
	int p[2];
	CHECK(pipe(p) == 0, "pipe");
	errno = 0;
	CHECK(fdpass_peer_check(p[0], 0, 0) == -1 && errno == ENOTSOCK, "not a socket: ENOTSOCK");
	close(p[0]);
	close(p[1]);
}

/* Who sent it, and what it is: the receivers' checks. */
static void test_checks(void)
{
	int sp[2], fd = -1, pf[2];
	CHECK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp) == 0 && pipe(pf) == 0, "socketpair, pipe");
	CHECK(fdpass_receiver_setup(sp[1]) == 0, "SO_PASSCRED on the receiver");
	CHECK(fdpass_send(sp[0], &pf[0], 1, "x", 1, 0) == 0, "send a pipe");
	struct ucred cr;
	size_t n = 1;
	char b[8];
	CHECK(fdpass_recv_from(sp[1], &fd, &n, b, sizeof b, MSG_CMSG_CLOEXEC, &cr) == 1 && n == 1,
	      "received the fd with credentials");
	CHECK(cr.pid == getpid() && cr.uid == geteuid() && cr.gid == getegid(), "the sender's pid, uid, gid");
	CHECK(fdpass_sender_ok(&cr, (uid_t)-1, (gid_t)-1), "our own uid is allowed");
	struct ucred other = { .pid = 1, .uid = 4242, .gid = 4343 };
	CHECK(!fdpass_sender_ok(&other, (uid_t)-1, (gid_t)-1) || geteuid() == 4242, "another uid is not, by default");
	CHECK(fdpass_sender_ok(&other, 4242, (gid_t)-1), "unless named by uid");
	CHECK(fdpass_sender_ok(&other, (uid_t)-1, 4343), "or by gid");
	struct ucred rootc = { .pid = 1, .uid = 0, .gid = 5 };
	CHECK(fdpass_sender_ok(&rootc, (uid_t)-1, (gid_t)-1), "root is allowed");
	struct ucred none = { .pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1 };
	CHECK(!fdpass_sender_ok(&none, (uid_t)-1, (gid_t)-1), "unknown credentials are not");
	errno = 0;
	CHECK(fdpass_fd_check(fd, 0, 0) == -1 && errno == ENOTSOCK, "a pipe: ENOTSOCK");
	CHECK(fdpass_fd_check(sp[0], 0, 0) == AF_UNIX, "a socket of any type and family: its family");
	CHECK(fdpass_fd_check(sp[0], SOCK_STREAM, 0) == -1 && errno == EPROTOTYPE, "wrong type: EPROTOTYPE");
	CHECK(fdpass_fd_check(sp[0], SOCK_DGRAM, FDPASS_FAM_INET) == -1 && errno == EAFNOSUPPORT,
	      "wrong family: EAFNOSUPPORT");
	CHECK(fdpass_fd_check(sp[0], SOCK_DGRAM, FDPASS_FAM_INET | FDPASS_FAM_UNIX) == AF_UNIX, "type and family as asked");
	close(fd);
	close(pf[0]);
	close(pf[1]);
	close(sp[0]);
	close(sp[1]);
}

int main(void)
{
	test_pass(SOCK_STREAM, "stream");
	test_pass(SOCK_DGRAM, "dgram");
	test_pass(SOCK_SEQPACKET, "seqpacket");
	test_meta();
	test_peer();
	test_checks();
	return unit_done();
}
