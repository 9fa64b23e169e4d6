/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Tests of the FAT driver on in-memory images made by a small formatter below (so the
 * geometry is exactly what a test needs: FAT12/16/32, 512- or 4096-byte sectors, a tiny
 * root directory). Corrupt volumes are made by poking the boot sector or the FAT through
 * the overlay; they must give an error naming the file, never a crash or a hang. Failed
 * writes must leave every byte of the volume as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "disk/overlay.h"
#include "fs/fat.h"
#include "fs/fs.h"
#include "util/error.h"

#include "test-util.h"

#define T_MTIME 1715065689 /* 2024-05-07 07:08:09 UTC */

typedef struct Img {
	int fd;
	uint64_t size;
	PfOverlay *ov;
	PfVolume vol;
	PfFs *fs;
	PfFatGeometry g;
} Img;

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)v);
	put16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const uint8_t *p)
{
	return get16(p) | (uint32_t)get16(p + 2) << 16;
}

/*
 * Formats img (size bytes) as FAT with bits 12/16/32 the way mkfs.fat lays it out: the
 * caller picks a size whose cluster count matches bits (FAT32 is FATSz16 == 0, whatever
 * the count).
 */
static void mkfat(uint8_t *img, uint64_t size, unsigned bits, unsigned bps, unsigned spc,
		  unsigned root_entries)
{
	uint32_t total = (uint32_t)(size / bps), reserved = bits == 32 ? 32 : 1, fatsz = 1;
	uint32_t root_secs = bits == 32 ? 0 : (root_entries * 32 + bps - 1) / bps, cc;
	uint8_t *b = img;

	for (;;) {
		uint64_t need;

		cc = (total - reserved - 2 * fatsz - root_secs) / spc;
		need = bits == 12 ? ((uint64_t)cc + 2) * 3 / 2 + 1 : ((uint64_t)cc + 2) * bits / 8;
		if ((need + bps - 1) / bps <= fatsz)
			break;
		fatsz = (uint32_t)((need + bps - 1) / bps);
	}
	memset(img, 0, size);
	b[0] = 0xEB;
	b[1] = 0x3C;
	b[2] = 0x90;
	memcpy(b + 3, "PIFLASH ", 8);
	put16(b + 11, (uint16_t)bps);
	b[13] = (uint8_t)spc;
	put16(b + 14, (uint16_t)reserved);
	b[16] = 2;
	put16(b + 17, bits == 32 ? 0 : (uint16_t)root_entries);
	if (total < 65536 && bits != 32)
		put16(b + 19, (uint16_t)total);
	else
		put32(b + 32, total);
	b[21] = 0xF8;
	put16(b + 24, 32);
	put16(b + 26, 64);
	if (bits == 32) {
		put32(b + 36, fatsz);
		put32(b + 44, 2);
		put16(b + 48, 1);
		put16(b + 50, 6);
		b[64] = 0x80;
		b[66] = 0x29;
		memcpy(b + 71, "NO NAME    FAT32   ", 19);
	} else {
		put16(b + 22, (uint16_t)fatsz);
		b[36] = 0x80;
		b[38] = 0x29;
		memcpy(b + 43, bits == 12 ? "NO NAME    FAT12   " : "NO NAME    FAT16   ", 19);
	}
	b[510] = 0x55;
	b[511] = 0xAA;

	for (unsigned i = 0; i < 2; i++) {
		uint8_t *fat = img + ((uint64_t)reserved + (uint64_t)i * fatsz) * bps;

		if (bits == 12) {
			fat[0] = 0xF8;
			fat[1] = 0xFF;
			fat[2] = 0xFF;
		} else if (bits == 16) {
			put16(fat, 0xFFF8);
			put16(fat + 2, 0xFFFF);
		} else {
			put32(fat, 0x0FFFFFF8);
			put32(fat + 4, 0x0FFFFFFF);
			put32(fat + 8, 0x0FFFFFFF); /* the root directory */
		}
	}
	if (bits == 32) {
		uint8_t *fsi = img + bps;

		put32(fsi, 0x41615252);
		put32(fsi + 484, 0x61417272);
		put32(fsi + 488, cc - 1);
		put32(fsi + 492, 2);
		put32(fsi + 508, 0xAA550000);
	}
}

static void img_open_fs(Img *im)
{
	int r = pf_fs_open(&im->vol, "vfat", &im->fs);

	if (r < 0)
		fail_msg("pf_fs_open: %s", pf_error_message(r));
}

static void img_reopen(Img *im)
{
	im->fs = pf_fs_close(im->fs);
	img_open_fs(im);
}

static Img *img_new(uint64_t size, unsigned bits, unsigned bps, unsigned spc, unsigned root_entries)
{
	Img *im = calloc(1, sizeof(*im));
	uint8_t *buf = malloc(size);

	assert_non_null(im);
	assert_non_null(buf);
	mkfat(buf, size, bits, bps, spc, root_entries);
	im->fd = memfd_create("fat", MFD_CLOEXEC);
	assert_true(im->fd >= 0);
	assert_int_equal(pwrite(im->fd, buf, size, 0), (ssize_t)size);
	assert_int_equal(pf_fat_parse_boot(buf, 512, size, &im->g), 0);
	assert_int_equal(im->g.fat_bits, bits);
	free(buf);
	im->size = size;
	assert_int_equal(pf_overlay_new(im->fd, size, &im->ov), 0);
	im->vol = (PfVolume){ .overlay = im->ov, .start_bytes = 0, .size_bytes = size };
	img_open_fs(im);
	return im;
}

static void img_free(Img *im)
{
	pf_fs_close(im->fs);
	pf_overlay_free(im->ov);
	close(im->fd);
	free(im);
}

/* The whole volume as read through the overlay. */
static uint8_t *snapshot(Img *im)
{
	uint8_t *b = malloc(im->size);

	assert_non_null(b);
	assert_int_equal(pf_volume_read(&im->vol, 0, b, im->size), 0);
	return b;
}

static void assert_unchanged(Img *im, const uint8_t *before)
{
	uint8_t *now = snapshot(im);

	assert_memory_equal(now, before, im->size);
	free(now);
}

static uint8_t *pattern(size_t n, unsigned seed)
{
	uint8_t *b = malloc(n ? n : 1);

	assert_non_null(b);
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)((i * 131 + seed * 7 + (i >> 9)) ^ seed);
	return b;
}

static PfAttr attr(mode_t mode)
{
	return (PfAttr){ .mode = mode, .mtime = T_MTIME };
}

static void write_ok(Img *im, const char *path, const void *data, size_t n)
{
	PfAttr a = attr(0644);
	int r = pf_fs_write_file(im->fs, path, data, n, &a);

	if (r < 0)
		fail_msg("write %s: %s", path, pf_error_message(r));
}

static void expect_content(Img *im, const char *path, const void *data, size_t n)
{
	uint8_t *got = NULL;
	size_t got_n = 0;
	int r = pf_fs_read_file(im->fs, path, 0, &got, &got_n);

	if (r < 0)
		fail_msg("read %s: %s", path, pf_error_message(r));
	assert_int_equal(got_n, n);
	assert_memory_equal(got, data, n);
	free(got);
}

static uint64_t used_bytes(Img *im)
{
	PfExtents e = { 0 };
	uint64_t t;

	assert_int_equal(pf_fs_used(im->fs, &e), 0);
	t = pf_extents_total(&e);
	pf_extents_done(&e);
	return t;
}

static uint64_t free_bytes(Img *im)
{
	return im->g.data_offset_bytes + (uint64_t)im->g.cluster_count * im->g.cluster_bytes -
	       used_bytes(im);
}

/* The slots of the root directory (FAT12/16 fixed root or the first FAT32 cluster). */
static uint8_t *root_slots(Img *im, size_t *ret_n)
{
	uint64_t off = im->g.fat_bits == 32 ? im->g.data_offset_bytes : im->g.root_offset_bytes;
	size_t bytes = im->g.fat_bits == 32 ? im->g.cluster_bytes : im->g.root_entries * 32u;
	uint8_t *b = malloc(bytes);

	assert_non_null(b);
	assert_int_equal(pf_volume_read(&im->vol, off, b, bytes), 0);
	*ret_n = bytes / 32;
	return b;
}

/* Finds the short entry named name11 in the root; returns its slot or -1. */
static int find_short(Img *im, const char *name11, uint8_t ret[32])
{
	size_t n;
	uint8_t *b = root_slots(im, &n);
	int found = -1;

	for (size_t i = 0; i < n; i++)
		if (memcmp(b + 32 * i, name11, 11) == 0 && b[32 * i + 11] != 0x0F) {
			memcpy(ret, b + 32 * i, 32);
			found = (int)i;
			break;
		}
	free(b);
	return found;
}

static void poke_fat(Img *im, uint32_t c, uint32_t v)
{
	uint8_t b[4];
	uint64_t off = im->g.fat_offset_bytes;

	assert_int_not_equal(im->g.fat_bits, 12);
	if (im->g.fat_bits == 16) {
		put16(b, (uint16_t)v);
		assert_int_equal(pf_overlay_write(im->ov, off + 2 * c, b, 2), 0);
	} else {
		put32(b, v);
		assert_int_equal(pf_overlay_write(im->ov, off + 4 * c, b, 4), 0);
	}
}

static uint32_t peek_fat(Img *im, uint32_t c)
{
	uint8_t b[4] = { 0 };
	unsigned w = im->g.fat_bits / 8;

	assert_int_equal(pf_overlay_read(im->ov, im->g.fat_offset_bytes + w * c, b, w), 0);
	return w == 2 ? get16(b) : get32(b) & 0x0FFFFFFF;
}

/* ---- names ---- */

static void test_lfn_checksum(void **state)
{
	/* Values from entries mtools 4 wrote. */
	assert_int_equal(pf_fat_lfn_checksum((const uint8_t *)"USER-D~1   "), 0xB0);
	assert_int_equal(pf_fat_lfn_checksum((const uint8_t *)"NETWOR~1   "), 0x47);
	assert_int_equal(pf_fat_lfn_checksum((const uint8_t *)"ALONGF~1TXT"), 0x02);
	assert_int_equal(pf_fat_lfn_checksum((const uint8_t *)"HELLO   TXT"), 0xF1);
}

static void expect_short(const char *name, int fits, const char *name11, uint8_t ncase)
{
	uint8_t out[11];
	uint8_t c = 0xAA;

	assert_int_equal(pf_fat_short_name(name, out, &c), fits);
	if (fits) {
		assert_memory_equal(out, name11, 11);
		assert_int_equal(c, ncase);
	}
}

static void test_short_names(void **state)
{
	expect_short("CONFIG.TXT", 1, "CONFIG  TXT", 0);
	expect_short("config.txt", 1, "CONFIG  TXT", 0x18);
	expect_short("config.TXT", 1, "CONFIG  TXT", 0x08);
	expect_short("CONFIG.txt", 1, "CONFIG  TXT", 0x10);
	expect_short("ssh", 1, "SSH        ", 0x08);
	expect_short("cmdline.txt", 1, "CMDLINE TXT", 0x18);
	expect_short("start4.elf", 1, "START4  ELF", 0x18);
	expect_short("12345678.123", 1, "12345678123", 0);
	expect_short("a$%'-_@~.{}^", 1, "A$%'-_@~{}^", 0x08);
	expect_short("Config.txt", 0, NULL, 0);
	expect_short("User-Data", 0, NULL, 0);
	expect_short("user-data", 0, NULL, 0); /* 9 characters */
	expect_short("meta-data", 0, NULL, 0);
	expect_short("a.b.c", 0, NULL, 0);
	expect_short(".bashrc", 0, NULL, 0);
	expect_short("foo bar", 0, NULL, 0);
	expect_short("a+b", 0, NULL, 0);
	expect_short("a.tars", 0, NULL, 0);
	expect_short("caf\xc3\xa9", 0, NULL, 0);
}

static void expect_alias(const char *name, const char *const *taken, const char *want)
{
	uint8_t(*t)[11] = NULL;
	size_t n = 0;
	uint8_t out[11];

	while (taken && taken[n])
		n++;
	if (n) {
		t = malloc(n * 11);
		for (size_t i = 0; i < n; i++)
			memcpy(t[i], taken[i], 11);
	}
	assert_int_equal(pf_fat_make_alias(name, (const uint8_t(*)[11])t, n, out), 0);
	if (memcmp(out, want, 11) != 0)
		fail_msg("alias of '%s' is '%.11s', expected '%s'", name, out, want);
	free(t);
}

static void test_aliases(void **state)
{
	static const char *const user1[] = { "USER-D~1   ", NULL };
	static const char *const hello[] = { "HELLO   TXT", NULL };
	static const char *const nine[] = { "USER-D~1   ", "USER-D~2   ", "USER-D~3   ",
					    "USER-D~4   ", "USER-D~5   ", "USER-D~6   ",
					    "USER-D~7   ", "USER-D~8   ", "USER-D~9   ",
					    NULL };
	char *many[1002];
	/* 16 bytes: room for the tail and blanks, cut to 11 when compared. */
	uint8_t out[11];

	expect_alias("User-Data", NULL, "USER-D~1   ");
	expect_alias("user-data", user1, "USER-D~2   ");
	expect_alias("network-config", NULL, "NETWOR~1   ");
	expect_alias("A long file name.txt", NULL, "ALONGF~1TXT");
	expect_alias(".bashrc", NULL, "BASHRC~1   ");
	expect_alias("Hello.txt", NULL, "HELLO   TXT"); /* only case lost: no tail */
	expect_alias("Hello.txt", hello, "HELLO~1 TXT");
	expect_alias("a.b.c.d", NULL, "ABC~1   D  ");
	expect_alias("tr\xc3\xa8s.txt", NULL, "TR_S~1  TXT");
	expect_alias("a+b=c;d.html", NULL, "A_B_C_~1HTM");
	expect_alias("x", NULL, "X          "); /* nothing lost: no tail */
	expect_alias("User-Data", nine, "USER-~10   ");

	/* ~10 .. ~999 make the base shorter still, and every alias stays unique. */
	for (unsigned i = 0; i < 1000; i++) {
		many[i] = malloc(16);
		if (i < 9)
			snprintf(many[i], 16, "LONGNA~%u   ", i + 1);
		else if (i < 99)
			snprintf(many[i], 16, "LONGN~%u   ", i + 1);
		else if (i < 999)
			snprintf(many[i], 16, "LONG~%u   ", i + 1);
		else
			snprintf(many[i], 16, "LON~%u   ", i + 1);
	}
	many[1000] = NULL;
	expect_alias("longname-file", (const char *const *)many, "LON~1001   ");
	for (unsigned i = 0; i < 1000; i++)
		free(many[i]);

	/* Every tail taken: -EEXIST, after trying each once. */
	{
		uint8_t(*all)[11] = malloc(999999 * 11);
		char tmp[16];

		assert_non_null(all);
		for (unsigned i = 1; i <= 999999; i++) {
			int tl = snprintf(tmp, sizeof(tmp), "~%u", i);

			memset(all[i - 1], ' ', 11);
			memcpy(all[i - 1], "LONGNAME", (size_t)(8 - tl));
			memcpy(all[i - 1] + 8 - tl, tmp, (size_t)tl);
		}
		assert_int_equal(
			pf_fat_make_alias("longname-file", (const uint8_t(*)[11])all, 999999, out),
			-EEXIST);
		free(all);
	}
	assert_int_equal(pf_fat_make_alias("plain", NULL, 0, out), 0);
}

static void test_check_name(void **state)
{
	char longname[300];

	assert_int_equal(pf_fat_check_name("user-data"), 0);
	assert_int_equal(pf_fat_check_name("caf\xc3\xa9 \xf0\x9f\x8d\x93.txt"), 0);
	assert_int_equal(pf_fat_check_name("a*b"), -EINVAL);
	assert_int_equal(pf_fat_check_name("a?b"), -EINVAL);
	assert_int_equal(pf_fat_check_name("a:b"), -EINVAL);
	assert_int_equal(pf_fat_check_name("a\"b"), -EINVAL);
	assert_int_equal(pf_fat_check_name("a\\b"), -EINVAL);
	assert_int_equal(pf_fat_check_name("a<b>"), -EINVAL);
	assert_int_equal(pf_fat_check_name("a|b"), -EINVAL);
	assert_int_equal(pf_fat_check_name("tab\there"), -EINVAL);
	assert_int_equal(pf_fat_check_name("bad\xff"), -EINVAL);
	assert_int_equal(pf_fat_check_name("\xc0\xaf"), -EINVAL);     /* overlong '/' */
	assert_int_equal(pf_fat_check_name("\xed\xa0\x80"), -EINVAL); /* a surrogate */
	assert_int_equal(pf_fat_check_name("\xe2\x82"), -EINVAL);     /* cut short */
	assert_int_equal(pf_fat_check_name("foo."), -EINVAL);
	assert_int_equal(pf_fat_check_name("foo "), -EINVAL);
	assert_int_equal(pf_fat_check_name("."), -EINVAL);
	assert_int_equal(pf_fat_check_name(".."), -EINVAL);
	assert_int_equal(pf_fat_check_name(""), -EINVAL);
	memset(longname, 'a', 255);
	longname[255] = 0;
	assert_int_equal(pf_fat_check_name(longname), 0);
	memset(longname, 'a', 256);
	longname[256] = 0;
	assert_int_equal(pf_fat_check_name(longname), -ENAMETOOLONG);
}

static void test_time(void **state)
{
	uint16_t d, t;
	uint8_t tenth;

	pf_fat_time_encode(T_MTIME, &d, &t, &tenth);
	assert_int_equal(d, 0x58A7);
	assert_int_equal(t, 0x3904);
	assert_int_equal(tenth, 100);
	assert_int_equal(pf_fat_time_decode(d, t), T_MTIME - 1);

	pf_fat_time_encode(0, &d, &t, &tenth); /* before 1980: clamped */
	assert_int_equal(d, (0 << 9) | (1 << 5) | 1);
	assert_int_equal(t, 0);
	assert_int_equal(pf_fat_time_decode(d, t), 315532800);

	pf_fat_time_encode(INT64_MAX, &d, &t, &tenth); /* after 2107: clamped */
	assert_int_equal(pf_fat_time_decode(d, t), 4354819198);

	/* A zeroed entry (month 0, day 0) decodes to 1980-01-01, not garbage. */
	assert_int_equal(pf_fat_time_decode(0, 0), 315532800);
}

/* ---- boot sector ---- */

/* A corrupt field: up to two (offset, width in bytes, value) pokes into a good sector. */
typedef struct Poke {
	unsigned off, width;
	uint32_t value;
} Poke;

typedef struct BadBoot {
	const char *what;
	bool fat32;
	Poke p[2];
} BadBoot;

static const BadBoot bad_boots[] = {
	{ "bps 0", false, { { 11, 2, 0 } } },
	{ "bps 1000", false, { { 11, 2, 1000 } } },
	{ "bps 8192", false, { { 11, 2, 8192 } } },
	{ "bps 256", false, { { 11, 2, 256 } } },
	{ "spc 0", false, { { 13, 1, 0 } } },
	{ "spc 3", false, { { 13, 1, 3 } } },
	{ "128 KiB clusters", false, { { 11, 2, 4096 }, { 13, 1, 32 } } },
	{ "reserved 0", false, { { 14, 2, 0 } } },
	{ "0 FATs", false, { { 16, 1, 0 } } },
	{ "3 FATs", false, { { 16, 1, 3 } } },
	{ "0 sectors", false, { { 19, 2, 0 }, { 32, 4, 0 } } },
	{ "no root entries", false, { { 17, 2, 0 } } },
	{ "FAT past the end", false, { { 22, 2, 0xFFFF } } },
	{ "FAT too small", false, { { 22, 2, 1 } } },
	{ "reserved past the end", false, { { 14, 2, 0xFFFF } } },
	{ "root past the end", false, { { 17, 2, 0xFFF0 }, { 19, 2, 4000 } } },
	{ "volume past the partition", false, { { 19, 2, 0 }, { 32, 4, 0xFFFFFFF0 } } },
	{ "FAT32 with root entries", true, { { 17, 2, 512 } } },
	{ "FAT32 FAT size 0", true, { { 36, 4, 0 } } },
	{ "FAT32 root cluster 0", true, { { 44, 4, 0 } } },
	{ "FAT32 root cluster too big", true, { { 44, 4, 0x0FFFFFF0 } } },
	{ "FAT32 active FAT 5 of 2", true, { { 40, 2, 0x80 | 5 } } },
};

static void expect_bad_boot(const uint8_t *good, uint64_t part, const BadBoot *bad)
{
	uint8_t b[512];
	PfFatGeometry g;
	int r;

	memcpy(b, good, sizeof(b));
	for (unsigned i = 0; i < 2; i++) {
		const Poke *p = &bad->p[i];

		if (p->width == 1)
			b[p->off] = (uint8_t)p->value;
		else if (p->width == 2)
			put16(b + p->off, (uint16_t)p->value);
		else if (p->width == 4)
			put32(b + p->off, p->value);
	}
	r = pf_fat_parse_boot(b, sizeof(b), part, &g);
	if (r != -EUCLEAN)
		fail_msg("corrupt boot sector (%s) gave %d", bad->what, r);
	assert_non_null(strstr(pf_error_message(r), "FAT"));
}

static void test_boot_sector(void **state)
{
	uint8_t *img16 = malloc(16 * 1024 * 1024), *img32 = malloc(8 * 1024 * 1024);
	PfFatGeometry g;
	uint8_t b[512];

	mkfat(img16, 16 * 1024 * 1024, 16, 512, 4, 512);
	mkfat(img32, 8 * 1024 * 1024, 32, 512, 1, 0);

	assert_int_equal(pf_fat_parse_boot(img16, 512, 16 * 1024 * 1024, &g), 0);
	assert_int_equal(g.fat_bits, 16);
	assert_int_equal(pf_fat_parse_boot(img32, 512, 8 * 1024 * 1024, &g), 0);
	/* FAT32 with far fewer than 65525 clusters: Linux and mtools say FAT32. */
	assert_int_equal(g.fat_bits, 32);
	assert_true(g.cluster_count < 65525);
	assert_int_equal(pf_fat_parse_boot(img16, 100, 16 * 1024 * 1024, &g), -EUCLEAN);

	/* The partition smaller than the volume: a truncated image. */
	assert_int_equal(pf_fat_parse_boot(img16, 512, 16 * 1024 * 1024 - 512, &g), -EUCLEAN);
	assert_non_null(strstr(pf_error_message(-EUCLEAN), "truncated"));

	for (size_t i = 0; i < sizeof(bad_boots) / sizeof(bad_boots[0]); i++) {
		if (bad_boots[i].fat32)
			expect_bad_boot(img32, 8 << 20, &bad_boots[i]);
		else
			expect_bad_boot(img16, 16 << 20, &bad_boots[i]);
	}

	/* FAT12 below 4085 clusters, FAT16 from there: reserved 1, 2 FATs of 16 sectors,
	 * 512 root entries (32 sectors), 1 sector per cluster. */
	memcpy(b, img16, sizeof(b));
	b[13] = 1;
	put16(b + 14, 1);
	put16(b + 22, 16);
	put16(b + 19, 1 + 32 + 32 + 4084);
	assert_int_equal(pf_fat_parse_boot(b, 512, 16 << 20, &g), 0);
	assert_int_equal(g.cluster_count, 4084);
	assert_int_equal(g.fat_bits, 12);
	put16(b + 19, 1 + 32 + 32 + 4085);
	assert_int_equal(pf_fat_parse_boot(b, 512, 16 << 20, &g), 0);
	assert_int_equal(g.fat_bits, 16);
	/* 65525 clusters cannot be FAT16. */
	put16(b + 19, 0);
	put16(b + 22, 256);
	put32(b + 32, 1 + 512 + 32 + 65525);
	assert_int_equal(pf_fat_parse_boot(b, 512, 64 << 20, &g), -EUCLEAN);

	free(img16);
	free(img32);
}

/* ---- round trips ---- */

typedef struct Geo {
	uint64_t size;
	unsigned bits, bps, spc, root;
} Geo;

static const Geo geo_fat12 = { 2 << 20, 12, 512, 4, 512 };
static const Geo geo_fat16 = { 16 << 20, 16, 512, 4, 512 };
static const Geo geo_fat32 = { 8 << 20, 32, 512, 1, 0 };
static const Geo geo_fat32_4k = { 16 << 20, 32, 4096, 1, 0 };
static const Geo geo_fat12_4k = { 4 << 20, 12, 4096, 1, 512 };

static Img *img_geo(const Geo *g)
{
	return img_new(g->size, g->bits, g->bps, g->spc, g->root);
}

static void test_roundtrip(void **state)
{
	const Geo *geo = *state;
	Img *im = img_geo(geo);
	uint64_t used0 = used_bytes(im);
	uint8_t *big = pattern(30000, 1), *small = pattern(100, 2), *mid = pattern(10000, 3);
	PfAttr a = attr(0644), ro = attr(0444);
	PfDirent *d;
	size_t n;
	PfStat st;
	uint8_t sde[32];
	char *t;

	/* A lower-case 8.3 name is stored upper case with the case byte, without LFN. */
	write_ok(im, "/config.txt", "hello\n", 6);
	assert_true(find_short(im, "CONFIG  TXT", sde) >= 0);
	assert_int_equal(sde[12], 0x18);
	assert_int_equal(sde[11], 0x20);
	write_ok(im, "/SSH", "", 0);
	assert_true(find_short(im, "SSH        ", sde) >= 0);
	assert_int_equal(sde[12], 0);
	{
		size_t ns;
		uint8_t *slots = root_slots(im, &ns);

		/* Two entries, two slots: neither has a long entry. */
		assert_int_not_equal(slots[11], 0x0F);
		assert_int_not_equal(slots[32 + 11], 0x0F);
		assert_int_equal(slots[64], 0);
		free(slots);
	}

	/* Mixed case gets a long name and an alias. */
	write_ok(im, "/User-Data", mid, 10000);
	assert_true(find_short(im, "USER-D~1   ", sde) >= 0);
	expect_content(im, "/User-Data", mid, 10000);
	expect_content(im, "/user-data", mid, 10000);
	expect_content(im, "/USER-D~1", mid, 10000);
	expect_content(im, "/CONFIG.TXT", "hello\n", 6);

	assert_int_equal(pf_fs_list(im->fs, "/", &d, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(d[0].name, "config.txt");
	assert_string_equal(d[1].name, "SSH");
	assert_string_equal(d[2].name, "User-Data");
	assert_int_equal(d[2].st.size_bytes, 10000);
	assert_int_equal(d[2].st.mode, S_IFREG | 0755);
	assert_int_equal(d[2].st.uid, 0);
	assert_int_equal(d[2].st.mtime, T_MTIME - 1);
	pf_dirents_free(d, n);

	/* Replace larger, then smaller: the name stays, the chain follows. */
	write_ok(im, "/user-data", big, 30000);
	expect_content(im, "/User-Data", big, 30000);
	write_ok(im, "/USER-DATA", small, 100);
	expect_content(im, "/User-Data", small, 100);
	assert_int_equal(pf_fs_list(im->fs, "/", &d, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(d[2].name, "User-Data");
	pf_dirents_free(d, n);

	/* Read-only from a mode without write bits. */
	assert_int_equal(pf_fs_write_file(im->fs, "/ro.txt", "x", 1, &ro), 0);
	assert_int_equal(pf_fs_stat(im->fs, "/ro.txt", &st), 0);
	assert_int_equal(st.mode, S_IFREG | 0555);

	/* Deep directories, ".." of a directory in the root is cluster 0. */
	assert_int_equal(pf_fs_mkdir_p(im->fs, "/a/b/c/d/e", &a), 0);
	write_ok(im, "/a/b/c/d/e/A long file name.txt", big, 30000);
	expect_content(im, "/a/B/c/D/e/a LONG file name.TXT", big, 30000);
	assert_int_equal(pf_fs_stat(im->fs, "/a/b", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_int_equal(st.mode & 0777, 0755);
	assert_int_equal(pf_fs_stat(im->fs, "/", &st), 0);
	assert_true(S_ISDIR(st.mode));
	assert_true(find_short(im, "A          ", sde) >= 0);
	{
		uint32_t cl =
			get16(sde + 26) | (geo->bits == 32 ? (uint32_t)get16(sde + 20) << 16 : 0);
		uint8_t dots[64];

		assert_int_equal(pf_volume_read(&im->vol,
						im->g.data_offset_bytes +
							(uint64_t)(cl - 2) * im->g.cluster_bytes,
						dots, sizeof(dots)),
				 0);
		assert_memory_equal(dots, ".          ", 11);
		assert_memory_equal(dots + 32, "..         ", 11);
		assert_int_equal(get16(dots + 26), cl & 0xFFFF);
		assert_int_equal(get16(dots + 32 + 26), 0);
		assert_int_equal(get16(dots + 32 + 20), 0);
	}

	/* Errors. */
	check_err(pf_fs_mkdir(im->fs, "/a", &a), -EEXIST, NULL);
	check_err(pf_fs_mkdir(im->fs, "/", &a), -EEXIST, NULL);
	check_err(pf_fs_write_file(im->fs, "/a", "x", 1, &a), -EISDIR, NULL);
	check_err(pf_fs_write_file(im->fs, "/nope/x", "x", 1, &a), -ENOENT, "nope", NULL);
	check_err(pf_fs_write_file(im->fs, "/config.txt/x", "x", 1, &a), -ENOTDIR, NULL);
	check_err(pf_fs_write_file(im->fs, "/a*b", "x", 1, &a), -EINVAL, NULL);
	check_err(pf_fs_write_file(im->fs, "/bad\xff", "x", 1, &a), -EINVAL, "UTF-8", NULL);
	check_err(pf_fs_write_file(im->fs, "/trailing.", "x", 1, &a), -EINVAL, NULL);
	check_err(pf_fs_read_file(im->fs, "/a", 0, (uint8_t **)&t, &n), -EISDIR, NULL);
	check_err(pf_fs_read_file(im->fs, "/missing", 0, (uint8_t **)&t, &n), -ENOENT, NULL);
	check_err(pf_fs_read_file(im->fs, "/User-Data", 10, (uint8_t **)&t, &n), -EFBIG, NULL);
	check_err(pf_fs_stat(im->fs, "/missing", &st), -ENOENT, NULL);
	check_err(pf_fs_list(im->fs, "/config.txt", &d, &n), -ENOTDIR, NULL);
	check_err(pf_fs_symlink(im->fs, "/link", "/target", &a), -EPERM, NULL);
	check_err(pf_fs_readlink(im->fs, "/config.txt", &t), -EINVAL, NULL);
	check_err(pf_fs_remove(im->fs, "/a"), -ENOTEMPTY, NULL);
	check_err(pf_fs_remove(im->fs, "/missing"), -ENOENT, NULL);

	/* Everything back out: the volume uses what it used at the start. */
	assert_int_equal(pf_fs_remove(im->fs, "/a/b/c/d/e/a long file name.txt"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/a/b/c/d/e"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/a/b/c/d"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/a/b/c"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/a/b"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/a"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/user-data"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/config.txt"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/ssh"), 0);
	assert_int_equal(pf_fs_remove(im->fs, "/ro.txt"), 0);
	assert_int_equal(pf_fs_list(im->fs, "/", &d, &n), 0);
	assert_int_equal(n, 0);
	free(d);
	assert_int_equal(used_bytes(im), used0);

	/* What was written survives a reopen (the FAT cache was written back). */
	write_ok(im, "/after-reopen.bin", big, 30000);
	assert_int_equal(pf_fs_sync(im->fs), 0);
	img_reopen(im);
	expect_content(im, "/after-reopen.bin", big, 30000);

	free(big);
	free(small);
	free(mid);
	img_free(im);
}

/* Enough long names to grow a directory by several clusters; in the root on FAT32. */
static void grow_dir(Img *im, const char *dir, unsigned count)
{
	char path[256];
	PfDirent *d;
	size_t n;

	for (unsigned i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/File number %03u.txt", dir, i);
		write_ok(im, path, path, strlen(path));
	}
	img_reopen(im);
	for (unsigned i = 0; i < count; i++) {
		snprintf(path, sizeof(path), "%s/File number %03u.txt", dir, i);
		expect_content(im, path, path, strlen(path));
	}
	assert_int_equal(pf_fs_list(im->fs, *dir ? dir : "/", &d, &n), 0);
	assert_true(n >= count);
	for (unsigned i = 0, j = 0; i < count; i++, j++) {
		snprintf(path, sizeof(path), "File number %03u.txt", i);
		if (strncmp(d[j].name, "File", 4) != 0) /* the root's "sub" */
			j++;
		assert_string_equal(d[j].name, path);
	}
	pf_dirents_free(d, n);
	/* Aliases are unique and in order: a lookup by alias finds its own file. */
	snprintf(path, sizeof(path), "%s/File number 000.txt", dir);
	{
		char alias[64];

		snprintf(alias, sizeof(alias), "%s/FILENU~1.TXT", dir);
		expect_content(im, alias, path, strlen(path));
		snprintf(alias, sizeof(alias), "%s/filen~10.txt", dir);
		snprintf(path, sizeof(path), "%s/File number 009.txt", dir);
		expect_content(im, alias, path, strlen(path));
		snprintf(alias, sizeof(alias), "%s/FILE~100.TXT", dir);
		snprintf(path, sizeof(path), "%s/File number 099.txt", dir);
		expect_content(im, alias, path, strlen(path));
	}
}

static void test_grow_dirs(void **state)
{
	const Geo *geo = *state;
	Img *im = img_geo(geo);
	PfAttr a = attr(0755);

	assert_int_equal(pf_fs_mkdir(im->fs, "/sub", &a), 0);
	grow_dir(im, "/sub", 200);
	if (geo->bits == 32)
		grow_dir(im, "", 200);
	img_free(im);
}

/* ---- full volume, full root ---- */

static void test_enospc_volume(void **state)
{
	const Geo *geo = *state;
	Img *im = img_geo(geo);
	PfAttr a = attr(0644);
	uint64_t room;
	uint8_t *data, *before;

	write_ok(im, "/small", "x", 1);
	room = free_bytes(im);
	data = pattern(room + 1, 4);

	before = snapshot(im);
	check_err(pf_fs_write_file(im->fs, "/big.bin", data, room + 1, &a), -ENOSPC, "big.bin",
		  NULL);
	assert_unchanged(im, before);
	/* Replacing a file with one that does not fit fails and keeps the old one. */
	check_err(pf_fs_write_file(im->fs, "/small", data, room + 1 + im->g.cluster_bytes, &a),
		  -ENOSPC, NULL);
	assert_unchanged(im, before);
	expect_content(im, "/small", "x", 1);
	free(before);

	/* Exactly full works; then nothing more fits, not even a directory. */
	write_ok(im, "/big.bin", data, room);
	assert_int_equal(free_bytes(im), 0);
	before = snapshot(im);
	check_err(pf_fs_write_file(im->fs, "/one", "x", 1, &a), -ENOSPC, NULL);
	check_err(pf_fs_mkdir(im->fs, "/dir", &a), -ENOSPC, NULL);
	assert_unchanged(im, before);
	/* An empty file needs no cluster, and replacing in place reuses the old chain. */
	write_ok(im, "/empty", "", 0);
	write_ok(im, "/big.bin", data + 1, room);
	expect_content(im, "/big.bin", data + 1, room);
	free(before);

	img_reopen(im);
	expect_content(im, "/big.bin", data + 1, room);
	assert_int_equal(pf_fs_remove(im->fs, "/big.bin"), 0);
	assert_int_equal(free_bytes(im), room);
	free(data);
	img_free(im);
}

static void test_enospc_root(void **state)
{
	/* FAT16 with a 16-entry root directory. */
	Img *im = img_new(16 << 20, 16, 512, 4, 16);
	PfAttr a = attr(0644);
	char path[32];
	uint8_t *before;

	for (unsigned i = 0; i < 14; i++) {
		snprintf(path, sizeof(path), "/F%u", i);
		write_ok(im, path, "x", 1);
	}
	before = snapshot(im);
	/* A name of 14 to 26 characters needs 3 slots, 2 are left. */
	check_err(pf_fs_write_file(im->fs, "/A much longer name", "x", 1, &a), -ENOSPC, "root",
		  NULL);
	check_err(pf_fs_mkdir(im->fs, "/Long Directory", &a), -ENOSPC, "root", NULL);
	assert_unchanged(im, before);
	free(before);
	write_ok(im, "/F14", "x", 1);
	write_ok(im, "/F15", "x", 1);
	before = snapshot(im);
	check_err(pf_fs_write_file(im->fs, "/F16", "x", 1, &a), -ENOSPC, "root", NULL);
	assert_unchanged(im, before);
	free(before);
	/* A freed slot is reused. */
	assert_int_equal(pf_fs_remove(im->fs, "/F3"), 0);
	write_ok(im, "/F16", "y", 1);
	expect_content(im, "/F16", "y", 1);
	img_free(im);
}

/* ---- corruption ---- */

/* FAT16, 2 KiB clusters: /user-data takes clusters 2..6, /b 7..8. */
static Img *corrupt_setup(uint8_t **ret_data)
{
	Img *im = img_new(16 << 20, 16, 512, 4, 512);
	uint8_t *data = pattern(10000, 5);
	uint8_t sde[32];

	write_ok(im, "/user-data", data, 10000);
	write_ok(im, "/b", data, 4000);
	assert_true(find_short(im, "USER-D~1   ", sde) >= 0);
	assert_int_equal(get16(sde + 26), 2);
	assert_int_equal(peek_fat(im, 6), 0xFFFF);
	assert_int_equal(peek_fat(im, 8), 0xFFFF);
	*ret_data = data;
	return im;
}

static void expect_corrupt_everywhere(Img *im, const char *path, const char *what)
{
	PfAttr a = attr(0644);
	uint8_t *got, *before;
	size_t n;

	img_reopen(im);
	before = snapshot(im);
	check_err(pf_fs_read_file(im->fs, path, 0, &got, &n), -EUCLEAN, path, what, NULL);
	check_err(pf_fs_write_file(im->fs, path, "x", 1, &a), -EUCLEAN, path, what, NULL);
	check_err(pf_fs_remove(im->fs, path), -EUCLEAN, path, what, NULL);
	assert_unchanged(im, before);
	free(before);
}

static void test_corrupt_chains(void **state)
{
	uint8_t *data, *got;
	size_t n;
	Img *im;

	im = corrupt_setup(&data);
	poke_fat(im, 6, 3);
	expect_corrupt_everywhere(im, "/user-data", "loops at cluster 3");
	/* The other file is fine. */
	expect_content(im, "/b", data, 4000);
	img_free(im);
	free(data);

	im = corrupt_setup(&data);
	poke_fat(im, 4, 4); /* a cluster pointing at itself */
	expect_corrupt_everywhere(im, "/user-data", "loops at cluster 4");
	img_free(im);
	free(data);

	im = corrupt_setup(&data);
	poke_fat(im, 4, 60000);
	expect_corrupt_everywhere(im, "/user-data", "leaves the data area");
	img_free(im);
	free(data);

	im = corrupt_setup(&data);
	poke_fat(im, 4, 1);
	expect_corrupt_everywhere(im, "/user-data", "leaves the data area");
	img_free(im);
	free(data);

	im = corrupt_setup(&data);
	poke_fat(im, 4, 0);
	expect_corrupt_everywhere(im, "/user-data", "free");
	img_free(im);
	free(data);

	im = corrupt_setup(&data);
	poke_fat(im, 4, 0xFFF7);
	expect_corrupt_everywhere(im, "/user-data", "bad");
	img_free(im);
	free(data);

	/* A chain shorter than the size is an error on read. */
	im = corrupt_setup(&data);
	poke_fat(im, 3, 0xFFFF);
	img_reopen(im);
	check_err(pf_fs_read_file(im->fs, "/user-data", 0, &got, &n), -EUCLEAN, "/user-data",
		  "shorter", NULL);
	img_free(im);
	free(data);

	/* Two chains merging: both files are cross-linked. */
	im = corrupt_setup(&data);
	poke_fat(im, 8, 4);
	expect_corrupt_everywhere(im, "/user-data", "cross-linked");
	expect_corrupt_everywhere(im, "/b", "cross-linked");
	img_free(im);
	free(data);

	/* A chain running into the first cluster of another file. */
	im = corrupt_setup(&data);
	poke_fat(im, 8, 2);
	expect_corrupt_everywhere(im, "/user-data", "cross-linked");
	img_free(im);
	free(data);
}

/* Points the short entry name11 of the root at cluster c (FAT16 or FAT32). */
static void poke_root_cluster(Img *im, const char *name11, uint32_t c)
{
	uint64_t root = im->g.fat_bits == 32 ? im->g.data_offset_bytes : im->g.root_offset_bytes;
	uint8_t sde[32];
	int slot = find_short(im, name11, sde);

	assert_true(slot >= 0);
	put16(sde + 26, (uint16_t)c);
	if (im->g.fat_bits == 32)
		put16(sde + 20, (uint16_t)(c >> 16));
	assert_int_equal(pf_overlay_write(im->ov, root + 32u * (unsigned)slot, sde, 32), 0);
}

/* fsck.fat -n on the volume as the overlay has it; returns its exit status, output in out.
 * The copy is always called vol.img, so that outputs can be compared. */
static int fsck_fat(Img *im, char *out, size_t out_size)
{
	char dir[] = "/tmp/pf-test-fat-XXXXXX", path[64], cmd[160];
	uint8_t *b = snapshot(im);
	size_t got;
	FILE *p;
	int fd, st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vol.img", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, b, im->size, 0), (ssize_t)im->size);
	close(fd);
	free(b);
	snprintf(cmd, sizeof(cmd), "cd '%s' && fsck.fat -n vol.img 2>&1", dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	got = fread(out, 1, out_size - 1, p);
	out[got] = 0;
	st = pclose(p);
	unlink(path);
	rmdir(dir);
	return st;
}

/* Every kind of write, refused with a detail containing s1 and s2; nothing changes. */
static void expect_writes_refused(Img *im, const char *s1, const char *s2)
{
	PfAttr a = attr(0644), ad = attr(0755);
	uint8_t *before = snapshot(im);

	check_err(pf_fs_write_file(im->fs, "/file", "new", 3, &a), -EUCLEAN, s1, s2, NULL);
	check_err(pf_fs_write_file(im->fs, "/elsewhere", "x", 1, &a), -EUCLEAN, s1, s2, NULL);
	check_err(pf_fs_mkdir(im->fs, "/newdir", &ad), -EUCLEAN, s1, s2, NULL);
	check_err(pf_fs_remove(im->fs, "/file"), -EUCLEAN, s1, s2, NULL);
	check_err(pf_fs_remove(im->fs, "/dir/inner"), -EUCLEAN, s1, s2, NULL);
	assert_int_equal(pf_fs_sync(im->fs), 0);
	assert_unchanged(im, before);
	free(before);
}

/*
 * Two directory entries starting at the same cluster: a file and a directory. The FAT
 * links alone do not show it; writing the file would free the directory's cluster and
 * reuse it, emptying the directory. Every write to such a volume is refused, naming both
 * paths and the cluster; reads still work. fsck.fat -n agrees that the volume is broken,
 * and says the same after the refused writes.
 */
static void test_cross_linked_entries(void **state)
{
	const Geo *geo = *state;
	Img *im = img_geo(geo);
	PfAttr ad = attr(0755);
	char fsck_before[4096], fsck_after[4096], want[64];
	uint8_t sde[32];
	uint32_t dir_cl;
	PfDirent *d;
	size_t n;
	int st;

	assert_int_equal(pf_fs_mkdir(im->fs, "/dir", &ad), 0);
	write_ok(im, "/dir/inner", "inner", 5);
	write_ok(im, "/file", "file", 4);
	assert_true(find_short(im, "DIR        ", sde) >= 0);
	dir_cl = get16(sde + 26) | (im->g.fat_bits == 32 ? (uint32_t)get16(sde + 20) << 16 : 0);
	poke_root_cluster(im, "FILE       ", dir_cl);
	img_reopen(im);

	st = fsck_fat(im, fsck_before, sizeof(fsck_before));
	assert_int_not_equal(st, 0);
	snprintf(want, sizeof(want), "cluster %u", dir_cl);
	expect_writes_refused(im, "'/dir' and '/file' are cross-linked", want);
	st = fsck_fat(im, fsck_after, sizeof(fsck_after));
	assert_string_equal(fsck_after, fsck_before);

	/* Reads still work: the directory lists its file, which reads back. */
	assert_int_equal(pf_fs_list(im->fs, "/dir", &d, &n), 0);
	assert_int_equal(n, 1);
	pf_dirents_free(d, n);
	expect_content(im, "/dir/inner", "inner", 5);
	img_free(im);

	/* Two files. */
	im = img_geo(geo);
	assert_int_equal(pf_fs_mkdir(im->fs, "/dir", &ad), 0);
	write_ok(im, "/dir/inner", "inner", 5);
	write_ok(im, "/file", "file", 4);
	write_ok(im, "/other", "other", 5);
	assert_true(find_short(im, "OTHER      ", sde) >= 0);
	poke_root_cluster(im, "FILE       ",
			  get16(sde + 26) |
				  (im->g.fat_bits == 32 ? (uint32_t)get16(sde + 20) << 16 : 0));
	img_reopen(im);
	expect_writes_refused(im, "'/file' and '/other' are cross-linked", NULL);
	img_free(im);

	/* A subdirectory entry pointing back at its parent: a loop as well as a cross-link. */
	im = img_geo(geo);
	assert_int_equal(pf_fs_mkdir(im->fs, "/dir", &ad), 0);
	write_ok(im, "/dir/inner", "inner", 5);
	write_ok(im, "/file", "file", 4);
	assert_int_equal(pf_fs_mkdir(im->fs, "/dir/sub", &ad), 0);
	{
		/* /dir/sub's entry is in /dir's first cluster, after ".", ".." and inner. */
		uint64_t at =
			im->g.data_offset_bytes + (uint64_t)(dir_cl - 2) * im->g.cluster_bytes;
		uint8_t b[32 * 8];

		assert_int_equal(pf_volume_read(&im->vol, at, b, sizeof(b)), 0);
		for (unsigned i = 0; i < 8; i++)
			if (memcmp(b + 32 * i, "SUB        ", 11) == 0) {
				put16(b + 32 * i + 26, (uint16_t)dir_cl);
				put16(b + 32 * i + 20, (uint16_t)(dir_cl >> 16));
			}
		assert_int_equal(pf_overlay_write(im->ov, at, b, sizeof(b)), 0);
	}
	img_reopen(im);
	expect_writes_refused(im, "'/dir' and '/dir/sub' are cross-linked", NULL);
	img_free(im);

	/* A chain running into the middle of another entry's chain: the FAT alone shows it
	 * only when one of the two is walked, but a write elsewhere is refused as well. */
	if (geo->bits != 12) {
		uint8_t *big;
		uint32_t big_cl, small_cl;

		im = img_geo(geo);
		big = pattern(3 * im->g.cluster_bytes, 3);
		write_ok(im, "/big", big, 3 * im->g.cluster_bytes);
		write_ok(im, "/small", "small", 5);
		write_ok(im, "/file", "file", 4);
		assert_true(find_short(im, "BIG        ", sde) >= 0);
		big_cl = get16(sde + 26) | (uint32_t)get16(sde + 20) << 16;
		assert_true(find_short(im, "SMALL      ", sde) >= 0);
		small_cl = get16(sde + 26) | (uint32_t)get16(sde + 20) << 16;
		poke_fat(im, small_cl, big_cl + 1);
		img_reopen(im);
		snprintf(want, sizeof(want), "cross-linked at cluster %u", big_cl + 1);
		expect_writes_refused(im, "'/big' and '/small'", want);
		expect_content(im, "/file", "file", 4); /* the two crossed are refused reading */
		free(big);
		img_free(im);
	}

	/* FAT32: an entry starting at the root directory's cluster. */
	if (geo->bits == 32) {
		im = img_geo(geo);
		assert_int_equal(pf_fs_mkdir(im->fs, "/dir", &ad), 0);
		write_ok(im, "/dir/inner", "inner", 5);
		write_ok(im, "/file", "file", 4);
		poke_root_cluster(im, "FILE       ", im->g.root_cluster);
		img_reopen(im);
		expect_writes_refused(im, "'/' and '/file' are cross-linked", NULL);
		img_free(im);
	}
}

static void test_corrupt_dirs(void **state)
{
	Img *im = img_new(16 << 20, 16, 512, 4, 512);
	PfAttr a = attr(0755);
	uint8_t sde[32];
	PfDirent *d;
	size_t n;
	PfStat st;
	uint32_t cl;

	assert_int_equal(pf_fs_mkdir(im->fs, "/dir", &a), 0);
	write_ok(im, "/dir/file", "x", 1);
	assert_true(find_short(im, "DIR        ", sde) >= 0);
	cl = get16(sde + 26);
	poke_fat(im, cl, cl); /* the directory's chain loops on itself */
	img_reopen(im);
	check_err(pf_fs_list(im->fs, "/dir", &d, &n), -EUCLEAN, "/dir", "loops", NULL);
	check_err(pf_fs_stat(im->fs, "/dir/file", &st), -EUCLEAN, "/dir", "loops", NULL);
	check_err(pf_fs_write_file(im->fs, "/dir/new", "x", 1, &a), -EUCLEAN, "/dir", NULL);
	/* The root is still fine. */
	assert_int_equal(pf_fs_list(im->fs, "/", &d, &n), 0);
	assert_int_equal(n, 1);
	pf_dirents_free(d, n);
	img_free(im);
}

static void test_truncated_partition(void **state)
{
	Img *im = img_new(16 << 20, 16, 512, 4, 512);
	PfVolume v = im->vol;
	PfFs *fs = NULL;

	v.size_bytes -= 4096;
	check_err(pf_fs_open(&v, "vfat", &fs), -EUCLEAN, "truncated", NULL);
	assert_null(fs);
	v.size_bytes = 100;
	assert_true(pf_fs_open(&v, "vfat", &fs) < 0);
	img_free(im);
}

static void test_dirty(void **state)
{
	Img *im = img_new(16 << 20, 16, 512, 4, 512);
	PfAttr a = attr(0644);
	uint8_t *got, *before, state_byte;
	size_t n;

	write_ok(im, "/file", "data", 4);
	assert_int_equal(pf_fat_probe_dirty(&im->vol), 0);

	/* FAT16 entry 1, bit 15 clear: not cleanly unmounted. Reads work, writes do not. */
	poke_fat(im, 1, 0x7FFF);
	img_reopen(im);
	assert_int_equal(pf_fat_probe_dirty(&im->vol), 1);
	assert_non_null(strstr(pf_error_message(-EUCLEAN), "dirty"));
	assert_int_equal(pf_fs_read_file(im->fs, "/file", 0, &got, &n), 0);
	free(got);
	before = snapshot(im);
	check_err(pf_fs_write_file(im->fs, "/file", "x", 1, &a), -EUCLEAN, "fsck.fat", NULL);
	check_err(pf_fs_mkdir(im->fs, "/d", &a), -EUCLEAN, "fsck.fat", NULL);
	check_err(pf_fs_remove(im->fs, "/file"), -EUCLEAN, "fsck.fat", NULL);
	assert_int_equal(pf_fs_sync(im->fs), 0);
	assert_unchanged(im, before);
	free(before);

	/* Bit 14 clear: disk errors. */
	poke_fat(im, 1, 0xBFFF);
	assert_int_equal(pf_fat_probe_dirty(&im->vol), 1);
	assert_non_null(strstr(pf_error_message(-EUCLEAN), "error"));

	/* The boot sector's state byte. */
	poke_fat(im, 1, 0xFFFF);
	assert_int_equal(pf_fat_probe_dirty(&im->vol), 0);
	state_byte = 1;
	assert_int_equal(pf_overlay_write(im->ov, 37, &state_byte, 1), 0);
	assert_int_equal(pf_fat_probe_dirty(&im->vol), 1);
	img_free(im);

	/* FAT32 entry 1 bit 27. */
	im = img_new(8 << 20, 32, 512, 1, 0);
	assert_int_equal(pf_fat_probe_dirty(&im->vol), 0);
	poke_fat(im, 1, 0x07FFFFFF);
	img_reopen(im);
	assert_int_equal(pf_fat_probe_dirty(&im->vol), 1);
	check_err(pf_fs_write_file(im->fs, "/file", "x", 1, &a), -EUCLEAN, "fsck.fat", NULL);
	img_free(im);
}

static void test_fat32_fsinfo(void **state)
{
	Img *im = img_new(8 << 20, 32, 512, 1, 0);
	uint8_t *data = pattern(5000, 6), fsi[512];
	uint32_t cc = im->g.cluster_count;

	write_ok(im, "/x.bin", data, 5000); /* 10 clusters */
	assert_int_equal(pf_fs_sync(im->fs), 0);
	assert_int_equal(pf_volume_read(&im->vol, 512, fsi, sizeof(fsi)), 0);
	assert_int_equal(get32(fsi + 488), cc - 1 - 10);
	assert_int_equal(get32(fsi + 492), 12); /* the last cluster allocated */
	/* Both FATs were written. */
	{
		size_t fat_bytes = (size_t)im->g.fat_sectors * 512;
		uint8_t *f1 = malloc(fat_bytes), *f2 = malloc(fat_bytes);

		assert_int_equal(pf_volume_read(&im->vol, im->g.fat_offset_bytes, f1, fat_bytes),
				 0);
		assert_int_equal(
			pf_volume_read(&im->vol, im->g.fat_offset_bytes + fat_bytes, f2, fat_bytes),
			0);
		assert_memory_equal(f1, f2, fat_bytes);
		free(f1);
		free(f2);
	}
	assert_int_equal(pf_fs_remove(im->fs, "/x.bin"), 0);
	assert_int_equal(pf_volume_read(&im->vol, 512, fsi, sizeof(fsi)), 0);
	assert_int_equal(get32(fsi + 488), cc - 1);
	free(data);
	img_free(im);
}

static void test_used(void **state)
{
	Img *im = img_new(16 << 20, 16, 512, 4, 512);
	PfExtents e = { 0 };
	uint8_t *data = pattern(5000, 7);

	write_ok(im, "/a", data, 5000); /* clusters 2..4 */
	write_ok(im, "/b", data, 100);	/* cluster 5 */
	assert_int_equal(pf_fs_remove(im->fs, "/a"), 0);
	write_ok(im, "/c", data, 100); /* cluster 6: allocation moves on */
	assert_int_equal(pf_fs_used(im->fs, &e), 0);
	pf_extents_normalize(&e);
	assert_int_equal(e.n, 2);
	assert_int_equal(e.items[0].start_bytes, 0);
	assert_int_equal(e.items[0].length_bytes, im->g.data_offset_bytes);
	assert_int_equal(e.items[1].start_bytes, im->g.data_offset_bytes + 3 * 2048);
	assert_int_equal(e.items[1].length_bytes, 2 * 2048);
	pf_extents_done(&e);
	free(data);
	img_free(im);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lfn_checksum),
		cmocka_unit_test(test_short_names),
		cmocka_unit_test(test_aliases),
		cmocka_unit_test(test_check_name),
		cmocka_unit_test(test_time),
		cmocka_unit_test(test_boot_sector),
		cmocka_unit_test_prestate(test_roundtrip, (void *)&geo_fat12),
		cmocka_unit_test_prestate(test_roundtrip, (void *)&geo_fat16),
		cmocka_unit_test_prestate(test_roundtrip, (void *)&geo_fat32),
		cmocka_unit_test_prestate(test_roundtrip, (void *)&geo_fat32_4k),
		cmocka_unit_test_prestate(test_roundtrip, (void *)&geo_fat12_4k),
		cmocka_unit_test_prestate(test_grow_dirs, (void *)&geo_fat12),
		cmocka_unit_test_prestate(test_grow_dirs, (void *)&geo_fat16),
		cmocka_unit_test_prestate(test_grow_dirs, (void *)&geo_fat32),
		cmocka_unit_test_prestate(test_grow_dirs, (void *)&geo_fat32_4k),
		cmocka_unit_test_prestate(test_enospc_volume, (void *)&geo_fat12),
		cmocka_unit_test_prestate(test_enospc_volume, (void *)&geo_fat16),
		cmocka_unit_test_prestate(test_enospc_volume, (void *)&geo_fat32),
		cmocka_unit_test_prestate(test_enospc_volume, (void *)&geo_fat32_4k),
		cmocka_unit_test(test_enospc_root),
		cmocka_unit_test(test_corrupt_chains),
		cmocka_unit_test(test_corrupt_dirs),
		cmocka_unit_test_prestate(test_cross_linked_entries, (void *)&geo_fat16),
		cmocka_unit_test_prestate(test_cross_linked_entries, (void *)&geo_fat32),
		cmocka_unit_test_prestate(test_cross_linked_entries, (void *)&geo_fat12_4k),
		cmocka_unit_test(test_truncated_partition),
		cmocka_unit_test(test_dirty),
		cmocka_unit_test(test_fat32_fsinfo),
		cmocka_unit_test(test_used),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
