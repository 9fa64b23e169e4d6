/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "flash/artifact.h"
#include "flash/stream.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/macros.h"
#include "util/strutil.h"

#define BLOCK PF_ARTIFACT_BLOCK_BYTES
/* Zeros between ranges are hashed and compressed in pieces of this size; the cancel flag is
 * looked at between pieces. */
#define ZERO_BYTES (1024u * 1024u)
/* libarchive hands the compressed stream to us in blocks of this size. */
#define ARCHIVE_BLOCK_BYTES (1024 * 1024)
#define BMAP_BUFFER_BYTES (64u * 1024u)
#define SHA256_BYTES 32u
#define SHA256_HEX (2 * SHA256_BYTES)

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive_entry *, archive_entry_free);

static const struct {
	const char *name;
	const char *suffix;
	const char *filter; /* libarchive's filter name; NULL: raw image */
	int default_level;
	int max_level;
} formats[] = {
	[PF_ARTIFACT_IMG] = { "img", ".img", NULL, 0, 0 },
	[PF_ARTIFACT_IMG_ZST] = { "img.zst", ".img.zst", "zstd", 3, 22 },
	/* libarchive 3.6 turns xz presets 7-9 into 6 without a word. */
	[PF_ARTIFACT_IMG_XZ] = { "img.xz", ".img.xz", "xz", 6, 6 },
	[PF_ARTIFACT_IMG_GZ] = { "img.gz", ".img.gz", "gzip", 6, 9 },
};

int pf_artifact_format_from_name(const char *name, PfArtifactFormat *ret)
{
	for (size_t i = 0; name && i < ELEMENTSOF(formats); i++)
		if (streq(name, formats[i].name)) {
			*ret = (PfArtifactFormat)i;
			return 0;
		}
	return pf_error_set(-EINVAL, "unknown artifact format '%s' (img, img.zst, img.xz, img.gz)",
			    name ?: "");
}

const char *pf_artifact_suffix(PfArtifactFormat f)
{
	if ((unsigned)f >= ELEMENTSOF(formats))
		return NULL;
	return formats[f].suffix;
}

/* A file being written under a temporary name next to its final one. */
typedef struct TmpFile {
	int dir_fd;	  /* what path is relative to: a directory, or AT_FDCWD */
	const char *path; /* final name */
	char *tmp;	  /* temporary name until renamed, then NULL */
	int fd;
} TmpFile;

static int tmp_create(TmpFile *t, int dir_fd, const char *path)
{
	_cleanup_(freep) char *prefix = NULL;
	int fd;

	t->dir_fd = dir_fd;
	t->path = path;
	if (asprintf(&prefix, "%s.partial-", path) < 0)
		return -ENOMEM;
	fd = pf_tmpfile_at(dir_fd, prefix, path, &t->tmp);
	if (fd < 0)
		return fd;
	t->fd = fd;
	return 0;
}

/* Flushes the file to disk and closes it. */
static int tmp_finish(TmpFile *t)
{
	int r = 0;

	if (fsync(t->fd) < 0)
		r = pf_error_set(-errno, "cannot flush '%s': %m", t->path);
	if (close(t->fd) < 0 && r == 0)
		r = pf_error_set(-errno, "cannot close '%s': %m", t->path);
	t->fd = -1;
	return r;
}

static int tmp_rename(TmpFile *t)
{
	if (renameat(t->dir_fd, t->tmp, t->dir_fd, t->path) < 0)
		return pf_error_set(-errno, "cannot rename '%s' to '%s': %m", t->tmp, t->path);
	free(t->tmp);
	t->tmp = NULL;
	return 0;
}

static void tmp_done(TmpFile *t)
{
	t->fd = safe_close(t->fd);
	if (t->tmp)
		(void)unlinkat(t->dir_fd, t->tmp, 0);
	free(t->tmp);
	t->tmp = NULL;
}

typedef struct Artifact {
	const char *path;
	const PfArtifactOptions *o;
	PfOverlay *ov;
	uint64_t image_bytes;
	PfExtents ranges; /* rounded out to blocks, clipped, sorted and merged */
	uint64_t mapped_bytes;

	/* The reader thread hashes each range for the bmap. */
	EVP_MD_CTX *range_md;
	uint8_t (*digests)[SHA256_BYTES]; /* one per range; NULL without a bmap */
	size_t next_range;

	/* The writer thread (and, at the end, the calling thread) produces the artifact. */
	TmpFile out;
	EVP_MD_CTX *md; /* of the artifact file's bytes */
	uint64_t pos;	/* image bytes produced so far */
	uint64_t file_bytes;
	uint8_t *zeros;
	struct archive *archive;
	bool archive_closed;
	bool aborted; /* the stream is abandoned: nothing more reaches the file */
	int io_error; /* of the archive's write callback, with its message */
	char io_message[256];

	TmpFile bmap;
} Artifact;

static void artifact_done(Artifact *a)
{
	if (a->archive) {
		/* libarchive 3.6 releases a compressor's state only in close (archive_write_fail()
		 * then free leaks it): close, with the sink refusing every byte, so the compressor
		 * stops at its first full output buffer and nothing more reaches the file, which is
		 * removed anyway. */
		if (!a->archive_closed) {
			a->aborted = true;
			(void)archive_write_close(a->archive);
		}
		archive_write_free(a->archive);
	}
	tmp_done(&a->out);
	tmp_done(&a->bmap);
	EVP_MD_CTX_free(a->md);
	EVP_MD_CTX_free(a->range_md);
	free(a->digests);
	free(a->zeros);
	pf_extents_done(&a->ranges);
}

static bool cancelled(const Artifact *a)
{
	return a->o->cancel && *a->o->cancel;
}

static int cancel_error(const Artifact *a)
{
	return pf_error_set(-ECANCELED, "writing '%s' was cancelled", a->path);
}

/* Rounds the caller's ranges out to whole blocks, clipped to the image. */
static int round_ranges(Artifact *a, const PfExtents *ranges)
{
	for (size_t i = 0; ranges && i < ranges->n; i++) {
		uint64_t start = ranges->items[i].start_bytes, end;
		int r;

		if (ranges->items[i].length_bytes == 0)
			continue;
		if (ADD_OVERFLOW(start, ranges->items[i].length_bytes, &end) ||
		    end > a->image_bytes)
			return pf_error_set(
				-EINVAL,
				"range at byte %" PRIu64 " of %" PRIu64
				" bytes ends past the image (%" PRIu64 " bytes) for '%s'",
				start, ranges->items[i].length_bytes, a->image_bytes, a->path);
		start -= start % BLOCK;
		end = MIN(ALIGN_UP(end, (uint64_t)BLOCK), a->image_bytes);
		r = pf_extents_add(&a->ranges, start, end - start);
		if (r < 0)
			return r;
	}
	a->mapped_bytes = pf_extents_total(&a->ranges);
	return 0;
}

/* ---- the reader thread ----------------------------------------------------------------- */

static int read_chunk(void *userdata, uint64_t offset_bytes, uint8_t *buf, size_t len)
{
	Artifact *a = userdata;
	const PfExtent *e;
	int r;

	r = pf_overlay_read(a->ov, offset_bytes, buf, len);
	if (r < 0)
		return pf_error_prefix(r, "cannot read the image for '%s' at byte %" PRIu64,
				       a->path, offset_bytes);
	if (!a->digests)
		return 0;

	/* Chunks come range by range, in order, never crossing a range's end. */
	if (a->next_range >= a->ranges.n)
		return pf_error_set(-EPROTO, "chunk at byte %" PRIu64 " outside the ranges",
				    offset_bytes);
	e = &a->ranges.items[a->next_range];
	if (offset_bytes == e->start_bytes &&
	    EVP_DigestInit_ex(a->range_md, EVP_sha256(), NULL) != 1)
		return pf_error_set(-ENOMEM, "cannot start SHA-256");
	if (EVP_DigestUpdate(a->range_md, buf, len) != 1)
		return pf_error_set(-EIO, "SHA-256 failed");
	if (offset_bytes + len == e->start_bytes + e->length_bytes) {
		if (EVP_DigestFinal_ex(a->range_md, a->digests[a->next_range], NULL) != 1)
			return pf_error_set(-EIO, "SHA-256 failed");
		a->next_range++;
	}
	return 0;
}

/* ---- the writer side ------------------------------------------------------------------- */

static int hash(Artifact *a, const void *p, size_t n)
{
	if (EVP_DigestUpdate(a->md, p, n) != 1)
		return pf_error_set(-EIO, "SHA-256 failed");
	return 0;
}

/* libarchive's error, translated once: the errno it carries (else -EIO) and its message. */
static int archive_failed(Artifact *a, const char *what)
{
	const char *msg;
	int e;

	if (a->io_error < 0)
		return pf_error_set(a->io_error, "cannot write '%s': %s", a->path, a->io_message);
	e = archive_errno(a->archive);
	msg = archive_error_string(a->archive);
	return pf_error_set(e > 0 ? -e : -EIO, "cannot %s '%s': %s", what, a->path,
			    msg ?: "unknown libarchive error");
}

/* libarchive's sink: the compressed stream goes to the file and through the hash. */
static la_ssize_t archive_out(struct archive *ar, void *userdata, const void *buf, size_t len)
{
	Artifact *a = userdata;
	int r;

	if (a->aborted) {
		archive_set_error(ar, ECANCELED, "abandoned");
		return -1;
	}
	r = pf_write_all(a->out.fd, buf, len, a->file_bytes);
	if (r < 0) {
		/* libarchive's own error path may run before the message is read: keep it. */
		a->io_error = r;
		snprintf(a->io_message, sizeof(a->io_message), "%s", pf_error_message(r));
		archive_set_error(ar, -r, "write failed");
		return -1;
	}
	if (EVP_DigestUpdate(a->md, buf, len) != 1) {
		archive_set_error(ar, EIO, "SHA-256 failed");
		return -1;
	}
	a->file_bytes += len;
	return (la_ssize_t)len;
}

static int compress(Artifact *a, const uint8_t *p, size_t n)
{
	while (n > 0) {
		la_ssize_t k = archive_write_data(a->archive, p, n);

		if (k <= 0)
			return archive_failed(a, "compress");
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* The image continues with zeros up to end_bytes: holes of a raw file, input to a compressor. */
static int emit_zeros(Artifact *a, uint64_t end_bytes)
{
	while (a->pos < end_bytes) {
		size_t n = (size_t)MIN((uint64_t)ZERO_BYTES, end_bytes - a->pos);
		int r;

		if (cancelled(a))
			return cancel_error(a);
		if (a->archive)
			r = compress(a, a->zeros, n);
		else
			r = hash(a, a->zeros, n);
		if (r < 0)
			return r;
		a->pos += n;
	}
	return 0;
}

/* Writes the blocks of buf that are not zero; zero blocks stay holes of the new file. */
static int write_sparse(Artifact *a, const uint8_t *buf, size_t len)
{
	int r = pf_pwrite_sparse(a->out.fd, buf, len, a->pos, BLOCK, NULL);

	return r < 0 ? pf_error_prefix(r, "cannot write '%s'", a->path) : 0;
}

static int write_chunk(void *userdata, uint64_t offset_bytes, const uint8_t *buf, size_t len)
{
	Artifact *a = userdata;
	int r;

	if (cancelled(a))
		return cancel_error(a);
	r = emit_zeros(a, offset_bytes);
	if (r < 0)
		return r;
	if (a->archive)
		r = compress(a, buf, len);
	else {
		r = hash(a, buf, len);
		if (r >= 0)
			r = write_sparse(a, buf, len);
	}
	if (r < 0)
		return r;
	a->pos += len;
	return 0;
}

static int archive_setup(Artifact *a)
{
	const char *filter = formats[a->o->format].filter;
	int level = a->o->level ?: formats[a->o->format].default_level;
	/* libarchive 3.6 gives xz exactly 1 thread liblzma's single-threaded encoder, whose
	 * output differs from the multi-threaded one's; zstd with 0 threads libzstd's
	 * single-threaded mode, whose output differs from that of 1 worker or more. The
	 * multi-threaded encoders cut the input into the same blocks whatever the count. */
	unsigned threads = MAX(a->o->threads, a->o->format == PF_ARTIFACT_IMG_XZ ? 2u : 1u);
	_cleanup_(archive_entry_freep) struct archive_entry *entry = NULL;
	char value[16];
	int r;

	a->archive = archive_write_new();
	if (!a->archive)
		return -ENOMEM;
	r = archive_write_set_format_raw(a->archive);
	if (r == ARCHIVE_OK) {
		switch (a->o->format) {
		case PF_ARTIFACT_IMG_ZST:
			r = archive_write_add_filter_zstd(a->archive);
			break;
		case PF_ARTIFACT_IMG_XZ:
			r = archive_write_add_filter_xz(a->archive);
			break;
		default:
			r = archive_write_add_filter_gzip(a->archive);
			break;
		}
	}
	if (r != ARCHIVE_OK)
		return archive_failed(a, "set up compression for");

	snprintf(value, sizeof(value), "%d", level);
	r = archive_write_set_filter_option(a->archive, filter, "compression-level", value);
	if (r == ARCHIVE_OK && a->o->format != PF_ARTIFACT_IMG_GZ) {
		snprintf(value, sizeof(value), "%u", threads);
		r = archive_write_set_filter_option(a->archive, filter, "threads", value);
	}
	if (r == ARCHIVE_OK && a->o->format == PF_ARTIFACT_IMG_GZ)
		/* "!timestamp": the header's time field stays zero. */
		r = archive_write_set_filter_option(a->archive, filter, "timestamp", NULL);
	if (r != ARCHIVE_OK)
		return archive_failed(a, "set compression options for");

	/* Blocked output, but the last block is not padded: nothing may follow the stream. */
	if (archive_write_set_bytes_per_block(a->archive, ARCHIVE_BLOCK_BYTES) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a->archive, 1) != ARCHIVE_OK)
		return archive_failed(a, "set up output for");
	if (archive_write_open2(a->archive, a, NULL, archive_out, NULL, NULL) != ARCHIVE_OK)
		return archive_failed(a, "start");

	entry = archive_entry_new();
	if (!entry)
		return -ENOMEM;
	archive_entry_set_pathname(entry, "image");
	archive_entry_set_filetype(entry, AE_IFREG);
	archive_entry_set_perm(entry, 0644);
	archive_entry_set_size(entry, (la_int64_t)a->image_bytes);
	if (archive_write_header(a->archive, entry) != ARCHIVE_OK)
		return archive_failed(a, "start");
	return 0;
}

/* Completes the stream (compressed) or the file's size (raw). */
static int finish_artifact(Artifact *a)
{
	if (a->archive) {
		a->archive_closed = true;
		if (archive_write_close(a->archive) != ARCHIVE_OK)
			return archive_failed(a, "finish");
		return 0;
	}
	if (ftruncate(a->out.fd, (off_t)a->image_bytes) < 0)
		return pf_error_set(-errno, "cannot set the size of '%s' to %" PRIu64 " bytes: %m",
				    a->path, a->image_bytes);
	a->file_bytes = a->image_bytes;
	return 0;
}

/* ---- the bmap ------------------------------------------------------------------------- */

typedef struct BmapWriter {
	Artifact *a;
	EVP_MD_CTX *md;
	char buf[BMAP_BUFFER_BYTES];
	size_t len;
	uint64_t offset; /* of buf[0] in the file */
	uint64_t checksum_offset;
	int error;
} BmapWriter;

static void bmap_flush(BmapWriter *b)
{
	int r;

	if (b->error < 0 || b->len == 0)
		return;
	if (EVP_DigestUpdate(b->md, b->buf, b->len) != 1) {
		b->error = pf_error_set(-EIO, "SHA-256 failed");
		return;
	}
	r = pf_pwrite_all(b->a->bmap.fd, b->buf, b->len, b->offset);
	if (r < 0) {
		b->error = pf_error_prefix(r, "cannot write '%s'", b->a->o->bmap_path);
		return;
	}
	b->offset += b->len;
	b->len = 0;
}

_printf_(2, 3) static void bmap_printf(BmapWriter *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		if (b->error == 0)
			b->error = pf_error_set(-EINVAL, "bmap line too long");
		return;
	}
	if (b->len + (size_t)n > sizeof(b->buf))
		bmap_flush(b);
	memcpy(b->buf + b->len, line, (size_t)n);
	b->len += (size_t)n;
}

static BmapWriter *bmap_writer_free(BmapWriter *b)
{
	if (b) {
		EVP_MD_CTX_free(b->md);
		free(b);
	}
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(BmapWriter *, bmap_writer_free);

static int bmap_writer_new(Artifact *a, BmapWriter **ret)
{
	_cleanup_(bmap_writer_freep) BmapWriter *b = calloc(1, sizeof(BmapWriter));

	if (!b)
		return -ENOMEM;
	b->a = a;
	b->md = EVP_MD_CTX_new();
	if (!b->md || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
		return -ENOMEM;
	*ret = TAKE_PTR(b);
	return 0;
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = 0;
}

/* Blocks the ranges touch. */
static uint64_t mapped_blocks(const Artifact *a)
{
	uint64_t n = 0;

	for (size_t i = 0; i < a->ranges.n; i++) {
		const PfExtent *e = &a->ranges.items[i];

		n += DIV_ROUND_UP(e->start_bytes + e->length_bytes, (uint64_t)BLOCK) -
		     e->start_bytes / BLOCK;
	}
	return n;
}

/* Everything before the block map, with the file's checksum as 64 '0' (its offset kept). */
static void bmap_header(BmapWriter *b, const Artifact *a)
{
	uint64_t blocks = DIV_ROUND_UP(a->image_bytes, (uint64_t)BLOCK);
	uint64_t mapped_n = mapped_blocks(a);
	char size[32], mapped[32], zeros[SHA256_HEX + 1];

	pf_format_bytes(size, sizeof(size), a->image_bytes);
	pf_format_bytes(mapped, sizeof(mapped), mapped_n * BLOCK);

	bmap_printf(b, "<?xml version=\"1.0\" ?>\n"
		       "<!-- This file contains the block map for an image file, written by "
		       "piflash.\n"
		       "     Only the mapped blocks need to be copied; all others are zero. -->\n"
		       "\n"
		       "<bmap version=\"2.0\">\n");
	bmap_printf(b,
		    "    <!-- Image size in bytes: %s -->\n    <ImageSize> %" PRIu64
		    " </ImageSize>\n\n",
		    size, a->image_bytes);
	bmap_printf(b, "    <!-- Size of a block in bytes -->\n    <BlockSize> %u </BlockSize>\n\n",
		    BLOCK);
	bmap_printf(b,
		    "    <!-- Count of blocks in the image file -->\n    <BlocksCount> %" PRIu64
		    " </BlocksCount>\n\n",
		    blocks);
	bmap_printf(b,
		    "    <!-- Count of mapped blocks: %s -->\n    <MappedBlocksCount> %" PRIu64
		    " </MappedBlocksCount>\n\n",
		    mapped, mapped_n);
	bmap_printf(b, "    <!-- Type of checksum used in this file -->\n"
		       "    <ChecksumType> sha256 </ChecksumType>\n\n");
	bmap_printf(b, "    <!-- The checksum of this bmap file. When it is calculated, the value "
		       "of\n         the checksum has to be zero (all ASCII \"0\" symbols).  -->\n"
		       "    <BmapFileChecksum> ");
	b->checksum_offset = b->offset + b->len;
	memset(zeros, '0', SHA256_HEX);
	zeros[SHA256_HEX] = 0;
	bmap_printf(b, "%s </BmapFileChecksum>\n\n", zeros);
}

/* The block map: each range with its SHA-256, then the end of the file. */
static void bmap_ranges(BmapWriter *b, const Artifact *a)
{
	char hexbuf[SHA256_HEX + 1];

	bmap_printf(b, "    <!-- The block map which consists of elements which may either be a\n"
		       "         range of blocks or a single block. The 'chksum' attribute\n"
		       "         (if present) is the checksum of this blocks range. -->\n"
		       "    <BlockMap>\n");
	for (size_t i = 0; i < a->ranges.n && b->error == 0; i++) {
		const PfExtent *e = &a->ranges.items[i];
		uint64_t first = e->start_bytes / BLOCK;
		uint64_t last = (e->start_bytes + e->length_bytes - 1) / BLOCK;

		hex(a->digests[i], SHA256_BYTES, hexbuf);
		if (first == last)
			bmap_printf(b, "        <Range chksum=\"%s\"> %" PRIu64 " </Range>\n",
				    hexbuf, first);
		else
			bmap_printf(b,
				    "        <Range chksum=\"%s\"> %" PRIu64 "-%" PRIu64
				    " </Range>\n",
				    hexbuf, first, last);
	}
	bmap_printf(b, "    </BlockMap>\n</bmap>\n");
}

/* Flushes the rest and patches the file's checksum in over its zeros. */
static int bmap_finish(BmapWriter *b)
{
	uint8_t digest[SHA256_BYTES];
	char hexbuf[SHA256_HEX + 1];
	int r;

	bmap_flush(b);
	if (b->error == 0 && EVP_DigestFinal_ex(b->md, digest, NULL) != 1)
		b->error = pf_error_set(-EIO, "SHA-256 failed");
	if (b->error < 0)
		return b->error;

	hex(digest, SHA256_BYTES, hexbuf);
	r = pf_pwrite_all(b->a->bmap.fd, hexbuf, SHA256_HEX, b->checksum_offset);
	return r < 0 ? pf_error_prefix(r, "cannot write '%s'", b->a->o->bmap_path) : 0;
}

/*
 * bmaptool's format 2.0, laid out as bmaptool create writes it. BmapFileChecksum is the
 * SHA-256 of the whole file with that field's value written as 64 '0': the file is hashed as
 * written, zeros in place, and the value patched in at the end.
 */
static int write_bmap(Artifact *a)
{
	_cleanup_(bmap_writer_freep) BmapWriter *b = NULL;
	int r;

	r = bmap_writer_new(a, &b);
	if (r < 0)
		return r;
	bmap_header(b, a);
	bmap_ranges(b, a);
	return bmap_finish(b);
}

/* ---- the whole job --------------------------------------------------------------------- */

static int check_options(const char *path, const PfArtifactOptions *o)
{
	if ((unsigned)o->format >= ELEMENTSOF(formats))
		return pf_error_set(-EINVAL, "unknown artifact format %d for '%s'", (int)o->format,
				    path);
	if (o->threads > PF_ARTIFACT_MAX_THREADS)
		return pf_error_set(-EINVAL, "%u compressor threads for '%s': at most %u",
				    o->threads, path, PF_ARTIFACT_MAX_THREADS);
	if (o->level != 0 && (o->level < 1 || o->level > formats[o->format].max_level)) {
		if (formats[o->format].max_level == 0)
			return pf_error_set(-EINVAL,
					    "a compression level (%d) for an uncompressed image "
					    "'%s'",
					    o->level, path);
		return pf_error_set(-EINVAL, "compression level %d for '%s': %s takes 1 to %d",
				    o->level, path, formats[o->format].name,
				    formats[o->format].max_level);
	}
	if (o->bmap_path && streq(o->bmap_path, path))
		return pf_error_set(-EINVAL, "the bmap and the image are both '%s'", path);
	return 0;
}

int pf_artifact_write(const char *path, PfOverlay *ov, const PfExtents *ranges,
		      const PfArtifactOptions *o, PfArtifactResult *ret)
{
	return pf_artifact_write_at(AT_FDCWD, path, ov, ranges, o, ret);
}

/* The hashes: of the artifact file, and (for a bmap) of each range. */
static int alloc_hashes(Artifact *a)
{
	a->md = EVP_MD_CTX_new();
	a->zeros = calloc(1, ZERO_BYTES);
	if (!a->md || !a->zeros || EVP_DigestInit_ex(a->md, EVP_sha256(), NULL) != 1)
		return -ENOMEM;
	if (a->o->bmap_path) {
		a->range_md = EVP_MD_CTX_new();
		a->digests = calloc(MAX(a->ranges.n, (size_t)1), SHA256_BYTES);
		if (!a->range_md || !a->digests)
			return -ENOMEM;
	}
	return 0;
}

/* The temporary files, both names checked before the long part, and the compressor. */
static int open_outputs(Artifact *a, int dir_fd)
{
	int r;

	r = tmp_create(&a->out, dir_fd, a->path);
	if (r < 0)
		return r;
	if (a->o->bmap_path) {
		r = tmp_create(&a->bmap, dir_fd, a->o->bmap_path);
		if (r < 0)
			return r;
	}
	if (formats[a->o->format].filter)
		return archive_setup(a);
	return 0;
}

/* The image: the ranges read and written in overlapping threads, zeros to its end, then the
 * bmap. */
static int write_image(Artifact *a)
{
	PfStream s = {
		.ranges = &a->ranges,
		.read = read_chunk,
		.read_data = a,
		.write = write_chunk,
		.write_data = a,
		.cancel = a->o->cancel,
	};
	int r;

	r = pf_stream_run(&s, NULL);
	if (r == -ECANCELED)
		return cancel_error(a);
	if (r < 0)
		return r;
	r = emit_zeros(a, a->image_bytes);
	if (r < 0)
		return r;
	r = finish_artifact(a);
	if (r < 0)
		return r;
	if (!a->o->bmap_path)
		return 0;
	if (a->next_range != a->ranges.n)
		return pf_error_set(-EIO, "'%s': not every range was read", a->path);
	return write_bmap(a);
}

/* Flushes both files and renames them into place, the image first; an image whose bmap
 * cannot be renamed is taken back. */
static int commit_outputs(Artifact *a, int dir_fd)
{
	const char *bmap_path = a->o->bmap_path;
	int r;

	r = tmp_finish(&a->out);
	if (r < 0)
		return r;
	if (bmap_path) {
		/* The image stays 0600 (pf_tmpfile_at()): it may hold private host keys. The bmap
		 * holds block numbers and digests only. */
		if (fchmod(a->bmap.fd, 0644) < 0)
			return pf_error_set(-errno, "cannot set the mode of '%s': %m", bmap_path);
		r = tmp_finish(&a->bmap);
		if (r < 0)
			return r;
	}
	r = tmp_rename(&a->out);
	if (r < 0)
		return r;
	if (bmap_path) {
		r = tmp_rename(&a->bmap);
		if (r < 0) {
			/* An image without the bmap asked for is a failure: take it back. */
			(void)unlinkat(dir_fd, a->path, 0);
			return r;
		}
		pf_fsync_dir_at(dir_fd, bmap_path);
	}
	pf_fsync_dir_at(dir_fd, a->path);
	return 0;
}

int pf_artifact_write_at(int dir_fd, const char *path, PfOverlay *ov, const PfExtents *ranges,
			 const PfArtifactOptions *o, PfArtifactResult *ret)
{
	_cleanup_(artifact_done) Artifact a = {
		.path = path,
		.o = o,
		.ov = ov,
		.out.fd = -1,
		.bmap.fd = -1,
	};
	PfArtifactResult result = {};
	uint8_t digest[SHA256_BYTES];
	int r;

	if (!path || !ov || !o)
		return pf_error_set(-EINVAL, "missing argument");
	r = check_options(path, o);
	if (r < 0)
		return r;
	if (cancelled(&a))
		return cancel_error(&a);

	a.image_bytes = pf_overlay_size(ov);
	r = round_ranges(&a, ranges);
	if (r < 0)
		return r;
	r = alloc_hashes(&a);
	if (r < 0)
		return r;
	r = open_outputs(&a, dir_fd);
	if (r < 0)
		return r;
	r = write_image(&a);
	if (r < 0)
		return r;
	if (EVP_DigestFinal_ex(a.md, digest, NULL) != 1)
		return pf_error_set(-EIO, "SHA-256 failed");
	if (cancelled(&a))
		return cancel_error(&a);
	r = commit_outputs(&a, dir_fd);
	if (r < 0)
		return r;

	result.image_bytes = a.image_bytes;
	result.mapped_bytes = a.mapped_bytes;
	result.file_bytes = a.file_bytes;
	hex(digest, SHA256_BYTES, result.sha256);
	if (ret)
		*ret = result;
	return 0;
}
