/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys/stat.h"
#include "node/detect-ctx.h"
#include "util/error.h"
#include "util/strutil.h"

void pf_detect_listing_done(Listing *l)
{
	pf_dirents_free(l->d, l->n);
}

/* Errors of a lookup that mean "not there" for detection; the rest is noted and ignored. */
int pf_detect_absent(Ctx *c, int r, const char *path)
{
	if (r == -ENOMEM)
		return r;
	if (r != -ENOENT && r != -ENOTDIR &&
	    evidence(c, "%s: %s, ignoring", path, pf_error_message(r)) < 0)
		return -ENOMEM;
	pf_error_clear();
	return -ENOENT;
}

/* Where path of the booted system is (links followed, the last if follow): 0 or -ENOENT. */
int pf_detect_locate(Ctx *c, const char *path, bool follow, const PfPartition **ret_part,
		     PfFs **ret_fs, char **ret_inner, PfStat *ret_st)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part;
	PfStat st;
	PfFs *fs;
	int r;

	r = pf_tree_resolve(c->tree, NULL, path, follow, &part, &inner);
	if (r >= 0)
		r = pf_tree_fs(c->tree, part, &fs);
	if (r >= 0)
		r = pf_fs_stat(fs, inner, &st);
	if (r < 0)
		return pf_detect_absent(c, r, path);
	if (ret_part)
		*ret_part = part;
	if (ret_fs)
		*ret_fs = fs;
	if (ret_st)
		*ret_st = st;
	if (ret_inner)
		*ret_inner = TAKE_PTR(inner);
	return 0;
}

bool pf_detect_exists(Ctx *c, const char *path)
{
	return pf_detect_locate(c, path, true, NULL, NULL, NULL, NULL) >= 0;
}

bool pf_detect_is_file(Ctx *c, const char *path)
{
	PfStat st;

	return pf_detect_locate(c, path, true, NULL, NULL, NULL, &st) >= 0 && S_ISREG(st.mode);
}

bool pf_detect_is_dir(Ctx *c, const char *path)
{
	PfStat st;

	return pf_detect_locate(c, path, true, NULL, NULL, NULL, &st) >= 0 && S_ISDIR(st.mode);
}

/* Reads inner on fs into a NUL-terminated buffer: 0, -ENOENT or -ENOMEM. */
int pf_detect_read_fs_text(Ctx *c, PfFs *fs, const char *inner, const char *what, size_t max,
			   char **ret, size_t *ret_len)
{
	_cleanup_(freep) uint8_t *data = NULL;
	size_t size;
	char *text;
	int r;

	r = pf_fs_read_file(fs, inner, max, &data, &size);
	if (r < 0)
		return pf_detect_absent(c, r, what);
	text = malloc(size + 1);
	if (!text)
		return -ENOMEM;
	if (size)
		memcpy(text, data, size);
	text[size] = 0;
	*ret = text;
	if (ret_len)
		*ret_len = size;
	return 0;
}

/* Where path of the booted system is, when it is of the file type type (S_IFREG, S_IFDIR):
 * 0, -ENOENT (also: of another type) or -ENOMEM. */
static int locate_typed(Ctx *c, const char *path, mode_t type, PfFs **ret_fs, char **ret_inner)
{
	PfStat st;
	int r;

	r = pf_detect_locate(c, path, true, NULL, ret_fs, ret_inner, &st);
	if (r < 0)
		return r;
	if ((st.mode & S_IFMT) != type) {
		free(*ret_inner);
		*ret_inner = NULL;
		return -ENOENT;
	}
	return 0;
}

/* Reads a regular file of the booted system: 0, -ENOENT (also: not a regular file), -ENOMEM. */
int pf_detect_read_text(Ctx *c, const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_(freep) char *inner = NULL;
	PfFs *fs;
	int r;

	r = locate_typed(c, path, S_IFREG, &fs, &inner);
	if (r < 0)
		return r;
	return pf_detect_read_fs_text(c, fs, inner, path, max, ret, ret_len);
}

/* Lists a directory of the booted system (links followed): 0 or -ENOENT/-ENOMEM. */
int pf_detect_list_dir(Ctx *c, const char *path, PfDirent **ret, size_t *ret_n)
{
	_cleanup_(freep) char *inner = NULL;
	PfFs *fs;
	int r;

	r = locate_typed(c, path, S_IFDIR, &fs, &inner);
	if (r < 0)
		return r;
	r = pf_fs_list(fs, inner, ret, ret_n);
	if (r < 0)
		return pf_detect_absent(c, r, path);
	if (*ret_n > DIR_MAX_ENTRIES) {
		r = evidence(c, "%s: %zu entries, only the first %u looked at", path, *ret_n,
			     DIR_MAX_ENTRIES);
		for (size_t i = DIR_MAX_ENTRIES; i < *ret_n; i++)
			free((*ret)[i].name);
		*ret_n = DIR_MAX_ENTRIES;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Names of a directory listing, sorted (a NULL-terminated strv, maybe empty). */
int pf_detect_sorted_names(PfDirent *d, size_t n, char ***ret)
{
	char **v = calloc(n + 1, sizeof(char *));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = strdup(d[i].name);
		if (!v[i]) {
			pf_strv_free(v);
			return -ENOMEM;
		}
	}
	qsort(v, n, sizeof(char *), pf_strcmp_ptr);
	*ret = v;
	return 0;
}

/* "2:/dir" for a location. */
int pf_detect_format_location(const PfPartition *p, const char *dir, char **ret)
{
	return asprintf(ret, "%u:%s", p->number, dir) < 0 ? -ENOMEM : 0;
}

/* The directory part of an absolute path, "/" for a top-level name. */
char *pf_detect_dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}
