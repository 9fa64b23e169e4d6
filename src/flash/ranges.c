/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flash/ranges.h"
#include "util/error.h"
#include "util/strutil.h"

#define SCAN_CHUNK_BYTES (1024u * 1024u)

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* Adds [start, start+length) if it lies inside the image; a structure pointing outside is
 * not ours to write (ptable.c has already refused images whose partitions do that). */
static int add_inside(PfExtents *ret, uint64_t size, uint64_t start, uint64_t length)
{
	uint64_t end;

	if (length == 0 || ADD_OVERFLOW(start, length, &end) || end > size)
		return 0;
	return pf_extents_add(ret, start, length);
}

static bool is_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0f || type == 0x85;
}

/* Walks the EBR chain of the extended partition starting at ext_lba. */
static int add_ebrs(PfOverlay *ov, uint64_t ss, uint64_t ext_lba, PfExtents *ret)
{
	uint64_t size = pf_overlay_size(ov), lba = ext_lba;
	uint8_t sec[512];
	int r;

	for (unsigned i = 0; i < PF_RANGES_MAX_EBRS; i++) {
		const uint8_t *link;
		uint64_t off;

		if (MUL_OVERFLOW(lba, ss, &off) || off > size || size - off < ss)
			return 0;
		r = add_inside(ret, size, off, ss);
		if (r < 0)
			return r;
		r = pf_overlay_read(ov, off, sec, sizeof(sec));
		if (r < 0)
			return r;
		if (sec[510] != 0x55 || sec[511] != 0xaa)
			return 0;
		/* The second entry links to the next EBR, relative to the extended partition. */
		link = sec + 446 + 16;
		if (!is_extended(link[4]) || le32(link + 8) == 0)
			return 0;
		lba = ext_lba + le32(link + 8);
	}
	return 0;
}

/* Adds a GPT header at lba and its entry array; returns the header's alternate LBA, or 0
 * when there is no valid header there. */
static int add_gpt(PfOverlay *ov, uint64_t ss, uint64_t lba, PfExtents *ret, uint64_t *ret_alt)
{
	uint64_t size = pf_overlay_size(ov), off, array_off, array_bytes;
	uint8_t h[92];
	int r;

	*ret_alt = 0;
	if (MUL_OVERFLOW(lba, ss, &off) || off > size || size - off < ss)
		return 0;
	r = pf_overlay_read(ov, off, h, sizeof(h));
	if (r < 0)
		return r;
	if (memcmp(h, "EFI PART", 8) != 0)
		return 0;
	r = add_inside(ret, size, off, ss);
	if (r < 0)
		return r;
	array_bytes = (uint64_t)le32(h + 80) * le32(h + 84);
	if (array_bytes > PF_RANGES_MAX_GPT_ARRAY_BYTES)
		array_bytes = PF_RANGES_MAX_GPT_ARRAY_BYTES;
	array_bytes = ALIGN_UP(array_bytes, ss);
	if (!MUL_OVERFLOW(le64(h + 72), ss, &array_off)) {
		r = add_inside(ret, size, array_off, array_bytes);
		if (r < 0)
			return r;
	}
	*ret_alt = le64(h + 32);
	return 0;
}

int pf_ranges_table(PfOverlay *ov, uint64_t sector_bytes, PfExtents *ret)
{
	uint64_t size = pf_overlay_size(ov), ss = sector_bytes, alt = 0, last_lba;
	uint8_t mbr[512];
	bool gpt = false;
	int r;

	if (ss < 512 || ss > 4096 || (ss & (ss - 1)) || size < ss)
		return pf_error_set(-EINVAL, "bad sector size %" PRIu64 " or image size", ss);
	r = add_inside(ret, size, 0, ss);
	if (r < 0)
		return r;
	r = pf_overlay_read(ov, 0, mbr, sizeof(mbr));
	if (r < 0)
		return r;
	if (mbr[510] != 0x55 || mbr[511] != 0xaa)
		return 0;

	for (unsigned i = 0; i < 4; i++) {
		const uint8_t *e = mbr + 446 + 16 * i;

		if (e[4] == 0xee)
			gpt = true;
		else if (is_extended(e[4]) && le32(e + 8)) {
			r = add_ebrs(ov, ss, le32(e + 8), ret);
			if (r < 0)
				return r;
		}
	}
	if (!gpt)
		return 0;

	last_lba = size / ss - 1;
	r = add_gpt(ov, ss, 1, ret, &alt);
	if (r < 0)
		return r;
	/* The backup header: where the primary says, else (primary damaged) the last sector. */
	if (alt == 0 || alt == 1 || alt > last_lba)
		alt = last_lba;
	return add_gpt(ov, ss, alt, ret, &(uint64_t){ 0 });
}

/* The data segments of base_fd within [start, end), or the whole of it without SEEK_DATA. */
static int base_data(int base_fd, uint64_t start, uint64_t end, PfExtents *ret)
{
	uint64_t pos = start;

	if (base_fd < 0)
		return pf_extents_add(ret, start, end - start);
	while (pos < end) {
		off_t data = lseek(base_fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				return 0;
			if (errno == EINVAL)
				return pf_extents_add(ret, pos, end - pos);
			return pf_error_set(-errno, "cannot map the image's data: %m");
		}
		if ((uint64_t)data >= end)
			return 0;
		hole = lseek(base_fd, data, SEEK_HOLE);
		if (hole < 0)
			return pf_error_set(-errno, "cannot map the image's data: %m");
		if (hole <= data)
			return 0;
		if ((uint64_t)hole > end)
			hole = (off_t)end;
		int r = pf_extents_add(ret, (uint64_t)data, (uint64_t)(hole - data));
		if (r < 0)
			return r;
		pos = (uint64_t)hole;
	}
	return 0;
}

int pf_ranges_nonzero(PfOverlay *ov, int base_fd, uint64_t start_bytes, uint64_t length_bytes,
		      uint64_t grain_bytes, PfExtents *ret)
{
	_cleanup_(pf_extents_done) PfExtents cand = { 0 };
	_cleanup_(freep) uint8_t *buf = NULL;
	uint64_t end;
	int r;

	if (grain_bytes == 0 || SCAN_CHUNK_BYTES % grain_bytes ||
	    ADD_OVERFLOW(start_bytes, length_bytes, &end) || end > pf_overlay_size(ov))
		return -EINVAL;
	if (length_bytes == 0)
		return 0;

	/* Only the base's data and what the overlay changed can be non-zero. */
	r = base_data(base_fd, start_bytes, end, &cand);
	if (r < 0)
		return r;
	for (size_t i = 0; i < pf_overlay_changed(ov)->n; i++) {
		const PfExtent *c = &pf_overlay_changed(ov)->items[i];
		uint64_t s = MAX(c->start_bytes, start_bytes);
		uint64_t e = MIN(c->start_bytes + c->length_bytes, end);

		if (s < e) {
			r = pf_extents_add(&cand, s, e - s);
			if (r < 0)
				return r;
		}
	}
	pf_extents_normalize(&cand);

	buf = malloc(SCAN_CHUNK_BYTES);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < cand.n; i++) {
		/* Grains are counted from start_bytes, so the result is the same however the
		 * base is laid out. */
		uint64_t pos = start_bytes + (cand.items[i].start_bytes - start_bytes) /
						     grain_bytes * grain_bytes;
		uint64_t stop = cand.items[i].start_bytes + cand.items[i].length_bytes;

		while (pos < stop) {
			size_t n = (size_t)MIN((uint64_t)SCAN_CHUNK_BYTES, end - pos);

			r = pf_overlay_read(ov, pos, buf, n);
			if (r < 0)
				return r;
			for (size_t k = 0; k < n; k += grain_bytes) {
				size_t g = (size_t)MIN((uint64_t)grain_bytes, n - k);

				if (!pf_is_zero(buf + k, g)) {
					r = pf_extents_add(ret, pos + k, g);
					if (r < 0)
						return r;
				}
			}
			pos += n;
		}
	}
	return 0;
}

static int add_whole(PfRanges *ret, const PfPartition *p)
{
	unsigned *w = realloc(ret->whole, (ret->n_whole + 1) * sizeof(*w));

	if (!w)
		return -ENOMEM;
	ret->whole = w;
	ret->whole[ret->n_whole++] = p->number;
	return pf_extents_add(&ret->all, p->start_bytes, p->size_bytes);
}

/* The used ranges of partition p's filesystem, or the whole partition. */
static int add_partition(PfTree *tree, const PfPartition *p, PfRanges *ret)
{
	_cleanup_(pf_extents_done) PfExtents used = { 0 };
	PfFs *fs;
	int r;

	if (!p->fstype || !tree || pf_tree_fs(tree, p, &fs) < 0 || pf_fs_used(fs, &used) < 0) {
		pf_error_clear();
		return add_whole(ret, p);
	}
	pf_extents_normalize(&used);
	for (size_t i = 0; i < used.n; i++) {
		uint64_t s = used.items[i].start_bytes;
		uint64_t l = used.items[i].length_bytes;

		if (s >= p->size_bytes)
			break;
		r = pf_extents_add(&ret->all, p->start_bytes + s, MIN(l, p->size_bytes - s));
		if (r < 0)
			return r;
	}
	return 0;
}

static int cmp_part(const void *a, const void *b)
{
	const PfPartition *x = *(const PfPartition *const *)a, *y = *(const PfPartition *const *)b;

	return x->start_bytes < y->start_bytes ? -1 : x->start_bytes > y->start_bytes;
}

int pf_ranges_compute(PfOverlay *ov, int base_fd, const PfPtable *t, PfTree *tree, PfRanges *ret)
{
	_cleanup_(freep) const PfPartition **sorted = NULL;
	uint64_t size = pf_overlay_size(ov), pos = 0, ss = t->sector_bytes ?: 512;
	int r;

	r = pf_ranges_table(ov, ss, &ret->table);
	if (r < 0)
		return r;
	pf_extents_normalize(&ret->table);
	r = pf_extents_add_all(&ret->all, &ret->table, 0);
	if (r < 0)
		return r;

	sorted = calloc(t->n_parts ?: 1, sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_parts; i++)
		sorted[i] = &t->parts[i];
	qsort(sorted, t->n_parts, sizeof(*sorted), cmp_part);

	/* Partitions, and what is not zero in the gaps between them (sector granularity). */
	for (size_t i = 0; i <= t->n_parts; i++) {
		uint64_t gap_end = i < t->n_parts ? MIN(sorted[i]->start_bytes, size) : size;

		if (gap_end > pos) {
			r = pf_ranges_nonzero(ov, base_fd, pos, gap_end - pos, ss, &ret->all);
			if (r < 0)
				return r;
		}
		if (i == t->n_parts)
			break;
		r = add_partition(tree, sorted[i], ret);
		if (r < 0)
			return r;
		pos = MAX(pos, sorted[i]->start_bytes + sorted[i]->size_bytes);
		ret->need_bytes =
			MAX(ret->need_bytes, sorted[i]->start_bytes + sorted[i]->size_bytes);
	}

	r = pf_extents_add_all(&ret->all, pf_overlay_changed(ov), 0);
	if (r < 0)
		return r;
	pf_extents_normalize(&ret->all);
	if (ret->all.n > 0) {
		const PfExtent *last = &ret->all.items[ret->all.n - 1];

		ret->need_bytes = MAX(ret->need_bytes, last->start_bytes + last->length_bytes);
	}
	return 0;
}

int pf_ranges_align(PfExtents *e, uint64_t align_bytes, uint64_t limit_bytes)
{
	size_t n = 0;

	if (align_bytes == 0 || (align_bytes & (align_bytes - 1)))
		return -EINVAL;
	for (size_t i = 0; i < e->n; i++) {
		uint64_t s = e->items[i].start_bytes & ~(align_bytes - 1);
		uint64_t end = e->items[i].start_bytes + e->items[i].length_bytes;

		end = end > UINT64_MAX - align_bytes ? UINT64_MAX : ALIGN_UP(end, align_bytes);
		end = MIN(end, limit_bytes);
		if (s >= end)
			continue;
		e->items[n++] = (PfExtent){ .start_bytes = s, .length_bytes = end - s };
	}
	e->n = n;
	e->sorted = 0;
	pf_extents_normalize(e);
	return 0;
}

int pf_ranges_subtract(PfExtents *a, PfExtents *b, PfExtents *ret)
{
	size_t j = 0;
	int r;

	pf_extents_normalize(a);
	pf_extents_normalize(b);
	for (size_t i = 0; i < a->n; i++) {
		uint64_t s = a->items[i].start_bytes;
		uint64_t end = s + a->items[i].length_bytes;

		while (j < b->n && b->items[j].start_bytes + b->items[j].length_bytes <= s)
			j++;
		for (size_t k = j; k < b->n && b->items[k].start_bytes < end && s < end; k++) {
			uint64_t bs = b->items[k].start_bytes;
			uint64_t be = bs + b->items[k].length_bytes;

			if (bs > s) {
				r = pf_extents_add(ret, s, bs - s);
				if (r < 0)
					return r;
			}
			s = MAX(s, be);
		}
		if (s < end) {
			r = pf_extents_add(ret, s, end - s);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int pf_ranges_complement(PfExtents *e, uint64_t limit_bytes, PfExtents *ret)
{
	PfExtents all = { 0 };
	int r;

	if (limit_bytes == 0)
		return 0;
	r = pf_extents_add(&all, 0, limit_bytes);
	if (r >= 0)
		r = pf_ranges_subtract(&all, e, ret);
	pf_extents_done(&all);
	return r;
}

void pf_ranges_done(PfRanges *r)
{
	pf_extents_done(&r->all);
	pf_extents_done(&r->table);
	free(r->whole);
	*r = (PfRanges){ 0 };
}

int pf_ranges_image_data(int base_fd, uint64_t size_bytes, PfOverlay *ov, PfExtents *ret)
{
	int r;

	r = base_data(base_fd, 0, size_bytes, ret);
	if (r < 0)
		return r;
	r = pf_extents_add_all(ret, pf_overlay_changed(ov), 0);
	if (r < 0)
		return r;
	pf_extents_normalize(ret);
	return 0;
}
