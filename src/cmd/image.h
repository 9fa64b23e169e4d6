/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What every subcommand that reads an image does first: open it (build/image.h), showing a
 * download's progress and reporting a failure once, naming the image; and the --sha256
 * option that goes with it.
 */

#include "build/image.h"
#include "disk/source.h"

/*
 * Opens path: a file, an http(s):// URL (downloaded into the cache, with progress on
 * stderr as output_progress_mode says) or "-" (standard input). On failure prints the
 * error and returns a negative errno.
 */
int image_load(const char *path, const PfSourceOptions *so, PfImage **ret);

/* The option every command that opens an image takes: --sha256 HEX. */
#define IMAGE_OPTION_SHA256 0x0f00

/* Handles --sha256 arg for cmd: stores it in so. Returns PF_EXIT_OK or a usage error. */
int image_option_sha256(PfSourceOptions *so, const char *cmd, const char *arg);
