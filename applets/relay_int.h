/*
 * Between the files of sockgate-relay: relay.c (options, the epoll loop,
 * signals, timeouts, the end), relay_conn.c (one connection, from its
 * header to its end: the route, the connect and its fallback, the splice
 * pump, broker requests, the pipe pool) and relay_listen.c (the
 * listeners: opening them, accepting, passed sockets, pausing at the
 * limits). The resolver (resolver.c) has its own resolver.h. Only what
 * crosses those files is here.
 */
#ifndef SOCKGATE_RELAY_INT_H
#define SOCKGATE_RELAY_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "addr.h"
#include "relayconn.h"
#include "resolver.h"
#include "util.h"

enum { K_LISTEN = 1, K_FDPASS, K_CLIENT, K_TARGET, K_SIGNAL, K_RESOLVE, K_DNS, K_DNSTCP };
enum { ST_HEADER = 1, ST_CONNECTING, ST_RETRY, ST_RELAY, ST_BROKER };
enum { L_INFO, L_WARN };

/*
 * What one connection may hold at once: the client, the target, and a pipe
 * (two fds) each way. The relay accepts only while that many are free for
 * every connection it holds, so an accepted client is never dropped for
 * want of an fd: at the limit the rest wait in the listen backlog.
 */
#define FDS_PER_CONN 6

struct relay_cfg {
	int verbose;
	const char *rules_file;
	char *rules_inline;
	int proxy_in, proxy_out;	/* proxy_out: 0, 1 or 2 */
	long max_conns;			/* 0: no limit */
	int64_t connect_ms, idle_ms, header_ms, grace_ms;
	int reuseport, backlog;
	unsigned pipe_max;
	int ready_fd;
	struct privs privs;
	struct resolver_opts res;
	int resolver;			/* a resolve:, dns: or dnstcp: listener */
	int original;			/* target "original" */
	struct sg_addr target;
	char target_name[ADDR_STRLEN + 8];
};

struct lsn {
	int kind;			/* K_LISTEN or K_FDPASS */
	int fd;
	int paused;
	int broker;			/* listener option broker: serves broker requests */
	char *unlink_path;		/* a socket file we made, removed at exit */
	char name[ADDR_STRLEN + 32];
	struct lsn *next;
};

struct pipebuf;			/* relay_conn.c's pipe pool */

struct dir {				/* one direction: from one socket to the other */
	struct pipebuf *p;
	struct relaydir s;		/* what was read, written, ended (core/relayconn) */
	unsigned rearm:1;
};

struct fallback;		/* relay_conn.c: other addresses of the name */

struct conn;
struct side {
	int kind;			/* K_CLIENT or K_TARGET */
	int fd;
	unsigned rd:1, wr:1, in_ep:1, hup:1;	/* hup: the peer shut down its write side */
	struct conn *c;
};

struct conn {
	struct side cl, tg;
	struct dir up, down;		/* up: client to target */
	int state, dead;
	int64_t start, deadline, connect_deadline;
	unsigned char *obuf;		/* PROXY header still to send to the target */
	size_t olen, ooff;
	struct sg_addr client, dest, target;
	char *host;			/* the name a name rule allowed the destination by */
	char *authority;		/* the incoming header's AUTHORITY TLV (original), or NULL */
	struct fallback *fb;		/* after a failed connect: other addresses of the name */
	pid_t cpid;			/* Unix clients: SO_PEERCRED at -v */
	uid_t cuid;
	int broker;			/* came on a listener with the broker option */
	struct conn *prev, *next;
};

/* What the loop, the connections and the listeners share: one instance, R. */
struct relay {
	struct relay_cfg cfg;
	int ep;
	int64_t now;
	int64_t accept_resume;
	struct lsn *lsns;
	struct conn *conns, *zombies;
	long nconns;
	int max_paused, stopping, chrooted;
	long fd_room;			/* fds for connections and pooled pipes */
	struct ruleset *rules;
};

extern struct relay R;

struct fdpass_meta;

/* relay.c: the loop's helpers */
const char *rl_fmt_addr(const struct sg_addr *a, char *buf, size_t size);
void rl_set_deadline(struct conn *c, int64_t t);
void rl_ep_add(int fd, void *obj, uint32_t events);
void rl_side_add(struct side *s);

/* relay_conn.c: a connection's state machine, and the pipe pool */
void conn_new(struct lsn *l, int fd, const struct sg_addr *peer, const struct fdpass_meta *m);
void conn_run(struct conn *c);
void conn_connect(struct conn *c);
void conn_connect_failed(struct conn *c, int e, int timeout);
void conn_end(struct conn *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void conn_pool_trim(long need);
void conn_pool_drain(void);

/* relay_listen.c: the listeners */
void lsn_open(const char *spec);
void lsn_fd_room(void);
void lsn_files_check(void);
void lsn_accept(struct lsn *l);
void lsn_recv(struct lsn *l);
void lsn_resume(void);
void lsn_close_all(void);
void lsn_free_all(void);

#endif
