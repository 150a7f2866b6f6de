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
 * A Unix datagram socket bound at path, receiving passed fds: a socket
 * file left there by an earlier run is replaced (nothing else is), and the
 * file gets mode unless mode < 0. flags: SOCK_NONBLOCK. Dies when it cannot.
 */
int unix_receiver(const char *path, long mode, int flags);

/* Write a readiness line "ready\n" to fd, then close it (fd < 0: nothing). */
void notify_ready(int fd);

#endif
