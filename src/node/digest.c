/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdlib.h>
#include <string.h>

#include "node/digest.h"
#include "util/digest.h"

static void digest_address(PfDigest *d, const char *label, uint32_t addr)
{
	char a[16];

	pf_ipv4_format(addr, a);
	pf_digest_field(d, label, a);
}

void pf_node_config_digest(const PfNodeConfig *c, const char *common, char out[65])
{
	char a[16];
	PfDigest d;

	if (pf_digest_begin(&d) < 0) {
		memset(out, '0', 64);
		out[64] = 0;
		return;
	}
	pf_digest_field(&d, "common", common);
	pf_digest_field(&d, "hostname", c->hostname);
	pf_digest_field(&d, "domain", c->domain);
	for (size_t i = 0; i < c->n_keys; i++) {
		_cleanup_(freep) char *line = pf_ssh_key_format(&c->keys[i]);

		pf_digest_field(&d, "key", line);
	}
	pf_digest_field(&d, "user", c->user);
	pf_digest_field(&d, "password-hash", c->password_hash);
	pf_digest_fieldf(&d, "ssh-password", "%d", c->ssh_password);
	if (c->static_ip) {
		pf_ipv4_format(c->ip, a);
		pf_digest_fieldf(&d, "ip", "%s/%u", a, c->prefix);
	}
	if (c->has_gateway)
		digest_address(&d, "gateway", c->gateway);
	for (size_t i = 0; i < c->n_dns; i++)
		digest_address(&d, "dns", c->dns[i]);
	pf_digest_field(&d, "iface", c->iface);
	pf_digest_field(&d, "wifi-ssid", c->wifi_ssid);
	pf_digest_field(&d, "wifi-psk", c->wifi_psk);
	pf_digest_field(&d, "wifi-country", c->wifi_country);
	pf_digest_field(&d, "timezone", c->timezone);
	pf_digest_field(&d, "locale", c->locale);
	pf_digest_field(&d, "board", c->board);
	for (size_t i = 0; i < c->n_vars; i++)
		pf_digest_fieldf(&d, "var", "%s=%s", c->vars[i].key, c->vars[i].value);
	pf_digest_end(&d, out);
}
