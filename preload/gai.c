/*
 * getaddrinfo() memory: the names the program resolved and the addresses
 * they gave, so a PROXY v2 header can carry the name in its AUTHORITY TLV
 * (proxy-protocol.txt section 2.2.2). A fixed ring; the newest pair wins.
 */
#include <netdb.h>
#include <string.h>

#include "addr.h"
#include "sg.h"

#define GAI_N 256

static struct gai_ent {
	uint8_t a16[16];
	char name[256];
} ring[GAI_N];
static unsigned ring_next, ring_used;
static pthread_mutex_t gai_lock = PTHREAD_MUTEX_INITIALIZER;

/* held across fork() (after sg_lock, the order they nest in), so a child never inherits it locked */
void gai_fork_lock(int lock)
{
	if (lock)
		pthread_mutex_lock(&gai_lock);
	else
		pthread_mutex_unlock(&gai_lock);
}

void gai_remember(const char *name, const struct addrinfo *res)
{
	size_t n = strlen(name);
	int k = 0;

	if (n == 0 || n >= sizeof ring[0].name)
		return;
	/* a numeric host is no name */
	if (names_numeric(name))
		return;
	pthread_mutex_lock(&gai_lock);
	for (const struct addrinfo *ai = res; ai && k < 16; ai = ai->ai_next) {
		uint8_t a16[16];
		if (!ai->ai_addr || addr_to16(ai->ai_addr, a16))
			continue;
		struct gai_ent *e = &ring[ring_next];
		memcpy(e->a16, a16, 16);
		memcpy(e->name, name, n + 1);
		ring_next = (ring_next + 1) % GAI_N;
		if (ring_used < GAI_N)
			ring_used++;
		k++;
	}
	pthread_mutex_unlock(&gai_lock);
}

int gai_lookup(const struct sockaddr *sa, char *name, size_t size)
{
	uint8_t a16[16];
	int found = 0;

	if (addr_to16(sa, a16))
		return 0;
	pthread_mutex_lock(&gai_lock);
	/* newest first */
	for (unsigned i = 0; i < ring_used && !found; i++) {
		const struct gai_ent *e = &ring[(ring_next + GAI_N - 1 - i) % GAI_N];
		if (!memcmp(e->a16, a16, 16) && strlen(e->name) < size) {
			strcpy(name, e->name);
			found = 1;
		}
	}
	pthread_mutex_unlock(&gai_lock);
	return found;
}
