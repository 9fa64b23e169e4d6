/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Making untrusted strings safe to show and to write into the operator's own files.
 *
 * Strings read from an image (os-release, labels, file names, link targets, cloud.cfg) or
 * from a file an earlier run left (report.json) can hold anything. Shown raw on a terminal,
 * ESC and C1 bytes are commands to the terminal (retitle the window, rewrite what is on the
 * screen, on some terminals answer back into the input); written raw into a line-based file
 * (inventory.ini, hosts, known_hosts) a newline adds lines of the writer's choosing.
 * pf_escape() is for showing; the pf_*_ok() checks are for formats that have no escape at
 * all, where the only safe answer is to refuse the value.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * s with every byte that a terminal could take for a command written as \xNN: C0 controls
 * (newline and tab too: a shown value is one line), DEL, C1 controls (U+0080..U+009F in
 * UTF-8, or as raw bytes), the bidirectional overrides and isolates (U+202A..U+202E,
 * U+2066..U+2069, which reorder what is shown), and every byte that is not part of
 * well-formed UTF-8 (overlong forms, surrogates, past U+10FFFF, truncated sequences). Other
 * UTF-8 is kept, so names in any script stay readable. A backslash is kept as it is: this is
 * for people to read, not a format to decode. Returns a malloc'd string, or NULL on ENOMEM
 * (or for s NULL).
 */
/*
 * Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), with its code point in *ret_cp; 0 when s does not start
 * one. n must be at least 1.
 */
size_t pf_utf8_decode(const unsigned char *s, size_t n, uint32_t *ret_cp);

char *pf_escape(const char *s);

/* The same for n bytes of s (NUL bytes among them are escaped too). */
char *pf_escape_n(const char *s, size_t n);

/* True if s needs no escaping: pf_escape(s) would return s unchanged. */
bool pf_escape_clean(const char *s);

/*
 * True if s is one or more bytes of printable ASCII (0x21..0x7e) other than those in
 * forbidden: a token that can go into a whitespace-separated line format as it is.
 */
bool pf_token_ok(const char *s, const char *forbidden);
