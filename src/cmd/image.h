/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What every subcommand that reads an image does first: open the source, read its partition
 * table, put an overlay on top and see the filesystems as one tree. Errors are reported
 * here, once, naming the image.
 */

#include "disk/overlay.h"
#include "disk/ptable.h"
#include "disk/source.h"
#include "fs/tree.h"

typedef struct Image {
	const char *path;
	PfSource *src;
	PfPtable *table;
	PfOverlay *ov;
	PfTree *tree;
} Image;

/*
 * Opens path: a file, an http(s):// URL (downloaded into the cache, with progress on
 * stderr as output_progress_mode says) or "-" (standard input). On failure prints the
 * error and returns a negative errno.
 */
int image_open(Image *img, const char *path, const PfSourceOptions *so);

/* The option every command that opens an image takes: --sha256 HEX. */
#define IMAGE_OPTION_SHA256 0x0f00

/* Handles --sha256 arg for cmd: stores it in so. Returns PF_EXIT_OK or a usage error. */
int image_option_sha256(PfSourceOptions *so, const char *cmd, const char *arg);

void image_close(Image *img);

/*
 * Parses "PART:/path" (PART a partition number or label) or "/path" (the booted system's
 * view: root filesystem plus fstab mounts) and resolves it (following links in all
 * components, and in the last if follow_last). Prints the error on failure.
 */
int image_lookup(Image *img, const char *spec, bool follow_last, const PfPartition **ret_part,
		 PfFs **ret_fs, char **ret_path);
