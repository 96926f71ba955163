/*
 * np-worker: the long-running loop. Takes tasks of its pools together
 * with a slot on a scanner (one Lua script: never over a scanner's
 * max_concurrent_scans, whatever the number of workers), runs each in a
 * child process (np-scan's code, lib/scan.c, forked without exec; or
 * the program NP_SCAN_BIN names), renews the leases while children run,
 * and puts back in line what a dead worker left behind.
 *
 * SIGHUP re-reads the config (a broken one is refused and the old one
 * kept); SIGTERM and SIGINT stop taking tasks, stop the children (their
 * Nessus scans keep running), hand their tasks back and exit 0.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "np.h"

#define STOP_WAIT_MS 30000

typedef struct {
	pid_t pid;
	char id[NP_TASKID_LEN + 1];
	char pool[72];
	char inst[72];
	int64_t deadline;	/* of its claim, as last set: our token */
	bool lost;		/* its claim was recovered by someone else */
} child;

static volatile sig_atomic_t stopping, reloading;
static np_config *cfg;
static redisContext *rc_;
static char **pools;
static size_t npools;
static bool pools_given;
static child *kids;
static size_t nkids;
static char scan_bin[PATH_MAX];	/* empty: tasks run in the child itself */

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-worker [-d] [-m max_scans] [-p pool,...]\n");
	exit(status);
}

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
	np_interrupted = 1;	/* cuts short any backoff sleep */
}

static void
on_hup(int sig)
{
	(void)sig;
	reloading = 1;
}

static void
set_pools(const char *list)
{
	char *copy, *p, *tok;
	size_t i;

	for (i = 0; i < npools; i++)
		free(pools[i]);
	free(pools);
	pools = NULL;
	npools = 0;
	if (list == NULL) {
		for (i = 0; i < cfg->npools; i++) {
			pools = np_xrealloc(pools, (npools + 1) * sizeof(*pools));
			pools[npools++] = np_xstrdup(cfg->pools[i].name);
		}
		return;
	}
	copy = np_xstrdup(list);
	/* ':' too: unit names (np-worker@a:b.service) allow no comma. */
	for (p = copy; (tok = strsep(&p, ", :")) != NULL;) {
		if (*tok == '\0')
			continue;
		pools = np_xrealloc(pools, (npools + 1) * sizeof(*pools));
		pools[npools++] = np_xstrdup(tok);
	}
	free(copy);
}

/* Redis failed under us: reconnect with backoff, losing nothing. */
static void
reconnect(const np_error *why)
{
	int64_t wait = 500;
	np_error err;

	np_warn("%s; reconnecting", why->msg);
	redisFree(rc_);
	rc_ = NULL;
	while (!stopping) {
		if (np_redis_connect(cfg, &rc_, &err) == 0) {
			np_warn("redis: reconnected");
			return;
		}
		np_sleep_ms(wait);
		if ((wait *= 2) > 30000)
			wait = 30000;
	}
}

/* Checks a Redis-facing status; reconnects when the connection is gone. */
static bool
redis_ok(int rc, const np_error *err)
{
	if (rc == 0)
		return true;
	if (rc_ && rc_->err)
		reconnect(err);
	else
		np_warn("%s", err->msg);
	return false;
}

/* In the child: the task, as np-scan would run it; never returns. */
static void
run_scan(const char *id, int64_t token)
{
	char title[64];

	if (scan_bin[0]) {
		execl(scan_bin, "np-scan", id, (char *)NULL);
		fprintf(stderr, "np-worker: %s: %s\n", scan_bin, strerror(errno));
		_exit(NP_ESOFTWARE);
	}
	np_scan_signals();
	np_interrupted = 0;
	/* The worker's connection is the worker's: the task opens its own. */
	redisFree(rc_);
	rc_ = NULL;
	np_setprogname("np-scan");
	snprintf(title, sizeof(title), "np-scan %s", id);
	np_proctitle_set("np-scan", title);
	exit(np_scan_task(cfg, id, token));
}

static void
spawn(const np_pool *p, const np_pool_view *v)
{
	const char *inst = v->v[v->chosen].scanner->instance_id;
	pid_t ppid = getpid(), pid;
	child *k;

	fflush(NULL);	/* else the child would write it again */
	if ((pid = fork()) == -1) {
		np_error err;
		np_warn("fork: %s", strerror(errno));
		np_task_requeue(rc_, cfg, v->task_id, "worker could not fork", 0,
		    inst, &err);
		return;
	}
	if (pid == 0) {
		/* A scan whose worker is gone stops (leaving its Nessus scan
		 * running) so that the next worker can reattach to it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != ppid)
			_exit(NP_ETEMP);
		signal(SIGHUP, SIG_IGN);
		run_scan(v->task_id, v->deadline);
	}
	kids = np_xrealloc(kids, (nkids + 1) * sizeof(*kids));
	k = &kids[nkids++];
	memset(k, 0, sizeof(*k));
	k->pid = pid;
	snprintf(k->id, sizeof(k->id), "%s", v->task_id);
	snprintf(k->pool, sizeof(k->pool), "%s", p->name);
	snprintf(k->inst, sizeof(k->inst), "%s", inst);
	k->deadline = v->deadline;
	np_info("task %s: np-scan %d on %s/%s", k->id, (int)pid, p->name, inst);
}

/* Takes as many tasks as the served pools have free slots for. */
static bool
take_all(long max)
{
	bool took = false;
	size_t i;

	for (i = 0; i < npools && !stopping; i++) {
		const np_pool *p = np_config_pool(cfg, pools[i]);
		np_pool_view v;
		np_error err;

		while (p && (max <= 0 || (long)nkids < max) && !stopping) {
			if (!redis_ok(np_lease_take(rc_, cfg, p, &v, &err), &err))
				return took;
			if (v.chosen < 0) {
				np_pool_view_free(&v);
				break;
			}
			spawn(p, &v);
			np_pool_view_free(&v);
			took = true;
		}
	}
	return took;
}

/* Drops a child's claim and slot, if the claim is still ours. */
static int
release(child *k, np_error *err)
{
	return np_lease_release(rc_, cfg, k->pool, k->inst, k->id, k->deadline,
	    err);
}

/* Has the task's record ended (or gone, or become unreadable)? */
static bool
ended(const child *k, char *status, size_t n)
{
	json_t *task;
	np_error err;
	bool yes;

	if (np_task_load(cfg, k->id, &task, &err) != 0)
		return true;
	snprintf(status, n, "%s", np_json_str(task, "status") ?
	    np_json_str(task, "status") : "?");
	yes = np_state_terminal(np_json_str(task, "status"));
	json_decref(task);
	return yes;
}

/* What a child's exit means for its task. */
static void
finished(child *k, int status)
{
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	char why[600], st[32] = "";
	json_t *task;
	json_int_t tries;
	bool queued, odd = false;
	np_error err;

	if (rc_ == NULL) {
		/* Stopping while Redis is away: nothing can be handed back;
		 * the claim expires and recovery puts the task back in line. */
		np_warn("task %s: np-scan %d ended while Redis is unreachable; "
		    "the task is recovered when its lease expires", k->id,
		    (int)k->pid);
		return;
	}
	if (code == 0 || code == NP_NO || code == NP_ENOINPUT ||
	    code == NP_EDATA) {
		/* The end of the task, if its record says so. A child that
		 * says so and is wrong (a sanitizer's report exits 1, say)
		 * must not take the task out of every line. */
		if (ended(k, st, sizeof(st))) {
			int rc = release(k, &err);
			if (rc == NP_NO)
				np_warn("%s", err.msg);
			else if (!redis_ok(rc, &err))
				np_warn("task %s: slot not released; it expires",
				    k->id);
			return;
		}
		np_warn("task %s: np-scan %d exited %d, yet the task is still "
		    "%s: a failed attempt", k->id, (int)k->pid, code, st);
		odd = true;
	}
	/* Frozen past our deadline, we may learn only now that the task is
	 * someone else's: then its record and line are not ours to touch. */
	if (!k->lost && np_lease_renew(rc_, cfg, k->pool, k->inst, k->id,
	    &k->deadline, &err) == NP_NO)
		k->lost = true;
	if (k->lost) {
		np_warn("task %s: np-scan %d ended after its claim was "
		    "recovered elsewhere", k->id, (int)k->pid);
		return;
	}
	if (stopping) {
		/* Handed back at shutdown: the attempt does not count. */
		if (np_task_requeue(rc_, cfg, k->id, "worker stopping", -1,
		    k->inst, &err) != 0)
			np_warn("task %s: %s", k->id, err.msg);
		return;
	}
	if (np_task_load(cfg, k->id, &task, &err) != 0) {
		release(k, &err);
		return;
	}
	snprintf(why, sizeof(why), "%s%s", code < 0 ?
	    "np-scan killed by a signal; last error: " : odd ?
	    "np-scan exited without ending the task; last error: " : "",
	    np_json_str(task, "error") ? np_json_str(task, "error") :
	    "transient failure");
	/* An np-scan that died before it started the task (its record is
	 * still queued) used an attempt too: else a task whose np-scan
	 * always fails early would go round for ever. */
	queued = !strcmp(np_json_str(task, "status"), "queued");
	tries = json_integer_value(json_object_get(task, "attempts")) + queued;
	if (!queued && strcmp(np_json_str(task, "status"), "running") != 0) {
		/* Ended by an np-scan that died before Redis knew: its
		 * dead-letter entry and index line are put right. */
		if (np_task_republish(rc_, cfg, task, &err) != 0)
			np_warn("task %s: %s", k->id, err.msg);
		release(k, &err);
	} else if (tries >= cfg->s.max_attempts) {
		release(k, &err);
		char msg[700];
		snprintf(msg, sizeof(msg), "after %ld attempts: %s",
		    cfg->s.max_attempts, why);
		if (np_task_fail(rc_, cfg, k->id, "failed", "attempts_exhausted",
		    msg, &err) != 0)
			np_warn("task %s: %s", k->id, err.msg);
		else
			np_warn("task %s: dead-lettered after %ld attempts: %s",
			    k->id, cfg->s.max_attempts, why);
	} else if (np_task_requeue(rc_, cfg, k->id, why, queued, k->inst,
	    &err) != 0)
		np_warn("task %s: %s", k->id, err.msg);
	json_decref(task);
}

static void
reap(void)
{
	size_t i;
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < nkids; i++)
			if (kids[i].pid == pid)
				break;
		if (i == nkids)
			continue;
		finished(&kids[i], status);
		kids[i] = kids[--nkids];
	}
}

/* np:{P}:workers: worker -> last sign of life (ms), for monitors. */
static void
heartbeat(void)
{
	static char me[300];
	char k[NP_KEYMAX], now[24];
	size_t i;
	int owed = 0;
	np_error err;

	if (me[0] == '\0') {
		char host[256] = "?";
		gethostname(host, sizeof(host) - 1);
		snprintf(me, sizeof(me), "%s:%d", host, (int)getpid());
	}
	snprintf(now, sizeof(now), "%lld", (long long)np_now_ms());
	for (i = 0; i < npools; i++) {
		np_key_pool(k, cfg, pools[i], "workers");
		redisAppendCommand(rc_, "HSET %s %s %s", k, me, now);
		owed++;
	}
	redis_ok(np_replies(rc_, owed, &err), &err);
}

static void
renew_all(void)
{
	size_t i;
	np_error err;
	int rc;

	for (i = 0; i < nkids; i++) {
		if (kids[i].lost)
			continue;
		rc = np_lease_renew(rc_, cfg, kids[i].pool, kids[i].inst,
		    kids[i].id, &kids[i].deadline, &err);
		if (rc == NP_NO) {
			np_warn("%s; stopping np-scan %d", err.msg,
			    (int)kids[i].pid);
			kids[i].lost = true;
			kill(kids[i].pid, SIGTERM);
		} else if (!redis_ok(rc, &err))
			return;
	}
}

/* Claims whose holder stopped renewing go back in line. */
static void
recover_all(void)
{
	size_t i, n;
	np_error err;

	for (i = 0; i < npools; i++) {
		const np_pool *p = np_config_pool(cfg, pools[i]);

		if (p)
			redis_ok(np_recover_pool(rc_, cfg, p, &n, &err), &err);
	}
}

static bool
all_done(void)
{
	size_t i, j;
	char k[NP_KEYMAX];
	redisReply *r;
	np_error err;
	long long n = 0;

	for (i = 0; i < npools; i++) {
		const np_pool *p = np_config_pool(cfg, pools[i]);

		if (p == NULL)
			continue;
		/* Claims count too: a dead worker's task comes back when its
		 * lease expires, and a drain waits for it. */
		np_key_pool(k, cfg, p->name, "queue");
		if ((r = np_redis_cmd(rc_, &err, "LLEN %s", k)) == NULL) {
			redis_ok(err.code, &err);
			return false;
		}
		n += r->integer;
		freeReplyObject(r);
		np_key_pool(k, cfg, p->name, "claims");
		if ((r = np_redis_cmd(rc_, &err, "ZCARD %s", k)) == NULL) {
			redis_ok(err.code, &err);
			return false;
		}
		n += r->integer;
		freeReplyObject(r);
		for (j = 0; j < p->nscanners; j++) {
			np_key_inst(k, cfg, p->name, "iq", p->scanners[j].instance_id);
			if ((r = np_redis_cmd(rc_, &err, "LLEN %s", k)) == NULL) {
				redis_ok(err.code, &err);
				return false;
			}
			n += r->integer;
			freeReplyObject(r);
		}
	}
	return n == 0;
}

/* Sleeps until a task is queued or a slot frees (np:{P}:wake), or t ms. */
static void
wait_wake(int64_t ms)
{
	const char **argv = np_xcalloc(npools + 2, sizeof(*argv));
	char (*keys)[NP_KEYMAX] = np_xcalloc(npools, NP_KEYMAX);
	char t[32];
	redisReply *r;
	np_error err;
	size_t i;

	argv[0] = "BLPOP";
	for (i = 0; i < npools; i++) {
		np_key_pool(keys[i], cfg, pools[i], "wake");
		argv[i + 1] = keys[i];
	}
	snprintf(t, sizeof(t), "%.3f", (double)ms / 1000.0);
	argv[npools + 1] = t;
	if ((r = np_redis_argv(rc_, &err, (int)npools + 2, argv, NULL)) != NULL)
		freeReplyObject(r);
	else if (redis_ok(err.code, &err) == false && rc_ && !rc_->err)
		np_sleep_ms(ms);	/* an error reply: do not spin on it */
	free(argv);
	free(keys);
}

static void
reload(void)
{
	const char *path = cfg->path;
	np_config *n;
	np_error err;

	reloading = 0;
	np_notify("RELOADING=1");
	if (np_config_load(path, &n, &err) != 0) {
		np_warn("reload refused, keeping the running config: %s", err.msg);
		np_notify("READY=1\nSTATUS=reload refused; running the old config");
		return;
	}
	np_config_free(cfg);
	cfg = n;
	if (!pools_given)
		set_pools(NULL);
	np_warn("config reloaded from %s", cfg->path);
	np_notify("READY=1");
}

/* STATUS= for systemctl status: what the worker is doing. */
static void
tell_status(void)
{
	static size_t last = (size_t)-1;
	char st[128];

	if (nkids == last)
		return;
	last = nkids;
	snprintf(st, sizeof(st), "STATUS=%zu scan(s) running; serving %zu "
	    "pool(s)", nkids, npools);
	np_notify(st);
}

static void
shutdown_children(void)
{
	int64_t until = np_now_ms() + STOP_WAIT_MS;
	size_t i;

	for (i = 0; i < nkids; i++)
		kill(kids[i].pid, SIGTERM);
	while (nkids > 0 && np_now_ms() < until) {
		reap();
		if (nkids)
			nanosleep(&(struct timespec){ 0, 50000000L }, NULL);
	}
	for (i = 0; i < nkids; i++)
		kill(kids[i].pid, SIGKILL);
	while (nkids > 0) {
		int status;
		pid_t pid = waitpid(-1, &status, 0);
		if (pid == -1)
			break;
		for (i = 0; i < nkids; i++)
			if (kids[i].pid == pid) {
				finished(&kids[i], status);
				kids[i] = kids[--nkids];
				break;
			}
	}
}


int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pools", required_argument, NULL, 'p' },
		{ "drain", no_argument, NULL, 'd' },
		{ "max-scans", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction stop = { .sa_handler = on_stop };
	struct sigaction hup = { .sa_handler = on_hup };
	const char *list = NULL, *env;
	int64_t next_renew = 0, next_recover = 0, next_dog = 0, tick, wait, dog;
	long max = 0;
	bool drain = false;
	size_t i;
	int ch;

	np_proctitle_init(argc, argv);
	np_setprogname(argv[0]);
	/* A daemon's journal wants each task's story; children inherit it. */
	setenv("NP_LOG_LEVEL", "info", 0);
	while ((ch = getopt_long(argc, argv, "p:dm:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'p':
			list = optarg;
			break;
		case 'd':
			drain = true;
			break;
		case 'm':
			if (np_parse_int(optarg, 1, 100000, &max) == -1)
				np_die(NP_EUSAGE, "--max-scans: expected 1 to 100000");
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
	if (list == NULL && (list = getenv("NP_POOLS")) != NULL && !*list)
		list = NULL;
	if (list == NULL && (list = getenv("WORKER_POOLS")) != NULL && !*list)
		list = NULL;
	pools_given = list != NULL;
	cfg = np_config_open();
	set_pools(list);
	for (i = 0; i < npools; i++)
		if (!np_name_valid(pools[i]) || !np_config_pool(cfg, pools[i]))
			np_die(NP_ECONFIG, "no pool named '%s' in %s", pools[i],
			    cfg->path);
	if (npools == 0)
		np_die(NP_EUSAGE, "no pools to serve");
	/* Another program per task (a wrapper, valgrind), else in-process. */
	if ((env = getenv("NP_SCAN_BIN")) != NULL && *env)
		snprintf(scan_bin, sizeof(scan_bin), "%s", env);
	else
		np_nessus_init();
	sigaction(SIGTERM, &stop, NULL);
	sigaction(SIGINT, &stop, NULL);
	sigaction(SIGHUP, &hup, NULL);
	/* A dropped Redis or scanner connection is an error to handle,
	 * not a reason to die. */
	signal(SIGPIPE, SIG_IGN);
	rc_ = np_redis_open(cfg);
	{
		json_t *problems = json_array(), *p;
		np_error err;
		size_t k;

		np_redis_check_settings(rc_, problems, &err);
		json_array_foreach(problems, k, p)
			np_warn("%s", json_string_value(p));
		json_decref(problems);
	}
	np_info("serving %zu pool(s); tasks run %s%s", npools, scan_bin[0] ?
	    "by " : "in-process", scan_bin);
	tick = cfg->s.lease_ttl / 3;
	dog = np_watchdog_ms();
	np_notify("READY=1");
	while (!stopping) {
		int64_t now = np_now_ms();

		if (dog && now >= next_dog) {
			np_notify("WATCHDOG=1");
			next_dog = now + dog;
		}
		tell_status();

		if (reloading) {
			reload();
			tick = cfg->s.lease_ttl / 3;
		}
		if (rc_ == NULL)
			reconnect(&(np_error){ NP_ETEMP, "redis: not connected" });
		if (stopping)
			break;
		reap();
		if (now >= next_renew) {
			heartbeat();
			renew_all();
			next_renew = now + tick;
		}
		if (now >= next_recover) {
			recover_all();
			next_recover = now + tick;
		}
		if (take_all(max))
			continue;
		if (drain && nkids == 0 && all_done())
			break;
		/* Wake at least every tick, and before the command timeout. */
		wait = tick < 1000 ? tick : 1000;
		if (wait > cfg->s.redis_timeout / 2)
			wait = cfg->s.redis_timeout / 2;
		if (dog && wait > dog)
			wait = dog;
		wait_wake(wait);
	}
	np_notify("STOPPING=1");
	shutdown_children();
	for (i = 0; i < npools; i++)
		free(pools[i]);
	free(pools);
	free(kids);
	redisFree(rc_);
	np_config_free(cfg);
	return 0;
}
