/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The ext driver's errors: every libext2fs error code becomes -errno here, once, and the
 * message the user sees keeps libext2fs's own text ("ext4: cannot create '/etc/x': Could
 * not allocate block in ext2 filesystem").
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include <et/com_err.h>
#include <ext2fs/ext2_err.h>
#include <ext2fs/ext2fs.h>

#include "fs/ext-internal.h"
#include "util/error.h"

/* Long because it is a table: one case per libext2fs code worth its own errno. */
int pf_ext_errno(errcode_t code)
{
	if (code == 0)
		return 0;
	if (code > 0 && code < 256) /* an errno value, e.g. from our io channel */
		return -(int)code;

	switch (code) {
	case EXT2_ET_FILE_NOT_FOUND:
		return -ENOENT;
	case EXT2_ET_DIR_NO_SPACE:
	case EXT2_ET_BLOCK_ALLOC_FAIL:
	case EXT2_ET_INODE_ALLOC_FAIL:
	case EXT2_ET_EA_NO_SPACE:
	case EXT2_ET_INLINE_DATA_NO_SPACE:
	case EXT2_ET_EXTENT_NO_SPACE:
	case EXT2_ET_TOOSMALL:
		return -ENOSPC;
	case EXT2_ET_NO_MEMORY:
		return -ENOMEM;
	case EXT2_ET_FILE_EXISTS:
	case EXT2_ET_DIR_EXISTS:
		return -EEXIST;
	case EXT2_ET_NO_DIRECTORY:
		return -ENOTDIR;
	case EXT2_ET_RO_FILSYS:
	case EXT2_ET_FILE_RO:
		return -EROFS;
	case EXT2_ET_FILE_TOO_BIG:
		return -EFBIG;
	case EXT2_ET_INVALID_ARGUMENT:
		return -EINVAL;
	case EXT2_ET_SYMLINK_LOOP:
		return -ELOOP;
	case EXT2_ET_TOO_MANY_REFS:
		return -EMLINK;
	case EXT2_ET_UNSUPP_FEATURE:
	case EXT2_ET_RO_UNSUPP_FEATURE:
	case EXT2_ET_UNIMPLEMENTED:
	case EXT2_ET_OP_NOT_SUPPORTED:
	case EXT2_ET_DIRHASH_UNSUPP:
	case EXT2_ET_EXTENT_NOT_SUPPORTED:
	case EXT2_ET_UNKNOWN_CSUM:
	case EXT2_ET_EXTERNAL_JOURNAL_NOSUPP:
		return -EOPNOTSUPP;
	case EXT2_ET_BAD_MAGIC:
	case EXT2_ET_REV_TOO_HIGH:
	case EXT2_ET_CORRUPT_SUPERBLOCK:
	case EXT2_ET_UNEXPECTED_BLOCK_SIZE:
	case EXT2_ET_BAD_DESC_SIZE:
	case EXT2_ET_GDESC_BAD_BLOCK_MAP:
	case EXT2_ET_GDESC_BAD_INODE_MAP:
	case EXT2_ET_GDESC_BAD_INODE_TABLE:
	case EXT2_ET_MISSING_INODE_TABLE:
	case EXT2_ET_DIR_CORRUPTED:
	case EXT2_ET_BAD_INODE_NUM:
	case EXT2_ET_BAD_BLOCK_NUM:
	case EXT2_ET_BAD_IND_BLOCK:
	case EXT2_ET_BAD_DIND_BLOCK:
	case EXT2_ET_BAD_TIND_BLOCK:
	case EXT2_ET_BAD_EA_BLOCK_NUM:
	case EXT2_ET_BAD_EA_HEADER:
	case EXT2_ET_BAD_EA_HASH:
	case EXT2_ET_EA_BAD_NAME_LEN:
	case EXT2_ET_EA_BAD_VALUE_SIZE:
	case EXT2_ET_EA_BAD_VALUE_OFFSET:
	case EXT2_ET_EXTENT_HEADER_BAD:
	case EXT2_ET_EXTENT_INDEX_BAD:
	case EXT2_ET_EXTENT_LEAF_BAD:
	case EXT2_ET_EXTENT_CYCLE:
	case EXT2_ET_INODE_CSUM_INVALID:
	case EXT2_ET_INODE_BITMAP_CSUM_INVALID:
	case EXT2_ET_BLOCK_BITMAP_CSUM_INVALID:
	case EXT2_ET_EXTENT_CSUM_INVALID:
	case EXT2_ET_DIR_CSUM_INVALID:
	case EXT2_ET_DIR_NO_SPACE_FOR_CSUM:
	case EXT2_ET_EXT_ATTR_CSUM_INVALID:
	case EXT2_ET_SB_CSUM_INVALID:
	case EXT2_ET_MMP_CSUM_INVALID:
	case EXT2_ET_BAD_CRC:
	case EXT2_ET_INODE_IS_GARBAGE:
	case EXT2_ET_INODE_CORRUPTED:
	case EXT2_ET_EA_INODE_CORRUPTED:
	case EXT2_ET_FILESYSTEM_CORRUPTED:
	case EXT2_ET_CORRUPT_JOURNAL_SB:
	case EXT2_ET_RESIZE_INODE_CORRUPT:
	case EXT2_ET_NO_GDESC:
	case EXT2_ET_INLINE_DATA_NO_BLOCK:
		return -EUCLEAN;
	default:
		return -EIO;
	}
}

static pthread_once_t error_table_once = PTHREAD_ONCE_INIT;

static void error_table_init(void)
{
	initialize_ext2_error_table();
}

void ext_error_table_load(void)
{
	pthread_once(&error_table_once, error_table_init);
}

int ext_fail(PfExt *e, errcode_t code, const char *fmt, ...)
{
	char what[512];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);

	r = pf_ext_errno(code);
	if (e->io_err && code > 0 && code < 256) {
		r = pf_error_set(r, "%s: %s: %s", e->type, what, e->io_detail);
		e->io_err = 0;
		return r;
	}
	return pf_error_set(r, "%s: %s: %s", e->type, what, error_message(code));
}
