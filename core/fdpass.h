/*
 * fdpass: passing file descriptors over AF_UNIX sockets with SCM_RIGHTS,
 * plus the small versioned metadata record that goes with a passed socket
 * (see sockgate-server(8), HAND-OFF PROTOCOL).
 *
 * Metadata record, version 1 (integers big-endian, as on the wire):
 *   u8 version (1), u8 flags, u16 record length,
 *   u8 local family, u8 remote family (AF_INET / AF_INET6 / 0),
 *   u16 local port, u16 remote port, 16-byte local address, 16-byte remote
 *   address (IPv4 in the first 4 bytes), u8 rule name length, name bytes.
 * A receiver must accept longer records of the same version (skip the rest).
 */
#ifndef SOCKGATE_FDPASS_H
#define SOCKGATE_FDPASS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

#define FDPASS_MAXFDS 16
#define FDPASS_META_VERSION 1
#define FDPASS_META_MAXLEN 512

struct fdpass_meta {
	int version;
	struct sockaddr_storage local, remote;	/* AF_UNSPEC when unknown */
	socklen_t local_len, remote_len;
	char rule[256];				/* rule name, "" when none */
};

/*
 * Send nfds fds (1..FDPASS_MAXFDS) with len bytes of data (at least one byte
 * is always sent). Never raises SIGPIPE; retries EINTR. flags: MSG_DONTWAIT.
 * Returns 0 or -1 with errno.
 */
int fdpass_send(int sock, const int *fds, size_t nfds, const void *data, size_t len, int flags);

/*
 * Receive up to *nfds fds and up to len bytes. Fds beyond *nfds are closed;
 * received fds have FD_CLOEXEC set (MSG_CMSG_CLOEXEC). On return *nfds is the
 * count kept. Returns bytes of data (0 at EOF with no fds), or -1 with errno
 * (EINTR retried; EMSGSIZE when data or control was truncated - the fds are
 * still returned).
 */
ssize_t fdpass_recv(int sock, int *fds, size_t *nfds, void *data, size_t len, int flags);

/*
 * The same, also telling who sent the message: *cr gets the sender's
 * credentials from SCM_CREDENTIALS (the receiver set SO_PASSCRED, see
 * fdpass_receiver_setup) or, on a connected socket, from SO_PEERCRED;
 * cr->pid 0 and uid/gid (uid_t)-1 / (gid_t)-1 when neither says. flags are
 * recvmsg()'s: MSG_CMSG_CLOEXEC is not added here.
 */
struct ucred;
ssize_t fdpass_recv_from(int sock, int *fds, size_t *nfds, void *data, size_t len, int flags,
			 struct ucred *cr);

/*
 * Fds and credentials out of a message recvmsg() returned: up to *nfds fds
 * kept (the rest closed; *nfds set to the count kept), *cr as above (NULL:
 * not wanted). For receivers that call recvmsg() themselves (the preload).
 */
void fdpass_parse(struct msghdr *mh, int *fds, size_t *nfds, struct ucred *cr);

/*
 * How long a receiver that takes one connection per hand-off (a SOCK_STREAM
 * listener, sockgate-server(8) HAND-OFF PROTOCOL) waits for the record
 * after accept(): a sender writes it right after connect(), so only a
 * sender that never writes makes a receiver wait this long.
 */
#define FDPASS_RECORD_WAIT_MS 200

/* Ask the kernel to attach every sender's credentials (SO_PASSCRED). 0/-1. */
int fdpass_receiver_setup(int sock);

/*
 * Who may hand us sockets: root, the receiver's own effective uid, and
 * the uid and the gid given ((uid_t)-1 / (gid_t)-1: none). 1 allowed, 0 not
 * (also when the credentials are unknown).
 */
int fdpass_sender_ok(const struct ucred *cr, uid_t uid, gid_t gid);

/*
 * Is fd what a receiver expects: a socket, of type (SOCK_STREAM, ...; 0:
 * any) and of one of the families in the mask of FDPASS_FAM_* (0: any)?
 * Its family (AF_INET, ...: a receiver need not ask again), or -1 with
 * ENOTSOCK, EPROTOTYPE (type) or EAFNOSUPPORT (family).
 */
#define FDPASS_FAM_INET 1u
#define FDPASS_FAM_INET6 2u
#define FDPASS_FAM_UNIX 4u
int fdpass_fd_check(int fd, int type, unsigned families);

/* Encode a metadata record; length, or -1 with ENOSPC / EAFNOSUPPORT. */
ssize_t fdpass_meta_encode(const struct fdpass_meta *m, void *buf, size_t size);

/* Decode; 0 or -1 with EINVAL (malformed) / EPROTONOSUPPORT (version). */
int fdpass_meta_decode(const void *buf, size_t len, struct fdpass_meta *m);

/*
 * Check the peer's credentials: uid and gid must match unless (uid_t)-1 /
 * (gid_t)-1. 0, or -1 with EPERM (mismatch) or the getsockopt errno.
 */
int fdpass_peer_check(int sock, uid_t uid, gid_t gid);

#endif
