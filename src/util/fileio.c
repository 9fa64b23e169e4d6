/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/macros.h"
#include "util/strutil.h"

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

void pf_fsync_dir_at(int dirfd, const char *path)
{
	if (dirfd == AT_FDCWD)
		pf_fsync_dir_of(path);
	else
		(void)fsync(dirfd);
}

int pf_tmpfile_at(int dirfd, const char *prefix, const char *what, char **ret_name)
{
	_cleanup_(freep) char *name = NULL;
	int fd;

	for (unsigned attempt = 0; attempt < 16; attempt++) {
		uint32_t rnd;

		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint32_t)getpid() ^ (attempt * 0x9e3779b9u);
		free(name);
		if (asprintf(&name, "%s%08" PRIx32, prefix, rnd) < 0) {
			name = NULL;
			return -ENOMEM;
		}
		fd = openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd >= 0) {
			*ret_name = TAKE_PTR(name);
			return fd;
		}
		if (errno != EEXIST)
			break;
	}
	return pf_error_set(-errno, "cannot create a temporary file for '%s': %m", what);
}

static int write_loop(int fd, const uint8_t *p, size_t n, uint64_t off, bool seek)
{
	while (n > 0) {
		ssize_t k = seek ? pwrite(fd, p, n, (off_t)off) : write(fd, p, n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			int e = k < 0 ? errno : EIO;

			return pf_error_set(-e, "write at byte offset %" PRIu64 " failed: %s", off,
					    k < 0 ? strerror(e) : "short write");
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

int pf_pwrite_all(int fd, const void *buf, size_t n, uint64_t off)
{
	return write_loop(fd, buf, n, off, true);
}

int pf_write_all(int fd, const void *buf, size_t n, uint64_t pos)
{
	return write_loop(fd, buf, n, pos, false);
}

int pf_pwrite_sparse(int fd, const void *buf, size_t n, uint64_t off, size_t block_bytes,
		     uint64_t *ret_written)
{
	const uint8_t *p = buf;

	for (size_t i = 0; i < n;) {
		size_t run = i;
		int r;

		while (run < n && !pf_is_zero(p + run, MIN(block_bytes, n - run)))
			run += MIN(block_bytes, n - run);
		if (run == i) {
			i += MIN(block_bytes, n - i); /* a zero block: a hole */
			continue;
		}
		r = pf_pwrite_all(fd, p + i, run - i, off + i);
		if (r < 0)
			return r;
		if (ret_written)
			*ret_written += run - i;
		i = run;
	}
	return 0;
}

int pf_read_secret_file(const char *path, size_t max_bytes, const char *what, char **ret)
{
	_cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_(freep) char *buf = NULL;
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int r = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return pf_error_set(-errno, "'%s': %m", path);
	if (!S_ISREG(st.st_mode))
		return pf_error_set(-EINVAL, "'%s' is not a regular file", path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return pf_error_set(-EPERM,
				    "'%s' is open to group or others (mode %04o): the %s is a "
				    "secret like a private key; chmod 600 it",
				    path, (unsigned)(st.st_mode & 07777), what);
	buf = malloc(max_bytes + 1);
	if (!buf)
		return -ENOMEM;
	while (len < max_bytes + 1 && (n = read(fd, buf + len, max_bytes + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pf_error_set(-errno, "'%s': %m", path);
			break;
		}
		len += (size_t)n;
	}
	if (r >= 0 && len > max_bytes)
		r = pf_error_set(-EFBIG, "'%s' is longer than a %s (%zu bytes at most)", path, what,
				 max_bytes);
	if (r >= 0 && len > 0 && buf[len - 1] == '\n')
		len--;
	if (r >= 0 && len > 0 && buf[len - 1] == '\r')
		len--;
	if (r >= 0 && (len == 0 || memchr(buf, 0, len)))
		r = pf_error_set(-EINVAL, "'%s': the %s is empty or holds a NUL byte", path, what);
	if (r >= 0) {
		*ret = strndup(buf, len);
		if (!*ret)
			r = -ENOMEM;
	}
	explicit_bzero(buf, max_bytes + 1);
	return r;
}
