/* SPDX-License-Identifier: GPL-2.0-or-later */
/* piflash inspect: what an image is made of. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static json_object *json_str(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *json_strv(char *const *v, size_t n)
{
	json_object *a = json_object_new_array();

	for (size_t i = 0; v && i < n && v[i]; i++)
		json_object_array_add(a, json_object_new_string(v[i]));
	return a;
}

/* The decisions the plan follows (node/mechanism.c), each with its reason. */
static json_object *json_mechanisms(const PfFlavorInfo *f)
{
	json_object *m = json_object_new_object();

	json_object_object_add(m, "network", json_str(pf_plan_net_handler(f)));
	json_object_object_add(m, "network_why", json_str(f->net_why));
	json_object_object_add(m, "user", json_str(pf_user_way_name(f->user)));
	json_object_object_add(m, "user_why", json_str(f->user_why));
	json_object_object_add(m, "ssh", json_str(pf_ssh_way_name(f->ssh)));
	json_object_object_add(m, "ssh_why", json_str(f->ssh_why));
	json_object_object_add(m, "ssh_switch", json_str(f->ssh_switch_path));
	json_object_object_add(m, "seed",
			       json_str(f->user == PF_USER_CLOUD_INIT ? f->seed_dir : NULL));
	return m;
}

static json_object *json_flavor(const PfFlavorInfo *f, const char *error)
{
	json_object *o = json_object_new_object(), *users = json_object_new_array(), *os;
	size_t n_cloud = 0;

	json_object_object_add(o, "name", f && !error ? json_str(pf_flavor_name(f->flavor)) : NULL);
	json_object_object_add(o, "error", json_str(error));
	json_object_object_add(o, "evidence",
			       f ? json_strv(f->evidence, f->n_evidence) : json_object_new_array());
	if (!f)
		return o;
	json_object_object_add(o, "arch", json_str(f->arch));
	json_object_object_add(o, "default_user", json_str(f->default_user));
	json_object_object_add(o, "cloud_init", json_str(f->cloud_init_version));
	json_object_object_add(o, "boot_partition",
			       f->boot ? json_object_new_int((int)f->boot->number) : NULL);
	json_object_object_add(o, "boot_mount", json_str(f->boot_mount));
	json_object_object_add(o, "root_partition",
			       f->root ? json_object_new_int((int)f->root->number) : NULL);
	json_object_object_add(o, "seed", json_str(f->seed_dir));
	json_object_object_add(o, "seed_how", json_str(f->seed_how));
	json_object_object_add(o, "network", json_str(error ? NULL : pf_plan_net_handler(f)));
	json_object_object_add(o, "mechanisms", error ? NULL : json_mechanisms(f));
	{
		json_object *units = json_object_new_array();

		for (size_t i = 0; i < f->n_units; i++) {
			const PfUnit *u = &f->units[i];
			json_object *ju;

			if (u->state == PF_UNIT_ABSENT)
				continue;
			ju = json_object_new_object();
			json_object_object_add(ju, "name", json_str(u->name));
			json_object_object_add(ju, "state", json_str(pf_unit_state_name(u->state)));
			json_object_object_add(ju, "file", json_str(u->file));
			json_object_object_add(ju, "link", json_str(u->link));
			json_object_array_add(units, ju);
		}
		json_object_object_add(o, "units", units);
	}

	os = json_object_new_object();
	json_object_object_add(os, "id", json_str(f->os_id));
	json_object_object_add(os, "codename", json_str(f->os_codename));
	json_object_object_add(os, "pretty_name", json_str(f->os_pretty));
	json_object_object_add(os, "rpi_issue", json_str(f->rpi_issue));
	json_object_object_add(o, "os", os);

	for (size_t i = 0; i < f->n_users; i++)
		json_object_array_add(users, json_object_new_string(f->users[i].name));
	json_object_object_add(o, "users", users);
	json_object_object_add(o, "first_user", json_str(f->first_user));

	if (f->has_cloud_init) {
		json_object *ci = json_object_new_object();

		while (f->cloud_users && f->cloud_users[n_cloud])
			n_cloud++;
		json_object_object_add(ci, "version", json_str(f->cloud_init_version));
		json_object_object_add(ci, "enabled",
				       json_object_new_boolean(f->cloud_init_enabled));
		json_object_object_add(ci, "renderer", json_str(f->cloud_init_renderer));
		json_object_object_add(ci, "disabled",
				       json_object_new_boolean(f->cloud_init_disabled));
		json_object_object_add(ci, "nocloud_fs_label", json_str(f->nocloud_fs_label));
		json_object_object_add(ci, "nocloud_seedfrom", json_str(f->nocloud_seedfrom));
		json_object_object_add(ci, "users_default",
				       json_object_new_boolean(f->cloud_users_default));
		json_object_object_add(ci, "users", json_strv(f->cloud_users, n_cloud));
		json_object_object_add(ci, "default_user", json_str(f->cloud_default_user));
		json_object_object_add(
			ci, "ssh_deletekeys",
			f->ssh_deletekeys < 0 ? NULL : json_object_new_boolean(f->ssh_deletekeys));
		json_object_object_add(ci, "network_config_version",
				       json_object_new_int(f->network_config_version));
		json_object_object_add(ci, "instance_id", json_str(f->seed_instance_id));
		json_object_object_add(o, "cloud_init_config", ci);
	} else
		json_object_object_add(o, "cloud_init_config", NULL);

	json_object_object_add(o, "has_networkmanager",
			       json_object_new_boolean(f->has_networkmanager));
	json_object_object_add(o, "has_dhcpcd", json_object_new_boolean(f->has_dhcpcd));
	json_object_object_add(o, "dhcpcd_masked", json_object_new_boolean(f->dhcpcd_masked));
	json_object_object_add(o, "has_networkd", json_object_new_boolean(f->has_networkd));
	json_object_object_add(o, "has_ifupdown", json_object_new_boolean(f->has_ifupdown));
	json_object_object_add(o, "has_netplan", json_object_new_boolean(f->has_netplan));
	json_object_object_add(o, "has_userconf", json_object_new_boolean(f->has_userconf));
	json_object_object_add(o, "has_custom_toml", json_object_new_boolean(f->has_custom_toml));
	json_object_object_add(o, "machine_id_baked", json_object_new_boolean(f->machine_id_baked));
	json_object_object_add(o, "dbus_machine_id_copy",
			       json_object_new_boolean(f->dbus_machine_id_copy));
	json_object_object_add(o, "host_keys", json_strv(f->host_keys, f->n_host_keys));
	json_object_object_add(o, "regenerates_host_keys",
			       json_object_new_boolean(f->regenerates_host_keys));
	return o;
}

static void print_json(const char *path, const PfSource *src, const PfPtable *t,
		       const PfFlavorInfo *f, const char *flavor_error)
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
	json_object_object_add(root, "flavor", json_flavor(f, flavor_error));

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
	if (!f->default_user && f->first_user && f->flavor == PF_FLAVOR_RPIOS_BOOKWORM)
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

int cmd_inspect(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-cache", no_argument, NULL, 'N' },
		{ "sha256", required_argument, NULL, IMAGE_OPTION_SHA256 },
		{ "flavor", required_argument, NULL, 'F' },
		{ "network", required_argument, NULL, 'W' },
		{},
	};
	_cleanup_(pf_flavor_info_freep) PfFlavorInfo *fi = NULL;
	_cleanup_(freep) char *flavor_error = NULL;
	PfDetectOptions o = { .allow_unknown = true };
	PfSourceOptions so = { 0 };
	bool json = false;
	const char *path;
	Image img;
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

	r = image_open(&img, path, &so);
	if (r < 0) {
		image_close(&img);
		return PF_EXIT_FAILURE;
	}

	/* An unknown flavor is part of the answer, not a failure of inspect. */
	r = pf_flavor_detect_with(img.tree, img.table, &o, &fi);
	if (r >= 0 && fi->flavor == PF_FLAVOR_UNKNOWN && o.flavor == PF_FLAVOR_UNKNOWN) {
		_cleanup_(pf_flavor_info_freep) PfFlavorInfo *strict = NULL;

		r = pf_flavor_detect(img.tree, img.table, &strict);
		if (r < 0 && r != -ENOMEM) {
			flavor_error = strdup(pf_error_message(r));
			pf_error_clear();
			r = flavor_error ? 0 : -ENOMEM;
		}
	}
	if (r < 0) {
		log_error_errno(r, "'%s': cannot read the image's flavor", path);
		image_close(&img);
		return PF_EXIT_FAILURE;
	}

	if (json)
		print_json(path, img.src, img.table, fi, flavor_error);
	else {
		print_human(path, img.src, img.table);
		print_flavor(fi, flavor_error);
	}
	image_close(&img);
	return PF_EXIT_OK;
}
