/*
 * Real-function pointers, resolved lazily with dlsym(RTLD_NEXT). A race
 * between two threads resolving the same symbol stores the same value.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>

#include "real.h"

#define HOOK(name, ret, params, args) \
	name##_fn real_##name##_ptr(void) \
	{ \
		static name##_fn p; \
		name##_fn f = __atomic_load_n(&p, __ATOMIC_ACQUIRE); \
		if (!f) { \
			f = (name##_fn)dlsym(RTLD_NEXT, #name); \
			if (!f) \
				abort(); /* no libc below us: nothing sane to do */ \
			__atomic_store_n(&p, f, __ATOMIC_RELEASE); \
		} \
		return f; \
	}
#include "hooks.def"
#undef HOOK
