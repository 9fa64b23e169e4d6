/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the whole-cluster runs share — `piflash batch` (one artifact per node) and
 * `piflash --all` (card after card): choosing the nodes of an inventory (--only, --exclude,
 * --shard K/N), and one node's image, an overlay of its own on the image opened once.
 */

#include <stddef.h>
#include <stdint.h>

#include "build/image.h"
#include "build/node.h"
#include "node/inventory.h"

typedef struct PfSelection {
	const char *only;    /* --only a,b,c or NULL */
	const char *exclude; /* --exclude a,b or NULL */
	unsigned shard_k;    /* --shard K/N: 1..N; 0 when not given */
	unsigned shard_n;
} PfSelection;

/* Parses "K/N" (1 <= K <= N <= 1000). Returns 0 or -EINVAL. */
int pf_selection_parse_shard(const char *arg, PfSelection *s);

/*
 * The rows of inv that s selects, in inventory order, as indexes into inv->rows. A name in
 * --only or --exclude that is not in the inventory is -EINVAL with a detail. Shards deal the
 * rows out in file order, row i (from 0) to slice i mod N + 1: the slices are disjoint, their
 * union is the whole inventory, their sizes differ by one at most, and nodes appended at the
 * end of the file never move the others.
 */
int pf_selection_apply(const PfInventory *inv, const PfSelection *s, size_t **ret_rows,
		       size_t *ret_n);

/* The hostname of a row. */
const char *pf_row_hostname(const PfInventory *inv, const PfInventoryRow *row);

/*
 * Builds the node whose settings are in b->cfg (pf_node_settings()) on an image of its own
 * forked from base, applies its plan at time now and syncs the filesystems. Safe to call from
 * several threads at once on the same base.
 */
int pf_node_image(const PfImage *base, const PfNodeSpec *spec, const PfFlavorInfo *f, int64_t now,
		  PfImage **ret_img, PfNodeBuild *b);
