/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The program's messages: "piflash: <what>: <why>" errors, information lines (quiet with -q),
 * and listings on stdout. Lines are written whole under stderr's lock whatever the threads,
 * and every byte a terminal could take for a command is escaped (util/escape.h). Only the
 * command line (src/cmd) calls these: the core returns errors with a detail and never prints
 * (as systemd's library code never logs above debug).
 */

#include <stdarg.h>
#include <stdbool.h>

#include "util/macros.h"

/* -q: log_info() says nothing, nor does a progress bar. */
extern bool log_quiet;

/* "piflash: <fmt>\n" on stderr. */
void log_error(const char *fmt, ...) _printf_(1, 2);
void log_errorv(const char *fmt, va_list ap) _printf_(1, 0);
/* "piflash: <what>: <detail of err>\n", the detail from pf_error_message(). Returns err. */
int log_error_errno(int err, const char *fmt, ...) _printf_(2, 3);
/* "piflash: <detail of err>\n", for a detail that names its subject. Returns err. */
int log_error_detail(int err);
/* Informational line on stderr unless -q. */
void log_info(const char *fmt, ...) _printf_(1, 2);
/* A line on stderr even with -q: the answer to a run (a summary). */
void log_notice(const char *fmt, ...) _printf_(1, 2);
/*
 * For a display that redraws lines of its own (several card readers' progress): hook is
 * called with stderr locked before (before = true) and after each log line, to clear and
 * redraw. log_lock()/log_unlock() hold stderr for such a redraw.
 */
void log_set_hook(void (*hook)(void *userdata, bool before), void *userdata);
void log_lock(void);
void log_unlock(void);
/*
 * One line of text output on stdout: fmt and its arguments formatted, then every control
 * character, C1 byte and invalid UTF-8 escaped as \xNN (a newline too, so fmt holds none:
 * the line end is added). For every listing that shows strings from an image — labels, file
 * names, link targets, os-release — which must not reach a terminal raw. The log functions
 * above escape their lines the same way.
 */
void out_line(const char *fmt, ...) _printf_(1, 2);
