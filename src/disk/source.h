/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Opening an OS image: raw, or compressed (gzip, xz, zstd, bzip2, or a zip holding one
 * *.img). The kind comes from the content's magic bytes, never from the file name.
 *
 * A raw image is opened read-only and used in place. A compressed one is decompressed once,
 * through libarchive (xz through liblzma on every core, disk/xz.h), into a cache file under $XDG_CACHE_HOME/piflash (or ~/.cache/piflash),
 * written sparse (runs of zero 4 KiB blocks become holes) to a temporary name and renamed
 * when complete, so an interrupted run never leaves an entry that looks whole. Entries are
 * keyed by the input's identity: device, inode, size, and modification and change times in
 * nanoseconds, together with SHA-256 of its first and last 64 KiB. Any write to the input
 * changes its ctime, which the user cannot set, so a changed input is never served stale.
 * Concurrent runs on the same input serialise on a flock()ed lock file next to the entry.
 * The cache directory must belong to the effective user and be writable by nobody else
 * (nor may the directories on the way to it be, sticky ones excepted), and nothing in it
 * is followed as a link or trusted unless it is a regular file of the effective user: root
 * running with a user's $HOME must not write where that user chose.
 *
 * Whatever the kind, the result is a read-only file descriptor of the whole raw image; the
 * input file itself is never written.
 *
 * The input may also be an http:// or https:// URL or "-" (standard input). A URL is
 * downloaded (fetch.c) into the cache as <H>.download, H the SHA-256 of the URL, with its
 * validators (ETag, Last-Modified, size) and SHA-256 in <H>.url; the download is written to
 * <H>.download.partial and renamed when complete and checked, so an interrupted download
 * never looks whole, and the next run resumes the partial file with a Range request (kept
 * only if the server answers 206 from where it stopped). A complete download is reused
 * when the server says it has not changed (304 to If-None-Match/If-Modified-Since), or
 * without asking the server when the SHA-256 asked for matches the one recorded. Standard
 * input cannot be read twice: it is copied to an unlinked temporary file in $TMPDIR, and
 * its cache entry is keyed by the SHA-256 of its content. With --no-cache a URL is also
 * downloaded to such a temporary file (and cannot be resumed).
 *
 * The cache is capped (pf_cache_max_bytes()): when an entry is added, the least recently
 * used entries are removed until the blocks the entries use fit, never one this source uses.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macros.h"

typedef enum PfSourceKind {
	PF_SOURCE_RAW,
	PF_SOURCE_GZIP,
	PF_SOURCE_XZ,
	PF_SOURCE_ZSTD,
	PF_SOURCE_BZIP2,
	PF_SOURCE_ZIP,
	_PF_SOURCE_KIND_MAX,
} PfSourceKind;

/* Largest decompressed image accepted: a guard against decompression bombs. */
#define PF_SOURCE_MAX_BYTES (UINT64_C(256) * 1024 * 1024 * 1024)

typedef struct PfSourceOptions {
	bool no_cache;	       /* decompress to an unlinked temporary file instead */
	const char *cache_dir; /* NULL: $XDG_CACHE_HOME/piflash or ~/.cache/piflash */
	/* Called now and then during decompression with bytes written so far; may be NULL. */
	void (*progress)(uint64_t done_bytes, void *userdata);
	void *userdata;
	/* The SHA-256 the input must have (as given or downloaded, before decompression), 64
	 * lower-case hex digits (pf_sha256_parse()); NULL: not checked. */
	const char *sha256;
	/* Cache cap in bytes on disk; 0: $PIFLASH_CACHE_MAX or the default; UINT64_MAX: none. */
	uint64_t cache_max_bytes;
	/* Called as a download progresses (total UINT64_MAX when unknown); may be NULL. */
	void (*fetch_progress)(uint64_t done_bytes, uint64_t total_bytes, void *userdata);
	void *fetch_userdata;
	/*
	 * Called from the decompressing thread each time more of the image is in fd, the file
	 * being filled (the cache entry's temporary file): every byte below done_bytes may be
	 * read from it now. A negative return stops decompression with that error (nothing is
	 * left in the cache). May be NULL.
	 */
	int (*decoded)(int fd, uint64_t done_bytes, void *decoded_data);
	void *decoded_data;
} PfSourceOptions;

/* Checks that s is 64 hex digits; writes them in lower case to ret_hex. Returns 0 or
 * -EINVAL. */
int pf_sha256_parse(const char *s, char ret_hex[65]);

typedef struct PfSource PfSource;

/* Kind of a stream from its first bytes (at least 6 are looked at if available). */
PfSourceKind pf_source_detect(const uint8_t *head, size_t n);
const char *pf_source_kind_name(PfSourceKind k);

/*
 * Opens path as an image. Returns 0 and the source in *ret, or -errno with a detail naming
 * what went wrong (and, for a broken stream, how far decompression got).
 */
int pf_source_open(const char *path, const PfSourceOptions *opts, PfSource **ret);
PfSource *pf_source_free(PfSource *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfSource *, pf_source_free);

/*
 * Whether pf_source_open(path, opts) would find a complete cache entry: 1 if so, 0 if it
 * would decompress (or path is raw, missing, or --no-cache), or -errno. Looks only; the
 * entry is checked again when opened.
 */
int pf_source_cached(const char *path, const PfSourceOptions *opts);

/* A read-only descriptor of the raw image, owned by the source. */
int pf_source_fd(const PfSource *s);
uint64_t pf_source_size(const PfSource *s);
PfSourceKind pf_source_kind(const PfSource *s);
const char *pf_source_path(const PfSource *s);
/* The cache file, or NULL for a raw image or --no-cache. */
const char *pf_source_cache_path(const PfSource *s);
/* The name of the image inside a zip, else NULL. */
const char *pf_source_entry(const PfSource *s);
/* True if the image had to be decompressed now (not found in the cache). */
bool pf_source_decompressed_now(const PfSource *s);
/* The local file the image was read from: path itself, or a URL's download in the cache;
 * NULL for standard input and an uncached download (unlinked temporary files). */
const char *pf_source_input_path(const PfSource *s);
/* The SHA-256 of the input as given or downloaded (hex), when it was computed (standard
 * input, a download, or a check asked for), else NULL. */
const char *pf_source_sha256(const PfSource *s);

/* The cache directory in effect (opts->cache_dir or the XDG default), malloc'd. */
int pf_cache_dir(const PfSourceOptions *opts, char **ret);

typedef struct PfCacheEntry {
	char *path;	     /* the cache file */
	char *origin;	     /* the input it came from, as recorded */
	uint64_t size_bytes; /* apparent size */
	uint64_t disk_bytes; /* blocks actually used (sparse) */
	int64_t mtime;
	int64_t used;  /* last used (seconds since the epoch): what eviction goes by */
	bool download; /* a URL's download (<H>.download), not a decompressed image */
} PfCacheEntry;

/* Lists complete cache entries (decompressed images and downloads), least recently used
 * first. */
int pf_cache_list(const char *dir, PfCacheEntry **ret, size_t *ret_n);
void pf_cache_entries_free(PfCacheEntry *e, size_t n);
/* Removes every entry (and stale temporary files of interrupted runs). Returns the count. */
int pf_cache_clean(const char *dir, uint64_t *ret_bytes_freed);

/* The default cap of the cache: 20 GiB of blocks on disk. */
#define PF_CACHE_MAX_DEFAULT_BYTES (UINT64_C(20) * 1024 * 1024 * 1024)

/*
 * Parses a cache cap: bytes, or a number with K, M, G or T (powers of 1024, optionally
 * followed by "iB" or "B"), or "0", "none", "unlimited" for no cap (UINT64_MAX). Returns
 * 0 or -EINVAL.
 */
int pf_cache_parse_max(const char *s, uint64_t *ret_bytes);
/* The cap in effect: opts->cache_max_bytes, else $PIFLASH_CACHE_MAX, else the default.
 * Returns -EINVAL with a detail when $PIFLASH_CACHE_MAX does not parse. */
int pf_cache_max_bytes(const PfSourceOptions *opts, uint64_t *ret_bytes);
/* Parses an age: a number with s, m, h, d or w (seconds, minutes, hours, days, weeks).
 * Returns 0 or -EINVAL. */
int pf_cache_parse_age(const char *s, int64_t *ret_seconds);

/*
 * Removes entries (and temporary files of interrupted runs) last used before
 * now - max_age_seconds, leaving those whose lock another run holds. Returns the count of
 * entries removed.
 */
int pf_cache_clean_older(const char *dir, int64_t max_age_seconds, uint64_t *ret_bytes_freed);

/*
 * Removes the least recently used entries until the entries' blocks on disk fit in
 * max_bytes. Never removes an entry whose key (64 hex digits) is in keep, nor one whose
 * lock another run holds. Returns the count of entries removed.
 */
int pf_cache_evict(const char *dir, uint64_t max_bytes, const char *const *keep, size_t n_keep,
		   uint64_t *ret_bytes_freed);
