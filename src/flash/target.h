/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Where a prepared image goes, and whether it may go there.
 *
 * Three kinds of target:
 *  - a regular file (or a new name): written sparse (holes where the result is zero) under a
 *    temporary name in the same directory, truncated to the image size, and renamed into
 *    place by pf_target_commit() only when complete, so OUT.img is never half-written. The
 *    input image or its cache file (same device and inode, however named) is refused.
 *  - a block device (a card): opened O_EXCL (and O_DIRECT when the device takes it) and
 *    kept open from the checks to the end, so nothing can mount it in between. Written with
 *    the partition table structures zeroed first and written last, after everything else is
 *    flushed: an interrupted or failed write leaves a card with no partition table rather
 *    than one that looks valid and is not.
 *  - "-": standard output, the whole image as a stream.
 *
 * Safety, before a single byte is written: a block device is refused if it or one of its
 * partitions is mounted (the running system's /, /boot or swap named as such) or held by
 * device-mapper/md, if it is a partition (unless force), if it is not removable — sysfs
 * removable, on USB, an SD card, or a loop device — (unless force), if it is smaller than
 * the image needs, or if it cannot be opened exclusively. Every refusal is -EPERM with the
 * reason as detail; nothing else here returns -EPERM, so callers can map it to their
 * "refused for safety" exit code.
 *
 * Test seam: sysfs is read under $PIFLASH_SYSFS_ROOT when set (default /sys), so tests can
 * present a loop device as a fixed disk through a fake tree holding
 * dev/block/MAJ:MIN -> .../NAME with NAME/removable, NAME/device/model, ...
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "disk/overlay.h"
#include "util/extents.h"

typedef enum PfTargetKind {
	PF_TARGET_FILE,
	PF_TARGET_BLOCK,
	PF_TARGET_STDOUT,
} PfTargetKind;

typedef struct PfTargetInfo {
	PfTargetKind kind;
	char *path;
	/* Block devices only (NULL or 0 otherwise): */
	char *name;	       /* kernel name: "sdb", "mmcblk0", "loop3" */
	char *disk;	       /* the whole disk's kernel name (== name unless a partition) */
	char *model;	       /* vendor and model, or a loop device's backing file */
	char *serial;	       /* NULL when the device does not say */
	const char *transport; /* "usb", "sd", "loop", or NULL */
	uint64_t size_bytes;
	uint64_t block_bytes; /* logical block size */
	bool removable;
	bool partition;
	bool direct; /* opened O_DIRECT */
} PfTargetInfo;

typedef struct PfTargetOptions {
	int input_fd;	     /* the image as given, to refuse it as a target (or -1) */
	int base_fd;	     /* what is read: the raw image or its cache file (or -1) */
	uint64_t need_bytes; /* refuse a device smaller than this */
	bool force;	     /* allow a partition node or a non-removable disk */
	bool read_only;	     /* for verification: no checks but the kind, nothing written */
} PfTargetOptions;

typedef struct PfTarget PfTarget;

/* What pf_target_probe() finds out about a disk without writing it. */
typedef struct PfTargetProbe {
	PfTargetInfo info;
	char *refusal; /* why pf_target_open() would refuse it (force off), or NULL */
	char **mounts; /* mount points of the disk and its partitions */
	size_t n_mounts;
	int open_error; /* -errno when the device could not be opened (not root), else 0 */
} PfTargetProbe;

/*
 * For a list of the disks a card could be (`piflash devices`): what pf_target_open() learns
 * about the block device path, where it is mounted, and whether it would refuse it as a
 * target — the same checks, without --force and without a size to fit — and why. Nothing is
 * written: the device is opened read-only (exclusively, for a moment, to see whether
 * anything holds it). Returns 0 with *ret filled, or -errno with a detail when path is not a
 * block device or sysfs does not know it.
 */
int pf_target_probe(const char *path, PfTargetProbe *ret);
void pf_target_probe_done(PfTargetProbe *p);

/*
 * The whole disks of the machine, as device paths ("/dev/sdb"), sorted: every entry of
 * sysfs's block/ with a size, but virtual devices other than loop devices (device-mapper,
 * md, zram, ram). Returns the number of paths (a malloc'd array in *ret_paths) or -errno.
 */
int pf_target_list_disks(char ***ret_paths);

/*
 * Checks path as a target ("-" for standard output) and opens it. A file target gets a
 * temporary file next to it. Returns 0, -EPERM for a refusal (detail says why), or -errno.
 */
int pf_target_open(const char *path, const PfTargetOptions *o, PfTarget **ret);

/* Closes; removes a file target's temporary file unless committed. Accepts NULL. */
PfTarget *pf_target_free(PfTarget *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfTarget *, pf_target_free);

const PfTargetInfo *pf_target_info(const PfTarget *t);
/* The descriptor written (file target: the temporary file). */
int pf_target_fd(const PfTarget *t);

/* Alignment the ranges written to t need: the logical block size, at least 512; 4096 for a
 * file (its page size, so O_DIRECT verification works). */
uint64_t pf_target_align(const PfTarget *t);

typedef struct PfWriteOptions {
	bool discard; /* BLKDISCARD what is not written (block devices) */
	void (*progress)(void *userdata, const char *phase, uint64_t done_bytes,
			 uint64_t total_bytes);
	void *progress_data;
	const volatile sig_atomic_t *cancel;
} PfWriteOptions;

typedef struct PfWriteResult {
	uint64_t written_bytes; /* bytes handed to the target (holes of a file not counted) */
	uint64_t done_bytes;	/* how far the range walk got, of total_bytes */
	uint64_t total_bytes;
	uint64_t discarded_bytes; /* 0 when not asked or not supported */
	bool discard_unsupported;
	bool table_zeroed; /* a block device's table area is zero now (failure or cancel) */
} PfWriteResult;

/*
 * Writes ranges of ov (table: the partition table structures among them, aligned like
 * them) to t, then flushes; a file is also truncated to the image size. Returns 0, -ECANCELED when opts->cancel was set, or -errno with a detail
 * naming the byte offset. *ret is filled in every case.
 */
int pf_target_write(PfTarget *t, PfOverlay *ov, PfExtents *ranges, PfExtents *table,
		    const PfWriteOptions *opts, PfWriteResult *ret);

/*
 * A block device: the ranges of written already hold the base image's bytes (written while it
 * was decoded, flash/cold.h). pf_target_write() then writes, of its ranges, only the rest and
 * what the overlay changed, and counts them as written. Returns 0 or -errno.
 */
int pf_target_set_written(PfTarget *t, PfExtents *written);

/* For a block device after a failed verification: zeroes the table area again. */
int pf_target_zero(PfTarget *t, PfExtents *table);

/* A file target: renames the (written, flushed) temporary file into place. No-op for others. */
int pf_target_commit(PfTarget *t);

/*
 * Kept for callers that write a whole image file in one go: checks path (as
 * pf_target_open() does), writes the given ranges sparse and commits.
 */
int pf_target_write_file(const char *path, PfOverlay *ov, PfExtents *ranges,
			 uint64_t *ret_written_bytes);
