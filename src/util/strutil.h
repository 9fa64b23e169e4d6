/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Strings, numbers and time: the small conversions every module needs.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define streq(a, b) (strcmp((a), (b)) == 0)

/* True if s starts with prefix; returns pointer past the prefix or NULL. */
const char *startswith(const char *s, const char *prefix);

/*
 * The optimal string alignment distance of a and b (Levenshtein with adjacent swaps: "sshkey"
 * is 1 from "ssh_key", "gatway" 1 from "gateway"), for did-you-mean messages. SIZE_MAX when
 * either is longer than PF_EDIT_DISTANCE_MAX bytes.
 */
#define PF_EDIT_DISTANCE_MAX 64u
size_t pf_edit_distance(const char *a, const char *b);

/* True if s ends with suffix. */
bool endswith(const char *s, const char *suffix);

/* Formats bytes as "64.0 MiB" into buf (at least 16 bytes). Returns buf. */
char *pf_format_bytes(char *buf, size_t len, uint64_t bytes);

/* Parses a decimal uint64 with no sign, no trailing junk. Returns 0 or -EINVAL/-ERANGE. */
int pf_parse_u64(const char *s, uint64_t *ret);

/*
 * The time stamp of what piflash writes: SOURCE_DATE_EPOCH when set (reproducible builds),
 * else the time of the first call in this process — one run, one time stamp, whichever part
 * asks and however long the run takes, so that a card can be verified against it later. A
 * malformed SOURCE_DATE_EPOCH is -EINVAL.
 */
int pf_timestamp(int64_t *ret_seconds);

/* True if the n bytes at name are one of the comma-separated items of list. */
bool pf_list_has(const char *list, const char *name, size_t n);

/* True if all n bytes at p are zero (a hole candidate). */
bool pf_is_zero(const void *p, size_t n);

/* strdup that returns NULL only for NULL input; aborts never: returns NULL on ENOMEM too. */
char *pf_strdup_or_null(const char *s);

/* Seconds on the monotonic clock, for measuring how long something took. */
double pf_monotonic_seconds(void);

/* Replaces *dst with a copy of s (the old string freed): 0, or -ENOMEM leaving *dst as it was. */
int pf_set_str(char **dst, const char *s);

/* Appends a copy of s to the NULL-terminated strv *v of *n strings: 0 or -ENOMEM. */
int pf_strv_push(char ***v, size_t *n, const char *s);

/* The number of strings in a NULL-terminated strv (0 for NULL). */
size_t pf_strv_length(char *const *v);

/* qsort() comparison of two char * elements, by strcmp(). */
int pf_strcmp_ptr(const void *a, const void *b);

/* ASCII character classes, the same in every locale. */
static inline bool pf_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static inline bool pf_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static inline bool pf_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool pf_is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || pf_is_digit(c);
}
