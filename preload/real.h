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

#define HOOK(name, ret, params, args) \
	typedef ret (*name##_fn) params; \
	name##_fn real_##name##_ptr(void);
#include "hooks.def"
#undef HOOK

#define REAL(name) (real_##name##_ptr())

#endif
