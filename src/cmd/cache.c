/* SPDX-License-Identifier: GPL-2.0-or-later */
/* piflash cache [clean]: the decompressed images and downloads kept between runs. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cmd/cmd.h"
#include "disk/source.h"
#include "util/error.h"
#include "util/strutil.h"

static void help(void)
{
	printf("Usage: piflash cache\n"
	       "       piflash cache clean [--older-than AGE | --max-size SIZE]\n"
	       "\n"
	       "Compressed images are decompressed once, and images named by a URL downloaded\n"
	       "once, into a cache directory ($XDG_CACHE_HOME/piflash, or ~/.cache/piflash).\n"
	       "Without an argument, list the entries (least recently used first) with their\n"
	       "sizes and the cap. 'clean' removes them all, or only those:\n"
	       "\n"
	       "     --older-than AGE  last used more than AGE ago (30m, 12h, 7d, 2w)\n"
	       "     --max-size SIZE   least recently used first, until the rest fits in SIZE\n"
	       "  -h --help            Show this help\n"
	       "\n"
	       "The cap: when a run adds an entry, the least recently used entries (never one\n"
	       "the run uses, nor one another run holds) are removed until the blocks the\n"
	       "entries use on disk fit in $PIFLASH_CACHE_MAX (e.g. 50G, 500M; 0 for no cap),\n"
	       "by default 20 GiB.\n");
}

static const char *age_string(char *buf, size_t len, int64_t used)
{
	int64_t s = (int64_t)time(NULL) - used;

	if (s < 0)
		s = 0;
	if (s < 3600)
		snprintf(buf, len, "%" PRId64 " min ago", s / 60);
	else if (s < 2 * 86400)
		snprintf(buf, len, "%" PRId64 " h ago", s / 3600);
	else
		snprintf(buf, len, "%" PRId64 " days ago", s / 86400);
	return buf;
}

static int list(const char *dir)
{
	PfCacheEntry *e = NULL;
	uint64_t total = 0, max;
	size_t n = 0;
	char a[32], b[32], c[32];
	int r;

	r = pf_cache_max_bytes(NULL, &max);
	if (r < 0) {
		log_error_errno(r, "cache");
		return PF_EXIT_FAILURE;
	}
	r = pf_cache_list(dir, &e, &n);
	if (r < 0) {
		log_error_errno(r, "cache");
		return PF_EXIT_FAILURE;
	}
	/* The origin is read back from the cache dir: shown escaped (out_line). */
	out_line("Cache: %s", dir);
	for (size_t i = 0; i < n; i++) {
		out_line("%10s %10s on disk  %s", pf_format_bytes(a, sizeof(a), e[i].size_bytes),
			 pf_format_bytes(b, sizeof(b), e[i].disk_bytes), e[i].path);
		out_line("    %s %s, used %s", e[i].download ? "downloaded from" : "from",
			 e[i].origin ?: "(unknown)", age_string(c, sizeof(c), e[i].used));
		total += e[i].disk_bytes;
	}
	printf("%zu entr%s, %s on disk, cap %s%s\n", n, n == 1 ? "y" : "ies",
	       pf_format_bytes(a, sizeof(a), total),
	       max == UINT64_MAX ? "none" : pf_format_bytes(b, sizeof(b), max),
	       getenv("PIFLASH_CACHE_MAX") && *getenv("PIFLASH_CACHE_MAX")
		       ? " ($PIFLASH_CACHE_MAX)"
		       : " (default; set $PIFLASH_CACHE_MAX to change)");
	pf_cache_entries_free(e, n);
	return PF_EXIT_OK;
}

int cmd_cache(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "older-than", required_argument, NULL, 'o' },
		{ "max-size", required_argument, NULL, 'm' },
		{},
	};
	_cleanup_(freep) char *dir = NULL;
	const char *older = NULL, *max_size = NULL;
	int64_t age = 0;
	uint64_t max = 0, freed;
	char a[32];
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return PF_EXIT_OK;
		case 'o':
			older = optarg;
			if (pf_cache_parse_age(optarg, &age) < 0)
				return usage_error("cache",
						   "--older-than '%s': expected a number and s, m, "
						   "h, d or w (7d, 12h)",
						   optarg);
			break;
		case 'm':
			max_size = optarg;
			if (pf_cache_parse_max(optarg, &max) < 0 || max == UINT64_MAX)
				return usage_error(
					"cache",
					"--max-size '%s': expected a size above 0 (20G, 500M)",
					optarg);
			break;
		case ':':
			return usage_error("cache", "option '%s' needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("cache", "unknown option '%s'", argv[optind - 1]);
		}
	}

	r = pf_cache_dir(NULL, &dir);
	if (r < 0) {
		log_error_errno(r, "cache");
		return PF_EXIT_FAILURE;
	}

	if (optind == argc) {
		if (older || max_size)
			return usage_error("cache", "--older-than and --max-size go with 'clean'");
		return list(dir);
	}

	if (optind == argc - 1 && streq(argv[optind], "clean")) {
		if (older && max_size)
			return usage_error("cache", "--older-than and --max-size: choose one");
		if (older)
			r = pf_cache_clean_older(dir, age, &freed);
		else if (max_size)
			r = pf_cache_evict(dir, max, NULL, 0, &freed);
		else
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
