/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The FAT of the FAT driver, cached whole: reading and changing entries (with the free
 * count and the in-degrees kept right), the in-memory journal that rolls a failed
 * operation back, writing changed sectors to every copy and FSInfo, allocation, chain
 * walks that check every link, and cluster I/O.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fat-volume.h"
#include "util/error.h"

uint32_t fat_get(const PfFat *f, uint32_t c)
{
	switch (f->g.fat_bits) {
	case 12: {
		size_t o = (size_t)c + c / 2;
		uint16_t v = get16(f->fat + o);

		return c & 1 ? v >> 4 : v & 0x0FFFu;
	}
	case 16:
		return get16(f->fat + 2 * (size_t)c);
	default:
		return get32(f->fat + 4 * (size_t)c) & 0x0FFFFFFFu;
	}
}

static uint32_t fat_eoc(const PfFat *f)
{
	return f->g.fat_bits == 12 ? 0xFFFu : f->g.fat_bits == 16 ? 0xFFFFu : 0x0FFFFFFFu;
}

bool fat_is_eoc(const PfFat *f, uint32_t v)
{
	return v >= (f->g.fat_bits == 12 ? 0xFF8u : f->g.fat_bits == 16 ? 0xFFF8u : 0x0FFFFFF8u);
}

bool fat_is_bad(const PfFat *f, uint32_t v)
{
	return v == (f->g.fat_bits == 12 ? 0xFF7u : f->g.fat_bits == 16 ? 0xFFF7u : 0x0FFFFFF7u);
}

/* Stores an entry in the cache and marks the FAT sectors it touches. */
static void fat_put(PfFat *f, uint32_t c, uint32_t v)
{
	size_t o, len;

	switch (f->g.fat_bits) {
	case 12: {
		uint16_t w;

		o = (size_t)c + c / 2;
		w = get16(f->fat + o);
		w = c & 1 ? (uint16_t)((w & 0x000F) | (v << 4))
			  : (uint16_t)((w & 0xF000) | (v & 0x0FFF));
		put16(f->fat + o, w);
		len = 2;
		break;
	}
	case 16:
		o = 2 * (size_t)c;
		put16(f->fat + o, (uint16_t)v);
		len = 2;
		break;
	default:
		/* The top 4 bits are reserved and kept. */
		o = 4 * (size_t)c;
		put32(f->fat + o, (get32(f->fat + o) & 0xF0000000u) | (v & 0x0FFFFFFFu));
		len = 4;
		break;
	}
	for (size_t s = o / f->g.bytes_per_sector; s <= (o + len - 1) / f->g.bytes_per_sector; s++)
		f->dirty_sectors[s / 8] |= (uint8_t)(1u << (s % 8));
}

/* Changes an entry, keeping the free count and the in-degrees right. */
static void fat_set_raw(PfFat *f, uint32_t c, uint32_t v)
{
	uint32_t old = fat_get(f, c);

	if (cluster_ok(f, old) && f->indeg[old] > 0 && f->indeg[old] < 255)
		f->indeg[old]--;
	if (cluster_ok(f, v) && f->indeg[v] < 255)
		f->indeg[v]++;
	if (old == 0 && v != 0)
		f->free_count--;
	else if (old != 0 && v == 0)
		f->free_count++;
	fat_put(f, c, v);
}

/* Changes an entry within an operation; room in the journal was reserved by fat_tx_begin(). */
void fat_set(PfFat *f, uint32_t c, uint32_t v)
{
	if (f->journaling && f->n_undo < f->undo_alloc)
		f->undo[f->n_undo++] = (FatUndo){ c, fat_get(f, c) };
	fat_set_raw(f, c, v);
}

/* Starts an operation that changes at most max_changes FAT entries. */
int fat_tx_begin(PfFat *f, size_t max_changes)
{
	if (max_changes > f->undo_alloc) {
		FatUndo *u = reallocarray(f->undo, max_changes, sizeof(FatUndo));

		if (!u)
			return oom();
		f->undo = u;
		f->undo_alloc = max_changes;
	}
	f->n_undo = 0;
	f->journaling = true;
	return 0;
}

/* Undoes the FAT changes of the running operation in the cache. The sectors stay marked:
 * writing them again writes the old values back. */
void fat_tx_abort(PfFat *f)
{
	while (f->n_undo > 0) {
		f->n_undo--;
		fat_set_raw(f, f->undo[f->n_undo].cluster, f->undo[f->n_undo].old);
	}
	f->journaling = false;
}

/* Writes the changed FAT sectors to every FAT copy, then the FSInfo counters. */
int fat_flush(PfFat *f)
{
	const uint32_t bps = f->g.bytes_per_sector;
	const size_t n_sectors = f->g.fat_sectors;
	int r;

	for (size_t s = 0; s < n_sectors;) {
		size_t e;

		if (!(f->dirty_sectors[s / 8] & (1u << (s % 8)))) {
			s++;
			continue;
		}
		for (e = s + 1; e < n_sectors && (f->dirty_sectors[e / 8] & (1u << (e % 8))); e++)
			;
		for (uint32_t i = 0; i < f->g.fat_count; i++) {
			uint64_t off =
				f->g.fat_offset_bytes + ((uint64_t)i * f->g.fat_sectors + s) * bps;

			r = pf_volume_write(&f->vol, off, f->fat + s * bps, (e - s) * bps);
			if (r < 0)
				return pf_error_prefix(r, "FAT: writing the FAT");
		}
		s = e;
	}
	memset(f->dirty_sectors, 0, DIV_ROUND_UP(n_sectors, 8));

	if (f->fsinfo_ok) {
		uint32_t next = f->last_alloc ? f->last_alloc : f->fsinfo_next;

		if (f->fsinfo_free != f->free_count || f->fsinfo_next != next) {
			uint8_t buf[8];

			put32(buf, f->free_count);
			put32(buf + 4, next);
			r = pf_volume_write(&f->vol, (uint64_t)f->g.fsinfo_sector * bps + 488, buf,
					    sizeof(buf));
			if (r < 0)
				return pf_error_prefix(r, "FAT: writing FSInfo");
			f->fsinfo_free = f->free_count;
			f->fsinfo_next = next;
		}
	}
	return 0;
}

int fat_tx_commit(PfFat *f)
{
	int r = fat_flush(f);

	if (r < 0) {
		fat_tx_abort(f);
		return r;
	}
	f->n_undo = 0;
	f->journaling = false;
	return 0;
}

/*
 * Takes n free clusters (the caller checked free_count), links them into a chain ending
 * in end-of-chain and returns them in out. Allocation continues where the last one
 * stopped, so files written one after another lie contiguous. Returns 0, or -EUCLEAN if
 * fewer than n are free after all (the count is kept exact, so this is a bug guard).
 */
int fat_alloc(PfFat *f, uint32_t n, uint32_t *out)
{
	const uint32_t max = f->g.cluster_count + 1;
	uint32_t c = cluster_ok(f, f->next_free) ? f->next_free : 2;
	uint32_t found = 0;

	/* free_count is exact, so one pass over the clusters finds n. */
	for (uint32_t scanned = 0; found < n && scanned < f->g.cluster_count; scanned++) {
		if (fat_get(f, c) == 0)
			out[found++] = c;
		c = c == max ? 2 : c + 1;
	}
	for (uint32_t i = 0; i < found; i++)
		fat_set(f, out[i], i + 1 < found ? out[i + 1] : fat_eoc(f));
	if (found > 0) {
		f->last_alloc = out[found - 1];
		f->next_free = c;
	}
	if (found < n)
		return CORRUPT("found %u free clusters where %u were counted", found, n);
	return 0;
}

void fat_free_chain(PfFat *f, const uint32_t *chain, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fat_set(f, chain[i], 0);
}

/*
 * Walks the chain starting at first, of the file or directory at path (named in errors).
 * The chain must stay in the data area, meet no free or bad cluster, visit no cluster
 * twice (a loop), share no cluster with another chain (a cross-link: a cluster two
 * entries point at, or a first cluster something points at), and end within max_n
 * clusters. Terminates in at most cluster_count steps whatever the FAT holds, as no
 * cluster is visited twice.
 * Returns 0 and the clusters (malloc'd) in *ret, *ret_n, or -EUCLEAN with a detail.
 */
int fat_walk(PfFat *f, uint32_t first, const char *path, size_t max_n, uint32_t **ret,
	     size_t *ret_n)
{
	uint32_t *list = NULL, c = first, merge = 0;
	size_t n = 0, alloc = 0;
	int r = 0;

	if (!cluster_ok(f, first))
		return CORRUPT("'%s' starts at cluster %u, outside the data area (2..%u)", path,
			       first, f->g.cluster_count + 1);
	/* A cluster two entries point at (or a first cluster one points at) is either a loop
	 * back into this chain or a cross-link with another one: walking on tells which. */
	if (f->indeg[first] != 0)
		merge = first;
	for (;;) {
		uint32_t next;

		if (n == max_n) {
			r = CORRUPT("cluster chain of '%s' is longer than %zu clusters", path,
				    max_n);
			break;
		}
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			uint32_t *p = reallocarray(list, na, sizeof(uint32_t));

			if (!p) {
				r = oom();
				break;
			}
			list = p;
			alloc = na;
		}
		list[n++] = c;
		f->visited[c / 8] |= (uint8_t)(1u << (c % 8));

		next = fat_get(f, c);
		if (fat_is_eoc(f, next))
			break;
		if (next == 0) {
			r = CORRUPT("cluster chain of '%s' contains cluster %u, which is marked "
				    "free",
				    path, c);
			break;
		}
		if (fat_is_bad(f, next)) {
			r = CORRUPT("cluster chain of '%s' contains cluster %u, which is marked "
				    "bad",
				    path, c);
			break;
		}
		if (!cluster_ok(f, next)) {
			r = CORRUPT("cluster chain of '%s' leaves the data area at cluster %u "
				    "(next %u, last valid %u)",
				    path, c, next, f->g.cluster_count + 1);
			break;
		}
		if (f->visited[next / 8] & (1u << (next % 8))) {
			r = CORRUPT("cluster chain of '%s' loops at cluster %u", path, next);
			break;
		}
		if (f->indeg[next] > 1 && merge == 0)
			merge = next;
		c = next;
	}
	if (r == 0 && merge != 0)
		r = CORRUPT("cluster chain of '%s' is cross-linked with another chain at "
			    "cluster %u",
			    path, merge);
	for (size_t i = 0; i < n; i++)
		f->visited[list[i] / 8] &= (uint8_t) ~(1u << (list[i] % 8));
	if (r < 0) {
		free(list);
		return r;
	}
	*ret = list;
	*ret_n = n;
	return 0;
}

/* Reads or writes whole clusters, one call per contiguous run. */
int fat_clusters_io(PfFat *f, const uint32_t *cl, size_t n, uint8_t *buf, size_t len, bool write)
{
	const size_t cb = f->g.cluster_bytes;
	size_t done = 0;

	for (size_t i = 0; i < n && done < len;) {
		size_t j = i + 1, chunk;
		int r;

		while (j < n && cl[j] == cl[j - 1] + 1)
			j++;
		chunk = MIN((j - i) * cb, len - done);
		r = write ? pf_volume_write(&f->vol, cluster_offset(f, cl[i]), buf + done, chunk)
			  : pf_volume_read(&f->vol, cluster_offset(f, cl[i]), buf + done, chunk);
		if (r < 0)
			return r;
		done += chunk;
		i = j;
	}
	return 0;
}
