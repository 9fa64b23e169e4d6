/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash: prepares SD cards for Raspberry Pi clusters. This file parses the command line,
 * dispatches to the subcommand and owns the process-wide conventions (messages, exit codes).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "config.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/strutil.h"

bool arg_quiet;
int arg_verbose;

static void (*log_hook)(void *userdata, bool before);
static void *log_hook_data;

void log_set_hook(void (*hook)(void *userdata, bool before), void *userdata)
{
	flockfile(stderr);
	log_hook = hook;
	log_hook_data = userdata;
	funlockfile(stderr);
}

void log_lock(void)
{
	flockfile(stderr);
}

void log_unlock(void)
{
	funlockfile(stderr);
}

/*
 * Writes s to f with every byte a terminal could take for a command escaped (pf_escape()):
 * messages and listings carry strings from images and from files of earlier runs. Without
 * memory for the copy a placeholder is written, never the raw bytes.
 */
static void put_escaped(FILE *f, const char *s)
{
	_cleanup_(freep) char *e = pf_escape(s);

	fputs(e ?: "(out of memory)", f);
}

/* One line formatted from fmt and ap, escaped; "(out of memory)" when it cannot be. */
static void put_formatted(FILE *f, const char *fmt, va_list ap)
{
	_cleanup_(freep) char *line = NULL;

	if (vasprintf(&line, fmt, ap) < 0)
		line = NULL;
	put_escaped(f, line ?: "(out of memory)");
}

/* One whole line at a time, whatever the threads: stderr is locked around it. */
static void log_line(const char *prefix, const char *fmt, va_list ap, const char *suffix)
{
	flockfile(stderr);
	if (log_hook)
		log_hook(log_hook_data, true);
	fputs(prefix, stderr);
	put_formatted(stderr, fmt, ap);
	if (suffix) {
		fputs(": ", stderr);
		put_escaped(stderr, suffix);
	}
	fputc('\n', stderr);
	if (log_hook)
		log_hook(log_hook_data, false);
	funlockfile(stderr);
}

void out_line(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	put_formatted(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
}

void log_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("piflash: ", fmt, ap, NULL);
	va_end(ap);
}

int log_error_errno(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("piflash: ", fmt, ap, pf_error_message(err));
	va_end(ap);
	pf_error_clear();
	return err;
}

void log_info(const char *fmt, ...)
{
	va_list ap;

	if (arg_quiet)
		return;
	va_start(ap, fmt);
	log_line("", fmt, ap, NULL);
	va_end(ap);
}

void log_notice(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_line("", fmt, ap, NULL);
	va_end(ap);
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fputs("piflash: ", stderr);
	va_start(ap, fmt);
	put_formatted(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'piflash %s%s--help' for more information.\n", cmd ? cmd : "",
		cmd ? " " : "");
	return PF_EXIT_USAGE;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "inspect", cmd_inspect }, { "cache", cmd_cache },	{ "ls", cmd_ls },
	{ "cat", cmd_cat },	    { "plan", cmd_plan },	{ "verify", cmd_verify },
	{ "batch", cmd_batch },	    { "devices", cmd_devices },
};

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

/* Edit distance with adjacent transpositions (optimal string alignment), for did-you-mean. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[33][33];

	if (la > 32 || lb > 32)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v =
				MIN(MIN(d[i - 1][j] + 1, d[i][j - 1] + 1), d[i - 1][j - 1] + cost);

			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				v = MIN(v, d[i - 2][j - 2] + 1);
			d[i][j] = v;
		}
	return d[la][lb];
}

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
		size_t d = edit_distance(arg, commands[i].name);

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
