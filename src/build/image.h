/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * An opened image: its source (raw, or decompressed into the cache), its partition table, an
 * overlay that takes every edit, and the filesystems seen as one tree. Open it once; fork an
 * overlay of its own for each node, so nodes built from one base never see each other's
 * edits. Nothing here prints: failures return -errno with a detail (util/error.h) that names
 * what failed but not the image, which the caller names.
 */

#include <stdbool.h>

#include "disk/overlay.h"
#include "disk/ptable.h"
#include "disk/source.h"
#include "fs/tree.h"

typedef struct PfImage PfImage;

/* Opens path: a file, an http(s):// URL (downloaded into the cache) or "-" (standard input). */
int pf_image_open(const char *path, const PfSourceOptions *so, PfImage **ret);

/*
 * An image over the same source and table as base with an empty overlay of its own. base
 * must outlive it. Safe to call from several threads at once on one base.
 */
int pf_image_fork(const PfImage *base, PfImage **ret);

PfImage *pf_image_free(PfImage *img);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfImage *, pf_image_free);

const char *pf_image_path(const PfImage *img);
PfSource *pf_image_source(const PfImage *img);
PfPtable *pf_image_table(const PfImage *img);
PfOverlay *pf_image_overlay(const PfImage *img);
PfTree *pf_image_tree(const PfImage *img);

/*
 * Parses "PART:/path" (PART a partition number or label) or "/path" (the booted system's
 * view: root filesystem plus fstab mounts) and resolves it (following links in all
 * components, and in the last if follow_last). The detail of a failure names the image.
 */
int pf_image_lookup(PfImage *img, const char *spec, bool follow_last, const PfPartition **ret_part,
		    PfFs **ret_fs, char **ret_path);

/*
 * Puts data at spec (as pf_image_lookup() takes it), creating missing directories (0755,
 * root) with attr's time. *ret_part and *ret_path (may be NULL; the path malloc'd) say where
 * it landed. The detail of a failure names the image.
 */
int pf_image_put_file(PfImage *img, const char *spec, const void *data, size_t size,
		      const PfAttr *attr, const PfPartition **ret_part, char **ret_path);

/* Writes every filesystem's pending state to the overlay. */
int pf_image_sync(PfImage *img);
