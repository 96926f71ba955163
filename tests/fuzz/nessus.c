/*
 * Fuzz target "nessus": the streaming .nessus reader of lib/report.c
 * (libxml2's xmlReader), as np-validate and np-scan use it. The input is
 * written to a file and read with np_validate_file for each scan type
 * (untrusted, authenticated, authenticated_privileged; expected hosts 0
 * and 1) and with np_report_check.
 *
 * Checked, as np.h documents it: 0 means valid and NP_NO invalid, both
 * with a result object whose "valid" says the same and whose "reason" is
 * a string when invalid; the result serializes; np_report_check agrees
 * that a valid export is a .nessus export.
 */
#include "fuzz.h"

static char path[PATH_MAX];

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_env_reset();
	fz_tmpdir("nessus");
	fz_path(path, sizeof(path), "scan.nessus");
	return 0;
}

static bool
validate(const char *type, long expected)
{
	json_t *res = NULL;
	np_error err;
	char *s;
	int rc;

	memset(&err, 0, sizeof(err));
	rc = np_validate_file(path, type, expected, &res, &err);
	fz_say("nessus: %s: %d %s", type ? type : "(default)", rc,
	    rc ? err.msg : "valid");
	if ((rc != 0 && rc != NP_NO) || !json_is_object(res)) {
		fprintf(stderr, "np_validate_file: %d (%s)\n", rc, err.msg);
		abort();
	}
	if (json_is_true(json_object_get(res, "valid")) != (rc == 0) ||
	    (rc == NP_NO && !json_is_string(json_object_get(res, "reason"))) ||
	    (rc == NP_NO && err.msg[0] == '\0') ||
	    !json_is_array(json_object_get(res, "hosts")) ||
	    !json_is_array(json_object_get(res, "warnings")))
		abort();
	s = np_json_compact(res);
	free(s);
	json_decref(res);
	return rc == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	np_error err;
	long hosts = -1;
	bool valid;
	int rc;

	fz_write(path, data, size, 0600);
	valid = validate("untrusted", 0);
	validate("authenticated", 1);
	validate("authenticated_privileged", 0);
	validate(NULL, 2);
	rc = np_report_check(path, &hosts, &err);
	if (rc != 0 && rc != NP_NO)
		abort();
	/* A valid export has hosts and is an export; the converse need not
	 * hold (np_validate_file also wants MIN_SIZE bytes). */
	if (valid && (rc != 0 || hosts < 1)) {
		fprintf(stderr, "valid for np_validate_file, not for "
		    "np_report_check: %s\n", err.msg);
		abort();
	}
	return 0;
}
