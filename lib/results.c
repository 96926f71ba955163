/*
 * results.c: the findings of a finished task as NDJSON (np-results(1)).
 *
 * The export is read once, as a stream, with libxml2's xmlReader (no
 * entity substitution, no network). Each ReportItem is gathered into a
 * record that is reused from one item to the next: an arena of
 * NUL-terminated texts, a list of fields and a list of values, so the
 * steady state allocates nothing and memory is bounded by the largest
 * ReportItem, not by the file. The record is filtered on every field,
 * then projected and written by hand: that way a score goes out as the
 * very text of the file (5.9, never 5.9000000000000004) and no jansson
 * tree is built per finding.
 *
 * Only what can be printed or is filtered on is gathered: outside the
 * requested page a finding is counted, not copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <libxml/xmlreader.h>

#include "np.h"

/* What a field's text becomes in JSON. */
enum { K_TEXT, K_INT, K_NUM, K_BOOL, K_LIST, K_LINES };

enum { OP_SUB, OP_BOOL, OP_EQ, OP_LT, OP_LE, OP_GT, OP_GE };

/* What the text being read belongs to. */
enum { T_FIELD = 1, T_HOST, T_POLICY, T_PREFNAME, T_PREFVAL };

/* The longest a printed line waits in our buffer, in ms. */
#define FLUSH_MS 10
#define NAME_MAX_LEN 128	/* of a field name in --fields or --filter */
#define MAX_FIELDS 256
#define MAX_FILTERS 64

typedef struct {
	char *p;
	size_t len, cap;
} sbuf;

typedef struct {
	char *name;
	int kind;
	int proj;		/* position in the projection, or -1 */
	bool filtered;		/* a filter reads it: always gathered */
	int slot;		/* the current record's field, or -1 */
} rkey;

typedef struct {
	int key;
	int first, last, n;	/* chain of values */
	bool attr;		/* from an attribute: no child overrides it */
} rfield;

typedef struct {
	size_t off, len;	/* in the arena */
	int next;
} rvalue;

typedef struct {
	const char *expr;
	int key, op;
	const char *text;	/* OP_SUB: the needle */
	double num;
	bool b;
} rfilter;

/* The fields every record may start with, in this order. */
enum { F_HOST, F_HOST_IP, F_HOST_FQDN, F_NETBIOS, F_OS, F_PLUGIN_ID,
	F_PLUGIN_NAME, F_PLUGIN_FAMILY, F_SEVERITY, F_PORT, F_SVC, F_PROTOCOL,
	F_FIXED };
static const char *const fixed_keys[F_FIXED] = { "host", "host_ip",
	"host_fqdn", "netbios_name", "operating_system", "plugin_id",
	"plugin_name", "plugin_family", "severity", "port", "svc_name",
	"protocol" };
/* HostProperties tags kept, for F_HOST_IP .. F_OS. */
static const char *const host_tags[] = { "host-ip", "host-fqdn",
	"netbios-name", "operating-system" };
static const struct {
	const char *attr;
	int key;
} item_attrs[] = {
	{ "pluginID", F_PLUGIN_ID }, { "pluginName", F_PLUGIN_NAME },
	{ "pluginFamily", F_PLUGIN_FAMILY }, { "severity", F_SEVERITY },
	{ "port", F_PORT }, { "svc_name", F_SVC }, { "protocol", F_PROTOCOL },
};

static const struct {
	const char *name;
	int kind;
} kinds[] = {
	{ "severity", K_INT }, { "port", K_INT },
	{ "cvss_base_score", K_NUM }, { "cvss_temporal_score", K_NUM },
	{ "cvss3_base_score", K_NUM }, { "cvss3_temporal_score", K_NUM },
	{ "cvss4_base_score", K_NUM }, { "cvss4_threat_score", K_NUM },
	{ "cvssV3_impactScore", K_NUM }, { "vpr_score", K_NUM },
	{ "epss_score", K_NUM },
	{ "exploit_available", K_BOOL }, { "exploited_by_malware", K_BOOL },
	{ "exploited_by_nessus", K_BOOL }, { "in_the_news", K_BOOL },
	{ "unsupported_by_vendor", K_BOOL }, { "default_account", K_BOOL },
	{ "exploit_framework_canvas", K_BOOL },
	{ "exploit_framework_core", K_BOOL },
	{ "exploit_framework_d2_elliot", K_BOOL },
	{ "exploit_framework_exploithub", K_BOOL },
	{ "exploit_framework_metasploit", K_BOOL },
	{ "bid", K_LIST }, { "cert", K_LIST }, { "cea-id", K_LIST },
	{ "cve", K_LIST }, { "cwe", K_LIST }, { "edb-id", K_LIST },
	{ "iava", K_LIST }, { "iavb", K_LIST }, { "iavt", K_LIST },
	{ "msft", K_LIST }, { "mskb", K_LIST }, { "osvdb", K_LIST },
	{ "secunia", K_LIST }, { "xref", K_LIST },
	{ "see_also", K_LINES }, { "cpe", K_LINES },
};

static const char *const profiles[] = { "minimal", "summary", "brief",
	"full", NULL };
/* Each profile is the one before it plus its own list. */
static const char *const prof_fields[] = {
	"host", "plugin_id", "severity", "cve", "cvss3_base_score",
	"cvss_base_score", "exploit_available",
	"plugin_name", "synopsis", "port", "protocol", "risk_factor",
	"vpr_score", "epss_score",
	"description", "solution", "see_also",
};
static const size_t prof_count[] = { 7, 14, 17 };

struct np_results {
	/* the query */
	const char *profile;	/* NULL until chosen */
	int *proj;		/* the keys to print, in order */
	size_t nproj;
	bool all;		/* full: every field, in record order */
	rfilter *f;
	char **exprs;		/* the filters as given, for the schema */
	size_t nf;
	char *fcopy;		/* --fields, cut into names */
	long page, ps;
	long long first, end;	/* the page: matches [first, end) */
	/* field names seen, hashed for the lookup of each element's name */
	rkey *keys;
	size_t nkeys, capkeys;
	int *hash;		/* key index + 1; 0 = empty */
	size_t hcap;
	/* the current record */
	rfield *fields;
	size_t nfields, capfields;
	rvalue *vals;
	size_t nvals, capvals;
	sbuf arena;
	bool full;		/* the record is on the page, if it matches */
	/* where the reader is: element depths, -1 when outside */
	xmlTextReaderPtr r;
	bool root_seen;
	int host_depth, item_depth, hp_depth, sp_depth;
	/* the element whose text is being gathered (tkind 0: none) */
	int tkind, tdepth, tkey, tpref;
	size_t tstart;
	sbuf *tbuf;
	sbuf host[F_OS + 1];	/* this host's name and properties */
	bool has_host[F_OS + 1];
	sbuf tagname;
	/* scan_metadata */
	json_t *task;
	const char *id, *path;
	bool meta_done, have_report;
	sbuf scan_name, policy, prefname, t_start, t_end;
	/* output */
	FILE *out;
	sbuf ob;		/* the line being built */
	long long matched;	/* findings matching the filters so far */
	bool dirty;		/* printed since the last flush */
	int64_t last_flush;
	char xerr[200];		/* libxml2's first error, and its line */
	int xline;
};

typedef struct np_results rstate;

static unsigned char esc[256];

static void
esc_init(void)
{
	int c;

	for (c = 0; c < 0x20; c++)
		esc[c] = 1;
	esc['"'] = esc['\\'] = 1;
}

/* ------------------------------------------------------------ buffers */

static void
sb_need(sbuf *b, size_t n)
{
	if (b->len + n + 1 <= b->cap)
		return;
	b->cap = b->cap ? b->cap : 256;
	while (b->len + n + 1 > b->cap)
		b->cap *= 2;
	b->p = np_xrealloc(b->p, b->cap);
}

static void
sb_add(sbuf *b, const void *s, size_t n)
{
	sb_need(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_puts(sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static void
sb_set(sbuf *b, const char *s)
{
	b->len = 0;
	sb_add(b, s, strlen(s));
}

/* A JSON string: UTF-8 passes through, controls, '"' and '\' escaped. */
static void
sb_json_str(sbuf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i = 0, j;

	sb_need(b, n + 2);
	b->p[b->len++] = '"';
	for (;;) {
		for (j = i; j < n && !esc[(unsigned char)s[j]]; j++)
			;
		sb_add(b, s + i, j - i);
		if (j == n)
			break;
		sb_need(b, 6);
		b->p[b->len++] = '\\';
		switch (s[j]) {
		case '"': b->p[b->len++] = '"'; break;
		case '\\': b->p[b->len++] = '\\'; break;
		case '\n': b->p[b->len++] = 'n'; break;
		case '\t': b->p[b->len++] = 't'; break;
		case '\r': b->p[b->len++] = 'r'; break;
		case '\b': b->p[b->len++] = 'b'; break;
		case '\f': b->p[b->len++] = 'f'; break;
		default:
			memcpy(b->p + b->len, "u00", 3);
			b->p[b->len + 3] = hex[(unsigned char)s[j] >> 4];
			b->p[b->len + 4] = hex[s[j] & 15];
			b->len += 5;
		}
		i = j + 1;
	}
	sb_add(b, "\"", 1);
}

/* ------------------------------------------------------- field names */

static bool
name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > NAME_MAX_LEN)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && !strchr("_-.:", c))
			return false;
	}
	return true;
}

static int
kind_of(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (!strcmp(kinds[i].name, name))
			return kinds[i].kind;
	return K_TEXT;
}

static size_t
hash_name(const char *s)
{
	size_t h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static void
rehash(rstate *s)
{
	size_t i, h;

	free(s->hash);
	s->hcap = s->hcap ? s->hcap * 2 : 128;
	s->hash = np_xcalloc(s->hcap, sizeof(int));
	for (i = 0; i < s->nkeys; i++) {
		for (h = hash_name(s->keys[i].name); s->hash[h & (s->hcap - 1)];
		    h++)
			;
		s->hash[h & (s->hcap - 1)] = (int)i + 1;
	}
}

/* The key of a field name, registered on first sight. */
static int
key_of(rstate *s, const char *name)
{
	size_t h = hash_name(name);
	int k;
	rkey *nk;

	for (; (k = s->hash[h & (s->hcap - 1)]) != 0; h++)
		if (!strcmp(s->keys[k - 1].name, name))
			return k - 1;
	if (s->nkeys == s->capkeys) {
		s->capkeys = s->capkeys ? s->capkeys * 2 : 64;
		s->keys = np_xrealloc(s->keys, s->capkeys * sizeof(rkey));
	}
	nk = &s->keys[s->nkeys];
	nk->name = np_xstrdup(name);
	nk->kind = kind_of(name);
	nk->proj = -1;
	nk->filtered = false;
	nk->slot = -1;
	s->hash[h & (s->hcap - 1)] = (int)++s->nkeys;
	/* Half full at most, so a probe ends soon. */
	if (s->nkeys * 2 > s->hcap)
		rehash(s);
	return (int)s->nkeys - 1;
}

/* ------------------------------------------------------------ query */

static int
add_proj(rstate *s, const char *name)
{
	int k = key_of(s, name);

	if (s->keys[k].proj >= 0)
		return 0;	/* asked twice: printed once */
	s->keys[k].proj = (int)s->nproj;
	s->proj[s->nproj++] = k;
	return 0;
}

static int
set_profile(rstate *s, const char *p, np_error *err)
{
	size_t i, j;

	for (i = 0; profiles[i] && strcmp(profiles[i], p); i++)
		;
	if (profiles[i] == NULL)
		return np_seterr(err, NP_EUSAGE, "--profile: no profile '%s' "
		    "(minimal, summary, brief, full)", p);
	s->profile = profiles[i];
	if (i == 3) {
		s->all = true;
		return 0;
	}
	s->proj = np_xcalloc(prof_count[i], sizeof(int));
	for (j = 0; j < prof_count[i]; j++)
		add_proj(s, prof_fields[j]);
	return 0;
}

static int
set_fields(rstate *s, const char *list, np_error *err)
{
	char *p, *name;

	s->profile = "custom";
	s->fcopy = np_xstrdup(list);
	s->proj = np_xcalloc(MAX_FIELDS, sizeof(int));
	for (p = s->fcopy; (name = strsep(&p, ",")) != NULL;) {
		if (!name_ok(name, strlen(name)))
			return np_seterr(err, NP_EUSAGE, "--fields: '%.*s' is not "
			    "a field name ([A-Za-z0-9_.:-], 1 to %d characters)",
			    NAME_MAX_LEN, name, NAME_MAX_LEN);
		/* Every record starts with its type anyway. */
		if (strcmp(name, "type") == 0)
			continue;
		if (s->nproj == MAX_FIELDS)
			return np_seterr(err, NP_EUSAGE, "--fields: more than %d "
			    "fields", MAX_FIELDS);
		add_proj(s, name);
	}
	return 0;
}

static bool
parse_num(const char *t, double *out)
{
	char *end;

	errno = 0;
	if (*t == '\0' || strchr(" \t\n\r\f\v", *t))
		return false;
	*out = strtod(t, &end);
	return *end == '\0' && errno == 0 && isfinite(*out);
}

static int
parse_filter(rstate *s, rfilter *f, const char *expr, np_error *err)
{
	static const struct {
		const char *tok;
		int op;
	} ops[] = { { ">=", OP_GE }, { "<=", OP_LE }, { "==", OP_EQ },
		{ ">", OP_GT }, { "<", OP_LT }, { "=", OP_SUB } };
	size_t n = strcspn(expr, "<>="), i;
	char name[NAME_MAX_LEN + 1];

	if (expr[n] == '\0')
		return np_seterr(err, NP_EUSAGE, "--filter '%.200s': no operator "
		    "(=, ==, <, <=, >, >=)", expr);
	if (!name_ok(expr, n))
		return np_seterr(err, NP_EUSAGE, "--filter '%.200s': '%.*s' is "
		    "not a field name", expr, (int)(n > 64 ? 64 : n), expr);
	memcpy(name, expr, n);
	name[n] = '\0';
	for (i = 0; strncmp(expr + n, ops[i].tok, strlen(ops[i].tok)); i++)
		;
	f->op = ops[i].op;
	f->text = expr + n + strlen(ops[i].tok);
	f->key = key_of(s, name);
	s->keys[f->key].filtered = true;
	if (f->op == OP_SUB && s->keys[f->key].kind == K_BOOL) {
		f->op = OP_BOOL;
		if (strcasecmp(f->text, "true") && strcasecmp(f->text, "false"))
			return np_seterr(err, NP_EUSAGE, "--filter '%.200s': %s "
			    "is true or false", expr, name);
		f->b = strcasecmp(f->text, "true") == 0;
	} else if (f->op != OP_SUB && !parse_num(f->text, &f->num))
		return np_seterr(err, NP_EUSAGE, "--filter '%.200s': '%.64s' is "
		    "not a number", expr, f->text);
	return 0;
}

/* ------------------------------------------------------------ values */

static void
trim(const char **p, size_t *n)
{
	while (*n && strchr(" \t\r\n", (*p)[0]))
		(*p)++, (*n)--;
	while (*n && strchr(" \t\r\n", (*p)[*n - 1]))
		(*n)--;
}

/* JSON's number grammar, so that the file's text can be printed as is. */
static bool
json_number(const char *p, size_t n)
{
	size_t i = 0, d;

	if (i < n && p[i] == '-')
		i++;
	if (i < n && p[i] == '0')
		i++;
	else if (i < n && p[i] >= '1' && p[i] <= '9')
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	else
		return false;
	if (i < n && p[i] == '.') {
		for (d = ++i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		if (++i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		for (d = i; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	return i == n;
}

/* -1 not a boolean, else 0 or 1. */
static int
boolean(const char *p, size_t n)
{
	trim(&p, &n);
	if (n == 4 && !strncasecmp(p, "true", 4))
		return 1;
	if (n == 5 && !strncasecmp(p, "false", 5))
		return 0;
	return -1;
}

/* 1e400 or a 30-digit integer is valid JSON text but no reader's number. */
static bool
number_fits(const char *p, size_t n)
{
	char buf[64], *end;

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	errno = 0;
	if (strpbrk(buf, ".eE") == NULL) {
		(void)strtoll(buf, &end, 10);
		return errno == 0;
	}
	return isfinite(strtod(buf, &end)) && errno == 0;
}

static void
put_value(sbuf *o, int kind, const char *p, size_t n)
{
	char num[32];
	char *end;
	long v;
	int b;

	switch (kind) {
	case K_INT:
		trim(&p, &n);
		if (n == 0 || n >= sizeof(num)) {
			sb_puts(o, "null");
			break;
		}
		memcpy(num, p, n);
		num[n] = '\0';
		errno = 0;
		v = strtol(num, &end, 10);
		/* Printed again, as "022" or "+3" are no JSON numbers. */
		if (*end || errno || !strchr("+-0123456789", num[0]))
			sb_puts(o, "null");
		else {
			snprintf(num, sizeof(num), "%ld", v);
			sb_puts(o, num);
		}
		break;
	case K_NUM:
		trim(&p, &n);
		/* As written in the file, when a JSON reader can hold it. */
		if (json_number(p, n) && number_fits(p, n))
			sb_add(o, p, n);
		else
			sb_puts(o, "null");
		break;
	case K_BOOL:
		b = boolean(p, n);
		sb_puts(o, b < 0 ? "null" : b ? "true" : "false");
		break;
	default:
		sb_json_str(o, p, n);
	}
}

/* Numeric filters read numbers, and texts that are numbers (plugin_id). */
static bool
value_num(int kind, const char *p, size_t n, double *out)
{
	char t[64];

	if (kind == K_BOOL)
		return false;
	trim(&p, &n);
	if (n == 0 || n >= sizeof(t))
		return false;
	memcpy(t, p, n);
	t[n] = '\0';
	return parse_num(t, out);
}

static bool
value_matches(const rfilter *f, int kind, const char *p, size_t n)
{
	double v;

	switch (f->op) {
	case OP_SUB:
		return strcasestr(p, f->text) != NULL;
	case OP_BOOL:
		return boolean(p, n) == (int)f->b;
	}
	if (!value_num(kind, p, n, &v))
		return false;
	switch (f->op) {
	case OP_EQ: return v == f->num;
	case OP_LT: return v < f->num;
	case OP_LE: return v <= f->num;
	case OP_GT: return v > f->num;
	default: return v >= f->num;
	}
}

/* ------------------------------------------------------------ record */

static void
record_reset(rstate *s)
{
	size_t i;

	for (i = 0; i < s->nfields; i++)
		s->keys[s->fields[i].key].slot = -1;
	s->nfields = s->nvals = 0;
	s->arena.len = 0;
}

static rfield *
field_of(rstate *s, int key, bool attr)
{
	rkey *k = &s->keys[key];
	rfield *f;

	if (k->slot >= 0)
		return &s->fields[k->slot];
	if (s->nfields == s->capfields) {
		s->capfields = s->capfields ? s->capfields * 2 : 64;
		s->fields = np_xrealloc(s->fields,
		    s->capfields * sizeof(rfield));
	}
	k->slot = (int)s->nfields;
	f = &s->fields[s->nfields++];
	f->key = key;
	f->first = f->last = -1;
	f->n = 0;
	f->attr = attr;
	return f;
}

/* Adds the arena's text at [off, off+len), NUL-terminated there. */
static void
add_value(rstate *s, rfield *f, size_t off, size_t len)
{
	rvalue *v;

	if (s->nvals == s->capvals) {
		s->capvals = s->capvals ? s->capvals * 2 : 128;
		s->vals = np_xrealloc(s->vals, s->capvals * sizeof(rvalue));
	}
	v = &s->vals[s->nvals];
	v->off = off;
	v->len = len;
	v->next = -1;
	s->arena.p[off + len] = '\0';
	if (f->last >= 0)
		s->vals[f->last].next = (int)s->nvals;
	else
		f->first = (int)s->nvals;
	f->last = (int)s->nvals++;
	f->n++;
}

static void
add_copy(rstate *s, int key, const char *text, bool attr)
{
	size_t off = s->arena.len;

	sb_add(&s->arena, text, strlen(text));
	s->arena.len++;		/* keep the NUL */
	add_value(s, field_of(s, key, attr), off, s->arena.len - off - 1);
}

/* A list element: trimmed, empty ones dropped. */
static void
add_item(rstate *s, rfield *f, size_t off, size_t len)
{
	const char *p = s->arena.p + off;

	trim(&p, &len);
	if (len)
		add_value(s, f, (size_t)(p - s->arena.p), len);
}

/* Ends the child element being read: its text is [tstart, arena.len). */
static void
end_field(rstate *s)
{
	size_t start = s->tstart, end = s->arena.len, i;
	rfield *f = field_of(s, s->tkey, false);

	sb_need(&s->arena, 1);
	s->arena.len++;		/* room for the NUL */
	switch (s->keys[s->tkey].kind) {
	case K_LINES:
		for (i = start; i <= end; i++)
			if (i == end || s->arena.p[i] == '\n') {
				add_item(s, f, start, i - start);
				start = i + 1;
			}
		break;
	case K_LIST:
		add_item(s, f, start, end - start);
		break;
	default:
		add_value(s, f, start, end - start);
	}
}

static bool
wanted(const rstate *s, int key)
{
	const rkey *k = &s->keys[key];

	return k->filtered || (s->full && (s->all || k->proj >= 0));
}

static bool
record_matches(rstate *s)
{
	size_t i;
	int vi;

	for (i = 0; i < s->nf; i++) {
		const rfilter *f = &s->f[i];
		const rkey *k = &s->keys[f->key];
		bool hit = false;

		if (k->slot < 0)
			return false;
		for (vi = s->fields[k->slot].first; vi >= 0 && !hit;
		    vi = s->vals[vi].next)
			hit = value_matches(f, k->kind, s->arena.p +
			    s->vals[vi].off, s->vals[vi].len);
		if (!hit)
			return false;
	}
	return true;
}

static void
put_field(rstate *s, const rfield *f)
{
	const rkey *k = &s->keys[f->key];
	bool list = k->kind == K_LIST || k->kind == K_LINES || f->n > 1;
	int vi;

	sb_add(&s->ob, ",", 1);
	sb_json_str(&s->ob, k->name, strlen(k->name));
	sb_add(&s->ob, ":", 1);
	if (list)
		sb_add(&s->ob, "[", 1);
	for (vi = f->first; vi >= 0; vi = s->vals[vi].next) {
		if (vi != f->first)
			sb_add(&s->ob, ",", 1);
		put_value(&s->ob, k->kind, s->arena.p + s->vals[vi].off,
		    s->vals[vi].len);
	}
	if (list)
		sb_add(&s->ob, "]", 1);
}

/* ------------------------------------------------------------ output */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
write_error(np_error *err)
{
	return np_seterr(err, NP_EIO, "standard output: %s", strerror(errno));
}

static int
flush(rstate *s, np_error *err)
{
	s->dirty = false;
	s->last_flush = now_ms();
	if (fflush(s->out) == EOF || ferror(s->out))
		return write_error(err);
	return 0;
}

/* A reader of the stream waits FLUSH_MS at most for a printed line. */
static int
maybe_flush(rstate *s, np_error *err)
{
	if (s->dirty && now_ms() - s->last_flush >= FLUSH_MS)
		return flush(s, err);
	return 0;
}

static int
put_line(rstate *s, const char *line, size_t n)
{
	if (fwrite(line, 1, n, s->out) != n)
		return -1;
	s->dirty = true;
	return 0;
}

static int
put_json(rstate *s, json_t *v, np_error *err)
{
	char *line = np_json_compact(v);
	int rc = 0;

	json_decref(v);
	if (put_line(s, line, strlen(line)) || put_line(s, "\n", 1))
		rc = write_error(err);
	free(line);
	return rc ? rc : flush(s, err);
}

static int
emit_schema(rstate *s, np_error *err)
{
	json_t *o = json_object(), *a;
	size_t i;

	json_object_set_new(o, "type", json_string("schema"));
	json_object_set_new(o, "profile", json_string(s->profile));
	if (s->all)
		a = json_string("all");
	else {
		a = json_array();
		for (i = 0; i < s->nproj; i++)
			json_array_append_new(a,
			    json_string(s->keys[s->proj[i]].name));
	}
	json_object_set_new(o, "fields", a);
	a = json_array();
	for (i = 0; i < s->nf; i++)
		json_array_append_new(a, json_string(s->exprs[i]));
	json_object_set_new(o, "filters_applied", a);
	json_object_set_new(o, "page", json_integer(s->page));
	json_object_set_new(o, "page_size", s->page ? json_integer(s->ps) :
	    json_null());
	return put_json(s, o, err);
}

static json_t *
task_field(json_t *task, const char *name)
{
	json_t *v = json_object_get(task, name);

	return v ? json_incref(v) : json_null();
}

/* An epoch text of ServerPreferences as RFC 3339, or null. */
static json_t *
epoch_time(const sbuf *b)
{
	char ts[32];
	long v;

	if (b->len == 0 || np_parse_int(b->p, 0, 1L << 40, &v) == -1)
		return json_null();
	np_rfc3339((int64_t)v * 1000, ts);
	return json_string(ts);
}

static int
emit_meta(rstate *s, np_error *err)
{
	json_t *o = json_object(), *t = s->task;
	static const char *const copied[] = { "scan_type", "targets", "status",
		"failure_reason", "authentication_status", "scanner_pool",
		"scanner_instance", "nessus_scan_id", "completed_at", NULL };
	size_t i;

	s->meta_done = true;
	json_object_set_new(o, "type", json_string("scan_metadata"));
	json_object_set_new(o, "task_id", json_string(s->id));
	json_object_set_new(o, "task_name", task_field(t, "name"));
	json_object_set_new(o, "scan_name", s->have_report ?
	    json_string(s->scan_name.p) : task_field(t, "name"));
	for (i = 0; copied[i]; i++)
		json_object_set_new(o, copied[i], task_field(t, copied[i]));
	json_object_set_new(o, "policy_name", s->policy.len ?
	    json_string(s->policy.p) : json_null());
	json_object_set_new(o, "scan_start", epoch_time(&s->t_start));
	json_object_set_new(o, "scan_end", epoch_time(&s->t_end));
	return put_json(s, o, err);
}

static int
emit_pagination(rstate *s, np_error *err)
{
	json_t *o = json_object();
	long long pages = (s->matched + s->ps - 1) / s->ps;
	bool next;

	if (s->page == 0 || pages == 0)
		pages = 1;
	next = s->page > 0 && s->page < pages;
	json_object_set_new(o, "type", json_string("pagination"));
	json_object_set_new(o, "page", json_integer(s->page));
	json_object_set_new(o, "page_size", s->page ? json_integer(s->ps) :
	    json_null());
	json_object_set_new(o, "total_findings", json_integer(s->matched));
	json_object_set_new(o, "total_pages", json_integer(pages));
	json_object_set_new(o, "has_next", json_boolean(next));
	json_object_set_new(o, "next_page", next ? json_integer(s->page + 1) :
	    json_null());
	return put_json(s, o, err);
}

static int
emit_record(rstate *s, np_error *err)
{
	size_t i;
	int slot;

	s->ob.len = 0;
	sb_puts(&s->ob, "{\"type\":\"vulnerability\"");
	if (s->all)
		for (i = 0; i < s->nfields; i++)
			put_field(s, &s->fields[i]);
	else
		for (i = 0; i < s->nproj; i++)
			if ((slot = s->keys[s->proj[i]].slot) >= 0)
				put_field(s, &s->fields[slot]);
	sb_add(&s->ob, "}\n", 2);
	if (put_line(s, s->ob.p, s->ob.len))
		return write_error(err);
	/* The first finding goes out at once, the rest in small batches. */
	return s->matched == s->first ? flush(s, err) : 0;
}

/* ------------------------------------------------------------ reading */

/* Copies an attribute of the current element into b; false if absent. */
static bool
get_attr(rstate *s, const char *name, sbuf *b)
{
	const xmlChar *v;
	bool ok = false;

	b->len = 0;
	if (xmlTextReaderMoveToAttribute(s->r, BAD_CAST name) == 1) {
		if ((v = xmlTextReaderConstValue(s->r)) != NULL) {
			sb_set(b, (const char *)v);
			ok = true;
		}
		xmlTextReaderMoveToElement(s->r);
	}
	return ok;
}

static void
collect(rstate *s, int kind, int depth, sbuf *b)
{
	s->tkind = kind;
	s->tdepth = depth;
	s->tbuf = b;
	if (b != &s->arena)
		b->len = 0;
	s->tstart = b->len;
	sb_need(b, 0);
	b->p[b->len] = '\0';
}

static void
item_start(rstate *s, int depth)
{
	const char *v;
	int i, k;

	record_reset(s);
	s->item_depth = depth;
	s->full = s->matched >= s->first && s->matched < s->end;
	for (i = F_HOST; i <= F_OS; i++)
		if (s->has_host[i] && wanted(s, i))
			add_copy(s, i, s->host[i].p, true);
	/* Looked up one by one, so that the record's order is ours and
	 * not the file's. */
	for (i = 0; i < (int)(sizeof(item_attrs) / sizeof(item_attrs[0]));
	    i++) {
		k = item_attrs[i].key;
		if (wanted(s, k) && xmlTextReaderMoveToAttribute(s->r,
		    BAD_CAST item_attrs[i].attr) == 1) {
			v = (const char *)xmlTextReaderConstValue(s->r);
			if (v)
				add_copy(s, k, v, true);
		}
	}
	xmlTextReaderMoveToElement(s->r);
}

static int
item_end(rstate *s, np_error *err)
{
	int rc = 0;

	s->item_depth = -1;
	if (record_matches(s)) {
		if (s->full)
			rc = emit_record(s, err);
		s->matched++;
	}
	return rc ? rc : maybe_flush(s, err);
}

static void
child_start(rstate *s, const char *name, int depth)
{
	int k = key_of(s, name);

	/* An attribute's field keeps the attribute's value. */
	if (!wanted(s, k) || (s->keys[k].slot >= 0 &&
	    s->fields[s->keys[k].slot].attr))
		return;
	s->tkey = k;
	collect(s, T_FIELD, depth, &s->arena);
}

static void
host_tag(rstate *s, int depth)
{
	size_t i;

	if (!get_attr(s, "name", &s->tagname))
		return;
	for (i = 0; i < sizeof(host_tags) / sizeof(host_tags[0]); i++)
		if (!strcmp(s->tagname.p, host_tags[i])) {
			s->tkey = F_HOST_IP + (int)i;
			collect(s, T_HOST, depth, &s->host[s->tkey]);
		}
}

static int
root(rstate *s, const char *name, np_error *err)
{
	s->root_seen = true;
	if (strcmp(name, "NessusClientData_v2") != 0)
		return np_seterr(err, NP_EIO, "%s: not a .nessus v2 export (the "
		    "root element is %.64s)", s->path, name);
	return 0;
}

/* Elements outside any ReportHost: the root, Policy and Report. */
static int
outer_start(rstate *s, const char *name, int depth, bool empty,
    np_error *err)
{
	int i;

	if (!s->root_seen)
		return root(s, name, err);
	if (!strcmp(name, "ReportHost")) {
		/* An empty one has no end element: it ends here. */
		s->host_depth = empty ? -1 : depth;
		s->hp_depth = -1;
		for (i = F_HOST; i <= F_OS; i++)
			s->has_host[i] = false;
		s->has_host[F_HOST] = get_attr(s, "name", &s->host[F_HOST]);
		if (!s->meta_done)
			return emit_meta(s, err);
	} else if (!strcmp(name, "Report") && !s->meta_done) {
		s->have_report = get_attr(s, "name", &s->scan_name);
		return emit_meta(s, err);
	} else if (!strcmp(name, "policyName") && s->policy.len == 0 && !empty)
		collect(s, T_POLICY, depth, &s->policy);
	else if (!strcmp(name, "ServerPreferences"))
		s->sp_depth = depth;
	else if (s->sp_depth >= 0 && depth == s->sp_depth + 2 && !empty) {
		if (!strcmp(name, "name")) {
			s->tpref = 0;
			collect(s, T_PREFNAME, depth, &s->prefname);
		} else if (!strcmp(name, "value") && s->tpref)
			collect(s, T_PREFVAL, depth, s->tpref == 1 ? &s->t_start :
			    &s->t_end);
	}
	return 0;
}

static int
on_start(rstate *s, np_error *err)
{
	const char *name = (const char *)xmlTextReaderConstName(s->r);
	int depth = xmlTextReaderDepth(s->r);
	bool empty = xmlTextReaderIsEmptyElement(s->r) == 1;

	if (name == NULL)
		return 0;
	if (s->host_depth < 0)
		return outer_start(s, name, depth, empty, err);
	if (s->item_depth >= 0) {
		if (depth == s->item_depth + 1 && s->tkind == 0) {
			child_start(s, name, depth);
			if (empty && s->tkind == T_FIELD) {
				end_field(s);
				s->tkind = 0;
			}
		}
	} else if (depth == s->host_depth + 1) {
		if (!strcmp(name, "ReportItem")) {
			item_start(s, depth);
			if (empty)
				return item_end(s, err);
		} else if (!strcmp(name, "HostProperties") && !empty)
			s->hp_depth = depth;
	} else if (s->hp_depth >= 0 && depth == s->hp_depth + 1 && !empty &&
	    !strcmp(name, "tag"))
		host_tag(s, depth);
	return 0;
}

static void
end_text(rstate *s)
{
	switch (s->tkind) {
	case T_FIELD:
		end_field(s);
		break;
	case T_HOST:
		s->has_host[s->tkey] = true;
		break;
	case T_PREFNAME:
		s->tpref = !strcmp(s->prefname.p, "scan_start_timestamp") ? 1 :
		    !strcmp(s->prefname.p, "scan_end_timestamp") ? 2 : 0;
		break;
	}
	s->tkind = 0;
}

static int
on_end(rstate *s, np_error *err)
{
	int depth = xmlTextReaderDepth(s->r);

	if (s->tkind && depth == s->tdepth)
		end_text(s);
	else if (depth == s->item_depth)
		return item_end(s, err);
	else if (depth == s->hp_depth)
		s->hp_depth = -1;
	else if (depth == s->host_depth)
		s->host_depth = -1;
	else if (depth == s->sp_depth)
		s->sp_depth = -1;
	return 0;
}

static void
on_text(rstate *s)
{
	const char *v = (const char *)xmlTextReaderConstValue(s->r);

	if (v)
		sb_add(s->tbuf, v, strlen(v));
}

static void
on_xml_error(void *arg, const char *msg, xmlParserSeverities sev,
    xmlTextReaderLocatorPtr loc)
{
	rstate *s = arg;
	size_t n;

	if (s->xerr[0] || (sev != XML_PARSER_SEVERITY_ERROR &&
	    sev != XML_PARSER_SEVERITY_VALIDITY_ERROR))
		return;
	snprintf(s->xerr, sizeof(s->xerr), "%s", msg ? msg : "parse error");
	n = strlen(s->xerr);
	while (n && (s->xerr[n - 1] == '\n' || s->xerr[n - 1] == ' '))
		s->xerr[--n] = '\0';
	s->xline = loc ? xmlTextReaderLocatorLineNumber(loc) : 0;
}

static int
read_all(rstate *s, const char *path, np_error *err)
{
	int ret, rc = 0;

	while (rc == 0 && (ret = xmlTextReaderRead(s->r)) == 1) {
		switch (xmlTextReaderNodeType(s->r)) {
		case XML_READER_TYPE_ELEMENT:
			rc = on_start(s, err);
			break;
		case XML_READER_TYPE_END_ELEMENT:
			rc = on_end(s, err);
			break;
		case XML_READER_TYPE_TEXT:
		case XML_READER_TYPE_CDATA:
		case XML_READER_TYPE_WHITESPACE:
		case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
			if (s->tkind)
				on_text(s);
			break;
		}
	}
	if (rc)
		return rc;
	if (ret != 0)
		return np_seterr(err, NP_EIO, "%s: line %d: %s (the export is "
		    "truncated or corrupt)", path, s->xline ? s->xline :
		    xmlTextReaderGetParserLineNumber(s->r),
		    s->xerr[0] ? s->xerr : "not well-formed XML");
	if (!s->root_seen)
		return np_seterr(err, NP_EIO, "%s: holds no XML", path);
	if (!s->meta_done && (rc = emit_meta(s, err)) != 0)
		return rc;
	return emit_pagination(s, err);
}

/* ------------------------------------------------------------ the task */

/* Validation failures whose export is kept and worth reading. */
static bool
readable_failure(const char *reason)
{
	return reason && (!strcmp(reason, "auth_failed") ||
	    !strcmp(reason, "privilege_insufficient") ||
	    !strcmp(reason, "empty_scan"));
}

static int
check_state(json_t *task, const char *id, np_error *err)
{
	const char *st = np_json_str(task, "status");
	const char *why = np_json_str(task, "failure_reason");

	if (st == NULL)
		return np_seterr(err, NP_EDATA, "task %s: record has no status",
		    id);
	if (!strcmp(st, "completed") || (!strcmp(st, "failed") &&
	    readable_failure(why)))
		return 0;
	if (!strcmp(st, "queued") || !strcmp(st, "running"))
		return np_seterr(err, NP_NO, "task %s is %s (no results yet)", id,
		    st);
	if (!strcmp(st, "failed"))
		return np_seterr(err, NP_NO, "task %s failed (%s): no results",
		    id, why ? why : "no reason recorded");
	if (!strcmp(st, "timeout"))
		return np_seterr(err, NP_NO, "task %s timed out: no results", id);
	if (!strcmp(st, "cancelled"))
		return np_seterr(err, NP_NO, "task %s was cancelled: no results",
		    id);
	return np_seterr(err, NP_NO, "task %s is %.32s: no results", id, st);
}

static int
touch(json_t *task, void *arg, np_error *err)
{
	char ts[32];

	(void)arg;
	(void)err;
	np_rfc3339(np_now_ms(), ts);
	json_object_set_new(task, "last_accessed_at", json_string(ts));
	return 0;
}

static int
open_export(const np_config *cfg, const char *id, json_t *task,
    char *path, size_t n, int *fd, np_error *err)
{
	char dir[PATH_MAX];
	struct stat st;

	np_task_dir(cfg, id, dir, sizeof(dir));
	snprintf(path, n, "%s/scan.nessus", dir);
	if ((*fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			return np_seterr(err, NP_NO, "task %s is %s but has no "
			    "export (scan.nessus): no results", id,
			    np_json_str(task, "status"));
		return np_seterr(err, NP_EIO, "%s: %s", path, strerror(errno));
	}
	if (fstat(*fd, &st) == -1)
		return np_seterr(err, NP_EIO, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode) || st.st_size == 0)
		return np_seterr(err, NP_EIO, "%s: %s (the export is truncated or "
		    "corrupt)", path, st.st_size ? "not a file" : "empty file");
	return 0;
}

static int
stream(rstate *s, const char *path, int fd, np_error *err)
{
	int rc;

	s->path = path;
	s->r = xmlReaderForFd(fd, path, NULL, XML_PARSE_NONET |
	    XML_PARSE_NOWARNING | XML_PARSE_COMPACT |
	    (np_xml_may_have_dtd(fd) ? 0 : XML_PARSE_HUGE));
	if (s->r == NULL)
		return np_seterr(err, NP_EIO, "%s: cannot read", path);
	xmlTextReaderSetErrorHandler(s->r, on_xml_error, s);
	if ((rc = emit_schema(s, err)) == 0)
		rc = read_all(s, path, err);
	/* What was printed before an error stays printed. */
	fflush(s->out);
	xmlFreeTextReader(s->r);
	return rc;
}

/* ------------------------------------------------------------ the API */

struct np_results *
np_results_new(void)
{
	rstate *s = np_xcalloc(1, sizeof(*s));
	int i;

	s->host_depth = s->item_depth = s->hp_depth = s->sp_depth = -1;
	s->page = 1;
	s->ps = 40;
	s->f = np_xcalloc(MAX_FILTERS, sizeof(rfilter));
	s->exprs = np_xcalloc(MAX_FILTERS, sizeof(char *));
	rehash(s);
	for (i = 0; i < F_FIXED; i++)
		key_of(s, fixed_keys[i]);
	return s;
}

static int
chosen(rstate *s, np_error *err)
{
	if (s->profile)
		return np_seterr(err, NP_EUSAGE, "--profile and --fields exclude "
		    "each other, and each is given once");
	return 0;
}

/* One of minimal, summary, brief, full. Default: the task's. */
int
np_results_profile(struct np_results *s, const char *name, np_error *err)
{
	int rc = chosen(s, err);

	return rc ? rc : set_profile(s, name, err);
}

/* A comma-separated list of field names, printed in that order. */
int
np_results_fields(struct np_results *s, const char *list, np_error *err)
{
	int rc = chosen(s, err);

	return rc ? rc : set_fields(s, list, err);
}

/* FIELD=TEXT, FIELD=true|false, FIELD OP NUMBER; filters are ANDed. */
int
np_results_filter(struct np_results *s, const char *expr, np_error *err)
{
	int rc;

	if (s->nf == MAX_FILTERS)
		return np_seterr(err, NP_EUSAGE, "--filter: more than %d filters",
		    MAX_FILTERS);
	s->exprs[s->nf] = np_xstrdup(expr);
	s->f[s->nf].expr = s->exprs[s->nf];
	if ((rc = parse_filter(s, &s->f[s->nf], s->exprs[s->nf], err)) != 0) {
		free(s->exprs[s->nf]);
		s->exprs[s->nf] = NULL;
		return rc;
	}
	s->nf++;
	return 0;
}

/* page: 1-based, 0 = every finding; page_size is clamped to 10..100. */
int
np_results_page(struct np_results *s, long page, long page_size,
    np_error *err)
{
	if (page < 0 || page > LONG_MAX / 100)
		return np_seterr(err, NP_EUSAGE, "--page: expected 0 to %ld",
		    LONG_MAX / 100);
	s->page = page;
	s->ps = page_size < 10 ? 10 : page_size > 100 ? 100 : page_size;
	return 0;
}

/*
 * Prints the findings of task id on out as NDJSON: schema, scan_metadata,
 * one vulnerability per finding of the page, pagination. Once per
 * np_results. 0 when all was printed; 65/66/77 for the task id or
 * record, NP_NO when the task has no results, NP_EIO when the export
 * cannot be read or breaks off (what was printed stays printed) or out
 * fails.
 */
int
np_results_write(struct np_results *s, const np_config *cfg, const char *id,
    FILE *out, np_error *err)
{
	char path[PATH_MAX + 16];
	np_error terr;
	const char *p;
	int rc, fd = -1;

	esc_init();
	s->out = out;
	s->id = id;
	s->first = s->page ? (long long)(s->page - 1) * s->ps : 0;
	s->end = s->page ? (long long)s->page * s->ps : LLONG_MAX;
	if ((rc = np_task_load(cfg, id, &s->task, err)) == 0 &&
	    (rc = check_state(s->task, id, err)) == 0 &&
	    (rc = open_export(cfg, id, s->task, path, sizeof(path), &fd,
	    err)) == 0) {
		/* Reading results is using the task, for the housekeeping TTLs;
		 * a record we may not write is still read. */
		np_task_update(cfg, id, touch, NULL, 0, &terr);
		if (s->profile == NULL) {
			p = np_json_str(s->task, "schema_profile");
			if (p == NULL || set_profile(s, p, &terr) != 0)
				set_profile(s, "brief", &terr);
		}
		rc = stream(s, path, fd, err);
	}
	if (fd != -1)
		close(fd);
	return rc;
}

void
np_results_free(struct np_results *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nkeys; i++)
		free(s->keys[i].name);
	for (i = 0; i <= F_OS; i++)
		free(s->host[i].p);
	for (i = 0; i < s->nf; i++)
		free(s->exprs[i]);
	free(s->exprs);
	free(s->keys);
	free(s->hash);
	free(s->proj);
	free(s->f);
	free(s->fcopy);
	free(s->fields);
	free(s->vals);
	free(s->arena.p);
	free(s->scan_name.p);
	free(s->policy.p);
	free(s->prefname.p);
	free(s->t_start.p);
	free(s->t_end.p);
	free(s->ob.p);
	free(s->tagname.p);
	json_decref(s->task);
	free(s);
}
