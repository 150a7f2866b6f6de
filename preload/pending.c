/*
 * Connects that cannot complete at once without blocking a non-blocking
 * caller (see out.c): the program's fd becomes the read end of a pipe, a
 * placeholder that poll/select/epoll report neither readable nor writable,
 * and a helper thread makes the blocking connect, writes the PROXY header
 * and swaps the connected socket in (or a socket that fails every write,
 * with the error for SO_ERROR). Closing the pipe's write end wakes pollers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "file.h"
#include "real.h"
#include "sg.h"

struct job {
	struct sgconn *c;
	int s;			/* our socket, connecting */
	struct sg_addr ta;
	long fc_port;		/* >= 0: a Firecracker multiplexer; CONNECT to this port first (ctl.c) */
};

static int cancelled(struct sgconn *c)
{
	pthread_mutex_lock(&sg_lock);
	int r = c->refs <= 1;	/* only the helper still holds it: every fd was closed */
	pthread_mutex_unlock(&sg_lock);
	return r;
}

static int cancel_cb(void *c)
{
	return cancelled(c);
}

/*
 * The end of a pending connect: the connected socket (or, with err, one
 * that fails every write and says err once in SO_ERROR) goes behind every
 * fd still holding the placeholder, and pollers are woken.
 */
static void finish(struct job *j, int err)
{
	struct sgconn *c = j->c;
	int newfd = j->s;

	if (err) {
		REAL(close)(j->s);
		newfd = REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	}
	pthread_mutex_lock(&sg_lock);
	if (c->refs > 1 && newfd >= 0) {
		sg_swap_all(c, newfd, err ? SF_OUT : 0);
		c->state = err ? ST_FAILED : ST_CONNECTED;
		c->err = err;
	}
	int pw = c->pw;
	c->pw = -1;
	c->s = -1;
	conn_put(c);
	pthread_mutex_unlock(&sg_lock);
	/* wakes poll/select sleeping on the placeholder: they look again and see the socket */
	if (pw >= 0)
		REAL(close)(pw);
	if (newfd >= 0)
		REAL(close)(newfd);
}

/* The helper thread: connect, send the header, finish; gives up on timeout or when every fd was closed. */
static void *helper(void *arg)
{
	struct job *j = arg;
	struct sgconn *c = j->c;
	struct timeval tick = { 0, 200000 }, old;
	int64_t deadline = mono_ms() + CONNECT_TIMEOUT_S * 1000;
	int err = 0;
	int is_unix = j->ta.u.sa.sa_family == AF_UNIX;

	REAL(fcntl)(j->s, F_SETFL, REAL(fcntl)(j->s, F_GETFL) & ~O_NONBLOCK);
	REAL(setsockopt)(j->s, SOL_SOCKET, SO_SNDTIMEO_OLD, &tick, sizeof tick);
	for (;;) {
		if (cancelled(c)) {
			err = ECANCELED;
			break;
		}
		if (mono_ms() > deadline) {
			err = ETIMEDOUT;
			break;
		}
		if (is_unix) {
			/* blocking: the kernel wakes us when the listener's queue has room */
			if (REAL(connect)(j->s, &j->ta.u.sa, j->ta.len) == 0 || errno == EISCONN)
				break;
			if (errno == EAGAIN || errno == EINTR)
				continue;
			err = unix_errno(errno);
			break;
		}
		struct pollfd p = { .fd = j->s, .events = POLLOUT };
		if (poll(&p, 1, 200) > 0) {
			socklen_t l = sizeof err;
			if (REAL(getsockopt)(j->s, SOL_SOCKET, SO_ERROR, &err, &l) < 0)
				err = errno;
			break;
		}
	}
	if (!err && j->fc_port >= 0 &&
	    ctl_fc_handshake(j->s, (uint32_t)j->fc_port, (double)(deadline - mono_ms()) / 1000, cancel_cb, c) < 0)
		err = errno;
	if (!err) {
		pthread_mutex_lock(&sg_lock);
		unsigned char *h = c->hdr;
		size_t off = c->hdroff, len = c->hdrlen;
		c->hdr = NULL;
		c->hdrlen = c->hdroff = 0;
		pthread_mutex_unlock(&sg_lock);
		while (h && off < len && !err) {
			ssize_t w = REAL(send)(j->s, h + off, len - off, MSG_NOSIGNAL);
			if (w > 0)
				off += (size_t)w;
			else if (w < 0 && (errno == EAGAIN || errno == EINTR) && mono_ms() < deadline && !cancelled(c))
				continue;
			else
				err = w < 0 ? errno : EPIPE;
		}
		free(h);
	}
	pthread_mutex_lock(&sg_lock);
	old = c->sndtimeo;	/* the program may have set it meanwhile */
	c->s = -1;
	pthread_mutex_unlock(&sg_lock);
	REAL(setsockopt)(j->s, SOL_SOCKET, SO_SNDTIMEO_OLD, &old, sizeof old);
	finish(j, err == ECANCELED ? 0 : err);
	free(j);
	return NULL;
}

/* Put a placeholder behind fd and (with s >= 0) start the helper. Returns -1/EINPROGRESS. */
int pending_start(int fd, struct sgconn *c, int s, const struct sg_addr *ta, long fc_port)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) {
		int e = errno;
		if (s >= 0)
			REAL(close)(s);
		c->refs = 1;
		conn_put(c);
		return errno = e, -1;
	}
	c->pw = p[1];
	c->state = s >= 0 ? ST_PENDING : ST_BLACKHOLE;
	c->s = s;
	if (s >= 0) {
		socklen_t tl = sizeof c->sndtimeo;
		if (REAL(getsockopt)(s, SOL_SOCKET, SO_SNDTIMEO_OLD, &c->sndtimeo, &tl) < 0)
			memset(&c->sndtimeo, 0, sizeof c->sndtimeo);
	}
	if (sg_swap_in(fd, p[0], c, SF_OUT | SF_IN) < 0) {
		int e = errno;
		if (s >= 0)
			REAL(close)(s);
		c->refs = 1;	/* never published */
		conn_put(c);
		return errno = e, -1;
	}
	if (s < 0) {
		errno = EINPROGRESS;
		return -1;
	}
	struct job *j = malloc(sizeof *j);
	pthread_t t;
	pthread_attr_t at;
	sigset_t all, old;
	int ok = 0;

	if (j) {
		j->c = c;
		j->s = s;
		j->ta = *ta;
		j->fc_port = fc_port;
		pthread_mutex_lock(&sg_lock);
		c->refs++;
		pthread_mutex_unlock(&sg_lock);
		/* the helper takes no signal meant for the program */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 64 * 1024);
		ok = pthread_create(&t, &at, helper, j) == 0;
		pthread_attr_destroy(&at);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (!ok) {
		/* no thread: the connect fails as if refused by resources */
		if (j) {
			finish(j, EAGAIN);
			free(j);
		} else {
			REAL(close)(s);
		}
	}
	errno = EINPROGRESS;
	return -1;
}
