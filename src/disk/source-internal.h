/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the files of the image source share, and nothing outside src/disk/source*.c
 * includes: the PfSource object and the functions each file offers the others.
 *
 *   source.c              the object, kind detection
 *   source-open.c         open (local file, stdin, URL)
 *   source-cache.c        keys, the cache directory, entries, info files, locks, cached open
 *   source-decompress.c   libarchive and xz decompression into a sparse file
 *   source-download.c     URLs: download, resume, revalidate into the cache
 *   source-cache-admin.c  cached?, list, clean, evict, limits, the cap after an addition
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "disk/source.h"

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

/* source.c */
int source_input_path_fd(PfSource *s, int fd);
int source_open_tmp_input(void);

/* source-cache.c */
int source_cache_dir_open(const char *dir);
int source_cache_open(const PfSourceOptions *opts, char **ret_dir);
int source_cache_key(int fd, const struct stat *st, char ret_hex[65]);
int source_cache_lock(int dfd, const char *name, const char *path);
void source_cache_unlock(int dfd, const char *name, int fd);
int source_entry_check(int fd, const char *what, const char *path, struct stat *ret_st);
int source_entry_create(int dfd, const char *name, const char *path);
int source_entry_open_error(int err, const char *what, const char *path);
int source_entry_open_existing(int dfd, const char *name, const char *what, const char *path);
int source_entry_rename(int dfd, const char *from, const char *to, int fd, const char *path);
void source_hex32(const unsigned char *md, char ret_hex[65]);
int source_open_cached(PfSource *s, int in_fd, const struct stat *st, const PfSourceOptions *opts);
int source_open_tmpfile(const char *dir);
int source_read_info_field(int dfd, const char *info_name, const char *key, char **ret);
int source_sha256_fd(int fd, char ret_hex[65]);
int source_sha256_string(const char *prefix, const char *value, char ret_hex[65]);
int source_write_kv(int dfd, const char *name, const char *path, const char *const *kv);

/* source-decompress.c */
int source_decompress(const char *path, PfSourceKind kind, const char *entry, int out_fd,
		      const PfSourceOptions *opts, uint64_t *ret_size);
int source_zip_find_image(const char *path, char **ret_entry);

/* source-download.c */
int source_open_url_cached(PfSource *s, const PfSourceOptions *opts);
int source_open_url_uncached(PfSource *s, const PfSourceOptions *opts);

/* source-cache-admin.c */
void source_cache_enforce(PfSource *s, const PfSourceOptions *opts);
