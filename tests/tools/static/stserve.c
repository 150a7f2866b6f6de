/*
 * stserve ADDR PORT N: a blocking TCP server built with musl-gcc -static.
 * Binds ADDR:PORT, prints "ready A:P" (getsockname), then accepts N
 * connections one by one with a blocking accept(): prints "from A:P" (the
 * address accept() gave), answers "bye\n" and closes. A signal's EINTR is
 * printed as "accept: Interrupted system call" and ends it (exit 4).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void show(const char *what, const struct sockaddr_storage *ss)
{
	char h[64];
	if (ss->ss_family == AF_INET)
		printf("%s %s:%d\n", what, inet_ntop(AF_INET, &((struct sockaddr_in *)ss)->sin_addr, h, sizeof h),
		       ntohs(((struct sockaddr_in *)ss)->sin_port));
	else
		printf("%s of family %d\n", what, ss->ss_family);
	fflush(stdout);
}

static void on_sig(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	struct sockaddr_storage ss;
	socklen_t len;

	if (argc != 4 || inet_pton(AF_INET, argv[1], &a.sin_addr) != 1)
		return 100;
	struct sigaction sa = { .sa_handler = on_sig };	/* no SA_RESTART: accept() says EINTR */
	sigaction(SIGUSR1, &sa, NULL);
	a.sin_port = htons((unsigned short)atoi(argv[2]));
	int s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 8) < 0) {
		fprintf(stderr, "bind: %s\n", strerror(errno));
		return 1;
	}
	len = sizeof ss;
	getsockname(s, (struct sockaddr *)&ss, &len);
	show("ready", &ss);
	for (int i = 0; i < atoi(argv[3]); i++) {
		len = sizeof ss;
		memset(&ss, 0, sizeof ss);
		int c = accept(s, (struct sockaddr *)&ss, &len);
		if (c < 0) {
			printf("accept: %s\n", strerror(errno));
			return 4;
		}
		show("from", &ss);
		if (write(c, "bye\n", 4) != 4)
			return 1;
		close(c);
	}
	return 0;
}
