/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Prepared images as build artifacts: one file per node, written the way CI keeps them.
 *
 * `piflash batch --out-dir` hands each node's overlay here with the byte ranges that matter;
 * every other byte of the artifact reads as zero. The ranges are first rounded out to whole
 * PF_ARTIFACT_BLOCK_BYTES blocks (and clipped to the image), and those blocks carry the
 * overlay's bytes. The artifact is a sparse raw image (holes for zero blocks) or the whole
 * image as one zstd, xz or gzip stream written through libarchive, optionally with a bmap
 * (bmaptool's format 2.0) of the uncompressed image whose mapped blocks are exactly the
 * rounded ranges, each range with its SHA-256.
 *
 * The same inputs give byte-identical files whatever the compressor thread count, so
 * artifacts can be compared and cached by hash: zstd always runs with at least one worker
 * (libzstd's multi-threaded frames do not depend on the worker count but differ from its
 * single-threaded ones), xz always with liblzma's multi-threaded encoder, which libarchive 3.6
 * selects for any thread count but exactly 1 (so xz runs at least two threads), and gzip
 * headers carry neither a time stamp nor a name.
 *
 * Reading and writing overlap (flash/stream.h) through a few MiB of buffers: memory does not
 * grow with the image, and bytes outside the ranges are never read. Nothing is global, so
 * several artifacts may be written at once from different threads, each with its own overlay.
 * Files appear under their names only when complete: they are written under a temporary name
 * in the same directory and renamed; on failure or cancellation nothing is left behind.
 *
 * Cancellation is seen between chunks of a few MiB. With xz it can take long: libarchive 3.6
 * has no way to drop a stream, so liblzma first finishes the blocks it holds (24 MiB each at
 * level 6: seconds on typical data, tens of seconds on incompressible data).
 */

#include <signal.h>
#include <stdint.h>

#include "disk/overlay.h"
#include "util/extents.h"

typedef enum PfArtifactFormat {
	PF_ARTIFACT_IMG,
	PF_ARTIFACT_IMG_ZST,
	PF_ARTIFACT_IMG_XZ,
	PF_ARTIFACT_IMG_GZ,
} PfArtifactFormat;

/* "img", "img.zst", "img.xz" or "img.gz" to a format. Returns 0, or -EINVAL (with a detail)
 * for any other name. */
int pf_artifact_format_from_name(const char *name, PfArtifactFormat *ret);

/* The file name suffix of a format: ".img", ".img.zst", ".img.xz", ".img.gz"; NULL for a
 * value that is no format. */
const char *pf_artifact_suffix(PfArtifactFormat f);

/* The bmap block size; the ranges are rounded out to it. */
#define PF_ARTIFACT_BLOCK_BYTES 4096u
/* Bound on PfArtifactOptions.threads. */
#define PF_ARTIFACT_MAX_THREADS 64u

typedef struct PfArtifactOptions {
	PfArtifactFormat format;
	/* Compressor threads for zstd and xz (gzip has one); 0 means 1, at most
	 * PF_ARTIFACT_MAX_THREADS. The output is byte-identical whatever the count; xz uses at
	 * least two (see above), about 140 MiB each at level 6. */
	unsigned threads;
	/* 0: the format's default (zstd 3, xz 6, gzip 6). Else zstd 1-22, xz 1-6 (libarchive 3.6
	 * silently treats 7-9 as 6, so they are refused), gzip 1-9. */
	int level;
	/* Also write a bmap (bmaptool format 2.0) of the uncompressed image here; NULL: none. */
	const char *bmap_path;
	/* May be NULL; when it turns non-zero the write stops with -ECANCELED. */
	const volatile sig_atomic_t *cancel;
} PfArtifactOptions;

typedef struct PfArtifactResult {
	uint64_t image_bytes;  /* uncompressed image size */
	uint64_t mapped_bytes; /* bytes inside the rounded ranges */
	uint64_t file_bytes;   /* size of the artifact file (IMG: its apparent size) */
	char sha256[65]; /* hex SHA-256 of the artifact file's bytes, as sha256sum prints it */
} PfArtifactResult;

/*
 * Writes the image of ov to path: the bytes of ranges (rounded out to whole blocks; the
 * caller's set is not modified, and need be neither sorted nor merged) from ov, all others
 * zero. IMG is a sparse file (a hole for every zero 4 KiB block) of the image's size; the
 * compressed formats hold the whole image as one stream. The SHA-256 is computed over the
 * bytes as they are written. Both files (the bmap too, when asked for) are written under
 * temporary names in their directories, flushed, and renamed into place only when complete;
 * on failure nothing is left. Fills *ret (may be NULL) on success only. Returns 0, -ECANCELED when
 * o->cancel was set, -EINVAL for bad options or a range past the end of the image, or -errno
 * with a detail naming the file (and the byte offset for I/O errors).
 */
int pf_artifact_write(const char *path, PfOverlay *ov, const PfExtents *ranges,
		      const PfArtifactOptions *o, PfArtifactResult *ret);

/*
 * The same with path and o->bmap_path relative to the directory dir_fd (AT_FDCWD: the
 * working directory), so that a caller that validated the names once works on one directory
 * whatever happens to the path that led to it. The temporary files are created with O_EXCL
 * and O_NOFOLLOW: nothing already there is opened.
 */
int pf_artifact_write_at(int dir_fd, const char *path, PfOverlay *ov, const PfExtents *ranges,
			 const PfArtifactOptions *o, PfArtifactResult *ret);
