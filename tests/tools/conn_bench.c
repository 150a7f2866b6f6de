/*
 * conn_bench KIND N [PATH]: the time connect() takes, for tests/bench/seccomp.sh.
 * A thread accepts and closes; the main thread makes N sockets, times each
 * connect() with CLOCK_MONOTONIC, closes it, and prints the median in ns.
 *   tcp       to its own listener on 127.0.0.1 (no rule matches it)
 *   unix      to its own Unix listener at PATH
 *   redirect  to 10.1.2.3:80, which a rule must send to its listener at PATH
 * Built twice: with glibc (for the preload) and statically with musl (for
 * sockgate-run --seccomp). Exits 1 when a connect fails.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int lfd;

static void *acceptor(void *arg)
{
	(void)arg;
	for (;;) {
		int c = accept(lfd, NULL, NULL);
		if (c >= 0)
			close(c);
	}
	return NULL;
}

static int cmp(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int n = argc > 2 ? atoi(argv[2]) : 0;
	int unix_ = argc > 3;

	if (n <= 0 || (strcmp(argv[1], "tcp") && !unix_))
		return 100;
	memset(&ss, 0, sizeof ss);
	if (unix_) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof un->sun_path, "%s", argv[3]);
		unlink(argv[3]);
		len = sizeof *un;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *in;
	}
	lfd = socket(ss.ss_family, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&ss, len) < 0 || listen(lfd, 512) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&ss, &len) < 0) {
		perror("listen");
		return 1;
	}
	if (!strcmp(argv[1], "redirect")) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		memset(&ss, 0, sizeof ss);
		in->sin_family = AF_INET;
		in->sin_port = htons(80);
		inet_pton(AF_INET, "10.1.2.3", &in->sin_addr);
		len = sizeof *in;
	}
	pthread_t t;
	pthread_create(&t, NULL, acceptor, NULL);
	long *ns = calloc((size_t)n, sizeof *ns);
	for (int i = 0; i < n; i++) {
		struct timespec a, b;
		int s = socket(ss.ss_family, SOCK_STREAM, 0);
		clock_gettime(CLOCK_MONOTONIC, &a);
		int r = connect(s, (struct sockaddr *)&ss, len);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (r < 0) {
			fprintf(stderr, "connect: %s\n", strerror(errno));
			return 1;
		}
		close(s);
		ns[i] = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
	}
	qsort(ns, (size_t)n, sizeof *ns, cmp);
	printf("%ld\n", ns[n / 2]);
	return 0;
}
