/*
 * housekeep.c: np-housekeep's run, safe while workers run.
 *
 * One run: recover expired claims (np_recover_pool, the worker's own
 * recovery), then walk the task folders once: queued tasks that are in
 * no queue and no claim go back in line, finished scans are deleted
 * from their own scanner (when asked), expired records are deleted;
 * then index entries without a folder. task.json is the record and the
 * only thing decided on; Redis entries follow it.
 *
 * Nothing changes under a writer's feet: a folder is deleted or a record
 * rewritten only under the task's flock, taken without waiting (a task
 * being written is skipped this run), and re-read under it. A deleted
 * folder is first renamed out of sight, so that no command finds half a
 * task. Two runs never overlap: the caller holds np:housekeep:lock,
 * which the run keeps alive. All times are UTC epoch ms.
 *
 * A dry run takes the same decisions on the same data and changes
 * nothing: no file, no Redis key, no request to a scanner.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "np.h"

/* A worker heartbeat field silent this long is forgotten. */
#define WORKER_FORGET_MS (24 * 3600 * 1000LL)

#define LOCK_TTL_MS 600000
#define LOCK_RENEW_MS 60000
#define GRACE_MS 60000		/* a younger record may be half-way in */
#define TRASH ".housekeep-"	/* a folder being deleted */
#define PAGE 1000

/* KEYS: lock. ARGV: token. Deletes the lock only if it is still ours. */
static const char unlock_lua[] =
"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
"  return redis.call('DEL', KEYS[1])\n"
"end\n"
"return 0\n";

/* KEYS: lock. ARGV: token, ttl. Extends the lock only if it is ours. */
static const char renew_lua[] =
"if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
"  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
"end\n"
"return 0\n";

/*
 * KEYS: claims, wake, dlq, the list to put the task on, then every other
 * list it may wait in. ARGV: task, dry ('1': only say). The check and
 * the push are one step, so a worker taking or queueing the task
 * meanwhile never makes it queued twice; a queued task leaves the DLQ
 * (a retry cut short between its record and its push). Returns 1 when
 * the task was (or would be) put back, 0 when it is in line or claimed
 * after all.
 */
static const char lost_lua[] =
"if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end\n"
"for i = 4, #KEYS do\n"
"  if redis.call('LPOS', KEYS[i], ARGV[1]) then return 0 end\n"
"end\n"
"if ARGV[2] == '1' then return 1 end\n"
"redis.call('ZREM', KEYS[3], ARGV[1])\n"
"redis.call('RPUSH', KEYS[4], ARGV[1])\n"
"redis.call('LPUSH', KEYS[2], '1')\n"
"redis.call('LTRIM', KEYS[2], 0, 63)\n"
"return 1\n";

/* The ids of a pool that are in a queue or claimed, sorted. */
typedef struct {
	const np_pool *pool;
	char **ids;
	size_t n;
	bool taken;
} snapshot;

/* A scanner's client, opened at its first deletion of the run. */
typedef struct {
	const np_scanner *s;
	np_nessus *n;
	bool down;		/* failed this run: its other scans wait */
} conn;

typedef struct {
	redisContext *c;
	const np_config *cfg;
	const char *pool;	/* only this pool; NULL: all */
	bool dry, nessus;
	const char *lock;	/* our token; NULL: no lock to keep (dry) */
	int64_t now, renew_at;
	long deleted, recovered, requeued, orphans_removed, nessus_deleted;
	long workers_pruned;
	int64_t freed;
	json_t *folders, *index, *errors;
	snapshot *snaps;
	size_t nsnaps;
	conn *conns;
	size_t nconns;
	int stop;		/* nonzero: the run ends (Redis gone, lock lost) */
	np_error stop_err;
} run;

/* A per-task problem: logged and listed; the run goes on. */
static void
oops(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
oops(run *r, const char *fmt, ...)
{
	char msg[700], *p;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A name from disk may be any bytes; the list must stay JSON text. */
	for (p = msg; *p; p++)
		if (!isprint((unsigned char)*p))
			*p = '?';
	np_warn("%s", msg);
	json_array_append_new(r->errors, json_string(msg));
}

/* A Redis failure: a lost connection ends the run, an error reply is
 * one more problem listed. */
static void
redis_failed(run *r, const np_error *e, const char *what)
{
	if (r->c->err || e->code == NP_ETEMP) {
		if (r->stop == 0) {
			r->stop = e->code ? e->code : NP_ETEMP;
			r->stop_err = *e;
		}
		return;
	}
	oops(r, "%s: %s", what, e->msg);
}

/* Names read from disk or Redis may hold any byte; JSON wants text. */
static json_t *
shown(const char *s)
{
	char buf[128];
	size_t i;

	for (i = 0; s[i] && i < sizeof(buf) - 1; i++)
		buf[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	buf[i] = '\0';
	return json_string(buf);
}

static void
tasks_dir(const run *r, const char *name, char *buf, size_t n)
{
	snprintf(buf, n, "%s/tasks/%s", r->cfg->data_dir, name);
}

/* ---------------------------------------------------------------- lock */

int
np_housekeep_lock(redisContext *c, const np_config *cfg, char *token,
    size_t n, np_error *err)
{
	char k[NP_KEYMAX], host[256] = "localhost";
	redisReply *r;
	long long left;
	int rc;

	gethostname(host, sizeof(host) - 1);
	snprintf(token, n, "%s:%ld", host, (long)getpid());
	np_key_global(k, cfg, "housekeep:lock");
	if ((r = np_redis_cmd(c, err, "SET %s %s NX PX %d", k, token,
	    LOCK_TTL_MS)) == NULL)
		return err->code;
	rc = r->type == REDIS_REPLY_STATUS ? 0 : NP_ETEMP;
	freeReplyObject(r);
	if (rc == 0)
		return 0;
	/* Say who holds it, and for how long at most. */
	if ((r = np_redis_cmd(c, err, "GET %s", k)) == NULL)
		return err->code;
	snprintf(host, sizeof(host), "%s", r->type == REDIS_REPLY_STRING ?
	    r->str : "(gone)");
	freeReplyObject(r);
	if ((r = np_redis_cmd(c, err, "PTTL %s", k)) == NULL)
		return err->code;
	left = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
	freeReplyObject(r);
	return np_seterr(err, NP_ETEMP, "another np-housekeep is running "
	    "(%s holds %s, for %llds more at most); try again later", host, k,
	    left > 0 ? (left + 999) / 1000 : 0);
}

static int
lock_script(redisContext *c, const np_config *cfg, const char *script,
    const char *token, long long *out, np_error *err)
{
	char k[NP_KEYMAX], ttl[24];
	const char *argv[3];
	redisReply *r;
	int rc;

	np_key_global(k, cfg, "housekeep:lock");
	snprintf(ttl, sizeof(ttl), "%d", LOCK_TTL_MS);
	argv[0] = k;
	argv[1] = token;
	argv[2] = ttl;
	if ((rc = np_redis_eval(c, script, 1, 3, argv, &r, err)) != 0)
		return rc;
	*out = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
	freeReplyObject(r);
	return 0;
}

/* Releases the lock if it is still ours (an expired one may be another's). */
int
np_housekeep_unlock(redisContext *c, const np_config *cfg, const char *token,
    np_error *err)
{
	long long n;

	return lock_script(c, cfg, unlock_lua, token, &n, err);
}

/* A long run keeps its lock; a lock lost meanwhile ends the run. */
static void
keep_lock(run *r)
{
	np_error e;
	long long ok;

	if (r->stop || r->lock == NULL || np_now_ms() < r->renew_at)
		return;
	r->renew_at = np_now_ms() + LOCK_RENEW_MS;
	if (lock_script(r->c, r->cfg, renew_lua, r->lock, &ok, &e) != 0)
		redis_failed(r, &e, "lock");
	else if (!ok) {
		r->stop = NP_ETEMP;
		np_seterr(&r->stop_err, NP_ETEMP, "the housekeeping lock expired "
		    "and may be another's: stopping");
	}
}

/* Between two steps: is the run over (signal, Redis, lock)? */
static bool
stopped(run *r)
{
	if (np_interrupted && r->stop == 0) {
		r->stop = NP_ETEMP;
		np_seterr(&r->stop_err, NP_ETEMP, "interrupted");
	}
	keep_lock(r);
	return r->stop != 0;
}

/* ---------------------------------------------------------------- files */

/* Bytes of the regular files under path (symbolic links not followed). */
static int64_t
du(const char *path)
{
	char sub[PATH_MAX];
	struct dirent *de;
	struct stat st;
	int64_t n = 0;
	DIR *d;

	if (lstat(path, &st) == -1)
		return 0;
	if (S_ISREG(st.st_mode))
		return st.st_size;
	if (!S_ISDIR(st.st_mode) || (d = opendir(path)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		n += du(sub);
	}
	closedir(d);
	return n;
}

/*
 * The folder's flock, the one np_task_update takes, without waiting: a
 * task being written is left for the next run. -1 when busy, gone or
 * failing (which is listed).
 */
static int
lock_folder(run *r, const char *name)
{
	char path[PATH_MAX + 8];
	int fd;

	tasks_dir(r, name, path, PATH_MAX);
	strcat(path, "/.lock");
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) == -1) {
		if (errno != ENOENT)
			oops(r, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		np_info("%s: locked (being written); left for the next run",
		    path);
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Deletes a task folder (its lock held): renamed out of sight first, so
 * no command ever reads half of it, then removed. Returns the bytes
 * freed, or -1 when the folder is still there.
 */
static int64_t
remove_folder(run *r, const char *name)
{
	char dir[PATH_MAX], trash[PATH_MAX + 64];
	int64_t before, left;
	int e;

	tasks_dir(r, name, dir, sizeof(dir));
	snprintf(trash, sizeof(trash), "%s/tasks/" TRASH "%ld-%s",
	    r->cfg->data_dir, (long)getpid(), name);
	before = du(dir);
	if (rename(dir, trash) == -1) {
		oops(r, "%s: not deleted: %s", dir, strerror(errno));
		return -1;
	}
	if (np_rm_rf(trash) == 0)
		return before;
	/* Out of sight already; the next run removes the rest. */
	e = errno;
	left = du(trash);
	oops(r, "%s: partly removed (%s); the next run retries", trash,
	    strerror(e));
	return before - left;
}

/* Folders left by a run that stopped half-way: already deleted tasks. */
static void
remove_trash(run *r, const char *name)
{
	char dir[PATH_MAX];
	struct stat st;

	if (r->dry || strncmp(name, TRASH, strlen(TRASH)) != 0)
		return;
	/* One this run removed may still show in its own directory walk. */
	tasks_dir(r, name, dir, sizeof(dir));
	if (lstat(dir, &st) == -1)
		return;
	if (np_rm_rf(dir) == 0)
		np_info("%s: removed (left by an earlier run)", dir);
	else
		oops(r, "%s: %s", dir, strerror(errno));
}

/* ---------------------------------------------------------------- times */

static int64_t
field_ms(json_t *task, const char *key)
{
	int64_t ms;

	return np_parse_rfc3339(np_json_str(task, key), &ms) == 0 ? ms : -1;
}

/* When the task was last used: last_accessed_at, completed_at, created_at. */
static int64_t
last_use(json_t *task)
{
	static const char *const keys[] = { "last_accessed_at",
		"completed_at", "created_at" };
	int64_t ms;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if ((ms = field_ms(task, keys[i])) >= 0)
			return ms;
	return -1;
}

/* The TTL of a status; -1: never deleted (queued, running, unknown). */
static int64_t
ttl_of(const run *r, const char *status)
{
	if (status && !strcmp(status, "completed"))
		return r->cfg->s.ttl_completed;
	if (np_state_terminal(status))
		return r->cfg->s.ttl_failed;
	return -1;
}

static bool
expired(const run *r, json_t *task)
{
	int64_t ttl = ttl_of(r, np_json_str(task, "status"));
	int64_t used = last_use(task);

	return ttl >= 0 && used >= 0 && r->now - used > ttl;
}

/* Orphans go past ttl_failed, and never within a minute of their making. */
static int64_t
orphan_age(const run *r)
{
	return r->cfg->s.ttl_failed > GRACE_MS ? r->cfg->s.ttl_failed : GRACE_MS;
}

/* ---------------------------------------------------------------- Redis */

/* Drops a deleted task's index entries and DLQ entry, and counts it. */
static void
forget(run *r, const char *id, const char *pool, bool ttl)
{
	char dk[NP_KEYMAX], ck[NP_KEYMAX];
	np_error e;
	int n = 0;

	/* Through index.c, so the np:states counts follow. */
	if (np_index_del(r->c, r->cfg, id, &e) != 0) {
		redis_failed(r, &e, id);
		return;
	}
	if (pool && np_name_valid(pool)) {
		np_key_pool(dk, r->cfg, pool, "dlq");
		redisAppendCommand(r->c, "ZREM %s %s", dk, id);
		n++;
	}
	if (ttl) {
		/* Counted with each deletion: a run cut short counts right. */
		np_key_global(ck, r->cfg, "counters");
		redisAppendCommand(r->c, "HINCRBY %s ttl_deletions 1", ck);
		n++;
	}
	if (n && np_replies(r->c, n, &e) != 0)
		redis_failed(r, &e, id);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void
snap_add(snapshot *s, redisReply *r)
{
	size_t i;

	if (r->type != REDIS_REPLY_ARRAY)
		return;
	s->ids = np_xrealloc(s->ids, (s->n + r->elements + 1) * sizeof(*s->ids));
	for (i = 0; i < r->elements; i++)
		if (r->element[i]->type == REDIS_REPLY_STRING)
			s->ids[s->n++] = np_xstrdup(r->element[i]->str);
}

/*
 * What is in line or claimed in a pool, read once per run so that the
 * common case (a queued task that is in line) costs no round trip. A
 * task absent from it is checked again, atomically, before any push.
 */
static snapshot *
snap_of(run *r, const np_pool *p)
{
	char k[NP_KEYMAX];
	snapshot *s;
	redisReply *rep;
	np_error e;
	size_t i;

	for (i = 0; i < r->nsnaps; i++)
		if (r->snaps[i].pool == p)
			return r->snaps[i].taken ? &r->snaps[i] : NULL;
	r->snaps = np_xrealloc(r->snaps, (r->nsnaps + 1) * sizeof(*r->snaps));
	s = &r->snaps[r->nsnaps++];
	memset(s, 0, sizeof(*s));
	s->pool = p;
	for (i = 0; i <= p->nscanners + 1; i++) {
		if (i < p->nscanners)
			np_key_inst(k, r->cfg, p->name, "iq",
			    p->scanners[i].instance_id);
		else
			np_key_pool(k, r->cfg, p->name, i == p->nscanners ?
			    "queue" : "claims");
		rep = i <= p->nscanners ?
		    np_redis_cmd(r->c, &e, "LRANGE %s 0 -1", k) :
		    np_redis_cmd(r->c, &e, "ZRANGE %s 0 -1", k);
		if (rep == NULL) {
			redis_failed(r, &e, k);
			return NULL;
		}
		snap_add(s, rep);
		freeReplyObject(rep);
	}
	qsort(s->ids, s->n, sizeof(*s->ids), cmp_str);
	s->taken = true;
	return s;
}

static void
snaps_free(run *r)
{
	size_t i, j;

	for (i = 0; i < r->nsnaps; i++) {
		for (j = 0; j < r->snaps[i].n; j++)
			free(r->snaps[i].ids[j]);
		free(r->snaps[i].ids);
	}
	free(r->snaps);
}

/* ---------------------------------------------------------------- recovery */

/* Expired claims: the worker's own recovery, or, dry, their count. */
static void
recover_pool(run *r, const np_pool *p)
{
	char k[NP_KEYMAX];
	redisReply *rep;
	np_error e;
	size_t n;
	int i;

	if (r->dry) {
		np_key_pool(k, r->cfg, p->name, "claims");
		if ((rep = np_redis_cmd(r->c, &e, "ZCOUNT %s -inf %lld", k,
		    (long long)np_now_ms())) == NULL) {
			redis_failed(r, &e, k);
			return;
		}
		r->recovered += (long)rep->integer;
		freeReplyObject(rep);
		return;
	}
	/* It recovers a batch per call; go on until none is left. */
	for (i = 0; i < 1000 && !r->stop; i++) {
		if (np_recover_pool(r->c, r->cfg, p, &n, &e) != 0) {
			redis_failed(r, &e, p->name);
			return;
		}
		r->recovered += (long)n;
		if (n == 0)
			return;
	}
}

/*
 * np:{P}:workers gets a field per worker process ever started: those
 * silent for a day go, but the pool's newest, so that np-status --health
 * can still say when a worker was last seen. KEYS: workers. ARGV: before
 * (ms), dry (0/1). Returns the number of fields (to be) removed.
 */
static const char prune_lua[] =
"local h, newest, keep, n = redis.call('HGETALL', KEYS[1]), -1, nil, 0\n"
"for i = 1, #h, 2 do\n"
"  local v = tonumber(h[i + 1]) or 0\n"
"  if v > newest then newest, keep = v, h[i] end\n"
"end\n"
"for i = 1, #h, 2 do\n"
"  if h[i] ~= keep and (tonumber(h[i + 1]) or 0) < tonumber(ARGV[1]) then\n"
"    if ARGV[2] == '0' then redis.call('HDEL', KEYS[1], h[i]) end\n"
"    n = n + 1\n"
"  end\n"
"end\n"
"return n\n";

static void
prune_workers(run *r, const np_pool *p)
{
	char k[NP_KEYMAX], before[24];
	const char *argv[3];
	redisReply *rep;
	np_error e;

	np_key_pool(k, r->cfg, p->name, "workers");
	snprintf(before, sizeof(before), "%lld",
	    (long long)(r->now - WORKER_FORGET_MS));
	argv[0] = k, argv[1] = before, argv[2] = r->dry ? "1" : "0";
	if (np_redis_eval(r->c, prune_lua, 1, 3, argv, &rep, &e) != 0) {
		redis_failed(r, &e, k);
		return;
	}
	if (rep->type == REDIS_REPLY_INTEGER)
		r->workers_pruned += (long)rep->integer;
	freeReplyObject(rep);
}

static void
recover_all(run *r)
{
	size_t i;

	for (i = 0; i < r->cfg->npools && !stopped(r); i++)
		if (r->pool == NULL || !strcmp(r->pool,
		    r->cfg->pools[i].name)) {
			recover_pool(r, &r->cfg->pools[i]);
			if (!stopped(r))
				prune_workers(r, &r->cfg->pools[i]);
		}
}

/* ---------------------------------------------------------------- lost tasks */

/* The record's last change to its place in line (its creation, or the
 * last history event, a requeue writing it before the push). */
static bool
recently_queued(const run *r, json_t *task)
{
	json_t *h = json_object_get(task, "history");
	int64_t at;

	if ((at = field_ms(task, "created_at")) < 0 || r->now - at <= GRACE_MS)
		return true;
	if (json_array_size(h) == 0)
		return false;
	at = field_ms(json_array_get(h, json_array_size(h) - 1), "at");
	return at >= 0 && r->now - at <= GRACE_MS;
}

/* Where a lost task goes: its scanner's queue when the task must run
 * there (targeted, or its Nessus scan exists there), else the pool's. */
static void
lost_keys(run *r, const np_pool *p, json_t *task, char (*k)[NP_KEYMAX],
    size_t *nk)
{
	const char *inst = np_json_str(task, "scanner_instance");
	bool own = inst && np_name_valid(inst) &&
	    (json_is_true(json_object_get(task, "targeted_instance")) ||
	    json_integer_value(json_object_get(task, "nessus_scan_id")) > 0);
	size_t i;

	np_key_pool(k[0], r->cfg, p->name, "claims");
	np_key_pool(k[1], r->cfg, p->name, "wake");
	np_key_pool(k[2], r->cfg, p->name, "dlq");
	if (own)
		np_key_inst(k[3], r->cfg, p->name, "iq", inst);
	else
		np_key_pool(k[3], r->cfg, p->name, "queue");
	*nk = 4;
	if (own)
		np_key_pool(k[(*nk)++], r->cfg, p->name, "queue");
	for (i = 0; i < p->nscanners; i++)
		if (!own || strcmp(inst, p->scanners[i].instance_id) != 0)
			np_key_inst(k[(*nk)++], r->cfg, p->name, "iq",
			    p->scanners[i].instance_id);
}

/* Runs lost_lua; 1 put back (or would be), 0 not lost, -1 failed. */
static int
push_lost(run *r, const np_pool *p, const char *id, json_t *task)
{
	char (*k)[NP_KEYMAX] = np_xcalloc(p->nscanners + 5, NP_KEYMAX);
	const char **argv = np_xcalloc(p->nscanners + 7, sizeof(*argv));
	redisReply *rep;
	size_t nk, i;
	np_error e;
	int rc;

	lost_keys(r, p, task, k, &nk);
	for (i = 0; i < nk; i++)
		argv[i] = k[i];
	argv[nk] = id;
	argv[nk + 1] = r->dry ? "1" : "0";
	rc = np_redis_eval(r->c, lost_lua, (int)nk, (int)nk + 2, argv, &rep, &e);
	free(k);
	free(argv);
	if (rc != 0) {
		redis_failed(r, &e, id);
		return -1;
	}
	rc = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
	freeReplyObject(rep);
	return rc;
}

/* Under the folder lock: still queued? then the check and push, then
 * the record's history says why. */
static void
requeue_locked(run *r, const np_pool *p, const char *id)
{
	const char *st;
	json_t *task;
	np_error e;

	if (np_task_load(r->cfg, id, &task, &e) != 0) {
		oops(r, "task %s: %s", id, e.msg);
		return;
	}
	st = np_json_str(task, "status");
	if (st && !strcmp(st, "queued") && !recently_queued(r, task) &&
	    push_lost(r, p, id, task) == 1) {
		r->requeued++;
		np_info("task %s: queued but in no queue and not claimed; put "
		    "back in line", id);
		np_task_history(task, "requeued", "housekeeping: the task was "
		    "in no queue");
		if (np_task_write(r->cfg, id, task, NP_SYNC, &e) != 0)
			oops(r, "task %s: requeued, but its history was not "
			    "written: %s", id, e.msg);
	}
	json_decref(task);
}

/* A queued record in no queue and no claim (a crash between the record
 * and the push, or a run that never started) goes back in line. */
static void
lost_task(run *r, const char *id, json_t *task)
{
	const char *pool = np_json_str(task, "scanner_pool");
	const np_pool *p = pool ? np_config_pool(r->cfg, pool) : NULL;
	snapshot *s;
	int fd;

	if (field_ms(task, "created_at") < 0) {
		oops(r, "task %s: queued, but created_at is not a UTC time; not "
		    "checked", id);
		return;
	}
	if (recently_queued(r, task))
		return;
	if (p == NULL) {
		oops(r, "task %s: queued for pool '%s', which is not in the "
		    "config", id, pool ? pool : "");
		return;
	}
	if ((s = snap_of(r, p)) == NULL)
		return;
	if (bsearch(&id, s->ids, s->n, sizeof(*s->ids), cmp_str))
		return;
	if (r->dry) {
		if (push_lost(r, p, id, task) == 1) {
			r->requeued++;
			np_info("task %s: in no queue; would be put back", id);
		}
		return;
	}
	if ((fd = lock_folder(r, id)) == -1)
		return;
	requeue_locked(r, p, id);
	close(fd);
}

/* ---------------------------------------------------------------- Nessus */

static conn *
conn_of(run *r, const np_scanner *s)
{
	np_error e;
	size_t i;
	conn *c;

	for (i = 0; i < r->nconns; i++)
		if (r->conns[i].s == s)
			return &r->conns[i];
	r->conns = np_xrealloc(r->conns, (r->nconns + 1) * sizeof(*r->conns));
	c = &r->conns[r->nconns++];
	memset(c, 0, sizeof(*c));
	c->s = s;
	if ((c->n = np_nessus_open(r->cfg, s, &e)) == NULL) {
		oops(r, "scanner %s: %s", s->instance_id, e.msg);
		c->down = true;
	}
	return c;
}

static void
conns_free(run *r)
{
	size_t i;

	for (i = 0; i < r->nconns; i++)
		np_nessus_close(r->conns[i].n);
	free(r->conns);
}

/* A finished task whose Nessus scan is still to be deleted: its id. */
static long
scan_to_delete(json_t *task)
{
	if (!np_state_terminal(np_json_str(task, "status")) ||
	    np_json_str(task, "scanner_instance") == NULL ||
	    json_is_true(json_object_get(task, "nessus_deleted")))
		return 0;
	return (long)json_integer_value(json_object_get(task,
	    "nessus_scan_id"));
}

/* Under the folder lock: the record read again, its scan deleted on its
 * own scanner, and the record marked. Returns true when done. */
static bool
delete_scan_locked(run *r, const char *id, const np_scanner *s, long sid)
{
	char detail[160];
	json_t *task;
	np_error e;
	conn *c;

	if (np_task_load(r->cfg, id, &task, &e) != 0) {
		oops(r, "task %s: %s", id, e.msg);
		return false;
	}
	if (scan_to_delete(task) != sid || strcmp(np_json_str(task,
	    "scanner_instance"), s->instance_id) != 0) {
		json_decref(task);	/* changed meanwhile: next run */
		return false;
	}
	if ((c = conn_of(r, s))->down) {
		oops(r, "task %s: Nessus scan %ld on %s not deleted: the "
		    "scanner failed earlier in this run", id, sid, s->instance_id);
	} else if (np_nessus_delete(c->n, sid, &e) != 0) {
		oops(r, "task %s: Nessus scan %ld on %s not deleted: %s", id, sid,
		    s->instance_id, e.msg);
		/* Unreachable or refusing our keys: spare it the other calls. */
		c->down = e.code == NP_ETEMP || e.code == NP_ECONFIG ||
		    e.code == NP_EUNAVAIL;
	} else {
		json_object_set_new(task, "nessus_deleted", json_true());
		snprintf(detail, sizeof(detail), "scan %ld on %s", sid,
		    s->instance_id);
		np_task_history(task, "nessus_deleted", detail);
		if (np_task_write(r->cfg, id, task, NP_SYNC, &e) != 0)
			oops(r, "task %s: Nessus scan %ld deleted, but the record "
			    "was not updated: %s", id, sid, e.msg);
		r->nessus_deleted++;
		np_info("task %s: Nessus scan %ld deleted on %s", id, sid,
		    s->instance_id);
		json_decref(task);
		return true;
	}
	json_decref(task);
	return false;
}

/*
 * Deletes a finished task's scan on the scanner the record names, never
 * elsewhere. Returns false when its folder must stay (the scan is still
 * there and can still be deleted: its id must not be lost).
 */
static bool
nessus_task(run *r, const char *id, json_t *task)
{
	const char *pool = np_json_str(task, "scanner_pool");
	const char *inst = np_json_str(task, "scanner_instance");
	const np_pool *p = pool ? np_config_pool(r->cfg, pool) : NULL;
	const np_scanner *s = p ? np_pool_scanner(p, inst) : NULL;
	long sid = scan_to_delete(task);
	bool done;
	int fd;

	if (!r->nessus || sid <= 0)
		return true;
	if (s == NULL) {
		oops(r, "task %s: scanner %s/%s is not in the config; Nessus "
		    "scan %ld left alone", id, pool ? pool : "", inst, sid);
		return true;
	}
	if (r->dry) {
		r->nessus_deleted++;
		np_info("task %s: Nessus scan %ld on %s would be deleted", id,
		    sid, inst);
		return true;
	}
	if ((fd = lock_folder(r, id)) == -1)
		return false;
	done = delete_scan_locked(r, id, s, sid);
	close(fd);
	return done;
}

/* ---------------------------------------------------------------- TTL */

static void
log_deletion(const run *r, const char *id, json_t *task, int64_t bytes)
{
	char ts[32];

	np_rfc3339(last_use(task), ts);
	np_info("task %s: %s (%s, last used %s, %lld bytes)", id,
	    r->dry ? "would be deleted" : "deleted",
	    np_json_str(task, "status"), ts, (long long)bytes);
}

/* Under the folder lock: the record read again, still expired, gone. */
static void
delete_locked(run *r, const char *id)
{
	json_t *task;
	np_error e;
	int64_t bytes;

	if (np_task_load(r->cfg, id, &task, &e) != 0) {
		oops(r, "task %s: %s", id, e.msg);
		return;
	}
	if (expired(r, task) && (bytes = remove_folder(r, id)) >= 0) {
		r->deleted++;
		r->freed += bytes;
		log_deletion(r, id, task, bytes);
		forget(r, id, np_json_str(task, "scanner_pool"), true);
	}
	json_decref(task);
}

static void
ttl_task(run *r, const char *id, json_t *task)
{
	char dir[PATH_MAX];
	int64_t bytes;
	int fd;

	if (last_use(task) < 0) {
		oops(r, "task %s: no UTC time in last_accessed_at, completed_at "
		    "or created_at; left alone", id);
		return;
	}
	if (!expired(r, task))
		return;
	if (r->dry) {
		tasks_dir(r, id, dir, sizeof(dir));
		bytes = du(dir);
		r->deleted++;
		r->freed += bytes;
		log_deletion(r, id, task, bytes);
		return;
	}
	if ((fd = lock_folder(r, id)) == -1)
		return;
	delete_locked(r, id);
	close(fd);
}

/* ---------------------------------------------------------------- orphans */

/* A folder without a readable record: reported; removed when old. */
static void
orphan_folder(run *r, const char *name, int64_t mtime)
{
	char dir[PATH_MAX];
	json_t *task;
	np_error e;
	int64_t bytes;
	int fd;

	json_array_append_new(r->folders, shown(name));
	if (r->now - mtime <= orphan_age(r))
		return;
	if (r->dry) {
		tasks_dir(r, name, dir, sizeof(dir));
		r->orphans_removed++;
		r->freed += du(dir);
		np_info("%s: no valid task.json; would be removed", dir);
		return;
	}
	if ((fd = lock_folder(r, name)) == -1)
		return;
	/* Written meanwhile? Then it is a task after all. */
	if (np_task_id_valid(name) && np_task_load(r->cfg, name, &task, &e) == 0) {
		json_decref(task);
	} else if ((bytes = remove_folder(r, name)) >= 0) {
		r->orphans_removed++;
		r->freed += bytes;
		np_info("%s/tasks/%s: no valid task.json; removed",
		    r->cfg->data_dir, name);
	}
	close(fd);
}

/* ---------------------------------------------------------------- the walk */

static bool
pool_wanted(const run *r, const char *pool)
{
	return r->pool == NULL || (pool && !strcmp(pool, r->pool));
}

static void
visit_record(run *r, const char *id, json_t *task)
{
	const char *st = np_json_str(task, "status");

	if (!pool_wanted(r, np_json_str(task, "scanner_pool")))
		return;
	if (st && !strcmp(st, "queued"))
		lost_task(r, id, task);
	else if (np_state_terminal(st)) {
		/* The scan first: once the folder is gone, so is its id. */
		if (nessus_task(r, id, task))
			ttl_task(r, id, task);
	} else if (!np_state_valid(st))
		oops(r, "task %s: unknown status '%s'; left alone", id,
		    st ? st : "");
}

static void
visit(run *r, const char *name)
{
	char dir[PATH_MAX];
	struct stat st;
	json_t *task;
	np_error e;
	int rc;

	tasks_dir(r, name, dir, sizeof(dir));
	if (lstat(dir, &st) == -1 || !S_ISDIR(st.st_mode))
		return;
	if (!np_task_id_valid(name)) {
		/* Whose pool it was, nobody knows: only a full run judges. */
		if (r->pool == NULL)
			orphan_folder(r, name, (int64_t)st.st_mtime * 1000);
		return;
	}
	rc = np_task_load(r->cfg, name, &task, &e);
	if (rc == 0) {
		visit_record(r, name, task);
		json_decref(task);
	} else if (rc != NP_EDATA && rc != NP_ENOINPUT)
		oops(r, "task %s: %s", name, e.msg);
	else if (r->pool == NULL && (rc == NP_EDATA ||
	    r->now - (int64_t)st.st_mtime * 1000 > GRACE_MS))
		/* No task.json in a young folder: np-enqueue is writing it. */
		orphan_folder(r, name, (int64_t)st.st_mtime * 1000);
}

/* Returns false when the folder of the tasks cannot be read at all. */
static bool
walk(run *r)
{
	char dir[PATH_MAX];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/tasks", r->cfg->data_dir);
	if ((d = opendir(dir)) == NULL) {
		if (errno != ENOENT)
			oops(r, "%s: %s", dir, strerror(errno));
		return false;
	}
	while ((de = readdir(d)) != NULL && !stopped(r)) {
		if (de->d_name[0] == '.')
			remove_trash(r, de->d_name);
		else
			visit(r, de->d_name);
	}
	closedir(d);
	return true;
}

/* ---------------------------------------------------------------- index */

/* The pool of an index line "status\tpool\t...", into buf. */
static const char *
line_pool(redisReply *line, char *buf, size_t n)
{
	const char *p, *end;

	if (line->type != REDIS_REPLY_STRING ||
	    (p = strchr(line->str, '\t')) == NULL)
		return NULL;
	p++;
	end = strchr(p, '\t');
	snprintf(buf, n, "%.*s", (int)(end ? end - p : (long)strlen(p)), p);
	return buf;
}

/* An index entry without a folder: reported, removed when old. Returns
 * true when removed. */
static bool
index_orphan(run *r, redisReply *member, int64_t score, redisReply *line)
{
	char pool[72];
	const char *pn = line_pool(line, pool, sizeof(pool));

	if (!pool_wanted(r, pn))
		return false;
	json_array_append_new(r->index, shown(member->str));
	if (r->now - score <= orphan_age(r))
		return false;
	r->orphans_removed++;
	np_info("task %s: in the index, but no folder; %s", member->str,
	    r->dry ? "would be removed" : "removed");
	if (!r->dry)
		forget(r, member->str, pn, false);
	return !r->dry;
}

static bool
has_folder(const run *r, const char *id)
{
	char dir[PATH_MAX];
	struct stat st;

	if (!np_task_id_valid(id))
		return false;
	tasks_dir(r, id, dir, sizeof(dir));
	return stat(dir, &st) == 0 || errno != ENOENT;
}

/* One page of np:tasks (member, score pairs); returns the entries removed. */
static long
index_page(run *r, redisReply *page)
{
	char hk[NP_KEYMAX];
	redisReply *line;
	np_error e;
	long gone = 0;
	size_t i;

	np_key_global(hk, r->cfg, "tindex");
	for (i = 0; i + 1 < page->elements && !r->stop; i += 2) {
		redisReply *m = page->element[i];

		if (m->type != REDIS_REPLY_STRING || has_folder(r, m->str))
			continue;
		if ((line = np_redis_argv(r->c, &e, 3, (const char *[]){ "HGET",
		    hk, m->str }, (const size_t[]){ 4, strlen(hk), m->len })) ==
		    NULL) {
			redis_failed(r, &e, hk);
			break;
		}
		gone += index_orphan(r, m, (int64_t)atoll(
		    page->element[i + 1]->str), line);
		freeReplyObject(line);
	}
	return gone;
}

/* Pages in creation order; entries removed shift the ranks back. */
static void
index_orphans(run *r)
{
	char zk[NP_KEYMAX];
	redisReply *page;
	np_error e;
	long start = 0;
	size_t n;

	np_key_global(zk, r->cfg, "tasks");
	while (!stopped(r)) {
		if ((page = np_redis_cmd(r->c, &e, "ZRANGE %s %ld %ld WITHSCORES",
		    zk, start, start + PAGE - 1)) == NULL) {
			redis_failed(r, &e, zk);
			return;
		}
		n = page->elements / 2;
		start += (long)n - index_page(r, page);
		freeReplyObject(page);
		if (n < PAGE)
			return;
	}
}

/* ---------------------------------------------------------------- the run */

static json_t *
summary(run *r)
{
	json_t *o = json_object(), *orph = json_object();

	json_object_set_new(o, "dry_run", json_boolean(r->dry));
	json_object_set_new(o, "deleted", json_integer(r->deleted));
	json_object_set_new(o, "freed_bytes", json_integer(r->freed));
	json_object_set_new(o, "recovered", json_integer(r->recovered));
	json_object_set_new(o, "requeued", json_integer(r->requeued));
	json_object_set_new(o, "workers_pruned", json_integer(r->workers_pruned));
	json_object_set_new(orph, "folders", r->folders);
	json_object_set_new(orph, "index", r->index);
	json_object_set_new(o, "orphans", orph);
	json_object_set_new(o, "orphans_removed",
	    json_integer(r->orphans_removed));
	json_object_set_new(o, "nessus_deleted", json_integer(r->nessus_deleted));
	json_object_set_new(o, "errors", r->errors);
	return o;
}

/* No folder of tasks at all: a wrong or unmounted data_dir would make
 * every index entry look orphaned, so none is judged; say so. */
static void
index_unchecked(run *r)
{
	char zk[NP_KEYMAX];
	redisReply *rep;
	np_error e;

	np_key_global(zk, r->cfg, "tasks");
	if ((rep = np_redis_cmd(r->c, &e, "ZCARD %s", zk)) == NULL) {
		redis_failed(r, &e, zk);
		return;
	}
	if (rep->integer > 0)
		oops(r, "%s/tasks does not exist: the %lld entries of the task "
		    "index were not checked", r->cfg->data_dir, rep->integer);
	freeReplyObject(rep);
}

/*
 * One housekeeping run, for one pool or all (pool NULL). The caller
 * holds the lock named by its token, kept alive here, unless dry.
 * Returns 0, or the status that cut the run short (75: Redis gone, the
 * lock lost, interrupted), with *out the summary of what was done
 * either way.
 */
int
np_housekeep(redisContext *c, const np_config *cfg, const char *pool,
    int flags, const char *lock, json_t **out, np_error *err)
{
	run r = { .c = c, .cfg = cfg, .pool = pool, .lock = lock };

	r.dry = flags & NP_HK_DRY_RUN;
	r.nessus = flags & NP_HK_NESSUS;
	r.now = np_now_ms();
	r.renew_at = r.now + LOCK_RENEW_MS;
	r.folders = json_array();
	r.index = json_array();
	r.errors = json_array();
	/* Recovery first: a task back in line is not lost. */
	recover_all(&r);
	if (!r.stop && walk(&r))
		index_orphans(&r);
	else if (!r.stop)
		index_unchecked(&r);
	*out = summary(&r);
	snaps_free(&r);
	conns_free(&r);
	if (r.stop)
		return np_seterr(err, r.stop, "%s", r.stop_err.msg);
	return 0;
}
