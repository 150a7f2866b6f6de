/*
 * accept() on a Unix listener whose bind rule says proxy-v2 (or v1): the
 * program gets a connection only once its PROXY header is complete
 * (haproxy proxy-protocol.txt, sections 2.1 and 2.2), and a non-blocking
 * caller never waits for one.
 *
 * The program's fd stays the real listener (fd number, epoll registrations
 * and O_NONBLOCK as they were). A non-blocking accept() takes connections
 * from the kernel's queue until one has its whole header; one whose header
 * is still on its way is kept aside (up to PH_MAX in the process), and the
 * call says EAGAIN when the queue is empty. A helper thread watches the
 * connections kept aside; when a header completes it connects to the
 * listener itself and writes a cookie, which makes the listener readable
 * in poll/select/epoll again; accept() closes that connection and hands
 * out the completed one. A header not complete within PH_WAIT_MS, or
 * malformed, closes its connection. A blocking accept() takes completed
 * connections kept aside first, and otherwise waits for the header of the
 * next one as before (HDR_WAIT_MS).
 *
 * A forked child has no helper: it leaves the connections kept aside to
 * its parent (closing its copies), and keeps them aside again itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include "file.h"
#include "proxyv2.h"
#include "real.h"
#include "sg.h"

#define HDR_WAIT_MS 1000	/* how long a blocking accept() waits for the rest of a header */
#define PH_WAIT_MS 10000	/* how long a connection kept aside may take for its header */
#define PH_MAX 256		/* connections kept aside in one process */
#define COOKIE_LEN 16

enum { HDR_BAD = -1, HDR_NONE = 0, HDR_DONE = 1, HDR_MORE = 2, HDR_WAKE = 3 };

struct ph {
	int s;			/* the connection (-1: free) */
	ino_t lino;		/* inode of the listener it came from */
	int ready;		/* its header is complete */
	int64_t t0;
	struct sockaddr_un la;	/* where the listener is (to wake it) */
	socklen_t lal;
};

static pthread_mutex_t ph_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ph_cond = PTHREAD_COND_INITIALIZER;
static struct ph ph[PH_MAX];
static int ph_n, ph_thread;
static unsigned char cookie[COOKIE_LEN];
static pthread_once_t cookie_once = PTHREAD_ONCE_INIT;

static void cookie_make(void)
{
	if (getrandom(cookie + 1, COOKIE_LEN - 1, GRND_NONBLOCK) != COOKIE_LEN - 1) {
		int64_t t = mono_ms() ^ (int64_t)getpid() << 20;
		memcpy(cookie + 1, &t, sizeof t);
	}
	cookie[0] = 0;	/* no PROXY header starts with a NUL: told apart at the first byte */
}

static void ph_fork_prepare(void)
{
	pthread_mutex_lock(&ph_lock);
}

static void ph_fork_parent(void)
{
	pthread_mutex_unlock(&ph_lock);
}

static void ph_fork_child(void)
{
	for (int i = 0; i < PH_MAX; i++)
		if (ph[i].s >= 0) {
			REAL(close)(ph[i].s);
			ph[i].s = -1;
		}
	ph_n = ph_thread = 0;
	pthread_mutex_unlock(&ph_lock);
	pthread_cond_init(&ph_cond, NULL);
}

__attribute__((constructor)) static void ph_init(void)
{
	for (int i = 0; i < PH_MAX; i++)
		ph[i].s = -1;
	pthread_atfork(ph_fork_prepare, ph_fork_parent, ph_fork_child);
}

/*
 * One look at the start of s: HDR_DONE (h filled, the header's bytes read
 * when take is set), HDR_NONE (a LOCAL/UNKNOWN header, read likewise),
 * HDR_MORE (not all here yet), HDR_WAKE (our own wake-up), HDR_BAD.
 */
static int hdr_try(int s, struct proxy_hdr *h, int take)
{
	unsigned char buf[PROXY_V2_HDRLEN + 1024];
	size_t n;

	ssize_t got = REAL(recvfrom)(s, buf, sizeof buf, MSG_PEEK | MSG_DONTWAIT, NULL, NULL);
	if (got == 0)
		return HDR_BAD;
	if (got < 0)
		return errno == EAGAIN || errno == EINTR ? HDR_MORE : HDR_BAD;
	if (buf[0] == 0) {
		pthread_once(&cookie_once, cookie_make);
		size_t k = (size_t)got < COOKIE_LEN ? (size_t)got : COOKIE_LEN;
		if (memcmp(buf, cookie, k))
			return HDR_BAD;
		return k == COOKIE_LEN ? HDR_WAKE : HDR_MORE;
	}
	memset(h, 0, sizeof *h);
	int r = proxyv2_parse(buf, (size_t)got, h, &n);
	if (r < 0)
		return HDR_BAD;
	if (r != PROXY_DONE)
		return (size_t)got >= sizeof buf ? HDR_BAD : HDR_MORE;
	if (take && REAL(recvfrom)(s, buf, n, MSG_DONTWAIT, NULL, NULL) != (ssize_t)n)
		return HDR_BAD;
	return h->command == PROXY_CMD_PROXY && h->src.ss_family != AF_UNSPEC ? HDR_DONE : HDR_NONE;
}

/* Make the listener at la readable: connect to it and write the cookie. */
static void wake(const struct sockaddr_un *la, socklen_t lal)
{
	int w = REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (w < 0)
		return;
	pthread_once(&cookie_once, cookie_make);
	if (REAL(connect)(w, (const struct sockaddr *)la, lal) == 0) {
		ssize_t r = REAL(send)(w, cookie, COOKIE_LEN, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)r;
	}
	REAL(close)(w);
}

/* The helper: watches the connections kept aside until their headers are complete. */
static void *ph_helper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&ph_lock);
	for (;;) {
		while (!ph_n)
			pthread_cond_wait(&ph_cond, &ph_lock);
		struct pollfd p[PH_MAX];
		int idx[PH_MAX], n = 0;
		for (int i = 0; i < PH_MAX; i++)
			if (ph[i].s >= 0 && !ph[i].ready) {
				p[n].fd = ph[i].s;
				p[n].events = POLLIN;
				idx[n++] = i;
			}
		pthread_mutex_unlock(&ph_lock);
		poll(p, (nfds_t)n, n ? 50 : 200);
		pthread_mutex_lock(&ph_lock);
		int64_t now = mono_ms();
		for (int i = 0; i < PH_MAX; i++)
			if (ph[i].s >= 0 && ph[i].ready && now - ph[i].t0 > 6 * PH_WAIT_MS) {
				REAL(close)(ph[i].s);	/* nobody took it: its listener is gone */
				ph[i].s = -1;
				ph_n--;
			}
		struct sockaddr_un wl[PH_MAX];
		socklen_t wll[PH_MAX];
		int nw = 0;
		for (int j = 0; j < n; j++) {
			struct ph *e = &ph[idx[j]];
			if (e->s != p[j].fd || e->ready)
				continue;	/* taken meanwhile */
			struct proxy_hdr h;
			int r = p[j].revents ? hdr_try(e->s, &h, 0) : HDR_MORE;
			if (r == HDR_MORE && now - e->t0 < PH_WAIT_MS)
				continue;
			if (r == HDR_DONE || r == HDR_NONE) {
				e->ready = 1;
				wl[nw] = e->la;
				wll[nw++] = e->lal;
				continue;
			}
			REAL(close)(e->s);	/* malformed, a wake-up, or too slow */
			e->s = -1;
			ph_n--;
		}
		pthread_mutex_unlock(&ph_lock);
		for (int j = 0; j < nw; j++)
			wake(&wl[j], wll[j]);
		pthread_mutex_lock(&ph_lock);
	}
	return NULL;
}

/* Under ph_lock: keep s aside for the listener lino at la (the oldest goes when full). */
static void keep_aside(int s, ino_t lino, const struct sockaddr_un *la, socklen_t lal)
{
	int k = -1, old = -1;
	for (int i = 0; i < PH_MAX && k < 0; i++) {
		if (ph[i].s < 0)
			k = i;
		else if (old < 0 || ph[i].t0 < ph[old].t0)
			old = i;
	}
	if (k < 0) {
		REAL(close)(ph[old].s);	/* a slow header gives way */
		ph_n--;
		k = old;
	}
	ph[k].s = s;
	ph[k].lino = lino;
	ph[k].ready = 0;
	ph[k].t0 = mono_ms();
	ph[k].la = *la;
	ph[k].lal = lal;
	ph_n++;
	if (!ph_thread) {
		pthread_t t;
		pthread_attr_t at;
		sigset_t all, prev;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &prev);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		ph_thread = pthread_create(&t, &at, ph_helper, NULL) == 0;
		pthread_attr_destroy(&at);
		pthread_sigmask(SIG_SETMASK, &prev, NULL);
	}
	pthread_cond_signal(&ph_cond);
}

/* A connection kept aside for listener lino whose header is complete, taken (its header read); -1: none. */
static int take_ready(ino_t lino, struct proxy_hdr *h, int *got)
{
	int s = -1;
	pthread_mutex_lock(&ph_lock);
	for (int i = 0; i < PH_MAX && s < 0; i++) {
		if (ph[i].s < 0 || ph[i].lino != lino || !ph[i].ready)
			continue;
		int r = hdr_try(ph[i].s, h, 1);
		if (r == HDR_DONE || r == HDR_NONE) {
			s = ph[i].s;
			*got = r == HDR_DONE;
		} else {
			REAL(close)(ph[i].s);
		}
		ph[i].s = -1;
		ph_n--;
	}
	pthread_mutex_unlock(&ph_lock);
	return s;
}

/* A blocking caller: the header of s, waited for up to HDR_WAIT_MS. */
static int hdr_wait(int s, struct proxy_hdr *h)
{
	int64_t t0 = mono_ms();
	for (;;) {
		int r = hdr_try(s, h, 1);
		if (r != HDR_MORE)
			return r;
		long left = HDR_WAIT_MS - (long)(mono_ms() - t0);
		if (left <= 0)
			return HDR_BAD;
		struct pollfd p = { .fd = s, .events = POLLIN };
		poll(&p, 1, (int)(left < 50 ? left : 50));
	}
}

/* The program's flags on a connection accepted with SOCK_NONBLOCK | SOCK_CLOEXEC. */
static int as_asked(int s, int flags)
{
	int nb = (flags & SOCK_NONBLOCK) != 0;
	ioctl(s, FIONBIO, &nb);
	if (!(flags & SOCK_CLOEXEC))
		REAL(fcntl)(s, F_SETFD, 0);
	return s;
}

int in_proxy_accept(int fd, ino_t lino, struct proxy_hdr *h, int *got, int flags)
{
	int fl = REAL(fcntl)(fd, F_GETFL);
	int nonblock = fl >= 0 && (fl & O_NONBLOCK);
	struct sockaddr_un la;
	socklen_t lal = 0;

	*got = 0;
	for (;;) {
		int s = take_ready(lino, h, got);
		if (s >= 0)
			return as_asked(s, flags);
		s = REAL(accept4)(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s < 0) {
			if (errno != EAGAIN || nonblock)
				return -1;
			/* a blocking caller: wait in the kernel as accept() does */
			s = REAL(accept4)(fd, NULL, NULL, SOCK_CLOEXEC);
			if (s < 0)
				return -1;
			int one = 1;
			ioctl(s, FIONBIO, &one);
		}
		int r = nonblock ? hdr_try(s, h, 1) : hdr_wait(s, h);
		if (r == HDR_DONE || r == HDR_NONE) {
			*got = r == HDR_DONE;
			return as_asked(s, flags);
		}
		if (r == HDR_WAKE) {
			REAL(close)(s);
			continue;	/* a header completed aside: take it above */
		}
		if (r == HDR_MORE && nonblock) {
			if (!lal) {
				lal = sizeof la;
				if (REAL(getsockname)(fd, (struct sockaddr *)&la, &lal) < 0)
					lal = 0;
			}
			if (lal) {
				pthread_mutex_lock(&ph_lock);
				keep_aside(s, lino, &la, lal);
				pthread_mutex_unlock(&ph_lock);
				continue;
			}
		}
		/*
		 * No valid header: drop that connection and say so as TCP would
		 * for a connection gone before accept. Looping into another
		 * accept4() instead would block a caller that was told by
		 * select() that exactly one connection waits.
		 */
		REAL(close)(s);
		return errno = ECONNABORTED, -1;
	}
}
