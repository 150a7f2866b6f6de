/*
 * Link-time stand-ins for glibc's libpthread.so.0 and libdl.so.2 as they
 * were before 2.34, for `make PARACONTAINER=1` (see glibc-old.h): linking
 * against them records the old symbol versions and these two libraries as
 * needed. They are never installed or loaded; the real ones are.
 */
#define STUB(name) void name(void); void name(void) {}
#ifdef STUB_LIBDL
STUB(dlsym)
#else
STUB(pthread_create)
STUB(pthread_once)
STUB(pthread_attr_setstacksize)
STUB(pthread_sigmask)
STUB(pthread_mutex_trylock)
#endif
