/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/edit.h"
#include "util/error.h"
#include "util/macros.h"

/* A growing output buffer. */
typedef struct Buf {
	char *data;
	size_t len, allocated;
	int err;
} Buf;

static void buf_add(Buf *b, const char *s, size_t n)
{
	if (b->err)
		return;
	if (b->len + n + 1 > b->allocated) {
		size_t na = MAX(b->allocated * 2, b->len + n + 1 + 256);
		char *p = realloc(b->data, na);
		if (!p) {
			b->err = -ENOMEM;
			return;
		}
		b->data = p;
		b->allocated = na;
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

static void buf_adds(Buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static int buf_finish(Buf *b, char **ret, size_t *ret_len)
{
	if (!b->err && !b->data)
		buf_add(b, "", 0);
	if (b->err) {
		free(b->data);
		return b->err;
	}
	*ret = b->data;
	*ret_len = b->len;
	return 0;
}

/* Iterates over lines: *line and *n (without the newline); returns false at the end. */
static bool next_line(const char *text, size_t len, size_t *pos, const char **line, size_t *n,
		      bool *has_nl)
{
	const char *nl;

	if (*pos >= len)
		return false;
	*line = text + *pos;
	nl = memchr(*line, '\n', len - *pos);
	*n = nl ? (size_t)(nl - *line) : len - *pos;
	*has_nl = nl != NULL;
	*pos += *n + (nl ? 1 : 0);
	return true;
}

static bool line_starts(const char *line, size_t n, const char *prefix)
{
	size_t l = strlen(prefix);

	return n >= l && memcmp(line, prefix, l) == 0;
}

int pf_edit_replace_block(const char *text, size_t len, const char *block, char **ret,
			  size_t *ret_len)
{
	Buf b = { 0 };
	size_t pos = 0, n, begin_line = 0, lineno = 0;
	const char *line;
	bool has_nl, inside = false, replaced = false, last_nl = true;

	while (next_line(text, len, &pos, &line, &n, &has_nl)) {
		lineno++;
		if (!inside && line_starts(line, n, PF_EDIT_BEGIN)) {
			inside = true;
			begin_line = lineno;
			if (!replaced) {
				buf_adds(&b, block);
				replaced = true;
			}
			continue;
		}
		if (inside) {
			if (line_starts(line, n, PF_EDIT_END))
				inside = false;
			continue;
		}
		buf_add(&b, line, n);
		if (has_nl)
			buf_add(&b, "\n", 1);
		last_nl = has_nl;
	}
	if (inside) {
		free(b.data);
		return pf_error_set(-EINVAL,
				    "line %zu opens a piflash block that never ends ('%s' missing)",
				    begin_line, PF_EDIT_END);
	}
	if (!replaced) {
		if (!last_nl && b.len > 0)
			buf_add(&b, "\n", 1);
		buf_adds(&b, block);
	}
	return buf_finish(&b, ret, ret_len);
}

int pf_edit_hosts(const char *text, size_t len, const char *names, char **ret, size_t *ret_len)
{
	Buf b = { 0 };
	size_t pos = 0, n;
	const char *line;
	bool has_nl, done = false, last_nl = true;

	while (next_line(text, len, &pos, &line, &n, &has_nl)) {
		size_t lead = 0;

		while (lead < n && (line[lead] == ' ' || line[lead] == '\t'))
			lead++;
		if (line_starts(line + lead, n - lead, "127.0.1.1") &&
		    (n - lead == 9 || line[lead + 9] == ' ' || line[lead + 9] == '\t')) {
			if (!done) {
				buf_adds(&b, "127.0.1.1\t");
				buf_adds(&b, names);
				buf_add(&b, "\n", 1);
				done = true;
			}
			continue;
		}
		buf_add(&b, line, n);
		if (has_nl)
			buf_add(&b, "\n", 1);
		last_nl = has_nl;
	}
	if (!done) {
		if (!last_nl && b.len > 0)
			buf_add(&b, "\n", 1);
		buf_adds(&b, "127.0.1.1\t");
		buf_adds(&b, names);
		buf_add(&b, "\n", 1);
	}
	return buf_finish(&b, ret, ret_len);
}

int pf_edit_cmdline(const char *text, size_t len, const char *key, const char *value, char **ret,
		    size_t *ret_len)
{
	Buf b = { 0 };
	size_t klen = strlen(key), i = 0;
	bool done = false;

	/* The command line is one line; everything after the first newline is dropped. */
	while (i < len && text[i] != '\n') {
		size_t start, end;
		bool is_key;

		while (i < len && (text[i] == ' ' || text[i] == '\t'))
			i++;
		start = i;
		while (i < len && text[i] != ' ' && text[i] != '\t' && text[i] != '\n')
			i++;
		end = i;
		if (end == start)
			break;
		is_key = end - start > klen && memcmp(text + start, key, klen) == 0 &&
			 text[start + klen] == '=';
		if (is_key && done)
			continue; /* a second occurrence is dropped */
		if (b.len > 0)
			buf_add(&b, " ", 1);
		if (is_key) {
			buf_adds(&b, key);
			buf_add(&b, "=", 1);
			buf_adds(&b, value);
			done = true;
		} else
			buf_add(&b, text + start, end - start);
	}
	if (!done) {
		if (b.len > 0)
			buf_add(&b, " ", 1);
		buf_adds(&b, key);
		buf_add(&b, "=", 1);
		buf_adds(&b, value);
	}
	buf_add(&b, "\n", 1);
	return buf_finish(&b, ret, ret_len);
}

int pf_edit_shadow(const char *text, size_t len, const char *user, const char *hash, char **ret,
		   size_t *ret_len)
{
	Buf b = { 0 };
	size_t pos = 0, n, ulen = strlen(user);
	const char *line;
	bool has_nl, found = false;

	while (next_line(text, len, &pos, &line, &n, &has_nl)) {
		if (n > ulen && memcmp(line, user, ulen) == 0 && line[ulen] == ':') {
			const char *rest = memchr(line + ulen + 1, ':', n - ulen - 1);

			buf_add(&b, line, ulen + 1);
			buf_adds(&b, hash);
			if (rest)
				buf_add(&b, rest, (size_t)(line + n - rest));
			found = true;
		} else
			buf_add(&b, line, n);
		if (has_nl)
			buf_add(&b, "\n", 1);
	}
	if (!found) {
		free(b.data);
		return pf_error_set(-ENOENT, "no user '%s' in /etc/shadow", user);
	}
	return buf_finish(&b, ret, ret_len);
}

/* The words of an ENI line that start a stanza; anything else belongs to the stanza above. */
static bool eni_keyword(const char *w, size_t n)
{
	static const char *const kw[] = {
		"iface",	"mapping",    "auto",  "source", "source-directory",
		"no-auto-down", "no-scripts", "rename"
	};

	if (n > 6 && memcmp(w, "allow-", 6) == 0)
		return true;
	for (size_t i = 0; i < ELEMENTSOF(kw); i++)
		if (n == strlen(kw[i]) && memcmp(w, kw[i], n) == 0)
			return true;
	return false;
}

int pf_edit_ifupdown_drop(const char *text, size_t len, const char *iface, char **ret,
			  size_t *ret_len)
{
	size_t pos = 0, n, ilen = strlen(iface);
	bool has_nl, dropping = false;
	const char *line;
	Buf b = { 0 };

	while (next_line(text, len, &pos, &line, &n, &has_nl)) {
		const char *w = line, *end = line + n;
		size_t wl;

		while (w < end && (*w == ' ' || *w == '\t'))
			w++;
		wl = strcspn(w, " \t\n");
		if (w + wl > end)
			wl = (size_t)(end - w);
		if (w < end && *w == '#') {
			/* Comments stay, and piflash's own markers end what they follow. */
			size_t left = (size_t)(end - w);

			if ((left >= strlen(PF_EDIT_BEGIN) &&
			     memcmp(w, PF_EDIT_BEGIN, strlen(PF_EDIT_BEGIN)) == 0) ||
			    (left >= strlen(PF_EDIT_END) &&
			     memcmp(w, PF_EDIT_END, strlen(PF_EDIT_END)) == 0))
				dropping = false;
			if (dropping)
				continue;
		} else if (wl && eni_keyword(w, wl)) {
			const char *a = w + wl;

			dropping = false;
			if (wl == 5 && memcmp(w, "iface", 5) == 0) {
				a += strspn(a, " \t");
				if ((size_t)(end - a) > ilen && memcmp(a, iface, ilen) == 0 &&
				    (a[ilen] == ' ' || a[ilen] == '\t')) {
					dropping = true;
					continue;
				}
			} else if ((wl == 4 && memcmp(w, "auto", 4) == 0) ||
				   (wl > 6 && memcmp(w, "allow-", 6) == 0)) {
				/* "auto eth0 wlan0": keep the others. */
				Buf words = { 0 };
				bool any = false;

				while (a < end) {
					size_t k;

					a += strspn(a, " \t");
					k = strcspn(a, " \t\n");
					if (a + k > end)
						k = (size_t)(end - a);
					if (k && !(k == ilen && memcmp(a, iface, ilen) == 0)) {
						buf_add(&words, " ", 1);
						buf_add(&words, a, k);
						any = true;
					}
					a += k;
				}
				if (any) {
					buf_add(&b, w, wl);
					buf_add(&b, words.data, words.len);
					buf_add(&b, "\n", 1);
				}
				free(words.data);
				continue;
			}
		} else if (dropping)
			continue;
		buf_add(&b, line, n);
		if (has_nl)
			buf_add(&b, "\n", 1);
	}
	return buf_finish(&b, ret, ret_len);
}
