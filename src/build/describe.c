/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <json-c/json.h>
#include <stdio.h>

#include "build/describe.h"
#include "node/mechanism.h"
#include "node/plan.h"
#include "node/units.h"
#include "util/json.h"

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

	json_object_object_add(m, "network", pf_json_str(pf_plan_net_handler(f)));
	json_object_object_add(m, "network_why", pf_json_str(f->net_why));
	json_object_object_add(m, "user", pf_json_str(pf_user_way_name(f->user)));
	json_object_object_add(m, "user_why", pf_json_str(f->user_why));
	json_object_object_add(m, "ssh", pf_json_str(pf_ssh_way_name(f->ssh)));
	json_object_object_add(m, "ssh_why", pf_json_str(f->ssh_why));
	json_object_object_add(m, "ssh_switch", pf_json_str(f->ssh_switch_path));
	json_object_object_add(m, "seed",
			       pf_json_str(f->user == PF_USER_CLOUD_INIT ? f->seed_dir : NULL));
	return m;
}

/* The units that are there, with their state. */
static json_object *json_units(const PfFlavorInfo *f)
{
	json_object *units = json_object_new_array();

	for (size_t i = 0; i < f->n_units; i++) {
		const PfUnit *u = &f->units[i];
		json_object *ju;

		if (u->state == PF_UNIT_ABSENT)
			continue;
		ju = json_object_new_object();
		json_object_object_add(ju, "name", pf_json_str(u->name));
		json_object_object_add(ju, "state", pf_json_str(pf_unit_state_name(u->state)));
		json_object_object_add(ju, "file", pf_json_str(u->file));
		json_object_object_add(ju, "link", pf_json_str(u->link));
		json_object_array_add(units, ju);
	}
	return units;
}

static json_object *json_os(const PfFlavorInfo *f)
{
	json_object *os = json_object_new_object();

	json_object_object_add(os, "id", pf_json_str(f->os_id));
	json_object_object_add(os, "codename", pf_json_str(f->os_codename));
	json_object_object_add(os, "pretty_name", pf_json_str(f->os_pretty));
	json_object_object_add(os, "rpi_issue", pf_json_str(f->rpi_issue));
	return os;
}

/* cloud-init's configuration in the image, as read from cloud.cfg and its seed. */
static json_object *json_cloud_init(const PfFlavorInfo *f)
{
	json_object *ci = json_object_new_object();
	size_t n_cloud = 0;

	while (f->cloud_users && f->cloud_users[n_cloud])
		n_cloud++;
	json_object_object_add(ci, "version", pf_json_str(f->cloud_init_version));
	json_object_object_add(ci, "enabled", json_object_new_boolean(f->cloud_init_enabled));
	json_object_object_add(ci, "renderer", pf_json_str(f->cloud_init_renderer));
	json_object_object_add(ci, "disabled", json_object_new_boolean(f->cloud_init_disabled));
	json_object_object_add(ci, "nocloud_fs_label", pf_json_str(f->nocloud_fs_label));
	json_object_object_add(ci, "nocloud_seedfrom", pf_json_str(f->nocloud_seedfrom));
	json_object_object_add(ci, "users_default",
			       json_object_new_boolean(f->cloud_users_default));
	json_object_object_add(ci, "users", json_strv(f->cloud_users, n_cloud));
	json_object_object_add(ci, "default_user", pf_json_str(f->cloud_default_user));
	json_object_object_add(ci, "ssh_deletekeys",
			       f->ssh_deletekeys < 0 ? NULL
						     : json_object_new_boolean(f->ssh_deletekeys));
	json_object_object_add(ci, "network_config_version",
			       json_object_new_int(f->network_config_version));
	json_object_object_add(ci, "instance_id", pf_json_str(f->seed_instance_id));
	return ci;
}

static json_object *json_flavor(const PfFlavorInfo *f, const char *error)
{
	json_object *o = json_object_new_object(), *users = json_object_new_array();

	json_object_object_add(o, "name",
			       f && !error ? pf_json_str(pf_flavor_name(f->flavor)) : NULL);
	json_object_object_add(o, "error", pf_json_str(error));
	json_object_object_add(o, "evidence",
			       f ? json_strv(f->evidence, f->n_evidence) : json_object_new_array());
	if (!f)
		return o;
	json_object_object_add(o, "arch", pf_json_str(f->arch));
	json_object_object_add(o, "default_user", pf_json_str(f->default_user));
	json_object_object_add(o, "cloud_init", pf_json_str(f->cloud_init_version));
	json_object_object_add(o, "boot_partition",
			       f->boot ? json_object_new_int((int)f->boot->number) : NULL);
	json_object_object_add(o, "boot_mount", pf_json_str(f->boot_mount));
	json_object_object_add(o, "root_partition",
			       f->root ? json_object_new_int((int)f->root->number) : NULL);
	json_object_object_add(o, "seed", pf_json_str(f->seed_dir));
	json_object_object_add(o, "seed_how", pf_json_str(f->seed_how));
	json_object_object_add(o, "network", pf_json_str(error ? NULL : pf_plan_net_handler(f)));
	json_object_object_add(o, "mechanisms", error ? NULL : json_mechanisms(f));
	json_object_object_add(o, "units", json_units(f));
	json_object_object_add(o, "os", json_os(f));
	for (size_t i = 0; i < f->n_users; i++)
		json_object_array_add(users, json_object_new_string(f->users[i].name));
	json_object_object_add(o, "users", users);
	json_object_object_add(o, "first_user", pf_json_str(f->first_user));
	json_object_object_add(o, "cloud_init_config",
			       f->has_cloud_init ? json_cloud_init(f) : NULL);

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

json_object *pf_image_describe_json(PfImage *img, const PfFlavorInfo *f, const char *flavor_error)
{
	const char *path = pf_image_path(img);
	const PfSource *src = pf_image_source(img);
	const PfPtable *t = pf_image_table(img);
	json_object *root = json_object_new_object(), *jsrc = json_object_new_object(),
		    *jt = json_object_new_object(), *parts = json_object_new_array();

	json_object_object_add(root, "image", pf_json_str(path));
	json_object_object_add(jsrc, "kind", pf_json_str(pf_source_kind_name(pf_source_kind(src))));
	json_object_object_add(jsrc, "entry", pf_json_str(pf_source_entry(src)));
	json_object_object_add(jsrc, "size_bytes", json_object_new_uint64(pf_source_size(src)));
	json_object_object_add(jsrc, "cache", pf_json_str(pf_source_cache_path(src)));
	json_object_object_add(root, "source", jsrc);

	json_object_object_add(jt, "type", pf_json_str(t->label_type));
	json_object_object_add(jt, "id", pf_json_str(t->id));
	json_object_object_add(jt, "sector_size", json_object_new_uint64(t->sector_bytes));
	json_object_object_add(root, "table", jt);

	for (size_t i = 0; i < t->n_parts; i++) {
		const PfPartition *p = &t->parts[i];
		json_object *jp = json_object_new_object();
		char node[16];

		snprintf(node, sizeof(node), "p%u", p->number);
		json_object_object_add(jp, "number", json_object_new_int((int)p->number));
		json_object_object_add(jp, "node", pf_json_str(node));
		json_object_object_add(jp, "start_bytes", json_object_new_uint64(p->start_bytes));
		json_object_object_add(jp, "size_bytes", json_object_new_uint64(p->size_bytes));
		json_object_object_add(jp, "type", pf_json_str(p->type));
		json_object_object_add(jp, "type_name", pf_json_str(p->type_name));
		json_object_object_add(jp, "fstype", pf_json_str(p->fstype));
		json_object_object_add(jp, "label", pf_json_str(p->label));
		json_object_object_add(jp, "uuid", pf_json_str(p->uuid));
		json_object_object_add(jp, "partuuid", pf_json_str(p->partuuid));
		json_object_object_add(jp, "bootable", json_object_new_boolean(p->bootable));
		json_object_array_add(parts, jp);
	}
	json_object_object_add(root, "partitions", parts);
	json_object_object_add(root, "flavor", json_flavor(f, flavor_error));
	return root;
}

json_object *pf_device_describe_json(const PfTargetProbe *p)
{
	const PfTargetInfo *i = &p->info;
	json_object *o = json_object_new_object(), *m = json_object_new_array();

	json_object_object_add(o, "path", pf_json_str(i->path));
	json_object_object_add(o, "name", pf_json_str(i->name));
	json_object_object_add(o, "size_bytes", json_object_new_uint64(i->size_bytes));
	json_object_object_add(o, "model", pf_json_str(i->model));
	json_object_object_add(o, "serial", pf_json_str(i->serial));
	json_object_object_add(o, "transport", pf_json_str(i->transport));
	json_object_object_add(o, "removable", json_object_new_boolean(i->removable));
	json_object_object_add(o, "mounted", json_object_new_boolean(p->n_mounts > 0));
	for (size_t k = 0; k < p->n_mounts; k++)
		json_object_array_add(m, json_object_new_string(p->mounts[k]));
	json_object_object_add(o, "mountpoints", m);
	json_object_object_add(o, "refused", json_object_new_boolean(p->refusal != NULL));
	json_object_object_add(o, "refusal", pf_json_str(p->refusal));
	return o;
}
