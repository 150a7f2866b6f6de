/*
 * libFuzzer target for core/ctlfile: arbitrary bytes are either rejected
 * with EINVAL or decode to a file that encodes back to exactly the same
 * bytes, prints, and reads back from its printed options. The checksum is
 * fixed up half the time so that the checks behind it are reached too.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctlfile.h"
#include "proxyv2.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b = malloc(size ? size : 1);
	memcpy(b, data, size);
	if (size > CTLFILE_HDR && (data[size - 1] & 1)) {
		uint32_t c = crc32c(0, b + CTLFILE_HDR, size - CTLFILE_HDR);
		for (int i = 0; i < 4; i++)
			b[12 + i] = (uint8_t)(c >> (8 * i));
	}
	struct ctlfile c;
	struct ctl_error e;
	if (ctlfile_decode(b, size, &c, &e) == 0) {
		uint8_t out[CTLFILE_MAXLEN];
		char line[1024];
		if (ctlfile_encode(&c, out, sizeof out, &e) != (ssize_t)size || memcmp(out, b, size))
			abort();
		if (ctlfile_format(&c, line, sizeof line) <= 0)
			abort();
		struct sockaddr_storage ss;
		socklen_t sl;
		ctlfile_sockaddr(&c, &ss, &sl);
		if (sl == 0 || sl > sizeof ss)
			abort();
	} else if (errno != EINVAL) {
		abort();
	}
	free(b);
	return 0;
}
