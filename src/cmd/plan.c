/* SPDX-License-Identifier: GPL-2.0-or-later */
/* piflash plan: what the main job would change in an image, printed, nothing written. */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/node.h"
#include "util/error.h"
#include "util/strutil.h"

static void help(const struct option *table)
{
	printf("Usage: piflash plan [OPTIONS] --node NAME [NODE OPTIONS] IMAGE\n"
	       "\n"
	       "Print the file operations that would give the node its identity on IMAGE:\n"
	       "each file with its partition, mode, owner, content and why it is there.\n"
	       "Secrets (WiFi key, password hash) are masked. Nothing is written.\n"
	       "\n"
	       "  -h --help       Show this help\n"
	       "     --json       Print the plan as one JSON object\n"
	       "     --no-cache   Decompress to a temporary file instead of the cache\n"
	       "     --sha256 HEX Fail unless the image (file, download) has this SHA-256\n"
	       "\n");
	node_options_help_print(table);
}

/* The plan for people: every operation, why, and what a file written holds. */
static void print_plan(const PfPlan *p, const PfFlavorInfo *f, const PfNodeConfig *cfg)
{
	/* The plan holds strings from the image (its user, its files' names and contents):
	 * out_line() escapes them. */
	out_line("Node %s on a %s image (%s), user '%s'%s%s", cfg->hostname,
		 pf_flavor_name(f->flavor), f->arch ? f->arch : "unknown arch", p->user,
		 p->instance_id ? ", instance-id " : "", p->instance_id ? p->instance_id : "");
	for (size_t i = 0; i < p->n_notes; i++)
		out_line("Note: %s", p->notes[i]);
	out_line("%s", "");
	for (size_t i = 0; i < p->n_ops; i++) {
		const PfOp *op = &p->ops[i];
		char where[32] = "";

		if (op->part)
			snprintf(where, sizeof(where), "%u:", op->part);
		switch (op->kind) {
		case PF_OP_WRITE:
			out_line("write   %s%s  (%04o %u:%u, %zu bytes%s)", where, op->path,
				 (unsigned)op->mode, (unsigned)op->uid, (unsigned)op->gid, op->size,
				 op->secret ? ", secret" : "");
			break;
		case PF_OP_MKDIR:
			out_line("mkdir   %s%s  (%04o %u:%u)", where, op->path, (unsigned)op->mode,
				 (unsigned)op->uid, (unsigned)op->gid);
			break;
		case PF_OP_SYMLINK:
			out_line("symlink %s%s -> %s", where, op->path, op->target);
			break;
		case PF_OP_REMOVE:
			out_line("remove  %s%s", where, op->path);
			break;
		}
		out_line("        why: %s", op->why);
		if (op->kind == PF_OP_WRITE && !op->secret && op->size > 0) {
			const char *s = (const char *)op->data, *e = s + op->size;

			/* The content, indented, so the plan says exactly what lands. */
			while (s < e) {
				const char *nl = memchr(s, '\n', (size_t)(e - s));
				size_t n = nl ? (size_t)(nl - s) : (size_t)(e - s);

				out_line("        | %.*s", (int)n, s);
				s += n + (nl ? 1 : 0);
			}
		}
	}
}

int cmd_plan(int argc, char **argv)
{
	static const struct option own[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-cache", no_argument, NULL, 'N' },
		{ "sha256", required_argument, NULL, IMAGE_OPTION_SHA256 },
		{},
	};
	_cleanup_(freep) struct option *options = node_merge_options(own);
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	_cleanup_(node_options_done) NodeOptions no = { 0 };
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	PfSourceOptions so = { 0 };
	bool json = false;
	int c, r;

	if (!options)
		return PF_EXIT_FAILURE;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help(options);
			return PF_EXIT_OK;
		case 'j':
			json = true;
			break;
		case 'N':
			so.no_cache = true;
			break;
		case IMAGE_OPTION_SHA256:
			r = image_option_sha256(&so, "plan", optarg);
			if (r != PF_EXIT_OK)
				return r;
			break;
		default:
			if (c >= NODE_OPTION_BASE) {
				r = node_option_parse(&no, c, optarg);
				if (r != 0)
					return r;
				break;
			}
			return usage_error("plan", "unknown option '%s'", argv[optind - 1]);
		}
	}
	r = node_options_finish(&no);
	if (r != PF_EXIT_OK)
		return r;
	if (optind != argc - 1)
		return usage_error("plan", optind >= argc ? "missing IMAGE" : "too many arguments");
	if (!no.spec.node)
		return usage_error("plan", "--node NAME is needed to say which node this is");

	if (image_load(argv[optind], &so, &img) < 0)
		return PF_EXIT_FAILURE;
	r = node_plan(img, &no, true, &nb);
	if (r != PF_EXIT_OK)
		return r;

	if (json) {
		json_object *o = pf_plan_to_json(nb.plan);

		json_object_object_add(o, "hostname", json_object_new_string(nb.cfg.hostname));
		json_object_object_add(o, "flavor",
				       json_object_new_string(pf_flavor_name(nb.flavor->flavor)));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	} else
		print_plan(nb.plan, nb.flavor, &nb.cfg);
	return PF_EXIT_OK;
}
