/*
 * The shared applet helpers declared in util.h.
 */
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"
#include "file.h"
#include "util.h"

#ifndef SOCKGATE_VERSION
#define SOCKGATE_VERSION "unknown"
#endif

const char *progname = "sockgate";
int verbose;

static void vmsg(const char *kind, int err, const char *fmt, va_list ap)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "%s: %s: ", progname, kind);

	if (n < 0 || (size_t)n >= sizeof buf)
		n = 0;
	vsnprintf(buf + n, sizeof buf - n, fmt, ap);
	if (err) {
		size_t l = strlen(buf);
		snprintf(buf + l, sizeof buf - l, ": %s", strerror(err));
	}
	/* one write, so lines from several processes do not interleave */
	size_t l = strlen(buf);
	if (l + 1 < sizeof buf) {
		buf[l++] = '\n';
	} else {
		buf[sizeof buf - 2] = '\n';
		l = sizeof buf - 1;
	}
	ssize_t r = write(2, buf, l);
	(void)r;
}

void die(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("fatal", 0, fmt, ap);
	va_end(ap);
	exit(code);
}

void die_sys(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vmsg("fatal", e, fmt, ap);
	va_end(ap);
	exit(EX_SYSFAIL);
}

void warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning", 0, fmt, ap);
	va_end(ap);
}

void warn_sys(const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	va_start(ap, fmt);
	vmsg("warning", e, fmt, ap);
	va_end(ap);
}

void info(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vmsg("info", 0, fmt, ap);
	va_end(ap);
}

void usage_die(const char *usage)
{
	fprintf(stderr, "usage: %s\n", usage);
	exit(EX_USAGE);
}

void std_options(int argc, char **argv, const char *usage)
{
	/* only among the leading options: a program's own "-h" is not ours */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--") || argv[i][0] != '-')
			break;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: %s\n", usage);
			exit(EX_OK);
		}
		if (!strcmp(argv[i], "--version")) {
			printf("%s %s\n", progname, SOCKGATE_VERSION);
			exit(EX_OK);
		}
	}
}

long long num_arg(const char *s, long long min, long long max, const char *what)
{
	const char *err = NULL;
	long long v = strtonum(s, min, max, &err);

	if (err)
		die(EX_BADINPUT, "%s %s: %s (allowed: %lld to %lld)", what, s, err, min, max);
	return v;
}

long mode_arg(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long m = strtol(s, &end, 8);
	if (errno || *end || end == s || *s == '-' || *s == '+' || m > 07777)
		die(EX_BADINPUT, "%s%s: not an octal mode", what, s);
	return m;
}

char *read_file(const char *path, size_t *len)
{
	return strcmp(path, "-") ? file_read(path, len) : file_read_fd(0, len);
}

void notify_ready(int fd)
{
	if (fd >= 0) {
		ssize_t r = write(fd, "ready\n", 6);
		(void)r;
		close(fd);
	}
	/* systemd's sd_notify(3) protocol, without libsystemd */
	const char *ns = getenv("NOTIFY_SOCKET");
	if (ns && (ns[0] == '/' || ns[0] == '@') && strlen(ns) < sizeof ((struct sockaddr_un *)0)->sun_path) {
		struct sockaddr_un un = { .sun_family = AF_UNIX };
		strcpy(un.sun_path, ns);
		if (un.sun_path[0] == '@')
			un.sun_path[0] = 0;
		int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (s >= 0) {
			sendto(s, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&un,
			       offsetof(struct sockaddr_un, sun_path) + strlen(ns));
			close(s);
		}
	}
}

int signals_fd(int extra, sigset_t *old)
{
	sigset_t ss;

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	if (extra > 0)
		sigaddset(&ss, extra);
	sigprocmask(SIG_BLOCK, &ss, old);
	int fd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		die_sys("unable to create a signalfd");
	return fd;
}
