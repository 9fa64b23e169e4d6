/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Where a prepared image goes. For now: a regular file, written sparse (holes where the
 * result is zero) under a temporary name in the same directory and renamed into place only
 * when complete, so OUT.img is never a half-written image. A target that is the input image
 * or its cache file (same device and inode, however it is named) is refused.
 */

#include <stdint.h>

#include "disk/overlay.h"
#include "util/extents.h"

typedef struct PfTargetCheck {
	int input_fd; /* the image as given (raw image or compressed file) */
	int base_fd;  /* what is read: the raw image or its cache file */
} PfTargetCheck;

/*
 * Refuses (-EEXIST with a detail, a safety refusal) a path that is the input or its cache,
 * and (-ENOTSUP) anything that is not a regular file or a new name.
 */
int pf_target_check_file(const char *path, const PfTargetCheck *check);

/*
 * Writes the image (base + overlay, size pf_overlay_size()) to path: the given ranges are
 * copied, all-zero 4 KiB blocks and everything outside the ranges left as holes.
 * Returns 0 or -errno with a detail naming the offset that failed.
 */
int pf_target_write_file(const char *path, PfOverlay *ov, PfExtents *ranges,
			 uint64_t *ret_written_bytes);
