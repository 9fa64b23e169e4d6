/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define ERROR_DETAIL_MAX 1024

static __thread char detail[ERROR_DETAIL_MAX];
static __thread char errbuf[128];

int pf_error_set(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	return err < 0 ? err : -err;
}

int pf_error_prefix(int err, const char *fmt, ...)
{
	char prefix[ERROR_DETAIL_MAX / 2], old[ERROR_DETAIL_MAX / 2];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);

	if (detail[0])
		snprintf(old, sizeof(old), "%.500s", detail);
	else
		snprintf(old, sizeof(old), "%.500s", strerror(err < 0 ? -err : err));
	/* Both halves fit: each is at most half the buffer. */
	snprintf(detail, sizeof(detail), "%.510s: %.510s", prefix, old);
	return err < 0 ? err : -err;
}

void pf_error_clear(void)
{
	detail[0] = 0;
}

const char *pf_error_message(int err)
{
	if (detail[0])
		return detail;
	snprintf(errbuf, sizeof(errbuf), "%s", strerror(err < 0 ? -err : err));
	return errbuf;
}
