/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Reading the YAML an image carries (cloud-init configuration, seeds, netplan) with libyaml's
 * document API — aliases are never expanded, so a hostile document cannot blow up in memory —
 * and editing a seed file at the top level: piflash's keys replace the image's, every other
 * top-level entry of the image is kept as the image wrote it (text, comments and all).
 */

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

/* Loads the first document of text: 0, -EBADMSG (with a detail "line N: problem") or -ENOMEM. */
int pf_yaml_load(const char *text, size_t len, yaml_document_t *doc);

/* A scalar's value, NULL for anything else (or a value with a NUL in it). */
const char *pf_yaml_scalar(yaml_node_t *n);

/* The value of key in a mapping node, NULL if n is no mapping or has no such key. */
yaml_node_t *pf_yaml_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key);

/* YAML 1.1 booleans as PyYAML reads them: 1 true, 0 false, -1 neither. */
int pf_yaml_bool(yaml_node_t *n);

/*
 * A scalar, or a sequence of scalars joined with sep ("users,video"), or the first item of a
 * sequence when first_only. NULL when n is neither; -ENOMEM is reported as *ret NULL and a
 * negative return. 0 otherwise.
 */
int pf_yaml_join(yaml_document_t *doc, yaml_node_t *n, const char *sep, bool first_only,
		 char **ret);

/*
 * Edits a mapping document at the top level: *ret is ours (a complete document, kept first),
 * followed by every top-level entry of base whose key is neither in ours nor in drop
 * (NULL-terminated), copied as base's text. Comments before base's first key (its header)
 * are not kept. The keys kept are listed in *ret_kept (NULL-terminated, maybe empty).
 *
 * base may be NULL or not a block mapping (empty, a script, a flow mapping, a list): then
 * nothing is kept and *ret_kept is NULL, so the caller can say the image's file was replaced.
 * Returns 0, -EBADMSG (ours is not a mapping document, or the result does not parse) or
 * -ENOMEM.
 */
int pf_yaml_merge_top(const char *ours, size_t ours_len, const char *base, size_t base_len,
		      const char *const *drop, char **ret, size_t *ret_len, char ***ret_kept);

/* The same, with header (a comment line, or NULL for none) before the first entry kept of
 * base instead of "# Kept from the image's own file:". */
int pf_yaml_merge_top_with(const char *ours, size_t ours_len, const char *base, size_t base_len,
			   const char *const *drop, const char *header, char **ret, size_t *ret_len,
			   char ***ret_kept);
