/*
 * np-results: the findings of a finished task as NDJSON, streamed from
 * its .nessus export (schema, scan_metadata, findings, pagination).
 *
 * Options are all checked before the task is looked at, so a usage
 * error is 64 whatever the task id. The work is in lib/results.c.
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
	    "usage: np-results [-P profile | -F field,...] [-f filter]...\n"
	    "                  [-p page] [-s page_size] task_id\n");
	exit(status);
}

static long
number(const char *opt, const char *s)
{
	long v;

	if (np_parse_int(s, 0, LONG_MAX, &v) == -1)
		np_die(NP_EUSAGE, "%s: expected a whole number, 0 or more, not "
		    "'%.64s'", opt, s);
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "profile", required_argument, NULL, 'P' },
		{ "fields", required_argument, NULL, 'F' },
		{ "filter", required_argument, NULL, 'f' },
		{ "page", required_argument, NULL, 'p' },
		{ "page-size", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	/* Big writes: a line goes out at once anyway when it matters. */
	static char obuf[1 << 16];
	np_results *q;
	np_config *cfg;
	np_error err;
	long page = 1, size = 40;
	int ch, rc;

	np_setprogname(argv[0]);
	q = np_results_new();
	while ((ch = getopt_long(argc, argv, "P:F:f:p:s:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'P':
			if (np_results_profile(q, optarg, &err) != 0)
				np_die_err(&err);
			break;
		case 'F':
			if (np_results_fields(q, optarg, &err) != 0)
				np_die_err(&err);
			break;
		case 'f':
			if (np_results_filter(q, optarg, &err) != 0)
				np_die_err(&err);
			break;
		case 'p':
			page = number("--page", optarg);
			break;
		case 's':
			size = number("--page-size", optarg);
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
	if (optind != argc - 1)
		usage(NP_EUSAGE);
	if (np_results_page(q, page, size, &err) != 0)
		np_die_err(&err);
	cfg = np_config_open();
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	rc = np_results_write(q, cfg, argv[optind], stdout, &err);
	np_results_free(q);
	np_config_free(cfg);
	if (rc != 0)
		np_die_err(&err);
	if (fflush(stdout) == EOF)
		np_die(NP_EIO, "standard output: write error");
	return 0;
}
