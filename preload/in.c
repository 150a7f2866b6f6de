/*
 * The receiving side: a TCP daemon becomes a receiver of sockets accepted
 * elsewhere (sockgate-server(8), HAND-OFF PROTOCOL) when its bind() matches
 * a `bind ... -> fdpass PATH` rule; or listens on a Unix stream socket
 * instead of TCP with `bind ... -> unix PATH` (or abstract NAME).
 *
 * bind() records the address (the daemon may have no network at all) and
 * puts an AF_UNIX socket bound at PATH behind the daemon's fd (a datagram
 * one for fdpass: poll/select/epoll report it readable exactly when a
 * passed socket waits); listen() makes it listen; accept()/accept4() take one passed TCP socket per
 * datagram (SCM_RIGHTS) and return it with the client's address from the
 * metadata record (fdpass.h) and the flags asked for. The passed socket is
 * the real TCP connection: the daemon then talks to the client directly.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <time.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "fdpass.h"
#include "file.h"
#include "proxyv2.h"
#include "real.h"
#include "sg.h"
#include "sockfile.h"

/*
 * Under sg_lock: a listener of this process that a bind rule put at path,
 * for action, of the other family than fam and not yet paired - the first
 * half of a dual-stack daemon's pair of binds (0.0.0.0:P and [::]:P), and
 * its fd in *ofd. NULL when there is none.
 */
static struct sgconn *dual_owner(const char *path, int action, int fam, int *ofd)
{
	struct stat st;
	struct slot *sl;

	for (int fd = slot_next(0, &sl); fd >= 0; fd = slot_next(fd + 1, &sl)) {
		struct sgconn *c = sl->conn;
		if ((c->state != ST_BOUND && c->state != ST_RECEIVER) || c->action != action ||
		    c->family == fam || c->paired || strcmp(c->path, path))
			continue;
		if (fstat(fd, &st) < 0 || st.st_ino != c->ino)
			continue;	/* closed behind our back */
		*ofd = fd;
		return c;
	}
	return NULL;
}

/*
 * The second bind of a dual-stack daemon to the socket file of its first
 * (c->path set, c not yet in the table). A Unix listener is shared: fd
 * becomes a copy of it, with c's family for addresses. A receiver gets a
 * queue of its own (a datagram socket pair); the first one's accept() sends
 * the sockets of this one's family there (in_accept). 1 when fd is not the
 * second of a pair (c untouched); else 0 or -1 with errno, c taken.
 */
static int dual_bind(int fd, struct sgconn *c)
{
	int ofd = -1, nfd = -1, sp[2] = { -1, -1 };

	pthread_mutex_lock(&sg_lock);
	struct sgconn *o = dual_owner(c->path, c->action, c->family, &ofd);
	if (o) {
		if (c->action != ACT_FDPASS)
			nfd = REAL(fcntl)(ofd, F_DUPFD_CLOEXEC, 0);
		else if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sp) == 0) {
			/* what comes through it was checked; it says it came from us */
			fdpass_receiver_setup(sp[0]);
			nfd = sp[0];
			c->dgq = 1;
			o->qfd = sp[1];
			o->qfam = c->family;
		}
		if (nfd >= 0) {
			o->paired = c->paired = 1;
			c->fdev = o->fdev;	/* one socket file for both: whichever closes last removes it */
			c->fino = o->fino;
		}
	}
	pthread_mutex_unlock(&sg_lock);
	if (!o)
		return 1;
	if (nfd < 0 || sg_swap_in(fd, nfd, c, 0) < 0) {
		int e = errno;
		if (!c->refs)
			free(c);
		return errno = e, -1;
	}
	return 0;
}

/* bind(): 0/-1 when handled, else *handled = 0. */
static socklen_t fit(const struct sockaddr_storage *a, int fam, struct sockaddr_storage *out);

/*
 * The peer that connections accepted without a PROXY header report: the
 * rule's source= (unsock's flag address, UNSOCK_ADDR); left empty, the
 * loopback address of the family, port 0 (unix_accept).
 */
static void listener_peer(struct sgconn *c, const struct ruleset *rs, const struct rule *r)
{
	const char *src = rules_str(rs, r->source);
	struct sg_addr a;
	if (src && addr_parse_inet(src, &a) == 0)
		c->peerlen = fit(&a.u.ss, c->family, &c->peer);
}

/*
 * The socket file just made for c, to be removed when the last holder of
 * the listener closes it (fdtab.c); not an abstract name, nor a file a
 * control file pointed to, nor with noremove.
 */
static void file_made(struct sgconn *c, const struct rule *r)
{
	struct stat st;
	if (c->action != ACT_ABSTRACT && !c->ctlfam && !(r->flags & RULE_F_NOREMOVE) && lstat(c->path, &st) == 0 &&
	    S_ISSOCK(st.st_mode)) {
		c->fdev = st.st_dev;
		c->fino = st.st_ino;
	}
}

/*
 * owner= and group= of a rule as ids ((uid_t)-1, (gid_t)-1: leave alone):
 * a number as it is, a name from the program's user database (the entry
 * buffer grows while the lookup says ERANGE: a group with many members is
 * long). 0, or -1 with EINVAL after one line naming the rule and the name.
 */
static int file_ids(const struct ruleset *rs, const struct rule *r, uid_t *uid, gid_t *gid)
{
	const char *o = rules_str(rs, r->owner), *g = rules_str(rs, r->group), *err = NULL;
	int ret = 0;

	*uid = (uid_t)-1;
	*gid = (gid_t)-1;
	if (o && !o[strspn(o, "0123456789")])
		*uid = (uid_t)strtonum(o, 0, UINT32_MAX - 1, &err);
	if (g && !g[strspn(g, "0123456789")])
		*gid = (gid_t)strtonum(g, 0, UINT32_MAX - 1, &err);
	int name_o = o && *uid == (uid_t)-1, name_g = g && *gid == (gid_t)-1;
	for (size_t size = 4096; (name_o || name_g) && size <= (1u << 20); size *= 2) {
		char *buf = malloc(size);
		struct passwd pw, *pp = NULL;
		struct group gr, *gp = NULL;
		int e = 0;
		if (!buf)
			return errno = ENOMEM, -1;
		if (name_o && (e = getpwnam_r(o, &pw, buf, size, &pp)) == 0) {
			name_o = 0;
			if (!pp)
				ret = -1, sg_msg("rule %u: owner=%s: no such user (bind fails)", r->line, o);
			else
				*uid = pp->pw_uid;
		}
		if (!e && name_g && (e = getgrnam_r(g, &gr, buf, size, &gp)) == 0) {
			name_g = 0;
			if (!gp)
				ret = -1, sg_msg("rule %u: group=%s: no such group (bind fails)", r->line, g);
			else
				*gid = gp->gr_gid;
		}
		free(buf);
		if (e && e != ERANGE) {
			sg_msg("rule %u: unable to look up owner=%s group=%s: %s (bind fails)", r->line, o ? o : "-",
			       g ? g : "-", strerror(e));
			return errno = EINVAL, -1;
		}
	}
	if (name_o || name_g)
		return errno = EINVAL, -1;
	return ret < 0 ? (errno = EINVAL, -1) : 0;
}

int in_bind(int fd, const struct sockaddr *sa, socklen_t len, int *handled)
{
	*handled = 0;
	if (!sa || len < sizeof(sa_family_t) || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return 0;
	if (len < (sa->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)))
		return 0;
	const struct sgconf *cf = conf();
	if (!cf->have_bind)
		return 0;
	const struct ruleset *rs;
	const struct rule *r = sg_match(RULE_BIND, RULE_TCP, sa, &rs);
	if (!r || (r->action != ACT_FDPASS && r->action != ACT_UNIX && r->action != ACT_ABSTRACT))
		return 0;
	int domain = sa->sa_family;
	if (!sock_is(fd, SOCK_STREAM, domain))
		return 0;
	*handled = 1;

	struct sockaddr_storage p0;	/* port 0: a free one (in_udp.c) */
	if (addr_port(sa) == 0) {
		if (in_port0(sa, len, SOCK_STREAM, rules_str(rs, r->arg), r->action == ACT_ABSTRACT, &p0) < 0)
			return -1;
		sa = (const struct sockaddr *)&p0;
	}
	struct sgconn *c = conn_listener(domain, r, r->action, ST_BOUND, sa, len);
	if (!c)
		return -1;
	listener_peer(c, rs, r);
	c->mode = r->mode;
	const char *tmpl = rules_str(rs, r->arg);
	struct sg_addr a;
	/*
	 * An fdpass receiver listens too: sockgate-server connects once per
	 * passed socket (HAND-OFF PROTOCOL), so the queue is the listen
	 * backlog, not a datagram queue of net.unix.max_dgram_qlen.
	 */
	int s = -1, d = 1;
	if (!tmpl || rules_expand(tmpl, sa, c->path, sizeof c->path) < 0 ||
	    (d = dual_bind(fd, c)) <= 0 || addr_unix(&a, c->path, r->action == ACT_ABSTRACT) < 0 ||
	    (s = REAL(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		if (d <= 0)
			return d;	/* the second of a dual-stack pair: done (or failed) */
		int e = errno;
		free(c);
		return errno = e, -1;
	}
	/*
	 * The Unix socket is bound now, not at listen(): so the descriptor says
	 * by itself what it is (its path), to a program it is passed to before
	 * listen() (node's cluster workers) or across execve() (in_adopt).
	 */
	uid_t uid;
	gid_t gid;
	if (file_ids(rs, r, &uid, &gid) < 0) {
		int e = errno;
		REAL(close)(s);
		free(c);
		return errno = e, -1;
	}
	/* a stale file goes, a live one stays; never more than mode=, owner=, group= grant */
	if (bind_unix_path_owned(s, &a.u.un, a.len, c->mode ? (long)c->mode : -1, uid, gid) < 0) {
		int e = errno;
		REAL(close)(s);
		if (e == EPERM)
			sg_msg("rule %u: unable to give %s owner=%s group=%s: %s (bind fails)", r->line, c->path,
			       rules_str(rs, r->owner) ? rules_str(rs, r->owner) : "-",
			       rules_str(rs, r->group) ? rules_str(rs, r->group) : "-", strerror(e));
		/* a regular file there may be a control file naming where to listen (ctl.c) */
		s = e == EADDRINUSE ? ctl_bind(c, &a.u.sa, a.len) : (errno = e, -1);
		if (s < 0) {
			e = errno;
			free(c);
			return errno = e, -1;
		}
	}
	file_made(c, r);
	if (r->action == ACT_FDPASS)
		fdpass_receiver_setup(s);	/* senders named in each message (take_conn) */
	if (sg_swap_in(fd, s, c, 0) < 0) {
		int e = errno;
		if (!c->refs)
			free(c);
		return errno = e, -1;
	}
	return 0;
}

/*
 * The address a bind rule stands for, in family fam: the rule's own address
 * when it names one host (else the wildcard), its port when it names one
 * (else 0). 0 when the rule's address is of the other family.
 */
static socklen_t rule_addr(const struct rule *r, int fam, struct sockaddr_storage *ss, int *exact_addr,
			   int *exact_port)
{
	int v4 = addr_is_v4mapped(r->addr.addr) && r->addr.plen >= 96;
	memset(ss, 0, sizeof *ss);
	*exact_addr = r->addr.plen == 128;
	*exact_port = r->port_lo == r->port_hi;
	uint16_t port = htons(*exact_port ? r->port_lo : 0);
	if (r->addr.plen && (v4 != (fam == AF_INET)))
		return 0;
	if (fam == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		if (*exact_addr)
			memcpy(&s4->sin_addr, r->addr.addr + 12, 4);
		return sizeof *s4;
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = port;
	if (*exact_addr)
		memcpy(&s6->sin6_addr, r->addr.addr, 16);
	return sizeof *s6;
}

/*
 * A Unix socket this process holds with no record: inherited across
 * execve() or received with SCM_RIGHTS from a process that made it a
 * redirected listener (records live in process memory). When it is bound
 * where a bind rule puts its sockets (the path the rule's template gives
 * for the rule's own address), make the record again from that rule, so
 * that getsockname(), listen() and accept() work as in the process that
 * made it. The address answered is the rule's: its host or the wildcard,
 * its port or 0; the family IPv6 only when the rule names an IPv6 address.
 * Returns 1 when adopted.
 */
int in_adopt(int fd)
{
	const struct sgconf *cf = conf();
	struct sockaddr_un un;
	socklen_t ul = sizeof un;
	int type = 0;
	socklen_t tl = sizeof type;

	if (!cf->have_bind || fd_flags(fd) & SF_SWAPPED)
		return 0;
	memset(&un, 0, sizeof un);
	if (REAL(getsockname)(fd, (struct sockaddr *)&un, &ul) < 0 || un.sun_family != AF_UNIX ||
	    ul <= offsetof(struct sockaddr_un, sun_path) + 1 ||
	    REAL(getsockopt)(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
		return 0;
	if (type == SOCK_STREAM) {
		/* a listener, or bound and not yet listening; not a connection it accepted */
		int acc = 0;
		socklen_t al = sizeof acc;
		struct sockaddr_un pu;
		socklen_t pl = sizeof pu;
		if (REAL(getsockopt)(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 ||
		    (!acc && REAL(getpeername)(fd, (struct sockaddr *)&pu, &pl) == 0))
			return 0;
	}
	size_t plen = ul - offsetof(struct sockaddr_un, sun_path);
	int abstract = un.sun_path[0] == 0;
	if (!abstract)
		plen = strnlen(un.sun_path, plen);

	for (int i = 0; i < cf->nrs; i++) {
		const struct ruleset *rs = cf->rs[i];
		for (size_t j = 0; j < rs->n; j++) {
			const struct rule *r = &rs->rule[j];
			if (r->dir != RULE_BIND || !(r->proto & RULE_TCP) ||
			    (r->action == ACT_FDPASS ? type != SOCK_STREAM && type != SOCK_DGRAM
			     : r->action == ACT_UNIX || r->action == ACT_ABSTRACT ? type != SOCK_STREAM : 1) ||
			    (r->action == ACT_ABSTRACT) != abstract)
				continue;
			const char *tmpl = rules_str(rs, r->arg);
			if (!tmpl)
				continue;
			for (int fam = AF_INET; fam; fam = fam == AF_INET ? AF_INET6 : 0) {
				struct sockaddr_storage ss;
				int ea, ep;
				socklen_t sl = rule_addr(r, fam, &ss, &ea, &ep);
				char path[sizeof un.sun_path + 1];
				if (!sl || (!ea && strstr(tmpl, "%a")) || (!ep && strstr(tmpl, "%p")))
					continue;
				int n = rules_expand(tmpl, (struct sockaddr *)&ss, path, sizeof path);
				if (n < 0)
					continue;
				/* an abstract rule names the socket without its leading NUL */
				const char *have = abstract ? un.sun_path + 1 : un.sun_path;
				size_t hl = abstract ? plen - 1 : plen;
				if ((size_t)n != hl || memcmp(path, have, hl))
					continue;
				struct sgconn *c = conn_listener(fam, r, r->action, ST_RECEIVER, &ss, sl);
				if (!c)
					return 0;
				listener_peer(c, rs, r);
				memcpy(c->path, path, (size_t)n + 1);
				if (!abstract)
					file_made(c, r);	/* a program it was passed to may be the last holder */
				struct stat st;
				pthread_mutex_lock(&sg_lock);
				int ok = 0;
				if (!(fd_flags(fd) & SF_SWAPPED) && fstat(fd, &st) == 0) {
					c->ino = st.st_ino;
					if (r->action == ACT_FDPASS && type == SOCK_DGRAM)
						c->dgq = 1;	/* an older library's datagram receiver */
					if (r->action == ACT_FDPASS)
						fdpass_receiver_setup(fd);	/* senders named from now on */
					ok = slot_set(fd, c, SF_ACCEPT) == 0;
				}
				if (!ok)
					free(c);
				pthread_mutex_unlock(&sg_lock);
				return ok;
			}
		}
	}
	return 0;
}

/* listen() on a fd bind() recorded: become a receiver, or a Unix listener. */
int in_listen(int fd, int backlog, int *handled)
{
	*handled = 0;
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	int st = c ? c->state : 0;
	if (c)
		c->refs++;
	pthread_mutex_unlock(&sg_lock);
	if (!c)
		return 0;
	*handled = 1;
	int ret = 0;
	if (st == ST_BOUND) {
		/* the Unix socket is bound already (in_bind) */
		if (!(c->action == ACT_FDPASS && c->dgq) && REAL(listen)(fd, backlog) < 0) {
			ret = -1;
			goto out;
		}
		pthread_mutex_lock(&sg_lock);
		c->state = ST_RECEIVER;
		slot_setflags(fd, SF_ACCEPT, 0);
		pthread_mutex_unlock(&sg_lock);
	} else if (st == ST_RECEIVER) {
		if (!(c->action == ACT_FDPASS && c->dgq))
			ret = REAL(listen)(fd, backlog);	/* a new backlog */
	} else {
		ret = REAL(listen)(fd, 0) < 0 ? -1 : 0;	/* a redirected client socket: as the kernel says */
		if (ret == 0) {
			errno = EINVAL;
			ret = -1;
		}
	}
out:;
	int e = errno;
	pthread_mutex_lock(&sg_lock);
	conn_put(c);
	pthread_mutex_unlock(&sg_lock);
	errno = e;
	return ret;
}

/* Convert an inet address to the family of the program's socket where it can be. */
static void as_family(struct sockaddr_storage *ss, socklen_t *len, int fam)
{
	int e = errno;
	if (addr_to_family(ss, len, fam) < 0)
		errno = e;	/* not inet: left as it is, and so is the caller's errno */
}

/*
 * The record of an accepted socket s that the program sees with other
 * addresses than its own (c, filled in): put in the table (or dropped when
 * that fails: the socket still works). The peer address and its length.
 */
static socklen_t record_accepted(int s, struct sgconn *c, struct sockaddr_storage *peer)
{
	struct stat st;
	*peer = c->peer;
	socklen_t pl = c->peerlen;
	pthread_mutex_lock(&sg_lock);
	if (fstat(s, &st) == 0)
		c->ino = st.st_ino;
	if (slot_set(s, c, 0) < 0)
		free(c);
	pthread_mutex_unlock(&sg_lock);
	return pl;
}

/* An inet address of h in the program's family, or 0. */
static socklen_t fit(const struct sockaddr_storage *a, int fam, struct sockaddr_storage *out)
{
	socklen_t l = sizeof *out;
	int e = errno;
	*out = *a;
	if (addr_to_family(out, &l, fam) < 0) {
		memset(out, 0, sizeof *out);
		errno = e;
		return 0;
	}
	return l;
}

/*
 * The record of a connection accepted on the listener lc for a TCP
 * program: its own address the listener's, its peer the loopback address
 * of the listener's family with port (the peer has no inet address of its
 * own). NULL when out of memory.
 */
struct sgconn *accepted_new(const struct sgconn *lc, uint16_t port)
{
	struct sgconn *c = conn_new(lc->family, SOCK_STREAM);
	if (!c)
		return NULL;
	c->state = ST_CONNECTED;
	c->rflags = lc->rflags;
	c->action = lc->action;
	c->local = lc->local;
	c->locallen = lc->locallen;
	c->local_known = 1;
	if (lc->peerlen) {
		c->peer = lc->peer;	/* see listener_peer */
		c->peerlen = lc->peerlen;
	} else if (c->family == AF_INET6) {
		struct sockaddr_in6 *p = (struct sockaddr_in6 *)&c->peer;
		p->sin6_family = AF_INET6;
		p->sin6_addr = in6addr_loopback;
		p->sin6_port = htons(port);
		c->peerlen = sizeof *p;
	} else {
		struct sockaddr_in *p = (struct sockaddr_in *)&c->peer;
		p->sin_family = AF_INET;
		p->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		p->sin_port = htons(port);
		c->peerlen = sizeof *p;
	}
	return c;
}

/* Attach the record to the accepted fd (dropped when the table has no room). */
void accepted_set(int nfd, struct sgconn *c)
{
	struct stat st;
	pthread_mutex_lock(&sg_lock);
	if (fstat(nfd, &st) == 0)
		c->ino = st.st_ino;
	if (slot_set(nfd, c, 0) < 0)
		free(c);
	pthread_mutex_unlock(&sg_lock);
}

/*
 * accept() on a Unix listener made for a TCP program: the connection is an
 * AF_UNIX socket that answers getsockname() with the bound address and
 * getpeername() with the loopback address of the family, port 0 (the Unix
 * peer has no inet address; a rule's source= names another) - or, when the
 * rule has proxy-v2 (or v1), with
 * the addresses of the PROXY header the client sent first (in_proxy.c).
 */
static int unix_accept(int fd, const struct sgconn *lc, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct proxy_hdr h;
	int got = 0;
	int nfd;

	if (lc->rflags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1))
		nfd = in_proxy_accept(fd, lc->ino, &h, &got, flags);	/* only once its header is complete */
	else
		nfd = REAL(accept4)(fd, NULL, NULL, flags);
	if (nfd < 0)
		return -1;
	struct sgconn *c = accepted_new(lc, 0);
	if (!c) {
		REAL(close)(nfd);
		return errno = ENOMEM, -1;
	}
	if (got > 0) {
		struct sockaddr_storage a;
		socklen_t l;
		if ((l = fit(&h.src, c->family, &a))) {
			c->peer = a;
			c->peerlen = l;
		}
		if ((l = fit(&h.dst, c->family, &a))) {
			c->local = a;
			c->locallen = l;
		}
	}
	struct sockaddr_storage peer;
	socklen_t pl = record_accepted(nfd, c, &peer);
	if (sa && len) {
		memcpy(sa, &peer, pl < *len ? pl : *len);
		*len = pl;
	}
	return nfd;
}

/* Close a passed fd the program must not see, and say why. */
static void refuse(int nfd, const struct ucred *cr, const struct sgconn *lc, const char *why)
{
	int e = errno;
	sg_msg("%s: refused a passed fd from pid %ld uid %ld gid %ld: %s", lc->path, (long)cr->pid,
	       cr->uid == (uid_t)-1 ? -1L : (long)cr->uid, cr->gid == (gid_t)-1 ? -1L : (long)cr->gid, why);
	REAL(close)(nfd);
	errno = e;
}

/*
 * A passed fd the program must not see: not a TCP socket, or from a
 * sender who is not root, us, or the rule's sender=. Closed and logged.
 * *dom: the socket's family, when it is one the program may see.
 */
static int refused(int nfd, const struct ucred *cr, const struct sgconn *lc, int *dom)
{
	int e = errno;
	const char *why = NULL;
	if ((*dom = fdpass_fd_check(nfd, SOCK_STREAM, FDPASS_FAM_INET | FDPASS_FAM_INET6)) < 0)
		why = errno == ENOTSOCK ? "not a socket" : errno == EPROTOTYPE ? "not a stream socket" :
		      "not an inet socket";
	else if (!fdpass_sender_ok(cr, lc->sender_uid, lc->sender_gid))
		why = "a sender not allowed (sender= on the rule allows more)";
	if (why)
		refuse(nfd, cr, lc, why);
	errno = e;
	return why != NULL;
}

/* The line SOCKGATE_STANDIN_LOG gets for an IPv6 client shown to an IPv4 program as 192.0.0.8. */
static void standin_log(int s, const char *real, int port)
{
	const char *f = secure_getenv("SOCKGATE_STANDIN_LOG");
	if (!f || !*f)
		return;
	int lfd = open(f, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (lfd < 0)
		return;
	char line[ADDR_STRLEN + 64];
	int n = snprintf(line, sizeof line, "pid %ld fd %d: %s as 192.0.0.8:%d\n", (long)getpid(), s, real, port);
	ssize_t w = REAL(write)(lfd, line, (size_t)n);
	(void)w;
	REAL(close)(lfd);
}

/*
 * The family of a passed connection by its client's address (from the
 * metadata record, else the socket): AF_INET for IPv4 and IPv4-mapped
 * clients (a dual-stack server passes those on AF_INET6 sockets).
 */
static int conn_family(const unsigned char *meta, size_t n, int s)
{
	struct fdpass_meta md;
	struct sockaddr_storage peer;
	socklen_t pl = sizeof peer;

	if (fdpass_meta_decode(meta, n, &md) == 0 && md.remote.ss_family != AF_UNSPEC) {
		peer = md.remote;
		pl = md.remote_len;
	} else if (REAL(getpeername)(s, (struct sockaddr *)&peer, &pl) < 0) {
		return AF_UNSPEC;
	}
	addr_unmap(&peer, &pl);
	return peer.ss_family;
}

/* Send a passed socket with its record on to the queue q of the other receiver of a pair; s is closed. */
static void sort_on(int q, const unsigned char *meta, size_t n, int s)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cb;
	struct iovec iov = { (void *)meta, n };
	struct msghdr m;
	int e = errno;

	memset(&m, 0, sizeof m);
	memset(&cb, 0, sizeof cb);
	m.msg_iov = &iov;
	m.msg_iovlen = 1;
	m.msg_control = cb.buf;
	m.msg_controllen = sizeof cb.buf;
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	h->cmsg_level = SOL_SOCKET;
	h->cmsg_type = SCM_RIGHTS;
	h->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(h), &s, sizeof s);
	/* a socket pair's queue is bounded by its buffer only, not by max_dgram_qlen */
	if (REAL(sendmsg)(q, &m, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		sg_msg("a connection for the other family's listener is dropped: %s", strerror(errno));
	REAL(close)(s);
	errno = e;
}

#define STANDIN_V4 0xc0000008u	/* 192.0.0.8, the IPv4 dummy address (RFC 7600) */

/*
 * A passed IPv6 socket that an AF_INET program accepts gets a record, so
 * that accept(), getpeername() and getsockname() answer IPv4 addresses: an
 * IPv4-mapped one as the IPv4 address it stands for, any other as the
 * stand-in 192.0.0.8 with the client's port (the real one goes to the file
 * SOCKGATE_STANDIN_LOG names). md->remote becomes the peer; its length.
 */
static socklen_t as_v4(int s, const struct sgconn *lc, struct fdpass_meta *md)
{
	struct sgconn *c = conn_new(AF_INET, SOCK_STREAM);
	if (!c)
		return 0;
	c->state = ST_CONNECTED;
	c->action = lc->action;
	c->local = lc->local;
	c->locallen = lc->locallen;
	c->local_known = 1;
	c->peerlen = md->remote_len;
	c->peer = md->remote;
	int e = errno;
	if (addr_to_family(&c->peer, &c->peerlen, AF_INET) < 0) {
		struct sockaddr_in *p = (struct sockaddr_in *)&c->peer;
		char real[ADDR_STRLEN];
		if (addr_format((struct sockaddr *)&md->remote, md->remote_len, real, sizeof real) < 0)
			snprintf(real, sizeof real, "?");
		memset(&c->peer, 0, sizeof c->peer);
		p->sin_family = AF_INET;
		p->sin_port = ((struct sockaddr_in6 *)&md->remote)->sin6_port;
		p->sin_addr.s_addr = htonl(STANDIN_V4);
		c->peerlen = sizeof *p;
		standin_log(s, real, addr_port((struct sockaddr *)&c->peer));
	}
	struct sockaddr_storage l = md->local;
	socklen_t ll = md->local_len;
	if (l.ss_family != AF_UNSPEC && addr_to_family(&l, &ll, AF_INET) == 0) {
		c->local = l;
		c->locallen = ll;
	}
	errno = e;
	return record_accepted(s, c, &md->remote);
}

/*
 * One hand-off from a listening fdpass receiver: accept the sender's
 * connection, read its one message into m (waiting a little for it: the
 * sender writes it right after connect()) and its fds into fds (*nfds of
 * room, fdpass_parse), the sender into cr, close it. nowait: the caller
 * has had one already and must not block now. -1 with errno as accept()
 * says it (EAGAIN, EINTR, ...); otherwise the message's length, 0 with
 * no fd when the connection brought none.
 */
static ssize_t take_conn(int fd, const struct sgconn *lc, struct msghdr *m, int rflags, int nowait, int *fds,
			 size_t *nfds, struct ucred *cr)
{
	if (nowait) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 0) <= 0)
			return errno = EAGAIN, -1;
	}
	int c = REAL(accept4)(fd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0)
		return -1;
	int e = errno;
	struct pollfd pf = { .fd = c, .events = POLLIN };
	ssize_t n = REAL(recvmsg)(c, m, rflags | MSG_DONTWAIT);	/* most often there already */
	if (n < 0 && errno == EAGAIN) {
		if (poll(&pf, 1, FDPASS_RECORD_WAIT_MS) > 0)
			n = REAL(recvmsg)(c, m, rflags | MSG_DONTWAIT);
		else
			sg_msg("%s: a connection sent nothing in %d ms (closed)", lc->path, FDPASS_RECORD_WAIT_MS);
	}
	if (n < 0) {
		m->msg_controllen = 0;	/* nothing passed: the caller goes on to the next */
		n = 0;
	}
	/*
	 * The sender: the message's SCM_CREDENTIALS (the listener has
	 * SO_PASSCRED, which unix_accept() hands on to the connections it
	 * accepts), else SO_PEERCRED, as fdpass_recv_from() does.
	 */
	fdpass_parse(m, fds, nfds, cr);
	socklen_t l = sizeof *cr;
	if (!cr->pid && REAL(getsockopt)(c, SOL_SOCKET, SO_PEERCRED, cr, &l) < 0) {
		cr->pid = 0;
		cr->uid = (uid_t)-1;
		cr->gid = (gid_t)-1;
	}
	REAL(close)(c);
	errno = e;
	return n;
}

/*
 * A TCP listening socket passed to a receiver (sockgate-server -L, or
 * send-fd of one): it takes the receiver's place behind fd for good, so
 * the program accepts from it itself from now on, at the kernel's own
 * speed, with the clients' real addresses; this accept() is its first.
 */
static int take_listener(int fd, int nfd, const struct sgconn *lc, struct sockaddr *sa, socklen_t *len,
			 int flags)
{
	if (sg_take_over(fd, nfd) < 0) {
		int e = errno;
		sg_msg("%s: unable to take over a passed listening socket: %s", lc->path, strerror(e));
		return errno = e, -1;
	}
	return REAL(accept4)(fd, sa, len, flags);
}

/* accept()/accept4() on a receiver. */
int in_accept(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	pthread_mutex_lock(&sg_lock);
	struct sgconn *c = slot_conn(fd);
	int fam = c ? c->family : 0, st = c ? c->state : 0;
	struct sgconn lc;
	if (c)
		lc = *c;
	pthread_mutex_unlock(&sg_lock);
	if (!c || st != ST_RECEIVER)
		return REAL(accept4)(fd, sa, len, flags);
	/*
	 * A control file's VSOCK, TCP or TIPC listener: its peers as they are
	 * (or converted, ctl.c), unless the rule asks for a PROXY header, which
	 * any stream carries: then read as on a Unix listener, the header's
	 * client being the peer (PROXY v2 has no VSOCK or TIPC addresses; the
	 * header describes the original connection, never the transport).
	 */
	if (lc.ctlfam && lc.ctlfam != AF_UNIX && !(lc.rflags & (RULE_F_PROXY_V2 | RULE_F_PROXY_V1)))
		return ctl_accept(fd, &lc, sa, len, flags);
	if (lc.action != ACT_FDPASS)
		return unix_accept(fd, &lc, sa, len, flags);
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC))
		return errno = EINVAL, -1;

	int sorted = 0;	/* sockets sent on to the other family's queue */
	for (;;) {
		unsigned char meta[FDPASS_META_MAXLEN];
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(FDPASS_MAXFDS * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
		} cb;
		struct iovec iov = { meta, sizeof meta };
		struct msghdr m;
		memset(&m, 0, sizeof m);
		m.msg_iov = &iov;
		m.msg_iovlen = 1;
		m.msg_control = cb.buf;
		m.msg_controllen = sizeof cb.buf;
		/* EINTR and EAGAIN go back to the program, as accept() would say them */
		/* close-on-exec exactly when asked, as accept4() would set it */
		int rflags = (flags & SOCK_CLOEXEC) ? MSG_CMSG_CLOEXEC : 0;
		int nfd = -1;
		size_t nfds = 1;	/* one socket per record: the rest closed */
		struct ucred cr;
		ssize_t n;
		if (lc.dgq) {
			n = REAL(recvmsg)(fd, &m, rflags | (sorted ? MSG_DONTWAIT : 0));
			if (n >= 0)
				fdpass_parse(&m, &nfd, &nfds, &cr);
		} else {
			n = take_conn(fd, &lc, &m, rflags, sorted, &nfd, &nfds, &cr);
		}
		if (n < 0) {
			/*
			 * Only sockets of the other family were waiting. A blocking
			 * caller was told by poll() that one waits here: it hears
			 * ECONNABORTED, as for a connection gone before accept().
			 */
			if (sorted && errno == EAGAIN && !(REAL(fcntl)(fd, F_GETFL) & O_NONBLOCK))
				errno = ECONNABORTED;
			return -1;
		}
		if (!nfds)
			continue;	/* a datagram with no socket: not for us */
		int dom;
		if (refused(nfd, &cr, &lc, &dom))
			continue;	/* the program never sees it */
		if (lc.qfd >= 0 && conn_family(meta, (size_t)n, nfd) == lc.qfam) {
			sort_on(lc.qfd, meta, (size_t)n, nfd);
			sorted = 1;
			continue;
		}

		/* the fd number may have been ours before: forget any record of it */
		if (fd_flags(nfd))
			sg_forget(nfd);
		/* O_NONBLOCK as asked, whatever the sender left on the socket: one call */
		int nb = (flags & SOCK_NONBLOCK) != 0;
		ioctl(nfd, FIONBIO, &nb);
		struct fdpass_meta md;
		if (fdpass_meta_decode(meta, (size_t)n, &md) < 0)
			md.local.ss_family = md.remote.ss_family = AF_UNSPEC;
		if (md.remote.ss_family == AF_UNSPEC) {
			/*
			 * A record without the client (send-fd, a script): the
			 * socket's own peer, and a socket with none (a listening
			 * or an unconnected one) is no connection to hand over.
			 */
			md.remote_len = sizeof md.remote;
			if (REAL(getpeername)(nfd, (struct sockaddr *)&md.remote, &md.remote_len) < 0) {
				if (errno == ENOTCONN) {
					int acc = 0;
					socklen_t al = sizeof acc;
					if (REAL(getsockopt)(nfd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) == 0 && acc)
						return take_listener(fd, nfd, &lc, sa, len, flags);
					refuse(nfd, &cr, &lc, "not a connection (an unconnected socket)");
					continue;
				}
				md.remote_len = 0;
			}
		}
		socklen_t pl = md.remote_len;
		if (fam == AF_INET && dom == AF_INET6)
			pl = as_v4(nfd, &lc, &md);	/* an IPv6 socket in an IPv4 program */
		else if (pl)
			as_family(&md.remote, &pl, fam);
		if (sa && len) {
			if (pl)
				memcpy(sa, &md.remote, pl < *len ? pl : *len);
			*len = pl;
		}
		return nfd;
	}
}
