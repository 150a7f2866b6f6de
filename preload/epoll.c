/*
 * epoll registrations across a swap. dup3() puts a new file behind the
 * program's fd, and the kernel drops the registrations of the old file; so
 * before the swap we read them from /proc/self/fdinfo/EPFD ("tfd: events:
 * data:" lines, proc(5)) of every epoll instance the program created, and
 * after it we register the new file the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "real.h"
#include "sg.h"

#define EP_MAX 64
static int epfds[EP_MAX];	/* under sg_lock */
static int nep;

void ep_note(int epfd, int add)
{
	if (add) {
		for (int i = 0; i < nep; i++)
			if (epfds[i] == epfd)
				return;
		if (nep < EP_MAX)
			epfds[nep++] = epfd;
	} else {
		for (int i = 0; i < nep; i++)
			if (epfds[i] == epfd) {
				epfds[i] = epfds[--nep];
				return;
			}
	}
}

/* Under sg_lock. Collects and removes fd's registrations (file ino). */
int ep_capture(int fd, ino_t ino, struct epreg *out, int max)
{
	char path[64], line[256];
	int n = 0;

	for (int i = 0; i < nep && n < max; i++) {
		snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epfds[i]);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		while (n < max && fgets(line, sizeof line, f)) {
			int tfd;
			unsigned ev;
			unsigned long long data;
			char *p;
			if (strncmp(line, "tfd:", 4) ||
			    sscanf(line, "tfd: %d events: %x data: %llx", &tfd, &ev, &data) != 3 ||
			    tfd != fd)
				continue;
			p = strstr(line, " ino:");
			if (p && strtoull(p + 5, NULL, 16) != (unsigned long long)ino)
				continue;
			out[n].epfd = epfds[i];
			out[n].events = ev;
			out[n].data = data;
			n++;
		}
		fclose(f);
	}
	for (int i = 0; i < n; i++)
		REAL(epoll_ctl)(out[i].epfd, EPOLL_CTL_DEL, fd, NULL);
	return n;
}

void ep_restore(int fd, const struct epreg *r, int n)
{
	for (int i = 0; i < n; i++) {
		struct epoll_event ev;
		ev.events = r[i].events;
		ev.data.u64 = r[i].data;
		REAL(epoll_ctl)(r[i].epfd, EPOLL_CTL_ADD, fd, &ev);
	}
}

/*
 * Only an fd that was ever added to an epoll instance needs its
 * registrations looked up at a swap: mark it (a flag, no lock).
 */
EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev)
{
	int r = REAL(epoll_ctl)(epfd, op, fd, ev);
	if (r == 0 && op == EPOLL_CTL_ADD && !(fd_flags(fd) & SF_EPREG))
		slot_epreg(fd);
	return r;
}

static int noted(int fd)
{
	if (fd < 0)
		return fd;
	pthread_mutex_lock(&sg_lock);
	ep_note(fd, 1);
	if (slot_get(fd, 1))
		slot_setflags(fd, SF_EPOLL, 0);
	pthread_mutex_unlock(&sg_lock);
	return fd;
}

EXPORT int epoll_create(int size)
{
	return noted(REAL(epoll_create)(size));
}

EXPORT int epoll_create1(int flags)
{
	return noted(REAL(epoll_create1)(flags));
}
