/*
 * libsockgate.so run as a program: it writes control files, from
 * sockgate-mkctl's options (the same code, mkctl_main()) or from unsock's
 * variables (UNSOCK_FILE with UNSOCK_VSOCK_PORT [UNSOCK_VSOCK_CID],
 * UNSOCK_FC_SOCK, or the five UNSOCK_TIPC_*), as unsock's library does.
 *
 * A shared object becomes runnable the way glibc's libc.so is: a .interp
 * section names the dynamic loader (the linker then writes a PT_INTERP
 * header), and the link sets the entry point (-Wl,-e,sg_prog_start). The
 * loader maps and relocates us, initialises libc, and jumps to the entry
 * with the stack as the kernel left it (argc, argv, envp) and no return
 * address, so the entry is a few lines of assembly that align the stack
 * and call C; that C never returns (it ends with _exit()). When the
 * library is preloaded instead, none of this runs: the loader ignores the
 * entry point and PT_INTERP of a library it loads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

#ifndef SG_INTERP
#if defined(__GLIBC__) && defined(__x86_64__)
#define SG_INTERP "/lib64/ld-linux-x86-64.so.2"
#elif defined(__GLIBC__) && defined(__aarch64__)
#define SG_INTERP "/lib/ld-linux-aarch64.so.1"
#elif !defined(__GLIBC__) && defined(__x86_64__)
#define SG_INTERP "/lib/ld-musl-x86_64.so.1"
#elif !defined(__GLIBC__) && defined(__aarch64__)
#define SG_INTERP "/lib/ld-musl-aarch64.so.1"
#endif
#endif

#ifdef SG_INTERP
__attribute__((section(".interp"), used)) static const char interp[] = SG_INTERP;

__attribute__((noreturn, used, visibility("hidden"))) void sg_prog_main(long *sp);

/* Entered with sp at argc, unaligned for C, no return address: align, call. */
#if defined(__x86_64__)
__asm__(".text\n"
	".globl sg_prog_start\n"
	".hidden sg_prog_start\n"
	".type sg_prog_start, @function\n"
	"sg_prog_start:\n"
	"	xor %ebp, %ebp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call sg_prog_main\n"
	"	hlt\n"
	".size sg_prog_start, . - sg_prog_start\n");
#elif defined(__aarch64__)
__asm__(".text\n"
	".globl sg_prog_start\n"
	".hidden sg_prog_start\n"
	".type sg_prog_start, %function\n"
	"sg_prog_start:\n"
	"	mov x29, #0\n"
	"	mov x30, #0\n"
	"	mov x0, sp\n"
	"	and sp, x0, #-16\n"
	"	bl sg_prog_main\n"
	"	brk #0\n"
	".size sg_prog_start, . - sg_prog_start\n");
#endif

static const char usage[] =
	"libsockgate.so [-m MODE] TARGET [--sockopt NAME=VALUE ...] FILE\n"
	"       libsockgate.so --show FILE\n"
	"       UNSOCK_FILE=FILE UNSOCK_VSOCK_PORT=PORT [UNSOCK_VSOCK_CID=CID] libsockgate.so\n"
	"       UNSOCK_FILE=FILE UNSOCK_FC_SOCK=PATH UNSOCK_VSOCK_PORT=PORT libsockgate.so\n"
	"       UNSOCK_FILE=FILE UNSOCK_TIPC_ADDRTYPE=N UNSOCK_TIPC_SCOPE=N UNSOCK_TIPC_TYPE=N\n"
	"         UNSOCK_TIPC_LOWER=N UNSOCK_TIPC_UPPER=N libsockgate.so\n"
	"Run as a program, the library writes control files as sockgate-mkctl(8) does\n"
	"(TARGET and the options are the same); preloaded, it follows them (libsockgate(7)).";

static const char *const tipc_vars[] = {
	"UNSOCK_TIPC_ADDRTYPE", "UNSOCK_TIPC_SCOPE", "UNSOCK_TIPC_TYPE", "UNSOCK_TIPC_LOWER", "UNSOCK_TIPC_UPPER",
};

/* unsock's variables as mkctl's arguments. */
static int from_env(void)
{
	const char *file = getenv("UNSOCK_FILE"), *port = getenv("UNSOCK_VSOCK_PORT"),
		   *cid = getenv("UNSOCK_VSOCK_CID"), *fc = getenv("UNSOCK_FC_SOCK");
	char val[4200];
	const char *opt = NULL;
	int ntipc = 0;

	for (size_t i = 0; i < 5; i++)
		ntipc += getenv(tipc_vars[i]) != NULL;
	if (!file && !port && !cid && !fc && !ntipc)
		usage_die(usage);
	if (!file)
		die(EX_USAGE, "UNSOCK_FILE is not set: it names the control file to write");
	if ((port || cid || fc) && ntipc)
		die(EX_USAGE, "UNSOCK_TIPC_* and UNSOCK_VSOCK_*/UNSOCK_FC_SOCK are two targets; give one");
	if (fc) {
		if (!port)
			die(EX_USAGE, "UNSOCK_FC_SOCK needs UNSOCK_VSOCK_PORT");
		if (cid)
			die(EX_USAGE, "UNSOCK_VSOCK_CID does not go with UNSOCK_FC_SOCK");
		opt = "--firecracker";
		snprintf(val, sizeof val, "%.4000s:%.64s", fc, port);
	} else if (port) {
		opt = "--vsock";
		snprintf(val, sizeof val, "%.64s:%.64s", cid ? cid : "any", port);
	} else if (cid) {
		die(EX_USAGE, "UNSOCK_VSOCK_CID needs UNSOCK_VSOCK_PORT");
	} else {
		for (size_t i = 0; i < 5; i++)
			if (!getenv(tipc_vars[i]))
				die(EX_USAGE, "%s is not set: a TIPC target needs all five UNSOCK_TIPC_* values",
				    tipc_vars[i]);
		opt = "--tipc";
		snprintf(val, sizeof val, "%.64s,%.64s,%.64s,%.64s,%.64s", getenv(tipc_vars[0]),
			 getenv(tipc_vars[1]), getenv(tipc_vars[2]), getenv(tipc_vars[3]), getenv(tipc_vars[4]));
	}
	char *av[] = { (char *)"libsockgate.so", (char *)opt, val, (char *)file, NULL };
	return mkctl_main(4, av);
}

void sg_prog_main(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	int rc;

	environ = argv + argc + 1;
	progname = "libsockgate.so";
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: %s\n", usage);
		rc = EX_OK;
	} else if (argc > 1) {
		rc = mkctl_main(argc, argv);
	} else {
		rc = from_env();
	}
	fflush(NULL);
	_exit(rc);
}
#endif
