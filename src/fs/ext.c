/* SPDX-License-Identifier: GPL-2.0-or-later */

/*
 * The ext2/ext3/ext4 driver behind fs.h, built on libext2fs.
 *
 * libext2fs does all the on-disk work (extents, flex_bg, 64bit, metadata_csum, htree
 * directories, journals left alone); ext-io.c gives it an io_manager whose channel reads
 * and writes the partition through pf_volume_read()/pf_volume_write(), so every change
 * lands in the overlay and no loop device, mount or root privilege is needed.
 *
 * Policy: a filesystem that needs journal recovery, has errors or orphans recorded, or (without
 * a journal) was not cleanly unmounted opens for reading as it is (a journal is not replayed),
 * and every write on it fails with -EUCLEAN and a message to run e2fsck: writing beside an
 * unreplayed journal would corrupt it, and e2fsck, not piflash, decides what an unclean
 * filesystem holds. Paths are looked up component by
 * component and symlinks are never followed (fs/tree.c does that above). Replacing a
 * regular file keeps its inode (like `cp` onto an existing file): its blocks are punched,
 * the new content written and mode, owner and times set; hard links, extended attributes
 * and the creation time stay. Free space is checked before an existing file is truncated, so
 * a file that does not fit fails with -ENOSPC and leaves the old content.
 *
 * Every libext2fs error code is turned into -errno once, in ext-error.c (pf_ext_errno()),
 * with libext2fs's own message kept in the detail: "ext4: cannot create '/etc/x': Could not
 * allocate block in ext2 filesystem".
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <et/com_err.h>
#include <ext2fs/ext2_err.h>
#include <ext2fs/ext2fs.h>

#include "fs/ext-internal.h"
#include "fs/ext.h"
#include "fs/fs-driver.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- inodes ---- */

static int ext_read_inode(PfExt *e, ext2_ino_t ino, struct ext2_inode_large **ret)
{
	struct ext2_inode_large *in;
	errcode_t code;

	in = calloc(1, e->inode_bytes);
	if (!in)
		return -ENOMEM;
	code = ext2fs_read_inode_full(e->fs, ino, (struct ext2_inode *)in,
				      EXT2_INODE_SIZE(e->fs->super));
	if (code) {
		free(in);
		return ext_fail(e, code, "cannot read inode %u", ino);
	}
	*ret = in;
	return 0;
}

static int ext_write_inode(PfExt *e, ext2_ino_t ino, struct ext2_inode_large *in)
{
	errcode_t code;

	code = ext2fs_write_inode_full(e->fs, ino, (struct ext2_inode *)in,
				       EXT2_INODE_SIZE(e->fs->super));
	if (code)
		return ext_fail(e, code, "cannot write inode %u", ino);
	return 0;
}

/* True if the inode's extra part holds field (which ends at byte end of the inode). */
static bool ext_has_extra(const PfExt *e, const struct ext2_inode_large *in, size_t end)
{
	size_t isize = EXT2_INODE_SIZE(e->fs->super);

	if (isize <= EXT2_GOOD_OLD_INODE_SIZE)
		return false;
	return (size_t)EXT2_GOOD_OLD_INODE_SIZE + in->i_extra_isize >= end;
}

#define EXT_HAS_EXTRA(e, in, field)                                                                \
	ext_has_extra((e), (in),                                                                   \
		      offsetof(struct ext2_inode_large, field) +                                   \
			      sizeof(((struct ext2_inode_large *)0)->field))

/* Splits seconds into the 32-bit field and the epoch bits of the _extra field. Times
 * outside what ext4 can store (1901..2446, or 1901..2038 without extra fields) are clamped. */
static void ext_time_split(int64_t t, bool extra, uint32_t *ret_lo, uint32_t *ret_epoch)
{
	const int64_t min = INT32_MIN;
	const int64_t max = extra ? (int64_t)INT32_MAX + ((int64_t)3 << 32) : INT32_MAX;

	t = MAX(min, MIN(max, t));
	*ret_lo = (uint32_t)t;
	*ret_epoch = (uint32_t)((t - (int64_t)(int32_t)(uint32_t)t) >> 32) & EXT4_EPOCH_MASK;
}

static int64_t ext_time_join(uint32_t lo, bool extra, uint32_t extra_field)
{
	int64_t t = (int32_t)lo;

	if (extra)
		t += (int64_t)(extra_field & EXT4_EPOCH_MASK) << 32;
	return t;
}

/* Which times ext_set_times() sets. */
enum {
	EXT_T_ATIME = 1 << 0,
	EXT_T_MTIME = 1 << 1,
	EXT_T_CTIME = 1 << 2,
	EXT_T_CRTIME = 1 << 3, /* only where the inode has room for it */
	EXT_T_NEW = EXT_T_ATIME | EXT_T_MTIME | EXT_T_CTIME | EXT_T_CRTIME,
	EXT_T_CONTENT = EXT_T_ATIME | EXT_T_MTIME | EXT_T_CTIME,
	EXT_T_DIR = EXT_T_MTIME | EXT_T_CTIME,
};

/* Sets the chosen times to t seconds (nanoseconds 0). */
static void ext_set_times(PfExt *e, struct ext2_inode_large *in, int64_t t, unsigned which)
{
	bool extra = EXT_HAS_EXTRA(e, in, i_atime_extra);
	uint32_t lo, epoch;

	ext_time_split(t, extra, &lo, &epoch);
	if (which & EXT_T_ATIME) {
		in->i_atime = lo;
		if (extra)
			in->i_atime_extra = epoch;
	}
	if (which & EXT_T_MTIME) {
		in->i_mtime = lo;
		if (extra)
			in->i_mtime_extra = epoch;
	}
	if (which & EXT_T_CTIME) {
		in->i_ctime = lo;
		if (extra)
			in->i_ctime_extra = epoch;
	}
	if ((which & EXT_T_CRTIME) && EXT_HAS_EXTRA(e, in, i_crtime_extra)) {
		in->i_crtime = lo;
		in->i_crtime_extra = epoch;
	}
}

static void ext_set_owner(struct ext2_inode_large *in, uid_t uid, gid_t gid)
{
	in->i_uid = (__u16)(uid & 0xffff);
	in->i_gid = (__u16)(gid & 0xffff);
	in->osd2.linux2.l_i_uid_high = (__u16)((uint32_t)uid >> 16);
	in->osd2.linux2.l_i_gid_high = (__u16)((uint32_t)gid >> 16);
}

static void ext_fill_stat(PfExt *e, const struct ext2_inode_large *in, PfStat *st)
{
	const struct ext2_inode *small = (const struct ext2_inode *)in;

	memset(st, 0, sizeof(*st));
	st->mode = in->i_mode; /* ext uses the Linux S_IF* values */
	st->uid = inode_uid(*in);
	st->gid = inode_gid(*in);
	st->size_bytes = EXT2_I_SIZE(small);
	st->mtime = ext_time_join(in->i_mtime, EXT_HAS_EXTRA(e, in, i_mtime_extra),
				  EXT_HAS_EXTRA(e, in, i_mtime_extra) ? in->i_mtime_extra : 0);
	st->nlink = in->i_links_count;
}

/* The attributes to use when the caller gives none. */
static int ext_attr_or_default(const PfAttr *attr, mode_t mode, PfAttr *ret)
{
	int64_t now;
	int r;

	if (attr) {
		*ret = *attr;
		return 0;
	}
	r = pf_timestamp(&now);
	if (r < 0)
		return r;
	*ret = (PfAttr){ .mode = mode, .uid = 0, .gid = 0, .mtime = now };
	return 0;
}

static int64_t ext_now(void)
{
	int64_t now;

	return pf_timestamp(&now) < 0 ? (int64_t)time(NULL) : now;
}

/* ---- paths ---- */

/* Checks that ino is a directory; path/len name it for the message. */
static int ext_want_dir(PfExt *e, ext2_ino_t ino, const char *path, size_t len)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	int r;

	r = ext_read_inode(e, ino, &in);
	if (r < 0)
		return r;
	if (LINUX_S_ISLNK(in->i_mode))
		return pf_error_set(-ENOTDIR, "%s: '%.*s' is a symlink", e->type,
				    (int)(len ? len : 1), len ? path : "/");
	if (!LINUX_S_ISDIR(in->i_mode))
		return pf_error_set(-ENOTDIR, "%s: '%.*s' is not a directory", e->type,
				    (int)(len ? len : 1), len ? path : "/");
	return 0;
}

/* Looks up name (len bytes) in directory dir. */
static int ext_lookup_in(PfExt *e, ext2_ino_t dir, const char *name, size_t len, const char *path,
			 ext2_ino_t *ret)
{
	errcode_t code;

	if (len > EXT2_NAME_LEN)
		return pf_error_set(-ENAMETOOLONG, "%s: a name in '%s' is longer than %u bytes",
				    e->type, path, EXT2_NAME_LEN);
	code = ext2fs_lookup(e->fs, dir, name, (int)len, NULL, ret);
	if (code == EXT2_ET_FILE_NOT_FOUND)
		return pf_error_set(-ENOENT, "%s: '%s' does not exist", e->type, path);
	if (code)
		return ext_fail(e, code, "cannot look up '%s'", path);
	return 0;
}

/* Finds the inode of an absolute path, literally: no component is followed as a link. */
static int ext_resolve(PfExt *e, const char *path, ext2_ino_t *ret)
{
	ext2_ino_t ino = EXT2_ROOT_INO;
	const char *p = path;
	int r;

	if (!path || path[0] != '/')
		return pf_error_set(-EINVAL, "%s: path '%s' is not absolute", e->type,
				    path ? path : "");
	while (*p == '/')
		p++;
	while (*p) {
		const char *end = strchrnul(p, '/');

		r = ext_want_dir(e, ino, path, (size_t)(p - path > 1 ? p - 1 - path : 0));
		if (r < 0)
			return r;
		r = ext_lookup_in(e, ino, p, (size_t)(end - p), path, &ino);
		if (r < 0)
			return r;
		p = end;
		while (*p == '/')
			p++;
	}
	*ret = ino;
	return 0;
}

/*
 * Splits path into its parent directory (looked up, must be a directory) and last name
 * (copied into name, at least EXT2_NAME_LEN + 1 bytes). The root has no parent: -EINVAL.
 */
static int ext_resolve_parent(PfExt *e, const char *path, ext2_ino_t *ret_dir, char *name)
{
	char buf[PF_PATH_MAX + 1];
	size_t len;
	char *slash;
	int r;

	if (!path || path[0] != '/')
		return pf_error_set(-EINVAL, "%s: path '%s' is not absolute", e->type,
				    path ? path : "");
	len = strlen(path);
	if (len > PF_PATH_MAX)
		return pf_error_set(-ENAMETOOLONG, "%s: path is longer than %u bytes", e->type,
				    PF_PATH_MAX);
	memcpy(buf, path, len + 1);
	while (len > 1 && buf[len - 1] == '/')
		buf[--len] = 0;
	slash = strrchr(buf, '/');
	if (!slash[1])
		return pf_error_set(-EINVAL, "%s: '%s' is the root directory", e->type, path);
	if (strlen(slash + 1) > EXT2_NAME_LEN)
		return pf_error_set(-ENAMETOOLONG, "%s: name '%s' is longer than %u bytes", e->type,
				    slash + 1, EXT2_NAME_LEN);
	strcpy(name, slash + 1);

	if (slash == buf)
		slash[1] = 0; /* parent is "/" */
	else
		*slash = 0;
	r = ext_resolve(e, buf, ret_dir);
	if (r < 0)
		return r;
	return ext_want_dir(e, *ret_dir, buf, strlen(buf));
}

/* Returns 1 and the inode if name exists in dir, 0 if not. */
static int ext_exists(PfExt *e, ext2_ino_t dir, const char *name, const char *path, ext2_ino_t *ret)
{
	int r = ext_lookup_in(e, dir, name, strlen(name), path, ret);

	if (r == -ENOENT) {
		pf_error_clear();
		return 0;
	}
	return r < 0 ? r : 1;
}

/* ---- allocation helpers ---- */

static int ext_prepare_write(PfExt *e, const char *what, const char *path)
{
	errcode_t code;

	if (e->unclean)
		return pf_error_set(-EUCLEAN,
				    "cannot %s '%s': %s: the filesystem %s; run 'e2fsck' on it "
				    "before piflash changes it",
				    what, path, e->type, e->unclean);

	if (!e->bitmaps_loaded) {
		code = ext2fs_read_bitmaps(e->fs);
		if (code)
			return ext_fail(e, code, "cannot %s '%s': reading the allocation bitmaps",
					what, path);
		e->bitmaps_loaded = true;
	}
	e->modified = true;
	return 0;
}

/* Free blocks, summed from the group descriptors (the superblock's count may be stale). */
static blk64_t ext_free_blocks(PfExt *e)
{
	blk64_t n = 0;

	for (dgrp_t g = 0; g < e->fs->group_desc_count; g++)
		n += ext2fs_bg_free_blocks_count(e->fs, g);
	return n;
}

/*
 * Refuses early when size bytes cannot fit: the data blocks plus a generous allowance for
 * mapping blocks (indirect or extent tree), against the free blocks plus what replacing
 * frees (reclaim_blocks).
 */
static int ext_check_space(PfExt *e, size_t size, blk64_t reclaim_blocks, const char *path)
{
	uint64_t bs = e->fs->blocksize;
	uint64_t data = DIV_ROUND_UP((uint64_t)size, bs);
	uint64_t need = data + data / (bs / 4) + 3;
	uint64_t have = ext_free_blocks(e) + reclaim_blocks;

	if (need > have)
		return pf_error_set(-ENOSPC,
				    "%s: cannot write '%s': %zu bytes need %" PRIu64
				    " blocks of %" PRIu64 " bytes, %" PRIu64 " are free",
				    e->type, path, size, need, bs, have);
	return 0;
}

/*
 * Makes room for one more entry in the full directory dir: grows a linear directory by a
 * block. libext2fs grows indexed (htree) directories itself inside ext2fs_link(), so one
 * still full is EXT2_ET_DIR_NO_SPACE.
 */
static errcode_t ext_grow_dir(PfExt *e, ext2_ino_t dir)
{
	struct ext2_inode din;
	errcode_t code;

	code = ext2fs_read_inode(e->fs, dir, &din);
	if (code)
		return code;
	if (din.i_flags & EXT2_INDEX_FL)
		return EXT2_ET_DIR_NO_SPACE;
	return ext2fs_expand_dir(e->fs, dir);
}

/* One way of putting an entry into dir: linking an inode, making a directory or a symlink. */
typedef struct ExtEntryOp {
	ext2_ino_t dir;
	const char *name;
	int mode;	    /* the new inode's mode; 0: link ino, allocate nothing */
	ext2_ino_t ino;	    /* the inode linked, or the one allocated */
	int ft;		    /* link: the entry's file type */
	const char *target; /* symlink: its target; mkdir: NULL */
} ExtEntryOp;

static errcode_t ext_entry_try(PfExt *e, ExtEntryOp *op)
{
	errcode_t code;

	if (op->mode == 0)
		return ext2fs_link(e->fs, op->dir, op->name, op->ino, op->ft);
	code = ext2fs_new_inode(e->fs, op->dir, op->mode, NULL, &op->ino);
	if (code)
		return code;
	if (LINUX_S_ISLNK(op->mode))
		return ext2fs_symlink(e->fs, op->dir, op->ino, op->name, op->target);
	return ext2fs_mkdir(e->fs, op->dir, op->ino, op->name);
}

/*
 * Puts an entry into op->dir (allocating its inode first, for a directory or a symlink);
 * when the directory is full, grows it and tries again, twice at most. The one retry loop
 * of every create: write (link), mkdir, symlink.
 */
static errcode_t ext_add_entry(PfExt *e, ExtEntryOp *op)
{
	errcode_t code;

	for (int attempt = 0;; attempt++) {
		code = ext_entry_try(e, op);
		if (code != EXT2_ET_DIR_NO_SPACE || attempt >= 2)
			return code;
		code = ext_grow_dir(e, op->dir);
		if (code)
			return code;
	}
}

/* Links ino into dir, growing a linear directory when it is full. */
static errcode_t ext_link(PfExt *e, ext2_ino_t dir, const char *name, ext2_ino_t ino, int ft)
{
	ExtEntryOp op = { .dir = dir, .name = name, .ino = ino, .ft = ft };

	return ext_add_entry(e, &op);
}

/* Sets a directory's mtime and ctime after an entry was added or removed. */
static int ext_touch_dir(PfExt *e, ext2_ino_t dir, int64_t t)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	int r;

	r = ext_read_inode(e, dir, &in);
	if (r < 0)
		return r;
	ext_set_times(e, in, t, EXT_T_DIR);
	return ext_write_inode(e, dir, in);
}

/*
 * Frees an inode whose last link is gone: its blocks, its extended attribute block, the
 * inode itself (dtime set, links 0).
 */
static errcode_t ext_release(PfExt *e, ext2_ino_t ino, struct ext2_inode_large *in, bool isdir)
{
	struct ext2_inode *small = (struct ext2_inode *)in;
	uint32_t dtime, epoch;
	errcode_t code;

	in->i_links_count = 0;
	if (ext2fs_inode_has_valid_blocks2(e->fs, small)) {
		code = ext2fs_punch(e->fs, ino, small, NULL, 0, ~0ULL);
		if (code)
			return code;
	}
	code = ext2fs_free_ext_attr(e->fs, ino, in);
	if (code)
		return code;
	ext_time_split(ext_now(), false, &dtime, &epoch);
	in->i_dtime = dtime ? dtime : 1;
	code = ext2fs_write_inode_full(e->fs, ino, small, EXT2_INODE_SIZE(e->fs->super));
	if (code)
		return code;
	ext2fs_inode_alloc_stats2(e->fs, ino, -1, isdir);
	return 0;
}

/* Writes size bytes of data into ino from offset 0 (the inode has no blocks yet). */
static errcode_t ext_write_data(PfExt *e, ext2_ino_t ino, const void *data, size_t size)
{
	ext2_file_t f;
	errcode_t code, code2;
	size_t done = 0;

	code = ext2fs_file_open(e->fs, ino, EXT2_FILE_WRITE, &f);
	if (code)
		return code;
	while (done < size) {
		unsigned int n = (unsigned int)MIN(size - done, (size_t)EXT_WRITE_CHUNK_BYTES);
		unsigned int written = 0;

		code = ext2fs_file_write(f, (const uint8_t *)data + done, n, &written);
		if (code)
			break;
		if (written == 0) {
			code = EXT2_ET_SHORT_WRITE;
			break;
		}
		done += written;
	}
	if (!code) {
		__u64 cur = 0;

		/* ext2fs_file_write() sets the size; calling set_size2 regardless would fail on
		 * inline data (it looks for a block to zero the tail of). */
		code = ext2fs_file_get_lsize(f, &cur);
		if (!code && cur != size)
			code = ext2fs_file_set_size2(f, size);
	}
	code2 = ext2fs_file_close(f);
	return code ? code : code2;
}

/* ---- operations ---- */

static bool ext_handles(const char *blkid_type)
{
	return streq(blkid_type, "ext2") || streq(blkid_type, "ext3") ||
	       streq(blkid_type, "ext4") || streq(blkid_type, "ext4dev");
}

static const char *ext_type_of(ext2_filsys fs)
{
	struct ext2_super_block *sb = fs->super;

	if (ext2fs_has_feature_extents(sb) || ext2fs_has_feature_64bit(sb) ||
	    ext2fs_has_feature_flex_bg(sb) || ext2fs_has_feature_huge_file(sb) ||
	    ext2fs_has_feature_gdt_csum(sb) || ext2fs_has_feature_metadata_csum(sb) ||
	    ext2fs_has_feature_dir_nlink(sb) || ext2fs_has_feature_extra_isize(sb))
		return "ext4";
	if (ext2fs_has_feature_journal(sb))
		return "ext3";
	return "ext2";
}

static void ext_free(PfExt *e)
{
	if (!e)
		return;
	if (e->fs)
		ext2fs_free(e->fs);
	free(e);
}

/*
 * Marks a filesystem that only e2fsck should change (e->unclean): it is read as it is, and
 * written not at all. Refuses one larger than its partition: not even reading stays inside.
 */
static int ext_check_state(PfExt *e)
{
	struct ext2_super_block *sb = e->fs->super;
	uint64_t fs_bytes;

	if (ext2fs_has_feature_journal_needs_recovery(sb))
		e->unclean = "needs journal recovery (it was not unmounted cleanly)";
	else if (sb->s_state & EXT2_ERROR_FS)
		e->unclean = "has errors recorded";
	else if (ext2fs_has_feature_orphan_present(sb) || sb->s_last_orphan)
		e->unclean = "has orphan inodes to clean up";
	else if (!ext2fs_has_feature_journal(sb) && !(sb->s_state & EXT2_VALID_FS))
		e->unclean = "was not cleanly unmounted";
	if (MUL_OVERFLOW(ext2fs_blocks_count(sb), (uint64_t)e->fs->blocksize, &fs_bytes) ||
	    fs_bytes > e->vol.size_bytes)
		return pf_error_set(-EUCLEAN,
				    "%s: the filesystem (%" PRIu64 " blocks of %u bytes) is larger "
				    "than its partition (%" PRIu64 " bytes)",
				    e->type, (uint64_t)ext2fs_blocks_count(sb), e->fs->blocksize,
				    e->vol.size_bytes);
	return 0;
}

static int ext_open(const PfVolume *vol, void **ret_priv)
{
	PfExt *e;
	errcode_t code;
	int64_t now;
	int r;

	ext_error_table_load();

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->vol = *vol;
	e->type = "ext";
	snprintf(e->name, sizeof(e->name), "piflash-volume@%" PRIu64, vol->start_bytes);

	code = ext_io_open_fs(e);
	if (code) {
		e->fs = NULL;
		r = ext_fail(e, code, "cannot open the filesystem");
		ext_free(e);
		return r;
	}
	e->type = ext_type_of(e->fs);
	e->inode_bytes =
		MAX((size_t)EXT2_INODE_SIZE(e->fs->super), sizeof(struct ext2_inode_large));
	/* Times libext2fs sets by itself (superblock write time) follow SOURCE_DATE_EPOCH. */
	if (pf_timestamp(&now) >= 0)
		e->fs->now = (time_t)now;

	r = ext_check_state(e);
	if (r < 0) {
		ext_free(e);
		return r;
	}
	*ret_priv = e;
	return 0;
}

static int ext_sync(void *priv)
{
	PfExt *e = priv;
	errcode_t code;

	e->io_err = 0;
	if (!e->modified)
		return 0;
	if (e->bitmaps_loaded) {
		code = ext2fs_write_bitmaps(e->fs);
		if (code)
			return ext_fail(e, code, "cannot write the allocation bitmaps");
	}
	ext2fs_mark_super_dirty(e->fs);
	code = ext2fs_flush2(e->fs, 0);
	if (code)
		return ext_fail(e, code, "cannot write the superblock and group descriptors");
	e->modified = false;
	return 0;
}

static void ext_close(void *priv)
{
	ext_free(priv);
}

static int ext_stat(void *priv, const char *path, PfStat *ret)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	PfExt *e = priv;
	ext2_ino_t ino;
	int r;

	e->io_err = 0;
	r = ext_resolve(e, path, &ino);
	if (r < 0)
		return r;
	r = ext_read_inode(e, ino, &in);
	if (r < 0)
		return r;
	ext_fill_stat(e, in, ret);
	return 0;
}

static int ext_read_file(void *priv, const char *path, size_t max_bytes, uint8_t **ret_data,
			 size_t *ret_size)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	_cleanup_(freep) uint8_t *buf = NULL;
	PfExt *e = priv;
	ext2_file_t f;
	ext2_ino_t ino;
	uint64_t size;
	size_t done = 0;
	errcode_t code = 0, code2;
	int r;

	e->io_err = 0;
	r = ext_resolve(e, path, &ino);
	if (r < 0)
		return r;
	r = ext_read_inode(e, ino, &in);
	if (r < 0)
		return r;
	if (LINUX_S_ISDIR(in->i_mode))
		return pf_error_set(-EISDIR, "%s: '%s' is a directory", e->type, path);
	if (!LINUX_S_ISREG(in->i_mode))
		return pf_error_set(-EINVAL, "%s: '%s' is not a regular file", e->type, path);
	size = EXT2_I_SIZE((struct ext2_inode *)in);
	if (size > max_bytes)
		return pf_error_set(-EFBIG, "%s: '%s' is %" PRIu64 " bytes, more than %zu", e->type,
				    path, size, max_bytes);

	buf = malloc(size ? (size_t)size : 1);
	if (!buf)
		return -ENOMEM;
	code = ext2fs_file_open2(e->fs, ino, (struct ext2_inode *)in, 0, &f);
	if (code)
		return ext_fail(e, code, "cannot read '%s'", path);
	while (done < size) {
		unsigned int n = (unsigned int)MIN(size - done, (uint64_t)EXT_WRITE_CHUNK_BYTES);
		unsigned int got = 0;

		code = ext2fs_file_read(f, buf + done, n, &got);
		if (code)
			break;
		if (got == 0) {
			code = EXT2_ET_SHORT_READ;
			break;
		}
		done += got;
	}
	code2 = ext2fs_file_close(f);
	if (code || code2)
		return ext_fail(e, code ? code : code2, "cannot read '%s'", path);

	*ret_data = TAKE_PTR(buf);
	*ret_size = (size_t)size;
	return 0;
}

typedef struct UnlinkScan {
	ext2_filsys fs;
	const char *name;
	size_t len;
	ext2_ino_t ino;
	struct ext2_dir_entry *prev; /* the entry before, in the same block, or NULL */
	errcode_t err;
	bool done;
} UnlinkScan;

/*
 * Removes the entry for name -> ino. Like ext2fs_unlink(), an entry with one before it in
 * its block is merged into that one. Unlike it, an entry first in its block (as names often
 * are in an htree leaf, depending on the filesystem's random hash seed) is not only given
 * inode 0 but also name length 0 and no type: with its name kept, tools that list empty
 * entries (debugfs ls) still show the removed name. The name's bytes are zeroed in both
 * cases, so nothing of it is left in the block.
 */
static int unlink_scan_entry(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset,
			     int blocksize, char *buf, void *priv)
{
	UnlinkScan *u = priv;
	struct ext2_dir_entry *prev = offset > 0 ? u->prev : NULL;
	size_t len = ext2fs_dirent_name_len(dirent);
	unsigned int rec_len, prev_len;

	(void)dir;
	(void)entry;
	(void)blocksize;
	(void)buf;
	u->prev = dirent;
	if (dirent->inode != u->ino || len != u->len || memcmp(dirent->name, u->name, len) != 0)
		return 0;
	if (prev) {
		u->err = ext2fs_get_rec_len(u->fs, dirent, &rec_len);
		if (!u->err)
			u->err = ext2fs_get_rec_len(u->fs, prev, &prev_len);
		if (!u->err)
			u->err = ext2fs_set_rec_len(u->fs, prev_len + rec_len, prev);
		if (u->err)
			return DIRENT_ABORT;
	} else {
		dirent->inode = 0;
		ext2fs_dirent_set_name_len(dirent, 0);
		ext2fs_dirent_set_file_type(dirent, 0);
	}
	memset(dirent->name, 0, len);
	u->done = true;
	return DIRENT_ABORT | DIRENT_CHANGED;
}

static errcode_t ext_unlink(PfExt *e, ext2_ino_t dir, const char *name, ext2_ino_t ino)
{
	UnlinkScan u = { .fs = e->fs, .name = name, .len = strlen(name), .ino = ino };
	errcode_t code;

	/* Empty entries included, so that prev is always the entry just before. */
	code = ext2fs_dir_iterate2(e->fs, dir, DIRENT_FLAG_INCLUDE_EMPTY, NULL, unlink_scan_entry,
				   &u);
	if (code)
		return code;
	if (u.err)
		return u.err;
	return u.done ? 0 : EXT2_ET_FILE_NOT_FOUND;
}

/* Unlinks name from dir and frees the inode when that was its last link. */
static int ext_unlink_entry(PfExt *e, ext2_ino_t dir, const char *name, ext2_ino_t ino,
			    struct ext2_inode_large *in, const char *path)
{
	bool isdir = LINUX_S_ISDIR(in->i_mode);
	errcode_t code;
	int r;

	code = ext_unlink(e, dir, name, ino);
	if (code)
		return ext_fail(e, code, "cannot remove '%s'", path);

	if (isdir || in->i_links_count <= 1) {
		code = ext_release(e, ino, in, isdir);
		if (code)
			return ext_fail(e, code, "cannot free the inode of '%s'", path);
	} else {
		in->i_links_count--;
		ext_set_times(e, in, ext_now(), EXT_T_CTIME);
		r = ext_write_inode(e, ino, in);
		if (r < 0)
			return r;
	}

	if (isdir) {
		_cleanup_(freep) struct ext2_inode_large *din = NULL;

		/* The ".." of the removed directory linked its parent. */
		r = ext_read_inode(e, dir, &din);
		if (r < 0)
			return r;
		if (din->i_links_count > 2)
			din->i_links_count--;
		r = ext_write_inode(e, dir, din);
		if (r < 0)
			return r;
	}
	return ext_touch_dir(e, dir, ext_now());
}

/* Creates a new regular file name in dir. */
static int ext_create_file(PfExt *e, ext2_ino_t dir, const char *name, const char *path,
			   const void *data, size_t size, const PfAttr *attr)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	ext2_ino_t ino;
	errcode_t code;
	int r;

	r = ext_check_space(e, size, 0, path);
	if (r < 0)
		return r;
	code = ext2fs_new_inode(e->fs, dir, LINUX_S_IFREG | 0644, NULL, &ino);
	if (code)
		return ext_fail(e, code, "cannot create '%s'", path);

	in = calloc(1, e->inode_bytes);
	if (!in)
		return -ENOMEM;
	in->i_mode = (__u16)(LINUX_S_IFREG | (attr->mode & 07777));
	ext_set_owner(in, attr->uid, attr->gid);
	in->i_links_count = 1;
	if (EXT2_INODE_SIZE(e->fs->super) > EXT2_GOOD_OLD_INODE_SIZE)
		in->i_extra_isize = (__u16)MIN(
			sizeof(struct ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE,
			(size_t)EXT2_INODE_SIZE(e->fs->super) - EXT2_GOOD_OLD_INODE_SIZE);
	ext_set_times(e, in, attr->mtime, EXT_T_NEW);
	if (ext2fs_has_feature_extents(e->fs->super)) {
		ext2_extent_handle_t h;

		/* Opening an extent handle on an empty inode writes the extent header. */
		code = ext2fs_extent_open2(e->fs, ino, (struct ext2_inode *)in, &h);
		if (code)
			return ext_fail(e, code, "cannot create '%s'", path);
		ext2fs_extent_free(h);
	}
	code = ext2fs_write_inode_full(e->fs, ino, (struct ext2_inode *)in,
				       EXT2_INODE_SIZE(e->fs->super));
	if (code)
		return ext_fail(e, code, "cannot create '%s'", path);
	ext2fs_inode_alloc_stats2(e->fs, ino, +1, 0);

	code = ext_write_data(e, ino, data, size);
	if (!code)
		code = ext_link(e, dir, name, ino, EXT2_FT_REG_FILE);
	if (code) {
		_cleanup_(freep) struct ext2_inode_large *cur = NULL;
		char detail[512];

		r = ext_fail(e, code, "cannot create '%s'", path);
		snprintf(detail, sizeof(detail), "%s", pf_error_message(r));
		/* Undo: the inode is linked nowhere; give its blocks and itself back. */
		if (ext_read_inode(e, ino, &cur) >= 0)
			(void)ext_release(e, ino, cur, false);
		return pf_error_set(r, "%s", detail);
	}
	return ext_touch_dir(e, dir, attr->mtime);
}

/*
 * Turns an emptied inline-data inode into an ordinary one (extent-mapped where the
 * filesystem has extents), so new content goes to blocks. libext2fs 1.47.0 overruns a
 * buffer when a write makes inline data spill into blocks; this way it never has to.
 */
static errcode_t ext_drop_inline_data(PfExt *e, ext2_ino_t ino)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	struct ext2_xattr_handle *h = NULL;
	errcode_t code;

	code = ext2fs_xattrs_open(e->fs, ino, &h);
	if (!code)
		code = ext2fs_xattrs_read(h);
	if (!code) {
		code = ext2fs_xattr_remove(h, "system.data");
		if (code == EXT2_ET_EA_KEY_NOT_FOUND)
			code = 0;
	}
	if (h) {
		errcode_t code2 = ext2fs_xattrs_close(&h);

		if (!code)
			code = code2;
	}
	if (code)
		return code;

	in = calloc(1, e->inode_bytes);
	if (!in)
		return EXT2_ET_NO_MEMORY;
	code = ext2fs_read_inode_full(e->fs, ino, (struct ext2_inode *)in,
				      EXT2_INODE_SIZE(e->fs->super));
	if (code)
		return code;
	in->i_flags &= ~EXT4_INLINE_DATA_FL;
	memset(in->i_block, 0, sizeof(in->i_block));
	if (ext2fs_has_feature_extents(e->fs->super)) {
		ext2_extent_handle_t eh;

		in->i_flags &= ~EXT4_EXTENTS_FL;
		code = ext2fs_extent_open2(e->fs, ino, (struct ext2_inode *)in, &eh);
		if (code)
			return code;
		ext2fs_extent_free(eh);
	}
	return ext2fs_write_inode_full(e->fs, ino, (struct ext2_inode *)in,
				       EXT2_INODE_SIZE(e->fs->super));
}

/* Replaces the content of the regular file ino, keeping the inode. */
static int ext_replace_file(PfExt *e, ext2_ino_t ino, struct ext2_inode_large *in, const char *path,
			    const void *data, size_t size, const PfAttr *attr)
{
	struct ext2_inode *small = (struct ext2_inode *)in;
	_cleanup_(freep) struct ext2_inode_large *cur = NULL;
	blk64_t reclaim;
	errcode_t code;
	int r;

	if (in->i_flags & (EXT2_IMMUTABLE_FL | EXT2_APPEND_FL))
		return pf_error_set(-EPERM, "%s: '%s' is immutable or append-only", e->type, path);
	reclaim = ext2fs_get_stat_i_blocks(e->fs, small) / (e->fs->blocksize / 512);
	r = ext_check_space(e, size, reclaim, path);
	if (r < 0)
		return r;

	code = ext2fs_inode_size_set(e->fs, small, 0);
	if (!code)
		code = ext2fs_punch(e->fs, ino, small, NULL, 0, ~0ULL);
	if (!code)
		code = ext2fs_write_inode_full(e->fs, ino, small, EXT2_INODE_SIZE(e->fs->super));
	if (!code && (in->i_flags & EXT4_INLINE_DATA_FL))
		code = ext_drop_inline_data(e, ino);
	if (!code)
		code = ext_write_data(e, ino, data, size);
	if (code)
		return ext_fail(e, code, "cannot replace '%s'", path);

	/* Re-read: writing changed the block map and size. */
	r = ext_read_inode(e, ino, &cur);
	if (r < 0)
		return r;
	cur->i_mode = (__u16)(LINUX_S_IFREG | (attr->mode & 07777));
	ext_set_owner(cur, attr->uid, attr->gid);
	ext_set_times(e, cur, attr->mtime, EXT_T_CONTENT);
	return ext_write_inode(e, ino, cur);
}

static int ext_write_file(void *priv, const char *path, const void *data, size_t size,
			  const PfAttr *attr_in)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	char name[EXT2_NAME_LEN + 1];
	PfExt *e = priv;
	ext2_ino_t dir, ino;
	PfAttr attr;
	int r;

	e->io_err = 0;
	r = ext_attr_or_default(attr_in, 0644, &attr);
	if (r < 0)
		return r;
	r = ext_resolve_parent(e, path, &dir, name);
	if (r < 0)
		return r;
	r = ext_prepare_write(e, "write", path);
	if (r < 0)
		return r;
	r = ext_exists(e, dir, name, path, &ino);
	if (r < 0)
		return r;
	if (r == 0)
		return ext_create_file(e, dir, name, path, data, size, &attr);

	r = ext_read_inode(e, ino, &in);
	if (r < 0)
		return r;
	if (LINUX_S_ISDIR(in->i_mode))
		return pf_error_set(-EISDIR, "%s: '%s' is a directory", e->type, path);
	if (LINUX_S_ISREG(in->i_mode))
		return ext_replace_file(e, ino, in, path, data, size, &attr);

	/* A symlink, device or fifo in the way: the file takes the name. */
	if (in->i_flags & (EXT2_IMMUTABLE_FL | EXT2_APPEND_FL))
		return pf_error_set(-EPERM, "%s: '%s' is immutable or append-only", e->type, path);
	r = ext_check_space(e, size, 0, path);
	if (r < 0)
		return r;
	r = ext_unlink_entry(e, dir, name, ino, in, path);
	if (r < 0)
		return r;
	return ext_create_file(e, dir, name, path, data, size, &attr);
}

/*
 * The start of mkdir and symlink: the attributes (default_mode when none are given), the
 * parent directory and the name, -EEXIST when the name is taken, the bitmaps loaded.
 */
static int ext_create_begin(PfExt *e, const char *path, const PfAttr *attr_in, mode_t default_mode,
			    PfAttr *ret_attr, ext2_ino_t *ret_dir, char *name)
{
	ext2_ino_t ino;
	int r;

	r = ext_attr_or_default(attr_in, default_mode, ret_attr);
	if (r < 0)
		return r;
	r = ext_resolve_parent(e, path, ret_dir, name);
	if (r < 0)
		return r;
	r = ext_exists(e, *ret_dir, name, path, &ino);
	if (r < 0)
		return r;
	if (r > 0)
		return pf_error_set(-EEXIST, "%s: '%s' exists", e->type, path);
	return ext_prepare_write(e, "create", path);
}

/* The end of mkdir and symlink: owner and times (and, for a directory, the mode) on the new
 * inode, and the parent's times. */
static int ext_create_finish(PfExt *e, ext2_ino_t dir, ext2_ino_t ino, const PfAttr *attr,
			     bool set_mode)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	int r;

	r = ext_read_inode(e, ino, &in);
	if (r < 0)
		return r;
	if (set_mode)
		in->i_mode = (__u16)(LINUX_S_IFDIR | (attr->mode & 07777));
	ext_set_owner(in, attr->uid, attr->gid);
	ext_set_times(e, in, attr->mtime, EXT_T_NEW);
	r = ext_write_inode(e, ino, in);
	if (r < 0)
		return r;
	return ext_touch_dir(e, dir, attr->mtime);
}

static int ext_mkdir(void *priv, const char *path, const PfAttr *attr_in)
{
	char name[EXT2_NAME_LEN + 1];
	PfExt *e = priv;
	ExtEntryOp op = { .name = name, .mode = LINUX_S_IFDIR | 0755 };
	errcode_t code;
	PfAttr attr;
	int r;

	e->io_err = 0;
	r = ext_create_begin(e, path, attr_in, 0755, &attr, &op.dir, name);
	if (r < 0)
		return r;
	code = ext_add_entry(e, &op);
	if (code)
		return ext_fail(e, code, "cannot create directory '%s'", path);
	return ext_create_finish(e, op.dir, op.ino, &attr, true);
}

static int ext_symlink(void *priv, const char *path, const char *target, const PfAttr *attr_in)
{
	char name[EXT2_NAME_LEN + 1];
	PfExt *e = priv;
	ExtEntryOp op = { .name = name, .mode = LINUX_S_IFLNK | 0777, .target = target };
	errcode_t code;
	PfAttr attr;
	size_t len;
	int r;

	e->io_err = 0;
	if (!target || !*target)
		return pf_error_set(-EINVAL, "%s: empty symlink target for '%s'", e->type, path);
	len = strnlen(target, PF_PATH_MAX + 1);
	/* The kernel (and libext2fs) keep a link target within one block, NUL included. */
	if (len > PF_PATH_MAX || len >= e->fs->blocksize)
		return pf_error_set(-ENAMETOOLONG,
				    "%s: symlink target for '%s' is %zu bytes, longer than the %u "
				    "a block can hold",
				    e->type, path, len, e->fs->blocksize - 1);
	r = ext_create_begin(e, path, attr_in, 0777, &attr, &op.dir, name);
	if (r < 0)
		return r;
	code = ext_add_entry(e, &op);
	if (code)
		return ext_fail(e, code, "cannot create symlink '%s'", path);
	return ext_create_finish(e, op.dir, op.ino, &attr, false);
}

static int ext_readlink(void *priv, const char *path, char **ret_target)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	_cleanup_(freep) char *buf = NULL;
	PfExt *e = priv;
	ext2_ino_t ino;
	uint64_t size;
	int r;

	e->io_err = 0;
	r = ext_resolve(e, path, &ino);
	if (r < 0)
		return r;
	r = ext_read_inode(e, ino, &in);
	if (r < 0)
		return r;
	if (!LINUX_S_ISLNK(in->i_mode))
		return pf_error_set(-EINVAL, "%s: '%s' is not a symlink", e->type, path);
	size = EXT2_I_SIZE((struct ext2_inode *)in);
	if (size == 0 || size > PF_PATH_MAX)
		return pf_error_set(-EUCLEAN, "%s: symlink '%s' has a bad length (%" PRIu64 ")",
				    e->type, path, size);
	buf = calloc(1, (size_t)size + 1);
	if (!buf)
		return -ENOMEM;

	if (ext2fs_is_fast_symlink((struct ext2_inode *)in)) {
		/* The target lives in i_block (at most 59 bytes). */
		if (size >= sizeof(in->i_block))
			return pf_error_set(-EUCLEAN, "%s: fast symlink '%s' is too long", e->type,
					    path);
		memcpy(buf, in->i_block, (size_t)size);
	} else {
		/* Inline data or a block: the file API reads both. */
		ext2_file_t f;
		unsigned int got = 0;
		errcode_t code, code2;

		code = ext2fs_file_open2(e->fs, ino, (struct ext2_inode *)in, 0, &f);
		if (code)
			return ext_fail(e, code, "cannot read symlink '%s'", path);
		code = ext2fs_file_read(f, buf, (unsigned int)size, &got);
		code2 = ext2fs_file_close(f);
		if (code || code2)
			return ext_fail(e, code ? code : code2, "cannot read symlink '%s'", path);
		if (got != size)
			return pf_error_set(-EUCLEAN, "%s: symlink '%s' is shorter than its size",
					    e->type, path);
	}
	if (memchr(buf, 0, (size_t)size))
		return pf_error_set(-EUCLEAN, "%s: symlink '%s' contains a NUL byte", e->type,
				    path);
	*ret_target = TAKE_PTR(buf);
	return 0;
}

typedef struct DirScan {
	/* Collected entries (list) */
	PfDirent *items;
	size_t n, allocated;
	ext2_ino_t *inos;
	/* Emptiness check (remove) */
	bool only_count;
	size_t count;
	int err;
} DirScan;

static int dir_scan_entry(ext2_ino_t dir, int entry, struct ext2_dir_entry *dirent, int offset,
			  int blocksize, char *buf, void *priv)
{
	DirScan *s = priv;
	size_t len = ext2fs_dirent_name_len(dirent);

	(void)dir;
	(void)offset;
	(void)blocksize;
	(void)buf;
	if (entry == DIRENT_DOT_FILE || entry == DIRENT_DOT_DOT_FILE || dirent->inode == 0)
		return 0;
	s->count++;
	if (s->only_count)
		return DIRENT_ABORT;

	if (s->n == s->allocated) {
		size_t na = s->allocated ? s->allocated * 2 : 32;
		PfDirent *ni = reallocarray(s->items, na, sizeof(*ni));
		ext2_ino_t *nn;

		if (!ni) {
			s->err = -ENOMEM;
			return DIRENT_ABORT;
		}
		s->items = ni;
		nn = reallocarray(s->inos, na, sizeof(*nn));
		if (!nn) {
			s->err = -ENOMEM;
			return DIRENT_ABORT;
		}
		s->inos = nn;
		s->allocated = na;
	}
	/* Not strndup(): the name is not NUL-terminated and may end the block, and the
	 * sanitizers' strndup reads one byte past len. */
	s->items[s->n].name = malloc((size_t)len + 1);
	if (!s->items[s->n].name) {
		s->err = -ENOMEM;
		return DIRENT_ABORT;
	}
	memcpy(s->items[s->n].name, dirent->name, (size_t)len);
	s->items[s->n].name[len] = 0;
	s->inos[s->n] = dirent->inode;
	s->n++;
	return 0;
}

static int ext_remove(void *priv, const char *path)
{
	_cleanup_(freep) struct ext2_inode_large *in = NULL;
	char name[EXT2_NAME_LEN + 1];
	PfExt *e = priv;
	ext2_ino_t dir, ino;
	errcode_t code;
	int r;

	e->io_err = 0;
	r = ext_resolve_parent(e, path, &dir, name);
	if (r < 0)
		return r;
	r = ext_lookup_in(e, dir, name, strlen(name), path, &ino);
	if (r < 0)
		return r;
	r = ext_read_inode(e, ino, &in);
	if (r < 0)
		return r;
	if (in->i_flags & (EXT2_IMMUTABLE_FL | EXT2_APPEND_FL))
		return pf_error_set(-EPERM, "%s: '%s' is immutable or append-only", e->type, path);
	if (LINUX_S_ISDIR(in->i_mode)) {
		DirScan s = { .only_count = true };

		code = ext2fs_dir_iterate2(e->fs, ino, 0, NULL, dir_scan_entry, &s);
		if (code)
			return ext_fail(e, code, "cannot read directory '%s'", path);
		if (s.count > 0)
			return pf_error_set(-ENOTEMPTY, "%s: directory '%s' is not empty", e->type,
					    path);
	}
	r = ext_prepare_write(e, "remove", path);
	if (r < 0)
		return r;
	return ext_unlink_entry(e, dir, name, ino, in, path);
}

static int ext_list(void *priv, const char *path, PfDirent **ret, size_t *ret_n)
{
	PfExt *e = priv;
	DirScan s = {};
	ext2_ino_t ino;
	errcode_t code;
	int r;

	e->io_err = 0;
	r = ext_resolve(e, path, &ino);
	if (r < 0)
		return r;
	r = ext_want_dir(e, ino, path, strlen(path));
	if (r < 0)
		return r;

	code = ext2fs_dir_iterate2(e->fs, ino, 0, NULL, dir_scan_entry, &s);
	if (code) {
		r = ext_fail(e, code, "cannot read directory '%s'", path);
		goto fail;
	}
	if (s.err < 0) {
		r = s.err;
		goto fail;
	}
	for (size_t i = 0; i < s.n; i++) {
		_cleanup_(freep) struct ext2_inode_large *in = NULL;

		r = ext_read_inode(e, s.inos[i], &in);
		if (r < 0)
			goto fail;
		ext_fill_stat(e, in, &s.items[i].st);
	}
	free(s.inos);
	*ret = s.items;
	*ret_n = s.n;
	return 0;

fail:
	pf_dirents_free(s.items, s.n);
	free(s.inos);
	return r;
}

static int ext_used(void *priv, PfExtents *ret)
{
	PfExt *e = priv;
	ext2_filsys fs = e->fs;
	PfExtents x = {};
	blk64_t start, end, first, zero;
	uint64_t bs = fs->blocksize;
	errcode_t code;
	int r;

	e->io_err = 0;
	if (!e->bitmaps_loaded) {
		code = ext2fs_read_bitmaps(fs);
		if (code)
			return ext_fail(e, code, "cannot read the allocation bitmaps");
		e->bitmaps_loaded = true;
	}

	/* The boot block and the primary superblock: outside the bitmap with 1 KiB blocks. */
	r = pf_extents_add(&x, 0,
			   MIN((uint64_t)SUPERBLOCK_OFFSET + SUPERBLOCK_SIZE, e->vol.size_bytes));
	if (r < 0)
		goto fail;

	start = fs->super->s_first_data_block;
	end = ext2fs_blocks_count(fs->super) - 1;
	while (start <= end) {
		code = ext2fs_find_first_set_block_bitmap2(fs->block_map, start, end, &first);
		if (code == ENOENT)
			break;
		if (code) {
			r = ext_fail(e, code, "cannot walk the block bitmap");
			goto fail;
		}
		code = ext2fs_find_first_zero_block_bitmap2(fs->block_map, first, end, &zero);
		if (code == ENOENT)
			zero = end + 1;
		else if (code) {
			r = ext_fail(e, code, "cannot walk the block bitmap");
			goto fail;
		}
		r = pf_extents_add(&x, first * bs, (zero - first) * bs);
		if (r < 0)
			goto fail;
		start = zero;
	}
	pf_extents_normalize(&x);

	if (ret->n == 0 && !ret->items) {
		*ret = x;
		return 0;
	}
	r = pf_extents_add_all(ret, &x, 0);
	pf_extents_done(&x);
	return r;

fail:
	pf_extents_done(&x);
	return r;
}

const PfFsOps pf_ext_ops = {
	.name = "ext",
	.handles = ext_handles,
	.open = ext_open,
	.sync = ext_sync,
	.close = ext_close,
	.stat = ext_stat,
	.read_file = ext_read_file,
	.write_file = ext_write_file,
	.mkdir = ext_mkdir,
	.symlink = ext_symlink,
	.readlink = ext_readlink,
	.remove = ext_remove,
	.list = ext_list,
	.used = ext_used,
};
