/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * SHA-256 (libcrypto) of labelled fields, for the digests that tell whether an artifact is up
 * to date: each field is its label and value, each NUL-terminated, NULL distinct from "".
 */

#include "util/macros.h"

typedef struct PfDigest {
	void *ctx; /* EVP_MD_CTX */
} PfDigest;

int pf_digest_begin(PfDigest *d);
void pf_digest_bytes(PfDigest *d, const void *data, size_t size);
void pf_digest_field(PfDigest *d, const char *label, const char *value);
void pf_digest_fieldf(PfDigest *d, const char *label, const char *fmt, ...) _printf_(3, 4);
/* 64 lower-case hex digits and a NUL; ends d. */
void pf_digest_end(PfDigest *d, char out[65]);

/* The SHA-256 of the file name in dirfd (not following a link), as hex. Returns 0 or -errno. */
int pf_sha256_file_at(int dirfd, const char *name, char out[65]);
