/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Block devices as targets (flash/target.h, which documents the rules): what sysfs and the
 * device say of a disk — kernel name, whole disk, model, serial, transport, removable, size —
 * and the safety checks that run before a card is opened for writing: not the running
 * system's root, not mounted, not swap, not held by device-mapper or RAID, a whole disk,
 * removable, large enough, and opened exclusively. pf_target_probe() and
 * pf_target_list_disks() (`piflash devices`) live here too: they ask the same questions
 * without writing.
 *
 * Internal to src/flash: target.c opens block devices through pf_device_open().
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "flash/target.h"

/*
 * Fills the block device part of info (path and kind set by the caller) from sysfs and the
 * device st names, and opens it: unless read_only, after the safety checks, read-write,
 * exclusively and O_DIRECT when the device takes it (a partition or a fixed disk only with
 * force, one smaller than need_bytes never); read_only, plain read-only. Returns 0 with the
 * descriptor in *ret_fd, -EPERM for a refusal (the detail says why), or -errno.
 */
int pf_device_open(PfTargetInfo *info, const struct stat *st, bool read_only, bool force,
		   uint64_t need_bytes, int *ret_fd);

/* Frees the strings of info and clears it. */
void pf_device_info_done(PfTargetInfo *info);
