/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Which bytes of an image must be written to reproduce it on a target whose other bytes are
 * unknown (a used card) or zero (a new sparse file).
 *
 * The bytes that matter: the partition table structures (MBR, the chain of EBRs, both GPT
 * headers and both entry arrays), each filesystem's used blocks (metadata and allocated data,
 * from the fs driver's used-block map), every byte outside the partitions that is not zero
 * (boot code, firmware blobs kept before the first partition), and every range the overlay
 * changed. A partition whose filesystem piflash cannot open (none, unknown, damaged) is copied
 * whole. The result is then aligned to the target's block size, which may merge neighbours.
 *
 * The table structures are also returned on their own: on a card they are zeroed first and
 * written last, so an interrupted write never leaves a card that looks like a valid image.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/overlay.h"
#include "disk/ptable.h"
#include "fs/tree.h"
#include "util/extents.h"

/* Bound on the EBR chain walked (logical partitions of an MBR). */
#define PF_RANGES_MAX_EBRS 128u
/* Bound on a GPT entry array: 128 entries of 128 bytes is the usual 16 KiB. */
#define PF_RANGES_MAX_GPT_ARRAY_BYTES (1024u * 1024u)

typedef struct PfRanges {
	PfExtents all;	     /* every byte to write, table structures included */
	PfExtents table;     /* the partition table structures alone */
	uint64_t need_bytes; /* a target must be at least this large (last byte that matters) */
	unsigned *whole;     /* numbers of the partitions copied whole */
	size_t n_whole;
} PfRanges;

/*
 * Adds the partition table structures of the image on ov (sector_bytes per sector) to ret:
 * sector 0, the EBR chain of every extended partition, and for a GPT both headers and both
 * arrays. Structures that point outside the image are ignored (the table was validated by
 * ptable.c; this never trusts it more). Returns 0 or -errno.
 */
int pf_ranges_table(PfOverlay *ov, uint64_t sector_bytes, PfExtents *ret);

/*
 * Adds the ranges of [start, start+length) of ov that are not zero, at a granularity of
 * grain_bytes. base_fd (the overlay's base, or -1) lets holes of a sparse base be skipped
 * without reading them. Returns 0 or -errno.
 */
int pf_ranges_nonzero(PfOverlay *ov, int base_fd, uint64_t start_bytes, uint64_t length_bytes,
		      uint64_t grain_bytes, PfExtents *ret);

/*
 * Computes the ranges that matter of the image (ov over base_fd, partitions t, filesystems
 * through tree) into ret, which must be zero-initialised. Not aligned: see pf_ranges_align().
 * Returns 0 or -errno with a detail.
 */
int pf_ranges_compute(PfOverlay *ov, int base_fd, const PfPtable *t, PfTree *tree, PfRanges *ret);

/*
 * Rounds every range of e out to multiples of align_bytes (a power of two), clips them to
 * limit_bytes, and merges what then touches or overlaps. Returns 0 or -EINVAL.
 */
int pf_ranges_align(PfExtents *e, uint64_t align_bytes, uint64_t limit_bytes);

/* ret = a minus b (both are normalized first). ret must be zero-initialised. */
int pf_ranges_subtract(PfExtents *a, PfExtents *b, PfExtents *ret);

/* ret = [0, limit) minus e. ret must be zero-initialised. */
int pf_ranges_complement(PfExtents *e, uint64_t limit_bytes, PfExtents *ret);

void pf_ranges_done(PfRanges *r);

/* Adds to ret the data ranges of base_fd (SEEK_DATA/SEEK_HOLE) and the overlay's changes:
 * every byte of the image that may not be zero, without looking inside the filesystems. */
int pf_ranges_image_data(int base_fd, uint64_t size_bytes, PfOverlay *ov, PfExtents *ret);
