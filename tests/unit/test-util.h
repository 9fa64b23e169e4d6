/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Helpers the unit tests share (tests/unit/test-util.c, linked into every test-<module>):
 * asserting an error and its message, running a shell command (its exit status, failing the
 * test, or capturing its output), writing and removing scratch files, and comparing a set of
 * ranges. Each fails the running cmocka test on a broken expectation, naming what broke.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>

#include "util/error.h"
#include "util/extents.h"
#include "util/macros.h"

/* Asserts r == want and that the error detail of r holds every string of the NULL-terminated
 * list that follows. */
void check_err(int r, int want, ...);

/* check_err() of call's result, with the error detail cleared before it runs; at least one
 * string to look for. */
#define ERR(call, want, ...)                                                                       \
	do {                                                                                       \
		pf_error_clear();                                                                  \
		check_err((call), (want), __VA_ARGS__, NULL);                                      \
	} while (0)

/* Runs the shell command fmt (printf-style) and returns its exit status, -1 when it did not
 * exit normally. Output goes where the test's goes. */
int run_status(const char *fmt, ...) _printf_(1, 2);

/* Runs the shell command fmt; fails the test unless it exits 0. */
void run(const char *fmt, ...) _printf_(1, 2);

/* Runs the shell command fmt with its standard output in out (cap bytes with the final NUL,
 * the rest dropped); fails the test, showing that output, unless it exits 0. */
void run_capture(char *out, size_t cap, const char *fmt, ...) _printf_(3, 4);

/* Runs the shell command fmt with standard output and error kept back, shown only when it
 * fails (the test with it) by not exiting 0. */
void run_quiet(const char *fmt, ...) _printf_(1, 2);

/* Writes text to path (created or truncated, mode 0666 minus the umask, as fopen() does). */
void write_text(const char *path, const char *text);

/* Writes n bytes of data to path (created or truncated), which then has exactly mode. */
void write_file_mode(const char *path, const void *data, size_t n, mode_t mode);

/* The same with mode 0644. */
void write_file(const char *path, const void *data, size_t n);

/* Removes path and everything below it, following no symlink. Returns 0 or -1. */
int remove_tree(const char *path);

/* Asserts that e holds exactly the ranges given as (start, length) pairs, in order. */
void expect_ranges(const PfExtents *e, size_t n, const uint64_t *pairs);
