/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Images named by a URL: downloaded into the cache (or, with --no-cache, a temporary
 * file), resumed from a partial file, revalidated with the server, checked against the
 * SHA-256 asked for (see source.h).
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

/* A download's names in the cache directory, and its paths for messages. */
typedef struct DownloadNames {
	char key[65];
	char data[96], info[96], part[96], part_info[96], lock[96];
	char *data_path, *info_path, *part_path, *part_info_path, *lock_path;
} DownloadNames;

static void download_names_done(DownloadNames *n)
{
	free(n->data_path);
	free(n->info_path);
	free(n->part_path);
	free(n->part_info_path);
	free(n->lock_path);
}

typedef struct DownloadCtx {
	int dfd;
	const DownloadNames *n;
	const char *url;
	const PfSourceOptions *opts;
} DownloadCtx;

/* Records the validators of a download as it starts, for the next run's If-Range. */
static int save_partial_info(const PfFetchInfo *info, void *userdata)
{
	DownloadCtx *h = userdata;
	char total[32];
	const char *kv[] = { "url",	 h->url,	  "etag",
			     info->etag, "last-modified", info->last_modified,
			     "total",	 total,		  NULL };

	unlinkat(h->dfd, h->n->part_info, 0);
	if (!info->etag[0] && !info->last_modified[0])
		return 0; /* nothing to resume by: the partial file will not be kept */
	snprintf(total, sizeof(total), "%" PRIu64, info->total_bytes);
	return source_write_kv(h->dfd, h->n->part_info, h->n->part_info_path, kv);
}

static void fetch_progress_cb(uint64_t done, uint64_t total, void *userdata)
{
	const DownloadCtx *h = userdata;

	h->opts->fetch_progress(done, total, h->opts->fetch_userdata);
}

/* Opens the complete download read-only and checks it is the file written (wst), or any
 * complete download when wst is NULL. */
static int download_open(int dfd, const DownloadNames *n, const struct stat *wst)
{
	_cleanup_(closep) int fd = -1;
	struct stat st;

	fd = source_entry_open_existing(dfd, n->data, "cache file", n->data_path);
	if (fd < 0)
		return fd;
	if (wst) {
		if (fstat(fd, &st) < 0)
			return pf_error_set(-errno, "cannot stat cache file '%s': %m",
					    n->data_path);
		if (st.st_dev != wst->st_dev || st.st_ino != wst->st_ino)
			return pf_error_set(-ESTALE,
					    "cache file '%s' was replaced after it was written",
					    n->data_path);
	}
	(void)utimensat(dfd, n->info, NULL, AT_SYMLINK_NOFOLLOW);
	return TAKE_FD(fd);
}

/* A download under way, with the download's lock held. */
typedef struct Download {
	PfSource *s;
	int dfd;
	const DownloadNames *n;
	const PfSourceOptions *opts;
	DownloadCtx ctx;
	PfFetchRequest req;
	PfFetchInfo info;
	int have_fd;	       /* the complete download already here, or -1 */
	int part_fd;	       /* the partial file written */
	char *etag, *lm, *sha; /* validators and SHA-256 of the complete download */
	char *petag, *plm;     /* validators of the partial file */
} Download;

static void download_done(Download *d)
{
	safe_close(d->have_fd);
	safe_close(d->part_fd);
	free(d->etag);
	free(d->lm);
	free(d->sha);
	free(d->petag);
	free(d->plm);
}

/*
 * Looks at the complete download already here, if any, and reads its validators. Returns 1
 * when it is the image asked for by SHA-256 (no need to ask the server), else 0.
 */
static int download_find_copy(Download *d)
{
	d->have_fd = source_entry_open_existing(d->dfd, d->n->data, "cache file", d->n->data_path);
	if (d->have_fd < 0 && d->have_fd != -ENOENT)
		return d->have_fd;
	if (d->have_fd < 0)
		return 0;
	source_read_info_field(d->dfd, d->n->info, "etag", &d->etag);
	source_read_info_field(d->dfd, d->n->info, "last-modified", &d->lm);
	source_read_info_field(d->dfd, d->n->info, "sha256", &d->sha);
	/* The image asked for is the one already here: no need to ask the server. */
	if (d->opts && d->opts->sha256 && d->sha && streq(d->sha, d->opts->sha256)) {
		snprintf(d->s->sha256, sizeof(d->s->sha256), "%s", d->sha);
		safe_close(d->have_fd);
		d->have_fd = -1;
		return 1;
	}
	return 0;
}

/* A partial download with a validator is resumed; anything else starts afresh (revalidating
 * the complete copy, if there is one). */
static int download_open_part(Download *d)
{
	struct stat st;
	int r;

	d->part_fd =
		openat(d->dfd, d->n->part, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (d->part_fd >= 0) {
		r = source_entry_check(d->part_fd, "partial download", d->n->part_path, &st);
		if (r < 0)
			return r;
		source_read_info_field(d->dfd, d->n->part_info, "etag", &d->petag);
		source_read_info_field(d->dfd, d->n->part_info, "last-modified", &d->plm);
		if (st.st_size > 0 && ((d->petag && *d->petag) || (d->plm && *d->plm))) {
			d->req.resume_from = (uint64_t)st.st_size;
			d->req.if_range = d->petag && *d->petag ? d->petag : d->plm;
		} else {
			safe_close(d->part_fd);
			d->part_fd = -1;
		}
	} else if (errno != ENOENT)
		return source_entry_open_error(errno, "partial download", d->n->part_path);
	if (d->part_fd < 0) {
		d->part_fd = source_entry_create(d->dfd, d->n->part, d->n->part_path);
		if (d->part_fd < 0)
			return d->part_fd;
		if (d->have_fd >= 0) {
			d->req.if_none_match = d->etag;
			d->req.if_modified_since = d->lm;
		}
	}
	return 0;
}

/* Fetches into the partial file, once more from the start when the server refused the
 * range. A failed download's partial file is kept only if it can be resumed safely. */
static int download_fetch(Download *d)
{
	int r;

	for (unsigned attempt = 0;; attempt++) {
		r = pf_fetch(&d->req, d->part_fd, &d->info);
		if ((r == -ERANGE || (r == -EPROTO && d->req.resume_from)) && attempt == 0) {
			/* The server refused the range (the file shrank?) or answered it with
			 * other bytes than asked for: the partial file is not continued. */
			pf_error_clear();
			if (ftruncate(d->part_fd, 0) < 0)
				return pf_error_set(-errno, "cannot truncate '%s': %m",
						    d->n->part_path);
			d->req.resume_from = 0;
			d->req.if_range = NULL;
			continue;
		}
		break;
	}
	if (r < 0) {
		/* Kept for the next run only if it can be resumed safely. */
		if (faccessat(d->dfd, d->n->part_info, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			unlinkat(d->dfd, d->n->part, 0);
		return r;
	}
	return 0;
}

/* 304: the copy here is still the server's file. */
static int download_not_modified(Download *d)
{
	unlinkat(d->dfd, d->n->part, 0);
	unlinkat(d->dfd, d->n->part_info, 0);
	if (d->have_fd < 0)
		return pf_error_set(-EPROTO,
				    "the server answered 304 without a copy to revalidate");
	snprintf(d->s->sha256, sizeof(d->s->sha256), "%s", d->sha ?: "");
	safe_close(d->have_fd);
	d->have_fd = -1;
	return download_open(d->dfd, d->n, NULL);
}

/* Records the complete download's origin, validators, size and SHA-256 in its info file. */
static int download_write_info(Download *d, const struct stat *st)
{
	char size[32];
	const char *kv[] = { "origin",
			     d->s->path,
			     "etag",
			     d->info.etag,
			     "last-modified",
			     d->info.last_modified,
			     "size",
			     size,
			     "sha256",
			     d->s->sha256,
			     NULL };

	snprintf(size, sizeof(size), "%" PRIu64, (uint64_t)st->st_size);
	return source_write_kv(d->dfd, d->n->info, d->n->info_path, kv);
}

/* Complete: checked, recorded, then renamed into place. */
static int download_complete(Download *d)
{
	const DownloadNames *n = d->n;
	struct stat st;
	int r;

	if (fsync(d->part_fd) < 0 || fstat(d->part_fd, &st) < 0)
		return pf_error_set(-errno, "cannot write cache file '%s': %m", n->part_path);
	if (st.st_size == 0) {
		unlinkat(d->dfd, n->part, 0);
		unlinkat(d->dfd, n->part_info, 0);
		return pf_error_set(-EINVAL, "the server sent an empty file");
	}
	r = source_sha256_fd(d->part_fd, d->s->sha256);
	if (r < 0)
		return r;
	if (d->opts && d->opts->sha256 && !streq(d->s->sha256, d->opts->sha256)) {
		/* Not what was asked for: never kept as a download to reuse. */
		unlinkat(d->dfd, n->part, 0);
		unlinkat(d->dfd, n->part_info, 0);
		return pf_error_set(-EBADMSG, "SHA-256 mismatch: expected %s, downloaded %s",
				    d->opts->sha256, d->s->sha256);
	}
	r = download_write_info(d, &st);
	if (r >= 0)
		r = source_entry_rename(d->dfd, n->part, n->data, d->part_fd, n->part_path);
	if (r < 0) {
		unlinkat(d->dfd, n->part, 0);
		unlinkat(d->dfd, n->info, 0);
		return pf_error_prefix(r, "cannot complete download '%s'", n->data_path);
	}
	unlinkat(d->dfd, n->part_info, 0);
	d->s->added_now = true;
	return download_open(d->dfd, n, &st);
}

/* With the download's lock held: reuses, resumes or starts the download of s->path. */
static int download_locked(PfSource *s, int dfd, const DownloadNames *n,
			   const PfSourceOptions *opts)
{
	_cleanup_(download_done) Download d = {
		.s = s,
		.dfd = dfd,
		.n = n,
		.opts = opts,
		.ctx = { .dfd = dfd, .n = n, .url = s->path, .opts = opts },
		.have_fd = -1,
		.part_fd = -1,
	};
	int r;

	d.req = (PfFetchRequest){
		.url = s->path,
		.max_bytes = PF_SOURCE_MAX_BYTES,
		.resumable = true,
		.on_headers = save_partial_info,
		.progress = opts && opts->fetch_progress ? fetch_progress_cb : NULL,
		.userdata = &d.ctx,
	};
	r = download_find_copy(&d);
	if (r != 0)
		return r < 0 ? r : download_open(dfd, n, NULL);
	r = download_open_part(&d);
	if (r < 0)
		return r;
	r = download_fetch(&d);
	if (r < 0)
		return r;
	if (d.info.status == 304)
		return download_not_modified(&d);
	return download_complete(&d);
}

/* Downloads s->path into the cache (or finds it there); returns the download's descriptor. */
int source_open_url_cached(PfSource *s, const PfSourceOptions *opts)
{
	_cleanup_(download_names_done) DownloadNames n = {};
	_cleanup_(freep) char *dir = NULL;
	_cleanup_(closep) int dfd = -1;
	int lock_fd, r;

	dfd = source_cache_open(opts, &dir);
	if (dfd < 0)
		return dfd;
	/* Named after the URL; whether it is still the server's file is asked each run. */
	r = source_sha256_string("piflash url", s->path, n.key);
	if (r < 0)
		return r;
	memcpy(s->keys[0], n.key, sizeof(n.key));
	snprintf(n.data, sizeof(n.data), "%s.download", n.key);
	snprintf(n.info, sizeof(n.info), "%s.url", n.key);
	snprintf(n.part, sizeof(n.part), "%s.download.partial", n.key);
	snprintf(n.part_info, sizeof(n.part_info), "%s.url.partial", n.key);
	snprintf(n.lock, sizeof(n.lock), "%s.lock", n.key);
	if (asprintf(&n.data_path, "%s/%s", dir, n.data) < 0 ||
	    asprintf(&n.info_path, "%s/%s", dir, n.info) < 0 ||
	    asprintf(&n.part_path, "%s/%s", dir, n.part) < 0 ||
	    asprintf(&n.part_info_path, "%s/%s", dir, n.part_info) < 0 ||
	    asprintf(&n.lock_path, "%s/%s", dir, n.lock) < 0)
		return -ENOMEM;

	lock_fd = source_cache_lock(dfd, n.lock, n.lock_path);
	if (lock_fd < 0)
		return lock_fd;
	r = download_locked(s, dfd, &n, opts);
	source_cache_unlock(dfd, n.lock, lock_fd);
	if (r < 0)
		return r;
	free(s->input_path);
	s->input_path = strdup(n.data_path);
	s->input_is_local = true;
	if (!s->input_path) {
		safe_close(r);
		return -ENOMEM;
	}
	return r;
}

/* --no-cache: downloads s->path into an unlinked temporary file. */
int source_open_url_uncached(PfSource *s, const PfSourceOptions *opts)
{
	_cleanup_(closep) int fd = -1;
	DownloadCtx ctx = { .url = s->path, .opts = opts };
	PfFetchRequest req = {
		.url = s->path,
		.max_bytes = PF_SOURCE_MAX_BYTES,
		.progress = opts && opts->fetch_progress ? fetch_progress_cb : NULL,
		.userdata = &ctx,
	};
	PfFetchInfo info;
	int r;

	fd = source_open_tmp_input();
	if (fd < 0)
		return fd;
	r = pf_fetch(&req, fd, &info);
	if (r < 0)
		return r;
	r = source_sha256_fd(fd, s->sha256);
	if (r < 0)
		return r;
	r = source_input_path_fd(s, fd);
	if (r < 0)
		return r;
	return TAKE_FD(fd);
}
