/*
 * np-housekeep: one housekeeping run, from cron or a systemd timer.
 * Deletes task records past their TTL, recovers the claims of dead
 * workers, puts lost queued tasks back in line, reports (and, when old,
 * removes) orphans, and with --nessus-cleanup deletes the Nessus scans
 * of finished tasks on their own scanners. Prints one JSON summary.
 *
 * Runs alongside the workers; a Redis lock keeps two runs from
 * overlapping (the second exits 75). A dry run takes no lock, since it
 * changes nothing, and so never makes the real run fail.
 */
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "np.h"

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-housekeep [-n | --dry-run] [-N | --nessus-cleanup] "
	    "[-p pool]\n");
	exit(status);
}

static void
on_stop(int sig)
{
	(void)sig;
	np_interrupted = 1;	/* the run stops between two tasks */
}

/* The run under the lock; the lock is released whatever happens. */
static int
locked_run(redisContext *c, const np_config *cfg, const char *pool,
    int flags, json_t **sum, np_error *err)
{
	char token[300];
	np_error uerr;
	int rc;

	if ((rc = np_housekeep_lock(c, cfg, token, sizeof(token), err)) != 0)
		return rc;
	rc = np_housekeep(c, cfg, pool, flags, token, sum, err);
	if (np_housekeep_unlock(c, cfg, token, &uerr) != 0)
		np_warn("the lock was not released (it expires in 10 minutes): "
		    "%s", uerr.msg);
	return rc;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "nessus-cleanup", no_argument, NULL, 'N' },
		{ "pool", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction stop = { .sa_handler = on_stop };
	const char *pool = NULL;
	json_t *sum = NULL;
	redisContext *c;
	np_config *cfg;
	np_error err;
	int ch, flags = 0, rc;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "nNp:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			flags |= NP_HK_DRY_RUN;
			break;
		case 'N':
			flags |= NP_HK_NESSUS;
			break;
		case 'p':
			pool = optarg;
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
	if (optind != argc)
		usage(NP_EUSAGE);
	if (pool && !np_name_valid(pool))
		np_die(NP_EUSAGE, "--pool: '%s' is not a pool name", pool);
	cfg = np_config_open();
	if (pool && np_config_pool(cfg, pool) == NULL)
		np_die(NP_ECONFIG, "no pool named '%s' in %s", pool, cfg->path);
	sigaction(SIGTERM, &stop, NULL);
	sigaction(SIGINT, &stop, NULL);
	c = np_redis_open(cfg);
	if (flags & NP_HK_DRY_RUN)
		rc = np_housekeep(c, cfg, pool, flags, NULL, &sum, &err);
	else
		rc = locked_run(c, cfg, pool, flags, &sum, &err);
	/* What was done is printed even when the run was cut short. */
	if (sum)
		np_json_out_steal(sum);
	redisFree(c);
	np_config_free(cfg);
	if (rc)
		np_die_err(&err);
	return 0;
}
