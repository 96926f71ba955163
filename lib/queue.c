/*
 * queue.c: putting tasks in line and reading the line.
 *
 *   np:{P}:queue       LIST  task ids; LPUSH in, taken from the right: FIFO
 *   np:{P}:iq:<inst>   LIST  tasks that must run on one scanner
 *   np:{P}:wake        LIST  a token per push, so idle workers BLPOP it
 *   np:{P}:dlq         ZSET  dead tasks -> time of death
 *   np:{P}:durations   LIST  seconds of the pool's recent finished scans
 */
#include <stdlib.h>
#include <string.h>

#include "np.h"

/* KEYS: list, wake. ARGV: task id. Returns the list's length. */
static const char push_lua[] =
"local n = redis.call('LPUSH', KEYS[1], ARGV[1])\n"
"redis.call('LPUSH', KEYS[2], '1')\n"
"redis.call('LTRIM', KEYS[2], 0, 63)\n"
"return n\n";

/*
 * Appends the queueing of a task (its record must already be written:
 * the record first, then the schedule) and its index update to the
 * pipeline. Returns the number of replies owed to np_queue_collect.
 */
int
np_queue_append(redisContext *c, const np_config *cfg, json_t *task)
{
	const char *pool = np_json_str(task, "scanner_pool");
	const char *inst = np_json_str(task, "scanner_instance");
	bool pinned = json_is_true(json_object_get(task, "targeted_instance"));
	char list[NP_KEYMAX], wake[NP_KEYMAX];
	const char *argv[6];

	if (pinned && inst)
		np_key_inst(list, cfg, pool, "iq", inst);
	else
		np_key_pool(list, cfg, pool, "queue");
	np_key_pool(wake, cfg, pool, "wake");
	argv[0] = "EVAL";
	argv[1] = push_lua;
	argv[2] = "2";
	argv[3] = list;
	argv[4] = wake;
	argv[5] = np_json_str(task, "task_id");
	redisAppendCommandArgv(c, 6, argv, NULL);
	return 1 + np_index_append(c, cfg, task);
}

/* Reads what np_queue_append owes; *position is the place in line, 1 = next. */
int
np_queue_collect(redisContext *c, json_t *task, int owed, long *position,
    np_error *err)
{
	np_error ierr = { 0 };
	redisReply *r;
	int rc;

	if (redisGetReply(c, (void **)&r) != REDIS_OK)
		r = NULL;
	if ((rc = np_redis_reply_error(c, r, err)) == 0)
		*position = (long)r->integer;
	if (r == NULL)
		return rc;
	freeReplyObject(r);
	/* Once queued, the task stands: the index only narrows searches,
	 * and a lagging index is re-checked against the record anyway. */
	if (np_replies(c, owed - 1, &ierr) != 0) {
		if (rc == 0)
			np_warn("task %s: queued, but the task index was not "
			    "updated: %s", np_json_str(task, "task_id"), ierr.msg);
		else if (ierr.code == NP_ETEMP && c->err)
			rc = np_seterr(err, NP_ETEMP, "%s", ierr.msg);
	}
	return rc;
}

int
np_queue_push(redisContext *c, const np_config *cfg, json_t *task,
    long *position, np_error *err)
{
	return np_queue_collect(c, task, np_queue_append(c, cfg, task),
	    position, err);
}

/*
 * The pool's queue figures; capacity and active count the enabled
 * scanners, or only the scanner 'only' when it is given.
 */
int
np_queue_stats_get(redisContext *c, const np_config *cfg, const np_pool *p,
    const np_scanner *only, np_queue_stats *st, np_error *err)
{
	char k[4][NP_KEYMAX];
	redisReply *r[4] = { 0 };
	np_pool_view v;
	size_t i;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	np_key_pool(k[0], cfg, p->name, "queue");
	np_key_pool(k[1], cfg, p->name, "dlq");
	np_key_pool(k[2], cfg, p->name, "claims");
	np_key_pool(k[3], cfg, p->name, "durations");
	redisAppendCommand(c, "LLEN %s", k[0]);
	redisAppendCommand(c, "ZCARD %s", k[1]);
	redisAppendCommand(c, "ZCARD %s", k[2]);
	redisAppendCommand(c, "LRANGE %s 0 99", k[3]);
	for (i = 0; i < 4; i++) {
		if (redisGetReply(c, (void **)&r[i]) != REDIS_OK)
			r[i] = NULL;
		if (rc == 0)
			rc = np_redis_reply_error(c, r[i], err);
		if (r[i] == NULL)
			break;
	}
	if (rc == 0) {
		st->depth = (long)r[0]->integer;
		st->dlq = (long)r[1]->integer;
		st->processing = (long)r[2]->integer;
		for (i = 0; i < r[3]->elements; i++)
			st->mean_seconds += atof(r[3]->element[i]->str);
		st->mean_seconds = r[3]->elements ?
		    st->mean_seconds / (double)r[3]->elements :
		    (double)cfg->s.default_scan_seconds / 1000.0;
	}
	for (i = 0; i < 4; i++)
		if (r[i])
			freeReplyObject(r[i]);
	if (rc)
		return rc;
	if ((rc = np_lease_view(c, cfg, p, &v, err)) != 0)
		return rc;
	for (i = 0; i < v.n; i++) {
		if (!v.v[i].scanner->enabled || (only && v.v[i].scanner != only))
			continue;
		st->capacity += v.v[i].scanner->max_concurrent_scans;
		st->active += v.v[i].active;
	}
	np_pool_view_free(&v);
	return 0;
}

/*
 * Seconds until a task at this place in line starts, documented in
 * np-enqueue(1): every full round of the pool's capacity ahead of it
 * costs one mean scan duration. -1 when the pool has no capacity.
 */
long
np_estimate_wait(const np_queue_stats *st, long position)
{
	long ahead = position > 0 ? position - 1 : 0;

	if (st->capacity <= 0)
		return -1;
	return (long)((double)((st->active + ahead) / st->capacity) *
	    st->mean_seconds + 0.5);
}

typedef struct {
	const char *why;
	int attempts_delta;
} requeue_arg;

static int
to_queued(json_t *task, void *arg, np_error *err)
{
	const requeue_arg *a = arg;
	json_int_t n;
	int rc;

	/* Still queued (its np-scan never started): only the line changes. */
	if (strcmp(np_json_str(task, "status"), "queued") != 0 &&
	    (rc = np_task_set_state(task, "queued", err)) != 0)
		return rc;
	n = json_integer_value(json_object_get(task, "attempts")) +
	    a->attempts_delta;
	json_object_set_new(task, "attempts", json_integer(n < 0 ? 0 : n));
	np_task_history(task, "requeued", a->why);
	return 0;
}

/*
 * KEYS: claims, claimed, slots of the held scanner (or any key when none
 * is held), pinned, list, wake, holders. ARGV: task, held (0/1). Drops
 * the claim and slot and queues the task in one step, so it is never in
 * both places and never in neither.
 */
static const char handback_lua[] =
"if ARGV[2] == '1' then\n"
"  redis.call('ZREM', KEYS[1], ARGV[1])\n"
"  redis.call('HDEL', KEYS[2], ARGV[1])\n"
"  redis.call('ZREM', KEYS[3], ARGV[1])\n"
"  redis.call('SREM', KEYS[4], ARGV[1])\n"
"  redis.call('HDEL', KEYS[7], ARGV[1])\n"
"end\n"
"redis.call('RPUSH', KEYS[5], ARGV[1])\n"
"redis.call('LPUSH', KEYS[6], '1')\n"
"redis.call('LTRIM', KEYS[6], 0, 63)\n"
"return 1\n";

/*
 * Puts a task back in line, at the front: on its scanner's own queue
 * when its Nessus scan exists there (so it is reattached, not run
 * twice), else on the pool queue. The record changes first. held names
 * the scanner whose slot the caller holds for it (released in the same
 * step), or NULL.
 */
int
np_task_requeue(redisContext *c, const np_config *cfg, const char *id,
    const char *why, int attempts_delta, const char *held, np_error *err)
{
	char k[7][NP_KEYMAX];
	const char *argv[9], *pool, *inst;
	json_t *task;
	redisReply *r;
	int rc, i;

	if ((rc = np_task_update(cfg, id, to_queued, &(requeue_arg){ why,
	    attempts_delta }, NP_SYNC, err)) != 0 ||
	    (rc = np_task_load(cfg, id, &task, err)) != 0)
		return rc;
	pool = np_json_str(task, "scanner_pool");
	inst = np_json_str(task, "scanner_instance");
	np_key_pool(k[0], cfg, pool, "claims");
	np_key_pool(k[1], cfg, pool, "claimed");
	np_key_inst(k[2], cfg, pool, "slots", held ? held : "-");
	np_key_pool(k[3], cfg, pool, "pinned");
	if (inst && (json_integer_value(json_object_get(task,
	    "nessus_scan_id")) > 0 || json_is_true(json_object_get(task,
	    "targeted_instance"))))
		np_key_inst(k[4], cfg, pool, "iq", inst);
	else
		np_key_pool(k[4], cfg, pool, "queue");
	np_key_pool(k[5], cfg, pool, "wake");
	np_key_pool(k[6], cfg, pool, "holders");
	for (i = 0; i < 7; i++)
		argv[i] = k[i];
	argv[7] = id;
	argv[8] = held ? "1" : "0";
	if ((rc = np_redis_eval(c, handback_lua, 7, 9, argv, &r, err)) == 0) {
		freeReplyObject(r);
		rc = np_index_put(c, cfg, task, err);
	}
	json_decref(task);
	return rc;
}

typedef struct {
	redisContext *c;
	char claims[NP_KEYMAX];
} recover_arg;

/*
 * The record's half of a recovery, under the record's lock. The task is
 * back in line already: another worker may have taken it again since and
 * its np-scan started it, or even ended it. That attempt is not ours to
 * undo (a record set back to queued under a running np-scan is one it
 * cannot end, and the task would be in no line), so only a record still
 * running and unclaimed goes back to queued.
 */
static int
to_recovered(json_t *task, void *arg, np_error *err)
{
	const recover_arg *a = arg;
	const char *id = np_json_str(task, "task_id");
	const char *st = np_json_str(task, "status");
	redisReply *r;
	bool claimed;

	if (st && !strcmp(st, "queued")) {
		np_task_history(task, "requeued", "recovered: lease expired");
		return 0;
	}
	if (st == NULL || strcmp(st, "running") != 0)
		return np_seterr(err, NP_NO, "task %s: %s meanwhile", id,
		    st ? st : "no status");
	if ((r = np_redis_cmd(a->c, err, "ZSCORE %s %s", a->claims, id)) == NULL)
		return err->code;
	claimed = r->type == REDIS_REPLY_STRING;
	freeReplyObject(r);
	if (claimed)
		return np_seterr(err, NP_NO, "task %s: taken again meanwhile", id);
	return to_queued(task, &(requeue_arg){ "recovered: lease expired", 0 },
	    err);
}

/*
 * The record's half of recovering task id of pool, once the task is back
 * in line. NP_NO: left as it is (ended, or taken again meanwhile); a
 * record being written is left "running" (NP_TRYLOCK: the next np-scan
 * takes it as it is).
 */
int
np_recover_record(redisContext *c, const np_config *cfg, const char *pool,
    const char *id, np_error *err)
{
	recover_arg a = { .c = c };

	np_key_pool(a.claims, cfg, pool, "claims");
	return np_task_update(cfg, id, to_recovered, &a, NP_SYNC | NP_TRYLOCK,
	    err);
}

/*
 * Recovery, shared by np-worker and np-housekeep: claims past their
 * deadline go back in line (lease.c, one script), then their records
 * follow. *n counts the tasks put back.
 */
int
np_recover_pool(redisContext *c, const np_config *cfg, const np_pool *p,
    size_t *n, np_error *err)
{
	char **ids;
	np_error e;
	size_t i;
	int rc;

	*n = 0;
	if ((rc = np_lease_recover(c, cfg, p, &ids, n, err)) != 0)
		return rc;
	for (i = 0; i < *n; i++) {
		np_warn("task %s: its worker stopped renewing its lease; back "
		    "in line", ids[i]);
		np_recover_record(c, cfg, p->name, ids[i], &e);
		free(ids[i]);
	}
	free(ids);
	return 0;
}

/*
 * Takes a task out of its pool's lines (pool queue and every scanner's
 * own queue) in one step. Returns the number of entries removed in *n:
 * 0 when a worker has taken it already.
 */
int
np_queue_remove(redisContext *c, const np_config *cfg, const np_pool *p,
    const char *id, long *n, np_error *err)
{
	const char **argv = np_xcalloc(p->nscanners + 2, sizeof(*argv));
	char (*k)[NP_KEYMAX] = np_xcalloc(p->nscanners + 1, NP_KEYMAX);
	redisReply *r;
	size_t i;
	int rc;

	np_key_pool(k[0], cfg, p->name, "queue");
	for (i = 0; i < p->nscanners; i++)
		np_key_inst(k[i + 1], cfg, p->name, "iq", p->scanners[i].instance_id);
	for (i = 0; i <= p->nscanners; i++)
		argv[i] = k[i];
	argv[i] = id;
	rc = np_redis_eval(c, "local n = 0 for _, k in ipairs(KEYS) do "
	    "n = n + redis.call('LREM', k, 0, ARGV[1]) end return n",
	    (int)p->nscanners + 1, (int)p->nscanners + 2, argv, &r, err);
	free(argv);
	free(k);
	if (rc)
		return rc;
	*n = (long)r->integer;
	freeReplyObject(r);
	return 0;
}
