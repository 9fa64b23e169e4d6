/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-report: what piflash reads back from its earlier runs (build/report.h), through the same
 * checks batch.c and cards.c run.
 *
 * The input is read as `piflash batch`'s report.json — each element of "nodes" through
 * pf_report_record_check() — and, line by line, as the --record file of `piflash --all` through
 * pf_report_record_line(). Checks: no crash, leak or undefined behaviour; the checks return 0 or
 * -EINVAL; a record they accept has a valid hostname and a status string, and a record line
 * they accept has string (or absent) node and result.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build/report.h"
#include "fuzz.h"
#include "node/config.h"
#include "util/error.h"

static void check_report(const uint8_t *data, size_t size)
{
	json_tokener *tok = json_tokener_new();
	json_object *root, *nodes = NULL;

	if (!tok)
		abort();
	root = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	if (!root)
		return;
	if (json_object_object_get_ex(root, "nodes", &nodes) &&
	    json_object_is_type(nodes, json_type_array))
		for (size_t i = 0; i < json_object_array_length(nodes); i++) {
			const char *host = NULL, *status = NULL;
			int r = pf_report_record_check(json_object_array_get_idx(nodes, i), &host,
						       &status);

			if (r != 0 && r != -EINVAL)
				abort();
			if (r == 0 && (!host || !status || pf_hostname_validate(host) < 0))
				abort();
			pf_error_clear();
		}
	json_object_put(root);
}

static void check_record(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	unsigned lineno = 0;

	if (!text)
		abort();
	memcpy(text, data, size);
	text[size] = 0;
	for (char *line = text, *next; line; line = next) {
		const char *node = (const char *)1, *result = (const char *)1;
		json_object *o;
		int r;

		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		o = json_tokener_parse(line);
		r = pf_report_record_line(o, "fuzz.record", lineno, &node, &result);
		if (r != 0 && r != -EINVAL)
			abort();
		if (r == 0 && ((node && strlen(node) > size) || (result && strlen(result) > size)))
			abort();
		json_object_put(o);
		pf_error_clear();
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 256 * 1024)
		return 0;
	check_report(data, size);
	check_record(data, size);
	return 0;
}
