/*
 * relayconn: sockgate-relay's per-connection decisions (see relayconn.h).
 * The relay does the I/O and calls these; tests/fuzz/fuzz_relayconn.c
 * calls them with arbitrary bytes, splits and events.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "relayconn.h"

int relayconn_header(const uint8_t *buf, size_t len, int eof, size_t max, struct proxy_hdr *h, size_t *hdrlen)
{
	size_t n = 0;

	if (len == 0)
		return eof ? RC_HDR_EMPTY : RC_HDR_NEED;
	memset(h, 0, sizeof *h);
	int r = proxyv2_parse(buf, len, h, &n);
	if (r < 0)
		return RC_HDR_BAD;
	if (r == PROXY_NEED) {
		/* n: how many more bytes at least */
		if (len + n > max)
			return RC_HDR_TOOLONG;
		return eof ? RC_HDR_TRUNCATED : RC_HDR_NEED;
	}
	*hdrlen = n;
	return RC_HDR_DONE;
}

int relayconn_addresses(const struct proxy_hdr *h, int original, struct sg_addr *client, struct sg_addr *dest,
			char *why, size_t size)
{
	if (h->command == PROXY_CMD_PROXY && h->src.ss_family != AF_UNSPEC) {
		memcpy(&client->u.ss, &h->src, sizeof h->src);
		client->len = h->srclen;
		memcpy(&dest->u.ss, &h->dst, sizeof h->dst);
		dest->len = h->dstlen;
		if (original && h->socktype == SOCK_DGRAM) {
			snprintf(why, size, "denied: the header names a UDP destination");
			return -1;
		}
		return 0;
	}
	if (original) {
		dest->len = 0;
		snprintf(why, size, "denied: the PROXY header carries no destination (%s)",
			 h->command == PROXY_CMD_LOCAL ? "LOCAL" : h->version == 1 ? "PROXY UNKNOWN" : "family UNSPEC");
		return -1;
	}
	return 0;
}

int relayconn_route(const struct ruleset *rules, const struct sg_addr *client, const struct sg_addr *dest,
		    int proto, int (*host_ok)(void *ctx, const char *pattern), void *ctx, const struct rule **matched,
		    struct sg_addr *target, char *why, size_t size)
{
	*matched = NULL;
	int f = dest->len ? dest->u.sa.sa_family : AF_UNSPEC;
	if (f != AF_INET && f != AF_INET6) {
		snprintf(why, size, "denied: no IP destination to check (%s)",
			 f == AF_UNIX ? "a Unix address" : "none given");
		return -1;
	}
	if (!rules) {
		snprintf(why, size, "denied: no allow rules loaded");
		return -1;
	}
	int pf = client->len ? client->u.sa.sa_family : AF_UNSPEC;
	struct rules_query q = {
		.dir = RULE_CONNECT, .proto = proto, .addr = &dest->u.sa,
		.peer = pf == AF_INET || pf == AF_INET6 ? &client->u.sa : NULL,
		.host_ok = host_ok, .ctx = ctx,
	};
	const struct rule *r = rules_match(rules, &q);
	*matched = r;
	if (!r) {
		snprintf(why, size, "denied: no rule allows it");
		return -1;
	}
	const char *arg = rules_str(rules, r->arg);
	char path[sizeof target->u.un.sun_path];
	switch (r->action) {
	case ACT_PASS:
		*target = *dest;
		return 0;
	case ACT_TCP:
		if (arg && addr_parse_inet(arg, target) == 0)
			return 0;
		snprintf(why, size, "denied: rule at line %u has a bad address", (unsigned)r->line);
		return -1;
	case ACT_UNIX:
	case ACT_ABSTRACT:
		if (arg && rules_expand(arg, &dest->u.sa, path, sizeof path) >= 0 &&
		    addr_unix(target, path, r->action == ACT_ABSTRACT) == 0)
			return 0;
		snprintf(why, size, "denied: rule at line %u: path does not fit", (unsigned)r->line);
		return -1;
	case ACT_REJECT:
	case ACT_BLACKHOLE:
		snprintf(why, size, "denied by rule at line %u (%s)", (unsigned)r->line,
			 rules_action_name(r->action));
		return -1;
	default:
		snprintf(why, size, "denied: rule at line %u: action %s is not one the relay performs",
			 (unsigned)r->line, rules_action_name(r->action));
		return -1;
	}
}

int relayconn_build_out(int version, const struct sg_addr *client, const struct sg_addr *dest,
			const struct proxy_hdr *in, uint8_t *buf, size_t size)
{
	struct proxy_hdr h;

	memset(&h, 0, sizeof h);
	h.version = version;
	h.command = PROXY_CMD_PROXY;
	h.socktype = SOCK_STREAM;
	if (in) {
		memcpy(h.authority, in->authority, sizeof h.authority);
		h.authority_len = in->authority_len;
		memcpy(h.unique_id, in->unique_id, sizeof h.unique_id);
		h.unique_id_len = in->unique_id_len;
		memcpy(h.netns, in->netns, sizeof h.netns);
		h.netns_len = in->netns_len;
	}
	int fs = client->len ? client->u.sa.sa_family : AF_UNSPEC, fd = dest->len ? dest->u.sa.sa_family : AF_UNSPEC;
	int inet = (fs == AF_INET || fs == AF_INET6) && (fd == AF_INET || fd == AF_INET6);
	if (inet || (fs == AF_UNIX && fd == AF_UNIX && version == 2)) {
		memcpy(&h.src, &client->u.ss, sizeof h.src);
		h.srclen = client->len;
		memcpy(&h.dst, &dest->u.ss, sizeof h.dst);
		h.dstlen = dest->len;
		if (inet && fs != fd) {
			if (fs == AF_INET)
				addr_to_family(&h.src, &h.srclen, AF_INET6);
			else
				addr_to_family(&h.dst, &h.dstlen, AF_INET6);
		}
	} else {
		h.src.ss_family = h.dst.ss_family = AF_UNSPEC;
	}
	return version == 1 ? proxyv1_build((char *)buf, size, &h)
			    : proxyv2_build(buf, size, &h, in && in->has_crc32c ? PROXYV2_CRC32C : 0);
}

size_t relaydir_room(const struct relaydir *d, size_t cap)
{
	return d->eof || d->inpipe >= cap ? 0 : cap - d->inpipe;
}

void relaydir_read(struct relaydir *d, size_t n)
{
	if (n == 0) {
		d->eof = 1;
		return;
	}
	d->inpipe += n;
	d->bytes += n;
}

void relaydir_wrote(struct relaydir *d, size_t n)
{
	d->inpipe -= n;
	d->sent += n;
}

int relaydir_shut_now(const struct relaydir *d)
{
	return d->eof && !d->inpipe && !d->shut;
}

int relayconn_done(const struct relaydir *up, const struct relaydir *down)
{
	return up->shut && down->shut;
}
