/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What the files of the ext2/3/4 driver share, and nothing outside src/fs/ext*.c includes:
 *
 *   ext.c        the operations behind fs.h (inodes, paths, create, write, remove, list)
 *   ext-error.c  libext2fs error codes turned into -errno with a message, once
 *   ext-io.c     the io_manager whose channel reads and writes the volume (the overlay)
 */

#include <stdbool.h>
#include <stddef.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "fs/ext.h"
#include "fs/fs.h"
#include "util/macros.h"

/* Data is handed to ext2fs_file_write() in pieces of this size (its length is 32 bits). */
#define EXT_WRITE_CHUNK_BYTES (1024u * 1024u)
/* zeroout() compares and writes in pieces of this size. */
#define EXT_ZERO_CHUNK_BYTES (64u * 1024u)

typedef struct PfExt {
	PfVolume vol;
	ext2_filsys fs;
	const char *type;    /* "ext2", "ext3" or "ext4", for messages */
	size_t inode_bytes;  /* buffer size for a whole on-disk inode */
	bool bitmaps_loaded; /* allocation bitmaps read (needed before any allocation) */
	bool modified;	     /* something was written since the last sync */
	/* Why e2fsck must see the filesystem before it is changed ("" if it need not): it
	 * opens for reading, and every write fails with -EUCLEAN naming this. */
	const char *unclean;

	/* The io channel's state. */
	struct struct_io_stats stats;
	int io_err;	     /* -errno of the last failed volume access, 0 if none */
	char io_detail[256]; /* its detail, kept for the message of the operation */
	char name[64];
} PfExt;

/* ext-error.c: loads libext2fs's error messages (once per process). */
void ext_error_table_load(void);

/*
 * ext-error.c: records "<type>: <what>: <libext2fs message>" and returns the code as
 * -errno. When the failure came from the volume (the channel recorded it), its detail is
 * used instead of libext2fs's bare "Input/output error".
 */
int ext_fail(PfExt *e, errcode_t code, const char *fmt, ...) _printf_(3, 4);

/* ext-io.c: opens the filesystem of e->vol through the overlay io_manager into e->fs.
 * Returns the libext2fs code. */
errcode_t ext_io_open_fs(PfExt *e);
