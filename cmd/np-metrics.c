/*
 * np-metrics: Prometheus metrics from Redis, for node_exporter's textfile
 * collector. Every read goes out in one pipeline: one round trip however
 * many scanners, pools and tasks there are. Counters live in Redis and
 * only grow; gauges are computed here at each run.
 *
 * With 1,000 scanners Redis' share is most of the run, so np-metrics
 * works while Redis does: the pipeline goes out in chunks as it is
 * built, grouped by command (see replies), the few commands whose
 * replies take the most work here first and the 4,000 per scanner ones
 * last; each part of the text is rendered into its own buffer as soon
 * as its replies are in, and the parts are written in the families'
 * order at the end: nothing unless every reply came, so an error reply
 * leaves no output.
 *
 * With --textfile-dir DIR the text goes to DIR/np.prom atomically (temp
 * file in DIR, fsync, chmod 0644, rename); Redis down writes nothing new,
 * so node_exporter shows the old file's age.
 */
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <stdint.h>
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

/*
 * The groups of commands, in the pipeline's order. Per pool groups hold
 * one reply per pool, per scanner groups one per scanner, pools after
 * pools (see pool_data.first).
 */
enum { STATES, COUNTERS, WORKERS, GLOBAL, QUEUE_LEN, DLQ_CARD, CLAIMS_CARD,
	QUEUE_LAST, ZCOUNT_SLOTS, BREAKERS, IQ_LEN, IQ_LAST, GROUPS };

/* The parts of the text, in the order they are printed. */
enum { P_SCANNERS, P_BREAKERS, P_QUEUE, P_DLQ, P_CLAIMS, P_OLDEST, P_TASKS,
	P_COUNTERS, P_WORKERS, P_TAIL, PARTS };

typedef struct {
	redisReply **r;
	size_t n, got;		/* replies expected, read so far */
	size_t at[GROUPS + 1];	/* where each group starts; at[GROUPS] = n */
} replies;

/*
 * An HGETALL reply, with an index of its fields when it is big (the
 * task states of every pool, a pool's counters): looking each sample's
 * field up by a scan cost more than Redis' own work. Fields are matched
 * as C strings (strcmp), the first one in reply order winning.
 */
typedef struct {
	redisReply *h;
	uint32_t *slot;		/* 1 + the field's index in h->element; 0: empty */
	size_t mask;
} hash;

/* Labels written once, escaped, for all the samples that have them (see
 * np_prom_labels): '{pool="..."', '{pool="...",scanner_instance="..."'. */
typedef struct {
	const char *s;
	size_t n;
} labels;

typedef struct {
	const np_pool *p;
	size_t i, first;	/* its index; its first scanner's, over all pools */
	hash counters;
	labels lab;		/* the pool's */
	labels *slab;		/* its scanners' */
} pool_data;

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-metrics [-d textfile_dir] [-P prefix]\n");
	exit(status);
}

static size_t
hash_of(const char *s)
{
	size_t h = 2166136261u;	/* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void
hash_init(hash *x, redisReply *h)
{
	size_t i, j, cap = 16;

	x->h = h;
	x->slot = NULL;
	x->mask = 0;
	if (h == NULL || h->elements < 16)
		return;		/* a scan is as fast */
	while (cap < h->elements)
		cap *= 2;	/* at most half full: elements are 2 per field */
	x->slot = np_xcalloc(cap, sizeof(*x->slot));
	x->mask = cap - 1;
	for (i = 0; i + 1 < h->elements; i += 2) {
		j = hash_of(h->element[i]->str) & x->mask;
		while (x->slot[j])
			j = (j + 1) & x->mask;
		x->slot[j] = (uint32_t)i + 1;
	}
}

/* The field of an HGETALL reply, or NULL. */
static const char *
field(const hash *x, const char *name)
{
	redisReply *h = x->h;
	size_t i, j;

	if (x->slot == NULL) {
		for (i = 0; h && i + 1 < h->elements; i += 2)
			if (!strcmp(h->element[i]->str, name))
				return h->element[i + 1]->str;
		return NULL;
	}
	for (j = hash_of(name) & x->mask; x->slot[j]; j = (j + 1) & x->mask) {
		i = x->slot[j] - 1;
		if (!strcmp(h->element[i]->str, name))
			return h->element[i + 1]->str;
	}
	return NULL;
}

/* A field's value as atof reads it; digits alone (counters, times in
 * ms: nearly all) without it, exactly: below 2^53 a double holds them. */
static double
num(const char *s)
{
	const char *p = s;
	int64_t v = 0;

	if (s == NULL)
		return 0;
	for (; *p >= '0' && *p <= '9' && p - s < 15; p++)
		v = v * 10 + (*p - '0');
	return *p == '\0' && p > s ? (double)v : atof(s);
}

/* Whether group g has a command per scanner (else one per pool, or one). */
static bool
per_scanner(int g)
{
	return g == ZCOUNT_SLOTS || g == BREAKERS || g == IQ_LEN || g == IQ_LAST;
}

/* Reply k of group g for pool pd: per pool groups take k = 0, per
 * scanner groups the scanner's index in the pool. */
static redisReply *
reply(const replies *rs, int g, const pool_data *pd, size_t k)
{
	return rs->r[rs->at[g] + (per_scanner(g) ? pd->first + k : pd->i)];
}

/* Reads the replies up to the end of group g; an error reply is fatal,
 * before anything is written. */
static int
need(redisContext *c, replies *rs, int g, np_error *err)
{
	for (; rs->got < rs->at[g + 1]; rs->got++) {
		if (redisGetReply(c, (void **)&rs->r[rs->got]) != REDIS_OK)
			rs->r[rs->got] = NULL;
		if (np_redis_reply_error(c, rs->r[rs->got], err))
			return err->code;
	}
	return 0;
}

/*
 * Reply objects from an arena: hiredis' own cost a malloc per reply,
 * element array and string (16,000 for 1,000 scanners), then as many
 * frees: a third of the run. They are plain redisReply all the same;
 * the arena goes at once at the end.
 */
typedef struct chunk {
	struct chunk *next;
	size_t used, cap;
	char data[];
} chunk;

static void *
arena_alloc(chunk **a, size_t n)
{
	chunk *c = *a;
	void *p;

	n = (n + 7) & ~(size_t)7;	/* data is 8-aligned: keep it so */
	if (c == NULL || c->cap - c->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		if ((c = malloc(sizeof(*c) + cap)) == NULL)
			return NULL;	/* hiredis reports out of memory */
		c->next = *a;
		c->used = 0;
		c->cap = cap;
		*a = c;
	}
	p = c->data + c->used;
	c->used += n;
	return p;
}

static void
arena_free(chunk *a)
{
	chunk *next;

	for (; a; a = next) {
		next = a->next;
		free(a);
	}
}

/* A reply of type t, linked into its parent as hiredis' would be. */
static redisReply *
arena_reply(const redisReadTask *task, int type)
{
	redisReply *r = arena_alloc(task->privdata, sizeof(*r));

	if (r == NULL)
		return NULL;
	memset(r, 0, sizeof(*r));
	r->type = type;
	if (task->parent)
		((redisReply *)task->parent->obj)->element[task->idx] = r;
	return r;
}

static void *
arena_string(const redisReadTask *task, char *str, size_t len)
{
	redisReply *r = arena_reply(task, task->type);

	if (r == NULL || (r->str = arena_alloc(task->privdata, len + 1)) == NULL)
		return NULL;
	memcpy(r->str, str, len);
	r->str[len] = '\0';
	r->len = len;
	return r;
}

static void *
arena_array(const redisReadTask *task, int elements)
{
	redisReply *r = arena_reply(task, REDIS_REPLY_ARRAY);
	size_t n = elements > 0 ? (size_t)elements : 0;

	if (r == NULL)
		return NULL;
	if (n && (r->element = arena_alloc(task->privdata,
	    n * sizeof(*r->element))) == NULL)
		return NULL;
	if (n)
		memset(r->element, 0, n * sizeof(*r->element));
	r->elements = n;
	return r;
}

static void *
arena_integer(const redisReadTask *task, long long value)
{
	redisReply *r = arena_reply(task, REDIS_REPLY_INTEGER);

	if (r)
		r->integer = value;
	return r;
}

static void *
arena_nil(const redisReadTask *task)
{
	return arena_reply(task, REDIS_REPLY_NIL);
}

static void
arena_keep(void *obj)
{
	(void)obj;	/* the arena owns it */
}

static redisReplyObjectFunctions arena_fns = {
	arena_string, arena_array, arena_integer, arena_nil, arena_keep,
};

/*
 * RESP, written here rather than by redisAppendCommand: its printf-like
 * format parser, for thousands of commands, cost more than Redis' own
 * work. A command is its head ("*argc" and the name), its key, key + id,
 * and its arguments after the key, already in RESP.
 */
#define LLEN	"*2\r\n$4\r\nLLEN\r\n"
#define ZCARD	"*2\r\n$5\r\nZCARD\r\n"
#define HGETALL	"*2\r\n$7\r\nHGETALL\r\n"
#define LINDEX	"*3\r\n$6\r\nLINDEX\r\n"
#define ZCOUNT	"*4\r\n$6\r\nZCOUNT\r\n"
#define LAST	"$2\r\n-1\r\n"

static char *
put(char *p, const char *s, size_t n)
{
	memcpy(p, s, n);
	return p + n;
}

/* Room made once (doubling), then plain copies: 4,600 commands. */
static void
resp(np_buf *b, const char *head, const char *key, const char *id,
    const char *tail)
{
	size_t hl = strlen(head), kl = strlen(key), il = strlen(id);
	size_t tl = strlen(tail), need = hl + kl + il + tl + 32, n = kl + il;
	char len[24], *l = len + sizeof(len), *p;

	if (b->len + need + 1 > b->cap)
		np_buf_reserve(b, b->cap + need);
	*--l = '\n';
	*--l = '\r';
	do
		*--l = (char)('0' + n % 10);
	while ((n /= 10) != 0);
	*--l = '$';
	p = put(b->buf + b->len, head, hl);
	p = put(p, l, (size_t)(len + sizeof(len) - l));
	p = put(put(p, key, kl), id, il);
	p = put(put(p, "\r\n", 2), tail, tl);
	*p = '\0';
	b->len = (size_t)(p - b->buf);
}

/* Hands what is built, if over bytes, to hiredis and writes it: Redis
 * starts on it while the rest is built. All the writes come before the
 * first read: still one round trip. Whether it did. */
static bool
flush(redisContext *c, np_buf *b, size_t over)
{
	int done;

	if (b->len < over)
		return false;
	if (redisAppendFormattedCommand(c, b->buf, b->len) != REDIS_OK)
		np_die(NP_ESOFTWARE, "out of memory");
	b->len = 0;
	/* An error stays in c, for redisGetReply to report. */
	redisBufferWrite(c, &done);
	return true;
}

/* Group g's commands for pool p: one, or one per scanner. */
static void
group(np_buf *b, const np_config *cfg, const np_pool *p, int g,
    const char *zcount)
{
	static const struct {
		const char *head, *what, *tail;
	} cmd[GROUPS] = {
		[ZCOUNT_SLOTS] = { ZCOUNT, "slots", NULL },
		[BREAKERS] = { HGETALL, "breaker", "" },
		[QUEUE_LEN] = { LLEN, "queue", "" },
		[IQ_LEN] = { LLEN, "iq", "" },
		[DLQ_CARD] = { ZCARD, "dlq", "" },
		[CLAIMS_CARD] = { ZCARD, "claims", "" },
		[QUEUE_LAST] = { LINDEX, "queue", LAST },
		[IQ_LAST] = { LINDEX, "iq", LAST },
		[COUNTERS] = { HGETALL, "counters", "" },
		[WORKERS] = { HGETALL, "workers", "" },
	};
	const char *tail = cmd[g].tail ? cmd[g].tail : zcount;
	char k[NP_KEYMAX];
	size_t j;

	if (per_scanner(g)) {
		/* A scanner's key ends with its id: the prefix once. */
		np_key_inst(k, cfg, p->name, cmd[g].what, "");
		for (j = 0; j < p->nscanners; j++)
			resp(b, cmd[g].head, k, p->scanners[j].instance_id, tail);
	} else {
		np_key_pool(k, cfg, p->name, cmd[g].what);
		resp(b, cmd[g].head, k, "", tail);
	}
}

static size_t
scanners_of(const np_config *cfg)
{
	size_t i, n = 0;

	for (i = 0; i < cfg->npools; i++)
		n += cfg->pools[i].nscanners;
	return n;
}

/* Sends every read, group after group (see replies); reads nothing. */
static void
fetch(redisContext *c, const np_config *cfg, int64_t now, replies *rs)
{
	char k[NP_KEYMAX], nowarg[24], zcount[64];
	size_t i, ns = scanners_of(cfg), over = 4096;
	np_buf b = { 0 };
	int g;

	snprintf(nowarg, sizeof(nowarg), "(%lld", (long long)now);
	snprintf(zcount, sizeof(zcount), "$%zu\r\n%s\r\n$4\r\n+inf\r\n",
	    strlen(nowarg), nowarg);
	np_buf_reserve(&b, 65536 + 128);
	for (g = 0; g < GROUPS; g++) {
		rs->at[g] = rs->n;
		if (g == STATES || g == GLOBAL) {
			np_key_global(k, cfg, g == STATES ? "states" : "counters");
			resp(&b, HGETALL, k, "", "");
			rs->n++;
		} else {
			for (i = 0; i < cfg->npools; i++) {
				group(&b, cfg, &cfg->pools[i], g, zcount);
				/* A small first chunk: Redis starts at once. */
				if (flush(c, &b, over))
					over = 65536;
			}
			rs->n += per_scanner(g) ? ns : cfg->npools;
		}
	}
	rs->at[GROUPS] = rs->n;
	flush(c, &b, 0);
	free(b.buf);
	rs->r = np_xcalloc(rs->n, sizeof(*rs->r));
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

/* Family f's value for scanner j of pool pd. */
static double
scanner_value(const replies *rs, const pool_data *pd, size_t j, size_t f)
{
	const np_scanner *s = &pd->p->scanners[j];
	double active = (double)reply(rs, ZCOUNT_SLOTS, pd, j)->integer;
	double cap = s->enabled ? s->max_concurrent_scans : 0;
	/* A few fields: looked up by a scan, no index. */
	hash br = { reply(rs, BREAKERS, pd, j), NULL, 0 };

	if (f < 3)
		return f == 0 ? active : f == 1 ? cap :
		    cap > 0 ? 100.0 * active / cap : 0;
	if (f == 3)
		return num(field(&br, "open_until")) > 0 ? 1 : 0;
	return num(field(&br, "last_fail")) > num(field(&br, "last_ok")) ?
	    0 : 1;
}

/* The scanner families from..to-1. */
static void
scanner_metrics(np_buf *b, const char *pfx, const replies *rs,
    const pool_data *pd, size_t np_, size_t from, size_t to)
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

	for (f = from; f < to; f++) {
		snprintf(name, sizeof(name), "%s_%s", pfx, fam[f].name);
		np_prom_family(b, name, "gauge", fam[f].help);
		for (i = 0; i < np_; i++)
			for (j = 0; j < pd[i].p->nscanners; j++)
				np_prom_sample_at(b, name, pd[i].slab[j].s,
				    pd[i].slab[j].n, scanner_value(rs, &pd[i], j, f),
				    NULL);
	}
}

/* A per pool gauge: g's integer reply, plus for queue depth the
 * scanners' own queues. */
static void
pool_gauge(np_buf *b, const char *pfx, const replies *rs,
    const pool_data *pd, size_t np_, int g)
{
	char name[128];
	size_t i, j;

	if (g == QUEUE_LEN) {
		snprintf(name, sizeof(name), "%s_pool_queue_depth", pfx);
		np_prom_family(b, name, "gauge", "Tasks waiting in the pool's queues.");
	} else if (g == DLQ_CARD) {
		snprintf(name, sizeof(name), "%s_pool_dlq_depth", pfx);
		np_prom_family(b, name, "gauge", "Tasks in the pool's dead-letter queue.");
	} else {
		snprintf(name, sizeof(name), "%s_pool_processing", pfx);
		np_prom_family(b, name, "gauge", "Tasks claimed by a worker.");
	}
	for (i = 0; i < np_; i++) {
		double n = (double)reply(rs, g, &pd[i], 0)->integer;
		for (j = 0; g == QUEUE_LEN && j < pd[i].p->nscanners; j++)
			n += (double)reply(rs, IQ_LEN, &pd[i], j)->integer;
		np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n, n, NULL);
	}
}

static void
oldest(np_buf *b, const char *pfx, const replies *rs, const pool_data *pd,
    size_t np_, int64_t now)
{
	char name[128];
	size_t i, j;

	snprintf(name, sizeof(name), "%s_oldest_queued_seconds", pfx);
	np_prom_family(b, name, "gauge", "Age of the oldest task waiting in the pool.");
	for (i = 0; i < np_; i++) {
		double a = age_of(reply(rs, QUEUE_LAST, &pd[i], 0), now), x;
		for (j = 0; j < pd[i].p->nscanners; j++)
			if ((x = age_of(reply(rs, IQ_LAST, &pd[i], j), now)) > a)
				a = x;
		np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n, a, NULL);
	}
}

static void
task_states(np_buf *b, const char *pfx, const pool_data *pd, size_t np_,
    const hash *st)
{
	char name[128], key[160];
	size_t i;
	int s;

	snprintf(name, sizeof(name), "%s_tasks", pfx);
	np_prom_family(b, name, "gauge", "Task records by pool and state.");
	for (i = 0; i < np_; i++)
		for (s = 0; states[s]; s++) {
			/* "pool\tstate"; names are at most 64 bytes. */
			size_t pl = strlen(pd[i].p->name), sl = strlen(states[s]);
			memcpy(key, pd[i].p->name, pl);
			key[pl] = '\t';
			memcpy(key + pl + 1, states[s], sl + 1);
			np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n,
			    num(field(st, key)), "status", states[s], NULL);
		}
}

static void
scans_total(np_buf *b, const char *pfx, const pool_data *pd, size_t np_)
{
	char name[128], key[3][4][64];
	size_t i;
	int t, x;

	/* The fields are the same in every pool: named once. */
	for (t = 0; scan_types[t]; t++)
		for (x = 0; results[x]; x++)
			snprintf(key[t][x], sizeof(key[t][x]), "scans:%s:%s",
			    scan_types[t], results[x]);
	snprintf(name, sizeof(name), "%s_scans_total", pfx);
	np_prom_family(b, name, "counter", "Scans that ended, by type and result.");
	for (i = 0; i < np_; i++)
		for (t = 0; scan_types[t]; t++)
			for (x = 0; results[x]; x++)
				np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n,
				    num(field(&pd[i].counters, key[t][x])),
				    "scan_type", scan_types[t], "result", results[x],
				    NULL);
}

static void
counters(np_buf *b, const char *pfx, const pool_data *pd, size_t np_)
{
	char name[128], vkey[7][64], akey[3][64];
	size_t i;
	int t, x;

	scans_total(b, pfx, pd, np_);
	for (x = 0; reasons[x]; x++)
		snprintf(vkey[x], sizeof(vkey[x]), "validation_failures:%s",
		    reasons[x]);
	for (t = 1; scan_types[t]; t++)
		snprintf(akey[t], sizeof(akey[t]), "auth_failures:%s",
		    scan_types[t]);
	snprintf(name, sizeof(name), "%s_validation_failures_total", pfx);
	np_prom_family(b, name, "counter", "Exports that failed validation, by reason.");
	for (i = 0; i < np_; i++)
		for (x = 0; reasons[x]; x++)
			np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n,
			    num(field(&pd[i].counters, vkey[x])), "reason",
			    reasons[x], NULL);
	snprintf(name, sizeof(name), "%s_auth_failures_total", pfx);
	np_prom_family(b, name, "counter", "Scans whose credentials failed on every host.");
	for (i = 0; i < np_; i++)
		for (t = 1; scan_types[t]; t++)
			np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n,
			    num(field(&pd[i].counters, akey[t])), "scan_type",
			    scan_types[t], NULL);
	snprintf(name, sizeof(name), "%s_dlq_retries_total", pfx);
	np_prom_family(b, name, "counter", "Tasks retried from the dead-letter queue.");
	for (i = 0; i < np_; i++)
		np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n,
		    num(field(&pd[i].counters, "dlq_retries")), NULL);
}

static void
durations(np_buf *b, const char *pfx, const pool_data *pd, size_t np_)
{
	char name[128], bucket[160], sum[192], count[192];
	char key[NP_DURATION_BUCKETS][48], le[NP_DURATION_BUCKETS][32];
	size_t i;
	int k;

	/* The same in every pool: named once. */
	for (k = 0; k < NP_DURATION_BUCKETS; k++) {
		snprintf(key[k], sizeof(key[k]), "duration_le:%g",
		    np_duration_buckets[k]);
		snprintf(le[k], sizeof(le[k]), "%g", np_duration_buckets[k]);
	}
	snprintf(name, sizeof(name), "%s_scan_duration_seconds", pfx);
	np_prom_family(b, name, "histogram", "Launch to completion of completed scans.");
	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	snprintf(sum, sizeof(sum), "%s_sum", name);
	snprintf(count, sizeof(count), "%s_count", name);
	for (i = 0; i < np_; i++) {
		const hash *h = &pd[i].counters;
		double cum = 0, n = num(field(h, "duration_count"));
		for (k = 0; k < NP_DURATION_BUCKETS; k++) {
			cum += num(field(h, key[k]));
			np_prom_sample_at(b, bucket, pd[i].lab.s, pd[i].lab.n,
			    cum, "le", le[k], NULL);
		}
		np_prom_sample_at(b, bucket, pd[i].lab.s, pd[i].lab.n, n, "le",
		    "+Inf", NULL);
		np_prom_sample_at(b, sum, pd[i].lab.s, pd[i].lab.n,
		    num(field(h, "duration_sum")), NULL);
		np_prom_sample_at(b, count, pd[i].lab.s, pd[i].lab.n, n, NULL);
	}
}

static void
workers(np_buf *b, const char *pfx, const replies *rs, const pool_data *pd,
    size_t np_)
{
	char name[128];
	size_t i, j;

	snprintf(name, sizeof(name), "%s_worker_last_heartbeat_timestamp_seconds",
	    pfx);
	np_prom_family(b, name, "gauge", "Last sign of life of each worker serving the pool.");
	for (i = 0; i < np_; i++) {
		redisReply *w = reply(rs, WORKERS, &pd[i], 0);
		for (j = 0; j + 1 < w->elements; j += 2)
			np_prom_sample_at(b, name, pd[i].lab.s, pd[i].lab.n,
			    num(w->element[j + 1]->str) / 1000.0, "worker",
			    w->element[j]->str, NULL);
	}
}

static void
tail(np_buf *b, const char *pfx, redisReply *global, int64_t now)
{
	char name[128];
	hash g;

	hash_init(&g, global);
	snprintf(name, sizeof(name), "%s_ttl_deletions_total", pfx);
	np_prom_family(b, name, "counter", "Task folders deleted by np-housekeep past their TTL.");
	np_prom_sample(b, name, num(field(&g, "ttl_deletions")), NULL);
	np_prom_family(b, "np_metrics_last_run_timestamp_seconds", "gauge",
	    "When np-metrics last read Redis successfully.");
	np_prom_sample(b, "np_metrics_last_run_timestamp_seconds",
	    (double)now / 1000.0, NULL);
	free(g.slot);
}

/* The parts that need the per pool groups, group by group. */
static int
render_pools(redisContext *c, np_buf *part, const char *pfx, replies *rs,
    pool_data *pd, size_t n, np_error *err)
{
	hash st;
	size_t i;
	int rc;

	if ((rc = need(c, rs, STATES, err)) != 0)
		return rc;
	hash_init(&st, rs->r[rs->at[STATES]]);
	task_states(&part[P_TASKS], pfx, pd, n, &st);
	free(st.slot);
	if ((rc = need(c, rs, COUNTERS, err)) != 0)
		return rc;
	for (i = 0; i < n; i++)
		hash_init(&pd[i].counters, reply(rs, COUNTERS, &pd[i], 0));
	counters(&part[P_COUNTERS], pfx, pd, n);
	durations(&part[P_COUNTERS], pfx, pd, n);
	if ((rc = need(c, rs, WORKERS, err)) != 0)
		return rc;
	workers(&part[P_WORKERS], pfx, rs, pd, n);
	if ((rc = need(c, rs, GLOBAL, err)) != 0)
		return rc;
	if ((rc = need(c, rs, CLAIMS_CARD, err)) != 0)
		return rc;
	pool_gauge(&part[P_DLQ], pfx, rs, pd, n, DLQ_CARD);
	pool_gauge(&part[P_CLAIMS], pfx, rs, pd, n, CLAIMS_CARD);
	return 0;
}

/* The parts that need the per scanner groups, the last ones sent. */
static int
render_scanners(redisContext *c, np_buf *part, const char *pfx,
    replies *rs, pool_data *pd, size_t n, int64_t now, np_error *err)
{
	int rc;

	if ((rc = need(c, rs, ZCOUNT_SLOTS, err)) != 0)
		return rc;
	scanner_metrics(&part[P_SCANNERS], pfx, rs, pd, n, 0, 3);
	if ((rc = need(c, rs, BREAKERS, err)) != 0)
		return rc;
	scanner_metrics(&part[P_BREAKERS], pfx, rs, pd, n, 3, 5);
	if ((rc = need(c, rs, IQ_LEN, err)) != 0)
		return rc;
	pool_gauge(&part[P_QUEUE], pfx, rs, pd, n, QUEUE_LEN);
	if ((rc = need(c, rs, IQ_LAST, err)) != 0)
		return rc;
	oldest(&part[P_OLDEST], pfx, rs, pd, n, now);
	return 0;
}

/*
 * Each pool's and scanner's labels, one after the other into text; the
 * labels point into it once it is all written (it may move as it grows).
 */
static void
label_sets(np_buf *text, pool_data *pd, size_t n)
{
	size_t i, j, at;

	for (i = 0; i < n; i++) {
		at = text->len;
		np_prom_labels(text, "pool", pd[i].p->name, NULL);
		pd[i].lab.n = text->len - at;
		for (j = 0; j < pd[i].p->nscanners; j++) {
			at = text->len;
			np_prom_labels(text, "pool", pd[i].p->name,
			    "scanner_instance", pd[i].p->scanners[j].instance_id,
			    NULL);
			pd[i].slab[j].n = text->len - at;
		}
	}
	for (i = 0, at = 0; i < n; i++) {
		pd[i].lab.s = text->buf + at;
		at += pd[i].lab.n;
		for (j = 0; j < pd[i].p->nscanners; j++) {
			pd[i].slab[j].s = text->buf + at;
			at += pd[i].slab[j].n;
		}
	}
}

/*
 * Reads group after group, each part rendered as soon as its replies are
 * in. Sizes: about 5 lines of 100 bytes per scanner, 100 lines per pool,
 * the workers aside.
 */
static int
render(redisContext *c, np_buf *part, const np_config *cfg, const char *pfx,
    replies *rs, int64_t now, np_error *err)
{
	size_t i, n = cfg->npools, first = 0;
	pool_data *pd = np_xcalloc(n, sizeof(*pd));
	labels *slab = np_xcalloc(scanners_of(cfg), sizeof(*slab));
	np_buf text = { 0 };
	int rc;

	for (i = 0; i < n; i++) {
		pd[i].p = &cfg->pools[i];
		pd[i].i = i;
		pd[i].first = first;
		pd[i].slab = slab + first;
		first += pd[i].p->nscanners;
	}
	np_buf_reserve(&text, 64 * (n + first));
	label_sets(&text, pd, n);
	np_buf_reserve(&part[P_SCANNERS], 4096 + 300 * first);
	np_buf_reserve(&part[P_COUNTERS], 4096 + 8192 * n);
	rc = render_pools(c, part, pfx, rs, pd, n, err);
	if (rc == 0)
		rc = render_scanners(c, part, pfx, rs, pd, n, now, err);
	if (rc == 0)
		tail(&part[P_TAIL], pfx, rs->r[rs->at[GLOBAL]], now);
	for (i = 0; i < n; i++)
		free(pd[i].counters.slot);
	free(pd);
	free(slab);
	free(text.buf);
	return rc;
}

/* DIR/np.prom, the parts in one file, atomically. */
static void
textfile(const char *dir, const np_buf *part)
{
	char path[PATH_MAX];
	np_buf b = { 0 };
	np_error err;
	size_t i, n = 0;

	for (i = 0; i < PARTS; i++)
		n += part[i].len;
	np_buf_reserve(&b, n);
	for (i = 0; i < PARTS; i++)
		if (part[i].len)
			np_buf_add(&b, part[i].buf, part[i].len);
	snprintf(path, sizeof(path), "%s/np.prom", dir);
	/* 0644: node_exporter runs as another user. */
	if (np_write_atomic(path, b.buf ? b.buf : "", b.len, 0644, NP_SYNC,
	    &err) != 0)
		np_die_err(&err);
	free(b.buf);
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
	np_buf part[PARTS] = { { 0 } };
	replies rs = { 0 };
	chunk *arena = NULL;
	size_t i;
	np_config *cfg;
	redisContext *c;
	np_error err;
	int ch;

	np_setprogname(argv[0]);
	/*
	 * All from the heap, and nothing given back before exit: the
	 * config's tree, freed once loaded, is reused for the replies and
	 * the text (a few MB for 1,000 scanners) instead of being unmapped
	 * and new pages faulted in, a sixth of the run.
	 */
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
	mallopt(M_TRIM_THRESHOLD, 128 << 20);
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
	/* The replies from here on come from the arena. */
	c->reader->fn = &arena_fns;
	c->reader->privdata = &arena;
	fetch(c, cfg, now, &rs);
	if (render(c, part, cfg, pfx, &rs, now, &err) != 0)
		np_die_err(&err);
	if (dir)
		textfile(dir, part);
	else {
		/* The parts as they are: stdio writes big ones directly. */
		for (i = 0; i < PARTS; i++)
			if (fwrite(part[i].buf ? part[i].buf : "", 1, part[i].len,
			    stdout) != part[i].len)
				np_die(NP_EIO, "stdout: write error");
		if (fflush(stdout))
			np_die(NP_EIO, "stdout: write error");
	}
	for (i = 0; i < PARTS; i++)
		free(part[i].buf);
	free(rs.r);
	redisFree(c);
	arena_free(arena);
	np_config_free(cfg);
	return 0;
}
