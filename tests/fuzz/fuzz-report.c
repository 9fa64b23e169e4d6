/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-report: what piflash reads back from its earlier runs (cmd/report.h).
 *
 * The input is read both as `piflash batch`'s report.json — parsed with json-c as
 * json_object_from_file() does, then report_previous_nodes() — and as the --record file of
 * `piflash --all`, through record_read_done() on a memory stream. Checks: no crash, leak or
 * undefined behaviour; every node kept is an object whose "hostname" is the key it is kept
 * under and whose "status" is ok, up-to-date or kept; the record reader returns 0 or -EINVAL
 * and reports only nodes as strings.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/report.h"
#include "fuzz.h"
#include "util/error.h"

static void check_report(const uint8_t *data, size_t size)
{
	json_tokener *tok = json_tokener_new();
	json_object *root, *byname;

	if (!tok)
		abort();
	root = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!root)
		return;
	byname = report_previous_nodes(root);
	if (!byname || !json_object_is_type(byname, json_type_object))
		abort();
	json_object_object_foreach(byname, key, rec)
	{
		json_object *h, *s;
		const char *status;

		if (!json_object_object_get_ex(rec, "hostname", &h) ||
		    !json_object_object_get_ex(rec, "status", &s) ||
		    strcmp(json_object_get_string(h), key) != 0)
			abort();
		status = json_object_get_string(s);
		if (!status || (strcmp(status, "ok") != 0 && strcmp(status, "up-to-date") != 0 &&
				strcmp(status, "kept") != 0))
			abort();
	}
	json_object_put(byname);
	json_object_put(root);
}

static void record_done(const char *node, void *userdata)
{
	size_t *n = userdata;

	if (!node)
		abort();
	(void)strlen(node);
	(*n)++;
}

static void check_record(const uint8_t *data, size_t size)
{
	FILE *f = fmemopen((void *)data, size, "r");
	size_t n = 0;
	int r;

	if (!f)
		abort();
	r = record_read_done(f, "fuzz.record", record_done, &n);
	if (r != 0 && r != -EINVAL)
		abort();
	fclose(f);
	pf_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 256 * 1024)
		return 0;
	check_report(data, size);
	check_record(data, size);
	return 0;
}
