/*
 * sockgate-inetd: receive passed sockets on an AF_UNIX datagram socket (the
 * hand-off protocol of sockgate-server(8)) and run a program per socket
 * with the connection on fd 0 and 1 and the UCSPI environment (PROTO,
 * TCPLOCALIP, TCPLOCALPORT, TCPREMOTEIP, TCPREMOTEPORT), as s6-tcpserver
 * and tcpserver do for sockets they accept themselves.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "addr.h"
#include "fdpass.h"
#include "util.h"

static const char usage[] =
	"sockgate-inetd [-v] [-c MAXCHILDREN] [-m MODE] [-o USER[:GROUP]] [--sender USER[:GROUP]]\n"
	"       [--ready-fd FD]\n"
	"       PATH PROGRAM [ARGS ...]";

static long children, maxchildren = 40;

static void setenv_addr(const char *ipvar, const char *portvar, const struct sockaddr *sa)
{
	char host[ADDR_STRLEN], port[8];
	if (addr_format_host(sa, host, sizeof host) < 0) {
		unsetenv(ipvar);
		unsetenv(portvar);
		return;
	}
	snprintf(port, sizeof port, "%d", addr_port(sa));
	setenv(ipvar, host, 1);
	setenv(portvar, port, 1);
}

/* The metadata record's addresses, or the socket's own when it has none. */
static void set_env(int fd, const struct fdpass_meta *m)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int dom = 0, type = 0;
	socklen_t ol = sizeof dom;

	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &ol);
	ol = sizeof type;
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ol);
	const char *proto = dom == AF_UNIX ? "UNIX" : type == SOCK_DGRAM ? "UDP" : "TCP";
	setenv("PROTO", proto, 1);
	char lip[16], lport[16], rip[16], rport[16];
	snprintf(lip, sizeof lip, "%sLOCALIP", proto);
	snprintf(lport, sizeof lport, "%sLOCALPORT", proto);
	snprintf(rip, sizeof rip, "%sREMOTEIP", proto);
	snprintf(rport, sizeof rport, "%sREMOTEPORT", proto);
	if (m->local.ss_family != AF_UNSPEC) {
		setenv_addr(lip, lport, (const struct sockaddr *)&m->local);
	} else {
		sl = sizeof ss;
		if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
			setenv_addr(lip, lport, (struct sockaddr *)&ss);
	}
	if (m->remote.ss_family != AF_UNSPEC) {
		setenv_addr(rip, rport, (const struct sockaddr *)&m->remote);
	} else {
		sl = sizeof ss;
		if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
			setenv_addr(rip, rport, (struct sockaddr *)&ss);
	}
	if (m->rule[0])
		setenv("SOCKGATE_RULE", m->rule, 1);
	else
		unsetenv("SOCKGATE_RULE");
}

static void spawn(int fd, const struct fdpass_meta *m, char **prog, const sigset_t *oldmask)
{
	pid_t pid = fork();
	if (pid < 0) {
		warn_sys("unable to fork (connection closed)");
		close(fd);
		return;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, oldmask, NULL);
		signal(SIGPIPE, SIG_DFL);
		set_env(fd, m);
		if (dup2(fd, 0) < 0 || dup2(fd, 1) < 0)
			die_sys("unable to set up fd 0 and 1");
		if (fd > 1)
			close(fd);
		execvp(prog[0], prog);
		die_sys("unable to run %s", prog[0]);
	}
	close(fd);
	children++;
	if (verbose) {
		char r[ADDR_STRLEN] = "?";
		if (m->remote.ss_family != AF_UNSPEC)
			addr_format((const struct sockaddr *)&m->remote, m->remote_len, r, sizeof r);
		info("%s%s%s: pid %ld started (%ld running)", r, m->rule[0] ? " rule " : "", m->rule,
		     (long)pid, children);
	}
}

static int bind_receiver(const char *path, long mode, const char *owner)
{
	int s = unix_receiver(path, mode, SOCK_NONBLOCK);
	if (owner) {
		char buf[256];
		snprintf(buf, sizeof buf, "%s", owner);
		char *g = strchr(buf, ':');
		if (g)
			*g++ = 0;
		uid_t uid = (uid_t)-1;
		gid_t gid = (gid_t)-1;
		const char *err = NULL;
		if (buf[0]) {
			struct passwd *pw = getpwnam(buf);
			uid = pw ? pw->pw_uid : (uid_t)strtonum(buf, 0, UINT_MAX - 1, &err);
			if (err)
				die(EX_BADINPUT, "-o: unknown user %s", buf);
		}
		if (g && *g) {
			struct group *gr = getgrnam(g);
			gid = gr ? gr->gr_gid : (gid_t)strtonum(g, 0, UINT_MAX - 1, &err);
			if (err)
				die(EX_BADINPUT, "-o: unknown group %s", g);
		}
		if (chown(path, uid, gid) < 0)
			die_sys("unable to chown %s", path);
	}
	return s;
}

int inetd_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ready-fd", required_argument, 0, 'd' },
		{ "sender", required_argument, 0, 'S' },
		{ 0, 0, 0, 0 },
	};
	long mode = -1;
	const char *owner = NULL;
	int ready_fd = -1, c;
	/* what a program on fd 0 and 1 can use: an inet or unix socket */
	struct recv_policy pol = { 0, FDPASS_FAM_INET | FDPASS_FAM_INET6 | FDPASS_FAM_UNIX, 1, (uid_t)-1,
				   (gid_t)-1 };

	std_options(argc, argv, usage);
	while ((c = getopt_long(argc, argv, "+vc:m:o:d:", lo, NULL)) != -1) {
		switch (c) {
		case 'v': verbose = 1; break;
		case 'c': maxchildren = (long)num_arg(optarg, 1, 1000000, "-c"); break;
		case 'm': mode = mode_arg(optarg, "-m "); break;
		case 'o': owner = optarg; break;
		case 'S': sender_arg(optarg, &pol); break;
		case 'd': ready_fd = (int)num_arg(optarg, 0, INT_MAX, "--ready-fd"); break;
		default: usage_die(usage);
		}
	}
	if (argc - optind < 2)
		usage_die(usage);
	if (ready_fd >= 0 && fcntl(ready_fd, F_GETFD) < 0)
		die(EX_BADINPUT, "--ready-fd %d: not an open fd", ready_fd);
	const char *path = argv[optind];
	char **prog = argv + optind + 1;

	sigset_t old;
	int sfd = signals_fd(SIGCHLD, &old);

	int s = bind_receiver(path, mode, owner);
	struct stat mine;
	if (stat(path, &mine) < 0)
		die_sys("unable to stat %s", path);
	info("receiving on unix:%s", path);
	notify_ready(ready_fd);

	for (;;) {
		/* at the limit, leave sockets in the queue: the server waits or refuses */
		struct pollfd pfd[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = s, .events = POLLIN },
		};
		int n = poll(pfd, children < maxchildren ? 2 : 1, -1);
		if (n < 0 && errno != EINTR)
			die_sys("poll");
		if (n <= 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			int stop = 0;
			while (read(sfd, &si, sizeof si) == sizeof si)
				if (si.ssi_signo != SIGCHLD && si.ssi_signo != SIGHUP)
					stop = (int)si.ssi_signo;
			int st;
			pid_t pid;
			while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
				children--;
				if (WIFSIGNALED(st))
					info("pid %ld killed by signal %d", (long)pid, WTERMSIG(st));
				else
					info("pid %ld exited %d", (long)pid, WEXITSTATUS(st));
			}
			if (stop) {
				info("stopping on signal %d", stop);
				/* remove the socket file only if it is still ours */
				struct stat now;
				if (stat(path, &now) == 0 && now.st_ino == mine.st_ino && now.st_dev == mine.st_dev)
					unlink(path);
				return EX_OK;
			}
		}
		if (children >= maxchildren || !(pfd[1].revents & POLLIN))
			continue;
		while (children < maxchildren) {
			int fd;
			unsigned char buf[FDPASS_META_MAXLEN];
			ssize_t r = recv_passed(s, &fd, buf, sizeof buf, MSG_DONTWAIT, &pol, path);
			if (r < 0) {
				if (errno != EAGAIN)
					warn_sys("unable to receive");
				break;
			}
			struct fdpass_meta m;
			if (fdpass_meta_decode(buf, (size_t)r, &m) < 0) {
				if (r > 1)
					warn_sys("a bad metadata record (addresses taken from the socket)");
				memset(&m, 0, sizeof m);
			}
			spawn(fd, &m, prog, &old);
		}
	}
}
