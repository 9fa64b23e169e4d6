/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "flash/stream.h"
#include "flash/verify.h"
#include "util/error.h"

typedef struct Compare {
	int fd;
	uint64_t align;
	uint8_t *buf; /* PF_STREAM_CHUNK_BYTES + align, aligned */
	PfVerifyResult *res;
} Compare;

typedef struct Image {
	PfOverlay *ov;
} Image;

typedef struct Phase {
	const PfVerifyOptions *o;
} Phase;

static int image_read(void *userdata, uint64_t off, uint8_t *buf, size_t len)
{
	Image *img = userdata;
	uint64_t size = pf_overlay_size(img->ov);
	size_t n = off >= size ? 0 : (size_t)MIN((uint64_t)len, size - off);

	if (n < len)
		memset(buf + n, 0, len - n);
	return n ? pf_overlay_read(img->ov, off, buf, n) : 0;
}

/* Reads len bytes of the target at off; the length is rounded up for O_DIRECT, and a read
 * that ends early (the end of a file) returns how much there was. */
static int target_read(Compare *c, uint64_t off, size_t len, size_t *ret_n)
{
	size_t want = (size_t)ALIGN_UP((uint64_t)len, c->align), got = 0;

	while (got < len) {
		ssize_t k = pread(c->fd, c->buf + got, want - got, (off_t)(off + got));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return pf_error_set(-errno, "read at byte offset %" PRIu64 " failed: %m",
					    off + got);
		if (k == 0)
			break;
		got += (size_t)k;
	}
	*ret_n = MIN(got, len);
	return 0;
}

static int compare(void *userdata, uint64_t off, const uint8_t *want, size_t len)
{
	Compare *c = userdata;
	PfVerifyResult *res = c->res;
	size_t n = 0;
	int r;

	r = target_read(c, off, len, &n);
	if (r < 0)
		return r;
	if (n < len && !res->short_at)
		res->short_at = off + n;
	/* memcmp finds whether; the byte loop (only then) finds where and how many. */
	if (memcmp(c->buf, want, n) != 0)
		for (size_t i = 0; i < n; i++)
			if (c->buf[i] != want[i]) {
				if (res->differing_bytes++ == 0)
					res->first_difference = off + i;
			}
	if (n < len) {
		if (res->differing_bytes == 0)
			res->first_difference = off + n;
		res->differing_bytes += len - n;
	}
	res->compared_bytes += len;
	return 0;
}

static void phase_progress(void *userdata, uint64_t done, uint64_t total)
{
	const Phase *p = userdata;

	p->o->progress(p->o->progress_data, "verify", done, total);
}

/* A second descriptor of the target that reads past the page cache, or -1. */
static int open_direct(PfTarget *t)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/self/fd/%d", pf_target_fd(t));
	return open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
}

int pf_verify(PfTarget *t, PfOverlay *ov, PfExtents *ranges, const PfVerifyOptions *o,
	      PfVerifyResult *ret)
{
	_cleanup_(closep) int direct_fd = -1;
	_cleanup_(freep) uint8_t *buf = NULL;
	const PfTargetInfo *info = pf_target_info(t);
	PfVerifyResult res = { 0 };
	Image img = { .ov = ov };
	Phase phase = { .o = o };
	Compare c = { .fd = pf_target_fd(t), .align = pf_target_align(t), .res = &res };
	PfStream s = {
		.ranges = ranges,
		.read = image_read,
		.read_data = &img,
		.write = compare,
		.write_data = &c,
		.progress = o->progress ? phase_progress : NULL,
		.progress_data = &phase,
		.cancel = o->cancel,
	};
	int r;

	if (info->kind == PF_TARGET_STDOUT)
		return pf_error_set(-ENOTSUP, "standard output cannot be read back");

	buf = pf_stream_alloc(PF_STREAM_CHUNK_BYTES + (size_t)c.align);
	if (!buf)
		return -ENOMEM;
	c.buf = buf;

	direct_fd = open_direct(t);
	if (direct_fd >= 0) {
		c.fd = direct_fd;
		res.direct = true;
	} else {
		/* No O_DIRECT (tmpfs, some filesystems): drop the cached pages instead. */
		if (info->kind == PF_TARGET_BLOCK)
			(void)ioctl(c.fd, BLKFLSBUF, 0);
		else
			(void)fdatasync(c.fd);
		(void)posix_fadvise(c.fd, 0, 0, POSIX_FADV_DONTNEED);
	}

	r = pf_stream_run(&s, NULL);
	if (r < 0)
		return r;
	*ret = res;
	return 0;
}
