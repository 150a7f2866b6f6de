/*
 * Between the files of sockgate-run --seccomp's supervisor (seccomp.h is
 * what run.c sees): seccomp.c (the loop, the program's memory and
 * descriptors, the answers), seccomp_filter.c (the BPF filter),
 * seccomp_stream.c (connect, bind, accept, names; the target, source and
 * header a rule gives) and seccomp_dgram.c (datagram sockets made AF_UNIX).
 * Only what crosses those files is here.
 */
#ifndef SOCKGATE_SECCOMP_INT_H
#define SOCKGATE_SECCOMP_INT_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "addr.h"
#include "fakeopt.h"
#include "rules.h"

#define HDR_MAX 1024
#define DG_IOV 64		/* iovecs of a redirected sendmsg()/recvmsg() */

/* A socket made here, as the program must see it. */
struct rec {
	ino_t ino;		/* 0: free */
	int listener;		/* a bind rule's socket (else a connection) */
	int family, type;	/* the program's socket family and type */
	int inet;		/* ours is a TCP socket (a tcp target): its options are real */
	int action;		/* for listeners: ACT_UNIX, ACT_ABSTRACT, ACT_FDPASS */
	uint32_t rflags;
	struct sockaddr_storage local, peer;
	socklen_t locallen, peerlen;
	struct fakeopt opts;	/* TCP/IP options set on it (core/fakeopt) */
};

/* struct msghdr as the kernel reads it on 64-bit Linux (include/linux/socket.h's user_msghdr) */
struct kmsghdr {
	uint64_t name;
	uint32_t namelen, pad0;
	uint64_t iov, iovlen, control, controllen;
	int32_t flags, pad1;
};

/* A sendto()/sendmsg()/recvfrom()/recvmsg(): where its data and address are. */
struct dcall {
	int msg;
	struct kmsghdr mh;
	uint64_t mhaddr;
	struct iovec iov[DG_IOV];
	int niov;
	ssize_t total;
	uint64_t name, namelen;	/* recv*: namelen is where the length goes (recvfrom) */
	int flags;
};

/* A blocking accept() or recv with nothing there yet: answered when something comes. */
struct park {
	int used;
	uint64_t id;
	pid_t pid;
	uint64_t args[6];
	int lfd;		/* our copy of the listener (or of the datagram socket) */
	struct rec lr;
	int recv;		/* a recvfrom()/recvmsg(), else an accept */
	int64_t deadline;	/* for recv: SO_RCVTIMEO's end, or 0 */
	ino_t ino;		/* for recv: the datagram socket */
	struct dcall dc;
};

/* A connect(), bind() or sendto() with an address a rule is about (call_open()). */
struct call {
	struct sockaddr_storage sa, dst;	/* as given; IPv4-mapped made IPv4 */
	const struct ruleset *rs;
	const struct rule *r;
	int fd, cloexec, domain, type;
};

/* seccomp.c: the rules, the program's memory and descriptors, the answers */
const struct rule *sc_match(int dir, int proto, const struct sockaddr *sa, const struct ruleset **rsp);
int mem_iov(pid_t pid, void *buf, size_t len, const struct iovec *riov, int n, int write);
int mem_io(pid_t pid, uint64_t addr, void *buf, size_t len, int write);
int still_valid(uint64_t id);
int read_sockaddr(const struct seccomp_notif *n, uint64_t ptr, uint64_t len, struct sockaddr_storage *ss);
int take_fd(pid_t tid, int fd, int *cloexec);
ino_t fd_ino(pid_t tid, uint64_t fd);
struct rec *rec_find(ino_t ino);
struct rec *rec_add(int fd);
void sc_answer(uint64_t id, int64_t val, int err);
void sc_pass(uint64_t id);
int sc_install(uint64_t id, int s, int fd, int cloexec, int send);
int swap_in(const struct seccomp_notif *n, int s, int cloexec, struct rec **rcp);
void set_nonblock(int s, int on);
int wait_fd(int s, short ev, int ms);
struct park *park_new(void);

/* seccomp_filter.c */
void build_filter(struct sock_fprog *prog, int strict, int binds, int fdpass, int dgrams, int swaps);

/* seccomp_stream.c: addresses, the rule's target and header, the stream calls */
socklen_t inet_len(int fam);
void sc_canon(const struct sockaddr_storage *in, struct sockaddr_storage *out);
socklen_t in_family(const struct sockaddr_storage *a, int fam, struct sockaddr_storage *out);
void any_addr(int fam, int loopback, struct sockaddr_storage *ss, socklen_t *len);
void pick_source(const struct ruleset *rs, const struct rule *r, const struct sockaddr_storage *dst,
		 int fam, struct sockaddr_storage *out, socklen_t *len);
int sc_target(const struct ruleset *rs, const struct rule *r, const struct sockaddr_storage *dst,
	      struct sg_addr *ta);
int sc_header(const struct rule *r, const struct sockaddr_storage *src, const struct sockaddr_storage *dst,
	      int socktype, unsigned char *buf, size_t size);
int call_open(const struct seccomp_notif *n, uint64_t ptr, uint64_t len, int dir, int proto, struct call *c);
void on_connect(const struct seccomp_notif *n);
void on_name(const struct seccomp_notif *n, int peer);
void on_sockopt(const struct seccomp_notif *n, int set);
void on_bind(const struct seccomp_notif *n);
void on_listen(const struct seccomp_notif *n);
void on_accept(const struct seccomp_notif *n);
int try_accept(uint64_t id, pid_t pid, const uint64_t *args, int lfd, const struct rec *lr);

/* seccomp_dgram.c */
void dgram_connect(const struct seccomp_notif *n, const struct call *cl, const struct ruleset *rs,
		   const struct rule *r);
void on_send(const struct seccomp_notif *n);
void on_recv(const struct seccomp_notif *n);
int try_recv(uint64_t id, pid_t pid, const struct dcall *c, int s, ino_t ino);
void dgram_cleanup(void);

#endif
