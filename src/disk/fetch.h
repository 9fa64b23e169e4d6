/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Downloading an image over HTTP(S), through libcurl, into a file descriptor.
 *
 * One GET per call. The caller owns the file and decides what a download means for the
 * cache (source.c): this module only speaks HTTP. It asks for the rest of a partial file
 * with a Range request guarded by If-Range (the partial's ETag or Last-Modified), and keeps
 * the partial bytes only if the server answers 206 with a Content-Range that starts where
 * the partial ends; a 200 means the server ignored the range or the file changed, and the
 * download starts over at byte 0. It can revalidate a complete copy (If-None-Match,
 * If-Modified-Since): a 304 writes nothing. Only http and https are followed, redirects
 * included. The module never prints: progress goes to a callback.
 */

#include <stdbool.h>
#include <stdint.h>

/* "http://..." or "https://..." (scheme case-insensitive). */
bool pf_fetch_is_url(const char *s);

typedef struct PfFetchInfo {
	long status;	      /* the final response's: 200, 206 or 304 */
	uint64_t offset;      /* where the body starts in the file: the range's start, else 0 */
	uint64_t total_bytes; /* the whole file's size when the server said it, else UINT64_MAX */
	uint64_t size_bytes;  /* the file's size after the call (offset + body received) */
	char etag[256];	      /* validators of the response, "" when absent */
	char last_modified[64];
} PfFetchInfo;

typedef struct PfFetchRequest {
	const char *url;
	uint64_t resume_from;	       /* >0: the file holds this many bytes; ask for the rest */
	const char *if_range;	       /* with resume_from: the partial's ETag or Last-Modified */
	const char *if_none_match;     /* ETag of a complete copy (NULL: none) */
	const char *if_modified_since; /* Last-Modified of a complete copy (NULL: none) */
	uint64_t max_bytes;	       /* a larger file is refused */
	bool resumable;		       /* what arrived is kept for a next run: errors say so */
	/* Called once the final response's headers are in, before its body is written;
	 * a negative return aborts the download with that error. May be NULL. */
	int (*on_headers)(const PfFetchInfo *info, void *userdata);
	/* Called as the body arrives: bytes of the file so far, and its size (UINT64_MAX
	 * when unknown). May be NULL. */
	void (*progress)(uint64_t done_bytes, uint64_t total_bytes, void *userdata);
	void *userdata;
} PfFetchRequest;

/*
 * GETs req->url into fd (opened read-write; written with pwrite at the offsets the
 * response covers, truncated to 0 first unless the server resumed). Returns 0 with
 * *ret_info filled on 200, 206 or 304; -ERANGE when the server refused the range (416: the
 * caller starts over); otherwise -errno with a detail naming the URL, the HTTP status or
 * the transfer error and how many bytes arrived. What arrived stays in fd either way.
 */
int pf_fetch(const PfFetchRequest *req, int fd, PfFetchInfo *ret_info);
