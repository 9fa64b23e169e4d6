/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash devices [--json]: the disks a card could be — what a flashing tool shows in its
 * drive list — with whether piflash would refuse to write each one and why. The reasons
 * are pf_target_open()'s own checks (flash/target.c), run through pf_target_probe().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#include "build/describe.h"
#include "cmd/cmd.h"
#include "flash/target.h"
#include "util/error.h"
#include "util/strutil.h"

static void help(void)
{
	printf("Usage: piflash devices [OPTIONS]\n"
	       "\n"
	       "List the disks a card could be: whole disks from sysfs (loop devices too),\n"
	       "with size, transport (usb, sd, loop), model, serial and mount points, and\n"
	       "whether piflash would refuse to write the disk and why (mounted, the running\n"
	       "system's disk, not removable, in use). Run as root to see every check;\n"
	       "otherwise a disk that cannot be opened is shown as refused for that.\n"
	       "\n"
	       "  -h --help   Show this help\n"
	       "     --json   Print one JSON object: {\"devices\": [...]}, fields as in man "
	       "piflash\n");
}

/* Strings from sysfs (model, serial, a loop device's file) go through out_line(). */
static void probe_print(const PfTargetProbe *p)
{
	const PfTargetInfo *i = &p->info;
	char size[32];

	out_line("%-14s %10s  %-9s %-9s %s%s%s", i->path,
		 pf_format_bytes(size, sizeof(size), i->size_bytes), i->transport ?: "-",
		 i->removable ? "removable" : "fixed", i->model ?: "-",
		 i->serial ? ", serial " : "", i->serial ?: "");
	for (size_t k = 0; k < p->n_mounts; k++)
		out_line("%14s mounted at %s", "", p->mounts[k]);
	if (p->refusal)
		out_line("%14s refused: %s", "", p->refusal);
}

int cmd_devices(int argc, char **argv)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{},
	};
	json_object *root = NULL, *list = NULL;
	char **paths = NULL;
	bool json = false;
	int c, n, ret = PF_EXIT_OK;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return PF_EXIT_OK;
		case 'j':
			json = true;
			break;
		default:
			return usage_error("devices", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("devices", "unknown argument '%s'", argv[optind]);

	n = pf_target_list_disks(&paths);
	if (n < 0) {
		log_error_errno(n, "cannot list the disks");
		return PF_EXIT_FAILURE;
	}
	if (json) {
		root = json_object_new_object();
		list = json_object_new_array();
		json_object_object_add(root, "devices", list);
	} else
		out_line("%-14s %10s  %-9s %-9s %s", "DEVICE", "SIZE", "TRANSPORT", "KIND",
			 "MODEL");
	for (int k = 0; k < n; k++) {
		PfTargetProbe p = { 0 };
		int r = pf_target_probe(paths[k], &p);

		if (r == -ENOENT || r == -ENXIO || r == -ENODEV || (r >= 0 && !p.info.size_bytes)) {
			/* Gone or emptied since it was listed: a loop device detached, a card
			 * taken out. */
			pf_error_clear();
		} else if (r < 0) {
			log_error_errno(r, "'%s', ignoring", paths[k]);
			ret = PF_EXIT_FAILURE;
		} else if (json)
			json_object_array_add(list, pf_device_describe_json(&p));
		else
			probe_print(&p);
		pf_target_probe_done(&p);
		free(paths[k]);
	}
	free(paths);
	if (json) {
		puts(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(root);
	}
	return ret;
}
