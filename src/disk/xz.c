/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <lzma.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/xz.h"
#include "util/error.h"
#include "util/macros.h"

#define IN_BYTES (1024u * 1024u)
/* Large enough that the sparse writer sees long runs; a block of -6 is 24 MiB. */
#define OUT_BYTES (4u * 1024u * 1024u)

uint64_t pf_xz_memlimit(void)
{
	uint64_t ram = lzma_physmem();

	/* lzma_physmem() is 0 when it cannot tell. */
	if (ram == 0)
		return PF_XZ_MEMLIMIT_MIN_BYTES;
	return MAX(PF_XZ_MEMLIMIT_MIN_BYTES, MIN(ram / 4, PF_XZ_MEMLIMIT_MAX_BYTES));
}

uint32_t pf_xz_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return (uint32_t)MIN((unsigned long)n, (unsigned long)PF_XZ_THREADS_MAX);
}

/* What liblzma's return code means for the user. */
static const char *lzma_ret_string(lzma_ret ret)
{
	switch (ret) {
	case LZMA_MEM_ERROR:
		return "out of memory";
	case LZMA_MEMLIMIT_ERROR:
		return "needs more memory than the limit";
	case LZMA_FORMAT_ERROR:
		return "not in the .xz format";
	case LZMA_OPTIONS_ERROR:
		return "unsupported compression options";
	case LZMA_DATA_ERROR:
		return "compressed data is corrupt";
	case LZMA_BUF_ERROR:
		return "unexpected end of input";
	case LZMA_UNSUPPORTED_CHECK:
		return "unsupported integrity check";
	case LZMA_PROG_ERROR:
		return "internal error";
	default:
		return "unknown error";
	}
}

static int lzma_ret_errno(lzma_ret ret)
{
	switch (ret) {
	case LZMA_MEM_ERROR:
		return -ENOMEM;
	case LZMA_MEMLIMIT_ERROR:
		return -E2BIG;
	case LZMA_FORMAT_ERROR:
	case LZMA_OPTIONS_ERROR:
	case LZMA_UNSUPPORTED_CHECK:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int pf_xz_info(int fd, PfXzInfo *ret)
{
	lzma_stream strm = LZMA_STREAM_INIT;
	lzma_index *idx = NULL;
	_cleanup_(freep) uint8_t *in = NULL;
	struct stat st;
	lzma_ret lr;
	int r;

	if (fstat(fd, &st) < 0)
		return -errno;
	in = malloc(IN_BYTES);
	if (!in)
		return -ENOMEM;
	lr = lzma_file_info_decoder(&strm, &idx, pf_xz_memlimit(), (uint64_t)st.st_size);
	if (lr != LZMA_OK)
		return lzma_ret_errno(lr);
	if (lseek(fd, 0, SEEK_SET) < 0) {
		r = -errno;
		goto out;
	}
	for (;;) {
		if (strm.avail_in == 0) {
			ssize_t n = read(fd, in, IN_BYTES);

			if (n < 0) {
				r = -errno;
				goto out;
			}
			strm.next_in = in;
			strm.avail_in = (size_t)n;
		}
		lr = lzma_code(&strm, LZMA_RUN);
		if (lr == LZMA_STREAM_END)
			break;
		if (lr == LZMA_SEEK_NEEDED) {
			if (lseek(fd, (off_t)strm.seek_pos, SEEK_SET) < 0) {
				r = -errno;
				goto out;
			}
			strm.avail_in = 0;
			continue;
		}
		if (lr != LZMA_OK) {
			r = pf_error_set(lzma_ret_errno(lr),
					 "cannot read the index of the xz file: %s",
					 lzma_ret_string(lr));
			goto out;
		}
	}
	*ret = (PfXzInfo){
		.size_bytes = lzma_index_uncompressed_size(idx),
		.blocks = lzma_index_block_count(idx),
		.streams = lzma_index_stream_count(idx),
	};
	r = 0;
out:
	lzma_end(&strm);
	lzma_index_end(idx, NULL);
	return r;
}

static int decoder_init(lzma_stream *strm, const PfXzOptions *o)
{
	uint32_t threads = o->threads ?: pf_xz_threads();
	uint64_t limit = o->memlimit_bytes ?: pf_xz_memlimit();
	lzma_ret lr;

	if (threads > 1) {
		lzma_mt mt = {
			.flags = LZMA_CONCATENATED,
			.threads = threads,
			/* Fewer threads rather than more memory than this... */
			.memlimit_threading = limit,
			/* ...and not even one thread past it. */
			.memlimit_stop = limit,
			/* Blocks until there is output: no timeout. */
			.timeout = 0,
		};

		lr = lzma_stream_decoder_mt(strm, &mt);
	} else
		lr = lzma_stream_decoder(strm, limit, LZMA_CONCATENATED);
	if (lr != LZMA_OK)
		return pf_error_set(lzma_ret_errno(lr), "cannot start the xz decoder: %s",
				    lzma_ret_string(lr));
	return 0;
}

/* Refills the input buffer when it is empty; at the end of the file, asks for LZMA_FINISH. */
static int decode_read(int in_fd, lzma_stream *strm, uint8_t *in, lzma_action *action)
{
	ssize_t n;

	if (strm->avail_in != 0 || *action != LZMA_RUN)
		return 0;
	n = read(in_fd, in, IN_BYTES);
	if (n < 0)
		return pf_error_set(-errno, "cannot read the xz file: %m");
	strm->next_in = in;
	strm->avail_in = (size_t)n;
	if (n == 0)
		*action = LZMA_FINISH;
	return 0;
}

/* The error for what lzma_code() returned, 0 for LZMA_OK and LZMA_STREAM_END. done: the
 * image bytes written so far. */
static int decode_status(lzma_ret lr, const lzma_stream *strm, const PfXzOptions *o, uint64_t done)
{
	/* What came out with an error is not trusted: the error may be the block's
	 * integrity check, which covers exactly that output. */
	if (lr == LZMA_MEMLIMIT_ERROR)
		return pf_error_set(-E2BIG,
				    "xz stream needs more memory to decode than the limit of "
				    "%" PRIu64 " KiB",
				    (o->memlimit_bytes ?: pf_xz_memlimit()) / KIB);
	if (lr == LZMA_FORMAT_ERROR || (lr == LZMA_OPTIONS_ERROR && done == 0))
		return pf_error_set(-EINVAL, "not a valid xz stream: it starts like one, but %s",
				    lzma_ret_string(lr));
	if (lr != LZMA_OK && lr != LZMA_STREAM_END)
		return pf_error_set(lzma_ret_errno(lr),
				    "xz stream is corrupt or truncated after %" PRIu64
				    " bytes of image (compressed input read to byte %" PRIu64
				    "): %s",
				    done, (uint64_t)strm->total_in, lzma_ret_string(lr));
	return 0;
}

/* Hands the output buffer's bytes to o->output (at most o->max_bytes in all) and empties
 * it. */
static int decode_flush(lzma_stream *strm, uint8_t *out, const PfXzOptions *o, uint64_t *done)
{
	size_t n = OUT_BYTES - strm->avail_out;
	int r;

	if (o->max_bytes && *done + n > o->max_bytes)
		return pf_error_set(-EFBIG, "decompressed image exceeds %" PRIu64 " GiB",
				    o->max_bytes / GIB);
	if (n > 0) {
		r = o->output(o->userdata, *done, out, n);
		if (r < 0)
			return r;
		*done += n;
	}
	strm->next_out = out;
	strm->avail_out = OUT_BYTES;
	return 0;
}

int pf_xz_decode(int in_fd, const PfXzOptions *o, uint64_t *ret_size_bytes)
{
	lzma_stream strm = LZMA_STREAM_INIT;
	_cleanup_(freep) uint8_t *in = NULL, *out = NULL;
	uint64_t done = 0;
	lzma_action action = LZMA_RUN;
	lzma_ret lr;
	int r;

	in = malloc(IN_BYTES);
	out = malloc(OUT_BYTES);
	if (!in || !out)
		return -ENOMEM;
	r = decoder_init(&strm, o);
	if (r < 0)
		return r;

	strm.next_out = out;
	strm.avail_out = OUT_BYTES;
	for (;;) {
		r = decode_read(in_fd, &strm, in, &action);
		if (r < 0)
			goto out;
		lr = lzma_code(&strm, action);
		r = decode_status(lr, &strm, o, done);
		if (r < 0)
			goto out;
		if (strm.avail_out == 0 || lr == LZMA_STREAM_END) {
			r = decode_flush(&strm, out, o, &done);
			if (r < 0)
				goto out;
		}
		if (lr == LZMA_STREAM_END)
			break;
	}
	if (done == 0) {
		r = pf_error_set(-EINVAL, "xz stream holds an empty image");
		goto out;
	}
	*ret_size_bytes = done;
	r = 0;
out:
	lzma_end(&strm);
	return r;
}
