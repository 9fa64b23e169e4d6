/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/digest.h"

int pf_digest_begin(PfDigest *d)
{
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1)
		return -ENOMEM;
	return 0;
}

void pf_digest_bytes(PfDigest *d, const void *data, size_t size)
{
	EVP_DigestUpdate(d->ctx, data, size);
}

void pf_digest_field(PfDigest *d, const char *label, const char *value)
{
	EVP_DigestUpdate(d->ctx, label, strlen(label) + 1);
	if (value)
		EVP_DigestUpdate(d->ctx, value, strlen(value) + 1);
	else
		EVP_DigestUpdate(d->ctx, "\377", 1);
}

void pf_digest_fieldf(PfDigest *d, const char *label, const char *fmt, ...)
{
	_cleanup_(freep) char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	pf_digest_field(d, label, n < 0 ? NULL : s);
}

void pf_digest_end(PfDigest *d, char out[65])
{
	unsigned char md[32];
	unsigned len = 0;

	if (EVP_DigestFinal_ex(d->ctx, md, &len) != 1)
		memset(md, 0, sizeof(md));
	for (size_t i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	EVP_MD_CTX_free(d->ctx);
	d->ctx = NULL;
}

int pf_sha256_file_at(int dirfd, const char *name, char out[65])
{
	_cleanup_(closep) int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unsigned char buf[65536];
	PfDigest d;
	ssize_t n;

	if (fd < 0)
		return -errno;
	if (pf_digest_begin(&d) < 0)
		return -ENOMEM;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		pf_digest_bytes(&d, buf, (size_t)n);
	pf_digest_end(&d, out);
	return n < 0 ? -errno : 0;
}
