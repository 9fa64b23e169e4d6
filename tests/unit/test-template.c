/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for node/template.c: the mustache subset, escaping by mode, limits, YAML checking
 * and the lookup of builtin and overriding templates. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <yaml.h>

#include "node/template.h"
#include "util/error.h"

#include "test-util.h"

/* Renders text with ctx, expecting success; returns the output (free it). */
static char *render_ok(const char *text, const PfTplCtx *ctx, PfTplMode mode)
{
	char *out = NULL;
	size_t len = 0;
	int r;

	r = pf_tpl_render("t", text, strlen(text), ctx, mode, &out, &len);
	if (r < 0)
		fail_msg("render failed: %d %s", r, pf_error_message(r));
	assert_non_null(out);
	assert_int_equal(strlen(out), len);
	return out;
}

static void assert_render(const char *text, const PfTplCtx *ctx, PfTplMode mode,
			  const char *expected)
{
	char *out = render_ok(text, ctx, mode);

	assert_string_equal(out, expected);
	free(out);
}

/* Renders text expecting error err with a detail containing each of the given fragments. */
static void assert_render_fails(const char *name, const char *text, const PfTplCtx *ctx,
				PfTplMode mode, int err, const char *frag1, const char *frag2)
{
	char *out = (char *)0x1;
	int r;

	pf_error_clear();
	r = pf_tpl_render(name, text, strlen(text), ctx, mode, &out, NULL);
	assert_int_equal(r, err);
	assert_ptr_equal(out, (char *)0x1); /* untouched */
	if (frag1 && !strstr(pf_error_message(r), frag1))
		fail_msg("'%s' not in '%s'", frag1, pf_error_message(r));
	if (frag2 && !strstr(pf_error_message(r), frag2))
		fail_msg("'%s' not in '%s'", frag2, pf_error_message(r));
}

static void test_variables(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new();

	(void)state;
	assert_int_equal(pf_tpl_set_raw(c, "hostname", "worker3"), 0);
	assert_int_equal(pf_tpl_set_raw(c, "ip", "10.0.0.13/24"), 0);
	assert_int_equal(pf_tpl_set_bool(c, "on", true), 0);
	assert_int_equal(pf_tpl_set(c, "tabbed", "a\tb"), 0);

	assert_render("", c, PF_TPL_TEXT, "");
	assert_render("no tags\n", c, PF_TPL_TEXT, "no tags\n");
	assert_render("{{hostname}}\n", c, PF_TPL_TEXT, "worker3\n");
	assert_render("name={{ hostname }} ip={{\tip\t}}", c, PF_TPL_TEXT,
		      "name=worker3 ip=10.0.0.13/24");
	assert_render("{{{hostname}}}{{& ip }}{{on}}", c, PF_TPL_TEXT, "worker310.0.0.13/24true");
	assert_render("{{tabbed}}", c, PF_TPL_TEXT, "a\tb");
	/* Braces that are not tags stay. */
	assert_render("a } }} { b", c, PF_TPL_TEXT, "a } }} { b");

	/* A later set replaces, across types. */
	assert_int_equal(pf_tpl_set(c, "hostname", "worker4"), 0);
	assert_render("{{hostname}}", c, PF_TPL_TEXT, "worker4");
	assert_int_equal(pf_tpl_set_bool(c, "hostname", false), 0);
	assert_render("{{hostname}}", c, PF_TPL_TEXT, "false");

	/* YAML mode quotes; the raw form does not. */
	assert_int_equal(pf_tpl_set(c, "hostname", "worker3"), 0);
	assert_render("hostname: {{hostname}}\nssh_pwauth: {{{on}}}\n", c, PF_TPL_YAML,
		      "hostname: \"worker3\"\nssh_pwauth: true\n");
	pf_tpl_ctx_free(c);
}

static void test_bad_keys(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new(), *item = NULL;
	char long_key[PF_TPL_NAME_MAX + 2];

	(void)state;
	assert_int_equal(pf_tpl_set(c, "", "x"), -EINVAL);
	assert_int_equal(pf_tpl_set(c, "a.b", "x"), -EINVAL);
	assert_int_equal(pf_tpl_set(c, "a b", "x"), -EINVAL);
	assert_int_equal(pf_tpl_set(c, "a", NULL), -EINVAL);
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = 0;
	assert_int_equal(pf_tpl_set(c, long_key, "x"), -EINVAL);
	long_key[PF_TPL_NAME_MAX] = 0;
	assert_int_equal(pf_tpl_set(c, long_key, "x"), 0);

	assert_int_equal(pf_tpl_set(c, "s", "x"), 0);
	assert_int_equal(pf_tpl_list_append(c, "s", &item), -EINVAL);
	assert_null(item);
	assert_non_null(strstr(pf_error_message(-EINVAL), "'s' is not a list"));
	assert_null(pf_tpl_ctx_free(c));
	assert_null(pf_tpl_ctx_free(NULL));
}

static void test_sections_bool_string(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new();

	(void)state;
	assert_int_equal(pf_tpl_set_bool(c, "yes", true), 0);
	assert_int_equal(pf_tpl_set_bool(c, "no", false), 0);
	assert_int_equal(pf_tpl_set(c, "gw", "10.0.0.1"), 0);
	assert_int_equal(pf_tpl_set(c, "empty", ""), 0);

	assert_render("[{{#yes}}Y{{/yes}}][{{#no}}N{{/no}}][{{#absent}}A{{/absent}}]", c,
		      PF_TPL_TEXT, "[Y][][]");
	assert_render("[{{^yes}}Y{{/yes}}][{{^no}}N{{/no}}][{{^absent}}A{{/absent}}]", c,
		      PF_TPL_TEXT, "[][N][A]");
	/* A non-empty string is true and its value is reachable inside. */
	assert_render("{{#gw}}via {{gw}}{{/gw}}{{#empty}}E{{/empty}}{{^empty}}none{{/empty}}", c,
		      PF_TPL_TEXT, "via 10.0.0.1none");
	assert_render("address1=10.0.0.3/24{{#gw}},{{gw}}{{/gw}}\n", c, PF_TPL_TEXT,
		      "address1=10.0.0.3/24,10.0.0.1\n");
	/* Nested sections of different names. */
	assert_render("{{#yes}}a{{#gw}}b{{^no}}c{{/no}}{{/gw}}d{{/yes}}", c, PF_TPL_TEXT, "abcd");
	pf_tpl_ctx_free(c);
}

static void test_sections_lists(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new(), *node, *addr;
	static const char *const tpl = "{{#nodes}}\n"
				       "{{name}}.{{domain}}:\n"
				       "{{#addrs}}\n"
				       "  {{ip}} of {{name}} in {{domain}}\n"
				       "{{/addrs}}\n"
				       "{{^addrs}}\n"
				       "  (none)\n"
				       "{{/addrs}}\n"
				       "{{/nodes}}\n"
				       "{{^nodes}}no nodes\n{{/nodes}}\n";

	(void)state;
	assert_int_equal(pf_tpl_set(c, "domain", "lan"), 0);
	assert_render(tpl, c, PF_TPL_TEXT, "no nodes\n");

	/* A list is replaced by a later set like any value. */
	assert_int_equal(pf_tpl_list_append(c, "nodes", &node), 0);
	assert_int_equal(pf_tpl_set(node, "name", "w0"), 0);
	assert_int_equal(pf_tpl_set_bool(c, "nodes", false), 0);
	assert_render(tpl, c, PF_TPL_TEXT, "no nodes\n");

	/* nodes[0] has two addresses, nodes[1] none; name resolves in the item, domain at the
	 * root; an item may shadow an outer name. */
	{
		PfTplCtx *fresh = pf_tpl_ctx_new();

		assert_int_equal(pf_tpl_set(fresh, "domain", "lan"), 0);
		assert_int_equal(pf_tpl_list_append(fresh, "nodes", &node), 0);
		assert_int_equal(pf_tpl_set(node, "name", "w1"), 0);
		assert_int_equal(pf_tpl_list_append(node, "addrs", &addr), 0);
		assert_int_equal(pf_tpl_set(addr, "ip", "10.0.0.1"), 0);
		assert_int_equal(pf_tpl_list_append(node, "addrs", &addr), 0);
		assert_int_equal(pf_tpl_set(addr, "ip", "10.0.0.2"), 0);
		assert_int_equal(pf_tpl_set(addr, "domain", "wan"), 0);
		assert_int_equal(pf_tpl_list_append(fresh, "nodes", &node), 0);
		assert_int_equal(pf_tpl_set(node, "name", "w2"), 0);

		assert_render(tpl, fresh, PF_TPL_TEXT,
			      "w1.lan:\n"
			      "  10.0.0.1 of w1 in lan\n"
			      "  10.0.0.2 of w1 in wan\n"
			      "w2.lan:\n"
			      "  (none)\n");
		/* An undefined name inside an item is still an error, with the line. */
		assert_render_fails("n.txt",
				    "{{#nodes}}\n{{#addrs}}{{gateway}}{{/addrs}}\n{{/nodes}}",
				    fresh, PF_TPL_TEXT, -EINVAL, "n.txt:2:", "'gateway'");
		pf_tpl_ctx_free(fresh);
	}
	pf_tpl_ctx_free(c);
}

static void test_comments(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new();

	(void)state;
	assert_int_equal(pf_tpl_set(c, "x", "X"), 0);
	assert_render("a{{! inline }}b", c, PF_TPL_TEXT, "ab");
	assert_render("a\n{{! standalone }}\nb\n", c, PF_TPL_TEXT, "a\nb\n");
	assert_render("a\n  {{! multi\n  line }}  \nb {{x}}\n", c, PF_TPL_TEXT, "a\nb X\n");
	assert_render("{{! first line }}\nversion: 1\n", c, PF_TPL_YAML, "version: 1\n");
	assert_render_fails("c.yaml", "a\n{{! see {{x}} }}\n", c, PF_TPL_YAML, -EINVAL,
			    "c.yaml:2:", "comment");
	pf_tpl_ctx_free(c);
}

/* The standalone-line cases of the mustache spec (sections.yml, inverted.yml, comments.yml). */
static void test_standalone_lines(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new();

	(void)state;
	assert_int_equal(pf_tpl_set_bool(c, "boolean", true), 0);
	assert_render("| This Is\n{{#boolean}}\n|\n{{/boolean}}\n| A Line", c, PF_TPL_TEXT,
		      "| This Is\n|\n| A Line");
	assert_render("| This Is\n  {{#boolean}}\n|\n  {{/boolean}}\n| A Line", c, PF_TPL_TEXT,
		      "| This Is\n|\n| A Line");
	assert_render("| This Is\n{{^boolean}}\n|\n{{/boolean}}\n| A Line", c, PF_TPL_TEXT,
		      "| This Is\n| A Line");
	/* Not standalone: other text on the line. */
	assert_render(" | {{#boolean}}\t|\t{{/boolean}} | \n", c, PF_TPL_TEXT, " | \t|\t | \n");
	assert_render(" {{#boolean}}YES{{/boolean}}\n {{#boolean}}GOOD{{/boolean}}\n", c,
		      PF_TPL_TEXT, " YES\n GOOD\n");
	/* CRLF line ends. */
	assert_render("|\r\n{{#boolean}}\r\n{{/boolean}}\r\n|", c, PF_TPL_TEXT, "|\r\n|");
	/* At the start and the end of the template, no newline after the last. */
	assert_render("  {{#boolean}}\n#{{/boolean}}\n/", c, PF_TPL_TEXT, "#\n/");
	assert_render("#{{#boolean}}\n/\n  {{/boolean}}", c, PF_TPL_TEXT, "#\n/\n");
	/* Two tags on one line are not standalone. */
	assert_render("a\n{{#boolean}}{{/boolean}}\nb", c, PF_TPL_TEXT, "a\n\nb");
	/* A variable alone on its line is never standalone. */
	assert_int_equal(pf_tpl_set(c, "v", ""), 0);
	assert_render("a\n{{v}}\nb", c, PF_TPL_TEXT, "a\n\nb");

	/* The YAML case that matters: sections leave no blank lines and keep indentation. */
	assert_int_equal(pf_tpl_set(c, "gw", "10.0.0.1"), 0);
	assert_render("subnets:\n"
		      "  - type: static\n"
		      "  {{#gw}}\n"
		      "    gateway: {{gw}}\n"
		      "  {{/gw}}\n"
		      "  {{#nogw}}\n"
		      "    nothing: here\n"
		      "  {{/nogw}}\n"
		      "done: true\n",
		      c, PF_TPL_YAML,
		      "subnets:\n"
		      "  - type: static\n"
		      "    gateway: \"10.0.0.1\"\n"
		      "done: true\n");
	pf_tpl_ctx_free(c);
}

/*
 * Parses a YAML document with libyaml and returns the value of the top-level key (malloc'ed),
 * or NULL if it is not there or not a double-quoted scalar. *ret_keys is the number of
 * top-level keys, *ret_docs the number of documents.
 */
static char *yaml_top_value(const char *text, const char *key, size_t *ret_keys, size_t *ret_docs)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	char *found = NULL;
	size_t depth = 0, keys = 0, docs = 0;
	bool expect_key = true, matched = false, done = false;

	assert_true(yaml_parser_initialize(&parser));
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
	while (!done) {
		assert_true(yaml_parser_parse(&parser, &ev));
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			docs++;
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (depth == 1 && !expect_key)
				expect_key = true; /* a nested value */
			depth++;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			depth--;
			break;
		case YAML_SCALAR_EVENT:
			if (depth != 1)
				break;
			if (expect_key) {
				keys++;
				matched = strcmp((const char *)ev.data.scalar.value, key) == 0;
				expect_key = false;
			} else {
				if (matched &&
				    ev.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE &&
				    !found) {
					found = malloc(ev.data.scalar.length + 1);
					assert_non_null(found);
					memcpy(found, ev.data.scalar.value, ev.data.scalar.length);
					found[ev.data.scalar.length] = 0;
					/* The value holds no NUL: it is the whole scalar. */
					assert_int_equal(strlen(found), ev.data.scalar.length);
				}
				expect_key = true;
			}
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	*ret_keys = keys;
	*ret_docs = docs;
	return found;
}

static void test_yaml_hostile_values(void **state)
{
	static const char *const hostile[] = {
		"x\n  - evil: true",
		"x\nevil: true",
		"'; rm -rf /",
		"{a: b}",
		"[1, 2]",
		"*alias",
		"&anchor x",
		"!!python/object/apply:os.system ['id']",
		"- item",
		"key: value",
		"\"quoted\\",
		"\\",
		"# comment",
		"x # comment",
		"---\nnew: doc",
		"...",
		"x\n...\n---\n",
		"|\n  block",
		">-",
		"%YAML 1.1",
		"@at `tick`",
		"true",
		"null",
		"~",
		"0x1F",
		"1e3",
		"",
		"  leading and trailing  ",
		"\ttab\t",
		"cr\rlf\r\n",
		"ctrl \x01\x02\x1b\x1f\x7f end",
		"unicode \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
		"nel \xc2\x85 c1 \xc2\x80 \xc2\x9f",
		"ls \xe2\x80\xa8 ps \xe2\x80\xa9",
		"bom \xef\xbb\xbf nonchar \xef\xbf\xbe \xef\xbf\xbf",
		"\xef\xbb\xbf"
		"bom first",
		"\"}}{{x}}",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
		PfTplCtx *c = pf_tpl_ctx_new();
		char *out, *got;
		size_t keys, docs;

		assert_int_equal(pf_tpl_set(c, "v", hostile[i]), 0);
		out = render_ok("a: 1\n# for {{v}}\nv: {{v}}\nlist:\n  - {{v}}\nz: 2\n", c,
				PF_TPL_YAML);
		if (pf_yaml_check("t", out, strlen(out)) < 0)
			fail_msg("value %zu: %s\n%s", i, pf_error_message(-EBADMSG), out);
		got = yaml_top_value(out, "v", &keys, &docs);
		if (!got)
			fail_msg("value %zu is not one quoted scalar:\n%s", i, out);
		assert_string_equal(got, hostile[i]);
		assert_int_equal(keys, 4);
		assert_int_equal(docs, 1);
		free(got);
		free(out);
		pf_tpl_ctx_free(c);
	}
}

static void test_yaml_escapes_exact(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new();

	(void)state;
	assert_int_equal(pf_tpl_set(c, "v", "a\"b\\c\nd\te\x01\x7f\xc2\x85\xe2\x80\xa8\xc3\xa9"),
			 0);
	assert_render("{{v}}", c, PF_TPL_YAML,
		      "\"a\\\"b\\\\c\\nd\\te\\x01\\x7F\\x85\\u2028\xc3\xa9\"");
	/* Invalid UTF-8 cannot be a YAML scalar: refused, not mangled. */
	assert_int_equal(pf_tpl_set(c, "bad", "ok\xff"), 0);
	assert_render_fails("u.yaml", "a: 1\nb: {{bad}}\n", c, PF_TPL_YAML, -EINVAL,
			    "u.yaml:2:", "'bad' is not valid UTF-8");
	assert_int_equal(pf_tpl_set(c, "bad", "\xed\xa0\x80"), 0); /* a surrogate */
	assert_render_fails("u.yaml", "{{bad}}", c, PF_TPL_YAML, -EINVAL, "UTF-8", NULL);
	assert_int_equal(pf_tpl_set(c, "bad", "\xc0\xaf"), 0); /* overlong '/' */
	assert_render_fails("u.yaml", "{{bad}}", c, PF_TPL_YAML, -EINVAL, "UTF-8", NULL);
	/* Raw emits as is, for a value piflash built (set_raw) only; a value set with
	 * pf_tpl_set() — the operator's, the image's — is refused there, whatever it holds. */
	assert_render_fails("r.yaml", "ssh_pwauth: {{{v}}}", c, PF_TPL_YAML, -EINVAL,
			    "r.yaml:1:", "'v' is inserted unescaped");
	assert_int_equal(
		pf_tpl_set_raw(c, "v", "a\"b\\c\nd\te\x01\x7f\xc2\x85\xe2\x80\xa8\xc3\xa9"), 0);
	assert_render("{{{v}}}", c, PF_TPL_YAML,
		      "a\"b\\c\nd\te\x01\x7f\xc2\x85\xe2\x80\xa8\xc3\xa9");
	/* A later plain set takes the permission away again. */
	assert_int_equal(pf_tpl_set(c, "v", "true\nruncmd: [reboot]"), 0);
	assert_render_fails("r.yaml", "{{&v}}", c, PF_TPL_YAML, -EINVAL, "r.yaml:1:", NULL);
	pf_tpl_ctx_free(c);
}

static void test_text_refuses_control_chars(void **state)
{
	static const char *const bad[] = {
		"eth0\nstatic ip_address=6.6.6.6/8", "x\r", "\x01", "\x1b[31m", "a\x7f", "\v", "\f",
	};
	PfTplCtx *c = pf_tpl_ctx_new();

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pf_tpl_set(c, "iface", bad[i]), 0);
		assert_render_fails("dhcpcd.conf", "# piflash\ninterface {{iface}}\n", c,
				    PF_TPL_TEXT, -EINVAL, "dhcpcd.conf:2:", "'iface'");
	}
	/* The triple form passes a block the caller built. */
	assert_int_equal(pf_tpl_set_raw(c, "block", "static a=1\nstatic b=2\n"), 0);
	assert_render("interface eth0\n{{{block}}}", c, PF_TPL_TEXT,
		      "interface eth0\nstatic a=1\nstatic b=2\n");
	assert_render_fails("x", "{{block}}", c, PF_TPL_TEXT, -EINVAL, "0x0a", NULL);
	pf_tpl_ctx_free(c);
}

static void test_syntax_errors(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new(), *item;

	(void)state;
	assert_int_equal(pf_tpl_set(c, "a", "A"), 0);
	assert_int_equal(pf_tpl_list_append(c, "l", &item), 0);

	assert_render_fails("u.yaml", "a: 1\nb: 2\nc: {{missing}}\n", c, PF_TPL_YAML, -EINVAL,
			    "u.yaml:3:", "'missing' is not defined");
	assert_render_fails("u.txt", "x {{missing}}", c, PF_TPL_TEXT, -EINVAL,
			    "u.txt:1:", "'missing'");
	assert_render_fails("s", "a\n{{#a}}\nb\n", c, PF_TPL_TEXT, -EINVAL,
			    "s:2:", "section 'a' is not closed");
	assert_render_fails("s", "{{#a}}\n{{#b}}\n{{/a}}\n{{/b}}", c, PF_TPL_TEXT, -EINVAL,
			    "s:3:", "opened at line 2");
	assert_render_fails("s", "x\n{{/a}}", c, PF_TPL_TEXT, -EINVAL, "s:2:", "closes no");
	assert_render_fails("s", "x\n\n{{a", c, PF_TPL_TEXT, -EINVAL, "s:3:", "not closed");
	assert_render_fails("s", "{{{a}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "not closed");
	assert_render_fails("s", "{{>part}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "partials");
	assert_render_fails("s", "\n{{=<% %>=}}", c, PF_TPL_TEXT, -EINVAL, "s:2:", "delimiters");
	assert_render_fails("s", "{{a.b}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "invalid tag");
	assert_render_fails("s", "{{.}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "invalid tag");
	assert_render_fails("s", "{{}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "invalid tag");
	assert_render_fails("s", "{{#}}{{/}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "invalid tag");
	assert_render_fails("s", "{{a\nb}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "invalid tag");
	/* A list is not a value. */
	assert_render_fails("s", "{{l}}", c, PF_TPL_TEXT, -EINVAL, "s:1:", "'l' is a list");
	/* A section inside a section of the same name: over a list it would repeat itself. */
	assert_render_fails("n.yaml", "{{#l}}\nx:\n{{#a}}\n{{#l}}\n{{/l}}\n{{/a}}\n{{/l}}\n", c,
			    PF_TPL_YAML, -EINVAL, "n.yaml:4:", "opened at line 1");
	/* The template is checked whole before anything renders: an error after a skipped
	 * section is still found. */
	assert_int_equal(pf_tpl_check("s", "{{#a}}{{/a}}{{b}}", 17), 0);
	assert_int_equal(pf_tpl_check("s", "{{^a}}{{/b}}", 12), -EINVAL);
	assert_int_equal(pf_tpl_check("s", "a\0b", 3), -EINVAL);
	pf_tpl_ctx_free(c);
}

static void test_limits(void **state)
{
	PfTplCtx *c = pf_tpl_ctx_new(), *item, *l1, *l2;
	char *big, *text;
	char *out = NULL;
	size_t n;

	(void)state;
	/* Template size: the limit passes, one byte more fails. */
	big = malloc(PF_TPL_TEMPLATE_MAX + 1);
	assert_non_null(big);
	memset(big, 'x', PF_TPL_TEMPLATE_MAX + 1);
	assert_int_equal(pf_tpl_render("big", big, PF_TPL_TEMPLATE_MAX, c, PF_TPL_TEXT, &out, &n),
			 0);
	assert_int_equal(n, PF_TPL_TEMPLATE_MAX);
	free(out);
	out = NULL;
	assert_int_equal(
		pf_tpl_render("big", big, PF_TPL_TEMPLATE_MAX + 1, c, PF_TPL_TEXT, &out, &n),
		-EFBIG);
	assert_null(out);
	free(big);

	/* Output size: 600 KiB once is fine, twice is not. */
	big = malloc(600 * 1024 + 1);
	assert_non_null(big);
	memset(big, 'v', 600 * 1024);
	big[600 * 1024] = 0;
	assert_int_equal(pf_tpl_set_raw(c, "big", big), 0);
	free(big);
	assert_int_equal(pf_tpl_render("o", "{{big}}", 7, c, PF_TPL_TEXT, &out, &n), 0);
	assert_int_equal(n, 600 * 1024);
	free(out);
	assert_render_fails("o", "{{big}}{{{big}}}", c, PF_TPL_TEXT, -EFBIG, "o: output is over",
			    NULL);

	/* Nesting: 16 sections deep render, 17 do not. */
	text = malloc(17 * 16 + 1);
	assert_non_null(text);
	for (int depth = 16; depth <= 17; depth++) {
		char *p = text;

		for (int i = 0; i < depth; i++)
			p += sprintf(p, "{{#s%d}}", i);
		for (int i = depth - 1; i >= 0; i--)
			p += sprintf(p, "{{/s%d}}", i);
		if (depth == 16)
			assert_render(text, c, PF_TPL_TEXT, "");
		else
			assert_render_fails("d", text, c, PF_TPL_TEXT, -EINVAL,
					    "d:1:", "nested over 16");
	}
	free(text);

	/* List items: 1000 and no more. */
	for (int i = 0; i < PF_TPL_LIST_MAX; i++)
		assert_int_equal(pf_tpl_list_append(c, "l", &item), 0);
	assert_int_equal(pf_tpl_list_append(c, "l", &item), -E2BIG);

	/* Work: three nested lists of 1000 would be 10^9 steps even with nothing to emit. */
	assert_int_equal(pf_tpl_list_append(c, "m", &l1), 0);
	for (int i = 1; i < PF_TPL_LIST_MAX; i++)
		assert_int_equal(pf_tpl_list_append(c, "m", &l2), 0);
	for (int i = 0; i < PF_TPL_LIST_MAX; i++)
		assert_int_equal(pf_tpl_list_append(c, "k", &l2), 0);
	assert_render_fails("w", "{{#l}}{{#m}}{{#k}}{{/k}}{{/m}}{{/l}}", c, PF_TPL_TEXT, -E2BIG,
			    "w:1:", "steps");
	pf_tpl_ctx_free(c);
}

static void test_yaml_check(void **state)
{
	static const char *const good[] = {
		"",
		"a: 1\n",
		"#cloud-config\nusers:\n  - name: pi\n    groups: [adm, sudo]\n",
		"a: 1\n---\nb: 2\n...\n",
		"a: &x 1\nb: *x\n",
	};
	static const struct {
		const char *text, *where;
	} bad[] = {
		{ "a: b\n  c: d\n", "y.yaml:2:4: mapping values are not allowed" },
		{ "a:\n\t- b\n", "y.yaml:2:1: found character that cannot start any token" },
		{ "a: [1, 2\n", "y.yaml:2:1:" },
		{ "a: 1\n---\nb: \"open\n", "y.yaml:4:1:" },
		{ "a: *nowhere\n",
		  NULL }, /* an unknown alias is for the composer: the events parse */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(pf_yaml_check("y.yaml", good[i], strlen(good[i])), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r;

		pf_error_clear();
		r = pf_yaml_check("y.yaml", bad[i].text, strlen(bad[i].text));
		if (!bad[i].where) {
			assert_int_equal(r, 0);
			continue;
		}
		assert_int_equal(r, -EBADMSG);
		if (strncmp(pf_error_message(r), bad[i].where, strlen(bad[i].where)) != 0)
			fail_msg("case %zu: '%s' does not start with '%s'", i, pf_error_message(r),
				 bad[i].where);
	}
	/* Not UTF-8. */
	assert_int_equal(pf_yaml_check("y.yaml", "a: \xff\n", 6), -EBADMSG);
	assert_non_null(strstr(pf_error_message(-EBADMSG), "y.yaml"));
}

static void test_mode_for_name(void **state)
{
	(void)state;
	assert_int_equal(pf_tpl_mode_for_name("user-data.yaml"), PF_TPL_YAML);
	assert_int_equal(pf_tpl_mode_for_name("x.yml"), PF_TPL_YAML);
	assert_int_equal(pf_tpl_mode_for_name("dhcpcd.conf"), PF_TPL_TEXT);
	assert_int_equal(pf_tpl_mode_for_name("yaml"), PF_TPL_TEXT);
	assert_int_equal(pf_tpl_mode_for_name(NULL), PF_TPL_TEXT);
}

static void write_in(const char *dir, const char *name, const char *text, size_t len)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file(path, text, len);
}

static void test_builtins(void **state)
{
	const char *const *names;
	size_t n, bad = 0;

	(void)state;
	names = pf_template_builtin_names(&n);
	assert_int_equal(n, pf_template_builtins_n);
	assert_true(n > 0);
	assert_null(names[n]);
	for (size_t i = 0; i < n; i++) {
		char *text = NULL, *origin = NULL, expected[128];
		size_t len;

		if (i > 0)
			assert_true(strcmp(names[i - 1], names[i]) < 0);
		assert_int_equal(pf_template_get(NULL, names[i], &text, &len, &origin), 0);
		snprintf(expected, sizeof(expected), "builtin:%s", names[i]);
		assert_string_equal(origin, expected);
		assert_int_equal(len, pf_template_builtins[i].length);
		assert_memory_equal(text, pf_template_builtins[i].text, len);
		assert_int_equal(strlen(text), len);
		/* Every builtin template is valid syntax; report all that are not. */
		if (pf_tpl_check(names[i], text, len) < 0) {
			print_error("%s\n", pf_error_message(-EINVAL));
			bad++;
		}
		free(text);
		free(origin);
	}
	assert_int_equal(bad, 0);
}

static void test_lookup_override(void **state)
{
	char dir[] = "/tmp/test-template.XXXXXX", path[600], *text = NULL, *origin = NULL;
	const char *builtin = pf_template_builtin_names(NULL)[0];
	char *big;
	size_t len;

	(void)state;
	assert_non_null(mkdtemp(dir));

	/* The directory overrides a builtin by file name. */
	write_in(dir, builtin, "mine: {{x}}\n", 12);
	assert_int_equal(pf_template_get(dir, builtin, &text, &len, &origin), 0);
	assert_string_equal(text, "mine: {{x}}\n");
	assert_int_equal(len, 12);
	snprintf(path, sizeof(path), "%s/%s", dir, builtin);
	assert_string_equal(origin, path);
	free(text);
	free(origin);

	/* A name the directory does not have comes from the builtins. */
	text = origin = NULL;
	assert_int_equal(pf_template_builtins_n > 1, true);
	assert_int_equal(pf_template_get(dir, pf_template_builtins[1].name, &text, &len, &origin),
			 0);
	assert_int_equal(len, pf_template_builtins[1].length);
	assert_memory_equal(text, pf_template_builtins[1].text, len);
	assert_int_equal(strncmp(origin, "builtin:", 8), 0);
	free(text);
	free(origin);

	/* A new template only the directory has. */
	write_in(dir, "extra.conf", "", 0);
	text = NULL;
	assert_int_equal(pf_template_get(dir, "extra.conf", &text, &len, NULL), 0);
	assert_string_equal(text, "");
	assert_int_equal(len, 0);
	free(text);

	/* Unknown everywhere. */
	text = NULL;
	assert_int_equal(pf_template_get(dir, "nope.conf", &text, &len, &origin), -ENOENT);
	assert_null(text);
	assert_int_equal(pf_template_get(NULL, "nope.conf", &text, &len, &origin), -ENOENT);
	assert_non_null(strstr(pf_error_message(-ENOENT), "'nope.conf'"));

	/* Not a regular file, too big, a NUL byte. */
	snprintf(path, sizeof(path), "%s/sub", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(pf_template_get(dir, "sub", &text, &len, NULL), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "not a regular file"));
	big = calloc(1, PF_TPL_TEMPLATE_MAX + 1);
	assert_non_null(big);
	memset(big, 'x', PF_TPL_TEMPLATE_MAX + 1);
	write_in(dir, "big", big, PF_TPL_TEMPLATE_MAX + 1);
	assert_int_equal(pf_template_get(dir, "big", &text, &len, NULL), -EFBIG);
	write_in(dir, "big", big, PF_TPL_TEMPLATE_MAX);
	assert_int_equal(pf_template_get(dir, "big", &text, &len, NULL), 0);
	assert_int_equal(len, PF_TPL_TEMPLATE_MAX);
	free(text);
	text = NULL;
	free(big);
	write_in(dir, "nul", "a\0b", 3);
	assert_int_equal(pf_template_get(dir, "nul", &text, &len, NULL), -EINVAL);
	assert_null(text);

	/* A directory that does not exist is an error, not a silent fallback. */
	assert_int_equal(
		pf_template_get("/nonexistent/piflash-templates", builtin, &text, &len, NULL),
		-ENOENT);
	assert_non_null(strstr(pf_error_message(-ENOENT), "template directory"));

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

static void test_lookup_bad_names(void **state)
{
	static const char *const bad[] = {
		"",
		".",
		"..",
		".hidden",
		"../etc/passwd",
		"a/b",
		"/etc/passwd",
		"a b",
		"a\nb",
		"x\\y",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
	};
	char *text = NULL;
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(pf_template_get("/tmp", bad[i], &text, &len, NULL), -EINVAL);
		assert_null(text);
		assert_non_null(strstr(pf_error_message(-EINVAL), "invalid template name"));
	}
	assert_int_equal(pf_template_get(NULL, NULL, &text, &len, NULL), -EINVAL);
	/* 64 characters is allowed (and not found). */
	assert_int_equal(
		pf_template_get(NULL,
				"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
				&text, &len, NULL),
		-ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_variables),
		cmocka_unit_test(test_bad_keys),
		cmocka_unit_test(test_sections_bool_string),
		cmocka_unit_test(test_sections_lists),
		cmocka_unit_test(test_comments),
		cmocka_unit_test(test_standalone_lines),
		cmocka_unit_test(test_yaml_hostile_values),
		cmocka_unit_test(test_yaml_escapes_exact),
		cmocka_unit_test(test_text_refuses_control_chars),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_yaml_check),
		cmocka_unit_test(test_mode_for_name),
		cmocka_unit_test(test_builtins),
		cmocka_unit_test(test_lookup_override),
		cmocka_unit_test(test_lookup_bad_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
