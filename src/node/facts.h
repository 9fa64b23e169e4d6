/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What piflash knows about an image: the facts detection reads from its files (detect*.c)
 * and, in the same record, the decisions made from them (mechanism.c) — which service applies
 * the node's address, what turns the SSH server on, who makes the user. This header is the
 * bottom of node/'s detection: the types and their names, nothing that reads an image or
 * decides, so that detection and the decisions can both use it without using each other.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "disk/ptable.h"
#include "node/passwd.h"
#include "node/units.h"
#include "util/macros.h"

typedef enum PfFlavor {
	PF_FLAVOR_UNKNOWN,
	PF_FLAVOR_HYPRIOT,
	PF_FLAVOR_UBUNTU,
	PF_FLAVOR_RPIOS_TRIXIE,
	PF_FLAVOR_RPIOS_BOOKWORM,
	PF_FLAVOR_RASPBIAN,
	PF_FLAVOR_DEBIAN,
	_PF_FLAVOR_MAX,
} PfFlavor;

/* "hypriot", "ubuntu", "rpios-trixie", "rpios-bookworm", "raspbian", "debian", "unknown". */
const char *pf_flavor_name(PfFlavor f);
/* Accepts the names above (any case) and "raspbian-buster", "raspbian-bullseye", "plain"
 * (debian), "hypriotos". -EINVAL with a detail listing the names otherwise. "unknown" is
 * not accepted. */
int pf_flavor_from_name(const char *s, PfFlavor *ret);

/* Which service applies the node's address at boot (see mechanism.h for the rules). */
typedef enum PfNetStack {
	PF_NET_NONE,
	PF_NET_CLOUD_INIT, /* network-config in the seed (v1 or v2, see network_config_version) */
	PF_NET_NETWORKMANAGER,
	PF_NET_DHCPCD,
	PF_NET_NETWORKD,
	PF_NET_IFUPDOWN,
	PF_NET_NETPLAN,
	_PF_NET_MAX,
} PfNetStack;

/* "none", "cloud-init", "networkmanager", "dhcpcd", "networkd", "ifupdown", "netplan". */
const char *pf_net_stack_name(PfNetStack n);
/* The names above less "none" (any case): 0 or -EINVAL with a detail listing them. */
int pf_net_stack_from_name(const char *s, PfNetStack *ret);

/* How the SSH server comes to run at boot. */
typedef enum PfSshWay {
	PF_SSH_NO_SERVER,   /* no sshd in the image */
	PF_SSH_ENABLED,	    /* its unit is enabled already: nothing to do */
	PF_SSH_SWITCH,	    /* an enabled unit turns it on when a file exists (ssh_switch_path) */
	PF_SSH_FIRSTBOOT,   /* custom.toml's [ssh] enabled, applied by init_config */
	PF_SSH_ENABLE_UNIT, /* nothing turns it on: piflash makes systemctl enable's links */
	PF_SSH_MASKED,	    /* masked by the image: piflash will not unmask it */
	_PF_SSH_WAY_MAX,
} PfSshWay;

const char *pf_ssh_way_name(PfSshWay w);

/* Who makes the user and installs its keys. */
typedef enum PfUserWay {
	PF_USER_PASSWD,	     /* the image's /etc/passwd: keys into ~user/.ssh */
	PF_USER_CLOUD_INIT,  /* cloud-init's users: in the seed's user-data */
	PF_USER_CUSTOM_TOML, /* raspberrypi-sys-mods' init_config reads custom.toml at first boot */
	PF_USER_USERCONF,    /* userconf-pi renames the uid-1000 user (userconf.txt) */
	_PF_USER_WAY_MAX,
} PfUserWay;

const char *pf_user_way_name(PfUserWay w);

/* The account cloud-init makes, as the image describes it (any field may be NULL). */
typedef struct PfCloudUser {
	char *name, *gecos, *groups, *shell, *sudo;
	char *from; /* where it was read: "/etc/cloud/cloud.cfg (system_info.default_user)" */
} PfCloudUser;

typedef struct PfFlavorInfo {
	PfFlavor flavor;
	/* Short human lines saying what was found, in the order it was looked at. */
	char **evidence;
	size_t n_evidence;

	char *os_id, *os_codename, *os_pretty; /* from os-release; NULL when absent */
	char *os_version_id;
	char *rpi_issue; /* first line of /etc/rpi-issue, NULL without */

	/* cloud-init: installed (version file, program or /etc/cloud/cloud.cfg). */
	bool has_cloud_init;
	bool cloud_init_disabled; /* /etc/cloud/cloud-init.disabled */
	char *cloud_init_version; /* "0.7.9", "25.1.2"; NULL without cloud-init or version */
	int cloud_init_major, cloud_init_minor; /* -1 when unknown */
	char *nocloud_fs_label;	    /* datasource.NoCloud.fs_label as configured, else NULL */
	char *nocloud_seedfrom;	    /* datasource.NoCloud.seedfrom (or ds= on cmdline), else NULL */
	char **datasource_list;	    /* as configured (NULL-terminated), NULL if not configured */
	char **cloud_users;	    /* named users of the image's `users:` (NULL-terminated) */
	bool cloud_users_default;   /* `users:` has "default" (or is not configured) */
	char *cloud_default_user;   /* system_info.default_user.name, else NULL */
	int ssh_deletekeys;	    /* -1 not configured (cloud-init deletes), 0 false, 1 true */
	bool cloud_init_ssh_module; /* "ssh" in cloud_init_modules (or the other stages) */
	bool cloud_init_network_disabled; /* network: {config: disabled} */

	char *arch; /* "armhf", "armel", "arm64", "amd64", "i386", "riscv64" or "unknown" */

	const PfPartition *root, *boot; /* boot: the FAT (fstab /boot/firmware or /boot, else the
					 * first vfat); either may be NULL */
	char *boot_mount;		/* "/boot" or "/boot/firmware" as in fstab; NULL if not */
	char *cmdline;			/* first line of cmdline.txt on the boot FAT, or NULL */

	char *seed_dir;		    /* cloud-init: "PART:/dir" of user-data & co, else NULL */
	char *seed_how;		    /* how seed_dir was found (a short phrase), else NULL */
	char *seed_instance_id;	    /* instance-id in the seed's meta-data now, else NULL */
	int network_config_version; /* cloud-init: 1 or 2 (the seed's, else 2 with netplan);
				     * 0 without cloud-init */

	/* ---- mechanisms: facts ---- */
	PfUnit *units; /* the units piflash looks at (see pf_flavor_unit()) */
	size_t n_units;
	bool cloud_init_enabled;     /* installed, its units enabled, not disabled */
	char **cloud_init_renderers; /* system_info.network.renderers, NULL if not set */
	char *cloud_init_renderer;   /* what cloud-init renders the network for, or NULL */
	PfCloudUser cloud_user;	     /* the user cloud-init makes (seed or config), or empty */
	char *seed_user_data;	     /* the seed's user-data now (NUL-terminated), or NULL */
	size_t seed_user_data_len;
	char *seed_meta_data; /* the seed's meta-data now, or NULL */
	size_t seed_meta_data_len;
	bool netplan_ethernets;	    /* a netplan file defines ethernets (netplan applies it) */
	char *netplan_file;	    /* that file */
	char *netplan_renderer;	    /* "networkd" (netplan's default) or "NetworkManager" */
	bool ifupdown_configures;   /* /etc/network/interfaces (and what it sources) has an iface */
	char *ifupdown_file;	    /* the file with the first non-loopback iface stanza */
	bool ifupdown_sources_d;    /* it sources /etc/network/interfaces.d */
	bool has_resolvconf;	    /* /sbin/resolvconf: ifupdown's dns-nameservers work */
	bool has_sshd;		    /* an SSH server: /usr/sbin/sshd */
	char *ssh_unit;		    /* "ssh.service" or "sshd.service" (the installed unit) */
	char *ssh_switch_unit;	    /* an enabled unit that turns sshd on when a file exists */
	char *ssh_switch_path;	    /* that file in the booted system ("/boot/firmware/ssh") */
	char *ssh_switch_condition; /* the condition line, for the evidence */

	/* ---- mechanisms: decisions (mechanism.c, the one place they are made) ---- */
	PfNetStack net;
	bool net_forced;	     /* --network */
	const char *net_enable_unit; /* --network: the unit the plan enables, or NULL */
	char *net_why;		     /* one line: why this service, or why none */
	PfSshWay ssh;
	char *ssh_why;
	PfUserWay user;
	char *user_why;

	bool has_networkmanager, has_dhcpcd, dhcpcd_masked, has_networkd, networkd_enabled,
		has_ifupdown, has_netplan, netplan_to_networkmanager;
	bool has_userconf;	   /* /usr/lib/userconf-pi/userconf */
	bool has_custom_toml;	   /* /usr/lib/raspberrypi-sys-mods/init_config reads custom.toml */
	bool firstboot_in_cmdline; /* cmdline.txt runs raspberrypi-sys-mods' firstboot */

	char *default_user;	     /* see pf_flavor_detect() */
	bool default_user_in_passwd; /* the image's /etc/passwd has it (else cloud-init makes it) */
	char *first_user;	     /* uid 1000 (rpios-bookworm: the account userconf renames) */
	PfPasswordState first_user_password;
	PfPasswdEntry *users; /* regular users of /etc/passwd (uid 1000..59999, login shell) */
	size_t n_users;

	bool machine_id_baked;	   /* /etc/machine-id non-empty and not "uninitialized" */
	bool dbus_machine_id_copy; /* /var/lib/dbus/machine-id a regular file, not a link */
	char **host_keys;	   /* "/etc/ssh/ssh_host_*_key{,.pub}" present, sorted */
	size_t n_host_keys;
	bool regenerates_host_keys; /* something makes missing host keys at boot */
	/* The link that enables a unit making host keys at boot ("/etc/systemd/system/
	 * multi-user.target.wants/regenerate_ssh_host_keys.service"), or NULL. */
	char *keygen_unit_link;
} PfFlavorInfo;

/* What the operator decided for the image (--flavor, --network): the rest is detected. */
typedef struct PfDetectOptions {
	PfFlavor flavor;    /* PF_FLAVOR_UNKNOWN: detect */
	PfNetStack net;	    /* PF_NET_NONE: decide from the facts */
	bool allow_unknown; /* an image whose flavor matches no rule is not an error */
} PfDetectOptions;

/* Adds one line of evidence to f: 0 or -ENOMEM. */
int pf_flavor_add_evidence(PfFlavorInfo *f, const char *fmt, ...) _printf_(2, 3);

/* The unit name as detected (state PF_UNIT_ABSENT if piflash did not look at it). */
const PfUnit *pf_flavor_unit(const PfFlavorInfo *f, const char *name);

static inline bool pf_flavor_unit_is(const PfFlavorInfo *f, const char *name, PfUnitState s)
{
	return pf_flavor_unit(f, name)->state == s;
}

/* Frees a PfCloudUser's strings and empties it. */
void pf_cloud_user_done(PfCloudUser *u);

PfFlavorInfo *pf_flavor_info_free(PfFlavorInfo *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfFlavorInfo *, pf_flavor_info_free);
