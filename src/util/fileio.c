/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/macros.h"

static void wipe_free(char *buf, size_t len)
{
	explicit_bzero(buf, len);
	free(buf);
}

/* Moves buf to a larger buffer, wiping the old one. */
static char *grow(char *buf, size_t len, size_t new_size)
{
	char *n = malloc(new_size);

	if (n)
		memcpy(n, buf, len);
	wipe_free(buf, len);
	return n;
}

int pf_read_file_at(int dirfd, const char *path, size_t max_bytes, char **ret, size_t *ret_len)
{
	_cleanup_(closep) int fd = -1;
	struct stat st;
	size_t got = 0, cap;
	char *buf;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st) < 0)
		return pf_error_set(-errno, "'%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return pf_error_set(-EINVAL, "'%s' is not a regular file", path);
	if ((uint64_t)st.st_size > max_bytes)
		return pf_error_set(-EFBIG, "'%s' is %jd bytes, more than expected (at most %zu)",
				    path, (intmax_t)st.st_size, max_bytes);
	/* Room for what fstat says, one byte more to see the end, and the NUL. */
	cap = (size_t)st.st_size + 2;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t l;

		if (got == cap - 1) {
			/* The file grew: read on, up to one byte over the bound. */
			if (got > max_bytes) {
				wipe_free(buf, got);
				return pf_error_set(-EFBIG,
						    "'%s' grew past %zu bytes (at most %zu)", path,
						    max_bytes, max_bytes);
			}
			cap = MIN(cap * 2, max_bytes + 2);
			buf = grow(buf, got, cap);
			if (!buf)
				return -ENOMEM;
		}
		l = read(fd, buf + got, cap - 1 - got);
		if (l < 0 && errno == EINTR)
			continue;
		if (l < 0) {
			int e = errno;

			wipe_free(buf, got);
			return pf_error_set(-e, "'%s': %s", path, strerror(e));
		}
		if (l == 0)
			break;
		got += (size_t)l;
	}
	if (got > max_bytes) {
		wipe_free(buf, got);
		return pf_error_set(-EFBIG, "'%s' grew past %zu bytes (at most %zu)", path,
				    max_bytes, max_bytes);
	}
	buf[got] = 0;
	*ret = buf;
	*ret_len = got;
	return 0;
}

void pf_fsync_dir_of(const char *path)
{
	_cleanup_(freep) char *dir = strdup(path);
	_cleanup_(closep) int dfd = -1;
	char *slash;

	if (!dir)
		return;
	slash = strrchr(dir, '/');
	if (slash)
		slash[slash == dir ? 1 : 0] = 0;
	dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
}
