/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/inventory.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/macros.h"
#include "util/strutil.h"

/*
 * A CSV parser of our own rather than libcsv: the whole job is ~150 lines, and what matters
 * here is an exact line:column for every error — where an unterminated quote opened, where a
 * bad cell starts — which libcsv's callback interface does not report.
 */

typedef struct Parser {
	const char *name;
	const char *p;
	size_t len, i;
	unsigned line, col; /* of p[i] */
} Parser;

static void advance(Parser *ps)
{
	if (ps->p[ps->i] == '\n') {
		ps->line++;
		ps->col = 1;
	} else
		ps->col++;
	ps->i++;
}

static bool at_eol(const Parser *ps)
{
	return ps->i >= ps->len || ps->p[ps->i] == '\n' ||
	       (ps->p[ps->i] == '\r' && (ps->i + 1 == ps->len || ps->p[ps->i + 1] == '\n'));
}

/* Skips the end of a line (LF or CRLF), if there. */
static void skip_eol(Parser *ps)
{
	if (ps->i < ps->len && ps->p[ps->i] == '\r')
		advance(ps);
	if (ps->i < ps->len && ps->p[ps->i] == '\n')
		advance(ps);
}

typedef struct Field {
	char *data;
	size_t len, allocated;
} Field;

static int field_add(Parser *ps, Field *f, char ch, const PfInventoryPos *at)
{
	if (f->len >= PF_INVENTORY_FIELD_MAX)
		return pf_error_set(-E2BIG, "%s:%u:%u: field longer than %u bytes", ps->name,
				    at->line, at->column, PF_INVENTORY_FIELD_MAX);
	if (f->len + 2 > f->allocated) {
		size_t na = MAX(f->allocated * 2, (size_t)64);
		char *n = realloc(f->data, na);

		if (!n)
			return -ENOMEM;
		f->data = n;
		f->allocated = na;
	}
	f->data[f->len++] = ch;
	f->data[f->len] = 0;
	return 0;
}

static char *field_take(Field *f)
{
	char *s = f->data ? f->data : strdup("");

	*f = (Field){};
	return s;
}

static void strv_free(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* A quoted field, from its opening quote at ps (pos) to its closing one and the blanks
 * after it: "" is a quote, CRLF inside becomes LF. */
static int field_quoted(Parser *ps, Field *f, const PfInventoryPos *pos)
{
	int r = 0;

	advance(ps);
	for (;;) {
		char ch;

		if (ps->i >= ps->len)
			return pf_error_set(-EINVAL, "%s:%u:%u: quote opened here is never closed",
					    ps->name, pos->line, pos->column);
		ch = ps->p[ps->i];
		if (ch == '"') {
			if (ps->i + 1 < ps->len && ps->p[ps->i + 1] == '"') {
				advance(ps);
				advance(ps);
				r = field_add(ps, f, '"', pos);
			} else {
				advance(ps);
				break;
			}
		} else if (ch == '\r' && ps->i + 1 < ps->len && ps->p[ps->i + 1] == '\n') {
			/* CRLF inside quotes becomes LF, as the lines around it. */
			advance(ps);
			continue;
		} else {
			advance(ps);
			r = field_add(ps, f, ch, pos);
		}
		if (r < 0)
			return r;
	}
	while (ps->i < ps->len && pf_is_blank(ps->p[ps->i]))
		advance(ps);
	if (!at_eol(ps) && ps->p[ps->i] != ',')
		return pf_error_set(-EINVAL,
				    "%s:%u:%u: text after the closing quote of the field at column "
				    "%u (quote the whole field; write a quote inside as \"\")",
				    ps->name, ps->line, ps->col, pos->column);
	return 0;
}

/* An unquoted field, up to the next comma or the end of the line, trailing blanks dropped. */
static int field_plain(Parser *ps, Field *f, const PfInventoryPos *pos)
{
	while (!at_eol(ps) && ps->p[ps->i] != ',') {
		char ch = ps->p[ps->i];
		int r;

		if (ch == '"')
			return pf_error_set(-EINVAL,
					    "%s:%u:%u: quote inside an unquoted field (quote the "
					    "whole field and write the quote as \"\")",
					    ps->name, ps->line, ps->col);
		if (ch == '\r')
			return pf_error_set(-EINVAL, "%s:%u:%u: carriage return inside a field",
					    ps->name, ps->line, ps->col);
		r = field_add(ps, f, ch, pos);
		if (r < 0)
			return r;
		advance(ps);
	}
	while (f->len > 0 && pf_is_blank(f->data[f->len - 1]))
		f->data[--f->len] = 0;
	return 0;
}

/* Parses one field at ps->i into *ret, its start at *ret_pos. */
static int parse_field(Parser *ps, char **ret, PfInventoryPos *ret_pos)
{
	Field f = {};
	int r;

	while (ps->i < ps->len && pf_is_blank(ps->p[ps->i]))
		advance(ps);
	*ret_pos = (PfInventoryPos){ ps->line, ps->col };

	if (ps->i < ps->len && ps->p[ps->i] == '"')
		r = field_quoted(ps, &f, ret_pos);
	else
		r = field_plain(ps, &f, ret_pos);
	if (r < 0) {
		free(f.data);
		return r;
	}
	*ret = field_take(&f);
	return *ret ? 0 : -ENOMEM;
}

/* Parses one record; returns 1 with a record, 0 at the end of the text, or -errno. */
static int parse_record(Parser *ps, char ***ret_fields, PfInventoryPos **ret_pos, size_t *ret_n,
			unsigned *ret_line)
{
	char **fields = NULL;
	PfInventoryPos *pos = NULL;
	size_t n = 0;
	int r;

	/* Empty lines (LF or CRLF) between records are skipped. */
	while (ps->i < ps->len && at_eol(ps))
		skip_eol(ps);
	if (ps->i >= ps->len)
		return 0;
	*ret_line = ps->line;

	for (;;) {
		char **nf;
		PfInventoryPos *np;

		if (n >= PF_INVENTORY_COLUMNS_MAX) {
			r = pf_error_set(-E2BIG, "%s:%u: more than %u fields", ps->name, *ret_line,
					 PF_INVENTORY_COLUMNS_MAX);
			goto fail;
		}
		nf = realloc(fields, (n + 1) * sizeof(*fields));
		if (!nf) {
			r = -ENOMEM;
			goto fail;
		}
		fields = nf;
		np = realloc(pos, (n + 1) * sizeof(*pos));
		if (!np) {
			r = -ENOMEM;
			goto fail;
		}
		pos = np;
		r = parse_field(ps, &fields[n], &pos[n]);
		if (r < 0)
			goto fail;
		n++;
		if (ps->i < ps->len && ps->p[ps->i] == ',') {
			advance(ps);
			continue;
		}
		skip_eol(ps);
		break;
	}
	*ret_fields = fields;
	*ret_pos = pos;
	*ret_n = n;
	return 1;
fail:
	strv_free(fields, n);
	free(pos);
	return r;
}

/* Checks the text is UTF-8 without NUL bytes; the error names line:column. */
static int check_utf8(const char *name, const char *s, size_t len, size_t start)
{
	unsigned line = 1, col = 1;

	for (size_t i = start; i < len;) {
		unsigned char c = (unsigned char)s[i];
		size_t n;
		uint32_t cp, min;

		if (c == 0)
			return pf_error_set(-EINVAL, "%s:%u:%u: NUL byte (the file must be text)",
					    name, line, col);
		if (c < 0x80) {
			if (c == '\n') {
				line++;
				col = 1;
			} else
				col++;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			n = 2;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 3;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 4;
			cp = c & 0x07;
			min = 0x10000;
		} else
			goto bad;
		if (len - i < n)
			goto bad;
		for (size_t j = 1; j < n; j++) {
			if (((unsigned char)s[i + j] & 0xc0) != 0x80)
				goto bad;
			cp = cp << 6 | ((unsigned char)s[i + j] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		i += n;
		col += (unsigned)n;
	}
	return 0;
bad:
	return pf_error_set(-EINVAL, "%s:%u:%u: not UTF-8 (save the file as UTF-8)", name, line,
			    col);
}

PfInventory *pf_inventory_free(PfInventory *inv)
{
	if (!inv)
		return NULL;
	for (size_t i = 0; i < inv->n_rows; i++) {
		strv_free(inv->rows[i].fields, inv->n_columns);
		free(inv->rows[i].pos);
		free(inv->rows[i].error);
	}
	free(inv->rows);
	strv_free(inv->columns, inv->n_columns);
	free(inv->path);
	free(inv->dir);
	free(inv);
	return NULL;
}

static int header_check(PfInventory *inv, const PfInventoryPos *pos)
{
	bool have_hostname = false;
	int r;

	for (size_t j = 0; j < inv->n_columns; j++) {
		char *c = inv->columns[j];

		for (char *p = c; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		if (!*c)
			return pf_error_set(-EINVAL, "%s:%u:%u: column %zu has no name", inv->path,
					    pos[j].line, pos[j].column, j + 1);
		r = pf_var_key_validate(c);
		if (r < 0)
			return pf_error_prefix(r, "%s:%u:%u: column name", inv->path, pos[j].line,
					       pos[j].column);
		if (streq(c, "wifi_psk") || streq(c, "password"))
			return pf_error_set(-EINVAL,
					    "%s:%u:%u: column '%s': secrets do not belong in an "
					    "inventory; use %s",
					    inv->path, pos[j].line, pos[j].column, c,
					    streq(c, "password") ? "password_hash"
								 : "wifi_psk_file");
		r = pf_node_config_key_check(c);
		if (r < 0) {
			const char *hint = pf_node_config_key_suggest(c);

			/* A misspelt column would otherwise build every node without it. */
			if (hint)
				return pf_error_set(-EINVAL,
						    "%s:%u:%u: unknown column '%s' (did you mean "
						    "%s?)",
						    inv->path, pos[j].line, pos[j].column, c, hint);
			if (!startswith(c, PF_VAR_PREFIX))
				return pf_error_set(-EINVAL,
						    "%s:%u:%u: unknown column '%s' (a template "
						    "variable's column is named " PF_VAR_PREFIX
						    "%s)",
						    inv->path, pos[j].line, pos[j].column, c, c);
			return pf_error_prefix(r, "%s:%u:%u: column '%s'", inv->path, pos[j].line,
					       pos[j].column, c);
		}
		for (size_t k = 0; k < j; k++)
			if (streq(inv->columns[k], c))
				return pf_error_set(-EINVAL,
						    "%s:%u:%u: column '%s' appears twice (also at "
						    "column %u)",
						    inv->path, pos[j].line, pos[j].column, c,
						    pos[k].column);
		if (streq(c, "hostname")) {
			have_hostname = true;
			inv->hostname_column = j;
		}
	}
	if (!have_hostname)
		return pf_error_set(-EINVAL, "%s:1: the header has no 'hostname' column",
				    inv->path);
	return 0;
}

/* Ansible group names, separated by spaces or commas. */
static int group_check(const char *v)
{
	bool any = false;

	for (const char *p = v; *p;) {
		size_t n;

		if (*p == ' ' || *p == ',' || *p == '\t') {
			p++;
			continue;
		}
		n = strcspn(p, " ,\t");
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
			return pf_error_set(-EINVAL,
					    "group '%.*s' must start with a letter or '_' (Ansible "
					    "group names: letters, digits, '_')",
					    (int)MIN(n, (size_t)64), p);
		for (size_t i = 1; i < n; i++)
			if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
			      (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
				return pf_error_set(-EINVAL,
						    "group '%.*s' has '%c' (Ansible group names: "
						    "letters, digits, '_')",
						    (int)MIN(n, (size_t)64), p,
						    (unsigned char)p[i] >= 0x20 ? p[i] : '?');
		any = true;
		p += n;
	}
	if (!any)
		return pf_error_set(-EINVAL, "no group name");
	return 0;
}

typedef struct Seen {
	uint32_t ip; /* for addresses */
	const char *name;
	size_t row;
} Seen;

static int seen_cmp_name(const void *a, const void *b)
{
	const Seen *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : (x->row > y->row) - (x->row < y->row);
}

static int seen_cmp_ip(const void *a, const void *b)
{
	const Seen *x = a, *y = b;

	if (x->ip != y->ip)
		return x->ip < y->ip ? -1 : 1;
	return (x->row > y->row) - (x->row < y->row);
}

/*
 * A row's own error: fatal, or with PF_INVENTORY_KEEP_BAD_ROWS kept on the row (which then
 * takes no part in the uniqueness checks) for the caller to report as that node's failure.
 */
static int row_failed(PfInventory *inv, PfInventoryRow *row, int r, unsigned flags)
{
	if (!(flags & PF_INVENTORY_KEEP_BAD_ROWS) || r == -ENOMEM)
		return r;
	row->error = strdup(pf_error_message(r));
	return row->error ? 0 : -ENOMEM;
}

/* Validates every row, then uniqueness of hostnames and addresses. */
/* Checks row i (hostname, group, the settings it makes) and notes its name and address. */
static int row_check(PfInventory *inv, size_t i, ssize_t group_col, Seen *names, Seen *ips,
		     size_t *n_ips, unsigned flags)
{
	PfInventoryRow *row = &inv->rows[i];
	const PfInventoryPos *hp = &row->pos[inv->hostname_column];
	PfNodeConfig c = {};
	int r = 0;

	if (!*row->fields[inv->hostname_column])
		return pf_error_set(-EINVAL, "%s:%u:%u: empty hostname", inv->path, hp->line,
				    hp->column);
	names[i] = (Seen){ 0, row->fields[inv->hostname_column], i };
	if (group_col >= 0 && *row->fields[group_col]) {
		r = group_check(row->fields[group_col]);
		if (r < 0)
			pf_error_prefix(r, "%s:%u:%u: group", inv->path, row->pos[group_col].line,
					row->pos[group_col].column);
	}
	if (r >= 0)
		r = pf_inventory_apply(inv, row, &c);
	if (r >= 0) {
		r = pf_node_config_check_network(&c);
		if (r < 0)
			pf_error_prefix(r, "%s:%u", inv->path, row->line);
	}
	if (r >= 0 && c.static_ip)
		ips[(*n_ips)++] = (Seen){ c.ip, NULL, i };
	pf_node_config_done(&c);
	if (r < 0)
		return row_failed(inv, row, r, flags);
	return 0;
}

/* Of all duplicate pairs, report the one a reader meets first: the smallest later row. */
static int dup_names(PfInventory *inv, Seen *names)
{
	size_t best = SIZE_MAX, best_prev = 0;
	const PfInventoryRow *a, *b;

	qsort(names, inv->n_rows, sizeof(Seen), seen_cmp_name);
	for (size_t i = 1; i < inv->n_rows; i++)
		if (streq(names[i].name, names[i - 1].name) && names[i].row < best) {
			best = names[i].row;
			best_prev = names[i - 1].row;
		}
	if (best == SIZE_MAX)
		return 0;
	a = &inv->rows[best_prev];
	b = &inv->rows[best];
	return pf_error_set(-EEXIST, "%s:%u: hostname '%s' is already used on line %u", inv->path,
			    b->line, b->fields[inv->hostname_column], a->line);
}

/* The same for static addresses. */
static int dup_ips(PfInventory *inv, Seen *ips, size_t n_ips)
{
	size_t best = SIZE_MAX, best_prev = 0;
	const PfInventoryRow *a, *b;
	char ip[16];

	qsort(ips, n_ips, sizeof(Seen), seen_cmp_ip);
	for (size_t i = 1; i < n_ips; i++)
		if (ips[i].ip == ips[i - 1].ip && ips[i].row < best) {
			best = ips[i].row;
			best_prev = ips[i - 1].row;
		}
	if (best == SIZE_MAX)
		return 0;
	a = &inv->rows[best_prev];
	b = &inv->rows[best];
	pf_ipv4_format(ips[0].ip, ip);
	for (size_t i = 0; i < n_ips; i++)
		if (ips[i].row == best)
			pf_ipv4_format(ips[i].ip, ip);
	return pf_error_set(-EEXIST, "%s:%u: address %s of '%s' is already used by '%s' on line %u",
			    inv->path, b->line, ip, b->fields[inv->hostname_column],
			    a->fields[inv->hostname_column], a->line);
}

static int rows_check(PfInventory *inv, unsigned flags)
{
	_cleanup_(freep) Seen *names = NULL;
	_cleanup_(freep) Seen *ips = NULL;
	size_t n_ips = 0;
	ssize_t group_col = -1;
	int r;

	for (size_t j = 0; j < inv->n_columns; j++)
		if (streq(inv->columns[j], "group"))
			group_col = (ssize_t)j;
	names = calloc(MAX(inv->n_rows, (size_t)1), sizeof(Seen));
	ips = calloc(MAX(inv->n_rows, (size_t)1), sizeof(Seen));
	if (!names || !ips)
		return -ENOMEM;
	for (size_t i = 0; i < inv->n_rows; i++) {
		r = row_check(inv, i, group_col, names, ips, &n_ips, flags);
		if (r < 0)
			return r;
	}
	r = dup_names(inv, names);
	if (r < 0)
		return r;
	return dup_ips(inv, ips, n_ips);
}

static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

int pf_inventory_parse(const char *text, size_t len, const char *name, PfInventory **ret)
{
	return pf_inventory_parse_flags(text, len, name, 0, ret);
}

int pf_inventory_parse_flags(const char *text, size_t len, const char *name, unsigned flags,
			     PfInventory **ret)
{
	_cleanup_(pf_inventory_freep) PfInventory *inv = NULL;
	_cleanup_(freep) PfInventoryPos *hpos = NULL;
	Parser ps = { .name = name, .p = text, .len = len, .line = 1, .col = 1 };
	unsigned hline;
	int r;

	if (!name)
		name = ps.name = "inventory";
	if (len > PF_INVENTORY_FILE_MAX)
		return pf_error_set(-E2BIG, "%s: %zu bytes, more than an inventory may be (%u)",
				    name, len, PF_INVENTORY_FILE_MAX);
	/* A UTF-8 byte-order mark, as spreadsheets write; columns count after it. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		ps.i = 3;
	r = check_utf8(name, text, len, ps.i);
	if (r < 0)
		return r;

	inv = calloc(1, sizeof(*inv));
	if (!inv)
		return -ENOMEM;
	inv->path = strdup(name);
	inv->dir = dir_of(name);
	if (!inv->path || !inv->dir)
		return -ENOMEM;

	r = parse_record(&ps, &inv->columns, &hpos, &inv->n_columns, &hline);
	if (r < 0)
		return r;
	if (r == 0)
		return pf_error_set(-EINVAL,
				    "%s: empty file (expected a header row naming the "
				    "columns, with 'hostname')",
				    name);
	r = header_check(inv, hpos);
	if (r < 0)
		return r;

	for (;;) {
		PfInventoryRow row = {};
		size_t n;

		r = parse_record(&ps, &row.fields, &row.pos, &n, &row.line);
		if (r < 0)
			return r;
		if (r == 0)
			break;
		if (n != inv->n_columns) {
			strv_free(row.fields, n);
			free(row.pos);
			return pf_error_set(-EINVAL,
					    "%s:%u: %zu field%s, but the header (line %u) has %zu "
					    "columns",
					    name, row.line, n, n == 1 ? "" : "s", hline,
					    inv->n_columns);
		}
		if (inv->n_rows >= PF_INVENTORY_ROWS_MAX) {
			strv_free(row.fields, n);
			free(row.pos);
			return pf_error_set(-E2BIG, "%s:%u: more than %u rows", name, row.line,
					    PF_INVENTORY_ROWS_MAX);
		}
		PfInventoryRow *nr = realloc(inv->rows, (inv->n_rows + 1) * sizeof(*nr));
		if (!nr) {
			strv_free(row.fields, n);
			free(row.pos);
			return -ENOMEM;
		}
		inv->rows = nr;
		inv->rows[inv->n_rows++] = row;
	}

	r = rows_check(inv, flags);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(inv);
	return 0;
}

int pf_inventory_load(const char *path, PfInventory **ret)
{
	return pf_inventory_load_flags(path, 0, ret);
}

int pf_inventory_load_flags(const char *path, unsigned flags, PfInventory **ret)
{
	_cleanup_(freep) char *buf = NULL;
	size_t len = 0;
	int r;

	r = pf_read_file_at(AT_FDCWD, path, PF_INVENTORY_FILE_MAX, &buf, &len);
	if (r < 0)
		return r;
	return pf_inventory_parse_flags(buf, len, path, flags, ret);
}

const PfInventoryRow *pf_inventory_find(const PfInventory *inv, const char *hostname)
{
	char list[256];
	size_t o = 0;

	for (size_t i = 0; i < inv->n_rows; i++)
		if (streq(inv->rows[i].fields[inv->hostname_column], hostname))
			return &inv->rows[i];

	list[0] = 0;
	for (size_t i = 0; i < inv->n_rows && i < 5; i++) {
		int l = snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
				 inv->rows[i].fields[inv->hostname_column]);

		if (l < 0 || (size_t)l >= sizeof(list) - o)
			break;
		o += (size_t)l;
	}
	if (inv->n_rows == 0)
		pf_error_set(-ENOENT, "no node '%.64s' in %s: it has no rows", hostname, inv->path);
	else
		pf_error_set(-ENOENT, "no node '%.64s' in %s (its %zu node%s: %s%s)", hostname,
			     inv->path, inv->n_rows, inv->n_rows == 1 ? "" : "s", list,
			     inv->n_rows > 5 ? ", ..." : "");
	errno = ENOENT;
	return NULL;
}

const char *pf_inventory_get(const PfInventory *inv, const PfInventoryRow *row, const char *name)
{
	for (size_t j = 0; j < inv->n_columns; j++)
		if (streq(inv->columns[j], name))
			return row->fields[j];
	return NULL;
}

int pf_inventory_apply(const PfInventory *inv, const PfInventoryRow *row, PfNodeConfig *c)
{
	for (size_t j = 0; j < inv->n_columns; j++) {
		char origin[512];
		int r;

		if (!*row->fields[j])
			continue;
		snprintf(origin, sizeof(origin), "%s:%u:%u", inv->path, row->pos[j].line,
			 row->pos[j].column);
		r = pf_node_config_set_at(c, inv->columns[j], row->fields[j], origin, inv->dir);
		if (r < 0)
			return r;
	}
	return 0;
}
