/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* Small json-c helpers for the JSON piflash writes (report.json, --json, records). */

#include <json-c/json.h>

/* A JSON string, or JSON null for NULL. */
static inline json_object *pf_json_str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}
