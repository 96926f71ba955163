/*
 * log.c: diagnostics on stderr, one line each, prefixed with the command
 * name. NP_LOG_LEVEL (error, warn, info, debug) sets how chatty np is;
 * the default is warn. Nothing here ever formats a secret: callers pass
 * names and ids, never keys or passwords.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

const char *np_progname = "np";
static int level = -1;

enum { L_ERROR, L_WARN, L_INFO, L_DEBUG };

static int
log_level(void)
{
	const char *s;

	if (level >= 0)
		return level;
	level = L_WARN;
	if ((s = getenv("NP_LOG_LEVEL")) != NULL) {
		if (strcmp(s, "error") == 0)
			level = L_ERROR;
		else if (strcmp(s, "info") == 0)
			level = L_INFO;
		else if (strcmp(s, "debug") == 0)
			level = L_DEBUG;
	}
	return level;
}

void
np_setprogname(const char *argv0)
{
	const char *p = strrchr(argv0, '/');

	np_progname = p ? p + 1 : argv0;
}

static void
vlog(const char *tag, const char *fmt, va_list ap)
{
	char line[1024];
	char *p;

	vsnprintf(line, sizeof(line), fmt, ap);
	/* One line per diagnostic, whatever the caller passed in. */
	for (p = line; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (tag)
		fprintf(stderr, "%s: %s: %s\n", np_progname, tag, line);
	else
		fprintf(stderr, "%s: %s\n", np_progname, line);
}

int
np_seterr(np_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}

void
np_die(int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(NULL, fmt, ap);
	va_end(ap);
	exit(status);
}

void
np_die_err(const np_error *e)
{
	np_die(e->code ? e->code : NP_ESOFTWARE, "%s", e->msg);
}

void
np_warn(const char *fmt, ...)
{
	va_list ap;

	if (log_level() < L_WARN)
		return;
	va_start(ap, fmt);
	vlog("warning", fmt, ap);
	va_end(ap);
}

void
np_info(const char *fmt, ...)
{
	va_list ap;

	if (log_level() < L_INFO)
		return;
	va_start(ap, fmt);
	vlog(NULL, fmt, ap);
	va_end(ap);
}

void
np_debug(const char *fmt, ...)
{
	va_list ap;

	if (log_level() < L_DEBUG)
		return;
	va_start(ap, fmt);
	vlog("debug", fmt, ap);
	va_end(ap);
}

void
np_version_exit(void)
{
	printf("%s %s\n", np_progname, NP_VERSION);
	exit(0);
}
