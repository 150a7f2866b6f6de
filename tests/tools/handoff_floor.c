/*
 * The floor of a per-connection hand-off, for tests/bench/handoff.sh: what
 * any program that accepts TCP and passes each socket on can reach on this
 * machine, with none of sockgate-server's work (no rules, no metadata
 * addresses, no sender checks, no queue of its own):
 *   handoff_floor PORT PATH
 * accepts on 127.0.0.1:PORT and sends each accepted socket, with a zeroed
 * metadata record, to the datagram receiver at PATH (blocking when its queue
 * is full), then closes its copy. Prints "ready" when it takes connections.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "addr.h"
#include "fdpass.h"

int main(int argc, char **argv)
{
	struct sg_addr to;
	if (argc != 3 || addr_unix(&to, argv[2], 0) < 0) {
		fprintf(stderr, "usage: handoff_floor PORT PATH\n");
		return 100;
	}
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1])),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int u = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	if (l < 0 || u < 0 || ep < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    bind(l, (struct sockaddr *)&in, sizeof in) < 0 || listen(l, 4096) < 0 ||
	    connect(u, &to.u.sa, to.len) < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) < 0) {
		perror("handoff_floor");
		return 111;
	}
	struct fdpass_meta m = { .version = FDPASS_META_VERSION };
	unsigned char meta[FDPASS_META_MAXLEN];
	ssize_t mlen = fdpass_meta_encode(&m, meta, sizeof meta);
	if (mlen < 0)
		return 111;
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		if (epoll_wait(ep, &ev, 1, -1) < 0 && errno != EINTR)
			return 111;
		int c;
		while ((c = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			while (fdpass_send(u, &c, 1, meta, (size_t)mlen, 0) < 0 && errno == EINTR)
				;
			close(c);
		}
	}
}
