/*
 * Unit tests for core/sockfile's bind_unix_path_owned when the path is
 * swapped between bind(2) and the chown/chmod that follow it, as whoever
 * can write to the directory can do: the owner and mode go to the socket
 * file bind() made or to nothing, never through a symlink to another file,
 * never to a file someone else put there.
 *
 * The swap happens right after bind(): this program's own syscall() stands
 * in front of libc's (core binds through syscall(), and the executable's
 * symbol is the one its objects are linked to) and, when a bind of the
 * path has made the socket file, replaces that file.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#include "addr.h"
#include "sockfile.h"
#include "unit.h"

static const char *swap_path;	/* the socket file to replace when the next bind() has made it */
static void (*swap_with)(const char *path);

long syscall(long n, ...)
{
	static long (*real)(long, ...);
	va_list ap;
	long a[6];

	va_start(ap, n);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real)
		real = (long (*)(long, ...))dlsym(RTLD_NEXT, "syscall");
	long r = real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
	if (n == SYS_bind && r == 0 && swap_path &&
	    !strcmp(((const struct sockaddr_un *)a[1])->sun_path, swap_path)) {
		int e = errno;
		const char *p = swap_path;
		swap_path = NULL;
		swap_with(p);
		errno = e;
	}
	return r;
}

static char victim[64];

static void to_symlink(const char *path)
{
	unlink(path);
	if (symlink(victim, path) < 0)
		perror("symlink");
}

static void to_file(const char *path)
{
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	char dir[] = "/tmp/sg-sockswap.XXXXXX", path[64];
	struct sg_addr a;
	struct stat st;

	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	snprintf(path, sizeof path, "%s/s.sock", dir);
	snprintf(victim, sizeof victim, "%s/victim", dir);
	addr_unix(&a, path, 0);
	int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && close(fd) == 0, "a file that must keep its mode 0600");

	/* unswapped: the mode asked */
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(bind_unix_path_owned(s, &a.u.un, a.len, 0666, (uid_t)-1, (gid_t)-1) == 0 && lstat(path, &st) == 0 &&
	      (st.st_mode & 07777) == 0666, "no swap: the socket file has mode 0666");
	close(s);
	unlink(path);

	/* a symlink in its place after bind(): the file it points to keeps its mode */
	swap_path = path;
	swap_with = to_symlink;
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	errno = 0;
	int r = bind_unix_path_owned(s, &a.u.un, a.len, 0666, (uid_t)-1, (gid_t)-1);
	CHECK(r == -1 && errno == EEXIST, "a symlink swapped in: EEXIST (got %d, %s)", r, strerror(errno));
	CHECK(stat(victim, &st) == 0 && (st.st_mode & 07777) == 0600, "the symlink's target still has mode 0600 (%o)",
	      st.st_mode & 07777);
	CHECK(lstat(path, &st) == 0 && S_ISLNK(st.st_mode), "the symlink is left where it was");
	close(s);
	unlink(path);

	/* the same with an owner to set: no chown through the symlink either */
	swap_path = path;
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	r = bind_unix_path_owned(s, &a.u.un, a.len, 0660, getuid(), getgid());
	CHECK(r == -1 && errno == EEXIST && stat(victim, &st) == 0 && (st.st_mode & 07777) == 0600,
	      "owner and group asked, a symlink swapped in: EEXIST, the target untouched");
	close(s);
	unlink(path);

	/* a regular file in its place: not ours to chmod, and not removed */
	swap_path = path;
	swap_with = to_file;
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	r = bind_unix_path_owned(s, &a.u.un, a.len, 0666, (uid_t)-1, (gid_t)-1);
	CHECK(r == -1 && errno == EEXIST, "a regular file swapped in: EEXIST");
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600,
	      "the regular file is still there with its mode 0600");
	close(s);

	unlink(path);
	unlink(victim);
	rmdir(dir);
	return unit_done();
}
