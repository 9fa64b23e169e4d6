/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "disk/overlay.h"
#include "flash/artifact.h"
#include "util/error.h"
#include "util/extents.h"

#include "test-util.h"

#define BLOCK PF_ARTIFACT_BLOCK_BYTES
#define MiB (1024u * 1024u)
/* A little over 12 MiB and not a whole number of blocks: the last block is partial. Big
 * enough that libzstd's single-threaded frames differ from its multi-threaded ones (for 1 MB
 * they are the same), so a thread count that switched between them would show. */
#define IMAGE_SIZE (12u * MiB + 1000u)

/*
 * The base: a memfd with a recognizable pattern, half of every 64 KiB incompressible noise
 * (so the compressors have work) and a few zero blocks; an overlay with writes
 * inside and outside the ranges; the ranges unsorted, overlapping, unaligned.
 */
typedef struct Fixture {
	int base_fd;
	size_t size;
	uint8_t *shadow;   /* what the overlay reads as */
	uint8_t *expected; /* the artifact's image: shadow in the rounded ranges, zero elsewhere */
	uint64_t mapped_bytes;
	PfOverlay *ov;
	PfExtents ranges;
	char dir[64];
} Fixture;

static uint8_t pattern_byte(size_t i)
{
	return (uint8_t)(i * 7 + i / 251 + 1);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void fill_base(uint8_t *p, size_t size)
{
	uint64_t seed = 0x5eed;

	for (size_t i = 0; i < size; i++)
		p[i] = pattern_byte(i);
	for (size_t i = 0; i < size; i += 64 * 1024)
		for (size_t j = i; j < i + 32 * 1024 && j < size; j++)
			p[j] = (uint8_t)xorshift(&seed);
	/* Zero blocks inside the ranges become holes of a raw artifact. */
	memset(p + 1 * MiB + 8 * BLOCK, 0, 4 * BLOCK);
}

static void ov_write(PfOverlay *ov, uint8_t *shadow, uint64_t off, uint8_t byte, size_t len)
{
	uint8_t *buf = malloc(len);

	assert_non_null(buf);
	memset(buf, byte, len);
	assert_int_equal(pf_overlay_write(ov, off, buf, len), 0);
	memcpy(shadow + off, buf, len);
	free(buf);
}

/* The changes every node's overlay gets, mirrored in shadow. */
static void apply_writes(PfOverlay *ov, uint8_t *shadow, size_t size)
{
	/* Inside ranges, across a range's edge, and outside every range (must not show). */
	ov_write(ov, shadow, 300, 0xa1, 5000);
	ov_write(ov, shadow, 2 * MiB - 10, 0xb2, 20);
	ov_write(ov, shadow, 6 * MiB, 0xc3, 3 * BLOCK);
	ov_write(ov, shadow, 9 * MiB - 100, 0xd4, 200);
	ov_write(ov, shadow, size - 5, 0xe5, 5);
	/* A whole block of zeros written over the pattern, inside a range. */
	ov_write(ov, shadow, 1 * MiB + 64 * BLOCK, 0, BLOCK);
}

/* Appends the range as it is (pf_extents_add() would merge it and drop an empty one): the
 * caller's set may be anything. */
static void add_range(Fixture *f, uint64_t start, uint64_t len)
{
	PfExtents *e = &f->ranges;

	e->items = realloc(e->items, (e->n + 1) * sizeof(PfExtent));
	assert_non_null(e->items);
	e->items[e->n++] = (PfExtent){ start, len };
	e->allocated = e->n;
	e->sorted = 0;
}

/* The expected image, rounded independently of the code under test. */
static void compute_expected(Fixture *f)
{
	memset(f->expected, 0, f->size);
	for (size_t i = 0; i < f->ranges.n; i++) {
		uint64_t s = f->ranges.items[i].start_bytes;
		uint64_t e = s + f->ranges.items[i].length_bytes;

		if (s == e)
			continue;
		s = s / BLOCK * BLOCK;
		e = (e + BLOCK - 1) / BLOCK * BLOCK;
		if (e > f->size)
			e = f->size;
		memcpy(f->expected + s, f->shadow + s, e - s);
	}
	f->mapped_bytes = 0;
	for (size_t b = 0; b < f->size; b += BLOCK) {
		size_t n = f->size - b < BLOCK ? f->size - b : BLOCK;
		bool in = false;

		for (size_t i = 0; i < f->ranges.n && !in; i++) {
			uint64_t s = f->ranges.items[i].start_bytes;
			uint64_t e = s + f->ranges.items[i].length_bytes;

			in = s < e && s < b + n && e > b;
		}
		if (in)
			f->mapped_bytes += n;
	}
}

static Fixture *fixture_new(size_t size, bool full)
{
	Fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->size = size;
	f->shadow = malloc(size);
	f->expected = malloc(size);
	assert_non_null(f->shadow);
	assert_non_null(f->expected);
	fill_base(f->shadow, size);
	f->base_fd = memfd_create("artifact-base", MFD_CLOEXEC);
	assert_true(f->base_fd >= 0);
	assert_int_equal(pwrite(f->base_fd, f->shadow, size, 0), (ssize_t)size);
	assert_int_equal(pf_overlay_new(f->base_fd, size, &f->ov), 0);

	apply_writes(f->ov, f->shadow, size);

	if (full) {
		add_range(f, 0, size);
	} else {
		/* Unsorted, overlapping, unaligned, one empty, one ending at the image's end. */
		add_range(f, 9 * MiB - 5, 10);
		add_range(f, 100, 4900);
		add_range(f, 1 * MiB + 10, 3 * MiB);
		add_range(f, 2 * MiB, 100);
		add_range(f, 5 * MiB, 0);
		add_range(f, size - 10, 10);
	}
	compute_expected(f);

	snprintf(f->dir, sizeof(f->dir), "/tmp/pf-test-artifact-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	return f;
}

static int setup_partial(void **state)
{
	*state = fixture_new(IMAGE_SIZE, false);
	return 0;
}

static int setup_full(void **state)
{
	*state = fixture_new(IMAGE_SIZE, true);
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	pf_overlay_free(f->ov);
	pf_extents_done(&f->ranges);
	close(f->base_fd);
	free(f->shadow);
	free(f->expected);
	free(f);
	return 0;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static bool have(const char *tool)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	return system(cmd) == 0;
}

#define NEED(tool, package)                                                                        \
	do {                                                                                       \
		if (!have(tool)) {                                                                 \
			print_message("%s is not installed (package %s): cannot check the "        \
				      "artifact with it, skipping\n",                              \
				      tool, package);                                              \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static uint8_t *read_file(const char *path, size_t *ret_size)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	for (size_t done = 0; done < (size_t)st.st_size;) {
		ssize_t k = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);

		assert_true(k > 0);
		done += (size_t)k;
	}
	close(fd);
	*ret_size = (size_t)st.st_size;
	return buf;
}

/* Asserts the file holds exactly want. */
static void assert_file_equals(const char *path, const uint8_t *want, size_t size)
{
	size_t n;
	uint8_t *got = read_file(path, &n);

	assert_int_equal(n, size);
	if (memcmp(got, want, size) != 0) {
		size_t i = 0;

		while (got[i] == want[i])
			i++;
		fail_msg("'%s' differs from the expected image at byte %zu", path, i);
	}
	free(got);
}

static void files_equal(const char *a, const char *b)
{
	size_t na, nb;
	uint8_t *pa = read_file(a, &na), *pb = read_file(b, &nb);

	if (na != nb || memcmp(pa, pb, na) != 0)
		fail_msg("'%s' (%zu bytes) and '%s' (%zu bytes) differ", a, na, b, nb);
	free(pa);
	free(pb);
}

static void sha256sum_of(const char *path, char out[65])
{
	char cmd[512];
	FILE *p;

	snprintf(cmd, sizeof(cmd), "sha256sum '%s'", path);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, 65, p));
	assert_int_equal(pclose(p), 0);
	assert_int_equal(strlen(out), 64);
}

static void evp_sha256_hex(const uint8_t *p, size_t n, char out[65])
{
	unsigned char d[32];
	unsigned int len = 0;

	assert_int_equal(EVP_Digest(p, n, d, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Names in dir, sorted, space-separated: what a failure must not leave behind. */
static void listing(const char *dir, char *out, size_t cap)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	assert_true(n >= 0);
	out[0] = 0;
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
			strncat(out, names[i]->d_name, cap - strlen(out) - 1);
			strncat(out, " ", cap - strlen(out) - 1);
		}
		free(names[i]);
	}
	free(names);
}

static void assert_dir_empty(const char *dir)
{
	char names[1024];

	listing(dir, names, sizeof(names));
	if (names[0])
		fail_msg("'%s' should be empty but holds: %s", dir, names);
}

static int write_artifact(Fixture *f, const char *name, PfArtifactFormat format, unsigned threads,
			  int level, const char *bmap, PfArtifactResult *res, char *path,
			  size_t cap)
{
	char bmap_path[512];
	PfArtifactOptions o = {
		.format = format,
		.threads = threads,
		.level = level,
	};

	snprintf(path, cap, "%s/%s", f->dir, name);
	if (bmap) {
		snprintf(bmap_path, sizeof(bmap_path), "%s/%s", f->dir, bmap);
		o.bmap_path = bmap_path;
	}
	return pf_artifact_write(path, f->ov, &f->ranges, &o, res);
}

static void check_sha(const char *path, const PfArtifactResult *res)
{
	char want[65];
	struct stat st;

	sha256sum_of(path, want);
	assert_string_equal(res->sha256, want);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(res->file_bytes, (uint64_t)st.st_size);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_format_names(void **state)
{
	static const struct {
		const char *name, *suffix;
		PfArtifactFormat f;
	} t[] = {
		{ "img", ".img", PF_ARTIFACT_IMG },
		{ "img.zst", ".img.zst", PF_ARTIFACT_IMG_ZST },
		{ "img.xz", ".img.xz", PF_ARTIFACT_IMG_XZ },
		{ "img.gz", ".img.gz", PF_ARTIFACT_IMG_GZ },
	};
	PfArtifactFormat f = PF_ARTIFACT_IMG_GZ;

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		assert_int_equal(pf_artifact_format_from_name(t[i].name, &f), 0);
		assert_int_equal(f, t[i].f);
		assert_string_equal(pf_artifact_suffix(t[i].f), t[i].suffix);
	}
	f = PF_ARTIFACT_IMG_XZ;
	assert_int_equal(pf_artifact_format_from_name("zst", &f), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "'zst'"));
	assert_int_equal(pf_artifact_format_from_name(".img", &f), -EINVAL);
	assert_int_equal(pf_artifact_format_from_name("IMG", &f), -EINVAL);
	assert_int_equal(pf_artifact_format_from_name("", &f), -EINVAL);
	assert_int_equal(f, PF_ARTIFACT_IMG_XZ); /* untouched on failure */
	assert_null(pf_artifact_suffix((PfArtifactFormat)4));
}

static void test_img(void **state)
{
	Fixture *f = *state;
	PfArtifactResult res;
	size_t n = f->ranges.n;
	PfExtent *before = malloc(n * sizeof(PfExtent));
	char path[512], own[65];
	struct stat st;

	/* The caller's ranges stay as they were: unsorted, unmerged, one empty. */
	assert_non_null(before);
	memcpy(before, f->ranges.items, n * sizeof(PfExtent));
	assert_int_equal(write_artifact(f, "node1.img", PF_ARTIFACT_IMG, 0, 0, NULL, &res, path,
					sizeof(path)),
			 0);
	assert_int_equal(f->ranges.n, n);
	assert_int_equal(f->ranges.sorted, 0);
	assert_memory_equal(f->ranges.items, before, n * sizeof(PfExtent));
	free(before);

	assert_file_equals(path, f->expected, f->size);
	assert_int_equal(res.image_bytes, f->size);
	assert_int_equal(res.mapped_bytes, f->mapped_bytes);
	assert_int_equal(res.file_bytes, f->size);

	assert_int_equal(stat(path, &st), 0);
	assert_int_equal((uint64_t)st.st_size, f->size);
	/* Sparse: about 3 MiB of 12 are mapped. The zero blocks inside the ranges are holes too
	 * (the base's four, the one the overlay zeroed), and everything outside them. */
	assert_true((uint64_t)st.st_blocks * 512 < f->size / 2);
	{
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		assert_true(fd >= 0);
		assert_int_equal(lseek(fd, 1 * MiB, SEEK_HOLE), 1 * MiB + 8 * BLOCK);
		assert_int_equal(lseek(fd, 1 * MiB + 8 * BLOCK, SEEK_DATA), 1 * MiB + 12 * BLOCK);
		assert_int_equal(lseek(fd, 1 * MiB + 12 * BLOCK, SEEK_HOLE), 1 * MiB + 64 * BLOCK);
		assert_int_equal(lseek(fd, 1 * MiB + 64 * BLOCK, SEEK_DATA), 1 * MiB + 65 * BLOCK);
		/* Outside the ranges: a hole, the overlay's write at 6 MiB too. */
		assert_int_equal(lseek(fd, 4 * MiB + BLOCK, SEEK_DATA), 9 * MiB - BLOCK);
		close(fd);
	}
	/* Owner only: an artifact may hold private host keys. */
	assert_int_equal(st.st_mode & 0777, 0600);

	check_sha(path, &res);
	evp_sha256_hex(f->expected, f->size, own);
	assert_string_equal(res.sha256, own);
}

static void check_compressed(Fixture *f, PfArtifactFormat format, const char *name,
			     const char *decompress)
{
	char p1[512], p2[512], p3[512], out[600], own[65];
	PfArtifactResult r1, r2, r3;

	assert_int_equal(write_artifact(f, name, format, 1, 0, NULL, &r1, p1, sizeof(p1)), 0);
	assert_int_equal(write_artifact(f, "t2", format, 2, 0, NULL, &r2, p2, sizeof(p2)), 0);
	assert_int_equal(write_artifact(f, "again", format, 1, 0, NULL, &r3, p3, sizeof(p3)), 0);

	/* What the tool makes of it is the image. */
	snprintf(out, sizeof(out), "%s/decompressed", f->dir);
	run_quiet("%s '%s' > '%s'", decompress, p1, out);
	assert_file_equals(out, f->expected, f->size);
	unlink(out);

	assert_int_equal(r1.image_bytes, f->size);
	assert_int_equal(r1.mapped_bytes, f->mapped_bytes);
	check_sha(p1, &r1);
	check_sha(p2, &r2);
	/* The hash is of the compressed bytes, not of the image. */
	evp_sha256_hex(f->expected, f->size, own);
	assert_string_not_equal(r1.sha256, own);

	/* Reproducible: whatever the thread count, and run after run. */
	files_equal(p1, p2);
	files_equal(p1, p3);
	assert_string_equal(r1.sha256, r2.sha256);
	assert_string_equal(r1.sha256, r3.sha256);
}

static void test_zst(void **state)
{
	NEED("zstd", "zstd");
	check_compressed(*state, PF_ARTIFACT_IMG_ZST, "node.img.zst", "zstd -q -dc");
}

static void test_xz(void **state)
{
	NEED("xz", "xz-utils");
	check_compressed(*state, PF_ARTIFACT_IMG_XZ, "node.img.xz", "xz -dc");
}

static void test_gz(void **state)
{
	Fixture *f = *state;
	char path[512];
	size_t n;
	uint8_t *gz;

	NEED("gzip", "gzip");
	check_compressed(f, PF_ARTIFACT_IMG_GZ, "node.img.gz", "gzip -dc");

	/* No time stamp, no name: MTIME zero, FLG without FNAME. */
	snprintf(path, sizeof(path), "%s/node.img.gz", f->dir);
	gz = read_file(path, &n);
	assert_true(n > 10);
	assert_int_equal(gz[0], 0x1f);
	assert_int_equal(gz[1], 0x8b);
	assert_int_equal(gz[3] & 0x08, 0);
	assert_int_equal(gz[4] | gz[5] | gz[6] | gz[7], 0);
	free(gz);
}

/*
 * Four threads agree with the default (0: one) on a fully mapped image: zstd at its default
 * level, xz at level 1, whose 3 MiB blocks make four of the image, so the threads really
 * share the work.
 */
static void test_threads_many(void **state)
{
	Fixture *f = *state;
	PfArtifactFormat fmts[] = { PF_ARTIFACT_IMG_ZST, PF_ARTIFACT_IMG_XZ };
	int levels[] = { 0, 1 };

	for (size_t i = 0; i < 2; i++) {
		char p1[512], p4[512];
		PfArtifactResult r1, r4;

		assert_int_equal(
			write_artifact(f, "one", fmts[i], 0, levels[i], NULL, &r1, p1, sizeof(p1)),
			0);
		assert_int_equal(
			write_artifact(f, "four", fmts[i], 4, levels[i], NULL, &r4, p4, sizeof(p4)),
			0);
		files_equal(p1, p4);
		assert_string_equal(r1.sha256, r4.sha256);
	}
}

static unsigned long long bmap_number(const char *bmap, const char *tag)
{
	char open_tag[64];
	const char *p;

	snprintf(open_tag, sizeof(open_tag), "<%s>", tag);
	p = strstr(bmap, open_tag);
	assert_non_null(p);
	return strtoull(p + strlen(open_tag), NULL, 10);
}

static void check_bmap_text(Fixture *f, const char *path)
{
	size_t n;
	char *text = (char *)read_file(path, &n);

	text[n] = 0;
	assert_non_null(strstr(text, "<bmap version=\"2.0\">"));
	assert_int_equal(bmap_number(text, "ImageSize"), f->size);
	assert_int_equal(bmap_number(text, "BlockSize"), BLOCK);
	assert_int_equal(bmap_number(text, "BlocksCount"), (f->size + BLOCK - 1) / BLOCK);
	assert_int_equal(bmap_number(text, "MappedBlocksCount"),
			 (f->mapped_bytes + BLOCK - 1) / BLOCK);
	/* A single block is written as just its number; ranges are inclusive. */
	assert_non_null(strstr(text, "\"> 0-1 </Range>"));
	assert_non_null(strstr(text, "\"> 3072 </Range>"));
	free(text);
}

static void test_bmap_img(void **state)
{
	Fixture *f = *state;
	char path[512], bmap[512], out[512];
	PfArtifactResult res;
	int fd;
	uint8_t byte;

	NEED("bmaptool", "bmap-tools");
	assert_int_equal(write_artifact(f, "n.img", PF_ARTIFACT_IMG, 0, 0, "n.img.bmap", &res, path,
					sizeof(path)),
			 0);
	snprintf(bmap, sizeof(bmap), "%s/n.img.bmap", f->dir);
	snprintf(out, sizeof(out), "%s/out.img", f->dir);
	check_bmap_text(f, bmap);
	check_sha(path, &res);
	{
		mode_t mask = umask(0);
		struct stat st;

		/* The bmap holds no secret: readable as umask allows. */
		umask(mask);
		assert_int_equal(stat(bmap, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0644 & ~mask);
	}

	run_quiet("bmaptool copy --bmap '%s' '%s' '%s'", bmap, path, out);
	assert_file_equals(out, f->expected, f->size);
	unlink(out);

	/* One byte changed inside a mapped range: bmaptool's range checksum catches it. */
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &byte, 1, 2 * MiB + 17), 1);
	byte ^= 0x40;
	assert_int_equal(pwrite(fd, &byte, 1, 2 * MiB + 17), 1);
	assert_int_not_equal(
		run_status("bmaptool copy --bmap '%s' '%s' '%s' >/dev/null 2>&1", bmap, path, out),
		0);
	unlink(out);
	/* Put back, it copies again. */
	byte ^= 0x40;
	assert_int_equal(pwrite(fd, &byte, 1, 2 * MiB + 17), 1);
	close(fd);
	run_quiet("bmaptool copy --bmap '%s' '%s' '%s'", bmap, path, out);
	unlink(out);

	/* And the bmap's own checksum is real: edit a comment, bmaptool refuses the bmap. */
	run_quiet("sed -i 's/Size of a block in bytes/Size of a block in Bytes/' '%s'", bmap);
	assert_int_not_equal(
		run_status("bmaptool copy --bmap '%s' '%s' '%s' >/dev/null 2>&1", bmap, path, out),
		0);
}

static void test_bmap_zst(void **state)
{
	Fixture *f = *state;
	char path[512], bmap[512], out[512];
	PfArtifactResult res;

	NEED("bmaptool", "bmap-tools");
	NEED("zstd", "zstd"); /* bmaptool 3.6 decompresses .zst with it */
	assert_int_equal(write_artifact(f, "n.img.zst", PF_ARTIFACT_IMG_ZST, 2, 0, "n.img.bmap",
					&res, path, sizeof(path)),
			 0);
	snprintf(bmap, sizeof(bmap), "%s/n.img.bmap", f->dir);
	snprintf(out, sizeof(out), "%s/out.img", f->dir);
	check_bmap_text(f, bmap);
	run_quiet("bmaptool copy --bmap '%s' '%s' '%s'", bmap, path, out);
	assert_file_equals(out, f->expected, f->size);
}

/* The bmap maps the rounded ranges, not only the blocks that are not zero. */
static void test_bmap_full(void **state)
{
	Fixture *f = *state;
	char path[512], bmap[512], out[512];
	PfArtifactResult res;
	size_t n;
	char *text;

	NEED("bmaptool", "bmap-tools");
	assert_int_equal(write_artifact(f, "n.img", PF_ARTIFACT_IMG, 0, 0, "n.bmap", &res, path,
					sizeof(path)),
			 0);
	assert_int_equal(res.mapped_bytes, f->size);
	snprintf(bmap, sizeof(bmap), "%s/n.bmap", f->dir);
	text = (char *)read_file(bmap, &n);
	text[n] = 0;
	assert_int_equal(bmap_number(text, "MappedBlocksCount"), (f->size + BLOCK - 1) / BLOCK);
	assert_non_null(strstr(text, "\"> 0-3072 </Range>"));
	free(text);
	snprintf(out, sizeof(out), "%s/out.img", f->dir);
	run_quiet("bmaptool copy --bmap '%s' '%s' '%s'", bmap, path, out);
	assert_file_equals(out, f->expected, f->size);
}

static void test_no_directory(void **state)
{
	Fixture *f = *state;
	PfArtifactOptions o = { .format = PF_ARTIFACT_IMG_ZST };
	PfArtifactResult res = { .image_bytes = 77 };
	char path[512], bmap[512];
	int r;

	snprintf(path, sizeof(path), "%s/missing/node.img.zst", f->dir);
	pf_error_clear();
	r = pf_artifact_write(path, f->ov, &f->ranges, &o, &res);
	assert_int_equal(r, -ENOENT);
	assert_non_null(strstr(pf_error_message(r), path));
	assert_int_equal(res.image_bytes, 77); /* untouched on failure */
	assert_dir_empty(f->dir);

	/* The image's directory exists, the bmap's does not: the image goes too. */
	snprintf(path, sizeof(path), "%s/node.img", f->dir);
	snprintf(bmap, sizeof(bmap), "%s/missing/node.bmap", f->dir);
	o.format = PF_ARTIFACT_IMG;
	o.bmap_path = bmap;
	r = pf_artifact_write(path, f->ov, &f->ranges, &o, &res);
	assert_int_equal(r, -ENOENT);
	assert_non_null(strstr(pf_error_message(r), bmap));
	assert_dir_empty(f->dir);
}

static void test_bad_input(void **state)
{
	Fixture *f = *state;
	PfArtifactOptions o = { .format = PF_ARTIFACT_IMG_XZ, .level = 7 };
	PfExtents past = {};
	char path[512];

	snprintf(path, sizeof(path), "%s/node.img.xz", f->dir);
	assert_int_equal(pf_artifact_write(path, f->ov, &f->ranges, &o, NULL), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "1 to 6"));
	o = (PfArtifactOptions){ .format = PF_ARTIFACT_IMG_ZST, .level = 23 };
	assert_int_equal(pf_artifact_write(path, f->ov, &f->ranges, &o, NULL), -EINVAL);
	o = (PfArtifactOptions){ .format = PF_ARTIFACT_IMG, .level = 3 };
	assert_int_equal(pf_artifact_write(path, f->ov, &f->ranges, &o, NULL), -EINVAL);
	o = (PfArtifactOptions){ .format = PF_ARTIFACT_IMG_ZST,
				 .threads = PF_ARTIFACT_MAX_THREADS + 1 };
	assert_int_equal(pf_artifact_write(path, f->ov, &f->ranges, &o, NULL), -EINVAL);
	o = (PfArtifactOptions){ .format = (PfArtifactFormat)9 };
	assert_int_equal(pf_artifact_write(path, f->ov, &f->ranges, &o, NULL), -EINVAL);

	/* A range past the image's end is the caller's mistake, named. */
	o = (PfArtifactOptions){ .format = PF_ARTIFACT_IMG };
	assert_int_equal(pf_extents_add(&past, f->size - 10, 11), 0);
	assert_int_equal(pf_artifact_write(path, f->ov, &past, &o, NULL), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "past the image"));
	pf_extents_done(&past);
	assert_dir_empty(f->dir);
}

/* A write that fails midway (the file size limit standing in for a full disk) is reported
 * with the file and the offset, and leaves nothing. */
static void test_write_error(void **state)
{
	Fixture *f = *state;
	PfArtifactFormat fmts[] = { PF_ARTIFACT_IMG, PF_ARTIFACT_IMG_ZST };
	struct rlimit old, small = { .rlim_cur = 2 * MiB };
	void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
	int r[2];
	char msg[2][1024], path[2][512];

	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	for (size_t i = 0; i < 2; i++) {
		PfArtifactOptions o = { .format = fmts[i] };

		snprintf(path[i], sizeof(path[i]), "%s/node%s", f->dir,
			 pf_artifact_suffix(fmts[i]));
		pf_error_clear();
		r[i] = pf_artifact_write(path[i], f->ov, &f->ranges, &o, NULL);
		snprintf(msg[i], sizeof(msg[i]), "%s", pf_error_message(r[i]));
	}
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, old_handler);

	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(r[i], -EFBIG);
		if (!strstr(msg[i], path[i]) || !strstr(msg[i], "at byte offset 2097152"))
			fail_msg("detail '%s' should name '%s' and the offset", msg[i], path[i]);
	}
	assert_dir_empty(f->dir);
}

static void test_cancel_before(void **state)
{
	Fixture *f = *state;
	volatile sig_atomic_t cancel = 1;
	PfArtifactFormat fmts[] = { PF_ARTIFACT_IMG, PF_ARTIFACT_IMG_ZST, PF_ARTIFACT_IMG_GZ };

	for (size_t i = 0; i < 3; i++) {
		char path[512], bmap[512];
		PfArtifactOptions o = { .format = fmts[i], .bmap_path = bmap, .cancel = &cancel };

		snprintf(path, sizeof(path), "%s/node%s", f->dir, pf_artifact_suffix(fmts[i]));
		snprintf(bmap, sizeof(bmap), "%s/node.bmap", f->dir);
		assert_int_equal(pf_artifact_write(path, f->ov, &f->ranges, &o, NULL), -ECANCELED);
		assert_dir_empty(f->dir);
	}
}

typedef struct Canceller {
	volatile sig_atomic_t *flag;
	unsigned ms;
} Canceller;

static void *cancel_later(void *userdata)
{
	Canceller *c = userdata;
	struct timespec ts = { .tv_sec = c->ms / 1000, .tv_nsec = (long)(c->ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
	*c->flag = 1;
	return NULL;
}

/* A 64 GiB image takes far longer than 100 ms, whether the stream is reading mapped bytes
 * (ranges covering it) or the zeros after the last range are compressed (no ranges). */
static void cancel_midway(bool mapped, PfArtifactFormat format)
{
	const uint64_t size = 64ull * 1024 * MiB;
	volatile sig_atomic_t cancel = 0;
	Canceller c = { .flag = &cancel, .ms = 100 };
	PfArtifactOptions o = { .format = format, .cancel = &cancel };
	PfOverlay *ov = NULL;
	PfExtents ranges = {};
	char dir[64], path[512], bmap[512];
	pthread_t t;
	int fd, r;

	snprintf(dir, sizeof(dir), "/tmp/pf-test-artifact-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/big%s", dir, pf_artifact_suffix(format));
	snprintf(bmap, sizeof(bmap), "%s/big.bmap", dir);
	o.bmap_path = bmap;
	fd = memfd_create("artifact-big", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	assert_int_equal(pf_overlay_new(fd, size, &ov), 0);
	if (mapped)
		assert_int_equal(pf_extents_add(&ranges, 0, size), 0);

	assert_int_equal(pthread_create(&t, NULL, cancel_later, &c), 0);
	r = pf_artifact_write(path, ov, &ranges, &o, NULL);
	pthread_join(t, NULL);
	assert_int_equal(r, -ECANCELED);
	assert_dir_empty(dir);

	assert_int_equal(rmdir(dir), 0);
	pf_extents_done(&ranges);
	pf_overlay_free(ov);
	close(fd);
}

static void test_cancel_midway(void **state)
{
	(void)state;
	cancel_midway(true, PF_ARTIFACT_IMG);
	cancel_midway(false, PF_ARTIFACT_IMG_ZST);
	cancel_midway(true, PF_ARTIFACT_IMG_GZ);
}

/* Several artifacts at once from different threads, each with its own overlay. */
typedef struct Job {
	Fixture *f;
	PfOverlay *ov;
	char path[512];
	PfArtifactResult res;
	int r;
} Job;

static void *job_run(void *userdata)
{
	Job *j = userdata;
	PfArtifactOptions o = { .format = PF_ARTIFACT_IMG_ZST, .threads = 1 };

	j->r = pf_artifact_write(j->path, j->ov, &j->f->ranges, &o, &j->res);
	return NULL;
}

static void test_parallel(void **state)
{
	Fixture *f = *state;
	Job jobs[3];
	pthread_t t[3];
	char out[600];
	uint8_t *scratch;

	NEED("zstd", "zstd");
	scratch = malloc(f->size);
	assert_non_null(scratch);
	for (int i = 0; i < 3; i++) {
		jobs[i] = (Job){ .f = f };
		snprintf(jobs[i].path, sizeof(jobs[i].path), "%s/node%d.img.zst", f->dir, i);
		assert_int_equal(pf_overlay_new(f->base_fd, f->size, &jobs[i].ov), 0);
		/* The same changes as the fixture's overlay: the same image. */
		apply_writes(jobs[i].ov, scratch, f->size);
	}
	free(scratch);
	for (int i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, job_run, &jobs[i]), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(jobs[i].r, 0);
		pf_overlay_free(jobs[i].ov);
		check_sha(jobs[i].path, &jobs[i].res);
		assert_string_equal(jobs[i].res.sha256, jobs[0].res.sha256);
	}
	snprintf(out, sizeof(out), "%s/decompressed", f->dir);
	run_quiet("zstd -q -dc '%s' > '%s'", jobs[2].path, out);
	assert_file_equals(out, f->expected, f->size);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_names),
		cmocka_unit_test_setup_teardown(test_img, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_zst, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_xz, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_gz, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_threads_many, setup_full, teardown),
		cmocka_unit_test_setup_teardown(test_bmap_img, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_bmap_zst, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_bmap_full, setup_full, teardown),
		cmocka_unit_test_setup_teardown(test_no_directory, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_bad_input, setup_partial, teardown),
		cmocka_unit_test_setup_teardown(test_write_error, setup_full, teardown),
		cmocka_unit_test_setup_teardown(test_cancel_before, setup_partial, teardown),
		cmocka_unit_test(test_cancel_midway),
		cmocka_unit_test_setup_teardown(test_parallel, setup_partial, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
