/*
 * Unit tests for core/sockfile: the stale-socket probe tells a file nobody
 * is bound to from a live socket (also a stream socket bound but not
 * listening yet), and the systemd activation numbers are parsed one way.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "addr.h"
#include "sockfile.h"
#include "unit.h"

static int bound(struct sg_addr *a, int type)
{
	int s = socket(AF_UNIX, type, 0);
	if (s >= 0 && bind(s, &a->u.sa, a->len) == 0)
		return s;
	return -1;
}

int main(void)
{
	char dir[] = "/tmp/sg-sockfile.XXXXXX", path[64];
	struct sg_addr a;
	struct stat st;

	if (!mkdtemp(dir))
		return perror("mkdtemp"), 1;
	snprintf(path, sizeof path, "%s/s.sock", dir);
	addr_unix(&a, path, 0);

	CHECK(sockfile_clear(&a.u.un, a.len) == 0, "no file: nothing to do");
	int s = bound(&a, SOCK_DGRAM);
	close(s);
	CHECK(s >= 0 && sockfile_clear(&a.u.un, a.len) == 1 && lstat(path, &st) < 0, "a stale file is removed");

	/* the mode from the start: with umask 077 the file is 0600 first, then exactly 0640 */
	mode_t um = umask(077);
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(bind_unix_path_mode(s, &a.u.un, a.len, 0640) == 0 && stat(path, &st) == 0 &&
	      (st.st_mode & 07777) == 0640, "bind_unix_path_mode: the file gets exactly the mode");
	close(s);
	unlink(path);
	umask(0);
	s = socket(AF_UNIX, SOCK_DGRAM, 0);
	CHECK(fchmod(s, 0600) == 0 && bind(s, &a.u.sa, a.len) == 0 && stat(path, &st) == 0 &&
	      (st.st_mode & 07777) == 0600, "the kernel creates the file with the socket's own mode (umask 0)");
	close(s);
	unlink(path);
	umask(um);

	s = bound(&a, SOCK_STREAM);
	errno = 0;
	CHECK(sockfile_clear(&a.u.un, a.len) == -1 && errno == EADDRINUSE && lstat(path, &st) == 0,
	      "a stream socket bound but not listening is live: EADDRINUSE, the file stays");
	listen(s, 1);
	CHECK(sockfile_clear(&a.u.un, a.len) == -1 && errno == EADDRINUSE, "a listening stream socket is live");
	int t = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(bind_unix_path(t, &a.u.un, a.len) == -1 && errno == EADDRINUSE, "bind_unix_path does not take it");
	close(s);
	CHECK(bind_unix_path(t, &a.u.un, a.len) == 0, "once it is gone, bind_unix_path replaces the file");
	close(t);
	unlink(path);
	s = bound(&a, SOCK_DGRAM);
	CHECK(sockfile_clear(&a.u.un, a.len) == -1 && errno == EADDRINUSE, "a bound datagram socket is live");
	close(s);
	unlink(path);
	FILE *f = fopen(path, "w");
	fclose(f);
	CHECK(sockfile_clear(&a.u.un, a.len) == 0 && lstat(path, &st) == 0, "a regular file is never removed");
	unlink(path);
	rmdir(dir);

	char self[32];
	snprintf(self, sizeof self, "%ld", (long)getpid());
	long me = (long)getpid();
	CHECK(sd_listen_count(self, "2", me, 64) == 2, "LISTEN_PID is us, LISTEN_FDS=2");
	CHECK(sd_listen_count(self, "0", me, 64) == 0, "LISTEN_FDS=0");
	CHECK(sd_listen_count(self, NULL, me, 64) == -1 && errno == ENOENT, "no LISTEN_FDS: ENOENT");
	CHECK(sd_listen_count(NULL, "2", me, 64) == -1 && errno == ESRCH, "no LISTEN_PID: not for us");
	CHECK(sd_listen_count("1", "2", me, 64) == -1 && errno == ESRCH, "another process's LISTEN_PID");
	char junk[40];
	snprintf(junk, sizeof junk, "%sx", self);
	CHECK(sd_listen_count(junk, "2", me, 64) == -1 && errno == ESRCH, "LISTEN_PID with trailing junk");
	const char *bad[] = { "", "2x", "-1", "+2", " 2", "65", "99999999999999999999" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(sd_listen_count(self, bad[i], me, 64) == -1 && errno == ERANGE, "LISTEN_FDS '%s' is refused",
		      bad[i]);
	return unit_done();
}
