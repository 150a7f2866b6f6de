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

/*
 * What the library can reach of the executable at path: 0 a dynamically
 * linked program, 1 a static one (no ELF interpreter), 2 a Go program,
 * -1 not an ELF file or unreadable.
 */
#define ELF_DYNAMIC 0
#define ELF_STATIC 1
#define ELF_GO 2
int elf_kind(const char *path);

/* One warning line naming --seccomp when the library cannot reach program (looked up in PATH). */
void seccomp_hint(const char *program);

/* Take libsockgate.so out of LD_PRELOAD (the filter acts instead). */
void preload_drop_self(void);

#endif
