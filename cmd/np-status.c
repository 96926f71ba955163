/*
 * np-status: a task's record, lists of tasks, and queue state.
 *
 * A single task is read from its task.json alone (no Redis needed);
 * lists go through the Redis index and then read only the matching
 * records. Queue state shows task ids, never payloads.
 */
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-status [-H] task_id\n"
	    "       np-status -l [-S status] [-p pool] [-t target] [-n limit]\n"
	    "       np-status -q [-p pool]\n"
	    "       np-status -k\n");
	exit(status);
}

static int
touch(json_t *task, void *arg, np_error *err)
{
	char ts[32];

	(void)arg;
	(void)err;
	np_rfc3339(np_now_ms(), ts);
	json_object_set_new(task, "last_accessed_at", json_string(ts));
	return 0;
}

/* What the verdict of the export says about the scan's results. */
static void
summarize(json_t *task)
{
	json_t *st = json_object_get(task, "validation_stats"), *sum;
	json_int_t size;

	if (!json_is_object(st))
		return;
	size = json_integer_value(json_object_get(st, "file_size_bytes"));
	sum = json_pack("{s:O,s:O,s:O,s:I,s:f}",
	    "hosts_scanned", json_object_get(st, "hosts_scanned"),
	    "total_vulnerabilities", json_object_get(st, "total_vulnerabilities"),
	    "severity_breakdown", json_object_get(st, "severity_breakdown"),
	    "file_size_bytes", size, "file_size_kb",
	    (double)(long)((double)size / 1024.0 * 10 + 0.5) / 10);
	if (sum)
		json_object_set_new(task, "results_summary", sum);
	json_object_set(task, "warnings", json_object_get(task,
	    "validation_warnings"));
}

static void
add(json_t *a, const char *s)
{
	json_array_append_new(a, json_string(s));
}

/*
 * Likely causes and next steps, specific to how each host failed: the
 * password was refused, the account may not escalate, or no login was
 * even tried (SSH not reachable).
 */
static void
troubleshoot(json_t *task)
{
	json_t *hosts = json_object_get(task, "authentication_hosts"), *h;
	json_t *t, *causes = json_array(), *steps = json_array(), *bad = json_array();
	const char *auth = np_json_str(task, "authentication_status");
	const char *type = np_json_str(task, "scan_type");
	const char *user = np_json_str(task, "ssh_username");
	bool refused = false, priv = false, none = false;
	size_t i;

	json_array_foreach(hosts, i, h) {
		const char *a = np_json_str(h, "authentication");
		if (a == NULL || !strcmp(a, "authenticated"))
			continue;
		refused |= !strcmp(a, "failed");
		priv |= !strcmp(a, "privilege_insufficient");
		none |= !strcmp(a, "not_attempted");
		json_array_append_new(bad, json_pack("{s:O,s:s,s:O}", "host",
		    json_object_get(h, "host"), "authentication", a, "reason",
		    json_object_get(h, "reason")));
	}
	if (json_array_size(bad) == 0 || type == NULL ||
	    !strcmp(type, "untrusted")) {
		json_decref(causes), json_decref(steps), json_decref(bad);
		return;
	}
	if (refused) {
		add(causes, "the SSH password is wrong, or the account is locked, "
		    "expired or not allowed to log in over SSH");
		add(steps, "log in by hand: ssh <user>@<host>, with the same "
		    "password");
		add(steps, "on the host, read the SSH log (/var/log/auth.log or "
		    "journalctl -u ssh) for the refusal and its reason");
		add(steps, "check the account: passwd -S <user>, chage -l <user>, "
		    "AllowUsers/DenyUsers in sshd_config, PasswordAuthentication yes");
	}
	if (priv) {
		add(causes, "the account logged in but could not gain the "
		    "privileges the scan needs (no sudo rights, wrong escalation "
		    "password or account, or a sudo that needs a tty)");
		add(steps, "as the account on the host, run sudo -l and check that "
		    "it may run commands as root");
		add(steps, "check elevate_privileges_with, escalation_account and "
		    "escalation_password of the request");
	}
	if (none) {
		add(causes, "no login was attempted on some hosts: SSH (port 22) "
		    "not reachable from the scanner, or the host was down");
		add(steps, "from the scanner's network: nc -zv <host> 22");
	}
	add(steps, "submit the scan again once fixed (np-dlq retry <task_id> "
	    "relaunches the same Nessus scan)");
	t = json_pack("{s:s,s:s?,s:o,s:o,s:o}", "problem", priv && !refused ?
	    "privilege_insufficient" : auth ? auth : "unknown", "ssh_username",
	    user, "hosts", bad, "likely_causes", causes, "next_steps", steps);
	json_object_set_new(task, "troubleshooting", t);
}

static void
human(json_t *t)
{
	json_t *sum = json_object_get(t, "results_summary"), *ts, *v;
	const char *e;
	size_t i;

#define F(k) (np_json_str(t, k) ? np_json_str(t, k) : "-")
	printf("task      %s  (%s)\n", F("task_id"), F("name"));
	printf("status    %s", F("status"));
	if (!strcmp(F("status"), "running"))
		printf(" %lld%%", json_integer_value(json_object_get(t, "progress")));
	if (np_json_str(t, "failure_reason"))
		printf(" (%s)", F("failure_reason"));
	printf("\nscan      %s of %s\n", F("scan_type"), F("targets"));
	printf("scanner   %s/%s  %s\n", F("scanner_pool"), F("scanner_instance"),
	    F("scanner_url"));
	printf("times     created %s, started %s, ended %s\n", F("created_at"),
	    F("started_at"), F("completed_at"));
	if ((e = np_json_str(t, "error")) != NULL)
		printf("error     %s\n", e);
	if (np_json_str(t, "authentication_status"))
		printf("auth      %s\n", F("authentication_status"));
	if (sum) {
		json_t *sb = json_object_get(sum, "severity_breakdown");
		printf("results   %lld hosts, %lld vulnerabilities (critical %lld, "
		    "high %lld, medium %lld, low %lld), %lld info\n",
		    json_integer_value(json_object_get(sum, "hosts_scanned")),
		    json_integer_value(json_object_get(sum, "total_vulnerabilities")),
		    json_integer_value(json_object_get(sb, "critical")),
		    json_integer_value(json_object_get(sb, "high")),
		    json_integer_value(json_object_get(sb, "medium")),
		    json_integer_value(json_object_get(sb, "low")),
		    json_integer_value(json_object_get(sb, "info")));
	}
	json_array_foreach(json_object_get(t, "warnings"), i, v)
		printf("warning   %s\n", json_string_value(v));
	if ((ts = json_object_get(t, "troubleshooting")) != NULL) {
		printf("\ntroubleshooting (%s)\n", np_json_str(ts, "problem"));
		json_array_foreach(json_object_get(ts, "hosts"), i, v)
			printf("  host %s: %s\n", np_json_str(v, "host"),
			    np_json_str(v, "reason") ? np_json_str(v, "reason") :
			    np_json_str(v, "authentication"));
		json_array_foreach(json_object_get(ts, "likely_causes"), i, v)
			printf("  cause: %s\n", json_string_value(v));
		json_array_foreach(json_object_get(ts, "next_steps"), i, v)
			printf("  next:  %s\n", json_string_value(v));
	}
#undef F
}

static int
show(const np_config *cfg, const char *id, bool readable)
{
	json_t *task;
	np_error err;

	/* Reading a task counts as using it, for the housekeeping TTLs. A
	 * record we may not write is still shown. */
	if (np_task_check_id(id, &err) != 0)
		np_die_err(&err);
	if (np_task_update(cfg, id, touch, NULL, 0, &err) != 0 &&
	    err.code != NP_EPERM && err.code != NP_EIO)
		np_die_err(&err);
	if (np_task_load(cfg, id, &task, &err) != 0)
		np_die_err(&err);
	summarize(task);
	troubleshoot(task);
	if (readable)
		human(task);
	else
		np_json_out(task);
	json_decref(task);
	return 0;
}

static int
list(const np_config *cfg, np_index_filter *f)
{
	redisContext *c = np_redis_open(cfg);
	char **ids;
	size_t n, i;
	np_error err;

	if (np_index_query(c, cfg, f, &ids, &n, &err) != 0)
		np_die_err(&err);
	for (i = 0; i < n; i++) {
		json_t *task;

		/* The index may lag the record; the record decides. */
		if (np_task_load(cfg, ids[i], &task, &err) == 0) {
			const char *st = np_json_str(task, "status");
			if (f->status == NULL || (st && !strcmp(st, f->status)))
				np_json_out(task);
			json_decref(task);
		}
		free(ids[i]);
	}
	free(ids);
	redisFree(c);
	return 0;
}

static json_t *
queue_of(redisContext *c, const np_config *cfg, const np_pool *p)
{
	char k[NP_KEYMAX];
	json_t *o = json_object(), *next = json_array(), *iq = json_object();
	np_queue_stats st;
	redisReply *r;
	np_error err;
	size_t i;

	if (np_queue_stats_get(c, cfg, p, NULL, &st, &err) != 0)
		np_die_err(&err);
	np_key_pool(k, cfg, p->name, "queue");
	/* LPUSH in, RPOP out: the next to run are at the right end. */
	if ((r = np_redis_cmd(c, &err, "LRANGE %s -10 -1", k)) == NULL)
		np_die_err(&err);
	for (i = r->elements; i > 0; i--)
		json_array_append_new(next, json_string(r->element[i - 1]->str));
	freeReplyObject(r);
	for (i = 0; i < p->nscanners; i++) {
		np_key_inst(k, cfg, p->name, "iq", p->scanners[i].instance_id);
		if ((r = np_redis_cmd(c, &err, "LLEN %s", k)) == NULL)
			np_die_err(&err);
		if (r->integer)
			json_object_set_new(iq, p->scanners[i].instance_id,
			    json_integer(r->integer));
		freeReplyObject(r);
	}
	json_object_set_new(o, "pool", json_string(p->name));
	json_object_set_new(o, "queue_depth", json_integer(st.depth));
	json_object_set_new(o, "instance_queues", iq);
	json_object_set_new(o, "processing", json_integer(st.processing));
	json_object_set_new(o, "dlq_depth", json_integer(st.dlq));
	json_object_set_new(o, "next_task_ids", next);
	return o;
}

static int
queue(const np_config *cfg, const char *pool)
{
	redisContext *c = np_redis_open(cfg);
	size_t i;

	for (i = 0; i < cfg->npools; i++)
		if (pool == NULL || !strcmp(pool, cfg->pools[i].name))
			np_json_out_steal(queue_of(c, cfg, &cfg->pools[i]));
	redisFree(c);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "list", no_argument, NULL, 'l' },
		{ "queue", no_argument, NULL, 'q' },
		{ "health", no_argument, NULL, 'k' },
		{ "human", no_argument, NULL, 'H' },
		{ "status", required_argument, NULL, 'S' },
		{ "pool", required_argument, NULL, 'p' },
		{ "target", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	np_index_filter f = { .limit = 50 };
	const char *target = NULL;
	np_config *cfg;
	np_error err;
	int ch, mode = 0, rc;
	bool readable = false;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "lqkHS:p:t:n:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'H':
			readable = true;
			break;
		case 'l':
		case 'q':
		case 'k':
			if (mode && mode != ch)
				usage(NP_EUSAGE);
			mode = ch;
			break;
		case 'S':
			if (!np_state_valid(optarg))
				np_die(NP_EUSAGE, "--status: no state '%s' (queued, "
				    "running, completed, failed, timeout, "
				    "cancelled)", optarg);
			f.status = optarg;
			break;
		case 'p':
			f.pool = optarg;
			break;
		case 't':
			target = optarg;
			break;
		case 'n':
			if (np_parse_int(optarg, 1, 100000, &f.limit) == -1)
				np_die(NP_EUSAGE, "--limit: expected 1 to 100000");
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
	if (mode == 0 && (optind != argc - 1 || f.status || f.pool || target))
		usage(NP_EUSAGE);
	if (mode && optind != argc)
		usage(NP_EUSAGE);
	if (mode && readable)
		usage(NP_EUSAGE);
	if ((mode == 'q' || mode == 'k') && (f.status || target))
		usage(NP_EUSAGE);
	if (mode == 'k' && f.pool)
		usage(NP_EUSAGE);
	if (target && np_targets_parse(target, &f.targets, &f.ntargets, &err))
		np_die(NP_EUSAGE, "--target: %s", err.msg);
	cfg = np_config_open();
	if (f.pool && !np_config_pool(cfg, f.pool))
		np_die(NP_EUSAGE, "--pool: no pool named '%s' in %s", f.pool,
		    cfg->path);
	if (mode == 'l')
		rc = list(cfg, &f);
	else if (mode == 'q')
		rc = queue(cfg, f.pool);
	else if (mode == 'k') {
		json_t *report;
		rc = np_health(cfg, &report);
		np_json_out_steal(report);
	}
	else
		rc = show(cfg, argv[optind], readable);
	np_targets_free(f.targets, f.ntargets);
	np_config_free(cfg);
	return rc;
}
