/* tap.h: the least TAP a C unit test needs. */
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

#define plan(n) printf("1..%d\n", (n))
#define ok(cond, ...) do {						\
	int ok_ = (cond);						\
	printf("%s %d - ", ok_ ? "ok" : "not ok", ++tap_n);		\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	if (!ok_) {							\
		tap_failed++;						\
		printf("#   failed at %s:%d: %s\n", __FILE__, __LINE__,	\
		    #cond);						\
	}								\
	fflush(stdout);							\
} while (0)
#define done() return tap_failed ? 1 : 0
