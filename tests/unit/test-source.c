/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "disk/source.h"
#include "disk/xz.h"
#include "util/error.h"
#include "util/strutil.h"

#include "test-util.h"

/*
 * The test image: 2 MiB, pseudo-random data in [0, 64 KiB) and [1 MiB, 1 MiB + 100000),
 * zeros elsewhere (so a sparse cache file is much smaller than its size, and the image
 * ends in a hole). Compressed copies are made once with the real tools.
 */
#define IMG_BYTES (2u * 1024 * 1024)
#define DATA2_START (1024u * 1024)
#define DATA2_BYTES 100000u

static char work[256]; /* holds the inputs */
static char tdir[512]; /* per test: XDG_CACHE_HOME and scratch files */
static uint8_t *orig;

static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245 + 12345;
		p[i] = (uint8_t)(seed >> 16);
	}
}

static int group_setup(void **state)
{
	char path[512];

	snprintf(work, sizeof(work), "%s", "/tmp/pf-test-source-XXXXXX");
	if (!mkdtemp(work))
		return -1;
	orig = calloc(1, IMG_BYTES);
	if (!orig)
		return -1;
	fill_random(orig, 64 * 1024, 1);
	fill_random(orig + DATA2_START, DATA2_BYTES, 2);
	snprintf(path, sizeof(path), "%s/orig.img", work);
	write_file(path, orig, IMG_BYTES);
	run("cd '%s' && gzip -n -c orig.img >orig.img.gz && xz -c orig.img >orig.img.xz && "
	    "zstd -q -c orig.img >orig.img.zst && bzip2 -c orig.img >orig.img.bz2 && "
	    "echo hello >readme.txt && echo notes >notes.md && "
	    /* Blocks of 256 KiB with their sizes in the headers: what xz -T writes, and what
	     * the multi-threaded decoder spreads over threads. */
	    "xz -T2 --block-size=262144 -c orig.img >orig-mb.img.xz && "
	    "head -c 300000 orig.img | xz -c >cat.xz && tail -c +300001 orig.img | "
	    "xz -T2 --block-size=65536 -c >>cat.xz",
	    work);
	/* The image is deliberately not compressible to nothing: truncating a compressed
	 * file in the middle leaves a stream that ends inside the data. */
	setenv("TMPDIR", work, 1);
	return 0;
}

static int group_teardown(void **state)
{
	run("rm -rf '%s'", work);
	free(orig);
	return 0;
}

static int setup(void **state)
{
	char cache[1024];

	snprintf(tdir, sizeof(tdir), "%s/t-XXXXXX", work);
	if (!mkdtemp(tdir))
		return -1;
	snprintf(cache, sizeof(cache), "%s/cache", tdir);
	setenv("XDG_CACHE_HOME", cache, 1);
	pf_error_clear();
	return 0;
}

static int teardown(void **state)
{
	run("rm -rf '%s'", tdir);
	return 0;
}

static char *in_work(const char *name)
{
	static char buf[4][1024];
	static unsigned k;
	char *p = buf[k++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", work, name);
	return p;
}

static char *in_tdir(const char *name)
{
	static char buf[4][1024];
	static unsigned k;
	char *p = buf[k++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", tdir, name);
	return p;
}

static char *cache_dir(void)
{
	char *d = NULL;

	assert_int_equal(pf_cache_dir(NULL, &d), 0);
	assert_non_null(d);
	return d;
}

/* Number of files in dir whose name ends in suffix (NULL: all); 0 if dir is missing. */
static unsigned count_files(const char *dir, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	if (!d) {
		assert_int_equal(errno, ENOENT);
		return 0;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name), sl = suffix ? strlen(suffix) : 0;

		if (streq(de->d_name, ".") || streq(de->d_name, ".."))
			continue;
		if (!suffix || (l >= sl && streq(de->d_name + l - sl, suffix)))
			n++;
	}
	closedir(d);
	return n;
}

/* Nothing but possibly lock files: no image, partial image or info. */
static void expect_cache_clean(void)
{
	char *d = cache_dir();

	assert_int_equal(count_files(d, NULL), count_files(d, ".lock"));
	free(d);
}

static void expect_content(int fd, const uint8_t *want, size_t n)
{
	uint8_t *buf = malloc(n + 1);
	struct stat st;

	assert_non_null(buf);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, n);
	assert_int_equal(pread(fd, buf, n + 1, 0), (ssize_t)n);
	assert_memory_equal(buf, want, n);
	free(buf);
}

static void test_detect(void **state)
{
	static const struct {
		const char *bytes;
		size_t n;
		PfSourceKind kind;
	} cases[] = {
		{ "\x1f\x8b\x08\x00\x00\x00", 6, PF_SOURCE_GZIP },
		{ "\x1f\x8b", 2, PF_SOURCE_GZIP },
		{ "\x1f", 1, PF_SOURCE_RAW },
		{ "\x1f\x8c\x08\x00", 4, PF_SOURCE_RAW },
		{ "\xfd"
		  "7zXZ\0\0\x04",
		  7, PF_SOURCE_XZ },
		{ "\xfd"
		  "7zXZ\0",
		  6, PF_SOURCE_XZ },
		{ "\xfd"
		  "7zXZ",
		  5, PF_SOURCE_RAW }, /* too short */
		{ "\xfd"
		  "7zXY\0",
		  6, PF_SOURCE_RAW },
		{ "\x28\xb5\x2f\xfd\x04\x00", 6, PF_SOURCE_ZSTD },
		{ "\x28\xb5\x2f", 3, PF_SOURCE_RAW },
		{ "BZh91AY&SY", 10, PF_SOURCE_BZIP2 },
		{ "BZh1", 4, PF_SOURCE_BZIP2 },
		{ "BZh0", 4, PF_SOURCE_RAW }, /* block size digit must be 1..9 */
		{ "BZhA", 4, PF_SOURCE_RAW },
		{ "BZh", 3, PF_SOURCE_RAW },
		{ "PK\x03\x04\x14\x00", 6, PF_SOURCE_ZIP },
		{ "PK\x05\x06\x00\x00", 6, PF_SOURCE_ZIP },
		{ "PK\x01\x02", 4, PF_SOURCE_RAW },
		{ "PK\x03", 3, PF_SOURCE_RAW },
		{ "\x00\x00\x00\x00\x00\x00", 6, PF_SOURCE_RAW },
		{ "\xfa\xb8\x00\x10\x8e\xd0", 6, PF_SOURCE_RAW }, /* an MBR boot code start */
		{ "", 0, PF_SOURCE_RAW },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++)
		assert_int_equal(pf_source_detect((const uint8_t *)cases[i].bytes, cases[i].n),
				 cases[i].kind);
	assert_int_equal(pf_source_detect(NULL, 0), PF_SOURCE_RAW);
}

static void test_kind_names(void **state)
{
	assert_string_equal(pf_source_kind_name(PF_SOURCE_RAW), "raw");
	assert_string_equal(pf_source_kind_name(PF_SOURCE_GZIP), "gzip");
	assert_string_equal(pf_source_kind_name(PF_SOURCE_XZ), "xz");
	assert_string_equal(pf_source_kind_name(PF_SOURCE_ZSTD), "zstd");
	assert_string_equal(pf_source_kind_name(PF_SOURCE_BZIP2), "bzip2");
	assert_string_equal(pf_source_kind_name(PF_SOURCE_ZIP), "zip");
	assert_string_equal(pf_source_kind_name(_PF_SOURCE_KIND_MAX), "unknown");
	assert_string_equal(pf_source_kind_name((PfSourceKind)-1), "unknown");
}

static void test_cache_dir(void **state)
{
	PfSourceOptions opts = { .cache_dir = "/somewhere/else" };
	char *d = NULL, *want = NULL;

	assert_int_equal(pf_cache_dir(&opts, &d), 0);
	assert_string_equal(d, "/somewhere/else");
	free(d);

	d = cache_dir();
	assert_true(asprintf(&want, "%s/cache/piflash", tdir) > 0);
	assert_string_equal(d, want);
	free(d);
	free(want);

	/* A relative $XDG_CACHE_HOME is ignored, as the spec says; $HOME is used instead. */
	setenv("XDG_CACHE_HOME", "relative", 1);
	setenv("HOME", "/home/tester", 1);
	assert_int_equal(pf_cache_dir(NULL, &d), 0);
	assert_string_equal(d, "/home/tester/.cache/piflash");
	free(d);

	unsetenv("XDG_CACHE_HOME");
	unsetenv("HOME");
	d = NULL;
	assert_int_equal(pf_cache_dir(NULL, &d), -ENOENT);
	assert_null(d);
	assert_non_null(strstr(pf_error_message(-ENOENT), "--no-cache"));
}

static void test_raw(void **state)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;
	const char *path = in_work("orig.img");

	assert_int_equal(pf_source_open(path, NULL, &s), 0);
	assert_int_equal(pf_source_kind(s), PF_SOURCE_RAW);
	assert_int_equal(pf_source_size(s), IMG_BYTES);
	assert_null(pf_source_cache_path(s));
	assert_null(pf_source_entry(s));
	assert_false(pf_source_decompressed_now(s));
	assert_string_equal(pf_source_path(s), path);
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	/* Opened read-only: the input is never written. */
	assert_int_equal(fcntl(pf_source_fd(s), F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDONLY);
	assert_int_equal(count_files(in_tdir("cache"), NULL), 0);
}

/* A one-byte image is an image too. */
static void test_raw_tiny(void **state)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;

	write_file(in_tdir("tiny.img"), "x", 1);
	assert_int_equal(pf_source_open(in_tdir("tiny.img"), NULL, &s), 0);
	assert_int_equal(pf_source_kind(s), PF_SOURCE_RAW);
	assert_int_equal(pf_source_size(s), 1);
	expect_content(pf_source_fd(s), (const uint8_t *)"x", 1);
}

static void check_compressed(const char *name, PfSourceKind kind)
{
	PfSource *s = NULL;
	char *cache = NULL, *d = cache_dir();
	struct stat st;

	assert_int_equal(pf_source_open(in_work(name), NULL, &s), 0);
	assert_int_equal(pf_source_kind(s), kind);
	assert_int_equal(pf_source_size(s), IMG_BYTES);
	assert_true(pf_source_decompressed_now(s));
	assert_null(pf_source_entry(s));
	assert_non_null(pf_source_cache_path(s));
	cache = strdup(pf_source_cache_path(s));
	assert_non_null(startswith(cache, d));
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	assert_int_equal(fcntl(pf_source_fd(s), F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDONLY);

	/* The cache file is complete, sparse, and nothing partial is left. */
	assert_int_equal(stat(cache, &st), 0);
	assert_int_equal(st.st_size, IMG_BYTES);
	assert_true((uint64_t)st.st_blocks * 512 < IMG_BYTES / 2);
	assert_int_equal(count_files(d, ".partial"), 0);
	assert_int_equal(count_files(d, ".tmp"), 0);
	assert_int_equal(count_files(d, ".img"), 1);
	assert_int_equal(count_files(d, ".info"), 1);
	s = pf_source_free(s);

	/* The second time it comes from the cache. */
	assert_int_equal(pf_source_open(in_work(name), NULL, &s), 0);
	assert_int_equal(pf_source_kind(s), kind);
	assert_false(pf_source_decompressed_now(s));
	assert_string_equal(pf_source_cache_path(s), cache);
	assert_int_equal(pf_source_size(s), IMG_BYTES);
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	assert_int_equal(fcntl(pf_source_fd(s), F_GETFL) & (O_ACCMODE | O_NONBLOCK), O_RDONLY);
	assert_int_equal(count_files(d, ".img"), 1);
	pf_source_free(s);

	/* An explicit cache_dir is used instead of the XDG one. */
	{
		PfSourceOptions opts = { .cache_dir = in_tdir("other/cache") };

		assert_int_equal(pf_source_open(in_work(name), &opts, &s), 0);
		assert_true(pf_source_decompressed_now(s));
		assert_non_null(startswith(pf_source_cache_path(s), opts.cache_dir));
		expect_content(pf_source_fd(s), orig, IMG_BYTES);
		assert_int_equal(count_files(opts.cache_dir, ".img"), 1);
		pf_source_free(s);
	}
	free(cache);
	free(d);
}

static void test_gzip(void **state)
{
	check_compressed("orig.img.gz", PF_SOURCE_GZIP);
}

static void test_xz(void **state)
{
	check_compressed("orig.img.xz", PF_SOURCE_XZ);
}

static void test_zstd(void **state)
{
	check_compressed("orig.img.zst", PF_SOURCE_ZSTD);
}

static void test_bzip2(void **state)
{
	check_compressed("orig.img.bz2", PF_SOURCE_BZIP2);
}

/* A multi-block .xz (xz -T) decodes to the same bytes on several threads. */
static void test_xz_multiblock(void **state)
{
	PfXzInfo info;
	int fd;

	fd = open(in_work("orig-mb.img.xz"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pf_xz_info(fd, &info), 0);
	close(fd);
	assert_int_equal(info.size_bytes, IMG_BYTES);
	assert_int_equal(info.blocks, IMG_BYTES / 262144);
	assert_int_equal(info.streams, 1);

	fd = open(in_work("orig.img.xz"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pf_xz_info(fd, &info), 0);
	close(fd);
	assert_int_equal(info.size_bytes, IMG_BYTES);
	assert_int_equal(info.blocks, 1);

	check_compressed("orig-mb.img.xz", PF_SOURCE_XZ);
}

/* Collects decoded output in memory, checking it comes in order. */
typedef struct Collect {
	uint8_t *buf;
	uint64_t size, calls;
} Collect;

static int collect(void *userdata, uint64_t offset, const uint8_t *buf, size_t len)
{
	Collect *c = userdata;

	assert_int_equal(offset, c->size);
	assert_true(offset + len <= IMG_BYTES);
	memcpy(c->buf + offset, buf, len);
	c->size += len;
	c->calls++;
	return 0;
}

static void decode_file(const char *path, uint32_t threads, uint64_t memlimit)
{
	Collect c = { .buf = malloc(IMG_BYTES) };
	PfXzOptions o = {
		.threads = threads,
		.memlimit_bytes = memlimit,
		.output = collect,
		.userdata = &c,
	};
	uint64_t size = 0;
	int fd;

	assert_non_null(c.buf);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pf_xz_decode(fd, &o, &size), 0);
	close(fd);
	assert_int_equal(size, IMG_BYTES);
	assert_int_equal(c.size, IMG_BYTES);
	assert_memory_equal(c.buf, orig, IMG_BYTES);
	free(c.buf);
}

/* Every combination of single/multi-block and one/several threads, and concatenated
 * streams (a single-block one, then a multi-block one) as xz -dc reads them. */
static void test_xz_decode_threads(void **state)
{
	PfXzInfo info;
	int fd;

	assert_true(pf_xz_threads() >= 1);
	assert_true(pf_xz_memlimit() >= PF_XZ_MEMLIMIT_MIN_BYTES);
	assert_true(pf_xz_memlimit() <= PF_XZ_MEMLIMIT_MAX_BYTES);
	for (uint32_t t = 1; t <= 4; t++) {
		decode_file(in_work("orig.img.xz"), t, 0);
		decode_file(in_work("orig-mb.img.xz"), t, 0);
		decode_file(in_work("cat.xz"), t, 0);
	}
	fd = open(in_work("cat.xz"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pf_xz_info(fd, &info), 0);
	close(fd);
	assert_int_equal(info.size_bytes, IMG_BYTES);
	assert_int_equal(info.streams, 2);
	check_compressed("cat.xz", PF_SOURCE_XZ);
}

/* A memory limit below what one thread needs is refused, naming both figures. */
static void test_xz_memlimit(void **state)
{
	PfXzOptions o = { .threads = 2, .memlimit_bytes = 64 * 1024, .output = collect };
	Collect c = { .buf = malloc(IMG_BYTES) };
	uint64_t size;
	int fd, r;

	o.userdata = &c;
	fd = open(in_work("orig-mb.img.xz"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	r = pf_xz_decode(fd, &o, &size);
	close(fd);
	free(c.buf);
	assert_int_equal(r, -E2BIG);
	print_message("    %s\n", pf_error_message(r));
	assert_non_null(strstr(pf_error_message(r), "than the limit of 64 KiB"));
}

/* The decoded hook sees the file fill up in order, and an error from it stops the
 * decompression and leaves nothing in the cache. */
static int decoded_calls;
static uint64_t decoded_last;

static int on_decoded(int fd, uint64_t done, void *userdata)
{
	uint8_t b = 0;

	/* A trailing run of zeros is not written yet (a hole past the end): it reads as EOF. */
	assert_true(done > decoded_last);
	assert_true(pread(fd, &b, 1, (off_t)done - 1) >= 0);
	assert_int_equal(b, orig[done - 1]);
	decoded_last = done;
	decoded_calls++;
	return *(int *)userdata && done >= IMG_BYTES / 2 ? -ECANCELED : 0;
}

static void test_decoded_hook(void **state)
{
	PfSource *s = NULL;
	int stop = 0;
	PfSourceOptions opts = { .decoded = on_decoded, .decoded_data = &stop };

	decoded_calls = 0;
	decoded_last = 0;
	assert_int_equal(pf_source_open(in_work("orig-mb.img.xz"), &opts, &s), 0);
	assert_true(decoded_calls >= 1);
	assert_int_equal(decoded_last, IMG_BYTES);
	s = pf_source_free(s);

	/* Stopped half way: an error, and no entry that looks complete. */
	stop = 1;
	decoded_calls = 0;
	decoded_last = 0;
	assert_int_equal(pf_source_open(in_work("orig.img.gz"), &opts, &s), -ECANCELED);
	assert_null(s);
	{
		_cleanup_(freep) char *d = cache_dir();

		/* The first entry only. */
		assert_int_equal(count_files(d, ".img"), 1);
		assert_int_equal(count_files(d, ".info"), 1);
		assert_int_equal(count_files(d, ".partial"), 0);
	}
}

static char *open_cache_path(const char *path, bool *ret_now)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;

	assert_int_equal(pf_source_open(path, NULL, &s), 0);
	*ret_now = pf_source_decompressed_now(s);
	return strdup(pf_source_cache_path(s));
}

/* Rewriting the input in place (same inode, same size, other bytes) is a new entry. */
static void test_changed_input(void **state)
{
	_cleanup_(freep) char *p1 = NULL, *p2 = NULL, *p3 = NULL;
	const char *in = in_tdir("in.gz");
	struct stat st1, st2;
	bool now;
	int fd;

	run("cp '%s' '%s'", in_work("orig.img.gz"), in);
	assert_int_equal(stat(in, &st1), 0);
	p1 = open_cache_path(in, &now);
	assert_true(now);

	/* The gzip header's MTIME field (bytes 4..7): other bytes, still a valid stream. */
	fd = open(in, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\x01\x02\x03\x04", 4, 4), 4);
	close(fd);
	assert_int_equal(stat(in, &st2), 0);
	assert_int_equal(st1.st_size, st2.st_size);
	assert_int_equal(st1.st_ino, st2.st_ino);

	p2 = open_cache_path(in, &now);
	assert_true(now);
	assert_string_not_equal(p1, p2);

	/* Unchanged since: the same entry again. */
	p3 = open_cache_path(in, &now);
	assert_false(now);
	assert_string_equal(p2, p3);
}

/* The image inside changes, the input's size does not (stored zip): the new image is served. */
static void test_changed_input_content(void **state)
{
	_cleanup_(freep) uint8_t *other = malloc(IMG_BYTES);
	_cleanup_(freep) char *p1 = NULL;
	PfSource *s = NULL;
	const char *in = in_tdir("in.zip");
	struct stat st1, st2;

	assert_non_null(other);
	run("mkdir '%s'", in_tdir("stage"));
	write_file(in_tdir("stage/pi.img"), orig, IMG_BYTES);
	run("cd '%s' && zip -q -0 -X a.zip pi.img", in_tdir("stage"));
	memcpy(other, orig, IMG_BYTES);
	other[DATA2_START + 500] ^= 0xff; /* in the middle: not in the fingerprinted ends */
	write_file(in_tdir("stage/pi.img"), other, IMG_BYTES);
	run("cd '%s' && zip -q -0 -X b.zip pi.img", in_tdir("stage"));

	run("cp '%s/stage/a.zip' '%s'", tdir, in);
	assert_int_equal(stat(in, &st1), 0);
	assert_int_equal(pf_source_open(in, NULL, &s), 0);
	assert_int_equal(pf_source_kind(s), PF_SOURCE_ZIP);
	assert_string_equal(pf_source_entry(s), "pi.img");
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	p1 = strdup(pf_source_cache_path(s));
	s = pf_source_free(s);

	run("cp '%s/stage/b.zip' '%s'", tdir, in);
	assert_int_equal(stat(in, &st2), 0);
	assert_int_equal(st1.st_size, st2.st_size);
	assert_int_equal(pf_source_open(in, NULL, &s), 0);
	assert_true(pf_source_decompressed_now(s));
	assert_string_not_equal(pf_source_cache_path(s), p1);
	expect_content(pf_source_fd(s), other, IMG_BYTES);
	pf_source_free(s);
}

static void test_no_cache(void **state)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;
	PfSourceOptions opts = { .no_cache = true };

	assert_int_equal(pf_source_open(in_work("orig.img.xz"), &opts, &s), 0);
	assert_int_equal(pf_source_kind(s), PF_SOURCE_XZ);
	assert_null(pf_source_cache_path(s));
	assert_true(pf_source_decompressed_now(s));
	assert_int_equal(pf_source_size(s), IMG_BYTES);
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	assert_int_equal(count_files(in_tdir("cache"), NULL), 0);
	/* The temporary file is unlinked: nothing in $TMPDIR but what the tests made. */
	assert_int_equal(count_files(work, "piflash-") + count_files(work, ".partial"), 0);
}

static void test_zip_one(void **state)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;

	run("cd '%s' && zip -q '%s' orig.img readme.txt", work, in_tdir("one.zip"));
	assert_int_equal(pf_source_open(in_tdir("one.zip"), NULL, &s), 0);
	assert_int_equal(pf_source_kind(s), PF_SOURCE_ZIP);
	assert_string_equal(pf_source_entry(s), "orig.img");
	assert_int_equal(pf_source_size(s), IMG_BYTES);
	assert_non_null(pf_source_cache_path(s));
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	s = pf_source_free(s);

	/* In a folder inside the zip, and without the cache. */
	{
		PfSourceOptions opts = { .no_cache = true };

		run("mkdir '%s' && cp '%s' '%s' && cd '%s' && zip -q -r sub.zip dir",
		    in_tdir("dir"), in_work("orig.img"), in_tdir("dir/pi.img"), tdir);
		assert_int_equal(pf_source_open(in_tdir("sub.zip"), &opts, &s), 0);
		assert_string_equal(pf_source_entry(s), "dir/pi.img");
		assert_null(pf_source_cache_path(s));
		expect_content(pf_source_fd(s), orig, IMG_BYTES);
	}
}

static void test_zip_none(void **state)
{
	PfSource *s = NULL;
	const char *msg;

	run("cd '%s' && zip -q '%s' readme.txt notes.md", work, in_tdir("none.zip"));
	assert_int_equal(pf_source_open(in_tdir("none.zip"), NULL, &s), -ENOENT);
	assert_null(s);
	msg = pf_error_message(-ENOENT);
	assert_non_null(strstr(msg, "no *.img"));
	assert_non_null(strstr(msg, "'readme.txt'"));
	assert_non_null(strstr(msg, "'notes.md'"));
	assert_non_null(strstr(msg, "2 entries"));
	expect_cache_clean();
}

static void test_zip_two(void **state)
{
	PfSource *s = NULL;
	const char *msg;
	int r;

	run("cd '%s' && cp orig.img a.img && cp orig.img b.IMG && zip -q '%s' a.img b.IMG && "
	    "rm a.img b.IMG",
	    work, in_tdir("two.zip"));
	r = pf_source_open(in_tdir("two.zip"), NULL, &s);
	assert_true(r < 0);
	assert_null(s);
	msg = pf_error_message(r);
	assert_non_null(strstr(msg, "more than one"));
	assert_non_null(strstr(msg, "'a.img'"));
	assert_non_null(strstr(msg, "'b.IMG'"));
	expect_cache_clean();
}

/* A zip that is no zip past its magic. */
static void test_zip_corrupt(void **state)
{
	PfSource *s = NULL;
	int r;

	write_file(in_tdir("bad.zip"), "PK\x03\x04garbage garbage garbage garbage", 35);
	r = pf_source_open(in_tdir("bad.zip"), NULL, &s);
	assert_true(r < 0);
	assert_null(s);
	assert_non_null(strstr(pf_error_message(r), "zip"));
	expect_cache_clean();
}

/* Checks a broken compressed input fails, says how far it got, and leaves no entry. */
static void check_broken(const char *path, const char *kind_name)
{
	PfSource *s = NULL;
	const char *msg, *p;
	unsigned long long done;
	int r;

	pf_error_clear();
	r = pf_source_open(path, NULL, &s);
	assert_true(r < 0);
	assert_null(s);
	msg = pf_error_message(r);
	print_message("    %s: %s\n", kind_name, msg);
	assert_non_null(strstr(msg, kind_name));
	p = strstr(msg, "after ");
	assert_non_null(p);
	assert_int_equal(sscanf(p, "after %llu bytes", &done), 1);
	assert_true(done < IMG_BYTES);
	expect_cache_clean();

	/* And again without the cache: the same failure, no leftovers. */
	{
		PfSourceOptions opts = { .no_cache = true };

		r = pf_source_open(path, &opts, &s);
		assert_true(r < 0);
		assert_null(s);
		assert_non_null(strstr(pf_error_message(r), "bytes"));
	}
}

static void truncate_copy(const char *name, const char *out, double fraction)
{
	struct stat st;

	assert_int_equal(stat(in_work(name), &st), 0);
	run("head -c %lld '%s' >'%s'", (long long)((double)st.st_size * fraction), in_work(name),
	    in_tdir(out));
}

static void test_truncated_gzip(void **state)
{
	truncate_copy("orig.img.gz", "t.gz", 0.6);
	check_broken(in_tdir("t.gz"), "gzip");
}

static void test_truncated_xz(void **state)
{
	truncate_copy("orig.img.xz", "t.xz", 0.6);
	check_broken(in_tdir("t.xz"), "xz");
}

static void test_truncated_zstd(void **state)
{
	truncate_copy("orig.img.zst", "t.zst", 0.6);
	check_broken(in_tdir("t.zst"), "zstd");
}

static void test_truncated_bzip2(void **state)
{
	truncate_copy("orig.img.bz2", "t.bz2", 0.6);
	check_broken(in_tdir("t.bz2"), "bzip2");
}

/* Only the trailer missing: all data there, but the stream's end and check are not. */
static void test_truncated_gzip_trailer(void **state)
{
	struct stat st;

	assert_int_equal(stat(in_work("orig.img.gz"), &st), 0);
	run("head -c %lld '%s' >'%s'", (long long)st.st_size - 4, in_work("orig.img.gz"),
	    in_tdir("t.gz"));
	check_broken(in_tdir("t.gz"), "gzip");
}

static void test_corrupt_xz(void **state)
{
	const char *path = in_tdir("c.xz");
	uint8_t junk[64];
	struct stat st;
	int fd;

	run("cp '%s' '%s'", in_work("orig.img.xz"), path);
	assert_int_equal(stat(path, &st), 0);
	memset(junk, 0x5a, sizeof(junk));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), st.st_size / 3), (ssize_t)sizeof(junk));
	close(fd);
	check_broken(path, "xz");
}

static void test_truncated_xz_multiblock(void **state)
{
	truncate_copy("orig-mb.img.xz", "t.xz", 0.6);
	check_broken(in_tdir("t.xz"), "xz");
}

static void test_corrupt_xz_multiblock(void **state)
{
	const char *path = in_tdir("c.xz");
	uint8_t junk[64];
	struct stat st;
	int fd;

	run("cp '%s' '%s'", in_work("orig-mb.img.xz"), path);
	assert_int_equal(stat(path, &st), 0);
	memset(junk, 0x5a, sizeof(junk));
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, junk, sizeof(junk), st.st_size / 2), (ssize_t)sizeof(junk));
	close(fd);
	check_broken(path, "xz");
}

/* Only the magic bytes of xz: refused as not a valid stream. */
static void test_xz_magic_only(void **state)
{
	PfSource *s = NULL;
	int r;

	write_file(in_tdir("m.xz"),
		   "\xfd"
		   "7zXZ\0\0\0junkjunkjunk",
		   18);
	r = pf_source_open(in_tdir("m.xz"), NULL, &s);
	assert_true(r < 0);
	assert_null(s);
	print_message("    %s\n", pf_error_message(r));
	assert_non_null(strstr(pf_error_message(r), "xz"));
	expect_cache_clean();
}

static void test_magic_only(void **state)
{
	PfSource *s = NULL;
	int r;

	write_file(in_tdir("m.gz"), "\x1f\x8b", 2);
	r = pf_source_open(in_tdir("m.gz"), NULL, &s);
	assert_true(r < 0);
	assert_null(s);
	print_message("    %s\n", pf_error_message(r));
	assert_non_null(strstr(pf_error_message(r), "not a valid gzip stream"));
	expect_cache_clean();

	/* A gzip magic and a header libarchive rejects (method 7, not deflate): not
	 * passed through as if it were the image. */
	write_file(in_tdir("m.gz"), "\x1f\x8b\x07\x00\x00\x00\x00\x00\x00\x03junkjunkjunk", 22);
	r = pf_source_open(in_tdir("m.gz"), NULL, &s);
	assert_true(r < 0);
	assert_null(s);
	assert_non_null(strstr(pf_error_message(r), "gzip"));
	expect_cache_clean();
}

/* A valid stream of nothing is not an image. */
static void test_compressed_empty(void **state)
{
	PfSource *s = NULL;
	int r;

	run("printf '' | gzip -c >'%s'", in_tdir("e.gz"));
	r = pf_source_open(in_tdir("e.gz"), NULL, &s);
	assert_true(r < 0);
	assert_null(s);
	assert_non_null(strstr(pf_error_message(r), "gzip stream"));
	assert_non_null(strstr(pf_error_message(r), "empty"));
	expect_cache_clean();
}

static void test_empty_file(void **state)
{
	PfSource *s = NULL;

	write_file(in_tdir("empty.img"), "", 0);
	assert_int_equal(pf_source_open(in_tdir("empty.img"), NULL, &s), -EINVAL);
	assert_null(s);
	assert_non_null(strstr(pf_error_message(-EINVAL), "empty"));
}

static void test_directory(void **state)
{
	PfSource *s = NULL;

	assert_int_equal(pf_source_open(tdir, NULL, &s), -EISDIR);
	assert_null(s);
	assert_non_null(strstr(pf_error_message(-EISDIR), "directory"));
}

static void test_missing(void **state)
{
	PfSource *s = NULL;

	assert_int_equal(pf_source_open(in_tdir("does-not-exist.img.xz"), NULL, &s), -ENOENT);
	assert_null(s);
	assert_non_null(strstr(pf_error_message(-ENOENT), "No such file"));
}

static void test_not_regular(void **state)
{
	PfSource *s = NULL;

	assert_int_equal(pf_source_open("/dev/null", NULL, &s), -EINVAL);
	assert_null(s);
}

static void test_cache_list_clean(void **state)
{
	PfSource *s = NULL;
	PfCacheEntry *list = NULL;
	size_t n = 99;
	uint64_t freed = 0;
	char *d = cache_dir();
	char real_gz[PATH_MAX], real_zst[PATH_MAX];
	int n_gz = 0, n_zst = 0;

	/* No directory yet: an empty list, nothing to clean. */
	assert_int_equal(pf_cache_list(d, &list, &n), 0);
	assert_int_equal(n, 0);
	assert_null(list);
	assert_int_equal(pf_cache_clean(d, &freed), 0);
	assert_int_equal(freed, 0);

	assert_int_equal(pf_source_open(in_work("orig.img.gz"), NULL, &s), 0);
	s = pf_source_free(s);
	assert_int_equal(pf_source_open(in_work("orig.img.zst"), NULL, &s), 0);
	s = pf_source_free(s);
	assert_non_null(realpath(in_work("orig.img.gz"), real_gz));
	assert_non_null(realpath(in_work("orig.img.zst"), real_zst));

	/* Leftovers of an interrupted run and a stranger's file. */
	write_file(in_tdir("cache/piflash/"
			   "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
			   ".img.partial"),
		   "x", 1);
	write_file(in_tdir("cache/piflash/keep-me.img"), "x", 1);

	assert_int_equal(pf_cache_list(d, &list, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_non_null(list[i].path);
		assert_non_null(startswith(list[i].path, d));
		assert_int_equal(list[i].size_bytes, IMG_BYTES);
		assert_true(list[i].disk_bytes < IMG_BYTES / 2);
		assert_true(list[i].mtime > 0);
		assert_non_null(list[i].origin);
		if (streq(list[i].origin, real_gz))
			n_gz++;
		if (streq(list[i].origin, real_zst))
			n_zst++;
	}
	assert_int_equal(n_gz, 1);
	assert_int_equal(n_zst, 1);
	pf_cache_entries_free(list, n);
	pf_cache_entries_free(NULL, 0);

	assert_int_equal(pf_cache_clean(d, &freed), 2);
	assert_true(freed > 0);
	assert_int_equal(count_files(d, ".img"), 1); /* only keep-me.img */
	assert_int_equal(count_files(d, ".info"), 0);
	assert_int_equal(count_files(d, ".lock"), 0);
	assert_int_equal(count_files(d, ".partial"), 0);
	assert_int_equal(count_files(d, NULL), 1);

	list = NULL;
	assert_int_equal(pf_cache_list(d, &list, &n), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(pf_cache_clean(d, NULL), 0);

	/* After cleaning, the next open decompresses again. */
	assert_int_equal(pf_source_open(in_work("orig.img.gz"), NULL, &s), 0);
	assert_true(pf_source_decompressed_now(s));
	pf_source_free(s);
	free(d);
}

static unsigned progress_calls;
static void progress(uint64_t done_bytes, void *userdata)
{
	assert_ptr_equal(userdata, &progress_calls);
	assert_true(done_bytes <= IMG_BYTES);
	progress_calls++;
}

/* Progress is reported every 64 MiB: a 2 MiB image gets no call, and no crash. */
/* ---- a cache another user could plant names in ---- */

static const char precious[] = "precious, not to be overwritten\n";

/* Opens orig.img.gz once to learn its cache key, then removes the entry it made. */
static void learn_key(char ret_key[65])
{
	PfSource *s = NULL;
	const char *base;
	char *d = cache_dir(), name[128];

	assert_int_equal(pf_source_open(in_work("orig.img.gz"), NULL, &s), 0);
	base = strrchr(pf_source_cache_path(s), '/') + 1;
	assert_int_equal(strlen(base), 64 + 4);
	memcpy(ret_key, base, 64);
	ret_key[64] = 0;
	pf_source_free(s);
	snprintf(name, sizeof(name), "%s/%s.img", d, ret_key);
	assert_int_equal(unlink(name), 0);
	snprintf(name, sizeof(name), "%s/%s.info", d, ret_key);
	assert_int_equal(unlink(name), 0);
	free(d);
}

/* Plants a symbolic link named key+suffix in the cache directory, pointing at target. */
static void plant(const char *key, const char *suffix, const char *target)
{
	char *d = cache_dir(), name[1200];

	snprintf(name, sizeof(name), "%s/%s%s", d, key, suffix);
	assert_int_equal(symlink(target, name), 0);
	free(d);
}

static void expect_precious(const char *path)
{
	char buf[128] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_int_equal(n, (ssize_t)strlen(precious));
	assert_string_equal(buf, precious);
}

/* Opens orig.img.gz expecting err and a detail containing s1 and s2. */
static void expect_open_fails(int err, const char *s1, const char *s2)
{
	PfSource *s = NULL;
	int r;

	pf_error_clear();
	r = pf_source_open(in_work("orig.img.gz"), NULL, &s);
	if (r != err)
		fail_msg("expected %d, got %d (%s)", err, r, r < 0 ? pf_error_message(r) : "");
	assert_null(s);
	if (s1 && !strstr(pf_error_message(r), s1))
		fail_msg("detail '%s' lacks '%s'", pf_error_message(r), s1);
	if (s2 && !strstr(pf_error_message(r), s2))
		fail_msg("detail '%s' lacks '%s'", pf_error_message(r), s2);
}

/*
 * Links planted at the names of an entry (computable by whoever owns the input) are never
 * followed: the temporary names are replaced, the lock and the entry itself are refused.
 * The files they point at stay untouched, and nothing is created at a dangling target.
 */
static void test_cache_planted_links(void **state)
{
	char key[65], *d, name[1200];
	PfSource *s = NULL;
	struct stat st;

	learn_key(key);
	d = cache_dir();
	write_file(in_tdir("victim1"), precious, strlen(precious));
	write_file(in_tdir("victim2"), precious, strlen(precious));

	/* A stale partial and info.tmp (here: links) are removed, not written through. */
	plant(key, ".img.partial", in_tdir("victim1"));
	plant(key, ".info.tmp", in_tdir("victim2"));
	assert_int_equal(pf_source_open(in_work("orig.img.gz"), NULL, &s), 0);
	assert_true(pf_source_decompressed_now(s));
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	pf_source_free(s);
	expect_precious(in_tdir("victim1"));
	expect_precious(in_tdir("victim2"));
	snprintf(name, sizeof(name), "%s/%s.img", d, key);
	assert_int_equal(lstat(name, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	snprintf(name, sizeof(name), "%s/%s.info", d, key);
	assert_int_equal(lstat(name, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(count_files(d, ".partial"), 0);
	assert_int_equal(count_files(d, ".tmp"), 0);

	/* Dangling links: nothing is created where they point. */
	learn_key(key);
	plant(key, ".img.partial", in_tdir("created1"));
	plant(key, ".info.tmp", in_tdir("created2"));
	assert_int_equal(pf_source_open(in_work("orig.img.gz"), NULL, &s), 0);
	pf_source_free(s);
	assert_int_equal(access(in_tdir("created1"), F_OK), -1);
	assert_int_equal(access(in_tdir("created2"), F_OK), -1);

	/* A link at the lock's name is refused. */
	learn_key(key);
	plant(key, ".lock", in_tdir("victim1"));
	snprintf(name, sizeof(name), "%s.lock", key);
	expect_open_fails(-ELOOP, name, "symbolic link");
	expect_precious(in_tdir("victim1"));
	snprintf(name, sizeof(name), "%s/%s.lock", d, key);
	assert_int_equal(unlink(name), 0);

	/* A link in place of the entry is not read as the image. */
	plant(key, ".img", in_tdir("victim1"));
	snprintf(name, sizeof(name), "%s.img", key);
	expect_open_fails(-ELOOP, name, "symbolic link");
	expect_precious(in_tdir("victim1"));
	snprintf(name, sizeof(name), "%s/%s.img", d, key);
	assert_int_equal(unlink(name), 0);

	/* Neither is a FIFO (and opening it does not hang). */
	assert_int_equal(mkfifo(name, 0600), 0);
	expect_open_fails(-EPERM, "not a regular file", NULL);
	assert_int_equal(unlink(name), 0);

	/* Nor a file of another user. */
	if (geteuid() == 0) {
		write_file(name, orig, IMG_BYTES);
		assert_int_equal(chown(name, 65534, 65534), 0);
		expect_open_fails(-EPERM, "owned by uid 65534", "not trusting");
		assert_int_equal(unlink(name), 0);
	} else
		print_message("skipped: an entry owned by another uid needs root to make\n");
	free(d);
}

/* A cache directory, or one on the way to it, that someone else could write is refused. */
static void test_cache_dir_unsafe(void **state)
{
	char *d = cache_dir(), parent[1100];
	PfSource *s = NULL;

	snprintf(parent, sizeof(parent), "%s", d);
	*strrchr(parent, '/') = 0;
	assert_int_equal(mkdir(parent, 0700), 0);
	assert_int_equal(mkdir(d, 0700), 0);

	assert_int_equal(chmod(d, 0770), 0);
	expect_open_fails(-EPERM, d, "writable by its group (mode 0770)");
	expect_open_fails(-EPERM, "--no-cache", NULL);
	assert_int_equal(chmod(d, 0702), 0);
	expect_open_fails(-EPERM, d, "writable by others");
	assert_int_equal(chmod(d, 01777), 0); /* sticky does not make the cache itself safe */
	expect_open_fails(-EPERM, d, "writable by its group and others");
	assert_int_equal(chmod(d, 0700), 0);
	assert_int_equal(count_files(d, NULL), 0);

	/* A parent anyone can write (and not sticky) could have the cache swapped. */
	assert_int_equal(chmod(parent, 0777), 0);
	expect_open_fails(-EPERM, parent, "on the way to cache directory");
	assert_int_equal(chmod(parent, 01777), 0); /* like /tmp: fine */
	assert_int_equal(pf_source_open(in_work("orig.img.gz"), NULL, &s), 0);
	s = pf_source_free(s);
	assert_int_equal(chmod(parent, 0700), 0);

	if (geteuid() == 0) {
		assert_int_equal(chown(d, 65534, 65534), 0);
		expect_open_fails(-EPERM, d, "owned by uid 65534");
		assert_int_equal(chown(d, 0, 0), 0);
		/* The parent of another user: it could make the cache a link anywhere. */
		assert_int_equal(chown(parent, 65534, 65534), 0);
		expect_open_fails(-EPERM, parent, "owned by uid 65534");
		assert_int_equal(chown(parent, 0, 0), 0);
		assert_int_equal(pf_source_open(in_work("orig.img.gz"), NULL, &s), 0);
		pf_source_free(s);
	} else
		print_message(
			"skipped: a cache directory owned by another uid needs root to make\n");
	free(d);
}

static void test_progress_small(void **state)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;
	PfSourceOptions opts = { .progress = progress, .userdata = &progress_calls };

	progress_calls = 0;
	assert_int_equal(pf_source_open(in_work("orig.img.gz"), &opts, &s), 0);
	assert_int_equal(progress_calls, 0);
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
}

/* A fake complete entry: key (64 hex digits from c), kib KiB of data written (not sparse),
 * last used age_s seconds ago (its info file's time). */
static void fake_entry(char c, const char *data_suffix, const char *info_suffix, size_t kib,
		       int64_t age_s)
{
	char key[65], name[128];
	struct timespec ts[2];
	uint8_t *buf = calloc(1, kib * 1024);

	assert_non_null(buf);
	memset(key, c, 64);
	key[64] = 0;
	memset(buf, 0xa5, kib * 1024);
	snprintf(name, sizeof(name), "cache/piflash/%s%s", key, data_suffix);
	write_file(in_tdir(name), buf, kib * 1024);
	snprintf(name, sizeof(name), "cache/piflash/%s%s", key, info_suffix);
	write_file(in_tdir(name), "origin=test\n", 12);
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= age_s;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, in_tdir(name), ts, 0), 0);
	free(buf);
}

static bool entry_exists(char c, const char *suffix)
{
	char name[128], key[65];

	memset(key, c, 64);
	key[64] = 0;
	snprintf(name, sizeof(name), "cache/piflash/%s%s", key, suffix);
	return access(in_tdir(name), F_OK) == 0;
}

static void make_cache_dir(void)
{
	char *d = cache_dir();

	run("mkdir -p '%s' && chmod 700 '%s'", d, d);
	free(d);
}

static void test_cache_evict(void **state)
{
	char *d = cache_dir();
	char keep_key[65];
	const char *keep[1] = { keep_key };
	PfCacheEntry *list = NULL;
	uint64_t freed = 0;
	size_t n = 0;
	int lock_fd;

	make_cache_dir();
	/* Oldest first: a (kept), b (locked by another run), c, d (a download), e newest. */
	fake_entry('a', ".img", ".info", 256, 5000);
	fake_entry('b', ".img", ".info", 256, 4000);
	fake_entry('c', ".img", ".info", 256, 3000);
	fake_entry('d', ".download", ".url", 256, 2000);
	fake_entry('e', ".img", ".info", 256, 1000);
	memset(keep_key, 'a', 64);
	keep_key[64] = 0;

	assert_int_equal(pf_cache_list(d, &list, &n), 0);
	assert_int_equal(n, 5);
	/* Least recently used first, downloads among them. */
	assert_non_null(strstr(list[0].path, "aaaa"));
	assert_non_null(strstr(list[3].path, "dddd"));
	assert_true(list[3].download);
	assert_false(list[0].download);
	pf_cache_entries_free(list, n);

	/* Another run holds b's lock: b is in use there. */
	lock_fd = open(
		in_tdir("cache/piflash/"
			"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.lock"),
		O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(lock_fd >= 0);
	assert_int_equal(flock(lock_fd, LOCK_EX), 0);

	/* A cap of 600 KiB: of 1280 KiB, three entries must go, the oldest that may. */
	assert_int_equal(pf_cache_evict(d, 600 * 1024, keep, 1, &freed), 3);
	assert_true(freed >= 3 * 256 * 1024);
	assert_true(entry_exists('a', ".img"));	 /* kept: in use by this run */
	assert_true(entry_exists('b', ".img"));	 /* locked by another run */
	assert_false(entry_exists('c', ".img")); /* evicted, with its info */
	assert_false(entry_exists('c', ".info"));
	assert_false(entry_exists('d', ".download"));
	assert_false(entry_exists('d', ".url"));
	assert_false(entry_exists('e', ".img")); /* even the newest, to fit */
	close(lock_fd);

	/* Under the cap: nothing goes. */
	assert_int_equal(pf_cache_evict(d, 1024 * 1024, NULL, 0, &freed), 0);
	assert_int_equal(freed, 0);
	assert_true(entry_exists('a', ".img"));
	/* No cap at all. */
	assert_int_equal(pf_cache_evict(d, UINT64_MAX, NULL, 0, NULL), 0);
	free(d);
}

static void test_cache_clean_older(void **state)
{
	char *d = cache_dir();
	uint64_t freed = 0;
	struct timespec ts[2] = { { .tv_sec = 1000 }, { .tv_sec = 1000 } };

	make_cache_dir();
	fake_entry('a', ".img", ".info", 16, 10 * 86400);
	fake_entry('b', ".download", ".url", 16, 8 * 86400);
	fake_entry('c', ".img", ".info", 16, 3600);
	/* An old partial download of an interrupted run, and a fresh one. */
	write_file(in_tdir("cache/piflash/"
			   "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
			   ".download.partial"),
		   "x", 1);
	assert_int_equal(utimensat(AT_FDCWD,
				   in_tdir("cache/piflash/"
					   "dddddddddddddddddddddddddddddddddddddddddddddddddddddd"
					   "dddddddddd.download.partial"),
				   ts, 0),
			 0);
	write_file(in_tdir("cache/piflash/"
			   "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"
			   ".download.partial"),
		   "x", 1);

	assert_int_equal(pf_cache_clean_older(d, 7 * 86400, &freed), 2);
	assert_true(freed >= 2 * 16 * 1024);
	assert_false(entry_exists('a', ".img"));
	assert_false(entry_exists('a', ".info"));
	assert_false(entry_exists('b', ".download"));
	assert_true(entry_exists('c', ".img"));
	assert_false(entry_exists('d', ".download.partial"));
	assert_true(entry_exists('e', ".download.partial"));
	free(d);
}

static void test_cache_parse(void **state)
{
	uint64_t v = 0;
	int64_t a = 0;

	assert_int_equal(pf_cache_parse_max("20G", &v), 0);
	assert_int_equal(v, 20 * GIB);
	assert_int_equal(pf_cache_parse_max("500MiB", &v), 0);
	assert_int_equal(v, 500 * MIB);
	assert_int_equal(pf_cache_parse_max("1T", &v), 0);
	assert_int_equal(v, 1024 * GIB);
	assert_int_equal(pf_cache_parse_max("4096", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(pf_cache_parse_max("0", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(pf_cache_parse_max("unlimited", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(pf_cache_parse_max("", &v), -EINVAL);
	assert_int_equal(pf_cache_parse_max("-1G", &v), -EINVAL);
	assert_int_equal(pf_cache_parse_max("12X", &v), -EINVAL);
	assert_int_equal(pf_cache_parse_max("99999999999T", &v), -EINVAL);

	assert_int_equal(pf_cache_parse_age("7d", &a), 0);
	assert_int_equal(a, 7 * 86400);
	assert_int_equal(pf_cache_parse_age("12h", &a), 0);
	assert_int_equal(a, 12 * 3600);
	assert_int_equal(pf_cache_parse_age("2w", &a), 0);
	assert_int_equal(a, 14 * 86400);
	assert_int_equal(pf_cache_parse_age("30m", &a), 0);
	assert_int_equal(a, 1800);
	assert_int_equal(pf_cache_parse_age("7", &a), -EINVAL);
	assert_int_equal(pf_cache_parse_age("d", &a), -EINVAL);
	assert_int_equal(pf_cache_parse_age("7dd", &a), -EINVAL);
	assert_int_equal(pf_cache_parse_age("-7d", &a), -EINVAL);

	setenv("PIFLASH_CACHE_MAX", "3G", 1);
	assert_int_equal(pf_cache_max_bytes(NULL, &v), 0);
	assert_int_equal(v, 3 * GIB);
	setenv("PIFLASH_CACHE_MAX", "lots", 1);
	assert_int_equal(pf_cache_max_bytes(NULL, &v), -EINVAL);
	unsetenv("PIFLASH_CACHE_MAX");
	assert_int_equal(pf_cache_max_bytes(NULL, &v), 0);
	assert_int_equal(v, PF_CACHE_MAX_DEFAULT_BYTES);
}

/* Adding an entry evicts older ones down to the cap, never the one just opened. */
static void test_cache_cap_on_open(void **state)
{
	PfSource *s = NULL, *t = NULL;
	PfSourceOptions opts = { .cache_max_bytes = 1 }; /* smaller than any entry */
	char *d = cache_dir();

	assert_int_equal(pf_source_open(in_work("orig.img.gz"), &opts, &s), 0);
	/* Alone and in use: kept although over the cap. */
	assert_int_equal(count_files(d, ".img"), 1);
	assert_int_equal(pf_source_open(in_work("orig.img.xz"), &opts, &t), 0);
	/* The gz entry went; the xz one, in use, stayed; the gz source still reads. */
	assert_int_equal(count_files(d, ".img"), 1);
	assert_string_equal(pf_source_cache_path(t), pf_source_cache_path(t));
	assert_int_equal(access(pf_source_cache_path(s), F_OK), -1);
	assert_int_equal(access(pf_source_cache_path(t), F_OK), 0);
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	expect_content(pf_source_fd(t), orig, IMG_BYTES);
	s = pf_source_free(s);
	t = pf_source_free(t);

	/* Without a cap set, the default (20 GiB) keeps both. */
	opts.cache_max_bytes = 0;
	assert_int_equal(pf_source_open(in_work("orig.img.gz"), &opts, &s), 0);
	assert_int_equal(count_files(d, ".img"), 2);
	s = pf_source_free(s);
	free(d);
}

static void test_stdin(void **state)
{
	_cleanup_(pf_source_freep) PfSource *s = NULL;
	PfSourceOptions opts = { 0 };
	char hex[65];
	int saved = dup(STDIN_FILENO), fd;
	char *d = cache_dir();

	/* The SHA-256 of the .gz as given, in either case. */
	run("sha256sum '%s' | cut -c1-64 | tr -d '\\n' >'%s'", in_work("orig.img.gz"),
	    in_tdir("sum"));
	fd = open(in_tdir("sum"), O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, hex, 64), 64);
	hex[64] = 0;
	close(fd);
	assert_int_equal(pf_sha256_parse(hex, hex), 0);
	opts.sha256 = hex;

	fd = open(in_work("orig.img.gz"), O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDIN_FILENO), STDIN_FILENO);
	close(fd);
	assert_int_equal(pf_source_open("-", &opts, &s), 0);
	dup2(saved, STDIN_FILENO);
	close(saved);
	expect_content(pf_source_fd(s), orig, IMG_BYTES);
	assert_string_equal(pf_source_sha256(s), hex);
	assert_null(pf_source_input_path(s));
	assert_int_equal(pf_source_kind(s), PF_SOURCE_GZIP);
	assert_int_equal(count_files(d, ".img"), 1);
	free(d);
}

static void test_sha256_mismatch(void **state)
{
	PfSource *s = NULL;
	char want[65];
	PfSourceOptions opts = { .sha256 = want };
	int r;

	assert_int_equal(pf_sha256_parse("00000000000000000000000000000000000000000000000000000000"
					 "000000AB",
					 want),
			 0);
	assert_string_equal(want, "0000000000000000000000000000000000000000000000000000000000"
				  "0000ab");
	assert_int_equal(pf_sha256_parse("0000", want), -EINVAL);
	assert_int_equal(pf_sha256_parse("g000000000000000000000000000000000000000000000000000000"
					 "000000000",
					 want),
			 -EINVAL);
	assert_int_equal(pf_sha256_parse("00000000000000000000000000000000000000000000000000000000"
					 "000000AB",
					 want),
			 0);
	r = pf_source_open(in_work("orig.img.xz"), &opts, &s);
	assert_int_equal(r, -EBADMSG);
	assert_null(s);
	assert_non_null(strstr(pf_error_message(r), "expected 00000000"));
	assert_non_null(strstr(pf_error_message(r), "got "));
	/* Checked before decompression: nothing in the cache. */
	expect_cache_clean();
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_kind_names),
		T(test_cache_dir),
		T(test_cache_planted_links),
		T(test_cache_dir_unsafe),
		T(test_raw),
		T(test_raw_tiny),
		T(test_gzip),
		T(test_xz),
		T(test_xz_multiblock),
		T(test_xz_decode_threads),
		T(test_xz_memlimit),
		T(test_decoded_hook),
		T(test_zstd),
		T(test_bzip2),
		T(test_changed_input),
		T(test_changed_input_content),
		T(test_no_cache),
		T(test_zip_one),
		T(test_zip_none),
		T(test_zip_two),
		T(test_zip_corrupt),
		T(test_truncated_gzip),
		T(test_truncated_xz),
		T(test_truncated_zstd),
		T(test_truncated_bzip2),
		T(test_truncated_gzip_trailer),
		T(test_corrupt_xz),
		T(test_truncated_xz_multiblock),
		T(test_corrupt_xz_multiblock),
		T(test_xz_magic_only),
		T(test_magic_only),
		T(test_compressed_empty),
		T(test_empty_file),
		T(test_directory),
		T(test_missing),
		T(test_not_regular),
		T(test_cache_list_clean),
		T(test_progress_small),
		T(test_cache_evict),
		T(test_cache_clean_older),
		cmocka_unit_test(test_cache_parse),
		T(test_cache_cap_on_open),
		T(test_stdin),
		T(test_sha256_mismatch),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
