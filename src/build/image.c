/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "build/image.h"
#include "util/error.h"

struct PfImage {
	char *path;
	PfSource *src;	 /* NULL in a fork: the base's */
	PfPtable *table; /* the same */
	const PfImage *base;
	PfOverlay *ov;
	PfTree *tree;
};

/* The overlay and tree of img over its (or its base's) source and table. */
static int image_layer(PfImage *img)
{
	PfSource *src = pf_image_source(img);
	int r;

	r = pf_overlay_new(pf_source_fd(src), pf_source_size(src), &img->ov);
	if (r < 0)
		return pf_error_prefix(r, "cannot create an overlay");
	return pf_tree_new(img->ov, pf_image_table(img), &img->tree);
}

int pf_image_open(const char *path, const PfSourceOptions *so, PfImage **ret)
{
	_cleanup_(pf_image_freep) PfImage *img = calloc(1, sizeof(PfImage));
	int r;

	if (!img || !(img->path = strdup(path)))
		return -ENOMEM;
	r = pf_source_open(path, so, &img->src);
	if (r < 0)
		return r;
	r = pf_ptable_read(pf_source_fd(img->src), pf_source_size(img->src), &img->table);
	if (r < 0)
		return r;
	r = image_layer(img);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(img);
	return 0;
}

int pf_image_fork(const PfImage *base, PfImage **ret)
{
	_cleanup_(pf_image_freep) PfImage *img = calloc(1, sizeof(PfImage));
	int r;

	if (!img || !(img->path = strdup(base->path)))
		return -ENOMEM;
	img->base = base;
	r = image_layer(img);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(img);
	return 0;
}

PfImage *pf_image_free(PfImage *img)
{
	if (!img)
		return NULL;
	pf_tree_free(img->tree);
	pf_overlay_free(img->ov);
	pf_ptable_free(img->table);
	pf_source_free(img->src);
	free(img->path);
	free(img);
	return NULL;
}

const char *pf_image_path(const PfImage *img)
{
	return img->path;
}

PfSource *pf_image_source(const PfImage *img)
{
	return img->base ? img->base->src : img->src;
}

PfPtable *pf_image_table(const PfImage *img)
{
	return img->base ? img->base->table : img->table;
}

PfOverlay *pf_image_overlay(const PfImage *img)
{
	return img->ov;
}

PfTree *pf_image_tree(const PfImage *img)
{
	return img->tree;
}

int pf_image_lookup(PfImage *img, const char *spec, bool follow_last, const PfPartition **ret_part,
		    PfFs **ret_fs, char **ret_path)
{
	const PfPartition *part = NULL, *where;
	_cleanup_(freep) char *name = NULL;
	const char *path = spec, *colon;
	char *resolved;
	int r;

	colon = strchr(spec, ':');
	if (spec[0] != '/') {
		if (!colon || colon[1] != '/')
			return pf_error_set(-EINVAL,
					    "'%s': expected PART:/path (PART a partition number or "
					    "label) or /path",
					    spec);
		name = strndup(spec, (size_t)(colon - spec));
		if (!name)
			return -ENOMEM;
		part = pf_ptable_find(pf_image_table(img), name);
		if (!part)
			return pf_error_prefix(-ENOENT, "'%s'", img->path);
		path = colon + 1;
	}

	r = pf_tree_resolve(img->tree, part, path, follow_last, &where, &resolved);
	if (r < 0)
		return pf_error_prefix(r, "'%s': %s", img->path, spec);
	r = pf_tree_fs(img->tree, where, ret_fs);
	if (r < 0) {
		free(resolved);
		return pf_error_prefix(r, "'%s': %s", img->path, spec);
	}
	*ret_part = where;
	*ret_path = resolved;
	return 0;
}

int pf_image_put_file(PfImage *img, const char *spec, const void *data, size_t size,
		      const PfAttr *attr, const PfPartition **ret_part, char **ret_path)
{
	_cleanup_(freep) char *path = NULL;
	PfAttr dir_attr = { .mode = 0755, .mtime = attr->mtime };
	const PfPartition *part;
	char *slash;
	PfFs *fs;
	int r;

	r = pf_image_lookup(img, spec, true, &part, &fs, &path);
	if (r < 0)
		return r;
	slash = strrchr(path, '/');
	if (slash && slash != path) {
		*slash = 0;
		r = pf_fs_mkdir_p(fs, path, &dir_attr);
		*slash = '/';
		if (r < 0)
			return pf_error_prefix(
				r, "'%s': partition %u: cannot create the directories of '%s'",
				img->path, part->number, path);
	}
	r = pf_fs_write_file(fs, path, data, size, attr);
	if (r < 0)
		return pf_error_prefix(r, "'%s': partition %u: cannot write '%s'", img->path,
				       part->number, path);
	if (ret_part)
		*ret_part = part;
	if (ret_path)
		*ret_path = TAKE_PTR(path);
	return 0;
}

int pf_image_sync(PfImage *img)
{
	return pf_tree_sync(img->tree);
}
