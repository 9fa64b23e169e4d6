/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * One node, from what the operator asked for to an applied plan: its settings (an inventory
 * row, overridden by options), the image's flavor, its host keys and instance-id, the plan
 * built on an image, and the plan applied. The main job, plan, verify, batch and --all all
 * build a node through here. Nothing prints: failures return -errno with a detail.
 */

#include <stdbool.h>
#include <stdint.h>

#include "build/image.h"
#include "node/config.h"
#include "node/flavor.h"
#include "node/hostkey.h"
#include "node/inventory.h"
#include "node/plan.h"
#include "node/runvalues.h"

/* One setting as given: key as pf_node_config_set() names it, the option that gave it. */
typedef struct PfNodeSetting {
	const char *key;
	const char *value;
	const char *option; /* "--ip", "--set" */
} PfNodeSetting;

/* What the operator asked for a node (or, in a whole-cluster run, for every node). */
typedef struct PfNodeSpec {
	const char *node;      /* --node: a hostname, or a row of the inventory */
	const char *inventory; /* path */
	const char *flavor;    /* forced flavor name (checked by pf_flavor_from_name()) */
	const char *network;   /* forced network stack name */
	const char *template_dir;
	const char *user_data;
	bool ssh_password;
	bool no_login;
	bool host_keys;
	const char *instance_id_seed;  /* NULL for none */
	const PfNodeSetting *settings; /* override the row, in order */
	size_t n_settings;
	/* For verify (node/runvalues.h): build the probe plan (instance-id ending in
	 * PF_RUN_PROBE_SUFFIX), or use the values read back from a card where the seed would
	 * decide. */
	bool run_probe;
	const PfRunValues *run;
} PfNodeSpec;

/* True if spec asks for a node at all (an option of a node was given). */
bool pf_node_spec_given(const PfNodeSpec *spec);

/* Host key types made with --host-keys. */
#define PF_NODE_HOST_KEYS_MAX 1

/* A node made ready: its settings, the image's flavor, the plan and its host keys. */
typedef struct PfNodeBuild {
	PfNodeConfig cfg;
	const PfFlavorInfo *flavor;
	PfFlavorInfo *own_flavor; /* when pf_node_prepare() detected it */
	PfPlan *plan;
	PfHostKey host_keys[PF_NODE_HOST_KEYS_MAX];
	size_t n_host_keys;
} PfNodeBuild;

void pf_node_build_done(PfNodeBuild *b);

/* The image's flavor, detected, or as spec forces it (names already checked). */
int pf_node_flavor(PfImage *img, const PfNodeSpec *spec, PfFlavorInfo **ret);

/*
 * The node's settings: from row of inv when given, else spec->node is the hostname; the
 * settings of spec override the row.
 */
int pf_node_settings(const PfNodeSpec *spec, const PfInventory *inv, const PfInventoryRow *row,
		     PfNodeConfig *ret);

/*
 * Builds the node whose settings are in b->cfg (pf_node_settings()): its host keys and its
 * plan on img, whose flavor is f.
 */
int pf_node_build(PfImage *img, const PfNodeSpec *spec, const PfFlavorInfo *f, bool mask_secrets,
		  PfNodeBuild *b);

/*
 * Plans the node of row (secrets masked) and throws the plan away: what fails here would
 * fail the node later, so a run writing cards one after the other can refuse before the
 * first.
 */
int pf_node_check(PfImage *img, const PfNodeSpec *spec, const PfFlavorInfo *f,
		  const PfInventory *inv, const PfInventoryRow *row);

/* spec->node's row of spec->inventory (loaded into *ret_inv); *ret_row NULL without one. */
int pf_node_row(const PfNodeSpec *spec, PfInventory **ret_inv, const PfInventoryRow **ret_row);

/* Applies b's plan to img with time stamp now. */
int pf_node_apply(PfImage *img, const PfNodeBuild *b, int64_t now);

/*
 * For verify without the write's seed or SOURCE_DATE_EPOCH (node/runvalues.h): what that run
 * chose by itself, read from card (the target, opened as an image) at the places probe (the
 * node built with spec.run_probe) writes. seeded: the seed decides the instance-id and host
 * keys, so only the time stamp is kept. Returns 0 (values not found left out) or -ENOMEM.
 */
int pf_node_read_run_values(PfImage *card, const PfNodeBuild *probe, bool seeded, PfRunValues *ret);

/*
 * The time stamp of the file at spec (pf_image_lookup()) in card, where the write put an
 * --add file: into ret->now when the file is there. Returns 0, or -errno with a detail naming
 * the image when spec cannot be looked up.
 */
int pf_run_values_from_file(PfImage *card, const char *spec, PfRunValues *ret);
