/*
 * sockgate-run --seccomp: the rules applied to a program from outside, by a
 * supervisor answering its socket system calls (seccomp_unotify(2)).
 */
#ifndef SOCKGATE_SECCOMP_H
#define SOCKGATE_SECCOMP_H

#include "rules.h"

/*
 * Run argv under a seccomp filter and answer its notifications with the
 * rulesets (first match wins across them, in order). Returns only through
 * exit: with the program's status, or EX_SYSFAIL when the filter cannot be
 * installed.
 */
void seccomp_run(struct ruleset **rs, int nrs, char **argv) __attribute__((noreturn));

/* Take libsockgate.so out of LD_PRELOAD (the filter acts instead). */
void preload_drop_self(void);

#endif
