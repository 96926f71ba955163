/*
 * baseline-enqueue: the durable work of np-enqueue and nothing else, the
 * floor np-enqueue is measured against.
 *
 *   baseline-enqueue SOCKET DATA_DIR         one task
 *   baseline-enqueue -b SOCKET DATA_DIR      one task per line of stdin
 *
 * One task: hiredis connect (unix socket), the task folder made durable
 * the way np makes it (mkdir, write task.json.tmp, fsync, rename, fsync
 * the folder), one LPUSH of the id, one answer line. Batch: a folder
 * and record per input line without fsync, one syncfs(2) for them all,
 * every LPUSH in one pipeline, one answer line per task. The record has
 * np's fields and size (about 1 KiB); nothing is parsed or validated.
 * Links against hiredis only.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define QUEUE "np:{nessus}:queue"

static void
die(const char *what)
{
	fprintf(stderr, "baseline-enqueue: %s: %s\n", what, strerror(errno));
	exit(74);
}

static void
new_id(char id[34])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char rnd[8];
	time_t t = time(NULL);
	struct tm tm;
	int i;

	gmtime_r(&t, &tm);
	strftime(id, 18, "%Y%m%dT%H%M%SZ-", &tm);
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		die("getrandom");
	for (i = 0; i < 8; i++) {
		id[17 + 2 * i] = hex[rnd[i] >> 4];
		id[18 + 2 * i] = hex[rnd[i] & 15];
	}
	id[33] = '\0';
}

static size_t
record(char *buf, size_t n, const char *id)
{
	char ts[32];
	time_t t = time(NULL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
	return (size_t)snprintf(buf, n,
	    "{\n  \"task_id\": \"%s\",\n"
	    "  \"trace_id\": \"00000000000000000000000000000000\",\n"
	    "  \"name\": \"bench\",\n  \"description\": \"\",\n"
	    "  \"targets\": \"10.1.2.3\",\n  \"scan_type\": \"untrusted\",\n"
	    "  \"scanner_pool\": \"nessus\",\n  \"scanner_instance\": null,\n"
	    "  \"scanner_url\": null,\n  \"targeted_instance\": false,\n"
	    "  \"schema_profile\": \"brief\",\n  \"status\": \"queued\",\n"
	    "  \"nessus_scan_id\": null,\n  \"attempts\": 0,\n"
	    "  \"progress\": 0,\n  \"created_at\": \"%s\",\n"
	    "  \"updated_at\": \"%s\",\n  \"started_at\": null,\n"
	    "  \"completed_at\": null,\n  \"last_accessed_at\": \"%s\",\n"
	    "  \"error\": null,\n  \"validation_stats\": null,\n"
	    "  \"validation_warnings\": [],\n"
	    "  \"authentication_status\": null,\n"
	    "  \"idempotency_key\": null,\n  \"request_hash\": "
	    "\"0000000000000000000000000000000000000000000000000000000000000000\",\n"
	    "  \"history\": []\n}", id, ts, ts, ts);
}

/* The task folder and its record; fsynced (file, then folder) when sync. */
static void
write_task(const char *data, const char *id, int sync)
{
	char dir[PATH_MAX], tmp[PATH_MAX + 32], path[PATH_MAX + 32];
	char buf[2048];
	size_t len = record(buf, sizeof(buf), id);
	int fd;

	snprintf(dir, sizeof(dir), "%s/tasks/%s", data, id);
	if (mkdir(dir, 0700) == -1)
		die(dir);
	snprintf(tmp, sizeof(tmp), "%s/task.json.tmpXXXXXX", dir);
	snprintf(path, sizeof(path), "%s/task.json", dir);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		die(tmp);
	if (write(fd, buf, len) != (ssize_t)len)
		die("write");
	if (sync && fsync(fd) == -1)
		die("fsync");
	if (close(fd) == -1 || rename(tmp, path) == -1)
		die(path);
	if (sync) {
		if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
		    fsync(fd) == -1)
			die(dir);
		close(fd);
	}
}

static redisContext *
connect_to(const char *sock)
{
	redisContext *c = redisConnectUnix(sock);

	if (c == NULL || c->err) {
		fprintf(stderr, "baseline-enqueue: %s: %s\n", sock,
		    c ? c->errstr : "out of memory");
		exit(75);
	}
	return c;
}

static void
check(redisContext *c, redisReply *r)
{
	if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
		fprintf(stderr, "baseline-enqueue: LPUSH: %s\n",
		    r ? r->str : c->errstr);
		exit(75);
	}
}

static int
one(const char *sock, const char *data)
{
	redisContext *c = connect_to(sock);
	redisReply *r;
	char id[34];

	new_id(id);
	write_task(data, id, 1);
	r = redisCommand(c, "LPUSH %s %s", QUEUE, id);
	check(c, r);
	printf("{\"task_id\":\"%s\",\"queue_position\":%lld}\n", id,
	    r->integer);
	freeReplyObject(r);
	redisFree(c);
	return 0;
}

static int
batch(const char *sock, const char *data)
{
	redisContext *c = connect_to(sock);
	char (*ids)[34] = NULL, *line = NULL;
	size_t n = 0, cap = 0, lcap = 0, i;
	redisReply *r;
	int fd;

	while (getline(&line, &lcap, stdin) != -1) {
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			if ((ids = realloc(ids, cap * sizeof(*ids))) == NULL)
				die("realloc");
		}
		new_id(ids[n]);
		write_task(data, ids[n], 0);
		n++;
	}
	free(line);
	if ((fd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 ||
	    syncfs(fd) == -1)
		die("syncfs");
	close(fd);
	for (i = 0; i < n; i++)
		redisAppendCommand(c, "LPUSH %s %s", QUEUE, ids[i]);
	for (i = 0; i < n; i++) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK)
			r = NULL;
		check(c, r);
		printf("{\"task_id\":\"%s\",\"queue_position\":%lld}\n", ids[i],
		    r->integer);
		freeReplyObject(r);
	}
	free(ids);
	redisFree(c);
	return fflush(stdout) == EOF ? 74 : 0;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "-b") == 0)
		return batch(argv[2], argv[3]);
	if (argc == 3)
		return one(argv[1], argv[2]);
	fprintf(stderr, "usage: baseline-enqueue [-b] SOCKET DATA_DIR\n");
	return 64;
}
