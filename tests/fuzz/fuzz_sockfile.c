/*
 * libFuzzer target for core/sockfile's one parser, sd_listen_count: the
 * input is "LISTEN_PID\0LISTEN_FDS"; a count comes back only for a whole
 * decimal LISTEN_FDS within the bound and a LISTEN_PID that is ours,
 * otherwise -1 with one of the three errnos.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sockfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[64];

	if (size >= sizeof in)
		return 0;
	memcpy(in, data, size);
	in[size] = 0;
	const char *pid = in, *fds = memchr(in, 0, size) ? in + strlen(in) + 1 : NULL;
	errno = 0;
	int n = sd_listen_count(pid, fds, 4242, 64);
	if (n >= 0) {
		if (!fds || n > 64 || !*pid || pid[strspn(pid, "0123456789")] || strtol(pid, NULL, 10) != 4242 || !*fds || fds[strspn(fds, "0123456789")] ||
		    strtol(fds, NULL, 10) != n)
			abort();
	} else if (errno != ENOENT && errno != ESRCH && errno != ERANGE) {
		abort();
	}
	return 0;
}
