/*
 * Fuzz target for core/dns: dns_parse() on any bytes must not crash or read
 * past the buffer; a message that parses builds back into a reply that
 * parses, with the same question and the answers kept (or TC set) and an
 * OPT record where the message had one. The
 * same bytes as a DNS-over-TCP stream: dns_tcp_frame() finds a message
 * only where its length prefix says, within the bytes given.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dns_msg m, r;
	static uint8_t out[4096];
	size_t ml = 0;

	int k = dns_tcp_frame(data, size, DNS_TCP_MAX, &ml);
	if (k == 1 && (ml < 12 || ml + 2 > size || ml != (size_t)(data[0] << 8 | data[1])))
		abort();
	if (k == 1)
		(void)dns_parse(data + 2, ml, &r);
	if (k < 0 && size >= 2 && (data[0] << 8 | data[1]) >= 12)
		abort();
	if (dns_parse(data, size, &m) < 0)
		return 0;
	if (m.nan > DNS_RR_MAX || m.nan > m.nan_all)
		abort();
	int n = dns_reply_build(out, sizeof out, &m, m.rcode, m.an, m.nan);
	if (n < 0)
		return 0;	/* a name that cannot be written back (e.g. a bare '*' label run) */
	if ((size_t)n > sizeof out || dns_parse(out, (size_t)n, &r) < 0)
		abort();
	if (m.qname[0] && (strcmp(r.qname, m.qname) || r.qtype != m.qtype))
		abort();
	if (r.nan != m.nan && !r.tc)
		abort();
	if (r.opt != m.opt || (r.opt && r.edns_size != DNS_EDNS_PAYLOAD))
		abort();	/* an OPT record in the query, one in the reply (RFC 6891 section 7) */
	for (size_t i = 0; i < r.nan; i++)
		if (r.an[i].type != m.an[i].type || strcasecmp(r.an[i].name, m.an[i].name))
			abort();
	char name[DNS_NAME_MAX];
	uint8_t a[16];
	if (m.qname[0] && dns_ptr_addr(m.qname, a) == 4 && dns_ptr_name(a, 4, name, sizeof name) < 0)
		abort();
	return 0;
}
