/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/image.h"
#include "util/error.h"

int image_open(Image *img, const char *path, const PfSourceOptions *so)
{
	int r;

	*img = (Image){ .path = path };
	r = pf_source_open(path, so, &img->src);
	if (r < 0)
		return log_error_errno(r, "'%s'", path);
	r = pf_ptable_read(pf_source_fd(img->src), pf_source_size(img->src), &img->table);
	if (r < 0)
		return log_error_errno(r, "'%s'", path);
	r = pf_overlay_new(pf_source_fd(img->src), pf_source_size(img->src), &img->ov);
	if (r < 0)
		return log_error_errno(r, "'%s': cannot create overlay", path);
	r = pf_tree_new(img->ov, img->table, &img->tree);
	if (r < 0)
		return log_error_errno(r, "'%s'", path);
	return 0;
}

void image_close(Image *img)
{
	img->tree = pf_tree_free(img->tree);
	img->ov = pf_overlay_free(img->ov);
	img->table = pf_ptable_free(img->table);
	img->src = pf_source_free(img->src);
}

int image_lookup(Image *img, const char *spec, bool follow_last, const PfPartition **ret_part,
		 PfFs **ret_fs, char **ret_path)
{
	const PfPartition *part = NULL, *where;
	_cleanup_(freep) char *name = NULL;
	const char *path = spec, *colon;
	char *resolved;
	int r;

	colon = strchr(spec, ':');
	if (spec[0] != '/') {
		if (!colon || colon[1] != '/') {
			log_error("'%s': expected PART:/path (PART a partition number or label) "
				  "or /path",
				  spec);
			return -EINVAL;
		}
		name = strndup(spec, (size_t)(colon - spec));
		if (!name)
			return -ENOMEM;
		part = pf_ptable_find(img->table, name);
		if (!part)
			return log_error_errno(-ENOENT, "'%s'", img->path);
		path = colon + 1;
	}

	r = pf_tree_resolve(img->tree, part, path, follow_last, &where, &resolved);
	if (r < 0)
		return log_error_errno(r, "'%s': %s", img->path, spec);
	r = pf_tree_fs(img->tree, where, ret_fs);
	if (r < 0) {
		free(resolved);
		return log_error_errno(r, "'%s': %s", img->path, spec);
	}
	*ret_part = where;
	*ret_path = resolved;
	return 0;
}
