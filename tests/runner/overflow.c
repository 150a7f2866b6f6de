/*
 * A fixture for tests/runner.bats: a unit binary whose only check passes
 * and which then overflows the heap. Built with ASan, it must count as a
 * failure although every TAP line it printed says "ok".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ok 1 - the one check\n");
	char *p = malloc(4);
	memset(p, 'x', 4 + (argc > 0));	/* one byte past the end */
	printf("1..1\n");
	free(p);
	return 0;
}
