/*
 * sockgate-asmgen: compile a rules file (sockgate-rules(5)) to the checked
 * binary form the preload loads, check one, or print one back as text.
 * Either form is accepted wherever a rules file is read, and so are
 * u-relay-tproxy's compiled files and gen-config.py text (rules_from_file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rulebin.h"
#include "util.h"

static const char usage[] =
	"sockgate-asmgen RULES -o OUTPUT\n       sockgate-asmgen --check RULES\n       sockgate-asmgen --dump RULES";

static void write_out(const char *path, const void *data, size_t len)
{
	char tmp[4096];
	int fd;

	if (!strcmp(path, "-")) {
		fd = 1;
	} else {
		if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
			die(EX_BADINPUT, "output path too long: %s", path);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0)
			die_sys("unable to create %s", tmp);
	}
	for (size_t o = 0; o < len;) {
		ssize_t w = write(fd, (const char *)data + o, len - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			int e = errno;
			if (fd != 1)
				unlink(tmp);
			errno = e;
			die_sys("unable to write %s", path);
		}
		o += (size_t)w;
	}
	if (fd == 1)
		return;
	if (fsync(fd) || close(fd) || rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		errno = e;
		die_sys("unable to write %s", path);
	}
}

int asmgen_main(int argc, char **argv)
{
	const char *out = NULL, *in = NULL;
	enum { COMPILE, CHECK, DUMP } mode = COMPILE;

	std_options(argc, argv, usage);
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			out = argv[++i];
		else if (!strcmp(argv[i], "--check") || !strcmp(argv[i], "-c"))
			mode = CHECK;
		else if (!strcmp(argv[i], "--dump") || !strcmp(argv[i], "-d"))
			mode = DUMP;
		else if (argv[i][0] == '-' && argv[i][1])
			usage_die(usage);
		else if (!in)
			in = argv[i];
		else
			usage_die(usage);
	}
	if (!in || (mode == COMPILE) != (out != NULL))
		usage_die(usage);

	/* bad rules: "sockgate-asmgen: fatal: FILE:LINE:COL: why", exit 1 */
	struct ruleset *rs = rules_from_file(in, NULL, 1);
	if (mode == CHECK) {
		printf("%s: %zu rule%s, ok\n", in, rs->n, rs->n == 1 ? "" : "s");
	} else if (mode == DUMP) {
		char line[1024];
		for (size_t i = 0; i < rs->n; i++) {
			if (rules_format(rs, &rs->rule[i], line, sizeof line) < 0)
				die(EX_BADINPUT, "rule %zu is too long to print", i + 1);
			printf("%s\n", line);
		}
		if (fflush(stdout))
			die_sys("unable to write the rules");
	} else {
		void *bin;
		size_t len;
		if (rulebin_write(rs, &bin, &len))
			die_sys("unable to compile %s", in);
		write_out(out, bin, len);
		free(bin);
	}
	rules_free(rs);
	return EX_OK;
}
