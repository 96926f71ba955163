/*
 * nessus.c: the Nessus REST client, on libcurl and jansson.
 *
 * One np_nessus per scanner and per thread: it owns one easy handle,
 * reused so that its calls share a kept-alive connection. Two ways in:
 * API keys (X-ApiKeys on every call) or a session (POST /session, then
 * X-Cookie), the session also sending the web UI's X-API-Token from
 * /nessus6.js because Nessus Professional and Essentials refuse scan
 * writes without it (HTTP 412). Every call is bounded in time; transient
 * failures (no answer, 429, 5xx) are retried with backoff where that is
 * safe. TLS is verified unless the config says insecure: true. Secrets
 * never reach a log line or an error message, and are wiped after use.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>

#include "np.h"

#define BODY_MAX (16 << 20)	/* JSON answers; downloads go to a file */
#define RETRY_AFTER_MAX 60	/* seconds: a longer wait is the caller's */
#define BACKOFF_MAX 300000	/* ms */

enum {
	F_JSON = 1,		/* parse the answer as JSON */
	F_NOAUTH = 2,		/* no X-ApiKeys or X-Cookie, no login first */
	F_RETRY = 4,		/* idempotent: retry transient failures */
	F_UNSENT = 8,		/* retry only when the request never left */
	F_OK404 = 16,		/* 404 is success (delete: already gone) */
	F_OK409 = 32,		/* 409 is success (stop: already stopped) */
	F_OK409_SENT = 64,	/* 409 after an attempt that may have worked */
	F_DOWNLOAD = 128,	/* no total timeout, but a stall ends it */
};

struct np_nessus {
	const np_config *cfg;
	const np_scanner *s;
	CURL *curl;
	char *base;		/* the url without trailing slashes */
	char *apikeys;		/* "accessKey=A; secretKey=S" (API keys) */
	char *password;		/* session mode */
	char token[128];	/* session token, "" when logged out */
	char api_token[64];	/* from /nessus6.js, "" when it had none */
	char tmpl_name[64], tmpl_uuid[128];	/* last template looked up */
	char export_token[128];	/* of the last export, for /tokens/ */
	char errbuf[CURL_ERROR_SIZE];
};

/* One call: what to send, and what came back from the last attempt. */
typedef struct {
	const char *method, *body;
	char path[192], op[208];
	int flags;
	FILE *out;		/* download: a 2xx body goes here */
	long code;		/* HTTP status, 0 when none was received */
	CURLcode cc;
	long retry_after;	/* seconds, from a 429 or 503 */
	char *buf;		/* the answer (a download's error body) */
	size_t len, cap;
	bool toobig;
	bool sent;		/* an attempt may have reached the server */
	int ioerr;
	int64_t bytes;
	json_t *json;
	CURL *curl;
} req;

static void
req_init(req *r, const char *method, int flags, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
req_init(req *r, const char *method, int flags, const char *fmt, ...)
{
	va_list ap;

	memset(r, 0, sizeof(*r));
	r->method = method;
	r->flags = flags;
	va_start(ap, fmt);
	vsnprintf(r->path, sizeof(r->path), fmt, ap);
	va_end(ap);
	snprintf(r->op, sizeof(r->op), "%s %s", method, r->path);
}

/* Answers may hold a session token: wiped before the memory goes back. */
static void
req_reset(req *r)
{
	if (r->buf)
		explicit_bzero(r->buf, r->len);
	r->len = 0;
	r->toobig = false;
	r->ioerr = 0;
	r->bytes = 0;
	r->code = 0;
	r->retry_after = 0;
	json_decref(r->json);
	r->json = NULL;
	if (r->out && (fflush(r->out) == EOF ||
	    ftruncate(fileno(r->out), 0) == -1 || fseek(r->out, 0, SEEK_SET)))
		r->ioerr = errno;
}

static void
req_free(req *r)
{
	req_reset(r);
	free(r->buf);
	r->buf = NULL;
}

static size_t
on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	req *r = arg;
	size_t n = size * nmemb;
	long code = 0;

	curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &code);
	if (r->out && code >= 200 && code < 300) {
		if (fwrite(p, 1, n, r->out) != n) {
			r->ioerr = errno;
			return 0;
		}
		r->bytes += (int64_t)n;
		return n;
	}
	if (r->len + n > BODY_MAX) {
		r->toobig = true;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		/* 16 KiB first: a login answer (the token) is never moved. */
		for (r->cap = r->cap ? r->cap : 16384; r->cap < r->len + n + 1; )
			r->cap *= 2;
		r->buf = np_xrealloc(r->buf, r->cap);
	}
	memcpy(r->buf + r->len, p, n);
	r->len += n;
	r->buf[r->len] = '\0';
	r->bytes += (int64_t)n;
	return n;
}

/* Lets a signal end a transfer (a download has no total timeout). */
static int
on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut,
    curl_off_t un)
{
	(void)arg, (void)dt, (void)dn, (void)ut, (void)un;
	return np_interrupted ? 1 : 0;
}

static struct curl_slist *
header(struct curl_slist *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static struct curl_slist *
header(struct curl_slist *h, const char *fmt, ...)
{
	struct curl_slist *t;
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if ((t = curl_slist_append(h, line)) == NULL)
		np_die(NP_ESOFTWARE, "out of memory");
	explicit_bzero(line, sizeof(line));
	return t;
}

/* curl_slist_free_all does not wipe; the list holds keys and tokens. */
static void
headers_free(struct curl_slist *h)
{
	struct curl_slist *p;

	for (p = h; p; p = p->next)
		explicit_bzero(p->data, strlen(p->data));
	curl_slist_free_all(h);
}

/* A short, printable "error" from the answer, or "". */
static void
server_says(const req *r, char *out, size_t cap)
{
	json_t *j = r->buf ? json_loadb(r->buf, r->len, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(j, "error"));
	size_t i, o = 0;

	out[0] = '\0';
	if (e && *e) {
		o = (size_t)snprintf(out, cap, ": ");
		for (i = 0; e[i] && o + 1 < cap && i < 160; i++)
			out[o++] = (e[i] >= 0x20 && e[i] < 0x7f) ? e[i] : '?';
		out[o] = '\0';
	}
	json_decref(j);
}

static int
http_error(np_nessus *n, const req *r, np_error *err)
{
	const char *id = n->s->instance_id;
	char why[192];

	server_says(r, why, sizeof(why));
	switch (r->code) {
	case 401:
		return np_seterr(err, NP_ECONFIG, "scanner %s: %s: %s refused "
		    "(HTTP 401)", id, r->op, n->apikeys ? "API keys" : "login");
	case 403:
		return np_seterr(err, NP_EPERM, "scanner %s: %s: HTTP 403 "
		    "forbidden%s", id, r->op, why);
	case 404:
		return np_seterr(err, NP_ENOINPUT, "scanner %s: %s: HTTP 404 "
		    "not found", id, r->op);
	case 412:
		return np_seterr(err, NP_EUNAVAIL, "scanner %s: %s: API is not "
		    "available (Nessus Professional/Essentials refuse scan "
		    "writes made with API keys%s)", id, r->op, n->apikeys ?
		    "; use username and password" : " or without the web UI's "
		    "X-API-Token");
	}
	if (r->code == 429 || r->code >= 500)
		return np_seterr(err, NP_ETEMP, "scanner %s: %s: HTTP %ld%s",
		    id, r->op, r->code, why);
	return np_seterr(err, NP_EDATA, "scanner %s: %s: HTTP %ld%s", id,
	    r->op, r->code, why);
}

/* A transfer that failed with no HTTP status to go by. */
static int
curl_error(np_nessus *n, const req *r, np_error *err)
{
	const char *id = n->s->instance_id;
	const char *why = n->errbuf[0] ? n->errbuf : curl_easy_strerror(r->cc);

	switch (r->cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		/* Fail closed, and never retried: it will not get better. */
		return np_seterr(err, NP_ECONFIG, "scanner %s: %s: TLS "
		    "certificate not trusted (%s)", id, r->op, n->s->ca_file ?
		    "check ca_file" : "set ca_file");
	case CURLE_SSL_CACERT_BADFILE:
		return np_seterr(err, NP_ECONFIG, "scanner %s: cannot use "
		    "ca_file %s", id, n->s->ca_file ? n->s->ca_file : "");
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
		return np_seterr(err, NP_ECONFIG, "scanner %s: %s: bad url: %s",
		    id, r->op, why);
	case CURLE_OUT_OF_MEMORY:
		return np_seterr(err, NP_ESOFTWARE, "scanner %s: %s: %s", id,
		    r->op, why);
	default:
		return np_seterr(err, NP_ETEMP, "scanner %s: %s: %s", id, r->op,
		    why);
	}
}

static int
classify(np_nessus *n, req *r, np_error *err)
{
	const char *id = n->s->instance_id;

	if (r->cc == CURLE_ABORTED_BY_CALLBACK)
		return np_seterr(err, NP_ETEMP, "scanner %s: %s: interrupted",
		    id, r->op);
	if (r->ioerr)
		return np_seterr(err, NP_EIO, "scanner %s: %s: %s", id, r->op,
		    strerror(r->ioerr));
	if (r->toobig)
		return np_seterr(err, NP_EDATA, "scanner %s: %s: answer larger "
		    "than %d bytes", id, r->op, BODY_MAX);
	/* Essentials sends "412" and closes before the body: the status
	 * says what happened even though the transfer failed. */
	if (r->code >= 300)
		return http_error(n, r, err);
	if (r->cc != CURLE_OK || r->code < 200)
		return curl_error(n, r, err);
	if ((r->flags & F_JSON) &&
	    (r->json = json_loadb(r->buf ? r->buf : "", r->len, 0, NULL)) == NULL)
		return np_seterr(err, NP_EDATA, "scanner %s: %s: the answer is "
		    "not JSON", id, r->op);
	return 0;
}

/* One attempt at a call: one HTTP request, logged, classified. */
static int
perform(np_nessus *n, req *r, np_error *err)
{
	CURL *c = n->curl;
	const np_settings *st = &n->cfg->s;
	struct curl_slist *h = NULL;
	curl_off_t ra = 0;
	char url[1024];
	int64_t t0;

	req_reset(r);
	r->curl = c;
	snprintf(url, sizeof(url), "%s%s", n->base, r->path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST,
	    strcmp(r->method, "GET") && strcmp(r->method, "POST") ?
	    r->method : NULL);
	/* libcurl silently sends a request again when a reused connection
	 * gave no answer; a write could then be done twice behind our back
	 * (two scans, or a 409 for our own launch): writes get a fresh one. */
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, strcmp(r->method, "GET") ?
	    1L : 0L);
	if (r->body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
		h = header(h, "Content-Type: application/json");
	}
	if (n->api_token[0])
		h = header(h, "X-API-Token: %s", n->api_token);
	if (!(r->flags & F_NOAUTH) && n->apikeys)
		h = header(h, "X-ApiKeys: %s", n->apikeys);
	else if (!(r->flags & F_NOAUTH) && n->token[0])
		h = header(h, "X-Cookie: token=%s", n->token);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (r->flags & F_DOWNLOAD) {
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 0L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
		    (long)(st->request_timeout < 1000 ? 1 :
		    st->request_timeout / 1000));
	} else {
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)st->request_timeout);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 0L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 0L);
	}
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	n->errbuf[0] = '\0';
	t0 = np_now_ms();
	r->cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->code);
	if ((r->code == 429 || r->code == 503) &&
	    curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK)
		r->retry_after = (long)ra;
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	headers_free(h);
	if (r->code)
		np_info("scanner %s: %s -> %ld (%lld ms, %lld bytes)",
		    n->s->instance_id, r->op, r->code,
		    (long long)(np_now_ms() - t0), (long long)r->bytes);
	else
		np_info("scanner %s: %s -> %s (%lld ms)", n->s->instance_id,
		    r->op, curl_easy_strerror(r->cc),
		    (long long)(np_now_ms() - t0));
	return classify(n, r, err);
}

/*
 * The X-API-Token is a per-install constant in the web UI's script:
 * {key:"getApiToken",value:function(){return"<UUID>"}}.
 */
static void
find_api_token(const char *js, char out[64])
{
	const char *p, *end, *q;
	size_t len;

	out[0] = '\0';
	if (js == NULL || (p = strstr(js, "getApiToken")) == NULL ||
	    (end = strchr(p, '}')) == NULL)
		return;
	for (q = p; (q = strstr(q, "return")) != NULL && q < end; q += 6) {
		if (q[6] != '"' && q[6] != '\'')
			continue;
		len = strspn(q + 7, "0123456789abcdefABCDEF-");
		if (len > 0 && len < 64 && q[7 + len] == q[6]) {
			memcpy(out, q + 7, len);
			out[len] = '\0';
			return;
		}
	}
}

/* Nessus Manager has no X-API-Token and needs none: go on without. */
static int
fetch_api_token(np_nessus *n, np_error *err)
{
	req r;
	int rc;

	n->api_token[0] = '\0';
	req_init(&r, "GET", F_NOAUTH, "/nessus6.js");
	rc = perform(n, &r, err);
	if (rc && (rc == NP_ETEMP || r.code == 0)) {
		req_free(&r);
		return rc;
	}
	if (rc == 0)
		find_api_token(r.buf, n->api_token);
	if (n->api_token[0] == '\0')
		np_info("scanner %s: no X-API-Token in /nessus6.js; going on "
		    "without it", n->s->instance_id);
	req_free(&r);
	return 0;
}

/* The password goes into JSON by hand: jansson frees without wiping. */
static char *
login_body(const char *user, const char *pw)
{
	const char *parts[] = { "{\"username\":\"", user, "\",\"password\":\"",
	    pw, "\"}" };
	size_t cap = 6 * (strlen(user) + strlen(pw)) + 64, o = 0, i;
	char *out = np_xmalloc(cap);
	const unsigned char *s;

	for (i = 0; i < 5; i++)
		for (s = (const unsigned char *)parts[i]; *s; s++) {
			if (i % 2 == 1 && (*s == '"' || *s == '\\'))
				o += (size_t)snprintf(out + o, cap - o, "\\%c", *s);
			else if (i % 2 == 1 && *s < 0x20)
				o += (size_t)snprintf(out + o, cap - o, "\\u%04x", *s);
			else
				out[o++] = (char)*s;
		}
	out[o] = '\0';
	return out;
}

static int
login(np_nessus *n, np_error *err)
{
	char *body = login_body(n->s->username, n->password);
	const char *t;
	req r;
	int rc;

	req_init(&r, "POST", F_NOAUTH | F_JSON, "/session");
	r.body = body;
	rc = perform(n, &r, err);
	explicit_bzero(body, strlen(body));
	free(body);
	if (rc == 0) {
		t = json_string_value(json_object_get(r.json, "token"));
		/* It goes into a header: no CR, LF or other surprises. */
		if (t == NULL || *t == '\0' || strlen(t) >= sizeof(n->token) ||
		    t[strspn(t, "0123456789abcdefABCDEF-_")] != '\0')
			rc = np_seterr(err, NP_EDATA, "scanner %s: POST /session: "
			    "no session token in the answer", n->s->instance_id);
		else
			memcpy(n->token, t, strlen(t) + 1);
		if (t)	/* jansson's copy of the token: wiped, then freed */
			explicit_bzero((char *)t, strlen(t));
	}
	req_free(&r);
	return rc;
}

static int
ensure_login(np_nessus *n, int flags, np_error *err)
{
	int rc;

	if ((flags & F_NOAUTH) || n->apikeys || n->token[0])
		return 0;
	if (n->api_token[0] == '\0' && (rc = fetch_api_token(n, err)) != 0)
		return rc;
	return login(n, err);
}

static void
forget_session(np_nessus *n)
{
	explicit_bzero(n->token, sizeof(n->token));
	explicit_bzero(n->api_token, sizeof(n->api_token));
}

static int64_t
backoff(np_nessus *n, long k, const req *r)
{
	int64_t d = n->cfg->s.retry_backoff;
	uint32_t rnd = 0;

	if (r->retry_after > 0)
		return (int64_t)(r->retry_after < RETRY_AFTER_MAX ?
		    r->retry_after : RETRY_AFTER_MAX) * 1000;
	for (; k > 1 && d < BACKOFF_MAX; k--)
		d *= 2;
	if (d > BACKOFF_MAX)
		d = BACKOFF_MAX;
	/* Jitter, so that workers that failed together retry apart. */
	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (uint32_t)np_now_ms();
	return d + d * (int64_t)(rnd % 501) / 1000;
}

static bool
never_left(const req *r)
{
	return r->code == 0 && (r->cc == CURLE_COULDNT_CONNECT ||
	    r->cc == CURLE_COULDNT_RESOLVE_HOST);
}

/*
 * A call with its retries: logs in first when needed, logs in again
 * once when the session is refused, and retries transient failures
 * (when the flags allow) retry_attempts times in all.
 */
static int
call(np_nessus *n, req *r, np_error *err)
{
	const char *id = n->s->instance_id;
	long max = n->cfg->s.retry_attempts > 0 ? n->cfg->s.retry_attempts : 3;
	bool relogged = false, unsent;
	char msg[sizeof(err->msg)];
	int64_t delay;
	long k = 0;
	int rc;

	for (;;) {
		r->code = 0;
		if ((rc = ensure_login(n, r->flags, err)) != 0) {
			unsent = true;
		} else {
			rc = perform(n, r, err);
			unsent = never_left(r);
			if (r->code == 401 && n->password) {
				forget_session(n);	/* dead: no logout */
				if (!relogged) {
					np_info("scanner %s: %s: session refused; "
					    "logging in again", id, r->op);
					relogged = true;
					continue;
				}
			}
			if ((r->code == 404 && (r->flags & F_OK404)) ||
			    (r->code == 409 && ((r->flags & F_OK409) ||
			    ((r->flags & F_OK409_SENT) && r->sent))))
				return 0;
		}
		if (rc != NP_ETEMP)
			return rc;
		k++;
		r->sent = r->sent || !unsent;
		if (np_interrupted)
			return np_seterr(err, NP_ETEMP, "scanner %s: %s: "
			    "interrupted", id, r->op);
		if (!(r->flags & F_RETRY) && !((r->flags & F_UNSENT) && unsent))
			return rc;
		memcpy(msg, err->msg, sizeof(msg));
		if (k >= max)
			return np_seterr(err, rc, "%.400s (gave up after %ld "
			    "attempts)", msg, k);
		delay = backoff(n, k, r);
		np_info("%s; attempt %ld of %ld, retrying in %lld ms", msg, k,
		    max, (long long)delay);
		np_sleep_ms(delay);
		if (np_interrupted)
			return np_seterr(err, NP_ETEMP, "scanner %s: %s: "
			    "interrupted", id, r->op);
	}
}

/* Keys and passwords go into headers: no control characters. */
static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/*
 * libcurl's (and its TLS library's) one-time start, done by a process
 * that forks clients (np-worker) so that each child does not do it again.
 */
void
np_nessus_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

np_nessus *
np_nessus_open(const np_config *cfg, const np_scanner *s, np_error *err)
{
	np_nessus *n = np_xcalloc(1, sizeof(*n));
	const char *id = s->instance_id;
	char *secret = NULL;
	size_t len;
	CURL *c;

	n->cfg = cfg;
	n->s = s;
	n->base = np_xstrdup(s->url);
	for (len = strlen(n->base); len > 0 && n->base[len - 1] == '/'; )
		n->base[--len] = '\0';
	if (s->access_key) {
		if (np_config_secret(cfg, s, "secret_key", &secret, err) != 0)
			goto fail;
		if (!printable(s->access_key) || !printable(secret) ||
		    strlen(s->access_key) + strlen(secret) > 400) {
			np_seterr(err, NP_ECONFIG, "scanner %s: access_key or "
			    "secret_key is not a key", id);
			goto fail;
		}
		len = strlen(s->access_key) + strlen(secret) + 32;
		n->apikeys = np_xmalloc(len);
		snprintf(n->apikeys, len, "accessKey=%s; secretKey=%s",
		    s->access_key, secret);
	} else if (np_config_secret(cfg, s, "password", &n->password, err) != 0)
		goto fail;
	if ((n->curl = c = curl_easy_init()) == NULL) {
		np_seterr(err, NP_ESOFTWARE, "scanner %s: libcurl failed to "
		    "start", id);
		goto fail;
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, n->errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)cfg->s.connect_timeout);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "np/" NP_VERSION);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	if (s->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file);
	if (s->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
		np_warn("scanner %s: TLS verification is off (insecure: true)",
		    id);
	}
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	return n;
fail:
	if (secret) {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	np_nessus_close(n);
	return NULL;
}

void
np_nessus_close(np_nessus *n)
{
	np_error e;
	req r;

	if (n == NULL)
		return;
	if (n->token[0]) {	/* a session we opened: close it, best effort */
		req_init(&r, "DELETE", 0, "/session");
		perform(n, &r, &e);
		req_free(&r);
	}
	if (n->curl)
		curl_easy_cleanup(n->curl);
	if (n->apikeys)
		explicit_bzero(n->apikeys, strlen(n->apikeys));
	if (n->password)
		explicit_bzero(n->password, strlen(n->password));
	free(n->apikeys);
	free(n->password);
	free(n->base);
	explicit_bzero(n, sizeof(*n));
	free(n);
}

static int
bad_answer(np_nessus *n, const req *r, const char *what, np_error *err)
{
	return np_seterr(err, NP_EDATA, "scanner %s: %s: no %s in the answer",
	    n->s->instance_id, r->op, what);
}

/* Copies a string field (a status word, a uuid) of at most cap - 1 bytes. */
static int
word(np_nessus *n, const req *r, json_t *v, const char *what, char *out,
    size_t cap, np_error *err)
{
	const char *s = json_string_value(v);

	if (s == NULL || *s == '\0' || strlen(s) >= cap)
		return bad_answer(n, r, what, err);
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static long
id_of(json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) > 0 &&
	    json_integer_value(v) <= LONG_MAX ? (long)json_integer_value(v) : 0;
}

/* A call whose answer says nothing we need (launch, actions, delete). */
static int
act(np_nessus *n, const char *method, int flags, const char *path,
    np_error *err)
{
	req r;
	int rc;

	req_init(&r, method, flags, "%s", path);
	r.body = strcmp(method, "POST") ? NULL : "{}";
	rc = call(n, &r, err);
	req_free(&r);
	return rc;
}

/* GET PATH and copy its "status" word. */
static int
get_status(np_nessus *n, int flags, const char *path, char out[32],
    np_error *err)
{
	req r;
	int rc;

	req_init(&r, "GET", flags | F_RETRY | F_JSON, "%s", path);
	if ((rc = call(n, &r, err)) == 0)
		rc = word(n, &r, json_object_get(r.json, "status"), "status",
		    out, 32, err);
	req_free(&r);
	return rc;
}

int
np_nessus_server_status(np_nessus *n, char status[32], np_error *err)
{
	return get_status(n, F_NOAUTH, "/server/status", status, err);
}

int
np_nessus_template(np_nessus *n, const char *name, char uuid[128],
    np_error *err)
{
	json_t *t;
	size_t i;
	req r;
	int rc;

	if (n->tmpl_uuid[0] && strcmp(n->tmpl_name, name) == 0) {
		memcpy(uuid, n->tmpl_uuid, sizeof(n->tmpl_uuid));
		return 0;
	}
	req_init(&r, "GET", F_RETRY | F_JSON, "/editor/scan/templates");
	if ((rc = call(n, &r, err)) == 0)
		rc = np_seterr(err, NP_ENOINPUT, "scanner %s: no scan template "
		    "named '%s'", n->s->instance_id, name);
	json_array_foreach(json_object_get(r.json, "templates"), i, t)
		if (np_json_str(t, "name") && !strcmp(np_json_str(t, "name"), name)) {
			rc = word(n, &r, json_object_get(t, "uuid"), "template uuid",
			    uuid, 128, err);
			break;
		}
	if (rc == 0 && strlen(name) < sizeof(n->tmpl_name)) {
		memcpy(n->tmpl_name, name, strlen(name) + 1);
		memcpy(n->tmpl_uuid, uuid, sizeof(n->tmpl_uuid));
	}
	req_free(&r);
	return rc;
}

/*
 * Not idempotent: retried only when the request never left. After any
 * other failure the scan may exist; the caller looks for it with
 * np_nessus_find (its name carries a unique tag) before trying again.
 */
int
np_nessus_create(np_nessus *n, json_t *body, long *scan_id, np_error *err)
{
	char *s = np_json_compact(body), msg[sizeof(err->msg)];
	req r;
	int rc;

	req_init(&r, "POST", F_UNSENT | F_JSON, "/scans");
	r.body = s;
	rc = call(n, &r, err);
	explicit_bzero(s, strlen(s));	/* it may hold SSH credentials */
	free(s);
	if (rc == NP_ETEMP && r.sent) {
		memcpy(msg, err->msg, sizeof(msg));
		np_seterr(err, rc, "%.380s (the scan may have been created: "
		    "look for it before creating it again)", msg);
	}
	if (rc == 0 && (*scan_id = id_of(json_object_get(
	    json_object_get(r.json, "scan"), "id"))) == 0)
		rc = bad_answer(n, &r, "scan.id", err);
	req_free(&r);
	return rc;
}

int
np_nessus_find(np_nessus *n, const char *name_part, long *scan_id,
    np_error *err)
{
	const char *name;
	long id, best = 0;
	json_t *sc;
	size_t i;
	req r;
	int rc;

	req_init(&r, "GET", F_RETRY | F_JSON, "/scans");
	rc = call(n, &r, err);
	/* "scans" is null when there are none; trash (folder 2) is gone. */
	json_array_foreach(json_object_get(r.json, "scans"), i, sc) {
		name = np_json_str(sc, "name");
		id = id_of(json_object_get(sc, "id"));
		if (name && strstr(name, name_part) && id > best &&
		    json_integer_value(json_object_get(sc, "folder_id")) != 2)
			best = id;
	}
	req_free(&r);
	if (rc == 0 && best == 0)
		rc = np_seterr(err, NP_ENOINPUT, "scanner %s: no scan named "
		    "like '%s'", n->s->instance_id, name_part);
	if (rc == 0)
		*scan_id = best;
	return rc;
}

int
np_nessus_launch(np_nessus *n, long scan_id, np_error *err)
{
	char path[64];

	/* A 409 after an attempt whose answer was lost: ours launched it. */
	snprintf(path, sizeof(path), "/scans/%ld/launch", scan_id);
	return act(n, "POST", F_RETRY | F_OK409_SENT, path, err);
}

int
np_nessus_status(np_nessus *n, long scan_id, np_scan_status *st,
    np_error *err)
{
	json_t *info, *h, *v;
	int64_t cur = 0, tot = 0, p;
	size_t i;
	req r;
	int rc;

	memset(st, 0, sizeof(*st));
	req_init(&r, "GET", F_RETRY | F_JSON, "/scans/%ld", scan_id);
	rc = call(n, &r, err);
	info = json_object_get(r.json, "info");
	if (rc == 0)
		rc = word(n, &r, json_object_get(info, "status"), "info.status",
		    st->status, sizeof(st->status), err);
	if (rc == 0 && np_json_str(info, "uuid") &&
	    strlen(np_json_str(info, "uuid")) < sizeof(st->uuid))
		strcpy(st->uuid, np_json_str(info, "uuid"));
	/* As the web UI does: over all hosts, a host's total 100 if unsaid. */
	json_array_foreach(json_object_get(r.json, "hosts"), i, h) {
		v = json_object_get(h, "scanprogresscurrent");
		cur += json_is_number(v) ? (int64_t)json_number_value(v) : 0;
		v = json_object_get(h, "scanprogresstotal");
		tot += json_is_number(v) ? (int64_t)json_number_value(v) : 100;
	}
	p = tot > 0 ? 100 * cur / tot : 0;
	st->progress = p < 0 ? 0 : p > 100 ? 100 : (int)p;
	req_free(&r);
	return rc;
}

int
np_nessus_action(np_nessus *n, long scan_id, const char *what,
    np_error *err)
{
	char path[64];

	if (strcmp(what, "stop") && strcmp(what, "pause") &&
	    strcmp(what, "resume"))
		return np_seterr(err, NP_EUSAGE, "scanner %s: unknown scan "
		    "action '%s'", n->s->instance_id, what);
	/* Stopping a scan that is not running leaves it stopped: done. */
	snprintf(path, sizeof(path), "/scans/%ld/%s", scan_id, what);
	return act(n, "POST", F_RETRY | (strcmp(what, "stop") ? 0 : F_OK409),
	    path, err);
}

int
np_nessus_export(np_nessus *n, long scan_id, long *file, np_error *err)
{
	const char *tok;
	req r;
	int rc;

	/* A retried export at worst leaves an extra report file behind. */
	req_init(&r, "POST", F_RETRY | F_JSON, "/scans/%ld/export", scan_id);
	r.body = "{\"format\":\"nessus\"}";
	if ((rc = call(n, &r, err)) == 0 &&
	    (*file = id_of(json_object_get(r.json, "file"))) == 0)
		rc = bad_answer(n, &r, "file", err);
	tok = np_json_str(r.json, "token");
	n->export_token[0] = '\0';
	if (rc == 0 && tok && strlen(tok) < sizeof(n->export_token))
		strcpy(n->export_token, tok);
	req_free(&r);
	return rc;
}

int
np_nessus_export_status(np_nessus *n, long scan_id, long file,
    char status[32], np_error *err)
{
	char path[96];

	snprintf(path, sizeof(path), "/scans/%ld/export/%ld/status", scan_id,
	    file);
	return get_status(n, 0, path, status, err);
}

/*
 * Streams the report to PATH.part next to PATH, then fsync, rename and
 * fsync of the directory: PATH is either absent or complete. A transient
 * failure starts the download again from the beginning.
 */
int
np_nessus_download(np_nessus *n, long scan_id, long file, const char *path,
    np_error *err)
{
	char part[PATH_MAX], dir[PATH_MAX], *slash;
	FILE *f;
	req r;
	int rc, fd;

	if (snprintf(part, sizeof(part), "%s.part", path) >= (int)sizeof(part))
		return np_seterr(err, NP_EUSAGE, "%s: path too long", path);
	if ((fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		return np_seterr(err, errno == EACCES ? NP_EPERM : NP_EIO,
		    "%s: %s", part, strerror(errno));
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		unlink(part);
		return np_seterr(err, NP_ESOFTWARE, "%s: out of memory", part);
	}
	req_init(&r, "GET", F_RETRY | F_DOWNLOAD,
	    "/scans/%ld/export/%ld/download", scan_id, file);
	r.out = f;
	rc = call(n, &r, err);
	if (rc == 0 && (fflush(f) == EOF || fsync(fd) == -1))
		rc = np_seterr(err, NP_EIO, "%s: %s", part, strerror(errno));
	r.out = NULL;
	req_free(&r);
	if (fclose(f) == EOF && rc == 0)
		rc = np_seterr(err, NP_EIO, "%s: %s", part, strerror(errno));
	if (rc == 0 && rename(part, path) == -1)
		rc = np_seterr(err, NP_EIO, "%s: %s", path, strerror(errno));
	if (rc) {
		unlink(part);
		return rc;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else
		slash[slash == dir ? 1 : 0] = '\0';	/* "/x" -> "/" */
	if (np_fsync_dir(dir) == -1)
		return np_seterr(err, NP_EIO, "%s: fsync: %s", dir, strerror(errno));
	return 0;
}

int
np_nessus_delete(np_nessus *n, long scan_id, np_error *err)
{
	char path[64];

	snprintf(path, sizeof(path), "/scans/%ld", scan_id);
	return act(n, "DELETE", F_RETRY | F_OK404, path, err);
}
