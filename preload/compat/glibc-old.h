/*
 * Force-included (-include) into every object of libsockgate.so built with
 * `make PARACONTAINER=1`, so that the library loads into processes whose
 * glibc is as old as 2.17 (libsockgate(7), BUILDS).
 *
 * glibc 2.33 made stat(), fstat() and lstat() real symbols (before, they
 * were inline calls of __xstat/__fxstat/__lxstat); here they go to the
 * fstatat system call, whose struct stat is glibc's on x86_64 and aarch64.
 * getrandom() came in glibc 2.25: the system call (Linux 3.17) is used.
 * The symbols glibc 2.34 moved from libpthread and libdl into libc
 * (pthread_create, pthread_once, pthread_attr_setstacksize,
 * pthread_sigmask, pthread_mutex_trylock, dlsym) are
 * bound at link time to their old versions in libpthread.so.0 and
 * libdl.so.2 (link-time stand-ins: preload/compat/glibc-old-stubs.c). A
 * newer glibc still defines those versions, in libc.so.6, so the same
 * library loads there too.
 */
#ifndef SOCKGATE_GLIBC_OLD_H
#define SOCKGATE_GLIBC_OLD_H

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static inline int sg_old_fstatat(int dfd, const char *path, struct stat *st, int flags)
{
	return (int)syscall(SYS_newfstatat, dfd, path, st, flags);
}

#define stat(path, st) sg_old_fstatat(AT_FDCWD, (path), (st), 0)
#define fstat(fd, st) sg_old_fstatat((fd), "", (st), AT_EMPTY_PATH)
#define lstat(path, st) sg_old_fstatat(AT_FDCWD, (path), (st), AT_SYMLINK_NOFOLLOW)

static inline ssize_t sg_old_getrandom(void *buf, size_t len, unsigned flags)
{
	return syscall(SYS_getrandom, buf, len, flags);
}

#define getrandom(buf, len, flags) sg_old_getrandom((buf), (len), (flags))

#endif
