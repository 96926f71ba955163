/*
 * np-validate: checks a .nessus export and tells what it holds (hosts,
 * findings by severity, whether the scan's credentials worked), as one
 * JSON object. The file is read as a stream, never whole; see
 * np_validate_file in lib/report.c.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-validate [-t scan_type] [-e expected_hosts] file\n"
	    "       scan_type: untrusted (default), authenticated, "
	    "authenticated_privileged\n");
	exit(status);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "scan-type", required_argument, NULL, 't' },
		{ "expected-hosts", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *type = "untrusted";
	long expected = 0;
	json_t *result;
	np_error err;
	int ch, rc;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "t:e:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 't':
			if (strcmp(optarg, "untrusted") &&
			    strcmp(optarg, "authenticated") &&
			    strcmp(optarg, "authenticated_privileged"))
				np_die(NP_EUSAGE, "--scan-type: no scan type "
				    "'%s' (untrusted, authenticated, "
				    "authenticated_privileged)", optarg);
			type = optarg;
			break;
		case 'e':
			if (np_parse_int(optarg, 0, 10000000, &expected))
				np_die(NP_EUSAGE, "--expected-hosts: expected "
				    "0 to 10000000");
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
	rc = np_validate_file(argv[optind], type, expected, &result, &err);
	if (result == NULL)
		np_die_err(&err);
	np_json_out_steal(result);
	/* An invalid export is an answer (1); a missing file is an error. */
	if (rc == NP_ENOINPUT)
		np_die_err(&err);
	return rc;
}
