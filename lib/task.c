/*
 * task.c: task records. Each task is a folder $data_dir/tasks/<id>/
 * (mode 0700) holding task.json (0600), written atomically; readers
 * never see a torn record. Updates take an flock on the folder's .lock
 * so that two writers (np-scan recording progress, np-status touching
 * last_accessed_at) never lose each other's change.
 *
 * Task ids are fixed-format, YYYYMMDDTHHMMSSZ-<16 hex>, sort by creation
 * time, and are validated wherever one is read, so "../x" or "a/b" never
 * reaches a path.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "np.h"

#define TASK_MAX (16 << 20)

int
np_task_id_new(char out[NP_TASKID_LEN + 1])
{
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 18, "%Y%m%dT%H%M%SZ-", &tm);
	np_random_hex(out + 17, 16);
	return 0;
}

bool
np_task_id_valid(const char *id)
{
	static const char shape[] = "ddddddddTddddddZ-xxxxxxxxxxxxxxxx";
	size_t i;

	if (id == NULL || strlen(id) != NP_TASKID_LEN)
		return false;
	for (i = 0; i < NP_TASKID_LEN; i++) {
		char c = id[i];
		switch (shape[i]) {
		case 'd':
			if (!isdigit((unsigned char)c))
				return false;
			break;
		case 'x':
			if (!isdigit((unsigned char)c) && !(c >= 'a' && c <= 'f'))
				return false;
			break;
		default:
			if (c != shape[i])
				return false;
		}
	}
	return true;
}

int
np_task_check_id(const char *id, np_error *err)
{
	char shown[48];
	size_t i;

	if (np_task_id_valid(id))
		return 0;
	snprintf(shown, sizeof(shown), "%s", id ? id : "");
	for (i = 0; shown[i]; i++)
		if (!isprint((unsigned char)shown[i]))
			shown[i] = '?';
	return np_seterr(err, NP_EDATA, "'%s%s': not a task id (expected "
	    "YYYYMMDDTHHMMSSZ-<16 hex digits>)", shown,
	    id && strlen(id) >= sizeof(shown) ? "..." : "");
}

void
np_task_dir(const np_config *cfg, const char *id, char *buf, size_t n)
{
	snprintf(buf, n, "%s/tasks/%s", cfg->data_dir, id);
}

int
np_task_write(const np_config *cfg, const char *id, json_t *task, int flags,
    np_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	char *s;
	int rc;

	if ((rc = np_task_check_id(id, err)) != 0)
		return rc;
	np_task_dir(cfg, id, dir, sizeof(dir));
	if (np_mkdir_p(dir, 0700) == -1)
		return np_seterr(err, errno == EACCES ? NP_EPERM : NP_EIO,
		    "%s: %s", dir, strerror(errno));
	snprintf(path, sizeof(path), "%s/task.json", dir);
	s = json_dumps(task, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s == NULL)
		return np_seterr(err, NP_ESOFTWARE, "out of memory");
	rc = np_write_atomic(path, s, strlen(s), 0600, flags, err);
	free(s);
	return rc;
}

int
np_task_load(const np_config *cfg, const char *id, json_t **out, np_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 16];
	json_error_t je;
	char *buf;
	size_t len;
	int rc;

	*out = NULL;
	if ((rc = np_task_check_id(id, err)) != 0)
		return rc;
	np_task_dir(cfg, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/task.json", dir);
	if ((rc = np_read_file(path, TASK_MAX, &buf, &len, err)) != 0) {
		if (rc == NP_ENOINPUT)
			return np_seterr(err, NP_ENOINPUT, "task %s: no such task",
			    id);
		return rc;
	}
	*out = json_loadb(buf, len, 0, &je);
	free(buf);
	if (*out == NULL || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return np_seterr(err, NP_EDATA, "%s: corrupt record: %s", path,
		    je.text);
	}
	return 0;
}

/*
 * Takes the record's lock. A writer that hangs while holding it (a
 * stalled disk, a frozen process) must not hang every other command, so
 * the wait is bounded; the caller retries later.
 */
static int
lock_record(int fd, const char *id, int flags, np_error *err)
{
	int64_t until = np_now_ms() + NP_LOCK_WAIT_MS;
	int64_t pause = 2;

	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return np_seterr(err, NP_EIO, "task %s: lock: %s", id,
			    strerror(errno));
		if ((flags & NP_TRYLOCK) || np_now_ms() >= until)
			return np_seterr(err, NP_ETEMP, "task %s: record busy "
			    "(another writer holds its lock); try again", id);
		np_sleep_ms(pause);
		if (pause < 50)
			pause *= 2;
	}
}

int
np_task_update(const np_config *cfg, const char *id, np_task_fn fn, void *arg,
    int flags, np_error *err)
{
	char dir[PATH_MAX], lock[PATH_MAX + 16];
	json_t *task;
	int fd, rc;

	if ((rc = np_task_check_id(id, err)) != 0)
		return rc;
	np_task_dir(cfg, id, dir, sizeof(dir));
	snprintf(lock, sizeof(lock), "%s/.lock", dir);
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) == -1)
		return np_seterr(err, errno == ENOENT ? NP_ENOINPUT :
		    errno == EACCES ? NP_EPERM : NP_EIO, "task %s: %s", id,
		    errno == ENOENT ? "no such task" : strerror(errno));
	if ((rc = lock_record(fd, id, flags, err)) != 0) {
		close(fd);
		return rc;
	}
	if ((rc = np_task_load(cfg, id, &task, err)) == 0) {
		if ((rc = fn(task, arg, err)) == 0)
			rc = np_task_write(cfg, id, task, flags & NP_SYNC, err);
		json_decref(task);
	}
	close(fd);
	return rc;
}

/*
 * The task state machine (np(7)): queued -> running -> completed |
 * failed | timeout | cancelled. A running task goes back to queued when
 * its worker hands it back; failed and timeout go back to queued when
 * retried from the dead-letter queue. completed and cancelled are final.
 */
static const struct {
	const char *from, *to;
} moves[] = {
	{ "queued", "running" }, { "queued", "cancelled" },
	{ "queued", "failed" },
	{ "running", "completed" }, { "running", "failed" },
	{ "running", "timeout" }, { "running", "cancelled" },
	{ "running", "queued" },
	{ "failed", "queued" }, { "timeout", "queued" },
};

static const char *const states[] = { "queued", "running", "completed",
	"failed", "timeout", "cancelled", NULL };

bool
np_state_valid(const char *s)
{
	for (const char *const *p = states; s && *p; p++)
		if (!strcmp(*p, s))
			return true;
	return false;
}

bool
np_state_terminal(const char *s)
{
	return s && (!strcmp(s, "completed") || !strcmp(s, "failed") ||
	    !strcmp(s, "timeout") || !strcmp(s, "cancelled"));
}

bool
np_state_allowed(const char *from, const char *to)
{
	size_t i;

	for (i = 0; from && to && i < sizeof(moves) / sizeof(moves[0]); i++)
		if (!strcmp(moves[i].from, from) && !strcmp(moves[i].to, to))
			return true;
	return false;
}

static void
set_now(json_t *task, const char *key)
{
	char ts[32];

	np_rfc3339(np_now_ms(), ts);
	json_object_set_new(task, key, json_string(ts));
}

int
np_task_set_state(json_t *task, const char *to, np_error *err)
{
	const char *from = np_json_str(task, "status");

	if (!np_state_allowed(from, to))
		return np_seterr(err, NP_NO, "task %s: %s -> %s is not allowed",
		    np_json_str(task, "task_id"), from ? from : "(none)", to);
	json_object_set_new(task, "status", json_string(to));
	if (!strcmp(to, "running"))
		set_now(task, "started_at");
	if (np_state_terminal(to))
		set_now(task, "completed_at");
	if (!strcmp(to, "queued"))
		json_object_set_new(task, "completed_at", json_null());
	set_now(task, "updated_at");
	return 0;
}

/* np_task_update's form of np_task_set_state: arg is the new state. */
int
np_task_to_state(json_t *task, void *to, np_error *err)
{
	return np_task_set_state(task, to, err);
}

/*
 * Scan credentials wait for np-scan in their own 0600 file, never in
 * task.json; np-scan deletes the file once the Nessus scan holds them.
 */
int
np_task_write_credentials(const np_config *cfg, const char *id,
    const np_request *r, int flags, np_error *err)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	json_t *o;
	char *s;
	int rc;

	np_task_dir(cfg, id, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/credentials.json", dir);
	o = json_object();
	json_object_set_new(o, "type", json_string("ssh"));
	json_object_set_new(o, "username", json_string(r->ssh_username));
	json_object_set_new(o, "password", json_string(r->ssh_password));
	json_object_set_new(o, "elevate_privileges_with", json_string(r->elevate));
	if (r->esc_account)
		json_object_set_new(o, "escalation_account",
		    json_string(r->esc_account));
	if (r->esc_password)
		json_object_set_new(o, "escalation_password",
		    json_string(r->esc_password));
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	rc = np_write_atomic(path, s, strlen(s), 0600, flags, err);
	explicit_bzero(s, strlen(s));
	free(s);
	return rc;
}

json_t *
np_task_from_request(const np_request *r, const char *id,
    const np_scanner *inst)
{
	json_t *t = json_object();
	char ts[32], trace[33];

	np_rfc3339(np_now_ms(), ts);
	np_random_hex(trace, 32);
	json_object_set_new(t, "task_id", json_string(id));
	json_object_set_new(t, "trace_id", json_string(trace));
	json_object_set_new(t, "name", json_string(r->name));
	json_object_set_new(t, "description", json_string(r->description));
	json_object_set_new(t, "targets", json_string(r->targets));
	json_object_set_new(t, "scan_type", json_string(r->scan_type));
	json_object_set_new(t, "scanner_pool", json_string(r->pool));
	json_object_set_new(t, "scanner_instance",
	    inst ? json_string(inst->instance_id) : json_null());
	json_object_set_new(t, "scanner_url",
	    inst ? json_string(inst->url) : json_null());
	json_object_set_new(t, "targeted_instance", json_boolean(inst != NULL));
	json_object_set_new(t, "schema_profile", json_string(r->schema_profile));
	if (r->ssh_username) {
		json_object_set_new(t, "ssh_username", json_string(r->ssh_username));
		json_object_set_new(t, "elevate_privileges_with",
		    json_string(r->elevate));
		if (r->esc_account)
			json_object_set_new(t, "escalation_account",
			    json_string(r->esc_account));
	}
	json_object_set_new(t, "status", json_string("queued"));
	json_object_set_new(t, "nessus_scan_id", json_null());
	json_object_set_new(t, "attempts", json_integer(0));
	json_object_set_new(t, "progress", json_integer(0));
	json_object_set_new(t, "created_at", json_string(ts));
	json_object_set_new(t, "updated_at", json_string(ts));
	json_object_set_new(t, "started_at", json_null());
	json_object_set_new(t, "completed_at", json_null());
	json_object_set_new(t, "last_accessed_at", json_string(ts));
	json_object_set_new(t, "error", json_null());
	json_object_set_new(t, "validation_stats", json_null());
	json_object_set_new(t, "validation_warnings", json_array());
	json_object_set_new(t, "authentication_status", json_null());
	json_object_set_new(t, "idempotency_key",
	    r->idempotency_key ? json_string(r->idempotency_key) : json_null());
	json_object_set_new(t, "request_hash", json_string(r->hash));
	json_object_set_new(t, "history", json_array());
	return t;
}

/* Appends {at, event, detail} to the task's history, keeping the last 50. */
void
np_task_history(json_t *task, const char *event, const char *detail)
{
	json_t *h = json_object_get(task, "history"), *e;
	char ts[32];

	if (!json_is_array(h)) {
		h = json_array();
		json_object_set_new(task, "history", h);
	}
	np_rfc3339(np_now_ms(), ts);
	e = json_pack("{s:s,s:s}", "at", ts, "event", event);
	if (detail)
		json_object_set_new(e, "detail", json_string(detail));
	json_array_append_new(h, e);
	while (json_array_size(h) > 50)
		json_array_remove(h, 0);
}
