/*
 * np.h: the shared library of the np commands.
 *
 * Grouped by the file that implements each part. Every exported name
 * starts with np_ or NP_. Functions that can fail take an np_error and
 * return 0 on success or an exit status (sysexits) on failure, with a
 * one-line message in the error; commands print it and exit with it.
 */
#ifndef NP_H
#define NP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#define NP_VERSION "0.1.0"

/* Exit statuses: design.md section 2. */
enum {
	NP_OK = 0,
	NP_NO = 1,		/* the operation ran; its answer is "no" */
	NP_EUSAGE = 64,
	NP_EDATA = 65,
	NP_ENOINPUT = 66,
	NP_EUNAVAIL = 69,	/* scanner or pool unavailable */
	NP_ESOFTWARE = 70,
	NP_EIO = 74,
	NP_ETEMP = 75,		/* Redis down, scanner busy: retry later */
	NP_EPERM = 77,
	NP_ECONFIG = 78,
};

typedef struct {
	int code;
	char msg[512];
} np_error;

/* log.c */
extern const char *np_progname;
void np_setprogname(const char *argv0);
int np_seterr(np_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void np_die(int status, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 2, 3)));
void np_die_err(const np_error *e) __attribute__((noreturn));
void np_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void np_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void np_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void np_version_exit(void) __attribute__((noreturn));

/* util.c */
extern volatile sig_atomic_t np_interrupted;	/* set by signal handlers */
void np_sleep_ms(int64_t ms);	/* returns early when np_interrupted */
void *np_xmalloc(size_t n);
void *np_xcalloc(size_t n, size_t m);
void *np_xrealloc(void *p, size_t n);
char *np_xstrdup(const char *s);
int64_t np_now_ms(void);
void np_rfc3339(int64_t ms, char buf[32]);
int np_parse_rfc3339(const char *s, int64_t *ms);
int np_parse_duration(const char *s, int64_t *ms);
int np_parse_int(const char *s, long min, long max, long *out);
bool np_name_valid(const char *s);	/* pool and instance ids */
void np_random_hex(char *out, size_t nhex);
void np_sha256_hex(const void *data, size_t len, char out[65]);

/* file.c */
#define NP_SYNC 1	/* fsync the file and its directory */
int np_write_atomic(const char *path, const void *buf, size_t len,
    mode_t mode, int flags, np_error *err);
int np_read_file(const char *path, size_t max, char **out, size_t *len,
    np_error *err);
int np_mkdir_p(const char *path, mode_t mode);
int np_rm_rf(const char *path);
int np_fsync_dir(const char *dir);

/* json.c */
void np_json_out(json_t *v);		/* one compact line on stdout */
void np_json_out_steal(json_t *v);	/* same, then decref */
json_t *np_json_read(FILE *f, size_t max, np_error *err);
const char *np_json_str(json_t *obj, const char *key);
char *np_json_compact(json_t *v);

/* config.c */
typedef struct {
	char *instance_id;
	char *name;
	char *url;
	char *ca_file;
	char *username;
	char *access_key;
	/* A secret is either a value from the file (after ${VAR}) or a file. */
	char *secret_key, *secret_key_file;
	char *password, *password_file;
	int max_concurrent_scans;
	bool enabled;
	bool insecure;
	int line;
} np_scanner;

typedef struct {
	char *name;
	np_scanner *scanners;
	size_t nscanners;
	int line;
} np_pool;

typedef struct {
	int64_t poll_interval, scan_timeout, lease_ttl, retry_backoff;
	int64_t breaker_cooldown, ttl_completed, ttl_failed, idempotency_ttl;
	int64_t connect_timeout, request_timeout, redis_timeout;
	long retry_attempts, breaker_threshold, max_attempts;
	long default_scan_seconds;
} np_settings;

typedef struct {
	char *path;
	char *redis_url;	/* NP_REDIS_URL, else the file, else default */
	char *data_dir;		/* NP_DATA_DIR, else the file, else default */
	char *default_pool;
	char *key_prefix;
	np_settings s;
	np_pool *pools;
	size_t npools;
} np_config;

int np_config_load(const char *path, np_config **out, np_error *err);
np_config *np_config_open(void);	/* NP_CONFIG; dies with 78 */
void np_config_free(np_config *cfg);
const np_pool *np_config_pool(const np_config *cfg, const char *name);
const np_scanner *np_pool_scanner(const np_pool *p, const char *id);
int np_config_secret(const np_config *cfg, const np_scanner *s,
    const char *which, char **out, np_error *err);

/* redis.c */
typedef struct {
	char host[256];
	char path[256];		/* unix socket, when set */
	int port;
	int db;
	char user[128];
	char password[256];
} np_redis_url;

int np_redis_parse_url(const char *url, np_redis_url *u, np_error *err);
int np_redis_connect(const np_config *cfg, redisContext **out, np_error *err);
redisContext *np_redis_open(const np_config *cfg);	/* dies with 75 */
redisReply *np_redis_cmd(redisContext *c, np_error *err, const char *fmt, ...);
redisReply *np_redis_argv(redisContext *c, np_error *err, int argc,
    const char **argv, const size_t *len);
int np_redis_reply_error(redisContext *c, redisReply *r, np_error *err);
int np_redis_eval(redisContext *c, const char *script, int nkeys,
    int argc, const char **argv, redisReply **out, np_error *err);
int np_redis_check_settings(redisContext *c, json_t *problems,
    np_error *err);

/* keys.c: every Redis key np uses is built here (see np(7)). */
#define NP_KEYMAX 320
void np_key_pool(char *buf, const np_config *cfg, const char *pool,
    const char *what);
void np_key_inst(char *buf, const np_config *cfg, const char *pool,
    const char *what, const char *inst);
void np_key_global(char *buf, const np_config *cfg, const char *what);

/* target.c */
enum { NP_T_IP4 = 4, NP_T_IP6 = 6, NP_T_HOST = 1 };
typedef struct {
	int kind;
	unsigned char lo[16], hi[16];	/* inclusive, network order */
	char *text;			/* canonical form of the token */
} np_target;

int np_targets_parse(const char *s, np_target **out, size_t *n,
    np_error *err);
char *np_targets_canon(const np_target *t, size_t n);
bool np_targets_overlap(const np_target *a, size_t na, const np_target *b,
    size_t nb);
void np_targets_free(np_target *t, size_t n);

/* request.c: a scan request, as np-enqueue and the MCP tools take it. */
typedef struct {
	char *name, *description, *targets, *scan_type, *pool, *instance;
	char *idempotency_key, *schema_profile;
	char *ssh_username, *ssh_password, *elevate, *esc_account;
	char *esc_password;
	char hash[65];		/* of the normalized request, no secrets */
} np_request;

int np_request_parse(const np_config *cfg, json_t *obj, np_request *r,
    np_error *err);
void np_request_free(np_request *r);
bool np_request_has_credentials(const np_request *r);

/* task.c: task records in $data_dir/tasks/<id>/task.json. */
#define NP_TASKID_LEN 33
int np_task_id_new(char out[NP_TASKID_LEN + 1]);
bool np_task_id_valid(const char *id);
int np_task_check_id(const char *id, np_error *err);
void np_task_dir(const np_config *cfg, const char *id, char *buf,
    size_t n);
int np_task_write(const np_config *cfg, const char *id, json_t *task,
    int flags, np_error *err);
int np_task_load(const np_config *cfg, const char *id, json_t **out,
    np_error *err);
typedef int (*np_task_fn)(json_t *task, void *arg, np_error *err);
/* np_task_update waits for a busy record at most NP_LOCK_WAIT_MS, or not
 * at all with NP_TRYLOCK; either way a busy record is NP_ETEMP. */
#define NP_TRYLOCK 2
#define NP_LOCK_WAIT_MS 10000
int np_task_update(const np_config *cfg, const char *id, np_task_fn fn,
    void *arg, int flags, np_error *err);
bool np_state_valid(const char *s);
bool np_state_terminal(const char *s);
bool np_state_allowed(const char *from, const char *to);
int np_task_set_state(json_t *task, const char *to, np_error *err);
int np_task_to_state(json_t *task, void *to, np_error *err);
int np_task_write_credentials(const np_config *cfg, const char *id,
    const np_request *r, int flags, np_error *err);
json_t *np_task_from_request(const np_request *r, const char *id,
    const np_scanner *inst);
void np_task_history(json_t *task, const char *event, const char *detail);

/* index.c: the task index in Redis that np-status --list reads. */
char *np_index_line(json_t *task);
int np_index_append(redisContext *c, const np_config *cfg, json_t *task);
int np_index_put(redisContext *c, const np_config *cfg, json_t *task,
    np_error *err);
int np_index_del(redisContext *c, const np_config *cfg, const char *id,
    np_error *err);
int np_replies(redisContext *c, int n, np_error *err);
typedef struct {
	const char *status, *pool;
	np_target *targets;
	size_t ntargets;
	long limit;
} np_index_filter;
int np_index_query(redisContext *c, const np_config *cfg,
    const np_index_filter *f, char ***ids, size_t *n, np_error *err);

/* lease.c: scanner slots, task claims and the choice of a scanner. */
enum { NP_BREAKER_CLOSED, NP_BREAKER_OPEN, NP_BREAKER_HALF_OPEN };
typedef struct {
	const np_scanner *scanner;
	long active;
	int breaker;
	int64_t open_until;
	long failures;
	int64_t last_pick;
} np_slot_view;

typedef struct {
	np_slot_view *v;
	size_t n;
	long chosen;		/* index into v, or -1 */
	char task_id[NP_TASKID_LEN + 1];	/* take: the task taken */
	int64_t deadline;	/* acquire, take: the claim's deadline */
} np_pool_view;

int np_lease_view(redisContext *c, const np_config *cfg, const np_pool *p,
    np_pool_view *out, np_error *err);
int np_lease_acquire(redisContext *c, const np_config *cfg,
    const np_pool *p, const char *task_id, const char *want,
    np_pool_view *out, np_error *err);
int np_lease_take(redisContext *c, const np_config *cfg, const np_pool *p,
    np_pool_view *out, np_error *err);
/* A claim's deadline is its holder's token: renew and release act only
 * when the claim still has the deadline its holder last set (0: any). */
int np_lease_renew(redisContext *c, const np_config *cfg, const char *pool,
    const char *inst, const char *task_id, int64_t *deadline, np_error *err);
int np_lease_release(redisContext *c, const np_config *cfg,
    const char *pool, const char *inst, const char *task_id, int64_t deadline,
    np_error *err);
int np_lease_pin(redisContext *c, const np_config *cfg, const char *pool,
    const char *task_id, np_error *err);
/* A claim's token stays while its holder renews: free_slot acts only on
 * the claim with the holder's token (0: any). */
int np_lease_free_slot(redisContext *c, const np_config *cfg,
    const char *pool, const char *inst, const char *task_id, int64_t token,
    np_error *err);
int np_lease_token(redisContext *c, const np_config *cfg, const char *pool,
    const char *task_id, int64_t *token, np_error *err);
int np_lease_recover(redisContext *c, const np_config *cfg,
    const np_pool *p, char ***ids, size_t *n, np_error *err);
void np_pool_view_free(np_pool_view *v);
const char *np_breaker_name(int b);
json_t *np_slot_json(const np_pool *p, const np_slot_view *v);

/* queue.c: queueing tasks and reading queue state. */
typedef struct {
	long depth, dlq, processing;
	double mean_seconds;
	long capacity, active;
} np_queue_stats;

int np_queue_append(redisContext *c, const np_config *cfg, json_t *task);
int np_queue_collect(redisContext *c, json_t *task, int owed,
    long *position, np_error *err);
int np_queue_push(redisContext *c, const np_config *cfg, json_t *task,
    long *position, np_error *err);
int np_queue_stats_get(redisContext *c, const np_config *cfg,
    const np_pool *p, const np_scanner *only, np_queue_stats *st,
    np_error *err);
long np_estimate_wait(const np_queue_stats *st, long position);
int np_task_requeue(redisContext *c, const np_config *cfg, const char *id,
    const char *why, int attempts_delta, const char *held, np_error *err);
int np_recover_pool(redisContext *c, const np_config *cfg, const np_pool *p,
    size_t *n, np_error *err);
int np_recover_record(redisContext *c, const np_config *cfg,
    const char *pool, const char *id, np_error *err);
int np_queue_remove(redisContext *c, const np_config *cfg, const np_pool *p,
    const char *id, long *n, np_error *err);

/* dlq.c: failed tasks and the dead-letter queue. */
int np_task_fail(redisContext *c, const np_config *cfg, const char *id,
    const char *state, const char *reason, const char *msg, np_error *err);
int np_task_republish(redisContext *c, const np_config *cfg, json_t *task,
    np_error *err);

/* notify.c: sd_notify(3) for np-worker under systemd (Type=notify). */
int np_notify(const char *state);
int64_t np_watchdog_ms(void);

/* health.c: the health report of np-status --health. */
int np_health(const np_config *cfg, json_t **report);

/* counters.c: counters for np-metrics, in Redis. The histogram buckets
 * are not cumulative in Redis (one bucket per scan); np-metrics sums. */
#define NP_DURATION_BUCKETS 9
extern const double np_duration_buckets[NP_DURATION_BUCKETS];
void np_count_end(redisContext *c, const np_config *cfg, json_t *task);

/* prom.c: Prometheus text format into a growing buffer. */
typedef struct {
	char *buf;
	size_t len, cap;
} np_buf;
void np_buf_add(np_buf *b, const char *s, size_t n);
void np_buf_int(np_buf *b, long long v);	/* as "%lld" */
void np_buf_reserve(np_buf *b, size_t n);	/* room for n more */
void np_buf_printf(np_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void np_prom_family(np_buf *b, const char *name, const char *type,
    const char *help);
void np_prom_sample(np_buf *b, const char *name, double v, ...)
    __attribute__((sentinel));
void np_prom_labels(np_buf *b, ...) __attribute__((sentinel));
void np_prom_sample_at(np_buf *b, const char *name, const char *lab,
    size_t n, double v, ...) __attribute__((sentinel));

/* results.c: a finished task's findings as NDJSON (np-results(1)). */
typedef struct np_results np_results;
np_results *np_results_new(void);
int np_results_profile(np_results *q, const char *name, np_error *err);
int np_results_fields(np_results *q, const char *list, np_error *err);
int np_results_filter(np_results *q, const char *expr, np_error *err);
int np_results_page(np_results *q, long page, long page_size,
    np_error *err);
int np_results_write(np_results *q, const np_config *cfg, const char *id,
    FILE *out, np_error *err);
void np_results_free(np_results *q);

/* housekeep.c: np-housekeep's run (TTLs, stale claims, lost tasks,
 * orphans, Nessus scans of finished tasks), one at a time under a lock. */
#define NP_HK_DRY_RUN 1	/* change nothing; report what would be done */
#define NP_HK_NESSUS 2		/* delete finished tasks' Nessus scans */
int np_housekeep_lock(redisContext *c, const np_config *cfg, char *token,
    size_t n, np_error *err);
int np_housekeep_unlock(redisContext *c, const np_config *cfg,
    const char *token, np_error *err);
int np_housekeep(redisContext *c, const np_config *cfg, const char *pool,
    int flags, const char *lock, json_t **summary, np_error *err);

/* breaker.c: per-scanner circuit breakers in Redis. */
int np_breaker_failure(redisContext *c, const np_config *cfg,
    const char *pool, const char *inst, bool *opened, np_error *err);
int np_breaker_success(redisContext *c, const np_config *cfg,
    const char *pool, const char *inst, np_error *err);

/* report.c: streaming reads of .nessus exports. */
int np_report_check(const char *path, long *hosts, np_error *err);
/* Whether an open export may declare a DTD (then XML_PARSE_HUGE must stay
 * off: in libxml2 2.9 it also lifts the entity expansion limits). */
bool np_xml_may_have_dtd(int fd);
/*
 * Validates a .nessus export for a scan type (untrusted, authenticated,
 * authenticated_privileged; NULL = untrusted) and expected host count
 * (0 = any). *result is the JSON object np-validate prints: valid,
 * reason (when invalid), file, stats, authentication_status, hosts[],
 * warnings[]. Returns 0 valid, NP_NO invalid, NP_ENOINPUT when the file
 * is missing or unreadable (with *result still set), NP_EUSAGE for a
 * bad scan type.
 */
int np_validate_file(const char *path, const char *scan_type,
    long expected_hosts, json_t **result, np_error *err);

/* enqueue.c: the whole enqueue step (idempotency, record, queue). */
typedef struct {
	np_request r;		/* parsed by the caller */
	int rc;			/* nonzero: refused (err says why), no answer */
	np_error err;
	json_t *answer;
	/* private to enqueue.c */
	char id[NP_TASKID_LEN + 1];
	char *taken;
	json_t *task;
	long pos;
	int owed;
} np_enqueue_item;

int np_enqueue(redisContext *c, const np_config *cfg, np_enqueue_item *v,
    size_t n, bool batch);

/* proctitle.c: what ps shows ("np-scan TASK" for np-worker's children). */
void np_proctitle_init(int argc, char **argv);
void np_proctitle_set(const char *name, const char *title);

/* scan.c: one task run end to end on its leased scanner (np-scan(1));
 * returns np-scan's exit status (0, 1, 75, ...). cfg is borrowed. */
int np_scan_task(np_config *cfg, const char *id, int64_t token);
void np_scan_signals(void);

/* nessus.c: the Nessus REST client (libcurl). Errors come back as
 * statuses: 75 transient (after the retries), 78 the scanner refused our
 * API keys or login, 69 the API is not available (HTTP 412: Nessus
 * Professional/Essentials with API keys), 66 no such scan or export
 * (404), 77 forbidden (403), 65 the scanner refused the request (400,
 * 409) or answered something unreadable. Never logs a secret. */
typedef struct np_nessus np_nessus;
typedef struct {
	char status[32];	/* Nessus's own word: running, completed, ... */
	int progress;		/* 0..100 over all hosts */
	char uuid[64];
} np_scan_status;

void np_nessus_init(void);
np_nessus *np_nessus_open(const np_config *cfg, const np_scanner *s,
    np_error *err);
void np_nessus_close(np_nessus *n);
int np_nessus_server_status(np_nessus *n, char status[32], np_error *err);
int np_nessus_template(np_nessus *n, const char *name, char uuid[128],
    np_error *err);
int np_nessus_create(np_nessus *n, json_t *body, long *scan_id,
    np_error *err);
int np_nessus_find(np_nessus *n, const char *name_part, long *scan_id,
    np_error *err);
int np_nessus_launch(np_nessus *n, long scan_id, np_error *err);
int np_nessus_status(np_nessus *n, long scan_id, np_scan_status *st,
    np_error *err);
int np_nessus_action(np_nessus *n, long scan_id, const char *what,
    np_error *err);
int np_nessus_export(np_nessus *n, long scan_id, long *file, np_error *err);
int np_nessus_export_status(np_nessus *n, long scan_id, long file,
    char status[32], np_error *err);
int np_nessus_download(np_nessus *n, long scan_id, long file,
    const char *path, np_error *err);
int np_nessus_delete(np_nessus *n, long scan_id, np_error *err);

#endif
