/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Decompression of an image into a sparse file: gzip, zstd, bzip2 and zip (one *.img
 * entry) through libarchive, xz through liblzma on every core (disk/xz.h).
 */

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "disk/fetch.h"
#include "disk/source.h"
#include "disk/xz.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

#include "disk/source-internal.h"

static bool is_img_name(const char *name)
{
	size_t l = strlen(name);

	return l > 4 && strcasecmp(name + l - 4, ".img") == 0 && name[l - 5] != '/';
}

/* libarchive leaves the error string unset for some failures (a gzip stream missing its
 * trailer); printing NULL with %s is undefined. */
static const char *archive_error(struct archive *a)
{
	return archive_error_string(a) ?: "unexpected end of data or corrupt data";
}

/* The libarchive filter that decodes kind. */
static int filter_code(PfSourceKind kind)
{
	switch (kind) {
	case PF_SOURCE_GZIP:
		return ARCHIVE_FILTER_GZIP;
	case PF_SOURCE_XZ:
		return ARCHIVE_FILTER_XZ;
	case PF_SOURCE_ZSTD:
		return ARCHIVE_FILTER_ZSTD;
	case PF_SOURCE_BZIP2:
		return ARCHIVE_FILTER_BZIP2;
	default:
		return ARCHIVE_FILTER_NONE;
	}
}

static struct archive *archive_open(const char *path, PfSourceKind kind)
{
	struct archive *a = archive_read_new();

	if (!a)
		return NULL;
	/* Only the decoder for the kind the magic bytes named: libarchive must not pick
	 * another, nor pass the input through undecoded when its own check rejects it. */
	switch (kind) {
	case PF_SOURCE_ZIP:
		archive_read_support_format_zip(a);
		break;
	case PF_SOURCE_GZIP:
		archive_read_support_filter_gzip(a);
		break;
	case PF_SOURCE_XZ:
		archive_read_support_filter_xz(a);
		break;
	case PF_SOURCE_ZSTD:
		archive_read_support_filter_zstd(a);
		break;
	case PF_SOURCE_BZIP2:
		archive_read_support_filter_bzip2(a);
		break;
	default:
		break;
	}
	if (kind != PF_SOURCE_ZIP)
		archive_read_support_format_raw(a);
	if (archive_read_open_filename(a, path, READ_BUFFER_BYTES) != ARCHIVE_OK)
		return a; /* the caller reads the error from a */
	return a;
}

/* Finds the single *.img entry of a zip; an error lists what the archive holds. */
int source_zip_find_image(const char *path, char **ret_entry)
{
	struct archive *a = archive_open(path, PF_SOURCE_ZIP);
	struct archive_entry *e;
	char listing[1024] = "";
	char *found = NULL;
	unsigned n_img = 0, n_all = 0;
	int r;

	if (!a)
		return -ENOMEM;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);

		if (!name)
			name = "?";
		if (n_all < ZIP_LIST_MAX) {
			size_t l = strlen(listing);
			snprintf(listing + l, sizeof(listing) - l, "%s'%s'", l ? ", " : "", name);
		}
		n_all++;
		if (archive_entry_filetype(e) == AE_IFREG && is_img_name(name)) {
			n_img++;
			if (!found)
				found = strdup(name);
		}
		archive_read_data_skip(a);
	}
	if (r != ARCHIVE_EOF) {
		r = pf_error_set(-EIO, "zip archive is corrupt: %s", archive_error(a));
		archive_read_free(a);
		free(found);
		return r;
	}
	archive_read_free(a);

	if (n_img == 1) {
		*ret_entry = found;
		return found ? 0 : -ENOMEM;
	}
	free(found);
	if (n_all == 0)
		return pf_error_set(-ENOENT, "zip archive is empty");
	return pf_error_set(n_img == 0 ? -ENOENT : -ENOTUNIQ,
			    "zip archive holds %s *.img file (it holds %u entr%s: %s%s)",
			    n_img == 0 ? "no" : "more than one", n_all, n_all == 1 ? "y" : "ies",
			    listing, n_all > ZIP_LIST_MAX ? ", ..." : "");
}

/* Where decoded bytes go: the cache file, written sparse, and who wants to know. */
typedef struct Sink {
	int out_fd;
	const PfSourceOptions *opts;
	uint64_t next_report;
} Sink;

/* Writes len decoded bytes at offset; tells opts->progress and opts->decoded. */
static int sink_write(Sink *k, uint64_t offset, const uint8_t *buf, size_t len)
{
	const PfSourceOptions *opts = k->opts;
	uint64_t done = offset + len;
	int r;

	r = pf_pwrite_sparse(k->out_fd, buf, len, offset, BLOCK, NULL);
	if (r < 0)
		return pf_error_prefix(r, "cannot write the decompressed image");
	if (opts && opts->progress && done >= k->next_report) {
		opts->progress(done, opts->userdata);
		k->next_report = done + 64 * MIB;
	}
	if (opts && opts->decoded)
		return opts->decoded(k->out_fd, done, opts->decoded_data);
	return 0;
}

static int xz_output(void *userdata, uint64_t offset, const uint8_t *buf, size_t len)
{
	return sink_write(userdata, offset, buf, len);
}

/* An .xz through liblzma, on every core (disk/xz.h), rather than libarchive's one thread. */
static int decompress_xz(const char *path, int out_fd, const PfSourceOptions *opts,
			 uint64_t *ret_size)
{
	_cleanup_(closep) int fd = -1;
	Sink k = { .out_fd = out_fd, .opts = opts, .next_report = 64 * MIB };
	PfXzOptions o = {
		.max_bytes = PF_SOURCE_MAX_BYTES,
		.output = xz_output,
		.userdata = &k,
	};
	uint64_t size;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return pf_error_set(-errno, "cannot open: %m");
	r = pf_xz_decode(fd, &o, &size);
	if (r < 0)
		return r;
	/* Trailing holes need the size set explicitly. */
	if (ftruncate(out_fd, (off_t)size) < 0)
		return pf_error_set(-errno, "cannot size decompressed image: %m");
	*ret_size = size;
	return 0;
}

/* Decompresses path (of kind) into out_fd, sparse. Returns the size in *ret_size. */
int source_decompress(const char *path, PfSourceKind kind, const char *entry, int out_fd,
		      const PfSourceOptions *opts, uint64_t *ret_size)
{
	struct archive *a;
	struct archive_entry *e;
	_cleanup_(freep) uint8_t *buf = NULL;
	Sink k = { .out_fd = out_fd, .opts = opts, .next_report = 64 * MIB };
	uint64_t done = 0;
	int r;

	if (kind == PF_SOURCE_XZ)
		return decompress_xz(path, out_fd, opts, ret_size);
	buf = malloc(READ_BUFFER_BYTES);
	if (!buf)
		return -ENOMEM;
	a = archive_open(path, kind);
	if (!a)
		return -ENOMEM;

	for (;;) {
		r = archive_read_next_header(a, &e);
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			r = pf_error_set(-EIO,
					 "%s stream is empty, corrupt or truncated after 0 bytes "
					 "of image: %s",
					 pf_source_kind_name(kind),
					 r == ARCHIVE_EOF ? "no data" : archive_error(a));
			goto out;
		}
		if (!entry || streq(archive_entry_pathname(e) ?: "", entry))
			break;
		archive_read_data_skip(a);
	}
	if (kind != PF_SOURCE_ZIP && archive_filter_code(a, 0) != filter_code(kind)) {
		r = pf_error_set(-EINVAL, "not a valid %s stream: it starts like one, but %s",
				 pf_source_kind_name(kind),
				 "the decompressor does not accept its header");
		goto out;
	}

	for (;;) {
		la_ssize_t n = archive_read_data(a, buf, READ_BUFFER_BYTES);

		if (n == 0)
			break;
		if (n < 0) {
			r = pf_error_set(-EIO,
					 "%s stream is corrupt or truncated after %" PRIu64
					 " bytes of image: %s",
					 pf_source_kind_name(kind), done, archive_error(a));
			goto out;
		}
		if (done + (uint64_t)n > PF_SOURCE_MAX_BYTES) {
			r = pf_error_set(-EFBIG, "decompressed image exceeds %" PRIu64 " GiB",
					 PF_SOURCE_MAX_BYTES / GIB);
			goto out;
		}
		r = sink_write(&k, done, buf, (size_t)n);
		if (r < 0)
			goto out;
		done += (uint64_t)n;
	}
	if (done == 0) {
		r = pf_error_set(-EINVAL, "%s stream holds an empty image",
				 pf_source_kind_name(kind));
		goto out;
	}
	/* Trailing holes need the size set explicitly. */
	if (ftruncate(out_fd, (off_t)done) < 0) {
		r = pf_error_set(-errno, "cannot size decompressed image: %m");
		goto out;
	}
	*ret_size = done;
	r = 0;
out:
	archive_read_free(a);
	return r;
}
