/*
 * Fuzz target "task": the task record reader (lib/task.c np_task_load)
 * and its readers. The input is written as
 * $data_dir/tasks/<id>/task.json of a fixed task id and loaded with
 * np_task_load; a record that loads is then read the way the commands
 * read records: np_index_line (np-status, the Redis index), the times
 * as housekeeping parses them, np-results' state check and metadata
 * (np_results_write, with a small valid export next to it), the state
 * machine, and np_task_write + np_task_load again (same record back).
 *
 * The raw input also goes through np_task_id_valid / np_task_check_id
 * and, as an id, np_task_load (ids are checked before any path is made).
 */
#include "fuzz.h"

static np_config *cfg;
static char task_json[PATH_MAX];

static const char export_xml[] =
    "<?xml version=\"1.0\" ?>\n"
    "<NessusClientData_v2>\n<Report name=\"small\">\n"
    "<ReportHost name=\"h1\"><HostProperties>\n"
    "<tag name=\"host-ip\">10.0.0.9</tag></HostProperties>\n"
    "<ReportItem port=\"22\" svc_name=\"ssh\" protocol=\"tcp\" "
    "severity=\"2\" pluginID=\"90317\" pluginName=\"SSH Weak\" "
    "pluginFamily=\"Misc.\"><cve>CVE-2008-5161</cve>"
    "<cvss3_base_score>5.3</cvss3_base_score></ReportItem>\n"
    "</ReportHost>\n</Report>\n</NessusClientData_v2>\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[PATH_MAX], p[PATH_MAX + 32];

	(void)argc;
	(void)argv;
	fz_env_reset();
	fz_tmpdir("task");
	cfg = fz_test_config();
	fz_task_dir(cfg, dir, sizeof(dir));
	snprintf(task_json, sizeof(task_json), "%s/task.json", dir);
	snprintf(p, sizeof(p), "%s/scan.nessus", dir);
	fz_write_str(p, export_xml, 0600);
	return 0;
}

/* np-results' output must be NDJSON: one JSON object per line. */
static void
check_ndjson(const char *out, size_t len)
{
	const char *p = out, *nl, *end = out + len;
	json_error_t je;
	json_t *v;

	for (; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		v = json_loadb(p, (size_t)(nl - p), 0, &je);
		if (!json_is_object(v)) {
			fprintf(stderr, "np_results_write printed a line that is "
			    "not a JSON object (%s): %.*s\n", je.text,
			    (int)(nl - p), p);
			abort();
		}
		json_decref(v);
	}
}

static void
results(void)
{
	np_results *q = np_results_new();
	char *out = NULL;
	size_t len = 0;
	np_error err;
	FILE *f = open_memstream(&out, &len);

	fz_check(f != NULL, "open_memstream");
	np_results_page(q, 0, 40, &err);
	fz_say("task: np_results_write %d %s",
	    np_results_write(q, cfg, FZ_TASK, f, &err), err.msg);
	fclose(f);
	check_ndjson(out, len);
	free(out);
	np_results_free(q);
}

static void
readers(json_t *task)
{
	static const char *const times[] = { "created_at", "updated_at",
		"started_at", "completed_at", "last_accessed_at" };
	static const char *const states[] = { "queued", "running",
		"completed", "failed", "timeout", "cancelled" };
	json_t *copy, *again;
	np_error err;
	int64_t ms;
	size_t i;
	char *s;

	s = np_index_line(task);
	free(s);
	for (i = 0; i < sizeof(times) / sizeof(times[0]); i++)
		np_parse_rfc3339(np_json_str(task, times[i]), &ms);
	np_state_valid(np_json_str(task, "status"));
	np_state_terminal(np_json_str(task, "status"));
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		copy = json_deep_copy(task);
		if (np_task_set_state(copy, states[i], &err) == 0 &&
		    strcmp(np_json_str(copy, "status"), states[i]) != 0)
			abort();
		json_decref(copy);
	}
	/* Written back and read again: the same record. */
	copy = json_deep_copy(task);
	np_task_history(copy, "fuzz", "detail");
	if (np_task_write(cfg, FZ_TASK, copy, 0, &err) != 0) {
		fprintf(stderr, "np_task_write: %s\n", err.msg);
		abort();
	}
	if (np_task_load(cfg, FZ_TASK, &again, &err) != 0) {
		fprintf(stderr, "record written does not load: %s\n", err.msg);
		abort();
	}
	if (!json_equal(copy, again))
		abort();
	json_decref(again);
	json_decref(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *id = fz_strdup(data, size);
	json_t *task = NULL;
	np_error err;
	int rc;

	/* The id grammar, then an id from the input as np-status takes it. */
	if (np_task_id_valid(id) != (np_task_check_id(id, &err) == 0))
		abort();
	if (np_task_load(cfg, id, &task, &err) == 0) {
		if (strcmp(id, FZ_TASK) != 0)
			abort();	/* no such task */
		json_decref(task);
		task = NULL;
	}
	free(id);

	fz_write(task_json, data, size, 0600);
	memset(&err, 0, sizeof(err));
	rc = np_task_load(cfg, FZ_TASK, &task, &err);
	fz_say("task: %d %s", rc, rc ? err.msg : "loaded");
	if (rc != 0) {
		if (task != NULL || rc != NP_EDATA || err.msg[0] == '\0')
			abort();
		return 0;
	}
	if (!json_is_object(task))
		abort();
	readers(task);
	json_decref(task);
	/* np-results on the record as the input gave it. */
	fz_write(task_json, data, size, 0600);
	results();
	return 0;
}
