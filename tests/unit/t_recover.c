/*
 * Unit tests: the record's half of a lease recovery (np_recover_record)
 * against a real redis-server (NP_REDIS_URL, set by tests/run). Between
 * the recovery script and the record write another worker may take the
 * task again and start it: its attempt must be left alone.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "np.h"
#include "tap.h"

static np_config *cfg;
static redisContext *rc_;

static void
load(const char *yaml)
{
	char path[] = "/tmp/np-t-recover.XXXXXX";
	np_error err;
	int fd = mkstemp(path);

	if (write(fd, yaml, strlen(yaml)) < 0)
		exit(2);
	close(fd);
	if (np_config_load(path, &cfg, &err) != 0) {
		printf("Bail out! %s\n", err.msg);
		exit(2);
	}
	unlink(path);
}

/* A record of pool p in the given state; its id in id. */
static void
record(char *id, const char *status)
{
	np_error err;
	json_t *t;

	np_task_id_new(id);
	t = json_pack("{s:s,s:s,s:s,s:s,s:i,s:[]}", "task_id", id, "status",
	    status, "scanner_pool", "p", "created_at", "2026-01-01T00:00:00Z",
	    "attempts", 1, "history");
	if (np_task_write(cfg, id, t, 0, &err) != 0) {
		printf("Bail out! %s\n", err.msg);
		exit(2);
	}
	json_decref(t);
}

static char *
field(const char *id, const char *key)
{
	static char buf[64];
	np_error err;
	json_t *t, *h;

	if (np_task_load(cfg, id, &t, &err) != 0)
		return "unreadable";
	if (!strcmp(key, "last")) {
		h = json_object_get(t, "history");
		h = json_array_get(h, json_array_size(h) - 1);
		snprintf(buf, sizeof(buf), "%s", h ? np_json_str(h, "detail") :
		    "none");
	} else
		snprintf(buf, sizeof(buf), "%s", np_json_str(t, key));
	json_decref(t);
	return buf;
}

static json_int_t
claimed_attempts(const char *id)
{
	np_error err;
	json_t *t;
	json_int_t n;

	if (np_task_load(cfg, id, &t, &err) != 0)
		return -1;
	n = json_integer_value(json_object_get(t, "attempts"));
	json_decref(t);
	return n;
}

static void
claim(const char *id)
{
	char k[NP_KEYMAX];

	np_key_pool(k, cfg, "p", "claims");
	freeReplyObject(redisCommand(rc_, "ZADD %s %lld %s", k,
	    (long long)np_now_ms() + 60000, id));
}

int
main(void)
{
	char dir[] = "/tmp/np-t-recover-data.XXXXXX", id[NP_TASKID_LEN + 1];
	char yaml[512];
	np_error err;

	if (getenv("NP_REDIS_URL") == NULL) {
		printf("1..0 # SKIP NP_REDIS_URL not set\n");
		return 0;
	}
	if (mkdtemp(dir) == NULL)
		return 2;
	setenv("NP_DATA_DIR", dir, 1);
	snprintf(yaml, sizeof(yaml), "pools:\n  p:\n"
	    "    - instance_id: only\n      url: https://127.0.0.1:1\n"
	    "      access_key: a\n      secret_key: b\n");
	load(yaml);
	rc_ = np_redis_open(cfg);
	freeReplyObject(redisCommand(rc_, "FLUSHALL"));
	plan(8);

	record(id, "running");
	ok(np_recover_record(rc_, cfg, "p", id, &err) == 0 &&
	    !strcmp(field(id, "status"), "queued"),
	    "a running record, unclaimed: back to queued");
	ok(!strcmp(field(id, "last"), "recovered: lease expired"),
	    "its history says why");

	record(id, "running");
	claim(id);
	ok(np_recover_record(rc_, cfg, "p", id, &err) == NP_NO &&
	    !strcmp(field(id, "status"), "running"),
	    "taken again and started meanwhile: the new attempt is left "
	    "running");
	ok(claimed_attempts(id) == 1, "and its attempts are not touched");

	record(id, "failed");
	ok(np_recover_record(rc_, cfg, "p", id, &err) == NP_NO &&
	    !strcmp(field(id, "status"), "failed"),
	    "ended meanwhile (failed, dead-lettered): stays failed");
	record(id, "completed");
	ok(np_recover_record(rc_, cfg, "p", id, &err) == NP_NO &&
	    !strcmp(field(id, "status"), "completed"),
	    "ended meanwhile (completed): stays completed");

	record(id, "queued");
	ok(np_recover_record(rc_, cfg, "p", id, &err) == 0 &&
	    !strcmp(field(id, "status"), "queued") &&
	    !strcmp(field(id, "last"), "recovered: lease expired"),
	    "still queued (its np-scan never started): only the history");

	redisFree(rc_);
	rc_ = NULL;
	ok(np_recover_record(NULL, cfg, "p", id, &err) == 0,
	    "a queued record needs no Redis");
	np_config_free(cfg);
	snprintf(yaml, sizeof(yaml), "rm -rf '%s'", dir);
	if (system(yaml) != 0)
		return 2;
	done();
}
