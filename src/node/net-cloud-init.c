/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Network through cloud-init: network-config in the seed, in the version the image's
 * cloud-init reads (1 for 0.7.x, which HypriotOS ships; 2, netplan's schema, where the seed
 * already uses it or netplan is installed). cloud-init renders it for the image's own stack.
 * With neither a static address nor WiFi to set, the image's network-config is left alone.
 */
#include <errno.h>
#include <stdio.h>

#include "node/handler.h"
#include "util/error.h"
#include "util/strutil.h"

/* Whether what cloud-init renders puts the DNS servers into effect: ENI's dns-nameservers
 * needs resolvconf, networkd's DNS= needs systemd-resolved (found by booting: without them
 * the node has its address and route but resolv.conf stays as the image baked it). */
static bool renderer_applies_dns(const PfFlavorInfo *f)
{
	const char *r = f->cloud_init_renderer;
	bool resolved = pf_flavor_unit(f, "systemd-resolved.service")->state == PF_UNIT_ENABLED;

	if (!r)
		return true;
	if (streq(r, "eni"))
		return f->has_resolvconf;
	if (streq(r, "networkd") ||
	    (streq(r, "netplan") &&
	     (!f->netplan_renderer || streq(f->netplan_renderer, "networkd"))))
		return resolved;
	return true; /* NetworkManager writes resolv.conf itself */
}

/*
 * WiFi where cloud-init reads network-config version 1 (0.7.x, HypriotOS), which has none:
 * as HypriotOS documents it, user-data's write_files gives ifupdown a wlan0 stanza in
 * /etc/network/interfaces.d and wpa_supplicant its configuration (0600, the derived key, not
 * the passphrase), and a per-instance script brings wlan0 up on the first boot (udev's
 * hotplug has run by the time write_files writes the stanza; later boots need no script).
 * That holds only where cloud-init renders for ifupdown, the image's interfaces sources
 * interfaces.d, wpasupplicant's ifupdown hook reads wpa-conf, and user-data is ours to write.
 */
static int wifi_eni_check(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	const char *ver = f->cloud_init_version ? f->cloud_init_version : "0.7";
	PfStat st;
	int r;

	if (f->user != PF_USER_CLOUD_INIT)
		return pf_error_set(-EOPNOTSUPP,
				    "WiFi: cloud-init %s reads network-config version 1, which has "
				    "no WiFi, and piflash does not write this image's user-data "
				    "(the user is made by %s)",
				    ver, pf_user_way_name(f->user));
	if (!f->cloud_init_renderer || !streq(f->cloud_init_renderer, "eni") ||
	    !f->ifupdown_sources_d)
		return pf_error_set(-EOPNOTSUPP,
				    "WiFi: cloud-init %s reads network-config version 1, which has "
				    "no WiFi, and it renders for %s%s; WiFi from user-data needs "
				    "ifupdown reading /etc/network/interfaces.d",
				    ver,
				    f->cloud_init_renderer ? f->cloud_init_renderer : "nothing",
				    f->ifupdown_sources_d ? ""
							  : " (/etc/network/interfaces sources no "
							    "interfaces.d)");
	r = pf_plan_stat(c->tree, c->t, "/etc/network/if-pre-up.d/wpasupplicant", &st);
	if (r < 0) {
		pf_error_clear();
		return pf_error_set(-EOPNOTSUPP,
				    "WiFi: cloud-init %s reads network-config version 1, which has "
				    "no WiFi, and the image has no wpasupplicant ifupdown hook "
				    "(/etc/network/if-pre-up.d/wpasupplicant) to start it from "
				    "/etc/network/interfaces.d",
				    ver);
	}
	return pf_plan_add_note(
		c->plan,
		"WiFi '%s': in user-data (write_files: /etc/network/interfaces.d/"
		"wlan0, /etc/wpa_supplicant/wpa_supplicant.conf 0600), as cloud-init "
		"%s's network-config has none",
		c->cfg->wifi_ssid, ver);
}

static int plan_net_cloud_init(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	bool v1 = f->network_config_version == 1;
	char path[PF_PATH_MAX], why[256];
	unsigned part;
	int r;

	if (c->cfg->wifi_ssid && v1) {
		r = wifi_eni_check(c);
		if (r < 0)
			return r;
	}
	if (!c->cfg->static_ip && !c->cfg->wifi_ssid)
		return 0;
	r = pf_plan_seed_path(f, "network-config", &part, path, sizeof(path));
	if (r < 0)
		return r;
	snprintf(why, sizeof(why),
		 "network-config version %d, the one cloud-init %s reads; it renders it for %s",
		 v1 ? 1 : 2, f->cloud_init_version ? f->cloud_init_version : "",
		 f->cloud_init_renderer ? f->cloud_init_renderer : "the image's network stack");
	r = pf_plan_write_rendered(c, v1 ? "network-config-v1.yaml" : "network-config-v2.yaml",
				   PF_TPL_YAML, part, path, 0600, c->cfg->wifi_ssid != NULL, why);
	if (r >= 0 && !renderer_applies_dns(f))
		r = pf_plan_resolv_conf(c, "cloud-init's DNS servers reach no resolver on this "
					   "image (ENI without resolvconf, networkd without "
					   "systemd-resolved)");
	return r;
}

const PfHandler pf_handler_net_cloud_init = { "cloud-init", plan_net_cloud_init };
