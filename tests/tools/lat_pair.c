/*
 * Latency of one HTTP request per TCP connection to two ports, measured in
 * the same time window, for tests/bench/server.sh:
 *   lat_pair A B N
 * A and B are each a port on 127.0.0.1 or unix:PATH (a Unix stream socket,
 * for the preload benchmark: the same server reached directly and through
 * a rule). Makes N connections to each, one at a time, A and B
 * alternating (ABBA order, so neither always goes first); each is connect,
 * "GET / HTTP/1.0", read to EOF, close, timed with CLOCK_MONOTONIC. Prints
 *   A p50 p90 p99 p999
 *   B p50 p90 p99 p999
 * in microseconds. On a shared machine the tail comes from what else runs;
 * interleaving gives both ports the same tail, so B's p99 minus A's p99 is
 * what B itself adds (two separate wrk runs each see different noise).
 * Exits 1 when a request fails or an answer is not "HTTP/1.x 200".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

struct target {
	const char *name;
	union {
		struct sockaddr sa;
		struct sockaddr_in sin;
		struct sockaddr_un sun;
	} u;
	socklen_t len;
};

static int target(const char *arg, struct target *t)
{
	memset(t, 0, sizeof *t);
	t->name = arg;
	if (!strncmp(arg, "unix:", 5)) {
		if (strlen(arg + 5) >= sizeof t->u.sun.sun_path)
			return -1;
		t->u.sun.sun_family = AF_UNIX;
		strcpy(t->u.sun.sun_path, arg + 5);
		t->len = sizeof t->u.sun;
		return 0;
	}
	long port = atol(arg);
	if (port < 1 || port > 65535)
		return -1;
	t->u.sin.sin_family = AF_INET;
	t->u.sin.sin_port = htons((unsigned short)port);
	t->u.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t->len = sizeof t->u.sin;
	return 0;
}

/* one request; returns microseconds, or -1 */
static double one(const struct target *t)
{
	char buf[4096];
	size_t n = 0;

	double t0 = now_us();
	int s = socket(t->u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -1;
	if (connect(s, &t->u.sa, t->len) < 0 ||
	    write(s, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
		close(s);
		return -1;
	}
	for (;;) {
		ssize_t r = read(s, n < sizeof buf ? buf + n : buf, n < sizeof buf ? sizeof buf - n : sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			close(s);
			return -1;
		}
		if (r == 0)
			break;
		if (n < sizeof buf)
			n += (size_t)r;
	}
	close(s);
	double t1 = now_us();
	if (n < 12 || memcmp(buf, "HTTP/1.", 7) || memcmp(buf + 8, " 200", 4))
		return -1;
	return t1 - t0;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(const double *v, long n, double p)
{
	long i = (long)(p * (double)n);
	return v[i < n ? i : n - 1];
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: lat_pair A B N (A, B: PORT or unix:PATH)\n");
		return 2;
	}
	struct target port[2];
	long n = atol(argv[3]);
	if (target(argv[1], &port[0]) || target(argv[2], &port[1]) || n < 1) {
		fprintf(stderr, "usage: lat_pair A B N (A, B: PORT or unix:PATH)\n");
		return 2;
	}
	double *v[2] = { calloc((size_t)n, sizeof(double)), calloc((size_t)n, sizeof(double)) };
	if (!v[0] || !v[1])
		return 2;
	/* warm both paths up */
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 50; i++)
			one(&port[k]);
	for (long i = 0; i < n; i++) {
		for (int j = 0; j < 2; j++) {
			int k = (i & 1) ? !j : j;	/* AB, BA, AB, ... */
			double t = one(&port[k]);
			if (t < 0) {
				fprintf(stderr, "lat_pair: request %ld to %s failed\n", i, port[k].name);
				return 1;
			}
			v[k][i] = t;
		}
	}
	for (int k = 0; k < 2; k++) {
		qsort(v[k], (size_t)n, sizeof(double), cmp);
		printf("%c %.0f %.0f %.0f %.0f\n", 'A' + k, pct(v[k], n, 0.5), pct(v[k], n, 0.9),
		       pct(v[k], n, 0.99), pct(v[k], n, 0.999));
	}
	return 0;
}
