/*
 * Unit tests: slot leases against a real redis-server (NP_REDIS_URL, set
 * by tests/run). Many processes race for slots; the limit must hold.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "np.h"
#include "tap.h"

static np_config *cfg;
static redisContext *rc_;

static void
load(const char *yaml)
{
	char path[] = "/tmp/np-t-lease.XXXXXX";
	np_error err;
	int fd = mkstemp(path);

	if (write(fd, yaml, strlen(yaml)) < 0)
		exit(2);
	close(fd);
	np_config_free(cfg);
	if (np_config_load(path, &cfg, &err) != 0) {
		printf("Bail out! %s\n", err.msg);
		exit(2);
	}
	unlink(path);
}

static void
flush(void)
{
	freeReplyObject(redisCommand(rc_, "FLUSHALL"));
}

static void
msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Forks n processes that each try to lease a slot at the same moment. */
static int
race(const np_pool *p, int n)
{
	int64_t start = np_now_ms() + 300;
	int i, status, got = 0;

	for (i = 0; i < n; i++) {
		if (fork() == 0) {
			char id[NP_TASKID_LEN + 1];
			redisContext *c;
			np_pool_view v;
			np_error err;

			np_task_id_new(id);
			if (np_redis_connect(cfg, &c, &err) != 0)
				_exit(3);
			while (np_now_ms() < start)
				msleep(1);
			if (np_lease_acquire(c, cfg, p, id, NULL, &v, &err) != 0)
				_exit(3);
			_exit(v.chosen >= 0 ? 0 : 1);
		}
	}
	for (i = 0; i < n; i++) {
		wait(&status);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			got++;
	}
	return got;
}

static long
zcard(const char *pool, const char *inst)
{
	char k[NP_KEYMAX];
	redisReply *r;
	long n;

	np_key_inst(k, cfg, pool, "slots", inst);
	r = redisCommand(rc_, "ZCARD %s", k);
	n = (long)r->integer;
	freeReplyObject(r);
	return n;
}

static const char *
acquire(const np_pool *p, const char *id, const char *want)
{
	static char who[80];
	static np_error err;
	np_pool_view v;

	if (np_lease_acquire(rc_, cfg, p, id, want, &v, &err) != 0)
		return err.msg;
	snprintf(who, sizeof(who), "%s", v.chosen < 0 ? "-" :
	    v.v[v.chosen].scanner->instance_id);
	np_pool_view_free(&v);
	return who;
}

/* np_lease_recover on the pool: the number of tasks put back, or -1. */
static long
recover(const np_pool *p)
{
	np_error err;
	char **ids;
	size_t i, n;

	if (np_lease_recover(rc_, cfg, p, &ids, &n, &err) != 0)
		return -1;
	for (i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	return (long)n;
}

int
main(void)
{
	const np_pool *p;
	np_pool_view v;
	np_error err;
	char k[NP_KEYMAX];
	int64_t first, stale, tok, tok1, tok2;
	const char *inst;
	long got;

	if (getenv("NP_REDIS_URL") == NULL) {
		printf("1..0 # SKIP NP_REDIS_URL not set\n");
		return 0;
	}
	plan(39);
	load("settings:\n  lease_ttl: 400ms\npools:\n  p:\n"
	    "    - instance_id: only\n      url: https://127.0.0.1:1\n"
	    "      access_key: a\n      secret_key: b\n"
	    "      max_concurrent_scans: 2\n");
	rc_ = np_redis_open(cfg);
	flush();
	p = np_config_pool(cfg, "p");
	got = race(p, 50);
	ok(got == 2, "50 processes racing for a 2-slot scanner: %ld got one", got);
	ok(zcard("p", "only") == 2, "2 leases in Redis");
	ok(!strcmp(acquire(p, "t-late", NULL), "-"), "full scanner: no slot");
	ok(np_lease_release(rc_, cfg, "p", "only", "t-late", 0, &err) == 0,
	    "release of a task without a slot is harmless");
	ok(zcard("p", "only") == 2, "still 2 leases");
	msleep(500);
	ok(!strcmp(acquire(p, "t-after", NULL), "-"),
	    "leases past their deadline still count while claimed");
	{
		char k[NP_KEYMAX];
		np_key_inst(k, cfg, "p", "slots", "only");
		freeReplyObject(redisCommand(rc_, "ZADD %s 1 orphan", k));
	}
	ok((got = recover(p)) == 2, "recovery takes them back (%ld)", got);
	ok(zcard("p", "only") == 1, "an unclaimed entry past its deadline "
	    "(orphan) is still there");
	ok(!strcmp(acquire(p, "t-after", NULL), "only"),
	    "recovered leases free their slots");
	ok(zcard("p", "only") == 1, "orphans dropped by the next pick");
	ok(np_lease_release(rc_, cfg, "p", "only", "t-after", 0, &err) == 0 &&
	    zcard("p", "only") == 0, "release frees the slot");

	load("settings:\n  lease_ttl: 400ms\npools:\n  p:\n"
	    "    - instance_id: a\n      url: https://127.0.0.1:1\n"
	    "      access_key: a\n      secret_key: b\n"
	    "      max_concurrent_scans: 2\n"
	    "    - instance_id: b\n      url: https://127.0.0.1:2\n"
	    "      access_key: a\n      secret_key: b\n"
	    "      max_concurrent_scans: 4\n"
	    "    - instance_id: off\n      url: https://127.0.0.1:3\n"
	    "      access_key: a\n      secret_key: b\n      enabled: false\n"
	    "      max_concurrent_scans: 9\n");
	flush();
	p = np_config_pool(cfg, "p");
	ok(!strcmp(acquire(p, "t1", NULL), "a"), "empty pool: first in config");
	ok(!strcmp(acquire(p, "t2", NULL), "b"), "then the idle one (0/4 < 1/2)");
	ok(!strcmp(acquire(p, "t3", NULL), "b"), "1/4 < 1/2");
	msleep(2);
	ok(!strcmp(acquire(p, "t4", NULL), "a"), "tie 1/2 = 2/4: least recently used");
	ok(!strcmp(acquire(p, "t5", NULL), "b") && !strcmp(acquire(p, "t6",
	    NULL), "b"), "a full, b takes the rest");
	ok(!strcmp(acquire(p, "t7", NULL), "-"), "pool full; disabled never used");
	ok(!strcmp(acquire(p, "t8", "off"), "-"), "a disabled scanner is never chosen");

	flush();
	np_key_inst(k, cfg, "p", "breaker", "a");
	freeReplyObject(redisCommand(rc_, "HSET %s open_until %lld failures 5",
	    k, (long long)np_now_ms() + 60000));
	ok(!strcmp(acquire(p, "t1", "a"), "-"), "open breaker: skipped");
	ok(np_lease_view(rc_, cfg, p, &v, &err) == 0 &&
	    v.v[0].breaker == NP_BREAKER_OPEN && v.v[v.chosen].scanner ==
	    &p->scanners[1], "view shows it open and picks another");
	np_pool_view_free(&v);
	freeReplyObject(redisCommand(rc_, "HSET %s open_until %lld", k,
	    (long long)np_now_ms() - 1));
	ok(!strcmp(acquire(p, "probe", "a"), "a"), "half-open: one probe goes");
	ok(!strcmp(acquire(p, "t2", "a"), "-"), "half-open: a second waits");

	flush();
	np_key_pool(k, cfg, "p", "queue");
	freeReplyObject(redisCommand(rc_, "LPUSH %s first", k));
	freeReplyObject(redisCommand(rc_, "LPUSH %s second", k));
	ok(np_lease_take(rc_, cfg, p, &v, &err) == 0 &&
	    !strcmp(v.task_id, "first"), "take: FIFO (%s)", v.task_id);
	first = v.deadline;
	np_pool_view_free(&v);
	np_key_inst(k, cfg, "p", "iq", "b");
	freeReplyObject(redisCommand(rc_, "LPUSH %s pinned-to-b", k));
	ok(np_lease_take(rc_, cfg, p, &v, &err) == 0 &&
	    !strcmp(v.task_id, "pinned-to-b") && v.v[v.chosen].scanner ==
	    &p->scanners[1], "take: a scanner's own queue goes first");
	np_pool_view_free(&v);
	np_lease_pin(rc_, cfg, "p", "pinned-to-b", &err);
	stale = first;
	msleep(5);	/* a deadline is in ms */
	ok(np_lease_renew(rc_, cfg, "p", "a", "first", &first, &err) == 0 &&
	    first > stale, "renew a live claim: its deadline moves");
	ok(np_lease_renew(rc_, cfg, "p", "a", "first", &stale, &err) == NP_NO,
	    "renew with a deadline the claim no longer has: lost");
	ok(np_lease_release(rc_, cfg, "p", "a", "first", stale, &err) == NP_NO &&
	    zcard("p", "a") == 1, "release by a holder that lost it: nothing");
	msleep(500);
	ok(np_lease_renew(rc_, cfg, "p", "a", "first", &first, &err) == 0,
	    "renew after the deadline, before recovery, still holds");
	np_key_pool(k, cfg, "p", "claims");
	freeReplyObject(redisCommand(rc_, "ZADD %s 1 first", k));
	ok((got = recover(p)) == 2, "recover: both expired claims put back "
	    "(%ld)", got);
	{
		redisReply *a, *b;
		np_key_inst(k, cfg, "p", "iq", "b");
		a = redisCommand(rc_, "LRANGE %s 0 -1", k);
		np_key_pool(k, cfg, "p", "queue");
		b = redisCommand(rc_, "RPOP %s", k);
		ok(a->elements == 1 && !strcmp(a->element[0]->str, "pinned-to-b") &&
		    b->str && !strcmp(b->str, "first"),
		    "a pinned task goes back to its scanner, the other to the "
		    "front of the pool queue");
		freeReplyObject(a);
		freeReplyObject(b);
	}
	ok(zcard("p", "a") == 0 && zcard("p", "b") == 0,
	    "recovered claims free their slots");

	/* A holder that outlived its lease, and the task's next holder. */
	flush();
	np_key_pool(k, cfg, "p", "queue");
	freeReplyObject(redisCommand(rc_, "LPUSH %s t", k));
	np_lease_take(rc_, cfg, p, &v, &err);
	tok1 = first = v.deadline;
	np_pool_view_free(&v);
	ok(np_lease_token(rc_, cfg, "p", "t", &tok, &err) == 0 && tok == tok1,
	    "a claim's token is the deadline it was taken with");
	msleep(5);
	np_lease_renew(rc_, cfg, "p", "a", "t", &first, &err);
	ok(np_lease_token(rc_, cfg, "p", "t", &tok, &err) == 0 && tok == tok1 &&
	    first != tok1, "renewals move the deadline, not the token");
	np_key_pool(k, cfg, "p", "claims");
	freeReplyObject(redisCommand(rc_, "ZADD %s 1 t", k));
	ok(recover(p) == 1 && np_lease_token(rc_, cfg, "p", "t", &tok, &err) ==
	    0 && tok == 0, "recovery drops the token");
	msleep(5);
	np_lease_take(rc_, cfg, p, &v, &err);
	tok2 = v.deadline;
	inst = v.v[v.chosen].scanner->instance_id;
	np_pool_view_free(&v);
	ok(tok2 != tok1 && zcard("p", inst) == 1, "taken again, a new token");
	ok(np_lease_free_slot(rc_, cfg, "p", inst, "t", tok1, &err) == NP_NO &&
	    zcard("p", inst) == 1, "the old holder frees nothing: the slot is "
	    "the new holder's");
	ok(np_lease_free_slot(rc_, cfg, "p", inst, "t", tok2, &err) == 0 &&
	    zcard("p", inst) == 0, "the new holder frees its slot");
	np_key_inst(k, cfg, "p", "slots", inst);
	freeReplyObject(redisCommand(rc_, "ZADD %s %lld t", k,
	    (long long)tok2));
	ok(np_lease_free_slot(rc_, cfg, "p", inst, "t", 0, &err) == 0 &&
	    zcard("p", inst) == 0, "token 0: any holder's (np-scan by hand)");
	ok(np_lease_release(rc_, cfg, "p", inst, "t", 0, &err) == 0 &&
	    np_lease_token(rc_, cfg, "p", "t", &tok, &err) == 0 && tok == 0,
	    "release drops the token");
	redisFree(rc_);
	np_config_free(cfg);
	done();
}
