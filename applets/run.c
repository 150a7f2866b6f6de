/*
 * sockgate-run: check the rules, put libsockgate.so (found beside this
 * executable, or in ../lib, or in the install prefix) in LD_PRELOAD, and
 * exec the program. The rules reach the library through SOCKGATE_RULE
 * (each -r, one per line) and SOCKGATE_RULES (the -f file, made absolute).
 * See sockgate-run(1) and libsockgate(7).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rulebin.h"
#include "rules.h"
#include "util.h"

#ifndef SOCKGATE_LIBDIR
#define SOCKGATE_LIBDIR "/usr/local/lib"
#endif

static const char usage[] = "sockgate-run [-r RULE] ... [-f FILE] [--check] -- PROGRAM [ARGS ...]";

static size_t check_text(const char *where, const char *text, size_t len)
{
	struct rules_error e;

	memset(&e, 0, sizeof e);
	struct ruleset *rs = rules_parse(text, len, &e);
	if (!rs) {
		if (e.line)
			die(EX_BADINPUT, "%s:%u:%u: %s", where, e.line, e.col, e.msg);
		die(EX_BADINPUT, "%s: %s", where, e.msg[0] ? e.msg : strerror(errno));
	}
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

int run_main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "check", no_argument, NULL, 'c' },
		{ NULL, 0, NULL, 0 },
	};
	char *inline_rules = NULL;
	size_t inline_len = 0;
	const char *file = NULL;
	int check = 0, c, nr = 0;
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

	char lib[PATH_MAX];
	if (find_lib(lib, sizeof lib) < 0)
		die(EX_SYSFAIL, "unable to find libsockgate.so beside %s or in %s", "this program", SOCKGATE_LIBDIR);
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
