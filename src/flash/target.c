/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flash/target.h"
#include "util/error.h"

#define CHUNK_BYTES (1024u * 1024u)
#define BLOCK 4096u

static bool same_file(const struct stat *a, int fd)
{
	struct stat b;

	return fd >= 0 && fstat(fd, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

int pf_target_check_file(const char *path, const PfTargetCheck *check)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return pf_error_set(-errno, "cannot stat: %m");
	}
	if (same_file(&st, check->input_fd))
		return pf_error_set(-EEXIST, "is the input image itself; piflash never writes "
					     "its input");
	if (same_file(&st, check->base_fd))
		return pf_error_set(-EEXIST, "is the input image's cache file");
	if (S_ISDIR(st.st_mode))
		return pf_error_set(-EISDIR, "is a directory");
	if (!S_ISREG(st.st_mode))
		return pf_error_set(-ENOTSUP, "is not a regular file (writing to devices is not "
					      "supported yet)");
	return 0;
}

static bool is_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < MIN(n, (size_t)16); i++)
		if (p[i])
			return false;
	return n <= 16 || memcmp(p, p + 16, n - 16) == 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, (off_t)off);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return pf_error_set(-errno, "write at byte offset %" PRIu64 " failed: %m",
					    off);
		}
		p += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static int copy_ranges(int fd, PfOverlay *ov, PfExtents *ranges, uint64_t *ret_written)
{
	_cleanup_(freep) uint8_t *buf = NULL;
	uint64_t written = 0;
	int r;

	buf = malloc(CHUNK_BYTES);
	if (!buf)
		return -ENOMEM;
	pf_extents_normalize(ranges);
	for (size_t i = 0; i < ranges->n; i++) {
		uint64_t pos = ranges->items[i].start_bytes;
		uint64_t end = pos + ranges->items[i].length_bytes;

		while (pos < end) {
			size_t n = (size_t)MIN((uint64_t)CHUNK_BYTES, end - pos);

			r = pf_overlay_read(ov, pos, buf, n);
			if (r < 0)
				return r;
			/* Runs of non-zero blocks are written; zero blocks stay holes. */
			for (size_t k = 0; k < n;) {
				size_t run = k;

				while (run < n && !is_zero(buf + run, MIN((size_t)BLOCK, n - run)))
					run += MIN((size_t)BLOCK, n - run);
				if (run > k) {
					r = pwrite_all(fd, buf + k, run - k, pos + k);
					if (r < 0)
						return r;
					written += run - k;
					k = run;
				} else
					k += MIN((size_t)BLOCK, n - k);
			}
			pos += n;
		}
	}
	*ret_written = written;
	return 0;
}

int pf_target_write_file(const char *path, PfOverlay *ov, PfExtents *ranges,
			 uint64_t *ret_written_bytes)
{
	_cleanup_(freep) char *tmp = NULL;
	_cleanup_(closep) int fd = -1;
	uint64_t written = 0;
	int r;

	if (asprintf(&tmp, "%s.piflash-partial", path) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return pf_error_set(-errno, "cannot create '%s': %m", tmp);

	r = copy_ranges(fd, ov, ranges, &written);
	if (r >= 0 && ftruncate(fd, (off_t)pf_overlay_size(ov)) < 0)
		r = pf_error_set(-errno, "cannot set the size of '%s': %m", tmp);
	if (r >= 0 && fsync(fd) < 0)
		r = pf_error_set(-errno, "cannot flush '%s': %m", tmp);
	if (r >= 0 && rename(tmp, path) < 0)
		r = pf_error_set(-errno, "cannot rename '%s' to '%s': %m", tmp, path);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	if (ret_written_bytes)
		*ret_written_bytes = written;
	return 0;
}
