/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/extents.h"

#include "test-util.h"

static void test_in_order(void **state)
{
	PfExtents e = { 0 };
	static const uint64_t want[] = { 0, 10, 20, 10, 100, 1 };

	assert_int_equal(pf_extents_add(&e, 0, 10), 0);
	assert_int_equal(pf_extents_add(&e, 20, 10), 0);
	assert_int_equal(pf_extents_add(&e, 100, 1), 0);
	expect_ranges(&e, 3, want);
	pf_extents_normalize(&e);
	expect_ranges(&e, 3, want);
	assert_int_equal(pf_extents_total(&e), 21);
	pf_extents_done(&e);
	assert_null(e.items);
	assert_int_equal(e.n, 0);
}

static void test_touching_and_overlapping(void **state)
{
	PfExtents e = { 0 };
	static const uint64_t want[] = { 0, 30, 40, 20 };

	assert_int_equal(pf_extents_add(&e, 0, 10), 0);
	assert_int_equal(pf_extents_add(&e, 10, 10), 0); /* touching */
	assert_int_equal(pf_extents_add(&e, 15, 15), 0); /* overlapping, extends */
	assert_int_equal(pf_extents_add(&e, 2, 3), 0);	 /* contained */
	assert_int_equal(pf_extents_add(&e, 40, 10), 0);
	assert_int_equal(pf_extents_add(&e, 40, 20), 0); /* same start, longer */
	assert_int_equal(pf_extents_add(&e, 45, 5), 0);	 /* contained in the last */
	pf_extents_normalize(&e);
	expect_ranges(&e, 2, want);
	assert_int_equal(pf_extents_total(&e), 50);
	pf_extents_done(&e);
}

static void test_out_of_order(void **state)
{
	PfExtents e = { 0 };
	static const uint64_t want[] = { 0, 10, 20, 10, 50, 10 };
	static const uint64_t want2[] = { 0, 30, 50, 10 };

	assert_int_equal(pf_extents_add(&e, 50, 10), 0);
	assert_int_equal(pf_extents_add(&e, 20, 10), 0);
	assert_int_equal(pf_extents_add(&e, 0, 10), 0);
	pf_extents_normalize(&e);
	expect_ranges(&e, 3, want);

	/* A later out-of-order add bridging two ranges merges them on normalize. */
	assert_int_equal(pf_extents_add(&e, 5, 20), 0);
	pf_extents_normalize(&e);
	expect_ranges(&e, 2, want2);
	assert_int_equal(pf_extents_total(&e), 40);

	/* Touching ranges added out of order merge too. */
	assert_int_equal(pf_extents_add(&e, 30, 20), 0);
	pf_extents_normalize(&e);
	assert_int_equal(e.n, 1);
	assert_int_equal(e.items[0].start_bytes, 0);
	assert_int_equal(e.items[0].length_bytes, 60);
	pf_extents_done(&e);
}

static void test_zero_length(void **state)
{
	PfExtents e = { 0 };

	assert_int_equal(pf_extents_add(&e, 5, 0), 0);
	assert_int_equal(e.n, 0);
	assert_int_equal(pf_extents_total(&e), 0);
	assert_false(pf_extents_overlaps(&e, 0, 100));
	assert_int_equal(pf_extents_add(&e, 10, 10), 0);
	assert_int_equal(pf_extents_add(&e, 100, 0), 0);
	assert_int_equal(pf_extents_add(&e, 0, 0), 0);
	assert_int_equal(e.n, 1);
	assert_int_equal(pf_extents_total(&e), 10);
	pf_extents_done(&e);
}

static void test_overflow(void **state)
{
	PfExtents e = { 0 };

	assert_int_equal(pf_extents_add(&e, UINT64_MAX, 1), -EOVERFLOW);
	assert_int_equal(pf_extents_add(&e, 1, UINT64_MAX), -EOVERFLOW);
	assert_int_equal(pf_extents_add(&e, UINT64_MAX / 2 + 1, UINT64_MAX / 2 + 1), -EOVERFLOW);
	assert_int_equal(e.n, 0);
	/* Ending exactly at UINT64_MAX is representable. */
	assert_int_equal(pf_extents_add(&e, UINT64_MAX - 10, 10), 0);
	assert_int_equal(pf_extents_add(&e, 0, UINT64_MAX - 10), 0);
	pf_extents_normalize(&e);
	assert_int_equal(e.n, 1);
	assert_int_equal(pf_extents_total(&e), UINT64_MAX);
	pf_extents_done(&e);
}

/* Many random ranges added in random order must cover exactly what a bitmap says. */
static void test_normalize_random(void **state)
{
	enum { SPACE = 2000, ROUNDS = 50 };
	uint32_t seed = 12345;

	for (int round = 0; round < ROUNDS; round++) {
		PfExtents e = { 0 };
		uint8_t bitmap[SPACE] = { 0 };
		uint64_t total = 0;
		unsigned n_add = 1 + round * 3;

		for (unsigned k = 0; k < n_add; k++) {
			uint64_t s, l;

			seed = seed * 1103515245 + 12345;
			s = (seed >> 8) % (SPACE - 100);
			seed = seed * 1103515245 + 12345;
			l = (seed >> 8) % 60;
			assert_int_equal(pf_extents_add(&e, s, l), 0);
			memset(bitmap + s, 1, l);
		}
		pf_extents_normalize(&e);

		/* Sorted, disjoint, not touching, non-empty. */
		for (size_t i = 0; i < e.n; i++) {
			assert_true(e.items[i].length_bytes > 0);
			if (i > 0)
				assert_true(e.items[i - 1].start_bytes +
						    e.items[i - 1].length_bytes <
					    e.items[i].start_bytes);
		}
		/* Covers exactly the bitmap. */
		for (size_t i = 0, k = 0; i < SPACE; i++) {
			int in;

			while (k < e.n && e.items[k].start_bytes + e.items[k].length_bytes <= i)
				k++;
			in = k < e.n && e.items[k].start_bytes <= i;
			assert_int_equal(in, bitmap[i]);
			total += bitmap[i];
			assert_int_equal(pf_extents_overlaps(&e, i, 1), bitmap[i]);
		}
		assert_int_equal(pf_extents_total(&e), total);
		pf_extents_done(&e);
	}
}

static void test_overlaps_edges(void **state)
{
	PfExtents e = { 0 };

	assert_false(pf_extents_overlaps(&e, 0, 10));
	assert_int_equal(pf_extents_add(&e, 30, 10), 0);
	assert_int_equal(pf_extents_add(&e, 10, 10), 0); /* [10,20) [30,40), unsorted */

	assert_false(pf_extents_overlaps(&e, 0, 10));  /* ends where the first starts */
	assert_true(pf_extents_overlaps(&e, 0, 11));   /* one byte in */
	assert_true(pf_extents_overlaps(&e, 19, 1));   /* last byte */
	assert_false(pf_extents_overlaps(&e, 20, 10)); /* the gap exactly */
	assert_true(pf_extents_overlaps(&e, 20, 11));
	assert_true(pf_extents_overlaps(&e, 29, 2));
	assert_true(pf_extents_overlaps(&e, 12, 3)); /* inside */
	assert_true(pf_extents_overlaps(&e, 0, 1000));
	assert_false(pf_extents_overlaps(&e, 40, 1));
	assert_true(pf_extents_overlaps(&e, 39, 1));
	assert_false(pf_extents_overlaps(&e, 1000, 5));

	/* An empty range overlaps nothing, even inside a range. */
	assert_false(pf_extents_overlaps(&e, 15, 0));
	assert_false(pf_extents_overlaps(&e, 10, 0));

	/* A query running to the end of the address space. */
	assert_false(pf_extents_overlaps(&e, 41, UINT64_MAX - 41));
	assert_true(pf_extents_overlaps(&e, 39, UINT64_MAX - 39));
	pf_extents_done(&e);

	/* A query whose end would wrap must not wrap around to the start. */
	assert_int_equal(pf_extents_add(&e, UINT64_MAX - 100, 50), 0);
	assert_true(pf_extents_overlaps(&e, UINT64_MAX - 60, 100));
	pf_extents_done(&e);
}

static void test_add_all(void **state)
{
	PfExtents src = { 0 }, e = { 0 };
	static const uint64_t want[] = { 5, 5, 100, 10, 120, 10 };

	assert_int_equal(pf_extents_add(&src, 20, 10), 0);
	assert_int_equal(pf_extents_add(&src, 0, 10), 0);
	pf_extents_normalize(&src);
	assert_int_equal(pf_extents_add(&e, 5, 5), 0);
	assert_int_equal(pf_extents_add_all(&e, &src, 100), 0);
	pf_extents_normalize(&e);
	expect_ranges(&e, 3, want);
	/* src itself is unchanged. */
	assert_int_equal(src.n, 2);
	assert_int_equal(src.items[0].start_bytes, 0);

	/* With offset 0 into an empty set: a copy. */
	pf_extents_done(&e);
	assert_int_equal(pf_extents_add_all(&e, &src, 0), 0);
	assert_int_equal(pf_extents_total(&e), 20);
	assert_true(pf_extents_overlaps(&e, 25, 1));

	/* An offset that pushes a range past 2^64 is an error, not a wrap to 0. */
	pf_extents_done(&e);
	assert_int_equal(pf_extents_add_all(&e, &src, UINT64_MAX - 15), -EOVERFLOW);
	for (size_t i = 0; i < e.n; i++)
		assert_true(e.items[i].start_bytes >= UINT64_MAX - 15);

	pf_extents_done(&e);
	pf_extents_done(&src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_touching_and_overlapping),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_zero_length),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_normalize_random),
		cmocka_unit_test(test_overlaps_edges),
		cmocka_unit_test(test_add_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
