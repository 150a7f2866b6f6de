/*
 * Socket options carried from the program's socket to the one put behind
 * its fd (a redirected connect, a datagram socket made AF_UNIX): only the
 * SOL_SOCKET options the program changed, found by comparing with a fresh
 * socket of the same kind.
 */
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "real.h"
#include "sg.h"

/* The options carried, and their values on a fresh socket, read once per kind. */
static const int copy_opts[] = { SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_LINGER, SO_RCVTIMEO_OLD,
				 SO_SNDTIMEO_OLD, SO_PRIORITY, SO_RCVLOWAT, SO_MARK, SO_PASSCRED };
#define NOPTS (sizeof copy_opts / sizeof copy_opts[0])
static struct optdef {
	int done;
	socklen_t len[NOPTS];
	unsigned char val[NOPTS][16];
} optdefs[2][2];	/* [v6][dgram] */

/* Copy to "to" the options the program changed on "from" (a socket of fam and type). */
void sockopt_carry(int from, int to, int fam, int type)
{
	struct optdef *d = &optdefs[fam == AF_INET6][type == SOCK_DGRAM];
	unsigned char v[16];

	if (!__atomic_load_n(&d->done, __ATOMIC_ACQUIRE)) {
		int s = REAL(socket)(fam, type | SOCK_CLOEXEC, 0);
		if (s < 0)
			return;
		struct optdef t;
		memset(&t, 0, sizeof t);
		for (size_t i = 0; i < NOPTS; i++) {
			t.len[i] = sizeof t.val[i];
			if (REAL(getsockopt)(s, SOL_SOCKET, copy_opts[i], t.val[i], &t.len[i]) < 0)
				t.len[i] = 0;
		}
		REAL(close)(s);
		pthread_mutex_lock(&sg_lock);
		if (!d->done) {
			memcpy(d->len, t.len, sizeof t.len);
			memcpy(d->val, t.val, sizeof t.val);
			__atomic_store_n(&d->done, 1, __ATOMIC_RELEASE);
		}
		pthread_mutex_unlock(&sg_lock);
	}
	for (size_t i = 0; i < NOPTS; i++) {
		socklen_t l = sizeof v;
		if (!d->len[i] || REAL(getsockopt)(from, SOL_SOCKET, copy_opts[i], v, &l) < 0 ||
		    (l == d->len[i] && !memcmp(v, d->val[i], l)))
			continue;
		if ((copy_opts[i] == SO_SNDBUF || copy_opts[i] == SO_RCVBUF) && l == sizeof(int)) {
			int x;
			memcpy(&x, v, sizeof x);
			x /= 2;	/* the kernel doubled what was set */
			memcpy(v, &x, sizeof x);
		}
		REAL(setsockopt)(to, SOL_SOCKET, copy_opts[i], v, l);
	}
}
