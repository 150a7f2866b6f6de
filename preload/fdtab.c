/*
 * The fd state table (see sg.h): which fds are redirected sockets, and the
 * record of each. Records are shared by the fds dup() made of one socket and
 * freed with the last of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"
#include "sg.h"

struct slot *sg_chunks[CHUNK_N];
pthread_mutex_t sg_lock = PTHREAD_MUTEX_INITIALIZER;

/* sg_lock is taken before gai's lock wherever both are held, and so here */
static void fork_prepare(void)
{
	pthread_mutex_lock(&sg_lock);
	gai_fork_lock(1);
}

static void fork_parent(void)
{
	gai_fork_lock(0);
	pthread_mutex_unlock(&sg_lock);
}

static void fork_child(void)
{
	/* Only this thread exists in the child; nobody else holds the locks. */
	gai_fork_lock(0);
	pthread_mutex_unlock(&sg_lock);
}

__attribute__((constructor)) static void fdtab_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

struct slot *slot_get(int fd, int alloc)
{
	if (fd < 0)
		return NULL;
	unsigned c = (unsigned)fd >> SLOT_BITS;
	if (c >= CHUNK_N)
		return NULL;
	struct slot *s = sg_chunks[c];
	if (!s) {
		if (!alloc)
			return NULL;
		s = calloc(SLOT_N, sizeof *s);
		if (!s)
			return NULL;
		__atomic_store_n(&sg_chunks[c], s, __ATOMIC_RELEASE);
	}
	return &s[fd & (SLOT_N - 1)];
}

void conn_put(struct sgconn *c)
{
	if (!c || --c->refs > 0)
		return;
	free(c->hdr);
	free(c->dghdr);
	free(c->map);
	if (c->dgpath[0] && c->dgpid == getpid())
		unlink(c->dgpath);
	if (c->pw >= 0)
		REAL(close)(c->pw);
	free(c);
}

void slot_setflags(int fd, unsigned set, unsigned clear)
{
	struct slot *s = slot_get(fd, 0);
	if (!s)
		return;
	unsigned f = __atomic_load_n(&s->flags, __ATOMIC_RELAXED);
	__atomic_store_n(&s->flags, (f & ~clear) | set, __ATOMIC_RELEASE);
}

int slot_set(int fd, struct sgconn *c, unsigned flags)
{
	struct slot *s = slot_get(fd, 1);
	if (!s) {
		errno = ENOMEM;
		return -1;
	}
	c->refs++;
	struct sgconn *old = s->conn;
	s->conn = c;
	unsigned keep = __atomic_load_n(&s->flags, __ATOMIC_RELAXED) & (SF_EPOLL | SF_HINTS | SF_EPREG);
	__atomic_store_n(&s->flags, keep | flags | SF_SWAPPED, __ATOMIC_RELEASE);
	conn_put(old);
	return 0;
}

void slot_clear(int fd)
{
	struct slot *s = slot_get(fd, 0);
	if (!s)
		return;
	__atomic_store_n(&s->flags, 0, __ATOMIC_RELEASE);
	struct sgconn *c = s->conn;
	s->conn = NULL;
	conn_put(c);
}

static unsigned *flags_word(int fd, int alloc)
{
	unsigned c = (unsigned)fd >> SLOT_BITS;
	if (fd < 0 || c >= CHUNK_N)
		return NULL;
	struct slot *s = __atomic_load_n(&sg_chunks[c], __ATOMIC_ACQUIRE);
	if (!s) {
		if (!alloc)
			return NULL;
		pthread_mutex_lock(&sg_lock);
		s = slot_get(fd, 1);
		pthread_mutex_unlock(&sg_lock);
		if (!s)
			return NULL;
		s -= fd & (SLOT_N - 1);
	}
	return &s[fd & (SLOT_N - 1)].flags;
}

void slot_hint(int fd, unsigned hint)
{
	unsigned *f = flags_word(fd, hint != 0);
	if (!f)
		return;
	__atomic_fetch_and(f, ~(SF_HINTS | SF_EPREG), __ATOMIC_ACQ_REL);
	if (hint)
		__atomic_fetch_or(f, hint, __ATOMIC_ACQ_REL);
}

void slot_epreg(int fd)
{
	unsigned *f = flags_word(fd, 1);
	if (f)
		__atomic_fetch_or(f, SF_EPREG, __ATOMIC_ACQ_REL);
}

struct sgconn *slot_conn(int fd)
{
	struct slot *s = slot_get(fd, 0);
	struct stat st;

	if (!s || !s->conn)
		return NULL;
	/*
	 * The fd may have been closed behind our back (fclose, close_range,
	 * a raw syscall) and its number reused: trust the record only while
	 * the fd still is the file we put there.
	 */
	if (fstat(fd, &st) < 0 || st.st_ino != s->conn->ino) {
		unsigned keep = __atomic_load_n(&s->flags, __ATOMIC_RELAXED) & SF_EPOLL;
		struct sgconn *c = s->conn;
		s->conn = NULL;
		__atomic_store_n(&s->flags, keep, __ATOMIC_RELEASE);
		conn_put(c);
		return NULL;
	}
	return s->conn;
}
