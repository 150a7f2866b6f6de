/*
 * file: read a whole file; the monotonic clock (file.h). close() goes to
 * the kernel directly: inside the preload close is its own wrapper.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "file.h"

char *file_read_fd(int fd, size_t *len)
{
	struct stat st;
	size_t cap = 4096, n = 0;
	char *buf = NULL;

	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 && (size_t)st.st_size < FILE_MAX)
		cap = (size_t)st.st_size + 1;
	for (;;) {
		if (!buf || n + 1 >= cap) {
			if (buf && cap > FILE_MAX) {
				errno = EFBIG;
				goto fail;
			}
			char *nb = realloc(buf, buf ? cap *= 2 : cap);
			if (!nb)
				goto fail;
			buf = nb;
		}
		ssize_t r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			goto fail;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = 0;
	*len = n;
	return buf;
fail:;
	int e = errno;
	free(buf);
	errno = e;
	return NULL;
}

char *file_read(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	char *buf = file_read_fd(fd, len);
	int e = errno;
	syscall(SYS_close, fd);
	errno = e;
	return buf;
}

int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
