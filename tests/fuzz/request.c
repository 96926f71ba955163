/*
 * Fuzz target "request": np_request_parse (lib/request.c), the scan
 * request of np-enqueue --json / --batch and of the MCP submit tools,
 * against the config of the tests (tests/helpers.bash np_setup).
 *
 * The input is read the way np-enqueue reads a request: json_loadb with
 * JSON_REJECT_DUPLICATES. A parsed request is checked for what its
 * callers rely on (canonical targets that parse again to themselves, the
 * defaults filled in, a hash) and turned into a task record, as
 * np-enqueue does next.
 */
#include "fuzz.h"

static np_config *cfg;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_env_reset();
	fz_tmpdir("request");
	cfg = fz_test_config();
	return 0;
}

static void
check(const np_request *r)
{
	np_target *t;
	size_t n;
	np_error err;
	char *canon;
	const np_pool *p;
	json_t *task;

	if (r->name == NULL || r->targets == NULL || r->scan_type == NULL ||
	    r->pool == NULL || r->schema_profile == NULL || r->elevate == NULL ||
	    r->description == NULL || strlen(r->hash) != 64)
		abort();
	/* The canonical targets are a fixed point of parse + canon. */
	if (np_targets_parse(r->targets, &t, &n, &err) != 0) {
		fprintf(stderr, "canonical targets do not parse: %s\n", err.msg);
		abort();
	}
	canon = np_targets_canon(t, n);
	if (strcmp(canon, r->targets) != 0) {
		fprintf(stderr, "canon not stable: '%s' -> '%s'\n", r->targets,
		    canon);
		abort();
	}
	free(canon);
	np_targets_free(t, n);
	if ((p = np_config_pool(cfg, r->pool)) == NULL)
		abort();
	task = np_task_from_request(r, FZ_TASK, r->instance ?
	    np_pool_scanner(p, r->instance) : NULL);
	np_task_history(task, "queued", r->name);
	canon = np_json_compact(task);
	free(canon);
	json_decref(task);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t je;
	json_t *obj;
	np_request r;
	np_error err;

	obj = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
	if (obj == NULL) {
		fz_say("request: not JSON: %s", je.text);
		return 0;
	}
	memset(&err, 0, sizeof(err));
	if (np_request_parse(cfg, obj, &r, &err) == 0) {
		fz_say("request: accepted, targets %s", r.targets);
		check(&r);
		np_request_free(&r);
	} else if (err.code != NP_EDATA || err.msg[0] == '\0')
		abort();
	else
		fz_say("request: %s", err.msg);
	json_decref(obj);
	return 0;
}
