/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "disk/overlay.h"
#include "util/error.h"

#define PAGE PF_OVERLAY_PAGE_BYTES
#define EMPTY_KEY UINT64_MAX
/* A slot whose location has this bit set lives in the spill file, at (loc & ~bit) * PAGE. */
#define IN_FILE (UINT64_C(1) << 63)

typedef struct Slot {
	uint64_t page; /* page index in the image, EMPTY_KEY when free */
	uint64_t loc;  /* index into mem[] or, with IN_FILE, page index in the spill file */
} Slot;

struct PfOverlay {
	int base_fd;
	uint64_t size_bytes;

	/* Open-addressing hash table from image page index to where the page's data is. */
	Slot *slots;
	size_t n_slots; /* power of two */
	size_t n_used;

	uint8_t **mem;
	size_t n_mem, mem_allocated;
	uint64_t memory_limit_bytes;

	int spill_fd;
	uint64_t n_spilled;

	PfExtents changed;
};

static inline size_t hash_page(uint64_t page, size_t mask)
{
	/* Fibonacci hashing spreads sequential page numbers over the table. */
	return (size_t)((page * UINT64_C(11400714819323198485)) >> 17) & mask;
}

int pf_overlay_new(int base_fd, uint64_t size_bytes, PfOverlay **ret)
{
	PfOverlay *o;

	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->spill_fd = -1;
	o->base_fd = fcntl(base_fd, F_DUPFD_CLOEXEC, 3);
	if (o->base_fd < 0) {
		free(o);
		return -errno;
	}
	o->size_bytes = size_bytes;
	o->memory_limit_bytes = PF_OVERLAY_DEFAULT_MEMORY_BYTES;
	*ret = o;
	return 0;
}

PfOverlay *pf_overlay_free(PfOverlay *o)
{
	if (!o)
		return NULL;
	for (size_t i = 0; i < o->n_mem; i++)
		free(o->mem[i]);
	free(o->mem);
	free(o->slots);
	safe_close(o->spill_fd);
	safe_close(o->base_fd);
	pf_extents_done(&o->changed);
	free(o);
	return NULL;
}

void pf_overlay_set_memory_limit(PfOverlay *o, uint64_t bytes)
{
	o->memory_limit_bytes = bytes;
}

uint64_t pf_overlay_size(const PfOverlay *o)
{
	return o->size_bytes;
}

void pf_overlay_stats(const PfOverlay *o, uint64_t *ret_pages, uint64_t *ret_pages_in_memory)
{
	if (ret_pages)
		*ret_pages = o->n_used;
	if (ret_pages_in_memory)
		*ret_pages_in_memory = o->n_mem;
}

static Slot *lookup(const PfOverlay *o, uint64_t page)
{
	size_t mask, i;

	if (o->n_slots == 0)
		return NULL;
	mask = o->n_slots - 1;
	for (i = hash_page(page, mask);; i = (i + 1) & mask) {
		if (o->slots[i].page == page)
			return &o->slots[i];
		if (o->slots[i].page == EMPTY_KEY)
			return NULL;
	}
}

static int grow_table(PfOverlay *o)
{
	size_t n = o->n_slots ? o->n_slots * 2 : 256;
	Slot *s;

	s = malloc(n * sizeof(Slot));
	if (!s)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		s[i].page = EMPTY_KEY;
	for (size_t i = 0; i < o->n_slots; i++) {
		size_t j;

		if (o->slots[i].page == EMPTY_KEY)
			continue;
		for (j = hash_page(o->slots[i].page, n - 1); s[j].page != EMPTY_KEY;
		     j = (j + 1) & (n - 1))
			;
		s[j] = o->slots[i];
	}
	free(o->slots);
	o->slots = s;
	o->n_slots = n;
	return 0;
}

static int base_read(PfOverlay *o, uint64_t offset, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(o->base_fd, p, len, (off_t)offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return pf_error_set(
				-errno, "read of image at offset %" PRIu64 " failed: %m", offset);
		}
		if (n == 0)
			return pf_error_set(-EIO,
					    "image ends before offset %" PRIu64
					    " (the file changed or shrank while in use?)",
					    offset);
		p += n;
		len -= (size_t)n;
		offset += (uint64_t)n;
	}
	return 0;
}

static int spill_open(PfOverlay *o)
{
	const char *dir = getenv("TMPDIR");

	if (!dir || !*dir)
		dir = "/tmp";
	o->spill_fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (o->spill_fd < 0) {
		char path[4096];

		snprintf(path, sizeof(path), "%s/piflash-overlay-XXXXXX", dir);
		o->spill_fd = mkostemp(path, O_CLOEXEC);
		if (o->spill_fd < 0)
			return pf_error_set(-errno, "cannot create overlay spill file in '%s': %m",
					    dir);
		unlink(path);
	}
	return 0;
}

static int page_store(PfOverlay *o, Slot *s, const uint8_t *data)
{
	if (s->loc & IN_FILE) {
		ssize_t n = pwrite(o->spill_fd, data, PAGE, (off_t)((s->loc & ~IN_FILE) * PAGE));
		if (n != (ssize_t)PAGE)
			return pf_error_set(n < 0 ? -errno : -EIO,
					    "write to overlay spill file failed: %m");
		return 0;
	}
	memcpy(o->mem[s->loc], data, PAGE);
	return 0;
}

static int page_load(PfOverlay *o, const Slot *s, uint8_t *data)
{
	if (s->loc & IN_FILE) {
		ssize_t n = pread(o->spill_fd, data, PAGE, (off_t)((s->loc & ~IN_FILE) * PAGE));
		if (n != (ssize_t)PAGE)
			return pf_error_set(n < 0 ? -errno : -EIO,
					    "read of overlay spill file failed: %m");
		return 0;
	}
	memcpy(data, o->mem[s->loc], PAGE);
	return 0;
}

/* Finds or creates the overlay page for page index `page`, filled from the base. */
static int page_get(PfOverlay *o, uint64_t page, Slot **ret)
{
	uint8_t buf[PAGE];
	uint64_t off = page * PAGE;
	size_t avail;
	Slot *s;
	size_t i, mask;
	int r;

	s = lookup(o, page);
	if (s) {
		*ret = s;
		return 0;
	}

	if ((o->n_used + 1) * 10 > o->n_slots * 7) {
		r = grow_table(o);
		if (r < 0)
			return r;
	}

	avail = (size_t)MIN((uint64_t)PAGE, o->size_bytes - off);
	memset(buf, 0, sizeof(buf));
	r = base_read(o, off, buf, avail);
	if (r < 0)
		return r;

	mask = o->n_slots - 1;
	for (i = hash_page(page, mask); o->slots[i].page != EMPTY_KEY; i = (i + 1) & mask)
		;
	s = &o->slots[i];

	if ((uint64_t)(o->n_mem + 1) * PAGE <= o->memory_limit_bytes) {
		uint8_t *m;

		if (o->n_mem == o->mem_allocated) {
			size_t na = o->mem_allocated ? o->mem_allocated * 2 : 64;
			uint8_t **p = reallocarray(o->mem, na, sizeof(uint8_t *));
			if (!p)
				return -ENOMEM;
			o->mem = p;
			o->mem_allocated = na;
		}
		m = malloc(PAGE);
		if (!m)
			return -ENOMEM;
		memcpy(m, buf, PAGE);
		o->mem[o->n_mem] = m;
		s->loc = o->n_mem++;
	} else {
		if (o->spill_fd < 0) {
			r = spill_open(o);
			if (r < 0)
				return r;
		}
		s->loc = o->n_spilled | IN_FILE;
		r = page_store(o, s, buf);
		if (r < 0)
			return r;
		o->n_spilled++;
	}
	s->page = page;
	o->n_used++;
	*ret = s;
	return 0;
}

int pf_overlay_read(PfOverlay *o, uint64_t offset_bytes, void *buf, size_t len)
{
	uint8_t *p = buf;
	uint64_t end;

	if (ADD_OVERFLOW(offset_bytes, (uint64_t)len, &end) || end > o->size_bytes)
		return pf_error_set(-EIO,
				    "read of %zu bytes at offset %" PRIu64
				    " is past the end of the image (%" PRIu64 " bytes)",
				    len, offset_bytes, o->size_bytes);

	while (len > 0) {
		uint64_t page = offset_bytes / PAGE;
		size_t in_page = offset_bytes % PAGE;
		size_t n = MIN(len, (size_t)PAGE - in_page);
		const Slot *s = lookup(o, page);
		int r;

		if (s) {
			uint8_t tmp[PAGE];

			if (s->loc & IN_FILE) {
				r = page_load(o, s, tmp);
				if (r < 0)
					return r;
				memcpy(p, tmp + in_page, n);
			} else
				memcpy(p, o->mem[s->loc] + in_page, n);
		} else {
			/* Coalesces the run of pages the overlay does not hold into one read. */
			while (n < len && !lookup(o, (offset_bytes + n) / PAGE))
				n += MIN(len - n, (size_t)PAGE);
			r = base_read(o, offset_bytes, p, n);
			if (r < 0)
				return r;
		}
		p += n;
		len -= n;
		offset_bytes += n;
	}
	return 0;
}

int pf_overlay_write(PfOverlay *o, uint64_t offset_bytes, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t end;
	int r;

	if (ADD_OVERFLOW(offset_bytes, (uint64_t)len, &end) || end > o->size_bytes)
		return pf_error_set(-ENOSPC,
				    "write of %zu bytes at offset %" PRIu64
				    " is past the end of the image (%" PRIu64 " bytes)",
				    len, offset_bytes, o->size_bytes);

	r = pf_extents_add(&o->changed, offset_bytes, len);
	if (r < 0)
		return r;

	while (len > 0) {
		uint64_t page = offset_bytes / PAGE;
		size_t in_page = offset_bytes % PAGE;
		size_t n = MIN(len, (size_t)PAGE - in_page);
		Slot *s;

		r = page_get(o, page, &s);
		if (r < 0)
			return r;
		if (s->loc & IN_FILE) {
			uint8_t tmp[PAGE];

			r = page_load(o, s, tmp);
			if (r < 0)
				return r;
			memcpy(tmp + in_page, p, n);
			r = page_store(o, s, tmp);
			if (r < 0)
				return r;
		} else
			memcpy(o->mem[s->loc] + in_page, p, n);
		p += n;
		len -= n;
		offset_bytes += n;
	}
	return 0;
}

const PfExtents *pf_overlay_changed(PfOverlay *o)
{
	pf_extents_normalize(&o->changed);
	return &o->changed;
}
