/*
 * The reply address of a redirected datagram socket (out.c): the file
 * .sockgate-dgram-PID-N it is bound to beside its server's socket, so that
 * a server in another network namespace can answer it, and the removal of
 * those files.
 *
 * The name holds the pid, and in a container with its own PID namespace
 * every run has the same pid: a file left by an earlier run (a program that
 * exits without closing its socket, as dig does, or is killed) is replaced
 * when the stale-socket probe (core/sockfile.c) finds nobody bound to it. A
 * live socket of another namespace with the same name is skipped for the
 * next N. The files of this process are removed when the socket is closed
 * (conn_put) and at exit() (a destructor); only _exit() and a killing
 * signal leave one, which the next run replaces.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "real.h"
#include "sg.h"
#include "sockfile.h"

#define DGRAM_TRIES 8	/* names tried when live sockets hold them */

static unsigned dg_seq;

/* The directory for reply files: env (SOCKGATE_DGRAM_DIR), else the one of the server's path. */
static int dgram_dir(const char *env, const struct sg_addr *near, char *d, size_t size)
{
	if (env)
		return snprintf(d, size, "%s", env) < (int)size ? 0 : -1;
	size_t n = strnlen(near->u.un.sun_path, sizeof near->u.un.sun_path);
	if (n >= size)
		return -1;
	memcpy(d, near->u.un.sun_path, n);
	d[n] = 0;
	char *slash = strrchr(d, '/');
	if (slash)
		*(slash == d ? slash + 1 : slash) = 0;
	else
		strcpy(d, ".");
	return 0;
}

/*
 * Bind s where its server can answer it (c records the file). A server at
 * an abstract address is in the program's own network namespace: there an
 * autobound address does, and so for a blackholed socket (near not Unix).
 * Anywhere else a file must be made; when it cannot be, the call fails
 * with bind's errno and one line on stderr, rather than a reply address
 * nobody outside could answer.
 */
int dgram_bind(int s, struct sgconn *c, const struct sg_addr *near)
{
	char d[sizeof near->u.un.sun_path], p[sizeof d + 64];
	const char *env = getenv("SOCKGATE_DGRAM_DIR");
	struct sg_addr a;
	int e = EADDRINUSE;

	if (env && !*env)
		env = NULL;
	if (!env && (!near || near->u.sa.sa_family != AF_UNIX || !near->u.un.sun_path[0])) {
		sa_family_t af = AF_UNIX;
		return REAL(bind)(s, (struct sockaddr *)&af, sizeof af);
	}
	if (dgram_dir(env, near, d, sizeof d) < 0) {
		e = ENAMETOOLONG;
		snprintf(p, sizeof p, "%s", env ? env : near->u.un.sun_path);
	}
	for (int i = 0; e == EADDRINUSE && i < DGRAM_TRIES; i++) {
		unsigned n = __atomic_add_fetch(&dg_seq, 1, __ATOMIC_RELAXED);
		if (snprintf(p, sizeof p, "%s/.sockgate-dgram-%ld-%u", d, (long)getpid(), n) >= (int)sizeof p ||
		    addr_unix(&a, p, 0) < 0) {
			e = ENAMETOOLONG;
			break;
		}
		if (bind_unix_path(s, &a.u.un, a.len) == 0) {
			pthread_mutex_lock(&sg_lock);
			memcpy(c->dgpath, a.u.un.sun_path, sizeof c->dgpath);
			c->dgpid = getpid();
			pthread_mutex_unlock(&sg_lock);
			return 0;
		}
		e = errno;
	}
	sg_msg("no reply address for a datagram socket at %s: %s", p, strerror(e));
	return errno = e, -1;
}

/*
 * At exit(): remove the reply files of this process's sockets still open
 * (a forked child's copies are its parent's). The lock is tried a bounded
 * number of times: exit() called where this thread holds it (a signal
 * handler) must not hang, and leaves the files to the next run.
 */
__attribute__((destructor)) static void dgram_atexit(void)
{
	int locked = 0;
	for (int i = 0; i < 100 && !(locked = pthread_mutex_trylock(&sg_lock) == 0); i++)
		sched_yield();
	if (!locked)
		return;
	pid_t self = getpid();
	for (unsigned k = 0; k < CHUNK_N; k++) {
		struct slot *sl = sg_chunks[k];
		if (!sl)
			continue;
		for (unsigned i = 0; i < SLOT_N; i++) {
			struct sgconn *c = sl[i].conn;
			if (c && c->dgpath[0] && c->dgpid == self) {
				REAL(unlink)(c->dgpath);
				c->dgpath[0] = 0;
			}
		}
	}
	pthread_mutex_unlock(&sg_lock);
}
