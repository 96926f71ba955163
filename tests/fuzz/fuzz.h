/*
 * fuzz.h: what the libFuzzer targets of tests/fuzz share. Each target
 * includes it once (the functions are static).
 *
 * Every target works in a private temporary directory (under TMPDIR,
 * removed at exit) and starts from a known environment: every variable
 * is dropped except PATH, TMPDIR and the sanitizers' own, so that a
 * crash found on one machine replays on another (the config loader
 * reads ${VAR}s, and np reads NP_*). Logging is cut to errors.
 *
 * NP_FUZZ_VERBOSE=1 makes the targets say what became of each input
 * (accepted, or the error message), to check a seed or a harness:
 *   NP_FUZZ_VERBOSE=1 build/fuzz/bin/fuzz-config tests/fuzz/config/corpus/FILE
 */
#ifndef NP_FUZZ_H
#define NP_FUZZ_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "np.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fz_dir[PATH_MAX];	/* the target's temporary directory */

/* Not every target uses every helper. */
#define FZ_UNUSED static __attribute__((unused))

/* A setup step that cannot fail in a sane sandbox: abort loudly if it
 * does, rather than fuzz something else than intended. */
FZ_UNUSED void
fz_check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz setup: %s: %s\n", what, strerror(errno));
		abort();
	}
}

FZ_UNUSED void
fz_cleanup(void)
{
	if (fz_dir[0])
		np_rm_rf(fz_dir);
}

FZ_UNUSED bool
fz_keep_var(const char *kv)
{
	static const char *const keep[] = { "PATH=", "TMPDIR=",
		"NP_FUZZ_VERBOSE=", "ASAN_",
		"UBSAN_", "LSAN_", "LLVM_SYMBOLIZER", "ASAN_SYMBOLIZER", NULL };
	const char *const *k;

	for (k = keep; *k; k++)
		if (strncmp(kv, *k, strlen(*k)) == 0)
			return true;
	return false;
}

static bool fz_verbose;

/* Says what became of an input, under NP_FUZZ_VERBOSE. */
__attribute__((format(printf, 1, 2))) FZ_UNUSED void
fz_say(const char *fmt, ...)
{
	va_list ap;

	if (!fz_verbose)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Drops every environment variable but the few above. */
FZ_UNUSED void
fz_env_reset(void)
{
	extern char **environ;
	char **e, name[256];
	size_t n;
	const char *v = getenv("NP_FUZZ_VERBOSE");

	fz_verbose = v && *v && strcmp(v, "0") != 0;
	for (;;) {
		for (e = environ; e && *e && fz_keep_var(*e); e++)
			;
		if (e == NULL || *e == NULL)
			break;
		n = strcspn(*e, "=");
		if (n >= sizeof(name))
			n = sizeof(name) - 1;
		memcpy(name, *e, n);
		name[n] = '\0';
		fz_check(unsetenv(name) == 0, "unsetenv");
	}
	setenv("NP_LOG_LEVEL", "error", 1);
}

/*
 * Makes fz_dir, a fresh directory for this process: in TMPDIR, else in
 * /dev/shm (files are rewritten on every input, and ext4 flushes a file
 * renamed or truncated over another to the disk: tmpfs is ten times
 * faster), else in /tmp.
 */
FZ_UNUSED void
fz_tmpdir(const char *tag)
{
	const char *t = getenv("TMPDIR");

	if (t == NULL || *t == '\0')
		t = access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(fz_dir, sizeof(fz_dir), "%s/np-fuzz-%s.XXXXXX", t, tag);
	fz_check(mkdtemp(fz_dir) != NULL, "mkdtemp");
	atexit(fz_cleanup);
}

/* path = fz_dir/rel */
FZ_UNUSED void
fz_path(char *buf, size_t n, const char *rel)
{
	fz_check((size_t)snprintf(buf, n, "%s/%s", fz_dir, rel) < n, "path");
}

/* Writes (replaces) a file with exactly these bytes and this mode. */
FZ_UNUSED void
fz_write(const char *path, const void *data, size_t n, mode_t mode)
{
	const char *p = data;
	ssize_t w;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	fz_check(fd != -1, path);
	fz_check(fchmod(fd, mode) == 0, path);
	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		fz_check(w > 0, path);
		p += w;
		n -= (size_t)w;
	}
	fz_check(close(fd) == 0, path);
}

FZ_UNUSED void
fz_write_str(const char *path, const char *s, mode_t mode)
{
	fz_write(path, s, strlen(s), mode);
}

/* The input as a NUL-terminated string (it may hold NULs: C sees the
 * part before the first). */
FZ_UNUSED char *
fz_strdup(const uint8_t *data, size_t size)
{
	char *s = np_xmalloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/*
 * The config the tests use (tests/helpers.bash np_setup): pools nessus
 * (s1, s2, off disabled) and dmz (d1, username/password_file), default
 * pool nessus. Written into fz_dir and loaded; the data dir is
 * fz_dir/data.
 */
FZ_UNUSED np_config *
fz_test_config(void)
{
	char yaml[PATH_MAX], secret[PATH_MAX], data[PATH_MAX], text[4096];
	np_config *cfg;
	np_error err;

	fz_path(secret, sizeof(secret), "secret");
	fz_path(yaml, sizeof(yaml), "np.yaml");
	fz_path(data, sizeof(data), "data");
	fz_write_str(secret, "k3y\n", 0600);
	fz_check(mkdir(data, 0700) == 0 || errno == EEXIST, data);
	snprintf(text, sizeof(text),
	    "default_pool: nessus\n"
	    "data_dir: %s\n"
	    "pools:\n"
	    "  nessus:\n"
	    "    - instance_id: s1\n"
	    "      url: https://127.0.0.1:8834\n"
	    "      access_key: ak1\n"
	    "      secret_key_file: %s\n"
	    "      max_concurrent_scans: 2\n"
	    "    - instance_id: s2\n"
	    "      url: https://127.0.0.1:8835\n"
	    "      access_key: ak2\n"
	    "      secret_key_file: %s\n"
	    "      max_concurrent_scans: 3\n"
	    "    - instance_id: off\n"
	    "      url: https://127.0.0.1:8836\n"
	    "      access_key: ak3\n"
	    "      secret_key_file: %s\n"
	    "      enabled: false\n"
	    "  dmz:\n"
	    "    - instance_id: d1\n"
	    "      url: https://127.0.0.1:8837\n"
	    "      username: admin\n"
	    "      password_file: %s\n"
	    "      max_concurrent_scans: 1\n", data, secret, secret, secret,
	    secret);
	fz_write_str(yaml, text, 0600);
	if (np_config_load(yaml, &cfg, &err) != 0) {
		fprintf(stderr, "fuzz setup: test config: %s\n", err.msg);
		abort();
	}
	return cfg;
}

/* Whether a JSON object's "type" is t (np-results' lines). */
FZ_UNUSED bool
type_is(json_t *v, const char *t)
{
	const char *s = np_json_str(v, "type");

	return s != NULL && strcmp(s, t) == 0;
}

/* A fixed, well-formed task id for the targets that need one. */
#define FZ_TASK "20261123T185000Z-0123456789abcdef"

/* Makes data_dir/tasks/FZ_TASK and returns its path in buf. */
FZ_UNUSED void
fz_task_dir(const np_config *cfg, char *buf, size_t n)
{
	np_task_dir(cfg, FZ_TASK, buf, n);
	fz_check(np_mkdir_p(buf, 0700) == 0, buf);
}

#endif
