/*
 * libFuzzer target for core/gaihack: any bytes as a name (normalised, then
 * its candidate files) and as an entry file or link.
 */
#include <stdlib.h>
#include <string.h>

#include "gaihack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), n[GAIHACK_NAMEMAX + 1], v[GAIHACK_FILEMAX];
	char c[GAIHACK_MAXCAND][GAIHACK_FILEMAX + 1];
	int lh = 0;

	memcpy(s, data, size);
	s[size] = 0;
	if (gaihack_name(s, n) == 0) {
		if (strlen(n) > GAIHACK_NAMEMAX || !n[0])
			abort();
		int k = gaihack_candidates(n, "hH", c, &lh);
		if (k < 2 || k > GAIHACK_MAXCAND)
			abort();
	}
	for (int link = 0; link < 2; link++)
		if (gaihack_entry((const char *)data, size, link, v, sizeof v) == 0 && strlen(v) >= sizeof v)
			abort();
	free(s);
	return 0;
}
