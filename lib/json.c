/*
 * json.c: JSON in and out. Output is one compact object per line, so
 * that `| jq` and `| while read` work; input is bounded in size.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

void
np_json_out(json_t *v)
{
	if (json_dumpf(v, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) == -1 ||
	    fputc('\n', stdout) == EOF)
		np_die(NP_EIO, "stdout: write error");
}

void
np_json_out_steal(json_t *v)
{
	np_json_out(v);
	json_decref(v);
}

char *
np_json_compact(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (s == NULL)
		np_die(NP_ESOFTWARE, "out of memory");
	return s;
}

/*
 * Reads all of f (at most max bytes) as one JSON value. A larger input,
 * invalid JSON or trailing garbage is a data error naming where.
 */
json_t *
np_json_read(FILE *f, size_t max, np_error *err)
{
	char *buf = NULL;
	size_t n = 0, cap = 0, r;
	json_error_t je;
	json_t *v;

	for (;;) {
		if (n + 65536 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = np_xrealloc(buf, cap + 1);
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (n > max) {
			free(buf);
			np_seterr(err, NP_EDATA, "input larger than %zu bytes", max);
			return NULL;
		}
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		free(buf);
		np_seterr(err, NP_EIO, "stdin: %s", strerror(errno));
		return NULL;
	}
	v = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (v == NULL)
		np_seterr(err, NP_EDATA, "invalid JSON at line %d column %d: %s",
		    je.line, je.column, je.text);
	return v;
}

const char *
np_json_str(json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}
