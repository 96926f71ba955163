/*
 * config.c: the YAML config (design.md section 3).
 *
 * Strict: unknown keys, wrong types, duplicate keys or ids and unset
 * ${VAR}s are errors naming file:line: key. A bad config stops the
 * command with status 78; there is no fallback scanner, ever. YAML
 * aliases are refused (they buy nothing here and allow billion-laughs
 * inputs). Secrets may sit in the file (then the file must not be
 * readable by group or others) or in *_file paths, which are checked
 * the same way and read only by the commands that need them.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "np.h"
#include "yamldoc.h"

#define CONFIG_MAX (4 << 20)

typedef struct {
	const char *file;
	yaml_document_t *doc;
	np_error *err;
	bool holds_secret;
	char *dir;		/* directory of the file, for relative paths */
	char *secret_ok;	/* the last *_file that passed its check */
} ctx;

static int
fail(ctx *c, yaml_node_t *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
fail(ctx *c, yaml_node_t *n, const char *key, const char *fmt, ...)
{
	char why[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	return np_seterr(c->err, NP_ECONFIG, "%s:%lu: %s: %s", c->file,
	    n ? (unsigned long)n->start_mark.line + 1 : 0UL, key, why);
}

/*
 * Substitutes ${VAR} and ${VAR:-default} in s. Returns a new string, or
 * NULL with the error set. *literal tells whether anything of the value
 * comes from the file itself rather than from the environment.
 */
static char *
expand(ctx *c, yaml_node_t *n, const char *key, const char *s, bool *literal)
{
	size_t cap, len = 0, vl;
	char *out, name[128];
	const char *p = s, *end, *val, *def;

	if (strstr(s, "${") == NULL) {
		/* Nothing to substitute, the common case: a plain copy. */
		*literal = *s != '\0';
		return np_xstrdup(s);
	}
	cap = strlen(s) + 1;
	out = np_xmalloc(cap);
	*literal = false;
	while (*p) {
		val = NULL;
		if (p[0] == '$' && p[1] == '{') {
			if ((end = strchr(p + 2, '}')) == NULL) {
				free(out);
				fail(c, n, key, "unterminated ${ in value");
				return NULL;
			}
			def = memchr(p + 2, ':', (size_t)(end - p - 2));
			vl = (size_t)((def ? def : end) - (p + 2));
			if (vl == 0 || vl >= sizeof(name)) {
				free(out);
				fail(c, n, key, "bad variable name in ${...}");
				return NULL;
			}
			memcpy(name, p + 2, vl);
			name[vl] = '\0';
			for (size_t i = 0; i < vl; i++)
				if (!(isalnum((unsigned char)name[i]) || name[i] == '_') ||
				    (i == 0 && isdigit((unsigned char)name[0]))) {
					free(out);
					fail(c, n, key, "bad variable name '%s'", name);
					return NULL;
				}
			if (def && def[1] != '-') {
				free(out);
				fail(c, n, key, "expected ${%s:-default}", name);
				return NULL;
			}
			val = getenv(name);
			if ((val == NULL || *val == '\0') && def) {
				/* ${VAR:-x}: x when VAR is unset or empty, as in sh. */
				size_t dl = (size_t)(end - def - 2);
				char *d = np_xmalloc(dl + 1);
				memcpy(d, def + 2, dl);
				d[dl] = '\0';
				if (dl)
					*literal = true;
				if (len + dl + 1 > cap)
					out = np_xrealloc(out, cap = len + dl + cap + 1);
				memcpy(out + len, d, dl);
				len += dl;
				free(d);
				p = end + 1;
				continue;
			}
			if (val == NULL) {
				free(out);
				fail(c, n, key, "environment variable %s is not set",
				    name);
				return NULL;
			}
			vl = strlen(val);
			if (len + vl + 1 > cap)
				out = np_xrealloc(out, cap = len + vl + cap + 1);
			memcpy(out + len, val, vl);
			len += vl;
			p = end + 1;
			continue;
		}
		*literal = true;
		if (len + 2 > cap)
			out = np_xrealloc(out, cap *= 2);
		out[len++] = *p++;
	}
	out[len] = '\0';
	return out;
}

/* yaml_document_get_node, inline: it is called for every node. */
static yaml_node_t *
node(ctx *c, int id)
{
	yaml_document_t *d = c->doc;

	return id > 0 && d->nodes.start + id <= d->nodes.top ?
	    d->nodes.start + id - 1 : NULL;
}

/* "[n]", as "[%zu]" would be, at the end of buf. */
static const char *
bracketed(char *buf, size_t cap, size_t n)
{
	char *p = buf + cap;

	*--p = '\0';
	*--p = ']';
	do
		*--p = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	*--p = '[';
	return p;
}

/*
 * Appends s to out (of cap bytes, holding len), truncating as snprintf
 * would; returns the new length. Names the keys of error messages, built
 * for every value of the file: snprintf there cost more than the checks.
 */
static size_t
put(char *out, size_t cap, size_t len, const char *s)
{
	size_t n = strlen(s);

	if (n > cap - 1 - len)
		n = cap - 1 - len;
	memcpy(out + len, s, n);
	out[len + n] = '\0';
	return len + n;
}

static int
scalar(ctx *c, yaml_node_t *n, const char *key, char **out, bool *literal)
{
	bool lit = false;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, n, key, "expected a string");
	if ((*out = expand(c, n, key, (char *)n->data.scalar.value, &lit)) == NULL)
		return NP_ECONFIG;
	if (literal)
		*literal = lit;
	return 0;
}

static bool
plain(yaml_node_t *n)
{
	return n->type == YAML_SCALAR_NODE &&
	    n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static int
integer(ctx *c, yaml_node_t *n, const char *key, long min, long max,
    long *out)
{
	char *s = NULL;
	int rc;

	if (!plain(n))
		return fail(c, n, key, "expected an integer from %ld to %ld",
		    min, max);
	if ((rc = scalar(c, n, key, &s, NULL)) != 0)
		return rc;
	rc = np_parse_int(s, min, max, out);
	free(s);
	if (rc == -1)
		return fail(c, n, key, "expected an integer from %ld to %ld",
		    min, max);
	return 0;
}

static int
boolean(ctx *c, yaml_node_t *n, const char *key, bool *out)
{
	char *s = NULL;
	int rc;

	if (!plain(n))
		return fail(c, n, key, "expected true or false");
	if ((rc = scalar(c, n, key, &s, NULL)) != 0)
		return rc;
	if (!strcasecmp(s, "true") || !strcasecmp(s, "yes"))
		*out = true;
	else if (!strcasecmp(s, "false") || !strcasecmp(s, "no"))
		*out = false;
	else
		rc = fail(c, n, key, "expected true or false, got '%s'", s);
	free(s);
	return rc;
}

static int
duration(ctx *c, yaml_node_t *n, const char *key, int64_t min, int64_t *out)
{
	char *s = NULL;
	int rc = 0;

	if (n->type != YAML_SCALAR_NODE)
		return fail(c, n, key, "expected a duration (500ms, 30s, 5m, 24h, 7d)");
	if ((rc = scalar(c, n, key, &s, NULL)) != 0)
		return rc;
	if (np_parse_duration(s, out) == -1)
		rc = fail(c, n, key,
		    "expected a duration (500ms, 30s, 5m, 24h, 7d), got '%s'", s);
	else if (*out < min)
		rc = fail(c, n, key, "must be at least %lldms", (long long)min);
	free(s);
	return rc;
}

/* Resolves a *_file path: $CREDENTIALS_DIRECTORY first, then the file's dir. */
static char *
secret_path(ctx *c, const char *p)
{
	const char *cd;
	char buf[PATH_MAX];

	if (p[0] == '/')
		return np_xstrdup(p);
	cd = getenv("CREDENTIALS_DIRECTORY");
	if (cd && *cd) {
		snprintf(buf, sizeof(buf), "%s/%s", cd, p);
		if (access(buf, F_OK) == 0)
			return np_xstrdup(buf);
	}
	snprintf(buf, sizeof(buf), "%s/%s", c->dir, p);
	return np_xstrdup(buf);
}

static int
check_secret_file(ctx *c, yaml_node_t *n, const char *key, const char *path)
{
	struct stat st;

	/* Scanners mostly share one secret file: stat it once. */
	if (c->secret_ok && !strcmp(c->secret_ok, path))
		return 0;
	if (stat(path, &st) == -1) {
		/* Not ours to read (an operator's np-status): the commands
		 * that need the secret will say so when they read it. */
		if (errno == EACCES)
			return 0;
		return fail(c, n, key, "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return fail(c, n, key, "%s: not a regular file", path);
	if (st.st_mode & (S_IRGRP | S_IROTH))
		return fail(c, n, key,
		    "%s holds a secret and is readable by group or others "
		    "(chmod 600 it)", path);
	free(c->secret_ok);
	c->secret_ok = np_xstrdup(path);
	return 0;
}

static int
file_key(ctx *c, yaml_node_t *v, const char *key, char **out)
{
	char *s = NULL;
	int rc;

	if ((rc = scalar(c, v, key, &s, NULL)) != 0)
		return rc;
	if (*s == '\0') {
		free(s);
		return fail(c, v, key, "empty path");
	}
	*out = secret_path(c, s);
	free(s);
	return check_secret_file(c, v, key, *out);
}

static int
secret_key(ctx *c, yaml_node_t *v, const char *key, char **out)
{
	bool lit = false;
	int rc;

	if ((rc = scalar(c, v, key, out, &lit)) != 0)
		return rc;
	if (lit)
		c->holds_secret = true;
	if (**out == '\0')
		return fail(c, v, key, "empty secret");
	return 0;
}

/* A scanner's keys: how each is read, and where it goes. */
enum { K_STRING, K_SECRET, K_FILE, K_INT, K_BOOL };

static const struct {
	const char *name;
	int kind;
	size_t off;
} scanner_keys[] = {
	{ "instance_id", K_STRING, offsetof(np_scanner, instance_id) },
	{ "name", K_STRING, offsetof(np_scanner, name) },
	{ "url", K_STRING, offsetof(np_scanner, url) },
	{ "ca_file", K_STRING, offsetof(np_scanner, ca_file) },
	{ "username", K_STRING, offsetof(np_scanner, username) },
	{ "access_key", K_SECRET, offsetof(np_scanner, access_key) },
	{ "secret_key", K_SECRET, offsetof(np_scanner, secret_key) },
	{ "password", K_SECRET, offsetof(np_scanner, password) },
	{ "secret_key_file", K_FILE, offsetof(np_scanner, secret_key_file) },
	{ "password_file", K_FILE, offsetof(np_scanner, password_file) },
	{ "max_concurrent_scans", K_INT,
	    offsetof(np_scanner, max_concurrent_scans) },
	{ "enabled", K_BOOL, offsetof(np_scanner, enabled) },
	{ "insecure", K_BOOL, offsetof(np_scanner, insecure) },
};

/* The scanner key k: its value v into s. fk names it in errors. */
static int
scanner_key(ctx *c, yaml_node_t *k, yaml_node_t *v, const char *fk,
    np_scanner *s)
{
	const char *kn = (const char *)k->data.scalar.value;
	size_t i, n = sizeof(scanner_keys) / sizeof(scanner_keys[0]);
	void *at;
	long l;
	int rc;

	for (i = 0; i < n; i++)
		if (kn[0] == scanner_keys[i].name[0] &&
		    !strcmp(kn, scanner_keys[i].name))
			break;
	if (i == n)
		return fail(c, k, fk, "unknown key");
	at = (char *)s + scanner_keys[i].off;
	switch (scanner_keys[i].kind) {
	case K_STRING:
		return scalar(c, v, fk, at, NULL);
	case K_SECRET:
		return secret_key(c, v, fk, at);
	case K_FILE:
		return file_key(c, v, fk, at);
	case K_INT:
		if ((rc = integer(c, v, fk, 1, 1000, &l)) == 0)
			*(int *)at = (int)l;
		return rc;
	default:
		return boolean(c, v, fk, at);
	}
}

static int
load_scanner(ctx *c, yaml_node_t *m, const char *pool, size_t idx,
    np_scanner *s)
{
	yaml_node_pair_t *pr;
	char key[256], num[24];
	int rc = 0;

	put(key, sizeof(key), put(key, sizeof(key), put(key, sizeof(key), 0,
	    "pools."), pool), bracketed(num, sizeof(num), idx));
	if (m->type != YAML_MAPPING_NODE)
		return fail(c, m, key, "expected a mapping of scanner settings");
	s->enabled = true;
	s->max_concurrent_scans = 2;
	s->line = (int)m->start_mark.line + 1;
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top;
	    pr++) {
		yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
		const char *kn = (const char *)k->data.scalar.value;
		char fk[320];

		if (k->type != YAML_SCALAR_NODE)
			return fail(c, k, key, "keys must be strings");
		/* key + "." + kn, as "%s.%s" would be. */
		put(fk, sizeof(fk), put(fk, sizeof(fk), put(fk, sizeof(fk), 0,
		    key), "."), kn);
		if ((rc = scanner_key(c, k, v, fk, s)) != 0)
			return rc;
	}
	if (s->instance_id == NULL)
		return fail(c, m, key, "instance_id is required");
	if (!np_name_valid(s->instance_id))
		return fail(c, m, key, "instance_id '%s' must match "
		    "[A-Za-z0-9_-]{1,64}", s->instance_id);
	put(key, sizeof(key), put(key, sizeof(key), put(key, sizeof(key),
	    put(key, sizeof(key), 0, "pools."), pool), "."), s->instance_id);
	if (s->url == NULL)
		return fail(c, m, key, "url is required");
	if (strncmp(s->url, "https://", 8) != 0 &&
	    strncmp(s->url, "http://", 7) != 0)
		return fail(c, m, key, "url must start with https://");
	if (strncmp(s->url, "http://", 7) == 0 && !s->insecure)
		return fail(c, m, key, "plain http:// needs insecure: true");
	if (s->ca_file && s->insecure)
		return fail(c, m, key, "ca_file and insecure: true exclude each other");
	if ((s->access_key != NULL) == (s->username != NULL))
		return fail(c, m, key, "give either access_key and secret_key "
		    "(API keys) or username and password (session login)");
	if (s->access_key && !s->secret_key == !s->secret_key_file)
		return fail(c, m, key, "give one of secret_key or secret_key_file");
	if (s->username && !s->password == !s->password_file)
		return fail(c, m, key, "give one of password or password_file");
	if (s->access_key && (s->password || s->password_file))
		return fail(c, m, key, "password goes with username, not access_key");
	if (s->username && (s->secret_key || s->secret_key_file))
		return fail(c, m, key, "secret_key goes with access_key, not username");
	if (s->ca_file && access(s->ca_file, R_OK) == -1)
		return fail(c, m, key, "ca_file %s: %s", s->ca_file,
		    strerror(errno));
	if (s->name == NULL)
		s->name = np_xstrdup(s->instance_id);
	return 0;
}

static int
load_pools(ctx *c, yaml_node_t *m, np_config *cfg)
{
	yaml_node_pair_t *pr;
	int rc;

	if (m->type != YAML_MAPPING_NODE)
		return fail(c, m, "pools", "expected a mapping of pool names");
	/* One pool per pair: zeroed, all at once, as for the scanners. */
	cfg->pools = np_xcalloc((size_t)(m->data.mapping.pairs.top -
	    m->data.mapping.pairs.start), sizeof(*cfg->pools));
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top;
	    pr++) {
		yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
		const char *name = (const char *)k->data.scalar.value;
		yaml_node_item_t *it;
		np_pool *p;
		char key[128];

		if (k->type != YAML_SCALAR_NODE || !np_name_valid(name))
			return fail(c, k, "pools", "pool name '%s' must match "
			    "[A-Za-z0-9_-]{1,64}", k->type == YAML_SCALAR_NODE ?
			    name : "?");
		snprintf(key, sizeof(key), "pools.%s", name);
		if (v->type != YAML_SEQUENCE_NODE)
			return fail(c, v, key, "expected a list of scanners");
		if (v->data.sequence.items.top == v->data.sequence.items.start)
			return fail(c, v, key, "pool has no scanners");
		p = &cfg->pools[cfg->npools++];
		p->name = np_xstrdup(name);
		p->line = (int)k->start_mark.line + 1;
		/* Zeroed, all at once: np_config_free frees the nscanners
		 * loaded so far. */
		p->scanners = np_xcalloc((size_t)(v->data.sequence.items.top -
		    v->data.sequence.items.start), sizeof(*p->scanners));
		for (it = v->data.sequence.items.start;
		    it < v->data.sequence.items.top; it++) {
			np_scanner *s = &p->scanners[p->nscanners++];

			rc = load_scanner(c, node(c, *it), name,
			    (size_t)(it - v->data.sequence.items.start), s);
			if (rc)
				return rc;
			for (size_t j = 0; j + 1 < p->nscanners; j++)
				if (!strcmp(p->scanners[j].instance_id, s->instance_id))
					return fail(c, node(c, *it), key,
					    "duplicate instance_id '%s'", s->instance_id);
		}
	}
	if (cfg->npools == 0)
		return fail(c, m, "pools", "no pools defined");
	return 0;
}

static int
load_settings(ctx *c, yaml_node_t *m, np_settings *s)
{
	static const struct {
		const char *name;
		size_t off;
		int64_t min;
	} dur[] = {
		{ "poll_interval", offsetof(np_settings, poll_interval), 10 },
		{ "scan_timeout", offsetof(np_settings, scan_timeout), 1000 },
		{ "lease_ttl", offsetof(np_settings, lease_ttl), 300 },
		{ "retry_backoff", offsetof(np_settings, retry_backoff), 0 },
		{ "breaker_cooldown", offsetof(np_settings, breaker_cooldown), 0 },
		{ "ttl_completed", offsetof(np_settings, ttl_completed), 0 },
		{ "ttl_failed", offsetof(np_settings, ttl_failed), 0 },
		{ "idempotency_ttl", offsetof(np_settings, idempotency_ttl), 1000 },
		{ "connect_timeout", offsetof(np_settings, connect_timeout), 10 },
		{ "request_timeout", offsetof(np_settings, request_timeout), 10 },
		{ "redis_timeout", offsetof(np_settings, redis_timeout), 10 },
		{ "default_scan_duration",
		    offsetof(np_settings, default_scan_seconds), 1000 },
	};
	static const struct {
		const char *name;
		size_t off;
		long min, max;
	} num[] = {
		{ "retry_attempts", offsetof(np_settings, retry_attempts), 1, 100 },
		{ "breaker_threshold", offsetof(np_settings, breaker_threshold),
		    1, 1000 },
		{ "max_attempts", offsetof(np_settings, max_attempts), 1, 100 },
	};
	yaml_node_pair_t *pr;
	size_t i;
	int rc;

	if (m->type != YAML_MAPPING_NODE)
		return fail(c, m, "settings", "expected a mapping");
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top;
	    pr++) {
		yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
		const char *kn = (const char *)k->data.scalar.value;
		char fk[160];

		snprintf(fk, sizeof(fk), "settings.%s", kn);
		for (i = 0; i < sizeof(dur) / sizeof(dur[0]); i++)
			if (!strcmp(kn, dur[i].name))
				break;
		if (i < sizeof(dur) / sizeof(dur[0])) {
			if ((rc = duration(c, v, fk, dur[i].min,
			    (int64_t *)((char *)s + dur[i].off))) != 0)
				return rc;
			continue;
		}
		for (i = 0; i < sizeof(num) / sizeof(num[0]); i++)
			if (!strcmp(kn, num[i].name))
				break;
		if (i < sizeof(num) / sizeof(num[0])) {
			if ((rc = integer(c, v, fk, num[i].min, num[i].max,
			    (long *)((char *)s + num[i].off))) != 0)
				return rc;
			continue;
		}
		return fail(c, k, fk, "unknown key");
	}
	return 0;
}

static void
defaults(np_settings *s)
{
	s->poll_interval = 30000;
	s->scan_timeout = 24 * 3600000LL;
	s->lease_ttl = 60000;
	s->retry_attempts = 3;
	s->retry_backoff = 1000;
	s->breaker_threshold = 5;
	s->breaker_cooldown = 300000;
	s->ttl_completed = 7 * 86400000LL;
	s->ttl_failed = 30 * 86400000LL;
	s->idempotency_ttl = 48 * 3600000LL;
	s->connect_timeout = 10000;
	s->request_timeout = 60000;
	s->redis_timeout = 5000;
	s->max_attempts = 3;
	s->default_scan_seconds = 900000;
}

static int
load_top(ctx *c, yaml_node_t *root, np_config *cfg)
{
	yaml_node_pair_t *pr;
	yaml_node_t *pools = NULL, *dp = NULL;
	int rc = 0;

	if (root == NULL || root->type != YAML_MAPPING_NODE)
		return fail(c, root, "(top)", "expected a mapping with pools:");
	for (pr = root->data.mapping.pairs.start;
	    pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = node(c, pr->key), *v = node(c, pr->value);
		const char *kn = (const char *)k->data.scalar.value;

		if (k->type != YAML_SCALAR_NODE)
			return fail(c, k, "(top)", "keys must be strings");
		if (!strcmp(kn, "redis_url"))
			rc = scalar(c, v, kn, &cfg->redis_url, NULL);
		else if (!strcmp(kn, "data_dir"))
			rc = scalar(c, v, kn, &cfg->data_dir, NULL);
		else if (!strcmp(kn, "default_pool")) {
			rc = scalar(c, v, kn, &cfg->default_pool, NULL);
			dp = v;
		} else if (!strcmp(kn, "key_prefix")) {
			rc = scalar(c, v, kn, &cfg->key_prefix, NULL);
			if (!rc && (!np_name_valid(cfg->key_prefix) ||
			    strlen(cfg->key_prefix) > 32))
				rc = fail(c, v, kn, "must match [A-Za-z0-9_-]{1,32}");
		} else if (!strcmp(kn, "settings"))
			rc = load_settings(c, v, &cfg->s);
		else if (!strcmp(kn, "pools"))
			pools = v;
		else
			rc = fail(c, k, kn, "unknown key");
		if (rc)
			return rc;
	}
	if (pools == NULL)
		return fail(c, root, "pools", "required");
	if ((rc = load_pools(c, pools, cfg)) != 0)
		return rc;
	if (cfg->default_pool && !np_config_pool(cfg, cfg->default_pool))
		return fail(c, dp, "default_pool", "no pool named '%s'",
		    cfg->default_pool);
	if (cfg->default_pool == NULL && cfg->npools == 1)
		cfg->default_pool = np_xstrdup(cfg->pools[0].name);
	if (cfg->default_pool == NULL && np_config_pool(cfg, "nessus"))
		cfg->default_pool = np_xstrdup("nessus");
	return 0;
}

/* Keys repeated in one mapping are an error, not "last one wins". */
static int
dupcheck(ctx *c, yaml_node_t *n, int depth)
{
	yaml_node_pair_t *a, *b;
	yaml_node_item_t *it;
	int rc;

	if (depth > 32)
		return fail(c, n, "(top)", "nested too deeply");
	if (n->type == YAML_SEQUENCE_NODE) {
		for (it = n->data.sequence.items.start;
		    it < n->data.sequence.items.top; it++)
			if ((rc = dupcheck(c, node(c, *it), depth + 1)) != 0)
				return rc;
	}
	if (n->type != YAML_MAPPING_NODE)
		return 0;
	for (a = n->data.mapping.pairs.start; a < n->data.mapping.pairs.top; a++) {
		yaml_node_t *ka = node(c, a->key);

		if (ka->type != YAML_SCALAR_NODE)
			return fail(c, ka, "(key)", "keys must be strings");
		for (b = n->data.mapping.pairs.start; b < a; b++) {
			yaml_node_t *kb = node(c, b->key);
			if (!strcmp((char *)ka->data.scalar.value,
			    (char *)kb->data.scalar.value))
				return fail(c, ka, (char *)ka->data.scalar.value,
				    "duplicate key");
		}
		if ((rc = dupcheck(c, node(c, a->value), depth + 1)) != 0)
			return rc;
	}
	return 0;
}

int
np_config_load(const char *path, np_config **out, np_error *err)
{
	np_config *cfg;
	np_yaml pd;
	struct stat st;
	char *buf, *slash;
	size_t len;
	const char *env;
	ctx c = { .file = path, .err = err };
	int rc;

	*out = NULL;
	if ((rc = np_read_file(path, CONFIG_MAX, &buf, &len, err)) != 0) {
		err->code = NP_ECONFIG;
		return NP_ECONFIG;
	}
	if ((rc = np_yaml_load(path, buf, len, &pd, err)) != 0) {
		free(buf);
		return rc;
	}
	cfg = np_xcalloc(1, sizeof(*cfg));
	cfg->path = np_xstrdup(path);
	defaults(&cfg->s);
	c.doc = &pd.doc;
	c.dir = np_xstrdup(path);
	if ((slash = strrchr(c.dir, '/')) != NULL)
		*slash = '\0';
	else
		strcpy(c.dir, ".");
	rc = dupcheck(&c, yaml_document_get_root_node(&pd.doc), 0);
	if (rc == 0)
		rc = load_top(&c, yaml_document_get_root_node(&pd.doc), cfg);
	np_yaml_free(&pd);
	free(buf);
	free(c.dir);
	free(c.secret_ok);
	if (rc == 0 && c.holds_secret && stat(path, &st) == 0 &&
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		rc = np_seterr(err, NP_ECONFIG, "%s: holds a secret and is "
		    "readable by group or others (chmod 600 it, or move the "
		    "secret to a *_file)", path);
	if (rc) {
		np_config_free(cfg);
		return rc;
	}
	if ((env = getenv("NP_REDIS_URL")) != NULL && *env) {
		free(cfg->redis_url);
		cfg->redis_url = np_xstrdup(env);
	} else if (cfg->redis_url == NULL)
		cfg->redis_url = np_xstrdup("redis://127.0.0.1:6379/0");
	if ((env = getenv("NP_DATA_DIR")) != NULL && *env) {
		free(cfg->data_dir);
		cfg->data_dir = np_xstrdup(env);
	} else if (cfg->data_dir == NULL) {
		env = getenv("STATE_DIRECTORY");
		cfg->data_dir = np_xstrdup(env && *env ? env : "/var/lib/np");
	}
	if (cfg->key_prefix == NULL)
		cfg->key_prefix = np_xstrdup("np");
	*out = cfg;
	return 0;
}

np_config *
np_config_open(void)
{
	const char *path = getenv("NP_CONFIG");
	np_config *cfg;
	np_error err;

	if (path == NULL || *path == '\0')
		path = "/etc/np/np.yaml";
	if (np_config_load(path, &cfg, &err) != 0)
		np_die_err(&err);
	return cfg;
}

static void
scanner_free(np_scanner *s)
{
	free(s->instance_id);
	free(s->name);
	free(s->url);
	free(s->ca_file);
	free(s->username);
	if (s->access_key)
		explicit_bzero(s->access_key, strlen(s->access_key));
	free(s->access_key);
	if (s->secret_key)
		explicit_bzero(s->secret_key, strlen(s->secret_key));
	free(s->secret_key);
	free(s->secret_key_file);
	if (s->password)
		explicit_bzero(s->password, strlen(s->password));
	free(s->password);
	free(s->password_file);
}

void
np_config_free(np_config *cfg)
{
	size_t i, j;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->npools; i++) {
		for (j = 0; j < cfg->pools[i].nscanners; j++)
			scanner_free(&cfg->pools[i].scanners[j]);
		free(cfg->pools[i].scanners);
		free(cfg->pools[i].name);
	}
	free(cfg->pools);
	free(cfg->path);
	free(cfg->redis_url);
	free(cfg->data_dir);
	free(cfg->default_pool);
	free(cfg->key_prefix);
	free(cfg);
}

const np_pool *
np_config_pool(const np_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; name && i < cfg->npools; i++)
		if (!strcmp(cfg->pools[i].name, name))
			return &cfg->pools[i];
	return NULL;
}

const np_scanner *
np_pool_scanner(const np_pool *p, const char *id)
{
	size_t i;

	for (i = 0; id && i < p->nscanners; i++)
		if (!strcmp(p->scanners[i].instance_id, id))
			return &p->scanners[i];
	return NULL;
}

/*
 * Returns a scanner's secret ("secret_key" or "password") in *out, which
 * the caller frees after explicit_bzero. Secret files are refused when
 * group or others can read them.
 */
int
np_config_secret(const np_config *cfg, const np_scanner *s, const char *which,
    char **out, np_error *err)
{
	const char *val, *file;
	struct stat st;
	size_t len;
	char *buf;
	int rc;

	(void)cfg;
	if (!strcmp(which, "secret_key"))
		val = s->secret_key, file = s->secret_key_file;
	else
		val = s->password, file = s->password_file;
	if (val) {
		*out = np_xstrdup(val);
		return 0;
	}
	if (file == NULL)
		return np_seterr(err, NP_ECONFIG, "%s: scanner %s has no %s",
		    cfg->path, s->instance_id, which);
	if (stat(file, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
		return np_seterr(err, NP_ECONFIG, "%s holds a secret and is "
		    "readable by group or others (chmod 600 it)", file);
	if ((rc = np_read_file(file, 65536, &buf, &len, err)) != 0) {
		err->code = rc == NP_EPERM ? NP_EPERM : NP_ECONFIG;
		return err->code;
	}
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	if (len == 0) {
		free(buf);
		return np_seterr(err, NP_ECONFIG, "%s: empty secret file", file);
	}
	*out = buf;
	return 0;
}
