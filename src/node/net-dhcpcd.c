/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dhcpcd: a marked block in /etc/dhcpcd.conf with `static` lines under `interface IFACE` — not
 * in a profile used as a fallback, which applies only when DHCP fails. WiFi through
 * wpa_supplicant.conf (0600), which dhcpcd's hook starts.
 */
#include "node/handler.h"

static int plan_net_dhcpcd(PfPlanCtx *c)
{
	int r = 0;

	if (c->cfg->static_ip)
		r = pf_plan_marked_block(c, "dhcpcd.conf", "/etc/dhcpcd.conf",
					 "dhcpcd applies static lines under 'interface'");
	if (r >= 0 && c->cfg->wifi_ssid)
		r = pf_plan_write_rendered(c, "wpa_supplicant.conf", PF_TPL_TEXT, 0,
					   "/etc/wpa_supplicant/wpa_supplicant.conf", 0600, true,
					   "WiFi for wpa_supplicant (a secret: 0600)");
	return r;
}

const PfHandler pf_handler_net_dhcpcd = { "dhcpcd", plan_net_dhcpcd };
