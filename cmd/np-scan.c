/*
 * np-scan: run one task on the scanner its lease names, end to end
 * (lib/scan.c): create (or find again) the Nessus scan, launch, poll,
 * export, download. np-worker runs the same code in its children; this
 * command is for running or debugging one task by hand (or under
 * valgrind, as NP_SCAN_BIN). Exit 0: the task completed; 1: it ended
 * failed or timeout; 75: a transient failure, the task is still running.
 */
#include <getopt.h>
#include <stdlib.h>

#include "np.h"

static void
usage(int status)
{
	fprintf(status ? stderr : stdout, "usage: np-scan task_id\n");
	exit(status);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	np_config *cfg;
	int ch, rc;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (ch) {
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
	np_scan_signals();
	cfg = np_config_open();
	rc = np_scan_task(cfg, argv[optind], 0);
	np_config_free(cfg);
	return rc;
}
