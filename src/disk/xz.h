/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Decoding .xz images on every core, with liblzma directly (libarchive decodes xz on one
 * thread only).
 *
 * liblzma's multi-threaded decoder (5.4 and later) hands the blocks of a stream to worker
 * threads, as `xz -T0 -d` does. That works for streams whose block headers record their
 * sizes: what `xz -T` (and so pi-gen) writes, in blocks of three times the dictionary (24 MiB
 * at -6). A stream of one block — what a single-threaded `xz` writes — has no such sizes and
 * is decoded on one thread, by the same decoder, without anything to choose here.
 *
 * Memory: each worker holds a block's input and output and a dictionary (about 60 MiB per
 * thread at -6). The decoder is given PF_XZ_MEMLIMIT: it starts fewer threads rather than use
 * more, and refuses (as corrupt input would be refused) a stream that would need more than
 * that on one thread. Concatenated streams are decoded one after the other, like xz does.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Upper bound of the decoder's memory limit; the limit is a quarter of RAM below that. */
#define PF_XZ_MEMLIMIT_MAX_BYTES (UINT64_C(1) << 30)
/* Lower bound, so a small machine still decodes the usual dictionaries (up to 64 MiB). */
#define PF_XZ_MEMLIMIT_MIN_BYTES (UINT64_C(128) << 20)
/* More threads than this do not pay: the writer and the disk cannot follow. */
#define PF_XZ_THREADS_MAX 64u

/* The decoder's memory limit: a quarter of physical RAM, within the bounds above. */
uint64_t pf_xz_memlimit(void);
/* Decoder threads: the CPUs online, 1 to PF_XZ_THREADS_MAX. */
uint32_t pf_xz_threads(void);

typedef struct PfXzInfo {
	uint64_t size_bytes; /* decoded size of every stream together */
	uint64_t blocks;
	uint64_t streams;
} PfXzInfo;

/*
 * Reads the index at the end of the .xz file fd (seeking; nothing is decoded) into ret.
 * Returns 0, or -errno with a detail (not an xz file, a damaged index).
 */
int pf_xz_info(int fd, PfXzInfo *ret);

/* Takes len decoded bytes that belong at offset_bytes of the image, in order. 0 or -errno. */
typedef int (*PfXzOutputFn)(void *userdata, uint64_t offset_bytes, const uint8_t *buf, size_t len);

typedef struct PfXzOptions {
	uint32_t threads;	 /* 0: pf_xz_threads() */
	uint64_t memlimit_bytes; /* 0: pf_xz_memlimit() */
	uint64_t max_bytes;	 /* refuse a stream decoding to more (0: no bound) */
	PfXzOutputFn output;
	void *userdata;
} PfXzOptions;

/*
 * Decodes the .xz read from in_fd (from where it stands to its end), handing the result to
 * o->output. Returns 0 and the decoded size in *ret_size_bytes, an error of o->output as it
 * was returned, or -errno with a detail saying how many bytes of image were decoded before
 * the stream turned out corrupt or truncated.
 */
int pf_xz_decode(int in_fd, const PfXzOptions *o, uint64_t *ret_size_bytes);
