/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The last step of the main job: putting the prepared image (base + overlay) on its target
 * — an image file, a block device (a card), or standard output — and verifying it. Split in
 * two so that every safety check runs before the image is customised, let alone written.
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
	bool yes;       /* --yes: no confirmation question for a block device */
	bool force;     /* --force: allow a partition node or a non-removable disk */
	bool discard;   /* --discard: BLKDISCARD what is not written */
	bool no_verify; /* --no-verify */
	ProgressMode progress;
} OutputOptions;

/*
 * Checks the target before anything else happens: not the input or its cache, not mounted,
 * large enough, ... Prints the reason and returns an exit code (PF_EXIT_SAFETY for a
 * refusal) on failure, PF_EXIT_OK otherwise.
 */
int output_check(Image *img, const char *target, const OutputOptions *o);

/* Writes (and verifies) the image. Prints what it did or what failed; returns an exit code. */
int output_write(Image *img, const char *target, const OutputOptions *o);
