/*
 * counters.c: the counters np-metrics exports, kept in Redis so that
 * they survive restarts and sum over every worker and host. They only
 * grow (HINCRBY); np-metrics reads them as they are.
 *
 *   np:{P}:counters  HASH  scans:<scan_type>:<status>
 *                          validation_failures:<reason>
 *                          auth_failures:<scan_type>
 *                          duration_le:<bucket> duration_count duration_sum
 *                          dlq_retries
 *   np:counters      HASH  ttl_deletions
 */
#include <string.h>

#include "np.h"

/* Upper bounds of the scan duration histogram, in seconds. */
const double np_duration_buckets[NP_DURATION_BUCKETS] = {
	60, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400,
};

static int64_t
ms_of(json_t *task, const char *key)
{
	int64_t ms = 0;

	np_parse_rfc3339(np_json_str(task, key), &ms);
	return ms;
}

/*
 * Counts a task that has just reached a final state: its outcome, its
 * validation and authentication failures, and its scan's duration.
 * Best effort: a counter is not worth failing a task for.
 */
void
np_count_end(redisContext *c, const np_config *cfg, json_t *task)
{
	const char *pool = np_json_str(task, "scanner_pool");
	const char *type = np_json_str(task, "scan_type");
	const char *st = np_json_str(task, "status");
	const char *why = np_json_str(task, "validation_reason");
	const char *auth = np_json_str(task, "authentication_status");
	char k[NP_KEYMAX], f[160];
	int64_t from = ms_of(task, "launched_at"), to = ms_of(task,
	    "completed_at");
	int owed = 0, i;
	np_error err;

	if (pool == NULL || type == NULL || st == NULL)
		return;
	np_key_pool(k, cfg, pool, "counters");
	snprintf(f, sizeof(f), "scans:%s:%s", type, st);
	redisAppendCommand(c, "HINCRBY %s %s 1", k, f), owed++;
	if (why && json_is_true(json_object_get(task, "validation_failed"))) {
		snprintf(f, sizeof(f), "validation_failures:%s", why);
		redisAppendCommand(c, "HINCRBY %s %s 1", k, f), owed++;
	}
	if (auth && !strcmp(auth, "failed")) {
		snprintf(f, sizeof(f), "auth_failures:%s", type);
		redisAppendCommand(c, "HINCRBY %s %s 1", k, f), owed++;
	}
	if (from > 0 && to >= from && !strcmp(st, "completed")) {
		double secs = (double)(to - from) / 1000.0;
		for (i = 0; i < NP_DURATION_BUCKETS; i++)
			if (secs <= np_duration_buckets[i])
				break;
		if (i < NP_DURATION_BUCKETS) {
			snprintf(f, sizeof(f), "duration_le:%g",
			    np_duration_buckets[i]);
			redisAppendCommand(c, "HINCRBY %s %s 1", k, f), owed++;
		}
		redisAppendCommand(c, "HINCRBY %s duration_count 1", k), owed++;
		snprintf(f, sizeof(f), "%.3f", secs);
		redisAppendCommand(c, "HINCRBYFLOAT %s duration_sum %s", k, f),
		    owed++;
	}
	if (np_replies(c, owed, &err) != 0)
		np_warn("counters not updated: %s", err.msg);
}
