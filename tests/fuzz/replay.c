/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * main() for the fuzz targets in a build without libFuzzer: runs every file given (a
 * directory stands for its regular files, in name order) through LLVMFuzzerTestOneInput()
 * once. A target that finds its property broken calls abort(), and the sanitizers of a
 * sanitizer build report as they would under libFuzzer, so the corpora are regression tests.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

/* Reached only through a custom mutator, which nothing calls here. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size)
{
	return size;
}

static int replay_file(const char *path)
{
	uint8_t *data;
	long n;
	FILE *f = fopen(path, "re");

	if (!f) {
		fprintf(stderr, "replay: '%s': %m\n", path);
		return -errno;
	}
	/* Inputs are small (the fuzzers' -max_len): read it whole. */
	if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) < 0) {
		fclose(f);
		return -EIO;
	}
	data = malloc(n ? (size_t)n : 1);
	if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "replay: '%s': short read\n", path);
		free(data);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	fprintf(stderr, "replay: %s (%ld bytes)\n", path, n);
	LLVMFuzzerTestOneInput(data, (size_t)n);
	free(data);
	return 0;
}

static int replay_dir(const char *dir)
{
	struct dirent **names;
	int n, r = 0;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "replay: '%s': %m\n", dir);
		return -errno;
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    replay_file(path) < 0)
			r = -EIO;
		free(names[i]);
	}
	free(names);
	return r;
}

int main(int argc, char **argv)
{
	int r = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: '%s': %m\n", argv[i]);
			return EXIT_FAILURE;
		}
		if ((S_ISDIR(st.st_mode) ? replay_dir(argv[i]) : replay_file(argv[i])) < 0)
			r = -EIO;
	}
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
