/* SPDX-License-Identifier: GPL-2.0-or-later */
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

#define BLOCK 4096u
#define READ_BUFFER_BYTES (1024u * 1024u)
#define FINGERPRINT_BYTES (64u * 1024u)
#define ZIP_LIST_MAX 32 /* entries named in an error message */

struct PfSource {
	char *path;
	PfSourceKind kind;
	int fd;
	uint64_t size_bytes;
	char *cache_path;
	char *entry;
	bool decompressed_now;
	/* Where the input's bytes are read: path, a download in the cache, or
	 * /proc/self/fd/N of a temporary file (standard input, an uncached download). */
	char *input_path;
	bool input_is_local; /* input_path is a file the user can name (not a temp file) */
	bool is_stdin;
	bool added_now;	  /* something was added to the cache (a download or an entry) */
	char sha256[65];  /* of the input, "" when not computed */
	char keys[2][65]; /* cache keys this source uses: its download, its entry */
};

static const char *const kind_names[_PF_SOURCE_KIND_MAX] = {
	[PF_SOURCE_RAW] = "raw",   [PF_SOURCE_GZIP] = "gzip",	[PF_SOURCE_XZ] = "xz",
	[PF_SOURCE_ZSTD] = "zstd", [PF_SOURCE_BZIP2] = "bzip2", [PF_SOURCE_ZIP] = "zip",
};

const char *pf_source_kind_name(PfSourceKind k)
{
	return k >= 0 && k < _PF_SOURCE_KIND_MAX ? kind_names[k] : "unknown";
}

PfSourceKind pf_source_detect(const uint8_t *h, size_t n)
{
	if (n >= 2 && h[0] == 0x1f && h[1] == 0x8b)
		return PF_SOURCE_GZIP;
	if (n >= 6 && memcmp(h,
			     "\xfd"
			     "7zXZ\0",
			     6) == 0)
		return PF_SOURCE_XZ;
	if (n >= 4 && memcmp(h, "\x28\xb5\x2f\xfd", 4) == 0)
		return PF_SOURCE_ZSTD;
	if (n >= 4 && memcmp(h, "BZh", 3) == 0 && h[3] >= '1' && h[3] <= '9')
		return PF_SOURCE_BZIP2;
	/* A local file header, or the end record of an empty archive. */
	if (n >= 4 && (memcmp(h, "PK\x03\x04", 4) == 0 || memcmp(h, "PK\x05\x06", 4) == 0))
		return PF_SOURCE_ZIP;
	return PF_SOURCE_RAW;
}

PfSource *pf_source_free(PfSource *s)
{
	if (!s)
		return NULL;
	safe_close(s->fd);
	free(s->path);
	free(s->cache_path);
	free(s->entry);
	free(s->input_path);
	free(s);
	return NULL;
}

int pf_source_fd(const PfSource *s)
{
	return s->fd;
}

uint64_t pf_source_size(const PfSource *s)
{
	return s->size_bytes;
}

PfSourceKind pf_source_kind(const PfSource *s)
{
	return s->kind;
}

const char *pf_source_path(const PfSource *s)
{
	return s->path;
}

const char *pf_source_cache_path(const PfSource *s)
{
	return s->cache_path;
}

const char *pf_source_entry(const PfSource *s)
{
	return s->entry;
}

bool pf_source_decompressed_now(const PfSource *s)
{
	return s->decompressed_now;
}

const char *pf_source_input_path(const PfSource *s)
{
	return s->input_is_local ? s->input_path : NULL;
}

const char *pf_source_sha256(const PfSource *s)
{
	return s->sha256[0] ? s->sha256 : NULL;
}

int pf_sha256_parse(const char *s, char ret_hex[65])
{
	if (!s || strlen(s) != 64 || strspn(s, "0123456789abcdefABCDEF") != 64)
		return -EINVAL;
	for (unsigned i = 0; i < 64; i++)
		ret_hex[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] - 'A' + 'a' : s[i]);
	ret_hex[64] = 0;
	return 0;
}

static void hex32(const unsigned char *md, char ret_hex[65])
{
	for (unsigned i = 0; i < 32; i++)
		sprintf(ret_hex + 2 * i, "%02x", md[i]);
}

/* SHA-256 of a string, as a cache key. */
static int sha256_string(const char *prefix, const char *value, char ret_hex[65])
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
		hex32(md, ret_hex);
	EVP_MD_CTX_free(ctx);
	return r;
}

/* SHA-256 of the whole file open on fd, read from byte 0. */
static int sha256_fd(int fd, char ret_hex[65])
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
	hex32(md, ret_hex);
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
static int cache_key(int fd, const struct stat *st, char ret_hex[65])
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
static int zip_find_image(const char *path, char **ret_entry)
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
static int decompress(const char *path, PfSourceKind kind, const char *entry, int out_fd,
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

static int open_tmpfile(const char *dir)
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
 * effective user and be writable by nobody else (cache_dir_open()), every name in it is
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
static int cache_dir_open(const char *dir)
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
static int entry_open_error(int err, const char *what, const char *path)
{
	if (err == ELOOP)
		return pf_error_set(-ELOOP,
				    "%s '%s' is a symbolic link: refusing to follow it (remove it, "
				    "or use --no-cache)",
				    what, path);
	return pf_error_set(-err, "cannot open %s '%s': %s", what, path, strerror(err));
}

/* Checks that fd, opened as an existing entry, is a regular file of the effective user. */
static int entry_check(int fd, const char *what, const char *path, struct stat *ret_st)
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
static int entry_open_existing(int dfd, const char *name, const char *what, const char *path)
{
	_cleanup_(closep) int fd = -1;
	int r;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : entry_open_error(errno, what, path);
	r = entry_check(fd, what, path, NULL);
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
static int entry_create(int dfd, const char *name, const char *path)
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
static int entry_rename(int dfd, const char *from, const char *to, int fd, const char *path)
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
	fd = entry_create(dfd, tmp_name, tmp_path);
	if (fd < 0)
		return fd;
	if (dprintf(fd, "origin=%s\nkind=%s\nentry=%s\nsize=%" PRIu64 "\n", origin,
		    pf_source_kind_name(kind), entry ? entry : "", size) < 0)
		r = pf_error_set(-errno, "cannot write cache file '%s': %m", tmp_path);
	else
		r = entry_rename(dfd, tmp_name, info_name, fd, tmp_path);
	if (r < 0)
		unlinkat(dfd, tmp_name, 0);
	return r;
}

/*
 * Takes the per-entry lock. The lock file is removed by its holder when done, so after
 * flock() returns it is checked to still be the file at that name; if it was removed while
 * this process waited, the lock is taken again on the new file.
 */
static int cache_lock(int dfd, const char *name, const char *path)
{
	for (unsigned tries = 0; tries < 100; tries++) {
		_cleanup_(closep) int fd = -1;
		struct stat a, b;
		int r;

		fd = openat(dfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC,
			    0600);
		if (fd < 0)
			return entry_open_error(errno, "cache lock", path);
		r = entry_check(fd, "cache lock", path, &a);
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
static void cache_unlock(int dfd, const char *name, int fd)
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

	out_fd = entry_open_existing(dfd, n->img, "cache file", n->img_path);
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
	out_fd = entry_create(dfd, n->tmp, n->tmp_path);
	if (out_fd < 0)
		return out_fd;
	r = decompress(s->input_path, s->kind, s->entry, out_fd, opts, &size);
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
		r = entry_rename(dfd, n->tmp, n->img, out_fd, n->tmp_path);
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
		return entry_open_error(errno, "cache file", n->img_path);
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

/* Opens the cache entry for an input, decompressing it first if it isn't there. */
static int open_cached(PfSource *s, int in_fd, const struct stat *st, const PfSourceOptions *opts)
{
	_cleanup_(freep) char *dir = NULL, *lock_path = NULL;
	_cleanup_(closep) int dfd = -1;
	CacheNames n = {};
	char key[65], lock[80];
	int lock_fd, r;

	r = pf_cache_dir(opts, &dir);
	if (r < 0)
		return r;
	dfd = cache_dir_open(dir);
	if (dfd < 0)
		return dfd;
	/* An input read once (standard input) is known by its content; a file by its identity. */
	if (s->is_stdin)
		r = sha256_string("piflash stdin sha256", s->sha256, key);
	else
		r = cache_key(in_fd, st, key);
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
	lock_fd = cache_lock(dfd, lock, lock_path);
	if (lock_fd < 0) {
		r = lock_fd;
		goto out;
	}
	r = open_cached_locked(s, dfd, &n, opts);
	cache_unlock(dfd, lock, lock_fd);
out:
	free(n.img_path);
	free(n.info_path);
	free(n.tmp_path);
	return r;
}

static int open_uncached(PfSource *s, const PfSourceOptions *opts)
{
	const char *dir = getenv("TMPDIR");
	_cleanup_(closep) int fd = -1;
	uint64_t size;
	int r;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open_tmpfile(dir);
	if (fd < 0)
		return pf_error_set(fd, "cannot create a temporary file in '%s': %s", dir,
				    strerror(-fd));
	r = decompress(s->input_path, s->kind, s->entry, fd, opts, &size);
	if (r < 0)
		return r;
	s->size_bytes = size;
	s->fd = TAKE_FD(fd);
	s->decompressed_now = true;
	return 0;
}

static void cache_enforce(PfSource *s, const PfSourceOptions *opts);

static int open_tmp_input(void)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open_tmpfile(dir);
	if (fd < 0)
		return pf_error_set(fd, "cannot create a temporary file in '%s': %s", dir,
				    strerror(-fd));
	return fd;
}

/* Points s->input_path at the temporary file open on fd, for libarchive to read by name. */
static int input_path_fd(PfSource *s, int fd)
{
	free(s->input_path);
	s->input_path = NULL;
	if (asprintf(&s->input_path, "/proc/self/fd/%d", fd) < 0)
		return -ENOMEM;
	s->input_is_local = false;
	return 0;
}

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
	fd = open_tmp_input();
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
	hex32(md, s->sha256);
	s->is_stdin = true;
	r = input_path_fd(s, fd);
	if (r >= 0)
		r = TAKE_FD(fd);
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

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

/* A "key=value" line of a small info file in the cache, read without following a link.
 * Returns 0 and the value, -ENOENT when the file or the key is absent. */
static int read_info_field(int dfd, const char *info_name, const char *key, char **ret)
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
static int write_kv(int dfd, const char *name, const char *path, const char *const *kv)
{
	_cleanup_(freep) char *tmp_name = NULL, *tmp_path = NULL;
	_cleanup_(closep) int fd = -1;
	int r = 0;

	if (asprintf(&tmp_name, "%s.tmp", name) < 0 || asprintf(&tmp_path, "%s.tmp", path) < 0)
		return -ENOMEM;
	fd = entry_create(dfd, tmp_name, tmp_path);
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
		r = entry_rename(dfd, tmp_name, name, fd, tmp_path);
	if (r < 0)
		unlinkat(dfd, tmp_name, 0);
	return r;
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
	return write_kv(h->dfd, h->n->part_info, h->n->part_info_path, kv);
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

	fd = entry_open_existing(dfd, n->data, "cache file", n->data_path);
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

/* With the download's lock held: reuses, resumes or starts the download of s->path. */
static int download_locked(PfSource *s, int dfd, const DownloadNames *n,
			   const PfSourceOptions *opts)
{
	_cleanup_(freep) char *etag = NULL, *lm = NULL, *sha = NULL, *petag = NULL, *plm = NULL;
	_cleanup_(closep) int have_fd = -1, part_fd = -1;
	DownloadCtx ctx = { .dfd = dfd, .n = n, .url = s->path, .opts = opts };
	PfFetchRequest req = {
		.url = s->path,
		.max_bytes = PF_SOURCE_MAX_BYTES,
		.resumable = true,
		.on_headers = save_partial_info,
		.progress = opts && opts->fetch_progress ? fetch_progress_cb : NULL,
		.userdata = &ctx,
	};
	PfFetchInfo info;
	struct stat st;
	int r;

	have_fd = entry_open_existing(dfd, n->data, "cache file", n->data_path);
	if (have_fd < 0 && have_fd != -ENOENT)
		return have_fd;
	if (have_fd >= 0) {
		read_info_field(dfd, n->info, "etag", &etag);
		read_info_field(dfd, n->info, "last-modified", &lm);
		read_info_field(dfd, n->info, "sha256", &sha);
		/* The image asked for is the one already here: no need to ask the server. */
		if (opts && opts->sha256 && sha && streq(sha, opts->sha256)) {
			snprintf(s->sha256, sizeof(s->sha256), "%s", sha);
			safe_close(have_fd);
			have_fd = -1;
			return download_open(dfd, n, NULL);
		}
	}

	/* A partial download with a validator is resumed; anything else starts afresh. */
	part_fd = openat(dfd, n->part, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (part_fd >= 0) {
		r = entry_check(part_fd, "partial download", n->part_path, &st);
		if (r < 0)
			return r;
		read_info_field(dfd, n->part_info, "etag", &petag);
		read_info_field(dfd, n->part_info, "last-modified", &plm);
		if (st.st_size > 0 && ((petag && *petag) || (plm && *plm))) {
			req.resume_from = (uint64_t)st.st_size;
			req.if_range = petag && *petag ? petag : plm;
		} else {
			safe_close(part_fd);
			part_fd = -1;
		}
	} else if (errno != ENOENT)
		return entry_open_error(errno, "partial download", n->part_path);
	if (part_fd < 0) {
		part_fd = entry_create(dfd, n->part, n->part_path);
		if (part_fd < 0)
			return part_fd;
		if (have_fd >= 0) {
			req.if_none_match = etag;
			req.if_modified_since = lm;
		}
	}
	for (unsigned attempt = 0;; attempt++) {
		r = pf_fetch(&req, part_fd, &info);
		if ((r == -ERANGE || (r == -EPROTO && req.resume_from)) && attempt == 0) {
			/* The server refused the range (the file shrank?) or answered it with
			 * other bytes than asked for: the partial file is not continued. */
			pf_error_clear();
			if (ftruncate(part_fd, 0) < 0)
				return pf_error_set(-errno, "cannot truncate '%s': %m",
						    n->part_path);
			req.resume_from = 0;
			req.if_range = NULL;
			continue;
		}
		break;
	}
	if (r < 0) {
		/* Kept for the next run only if it can be resumed safely. */
		if (faccessat(dfd, n->part_info, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			unlinkat(dfd, n->part, 0);
		return r;
	}
	if (info.status == 304) {
		unlinkat(dfd, n->part, 0);
		unlinkat(dfd, n->part_info, 0);
		if (have_fd < 0)
			return pf_error_set(-EPROTO,
					    "the server answered 304 without a copy to revalidate");
		snprintf(s->sha256, sizeof(s->sha256), "%s", sha ?: "");
		safe_close(have_fd);
		have_fd = -1;
		return download_open(dfd, n, NULL);
	}

	/* Complete: checked, recorded, then renamed into place. */
	if (fsync(part_fd) < 0 || fstat(part_fd, &st) < 0)
		return pf_error_set(-errno, "cannot write cache file '%s': %m", n->part_path);
	if (st.st_size == 0) {
		unlinkat(dfd, n->part, 0);
		unlinkat(dfd, n->part_info, 0);
		return pf_error_set(-EINVAL, "the server sent an empty file");
	}
	r = sha256_fd(part_fd, s->sha256);
	if (r < 0)
		return r;
	if (opts && opts->sha256 && !streq(s->sha256, opts->sha256)) {
		/* Not what was asked for: never kept as a download to reuse. */
		unlinkat(dfd, n->part, 0);
		unlinkat(dfd, n->part_info, 0);
		return pf_error_set(-EBADMSG, "SHA-256 mismatch: expected %s, downloaded %s",
				    opts->sha256, s->sha256);
	}
	{
		char size[32];
		const char *kv[] = { "origin",
				     s->path,
				     "etag",
				     info.etag,
				     "last-modified",
				     info.last_modified,
				     "size",
				     size,
				     "sha256",
				     s->sha256,
				     NULL };

		snprintf(size, sizeof(size), "%" PRIu64, (uint64_t)st.st_size);
		r = write_kv(dfd, n->info, n->info_path, kv);
	}
	if (r >= 0)
		r = entry_rename(dfd, n->part, n->data, part_fd, n->part_path);
	if (r < 0) {
		unlinkat(dfd, n->part, 0);
		unlinkat(dfd, n->info, 0);
		return pf_error_prefix(r, "cannot complete download '%s'", n->data_path);
	}
	unlinkat(dfd, n->part_info, 0);
	s->added_now = true;
	return download_open(dfd, n, &st);
}

/* Downloads s->path into the cache (or finds it there); returns the download's descriptor. */
static int open_url_cached(PfSource *s, const PfSourceOptions *opts)
{
	_cleanup_(download_names_done) DownloadNames n = {};
	_cleanup_(freep) char *dir = NULL;
	_cleanup_(closep) int dfd = -1;
	int lock_fd, r;

	r = pf_cache_dir(opts, &dir);
	if (r < 0)
		return r;
	dfd = cache_dir_open(dir);
	if (dfd < 0)
		return dfd;
	/* Named after the URL; whether it is still the server's file is asked each run. */
	r = sha256_string("piflash url", s->path, n.key);
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

	lock_fd = cache_lock(dfd, n.lock, n.lock_path);
	if (lock_fd < 0)
		return lock_fd;
	r = download_locked(s, dfd, &n, opts);
	cache_unlock(dfd, n.lock, lock_fd);
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
static int open_url_uncached(PfSource *s, const PfSourceOptions *opts)
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

	fd = open_tmp_input();
	if (fd < 0)
		return fd;
	r = pf_fetch(&req, fd, &info);
	if (r < 0)
		return r;
	r = sha256_fd(fd, s->sha256);
	if (r < 0)
		return r;
	r = input_path_fd(s, fd);
	if (r < 0)
		return r;
	return TAKE_FD(fd);
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

	if (pf_fetch_is_url(path))
		fd = opts && opts->no_cache ? open_url_uncached(s, opts) : open_url_cached(s, opts);
	else if (streq(path, "-"))
		fd = open_stdin(s);
	else {
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0)
			return pf_error_set(-errno, "cannot open: %m");
	}
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return pf_error_set(-errno, "cannot stat: %m");
	if (S_ISDIR(st.st_mode))
		return pf_error_set(-EISDIR, "is a directory, not an image");
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
		return pf_error_set(-EINVAL, "is neither a regular file nor a block device");
	if (S_ISBLK(st.st_mode)) {
		uint64_t bytes;

		if (ioctl(fd, BLKGETSIZE64, &bytes) < 0)
			return pf_error_set(-errno, "cannot get device size: %m");
		st.st_size = (off_t)bytes;
	}
	if (st.st_size == 0)
		return pf_error_set(-EINVAL, "is empty");

	/* Checked before anything is made of the input, let alone written. */
	if (opts && opts->sha256) {
		if (!s->sha256[0]) {
			r = sha256_fd(fd, s->sha256);
			if (r < 0)
				return r;
		}
		if (!streq(s->sha256, opts->sha256))
			return pf_error_set(-EBADMSG, "SHA-256 mismatch: expected %s, got %s",
					    opts->sha256, s->sha256);
	}

	n = pread(fd, head, sizeof(head), 0);
	if (n < 0)
		return pf_error_set(-errno, "cannot read: %m");
	s->kind = S_ISBLK(st.st_mode) ? PF_SOURCE_RAW : pf_source_detect(head, (size_t)n);

	if (s->kind == PF_SOURCE_RAW) {
		s->size_bytes = (uint64_t)st.st_size;
		s->fd = TAKE_FD(fd);
		cache_enforce(s, opts);
		*ret = TAKE_PTR(s);
		return 0;
	}

	if (s->kind == PF_SOURCE_ZIP) {
		r = zip_find_image(s->input_path, &s->entry);
		if (r < 0)
			return r;
	}

	if (opts && opts->no_cache)
		r = open_uncached(s, opts);
	else
		r = open_cached(s, fd, &st, opts);
	if (r < 0)
		return r;
	cache_enforce(s, opts);
	*ret = TAKE_PTR(s);
	return 0;
}

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
	r = cache_key(fd, &st, key);
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
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		pf_cache_entries_free(e, n);
		return errno == ENOENT
			       ? 0
			       : pf_error_set(-errno, "cannot open cache directory '%s': %m", dir);
	}
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
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		pf_cache_entries_free(e, n);
		return errno == ENOENT
			       ? 0
			       : pf_error_set(-errno, "cannot open cache directory '%s': %m", dir);
	}
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
static void cache_enforce(PfSource *s, const PfSourceOptions *opts)
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
