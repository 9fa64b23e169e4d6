/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reading back what earlier runs wrote, apart from batch.c and cards.c so that
 * tests/fuzz/fuzz-report.c feeds hostile files to the very code the program runs: the node
 * records of `piflash batch`'s report.json and the lines of `piflash --all`'s --record file.
 * Nothing here trusts a value before its type is known.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "build/report.h"
#include "version.h"
#include "flash/artifact.h"
#include "node/config.h"
#include "util/error.h"
#include "util/strutil.h"
#include "util/json.h"

bool pf_out_name_ok(const char *name)
{
	return name && *name && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..");
}

/*
 * Field key of rec as a string: *ret NULL when it is absent or null (an error if required),
 * -EINVAL for any other type. The file is ours, but anyone may have edited it: no value is
 * used before its type is known.
 */
static int field_str(json_object *rec, const char *key, bool required, const char **ret)
{
	json_object *v = NULL;

	*ret = NULL;
	if (!json_object_object_get_ex(rec, key, &v))
		return required ? pf_error_set(-EINVAL, "'%s' is missing", key) : 0;
	if (!v)
		return required ? pf_error_set(-EINVAL, "'%s' is null", key) : 0;
	if (!json_object_is_type(v, json_type_string))
		return pf_error_set(-EINVAL, "'%s' is not a string (%s)", key,
				    json_type_to_name(json_object_get_type(v)));
	*ret = json_object_get_string(v);
	return 0;
}

/* Field key of rec as a non-negative integer. */
static int field_size(json_object *rec, const char *key)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(rec, key, &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 0)
		return pf_error_set(-EINVAL, "'%s' is not a number of bytes", key);
	return 0;
}

static bool is_hex64(const char *s)
{
	return s && strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

/* A file name the record gives for hostname: hostname and one of the suffixes piflash uses. */
static bool record_name_ok(const char *name, const char *hostname, bool bmap)
{
	const char *suffix = startswith(name, hostname);

	if (!suffix || !pf_out_name_ok(name))
		return false;
	if (bmap)
		return streq(suffix, ".img.bmap");
	for (PfArtifactFormat f = PF_ARTIFACT_IMG; pf_artifact_suffix(f); f++)
		if (streq(suffix, pf_artifact_suffix(f)))
			return true;
	return false;
}

/*
 * Checks the shape of one node record of report.json: the types of every field read back,
 * and the fields that name files or are compared with them. What the fields say (a user
 * name, an address) is checked by job_check_listing() once a Job holds them. Sets *ret_host
 * and *ret_status. Returns 0 or -EINVAL with a detail naming the field.
 */
int pf_report_record_check(json_object *rec, const char **ret_host, const char **ret_status)
{
	const char *host, *status, *s;
	json_object *keys = NULL;
	uint64_t v;
	int r;

	if (!json_object_is_type(rec, json_type_object))
		return pf_error_set(-EINVAL, "not an object");
	if ((r = field_str(rec, "hostname", true, &host)) < 0)
		return r;
	if ((r = pf_hostname_validate(host)) < 0)
		return r;
	*ret_host = host;
	if ((r = field_str(rec, "status", true, &status)) < 0)
		return r;
	*ret_status = status;
	if (!streq(status, "ok") && !streq(status, "up-to-date") && !streq(status, "kept"))
		return 0; /* a node without an artifact: nothing more is read of it */

	if ((r = field_str(rec, "artifact", true, &s)) < 0)
		return r;
	if (!record_name_ok(s, host, false))
		return pf_error_set(-EINVAL, "'artifact' is not an artifact name of '%s'", host);
	if ((r = field_str(rec, "bmap", false, &s)) < 0)
		return r;
	if (s && !record_name_ok(s, host, true))
		return pf_error_set(-EINVAL, "'bmap' is not '%s.img.bmap'", host);
	if ((r = field_str(rec, "sha256", true, &s)) < 0)
		return r;
	if (!is_hex64(s))
		return pf_error_set(-EINVAL, "'sha256' is not 64 hex digits");
	if ((r = field_str(rec, "inputs", false, &s)) < 0)
		return r;
	if (s && !is_hex64(s))
		return pf_error_set(-EINVAL, "'inputs' is not 64 hex digits");
	if ((r = field_str(rec, "mtime_ns", true, &s)) < 0)
		return r;
	if (pf_parse_u64(s, &v) < 0 || v > INT64_MAX)
		return pf_error_set(-EINVAL, "'mtime_ns' is not a number of nanoseconds");
	if ((r = field_size(rec, "size")) < 0 || (r = field_size(rec, "image_size")) < 0)
		return r;
	if ((r = field_str(rec, "address", false, &s)) < 0 ||
	    (r = field_str(rec, "fqdn", false, &s)) < 0 ||
	    (r = field_str(rec, "user", false, &s)) < 0 ||
	    (r = field_str(rec, "instance_id", false, &s)) < 0)
		return r;

	if (!json_object_object_get_ex(rec, "host_keys", &keys) || !keys)
		return 0;
	if (!json_object_is_type(keys, json_type_array))
		return pf_error_set(-EINVAL, "'host_keys' is not an array");
	for (size_t i = 0; i < json_object_array_length(keys); i++) {
		json_object *k = json_object_array_get_idx(keys, i);

		if (!json_object_is_type(k, json_type_object) ||
		    field_str(k, "public", true, &s) < 0 ||
		    field_str(k, "fingerprint", true, &s) < 0)
			return pf_error_set(-EINVAL,
					    "'host_keys[%zu]' is not an object with the strings "
					    "'public' and 'fingerprint'",
					    i);
	}
	return 0;
}

int pf_report_record_line(json_object *o, const char *path, unsigned lineno, const char **ret_node,
			  const char **ret_result)
{
	static const char *const keys[] = { "node", "result" };
	const char **rets[] = { ret_node, ret_result };

	*ret_node = *ret_result = NULL;
	if (!o || !json_object_is_type(o, json_type_object))
		return pf_error_set(-EINVAL, "%s:%u: not a JSON record line", path, lineno);
	for (size_t i = 0; i < 2; i++) {
		json_object *v = NULL;

		if (!json_object_object_get_ex(o, keys[i], &v) || !v)
			continue;
		if (!json_object_is_type(v, json_type_string))
			return pf_error_set(-EINVAL, "%s:%u: '%s' is not a string (%s)", path,
					    lineno, keys[i],
					    json_type_to_name(json_object_get_type(v)));
		*rets[i] = json_object_get_string(v);
	}
	return 0;
}

static json_object *host_keys_json(const PfNodeResult *j)
{
	json_object *keys = json_object_new_array();

	for (size_t k = 0; k < j->n_host_keys; k++) {
		json_object *hk = json_object_new_object();
		const char *pub = j->host_keys[k];

		json_object_object_add(hk, "type",
				       json_object_new_string_len(pub, (int)strcspn(pub, " ")));
		json_object_object_add(hk, "fingerprint",
				       json_object_new_string(j->fingerprints[k]));
		json_object_object_add(hk, "public", json_object_new_string(pub));
		json_object_array_add(keys, hk);
	}
	return keys;
}

static json_object *node_json(const PfNodeResult *j, const char *flavor)
{
	json_object *o = json_object_new_object();
	bool listed = pf_node_result_listed(j);
	char mt[32];

	json_object_object_add(o, "hostname", json_object_new_string(j->hostname));
	json_object_object_add(o, "status", json_object_new_string(pf_node_status_name(j->status)));
	json_object_object_add(o, "error", pf_json_str(j->error));
	json_object_object_add(o, "address", pf_json_str(j->address));
	json_object_object_add(o, "fqdn", pf_json_str(j->fqdn));
	json_object_object_add(o, "group", pf_json_str(j->group));
	json_object_object_add(o, "user", pf_json_str(j->user));
	json_object_object_add(o, "flavor", json_object_new_string(flavor));
	json_object_object_add(o, "artifact", listed ? pf_json_str(j->artifact) : NULL);
	json_object_object_add(o, "bmap", listed ? pf_json_str(j->bmap) : NULL);
	json_object_object_add(o, "size", json_object_new_int64((int64_t)j->file_bytes));
	json_object_object_add(o, "image_size", json_object_new_int64((int64_t)j->image_bytes));
	json_object_object_add(o, "sha256", listed ? json_object_new_string(j->sha256) : NULL);
	json_object_object_add(o, "instance_id", pf_json_str(j->instance_id));
	json_object_object_add(o, "host_keys", host_keys_json(j));
	json_object_object_add(o, "seconds", json_object_new_double(j->seconds));
	json_object_object_add(o, "inputs",
			       j->inputs[0] ? json_object_new_string(j->inputs) : NULL);
	/* A string: more digits than a double (jq's numbers) holds. */
	snprintf(mt, sizeof(mt), "%" PRId64, j->mtime_ns);
	json_object_object_add(o, "mtime_ns", json_object_new_string(mt));
	return o;
}

char *pf_report_json(const PfNodeResult *results, size_t n, const char *image,
		     const char *inventory, const char *flavor, const char *format, double seconds)
{
	json_object *root = json_object_new_object(), *nodes = json_object_new_array();
	char *text;

	json_object_object_add(root, "piflash", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(root, "image", json_object_new_string(image));
	json_object_object_add(root, "inventory", json_object_new_string(inventory));
	json_object_object_add(root, "flavor", json_object_new_string(flavor));
	json_object_object_add(root, "format", json_object_new_string(format));
	json_object_object_add(root, "seconds", json_object_new_double(seconds));
	for (size_t i = 0; i < n; i++)
		if (results[i].status != PF_NODE_UNSELECTED)
			json_object_array_add(nodes, node_json(&results[i], flavor));
	json_object_object_add(root, "nodes", nodes);
	text = strdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
	return text;
}
