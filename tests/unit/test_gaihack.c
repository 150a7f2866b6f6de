/*
 * core/gaihack: names normalised as gai-hack's README says, the entry files
 * tried in its order, entries read from files and links.
 */
#include <string.h>

#include "gaihack.h"
#include "unit.h"

int main(void)
{
	char n[GAIHACK_NAMEMAX + 1], v[64];
	char c[GAIHACK_MAXCAND][GAIHACK_FILEMAX + 1];
	int lh = 0;

	CHECK(gaihack_name("..WWW..Example.COM...", n) == 0 && !strcmp(n, "www.example.com"),
	      "leading, trailing and repeated dots, upper case: %s", n);
	CHECK(gaihack_name("a_b-c.d9", n) == 0 && !strcmp(n, "a_b-c.d9"), "'_' and '-' are kept");
	CHECK(gaihack_name("...", n) == 0 && !strcmp(n, "."), "only dots: the root");
	CHECK(gaihack_name("", n) < 0, "empty: not a name");
	CHECK(gaihack_name("2001:db8::1", n) < 0, "an IPv6 literal is not a name");
	CHECK(gaihack_name("a b", n) < 0 && gaihack_name("x/y", n) < 0, "other characters: not a name");
	char big[300];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = 0;
	CHECK(gaihack_name(big, n) < 0, "longer than 255: not a name");
	big[255] = 0;
	CHECK(gaihack_name(big, n) == 0 && strlen(n) == 255, "255 bytes fit");

	int k = gaihack_candidates("a.b.example.com", "hH", c, &lh);
	CHECK(k == 5 && !strcmp(c[0], "h,a.b.example.com") && !strcmp(c[1], "H,b.example.com") &&
	      !strcmp(c[2], "H,example.com") && !strcmp(c[3], "H,com") && !strcmp(c[4], "H,R") && !lh,
	      "exact, then suffixes longest first, then R");
	k = gaihack_candidates("1.2.3.4.5.6.7.8.9.10.11", "lL", c, &lh);
	CHECK(k == 10 && !strcmp(c[1], "L,4.5.6.7.8.9.10.11") && !strcmp(c[8], "L,11") && !strcmp(c[9], "L,R"),
	      "only the rightmost eight dots give suffixes");
	k = gaihack_candidates("x.localhost", "hH", c, &lh);
	CHECK(lh == 1, "a localhost suffix is noticed");
	lh = 0;
	k = gaihack_candidates(".", "hH", c, &lh);
	CHECK(k == 2 && !strcmp(c[0], "h,.") && !strcmp(c[1], "H,R"), "the root: exact and R");

	CHECK(gaihack_entry("X,10.0.0.1\nrest", 16, 0, v, sizeof v) == 0 && !strcmp(v, "10.0.0.1"), "a file entry");
	CHECK(gaihack_entry("X,10.0.0.1", 10, 0, v, sizeof v) == -1, "a file without its newline fails");
	CHECK(gaihack_entry("Y,10.0.0.1\n", 11, 0, v, sizeof v) == -1, "a file without X, fails");
	CHECK(gaihack_entry("X,\n", 3, 0, v, sizeof v) == -1, "an empty value fails");
	CHECK(gaihack_entry("X,host.example", 14, 1, v, sizeof v) == 0 && !strcmp(v, "host.example"), "a link entry");
	CHECK(gaihack_entry("../elsewhere", 12, 1, v, sizeof v) == 1, "a link that is no entry: look further");
	CHECK(gaihack_entry("X,0123456789", 12, 1, v, 5) == 1, "a value too long for the buffer is no entry");
	return unit_done();
}
