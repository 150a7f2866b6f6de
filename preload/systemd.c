/*
 * systemd socket activation for `bind ... -> systemd [NAME]` rules: the
 * sockets systemd passed (the sd_listen_fds(3) protocol, read without
 * libsystemd) and how the program's fd becomes one of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "real.h"
#include "sg.h"
#include "sockfile.h"

/*
 * systemd socket activation (sd_listen_fds(3) protocol, without libsystemd):
 * LISTEN_PID is us, LISTEN_FDS sockets from fd 3, LISTEN_FDNAMES their
 * names. A `bind ... -> systemd [NAME]` rule hands the program the socket
 * of that name, or the next one not yet handed out.
 */
#define SD_FIRST 3
#define SD_MAX 64
static int sd_loaded, sd_n, sd_taken[SD_MAX];
static char *sd_names[SD_MAX];

static void sd_load(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	int e = errno;

	sd_loaded = 1;
	int n = sd_listen_count(pid, fds, getpid(), 0x7ffffff0);
	errno = e;
	if (n <= 0)
		return;
	sd_n = n > SD_MAX ? SD_MAX : (int)n;
	const char *names = getenv("LISTEN_FDNAMES");
	char *copy = names ? strdup(names) : NULL, *save = NULL;
	char *tok = copy ? strtok_r(copy, ":", &save) : NULL;
	for (int i = 0; i < sd_n && tok; i++, tok = strtok_r(NULL, ":", &save))
		sd_names[i] = tok;	/* copy is kept for the life of the process */
}

/* The activated fd for NAME (NULL: the next free one), or -1. */
int systemd_fd(const char *name)
{
	int fd = -1;

	pthread_mutex_lock(&sg_lock);
	if (!sd_loaded)
		sd_load();
	for (int i = 0; i < sd_n && fd < 0; i++) {
		if (name ? (sd_names[i] && !strcmp(sd_names[i], name)) : !sd_taken[i]) {
			sd_taken[i] = 1;
			fd = SD_FIRST + i;
		}
	}
	pthread_mutex_unlock(&sg_lock);
	return fd;
}

/*
 * The program's fd becomes (a copy of) the activated socket, already bound
 * and listening. An inet socket needs nothing more; a Unix one is treated
 * as a `bind -> unix` listener (addresses as described there).
 */
int systemd_take(int fd, int afd, const struct sockaddr *sa, socklen_t len, const struct rule *r, int domain)
{
	int dom = 0;
	socklen_t l = sizeof dom;
	if (REAL(getsockopt)(afd, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0)
		return errno = EADDRNOTAVAIL, -1;
	int dup = REAL(fcntl)(afd, F_DUPFD_CLOEXEC, 0);
	if (dup < 0)
		return -1;
	if (dom != AF_UNIX) {
		int fl = REAL(fcntl)(fd, F_GETFL), fdfl = REAL(fcntl)(fd, F_GETFD);
		int ret = REAL(dup3)(dup, fd, fdfl >= 0 && (fdfl & FD_CLOEXEC) ? O_CLOEXEC : 0);
		if (ret >= 0 && fl >= 0)
			REAL(fcntl)(fd, F_SETFL, fl);
		int e = errno;
		REAL(close)(dup);
		if (ret >= 0 && fd_flags(fd))
			sg_forget(fd);
		errno = e;
		return ret < 0 ? -1 : 0;
	}
	struct sgconn *c = conn_listener(domain, r, ACT_SYSTEMD, ST_RECEIVER, sa, len);
	if (!c) {
		REAL(close)(dup);
		return errno = ENOMEM, -1;
	}
	return sg_swap_in(fd, dup, c, SF_ACCEPT);
}
