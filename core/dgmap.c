/*
 * dgmap: the datagram client's target map and socket file place (dgmap.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "dgmap.h"

void dgmap_add(struct dgmap *m, const struct sockaddr_un *un, socklen_t unlen, const struct sockaddr *in,
	       socklen_t inlen)
{
	unsigned i;

	if (unlen > sizeof m->e[0].un)
		unlen = sizeof m->e[0].un;
	if (inlen > sizeof m->e[0].in)
		inlen = sizeof m->e[0].in;
	for (i = 0; i < m->n && i < DGMAP_N; i++)
		if (m->e[i].unlen == unlen && !memcmp(&m->e[i].un, un, unlen))
			break;
	if (i >= DGMAP_N)
		i = m->n++ % DGMAP_N;
	else if (i == m->n)
		m->n++;
	memcpy(&m->e[i].un, un, unlen);
	m->e[i].unlen = unlen;
	memset(&m->e[i].in, 0, sizeof m->e[i].in);
	memcpy(&m->e[i].in, in, inlen);
	m->e[i].inlen = inlen;
}

socklen_t dgmap_find(const struct dgmap *m, const struct sockaddr_un *un, socklen_t unlen,
		     struct sockaddr_storage *in)
{
	for (unsigned i = 0; i < m->n && i < DGMAP_N; i++) {
		socklen_t ml = m->e[i].unlen;
		if (ml <= unlen && !memcmp(&m->e[i].un, un, ml)) {
			*in = m->e[i].in;
			return m->e[i].inlen;
		}
	}
	return 0;
}

int dgmap_path(const char *dir, const struct sockaddr_un *target, long pid, unsigned seq, struct sockaddr_un *out,
	       socklen_t *outlen)
{
	char d[sizeof target->sun_path + 1];

	if (!dir) {
		if (!target || target->sun_family != AF_UNIX || !target->sun_path[0])
			return -1;
		memcpy(d, target->sun_path, sizeof target->sun_path);
		d[sizeof target->sun_path] = 0;
		char *slash = strrchr(d, '/');
		if (slash)
			*(slash == d ? slash + 1 : slash) = 0;
		else
			strcpy(d, ".");
		dir = d;
	}
	memset(out, 0, sizeof *out);
	out->sun_family = AF_UNIX;
	int n = snprintf(out->sun_path, sizeof out->sun_path, "%s/" DGMAP_NAME "%ld-%u", dir, pid, seq);
	if (n < 0 || (size_t)n >= sizeof out->sun_path)
		return -1;
	*outlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}

/* the bytes of a pathname address (without the NUL the kernel may count), or 0 */
static size_t path_len(const struct sockaddr_un *u, socklen_t len)
{
	if (len <= offsetof(struct sockaddr_un, sun_path) || u->sun_family != AF_UNIX || !u->sun_path[0])
		return 0;
	size_t n = len - offsetof(struct sockaddr_un, sun_path);
	if (n > sizeof u->sun_path)
		n = sizeof u->sun_path;
	return strnlen(u->sun_path, n);
}

int dgmap_beside(const struct sockaddr_un *sender, socklen_t senderlen, const struct sockaddr_un *server,
		 socklen_t serverlen, const char *root, struct sockaddr_un *out, socklen_t *outlen)
{
	static const char prefix[] = DGMAP_NAME;
	size_t sl = path_len(sender, senderlen), vl = path_len(server, serverlen);
	if (!sl || !vl)
		return -1;
	const char *base = memrchr(sender->sun_path, '/', sl);
	base = base ? base + 1 : sender->sun_path;
	size_t bl = sl - (size_t)(base - sender->sun_path);
	if (bl <= sizeof prefix - 1 || memcmp(base, prefix, sizeof prefix - 1))
		return -1;
	/* the server's directory, as it sees it now */
	const char *dir = server->sun_path;
	const char *slash = memrchr(dir, '/', vl);
	size_t dl = slash ? (size_t)(slash - dir) : 0;
	if (root && *root && strcmp(root, "/")) {
		size_t rl = strlen(root);
		while (rl > 1 && root[rl - 1] == '/')
			rl--;
		if (dir[0] != '/' || dl < rl || memcmp(dir, root, rl) || (dl > rl && dir[rl] != '/'))
			return -1;	/* outside the chroot: out of reach */
		dir += rl;
		dl -= rl;
	}
	char path[sizeof out->sun_path + 1];
	int n;
	if (slash && dl == 0 && dir[0] == '/')
		n = snprintf(path, sizeof path, "/%.*s", (int)bl, base);
	else if (slash || dl)
		n = snprintf(path, sizeof path, "%.*s/%.*s", (int)dl, dir, (int)bl, base);
	else
		n = snprintf(path, sizeof path, "%.*s", (int)bl, base);	/* a relative server path */
	if (n < 0 || (size_t)n >= sizeof out->sun_path)
		return -1;
	if ((size_t)n == sl && !memcmp(path, sender->sun_path, sl))
		return -1;
	memset(out, 0, sizeof *out);
	out->sun_family = AF_UNIX;
	memcpy(out->sun_path, path, (size_t)n);
	*outlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}
