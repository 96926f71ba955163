/*
 * np-enqueue: validate a scan request, record the task, queue it.
 *
 * Flags for simple requests; --json reads one request object on stdin
 * (the only way to pass scan credentials); --batch reads NDJSON requests
 * and answers each with one NDJSON line, errors included, going on.
 */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "np.h"

#define REQUEST_MAX (1 << 20)
#define BATCH_CHUNK 512

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: np-enqueue [-p pool] [-i instance] [-k key] [-d description]\n"
	    "                  [-t scan_type] [-s profile] -n name -T targets\n"
	    "       np-enqueue --json < request.json\n"
	    "       np-enqueue --batch < requests.ndjson\n");
	exit(status);
}

/* Prints one answer line per item, in order; returns the worst status. */
static int
print_items(np_enqueue_item *v, size_t n, const long *lineno)
{
	int worst = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		if (v[i].rc) {
			np_json_out_steal(json_pack("{s:s,s:i,s:i}", "error",
			    v[i].err.msg, "status", v[i].rc, "line",
			    (int)lineno[i]));
			if (v[i].rc > worst)
				worst = v[i].rc;
		} else
			np_json_out_steal(v[i].answer);
		np_request_free(&v[i].r);
	}
	return worst;
}

/*
 * Reads one line of stdin, keeping at most REQUEST_MAX + 1 bytes of it:
 * a huge line is read through, not held, and its length still tells
 * the caller it was too long. -1 at the end of input.
 */
static ssize_t
read_line(char **buf, size_t *cap)
{
	size_t n = 0, seen = 0;
	int c;

	if (*cap < REQUEST_MAX + 2) {
		*cap = REQUEST_MAX + 2;
		*buf = np_xrealloc(*buf, *cap);
	}
	while ((c = getchar()) != EOF) {
		seen++;
		if (n < REQUEST_MAX + 1)
			(*buf)[n++] = (char)c;
		if (c == '\n')
			break;
	}
	(*buf)[n] = '\0';
	if (seen == 0)
		return -1;
	return seen > REQUEST_MAX ? (ssize_t)REQUEST_MAX + 1 : (ssize_t)n;
}

/*
 * Batch: NDJSON requests in, one answer line per request out, in order.
 * A bad line gets an {"error":...} answer and the batch goes on; Redis
 * going away stops it with status 75. Requests go to Redis in chunks,
 * each chunk pipelined and made durable with one syncfs.
 */
static int
batch(redisContext *c, const np_config *cfg)
{
	np_enqueue_item *v = np_xcalloc(BATCH_CHUNK, sizeof(*v));
	long lineno[BATCH_CHUNK], line_no = 0;
	char *line = NULL;
	size_t cap = 0, n = 0;
	ssize_t len;
	int worst = 0, rc = 0, w;
	bool eof = false;

	while (!eof && rc == 0) {
		if ((len = read_line(&line, &cap)) == -1)
			eof = true;
		else {
			np_enqueue_item *it = &v[n];
			json_error_t je;
			json_t *req;

			memset(it, 0, sizeof(*it));
			lineno[n++] = ++line_no;
			if (len > REQUEST_MAX)
				it->rc = np_seterr(&it->err, NP_EDATA, "line %ld: "
				    "request larger than %d bytes", line_no,
				    REQUEST_MAX);
			else if ((req = json_loadb(line, (size_t)len,
			    JSON_REJECT_DUPLICATES, &je)) == NULL)
				it->rc = np_seterr(&it->err, NP_EDATA,
				    "line %ld: invalid JSON: %s", line_no, je.text);
			else {
				it->rc = np_request_parse(cfg, req, &it->r, &it->err);
				json_decref(req);
			}
		}
		if (n == BATCH_CHUNK || (eof && n > 0)) {
			rc = np_enqueue(c, cfg, v, n, true);
			if ((w = print_items(v, n, lineno)) > worst)
				worst = w;
			n = 0;
		}
	}
	free(line);
	free(v);
	if (fflush(stdout) == EOF)
		np_die(NP_EIO, "stdout: write error");
	if (rc)
		np_die(rc, "redis: connection lost; stopped after line %ld",
		    line_no);
	return worst ? NP_EDATA : 0;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "instance", required_argument, NULL, 'i' },
		{ "name", required_argument, NULL, 'n' },
		{ "targets", required_argument, NULL, 'T' },
		{ "description", required_argument, NULL, 'd' },
		{ "idempotency-key", required_argument, NULL, 'k' },
		{ "scan-type", required_argument, NULL, 't' },
		{ "schema-profile", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "batch", no_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	json_t *req = json_object();
	np_config *cfg;
	redisContext *c;
	np_error err = { 0 };
	int ch, mode = 0, rc;

	np_setprogname(argv[0]);
	while ((ch = getopt_long(argc, argv, "p:i:n:T:d:k:t:s:jbhV", opts,
	    NULL)) != -1) {
		const char *field = NULL;

		switch (ch) {
		case 'p': field = "scanner_pool"; break;
		case 'i': field = "scanner_instance"; break;
		case 'n': field = "name"; break;
		case 'T': field = "targets"; break;
		case 'd': field = "description"; break;
		case 'k': field = "idempotency_key"; break;
		case 't': field = "scan_type"; break;
		case 's': field = "schema_profile"; break;
		case 'j':
		case 'b':
			mode = ch;
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
		if (field)
			json_object_set_new(req, field, json_string(optarg));
	}
	if (optind != argc)
		usage(NP_EUSAGE);
	if (mode && json_object_size(req))
		np_die(NP_EUSAGE, "--json and --batch take the request on stdin, "
		    "not in flags");
	if (mode == 0 && !json_object_get(req, "name") &&
	    !json_object_get(req, "targets"))
		usage(NP_EUSAGE);
	cfg = np_config_open();
	if (mode == 'j') {
		json_decref(req);
		if ((req = np_json_read(stdin, REQUEST_MAX, &err)) == NULL)
			np_die_err(&err);
	}
	if (mode == 'b') {
		c = np_redis_open(cfg);
		rc = batch(c, cfg);
	} else {
		np_enqueue_item it = { 0 };

		/* A bad request is refused before Redis is even asked. */
		if (np_request_parse(cfg, req, &it.r, &err) != 0)
			np_die_err(&err);
		c = np_redis_open(cfg);
		np_enqueue(c, cfg, &it, 1, false);
		if ((rc = it.rc) == 0)
			np_json_out_steal(it.answer);
		else
			err = it.err;
		np_request_free(&it.r);
	}
	json_decref(req);
	redisFree(c);
	np_config_free(cfg);
	if (rc && mode != 'b')
		np_die_err(&err);
	return rc;
}
