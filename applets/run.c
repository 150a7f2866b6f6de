/*
 * sockgate-run: check the rules, put libsockgate.so (found beside this
 * executable, or in ../lib, or in the install prefix) in LD_PRELOAD, and
 * exec the program. The rules reach the library through SOCKGATE_RULE
 * (each -r, one per line) and SOCKGATE_RULES (the -f file, made absolute).
 * With --seccomp the same rules go to a supervisor instead (seccomp.c).
 * See sockgate-run(1) and libsockgate(7).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "elfinfo.h"
#include "rulebin.h"
#include "rules.h"
#include "seccomp.h"
#include "util.h"

#ifndef SOCKGATE_LIBDIR
#define SOCKGATE_LIBDIR "/usr/local/lib"
#endif

static const char usage[] = "sockgate-run [--seccomp] [-r RULE] ... [-f FILE] [--check] -- PROGRAM [ARGS ...]";

static struct ruleset *load_text(const char *where, const char *text, size_t len)
{
	struct rules_error e;

	memset(&e, 0, sizeof e);
	struct ruleset *rs = rules_parse(text, len, &e);
	if (!rs) {
		if (e.line)
			die(EX_BADINPUT, "%s:%u:%u: %s", where, e.line, e.col, e.msg);
		die(EX_BADINPUT, "%s: %s", where, e.msg[0] ? e.msg : strerror(errno));
	}
	return rs;
}

static size_t check_text(const char *where, const char *text, size_t len)
{
	struct ruleset *rs = load_text(where, text, len);
	size_t n = rs->n;
	rules_free(rs);
	return n;
}

/* Unreadable: exit 111; bad rules: exit 1 naming FILE:LINE:COL. */
static size_t check_file(const char *path)
{
	struct ruleset *rs = rules_from_file(path, NULL, 1);
	size_t n = rs->n;
	rules_free(rs);
	return n;
}

/*
 * --seccomp: the rules the library would read (SOCKGATE_RULE, then
 * SOCKGATE_RULES, as libsockgate(7) orders them) go to the supervisor, and
 * the library leaves LD_PRELOAD, so that one of the two acts, never both.
 */
static void __attribute__((noreturn)) run_seccomp(const char *inline_rules, const char *file, char **argv)
{
	struct ruleset *rs[2];
	int n = 0;
	const char *s = inline_rules ? inline_rules : getenv("SOCKGATE_RULE");

	if (s && *s)
		rs[n++] = load_text(inline_rules ? "-r" : "SOCKGATE_RULE", s, strlen(s));
	s = file ? file : getenv("SOCKGATE_RULES");
	if (s && *s)
		rs[n++] = rules_from_file(s, NULL, 1);
	preload_drop_self();
	seccomp_run(rs, n, argv);
}

/* libsockgate.so beside us, in ../lib, or in the install prefix. */
static int find_lib(char *out, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		self[n] = 0;
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			if ((size_t)snprintf(out, size, "%.*s/libsockgate.so", PATH_MAX - 32, self) < size &&
			    access(out, R_OK) == 0)
				return 0;
			if ((size_t)snprintf(out, size, "%.*s/../lib/libsockgate.so", PATH_MAX - 32, self) < size &&
			    access(out, R_OK) == 0) {
				char real[PATH_MAX];
				if (realpath(out, real))
					snprintf(out, size, "%s", real);
				return 0;
			}
		}
	}
	snprintf(out, size, "%s/libsockgate.so", SOCKGATE_LIBDIR);
	return access(out, R_OK);
}

/* The file execvp() would run for prog, or NULL. */
static const char *which(const char *prog, char *buf, size_t size)
{
	if (strchr(prog, '/'))
		return prog;
	const char *path = getenv("PATH");
	for (const char *p = path ? path : "/usr/local/bin:/bin:/usr/bin"; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
		size_t n = strcspn(p, ":");
		if ((size_t)snprintf(buf, size, "%.*s%s%s", (int)n, p, n ? "/" : "", prog) < size &&
		    access(buf, X_OK) == 0)
			return buf;
	}
	return NULL;
}

/*
 * The library for the program: the musl build beside the glibc one when
 * the program's ELF interpreter is musl's; the glibc one for glibc's, and
 * when the program cannot be read (execvp() then says why). A script is
 * judged by its interpreter. A program of the other word size cannot take
 * the library at all: say so rather than run it unredirected. A static one
 * is run (seccomp_hint() has said --seccomp reaches it).
 */
static void pick_lib(const char *prog, char *lib, size_t size)
{
	char pbuf[PATH_MAX], shebang[PATH_MAX], interp[4097];
	unsigned char head[8192];
	const char *file = which(prog, pbuf, sizeof pbuf);

	for (int depth = 0; file && depth < 2; depth++) {
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : pread(fd, head, sizeof head, 0);
		uint64_t off, isz;
		int is64 = 0, r = n < 0 ? -1 : elf_interp(head, (size_t)n, &off, &isz, &is64);
		if (r < 0 && n > 2 && head[0] == '#' && head[1] == '!' && depth == 0) {
			/* "#!INTERP [ARG]": judge INTERP */
			size_t i = 2, j;
			while (i < (size_t)n && (head[i] == ' ' || head[i] == '\t'))
				i++;
			for (j = i; j < (size_t)n && j - i < sizeof shebang - 1 && !strchr(" \t\n", head[j]); j++)
				;
			memcpy(shebang, head + i, j - i);
			shebang[j - i] = 0;
			if (fd >= 0)
				close(fd);
			file = shebang;
			continue;
		}
		int ok = r == 1 && pread(fd, interp, (size_t)isz, (off_t)off) == (ssize_t)isz && !interp[isz - 1];
		if (fd >= 0)
			close(fd);
		if (r < 0)
			return;	/* not ELF, or unreadable: leave it to execvp() */
		if (r == 0)
			return;	/* static: seccomp_hint() has named --seccomp; nothing to preload */
		if (is64 != (sizeof(void *) == 8))
			die(EX_BADINPUT, "%s is a %d-bit program; the libraries are %d-bit", file, is64 ? 64 : 32,
			    (int)sizeof(void *) * 8);
		if (!ok || !strstr(interp, "ld-musl"))
			return;
		char *slash = strrchr(lib, '/');
		char musl[PATH_MAX];
		snprintf(musl, sizeof musl, "%.*s/libsockgate-musl.so", slash ? (int)(slash - lib) : 1,
			 slash ? lib : ".");
		if (access(musl, R_OK) < 0)
			die(EX_SYSFAIL, "%s is a musl program (interpreter %s) and %s is missing", file, interp, musl);
		snprintf(lib, size, "%s", musl);
		return;
	}
}

int run_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, 'c' },
		{ "seccomp", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	char *inline_rules = NULL;
	size_t inline_len = 0;
	const char *file = NULL;
	int check = 0, use_seccomp = 0, c, nr = 0;
	size_t total = 0;

	std_options(argc, argv, usage);
	while ((c = getopt_long(argc, argv, "+r:f:", longopts, NULL)) != -1) {
		switch (c) {
		case 'r': {
			char where[32];
			snprintf(where, sizeof where, "-r #%d", ++nr);
			total += check_text(where, optarg, strlen(optarg));
			size_t l = strlen(optarg);
			char *nb = realloc(inline_rules, inline_len + l + 2);
			if (!nb)
				die_sys("out of memory");
			inline_rules = nb;
			if (inline_len)
				inline_rules[inline_len++] = '\n';
			memcpy(inline_rules + inline_len, optarg, l + 1);
			inline_len += l;
			break;
		}
		case 'f':
			file = optarg;
			break;
		case 'c':
			check = 1;
			break;
		case 's':
			use_seccomp = 1;
			break;
		default:
			usage_die(usage);
		}
	}
	argc -= optind;
	argv += optind;
	if (!check && argc < 1)
		usage_die(usage);

	/* what the library will read: ours, or what the environment already has */
	if (!inline_rules) {
		const char *s = getenv("SOCKGATE_RULE");
		if (s && *s)
			total += check_text("SOCKGATE_RULE", s, strlen(s));
	}
	char abs[PATH_MAX];
	if (file) {
		total += check_file(file);
		if (!realpath(file, abs))
			die_sys("unable to resolve %s", file);
		file = abs;
	} else {
		const char *s = getenv("SOCKGATE_RULES");
		if (s && *s)
			total += check_file(s);
	}
	if (check) {
		printf("%zu rule%s ok\n", total, total == 1 ? "" : "s");
		free(inline_rules);
		return EX_OK;
	}

	if (use_seccomp)
		run_seccomp(inline_rules, file, argv);
	seccomp_hint(argv[0]);

	char lib[PATH_MAX];
	if (find_lib(lib, sizeof lib) < 0)
		die(EX_SYSFAIL, "unable to find libsockgate.so beside %s or in %s", "this program", SOCKGATE_LIBDIR);
	pick_lib(argv[0], lib, sizeof lib);
	const char *old = getenv("LD_PRELOAD");
	if (old && *old && !strstr(old, lib)) {
		size_t l = strlen(lib) + strlen(old) + 2;
		char *pre = malloc(l);
		if (!pre)
			die_sys("out of memory");
		snprintf(pre, l, "%s %s", lib, old);
		if (setenv("LD_PRELOAD", pre, 1) < 0)
			die_sys("unable to set LD_PRELOAD");
	} else if (!old || !*old) {
		if (setenv("LD_PRELOAD", lib, 1) < 0)
			die_sys("unable to set LD_PRELOAD");
	}
	if (inline_rules && setenv("SOCKGATE_RULE", inline_rules, 1) < 0)
		die_sys("unable to set SOCKGATE_RULE");
	if (file && setenv("SOCKGATE_RULES", file, 1) < 0)
		die_sys("unable to set SOCKGATE_RULES");

	/* as env(1) and timeout(1): 127 not found, 126 found but not runnable */
	execvp(argv[0], argv);
	die(errno == ENOENT || errno == ENOTDIR ? EX_NOTFOUND : EX_CANNOTRUN, "unable to run %s: %s", argv[0],
	    strerror(errno));
}
