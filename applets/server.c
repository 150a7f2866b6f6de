/*
 * sockgate-server: accept TCP once, pick a receiver by rules on the accepted
 * socket's local and remote address, and pass the accepted socket itself
 * (SCM_RIGHTS) with a metadata record to that receiver's AF_UNIX datagram
 * socket, over a kept SOCK_SEQPACKET connection, or over a SOCK_STREAM
 * connection of its own (the receiver's socket type, found by connecting,
 * says which). The hand-off protocol is written down in sockgate-server(8),
 * HAND-OFF PROTOCOL; the record layout in core/fdpass.h.
 *
 * The server never waits for a receiver: sends are MSG_DONTWAIT on a
 * connected socket per receiver. When a receiver's queue is full the
 * connection waits in a bounded queue here, and EPOLLOUT on the connected
 * socket says when the receiver has room again (a stream receiver whose
 * backlog is full is tried again every RETRY_MS); past the bound or the
 * time limit the connection is refused as the rule says.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "addr.h"
#include "fdpass.h"
#include "sockfile.h"
#include "file.h"
#include "rulebin.h"
#include "rules.h"
#include "util.h"

static const char usage[] =
	"sockgate-server [-vtFRrk] [-l ADDR] [-p PORT] [-s FD] [-b BACKLOG]\n"
	"       [-f RULES | -S PATH [-L] | -i FD] [-O USER[:GROUP]] [-q MAXPENDING] [-T MS]\n"
	"       [-u USER] [-g GROUP] [-G GROUPS] [-x DIR] [-dz] [--rst] [--ready-fd FD]\n"
	"       [-e PROGRAM [ARGS ...]]";

/* socketbox read this when no -S or -i said where sockets go */
#define SOCKETBOX_CONF "/etc/socketbox.conf"

#define MAXLISTEN 64
#define MAXRECV 64		/* receivers kept connected */
#define ACCEPT_BATCH 64
#define BACKOFF_MS 10		/* after EMFILE and friends */
#define RETRY_MS 2		/* a stream receiver's full backlog has no EPOLLOUT: try again */
#define HANDOVER_RETRY_MS 200	/* -L: no receiver (or one that cannot take a listener) yet */

struct pending {
	int fd;
	int rst;
	int64_t deadline;	/* ms, monotonic */
	struct sockaddr_storage local, remote;	/* for log lines, formatted only then */
	socklen_t local_len, remote_len;
	size_t mlen;
	unsigned char meta[FDPASS_META_MAXLEN];
	unsigned rule_line;	/* the rule that chose the receiver, 0: none (a fixed one) */
};

struct receiver {
	char name[ADDR_STRLEN];	/* "unix:/path" or "unix:@name", the cache key */
	struct sg_addr addr;
	int fd;			/* connected socket, or -1 */
	int type;		/* the receiver's socket type once known, else 0 */
	struct pending *q;	/* ring of waiting hand-offs */
	size_t qhead, qlen, qcap;
	int64_t used;		/* for eviction */
	int ep_fd;		/* fd registered for EPOLLOUT while hand-offs wait */
	int ep_on;
};

static struct {
	const char *laddr, *rules_file, *fixed_path, *owner;
	struct privs privs;
	int port, backlog, fixed_fd, transparent, freebind, noreuseaddr, reuseport;
	int rst, ready_fd, timeout_ms, daemonize, notransparent, pass_listener;
	long maxpending;
	char **exec_argv;
	uid_t need_uid;
	gid_t need_gid;
} cfg = {
	.port = -1, .backlog = 1024, .fixed_fd = -1, .ready_fd = -1, .timeout_ms = 5000,
	.maxpending = 4096, .need_uid = (uid_t)-1, .need_gid = (gid_t)-1,
};

static int lfd[MAXLISTEN];
/*
 * A listener bound to one address (not a wildcard, not transparent) gives
 * every accepted socket that same local address: no getsockname() then.
 */
static struct sockaddr_storage lbound[MAXLISTEN];
static socklen_t lbound_len[MAXLISTEN];
static size_t nlisten;
static struct ruleset *rules;
static struct receiver recv_tab[MAXRECV];
static struct receiver fixed_recv;	/* -S or -i */
static long npending;
static int64_t backoff_until;
static int paused;			/* accept is backing off; said once */
static long npauses;			/* back-offs since it began */
static int64_t paused_since;
static int proc_ok = 1;			/* /proc/self/fd usable for -O */

static void fmt(const struct sockaddr *sa, socklen_t len, char *buf, size_t size)
{
	if (!len || sa->sa_family == AF_UNSPEC || addr_format(sa, len, buf, size) < 0)
		snprintf(buf, size, "?");
}

/*
 * "client -> local" for log lines, formatted only when a line is written:
 * most connections are passed without a word.
 */
struct who {
	const struct fdpass_meta *m;
	unsigned rule_line;
	char s[2 * ADDR_STRLEN + 8];
};

static const char *who(struct who *w)
{
	if (!w->s[0]) {
		char ps[ADDR_STRLEN], ls[ADDR_STRLEN];
		fmt((const struct sockaddr *)&w->m->remote, w->m->remote_len, ps, sizeof ps);
		fmt((const struct sockaddr *)&w->m->local, w->m->local_len, ls, sizeof ls);
		snprintf(w->s, sizeof w->s, "%s -> %s", ps, ls);
	}
	return w->s;
}

/* A waiting connection's "client -> local (rule ...)", as it was when it was queued. */
struct pwho {
	char s[2 * ADDR_STRLEN + 300];
};

static const char *pwho(const struct pending *p, struct pwho *pw)
{
	struct fdpass_meta m;
	struct who w = { .m = &m };
	memcpy(&m.local, &p->local, sizeof m.local);
	memcpy(&m.remote, &p->remote, sizeof m.remote);
	m.local_len = p->local_len;
	m.remote_len = p->remote_len;
	struct fdpass_meta pm;
	if (!p->rule_line)
		snprintf(pw->s, sizeof pw->s, "%s", who(&w));
	else if (fdpass_meta_decode(p->meta, p->mlen, &pm) == 0 && pm.rule[0])
		snprintf(pw->s, sizeof pw->s, "%s (rule %s, line %u)", who(&w), pm.rule, p->rule_line);
	else
		snprintf(pw->s, sizeof pw->s, "%s (rule at line %u)", who(&w), p->rule_line);
	return pw->s;
}

/* --- closing a connection we could not pass --------------------------------- */

static void refuse(int fd, int rst)
{
	if (rst) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
	close(fd);
}

/* --- receivers ------------------------------------------------------------ */

/*
 * Connect to the receiver: a datagram socket, or (when the receiver's type
 * is SOCK_SEQPACKET) one connection kept open, or (SOCK_STREAM) a
 * connection for one hand-off. The type is tried in that order the first
 * time (a connect of the wrong type fails with EPROTOTYPE), then
 * remembered. With -O the owner is
 * checked: for a datagram or stream receiver the socket file's owner, on the very
 * inode we connect to (O_PATH and /proc/self/fd), so a file swapped in
 * between cannot pass; for a seqpacket receiver SO_PEERCRED, the
 * credentials of the process that listens.
 */
static int recv_open(struct receiver *r)
{
	int need = cfg.need_uid != (uid_t)-1 || cfg.need_gid != (gid_t)-1;
	const struct sockaddr *to = &r->addr.u.sa;
	socklen_t tolen = r->addr.len;
	struct sg_addr via;
	struct stat st;
	int pfd = -1, s = -1;

	if (need && !r->addr.u.un.sun_path[0]) {
		/* an abstract name has no owner to check */
		errno = EPERM;
		return -1;
	}
	if (need) {
		pfd = open(r->addr.u.un.sun_path, O_PATH | O_CLOEXEC);
		if (pfd < 0 || fstat(pfd, &st) < 0)
			goto fail;
		if (!S_ISSOCK(st.st_mode)) {
			errno = ENOTSOCK;
			goto fail;
		}
		if (proc_ok) {
			char p[64];
			snprintf(p, sizeof p, "/proc/self/fd/%d", pfd);
			addr_unix(&via, p, 0);
			to = &via.u.sa;
			tolen = via.len;
		}
	}
	static const int types[] = { SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM };
	for (int k = r->type ? -1 : 0; k < 3; k++) {
		int t = k < 0 ? r->type : types[k];
		if (k >= 0 && t == r->type)
			continue;	/* tried first */
		if ((s = socket(AF_UNIX, t | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0)
			goto fail;
		/* a unix connect does not wait: EAGAIN when a listener's backlog is full */
		if (connect(s, to, tolen) == 0) {
			r->type = t;
			break;
		}
		if (errno == EAGAIN)
			r->type = t;	/* the right type, its backlog full */
		if (errno != EPROTOTYPE)
			goto fail;
		close(s);
		s = -1;
	}
	if (s < 0) {
		errno = EPROTOTYPE;	/* no type we speak */
		goto fail;
	}
	if (r->type != SOCK_SEQPACKET) {
		if (need && ((cfg.need_uid != (uid_t)-1 && st.st_uid != cfg.need_uid) ||
			     (cfg.need_gid != (gid_t)-1 && st.st_gid != cfg.need_gid))) {
			errno = EPERM;
			goto fail;
		}
	} else if (need && fdpass_peer_check(s, cfg.need_uid, cfg.need_gid) < 0) {
		goto fail;
	}
	if (pfd >= 0)
		close(pfd);
	return s;
fail:;
	int e = errno;
	if (pfd >= 0)
		close(pfd);
	if (s >= 0)
		close(s);
	errno = e;
	return -1;
}

static void recv_close(struct receiver *r)
{
	/* the -i fd is not ours to reopen: keep it */
	if (r == &fixed_recv && cfg.fixed_fd >= 0)
		return;
	if (r->fd >= 0)
		close(r->fd);	/* which also takes it out of the epoll set */
	r->fd = -1;
	r->ep_on = 0;
}

static struct pending *q_at(struct receiver *r, size_t i)
{
	return &r->q[(r->qhead + i) % r->qcap];
}

static void q_drop_all(struct receiver *r, const char *why)
{
	while (r->qlen) {
		struct pending *p = q_at(r, 0);
		struct pwho pw;
		warn("%s: refused: receiver %s: %s", pwho(p, &pw), r->name, why);
		refuse(p->fd, p->rst);
		r->qhead = (r->qhead + 1) % r->qcap;
		r->qlen--;
		npending--;
	}
}

static struct receiver *recv_find(const struct sg_addr *a, const char *name)
{
	struct receiver *free_slot = NULL, *oldest = NULL;
	for (size_t i = 0; i < MAXRECV; i++) {
		struct receiver *r = &recv_tab[i];
		if (r->name[0] && !strcmp(r->name, name))
			return r;
		if (!r->name[0] && !free_slot)
			free_slot = r;
		if (r->name[0] && !r->qlen && (!oldest || r->used < oldest->used))
			oldest = r;
	}
	struct receiver *r = free_slot ? free_slot : oldest;
	if (!r)
		return NULL;
	if (r->name[0])
		recv_close(r);
	r->fd = -1;
	r->type = 0;
	r->addr = *a;
	snprintf(r->name, sizeof r->name, "%s", name);
	r->qhead = r->qlen = 0;
	return r;
}

/* Queue a hand-off behind a full receiver; 0, or -1 when over the bound. */
static int q_push(struct receiver *r, int fd, int rst, struct who *w, const void *meta, size_t mlen)
{
	if (npending >= cfg.maxpending)
		return -1;
	if (r->qlen == r->qcap) {
		size_t ncap = r->qcap ? r->qcap * 2 : 16;
		struct pending *nq = malloc(ncap * sizeof *nq);
		if (!nq)
			return -1;
		for (size_t i = 0; i < r->qlen; i++)
			nq[i] = *q_at(r, i);
		free(r->q);
		r->q = nq;
		r->qcap = ncap;
		r->qhead = 0;
	}
	struct pending *p = &r->q[(r->qhead + r->qlen) % r->qcap];
	p->fd = fd;
	p->rst = rst;
	p->deadline = mono_ms() + cfg.timeout_ms;
	p->local = w->m->local;
	p->remote = w->m->remote;
	p->local_len = w->m->local_len;
	p->remote_len = w->m->remote_len;
	memcpy(p->meta, meta, mlen);
	p->mlen = mlen;
	p->rule_line = w->rule_line;
	r->qlen++;
	npending++;
	return 0;
}

/* Is this send error the receiver being gone (so a reconnect may help)? */
static int gone(int e)
{
	return e == ECONNREFUSED || e == ENOTCONN || e == EPIPE || e == ECONNRESET || e == EDESTADDRREQ;
}

/*
 * Pass one connection: 0 passed, 1 queued, -1 failed (errno set). The
 * caller still owns fd unless 0 or 1 is returned.
 */
static int hand_off(struct receiver *r, int fd, int rst, struct who *w, const void *meta, size_t mlen)
{
	r->used = mono_ms();
	if (r->qlen)
		return q_push(r, fd, rst, w, meta, mlen) == 0 ? 1 : (errno = EAGAIN, -1);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (r->fd < 0 && (r->fd = recv_open(r)) < 0) {
			if (errno == EAGAIN && r->type == SOCK_STREAM)	/* its backlog is full */
				return q_push(r, fd, rst, w, meta, mlen) == 0 ? 1 : (errno = EAGAIN, -1);
			return -1;
		}
		if (fdpass_send(r->fd, &fd, 1, meta, mlen, MSG_DONTWAIT) == 0) {
			close(fd);
			if (r->type == SOCK_STREAM)
				recv_close(r);	/* one connection per hand-off */
			return 0;
		}
		if (errno == EAGAIN || errno == ENOBUFS)
			return q_push(r, fd, rst, w, meta, mlen) == 0 ? 1 : (errno = EAGAIN, -1);
		if (!gone(errno) || (r == &fixed_recv && !cfg.fixed_path))
			return -1;
		/* the receiver went away; maybe a new one has its path now */
		int e = errno;
		recv_close(r);
		errno = e;
	}
	return -1;
}

/* The receiver has room (POLLOUT, or a stream receiver's retry): send what waits, in order. */
static void q_flush(struct receiver *r)
{
	while (r->qlen) {
		struct pending *p = q_at(r, 0);
		if (r->fd < 0 && r->type == SOCK_STREAM && (r->fd = recv_open(r)) < 0) {
			if (errno == EAGAIN)
				return;	/* its backlog is still full */
			int e = errno;
			q_drop_all(r, strerror(e));
			return;
		}
		if (fdpass_send(r->fd, &p->fd, 1, p->meta, p->mlen, MSG_DONTWAIT) < 0) {
			if (errno == EAGAIN || errno == ENOBUFS)
				return;
			int e = errno;
			if (gone(e))
				recv_close(r);
			q_drop_all(r, strerror(e));
			return;
		}
		if (verbose) {
			struct pwho pw;
			info("%s: passed to %s (after waiting)", pwho(p, &pw), r->name);
		}
		close(p->fd);
		r->qhead = (r->qhead + 1) % r->qcap;
		r->qlen--;
		npending--;
		if (r->type == SOCK_STREAM)
			recv_close(r);
	}
}

static void q_expire(struct receiver *r, int64_t now)
{
	while (r->qlen && q_at(r, 0)->deadline <= now) {
		struct pending *p = q_at(r, 0);
		struct pwho pw;
		warn("%s: refused: receiver %s not reading (waited %d ms)", pwho(p, &pw), r->name,
		     cfg.timeout_ms);
		refuse(p->fd, p->rst);
		r->qhead = (r->qhead + 1) % r->qcap;
		r->qlen--;
		npending--;
	}
}

/* --- one accepted connection ------------------------------------------------ */

static void serve(int fd, struct sockaddr_storage *peer, socklen_t plen, size_t li)
{
	struct fdpass_meta m;
	struct who w = { .m = &m };

	memset(&m, 0, sizeof m);
	m.version = FDPASS_META_VERSION;
	if (lbound_len[li]) {
		memcpy(&m.local, &lbound[li], lbound_len[li]);
		m.local_len = lbound_len[li];
	} else {
		m.local_len = sizeof m.local;
		if (getsockname(fd, (struct sockaddr *)&m.local, &m.local_len) < 0)
			m.local_len = 0;
	}
	addr_unmap(&m.local, &m.local_len);
	memcpy(&m.remote, peer, plen);
	m.remote_len = plen;
	addr_unmap(&m.remote, &m.remote_len);

	struct receiver *r = NULL;
	int rst = cfg.rst;
	const struct rule *rule = NULL;
	char rulename[300] = "";

	if (cfg.fixed_path || cfg.fixed_fd >= 0) {
		r = &fixed_recv;
	} else {
		int inet = m.local.ss_family == AF_INET || m.local.ss_family == AF_INET6;
		if (rules && inet && m.remote.ss_family == m.local.ss_family)
			rule = rules_match(rules, &(struct rules_query){
				.dir = RULE_ACCEPT, .proto = RULE_TCP,
				.addr = (struct sockaddr *)&m.local, .peer = (struct sockaddr *)&m.remote });
		if (!rule) {
			warn("%s: refused: no rule matches", who(&w));
			refuse(fd, 0);
			return;
		}
		const char *name = rules_str(rules, rule->name);
		if (name) {
			snprintf(m.rule, sizeof m.rule, "%s", name);
			snprintf(rulename, sizeof rulename, " (rule %s, line %u)", name, (unsigned)rule->line);
		} else {
			snprintf(rulename, sizeof rulename, " (rule at line %u)", (unsigned)rule->line);
		}
		rst = !!(rule->flags & RULE_F_RST);
		w.rule_line = (unsigned)rule->line;
		if (rule->action == ACT_REJECT || rule->action == ACT_BLACKHOLE) {
			if (verbose)
				info("%s%s: rejected%s", who(&w), rulename, rst ? " (rst)" : "");
			refuse(fd, rst);
			return;
		}
		char path[sizeof ((struct sockaddr_un *)0)->sun_path + 1];
		struct sg_addr ua;
		const char *tmpl = rules_str(rules, rule->arg);
		if (!tmpl || rules_expand(tmpl, (struct sockaddr *)&m.local, path, sizeof path) < 0 ||
		    addr_unix(&ua, path, rule->action == ACT_ABSTRACT) < 0) {
			warn("%s%s: refused: path template %s does not expand: %s", who(&w), rulename,
			     tmpl ? tmpl : "?", strerror(errno));
			refuse(fd, rst);
			return;
		}
		char key[ADDR_STRLEN];
		fmt(&ua.u.sa, ua.len, key, sizeof key);
		if (!(r = recv_find(&ua, key))) {
			warn("%s%s: refused: too many receivers with waiting connections", who(&w), rulename);
			refuse(fd, rst);
			return;
		}
	}

	unsigned char meta[FDPASS_META_MAXLEN];
	ssize_t mlen = fdpass_meta_encode(&m, meta, sizeof meta);
	if (mlen < 0) {
		/* not an inet socket (an inherited unix listener): no addresses */
		struct fdpass_meta e = { .version = FDPASS_META_VERSION };
		memcpy(e.rule, m.rule, sizeof e.rule);
		mlen = fdpass_meta_encode(&e, meta, sizeof meta);
	}
	int rc = hand_off(r, fd, rst, &w, meta, (size_t)mlen);
	if (rc == 0) {
		if (verbose)
			info("%s%s: passed to %s", who(&w), rulename, r->name);
	} else if (rc == 1) {
		if (verbose)
			info("%s%s: waiting for %s (queue full)", who(&w), rulename, r->name);
	} else {
		int e = errno;
		if (e == EAGAIN)
			warn("%s%s: refused: receiver %s: queue full and %ld connections already waiting",
			     who(&w), rulename, r->name, npending);
		else
			warn("%s%s: refused: receiver %s: %s", who(&w), rulename, r->name, strerror(e));
		refuse(fd, rst);
	}
}

static void accept_some(size_t li)
{
	int l = lfd[li];
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof peer;
		int fd = accept4(l, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
		if (fd < 0) {
			switch (errno) {
			case EAGAIN:
				/* the backlog is drained: an episode of back-offs is over */
				if (paused) {
					warn("accepting again after %ld back-offs in %lld ms", npauses,
					     (long long)(mono_ms() - paused_since));
					paused = 0;
				}
				return;
			case EINTR:
				return;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				/* out of fds or memory: back off, the backlog keeps them */
				if (!paused) {
					warn_sys("accept paused for %d ms (and again while it lasts)", BACKOFF_MS);
					paused = 1;
					npauses = 0;
					paused_since = mono_ms();
				}
				npauses++;
				backoff_until = mono_ms() + BACKOFF_MS;
				return;
			default:
				/* ECONNABORTED, network errors: that client is gone */
				return;
			}
		}
		if (cfg.notransparent &&
		    setsockopt(fd, peer.ss_family == AF_INET6 ? IPPROTO_IPV6 : IPPROTO_IP,
			       peer.ss_family == AF_INET6 ? IPV6_TRANSPARENT : IP_TRANSPARENT, &(int){ 0 }, sizeof(int)) < 0) {
			warn_sys("unable to clear the transparent flag of an accepted socket (-z); closed");
			close(fd);
			continue;
		}
		serve(fd, &peer, plen, li);
	}
}

/* --- set-up ----------------------------------------------------------------- */

/*
 * /etc/socketbox.conf, read by default as socketbox did, must be in
 * sockgate-rules(5): one written in socketbox's own language is refused
 * with one line that says so.
 */
static void check_default_conf(void)
{
	struct rules_error e = { 0 };
	size_t len;
	char *buf = read_file(SOCKETBOX_CONF, &len);

	if (!buf)
		die_sys("unable to read %s", SOCKETBOX_CONF);
	struct ruleset *rs = rules_load_any(buf, len, NULL, &e);
	free(buf);
	if (!rs && errno == EINVAL)
		die(EX_BADINPUT, "%s:%u:%u: %s (the default rules file, read as sockgate-rules(5): socketbox's own "
		    "rule language is not read; give -f, -S or -i)", SOCKETBOX_CONF, e.line, e.col, e.msg);
	rules_free(rs);
}

static struct ruleset *load_rules(int fatal)
{
	struct ruleset *rs = rules_from_file(cfg.rules_file, NULL, fatal);

	if (!rs)
		return NULL;
	/* accept rules must name something the server can do */
	for (size_t i = 0; i < rs->n; i++) {
		const struct rule *r = &rs->rule[i];
		if (r->dir != RULE_ACCEPT)
			continue;
		switch (r->action) {
		case ACT_UNIX:
		case ACT_ABSTRACT:
		case ACT_FDPASS:
		case ACT_REJECT:
		case ACT_BLACKHOLE:
			break;
		default: {
			char where[32];
			if (r->acol)
				snprintf(where, sizeof where, "%u:%u", (unsigned)r->line, (unsigned)r->acol);
			else	/* a compiled file keeps no columns */
				snprintf(where, sizeof where, "%u", (unsigned)r->line);
			const char *act = rules_action_name(r->action);
			if (fatal)
				die(EX_BADINPUT, "%s:%s: action %s is not one sockgate-server can take "
				    "(unix, abstract, fdpass, reject, blackhole)", cfg.rules_file, where, act);
			warn("%s:%s: action %s is not one sockgate-server can take (keeping the old rules)",
			     cfg.rules_file, where, act);
			rules_free(rs);
			return NULL;
		}
		}
	}
	return rs;
}

static void setopt(int s, int level, int name, int val, const char *what)
{
	if (setsockopt(s, level, name, &val, sizeof val) < 0)
		die_sys("unable to set %s", what);
}

static void listen_tcp(void)
{
	struct sg_addr a;
	char buf[ADDR_STRLEN + 16];
	const char *host = cfg.laddr ? cfg.laddr : "::";

	if (strchr(host, ':'))
		snprintf(buf, sizeof buf, "[%s]:%d", host, cfg.port);
	else
		snprintf(buf, sizeof buf, "%s:%d", host, cfg.port);
	if (addr_parse_inet(buf, &a) < 0)
		die(EX_BADINPUT, "-l %s: not a numeric IPv4 or IPv6 address", host);
	int v6 = a.u.sa.sa_family == AF_INET6;
	int s = socket(a.u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		die_sys("unable to create a TCP socket");
	if (v6)
		setopt(s, IPPROTO_IPV6, IPV6_V6ONLY, 0, "IPV6_V6ONLY");
	setopt(s, SOL_SOCKET, SO_REUSEADDR, !cfg.noreuseaddr, "SO_REUSEADDR");
	if (cfg.reuseport)
		setopt(s, SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT");
	if (cfg.transparent) {
		if (v6)
			setopt(s, IPPROTO_IPV6, IPV6_TRANSPARENT, 1, "IPV6_TRANSPARENT");
		else
			setopt(s, IPPROTO_IP, IP_TRANSPARENT, 1, "IP_TRANSPARENT");
	}
	if (cfg.freebind) {
		if (v6)
			setopt(s, IPPROTO_IPV6, IPV6_FREEBIND, 1, "IPV6_FREEBIND");
		else
			setopt(s, IPPROTO_IP, IP_FREEBIND, 1, "IP_FREEBIND");
	}
	char as[ADDR_STRLEN];
	fmt(&a.u.sa, a.len, as, sizeof as);
	if (bind(s, &a.u.sa, a.len) < 0)
		die_sys("unable to bind %s", as);
	if (listen(s, cfg.backlog) < 0)
		die_sys("unable to listen on %s", as);
	if (!cfg.transparent) {
		static const struct in6_addr any6 = IN6ADDR_ANY_INIT;
		int wild = v6 ? !memcmp(&a.u.in6.sin6_addr, &any6, sizeof any6)
			      : a.u.in4.sin_addr.s_addr == htonl(INADDR_ANY);
		socklen_t bl = sizeof lbound[nlisten];
		if (!wild && getsockname(s, (struct sockaddr *)&lbound[nlisten], &bl) == 0)
			lbound_len[nlisten] = bl;
	}
	lfd[nlisten++] = s;
}

static void add_inherited(int fd, const char *what)
{
	int type;
	socklen_t sl = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
		die_sys("%s %d: not a socket", what, fd);
	if (type != SOCK_STREAM)
		die(EX_BADINPUT, "%s %d: not a stream socket", what, fd);
	int acc = 0;
	sl = sizeof acc;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) == 0 && !acc && listen(fd, cfg.backlog) < 0)
		die_sys("%s %d: unable to listen", what, fd);
	if (nlisten == MAXLISTEN)
		die(EX_USAGE, "too many listening sockets (at most %d)", MAXLISTEN);
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	fcntl(fd, F_SETFD, FD_CLOEXEC);
	lfd[nlisten++] = fd;
}

/* systemd socket activation: LISTEN_PID, LISTEN_FDS, fds from 3. */
static void add_systemd(void)
{
	const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
	long k = sd_listen_count(pid, n, getpid(), MAXLISTEN);
	if (k < 0 && errno == ERANGE)
		die(EX_BADINPUT, "LISTEN_FDS %s: not a count from 0 to %d", n, MAXLISTEN);
	if (k < 0)
		return;	/* not socket-activated, or meant for another process */
	for (long i = 0; i < k; i++)
		add_inherited(3 + (int)i, "LISTEN_FDS fd");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

static void parse_owner(const char *s)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", s);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon++ = 0;
	if (buf[0])
		cfg.need_uid = user_lookup(buf, NULL, NULL);
	if (colon && *colon)
		cfg.need_gid = group_lookup(colon);
}

static void run_program(void)
{
	if (nlisten != 1)
		die(EX_USAGE, "-e needs exactly one listening socket (have %zu)", nlisten);
	char n[16];
	snprintf(n, sizeof n, "%d", lfd[0]);
	int fl = fcntl(lfd[0], F_GETFL);
	fcntl(lfd[0], F_SETFL, fl & ~O_NONBLOCK);
	fcntl(lfd[0], F_SETFD, 0);
	setenv("SOCKGATE_LISTEN_FD", n, 1);
	setenv("SKBOX_LISTEN_FD", n, 1);	/* socketbox's name for it */
	notify_ready(cfg.ready_fd);
	/* the dispatcher ignores SIGPIPE for us; the program gets the default */
	signal(SIGPIPE, SIG_DFL);
	execvp(cfg.exec_argv[0], cfg.exec_argv);
	die_sys("unable to run %s", cfg.exec_argv[0]);
}

/* Many connections can wait at once: use all the fds we are allowed. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/*
 * After the options: the listening sockets (-s, LISTEN_FDS, then -l/-p),
 * the fixed receiver, the rules, then privileges go in one place.
 */
static void set_up(const char **sfds, size_t nsfd)
{
	for (size_t i = 0; i < nsfd; i++)
		add_inherited((int)num_arg(sfds[i], 0, INT_MAX, "-s"), "-s");
	add_systemd();
	if (cfg.port >= 0 || cfg.laddr)
		listen_tcp();
	if (!nlisten)
		die(EX_USAGE, "nothing to listen on: give -p PORT (and -l ADDR), -s FD, or LISTEN_FDS");

	if (cfg.fixed_fd >= 0) {
		int type;
		socklen_t sl = sizeof type;
		if (getsockopt(cfg.fixed_fd, SOL_SOCKET, SO_TYPE, &type, &sl) < 0)
			die_sys("-i %d: not a socket", cfg.fixed_fd);
		fcntl(cfg.fixed_fd, F_SETFD, FD_CLOEXEC);
		fixed_recv.fd = cfg.fixed_fd;
		snprintf(fixed_recv.name, sizeof fixed_recv.name, "fd %d", cfg.fixed_fd);
	} else if (cfg.fixed_path) {
		if (addr_unix(&fixed_recv.addr, cfg.fixed_path, 0) < 0)
			die_sys("-S %s", cfg.fixed_path);
		fixed_recv.fd = -1;
		snprintf(fixed_recv.name, sizeof fixed_recv.name, "unix:%s", cfg.fixed_path);
	}
	if (cfg.daemonize && daemon(0, 1) < 0)
		die_sys("unable to run in the background (-d)");
	if (cfg.rules_file == (const char *)SOCKETBOX_CONF)
		check_default_conf();
	if (cfg.rules_file)
		rules = load_rules(1);

	raise_nofile();
	/* privileges go in one place, right after the sockets are bound */
	if (privs_drop(&cfg.privs))
		proc_ok = access("/proc/self/fd", F_OK) == 0;
	for (size_t i = 0; i < nlisten; i++) {
		struct sockaddr_storage la;
		socklen_t ll = sizeof la;
		char as[ADDR_STRLEN];
		if (getsockname(lfd[i], (struct sockaddr *)&la, &ll) == 0) {
			fmt((struct sockaddr *)&la, ll, as, sizeof as);
			info("listening on %s", as);
		}
	}
}

/* --- the loop ------------------------------------------------------------- */

/*
 * epoll rather than poll: with one wake-up per connection at low load,
 * poll's adding and removing of wait-queue entries on every call was
 * a quarter of the server's time. Listeners are switched off during an
 * EMFILE back-off; a receiver is watched for EPOLLOUT only while
 * hand-offs wait for it. data.u64: kind << 32 | index.
 */
enum { EV_SIG, EV_LISTEN, EV_RECV, EV_HANDOVER };
static int ep, listening = 1;

static struct receiver *recv_at(size_t i)
{
	return i < MAXRECV ? &recv_tab[i] : &fixed_recv;
}

static void ep_ctl(int op, int fd, uint32_t events, uint32_t kind, size_t i)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)kind << 32 | i };
	if (epoll_ctl(ep, op, fd, &ev) < 0 && op == EPOLL_CTL_ADD && kind != EV_RECV)
		die_sys("epoll_ctl");
}

/* Listeners on or off as the EMFILE back-off begins or ends. */
static void listeners_toggle(int64_t now)
{
	if (cfg.pass_listener)
		return;	/* nothing is accepted here */
	if (backoff_until && now >= backoff_until)
		backoff_until = 0;
	if ((backoff_until == 0) == listening)
		return;
	listening = !backoff_until;
	for (size_t i = 0; i < nlisten; i++)
		ep_ctl(EPOLL_CTL_MOD, lfd[i], listening ? EPOLLIN : 0, EV_LISTEN, i);
}

/*
 * Expire waiting hand-offs, watch a receiver for EPOLLOUT exactly while
 * some wait for it; returns the epoll timeout (ms, -1: none) to the next
 * deadline.
 */
static int receivers_watch(int64_t now)
{
	int timeout = backoff_until ? (int)(backoff_until - now) : -1;

	for (size_t i = 0; i <= MAXRECV; i++) {
		struct receiver *r = recv_at(i);
		if (r->qlen) {
			q_expire(r, now);
			if (r->qlen && r->fd < 0 && r->type != SOCK_STREAM)
				q_drop_all(r, "receiver closed");	/* a queue only exists while connected */
		}
		if (r->qlen) {
			int64_t left = q_at(r, 0)->deadline - now;
			if (r->type == SOCK_STREAM && left > RETRY_MS)
				left = RETRY_MS;
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
		int want = r->qlen && r->fd >= 0 && r->type != SOCK_STREAM;
		if (r->ep_on && (!want || r->ep_fd != r->fd)) {
			epoll_ctl(ep, EPOLL_CTL_DEL, r->ep_fd, NULL);
			r->ep_on = 0;
		}
		if (want && !r->ep_on) {
			struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = (uint64_t)EV_RECV << 32 | i };
			if (epoll_ctl(ep, EPOLL_CTL_ADD, r->fd, &ev) == 0) {
				r->ep_on = 1;
				r->ep_fd = r->fd;
			}
		}
	}
	return timeout;
}

/* SIGHUP reloads the rules; SIGTERM/SIGINT: 1 once what waits is flushed. */
static int on_signal(int sfd)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof si) == sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			if (cfg.rules_file) {
				struct ruleset *nr = load_rules(0);
				if (nr) {
					rules_free(rules);
					rules = nr;
					info("rules reloaded from %s (%zu rules)", cfg.rules_file, nr->n);
				}
			}
			continue;
		}
		info("stopping on signal %d", (int)si.ssi_signo);
		for (size_t i = 0; i < nlisten; i++)
			close(lfd[i]);
		for (size_t i = 0; i <= MAXRECV; i++) {
			struct receiver *r = recv_at(i);
			if (r->qlen && (r->fd >= 0 || r->type == SOCK_STREAM))
				q_flush(r);
			q_drop_all(r, "server stopping");
		}
		return 1;
	}
	return 0;
}

/*
 * -L: the listening socket itself goes to the receiver, which accepts from
 * it from then on (libsockgate(7) takes a passed listener over), so no
 * connection passes through here. One hand-over at a time, each on a
 * connection of its own: when the receiver has read it and closed that
 * connection, the next goes, so that every process of a receiver that
 * forked after listen() gets one (a process that has taken one over no
 * longer listens at PATH), and a receiver that starts again gets one at
 * once. The connection of a hand-over nobody takes just waits.
 */
static int hconn = -1;		/* the connection of the hand-over in flight */
static int64_t hnext;		/* when to try to connect again */
static int hsaid;		/* the reason for waiting, said once */

static int handover(int64_t now)
{
	if (hconn >= 0)
		return -1;
	if (now < hnext)
		return (int)(hnext - now);
	hnext = now + HANDOVER_RETRY_MS;
	fixed_recv.type = 0;	/* a receiver that started again may be of another type */
	int s = recv_open(&fixed_recv);
	if (s < 0 || (fixed_recv.type != SOCK_STREAM && fixed_recv.type != SOCK_SEQPACKET)) {
		int e = s < 0 ? errno : EPROTOTYPE;
		if (hsaid != e + 1)
			info("-L: waiting for a receiver at %s to take the listening socket (%s)", fixed_recv.name,
			     s < 0 ? strerror(e) : "a datagram receiver cannot take a listener over");
		hsaid = e + 1;
		if (s >= 0)
			close(s);
		return HANDOVER_RETRY_MS;
	}
	struct fdpass_meta m = { .version = FDPASS_META_VERSION };
	m.local_len = sizeof m.local;
	if (getsockname(lfd[0], (struct sockaddr *)&m.local, &m.local_len) < 0)
		m.local_len = 0;
	unsigned char meta[FDPASS_META_MAXLEN];
	ssize_t mlen = fdpass_meta_encode(&m, meta, sizeof meta);
	if (mlen < 0 || fdpass_send(s, &lfd[0], 1, meta, (size_t)mlen, MSG_DONTWAIT) < 0) {
		/*
		 * A receiver that took the last one closes the socket we had just
		 * connected to (EPIPE): no receiver now, said as waiting for one.
		 */
		if (mlen >= 0 && gone(errno))
			hsaid = 0;
		else
			warn_sys("-L: unable to pass the listening socket to %s", fixed_recv.name);
		close(s);
		return HANDOVER_RETRY_MS;
	}
	char as[ADDR_STRLEN];
	fmt((struct sockaddr *)&m.local, m.local_len, as, sizeof as);
	info("passed the listening socket %s to %s", as, fixed_recv.name);
	hsaid = 0;
	hconn = s;
	ep_ctl(EPOLL_CTL_ADD, hconn, EPOLLIN | EPOLLRDHUP, EV_HANDOVER, 0);
	return -1;
}

/* The receiver read the hand-over and closed its connection (or went away): the next may go. */
static void handover_done(void)
{
	close(hconn);	/* which also takes it out of the epoll set */
	hconn = -1;
	hnext = 0;
}

static int loop(int sfd)
{
	struct epoll_event evs[64];

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die_sys("epoll_create1");
	ep_ctl(EPOLL_CTL_ADD, sfd, EPOLLIN, EV_SIG, 0);
	for (size_t i = 0; i < nlisten && !cfg.pass_listener; i++)
		ep_ctl(EPOLL_CTL_ADD, lfd[i], EPOLLIN, EV_LISTEN, i);
	for (;;) {
		int64_t now = mono_ms();
		listeners_toggle(now);
		int k = epoll_wait(ep, evs, (int)(sizeof evs / sizeof evs[0]),
				   cfg.pass_listener ? handover(now) : receivers_watch(now));
		if (k < 0 && errno != EINTR)
			die_sys("epoll_wait");
		int sig = 0;
		for (int e = 0; e < k; e++) {
			uint32_t kind = (uint32_t)(evs[e].data.u64 >> 32), i = (uint32_t)evs[e].data.u64;
			if (kind == EV_SIG)
				sig = 1;
			else if (kind == EV_RECV)
				q_flush(recv_at(i));
			else if (kind == EV_HANDOVER)
				handover_done();
		}
		for (size_t i = 0; i <= MAXRECV; i++)
			if (recv_at(i)->qlen && recv_at(i)->type == SOCK_STREAM)
				q_flush(recv_at(i));	/* its backlog may have room now */
		if (sig && on_signal(sfd))
			return EX_OK;
		for (int e = 0; e < k; e++)
			if (evs[e].data.u64 >> 32 == EV_LISTEN && !backoff_until)
				accept_some((size_t)(uint32_t)evs[e].data.u64);
	}
}

int server_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "rst", no_argument, 0, 'Z' },
		{ "ready-fd", required_argument, 0, 'D' },
		{ 0, 0, 0, 0 },
	};
	int c;
	const char *sfds[MAXLISTEN];
	size_t nsfd = 0;

	std_options(argc, argv, usage);
	/* '+': options stop at the first operand (the -e program's arguments) */
	int eflag = 0;
	while ((c = getopt_long(argc, argv, "+vtFRrkdzLl:p:s:b:f:S:i:O:q:T:u:g:G:x:e:", lo, NULL)) != -1) {
		switch (c) {
		case 'v': verbose = 1; break;
		case 't': cfg.transparent = 1; break;
		case 'F': cfg.freebind = 1; break;
		case 'R': cfg.noreuseaddr = 1; break;
		case 'r': cfg.reuseport = 1; break;
		case 'k': cfg.privs.keepgroups = 1; break;
		case 'l': cfg.laddr = optarg; break;
		case 'p': cfg.port = (int)num_arg(optarg, 0, 65535, "-p"); break;
		case 's':
			if (nsfd == MAXLISTEN)
				die(EX_USAGE, "too many -s (at most %d)", MAXLISTEN);
			sfds[nsfd++] = optarg;
			break;
		case 'b': cfg.backlog = (int)num_arg(optarg, 1, INT_MAX, "-b"); break;
		case 'f': cfg.rules_file = optarg; break;
		case 'S': cfg.fixed_path = optarg; break;
		case 'i': cfg.fixed_fd = (int)num_arg(optarg, 0, INT_MAX, "-i"); break;
		case 'O': cfg.owner = optarg; break;
		case 'q': cfg.maxpending = (long)num_arg(optarg, 0, 1000000, "-q"); break;
		case 'T': cfg.timeout_ms = (int)num_arg(optarg, 1, 3600000, "-T"); break;
		case 'u': cfg.privs.user = optarg; break;
		case 'g': cfg.privs.group = optarg; break;
		case 'G': cfg.privs.groups = optarg; break;
		case 'x': cfg.privs.chroot = optarg; break;
		case 'Z': cfg.rst = 1; break;
		case 'D': cfg.ready_fd = (int)num_arg(optarg, 0, INT_MAX, "--ready-fd"); break;
		case 'd': cfg.daemonize = 1; break;
		case 'z': cfg.notransparent = 1; break;
		case 'L': cfg.pass_listener = 1; break;
		case 'e':
			/* socketbox's -e was a flag, the program the first operand: -e -p 80 PROG */
			if (optarg[0] == '-' && optarg[1]) {
				eflag = 1;
				optind--;
			} else {
				cfg.exec_argv = argv + optind - 1;
			}
			break;
		default: usage_die(usage);
		}
		if (cfg.exec_argv)
			break;
	}
	if (eflag && !cfg.exec_argv) {
		if (optind >= argc)
			usage_die(usage);
		cfg.exec_argv = argv + optind;
	}
	if (!cfg.exec_argv && optind != argc)
		usage_die(usage);
	int targets = !!cfg.rules_file + !!cfg.fixed_path + (cfg.fixed_fd >= 0);
	if (!cfg.exec_argv && targets == 0) {
		/* as socketbox: the rules of /etc/socketbox.conf, if it is there */
		if (access(SOCKETBOX_CONF, F_OK) == 0) {
			cfg.rules_file = SOCKETBOX_CONF;
			targets = 1;
		} else {
			fprintf(stderr, "%s: fatal: one of -f RULES, -S PATH, -i FD is needed (%s: %s)\n", progname,
				SOCKETBOX_CONF, strerror(errno));
			usage_die(usage);
		}
	}
	if (!cfg.exec_argv && targets != 1) {
		fprintf(stderr, "%s: fatal: one of -f RULES, -S PATH, -i FD is needed\n", progname);
		usage_die(usage);
	}
	if (cfg.exec_argv && targets)
		die(EX_USAGE, "-e runs a program with the listening socket; -f, -S and -i do not apply");
	if (cfg.pass_listener && !cfg.fixed_path)
		die(EX_USAGE, "-L passes the listening socket to the receiver at -S PATH, and needs it");
	if (cfg.ready_fd >= 0 && fcntl(cfg.ready_fd, F_GETFD) < 0)
		die(EX_BADINPUT, "--ready-fd %d: not an open fd", cfg.ready_fd);
	if (cfg.owner)
		parse_owner(cfg.owner);

	set_up(sfds, nsfd);
	if (cfg.exec_argv)
		run_program();
	if (cfg.pass_listener && nlisten != 1)
		die(EX_USAGE, "-L passes one listening socket (have %zu)", nlisten);
	int sfd = signals_fd(0, NULL);
	notify_ready(cfg.ready_fd);
	return loop(sfd);
}
