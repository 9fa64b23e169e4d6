/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The command-line layer: one file per subcommand, each a `int cmd_<name>(argc, argv)`
 * returning the process exit code. It parses, asks and prints, and leaves the work to the
 * core (build/ and what is under it). Only this layer prints to the user and chooses exit
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

#include "util/log.h"

/* A usage error: prints it and a hint to --help; returns PF_EXIT_USAGE (2). */
int usage_error(const char *cmd, const char *fmt, ...) _printf_(2, 3);

/* piflash --help: the commands and every option of the main job (write.c). */
void main_help(void);

int cmd_inspect(int argc, char **argv);
int cmd_cache(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_write(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_batch(int argc, char **argv);
int cmd_devices(int argc, char **argv);
