/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "node/template.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/macros.h"
#include "util/strutil.h"

/* ---- context tree ---- */

typedef enum ValueType {
	VALUE_STRING,
	VALUE_BOOL,
	VALUE_LIST,
} ValueType;

typedef struct Value {
	char *key;
	ValueType type;
	char *string;
	bool boolean;
	PfTplCtx **items;
	size_t n_items;
	bool raw_ok; /* built by piflash: {{{name}}} may insert it unescaped */
} Value;

struct PfTplCtx {
	Value *values;
	size_t n_values;
};

PfTplCtx *pf_tpl_ctx_new(void)
{
	return calloc(1, sizeof(PfTplCtx));
}

static void value_clear(Value *v)
{
	free(v->string);
	v->string = NULL;
	for (size_t i = 0; i < v->n_items; i++)
		pf_tpl_ctx_free(v->items[i]);
	free(v->items);
	v->items = NULL;
	v->n_items = 0;
	v->boolean = false;
}

PfTplCtx *pf_tpl_ctx_free(PfTplCtx *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < c->n_values; i++) {
		value_clear(&c->values[i]);
		free(c->values[i].key);
	}
	free(c->values);
	free(c);
	return NULL;
}

static bool name_char_ok(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '_' || ch == '-';
}

static bool name_ok(const char *s, size_t len)
{
	if (len == 0 || len > PF_TPL_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char_ok(s[i]))
			return false;
	return true;
}

static Value *ctx_find(const PfTplCtx *c, const char *key, size_t len)
{
	for (size_t i = 0; i < c->n_values; i++)
		if (strlen(c->values[i].key) == len && memcmp(c->values[i].key, key, len) == 0)
			return &c->values[i];
	return NULL;
}

/* Returns the value called key in c, cleared, or a new one; NULL when out of memory. */
static Value *ctx_slot(PfTplCtx *c, const char *key)
{
	Value *v, *values;

	v = ctx_find(c, key, strlen(key));
	if (v) {
		value_clear(v);
		return v;
	}
	values = reallocarray(c->values, c->n_values + 1, sizeof(Value));
	if (!values)
		return NULL;
	c->values = values;
	v = &c->values[c->n_values];
	*v = (Value){ .key = strdup(key) };
	if (!v->key)
		return NULL;
	c->n_values++;
	return v;
}

static int check_key(const PfTplCtx *c, const char *key)
{
	if (!c || !key)
		return -EINVAL;
	if (!name_ok(key, strlen(key)))
		return pf_error_set(-EINVAL,
				    "invalid template variable name '%.80s': 1-%d characters of "
				    "[A-Za-z0-9_-]",
				    key, PF_TPL_NAME_MAX);
	return 0;
}

int pf_tpl_set(PfTplCtx *c, const char *key, const char *value)
{
	_cleanup_(freep) char *copy = NULL;
	Value *v;
	int r;

	r = check_key(c, key);
	if (r < 0)
		return r;
	if (!value)
		return -EINVAL;
	if (strnlen(value, PF_TPL_OUTPUT_MAX + 1) > PF_TPL_OUTPUT_MAX)
		return pf_error_set(-E2BIG, "value of template variable '%s' is over %d bytes", key,
				    PF_TPL_OUTPUT_MAX);
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	v = ctx_slot(c, key);
	if (!v)
		return -ENOMEM;
	v->type = VALUE_STRING;
	v->string = TAKE_PTR(copy);
	v->raw_ok = false;
	return 0;
}

int pf_tpl_set_raw(PfTplCtx *c, const char *key, const char *value)
{
	int r = pf_tpl_set(c, key, value);
	Value *v;

	if (r < 0)
		return r;
	v = ctx_find(c, key, strlen(key));
	if (v)
		v->raw_ok = true;
	return 0;
}

int pf_tpl_set_bool(PfTplCtx *c, const char *key, bool b)
{
	Value *v;
	int r;

	r = check_key(c, key);
	if (r < 0)
		return r;
	v = ctx_slot(c, key);
	if (!v)
		return -ENOMEM;
	v->type = VALUE_BOOL;
	v->boolean = b;
	return 0;
}

int pf_tpl_list_append(PfTplCtx *c, const char *key, PfTplCtx **ret_item)
{
	PfTplCtx **items, *item;
	Value *v;
	int r;

	r = check_key(c, key);
	if (r < 0)
		return r;
	v = ctx_find(c, key, strlen(key));
	if (v && v->type != VALUE_LIST)
		return pf_error_set(-EINVAL, "template variable '%s' is not a list", key);
	if (v && v->n_items >= PF_TPL_LIST_MAX)
		return pf_error_set(-E2BIG, "template list '%s' has more than %d items", key,
				    PF_TPL_LIST_MAX);
	if (!v) {
		v = ctx_slot(c, key);
		if (!v)
			return -ENOMEM;
		v->type = VALUE_LIST;
	}
	item = pf_tpl_ctx_new();
	if (!item)
		return -ENOMEM;
	items = reallocarray(v->items, v->n_items + 1, sizeof(PfTplCtx *));
	if (!items) {
		pf_tpl_ctx_free(item);
		return -ENOMEM;
	}
	v->items = items;
	v->items[v->n_items++] = item;
	if (ret_item)
		*ret_item = item;
	return 0;
}

/* ---- parsing ---- */

typedef enum TokenType {
	TOKEN_TEXT,
	TOKEN_VAR, /* {{name}}: escaped by mode */
	TOKEN_RAW, /* {{{name}}}, {{&name}} */
	TOKEN_SECTION,
	TOKEN_INVERTED,
	TOKEN_END,
} TokenType;

typedef struct Token {
	TokenType type;
	const char *start; /* the text, or the name */
	size_t len;
	unsigned line;
	size_t end; /* sections: index of the matching TOKEN_END */
} Token;

typedef struct Parser {
	const char *name;
	const char *text;
	size_t len;
	Token *tokens;
	size_t n_tokens, cap_tokens;
	/* Newlines counted up to line_pos: line is the line number at line_pos. */
	size_t line_pos;
	unsigned line;
} Parser;

static const char *tpl_name(const char *name)
{
	return name ? name : "template";
}

static unsigned line_at(Parser *p, size_t pos)
{
	for (; p->line_pos < pos; p->line_pos++)
		if (p->text[p->line_pos] == '\n')
			p->line++;
	return p->line;
}

static int push_token(Parser *p, TokenType type, const char *start, size_t len, unsigned line)
{
	if (type == TOKEN_TEXT && len == 0)
		return 0;
	if (p->n_tokens == p->cap_tokens) {
		size_t cap = p->cap_tokens ? p->cap_tokens * 2 : 64;
		Token *t = reallocarray(p->tokens, cap, sizeof(Token));

		if (!t)
			return -ENOMEM;
		p->tokens = t;
		p->cap_tokens = cap;
	}
	p->tokens[p->n_tokens++] =
		(Token){ .type = type, .start = start, .len = len, .line = line };
	return 0;
}

/* Finds needle in text[from, len); returns its position or len when absent. */
static size_t find(const char *text, size_t len, size_t from, const char *needle)
{
	const char *f = memmem(text + from, len - from, needle, strlen(needle));

	return f ? (size_t)(f - text) : len;
}

/* One {{tag}} of a template, as parse() reads it: byte offsets into the text. */
typedef struct Tag {
	size_t open;	/* its "{{" (moved to the line start when the tag stands alone) */
	size_t content; /* after the braces and the sigil */
	size_t close;	/* its "}}" */
	size_t tag_end; /* after it (and after its line when it stands alone) */
	size_t b, e;	/* its name, blanks trimmed */
	TokenType type;
	unsigned line;
	char sigil;
} Tag;

/* The open sections, innermost last: indexes of their tokens. */
typedef struct Sections {
	size_t stack[PF_TPL_DEPTH_MAX];
	size_t depth;
} Sections;

/* Finds the end of the tag at t->open: "}}}" after "{{{", else "}}". */
static int tag_bounds(Parser *p, const char *name, Tag *t)
{
	t->line = line_at(p, t->open);
	if (t->open + 2 < p->len && p->text[t->open + 2] == '{') {
		t->content = t->open + 3;
		t->close = find(p->text, p->len, t->content, "}}}");
		t->tag_end = t->close + 3;
		t->sigil = '{';
	} else {
		t->content = t->open + 2;
		t->close = find(p->text, p->len, t->content, "}}");
		t->tag_end = t->close + 2;
		t->sigil = t->content < p->len ? p->text[t->content] : 0;
	}
	if (t->close == p->len)
		return pf_error_set(-EINVAL, "%s:%u: tag '{{' is not closed", name, t->line);
	return 0;
}

/* The kind of tag its sigil makes; partials and delimiter changes are refused. */
static int tag_type(Parser *p, const char *name, Tag *t)
{
	switch (t->sigil) {
	case '{':
		t->type = TOKEN_RAW;
		return 0;
	case '&':
		t->type = TOKEN_RAW;
		t->content++;
		return 0;
	case '#':
		t->type = TOKEN_SECTION;
		t->content++;
		return 0;
	case '^':
		t->type = TOKEN_INVERTED;
		t->content++;
		return 0;
	case '/':
		t->type = TOKEN_END;
		t->content++;
		return 0;
	case '!':
		if (find(p->text, t->close, t->content, "{{") != t->close)
			return pf_error_set(-EINVAL,
					    "%s:%u: '{{' inside a comment (a comment ends at the "
					    "first '}}')",
					    name, t->line);
		t->type = TOKEN_TEXT; /* a comment: emits nothing */
		return 0;
	case '>':
		return pf_error_set(-EINVAL, "%s:%u: partials ({{>name}}) are not supported", name,
				    t->line);
	case '=':
		return pf_error_set(-EINVAL, "%s:%u: set delimiters ({{=...=}}) are not supported",
				    name, t->line);
	default:
		t->type = TOKEN_VAR;
		return 0;
	}
}

/* The name, blanks around it allowed. */
static int tag_name(Parser *p, const char *name, Tag *t)
{
	t->b = t->content;
	t->e = t->close;
	while (t->b < t->e && pf_is_blank(p->text[t->b]))
		t->b++;
	while (t->e > t->b && pf_is_blank(p->text[t->e - 1]))
		t->e--;
	if (t->sigil != '!' && !name_ok(p->text + t->b, t->e - t->b))
		return pf_error_set(-EINVAL,
				    "%s:%u: invalid tag '%.*s': a name is 1-%d characters of "
				    "[A-Za-z0-9_-]",
				    name, t->line, (int)MIN(t->tag_end - t->open, (size_t)80),
				    p->text + t->open, PF_TPL_NAME_MAX);
	return 0;
}

/* A standalone tag (a section, an end, a comment alone on its line) takes its whole line. */
static void tag_standalone(Parser *p, size_t text_start, Tag *t)
{
	size_t ls = t->open, le = t->tag_end;

	if (t->sigil == '{' || t->sigil == '&' || t->type == TOKEN_VAR)
		return;
	while (ls > text_start && pf_is_blank(p->text[ls - 1]))
		ls--;
	while (le < p->len && pf_is_blank(p->text[le]))
		le++;
	if ((ls == 0 || p->text[ls - 1] == '\n') &&
	    (le == p->len || p->text[le] == '\n' ||
	     (p->text[le] == '\r' && le + 1 < p->len && p->text[le + 1] == '\n'))) {
		t->open = ls;
		t->tag_end = le == p->len ? le : le + (p->text[le] == '\r' ? 2 : 1);
	}
}

/* {{/name}}: it must close the innermost open section. */
static int section_end(Parser *p, const char *name, Sections *s, const Tag *t)
{
	Token *o;

	if (s->depth == 0)
		return pf_error_set(-EINVAL, "%s:%u: '{{/%.*s}}' closes no open section", name,
				    t->line, (int)(t->e - t->b), p->text + t->b);
	o = &p->tokens[s->stack[s->depth - 1]];
	if (o->len != t->e - t->b || memcmp(o->start, p->text + t->b, t->e - t->b) != 0)
		return pf_error_set(-EINVAL,
				    "%s:%u: '{{/%.*s}}' does not close section '%.*s' opened at "
				    "line %u",
				    name, t->line, (int)(t->e - t->b), p->text + t->b, (int)o->len,
				    o->start, o->line);
	o->end = p->n_tokens;
	s->depth--;
	return 0;
}

/* {{#name}} or {{^name}}: a new section, not too deep, not inside one of the same name. */
static int section_open(Parser *p, const char *name, Sections *s, const Tag *t)
{
	if (s->depth >= PF_TPL_DEPTH_MAX)
		return pf_error_set(-EINVAL, "%s:%u: sections nested over %d deep", name, t->line,
				    PF_TPL_DEPTH_MAX);
	for (size_t i = 0; i < s->depth; i++) {
		const Token *o = &p->tokens[s->stack[i]];

		if (o->len == t->e - t->b && memcmp(o->start, p->text + t->b, t->e - t->b) == 0)
			return pf_error_set(-EINVAL,
					    "%s:%u: section '%.*s' inside a section of the same "
					    "name opened at line %u",
					    name, t->line, (int)(t->e - t->b), p->text + t->b,
					    o->line);
	}
	s->stack[s->depth++] = p->n_tokens;
	return 0;
}

/* At the end of the text: every section closed. */
static int sections_closed(Parser *p, const char *name, const Sections *s)
{
	const Token *o;

	if (s->depth == 0)
		return 0;
	o = &p->tokens[s->stack[s->depth - 1]];
	return pf_error_set(-EINVAL, "%s:%u: section '%.*s' is not closed", name, o->line,
			    (int)o->len, o->start);
}

static int parse(Parser *p)
{
	Sections s = { .depth = 0 };
	size_t pos = 0, text_start = 0;
	unsigned text_line = 1;
	const char *name = tpl_name(p->name);
	int r;

	if (p->len > PF_TPL_TEMPLATE_MAX)
		return pf_error_set(-EFBIG, "%s: template is over %d KiB", name,
				    PF_TPL_TEMPLATE_MAX / 1024);
	if (memchr(p->text, 0, p->len))
		return pf_error_set(
			-EINVAL, "%s:%u: NUL byte in template", name,
			line_at(p, (size_t)((const char *)memchr(p->text, 0, p->len) - p->text)));

	for (;;) {
		Tag t = { .open = find(p->text, p->len, pos, "{{") };

		if (t.open == p->len) {
			r = push_token(p, TOKEN_TEXT, p->text + text_start, p->len - text_start,
				       text_line);
			return r < 0 ? r : sections_closed(p, name, &s);
		}
		r = tag_bounds(p, name, &t);
		if (r >= 0)
			r = tag_type(p, name, &t);
		if (r >= 0)
			r = tag_name(p, name, &t);
		if (r < 0)
			return r;
		/* Text before the tag. */
		tag_standalone(p, text_start, &t);
		r = push_token(p, TOKEN_TEXT, p->text + text_start, t.open - text_start, text_line);
		if (r < 0)
			return r;
		text_start = pos = t.tag_end;
		text_line = line_at(p, text_start);

		if (t.sigil == '!')
			continue;
		if (t.type == TOKEN_END)
			r = section_end(p, name, &s, &t);
		if (r >= 0 && (t.type == TOKEN_SECTION || t.type == TOKEN_INVERTED))
			r = section_open(p, name, &s, &t);
		if (r >= 0)
			r = push_token(p, t.type, p->text + t.b, t.e - t.b, t.line);
		if (r < 0)
			return r;
	}
}

/* ---- rendering ---- */

typedef struct Buf {
	char *data;
	size_t len, cap;
} Buf;

typedef struct Renderer {
	const char *name;
	const Token *tokens;
	PfTplMode mode;
	Buf out;
	const PfTplCtx *stack[PF_TPL_DEPTH_MAX + 1];
	size_t depth;
	size_t steps;
} Renderer;

static int buf_put(Renderer *rd, const char *s, size_t n)
{
	Buf *b = &rd->out;

	if (n > PF_TPL_OUTPUT_MAX - b->len)
		return pf_error_set(-EFBIG, "%s: output is over %d KiB", tpl_name(rd->name),
				    PF_TPL_OUTPUT_MAX / 1024);
	if (b->len + n + 1 > b->cap) {
		size_t cap = MAX(b->cap * 2, b->len + n + 1);
		char *d;

		cap = MAX(cap, (size_t)256);
		d = realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
	return 0;
}

/* Looks name up in the context stack, innermost first. */
static const Value *lookup(const Renderer *rd, const Token *t)
{
	for (size_t i = rd->depth; i > 0; i--) {
		const Value *v = ctx_find(rd->stack[i - 1], t->start, t->len);

		if (v)
			return v;
	}
	return NULL;
}

/*
 * Emits s as a YAML double-quoted scalar. Escaped: '\' and '"'; every C0 control character,
 * DEL and C1 control (NEL included, a line break in YAML 1.1); U+2028/U+2029 (line breaks in
 * YAML 1.1); U+FEFF (a byte order mark) and U+FFFE/U+FFFF (not printable for YAML). What is
 * left is printable in the sense of YAML 1.1 and 1.2, so libyaml and PyYAML read it back as
 * one scalar equal to s. Invalid UTF-8 cannot be represented and is refused.
 */
static int emit_yaml(Renderer *rd, const Token *t, const char *s)
{
	static const char short_escapes[0x20][2] = {
		['\0'] = "0", ['\a'] = "a", ['\b'] = "b", ['\t'] = "t",	  ['\n'] = "n",
		['\v'] = "v", ['\f'] = "f", ['\r'] = "r", ['\033'] = "e",
	};
	const unsigned char *u = (const unsigned char *)s;
	size_t n = strlen(s), i = 0, run = 0;
	int r;

	r = buf_put(rd, "\"", 1);
	if (r < 0)
		return r;
	while (i < n) {
		char esc[16];
		uint32_t cp;
		size_t l = pf_utf8_decode(u + i, n - i, &cp);

		if (l == 0)
			return pf_error_set(-EINVAL,
					    "%s:%u: value of '%.*s' is not valid UTF-8 (byte %zu)",
					    tpl_name(rd->name), t->line, (int)t->len, t->start, i);
		if (cp == '\\' || cp == '"')
			snprintf(esc, sizeof(esc), "\\%c", (char)cp);
		else if (cp < 0x20 && short_escapes[cp][0])
			snprintf(esc, sizeof(esc), "\\%s", short_escapes[cp]);
		else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			snprintf(esc, sizeof(esc), "\\x%02X", (unsigned)cp);
		else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe ||
			 cp == 0xffff)
			snprintf(esc, sizeof(esc), "\\u%04X", (unsigned)cp);
		else {
			i += l;
			run += l;
			continue;
		}
		r = buf_put(rd, s + i - run, run);
		if (r < 0)
			return r;
		r = buf_put(rd, esc, strlen(esc));
		if (r < 0)
			return r;
		run = 0;
		i += l;
	}
	r = buf_put(rd, s + i - run, run);
	if (r < 0)
		return r;
	return buf_put(rd, "\"", 1);
}

static int emit_var(Renderer *rd, const Token *t)
{
	const Value *v = lookup(rd, t);
	const char *s;

	if (!v)
		return pf_error_set(-EINVAL, "%s:%u: '%.*s' is not defined", tpl_name(rd->name),
				    t->line, (int)t->len, t->start);
	if (v->type == VALUE_LIST)
		return pf_error_set(-EINVAL, "%s:%u: '%.*s' is a list: use {{#%.*s}}...{{/%.*s}}",
				    tpl_name(rd->name), t->line, (int)t->len, t->start, (int)t->len,
				    t->start, (int)t->len, t->start);
	s = v->type == VALUE_BOOL ? (v->boolean ? "true" : "false") : v->string;

	if (t->type == TOKEN_RAW) {
		/* Unescaped output is for what piflash built itself (booleans, key lists): a
		 * value from the operator's settings or the image could add structure. */
		if (v->type != VALUE_BOOL && !v->raw_ok)
			return pf_error_set(
				-EINVAL,
				"%s:%u: '%.*s' is inserted unescaped ({{{...}}} or "
				"{{&...}}), which only values piflash builds itself may "
				"be; use {{%.*s}}",
				tpl_name(rd->name), t->line, (int)t->len, t->start, (int)t->len,
				t->start);
		return buf_put(rd, s, strlen(s));
	}
	if (rd->mode == PF_TPL_YAML)
		return emit_yaml(rd, t, s);
	/* Text: a value may not start a line of its own. Tabs are fine. */
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
			return pf_error_set(-EINVAL,
					    "%s:%u: value of '%.*s' contains control character "
					    "0x%02x",
					    tpl_name(rd->name), t->line, (int)t->len, t->start, *c);
	return buf_put(rd, s, strlen(s));
}

/* Counts one unit of work: a token visited or a list item entered. */
static int step(Renderer *rd, const Token *t)
{
	if (++rd->steps > PF_TPL_STEPS_MAX)
		return pf_error_set(-E2BIG, "%s:%u: rendering takes over %d steps",
				    tpl_name(rd->name), t->line, PF_TPL_STEPS_MAX);
	return 0;
}

static int render_range(Renderer *rd, size_t from, size_t to)
{
	int r;

	for (size_t i = from; i < to; i++) {
		const Token *t = &rd->tokens[i];
		const Value *v;
		bool truthy;

		r = step(rd, t);
		if (r < 0)
			return r;
		switch (t->type) {
		case TOKEN_TEXT:
			r = buf_put(rd, t->start, t->len);
			break;
		case TOKEN_VAR:
		case TOKEN_RAW:
			r = emit_var(rd, t);
			break;
		case TOKEN_SECTION:
		case TOKEN_INVERTED:
			v = lookup(rd, t);
			if (!v)
				truthy = false;
			else if (v->type == VALUE_BOOL)
				truthy = v->boolean;
			else if (v->type == VALUE_STRING)
				truthy = v->string[0] != 0;
			else
				truthy = v->n_items > 0;

			r = 0;
			if (t->type == TOKEN_INVERTED) {
				if (!truthy)
					r = render_range(rd, i + 1, t->end);
			} else if (truthy && v->type == VALUE_LIST) {
				for (size_t k = 0; k < v->n_items && r >= 0; k++) {
					r = step(rd, t);
					if (r < 0)
						break;
					rd->stack[rd->depth++] = v->items[k];
					r = render_range(rd, i + 1, t->end);
					rd->depth--;
				}
			} else if (truthy)
				r = render_range(rd, i + 1, t->end);
			i = t->end; /* past the TOKEN_END */
			break;
		case TOKEN_END:
		default:
			r = 0;
			break;
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int pf_tpl_check(const char *name, const char *text, size_t len)
{
	Parser p = { .name = name, .text = text, .len = len, .line = 1 };
	int r;

	if (!text && len > 0)
		return -EINVAL;
	r = parse(&p);
	free(p.tokens);
	return r;
}

int pf_tpl_render(const char *name, const char *text, size_t len, const PfTplCtx *ctx,
		  PfTplMode mode, char **ret, size_t *ret_len)
{
	Parser p = { .name = name, .text = text, .len = len, .line = 1 };
	Renderer rd = { .name = name, .mode = mode };
	int r;

	if ((!text && len > 0) || !ctx || !ret || (mode != PF_TPL_TEXT && mode != PF_TPL_YAML))
		return -EINVAL;
	r = parse(&p);
	if (r < 0)
		goto finish;
	rd.tokens = p.tokens;
	rd.stack[rd.depth++] = ctx;
	r = render_range(&rd, 0, p.n_tokens);
	if (r < 0)
		goto finish;
	if (!rd.out.data) {
		rd.out.data = strdup("");
		if (!rd.out.data) {
			r = -ENOMEM;
			goto finish;
		}
	}
	if (ret_len)
		*ret_len = rd.out.len;
	*ret = TAKE_PTR(rd.out.data);
finish:
	free(rd.out.data);
	free(p.tokens);
	return r;
}

PfTplMode pf_tpl_mode_for_name(const char *name)
{
	if (name && (endswith(name, ".yaml") || endswith(name, ".yml")))
		return PF_TPL_YAML;
	return PF_TPL_TEXT;
}

/* ---- YAML check ---- */

/*
 * libyaml because it is Debian's well-kept YAML parser and the same family cloud-init's PyYAML
 * is built on (PyYAML is a port of it, and uses it as its fast loader): what it refuses, the
 * node would most likely refuse too. Only the event parser runs, so aliases are never
 * expanded and a hostile document costs time linear in its size.
 */
int pf_yaml_check(const char *name, const char *text, size_t len)
{
	yaml_parser_t parser;
	bool done = false;
	int r = 0;

	if (!text && len > 0)
		return -EINVAL;
	if (len > PF_TPL_OUTPUT_MAX)
		return pf_error_set(-EFBIG, "%s: YAML document is over %d KiB", tpl_name(name),
				    PF_TPL_OUTPUT_MAX / 1024);
	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);

	while (!done) {
		yaml_event_t event;

		if (!yaml_parser_parse(&parser, &event)) {
			if (parser.error == YAML_MEMORY_ERROR) {
				r = -ENOMEM;
				break;
			}
			/* Scanner and parser errors carry the mark of the problem; reader errors
			 * (bad encoding) carry a byte offset only. */
			if (parser.error == YAML_READER_ERROR)
				r = pf_error_set(-EBADMSG, "%s: byte %zu: %s", tpl_name(name),
						 parser.problem_offset,
						 parser.problem ? parser.problem : "unreadable");
			else if (parser.context)
				r = pf_error_set(-EBADMSG,
						 "%s:%zu:%zu: %s %s (line %zu column %zu)",
						 tpl_name(name), parser.problem_mark.line + 1,
						 parser.problem_mark.column + 1,
						 parser.problem ? parser.problem : "invalid YAML",
						 parser.context, parser.context_mark.line + 1,
						 parser.context_mark.column + 1);
			else
				r = pf_error_set(-EBADMSG, "%s:%zu:%zu: %s", tpl_name(name),
						 parser.problem_mark.line + 1,
						 parser.problem_mark.column + 1,
						 parser.problem ? parser.problem : "invalid YAML");
			break;
		}
		done = event.type == YAML_STREAM_END_EVENT;
		yaml_event_delete(&event);
	}
	yaml_parser_delete(&parser);
	return r;
}

/* ---- lookup of templates ---- */

static bool template_name_ok(const char *name)
{
	size_t n;

	if (!name)
		return false;
	n = strnlen(name, PF_TPL_NAME_MAX + 1);
	if (n == 0 || n > PF_TPL_NAME_MAX || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char_ok(name[i]) && name[i] != '.')
			return false;
	return true;
}

static const PfTemplateBuiltin *builtin_find(const char *name)
{
	size_t lo = 0, hi = pf_template_builtins_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, pf_template_builtins[mid].name);

		if (c == 0)
			return &pf_template_builtins[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

const char *const *pf_template_builtin_names(size_t *ret_n)
{
	if (ret_n)
		*ret_n = pf_template_builtins_n;
	return pf_template_builtin_name_list;
}

/*
 * Reads template_dir/name into a malloc'ed buffer. Returns 1 and the text, 0 when the
 * directory has no such file, or -errno with a detail.
 */
static int read_override(const char *template_dir, const char *name, char **ret_text,
			 size_t *ret_len)
{
	_cleanup_(closep) int dfd = -1;
	_cleanup_(freep) char *buf = NULL;
	size_t len = 0;
	int r;

	dfd = open(template_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return pf_error_set(-errno, "template directory '%s': %s", template_dir,
				    strerror(errno));
	r = pf_read_file_at(dfd, name, PF_TPL_TEMPLATE_MAX, &buf, &len);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return pf_error_prefix(r, "template directory '%s'", template_dir);
	if (memchr(buf, 0, len))
		return pf_error_set(-EINVAL, "template '%s/%s' holds a NUL byte", template_dir,
				    name);
	*ret_len = len;
	*ret_text = TAKE_PTR(buf);
	return 1;
}

/* Returns a malloc'ed a + b + c, or NULL when out of memory. */
static char *join(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *s = malloc(n);

	if (s)
		snprintf(s, n, "%s%s%s", a, b, c);
	return s;
}

int pf_template_get(const char *template_dir, const char *name, char **ret_text, size_t *ret_len,
		    char **ret_origin)
{
	_cleanup_(freep) char *text = NULL, *origin = NULL;
	const PfTemplateBuiltin *b;
	size_t len = 0;
	int r;

	if (!ret_text)
		return -EINVAL;
	if (!template_name_ok(name))
		return pf_error_set(-EINVAL,
				    "invalid template name '%.80s': 1-%d characters of "
				    "[A-Za-z0-9._-], not starting with '.'",
				    name ? name : "(null)", PF_TPL_NAME_MAX);

	if (template_dir) {
		r = read_override(template_dir, name, &text, &len);
		if (r < 0)
			return r;
		if (r > 0) {
			origin = join(template_dir, "/", name);
			if (!origin)
				return -ENOMEM;
		}
	}
	if (!text) {
		b = builtin_find(name);
		if (!b)
			return pf_error_set(-ENOENT, "no template '%s'%s", name,
					    template_dir ? " in the template directory or builtin"
							 : "");
		text = malloc(b->length + 1);
		if (!text)
			return -ENOMEM;
		memcpy(text, b->text, b->length);
		text[b->length] = 0;
		len = b->length;
		origin = join("builtin:", "", name);
		if (!origin)
			return -ENOMEM;
	}

	*ret_text = TAKE_PTR(text);
	if (ret_len)
		*ret_len = len;
	if (ret_origin)
		*ret_origin = TAKE_PTR(origin);
	return 0;
}
