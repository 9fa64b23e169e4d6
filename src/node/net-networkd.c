/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * systemd-networkd: a .network file in /etc/systemd/network. networkd uses the first file (in
 * name order, across /etc, /run and /lib) that matches an interface, so piflash's is named to
 * sort before the image's own and netplan's (10-netplan-*) ones.
 */
#include <errno.h>

#include "node/handler.h"
#include "util/error.h"

static int plan_net_networkd(PfPlanCtx *c)
{
	int r;

	if (c->cfg->wifi_ssid)
		return pf_error_set(-EOPNOTSUPP,
				    "WiFi: this image's network is systemd-networkd, which needs "
				    "wpa_supplicant set up beside it; piflash configures WiFi "
				    "through NetworkManager, dhcpcd or cloud-init only");
	if (!c->cfg->static_ip)
		return 0;
	r = pf_plan_write_rendered(c, "networkd.network", PF_TPL_TEXT, 0,
				   "/etc/systemd/network/00-piflash.network", 0644, false,
				   "systemd-networkd uses the first matching file; 00- sorts "
				   "before the image's own");
	/* networkd hands DNS= to systemd-resolved only; without it, resolv.conf lists them. */
	if (r >= 0 && pf_flavor_unit(c->f, "systemd-resolved.service")->state != PF_UNIT_ENABLED)
		r = pf_plan_resolv_conf(c,
					"systemd-resolved is not enabled to take networkd's DNS=");
	return r;
}

const PfHandler pf_handler_net_networkd = { "networkd", plan_net_networkd };
