/*
 * redis.c: the connection to Redis. NP_REDIS_URL (or the config) names
 * it: redis://[user:password@]host[:port][/db] or
 * unix://[user:password@]/path[?db=N]. Connect and command timeouts are
 * always set, so a dead server fails a command in bounded time with
 * status 75 instead of hanging it. Written against hiredis 0.14.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static int
unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '%' && i + 2 < n &&
		    isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char hex[3] = { s[i + 1], s[i + 2], 0 };
			c = (int)strtol(hex, NULL, 16);
			i += 2;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

static int
userinfo(const char *p, const char *at, np_redis_url *u)
{
	const char *colon = memchr(p, ':', (size_t)(at - p));

	if (colon == NULL)	/* redis://password@host, as redis-cli takes */
		return unescape(p, (size_t)(at - p), u->password,
		    sizeof(u->password));
	if (unescape(p, (size_t)(colon - p), u->user, sizeof(u->user)) == -1)
		return -1;
	return unescape(colon + 1, (size_t)(at - colon - 1), u->password,
	    sizeof(u->password));
}

int
np_redis_parse_url(const char *url, np_redis_url *u, np_error *err)
{
	const char *p, *at, *end;
	long v;

	memset(u, 0, sizeof(*u));
	u->port = 6379;
	if (strncmp(url, "unix://", 7) == 0) {
		p = url + 7;
		if ((at = strchr(p, '@')) != NULL) {
			if (userinfo(p, at, u) == -1)
				goto bad;
			p = at + 1;
		}
		if (*p != '/')
			goto bad;
		end = strchr(p, '?');
		if ((size_t)(end ? end - p : (long)strlen(p)) >= sizeof(u->path))
			goto bad;
		memcpy(u->path, p, end ? (size_t)(end - p) : strlen(p));
		if (end) {
			if (strncmp(end, "?db=", 4) != 0 ||
			    np_parse_int(end + 4, 0, 1000000, &v) == -1)
				goto bad;
			u->db = (int)v;
		}
		return 0;
	}
	if (strncmp(url, "redis://", 8) != 0) {
		if (strncmp(url, "rediss://", 9) == 0)
			return np_seterr(err, NP_ECONFIG, "redis URL: TLS "
			    "(rediss://) is not supported; use a unix socket "
			    "or a TLS tunnel");
		goto bad;
	}
	p = url + 8;
	end = p + strcspn(p, "/");
	if ((at = memchr(p, '@', (size_t)(end - p))) != NULL) {
		if (userinfo(p, at, u) == -1)
			goto bad;
		p = at + 1;
	}
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));
		if (rb == NULL || (size_t)(rb - p - 1) >= sizeof(u->host))
			goto bad;
		memcpy(u->host, p + 1, (size_t)(rb - p - 1));
		p = rb + 1;
	} else {
		size_t hl = strcspn(p, ":/");
		if (hl >= sizeof(u->host))
			goto bad;
		memcpy(u->host, p, hl);
		p += hl;
	}
	if (u->host[0] == '\0')
		strcpy(u->host, "127.0.0.1");
	if (*p == ':') {
		char port[8] = { 0 };
		size_t pl = (size_t)(end - p - 1);
		if (pl == 0 || pl >= sizeof(port))
			goto bad;
		memcpy(port, p + 1, pl);
		if (np_parse_int(port, 1, 65535, &v) == -1)
			goto bad;
		u->port = (int)v;
	} else if (p != end)
		goto bad;
	if (*end == '/' && end[1]) {
		if (np_parse_int(end + 1, 0, 1000000, &v) == -1)
			goto bad;
		u->db = (int)v;
	}
	return 0;
bad:
	return np_seterr(err, NP_ECONFIG, "bad redis URL (expected "
	    "redis://[user:password@]host:port/db or unix:///path)");
}

static void
where(const np_redis_url *u, char *buf, size_t n)
{
	if (u->path[0])
		snprintf(buf, n, "unix://%s", u->path);
	else
		snprintf(buf, n, "%s:%d", u->host, u->port);
}

static int
transient(const char *msg)
{
	static const char *const words[] = { "LOADING", "BUSY", "MASTERDOWN",
	    "READONLY", "OOM", "TRYAGAIN", "CLUSTERDOWN", NULL };
	const char *const *w;

	for (w = words; *w; w++)
		if (strncmp(msg, *w, strlen(*w)) == 0)
			return 1;
	return 0;
}

/* Turns a failed reply (or none) into an error: 75 when retrying may help. */
int
np_redis_reply_error(redisContext *c, redisReply *r, np_error *err)
{
	if (r == NULL)
		return np_seterr(err, NP_ETEMP, "redis: %s",
		    c->errstr[0] ? c->errstr : "connection lost");
	if (r->type != REDIS_REPLY_ERROR)
		return 0;
	if (!strncmp(r->str, "NOAUTH", 6) || !strncmp(r->str, "WRONGPASS", 9))
		return np_seterr(err, NP_ECONFIG, "redis: %s (set the password "
		    "in NP_REDIS_URL)", r->str);
	if (!strncmp(r->str, "NOPERM", 6))
		return np_seterr(err, NP_EPERM, "redis: %s", r->str);
	return np_seterr(err, transient(r->str) ? NP_ETEMP : NP_ESOFTWARE,
	    "redis: %s", r->str);
}

static redisReply *
checked(redisContext *c, redisReply *r, np_error *err)
{
	if (np_redis_reply_error(c, r, err)) {
		if (r)
			freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* A caller between reconnects (np-worker, np-scan) has no context. */
static redisReply *
unconnected(np_error *err)
{
	np_seterr(err, NP_ETEMP, "redis: not connected");
	return NULL;
}

redisReply *
np_redis_cmd(redisContext *c, np_error *err, const char *fmt, ...)
{
	redisReply *r;
	va_list ap;

	if (c == NULL)
		return unconnected(err);
	va_start(ap, fmt);
	r = redisvCommand(c, fmt, ap);
	va_end(ap);
	return checked(c, r, err);
}

redisReply *
np_redis_argv(redisContext *c, np_error *err, int argc, const char **argv,
    const size_t *len)
{
	if (c == NULL)
		return unconnected(err);
	return checked(c, redisCommandArgv(c, argc, argv, len), err);
}

/*
 * EVAL rather than EVALSHA: Redis caches the compiled script by its
 * hash either way, and np's commands are short-lived.
 */
int
np_redis_eval(redisContext *c, const char *script, int nkeys, int argc,
    const char **argv, redisReply **out, np_error *err)
{
	const char **av = np_xmalloc((size_t)(argc + 3) * sizeof(*av));
	char nk[16];
	int i;

	snprintf(nk, sizeof(nk), "%d", nkeys);
	av[0] = "EVAL";
	av[1] = script;
	av[2] = nk;
	for (i = 0; i < argc; i++)
		av[i + 3] = argv[i];
	*out = np_redis_argv(c, err, argc + 3, av, NULL);
	free(av);
	return *out ? 0 : err->code;
}

int
np_redis_connect(const np_config *cfg, redisContext **out, np_error *err)
{
	np_redis_url u;
	struct timeval tv;
	redisContext *c;
	redisReply *r;
	char w[300];
	int rc;

	*out = NULL;
	if ((rc = np_redis_parse_url(cfg->redis_url, &u, err)) != 0)
		return rc;
	tv.tv_sec = cfg->s.redis_timeout / 1000;
	tv.tv_usec = (cfg->s.redis_timeout % 1000) * 1000;
	where(&u, w, sizeof(w));
	c = u.path[0] ? redisConnectUnixWithTimeout(u.path, tv) :
	    redisConnectWithTimeout(u.host, u.port, tv);
	if (c == NULL)
		return np_seterr(err, NP_ETEMP, "redis %s: out of memory", w);
	if (c->err) {
		rc = np_seterr(err, NP_ETEMP, "redis %s: %s", w, c->errstr);
		redisFree(c);
		return rc;
	}
	redisSetTimeout(c, tv);
	if (u.password[0]) {
		r = u.user[0] ?
		    redisCommand(c, "AUTH %s %s", u.user, u.password) :
		    redisCommand(c, "AUTH %s", u.password);
		explicit_bzero(u.password, sizeof(u.password));
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			rc = np_seterr(err, r ? NP_ECONFIG : NP_ETEMP,
			    "redis %s: authentication failed: %s", w,
			    r ? r->str : c->errstr);
			if (r)
				freeReplyObject(r);
			redisFree(c);
			return rc;
		}
		freeReplyObject(r);
	}
	if (u.db) {
		if ((r = np_redis_cmd(c, err, "SELECT %d", u.db)) == NULL) {
			redisFree(c);
			return err->code;
		}
		freeReplyObject(r);
	}
	*out = c;
	return 0;
}

redisContext *
np_redis_open(const np_config *cfg)
{
	redisContext *c;
	np_error err;

	if (np_redis_connect(cfg, &c, &err) != 0)
		np_die_err(&err);
	return c;
}

/*
 * Checks that the server's settings cannot lose queued tasks: an
 * evicting maxmemory-policy drops keys under memory pressure, and no
 * persistence at all loses everything on a restart. Appends one line per
 * problem to *problems (a JSON array). Servers that hide CONFIG are
 * reported as unknown, not as a problem.
 */
int
np_redis_check_settings(redisContext *c, json_t *problems, np_error *err)
{
	redisReply *r;
	const char *policy = NULL, *aof = NULL, *save = NULL;
	size_t i;

	r = redisCommand(c, "CONFIG GET *");
	if (r == NULL)
		return np_seterr(err, NP_ETEMP, "redis: %s", c->errstr);
	if (r->type != REDIS_REPLY_ARRAY) {
		freeReplyObject(r);
		return 0;
	}
	for (i = 0; i + 1 < r->elements; i += 2) {
		const char *k = r->element[i]->str, *v = r->element[i + 1]->str;
		if (!strcmp(k, "maxmemory-policy"))
			policy = v;
		else if (!strcmp(k, "appendonly"))
			aof = v;
		else if (!strcmp(k, "save"))
			save = v;
	}
	if (policy && strcmp(policy, "noeviction") != 0)
		json_array_append_new(problems, json_sprintf("redis "
		    "maxmemory-policy is %s: under memory pressure Redis may "
		    "evict queued tasks (set noeviction)", policy));
	if (aof && save && !strcmp(aof, "no") && *save == '\0')
		json_array_append_new(problems, json_string("redis has no "
		    "persistence (appendonly no, save \"\"): a restart loses "
		    "every queued task (set appendonly yes)"));
	freeReplyObject(r);
	return 0;
}
