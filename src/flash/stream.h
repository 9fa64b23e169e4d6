/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Moving ranges of bytes from a source to a sink with reading and writing overlapped.
 *
 * A reader thread fills a small ring of aligned buffers (PF_STREAM_BUFFERS of
 * PF_STREAM_CHUNK_BYTES: memory is bounded whatever the image size) from the source, range
 * by range in order; a writer thread hands each filled buffer to the sink. The calling thread
 * only watches: it reports progress every interval and stops both threads when *cancel turns
 * non-zero (a signal handler sets it). Buffers are aligned to PF_STREAM_ALIGN bytes and a
 * chunk never crosses the end of a range, so a sink with O_DIRECT gets aligned I/O as long as
 * the ranges are aligned. The first error of either side stops both and is returned with its
 * detail (pf_error_message() in the calling thread).
 */

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "util/extents.h"

#define PF_STREAM_CHUNK_BYTES (4u * 1024u * 1024u)
#define PF_STREAM_BUFFERS 4u
#define PF_STREAM_ALIGN 4096u

/* Fills buf with len bytes of the source at offset. Returns 0 or -errno. */
typedef int (*PfStreamReadFn)(void *userdata, uint64_t offset_bytes, uint8_t *buf, size_t len);
/* Consumes len bytes that belong at offset. Returns 0 or -errno. */
typedef int (*PfStreamWriteFn)(void *userdata, uint64_t offset_bytes, const uint8_t *buf,
			       size_t len);
/* Progress so far, called from the calling thread. */
typedef void (*PfStreamProgressFn)(void *userdata, uint64_t done_bytes, uint64_t total_bytes);

typedef struct PfStream {
	PfExtents *ranges; /* what to move, normalized here */
	PfStreamReadFn read;
	void *read_data;
	PfStreamWriteFn write;
	void *write_data;
	PfStreamProgressFn progress; /* may be NULL */
	void *progress_data;
	unsigned progress_interval_ms;	     /* 0: 200 */
	const volatile sig_atomic_t *cancel; /* may be NULL */
} PfStream;

/*
 * Runs the stream to the end. Returns 0, -ECANCELED when *cancel was set, or the first error
 * of the source or the sink. *ret_done_bytes (may be NULL) says how far the sink got: every
 * byte below the returned count of each range in order was consumed.
 */
int pf_stream_run(const PfStream *s, uint64_t *ret_done_bytes);

/* Allocates len bytes aligned to PF_STREAM_ALIGN, or NULL. Free with free(). */
void *pf_stream_alloc(size_t len);
