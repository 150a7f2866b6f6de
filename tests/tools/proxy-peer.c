/*
 * proxy-peer: a PROXY protocol peer for the bats suites, built on
 * core/proxyv2, for interop with real programs (nginx reading our headers,
 * haproxy writing headers we read).
 *
 *   proxy-peer send [-1cdL] [-a AUTH] [-N NETNS] [-u UID] [-k CHUNK] SRC DST TARGET
 *	connect to TARGET, write a header saying SRC -> DST (v2, or v1 with
 *	-1; "-" for no address), then stdin; half-close; copy the reply to
 *	stdout. -c adds CRC32C, -d says UDP, -L sends LOCAL; -k writes in
 *	CHUNK-byte pieces, 2 ms apart, so the receiver sees them arrive.
 *
 *   proxy-peer recv [-r] [-n COUNT] LISTEN
 *	listen on LISTEN (unix:/path, 127.0.0.1:0, ...), print
 *	"listening ADDR", then for COUNT connections (default 1, 0 = forever)
 *	read a header -- never more bytes than the parser says it needs, so the
 *	payload stays in the socket -- then the payload to EOF, and print one
 *	line describing both (also sent back to the client with -r).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"
#include "proxyv2.h"

static void die(const char *what)
{
	fprintf(stderr, "proxy-peer: %s: %s\n", what, strerror(errno));
	exit(111);
}

static void usage(void)
{
	fprintf(stderr, "usage: proxy-peer send [-1cdL] [-a AUTH] [-N NETNS] [-u UID] [-k CHUNK] SRC DST TARGET\n"
	    "       proxy-peer recv [-r] [-n COUNT] LISTEN\n");
	exit(100);
}

static void parse_addr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	struct sg_addr a;

	memset(ss, 0, sizeof *ss);
	*len = 0;
	if (!strcmp(s, "-"))
		return;
	if (addr_parse(s, &a) < 0) {
		fprintf(stderr, "proxy-peer: bad address %s\n", s);
		exit(1);
	}
	memcpy(ss, &a.u.ss, a.len);
	*len = a.len;
}

static void writeall(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t w;

	while (len) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write");
		p += w;
		len -= (size_t)w;
	}
}

/* printable text as is, the rest as \xNN */
static void esc(char *out, size_t size, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t o = 0, i;

	for (i = 0; i < len && o + 5 < size; i++) {
		if (p[i] >= 0x21 && p[i] < 0x7f && p[i] != '\\')
			out[o++] = (char)p[i];
		else
			o += (size_t)snprintf(out + o, size - o, "\\x%02x", p[i]);
	}
	out[o] = 0;
}

static int do_send(int argc, char **argv)
{
	static char data[1 << 20];
	uint8_t hdr[PROXY_MAXLEN];
	struct proxy_hdr h;
	struct sg_addr t;
	size_t dlen = 0, chunk = 0, off, k;
	unsigned opts = 0;
	int c, v1 = 0, fd, l;
	ssize_t r;
	char *out;

	memset(&h, 0, sizeof h);
	h.command = PROXY_CMD_PROXY;
	h.socktype = SOCK_STREAM;
	while ((c = getopt(argc, argv, "1cdLa:N:u:k:")) != -1) {
		switch (c) {
		case '1': v1 = 1; break;
		case 'c': opts |= PROXYV2_CRC32C; break;
		case 'd': h.socktype = SOCK_DGRAM; break;
		case 'L': h.command = PROXY_CMD_LOCAL; break;
		case 'a':
			h.authority_len = strlen(optarg);
			snprintf(h.authority, sizeof h.authority, "%s", optarg);
			break;
		case 'N':
			h.netns_len = strlen(optarg);
			snprintf(h.netns, sizeof h.netns, "%s", optarg);
			break;
		case 'u':
			h.unique_id_len = strlen(optarg);
			if (h.unique_id_len > sizeof h.unique_id)
				h.unique_id_len = sizeof h.unique_id + 1;
			else
				memcpy(h.unique_id, optarg, h.unique_id_len);
			break;
		case 'k': chunk = (size_t)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	if (argc - optind != 3)
		usage();
	parse_addr(argv[optind], &h.src, &h.srclen);
	parse_addr(argv[optind + 1], &h.dst, &h.dstlen);
	if (addr_parse(argv[optind + 2], &t) < 0) {
		fprintf(stderr, "proxy-peer: bad target %s\n", argv[optind + 2]);
		return 1;
	}
	l = v1 ? proxyv1_build((char *)hdr, sizeof hdr, &h) : proxyv2_build(hdr, sizeof hdr, &h, opts);
	if (l < 0)
		die("build");
	while (dlen < sizeof data && (r = read(0, data + dlen, sizeof data - dlen)) > 0)
		dlen += (size_t)r;

	fd = socket(t.u.sa.sa_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (connect(fd, &t.u.sa, t.len) < 0)
		die("connect");
	out = malloc((size_t)l + dlen);
	if (!out)
		die("malloc");
	memcpy(out, hdr, (size_t)l);
	memcpy(out + l, data, dlen);
	if (!chunk)
		chunk = (size_t)l + dlen;
	for (off = 0; off < (size_t)l + dlen; off += k) {
		k = (size_t)l + dlen - off < chunk ? (size_t)l + dlen - off : chunk;
		if (off)
			usleep(2000);
		writeall(fd, out + off, k);
	}
	free(out);
	shutdown(fd, SHUT_WR);
	while ((r = read(fd, data, sizeof data)) > 0)
		writeall(1, data, (size_t)r);
	close(fd);
	return 0;
}

static int listen_on(const char *s)
{
	struct sg_addr a;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	char text[ADDR_STRLEN];
	int fd, one = 1;

	if (addr_parse(s, &a) < 0) {
		fprintf(stderr, "proxy-peer: bad listen address %s\n", s);
		exit(1);
	}
	fd = socket(a.u.sa.sa_family, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	if (a.u.sa.sa_family == AF_UNIX && a.u.un.sun_path[0])
		unlink(a.u.un.sun_path);
	else
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, &a.u.sa, a.len) < 0)
		die("bind");
	if (listen(fd, 64) < 0)
		die("listen");
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    addr_format((struct sockaddr *)&ss, sl, text, sizeof text) < 0)
		die("getsockname");
	printf("listening %s\n", text);
	fflush(stdout);
	return fd;
}

/* read up to len bytes, waiting at most 5 s; 0 at EOF, -1 on timeout */
static ssize_t read_some(int fd, void *buf, size_t len)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t r;

	if (poll(&p, 1, 5000) <= 0)
		return -1;
	do
		r = read(fd, buf, len);
	while (r < 0 && errno == EINTR);
	return r;
}

static void describe(char *line, size_t size, const struct proxy_hdr *h, size_t n, int reads)
{
	char a[ADDR_STRLEN], b[ADDR_STRLEN], t[600];
	size_t o;

	strcpy(a, "-");
	strcpy(b, "-");
	if (h->src.ss_family != AF_UNSPEC)
		addr_format((const struct sockaddr *)&h->src, h->srclen, a, sizeof a);
	if (h->dst.ss_family != AF_UNSPEC)
		addr_format((const struct sockaddr *)&h->dst, h->dstlen, b, sizeof b);
	o = (size_t)snprintf(line, size, "v%d %s %s src=%s dst=%s", h->version,
	    h->command == PROXY_CMD_LOCAL ? "LOCAL" : "PROXY",
	    h->socktype == SOCK_STREAM ? "stream" : h->socktype == SOCK_DGRAM ? "dgram" : "unspec", a, b);
	if (h->authority_len)
		o += (size_t)snprintf(line + o, size - o, " authority=%s", h->authority);
	if (h->netns_len)
		o += (size_t)snprintf(line + o, size - o, " netns=%s", h->netns);
	if (h->unique_id_len) {
		esc(t, sizeof t, h->unique_id, h->unique_id_len);
		o += (size_t)snprintf(line + o, size - o, " unique_id=%s", t);
	}
	snprintf(line + o, size - o, " crc32c=%s header=%zu reads=%d",
	    h->has_crc32c ? "yes" : "no", n, reads);
}

static void serve(int c, int reply)
{
	static uint8_t buf[PROXY_MAXLEN];
	static char data[4096];
	char line[2048], e[sizeof data * 4 + 8];
	struct proxy_hdr h;
	size_t have = 0, n = 0, dlen = 0;
	int r, reads = 0;
	ssize_t got;

	for (;;) {
		r = proxyv2_parse(buf, have, &h, &n);
		if (r == PROXY_DONE)
			break;
		if (r < 0) {
			esc(e, sizeof e, buf, have < 64 ? have : 64);
			snprintf(line, sizeof line, "invalid after %zu bytes: %.300s", have, e);
			goto out;
		}
		got = read_some(c, buf + have, n);	/* exactly what is missing */
		if (got <= 0) {
			snprintf(line, sizeof line, "%s after %zu bytes, needing %zu more",
			    got == 0 ? "eof" : "timeout", have, n);
			goto out;
		}
		reads++;
		have += (size_t)got;
	}
	if (have != n) {
		snprintf(line, sizeof line, "overread: header %zu bytes, read %zu", n, have);
		goto out;
	}
	describe(line, sizeof line, &h, n, reads);
	while (dlen < sizeof data && (got = read_some(c, data + dlen, sizeof data - dlen)) > 0)
		dlen += (size_t)got;
	esc(e, sizeof e, data, dlen);
	snprintf(line + strlen(line), sizeof line - strlen(line), " data=%.*s", 600, e);
out:
	printf("%s\n", line);
	fflush(stdout);
	strcat(line, "\n");
	if (reply && write(c, line, strlen(line)) < 0) {
		/* the client may be gone; nothing to tell it */
	}
}

static int do_recv(int argc, char **argv)
{
	int c, fd, cl, count = 1, reply = 0, i;

	while ((c = getopt(argc, argv, "rn:")) != -1) {
		switch (c) {
		case 'r': reply = 1; break;
		case 'n': count = atoi(optarg); break;
		default: usage();
		}
	}
	if (argc - optind != 1)
		usage();
	fd = listen_on(argv[optind]);
	for (i = 0; count == 0 || i < count; i++) {
		cl = accept(fd, NULL, NULL);
		if (cl < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		serve(cl, reply);
		close(cl);
	}
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		usage();
	if (!strcmp(argv[1], "send"))
		return do_send(argc - 1, argv + 1);
	if (!strcmp(argv[1], "recv"))
		return do_recv(argc - 1, argv + 1);
	usage();
	return 100;
}
