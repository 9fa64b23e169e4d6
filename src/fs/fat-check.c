/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT driver's check before the first write: a volume marked dirty, or with two
 * directory entries sharing clusters, is not written (see fat_check_links()).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fat-volume.h"
#include "util/error.h"
#include "util/strutil.h"

/* A directory entry with a first cluster, as found by the cross-link scan. */
typedef struct LinkOwner {
	uint32_t cluster;
	char *path;
	bool is_dir;
} LinkOwner;

typedef struct LinkScan {
	LinkOwner *owners; /* every entry with a cluster: the directories are scanned in turn */
	size_t n, allocated;
	uint32_t *owner_of; /* per cluster: 1 + the index of the entry whose chain holds it */
} LinkScan;

static void link_scan_done(LinkScan *ls)
{
	for (size_t i = 0; i < ls->n; i++)
		free(ls->owners[i].path);
	free(ls->owners);
	free(ls->owner_of);
}

/* The error for a cluster found in the chains of two entries. */
static int link_scan_crossed(const LinkScan *ls, uint32_t c, const char *path)
{
	const LinkOwner *o = &ls->owners[ls->owner_of[c] - 1];

	if (o->cluster == c)
		return CORRUPT("'%s' and '%s' are cross-linked: both start at cluster %u", o->path,
			       path, c);
	return CORRUPT("'%s' and '%s' are cross-linked at cluster %u", o->path, path, c);
}

/*
 * Adds an entry (taking path) and marks the clusters of its chain as its own; a cluster
 * already another entry's is a cross-link. Anything else wrong with the chain (a loop, a
 * free or bad cluster, a link out of the data area) just ends the walk here: it is an
 * error naming the file when the chain is used.
 */
static int link_scan_add(PfFat *f, LinkScan *ls, uint32_t first, char *path, bool is_dir)
{
	uint32_t c = first, mine;

	if (ls->n == ls->allocated) {
		size_t na = ls->allocated ? ls->allocated * 2 : 64;
		LinkOwner *p = reallocarray(ls->owners, na, sizeof(*p));

		if (!p) {
			free(path);
			return oom();
		}
		ls->owners = p;
		ls->allocated = na;
	}
	ls->owners[ls->n++] = (LinkOwner){ .cluster = first, .path = path, .is_dir = is_dir };
	mine = (uint32_t)ls->n;
	for (uint32_t steps = 0; steps <= f->g.cluster_count; steps++) {
		uint32_t next;

		if (ls->owner_of[c] == mine)
			break;
		if (ls->owner_of[c] != 0)
			return link_scan_crossed(ls, c, path);
		ls->owner_of[c] = mine;
		next = fat_get(f, c);
		if (fat_is_eoc(f, next) || next == 0 || fat_is_bad(f, next) || !cluster_ok(f, next))
			break;
		c = next;
	}
	return 0;
}

/* Checks the entries of the directory starting at first (0: the root), adding each to ls. */
static int link_scan_dir(PfFat *f, LinkScan *ls, uint32_t first, const char *dir_path)
{
	FatDir d;
	FatEntry *e;
	size_t pos = 0;
	int r;

	e = malloc(sizeof(*e));
	if (!e)
		return oom();
	r = fat_dir_load(f, first, dir_path, &d);
	if (r < 0) {
		free(e);
		return r;
	}
	while (r == 0 && fat_dir_next(&d, &pos, e)) {
		uint32_t c = fat_sde_cluster(f, e->sde);
		char *path;

		/* An empty file has no cluster; a cluster outside the data area is an error
		 * of its own when that entry is used, and shares nothing. */
		if (c == 0 || !cluster_ok(f, c))
			continue;
		if (asprintf(&path, "%s/%s", streq(dir_path, "/") ? "" : dir_path, e->name) < 0) {
			r = oom();
			break;
		}
		if (strlen(path) > PF_PATH_MAX) {
			r = pf_error_set(
				-ENAMETOOLONG,
				"FAT: '%.64s...' is longer than %u bytes: cannot check the "
				"volume for cross-links before writing",
				path, PF_PATH_MAX);
			free(path);
			break;
		}
		if (ls->owner_of[c] != 0) {
			r = link_scan_crossed(ls, c, path);
			free(path);
			break;
		}
		if (f->indeg[c] != 0) {
			uint32_t from = 0;

			for (uint32_t k = 2; k <= f->g.cluster_count + 1 && !from; k++)
				if (fat_get(f, k) == c)
					from = k;
			r = CORRUPT("'%s' is cross-linked: its first cluster %u is also the next "
				    "cluster of %u in another chain",
				    path, c, from);
			free(path);
			break;
		}
		r = link_scan_add(f, ls, c, path, e->sde[11] & ATTR_DIR);
	}
	fat_dir_done(&d);
	free(e);
	return r;
}

/*
 * The FAT links counted at open (indeg) catch chains that merge or run into a first
 * cluster, whenever such a chain is walked. They cannot see two directory entries that
 * start at the same cluster: writing one of them would free the clusters and reuse them,
 * emptying the other, perhaps a directory. So before the first write every directory is
 * read once: each cluster that begins a chain must be named by exactly one entry (the
 * FAT32 root's by none) and be the next cluster of no FAT entry, and no cluster may be in
 * the chains of two entries. Each directory is entered once, through the only entry
 * allowed to name it, and each chain walk ends within cluster_count steps, so the scan
 * ends whatever the image holds. Chains no entry names (lost clusters) are never freed or
 * reused by piflash; one running into a file's chain is caught when that chain is walked.
 */
static int fat_check_links(PfFat *f)
{
	LinkScan ls = { 0 };
	int r;

	ls.owner_of = calloc((size_t)f->g.cluster_count + 2, sizeof(uint32_t));
	if (!ls.owner_of)
		return oom();
	if (f->g.fat_bits == 32 && cluster_ok(f, f->g.root_cluster)) {
		char *root = strdup("/");

		r = root ? link_scan_add(f, &ls, f->g.root_cluster, root, false) : oom();
		if (r < 0)
			goto out;
		if (f->indeg[f->g.root_cluster] != 0) {
			r = CORRUPT("the root directory is cross-linked: its first cluster %u is "
				    "the next cluster of another chain",
				    f->g.root_cluster);
			goto out;
		}
	}
	r = link_scan_dir(f, &ls, 0, "/");
	/* Owners grow while directories are scanned: each directory added is scanned once. */
	for (size_t i = 0; r == 0 && i < ls.n; i++)
		if (ls.owners[i].is_dir)
			r = link_scan_dir(f, &ls, ls.owners[i].cluster, ls.owners[i].path);
out:
	link_scan_done(&ls);
	return r;
}

int fat_check_writable(PfFat *f)
{
	int r;

	if (f->dirty)
		return pf_error_set(-EUCLEAN,
				    "FAT: the volume is marked dirty (%s); run fsck.fat on it "
				    "before piflash changes it",
				    f->dirty_reason);
	if (f->links_state < 0)
		return pf_error_set(f->links_state, "%s", f->links_error);
	if (f->links_state > 0)
		return 0;
	r = fat_check_links(f);
	if (r == -ENOMEM)
		return r; /* not a property of the volume: try again next time */
	if (r < 0) {
		snprintf(f->links_error, sizeof(f->links_error),
			 "%s; run fsck.fat on the volume "
			 "before piflash changes it",
			 pf_error_message(r));
		f->links_state = r;
		return pf_error_set(r, "%s", f->links_error);
	}
	f->links_state = 1;
	return 0;
}
