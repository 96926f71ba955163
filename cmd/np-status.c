/*
 * np-status: a task's record, lists of tasks, and queue state.
 *
 * A single task is read from its task.json alone (no Redis needed);
 * lists go through the Redis index and then read only the matching
 * records. Queue state shows task ids, never payloads.
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-status task_id\n"
	    "       np-status -l [-S status] [-p pool] [-t target] [-n limit]\n"
	    "       np-status -q [-p pool]\n"
	    "       np-status -k\n");
	exit(status);
}

static int
touch(json_t *task, void *arg, np_error *err)
{
	char ts[32];

	(void)arg;
	(void)err;
	np_rfc3339(np_now_ms(), ts);
	json_object_set_new(task, "last_accessed_at", json_string(ts));
	return 0;
}

static int
show(const np_config *cfg, const char *id)
{
	json_t *task;
	np_error err;

	/* Reading a task counts as using it, for the housekeeping TTLs. A
	 * record we may not write is still shown. */
	if (np_task_check_id(id, &err) != 0)
		np_die_err(&err);
	if (np_task_update(cfg, id, touch, NULL, 0, &err) != 0 &&
	    err.code != NP_EPERM && err.code != NP_EIO)
		np_die_err(&err);
	if (np_task_load(cfg, id, &task, &err) != 0)
		np_die_err(&err);
	np_json_out_steal(task);
	return 0;
}

static int
list(const np_config *cfg, np_index_filter *f)
{
	redisContext *c = np_redis_open(cfg);
	char **ids;
	size_t n, i;
	np_error err;

	if (np_index_query(c, cfg, f, &ids, &n, &err) != 0)
		np_die_err(&err);
	for (i = 0; i < n; i++) {
		json_t *task;

		/* The index may lag the record; the record decides. */
		if (np_task_load(cfg, ids[i], &task, &err) == 0) {
			const char *st = np_json_str(task, "status");
			if (f->status == NULL || (st && !strcmp(st, f->status)))
				np_json_out(task);
			json_decref(task);
		}
		free(ids[i]);
	}
	free(ids);
	redisFree(c);
	return 0;
}

static json_t *
queue_of(redisContext *c, const np_config *cfg, const np_pool *p)
{
	char k[NP_KEYMAX];
	json_t *o = json_object(), *next = json_array(), *iq = json_object();
	np_queue_stats st;
	redisReply *r;
	np_error err;
	size_t i;

	if (np_queue_stats_get(c, cfg, p, NULL, &st, &err) != 0)
		np_die_err(&err);
	np_key_pool(k, cfg, p->name, "queue");
	/* LPUSH in, RPOP out: the next to run are at the right end. */
	if ((r = np_redis_cmd(c, &err, "LRANGE %s -10 -1", k)) == NULL)
		np_die_err(&err);
	for (i = r->elements; i > 0; i--)
		json_array_append_new(next, json_string(r->element[i - 1]->str));
	freeReplyObject(r);
	for (i = 0; i < p->nscanners; i++) {
		np_key_inst(k, cfg, p->name, "iq", p->scanners[i].instance_id);
		if ((r = np_redis_cmd(c, &err, "LLEN %s", k)) == NULL)
			np_die_err(&err);
		if (r->integer)
			json_object_set_new(iq, p->scanners[i].instance_id,
			    json_integer(r->integer));
		freeReplyObject(r);
	}
	json_object_set_new(o, "pool", json_string(p->name));
	json_object_set_new(o, "queue_depth", json_integer(st.depth));
	json_object_set_new(o, "instance_queues", iq);
	json_object_set_new(o, "processing", json_integer(st.processing));
	json_object_set_new(o, "dlq_depth", json_integer(st.dlq));
	json_object_set_new(o, "next_task_ids", next);
	return o;
}

static int
queue(const np_config *cfg, const char *pool)
{
	redisContext *c = np_redis_open(cfg);
	size_t i;

	for (i = 0; i < cfg->npools; i++)
		if (pool == NULL || !strcmp(pool, cfg->pools[i].name))
			np_json_out_steal(queue_of(c, cfg, &cfg->pools[i]));
	redisFree(c);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "list", no_argument, NULL, 'l' },
		{ "queue", no_argument, NULL, 'q' },
		{ "health", no_argument, NULL, 'k' },
		{ "status", required_argument, NULL, 'S' },
		{ "pool", required_argument, NULL, 'p' },
		{ "target", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	np_index_filter f = { .limit = 50 };
	const char *target = NULL;
	np_config *cfg;
	np_error err;
	int ch, mode = 0, rc;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "lqkS:p:t:n:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'l':
		case 'q':
		case 'k':
			if (mode && mode != ch)
				usage(NP_EUSAGE);
			mode = ch;
			break;
		case 'S':
			if (!np_state_valid(optarg))
				np_die(NP_EUSAGE, "--status: no state '%s' (queued, "
				    "running, completed, failed, timeout, "
				    "cancelled)", optarg);
			f.status = optarg;
			break;
		case 'p':
			f.pool = optarg;
			break;
		case 't':
			target = optarg;
			break;
		case 'n':
			if (np_parse_int(optarg, 1, 100000, &f.limit) == -1)
				np_die(NP_EUSAGE, "--limit: expected 1 to 100000");
			break;
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
	if (mode == 0 && (optind != argc - 1 || f.status || f.pool || target))
		usage(NP_EUSAGE);
	if (mode && optind != argc)
		usage(NP_EUSAGE);
	if ((mode == 'q' || mode == 'k') && (f.status || target))
		usage(NP_EUSAGE);
	if (mode == 'k' && f.pool)
		usage(NP_EUSAGE);
	if (target && np_targets_parse(target, &f.targets, &f.ntargets, &err))
		np_die(NP_EUSAGE, "--target: %s", err.msg);
	cfg = np_config_open();
	if (f.pool && !np_config_pool(cfg, f.pool))
		np_die(NP_EUSAGE, "--pool: no pool named '%s' in %s", f.pool,
		    cfg->path);
	if (mode == 'l')
		rc = list(cfg, &f);
	else if (mode == 'q')
		rc = queue(cfg, f.pool);
	else if (mode == 'k') {
		json_t *report;
		rc = np_health(cfg, &report);
		np_json_out_steal(report);
	}
	else
		rc = show(cfg, argv[optind]);
	np_targets_free(f.targets, f.ntargets);
	np_config_free(cfg);
	return rc;
}
