/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The last step of the main job: putting the prepared image (base + overlay) on its target
 * — an image file, a block device (a card), or standard output — and verifying it. Split in
 * two so that every safety check runs before the image is customised, let alone written:
 * output_check() opens the target (exclusively, for a card) and keeps it open until
 * output_write() has finished with it, so nothing can take the card in between.
 *
 * Debug seam: with PIFLASH_DEBUG_RANGES=FILE in the environment, output_write() writes the
 * ranges it writes to FILE ("START LENGTH" in bytes, one a line); scripts/bench.sh uses it
 * to time plain dd over the same bytes.
 */

#include <stdbool.h>

#include "cmd/image.h"

typedef enum ProgressMode {
	PROGRESS_AUTO, /* a bar on a TTY, nothing otherwise */
	PROGRESS_BAR,
	PROGRESS_JSON, /* one JSON line per update on stderr */
	PROGRESS_NONE,
} ProgressMode;

typedef struct OutputOptions {
	bool yes;	/* --yes: no confirmation question for a block device */
	bool force;	/* --force: allow a partition node or a non-removable disk */
	bool discard;	/* --discard: BLKDISCARD what is not written */
	bool no_verify; /* --no-verify */
	ProgressMode progress;
} OutputOptions;

/*
 * Checks the target before anything else happens: not the input or its cache, not mounted,
 * a whole removable disk, large enough, opened exclusively; shows a card and asks for
 * confirmation (on a TTY; --yes otherwise). Prints the reason and returns an exit code
 * (PF_EXIT_SAFETY for a refusal) on failure, PF_EXIT_OK otherwise.
 */
int output_check(Image *img, const char *target, const OutputOptions *o);

/*
 * Writes the ranges that matter and verifies them (unless o->no_verify). Prints what it did
 * or what failed; returns an exit code: PF_EXIT_FAILURE for an I/O error, PF_EXIT_VERIFY for a
 * mismatch, PF_EXIT_INTERRUPTED after SIGINT/SIGTERM. Calls output_check() first if the
 * caller did not.
 */
int output_write(Image *img, const char *target, const OutputOptions *o);

/*
 * `piflash verify IMAGE TARGET`: compares target (a card or an image file) with the image
 * as prepared (base + overlay) over the ranges output_write() would write. Returns
 * PF_EXIT_OK, PF_EXIT_VERIFY naming the first differing byte offset and how many bytes
 * differ, or PF_EXIT_FAILURE.
 */
int output_verify(Image *img, const char *target, const OutputOptions *o);
