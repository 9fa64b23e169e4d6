/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "node/config.h"
#include "node/detect-ctx.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/strutil.h"

int pf_cloud_init_version_parse(const char *text, size_t len, char **ret_version, int *ret_major,
				int *ret_minor)
{
	size_t pos = 0;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos), *p, *e;
		size_t l = nl ? (size_t)(nl - line) : len - pos;
		char q, *v;
		int major = -1, minor = -1;

		pos += l + 1;
		if (l < 13 || memcmp(line, "__VERSION__", 11) != 0)
			continue;
		p = line + 11;
		while (p < line + l && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= line + l || *p++ != '=')
			continue;
		while (p < line + l && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= line + l || (*p != '"' && *p != '\''))
			continue;
		q = *p++;
		e = memchr(p, q, (size_t)(line + l - p));
		if (!e || e == p || (size_t)(e - p) > 64)
			continue;
		v = strndup(p, (size_t)(e - p));
		if (!v)
			return -ENOMEM;
		if (sscanf(v, "%d.%d", &major, &minor) < 1)
			major = minor = -1;
		*ret_version = v;
		*ret_major = major;
		*ret_minor = minor < 0 && major >= 0 ? 0 : minor;
		return 0;
	}
	return -ENOENT;
}

int pf_detect_cloud_init_version(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	_cleanup_(pf_detect_listing_done) Listing ls = { 0 };
	char **paths = NULL;
	size_t n_paths = 0;
	int r;

	/* Debian's path first, then /usr/lib/python3.X/{dist,site}-packages. */
	r = pf_strv_push(&paths, &n_paths, "/usr/lib/python3/dist-packages/cloudinit/version.py");
	if (r < 0)
		goto out;
	r = pf_detect_list_dir(c, "/usr/lib", &ls.d, &ls.n);
	if (r == -ENOMEM)
		goto out;
	if (r >= 0) {
		_cleanup_(pf_strv_freep) char **names = NULL;

		r = pf_detect_sorted_names(ls.d, ls.n, &names);
		if (r < 0)
			goto out;
		for (size_t i = 0; names[i] && n_paths < 64; i++) {
			char p[PF_PATH_MAX];

			if (!startswith(names[i], "python3") || streq(names[i], "python3"))
				continue;
			snprintf(p, sizeof(p), "/usr/lib/%s/dist-packages/cloudinit/version.py",
				 names[i]);
			r = pf_strv_push(&paths, &n_paths, p);
			if (r >= 0) {
				snprintf(p, sizeof(p),
					 "/usr/lib/%s/site-packages/cloudinit/version.py",
					 names[i]);
				r = pf_strv_push(&paths, &n_paths, p);
			}
			if (r < 0)
				goto out;
		}
	}
	r = 0;
	for (size_t i = 0; i < n_paths; i++) {
		_cleanup_(freep) char *text = NULL;
		size_t len;

		r = pf_detect_read_text(c, paths[i], TEXT_MAX, &text, &len);
		if (r == -ENOMEM)
			goto out;
		if (r < 0)
			continue;
		f->has_cloud_init = true;
		r = pf_cloud_init_version_parse(text, len, &f->cloud_init_version,
						&f->cloud_init_major, &f->cloud_init_minor);
		if (r == -ENOMEM)
			goto out;
		if (r >= 0) {
			r = evidence(c, "cloud-init %s (%s)", f->cloud_init_version, paths[i]);
			goto out;
		}
	}
	r = 0;
	if (!f->has_cloud_init && (pf_detect_is_file(c, "/usr/bin/cloud-init") ||
				   pf_detect_is_file(c, "/etc/cloud/cloud.cfg")))
		f->has_cloud_init = true;
	if (f->has_cloud_init)
		r = evidence(c, "cloud-init, version unknown (no cloudinit/version.py)");
out:
	pf_strv_free(paths);
	return r;
}

/* A `users:` entry: "default", a name, {name: ...}; strings may list several, comma-separated. */
static int cloud_user_string(PfFlavorInfo *f, const char *s, size_t *n)
{
	_cleanup_(freep) char *copy = strdup(s);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
		if (streq(w, "default"))
			f->cloud_users_default = true;
		else if (pf_username_validate(w) < 0)
			pf_error_clear(); /* not a name the node's rules accept: not used */
		else if (pf_strv_push(&f->cloud_users, n, w) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* A user's attributes from a users: entry or system_info.default_user; name may be NULL (then
 * the entry's own name: key). Later configuration files replace earlier ones whole. */
static int cloud_user_read(yaml_document_t *doc, yaml_node_t *map, const char *name,
			   const char *from, PfCloudUser *ret)
{
	PfCloudUser u = { 0 };
	int r = 0;

	if (!map || map->type != YAML_MAPPING_NODE)
		return 0;
	if (!name)
		name = yscalar(ymap_get(doc, map, "name"));
	if (!name)
		return 0;
	/* A name from the image reaches inventory.ini, known_hosts and terminals: it must be one
	 * the node's own rules accept, or it is no user piflash will use. */
	if (pf_username_validate(name) < 0) {
		pf_error_clear();
		return 0;
	}
	u.name = strdup(name);
	u.from = strdup(from);
	if (!u.name || !u.from)
		r = -ENOMEM;
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "gecos"), ",", true, &u.gecos);
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "groups"), ",", false, &u.groups);
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "shell"), ",", true, &u.shell);
	/* sudo: a string, or a list whose first rule is kept (cloud-init 22.4 wants a string). */
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "sudo"), ",", true, &u.sudo);
	if (r < 0) {
		free(u.name), free(u.from), free(u.gecos), free(u.groups), free(u.shell),
			free(u.sudo);
		return -ENOMEM;
	}
	free(ret->name), free(ret->from), free(ret->gecos), free(ret->groups), free(ret->shell),
		free(ret->sudo);
	*ret = u;
	return 0;
}

/* The first named entry of a users: list (the user a node's keys go to). */
int pf_detect_first_list_user(yaml_document_t *doc, yaml_node_t *users, const char *from,
			      PfCloudUser *ret)
{
	if (!users || users->type != YAML_SEQUENCE_NODE)
		return 0;
	for (yaml_node_item_t *i = users->data.sequence.items.start;
	     i < users->data.sequence.items.top; i++) {
		yaml_node_t *u = yaml_document_get_node(doc, *i);
		const char *name = yscalar(ymap_get(doc, u, "name"));

		if (name && !streq(name, "default"))
			return cloud_user_read(doc, u, NULL, from, ret);
	}
	return 0;
}

static int cloud_users(Ctx *c, yaml_document_t *doc, yaml_node_t *users)
{
	PfFlavorInfo *f = c->f;
	size_t n = 0;

	c->cc.users_set = true;
	pf_strv_free(f->cloud_users);
	f->cloud_users = NULL;
	f->cloud_users_default = false;
	if (yscalar(users))
		return cloud_user_string(f, yscalar(users), &n);
	if (users->type == YAML_MAPPING_NODE) {
		/* The old form: {name: {options}}. */
		for (yaml_node_pair_t *p = users->data.mapping.pairs.start;
		     p < users->data.mapping.pairs.top; p++) {
			const char *k = yscalar(yaml_document_get_node(doc, p->key));

			if (k && cloud_user_string(f, k, &n) < 0)
				return -ENOMEM;
		}
		return 0;
	}
	if (users->type != YAML_SEQUENCE_NODE)
		return 0;
	for (yaml_node_item_t *i = users->data.sequence.items.start;
	     i < users->data.sequence.items.top; i++) {
		yaml_node_t *u = yaml_document_get_node(doc, *i);
		const char *name;

		if (!u)
			continue;
		if (yscalar(u)) {
			if (cloud_user_string(f, yscalar(u), &n) < 0)
				return -ENOMEM;
			continue;
		}
		name = yscalar(ymap_get(doc, u, "name"));
		if (name && streq(name, "default"))
			f->cloud_users_default = true;
		else if (name && pf_username_validate(name) < 0)
			pf_error_clear();
		else if (name && pf_strv_push(&f->cloud_users, &n, name) < 0)
			return -ENOMEM;
	}
	return pf_detect_first_list_user(doc, users, c->cur_file, &c->cc.list_user);
}

static bool is_ssh_module(const char *s)
{
	return s && (streq(s, "ssh") || streq(s, "cc_ssh"));
}

static void cloud_modules(Ctx *c, yaml_document_t *doc, yaml_node_t *list, size_t stage)
{
	c->cc.modules_set[stage] = true;
	c->cc.modules_ssh[stage] = false;
	if (!list || list->type != YAML_SEQUENCE_NODE)
		return;
	for (yaml_node_item_t *i = list->data.sequence.items.start;
	     i < list->data.sequence.items.top; i++) {
		yaml_node_t *m = yaml_document_get_node(doc, *i);

		/* "ssh" or [ssh, frequency]. */
		if (m && m->type == YAML_SEQUENCE_NODE &&
		    m->data.sequence.items.start < m->data.sequence.items.top)
			m = yaml_document_get_node(doc, *m->data.sequence.items.start);
		if (is_ssh_module(yscalar(m)))
			c->cc.modules_ssh[stage] = true;
	}
}

/* system_info.default_user: its name (if the node's rules accept it) and attributes. */
static int cloud_default_user(Ctx *c, yaml_document_t *doc, yaml_node_t *root)
{
	PfFlavorInfo *f = c->f;
	yaml_node_t *nc = ymap_get(doc, ymap_get(doc, root, "system_info"), "default_user");
	yaml_node_t *n = ymap_get(doc, nc, "name");
	char from[PF_PATH_MAX + 32];
	int r;

	if (yscalar(n) && pf_username_validate(yscalar(n)) < 0) {
		pf_error_clear();
		return evidence(c,
				"%s: system_info.default_user.name is not a valid user name, "
				"ignoring",
				c->cur_file);
	}
	if (!yscalar(n))
		return 0;
	r = pf_set_str(&f->cloud_default_user, yscalar(n));
	if (r < 0)
		return r;
	snprintf(from, sizeof(from), "%s (system_info.default_user)", c->cur_file);
	return cloud_user_read(doc, nc, yscalar(n), from, &c->cc.default_user);
}

/* Replaces *v with the strings of n: a scalar, or the scalars of a sequence (a list is
 * replaced whole, as cloud-init merges lists). */
static int yaml_strv(yaml_document_t *doc, yaml_node_t *n, char ***v)
{
	size_t k = 0;

	pf_strv_free(*v);
	*v = calloc(1, sizeof(char *));
	if (!*v)
		return -ENOMEM;
	if (yscalar(n) && pf_strv_push(v, &k, yscalar(n)) < 0)
		return -ENOMEM;
	for (yaml_node_item_t *i = n->type == YAML_SEQUENCE_NODE ? n->data.sequence.items.start
								 : NULL;
	     i && i < n->data.sequence.items.top; i++) {
		const char *s = yscalar(yaml_document_get_node(doc, *i));

		if (s && pf_strv_push(v, &k, s) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Applies one configuration file, merged as cloud-init merges /etc/cloud: later files win,
 * dictionaries merge key by key, lists are replaced. */
static int cloud_apply(Ctx *c, yaml_document_t *doc)
{
	static const char *const stages[3] = { "cloud_init_modules", "cloud_config_modules",
					       "cloud_final_modules" };
	PfFlavorInfo *f = c->f;
	yaml_node_t *root = yaml_document_get_root_node(doc), *n, *nc;
	int r;

	if (!root || root->type != YAML_MAPPING_NODE)
		return 0;
	n = ymap_get(doc, root, "users");
	if (n && (r = cloud_users(c, doc, n)) < 0)
		return r;
	r = cloud_default_user(c, doc, root);
	if (r < 0)
		return r;
	n = ymap_get(doc, ymap_get(doc, ymap_get(doc, root, "system_info"), "network"),
		     "renderers");
	if (n && n->type == YAML_SEQUENCE_NODE && yaml_strv(doc, n, &f->cloud_init_renderers) < 0)
		return -ENOMEM;
	n = ymap_get(doc, root, "datasource_list");
	if (n && yaml_strv(doc, n, &f->datasource_list) < 0)
		return -ENOMEM;
	nc = ymap_get(doc, ymap_get(doc, root, "datasource"), "NoCloud");
	n = ymap_get(doc, nc, "fs_label");
	if (yscalar(n) && (r = pf_set_str(&f->nocloud_fs_label, yscalar(n))) < 0)
		return r;
	n = ymap_get(doc, nc, "seedfrom");
	if (yscalar(n) && (r = pf_set_str(&f->nocloud_seedfrom, yscalar(n))) < 0)
		return r;
	n = ymap_get(doc, root, "ssh_deletekeys");
	if (n && ybool(n) >= 0)
		f->ssh_deletekeys = ybool(n);
	for (size_t s = 0; s < 3; s++) {
		n = ymap_get(doc, root, stages[s]);
		if (n)
			cloud_modules(c, doc, n, s);
	}
	n = ymap_get(doc, ymap_get(doc, root, "network"), "config");
	if (yscalar(n))
		f->cloud_init_network_disabled = streq(yscalar(n), "disabled");
	return 0;
}

static int cloud_cfg_file(Ctx *c, const char *path)
{
	_cleanup_(freep) char *text = NULL;
	yaml_document_t doc;
	size_t len;
	int r;

	r = pf_detect_read_text(c, path, CLOUD_CFG_MAX, &text, &len);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	r = yaml_load(text, len, &doc);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		/* cloud-init skips such a file too (with a warning). */
		r = evidence(c, "%s: %s, ignoring", path, pf_error_message(r));
		pf_error_clear();
		return r;
	}
	c->cur_file = path;
	r = cloud_apply(c, &doc);
	c->cur_file = NULL;
	yaml_document_delete(&doc);
	return r;
}

/* One line of evidence: the users, datasources, NoCloud label, ssh module and deletekeys. */
static int cloud_cfg_evidence(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *users = NULL, *ds = NULL;
	size_t nu = pf_strv_length(f->cloud_users), nd = pf_strv_length(f->datasource_list);
	FILE *m;
	size_t sz;
	int r;

	m = open_memstream(&users, &sz);
	if (!m)
		return -ENOMEM;
	fputs(f->cloud_users_default ? "default" : "", m);
	for (size_t i = 0; i < nu; i++)
		fprintf(m, "%s%s", f->cloud_users_default || i ? ", " : "", f->cloud_users[i]);
	if (fclose(m) != 0)
		return -ENOMEM;
	m = open_memstream(&ds, &sz);
	if (!m)
		return -ENOMEM;
	for (size_t i = 0; i < nd; i++)
		fprintf(m, "%s%s", i ? ", " : "", f->datasource_list[i]);
	if (fclose(m) != 0)
		return -ENOMEM;
	r = evidence(c,
		     "cloud-init config: users [%s]%s%s%s, datasource_list %s%s%s%s%s, "
		     "ssh module %s, ssh_deletekeys %s%s",
		     users, f->cloud_default_user ? " (default_user " : "",
		     f->cloud_default_user ? f->cloud_default_user : "",
		     f->cloud_default_user ? ")" : "", f->datasource_list ? "[" : "",
		     f->datasource_list ? ds : "not set", f->datasource_list ? "]" : "",
		     f->nocloud_fs_label ? ", NoCloud fs_label " : "",
		     f->nocloud_fs_label ? f->nocloud_fs_label : "",
		     f->cloud_init_ssh_module ? "yes" : "no",
		     f->ssh_deletekeys < 0 ? "unset"
		     : f->ssh_deletekeys   ? "true"
					   : "false",
		     f->cloud_init_disabled ? "; disabled by /etc/cloud/cloud-init.disabled" : "");
	return r;
}

/* The .cfg files of /etc/cloud/cloud.cfg.d in name order, at most CLOUD_CFG_D_MAX_FILES. */
static int cloud_cfg_dir(Ctx *c)
{
	_cleanup_(pf_detect_listing_done) Listing ls = { 0 };
	_cleanup_(pf_strv_freep) char **names = NULL;
	size_t used = 0;
	int r;

	r = pf_detect_list_dir(c, "/etc/cloud/cloud.cfg.d", &ls.d, &ls.n);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		r = pf_detect_sorted_names(ls.d, ls.n, &names);
		if (r < 0)
			return r;
		for (size_t i = 0; names[i]; i++) {
			char p[PF_PATH_MAX];

			if (!endswith(names[i], ".cfg"))
				continue;
			if (++used > CLOUD_CFG_D_MAX_FILES) {
				r = evidence(c,
					     "/etc/cloud/cloud.cfg.d: only the first %u files read",
					     CLOUD_CFG_D_MAX_FILES);
				if (r < 0)
					return r;
				break;
			}
			snprintf(p, sizeof(p), "/etc/cloud/cloud.cfg.d/%s", names[i]);
			r = cloud_cfg_file(c, p);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int pf_detect_cloud_cfg(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	int r;

	f->cloud_init_disabled = pf_detect_exists(c, "/etc/cloud/cloud-init.disabled");
	r = cloud_cfg_file(c, "/etc/cloud/cloud.cfg");
	if (r >= 0)
		r = cloud_cfg_dir(c);
	if (r < 0)
		return r;
	f->cloud_init_ssh_module =
		c->cc.modules_ssh[0] || c->cc.modules_ssh[1] || c->cc.modules_ssh[2];
	if (!c->cc.users_set)
		f->cloud_users_default = true; /* cloud-init's own default: [default] */
	if (!f->cloud_users) {
		f->cloud_users = calloc(1, sizeof(char *));
		if (!f->cloud_users)
			return -ENOMEM;
	}

	return cloud_cfg_evidence(c);
}

/* The account cloud-init will make for the node: the seed's own users: entry first (it is what
 * cloud-init would apply), then the configuration's users: list, then its default user. */
int pf_detect_cloud_user(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	PfCloudUser *u = NULL;

	if (c->cc.seed_user.name)
		u = &c->cc.seed_user;
	else if (f->cloud_users_default && c->cc.default_user.name)
		u = &c->cc.default_user;
	else if (c->cc.list_user.name)
		u = &c->cc.list_user;
	else if (c->cc.default_user.name)
		u = &c->cc.default_user;
	if (!u)
		return 0;
	f->cloud_user = *u;
	*u = (PfCloudUser){ 0 };
	return evidence(c, "cloud-init user: %s (from %s)", f->cloud_user.name, f->cloud_user.from);
}

void pf_detect_cloud_cfg_done(CloudCfg *cc)
{
	pf_cloud_user_done(&cc->default_user);
	pf_cloud_user_done(&cc->list_user);
	pf_cloud_user_done(&cc->seed_user);
}
