/*
 * stopt ADDR PORT: a client built with musl-gcc -static, so no preload
 * reaches it. Connects (blocking) to the IPv4 ADDR:PORT, sets TCP_NODELAY
 * 1, TCP_KEEPIDLE 30, TCP_KEEPINTVL 5, TCP_KEEPCNT 4 and SO_KEEPALIVE 1,
 * and prints what getsockopt() reads back, with SO_DOMAIN, SO_PROTOCOL and
 * TCP_INFO's state (1, ESTABLISHED, from a kernel's TCP socket):
 * "nodelay 1 keepidle 30 keepintvl 5 keepcnt 4 keepalive 1 domain 2
 * protocol 6 state 1". Exit 1 with "CALL: REASON" at the first failure.
 */
#define _GNU_SOURCE	/* musl: struct tcp_info */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int s;

static void set(int level, int name, const char *what, int v)
{
	if (setsockopt(s, level, name, &v, sizeof v) < 0) {
		printf("setsockopt %s: %s\n", what, strerror(errno));
		exit(1);
	}
}

static int get(int level, int name, const char *what)
{
	int v = -1;
	socklen_t l = sizeof v;

	if (getsockopt(s, level, name, &v, &l) < 0 || l != sizeof v) {
		printf("getsockopt %s: %s\n", what, l != sizeof v ? "wrong length" : strerror(errno));
		exit(1);
	}
	return v;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct tcp_info ti;
	socklen_t tl = sizeof ti;

	if (argc != 3 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1)
		return 100;
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	if ((s = socket(AF_INET, SOCK_STREAM, 0)) < 0 || connect(s, (struct sockaddr *)&a, sizeof a) < 0) {
		printf("connect: %s\n", strerror(errno));
		return 1;
	}
	set(IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY", 1);
	set(IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE", 30);
	set(IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL", 5);
	set(IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT", 4);
	set(SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE", 1);
	printf("nodelay %d keepidle %d keepintvl %d keepcnt %d keepalive %d domain %d protocol %d",
	       get(IPPROTO_TCP, TCP_NODELAY, "TCP_NODELAY"), get(IPPROTO_TCP, TCP_KEEPIDLE, "TCP_KEEPIDLE"),
	       get(IPPROTO_TCP, TCP_KEEPINTVL, "TCP_KEEPINTVL"), get(IPPROTO_TCP, TCP_KEEPCNT, "TCP_KEEPCNT"),
	       get(SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE"), get(SOL_SOCKET, SO_DOMAIN, "SO_DOMAIN"),
	       get(SOL_SOCKET, SO_PROTOCOL, "SO_PROTOCOL"));
	memset(&ti, 0xff, sizeof ti);
	if (getsockopt(s, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0) {
		printf("\ngetsockopt TCP_INFO: %s\n", strerror(errno));
		return 1;
	}
	printf(" state %d\n", ti.tcpi_state);
	return 0;
}
