/*
 * report.c: reading .nessus (v2) exports as a stream with libxml2's
 * xmlReader, so memory stays flat whatever the file size: the reader
 * holds the current node and its ancestors only, and the walk keeps a
 * few counters and one small record per host.
 *
 * Entities are never substituted (no XML_PARSE_NOENT), no DTD is loaded
 * and nothing is fetched (XML_PARSE_NONET, the file is read from a
 * descriptor, so no URL, gzip or lzma handler is involved): XXE is inert.
 * Entity bombs are defused by keeping libxml2's amplification limits on
 * whenever the document may carry a DTD (see np_xml_may_have_dtd) and by never
 * asking libxml2 to expand a value that holds an entity reference.
 *
 * One walk serves np_report_check (is this an export at all?) and
 * np_validate_file (statistics and the authentication verdict).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libxml/xmlreader.h>

#include "np.h"

#define MIN_SIZE 50		/* anything smaller cannot be an export */
#define MAX_DEPTH 8		/* the walk never descends below depth 5 */
#define MAX_NAMED 10		/* hosts named in one warning or error */
#define MAX_BAD_SEVERITY 10	/* bad severities warned one by one */
/* Past this many hosts the list stops growing (the counts stay exact),
 * so that a huge scan cannot make the answer itself huge. */
#define MAX_HOSTS_LISTED 10000

/* What an open element is to the walk, per depth. */
enum { K_NONE, K_ROOT, K_REPORT, K_HOST, K_PROPS, K_TAG, K_ITEM, K_OUTPUT };

/* The HostProperties tags the walk reads. */
enum { T_NONE, T_CRED, T_START, T_END, T_LOGIN, T_COUNT };
static const char *const tag_names[T_COUNT] = {
	[T_CRED] = "Credentialed_Scan",
	[T_START] = "HOST_START_TIMESTAMP",
	[T_END] = "HOST_END_TIMESTAMP",
	[T_LOGIN] = "ssh-login-used",
};

/* Element and attribute names, interned in the reader's dictionary so
 * that comparisons are mostly pointer tests. */
enum {
	N_ROOT, N_REPORT, N_HOST, N_PROPS, N_TAG, N_ITEM, N_OUTPUT, N_NAME,
	N_SEVERITY, N_PLUGIN, N_COUNT
};
static const char *const names[N_COUNT] = {
	"NessusClientData_v2", "Report", "ReportHost", "HostProperties", "tag",
	"ReportItem", "plugin_output", "name", "severity", "pluginID",
};

/* Credential signals of a host, one bit each. */
enum {
	SIG_TAG_TRUE = 1 << 0,	/* HostProperties Credentialed_Scan */
	SIG_TAG_FALSE = 1 << 1,
	SIG_YES = 1 << 2,	/* 19506 "Credentialed checks : yes..." */
	SIG_NO = 1 << 3,
	SIG_VALID = 1 << 4,	/* 141118 */
	SIG_NO_ISSUE = 1 << 5,	/* 110095 */
	SIG_PRIV = 1 << 6,	/* 110385 */
	SIG_FAIL = 1 << 7,	/* 104410 */
	SIG_PATCH = 1 << 8,	/* 21745 */
	SIG_NO_CREDS = 1 << 9,	/* 110723 */
};

#define SCAN_INFO 19506L
static const struct {
	long id;
	unsigned bit;
	const char *why;
} plugins[] = {
	{ 141118, SIG_VALID, "141118: valid credentials provided" },
	{ 110095, SIG_NO_ISSUE, "110095: no credential issues found" },
	{ 110385, SIG_PRIV, "110385: insufficient privilege" },
	{ 104410, SIG_FAIL, "104410: failure for provided credentials" },
	{ 21745, SIG_PATCH, "21745: OS security patch assessment failed" },
	{ 110723, SIG_NO_CREDS, "110723: no credentials provided" },
};

/* Per-host verdicts, and the scan types. */
enum { V_AUTH, V_FAILED, V_PRIV, V_NONE, V_COUNT };
static const char *const verdicts[V_COUNT] = {
	"authenticated", "failed", "privilege_insufficient", "not_attempted",
};
enum { ST_UNTRUSTED, ST_AUTH, ST_PRIV };
static const char *const scan_types[] = {
	"untrusted", "authenticated", "authenticated_privileged",
};

/* Why a file is not valid; RE_OK when it is. */
enum {
	RE_OK, RE_NOT_FOUND, RE_TOO_SMALL, RE_XML, RE_NOT_NESSUS, RE_EMPTY,
	RE_AUTH, RE_PRIV
};
static const char *const reasons[] = {
	NULL, "file_not_found", "too_small", "xml_invalid", "not_nessus",
	"empty_scan", "auth_failed", "privilege_insufficient",
};

typedef struct {
	char *name;		/* the ReportHost name attribute */
	unsigned sig;
	char cred[160];		/* the value of 19506's Credentialed checks */
	char user[160];		/* the account that line names */
	char login[160];	/* the ssh-login-used tag */
} host;

typedef struct {
	xmlTextReaderPtr r;
	const xmlChar *nm[N_COUNT];
	unsigned char kind[MAX_DEPTH];
	int type;		/* ST_*, or -1: structure only */
	int tag;		/* the open HostProperties tag, T_* */
	char text[160];		/* its text */
	size_t ntext;
	char line[512];		/* the 19506 output line being read */
	size_t nline;
	host h;
	bool root, root_closed, dtd, truncated;
	char root_name[64];
	long hosts, items, sev[5], bad_sev;
	long nverdict[V_COUNT], signalled;
	int64_t start, end;	/* epoch seconds, 0 when unknown */
	json_t *list, *warnings;
	struct {
		json_t *v;	/* values many hosts share, see share() */
		unsigned sig;	/* for a signals array, its bit mask */
	} shared[16];
	unsigned nshared;
	char xml_error[200];
	int xml_line;
	char msg[1024];		/* why the file is invalid */
} walk;

enum { ADV_READ, ADV_SKIP, ADV_STOP };

/* ------------------------------------------------------------ helpers */

/* Appends what fits of s (len bytes) to buf, whole UTF-8 characters only,
 * so that a clipped value is still valid for JSON. */
static void
append(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
	size_t room = cap - 1 - *n;

	if (len > room) {
		len = room;
		while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
			len--;
	}
	memcpy(buf + *n, s, len);
	*n += len;
	buf[*n] = '\0';
}

static void
copy(char *buf, size_t cap, const char *s, size_t len)
{
	size_t n = 0;

	append(buf, cap, &n, s, len);
}

/* Trims white space at both ends, in place; returns the start. */
static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' ||
	    e[-1] == '\n'))
		*--e = '\0';
	return s;
}

/* A decimal integer, nothing else; -1 otherwise. */
static long long
decimal(const char *s)
{
	long long v = 0;

	if (s == NULL || *s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 99999999999LL)
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* A JSON string; bytes that are not UTF-8 (a file name may hold any)
 * become '?'. */
static json_t *
jstr(const char *s)
{
	json_t *v = json_string(s);
	char *t, *p;

	if (v != NULL)
		return v;
	t = np_xstrdup(s);
	for (p = t; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	v = json_string(t);
	free(t);
	return v ? v : json_null();
}

/* Formats into buf; a message cut short loses its last, incomplete
 * UTF-8 character too. */
static void
vformat(char *buf, size_t n, const char *fmt, va_list ap)
{
	size_t len, i;

	if ((size_t)vsnprintf(buf, n, fmt, ap) < n)
		return;
	len = strlen(buf);
	for (i = len; i > 0 && len - i < 4; i--) {
		unsigned char c = (unsigned char)buf[i - 1];

		if ((c & 0xC0) == 0x80)
			continue;
		if (c >= 0xC0 && len - (i - 1) < (c >= 0xF0 ? 4u : c >= 0xE0 ?
		    3u : 2u))
			buf[i - 1] = '\0';
		break;
	}
}

static void
warn(walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
warn(walk *w, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vformat(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	json_array_append_new(w->warnings, jstr(buf));
}

/* Says why the file is invalid, in the answer and in err. */
static void
fail(walk *w, np_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
fail(walk *w, np_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(w->msg, sizeof(w->msg), fmt, ap);
	va_end(ap);
	np_seterr(err, code, "%s", w->msg);
}

/*
 * The value of attribute `name` of the reader's element, or NULL. Read
 * straight from the node: a value made of a single text node is used as
 * is, and one that holds an entity reference is treated as absent, since
 * asking libxml2 for it would expand the entity (an entity bomb).
 */
static const char *
attr(walk *w, int name)
{
	xmlNodePtr n = xmlTextReaderCurrentNode(w->r);
	xmlAttrPtr a;

	for (a = n ? n->properties : NULL; a != NULL; a = a->next) {
		if (!xmlStrEqual(a->name, w->nm[name]))
			continue;
		if (a->children == NULL)
			return "";
		if (a->children->type != XML_TEXT_NODE ||
		    a->children->next != NULL)
			return NULL;
		return (const char *)a->children->content;
	}
	return NULL;
}

/* ------------------------------------------------------------ one host */

static int
host_begin(walk *w)
{
	const char *name;

	/* Structure only: the host's content is parsed, never looked at. */
	if (w->type < 0) {
		w->hosts++;
		return K_NONE;
	}
	free(w->h.name);
	memset(&w->h, 0, sizeof(w->h));
	name = attr(w, N_NAME);
	w->h.name = name ? np_xstrdup(name) : NULL;
	return K_HOST;
}

static void
bad_severity(walk *w, const char *sev, const char *plugin)
{
	const char *name = w->h.name ? w->h.name : "?";
	char v[40];

	if (++w->bad_sev > MAX_BAD_SEVERITY)
		return;
	plugin = plugin ? plugin : "?";
	if (sev == NULL) {
		warn(w, "host %s: ReportItem pluginID %s has no severity; not "
		    "counted by severity", name, plugin);
		return;
	}
	copy(v, sizeof(v), sev, strlen(sev));
	warn(w, "host %s: ReportItem pluginID %s: severity '%s' is not 0 to 4; "
	    "not counted by severity", name, plugin, v);
}

/* A ReportItem: counted by severity; its plugin may be a credential
 * signal. Only 19506's children are read. */
static int
item(walk *w)
{
	const char *sev = attr(w, N_SEVERITY), *plugin = attr(w, N_PLUGIN);
	long long id = decimal(plugin);
	size_t i;

	w->items++;
	if (sev != NULL && sev[0] >= '0' && sev[0] <= '4' && sev[1] == '\0')
		w->sev[sev[0] - '0']++;
	else
		bad_severity(w, sev, plugin);
	if (id == SCAN_INFO)
		return K_ITEM;
	for (i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++)
		if (plugins[i].id == id)
			w->h.sig |= plugins[i].bit;
	return K_NONE;
}

static int
tag_begin(walk *w)
{
	const char *name = attr(w, N_NAME);
	int t;

	for (t = T_NONE + 1; name != NULL && t < T_COUNT; t++)
		if (strcmp(name, tag_names[t]) == 0) {
			w->tag = t;
			w->ntext = 0;
			w->text[0] = '\0';
			return K_TAG;
		}
	return K_NONE;
}

static void
tag_end(walk *w)
{
	char *s = trim(w->text);
	long long v = decimal(s);

	switch (w->tag) {
	case T_CRED:
		if (w->h.sig & (SIG_TAG_TRUE | SIG_TAG_FALSE))
			break;
		if (strcasecmp(s, "true") == 0)
			w->h.sig |= SIG_TAG_TRUE;
		else if (strcasecmp(s, "false") == 0)
			w->h.sig |= SIG_TAG_FALSE;
		break;
	case T_START:
		if (v > 0 && (w->start == 0 || v < w->start))
			w->start = v;
		break;
	case T_END:
		if (v > 0 && v > w->end)
			w->end = v;
		break;
	case T_LOGIN:
		copy(w->h.login, sizeof(w->h.login), s, strlen(s));
		break;
	}
	w->tag = T_NONE;
}

/* Whether s starts with the word `word`, in any case. */
static bool
starts_word(const char *s, const char *word)
{
	size_t n = strlen(word);

	return strncasecmp(s, word, n) == 0 && !isalnum((unsigned char)s[n]);
}

/*
 * One line of 19506's output. Only "Credentialed checks : yes..." or
 * "... : no..." decides (the key exactly, the value's first word), and
 * only the first such line; "yes, as 'user' via ssh" names the account.
 */
static void
scan_info_line(host *h, char *line)
{
	char *colon = strchr(line, ':'), *key, *val, *q;

	if (colon == NULL || (h->sig & (SIG_YES | SIG_NO)))
		return;
	*colon = '\0';
	key = trim(line);
	val = trim(colon + 1);
	if (strcasecmp(key, "Credentialed checks") != 0)
		return;
	if (starts_word(val, "yes"))
		h->sig |= SIG_YES;
	else if (starts_word(val, "no"))
		h->sig |= SIG_NO;
	else
		return;
	copy(h->cred, sizeof(h->cred), val, strlen(val));
	if ((val = strstr(val, "as '")) != NULL &&
	    (q = strchr(val + 4, '\'')) != NULL)
		copy(h->user, sizeof(h->user), val + 4, (size_t)(q - val - 4));
}

static void
line_end(walk *w)
{
	scan_info_line(&w->h, w->line);
	w->nline = 0;
	w->line[0] = '\0';
}

/* Text of 19506's plugin_output, cut into lines; a long line keeps its
 * start, where the key is. */
static void
output_text(walk *w, const char *s)
{
	const char *nl;

	while ((nl = strchr(s, '\n')) != NULL) {
		append(w->line, sizeof(w->line), &w->nline, s,
		    (size_t)(nl - s));
		line_end(w);
		s = nl + 1;
	}
	append(w->line, sizeof(w->line), &w->nline, s, strlen(s));
}

/* What a credential plugin's signal means, for a reason. */
static const char *
why_of(unsigned bit)
{
	size_t i;

	for (i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++)
		if (plugins[i].bit == bit)
			return plugins[i].why;
	return "?";
}

/*
 * A host's verdict from its signals, strongest first: 19506's line (the
 * scanner's own summary), else the Credentialed_Scan tag, else the
 * credential plugins. Logged in with 110385 is privilege_insufficient.
 * Not logged in is failed, unless the scan was untrusted (nothing was
 * tried) or 110723 says no credentials reached the host.
 */
static int
verdict(int type, const host *h, char *why, size_t n)
{
	unsigned s = h->sig;
	int in;
	size_t i;

	if (s & (SIG_YES | SIG_NO))
		in = (s & SIG_YES) != 0;
	else if (s & (SIG_TAG_TRUE | SIG_TAG_FALSE))
		in = (s & SIG_TAG_TRUE) != 0;
	else if (s & (SIG_VALID | SIG_NO_ISSUE | SIG_PRIV))
		in = 1;
	else
		in = (s & (SIG_FAIL | SIG_PATCH)) ? 0 : -1;
	/* The plugins, in the order they are worth quoting. */
	for (i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++) {
		if (!(s & plugins[i].bit))
			continue;
		if ((in == 1 && plugins[i].bit == SIG_PRIV) ||
		    (in == 0 && (plugins[i].bit & (SIG_FAIL | SIG_PATCH)))) {
			snprintf(why, n, "%s", plugins[i].why);
			return in ? V_PRIV : V_FAILED;
		}
	}
	if (in == 1) {
		if (s & SIG_YES)
			snprintf(why, n, "19506: Credentialed checks : %s",
			    h->cred);
		else if (s & SIG_TAG_TRUE)
			snprintf(why, n, "Credentialed_Scan: true");
		else
			snprintf(why, n, "%s", why_of((s & SIG_VALID) ?
			    SIG_VALID : SIG_NO_ISSUE));
		return V_AUTH;
	}
	if (s & SIG_NO_CREDS) {
		snprintf(why, n, "%s", why_of(SIG_NO_CREDS));
		return V_NONE;
	}
	if (in == -1) {
		snprintf(why, n, "no credential signal");
		return V_NONE;
	}
	if (s & SIG_NO)
		snprintf(why, n, "19506: Credentialed checks : %s", h->cred);
	else
		snprintf(why, n, "Credentialed_Scan: false");
	return type == ST_UNTRUSTED ? V_NONE : V_FAILED;
}

/* The signals of a host, in a fixed order. */
static json_t *
signals_json(unsigned sig)
{
	json_t *v = json_array();
	size_t k;

	if (sig & (SIG_TAG_TRUE | SIG_TAG_FALSE))
		json_array_append_new(v, json_string("Credentialed_Scan"));
	if (sig & (SIG_YES | SIG_NO))
		json_array_append_new(v, json_string("19506"));
	for (k = 0; k < sizeof(plugins) / sizeof(plugins[0]); k++)
		if (sig & plugins[k].bit)
			json_array_append_new(v, json_sprintf("%ld",
			    plugins[k].id));
	return v;
}

/*
 * A JSON string s, or when s is NULL the signals array of the bit mask
 * sig, that hosts share: most hosts of a scan have the same verdict,
 * reason and signals, and one reference instead of one copy per host
 * keeps a list of thousands of hosts small. The last few are kept.
 */
static json_t *
share(walk *w, const char *s, unsigned sig)
{
	unsigned i, n = sizeof(w->shared) / sizeof(w->shared[0]);
	json_t *v;

	for (i = 0; i < n && (v = w->shared[i].v) != NULL; i++)
		if (s ? json_is_string(v) && !strcmp(json_string_value(v), s) :
		    json_is_array(v) && w->shared[i].sig == sig)
			return json_incref(v);
	v = s ? jstr(s) : signals_json(sig);
	i = w->nshared++ % n;
	json_decref(w->shared[i].v);
	w->shared[i].v = json_incref(v);
	w->shared[i].sig = sig;
	return v;
}

static json_t *
host_json(walk *w, const host *h, int v, const char *why)
{
	json_t *o = json_object();
	const char *user = h->user[0] ? h->user : h->login;

	json_object_set_new(o, "host", h->name ? jstr(h->name) : json_null());
	json_object_set_new(o, "authentication", share(w, verdicts[v], 0));
	json_object_set_new(o, "reason", share(w, why, 0));
	if (*user)
		json_object_set_new(o, "credentialed_user", share(w, user, 0));
	json_object_set_new(o, "signals", share(w, NULL, h->sig));
	return o;
}

static void
host_end(walk *w)
{
	char why[256];
	int v;

	w->hosts++;
	v = verdict(w->type, &w->h, why, sizeof(why));
	w->nverdict[v]++;
	if (w->h.sig)
		w->signalled++;
	if (json_array_size(w->list) < MAX_HOSTS_LISTED)
		json_array_append_new(w->list, host_json(w, &w->h, v, why));
	free(w->h.name);
	memset(&w->h, 0, sizeof(w->h));
}

/* ------------------------------------------------------------ the walk */

static void
close_kind(walk *w, int k)
{
	if (k == K_HOST)
		host_end(w);
	else if (k == K_TAG)
		tag_end(w);
	else if (k == K_OUTPUT)
		line_end(w);
}

static int
open_kind(walk *w, int d, int k)
{
	if (k == K_NONE || d >= MAX_DEPTH)
		return ADV_SKIP;
	w->kind[d] = (unsigned char)k;
	if (xmlTextReaderIsEmptyElement(w->r))
		close_kind(w, k);
	return ADV_READ;
}

static int
root(walk *w, const xmlChar *name)
{
	copy(w->root_name, sizeof(w->root_name), (const char *)name,
	    strlen((const char *)name));
	if (!xmlStrEqual(name, w->nm[N_ROOT]))
		return ADV_STOP;
	w->root = true;
	w->root_closed = xmlTextReaderIsEmptyElement(w->r) == 1;
	return open_kind(w, 0, K_ROOT);
}

/* An element: descend into the few that matter, skip the rest whole
 * (Policy, most tags, the children of every ReportItem but 19506). */
static int
element(walk *w, int d)
{
	const xmlChar *name = xmlTextReaderConstLocalName(w->r);
	int up = d > 0 ? w->kind[d - 1] : K_NONE, k = K_NONE;

	if (name == NULL)
		return ADV_SKIP;
	if (d == 0)
		return root(w, name);
	if (up == K_ROOT && xmlStrEqual(name, w->nm[N_REPORT]))
		k = K_REPORT;
	else if (up == K_REPORT && xmlStrEqual(name, w->nm[N_HOST]))
		k = host_begin(w);
	else if (up == K_HOST && xmlStrEqual(name, w->nm[N_ITEM]))
		k = item(w);
	else if (up == K_HOST && xmlStrEqual(name, w->nm[N_PROPS]))
		k = K_PROPS;
	else if (up == K_PROPS && xmlStrEqual(name, w->nm[N_TAG]))
		k = tag_begin(w);
	else if (up == K_ITEM && xmlStrEqual(name, w->nm[N_OUTPUT]))
		k = K_OUTPUT;
	return open_kind(w, d, k);
}

static void
text(walk *w, int d)
{
	const char *s;

	if (d < 1 || d > MAX_DEPTH)
		return;
	if (w->kind[d - 1] != K_TAG && w->kind[d - 1] != K_OUTPUT)
		return;
	if ((s = (const char *)xmlTextReaderConstValue(w->r)) == NULL)
		return;
	if (w->kind[d - 1] == K_TAG)
		append(w->text, sizeof(w->text), &w->ntext, s, strlen(s));
	else
		output_text(w, s);
}

static int
visit(walk *w)
{
	int d = xmlTextReaderDepth(w->r);

	switch (xmlTextReaderNodeType(w->r)) {
	case XML_READER_TYPE_ELEMENT:
		return element(w, d);
	case XML_READER_TYPE_END_ELEMENT:
		if (d >= 0 && d < MAX_DEPTH)
			close_kind(w, w->kind[d]);
		w->root_closed = d == 0;
		break;
	case XML_READER_TYPE_TEXT:
	case XML_READER_TYPE_CDATA:
	case XML_READER_TYPE_WHITESPACE:
	case XML_READER_TYPE_SIGNIFICANT_WHITESPACE:
		text(w, d);
		break;
	case XML_READER_TYPE_DOCUMENT_TYPE:
		w->dtd = true;
		break;
	}
	return ADV_READ;
}

/* libxml2 2.12 made the error it passes const. */
#if LIBXML_VERSION >= 21200
typedef const xmlError *xml_error_ptr;
#else
typedef xmlErrorPtr xml_error_ptr;
#endif

/* Keeps libxml2's first error, on one line, for the answer. The line is
 * the parser's, not that of the reader's node, which lags behind. */
static void
on_error(void *arg, xml_error_ptr e)
{
	walk *w = arg;
	char *p;

	if (e == NULL || e->level < XML_ERR_ERROR || w->xml_error[0] ||
	    e->message == NULL)
		return;
	copy(w->xml_error, sizeof(w->xml_error), e->message,
	    strlen(e->message));
	for (p = w->xml_error; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	trim(w->xml_error);
	w->xml_line = e->line;
}

/* Whether an XML declaration leaves the encoding UTF-8 (none named, or
 * UTF-8): the check below reads bytes as ASCII, which holds then only. */
static bool
utf8_decl(const char *p)
{
	const char *end = strstr(p, "?>"), *enc = strstr(p, "encoding");

	if (end == NULL || enc == NULL || enc > end)
		return end != NULL;
	enc += strcspn(enc, "\"'?");
	return (*enc == '"' || *enc == '\'') && strncasecmp(enc + 1, "utf-8", 5)
	    == 0 && enc[6] == *enc;
}

/*
 * Whether the document may declare a DTD, from its first bytes: after a
 * BOM, the XML declaration, comments, PIs and white space comes the root
 * element (no) or anything else (maybe). Exports never have a DTD, and
 * without one XML_PARSE_HUGE is safe; with one it must stay off, since in
 * libxml2 2.9 it also turns off the entity amplification limits.
 */
bool
np_xml_may_have_dtd(int fd)
{
	char buf[8192], *p, *end;
	const char *stop;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return true;
	buf[n] = '\0';
	p = buf;
	end = buf + n;
	if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	for (;;) {
		while (p < end && strchr(" \t\r\n", *p) && *p)
			p++;
		if (strncmp(p, "<?xml", 5) == 0 && !utf8_decl(p))
			return true;
		if (strncmp(p, "<?", 2) == 0)
			stop = "?>";
		else if (strncmp(p, "<!--", 4) == 0)
			stop = "-->";
		else
			return p[0] != '<' || !(isalpha((unsigned char)p[1]) ||
			    p[1] == '_' || p[1] == ':' || (p[1] & 0x80));
		if ((p = strstr(p + 2, stop)) == NULL)
			return true;
		p += strlen(stop);
	}
}

static void
walk_init(walk *w, int type)
{
	memset(w, 0, sizeof(*w));
	w->type = type;
	w->list = json_array();
	w->warnings = json_array();
}

static void
walk_free(walk *w)
{
	size_t i;

	for (i = 0; i < sizeof(w->shared) / sizeof(w->shared[0]); i++)
		json_decref(w->shared[i].v);
	free(w->h.name);
	json_decref(w->list);
	json_decref(w->warnings);
}

/* Parses the whole file; RE_OK, RE_XML or RE_NOT_NESSUS. A file that
 * ends inside the root element is truncated: libxml2's reader then
 * speaks of "extra content", which would mislead. */
static int
walk_fd(walk *w, int fd, off_t size)
{
	int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
	    XML_PARSE_COMPACT | XML_PARSE_NOBLANKS, ret, adv = ADV_READ, i;

	if (!np_xml_may_have_dtd(fd))
		opts |= XML_PARSE_HUGE;
	if ((w->r = xmlReaderForFd(fd, NULL, NULL, opts)) == NULL) {
		snprintf(w->xml_error, sizeof(w->xml_error), "cannot start "
		    "the XML reader");
		return RE_XML;
	}
	xmlTextReaderSetStructuredErrorHandler(w->r, on_error, w);
	for (i = 0; i < N_COUNT; i++)
		w->nm[i] = xmlTextReaderConstString(w->r, BAD_CAST names[i]);
	ret = xmlTextReaderRead(w->r);
	while (ret == 1 && adv != ADV_STOP) {
		adv = visit(w);
		if (adv == ADV_SKIP)
			ret = xmlTextReaderNext(w->r);
		else if (adv == ADV_READ)
			ret = xmlTextReaderRead(w->r);
	}
	w->truncated = ret == -1 && w->root && !w->root_closed &&
	    xmlTextReaderByteConsumed(w->r) >= (long)size;
	xmlFreeTextReader(w->r);
	w->r = NULL;
	if (adv == ADV_STOP)
		return RE_NOT_NESSUS;
	if (ret != 0 || w->xml_error[0] || !w->root)
		return RE_XML;
	return RE_OK;
}

/* Opens a regular file for reading; -1 with err set (66) otherwise. */
static int
open_export(walk *w, const char *path, off_t *size, np_error *err)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd == -1) {
		fail(w, err, NP_ENOINPUT, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1)
		st.st_mode = 0;
	if (!S_ISREG(st.st_mode)) {
		fail(w, err, NP_ENOINPUT, "%s: %s", path, S_ISDIR(st.st_mode) ?
		    strerror(EISDIR) : "not a regular file");
		close(fd);
		return -1;
	}
	*size = st.st_size;
	return fd;
}

/*
 * Checks a file up to its structure: RE_OK (at least one host) or why
 * not, with the message in err. Files under min_size bytes are RE_TOO_SMALL.
 */
static int
check(walk *w, const char *path, off_t min_size, off_t *size, np_error *err)
{
	int fd, rc;

	if ((fd = open_export(w, path, size, err)) == -1)
		return RE_NOT_FOUND;
	if (*size < min_size) {
		close(fd);
		fail(w, err, NP_NO, "%s: %lld bytes, too small for a .nessus "
		    "export", path, (long long)*size);
		return RE_TOO_SMALL;
	}
	rc = walk_fd(w, fd, *size);
	close(fd);
	if (rc == RE_NOT_NESSUS)
		fail(w, err, NP_NO, "%s: the root element is <%s>, not "
		    "<NessusClientData_v2>", path, w->root_name);
	else if (rc == RE_XML && w->truncated)
		fail(w, err, NP_NO, "%s is truncated: the file ends before "
		    "</NessusClientData_v2> (incomplete download?)", path);
	else if (rc == RE_XML && w->xml_line > 0)
		fail(w, err, NP_NO, "%s is not well-formed XML: line %d: %s",
		    path, w->xml_line, w->xml_error);
	else if (rc == RE_XML)
		fail(w, err, NP_NO, "%s is not well-formed XML: %s", path,
		    w->xml_error[0] ? w->xml_error : "no root element");
	else if (w->hosts == 0)
		fail(w, err, NP_NO, "%s: no ReportHost, the scan found no "
		    "live host", path);
	return rc == RE_OK && w->hosts == 0 ? RE_EMPTY : rc;
}

/* ------------------------------------------------------------ verdicts */

/* Appends to buf (n bytes, *len used), as much as fits. */
static void
cat(char *buf, size_t n, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
cat(char *buf, size_t n, size_t *len, const char *fmt, ...)
{
	va_list ap;

	if (*len + 1 >= n)
		return;
	va_start(ap, fmt);
	vformat(buf + *len, n - *len, fmt, ap);
	va_end(ap);
	*len += strlen(buf + *len);
}

/*
 * The first listed hosts whose verdict is in mask (1 << V_*), grouped by
 * reason, as in "h1, h3 (104410: ...); h2 (19506: ...), and 4 more".
 */
static void
host_names(const walk *w, unsigned mask, long total, char *buf, size_t n)
{
	const char *name[MAX_NAMED], *why[MAX_NAMED];
	size_t i, j, k, len = 0, named = 0;
	json_t *h;

	json_array_foreach(w->list, i, h) {
		const char *v = json_string_value(json_object_get(h,
		    "authentication"));

		for (k = 0; k < V_COUNT && strcmp(v, verdicts[k]); k++)
			;
		if (named == MAX_NAMED || !(mask & (1u << k)))
			continue;
		name[named] = json_string_value(json_object_get(h, "host"));
		why[named++] = json_string_value(json_object_get(h, "reason"));
	}
	buf[0] = '\0';
	for (i = 0; i < named; i++) {
		/* Each reason once, after all its hosts. */
		for (j = 0; j < i && strcmp(why[j], why[i]); j++)
			;
		if (j < i)
			continue;
		for (j = i; j < named; j++) {
			const char *sep = j > i ? ", " : i ? "; " : "";

			if (strcmp(why[j], why[i]) == 0)
				cat(buf, n, &len, "%s%s", sep,
				    name[j] ? name[j] : "?");
		}
		cat(buf, n, &len, " (%s)", why[i]);
	}
	if ((long)named < total)
		cat(buf, n, &len, "%sand %ld more", named ? ", " : "",
		    total - (long)named);
}

static const char *
scan_verdict(const walk *w)
{
	long in = w->nverdict[V_AUTH] + w->nverdict[V_PRIV];

	if (w->type == ST_UNTRUSTED)
		return "not_applicable";
	if (w->signalled == 0)
		return "unknown";
	if (in == w->hosts)
		return "success";
	return in == 0 ? "failed" : "partial";
}

/* Judges the authentication of a parsed scan: RE_OK (maybe with
 * warnings), RE_AUTH or RE_PRIV with the message in err. */
static int
judge(walk *w, const char *auth, np_error *err)
{
	long out = w->hosts - w->nverdict[V_AUTH] - w->nverdict[V_PRIV];
	long priv = w->nverdict[V_PRIV];
	char names_[800];

	if (strcmp(auth, "failed") == 0) {
		host_names(w, 1u << V_FAILED | 1u << V_NONE, out, names_,
		    sizeof(names_));
		fail(w, err, NP_NO, "authentication failed on every host of "
		    "this %s scan (%ld of %ld): %s", scan_types[w->type], out,
		    w->hosts, names_);
		return RE_AUTH;
	}
	if (strcmp(auth, "partial") == 0) {
		host_names(w, 1u << V_FAILED | 1u << V_NONE, out, names_,
		    sizeof(names_));
		warn(w, "partial authentication: %ld of %ld hosts not "
		    "authenticated: %s", out, w->hosts, names_);
	}
	if (strcmp(auth, "unknown") == 0)
		warn(w, "authentication unknown: no host carries a credential "
		    "signal (19506, Credentialed_Scan, 141118, 110095, 110385, "
		    "104410, 21745, 110723)");
	if (w->type == ST_UNTRUSTED || priv == 0)
		return RE_OK;
	host_names(w, 1u << V_PRIV, priv, names_, sizeof(names_));
	if (w->type != ST_PRIV) {
		warn(w, "%ld of %ld hosts logged in without sufficient "
		    "privilege (110385): %s", priv, w->hosts, names_);
		return RE_OK;
	}
	fail(w, err, NP_NO, "%ld of %ld hosts logged in without sufficient "
	    "privilege (110385): %s", priv, w->hosts, names_);
	return RE_PRIV;
}

/* ------------------------------------------------------------ answer */

static json_t *
epoch_json(int64_t s)
{
	char buf[32];

	if (s <= 0)
		return json_null();
	np_rfc3339(s * 1000, buf);
	return json_string(buf);
}

/* The statistics; counts are null where the file was not read (level 0:
 * nothing known, 1: the size only, 2: everything). */
static json_t *
stats_json(const walk *w, off_t size, int level)
{
	json_t *o = json_object(), *sev = json_object(), *by = json_object();
	static const char *const sev_names[] = {
		"critical", "high", "medium", "low", "info",
	};
	long vulns = w->sev[1] + w->sev[2] + w->sev[3] + w->sev[4];
	int i;

#define COUNT(n) (level == 2 ? json_integer(n) : json_null())
	json_object_set_new(o, "file_size_bytes", level ?
	    json_integer((json_int_t)size) : json_null());
	json_object_set_new(o, "hosts_scanned", COUNT(w->hosts));
	json_object_set_new(o, "total_plugins", COUNT(w->items));
	for (i = 0; i < 5; i++)
		json_object_set_new(sev, sev_names[i], COUNT(w->sev[4 - i]));
	json_object_set_new(o, "severity_breakdown", sev);
	json_object_set_new(o, "total_vulnerabilities", COUNT(vulns));
	json_object_set_new(o, "scan_start", epoch_json(level == 2 ?
	    w->start : 0));
	json_object_set_new(o, "scan_end", epoch_json(level == 2 ? w->end : 0));
	for (i = 0; i < V_COUNT; i++)
		json_object_set_new(by, verdicts[i], COUNT(w->nverdict[i]));
	json_object_set_new(o, "hosts_by_authentication", by);
#undef COUNT
	return o;
}

static json_t *
answer(walk *w, const char *path, int reason, const char *auth,
    off_t size)
{
	json_t *o = json_object();
	int level = reason == RE_NOT_FOUND ? 0 : reason == RE_TOO_SMALL ||
	    reason == RE_XML || reason == RE_NOT_NESSUS ? 1 : 2;

	json_object_set_new(o, "valid", json_boolean(reason == RE_OK));
	json_object_set_new(o, "reason", reason ? json_string(reasons[reason]) :
	    json_null());
	json_object_set_new(o, "file", jstr(path));
	json_object_set_new(o, "scan_type", json_string(scan_types[w->type]));
	json_object_set_new(o, "stats", stats_json(w, size, level));
	json_object_set_new(o, "authentication_status", auth ?
	    json_string(auth) : json_null());
	json_object_set_new(o, "hosts", level == 2 ? json_incref(w->list) :
	    json_array());
	json_object_set_new(o, "warnings", json_incref(w->warnings));
	json_object_set_new(o, "error", reason ? jstr(w->msg) : json_null());
	return o;
}

/* ------------------------------------------------------------ API */

/*
 * Checks that path is a well-formed .nessus v2 file with at least one
 * ReportHost. 0 when it is; NP_NO with a reason word in err->msg
 * ("xml_invalid: ...", "not_nessus: ...", "empty_scan: ...") when not;
 * NP_ENOINPUT when the file is missing or not a readable regular file.
 */
int
np_report_check(const char *path, long *hosts, np_error *err)
{
	char msg[sizeof(err->msg)];
	off_t size;
	walk w;
	int rc;

	walk_init(&w, -1);
	rc = check(&w, path, 0, &size, err);
	*hosts = w.hosts;
	walk_free(&w);
	if (rc == RE_NOT_FOUND)
		return NP_ENOINPUT;
	if (rc == RE_OK)
		return 0;
	snprintf(msg, sizeof(msg), "%s", err->msg);
	return np_seterr(err, NP_NO, "%s: %s", reasons[rc], msg);
}

/*
 * See np.h. The hosts of the answer share their string and array values
 * (reference counted, see share()): read it, or json_deep_copy it before
 * changing a host.
 */
int
np_validate_file(const char *path, const char *scan_type,
    long expected_hosts, json_t **result, np_error *err)
{
	const char *auth = NULL;
	off_t size = 0;
	int type, rc;
	walk w;

	*result = NULL;
	for (type = ST_UNTRUSTED; scan_type && type <= ST_PRIV; type++)
		if (strcmp(scan_type, scan_types[type]) == 0)
			break;
	if (type > ST_PRIV)
		return np_seterr(err, NP_EUSAGE, "scan type '%s': expected "
		    "untrusted, authenticated or authenticated_privileged",
		    scan_type);
	if (expected_hosts < 0)
		return np_seterr(err, NP_EUSAGE, "expected hosts: %ld is "
		    "negative", expected_hosts);
	walk_init(&w, type);
	rc = check(&w, path, MIN_SIZE, &size, err);
	if (w.dtd)
		warn(&w, "the document has a DOCTYPE: its entities were not "
		    "expanded");
	if (rc == RE_OK || rc == RE_EMPTY) {
		if (w.bad_sev > MAX_BAD_SEVERITY)
			warn(&w, "%ld more ReportItems without a severity 0 "
			    "to 4", w.bad_sev - MAX_BAD_SEVERITY);
		if (w.hosts > MAX_HOSTS_LISTED)
			warn(&w, "hosts lists the first %d of %ld hosts",
			    MAX_HOSTS_LISTED, w.hosts);
		if (expected_hosts > w.hosts)
			warn(&w, "%ld hosts scanned, fewer than the %ld "
			    "expected", w.hosts, expected_hosts);
	}
	if (rc == RE_OK) {
		auth = scan_verdict(&w);
		rc = judge(&w, auth, err);
	}
	*result = answer(&w, path, rc, auth, size);
	walk_free(&w);
	if (rc == RE_NOT_FOUND)
		return NP_ENOINPUT;
	return rc == RE_OK ? 0 : NP_NO;
}
