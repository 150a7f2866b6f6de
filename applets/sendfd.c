/*
 * sockgate-send-fd: pass one fd (stdin, a given fd, a newly opened file, a
 * connected or listening socket) to a receiver's AF_UNIX socket, or receive
 * one and exec a program with it. The message is the hand-off protocol of
 * sockgate-server(8): one fd by SCM_RIGHTS and a metadata record, so
 * sockgate-inetd and the preload's receivers take it as they take the
 * server's.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "addr.h"
#include "fdpass.h"
#include "util.h"

static const char usage[] =
	"sockgate-send-fd [-v] PATH [FD]\n"
	"       sockgate-send-fd [-v] --open FILE PATH\n"
	"       sockgate-send-fd [-v] --recv PATH [--as N] [-m MODE] [--sender USER[:GROUP]]\n"
	"                        [--any-fd] -- PROGRAM [ARGS ...]";

/* Connect to the receiver; datagram first, then the connection types. */
static int connect_receiver(const char *path)
{
	static const int types[] = { SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM };
	struct sg_addr a;
	if (addr_unix(&a, path, 0) < 0)
		die_sys("unable to use %s", path);
	for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
		int s = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		if (s < 0)
			die_sys("unable to create a unix socket");
		if (connect(s, &a.u.sa, a.len) == 0)
			return s;
		int e = errno;
		close(s);
		if (e != EPROTOTYPE) {
			errno = e;
			die_sys("unable to connect to unix:%s", path);
		}
	}
	errno = EPROTOTYPE;
	die_sys("unable to connect to unix:%s", path);
}

/* The record: an inet socket's own addresses, none for anything else. */
static size_t make_meta(int fd, unsigned char *buf)
{
	struct fdpass_meta m;
	memset(&m, 0, sizeof m);
	m.version = FDPASS_META_VERSION;
	m.local_len = sizeof m.local;
	if (getsockname(fd, (struct sockaddr *)&m.local, &m.local_len) < 0 ||
	    (m.local.ss_family != AF_INET && m.local.ss_family != AF_INET6)) {
		memset(&m.local, 0, sizeof m.local);
		m.local_len = 0;
	}
	m.remote_len = sizeof m.remote;
	if (m.local_len == 0 || getpeername(fd, (struct sockaddr *)&m.remote, &m.remote_len) < 0) {
		memset(&m.remote, 0, sizeof m.remote);
		m.remote_len = 0;
	}
	ssize_t n = fdpass_meta_encode(&m, buf, FDPASS_META_MAXLEN);
	if (n < 0)
		die_sys("unable to encode the metadata record");
	return (size_t)n;
}

static int do_send(const char *path, int fd, const char *what)
{
	unsigned char meta[FDPASS_META_MAXLEN];
	size_t mlen = make_meta(fd, meta);
	int s = connect_receiver(path);
	if (fdpass_send(s, &fd, 1, meta, mlen, 0) < 0)
		die_sys("unable to send %s to unix:%s", what, path);
	info("sent %s to unix:%s", what, path);
	close(s);
	return EX_OK;
}

static void setenv_addr(const char *ipvar, const char *portvar, const struct sockaddr *sa)
{
	char host[ADDR_STRLEN], port[8];
	if (addr_format_host(sa, host, sizeof host) < 0)
		return;
	snprintf(port, sizeof port, "%d", addr_port(sa));
	setenv(ipvar, host, 1);
	setenv(portvar, port, 1);
}

static int do_recv(const char *path, int as, long mode, const struct recv_policy *pol, char **prog)
{
	int s = unix_receiver(path, mode, 0);
	info("waiting on unix:%s", path);

	int fd;
	unsigned char buf[FDPASS_META_MAXLEN];
	ssize_t n = recv_passed(s, &fd, buf, sizeof buf, 0, pol, path);
	if (n < 0)
		die_sys("unable to receive on unix:%s", path);
	unlink(path);
	close(s);

	struct fdpass_meta m;
	if (n > 1 && fdpass_meta_decode(buf, (size_t)n, &m) == 0) {
		if (m.local.ss_family != AF_UNSPEC || m.remote.ss_family != AF_UNSPEC)
			setenv("PROTO", "TCP", 1);
		if (m.local.ss_family != AF_UNSPEC)
			setenv_addr("TCPLOCALIP", "TCPLOCALPORT", (struct sockaddr *)&m.local);
		if (m.remote.ss_family != AF_UNSPEC)
			setenv_addr("TCPREMOTEIP", "TCPREMOTEPORT", (struct sockaddr *)&m.remote);
		if (m.rule[0])
			setenv("SOCKGATE_RULE", m.rule, 1);
	}
	if (fd != as) {
		if (dup2(fd, as) < 0)
			die_sys("unable to move the received fd to %d", as);
		close(fd);
	} else {
		fcntl(as, F_SETFD, 0);
	}
	info("received an fd; running %s with it as fd %d", prog[0], as);
	/* the dispatcher ignores SIGPIPE for us; the program gets the default */
	signal(SIGPIPE, SIG_DFL);
	execvp(prog[0], prog);
	die_sys("unable to run %s", prog[0]);
}

int sendfd_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "open", required_argument, 0, 'o' },
		{ "recv", required_argument, 0, 'R' },
		{ "as", required_argument, 0, 'a' },
		{ "sender", required_argument, 0, 'S' },
		{ "any-fd", no_argument, 0, 'A' },
		{ 0, 0, 0, 0 },
	};
	const char *open_file = NULL, *recv_path = NULL;
	int as = -1, c, policy_set = 0;
	long mode = -1;
	struct recv_policy pol = { 0, 0, 1, (uid_t)-1, (gid_t)-1 };

	std_options(argc, argv, usage);
	while ((c = getopt_long(argc, argv, "+vm:", lo, NULL)) != -1) {
		switch (c) {
		case 'v': verbose = 1; break;
		case 'o': open_file = optarg; break;
		case 'R': recv_path = optarg; break;
		case 'a': as = (int)num_arg(optarg, 0, INT_MAX, "--as"); break;
		case 'm': mode = mode_arg(optarg, "-m "); break;
		case 'S': sender_arg(optarg, &pol); policy_set = 1; break;
		case 'A': pol.sockets_only = 0; policy_set = 1; break;
		default: usage_die(usage);
		}
	}
	argv += optind;
	argc -= optind;
	if (recv_path) {
		if (open_file || argc < 1)
			usage_die(usage);
		return do_recv(recv_path, as < 0 ? 0 : as, mode, &pol, argv);
	}
	if (as >= 0 || mode >= 0 || policy_set)
		usage_die(usage);
	if (open_file) {
		if (argc != 1)
			usage_die(usage);
		int fd = open(open_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			die_sys("unable to open %s", open_file);
		return do_send(argv[0], fd, open_file);
	}
	if (argc < 1 || argc > 2)
		usage_die(usage);
	int fd = argc == 2 ? (int)num_arg(argv[1], 0, INT_MAX, "FD") : 0;
	if (fcntl(fd, F_GETFD) < 0)
		die(EX_BADINPUT, "fd %d is not open", fd);
	char what[32];
	snprintf(what, sizeof what, "fd %d", fd);
	return do_send(argv[0], fd, what);
}
