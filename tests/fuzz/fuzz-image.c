/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-image: a whole SD-card image, as piflash meets a hostile one.
 *
 * The input is the raw image. It goes into a memfd and is opened the way piflash opens one:
 * an overlay over it (disk/overlay.h), its partition table (disk/ptable.h), the tree
 * (fs/tree.h). Then:
 *   - flavor detection (pf_flavor_detect_with, allow_unknown) and the tree's mounts and
 *     symlink resolution, as `piflash inspect` does;
 *   - every partition's filesystem opened through the tree, listed recursively (bounded),
 *     its files read and links read, its used ranges computed;
 *   - a file written, a directory made with a file in it, a symlink made, a file removed,
 *     everything synced, as a node's settings are written;
 *   - the synced image reopened through a new tree and listed again: what the drivers
 *     wrote must read back without crashing.
 * Checks: no crash, leak or undefined behaviour; errors are negative errno values; a
 * partition lies inside the image. Corrupt filesystems are expected to be refused, not
 * trusted.
 *
 * The custom mutator keeps the image's size and partition table: it mutates a window inside
 * one partition (mostly its non-zero sectors: the metadata of these small seeds), so the
 * fuzzer spends its time in the filesystem drivers rather than in libfdisk's refusals.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/overlay.h"
#include "disk/ptable.h"
#include "fs/fs.h"
#include "fs/tree.h"
#include "fuzz.h"
#include "node/flavor.h"
#include "util/error.h"
#include "util/extents.h"

#define IMAGE_MIN_BYTES 4096u
#define IMAGE_MAX_BYTES (4u * 1024 * 1024)
#define WALK_DEPTH_MAX 8
#define WALK_ENTRIES_MAX 400
#define READ_MAX_BYTES (64u * 1024)

#define CHECK(x)                                                                                   \
	do {                                                                                       \
		if (!(x))                                                                          \
			abort();                                                                   \
	} while (0)

/* Bounds of one walk over a filesystem. */
typedef struct Walk {
	PfFs *fs;
	unsigned entries;
} Walk;

static void walk(Walk *w, const char *dir, unsigned depth)
{
	PfDirent *d = NULL;
	size_t n = 0;
	int r;

	r = pf_fs_list(w->fs, dir, &d, &n);
	if (r < 0)
		return;
	for (size_t i = 0; i < n && w->entries < WALK_ENTRIES_MAX; i++) {
		char path[PF_PATH_MAX + PF_NAME_MAX + 2];
		PfStat st;

		w->entries++;
		CHECK(d[i].name);
		snprintf(path, sizeof(path), "%s%s%s", dir, dir[1] ? "/" : "", d[i].name);
		if (pf_path_validate(path) < 0)
			continue;
		r = pf_fs_stat(w->fs, path, &st);
		if (r < 0)
			continue;
		if (S_ISDIR(st.mode) && depth < WALK_DEPTH_MAX)
			walk(w, path, depth + 1);
		else if (S_ISREG(st.mode)) {
			uint8_t *data = NULL;
			size_t len = SIZE_MAX;

			r = pf_fs_read_file(w->fs, path, READ_MAX_BYTES, &data, &len);
			CHECK(r < 0 || len <= READ_MAX_BYTES);
			free(data);
		} else if (S_ISLNK(st.mode)) {
			char *target = NULL;

			r = pf_fs_readlink(w->fs, path, &target);
			CHECK(r < 0 || target);
			free(target);
		}
	}
	pf_dirents_free(d, n);
}

/* Changes what a node's settings change: a file, a directory, a link; one file removed. */
static void edit(PfFs *fs)
{
	static uint8_t body[5000];
	const PfAttr attr = { .mode = 0644, .uid = 1000, .gid = 1000, .mtime = 1700000000 };
	const PfAttr dattr = { .mode = 0755, .mtime = 1700000000 };

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 31 + 7);
	(void)pf_fs_write_file(fs, "/piflash-fuzz.txt", body, sizeof(body), &attr);
	(void)pf_fs_mkdir(fs, "/piflash-fuzz.d", &dattr);
	(void)pf_fs_write_file(fs, "/piflash-fuzz.d/small", "x\n", 2, &attr);
	(void)pf_fs_mkdir_p(fs, "/etc/piflash/a", &dattr);
	(void)pf_fs_symlink(fs, "/piflash-fuzz.d/link", "/piflash-fuzz.txt", &attr);
	(void)pf_fs_write_file(fs, "/piflash-fuzz.txt", body, 100, &attr); /* replaced */
	(void)pf_fs_remove(fs, "/piflash-fuzz.d/small");
}

static void visit_partitions(PfTree *tree, const PfPtable *t, bool change)
{
	for (size_t i = 0; i < t->n_parts; i++) {
		const PfPartition *p = &t->parts[i];
		PfExtents used = {};
		PfFs *fs = NULL;
		Walk w = {};
		int r;

		CHECK(p->start_bytes + p->size_bytes <= t->image_bytes);
		r = pf_tree_fs(tree, p, &fs);
		if (r < 0)
			continue;
		w.fs = fs;
		walk(&w, "/", 0);
		if (pf_fs_used(fs, &used) >= 0)
			for (size_t k = 0; k < used.n; k++)
				CHECK(used.items[k].start_bytes + used.items[k].length_bytes <=
				      p->size_bytes);
		pf_extents_done(&used);
		if (change)
			edit(fs);
		pf_error_clear();
	}
}

static void inspect(PfTree *tree, const PfPtable *t)
{
	static const char *const paths[] = { "/etc/hostname", "/boot/user-data",
					     "/var/lib/cloud/seed/nocloud-net/user-data",
					     "/boot/firmware/cmdline.txt" };
	const PfDetectOptions o = { .allow_unknown = true };
	PfFlavorInfo *info = NULL;
	const PfPartition *root = NULL;
	const PfMount *mounts = NULL;
	size_t n_mounts = 0;
	int r;

	r = pf_flavor_detect_with(tree, t, &o, &info);
	CHECK(r <= 0);
	CHECK((r < 0) == !info);
	pf_flavor_info_free(info);
	pf_error_clear();

	(void)pf_tree_mounts(tree, &root, &mounts, &n_mounts);
	CHECK(n_mounts <= PF_TREE_MAX_MOUNTS);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const PfPartition *part = NULL;
		char *p = NULL, *text = NULL;
		size_t len = 0;

		if (pf_tree_resolve(tree, NULL, paths[i], true, &part, &p) >= 0)
			CHECK(part && p);
		free(p);
		if (pf_tree_read_file(tree, paths[i], 4096, &text, &len) >= 0)
			CHECK(text && len <= 4096 && text[len] == 0);
		free(text);
	}
	pf_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	PfOverlay *ov = NULL;
	PfPtable *t = NULL;
	PfTree *tree = NULL;

	if (size < IMAGE_MIN_BYTES || size > IMAGE_MAX_BYTES)
		return 0;
	if (fd < 0) {
		fd = memfd_create("fuzz-image", MFD_CLOEXEC);
		CHECK(fd >= 0);
	}
	CHECK(ftruncate(fd, 0) == 0);
	CHECK(pwrite(fd, data, size, 0) == (ssize_t)size);

	if (pf_overlay_new(fd, size, &ov) < 0)
		abort();
	if (pf_ptable_read(fd, size, &t) < 0)
		goto finish;
	CHECK(t->image_bytes == size);
	if (pf_tree_new(ov, t, &tree) < 0)
		abort();
	inspect(tree, t);
	visit_partitions(tree, t, true);
	(void)pf_tree_sync(tree);
	tree = pf_tree_free(tree);

	/* What was written, read back through fresh drivers. */
	if (pf_tree_new(ov, t, &tree) < 0)
		abort();
	visit_partitions(tree, t, false);
	inspect(tree, t);
	tree = pf_tree_free(tree);
finish:
	pf_error_clear();
	pf_ptable_free(t);
	pf_overlay_free(ov);
	return 0;
}

/* ---- the mutator ---- */

typedef struct Range {
	uint64_t start, size;
} Range;

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The partitions of the image by a plain reading of its MBR or GPT (512-byte sectors), clipped
 * to the image; at most max. */
static size_t find_ranges(const uint8_t *data, size_t size, Range *ret, size_t max)
{
	size_t n = 0;

	if (size < 1024 || data[510] != 0x55 || data[511] != 0xaa)
		return 0;
	if (data[446 + 4] == 0xee && size >= 2048 + 128 * 128) {
		/* GPT: entries at LBA 2, 128 bytes each. */
		for (size_t i = 0; i < 128 && n < max; i++) {
			const uint8_t *e = data + 1024 + i * 128;
			uint64_t first = le64(e + 32), last = le64(e + 40);

			if (first && last >= first && last < size / 512)
				ret[n++] = (Range){ first * 512, (last - first + 1) * 512 };
		}
		return n;
	}
	for (size_t i = 0; i < 4 && n < max; i++) {
		const uint8_t *e = data + 446 + i * 16;
		uint64_t first = le32(e + 8), count = le32(e + 12);

		if (e[4] && count && first < size / 512)
			ret[n++] =
				(Range){ first * 512,
					 (first + count > size / 512 ? size / 512 - first : count) *
						 512 };
	}
	return n;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	Range parts[16];
	size_t n = find_ranges(data, size, parts, 16);
	unsigned s = seed;
	const Range *p;
	uint64_t off = 0, win;

	/* No table we can read, or now and then anyway: libFuzzer's own mutation anywhere (the
	 * table too). The size stays: a shorter result leaves the old tail in place. */
	if (n == 0 || rand_r(&s) % 16 == 0) {
		(void)LLVMFuzzerMutate(data, size, size);
		return size;
	}

	p = &parts[(size_t)rand_r(&s) % n];
	win = 1 + (uint64_t)rand_r(&s) % (rand_r(&s) % 4 == 0 ? 4096 : 64);
	if (win > p->size)
		win = p->size;
	/* Prefer a sector with something in it: the metadata of the seeds. */
	for (int tries = 0; tries < 8; tries++) {
		uint64_t sector;

		off = p->start + (uint64_t)rand_r(&s) % (p->size - win + 1);
		sector = off & ~UINT64_C(511);
		if (!all_zero(data + sector, size - sector < 512 ? size - sector : 512))
			break;
	}
	/* The window keeps its length whatever LLVMFuzzerMutate() returns: a shorter result
	 * leaves the window's old tail in place, so the image never changes size. */
	(void)LLVMFuzzerMutate(data + off, (size_t)win, (size_t)win);
	(void)max_size;
	return size;
}
