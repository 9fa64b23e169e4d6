/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "fs/tree.h"
#include "util/error.h"
#include "util/strutil.h"

#define FSTAB_MAX_BYTES (64u * 1024u)

struct PfTree {
	PfOverlay *ov;
	const PfPtable *t;
	PfFs **fs; /* one per partition of t, NULL until opened */

	bool mounts_read;
	const PfPartition *root;
	PfMount mounts[PF_TREE_MAX_MOUNTS];
	size_t n_mounts;
};

int pf_tree_new(PfOverlay *ov, const PfPtable *t, PfTree **ret)
{
	PfTree *tree = calloc(1, sizeof(*tree));

	if (!tree)
		return -ENOMEM;
	tree->fs = calloc(t->n_parts + 1, sizeof(PfFs *));
	if (!tree->fs) {
		free(tree);
		return -ENOMEM;
	}
	tree->ov = ov;
	tree->t = t;
	*ret = tree;
	return 0;
}

PfTree *pf_tree_free(PfTree *tree)
{
	if (!tree)
		return NULL;
	for (size_t i = 0; i < tree->t->n_parts; i++)
		pf_fs_close(tree->fs[i]);
	for (size_t i = 0; i < tree->n_mounts; i++)
		free(tree->mounts[i].where);
	free(tree->fs);
	free(tree);
	return NULL;
}

int pf_tree_fs(PfTree *tree, const PfPartition *p, PfFs **ret)
{
	size_t i = (size_t)(p - tree->t->parts);
	PfVolume vol;
	int r;

	if (i >= tree->t->n_parts)
		return -EINVAL;
	if (!tree->fs[i]) {
		if (!p->fstype)
			return pf_error_set(-EPROTONOSUPPORT,
					    "partition %u holds no filesystem piflash recognises",
					    p->number);
		vol = (PfVolume){
			.overlay = tree->ov,
			.start_bytes = p->start_bytes,
			.size_bytes = p->size_bytes,
		};
		r = pf_fs_open(&vol, p->fstype, &tree->fs[i]);
		if (r < 0)
			return pf_error_prefix(r, "partition %u (%s%s%s)", p->number, p->fstype,
					       p->label ? " '" : "", p->label ? p->label : "");
	}
	*ret = tree->fs[i];
	return 0;
}

int pf_tree_sync(PfTree *tree)
{
	for (size_t i = 0; i < tree->t->n_parts; i++) {
		int r;

		if (!tree->fs[i])
			continue;
		r = pf_fs_sync(tree->fs[i]);
		if (r < 0)
			return pf_error_prefix(r, "partition %u", tree->t->parts[i].number);
	}
	return 0;
}

static bool is_dir(PfTree *tree, const PfPartition *p, const char *path)
{
	PfStat st;
	PfFs *fs;

	if (pf_tree_fs(tree, p, &fs) < 0 || pf_fs_stat(fs, path, &st) < 0)
		return false;
	return S_ISDIR(st.mode);
}

static const PfPartition *find_root(PfTree *tree)
{
	static const char *const root_labels[] = { "root", "rootfs", "writable" };
	const PfPartition *first = NULL;

	for (size_t i = 0; i < tree->t->n_parts; i++) {
		const PfPartition *p = &tree->t->parts[i];

		if (!p->fstype || !is_dir(tree, p, "/etc"))
			continue;
		for (size_t k = 0; k < ELEMENTSOF(root_labels); k++)
			if (p->label && streq(p->label, root_labels[k]))
				return p;
		if (!first)
			first = p;
	}
	pf_error_clear();
	return first;
}

/* Maps an fstab device field to a partition of the image, or NULL. */
static const PfPartition *fstab_device(PfTree *tree, const char *spec)
{
	const PfPtable *t = tree->t;
	const char *v;
	size_t l;

	if ((v = startswith(spec, "LABEL=")) || (v = startswith(spec, "/dev/disk/by-label/"))) {
		for (size_t i = 0; i < t->n_parts; i++)
			if (t->parts[i].label && streq(t->parts[i].label, v))
				return &t->parts[i];
		return NULL;
	}
	if ((v = startswith(spec, "UUID=")) || (v = startswith(spec, "/dev/disk/by-uuid/"))) {
		for (size_t i = 0; i < t->n_parts; i++)
			if (t->parts[i].uuid && strcasecmp(t->parts[i].uuid, v) == 0)
				return &t->parts[i];
		return NULL;
	}
	if ((v = startswith(spec, "PARTUUID=")) ||
	    (v = startswith(spec, "/dev/disk/by-partuuid/"))) {
		for (size_t i = 0; i < t->n_parts; i++)
			if (t->parts[i].partuuid && strcasecmp(t->parts[i].partuuid, v) == 0)
				return &t->parts[i];
		return NULL;
	}
	if (streq(spec, "/dev/root"))
		return tree->root;

	/* /dev/mmcblk0p2, /dev/nvme0n1p2, /dev/sda2, /dev/vda2: the trailing number. */
	if (startswith(spec, "/dev/") && (l = strlen(spec)) > 5 && spec[l - 1] >= '0' &&
	    spec[l - 1] <= '9') {
		const char *d = spec + l;
		uint64_t n;

		while (d > spec + 5 && d[-1] >= '0' && d[-1] <= '9')
			d--;
		if ((startswith(spec, "/dev/mmcblk") || startswith(spec, "/dev/nvme")) &&
		    d[-1] != 'p')
			return NULL; /* the whole disk */
		if (pf_parse_u64(d, &n) < 0)
			return NULL;
		for (size_t i = 0; i < t->n_parts; i++)
			if (t->parts[i].number == n)
				return &t->parts[i];
	}
	return NULL;
}

/* fstab escapes spaces and the like as \040 (octal). */
static void fstab_unescape(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '7' && r[2] >= '0' && r[2] <= '7' &&
		    r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 3;
		} else
			*w++ = *r;
	}
	*w = 0;
}

static int add_mount(PfTree *tree, const PfPartition *p, const char *where)
{
	size_t len = strlen(where);

	if (tree->n_mounts >= PF_TREE_MAX_MOUNTS)
		return 0;
	for (size_t i = 0; i < tree->n_mounts; i++)
		if (streq(tree->mounts[i].where, where))
			return 0;
	tree->mounts[tree->n_mounts].where =
		strndup(where, len > 1 && where[len - 1] == '/' ? len - 1 : len);
	if (!tree->mounts[tree->n_mounts].where)
		return -ENOMEM;
	tree->mounts[tree->n_mounts++].part = p;
	return 0;
}

static int read_fstab(PfTree *tree)
{
	_cleanup_(freep) uint8_t *data = NULL;
	char *text, *line, *save = NULL;
	size_t size;
	PfFs *fs;
	int r;

	r = pf_tree_fs(tree, tree->root, &fs);
	if (r < 0)
		return r;
	r = pf_fs_read_file(fs, "/etc/fstab", FSTAB_MAX_BYTES, &data, &size);
	if (r == -ENOENT) {
		pf_error_clear();
		return 0;
	}
	if (r < 0)
		return pf_error_prefix(r, "cannot read /etc/fstab");

	text = malloc(size + 1);
	if (!text)
		return -ENOMEM;
	memcpy(text, data, size);
	text[size] = 0;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *spec, *where, *type, *fsave = NULL;
		const PfPartition *p;

		spec = strtok_r(line, " \t", &fsave);
		if (!spec || spec[0] == '#')
			continue;
		where = strtok_r(NULL, " \t", &fsave);
		type = strtok_r(NULL, " \t", &fsave);
		if (!where || (type && (streq(type, "swap") || streq(type, "none"))))
			continue;
		fstab_unescape(spec);
		fstab_unescape(where);
		if (where[0] != '/' || streq(where, "/") || pf_path_validate(where) < 0)
			continue;
		p = fstab_device(tree, spec);
		if (!p || p == tree->root)
			continue;
		r = add_mount(tree, p, where);
		if (r < 0)
			break;
	}
	pf_error_clear();
	free(text);
	return r < 0 ? r : 0;
}

int pf_tree_mounts(PfTree *tree, const PfPartition **ret_root, const PfMount **ret_mounts,
		   size_t *ret_n)
{
	int r;

	if (!tree->mounts_read) {
		tree->root = find_root(tree);
		if (tree->root) {
			r = add_mount(tree, tree->root, "/");
			if (r < 0)
				return r;
			r = read_fstab(tree);
			if (r < 0)
				return r;
		}
		tree->mounts_read = true;
	}
	if (ret_root)
		*ret_root = tree->root;
	if (ret_mounts)
		*ret_mounts = tree->mounts;
	if (ret_n)
		*ret_n = tree->n_mounts;
	return 0;
}

/* The mount holding namespace path ns (longest mount point that is a prefix). */
static const PfMount *mount_of(PfTree *tree, const char *ns, const char **ret_local)
{
	const PfMount *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < tree->n_mounts; i++) {
		const char *w = tree->mounts[i].where;
		size_t l = streq(w, "/") ? 0 : strlen(w);

		if (strncmp(ns, w, l) != 0 || (ns[l] != '/' && ns[l] != 0))
			continue;
		if (!best || l > best_len) {
			best = &tree->mounts[i];
			best_len = l;
		}
	}
	if (best)
		*ret_local = ns[best_len] ? ns + best_len : "/";
	return best;
}

/* Where a mount point's path goes: the partition and the path inside it. */
typedef struct Loc {
	const PfPartition *part;
	char *path;
} Loc;

/* Maps a resolved path to a location: through the mounts, or inside `local` when set. */
static int locate(PfTree *tree, const PfPartition *local, const char *path, Loc *ret)
{
	const char *inner = path[0] ? path : "/";
	const PfMount *m = NULL;

	if (!local) {
		m = mount_of(tree, inner, &inner);
		if (!m)
			return pf_error_set(-ENOENT, "'%s' is on no partition of the image", path);
	}
	ret->part = m ? m->part : local;
	ret->path = strdup(inner);
	return ret->path ? 0 : -ENOMEM;
}

static int append(char *buf, size_t *len, const char *name, size_t n)
{
	if (*len + 1 + n >= PF_PATH_MAX)
		return pf_error_set(-ENAMETOOLONG, "path is longer than %u bytes", PF_PATH_MAX);
	buf[(*len)++] = '/';
	memcpy(buf + *len, name, n);
	*len += n;
	buf[*len] = 0;
	return 0;
}

/* A path being resolved, component by component. */
typedef struct Resolver {
	PfTree *tree;
	const char *path; /* as asked, for messages */
	bool follow_last;
	const PfPartition *local; /* resolved inside this partition alone, or NULL */
	char *todo;		  /* what is left to resolve starts at p */
	const char *p;
	char *cur; /* resolved so far (PF_PATH_MAX bytes) */
	size_t cur_len;
	unsigned links; /* symlinks followed */
} Resolver;

static void resolver_done(Resolver *rs)
{
	free(rs->todo);
	free(rs->cur);
}

/* A path on a partition becomes a path in the namespace where that partition is mounted; a
 * partition mounted nowhere is resolved on its own. */
static int resolver_start(Resolver *rs, const PfPartition *part)
{
	rs->cur = malloc(PF_PATH_MAX);
	if (!rs->cur)
		return -ENOMEM;
	rs->cur[0] = 0;

	if (part) {
		const char *where = NULL;

		for (size_t i = 0; i < rs->tree->n_mounts; i++)
			if (rs->tree->mounts[i].part == part)
				where = rs->tree->mounts[i].where;
		if (!where)
			rs->local = part;
		else if (!streq(where, "/")) {
			rs->cur_len = strlen(where);
			memcpy(rs->cur, where, rs->cur_len + 1);
		}
	} else if (!rs->tree->root)
		return pf_error_set(-ENOENT,
				    "the image has no root filesystem (no partition "
				    "with /etc) to resolve '%s' in",
				    rs->path);
	rs->todo = strdup(rs->path);
	if (!rs->todo)
		return -ENOMEM;
	rs->p = rs->todo;
	return 0;
}

/* The rest of a path whose component does not exist yet: taken literally. */
static int resolve_rest_literally(Resolver *rs)
{
	const char *p = rs->p, *slash;
	size_t n;
	int r;

	while (*p) {
		while (*p == '/')
			p++;
		slash = strchr(p, '/');
		n = slash ? (size_t)(slash - p) : strlen(p);
		if (n == 0)
			break;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return pf_error_set(-ENOENT, "'%s' does not exist", rs->cur);
		r = append(rs->cur, &rs->cur_len, p, n);
		if (r < 0)
			return r;
		p += n;
	}
	rs->p = p;
	return 0;
}

/* Replaces the symlink at inner (resolved to rs->cur) by its target: the target and what
 * was left become what is left; an absolute one starts again from the root. saved_len:
 * where rs->cur ended before the link's name. */
static int resolve_link(Resolver *rs, PfFs *fs, const char *inner, size_t saved_len)
{
	_cleanup_(freep) char *target = NULL, *rest = NULL;
	int r;

	if (++rs->links > PF_TREE_MAX_LINKS)
		return pf_error_set(-ELOOP, "more than %u symlinks while resolving '%s'",
				    PF_TREE_MAX_LINKS, rs->path);
	r = pf_fs_readlink(fs, inner, &target);
	if (r < 0)
		return r;
	if (asprintf(&rest, "%s/%s", target, rs->p) < 0)
		return -ENOMEM;
	if (strlen(rest) > PF_PATH_MAX)
		return pf_error_set(-ENAMETOOLONG, "path is longer than %u bytes", PF_PATH_MAX);
	free(rs->todo);
	rs->todo = TAKE_PTR(rest);
	rs->p = rs->todo;
	if (target[0] == '/') {
		/* Absolute: from the root filesystem (or the partition's root when it is
		 * resolved on its own). */
		rs->cur_len = 0;
	} else
		rs->cur_len = saved_len;
	rs->cur[rs->cur_len] = 0;
	return 0;
}

/* Resolves the next component. Returns 1 to go on, 0 when the path is resolved, or -errno. */
static int resolve_step(Resolver *rs)
{
	_cleanup_(freep) char *inner = NULL;
	const char *slash;
	size_t n, saved_len;
	Loc loc = { 0 };
	PfStat st;
	PfFs *fs;
	bool last;
	int r;

	while (*rs->p == '/')
		rs->p++;
	if (!*rs->p)
		return 0;
	slash = strchr(rs->p, '/');
	n = slash ? (size_t)(slash - rs->p) : strlen(rs->p);
	last = !slash || slash[strspn(slash, "/")] == 0;

	if (n == 1 && rs->p[0] == '.') {
		rs->p += n;
		return 1;
	}
	if (n == 2 && rs->p[0] == '.' && rs->p[1] == '.') {
		while (rs->cur_len > 0 && rs->cur[rs->cur_len - 1] != '/')
			rs->cur_len--;
		if (rs->cur_len > 0)
			rs->cur_len--;
		rs->cur[rs->cur_len] = 0;
		rs->p += n;
		return 1;
	}

	saved_len = rs->cur_len;
	r = append(rs->cur, &rs->cur_len, rs->p, n);
	if (r < 0)
		return r;
	rs->p += n;

	r = locate(rs->tree, rs->local, rs->cur, &loc);
	if (r < 0)
		return r;
	inner = loc.path;
	r = pf_tree_fs(rs->tree, loc.part, &fs);
	if (r >= 0)
		r = pf_fs_stat(fs, inner, &st);
	if (r == -ENOENT) {
		pf_error_clear();
		r = resolve_rest_literally(rs);
		return r < 0 ? r : 0;
	}
	if (r < 0)
		return r;
	if (S_ISLNK(st.mode) && (!last || rs->follow_last)) {
		r = resolve_link(rs, fs, inner, saved_len);
		return r < 0 ? r : 1;
	}
	if (!last && !S_ISDIR(st.mode))
		return pf_error_set(-ENOTDIR, "'%s' is not a directory", rs->cur);
	return 1;
}

int pf_tree_resolve(PfTree *tree, const PfPartition *part, const char *path, bool follow_last,
		    const PfPartition **ret_part, char **ret_path)
{
	_cleanup_(resolver_done) Resolver rs = {
		.tree = tree,
		.path = path,
		.follow_last = follow_last,
	};
	Loc loc = { 0 };
	int r;

	r = pf_path_validate(path);
	if (r < 0)
		return r;
	r = pf_tree_mounts(tree, NULL, NULL, NULL);
	if (r < 0)
		return r;
	r = resolver_start(&rs, part);
	if (r < 0)
		return r;
	do
		r = resolve_step(&rs);
	while (r > 0);
	if (r < 0)
		return r;

	r = locate(tree, rs.local, rs.cur, &loc);
	if (r < 0)
		return r;
	*ret_part = loc.part;
	*ret_path = loc.path;
	return 0;
}

int pf_tree_stat(PfTree *tree, const char *path, bool follow, PfFs **ret_fs, char **ret_inner,
		 PfStat *ret_st)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part;
	PfStat st;
	PfFs *fs;
	int r;

	r = pf_tree_resolve(tree, NULL, path, follow, &part, &inner);
	if (r >= 0)
		r = pf_tree_fs(tree, part, &fs);
	if (r >= 0)
		r = pf_fs_stat(fs, inner, &st);
	if (r < 0)
		return r;
	if (ret_fs)
		*ret_fs = fs;
	if (ret_inner)
		*ret_inner = TAKE_PTR(inner);
	if (ret_st)
		*ret_st = st;
	return 0;
}

int pf_tree_list(PfTree *tree, const char *path, PfDirent **ret, size_t *ret_n)
{
	_cleanup_(freep) char *inner = NULL;
	PfStat st;
	PfFs *fs;
	int r;

	r = pf_tree_stat(tree, path, true, &fs, &inner, &st);
	if (r < 0)
		return r;
	if (!S_ISDIR(st.mode))
		return pf_error_set(-ENOTDIR, "'%s' is not a directory", path);
	return pf_fs_list(fs, inner, ret, ret_n);
}

int pf_tree_read_file(PfTree *tree, const char *path, size_t max_bytes, char **ret, size_t *ret_len)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part;
	uint8_t *data = NULL;
	size_t size = 0;
	char *text;
	PfFs *fs;
	int r;

	r = pf_tree_resolve(tree, NULL, path, true, &part, &inner);
	if (r < 0)
		return r;
	r = pf_tree_fs(tree, part, &fs);
	if (r < 0)
		return r;
	r = pf_fs_read_file(fs, inner, max_bytes, &data, &size);
	if (r < 0)
		return r;
	text = realloc(data, size + 1);
	if (!text) {
		free(data);
		return -ENOMEM;
	}
	text[size] = 0;
	*ret = text;
	*ret_len = size;
	return 0;
}
