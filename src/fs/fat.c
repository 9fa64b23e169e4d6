/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT driver: FAT12, FAT16 and FAT32 with VFAT long names, read and written in
 * userspace through the overlay, never mounted.
 *
 * The boot partition of a Pi image is FAT; piflash adds and replaces a handful of small
 * files there (user-data, network-config, ssh, config.txt). On open the boot sector is
 * validated against the partition and the whole FAT in use is cached in memory (at most
 * 64 MiB). Every chain walked is checked (inside the data area, no free or bad cluster, no
 * loop, no cross-link, long enough for the file), so a corrupt image is an error naming
 * the file, never a hang or a write somewhere wild. Before the first write every directory
 * is read once more, because two entries starting at the same cluster are a cross-link the
 * FAT alone does not show; a volume with one is not written at all (it can still be read).
 *
 * An operation plans before it writes: it finds the directory slots and counts the
 * clusters it needs for the data and for any directory growth, and fails with -ENOSPC
 * before a single byte changed. Then it writes the data clusters, the directory clusters
 * and, last, the FAT sectors it changed (to every FAT copy) and the FSInfo counters
 * (FAT32). FAT changes are journalled in memory, so an I/O error half way rolls the cache
 * back instead of leaving it out of step with the disk.
 *
 * Type rule (Linux and mtools): BPB_FATSz16 == 0 is FAT32 whatever the cluster count;
 * otherwise fewer than 4085 clusters is FAT12, else FAT16.
 * Names are UTF-8 on the API side and UTF-16 in long entries. A valid 8.3 name whose base
 * and extension are each in one case gets no long entry: lower case is recorded in the NT
 * case byte (0x08 base, 0x10 extension) as Windows NT, Linux and mtools read it. Any other
 * name gets long entries and a unique upper-case alias with a ~N tail. Lookup compares
 * ASCII letters regardless of case and everything else exactly, and matches the long name
 * or the 8.3 alias, as Linux vfat does.
 * FAT keeps no owner and no mode: stat reports uid 0, gid 0, 0755 (0555 with the read-only
 * attribute), the default of Linux vfat with umask 022, and size 0 for directories.
 * A volume marked dirty opens for reading; writes fail with -EUCLEAN (see fat.h).
 *
 * This file is the driver's glue (open, stat, list, used blocks, the ops table); the
 * other fat-*.c files hold one concern each, listed in fat-volume.h.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fat-volume.h"
#include "fs/fs-driver.h"
#include "util/error.h"
#include "util/strutil.h"

static bool fat_handles(const char *blkid_type)
{
	return streq(blkid_type, "vfat") || streq(blkid_type, "msdos") ||
	       streq(blkid_type, "fat") || streq(blkid_type, "fat12") ||
	       streq(blkid_type, "fat16") || streq(blkid_type, "fat32");
}

static void fat_close(void *priv)
{
	PfFat *f = priv;

	if (!f)
		return;
	free(f->fat);
	free(f->dirty_sectors);
	free(f->indeg);
	free(f->visited);
	free(f->undo);
	free(f);
}

/* Caches the FAT in use whole (at most FAT_MAX_FAT_BYTES) with the bitmaps kept beside it. */
static int fat_load_table(PfFat *f)
{
	uint64_t fat_bytes = (uint64_t)f->g.fat_sectors * f->g.bytes_per_sector;
	int r;

	if (fat_bytes > FAT_MAX_FAT_BYTES)
		return pf_error_set(-EFBIG,
				    "FAT: a FAT of %" PRIu64 " bytes is more than the %u "
				    "piflash handles",
				    fat_bytes, FAT_MAX_FAT_BYTES);
	f->fat_bytes = (size_t)fat_bytes;
	f->fat = malloc(f->fat_bytes);
	f->dirty_sectors = calloc(DIV_ROUND_UP(f->g.fat_sectors, 8), 1);
	f->indeg = calloc((size_t)f->g.cluster_count + 2, 1);
	f->visited = calloc(DIV_ROUND_UP((size_t)f->g.cluster_count + 2, 8), 1);
	if (!f->fat || !f->dirty_sectors || !f->indeg || !f->visited)
		return oom();
	r = pf_volume_read(&f->vol, f->g.fat_offset_bytes + (uint64_t)f->g.active_fat * fat_bytes,
			   f->fat, f->fat_bytes);
	if (r < 0)
		return pf_error_prefix(r, "FAT: reading the FAT");
	return 0;
}

/* Counts the free clusters and the FAT entries pointing at each cluster, and notes why the
 * volume is dirty, if it is. */
static void fat_scan_table(PfFat *f)
{
	const char *why;

	for (uint32_t c = 2; c <= f->g.cluster_count + 1; c++) {
		uint32_t v = fat_get(f, c);

		if (v == 0)
			f->free_count++;
		else if (cluster_ok(f, v) && f->indeg[v] < 255)
			f->indeg[v]++;
	}

	why = fat_dirty_reason(&f->g, f->fat);
	if (why) {
		f->dirty = true;
		snprintf(f->dirty_reason, sizeof(f->dirty_reason), "%s", why);
	}
}

/* FAT32: the FSInfo counters, when the sector is valid, and where allocation starts. */
static int fat_read_fsinfo(PfFat *f)
{
	int r;

	if (f->g.fat_bits == 32 && f->g.fsinfo_sector) {
		uint8_t fsi[512];

		r = pf_volume_read(&f->vol, (uint64_t)f->g.fsinfo_sector * f->g.bytes_per_sector,
				   fsi, sizeof(fsi));
		if (r < 0)
			return pf_error_prefix(r, "FAT: reading FSInfo");
		if (get32(fsi) == FSINFO_LEAD && get32(fsi + 484) == FSINFO_STRUCT &&
		    get32(fsi + 508) == FSINFO_TRAIL) {
			f->fsinfo_ok = true;
			f->fsinfo_free = get32(fsi + 488);
			f->fsinfo_next = get32(fsi + 492);
			if (cluster_ok(f, f->fsinfo_next))
				f->next_free = f->fsinfo_next + 1;
		}
	}
	if (!cluster_ok(f, f->next_free))
		f->next_free = 2;
	return 0;
}

static int fat_open(const PfVolume *vol, void **ret_priv)
{
	uint8_t boot[512];
	PfFat *f;
	int r;

	r = pf_volume_read(vol, 0, boot, sizeof(boot));
	if (r < 0)
		return pf_error_prefix(r, "FAT: reading the boot sector");
	f = calloc(1, sizeof(*f));
	if (!f)
		return oom();
	f->vol = *vol;
	r = pf_fat_parse_boot(boot, sizeof(boot), vol->size_bytes, &f->g);
	if (r < 0)
		goto fail;
	r = fat_load_table(f);
	if (r < 0)
		goto fail;
	fat_scan_table(f);
	r = fat_read_fsinfo(f);
	if (r < 0)
		goto fail;
	*ret_priv = f;
	return 0;
fail:
	fat_close(f);
	return r;
}

static int fat_sync(void *priv)
{
	PfFat *f = priv;

	if (f->dirty)
		return 0;
	return fat_flush(f);
}

static int fat_stat(void *priv, const char *path, PfStat *ret)
{
	PfFat *f = priv;
	FatPath fp;
	int r;

	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root)
		*ret = (PfStat){ .mode = S_IFDIR | 0755, .nlink = 2 };
	else if (fp.found)
		fat_entry_stat(&fp.entry, ret);
	else
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
	fat_path_done(&fp);
	return r;
}

static int fat_symlink(void *priv, const char *path, const char *target, const PfAttr *attr)
{
	return pf_error_set(-EPERM, "FAT has no symbolic links: cannot create '%s'", path);
}

static int fat_readlink(void *priv, const char *path, char **ret_target)
{
	PfStat st;
	int r;

	r = fat_stat(priv, path, &st);
	if (r < 0)
		return r;
	return pf_error_set(-EINVAL, "'%s' is not a symbolic link (FAT has none)", path);
}

static int fat_list(void *priv, const char *path, PfDirent **ret, size_t *ret_n)
{
	PfFat *f = priv;
	_cleanup_(freep) FatEntry *e = NULL;
	PfDirent *list = NULL;
	size_t n = 0, alloc = 0, pos = 0;
	FatDir sub = { 0 }, *d;
	FatPath fp;
	int r;

	e = malloc(sizeof(*e));
	if (!e)
		return oom();
	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root)
		d = &fp.parent;
	else if (!fp.found) {
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
		goto out;
	} else if (!(fp.entry.sde[11] & ATTR_DIR)) {
		r = pf_error_set(-ENOTDIR, "'%s' is not a directory", path);
		goto out;
	} else {
		uint32_t cl = fat_sde_cluster(f, fp.entry.sde);

		if (cl == 0) {
			r = CORRUPT("directory '%s' has no cluster", path);
			goto out;
		}
		r = fat_dir_load(f, cl, path, &sub);
		if (r < 0)
			goto out;
		d = &sub;
	}

	while (fat_dir_next(d, &pos, e)) {
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			PfDirent *p = reallocarray(list, na, sizeof(PfDirent));

			if (!p) {
				r = oom();
				goto out;
			}
			list = p;
			alloc = na;
		}
		list[n].name = strdup(e->name);
		if (!list[n].name) {
			r = oom();
			goto out;
		}
		fat_entry_stat(e, &list[n].st);
		n++;
	}
	*ret = TAKE_PTR(list);
	*ret_n = n;
	r = 0;
out:
	pf_dirents_free(list, n);
	fat_dir_done(&sub);
	fat_path_done(&fp);
	return r;
}

static int fat_used(void *priv, PfExtents *ret)
{
	PfFat *f = priv;
	const uint32_t max = f->g.cluster_count + 1;
	int r;

	/* Reserved sectors, every FAT and the fixed root lie before cluster 2. */
	r = pf_extents_add(ret, 0, f->g.data_offset_bytes);
	if (r < 0)
		return r;
	for (uint32_t c = 2; c <= max;) {
		uint32_t e;

		if (fat_get(f, c) == 0) {
			c++;
			continue;
		}
		for (e = c + 1; e <= max && fat_get(f, e) != 0; e++)
			;
		r = pf_extents_add(ret, cluster_offset(f, c),
				   (uint64_t)(e - c) * f->g.cluster_bytes);
		if (r < 0)
			return r;
		c = e;
	}
	return 0;
}

const PfFsOps pf_fat_ops = {
	.name = "fat",
	.handles = fat_handles,
	.open = fat_open,
	.sync = fat_sync,
	.close = fat_close,
	.stat = fat_stat,
	.read_file = fat_read_file,
	.write_file = fat_write_file,
	.mkdir = fat_mkdir,
	.symlink = fat_symlink,
	.readlink = fat_readlink,
	.remove = fat_remove,
	.list = fat_list,
	.used = fat_used,
};
