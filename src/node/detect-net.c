/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys/stat.h"
#include "node/detect-ctx.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- network stacks ---- */

static bool masked(Ctx *c, const char *unit_path)
{
	_cleanup_(freep) char *inner = NULL, *target = NULL;
	PfStat st;
	PfFs *fs;

	if (pf_detect_locate(c, unit_path, false, NULL, &fs, &inner, &st) < 0 || !S_ISLNK(st.mode))
		return false;
	if (pf_fs_readlink(fs, inner, &target) < 0) {
		pf_error_clear();
		return false;
	}
	return streq(target, "/dev/null");
}

static bool has_file_in(Ctx *c, const char *dir, const char *suffix)
{
	_cleanup_(pf_detect_listing_done) Listing ls = { 0 };

	if (pf_detect_list_dir(c, dir, &ls.d, &ls.n) < 0)
		return false;
	for (size_t i = 0; i < ls.n; i++)
		if (endswith(ls.d[i].name, suffix))
			return true;
	return false;
}

int pf_detect_network(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	char buf[512];
	size_t l = 0;

	f->has_networkmanager = pf_detect_is_file(c, "/usr/sbin/NetworkManager") ||
				pf_detect_is_file(c, "/usr/bin/NetworkManager");
	f->has_dhcpcd = pf_detect_is_file(c, "/usr/sbin/dhcpcd") ||
			pf_detect_is_file(c, "/sbin/dhcpcd") ||
			pf_detect_is_file(c, "/etc/dhcpcd.conf");
	f->dhcpcd_masked = masked(c, "/etc/systemd/system/dhcpcd.service") ||
			   masked(c, "/etc/systemd/system/dhcpcd5.service");
	f->has_networkd = pf_detect_is_file(c, "/lib/systemd/systemd-networkd") ||
			  pf_detect_is_file(c, "/usr/lib/systemd/systemd-networkd");
	f->networkd_enabled =
		f->has_networkd &&
		(pf_detect_exists(
			 c,
			 "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service") ||
		 has_file_in(c, "/etc/systemd/network", ".network"));
	f->has_ifupdown = pf_detect_is_file(c, "/etc/network/interfaces");
	f->netplan_to_networkmanager =
		pf_detect_is_file(c, "/lib/netplan/00-network-manager-all.yaml") ||
		pf_detect_is_file(c, "/usr/lib/netplan/00-network-manager-all.yaml") ||
		pf_detect_is_file(c, "/etc/netplan/00-network-manager-all.yaml");
	f->has_netplan = f->netplan_to_networkmanager || pf_detect_is_dir(c, "/etc/netplan") ||
			 pf_detect_is_file(c, "/usr/sbin/netplan") ||
			 pf_detect_is_dir(c, "/usr/share/netplan");
	f->has_userconf = pf_detect_is_file(c, "/usr/lib/userconf-pi/userconf");
	f->has_custom_toml = pf_detect_is_file(c, "/usr/lib/raspberrypi-sys-mods/init_config");

	buf[0] = 0;
#define ADD(cond, s)                                                                               \
	do {                                                                                       \
		if ((cond) && l < sizeof(buf))                                                     \
			l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%s", l ? ", " : "", s); \
	} while (0)
	ADD(f->has_networkmanager, "NetworkManager");
	ADD(f->has_netplan,
	    f->netplan_to_networkmanager ? "netplan (-> NetworkManager)" : "netplan");
	ADD(f->has_dhcpcd, f->dhcpcd_masked ? "dhcpcd (masked)" : "dhcpcd");
	ADD(f->has_networkd,
	    f->networkd_enabled ? "systemd-networkd (enabled)" : "systemd-networkd");
	ADD(f->has_ifupdown, "ifupdown");
#undef ADD
	if (evidence(c, "network: %s", l ? buf : "none found") < 0)
		return -ENOMEM;
	if (f->has_userconf && evidence(c, "userconf-pi (/usr/lib/userconf-pi/userconf)") < 0)
		return -ENOMEM;
	if (f->has_custom_toml &&
	    evidence(c, "custom.toml support (/usr/lib/raspberrypi-sys-mods/init_config)%s",
		     f->firstboot_in_cmdline ? ", firstboot in cmdline.txt" : "") < 0)
		return -ENOMEM;
	return 0;
}
