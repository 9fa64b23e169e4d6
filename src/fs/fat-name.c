/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What the FAT driver stores in a directory entry besides clusters: names (UTF-8 on the API
 * side, UTF-16 in long entries, 8.3 names with their case byte and ~N aliases, code page
 * 437 for bytes DOS wrote) and time stamps.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/fat-volume.h"
#include "util/error.h"
#include "util/strutil.h"

/* Code page 437, bytes 0x80..0xFF, for short names written by DOS (Linux and mtools
 * default to it). */
static const uint16_t cp437_high[128] = {
	0x00C7, 0x00FC, 0x00E9, 0x00E2, 0x00E4, 0x00E0, 0x00E5, 0x00E7, 0x00EA, 0x00EB, 0x00E8,
	0x00EF, 0x00EE, 0x00EC, 0x00C4, 0x00C5, 0x00C9, 0x00E6, 0x00C6, 0x00F4, 0x00F6, 0x00F2,
	0x00FB, 0x00F9, 0x00FF, 0x00D6, 0x00DC, 0x00A2, 0x00A3, 0x00A5, 0x20A7, 0x0192, 0x00E1,
	0x00ED, 0x00F3, 0x00FA, 0x00F1, 0x00D1, 0x00AA, 0x00BA, 0x00BF, 0x2310, 0x00AC, 0x00BD,
	0x00BC, 0x00A1, 0x00AB, 0x00BB, 0x2591, 0x2592, 0x2593, 0x2502, 0x2524, 0x2561, 0x2562,
	0x2556, 0x2555, 0x2563, 0x2551, 0x2557, 0x255D, 0x255C, 0x255B, 0x2510, 0x2514, 0x2534,
	0x252C, 0x251C, 0x2500, 0x253C, 0x255E, 0x255F, 0x255A, 0x2554, 0x2569, 0x2566, 0x2560,
	0x2550, 0x256C, 0x2567, 0x2568, 0x2564, 0x2565, 0x2559, 0x2558, 0x2552, 0x2553, 0x256B,
	0x256A, 0x2518, 0x250C, 0x2588, 0x2584, 0x258C, 0x2590, 0x2580, 0x03B1, 0x00DF, 0x0393,
	0x03C0, 0x03A3, 0x03C3, 0x00B5, 0x03C4, 0x03A6, 0x0398, 0x03A9, 0x03B4, 0x221E, 0x03C6,
	0x03B5, 0x2229, 0x2261, 0x00B1, 0x2265, 0x2264, 0x2320, 0x2321, 0x00F7, 0x2248, 0x00B0,
	0x2219, 0x00B7, 0x221A, 0x207F, 0x00B2, 0x25A0, 0x00A0,
};

uint8_t pf_fat_lfn_checksum(const uint8_t short_name[11])
{
	uint8_t sum = 0;

	for (unsigned i = 0; i < 11; i++)
		sum = (uint8_t)(((sum & 1) << 7) + (sum >> 1) + short_name[i]);
	return sum;
}

/* Characters an 8.3 name may hold besides letters and digits. */
static bool short_char_ok(unsigned char c)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return true;
	return c && strchr("$%'-_@~`!(){}^#&", c);
}

/* Decodes UTF-8 into UTF-16 units, rejecting what FAT cannot hold. */
int fat_name_to_utf16(const char *name, uint16_t units[FAT_NAME_UNITS], size_t *ret_n)
{
	const uint8_t *s = (const uint8_t *)name;
	size_t n = 0, len;

	if (!*s)
		return pf_error_set(-EINVAL, "FAT: empty name");
	if (streq(name, ".") || streq(name, ".."))
		return pf_error_set(-EINVAL, "FAT: '%s' cannot be created", name);

	while (*s) {
		uint32_t cp, min;
		size_t k;

		if (s[0] < 0x80) {
			cp = s[0];
			len = 1;
			min = 0;
		} else if ((s[0] & 0xE0) == 0xC0) {
			cp = s[0] & 0x1F;
			len = 2;
			min = 0x80;
		} else if ((s[0] & 0xF0) == 0xE0) {
			cp = s[0] & 0x0F;
			len = 3;
			min = 0x800;
		} else if ((s[0] & 0xF8) == 0xF0) {
			cp = s[0] & 0x07;
			len = 4;
			min = 0x10000;
		} else
			return pf_error_set(-EINVAL, "FAT: name '%s' is not valid UTF-8", name);
		/* A NUL ends the loop here too: it is no continuation byte. */
		for (k = 1; k < len; k++) {
			if ((s[k] & 0xC0) != 0x80)
				return pf_error_set(-EINVAL, "FAT: name '%s' is not valid UTF-8",
						    name);
			cp = cp << 6 | (s[k] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return pf_error_set(-EINVAL, "FAT: name '%s' is not valid UTF-8", name);
		if (cp < 0x20 || (cp < 0x80 && strchr("*?<>|:\"\\/", (int)cp)))
			return pf_error_set(-EINVAL,
					    "FAT: name '%s' contains a character FAT does not "
					    "allow (control characters and * ? < > | : \" \\)",
					    name);
		if (n + (cp >= 0x10000 ? 2 : 1) > FAT_NAME_UNITS)
			return pf_error_set(-ENAMETOOLONG,
					    "FAT: name '%s' is longer than 255 UTF-16 units", name);
		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[n++] = (uint16_t)(0xD800 + (cp >> 10));
			units[n++] = (uint16_t)(0xDC00 + (cp & 0x3FF));
		} else
			units[n++] = (uint16_t)cp;
		s += len;
	}
	if (s[-1] == '.' || s[-1] == ' ')
		return pf_error_set(-EINVAL, "FAT: name '%s' ends in '.' or ' ', which FAT drops",
				    name);
	*ret_n = n;
	return 0;
}

int pf_fat_check_name(const char *name)
{
	uint16_t units[FAT_NAME_UNITS];
	size_t n;

	return fat_name_to_utf16(name, units, &n);
}

int pf_fat_short_name(const char *name, uint8_t ret_name[11], uint8_t *ret_case)
{
	size_t len = strlen(name), base_len, ext_len;
	const char *dot = strrchr(name, '.');
	bool lower[2] = { false, false }, upper[2] = { false, false };
	uint8_t out[11];

	if (len == 0 || len > 12)
		return 0;
	base_len = dot ? (size_t)(dot - name) : len;
	ext_len = dot ? len - base_len - 1 : 0;
	if (base_len == 0 || base_len > 8 || ext_len > 3 || (dot && ext_len == 0))
		return 0;

	memset(out, ' ', sizeof(out));
	for (size_t i = 0; i < len; i++) {
		unsigned part = i > base_len;
		char c = name[i];

		if (i == base_len)
			continue; /* the dot */
		if (!short_char_ok((unsigned char)c))
			return 0;
		if (c >= 'a' && c <= 'z')
			lower[part] = true;
		else if (c >= 'A' && c <= 'Z')
			upper[part] = true;
		out[part ? 8 + (i - base_len - 1) : i] = (uint8_t)ascii_upper(c);
	}
	if ((lower[0] && upper[0]) || (lower[1] && upper[1]))
		return 0;

	memcpy(ret_name, out, sizeof(out));
	*ret_case = (uint8_t)((lower[0] ? CASE_LOWER_BASE : 0) | (lower[1] ? CASE_LOWER_EXT : 0));
	return 1;
}

static int cmp11(const void *a, const void *b)
{
	return memcmp(a, b, 11);
}

/* Appends the 8.3 form of s[0..n) to out (at most max), returns whether anything was lost
 * other than case. */
static bool alias_part(const char *s, size_t n, char *out, size_t max, size_t *ret_len)
{
	bool lossy = false;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char ch;

		if (c == ' ' || c == '.') {
			lossy = true;
			continue;
		}
		if (c >= 0x80) {
			/* One '_' per code point: continuation bytes add nothing. */
			if ((c & 0xC0) == 0x80)
				continue;
			ch = '_';
			lossy = true;
		} else if (short_char_ok(c))
			ch = ascii_upper((char)c);
		else {
			ch = '_';
			lossy = true;
		}
		if (o < max)
			out[o++] = ch;
		else
			lossy = true;
	}
	*ret_len = o;
	return lossy;
}

int pf_fat_make_alias(const char *name, const uint8_t (*taken)[11], size_t n_taken,
		      uint8_t ret_name[11])
{
	_cleanup_(freep) uint8_t(*sorted)[11] = NULL;
	const char *s = name, *dot;
	char base[8], ext[3];
	size_t base_len, ext_len;
	uint8_t cand[11];
	bool lossy = false;

	/* Leading dots and spaces are dropped, the extension is what follows the last dot. */
	while (*s == '.' || *s == ' ') {
		s++;
		lossy = true;
	}
	dot = strrchr(s, '.');
	if (alias_part(s, dot ? (size_t)(dot - s) : strlen(s), base, sizeof(base), &base_len))
		lossy = true;
	ext_len = 0;
	if (dot && alias_part(dot + 1, strlen(dot + 1), ext, sizeof(ext), &ext_len))
		lossy = true;
	if (base_len == 0) {
		base[0] = '_';
		base_len = 1;
		lossy = true;
	}

	if (n_taken > 0) {
		sorted = malloc(n_taken * 11);
		if (!sorted)
			return oom();
		memcpy(sorted, taken, n_taken * 11);
		qsort(sorted, n_taken, 11, cmp11);
	}

	memset(cand, ' ', sizeof(cand));
	memcpy(cand + 8, ext, ext_len);
	if (!lossy) {
		memcpy(cand, base, base_len);
		if (!n_taken || !bsearch(cand, sorted, n_taken, 11, cmp11))
			goto found;
	}
	for (unsigned n = 1; n <= 999999; n++) {
		char tail[9];
		int tl = snprintf(tail, sizeof(tail), "~%u", n);
		size_t keep = MIN(base_len, 8 - (size_t)tl);

		memset(cand, ' ', 8);
		memcpy(cand, base, keep);
		memcpy(cand + keep, tail, (size_t)tl);
		if (!n_taken || !bsearch(cand, sorted, n_taken, 11, cmp11))
			goto found;
	}
	return pf_error_set(-EEXIST, "FAT: no free 8.3 alias for '%s'", name);
found:
	memcpy(ret_name, cand, sizeof(cand));
	return 0;
}

static char *utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80)
		*o++ = (char)cp;
	else if (cp < 0x800) {
		*o++ = (char)(0xC0 | cp >> 6);
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else if (cp < 0x10000) {
		*o++ = (char)(0xE0 | cp >> 12);
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	} else {
		*o++ = (char)(0xF0 | cp >> 18);
		*o++ = (char)(0x80 | ((cp >> 12) & 0x3F));
		*o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
		*o++ = (char)(0x80 | (cp & 0x3F));
	}
	return o;
}

/* UTF-16 to UTF-8; an unpaired surrogate becomes U+FFFD. out holds 3 bytes per unit + 1. */
void fat_utf16_to_utf8(const uint16_t *u, size_t n, char *out)
{
	char *o = out;

	for (size_t i = 0; i < n; i++) {
		uint32_t cp = u[i];

		if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < n && u[i + 1] >= 0xDC00 &&
		    u[i + 1] < 0xE000) {
			cp = 0x10000 + ((cp - 0xD800) << 10) + (u[i + 1] - 0xDC00u);
			i++;
		} else if (cp >= 0xD800 && cp < 0xE000)
			cp = 0xFFFD;
		o = utf8_put(o, cp);
	}
	*o = 0;
}

/* The 8.3 name of a short entry as Linux and mtools show it (case byte applied). */
void fat_short_display(const uint8_t *sde, char *out)
{
	size_t base_len = 8, ext_len = 3;
	char *o = out;

	while (base_len > 0 && sde[base_len - 1] == ' ')
		base_len--;
	while (ext_len > 0 && sde[8 + ext_len - 1] == ' ')
		ext_len--;
	for (size_t i = 0; i < base_len + ext_len; i++) {
		bool in_ext = i >= base_len;
		uint8_t c = in_ext ? sde[8 + i - base_len] : sde[i];

		if (i == 0 && c == SLOT_KANJI_E5)
			c = SLOT_DELETED;
		if (in_ext && i == base_len)
			*o++ = '.';
		if (sde[12] & (in_ext ? CASE_LOWER_EXT : CASE_LOWER_BASE))
			c = (uint8_t)ascii_lower((char)c);
		o = utf8_put(o, c < 0x80 ? c : cp437_high[c - 0x80]);
	}
	*o = 0;
}

/* Compares a stored name with a looked-up one: ASCII letters without case, all else
 * exactly (Linux vfat with utf8 does no more). */
bool fat_name_eq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (ascii_lower(*a) != ascii_lower(*b))
			return false;
	return *a == *b;
}

/* ---- time ---- */

void pf_fat_time_encode(int64_t seconds, uint16_t *ret_date, uint16_t *ret_time, uint8_t *ret_tenth)
{
	/* 1980-01-01 00:00:00 and 2107-12-31 23:59:59 UTC. */
	const int64_t lo = 315532800, hi = 4354819199;
	struct tm tm;
	time_t t;

	seconds = seconds < lo ? lo : seconds > hi ? hi : seconds;
	t = (time_t)seconds;
	gmtime_r(&t, &tm);
	*ret_date = (uint16_t)((tm.tm_year - 80) << 9 | (tm.tm_mon + 1) << 5 | tm.tm_mday);
	*ret_time = (uint16_t)(tm.tm_hour << 11 | tm.tm_min << 5 | tm.tm_sec / 2);
	*ret_tenth = (uint8_t)((tm.tm_sec % 2) * 100);
}

int64_t pf_fat_time_decode(uint16_t date, uint16_t time)
{
	struct tm tm = { 0 };
	int mon = (date >> 5) & 0x0F, day = date & 0x1F;

	/* Out-of-range fields (a zeroed entry has month 0) are clamped, as Linux does. */
	tm.tm_year = 80 + (date >> 9);
	tm.tm_mon = (mon < 1 ? 1 : mon > 12 ? 12 : mon) - 1;
	tm.tm_mday = day < 1 ? 1 : day;
	tm.tm_hour = MIN(time >> 11, 23);
	tm.tm_min = MIN((time >> 5) & 0x3F, 59);
	tm.tm_sec = MIN((time & 0x1F) * 2, 59);
	return (int64_t)timegm(&tm);
}
