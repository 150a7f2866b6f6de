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
	int n = snprintf(out->sun_path, sizeof out->sun_path, "%s/.sockgate-dgram-%ld-%u", dir, pid, seq);
	if (n < 0 || (size_t)n >= sizeof out->sun_path)
		return -1;
	*outlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
	return 0;
}
