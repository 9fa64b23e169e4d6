/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The node options shared by the main job, `piflash plan` and `piflash verify`: who the node
 * is (--node, --inventory, and the settings that override its row), which flavor and
 * templates to use; and the step that turns them into a plan for an opened image.
 */

#include <getopt.h>
#include <stdbool.h>

#include "build/node.h"
#include "cmd/image.h"

#define NODE_SETTINGS_MAX 256

typedef struct NodeOptions {
	PfNodeSpec spec; /* what the core builds; spec.settings is settings[] */
	PfNodeSetting settings[NODE_SETTINGS_MAX];
	const char *known_hosts; /* --known-hosts FILE */
	/* The seed (spec.instance_id_seed), from --instance-id-seed-file,
	 * PIFLASH_INSTANCE_ID_SEED or (with a warning) --instance-id-seed; NULL for none.
	 * Owned, wiped by node_options_done(). */
	char *seed;
	bool seed_option; /* given by an option (not the environment) */
} NodeOptions;

/* Option codes start here so they do not clash with a command's own. */
#define NODE_OPTION_BASE 0x1000

/* Handles option c (>= NODE_OPTION_BASE). Returns 0, or a usage error exit code. */
int node_option_parse(NodeOptions *no, int c, const char *arg);

/*
 * After the options are parsed: takes the seed from PIFLASH_INSTANCE_ID_SEED when no option
 * gave one. Prints errors; returns an exit code.
 */
int node_options_finish(NodeOptions *no);

/* The time stamp of everything a run writes: SOURCE_DATE_EPOCH, or now. Prints a bad
 * SOURCE_DATE_EPOCH; returns an exit code. */
int node_now(int64_t *ret);

/* Frees what parsing allocated (the seed wiped first). */
void node_options_done(NodeOptions *no);

/* True if any node option was given. */
bool node_options_given(const NodeOptions *no);

/*
 * Builds a command's option table: its own options followed by the node options.
 * Returns a malloc'd array.
 */
struct option *node_merge_options(const struct option *own);
/* The same without the node options named in except (NULL-terminated; NULL for none). */
struct option *node_merge_options_except(const struct option *own, const char *const *except);

/* Prints the help of the node options that are in table (cmd/help.h). */
void node_options_help_print(const struct option *table);

/*
 * The image's flavor, detected or as --flavor forces it. Prints errors; returns an exit
 * code.
 */
int node_flavor(PfImage *img, const NodeOptions *no, PfFlavorInfo **ret);

/*
 * For one node (--node, with --inventory or not): loads the inventory, detects the flavor and
 * builds the node. Prints errors; returns an exit code (PF_EXIT_OK with *ret filled).
 */
int node_plan(PfImage *img, const NodeOptions *no, bool mask_secrets, PfNodeBuild *ret);

/*
 * The node options of a whole-cluster command override every row: refuses those that cannot
 * be the same for every node (--ip; --node). Prints the usage error; returns an exit code.
 */
int node_options_check_cluster(const NodeOptions *no, const char *cmd);
