/*
 * prom.c: the Prometheus text exposition format, for np-metrics. One
 * HELP and TYPE line per family before its samples, label values
 * escaped (\\, \", \n), no timestamps (node_exporter's textfile
 * collector rejects a whole file that has one).
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

void
np_buf_add(np_buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->buf = np_xrealloc(b->buf, b->cap);
	}
	memcpy(b->buf + b->len, s, n);
	b->len += n;
	b->buf[b->len] = '\0';
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

static void
escaped(np_buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			np_buf_add(b, "\\\\", 2);
		else if (*s == '"')
			np_buf_add(b, "\\\"", 2);
		else if (*s == '\n')
			np_buf_add(b, "\\n", 2);
		else
			np_buf_add(b, s, 1);
	}
}

/*
 * One sample: name{k1="v1",...} value. The labels are name/value pairs
 * after the value, ended by NULL.
 */
void
np_prom_sample(np_buf *b, const char *name, double v, ...)
{
	const char *k, *val;
	va_list ap;
	bool first = true;

	np_buf_add(b, name, strlen(name));
	va_start(ap, v);
	while ((k = va_arg(ap, const char *)) != NULL) {
		val = va_arg(ap, const char *);
		np_buf_printf(b, "%s%s=\"", first ? "{" : ",", k);
		escaped(b, val ? val : "");
		np_buf_add(b, "\"", 1);
		first = false;
	}
	va_end(ap);
	if (!first)
		np_buf_add(b, "}", 1);
	if (v == (double)(long long)v && v < 1e15 && v > -1e15)
		np_buf_printf(b, " %lld\n", (long long)v);
	else
		np_buf_printf(b, " %.10g\n", v);
}
