/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/extents.h"
#include "util/macros.h"

int pf_extents_add(PfExtents *e, uint64_t start_bytes, uint64_t length_bytes)
{
	uint64_t end;

	if (length_bytes == 0)
		return 0;
	if (ADD_OVERFLOW(start_bytes, length_bytes, &end))
		return -EOVERFLOW;

	if (e->n > 0) {
		PfExtent *last = &e->items[e->n - 1];
		uint64_t last_end = last->start_bytes + last->length_bytes;

		/* Extends the last range when the new one starts inside or right after it. */
		if (start_bytes >= last->start_bytes && start_bytes <= last_end) {
			if (end > last_end)
				last->length_bytes = end - last->start_bytes;
			return 0;
		}
		if (start_bytes < last->start_bytes)
			e->sorted = 0;
	} else
		e->sorted = 1;

	if (e->n == e->allocated) {
		size_t na = e->allocated ? e->allocated * 2 : 16;
		PfExtent *p = reallocarray(e->items, na, sizeof(PfExtent));
		if (!p)
			return -ENOMEM;
		e->items = p;
		e->allocated = na;
	}
	e->items[e->n++] = (PfExtent){ start_bytes, length_bytes };
	return 0;
}

int pf_extents_add_all(PfExtents *e, const PfExtents *src, uint64_t offset_bytes)
{
	for (size_t i = 0; i < src->n; i++) {
		uint64_t start;
		int r;

		if (ADD_OVERFLOW(src->items[i].start_bytes, offset_bytes, &start))
			return -EOVERFLOW;
		r = pf_extents_add(e, start, src->items[i].length_bytes);
		if (r < 0)
			return r;
	}
	return 0;
}

static int extent_cmp(const void *a, const void *b)
{
	const PfExtent *x = a, *y = b;

	if (x->start_bytes != y->start_bytes)
		return x->start_bytes < y->start_bytes ? -1 : 1;
	return 0;
}

void pf_extents_normalize(PfExtents *e)
{
	size_t w = 0;

	if (e->n == 0 || e->sorted)
		return;

	qsort(e->items, e->n, sizeof(PfExtent), extent_cmp);
	for (size_t i = 1; i < e->n; i++) {
		PfExtent *cur = &e->items[w];
		uint64_t cur_end = cur->start_bytes + cur->length_bytes;
		uint64_t nx_end = e->items[i].start_bytes + e->items[i].length_bytes;

		if (e->items[i].start_bytes <= cur_end) {
			if (nx_end > cur_end)
				cur->length_bytes = nx_end - cur->start_bytes;
		} else
			e->items[++w] = e->items[i];
	}
	e->n = w + 1;
	e->sorted = 1;
}

uint64_t pf_extents_total(PfExtents *e)
{
	uint64_t t = 0;

	pf_extents_normalize(e);
	for (size_t i = 0; i < e->n; i++)
		t += e->items[i].length_bytes;
	return t;
}

int pf_extents_overlaps(PfExtents *e, uint64_t start_bytes, uint64_t length_bytes)
{
	size_t lo = 0, hi;
	uint64_t end;

	/* An empty range overlaps nothing; one reaching past 2^64 is clamped, not wrapped. */
	if (length_bytes == 0)
		return 0;
	if (ADD_OVERFLOW(start_bytes, length_bytes, &end))
		end = UINT64_MAX;

	pf_extents_normalize(e);
	hi = e->n;
	/* First range whose end is beyond start. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (e->items[mid].start_bytes + e->items[mid].length_bytes <= start_bytes)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < e->n && e->items[lo].start_bytes < end;
}

void pf_extents_done(PfExtents *e)
{
	free(e->items);
	*e = (PfExtents){ 0 };
}
