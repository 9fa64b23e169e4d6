/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Directories of the FAT driver: read whole into memory, walked entry by entry with their
 * long names, planned and grown for new entries, written back slot range by slot range,
 * and path lookup on top.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fat-volume.h"
#include "util/error.h"

/* Where the long entry keeps its 13 UTF-16 units. */
static const uint8_t lfn_unit_off[FAT_LFN_UNITS] = {
	1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30
};

void fat_dir_done(FatDir *d)
{
	free(d->clusters);
	free(d->buf);
	*d = (FatDir){ 0 };
}

uint32_t fat_sde_cluster(const PfFat *f, const uint8_t *sde)
{
	return get16(sde + 26) | (f->g.fat_bits == 32 ? (uint32_t)get16(sde + 20) << 16 : 0);
}

/* Reads the directory starting at first (0: the root) whole. */
int fat_dir_load(PfFat *f, uint32_t first, const char *path, FatDir *ret)
{
	FatDir d = { 0 };
	int r;

	if (first == 0) {
		d.is_root = true;
		if (f->g.fat_bits == 32)
			first = f->g.root_cluster;
	}
	d.first = first;
	if (first == 0) {
		d.n_slots = f->g.root_entries;
		d.buf = malloc(d.n_slots * FAT_SLOT_BYTES);
		if (!d.buf)
			return oom();
		r = pf_volume_read(&f->vol, f->g.root_offset_bytes, d.buf,
				   d.n_slots * FAT_SLOT_BYTES);
	} else {
		size_t max = MAX(FAT_MAX_DIR_SLOTS * FAT_SLOT_BYTES / f->g.cluster_bytes, 1u);

		r = fat_walk(f, first, path, max, &d.clusters, &d.n_clusters);
		if (r < 0)
			return r;
		d.n_slots = d.n_clusters * f->g.cluster_bytes / FAT_SLOT_BYTES;
		d.buf = malloc(d.n_clusters * f->g.cluster_bytes);
		if (!d.buf) {
			fat_dir_done(&d);
			return oom();
		}
		r = fat_clusters_io(f, d.clusters, d.n_clusters, d.buf,
				    d.n_clusters * f->g.cluster_bytes, false);
	}
	if (r < 0) {
		fat_dir_done(&d);
		return r;
	}
	*ret = d;
	return 0;
}

void fat_dir_touch(FatDir *d, size_t lo, size_t hi)
{
	if (d->dirty_lo >= d->dirty_hi) {
		d->dirty_lo = lo;
		d->dirty_hi = hi;
	} else {
		d->dirty_lo = MIN(d->dirty_lo, lo);
		d->dirty_hi = MAX(d->dirty_hi, hi);
	}
}

/* Writes the changed slots of d. */
int fat_dir_flush(PfFat *f, FatDir *d)
{
	const size_t cb = f->g.cluster_bytes;
	size_t off = d->dirty_lo * FAT_SLOT_BYTES, end = d->dirty_hi * FAT_SLOT_BYTES;
	int r;

	if (d->dirty_lo >= d->dirty_hi)
		return 0;
	if (!d->clusters) {
		r = pf_volume_write(&f->vol, f->g.root_offset_bytes + off, d->buf + off, end - off);
		if (r < 0)
			return r;
	} else
		while (off < end) {
			size_t in = off % cb, len = MIN(cb - in, end - off);

			r = pf_volume_write(&f->vol, cluster_offset(f, d->clusters[off / cb]) + in,
					    d->buf + off, len);
			if (r < 0)
				return r;
			off += len;
		}
	d->dirty_lo = d->dirty_hi = 0;
	return 0;
}

/* Ends an operation: writes the changed slots of d, then the FAT. When either fails, the
 * FAT cache is rolled back. */
int fat_dir_commit(PfFat *f, FatDir *d)
{
	int r = fat_dir_flush(f, d);

	if (r < 0) {
		fat_tx_abort(f);
		return r;
	}
	return fat_tx_commit(f);
}

/*
 * Returns the next entry at or after *pos, skipping free slots, the volume label and the
 * "." and ".." entries; a long name is used only when its entries are complete, in order
 * and carry the checksum of the short entry that follows (else the 8.3 name is, as Linux
 * and Windows do). Returns false at the end of the directory.
 */
bool fat_dir_next(const FatDir *d, size_t *pos, FatEntry *e)
{
	uint16_t units[FAT_LFN_MAX_ENTRIES * FAT_LFN_UNITS];
	unsigned lfn_n = 0, lfn_next = 0;
	bool lfn_ok = false;
	uint8_t lfn_sum = 0;
	size_t lfn_start = 0;

	for (; *pos < d->n_slots; (*pos)++) {
		const uint8_t *p = d->buf + *pos * FAT_SLOT_BYTES;
		uint8_t attr = p[11];

		if (p[0] == SLOT_FREE_END)
			return false;
		if (p[0] == SLOT_DELETED) {
			lfn_ok = false;
			continue;
		}
		if ((attr & ATTR_LFN_MASK) == ATTR_LFN) {
			unsigned ord = p[0] & 0x3F;

			if (p[0] & LFN_LAST) {
				lfn_ok = ord >= 1 && ord <= FAT_LFN_MAX_ENTRIES;
				lfn_n = ord;
				lfn_sum = p[13];
				lfn_start = *pos;
			} else if (!lfn_ok || ord != lfn_next || ord == 0 || p[13] != lfn_sum)
				lfn_ok = false;
			if (lfn_ok) {
				for (unsigned j = 0; j < FAT_LFN_UNITS; j++)
					units[(ord - 1) * FAT_LFN_UNITS + j] =
						get16(p + lfn_unit_off[j]);
				lfn_next = ord - 1;
			}
			continue;
		}
		if ((attr & ATTR_VOLUME) || p[0] == '.') {
			lfn_ok = false;
			continue;
		}

		memcpy(e->sde, p, FAT_SLOT_BYTES);
		e->slot = *pos;
		e->first_slot = *pos;
		e->has_lfn = false;
		fat_short_display(p, e->short_name);
		if (lfn_ok && lfn_next == 0 && pf_fat_lfn_checksum(p) == lfn_sum) {
			size_t len = 0;

			while (len < lfn_n * FAT_LFN_UNITS && units[len] != 0)
				len++;
			if (len > 0 && len <= FAT_NAME_UNITS) {
				fat_utf16_to_utf8(units, len, e->name);
				e->has_lfn = true;
				e->first_slot = lfn_start;
			}
		}
		if (!e->has_lfn)
			memcpy(e->name, e->short_name, sizeof(e->short_name));
		(*pos)++;
		return true;
	}
	return false;
}

static bool dir_find(const FatDir *d, const char *name, FatEntry *ret)
{
	size_t pos = 0;

	while (fat_dir_next(d, &pos, ret))
		if (fat_name_eq(ret->name, name) ||
		    (ret->has_lfn && fat_name_eq(ret->short_name, name)))
			return true;
	return false;
}

/* The 8.3 names a new alias must differ from: every short entry, and the 8.3 form of
 * every long name (so looking either up stays unambiguous). */
static int dir_taken(const FatDir *d, uint8_t (**ret)[11], size_t *ret_n)
{
	uint8_t(*t)[11] = NULL;
	size_t n = 0, alloc = 0, pos = 0;
	FatEntry *e;

	e = malloc(sizeof(*e));
	if (!e)
		return oom();
	/* Each slot yields at most one name, the long names at most one more each. */
	alloc = 2 * d->n_slots + 1;
	t = malloc(alloc * 11);
	if (!t) {
		free(e);
		return oom();
	}
	for (size_t i = 0; i < d->n_slots; i++) {
		const uint8_t *p = d->buf + i * FAT_SLOT_BYTES;

		if (p[0] == SLOT_FREE_END)
			break;
		if (p[0] == SLOT_DELETED || (p[11] & ATTR_LFN_MASK) == ATTR_LFN)
			continue;
		memcpy(t[n++], p, 11);
	}
	while (fat_dir_next(d, &pos, e)) {
		uint8_t ncase;

		if (e->has_lfn && pf_fat_short_name(e->name, t[n], &ncase) == 1)
			n++;
	}
	free(e);
	*ret = t;
	*ret_n = n;
	return 0;
}

/*
 * Finds k consecutive free slots: deleted ones, or any from the end marker on. Returns
 * the first; when there are none, returns where the trailing free run starts (or n_slots)
 * and the number of slots missing in *ret_missing.
 */
static size_t dir_find_slots(const FatDir *d, size_t k, size_t *ret_missing)
{
	size_t run = 0, start = 0;
	bool end = false;

	for (size_t i = 0; i < d->n_slots; i++) {
		const uint8_t *p = d->buf + i * FAT_SLOT_BYTES;

		if (p[0] == SLOT_FREE_END)
			end = true;
		if (end || p[0] == SLOT_DELETED) {
			if (run == 0)
				start = i;
			if (++run == k) {
				*ret_missing = 0;
				return start;
			}
		} else
			run = 0;
	}
	*ret_missing = k - run;
	return run ? start : d->n_slots;
}

/* Plans room for k slots in d: the slot to use and the clusters to add. A full fixed root
 * or a directory at its 65536-slot limit is -ENOSPC. */
int fat_dir_plan(PfFat *f, FatDir *d, const char *path, size_t k, size_t *ret_slot,
		 uint32_t *ret_grow)
{
	size_t missing, slot = dir_find_slots(d, k, &missing);
	size_t per_cluster = f->g.cluster_bytes / FAT_SLOT_BYTES, grow;

	*ret_slot = slot;
	*ret_grow = 0;
	if (missing == 0)
		return 0;
	if (!d->clusters)
		return pf_error_set(-ENOSPC,
				    "FAT: no room for '%s': the root directory is full (%zu "
				    "entries; a long name takes more than one)",
				    path, d->n_slots);
	grow = DIV_ROUND_UP(missing, per_cluster);
	if (d->n_slots + grow * per_cluster > FAT_MAX_DIR_SLOTS)
		return pf_error_set(-ENOSPC,
				    "FAT: no room for '%s': its directory is full (%u entries)",
				    path, FAT_MAX_DIR_SLOTS);
	*ret_grow = (uint32_t)grow;
	return 0;
}

/* Makes room in memory for grow more clusters, before anything is changed. */
int fat_dir_reserve(PfFat *f, FatDir *d, uint32_t grow)
{
	size_t n = d->n_clusters + grow;
	uint32_t *c;
	uint8_t *b;

	if (grow == 0)
		return 0;
	c = reallocarray(d->clusters, n, sizeof(uint32_t));
	if (!c)
		return oom();
	d->clusters = c;
	b = realloc(d->buf, n * f->g.cluster_bytes);
	if (!b)
		return oom();
	d->buf = b;
	return 0;
}

/* Appends grow zeroed clusters (room reserved, free clusters counted) to d's chain. */
int fat_dir_grow(PfFat *f, FatDir *d, uint32_t grow)
{
	size_t old_slots = d->n_slots;
	int r;

	if (grow == 0)
		return 0;
	r = fat_alloc(f, grow, d->clusters + d->n_clusters);
	if (r < 0)
		return r;
	fat_set(f, d->clusters[d->n_clusters - 1], d->clusters[d->n_clusters]);
	d->n_clusters += grow;
	d->n_slots = d->n_clusters * f->g.cluster_bytes / FAT_SLOT_BYTES;
	memset(d->buf + old_slots * FAT_SLOT_BYTES, 0, (d->n_slots - old_slots) * FAT_SLOT_BYTES);
	fat_dir_touch(d, old_slots, d->n_slots);
	return 0;
}

void fat_sde_set_times(uint8_t *p, int64_t mtime)
{
	uint16_t date, time;
	uint8_t tenth;

	pf_fat_time_encode(mtime, &date, &time, &tenth);
	p[13] = tenth;
	put16(p + 14, time);
	put16(p + 16, date);
	put16(p + 18, date);
	put16(p + 22, time);
	put16(p + 24, date);
}

void fat_sde_set_cluster(const PfFat *f, uint8_t *p, uint32_t cluster)
{
	put16(p + 20, f->g.fat_bits == 32 ? (uint16_t)(cluster >> 16) : 0);
	put16(p + 26, (uint16_t)cluster);
}

void fat_sde_fill(const PfFat *f, uint8_t *p, const uint8_t name[11], uint8_t attr, uint8_t ncase,
		  uint32_t cluster, uint32_t size, int64_t mtime)
{
	memset(p, 0, FAT_SLOT_BYTES);
	memcpy(p, name, 11);
	if (p[0] == SLOT_DELETED)
		p[0] = SLOT_KANJI_E5;
	p[11] = attr;
	p[12] = ncase;
	fat_sde_set_times(p, mtime);
	fat_sde_set_cluster(f, p, cluster);
	put32(p + 28, size);
}

/* Writes the long entries and the short entry of a new name at slot. */
void fat_dir_put_entry(const PfFat *f, FatDir *d, size_t slot, const FatNewName *nn, uint8_t attr,
		       uint32_t cluster, uint32_t size, int64_t mtime)
{
	uint8_t sum = pf_fat_lfn_checksum(nn->short_name);
	size_t k = nn->n_lfn + 1, end_slot = d->n_slots;

	/* Where the end marker was: slots from it on may hold leftovers that the marker
	 * hid; the slot after the new entry must keep hiding them. */
	for (size_t i = 0; i < d->n_slots; i++)
		if (d->buf[i * FAT_SLOT_BYTES] == SLOT_FREE_END) {
			end_slot = i;
			break;
		}

	for (size_t i = 0; i < nn->n_lfn; i++) {
		uint8_t *p = d->buf + (slot + i) * FAT_SLOT_BYTES;
		size_t ord = nn->n_lfn - i;

		memset(p, 0, FAT_SLOT_BYTES);
		p[0] = (uint8_t)(ord | (i == 0 ? LFN_LAST : 0));
		p[11] = ATTR_LFN;
		p[13] = sum;
		for (size_t j = 0; j < FAT_LFN_UNITS; j++) {
			size_t u = (ord - 1) * FAT_LFN_UNITS + j;
			uint16_t v = u < nn->n_units ? nn->units[u] : u == nn->n_units ? 0 : 0xFFFF;

			put16(p + lfn_unit_off[j], v);
		}
	}
	fat_sde_fill(f, d->buf + (slot + nn->n_lfn) * FAT_SLOT_BYTES, nn->short_name, attr,
		     nn->ncase, cluster, size, mtime);
	fat_dir_touch(d, slot, slot + k);

	if (slot + k > end_slot && slot + k < d->n_slots &&
	    d->buf[(slot + k) * FAT_SLOT_BYTES] != SLOT_FREE_END) {
		memset(d->buf + (slot + k) * FAT_SLOT_BYTES, 0, FAT_SLOT_BYTES);
		fat_dir_touch(d, slot + k, slot + k + 1);
	}
}

/* Works out how a new name is stored in d. */
int fat_new_name_prepare(const FatDir *d, const char *name, FatNewName *nn)
{
	uint8_t(*taken)[11] = NULL;
	size_t n_taken = 0;
	int r;

	r = fat_name_to_utf16(name, nn->units, &nn->n_units);
	if (r < 0)
		return r;
	if (pf_fat_short_name(name, nn->short_name, &nn->ncase) == 1) {
		nn->n_lfn = 0;
		return 0;
	}
	r = dir_taken(d, &taken, &n_taken);
	if (r < 0)
		return r;
	r = pf_fat_make_alias(name, (const uint8_t(*)[11])taken, n_taken, nn->short_name);
	free(taken);
	if (r < 0)
		return r;
	nn->ncase = 0;
	nn->n_lfn = DIV_ROUND_UP(nn->n_units, FAT_LFN_UNITS);
	return 0;
}

/* ---- paths ---- */

void fat_path_done(FatPath *p)
{
	fat_dir_done(&p->parent);
}

/*
 * Looks up path: loads the directory holding its last component into ret->parent and,
 * when that component exists, its entry into ret->entry. A missing or non-directory
 * intermediate component is -ENOENT or -ENOTDIR.
 */
int fat_resolve(PfFat *f, const char *path, FatPath *ret)
{
	const char *p = path;
	FatDir d = { 0 };
	int r;

	ret->is_root = false;
	ret->found = false;
	r = fat_dir_load(f, 0, "/", &d);
	if (r < 0)
		return r;

	p += strspn(p, "/");
	if (!*p) {
		ret->is_root = true;
		ret->parent = d;
		return 0;
	}
	for (;;) {
		size_t len = strcspn(p, "/");
		char prefix[PF_PATH_MAX + 1];
		bool last;
		uint32_t cl;

		if (len > PF_NAME_MAX) {
			fat_dir_done(&d);
			return pf_error_set(-ENAMETOOLONG, "a name in '%s' is too long", path);
		}
		memcpy(ret->name, p, len);
		ret->name[len] = 0;
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(p + len - path), path);
		p += len;
		p += strspn(p, "/");
		last = !*p;

		ret->found = dir_find(&d, ret->name, &ret->entry);
		if (last) {
			ret->parent = d;
			return 0;
		}
		if (!ret->found) {
			fat_dir_done(&d);
			return pf_error_set(-ENOENT, "'%s' does not exist", prefix);
		}
		if (!(ret->entry.sde[11] & ATTR_DIR)) {
			fat_dir_done(&d);
			return pf_error_set(-ENOTDIR, "'%s' is not a directory", prefix);
		}
		cl = fat_sde_cluster(f, ret->entry.sde);
		fat_dir_done(&d);
		if (cl == 0)
			return CORRUPT("directory '%s' has no cluster", prefix);
		r = fat_dir_load(f, cl, prefix, &d);
		if (r < 0)
			return r;
	}
}

void fat_entry_stat(const FatEntry *e, PfStat *st)
{
	bool dir = e->sde[11] & ATTR_DIR;
	mode_t perm = e->sde[11] & ATTR_READ_ONLY ? 0555 : 0755;

	*st = (PfStat){
		.mode = (dir ? S_IFDIR : S_IFREG) | perm,
		.size_bytes = dir ? 0 : get32(e->sde + 28),
		.mtime = pf_fat_time_decode(get16(e->sde + 24), get16(e->sde + 22)),
		.nlink = dir ? 2 : 1,
	};
}
