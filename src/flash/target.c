/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "flash/device.h"
#include "flash/ranges.h"
#include "flash/stream.h"
#include "flash/target.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

/* Zero detection in a file target: blocks of this size that are all zero become holes. */
#define HOLE_BYTES 4096u
/*
 * The mark a finished file target carries ("SIZE MTIME_SEC.MTIME_NSEC", as it was when
 * committed): a later run may replace a file so marked and unchanged since, and nothing else
 * unless forced. A filesystem without user extended attributes keeps no mark.
 */
#define OUTPUT_XATTR "user.piflash.output"

struct PfTarget {
	PfTargetInfo info;
	int fd;
	char *tmp;	   /* a file target's temporary name until committed */
	PfExtents written; /* already holding the base image's bytes (pf_target_set_written()) */
};

typedef struct Sink {
	PfTarget *t;
	uint64_t written;
} Sink;

typedef struct Source {
	PfOverlay *ov;
} Source;

PfTarget *pf_target_free(PfTarget *t)
{
	if (!t)
		return NULL;
	if (t->fd > STDERR_FILENO)
		close(t->fd);
	if (t->tmp)
		unlink(t->tmp);
	free(t->tmp);
	pf_extents_done(&t->written);
	pf_device_info_done(&t->info);
	free(t);
	return NULL;
}

const PfTargetInfo *pf_target_info(const PfTarget *t)
{
	return &t->info;
}

int pf_target_fd(const PfTarget *t)
{
	return t->fd;
}

uint64_t pf_target_align(const PfTarget *t)
{
	if (t->info.kind == PF_TARGET_BLOCK)
		return MAX(t->info.block_bytes, (uint64_t)512);
	return 4096;
}

/* ---- file targets: not the input, marked as ours -------------------------------------- */

static bool same_file(const struct stat *a, int fd)
{
	struct stat b;

	return fd >= 0 && fstat(fd, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

static void output_mark_format(const struct stat *st, char *buf, size_t n)
{
	snprintf(buf, n, "%lld %lld.%09ld", (long long)st->st_size, (long long)st->st_mtim.tv_sec,
		 (long)st->st_mtim.tv_nsec);
}

/* True if path (whose stat is st) is an image piflash wrote, unchanged since. */
static bool output_marked(const char *path, const struct stat *st)
{
	char want[96], have[96];
	ssize_t n;

	n = getxattr(path, OUTPUT_XATTR, have, sizeof(have) - 1);
	if (n <= 0)
		return false;
	have[n] = 0;
	output_mark_format(st, want, sizeof(want));
	return streq(have, want);
}

/* Names that say "compressed": piflash writes raw images only (batch writes compressed
 * artifacts), so such a name is a mistake — most often IMAGE and TARGET swapped. */
static const char *compressed_suffix(const char *path)
{
	static const char *const suffixes[] = { ".xz", ".gz",  ".zst",	".bz2", ".zip",
						".7z", ".lz4", ".lzma", ".tar" };
	size_t n = strlen(path);

	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
		size_t k = strlen(suffixes[i]);

		if (n > k && strcasecmp(path + n - k, suffixes[i]) == 0)
			return suffixes[i];
	}
	return NULL;
}

/* The checks of a file target that is to be written (or replaced). */
static int check_file_target(const char *path, const struct stat *st, bool exists, bool force)
{
	const char *suffix = compressed_suffix(path);

	if (suffix)
		return pf_error_set(-EPERM,
				    "the name says compressed ('%s'), but piflash writes a raw "
				    "image; name it .img, or compress the stream: piflash IMAGE - "
				    "| zstd -o OUT.img.zst ('piflash batch --format img.zst' "
				    "writes compressed images)",
				    suffix);
	if (exists && !force && !output_marked(path, st))
		return pf_error_set(-EPERM,
				    "exists and is not an image piflash wrote (or was changed "
				    "since); add --force to replace it");
	return 0;
}

/* ---- opening -------------------------------------------------------------------------- */

/* "-": the image goes to standard output, which must not be a terminal. */
static int open_stdout(PfTarget *t, const PfTargetOptions *o)
{
	t->info.kind = PF_TARGET_STDOUT;
	if (!o->read_only && isatty(STDOUT_FILENO))
		return pf_error_set(-EPERM, "standard output is a terminal; redirect it "
					    "to a file or a pipe");
	t->fd = STDOUT_FILENO;
	return 0;
}

/*
 * Stats path into *st: a missing one is a new regular file (but not in /dev, and not for
 * reading); an existing one must be neither the input image nor its cache file.
 */
static int stat_target(const char *path, const PfTargetOptions *o, struct stat *st,
		       bool *ret_exists)
{
	*ret_exists = stat(path, st) == 0;
	if (!*ret_exists) {
		if (errno != ENOENT || o->read_only)
			return pf_error_set(-errno, "cannot stat: %m");
		/* A card that is not there is not a new image file in /dev (RAM, on most
		 * systems): the user typed the wrong name or the card is not plugged in. */
		if (startswith(path, "/dev/"))
			return pf_error_set(-EPERM, "no such device; is the card plugged in?");
		st->st_mode = S_IFREG; /* a new file */
		st->st_dev = 0;
		st->st_ino = 0;
		return 0;
	}
	if (same_file(st, o->input_fd))
		return pf_error_set(-EPERM, "is the input image itself; piflash never "
					    "writes its input");
	if (same_file(st, o->base_fd))
		return pf_error_set(-EPERM, "is the input image's cache file");
	return 0;
}

/*
 * A regular file: for reading, opened as it is; for writing, checked (check_file_target())
 * and a temporary file created next to it.
 */
static int open_file(PfTarget *t, const struct stat *st, bool exists, const PfTargetOptions *o)
{
	const char *path = t->info.path;
	int r;

	if (S_ISDIR(st->st_mode))
		return pf_error_set(-EISDIR, "is a directory");
	if (!S_ISREG(st->st_mode))
		return pf_error_set(-ENOTSUP,
				    "is neither a regular file nor a block device nor '-'");

	t->info.kind = PF_TARGET_FILE;
	if (o->read_only) {
		t->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (t->fd < 0)
			return pf_error_set(-errno, "cannot open: %m");
		return 0;
	}
	r = check_file_target(path, st, exists, o->force);
	if (r < 0)
		return r;
	if (asprintf(&t->tmp, "%s.piflash-partial", path) < 0) {
		t->tmp = NULL;
		return -ENOMEM;
	}
	/* 0600: the image may hold private host keys and password hashes. */
	t->fd = open(t->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (t->fd < 0) {
		r = pf_error_set(-errno, "cannot create '%s': %m", t->tmp);
		free(TAKE_PTR(t->tmp));
		return r;
	}
	return 0;
}

int pf_target_open(const char *path, const PfTargetOptions *o, PfTarget **ret)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	struct stat st;
	bool exists;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = -1;
	t->info.path = strdup(path);
	if (!t->info.path)
		return -ENOMEM;

	if (streq(path, "-"))
		r = open_stdout(t, o);
	else {
		r = stat_target(path, o, &st, &exists);
		if (r < 0)
			return r;
		if (S_ISBLK(st.st_mode)) {
			t->info.kind = PF_TARGET_BLOCK;
			r = pf_device_open(&t->info, &st, o->read_only, o->force, o->need_bytes,
					   &t->fd);
		} else
			r = open_file(t, &st, exists, o);
	}
	if (r < 0)
		return r;
	*ret = TAKE_PTR(t);
	return 0;
}

/* ---- writing -------------------------------------------------------------------------- */

static int sink_write(void *userdata, uint64_t off, const uint8_t *buf, size_t len)
{
	Sink *s = userdata;
	int r;

	switch (s->t->info.kind) {
	case PF_TARGET_STDOUT:
		r = pf_write_all(s->t->fd, buf, len, off);
		break;
	case PF_TARGET_BLOCK:
		r = pf_pwrite_all(s->t->fd, buf, len, off);
		break;
	default:
		/* Runs of non-zero blocks are written; zero blocks stay holes. */
		return pf_pwrite_sparse(s->t->fd, buf, len, off, HOLE_BYTES, &s->written);
	}
	if (r >= 0)
		s->written += len;
	return r;
}

/* Reads the image; past its end (a block rounded up to the device's) reads zeros. */
static int source_read(void *userdata, uint64_t off, uint8_t *buf, size_t len)
{
	Source *src = userdata;
	uint64_t size = pf_overlay_size(src->ov);
	size_t n = off >= size ? 0 : (size_t)MIN((uint64_t)len, size - off);

	if (n < len)
		memset(buf + n, 0, len - n);
	return n ? pf_overlay_read(src->ov, off, buf, n) : 0;
}

static int flush(PfTarget *t)
{
	if (fdatasync(t->fd) < 0)
		return pf_error_set(-errno, "cannot flush: %m");
	return 0;
}

/* Writes each range of e with zeros (table zeroed first) or from ov (written last). */
static int write_small(PfTarget *t, PfOverlay *ov, PfExtents *e, bool zero)
{
	_cleanup_(freep) uint8_t *buf = pf_stream_alloc(PF_STREAM_CHUNK_BYTES);
	Source src = { .ov = ov };
	int r;

	if (!buf)
		return -ENOMEM;
	if (zero)
		memset(buf, 0, PF_STREAM_CHUNK_BYTES);
	for (size_t i = 0; i < e->n; i++) {
		uint64_t pos = e->items[i].start_bytes;
		uint64_t end = pos + e->items[i].length_bytes;

		while (pos < end) {
			size_t n = (size_t)MIN((uint64_t)PF_STREAM_CHUNK_BYTES, end - pos);

			if (!zero) {
				r = source_read(&src, pos, buf, n);
				if (r < 0)
					return r;
			}
			r = pf_pwrite_all(t->fd, buf, n, pos);
			if (r < 0)
				return r;
			pos += n;
		}
	}
	return 0;
}

/*
 * Takes out of body what the card already holds (written while the image was decoded,
 * cmd/cold.c): the base image's bytes, which stay right where the overlay did not change
 * them. What it changed is written again, in the card's whole blocks.
 */
static int skip_written(PfTarget *t, PfOverlay *ov, PfExtents *body)
{
	_cleanup_(pf_extents_done) PfExtents changed = { 0 }, keep = { 0 }, rest = { 0 };
	const PfExtents *c = pf_overlay_changed(ov);
	uint64_t align = pf_target_align(t);
	int r;

	if (t->written.n == 0)
		return 0;
	r = pf_extents_add_all(&changed, c, 0);
	if (r >= 0)
		r = pf_ranges_align(&changed, align, ALIGN_UP(pf_overlay_size(ov), align));
	if (r >= 0)
		r = pf_ranges_subtract(&t->written, &changed, &keep);
	if (r >= 0)
		r = pf_ranges_subtract(body, &keep, &rest);
	if (r < 0)
		return r;
	pf_extents_done(body);
	*body = rest;
	rest = (PfExtents){ 0 };
	return 0;
}

static int discard(PfTarget *t, PfExtents *ranges, PfWriteResult *res)
{
	_cleanup_(pf_extents_done) PfExtents free_space = { 0 };
	uint64_t align = pf_target_align(t);
	int r;

	r = pf_ranges_complement(ranges, t->info.size_bytes / align * align, &free_space);
	if (r < 0)
		return r;
	for (size_t i = 0; i < free_space.n; i++) {
		uint64_t range[2] = { free_space.items[i].start_bytes,
				      free_space.items[i].length_bytes };

		if (ioctl(t->fd, BLKDISCARD, range) < 0) {
			if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL) {
				res->discard_unsupported = true;
				return 0;
			}
			return pf_error_set(-errno, "discard at byte offset %" PRIu64 " failed: %m",
					    range[0]);
		}
		res->discarded_bytes += range[1];
	}
	return 0;
}

typedef struct Phase {
	const PfWriteOptions *o;
	const char *name;
} Phase;

static void phase_progress(void *userdata, uint64_t done, uint64_t total)
{
	const Phase *p = userdata;

	p->o->progress(p->o->progress_data, p->name, done, total);
}

/* A stream has no holes and no going back: every byte of the image, in order. */
static int write_stdout(PfStream *s, PfOverlay *ov, PfWriteResult *ret)
{
	_cleanup_(pf_extents_done) PfExtents whole = { 0 };
	int r;

	r = pf_extents_add(&whole, 0, pf_overlay_size(ov));
	if (r < 0)
		return r;
	ret->total_bytes = pf_overlay_size(ov);
	s->ranges = &whole;
	return pf_stream_run(s, &ret->done_bytes);
}

/* The ranges (holes elsewhere), then the size, then flushed. */
static int write_file(PfTarget *t, PfStream *s, PfOverlay *ov, PfExtents *ranges,
		      PfWriteResult *ret)
{
	int r;

	s->ranges = ranges;
	r = pf_stream_run(s, &ret->done_bytes);
	if (r >= 0 && ftruncate(t->fd, (off_t)pf_overlay_size(ov)) < 0)
		r = pf_error_set(-errno, "cannot set the size: %m");
	if (r >= 0)
		r = flush(t);
	return r;
}

/*
 * A card, all but its table: the table area zeroed first (and flushed), what is not written
 * discarded when asked, then the ranges outside the table that the card does not hold yet.
 */
static int write_block_body(PfTarget *t, PfStream *s, PfOverlay *ov, PfExtents *ranges,
			    PfExtents *table, const PfWriteOptions *opts, PfWriteResult *ret)
{
	_cleanup_(pf_extents_done) PfExtents body = { 0 };
	int r;

	pf_extents_normalize(table);
	r = write_small(t, ov, table, true);
	if (r >= 0)
		r = flush(t);
	if (r < 0)
		return r; /* the table may be half zeroed: it is no valid table either */
	ret->table_zeroed = true;
	if (opts->discard) {
		r = discard(t, ranges, ret);
		if (r < 0)
			return r;
	}
	r = pf_ranges_subtract(ranges, table, &body);
	if (r < 0)
		return r;
	r = skip_written(t, ov, &body);
	if (r < 0)
		return r;
	s->ranges = &body;
	r = pf_stream_run(s, &ret->done_bytes);
	if (r >= 0)
		r = flush(t);
	return r;
}

/* Everything else is on the card: now, and only now, the table. */
static int write_block_table(PfTarget *t, PfOverlay *ov, PfExtents *table, PfWriteResult *ret)
{
	int r;

	r = write_small(t, ov, table, false);
	if (r >= 0)
		r = flush(t);
	if (r >= 0) {
		/* The kernel sees the new partitions now (best effort: it refuses while
		 * something holds one of the old ones). */
		(void)ioctl(t->fd, BLKRRPART, 0);
		ret->table_zeroed = false;
		ret->done_bytes += pf_extents_total(table);
	}
	return r;
}

int pf_target_write(PfTarget *t, PfOverlay *ov, PfExtents *ranges, PfExtents *table,
		    const PfWriteOptions *opts, PfWriteResult *ret)
{
	Sink sink = { .t = t };
	Source src = { .ov = ov };
	Phase phase = { .o = opts, .name = "write" };
	PfStream s = {
		.read = source_read,
		.read_data = &src,
		.write = sink_write,
		.write_data = &sink,
		.progress = opts->progress ? phase_progress : NULL,
		.progress_data = &phase,
		.cancel = opts->cancel,
	};
	int r;

	*ret = (PfWriteResult){ .total_bytes = pf_extents_total(ranges) };

	switch (t->info.kind) {
	case PF_TARGET_STDOUT:
		r = write_stdout(&s, ov, ret);
		break;
	case PF_TARGET_FILE:
		r = write_file(t, &s, ov, ranges, ret);
		break;
	case PF_TARGET_BLOCK:
		r = write_block_body(t, &s, ov, ranges, table, opts, ret);
		if (r < 0)
			return r;
		r = write_block_table(t, ov, table, ret);
		break;
	default:
		return -EINVAL;
	}
	ret->written_bytes = sink.written;
	if (t->info.kind == PF_TARGET_BLOCK && r >= 0)
		ret->written_bytes += pf_extents_total(table) + pf_extents_total(&t->written);
	return r;
}

int pf_target_set_written(PfTarget *t, PfExtents *written)
{
	if (t->info.kind != PF_TARGET_BLOCK)
		return -EINVAL;
	pf_extents_done(&t->written);
	return pf_extents_add_all(&t->written, written, 0);
}

int pf_target_zero(PfTarget *t, PfExtents *table)
{
	int r;

	if (t->info.kind != PF_TARGET_BLOCK)
		return 0;
	r = write_small(t, NULL, table, true);
	return r < 0 ? r : flush(t);
}

int pf_target_commit(PfTarget *t)
{
	struct stat st;
	char mark[96];

	if (t->info.kind != PF_TARGET_FILE || !t->tmp)
		return 0;
	/* Marked as piflash's, so that the next run may replace it; best effort. */
	if (fstat(t->fd, &st) == 0) {
		output_mark_format(&st, mark, sizeof(mark));
		(void)fsetxattr(t->fd, OUTPUT_XATTR, mark, strlen(mark), 0);
	}
	if (rename(t->tmp, t->info.path) < 0)
		return pf_error_set(-errno, "cannot rename '%s' to '%s': %m", t->tmp, t->info.path);
	free(TAKE_PTR(t->tmp));
	/* The rename itself is made durable too. */
	pf_fsync_dir_of(t->info.path);
	return 0;
}

int pf_target_write_file(const char *path, PfOverlay *ov, PfExtents *ranges,
			 uint64_t *ret_written_bytes)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	PfTargetOptions o = { .input_fd = -1, .base_fd = -1 };
	PfWriteOptions wo = { 0 };
	PfWriteResult res;
	int r;

	r = pf_target_open(path, &o, &t);
	if (r < 0)
		return r;
	if (t->info.kind != PF_TARGET_FILE)
		return pf_error_set(-ENOTSUP, "is not a regular file");
	r = pf_target_write(t, ov, ranges, NULL, &wo, &res);
	if (r >= 0)
		r = pf_target_commit(t);
	if (r >= 0 && ret_written_bytes)
		*ret_written_bytes = res.written_bytes;
	return r;
}
