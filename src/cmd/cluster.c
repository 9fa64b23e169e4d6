/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cluster.h"
#include "cmd/cmd.h"
#include "util/error.h"
#include "util/strutil.h"

#define SHARDS_MAX 1000u

int selection_parse_shard(const char *arg, Selection *s)
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

const char *row_hostname(const PfInventory *inv, const PfInventoryRow *row)
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
			return usage_error(NULL, "%s '%s': an empty name", option, list);
		for (size_t i = 0; i < inv->n_rows && !found; i++) {
			const char *h = row_hostname(inv, &inv->rows[i]);

			found = strlen(h) == n && strncmp(h, p, n) == 0;
		}
		if (!found)
			return usage_error(NULL, "%s: '%.*s' is not a hostname of '%s'", option,
					   (int)n, p, inv->path);
		p += n;
		p += *p == ',';
	}
	return PF_EXIT_OK;
}

int selection_apply(const PfInventory *inv, const Selection *s, size_t **ret_rows, size_t *ret_n)
{
	_cleanup_(freep) size_t *rows = calloc(inv->n_rows ?: 1, sizeof(size_t));
	size_t n = 0;
	int r;

	if (!rows)
		return PF_EXIT_FAILURE;
	if (s->only && (r = list_check(inv, s->only, "--only")) != PF_EXIT_OK)
		return r;
	if (s->exclude && (r = list_check(inv, s->exclude, "--exclude")) != PF_EXIT_OK)
		return r;
	for (size_t i = 0; i < inv->n_rows; i++) {
		const char *h = row_hostname(inv, &inv->rows[i]);

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
	return PF_EXIT_OK;
}

int cluster_check_overrides(const NodeOptions *no, const char *cmd)
{
	for (size_t i = 0; i < no->n_settings; i++)
		if (streq(no->settings[i].key, "ip"))
			return usage_error(cmd,
					   "--ip would give every node the same address: put the "
					   "addresses in the inventory's ip column");
	if (no->node)
		return usage_error(cmd, "--node is one node: choose nodes with --only");
	return PF_EXIT_OK;
}

int node_image_prepare(const Image *base, const NodeOptions *no, const PfFlavorInfo *f, int64_t now,
		       NodeImage *n)
{
	Image *img = &n->img;
	int r;

	*img = (Image){ .path = base->path, .src = base->src, .table = base->table };
	r = pf_overlay_new(pf_source_fd(base->src), pf_source_size(base->src), &img->ov);
	if (r < 0)
		return pf_error_prefix(r, "cannot create an overlay");
	r = pf_tree_new(img->ov, img->table, &img->tree);
	if (r < 0)
		return r;
	r = node_build(img, no, f, false, &n->nb);
	if (r < 0)
		return r;
	r = pf_plan_apply(img->tree, img->table, n->nb.plan, now);
	if (r < 0)
		return pf_error_prefix(r, "'%s'", img->path);
	return pf_tree_sync(img->tree);
}

void node_image_done(NodeImage *n)
{
	node_build_done(&n->nb);
	n->img.tree = pf_tree_free(n->img.tree);
	n->img.ov = pf_overlay_free(n->img.ov);
	/* src and table belong to the base. */
	n->img.src = NULL;
	n->img.table = NULL;
}
