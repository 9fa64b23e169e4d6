/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "disk/overlay.h"
#include "util/error.h"

#define PAGE PF_OVERLAY_PAGE_BYTES

/* The base: a memfd of `size` bytes filled with a position-dependent pattern. */
typedef struct Fixture {
	int fd;
	size_t size;
	uint8_t *pattern; /* what the base holds */
	uint8_t *shadow;  /* what the overlay should read as */
} Fixture;

static uint8_t pattern_byte(size_t i)
{
	return (uint8_t)(i * 7 + i / 251 + 1);
}

static Fixture *fixture_new(size_t size)
{
	Fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->size = size;
	f->pattern = malloc(size);
	f->shadow = malloc(size);
	assert_non_null(f->pattern);
	assert_non_null(f->shadow);
	for (size_t i = 0; i < size; i++)
		f->pattern[i] = pattern_byte(i);
	memcpy(f->shadow, f->pattern, size);
	f->fd = memfd_create("overlay-base", MFD_CLOEXEC);
	assert_true(f->fd >= 0);
	assert_int_equal(pwrite(f->fd, f->pattern, size, 0), (ssize_t)size);
	return f;
}

static void fixture_free(Fixture *f)
{
	close(f->fd);
	free(f->pattern);
	free(f->shadow);
	free(f);
}

/* Base size: 5 pages and a bit, so the last page is partial. */
#define BASE_SIZE (5 * PAGE + 123)

static int setup(void **state)
{
	*state = fixture_new(BASE_SIZE);
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static void check_whole(PfOverlay *o, const uint8_t *want, size_t size)
{
	uint8_t *buf = malloc(size);

	assert_non_null(buf);
	memset(buf, 0xee, size);
	assert_int_equal(pf_overlay_read(o, 0, buf, size), 0);
	assert_memory_equal(buf, want, size);
	free(buf);
}

static void check_base_unchanged(const Fixture *f)
{
	uint8_t *buf = malloc(f->size);

	assert_non_null(buf);
	assert_int_equal(pread(f->fd, buf, f->size, 0), (ssize_t)f->size);
	assert_memory_equal(buf, f->pattern, f->size);
	assert_int_equal(lseek(f->fd, 0, SEEK_END), (off_t)f->size);
	free(buf);
}

static void do_write(Fixture *f, PfOverlay *o, uint64_t off, size_t len, uint8_t seed)
{
	uint8_t *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed + i * 13);
	assert_int_equal(pf_overlay_write(o, off, buf, len), 0);
	memcpy(f->shadow + off, buf, len);
	free(buf);
}

static void test_read_through(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint8_t buf[3 * PAGE];
	uint64_t pages = 99, in_mem = 99;

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);
	assert_int_equal(pf_overlay_size(o), f->size);
	check_whole(o, f->pattern, f->size);

	/* Unaligned pieces, across page boundaries, up to the last byte. */
	assert_int_equal(pf_overlay_read(o, PAGE - 3, buf, 7), 0);
	assert_memory_equal(buf, f->pattern + PAGE - 3, 7);
	assert_int_equal(pf_overlay_read(o, 1, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, f->pattern + 1, sizeof(buf));
	assert_int_equal(pf_overlay_read(o, f->size - 200, buf, 200), 0);
	assert_memory_equal(buf, f->pattern + f->size - 200, 200);
	assert_int_equal(pf_overlay_read(o, f->size - 1, buf, 1), 0);
	assert_int_equal(buf[0], f->pattern[f->size - 1]);
	assert_int_equal(pf_overlay_read(o, f->size, buf, 0), 0);

	/* Reading holds no pages and changes nothing. */
	pf_overlay_stats(o, &pages, &in_mem);
	assert_int_equal(pages, 0);
	assert_int_equal(in_mem, 0);
	assert_int_equal(pf_overlay_changed(o)->n, 0);
}

static void test_write_read_back(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint8_t buf[PAGE + 10];
	uint64_t pages, in_mem;

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);

	do_write(f, o, PAGE - 5, 10, 1); /* across the first boundary */
	check_whole(o, f->shadow, f->size);
	do_write(f, o, PAGE + 100, 3 * PAGE, 2); /* spans 4 pages, unaligned */
	check_whole(o, f->shadow, f->size);
	do_write(f, o, f->size - 50, 50, 3); /* the last, partial page */
	check_whole(o, f->shadow, f->size);
	do_write(f, o, 0, 1, 4);	     /* first byte */
	do_write(f, o, 2 * PAGE, PAGE, 5);   /* a whole aligned page, rewritten */
	do_write(f, o, 2 * PAGE + 17, 1, 6); /* one byte into a written page */
	check_whole(o, f->shadow, f->size);

	/* Partial reads starting inside written pages and ending in unwritten ones. */
	for (uint64_t off = 0; off + sizeof(buf) <= f->size; off += 997) {
		assert_int_equal(pf_overlay_read(o, off, buf, sizeof(buf)), 0);
		assert_memory_equal(buf, f->shadow + off, sizeof(buf));
	}

	/* The bytes past the image's end in the last page must not leak into reads or
	 * bother the writes: the page is zero-padded, and the size is still exact. */
	assert_int_equal(pf_overlay_read(o, f->size - 60, buf, 60), 0);
	assert_memory_equal(buf, f->shadow + f->size - 60, 60);

	pf_overlay_stats(o, &pages, &in_mem);
	assert_int_equal(pages, 6); /* every page got a write */
	assert_int_equal(in_mem, 6);

	check_base_unchanged(f);
}

/* Random writes and reads against a shadow copy. */
static void test_random(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint8_t buf[3 * PAGE];
	uint32_t seed = 42;

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);
	for (int i = 0; i < 300; i++) {
		uint64_t off;
		size_t len;

		seed = seed * 1103515245 + 12345;
		off = (seed >> 4) % f->size;
		seed = seed * 1103515245 + 12345;
		len = (seed >> 4) % sizeof(buf);
		if (len > f->size - off)
			len = f->size - off;
		if (i % 2)
			do_write(f, o, off, len, (uint8_t)i);
		else {
			assert_int_equal(pf_overlay_read(o, off, buf, len), 0);
			assert_memory_equal(buf, f->shadow + off, len);
		}
	}
	check_whole(o, f->shadow, f->size);
	check_base_unchanged(f);
}

static void test_changed(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	const PfExtents *c;

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);
	assert_int_equal(pf_overlay_changed(o)->n, 0);

	do_write(f, o, 10, 10, 1);
	do_write(f, o, 20, 10, 2);
	do_write(f, o, 5000, 1, 3);
	c = pf_overlay_changed(o);
	assert_int_equal(c->n, 2);
	assert_int_equal(c->items[0].start_bytes, 10);
	assert_int_equal(c->items[0].length_bytes, 20);
	assert_int_equal(c->items[1].start_bytes, 5000);
	assert_int_equal(c->items[1].length_bytes, 1);

	/* Out of order and overlapping: merged, and only the bytes written, not the pages. */
	do_write(f, o, 4990, 5, 4); /* [4990,4995) separate */
	do_write(f, o, 25, 100, 5); /* extends [10,30) to [10,125) */
	do_write(f, o, 4995, 5, 6); /* bridges [4990,4995) and [5000,5001) */
	do_write(f, o, 200, 0, 7);  /* empty write: nothing */
	c = pf_overlay_changed(o);
	assert_int_equal(c->n, 2);
	assert_int_equal(c->items[0].start_bytes, 10);
	assert_int_equal(c->items[0].length_bytes, 115);
	assert_int_equal(c->items[1].start_bytes, 4990);
	assert_int_equal(c->items[1].length_bytes, 11);
	check_whole(o, f->shadow, f->size);
}

static void test_past_end(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint8_t buf[16] = { 0 };

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);

	pf_error_clear();
	assert_int_equal(pf_overlay_read(o, f->size - 1, buf, 2), -EIO);
	assert_non_null(strstr(pf_error_message(-EIO), "past the end"));
	assert_int_equal(pf_overlay_read(o, f->size, buf, 1), -EIO);
	assert_int_equal(pf_overlay_read(o, UINT64_MAX - 2, buf, 8), -EIO);

	pf_error_clear();
	assert_int_equal(pf_overlay_write(o, f->size - 1, buf, 2), -ENOSPC);
	assert_non_null(strstr(pf_error_message(-ENOSPC), "past the end"));
	assert_int_equal(pf_overlay_write(o, f->size, buf, 1), -ENOSPC);
	assert_int_equal(pf_overlay_write(o, UINT64_MAX - 2, buf, 8), -ENOSPC);

	/* A refused write changes nothing. */
	assert_int_equal(pf_overlay_changed(o)->n, 0);
	check_whole(o, f->pattern, f->size);

	/* Up to the last byte is fine. */
	do_write(f, o, f->size - 16, 16, 9);
	check_whole(o, f->shadow, f->size);
}

static void test_memory_limit(void **state)
{
	enum { N_PAGES = 100 };
	Fixture *f = fixture_new(N_PAGES * PAGE + 7);
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint64_t pages, in_mem;
	uint8_t buf[PAGE];

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);
	pf_overlay_set_memory_limit(o, 2 * PAGE);

	/* Each page written whole, then partly rewritten (spilled pages are read-modify-write). */
	for (unsigned p = 0; p < N_PAGES; p++)
		do_write(f, o, (uint64_t)p * PAGE, PAGE, (uint8_t)p);
	for (unsigned p = 0; p < N_PAGES; p += 3)
		do_write(f, o, (uint64_t)p * PAGE + 100, 50, (uint8_t)(p + 77));
	do_write(f, o, f->size - 7, 7, 200);   /* the partial last page */
	do_write(f, o, 50 * PAGE - 3, 6, 201); /* across two spilled pages */

	pf_overlay_stats(o, &pages, &in_mem);
	assert_int_equal(pages, N_PAGES + 1);
	assert_true(in_mem <= 2);

	check_whole(o, f->shadow, f->size);
	for (unsigned p = 0; p < N_PAGES; p += 7) {
		assert_int_equal(pf_overlay_read(o, (uint64_t)p * PAGE + 1, buf, PAGE - 1), 0);
		assert_memory_equal(buf, f->shadow + (uint64_t)p * PAGE + 1, PAGE - 1);
	}
	check_base_unchanged(f);
	assert_int_equal(pf_overlay_changed(o)->n, 1);
	assert_int_equal(pf_overlay_changed(o)->items[0].length_bytes, f->size);

	pf_overlay_free(TAKE_PTR(o));
	fixture_free(f);
}

/* Enough pages to make the page table grow several times, written in reverse order. */
static void test_many_pages(void **state)
{
	enum { N_PAGES = 1500 };
	Fixture *f = fixture_new(N_PAGES * PAGE);
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint64_t pages, in_mem;

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);
	pf_overlay_set_memory_limit(o, 1000 * PAGE);
	for (unsigned p = N_PAGES; p-- > 0;)
		do_write(f, o, (uint64_t)p * PAGE + p % PAGE, 3, (uint8_t)p);
	pf_overlay_stats(o, &pages, &in_mem);
	assert_int_equal(pages, N_PAGES);
	assert_int_equal(in_mem, 1000);
	check_whole(o, f->shadow, f->size);
	assert_int_equal(pf_overlay_changed(o)->n, N_PAGES);
	assert_int_equal(pf_extents_total((PfExtents *)pf_overlay_changed(o)), 3 * N_PAGES);
	pf_overlay_free(TAKE_PTR(o));
	fixture_free(f);
}

/* A limit of 0: every page goes to the spill file. */
static void test_memory_limit_zero(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint64_t pages, in_mem;

	assert_int_equal(pf_overlay_new(f->fd, f->size, &o), 0);
	pf_overlay_set_memory_limit(o, 0);
	do_write(f, o, 3, 3 * PAGE, 1);
	do_write(f, o, f->size - 2, 2, 2);
	pf_overlay_stats(o, &pages, &in_mem);
	assert_int_equal(pages, 5);
	assert_int_equal(in_mem, 0);
	check_whole(o, f->shadow, f->size);
	check_base_unchanged(f);
}

static void test_two_overlays(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *a = NULL, *b = NULL;
	uint8_t *want_b = malloc(f->size);
	uint8_t x[100];

	assert_non_null(want_b);
	assert_int_equal(pf_overlay_new(f->fd, f->size, &a), 0);
	assert_int_equal(pf_overlay_new(f->fd, f->size, &b), 0);

	do_write(f, a, 1000, 5000, 1); /* f->shadow tracks a */
	memcpy(want_b, f->pattern, f->size);
	memset(x, 0xab, sizeof(x));
	assert_int_equal(pf_overlay_write(b, 3000, x, sizeof(x)), 0);
	memcpy(want_b + 3000, x, sizeof(x));

	check_whole(a, f->shadow, f->size);
	check_whole(b, want_b, f->size);
	assert_int_equal(pf_overlay_changed(a)->items[0].start_bytes, 1000);
	assert_int_equal(pf_overlay_changed(b)->items[0].start_bytes, 3000);

	/* Freeing one leaves the other and the caller's descriptor usable. */
	a = pf_overlay_free(a);
	assert_null(a);
	check_whole(b, want_b, f->size);
	check_base_unchanged(f);
	free(want_b);
}

static void test_free_null(void **state)
{
	assert_null(pf_overlay_free(NULL));
}

static void test_new_bad_fd(void **state)
{
	PfOverlay *o = (PfOverlay *)(uintptr_t)1;

	assert_int_equal(pf_overlay_new(-1, 100, &o), -EBADF);
	assert_ptr_equal(o, (PfOverlay *)(uintptr_t)1); /* untouched on failure */
}

/* A base shorter than the size the overlay was told: a clear error, not garbage. */
static void test_short_base(void **state)
{
	Fixture *f = *state;
	_cleanup_(pf_overlay_freep) PfOverlay *o = NULL;
	uint8_t buf[PAGE];

	assert_int_equal(pf_overlay_new(f->fd, f->size + 10 * PAGE, &o), 0);
	pf_error_clear();
	assert_int_equal(pf_overlay_read(o, f->size + PAGE, buf, 10), -EIO);
	assert_non_null(strstr(pf_error_message(-EIO), "image ends"));
	assert_int_equal(pf_overlay_write(o, f->size + PAGE, buf, 10), -EIO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_through, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_random, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_past_end, setup, teardown),
		cmocka_unit_test(test_memory_limit),
		cmocka_unit_test(test_many_pages),
		cmocka_unit_test_setup_teardown(test_memory_limit_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_overlays, setup, teardown),
		cmocka_unit_test(test_free_null),
		cmocka_unit_test(test_new_bad_fd),
		cmocka_unit_test_setup_teardown(test_short_base, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
