/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "node/passwd.h"
#include "node/units.h"
#include "util/error.h"
#include "util/strutil.h"

#define MAX_LINKS 4096u
#define MAX_ENABLED_READ 512u
#define UNIT_TEXT_MAX (64u * 1024u)

/* Where packages install unit files, most specific first (what systemd searches, less /run). */
static const char *const unit_dirs[] = { "/etc/systemd/system", "/lib/systemd/system",
					 "/usr/lib/systemd/system" };

typedef struct Link {
	char *path;   /* "/etc/systemd/system/multi-user.target.wants/ssh.service" */
	char *name;   /* "ssh.service" */
	char *target; /* what the link points to, NULL for a regular file */
	bool wants;   /* in a *.wants or *.requires directory */
} Link;

struct PfUnits {
	PfTree *tree;
	Link *links;
	size_t n_links;
};

const char *pf_unit_state_name(PfUnitState s)
{
	static const char *const names[_PF_UNIT_STATE_MAX] = {
		[PF_UNIT_ABSENT] = "absent",
		[PF_UNIT_PRESENT] = "present",
		[PF_UNIT_ENABLED] = "enabled",
		[PF_UNIT_MASKED] = "masked",
	};

	return s >= 0 && s < _PF_UNIT_STATE_MAX ? names[s] : "absent";
}

void pf_unit_done(PfUnit *u)
{
	free(u->name);
	free(u->file);
	free(u->link);
	*u = (PfUnit){ 0 };
}

PfUnits *pf_units_free(PfUnits *u)
{
	if (!u)
		return NULL;
	for (size_t i = 0; i < u->n_links; i++) {
		free(u->links[i].path);
		free(u->links[i].name);
		free(u->links[i].target);
	}
	free(u->links);
	free(u);
	return NULL;
}

static const char *basename_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* Lists directory path of the booted view: 0, -ENOENT (also: not a directory) or -ENOMEM. */
static int list_tree(PfTree *tree, const char *path, PfDirent **ret, size_t *ret_n)
{
	int r = pf_tree_list(tree, path, ret, ret_n);

	if (r < 0 && r != -ENOMEM) {
		pf_error_clear();
		return -ENOENT;
	}
	return r;
}

static int add_link(PfUnits *u, const char *dir, const char *name, bool wants)
{
	_cleanup_(freep) char *path = NULL, *inner = NULL, *target = NULL;
	PfStat st;
	PfFs *fs;
	Link *n;
	int r;

	if (u->n_links >= MAX_LINKS)
		return 0;
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	r = pf_tree_stat(u->tree, path, false, &fs, &inner, &st);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		pf_error_clear();
		return 0;
	}
	if (S_ISLNK(st.mode)) {
		r = pf_fs_readlink(fs, inner, &target);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			pf_error_clear();
			return 0;
		}
	} else if (!S_ISREG(st.mode) || !wants)
		return 0; /* top level: only links (masks, aliases) matter here */

	n = reallocarray(u->links, u->n_links + 1, sizeof(Link));
	if (!n)
		return -ENOMEM;
	u->links = n;
	n[u->n_links] =
		(Link){ .path = TAKE_PTR(path), .target = TAKE_PTR(target), .wants = wants };
	n[u->n_links].name = strdup(name);
	if (!n[u->n_links].name) {
		free(n[u->n_links].path);
		free(n[u->n_links].target);
		return -ENOMEM;
	}
	u->n_links++;
	return 0;
}

static int load_dir(PfUnits *u, const char *dir, bool top_links)
{
	PfDirent *d = NULL;
	size_t n = 0;
	int r;

	r = list_tree(u->tree, dir, &d, &n);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	for (size_t i = 0; i < n && r >= 0; i++) {
		_cleanup_(freep) char *sub = NULL;
		PfDirent *w = NULL;
		size_t nw = 0;

		if (endswith(d[i].name, ".wants") || endswith(d[i].name, ".requires")) {
			if (asprintf(&sub, "%s/%s", dir, d[i].name) < 0) {
				r = -ENOMEM;
				break;
			}
			r = list_tree(u->tree, sub, &w, &nw);
			if (r == -ENOMEM)
				break;
			r = 0;
			for (size_t k = 0; k < nw && r >= 0; k++)
				r = add_link(u, sub, w[k].name, true);
			pf_dirents_free(w, nw);
		} else if (top_links)
			r = add_link(u, dir, d[i].name, false);
	}
	pf_dirents_free(d, n);
	return r < 0 ? r : 0;
}

int pf_units_load(PfTree *tree, PfUnits **ret)
{
	_cleanup_(pf_units_freep) PfUnits *u = calloc(1, sizeof(PfUnits));
	int r;

	if (!u)
		return -ENOMEM;
	u->tree = tree;
	for (size_t i = 0; i < ELEMENTSOF(unit_dirs); i++) {
		r = load_dir(u, unit_dirs[i], i == 0);
		if (r < 0)
			return r;
	}
	*ret = TAKE_PTR(u);
	return 0;
}

/* The unit file of name: the first of the unit directories that has it (not a mask). */
static int find_file(PfUnits *u, const char *name, char **ret_path, char **ret_text)
{
	for (size_t i = 0; i < ELEMENTSOF(unit_dirs); i++) {
		_cleanup_(freep) char *path = NULL, *text = NULL;
		size_t len = 0;
		int r;

		if (asprintf(&path, "%s/%s", unit_dirs[i], name) < 0)
			return -ENOMEM;
		r = pf_tree_read_file(u->tree, path, UNIT_TEXT_MAX, &text, &len);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			pf_error_clear();
			continue;
		}
		*ret_path = TAKE_PTR(path);
		*ret_text = TAKE_PTR(text);
		return 0;
	}
	return -ENOENT;
}

static bool link_names(const Link *l, const char *name, char *const *aliases)
{
	if (streq(l->name, name) || (l->target && streq(basename_of(l->target), name)))
		return true;
	for (size_t i = 0; aliases && aliases[i]; i++)
		if (streq(l->name, aliases[i]))
			return true;
	return false;
}

int pf_units_get(PfUnits *u, const char *name, PfUnit *ret)
{
	_cleanup_(freep) char *file = NULL, *text = NULL;
	char **aliases = NULL;
	PfUnit unit = { 0 };
	int r;

	unit.name = strdup(name);
	if (!unit.name)
		return -ENOMEM;
	for (size_t i = 0; i < u->n_links; i++) {
		const Link *l = &u->links[i];

		if (!l->wants && l->target && streq(l->target, "/dev/null") &&
		    streq(l->name, name)) {
			unit.state = PF_UNIT_MASKED;
			unit.link = strdup(l->path);
			if (!unit.link)
				goto oom;
			*ret = unit;
			return 0;
		}
	}
	r = find_file(u, name, &file, &text);
	if (r == -ENOMEM)
		goto oom;
	if (r >= 0) {
		unit.state = PF_UNIT_PRESENT;
		unit.file = TAKE_PTR(file);
		if (pf_unit_file_values(text, "Install", "Alias", &aliases) < 0)
			goto oom;
	}
	/* A link in a .wants directory enables the unit even where its file lives somewhere
	 * piflash does not look (systemd would still load it from its search path). */
	for (size_t i = 0; i < u->n_links; i++) {
		const Link *l = &u->links[i];

		if (l->wants && link_names(l, name, aliases)) {
			unit.state = PF_UNIT_ENABLED;
			unit.link = strdup(l->path);
			if (!unit.link)
				goto oom;
			break;
		}
	}
	pf_strv_free(aliases);
	*ret = unit;
	return 0;
oom:
	pf_strv_free(aliases);
	pf_unit_done(&unit);
	return -ENOMEM;
}

int pf_units_foreach_enabled(PfUnits *u,
			     int (*fn)(const char *name, const char *link, const char *text,
				       void *userdata),
			     void *userdata)
{
	size_t read = 0;

	for (size_t i = 0; i < u->n_links && read < MAX_ENABLED_READ; i++) {
		_cleanup_(freep) char *text = NULL;
		const Link *l = &u->links[i];
		bool seen = false;
		size_t len = 0;
		int r;

		if (!l->wants)
			continue;
		for (size_t k = 0; k < i && !seen; k++)
			seen = u->links[k].wants && streq(u->links[k].name, l->name);
		if (seen)
			continue;
		read++;
		r = pf_tree_read_file(u->tree, l->path, UNIT_TEXT_MAX, &text, &len);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			pf_error_clear();
			continue;
		}
		r = fn(l->name, l->path, text, userdata);
		if (r != 0)
			return r;
	}
	return 0;
}

/* ---- unit files ---- */

static int strv_add(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv = reallocarray(*v, *n + 2, sizeof(char *));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strndup(s, len);
	if (!nv[*n])
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

static void strv_clear(char **v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free(v[i]);
	*n = 0;
	v[0] = NULL;
}

/* Splits a value on white space into words (systemd's lists: WantedBy=a b). */
static int add_words(char ***v, size_t *n, const char *s, bool words)
{
	if (!words)
		return strv_add(v, n, s, strlen(s));
	while (*s) {
		size_t l;

		s += strspn(s, " \t");
		l = strcspn(s, " \t");
		if (l && strv_add(v, n, s, l) < 0)
			return -ENOMEM;
		s += l;
	}
	return 0;
}

static int unit_values(const char *text, const char *section, const char *key, bool words,
		       char ***ret)
{
	_cleanup_(freep) char *line = NULL;
	char **v = calloc(1, sizeof(char *));
	bool in_section = false;
	size_t n = 0, cap = 0, ll = 0;

	if (!v)
		return -ENOMEM;
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		bool cont;

		/* Join continuation lines (a trailing backslash) into one logical line. */
		while (l && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
			l--;
		cont = l && p[l - 1] == '\\';
		if (cont)
			l--;
		if (ll + l + 2 > cap) {
			char *nline;

			cap = (ll + l + 2) * 2;
			nline = realloc(line, cap);
			if (!nline)
				goto oom;
			line = nline;
		}
		memcpy(line + ll, p, l);
		ll += l;
		line[ll] = 0;
		p = nl ? nl + 1 : NULL;
		if (cont && p) {
			line[ll++] = ' ';
			line[ll] = 0;
			continue;
		}

		{
			char *s = line + strspn(line, " \t"), *eq;

			ll = 0;
			if (*s == '#' || *s == ';' || !*s)
				continue;
			if (*s == '[') {
				char *e = strchr(s, ']');

				in_section = e && (size_t)(e - s - 1) == strlen(section) &&
					     strncmp(s + 1, section, strlen(section)) == 0;
				continue;
			}
			eq = strchr(s, '=');
			if (!in_section || !eq)
				continue;
			{
				char *k = s, *ke = eq, *val = eq + 1;

				while (ke > k && (ke[-1] == ' ' || ke[-1] == '\t'))
					ke--;
				if ((size_t)(ke - k) != strlen(key) || strncmp(k, key, strlen(key)))
					continue;
				val += strspn(val, " \t");
				if (!*val) {
					strv_clear(v, &n); /* an empty assignment resets */
					continue;
				}
				if (add_words(&v, &n, val, words) < 0)
					goto oom;
			}
		}
	}
	*ret = v;
	return 0;
oom:
	pf_strv_free(v);
	return -ENOMEM;
}

int pf_unit_file_values(const char *text, const char *section, const char *key, char ***ret)
{
	bool words = streq(section, "Install");

	return unit_values(text, section, key, words, ret);
}

int pf_unit_enable_links(const char *name, const char *text, char ***ret)
{
	static const struct {
		const char *key, *suffix;
	} deps[] = { { "WantedBy", ".wants" }, { "RequiredBy", ".requires" } };
	_cleanup_(pf_strv_freep) char **aliases = NULL;
	char **v = calloc(1, sizeof(char *));
	size_t n = 0;
	int r;

	if (!v)
		return -ENOMEM;
	for (size_t d = 0; d < ELEMENTSOF(deps); d++) {
		_cleanup_(pf_strv_freep) char **targets = NULL;

		r = pf_unit_file_values(text, "Install", deps[d].key, &targets);
		if (r < 0)
			goto fail;
		for (size_t i = 0; targets[i]; i++) {
			char p[PF_PATH_MAX];
			int l = snprintf(p, sizeof(p), "/etc/systemd/system/%s%s/%s", targets[i],
					 deps[d].suffix, name);

			if (l < 0 || (size_t)l >= sizeof(p) || strchr(targets[i], '/'))
				continue;
			r = strv_add(&v, &n, p, (size_t)l);
			if (r < 0)
				goto fail;
		}
	}
	r = pf_unit_file_values(text, "Install", "Alias", &aliases);
	if (r < 0)
		goto fail;
	for (size_t i = 0; aliases[i]; i++) {
		char p[PF_PATH_MAX];
		int l = snprintf(p, sizeof(p), "/etc/systemd/system/%s", aliases[i]);

		if (l < 0 || (size_t)l >= sizeof(p) || strchr(aliases[i], '/'))
			continue;
		r = strv_add(&v, &n, p, (size_t)l);
		if (r < 0)
			goto fail;
	}
	if (n == 0) {
		pf_strv_free(v);
		return pf_error_set(-ENOENT, "%s has no [Install] section to enable it by", name);
	}
	*ret = v;
	return 0;
fail:
	pf_strv_free(v);
	return r;
}
