/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Reading back what earlier runs wrote: `piflash batch`'s report.json (to reuse the artifacts
 * still true of the out dir) and the --record file of `piflash --all` (JSON lines, to skip
 * the nodes done). Only the parsing lives here, apart from batch.c and cards.c, so that
 * tests/fuzz/fuzz-report.c can feed it hostile files.
 */

#include <json-c/json.h>
#include <stdio.h>

/* Longest --record line looked at; longer ones are skipped. */
#define RECORD_LINE_MAX (64u * 1024)

/*
 * The nodes of a parsed report.json (root, not consumed) whose status is "ok", "up-to-date"
 * or "kept", as a new object keyed by hostname (each value a new reference to the node's
 * record). Returns NULL when out of memory.
 */
json_object *report_previous_nodes(json_object *root);

/*
 * Reads the --record file open as f (path for messages): calls done() with the node of every
 * record whose result is "ok". Returns 0, or -EINVAL with a detail "path:line: not a JSON
 * record line".
 */
int record_read_done(FILE *f, const char *path, void (*done)(const char *node, void *userdata),
		     void *userdata);
