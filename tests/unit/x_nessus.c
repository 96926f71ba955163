/*
 * x_nessus: drives lib/nessus.c for tests/nessus.bats.
 *
 *	x_nessus POOL INSTANCE OP [ARGS]
 *
 * Runs one operation against one scanner of NP_CONFIG, prints one JSON
 * line with its results on stdout and exits with the client's status
 * (the error message on stderr). SIGINT and SIGTERM set np_interrupted.
 */
#include <limits.h>
#include <string.h>
#include <curl/curl.h>

#include "np.h"

static const char usage[] =
    "usage: x_nessus POOL INSTANCE OP [ARGS]\n"
    "  server-status | template NAME | create NAME TARGETS [CREDS_FILE]\n"
    "  find PART | launch ID | status ID | stop|pause|resume ID | export ID\n"
    "  export-status ID FILE | download ID FILE PATH | delete ID\n"
    "  run NAME TARGETS OUTPATH\n";

static void
on_signal(int sig)
{
	(void)sig;
	np_interrupted = 1;
}

static long
num(const char *s)
{
	long v;

	if (s == NULL || np_parse_int(s, 1, LONG_MAX, &v) == -1)
		np_die(NP_EUSAGE, "bad id '%s'\n%s", s ? s : "", usage);
	return v;
}

/* The body np's worker sends: the advanced template, My Scans (3). */
static int
create(np_nessus *n, const char *name, const char *targets, const char *creds,
    long *id, np_error *err)
{
	char uuid[128];
	json_t *body, *c = NULL;
	FILE *f;
	int rc;

	if ((rc = np_nessus_template(n, "advanced", uuid, err)) != 0)
		return rc;
	if (creds) {
		if ((f = fopen(creds, "r")) == NULL)
			return np_seterr(err, NP_ENOINPUT, "%s: cannot open", creds);
		c = np_json_read(f, 65536, err);
		fclose(f);
		if (c == NULL)
			return err->code;
	}
	body = json_pack("{s:s, s:{s:s, s:s, s:s, s:b, s:b, s:i}}", "uuid", uuid,
	    "settings", "name", name, "text_targets", targets, "description",
	    "", "enabled", 1, "launch_now", 0, "folder_id", 3);
	if (c)
		json_object_set_new(body, "credentials",
		    json_pack("{s:{s:{s:[o]}}}", "add", "Host", "SSH", c));
	rc = np_nessus_create(n, body, id, err);
	json_decref(body);
	return rc;
}

/* The whole lifecycle, polling every 100 ms (a minute at most). */
static int
run(np_nessus *n, char **av, json_t *out, np_error *err)
{
	np_scan_status st;
	char es[32] = "";
	long id, file;
	int rc, i;

	if ((rc = create(n, av[0], av[1], NULL, &id, err)) != 0 ||
	    (rc = np_nessus_launch(n, id, err)) != 0)
		return rc;
	json_object_set_new(out, "scan_id", json_integer(id));
	for (i = 0; i < 600; i++, np_sleep_ms(100)) {
		if ((rc = np_nessus_status(n, id, &st, err)) != 0)
			return rc;
		if (!strcmp(st.status, "completed"))
			break;
		if (!strcmp(st.status, "canceled") || !strcmp(st.status, "aborted")
		    || !strcmp(st.status, "stopped"))
			return np_seterr(err, NP_EDATA, "scan %ld ended %s", id,
			    st.status);
	}
	if (strcmp(st.status, "completed"))
		return np_seterr(err, NP_ETEMP, "scan %ld still %s", id, st.status);
	json_object_set_new(out, "status", json_string(st.status));
	if ((rc = np_nessus_export(n, id, &file, err)) != 0)
		return rc;
	for (i = 0; i < 600 && strcmp(es, "ready"); i++, np_sleep_ms(100)) {
		if ((rc = np_nessus_export_status(n, id, file, es, err)) != 0)
			return rc;
		if (!strcmp(es, "error"))
			return np_seterr(err, NP_EDATA, "export %ld failed", file);
	}
	json_object_set_new(out, "file", json_integer(file));
	if ((rc = np_nessus_download(n, id, file, av[2], err)) != 0)
		return rc;
	json_object_set_new(out, "path", json_string(av[2]));
	return 0;
}

static int
op(np_nessus *n, const char *o, int ac, char **av, json_t *out, np_error *err)
{
	np_scan_status st;
	char buf[128];
	long id;
	int rc;

#define NEED(k) if (ac != (k)) np_die(NP_EUSAGE, "%s: wrong arguments\n%s", o, usage)
	if (!strcmp(o, "server-status")) {
		NEED(0);
		if ((rc = np_nessus_server_status(n, buf, err)) == 0)
			json_object_set_new(out, "status", json_string(buf));
	} else if (!strcmp(o, "template")) {
		NEED(1);
		if ((rc = np_nessus_template(n, av[0], buf, err)) == 0)
			json_object_set_new(out, "uuid", json_string(buf));
	} else if (!strcmp(o, "create")) {
		if (ac != 2)
			NEED(3);
		if ((rc = create(n, av[0], av[1], ac == 3 ? av[2] : NULL, &id,
		    err)) == 0)
			json_object_set_new(out, "scan_id", json_integer(id));
	} else if (!strcmp(o, "find")) {
		NEED(1);
		if ((rc = np_nessus_find(n, av[0], &id, err)) == 0)
			json_object_set_new(out, "scan_id", json_integer(id));
	} else if (!strcmp(o, "launch")) {
		NEED(1);
		if ((rc = np_nessus_launch(n, num(av[0]), err)) == 0)
			json_object_set_new(out, "launched", json_true());
	} else if (!strcmp(o, "status")) {
		NEED(1);
		if ((rc = np_nessus_status(n, num(av[0]), &st, err)) == 0) {
			json_object_set_new(out, "status", json_string(st.status));
			json_object_set_new(out, "progress", json_integer(st.progress));
			json_object_set_new(out, "uuid", json_string(st.uuid));
		}
	} else if (!strcmp(o, "stop") || !strcmp(o, "pause") ||
	    !strcmp(o, "resume")) {
		NEED(1);
		if ((rc = np_nessus_action(n, num(av[0]), o, err)) == 0)
			json_object_set_new(out, "action", json_string(o));
	} else if (!strcmp(o, "export")) {
		NEED(1);
		if ((rc = np_nessus_export(n, num(av[0]), &id, err)) == 0)
			json_object_set_new(out, "file", json_integer(id));
	} else if (!strcmp(o, "export-status")) {
		NEED(2);
		if ((rc = np_nessus_export_status(n, num(av[0]), num(av[1]), buf,
		    err)) == 0)
			json_object_set_new(out, "status", json_string(buf));
	} else if (!strcmp(o, "download")) {
		NEED(3);
		if ((rc = np_nessus_download(n, num(av[0]), num(av[1]), av[2],
		    err)) == 0)
			json_object_set_new(out, "path", json_string(av[2]));
	} else if (!strcmp(o, "delete")) {
		NEED(1);
		if ((rc = np_nessus_delete(n, num(av[0]), err)) == 0)
			json_object_set_new(out, "deleted", json_true());
	} else if (!strcmp(o, "run")) {
		NEED(3);
		rc = run(n, av, out, err);
	} else
		np_die(NP_EUSAGE, "unknown op '%s'\n%s", o, usage);
#undef NEED
	return rc;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	const np_scanner *s;
	const np_pool *p;
	np_config *cfg;
	np_nessus *n;
	np_error err = { 0, "" };
	json_t *out;
	int rc;

	np_setprogname(argv[0]);
	if (argc < 4)
		np_die(NP_EUSAGE, "%s", usage);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	cfg = np_config_open();
	if ((p = np_config_pool(cfg, argv[1])) == NULL ||
	    (s = np_pool_scanner(p, argv[2])) == NULL)
		np_die(NP_EUSAGE, "no scanner %s in pool %s", argv[2], argv[1]);
	if ((n = np_nessus_open(cfg, s, &err)) == NULL)
		np_die_err(&err);
	out = json_object();
	rc = op(n, argv[3], argc - 4, argv + 4, out, &err);
	np_nessus_close(n);
	if (rc == 0)
		np_json_out(out);
	else
		fprintf(stderr, "%s: %s\n", np_progname, err.msg);
	json_decref(out);
	np_config_free(cfg);
	curl_global_cleanup();
	return rc;
}
