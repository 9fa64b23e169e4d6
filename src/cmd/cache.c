/* SPDX-License-Identifier: GPL-2.0-or-later */
/* piflash cache [clean]: the decompressed images kept between runs. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "cmd/cmd.h"
#include "disk/source.h"
#include "util/error.h"
#include "util/strutil.h"

static void help(void)
{
	printf("Usage: piflash cache [clean]\n"
	       "\n"
	       "Compressed images are decompressed once into a cache directory\n"
	       "($XDG_CACHE_HOME/piflash, or ~/.cache/piflash). Without an argument, list the\n"
	       "entries with their sizes; 'clean' removes them all.\n"
	       "\n"
	       "  -h --help   Show this help\n");
}

int cmd_cache(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_(freep) char *dir = NULL;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		if (c == 'h') {
			help();
			return PF_EXIT_OK;
		}
		return usage_error("cache", "unknown option '%s'", argv[optind - 1]);
	}

	r = pf_cache_dir(NULL, &dir);
	if (r < 0) {
		log_error_errno(r, "cache");
		return PF_EXIT_FAILURE;
	}

	if (optind == argc) {
		PfCacheEntry *e = NULL;
		uint64_t total = 0;
		size_t n = 0;
		char a[32], b[32];

		r = pf_cache_list(dir, &e, &n);
		if (r < 0) {
			log_error_errno(r, "cache");
			return PF_EXIT_FAILURE;
		}
		/* The origin is read back from the cache dir: shown escaped (out_line). */
		out_line("Cache: %s", dir);
		for (size_t i = 0; i < n; i++) {
			out_line("%10s %10s on disk  %s",
				 pf_format_bytes(a, sizeof(a), e[i].size_bytes),
				 pf_format_bytes(b, sizeof(b), e[i].disk_bytes), e[i].path);
			out_line("    from %s", e[i].origin ?: "(unknown)");
			total += e[i].disk_bytes;
		}
		printf("%zu entr%s, %s on disk\n", n, n == 1 ? "y" : "ies",
		       pf_format_bytes(a, sizeof(a), total));
		pf_cache_entries_free(e, n);
		return PF_EXIT_OK;
	}

	if (optind == argc - 1 && streq(argv[optind], "clean")) {
		uint64_t freed;
		char a[32];

		r = pf_cache_clean(dir, &freed);
		if (r < 0) {
			log_error_errno(r, "cache clean");
			return PF_EXIT_FAILURE;
		}
		printf("Removed %d entr%s from %s, %s freed\n", r, r == 1 ? "y" : "ies", dir,
		       pf_format_bytes(a, sizeof(a), freed));
		return PF_EXIT_OK;
	}
	return usage_error("cache", "unknown argument '%s'", argv[optind]);
}
