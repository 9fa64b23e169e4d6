/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The ext driver's io_manager: a channel that reads and writes the partition through
 * pf_volume_read()/pf_volume_write(), so every change libext2fs makes lands in the
 * overlay. libext2fs opens a channel by name only, so the volume is handed to open()
 * through a thread-local pointer that ext_io_open_fs() sets just around ext2fs_open2() and
 * that open() consumes; the channel name itself is only a label ("piflash-volume@START").
 * A failed volume access is kept in the PfExt (io_err, io_detail) for the operation's
 * message.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2_err.h>
#include <ext2fs/ext2fs.h>

#include "fs/ext-internal.h"
#include "util/error.h"

static _Thread_local PfExt *io_handoff;

static struct struct_io_manager ext_io_manager;

static PfExt *io_ext(io_channel ch)
{
	if (!ch || ch->magic != EXT2_ET_MAGIC_IO_CHANNEL || ch->manager != &ext_io_manager)
		return NULL;
	return ch->private_data;
}

static errcode_t io_open(const char *name, int flags, io_channel *ret)
{
	PfExt *e = io_handoff;
	io_channel ch;

	/* Only pf_ext_ops.open may open a channel, and only once per handoff. */
	if (!e || !name)
		return EXT2_ET_BAD_DEVICE_NAME;
	io_handoff = NULL;

	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return EXT2_ET_NO_MEMORY;
	ch->name = strdup(name);
	if (!ch->name) {
		free(ch);
		return EXT2_ET_NO_MEMORY;
	}
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = &ext_io_manager;
	ch->block_size = 1024;
	ch->refcount = 1;
	ch->flags = 0;
	ch->private_data = e;

	e->stats.num_fields = 2;
	e->stats.bytes_read = 0;
	e->stats.bytes_written = 0;
	(void)flags; /* writes are always allowed: they only reach the overlay */
	*ret = ch;
	return 0;
}

static errcode_t io_close(io_channel ch)
{
	if (!io_ext(ch))
		return EXT2_ET_MAGIC_IO_CHANNEL;
	if (--ch->refcount > 0)
		return 0;
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t io_set_blksize(io_channel ch, int blksize)
{
	if (!io_ext(ch))
		return EXT2_ET_MAGIC_IO_CHANNEL;
	if (blksize <= 0)
		return EXT2_ET_INVALID_ARGUMENT;
	ch->block_size = blksize;
	return 0;
}

/* Converts (block, count) to a byte range: a negative count is a length in bytes. */
static errcode_t io_range(io_channel ch, unsigned long long block, int count, uint64_t *ret_offset,
			  size_t *ret_len)
{
	uint64_t off, len;

	if (count < 0)
		len = (uint64_t) - (int64_t)count;
	else if (MUL_OVERFLOW((uint64_t)count, (uint64_t)ch->block_size, &len))
		return EXT2_ET_INVALID_ARGUMENT;
	if (MUL_OVERFLOW((uint64_t)block, (uint64_t)ch->block_size, &off) || len > SIZE_MAX)
		return EXT2_ET_INVALID_ARGUMENT;
	*ret_offset = off;
	*ret_len = (size_t)len;
	return 0;
}

/* Remembers a volume failure for the message and returns it as an errcode (an errno). */
static errcode_t io_failed(PfExt *e, int r)
{
	e->io_err = r;
	snprintf(e->io_detail, sizeof(e->io_detail), "%s", pf_error_message(r));
	return (errcode_t)-r;
}

static errcode_t io_read_bytes(io_channel ch, uint64_t offset, void *data, size_t len,
			       unsigned long block, int count)
{
	PfExt *e = io_ext(ch);
	errcode_t code;
	int r;

	if (!e)
		return EXT2_ET_MAGIC_IO_CHANNEL;
	r = pf_volume_read(&e->vol, offset, data, len);
	if (r < 0) {
		code = io_failed(e, r);
		memset(data, 0, len);
		if (ch->read_error)
			return ch->read_error(ch, block, count, data, len, 0, code);
		return code;
	}
	e->stats.bytes_read += len;
	return 0;
}

static errcode_t io_write_bytes(io_channel ch, uint64_t offset, const void *data, size_t len,
				unsigned long block, int count)
{
	PfExt *e = io_ext(ch);
	errcode_t code;
	int r;

	if (!e)
		return EXT2_ET_MAGIC_IO_CHANNEL;
	r = pf_volume_write(&e->vol, offset, data, len);
	if (r < 0) {
		code = io_failed(e, r);
		if (ch->write_error)
			return ch->write_error(ch, block, count, data, len, 0, code);
		return code;
	}
	e->stats.bytes_written += len;
	return 0;
}

static errcode_t io_read_blk64(io_channel ch, unsigned long long block, int count, void *data)
{
	uint64_t off;
	size_t len;
	errcode_t code;

	if (!io_ext(ch))
		return EXT2_ET_MAGIC_IO_CHANNEL;
	code = io_range(ch, block, count, &off, &len);
	if (code)
		return code;
	return len ? io_read_bytes(ch, off, data, len, (unsigned long)block, count) : 0;
}

static errcode_t io_read_blk(io_channel ch, unsigned long block, int count, void *data)
{
	return io_read_blk64(ch, block, count, data);
}

static errcode_t io_write_blk64(io_channel ch, unsigned long long block, int count,
				const void *data)
{
	uint64_t off;
	size_t len;
	errcode_t code;

	if (!io_ext(ch))
		return EXT2_ET_MAGIC_IO_CHANNEL;
	code = io_range(ch, block, count, &off, &len);
	if (code)
		return code;
	return len ? io_write_bytes(ch, off, data, len, (unsigned long)block, count) : 0;
}

static errcode_t io_write_blk(io_channel ch, unsigned long block, int count, const void *data)
{
	return io_write_blk64(ch, block, count, data);
}

/* Writes count bytes at a byte offset (libext2fs uses it for the superblock). */
static errcode_t io_write_byte(io_channel ch, unsigned long offset, int count, const void *data)
{
	if (!io_ext(ch))
		return EXT2_ET_MAGIC_IO_CHANNEL;
	if (count < 0)
		return EXT2_ET_INVALID_ARGUMENT;
	return count ? io_write_bytes(ch, offset, data, (size_t)count, 0, -count) : 0;
}

/* Everything is in the overlay already: nothing to flush. */
static errcode_t io_flush(io_channel ch)
{
	return io_ext(ch) ? 0 : EXT2_ET_MAGIC_IO_CHANNEL;
}

/* The channel has no options ("name?option=value" is never used). */
static errcode_t io_set_option(io_channel ch, const char *option, const char *arg)
{
	(void)option;
	(void)arg;
	return io_ext(ch) ? EXT2_ET_INVALID_ARGUMENT : EXT2_ET_MAGIC_IO_CHANNEL;
}

static errcode_t io_get_stats(io_channel ch, io_stats *ret)
{
	PfExt *e = io_ext(ch);

	if (!e)
		return EXT2_ET_MAGIC_IO_CHANNEL;
	if (ret)
		*ret = &e->stats;
	return 0;
}

static errcode_t io_discard(io_channel ch, unsigned long long block, unsigned long long count)
{
	(void)block;
	(void)count;
	return io_ext(ch) ? EXT2_ET_UNIMPLEMENTED : EXT2_ET_MAGIC_IO_CHANNEL;
}

/*
 * Zeroes count blocks. Pieces that already read as zeros are not written, so zeroing
 * untouched space of a sparse image does not fill the overlay.
 */
static errcode_t io_zeroout(io_channel ch, unsigned long long block, unsigned long long count)
{
	static const uint8_t zeros[EXT_ZERO_CHUNK_BYTES];
	uint8_t buf[EXT_ZERO_CHUNK_BYTES];
	PfExt *e = io_ext(ch);
	uint64_t off, len;

	if (!e)
		return EXT2_ET_MAGIC_IO_CHANNEL;
	if (MUL_OVERFLOW((uint64_t)block, (uint64_t)ch->block_size, &off) ||
	    MUL_OVERFLOW((uint64_t)count, (uint64_t)ch->block_size, &len))
		return EXT2_ET_INVALID_ARGUMENT;

	while (len > 0) {
		size_t n = (size_t)MIN(len, (uint64_t)sizeof(buf));
		int r;

		r = pf_volume_read(&e->vol, off, buf, n);
		if (r < 0)
			return io_failed(e, r);
		if (memcmp(buf, zeros, n) != 0) {
			r = pf_volume_write(&e->vol, off, zeros, n);
			if (r < 0)
				return io_failed(e, r);
			e->stats.bytes_written += n;
		}
		off += n;
		len -= n;
	}
	return 0;
}

static struct struct_io_manager ext_io_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "piflash overlay I/O manager",
	.open = io_open,
	.close = io_close,
	.set_blksize = io_set_blksize,
	.read_blk = io_read_blk,
	.write_blk = io_write_blk,
	.flush = io_flush,
	.write_byte = io_write_byte,
	.set_option = io_set_option,
	.get_stats = io_get_stats,
	.read_blk64 = io_read_blk64,
	.write_blk64 = io_write_blk64,
	.discard = io_discard,
	.zeroout = io_zeroout,
};

errcode_t ext_io_open_fs(PfExt *e)
{
	errcode_t code;

	io_handoff = e;
	code = ext2fs_open2(e->name, NULL, EXT2_FLAG_RW | EXT2_FLAG_64BITS, 0, 0, &ext_io_manager,
			    &e->fs);
	io_handoff = NULL;
	return code;
}
