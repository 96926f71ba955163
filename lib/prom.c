/*
 * prom.c: the Prometheus text exposition format, for np-metrics. One
 * HELP and TYPE line per family before its samples, label values
 * escaped (\\, \", \n), no timestamps (node_exporter's textfile
 * collector rejects a whole file that has one).
 *
 * np-metrics writes a sample per scanner and family (5,000 lines for
 * 1,000 scanners): samples are built with memcpy and a hand-written
 * integer conversion, not printf, whose parsing of the format was most
 * of the cost of a line.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

/* Room for n more bytes and the NUL, grown by doubling. */
static void
grow(np_buf *b, size_t n)
{
	b->cap = (b->len + n + 1) * 2;
	b->buf = np_xrealloc(b->buf, b->cap);
}

/* Room for n more bytes and the NUL, for a buffer whose size is known:
 * no copies as it grows. */
void
np_buf_reserve(np_buf *b, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = b->len + n + 1;
		b->buf = np_xrealloc(b->buf, b->cap);
	}
}

/* np_buf_add, inlined: a sample is a dozen pieces. */
static inline void
add(np_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
		grow(b, n);
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
}

void
np_buf_add(np_buf *b, const char *s, size_t n)
{
	add(b, s, n);
}

/* v in decimal, as "%lld" would write it. */
void
np_buf_int(np_buf *b, long long v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	/* Unsigned: -LLONG_MIN does not fit a long long. */
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v :
	    (unsigned long long)v;

	do
		*--p = (char)('0' + u % 10);
	while ((u /= 10) != 0);
	if (v < 0)
		*--p = '-';
	add(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void
np_buf_printf(np_buf *b, const char *fmt, ...)
{
	char small[512], *big = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < (int)sizeof(small)) {
		np_buf_add(b, small, (size_t)n);
		return;
	}
	va_start(ap, fmt);
	if (vasprintf(&big, fmt, ap) == -1)
		np_die(NP_ESOFTWARE, "out of memory");
	va_end(ap);
	np_buf_add(b, big, strlen(big));
	free(big);
}

void
np_prom_family(np_buf *b, const char *name, const char *type,
    const char *help)
{
	np_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* s with \\, " and newline escaped; the runs between them in one copy
 * (a table: values are short, strcspn's setup costs more). */
static void
escaped(np_buf *b, const char *s)
{
	static const bool special[256] = { ['\\'] = 1, ['"'] = 1, ['\n'] = 1 };
	const char *run = s;

	for (; *s; s++) {
		if (!special[(unsigned char)*s])
			continue;
		add(b, run, (size_t)(s - run));
		add(b, *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : "\\n", 2);
		run = s + 1;
	}
	add(b, run, (size_t)(s - run));
}

/* " v\n": integers as integers, anything else with 10 digits. */
static void
value(np_buf *b, double v)
{
	if (v == (double)(long long)v && v < 1e15 && v > -1e15) {
		add(b, " ", 1);
		np_buf_int(b, (long long)v);
		add(b, "\n", 1);
	} else
		np_buf_printf(b, " %.10g\n", v);
}

/* Labels ',k="v"' (first: '{k="v"') from ap until a NULL key. */
static bool
labels(np_buf *b, bool first, va_list ap)
{
	const char *k, *val;

	while ((k = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		add(b, first ? "{" : ",", 1);
		add(b, k, strlen(k));
		add(b, "=\"", 2);
		escaped(b, val ? val : "");
		add(b, "\"", 1);
		first = false;
	}
	return first;
}

/*
 * One sample: name{k1="v1",...} value. The labels are name/value pairs
 * after the value, ended by NULL.
 */
void
np_prom_sample(np_buf *b, const char *name, double v, ...)
{
	va_list ap;
	bool none;

	add(b, name, strlen(name));
	va_start(ap, v);
	none = labels(b, true, ap);
	va_end(ap);
	if (!none)
		add(b, "}", 1);
	value(b, v);
}

/*
 * np_prom_sample in two steps, for the many samples that share their
 * first labels (a scanner's, a pool's): np_prom_labels writes those
 * once, escaped, as '{k1="v1",...' (no closing brace; nothing when
 * there are none); np_prom_sample_at writes a sample with them, then
 * its own labels if any. The text is np_prom_sample's, for a fraction
 * of the work.
 */
void
np_prom_labels(np_buf *b, ...)
{
	va_list ap;

	va_start(ap, b);
	labels(b, true, ap);
	va_end(ap);
}

void
np_prom_sample_at(np_buf *b, const char *name, const char *lab, size_t n,
    double v, ...)
{
	va_list ap;
	bool none;

	add(b, name, strlen(name));
	add(b, lab, n);
	va_start(ap, v);
	none = labels(b, n == 0, ap);
	va_end(ap);
	if (!none)
		add(b, "}", 1);
	value(b, v);
}
