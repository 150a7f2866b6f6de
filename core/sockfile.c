/*
 * sockfile: tell a stale socket file from a live one (sockfile.h).
 *
 * The probe is a datagram connect, whatever the type of the socket at the
 * path: a file nobody is bound to gives ECONNREFUSED, while a live stream
 * socket gives EPROTOTYPE even before it listens (a stream probe would be
 * refused then too, and the path of a socket bound but not yet listening
 * taken from it). The calls go to the kernel directly: inside the preload
 * the libc names are its own wrappers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "sockfile.h"

/* The probe (see above): 1 nobody is bound there, -1 a live socket is, 0 cannot tell. */
static int probe(const struct sockaddr_un *un, socklen_t len)
{
	int p = (int)syscall(SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (p < 0)
		return 0;
	int r = (int)syscall(SYS_connect, p, un, len) < 0 ? errno : 0;
	syscall(SYS_close, p);
	if (r == ECONNREFUSED)
		return 1;
	return r == 0 || r == EPROTOTYPE || r == EAGAIN ? -1 : 0;
}

int sockfile_clear(const struct sockaddr_un *un, socklen_t len)
{
	struct stat st;

	if (len <= sizeof(sa_family_t) || !un->sun_path[0] || lstat(un->sun_path, &st) < 0 ||
	    !S_ISSOCK(st.st_mode))
		return 0;
	int e = errno, r = probe(un, len);
	if (r > 0)
		return errno = e, unlink(un->sun_path) == 0 || errno == ENOENT ? 1 : 0;
	if (r < 0)
		return errno = EADDRINUSE, -1;
	return errno = e, 0;
}

int sockfile_remove(const struct sockaddr_un *un, socklen_t len, dev_t dev, ino_t ino)
{
	struct stat st;
	int e = errno, r = 0;

	if (len > sizeof(sa_family_t) && un->sun_path[0] && lstat(un->sun_path, &st) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_dev == dev && st.st_ino == ino && probe(un, len) > 0)
		r = unlink(un->sun_path) == 0;
	errno = e;
	return r;
}

int bind_unix_path(int fd, const struct sockaddr_un *un, socklen_t len)
{
	int r = (int)syscall(SYS_bind, fd, un, len);
	if (r < 0 && errno == EADDRINUSE && sockfile_clear(un, len) == 1)
		r = (int)syscall(SYS_bind, fd, un, len);
	return r;
}

/* The process's umask from /proc/self/status (Linux 4.7+), without changing it; -1 when unknown. */
static long umask_now(void)
{
	char buf[2048];
	int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = syscall(SYS_read, fd, buf, sizeof buf - 1);
	syscall(SYS_close, fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	const char *u = strstr(buf, "\nUmask:\t");
	if (!u)
		return -1;
	char *end;
	long m = strtol(u + 8, &end, 8);
	return end == u + 8 || m < 0 || m > 0777 ? -1 : m;
}

int bind_unix_path_owned(int fd, const struct sockaddr_un *un, socklen_t len, long mode, uid_t uid, gid_t gid)
{
	int abstract = len > sizeof(sa_family_t) && !un->sun_path[0];
	int chgrp = gid != (gid_t)-1, chown = uid != (uid_t)-1 || chgrp;

	if (abstract || (!chown && mode < 0))
		return bind_unix_path(fd, un, len);
	/*
	 * The file is made with the socket's own mode less the umask; with a
	 * group to come, no group bits yet: until the chown the group is ours.
	 */
	long first = (mode >= 0 ? mode : 0777) & ~(chgrp ? 070 : 0);
	if (fchmod(fd, (mode_t)first) < 0 || bind_unix_path(fd, un, len) < 0)
		return -1;
	long last = mode;
	if (last < 0) {
		long m = umask_now();
		last = m < 0 ? -1 : 0777 & ~m;	/* unknown: the group bits stay off */
	}
	/*
	 * The owner and the last mode go to the file bind() made, never to
	 * what the path holds by then: whoever can write to the directory can
	 * put a symlink (to /etc/shadow, say) or a file of theirs there after
	 * bind(). The file is opened without following a symlink (O_PATH) and
	 * must be a socket that we own; chown through that descriptor, chmod
	 * through /proc/self/fd (O_PATH has no fchmod). Where /proc is not
	 * mounted the chmod goes by path, after the check: only a swap in the
	 * moment between the two is not caught there.
	 */
	int e, pfd = (int)syscall(SYS_openat, AT_FDCWD, un->sun_path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (pfd < 0 || fstat(pfd, &st) < 0) {
		e = errno;
		goto fail;
	}
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		e = EEXIST;	/* not the file bind() made: leave it alone */
		syscall(SYS_close, pfd);
		return errno = e, -1;
	}
	if (chown && fchownat(pfd, "", uid, gid, AT_EMPTY_PATH) < 0) {
		e = errno;
		goto fail;
	}
	if (last >= 0) {
		char p[32];
		snprintf(p, sizeof p, "/proc/self/fd/%d", pfd);
		if (chmod(p, (mode_t)last) < 0 && (errno != ENOENT || chmod(un->sun_path, (mode_t)last) < 0)) {
			e = errno;
			goto fail;
		}
	}
	syscall(SYS_close, pfd);
	return 0;
fail:
	if (pfd >= 0) {
		if (fstat(pfd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_uid == geteuid())
			unlink(un->sun_path);
		syscall(SYS_close, pfd);
	}
	return errno = e, -1;
}

int bind_unix_path_mode(int fd, const struct sockaddr_un *un, socklen_t len, long mode)
{
	return bind_unix_path_owned(fd, un, len, mode, (uid_t)-1, (gid_t)-1);
}

/* A decimal number with nothing else around it, in [0, max]; -1 otherwise. */
static long long whole_number(const char *s, long long max)
{
	const char *err = NULL;
	if (!s || !*s || s[strspn(s, "0123456789")])
		return -1;
	long long v = strtonum(s, 0, max, &err);
	return err ? -1 : v;
}

int sd_listen_count(const char *pid, const char *fds, long self, int max)
{
	if (!fds)
		return errno = ENOENT, -1;
	if (whole_number(pid, 0x7fffffff) != self)
		return errno = ESRCH, -1;
	long long n = whole_number(fds, max);
	if (n < 0)
		return errno = ERANGE, -1;
	return (int)n;
}
