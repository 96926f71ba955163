/*
 * np-dlq: the dead-letter queue (np:{P}:dlq, ZSET task id -> time of
 * death). list, inspect, retry, purge, stats. Output is JSON (NDJSON for
 * lists); --human prints tables. Records never hold credentials, so
 * nothing here can show one.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "np.h"

typedef struct {
	const char *pool, *reason;
	int64_t older_than;	/* ms; -1 = any age */
	long limit;
	bool human, all, yes, delete_records;
} opts;

typedef struct {
	char *id;
	const np_pool *pool;
	int64_t died;
	json_t *task;		/* may be NULL: record gone */
} entry;

static np_config *cfg;
static redisContext *rc_;

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-dlq list [-H] [-p pool] [-r reason] [-o age] [-n limit]\n"
	    "       np-dlq inspect task_id\n"
	    "       np-dlq retry task_id | -a [-p pool] [-r reason] [-o age]\n"
	    "       np-dlq purge [-p pool] [-r reason] [-o age] [-D] -y\n"
	    "       np-dlq stats [-H] [-p pool]\n");
	exit(status);
}

static int
by_death(const void *a, const void *b)
{
	const entry *x = a, *y = b;

	return x->died < y->died ? 1 : x->died > y->died ? -1 :
	    strcmp(y->id, x->id);
}

/* The dead entries matching o, newest first. */
static entry *
entries(const opts *o, size_t *n)
{
	entry *v = NULL;
	char k[NP_KEYMAX], max[32];
	redisReply *r;
	np_error err;
	size_t i, j;

	*n = 0;
	if (o->older_than >= 0)
		snprintf(max, sizeof(max), "%lld",
		    (long long)(np_now_ms() - o->older_than));
	else
		snprintf(max, sizeof(max), "+inf");
	for (i = 0; i < cfg->npools; i++) {
		const np_pool *p = &cfg->pools[i];

		if (o->pool && strcmp(o->pool, p->name) != 0)
			continue;
		np_key_pool(k, cfg, p->name, "dlq");
		if ((r = np_redis_cmd(rc_, &err, "ZREVRANGEBYSCORE %s %s -inf "
		    "WITHSCORES", k, max)) == NULL)
			np_die_err(&err);
		for (j = 0; j + 1 < r->elements; j += 2) {
			entry e = { np_xstrdup(r->element[j]->str), p,
			    atoll(r->element[j + 1]->str), NULL };
			const char *why;

			if (np_task_load(cfg, e.id, &e.task, &err) != 0)
				e.task = NULL;
			why = e.task ? np_json_str(e.task, "failure_reason") : NULL;
			if (o->reason && (why == NULL || strcmp(why, o->reason))) {
				json_decref(e.task);
				free(e.id);
				continue;
			}
			v = np_xrealloc(v, (*n + 1) * sizeof(*v));
			v[(*n)++] = e;
		}
		freeReplyObject(r);
	}
	if (*n > 1)
		qsort(v, *n, sizeof(*v), by_death);
	return v;
}

static void
entries_free(entry *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(v[i].id);
		json_decref(v[i].task);
	}
	free(v);
}

static json_t *
summary(const entry *e)
{
	char ts[32];
	json_t *o, *t = e->task;

	np_rfc3339(e->died, ts);
	o = json_pack("{s:s,s:s,s:s}", "task_id", e->id, "pool", e->pool->name,
	    "failed_at", ts);
	if (t == NULL) {
		json_object_set_new(o, "error", json_string("task record missing"));
		return o;
	}
	json_object_set(o, "name", json_object_get(t, "name"));
	json_object_set(o, "scan_type", json_object_get(t, "scan_type"));
	json_object_set(o, "targets", json_object_get(t, "targets"));
	json_object_set(o, "status", json_object_get(t, "status"));
	json_object_set(o, "attempts", json_object_get(t, "attempts"));
	json_object_set(o, "reason", json_object_get(t, "failure_reason"));
	json_object_set(o, "error", json_object_get(t, "error"));
	json_object_set(o, "nessus_scan_id", json_object_get(t, "nessus_scan_id"));
	return o;
}

static const char *
str_or(json_t *o, const char *k, const char *dflt)
{
	const char *s = np_json_str(o, k);

	return s ? s : dflt;
}

static int
cmd_list(const opts *o)
{
	size_t n, i;
	entry *v = entries(o, &n);

	if (o->human)
		printf("%-34s %-12s %-24s %-20s %3s  %s\n", "TASK", "POOL",
		    "FAILED AT", "REASON", "TRY", "ERROR");
	for (i = 0; i < n && (o->limit <= 0 || (long)i < o->limit); i++) {
		json_t *s = summary(&v[i]);
		if (o->human)
			printf("%-34s %-12s %-24s %-20s %3lld  %.60s\n", v[i].id,
			    v[i].pool->name, str_or(s, "failed_at", ""),
			    str_or(s, "reason", "-"),
			    json_integer_value(json_object_get(s, "attempts")),
			    str_or(s, "error", ""));
		else
			np_json_out(s);
		json_decref(s);
	}
	entries_free(v, n);
	return 0;
}

/* Finds a task's dead entry: its pool and time of death. */
/*
 * Finds a task's record and dead entry: its pool and time of death.
 * NP_ENOINPUT with *task set when the task is not dead; other failures
 * leave *task NULL. Redis going away ends the command.
 */
static int
find(const char *id, json_t **task, const np_pool **p, int64_t *died,
    np_error *err)
{
	char k[NP_KEYMAX];
	redisReply *r;
	int rc;

	*task = NULL;
	if ((rc = np_task_check_id(id, err)) != 0 ||
	    (rc = np_task_load(cfg, id, task, err)) != 0)
		return rc;
	if ((*p = np_config_pool(cfg, np_json_str(*task, "scanner_pool"))) == NULL) {
		rc = np_seterr(err, NP_ECONFIG, "task %s: pool '%s' is not in %s",
		    id, np_json_str(*task, "scanner_pool"), cfg->path);
		json_decref(*task);
		*task = NULL;
		return rc;
	}
	np_key_pool(k, cfg, (*p)->name, "dlq");
	if ((r = np_redis_cmd(rc_, err, "ZSCORE %s %s", k, id)) == NULL)
		np_die_err(err);
	rc = r->type == REDIS_REPLY_STRING ? 0 : np_seterr(err, NP_ENOINPUT,
	    "task %s is not in the dead-letter queue (it is %s)", id,
	    np_json_str(*task, "status"));
	if (rc == 0)
		*died = atoll(r->str);
	freeReplyObject(r);
	return rc;
}

static int
cmd_inspect(const char *id)
{
	const np_pool *p;
	entry e = { (char *)id, NULL, 0, NULL };
	np_error err;
	json_t *o;

	if (find(id, &e.task, &p, &e.died, &err) != 0)
		np_die_err(&err);
	e.pool = p;
	o = summary(&e);
	json_object_set(o, "scanner_instance",
	    json_object_get(e.task, "scanner_instance"));
	json_object_set(o, "history", json_object_get(e.task, "history"));
	json_object_set(o, "task", e.task);
	np_json_out_steal(o);
	json_decref(e.task);
	return 0;
}

static int
revive(json_t *task, void *arg, np_error *err)
{
	int rc;

	(void)arg;
	if (strcmp(np_json_str(task, "status"), "queued") != 0 &&
	    (rc = np_task_set_state(task, "queued", err)) != 0)
		return rc;
	json_object_set_new(task, "attempts", json_integer(0));
	json_object_set_new(task, "error", json_null());
	json_object_set_new(task, "failure_reason", json_null());
	json_object_set_new(task, "progress", json_integer(0));
	/* Its scan ran already: the next np-scan launches it again. */
	if (json_integer_value(json_object_get(task, "nessus_scan_id")) > 0)
		json_object_set_new(task, "relaunch", json_true());
	np_task_history(task, "retried", "from the dead-letter queue");
	return 0;
}

/* KEYS: dlq, line, wake, counters. ARGV: task. 1 moved, 0 not dead. */
static const char retry_lua[] =
"if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end\n"
"redis.call('RPUSH', KEYS[2], ARGV[1])\n"
"redis.call('LPUSH', KEYS[3], '1')\n"
"redis.call('LTRIM', KEYS[3], 0, 63)\n"
"redis.call('HINCRBY', KEYS[4], 'dlq_retries', 1)\n"
"return 1\n";

/*
 * The record goes back to queued first, then one script moves the id
 * from the DLQ to the front of its line: never in both, never in
 * neither. Returns 0 moved, NP_ENOINPUT not dead (any more).
 */
static int
retry_one(const char *id, np_error *err)
{
	char k[4][NP_KEYMAX];
	const char *argv[5], *inst;
	const np_pool *p;
	json_t *task;
	int64_t died;
	redisReply *r;
	int rc, i;

	rc = find(id, &task, &p, &died, err);
	json_decref(task);
	if (rc)
		return rc;
	if ((rc = np_task_update(cfg, id, revive, NULL, NP_SYNC, err)) != 0 ||
	    (rc = np_task_load(cfg, id, &task, err)) != 0)
		return rc;
	inst = np_json_str(task, "scanner_instance");
	np_key_pool(k[0], cfg, p->name, "dlq");
	if (inst && (json_is_true(json_object_get(task, "relaunch")) ||
	    json_is_true(json_object_get(task, "targeted_instance"))))
		np_key_inst(k[1], cfg, p->name, "iq", inst);
	else
		np_key_pool(k[1], cfg, p->name, "queue");
	np_key_pool(k[2], cfg, p->name, "wake");
	np_key_pool(k[3], cfg, p->name, "counters");
	for (i = 0; i < 4; i++)
		argv[i] = k[i];
	argv[4] = id;
	if ((rc = np_redis_eval(rc_, retry_lua, 4, 5, argv, &r, err)) == 0) {
		if (r->integer == 0)
			rc = np_seterr(err, NP_ENOINPUT, "task %s left the "
			    "dead-letter queue meanwhile", id);
		freeReplyObject(r);
		np_index_put(rc_, cfg, task, err);
	}
	json_decref(task);
	return rc;
}

static int
cmd_retry(const opts *o, const char *id)
{
	size_t n, i, moved = 0, failed = 0;
	np_error err;
	entry *v;

	if (id) {
		if (retry_one(id, &err) != 0)
			np_die_err(&err);
		np_json_out_steal(json_pack("{s:s,s:s}", "task_id", id, "status",
		    "queued"));
		return 0;
	}
	v = entries(o, &n);
	for (i = 0; i < n; i++) {
		if (retry_one(v[i].id, &err) == 0)
			moved++;
		else {
			failed++;
			np_warn("%s", err.msg);
			if (rc_->err)
				np_die_err(&err);
		}
	}
	entries_free(v, n);
	np_json_out_steal(json_pack("{s:i,s:i}", "retried", (json_int_t)moved,
	    "failed", (json_int_t)failed));
	return failed ? NP_NO : 0;
}

static bool
confirm(size_t n)
{
	char line[16];

	if (!isatty(STDIN_FILENO))
		np_die(NP_EUSAGE, "purge: refusing without --yes (stdin is not "
		    "a terminal)");
	fprintf(stderr, "np-dlq: purge %zu dead task(s)? [y/N] ", n);
	return fgets(line, sizeof(line), stdin) && (line[0] == 'y' ||
	    line[0] == 'Y');
}

static int
cmd_purge(const opts *o)
{
	size_t n, i, purged = 0, records = 0;
	char k[NP_KEYMAX], dir[PATH_MAX];
	const char *st;
	redisReply *r;
	np_error err;
	json_t *now;
	bool removed;
	entry *v = entries(o, &n);

	if (!o->yes && !confirm(n)) {
		entries_free(v, n);
		fprintf(stderr, "np-dlq: nothing purged\n");
		return NP_NO;
	}
	for (i = 0; i < n; i++) {
		np_key_pool(k, cfg, v[i].pool->name, "dlq");
		if ((r = np_redis_cmd(rc_, &err, "ZREM %s %s", k, v[i].id)) == NULL)
			np_die_err(&err);
		removed = r->integer == 1;
		purged += removed;
		freeReplyObject(r);
		/* Only a record we took out of the DLQ just now, and still
		 * ended: never a task retried meanwhile. */
		if (!o->delete_records || !removed || v[i].task == NULL ||
		    np_task_load(cfg, v[i].id, &now, &err) != 0)
			continue;
		st = np_json_str(now, "status");
		if (st && (!strcmp(st, "failed") || !strcmp(st, "timeout"))) {
			np_task_dir(cfg, v[i].id, dir, sizeof(dir));
			if (np_rm_rf(dir) == 0) {
				np_index_del(rc_, cfg, v[i].id, &err);
				records++;
			} else
				np_warn("%s: not removed: %s", dir, strerror(errno));
		}
		json_decref(now);
	}
	entries_free(v, n);
	np_json_out_steal(json_pack("{s:i,s:i}", "purged", (json_int_t)purged,
	    "records_deleted", (json_int_t)records));
	return 0;
}

static int
cmd_stats(const opts *o)
{
	size_t i, j, n;
	opts one = *o;
	int64_t now = np_now_ms();

	if (o->human)
		printf("%-16s %6s %10s %6s %12s  %s\n", "POOL", "QUEUE",
		    "PROCESSING", "DEAD", "OLDEST DEAD", "BY REASON");
	for (i = 0; i < cfg->npools; i++) {
		const np_pool *p = &cfg->pools[i];
		json_t *by = json_object(), *out;
		np_queue_stats st;
		np_error err;
		entry *v;

		if (o->pool && strcmp(o->pool, p->name) != 0)
			continue;
		one.pool = p->name;
		one.reason = NULL;
		one.older_than = -1;
		if (np_queue_stats_get(rc_, cfg, p, NULL, &st, &err) != 0)
			np_die_err(&err);
		v = entries(&one, &n);
		for (j = 0; j < n; j++) {
			const char *r = v[j].task ? str_or(v[j].task,
			    "failure_reason", "unknown") : "record_missing";
			json_object_set_new(by, r, json_integer(json_integer_value(
			    json_object_get(by, r)) + 1));
		}
		out = json_pack("{s:s,s:i,s:i,s:i,s:o,s:o}", "pool", p->name,
		    "queue_depth", (json_int_t)st.depth, "processing",
		    (json_int_t)st.processing, "dead", (json_int_t)n,
		    "oldest_dead_age_seconds", n ? json_integer((now -
		    v[n - 1].died) / 1000) : json_null(), "by_reason", by);
		if (o->human) {
			char *reasons = json_dumps(by, JSON_COMPACT), age[24] = "-";
			if (n)
				snprintf(age, sizeof(age), "%llds", (long long)((now -
				    v[n - 1].died) / 1000));
			printf("%-16s %6ld %10ld %6zu %12s  %s\n", p->name, st.depth,
			    st.processing, n, age, reasons);
			free(reasons);
		} else
			np_json_out(out);
		json_decref(out);
		entries_free(v, n);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "reason", required_argument, NULL, 'r' },
		{ "older-than", required_argument, NULL, 'o' },
		{ "limit", required_argument, NULL, 'n' },
		{ "all", no_argument, NULL, 'a' },
		{ "yes", no_argument, NULL, 'y' },
		{ "delete-records", no_argument, NULL, 'D' },
		{ "human", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	opts o = { .older_than = -1 };
	const char *sub, *arg = NULL;
	int ch, rc;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "p:r:o:n:ayDHhV", lopts, NULL)) != -1) {
		switch (ch) {
		case 'p': o.pool = optarg; break;
		case 'r': o.reason = optarg; break;
		case 'o':
			if (np_parse_duration(optarg, &o.older_than) == -1)
				np_die(NP_EUSAGE, "--older-than: expected a duration "
				    "(30s, 5m, 24h, 7d)");
			break;
		case 'n':
			if (np_parse_int(optarg, 1, 1000000, &o.limit) == -1)
				np_die(NP_EUSAGE, "--limit: expected 1 to 1000000");
			break;
		case 'a': o.all = true; break;
		case 'y': o.yes = true; break;
		case 'D': o.delete_records = true; break;
		case 'H': o.human = true; break;
		case 'h': usage(0); break;
		case 'V': np_version_exit(); break;
		default: usage(NP_EUSAGE);
		}
	}
	if (optind >= argc)
		usage(NP_EUSAGE);
	sub = argv[optind++];
	if (optind < argc)
		arg = argv[optind++];
	if (optind != argc)
		usage(NP_EUSAGE);
	cfg = np_config_open();
	if (o.pool && !np_config_pool(cfg, o.pool))
		np_die(NP_EUSAGE, "--pool: no pool named '%s' in %s", o.pool,
		    cfg->path);
	if (!strcmp(sub, "list") && !arg) {
		rc_ = np_redis_open(cfg);
		rc = cmd_list(&o);
	} else if (!strcmp(sub, "inspect") && arg) {
		rc_ = np_redis_open(cfg);
		rc = cmd_inspect(arg);
	} else if (!strcmp(sub, "retry") && (arg != NULL) != o.all &&
	    (arg == NULL || (!o.pool && !o.reason))) {
		rc_ = np_redis_open(cfg);
		rc = cmd_retry(&o, arg);
	} else if (!strcmp(sub, "purge") && !arg) {
		rc_ = np_redis_open(cfg);
		rc = cmd_purge(&o);
	} else if (!strcmp(sub, "stats") && !arg) {
		rc_ = np_redis_open(cfg);
		rc = cmd_stats(&o);
	} else
		usage(NP_EUSAGE);
	if (fflush(stdout) == EOF)
		np_die(NP_EIO, "stdout: write error");
	redisFree(rc_);
	np_config_free(cfg);
	return rc;
}
