/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>

#include "cmd/report.h"
#include "util/error.h"
#include "util/macros.h"
#include "util/strutil.h"

json_object *report_previous_nodes(json_object *root)
{
	json_object *nodes, *byname;

	byname = json_object_new_object();
	if (json_object_object_get_ex(root, "nodes", &nodes) &&
	    json_object_is_type(nodes, json_type_array))
		for (size_t i = 0; i < json_object_array_length(nodes); i++) {
			json_object *n = json_object_array_get_idx(nodes, i), *h, *s;

			if (json_object_object_get_ex(n, "hostname", &h) &&
			    json_object_object_get_ex(n, "status", &s) &&
			    json_object_is_type(h, json_type_string) &&
			    /* "status": null has no string: streq() would get NULL. */
			    json_object_is_type(s, json_type_string) &&
			    (streq(json_object_get_string(s), "ok") ||
			     streq(json_object_get_string(s), "up-to-date") ||
			     streq(json_object_get_string(s), "kept")))
				json_object_object_add(byname, json_object_get_string(h),
						       json_object_get(n));
		}
	return byname;
}

int record_read_done(FILE *f, const char *path, void (*done)(const char *node, void *userdata),
		     void *userdata)
{
	_cleanup_(freep) char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, f)) > 0) {
		json_object *o, *node, *result;

		lineno++;
		if ((size_t)n > RECORD_LINE_MAX)
			continue;
		o = json_tokener_parse(line);
		if (!o)
			return pf_error_set(-EINVAL, "%s:%u: not a JSON record line", path, lineno);
		if (json_object_object_get_ex(o, "node", &node) &&
		    json_object_object_get_ex(o, "result", &result) &&
		    streq(json_object_get_string(result) ?: "", "ok"))
			done(json_object_get_string(node) ?: "", userdata);
		json_object_put(o);
	}
	return 0;
}
