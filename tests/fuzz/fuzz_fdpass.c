/*
 * libFuzzer target for the fdpass metadata record: any input either fails
 * to decode with EINVAL/EPROTONOSUPPORT, or decodes to a record that
 * encodes again and decodes to the same fields.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fdpass.h"

static int same(const struct fdpass_meta *a, const struct fdpass_meta *b)
{
	return a->version == b->version && a->local_len == b->local_len && a->remote_len == b->remote_len &&
	       a->local.ss_family == b->local.ss_family && a->remote.ss_family == b->remote.ss_family &&
	       !memcmp(&a->local, &b->local, a->local_len) && !memcmp(&a->remote, &b->remote, a->remote_len) &&
	       !strcmp(a->rule, b->rule);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fdpass_meta m, m2;
	unsigned char buf[FDPASS_META_MAXLEN];

	errno = 0;
	if (fdpass_meta_decode(data, size, &m) < 0) {
		if (errno != EINVAL && errno != EPROTONOSUPPORT)
			abort();
		return 0;
	}
	ssize_t n = fdpass_meta_encode(&m, buf, sizeof buf);
	if (n < 43 || (size_t)n > size)
		abort();
	if (fdpass_meta_decode(buf, (size_t)n, &m2) < 0 || !same(&m, &m2))
		abort();
	/* the re-encoded record is the canonical prefix of the input's fields */
	if (memcmp(buf + 42, data + 42, (size_t)n - 42))
		abort();
	return 0;
}
