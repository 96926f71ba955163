/*
 * np-cancel: cancel a queued or running task. Idempotent.
 *
 * Queued: taken out of its line, then ended cancelled. Running (or taken
 * by a worker a moment ago): the record ends cancelled first, under its
 * lock, so np-scan sees it at its next step and stops; then the Nessus
 * scan is stopped and the slot released here, not left to chance.
 */
#include <getopt.h>
#include <limits.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static void
usage(int status)
{
	fprintf(status ? stderr : stdout, "usage: np-cancel task_id\n");
	exit(status);
}

typedef struct {
	char previous[32];
} cancel_arg;

static int
to_cancelled(json_t *task, void *arg, np_error *err)
{
	cancel_arg *a = arg;
	const char *st = np_json_str(task, "status");
	int rc;

	snprintf(a->previous, sizeof(a->previous), "%s", st ? st : "");
	if (st && !strcmp(st, "cancelled"))
		return 0;
	if ((rc = np_task_set_state(task, "cancelled", err)) != 0)
		return np_seterr(err, NP_NO, "task %s is %s: nothing to cancel",
		    np_json_str(task, "task_id"), st ? st : "?");
	json_object_set_new(task, "failure_reason", json_string("cancelled"));
	np_task_history(task, "cancelled", "np-cancel");
	return rc;
}

/* Stops the task's Nessus scan on its scanner; true when it was asked. */
static bool
stop_scan(const np_config *cfg, json_t *task)
{
	const np_pool *p = np_config_pool(cfg, np_json_str(task, "scanner_pool"));
	const np_scanner *s;
	json_int_t id = json_integer_value(json_object_get(task,
	    "nessus_scan_id"));
	np_nessus *n;
	np_error err;
	int rc;

	if (id <= 0 || p == NULL || (s = np_pool_scanner(p,
	    np_json_str(task, "scanner_instance"))) == NULL)
		return false;
	if ((n = np_nessus_open(cfg, s, &err)) == NULL) {
		np_warn("task %s: scan %lld not stopped: %s",
		    np_json_str(task, "task_id"), (long long)id, err.msg);
		return false;
	}
	rc = np_nessus_action(n, (long)id, "stop", &err);
	np_nessus_close(n);
	if (rc != 0 && rc != NP_ENOINPUT) {
		np_warn("task %s: scan %lld not stopped: %s",
		    np_json_str(task, "task_id"), (long long)id, err.msg);
		return false;
	}
	return true;
}

static void
release(redisContext *c, const np_config *cfg, const char *pool,
    const char *id)
{
	char k[NP_KEYMAX];
	redisReply *r;
	np_error err;

	np_key_pool(k, cfg, pool, "claimed");
	if ((r = np_redis_cmd(c, &err, "HGET %s %s", k, id)) == NULL)
		return;
	if (r->type == REDIS_REPLY_STRING)
		np_lease_release(c, cfg, pool, r->str, id, 0, &err);
	freeReplyObject(r);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	cancel_arg a = { "" };
	const char *id, *pool;
	const np_pool *p;
	np_config *cfg;
	redisContext *c;
	json_t *task, *out;
	np_error err;
	bool stopped = false;
	long removed = 0;
	int ch;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			usage(0);
			break;
		case 'V':
			np_version_exit();
			break;
		default:
			usage(NP_EUSAGE);
		}
	}
	if (optind != argc - 1)
		usage(NP_EUSAGE);
	id = argv[optind];
	if (np_task_check_id(id, &err) != 0)
		np_die_err(&err);
	cfg = np_config_open();
	if (np_task_load(cfg, id, &task, &err) != 0)
		np_die_err(&err);
	if ((p = np_config_pool(cfg, np_json_str(task, "scanner_pool"))) == NULL)
		np_die(NP_ECONFIG, "task %s: pool '%s' is not in %s", id,
		    np_json_str(task, "scanner_pool"), cfg->path);
	pool = p->name;		/* outlives the record read here */
	c = np_redis_open(cfg);
	if (!strcmp(np_json_str(task, "status"), "queued") &&
	    np_queue_remove(c, cfg, p, id, &removed, &err) != 0)
		np_die_err(&err);
	json_decref(task);
	if (np_task_update(cfg, id, to_cancelled, &a, NP_SYNC, &err) != 0)
		np_die_err(&err);
	if (np_task_load(cfg, id, &task, &err) != 0)
		np_die_err(&err);
	/* A cancelled scan will never use its credentials. */
	{
		char dir[PATH_MAX], f[PATH_MAX + 32];
		np_task_dir(cfg, id, dir, sizeof(dir));
		snprintf(f, sizeof(f), "%s/credentials.json", dir);
		if (unlink(f) == 0)
			np_fsync_dir(dir);
	}
	if (strcmp(a.previous, "cancelled") != 0) {
		/* A queued task may have a scan too (handed back by a worker
		 * that stopped): it must not keep scanning. */
		stopped = stop_scan(cfg, task);
		if (removed == 0)	/* running, or a worker had just taken it */
			release(c, cfg, pool, id);
	}
	np_index_put(c, cfg, task, &err);
	if (strcmp(a.previous, "cancelled") != 0)
		np_count_end(c, cfg, task);
	out = json_pack("{s:s,s:s,s:s,s:b}", "task_id", id, "status",
	    "cancelled", "previous_status", a.previous, "nessus_scan_stopped",
	    stopped);
	np_json_out_steal(out);
	json_decref(task);
	redisFree(c);
	np_config_free(cfg);
	return 0;
}
