/*
 * health.c: is np able to do its job right now? Redis (reachable, and
 * set up so that it cannot lose queued tasks), the data directory
 * (writable, space left), every enabled scanner (answers, breaker
 * closed) and every pool's workers (a fresh heartbeat).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "np.h"

#define MIN_FREE_BYTES (1024LL * 1024 * 1024)

static json_t *
data_dir(const np_config *cfg, json_t *problems)
{
	char probe[PATH_MAX];
	struct statvfs sv;
	json_t *o = json_pack("{s:s}", "path", cfg->data_dir);
	np_error err;
	bool ok = true;

	snprintf(probe, sizeof(probe), "%s/.health.%d", cfg->data_dir,
	    (int)getpid());
	if (np_write_atomic(probe, "ok\n", 3, 0600, 0, &err) != 0) {
		json_array_append_new(problems, json_sprintf("data dir %s is not "
		    "writable: %s", cfg->data_dir, err.msg));
		ok = false;
	} else
		unlink(probe);
	if (statvfs(cfg->data_dir, &sv) == 0) {
		long long free_b = (long long)sv.f_bavail * (long long)sv.f_frsize;
		double pct = sv.f_blocks ? 100.0 * (double)sv.f_bavail /
		    (double)sv.f_blocks : 0;
		json_object_set_new(o, "free_bytes", json_integer(free_b));
		json_object_set_new(o, "free_pct", json_real((double)(long)(pct *
		    10) / 10));
		if (free_b < MIN_FREE_BYTES || pct < 5) {
			json_array_append_new(problems, json_sprintf("data dir %s has "
			    "%lld MiB free (%.1f%%)", cfg->data_dir, free_b >> 20,
			    pct));
			ok = false;
		}
	}
	json_object_set_new(o, "ok", json_boolean(ok));
	return o;
}

static json_t *
scanner(redisContext *c, const np_config *cfg, const np_pool *p,
    const np_slot_view *v, json_t *problems)
{
	const np_scanner *s = v->scanner;
	json_t *o = json_pack("{s:s,s:s,s:s}", "pool", p->name, "instance_id",
	    s->instance_id, "breaker", np_breaker_name(v->breaker));
	char st[32] = "";
	np_nessus *n;
	np_error err;
	bool ok;

	(void)c;
	if ((n = np_nessus_open(cfg, s, &err)) != NULL) {
		if (np_nessus_server_status(n, st, &err) == 0)
			json_object_set_new(o, "server_status", json_string(st));
		np_nessus_close(n);
	}
	ok = !strcmp(st, "ready") && v->breaker == NP_BREAKER_CLOSED;
	if (st[0] == '\0') {
		json_object_set_new(o, "error", json_string(err.msg));
		json_array_append_new(problems, json_sprintf("scanner %s/%s: %s",
		    p->name, s->instance_id, err.msg));
	} else if (!ok)
		json_array_append_new(problems, json_sprintf("scanner %s/%s: "
		    "server %s, breaker %s", p->name, s->instance_id, st,
		    np_breaker_name(v->breaker)));
	json_object_set_new(o, "ok", json_boolean(ok));
	return o;
}

static json_t *
pool_workers(redisContext *c, const np_config *cfg, const np_pool *p,
    json_t *problems, np_error *err)
{
	char k[NP_KEYMAX];
	redisReply *r;
	int64_t newest = 0, v;
	json_t *o;
	size_t i;
	bool ok;

	np_key_pool(k, cfg, p->name, "workers");
	if ((r = np_redis_cmd(c, err, "HGETALL %s", k)) == NULL)
		return NULL;
	for (i = 0; i + 1 < r->elements; i += 2)
		if ((v = atoll(r->element[i + 1]->str)) > newest)
			newest = v;
	freeReplyObject(r);
	/* Workers beat every lease_ttl/3: no beat for three lease_ttl means
	 * no worker is alive (it would have lost its leases long ago). */
	ok = newest > 0 && np_now_ms() - newest <= 3 * cfg->s.lease_ttl;
	o = json_pack("{s:s,s:b}", "pool", p->name, "ok", ok);
	if (newest > 0) {
		char ts[32];
		np_rfc3339(newest, ts);
		json_object_set_new(o, "last_heartbeat", json_string(ts));
	}
	if (!ok)
		json_array_append_new(problems, json_sprintf("pool %s: no worker "
		    "heartbeat %s", p->name, newest ? "for over 3 lease_ttl" :
		    "ever"));
	return o;
}

/*
 * The health report (np-status --health). Returns 0 healthy, NP_NO
 * degraded, NP_ETEMP when Redis cannot be reached (report still set).
 */
int
np_health(const np_config *cfg, json_t **report)
{
	json_t *problems = json_array(), *scanners = json_array();
	json_t *pools = json_array(), *redis = json_object(), *w;
	redisContext *c;
	np_error err;
	size_t i, j;
	int rc = 0;

	*report = json_object();
	if (np_redis_connect(cfg, &c, &err) != 0) {
		json_object_set_new(redis, "ok", json_false());
		json_object_set_new(redis, "error", json_string(err.msg));
		json_array_append_new(problems, json_string(err.msg));
		rc = NP_ETEMP;
	} else {
		size_t before = json_array_size(problems);
		np_redis_check_settings(c, problems, &err);
		json_object_set_new(redis, "ok", json_boolean(
		    json_array_size(problems) == before));
	}
	json_object_set_new(*report, "redis", redis);
	json_object_set_new(*report, "data_dir", data_dir(cfg, problems));
	for (i = 0; rc == 0 && i < cfg->npools; i++) {
		const np_pool *p = &cfg->pools[i];
		np_pool_view v;

		if (np_lease_view(c, cfg, p, &v, &err) != 0 ||
		    (w = pool_workers(c, cfg, p, problems, &err)) == NULL) {
			json_array_append_new(problems, json_string(err.msg));
			rc = NP_ETEMP;
			break;
		}
		json_array_append_new(pools, w);
		for (j = 0; j < v.n; j++)
			if (v.v[j].scanner->enabled)
				json_array_append_new(scanners, scanner(c, cfg, p,
				    &v.v[j], problems));
		np_pool_view_free(&v);
	}
	if (rc == 0)
		redisFree(c);
	json_object_set_new(*report, "scanners", scanners);
	json_object_set_new(*report, "pools", pools);
	if (rc == 0 && json_array_size(problems))
		rc = NP_NO;
	json_object_set_new(*report, "problems", problems);
	json_object_set_new(*report, "status", json_string(rc == 0 ? "healthy" :
	    rc == NP_NO ? "degraded" : "unavailable"));
	return rc;
}
