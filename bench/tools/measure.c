/*
 * measure: runs commands and reports, per run, the wall time, the time
 * to the first byte on standard output, the peak RSS and the exit status.
 *
 *   measure [-n runs] [-w warmup] [-i stdin_file] [-o stdout_file]
 *           cmd [args...] [::: cmd2 [args...]]...
 *
 * With several commands (separated by the word ":::"), the runs go round
 * robin (A B A B ...) so that a command and its baseline see the same
 * machine, not one quiet minute and one busy one. Each run is one line on
 * standard output, tab-separated:
 *
 *   cmd_index  wall_ms  first_byte_ms  maxrss_kib  exit_status  bytes_out
 *
 * wall_ms runs from just before the spawn to the reaping of the child
 * (and the end of its output). Without -o the child's standard output is
 * a pipe drained here (first_byte_ms is when its first byte arrived and
 * bytes_out how many came); with -o it goes to the file and both are -1.
 * maxrss_kib is the child's own ru_maxrss from wait4(2), not an estimate.
 * exit_status is the exit code, or 128 + the signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define MAXCMDS 8

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
usage(void)
{
	fprintf(stderr, "usage: measure [-n runs] [-w warmup] [-i stdin_file] "
	    "[-o stdout_file] cmd [args...] [::: cmd [args...]]...\n");
	exit(64);
}

static int
run(char **argv, const char *in, const char *out, int report, int idx)
{
	static char buf[1 << 16];
	posix_spawn_file_actions_t fa;
	struct rusage ru;
	double t0, first = -1, t1;
	long long bytes = -1;
	int pfd[2] = { -1, -1 }, status, code;
	pid_t pid;
	ssize_t n;

	posix_spawn_file_actions_init(&fa);
	if (in)
		posix_spawn_file_actions_addopen(&fa, 0, in, O_RDONLY, 0);
	if (out)
		posix_spawn_file_actions_addopen(&fa, 1, out,
		    O_WRONLY | O_CREAT | O_TRUNC, 0644);
	else {
		if (pipe2(pfd, O_CLOEXEC) == -1) {
			perror("measure: pipe");
			exit(71);
		}
		posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	}
	t0 = now_ms();
	errno = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	if (errno) {
		fprintf(stderr, "measure: %s: %s\n", argv[0], strerror(errno));
		exit(71);
	}
	posix_spawn_file_actions_destroy(&fa);
	if (!out) {
		close(pfd[1]);
		bytes = 0;
		while ((n = read(pfd[0], buf, sizeof(buf))) != 0) {
			if (n == -1) {
				if (errno == EINTR)
					continue;
				perror("measure: read");
				break;
			}
			if (first < 0)
				first = now_ms() - t0;
			bytes += n;
		}
		close(pfd[0]);
	}
	while (wait4(pid, &status, 0, &ru) == -1)
		if (errno != EINTR) {
			perror("measure: wait4");
			exit(71);
		}
	t1 = now_ms();
	code = WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status);
	if (report)
		printf("%d\t%.4f\t%.4f\t%ld\t%d\t%lld\n", idx, t1 - t0, first,
		    ru.ru_maxrss, code, bytes);
	return code;
}

int
main(int argc, char **argv)
{
	char **cmds[MAXCMDS];
	const char *in = NULL, *out = NULL;
	long runs = 1, warm = 0, r;
	int ch, ncmds = 0, i;

	while ((ch = getopt(argc, argv, "+n:w:i:o:")) != -1) {
		switch (ch) {
		case 'n':
			runs = strtol(optarg, NULL, 10);
			break;
		case 'w':
			warm = strtol(optarg, NULL, 10);
			break;
		case 'i':
			in = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || runs < 1 || warm < 0)
		usage();
	cmds[ncmds++] = &argv[optind];
	for (i = optind; i < argc; i++)
		if (strcmp(argv[i], ":::") == 0) {
			argv[i] = NULL;
			if (i + 1 >= argc || ncmds == MAXCMDS)
				usage();
			cmds[ncmds++] = &argv[i + 1];
		}
	for (r = 0; r < warm + runs; r++)
		for (i = 0; i < ncmds; i++) {
			run(cmds[i], in, out, r >= warm, i);
			fflush(stdout);
		}
	return 0;
}
