/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "disk/ptable.h"
#include "util/error.h"
#include "util/strutil.h"

#include "test-util.h"

#define MIB_ (UINT64_C(1024) * 1024)

static char work[256];
static char img[512];

static int group_setup(void **state)
{
	snprintf(work, sizeof(work), "%s", "/tmp/pf-test-ptable-XXXXXX");
	if (!mkdtemp(work))
		return -1;
	snprintf(img, sizeof(img), "%s/disk.img", work);
	return 0;
}

static int group_teardown(void **state)
{
	run("rm -rf '%s'", work);
	return 0;
}

static int teardown(void **state)
{
	unlink(img);
	return 0;
}

/* A fresh zero image of size bytes with the sfdisk script applied (none if NULL). */
static void make_image(uint64_t size, const char *script)
{
	unlink(img);
	run("truncate -s %" PRIu64 " '%s'", size, img);
	if (script)
		run("printf '%s' | sfdisk -q --no-reread --no-tell-kernel '%s' >/dev/null", script,
		    img);
}

/* Reads the table of img; returns what pf_ptable_read() returned. */
static int read_table(PfPtable **ret)
{
	struct stat st;
	int fd, r;

	fd = open(img, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	pf_error_clear();
	r = pf_ptable_read(fd, (uint64_t)st.st_size, ret);
	close(fd);
	return r;
}

static void test_mbr_primary(void **state)
{
	_cleanup_(pf_ptable_freep) PfPtable *t = NULL;
	const PfPartition *p;

	make_image(8 * MIB_, "label: dos\\nlabel-id: 0x1234ABCD\\n"
			     "start=2048, size=4096, type=c, bootable\\n"
			     "start=6144, size=8192, type=83\\n");
	assert_int_equal(read_table(&t), 0);
	assert_string_equal(t->label_type, "dos");
	assert_string_equal(t->id, "0x1234abcd"); /* as sfdisk -J prints it */
	assert_int_equal(t->sector_bytes, 512);
	assert_int_equal(t->image_bytes, 8 * MIB_);
	assert_int_equal(t->n_parts, 2);

	p = &t->parts[0];
	assert_int_equal(p->number, 1);
	assert_int_equal(p->start_bytes, 1 * MIB_);
	assert_int_equal(p->size_bytes, 2 * MIB_);
	assert_string_equal(p->type, "c");
	assert_non_null(p->type_name);
	assert_non_null(strstr(p->type_name, "FAT32"));
	assert_string_equal(p->partuuid, "1234abcd-01");
	assert_true(p->bootable);
	assert_null(p->fstype); /* nothing on it */
	assert_null(p->label);
	assert_null(p->uuid);

	p = &t->parts[1];
	assert_int_equal(p->number, 2);
	assert_int_equal(p->start_bytes, 3 * MIB_);
	assert_int_equal(p->size_bytes, 4 * MIB_);
	assert_string_equal(p->type, "83");
	assert_string_equal(p->partuuid, "1234abcd-02");
	assert_false(p->bootable);
}

static void test_mbr_logical(void **state)
{
	_cleanup_(pf_ptable_freep) PfPtable *t = NULL;

	make_image(8 * MIB_, "label: dos\\nlabel-id: 0xdeadbeef\\n"
			     "start=2048, size=2048, type=c\\n"
			     "start=4096, size=10240, type=5\\n"
			     "start=6144, size=2048, type=83\\n"
			     "start=10240, size=4096, type=83\\n");
	assert_int_equal(read_table(&t), 0);
	assert_int_equal(t->n_parts, 3); /* the extended container itself is not listed */
	assert_int_equal(t->parts[0].number, 1);
	assert_int_equal(t->parts[1].number, 5);
	assert_int_equal(t->parts[1].start_bytes, 6144 * 512);
	assert_int_equal(t->parts[1].size_bytes, 2048 * 512);
	assert_string_equal(t->parts[1].type, "83");
	assert_string_equal(t->parts[1].partuuid, "deadbeef-05");
	assert_int_equal(t->parts[2].number, 6);
	assert_int_equal(t->parts[2].start_bytes, 10240 * 512);
	assert_int_equal(t->parts[2].size_bytes, 4096 * 512);
	assert_string_equal(t->parts[2].partuuid, "deadbeef-06");
	for (size_t i = 0; i < t->n_parts; i++)
		assert_string_not_equal(t->parts[i].type, "5");
}

static void test_gpt(void **state)
{
	_cleanup_(pf_ptable_freep) PfPtable *t = NULL;

	make_image(8 * MIB_, "label: gpt\\nlabel-id: 0AB1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D\\n"
			     "start=2048, size=4096, type=c12a7328-f81f-11d2-ba4b-00a0c93ec93b, "
			     "uuid=AAAAAAAA-BBBB-4CCC-8DDD-EEEEEEEEEEEE, name=boot\\n"
			     "start=6144, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, "
			     "uuid=11111111-2222-4333-8444-55555555ABCD\\n");
	assert_int_equal(read_table(&t), 0);
	assert_string_equal(t->label_type, "gpt");
	assert_non_null(t->id);
	assert_true(strcasecmp(t->id, "0AB1C2D3-E4F5-4A6B-8C7D-9E0F1A2B3C4D") == 0);
	assert_int_equal(t->n_parts, 2);

	assert_int_equal(t->parts[0].number, 1);
	assert_int_equal(t->parts[0].start_bytes, 2048 * 512);
	assert_int_equal(t->parts[0].size_bytes, 4096 * 512);
	assert_string_equal(t->parts[0].type, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
	assert_string_equal(t->parts[0].partuuid, "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee");
	assert_non_null(t->parts[0].type_name);
	assert_non_null(strstr(t->parts[0].type_name, "EFI"));

	assert_int_equal(t->parts[1].number, 2);
	assert_int_equal(t->parts[1].start_bytes, 6144 * 512);
	assert_int_equal(t->parts[1].size_bytes, 8192 * 512);
	assert_string_equal(t->parts[1].type, "0FC63DAF-8483-4772-8E79-3D69D8477DE4");
	assert_string_equal(t->parts[1].partuuid, "11111111-2222-4333-8444-55555555abcd");
}

static void test_filesystems(void **state)
{
	_cleanup_(pf_ptable_freep) PfPtable *t = NULL;
	const PfPartition *p;

	make_image(8 * MIB_, "label: dos\\nlabel-id: 0x0badcafe\\n"
			     "start=2048, size=4096, type=c\\n"
			     "start=6144, size=8192, type=83\\n");
	run("mkfs.vfat -n BOOT -i 1234ABCD --offset 2048 '%s' 2048 >/dev/null 2>&1", img);
	run("mke2fs -q -F -t ext4 -L root -U 0e9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d "
	    "-E offset=%d '%s' 4096 >/dev/null 2>&1",
	    6144 * 512, img);
	assert_int_equal(read_table(&t), 0);
	assert_int_equal(t->n_parts, 2);

	p = &t->parts[0];
	assert_string_equal(p->fstype, "vfat");
	assert_string_equal(p->label, "BOOT");
	assert_string_equal(p->uuid, "1234-ABCD");
	p = &t->parts[1];
	assert_string_equal(p->fstype, "ext4");
	assert_string_equal(p->label, "root");
	assert_string_equal(p->uuid, "0e9b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d");

	/* Found by label, exactly and ignoring case, and by number. */
	assert_ptr_equal(pf_ptable_find(t, "BOOT"), &t->parts[0]);
	assert_ptr_equal(pf_ptable_find(t, "boot"), &t->parts[0]);
	assert_ptr_equal(pf_ptable_find(t, "ROOT"), &t->parts[1]);
	assert_ptr_equal(pf_ptable_find(t, "2"), &t->parts[1]);
}

static void test_no_table(void **state)
{
	PfPtable *t = NULL;
	int r;

	make_image(1 * MIB_, NULL);
	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	assert_non_null(strstr(pf_error_message(r), "no partition table"));
}

/* A GPT image cut short: libfdisk rejects the GPT and would offer the protective MBR. */
static void test_gpt_past_end(void **state)
{
	PfPtable *t = NULL;
	int r;

	make_image(8 * MIB_, "label: gpt\\n"
			     "start=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n"
			     "start=6144, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n");
	run("truncate -s %" PRIu64 " '%s'", 5 * MIB_, img);
	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	assert_non_null(strstr(pf_error_message(r), "GPT"));
	assert_non_null(strstr(pf_error_message(r), "truncated"));
}

static void test_past_end(void **state)
{
	PfPtable *t = NULL;
	const char *msg;
	int r;

	make_image(8 * MIB_, "label: dos\\n"
			     "start=2048, size=4096, type=c\\n"
			     "start=6144, size=8192, type=83\\n");
	run("truncate -s %" PRIu64 " '%s'", 5 * MIB_, img);
	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	msg = pf_error_message(r);
	assert_non_null(strstr(msg, "partition 2 "));
	assert_non_null(strstr(msg, "3145728..7340032"));
	assert_non_null(strstr(msg, "5242880 bytes"));
}

static uint64_t get_le64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int k = 7; k >= 0; k--)
		v = v << 8 | b[k];
	return v;
}

static void put_le(uint8_t *b, uint64_t v, unsigned bytes)
{
	for (unsigned k = 0; k < bytes; k++)
		b[k] = (uint8_t)(v >> (8 * k));
}

/*
 * Sets the first and last LBA of GPT entry index (0-based) in the header at header_lba and
 * its entry array, and recomputes both CRC32s, so libfdisk takes the table as valid.
 */
static void patch_gpt_entry(uint64_t header_lba, unsigned index, uint64_t first, uint64_t last)
{
	uint8_t hdr[512];
	_cleanup_(freep) uint8_t *arr = NULL;
	uint64_t arr_lba;
	uint32_t n, esize, hsize;
	size_t arr_bytes;
	int fd = open(img, O_RDWR | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, hdr, 512, (off_t)(header_lba * 512)), 512);
	assert_memory_equal(hdr, "EFI PART", 8);
	hsize = (uint32_t)get_le64(hdr + 12) & 0xffffffffu;
	arr_lba = get_le64(hdr + 72);
	n = (uint32_t)get_le64(hdr + 80) & 0xffffffffu;
	esize = (uint32_t)get_le64(hdr + 84) & 0xffffffffu;
	arr_bytes = (size_t)n * esize;
	arr = malloc(arr_bytes);
	assert_non_null(arr);
	assert_int_equal(pread(fd, arr, arr_bytes, (off_t)(arr_lba * 512)), (ssize_t)arr_bytes);
	put_le(arr + (size_t)index * esize + 32, first, 8);
	put_le(arr + (size_t)index * esize + 40, last, 8);
	assert_int_equal(pwrite(fd, arr, arr_bytes, (off_t)(arr_lba * 512)), (ssize_t)arr_bytes);
	put_le(hdr + 88, crc32(0, arr, (uInt)arr_bytes), 4);
	put_le(hdr + 16, 0, 4);
	put_le(hdr + 16, crc32(0, hdr, hsize), 4);
	assert_int_equal(pwrite(fd, hdr, 512, (off_t)(header_lba * 512)), 512);
	close(fd);
}

/*
 * A GPT entry whose start times the sector size wraps around 2^64: at LBA 2^55 + 6144 it
 * would be taken for one at byte 6144 * 512, inside the image, and edited there; sfdisk and
 * the kernel put it past the end. Both the primary and the backup table say so.
 */
static void test_gpt_start_wraps(void **state)
{
	const uint64_t wrap = UINT64_C(1) << 55;
	PfPtable *t = NULL;
	const char *msg;
	int r;

	make_image(8 * MIB_, "label: gpt\\n"
			     "start=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n"
			     "start=6144, size=8192, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n");
	patch_gpt_entry(1, 1, wrap + 6144, wrap + 6144 + 8191);
	patch_gpt_entry(8 * MIB_ / 512 - 1, 1, wrap + 6144, wrap + 6144 + 8191);
	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	msg = pf_error_message(r);
	assert_non_null(strstr(msg, "partition 2 "));
	assert_non_null(strstr(msg, "36028797018970112")); /* its start sector, 2^55 + 6144 */

	/* A size that wraps: starts in the image, 2^55 sectors long. */
	make_image(8 * MIB_, "label: gpt\\n"
			     "start=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n");
	patch_gpt_entry(1, 0, 2048, wrap + 2047 + 16);
	patch_gpt_entry(8 * MIB_ / 512 - 1, 0, 2048, wrap + 2047 + 16);
	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	assert_non_null(strstr(pf_error_message(r), "partition 1 "));

	/* The last sector both near 2^64: start * 512 fits nowhere. */
	make_image(8 * MIB_, "label: gpt\\n"
			     "start=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\\n");
	patch_gpt_entry(1, 0, UINT64_MAX - 10, UINT64_MAX - 2);
	patch_gpt_entry(8 * MIB_ / 512 - 1, 0, UINT64_MAX - 10, UINT64_MAX - 2);
	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	assert_non_null(strstr(pf_error_message(r), "partition 1 "));
}

/* A logical partition (in an EBR) past the end of the image is refused like a primary. */
static void test_logical_past_end(void **state)
{
	PfPtable *t = NULL;
	uint8_t ebr[512];
	const char *msg;
	int fd, r;

	make_image(8 * MIB_, "label: dos\\n"
			     "start=2048, size=2048, type=c\\n"
			     "start=4096, size=12288, type=5\\n"
			     "start=6144, size=2048, type=83\\n");
	/* The EBR sits at the extended partition's first sector; its first entry's start is
	 * relative to it. Point it near the 32-bit limit. */
	fd = open(img, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, ebr, 512, 4096 * 512), 512);
	assert_int_equal(ebr[510], 0x55);
	put_le(ebr + 446 + 8, 0xfffff000u, 4);
	assert_int_equal(pwrite(fd, ebr, 512, 4096 * 512), 512);
	close(fd);

	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	msg = pf_error_message(r);
	assert_non_null(strstr(msg, "partition 5 "));
	assert_non_null(strstr(msg, "past the end"));
}

/* Writes a 16-byte MBR partition entry. */
static void put_mbr_entry(uint8_t *sector, unsigned i, uint8_t type, uint32_t lba, uint32_t n)
{
	uint8_t *e = sector + 446 + 16 * i;

	memset(e, 0, 16);
	e[4] = type;
	for (int k = 0; k < 4; k++) {
		e[8 + k] = (uint8_t)(lba >> (8 * k));
		e[12 + k] = (uint8_t)(n >> (8 * k));
	}
}

static void write_sector0(const uint8_t *sector)
{
	int fd = open(img, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, sector, 512, 0), 512);
	close(fd);
}

static void test_overlap(void **state)
{
	PfPtable *t = NULL;
	uint8_t sector[512] = { 0 };
	const char *msg;
	int r;

	make_image(8 * MIB_, NULL);
	sector[440] = 0x78; /* disk id 0x12345678 */
	sector[441] = 0x56;
	sector[442] = 0x34;
	sector[443] = 0x12;
	put_mbr_entry(sector, 0, 0x0c, 2048, 4096);
	put_mbr_entry(sector, 1, 0x83, 4096, 4096); /* starts inside partition 1 */
	sector[510] = 0x55;
	sector[511] = 0xaa;
	write_sector0(sector);

	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_null(t);
	msg = pf_error_message(r);
	assert_non_null(strstr(msg, "overlap"));
	assert_non_null(strstr(msg, "partitions 1 (bytes 1048576..3145728) and 2 "
				    "(bytes 2097152..4194304)"));

	/* The same, entries in the other order in the table. */
	put_mbr_entry(sector, 0, 0x83, 4096, 4096);
	put_mbr_entry(sector, 1, 0x0c, 2048, 4096);
	write_sector0(sector);
	r = read_table(&t);
	assert_int_equal(r, -EINVAL);
	assert_non_null(strstr(pf_error_message(r), "partitions 2 (bytes 1048576..3145728) "
						    "and 1 (bytes 2097152..4194304) overlap"));

	/* Touching is fine: a hand-made table read back. */
	put_mbr_entry(sector, 0, 0x0c, 2048, 2048);
	put_mbr_entry(sector, 1, 0x83, 4096, 4096);
	write_sector0(sector);
	assert_int_equal(read_table(&t), 0);
	assert_int_equal(t->n_parts, 2);
	assert_string_equal(t->id, "0x12345678");
	assert_string_equal(t->parts[1].partuuid, "12345678-02");
	assert_string_equal(t->parts[1].type, "83");
	t = pf_ptable_free(t);
	assert_null(t);
}

static void test_validate(void **state)
{
	PfPartition p[3] = {
		{ .number = 1, .start_bytes = 1000, .size_bytes = 1000 },
		{ .number = 2, .start_bytes = 5000, .size_bytes = 5000 },
		{ .number = 3, .start_bytes = 2000, .size_bytes = 3000 }, /* touches both */
	};
	const char *msg;

	assert_int_equal(pf_ptable_validate(NULL, 0, 0), 0);
	assert_int_equal(pf_ptable_validate(p, 3, 10000), 0); /* ends exactly at the end */
	assert_int_equal(pf_ptable_validate(p, 1, 2000), 0);

	pf_error_clear();
	assert_int_equal(pf_ptable_validate(p, 3, 9999), -EINVAL);
	msg = pf_error_message(-EINVAL);
	assert_non_null(strstr(msg, "partition 2 (bytes 5000..10000)"));
	assert_non_null(strstr(msg, "(9999 bytes)"));

	/* Overlap by one byte, unsorted input. */
	p[2].size_bytes = 3001;
	pf_error_clear();
	assert_int_equal(pf_ptable_validate(p, 3, 10000), -EINVAL);
	assert_non_null(
		strstr(pf_error_message(-EINVAL),
		       "partitions 3 (bytes 2000..5001) and 2 (bytes 5000..10000) overlap"));

	/* One inside another, not adjacent in the list. */
	p[2] = (PfPartition){ .number = 7, .start_bytes = 6000, .size_bytes = 10 };
	assert_int_equal(pf_ptable_validate(p, 3, 10000), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "partitions 2 "));
	assert_non_null(strstr(pf_error_message(-EINVAL), " and 7 "));

	/* Same start. */
	p[2] = (PfPartition){ .number = 3, .start_bytes = 1000, .size_bytes = 1 };
	assert_int_equal(pf_ptable_validate(p, 3, 10000), -EINVAL);

	/* Empty partition. */
	p[2] = (PfPartition){ .number = 3, .start_bytes = 3000, .size_bytes = 0 };
	pf_error_clear();
	assert_int_equal(pf_ptable_validate(p, 3, 10000), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "partition 3 is empty"));

	/* start + size wraps around 2^64: past the end, not a tiny partition. */
	p[2] = (PfPartition){ .number = 3, .start_bytes = UINT64_MAX - 10, .size_bytes = 20 };
	pf_error_clear();
	assert_int_equal(pf_ptable_validate(p, 3, 10000), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "partition 3 "));
	assert_non_null(strstr(pf_error_message(-EINVAL), "past the end"));
}

static void test_find(void **state)
{
	PfPartition parts[] = {
		{ .number = 1, .label = (char *)"boot" },
		{ .number = 2, .label = (char *)"rootfs" },
		{ .number = 3, .label = (char *)"Data" },
		{ .number = 5, .label = (char *)"DATA" },
		{ .number = 6, .label = NULL },
		{ .number = 7, .label = (char *)"3" }, /* a label that looks like a number */
		{ .number = 8, .label = (char *)"Rootfs" },
	};
	PfPtable t = { .parts = parts, .n_parts = ELEMENTSOF(parts) };
	const char *msg;

	assert_ptr_equal(pf_ptable_find(&t, "1"), &parts[0]);
	assert_ptr_equal(pf_ptable_find(&t, "5"), &parts[3]);
	assert_ptr_equal(pf_ptable_find(&t, "6"), &parts[4]);
	assert_ptr_equal(pf_ptable_find(&t, "3"), &parts[2]); /* the number wins */
	assert_ptr_equal(pf_ptable_find(&t, "boot"), &parts[0]);
	assert_ptr_equal(pf_ptable_find(&t, "BOOT"), &parts[0]); /* unique ignoring case */
	assert_ptr_equal(pf_ptable_find(&t, "Boot"), &parts[0]);
	assert_ptr_equal(pf_ptable_find(&t, "Data"), &parts[2]); /* exact beats case-insensitive */
	assert_ptr_equal(pf_ptable_find(&t, "DATA"), &parts[3]);
	assert_ptr_equal(pf_ptable_find(&t, "rootfs"), &parts[1]);
	assert_ptr_equal(pf_ptable_find(&t, "Rootfs"), &parts[6]);

	/* Ambiguous ignoring case. */
	pf_error_clear();
	assert_null(pf_ptable_find(&t, "data"));
	msg = pf_error_message(-ENOENT);
	assert_non_null(strstr(msg, "'data' is ambiguous"));
	assert_non_null(strstr(msg, "3 ('Data')"));
	assert_non_null(strstr(msg, "5 ('DATA')"));
	assert_null(pf_ptable_find(&t, "ROOTFS"));

	/* Missing: the message lists what there is, unlabelled ones by number. */
	pf_error_clear();
	assert_null(pf_ptable_find(&t, "home"));
	msg = pf_error_message(-ENOENT);
	assert_non_null(strstr(msg, "no partition 'home'"));
	assert_non_null(
		strstr(msg, "1 ('boot'), 2 ('rootfs'), 3 ('Data'), 5 ('DATA'), 6, 7 ('3')"));

	pf_error_clear();
	assert_null(pf_ptable_find(&t, "4"));
	assert_non_null(strstr(pf_error_message(-ENOENT), "'4'"));
	assert_null(pf_ptable_find(&t, "0"));
	assert_null(pf_ptable_find(&t, ""));
	assert_null(pf_ptable_find(&t, "99999999999999999999999"));

	/* No partitions at all. */
	t.n_parts = 0;
	pf_error_clear();
	assert_null(pf_ptable_find(&t, "1"));
	assert_non_null(strstr(pf_error_message(-ENOENT), "none"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_mbr_primary, teardown),
		cmocka_unit_test_teardown(test_mbr_logical, teardown),
		cmocka_unit_test_teardown(test_gpt, teardown),
		cmocka_unit_test_teardown(test_filesystems, teardown),
		cmocka_unit_test_teardown(test_no_table, teardown),
		cmocka_unit_test_teardown(test_past_end, teardown),
		cmocka_unit_test_teardown(test_gpt_past_end, teardown),
		cmocka_unit_test_teardown(test_gpt_start_wraps, teardown),
		cmocka_unit_test_teardown(test_logical_past_end, teardown),
		cmocka_unit_test_teardown(test_overlap, teardown),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_find),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
