/*
 * studp sendto|sendmsg|connect ADDR PORT QUESTION: one DNS-like UDP
 * exchange from a program built with musl-gcc -static, so no preload
 * reaches it. sendto: sendto() and a blocking recvfrom(); sendmsg: the
 * same with sendmsg() and recvmsg(); connect: connect(), send(), recv()
 * and getpeername(). Prints "reply TEXT from A:P" (the source the call
 * gave, or the peer) and "local A:P" (getsockname). Exit 1 with
 * "CALL: REASON" when a call fails; a 5-second receive timeout.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>

static const char *show(const struct sockaddr_storage *ss, char *out, size_t size)
{
	char h[64] = "?";
	int port = 0;

	if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, h, sizeof h);
		port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, h, sizeof h);
		port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	} else {
		snprintf(h, sizeof h, "family %d", ss->ss_family);
	}
	snprintf(out, size, "%s:%d", h, port);
	return out;
}

static int fail(const char *what)
{
	perror(what);
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage to, from;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&to;
	socklen_t fl = sizeof from;
	char buf[1500], s1[96];
	ssize_t n;

	if (argc != 5)
		return 100;
	memset(&to, 0, sizeof to);
	a4->sin_family = AF_INET;
	a4->sin_port = htons((unsigned short)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &a4->sin_addr) != 1)
		return 100;
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	struct timeval tv = { 5, 0 };
	if (s < 0)
		return fail("socket");
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	memset(&from, 0, sizeof from);
	if (!strcmp(argv[1], "sendto")) {
		if (sendto(s, argv[4], strlen(argv[4]), 0, (struct sockaddr *)&to, sizeof *a4) < 0)
			return fail("sendto");
		if ((n = recvfrom(s, buf, sizeof buf - 1, 0, (struct sockaddr *)&from, &fl)) < 0)
			return fail("recvfrom");
	} else if (!strcmp(argv[1], "sendmsg")) {
		struct iovec v[2] = { { argv[4], 2 }, { argv[4] + 2, strlen(argv[4]) - 2 } };
		struct msghdr m = { .msg_name = &to, .msg_namelen = sizeof *a4, .msg_iov = v, .msg_iovlen = 2 };
		if (sendmsg(s, &m, 0) < 0)
			return fail("sendmsg");
		struct iovec r[2] = { { buf, 3 }, { buf + 3, sizeof buf - 4 } };
		struct msghdr rm = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = r, .msg_iovlen = 2 };
		if ((n = recvmsg(s, &rm, 0)) < 0)
			return fail("recvmsg");
		fl = rm.msg_namelen;
	} else if (!strcmp(argv[1], "connect")) {
		if (connect(s, (struct sockaddr *)&to, sizeof *a4) < 0)
			return fail("connect");
		if (send(s, argv[4], strlen(argv[4]), 0) < 0)
			return fail("send");
		if ((n = recv(s, buf, sizeof buf - 1, 0)) < 0)
			return fail("recv");
		if (getpeername(s, (struct sockaddr *)&from, &fl) < 0)
			return fail("getpeername");
	} else {
		return 100;
	}
	buf[n] = 0;
	printf("reply %s from %s (length %u)\n", buf, show(&from, s1, sizeof s1), (unsigned)fl);
	fl = sizeof from;
	if (getsockname(s, (struct sockaddr *)&from, &fl) < 0)
		return fail("getsockname");
	printf("local %s\n", show(&from, s1, sizeof s1));
	return 0;
}
