/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#include "node/facts.h"
#include "node/passwd.h"
#include "util/error.h"
#include "util/strutil.h"

static const char *const flavor_names[_PF_FLAVOR_MAX] = {
	[PF_FLAVOR_UNKNOWN] = "unknown",
	[PF_FLAVOR_HYPRIOT] = "hypriot",
	[PF_FLAVOR_UBUNTU] = "ubuntu",
	[PF_FLAVOR_RPIOS_TRIXIE] = "rpios-trixie",
	[PF_FLAVOR_RPIOS_BOOKWORM] = "rpios-bookworm",
	[PF_FLAVOR_RASPBIAN] = "raspbian",
	[PF_FLAVOR_DEBIAN] = "debian",
};

static const char *const net_names[_PF_NET_MAX] = {
	[PF_NET_NONE] = "none",
	[PF_NET_CLOUD_INIT] = "cloud-init",
	[PF_NET_NETWORKMANAGER] = "networkmanager",
	[PF_NET_DHCPCD] = "dhcpcd",
	[PF_NET_NETWORKD] = "networkd",
	[PF_NET_IFUPDOWN] = "ifupdown",
	[PF_NET_NETPLAN] = "netplan",
};

const char *pf_flavor_name(PfFlavor f)
{
	return f >= 0 && f < _PF_FLAVOR_MAX ? flavor_names[f] : "unknown";
}

const char *pf_net_stack_name(PfNetStack n)
{
	return n >= 0 && n < _PF_NET_MAX ? net_names[n] : "none";
}

int pf_net_stack_from_name(const char *s, PfNetStack *ret)
{
	for (int n = PF_NET_NONE + 1; s && n < _PF_NET_MAX; n++)
		if (strcasecmp(s, net_names[n]) == 0) {
			*ret = (PfNetStack)n;
			return 0;
		}
	if (s && strcasecmp(s, "nm") == 0) {
		*ret = PF_NET_NETWORKMANAGER;
		return 0;
	}
	return pf_error_set(-EINVAL,
			    "unknown network service '%s' (known: cloud-init, netplan, ifupdown, "
			    "networkmanager, networkd, dhcpcd)",
			    s ? s : "");
}

int pf_flavor_from_name(const char *s, PfFlavor *ret)
{
	static const struct {
		const char *alias;
		PfFlavor f;
	} aliases[] = {
		{ "hypriotos", PF_FLAVOR_HYPRIOT },
		{ "raspbian-buster", PF_FLAVOR_RASPBIAN },
		{ "raspbian-bullseye", PF_FLAVOR_RASPBIAN },
		{ "plain", PF_FLAVOR_DEBIAN },
	};

	for (int f = PF_FLAVOR_UNKNOWN + 1; s && f < _PF_FLAVOR_MAX; f++)
		if (strcasecmp(s, flavor_names[f]) == 0) {
			*ret = (PfFlavor)f;
			return 0;
		}
	for (size_t i = 0; s && i < ELEMENTSOF(aliases); i++)
		if (strcasecmp(s, aliases[i].alias) == 0) {
			*ret = aliases[i].f;
			return 0;
		}
	return pf_error_set(-EINVAL,
			    "unknown flavor '%s' (known: hypriot, ubuntu, rpios-trixie, "
			    "rpios-bookworm, raspbian, debian)",
			    s ? s : "");
}

static const char *const ssh_way_names[_PF_SSH_WAY_MAX] = {
	[PF_SSH_NO_SERVER] = "no-server",     [PF_SSH_ENABLED] = "enabled",
	[PF_SSH_SWITCH] = "switch-file",      [PF_SSH_FIRSTBOOT] = "custom.toml",
	[PF_SSH_ENABLE_UNIT] = "enable-unit", [PF_SSH_MASKED] = "masked",
};

static const char *const user_way_names[_PF_USER_WAY_MAX] = {
	[PF_USER_PASSWD] = "passwd",
	[PF_USER_CLOUD_INIT] = "cloud-init",
	[PF_USER_CUSTOM_TOML] = "custom.toml",
	[PF_USER_USERCONF] = "userconf",
};

const char *pf_ssh_way_name(PfSshWay w)
{
	return w >= 0 && w < _PF_SSH_WAY_MAX ? ssh_way_names[w] : "?";
}

const char *pf_user_way_name(PfUserWay w)
{
	return w >= 0 && w < _PF_USER_WAY_MAX ? user_way_names[w] : "?";
}

const PfUnit *pf_flavor_unit(const PfFlavorInfo *f, const char *name)
{
	static const PfUnit absent = { .state = PF_UNIT_ABSENT };

	for (size_t i = 0; i < f->n_units; i++)
		if (streq(f->units[i].name, name))
			return &f->units[i];
	return &absent;
}

void pf_cloud_user_done(PfCloudUser *u)
{
	free(u->name);
	free(u->gecos);
	free(u->groups);
	free(u->shell);
	free(u->sudo);
	free(u->from);
	*u = (PfCloudUser){ 0 };
}

PfFlavorInfo *pf_flavor_info_free(PfFlavorInfo *f)
{
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->n_evidence; i++)
		free(f->evidence[i]);
	free(f->evidence);
	free(f->os_id);
	free(f->os_codename);
	free(f->os_pretty);
	free(f->os_version_id);
	free(f->rpi_issue);
	free(f->cloud_init_version);
	free(f->nocloud_fs_label);
	free(f->nocloud_seedfrom);
	pf_strv_free(f->datasource_list);
	pf_strv_free(f->cloud_users);
	free(f->cloud_default_user);
	free(f->arch);
	free(f->boot_mount);
	free(f->cmdline);
	free(f->seed_dir);
	free(f->seed_how);
	free(f->seed_instance_id);
	free(f->default_user);
	free(f->first_user);
	pf_passwd_entries_free(f->users, f->n_users);
	for (size_t i = 0; i < f->n_host_keys; i++)
		free(f->host_keys[i]);
	free(f->host_keys);
	free(f->keygen_unit_link);
	for (size_t i = 0; i < f->n_units; i++)
		pf_unit_done(&f->units[i]);
	free(f->units);
	pf_strv_free(f->cloud_init_renderers);
	free(f->cloud_init_renderer);
	pf_cloud_user_done(&f->cloud_user);
	free(f->seed_user_data);
	free(f->seed_meta_data);
	free(f->netplan_file);
	free(f->netplan_renderer);
	free(f->ifupdown_file);
	free(f->ssh_unit);
	free(f->ssh_switch_unit);
	free(f->ssh_switch_path);
	free(f->ssh_switch_condition);
	free(f->net_why);
	free(f->ssh_why);
	free(f->user_why);
	free(f);
	return NULL;
}

int pf_flavor_add_evidence(PfFlavorInfo *f, const char *fmt, ...)
{
	char **n, *s;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	n = realloc(f->evidence, (f->n_evidence + 1) * sizeof(char *));
	if (!n) {
		free(s);
		return -ENOMEM;
	}
	f->evidence = n;
	f->evidence[f->n_evidence++] = s;
	return 0;
}
