/*
 * index.c: the task index in Redis, so that a filtered list over many
 * tasks reads Redis, not every task folder.
 *
 *   np:tasks   ZSET  task id -> creation time (ms)
 *   np:tindex  HASH  task id -> "status\tpool\tscan_type\ttargets"
 *   np:states  HASH  "pool\tstatus" -> number of tasks (for np-metrics)
 *
 * The counts move in the same script as the line, so they stay exactly
 * what the index holds.
 *
 * task.json stays the record: the index only narrows the search, and
 * np-status re-checks each match against its task.json.
 */
#include <stdlib.h>
#include <string.h>

#include "np.h"

#define PAGE 1000

char *
np_index_line(json_t *task)
{
	const char *st = np_json_str(task, "status");
	const char *pool = np_json_str(task, "scanner_pool");
	const char *type = np_json_str(task, "scan_type");
	const char *tg = np_json_str(task, "targets");
	char *s;

	if (asprintf(&s, "%s\t%s\t%s\t%s", st ? st : "", pool ? pool : "",
	    type ? type : "", tg ? tg : "") == -1)
		np_die(NP_ESOFTWARE, "out of memory");
	return s;
}

/* The pool and status of an index line, as a count key "pool\tstatus". */
#define STATE_KEY_LUA \
"local function sk(line)\n" \
"  local st, pool = string.match(line, '^([^\t]*)\t([^\t]*)')\n" \
"  return pool .. '\t' .. st\n" \
"end\n"

/* KEYS: tasks, tindex, states. ARGV: id, created, line. */
static const char put_lua[] = STATE_KEY_LUA
"local old = redis.call('HGET', KEYS[2], ARGV[1])\n"
"if old == ARGV[3] then return 0 end\n"
"if old then redis.call('HINCRBY', KEYS[3], sk(old), -1) end\n"
"redis.call('HINCRBY', KEYS[3], sk(ARGV[3]), 1)\n"
"redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])\n"
"redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])\n"
"return 1\n";

/* KEYS: tasks, tindex, states. ARGV: id. */
static const char del_lua[] = STATE_KEY_LUA
"local old = redis.call('HGET', KEYS[2], ARGV[1])\n"
"if old then redis.call('HINCRBY', KEYS[3], sk(old), -1) end\n"
"redis.call('HDEL', KEYS[2], ARGV[1])\n"
"return redis.call('ZREM', KEYS[1], ARGV[1])\n";

/* Appends the index update to the pipeline; returns the replies owed. */
int
np_index_append(redisContext *c, const np_config *cfg, json_t *task)
{
	char k[3][NP_KEYMAX], created[24];
	const char *argv[9];
	int64_t ms = 0;
	char *line = np_index_line(task);

	np_parse_rfc3339(np_json_str(task, "created_at"), &ms);
	snprintf(created, sizeof(created), "%lld", (long long)ms);
	np_key_global(k[0], cfg, "tasks");
	np_key_global(k[1], cfg, "tindex");
	np_key_global(k[2], cfg, "states");
	argv[0] = "EVAL", argv[1] = put_lua, argv[2] = "3";
	argv[3] = k[0], argv[4] = k[1], argv[5] = k[2];
	argv[6] = np_json_str(task, "task_id"), argv[7] = created;
	argv[8] = line;
	redisAppendCommandArgv(c, 9, argv, NULL);
	free(line);
	return 1;
}

/* Removes a task from the index (its record is gone). */
int
np_index_del(redisContext *c, const np_config *cfg, const char *id,
    np_error *err)
{
	char k[3][NP_KEYMAX];
	const char *argv[4] = { k[0], k[1], k[2], id };
	redisReply *r;
	int rc;

	np_key_global(k[0], cfg, "tasks");
	np_key_global(k[1], cfg, "tindex");
	np_key_global(k[2], cfg, "states");
	if ((rc = np_redis_eval(c, del_lua, 3, 4, argv, &r, err)) == 0)
		freeReplyObject(r);
	return rc;
}

/* Reads n pipelined replies; the first failure is the error. */
int
np_replies(redisContext *c, int n, np_error *err)
{
	redisReply *r;
	int i, rc = 0;

	for (i = 0; i < n; i++) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK)
			r = NULL;
		if (rc == 0)
			rc = np_redis_reply_error(c, r, err);
		if (r)
			freeReplyObject(r);
		else
			return rc ? rc : np_seterr(err, NP_ETEMP, "redis: %s",
			    c->errstr);
	}
	return rc;
}

int
np_index_put(redisContext *c, const np_config *cfg, json_t *task,
    np_error *err)
{
	return np_replies(c, np_index_append(c, cfg, task), err);
}

static bool
match(const np_index_filter *f, char *line)
{
	char *st = line, *pool, *type, *tg;
	np_target *t;
	size_t nt;
	bool ok;

	if ((pool = strchr(st, '\t')) == NULL)
		return false;
	*pool++ = '\0';
	if ((type = strchr(pool, '\t')) == NULL)
		return false;
	*type++ = '\0';
	if ((tg = strchr(type, '\t')) == NULL)
		return false;
	*tg++ = '\0';
	if (f->status && strcmp(f->status, st) != 0)
		return false;
	if (f->pool && strcmp(f->pool, pool) != 0)
		return false;
	if (f->ntargets == 0)
		return true;
	if (np_targets_parse(tg, &t, &nt, NULL) != 0)
		return false;
	ok = np_targets_overlap(f->targets, f->ntargets, t, nt);
	np_targets_free(t, nt);
	return ok;
}

/*
 * Task ids matching f, newest first, at most f->limit. Reads the index
 * in pages (two round trips each) and stops as soon as it has enough.
 */
int
np_index_query(redisContext *c, const np_config *cfg,
    const np_index_filter *f, char ***ids, size_t *n, np_error *err)
{
	char zk[NP_KEYMAX], hk[NP_KEYMAX];
	redisReply *page, *info;
	long start = 0;
	size_t i;

	*ids = NULL;
	*n = 0;
	np_key_global(zk, cfg, "tasks");
	np_key_global(hk, cfg, "tindex");
	for (;;) {
		const char **argv;

		page = np_redis_cmd(c, err, "ZREVRANGE %s %ld %ld", zk, start,
		    start + PAGE - 1);
		if (page == NULL)
			return err->code;
		if (page->elements == 0) {
			freeReplyObject(page);
			return 0;
		}
		argv = np_xcalloc(page->elements + 2, sizeof(*argv));
		argv[0] = "HMGET";
		argv[1] = hk;
		for (i = 0; i < page->elements; i++)
			argv[i + 2] = page->element[i]->str;
		info = np_redis_argv(c, err, (int)page->elements + 2, argv, NULL);
		free(argv);
		if (info == NULL) {
			freeReplyObject(page);
			return err->code;
		}
		for (i = 0; i < page->elements && (long)*n < f->limit; i++) {
			redisReply *l = info->element[i];
			if (l->type != REDIS_REPLY_STRING || !match(f, l->str))
				continue;
			*ids = np_xrealloc(*ids, (*n + 1) * sizeof(**ids));
			(*ids)[(*n)++] = np_xstrdup(page->element[i]->str);
		}
		start += PAGE;
		i = page->elements;
		freeReplyObject(page);
		freeReplyObject(info);
		if ((long)*n >= f->limit || i < PAGE)
			return 0;
	}
}
