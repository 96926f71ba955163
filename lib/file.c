/*
 * file.c: durable file writes. A reader never sees a half-written file:
 * data goes to a temporary file in the same directory, which is fsynced
 * and renamed over the target; the directory is fsynced so the rename
 * itself survives a crash.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "np.h"

int
np_fsync_dir(const char *dir)
{
	int fd, rc;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		if ((w = write(fd, p, n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int
np_write_atomic(const char *path, const void *buf, size_t len, mode_t mode,
    int flags, np_error *err)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	char *slash;
	int fd, e;

	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
		return np_seterr(err, NP_ESOFTWARE, "%s: path too long", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1)
		return np_seterr(err, errno == EACCES ? NP_EPERM : NP_EIO,
		    "%s: %s", path, strerror(errno));
	if (fchmod(fd, mode) == -1 || write_all(fd, buf, len) == -1 ||
	    ((flags & NP_SYNC) && fsync(fd) == -1)) {
		e = errno;
		close(fd);
		unlink(tmp);
		return np_seterr(err, NP_EIO, "%s: %s", path, strerror(e));
	}
	if (close(fd) == -1 || rename(tmp, path) == -1) {
		e = errno;
		unlink(tmp);
		return np_seterr(err, NP_EIO, "%s: %s", path, strerror(e));
	}
	if (flags & NP_SYNC) {
		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		if (slash == dir)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			strcpy(dir, ".");
		if (np_fsync_dir(dir) == -1)
			return np_seterr(err, NP_EIO, "%s: fsync: %s", dir,
			    strerror(errno));
	}
	return 0;
}

int
np_read_file(const char *path, size_t max, char **out, size_t *len,
    np_error *err)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0, cap = 0;
	ssize_t r;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return np_seterr(err, errno == ENOENT ? NP_ENOINPUT :
		    errno == EACCES ? NP_EPERM : NP_EIO, "%s: %s", path,
		    strerror(errno));
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		close(fd);
		return np_seterr(err, NP_ENOINPUT, "%s: is a directory", path);
	}
	for (;;) {
		if (n + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			buf = np_xrealloc(buf, cap);
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			int e = errno;
			close(fd);
			free(buf);
			return np_seterr(err, NP_EIO, "%s: %s", path, strerror(e));
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > max) {
			close(fd);
			free(buf);
			return np_seterr(err, NP_EDATA, "%s: larger than %zu bytes",
			    path, max);
		}
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	if (len)
		*len = n;
	return 0;
}

int
np_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return -1;
	return 0;
}

int
np_rm_rf(const char *path)
{
	struct stat st;
	struct dirent *de;
	char sub[PATH_MAX];
	DIR *d;
	int rc = 0;

	if (lstat(path, &st) == -1)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlink(path);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
		if (np_rm_rf(sub) == -1)
			rc = -1;
	}
	closedir(d);
	if (rmdir(path) == -1)
		rc = -1;
	return rc;
}
