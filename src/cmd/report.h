/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Reading back what earlier runs wrote: a node record of `piflash batch`'s report.json and a
 * line of the --record file of `piflash --all`. Only the checks live here, apart from
 * batch.c and cards.c, so that tests/fuzz/fuzz-report.c can feed them hostile files.
 */

#include <json-c/json.h>
#include <stdbool.h>

/* A name batch may create or remove in its out dir: no '/', not empty, not "." or "..". */
bool out_name_ok(const char *name);

/*
 * Checks the shape of one node record of report.json: the types of every field read back and
 * the fields that name files. Sets *ret_host and *ret_status. Returns 0 or -EINVAL with a
 * detail naming the field.
 */
int report_record_check(json_object *rec, const char **ret_host, const char **ret_status);

/*
 * One parsed line o (NULL if it was no JSON) of a --record file: its "node" and "result"
 * strings (NULL when absent or null). -EINVAL naming path:lineno for a line that is no object
 * or a field of another type.
 */
int report_record_line(json_object *o, const char *path, unsigned lineno, const char **ret_node,
		       const char **ret_result);
