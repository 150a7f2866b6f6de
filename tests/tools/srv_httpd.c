/*
 * A minimal HTTP answerer for tests/bench/server.sh, so that the cost of a
 * hand-off by sockgate-server can be seen without any daemon's own work:
 *   srv_httpd tcp PORT      accept on 127.0.0.1:PORT itself
 *   srv_httpd fdpass PATH   receive passed sockets at PATH (datagram)
 * One thread, one connection at a time: read the request, answer, close.
 * Prints "ready" on stdout when it can take connections.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "addr.h"
#include "fdpass.h"

static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nbenchmark\n";

static void answer(int c)
{
	char buf[4096];
	size_t n = 0;
	/* the whole request head, then the answer */
	while (n < sizeof buf - 1) {
		ssize_t r = read(c, buf + n, sizeof buf - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = 0;
		if (strstr(buf, "\r\n\r\n"))
			break;
	}
	ssize_t w = write(c, reply, sizeof reply - 1);
	(void)w;
	close(c);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: srv_httpd tcp PORT | srv_httpd fdpass PATH\n");
		return 100;
	}
	int s;
	if (!strcmp(argv[1], "tcp")) {
		struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
		in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		int one = 1;
		s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (s < 0 || bind(s, (struct sockaddr *)&in, sizeof in) < 0 || listen(s, 4096) < 0) {
			perror("srv_httpd: tcp");
			return 111;
		}
		printf("ready\n");
		fflush(stdout);
		for (;;) {
			int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0)
				answer(c);
		}
	}
	struct sg_addr a;
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	unlink(argv[2]);
	if (s < 0 || addr_unix(&a, argv[2], 0) < 0 || bind(s, &a.u.sa, a.len) < 0) {
		perror("srv_httpd: fdpass");
		return 111;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int c;
		size_t nf = 1;
		unsigned char meta[FDPASS_META_MAXLEN];
		if (fdpass_recv(s, &c, &nf, meta, sizeof meta, 0) < 0 && errno != EMSGSIZE)
			continue;
		if (nf == 1)
			answer(c);
	}
}
