/*
 * The fd state table (see sg.h): which fds are redirected sockets, and the
 * record of each. Records are shared by the fds dup() made of one socket and
 * freed with the last of them. Everything that changes which file is behind
 * a program's fd, or which record an fd has, happens here: a swap (dup3 of
 * our socket onto the program's fd number), a copy (dup), a close.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "real.h"
#include "sg.h"
#include "sockfile.h"

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

/* A new record of a socket of that family and type (NULL: ENOMEM). */
struct sgconn *conn_new(int family, int type)
{
	struct sgconn *c = calloc(1, sizeof *c);
	if (!c) {
		errno = ENOMEM;
		return NULL;
	}
	c->pw = c->s = c->qfd = -1;
	c->family = family;
	c->type = type;
	return c;
}

/* A record of a listener the program sees as a TCP socket bound at sa (NULL: ENOMEM). */
struct sgconn *conn_listener(int family, const struct rule *r, int action, int state, const void *sa,
			     socklen_t len)
{
	struct sgconn *c = conn_new(family, SOCK_STREAM);
	if (!c)
		return NULL;
	c->rflags = r->flags;
	c->action = action;
	c->state = state;
	c->sender_uid = (uid_t)r->sender_uid;
	c->sender_gid = (gid_t)r->sender_gid;
	memcpy(&c->local, sa, len);
	c->locallen = len;
	c->local_known = 1;
	return c;
}

void conn_put(struct sgconn *c)
{
	if (!c || --c->refs > 0)
		return;
	free(c->hdr);
	free(c->dghdr);
	free(c->map);
	free(c->srv);
	if (c->dgpath[0] && c->dgpid == getpid())
		REAL(unlink)(c->dgpath);
	if (c->pw >= 0)
		REAL(close)(c->pw);
	if (c->qfd >= 0)
		REAL(close)(c->qfd);
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

static void set_inode(struct sgconn *c, int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0)
		c->ino = st.st_ino;
}

/*
 * Under sg_lock: put newfd behind fd with fd's file status flags and
 * close-on-exec, moving epoll registrations along. Does not close newfd.
 */
static int put_behind(int fd, int newfd, int fl, int cloexec)
{
	struct stat st;
	struct epreg regs[16];
	int n = 0;

	if ((fd_flags(fd) & SF_EPREG) && fstat(fd, &st) == 0)
		n = ep_capture(fd, st.st_ino, regs, 16);
	if (REAL(dup3)(newfd, fd, cloexec ? O_CLOEXEC : 0) < 0)
		return -1;
	if (fl >= 0)
		REAL(fcntl)(fd, F_SETFL, fl);
	ep_restore(fd, regs, n);
	return 0;
}

/*
 * Swap newfd in for fd and record c with flags; with c NULL, record
 * nothing (a brokered socket: from then on a plain socket of the
 * program's). Closes newfd.
 */
int sg_swap_in(int fd, int newfd, struct sgconn *c, unsigned flags)
{
	int fl = REAL(fcntl)(fd, F_GETFL);
	int fdfl = REAL(fcntl)(fd, F_GETFD);

	pthread_mutex_lock(&sg_lock);
	int r = put_behind(fd, newfd, fl, fdfl >= 0 && (fdfl & FD_CLOEXEC));
	if (r == 0 && c) {
		set_inode(c, fd);
		if (slot_set(fd, c, flags) < 0)
			r = -1;
	}
	pthread_mutex_unlock(&sg_lock);
	int e = errno;
	REAL(close)(newfd);
	errno = e;
	return r;
}

int slot_next(int from, struct slot **s)
{
	for (unsigned fd = from < 0 ? 0 : (unsigned)from; fd >> SLOT_BITS < CHUNK_N; fd++) {
		struct slot *sl = sg_chunks[fd >> SLOT_BITS];
		if (!sl) {
			fd |= SLOT_N - 1;	/* on to the next chunk */
			continue;
		}
		if (sl[fd & (SLOT_N - 1)].conn) {
			*s = &sl[fd & (SLOT_N - 1)];
			return (int)fd;
		}
	}
	return -1;
}

/*
 * Under sg_lock: put newfd behind every fd that holds c and still is c's
 * placeholder (the program may have dup()ed it, or closed it behind our
 * back), with SF_OUT and SF_IN of those fds set to out. c's inode becomes
 * newfd's. Does not close newfd.
 */
void sg_swap_all(struct sgconn *c, int newfd, unsigned out)
{
	ino_t ph = c->ino, nino = 0;
	struct stat st;

	if (fstat(newfd, &st) == 0)
		nino = st.st_ino;
	struct slot *sl;
	for (int fd = slot_next(0, &sl); fd >= 0; fd = slot_next(fd + 1, &sl)) {
		if (sl->conn != c || fstat(fd, &st) < 0 || st.st_ino != ph)
			continue;	/* another's, or closed behind our back */
		int fl = REAL(fcntl)(fd, F_GETFL), fdfl = REAL(fcntl)(fd, F_GETFD);
		if (fl >= 0)
			fl &= ~O_ACCMODE;
		put_behind(fd, newfd, fl, fdfl >= 0 && (fdfl & FD_CLOEXEC));
		unsigned f = __atomic_load_n(&sl->flags, __ATOMIC_RELAXED);
		f = (f & ~(SF_OUT | SF_IN)) | out;
		__atomic_store_n(&sl->flags, f, __ATOMIC_RELEASE);
	}
	c->ino = nino;
}

/* fd is gone (or about to be): drop its record and its epoll instance. */
void sg_forget(int fd)
{
	pthread_mutex_lock(&sg_lock);
	unsigned f = fd_flags(fd);
	if (f & SF_EPOLL)
		ep_note(fd, 0);
	slot_clear(fd);
	pthread_mutex_unlock(&sg_lock);
}

/*
 * A listener's socket file, to look at once an fd of it has been closed:
 * the last holder anywhere (this process, a forked child, a program it was
 * passed to) takes it away; noremove leaves it. Copied out under sg_lock,
 * looked at after the close (sockfile_remove: no more than two syscalls
 * when another holder remains).
 */
struct sockfile_ref {
	struct sockaddr_un un;
	socklen_t len;
	dev_t dev;
	ino_t ino;
};

static int sockfile_ref(const struct sgconn *c, struct sockfile_ref *f)
{
	size_t n;
	if (!c || !c->fino || c->refs != 1 || (n = strlen(c->path)) >= sizeof f->un.sun_path)
		return 0;
	memset(&f->un, 0, sizeof f->un);
	f->un.sun_family = AF_UNIX;
	memcpy(f->un.sun_path, c->path, n);
	f->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	f->dev = c->fdev;
	f->ino = c->fino;
	return 1;
}

int sg_close(int fd)
{
	struct sockfile_ref f;

	pthread_mutex_lock(&sg_lock);
	unsigned fl = fd_flags(fd);
	if (fl & SF_EPOLL)
		ep_note(fd, 0);
	struct sgconn *c = (fl & SF_SWAPPED) ? slot_conn(fd) : NULL;
	int check = c && sockfile_ref(c, &f);
	slot_clear(fd);
	pthread_mutex_unlock(&sg_lock);
	int r = REAL(close)(fd);
	if (check)
		sockfile_remove(&f.un, f.len, f.dev, f.ino);
	return r;
}

int sg_take_over(int fd, int newfd)
{
	struct sockfile_ref f;

	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = (fd_flags(fd) & SF_SWAPPED) ? slot_conn(fd) : NULL;
	int check = c && sockfile_ref(c, &f);
	pthread_mutex_unlock(&sg_lock);
	if (sg_swap_in(fd, newfd, NULL, 0) < 0)
		return -1;
	sg_forget(fd);	/* a plain socket of the program's from now on */
	if (check)
		sockfile_remove(&f.un, f.len, f.dev, f.ino);
	return 0;
}

/* After newfd became a copy of fd (dup, dup2, dup3, F_DUPFD): give it fd's record (or none). */
void sg_copied(int fd, int newfd)
{
	unsigned f = fd_flags(fd);
	if (!((f | fd_flags(newfd)) & SF_STATE)) {
		slot_hint(newfd, f & SF_HINTS);
		return;
	}
	struct sockfile_ref old;
	int check = 0;
	pthread_mutex_lock(&sg_lock);
	f = fd_flags(fd);
	if (fd_flags(newfd)) {
		if (fd_flags(newfd) & SF_EPOLL)
			ep_note(newfd, 0);
		/* newfd's old file is closed already: a listener's socket file is looked at below */
		struct slot *os = slot_get(newfd, 0);
		check = os && os->conn && sockfile_ref(os->conn, &old);
		slot_clear(newfd);
	}
	slot_hint(newfd, f & SF_HINTS);
	if (f & SF_SWAPPED) {
		struct slot *s = slot_get(fd, 0);
		if (s && s->conn)
			slot_set(newfd, s->conn, f & (SF_OUT | SF_IN | SF_ACCEPT));
	}
	if (f & SF_EPOLL) {
		ep_note(newfd, 1);
		if (slot_get(newfd, 1))
			slot_setflags(newfd, SF_EPOLL, 0);
	}
	pthread_mutex_unlock(&sg_lock);
	if (check)
		sockfile_remove(&old.un, old.len, old.dev, old.ino);
}
