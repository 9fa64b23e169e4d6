/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The command-line layer: one file per subcommand, each a `int cmd_<name>(argc, argv)`
 * returning the process exit code. Only this layer prints to the user and chooses exit
 * codes; it reports each failure once, as "piflash: <what>: <why>".
 */

#include <stdbool.h>

#include "util/macros.h"

enum {
	PF_EXIT_OK = 0,
	PF_EXIT_FAILURE = 1, /* bad image, I/O error, bad input */
	PF_EXIT_USAGE = 2,   /* bad command line */
	PF_EXIT_VERIFY = 3,  /* read-back differs from what was written */
	PF_EXIT_SAFETY = 4,  /* refused to write a target for safety */
	PF_EXIT_INTERRUPTED = 130,
};

extern bool arg_quiet;
extern int arg_verbose;

/* "piflash: <fmt>\n" on stderr. */
void log_error(const char *fmt, ...) _printf_(1, 2);
/* "piflash: <what>: <detail of err>\n", the detail from pf_error_message(). Returns err. */
int log_error_errno(int err, const char *fmt, ...) _printf_(2, 3);
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
/* A usage error: prints it and a hint to --help; returns PF_EXIT_USAGE. */
int usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);

/* piflash --help: the commands and every option of the main job. */
void main_help(void);
/* The main job's options (write.c), for main_help() and `piflash verify --help`. */
void cmd_write_options_help(void);

int cmd_inspect(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_write(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_devices(int argc, char **argv);
