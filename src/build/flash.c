/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build/flash.h"
#include "disk/xz.h"
#include "flash/cold.h"
#include "flash/stream.h"
#include "util/error.h"
#include "util/strutil.h"

int pf_image_ranges(PfImage *img, PfTarget *t, PfRanges *ret)
{
	uint64_t align, limit;
	int r;

	r = pf_ranges_compute(pf_image_overlay(img), pf_source_fd(pf_image_source(img)),
			      pf_image_table(img), pf_image_tree(img), ret);
	if (r < 0)
		return pf_error_prefix(r, "cannot list the ranges to write");
	if (!t)
		return 0;
	align = pf_target_align(t);
	limit = pf_overlay_size(pf_image_overlay(img));
	if (pf_target_info(t)->kind == PF_TARGET_BLOCK)
		limit = ALIGN_UP(limit, align);
	r = pf_ranges_align(&ret->all, align, limit);
	if (r >= 0)
		r = pf_ranges_align(&ret->table, align, limit);
	if (r < 0)
		return pf_error_prefix(r, "cannot align the ranges");
	return 0;
}

int pf_image_target_open(PfImage *img, const char *target, bool force, PfTarget **ret)
{
	_cleanup_(pf_ranges_done) PfRanges ranges = { 0 };
	_cleanup_(closep) int in_fd = -1;
	PfSource *src = pf_image_source(img);
	PfTargetOptions to = { .force = force, .base_fd = pf_source_fd(src) };
	struct stat st;
	int r;

	/* The file the image came from (a URL's download in the cache; none for stdin). */
	if (pf_source_input_path(src))
		in_fd = open(pf_source_input_path(src), O_RDONLY | O_CLOEXEC);
	to.input_fd = in_fd;
	/* Only a card needs to know how much of it the image needs. */
	if (!streq(target, "-") && stat(target, &st) == 0 && S_ISBLK(st.st_mode)) {
		r = pf_image_ranges(img, NULL, &ranges);
		if (r < 0)
			return pf_error_prefix(r, "'%s'", pf_image_path(img));
		to.need_bytes = ranges.need_bytes;
	}
	r = pf_target_open(target, &to, ret);
	if (r < 0)
		return pf_error_prefix(r, "'%s'", target);
	return 0;
}

/* Reads back; a card that differs gets its table zeroed again, so it boots nothing. */
static int flash_verify(PfImage *img, PfTarget *t, PfRanges *ranges, const PfFlashOptions *o,
			PfFlashResult *res)
{
	PfVerifyOptions vo = {
		.progress = o->progress,
		.progress_data = o->progress_data,
		.cancel = o->cancel,
	};
	int r;

	res->step = PF_FLASH_VERIFY;
	r = pf_verify(t, pf_image_overlay(img), &ranges->all, &vo, &res->verify);
	if (o->progress)
		o->progress(o->progress_data, NULL, 0, 0);
	if (r < 0)
		return r;
	res->verified = true;
	if (res->verify.differing_bytes > 0 && pf_target_info(t)->kind == PF_TARGET_BLOCK)
		res->table_zeroed_again = pf_target_zero(t, &ranges->table) >= 0;
	return 0;
}

/* PIFLASH_DEBUG_RANGES=FILE: the ranges about to be written, for scripts/bench.sh. */
static void debug_ranges(const PfExtents *e)
{
	const char *path = getenv("PIFLASH_DEBUG_RANGES");
	FILE *f;

	if (!path || !*path)
		return;
	f = fopen(path, "we");
	if (!f)
		return;
	for (size_t i = 0; i < e->n; i++)
		fprintf(f, "%" PRIu64 " %" PRIu64 "\n", e->items[i].start_bytes,
			e->items[i].length_bytes);
	fclose(f);
}

int pf_image_flash(PfImage *img, PfTarget *t, PfRanges *ranges, const PfFlashOptions *o,
		   PfFlashResult *res)
{
	PfWriteOptions wo = {
		.discard = o->discard,
		.cancel = o->cancel,
		.progress = o->progress,
		.progress_data = o->progress_data,
	};
	int r;

	*res = (PfFlashResult){ .step = PF_FLASH_WRITE };
	debug_ranges(&ranges->all);
	r = pf_target_write(t, pf_image_overlay(img), &ranges->all, &ranges->table, &wo,
			    &res->write);
	if (o->progress)
		o->progress(o->progress_data, NULL, 0, 0);
	if (r < 0)
		return r;
	if (pf_target_info(t)->kind != PF_TARGET_STDOUT && !o->no_verify) {
		r = flash_verify(img, t, ranges, o, res);
		if (r < 0 || res->verify.differing_bytes > 0)
			return r;
	}
	res->step = PF_FLASH_COMMIT;
	r = pf_target_commit(t);
	if (r < 0)
		return r;
	res->step = PF_FLASH_DONE;
	return 0;
}

/* The decoded size of image if it is an .xz whose index says so, else 0. */
static uint64_t xz_size(const char *image)
{
	_cleanup_(closep) int fd = -1;
	uint8_t head[6];
	PfXzInfo info;

	fd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    pf_source_detect(head, sizeof(head)) != PF_SOURCE_XZ)
		return 0;
	if (pf_xz_info(fd, &info) < 0 || info.size_bytes > PF_SOURCE_MAX_BYTES)
		return 0;
	return info.size_bytes;
}

int pf_cold_target_open(const char *image, const char *target, const PfSourceOptions *so,
			bool force, PfTarget **ret_t, uint64_t *ret_size)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	_cleanup_(closep) int in_fd = -1;
	PfTargetOptions to = { .force = force, .base_fd = -1 };
	struct stat st;
	uint64_t size;
	int r;

	*ret_t = NULL;
	if (so->no_cache || streq(target, "-") || stat(target, &st) < 0 || !S_ISBLK(st.st_mode))
		return 0;
	size = xz_size(image);
	if (size == 0 || pf_source_cached(image, so) != 0)
		return 0;
	in_fd = open(image, O_RDONLY | O_CLOEXEC);
	to.input_fd = in_fd;
	r = pf_target_open(target, &to, &t);
	if (r < 0)
		return r;
	/* Smaller than the image, a card may still hold what the image uses: the ordinary way
	 * tells, once the image is open. */
	if (ALIGN_UP(size, MAX(pf_target_align(t), (uint64_t)PF_STREAM_ALIGN)) >
	    pf_target_info(t)->size_bytes)
		return 0;
	*ret_t = TAKE_PTR(t);
	*ret_size = size;
	return 0;
}

struct PfColdRun {
	PfTarget *t; /* until handed back */
	PfColdWriter *w;
	const volatile sig_atomic_t *cancel;
};

/* The decoder's hook: every byte below done is in fd. */
static int cold_decoded(int fd, uint64_t done, void *userdata)
{
	PfColdRun *c = userdata;

	if (c->cancel && *c->cancel)
		return pf_error_set(-ECANCELED, "interrupted after %" PRIu64 " bytes of image",
				    done);
	return pf_cold_decoded(c->w, fd, done);
}

int pf_cold_run_start(PfTarget *t, uint64_t size, PfSourceOptions *so,
		      const volatile sig_atomic_t *cancel, PfColdRun **ret)
{
	PfColdRun *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		pf_target_free(t);
		return -ENOMEM;
	}
	*c = (PfColdRun){ .t = t, .cancel = cancel };
	r = pf_cold_new(t, size, &c->w);
	if (r < 0) {
		pf_cold_run_free(c);
		return r;
	}
	so->decoded = cold_decoded;
	so->decoded_data = c;
	*ret = c;
	return 0;
}

int pf_cold_run_finish(PfColdRun *c, PfTarget **ret_t)
{
	_cleanup_(pf_extents_done) PfExtents written = { 0 };
	int r;

	r = pf_cold_finish(c->w, &written);
	if (r >= 0)
		r = pf_target_set_written(c->t, &written);
	if (r < 0)
		return r;
	*ret_t = TAKE_PTR(c->t);
	return 0;
}

bool pf_cold_run_abandon(PfColdRun *c)
{
	bool started = c->w && pf_cold_started(c->w);

	c->w = pf_cold_free(c->w);
	return started && c->t;
}

PfColdRun *pf_cold_run_free(PfColdRun *c)
{
	if (!c)
		return NULL;
	pf_cold_free(c->w);
	pf_target_free(c->t);
	free(c);
	return NULL;
}
