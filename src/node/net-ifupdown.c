/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ifupdown: the interface's stanza in /etc/network/interfaces becomes piflash's marked block,
 * and any other stanza for it (there, or in the interfaces.d file that configured it) goes —
 * two `iface eth0 inet` stanzas would leave ifup to pick one.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node/edit.h"
#include "node/handler.h"
#include "util/error.h"
#include "util/strutil.h"

#define INTERFACES "/etc/network/interfaces"

/* The file at path without the interface's stanzas (and, for the main file, with ours). */
static int edit_file(PfPlanCtx *c, const char *path, const char *block, const char *why)
{
	_cleanup_(freep) char *old = NULL, *dropped = NULL, *edited = NULL;
	size_t len = 0, dlen = 0, elen = 0;
	int r;

	r = pf_plan_read_text(c->tree, path, &old, &len);
	if (r < 0)
		return r;
	r = pf_edit_ifupdown_drop(old ? old : "", len, pf_node_config_iface(c->cfg), &dropped,
				  &dlen);
	if (r < 0)
		return pf_error_prefix(r, "%s", path);
	if (block) {
		r = pf_edit_replace_block(dropped, dlen, block, &edited, &elen);
		if (r < 0)
			return pf_error_prefix(r, "%s", path);
	} else if (old && dlen == len && memcmp(old, dropped, len) == 0)
		return 0; /* nothing of the interface there */
	return pf_plan_add_write(c->plan, 0, path, block ? edited : dropped, block ? elen : dlen,
				 0644, 0, 0, false, why);
}

static int plan_net_ifupdown(PfPlanCtx *c)
{
	_cleanup_(freep) char *block = NULL;
	const char *other = c->f->ifupdown_file;
	size_t blen = 0;
	int r;

	if (c->cfg->wifi_ssid)
		return pf_error_set(-EOPNOTSUPP,
				    "WiFi: this image's network is ifupdown; piflash configures "
				    "WiFi through NetworkManager, dhcpcd or cloud-init only");
	if (!c->cfg->static_ip)
		return 0;
	r = pf_plan_render(c, "ifupdown.interfaces", NULL, PF_TPL_TEXT, &block, &blen);
	if (r < 0)
		return r;
	if (other && !streq(other, INTERFACES)) {
		r = edit_file(c, other, NULL,
			      "its stanza for the interface would compete with piflash's");
		if (r < 0)
			return r;
	}
	r = edit_file(c, INTERFACES, block, "ifupdown (networking.service) brings it up");
	/* dns-nameservers needs resolvconf; without it nothing would write the servers. */
	if (r >= 0 && !c->f->has_resolvconf)
		r = pf_plan_resolv_conf(c, "ifupdown without resolvconf does not apply "
					   "dns-nameservers");
	return r;
}

const PfHandler pf_handler_net_ifupdown = { "ifupdown", plan_net_ifupdown };
