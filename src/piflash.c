/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash: prepares SD cards for Raspberry Pi clusters. This file parses the command line,
 * dispatches to the subcommand and owns the process-wide conventions (messages, exit codes).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void help(void)
{
	printf("Usage: piflash [OPTIONS] IMAGE TARGET\n"
	       "       piflash COMMAND [OPTIONS] ...\n"
	       "\n"
	       "Prepare SD cards for Raspberry Pi clusters: open an OS image (raw, .zip, .xz,\n"
	       ".gz, .zst, .bz2), change files inside it without mounting, and write the\n"
	       "result to a card or an image file.\n"
	       "\n"
	       "Commands:\n"
	       "  inspect IMAGE        Show the image's source, partition table and filesystems\n"
	       "  cache [clean]        List or remove decompressed images in the cache\n"
	       "  ls [-l] IMAGE PART:/path   List a directory inside the image\n"
	       "  cat IMAGE PART:/path       Print a file from inside the image\n"
	       "  plan --node NAME [NODE OPTIONS] IMAGE   Show what would change; write nothing\n"
	       "  verify [OPTIONS] IMAGE TARGET   Check a card or file against the image\n"
	       "  batch --inventory FILE.csv --out-dir DIR IMAGE   One image per node (CI)\n"
	       "\n"
	       "Options of the main job (piflash IMAGE OUT.img):\n"
	       "     --add LOCAL=PART:/path[:MODE[:UID:GID]]  Put a local file in the image\n"
	       "     --no-cache        Decompress to a temporary file instead of the cache\n"
	       "  -q --quiet           Print nothing but errors\n"
	       "  -h --help            Show this help\n"
	       "     --version         Show the version\n"
	       "\n"
	       "Exit codes: 0 success, 1 failure, 2 usage error, 3 verification mismatch,\n"
	       "4 refused for safety, 130 interrupted.\n"
	       "Run 'piflash COMMAND --help' for a command's options.\n");
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "inspect", cmd_inspect }, { "cache", cmd_cache }, { "ls", cmd_ls },
	{ "cat", cmd_cat },	    { "plan", cmd_plan },   { "verify", cmd_verify },
	{ "batch", cmd_batch },
};

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage_error(NULL, "missing command or IMAGE");

	if (streq(argv[1], "--help") || streq(argv[1], "-h")) {
		help();
		return PF_EXIT_OK;
	}
	if (streq(argv[1], "--version")) {
		printf("piflash %s\n", PACKAGE_VERSION);
		return PF_EXIT_OK;
	}

	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);

	/* Not a command: the main job, IMAGE TARGET with its options. */
	return cmd_write(argc, argv);
}
