/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Error detail for the user.
 *
 * Core functions return -errno. When the errno alone would not tell the user what went
 * wrong ("Invalid argument" for a corrupt FAT), the function that found the problem records
 * a sentence with pf_error_set() before returning; the CLI prints it once, with the context
 * it knows (file, partition), through pf_error_message(). The detail is per thread, so
 * nodes processed in parallel do not mix their messages. The core never prints.
 */

#include <stdarg.h>

#include "util/macros.h"

/* Records a detail message for the error being returned and returns -abs(err) so it can
 * be used as `return pf_error_set(-EINVAL, "...")`. */
int pf_error_set(int err, const char *fmt, ...) _printf_(2, 3);

/* Like pf_error_set() but prefixes the detail already recorded with more context,
 * "context: earlier detail". */
int pf_error_prefix(int err, const char *fmt, ...) _printf_(2, 3);

/* Forgets the recorded detail. */
void pf_error_clear(void);

/* Returns the recorded detail, or strerror(-err) when none was recorded. Never NULL. */
const char *pf_error_message(int err);
