/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the whole-cluster commands share — `piflash batch` (one artifact per node) and
 * `piflash --all` (card after card): choosing the nodes of an inventory (--only, --exclude,
 * --shard K/N), and preparing one node's image as an overlay on the image opened once.
 */

#include <stddef.h>
#include <stdint.h>

#include "cmd/image.h"
#include "cmd/node.h"
#include "node/inventory.h"

typedef struct Selection {
	const char *only;    /* --only a,b,c or NULL */
	const char *exclude; /* --exclude a,b or NULL */
	unsigned shard_k;    /* --shard K/N: 1..N; 0 when not given */
	unsigned shard_n;
} Selection;

/* Parses "K/N" (1 <= K <= N <= 1000). Returns 0 or -EINVAL. */
int selection_parse_shard(const char *arg, Selection *s);

/*
 * The rows of inv that s selects, in inventory order, as indexes into inv->rows. A name in
 * --only or --exclude that is not in the inventory is a usage error (printed). Shards deal the
 * rows out in file order, row i (from 0) to slice i mod N + 1: the slices are disjoint, their
 * union is the whole inventory, their sizes differ by one at most, and nodes appended at the
 * end of the file never move the others. Returns an exit code.
 */
int selection_apply(const PfInventory *inv, const Selection *s, size_t **ret_rows, size_t *ret_n);

/*
 * The node options of a whole-cluster command override every row: refuses those that cannot
 * be the same for every node (--ip; --node). Prints the usage error; returns an exit code.
 */
int cluster_check_overrides(const NodeOptions *no, const char *cmd);

/* One node's image: an overlay of its own over the shared base, with the node applied. */
typedef struct NodeImage {
	Image img; /* src and table borrowed from the base; ov and tree its own */
	NodeBuild nb;
} NodeImage;

/*
 * Builds the node whose settings are in n->nb.cfg (node_settings()) on its own overlay over
 * base, applies its plan at time now and syncs the filesystems. Prints nothing: returns 0 or
 * -errno with a detail. Safe to call from several threads at once on the same base.
 */
int node_image_prepare(const Image *base, const NodeOptions *no, const PfFlavorInfo *f, int64_t now,
		       NodeImage *n);
void node_image_done(NodeImage *n);

/* The hostname of a row. */
const char *row_hostname(const PfInventory *inv, const PfInventoryRow *row);
