/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The last step of the main job: putting the prepared image (base + overlay) on its target
 * — an image file, a block device (a card), or standard output — and verifying it. Split in
 * two so that every safety check runs before the image is customised, let alone written:
 * output_check() opens the target (exclusively, for a card), and the caller keeps it open
 * until output_write() has finished with it, so nothing can take the card in between.
 */

#include <stdbool.h>

#include "build/image.h"
#include "flash/target.h"
#include "util/progress.h"
#include "util/signal.h"

typedef struct OutputOptions {
	bool yes;	/* --yes: no confirmation question for a block device */
	bool force;	/* --force: allow a partition node or a non-removable disk */
	bool discard;	/* --discard: BLKDISCARD what is not written */
	bool no_verify; /* --no-verify */
	PfProgressMode progress;
} OutputOptions;

/*
 * Checks the target before anything else happens: not the input or its cache, not mounted,
 * a whole removable disk, large enough, opened exclusively; shows a card and asks for
 * confirmation (on a TTY; --yes otherwise). Prints the reason and returns an exit code
 * (PF_EXIT_SAFETY for a refusal) on failure, PF_EXIT_OK otherwise, with *ret the opened target.
 */
int output_check(PfImage *img, const char *target, const OutputOptions *o, PfTarget **ret);

/*
 * Writes the ranges that matter and verifies them (unless o->no_verify). Prints what it did
 * or what failed; returns an exit code: PF_EXIT_FAILURE for an I/O error, PF_EXIT_VERIFY for a
 * mismatch, PF_EXIT_INTERRUPTED after SIGINT/SIGTERM. t is target as output_check() (or
 * cold_handover()) opened it; the caller closes it.
 */
int output_write(PfImage *img, PfTarget *t, const char *target, const OutputOptions *o);

/* ---- the pieces, for commands that write many cards (piflash --all) ---- */

/* Progress of a phase ("write", "verify"); phase NULL: the phase ended. */
typedef void (*OutputProgressFn)(void *userdata, const char *phase, uint64_t done_bytes,
				 uint64_t total_bytes);

/* Opens and checks target as output_check() does, without the confirmation question. Prints
 * the reason of a refusal; returns an exit code. */
int output_open(PfImage *img, const char *target, const OutputOptions *o, PfTarget **ret);

/* For a target opened before the image (cmd/cold.h): the question output_check() asks. */
int output_confirm(const char *image, const PfTargetInfo *i, const OutputOptions *o);

/* Asks the question (printf-style) on stderr and reads the answer from stdin: true for "y",
 * "Y" or "yes". The caller checks that stdin is a terminal. */
bool output_ask(const char *fmt, ...) _printf_(1, 2);

/* "Target /dev/sdb: sdb, usb, 29.7 GiB, model '...', serial '...'" */
void output_describe(const PfTargetInfo *i);

/*
 * Writes the image to the opened target t, verifies (unless o->no_verify) and commits.
 * Progress goes to progress (may be NULL). Does not touch signal handlers: callers wrap it
 * in pf_signals_catch()/pf_signals_restore(). Prints; returns an exit code.
 * *ret_written (may be NULL) gets the bytes written.
 */
int output_flash(PfImage *img, PfTarget *t, const OutputOptions *o, OutputProgressFn progress,
		 void *progress_data, uint64_t *ret_written);

/*
 * A phase outside output_write() (the download of an image), shown as --progress says:
 * output_progress_mode is PROGRESS_AUTO unless a command with --progress sets it. phase
 * NULL ends the display's line. total_bytes 0: unknown.
 */
extern PfProgressMode output_progress_mode;
void output_progress_phase(const char *phase, uint64_t done_bytes, uint64_t total_bytes);

/*
 * `piflash verify IMAGE TARGET`: compares target (a card or an image file) with the image
 * as prepared (base + overlay) over the ranges output_write() would write. Returns
 * PF_EXIT_OK, PF_EXIT_VERIFY naming the first differing byte offset and how many bytes
 * differ, or PF_EXIT_FAILURE.
 */
int output_verify(PfImage *img, const char *target, const OutputOptions *o);
