/*
 * notify.c: the systemd notification protocol without libsystemd: one
 * datagram to the AF_UNIX socket named in $NOTIFY_SOCKET (a leading '@'
 * names an abstract socket). The protocol is systemd's stable interface;
 * a few lines here spare np a dependency.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "np.h"

/* Returns 1 sent, 0 not under systemd (no NOTIFY_SOCKET), -1 failed. */
int
np_notify(const char *state)
{
	struct sockaddr_un sa;
	const char *path = getenv("NOTIFY_SOCKET");
	socklen_t len;
	size_t n;
	ssize_t w;
	int fd;

	if (path == NULL || *path == '\0')
		return 0;
	n = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || n >= sizeof(sa.sun_path)) {
		errno = EINVAL;
		return -1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, n);
	if (sa.sun_path[0] == '@')
		sa.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	w = sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sa, len);
	close(fd);
	return w == -1 ? -1 : 1;
}

/*
 * The watchdog interval asked for by the unit (WatchdogSec=), in ms, or
 * 0: half of $WATCHDOG_USEC, when $WATCHDOG_PID is unset or names us.
 */
int64_t
np_watchdog_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	long long u;

	if (usec == NULL || (u = atoll(usec)) <= 0)
		return 0;
	if (pid && *pid && atoll(pid) != (long long)getpid())
		return 0;
	return u / 2000;
}
