/*
 * request.c: a scan request (the fields of the MCP submit tools), its
 * validation and its idempotency hash.
 *
 * The hash covers the normalized request as the caller made it (targets
 * canonical and sorted, defaults filled in) and nothing np chooses, so an
 * honest retry always matches. Passwords are left out of the hash: it
 * is stored in Redis, and a hash of a password is a way to guess it.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static const char *const elevations[] = { "Nothing", "sudo", "su",
	"su+sudo", "pbrun", "dzdo", ".k5login", "Cisco 'enable'",
	"Checkpoint Gaia 'expert'", NULL };
static const char *const profiles[] = { "minimal", "summary", "brief",
	"full", NULL };
static const char *const scan_types[] = { "untrusted", "authenticated",
	"authenticated_privileged", NULL };

static bool
one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

static char *
joined(const char *const *list)
{
	size_t n = 1;
	const char *const *l;
	char *s;

	for (l = list; *l; l++)
		n += strlen(*l) + 2;
	s = np_xmalloc(n);
	*s = '\0';
	for (l = list; *l; l++) {
		if (l != list)
			strcat(s, ", ");
		strcat(s, *l);
	}
	return s;
}

static int
bad_choice(np_error *err, const char *field, const char *const *list)
{
	char *j = joined(list);

	np_seterr(err, NP_EDATA, "%s: must be one of %s", field, j);
	free(j);
	return NP_EDATA;
}

/*
 * Takes field from obj as a string of at most max bytes; *out stays NULL
 * when the field is absent or null. ctl allows newlines and tabs.
 */
static int
field(json_t *obj, const char *name, size_t max, bool ctl, char **out,
    np_error *err)
{
	json_t *v = json_object_get(obj, name);
	const char *s;
	size_t n, i;

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return np_seterr(err, NP_EDATA, "%s: must be a string", name);
	s = json_string_value(v);
	n = json_string_length(v);
	if (n > max)
		return np_seterr(err, NP_EDATA, "%s: longer than %zu bytes",
		    name, max);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == 0 || (c < 0x20 && !(ctl && (c == '\n' || c == '\t'))) ||
		    c == 0x7f)
			return np_seterr(err, NP_EDATA,
			    "%s: control characters are not allowed", name);
	}
	*out = np_xstrdup(s);
	return 0;
}

static int
secret(json_t *obj, const char *name, char **out, np_error *err)
{
	json_t *v = json_object_get(obj, name);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return np_seterr(err, NP_EDATA, "%s: must be a string", name);
	if (json_string_length(v) > 1024 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return np_seterr(err, NP_EDATA,
		    "%s: must be 1 to 1024 bytes without NUL", name);
	*out = np_xstrdup(json_string_value(v));
	return 0;
}

static bool
blank(const char *s)
{
	if (s == NULL)
		return true;
	for (; *s; s++)
		if (!isspace((unsigned char)*s))
			return false;
	return true;
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
hash(np_request *r, np_target *t, size_t nt)
{
	json_t *o = json_object();
	char **tok = np_xmalloc(nt * sizeof(*tok)), *s, *canon;
	size_t i, len = 1;

	for (i = 0; i < nt; i++) {
		tok[i] = t[i].text;
		len += strlen(t[i].text) + 1;
	}
	qsort(tok, nt, sizeof(*tok), cmp_str);
	canon = np_xmalloc(len);
	*canon = '\0';
	for (i = 0; i < nt; i++) {
		if (i && !strcmp(tok[i], tok[i - 1]))
			continue;
		if (*canon)
			strcat(canon, ",");
		strcat(canon, tok[i]);
	}
	json_object_set_new(o, "targets", json_string(canon));
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "description", json_string(r->description));
	json_object_set_new(o, "scan_type", json_string(r->scan_type));
	json_object_set_new(o, "scanner_pool", json_string(r->pool));
	json_object_set_new(o, "scanner_instance",
	    json_string(r->instance ? r->instance : ""));
	json_object_set_new(o, "schema_profile", json_string(r->schema_profile));
	json_object_set_new(o, "ssh_username",
	    json_string(r->ssh_username ? r->ssh_username : ""));
	json_object_set_new(o, "elevate_privileges_with",
	    json_string(r->elevate));
	json_object_set_new(o, "escalation_account",
	    json_string(r->esc_account ? r->esc_account : ""));
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	np_sha256_hex(s, strlen(s), r->hash);
	free(s);
	free(canon);
	free(tok);
	json_decref(o);
}

static int
check_fields(json_t *obj, np_error *err)
{
	static const char *const known[] = { "targets", "name", "description",
		"scan_type", "scanner_pool", "scanner_instance",
		"idempotency_key", "schema_profile", "ssh_username",
		"ssh_password", "elevate_privileges_with", "escalation_account",
		"escalation_password", NULL };
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return np_seterr(err, NP_EDATA, "request: must be a JSON object");
	json_object_foreach(obj, key, v) {
		char shown[64];

		(void)v;
		if (one_of(key, known))
			continue;
		snprintf(shown, sizeof(shown), "%s", key);
		for (char *q = shown; *q; q++)
			if (!isprint((unsigned char)*q))
				*q = '?';
		return np_seterr(err, NP_EDATA, "request: unknown field '%s'",
		    shown);
	}
	return 0;
}

static int
check_credentials(np_request *r, np_error *err)
{
	bool any = r->ssh_username || r->ssh_password || r->esc_account ||
	    r->esc_password || strcmp(r->elevate, "Nothing") != 0;

	if (!strcmp(r->scan_type, "untrusted")) {
		if (any)
			return np_seterr(err, NP_EDATA, "scan_type: untrusted "
			    "scans take no credentials (use authenticated)");
		return 0;
	}
	if (blank(r->ssh_username) || r->ssh_password == NULL ||
	    *r->ssh_password == '\0')
		return np_seterr(err, NP_EDATA, "ssh_username, ssh_password: "
		    "required for %s scans", r->scan_type);
	if (!one_of(r->elevate, elevations))
		return bad_choice(err, "elevate_privileges_with", elevations);
	if (!strcmp(r->scan_type, "authenticated_privileged") &&
	    !strcmp(r->elevate, "Nothing"))
		return np_seterr(err, NP_EDATA, "elevate_privileges_with: "
		    "authenticated_privileged needs a method (sudo, su, ...)");
	if (!strcmp(r->elevate, "Nothing") && (r->esc_account || r->esc_password))
		return np_seterr(err, NP_EDATA, "escalation_account, "
		    "escalation_password: need elevate_privileges_with");
	return 0;
}

int
np_request_parse(const np_config *cfg, json_t *obj, np_request *r,
    np_error *err)
{
	const np_pool *pool;
	const np_scanner *s;
	np_target *t = NULL;
	size_t nt = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = check_fields(obj, err)) ||
	    (rc = field(obj, "targets", 65536, true, &r->targets, err)) ||
	    (rc = field(obj, "name", 256, false, &r->name, err)) ||
	    (rc = field(obj, "description", 4096, true, &r->description, err)) ||
	    (rc = field(obj, "scan_type", 64, false, &r->scan_type, err)) ||
	    (rc = field(obj, "scanner_pool", 64, false, &r->pool, err)) ||
	    (rc = field(obj, "scanner_instance", 64, false, &r->instance, err)) ||
	    (rc = field(obj, "idempotency_key", 128, false,
	    &r->idempotency_key, err)) ||
	    (rc = field(obj, "schema_profile", 64, false, &r->schema_profile,
	    err)) ||
	    (rc = field(obj, "ssh_username", 256, false, &r->ssh_username, err)) ||
	    (rc = field(obj, "elevate_privileges_with", 64, false, &r->elevate,
	    err)) ||
	    (rc = field(obj, "escalation_account", 256, false, &r->esc_account,
	    err)) ||
	    (rc = secret(obj, "ssh_password", &r->ssh_password, err)) ||
	    (rc = secret(obj, "escalation_password", &r->esc_password, err)))
		goto out;
	if (blank(r->name)) {
		rc = np_seterr(err, NP_EDATA, "name: required and not blank");
		goto out;
	}
	if (r->targets == NULL) {
		rc = np_seterr(err, NP_EDATA, "targets: required");
		goto out;
	}
	if ((rc = np_targets_parse(r->targets, &t, &nt, err)) != 0)
		goto out;
	free(r->targets);
	r->targets = np_targets_canon(t, nt);
#define DEFAULT(f, v) if (r->f == NULL) r->f = np_xstrdup(v)
	DEFAULT(description, "");
	DEFAULT(scan_type, "untrusted");
	DEFAULT(schema_profile, "brief");
	DEFAULT(elevate, "Nothing");
#undef DEFAULT
	if (!one_of(r->scan_type, scan_types)) {
		rc = bad_choice(err, "scan_type", scan_types);
		goto out;
	}
	if (!one_of(r->schema_profile, profiles)) {
		rc = bad_choice(err, "schema_profile", profiles);
		goto out;
	}
	if (r->pool == NULL) {
		if (cfg->default_pool == NULL) {
			rc = np_seterr(err, NP_EDATA, "scanner_pool: required "
			    "(the config has no default_pool)");
			goto out;
		}
		r->pool = np_xstrdup(cfg->default_pool);
	}
	if (!np_name_valid(r->pool) || (pool = np_config_pool(cfg, r->pool)) == NULL) {
		rc = np_seterr(err, NP_EDATA, "scanner_pool: no pool named '%s'",
		    np_name_valid(r->pool) ? r->pool : "(invalid name)");
		goto out;
	}
	if (r->instance) {
		if (!np_name_valid(r->instance) ||
		    (s = np_pool_scanner(pool, r->instance)) == NULL) {
			rc = np_seterr(err, NP_EDATA, "scanner_instance: no "
			    "scanner '%s' in pool '%s'", np_name_valid(r->instance) ?
			    r->instance : "(invalid name)", r->pool);
			goto out;
		}
		if (!s->enabled) {
			rc = np_seterr(err, NP_EDATA, "scanner_instance: scanner "
			    "'%s' in pool '%s' is disabled", r->instance, r->pool);
			goto out;
		}
	}
	if (r->idempotency_key) {
		const char *k = r->idempotency_key;
		bool ok = *k != '\0';
		for (; *k; k++)
			if (!isalnum((unsigned char)*k) && !strchr("._:-", *k))
				ok = false;
		if (!ok) {
			rc = np_seterr(err, NP_EDATA, "idempotency_key: must "
			    "match [A-Za-z0-9._:-]{1,128}");
			goto out;
		}
	}
	if ((rc = check_credentials(r, err)) != 0)
		goto out;
	hash(r, t, nt);
out:
	np_targets_free(t, nt);
	if (rc)
		np_request_free(r);
	return rc;
}

bool
np_request_has_credentials(const np_request *r)
{
	return r->ssh_password != NULL;
}

static void
wipe(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
np_request_free(np_request *r)
{
	free(r->name);
	free(r->description);
	free(r->targets);
	free(r->scan_type);
	free(r->pool);
	free(r->instance);
	free(r->idempotency_key);
	free(r->schema_profile);
	free(r->ssh_username);
	wipe(r->ssh_password);
	free(r->elevate);
	free(r->esc_account);
	wipe(r->esc_password);
	memset(r, 0, sizeof(*r));
}
