/*
 * Internal to libsockgate.so: the per-fd state table, the loaded rules, and
 * what the wrappers share. See libsockgate(7) for the behaviour.
 *
 * The fd table is two-level (chunks of 1024 slots, allocated on first use
 * and never freed), so a wrapper finds "is this fd one of ours?" with two
 * loads and no lock. Each slot holds atomic flags read by the fast paths
 * and a pointer to the connection record, which is read and changed only
 * under the one global mutex (held for short, non-blocking sections; taken
 * around fork() so the child starts with it free).
 */
#ifndef SOCKGATE_SG_H
#define SOCKGATE_SG_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/un.h>
#include <netdb.h>

#include "fakeopt.h"
#include "rules.h"
#include "urtfile.h"

/* musl names only the socket timeouts of its time_t (64-bit: the old numbers) */
#ifndef SO_RCVTIMEO_OLD
#define SO_RCVTIMEO_OLD SO_RCVTIMEO
#define SO_SNDTIMEO_OLD SO_SNDTIMEO
#endif
#ifndef SO_SNDTIMEO_NEW
#define SO_SNDTIMEO_NEW 67	/* asm-generic/socket.h; x86_64 and aarch64 alike */
#endif

#define EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* slot flags */
#define SF_SWAPPED	0x1u	/* the fd is a redirected socket (slot.conn valid) */
#define SF_OUT		0x2u	/* writes need us: header pending, connect pending or failed */
#define SF_IN		0x4u	/* receives need us: datagram peer addresses */
#define SF_EPOLL	0x8u	/* the fd is an epoll instance */
#define SF_HSTREAM	0x10u	/* hint: socket() made it an inet stream socket */
#define SF_HDGRAM	0x20u	/* hint: socket() made it an inet datagram socket */
#define SF_ACCEPT	0x40u	/* accept() takes passed sockets (a receiver) */
#define SF_EPREG	0x80u	/* hint: the fd was added to an epoll instance */
#define SF_HINTS	(SF_HSTREAM | SF_HDGRAM)
#define SF_STATE	(SF_SWAPPED | SF_OUT | SF_IN | SF_EPOLL | SF_ACCEPT)

/* connection states */
enum { ST_CONNECTED = 1, ST_PENDING, ST_FAILED, ST_BLACKHOLE, ST_DGRAM, ST_BOUND, ST_RECEIVER, ST_UDPSRV };


struct sgconn {
	int refs;			/* slots pointing here (dup) + helper thread */
	int family, type;		/* what the program created */
	int state;
	int err;			/* ST_FAILED: what SO_ERROR reports (once) */
	int cancelled;			/* pending: every fd closed */
	ino_t ino;			/* inode of the file behind the fd (placeholder while pending) */
	uint32_t rflags;		/* RULE_F_* of the rule */
	int action;
	struct sockaddr_storage peer;	/* the destination the program asked for */
	socklen_t peerlen;
	struct sockaddr_storage local;	/* what getsockname() answers */
	socklen_t locallen;
	int local_known;
	unsigned char *hdr;		/* PROXY header bytes not yet sent */
	size_t hdrlen, hdroff;
	int pw;				/* pending: write end of the placeholder pipe */
	int s;				/* pending: the helper's socket (options set meanwhile go there) */
	struct timeval sndtimeo;	/* pending: the program's SO_SNDTIMEO, restored at the end */
	struct fakeopt opts;		/* TCP, IP and IPv6 options set, read back (core/fakeopt) */
	/* datagrams: unix path a destination went to -> that destination (allocated on first use) */
	struct dgmap *map;
	unsigned char *dghdr;		/* datagrams: header put before each one */
	size_t dghdrlen;
	char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];	/* receiver: where passed sockets come */
	uint32_t mode;			/* receiver: socket file mode, 0 = as created */
	uid_t sender_uid;		/* fdpass receiver: who else may pass sockets (sender=) */
	gid_t sender_gid;
	dev_t fdev;			/* listener: the socket file we made, removed when */
	ino_t fino;			/*   no process holds the socket (0: none, noremove) */
	char dgpath[sizeof ((struct sockaddr_un *)0)->sun_path];	/* datagrams: our bound file */
	pid_t dgpid;			/* who bound it (a forked child must not remove it) */
	int ctlfam;			/* listener: a control file made it this family's socket (0: none) */
	/*
	 * Dual-stack receivers (in.c): the first of two binds of one process
	 * to one rule's socket file owns the file; qfd is the sending end of
	 * the queue behind the second (of family qfam), -1 when there is none;
	 * paired is set on both.
	 */
	int qfd, qfam;
	int paired;
	struct usrv *srv;		/* ST_UDPSRV: the senders a UDP daemon answers (in_udp.c) */
	/*
	 * fdpass receiver: passed sockets come as datagrams on the fd itself
	 * (the queue of a pair's second, or a datagram receiver adopted across
	 * exec) rather than one per connection to a listening stream socket.
	 */
	int dgq;
};

struct slot {
	unsigned flags;			/* SF_*, atomic */
	struct sgconn *conn;		/* under sg_lock */
};

#define SLOT_BITS 10
#define SLOT_N (1u << SLOT_BITS)
#define CHUNK_N 1024u			/* fds up to 1M */

extern struct slot *sg_chunks[CHUNK_N];
extern pthread_mutex_t sg_lock;

static inline unsigned fd_flags(int fd)
{
	unsigned c = (unsigned)fd >> SLOT_BITS;
	if (unlikely(c >= CHUNK_N))
		return 0;
	struct slot *s = __atomic_load_n(&sg_chunks[c], __ATOMIC_ACQUIRE);
	if (likely(!s))
		return 0;
	return __atomic_load_n(&s[fd & (SLOT_N - 1)].flags, __ATOMIC_ACQUIRE);
}

/* the fd table and the records (fdtab.c) */
/* Under sg_lock: the slot of fd, allocated when alloc is set (NULL: ENOMEM / out of range). */
struct slot *slot_get(int fd, int alloc);
/*
 * Under sg_lock: the first fd from from on that has a record, its slot in
 * *s; -1 when there is none. A walk over every record:
 * for (fd = slot_next(0, &s); fd >= 0; fd = slot_next(fd + 1, &s)).
 */
int slot_next(int from, struct slot **s);
/* Under sg_lock: attach conn to fd (takes a reference) with flags. */
int slot_set(int fd, struct sgconn *c, unsigned flags);
/* Under sg_lock: forget fd; drops the reference. */
void slot_clear(int fd);
/* Under sg_lock: the conn of fd if the fd still is the file we swapped in, else clears the slot. */
struct sgconn *slot_conn(int fd);
void slot_setflags(int fd, unsigned set, unsigned clear);
/*
 * Without the lock: set the type hint of a fd socket() just made, or clear
 * it (and SF_EPREG) when close() ends it; slot_epreg marks an epoll_ctl ADD.
 */
void slot_hint(int fd, unsigned hint);
void slot_epreg(int fd);
struct sgconn *conn_new(int family, int type);
struct sgconn *conn_listener(int family, const struct rule *r, int action, int state, const void *sa,
			     socklen_t len);
void conn_put(struct sgconn *c);
int sg_swap_in(int fd, int newfd, struct sgconn *c, unsigned flags);
void sg_swap_all(struct sgconn *c, int newfd, unsigned out);
void sg_forget(int fd);
/* close() of an fd with a record: the record dropped, then the fd; its socket file removed if that was the last holder */
int sg_close(int fd);
/*
 * newfd (a passed listening socket) takes fd's place for good, with fd's
 * file status flags, close-on-exec and epoll registrations; fd's record
 * dropped, its socket file removed if that was its last holder. Closes
 * newfd.
 */
int sg_take_over(int fd, int newfd);
void sg_copied(int fd, int newfd);

/* configuration (conf.c) */
struct sgconf {
	struct ruleset *rs[8];
	int nrs;
	int broken;			/* the rules did not load: leave sockets alone */
	int strict;			/* ...but with SOCKGATE_STRICT=1 refuse inet connects */
	int block_inet6;		/* UNSOCK_BLOCK_INET6 */
	unsigned hacks;			/* URELAY_TPROXY_LOCAL_FLAGS */
	int have_connect;		/* some connect rule exists */
	int have_bind;			/* some bind rule exists */
	int have_proxy;			/* some rule asks for a PROXY header */
#define SG_IDX_MAX 64
	struct urt_idx idx[SG_IDX_MAX];	/* URELAY_TPROXY_IDX_FILES */
	size_t nidx;
	int have_resolve;		/* some resolve rule exists */
	int have_icmp;			/* some connect icmp rule exists */
};
#define HACK_SHUT_RD	0x10000u
#define HACK_FASTOPEN	0x20000u
#define HACK_GETSOCKNAME 0x40000u
#define HACK_GAI	0x80000u	/* gai-hack (gaihack.c) */

/*
 * gai-hack's static directory (gaihack.c): the first entry for name among
 * ident[0] (exact) and ident[1] (suffixes, R), "hH" or "lL"; GAIHACK_FOUND
 * with its value in out, GAIHACK_NOTFOUND, or GAIHACK_FAILED (an entry that
 * cannot be read or is half written: the lookup fails with EAI_AGAIN).
 * *localhost is set when the name is localhost or under it.
 */
enum { GAIHACK_FOUND, GAIHACK_NOTFOUND, GAIHACK_FAILED };
int gaihack_find(const char *name, const char ident[2], int *localhost, char *out, size_t size);
/* A name nothing answered, appended to PJTL_GAIHACK_LOGFILE. */
void gaihack_log(const char *name);

extern struct sgconf sg_conf;
void sg_conf_load(void);
extern pthread_once_t sg_conf_once;
static inline const struct sgconf *conf(void)
{
	pthread_once(&sg_conf_once, sg_conf_load);
	return &sg_conf;
}
/* First matching rule over all loaded rulesets, and which ruleset it is in. */
const struct rule *sg_match(int dir, int proto, const struct sockaddr *sa, const struct ruleset **rs);
void sg_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* getaddrinfo memory (gai.c) */
void gai_remember(const char *name, const struct addrinfo *res);
int gai_lookup(const struct sockaddr *sa, char *name, size_t size);
void gai_fork_lock(int lock);

/* names (names.c) */
/* A numeric host as getaddrinfo() takes one (inet_aton's forms, IPv6): no name. */
int names_numeric(const char *s);
/* A nat64 rule's /96 prefix (12 bytes), discovered (RFC 7050) where the rule says so; 0 or -1. */
int names_nat64_prefix(const struct ruleset *rs, const struct rule *r, int may_block, uint8_t pre[12]);

/* epoll registrations carried across a swap (epoll.c) */
struct epreg {
	int epfd;
	uint32_t events;
	uint64_t data;
};
int ep_capture(int fd, ino_t ino, struct epreg *out, int max);
void ep_restore(int fd, const struct epreg *r, int n);
void ep_note(int epfd, int add);

/* socket options carried to a swapped-in socket (sockopt.c) */
void sockopt_carry(int from, int to, int fam, int type);

/* systemd socket activation (systemd.c) */
/* bind() of a socket systemd passed (by a systemd rule, or a Unix path): 0/-1 when handled, else *handled = 0. */
int systemd_bind(int fd, const struct sockaddr *sa, socklen_t len, int *handled);
/* Is path the file of a passed Unix socket the program took? (its unlink() leaves it) */
int systemd_keeps(const char *path);
/*
 * The library's own copies of the passed sockets (systemd.c), which the
 * program's close(), close_range(), closefrom(), dup2() and dup3() leave
 * alone: is fd one (systemd_owns, two loads where there are none); move
 * one out of the way of a dup2() onto it; close_range() around them.
 */
extern int sd_keep_lo, sd_keep_hi;
int systemd_is_copy(int fd);
static inline int systemd_owns(int fd)
{
	return unlikely(fd >= __atomic_load_n(&sd_keep_lo, __ATOMIC_RELAXED) &&
			fd <= __atomic_load_n(&sd_keep_hi, __ATOMIC_RELAXED)) && systemd_is_copy(fd);
}
void systemd_move(int fd);
int systemd_close_range(unsigned first, unsigned last, int flags);

/* connects that complete in a helper thread (pending.c) */
struct sg_addr;
#define CONNECT_TIMEOUT_S 120	/* a pending connect gives up (ETIMEDOUT) like TCP's SYN retries */
/* fc_port >= 0: the socket goes to a Firecracker multiplexer, CONNECT fc_port first (ctl.c) */
int pending_start(int fd, struct sgconn *c, int s, const struct sg_addr *ta, long fc_port);

/* receiving (in.c) */
int in_bind(int fd, const struct sockaddr *sa, socklen_t len, int *handled);
int in_listen(int fd, int backlog, int *handled);
int in_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags);
int in_adopt(int fd);
struct sgconn *accepted_new(const struct sgconn *lc, uint16_t port);
void accepted_set(int nfd, struct sgconn *c);

/*
 * accept() on a proxy-v2/v1 Unix listener (in_proxy.c): a connection whose
 * header is complete (h filled, *got 1 for PROXY addresses), with flags;
 * -1 with EAGAIN (non-blocking, none complete) or ECONNABORTED (bad header).
 */
struct proxy_hdr;
int in_proxy_accept(int fd, ino_t lino, struct proxy_hdr *h, int *got, int flags);

/* UDP daemons under bind rules, and port 0 (in_udp.c) */
/* Is fd a socket of that type and domain? */
int sock_is(int fd, int type, int domain);
/* bind() of a UDP socket to a bind rule's Unix socket: 0/-1 when handled, else *handled = 0. */
int in_udp_bind(int fd, const struct sockaddr *sa, socklen_t len, int *handled);
/*
 * sa (port 0) with a free port the kernel picked, into out, such that the
 * path tmpl gives for it (when not abstract) has no live socket: 0 or -1.
 */
int in_port0(const struct sockaddr *sa, socklen_t len, int type, const char *tmpl, int abstract,
	     struct sockaddr_storage *out);
/* Under sg_lock: the inet address a UDP daemon sees for the Unix sender sa; its length. */
socklen_t in_udp_peer(struct sgconn *c, const struct sockaddr *sa, socklen_t len, struct sockaddr_storage *out);
/* sendto()/sendmsg() of a UDP daemon: a reply to a sender in_udp_peer() showed. */
ssize_t in_udp_send(int fd, const struct msghdr *msg, int flags);

/* control files (ctl.c) */
struct ctlfile;
/* Is the Unix address a control file? 1 (c filled), 0 no, -1 malformed (said once on stderr). */
int ctl_lookup(const struct sockaddr *sa, socklen_t len, struct ctlfile *c);
/* A stream socket for the target, its socket options set (flags: SOCK_NONBLOCK, SOCK_CLOEXEC). */
int ctl_socket(const struct ctlfile *c, int flags);
/* The Firecracker CONNECT/OK exchange; -1 with ECONNREFUSED, ETIMEDOUT or ECANCELED. */
int ctl_fc_handshake(int s, uint32_t port, double timeout, int (*cancel)(void *), void *arg);
/* bind() met a regular file at un: the socket to listen with when it is a control file. */
int ctl_bind(struct sgconn *c, const struct sockaddr *un, socklen_t len);
/* accept() on a listener ctl_bind() made of another family. */
int ctl_accept(int fd, const struct sgconn *lc, struct sockaddr *sa, socklen_t *len, int flags);

/* outgoing (out.c) */
int out_connect(int fd, const struct sockaddr *sa, socklen_t len, int *handled);
ssize_t out_sendmsg(int fd, const struct msghdr *msg, int flags, int *handled);
int out_before_write(int fd);
int out_would_handle(int fd, const struct sockaddr *sa, socklen_t len);
/* the broker action (broker.c); *handled = 0: the socket is not fresh, libc answers */
int out_broker_connect(int fd, const struct sockaddr *sa, socklen_t len, const struct sockaddr *dst,
		       const struct ruleset *rs, const struct rule *r, int domain, int *handled);
void out_dgram_peer(int fd, struct sockaddr *sa, socklen_t *len);
/* socket() of an ICMP socket: a broker's by a connect icmp rule; *handled = 0: libc answers */
int out_broker_socket(int domain, int type, int *handled);

/* A redirected datagram socket's reply address near its server (dgram.c): 0, or -1 said on stderr. */
int dgram_bind(int s, struct sgconn *c, const struct sg_addr *near);

/* small helpers of out.c and pending.c (defined here) */
static inline int unix_errno(int e)
{
	/* a TCP program knows "nobody listens there" as ECONNREFUSED */
	switch (e) {
	case ENOENT:
	case ENOTDIR:
	case ECONNREFUSED:
	case EPROTOTYPE:
	case ENOTSOCK:
		return ECONNREFUSED;
	}
	return e;
}

/* The bytes an iovec array holds: what a blackholed send reports sent. */
static inline ssize_t iov_total(const struct iovec *iov, size_t n)
{
	size_t t = 0;
	for (size_t i = 0; i < n; i++)
		t += iov[i].iov_len;
	return (ssize_t)t;
}

#endif
