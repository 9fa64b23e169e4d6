/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Opening an image (see source.h): a list of steps over a local file, standard input or a
 * URL, decompressed through the cache (source-cache.c) or, with --no-cache, into a temporary
 * file. The top of disk/source*.
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

/*
 * Standard input is read once: copied, sparse, into an unlinked temporary file while its
 * SHA-256 is computed. Returns the file's descriptor.
 */
static int open_stdin(PfSource *s)
{
	_cleanup_(freep) uint8_t *buf = malloc(READ_BUFFER_BYTES);
	_cleanup_(closep) int fd = -1;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	uint64_t done = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	if (isatty(STDIN_FILENO))
		return pf_error_set(-EINVAL, "standard input is a terminal, not an image "
					     "(pipe one in: ... < IMAGE)");
	fd = source_open_tmp_input();
	if (fd < 0)
		return fd;
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = -EIO;
		goto out;
	}
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, READ_BUFFER_BYTES);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pf_error_set(-errno, "cannot read standard input: %m");
			goto out;
		}
		if (n == 0)
			break;
		if (done + (uint64_t)n > PF_SOURCE_MAX_BYTES) {
			r = pf_error_set(-EFBIG, "standard input exceeds %" PRIu64 " GiB",
					 PF_SOURCE_MAX_BYTES / GIB);
			goto out;
		}
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			r = -EIO;
			goto out;
		}
		r = pf_pwrite_sparse(fd, buf, (size_t)n, done, BLOCK, NULL);
		if (r < 0) {
			r = pf_error_prefix(r, "cannot copy standard input to a temporary file");
			goto out;
		}
		done += (uint64_t)n;
	}
	if (ftruncate(fd, (off_t)done) < 0) {
		r = pf_error_set(-errno, "cannot size the copy of standard input: %m");
		goto out;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
		r = -EIO;
		goto out;
	}
	source_hex32(md, s->sha256);
	s->is_stdin = true;
	r = source_input_path_fd(s, fd);
	if (r >= 0)
		r = TAKE_FD(fd);
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

static int open_uncached(PfSource *s, const PfSourceOptions *opts)
{
	_cleanup_(closep) int fd = -1;
	uint64_t size;
	int r;

	fd = source_open_tmp_input();
	if (fd < 0)
		return fd;
	r = source_decompress(s->input_path, s->kind, s->entry, fd, opts, &size);
	if (r < 0)
		return r;
	s->size_bytes = size;
	s->fd = TAKE_FD(fd);
	s->decompressed_now = true;
	return 0;
}

/* Opens the input: a URL (downloaded), standard input (copied) or a file. Returns its fd. */
static int open_input(PfSource *s, const char *path, const PfSourceOptions *opts)
{
	int fd;

	if (pf_fetch_is_url(path))
		return opts && opts->no_cache ? source_open_url_uncached(s, opts)
					      : source_open_url_cached(s, opts);
	if (streq(path, "-"))
		return open_stdin(s);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return pf_error_set(-errno, "cannot open: %m");
	return fd;
}

/* A regular file or a block device, not empty; a device's size goes into st_size. */
static int check_input(int fd, struct stat *st)
{
	if (fstat(fd, st) < 0)
		return pf_error_set(-errno, "cannot stat: %m");
	if (S_ISDIR(st->st_mode))
		return pf_error_set(-EISDIR, "is a directory, not an image");
	if (!S_ISREG(st->st_mode) && !S_ISBLK(st->st_mode))
		return pf_error_set(-EINVAL, "is neither a regular file nor a block device");
	if (S_ISBLK(st->st_mode)) {
		uint64_t bytes;

		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0)
			return pf_error_set(-errno, "cannot get device size: %m");
		st->st_size = (off_t)bytes;
	}
	if (st->st_size == 0)
		return pf_error_set(-EINVAL, "is empty");
	return 0;
}

/* Checked before anything is made of the input, let alone written. */
static int check_sha256(PfSource *s, int fd, const PfSourceOptions *opts)
{
	int r;

	if (!opts || !opts->sha256)
		return 0;
	if (!s->sha256[0]) {
		r = source_sha256_fd(fd, s->sha256);
		if (r < 0)
			return r;
	}
	if (!streq(s->sha256, opts->sha256))
		return pf_error_set(-EBADMSG, "SHA-256 mismatch: expected %s, got %s", opts->sha256,
				    s->sha256);
	return 0;
}

/* A compressed input: decompressed into the cache, or a temporary file with --no-cache. */
static int open_compressed(PfSource *s, int fd, const struct stat *st, const PfSourceOptions *opts)
{
	int r;

	if (s->kind == PF_SOURCE_ZIP) {
		r = source_zip_find_image(s->input_path, &s->entry);
		if (r < 0)
			return r;
	}
	if (opts && opts->no_cache)
		return open_uncached(s, opts);
	return source_open_cached(s, fd, st, opts);
}

int pf_source_open(const char *path, const PfSourceOptions *opts, PfSource **ret)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;
	_cleanup_(closep) int fd = -1;
	uint8_t head[16];
	struct stat st;
	ssize_t n;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->fd = -1;
	s->path = strdup(path);
	s->input_path = strdup(path);
	if (!s->path || !s->input_path)
		return -ENOMEM;
	s->input_is_local = true;

	fd = open_input(s, path, opts);
	if (fd < 0)
		return fd;
	r = check_input(fd, &st);
	if (r < 0)
		return r;
	r = check_sha256(s, fd, opts);
	if (r < 0)
		return r;

	n = pread(fd, head, sizeof(head), 0);
	if (n < 0)
		return pf_error_set(-errno, "cannot read: %m");
	s->kind = S_ISBLK(st.st_mode) ? PF_SOURCE_RAW : pf_source_detect(head, (size_t)n);
	if (s->kind == PF_SOURCE_RAW) {
		s->size_bytes = (uint64_t)st.st_size;
		s->fd = TAKE_FD(fd);
	} else {
		r = open_compressed(s, fd, &st, opts);
		if (r < 0)
			return r;
	}
	source_cache_enforce(s, opts);
	*ret = TAKE_PTR(s);
	return 0;
}
