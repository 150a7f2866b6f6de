/*
 * Lookup costs for tests/bench/names.sh.
 *
 *   gai_bench alt NAME N             N getaddrinfo() calls as the program makes them
 *                                    (through libsockgate.so when preloaded), alternating
 *                                    with libc's own (dlsym RTLD_NEXT): "median-plt median-libc" ns
 *   gai_bench rate NAME THREADS SECS getaddrinfo() in THREADS threads: "lookups/s median-us"
 *   gai_bench proto PATH NAME THREADS SECS
 *                                    the resolver protocol on one connection per thread,
 *                                    one request at a time: "lookups/s median-us"
 */
#include <dlfcn.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "lookup.h"

static int64_t ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

static const char *name, *path;
static int64_t until;
#define MAXS 200000
static int64_t *samples;
static long nsamples;
static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;

static void note(int64_t d)
{
	pthread_mutex_lock(&lk);
	if (nsamples < MAXS)
		samples[nsamples] = d;
	nsamples++;
	pthread_mutex_unlock(&lk);
}

static void *gai_loop(void *arg)
{
	struct addrinfo h = { .ai_socktype = SOCK_STREAM }, *res;
	(void)arg;
	while (ns() < until) {
		int64_t t = ns();
		if (getaddrinfo(name, NULL, &h, &res) != 0) {
			fprintf(stderr, "getaddrinfo %s failed\n", name);
			exit(1);
		}
		freeaddrinfo(res);
		note(ns() - t);
	}
	return NULL;
}

static void *proto_loop(void *arg)
{
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	uint8_t buf[LOOKUP_MAX];
	struct lookup_req q = { .op = LOOKUP_NAME, .family = 0 };
	(void)arg;
	snprintf(un.sun_path, sizeof un.sun_path, "%s", path);
	snprintf(q.name, sizeof q.name, "%s", name);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&un, sizeof un) < 0) {
		perror("connect");
		exit(1);
	}
	while (ns() < until) {
		int64_t t = ns();
		int n = lookup_req_build(buf, sizeof buf, &q);
		if (write(fd, buf, (size_t)n) != n)
			exit(1);
		size_t got = 0, used;
		struct lookup_rep r;
		for (;;) {
			ssize_t k = read(fd, buf + got, sizeof buf - got);
			if (k <= 0)
				exit(1);
			got += (size_t)k;
			int pr = lookup_rep_parse(buf, got, &r, &used);
			if (pr < 0)
				exit(1);
			if (pr == LOOKUP_DONE)
				break;
		}
		if (r.status != LOOKUP_OK) {
			fprintf(stderr, "lookup of %s: %s\n", name, lookup_status_name(r.status));
			exit(1);
		}
		q.id++;
		note(ns() - t);
	}
	close(fd);
	return NULL;
}

static void run(void *(*fn)(void *), int threads, double secs)
{
	pthread_t t[256];
	samples = calloc(MAXS, sizeof *samples);
	int64_t start = ns();
	until = start + (int64_t)(secs * 1e9);
	for (int i = 0; i < threads && i < 256; i++)
		pthread_create(&t[i], NULL, fn, NULL);
	for (int i = 0; i < threads && i < 256; i++)
		pthread_join(t[i], NULL);
	double el = (double)(ns() - start) / 1e9;
	long k = nsamples < MAXS ? nsamples : MAXS;
	qsort(samples, (size_t)k, sizeof *samples, cmp64);
	printf("%.0f %.1f\n", (double)nsamples / el, k ? (double)samples[k / 2] / 1000.0 : 0.0);
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "alt")) {
		long n = atol(argv[3]);
		gai_fn libc = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
		int64_t *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b);
		struct addrinfo h = { .ai_socktype = SOCK_STREAM }, *res;
		name = argv[2];
		for (long i = 0; i < n; i++) {
			int64_t t = ns();
			if (getaddrinfo(name, NULL, &h, &res))
				return 1;
			a[i] = ns() - t;
			freeaddrinfo(res);
			t = ns();
			if (libc(name, NULL, &h, &res))
				return 1;
			b[i] = ns() - t;
			freeaddrinfo(res);
		}
		qsort(a, (size_t)n, sizeof *a, cmp64);
		qsort(b, (size_t)n, sizeof *b, cmp64);
		printf("%lld %lld\n", (long long)a[n / 2], (long long)b[n / 2]);
		return 0;
	}
	if (argc == 5 && !strcmp(argv[1], "rate")) {
		name = argv[2];
		run(gai_loop, atoi(argv[3]), atof(argv[4]));
		return 0;
	}
	if (argc == 6 && !strcmp(argv[1], "proto")) {
		path = argv[2];
		name = argv[3];
		run(proto_loop, atoi(argv[4]), atof(argv[5]));
		return 0;
	}
	fprintf(stderr, "usage: gai_bench alt NAME N | rate NAME THREADS SECS | proto PATH NAME THREADS SECS\n");
	return 100;
}
