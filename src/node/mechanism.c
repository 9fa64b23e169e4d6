/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "node/mechanism.h"
#include "node/passwd.h"
#include "node/units.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- decisions ---- */

static int why(char **dst, const char *fmt, ...) _printf_(2, 3);
static int why(char **dst, const char *fmt, ...)
{
	va_list ap;
	int r;

	free(*dst);
	*dst = NULL;
	va_start(ap, fmt);
	r = vasprintf(dst, fmt, ap);
	va_end(ap);
	if (r < 0) {
		*dst = NULL;
		return -ENOMEM;
	}
	return 0;
}

static bool enabled(const PfFlavorInfo *f, const char *unit)
{
	return pf_flavor_unit_is(f, unit, PF_UNIT_ENABLED);
}

/*
 * The image's dhcpcd unit, one rule for detecting it, naming it and enabling it: the one that
 * is enabled; else dhcpcd5.service where it is the only one installed (older Raspbian); else
 * dhcpcd.service.
 */
static const char *dhcpcd_unit(const PfFlavorInfo *f)
{
	if (enabled(f, "dhcpcd.service"))
		return "dhcpcd.service";
	if (enabled(f, "dhcpcd5.service"))
		return "dhcpcd5.service";
	if (pf_flavor_unit(f, "dhcpcd5.service")->file &&
	    !pf_flavor_unit(f, "dhcpcd.service")->file)
		return "dhcpcd5.service";
	return "dhcpcd.service";
}

/* The unit of a network service, NULL for those without one of their own. */
static const char *net_unit(const PfFlavorInfo *f, PfNetStack n)
{
	switch (n) {
	case PF_NET_NETWORKMANAGER:
		return "NetworkManager.service";
	case PF_NET_NETWORKD:
		return "systemd-networkd.service";
	case PF_NET_DHCPCD:
		return dhcpcd_unit(f);
	case PF_NET_IFUPDOWN:
		return "networking.service";
	default:
		return NULL;
	}
}

static bool cloud_init_reads_seed(const PfFlavorInfo *f)
{
	return f->cloud_init_enabled && f->seed_dir;
}

static bool net_installed(const PfFlavorInfo *f, PfNetStack n)
{
	switch (n) {
	case PF_NET_CLOUD_INIT:
		return cloud_init_reads_seed(f) && !f->cloud_init_network_disabled;
	case PF_NET_NETWORKMANAGER:
		return f->has_networkmanager;
	case PF_NET_NETWORKD:
		return f->has_networkd;
	case PF_NET_DHCPCD:
		return f->has_dhcpcd;
	case PF_NET_IFUPDOWN:
		return f->has_ifupdown ||
		       !pf_flavor_unit_is(f, "networking.service", PF_UNIT_ABSENT);
	case PF_NET_NETPLAN:
		return f->has_netplan;
	default:
		return false;
	}
}

/* The other services enabled too: worth a word, as two of them would fight over eth0. */
static void also_enabled(const PfFlavorInfo *f, PfNetStack chosen, char *buf, size_t size)
{
	static const PfNetStack all[] = { PF_NET_NETWORKMANAGER, PF_NET_NETWORKD, PF_NET_DHCPCD,
					  PF_NET_IFUPDOWN };
	size_t l = 0;

	buf[0] = 0;
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		if (all[i] != chosen && enabled(f, net_unit(f, all[i])) && l < size)
			l += (size_t)snprintf(buf + l, size - l, "%s%s",
					      l ? ", " : "; also enabled: ", net_unit(f, all[i]));
}

static int decide_net_forced(PfFlavorInfo *f, PfNetStack n)
{
	const char *unit = net_unit(f, n);

	if (!net_installed(f, n)) {
		if (n == PF_NET_CLOUD_INIT)
			return pf_error_set(-EOPNOTSUPP,
					    "--network cloud-init: cloud-init does not read a seed "
					    "on this image (%s)",
					    !f->has_cloud_init	     ? "not installed"
					    : !f->cloud_init_enabled ? "it does not run at boot"
					    : f->cloud_init_network_disabled
						    ? "its network config is disabled"
						    : "no seed found");
		return pf_error_set(-EOPNOTSUPP, "--network %s: it is not installed in the image",
				    pf_net_stack_name(n));
	}
	if (unit && pf_flavor_unit_is(f, unit, PF_UNIT_MASKED))
		return pf_error_set(-EOPNOTSUPP,
				    "--network %s: %s is masked in the image (%s); piflash does "
				    "not unmask it",
				    pf_net_stack_name(n), unit, pf_flavor_unit(f, unit)->link);
	f->net = n;
	f->net_forced = true;
	f->net_enable_unit = unit;
	return why(&f->net_why, "%s, as given with --network%s%s%s", pf_net_stack_name(n),
		   unit && !enabled(f, unit) ? " (" : "", unit && !enabled(f, unit) ? unit : "",
		   unit && !enabled(f, unit) ? " is not enabled: the plan enables it)" : "");
}

static int decide_net(PfFlavorInfo *f, const PfDetectOptions *o)
{
	/* Services that only need their unit enabled, in the order of mechanism.h. */
	static const PfNetStack service_order[] = { PF_NET_NETWORKMANAGER, PF_NET_NETWORKD,
						    PF_NET_DHCPCD };
	char also[256];

	if (o && o->net != PF_NET_NONE)
		return decide_net_forced(f, o->net);

	if (cloud_init_reads_seed(f) && !f->cloud_init_network_disabled && f->cloud_init_renderer) {
		f->net = PF_NET_CLOUD_INIT;
		return why(&f->net_why,
			   "cloud-init %s runs at boot, reads its seed at %s (%s) and renders "
			   "network-config for %s",
			   f->cloud_init_version ? f->cloud_init_version : "", f->seed_dir,
			   f->seed_how, f->cloud_init_renderer);
	}
	if (f->netplan_ethernets) {
		f->net = PF_NET_NETPLAN;
		return why(&f->net_why, "netplan defines ethernets in %s (renderer %s)",
			   f->netplan_file, f->netplan_renderer);
	}
	if (enabled(f, "networking.service") && f->ifupdown_configures) {
		f->net = PF_NET_IFUPDOWN;
		also_enabled(f, f->net, also, sizeof(also));
		return why(&f->net_why,
			   "networking.service is enabled (%s) and %s configures an interface%s",
			   pf_flavor_unit(f, "networking.service")->link, f->ifupdown_file, also);
	}
	for (size_t i = 0; i < ELEMENTSOF(service_order); i++) {
		PfNetStack s = service_order[i];
		const char *unit = net_unit(f, s);

		if (!enabled(f, unit))
			continue;
		f->net = s;
		also_enabled(f, f->net, also, sizeof(also));
		return why(&f->net_why, "%s is enabled (%s)%s", unit, pf_flavor_unit(f, unit)->link,
			   also);
	}
	f->net = PF_NET_NONE;
	return why(&f->net_why,
		   "no network service is in charge at boot (cloud-init: %s; netplan: %s; "
		   "ifupdown: %s; NetworkManager.service, systemd-networkd.service, "
		   "%s: %s, %s, %s)",
		   !f->has_cloud_init		    ? "not installed"
		   : !f->cloud_init_enabled	    ? "does not run"
		   : !f->seed_dir		    ? "no seed"
		   : f->cloud_init_network_disabled ? "network disabled"
						    : "no renderer",
		   f->netplan_ethernets ? "yes"
		   : f->has_netplan	? "no ethernets"
					: "not installed",
		   enabled(f, "networking.service") ? "no interface configured"
		   : f->has_ifupdown		    ? "networking.service not enabled"
						    : "not installed",
		   dhcpcd_unit(f),
		   pf_unit_state_name(pf_flavor_unit(f, "NetworkManager.service")->state),
		   pf_unit_state_name(pf_flavor_unit(f, "systemd-networkd.service")->state),
		   pf_unit_state_name(pf_flavor_unit(f, dhcpcd_unit(f))->state));
}

static int decide_user(PfFlavorInfo *f)
{
	if (cloud_init_reads_seed(f)) {
		f->user = PF_USER_CLOUD_INIT;
		return why(&f->user_why, "cloud-init makes the user from the seed's user-data");
	}
	if (f->has_custom_toml && f->firstboot_in_cmdline) {
		f->user = PF_USER_CUSTOM_TOML;
		return why(&f->user_why,
			   "cmdline.txt runs raspberrypi-sys-mods' firstboot, whose init_config "
			   "applies custom.toml");
	}
	if (f->has_userconf && enabled(f, "userconfig.service")) {
		f->user = PF_USER_USERCONF;
		return why(&f->user_why,
			   "userconfig.service (%s) renames the uid-1000 user from "
			   "userconf.txt",
			   pf_flavor_unit(f, "userconfig.service")->link);
	}
	f->user = PF_USER_PASSWD;
	return why(&f->user_why, "the users of the image's /etc/passwd");
}

static int decide_ssh(PfFlavorInfo *f)
{
	static const char *const units[] = { "ssh.service", "sshd.service", "ssh.socket" };

	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (pf_flavor_unit_is(f, units[i], PF_UNIT_MASKED)) {
			f->ssh = PF_SSH_MASKED;
			return why(&f->ssh_why, "%s is masked (%s)", units[i],
				   pf_flavor_unit(f, units[i])->link);
		}
	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (enabled(f, units[i])) {
			f->ssh = PF_SSH_ENABLED;
			return why(&f->ssh_why, "%s is enabled (%s)", units[i],
				   pf_flavor_unit(f, units[i])->link);
		}
	if (!f->has_sshd && !f->ssh_unit) {
		f->ssh = PF_SSH_NO_SERVER;
		return why(&f->ssh_why, "no SSH server (no /usr/sbin/sshd, no ssh.service)");
	}
	if (f->ssh_switch_path) {
		f->ssh = PF_SSH_SWITCH;
		return why(&f->ssh_why, "%s turns it on when %s exists", f->ssh_switch_unit,
			   f->ssh_switch_path);
	}
	if (f->user == PF_USER_CUSTOM_TOML) {
		f->ssh = PF_SSH_FIRSTBOOT;
		return why(&f->ssh_why, "custom.toml's [ssh] enabled, applied by init_config");
	}
	f->ssh = PF_SSH_ENABLE_UNIT;
	return why(&f->ssh_why, "nothing turns %s on at boot: piflash enables it",
		   f->ssh_unit ? f->ssh_unit : "the SSH server");
}

int pf_mechanism_decide(PfFlavorInfo *f, const PfDetectOptions *o)
{
	int r;

	r = decide_user(f);
	if (r >= 0)
		r = decide_net(f, o);
	if (r >= 0)
		r = decide_ssh(f);
	if (r < 0)
		return r;
	if (pf_flavor_add_evidence(f, "network: %s (%s)", pf_net_stack_name(f->net), f->net_why) <
		    0 ||
	    pf_flavor_add_evidence(f, "user: %s (%s)", pf_user_way_name(f->user), f->user_why) <
		    0 ||
	    pf_flavor_add_evidence(f, "ssh: %s (%s)", pf_ssh_way_name(f->ssh), f->ssh_why) < 0)
		return -ENOMEM;
	return 0;
}
