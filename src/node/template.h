/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Templates: the files piflash renders into an image (cloud-init user-data, meta-data and
 * network-config, /etc/hosts, dhcpcd.conf blocks, NetworkManager keyfiles, systemd-networkd
 * files ...) are written in a small subset of mustache and filled from a context tree that
 * the node module builds from validated settings.
 *
 * The point of the module is that no value can change the structure of the file it lands in.
 * In PF_TPL_YAML mode {{name}} emits the value as a YAML double-quoted scalar, every character
 * that could end it or start a new line escaped, so a value such as "x\n  - evil: true" stays
 * one string. In PF_TPL_TEXT mode {{name}} refuses a value holding a control character, so no
 * value can add a line to dhcpcd.conf or a keyfile. {{{name}}} emits the value as it is, for
 * values the caller has already validated or built itself (numbers, prefixes, booleans,
 * multi-line blocks) — and only for values set with pf_tpl_set_raw() or bools: {{{name}}} on
 * a value from the operator or the image is an error, whatever the template.
 *
 * Syntax (everything else is an error naming template:line):
 *   {{name}}            the value of name, escaped by mode (above). A bool is "true"/"false".
 *                       An undefined name is an error; so is a list.
 *   {{{name}}} {{&name}} the value of name, raw.
 *   {{#name}}..{{/name}} a section: skipped if name is absent, false, the empty string or an
 *                       empty list; rendered once if it is true or a non-empty string; once
 *                       per item if it is a list, names resolving in the item first and then
 *                       outward through the enclosing items to the root (mustache's context
 *                       stack).
 *   {{^name}}..{{/name}} an inverted section: rendered once exactly when {{#name}} would be
 *                       skipped.
 *   {{! comment }}      dropped. It ends at the first "}}" and may span lines; "{{" inside it
 *                       is an error (it would end the comment early without anyone noticing).
 *   Names are 1 to 64 characters of [A-Za-z0-9_-]; spaces or tabs inside the braces around
 *   the name are allowed. A section, inverted section, closing or comment tag that is alone
 *   on its line (only spaces or tabs around it) is "standalone": the whole line, newline
 *   included, is removed from the output, as in the mustache spec, so sections do not leave
 *   blank lines in YAML. Variables are never standalone.
 *   Not supported, and refused: partials {{>x}}, set delimiters {{=x y=}}, dotted names,
 *   the implicit iterator {{.}}, lambdas, and a section nested inside a section of the same
 *   name (over a list, the outer one would repeat the inner one once per item).
 *
 * Limits: a template is at most PF_TPL_TEMPLATE_MAX bytes with no NUL byte, the output at most
 * PF_TPL_OUTPUT_MAX, sections nest at most PF_TPL_DEPTH_MAX deep, a list holds at most
 * PF_TPL_LIST_MAX items, and rendering stops after PF_TPL_STEPS_MAX steps (tags and texts
 * visited, so nested lists cannot multiply into hours of work).
 *
 * Templates are compiled into the binary from templates/ (see scripts/embed-templates.py); a
 * directory given by --template-dir overrides any of them by file name.
 */

#include <stdbool.h>
#include <stddef.h>

#include "util/macros.h"

#define PF_TPL_TEMPLATE_MAX (256 * 1024)
#define PF_TPL_OUTPUT_MAX (1024 * 1024)
#define PF_TPL_DEPTH_MAX 16
#define PF_TPL_LIST_MAX 1000
#define PF_TPL_STEPS_MAX (4 * 1024 * 1024)
#define PF_TPL_NAME_MAX 64

typedef struct PfTplCtx PfTplCtx;

typedef enum PfTplMode {
	PF_TPL_TEXT, /* {{name}} raw, but a control character in the value is an error */
	PF_TPL_YAML, /* {{name}} as a YAML double-quoted scalar */
} PfTplMode;

/* Returns a new empty context, or NULL when out of memory. */
PfTplCtx *pf_tpl_ctx_new(void);

/* Frees c with its values and list items. Accepts NULL; returns NULL. */
PfTplCtx *pf_tpl_ctx_free(PfTplCtx *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfTplCtx *, pf_tpl_ctx_free);

/*
 * Sets key to the string value (copied), replacing whatever key held (string, bool or list).
 * key: 1-64 characters of [A-Za-z0-9_-]; value: at most PF_TPL_OUTPUT_MAX bytes. Returns 0,
 * -EINVAL (bad key, with a detail), -E2BIG or -ENOMEM.
 */
int pf_tpl_set(PfTplCtx *c, const char *key, const char *value);

/* pf_tpl_set() for a value piflash built and checked itself, the only kind {{{key}}} may
 * insert unescaped (a value set with pf_tpl_set() there is an error). */
int pf_tpl_set_raw(PfTplCtx *c, const char *key, const char *value);
/* Sets key to a bool, replacing whatever key held. Returns 0, -EINVAL or -ENOMEM. */
int pf_tpl_set_bool(PfTplCtx *c, const char *key, bool v);

/*
 * Appends a new empty item to the list key (creating the list if key is absent) and returns
 * it in ret_item, owned by c. Fill it with pf_tpl_set() and friends. Returns 0, -EINVAL (bad
 * key, or key already holds a string or bool: a detail says so), -E2BIG (more than
 * PF_TPL_LIST_MAX items) or -ENOMEM.
 */
int pf_tpl_list_append(PfTplCtx *c, const char *key, PfTplCtx **ret_item);

/*
 * Renders text (len bytes, need not be NUL-terminated) with ctx. name is used in error
 * details only ("name:line: ..."). On success *ret is a malloc'ed NUL-terminated string of
 * *ret_len bytes (ret_len may be NULL). Returns 0 or -errno with a detail: -EINVAL for a
 * syntax error, an undefined variable or a refused value; -EFBIG for a template or output
 * over its limit; -E2BIG when the step limit is hit; -ENOMEM.
 */
int pf_tpl_render(const char *name, const char *text, size_t len, const PfTplCtx *ctx,
		  PfTplMode mode, char **ret, size_t *ret_len);

/* Checks the syntax of a template without rendering it. Returns 0 or as pf_tpl_render(). */
int pf_tpl_check(const char *name, const char *text, size_t len);

/* PF_TPL_YAML for a name ending in ".yaml" or ".yml", else PF_TPL_TEXT. */
PfTplMode pf_tpl_mode_for_name(const char *name);

/*
 * Parses every document of the YAML stream text (len bytes, at most PF_TPL_OUTPUT_MAX) with
 * libyaml. Returns 0, or -EBADMSG with the detail "name:line:column: problem" (1-based), or
 * -EFBIG, -ENOMEM.
 */
int pf_yaml_check(const char *name, const char *text, size_t len);

/*
 * Returns the template called name: template_dir/name when template_dir is not NULL and holds
 * a file of that name, else the builtin one. name is a plain file name: 1-64 characters of
 * [A-Za-z0-9._-], not starting with '.'. On success *ret_text is a malloc'ed NUL-terminated
 * copy of *ret_len bytes and *ret_origin (may be NULL) a malloc'ed "builtin:NAME" or the
 * path read. Returns 0, -EINVAL (bad name, not a regular file, a NUL byte), -ENOENT (no such
 * template), -EFBIG (over PF_TPL_TEMPLATE_MAX), or the -errno of opening or reading the
 * directory or file — each with a detail.
 */
int pf_template_get(const char *template_dir, const char *name, char **ret_text, size_t *ret_len,
		    char **ret_origin);

/* Returns the names of the builtin templates, sorted (strcmp), NULL-terminated; *ret_n (may be
 * NULL) is their number. The array is static. */
const char *const *pf_template_builtin_names(size_t *ret_n);

/* The builtin table, generated at build time by scripts/embed-templates.py: sorted by name
 * (strcmp), no duplicates. Used by template.c only. */
typedef struct PfTemplateBuiltin {
	const char *name;
	const char *text;
	size_t length;
} PfTemplateBuiltin;

extern const PfTemplateBuiltin pf_template_builtins[];
extern const size_t pf_template_builtins_n;
extern const char *const pf_template_builtin_name_list[];
