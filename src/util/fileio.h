/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Small local files read whole (keys, inventories, templates, --add files) and renames made
 * durable: the two things every module that touches the operator's own files needs.
 */

#include <stddef.h>

/*
 * Reads the regular file path (relative to dirfd, or AT_FDCWD) whole into a NUL-terminated
 * buffer of at most max_bytes; the size fstat() gives is not trusted, so a file that grows
 * meanwhile is caught too. Returns 0, or -EINVAL (not a regular file), -EFBIG (over
 * max_bytes) or -errno, each with a detail naming path; nothing is returned on failure, and
 * what was read is wiped first (the file may hold a secret). Free *ret with free().
 */
int pf_read_file_at(int dirfd, const char *path, size_t max_bytes, char **ret, size_t *ret_len);

/* fsync()s the directory holding path, so a rename into it survives a crash. Best effort. */
void pf_fsync_dir_of(const char *path);
