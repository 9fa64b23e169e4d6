/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The cache of decompressed images and downloads: keys (SHA-256 of an input's identity, a
 * URL or standard input's content), the cache directory and the checks that make it safe
 * to use as root, entries and their small info files opened without following links,
 * locks, and opening an input through its entry (decompressing it first when absent).
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

int pf_sha256_parse(const char *s, char ret_hex[65])
{
	if (!s || strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64)
		return -EINVAL;
	for (unsigned i = 0; i < 64; i++)
		ret_hex[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
	ret_hex[64] = 0;
	return 0;
}

void source_hex32(const unsigned char *md, char ret_hex[65])
{
	for (unsigned i = 0; i < 32; i++)
		sprintf(ret_hex + 2 * i, "%02x", md[i]);
}

/* SHA-256 of a string, as a cache key. */
int source_sha256_string(const char *prefix, const char *value, char ret_hex[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	/* The NUL between them keeps "a"+"bc" apart from "ab"+"c". */
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prefix, strlen(prefix) + 1) != 1 ||
	    EVP_DigestUpdate(ctx, value, strlen(value)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		r = -EIO;
	else
		source_hex32(md, ret_hex);
	EVP_MD_CTX_free(ctx);
	return r;
}

/* SHA-256 of the whole file open on fd, read from byte 0. */
int source_sha256_fd(int fd, char ret_hex[65])
{
	_cleanup_(freep) uint8_t *buf = malloc(READ_BUFFER_BYTES);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint64_t off = 0;
	int r = 0;

	if (!buf || !ctx) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = -EIO;
		goto out;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, READ_BUFFER_BYTES, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pf_error_set(-errno, "cannot read the input to check its SHA-256: %m");
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			r = -EIO;
			goto out;
		}
		off += (uint64_t)n;
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
		r = -EIO;
		goto out;
	}
	source_hex32(md, ret_hex);
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

int pf_cache_dir(const PfSourceOptions *opts, char **ret)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *p;

	if (opts && opts->cache_dir)
		p = strdup(opts->cache_dir);
	else if (xdg && xdg[0] == '/')
		p = asprintf(&p, "%s/piflash", xdg) < 0 ? NULL : p;
	else if (home && home[0] == '/')
		p = asprintf(&p, "%s/.cache/piflash", home) < 0 ? NULL : p;
	else
		return pf_error_set(-ENOENT, "neither $XDG_CACHE_HOME nor $HOME is set; "
					     "cannot place the image cache (use --no-cache)");
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

static int mkdir_parents(const char *dir)
{
	char buf[4096];
	size_t len = strlen(dir);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The cache key: SHA-256 over the input's identity and the first and last 64 KiB. */
int source_cache_key(int fd, const struct stat *st, char ret_hex[65])
{
	_cleanup_(freep) uint8_t *buf = NULL;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;
	uint64_t ident[7];
	ssize_t n;
	int r = 0;

	buf = malloc(FINGERPRINT_BYTES);
	ctx = EVP_MD_CTX_new();
	if (!buf || !ctx) {
		EVP_MD_CTX_free(ctx);
		return -ENOMEM;
	}
	ident[0] = (uint64_t)st->st_dev;
	ident[1] = (uint64_t)st->st_ino;
	ident[2] = (uint64_t)st->st_size;
	ident[3] = (uint64_t)st->st_mtim.tv_sec;
	ident[4] = (uint64_t)st->st_mtim.tv_nsec;
	ident[5] = (uint64_t)st->st_ctim.tv_sec;
	ident[6] = (uint64_t)st->st_ctim.tv_nsec;

	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, ident, sizeof(ident)) != 1) {
		r = -EIO;
		goto out;
	}
	n = pread(fd, buf, FINGERPRINT_BYTES, 0);
	if (n < 0 || EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
		r = n < 0 ? -errno : -EIO;
		goto out;
	}
	n = pread(fd, buf, FINGERPRINT_BYTES,
		  st->st_size > FINGERPRINT_BYTES ? st->st_size - FINGERPRINT_BYTES : 0);
	if (n < 0 || EVP_DigestUpdate(ctx, buf, (size_t)n) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
		r = n < 0 ? -errno : -EIO;
		goto out;
	}
	for (unsigned i = 0; i < 32; i++)
		sprintf(ret_hex + 2 * i, "%02x", md[i]);
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

int source_open_tmpfile(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd < 0) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/piflash-XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		unlink(path);
	}
	return fd;
}

/*
 * The cache may be a user's directory while piflash runs as root (sudo -E), and an entry's
 * name is computable by whoever owns the input. So the directory must belong to the
 * effective user and be writable by nobody else (source_cache_dir_open()), every name in it is
 * reached through the directory's descriptor, nothing there is followed as a symbolic
 * link, and an entry is trusted only if it is a regular file owned by the effective user.
 */

static const char *writers(mode_t mode)
{
	if ((mode & S_IWGRP) && (mode & S_IWOTH))
		return "its group and others";
	return mode & S_IWGRP ? "its group" : "others";
}

/*
 * Checks each directory above dir as named (a link on the way is looked at itself, not
 * resolved first): it must belong to the effective user or root and be writable by nobody
 * else, unless it is sticky like /tmp (then others cannot rename what is ours in it).
 * Otherwise its owner could swap a name on the way, e.g. make ~/.cache/piflash a link to a
 * directory of root's choosing, like /etc/cron.d, when root runs piflash with a user's
 * $HOME (sudo -E).
 */
static int cache_path_check(const char *dir)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len >= sizeof(buf))
		return pf_error_set(-ENAMETOOLONG, "cache directory '%s' is too long a path", dir);
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1;; p++) {
		bool last = *p == 0;
		struct stat st;

		if (*p != '/' && !last)
			continue;
		*p = 0;
		if (lstat(buf, &st) < 0)
			return pf_error_set(-errno,
					    "cannot stat '%s' (on the way to cache "
					    "directory '%s'): %m",
					    buf, dir);
		if (st.st_uid != 0 && st.st_uid != geteuid())
			return pf_error_set(
				-EPERM,
				"'%s' (on the way to cache directory '%s') is owned by "
				"uid %u, neither root nor uid %u that piflash runs as: its "
				"owner could redirect the cache; use --no-cache, or a cache "
				"directory of your own",
				buf, dir, (unsigned)st.st_uid, (unsigned)geteuid());
		if (S_ISDIR(st.st_mode) && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
		    !(st.st_mode & S_ISVTX))
			return pf_error_set(
				-EPERM,
				"'%s' (on the way to cache directory '%s') is writable by "
				"%s (mode %04o): they could redirect the cache; use "
				"--no-cache, or run chmod go-w '%s'",
				buf, dir, writers(st.st_mode), (unsigned)(st.st_mode & 07777), buf);
		if (last)
			return 0;
		*p = '/';
	}
}

/*
 * Creates dir if needed and opens it, refusing one another user could plant names in: it
 * must belong to the effective user and be writable by nobody else, and so must the way to
 * it (cache_path_check()).
 */
int source_cache_dir_open(const char *dir)
{
	_cleanup_(closep) int fd = -1;
	struct stat st;
	int r;

	r = mkdir_parents(dir);
	if (r < 0)
		return pf_error_set(r, "cannot create cache directory '%s': %s", dir, strerror(-r));
	r = cache_path_check(dir);
	if (r < 0)
		return r;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return pf_error_set(-errno, "cannot open cache directory '%s': %m", dir);
	if (fstat(fd, &st) < 0)
		return pf_error_set(-errno, "cannot stat cache directory '%s': %m", dir);
	if (st.st_uid != geteuid())
		return pf_error_set(-EPERM,
				    "cache directory '%s' is owned by uid %u, not by uid %u that "
				    "piflash runs as: its owner could make piflash write through "
				    "links planted there; use --no-cache, or a cache directory of "
				    "your own",
				    dir, (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return pf_error_set(
			-EPERM,
			"cache directory '%s' is writable by %s (mode %04o): they could "
			"make piflash write through links planted there; use "
			"--no-cache, or run chmod go-w '%s'",
			dir, writers(st.st_mode), (unsigned)(st.st_mode & 07777), dir);
	return TAKE_FD(fd);
}

/* The error for an entry that could not be opened; a symbolic link is named as such. */
int source_entry_open_error(int err, const char *what, const char *path)
{
	if (err == ELOOP)
		return pf_error_set(-ELOOP,
				    "%s '%s' is a symbolic link: refusing to follow it (remove it, "
				    "or use --no-cache)",
				    what, path);
	return pf_error_set(-err, "cannot open %s '%s': %s", what, path, strerror(err));
}

/* Checks that fd, opened as an existing entry, is a regular file of the effective user. */
int source_entry_check(int fd, const char *what, const char *path, struct stat *ret_st)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return pf_error_set(-errno, "cannot stat %s '%s': %m", what, path);
	if (!S_ISREG(st.st_mode))
		return pf_error_set(-EPERM,
				    "%s '%s' is not a regular file: not trusting it "
				    "(remove it, or use --no-cache)",
				    what, path);
	if (st.st_uid != geteuid())
		return pf_error_set(-EPERM,
				    "%s '%s' is owned by uid %u, not by uid %u that piflash runs "
				    "as: not trusting it (remove it, or use --no-cache)",
				    what, path, (unsigned)st.st_uid, (unsigned)geteuid());
	if (ret_st)
		*ret_st = st;
	return 0;
}

/* Opens an existing entry read-only: no link followed, no FIFO waited on, checked. */
int source_entry_open_existing(int dfd, const char *name, const char *what, const char *path)
{
	_cleanup_(closep) int fd = -1;
	int r;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : source_entry_open_error(errno, what, path);
	r = source_entry_check(fd, what, path, NULL);
	if (r < 0)
		return r;
	/* O_NONBLOCK was only for the open; the caller gets an ordinary descriptor. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return pf_error_set(-errno, "cannot open %s '%s': %m", what, path);
	return TAKE_FD(fd);
}

/*
 * Creates name afresh for writing. Whatever is there under that name (the temporary file
 * of a crashed run, or a planted link) is removed first, never followed, and O_EXCL makes
 * sure the file written is the one created here.
 */
int source_entry_create(int dfd, const char *name, const char *path)
{
	int fd;

	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return pf_error_set(-errno, "cannot remove stale cache file '%s': %m", path);
	fd = openat(dfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return pf_error_set(-errno, "cannot create cache file '%s': %m", path);
	return fd;
}

/* Renames from to to, after checking that from is still the file open on fd. */
int source_entry_rename(int dfd, const char *from, const char *to, int fd, const char *path)
{
	struct stat a, b;

	if (fstat(fd, &a) < 0 || fstatat(dfd, from, &b, AT_SYMLINK_NOFOLLOW) < 0)
		return pf_error_set(-errno, "cannot stat cache file '%s': %m", path);
	if (a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return pf_error_set(-ESTALE, "cache file '%s' was replaced while it was written",
				    path);
	if (renameat(dfd, from, dfd, to) < 0)
		return pf_error_set(-errno, "cannot rename cache file '%s': %m", path);
	return 0;
}

static int write_info(int dfd, const char *info_name, const char *info_path, const char *origin,
		      PfSourceKind kind, const char *entry, uint64_t size)
{
	_cleanup_(freep) char *tmp_name = NULL, *tmp_path = NULL;
	_cleanup_(closep) int fd = -1;
	int r;

	if (asprintf(&tmp_name, "%s.tmp", info_name) < 0 ||
	    asprintf(&tmp_path, "%s.tmp", info_path) < 0)
		return -ENOMEM;
	fd = source_entry_create(dfd, tmp_name, tmp_path);
	if (fd < 0)
		return fd;
	if (dprintf(fd, "origin=%s\nkind=%s\nentry=%s\nsize=%" PRIu64 "\n", origin,
		    pf_source_kind_name(kind), entry ? entry : "", size) < 0)
		r = pf_error_set(-errno, "cannot write cache file '%s': %m", tmp_path);
	else
		r = source_entry_rename(dfd, tmp_name, info_name, fd, tmp_path);
	if (r < 0)
		unlinkat(dfd, tmp_name, 0);
	return r;
}

/*
 * Takes the per-entry lock. The lock file is removed by its holder when done, so after
 * flock() returns it is checked to still be the file at that name; if it was removed while
 * this process waited, the lock is taken again on the new file.
 */
int source_cache_lock(int dfd, const char *name, const char *path)
{
	for (unsigned tries = 0; tries < 100; tries++) {
		_cleanup_(closep) int fd = -1;
		struct stat a, b;
		int r;

		fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			    0600);
		if (fd < 0)
			return source_entry_open_error(errno, "cache lock", path);
		r = source_entry_check(fd, "cache lock", path, &a);
		if (r < 0)
			return r;
		if (flock(fd, LOCK_EX) < 0)
			return pf_error_set(-errno, "cannot lock cache entry '%s': %m", path);
		if (fstatat(dfd, name, &b, AT_SYMLINK_NOFOLLOW) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return TAKE_FD(fd);
	}
	return pf_error_set(-EBUSY, "cannot lock cache entry '%s': it keeps changing", path);
}

/* Releases the lock and removes its file, so the cache holds only entries. */
void source_cache_unlock(int dfd, const char *name, int fd)
{
	if (fd < 0)
		return;
	unlinkat(dfd, name, 0);
	safe_close(fd);
}

/* An entry's names in the cache directory, and its paths for messages. */
typedef struct CacheNames {
	char img[80], info[80], tmp[80];
	char *img_path, *info_path, *tmp_path;
} CacheNames;

/* With the entry's lock held: opens the entry, or decompresses it first. */
static int open_cached_locked(PfSource *s, int dfd, const CacheNames *n,
			      const PfSourceOptions *opts)
{
	_cleanup_(closep) int out_fd = -1;
	char abs[PATH_MAX];
	uint64_t size;
	struct stat cst, wst;
	int r;

	out_fd = source_entry_open_existing(dfd, n->img, "cache file", n->img_path);
	if (out_fd >= 0) {
		if (fstat(out_fd, &cst) < 0)
			return -errno;
		/* Its info file's time is the entry's last use, which eviction goes by. */
		(void)utimensat(dfd, n->info, NULL, AT_SYMLINK_NOFOLLOW);
		s->size_bytes = (uint64_t)cst.st_size;
		s->fd = TAKE_FD(out_fd);
		s->cache_path = strdup(n->img_path);
		return s->cache_path ? 0 : -ENOMEM;
	}
	if (out_fd != -ENOENT)
		return out_fd;

	/* Decompresses under a temporary name: only a complete image is renamed into place. */
	out_fd = source_entry_create(dfd, n->tmp, n->tmp_path);
	if (out_fd < 0)
		return out_fd;
	r = source_decompress(s->input_path, s->kind, s->entry, out_fd, opts, &size);
	if (r >= 0 && fsync(out_fd) < 0)
		r = pf_error_set(-errno, "cannot write cache file '%s': %m", n->tmp_path);
	if (r >= 0 && fstat(out_fd, &wst) < 0)
		r = pf_error_set(-errno, "cannot stat cache file '%s': %m", n->tmp_path);
	if (r < 0) {
		unlinkat(dfd, n->tmp, 0);
		return r;
	}
	if (s->is_stdin)
		snprintf(abs, sizeof(abs), "standard input, sha256 %s", s->sha256);
	else if (pf_fetch_is_url(s->path) || !realpath(s->path, abs))
		snprintf(abs, sizeof(abs), "%s", s->path);
	r = write_info(dfd, n->info, n->info_path, abs, s->kind, s->entry, size);
	if (r >= 0)
		r = source_entry_rename(dfd, n->tmp, n->img, out_fd, n->tmp_path);
	if (r < 0) {
		unlinkat(dfd, n->tmp, 0);
		unlinkat(dfd, n->info, 0);
		return pf_error_prefix(r, "cannot complete cache entry '%s'", n->img_path);
	}
	/* The cache file is used read-only from here on, like a raw image: reopened by name,
	 * it must still be the file just written. */
	safe_close(out_fd);
	out_fd = openat(dfd, n->img, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (out_fd < 0)
		return source_entry_open_error(errno, "cache file", n->img_path);
	if (fstat(out_fd, &cst) < 0)
		return pf_error_set(-errno, "cannot stat cache file '%s': %m", n->img_path);
	if (cst.st_dev != wst.st_dev || cst.st_ino != wst.st_ino)
		return pf_error_set(-ESTALE, "cache file '%s' was replaced after it was written",
				    n->img_path);
	if (fcntl(out_fd, F_SETFL, fcntl(out_fd, F_GETFL) & ~O_NONBLOCK) < 0)
		return pf_error_set(-errno, "cannot reopen cache file '%s': %m", n->img_path);

	s->size_bytes = size;
	s->fd = TAKE_FD(out_fd);
	s->cache_path = strdup(n->img_path);
	s->decompressed_now = true;
	s->added_now = true;
	return s->cache_path ? 0 : -ENOMEM;
}

/* Opens the cache directory for opts, its path going to *ret_dir. Returns its descriptor. */
int source_cache_open(const PfSourceOptions *opts, char **ret_dir)
{
	int r;

	r = pf_cache_dir(opts, ret_dir);
	if (r < 0)
		return r;
	return source_cache_dir_open(*ret_dir);
}

/* Opens the cache entry for an input, decompressing it first if it isn't there. */
int source_open_cached(PfSource *s, int in_fd, const struct stat *st, const PfSourceOptions *opts)
{
	_cleanup_(freep) char *dir = NULL, *lock_path = NULL;
	_cleanup_(closep) int dfd = -1;
	CacheNames n = {};
	char key[65], lock[80];
	int lock_fd, r;

	dfd = source_cache_open(opts, &dir);
	if (dfd < 0)
		return dfd;
	/* An input read once (standard input) is known by its content; a file by its identity. */
	if (s->is_stdin)
		r = source_sha256_string("piflash stdin sha256", s->sha256, key);
	else
		r = source_cache_key(in_fd, st, key);
	if (r < 0)
		return pf_error_set(r, "cannot read input: %s", strerror(-r));
	memcpy(s->keys[1], key, sizeof(key));

	snprintf(n.img, sizeof(n.img), "%s.img", key);
	snprintf(n.info, sizeof(n.info), "%s.info", key);
	snprintf(n.tmp, sizeof(n.tmp), "%s.img.partial", key);
	snprintf(lock, sizeof(lock), "%s.lock", key);
	if (asprintf(&n.img_path, "%s/%s", dir, n.img) < 0 ||
	    asprintf(&n.info_path, "%s/%s", dir, n.info) < 0 ||
	    asprintf(&n.tmp_path, "%s/%s", dir, n.tmp) < 0 ||
	    asprintf(&lock_path, "%s/%s", dir, lock) < 0) {
		r = -ENOMEM;
		goto out;
	}

	/* One decompression per input at a time; others wait and then find the entry. */
	lock_fd = source_cache_lock(dfd, lock, lock_path);
	if (lock_fd < 0) {
		r = lock_fd;
		goto out;
	}
	r = open_cached_locked(s, dfd, &n, opts);
	source_cache_unlock(dfd, lock, lock_fd);
out:
	free(n.img_path);
	free(n.info_path);
	free(n.tmp_path);
	return r;
}

/* A "key=value" line of a small info file in the cache, read without following a link.
 * Returns 0 and the value, -ENOENT when the file or the key is absent. */
int source_read_info_field(int dfd, const char *info_name, const char *key, char **ret)
{
	_cleanup_(freep) char *data = NULL;
	_cleanup_(closep) int fd = -1;
	size_t kl = strlen(key);
	struct stat st;
	ssize_t n;

	*ret = NULL;
	fd = openat(dfd, info_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
	    st.st_size > 64 * 1024)
		return -EPERM;
	data = calloc(1, (size_t)st.st_size + 1);
	if (!data)
		return -ENOMEM;
	n = pread(fd, data, (size_t)st.st_size, 0);
	if (n < 0)
		return -errno;
	data[n] = 0;
	for (char *line = data; line && *line;) {
		char *nl = strchr(line, '\n');

		if (nl)
			*nl = 0;
		if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
			*ret = strdup(line + kl + 1);
			return *ret ? 0 : -ENOMEM;
		}
		line = nl ? nl + 1 : NULL;
	}
	return -ENOENT;
}

/* Writes a small info file through a temporary name: "key=value" lines from kv (pairs,
 * NULL-terminated; a NULL value is written empty). */
int source_write_kv(int dfd, const char *name, const char *path, const char *const *kv)
{
	_cleanup_(freep) char *tmp_name = NULL, *tmp_path = NULL;
	_cleanup_(closep) int fd = -1;
	int r = 0;

	if (asprintf(&tmp_name, "%s.tmp", name) < 0 || asprintf(&tmp_path, "%s.tmp", path) < 0)
		return -ENOMEM;
	fd = source_entry_create(dfd, tmp_name, tmp_path);
	if (fd < 0)
		return fd;
	for (size_t i = 0; kv[i]; i += 2)
		/* Values come from the user (the URL) or a server (validators): one line each. */
		if (strchr(kv[i + 1] ?: "", '\n') ||
		    dprintf(fd, "%s=%s\n", kv[i], kv[i + 1] ?: "") < 0) {
			r = pf_error_set(-EINVAL, "cannot write cache file '%s'", tmp_path);
			break;
		}
	if (r >= 0)
		r = source_entry_rename(dfd, tmp_name, name, fd, tmp_path);
	if (r < 0)
		unlinkat(dfd, tmp_name, 0);
	return r;
}

int source_open_tmp_input(void)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = source_open_tmpfile(dir);
	if (fd < 0)
		return pf_error_set(fd, "cannot create a temporary file in '%s': %s", dir,
				    strerror(-fd));
	return fd;
}
