/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The first card from a fresh download: `piflash IMAGE.xz /dev/sdX` when the image is not in
 * the cache yet writes the card while the image is decoded (flash/cold.h), instead of
 * decoding it all first. Everything else stays as it is: the image is opened from the cache
 * entry the decode completes, the node is planned and applied, and output_write() writes
 * what is left, the table last, and verifies.
 *
 * Used only where it cannot refuse what the ordinary way would accept: a block device at
 * least as large as the whole decoded image (read from the .xz index), an .xz not in the
 * cache, the cache in use. So the card is checked and the question asked before the image is
 * opened (the ordinary way opens the image first, to know how much of the card it needs).
 */

#include <stdbool.h>

#include "cmd/output.h"
#include "disk/source.h"

typedef struct Cold Cold;

/*
 * Decides, and if the card is to be written while decoding: opens and checks it, asks, and
 * hooks the writer into *so for image_open(). *ret stays NULL when the ordinary way is taken.
 * Prints what goes wrong; returns an exit code.
 */
int cold_begin(const char *image, const char *target, const OutputOptions *o, PfSourceOptions *so,
	       Cold **ret);

/*
 * Just before output_write(): waits for the writer to finish and hands the card back (*ret),
 * knowing what is on it already, for output_write(). Prints a failure; returns an exit code.
 */
int cold_handover(Cold *c, const char *target, PfTarget **ret);

/*
 * Ends the cold write whatever happened: ret is the run's exit code so far; after a failure
 * says that the card's table is left zeroed. Returns the exit code to use (130 when
 * interrupted). Accepts NULL.
 */
int cold_end(Cold **c, int ret);
