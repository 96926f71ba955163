/*
 * enqueue.c: the whole of accepting scan requests, one or a batch.
 *
 * Order matters for crash safety: claim the idempotency key, write the
 * record (and the credentials file) durably, then queue the id. If the
 * queue push fails the record is removed again, so no task is left
 * "queued" without being in line. A crash between record and push
 * leaves a queued record in no queue, which np-housekeep re-queues.
 *
 * A batch goes through the same steps a phase at a time: the Redis
 * commands of a phase are pipelined (one round trip for the lot) and
 * the records are made durable by one syncfs instead of an fsync each.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "np.h"

#define IDEM_WAIT_MS 5000

static json_t *
answer_for(json_t *task, const np_scanner *inst)
{
	json_t *a = json_object();

	json_object_set(a, "task_id", json_object_get(task, "task_id"));
	json_object_set(a, "trace_id", json_object_get(task, "trace_id"));
	json_object_set(a, "status", json_object_get(task, "status"));
	json_object_set(a, "scan_type", json_object_get(task, "scan_type"));
	json_object_set(a, "scanner_pool", json_object_get(task, "scanner_pool"));
	if (inst) {
		json_object_set_new(a, "scanner_instance",
		    json_string(inst->instance_id));
		json_object_set_new(a, "scanner_url", json_string(inst->url));
	}
	return a;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/*
 * The key is taken: same request -> the existing task; different
 * request -> conflict. The winner of a race may still be writing the
 * record, so wait for it a little.
 */
static int
existing(const np_config *cfg, np_request *r, const char *value,
    json_t **answer, np_error *err)
{
	const np_pool *p = np_config_pool(cfg, r->pool);
	const char *sp = strchr(value, ' ');
	char id[NP_TASKID_LEN + 1];
	json_t *task = NULL;
	int64_t until = np_now_ms() + IDEM_WAIT_MS;
	int rc;

	if (sp == NULL || sp - value != NP_TASKID_LEN)
		return np_seterr(err, NP_ESOFTWARE, "idempotency key '%s': "
		    "unreadable entry in Redis", r->idempotency_key);
	if (strcmp(sp + 1, r->hash) != 0)
		return np_seterr(err, NP_EDATA, "idempotency_key: '%s' exists "
		    "with different request parameters; use a different key "
		    "or match the original request", r->idempotency_key);
	memcpy(id, value, NP_TASKID_LEN);
	id[NP_TASKID_LEN] = '\0';
	while ((rc = np_task_load(cfg, id, &task, err)) == NP_ENOINPUT &&
	    np_now_ms() < until)
		sleep_ms(10);
	if (rc)
		return rc == NP_ENOINPUT ? np_seterr(err, NP_ETEMP,
		    "idempotency_key: task %s is still being created; retry",
		    id) : rc;
	*answer = answer_for(task, json_is_true(json_object_get(task,
	    "targeted_instance")) ? np_pool_scanner(p,
	    np_json_str(task, "scanner_instance")) : NULL);
	json_object_set_new(*answer, "idempotent", json_true());
	json_object_set_new(*answer, "message", json_string(
	    "Returning existing task (idempotency key matched)"));
	json_decref(task);
	return 0;
}

static void
idem_key(char *k, const np_config *cfg, const np_request *r)
{
	char name[200];

	snprintf(name, sizeof(name), "idem:%s", r->idempotency_key);
	np_key_global(k, cfg, name);
}

static bool
live(const np_enqueue_item *it)
{
	return it->rc == 0 && it->taken == NULL && it->answer == NULL;
}

/* Fails every item still in flight with the same error. */
static void
fail_rest(np_enqueue_item *v, size_t n, const np_error *err)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i].rc == 0 && v[i].answer == NULL) {
			v[i].rc = err->code;
			v[i].err = *err;
		}
}

/*
 * Phase 1: claims the idempotency keys. A key already held sends the
 * item to the existing task instead (or to a conflict).
 */
static int
claim_keys(redisContext *c, const np_config *cfg, np_enqueue_item *v,
    size_t n)
{
	char k[NP_KEYMAX], val[NP_TASKID_LEN + 70];
	redisReply *r;
	np_error err;
	size_t i, owed = 0;

	for (i = 0; i < n; i++) {
		if (v[i].rc || v[i].r.idempotency_key == NULL)
			continue;
		idem_key(k, cfg, &v[i].r);
		snprintf(val, sizeof(val), "%s %s", v[i].id, v[i].r.hash);
		redisAppendCommand(c, "SET %s %s NX PX %lld", k, val,
		    (long long)cfg->s.idempotency_ttl);
		owed++;
	}
	for (i = 0; i < n && owed; i++) {
		if (v[i].rc || v[i].r.idempotency_key == NULL)
			continue;
		owed--;
		if (redisGetReply(c, (void **)&r) != REDIS_OK)
			r = NULL;
		if (np_redis_reply_error(c, r, &err)) {
			if (r == NULL)
				return err.code;
			freeReplyObject(r);
			v[i].rc = err.code;
			v[i].err = err;
			continue;
		}
		if (r->type != REDIS_REPLY_STATUS)
			v[i].taken = np_xstrdup("");	/* held: read it below */
		freeReplyObject(r);
	}
	for (i = 0; i < n; i++) {
		if (v[i].taken == NULL)
			continue;
		idem_key(k, cfg, &v[i].r);
		if ((r = np_redis_cmd(c, &err, "GET %s", k)) == NULL) {
			if (c->err)
				return err.code;
			v[i].rc = err.code;
			v[i].err = err;
			continue;
		}
		free(v[i].taken);
		v[i].taken = NULL;
		if (r->type == REDIS_REPLY_STRING)
			v[i].taken = np_xstrdup(r->str);
		else {
			v[i].rc = np_seterr(&v[i].err, NP_ETEMP,
			    "idempotency key '%s': busy; retry",
			    v[i].r.idempotency_key);
		}
		freeReplyObject(r);
	}
	return 0;
}

static void
unclaim_key(redisContext *c, const np_config *cfg, np_enqueue_item *it)
{
	char k[NP_KEYMAX];
	redisReply *rep;

	if (it->r.idempotency_key == NULL || c->err)
		return;
	idem_key(k, cfg, &it->r);
	/* Only our own claim: compare and delete in one step. */
	rep = redisCommand(c, "EVAL %s 1 %s %s",
	    "if string.sub(redis.call('GET', KEYS[1]) or '', 1, 33) == ARGV[1] "
	    "then return redis.call('DEL', KEYS[1]) end return 0", k, it->id);
	if (rep)
		freeReplyObject(rep);
}

static void
drop(redisContext *c, const np_config *cfg, np_enqueue_item *it)
{
	char dir[PATH_MAX];

	np_task_dir(cfg, it->id, dir, sizeof(dir));
	np_rm_rf(dir);
	unclaim_key(c, cfg, it);
}

/* Phase 2: the records, durable before anything is queued. */
static int
write_records(redisContext *c, const np_config *cfg, np_enqueue_item *v,
    size_t n, bool batch)
{
	int flags = batch ? 0 : NP_SYNC, fd;
	size_t i, written = 0;

	for (i = 0; i < n; i++) {
		np_enqueue_item *it = &v[i];
		const np_pool *p;

		if (!live(it))
			continue;
		p = np_config_pool(cfg, it->r.pool);
		it->task = np_task_from_request(&it->r, it->id, it->r.instance ?
		    np_pool_scanner(p, it->r.instance) : NULL);
		if ((it->rc = np_task_write(cfg, it->id, it->task, flags,
		    &it->err)) != 0 || (np_request_has_credentials(&it->r) &&
		    (it->rc = np_task_write_credentials(cfg, it->id, &it->r,
		    flags, &it->err)) != 0)) {
			drop(c, cfg, it);
			continue;
		}
		written++;
	}
	if (!batch || written == 0)
		return 0;
	/* One flush of the filesystem makes the whole batch durable. */
	if ((fd = open(cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    syncfs(fd) == -1) {
		np_error err;
		np_seterr(&err, NP_EIO, "%s: syncfs: %s", cfg->data_dir,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		for (i = 0; i < n; i++)
			if (live(&v[i])) {
				v[i].rc = err.code;
				v[i].err = err;
				drop(c, cfg, &v[i]);
			}
		return 0;
	}
	close(fd);
	return 0;
}

/* Phase 3: queue every written record, one pipeline. */
static int
push_all(redisContext *c, const np_config *cfg, np_enqueue_item *v, size_t n)
{
	np_error gone = { 0 };
	size_t i;

	for (i = 0; i < n; i++)
		if (live(&v[i]))
			v[i].owed = np_queue_append(c, cfg, v[i].task);
	for (i = 0; i < n; i++) {
		np_enqueue_item *it = &v[i];

		if (!live(it))
			continue;
		if (gone.code) {
			/* The connection is gone: nothing after it was queued. */
			it->rc = gone.code;
			it->err = gone;
		} else if ((it->rc = np_queue_collect(c, it->task, it->owed,
		    &it->pos, &it->err)) != 0 && c->err)
			gone = it->err;
		if (it->rc)
			drop(c, cfg, it);
	}
	return gone.code;
}

/* Phase 4: answers, with the wait estimated once per pool and scanner. */
static void
answer_all(redisContext *c, const np_config *cfg, np_enqueue_item *v,
    size_t n)
{
	struct {
		const np_pool *p;
		const np_scanner *inst;
		np_queue_stats st;
		int rc;
	} *memo = np_xcalloc(n, sizeof(*memo));
	size_t i, j, nmemo = 0;

	for (i = 0; i < n; i++) {
		np_enqueue_item *it = &v[i];
		const np_pool *p;
		const np_scanner *inst;
		np_error err;
		long wait = -1;

		if (it->rc)
			continue;
		if (it->taken) {
			it->rc = existing(cfg, &it->r, it->taken, &it->answer,
			    &it->err);
			continue;
		}
		p = np_config_pool(cfg, it->r.pool);
		inst = it->r.instance ? np_pool_scanner(p, it->r.instance) : NULL;
		it->answer = answer_for(it->task, inst);
		json_object_set_new(it->answer, "queue_position",
		    json_integer(it->pos));
		for (j = 0; j < nmemo; j++)
			if (memo[j].p == p && memo[j].inst == inst)
				break;
		if (j == nmemo) {
			memo[j].p = p;
			memo[j].inst = inst;
			memo[j].rc = np_queue_stats_get(c, cfg, p, inst,
			    &memo[j].st, &err);
			nmemo++;
		}
		if (memo[j].rc == 0)
			wait = np_estimate_wait(&memo[j].st, it->pos);
		json_object_set_new(it->answer, "estimated_wait_seconds",
		    wait < 0 ? json_null() : json_integer(wait));
		json_object_set_new(it->answer, "idempotent", json_false());
	}
	free(memo);
}

/*
 * Enqueues the items (each already parsed into it->r; items with rc set
 * are skipped). Each item ends with an answer or with rc and err. The
 * return is 75 when Redis went away, so a batch knows to stop.
 */
int
np_enqueue(redisContext *c, const np_config *cfg, np_enqueue_item *v,
    size_t n, bool batch)
{
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if (v[i].rc == 0)
			np_task_id_new(v[i].id);
	if ((rc = claim_keys(c, cfg, v, n)) == 0 &&
	    (rc = write_records(c, cfg, v, n, batch)) == 0)
		rc = push_all(c, cfg, v, n);
	if (rc) {
		np_error err;
		np_seterr(&err, rc, "redis: %s", c->errstr);
		fail_rest(v, n, &err);
		return rc;
	}
	answer_all(c, cfg, v, n);
	for (i = 0; i < n; i++) {
		json_decref(v[i].task);
		v[i].task = NULL;
		free(v[i].taken);
		v[i].taken = NULL;
	}
	return 0;
}
