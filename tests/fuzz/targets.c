/*
 * Fuzz target "targets": the scan target grammar (lib/target.c) on the
 * raw input as a string, as np-enqueue -T and np-status --target take
 * it: np_targets_parse, np_targets_canon, np_targets_overlap.
 *
 * Checked: a parsed list is not empty and its canonical form parses
 * again to itself; every address target overlaps itself and its
 * canonical form; overlap is symmetric.
 */
#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_env_reset();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char probe_s[] = "10.0.0.7, 10.0.0.0/8 fe80::1 "
	    "2001:db8::/32 scanner.example 192.168.1.1-192.168.1.9";
	char *s = fz_strdup(data, size), *canon, *again;
	np_target *t, *c, *probe;
	size_t n, nc, np, i;
	np_error err;

	if (np_targets_parse(s, &t, &n, &err) != 0) {
		fz_say("targets: %s", err.msg);
		if (err.code != NP_EDATA)
			abort();
		free(s);
		return 0;
	}
	if (n == 0 || t == NULL)
		abort();
	canon = np_targets_canon(t, n);
	fz_say("targets: %zu, %s", n, canon);
	if (np_targets_parse(canon, &c, &nc, &err) != 0) {
		fprintf(stderr, "canonical '%s' does not parse: %s\n", canon,
		    err.msg);
		abort();
	}
	again = np_targets_canon(c, nc);
	if (strcmp(again, canon) != 0) {
		fprintf(stderr, "canon not stable: '%s' -> '%s'\n", canon, again);
		abort();
	}
	for (i = 0; i < n; i++) {
		if (t[i].kind != NP_T_HOST &&
		    memcmp(t[i].lo, t[i].hi, 16) > 0)
			abort();
		if (!np_targets_overlap(&t[i], 1, &t[i], 1))
			abort();
	}
	if (!np_targets_overlap(t, n, c, nc) || !np_targets_overlap(c, nc, t, n))
		abort();
	if (np_targets_parse(probe_s, &probe, &np, &err) != 0)
		abort();
	if (np_targets_overlap(t, n, probe, np) !=
	    np_targets_overlap(probe, np, t, n))
		abort();
	np_targets_free(probe, np);
	np_targets_free(c, nc);
	np_targets_free(t, n);
	free(again);
	free(canon);
	free(s);
	return 0;
}
