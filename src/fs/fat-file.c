/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT driver's operations on files and directories: read a file, and the ones that
 * change the volume (write, mkdir, remove). Each plans before it writes (see fat.c).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fat-volume.h"
#include "util/error.h"
#include "util/strutil.h"

static int64_t fat_attr_mtime(const PfAttr *attr)
{
	int64_t t = 0;

	if (attr)
		return attr->mtime;
	if (pf_timestamp(&t) < 0)
		t = 0;
	return t;
}

int fat_read_file(void *priv, const char *path, size_t max_bytes, uint8_t **ret_data,
		  size_t *ret_size)
{
	PfFat *f = priv;
	_cleanup_(freep) uint32_t *chain = NULL;
	_cleanup_(freep) uint8_t *data = NULL;
	size_t n = 0, need;
	uint32_t size, cl;
	FatPath fp;
	int r;

	if (max_bytes == 0)
		max_bytes = PF_FS_READ_MAX_BYTES;
	r = fat_resolve(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root || (fp.found && (fp.entry.sde[11] & ATTR_DIR)))
		r = pf_error_set(-EISDIR, "'%s' is a directory", path);
	else if (!fp.found)
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
	if (r < 0)
		goto out;

	size = get32(fp.entry.sde + 28);
	cl = fat_sde_cluster(f, fp.entry.sde);
	if (size > max_bytes) {
		r = pf_error_set(-EFBIG, "'%s' is %u bytes, more than the %zu read at most", path,
				 size, max_bytes);
		goto out;
	}
	data = malloc(size ? size : 1);
	if (!data) {
		r = oom();
		goto out;
	}
	need = DIV_ROUND_UP((size_t)size, f->g.cluster_bytes);
	if (need > 0) {
		if (cl == 0) {
			r = CORRUPT("'%s' has %u bytes but no cluster", path, size);
			goto out;
		}
		r = fat_walk(f, cl, path, SIZE_MAX, &chain, &n);
		if (r < 0)
			goto out;
		if (n < need) {
			r = CORRUPT(
				"cluster chain of '%s' is shorter than its size: %zu clusters of "
				"%u bytes for %u bytes",
				path, n, f->g.cluster_bytes, size);
			goto out;
		}
		r = fat_clusters_io(f, chain, need, data, size, false);
		if (r < 0)
			goto out;
	}
	*ret_data = TAKE_PTR(data);
	*ret_size = size;
out:
	fat_path_done(&fp);
	return r;
}

/* Writes size bytes of data over the clusters cl[0..n), zeroing the rest of the last one so
 * no old bytes linger behind the file's end. */
static int write_data(PfFat *f, const uint32_t *cl, size_t n, const void *data, size_t size)
{
	size_t slack = n * f->g.cluster_bytes - size;
	_cleanup_(freep) uint8_t *zero = NULL;
	int r;

	r = fat_clusters_io(f, cl, n, (uint8_t *)(uintptr_t)data, size, true);
	if (r < 0 || slack == 0)
		return r;
	zero = calloc(1, slack);
	if (!zero)
		return oom();
	return pf_volume_write(&f->vol, cluster_offset(f, cl[n - 1]) + f->g.cluster_bytes - slack,
			       zero, slack);
}

/* What a write plans before it changes anything. */
typedef struct FatWrite {
	FatPath fp;
	uint32_t *old; /* the chain of the file replaced, if any */
	size_t n_old;
	FatNewName *nn; /* a new name: how it is stored, its slot, the directory's growth */
	size_t slot;
	uint32_t grow;
	uint32_t *chain; /* the clusters for the data */
	size_t need;
} FatWrite;

static void fat_write_done(FatWrite *w)
{
	free(w->old);
	free(w->nn);
	free(w->chain);
	fat_path_done(&w->fp);
}

/* An existing file: its chain, to be freed. A new one: its name and where it goes. */
static int write_plan_entry(PfFat *f, const char *path, FatWrite *w)
{
	int r;

	if (w->fp.found) {
		uint32_t cl = fat_sde_cluster(f, w->fp.entry.sde);

		if (w->fp.entry.sde[11] & ATTR_DIR)
			return pf_error_set(-EISDIR, "'%s' is a directory", path);
		if (cl != 0)
			return fat_walk(f, cl, path, SIZE_MAX, &w->old, &w->n_old);
		return 0;
	}
	w->nn = malloc(sizeof(*w->nn));
	if (!w->nn)
		return oom();
	r = fat_new_name_prepare(&w->fp.parent, w->fp.name, w->nn);
	if (r < 0)
		return r;
	return fat_dir_plan(f, &w->fp.parent, path, w->nn->n_lfn + 1, &w->slot, &w->grow);
}

/* Counts the clusters, fails with -ENOSPC when they are not free, reserves memory and
 * journal room: after this only I/O can fail. */
static int write_plan_room(PfFat *f, const char *path, size_t size, FatWrite *w)
{
	int r;

	w->need = DIV_ROUND_UP(size, f->g.cluster_bytes);
	if ((uint64_t)w->need + w->grow > (uint64_t)f->free_count + w->n_old)
		return pf_error_set(-ENOSPC,
				    "FAT: no room for '%s': it needs %zu clusters of %u bytes, "
				    "%" PRIu64 " are free",
				    path, w->need + w->grow, f->g.cluster_bytes,
				    (uint64_t)f->free_count + w->n_old);
	w->chain = malloc(MAX(w->need, 1u) * sizeof(uint32_t));
	if (!w->chain)
		return oom();
	r = fat_dir_reserve(f, &w->fp.parent, w->grow);
	if (r < 0)
		return r;
	return fat_tx_begin(f, w->n_old + w->need + w->grow + 1);
}

/* Frees the old chain, takes the new one and the directory's growth, writes the data. */
static int write_apply(PfFat *f, FatWrite *w, const void *data, size_t size)
{
	int r;

	fat_free_chain(f, w->old, w->n_old);
	r = fat_alloc(f, (uint32_t)w->need, w->chain);
	if (r >= 0)
		r = fat_dir_grow(f, &w->fp.parent, w->grow);
	if (r >= 0)
		r = write_data(f, w->chain, w->need, data, size);
	return r;
}

/* Points the entry (changed in place, or new) at the data, in memory. */
static void write_store_entry(PfFat *f, FatWrite *w, const PfAttr *attr, size_t size, int64_t mtime)
{
	uint8_t fattr = attr && !(attr->mode & 0222) ? ATTR_READ_ONLY : ATTR_ARCHIVE;
	uint32_t first = w->need ? w->chain[0] : 0;

	if (w->fp.found) {
		uint8_t *p = w->fp.parent.buf + w->fp.entry.slot * FAT_SLOT_BYTES;

		/* Hidden and system stay as they were; the name stays as it is stored. */
		p[11] = (uint8_t)(fattr | (p[11] & (ATTR_HIDDEN | ATTR_SYSTEM)));
		fat_sde_set_times(p, mtime);
		fat_sde_set_cluster(f, p, first);
		put32(p + 28, (uint32_t)size);
		fat_dir_touch(&w->fp.parent, w->fp.entry.slot, w->fp.entry.slot + 1);
	} else
		fat_dir_put_entry(f, &w->fp.parent, w->slot, w->nn, fattr, first, (uint32_t)size,
				  mtime);
}

int fat_write_file(void *priv, const char *path, const void *data, size_t size, const PfAttr *attr)
{
	PfFat *f = priv;
	_cleanup_(fat_write_done) FatWrite w = { 0 };
	int64_t mtime = fat_attr_mtime(attr);
	int r;

	r = fat_check_writable(f);
	if (r < 0)
		return r;
	if (size > UINT32_MAX)
		return pf_error_set(-EFBIG, "FAT: '%s' has %zu bytes; FAT files end at 4 GiB - 1",
				    path, size);
	r = fat_resolve(f, path, &w.fp);
	if (r < 0)
		return r;
	if (w.fp.is_root)
		return pf_error_set(-EISDIR, "'%s' is a directory", path);
	r = write_plan_entry(f, path, &w);
	if (r < 0)
		return r;
	r = write_plan_room(f, path, size, &w);
	if (r < 0)
		return r;

	/* From here on only I/O can fail, and the FAT cache is rolled back if it does. */
	r = write_apply(f, &w, data, size);
	if (r < 0) {
		fat_tx_abort(f);
		return r;
	}
	write_store_entry(f, &w, attr, size, mtime);
	return fat_dir_commit(f, &w.fp.parent);
}

/* Checks the volume may be written, then looks path up. */
static int resolve_for_change(PfFat *f, const char *path, FatPath *ret)
{
	int r;

	r = fat_check_writable(f);
	if (r < 0)
		return r;
	return fat_resolve(f, path, ret);
}

int fat_mkdir(void *priv, const char *path, const PfAttr *attr)
{
	PfFat *f = priv;
	_cleanup_(freep) FatNewName *nn = NULL;
	_cleanup_(freep) uint8_t *cbuf = NULL;
	uint8_t dot[11], dotdot[11];
	int64_t mtime = fat_attr_mtime(attr);
	size_t slot;
	uint32_t grow, cl;
	FatPath fp;
	int r;

	r = resolve_for_change(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root || fp.found) {
		r = pf_error_set(-EEXIST, "'%s' exists", path);
		goto out;
	}
	nn = malloc(sizeof(*nn));
	cbuf = calloc(1, f->g.cluster_bytes);
	if (!nn || !cbuf) {
		r = oom();
		goto out;
	}
	r = fat_new_name_prepare(&fp.parent, fp.name, nn);
	if (r < 0)
		goto out;
	r = fat_dir_plan(f, &fp.parent, path, nn->n_lfn + 1, &slot, &grow);
	if (r < 0)
		goto out;
	if ((uint64_t)grow + 1 > f->free_count) {
		r = pf_error_set(-ENOSPC,
				 "FAT: no room for directory '%s': it needs %u clusters, %u are "
				 "free",
				 path, grow + 1, f->free_count);
		goto out;
	}
	r = fat_dir_reserve(f, &fp.parent, grow);
	if (r < 0)
		goto out;
	r = fat_tx_begin(f, grow + 2);
	if (r < 0)
		goto out;

	r = fat_alloc(f, 1, &cl);
	if (r >= 0)
		r = fat_dir_grow(f, &fp.parent, grow);
	if (r < 0)
		goto abort;
	/* ".." of a directory in the root points at cluster 0, also on FAT32. */
	memset(dot, ' ', sizeof(dot));
	memset(dotdot, ' ', sizeof(dotdot));
	dot[0] = dotdot[0] = dotdot[1] = '.';
	fat_sde_fill(f, cbuf, dot, ATTR_DIR, 0, cl, 0, mtime);
	fat_sde_fill(f, cbuf + FAT_SLOT_BYTES, dotdot, ATTR_DIR, 0,
		     fp.parent.is_root ? 0 : fp.parent.first, 0, mtime);
	r = pf_volume_write(&f->vol, cluster_offset(f, cl), cbuf, f->g.cluster_bytes);
	if (r < 0)
		goto abort;
	fat_dir_put_entry(f, &fp.parent, slot, nn, ATTR_DIR, cl, 0, mtime);
	r = fat_dir_commit(f, &fp.parent);
	goto out;
abort:
	fat_tx_abort(f);
out:
	fat_path_done(&fp);
	return r;
}

int fat_remove(void *priv, const char *path)
{
	PfFat *f = priv;
	_cleanup_(freep) uint32_t *chain = NULL;
	_cleanup_(freep) FatEntry *e = NULL;
	size_t n = 0;
	uint32_t cl;
	FatPath fp;
	int r;

	r = resolve_for_change(f, path, &fp);
	if (r < 0)
		return r;
	if (fp.is_root) {
		r = pf_error_set(-EBUSY, "cannot remove the root directory");
		goto out;
	}
	if (!fp.found) {
		r = pf_error_set(-ENOENT, "'%s' does not exist", path);
		goto out;
	}
	cl = fat_sde_cluster(f, fp.entry.sde);
	if (fp.entry.sde[11] & ATTR_DIR) {
		FatDir sub;
		size_t pos = 0;
		bool empty;

		if (cl == 0) {
			r = CORRUPT("directory '%s' has no cluster", path);
			goto out;
		}
		e = malloc(sizeof(*e));
		if (!e) {
			r = oom();
			goto out;
		}
		r = fat_dir_load(f, cl, path, &sub);
		if (r < 0)
			goto out;
		empty = !fat_dir_next(&sub, &pos, e);
		chain = TAKE_PTR(sub.clusters);
		n = sub.n_clusters;
		fat_dir_done(&sub);
		if (!empty) {
			r = pf_error_set(-ENOTEMPTY, "directory '%s' is not empty", path);
			goto out;
		}
	} else if (cl != 0) {
		r = fat_walk(f, cl, path, SIZE_MAX, &chain, &n);
		if (r < 0)
			goto out;
	}

	r = fat_tx_begin(f, n);
	if (r < 0)
		goto out;
	for (size_t s = fp.entry.first_slot; s <= fp.entry.slot; s++)
		fp.parent.buf[s * FAT_SLOT_BYTES] = SLOT_DELETED;
	fat_dir_touch(&fp.parent, fp.entry.first_slot, fp.entry.slot + 1);
	fat_free_chain(f, chain, n);
	r = fat_dir_commit(f, &fp.parent);
out:
	fat_path_done(&fp);
	return r;
}
