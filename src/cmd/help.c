/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/help.h"
#include "util/macros.h"
#include "util/strutil.h"

/* Option names start within this many columns; descriptions and their continuations later. */
#define OPTION_COLUMNS 8

bool help_table_has(const struct option *table, const char *name)
{
	for (const struct option *o = table; o->name; o++)
		if (streq(o->name, name))
			return true;
	return false;
}

/*
 * For an option line, the first long option's name (without "--") and its length; 0 for a
 * line that is not an option line (a heading, a blank line, a continuation).
 */
static size_t option_name(const char *line, size_t len, const char **ret)
{
	size_t i = strspn(line, " ");
	const char *p;

	if (i >= len || i >= OPTION_COLUMNS || line[i] != '-')
		return 0;
	p = line + i;
	if (p[1] != '-') {
		/* "-q --quiet": a short option, then its long form if it has one. */
		p += 2;
		p += strspn(p, " ");
		if (p[0] != '-' || p[1] != '-')
			return 0;
	}
	p += 2;
	*ret = p;
	return strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789-");
}

void help_print_options(const char *text, const struct option *table)
{
	bool keep = true;

	for (const char *line = text; *line;) {
		const char *nl = strchr(line, '\n');
		size_t len = nl ? (size_t)(nl - line) + 1 : strlen(line);
		const char *name = NULL;
		size_t n = option_name(line, len, &name);

		if (n > 0) {
			char buf[64];

			snprintf(buf, sizeof(buf), "%.*s", (int)MIN(n, sizeof(buf) - 1), name);
			keep = help_table_has(table, buf);
		} else if (len <= 1 || line[0] != ' ' || strspn(line, " ") < OPTION_COLUMNS)
			keep = true; /* a heading or a blank line ends an entry */
		if (keep)
			fwrite(line, 1, len, stdout);
		line += len;
	}
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_errorv(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try 'piflash %s%s--help' for more information.\n", cmd ? cmd : "",
		cmd ? " " : "");
	return PF_EXIT_USAGE;
}
