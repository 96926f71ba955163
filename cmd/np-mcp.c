/*
 * np-mcp: the MCP adapter of np. It speaks JSON-RPC 2.0 on standard input
 * and output, one message per line, and answers each tool call by running
 * an np-* command: fork and exec with an argument vector (never a shell),
 * scan credentials on the child's standard input only.
 *
 * One thread and one poll(): standard input; standard output, through a
 * queue, so that a client slow to read never stops us reading its next
 * message; every child's stdin, stdout and stderr; and a self-pipe for
 * SIGCHLD and SIGTERM. No pipe can fill up and block anything, and any
 * number of calls can be in flight at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "np.h"

#define PROTOCOL_LATEST "2025-11-25"
#define LINE_MAX_BYTES ((size_t)64 << 20)	/* a longer message is refused */
/* One answer line at most: the TS SDK drops a line over 10 MiB. */
#define ANSWER_MAX ((size_t)4 << 20)
#define ERR_KEEP ((size_t)64 << 10)	/* the tail of a child's stderr */
#define MAX_RUNNING 16			/* children at once; more calls wait */
#define KILL_GRACE_MS 2000		/* SIGTERM, then SIGKILL */
#define CHUNK 65536

static const char *const versions[] = { PROTOCOL_LATEST, "2025-06-18",
	"2025-03-26", "2024-11-05", NULL };
static const char *const profiles[] = { "minimal", "summary", "brief",
	"full", NULL };
static const char *const auth_types[] = { "authenticated",
	"authenticated_privileged", NULL };
static const char *const elevations[] = { "Nothing", "sudo", "su",
	"su+sudo", "pbrun", "dzdo", ".k5login", "Cisco 'enable'",
	"Checkpoint Gaia 'expert'", NULL };
static const char *const states[] = { "queued", "running", "completed",
	"failed", "timeout", "cancelled", NULL };
/* Arguments whose values must not outlive their use in memory. */
static const char *const secrets[] = { "ssh_password",
	"escalation_password", NULL };

/* ---- tool table ---------------------------------------------------- */

typedef enum { T_STRING, T_INTEGER, T_STRINGS, T_OBJECT } ptype;
typedef enum { G_ANY, G_TASK, G_NAME, G_FIELD, G_TARGETS } grammar;

typedef struct {
	const char *name;
	ptype type;
	bool required;
	grammar g;
	long min, max;		/* integer range; a string's max bytes */
	const char *const *choices;
	const char *dflt;	/* JSON text, shown in the schema */
	const char *desc;
} param;

typedef enum { K_READ, K_SUBMIT, K_CANCEL } kind;
typedef enum { S_OBJECT, S_LIST, S_LINES } shape;

typedef struct call call;
typedef struct tool tool;

struct tool {
	const char *name, *title, *desc;
	const param *params;	/* ends with a NULL name */
	kind kind;
	shape shape;
	const char *key;	/* S_LIST, S_LINES: the array's key */
	const char *output;	/* outputSchema, short form (out_schema) */
	int (*build)(call *c, json_t *args, json_t **fail);
	void (*post)(json_t *result);
};

/* A tool call: waiting for a slot, then running one child. */
struct call {
	call *next;
	json_t *id;
	const tool *t;
	char **argv;
	int argc;
	char *input;		/* the child's stdin; may hold credentials */
	size_t input_len, input_off;
	json_t *extra;		/* merged into the result object */
	pid_t pid;		/* 0: not started yet */
	int fd_in, fd_out, fd_err;
	np_buf out, err;
	size_t err_total;
	int status;
	bool reaped, cancelled, timed_out, overflow;
	int64_t started, deadline, kill_at;
};

static struct {
	json_t *tools;
	call *calls;		/* in arrival order */
	int running;
	np_buf in;		/* standard input not yet a whole line */
	size_t in_scan;		/* no newline before this offset */
	bool in_eof, in_skip;
	np_buf out;		/* standard output not yet written */
	size_t out_off;
	int out_flags;		/* stdout's flags before O_NONBLOCK */
	int sig[2];		/* self-pipe */
	int64_t timeout_ms;
	char selfdir[PATH_MAX];
} S = { .sig = { -1, -1 }, .out_flags = -1 };

static volatile sig_atomic_t got_term;

static int b_untrusted(call *, json_t *, json_t **);
static int b_authenticated(call *, json_t *, json_t **);
static int b_status(call *, json_t *, json_t **);
static int b_results(call *, json_t *, json_t **);
static int b_tasks(call *, json_t *, json_t **);
static int b_scanners(call *, json_t *, json_t **);
static int b_pools(call *, json_t *, json_t **);
static int b_pool_status(call *, json_t *, json_t **);
static int b_queue(call *, json_t *, json_t **);
static int b_cancel(call *, json_t *, json_t **);
static int b_dlq(call *, json_t *, json_t **);
static void p_scanners(json_t *);

#define P_TASK { "task_id", T_STRING, true, G_TASK, 0, 64, NULL, NULL, \
	"The task id that the submit tools and list_tasks return " \
	"(YYYYMMDDTHHMMSSZ-<16 hex digits>)." }
#define P_POOL(d) { "scanner_pool", T_STRING, false, G_NAME, 0, 64, NULL, \
	NULL, d }
#define P_SUBMIT \
	{ "targets", T_STRING, true, G_ANY, 0, 65536, NULL, NULL, \
	  "What to scan: IPv4 or IPv6 addresses, CIDR blocks, ranges " \
	  "(10.0.0.1-10.0.0.9) or hostnames, separated by commas or " \
	  "spaces." }, \
	{ "name", T_STRING, true, G_ANY, 0, 256, NULL, NULL, \
	  "A name for the scan." }, \
	{ "description", T_STRING, false, G_ANY, 0, 4096, NULL, "\"\"", \
	  "Free text." }, \
	{ "schema_profile", T_STRING, false, G_ANY, 0, 64, profiles, \
	  "\"brief\"", "The task's default result profile for " \
	  "get_scan_results." }, \
	{ "idempotency_key", T_STRING, false, G_ANY, 0, 128, NULL, NULL, \
	  "Makes the request safe to retry: the same key with the same " \
	  "request returns the existing task (idempotent: true); with a " \
	  "different request it is a conflict (409). 1 to 128 characters " \
	  "of A-Za-z0-9._:-." }, \
	P_POOL("The scanner pool (see list_pools); default: the " \
	  "configured default pool."), \
	{ "scanner_instance", T_STRING, false, G_NAME, 0, 64, NULL, NULL, \
	  "Run on this scanner of the pool only (instance_id from " \
	  "list_scanners)." }

static const param pr_untrusted[] = { P_SUBMIT, { NULL } };
static const param pr_authenticated[] = {
	P_SUBMIT,
	{ "scan_type", T_STRING, true, G_ANY, 0, 64, auth_types, NULL,
	  "authenticated (SSH login) or authenticated_privileged (SSH "
	  "login plus privilege escalation)." },
	{ "ssh_username", T_STRING, true, G_ANY, 0, 256, NULL, NULL,
	  "The SSH user." },
	{ "ssh_password", T_STRING, true, G_ANY, 0, 1024, NULL, NULL,
	  "The SSH password. Passed to np-enqueue on its standard input "
	  "only; never logged, stored in the task record or echoed." },
	{ "elevate_privileges_with", T_STRING, false, G_ANY, 0, 64,
	  elevations, "\"Nothing\"", "Privilege escalation method; "
	  "authenticated_privileged needs one other than Nothing." },
	{ "escalation_account", T_STRING, false, G_ANY, 0, 256, NULL, NULL,
	  "The account to escalate to (default: root)." },
	{ "escalation_password", T_STRING, false, G_ANY, 0, 1024, NULL, NULL,
	  "The escalation password; handled like ssh_password." },
	{ NULL }
};
static const param pr_task[] = { P_TASK, { NULL } };
static const param pr_results[] = {
	P_TASK,
	{ "page", T_INTEGER, false, G_ANY, 0, 1000000, NULL, "1",
	  "Page of findings, from 1; 0 returns every finding in one answer "
	  "(refused past 4 MiB: use pages)." },
	{ "page_size", T_INTEGER, false, G_ANY, 0, 1000000, NULL, "40",
	  "Findings per page, clamped to 10..100." },
	{ "schema_profile", T_STRING, false, G_ANY, 0, 64, profiles, NULL,
	  "Fields per finding: minimal, summary, brief or full; default: "
	  "the task's schema_profile." },
	{ "custom_fields", T_STRINGS, false, G_FIELD, 0, 128, NULL, NULL,
	  "Exactly these fields per finding instead of a profile (then "
	  "leave schema_profile out, or brief)." },
	{ "filters", T_OBJECT, false, G_ANY, 0, 0, NULL, NULL,
	  "Only findings matching every key: a string is a case-insensitive "
	  "substring (for a list field, of any element); a string starting "
	  "with >, >=, <, <= or = compares numbers (\"severity\": \">=3\"); "
	  "a number is numeric equality; a boolean is equality." },
	{ NULL }
};
static const param pr_tasks[] = {
	{ "limit", T_INTEGER, false, G_ANY, 1, 1000, NULL, "10",
	  "At most this many tasks, newest first." },
	{ "status_filter", T_STRING, false, G_ANY, 0, 64, states, NULL,
	  "Only tasks in this state." },
	P_POOL("Only tasks of this pool."),
	{ "target_filter", T_STRING, false, G_TARGETS, 0, 65536, NULL, NULL,
	  "Only tasks whose targets overlap these (CIDR-aware both ways: an "
	  "address matches a task scanning its subnet, a subnet matches "
	  "tasks inside it)." },
	{ NULL }
};
static const param pr_scanners[] = { P_POOL("Only this pool's scanners."),
	{ NULL } };
static const param pr_none[] = { { NULL } };
static const param pr_pool[] = { P_POOL("The pool; default: the "
	"configured default pool."), { NULL } };
static const param pr_dlq[] = {
	P_POOL("Only this pool's dead tasks."),
	{ "reason", T_STRING, false, G_NAME, 0, 64, NULL, NULL,
	  "Only tasks that died for this failure_reason (auth_failed, "
	  "api_unavailable, ...)." },
	{ "limit", T_INTEGER, false, G_ANY, 1, 1000, NULL, "50",
	  "At most this many, most recent first." },
	{ NULL }
};

#define SUBMIT_OUT "task_id:string* status:string* scan_type:string " \
	"scanner_pool:string queue_position:integer idempotent:boolean"

static const tool tools[] = {
	{ "run_untrusted_scan", "Run an untrusted scan",
	  "Queue an unauthenticated (network-only) Nessus scan and return at "
	  "once with its task_id. The scan runs in the background on the "
	  "least-loaded scanner of the pool: poll get_scan_status until its "
	  "status is completed, failed, timeout or cancelled, then read "
	  "get_scan_results.",
	  pr_untrusted, K_SUBMIT, S_OBJECT, NULL, SUBMIT_OUT, b_untrusted,
	  NULL },
	{ "run_authenticated_scan", "Run an authenticated scan",
	  "Queue a Nessus scan that logs in over SSH (scan_type "
	  "authenticated) and may escalate privileges "
	  "(authenticated_privileged), and return at once with its task_id; "
	  "poll get_scan_status. Credentials are used for this scan only "
	  "and are never returned by any tool.",
	  pr_authenticated, K_SUBMIT, S_OBJECT, NULL, SUBMIT_OUT,
	  b_authenticated, NULL },
	{ "get_scan_status", "Get a scan's status",
	  "The task's record: status (queued, running, completed, failed, "
	  "timeout, cancelled), progress, scanner, times, error, "
	  "authentication_status and validation results.",
	  pr_task, K_READ, S_OBJECT, NULL, "task_id:string* status:string*",
	  b_status, NULL },
	{ "get_scan_results", "Get a scan's findings",
	  "The findings of a finished task, a page at a time: lines[] holds "
	  "a schema line, a scan_metadata line, one vulnerability line per "
	  "finding, and a pagination line (next_page, or null on the last "
	  "page; none for page 0).",
	  pr_results, K_READ, S_LINES, "lines", "lines:objects*", b_results,
	  NULL },
	{ "list_tasks", "List scan tasks",
	  "Task records, newest first, optionally filtered by state, pool "
	  "and targets.",
	  pr_tasks, K_READ, S_LIST, "tasks", "tasks:objects* total:integer*",
	  b_tasks, NULL },
	{ "list_scanners", "List scanners",
	  "The scanners of every pool (or one) with their load: active_scans, "
	  "max_concurrent_scans, available_capacity, utilization_pct and "
	  "circuit breaker state.",
	  pr_scanners, K_READ, S_LIST, "scanners",
	  "scanners:objects* total:integer* pools:strings", b_scanners,
	  p_scanners },
	{ "list_pools", "List scanner pools",
	  "Every pool with its capacity, load and queue depth, and the "
	  "default pool.",
	  pr_none, K_READ, S_LIST, "pools",
	  "pools:objects* total:integer* default_pool:string", b_pools, NULL },
	{ "get_pool_status", "Get a pool's status",
	  "One pool's capacity, active scans, queue depth, dead tasks and "
	  "its scanners.",
	  pr_pool, K_READ, S_OBJECT, NULL,
	  "pool:string* total_scanners:integer total_capacity:integer "
	  "scanners:objects", b_pool_status, NULL },
	{ "get_queue_status", "Get a pool's queue",
	  "A pool's queue: depth, tasks held by workers, dead-letter depth "
	  "and the ids of the next tasks (ids only, never their contents).",
	  pr_pool, K_READ, S_OBJECT, NULL,
	  "pool:string* queue_depth:integer* next_task_ids:strings",
	  b_queue, NULL },
	{ "cancel_scan", "Cancel a scan",
	  "Cancel a queued or running task; a running Nessus scan is "
	  "stopped. Cancelling a cancelled task again is not an error; a "
	  "finished one is a conflict (409).",
	  pr_task, K_CANCEL, S_OBJECT, NULL,
	  "task_id:string* status:string* previous_status:string "
	  "nessus_scan_stopped:boolean", b_cancel, NULL },
	{ "list_dead_letters", "List dead tasks",
	  "Tasks in the dead-letter queue (failed or timed out), most recent "
	  "first, with their failure reason and error.",
	  pr_dlq, K_READ, S_LIST, "dead_letters",
	  "dead_letters:objects* total:integer*", b_dlq, NULL },
	{ NULL }
};

/* ---- small helpers --------------------------------------------------- */

/* Monotonic: a timeout must not jump with the wall clock. */
static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool
one_of(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (!strcmp(s, *list))
			return true;
	return false;
}

/* Overwrites a JSON string's bytes before jansson frees them. */
static void
wipe_json(json_t *v)
{
	if (json_is_string(v))
		explicit_bzero((char *)json_string_value(v),
		    json_string_length(v));
}

static void
forget_secrets(json_t *obj)
{
	const char *const *k;

	for (k = secrets; *k; k++)
		wipe_json(json_object_get(obj, *k));
}

/* A JSON string from bytes that may not be UTF-8 (a child's stderr). */
static json_t *
text_json(const char *s, size_t n)
{
	json_t *v = json_stringn(s, n);
	char *copy;
	size_t i;

	if (v)
		return v;
	copy = np_xmalloc(n + 1);
	for (i = 0; i < n; i++)
		copy[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
	copy[n] = '\0';
	v = json_stringn(copy, n);
	free(copy);
	return v;
}

static char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		np_die(NP_ESOFTWARE, "out of memory");
	va_end(ap);
	return s;
}

/* A short printable form of a request id, for the logs. */
static void
id_text(json_t *id, char *buf, size_t n)
{
	char *s = id ? json_dumps(id, JSON_ENCODE_ANY) : NULL;

	snprintf(buf, n, "%s", s ? s : "-");
	free(s);
}

/* ---- results ----------------------------------------------------------- */

static json_t *
text_block(json_t *obj)
{
	char *s = np_json_compact(obj);
	json_t *v = json_pack("{s:s,s:s}", "type", "text", "text", s);

	free(s);
	return v;
}

/*
 * A failed tool call as MCP wants it: a result with isError, so that
 * the agent can read why. The body keeps the reference's keys (error,
 * message, status_code). No structuredContent: it would have to match
 * the tool's outputSchema, which describes success. Steals extra.
 */
static json_t *
fail_result(int code, const char *title, const char *field, json_t *extra,
    const char *fmt, ...)
{
	json_t *body = json_object(), *res;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		np_die(NP_ESOFTWARE, "out of memory");
	va_end(ap);
	json_object_set_new(body, "error", json_string(title));
	json_object_set_new(body, "message", text_json(msg, strlen(msg)));
	json_object_set_new(body, "status_code", json_integer(code));
	if (field)
		json_object_set_new(body, "field", json_string(field));
	if (extra)
		json_object_update(body, extra);
	json_decref(extra);
	free(msg);
	res = json_pack("{s:[o],s:b}", "content", text_block(body), "isError",
	    1);
	json_decref(body);
	return res;
}

static json_t *
ok_result(json_t *obj)
{
	return json_pack("{s:[o],s:o,s:b}", "content", text_block(obj),
	    "structuredContent", obj, "isError", 0);
}

static json_t *
bad_arg(const char *field, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	json_t *r;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		np_die(NP_ESOFTWARE, "out of memory");
	va_end(ap);
	r = fail_result(400, "Invalid argument", field, NULL, "%s: %s", field,
	    msg);
	free(msg);
	return r;
}

/* ---- standard output ----------------------------------------------------- */

static void quit(int status) __attribute__((noreturn));

/* Writes what the queue holds until the pipe is full. */
static void
flush_out(void)
{
	ssize_t n;

	while (S.out_off < S.out.len) {
		n = write(STDOUT_FILENO, S.out.buf + S.out_off,
		    S.out.len - S.out_off);
		if (n > 0)
			S.out_off += (size_t)n;
		else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && errno == EAGAIN)
			break;
		else if (n == -1 && errno == EPIPE) {
			/* The client is gone: nobody can read an answer. */
			np_info("standard output closed by the client");
			quit(0);
		} else {
			np_warn("standard output: %s", strerror(errno));
			quit(NP_EIO);
		}
	}
	if (S.out_off == S.out.len)
		S.out.len = S.out_off = 0;
	else if (S.out_off > S.out.len / 2) {
		memmove(S.out.buf, S.out.buf + S.out_off, S.out.len - S.out_off);
		S.out.len -= S.out_off;
		S.out_off = 0;
	}
}

/* One message, one line: jansson escapes newlines inside strings. */
static void
send_line(char *s)
{
	np_buf_add(&S.out, s, strlen(s));
	np_buf_add(&S.out, "\n", 1);
	free(s);
	flush_out();
}

static void
send_msg(json_t *msg)
{
	send_line(np_json_compact(msg));
	json_decref(msg);
}

static json_t *
envelope(json_t *id)
{
	json_t *m = json_object();

	json_object_set_new(m, "jsonrpc", json_string("2.0"));
	if (id)
		json_object_set(m, "id", id);
	return m;
}

static void
respond(json_t *id, json_t *result)
{
	json_t *m = envelope(id);

	json_object_set_new(m, "result", result);
	send_msg(m);
}

/*
 * A JSON-RPC error. id is NULL when the request's id is unknown; the id
 * member is then left out rather than null, which the TS SDK rejects.
 */
static void
respond_error(json_t *id, int code, const char *fmt, ...)
{
	json_t *m = envelope(id);
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		np_die(NP_ESOFTWARE, "out of memory");
	va_end(ap);
	json_object_set_new(m, "error", json_pack("{s:i,s:o}", "code", code,
	    "message", text_json(msg, strlen(msg))));
	free(msg);
	send_msg(m);
}

/* A tool's answer, refused when its line would pass ANSWER_MAX. */
static void
respond_tool(json_t *id, const tool *t, json_t *result)
{
	json_t *m = envelope(id);
	char *s;
	size_t n;

	json_object_set_new(m, "result", result);
	s = np_json_compact(m);
	json_decref(m);
	if ((n = strlen(s)) <= ANSWER_MAX) {
		send_line(s);
		return;
	}
	free(s);
	respond(id, fail_result(413, "Answer too large", NULL, NULL,
	    "the answer of %s would be %zu bytes, over the %zu MiB limit; %s",
	    t->name, n, ANSWER_MAX >> 20, t->shape == S_LINES ?
	    "ask for one page at a time (page 1, 2, ... with page_size up "
	    "to 100) or fewer fields (schema_profile minimal, custom_fields)" :
	    "ask for less (a smaller limit, or a filter)"));
}

/* ---- arguments --------------------------------------------------------- */

static json_t *
arg(json_t *args, const char *k)
{
	json_t *v = json_object_get(args, k);

	return json_is_null(v) ? NULL : v;
}

static const char *
arg_str(json_t *args, const char *k)
{
	return json_string_value(arg(args, k));
}

/* Integers may come as 5.0 from some clients; the schema says integer. */
static bool
integral(json_t *v, long *out)
{
	double d;

	if (json_is_integer(v)) {
		json_int_t i = json_integer_value(v);
		if (i < LONG_MIN || i > LONG_MAX)
			return false;
		*out = (long)i;
		return true;
	}
	if (!json_is_real(v))
		return false;
	d = json_real_value(v);
	if (d < -1e15 || d > 1e15 || d != (double)(long)d)
		return false;
	*out = (long)d;
	return true;
}

static long
arg_int(json_t *args, const char *k, long dflt)
{
	long v;

	return integral(arg(args, k), &v) ? v : dflt;
}

/* Field names as np-results takes them: [A-Za-z0-9_.:-]{1,128}. */
static bool
field_valid(const char *s)
{
	size_t n;

	for (n = 0; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' &&
		    s[n] <= 'Z') || (s[n] >= '0' && s[n] <= '9') ||
		    strchr("_.:-", s[n])))
			return false;
	return n >= 1 && n <= 128;
}

static json_t *
check_grammar(const param *p, const char *s)
{
	np_target *t;
	size_t n;
	np_error err;

	switch (p->g) {
	case G_TASK:
		if (!np_task_id_valid(s))
			return bad_arg(p->name, "not a task id (expected "
			    "YYYYMMDDTHHMMSSZ-<16 hex digits>, as the submit "
			    "tools return)");
		break;
	case G_NAME:
		if (!np_name_valid(s))
			return bad_arg(p->name, "must be 1 to 64 characters of "
			    "A-Za-z0-9_-");
		break;
	case G_FIELD:
		if (!field_valid(s))
			return bad_arg(p->name, "'%.64s' is not a field name "
			    "(1 to 128 characters of A-Za-z0-9_.:-)", s);
		break;
	case G_TARGETS:
		if (np_targets_parse(s, &t, &n, &err) != 0)
			return bad_arg(p->name, "%s", err.msg);
		np_targets_free(t, n);
		break;
	case G_ANY:
		break;
	}
	return NULL;
}

static json_t *
check_string(const param *p, json_t *v)
{
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);

	if (s == NULL)
		return bad_arg(p->name, "must be a string");
	/* argv and np-enqueue cannot carry a NUL. */
	if (strlen(s) != n)
		return bad_arg(p->name, "must not contain NUL characters");
	if (p->max && n > (size_t)p->max)
		return bad_arg(p->name, "longer than %ld bytes", p->max);
	if (p->choices && !one_of(s, p->choices)) {
		json_t *ch = json_array();
		const char *const *c;
		char *list;
		json_t *r;

		for (c = p->choices; *c; c++)
			json_array_append_new(ch, json_string(*c));
		list = np_json_compact(ch);
		r = bad_arg(p->name, "must be one of %s", list);
		free(list);
		json_decref(ch);
		return r;
	}
	return check_grammar(p, s);
}

static json_t *
check_value(const param *p, json_t *v)
{
	size_t i;
	json_t *e, *r;
	long n;

	switch (p->type) {
	case T_STRING:
		return check_string(p, v);
	case T_INTEGER:
		if (!integral(v, &n))
			return bad_arg(p->name, "must be an integer");
		if (n < p->min || n > p->max)
			return bad_arg(p->name, "must be from %ld to %ld", p->min,
			    p->max);
		return NULL;
	case T_STRINGS:
		if (!json_is_array(v))
			return bad_arg(p->name, "must be an array of strings");
		json_array_foreach(v, i, e)
			if ((r = check_string(p, e)) != NULL)
				return r;
		return NULL;
	case T_OBJECT:
		return json_is_object(v) ? NULL : bad_arg(p->name,
		    "must be an object");
	}
	return NULL;
}

/*
 * Checks the arguments against the tool's parameters before anything
 * runs: unknown names, missing required ones, types, ranges, choices and
 * grammars. A null counts as absent. Returns an isError result or NULL.
 */
static json_t *
check_args(const tool *t, json_t *args)
{
	const param *p;
	const char *k;
	json_t *v, *r;

	json_object_foreach(args, k, v) {
		for (p = t->params; p->name && strcmp(p->name, k); p++)
			;
		if (p->name == NULL)
			return bad_arg(k, "unknown argument of %s", t->name);
	}
	for (p = t->params; p->name; p++) {
		if ((v = arg(args, p->name)) == NULL) {
			if (p->required)
				return bad_arg(p->name, "required");
			continue;
		}
		if ((r = check_value(p, v)) != NULL)
			return r;
	}
	return NULL;
}

/* ---- command lines --------------------------------------------------------- */

static void
add_arg(call *c, char *s)
{
	c->argv = np_xrealloc(c->argv, (size_t)(c->argc + 2) * sizeof(char *));
	c->argv[c->argc++] = s;
	c->argv[c->argc] = NULL;
}

/* --opt=value keeps a value starting with '-' from reading as an option. */
static void
add_opt(call *c, const char *opt, const char *value)
{
	if (value)
		add_arg(c, xasprintf("%s=%s", opt, value));
}

static void
add_long(call *c, const char *opt, long value)
{
	add_arg(c, xasprintf("%s=%ld", opt, value));
}

/* The pool a tool without scanner_pool means: the config's default. */
static int
default_pool(char **out, json_t **fail)
{
	const char *path = getenv("NP_CONFIG");
	np_config *cfg;
	np_error err;

	*out = NULL;
	if (path == NULL || *path == '\0')
		path = "/etc/np/np.yaml";
	if (np_config_load(path, &cfg, &err) != 0) {
		*fail = fail_result(500, "Configuration error", NULL, NULL, "%s",
		    err.msg);
		return -1;
	}
	if (cfg->default_pool)
		*out = np_xstrdup(cfg->default_pool);
	np_config_free(cfg);
	if (*out == NULL) {
		*fail = bad_arg("scanner_pool", "required: the configuration "
		    "names no default_pool");
		return -1;
	}
	return 0;
}

static int
submit(call *c, json_t *args, const char *scan_type)
{
	json_t *req = json_object(), *v;
	const char *k;

	json_object_foreach(args, k, v)
		if (!json_is_null(v))
			json_object_set(req, k, v);
	if (scan_type)
		json_object_set_new(req, "scan_type", json_string(scan_type));
	c->input = np_json_compact(req);
	c->input_len = strlen(c->input);
	forget_secrets(req);
	json_decref(req);
	add_arg(c, np_xstrdup("np-enqueue"));
	add_arg(c, np_xstrdup("--json"));
	return 0;
}

static int
b_untrusted(call *c, json_t *args, json_t **fail)
{
	(void)fail;
	return submit(c, args, "untrusted");
}

static int
b_authenticated(call *c, json_t *args, json_t **fail)
{
	const char *el = arg_str(args, "elevate_privileges_with");

	if (!strcmp(arg_str(args, "scan_type"), "authenticated_privileged") &&
	    (el == NULL || !strcmp(el, "Nothing"))) {
		*fail = bad_arg("elevate_privileges_with", "authenticated_"
		    "privileged scans need a method other than Nothing (sudo, "
		    "su, ...)");
		return -1;
	}
	return submit(c, args, NULL);
}

static int
b_status(call *c, json_t *args, json_t **fail)
{
	(void)fail;
	add_arg(c, np_xstrdup("np-status"));
	add_arg(c, np_xstrdup(arg_str(args, "task_id")));
	return 0;
}

/*
 * The reference's filter object as np-results filter expressions:
 * "field=text" substring, "field>=N" and friends numeric, "field=true"
 * boolean. Returns NULL for a value that is not a filter.
 */
static char *
filter_expr(const char *k, json_t *v)
{
	static const char *const ops[] = { ">=", "<=", "==", ">", "<", "=",
		NULL };
	const char *s, *const *op;

	if (json_is_boolean(v))
		return xasprintf("%s=%s", k, json_is_true(v) ? "true" : "false");
	if (json_is_integer(v))
		return xasprintf("%s==%lld", k, (long long)json_integer_value(v));
	if (json_is_real(v))
		return xasprintf("%s==%.17g", k, json_real_value(v));
	if ((s = json_string_value(v)) == NULL || strlen(s) !=
	    json_string_length(v))
		return NULL;
	for (op = ops; *op; op++)
		if (!strncmp(s, *op, strlen(*op))) {
			const char *rest = s + strlen(*op);
			while (*rest == ' ')
				rest++;
			/* "=4" means numeric equality, as in the reference. */
			return xasprintf("%s%s%s", k, !strcmp(*op, "=") ? "==" :
			    *op, rest);
		}
	return xasprintf("%s=%s", k, s);
}

static int
add_filters(call *c, json_t *filters, json_t **fail)
{
	const char *k;
	json_t *v;
	char *e;

	json_object_foreach(filters, k, v) {
		if (json_is_null(v))
			continue;
		if (!field_valid(k)) {
			*fail = bad_arg("filters", "'%.64s' is not a field name "
			    "(1 to 128 characters of A-Za-z0-9_.:-)", k);
			return -1;
		}
		if ((e = filter_expr(k, v)) == NULL) {
			*fail = bad_arg("filters", "%s: must be a string, a "
			    "number or a boolean", k);
			return -1;
		}
		add_arg(c, xasprintf("--filter=%s", e));
		free(e);
	}
	return 0;
}

static int
b_results(call *c, json_t *args, json_t **fail)
{
	const char *profile = arg_str(args, "schema_profile");
	json_t *fields = arg(args, "custom_fields"), *f;
	np_buf list = { 0 };
	size_t i;

	add_arg(c, np_xstrdup("np-results"));
	if (fields && profile && strcmp(profile, "brief") != 0) {
		*fail = bad_arg("custom_fields", "cannot be combined with "
		    "schema_profile '%s' (leave schema_profile out)", profile);
		return -1;
	}
	if (fields) {
		if (json_array_size(fields) == 0) {
			*fail = bad_arg("custom_fields", "give at least one field");
			return -1;
		}
		json_array_foreach(fields, i, f) {
			if (i)
				np_buf_add(&list, ",", 1);
			np_buf_add(&list, json_string_value(f),
			    json_string_length(f));
		}
		add_opt(c, "--fields", list.buf);
		free(list.buf);
	} else
		add_opt(c, "--profile", profile);
	if (arg(args, "filters") && add_filters(c, arg(args, "filters"),
	    fail) != 0)
		return -1;
	add_long(c, "--page", arg_int(args, "page", 1));
	add_long(c, "--page-size", arg_int(args, "page_size", 40));
	add_arg(c, np_xstrdup(arg_str(args, "task_id")));
	return 0;
}

static int
b_tasks(call *c, json_t *args, json_t **fail)
{
	(void)fail;
	add_arg(c, np_xstrdup("np-status"));
	add_arg(c, np_xstrdup("--list"));
	add_long(c, "--limit", arg_int(args, "limit", 10));
	add_opt(c, "--status", arg_str(args, "status_filter"));
	add_opt(c, "--pool", arg_str(args, "scanner_pool"));
	add_opt(c, "--target", arg_str(args, "target_filter"));
	return 0;
}

static int
b_scanners(call *c, json_t *args, json_t **fail)
{
	(void)fail;
	add_arg(c, np_xstrdup("np-select"));
	add_arg(c, np_xstrdup("--list"));
	add_opt(c, "--pool", arg_str(args, "scanner_pool"));
	return 0;
}

/* The reference's list_scanners also names the pools seen. */
static void
p_scanners(json_t *result)
{
	json_t *pools = json_array(), *s, *p;
	const char *name;
	size_t i, j;

	/* Sorted and unique, by insertion: a few pools at most. */
	json_array_foreach(json_object_get(result, "scanners"), i, s) {
		if ((name = np_json_str(s, "pool")) == NULL)
			continue;
		json_array_foreach(pools, j, p)
			if (strcmp(json_string_value(p), name) >= 0)
				break;
		if (j == json_array_size(pools) ||
		    strcmp(json_string_value(json_array_get(pools, j)), name))
			json_array_insert_new(pools, j, json_string(name));
	}
	json_object_set_new(result, "pools", pools);
}

static int
b_pools(call *c, json_t *args, json_t **fail)
{
	char *pool;
	json_t *ignored = NULL;

	(void)args;
	(void)fail;
	add_arg(c, np_xstrdup("np-select"));
	add_arg(c, np_xstrdup("--pools"));
	/* np-select reports a bad config itself; no default: no member. */
	if (default_pool(&pool, &ignored) != 0)
		json_decref(ignored);
	else
		c->extra = json_pack("{s:s}", "default_pool", pool);
	free(pool);
	return 0;
}

static int
pool_arg(json_t *args, char **pool, json_t **fail)
{
	const char *p = arg_str(args, "scanner_pool");

	if (p) {
		*pool = np_xstrdup(p);
		return 0;
	}
	return default_pool(pool, fail);
}

static int
b_pool_status(call *c, json_t *args, json_t **fail)
{
	char *pool;

	if (pool_arg(args, &pool, fail) != 0)
		return -1;
	add_arg(c, np_xstrdup("np-select"));
	add_opt(c, "--pool-status", pool);
	free(pool);
	return 0;
}

static int
b_queue(call *c, json_t *args, json_t **fail)
{
	char *pool;

	if (pool_arg(args, &pool, fail) != 0)
		return -1;
	add_arg(c, np_xstrdup("np-status"));
	add_arg(c, np_xstrdup("--queue"));
	add_opt(c, "--pool", pool);
	free(pool);
	return 0;
}

static int
b_cancel(call *c, json_t *args, json_t **fail)
{
	(void)fail;
	add_arg(c, np_xstrdup("np-cancel"));
	add_arg(c, np_xstrdup(arg_str(args, "task_id")));
	return 0;
}

static int
b_dlq(call *c, json_t *args, json_t **fail)
{
	(void)fail;
	add_arg(c, np_xstrdup("np-dlq"));
	add_opt(c, "--pool", arg_str(args, "scanner_pool"));
	add_opt(c, "--reason", arg_str(args, "reason"));
	add_long(c, "--limit", arg_int(args, "limit", 50));
	add_arg(c, np_xstrdup("list"));
	return 0;
}

/* ---- children ---------------------------------------------------------- */

static bool
executable(const char *dir, const char *cmd, char *out, size_t n)
{
	if ((size_t)snprintf(out, n, "%s/%s", dir, cmd) >= n)
		return false;
	return access(out, X_OK) == 0;
}

/*
 * Where a command is: NP_BIN when it holds it (an explicit setting wins
 * over the default, as everywhere in np), else next to np-mcp's own
 * binary, else PATH (an empty out: execvp searches).
 */
static void
command_path(const char *cmd, char *out, size_t n)
{
	const char *bin = getenv("NP_BIN");

	if (bin && *bin && executable(bin, cmd, out, n))
		return;
	if (*S.selfdir && executable(S.selfdir, cmd, out, n))
		return;
	*out = '\0';
}

static void __attribute__((noreturn))
child(call *c, const char *path, int in, int out, int err)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* Its own group, so that a kill reaches anything it starts. */
	setpgid(0, 0);
	sigaction(SIGPIPE, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (in == -1)
		in = open("/dev/null", O_RDONLY);
	if (in == -1 || dup2(in, 0) == -1 || dup2(out, 1) == -1 ||
	    dup2(err, 2) == -1)
		_exit(127);
	if (*path)
		execv(path, c->argv);
	else
		execvp(c->argv[0], c->argv);
	dprintf(2, "np-mcp: cannot run %s: %s\n", c->argv[0], strerror(errno));
	_exit(127);
}

static void
close_fd(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Starts the call's command; -1 with errno when it cannot. */
static int
start(call *c)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	char path[PATH_MAX];
	pid_t pid;

	command_path(c->argv[0], path, sizeof(path));
	if (pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1 ||
	    (c->input && pipe2(in, O_CLOEXEC) == -1) || (pid = fork()) == -1) {
		int e = errno;
		close_fd(&in[0]);
		close_fd(&in[1]);
		close_fd(&out[0]);
		close_fd(&out[1]);
		close_fd(&err[0]);
		close_fd(&err[1]);
		errno = e;
		return -1;
	}
	if (pid == 0)
		child(c, path, in[0], out[1], err[1]);
	setpgid(pid, pid);	/* both sides: no race with a kill */
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	c->pid = pid;
	c->fd_in = in[1];
	c->fd_out = out[0];
	c->fd_err = err[0];
	if (c->fd_in != -1)
		nonblock(c->fd_in);
	nonblock(c->fd_out);
	nonblock(c->fd_err);
	c->started = mono_ms();
	c->deadline = c->started + S.timeout_ms;
	S.running++;
	np_debug("%s: started %s, pid %d", c->t->name, c->argv[0], (int)pid);
	return 0;
}

/* SIGTERM to the child's group now, SIGKILL after the grace period. */
static void
stop(call *c)
{
	if (c->kill_at)
		return;
	if (!c->reaped)
		kill(-c->pid, SIGTERM);
	c->kill_at = mono_ms() + KILL_GRACE_MS;
}

static void
done_input(call *c)
{
	close_fd(&c->fd_in);
	if (c->input) {
		explicit_bzero(c->input, c->input_len);
		free(c->input);
		c->input = NULL;
	}
}

static void
feed(call *c)
{
	ssize_t n;

	while (c->input_off < c->input_len) {
		n = write(c->fd_in, c->input + c->input_off,
		    c->input_len - c->input_off);
		if (n > 0)
			c->input_off += (size_t)n;
		else if (n == -1 && errno == EINTR)
			continue;
		else if (n == -1 && errno == EAGAIN)
			return;
		else
			break;	/* EPIPE: gone unread; its exit status says why */
	}
	done_input(c);
}

/* Keeps the tail of stderr: a command's fatal message is its last line. */
static void
keep_tail(call *c, const char *s, size_t n)
{
	np_buf_add(&c->err, s, n);
	c->err_total += n;
	if (c->err.len > ERR_KEEP) {
		size_t drop = c->err.len - ERR_KEEP / 2;
		memmove(c->err.buf, c->err.buf + drop, c->err.len - drop + 1);
		c->err.len -= drop;
	}
}

static void
drain(call *c, int *fd, bool is_out)
{
	char chunk[CHUNK];
	ssize_t n;
	int i;

	/* A few chunks per turn, so that one chatty child starves nobody. */
	for (i = 0; i < 16 && *fd != -1; i++) {
		n = read(*fd, chunk, sizeof(chunk));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close_fd(fd);
			return;
		}
		if (!is_out)
			keep_tail(c, chunk, (size_t)n);
		else if (c->out.len + (size_t)n > ANSWER_MAX) {
			c->overflow = true;
			close_fd(fd);
			stop(c);
		} else
			np_buf_add(&c->out, chunk, (size_t)n);
	}
}

static void
reap(void)
{
	call *c;
	int st;

	for (c = S.calls; c; c = c->next)
		if (c->pid > 0 && !c->reaped && waitpid(c->pid, &st, WNOHANG) ==
		    c->pid) {
			c->reaped = true;
			c->status = st;
			done_input(c);
		}
}

static void
call_free(call *c)
{
	int i;

	for (i = 0; i < c->argc; i++)
		free(c->argv[i]);
	free(c->argv);
	done_input(c);
	close_fd(&c->fd_out);
	close_fd(&c->fd_err);
	free(c->out.buf);
	free(c->err.buf);
	json_decref(c->id);
	json_decref(c->extra);
	free(c);
}

/* ---- outcomes ---------------------------------------------------------- */

/* The child's last stderr line, without its "np-xxx: " prefix. */
static json_t *
last_line(call *c)
{
	const char *b = c->err.buf ? c->err.buf : "", *e, *s;
	size_t plen = strlen(c->argv[0]);

	e = b + c->err.len;
	while (e > b && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' '))
		e--;
	for (s = e; s > b && s[-1] != '\n'; s--)
		;
	if ((size_t)(e - s) > plen + 2 && !strncmp(s, c->argv[0], plen) &&
	    s[plen] == ':' && s[plen + 1] == ' ')
		s += plen + 2;
	if (e - s > 2000)
		e = s + 2000;
	if (e == s)
		return NULL;
	return text_json(s, (size_t)(e - s));
}

static bool
said(json_t *msg, const char *what)
{
	const char *s = json_string_value(msg);

	return s && strstr(s, what);
}

/*
 * A command's exit status as the reference's error shape: an HTTP-like
 * status_code and a title, the command's own message. See np-mcp(8).
 */
static json_t *
failure(call *c, int code)
{
	json_t *msg = last_line(c), *res;
	const char *title = "Internal error", *cmd = c->argv[0];
	int http = 500;

	switch (code) {
	case NP_NO:
		http = 409;
		title = !strcmp(cmd, "np-results") ? "Results not available" :
		    "Conflict";
		break;
	case NP_EUSAGE:
	case NP_EDATA:
		http = 400;
		title = "Bad request";
		if (said(msg, "exists with different request")) {
			http = 409;
			title = "Conflict";
		} else if (said(msg, "no pool named")) {
			http = 404;
			title = "Pool not found";
		} else if (said(msg, "scanner_instance: no scanner")) {
			http = 404;
			title = "Scanner not found";
		}
		break;
	case NP_ENOINPUT:
		http = 404;
		title = "Task not found";
		break;
	case NP_EUNAVAIL:
		http = 503;
		title = "Scanner unavailable";
		break;
	case NP_ETEMP:
		http = 503;
		title = "Temporarily unavailable";
		break;
	case NP_EPERM:
		http = 403;
		title = "Permission denied";
		break;
	case NP_ECONFIG:
		title = "Configuration error";
		break;
	case 127:
		title = "Command not found";
		break;
	}
	res = fail_result(http, title, NULL, json_pack("{s:i}", "exit_status",
	    code), "%s", msg ? json_string_value(msg) :
	    "the command failed without a message");
	json_decref(msg);
	return res;
}

static json_t *
parse_lines(call *c, json_t *list)
{
	const char *p = c->out.buf ? c->out.buf : "", *end = p + c->out.len;
	json_error_t je;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		json_t *v;

		if (e > p) {
			v = json_loadb(p, (size_t)(e - p), 0, &je);
			if (!json_is_object(v)) {
				json_decref(v);
				return NULL;
			}
			json_array_append_new(list, v);
		}
		p = e + 1;
	}
	return list;
}

/* The command's stdout as the tool's result object. */
static json_t *
parse_output(call *c)
{
	json_error_t je;
	json_t *list, *o;

	if (c->t->shape == S_OBJECT) {
		o = json_loadb(c->out.buf ? c->out.buf : "", c->out.len, 0, &je);
		if (json_is_object(o))
			return o;
		json_decref(o);
		return NULL;
	}
	list = json_array();
	if (parse_lines(c, list) == NULL) {
		json_decref(list);
		return NULL;
	}
	o = json_object();
	json_object_set_new(o, c->t->key, list);
	if (c->t->shape == S_LIST)
		json_object_set_new(o, "total", json_integer(
		    (json_int_t)json_array_size(list)));
	return o;
}

static json_t *
outcome(call *c)
{
	const char *cmd = c->argv[0];
	json_t *o;

	if (c->timed_out)
		return fail_result(504, "Timeout", NULL, NULL, "%s did not "
		    "finish within %lld s and was stopped (NP_MCP_TIMEOUT)", cmd,
		    (long long)(S.timeout_ms / 1000));
	if (c->overflow)
		return fail_result(413, "Answer too large", NULL, NULL, "%s "
		    "printed more than %zu MiB; %s", cmd, ANSWER_MAX >> 20,
		    c->t->shape == S_LINES ? "ask for one page at a time "
		    "(page 1, 2, ... with page_size up to 100)" :
		    "ask for less (a smaller limit, or a filter)");
	if (WIFSIGNALED(c->status))
		return fail_result(500, "Internal error", NULL, NULL, "%s was "
		    "killed by signal %d", cmd, WTERMSIG(c->status));
	if (WEXITSTATUS(c->status) != 0)
		return failure(c, WEXITSTATUS(c->status));
	if ((o = parse_output(c)) == NULL)
		return fail_result(500, "Internal error", NULL, NULL, "%s "
		    "printed output that is not the JSON expected", cmd);
	if (c->extra)
		json_object_update(o, c->extra);
	if (c->t->post)
		c->t->post(o);
	return ok_result(o);
}

static void
complete(call *c)
{
	char id[80];

	id_text(c->id, id, sizeof(id));
	np_debug("%s %s: %s exited %d after %lld ms, %zu bytes out, %zu "
	    "bytes err%s", c->t->name, id, c->argv[0],
	    WIFEXITED(c->status) ? WEXITSTATUS(c->status) :
	    128 + WTERMSIG(c->status), (long long)(mono_ms() - c->started),
	    c->out.len, c->err_total, c->cancelled ? " (cancelled: no answer)" :
	    "");
	if (c->err.len) {
		json_t *l = last_line(c);
		if (l)
			np_debug("%s[%d]: %s", c->argv[0], (int)c->pid,
			    json_string_value(l));
		json_decref(l);
	}
	if (!c->cancelled)
		respond_tool(c->id, c->t, outcome(c));
}

/* ---- the call list ----------------------------------------------------- */

static void
unlink_call(call *c)
{
	call **pp;

	for (pp = &S.calls; *pp != c; pp = &(*pp)->next)
		;
	*pp = c->next;
}

/* Finishes the calls whose child is reaped and whose pipes are drained. */
static void
finish_calls(void)
{
	call *c, *next;

	for (c = S.calls; c; c = next) {
		next = c->next;
		if (c->pid > 0 && c->reaped && c->fd_out == -1 &&
		    c->fd_err == -1) {
			unlink_call(c);
			S.running--;
			complete(c);
			call_free(c);
		}
	}
}

static void
start_waiting(void)
{
	call *c, *next;

	for (c = S.calls; c && S.running < MAX_RUNNING; c = next) {
		next = c->next;
		if (c->pid != 0)
			continue;
		if (start(c) == -1) {
			int e = errno;
			unlink_call(c);
			respond_tool(c->id, c->t, fail_result(500,
			    "Internal error", NULL, NULL, "cannot start %s: %s",
			    c->argv[0], strerror(e)));
			call_free(c);
		}
	}
}

static void
check_timers(void)
{
	int64_t now = mono_ms();
	call *c;

	for (c = S.calls; c; c = c->next) {
		if (c->pid <= 0)
			continue;
		if (!c->kill_at && now >= c->deadline) {
			c->timed_out = true;
			stop(c);
		} else if (c->kill_at && now >= c->kill_at) {
			/* Past the grace: kill it, and stop waiting for pipes
			 * that something else may still hold open. */
			if (!c->reaped)
				kill(-c->pid, SIGKILL);
			close_fd(&c->fd_out);
			close_fd(&c->fd_err);
			done_input(c);
			c->kill_at = INT64_MAX;
		}
	}
}

static int64_t
next_timer(void)
{
	int64_t t = INT64_MAX;
	call *c;

	for (c = S.calls; c; c = c->next) {
		if (c->pid <= 0)
			continue;
		if (!c->kill_at && c->deadline < t)
			t = c->deadline;
		if (c->kill_at && c->kill_at < t)
			t = c->kill_at;
	}
	return t;
}

static void
cancel(json_t *request_id)
{
	call *c, *next;

	for (c = S.calls; c; c = next) {
		next = c->next;
		if (c->cancelled || !json_equal(c->id, request_id))
			continue;
		np_debug("%s: cancelled by the client", c->t->name);
		if (c->pid == 0) {
			unlink_call(c);
			call_free(c);
		} else {
			c->cancelled = true;
			stop(c);
		}
		return;
	}
}

/* ---- protocol ------------------------------------------------------------- */

static const tool *
find_tool(const char *name)
{
	const tool *t;

	for (t = tools; t->name; t++)
		if (!strcmp(t->name, name))
			return t;
	return NULL;
}

static void
on_initialize(json_t *id, json_t *params)
{
	const char *v = np_json_str(params, "protocolVersion");
	json_t *ci = json_object_get(params, "clientInfo");
	json_t *r;

	if (v == NULL) {
		respond_error(id, -32602, "Invalid params: protocolVersion: "
		    "required");
		return;
	}
	np_info("initialize: client %.64s %.64s, protocol %.32s",
	    np_json_str(ci, "name") ? np_json_str(ci, "name") : "?",
	    np_json_str(ci, "version") ? np_json_str(ci, "version") : "?", v);
	r = json_pack("{s:s,s:{s:{s:b}},s:{s:s,s:s,s:s},s:s}",
	    "protocolVersion", one_of(v, versions) ? v : PROTOCOL_LATEST,
	    "capabilities", "tools", "listChanged", 0,
	    "serverInfo", "name", "np-mcp", "title", "np: Nessus scanner pools",
	    "version", NP_VERSION,
	    "instructions", "Scans run in the background. Submit with "
	    "run_untrusted_scan or run_authenticated_scan (they answer at once "
	    "with a task_id), poll get_scan_status until status is completed, "
	    "failed, timeout or cancelled, then read get_scan_results page by "
	    "page. Errors are results with isError true and a JSON body with "
	    "error, message and status_code.");
	respond(id, r);
}

static void
on_call(json_t *id, json_t *params)
{
	const char *name = np_json_str(params, "name");
	json_t *args = json_object_get(params, "arguments"), *fail = NULL;
	const tool *t;
	call *c;

	if (name == NULL) {
		respond_error(id, -32602, "Invalid params: name: required");
		return;
	}
	if ((t = find_tool(name)) == NULL) {
		respond_error(id, -32602, "Unknown tool: %s", name);
		return;
	}
	if (args == NULL || json_is_null(args))
		args = json_object();
	else if (!json_is_object(args)) {
		respond_error(id, -32602, "Invalid params: arguments: must be "
		    "an object");
		return;
	} else
		json_incref(args);
	if ((fail = check_args(t, args)) != NULL) {
		respond_tool(id, t, fail);
		json_decref(args);
		return;
	}
	c = np_xcalloc(1, sizeof(*c));
	c->id = json_incref(id);
	c->t = t;
	c->fd_in = c->fd_out = c->fd_err = -1;
	if (t->build(c, args, &fail) != 0) {
		respond_tool(id, t, fail);
		call_free(c);
	} else {
		call **pp;
		for (pp = &S.calls; *pp; pp = &(*pp)->next)
			;
		*pp = c;
	}
	json_decref(args);
	start_waiting();
}

static void
on_request(json_t *id, const char *method, json_t *params)
{
	if (params && !json_is_object(params) && (!strcmp(method,
	    "initialize") || !strcmp(method, "ping") || !strcmp(method,
	    "tools/list") || !strcmp(method, "tools/call"))) {
		respond_error(id, -32602, "Invalid params: must be an object");
		return;
	}
	if (!strcmp(method, "initialize"))
		on_initialize(id, params);
	else if (!strcmp(method, "ping"))
		respond(id, json_object());
	else if (!strcmp(method, "tools/list")) {
		/* Ten tools: one page, so any cursor is not one we gave. */
		if (params && json_object_get(params, "cursor") &&
		    !json_is_null(json_object_get(params, "cursor")))
			respond_error(id, -32602, "Invalid params: unknown cursor");
		else
			respond(id, json_pack("{s:O}", "tools", S.tools));
	} else if (!strcmp(method, "tools/call"))
		on_call(id, params);
	else
		respond_error(id, -32601, "Method not found: %s", method);
}

/* Notifications never get an answer, not even an error. */
static void
on_notification(const char *method, json_t *params)
{
	if (!strcmp(method, "notifications/cancelled")) {
		json_t *rid = json_object_get(params, "requestId");
		if (rid)
			cancel(rid);
	} else if (!strcmp(method, "notifications/initialized"))
		np_debug("client initialized");
	else
		np_debug("notification %s ignored", method);
}

static bool
id_valid(json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

static void
dispatch(json_t *m)
{
	json_t *id = json_object_get(m, "id"), *params;
	const char *method = np_json_str(m, "method");
	char idt[80];

	if (id && !id_valid(id)) {
		respond_error(NULL, -32600, "Invalid Request: id must be a "
		    "string or an integer");
		return;
	}
	if (!json_is_string(json_object_get(m, "jsonrpc")) ||
	    strcmp(np_json_str(m, "jsonrpc"), "2.0") != 0) {
		respond_error(id, -32600, "Invalid Request: jsonrpc must be "
		    "\"2.0\"");
		return;
	}
	if (method == NULL) {
		/* A response to a request of ours: we send none. */
		if (id && (json_object_get(m, "result") ||
		    json_object_get(m, "error")))
			return;
		respond_error(id, -32600, "Invalid Request: method must be a "
		    "string");
		return;
	}
	params = json_object_get(m, "params");
	if (json_is_null(params))
		params = NULL;
	id_text(id, idt, sizeof(idt));
	np_debug("<- %s %s", method, idt);
	if (id == NULL)
		on_notification(method, params);
	else
		on_request(id, method, params);
}

static void
handle_line(char *s, size_t n)
{
	json_error_t je;
	json_t *m;

	while (n > 0 && (s[n - 1] == '\r' || s[n - 1] == ' ' ||
	    s[n - 1] == '\t'))
		n--;
	if (n == 0)
		return;		/* a blank line carries nothing to answer */
	m = json_loadb(s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (m == NULL) {
		/* jansson quotes the input "near '...'": it may be a password. */
		char *near = strstr(je.text, " near ");
		if (near)
			*near = '\0';
		respond_error(NULL, -32700, "Parse error at column %d: %s",
		    je.column, je.text);
	}
	else if (!json_is_object(m))
		respond_error(NULL, -32600, "Invalid Request: not a JSON object "
		    "(batches were removed in MCP 2025-06-18)");
	else {
		dispatch(m);
		forget_secrets(json_object_get(json_object_get(m, "params"),
		    "arguments"));
	}
	json_decref(m);
}

/* Handles every whole line in the input buffer. */
static void
take_lines(void)
{
	size_t start = 0;
	char *nl;

	while ((nl = memchr(S.in.buf + S.in_scan, '\n', S.in.len -
	    S.in_scan)) != NULL) {
		size_t end = (size_t)(nl - S.in.buf);

		if (!S.in_skip)
			handle_line(S.in.buf + start, end - start);
		S.in_skip = false;
		start = S.in_scan = end + 1;
	}
	S.in_scan = S.in.len;
	if (start) {
		/* The lines may have held credentials. */
		explicit_bzero(S.in.buf, start);
		memmove(S.in.buf, S.in.buf + start, S.in.len - start);
		S.in.len -= start;
		S.in_scan -= start;
	}
	if (!S.in_skip && S.in.len > LINE_MAX_BYTES) {
		respond_error(NULL, -32600, "Invalid Request: message longer "
		    "than %zu MiB", LINE_MAX_BYTES >> 20);
		S.in_skip = true;
	}
	if (S.in_skip) {
		explicit_bzero(S.in.buf, S.in.len);
		S.in.len = S.in_scan = 0;
	}
}

static void
read_stdin(void)
{
	char chunk[CHUNK];
	ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));

	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n == -1)
		np_warn("standard input: %s", strerror(errno));
	if (n <= 0) {
		/* A last line without its newline still counts. */
		S.in_eof = true;
		if (S.in.len && !S.in_skip)
			handle_line(S.in.buf, S.in.len);
		if (S.in.buf)
			explicit_bzero(S.in.buf, S.in.len);
		S.in.len = S.in_scan = 0;
		np_debug("end of input; %d calls in flight", S.running);
		return;
	}
	np_buf_add(&S.in, chunk, (size_t)n);
	explicit_bzero(chunk, (size_t)n);
	take_lines();
}

/* ---- the loop ---------------------------------------------------------- */

static void
on_signal(int sig)
{
	int e = errno;
	ssize_t n;

	if (sig != SIGCHLD)
		got_term = sig;
	n = write(S.sig[1], "x", 1);
	(void)n;
	errno = e;
}

static void
drain_sigpipe(void)
{
	char buf[64];

	while (read(S.sig[0], buf, sizeof(buf)) > 0)
		;
}

/* Ends every child, frees everything (valgrind stays quiet) and exits. */
static void
quit(int status)
{
	int64_t until = mono_ms() + KILL_GRACE_MS;
	call *c, *next;
	bool alive;

	for (c = S.calls; c; c = c->next)
		if (c->pid > 0 && !c->reaped)
			kill(-c->pid, SIGTERM);
	do {
		reap();
		alive = false;
		for (c = S.calls; c; c = c->next)
			alive |= c->pid > 0 && !c->reaped;
		if (alive)
			np_sleep_ms(20);
	} while (alive && mono_ms() < until);
	for (c = S.calls; c; c = next) {
		next = c->next;
		if (c->pid > 0 && !c->reaped) {
			kill(-c->pid, SIGKILL);
			waitpid(c->pid, NULL, 0);
		}
		call_free(c);
	}
	S.calls = NULL;
	if (S.out_flags != -1)
		fcntl(STDOUT_FILENO, F_SETFL, S.out_flags);
	free(S.in.buf);
	free(S.out.buf);
	json_decref(S.tools);
	close_fd(&S.sig[0]);
	close_fd(&S.sig[1]);
	np_info("exiting with status %d", status);
	exit(status);
}

typedef struct {
	call *c;
	int *fd;
	int what;	/* 0 stdin, 1 stdout, 2 stderr of the child */
} watch;

static void
serve_children(struct pollfd *pf, watch *w, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (pf[i].revents == 0 || *w[i].fd != pf[i].fd)
			continue;
		if (w[i].what == 0)
			feed(w[i].c);
		else
			drain(w[i].c, w[i].fd, w[i].what == 1);
	}
}

static size_t
add_watch(struct pollfd *pf, watch *w, size_t n, call *c, int *fd, int what)
{
	if (*fd == -1)
		return n;
	pf[n].fd = *fd;
	pf[n].events = what == 0 ? POLLOUT : POLLIN;
	pf[n].revents = 0;
	w[n].c = c;
	w[n].fd = fd;
	w[n].what = what;
	return n + 1;
}

static int
poll_timeout(void)
{
	int64_t t = next_timer(), now = mono_ms();

	if (t == INT64_MAX)
		return -1;
	return t <= now ? 0 : t - now > INT_MAX ? INT_MAX : (int)(t - now);
}

static void
serve(void)
{
	struct pollfd *pf = NULL;
	watch *w = NULL;
	size_t cap = 0, n, base;
	call *c;

	for (;;) {
		if (got_term) {
			np_info("signal %d: stopping", (int)got_term);
			free(pf);
			free(w);
			quit(0);
		}
		if (S.in_eof && S.calls == NULL && S.out.len == S.out_off)
			break;
		if (cap < 3 + 3 * (size_t)S.running) {
			cap = 3 + 3 * (size_t)S.running + 16;
			pf = np_xrealloc(pf, cap * sizeof(*pf));
			w = np_xrealloc(w, cap * sizeof(*w));
		}
		pf[0] = (struct pollfd){ S.sig[0], POLLIN, 0 };
		pf[1] = (struct pollfd){ S.in_eof ? -1 : STDIN_FILENO, POLLIN, 0 };
		pf[2] = (struct pollfd){ S.out.len > S.out_off ? STDOUT_FILENO :
		    -1, POLLOUT, 0 };
		base = n = 3;
		for (c = S.calls; c; c = c->next) {
			n = add_watch(pf, w, n, c, &c->fd_in, 0);
			n = add_watch(pf, w, n, c, &c->fd_out, 1);
			n = add_watch(pf, w, n, c, &c->fd_err, 2);
		}
		if (poll(pf, n, poll_timeout()) == -1) {
			if (errno != EINTR)
				np_die(NP_ESOFTWARE, "poll: %s", strerror(errno));
			continue;
		}
		if (pf[0].revents)
			drain_sigpipe();
		reap();
		serve_children(pf + base, w + base, n - base);
		if (pf[2].revents)
			flush_out();
		if (pf[1].revents)
			read_stdin();
		check_timers();
		finish_calls();
		start_waiting();
	}
	free(pf);
	free(w);
}

/* ---- setup ---------------------------------------------------------------- */

/*
 * An outputSchema from a short form: words "name:type", a '*' after the
 * type for a required property. Types: string, integer, boolean,
 * objects (array of objects) and strings (array of strings).
 */
static json_t *
out_schema(const char *spec)
{
	json_t *props = json_object(), *req = json_array(), *s;
	char *copy = np_xstrdup(spec), *save = NULL, *word, *type;
	size_t n;

	for (word = strtok_r(copy, " ", &save); word; word = strtok_r(NULL,
	    " ", &save)) {
		type = strchr(word, ':');
		*type++ = '\0';
		if ((n = strlen(type)) && type[n - 1] == '*') {
			type[n - 1] = '\0';
			json_array_append_new(req, json_string(word));
		}
		if (!strcmp(type, "objects"))
			s = json_pack("{s:s,s:{s:s}}", "type", "array", "items",
			    "type", "object");
		else if (!strcmp(type, "strings"))
			s = json_pack("{s:s,s:{s:s}}", "type", "array", "items",
			    "type", "string");
		else
			s = json_pack("{s:s}", "type", type);
		json_object_set_new(props, word, s);
	}
	free(copy);
	return json_pack("{s:s,s:o,s:o,s:b}", "type", "object", "properties",
	    props, "required", req, "additionalProperties", 1);
}

static json_t *
param_schema(const param *p)
{
	json_t *s = json_object(), *e;
	const char *const *c;

	switch (p->type) {
	case T_STRING:
		json_object_set_new(s, "type", json_string("string"));
		if (p->choices) {
			e = json_array();
			for (c = p->choices; *c; c++)
				json_array_append_new(e, json_string(*c));
			json_object_set_new(s, "enum", e);
		} else if (p->max)
			json_object_set_new(s, "maxLength", json_integer(p->max));
		break;
	case T_INTEGER:
		json_object_set_new(s, "type", json_string("integer"));
		json_object_set_new(s, "minimum", json_integer(p->min));
		json_object_set_new(s, "maximum", json_integer(p->max));
		break;
	case T_STRINGS:
		json_object_set_new(s, "type", json_string("array"));
		json_object_set_new(s, "items", json_pack("{s:s}", "type",
		    "string"));
		break;
	case T_OBJECT:
		json_object_set_new(s, "type", json_string("object"));
		break;
	}
	if (p->dflt)
		json_object_set_new(s, "default", json_loads(p->dflt,
		    JSON_DECODE_ANY, NULL));
	json_object_set_new(s, "description", json_string(p->desc));
	return s;
}

/* Flat schemas, no unions: some clients drop every tool of a server
 * whose schemas use anyOf or type arrays. */
static json_t *
in_schema(const param *params)
{
	json_t *s = json_pack("{s:s}", "type", "object"), *props, *req;
	const param *p;

	if (params->name) {
		props = json_object();
		req = json_array();
		for (p = params; p->name; p++) {
			json_object_set_new(props, p->name, param_schema(p));
			if (p->required)
				json_array_append_new(req, json_string(p->name));
		}
		json_object_set_new(s, "properties", props);
		if (json_array_size(req))
			json_object_set_new(s, "required", req);
		else
			json_decref(req);
	}
	json_object_set_new(s, "additionalProperties", json_false());
	return s;
}

static json_t *
annotations(const tool *t)
{
	switch (t->kind) {
	case K_READ:
		return json_pack("{s:s,s:b,s:b}", "title", t->title,
		    "readOnlyHint", 1, "openWorldHint", 0);
	case K_SUBMIT:
		return json_pack("{s:s,s:b,s:b,s:b,s:b}", "title", t->title,
		    "readOnlyHint", 0, "destructiveHint", 0, "idempotentHint", 0,
		    "openWorldHint", 1);
	case K_CANCEL:
		break;
	}
	return json_pack("{s:s,s:b,s:b,s:b,s:b}", "title", t->title,
	    "readOnlyHint", 0, "destructiveHint", 1, "idempotentHint", 1,
	    "openWorldHint", 1);
}

static json_t *
tool_list(void)
{
	json_t *list = json_array();
	const tool *t;

	for (t = tools; t->name; t++)
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:o,s:o,s:o}",
		    "name", t->name, "title", t->title, "description", t->desc,
		    "inputSchema", in_schema(t->params), "outputSchema",
		    out_schema(t->output), "annotations", annotations(t)));
	return list;
}

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-mcp\n"
	    "  an MCP server on standard input and output (see np-mcp(8))\n");
	exit(status);
}

static void
setup_timeout(void)
{
	const char *s = getenv("NP_MCP_TIMEOUT");
	long v = 60;

	if (s && *s && np_parse_int(s, 1, 86400, &v) == -1)
		np_die(NP_ECONFIG, "NP_MCP_TIMEOUT: expected seconds, 1 to "
		    "86400, not '%.32s'", s);
	S.timeout_ms = (int64_t)v * 1000;
}

static void
setup_selfdir(void)
{
	ssize_t n = readlink("/proc/self/exe", S.selfdir,
	    sizeof(S.selfdir) - 1);
	char *slash;

	if (n <= 0) {
		S.selfdir[0] = '\0';
		return;
	}
	S.selfdir[n] = '\0';
	if ((slash = strrchr(S.selfdir, '/')) != NULL)
		*slash = '\0';
}

static void
setup_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	struct sigaction ign = { .sa_handler = SIG_IGN };

	if (pipe2(S.sig, O_CLOEXEC | O_NONBLOCK) == -1)
		np_die(NP_ESOFTWARE, "pipe: %s", strerror(errno));
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* A client gone shows as EPIPE on write, handled there. */
	sigaction(SIGPIPE, &ign, NULL);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (ch) {
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
	setup_timeout();
	setup_selfdir();
	setup_signals();
	S.tools = tool_list();
	/* Non-blocking, so that a slow reader never stops us reading. */
	if ((S.out_flags = fcntl(STDOUT_FILENO, F_GETFL)) != -1)
		fcntl(STDOUT_FILENO, F_SETFL, S.out_flags | O_NONBLOCK);
	np_info("ready (protocol %s, timeout %lld s)", PROTOCOL_LATEST,
	    (long long)(S.timeout_ms / 1000));
	serve();
	quit(0);
}
