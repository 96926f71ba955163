/*
 * np-metrics: Prometheus metrics from Redis, for node_exporter's textfile
 * collector. Every read goes out in one pipeline: one round trip however
 * many scanners, pools and tasks there are. Counters live in Redis and
 * only grow; gauges are computed here at each run.
 *
 * With --textfile-dir DIR the text goes to DIR/np.prom atomically (temp
 * file in DIR, fsync, chmod 0644, rename); Redis down writes nothing new,
 * so node_exporter shows the old file's age.
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "np.h"

static const char *const states[] = { "queued", "running", "completed",
	"failed", "timeout", "cancelled", NULL };
static const char *const scan_types[] = { "untrusted", "authenticated",
	"authenticated_privileged", NULL };
static const char *const results[] = { "completed", "failed", "timeout",
	"cancelled", NULL };
static const char *const reasons[] = { "auth_failed",
	"privilege_insufficient", "xml_invalid", "not_nessus", "empty_scan",
	"too_small", "file_not_found", NULL };

typedef struct {
	redisReply **r;
	size_t n, next;
} replies;

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-metrics [-d textfile_dir] [-P prefix]\n");
	exit(status);
}

static redisReply *
next(replies *rs)
{
	return rs->r[rs->next++];
}

/* The field of a HGETALL reply, or NULL. */
static const char *
field(redisReply *h, const char *name)
{
	size_t i;

	for (i = 0; h && i + 1 < h->elements; i += 2)
		if (!strcmp(h->element[i]->str, name))
			return h->element[i + 1]->str;
	return NULL;
}

static double
num(const char *s)
{
	return s ? atof(s) : 0;
}

/* Sends every read, then collects every reply: one round trip. */
static int
fetch(redisContext *c, const np_config *cfg, int64_t now, replies *rs,
    np_error *err)
{
	char k[NP_KEYMAX], nowarg[24];
	size_t i, j;

	snprintf(nowarg, sizeof(nowarg), "(%lld", (long long)now);
	rs->n = 0;
	for (i = 0; i < cfg->npools; i++) {
		const np_pool *p = &cfg->pools[i];
		const char *const per_pool[][2] = {
			{ "LLEN %s", "queue" }, { "ZCARD %s", "dlq" },
			{ "ZCARD %s", "claims" }, { "HGETALL %s", "counters" },
			{ "HGETALL %s", "workers" }, { "LINDEX %s -1", "queue" },
		};
		for (j = 0; j < 6; j++) {
			np_key_pool(k, cfg, p->name, per_pool[j][1]);
			redisAppendCommand(c, per_pool[j][0], k);
			rs->n++;
		}
		for (j = 0; j < p->nscanners; j++) {
			const char *id = p->scanners[j].instance_id;
			np_key_inst(k, cfg, p->name, "slots", id);
			redisAppendCommand(c, "ZCOUNT %s %s +inf", k, nowarg);
			np_key_inst(k, cfg, p->name, "breaker", id);
			redisAppendCommand(c, "HGETALL %s", k);
			np_key_inst(k, cfg, p->name, "iq", id);
			redisAppendCommand(c, "LLEN %s", k);
			redisAppendCommand(c, "LINDEX %s -1", k);
			rs->n += 4;
		}
	}
	np_key_global(k, cfg, "states");
	redisAppendCommand(c, "HGETALL %s", k);
	np_key_global(k, cfg, "counters");
	redisAppendCommand(c, "HGETALL %s", k);
	rs->n += 2;
	rs->r = np_xcalloc(rs->n, sizeof(*rs->r));
	for (i = 0; i < rs->n; i++) {
		if (redisGetReply(c, (void **)&rs->r[i]) != REDIS_OK)
			rs->r[i] = NULL;
		if (np_redis_reply_error(c, rs->r[i], err))
			return err->code;
	}
	return 0;
}

/* Age in seconds of the task id a queue's next entry holds (ids carry
 * their creation time), 0 when the queue is empty. */
static double
age_of(redisReply *r, int64_t now)
{
	struct tm tm = { 0 };

	if (r == NULL || r->type != REDIS_REPLY_STRING ||
	    strptime(r->str, "%Y%m%dT%H%M%SZ", &tm) == NULL)
		return 0;
	return (double)(now / 1000 - timegm(&tm));
}

typedef struct {
	const np_pool *p;
	redisReply *queue, *dlq, *claims, *counters, *workers, *oldest;
	redisReply **scanners;	/* 4 per scanner */
} pool_data;

static void
scanner_metrics(np_buf *b, const char *pfx, pool_data *pd, size_t np_,
    int64_t now)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
		{ "scanner_active_scans", "Scans holding a slot on the scanner." },
		{ "scanner_capacity", "max_concurrent_scans of the scanner (0 when disabled)." },
		{ "scanner_utilization_pct", "Active scans over capacity, in percent." },
		{ "scanner_circuit_breaker_open", "1 while the scanner's circuit breaker is not closed." },
		{ "scanner_up", "1 unless the last contact with the scanner failed." },
	};
	char name[128];
	size_t f, i, j;

	for (f = 0; f < 5; f++) {
		snprintf(name, sizeof(name), "%s_%s", pfx, fam[f].name);
		np_prom_family(b, name, "gauge", fam[f].help);
		for (i = 0; i < np_; i++)
			for (j = 0; j < pd[i].p->nscanners; j++) {
				const np_scanner *s = &pd[i].p->scanners[j];
				redisReply **r = &pd[i].scanners[4 * j];
				double active = (double)r[0]->integer;
				double cap = s->enabled ? s->max_concurrent_scans : 0;
				double ou = num(field(r[1], "open_until"));
				double v = f == 0 ? active : f == 1 ? cap :
				    f == 2 ? (cap > 0 ? 100.0 * active / cap : 0) :
				    f == 3 ? (ou > 0 ? 1 : 0) :
				    (num(field(r[1], "last_fail")) >
				    num(field(r[1], "last_ok")) ? 0 : 1);
				(void)now;
				np_prom_sample(b, name, v, "pool", pd[i].p->name,
				    "scanner_instance", s->instance_id, NULL);
			}
	}
}

static void
pool_gauges(np_buf *b, const char *pfx, pool_data *pd, size_t np_,
    int64_t now)
{
	char name[128];
	size_t i, j;

	snprintf(name, sizeof(name), "%s_pool_queue_depth", pfx);
	np_prom_family(b, name, "gauge", "Tasks waiting in the pool's queues.");
	for (i = 0; i < np_; i++) {
		double n = (double)pd[i].queue->integer;
		for (j = 0; j < pd[i].p->nscanners; j++)
			n += (double)pd[i].scanners[4 * j + 2]->integer;
		np_prom_sample(b, name, n, "pool", pd[i].p->name, NULL);
	}
	snprintf(name, sizeof(name), "%s_pool_dlq_depth", pfx);
	np_prom_family(b, name, "gauge", "Tasks in the pool's dead-letter queue.");
	for (i = 0; i < np_; i++)
		np_prom_sample(b, name, (double)pd[i].dlq->integer, "pool",
		    pd[i].p->name, NULL);
	snprintf(name, sizeof(name), "%s_pool_processing", pfx);
	np_prom_family(b, name, "gauge", "Tasks claimed by a worker.");
	for (i = 0; i < np_; i++)
		np_prom_sample(b, name, (double)pd[i].claims->integer, "pool",
		    pd[i].p->name, NULL);
	snprintf(name, sizeof(name), "%s_oldest_queued_seconds", pfx);
	np_prom_family(b, name, "gauge", "Age of the oldest task waiting in the pool.");
	for (i = 0; i < np_; i++) {
		double a = age_of(pd[i].oldest, now), x;
		for (j = 0; j < pd[i].p->nscanners; j++)
			if ((x = age_of(pd[i].scanners[4 * j + 3], now)) > a)
				a = x;
		np_prom_sample(b, name, a, "pool", pd[i].p->name, NULL);
	}
}

static void
task_states(np_buf *b, const char *pfx, pool_data *pd, size_t np_,
    redisReply *st)
{
	char name[128], key[160];
	size_t i;
	int s;

	snprintf(name, sizeof(name), "%s_tasks", pfx);
	np_prom_family(b, name, "gauge", "Task records by pool and state.");
	for (i = 0; i < np_; i++)
		for (s = 0; states[s]; s++) {
			snprintf(key, sizeof(key), "%s\t%s", pd[i].p->name, states[s]);
			np_prom_sample(b, name, num(field(st, key)), "pool",
			    pd[i].p->name, "status", states[s], NULL);
		}
}

static void
counters(np_buf *b, const char *pfx, pool_data *pd, size_t np_)
{
	char name[128], key[160];
	size_t i;
	int t, x;

	snprintf(name, sizeof(name), "%s_scans_total", pfx);
	np_prom_family(b, name, "counter", "Scans that ended, by type and result.");
	for (i = 0; i < np_; i++)
		for (t = 0; scan_types[t]; t++)
			for (x = 0; results[x]; x++) {
				snprintf(key, sizeof(key), "scans:%s:%s", scan_types[t],
				    results[x]);
				np_prom_sample(b, name, num(field(pd[i].counters, key)),
				    "pool", pd[i].p->name, "scan_type", scan_types[t],
				    "result", results[x], NULL);
			}
	snprintf(name, sizeof(name), "%s_validation_failures_total", pfx);
	np_prom_family(b, name, "counter", "Exports that failed validation, by reason.");
	for (i = 0; i < np_; i++)
		for (x = 0; reasons[x]; x++) {
			snprintf(key, sizeof(key), "validation_failures:%s", reasons[x]);
			np_prom_sample(b, name, num(field(pd[i].counters, key)),
			    "pool", pd[i].p->name, "reason", reasons[x], NULL);
		}
	snprintf(name, sizeof(name), "%s_auth_failures_total", pfx);
	np_prom_family(b, name, "counter", "Scans whose credentials failed on every host.");
	for (i = 0; i < np_; i++)
		for (t = 1; scan_types[t]; t++) {
			snprintf(key, sizeof(key), "auth_failures:%s", scan_types[t]);
			np_prom_sample(b, name, num(field(pd[i].counters, key)),
			    "pool", pd[i].p->name, "scan_type", scan_types[t], NULL);
		}
	snprintf(name, sizeof(name), "%s_dlq_retries_total", pfx);
	np_prom_family(b, name, "counter", "Tasks retried from the dead-letter queue.");
	for (i = 0; i < np_; i++)
		np_prom_sample(b, name, num(field(pd[i].counters, "dlq_retries")),
		    "pool", pd[i].p->name, NULL);
}

static void
durations(np_buf *b, const char *pfx, pool_data *pd, size_t np_)
{
	char name[128], bucket[160], key[192], le[32];
	size_t i;
	int k;

	snprintf(name, sizeof(name), "%s_scan_duration_seconds", pfx);
	np_prom_family(b, name, "histogram", "Launch to completion of completed scans.");
	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	for (i = 0; i < np_; i++) {
		double cum = 0, count = num(field(pd[i].counters, "duration_count"));
		for (k = 0; k < NP_DURATION_BUCKETS; k++) {
			snprintf(key, sizeof(key), "duration_le:%g",
			    np_duration_buckets[k]);
			snprintf(le, sizeof(le), "%g", np_duration_buckets[k]);
			cum += num(field(pd[i].counters, key));
			np_prom_sample(b, bucket, cum, "pool", pd[i].p->name,
			    "le", le, NULL);
		}
		np_prom_sample(b, bucket, count, "pool", pd[i].p->name, "le",
		    "+Inf", NULL);
		snprintf(key, sizeof(key), "%s_sum", name);
		np_prom_sample(b, key, num(field(pd[i].counters, "duration_sum")),
		    "pool", pd[i].p->name, NULL);
		snprintf(key, sizeof(key), "%s_count", name);
		np_prom_sample(b, key, count, "pool", pd[i].p->name, NULL);
	}
}

static void
workers(np_buf *b, const char *pfx, pool_data *pd, size_t np_)
{
	char name[128];
	size_t i, j;

	snprintf(name, sizeof(name), "%s_worker_last_heartbeat_timestamp_seconds",
	    pfx);
	np_prom_family(b, name, "gauge", "Last sign of life of each worker serving the pool.");
	for (i = 0; i < np_; i++)
		for (j = 0; j + 1 < pd[i].workers->elements; j += 2)
			np_prom_sample(b, name,
			    num(pd[i].workers->element[j + 1]->str) / 1000.0, "pool",
			    pd[i].p->name, "worker", pd[i].workers->element[j]->str,
			    NULL);
}

static void
render(np_buf *b, const np_config *cfg, const char *pfx, replies *rs,
    int64_t now)
{
	pool_data *pd = np_xcalloc(cfg->npools, sizeof(*pd));
	redisReply *st, *global;
	char name[128];
	size_t i, j;

	for (i = 0; i < cfg->npools; i++) {
		pd[i].p = &cfg->pools[i];
		pd[i].queue = next(rs);
		pd[i].dlq = next(rs);
		pd[i].claims = next(rs);
		pd[i].counters = next(rs);
		pd[i].workers = next(rs);
		pd[i].oldest = next(rs);
		pd[i].scanners = &rs->r[rs->next];
		for (j = 0; j < 4 * pd[i].p->nscanners; j++)
			next(rs);
	}
	st = next(rs);
	global = next(rs);
	scanner_metrics(b, pfx, pd, cfg->npools, now);
	pool_gauges(b, pfx, pd, cfg->npools, now);
	task_states(b, pfx, pd, cfg->npools, st);
	counters(b, pfx, pd, cfg->npools);
	durations(b, pfx, pd, cfg->npools);
	workers(b, pfx, pd, cfg->npools);
	snprintf(name, sizeof(name), "%s_ttl_deletions_total", pfx);
	np_prom_family(b, name, "counter", "Task folders deleted by np-housekeep past their TTL.");
	np_prom_sample(b, name, num(field(global, "ttl_deletions")), NULL);
	np_prom_family(b, "np_metrics_last_run_timestamp_seconds", "gauge",
	    "When np-metrics last read Redis successfully.");
	np_prom_sample(b, "np_metrics_last_run_timestamp_seconds",
	    (double)now / 1000.0, NULL);
	free(pd);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "textfile-dir", required_argument, NULL, 'd' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL, *pfx = "nessus";
	int64_t now = np_now_ms();
	np_buf b = { 0 };
	replies rs = { 0 };
	np_config *cfg;
	redisContext *c;
	np_error err;
	size_t i;
	int ch;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "d:P:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'd':
			dir = optarg;
			break;
		case 'P':
			pfx = optarg;
			if (!np_name_valid(pfx) || strchr(pfx, '-') ||
			    (pfx[0] >= '0' && pfx[0] <= '9'))
				np_die(NP_EUSAGE, "--prefix: expected [A-Za-z0-9_]+");
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
	if (optind != argc)
		usage(NP_EUSAGE);
	cfg = np_config_open();
	c = np_redis_open(cfg);
	if (fetch(c, cfg, now, &rs, &err) != 0)
		np_die_err(&err);
	render(&b, cfg, pfx, &rs, now);
	if (dir) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/np.prom", dir);
		/* 0644: node_exporter runs as another user. */
		if (np_write_atomic(path, b.buf, b.len, 0644, NP_SYNC, &err) != 0)
			np_die_err(&err);
	} else if (fwrite(b.buf, 1, b.len, stdout) != b.len || fflush(stdout))
		np_die(NP_EIO, "stdout: write error");
	for (i = 0; i < rs.n; i++)
		freeReplyObject(rs.r[i]);
	free(rs.r);
	free(b.buf);
	redisFree(c);
	np_config_free(cfg);
	return 0;
}
