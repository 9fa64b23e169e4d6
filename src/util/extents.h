/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A set of byte ranges, kept sorted and merged.
 *
 * Used for "what the overlay changed", "what a filesystem uses" and, later, "what must be
 * written to the card". Adding is amortised O(1) when ranges arrive in order (the common
 * case: allocation bitmaps are walked in order) and O(n) otherwise; pf_extents_normalize()
 * sorts and merges in O(n log n) after a batch of unordered adds.
 */

#include <stddef.h>
#include <stdint.h>

typedef struct PfExtent {
	uint64_t start_bytes;
	uint64_t length_bytes;
} PfExtent;

typedef struct PfExtents {
	PfExtent *items;
	size_t n;
	size_t allocated;
	int sorted; /* items sorted and non-overlapping */
} PfExtents;

/* Adds [start, start+length). Returns 0 or -ENOMEM / -EOVERFLOW. */
int pf_extents_add(PfExtents *e, uint64_t start_bytes, uint64_t length_bytes);

/* Adds every range of src shifted by offset_bytes. */
int pf_extents_add_all(PfExtents *e, const PfExtents *src, uint64_t offset_bytes);

/* Sorts and merges overlapping or touching ranges. */
void pf_extents_normalize(PfExtents *e);

/* Total bytes covered (normalizes first). */
uint64_t pf_extents_total(PfExtents *e);

/* Returns true if [start, start+length) overlaps any range (normalizes first). */
int pf_extents_overlaps(PfExtents *e, uint64_t start_bytes, uint64_t length_bytes);

void pf_extents_done(PfExtents *e);
