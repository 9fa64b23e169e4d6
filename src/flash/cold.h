/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Writing a card while its image is still being decoded (the first card of a new release,
 * straight from the download).
 *
 * The decoder fills the cache file in order and reports how far it got
 * (PfSourceOptions.decoded); a writer thread follows it, copying every block of the image
 * that is not zero (the data ranges of the sparse cache file, SEEK_DATA) to the card as soon
 * as it is decoded. What the image's filesystems use is only known once their metadata is in,
 * and what a node changes only once the whole image is open, so the writer does not wait for
 * either: it writes the decoded image as it is, and pf_target_write() later writes only what
 * is left — the ranges that matter which were zero in the image (not written yet) or changed
 * by the overlay, then the partition table — and verifies the whole as usual.
 *
 * The card's first PF_COLD_HOLD_BYTES (the MBR and a primary GPT) are zeroed before the first
 * byte of image is written and not written by the writer, so a card whose decode or write
 * fails or is interrupted holds no partition table, as after a failed write.
 */

#include <stdint.h>

#include "flash/target.h"
#include "util/extents.h"

/* Zeroed first, and left to pf_target_write(): the table and what precedes the partitions. */
#define PF_COLD_HOLD_BYTES (UINT64_C(1024) * 1024)

typedef struct PfColdWriter PfColdWriter;

/*
 * Prepares to write an image of size_bytes to the block device t as it is decoded. Nothing
 * is written until the first pf_cold_decoded(). Returns 0 or -errno.
 */
int pf_cold_new(PfTarget *t, uint64_t size_bytes, PfColdWriter **ret);

/*
 * The decoder's report: every byte below done_bytes of the image can be read from fd (the
 * cache file being filled; dup'd on the first call). Wakes the writer. Never fails: an error
 * of the writer is returned by pf_cold_finish(), decoding goes on to complete the cache.
 */
int pf_cold_decoded(PfColdWriter *w, int fd, uint64_t done_bytes);

/* True once the writer has touched the card (its table area zeroed). */
bool pf_cold_started(PfColdWriter *w);

/*
 * After a complete decode: waits until the writer has written everything, and adds the ranges
 * now on the card to ret_written (for pf_target_set_written()). Returns 0, or the writer's
 * first error with its detail.
 */
int pf_cold_finish(PfColdWriter *w, PfExtents *ret_written);

/* Stops the writer (after its current chunk) and frees. Accepts NULL. */
PfColdWriter *pf_cold_free(PfColdWriter *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfColdWriter *, pf_cold_free);
