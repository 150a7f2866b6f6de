/*
 * u-relay-tproxy's gai-hack as a source of answers for getaddrinfo()
 * (names.c, which decides when it is asked): the entries of
 * PJTL_GAIHACK_STATICDIR, read at every lookup so that they can be changed
 * while the program runs, and PJTL_GAIHACK_LOGFILE, where the names nothing
 * answered are written. Names and entries are parsed by core/gaihack.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "gaihack.h"
#include "real.h"
#include "sg.h"

/* One entry file: GAIHACK_FOUND (value in out), GAIHACK_NOTFOUND, or GAIHACK_FAILED. */
static int entry(int dir, const char *file, char *out, size_t size)
{
	char buf[GAIHACK_FILEMAX + 2];
	int fd = openat(dir, file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		ssize_t n;
		do
			n = read(fd, buf, sizeof buf);
		while (n < 0 && errno == EINTR);
		REAL(close)(fd);
		if (n <= 0)
			return GAIHACK_FAILED;
		return gaihack_entry(buf, (size_t)n, 0, out, size) == 0 ? GAIHACK_FOUND : GAIHACK_FAILED;
	}
	if (errno != ENOENT)
		return GAIHACK_FAILED;
	/* a link to "X,VALUE" names no file: it is read, not followed */
	ssize_t n = readlinkat(dir, file, buf, sizeof buf);
	if (n < 0)
		return errno == ENOENT || errno == EINVAL ? GAIHACK_NOTFOUND : GAIHACK_FAILED;
	return gaihack_entry(buf, (size_t)n, 1, out, size) == 0 ? GAIHACK_FOUND : GAIHACK_NOTFOUND;
}

int gaihack_find(const char *name, const char ident[2], int *localhost, char *out, size_t size)
{
	char cand[GAIHACK_MAXCAND][GAIHACK_FILEMAX + 1];
	const char *dirname = getenv("PJTL_GAIHACK_STATICDIR");
	int n = gaihack_candidates(name, ident, cand, localhost);
	int r = GAIHACK_NOTFOUND;

	if (!dirname || !*dirname)
		return GAIHACK_NOTFOUND;
	int dir = open(dirname, O_RDONLY | O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return GAIHACK_FAILED;
	for (int i = 0; i < n && r == GAIHACK_NOTFOUND; i++)
		r = entry(dir, cand[i], out, size);
	REAL(close)(dir);
	return r;
}

void gaihack_log(const char *name)
{
	const char *file = getenv("PJTL_GAIHACK_LOGFILE");
	char line[GAIHACK_NAMEMAX + 40];

	if (!file || !*file)
		return;
	int n = snprintf(line, sizeof line, "sni_proxy_needed_for \"%s\"\n", name);
	int fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	ssize_t w = write(fd, line, (size_t)n);
	(void)w;
	REAL(close)(fd);
}
