/*
 * slowsync.so: an LD_PRELOAD shim for the chaos tests. Every fsync,
 * fdatasync and syncfs first sleeps a random 0 to SLOW_SYNC_MS ms
 * (default 200): a slow, shared disk, on which a worker's loop can stall
 * past a short lease_ttl.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static void
nap(void)
{
	const char *m = getenv("SLOW_SYNC_MS");
	long ms = m ? atol(m) : 200, r;
	struct timespec ts;

	if (ms <= 0)
		return;
	r = random() % (ms + 1);
	ts.tv_sec = r / 1000;
	ts.tv_nsec = (r % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

#define WRAP(name)							\
int									\
name(int fd)								\
{									\
	static int (*real)(int);					\
	if (real == NULL)						\
		*(void **)&real = dlsym(RTLD_NEXT, #name);		\
	nap();								\
	return real(fd);						\
}

WRAP(fsync)
WRAP(fdatasync)
WRAP(syncfs)

__attribute__((constructor)) static void
seed(void)
{
	srandom((unsigned)getpid() ^ (unsigned)time(NULL));
}
