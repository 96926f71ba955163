/*
 * util.c: small things every part needs: allocation that cannot return
 * NULL, time in RFC 3339 UTC, durations, integers, names, randomness.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "np.h"

volatile sig_atomic_t np_interrupted;

/* Sleeps in small steps so that a signal (np_interrupted) cuts it short. */
void
np_sleep_ms(int64_t ms)
{
	int64_t end = np_now_ms() + ms, left;
	struct timespec ts;

	while (!np_interrupted && (left = end - np_now_ms()) > 0) {
		if (left > 100)
			left = 100;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)left * 1000000L;
		nanosleep(&ts, NULL);
	}
}

void *
np_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		np_die(NP_ESOFTWARE, "out of memory");
	return p;
}

void *
np_xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);

	if (p == NULL)
		np_die(NP_ESOFTWARE, "out of memory");
	return p;
}

void *
np_xrealloc(void *p, size_t n)
{
	if ((p = realloc(p, n ? n : 1)) == NULL)
		np_die(NP_ESOFTWARE, "out of memory");
	return p;
}

char *
np_xstrdup(const char *s)
{
	char *p;

	if (s == NULL)
		return NULL;
	if ((p = strdup(s)) == NULL)
		np_die(NP_ESOFTWARE, "out of memory");
	return p;
}

int64_t
np_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
np_rfc3339(int64_t ms, char buf[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	char base[24];

	gmtime_r(&t, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, 32, "%.20s.%03dZ", base, (int)(ms % 1000));
}

/* Accepts what np writes (with or without milliseconds), UTC only. */
int
np_parse_rfc3339(const char *s, int64_t *ms)
{
	struct tm tm = { 0 };
	const char *p;
	int frac = 0, digits = 0;

	if (s == NULL || (p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return -1;
	if (*p == '.') {
		for (p++; isdigit((unsigned char)*p); p++, digits++)
			if (digits < 3)
				frac = frac * 10 + (*p - '0');
		while (digits > 0 && digits < 3)
			frac *= 10, digits++;
	}
	if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
		return -1;
	*ms = (int64_t)timegm(&tm) * 1000 + frac;
	return 0;
}

/*
 * Durations: a number with an optional unit ms, s, m, h, d; a bare number
 * is seconds. "500ms", "30s", "5m", "24h", "7d", "90".
 */
int
np_parse_duration(const char *s, int64_t *ms)
{
	char *end;
	long long v;
	int64_t mul;

	if (s == NULL || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno)
		return -1;
	if (*end == '\0' || strcmp(end, "s") == 0)
		mul = 1000;
	else if (strcmp(end, "ms") == 0)
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60000;
	else if (strcmp(end, "h") == 0)
		mul = 3600000;
	else if (strcmp(end, "d") == 0)
		mul = 86400000;
	else
		return -1;
	if (v > INT64_MAX / mul)
		return -1;
	*ms = (int64_t)v * mul;
	return 0;
}

int
np_parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Pool names and instance ids: [A-Za-z0-9_-]{1,64}. */
bool
np_name_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	for (n = 0; s[n]; n++)
		if (!isalnum((unsigned char)s[n]) && s[n] != '_' && s[n] != '-')
			return false;
	return n >= 1 && n <= 64;
}

void
np_random_hex(char *out, size_t nhex)
{
	unsigned char b[64];
	size_t i, nb = (nhex + 1) / 2;
	ssize_t r;

	if (nb > sizeof(b))
		np_die(NP_ESOFTWARE, "np_random_hex: %zu digits", nhex);
	while ((r = getrandom(b, nb, 0)) != (ssize_t)nb)
		if (r == -1 && errno != EINTR)
			np_die(NP_ESOFTWARE, "getrandom: %s", strerror(errno));
	for (i = 0; i < nhex; i++)
		out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[nhex] = '\0';
}
