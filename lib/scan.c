/*
 * scan.c: one task run end to end on the scanner its lease names
 * (np-scan(1), and np-worker's children): create (or find again) the
 * Nessus scan, launch, poll, export, download, validate, record.
 *
 * The Nessus scan id is recorded in task.json before the launch, and the
 * scan's name carries the task id, so a restarted run reattaches to its
 * scan instead of creating a second one. np_scan_task returns np-scan's
 * exit status: 0 the task completed; 1 it ended failed or timeout (record
 * and dead-letter queue say why); 75 a transient failure, the task is
 * still running and np-worker puts it back in line (or dead-letters it
 * once its attempts are used up). np_interrupted (SIGTERM) stops it at
 * its next step, leaving the Nessus scan running.
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "np.h"

#define PUBLISH_WAIT_MS 30000

#define EXPORT_WAIT_MS (30 * 60 * 1000)

typedef struct {
	np_config *cfg;
	redisContext *c;
	const char *id;
	const char *pool;
	const np_scanner *s;
	np_nessus *n;
	json_t *task;		/* our copy; the file is the record */
	char dir[PATH_MAX];
	long scan_id;
	int64_t token;		/* of our claim (lease.c) */
	bool maybe_created;	/* an earlier attempt may have made the scan */
} scan;

/* Applies the fields of patch to the record (under its lock). */
static int
merge(json_t *task, void *arg, np_error *err)
{
	(void)err;
	json_object_update(task, arg);
	return 0;
}

static int
save(scan *sc, json_t *patch, int flags, np_error *err)
{
	int rc = np_task_update(sc->cfg, sc->id, merge, patch, flags, err);

	json_object_update(sc->task, patch);
	json_decref(patch);
	return rc;
}

typedef struct {
	const char *inst, *url;
	bool maybe_created;	/* out */
} start_arg;

static int
start(json_t *task, void *arg, np_error *err)
{
	start_arg *a = arg;
	const char *st = np_json_str(task, "status");
	char detail[128];
	int rc;

	if (np_state_terminal(st))
		return np_seterr(err, NP_NO, "task %s is %s: nothing to do",
		    np_json_str(task, "task_id"), st);
	/* A scan that exists lives on its scanner: never poll it elsewhere. */
	if (json_integer_value(json_object_get(task, "nessus_scan_id")) > 0 &&
	    np_json_str(task, "scanner_instance") &&
	    strcmp(np_json_str(task, "scanner_instance"), a->inst) != 0)
		return np_seterr(err, NP_ETEMP, "task %s: its Nessus scan lives "
		    "on %s, not on the leased %s", np_json_str(task, "task_id"),
		    np_json_str(task, "scanner_instance"), a->inst);
	if (!strcmp(st, "queued") && (rc = np_task_set_state(task, "running",
	    err)) != 0)
		return rc;
	json_object_set_new(task, "attempts", json_integer(json_integer_value(
	    json_object_get(task, "attempts")) + 1));
	/* Noted before the first create is sent: only a task that has been
	 * this far can have a scan it does not know of (answer lost). */
	if (json_integer_value(json_object_get(task, "nessus_scan_id")) <= 0) {
		a->maybe_created = json_is_true(json_object_get(task,
		    "create_sent"));
		json_object_set_new(task, "create_sent", json_true());
	}
	json_object_set_new(task, "scanner_instance", json_string(a->inst));
	json_object_set_new(task, "scanner_url", json_string(a->url));
	snprintf(detail, sizeof(detail), "attempt %lld on %s",
	    json_integer_value(json_object_get(task, "attempts")), a->inst);
	np_task_history(task, "started", detail);
	return 0;
}

/* np-cancel ends the record first; np-scan notices at its next step. */
static bool
cancelled(scan *sc)
{
	np_error err;
	json_t *t;
	bool yes = false;

	if (np_task_load(sc->cfg, sc->id, &t, &err) == 0) {
		yes = !strcmp(np_json_str(t, "status"), "cancelled");
		json_decref(t);
	}
	if (yes)
		np_info("task %s: cancelled; stopping", sc->id);
	return yes;
}

/* Maps a client failure to a dead-letter reason. */
static const char *
reason_of(int code)
{
	switch (code) {
	case NP_ETEMP: return "scanner_error";
	case NP_ECONFIG: return "scanner_auth";
	case NP_EUNAVAIL: return "api_unavailable";
	case NP_EPERM: return "scanner_auth";
	case NP_ENOINPUT: return "scan_deleted";
	default: return "bad_request";
	}
}

/* Does this failure speak about the scanner's health? */
static bool
breaker_counts(int code)
{
	return code == NP_ETEMP || code == NP_ECONFIG;
}

/* The end of a permanent failure: record, breaker, dead letters, exit 1. */
static int
fail(scan *sc, const char *state, const char *reason, const np_error *why)
{
	np_error err;

	if (breaker_counts(why->code))
		np_breaker_failure(sc->c, sc->cfg, sc->pool, sc->s->instance_id,
		    NULL, &err);
	np_warn("task %s: %s (%s): %s", sc->id, state, reason, why->msg);
	/* NP_NO: the record was ended meanwhile (cancelled): leave it. */
	if (np_task_fail(sc->c, sc->cfg, sc->id, state, reason, why->msg,
	    &err) != 0 && err.code != NP_NO)
		np_die_err(&err);
	return NP_NO;
}

/* A transient failure: note it, count it against the scanner, exit 75. */
static int
transient(scan *sc, const np_error *why)
{
	np_error err;
	json_t *p = json_pack("{s:s}", "error", why->msg);

	if (breaker_counts(why->code) && !np_interrupted)
		np_breaker_failure(sc->c, sc->cfg, sc->pool, sc->s->instance_id,
		    NULL, &err);
	save(sc, p, 0, &err);
	np_warn("task %s: %s", sc->id, why->msg);
	return NP_ETEMP;
}

static json_t *
credentials(scan *sc, np_error *err)
{
	char path[PATH_MAX + 32];
	json_error_t je;
	json_t *c, *ssh;
	char *buf;
	size_t len;

	snprintf(path, sizeof(path), "%s/credentials.json", sc->dir);
	if (np_read_file(path, 65536, &buf, &len, err) != 0)
		return NULL;
	c = json_loadb(buf, len, 0, &je);
	explicit_bzero(buf, len);
	free(buf);
	if (c == NULL) {
		np_seterr(err, NP_EDATA, "%s: unreadable", path);
		return NULL;
	}
	ssh = json_pack("{s:s,s:O,s:O,s:O,s:s,s:s}", "auth_method", "password",
	    "username", json_object_get(c, "username"),
	    "password", json_object_get(c, "password"),
	    "elevate_privileges_with", json_object_get(c,
	    "elevate_privileges_with"), "custom_password_prompt", "",
	    "target_priority_list", "");
	if (json_object_get(c, "escalation_account"))
		json_object_set(ssh, "escalation_account",
		    json_object_get(c, "escalation_account"));
	if (json_object_get(c, "escalation_password"))
		json_object_set(ssh, "escalation_password",
		    json_object_get(c, "escalation_password"));
	json_decref(c);
	return json_pack("{s:{s:{s:[o]}},s:{},s:[]}", "add", "Host", "SSH", ssh,
	    "edit", "delete");
}

static void
wipe_credentials(scan *sc)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/credentials.json", sc->dir);
	if (unlink(path) == 0)
		np_fsync_dir(sc->dir);
}

/*
 * Creates the Nessus scan, or finds the one an earlier attempt created
 * (its name carries the task id), and records its id.
 */
static int
create(scan *sc, np_error *err)
{
	char tag[64], uuid[128];
	json_t *body, *creds = NULL;
	const char *type = np_json_str(sc->task, "scan_type");
	int rc;

	snprintf(tag, sizeof(tag), "[np:%s]", sc->id);
	/* Listing every scan of the scanner is dear on a busy Nessus: only
	 * when an earlier attempt sent a create. */
	rc = sc->maybe_created ? np_nessus_find(sc->n, tag, &sc->scan_id,
	    err) : NP_ENOINPUT;
	if (rc != 0 && rc != NP_ENOINPUT)
		return rc;
	if (rc == NP_ENOINPUT) {
		if (strcmp(type, "untrusted") != 0 &&
		    (creds = credentials(sc, err)) == NULL)
			return np_seterr(err, NP_EDATA, "credentials_missing: %s",
			    err->msg);
		if ((rc = np_nessus_template(sc->n, "advanced", uuid, err)) != 0) {
			json_decref(creds);
			return rc == NP_ENOINPUT ? np_seterr(err, NP_EDATA,
			    "scanner %s has no 'advanced' scan template",
			    sc->s->instance_id) : rc;
		}
		body = json_pack("{s:s,s:{s:s++,s:s,s:s,s:b,s:b}}", "uuid", uuid,
		    "settings", "name", np_json_str(sc->task, "name"), " ", tag,
		    "text_targets", np_json_str(sc->task, "targets"),
		    "description", np_json_str(sc->task, "description"),
		    "enabled", 1, "launch_now", 0);
		if (creds)
			json_object_set_new(body, "credentials", creds);
		rc = np_nessus_create(sc->n, body, &sc->scan_id, err);
		json_decref(body);
		/* A dropped answer may hide a scan that was made: look again. */
		if (rc == NP_ETEMP) {
			np_error ferr;
			if (np_nessus_find(sc->n, tag, &sc->scan_id, &ferr) == 0)
				rc = 0;
		}
		if (rc)
			return rc;
	}
	/* Not synced: the launch's record write is. Until then a lost scan
	 * id is found again by name (create_sent is durable). */
	rc = save(sc, json_pack("{s:i}", "nessus_scan_id", (json_int_t)sc->scan_id),
	    0, err);
	/* Pinned, a recovered task goes back to this scanner only. */
	if (rc == 0 && (rc = np_lease_pin(sc->c, sc->cfg, sc->pool, sc->id,
	    err)) == 0) {
		wipe_credentials(sc);
		np_info("task %s: nessus scan %ld on %s", sc->id, sc->scan_id,
		    sc->s->instance_id);
	}
	return rc;
}

static int
launch(scan *sc, np_error *err)
{
	char ts[32];
	int rc;

	if ((rc = np_nessus_launch(sc->n, sc->scan_id, err)) != 0)
		return rc;
	np_rfc3339(np_now_ms(), ts);
	return save(sc, json_pack("{s:s}", "launched_at", ts), NP_SYNC, err);
}

/* Download problems are worth one more export; verdicts are not. */
static bool
bad_download(const char *reason)
{
	return !strcmp(reason, "xml_invalid") || !strcmp(reason, "not_nessus") ||
	    !strcmp(reason, "too_small") || !strcmp(reason, "file_not_found");
}

/*
 * Exports, downloads and validates the report (np-validate's checks,
 * with the task's scan type). *verdict is np_validate_file's answer for
 * the last download. Returns 0 valid, NP_NO invalid (err says why).
 */
static int
download(scan *sc, json_t **verdict, np_error *err)
{
	char path[PATH_MAX + 32], st[32];
	int64_t until = np_now_ms() + EXPORT_WAIT_MS;
	long file;
	int rc, tries;

	*verdict = NULL;
	snprintf(path, sizeof(path), "%s/scan.nessus", sc->dir);
	for (tries = 0; tries < 2; tries++) {
		if ((rc = np_nessus_export(sc->n, sc->scan_id, &file, err)) != 0)
			return rc;
		for (;;) {
			if ((rc = np_nessus_export_status(sc->n, sc->scan_id, file,
			    st, err)) != 0)
				return rc;
			if (strcmp(st, "loading") != 0 || np_interrupted ||
			    np_now_ms() > until)
				break;
			np_sleep_ms(sc->cfg->s.poll_interval < 1000 ?
			    sc->cfg->s.poll_interval : 1000);
		}
		if (np_interrupted)
			return np_seterr(err, NP_ETEMP, "interrupted while exporting");
		if (strcmp(st, "ready") != 0) {
			np_seterr(err, NP_NO, "export_failed: export %ld of scan %ld "
			    "ended '%s'", file, sc->scan_id, st);
			continue;
		}
		if ((rc = np_nessus_download(sc->n, sc->scan_id, file, path,
		    err)) != 0)
			return rc;
		json_decref(*verdict);
		rc = np_validate_file(path, np_json_str(sc->task, "scan_type"), 0,
		    verdict, err);
		if (rc == 0)
			return 0;
		np_seterr(err, NP_NO, "%s: %s", np_json_str(*verdict, "reason"),
		    np_json_str(*verdict, "error") ? np_json_str(*verdict,
		    "error") : "invalid export");
		if (!bad_download(np_json_str(*verdict, "reason")))
			return NP_NO;
		np_warn("task %s: %s", sc->id, err->msg);
	}
	return NP_NO;
}

/* Keeps the verdict of the validation in the record, and logs it. */
static void
record_verdict(scan *sc, json_t *v)
{
	json_t *p;
	np_error err;

	if (v == NULL)
		return;
	p = json_object();
	json_object_set(p, "validation_stats", json_object_get(v, "stats"));
	json_object_set(p, "validation_warnings", json_object_get(v,
	    "warnings"));
	json_object_set(p, "authentication_status", json_object_get(v,
	    "authentication_status"));
	json_object_set(p, "authentication_hosts", json_object_get(v, "hosts"));
	json_object_set_new(p, "validation_failed", json_boolean(
	    !json_is_true(json_object_get(v, "valid"))));
	json_object_set(p, "validation_reason", json_object_get(v, "reason"));
	save(sc, p, 0, &err);
	np_info("task %s: %s scan, authentication %s", sc->id,
	    np_json_str(sc->task, "scan_type"),
	    np_json_str(v, "authentication_status") ?
	    np_json_str(v, "authentication_status") : "unknown");
}

/*
 * Shows an ended task in the index. The record is final already; if
 * Redis is away, wait for it a while (the scan is over: nothing else to
 * do), then leave it to lease recovery, which brings the task back to an
 * np-scan that republishes it.
 */
static void
publish(scan *sc, json_t *task)
{
	int64_t until = np_now_ms() + PUBLISH_WAIT_MS, pause = 250;
	np_error err;

	while (np_task_republish(sc->c, sc->cfg, task, &err) == NP_ETEMP) {
		if (np_interrupted || np_now_ms() > until) {
			np_warn("task %s: %s; its index entry is repaired when "
			    "its lease is recovered", sc->id, err.msg);
			return;
		}
		np_sleep_ms(pause);
		if ((pause *= 2) > 4000)
			pause = 4000;
		redisFree(sc->c);
		sc->c = NULL;
		if (np_redis_connect(sc->cfg, &sc->c, &err) != 0)
			sc->c = NULL;
	}
}

/* Ends a completed scan: record, durations for estimates, breaker. */
static int
complete(scan *sc, np_error *err)
{
	char k[NP_KEYMAX], secs[32];
	int64_t launched = 0;
	json_t *task;
	redisReply *r;
	int rc;

	if ((rc = save(sc, json_pack("{s:i}", "progress", 100), 0, err)) != 0)
		return rc;
	if (np_parse_rfc3339(np_json_str(sc->task, "launched_at"), &launched) == 0) {
		np_key_pool(k, sc->cfg, sc->pool, "durations");
		snprintf(secs, sizeof(secs), "%.3f",
		    (double)(np_now_ms() - launched) / 1000.0);
		if ((r = np_redis_cmd(sc->c, err, "LPUSH %s %s", k, secs)))
			freeReplyObject(r);
		if ((r = np_redis_cmd(sc->c, err, "LTRIM %s 0 99", k)))
			freeReplyObject(r);
	}
	np_breaker_success(sc->c, sc->cfg, sc->pool, sc->s->instance_id, err);
	if ((rc = np_task_update(sc->cfg, sc->id, np_task_to_state,
	    (void *)"completed", NP_SYNC, err)) != 0)
		return rc == NP_NO ? 0 : rc;	/* cancelled meanwhile */
	if (np_task_load(sc->cfg, sc->id, &task, err) == 0) {
		publish(sc, task);
		np_count_end(sc->c, sc->cfg, task);
		json_decref(task);
	}
	np_info("task %s: completed", sc->id);
	return 0;
}

/*
 * Polls the scan until it ends. Returns 0 when it completed; otherwise
 * the end is already handled and the exit status is returned.
 */
static int
poll_scan(scan *sc, int *status)
{
	np_scan_status st;
	np_error err;
	int64_t launched = np_now_ms(), deadline;
	int empty = 0, last = -1, rc;
	char word[32] = "";
	bool resumed = json_is_true(json_object_get(sc->task, "resumed"));

	np_parse_rfc3339(np_json_str(sc->task, "launched_at"), &launched);
	deadline = launched + sc->cfg->s.scan_timeout;
	for (;;) {
		if (cancelled(sc)) {
			np_nessus_action(sc->n, sc->scan_id, "stop", &err);
			*status = 0;
			return 1;
		}
		if (np_interrupted) {
			np_seterr(&err, NP_ETEMP, "interrupted: scan %ld left "
			    "running on %s; it is reattached later", sc->scan_id,
			    sc->s->instance_id);
			return *status = transient(sc, &err);
		}
		if (np_now_ms() > deadline) {
			np_nessus_action(sc->n, sc->scan_id, "stop", &err);
			np_seterr(&err, NP_NO, "scan %ld ran past scan_timeout; "
			    "stopped", sc->scan_id);
			return *status = fail(sc, "timeout", "timeout", &err);
		}
		if ((rc = np_nessus_status(sc->n, sc->scan_id, &st, &err)) != 0)
			return *status = rc == NP_ETEMP ? transient(sc, &err) :
			    fail(sc, "failed", reason_of(rc), &err);
		if (st.progress != last || strcmp(st.status, word) != 0) {
			last = st.progress;
			snprintf(word, sizeof(word), "%s", st.status);
			save(sc, json_pack("{s:i,s:s}", "progress", st.progress,
			    "nessus_status", st.status), 0, &err);
		}
		if (!strcmp(st.status, "completed") || !strcmp(st.status, "imported"))
			return 0;
		if (!strcmp(st.status, "canceled") || !strcmp(st.status, "stopped")) {
			np_seterr(&err, NP_NO, "scan %ld was %s on the scanner",
			    sc->scan_id, st.status);
			return *status = fail(sc, "failed", "scan_canceled", &err);
		}
		if (!strcmp(st.status, "aborted")) {
			np_seterr(&err, NP_NO, "scan %ld aborted on the scanner",
			    sc->scan_id);
			return *status = fail(sc, "failed", "scan_aborted", &err);
		}
		if (!strcmp(st.status, "paused")) {
			if (resumed) {
				np_seterr(&err, NP_NO, "scan %ld stays paused after "
				    "one resume", sc->scan_id);
				return *status = fail(sc, "failed", "scan_paused", &err);
			}
			np_info("task %s: scan %ld paused; resuming it once",
			    sc->id, sc->scan_id);
			if ((rc = np_nessus_action(sc->n, sc->scan_id, "resume",
			    &err)) != 0)
				return *status = rc == NP_ETEMP ? transient(sc, &err) :
				    fail(sc, "failed", "scan_paused", &err);
			resumed = true;
			save(sc, json_pack("{s:b}", "resumed", 1), 0, &err);
		}
		/* Launched yet still empty: the launch was lost; launch again. */
		if (!strcmp(st.status, "empty") && ++empty == 3) {
			if ((rc = launch(sc, &err)) != 0)
				return *status = rc == NP_ETEMP ? transient(sc, &err) :
				    fail(sc, "failed", reason_of(rc), &err);
		}
		np_sleep_ms(sc->cfg->s.poll_interval);
	}
}

/*
 * Reattaches to the task's existing scan: launches it if it never ran,
 * or again when the task was retried from the dead-letter queue
 * ("relaunch"). A retried task whose scan is gone starts afresh.
 */
static int
reattach(scan *sc, np_error *err)
{
	bool relaunch = json_is_true(json_object_get(sc->task, "relaunch"));
	np_scan_status st;
	int rc;

	np_info("task %s: reattaching to scan %ld on %s", sc->id, sc->scan_id,
	    sc->s->instance_id);
	rc = np_nessus_status(sc->n, sc->scan_id, &st, err);
	if (rc == NP_ENOINPUT && relaunch) {
		sc->scan_id = 0;
		return save(sc, json_pack("{s:n,s:b}", "nessus_scan_id",
		    "relaunch", 0), NP_SYNC, err);
	}
	if (rc)
		return rc;
	if (!relaunch && strcmp(st.status, "empty") != 0)
		return 0;
	if ((rc = launch(sc, err)) != 0)
		return rc;
	return save(sc, json_pack("{s:b,s:b}", "relaunch", 0, "resumed", 0),
	    0, err);
}

static int
run(scan *sc)
{
	np_error err;
	json_t *v, *verdict;
	int rc, status = 0;

	v = json_object_get(sc->task, "nessus_scan_id");
	sc->scan_id = json_is_integer(v) ? (long)json_integer_value(v) : 0;
	if (cancelled(sc))
		return 0;
	if (sc->scan_id > 0 && (rc = reattach(sc, &err)) != 0)
		return rc == NP_ETEMP ? transient(sc, &err) :
		    fail(sc, "failed", reason_of(rc), &err);
	if (sc->scan_id <= 0) {
		if (cancelled(sc))
			return 0;
		if ((rc = create(sc, &err)) != 0)
			return rc == NP_ETEMP ? transient(sc, &err) :
			    fail(sc, "failed", strncmp(err.msg, "credentials_missing",
			    19) ? reason_of(rc) : "credentials_missing", &err);
		if (cancelled(sc))
			return 0;
		if ((rc = launch(sc, &err)) != 0)
			return rc == NP_ETEMP ? transient(sc, &err) :
			    fail(sc, "failed", reason_of(rc), &err);
	}
	if (poll_scan(sc, &status) != 0)
		return status;
	/* The scanner is done with it: the next scan may start there while
	 * this one's export is fetched and checked. */
	if ((rc = np_lease_free_slot(sc->c, sc->cfg, sc->pool,
	    sc->s->instance_id, sc->id, sc->token, &err)) == NP_NO) {
		/* We outlived our lease: the slot and the task are the next
		 * holder's now, and so is the rest of the work. */
		np_warn("%s: this run outlived its lease and stops", err.msg);
		return NP_ETEMP;
	} else if (rc != 0)
		np_warn("task %s: %s; its slot frees when it ends", sc->id,
		    err.msg);
	rc = download(sc, &verdict, &err);
	record_verdict(sc, verdict);
	if (rc != 0) {
		const char *why = verdict ? np_json_str(verdict, "reason") : NULL;
		json_decref(verdict);
		if (rc == NP_ETEMP)
			return transient(sc, &err);
		/* The export of a scan that failed validation stays readable. */
		return fail(sc, "failed", rc != NP_NO ? reason_of(rc) :
		    !strncmp(err.msg, "export_failed", 13) ? "export_failed" :
		    why && bad_download(why) ? "download_invalid" :
		    why ? why : "download_invalid", &err);
	}
	json_decref(verdict);
	if ((rc = complete(sc, &err)) != 0)
		np_die_err(&err);
	return 0;
}

static void
on_signal(int sig)
{
	(void)sig;
	np_interrupted = 1;
}

/*
 * The signals of a task's run, in np-scan or np-worker's child: SIGTERM
 * and SIGINT stop it at its next step; a dropped Redis or scanner
 * connection is an error to handle, not a reason to die.
 */
void
np_scan_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Our slot frees as we exit: wake an idle worker to reap and refill it. */
static void
wake_worker(scan *sc)
{
	char k[NP_KEYMAX];
	redisReply *r;
	np_error err;

	np_key_pool(k, sc->cfg, sc->pool, "wake");
	if ((r = np_redis_cmd(sc->c, &err, "LPUSH %s 1", k)) != NULL)
		freeReplyObject(r);
}

static const char *
leased_scanner(scan *sc)
{
	char k[NP_KEYMAX];
	static char inst[80];
	redisReply *r;
	np_error err;

	np_key_pool(k, sc->cfg, sc->pool, "claimed");
	if ((r = np_redis_cmd(sc->c, &err, "HGET %s %s", k, sc->id)) == NULL)
		np_die_err(&err);
	if (r->type != REDIS_REPLY_STRING) {
		freeReplyObject(r);
		return NULL;
	}
	snprintf(inst, sizeof(inst), "%s", r->str);
	freeReplyObject(r);
	return inst;
}

/*
 * token: the claim's token, as np-worker took it; 0 reads it from Redis
 * (np-scan run as a program).
 */
int
np_scan_task(np_config *cfg, const char *id, int64_t token)
{
	scan sc = { 0 };
	const np_pool *p;
	const char *inst;
	start_arg sa_;
	np_error err;
	int rc;

	sc.cfg = cfg;
	sc.id = id;
	if (np_task_check_id(sc.id, &err) != 0)
		np_die_err(&err);
	if (np_task_load(sc.cfg, sc.id, &sc.task, &err) != 0)
		np_die_err(&err);
	sc.pool = np_json_str(sc.task, "scanner_pool");
	if ((p = np_config_pool(sc.cfg, sc.pool)) == NULL)
		np_die(NP_ECONFIG, "task %s: pool '%s' is not in %s", sc.id,
		    sc.pool, sc.cfg->path);
	sc.c = np_redis_open(sc.cfg);
	if ((inst = leased_scanner(&sc)) == NULL)
		np_die(NP_EUNAVAIL, "task %s holds no scanner lease (np-worker "
		    "takes tasks and leases their slots)", sc.id);
	if ((sc.token = token) == 0 &&
	    np_lease_token(sc.c, sc.cfg, sc.pool, sc.id, &sc.token, &err) != 0)
		np_die_err(&err);
	if ((sc.s = np_pool_scanner(p, inst)) == NULL)
		np_die(NP_ETEMP, "task %s: leased scanner '%s' is no longer in "
		    "the config", sc.id, inst);
	np_task_dir(sc.cfg, sc.id, sc.dir, sizeof(sc.dir));
	sa_.inst = sc.s->instance_id;
	sa_.url = sc.s->url;
	sa_.maybe_created = false;
	if ((rc = np_task_update(sc.cfg, sc.id, start, &sa_, NP_SYNC, &err)) != 0) {
		if (rc == NP_NO) {
			np_info("%s", err.msg);
			rc = 0;
			/* Ended, and back in line: Redis may have missed the
			 * end (see publish). */
			if (np_task_republish(sc.c, sc.cfg, sc.task, &err) != 0)
				np_warn("task %s: %s", sc.id, err.msg);
		} else
			np_die_err(&err);
	} else {
		json_decref(sc.task);
		if (np_task_load(sc.cfg, sc.id, &sc.task, &err) != 0)
			np_die_err(&err);
		sc.pool = np_json_str(sc.task, "scanner_pool");
		sc.maybe_created = sa_.maybe_created;
		if ((sc.n = np_nessus_open(sc.cfg, sc.s, &err)) == NULL)
			rc = fail(&sc, "failed", "scanner_auth", &err);
		else
			rc = run(&sc);
		np_nessus_close(sc.n);
	}
	wake_worker(&sc);
	json_decref(sc.task);
	redisFree(sc.c);
	return rc;
}
