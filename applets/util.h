/*
 * What every applet shares: the error family (die, warn), the fixed exit
 * codes, and bounded number parsing. The applet name in messages is set
 * once by the dispatcher.
 */
#ifndef SOCKGATE_UTIL_H
#define SOCKGATE_UTIL_H

#include <stdarg.h>
#include <stdio.h>

/* Exit codes, written in every man page. */
#define EX_OK 0
#define EX_BADINPUT 1
#define EX_USAGE 100
#define EX_SYSFAIL 111
#define EX_NOAPPLET 127
/* sockgate-run, as env(1): the program was found but cannot run / was not found */
#define EX_CANNOTRUN 126
#define EX_NOTFOUND 127

extern const char *progname;	/* "sockgate-relay" */

#define APPLET(name, fn, summary) int fn(int argc, char **argv);
#include "applets.h"
#undef APPLET

/* "PROG: fatal: MESSAGE" and exit(code). */
void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
/* "PROG: fatal: MESSAGE: strerror(errno)" and exit(EX_SYSFAIL). */
void die_sys(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* "PROG: warning: MESSAGE" */
void warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: warning: MESSAGE: strerror(errno)" */
void warn_sys(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "PROG: info: MESSAGE" when verbose is on */
extern int verbose;
void info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print usage to stderr and exit EX_USAGE. */
void usage_die(const char *usage) __attribute__((noreturn));

/*
 * Handle --help and --version as the first argument (prints, exits 0).
 * usage is the SYNOPSIS text without the "usage: " prefix.
 */
void std_options(int argc, char **argv, const char *usage);

/* A number from outside, in [min,max]; dies with EX_BADINPUT naming what. */
long long num_arg(const char *s, long long min, long long max, const char *what);

/* A file mode in octal (0 to 07777); dies with EX_BADINPUT: "WHATS: not an octal mode". */
long mode_arg(const char *s, const char *what);

/* Read a whole file (or "-" for stdin); malloc'd, NUL-terminated. NULL+errno. */
char *read_file(const char *path, size_t *len);

/*
 * Block SIGTERM, SIGINT, SIGHUP (and extra, when > 0) and return a
 * non-blocking signalfd that reads them; the old mask goes to old when
 * given (for children). Dies when it cannot.
 */
#include <signal.h>
int signals_fd(int extra, sigset_t *old);

/*
 * A Unix datagram socket bound at path, receiving passed fds and their
 * senders' credentials (SO_PASSCRED): a socket file left there by an
 * earlier run is replaced, a live one is not (dies with "Address already
 * in use"), and the file gets mode unless mode < 0.
 * flags: SOCK_NONBLOCK. Dies when it cannot.
 */
int unix_receiver(const char *path, long mode, int flags);

/* --- daemon plumbing (daemon.c) --- */
#include <sys/types.h>

/*
 * What a receiver of passed fds takes (fdpass_fd_check, fdpass_sender_ok):
 * type 0 any, families 0 any, sockets_only 0 any fd at all; uid/gid the
 * senders allowed besides root and ourselves ((uid_t)-1: none).
 */
struct recv_policy {
	int type;
	unsigned families;
	int sockets_only;
	uid_t uid;
	gid_t gid;
};

/* --sender USER[:GROUP] (or :GROUP) into p->uid / p->gid; dies when unknown. */
void sender_arg(const char *s, struct recv_policy *p);

/*
 * One passed fd from receiver socket s (made by unix_receiver), checked by
 * policy: what fails is closed with a warning naming where, the sender and
 * why, and the next message is read (so is one without an fd). Returns the
 * data length with the fd in *fd (0: no record, or one too long for buf,
 * warned), or -1 with errno (EAGAIN with MSG_DONTWAIT).
 */
ssize_t recv_passed(int s, int *fd, void *buf, size_t size, int flags, const struct recv_policy *p,
		    const char *where);

/*
 * A user by name or number (a number is looked up too). *primary gets its
 * passwd group, or for a number with no passwd entry the number itself;
 * *has_entry says which. Dies with EX_BADINPUT for an unknown name.
 */
uid_t user_lookup(const char *s, gid_t *primary, int *has_entry);
/* A group by name or number; dies with EX_BADINPUT for an unknown name. */
gid_t group_lookup(const char *s);

/* -u USER, -g GROUP, -G LIST, -k, --chroot DIR; NULL / 0 when not given. */
struct privs {
	const char *user, *group, *groups, *chroot;
	int keepgroups;
};
/*
 * Drop privileges in one block: chroot, supplementary groups (exactly
 * -G's, or with -k the user's from the group file, else only the primary
 * group: none of the launcher's stay), gid, uid, no_new_privs. --chroot
 * without -u warns (still root). Returns 1 when chrooted. Dies on failure.
 */
int privs_drop(const struct privs *p);

/*
 * Rules from path (text or compiled; NULL: none) followed by the text
 * extra (NULL: none). Bad rules: with fatal, die EX_BADINPUT with
 * "PATH:LINE:COL: why" (or "PATH: compiled rules: why"), unreadable: die
 * EX_SYSFAIL; without fatal, warn "(keeping the old rules)" and NULL.
 */
struct ruleset;
struct ruleset *rules_from_file(const char *path, const char *extra, int fatal);

/* Write a readiness line "ready\n" to fd, then close it (fd < 0: nothing). */
void notify_ready(int fd);

#endif
