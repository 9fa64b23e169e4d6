/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for util/fileio.c: small local files read whole. */
#include <errno.h>
#include <fcntl.h>
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

#include "util/error.h"
#include "util/fileio.h"

#include "test-util.h"

static char dir[] = "/tmp/piflash-test-fileio-XXXXXX";

static void put(const char *name, const char *data, size_t len)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static int read_in_dir(const char *name, size_t max, char **ret, size_t *len)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r;

	assert_true(dfd >= 0);
	r = pf_read_file_at(dfd, name, max, ret, len);
	close(dfd);
	return r;
}

static void test_whole_and_bounds(void **state)
{
	char *buf = NULL;
	size_t len = 0;

	(void)state;
	put("five", "12345", 5);
	assert_int_equal(read_in_dir("five", 5, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "12345"); /* NUL-terminated */
	free(buf);
	buf = NULL;

	/* One byte over the bound: refused, naming the file and the bound. */
	assert_int_equal(read_in_dir("five", 4, &buf, &len), -EFBIG);
	assert_null(buf);
	assert_non_null(strstr(pf_error_message(-EFBIG), "'five'"));
	assert_non_null(strstr(pf_error_message(-EFBIG), "at most 4"));

	put("empty", "", 0);
	assert_int_equal(read_in_dir("empty", 10, &buf, &len), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
	buf = NULL;
}

static void test_refusals(void **state)
{
	char path[256], *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(read_in_dir("missing", 10, &buf, &len), -ENOENT);
	assert_non_null(strstr(pf_error_message(-ENOENT), "'missing'"));
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(read_in_dir("sub", 10, &buf, &len), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "not a regular file"));
	assert_null(buf);
}

/* A file whose size fstat does not tell (procfs says 0) is read by growing the buffer, and
 * still stops at the bound. */
static void test_size_not_trusted(void **state)
{
	char *buf = NULL;
	size_t len = 0;

	(void)state;
	assert_int_equal(pf_read_file_at(AT_FDCWD, "/proc/self/status", 1 << 20, &buf, &len), 0);
	assert_true(len > 100);
	assert_non_null(strstr(buf, "Name:"));
	assert_int_equal(strlen(buf), len);
	free(buf);
	buf = NULL;
	assert_int_equal(pf_read_file_at(AT_FDCWD, "/proc/self/status", 50, &buf, &len), -EFBIG);
	assert_non_null(strstr(pf_error_message(-EFBIG), "grew past 50 bytes"));
	assert_null(buf);
}

/* Zero blocks stay holes; the rest lands where it belongs; the count says what was written. */
static void test_pwrite_sparse(void **state)
{
	enum { B = 4096 };
	static unsigned char buf[4 * B + 100], back[sizeof(buf)];
	char path[256];
	uint64_t written = 0;
	struct stat st;
	int fd;

	(void)state;
	memset(buf, 0, sizeof(buf));
	memset(buf, 'a', B);		   /* block 0: data */
	memset(buf + 3 * B, 'b', B + 100); /* block 3 and the short tail: data */
	snprintf(path, sizeof(path), "%s/sparse", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(pf_pwrite_sparse(fd, buf, sizeof(buf), 1 << 20, B, &written), 0);
	assert_int_equal(written, 2 * B + 100);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, (1 << 20) + sizeof(buf));
	assert_int_equal(pread(fd, back, sizeof(back), 1 << 20), sizeof(back));
	assert_memory_equal(back, buf, sizeof(buf));
	/* Blocks 1 and 2 were never written: a hole the file system reports. */
	assert_int_equal(lseek(fd, (1 << 20) + B, SEEK_HOLE), (1 << 20) + B);

	/* A failing write names the offset of the first byte not written. */
	close(fd);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pf_pwrite_sparse(fd, buf, sizeof(buf), 8192, B, NULL), -EBADF);
	assert_non_null(strstr(pf_error_message(-EBADF), "write at byte offset 8192 failed"));
	close(fd);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return remove_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_whole_and_bounds),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_size_not_trusted),
		cmocka_unit_test(test_pwrite_sparse),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
