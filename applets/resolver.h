/*
 * The resolver listener of sockgate-relay (sockgate-relay(8), "RESOLVER"):
 * lookups in the resolver protocol (core/lookup) on stream sockets and DNS
 * messages (core/dns) on datagram and stream sockets, answered with the host's
 * getaddrinfo() or by a DNS server the operator names; and the memory of
 * what it resolved, which name-based allow rules are checked against.
 */
#ifndef SOCKGATE_RESOLVER_H
#define SOCKGATE_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include "rules.h"

/* epoll object kinds (the first int of every registered object) */
enum { K_RES_CLIENT = 40, K_RES_UPSTREAM, K_RES_DONE };

struct resolver_opts {
	const char *server;	/* "ADDR:PORT" of a DNS server, or NULL: the host's getaddrinfo() */
	int64_t timeout_ms;	/* a lookup gives up (SERVFAIL / temporary failure) */
	uint32_t host_ttl;	/* TTL of answers from getaddrinfo(), which has none */
	int64_t keep_ms;	/* an address is remembered this long at least after its lookup or last use */
	int64_t tcp_idle_ms;	/* a DNS-over-TCP client with nothing in flight is closed after this */
	const char *root;	/* --chroot's directory, or NULL: where our socket paths are now */
};

/* Before the loop; dies on bad options. */
void resolver_setup(int ep, const struct resolver_opts *o);

/* The relay's rules (resolve rules decide what may be resolved); may change on reload. */
void resolver_rules(const struct ruleset *rs);

/* A listener became readable: accept lookup (dns: DNS over TCP) clients / read DNS datagrams. */
void resolver_accept(int lfd, const char *lname, int dns);
void resolver_dgram(int fd, const char *lname);

/* An event on one of the resolver's own objects (kinds above). */
void resolver_event(void *obj, uint32_t events);

/* Timeouts and resends; resolver_wake() says when they are next due (INT64_MAX: none). */
void resolver_sweep(int64_t now);
int64_t resolver_wake(void);

/*
 * Name-based allow rules: did the relay resolve a name matching pattern to
 * this address, within that answer's lifetime? With only set, the name must
 * also be that one (an AUTHORITY TLV). The name found goes to name.
 */
int resolver_known(const uint8_t a16[16], const char *pattern, const char *only, char *name, size_t size);

/* A connection to this address was allowed by its name: remember it --resolve-keep longer. */
void resolver_renew(const uint8_t a16[16], const char *name);

/* Is anything remembered for this address at all (for a denial's words)? */
int resolver_seen(const uint8_t a16[16], char *name, size_t size);

/*
 * The addresses (IPv4 as ::ffff:a.b.c.d) this relay resolved for name and
 * still remembers, at most max of them: the others a failed connect to one
 * of them may try. Returns how many.
 */
int resolver_addrs(const char *name, uint8_t (*a16)[16], int max);

void resolver_free(void);

#endif
