/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-template: templates (node/template.h), two ways, chosen by the first input byte.
 *
 * Even first byte — the YAML property: "no value can change the structure of the file it
 * lands in". The rest of the input is a value (up to the first NUL; what follows a NUL is
 * the variable's name, "v" when there is none). It is set with pf_tpl_set() and rendered in
 * PF_TPL_YAML mode into one of a few YAML shapes (mapping value, sequence item, nested, flow
 * collections, mapping key as in network-config's `{{wifi_ssid}}:`). The output is parsed with
 * libyaml: it must be one document whose scalars are exactly the template's fixed ones plus
 * the value, byte for byte, where the template put it; anything else is abort(). A value the
 * renderer refuses (invalid UTF-8, a bad name) is fine.
 *
 * Odd first byte — the syntax: the rest is a template, checked with pf_tpl_check() and
 * rendered in both modes with a fixed context (strings hostile and plain, a raw value, bools,
 * a list of items with a nested list). A template that pf_tpl_check() refuses must not
 * render; a rendered output is NUL-terminated at the length returned.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "fuzz.h"
#include "node/template.h"
#include "util/error.h"

/* The YAML shapes; "@" stands for the tag {{NAME}}. want: index of the value among the
 * document's scalars, and their number. */
static const struct Shape {
	const char *text;
	size_t value_index, n_scalars;
	size_t value_max; /* a longer value is not tried in this shape */
} shapes[] = {
	{ "k: @\n", 1, 2, SIZE_MAX },
	{ "- @\n", 0, 1, SIZE_MAX },
	{ "a:\n  b:\n    - x\n    - @\n  c: y\n", 3, 6, SIZE_MAX },
	{ "{k: @, j: 1}\n", 1, 4, SIZE_MAX },
	{ "[@, 2]\n", 0, 2, SIZE_MAX },
	/* A simple key is at most 1024 characters to libyaml: only short values (an SSID is
	 * 32 bytes, escaped at most 6 characters a byte). */
	{ "wifi:\n  @:\n    password: p\n", 1, 4, 64 },
};

/* The scalars of the YAML document text; -1 when libyaml refuses it or it is not exactly one
 * document. */
static int yaml_scalars(const char *text, size_t len, char ***ret, size_t **ret_lens, size_t *ret_n)
{
	yaml_parser_t parser;
	char **s = NULL;
	size_t *lens = NULL, n = 0, docs = 0;
	bool done = false;
	int r = 0;

	if (!yaml_parser_initialize(&parser))
		abort();
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done) {
		yaml_event_t ev;

		if (!yaml_parser_parse(&parser, &ev)) {
			r = -1;
			break;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT)
			docs++;
		if (ev.type == YAML_SCALAR_EVENT) {
			s = realloc(s, (n + 1) * sizeof(*s));
			lens = realloc(lens, (n + 1) * sizeof(*lens));
			if (!s || !lens)
				abort();
			s[n] = malloc(ev.data.scalar.length + 1);
			if (!s[n])
				abort();
			memcpy(s[n], ev.data.scalar.value, ev.data.scalar.length);
			s[n][ev.data.scalar.length] = 0;
			lens[n++] = ev.data.scalar.length;
		}
		done = ev.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (docs != 1)
		r = -1;
	*ret = s;
	*ret_lens = lens;
	*ret_n = n;
	return r;
}

static void check_yaml_value(const char *name, const char *value)
{
	size_t vlen = strlen(value);

	for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
		const struct Shape *sh = &shapes[k];
		char tpl[512], *out = NULL, **scalars = NULL;
		const char *at = strchr(sh->text, '@');
		size_t out_len = 0, n = 0, *lens = NULL;
		PfTplCtx *ctx;
		int r;

		if (vlen > sh->value_max)
			continue;
		snprintf(tpl, sizeof(tpl), "%.*s{{%s}}%s", (int)(at - sh->text), sh->text, name,
			 at + 1);
		ctx = pf_tpl_ctx_new();
		if (!ctx)
			abort();
		r = pf_tpl_set(ctx, "v", "unused");
		if (r == 0)
			r = pf_tpl_set(ctx, name, value);
		if (r == 0)
			r = pf_tpl_render("fuzz.yaml", tpl, strlen(tpl), ctx, PF_TPL_YAML, &out,
					  &out_len);
		pf_tpl_ctx_free(ctx);
		pf_error_clear();
		if (r < 0)
			return; /* refused: a bad name, invalid UTF-8, too long */

		if (yaml_scalars(out, out_len, &scalars, &lens, &n) < 0 || n != sh->n_scalars ||
		    lens[sh->value_index] != vlen ||
		    memcmp(scalars[sh->value_index], value, vlen) != 0)
			abort();
		/* The renderer's own check agrees. */
		if (pf_yaml_check("fuzz.yaml", out, out_len) < 0)
			abort();
		for (size_t i = 0; i < n; i++)
			free(scalars[i]);
		free(scalars);
		free(lens);
		free(out);
	}
}

/* A context with one of everything a template can meet. */
static PfTplCtx *fixed_ctx(void)
{
	PfTplCtx *c = pf_tpl_ctx_new(), *item, *sub;

	if (!c || pf_tpl_set(c, "hostname", "node-1") < 0 ||
	    pf_tpl_set(c, "evil", "x\n  - evil: true\n\"'{{v}}\\") < 0 ||
	    pf_tpl_set(c, "empty", "") < 0 ||
	    pf_tpl_set(c, "utf", "caf\xc3\xa9 \xe2\x80\xa8") < 0 ||
	    pf_tpl_set_raw(c, "raw", "10.0.0.1/24") < 0 || pf_tpl_set_bool(c, "yes", true) < 0 ||
	    pf_tpl_set_bool(c, "no", false) < 0)
		abort();
	for (int i = 0; i < 3; i++) {
		if (pf_tpl_list_append(c, "items", &item) < 0 ||
		    pf_tpl_set(item, "name", i == 1 ? "b\tc" : "a") < 0 ||
		    pf_tpl_set_bool(item, "yes", i != 2) < 0)
			abort();
		for (int j = 0; j < 2; j++)
			if (pf_tpl_list_append(item, "sub", &sub) < 0 ||
			    pf_tpl_set(sub, "hostname", "inner") < 0)
				abort();
	}
	return c;
}

static void check_syntax(const char *text, size_t len)
{
	static PfTplCtx *ctx;
	static const PfTplMode modes[] = { PF_TPL_TEXT, PF_TPL_YAML };
	int checked = pf_tpl_check("fuzz", text, len);

	if (checked > 0)
		abort();
	if (!ctx)
		ctx = fixed_ctx(); /* kept for the process's life, like the templates */
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		char *out = NULL;
		size_t out_len = SIZE_MAX;
		int r = pf_tpl_render("fuzz", text, len, ctx, modes[m], &out, &out_len);

		if (r > 0 || (checked < 0 && r == 0) || (r == 0) != !!out)
			abort();
		if (r == 0 && (out_len > PF_TPL_OUTPUT_MAX || strlen(out) != out_len))
			abort();
		free(out);
	}
	pf_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;
	size_t vlen;

	if (size < 1 || size > 64 * 1024)
		return 0;
	s = malloc(size);
	if (!s)
		abort();
	memcpy(s, data + 1, size - 1);
	s[size - 1] = 0;
	if (data[0] & 1)
		check_syntax(s, size - 1);
	else {
		vlen = strlen(s);
		check_yaml_value(vlen + 1 < size - 1 ? s + vlen + 1 : "v", s);
	}
	free(s);
	return 0;
}
