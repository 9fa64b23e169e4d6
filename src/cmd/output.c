/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "build/flash.h"
#include "util/progress.h"
#include "cmd/output.h"
#include "flash/ranges.h"
#include "flash/target.h"
#include "flash/verify.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- progress ---------------------------------------------------------------------------- */

/* The last JSON line of a run says how it ended (util/progress.h). */
static void progress_finish(PfProgress *p, const char *target, int exit_code, uint64_t written)
{
	const char *result = exit_code == PF_EXIT_OK		? "ok"
			     : exit_code == PF_EXIT_VERIFY	? "verify-failed"
			     : exit_code == PF_EXIT_INTERRUPTED ? "interrupted"
								: "failed";

	pf_progress_finish(p, target, result, exit_code, written);
}

/* ---- ranges ------------------------------------------------------------------------------ */

static int compute_ranges(PfImage *img, PfTarget *t, PfRanges *ret)
{
	int r = pf_image_ranges(img, t, ret);

	if (r < 0)
		return log_error_errno(r, "'%s'", pf_image_path(img));
	return 0;
}

/* ---- check ------------------------------------------------------------------------------- */

void output_describe(const PfTargetInfo *i)
{
	char size[32];

	log_info("Target %s: %s%s%s, %s, model '%s', serial '%s'", i->path, i->disk,
		 i->transport ? ", " : "", i->transport ?: "",
		 pf_format_bytes(size, sizeof(size), i->size_bytes), i->model ?: "unknown",
		 i->serial ?: "unknown");
}

bool output_ask(const char *fmt, ...)
{
	char answer[16] = "";
	va_list ap;

	/* The question is asked even with -q: it is not information, it is consent. */
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	return fgets(answer, sizeof(answer), stdin) &&
	       (streq(answer, "y\n") || streq(answer, "yes\n") || streq(answer, "Y\n"));
}

int output_confirm(const char *image, const PfTargetInfo *i, const OutputOptions *o)
{
	if (o->yes)
		return PF_EXIT_OK;
	if (!isatty(STDIN_FILENO)) {
		log_error("'%s': not asking for confirmation without a terminal; add --yes to "
			  "write it",
			  i->path);
		return PF_EXIT_SAFETY;
	}
	if (!output_ask("Write '%s' to %s (%s)? Everything on it will be lost. [y/N] ", image,
			i->path, i->model ?: i->disk)) {
		log_error("'%s': not confirmed, nothing written", i->path);
		return PF_EXIT_SAFETY;
	}
	return PF_EXIT_OK;
}

/* A card given as IMAGE and an existing file as TARGET: most likely the two swapped. */
static bool swapped(const char *image, const char *target)
{
	struct stat a, b;

	return stat(image, &a) == 0 && S_ISBLK(a.st_mode) && stat(target, &b) == 0 &&
	       S_ISREG(b.st_mode);
}

int output_open(PfImage *img, const char *target, const OutputOptions *o, PfTarget **ret)
{
	int r = pf_image_target_open(img, target, o->force, ret);

	if (r < 0) {
		log_error_detail(r);
		if (r == -EPERM && swapped(pf_image_path(img), target))
			log_error("'%s' is a block device and '%s' a file: IMAGE comes first "
				  "(piflash [OPTIONS] IMAGE TARGET)",
				  pf_image_path(img), target);
		return r == -EPERM ? PF_EXIT_SAFETY : PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

int output_check(PfImage *img, const char *target, const OutputOptions *o, PfTarget **ret)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	int r;

	r = output_open(img, target, o, &t);
	if (r != PF_EXIT_OK)
		return r;
	if (pf_target_info(t)->kind == PF_TARGET_BLOCK) {
		output_describe(pf_target_info(t));
		r = output_confirm(pf_image_path(img), pf_target_info(t), o);
		if (r != PF_EXIT_OK)
			return r;
	}
	*ret = TAKE_PTR(t);
	return PF_EXIT_OK;
}

/* ---- write and verify -------------------------------------------------------------------- */

/* What a read-back found; returns an exit code. */
static int verify_report(PfImage *img, const char *target, int r, const PfVerifyResult *res,
			 const PfExtents *ranges)
{
	char a[32];

	if (r == -ECANCELED) {
		log_error("'%s': interrupted while verifying", target);
		return PF_EXIT_INTERRUPTED;
	}
	if (r < 0) {
		log_error_errno(r, "'%s': cannot verify", target);
		return PF_EXIT_FAILURE;
	}
	if (res->differing_bytes > 0) {
		log_error("'%s': verification failed: %" PRIu64 " byte%s differ%s from '%s', the "
			  "first at byte offset %" PRIu64 "%s",
			  target, res->differing_bytes, res->differing_bytes == 1 ? "" : "s",
			  res->differing_bytes == 1 ? "s" : "", pf_image_path(img),
			  res->first_difference, res->short_at ? " (the target ends there)" : "");
		return PF_EXIT_VERIFY;
	}
	log_info("Verified %s: %s in %zu range%s read back%s, identical", target,
		 pf_format_bytes(a, sizeof(a), res->compared_bytes), ranges->n,
		 ranges->n == 1 ? "" : "s", res->direct ? " (O_DIRECT)" : "");
	return PF_EXIT_OK;
}

/* The partitions without a filesystem piflash reads: copied whole. */
static void say_whole(PfImage *img, const PfRanges *ranges)
{
	const PfPtable *table = pf_image_table(img);

	for (size_t i = 0; i < ranges->n_whole; i++) {
		const PfPartition *part = NULL;

		for (size_t k = 0; k < table->n_parts; k++)
			if (table->parts[k].number == ranges->whole[i])
				part = &table->parts[k];
		log_info("Partition %u%s%s%s: copied whole (no filesystem piflash can read)",
			 ranges->whole[i], part && part->fstype ? " (" : "",
			 part && part->fstype ? part->fstype : "", part && part->fstype ? ")" : "");
	}
}

/* A write that failed or was interrupted. */
static int write_failed(const PfTargetInfo *info, int r, const PfWriteResult *res)
{
	char a[32], b[32];

	if (r == -ECANCELED)
		log_error("'%s': interrupted after %s of %s", info->path,
			  pf_format_bytes(a, sizeof(a), res->done_bytes),
			  pf_format_bytes(b, sizeof(b), res->total_bytes));
	else
		log_error_errno(r, "'%s'", info->path);
	if (res->table_zeroed)
		log_error("'%s': its partition table is left zeroed: it holds no valid image",
			  info->path);
	else if (info->kind == PF_TARGET_FILE)
		log_error("'%s': not written", info->path);
	return r == -ECANCELED ? PF_EXIT_INTERRUPTED : PF_EXIT_FAILURE;
}

/* What pf_image_flash() did, step by step; returns an exit code. */
static int flash_report(PfImage *img, PfTarget *t, const OutputOptions *o, int r,
			const PfFlashResult *res, const PfRanges *ranges, double start)
{
	const PfTargetInfo *info = pf_target_info(t);
	char a[32], b[32], c[32];
	double el;
	int ret;

	if (res->step == PF_FLASH_WRITE)
		return write_failed(info, r, &res->write);
	if (res->write.discard_unsupported)
		log_info("%s does not support discard, ignoring --discard", info->path);
	else if (res->write.discarded_bytes)
		log_info("Discarded %s not written",
			 pf_format_bytes(a, sizeof(a), res->write.discarded_bytes));
	if (res->step == PF_FLASH_VERIFY || res->verified) {
		ret = verify_report(img, info->path, res->step == PF_FLASH_VERIFY ? r : 0,
				    &res->verify, &ranges->all);
		if (ret == PF_EXIT_VERIFY && res->table_zeroed_again)
			log_error("'%s': its partition table is zeroed again: it holds no valid "
				  "image",
				  info->path);
		if (ret != PF_EXIT_OK)
			return ret;
	}
	if (res->step == PF_FLASH_COMMIT) {
		log_error_errno(r, "'%s'", info->path);
		return PF_EXIT_FAILURE;
	}
	el = pf_monotonic_seconds() - start;
	log_info("Wrote %s: %s image, %s written in %.1f s (%s/s)%s", info->path,
		 pf_format_bytes(a, sizeof(a), pf_overlay_size(pf_image_overlay(img))),
		 pf_format_bytes(b, sizeof(b), res->write.written_bytes), el,
		 pf_format_bytes(c, sizeof(c),
				 (uint64_t)((double)res->write.done_bytes / MAX(el, 0.001))),
		 info->kind == PF_TARGET_STDOUT ? ""
		 : o->no_verify			? ", not verified"
						: ", verified");
	return PF_EXIT_OK;
}

int output_flash(PfImage *img, PfTarget *t, const OutputOptions *o, OutputProgressFn progress,
		 void *progress_data, uint64_t *ret_written)
{
	_cleanup_(pf_ranges_done) PfRanges ranges = { 0 };
	PfFlashOptions fo = {
		.discard = o->discard,
		.no_verify = o->no_verify,
		.cancel = pf_interrupt_flag(),
		.progress = progress,
		.progress_data = progress_data,
	};
	PfFlashResult res = { 0 };
	double start;
	int r;

	if (compute_ranges(img, t, &ranges) < 0)
		return PF_EXIT_FAILURE;
	say_whole(img, &ranges);
	start = pf_monotonic_seconds();
	r = pf_image_flash(img, t, &ranges, &fo, &res);
	if (ret_written)
		*ret_written = res.write.written_bytes;
	return flash_report(img, t, o, r, &res, &ranges, start);
}

int output_write(PfImage *img, PfTarget *t, const char *target, const OutputOptions *o)
{
	uint64_t written = 0;
	PfProgress p;
	int ret;

	pf_progress_init(&p, o->progress);
	pf_signals_catch();
	ret = output_flash(img, t, o, pf_progress_cb, &p, &written);
	progress_finish(&p, target, ret, written);
	pf_signals_restore();
	return ret;
}

int output_verify(PfImage *img, const char *target, const OutputOptions *o)
{
	_cleanup_(pf_ranges_done) PfRanges ranges = { 0 };
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	PfTargetOptions to = { .input_fd = -1, .base_fd = -1, .read_only = true };
	PfVerifyResult res = { 0 };
	PfProgress p;
	int r, ret;

	r = pf_target_open(target, &to, &t);
	if (r < 0) {
		log_error_errno(r, "'%s'", target);
		return PF_EXIT_FAILURE;
	}
	if (pf_target_info(t)->kind == PF_TARGET_STDOUT) {
		log_error("'-': standard output cannot be verified");
		return PF_EXIT_USAGE;
	}
	if (compute_ranges(img, t, &ranges) < 0)
		return PF_EXIT_FAILURE;
	pf_progress_init(&p, o->progress);
	pf_signals_catch();
	r = pf_verify(t, pf_image_overlay(img), &ranges.all,
		      &(PfVerifyOptions){ .progress = pf_progress_cb,
					  .progress_data = &p,
					  .cancel = pf_interrupt_flag() },
		      &res);
	pf_progress_end(&p);
	ret = verify_report(img, target, r, &res, &ranges.all);
	progress_finish(&p, target, ret, 0);
	pf_signals_restore();
	return ret;
}

/* ---- phases outside output_write() ------------------------------------------------------ */

PfProgressMode output_progress_mode = PF_PROGRESS_AUTO;

void output_progress_phase(const char *phase, uint64_t done_bytes, uint64_t total_bytes)
{
	static PfProgress p;
	static bool open;

	if (!phase) {
		if (open)
			pf_progress_end(&p);
		open = false;
		return;
	}
	if (!open)
		pf_progress_init(&p, output_progress_mode);
	open = true;
	pf_progress_update(&p, phase, done_bytes, total_bytes);
}
