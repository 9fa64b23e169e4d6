/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The process's messages (see util/log.h): every line written whole under stderr's lock, every
 * string from an image or a file escaped on its way to a terminal.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util/log.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/strutil.h"

bool log_quiet;

static void (*log_hook)(void *userdata, bool before);
static void *log_hook_data;

void log_set_hook(void (*hook)(void *userdata, bool before), void *userdata)
{
	flockfile(stderr);
	log_hook = hook;
	log_hook_data = userdata;
	funlockfile(stderr);
}

void log_lock(void)
{
	flockfile(stderr);
}

void log_unlock(void)
{
	funlockfile(stderr);
}

/*
 * Writes s to f with every byte a terminal could take for a command escaped (pf_escape()):
 * messages and listings carry strings from images and from files of earlier runs. Without
 * memory for the copy a placeholder is written, never the raw bytes.
 */
static void put_escaped(FILE *f, const char *s)
{
	_cleanup_(freep) char *e = pf_escape(s);

	fputs(e ?: "(out of memory)", f);
}

/* One line formatted from fmt and ap, escaped; "(out of memory)" when it cannot be. */
static void put_formatted(FILE *f, const char *fmt, va_list ap)
{
	_cleanup_(freep) char *line = NULL;

	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	put_escaped(f, line ?: "(out of memory)");
}

/* One whole line at a time, whatever the threads: stderr is locked around it. */
static void log_line(const char *prefix, const char *fmt, va_list ap, const char *suffix)
{
	flockfile(stderr);
	if (log_hook)
		log_hook(log_hook_data, true);
	fputs(prefix, stderr);
	put_formatted(stderr, fmt, ap);
	if (suffix) {
		fputs(": ", stderr);
		put_escaped(stderr, suffix);
	}
	fputc('\n', stderr);
	if (log_hook)
		log_hook(log_hook_data, false);
	funlockfile(stderr);
}

void out_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	put_formatted(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

void log_errorv(const char *fmt, va_list ap)
{
	log_line("piflash: ", fmt, ap, NULL);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_errorv(fmt, ap);
	va_end(ap);
}

int log_error_errno(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("piflash: ", fmt, ap, pf_error_message(err));
	va_end(ap);
	pf_error_clear();
	return err;
}

int log_error_detail(int err)
{
	log_error("%s", pf_error_message(err));
	pf_error_clear();
	return err;
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	if (log_quiet)
		return;
	va_start(ap, fmt);
	log_line("", fmt, ap, NULL);
	va_end(ap);
}

void log_notice(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("", fmt, ap, NULL);
	va_end(ap);
}
