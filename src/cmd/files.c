/* SPDX-License-Identifier: GPL-2.0-or-later */
/* piflash ls and piflash cat: look inside an image's filesystems without mounting. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd/cmd.h"
#include "cmd/image.h"
#include "util/error.h"
#include "util/strutil.h"

static void help_ls(void)
{
	printf("Usage: piflash ls [OPTIONS] IMAGE PART:/path\n"
	       "       piflash ls [OPTIONS] IMAGE /path\n"
	       "\n"
	       "List a directory inside an image. PART is a partition number or filesystem\n"
	       "label (HypriotOS, root, 2). A bare /path is looked up as the booted system\n"
	       "would: on the root filesystem, across the mounts of its /etc/fstab, following\n"
	       "symlinks inside the image.\n"
	       "\n"
	       "  -h --help       Show this help\n"
	       "  -l              Long listing: mode, uid, gid, size, mtime, link target\n"
	       "     --no-cache   Decompress to a temporary file instead of the cache\n"
	       "     --sha256 HEX Fail unless the image (file, download) has this SHA-256\n");
}

static void help_cat(void)
{
	printf("Usage: piflash cat [OPTIONS] IMAGE PART:/path\n"
	       "       piflash cat [OPTIONS] IMAGE /path\n"
	       "\n"
	       "Write a file from inside an image to standard output, following symlinks\n"
	       "inside the image (across partitions, through the image's /etc/fstab).\n"
	       "\n"
	       "  -h --help       Show this help\n"
	       "     --no-cache   Decompress to a temporary file instead of the cache\n"
	       "     --sha256 HEX Fail unless the image (file, download) has this SHA-256\n");
}

static void mode_string(mode_t m, char out[11])
{
	static const char rwx[] = "rwxrwxrwx";

	out[0] = S_ISDIR(m)    ? 'd'
		 : S_ISLNK(m)  ? 'l'
		 : S_ISREG(m)  ? '-'
		 : S_ISCHR(m)  ? 'c'
		 : S_ISBLK(m)  ? 'b'
		 : S_ISFIFO(m) ? 'p'
		 : S_ISSOCK(m) ? 's'
			       : '?';
	for (int i = 0; i < 9; i++)
		out[i + 1] = (m & (0400u >> i)) ? rwx[i] : '-';
	if (m & S_ISUID)
		out[3] = (m & S_IXUSR) ? 's' : 'S';
	if (m & S_ISGID)
		out[6] = (m & S_IXGRP) ? 's' : 'S';
	if (m & S_ISVTX)
		out[9] = (m & S_IXOTH) ? 't' : 'T';
	out[10] = 0;
}

/* Names and link targets come from the image: out_line() escapes them. */
static void print_entry(PfFs *fs, const char *dir, const char *name, const PfStat *st, bool lng)
{
	_cleanup_(freep) char *path = NULL, *target = NULL;
	char mode[11], when[32];
	struct tm tm;
	time_t t = (time_t)st->mtime;

	if (!lng) {
		out_line("%s", name);
		return;
	}
	mode_string(st->mode, mode);
	if (!gmtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm))
		snprintf(when, sizeof(when), "%" PRId64, st->mtime);
	if (S_ISLNK(st->mode)) {
		if (dir) {
			if (asprintf(&path, "%s%s%s", dir, streq(dir, "/") ? "" : "/", name) < 0)
				path = NULL;
		}
		if (pf_fs_readlink(fs, path ? path : name, &target) < 0)
			target = NULL;
		pf_error_clear();
	}
	out_line("%s %5u %5u %10" PRIu64 " %s %s%s%s", mode, (unsigned)st->uid, (unsigned)st->gid,
		 st->size_bytes, when, name, target ? " -> " : "", target ?: "");
}

static int cmp_dirent(const void *a, const void *b)
{
	return strcmp(((const PfDirent *)a)->name, ((const PfDirent *)b)->name);
}

static int parse_common(int argc, char **argv, const char *cmd, void (*help)(void), bool *lng,
			PfSourceOptions *so)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "no-cache", no_argument, NULL, 'N' },
		{ "sha256", required_argument, NULL, IMAGE_OPTION_SHA256 },
		{},
	};
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, lng ? "hl" : "h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return 0;
		case 'l':
			*lng = true;
			break;
		case 'N':
			so->no_cache = true;
			break;
		case IMAGE_OPTION_SHA256:
			c = image_option_sha256(so, cmd, optarg);
			if (c != PF_EXIT_OK)
				return -c;
			break;
		default:
			return -usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (argc - optind != 2)
		return -usage_error(cmd, argc - optind < 2 ? "missing IMAGE or PART:/path"
							   : "too many arguments");
	return 1;
}

/* The image of argv and the file named in it (links followed). Prints; returns an exit code. */
static int open_path(char **argv, const PfSourceOptions *so, PfImage **img, PfFs **fs, char **path)
{
	const PfPartition *part;
	int r;

	if (image_load(argv[optind], so, img) < 0)
		return PF_EXIT_FAILURE;
	r = pf_image_lookup(*img, argv[optind + 1], true, &part, fs, path);
	if (r < 0)
		return log_error_detail(r), PF_EXIT_FAILURE;
	return PF_EXIT_OK;
}

int cmd_ls(int argc, char **argv)
{
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	_cleanup_(freep) char *path = NULL;
	PfSourceOptions so = { 0 };
	PfDirent *ents = NULL;
	size_t n = 0;
	bool lng = false;
	PfStat st;
	PfFs *fs;
	int r;

	r = parse_common(argc, argv, "ls", help_ls, &lng, &so);
	if (r <= 0)
		return -r;
	/* Like ls: a link named as the directory to list is followed. */
	r = open_path(argv, &so, &img, &fs, &path);
	if (r != PF_EXIT_OK)
		return r;

	r = pf_fs_stat(fs, path, &st);
	if (r < 0) {
		log_error_errno(r, "'%s': %s", pf_image_path(img), argv[optind + 1]);
		return PF_EXIT_FAILURE;
	}
	if (!S_ISDIR(st.mode)) {
		print_entry(fs, NULL, path, &st, lng);
		return PF_EXIT_OK;
	}
	r = pf_fs_list(fs, path, &ents, &n);
	if (r < 0) {
		log_error_errno(r, "'%s': %s", pf_image_path(img), argv[optind + 1]);
		return PF_EXIT_FAILURE;
	}
	qsort(ents, n, sizeof(*ents), cmp_dirent);
	for (size_t i = 0; i < n; i++)
		print_entry(fs, path, ents[i].name, &ents[i].st, lng);
	pf_dirents_free(ents, n);
	return PF_EXIT_OK;
}

int cmd_cat(int argc, char **argv)
{
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	_cleanup_(freep) char *path = NULL;
	_cleanup_(freep) uint8_t *data = NULL;
	PfSourceOptions so = { 0 };
	size_t size;
	PfFs *fs;
	int r;

	r = parse_common(argc, argv, "cat", help_cat, NULL, &so);
	if (r <= 0)
		return -r;
	r = open_path(argv, &so, &img, &fs, &path);
	if (r != PF_EXIT_OK)
		return r;

	r = pf_fs_read_file(fs, path, PF_FS_READ_MAX_BYTES, &data, &size);
	if (r < 0) {
		log_error_errno(r, "'%s': %s", pf_image_path(img), argv[optind + 1]);
		return PF_EXIT_FAILURE;
	}
	if (fwrite(data, 1, size, stdout) != size || fflush(stdout) != 0) {
		log_error("cannot write to standard output: %m");
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}
