/* SPDX-License-Identifier: GPL-2.0-or-later */
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

void main_help(void)
{
	printf("Usage: piflash [OPTIONS] IMAGE TARGET\n"
	       "       piflash --inventory FILE.csv --all|--only A,B [OPTIONS] IMAGE DEVICE...\n"
	       "       piflash COMMAND [OPTIONS] ...\n"
	       "\n"
	       "Prepare SD cards for Raspberry Pi clusters: open an OS image (raw, .zip, .xz,\n"
	       ".gz, .zst, .bz2; a file, an http(s) URL, or - for standard input), change\n"
	       "files inside it without mounting, and write the result to TARGET: an image\n"
	       "file (written sparse), a block device (a card), or - for standard output.\n"
	       "IMAGE is never modified.\n"
	       "\n"
	       "Commands:\n"
	       "  inspect IMAGE        Show the image's source, partition table and filesystems\n"
	       "  cache [clean]        List or remove decompressed images in the cache\n"
	       "  ls [-l] IMAGE PART:/path   List a directory inside the image\n"
	       "  cat IMAGE PART:/path       Print a file from inside the image\n"
	       "  plan --node NAME [NODE OPTIONS] IMAGE   Show what would change; write nothing\n"
	       "  verify [OPTIONS] IMAGE TARGET   Check a card or file against the image\n"
	       "  batch --inventory FILE.csv --out-dir DIR IMAGE   One image per node (CI)\n"
	       "  devices [--json]     List the disks a card could be, and which piflash refuses\n"
	       "\n"
	       "Options of the main job (piflash [OPTIONS] IMAGE TARGET):\n");
	cmd_write_options_help();
	printf("\n"
	       "  -V --version        Show the version (anywhere on the command line)\n"
	       "\n"
	       "Exit codes: 0 success, 1 failure, 2 usage error, 3 verification mismatch,\n"
	       "4 refused for safety, 130 interrupted.\n"
	       "Run 'piflash COMMAND --help' for a command's options; man piflash for more.\n");
}
