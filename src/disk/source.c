/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The PfSource object (see source.h): what an opened image is, its accessors, and the kind
 * of a stream detected from its magic bytes. The bottom of disk/source*: source-open.c opens
 * one through the cache (source-cache.c), a download (source-download.c) or a temporary
 * file.
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

/* Points s->input_path at the temporary file open on fd, for libarchive to read by name. */
int source_input_path_fd(PfSource *s, int fd)
{
	free(s->input_path);
	s->input_path = NULL;
	if (asprintf(&s->input_path, "/proc/self/fd/%d", fd) < 0)
		return -ENOMEM;
	s->input_is_local = false;
	return 0;
}
