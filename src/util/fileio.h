/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Small local files read whole (keys, inventories, templates, --add files) and renames made
 * durable: the two things every module that touches the operator's own files needs.
 */

#include <stddef.h>
#include <stdint.h>

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

/* The same for path relative to dirfd: dirfd itself, or as above for AT_FDCWD. */
void pf_fsync_dir_at(int dirfd, const char *path);

/*
 * Creates a new file "<prefix><8 hex digits>" relative to dirfd (AT_FDCWD: the working
 * directory), mode 0600 (an image may hold private host keys and password hashes: a caller
 * that writes something public fchmod()s it), with O_EXCL and O_NOFOLLOW so that nothing
 * already there is opened, let alone truncated. Returns the open fd (O_RDWR, O_CLOEXEC) and the name
 * in *ret_name (malloc'd), or -errno with a detail naming what.
 */
int pf_tmpfile_at(int dirfd, const char *prefix, const char *what, char **ret_name);

/*
 * Writes all n bytes of buf at byte offset off of fd (pwrite; EINTR retried). Returns 0 or
 * -errno (-EIO when the file takes nothing) with the detail "write at byte offset N failed:
 * ...", N the offset of the first byte not written.
 */
int pf_pwrite_all(int fd, const void *buf, size_t n, uint64_t off);

/* The same with write(), for pipes; pos is where the stream stands, for the detail. */
int pf_write_all(int fd, const void *buf, size_t n, uint64_t pos);

/*
 * Writes the blocks of buf (block_bytes each, the last one maybe shorter) that are not all
 * zero at off, so that the zero ones stay holes of a new sparse file; runs of non-zero
 * blocks go in one pwrite. *ret_written (may be NULL) grows by the bytes written. Returns 0
 * or as pf_pwrite_all().
 */
int pf_pwrite_sparse(int fd, const void *buf, size_t n, uint64_t off, size_t block_bytes,
		     uint64_t *ret_written);

/*
 * Reads a secret (what names it in messages: "seed") from path: a regular file of the user's
 * alone (no group or other permission), one line of at most max_bytes (a final newline is
 * not part of it), no NUL byte. The buffer is wiped after use.
 */
int pf_read_secret_file(const char *path, size_t max_bytes, const char *what, char **ret);
