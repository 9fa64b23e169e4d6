/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Putting a prepared image (base + overlay) on a target — an image file, a card, standard
 * output — and reading it back: which ranges matter for that target, opening the target with
 * every safety check, and the order that keeps a card safe: write (the partition table
 * last), verify, zero the table again if the card does not hold what was written, commit.
 * Nothing prints: the result says how far it got.
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "build/image.h"
#include "flash/ranges.h"
#include "flash/target.h"
#include "flash/verify.h"

/*
 * The ranges of img that matter; aligned for t (a card takes whole blocks, past the image's
 * end zeros; a file stops at its size), or not aligned when t is NULL.
 */
int pf_image_ranges(PfImage *img, PfTarget *t, PfRanges *ret);

/*
 * Opens target for img with pf_target_open()'s checks: never the input image or the file it
 * is read from, and a card at least as large as what the image needs. -EPERM for a refusal.
 */
int pf_image_target_open(PfImage *img, const char *target, bool force, PfTarget **ret);

typedef struct PfFlashOptions {
	bool discard;	/* BLKDISCARD what is not written */
	bool no_verify; /* do not read back */
	void (*progress)(void *userdata, const char *phase, uint64_t done_bytes,
			 uint64_t total_bytes);
	void *progress_data;
	const volatile sig_atomic_t *cancel;
} PfFlashOptions;

typedef enum PfFlashStep {
	PF_FLASH_WRITE,
	PF_FLASH_VERIFY,
	PF_FLASH_COMMIT,
	PF_FLASH_DONE,
} PfFlashStep;

typedef struct PfFlashResult {
	PfFlashStep step; /* where it stopped; PF_FLASH_DONE: written, verified, committed */
	PfWriteResult write;
	PfVerifyResult verify;
	bool verified;		 /* read back (not for standard output or with no_verify) */
	bool table_zeroed_again; /* a card that differs has its table zeroed again */
} PfFlashResult;

/*
 * Writes ranges (pf_image_ranges() for t) of img to t, verifies and commits. Returns 0 when
 * it could go through every step — then look at ret->verify.differing_bytes: a card that
 * differs is left with its table zeroed — or -ECANCELED or -errno with a detail, ret->step
 * saying which step failed. *ret is filled in every case.
 *
 * Debug seam: with PIFLASH_DEBUG_RANGES=FILE in the environment, the ranges written go to
 * FILE first ("START LENGTH" in bytes, one a line); scripts/bench.sh uses it to time plain dd
 * over the same bytes.
 */
int pf_image_flash(PfImage *img, PfTarget *t, PfRanges *ranges, const PfFlashOptions *o,
		   PfFlashResult *ret);

/*
 * The first card from a fresh download (flash/cold.h): whether image can be written to target
 * while it is decoded, and if so target opened and checked. It is when target is a block
 * device at least as large as the whole decoded image (read from the .xz index), image an .xz
 * not in the cache, and the cache in use (so). *ret_t stays NULL otherwise. The detail of a
 * failure does not name target.
 */
int pf_cold_target_open(const char *image, const char *target, const PfSourceOptions *so,
			bool force, PfTarget **ret_t, uint64_t *ret_size);

/*
 * That card written while the image is decoded: the writer (flash/cold.h) started on the
 * target pf_cold_target_open() gave, and hooked into the decoder.
 */
typedef struct PfColdRun PfColdRun;

/*
 * Takes t (freed on failure too) for an image of size bytes, prepares the writer and sets
 * so->decoded so that pf_image_open() feeds it. When *cancel becomes non-zero the decode
 * stops with -ECANCELED. The detail of a failure does not name the target.
 */
int pf_cold_run_start(PfTarget *t, uint64_t size, PfSourceOptions *so,
		      const volatile sig_atomic_t *cancel, PfColdRun **ret);

/*
 * After the decode: waits for the writer, and hands the target back (*ret_t), knowing what is
 * on it already, for pf_image_flash() to write what is left.
 */
int pf_cold_run_finish(PfColdRun *c, PfTarget **ret_t);

/* Stops the writer. True when it had touched a card that was not handed back: that card's
 * table is left zeroed, and it holds no valid image. */
bool pf_cold_run_abandon(PfColdRun *c);

/* Frees (the writer stopped, the target closed if still held). Accepts NULL. */
PfColdRun *pf_cold_run_free(PfColdRun *c);
