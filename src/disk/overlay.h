/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Copy-on-write overlay over a read-only base image.
 *
 * Every change piflash makes to an image lands here; the base (a raw image opened read-only,
 * or a decompressed cache file) is never written. Reads see the base with the overlay's pages
 * on top. Data is kept in 4 KiB pages copied from the base on first write; the exact byte
 * ranges written are tracked separately, so pf_overlay_changed() reports precisely what
 * changed (the flash code writes those ranges). Pages live in memory up to a limit and spill
 * to an unlinked temporary file past it, so memory stays bounded however much is written.
 *
 * An overlay is cheap to create: many nodes of a batch share one base with one overlay each.
 * The base is read with pread(), so several overlays on one base may be used from different
 * threads; a single overlay is not thread-safe.
 */

#include <stddef.h>
#include <stdint.h>

#include "util/extents.h"
#include "util/macros.h"

#define PF_OVERLAY_PAGE_BYTES 4096u
#define PF_OVERLAY_DEFAULT_MEMORY_BYTES (64u * 1024u * 1024u)

typedef struct PfOverlay PfOverlay;

/*
 * Creates an overlay over base_fd (dup'd: the caller keeps its own descriptor) of
 * size_bytes. Returns 0 and the overlay in *ret, or -errno.
 */
int pf_overlay_new(int base_fd, uint64_t size_bytes, PfOverlay **ret);

/* Frees the overlay and its spill file. Accepts NULL; returns NULL. */
PfOverlay *pf_overlay_free(PfOverlay *o);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfOverlay *, pf_overlay_free);

/* Limits the memory used for pages; pages beyond it go to a temporary file in $TMPDIR. */
void pf_overlay_set_memory_limit(PfOverlay *o, uint64_t bytes);

uint64_t pf_overlay_size(const PfOverlay *o);

/* Reads len bytes at offset. A read past the end is -EIO (with a detail). Returns 0 or -errno. */
int pf_overlay_read(PfOverlay *o, uint64_t offset_bytes, void *buf, size_t len);

/* Writes len bytes at offset into the overlay. Past the end is -ENOSPC. Returns 0 or -errno. */
int pf_overlay_write(PfOverlay *o, uint64_t offset_bytes, const void *buf, size_t len);

/* Returns the exact byte ranges written so far, sorted and merged (a pointer into the
 * overlay, valid until the next write). */
const PfExtents *pf_overlay_changed(PfOverlay *o);

/* Statistics: pages held, of which in memory. */
void pf_overlay_stats(const PfOverlay *o, uint64_t *ret_pages, uint64_t *ret_pages_in_memory);
