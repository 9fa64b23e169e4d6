/* SPDX-License-Identifier: GPL-2.0-or-later */
/* piflash inspect: what an image is made of. */
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "disk/ptable.h"
#include "disk/source.h"
#include "util/error.h"
#include "util/strutil.h"

static void help(void)
{
	printf("Usage: piflash inspect [OPTIONS] IMAGE\n"
	       "\n"
	       "Show an image's source kind, size, cache file, partition table and, for each\n"
	       "partition, its start, size, type, filesystem, label and UUID.\n"
	       "\n"
	       "  -h --help      Show this help\n"
	       "     --json     Print one JSON object (fields documented in README.md)\n"
	       "     --no-cache Decompress to a temporary file instead of the cache\n");
}

static json_object *json_str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static void print_json(const char *path, const PfSource *src, const PfPtable *t)
{
	json_object *root = json_object_new_object(), *jsrc = json_object_new_object(),
		    *jt = json_object_new_object(), *parts = json_object_new_array();

	json_object_object_add(root, "image", json_str(path));
	json_object_object_add(jsrc, "kind", json_str(pf_source_kind_name(pf_source_kind(src))));
	json_object_object_add(jsrc, "entry", json_str(pf_source_entry(src)));
	json_object_object_add(jsrc, "size_bytes", json_object_new_uint64(pf_source_size(src)));
	json_object_object_add(jsrc, "cache", json_str(pf_source_cache_path(src)));
	json_object_object_add(root, "source", jsrc);

	json_object_object_add(jt, "type", json_str(t->label_type));
	json_object_object_add(jt, "id", json_str(t->id));
	json_object_object_add(jt, "sector_size", json_object_new_uint64(t->sector_bytes));
	json_object_object_add(root, "table", jt);

	for (size_t i = 0; i < t->n_parts; i++) {
		const PfPartition *p = &t->parts[i];
		json_object *jp = json_object_new_object();
		char node[16];

		snprintf(node, sizeof(node), "p%u", p->number);
		json_object_object_add(jp, "number", json_object_new_int((int)p->number));
		json_object_object_add(jp, "node", json_str(node));
		json_object_object_add(jp, "start_bytes", json_object_new_uint64(p->start_bytes));
		json_object_object_add(jp, "size_bytes", json_object_new_uint64(p->size_bytes));
		json_object_object_add(jp, "type", json_str(p->type));
		json_object_object_add(jp, "type_name", json_str(p->type_name));
		json_object_object_add(jp, "fstype", json_str(p->fstype));
		json_object_object_add(jp, "label", json_str(p->label));
		json_object_object_add(jp, "uuid", json_str(p->uuid));
		json_object_object_add(jp, "partuuid", json_str(p->partuuid));
		json_object_object_add(jp, "bootable", json_object_new_boolean(p->bootable));
		json_object_array_add(parts, jp);
	}
	json_object_object_add(root, "partitions", parts);

	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

static void print_human(const char *path, const PfSource *src, const PfPtable *t)
{
	char size[32];

	printf("Image:   %s\n", path);
	printf("Source:  %s%s%s%s, %s (%" PRIu64 " bytes)\n",
	       pf_source_kind_name(pf_source_kind(src)), pf_source_entry(src) ? " entry '" : "",
	       pf_source_entry(src) ?: "", pf_source_entry(src) ? "'" : "",
	       pf_format_bytes(size, sizeof(size), pf_source_size(src)), pf_source_size(src));
	if (pf_source_cache_path(src))
		printf("Cache:   %s\n", pf_source_cache_path(src));
	printf("Table:   %s, disk id %s, %" PRIu64 "-byte sectors\n", t->label_type, t->id ?: "-",
	       t->sector_bytes);
	printf("\n%3s %12s %10s  %-6s %-6s %-12s %s\n", "#", "START", "SIZE", "TYPE", "FS", "LABEL",
	       "UUID");
	for (size_t i = 0; i < t->n_parts; i++) {
		const PfPartition *p = &t->parts[i];
		const char *type = p->type ?: "-";

		/* GUIDs are long: the type's name says more. */
		if (strlen(type) > 6 && p->type_name)
			type = p->type_name;
		printf("%3u %12" PRIu64 " %10s  %-6s %-6s %-12s %s\n", p->number, p->start_bytes,
		       pf_format_bytes(size, sizeof(size), p->size_bytes), type, p->fstype ?: "-",
		       p->label ?: "-", p->uuid ?: "-");
	}
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-cache", no_argument, NULL, 'N' },
		{},
	};
	_cleanup_(pf_source_freep) PfSource *src = NULL;
	_cleanup_(pf_ptable_freep) PfPtable *t = NULL;
	PfSourceOptions so = { 0 };
	bool json = false;
	const char *path;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return PF_EXIT_OK;
		case 'j':
			json = true;
			break;
		case 'N':
			so.no_cache = true;
			break;
		default:
			return usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_error("inspect",
				   optind >= argc ? "missing IMAGE" : "too many arguments");
	path = argv[optind];

	r = pf_source_open(path, &so, &src);
	if (r < 0) {
		log_error_errno(r, "'%s'", path);
		return PF_EXIT_FAILURE;
	}
	r = pf_ptable_read(pf_source_fd(src), pf_source_size(src), &t);
	if (r < 0) {
		log_error_errno(r, "'%s'", path);
		return PF_EXIT_FAILURE;
	}

	if (json)
		print_json(path, src, t);
	else
		print_human(path, src, t);
	return PF_EXIT_OK;
}
