/*
 * Connect latency for tests/bench/ctlfile.sh:
 *   ctl_bench N ADDR:PORT
 * N times: socket(), a blocking connect() to ADDR:PORT, close(); the
 * connect() call alone is timed with CLOCK_MONOTONIC. Prints the median
 * and the 90th percentile in nanoseconds. Run preloaded, with a rule that
 * sends ADDR:PORT to a Unix socket, a control file, or a multiplexer.
 * Exits 1 when a connect fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "addr.h"

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sg_addr a;
	const char *e = NULL;
	long long n = argc == 3 ? strtonum(argv[1], 1, 1000000, &e) : 0;

	if (argc != 3 || e || addr_parse_inet(argv[2], &a) < 0) {
		fprintf(stderr, "usage: ctl_bench N ADDR:PORT\n");
		return 100;
	}
	double *t = malloc((size_t)n * sizeof *t);
	for (long long i = 0; i < n; i++) {
		struct timespec t0, t1;
		int s = socket(a.u.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int r = connect(s, &a.u.sa, a.len);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (r < 0) {
			perror("connect");
			return 1;
		}
		close(s);
		t[i] = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
	}
	qsort(t, (size_t)n, sizeof *t, cmp);
	printf("%.0f %.0f\n", t[n / 2], t[n * 9 / 10]);
	return 0;
}
