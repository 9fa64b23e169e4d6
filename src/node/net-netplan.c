/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * netplan: a file in /etc/netplan read after the image's (netplan merges its files in name
 * order, later keys winning), mode 0600 as netplan wants. Its generator writes the result for
 * the renderer the image chose (networkd or NetworkManager) at every boot.
 */
#include <errno.h>

#include "node/handler.h"
#include "util/error.h"

static int plan_net_netplan(PfPlanCtx *c)
{
	if (c->cfg->wifi_ssid)
		return pf_error_set(-EOPNOTSUPP,
				    "WiFi: piflash does not write netplan WiFi settings; "
				    "configure WiFi through cloud-init or NetworkManager");
	if (!c->cfg->static_ip)
		return 0;
	return pf_plan_write_rendered(c, "netplan.yaml", PF_TPL_YAML, 0,
				      "/etc/netplan/90-piflash.yaml", 0600, false,
				      "netplan merges its files in name order: 90- comes after "
				      "the image's own");
}

const PfHandler pf_handler_net_netplan = { "netplan", plan_net_netplan };
