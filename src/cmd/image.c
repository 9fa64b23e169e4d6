/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/image.h"
#include "cmd/output.h"
#include "disk/fetch.h"
#include "util/error.h"

int image_option_sha256(PfSourceOptions *so, const char *cmd, const char *arg)
{
	static char hex[65]; /* one image per command */

	if (pf_sha256_parse(arg, hex) < 0)
		return usage_error(cmd, "--sha256 '%s': expected 64 hexadecimal digits", arg);
	so->sha256 = hex;
	return PF_EXIT_OK;
}

static void download_progress(uint64_t done, uint64_t total, void *userdata)
{
	output_progress_phase("download", done, total == UINT64_MAX ? 0 : total);
}

int image_open(Image *img, const char *path, const PfSourceOptions *so)
{
	PfSourceOptions o = so ? *so : (PfSourceOptions){ 0 };
	int r;

	*img = (Image){ .path = path };
	if (!o.fetch_progress)
		o.fetch_progress = download_progress;
	if (pf_fetch_is_url(path))
		log_info("Downloading '%s'%s", path, o.no_cache ? " (not cached)" : "");
	r = pf_source_open(path, &o, &img->src);
	output_progress_phase(NULL, 0, 0);
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
