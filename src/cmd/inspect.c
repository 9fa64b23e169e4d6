/* SPDX-License-Identifier: GPL-2.0-or-later */
/* piflash inspect: what an image is made of. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build/describe.h"
#include "cmd/cmd.h"
#include "cmd/image.h"
#include "disk/ptable.h"
#include "disk/source.h"
#include "node/flavor.h"
#include "node/mechanism.h"
#include "node/plan.h"
#include "util/error.h"
#include "util/strutil.h"

static void help(void)
{
	printf("Usage: piflash inspect [OPTIONS] IMAGE\n"
	       "\n"
	       "Show an image's source kind, size, cache file, partition table and, for each\n"
	       "partition, its start, size, type, filesystem, label and UUID; then the\n"
	       "image's flavor as read from its own files: OS, architecture, default user,\n"
	       "cloud-init version and seed, boot partition, network stack, and the evidence.\n"
	       "An image whose flavor is unknown still inspects; the flavor says why.\n"
	       "\n"
	       "  -h --help        Show this help\n"
	       "     --json       Print one JSON object (fields documented in README.md)\n"
	       "     --no-cache   Decompress to a temporary file instead of the cache\n"
	       "     --sha256 HEX Fail unless the image (file, download) has this SHA-256\n"
	       "     --flavor NAME  Take the flavor as given (hypriot, ubuntu, rpios-trixie,\n"
	       "                  rpios-bookworm, raspbian, debian) and show what follows\n"
	       "     --network NAME  Take the network service as given (cloud-init, netplan,\n"
	       "                  ifupdown, networkmanager, networkd, dhcpcd)\n");
}

static void print_json(PfImage *img, const PfFlavorInfo *f, const char *flavor_error)
{
	json_object *root = pf_image_describe_json(img, f, flavor_error);

	puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(root);
}

/* Every string shown here comes from the image: out_line() escapes what a terminal would
 * take for a command. */
static void print_flavor(const PfFlavorInfo *f, const char *error)
{
	char users[80] = "";

	out_line("%s", "");
	out_line("Flavor:  %s%s%s", error ? "unknown (" : "",
		 error ? error : pf_flavor_name(f->flavor), error ? ")" : "");
	if (!f)
		return;
	out_line("Arch:    %s", f->arch ? f->arch : "unknown");
	if (f->os_pretty)
		out_line("OS:      %s", f->os_pretty);
	/* Both first-boot set-ups rename the uid-1000 user (custom.toml through userconf-pi). */
	if (!f->default_user && f->first_user &&
	    (f->user == PF_USER_USERCONF || f->user == PF_USER_CUSTOM_TOML))
		out_line("User:    none (uid 1000 '%s' is renamed at first boot)", f->first_user);
	else {
		if (!f->default_user && f->n_users > 1)
			snprintf(users, sizeof(users), " (%zu regular users: use --user)",
				 f->n_users);
		out_line("User:    %s%s", f->default_user ? f->default_user : "none", users);
	}
	if (f->boot)
		out_line("Boot:    partition %u%s%s", f->boot->number, f->boot_mount ? " at " : "",
			 f->boot_mount ? f->boot_mount : "");
	if (f->has_cloud_init)
		out_line("cloud-init: %s, seed %s%s%s%s",
			 f->cloud_init_version ? f->cloud_init_version : "version unknown",
			 f->seed_dir ? f->seed_dir : "not found", f->seed_how ? " (" : "",
			 f->seed_how ? f->seed_how : "", f->seed_how ? ")" : "");
	if (!error) {
		out_line("Network: %s (%s)", pf_plan_net_handler(f), f->net_why);
		out_line("SSH:     %s (%s)", pf_ssh_way_name(f->ssh), f->ssh_why);
		out_line("Set-up:  %s (%s)", pf_user_way_name(f->user), f->user_why);
	}
	out_line("Evidence:");
	for (size_t i = 0; i < f->n_evidence; i++)
		out_line("  %s", f->evidence[i]);
}

static void print_human(const char *path, const PfSource *src, const PfPtable *t)
{
	char size[32];

	out_line("Image:   %s", path);
	out_line("Source:  %s%s%s%s, %s (%" PRIu64 " bytes)",
		 pf_source_kind_name(pf_source_kind(src)), pf_source_entry(src) ? " entry '" : "",
		 pf_source_entry(src) ?: "", pf_source_entry(src) ? "'" : "",
		 pf_format_bytes(size, sizeof(size), pf_source_size(src)), pf_source_size(src));
	if (pf_source_cache_path(src))
		out_line("Cache:   %s", pf_source_cache_path(src));
	out_line("Table:   %s, disk id %s, %" PRIu64 "-byte sectors", t->label_type, t->id ?: "-",
		 t->sector_bytes);
	out_line("%s", "");
	out_line("%3s %12s %10s  %-6s %-6s %-12s %s", "#", "START", "SIZE", "TYPE", "FS", "LABEL",
		 "UUID");
	for (size_t i = 0; i < t->n_parts; i++) {
		const PfPartition *p = &t->parts[i];
		const char *type = p->type ?: "-";

		/* GUIDs are long: the type's name says more. */
		if (strlen(type) > 6 && p->type_name)
			type = p->type_name;
		out_line("%3u %12" PRIu64 " %10s  %-6s %-6s %-12s %s", p->number, p->start_bytes,
			 pf_format_bytes(size, sizeof(size), p->size_bytes), type, p->fstype ?: "-",
			 p->label ?: "-", p->uuid ?: "-");
	}
}

static const struct option options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "json", no_argument, NULL, 'j' },
	{ "no-cache", no_argument, NULL, 'N' },
	{ "sha256", required_argument, NULL, IMAGE_OPTION_SHA256 },
	{ "flavor", required_argument, NULL, 'F' },
	{ "network", required_argument, NULL, 'W' },
	{},
};

/*
 * The image's flavor; an unknown flavor is part of the answer, not a failure of inspect:
 * *ret_error says why. Prints a failure; returns an exit code.
 */
static int read_flavor(PfImage *img, const PfDetectOptions *o, PfFlavorInfo **ret, char **ret_error)
{
	int r;

	r = pf_flavor_detect_with(pf_image_tree(img), pf_image_table(img), o, ret);
	if (r >= 0 && (*ret)->flavor == PF_FLAVOR_UNKNOWN && o->flavor == PF_FLAVOR_UNKNOWN) {
		_cleanup_(pf_flavor_info_freep) PfFlavorInfo *strict = NULL;

		r = pf_flavor_detect(pf_image_tree(img), pf_image_table(img), &strict);
		if (r < 0 && r != -ENOMEM) {
			*ret_error = strdup(pf_error_message(r));
			pf_error_clear();
			r = *ret_error ? 0 : -ENOMEM;
		}
	}
	if (r < 0) {
		log_error_errno(r, "'%s': cannot read the image's flavor", pf_image_path(img));
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

int cmd_inspect(int argc, char **argv)
{
	_cleanup_(pf_flavor_info_freep) PfFlavorInfo *fi = NULL;
	_cleanup_(freep) char *flavor_error = NULL;
	PfDetectOptions o = { .allow_unknown = true };
	PfSourceOptions so = { 0 };
	bool json = false;
	const char *path;
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	int c, r;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
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
		case IMAGE_OPTION_SHA256:
			r = image_option_sha256(&so, "inspect", optarg);
			if (r != PF_EXIT_OK)
				return r;
			break;
		case 'F':
			r = pf_flavor_from_name(optarg, &o.flavor);
			if (r < 0)
				return usage_error("inspect", "--flavor: %s", pf_error_message(r));
			break;
		case 'W':
			r = pf_net_stack_from_name(optarg, &o.net);
			if (r < 0)
				return usage_error("inspect", "--network: %s", pf_error_message(r));
			break;
		case ':':
			return usage_error("inspect", "option '%s' needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("inspect", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_error("inspect",
				   optind >= argc ? "missing IMAGE" : "too many arguments");
	path = argv[optind];

	r = image_load(path, &so, &img);
	if (r < 0)
		return PF_EXIT_FAILURE;

	r = read_flavor(img, &o, &fi, &flavor_error);
	if (r != PF_EXIT_OK)
		return r;

	if (json)
		print_json(img, fi, flavor_error);
	else {
		print_human(path, pf_image_source(img), pf_image_table(img));
		print_flavor(fi, flavor_error);
	}
	return PF_EXIT_OK;
}
