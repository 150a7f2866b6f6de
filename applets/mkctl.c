/*
 * sockgate-mkctl: write a control file (a regular file that stands where a
 * Unix socket is expected and names the real target: AF_VSOCK, a
 * Firecracker vsock multiplexer, TIPC, another Unix path or abstract name,
 * TCP), or print one back as the options that write it again. The format
 * is core/ctlfile.h's; libsockgate.so follows these files (libsockgate(7))
 * and, run as a program, writes them through mkctl_main() too.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctlfile.h"
#include "util.h"

static const char mkctl_usage[] =
	"sockgate-mkctl [-m MODE] TARGET [--sockopt NAME=VALUE ...] FILE\n"
	"       sockgate-mkctl --show FILE\n"
	"where TARGET is one of --vsock CID:PORT, --firecracker PATH:PORT,\n"
	"  --tipc ADDRTYPE,SCOPE,TYPE,LOWER,UPPER, --unix PATH, --abstract NAME, --tcp ADDR:PORT.";

/*
 * A relative socket path (of --unix PATH or --firecracker PATH:PORT) must
 * exist and is written absolute: the file is read from other directories.
 */
static const char *absolute(const char *opt, const char *val, char *buf, size_t size)
{
	int fc = !strcmp(opt, "--firecracker");
	if (val[0] == '/' || (!fc && strcmp(opt, "--unix")))
		return val;
	const char *colon = fc ? strrchr(val, ':') : NULL;
	size_t plen = colon ? (size_t)(colon - val) : strlen(val);
	char rel[PATH_MAX], abs[PATH_MAX];
	if (fc && !colon)
		return val;	/* ctlfile_option() names the mistake */
	if (plen >= sizeof rel)
		die(EX_BADINPUT, "path too long: %s", val);
	memcpy(rel, val, plen);
	rel[plen] = 0;
	if (!realpath(rel, abs))
		die(EX_BADINPUT, "a relative path must exist to be made absolute: %s: %s", rel, strerror(errno));
	if (snprintf(buf, size, "%s%s", abs, colon ? colon : "") >= (int)size)
		die(EX_BADINPUT, "path too long: %s", abs);
	return buf;
}

static int show(const char *file)
{
	struct ctlfile c;
	struct ctl_error e;
	char line[1024];

	if (ctlfile_read(file, &c, &e)) {
		if (errno == ENOTSOCK)
			die(EX_BADINPUT, "%s: not a control file", file);
		if (errno == EINVAL)
			die(EX_BADINPUT, "%s: %s", file, e.msg);
		die_sys("unable to read %s", file);
	}
	if (ctlfile_format(&c, line, sizeof line) < 0)
		die_sys("unable to print %s", file);
	printf("%s\n", line);
	if (fflush(stdout))
		die_sys("unable to write");
	return EX_OK;
}

int mkctl_main(int argc, char **argv)
{
	struct ctlfile c;
	struct ctl_error e;
	const char *file = NULL, *showfile = NULL;
	long mode = 0644;

	std_options(argc, argv, mkctl_usage);
	memset(&c, 0, sizeof c);
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !a[1]) {
			if (file)
				usage_die(mkctl_usage);
			file = a;
			continue;
		}
		if (i + 1 >= argc)
			usage_die(mkctl_usage);
		const char *v = argv[++i];
		if (!strcmp(a, "-m")) {
			mode = mode_arg(v, "-m ");
		} else if (!strcmp(a, "--show")) {
			showfile = v;
		} else {
			char buf[PATH_MAX + 16];
			if (ctlfile_option(&c, a, absolute(a, v, buf, sizeof buf), &e)) {
				if (errno == ENOENT)
					usage_die(mkctl_usage);
				die(EX_BADINPUT, "%s", e.msg);
			}
		}
	}
	if (showfile) {
		if (file || c.kind || c.nopt)
			usage_die(mkctl_usage);
		return show(showfile);
	}
	if (!file || !c.kind)
		usage_die(mkctl_usage);

	uint8_t b[CTLFILE_MAXLEN];
	if (ctlfile_encode(&c, b, sizeof b, &e) < 0)
		die(EX_BADINPUT, "%s", e.msg);
	if (ctlfile_create(file, &c, (mode_t)mode)) {
		if (errno == EEXIST)
			die(EX_BADINPUT, "%s exists; a control file is never overwritten", file);
		die_sys("unable to create %s", file);
	}
	return EX_OK;
}
