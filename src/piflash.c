/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash: prepares SD cards for Raspberry Pi clusters. This file finds the command (or the
 * main job) in the command line and dispatches to it; --version and mistyped commands are
 * answered here. Messages are util/log.c's, help texts cmd/help.c's.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "version.h"
#include "util/error.h"
#include "util/strutil.h"

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "inspect", cmd_inspect }, { "cache", cmd_cache },	{ "ls", cmd_ls },
	{ "cat", cmd_cat },	    { "plan", cmd_plan },	{ "verify", cmd_verify },
	{ "batch", cmd_batch },	    { "devices", cmd_devices },
};

/* The command arg was probably meant as: the closest, or the only one it begins. */
static const char *command_suggestion(const char *arg)
{
	const char *best = NULL, *prefix_of = NULL;
	size_t best_d = SIZE_MAX, n_prefix = 0;

	/* Options that other tools have as commands. */
	if (streq(arg, "help"))
		return "--help";
	if (streq(arg, "version"))
		return "--version";

	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		size_t d = pf_edit_distance(arg, commands[i].name);

		if (d < best_d) {
			best_d = d;
			best = commands[i].name;
		}
		if (strlen(arg) >= 2 && startswith(commands[i].name, arg)) {
			prefix_of = commands[i].name;
			n_prefix++;
		}
	}
	if (best && best_d <= (strlen(best) <= 3 ? 1u : 2u))
		return best;
	return n_prefix == 1 ? prefix_of : NULL;
}

/*
 * A first argument that is no command and no file, and reads as a word ("inpsect"), is a
 * mistyped command rather than an IMAGE: image names have a dot or a slash.
 */
static bool looks_like_command(const char *arg)
{
	struct stat st;

	if (!(arg[0] >= 'a' && arg[0] <= 'z'))
		return false;
	if (strspn(arg, "abcdefghijklmnopqrstuvwxyz0123456789-_") != strlen(arg))
		return false;
	return lstat(arg, &st) < 0 && errno == ENOENT;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error(NULL, "missing command or IMAGE");

	/* --version and -V, anywhere before "--", whatever the command. */
	for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
		if (streq(argv[i], "--version") || streq(argv[i], "-V")) {
			printf("piflash %s\n", PACKAGE_VERSION);
			return PF_EXIT_OK;
		}

	if (streq(argv[1], "--help") || streq(argv[1], "-h")) {
		main_help();
		return PF_EXIT_OK;
	}

	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);

	if (looks_like_command(argv[1])) {
		const char *s = command_suggestion(argv[1]);

		if (s)
			return usage_error(NULL, "unknown command '%s'; did you mean '%s'?",
					   argv[1], s);
		return usage_error(NULL, "unknown command '%s'", argv[1]);
	}

	/* Not a command: the main job, IMAGE TARGET with its options. */
	return cmd_write(argc, argv);
}
