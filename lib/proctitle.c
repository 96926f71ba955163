/*
 * proctitle.c: what ps shows for a process. np-worker runs each task in
 * a forked child without exec (loading np-scan and libcurl's forty-odd
 * libraries again for every scan cost more CPU than a short scan's own
 * work); the child names itself "np-scan TASK", as an exec'd np-scan
 * would be, for ps, pgrep -f, top and the journal.
 *
 * The title is written over the argument strings and, past them, the
 * environment strings (Linux reads a title that overflows into them),
 * so np_proctitle_init moves the environment to the heap first.
 */
#include <string.h>
#include <sys/prctl.h>

#include "np.h"

extern char **environ;

static char *area;
static size_t area_len;
/* Kept (volatile: a store the compiler may not drop) so that the copy
 * stays reachable when a later setenv leaves it unused. */
static char **volatile env_copy;

/* Call first thing in main: argv and environ are not to be kept after. */
void
np_proctitle_init(int argc, char **argv)
{
	char *end, **env;
	size_t n = 0;
	int i;

	if (argc < 1 || argv[0] == NULL)
		return;
	end = argv[0];
	for (i = 0; i < argc && argv[i] == end; i++)
		end = argv[i] + strlen(argv[i]) + 1;
	while (environ[n])
		n++;
	env = np_xcalloc(n + 1, sizeof(*env));
	for (i = 0; (size_t)i < n; i++) {
		if (environ[i] == end)
			end = environ[i] + strlen(environ[i]) + 1;
		env[i] = np_xstrdup(environ[i]);
	}
	environ = env_copy = env;
	area = argv[0];
	area_len = (size_t)(end - argv[0]);
}

/* Sets the title (and the 15-byte name top and pgrep show) to title. */
void
np_proctitle_set(const char *name, const char *title)
{
	size_t n = strlen(title);

	prctl(PR_SET_NAME, name);
	if (area == NULL || area_len < 2)
		return;
	if (n > area_len - 1)
		n = area_len - 1;
	memcpy(area, title, n);
	memset(area + n, 0, area_len - n);
}
