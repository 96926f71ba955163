/*
 * lease.c: scanner slots, task claims, and the choice of a scanner.
 *
 * A slot on a scanner is a lease: an entry in np:{P}:slots:<inst> (ZSET
 * task id -> deadline in ms). A task taken from a queue is claimed in
 * np:{P}:claims with the same deadline, and np:{P}:claimed maps it to its
 * scanner. Holders push both deadlines forward (renew); a holder that
 * dies stops renewing, and recover puts its task back in line and frees
 * its slot. A slot counts as long as its task is claimed, even past its
 * deadline: a late holder's scan still runs on the scanner, and freeing
 * its slot before recovery would put one scan too many there. The choice of a scanner and the
 * taking of its slot happen in one Lua script, so any number of workers
 * on any number of hosts never put more than max_concurrent_scans on a
 * scanner. The same script, read-only, answers np-select.
 *
 * A claim also has a token (np:{P}:holders, task id -> the deadline set
 * when it was taken) that stays the same while its holder renews: a scan
 * whose holder outlived its lease checks it before freeing the slot the
 * task's next holder may have taken on the same scanner.
 *
 * A task taken from a scanner's own queue (targeted, or with its Nessus
 * scan there) is pinned (np:{P}:pinned): if its holder dies, recovery
 * puts it back on that scanner's queue, never on another scanner.
 */
#include <stdlib.h>
#include <string.h>

#include "np.h"

/*
 * KEYS: claims, claimed, lru, queue, pinned, then per scanner slots,
 * breaker, iq, then holders (last).
 * ARGV: mode (view|acquire|take), now, deadline, task, wanted instance,
 * n, then per scanner instance, max, enabled.
 * Returns { chosen (0-based or -1), task, then per scanner active,
 * breaker state (0 closed 1 open 2 half-open), open_until, failures,
 * last_pick }.
 */
static const char pick_lua[] =
"local mode, now, deadline = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])\n"
"local task, want, n = ARGV[4], ARGV[5], tonumber(ARGV[6])\n"
"local st = {}\n"
"for i = 0, n - 1 do\n"
"  local slots, bk = KEYS[6 + 3 * i], KEYS[7 + 3 * i]\n"
"  local late = 0\n"
"  for _, id in ipairs(redis.call('ZRANGEBYSCORE', slots, '-inf', now)) do\n"
"    if redis.call('ZSCORE', KEYS[1], id) then late = late + 1\n"
"    elseif mode ~= 'view' then redis.call('ZREM', slots, id) end\n"
"  end\n"
"  local s = { inst = ARGV[7 + 3 * i], max = tonumber(ARGV[8 + 3 * i]),\n"
"    en = ARGV[9 + 3 * i] == '1', state = 0, ok = true }\n"
"  s.active = redis.call('ZCOUNT', slots, '(' .. now, '+inf') + late\n"
"  local b = redis.call('HMGET', bk, 'open_until', 'probe_until', 'failures')\n"
"  s.ou, s.f = tonumber(b[1]) or 0, tonumber(b[3]) or 0\n"
"  if s.ou > 0 then\n"
"    if now < s.ou then s.state, s.ok = 1, false\n"
"    else s.state, s.ok = 2, (tonumber(b[2]) or 0) <= now end\n"
"  end\n"
"  s.lp = tonumber(redis.call('HGET', KEYS[3], s.inst)) or 0\n"
"  st[i + 1] = s\n"
"end\n"
"local order = {}\n"
"for i = 1, n do\n"
"  local s = st[i]\n"
"  if s.en and s.ok and s.active < s.max and (want == '' or want == s.inst) then\n"
"    order[#order + 1] = i\n"
"  end\n"
"end\n"
"table.sort(order, function(a, b)\n"
"  local x, y = st[a], st[b]\n"
"  if x.active * y.max ~= y.active * x.max then\n"
"    return x.active * y.max < y.active * x.max\n"
"  end\n"
"  if x.lp ~= y.lp then return x.lp < y.lp end\n"
"  return a < b\n"
"end)\n"
"local chosen, id, pinned = -1, task, false\n"
"if mode == 'take' then\n"
"  id = ''\n"
"  for _, i in ipairs(order) do\n"
"    local t = redis.call('RPOP', KEYS[8 + 3 * (i - 1)])\n"
"    if t then pinned = true\n"
"    elseif want == '' then t = redis.call('RPOP', KEYS[4]) end\n"
"    if t then chosen, id = i, t break end\n"
"  end\n"
"elseif #order > 0 then chosen = order[1] end\n"
"if chosen > 0 and mode ~= 'view' then\n"
"  local s = st[chosen]\n"
"  redis.call('ZADD', KEYS[6 + 3 * (chosen - 1)], deadline, id)\n"
"  redis.call('ZADD', KEYS[1], deadline, id)\n"
"  redis.call('HSET', KEYS[2], id, s.inst)\n"
"  redis.call('HSET', KEYS[#KEYS], id, ARGV[3])\n"
"  redis.call('HSET', KEYS[3], s.inst, now)\n"
"  if pinned then redis.call('SADD', KEYS[5], id) end\n"
"  if s.state == 2 then\n"
"    redis.call('HSET', KEYS[7 + 3 * (chosen - 1)], 'probe_until', deadline, 'probe', id)\n"
"  end\n"
"  s.active = s.active + 1\n"
"  s.lp = now\n"
"end\n"
"local out = { chosen - (chosen > 0 and 1 or 0), id }\n"
"for i = 1, n do\n"
"  local s = st[i]\n"
"  for _, v in ipairs({ s.active, s.state, s.ou, s.f, s.lp }) do\n"
"    out[#out + 1] = v\n"
"  end\n"
"end\n"
"return out\n";

/*
 * KEYS: claims, slots of inst, breaker of inst. ARGV: task, deadline,
 * the deadline the holder last set (0: any). A claim recovered, or
 * recovered and taken again by another worker, is not renewed: a holder
 * that was frozen past its deadline learns it lost the task.
 */
static const char renew_lua[] =
"local s = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
"if not s then return 0 end\n"
"if ARGV[3] ~= '0' and tonumber(s) ~= tonumber(ARGV[3]) then return 0 end\n"
"redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[1])\n"
"redis.call('ZADD', KEYS[2], 'XX', ARGV[2], ARGV[1])\n"
"if redis.call('HGET', KEYS[3], 'probe') == ARGV[1] then\n"
"  redis.call('HSET', KEYS[3], 'probe_until', ARGV[2])\n"
"end\n"
"return 1\n";

/*
 * KEYS: claims, claimed, slots of inst, pinned, wake, holders. ARGV: task,
 * the holder's deadline (0: any). Another holder's claim is left alone (-1).
 */
static const char release_lua[] =
"if ARGV[2] ~= '0' then\n"
"  local s = redis.call('ZSCORE', KEYS[1], ARGV[1])\n"
"  if s and tonumber(s) ~= tonumber(ARGV[2]) then return -1 end\n"
"end\n"
"redis.call('ZREM', KEYS[1], ARGV[1])\n"
"redis.call('HDEL', KEYS[2], ARGV[1])\n"
"redis.call('HDEL', KEYS[6], ARGV[1])\n"
"local n = redis.call('ZREM', KEYS[3], ARGV[1])\n"
"redis.call('SREM', KEYS[4], ARGV[1])\n"
"redis.call('LPUSH', KEYS[5], '1')\n"
"redis.call('LTRIM', KEYS[5], 0, 63)\n"
"return n\n";

/*
 * KEYS: claims, slots of inst, wake, holders. ARGV: task, the holder's
 * token (0: any). The scan has ended on the scanner: its slot is free for
 * the next one while the holder, still claiming the task, downloads and
 * checks the export. (Renewals push only the deadlines of slots that
 * exist.) A claim with another token is the task's next holder's (-1).
 */
static const char free_slot_lua[] =
"if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end\n"
"local t = redis.call('HGET', KEYS[4], ARGV[1])\n"
"if ARGV[2] ~= '0' and t and t ~= ARGV[2] then return -1 end\n"
"redis.call('ZREM', KEYS[2], ARGV[1])\n"
"redis.call('LPUSH', KEYS[3], '1')\n"
"redis.call('LTRIM', KEYS[3], 0, 63)\n"
"return 1\n";

/*
 * KEYS: claims, claimed, queue, pinned, wake, holders. ARGV: now, key prefix of
 * the pool ("np:{P}:"). A claim past its deadline is dropped, its slot
 * freed, and its task put back at the front of the line: on its
 * scanner's own queue when its Nessus scan exists there (pinned), else
 * on the pool queue. Returns the ids put back.
 */
static const char recover_lua[] =
"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 1000)\n"
"for _, id in ipairs(ids) do\n"
"  redis.call('ZREM', KEYS[1], id)\n"
"  local inst = redis.call('HGET', KEYS[2], id)\n"
"  redis.call('HDEL', KEYS[2], id)\n"
"  redis.call('HDEL', KEYS[6], id)\n"
"  if inst then redis.call('ZREM', ARGV[2] .. 'slots:' .. inst, id) end\n"
"  if inst and redis.call('SREM', KEYS[4], id) == 1 then\n"
"    redis.call('RPUSH', ARGV[2] .. 'iq:' .. inst, id)\n"
"  else\n"
"    redis.call('RPUSH', KEYS[3], id)\n"
"  end\n"
"end\n"
"if #ids > 0 then redis.call('LPUSH', KEYS[5], '1') redis.call('LTRIM', KEYS[5], 0, 63) end\n"
"return ids\n";

const char *
np_breaker_name(int b)
{
	return b == NP_BREAKER_OPEN ? "open" :
	    b == NP_BREAKER_HALF_OPEN ? "half_open" : "closed";
}

void
np_pool_view_free(np_pool_view *v)
{
	free(v->v);
	memset(v, 0, sizeof(*v));
}

static long long
int_at(redisReply *r, size_t i)
{
	if (i >= r->elements)
		return 0;
	if (r->element[i]->type == REDIS_REPLY_INTEGER)
		return r->element[i]->integer;
	if (r->element[i]->type == REDIS_REPLY_STRING)
		return atoll(r->element[i]->str);
	return 0;
}

static int
pick(redisContext *c, const np_config *cfg, const np_pool *p,
    const char *mode, const char *task, const char *want, np_pool_view *out,
    np_error *err)
{
	size_t n = p->nscanners, i, nkeys = 6 + 3 * n, nargs = nkeys + 6 + 3 * n;
	const char **argv = np_xcalloc(nargs, sizeof(*argv));
	char (*keys)[NP_KEYMAX] = np_xcalloc(nkeys, NP_KEYMAX);
	char (*nums)[24] = np_xcalloc(3 + 2 * n, 24);
	int64_t now = np_now_ms();
	redisReply *r;
	size_t a = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	np_key_pool(keys[0], cfg, p->name, "claims");
	np_key_pool(keys[1], cfg, p->name, "claimed");
	np_key_pool(keys[2], cfg, p->name, "lru");
	np_key_pool(keys[3], cfg, p->name, "queue");
	np_key_pool(keys[4], cfg, p->name, "pinned");
	for (i = 0; i < n; i++) {
		const char *id = p->scanners[i].instance_id;
		np_key_inst(keys[5 + 3 * i], cfg, p->name, "slots", id);
		np_key_inst(keys[6 + 3 * i], cfg, p->name, "breaker", id);
		np_key_inst(keys[7 + 3 * i], cfg, p->name, "iq", id);
	}
	np_key_pool(keys[nkeys - 1], cfg, p->name, "holders");
	for (i = 0; i < nkeys; i++)
		argv[a++] = keys[i];
	snprintf(nums[0], 24, "%lld", (long long)now);
	snprintf(nums[1], 24, "%lld", (long long)(now + cfg->s.lease_ttl));
	snprintf(nums[2], 24, "%zu", n);
	argv[a++] = mode;
	argv[a++] = nums[0];
	argv[a++] = nums[1];
	argv[a++] = task ? task : "";
	argv[a++] = want ? want : "";
	argv[a++] = nums[2];
	for (i = 0; i < n; i++) {
		snprintf(nums[3 + 2 * i], 24, "%d",
		    p->scanners[i].max_concurrent_scans);
		snprintf(nums[4 + 2 * i], 24, "%d", p->scanners[i].enabled);
		argv[a++] = p->scanners[i].instance_id;
		argv[a++] = nums[3 + 2 * i];
		argv[a++] = nums[4 + 2 * i];
	}
	rc = np_redis_eval(c, pick_lua, (int)nkeys, (int)a, argv, &r, err);
	free(argv);
	free(keys);
	free(nums);
	if (rc)
		return rc;
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 + 5 * n) {
		freeReplyObject(r);
		return np_seterr(err, NP_ESOFTWARE, "redis: unexpected reply "
		    "from the scanner choice script");
	}
	out->n = n;
	out->v = np_xcalloc(n, sizeof(*out->v));
	out->chosen = (long)int_at(r, 0);
	out->deadline = now + cfg->s.lease_ttl;
	if (r->element[1]->type == REDIS_REPLY_STRING &&
	    r->element[1]->len <= NP_TASKID_LEN)
		memcpy(out->task_id, r->element[1]->str, r->element[1]->len);
	for (i = 0; i < n; i++) {
		np_slot_view *v = &out->v[i];
		v->scanner = &p->scanners[i];
		v->active = (long)int_at(r, 2 + 5 * i);
		v->breaker = (int)int_at(r, 3 + 5 * i);
		v->open_until = int_at(r, 4 + 5 * i);
		v->failures = (long)int_at(r, 5 + 5 * i);
		v->last_pick = int_at(r, 6 + 5 * i);
	}
	freeReplyObject(r);
	return 0;
}

/* The pool's scanners as they are now, and the one a task would get. */
int
np_lease_view(redisContext *c, const np_config *cfg, const np_pool *p,
    np_pool_view *out, np_error *err)
{
	return pick(c, cfg, p, "view", NULL, NULL, out, err);
}

/*
 * Leases a slot for task_id on the best scanner of the pool (or on want
 * only). out->chosen is -1 when no scanner has a free slot.
 */
int
np_lease_acquire(redisContext *c, const np_config *cfg, const np_pool *p,
    const char *task_id, const char *want, np_pool_view *out, np_error *err)
{
	return pick(c, cfg, p, "acquire", task_id, want, out, err);
}

/*
 * Takes the next task of the pool together with a slot for it: a task
 * waiting for one scanner first, else the pool queue, FIFO. out->chosen
 * is -1 when nothing could be taken (no task, or no free slot).
 */
int
np_lease_take(redisContext *c, const np_config *cfg, const np_pool *p,
    np_pool_view *out, np_error *err)
{
	return pick(c, cfg, p, "take", NULL, NULL, out, err);
}

int
np_lease_renew(redisContext *c, const np_config *cfg, const char *pool,
    const char *inst, const char *task_id, int64_t *deadline, np_error *err)
{
	char k[3][NP_KEYMAX], dl[24], was[24];
	const char *argv[6];
	int64_t next = np_now_ms() + cfg->s.lease_ttl;
	redisReply *r;
	int rc;

	np_key_pool(k[0], cfg, pool, "claims");
	np_key_inst(k[1], cfg, pool, "slots", inst);
	np_key_inst(k[2], cfg, pool, "breaker", inst);
	snprintf(dl, sizeof(dl), "%lld", (long long)next);
	snprintf(was, sizeof(was), "%lld", (long long)*deadline);
	argv[0] = k[0], argv[1] = k[1], argv[2] = k[2];
	argv[3] = task_id, argv[4] = dl, argv[5] = was;
	if ((rc = np_redis_eval(c, renew_lua, 3, 6, argv, &r, err)) != 0)
		return rc;
	rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 :
	    np_seterr(err, NP_NO, "task %s: claim lost (expired and recovered)",
	    task_id);
	if (rc == 0)
		*deadline = next;
	freeReplyObject(r);
	return rc;
}

/* A script's -1: the claim is another holder's. Frees the reply. */
static int
fenced(redisReply *r, const char *task_id, np_error *err)
{
	int rc = r->type == REDIS_REPLY_INTEGER && r->integer < 0 ?
	    np_seterr(err, NP_NO, "task %s: claimed by another worker now",
	    task_id) : 0;

	freeReplyObject(r);
	return rc;
}

int
np_lease_release(redisContext *c, const np_config *cfg, const char *pool,
    const char *inst, const char *task_id, int64_t deadline, np_error *err)
{
	char k[6][NP_KEYMAX], was[24];
	const char *argv[8];
	redisReply *r;
	int rc;

	np_key_pool(k[0], cfg, pool, "claims");
	np_key_pool(k[1], cfg, pool, "claimed");
	np_key_inst(k[2], cfg, pool, "slots", inst);
	np_key_pool(k[3], cfg, pool, "pinned");
	np_key_pool(k[4], cfg, pool, "wake");
	np_key_pool(k[5], cfg, pool, "holders");
	for (int i = 0; i < 6; i++)
		argv[i] = k[i];
	argv[6] = task_id;
	snprintf(was, sizeof(was), "%lld", (long long)deadline);
	argv[7] = was;
	if ((rc = np_redis_eval(c, release_lua, 6, 8, argv, &r, err)) != 0)
		return rc;
	return fenced(r, task_id, err);
}

/* Marks a claimed task as bound to its scanner (its Nessus scan exists). */
int
np_lease_pin(redisContext *c, const np_config *cfg, const char *pool,
    const char *task_id, np_error *err)
{
	char k[NP_KEYMAX];
	redisReply *r;

	np_key_pool(k, cfg, pool, "pinned");
	if ((r = np_redis_cmd(c, err, "SADD %s %s", k, task_id)) == NULL)
		return err->code;
	freeReplyObject(r);
	return 0;
}

/*
 * The holder's scan ended on its scanner: frees the slot, keeps the
 * claim. NP_NO: the claim has another token, the task has a new holder.
 */
int
np_lease_free_slot(redisContext *c, const np_config *cfg, const char *pool,
    const char *inst, const char *task_id, int64_t token, np_error *err)
{
	char k[4][NP_KEYMAX], tok[24];
	const char *argv[6];
	redisReply *r;
	int rc;

	np_key_pool(k[0], cfg, pool, "claims");
	np_key_inst(k[1], cfg, pool, "slots", inst);
	np_key_pool(k[2], cfg, pool, "wake");
	np_key_pool(k[3], cfg, pool, "holders");
	for (int i = 0; i < 4; i++)
		argv[i] = k[i];
	argv[4] = task_id;
	snprintf(tok, sizeof(tok), "%lld", (long long)token);
	argv[5] = tok;
	if ((rc = np_redis_eval(c, free_slot_lua, 4, 6, argv, &r, err)) != 0)
		return rc;
	return fenced(r, task_id, err);
}

/* The token of a task's claim, 0 when it has none. */
int
np_lease_token(redisContext *c, const np_config *cfg, const char *pool,
    const char *task_id, int64_t *token, np_error *err)
{
	char k[NP_KEYMAX];
	redisReply *r;

	np_key_pool(k, cfg, pool, "holders");
	if ((r = np_redis_cmd(c, err, "HGET %s %s", k, task_id)) == NULL)
		return err->code;
	*token = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
	freeReplyObject(r);
	return 0;
}

int
np_lease_recover(redisContext *c, const np_config *cfg, const np_pool *p,
    char ***ids, size_t *n, np_error *err)
{
	char k[6][NP_KEYMAX], now[24], prefix[NP_KEYMAX];
	const char *argv[8];
	redisReply *r;
	size_t i;
	int rc;

	*ids = NULL;
	*n = 0;
	np_key_pool(k[0], cfg, p->name, "claims");
	np_key_pool(k[1], cfg, p->name, "claimed");
	np_key_pool(k[2], cfg, p->name, "queue");
	np_key_pool(k[3], cfg, p->name, "pinned");
	np_key_pool(k[4], cfg, p->name, "wake");
	np_key_pool(k[5], cfg, p->name, "holders");
	np_key_pool(prefix, cfg, p->name, "");
	snprintf(now, sizeof(now), "%lld", (long long)np_now_ms());
	for (i = 0; i < 6; i++)
		argv[i] = k[i];
	argv[6] = now;
	argv[7] = prefix;
	if ((rc = np_redis_eval(c, recover_lua, 6, 8, argv, &r, err)) != 0)
		return rc;
	if (r->type == REDIS_REPLY_ARRAY && r->elements) {
		*ids = np_xcalloc(r->elements, sizeof(**ids));
		for (i = 0; i < r->elements; i++)
			if (r->element[i]->type == REDIS_REPLY_STRING)
				(*ids)[(*n)++] = np_xstrdup(r->element[i]->str);
	}
	freeReplyObject(r);
	return 0;
}

json_t *
np_slot_json(const np_pool *p, const np_slot_view *v)
{
	const np_scanner *s = v->scanner;
	long avail = s->enabled ? s->max_concurrent_scans - v->active : 0;
	json_t *o = json_object();

	if (avail < 0)
		avail = 0;
	json_object_set_new(o, "pool", json_string(p->name));
	json_object_set_new(o, "instance_id", json_string(s->instance_id));
	json_object_set_new(o, "name", json_string(s->name));
	json_object_set_new(o, "url", json_string(s->url));
	json_object_set_new(o, "enabled", json_boolean(s->enabled));
	json_object_set_new(o, "max_concurrent_scans",
	    json_integer(s->max_concurrent_scans));
	json_object_set_new(o, "active_scans", json_integer(v->active));
	json_object_set_new(o, "available_capacity", json_integer(avail));
	json_object_set_new(o, "utilization_pct", json_real(
	    (double)(long)(1000.0 * v->active / s->max_concurrent_scans + 0.5) /
	    10.0));
	json_object_set_new(o, "breaker", json_string(np_breaker_name(v->breaker)));
	json_object_set_new(o, "consecutive_failures", json_integer(v->failures));
	if (v->breaker != NP_BREAKER_CLOSED) {
		char ts[32];
		np_rfc3339(v->open_until, ts);
		json_object_set_new(o, "breaker_open_until", json_string(ts));
	}
	return o;
}
