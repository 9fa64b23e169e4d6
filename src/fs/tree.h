/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The image's filesystems as the booted system would see them: one tree.
 *
 * A PfTree holds an overlay and the partition table, opens each partition's filesystem when
 * first asked, finds the root filesystem (the partition whose filesystem has /etc, preferring
 * the usual root labels) and reads its /etc/fstab to learn where the other partitions are
 * mounted (by LABEL=, UUID=, PARTUUID=, /dev/mmcblk0pN, /dev/sdXN or /dev/disk/by-*).
 *
 * Symlinks are resolved inside the image, never on the host: an absolute target is taken
 * relative to the root filesystem, and a path that crosses a mount point continues in the
 * partition mounted there — so HypriotOS's /var/lib/cloud/seed/nocloud-net/user-data ->
 * /boot/user-data leads to /user-data on the FAT partition. Resolution is bounded (at most
 * PF_TREE_MAX_LINKS links followed).
 */

#include <stdbool.h>

#include "disk/overlay.h"
#include "disk/ptable.h"
#include "fs/fs.h"

#define PF_TREE_MAX_LINKS 40
#define PF_TREE_MAX_MOUNTS 32

typedef struct PfTree PfTree;

typedef struct PfMount {
	const PfPartition *part;
	char *where; /* mount point, "/" for the root */
} PfMount;

/* Creates a tree over ov with the partitions of t (both must outlive the tree). */
int pf_tree_new(PfOverlay *ov, const PfPtable *t, PfTree **ret);
/* Frees without syncing. Accepts NULL; returns NULL. */
PfTree *pf_tree_free(PfTree *tree);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfTree *, pf_tree_free);

/* The filesystem of partition p, opened on first use. */
int pf_tree_fs(PfTree *tree, const PfPartition *p, PfFs **ret);

/* Finds the root partition and reads its fstab (done once, on first need). The root is NULL
 * when no partition has a filesystem with /etc. */
int pf_tree_mounts(PfTree *tree, const PfPartition **ret_root, const PfMount **ret_mounts,
		   size_t *ret_n);

/*
 * Resolves path (absolute) on partition part — or, with part NULL, in the booted system's
 * namespace (root filesystem plus fstab mounts) — following symlinks in every component and,
 * if follow_last, in the last one too. A missing component ends resolution: the rest of the
 * path is appended literally, so a path to be created resolves too. Returns the partition
 * and the path within its filesystem. -ELOOP past PF_TREE_MAX_LINKS links.
 */
int pf_tree_resolve(PfTree *tree, const PfPartition *part, const char *path, bool follow_last,
		    const PfPartition **ret_part, char **ret_path);

/*
 * Reads the file at path in the booted system's view (links followed) into a NUL-terminated
 * buffer of at most max_bytes. -ENOENT if it does not exist.
 */
int pf_tree_read_file(PfTree *tree, const char *path, size_t max_bytes, char **ret,
		      size_t *ret_len);

/*
 * Stats path in the booted system's view, following its last link if follow; returns (each
 * optional) its filesystem, the path inside it and the stat. -ENOENT if it does not exist.
 */
int pf_tree_stat(PfTree *tree, const char *path, bool follow, PfFs **ret_fs, char **ret_inner,
		 PfStat *ret_st);

/* Lists the directory at path (booted view, links followed). -ENOTDIR for another kind. */
int pf_tree_list(PfTree *tree, const char *path, PfDirent **ret, size_t *ret_n);

/* Syncs every filesystem opened so far. */
int pf_tree_sync(PfTree *tree);
