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
#include "dgmap.h"
#include "real.h"
#include "sg.h"
#include "sockfile.h"

#define DGRAM_TRIES 8	/* names tried when live sockets hold them */

static unsigned dg_seq;

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
	const char *env = secure_getenv("SOCKGATE_DGRAM_DIR");
	struct sg_addr a;
	int e = EADDRINUSE;

	if (env && !*env)
		env = NULL;
	if (!env && (!near || near->u.sa.sa_family != AF_UNIX || !near->u.un.sun_path[0])) {
		sa_family_t af = AF_UNIX;
		return REAL(bind)(s, (struct sockaddr *)&af, sizeof af);
	}
	/* for the message: the file last tried, or where it would have gone */
	char where[sizeof a.u.un.sun_path + 1];
	snprintf(where, sizeof where, "%.*s", (int)sizeof near->u.un.sun_path, env ? env : near->u.un.sun_path);
	for (int i = 0; e == EADDRINUSE && i < DGRAM_TRIES; i++) {
		unsigned n = __atomic_add_fetch(&dg_seq, 1, __ATOMIC_RELAXED);
		if (dgmap_path(env, env ? NULL : &near->u.un, (long)getpid(), n, &a.u.un, &a.len) < 0) {
			e = ENAMETOOLONG;
			break;
		}
		memcpy(where, a.u.un.sun_path, sizeof a.u.un.sun_path);
		where[sizeof a.u.un.sun_path] = 0;
		if (bind_unix_path(s, &a.u.un, a.len) == 0) {
			pthread_mutex_lock(&sg_lock);
			memcpy(c->dgpath, a.u.un.sun_path, sizeof c->dgpath);
			c->dgpid = getpid();
			pthread_mutex_unlock(&sg_lock);
			return 0;
		}
		e = errno;
	}
	sg_msg("no reply address for a datagram socket at %s: %s", where, strerror(e));
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
	struct slot *sl;
	for (int fd = slot_next(0, &sl); fd >= 0; fd = slot_next(fd + 1, &sl)) {
		struct sgconn *c = sl->conn;
		if (c->dgpath[0] && c->dgpid == self) {
			REAL(unlink)(c->dgpath);
			c->dgpath[0] = 0;
		}
	}
	pthread_mutex_unlock(&sg_lock);
}
