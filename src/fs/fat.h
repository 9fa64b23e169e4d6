/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The parts of the FAT driver (fs/fat.c) that its unit tests, and callers needing more than
 * fs.h offers, reach directly: boot sector validation, the names FAT stores (8.3 names with
 * their case byte, ~N aliases, the long-name checksum), FAT time stamps, and the "dirty"
 * state a volume records when it was not unmounted cleanly.
 *
 * A dirty volume still opens through pf_fs_open() so that it can be read; every write on it
 * fails with -EUCLEAN and a detail telling the user to run fsck.fat. A caller that wants to
 * warn before that asks pf_fat_probe_dirty().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/fs.h"

typedef struct PfFatGeometry {
	unsigned fat_bits; /* 12, 16 or 32 */
	uint32_t bytes_per_sector;
	uint32_t sectors_per_cluster;
	uint32_t cluster_bytes;
	uint32_t reserved_sectors;
	uint32_t fat_count;
	uint32_t fat_sectors;  /* of one FAT */
	uint32_t root_entries; /* slots of the fixed root directory (FAT12/16); 0 on FAT32 */
	uint64_t total_sectors;
	uint32_t cluster_count;	    /* data clusters, numbered 2..cluster_count+1 */
	uint32_t root_cluster;	    /* FAT32: first cluster of the root directory */
	uint32_t fsinfo_sector;	    /* FAT32: FSInfo sector, 0 when there is none */
	uint32_t active_fat;	    /* FAT32 with mirroring off: the FAT in use; else 0 */
	uint64_t fat_offset_bytes;  /* first FAT, from the partition start */
	uint64_t root_offset_bytes; /* fixed root directory (FAT12/16) */
	uint64_t data_offset_bytes; /* cluster 2 */
	uint64_t volume_bytes;	    /* total_sectors * bytes_per_sector */
	bool boot_dirty;	    /* the boot sector's state byte says "dirty" */
} PfFatGeometry;

/*
 * Validates the boot sector in sector (len >= 512 bytes) of a partition of partition_bytes:
 * sector and cluster sizes, FAT count, every region inside the volume and the volume inside
 * the partition, FAT large enough for the clusters, FAT32 root cluster in range. The FAT
 * type follows Linux and mtools: BPB_FATSz16 == 0 is FAT32 whatever the cluster count, else
 * fewer than 4085 clusters is FAT12, else FAT16.
 * Returns 0 and the geometry in *ret, or -EUCLEAN with a detail.
 */
int pf_fat_parse_boot(const uint8_t *sector, size_t len, uint64_t partition_bytes,
		      PfFatGeometry *ret);

/* The checksum of an 8.3 name (11 bytes, blank padded) that every long entry carries. */
uint8_t pf_fat_lfn_checksum(const uint8_t short_name[11]);

/*
 * Checks a name (UTF-8) for FAT: valid UTF-8, at most 255 UTF-16 units, none of the
 * characters FAT forbids (control characters and * ? < > | : " \ /), not "." or "..", not
 * ending in '.' or ' ' (Windows and Linux would strip those). Returns 0, -EINVAL or
 * -ENAMETOOLONG, with a detail.
 */
int pf_fat_check_name(const char *name);

/*
 * Returns 1 when name is a valid 8.3 name whose base and extension are each in one case,
 * so no long entry is needed: the upper-case 11-byte name goes to ret_name and the NT case
 * byte (0x08 base lower case, 0x10 extension lower case) to ret_case. Returns 0 when name
 * needs a long entry.
 */
int pf_fat_short_name(const char *name, uint8_t ret_name[11], uint8_t *ret_case);

/*
 * Makes the 8.3 alias of a long name the way Windows and Linux do: upper case, characters
 * an 8.3 name cannot hold become '_', spaces and extra dots dropped, base cut to 8 and
 * extension to 3. When that lost nothing but case the plain name is used if free; otherwise
 * a tail "~1".."~999999" replaces the end of the base. taken lists the 11-byte names
 * already in the directory (any order). Returns 0 and the alias, or -EEXIST when all
 * tails are taken.
 */
int pf_fat_make_alias(const char *name, const uint8_t (*taken)[11], size_t n_taken,
		      uint8_t ret_name[11]);

/* FAT time stamps (UTC, 2-second resolution, clamped to 1980-01-01..2107-12-31):
 * ret_tenth is the creation time's extra 10 ms units (0..199). */
void pf_fat_time_encode(int64_t seconds, uint16_t *ret_date, uint16_t *ret_time,
			uint8_t *ret_tenth);
int64_t pf_fat_time_decode(uint16_t date, uint16_t time);

/*
 * Reads the boot sector and FAT entry 1 of vol. Returns 1 when the volume is marked dirty
 * (FAT16/32 "clean shutdown" bit clear, "no disk error" bit clear, or the boot sector's
 * state byte set; a detail says which), 0 when clean, -errno when it is not a valid FAT.
 */
int pf_fat_probe_dirty(const PfVolume *vol);
