/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The plan: what piflash will change in an image to give it a node's identity.
 *
 * Settings (config.h) + the image's flavor (flavor.h) + templates (template.h) give a list of
 * file operations on named partitions — write (with mode, owner), mkdir, symlink, remove —
 * each with the reason it is there. Building a plan reads the image (to edit /etc/hosts,
 * dhcpcd.conf, ...) but changes nothing; applying it goes through the fs layer. A plan can
 * be printed (`piflash plan`, secrets masked) before anything is written.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "disk/ptable.h"
#include "fs/tree.h"
#include "node/config.h"
#include "node/flavor.h"

typedef enum PfOpKind {
	PF_OP_WRITE,
	PF_OP_MKDIR,
	PF_OP_SYMLINK,
	PF_OP_REMOVE,
} PfOpKind;

typedef struct PfOp {
	PfOpKind kind;
	unsigned part; /* partition number; 0: the booted system's view (root + fstab mounts) */
	char *path;
	uint8_t *data; /* PF_OP_WRITE */
	size_t size;
	char *target; /* PF_OP_SYMLINK */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	bool secret; /* content is never shown */
	char *why;
} PfOp;

typedef struct PfPlan {
	PfOp *ops;
	size_t n_ops;
	char **notes; /* what the plan decided and the user should know */
	size_t n_notes;
	char *instance_id; /* cloud-init flavors */
	char *user;	   /* the user the keys went to */
	/* The mechanisms the plan used, named as inspect names them (static strings). */
	const char *mech_net, *mech_user, *mech_ssh;
} PfPlan;

/* An SSH host key made for the node before its first boot (see node/hostkey.h). */
typedef struct PfPlanHostKey {
	const char *name;	 /* "ed25519": /etc/ssh/ssh_host_<name>_key{,.pub} */
	const char *private_key; /* the private key file (secret) */
	const char *public_line; /* the .pub file */
} PfPlanHostKey;

typedef struct PfPlanInput {
	const PfNodeConfig *cfg;
	const PfFlavorInfo *flavor;
	const char *template_dir;   /* --template-dir, or NULL */
	const char *user_data_path; /* --user-data FILE: the node's user-data template, or NULL */
	const char *instance_id;    /* NULL: made unique for this node and this run */
	/* Pre-generated host keys: installed in place of the image's, and nothing at first
	 * boot may replace them (cloud-init told, regenerate units disabled). */
	const PfPlanHostKey *host_keys;
	size_t n_host_keys;
	bool mask_secrets; /* render secrets as "********" (for display) */
} PfPlanInput;

/*
 * The instance-id of node hostname derived from a secret seed (--instance-id-seed):
 * "iid-piflash-HOSTNAME-" and 16 hex digits of HMAC-SHA256(seed, hostname). The same seed
 * gives the same id, so a rebuilt image is byte-identical and a card can be verified later.
 */
int pf_plan_instance_id_from_seed(const char *seed, const char *hostname, char **ret);

/* The name of the network handler f's decision selects ("none" without one): what inspect
 * prints and the plan uses. */
const char *pf_plan_net_handler(const PfFlavorInfo *f);

/* True for a template variable piflash sets itself, which --set and inventory columns may not
 * name. */
bool pf_plan_var_reserved(const char *key);

int pf_plan_build(PfTree *tree, const PfPtable *t, const PfPlanInput *in, PfPlan **ret);
PfPlan *pf_plan_free(PfPlan *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfPlan *, pf_plan_free);

/* The filesystem and the path inside it that op names in tree (its partition, or the booted
 * system's view; a written file's path followed through symlinks). Returns 0, or -errno. */
int pf_plan_op_resolve(PfTree *tree, const PfPtable *t, const PfOp *op, PfFs **ret_fs,
		       char **ret_inner);

/* Applies every operation; the first failure stops it, with a detail naming the operation. */
int pf_plan_apply(PfTree *tree, const PfPtable *t, const PfPlan *p, int64_t now);

/* The plan as JSON (content of non-secret text files included). */
json_object *pf_plan_to_json(const PfPlan *p);

const char *pf_op_kind_name(PfOpKind k);
