/*
 * libsockgate.so: runs inside an unchanged program (LD_PRELOAD). Where no
 * rule matches, every call goes straight to libc. See libsockgate(7).
 */
#include <errno.h>
#include <sys/socket.h>

#include "real.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	return REAL(connect)(fd, sa, len);
}
