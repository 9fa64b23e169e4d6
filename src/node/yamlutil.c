/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/passwd.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/macros.h"
#include "util/strutil.h"

int pf_yaml_load(const char *text, size_t len, yaml_document_t *doc)
{
	yaml_parser_t parser;
	int r = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
	if (!yaml_parser_load(&parser, doc)) {
		if (parser.error == YAML_MEMORY_ERROR)
			r = -ENOMEM;
		else
			r = pf_error_set(-EBADMSG, "line %zu: %s", parser.problem_mark.line + 1,
					 parser.problem ? parser.problem : "invalid YAML");
	}
	yaml_parser_delete(&parser);
	return r;
}

const char *pf_yaml_scalar(yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE)
		return NULL;
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return NULL;
	return (const char *)n->data.scalar.value;
}

yaml_node_t *pf_yaml_map_get(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		const char *k = pf_yaml_scalar(yaml_document_get_node(doc, p->key));

		if (k && streq(k, key))
			return yaml_document_get_node(doc, p->value);
	}
	return NULL;
}

int pf_yaml_bool(yaml_node_t *n)
{
	static const char *const yes[] = { "true", "yes", "on", "y" };
	static const char *const no[] = { "false", "no", "off", "n" };
	const char *s = pf_yaml_scalar(n);

	for (size_t i = 0; s && i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

int pf_yaml_join(yaml_document_t *doc, yaml_node_t *n, const char *sep, bool first_only, char **ret)
{
	char *out = NULL;
	size_t len = 0;
	FILE *m;

	*ret = NULL;
	if (pf_yaml_scalar(n)) {
		*ret = strdup(pf_yaml_scalar(n));
		return *ret ? 0 : -ENOMEM;
	}
	if (!n || n->type != YAML_SEQUENCE_NODE)
		return 0;
	m = open_memstream(&out, &len);
	if (!m)
		return -ENOMEM;
	for (yaml_node_item_t *i = n->data.sequence.items.start; i < n->data.sequence.items.top;
	     i++) {
		const char *s = pf_yaml_scalar(yaml_document_get_node(doc, *i));

		if (!s)
			continue;
		fprintf(m, "%s%s", ftell(m) > 0 ? sep : "", s);
		if (first_only)
			break;
	}
	if (fclose(m) != 0) {
		free(out);
		return -ENOMEM;
	}
	if (!out[0]) {
		free(out);
		return 0;
	}
	*ret = out;
	return 0;
}

/* The top-level keys of a block-mapping document, NULL-terminated; NULL if it is none. */
static int top_keys(const char *text, size_t len, char ***ret, size_t **ret_starts, size_t *ret_end)
{
	yaml_document_t doc;
	yaml_node_t *root;
	char **keys = NULL;
	size_t *starts = NULL, n = 0;
	int r;

	*ret = NULL;
	r = pf_yaml_load(text, len, &doc);
	if (r < 0)
		return r;
	root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_MAPPING_NODE ||
	    root->data.mapping.style == YAML_FLOW_MAPPING_STYLE)
		goto done;
	n = (size_t)(root->data.mapping.pairs.top - root->data.mapping.pairs.start);
	keys = calloc(n + 1, sizeof(char *));
	starts = calloc(n + 1, sizeof(size_t));
	if (!keys || !starts) {
		r = -ENOMEM;
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *k =
			yaml_document_get_node(&doc, root->data.mapping.pairs.start[i].key);
		const char *s = pf_yaml_scalar(k);

		/* Only plain keys at the start of a line can be cut out as lines. */
		if (!s || k->start_mark.column != 0) {
			pf_strv_free(keys);
			keys = NULL;
			goto done;
		}
		keys[i] = strdup(s);
		if (!keys[i]) {
			r = -ENOMEM;
			goto done;
		}
		starts[i] = k->start_mark.index;
	}
	starts[n] = root->end_mark.index;
	*ret_end = root->end_mark.index;
	*ret = TAKE_PTR(keys);
	*ret_starts = TAKE_PTR(starts);
done:
	pf_strv_free(keys);
	free(starts);
	yaml_document_delete(&doc);
	return r;
}

static bool strv_has(char *const *v, const char *s)
{
	for (size_t i = 0; v && v[i]; i++)
		if (streq(v[i], s))
			return true;
	return false;
}

int pf_yaml_merge_top(const char *ours, size_t ours_len, const char *base, size_t base_len,
		      const char *const *drop, char **ret, size_t *ret_len, char ***ret_kept)
{
	return pf_yaml_merge_top_with(ours, ours_len, base, base_len, drop,
				      "# Kept from the image's own file:", ret, ret_len, ret_kept);
}

/* Top-level keys of a document, where each starts, and where the last one ends. */
typedef struct TopKeys {
	char **keys;
	size_t *starts;
	size_t end;
} TopKeys;

static void top_keys_done(TopKeys *k)
{
	pf_strv_free(k->keys);
	free(k->starts);
}

/* Writes to m the entries of base whose keys are neither ours nor to drop, header first, and
 * lists them in *kept (NULL-terminated): 0 or -ENOMEM. */
static int keep_base_keys(FILE *m, const char *base, size_t base_len, const TopKeys *bk,
			  char **our_keys, const char *const *drop, const char *header,
			  char ***kept)
{
	size_t n_kept = 0;

	*kept = calloc(1, sizeof(char *));
	if (!*kept)
		return -ENOMEM;
	for (size_t i = 0; bk->keys[i]; i++) {
		size_t from = bk->starts[i], to = bk->starts[i + 1];
		char **nk;

		if (strv_has(our_keys, bk->keys[i]) || strv_has((char *const *)drop, bk->keys[i]))
			continue;
		/* Whole lines: from the key's line (keys are at column 0) to the next key's. */
		if (to > base_len || to < from)
			to = bk->end;
		if (n_kept == 0 && header)
			fprintf(m, "%s\n", header);
		fwrite(base + from, 1, to - from, m);
		if (to > from && base[to - 1] != '\n')
			fputc('\n', m);
		nk = reallocarray(*kept, n_kept + 2, sizeof(char *));
		if (!nk)
			return -ENOMEM;
		*kept = nk;
		nk[n_kept] = strdup(bk->keys[i]);
		if (!nk[n_kept])
			return -ENOMEM;
		nk[++n_kept] = NULL;
	}
	return 0;
}

/* The result must read back as one mapping with ours and the kept keys. */
static int merged_check(const char *out, size_t out_len)
{
	_cleanup_(top_keys_done) TopKeys ck = {};
	int r;

	r = top_keys(out, out_len, &ck.keys, &ck.starts, &ck.end);
	if (r >= 0 && !ck.keys)
		r = pf_error_set(-EBADMSG, "the merged document is no mapping");
	return r < 0 ? r : 0;
}

int pf_yaml_merge_top_with(const char *ours, size_t ours_len, const char *base, size_t base_len,
			   const char *const *drop, const char *header, char **ret, size_t *ret_len,
			   char ***ret_kept)
{
	_cleanup_(top_keys_done) TopKeys ok = {}, bk = {};
	char **kept = NULL, *out = NULL;
	size_t out_len = 0;
	FILE *m;
	int r;

	r = top_keys(ours, ours_len, &ok.keys, &ok.starts, &ok.end);
	if (r < 0)
		return r;
	if (!ok.keys)
		return pf_error_set(-EBADMSG, "not a mapping of top-level keys");
	if (base) {
		r = top_keys(base, base_len, &bk.keys, &bk.starts, &bk.end);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			pf_error_clear();
			bk.keys = NULL; /* unreadable: replaced, and the caller says so */
		}
	}

	m = open_memstream(&out, &out_len);
	if (!m)
		return -ENOMEM;
	fwrite(ours, 1, ours_len, m);
	if (ours_len && ours[ours_len - 1] != '\n')
		fputc('\n', m);
	r = 0;
	if (bk.keys)
		r = keep_base_keys(m, base, base_len, &bk, ok.keys, drop, header, &kept);
	if (fclose(m) != 0 && r >= 0)
		r = -ENOMEM;
	if (r >= 0)
		r = merged_check(out, out_len);
	if (r < 0) {
		free(out);
		pf_strv_free(kept);
		return r;
	}
	*ret = out;
	*ret_len = out_len;
	*ret_kept = kept;
	return 0;
}
