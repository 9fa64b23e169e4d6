/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The node options shared by the main job, `piflash plan` and `piflash verify`: who the node
 * is (--node, --inventory, and the settings that override its row), which flavor and
 * templates to use; and the step that turns them into a plan for an opened image.
 */

#include <getopt.h>
#include <stdbool.h>

#include "cmd/image.h"
#include "node/config.h"
#include "node/flavor.h"
#include "node/hostkey.h"
#include "node/inventory.h"
#include "node/plan.h"
#include "node/runvalues.h"

#define NODE_SETTINGS_MAX 256

typedef struct NodeSetting {
	const char *key;   /* as pf_node_config_set() names it */
	const char *value; /* from argv */
	const char *option;
	bool owned; /* key allocated (--set KEY=VALUE) */
} NodeSetting;

typedef struct NodeOptions {
	const char *node;
	const char *inventory;
	const char *flavor;
	const char *network; /* --network */
	const char *template_dir;
	const char *user_data;
	bool ssh_password;
	bool no_login;		 /* --no-login */
	bool host_keys;		 /* --host-keys */
	const char *known_hosts; /* --known-hosts FILE */
	/* The seed, from --instance-id-seed-file, PIFLASH_INSTANCE_ID_SEED or (with a warning)
	 * --instance-id-seed; NULL for none. Owned, wiped by node_options_done(). */
	char *instance_id_seed;
	bool seed_option; /* given by an option (not the environment) */
	NodeSetting settings[NODE_SETTINGS_MAX];
	size_t n_settings;
	/* For verify (node/runvalues.h): build the probe plan (instance-id ending in
	 * PF_RUN_PROBE_SUFFIX), or use the values read back from a card where the seed would
	 * decide. Not options: set by the command. */
	bool run_probe;
	const PfRunValues *run;
} NodeOptions;

/* Option codes start here so they do not clash with a command's own. */
#define NODE_OPTION_BASE 0x1000

/* The long options, to be appended to a command's own table. */
extern const struct option node_long_options[];
extern const size_t node_n_long_options;

/* The help text for the node options. */
extern const char node_options_help[];

/* Handles option c (>= NODE_OPTION_BASE). Returns 0, or a usage error exit code. */
int node_option_parse(NodeOptions *no, int c, const char *arg);

/*
 * After the options are parsed: takes the seed from PIFLASH_INSTANCE_ID_SEED when no option
 * gave one. Prints errors; returns an exit code.
 */
int node_options_finish(NodeOptions *no);

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

/* Prints the entries of node_options_help whose option is in table (cmd/help.h). */
void node_options_help_print(const struct option *table);

/* Host key types made with --host-keys. */
#define NODE_HOST_KEYS_MAX 1

/* A node made ready: its settings, the image's flavor, the plan and its host keys. */
typedef struct NodeBuild {
	PfNodeConfig cfg;
	const PfFlavorInfo *flavor;
	PfFlavorInfo *own_flavor; /* when node_plan() detected it */
	PfPlan *plan;
	PfHostKey host_keys[NODE_HOST_KEYS_MAX];
	size_t n_host_keys;
} NodeBuild;

void node_build_done(NodeBuild *b);

/*
 * The image's flavor, detected or as --flavor forces it. Prints errors; returns an exit
 * code.
 */
int node_flavor(Image *img, const NodeOptions *no, PfFlavorInfo **ret);

/*
 * The node's settings: from row of inv when given, else --node is the hostname; the options
 * override the row. Prints nothing: returns 0 or -errno with a detail.
 */
int node_settings(const NodeOptions *no, const PfInventory *inv, const PfInventoryRow *row,
		  PfNodeConfig *ret);

/*
 * Builds the node whose settings are in b->cfg (node_settings()): its host keys
 * (--host-keys) and its plan on img, whose flavor is f. Prints nothing: returns 0 or -errno
 * with a detail, for callers that report many nodes.
 */
int node_build(Image *img, const NodeOptions *no, const PfFlavorInfo *f, bool mask_secrets,
	       NodeBuild *b);

/*
 * Plans the node of row (node_settings() and node_build() on img, secrets masked) and throws
 * the plan away: what fails here would fail the node later, so a run writing cards one after
 * the other can refuse before the first. Prints nothing: returns 0 or -errno with a detail.
 */
int node_check(Image *img, const NodeOptions *no, const PfFlavorInfo *f, const PfInventory *inv,
	       const PfInventoryRow *row);

/*
 * For one node (--node, with --inventory or not): loads the inventory, detects the flavor and
 * builds the node. Prints errors; returns an exit code (PF_EXIT_OK with *ret filled).
 */
int node_plan(Image *img, const NodeOptions *no, bool mask_secrets, NodeBuild *ret);

/*
 * --known-hosts FILE: puts the node's host keys into the operator's known_hosts, under its
 * names (hostname, FQDN, static address), replacing the lines that named any of them before
 * (as `ssh-keygen -R` would; hashed and @marker lines are left alone). Through a temporary
 * file and a rename. Returns 0 or -errno with a detail.
 */
int node_known_hosts_update(const char *path, const NodeBuild *b);

/* Prints a plan for people. */
void node_plan_print(const PfPlan *p, const PfFlavorInfo *f, const PfNodeConfig *cfg);
