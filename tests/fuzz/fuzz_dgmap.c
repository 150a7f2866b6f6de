/*
 * libFuzzer target for core/dgmap's reading of addresses from outside:
 * dgmap_beside (a sender's path as recvfrom() gave it, the server's own
 * socket path, a chroot directory) and dgmap_find/dgmap_add. The input is
 * three fields split by NUL bytes: SENDER\0SERVER\0ROOT (a missing ROOT
 * is none); the sender's bytes are used as they came, NUL-free or not.
 * What comes back must be a NUL-terminated path that ends in the sender's
 * file name, starts with a .sockgate-dgram- name, and fits sun_path.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dgmap.h"

static socklen_t fill(struct sockaddr_un *u, const uint8_t *p, size_t n)
{
	memset(u, 0, sizeof *u);
	u->sun_family = AF_UNIX;
	if (n > sizeof u->sun_path)
		n = sizeof u->sun_path;
	memcpy(u->sun_path, p, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *end = data + size, *a = data, *b, *c;
	const uint8_t *z = memchr(a, 0, size);
	if (!z)
		return 0;
	b = z + 1;
	z = memchr(b, 0, (size_t)(end - b));
	size_t bl = z ? (size_t)(z - b) : (size_t)(end - b);
	c = z ? z + 1 : NULL;
	char root[128] = "";
	int has_root = 0;
	if (c) {
		size_t rl = (size_t)(end - c);
		if (rl >= sizeof root)
			return 0;
		memcpy(root, c, rl);
		root[rl] = 0;
		has_root = 1;
	}
	struct sockaddr_un snd, srv, out;
	socklen_t sl = fill(&snd, a, (size_t)(b - 1 - a)), vl = fill(&srv, b, bl), ol = 0;
	if (dgmap_beside(&snd, sl, &srv, vl, has_root ? root : NULL, &out, &ol) == 0) {
		size_t n = strnlen(out.sun_path, sizeof out.sun_path);
		if (n == sizeof out.sun_path || ol != offsetof(struct sockaddr_un, sun_path) + n + 1)
			abort();
		const char *base = strrchr(out.sun_path, '/');
		base = base ? base + 1 : out.sun_path;
		if (strncmp(base, DGMAP_NAME, strlen(DGMAP_NAME)) || !base[strlen(DGMAP_NAME)])
			abort();
	}
	/* the map takes any address and finds it again */
	struct dgmap m;
	struct sockaddr_storage got;
	memset(&m, 0, sizeof m);
	dgmap_add(&m, &snd, sl, (const struct sockaddr *)&srv, vl);
	if (!dgmap_find(&m, &snd, sl, &got))
		abort();
	return 0;
}
