/*
 * dlq.c: how tasks end badly, and the dead-letter queue they go to.
 *
 *   np:{P}:dlq  ZSET  task id -> time of death (ms)
 *
 * A task that failed permanently or used up its attempts ends failed (or
 * timeout) in its record first, then enters the pool's DLQ: the record
 * is the truth, the DLQ the list to act on. Reasons are words from one
 * list (np(7)): scanner_unreachable, scanner_error, scanner_auth,
 * api_unavailable, scan_aborted, scan_canceled, scan_paused,
 * scan_deleted, export_failed, download_invalid, empty_scan,
 * auth_failed, privilege_insufficient, credentials_missing, timeout,
 * attempts_exhausted, bad_request.
 */
#include <string.h>

#include "np.h"

typedef struct {
	const char *state, *reason, *msg;
} ending;

static int
end_task(json_t *task, void *arg, np_error *err)
{
	const ending *e = arg;
	int rc;

	if (np_state_terminal(np_json_str(task, "status")))
		return np_seterr(err, NP_NO, "task %s is already %s",
		    np_json_str(task, "task_id"), np_json_str(task, "status"));
	if ((rc = np_task_set_state(task, e->state, err)) != 0)
		return rc;
	json_object_set_new(task, "error", json_string(e->msg));
	json_object_set_new(task, "failure_reason", json_string(e->reason));
	np_task_history(task, e->state, e->msg);
	return 0;
}

/*
 * Ends the task in state ("failed" or "timeout") with a reason and a
 * message, then dead-letters it. A task already final is left alone.
 */
int
np_task_fail(redisContext *c, const np_config *cfg, const char *id,
    const char *state, const char *reason, const char *msg, np_error *err)
{
	ending e = { state, reason, msg };
	char k[NP_KEYMAX];
	json_t *task;
	redisReply *r;
	int rc;

	if ((rc = np_task_update(cfg, id, end_task, &e, NP_SYNC, err)) != 0)
		return rc;
	if ((rc = np_task_load(cfg, id, &task, err)) != 0)
		return rc;
	np_key_pool(k, cfg, np_json_str(task, "scanner_pool"), "dlq");
	r = np_redis_cmd(c, err, "ZADD %s %lld %s", k, (long long)np_now_ms(), id);
	if (r)
		freeReplyObject(r);
	rc = r ? np_index_put(c, cfg, task, err) : err->code;
	np_count_end(c, cfg, task);
	json_decref(task);
	return rc;
}

/*
 * Puts a task whose record has ended back where Redis shows ended tasks:
 * its index entry and, when it failed, its dead-letter entry. A crash or
 * a Redis outage between the record's end and those (np_task_fail,
 * np-scan's completion) left them behind; such a task comes back through
 * lease recovery, and np-scan calls this on finding it ended. Idempotent.
 */
int
np_task_republish(redisContext *c, const np_config *cfg, json_t *task,
    np_error *err)
{
	const char *st = np_json_str(task, "status");
	char k[NP_KEYMAX];
	redisReply *r;

	if (st && (!strcmp(st, "failed") || !strcmp(st, "timeout"))) {
		np_key_pool(k, cfg, np_json_str(task, "scanner_pool"), "dlq");
		if ((r = np_redis_cmd(c, err, "ZADD %s NX %lld %s", k,
		    (long long)np_now_ms(), np_json_str(task, "task_id"))) == NULL)
			return err->code;
		freeReplyObject(r);
	}
	return np_index_put(c, cfg, task, err);
}
