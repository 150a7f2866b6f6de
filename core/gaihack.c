/*
 * gaihack: names and entries of u-relay-tproxy's gai-hack (see gaihack.h;
 * facts from its gai-hack/README.txt and gai_hack.c, written anew here).
 */
#include <stdio.h>
#include <string.h>

#include "gaihack.h"

int gaihack_name(const char *node, char out[GAIHACK_NAMEMAX + 1])
{
	const char *s = node;
	size_t o = 0;
	int lead = 0;

	while (*s == '.') {
		s++;
		lead = 1;
	}
	if (!*s) {
		if (!lead)
			return -1;
		strcpy(out, ".");	/* the root */
		return 0;
	}
	for (; *s; s++) {
		char c = *s;
		if (c == '.') {
			while (s[1] == '.')
				s++;
			if (!s[1])
				break;	/* trailing dots */
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
			return -1;
		}
		if (o >= GAIHACK_NAMEMAX)
			return -1;
		out[o++] = c;
	}
	out[o] = 0;
	return 0;
}

int gaihack_candidates(const char *name, const char ident[2], char out[GAIHACK_MAXCAND][GAIHACK_FILEMAX + 1],
		       int *localhost)
{
	size_t starts[GAIHACK_NAMEMAX];
	size_t ns = 0;
	int n = 0;

	if (!strcmp(name, "localhost"))
		*localhost = 1;
	snprintf(out[n++], GAIHACK_FILEMAX + 1, "%c,%s", ident[0], name);
	for (size_t i = 0; name[i]; i++)
		if (name[i] == '.' && name[i + 1])
			starts[ns++] = i + 1;
	/* the name less one, two, ... leftmost labels; only the rightmost eight dots count */
	for (size_t k = ns > 8 ? ns - 8 : 0; k < ns; k++) {
		const char *suffix = name + starts[k];
		if (!strcmp(suffix, "localhost"))
			*localhost = 1;
		snprintf(out[n++], GAIHACK_FILEMAX + 1, "%c,%s", ident[1], suffix);
	}
	snprintf(out[n++], GAIHACK_FILEMAX + 1, "%c,R", ident[1]);
	return n;
}

int gaihack_entry(const char *buf, size_t len, int is_link, char *out, size_t size)
{
	if (len < 2 || buf[0] != 'X' || buf[1] != ',')
		return is_link ? 1 : -1;
	size_t n = len - 2;
	if (!is_link) {
		/* a file is complete only with its newline: never a half-written value */
		const char *nl = memchr(buf + 2, '\n', len - 2);
		if (!nl)
			return -1;
		n = (size_t)(nl - (buf + 2));
	}
	if (n == 0 || n >= size || memchr(buf + 2, 0, n))
		return is_link ? 1 : -1;
	memcpy(out, buf + 2, n);
	out[n] = 0;
	return 0;
}
