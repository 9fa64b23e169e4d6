/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Inside detection: the state one pf_flavor_detect() run carries from step to step, the
 * bounded readers of the booted system's files every step uses (detect-read.c), and the steps
 * themselves, one concern a file: the layout and os-release (detect-os.c), cloud-init
 * (detect-cloud.c) and its seed (detect-seed.c), the network stacks (detect-net.c), the
 * accounts (detect-users.c), the identity baked in (detect-identity.c). flavor.c runs them
 * in order. Not for use outside detection.
 */

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "fs/tree.h"
#include "node/detect.h"
#include "node/facts.h"
#include "node/passwd.h"

/* Bounds of what detection reads (bytes). */
#define SMALL_MAX (4u * 1024u)	      /* machine-id, rpi-issue, cmdline.txt */
#define TEXT_MAX (64u * 1024u)	      /* os-release, version.py, units, seed files */
#define CLOUD_CFG_MAX (1024u * 1024u) /* each cloud.cfg file */
#define ELF_FILE_MAX (16u * 1024u * 1024u)
#define CLOUD_CFG_D_MAX_FILES 128u
#define DIR_MAX_ENTRIES 1024u
#define UNITS_MAX 512u

/* cloud-init's configuration as read so far (later files win). */
typedef struct CloudCfg {
	bool users_set;
	bool modules_set[3], modules_ssh[3];
	PfCloudUser default_user; /* system_info.default_user */
	PfCloudUser list_user;	  /* the first named entry of users: */
	PfCloudUser seed_user;	  /* the first named entry of the seed's users: */
} CloudCfg;

typedef struct Ctx {
	PfTree *tree;
	const PfPtable *t;
	PfFlavorInfo *f;
	char *os_like, *hypriot;
	bool has_os_release;
	char **shells; /* NULL without /etc/shells */
	PfPasswd *pw;
	char *shadow;
	size_t shadow_len;
	CloudCfg cc;
	const char *cur_file; /* the cloud.cfg file being applied */
} Ctx;

#define evidence(c, ...) pf_flavor_add_evidence((c)->f, __VA_ARGS__)

/* ---- reading the image (detect-read.c) ---- */

/* A directory listing that frees itself. */
typedef struct Listing {
	PfDirent *d;
	size_t n;
} Listing;

void pf_detect_listing_done(Listing *l);

/* Errors of a lookup that mean "not there" for detection; the rest is noted and ignored. */
int pf_detect_absent(Ctx *c, int r, const char *path);
/* Where path of the booted system is (links followed, the last if follow): 0 or -ENOENT. */
int pf_detect_locate(Ctx *c, const char *path, bool follow, const PfPartition **ret_part,
		     PfFs **ret_fs, char **ret_inner, PfStat *ret_st);
bool pf_detect_exists(Ctx *c, const char *path);
bool pf_detect_is_file(Ctx *c, const char *path);
bool pf_detect_is_dir(Ctx *c, const char *path);
/* Reads inner on fs into a NUL-terminated buffer: 0, -ENOENT or -ENOMEM. */
int pf_detect_read_fs_text(Ctx *c, PfFs *fs, const char *inner, const char *what, size_t max,
			   char **ret, size_t *ret_len);
/* Reads a regular file of the booted system: 0, -ENOENT (also: not a regular file), -ENOMEM. */
int pf_detect_read_text(Ctx *c, const char *path, size_t max, char **ret, size_t *ret_len);
/* Lists a directory of the booted system (links followed): 0 or -ENOENT/-ENOMEM. */
int pf_detect_list_dir(Ctx *c, const char *path, PfDirent **ret, size_t *ret_n);
/* Names of a directory listing, sorted (a NULL-terminated strv, maybe empty). */
int pf_detect_sorted_names(PfDirent *d, size_t n, char ***ret);
/* "2:/dir" for a location. */
int pf_detect_format_location(const PfPartition *p, const char *dir, char **ret);
/* The directory part of an absolute path, "/" for a top-level name. */
char *pf_detect_dir_of(const char *path);

/* ---- the steps, in the order flavor.c runs them; each 0 or -ENOMEM (or -errno) ---- */

int pf_detect_layout(Ctx *c);
int pf_detect_os(Ctx *c);
int pf_detect_arch(Ctx *c);
int pf_detect_cloud_init_version(Ctx *c);
int pf_detect_cloud_cfg(Ctx *c);
int pf_detect_network(Ctx *c);
int pf_detect_seed(Ctx *c);
int pf_detect_cloud_user(Ctx *c);
int pf_detect_accounts(Ctx *c);
int pf_detect_identity(Ctx *c);

/* The first named entry of a users: list (the user a node's keys go to), into *ret. */
int pf_detect_first_list_user(yaml_document_t *doc, yaml_node_t *users, const char *from,
			      PfCloudUser *ret);
void pf_detect_cloud_cfg_done(CloudCfg *cc);

/* libyaml document API (aliases are never expanded). */
#define yscalar pf_yaml_scalar
#define ymap_get pf_yaml_map_get
#define ybool pf_yaml_bool
#define yaml_load pf_yaml_load
