/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * report.json, the record of a `piflash batch` run, written from the nodes' results; and
 * reading back what earlier runs wrote: a node record of report.json and a line of the
 * --record file of `piflash --all`. tests/fuzz/fuzz-report.c feeds the checks hostile files.
 */

#include <json-c/json.h>
#include <stdbool.h>

#include "build/result.h"

/* A name batch may create or remove in its out dir: no '/', not empty, not "." or "..". */
bool pf_out_name_ok(const char *name);

/*
 * Checks the shape of one node record of report.json: the types of every field read back and
 * the fields that name files. Sets *ret_host and *ret_status. Returns 0 or -EINVAL with a
 * detail naming the field.
 */
int pf_report_record_check(json_object *rec, const char **ret_host, const char **ret_status);

/*
 * One parsed line o (NULL if it was no JSON) of a --record file: its "node" and "result"
 * strings (NULL when absent or null). -EINVAL naming path:lineno for a line that is no object
 * or a field of another type.
 */
int pf_report_record_line(json_object *o, const char *path, unsigned lineno, const char **ret_node,
			  const char **ret_result);

/*
 * The text of report.json: the run (image, inventory, flavor name, artifact format suffix
 * without its dot, seconds) and one record per node of results that was selected or kept.
 * malloc'd; NULL when out of memory.
 */
char *pf_report_json(const PfNodeResult *results, size_t n, const char *image,
		     const char *inventory, const char *flavor, const char *format, double seconds);
