/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * One filesystem interface over a partition of an image, with a driver per filesystem:
 * fat.c (FAT12/16/32 with long names, our own code) and ext.c (ext2/3/4 through libext2fs).
 *
 * A volume is a byte range (a partition) of an overlay; drivers read and write only through
 * pf_volume_read()/pf_volume_write(), which keep them inside the partition. Paths are
 * absolute within the filesystem ("/etc/hostname") and are taken literally: no component is
 * followed as a symlink (fs/tree.c follows links across partitions, the way the booted
 * system would). Every function returns >= 0 on success and -errno on failure, with a detail
 * for the user recorded through pf_error_set() when errno alone would not say enough.
 * A PfFs is used by one thread at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "disk/overlay.h"
#include "util/extents.h"
#include "util/macros.h"

/* Upper bound of a file piflash reads into memory (pf_fs_read_file's max_bytes default). */
#define PF_FS_READ_MAX_BYTES (256u * 1024u * 1024u)
/* Upper bound of a path, of a symlink target and of a single name. */
#define PF_PATH_MAX 4096u
#define PF_NAME_MAX 255u

typedef struct PfVolume {
	PfOverlay *overlay;
	uint64_t start_bytes; /* partition start within the image */
	uint64_t size_bytes;  /* partition size */
} PfVolume;

/* Bounded access to a volume: offset is relative to the partition start. */
int pf_volume_read(const PfVolume *v, uint64_t offset_bytes, void *buf, size_t len);
int pf_volume_write(const PfVolume *v, uint64_t offset_bytes, const void *buf, size_t len);

typedef struct PfStat {
	mode_t mode; /* S_IFREG/S_IFDIR/S_IFLNK... | permission bits */
	uid_t uid;
	gid_t gid;
	uint64_t size_bytes;
	int64_t mtime; /* seconds since the epoch, UTC */
	uint32_t nlink;
} PfStat;

/* Attributes for what piflash creates. FAT keeps only mtime (and read-only when no write
 * bit is set); ext keeps all. */
typedef struct PfAttr {
	mode_t mode; /* permission bits only, e.g. 0644 */
	uid_t uid;
	gid_t gid;
	int64_t mtime;
} PfAttr;

typedef struct PfDirent {
	char *name;
	PfStat st;
} PfDirent;

void pf_dirents_free(PfDirent *d, size_t n);

typedef struct PfFs PfFs;

/* The driver vtable. Each driver exports one (pf_fat_ops, pf_ext_ops). */
typedef struct PfFsOps {
	const char *name;
	/* True if this driver handles the blkid type name ("vfat", "ext4", ...). */
	bool (*handles)(const char *blkid_type);
	int (*open)(const PfVolume *vol, void **ret_priv);
	/* Writes back everything pending (superblock, bitmaps, FSInfo). */
	int (*sync)(void *priv);
	/* Frees without writing anything not yet synced. */
	void (*close)(void *priv);
	int (*stat)(void *priv, const char *path, PfStat *ret);
	int (*read_file)(void *priv, const char *path, size_t max_bytes, uint8_t **ret_data,
			 size_t *ret_size);
	/* Creates or replaces a regular file; the parent directory must exist. */
	int (*write_file)(void *priv, const char *path, const void *data, size_t size,
			  const PfAttr *attr);
	/* Creates one directory; the parent must exist; -EEXIST if path exists. */
	int (*mkdir)(void *priv, const char *path, const PfAttr *attr);
	/* -EPERM where the filesystem has no symlinks (FAT). */
	int (*symlink)(void *priv, const char *path, const char *target, const PfAttr *attr);
	int (*readlink)(void *priv, const char *path, char **ret_target);
	/* Removes a file, a symlink or an empty directory (-ENOTEMPTY otherwise). */
	int (*remove)(void *priv, const char *path);
	/* Lists a directory without "." and "..", in on-disk order. */
	int (*list)(void *priv, const char *path, PfDirent **ret, size_t *ret_n);
	/* Byte ranges of the partition in use: all metadata plus allocated data. */
	int (*used)(void *priv, PfExtents *ret);
} PfFsOps;

/*
 * Opens the filesystem of vol with the driver that handles blkid_type. -EPROTONOSUPPORT if
 * no driver does; other errors from the driver (a corrupt filesystem is -EUCLEAN with a detail).
 */
int pf_fs_open(const PfVolume *vol, const char *blkid_type, PfFs **ret);
/* Frees without syncing. Accepts NULL, returns NULL. */
PfFs *pf_fs_close(PfFs *fs);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfFs *, pf_fs_close);

const char *pf_fs_driver_name(const PfFs *fs);
int pf_fs_sync(PfFs *fs);
int pf_fs_stat(PfFs *fs, const char *path, PfStat *ret);
int pf_fs_read_file(PfFs *fs, const char *path, size_t max_bytes, uint8_t **ret_data,
		    size_t *ret_size);
int pf_fs_write_file(PfFs *fs, const char *path, const void *data, size_t size, const PfAttr *attr);
int pf_fs_mkdir(PfFs *fs, const char *path, const PfAttr *attr);
/* Creates path and missing parents with attr; existing directories are left as they are. */
int pf_fs_mkdir_p(PfFs *fs, const char *path, const PfAttr *attr);
int pf_fs_symlink(PfFs *fs, const char *path, const char *target, const PfAttr *attr);
int pf_fs_readlink(PfFs *fs, const char *path, char **ret_target);
int pf_fs_remove(PfFs *fs, const char *path);
int pf_fs_list(PfFs *fs, const char *path, PfDirent **ret, size_t *ret_n);
int pf_fs_used(PfFs *fs, PfExtents *ret);

/* Checks an absolute path: starts with '/', no empty, "." or ".." component except a
 * trailing '/', each name at most PF_NAME_MAX, whole at most PF_PATH_MAX. Returns 0 or
 * -EINVAL with a detail. */
int pf_path_validate(const char *path);
