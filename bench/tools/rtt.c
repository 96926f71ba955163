/*
 * rtt.so: an LD_PRELOAD shim that counts a program's round trips to
 * Redis, for real, from the system calls it makes.
 *
 * A socket is watched once connect(2) reaches the AF_UNIX path in
 * NPB_RTT_SOCK (any AF_UNIX socket when it is unset). A round trip is a
 * write (one or many: a pipeline) followed by a read that waits for the
 * answer: every change from writing to reading on a watched socket
 * counts one. Reads that follow reads (a big answer in several pieces)
 * and writes that follow writes (a big pipeline in several pieces) do
 * not count again; neither does connect itself.
 *
 * At exit the counts are appended to the file NPB_RTT_OUT as one line:
 * "round_trips writes reads bytes_out bytes_in".
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#define MAXFD 4096

enum { IDLE, WROTE, READ };

static unsigned char watched[MAXFD], state[MAXFD];
static long trips, writes, reads;
static long long out_bytes, in_bytes;

#define REAL(ret, name, args) \
	static ret (*real_##name) args; \
	if (real_##name == NULL) \
		*(void **)&real_##name = dlsym(RTLD_NEXT, #name)

static int
ours(int fd)
{
	return fd >= 0 && fd < MAXFD && watched[fd];
}

static void
wrote(int fd, ssize_t n)
{
	if (!ours(fd) || n <= 0)
		return;
	writes++;
	out_bytes += n;
	state[fd] = WROTE;
}

static void
got(int fd, ssize_t n)
{
	if (!ours(fd) || n <= 0)
		return;
	reads++;
	in_bytes += n;
	if (state[fd] == WROTE)
		trips++;
	state[fd] = READ;
}

int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	REAL(int, connect, (int, const struct sockaddr *, socklen_t));
	const char *want = getenv("NPB_RTT_SOCK");
	int rc = real_connect(fd, sa, len), e = errno;

	if ((rc == 0 || e == EINPROGRESS) && fd >= 0 && fd < MAXFD &&
	    sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
		if (want == NULL || strcmp(un->sun_path, want) == 0) {
			watched[fd] = 1;
			state[fd] = IDLE;
		}
	}
	errno = e;
	return rc;
}

int
close(int fd)
{
	REAL(int, close, (int));

	if (fd >= 0 && fd < MAXFD)
		watched[fd] = 0;
	return real_close(fd);
}

ssize_t
write(int fd, const void *p, size_t n)
{
	REAL(ssize_t, write, (int, const void *, size_t));
	ssize_t r = real_write(fd, p, n);

	wrote(fd, r);
	return r;
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	REAL(ssize_t, writev, (int, const struct iovec *, int));
	ssize_t r = real_writev(fd, iov, cnt);

	wrote(fd, r);
	return r;
}

ssize_t
send(int fd, const void *p, size_t n, int fl)
{
	REAL(ssize_t, send, (int, const void *, size_t, int));
	ssize_t r = real_send(fd, p, n, fl);

	wrote(fd, r);
	return r;
}

ssize_t
sendto(int fd, const void *p, size_t n, int fl, const struct sockaddr *a,
    socklen_t l)
{
	REAL(ssize_t, sendto, (int, const void *, size_t, int,
	    const struct sockaddr *, socklen_t));
	ssize_t r = real_sendto(fd, p, n, fl, a, l);

	wrote(fd, r);
	return r;
}

ssize_t
sendmsg(int fd, const struct msghdr *m, int fl)
{
	REAL(ssize_t, sendmsg, (int, const struct msghdr *, int));
	ssize_t r = real_sendmsg(fd, m, fl);

	wrote(fd, r);
	return r;
}

ssize_t
read(int fd, void *p, size_t n)
{
	REAL(ssize_t, read, (int, void *, size_t));
	ssize_t r = real_read(fd, p, n);

	got(fd, r);
	return r;
}

ssize_t
readv(int fd, const struct iovec *iov, int cnt)
{
	REAL(ssize_t, readv, (int, const struct iovec *, int));
	ssize_t r = real_readv(fd, iov, cnt);

	got(fd, r);
	return r;
}

ssize_t
recv(int fd, void *p, size_t n, int fl)
{
	REAL(ssize_t, recv, (int, void *, size_t, int));
	ssize_t r = real_recv(fd, p, n, fl);

	got(fd, r);
	return r;
}

ssize_t
recvfrom(int fd, void *p, size_t n, int fl, struct sockaddr *a,
    socklen_t *l)
{
	REAL(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *,
	    socklen_t *));
	ssize_t r = real_recvfrom(fd, p, n, fl, a, l);

	got(fd, r);
	return r;
}

ssize_t
recvmsg(int fd, struct msghdr *m, int fl)
{
	REAL(ssize_t, recvmsg, (int, struct msghdr *, int));
	ssize_t r = real_recvmsg(fd, m, fl);

	got(fd, r);
	return r;
}

__attribute__((destructor)) static void
report(void)
{
	const char *path = getenv("NPB_RTT_OUT");
	char line[160];
	int fd, n;

	if (path == NULL)
		return;
	n = snprintf(line, sizeof(line), "%ld %ld %ld %lld %lld\n", trips,
	    writes, reads, out_bytes, in_bytes);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0644)) == -1)
		return;
	/* Our own write: not on a watched socket, so not counted. */
	if (write(fd, line, (size_t)n) != n)
		n = 0;
	close(fd);
}
