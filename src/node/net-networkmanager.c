/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * NetworkManager: a keyfile in /etc/NetworkManager/system-connections, mode 0600 and owned by
 * root — NetworkManager skips any other, saying so only in its log — with an autoconnect
 * priority above the image's own profiles for the interface. WiFi is a second keyfile.
 */
#include "node/handler.h"

static int plan_net_nm(PfPlanCtx *c)
{
	int r = 0;

	if (c->cfg->static_ip)
		r = pf_plan_write_rendered(
			c, "nm-ethernet.nmconnection", PF_TPL_TEXT, 0,
			"/etc/NetworkManager/system-connections/piflash-eth.nmconnection", 0600,
			false, "NetworkManager keyfile: read only when 0600 and owned by root");
	if (r >= 0 && c->cfg->wifi_ssid)
		r = pf_plan_write_rendered(
			c, "nm-wifi.nmconnection", PF_TPL_TEXT, 0,
			"/etc/NetworkManager/system-connections/piflash-wifi.nmconnection", 0600,
			true, "WiFi for NetworkManager (a secret: 0600)");
	if (r >= 0 && c->cfg->wifi_country)
		r = pf_plan_wifi_country_cmdline(c);
	return r;
}

const PfHandler pf_handler_net_networkmanager = { "networkmanager", plan_net_nm };
