/*
 * gaihack: the name handling of u-relay-tproxy's gai-hack module
 * (gai-hack/README.txt): a static directory of entries decides what some
 * names resolve to, before and after the real resolver.
 *
 * A name is normalised (leading and trailing dots dropped, runs of dots made
 * one, lower case; only letters, digits, '-' and '_' in labels), then looked
 * up as the files "h,NAME", "H,SUFFIX" for the name less one, two, ...
 * leftmost labels (at most the eight rightmost dots), "H,R"; after the real
 * resolver failed, the same with 'l' and 'L'. An entry is a file holding
 * "X,VALUE\n" or a symbolic link to "X,VALUE"; VALUE is the address or name
 * to resolve instead.
 */
#ifndef SOCKGATE_GAIHACK_H
#define SOCKGATE_GAIHACK_H

#include <stddef.h>

#define GAIHACK_NAMEMAX 255
#define GAIHACK_FILEMAX (GAIHACK_NAMEMAX + 3)	/* "h," NAME NUL */
#define GAIHACK_MAXCAND 10			/* exact, 8 suffixes, R */

/* Normalise node into out; 0, or -1 when it is not a name gai-hack handles. */
int gaihack_name(const char *node, char out[GAIHACK_NAMEMAX + 1]);

/*
 * The entry file names to try for a normalised name, in order: exact with
 * ident[0], suffixes and "R" with ident[1] ("hH" or "lL"). Returns the count;
 * *localhost is set when the name or a suffix is "localhost".
 */
int gaihack_candidates(const char *name, const char ident[2], char out[GAIHACK_MAXCAND][GAIHACK_FILEMAX + 1],
		       int *localhost);

/*
 * An entry's contents: a file must hold "X," VALUE "\n" (anything after the
 * newline is ignored); a link's target must be "X," VALUE. Writes VALUE
 * (NUL-terminated) to out. Returns 0, 1 for a link that is no entry (look
 * further), or -1 for a malformed file (the lookup fails).
 */
int gaihack_entry(const char *buf, size_t len, int is_link, char *out, size_t size);

#endif
