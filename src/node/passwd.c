/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/passwd.h"
#include "util/error.h"
#include "util/strutil.h"

/* Upper bound of one field split: passwd has 7, group 4, shadow 9. */
#define MAX_FIELDS 9

/* Calls fn for each line of text (without its newline), bounded. */
typedef int (*LineFn)(void *userdata, char *line, unsigned lineno);

static int for_each_line(const char *what, const char *text, size_t len, LineFn fn, void *userdata)
{
	_cleanup_(freep) char *copy = NULL;
	unsigned lineno = 0;
	size_t pos = 0;
	int r;

	if (len > PF_PASSWD_MAX_BYTES)
		return pf_error_set(-EFBIG, "%s is %zu bytes, more than %u", what, len,
				    PF_PASSWD_MAX_BYTES);
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	if (len)
		memcpy(copy, text, len);
	copy[len] = 0;

	while (pos < len) {
		char *line = copy + pos, *nl = memchr(line, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - line) : len - pos;

		pos += l + 1;
		if (++lineno > PF_PASSWD_MAX_LINES)
			return pf_error_set(-E2BIG, "%s has more than %u lines", what,
					    PF_PASSWD_MAX_LINES);
		line[l] = 0;
		if (l && line[l - 1] == '\r')
			line[--l] = 0;
		/* A NUL inside the line: the line is malformed. */
		if (strlen(line) != l)
			line = NULL;
		r = fn(userdata, line, lineno);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Splits line at ':' into exactly n fields; false if the count differs. */
static bool split_fields(char *line, char **fields, size_t n)
{
	size_t i = 0;

	for (char *p = line;; p++) {
		if (i >= n)
			return false;
		fields[i++] = p;
		p = strchr(p, ':');
		if (!p)
			break;
		*p = 0;
	}
	return i == n;
}

/* A uid or gid: decimal, below (uid_t)-1 (which means "none"). */
static bool parse_id(const char *s, uint32_t *ret)
{
	uint64_t v;

	if (pf_parse_u64(s, &v) < 0 || v >= UINT32_MAX)
		return false;
	*ret = (uint32_t)v;
	return true;
}

static bool skip_silently(const char *line)
{
	return line[0] == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-';
}

void pf_passwd_entry_done(PfPasswdEntry *e)
{
	free(e->name);
	free(e->gecos);
	free(e->home);
	free(e->shell);
	*e = (PfPasswdEntry){ 0 };
}

void pf_passwd_entries_free(PfPasswdEntry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		pf_passwd_entry_done(&e[i]);
	free(e);
}

int pf_passwd_entry_copy(const PfPasswdEntry *e, PfPasswdEntry *ret)
{
	PfPasswdEntry c = {
		.name = strdup(e->name),
		.uid = e->uid,
		.gid = e->gid,
		.gecos = strdup(e->gecos ? e->gecos : ""),
		.home = strdup(e->home ? e->home : ""),
		.shell = strdup(e->shell ? e->shell : ""),
	};

	if (!c.name || !c.gecos || !c.home || !c.shell) {
		pf_passwd_entry_done(&c);
		return -ENOMEM;
	}
	*ret = c;
	return 0;
}

PfPasswd *pf_passwd_free(PfPasswd *pw)
{
	if (!pw)
		return NULL;
	pf_passwd_entries_free(pw->entries, pw->n);
	free(pw);
	return NULL;
}

static void skipped(size_t *n, unsigned *first, unsigned lineno)
{
	if ((*n)++ == 0)
		*first = lineno;
}

static int passwd_line(void *userdata, char *line, unsigned lineno)
{
	PfPasswd *pw = userdata;
	char *f[7];
	uint32_t uid, gid;
	PfPasswdEntry e, *n;

	if (line && skip_silently(line))
		return 0;
	if (!line || !split_fields(line, f, 7) || !f[0][0] || !parse_id(f[2], &uid) ||
	    !parse_id(f[3], &gid)) {
		skipped(&pw->n_skipped, &pw->first_skipped_line, lineno);
		return 0;
	}
	if (pf_passwd_find(pw, f[0]))
		return 0;
	n = realloc(pw->entries, (pw->n + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	pw->entries = n;
	e = (PfPasswdEntry){
		.name = f[0], .uid = uid, .gid = gid, .gecos = f[4], .home = f[5], .shell = f[6]
	};
	if (pf_passwd_entry_copy(&e, &pw->entries[pw->n]) < 0)
		return -ENOMEM;
	pw->n++;
	return 0;
}

int pf_passwd_parse(const char *text, size_t len, PfPasswd **ret)
{
	_cleanup_(pf_passwd_freep) PfPasswd *pw = calloc(1, sizeof(*pw));
	int r;

	if (!pw)
		return -ENOMEM;
	r = for_each_line("/etc/passwd", text, len, passwd_line, pw);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(pw);
	return 0;
}

const PfPasswdEntry *pf_passwd_find(const PfPasswd *pw, const char *name)
{
	for (size_t i = 0; pw && name && i < pw->n; i++)
		if (streq(pw->entries[i].name, name))
			return &pw->entries[i];
	return NULL;
}

const PfPasswdEntry *pf_passwd_find_uid(const PfPasswd *pw, uid_t uid)
{
	for (size_t i = 0; pw && i < pw->n; i++)
		if (pw->entries[i].uid == uid)
			return &pw->entries[i];
	return NULL;
}

/* Reads a file of the booted system's view into a NUL-terminated buffer. */
static int read_image_file(PfTree *tree, const char *path, char **ret, size_t *ret_len)
{
	int r = pf_tree_read_file(tree, path, PF_PASSWD_MAX_BYTES, ret, ret_len);

	if (r == -ENOENT)
		return pf_error_set(-ENOENT, "the image has no %s", path);
	if (r < 0)
		return pf_error_prefix(r, "%s", path);
	return 0;
}

int pf_passwd_load(PfTree *tree, PfPasswd **ret)
{
	_cleanup_(freep) char *text = NULL;
	size_t len;
	int r;

	r = read_image_file(tree, "/etc/passwd", &text, &len);
	if (r < 0)
		return r;
	return pf_passwd_parse(text, len, ret);
}

/* ---- group ---- */

PfGroup *pf_group_free(PfGroup *g)
{
	if (!g)
		return NULL;
	for (size_t i = 0; i < g->n; i++) {
		free(g->entries[i].name);
		for (size_t k = 0; k < g->entries[i].n_members; k++)
			free(g->entries[i].members[k]);
		free(g->entries[i].members);
	}
	free(g->entries);
	free(g);
	return NULL;
}

static int group_line(void *userdata, char *line, unsigned lineno)
{
	PfGroup *g = userdata;
	PfGroupEntry *n, *e;
	char *f[4], *save = NULL;
	uint32_t gid;

	if (line && skip_silently(line))
		return 0;
	if (!line || !split_fields(line, f, 4) || !f[0][0] || !parse_id(f[2], &gid)) {
		skipped(&g->n_skipped, &g->first_skipped_line, lineno);
		return 0;
	}
	if (pf_group_find(g, f[0]))
		return 0;
	n = realloc(g->entries, (g->n + 1) * sizeof(*n));
	if (!n)
		return -ENOMEM;
	g->entries = n;
	e = &g->entries[g->n];
	*e = (PfGroupEntry){ .name = strdup(f[0]), .gid = gid };
	if (!e->name)
		return -ENOMEM;
	g->n++;
	for (char *m = strtok_r(f[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
		char **v = realloc(e->members, (e->n_members + 1) * sizeof(char *));

		if (!v)
			return -ENOMEM;
		e->members = v;
		e->members[e->n_members] = strdup(m);
		if (!e->members[e->n_members])
			return -ENOMEM;
		e->n_members++;
	}
	return 0;
}

int pf_group_parse(const char *text, size_t len, PfGroup **ret)
{
	_cleanup_(pf_group_freep) PfGroup *g = calloc(1, sizeof(*g));
	int r;

	if (!g)
		return -ENOMEM;
	r = for_each_line("/etc/group", text, len, group_line, g);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(g);
	return 0;
}

int pf_group_load(PfTree *tree, PfGroup **ret)
{
	_cleanup_(freep) char *text = NULL;
	size_t len;
	int r;

	r = read_image_file(tree, "/etc/group", &text, &len);
	if (r < 0)
		return r;
	return pf_group_parse(text, len, ret);
}

const PfGroupEntry *pf_group_find(const PfGroup *g, const char *name)
{
	for (size_t i = 0; g && name && i < g->n; i++)
		if (streq(g->entries[i].name, name))
			return &g->entries[i];
	return NULL;
}

int pf_group_gid(const PfGroup *g, const char *name, gid_t *ret)
{
	const PfGroupEntry *e = pf_group_find(g, name);

	if (!e)
		return -ENOENT;
	*ret = e->gid;
	return 0;
}

/* ---- shells ---- */

void pf_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

typedef struct Shells {
	char **v;
	size_t n;
} Shells;

static int shells_line(void *userdata, char *line, unsigned lineno)
{
	Shells *s = userdata;
	char **n;
	size_t l;

	if (!line)
		return 0;
	line += strspn(line, " \t");
	l = strcspn(line, " \t#");
	line[l] = 0;
	if (line[0] != '/')
		return 0;
	n = realloc(s->v, (s->n + 2) * sizeof(char *));
	if (!n)
		return -ENOMEM;
	s->v = n;
	s->v[s->n] = strdup(line);
	if (!s->v[s->n])
		return -ENOMEM;
	s->v[++s->n] = NULL;
	return 0;
}

int pf_shells_parse(const char *text, size_t len, char ***ret)
{
	Shells s = { 0 };
	int r;

	r = for_each_line("/etc/shells", text, len, shells_line, &s);
	if (r >= 0 && !s.v) {
		s.v = calloc(1, sizeof(char *));
		if (!s.v)
			r = -ENOMEM;
	}
	if (r < 0) {
		pf_strv_free(s.v);
		return r;
	}
	*ret = s.v;
	return (int)MIN(s.n, (size_t)INT32_MAX);
}

/* "/usr/bin/bash" -> "/bin/bash": usrmerge makes both the same file. */
static const char *unmerged(const char *path)
{
	const char *p = startswith(path, "/usr");

	return p && (startswith(p, "/bin/") || startswith(p, "/sbin/")) ? p : path;
}

bool pf_shell_is_login(const char *shell, char *const *shells)
{
	static const char *const not_shells[] = { "nologin", "false", "sync", "halt", "shutdown" };
	const char *base;

	if (!shell || !shell[0])
		shell = "/bin/sh";
	if (shells) {
		for (size_t i = 0; shells[i]; i++)
			if (streq(unmerged(shells[i]), unmerged(shell)))
				return true;
		return false;
	}
	if (shell[0] != '/')
		return false;
	base = strrchr(shell, '/') + 1;
	for (size_t i = 0; i < ELEMENTSOF(not_shells); i++)
		if (streq(base, not_shells[i]))
			return false;
	return base[0] != 0;
}

bool pf_passwd_is_regular(const PfPasswdEntry *e, char *const *shells)
{
	return e->uid >= PF_UID_REGULAR_MIN && e->uid <= PF_UID_REGULAR_MAX &&
	       pf_shell_is_login(e->shell, shells);
}

int pf_passwd_regular(const PfPasswd *pw, char *const *shells, PfPasswdEntry **ret, size_t *ret_n)
{
	PfPasswdEntry *v = NULL;
	size_t n = 0;

	for (size_t i = 0; pw && i < pw->n; i++) {
		PfPasswdEntry *nv;

		if (!pf_passwd_is_regular(&pw->entries[i], shells))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			goto oom;
		v = nv;
		if (pf_passwd_entry_copy(&pw->entries[i], &v[n]) < 0)
			goto oom;
		n++;
	}
	*ret = v;
	*ret_n = n;
	return 0;
oom:
	pf_passwd_entries_free(v, n);
	return -ENOMEM;
}

/* ---- shadow ---- */

typedef struct ShadowQuery {
	const char *name;
	bool found;
	PfPasswordState state;
} ShadowQuery;

static int shadow_line(void *userdata, char *line, unsigned lineno)
{
	ShadowQuery *q = userdata;
	const char *pw;
	char *colon;

	if (!line || q->found || skip_silently(line))
		return 0;
	colon = strchr(line, ':');
	if (!colon)
		return 0;
	*colon = 0;
	if (!streq(line, q->name))
		return 0;
	pw = colon + 1;
	colon = strchr(colon + 1, ':');
	if (colon)
		*colon = 0;
	q->found = true;
	if (!pw[0])
		q->state = PF_PASSWORD_EMPTY;
	else if (pw[0] == '!' && pw[1] == '$')
		q->state = PF_PASSWORD_LOCKED;
	else if (pw[0] == '$')
		q->state = PF_PASSWORD_SET;
	else if (strlen(pw) == 13 && strspn(pw, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
						"abcdefghijklmnopqrstuvwxyz") == 13)
		q->state = PF_PASSWORD_SET; /* traditional DES crypt */
	else
		q->state = PF_PASSWORD_DISABLED;
	return 0;
}

int pf_shadow_state(const char *text, size_t len, const char *name, PfPasswordState *ret)
{
	ShadowQuery q = { .name = name };
	int r;

	r = for_each_line("/etc/shadow", text, len, shadow_line, &q);
	if (r < 0)
		return r;
	if (!q.found)
		return -ENOENT;
	*ret = q.state;
	return 0;
}

const char *pf_password_state_name(PfPasswordState s)
{
	switch (s) {
	case PF_PASSWORD_SET:
		return "set";
	case PF_PASSWORD_EMPTY:
		return "empty";
	case PF_PASSWORD_DISABLED:
		return "disabled";
	case PF_PASSWORD_LOCKED:
		return "locked";
	}
	return "unknown";
}
