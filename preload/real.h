/*
 * The real libc functions behind the ones we wrap, found with
 * dlsym(RTLD_NEXT) on first use. real_NAME(...) calls the real NAME.
 */
#ifndef SOCKGATE_REAL_H
#define SOCKGATE_REAL_H

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/epoll.h>
#include <time.h>
#include <netdb.h>

/*
 * musl (libsockgate-musl.so): sendfile64 is a macro naming sendfile (the
 * hook of that name is still exported, for programs linked against it),
 * and the flags of sendmmsg/recvmmsg are unsigned.
 */
#ifdef __GLIBC__
#define MMSG_FLAGS int
#else
#include <sys/sendfile.h>
#undef sendfile64
#define MMSG_FLAGS unsigned int
#endif

#define HOOK(name, ret, params, args) \
	typedef ret (*name##_fn) params; \
	name##_fn real_##name##_ptr(void);
#include "hooks.def"
#undef HOOK

#define REAL(name) (real_##name##_ptr())

#endif
