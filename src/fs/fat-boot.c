/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT driver's boot sector: the checks that make a volume's geometry safe to use, the
 * FAT type (see fat.c for the rule), and whether the volume is marked dirty.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "fs/fat-volume.h"
#include "util/error.h"

/* Sector and cluster sizes, reserved sectors, FAT count, total sectors: the fields every
 * FAT type has. */
static int parse_sizes(const uint8_t *b, PfFatGeometry *g, uint32_t *ret_fatsz16)
{
	uint64_t total16, total32;

	g->bytes_per_sector = get16(b + 11);
	if (g->bytes_per_sector < 512 || g->bytes_per_sector > 4096 ||
	    !is_pow2(g->bytes_per_sector))
		return CORRUPT("%u bytes per sector (boot sector offset 11) is not a power of two "
			       "from 512 to 4096",
			       g->bytes_per_sector);
	g->sectors_per_cluster = b[13];
	if (!is_pow2(g->sectors_per_cluster))
		return CORRUPT("%u sectors per cluster (offset 13) is not a power of two from 1 "
			       "to 128",
			       g->sectors_per_cluster);
	g->cluster_bytes = g->bytes_per_sector * g->sectors_per_cluster;
	if (g->cluster_bytes > FAT_MAX_CLUSTER_BYTES)
		return CORRUPT("clusters of %u bytes are larger than 64 KiB", g->cluster_bytes);
	g->reserved_sectors = get16(b + 14);
	if (g->reserved_sectors == 0)
		return CORRUPT("no reserved sector (offset 14)");
	g->fat_count = b[16];
	if (g->fat_count < 1 || g->fat_count > 2)
		return CORRUPT("%u FATs (offset 16); 1 or 2 expected", g->fat_count);
	g->root_entries = get16(b + 17);
	total16 = get16(b + 19);
	*ret_fatsz16 = get16(b + 22);
	total32 = get32(b + 32);
	g->total_sectors = total16 ? total16 : total32;
	if (g->total_sectors == 0)
		return CORRUPT("volume of 0 sectors (offsets 19 and 32)");
	return 0;
}

/* The FAT32 extended boot record: FAT size, root cluster, FSInfo, active FAT, state. */
static int parse_fat32(const uint8_t *b, PfFatGeometry *g)
{
	/* FAT32, as Linux and mtools decide, whatever the cluster count. */
	uint16_t ext_flags = get16(b + 40);

	g->fat_bits = 32;
	g->fat_sectors = get32(b + 36);
	g->root_cluster = get32(b + 44);
	g->fsinfo_sector = get16(b + 48);
	if (g->root_entries != 0)
		return CORRUPT("FAT32 volume with %u fixed root directory entries "
			       "(offset 17)",
			       g->root_entries);
	if (g->fat_sectors == 0)
		return CORRUPT("FAT of 0 sectors (offsets 22 and 36)");
	if (ext_flags & 0x80) {
		g->active_fat = ext_flags & 0x0F;
		if (g->active_fat >= g->fat_count)
			return CORRUPT("active FAT %u of %u (offset 40)", g->active_fat,
				       g->fat_count);
	}
	if (g->fsinfo_sector == 0xFFFF || g->fsinfo_sector >= g->reserved_sectors)
		g->fsinfo_sector = 0;
	g->boot_dirty = b[65] & BOOT_STATE_DIRTY;
	return 0;
}

/* The FAT12/16 fields: FAT size from BPB_FATSz16, a fixed root directory, state. */
static int parse_fat16(const uint8_t *b, uint32_t fatsz16, PfFatGeometry *g)
{
	g->fat_sectors = fatsz16;
	if (g->root_entries == 0)
		return CORRUPT("FAT12/16 volume without root directory entries (offset 17)");
	g->boot_dirty = b[37] & BOOT_STATE_DIRTY;
	return 0;
}

/* Reserved sectors, FATs and root directory inside the volume, the volume inside the
 * partition, and the data clusters left. */
static int parse_clusters(uint64_t partition_bytes, uint32_t root_sectors, PfFatGeometry *g)
{
	uint64_t meta_sectors = (uint64_t)g->reserved_sectors +
				(uint64_t)g->fat_count * g->fat_sectors + root_sectors;

	if (meta_sectors >= g->total_sectors)
		return CORRUPT("reserved sectors, FATs and root directory (%" PRIu64
			       " sectors) do not fit in the volume (%" PRIu64 " sectors)",
			       meta_sectors, g->total_sectors);
	g->volume_bytes = g->total_sectors * g->bytes_per_sector;
	if (g->volume_bytes > partition_bytes)
		return CORRUPT("the volume (%" PRIu64
			       " bytes) is larger than its partition (%" PRIu64
			       " bytes): the image is truncated or the partition table is wrong",
			       g->volume_bytes, partition_bytes);
	if ((g->total_sectors - meta_sectors) / g->sectors_per_cluster > 0x0FFFFFF5u)
		return CORRUPT("too many clusters for FAT32");
	g->cluster_count = (uint32_t)((g->total_sectors - meta_sectors) / g->sectors_per_cluster);
	if (g->cluster_count == 0)
		return CORRUPT("no data cluster");
	return 0;
}
/* FAT12 or FAT16 by the cluster count (FAT32 was decided by BPB_FATSz16), and a FAT large
 * enough for entries 0..cluster_count+1. */
static int parse_fat_type(PfFatGeometry *g)
{
	uint64_t entries, need_fat_bytes;

	if (g->fat_bits != 32) {
		if (g->cluster_count < 4085)
			g->fat_bits = 12;
		else if (g->cluster_count <= 65524)
			g->fat_bits = 16;
		else
			return CORRUPT("%u clusters are too many for FAT16", g->cluster_count);
	}

	/* Entries 0..cluster_count+1 must fit in one FAT. */
	entries = (uint64_t)g->cluster_count + 2;
	need_fat_bytes =
		g->fat_bits == 12 ? DIV_ROUND_UP(entries * 3, 2) : entries * (g->fat_bits / 8);
	if (need_fat_bytes > (uint64_t)g->fat_sectors * g->bytes_per_sector)
		return CORRUPT("FAT of %u sectors is too small for %u clusters", g->fat_sectors,
			       g->cluster_count);

	if (g->fat_bits == 32 && (g->root_cluster < 2 || g->root_cluster > g->cluster_count + 1))
		return CORRUPT("root directory cluster %u is outside the data area (2..%u)",
			       g->root_cluster, g->cluster_count + 1);
	return 0;
}

int pf_fat_parse_boot(const uint8_t *b, size_t len, uint64_t partition_bytes, PfFatGeometry *ret)
{
	PfFatGeometry g = { 0 };
	uint32_t fatsz16 = 0, root_sectors;
	int r;

	if (len < 512)
		return CORRUPT("boot sector is shorter than 512 bytes");
	r = parse_sizes(b, &g, &fatsz16);
	if (r < 0)
		return r;
	r = fatsz16 == 0 ? parse_fat32(b, &g) : parse_fat16(b, fatsz16, &g);
	if (r < 0)
		return r;
	root_sectors = DIV_ROUND_UP(g.root_entries * FAT_SLOT_BYTES, g.bytes_per_sector);
	r = parse_clusters(partition_bytes, root_sectors, &g);
	if (r < 0)
		return r;
	r = parse_fat_type(&g);
	if (r < 0)
		return r;

	g.fat_offset_bytes = (uint64_t)g.reserved_sectors * g.bytes_per_sector;
	g.root_offset_bytes =
		g.fat_offset_bytes + (uint64_t)g.fat_count * g.fat_sectors * g.bytes_per_sector;
	g.data_offset_bytes = g.root_offset_bytes + (uint64_t)root_sectors * g.bytes_per_sector;
	*ret = g;
	return 0;
}

/* Why a volume counts as dirty, or NULL. fat_head holds at least FAT entries 0 and 1. */
const char *fat_dirty_reason(const PfFatGeometry *g, const uint8_t *fat_head)
{
	if (g->fat_bits == 16) {
		uint16_t e1 = get16(fat_head + 2);

		if (!(e1 & FAT16_CLEAN))
			return "FAT entry 1: not cleanly unmounted";
		if (!(e1 & FAT16_NO_ERROR))
			return "FAT entry 1: disk errors were seen";
	} else if (g->fat_bits == 32) {
		uint32_t e1 = get32(fat_head + 4);

		if (!(e1 & FAT32_CLEAN))
			return "FAT entry 1: not cleanly unmounted";
		if (!(e1 & FAT32_NO_ERROR))
			return "FAT entry 1: disk errors were seen";
	}
	if (g->boot_dirty)
		return "boot sector state: not cleanly unmounted";
	return NULL;
}

int pf_fat_probe_dirty(const PfVolume *vol)
{
	uint8_t boot[512], head[8];
	PfFatGeometry g;
	const char *why;
	int r;

	r = pf_volume_read(vol, 0, boot, sizeof(boot));
	if (r < 0)
		return r;
	r = pf_fat_parse_boot(boot, sizeof(boot), vol->size_bytes, &g);
	if (r < 0)
		return r;
	r = pf_volume_read(vol,
			   g.fat_offset_bytes +
				   (uint64_t)g.active_fat * g.fat_sectors * g.bytes_per_sector,
			   head, sizeof(head));
	if (r < 0)
		return r;
	why = fat_dirty_reason(&g, head);
	if (!why)
		return 0;
	pf_error_set(-EUCLEAN, "FAT: the volume is marked dirty (%s)", why);
	return 1;
}
