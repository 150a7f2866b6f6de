/*
 * The multi-call dispatcher: the applet comes from the basename of argv[0]
 * ("sockgate-relay", or "relay" through a link so named), or from the first
 * argument ("sockgate relay ..."). The table is applets/applets.h.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

struct applet {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
};

static const struct applet applets[] = {
#define APPLET(name, fn, summary) { #name, fn, summary },
#include "applets.h"
#undef APPLET
};

static const struct applet *find(const char *name)
{
	if (!strncmp(name, "sockgate-", 9))
		name += 9;
	for (size_t i = 0; i < sizeof applets / sizeof applets[0]; i++)
		if (!strcmp(applets[i].name, name))
			return &applets[i];
	return NULL;
}

static int list(FILE *f)
{
	fprintf(f, "usage: sockgate APPLET [ARGS...]  (or run it as sockgate-APPLET)\napplets:\n");
	for (size_t i = 0; i < sizeof applets / sizeof applets[0]; i++)
		fprintf(f, "  %-10s %s\n", applets[i].name, applets[i].summary);
	return EX_OK;
}

static int run(const struct applet *a, int argc, char **argv)
{
	static char name[64];

	snprintf(name, sizeof name, "sockgate-%s", a->name);
	progname = name;
	/* A peer that goes away is an error to handle, never a death. */
	signal(SIGPIPE, SIG_IGN);
	return a->fn(argc, argv);
}

int main(int argc, char **argv)
{
	const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
	base = base ? base + 1 : argc > 0 ? argv[0] : "sockgate";

	const struct applet *a = find(base);
	if (a)
		return run(a, argc, argv);
	if (strcmp(base, "sockgate")) {
		fprintf(stderr, "sockgate: fatal: unknown applet: %s\n", base);
		return EX_NOAPPLET;
	}
	if (argc < 2 || !strcmp(argv[1], "--list") || !strcmp(argv[1], "--help"))
		return list(stdout);
	if (!strcmp(argv[1], "--version")) {
		printf("sockgate %s\n", SOCKGATE_VERSION);
		return EX_OK;
	}
	a = find(argv[1]);
	if (!a) {
		fprintf(stderr, "sockgate: fatal: unknown applet: %s (sockgate --list names them)\n", argv[1]);
		return EX_NOAPPLET;
	}
	return run(a, argc - 1, argv + 1);
}
