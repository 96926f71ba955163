/*
 * Fuzz target "config": np_config_load, the YAML config loader
 * (lib/config.c), and what a loaded config feeds: the lookups, the Redis
 * URL parser and the secret reader.
 *
 * The input is written to np.yaml in the target's temporary directory,
 * which is also the working directory while the loader runs (relative
 * *_file paths are read next to the file, a relative ca_file from the
 * working directory); mode 0600 for an even-sized input, 0644 for an
 * odd one, so that both answers to "does a readable file hold a
 * secret?" are reached.
 * The environment is fixed: a few ${VAR}s are set (NP_T_*, as in
 * tests/config.bats), CREDENTIALS_DIRECTORY holds s.key, and the
 * directory holds secret (0600), open.secret (0644), ca.pem and a
 * subdirectory, for the stat checks of *_file and ca_file.
 */
#include "fuzz.h"

static char yaml[PATH_MAX];
static int dir_fd = -1, cwd_fd = -1;

/*
 * libFuzzer writes crash artifacts relative to the working directory,
 * which is fz_dir while np_config_load runs: unless told otherwise, make
 * the prefix the directory the fuzzer was started in.
 */
static void
absolute_artifacts(int *argc, char ***argv)
{
	static char flag[PATH_MAX + 32], **v;	/* static: never a leak */
	char cwd[PATH_MAX];
	int i;

	for (i = 1; i < *argc; i++)
		if (strncmp((*argv)[i], "-artifact_prefix=", 17) == 0 ||
		    strncmp((*argv)[i], "-exact_artifact_path=", 21) == 0)
			return;
	fz_check(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	snprintf(flag, sizeof(flag), "-artifact_prefix=%s/", cwd);
	v = np_xcalloc((size_t)*argc + 2, sizeof(*v));
	memcpy(v, *argv, (size_t)*argc * sizeof(*v));
	v[(*argc)++] = flag;
	*argv = v;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char p[PATH_MAX];

	absolute_artifacts(argc, argv);
	fz_env_reset();
	fz_tmpdir("config");
	fz_check((dir_fd = open(fz_dir, O_RDONLY | O_DIRECTORY)) != -1, fz_dir);
	fz_check((cwd_fd = open(".", O_RDONLY | O_DIRECTORY)) != -1, "cwd");
	fz_path(yaml, sizeof(yaml), "np.yaml");
	fz_path(p, sizeof(p), "secret");
	fz_write_str(p, "k3y\n", 0600);
	fz_path(p, sizeof(p), "open.secret");
	fz_write_str(p, "k3y\n", 0644);
	fz_path(p, sizeof(p), "empty.secret");
	fz_write_str(p, "\n", 0600);
	fz_path(p, sizeof(p), "ca.pem");
	fz_write_str(p, "-----BEGIN CERTIFICATE-----\n", 0644);
	fz_path(p, sizeof(p), "dir");
	fz_check(mkdir(p, 0700) == 0, p);
	fz_path(p, sizeof(p), "creds");
	fz_check(mkdir(p, 0700) == 0, p);
	setenv("CREDENTIALS_DIRECTORY", p, 1);
	fz_path(p, sizeof(p), "creds/s.key");
	fz_write_str(p, "x\n", 0600);
	setenv("NP_T_HOST", "scanner.example", 1);
	setenv("NP_T_PORT", "8834", 1);
	setenv("NP_T_EMPTY", "", 1);
	setenv("NP_T_AK", "a", 1);
	setenv("NP_T_SK", "b", 1);
	return 0;
}

/* Whether path resolves inside fz_dir: only those secrets are read (a
 * config may name any file, /proc/kmsg included, whose read blocks). */
static bool
ours(const char *path)
{
	char real[PATH_MAX];
	size_t n = strlen(fz_dir);

	return path && realpath(path, real) != NULL &&
	    strncmp(real, fz_dir, n) == 0 && real[n] == '/';
}

static void
use(const np_config *cfg)
{
	np_redis_url u;
	np_error err;
	char *secret;
	size_t i, j;

	/* Every pool and scanner is found under its own name. */
	for (i = 0; i < cfg->npools; i++) {
		const np_pool *p = &cfg->pools[i];

		if (np_config_pool(cfg, p->name) == NULL)
			abort();
		for (j = 0; j < p->nscanners; j++) {
			const np_scanner *s = &p->scanners[j];

			if (np_pool_scanner(p, s->instance_id) == NULL ||
			    !np_name_valid(s->instance_id) || s->url == NULL ||
			    s->name == NULL)
				abort();
			if ((s->secret_key_file == NULL ||
			    ours(s->secret_key_file)) &&
			    np_config_secret(cfg, s, "secret_key", &secret,
			    &err) == 0) {
				explicit_bzero(secret, strlen(secret));
				free(secret);
			}
			if ((s->password_file == NULL || ours(s->password_file)) &&
			    np_config_secret(cfg, s, "password", &secret,
			    &err) == 0) {
				explicit_bzero(secret, strlen(secret));
				free(secret);
			}
		}
	}
	if (cfg->default_pool && np_config_pool(cfg, cfg->default_pool) == NULL)
		abort();
	if (cfg->redis_url == NULL || cfg->data_dir == NULL ||
	    cfg->key_prefix == NULL)
		abort();
	np_redis_parse_url(cfg->redis_url, &u, &err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	np_config *cfg = NULL;
	np_error err;
	int rc;

	fz_write(yaml, data, size, size % 2 ? 0644 : 0600);
	memset(&err, 0, sizeof(err));
	/* In fz_dir for the loader: a relative ca_file is read from there;
	 * back in the fuzzer's directory in between (its corpus paths). */
	fz_check(fchdir(dir_fd) == 0, "fchdir");
	rc = np_config_load(yaml, &cfg, &err);
	fz_say("config: %d %s", rc, rc ? err.msg : "loaded");
	if (rc == 0) {
		if (cfg == NULL)
			abort();
		use(cfg);
		np_config_free(cfg);
	} else if (rc != NP_ECONFIG || cfg != NULL || err.msg[0] == '\0')
		abort();	/* the documented contract: 78 with a message */
	fz_check(fchdir(cwd_fd) == 0, "fchdir");
	return 0;
}
