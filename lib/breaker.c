/*
 * breaker.c: the circuit breaker of each scanner, kept in Redis so that
 * every worker, np-select and np-status agree (np:{P}:breaker:<inst>,
 * HASH failures, open_until, probe_until, opens, and the times of the
 * last good and bad contact, last_ok and last_fail, for np-metrics).
 *
 * breaker_threshold consecutive failures open it for breaker_cooldown;
 * then the scanner choice (lease.c) lets one probe task through
 * (half-open). The probe's success closes it; its failure opens it
 * again. Transport errors, timeouts, 5xx after retries and refused
 * logins count; a 412 or a scan's own outcome do not.
 */
#include "np.h"

/* KEYS: breaker. ARGV: now, threshold, cooldown. Returns 1 if opened. */
static const char failure_lua[] =
"local now = tonumber(ARGV[1])\n"
"local f = redis.call('HINCRBY', KEYS[1], 'failures', 1)\n"
"redis.call('HSET', KEYS[1], 'last_fail', now)\n"
"local ou = tonumber(redis.call('HGET', KEYS[1], 'open_until')) or 0\n"
"if (ou > 0 and now >= ou) or f >= tonumber(ARGV[2]) then\n"
"  redis.call('HSET', KEYS[1], 'open_until', now + tonumber(ARGV[3]),\n"
"    'probe_until', 0, 'opened_at', now)\n"
"  redis.call('HINCRBY', KEYS[1], 'opens', 1)\n"
"  return 1\n"
"end\n"
"return 0\n";

/* KEYS: breaker. ARGV: now. Closes it: failures 0, no probe out. */
static const char success_lua[] =
"redis.call('HSET', KEYS[1], 'failures', 0, 'open_until', 0, 'probe_until', 0,\n"
"  'last_ok', ARGV[1])\n"
"redis.call('HDEL', KEYS[1], 'probe')\n"
"return 0\n";

int
np_breaker_failure(redisContext *c, const np_config *cfg, const char *pool,
    const char *inst, bool *opened, np_error *err)
{
	char k[NP_KEYMAX], now[24], th[24], cd[24];
	const char *argv[4] = { k, now, th, cd };
	redisReply *r;
	int rc;

	np_key_inst(k, cfg, pool, "breaker", inst);
	snprintf(now, sizeof(now), "%lld", (long long)np_now_ms());
	snprintf(th, sizeof(th), "%ld", cfg->s.breaker_threshold);
	snprintf(cd, sizeof(cd), "%lld", (long long)cfg->s.breaker_cooldown);
	if ((rc = np_redis_eval(c, failure_lua, 1, 4, argv, &r, err)) != 0)
		return rc;
	if (opened)
		*opened = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
	freeReplyObject(r);
	return 0;
}

int
np_breaker_success(redisContext *c, const np_config *cfg, const char *pool,
    const char *inst, np_error *err)
{
	char k[NP_KEYMAX], now[24];
	const char *argv[2] = { k, now };
	redisReply *r;
	int rc;

	np_key_inst(k, cfg, pool, "breaker", inst);
	snprintf(now, sizeof(now), "%lld", (long long)np_now_ms());
	if ((rc = np_redis_eval(c, success_lua, 1, 2, argv, &r, err)) != 0)
		return rc;
	freeReplyObject(r);
	return 0;
}
