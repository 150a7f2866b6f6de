/*
 * systemd socket activation for `bind ... -> systemd [NAME]` rules: the
 * sockets systemd passed (the sd_listen_fds(3) protocol, read without
 * libsystemd) and how the program's fd becomes one of them.
 *
 * When the rules have such a rule and LISTEN_PID is this process, the
 * library takes the activation over with the first socket the program
 * takes (sd_consume).
 *
 * Which passed socket a bind() takes: the one named NAME when the rule
 * names one; else the first not yet taken whose own address is the one
 * the program binds (libdivert's idea: the same port and the same host or
 * either a wildcard, or the same path for a Unix socket), else the next
 * not yet taken of the program's socket type. A Unix bind() is matched
 * by its path only (rules have no Unix addresses), and only when some
 * systemd rule exists.
 *
 * The passed sockets are looked at, and taken, through the library's own
 * copies, made as it loads at a high number (sd_save), because daemons
 * close the descriptors they inherit before they make their own: a close()
 * of 3 must not lose the socket, and the program's own socket that then
 * gets 3 must never pass for it. close(), close_range(), closefrom(),
 * dup2() and dup3() of the program leave the copies alone (systemd_owns).
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "real.h"
#include "sg.h"
#include "sockfile.h"

#ifndef SYS_close_range
#define SYS_close_range 436	/* the same number on every architecture */
#endif

#define SD_FIRST 3
#define SD_MAX 64
#define SD_KEEP_FLOOR 1024	/* the copies go from here, or half the fd limit when that is lower */
static int sd_loaded, sd_n, sd_all, sd_consumed, sd_taken[SD_MAX];
static char *sd_names[SD_MAX];
/* the library's copy of each passed socket (-1: none) and the passed socket's identity */
static int sd_keep[SD_MAX], sd_nsaved;
static dev_t sd_dev[SD_MAX];
static ino_t sd_ino[SD_MAX];
/* the range of sd_keep, read without the lock by close() and the others */
int sd_keep_lo = INT_MAX, sd_keep_hi = -1;
/* its own lock: unlink() (systemd_keeps) is also called where sg_lock is held */
static pthread_mutex_t sd_lock = PTHREAD_MUTEX_INITIALIZER;

static void sd_fork_prepare(void)
{
	pthread_mutex_lock(&sd_lock);
}

static void sd_fork_done(void)
{
	pthread_mutex_unlock(&sd_lock);
}

static int have_systemd_rule(const struct sgconf *cf)
{
	for (int i = 0; i < cf->nrs; i++)
		for (size_t j = 0; j < cf->rs[i]->n; j++)
			if (cf->rs[i]->rule[j].dir == RULE_BIND && cf->rs[i]->rule[j].action == ACT_SYSTEMD)
				return 1;
	return 0;
}

/* Where the copies go: SD_KEEP_FLOOR, or half the soft fd limit when lower, above the passed ones. */
static int keep_floor(int n)
{
	struct rlimit rl;
	long floor = SD_KEEP_FLOOR;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)(rl.rlim_cur / 2) < floor)
		floor = (long)(rl.rlim_cur / 2);
	return floor < SD_FIRST + n ? SD_FIRST + n : (int)floor;
}

static void keep_range(void)
{
	int lo = INT_MAX, hi = -1;
	for (int i = 0; i < sd_nsaved; i++) {
		if (sd_keep[i] >= 0 && sd_keep[i] < lo)
			lo = sd_keep[i];
		if (sd_keep[i] > hi)
			hi = sd_keep[i];
	}
	__atomic_store_n(&sd_keep_lo, lo, __ATOMIC_RELEASE);
	__atomic_store_n(&sd_keep_hi, hi, __ATOMIC_RELEASE);
}

/*
 * As the library loads (before main, one thread), when LISTEN_PID is this
 * process and some rule asks for passed sockets: a copy of each (close on
 * exec, so a program it execs makes its own) and its identity. A copy that
 * cannot be made (no free fd) leaves the passed one to be used as before.
 */
static void sd_save(void)
{
	const char *pid = secure_getenv("LISTEN_PID"), *fds = secure_getenv("LISTEN_FDS");
	int e = errno;

	if (!pid || !fds)
		return;
	int n = sd_listen_count(pid, fds, getpid(), 0x7ffffff0);
	if (n <= 0 || !have_systemd_rule(conf()))
		goto out;
	n = n > SD_MAX ? SD_MAX : n;
	int floor = keep_floor(n);
	for (int i = 0; i < n; i++) {
		struct stat st;
		sd_keep[i] = -1;
		if (fstat(SD_FIRST + i, &st) < 0)
			continue;
		sd_dev[i] = st.st_dev;
		sd_ino[i] = st.st_ino;
		sd_keep[i] = REAL(fcntl)(SD_FIRST + i, F_DUPFD_CLOEXEC, floor);
		if (sd_keep[i] < 0)
			sd_keep[i] = REAL(fcntl)(SD_FIRST + i, F_DUPFD_CLOEXEC, SD_FIRST + n);
	}
	sd_nsaved = n;
	keep_range();
out:
	errno = e;
}

__attribute__((constructor)) static void sd_init(void)
{
	pthread_atfork(sd_fork_prepare, sd_fork_done, sd_fork_done);
	sd_save();
}

/* Is fd the passed socket i still (not closed, its number reused by the program)? */
static int still_passed(int i, int fd)
{
	struct stat st;
	if (i >= sd_nsaved)
		return 1;	/* nothing recorded: as it always was */
	return sd_ino[i] && fstat(fd, &st) == 0 && st.st_dev == sd_dev[i] && st.st_ino == sd_ino[i];
}

/* The fd to reach passed socket i through: the library's copy, else the passed one while it is that; -1. */
static int passed(int i)
{
	if (i < sd_nsaved && sd_keep[i] >= 0)
		return sd_keep[i];
	return still_passed(i, SD_FIRST + i) ? SD_FIRST + i : -1;
}

int systemd_is_copy(int fd)
{
	for (int i = 0; i < sd_nsaved; i++)
		if (__atomic_load_n(&sd_keep[i], __ATOMIC_RELAXED) == fd)
			return 1;
	return 0;
}

/* The program's dup2()/dup3() onto a copy: the copy moves out of its way first. */
void systemd_move(int fd)
{
	int e = errno;
	pthread_mutex_lock(&sd_lock);
	for (int i = 0; i < sd_nsaved; i++) {
		if (sd_keep[i] != fd)
			continue;
		int nfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, keep_floor(sd_nsaved));
		if (nfd < 0)
			nfd = REAL(fcntl)(fd, F_DUPFD_CLOEXEC, SD_FIRST);
		__atomic_store_n(&sd_keep[i], nfd, __ATOMIC_RELEASE);
		keep_range();
		REAL(close)(fd);
	}
	pthread_mutex_unlock(&sd_lock);
	errno = e;
}

/* close_range() without the copies: the range in pieces around them. */
int systemd_close_range(unsigned first, unsigned last, int flags)
{
	int lo = __atomic_load_n(&sd_keep_lo, __ATOMIC_ACQUIRE), hi = __atomic_load_n(&sd_keep_hi, __ATOMIC_ACQUIRE);
	unsigned from = first;

	if (first > last || hi < 0 || last < (unsigned)lo || first > (unsigned)hi)
		return (int)syscall(SYS_close_range, first, last, flags);
	for (unsigned fd = (unsigned)lo > first ? (unsigned)lo : first; fd <= (unsigned)hi && fd <= last; fd++) {
		if (!systemd_is_copy((int)fd))
			continue;
		if (fd > from && syscall(SYS_close_range, from, fd - 1, flags) < 0)
			return -1;
		from = fd + 1;
	}
	if (from <= last && from != 0 && syscall(SYS_close_range, from, last, flags) < 0)
		return -1;
	return 0;
}

/*
 * Under sd_lock, once: the passed sockets, when some rule asks for them.
 * Read at the first bind(), not as the library loads: a wrapper that execs
 * the daemon (a shell, a version manager's shim) keeps its pid, and with
 * it the activation, for the program it runs.
 */
static void sd_load(void)
{
	const char *pid = secure_getenv("LISTEN_PID"), *fds = secure_getenv("LISTEN_FDS");
	int e = errno;

	sd_loaded = 1;
	int n = fds ? sd_listen_count(pid, fds, getpid(), 0x7ffffff0) : -1;
	errno = e;
	if (n <= 0 || !have_systemd_rule(conf()))
		return;
	sd_all = n;
	sd_n = n > SD_MAX ? SD_MAX : (int)n;
	const char *names = secure_getenv("LISTEN_FDNAMES");
	char *copy = names ? strdup(names) : NULL, *save = NULL;
	char *tok = copy ? strtok_r(copy, ":", &save) : NULL;
	for (int i = 0; i < sd_n && tok; i++, tok = strtok_r(NULL, ":", &save))
		sd_names[i] = tok;	/* copy is kept for the life of the process */
}

/*
 * Under sd_lock, at the first socket the program takes: the activation is
 * the library's now. Every passed fd gets FD_CLOEXEC and LISTEN_PID,
 * LISTEN_FDS, LISTEN_FDNAMES leave the environment, so that no child the
 * program runs inherits sockets or variables not its own (as
 * sd_listen_fds(3) with unset_environment does).
 */
static void sd_consume(void)
{
	if (sd_consumed)
		return;
	sd_consumed = 1;
	int e = errno;
	for (int i = 0; i < sd_all; i++) {
		/* not the program's own socket that took the number of a passed one it closed */
		int fl = still_passed(i, SD_FIRST + i) ? REAL(fcntl)(SD_FIRST + i, F_GETFD) : -1;
		if (fl >= 0)
			REAL(fcntl)(SD_FIRST + i, F_SETFD, fl | FD_CLOEXEC);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	errno = e;
}

/* Do two paths name one file (a relative and an absolute path to one socket)? */
static int same_file(const char *a, const char *b)
{
	struct stat x, y;
	int e = errno;
	int same = stat(a, &x) == 0 && stat(b, &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
	errno = e;
	return same;
}

/* Is the passed socket afd bound at the address the program binds (sa)? */
static int same_place(int afd, const struct sockaddr *sa, socklen_t len)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof ss;

	memset(&ss, 0, sizeof ss);
	if (REAL(getsockname)(afd, (struct sockaddr *)&ss, &l) < 0)
		return 0;
	if (sa->sa_family == AF_UNIX || ss.ss_family == AF_UNIX) {
		const struct sockaddr_un *a = (const struct sockaddr_un *)sa, *b = (const struct sockaddr_un *)&ss;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		if (sa->sa_family != ss.ss_family || len <= off || l <= off)
			return 0;
		size_t la = len - off, lb = l - off;
		if (a->sun_path[0]) {	/* a path: up to its NUL; abstract: every byte */
			la = strnlen(a->sun_path, la);
			lb = strnlen(b->sun_path, lb);
		}
		if (la == lb && !memcmp(a->sun_path, b->sun_path, la))
			return 1;
		return a->sun_path[0] && b->sun_path[0] && la < sizeof a->sun_path && lb < sizeof b->sun_path &&
		       same_file(a->sun_path, b->sun_path);
	}
	static const uint8_t any4[16] = { [10] = 0xff, [11] = 0xff };
	static const uint8_t any6[16];
	uint8_t x[16], y[16];
	if (addr_port(sa) <= 0 || addr_port(sa) != addr_port((struct sockaddr *)&ss) || addr_to16(sa, x) < 0 ||
	    addr_to16((struct sockaddr *)&ss, y) < 0)
		return 0;
	return !memcmp(x, y, 16) || !memcmp(x, any4, 16) || !memcmp(x, any6, 16) || !memcmp(y, any4, 16) ||
	       !memcmp(y, any6, 16);
}

/* Can the program's socket of family fam and type become the passed socket afd? */
static int fits(int afd, int fam, int type)
{
	int t = 0, d = 0;
	socklen_t l = sizeof t;
	if (REAL(getsockopt)(afd, SOL_SOCKET, SO_TYPE, &t, &l) < 0 || t != type)
		return 0;
	l = sizeof d;
	if (REAL(getsockopt)(afd, SOL_SOCKET, SO_DOMAIN, &d, &l) < 0)
		return 0;
	if (fam == AF_UNIX)
		return d == AF_UNIX;
	/* an inet program takes an inet socket, or a Unix stream listener (systemd_take) */
	return d == AF_INET || d == AF_INET6 || (d == AF_UNIX && type == SOCK_STREAM);
}

/*
 * The passed fd for the program's bind of sa on a socket of family fam and
 * type: by NAME, by address, by order (see above); marked taken. -1: none.
 */
static int systemd_fd(const char *name, int fam, int type, const struct sockaddr *sa, socklen_t len)
{
	int fd = -1;

	pthread_mutex_lock(&sd_lock);
	if (!sd_loaded)
		sd_load();
	for (int i = 0; i < sd_n && fd < 0 && name; i++)
		if (sd_names[i] && !strcmp(sd_names[i], name))
			fd = i;
	for (int i = 0; i < sd_n && fd < 0 && !name; i++)
		if (!sd_taken[i] && passed(i) >= 0 && fits(passed(i), fam, type) && same_place(passed(i), sa, len))
			fd = i;
	for (int i = 0; i < sd_n && fd < 0 && !name && fam != AF_UNIX; i++)
		if (!sd_taken[i] && passed(i) >= 0 && fits(passed(i), fam, type))
			fd = i;
	int afd = fd < 0 ? -1 : passed(fd);
	if (afd >= 0) {
		sd_taken[fd] = 1;
		sd_consume();
	}
	pthread_mutex_unlock(&sd_lock);
	return afd;
}

/*
 * The program's fd becomes (a copy of) the activated socket, already bound
 * (and listening, for a stream socket). An inet socket, or a Unix one for a
 * Unix program, needs nothing more; a Unix one for an inet program is
 * treated as a `bind -> unix` listener (addresses as described there).
 */
static int systemd_take(int fd, int afd, const struct sockaddr *sa, socklen_t len, const struct rule *r, int domain)
{
	int dom = 0;
	socklen_t l = sizeof dom;
	if (REAL(getsockopt)(afd, SOL_SOCKET, SO_DOMAIN, &dom, &l) < 0)
		return errno = EADDRNOTAVAIL, -1;
	int dup = REAL(fcntl)(afd, F_DUPFD_CLOEXEC, 0);
	if (dup < 0)
		return -1;
	if (dom != AF_UNIX || domain == AF_UNIX) {
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

int systemd_bind(int fd, const struct sockaddr *sa, socklen_t len, int *handled)
{
	*handled = 0;
	if (likely(!conf()->have_bind) || (__atomic_load_n(&sd_loaded, __ATOMIC_RELAXED) && !sd_n) || !sa || len < sizeof(sa_family_t))
		return 0;
	int fam = sa->sa_family, domain = fam, type;
	if (fam != AF_UNIX && fam != AF_INET && fam != AF_INET6)
		return 0;
	if (fam != AF_UNIX && len < (fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)))
		return 0;
	if (sock_is(fd, SOCK_STREAM, fam))
		type = SOCK_STREAM;
	else if (sock_is(fd, SOCK_DGRAM, fam))
		type = SOCK_DGRAM;
	else
		return 0;
	const struct ruleset *rs = NULL;
	const struct rule *r = NULL;
	if (fam != AF_UNIX) {
		r = sg_match(RULE_BIND, type == SOCK_DGRAM ? RULE_UDP : RULE_TCP, sa, &rs);
		if (!r || r->action != ACT_SYSTEMD)
			return 0;
	}
	int afd = systemd_fd(r ? rules_str(rs, r->arg) : NULL, fam, type, sa, len);
	if (afd < 0)
		return 0;	/* no such socket passed: bind as usual */
	*handled = 1;
	return systemd_take(fd, afd, sa, len, r, domain);
}

int systemd_keeps(const char *path)
{
	if (likely(!conf()->have_bind) || (__atomic_load_n(&sd_loaded, __ATOMIC_RELAXED) && !sd_n) || !path ||
	    !*path)
		return 0;
	size_t n = strlen(path);
	int keep = 0;
	pthread_mutex_lock(&sd_lock);
	if (!sd_loaded)
		sd_load();
	for (int i = 0; i < sd_n && !keep; i++) {
		struct sockaddr_un un;
		socklen_t l = sizeof un;
		size_t off = offsetof(struct sockaddr_un, sun_path);
		memset(&un, 0, sizeof un);
		if (passed(i) >= 0 && REAL(getsockname)(passed(i), (struct sockaddr *)&un, &l) == 0 &&
		    un.sun_family == AF_UNIX && l > off && l < sizeof un && un.sun_path[0])
			keep = (strnlen(un.sun_path, l - off) == n && !memcmp(un.sun_path, path, n)) ||
			       same_file(un.sun_path, path);
	}
	pthread_mutex_unlock(&sd_lock);
	return keep;
}
