/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Help texts that follow the option tables. A help text is a list of entries, each an option
 * line ("  -q --quiet   ..." or "     --ip ADDR/PREFIX   ...": a dash within the first
 * eight columns) and the continuation lines under it (indented further, no dash there);
 * other lines (headings, blank lines) are kept as they are. An entry is printed only when
 * its first long option is in the getopt table the command parses with, so a command that
 * leaves an option out of its table leaves it out of its --help too. tests/integration/cli.sh
 * checks the other direction: every option a command accepts is in its --help.
 */

#include <getopt.h>
#include <stdbool.h>

/* True if table (ended by an entry with a NULL name) has the long option name. */
bool help_table_has(const struct option *table, const char *name);

/* Prints the entries of text whose option is in table, and every other line, to stdout. */
void help_print_options(const char *text, const struct option *table);
