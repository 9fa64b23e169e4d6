/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "build/cluster.h"
#include "util/error.h"
#include "util/strutil.h"

#define SHARDS_MAX 1000u

int pf_selection_parse_shard(const char *arg, PfSelection *s)
{
	const char *slash = strchr(arg, '/');
	_cleanup_(freep) char *k = NULL;
	uint64_t kv, nv;

	if (!slash)
		return -EINVAL;
	k = strndup(arg, (size_t)(slash - arg));
	if (!k)
		return -ENOMEM;
	if (pf_parse_u64(k, &kv) < 0 || pf_parse_u64(slash + 1, &nv) < 0)
		return -EINVAL;
	if (nv < 1 || nv > SHARDS_MAX || kv < 1 || kv > nv)
		return -EINVAL;
	s->shard_k = (unsigned)kv;
	s->shard_n = (unsigned)nv;
	return 0;
}

const char *pf_row_hostname(const PfInventory *inv, const PfInventoryRow *row)
{
	return row->fields[inv->hostname_column];
}

/* Every name of list must be a hostname of inv. */
static int list_check(const PfInventory *inv, const char *list, const char *option)
{
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");
		bool found = false;

		if (n == 0)
			return pf_error_set(-EINVAL, "%s '%s': an empty name", option, list);
		for (size_t i = 0; i < inv->n_rows && !found; i++) {
			const char *h = pf_row_hostname(inv, &inv->rows[i]);

			found = strlen(h) == n && strncmp(h, p, n) == 0;
		}
		if (!found)
			return pf_error_set(-EINVAL, "%s: '%.*s' is not a hostname of '%s'", option,
					    (int)n, p, inv->path);
		p += n;
		p += *p == ',';
	}
	return 0;
}

int pf_selection_apply(const PfInventory *inv, const PfSelection *s, size_t **ret_rows,
		       size_t *ret_n)
{
	_cleanup_(freep) size_t *rows = calloc(inv->n_rows ?: 1, sizeof(size_t));
	size_t n = 0;
	int r;

	if (!rows)
		return -ENOMEM;
	if (s->only && (r = list_check(inv, s->only, "--only")) < 0)
		return r;
	if (s->exclude && (r = list_check(inv, s->exclude, "--exclude")) < 0)
		return r;
	for (size_t i = 0; i < inv->n_rows; i++) {
		const char *h = pf_row_hostname(inv, &inv->rows[i]);

		if (s->only && !pf_list_has(s->only, h, strlen(h)))
			continue;
		if (s->exclude && pf_list_has(s->exclude, h, strlen(h)))
			continue;
		if (s->shard_n && i % s->shard_n != s->shard_k - 1)
			continue;
		rows[n++] = i;
	}
	*ret_rows = TAKE_PTR(rows);
	*ret_n = n;
	return 0;
}

int pf_node_image(const PfImage *base, const PfNodeSpec *spec, const PfFlavorInfo *f, int64_t now,
		  PfImage **ret_img, PfNodeBuild *b)
{
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	int r;

	r = pf_image_fork(base, &img);
	if (r < 0)
		return r;
	r = pf_node_build(img, spec, f, false, b);
	if (r < 0)
		return r;
	r = pf_node_apply(img, b, now);
	if (r < 0)
		return pf_error_prefix(r, "'%s'", pf_image_path(img));
	r = pf_image_sync(img);
	if (r < 0)
		return r;
	*ret_img = TAKE_PTR(img);
	return 0;
}
