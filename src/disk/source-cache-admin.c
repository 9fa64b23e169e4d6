/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Keeping the cache: whether an image is cached, listing entries, cleaning all or old
 * ones, evicting the least recently used down to a size, the size and age limits, and the
 * cap enforced after an entry was added.
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

int pf_source_cached(const char *path, const PfSourceOptions *opts)
{
	_cleanup_(freep) char *dir = NULL;
	_cleanup_(closep) int fd = -1, dfd = -1, efd = -1;
	char key[65], name[80];
	struct stat st;
	int r;

	if (opts && opts->no_cache)
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	r = pf_cache_dir(opts, &dir);
	if (r < 0)
		return r;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return 0;
	r = source_cache_key(fd, &st, key);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%s.img", key);
	efd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (efd < 0 || fstat(efd, &st) < 0)
		return 0;
	return S_ISREG(st.st_mode) && st.st_uid == geteuid();
}

/* The origin= line of an entry's info file, read without following a link. */
static int read_info_origin(int dfd, const char *info_name, char **ret_origin)
{
	char line[4096 + 16];
	struct stat st;
	FILE *f;
	int fd;

	*ret_origin = NULL;
	fd = openat(dfd, info_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		safe_close(fd);
		return -EPERM;
	}
	f = fdopen(fd, "re");
	if (!f) {
		safe_close(fd);
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		const char *v = startswith(line, "origin=");
		if (v) {
			line[strcspn(line, "\n")] = 0;
			*ret_origin = strdup(v);
			break;
		}
	}
	fclose(f);
	return *ret_origin ? 0 : -ENOENT;
}

static int cmp_used(const void *a, const void *b)
{
	const PfCacheEntry *x = a, *y = b;

	if (x->used != y->used)
		return x->used < y->used ? -1 : 1;
	return strcmp(x->path, y->path);
}

void pf_cache_entries_free(PfCacheEntry *e, size_t n)
{
	if (!e)
		return;
	for (size_t i = 0; i < n; i++) {
		free(e[i].path);
		free(e[i].origin);
	}
	free(e);
}

int pf_cache_list(const char *dir, PfCacheEntry **ret, size_t *ret_n)
{
	PfCacheEntry *list = NULL;
	size_t n = 0;
	struct dirent *de;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT) {
			*ret = NULL;
			*ret_n = 0;
			return 0;
		}
		return pf_error_set(-errno, "cannot read cache directory '%s': %m", dir);
	}
	while ((de = readdir(d))) {
		_cleanup_(freep) char *path = NULL;
		const char *suffix;
		char info[80];
		struct stat st, ist;
		PfCacheEntry *p;
		bool download;

		if (strlen(de->d_name) < 64 || strspn(de->d_name, "0123456789abcdef") != 64)
			continue;
		suffix = de->d_name + 64;
		if (streq(suffix, ".img"))
			download = false;
		else if (streq(suffix, ".download"))
			download = true;
		else
			continue;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0)
			goto oom;
		snprintf(info, sizeof(info), "%.64s%s", de->d_name, download ? ".url" : ".info");
		/* Only what could be an entry: a link is not followed to tell its size. */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		p = reallocarray(list, n + 1, sizeof(*list));
		if (!p)
			goto oom;
		list = p;
		list[n] = (PfCacheEntry){
			.path = TAKE_PTR(path),
			.size_bytes = (uint64_t)st.st_size,
			.disk_bytes = (uint64_t)st.st_blocks * 512,
			.mtime = st.st_mtim.tv_sec,
			.used = st.st_mtim.tv_sec,
			.download = download,
		};
		/* Each use touches the info file (the data file's times are part of keys). */
		if (fstatat(dirfd(d), info, &ist, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(ist.st_mode))
			list[n].used = ist.st_mtim.tv_sec;
		read_info_origin(dirfd(d), info, &list[n].origin);
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(list, n, sizeof(*list), cmp_used);
	*ret = list;
	*ret_n = n;
	return 0;
oom:
	closedir(d);
	pf_cache_entries_free(list, n);
	return -ENOMEM;
}

/* The files of the cache: <64 hex digits> and one of these suffixes. */
static const char *const cache_suffixes[] = {
	".img",
	".info",
	".lock",
	".img.partial",
	".info.tmp",
	".download",
	".url",
	".url.tmp",
	".download.partial",
	".url.partial",
	".url.partial.tmp",
};

static bool cache_file_name(const char *name, const char **ret_suffix)
{
	if (strlen(name) < 64 || strspn(name, "0123456789abcdef") != 64)
		return false;
	for (size_t i = 0; i < ELEMENTSOF(cache_suffixes); i++)
		if (streq(name + 64, cache_suffixes[i])) {
			*ret_suffix = name + 64;
			return true;
		}
	return false;
}

/* True when another run holds the lock of key (it is making or reading that entry). */
static bool cache_key_busy(int dfd, const char *key)
{
	_cleanup_(closep) int fd = -1;
	char lock[80];

	snprintf(lock, sizeof(lock), "%.64s.lock", key);
	fd = openat(dfd, lock, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK;
	flock(fd, LOCK_UN);
	return false;
}

/* Removes the files of key with the given suffixes; adds their blocks to *freed. */
static void cache_remove_key(int dfd, const char *key, const char *const *suffixes, size_t n,
			     uint64_t *freed)
{
	for (size_t i = 0; i < n; i++) {
		char name[96];
		struct stat st;

		snprintf(name, sizeof(name), "%.64s%s", key, suffixes[i]);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    unlinkat(dfd, name, 0) == 0)
			*freed += (uint64_t)st.st_blocks * 512;
	}
}

static void cache_remove_entry(int dfd, const PfCacheEntry *e, uint64_t *freed)
{
	static const char *const img[] = { ".img", ".info" };
	static const char *const dl[] = { ".download", ".url" };
	const char *key = strrchr(e->path, '/') ? strrchr(e->path, '/') + 1 : e->path;

	cache_remove_key(dfd, key, e->download ? dl : img, 2, freed);
}

int pf_cache_clean(const char *dir, uint64_t *ret_bytes_freed)
{
	uint64_t freed = 0;
	struct dirent *de;
	int count = 0;
	DIR *d;

	d = opendir(dir);
	if (!d) {
		if (ret_bytes_freed)
			*ret_bytes_freed = 0;
		return errno == ENOENT
			       ? 0
			       : pf_error_set(-errno, "cannot read cache directory '%s': %m", dir);
	}
	while ((de = readdir(d))) {
		const char *suffix;
		struct stat st;

		if (!cache_file_name(de->d_name, &suffix))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0) {
			freed += (uint64_t)st.st_blocks * 512;
			if (streq(suffix, ".img") || streq(suffix, ".download"))
				count++;
		}
	}
	closedir(d);
	if (ret_bytes_freed)
		*ret_bytes_freed = freed;
	return count;
}

/* Opens dir to remove entries pf_cache_list() found there; on failure frees the list e
 * and returns -ENOENT when dir is gone (nothing to remove), else -errno with a detail. */
static int open_listed_dir(const char *dir, PfCacheEntry *e, size_t n)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0) {
		pf_cache_entries_free(e, n);
		return errno == ENOENT
			       ? -ENOENT
			       : pf_error_set(-errno, "cannot open cache directory '%s': %m", dir);
	}
	return dfd;
}

int pf_cache_clean_older(const char *dir, int64_t max_age_seconds, uint64_t *ret_bytes_freed)
{
	static const char *const partial[] = { ".img.partial", ".info.tmp", ".download.partial",
					       ".url.partial", ".url.tmp" };
	_cleanup_(closep) int dfd = -1;
	PfCacheEntry *e = NULL;
	uint64_t freed = 0;
	struct dirent *de;
	size_t n = 0;
	int64_t cutoff = (int64_t)time(NULL) - max_age_seconds;
	int count = 0, r;
	DIR *d;

	if (ret_bytes_freed)
		*ret_bytes_freed = 0;
	r = pf_cache_list(dir, &e, &n);
	if (r < 0)
		return r;
	dfd = open_listed_dir(dir, e, n);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	for (size_t i = 0; i < n; i++) {
		const char *key = strrchr(e[i].path, '/') + 1;

		if (e[i].used >= cutoff || cache_key_busy(dfd, key))
			continue;
		cache_remove_entry(dfd, &e[i], &freed);
		count++;
	}
	pf_cache_entries_free(e, n);

	/* What interrupted runs left, by its own age. */
	d = fdopendir(dup(dfd));
	if (d) {
		while ((de = readdir(d))) {
			const char *suffix;
			struct stat st;
			bool tmp = false;

			if (!cache_file_name(de->d_name, &suffix))
				continue;
			for (size_t i = 0; i < ELEMENTSOF(partial); i++)
				tmp = tmp || streq(suffix, partial[i]);
			if (!tmp || fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    st.st_mtim.tv_sec >= cutoff || cache_key_busy(dfd, de->d_name))
				continue;
			if (unlinkat(dfd, de->d_name, 0) == 0)
				freed += (uint64_t)st.st_blocks * 512;
		}
		closedir(d);
	}
	if (ret_bytes_freed)
		*ret_bytes_freed = freed;
	return count;
}

int pf_cache_evict(const char *dir, uint64_t max_bytes, const char *const *keep, size_t n_keep,
		   uint64_t *ret_bytes_freed)
{
	_cleanup_(closep) int dfd = -1;
	PfCacheEntry *e = NULL;
	uint64_t total = 0, freed = 0;
	size_t n = 0;
	int count = 0, r;

	if (ret_bytes_freed)
		*ret_bytes_freed = 0;
	r = pf_cache_list(dir, &e, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		total += e[i].disk_bytes;
	dfd = open_listed_dir(dir, e, n);
	if (dfd < 0)
		return dfd == -ENOENT ? 0 : dfd;
	/* Least recently used first (pf_cache_list() sorts so). */
	for (size_t i = 0; i < n && total > max_bytes; i++) {
		const char *key = strrchr(e[i].path, '/') + 1;
		uint64_t f = 0;
		bool kept = false;

		for (size_t k = 0; k < n_keep; k++)
			kept = kept || (keep[k] && strncmp(keep[k], key, 64) == 0);
		if (kept || cache_key_busy(dfd, key))
			continue;
		cache_remove_entry(dfd, &e[i], &f);
		total -= MIN(total, e[i].disk_bytes);
		freed += f;
		count++;
	}
	pf_cache_entries_free(e, n);
	if (ret_bytes_freed)
		*ret_bytes_freed = freed;
	return count;
}

int pf_cache_parse_max(const char *s, uint64_t *ret_bytes)
{
	uint64_t v, mult = 1;
	char *end;

	if (!s || !*s)
		return -EINVAL;
	if (streq(s, "none") || streq(s, "unlimited")) {
		*ret_bytes = UINT64_MAX;
		return 0;
	}
	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'T':
		mult *= 1024;
		__attribute__((fallthrough));
	case 'G':
		mult *= 1024;
		__attribute__((fallthrough));
	case 'M':
		mult *= 1024;
		__attribute__((fallthrough));
	case 'K':
		mult *= 1024;
		end++;
		if (*end == 'i' && end[1] == 'B')
			end += 2;
		else if (*end == 'B')
			end++;
		break;
	case 'B':
		end++;
		break;
	default:
		break;
	}
	if (*end || MUL_OVERFLOW(v, mult, &v))
		return -EINVAL;
	*ret_bytes = v == 0 ? UINT64_MAX : v;
	return 0;
}

int pf_cache_max_bytes(const PfSourceOptions *opts, uint64_t *ret_bytes)
{
	const char *env = getenv("PIFLASH_CACHE_MAX");

	if (opts && opts->cache_max_bytes) {
		*ret_bytes = opts->cache_max_bytes;
		return 0;
	}
	if (env && *env) {
		if (pf_cache_parse_max(env, ret_bytes) < 0)
			return pf_error_set(-EINVAL,
					    "PIFLASH_CACHE_MAX='%s': expected a size (20G, 500M), "
					    "or 0 for no cap",
					    env);
		return 0;
	}
	*ret_bytes = PF_CACHE_MAX_DEFAULT_BYTES;
	return 0;
}

int pf_cache_parse_age(const char *s, int64_t *ret_seconds)
{
	uint64_t v, mult;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end[0] == 0 || end[1] != 0)
		return -EINVAL;
	switch (*end) {
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	case 'w':
		mult = 7 * 86400;
		break;
	default:
		return -EINVAL;
	}
	if (MUL_OVERFLOW(v, mult, &v) || v > INT64_MAX / 2)
		return -EINVAL;
	*ret_seconds = (int64_t)v;
	return 0;
}

/* After something was added to the cache: evicts down to the cap, sparing this source's
 * entries. Failing to evict is not this run's failure: the cache only stays larger. */
void source_cache_enforce(PfSource *s, const PfSourceOptions *opts)
{
	_cleanup_(freep) char *dir = NULL;
	const char *keep[2] = { s->keys[0], s->keys[1] };
	uint64_t max;

	if (!s->added_now || (opts && opts->no_cache))
		return;
	if (pf_cache_max_bytes(opts, &max) < 0 || max == UINT64_MAX ||
	    pf_cache_dir(opts, &dir) < 0) {
		pf_error_clear();
		return;
	}
	(void)pf_cache_evict(dir, max, keep, 2, NULL);
	pf_error_clear();
}
