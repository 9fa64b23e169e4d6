/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The partition table of an image: libfdisk reads MBR (with logical partitions) or GPT,
 * libblkid probes each partition for its filesystem type, label and UUID. Every partition
 * is checked to lie inside the image and not to overlap another, so the layers above can
 * trust the byte ranges they are given. Partitions are addressed by number ("2") or by
 * filesystem label ("root"), as a user would name them on the command line.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macros.h"

typedef struct PfPartition {
	unsigned number; /* as the kernel numbers it: 1..4 primary, 5.. logical on MBR */
	uint64_t start_bytes;
	uint64_t size_bytes;
	char *type;	 /* as sfdisk prints it: "c", "83" (MBR) or an upper-case GUID (GPT) */
	char *type_name; /* "W95 FAT32 (LBA)", "Linux filesystem", ... or NULL */
	char *fstype;	 /* from blkid: "vfat", "ext4", ... or NULL when none was found */
	char *label;
	char *uuid;
	char *partuuid;
	bool bootable;
} PfPartition;

typedef struct PfPtable {
	char *label_type; /* "dos" or "gpt" */
	char *id;	  /* disk identifier: "0x1234abcd" (MBR) or a GUID (GPT) */
	uint64_t sector_bytes;
	uint64_t image_bytes;
	PfPartition *parts;
	size_t n_parts;
} PfPtable;

/*
 * Reads the partition table of the image open on fd (image_bytes long). Returns 0 or -errno
 * with a detail: no table, a partition past the end, overlapping partitions.
 */
int pf_ptable_read(int fd, uint64_t image_bytes, PfPtable **ret);
PfPtable *pf_ptable_free(PfPtable *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfPtable *, pf_ptable_free);

/*
 * Finds a partition by number ("2") or by filesystem label ("HypriotOS"). A label matches
 * exactly first, then ignoring case if that is unique. Returns NULL (with a detail for
 * the user listing what there is) if none or several match.
 */
const PfPartition *pf_ptable_find(const PfPtable *t, const char *spec);

/*
 * Checks a list of partitions (sorted or not) against the image size: each inside it,
 * none overlapping. Split out of pf_ptable_read() so it can be tested on its own.
 */
int pf_ptable_validate(const PfPartition *parts, size_t n, uint64_t image_bytes);
