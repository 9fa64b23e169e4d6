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

#include "flash/ranges.h"

#include "test-util.h"

#define MIB_ (1024u * 1024u)

static void test_align_rounds_out_and_merges(void **state)
{
	PfExtents e = { 0 };
	/* 1 byte, a range crossing a block boundary, two ranges in one block, one near the end */
	static const uint64_t want[] = { 0, 512, 1024, 1024, 4096, 512, 9728, 272 };

	assert_int_equal(pf_extents_add(&e, 100, 1), 0);
	assert_int_equal(pf_extents_add(&e, 1500, 100), 0);
	assert_int_equal(pf_extents_add(&e, 4100, 10), 0);
	assert_int_equal(pf_extents_add(&e, 4300, 10), 0);
	assert_int_equal(pf_extents_add(&e, 9999, 1), 0);
	/* The end is clipped to the limit, not rounded past it. */
	assert_int_equal(pf_ranges_align(&e, 512, 10000), 0);
	expect_ranges(&e, 4, want);
	pf_extents_done(&e);
}

static void test_align_merges_neighbours(void **state)
{
	PfExtents e = { 0 };
	static const uint64_t want4k[] = { 0, 8192 };
	static const uint64_t want512[] = { 0, 512, 4096, 512 };

	/* Unordered on purpose: alignment must normalize. */
	assert_int_equal(pf_extents_add(&e, 4100, 1), 0);
	assert_int_equal(pf_extents_add(&e, 10, 1), 0);
	assert_int_equal(pf_ranges_align(&e, 512, UINT64_MAX), 0);
	expect_ranges(&e, 2, want512);
	assert_int_equal(pf_ranges_align(&e, 4096, UINT64_MAX), 0);
	expect_ranges(&e, 1, want4k);
	assert_int_equal(pf_ranges_align(&e, 3000, UINT64_MAX), -EINVAL);
	pf_extents_done(&e);
}

static void test_subtract_and_complement(void **state)
{
	PfExtents a = { 0 }, b = { 0 }, d = { 0 }, c = { 0 };
	static const uint64_t want_d[] = { 10, 10, 30, 10, 100, 50 };
	static const uint64_t want_c[] = { 0, 10, 20, 10, 40, 60, 150, 50 };

	assert_int_equal(pf_extents_add(&a, 0, 40), 0);
	assert_int_equal(pf_extents_add(&a, 100, 50), 0);
	assert_int_equal(pf_extents_add(&b, 0, 10), 0);
	assert_int_equal(pf_extents_add(&b, 20, 10), 0);
	assert_int_equal(pf_extents_add(&b, 150, 10), 0);
	assert_int_equal(pf_ranges_subtract(&a, &b, &d), 0);
	expect_ranges(&d, 3, want_d);
	assert_int_equal(pf_ranges_complement(&d, 200, &c), 0);
	expect_ranges(&c, 4, want_c);
	pf_extents_done(&a);
	pf_extents_done(&b);
	pf_extents_done(&c);
	pf_extents_done(&d);
}

/* An image in a memfd, with an overlay over it. */
static PfOverlay *image(uint8_t *bytes, size_t size, int *ret_fd)
{
	PfOverlay *ov = NULL;
	int fd = memfd_create("ranges", MFD_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(pwrite(fd, bytes, size, 0), (ssize_t)size);
	assert_int_equal(pf_overlay_new(fd, size, &ov), 0);
	*ret_fd = fd;
	return ov;
}

static void put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static void mbr_entry(uint8_t *sec, unsigned i, uint8_t type, uint32_t lba, uint32_t n)
{
	uint8_t *e = sec + 446 + 16 * i;

	e[4] = type;
	put32(e + 8, lba);
	put32(e + 12, n);
	sec[510] = 0x55;
	sec[511] = 0xaa;
}

static void test_table_mbr_with_ebrs(void **state)
{
	size_t size = 4 * MIB_;
	uint8_t *img = calloc(1, size);
	PfExtents e = { 0 };
	PfOverlay *ov;
	int fd;
	/* MBR; EBRs at the extended partition's start (2048) and 4096 further on. */
	static const uint64_t want[] = { 0, 512, 2048 * 512, 512, 6144 * 512, 512 };

	mbr_entry(img, 0, 0x0c, 100, 1000);
	mbr_entry(img, 1, 0x05, 2048, 6000);
	mbr_entry(img + 2048 * 512, 0, 0x83, 1, 100);
	mbr_entry(img + 2048 * 512, 1, 0x05, 4096, 200);
	mbr_entry(img + 6144 * 512, 0, 0x83, 1, 100);
	ov = image(img, size, &fd);
	assert_int_equal(pf_ranges_table(ov, 512, &e), 0);
	pf_extents_normalize(&e);
	expect_ranges(&e, 3, want);
	pf_extents_done(&e);
	pf_overlay_free(ov);
	close(fd);
	free(img);
}

static void test_table_gpt(void **state)
{
	size_t size = 4 * MIB_;
	uint64_t last = size / 512 - 1;
	uint8_t *img = calloc(1, size);
	PfExtents e = { 0 };
	PfOverlay *ov;
	int fd;
	/* MBR + primary header + array (LBA 2..33), backup array (last-32..last-1) + header. */
	static const uint64_t want[] = { 0, 34 * 512, (8191 - 32) * 512, 33 * 512 };

	mbr_entry(img, 0, 0xee, 1, (uint32_t)last);
	memcpy(img + 512, "EFI PART", 8);
	put64(img + 512 + 32, last);
	put64(img + 512 + 72, 2);
	put32(img + 512 + 80, 128);
	put32(img + 512 + 84, 128);
	memcpy(img + last * 512, "EFI PART", 8);
	put64(img + last * 512 + 32, 1);
	put64(img + last * 512 + 72, last - 32);
	put32(img + last * 512 + 80, 128);
	put32(img + last * 512 + 84, 128);
	ov = image(img, size, &fd);
	assert_int_equal(pf_ranges_table(ov, 512, &e), 0);
	pf_extents_normalize(&e);
	expect_ranges(&e, 2, want);
	pf_extents_done(&e);
	pf_overlay_free(ov);
	close(fd);
	free(img);
}

static void test_nonzero_and_overlay(void **state)
{
	size_t size = 2 * MIB_;
	uint8_t *img = calloc(1, size);
	PfExtents e = { 0 };
	PfOverlay *ov;
	int fd;
	static const uint64_t want[] = { 0, 512, 4096, 1024, 1 * MIB_ + 512, 512 };

	img[3] = 1;	     /* sector 0 */
	img[4096 + 511] = 2; /* sector 8 */
	img[4096 + 512] = 3; /* sector 9 */
	ov = image(img, size, &fd);
	/* A change written after the fact counts as well. */
	assert_int_equal(pf_overlay_write(ov, MIB_ + 600, "x", 1), 0);
	assert_int_equal(pf_ranges_nonzero(ov, fd, 0, size, 512, &e), 0);
	pf_extents_normalize(&e);
	expect_ranges(&e, 3, want);
	pf_extents_done(&e);
	pf_overlay_free(ov);
	close(fd);
	free(img);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_align_rounds_out_and_merges),
		cmocka_unit_test(test_align_merges_neighbours),
		cmocka_unit_test(test_subtract_and_complement),
		cmocka_unit_test(test_table_mbr_with_ebrs),
		cmocka_unit_test(test_table_gpt),
		cmocka_unit_test(test_nonzero_and_overlay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
