/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Reading a target back and comparing it with the image, range by range.
 *
 * The target is read bypassing the page cache, so what is compared is what the device (or
 * the file's filesystem) holds and not what piflash just handed the kernel: through O_DIRECT
 * on a second descriptor when the target takes it, else after POSIX_FADV_DONTNEED (and, on a
 * block device, BLKFLSBUF). The image side is read by the stream's reader thread while the
 * target is read and compared in its writer thread, so both reads overlap.
 *
 * A difference does not stop the comparison: every range is read, and the result says where
 * the first differing byte is and how many bytes differ in all.
 */

#include <signal.h>
#include <stdint.h>

#include "disk/overlay.h"
#include "flash/target.h"
#include "util/extents.h"

typedef struct PfVerifyOptions {
	void (*progress)(void *userdata, const char *phase, uint64_t done_bytes,
			 uint64_t total_bytes);
	void *progress_data;
	const volatile sig_atomic_t *cancel;
} PfVerifyOptions;

typedef struct PfVerifyResult {
	uint64_t compared_bytes;
	uint64_t differing_bytes;
	uint64_t first_difference; /* byte offset; meaningful when differing_bytes > 0 */
	uint64_t short_at; /* the target ended here, before the ranges did (0: it did not) */
	bool direct;	   /* read with O_DIRECT */
} PfVerifyResult;

/*
 * Compares ranges of ov (aligned to pf_target_align(t)) with target t. Returns 0 when it
 * could compare (look at ret->differing_bytes), -ECANCELED, or -errno with a detail naming
 * the byte offset that could not be read.
 */
int pf_verify(PfTarget *t, PfOverlay *ov, PfExtents *ranges, const PfVerifyOptions *o,
	      PfVerifyResult *ret);
