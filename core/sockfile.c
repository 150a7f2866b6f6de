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
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "sockfile.h"

int sockfile_clear(const struct sockaddr_un *un, socklen_t len)
{
	struct stat st;

	if (len <= sizeof(sa_family_t) || !un->sun_path[0] || lstat(un->sun_path, &st) < 0 ||
	    !S_ISSOCK(st.st_mode))
		return 0;
	int e = errno;
	int p = (int)syscall(SYS_socket, AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (p < 0)
		return errno = e, 0;
	int r = (int)syscall(SYS_connect, p, un, len) < 0 ? errno : 0;
	syscall(SYS_close, p);
	if (r == ECONNREFUSED)
		return errno = e, unlink(un->sun_path) == 0 || errno == ENOENT ? 1 : 0;
	if (r == 0 || r == EPROTOTYPE || r == EAGAIN)
		return errno = EADDRINUSE, -1;
	return errno = e, 0;
}

int bind_unix_path(int fd, const struct sockaddr_un *un, socklen_t len)
{
	int r = (int)syscall(SYS_bind, fd, un, len);
	if (r < 0 && errno == EADDRINUSE && sockfile_clear(un, len) == 1)
		r = (int)syscall(SYS_bind, fd, un, len);
	return r;
}

int bind_unix_path_mode(int fd, const struct sockaddr_un *un, socklen_t len, long mode)
{
	int abstract = len > sizeof(sa_family_t) && !un->sun_path[0];
	if (mode >= 0 && !abstract && fchmod(fd, (mode_t)mode) < 0)
		return -1;
	if (bind_unix_path(fd, un, len) < 0)
		return -1;
	if (mode >= 0 && !abstract && chmod(un->sun_path, (mode_t)mode) < 0)
		return -1;
	return 0;
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
