/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Which bytes of an image must be written to reproduce it.
 *
 * For now: every byte of the base image that is not a hole (SEEK_DATA/SEEK_HOLE, so a
 * sparse cache file is walked in the time it takes to list its extents) plus every range
 * the overlay changed. Zero blocks inside those ranges are skipped again by the writer.
 */

#include "disk/overlay.h"
#include "util/extents.h"

/* Adds to ret the data ranges of base_fd (size_bytes long) and the overlay's changes. */
int pf_ranges_image_data(int base_fd, uint64_t size_bytes, PfOverlay *ov, PfExtents *ret);
