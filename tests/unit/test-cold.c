/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "flash/cold.h"
#include "util/fileio.h"

/*
 * The writer that follows the decoder, on a file target (its temporary file stands in for the
 * card): a "cache file" filled step by step, sparse, with data in the held first MiB, in the
 * middle and at the end.
 */
#define IMG_BYTES (16u * 1024 * 1024)
#define STEP (1024u * 1024)

static char dir[64];
static uint8_t *img;

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/pf-test-cold-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	img = calloc(1, IMG_BYTES);
	if (!img)
		return -1;
	for (size_t i = 0; i < 64 * 1024; i++)
		img[i] = (uint8_t)(i * 7 + 1);
	for (size_t i = 2 * STEP; i < 2 * STEP + 100000; i++)
		img[i] = (uint8_t)(i * 13 + 5);
	for (size_t i = 9 * STEP; i < 10 * STEP; i++)
		img[i] = (uint8_t)(i * 3 + 2);
	/* The last byte: a partial block at the very end. */
	img[IMG_BYTES - 1] = 0xaa;
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return -1;
	free(img);
	return 0;
}

static PfTarget *open_target(void)
{
	PfTargetOptions o = { .input_fd = -1, .base_fd = -1 };
	PfTarget *t = NULL;
	char path[128];

	snprintf(path, sizeof(path), "%s/card.img", dir);
	assert_int_equal(pf_target_open(path, &o, &t), 0);
	/* A used card: nothing of it is zero. */
	{
		uint8_t *junk = malloc(IMG_BYTES);

		assert_non_null(junk);
		memset(junk, 0x5a, IMG_BYTES);
		assert_int_equal(pf_pwrite_all(pf_target_fd(t), junk, IMG_BYTES, 0), 0);
		free(junk);
	}
	return t;
}

static int open_cache(void)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/cache.img.partial", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	return fd;
}

static void test_follows_decoder(void **state)
{
	_cleanup_(pf_target_freep) PfTarget *t = open_target();
	_cleanup_(pf_extents_done) PfExtents written = { 0 };
	_cleanup_(closep) int fd = open_cache();
	PfColdWriter *w = NULL;
	uint8_t *card = malloc(IMG_BYTES);

	assert_non_null(card);
	assert_int_equal(pf_cold_new(t, IMG_BYTES, &w), 0);
	assert_false(pf_cold_started(w));
	for (uint64_t off = 0; off < IMG_BYTES; off += STEP) {
		assert_int_equal(pf_pwrite_sparse(fd, img + off, STEP, off, 4096, NULL), 0);
		assert_int_equal(pf_cold_decoded(w, fd, off + STEP), 0);
	}
	assert_int_equal(pf_cold_finish(w, &written), 0);
	assert_true(pf_cold_started(w));
	w = pf_cold_free(w);

	/* The data outside the held first MiB, in whole 4 KiB blocks. */
	assert_int_equal(written.n, 3);
	assert_int_equal(written.items[0].start_bytes, 2 * STEP);
	assert_int_equal(written.items[0].length_bytes, 102400);
	assert_int_equal(written.items[1].start_bytes, 9 * STEP);
	assert_int_equal(written.items[1].length_bytes, STEP);
	assert_int_equal(written.items[2].start_bytes, IMG_BYTES - 4096);
	assert_int_equal(written.items[2].length_bytes, 4096);

	assert_int_equal(pread(pf_target_fd(t), card, IMG_BYTES, 0), IMG_BYTES);
	/* The first MiB zeroed, not written: the table comes last, from pf_target_write(). */
	for (size_t i = 0; i < STEP; i++)
		assert_int_equal(card[i], 0);
	for (size_t k = 0; k < written.n; k++)
		assert_memory_equal(card + written.items[k].start_bytes,
				    img + written.items[k].start_bytes,
				    written.items[k].length_bytes);
	/* What was not written is the card's old content. */
	assert_int_equal(card[5 * STEP], 0x5a);
	free(card);
}

/* Before any report, the card is not touched; stopping a writer mid-way is clean. */
static void test_untouched_and_stopped(void **state)
{
	_cleanup_(pf_target_freep) PfTarget *t = open_target();
	_cleanup_(pf_extents_done) PfExtents written = { 0 };
	_cleanup_(closep) int fd = open_cache();
	PfColdWriter *w = NULL;
	uint8_t b = 0;

	assert_int_equal(pf_cold_new(t, IMG_BYTES, &w), 0);
	assert_int_equal(pf_cold_finish(w, &written), 0);
	assert_false(pf_cold_started(w));
	assert_int_equal(written.n, 0);
	w = pf_cold_free(w);
	assert_int_equal(pread(pf_target_fd(t), &b, 1, 0), 1);
	assert_int_equal(b, 0x5a);

	assert_int_equal(pf_cold_new(t, IMG_BYTES, &w), 0);
	assert_int_equal(pf_pwrite_sparse(fd, img, 12 * STEP, 0, 4096, NULL), 0);
	assert_int_equal(pf_cold_decoded(w, fd, 12 * STEP), 0);
	/* Freed while it may be writing: it stops after its chunk. */
	w = pf_cold_free(w);
	assert_null(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follows_decoder),
		cmocka_unit_test(test_untouched_and_stopped),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
