/*
 * Fuzz target "results": np-results' streaming reader of the export
 * (lib/results.c np_results_write). The input is the scan.nessus of a
 * completed task and is read twice, as np-results would: every finding
 * with the full profile (page 0), then page 1 of 10 with custom fields
 * (list, number, boolean and host fields) and two filters.
 *
 * Checked: the output is NDJSON, one JSON object per line (the command
 * writes findings by hand, not through jansson), starting with the
 * schema line; a run that succeeds ends with the pagination line.
 */
#include "fuzz.h"

static np_config *cfg;
static char nessus[PATH_MAX + 32], task_json[PATH_MAX + 32];

static const char record[] =
    "{\"task_id\":\"" FZ_TASK "\",\"name\":\"x\",\"targets\":\"10.0.0.1\","
    "\"scan_type\":\"untrusted\",\"scanner_pool\":\"nessus\","
    "\"status\":\"completed\",\"schema_profile\":\"brief\"}\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[PATH_MAX];

	(void)argc;
	(void)argv;
	fz_env_reset();
	fz_tmpdir("results");
	cfg = fz_test_config();
	fz_task_dir(cfg, dir, sizeof(dir));
	snprintf(task_json, sizeof(task_json), "%s/task.json", dir);
	snprintf(nessus, sizeof(nessus), "%s/scan.nessus", dir);
	return 0;
}

static void
check_ndjson(const char *out, size_t len, int rc)
{
	const char *p = out, *nl, *end = out + len;
	json_error_t je;
	json_t *v = NULL;
	bool first = true;

	if (len == 0 || out[len - 1] != '\n') {
		if (rc == 0 || len > 0) {
			fprintf(stderr, "output does not end with a newline\n");
			abort();
		}
		return;
	}
	for (; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		json_decref(v);
		v = json_loadb(p, (size_t)(nl - p), 0, &je);
		if (!json_is_object(v)) {
			fprintf(stderr, "a line that is not a JSON object (%s, "
			    "column %d): %.*s\n", je.text, je.column,
			    (int)(nl - p), p);
			abort();
		}
		if (first && !type_is(v, "schema"))
			abort();
		first = false;
	}
	if (rc == 0 && !type_is(v, "pagination"))
		abort();
	json_decref(v);
}

static void
run(int pass)
{
	static const char *const filters[] = { "severity>=1", "plugin_name=" };
	np_results *q = np_results_new();
	char *out = NULL;
	size_t len = 0, i;
	np_error err;
	FILE *f = open_memstream(&out, &len);
	int rc;

	fz_check(f != NULL, "open_memstream");
	if (pass == 0) {
		if (np_results_profile(q, "full", &err) != 0 ||
		    np_results_page(q, 0, 40, &err) != 0)
			abort();
	} else {
		if (np_results_fields(q, "host,host_ip,plugin_id,severity,cve,"
		    "see_also,cvss3_base_score,port,exploit_available,"
		    "plugin_output,cm:compliance-result", &err) != 0 ||
		    np_results_page(q, 1, 10, &err) != 0)
			abort();
		for (i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
			if (np_results_filter(q, filters[i], &err) != 0)
				abort();
	}
	memset(&err, 0, sizeof(err));
	rc = np_results_write(q, cfg, FZ_TASK, f, &err);
	fclose(f);
	fz_say("results: pass %d: %d %s, %zu bytes out", pass, rc,
	    rc ? err.msg : "ok", len);
	if (rc != 0 && rc != NP_EIO) {
		fprintf(stderr, "np_results_write: %d (%s)\n", rc, err.msg);
		abort();
	}
	check_ndjson(out, len, rc);
	free(out);
	np_results_free(q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_write_str(task_json, record, 0600);
	fz_write(nessus, data, size, 0600);
	run(0);
	run(1);
	return 0;
}
