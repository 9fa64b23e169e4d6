/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test-util.h"
#include "util/error.h"

/* Commands up to this long (bytes); a longer one fails the test rather than run cut off. */
#define CMD_BYTES 4096
/* What run_quiet() shows of a failed command's output (bytes). */
#define LOG_BYTES 4096

void check_err(int r, int want, ...)
{
	const char *m, *s;
	va_list ap;

	if (r != want)
		fail_msg("expected %d, got %d (%s)", want, r, r < 0 ? pf_error_message(r) : "-");
	m = pf_error_message(r);
	va_start(ap, want);
	while ((s = va_arg(ap, const char *)))
		if (!strstr(m, s)) {
			va_end(ap);
			fail_msg("message '%s' lacks '%s'", m, s);
		}
	va_end(ap);
}

_printf_(3, 0) static void format_cmd(char *cmd, size_t cap, const char *fmt, va_list ap)
{
	int n = vsnprintf(cmd, cap, fmt, ap);

	if (n < 0 || (size_t)n >= cap)
		fail_msg("command too long: %.80s...", cmd);
}

static int exit_status(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int run_status(const char *fmt, ...)
{
	char cmd[CMD_BYTES];
	va_list ap;

	va_start(ap, fmt);
	format_cmd(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return exit_status(system(cmd));
}

void run(const char *fmt, ...)
{
	char cmd[CMD_BYTES];
	va_list ap;
	int r;

	va_start(ap, fmt);
	format_cmd(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		fail_msg("command failed (%d): %s", r, cmd);
}

/* popen()s cmd and reads its output into out; fails the test unless it exits 0. */
static void capture(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	size_t n;
	int status;

	assert_non_null(p);
	n = fread(out, 1, cap - 1, p);
	out[n] = 0;
	status = pclose(p);
	if (exit_status(status) != 0)
		fail_msg("'%s' failed (status %d), output '%s'", cmd, status, out);
}

void run_capture(char *out, size_t cap, const char *fmt, ...)
{
	char cmd[CMD_BYTES];
	va_list ap;

	va_start(ap, fmt);
	format_cmd(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	capture(cmd, out, cap);
}

void run_quiet(const char *fmt, ...)
{
	char cmd[CMD_BYTES], log[LOG_BYTES];
	va_list ap;

	va_start(ap, fmt);
	format_cmd(cmd, sizeof(cmd) - strlen(" 2>&1"), fmt, ap);
	va_end(ap);
	strcat(cmd, " 2>&1");
	capture(cmd, log, sizeof(log));
}

void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

void write_file_mode(const char *path, const void *data, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	assert_true(fd >= 0);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

void write_file(const char *path, const void *data, size_t n)
{
	write_file_mode(path, data, n, 0644);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int remove_tree(const char *path)
{
	return nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

void expect_ranges(const PfExtents *e, size_t n, const uint64_t *pairs)
{
	assert_int_equal(e->n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(e->items[i].start_bytes, pairs[2 * i]);
		assert_int_equal(e->items[i].length_bytes, pairs[2 * i + 1]);
	}
}
