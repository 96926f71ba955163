/*
 * Fuzz target "mcp": np-mcp's JSON-RPC reader. There is no lib/mcp.c:
 * the reader lives in cmd/np-mcp.c as static functions, so this file
 * includes cmd/np-mcp.c whole (its main renamed) and drives it the way
 * its poll loop does: the input is np-mcp's standard input (a memfd on
 * fd 0), read by read_stdin until end of file, so that the framing
 * (take_lines: lines, blank lines, a last line without a newline; not
 * the 64 MiB cap, past libFuzzer's input sizes),
 * the JSON-RPC checks (handle_line, dispatch), initialize, ping,
 * tools/list, notifications and every tool's argument validation and
 * command line (check_args, the b_* builders) all run on it.
 *
 * No command is ever started: the harness holds every slot (S.running =
 * MAX_RUNNING), so a valid tools/call only queues its call, and the
 * queued calls are freed after each input. A tool that reads the config
 * for its default pool reads the tests' config (NP_CONFIG).
 *
 * Checked: every line np-mcp writes (fd 1, a memfd read back after each
 * input) is a JSON-RPC 2.0 object with exactly one of result and error;
 * an error has an integer code and a string message.
 */
#define main np_mcp_main
#include "../../cmd/np-mcp.c"
#undef main

#include <sys/mman.h>

#include "fuzz.h"

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char yaml[PATH_MAX];
	int in, out;

	(void)argc;
	(void)argv;
	fz_env_reset();
	fz_tmpdir("mcp");
	np_config_free(fz_test_config());
	fz_path(yaml, sizeof(yaml), "np.yaml");
	setenv("NP_CONFIG", yaml, 1);
	setenv("NP_BIN", fz_dir, 1);	/* no np-* there: nothing to run */
	np_setprogname("np-mcp");
	fz_check((in = memfd_create("stdin", 0)) != -1, "memfd_create");
	fz_check((out = memfd_create("stdout", 0)) != -1, "memfd_create");
	fz_check(dup2(in, STDIN_FILENO) != -1, "dup2");
	fz_check(dup2(out, STDOUT_FILENO) != -1, "dup2");
	close(in);
	close(out);
	setup_timeout();
	S.tools = tool_list();
	S.running = MAX_RUNNING;	/* every call waits; none starts */
	return 0;
}

static void
check_line(const char *p, size_t n)
{
	json_error_t je;
	json_t *m = json_loadb(p, n, 0, &je), *e;
	bool ok;

	fz_say("mcp: %.*s", (int)(n > 300 ? 300 : n), p);
	ok = json_is_object(m) &&
	    json_is_string(json_object_get(m, "jsonrpc")) &&
	    strcmp(np_json_str(m, "jsonrpc"), "2.0") == 0 &&
	    (json_object_get(m, "result") != NULL) !=
	    ((e = json_object_get(m, "error")) != NULL) &&
	    (e == NULL || (json_is_integer(json_object_get(e, "code")) &&
	    json_is_string(json_object_get(e, "message"))));
	if (!ok) {
		fprintf(stderr, "np-mcp wrote a line that is not a JSON-RPC "
		    "2.0 answer: %.*s\n", (int)(n > 2000 ? 2000 : n), p);
		abort();
	}
	json_decref(m);
}

static void
check_output(void)
{
	struct stat st;
	char *buf, *p, *nl, *end;
	ssize_t r;

	fz_check(fstat(STDOUT_FILENO, &st) == 0, "fstat");
	buf = np_xmalloc((size_t)st.st_size + 1);
	r = pread(STDOUT_FILENO, buf, (size_t)st.st_size, 0);
	fz_check(r == st.st_size, "pread");
	end = buf + r;
	if (r > 0 && end[-1] != '\n')
		abort();	/* every message is one whole line */
	for (p = buf; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		check_line(p, (size_t)(nl - p));
	}
	free(buf);
	fz_check(ftruncate(STDOUT_FILENO, 0) == 0, "ftruncate");
	fz_check(lseek(STDOUT_FILENO, 0, SEEK_SET) == 0, "lseek");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	call *c, *next;

	fz_check(ftruncate(STDIN_FILENO, 0) == 0, "ftruncate");
	fz_check(pwrite(STDIN_FILENO, data, size, 0) == (ssize_t)size,
	    "pwrite");
	fz_check(lseek(STDIN_FILENO, 0, SEEK_SET) == 0, "lseek");
	S.in_eof = false;
	S.in_skip = false;
	while (!S.in_eof)
		read_stdin();
	flush_out();
	check_output();
	/* The calls queued: never started, freed as a cancel frees them. */
	for (c = S.calls; c; c = next) {
		next = c->next;
		if (c->pid != 0)
			abort();
		call_free(c);
	}
	S.calls = NULL;
	return 0;
}
