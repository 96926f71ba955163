/*
 * np-select: pick or list scanners by load. No side effects: the answer
 * comes from the same Lua script that leases slots, run read-only.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-select -p pool\n"
	    "       np-select -l [-H] [-p pool]\n"
	    "       np-select -P [-H]\n"
	    "       np-select -s pool\n");
	exit(status);
}

static const np_pool *
pool_or_die(const np_config *cfg, const char *name)
{
	const np_pool *p = np_config_pool(cfg, name);

	if (p == NULL)
		np_die(NP_EUSAGE, "no pool named '%s' in %s", name, cfg->path);
	return p;
}

static void
view_or_die(redisContext *c, const np_config *cfg, const np_pool *p,
    np_pool_view *v)
{
	np_error err;

	if (np_lease_view(c, cfg, p, v, &err) != 0)
		np_die_err(&err);
}

static double
pct(long part, long whole)
{
	return whole > 0 ? (double)(long)(1000.0 * part / whole + 0.5) / 10.0 : 0;
}

static json_t *
pool_status(redisContext *c, const np_config *cfg, const np_pool *p,
    bool with_scanners)
{
	json_t *o = json_object(), *list = json_array();
	np_queue_stats st;
	np_pool_view v;
	np_error err;
	long enabled = 0, avail = 0;
	size_t i;

	if (np_queue_stats_get(c, cfg, p, NULL, &st, &err) != 0)
		np_die_err(&err);
	view_or_die(c, cfg, p, &v);
	for (i = 0; i < v.n; i++) {
		json_t *s = np_slot_json(p, &v.v[i]);
		if (v.v[i].scanner->enabled) {
			enabled++;
			if (v.v[i].breaker != NP_BREAKER_OPEN)
				avail += json_integer_value(json_object_get(s,
				    "available_capacity"));
		}
		json_array_append_new(list, s);
	}
	json_object_set_new(o, "pool", json_string(p->name));
	json_object_set_new(o, "total_scanners", json_integer((long)v.n));
	json_object_set_new(o, "enabled_scanners", json_integer(enabled));
	json_object_set_new(o, "total_capacity", json_integer(st.capacity));
	json_object_set_new(o, "total_active", json_integer(st.active));
	json_object_set_new(o, "available_capacity", json_integer(avail));
	json_object_set_new(o, "utilization_pct",
	    json_real(pct(st.active, st.capacity)));
	json_object_set_new(o, "queue_depth", json_integer(st.depth));
	json_object_set_new(o, "processing", json_integer(st.processing));
	json_object_set_new(o, "dlq_depth", json_integer(st.dlq));
	if (with_scanners)
		json_object_set_new(o, "scanners", list);
	else
		json_decref(list);
	np_pool_view_free(&v);
	return o;
}

static void
human_scanner(json_t *s, bool header)
{
	if (header)
		printf("%-16s %-16s %-7s %6s %6s %6s  %-9s %s\n", "POOL",
		    "INSTANCE", "ENABLED", "ACTIVE", "MAX", "UTIL%", "BREAKER",
		    "URL");
	printf("%-16s %-16s %-7s %6lld %6lld %6.1f  %-9s %s\n",
	    np_json_str(s, "pool"), np_json_str(s, "instance_id"),
	    json_is_true(json_object_get(s, "enabled")) ? "yes" : "no",
	    json_integer_value(json_object_get(s, "active_scans")),
	    json_integer_value(json_object_get(s, "max_concurrent_scans")),
	    json_real_value(json_object_get(s, "utilization_pct")),
	    np_json_str(s, "breaker"), np_json_str(s, "url"));
}

static void
list(redisContext *c, const np_config *cfg, const char *only, bool human)
{
	bool header = true;
	size_t i, j;

	for (i = 0; i < cfg->npools; i++) {
		const np_pool *p = &cfg->pools[i];
		np_pool_view v;

		if (only && strcmp(only, p->name) != 0)
			continue;
		view_or_die(c, cfg, p, &v);
		for (j = 0; j < v.n; j++) {
			json_t *s = np_slot_json(p, &v.v[j]);
			if (human)
				human_scanner(s, header);
			else
				np_json_out(s);
			header = false;
			json_decref(s);
		}
		np_pool_view_free(&v);
	}
}

static void
pools(redisContext *c, const np_config *cfg, bool human)
{
	size_t i;

	if (human)
		printf("%-16s %8s %8s %8s %6s %6s %6s\n", "POOL", "SCANNERS",
		    "CAPACITY", "ACTIVE", "UTIL%", "QUEUE", "DEAD");
	for (i = 0; i < cfg->npools; i++) {
		json_t *o = pool_status(c, cfg, &cfg->pools[i], false);

		if (human)
			printf("%-16s %8lld %8lld %8lld %6.1f %6lld %6lld\n",
			    np_json_str(o, "pool"),
			    json_integer_value(json_object_get(o, "enabled_scanners")),
			    json_integer_value(json_object_get(o, "total_capacity")),
			    json_integer_value(json_object_get(o, "total_active")),
			    json_real_value(json_object_get(o, "utilization_pct")),
			    json_integer_value(json_object_get(o, "queue_depth")),
			    json_integer_value(json_object_get(o, "dlq_depth")));
		else
			np_json_out(o);
		json_decref(o);
	}
}

static int
pick(redisContext *c, const np_config *cfg, const np_pool *p)
{
	np_pool_view v;

	view_or_die(c, cfg, p, &v);
	if (v.chosen < 0) {
		np_pool_view_free(&v);
		fprintf(stderr, "np-select: pool %s: no enabled scanner with a "
		    "free slot and a breaker that lets a task through\n", p->name);
		return NP_EUNAVAIL;
	}
	np_json_out_steal(np_slot_json(p, &v.v[v.chosen]));
	np_pool_view_free(&v);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "list", no_argument, NULL, 'l' },
		{ "pools", no_argument, NULL, 'P' },
		{ "pool-status", required_argument, NULL, 's' },
		{ "human", no_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *pool = NULL, *status_pool = NULL;
	int ch, mode = 0, rc = 0;
	bool human = false;
	np_config *cfg;
	redisContext *c;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "p:lPs:HhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			pool = optarg;
			break;
		case 's':
			status_pool = optarg;
			/* FALLTHROUGH */
		case 'l':
		case 'P':
			if (mode && mode != ch)
				usage(NP_EUSAGE);
			mode = ch;
			break;
		case 'H':
			human = true;
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
	if (optind != argc || (mode == 0 && pool == NULL) ||
	    (mode == 'P' && pool) || (mode == 's' && pool))
		usage(NP_EUSAGE);
	cfg = np_config_open();
	if (pool)
		pool_or_die(cfg, pool);
	if (status_pool)
		pool_or_die(cfg, status_pool);
	c = np_redis_open(cfg);
	switch (mode) {
	case 'l':
		list(c, cfg, pool, human);
		break;
	case 'P':
		pools(c, cfg, human);
		break;
	case 's':
		np_json_out_steal(pool_status(c, cfg,
		    np_config_pool(cfg, status_pool), true));
		break;
	default:
		rc = pick(c, cfg, np_config_pool(cfg, pool));
	}
	redisFree(c);
	np_config_free(cfg);
	return rc;
}
