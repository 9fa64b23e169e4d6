/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "sys/stat.h"
#include "node/config.h"
#include "node/detect-ctx.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- seed ---- */

/* ds=nocloud;s=file:///path/ (or seedfrom=) on the kernel command line. */
static int cmdline_seedfrom(const char *cmdline, char **ret)
{
	_cleanup_(freep) char *copy = strdup(cmdline);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		char *s2 = NULL;

		if (!startswith(w, "ds=nocloud"))
			continue;
		for (char *kv = strtok_r(w, ";", &s2); kv; kv = strtok_r(NULL, ";", &s2)) {
			const char *v = startswith(kv, "s=") ?: startswith(kv, "seedfrom=");

			if (v) {
				*ret = strdup(v);
				return *ret ? 1 : -ENOMEM;
			}
		}
	}
	return 0;
}

/* A seed directory "N:/dir" from a file:// or absolute seedfrom. */
static int seed_from_path(Ctx *c, const char *seedfrom, char **ret)
{
	_cleanup_(freep) char *path = NULL, *inner = NULL;
	const char *p = startswith(seedfrom, "file://") ?: seedfrom;
	const PfPartition *part;
	size_t l;
	int r;

	if (p[0] != '/' || !c->f->root)
		return -ENOENT;
	path = strdup(p);
	if (!path)
		return -ENOMEM;
	l = strlen(path);
	while (l > 1 && path[l - 1] == '/')
		path[--l] = 0;
	if (pf_path_validate(path) < 0) {
		pf_error_clear();
		return -ENOENT;
	}
	r = pf_tree_resolve(c->tree, NULL, path, true, &part, &inner);
	if (r < 0)
		return pf_detect_absent(c, r, path);
	return pf_detect_format_location(part, inner, ret);
}

/* datasource_list unset (every datasource) or naming NoCloud. */
static bool nocloud_listed(const PfFlavorInfo *f)
{
	if (!f->datasource_list)
		return true;
	for (size_t i = 0; f->datasource_list[i]; i++)
		if (strcasecmp(f->datasource_list[i], "NoCloud") == 0)
			return true;
	return false;
}

/* 1. The seed directories of the root (HypriotOS: links to the FAT). */
static int seed_from_links(Ctx *c)
{
	static const char *const seed_dirs[] = { "/var/lib/cloud/seed/nocloud-net",
						 "/var/lib/cloud/seed/nocloud" };
	PfFlavorInfo *f = c->f;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(seed_dirs) && !f->seed_dir; i++) {
		_cleanup_(freep) char *lpath = NULL, *linner = NULL, *inner = NULL, *target = NULL,
				      *dir = NULL;
		const PfPartition *lpart, *part;
		PfStat st;
		PfFs *fs;

		if (asprintf(&lpath, "%s/user-data", seed_dirs[i]) < 0)
			return -ENOMEM;
		r = pf_detect_locate(c, lpath, false, &lpart, &fs, &linner, &st);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		if (S_ISLNK(st.mode)) {
			r = pf_fs_readlink(fs, linner, &target);
			if (r < 0 && pf_detect_absent(c, r, lpath) == -ENOMEM)
				return -ENOMEM;
		}
		/* Where the link leads, even if the file is not there yet. */
		r = pf_tree_resolve(c->tree, NULL, lpath, true, &part, &inner);
		if (r < 0) {
			if (pf_detect_absent(c, r, lpath) == -ENOMEM)
				return -ENOMEM;
			continue;
		}
		dir = pf_detect_dir_of(inner);
		if (!dir || pf_detect_format_location(part, dir, &f->seed_dir) < 0)
			return -ENOMEM;
		if (target)
			r = asprintf(&f->seed_how, "link %s -> %s", lpath, target);
		else
			r = asprintf(&f->seed_how, "files in %s", seed_dirs[i]);
		if (r < 0)
			return -ENOMEM;
	}
	return 0;
}

/* 2. ds=nocloud;s=... on the kernel command line, 3. seedfrom in the config. */
static int seed_from_seedfrom(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *cmd_seed = NULL;
	int r;

	if (!f->seed_dir && f->cmdline) {
		r = cmdline_seedfrom(f->cmdline, &cmd_seed);
		if (r < 0)
			return r;
		if (cmd_seed) {
			r = seed_from_path(c, cmd_seed, &f->seed_dir);
			if (r == -ENOMEM)
				return r;
			if (f->seed_dir &&
			    asprintf(&f->seed_how, "cmdline seedfrom %s", cmd_seed) < 0)
				return -ENOMEM;
			if (!f->nocloud_seedfrom && pf_set_str(&f->nocloud_seedfrom, cmd_seed) < 0)
				return -ENOMEM;
		}
	}
	if (!f->seed_dir && f->nocloud_seedfrom) {
		r = seed_from_path(c, f->nocloud_seedfrom, &f->seed_dir);
		if (r == -ENOMEM)
			return r;
		if (f->seed_dir &&
		    asprintf(&f->seed_how, "NoCloud seedfrom %s", f->nocloud_seedfrom) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* 4. A filesystem labelled fs_label (cloud-init's default: cidata), any case. */
static int seed_from_label(Ctx *c, const char *label)
{
	PfFlavorInfo *f = c->f;

	for (size_t i = 0; i < c->t->n_parts && !f->seed_dir; i++) {
		const PfPartition *p = &c->t->parts[i];

		if (!p->label || strcasecmp(p->label, label) != 0)
			continue;
		if (pf_detect_format_location(p, "/", &f->seed_dir) < 0 ||
		    asprintf(&f->seed_how, "filesystem label %s", label) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* 5. NoCloud always looks in its seed directory on the root filesystem: where cloud-init
 * runs, lists NoCloud and has no other seed, piflash puts the seed there. */
static int seed_default_dir(Ctx *c)
{
	PfFlavorInfo *f = c->f;

	if (f->seed_dir || !f->cloud_init_enabled || !f->root || !nocloud_listed(f))
		return 0;
	if (pf_detect_format_location(f->root, "/var/lib/cloud/seed/nocloud", &f->seed_dir) < 0 ||
	    asprintf(&f->seed_how, "NoCloud's seed directory on the root filesystem "
				   "(none there yet)") < 0)
		return -ENOMEM;
	return 0;
}

/* Reads a seed file and parses it: 1 with *doc loaded (the caller deletes it), 0 when the file
 * is missing or no YAML, -ENOMEM. *ret_text is the file's text when it exists. */
static int seed_load(Ctx *c, PfFs *fs, const char *path, const char *what, char **ret_text,
		     size_t *ret_len, yaml_document_t *doc)
{
	int r;

	r = pf_detect_read_fs_text(c, fs, path, what, TEXT_MAX, ret_text, ret_len);
	if (r == -ENOMEM)
		return r;
	return r >= 0 && yaml_load(*ret_text, *ret_len, doc) >= 0;
}

/* The seed's meta-data now, and its instance-id. */
static int seed_read_meta(Ctx *c, PfFs *fs, const char *path)
{
	PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *meta = NULL;
	yaml_document_t doc;
	size_t len;
	int r;

	r = seed_load(c, fs, path, "seed meta-data", &meta, &len, &doc);
	if (r < 0)
		return r;
	if (r > 0) {
		const char *id =
			yscalar(ymap_get(&doc, yaml_document_get_root_node(&doc), "instance-id"));

		r = id ? pf_set_str(&f->seed_instance_id, id) : 0;
		yaml_document_delete(&doc);
		if (r < 0)
			return r;
	}
	if (meta) {
		f->seed_meta_data = TAKE_PTR(meta);
		f->seed_meta_data_len = len;
	}
	pf_error_clear();
	return 0;
}

/* The seed's user-data: kept when piflash edits it; its user is the node's. */
static int seed_read_user(Ctx *c, PfFs *fs, const PfPartition *part, const char *path)
{
	PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *user = NULL;
	yaml_document_t doc;
	size_t len;
	int r;

	r = seed_load(c, fs, path, "seed user-data", &user, &len, &doc);
	if (r < 0)
		return r;
	if (r > 0) {
		char from[PF_PATH_MAX + 32];

		snprintf(from, sizeof(from), "%u:%s (the seed)", part->number, path);
		r = pf_detect_first_list_user(
			&doc, ymap_get(&doc, yaml_document_get_root_node(&doc), "users"), from,
			&c->cc.seed_user);
		yaml_document_delete(&doc);
		if (r < 0)
			return r;
	}
	if (user) {
		f->seed_user_data = TAKE_PTR(user);
		f->seed_user_data_len = len;
	}
	pf_error_clear();
	return 0;
}

/* The version of the seed's network-config (1 or 2), when it says. */
static int seed_read_net(Ctx *c, PfFs *fs, const char *path)
{
	_cleanup_(freep) char *net = NULL;
	yaml_document_t doc;
	size_t len;
	int r;

	r = seed_load(c, fs, path, "seed network-config", &net, &len, &doc);
	if (r < 0)
		return r;
	if (r > 0) {
		yaml_node_t *root = yaml_document_get_root_node(&doc);
		const char *v = yscalar(ymap_get(&doc, root, "version"));

		if (!v)
			v = yscalar(ymap_get(&doc, ymap_get(&doc, root, "network"), "version"));
		if (v && (streq(v, "1") || streq(v, "2")))
			c->f->network_config_version = v[0] - '0';
		yaml_document_delete(&doc);
	}
	pf_error_clear();
	return 0;
}

/* What the seed holds now: the instance-id, the user-data and its user, the network-config
 * version. */
static int seed_read(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *p1 = NULL, *p2 = NULL, *p3 = NULL;
	const char *colon = strchr(f->seed_dir, ':'), *dir = colon + 1;
	const PfPartition *part = NULL;
	PfFs *fs;
	int r;

	for (size_t i = 0; i < c->t->n_parts; i++)
		if ((unsigned)strtoul(f->seed_dir, NULL, 10) == c->t->parts[i].number)
			part = &c->t->parts[i];
	if (!part || pf_tree_fs(c->tree, part, &fs) < 0) {
		pf_error_clear();
		return 0;
	}
	if (asprintf(&p1, "%s%smeta-data", dir, streq(dir, "/") ? "" : "/") < 0 ||
	    asprintf(&p2, "%s%snetwork-config", dir, streq(dir, "/") ? "" : "/") < 0 ||
	    asprintf(&p3, "%s%suser-data", dir, streq(dir, "/") ? "" : "/") < 0)
		return -ENOMEM;
	r = seed_read_meta(c, fs, p1);
	if (r >= 0)
		r = seed_read_user(c, fs, part, p3);
	if (r >= 0)
		r = seed_read_net(c, fs, p2);
	return r;
}

int pf_detect_seed(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	const char *label;
	int r;

	if (!f->has_cloud_init || !f->root)
		return 0;

	label = f->nocloud_fs_label ? f->nocloud_fs_label : "cidata";
	r = seed_from_links(c);
	if (r >= 0)
		r = seed_from_seedfrom(c);
	if (r >= 0)
		r = seed_from_label(c, label);
	if (r >= 0)
		r = seed_default_dir(c);
	if (r < 0)
		return r;

	if (!f->seed_dir)
		return evidence(c,
				"cloud-init seed: none found (no seed links, seedfrom or "
				"filesystem labelled %s)",
				label);
	r = evidence(c, "cloud-init seed: %s (%s)", f->seed_dir, f->seed_how);
	if (r < 0)
		return r;
	return seed_read(c);
}
