/*
 * dgmap: the datagram client shared by libsockgate.so and sockgate-run
 * --seccomp, an inet UDP socket made AF_UNIX. It remembers which Unix
 * target stood for which inet destination, so that a reply's source can
 * be shown as the address the program sent to, and says where its own
 * socket file goes so that a server in another network namespace can
 * answer it (an autobound name belongs to one namespace).
 */
#ifndef SOCKGATE_DGMAP_H
#define SOCKGATE_DGMAP_H

#include <sys/socket.h>
#include <sys/un.h>

#define DGMAP_NAME ".sockgate-dgram-"	/* the client's socket file: NAME PID-SEQ */
#define DGMAP_N 8	/* targets remembered per socket (the oldest goes first) */

struct dgmap {
	struct dgmap_ent {
		struct sockaddr_un un;
		socklen_t unlen;
		struct sockaddr_storage in;
		socklen_t inlen;
	} e[DGMAP_N];
	unsigned n;
};

/* Datagrams to in went to un (unlen bytes, at most a sockaddr_un; inlen at most a sockaddr_storage). */
void dgmap_add(struct dgmap *m, const struct sockaddr_un *un, socklen_t unlen, const struct sockaddr *in,
	       socklen_t inlen);

/*
 * The inet address for a datagram from un (unlen bytes as recvfrom() gave
 * them; an entry matches when its own address is a prefix of them, so a
 * trailing NUL the kernel counts does not matter): its length, 0 when none.
 */
socklen_t dgmap_find(const struct dgmap *m, const struct sockaddr_un *un, socklen_t unlen,
		     struct sockaddr_storage *in);

/*
 * Where the client binds: DIR/.sockgate-dgram-PID-SEQ, DIR being dir or,
 * when dir is NULL, the directory of target's path. 0 and *out, or -1
 * (no directory: an abstract target and no dir; or the name too long).
 */
int dgmap_path(const char *dir, const struct sockaddr_un *target, long pid, unsigned seq, struct sockaddr_un *out,
	       socklen_t *outlen);

/*
 * A server's view of a client's reply file. The client named it in its own
 * mount namespace (a container that mounts the server's directory at
 * another path, or a server that has chrooted since), so the path it
 * reports may not exist for the server; but dgmap_path() put it beside the
 * server's socket. With sender (senderlen bytes, as recvfrom() gave it)
 * named .sockgate-dgram-* and server the server's own socket address
 * (getsockname()), *out is the same name in server's directory, with root
 * (the server's chroot directory, or NULL) taken off its front. 0, or -1
 * when sender is not such a file, server has no directory within root, the
 * result is too long, or it is sender's own path (nothing else to try).
 */
int dgmap_beside(const struct sockaddr_un *sender, socklen_t senderlen, const struct sockaddr_un *server,
		 socklen_t serverlen, const char *root, struct sockaddr_un *out, socklen_t *outlen);

#endif
