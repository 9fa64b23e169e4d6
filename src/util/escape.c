/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/escape.h"

/*
 * Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629, table 3-7 of the Unicode
 * standard: no overlong forms, no surrogates, nothing past U+10FFFF), with its code point;
 * 0 when s does not start one.
 */
size_t pf_utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80) {
		*ret_cp = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
		if (s[0] == 0xe0)
			lo = 0xa0; /* overlong */
		if (s[0] == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
		if (s[0] == 0xf0)
			lo = 0x90; /* overlong */
		if (s[0] == 0xf4)
			hi = 0x8f; /* past U+10FFFF */
	} else
		return 0;
	if (n < len)
		return 0;
	/* Only the second byte has the narrower range; the others are plain continuations. */
	if (s[1] < lo || s[1] > hi)
		return 0;
	cp = (cp << 6) | (s[1] & 0x3f);
	for (size_t i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	*ret_cp = cp;
	return len;
}

static bool cp_shown(uint32_t cp)
{
	if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f))
		return false;
	/* Bidirectional embeddings, overrides and isolates reorder the text around them. */
	if ((cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069))
		return false;
	return true;
}

/*
 * Calls emit for each piece of s[0..n): a run of bytes shown as they are (escaped false) or
 * one byte to escape. A sequence that decodes to a control is escaped byte by byte.
 */
static void walk(const char *s, size_t n, void (*emit)(void *, const char *, size_t, bool),
		 void *userdata)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0, run = 0;

	while (i < n) {
		uint32_t cp = 0;
		size_t l = pf_utf8_decode(u + i, n - i, &cp);

		if (l > 0 && cp_shown(cp)) {
			i += l;
			continue;
		}
		if (i > run)
			emit(userdata, s + run, i - run, false);
		for (size_t k = 0; k < (l ? l : 1); k++)
			emit(userdata, s + i + k, 1, true);
		i += l ? l : 1;
		run = i;
	}
	if (n > run)
		emit(userdata, s + run, n - run, false);
}

static void put(void *userdata, const char *s, size_t n, bool escaped)
{
	char **p = userdata;

	if (!escaped) {
		memcpy(*p, s, n);
		*p += n;
		return;
	}
	*p += sprintf(*p, "\\x%02x", (unsigned char)s[0]);
}

char *pf_escape_n(const char *s, size_t n)
{
	char *buf, *p;

	if (!s || n > (SIZE_MAX - 1) / 4)
		return NULL;
	/* Each byte takes at most four ("\xNN"). */
	buf = malloc(4 * n + 1);
	if (!buf)
		return NULL;
	p = buf;
	walk(s, n, put, &p);
	*p = 0;
	return buf;
}

char *pf_escape(const char *s)
{
	return s ? pf_escape_n(s, strlen(s)) : NULL;
}

static void note(void *userdata, const char *s, size_t n, bool escaped)
{
	(void)s;
	(void)n;
	if (escaped)
		*(bool *)userdata = true;
}

bool pf_escape_clean(const char *s)
{
	bool dirty = false;

	walk(s, strlen(s), note, &dirty);
	return !dirty;
}

bool pf_token_ok(const char *s, const char *forbidden)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e ||
		    (forbidden && strchr(forbidden, *s)))
			return false;
	return true;
}
