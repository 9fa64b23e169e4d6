/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/handler.h"
#include "node/template.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

#define TEMPLATE_MAX_BYTES (256u * 1024u)
#define SUDO_ALL "ALL=(ALL) NOPASSWD:ALL"

/* --user-data FILE: a template of the user's, read whole (bounded like the built-in ones). */
static int read_user_template(const char *path, char **ret, size_t *ret_len)
{
	int r = pf_read_file_at(AT_FDCWD, path, TEMPLATE_MAX_BYTES, ret, ret_len);

	return r < 0 ? pf_error_prefix(r, "--user-data") : 0;
}

/* Renders a template (builtin or from --template-dir) with ctx; YAML output is checked. */
static int render(const PfPlanInput *in, const char *name, const char *override_path,
		  const PfTplCtx *ctx, PfTplMode mode, char **ret, size_t *ret_len)
{
	_cleanup_(freep) char *text = NULL, *origin = NULL;
	size_t len = 0;
	int r;

	if (override_path) {
		r = read_user_template(override_path, &text, &len);
		origin = strdup(override_path);
	} else
		r = pf_template_get(in->template_dir, name, &text, &len, &origin);
	if (r < 0)
		return r;
	r = pf_tpl_render(origin ? origin : name, text, len, ctx, mode, ret, ret_len);
	if (r < 0)
		return r;
	if (mode == PF_TPL_YAML) {
		r = pf_yaml_check(origin ? origin : name, *ret, *ret_len);
		if (r < 0) {
			free(*ret);
			*ret = NULL;
			return r;
		}
	}
	return 0;
}

int pf_plan_render(PfPlanCtx *c, const char *name, const char *override_path, PfTplMode mode,
		   char **ret, size_t *ret_len)
{
	return render(c->in, name, override_path, c->tpl, mode, ret, ret_len);
}

static int ctx_set(PfTplCtx *c, const char *key, const char *value)
{
	return value ? pf_tpl_set(c, key, value) : 0;
}

/* A name-based UUID (SHA-256 of the name, version 8 layout): stable across runs. */
static void name_uuid(const char *name, char out[37])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_Digest(name, strlen(name), md, &n, EVP_sha256(), NULL);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x80);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 md[0], md[1], md[2], md[3], md[4], md[5], md[6], md[7], md[8], md[9], md[10],
		 md[11], md[12], md[13], md[14], md[15]);
}

static void hex(const unsigned char *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

int pf_plan_instance_id_from_seed(const char *seed, const char *hostname, char **ret)
{
	unsigned char mac[32];
	size_t len = 0;
	char h[17];

	if (!EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, seed, strlen(seed),
		       (const unsigned char *)hostname, strlen(hostname), mac, sizeof(mac), &len) ||
	    len != sizeof(mac))
		return pf_error_set(-EIO, "cannot derive the instance-id (HMAC-SHA256 failed)");
	hex(mac, 8, h);
	if (asprintf(ret, "iid-piflash-%s-%s", hostname, h) < 0)
		return -ENOMEM;
	return 0;
}

int pf_plan_new_instance_id(const PfPlanInput *in, char **ret)
{
	unsigned char rnd[8];
	char h[17];

	if (in->instance_id) {
		*ret = strdup(in->instance_id);
		return *ret ? 0 : -ENOMEM;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return pf_error_set(-EIO, "no random bytes for the instance-id");
	hex(rnd, sizeof(rnd), h);
	return asprintf(ret, "iid-piflash-%s-%s", in->cfg->hostname, h) < 0 ? -ENOMEM : 0;
}

/* The 256-bit WPA key from a passphrase, as wpa_passphrase computes it. */
static int wifi_psk_hex(const char *ssid, const char *pass, char out[65])
{
	unsigned char key[32];

	if (strlen(pass) == 64) {
		snprintf(out, 65, "%s", pass); /* already the key */
		return 0;
	}
	if (PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), (const unsigned char *)ssid,
			      (int)strlen(ssid), 4096, EVP_sha1(), sizeof(key), key) != 1)
		return -EIO;
	hex(key, sizeof(key), out);
	explicit_bzero(key, sizeof(key));
	return 0;
}

typedef struct UserDefaults {
	const char *gecos;
	const char *groups;
	const char *shell;
} UserDefaults;

static UserDefaults user_defaults(PfFlavor f)
{
	switch (f) {
	case PF_FLAVOR_HYPRIOT:
		return (UserDefaults){ "HypriotOS", "users,docker,video", "/bin/bash" };
	case PF_FLAVOR_UBUNTU:
		return (UserDefaults){
			"Ubuntu",
			"adm,audio,cdrom,dialout,dip,floppy,lxd,netdev,plugdev,sudo,video",
			"/bin/bash"
		};
	default:
		return (UserDefaults){ "",
				       "adm,dialout,cdrom,sudo,audio,video,plugdev,games,users,"
				       "input,render,netdev,spi,i2c,gpio",
				       "/bin/bash" };
	}
}

/* Every variable piflash sets (for some node or other), in the built-in templates' names. */
static const char *const reserved_vars[] = {
	"hostname",	 "fqdn",
	"domain",	 "user",
	"gecos",	 "groups",
	"shell",	 "sudo",
	"lock_passwd",	 "password_hash",
	"ssh_pwauth",	 "has_keys",
	"keys",		 "key",
	"keys_toml",	 "timezone",
	"locale",	 "instance_id",
	"host_keys",	 "iface",
	"static",	 "address",
	"address_cidr",	 "gateway",
	"dns",		 "server",
	"has_dns",	 "dns_list",
	"dns_spaces",	 "dns_semicolons",
	"wifi",		 "wifi_ssid",
	"wifi_ssid_hex", "wifi_ssid_keyfile",
	"wifi_psk_hex",	 "wifi_country",
	"wifi_eni",	 "wifi_wpa_conf",
	"uuid",		 "board",
};

bool pf_plan_var_reserved(const char *key)
{
	for (size_t i = 0; i < ELEMENTSOF(reserved_vars); i++)
		if (strcasecmp(key, reserved_vars[i]) == 0)
			return true;
	return false;
}

/* The node's name and the account: user, gecos, groups, shell, sudo, the password. */
static int vars_account(PfTplCtx *ctx, const PfPlanInput *in, const char *user)
{
	const PfNodeConfig *c = in->cfg;
	UserDefaults ud = user_defaults(in->flavor->flavor);
	const PfCloudUser *cu = &in->flavor->cloud_user;
	/* The account as the image describes it (its seed or cloud.cfg), else the defaults. */
	bool same = cu->name && streq(cu->name, user);
	_cleanup_(freep) char *fqdn = NULL;
	int r = 0;

	r |= pf_tpl_set(ctx, "hostname", c->hostname);
	if (c->domain) {
		if (asprintf(&fqdn, "%s.%s", c->hostname, c->domain) < 0)
			return -ENOMEM;
		r |= pf_tpl_set(ctx, "fqdn", fqdn);
	}
	r |= pf_tpl_set(ctx, "user", user);
	r |= pf_tpl_set(ctx, "gecos", same && cu->gecos ? cu->gecos : ud.gecos);
	r |= pf_tpl_set(ctx, "groups", same && cu->groups ? cu->groups : ud.groups);
	r |= pf_tpl_set(ctx, "shell", same && cu->shell ? cu->shell : ud.shell);
	r |= pf_tpl_set(ctx, "sudo", same && cu->sudo ? cu->sudo : SUDO_ALL);
	r |= pf_tpl_set_raw(ctx, "lock_passwd", c->password_hash ? "false" : "true");
	if (c->password_hash)
		r |= pf_tpl_set(ctx, "password_hash",
				in->mask_secrets ? PF_PLAN_MASK : c->password_hash);
	/* Password login over SSH only with a password to log in with: never next to
	 * lock_passwd: true. */
	r |= pf_tpl_set_raw(ctx, "ssh_pwauth",
			    c->password_hash && (c->n_keys == 0 || c->ssh_password) ? "true"
										    : "false");
	return r < 0 ? -ENOMEM : 0;
}

/* Appends line to the TOML array of basic strings in *toml (quotes and backslashes escaped). */
static int toml_append(char **toml, size_t *toml_len, const char *line, bool first)
{
	for (const char *s = line; *s; s++) {
		char *n = realloc(*toml, *toml_len + 8);

		if (!n)
			return -ENOMEM;
		*toml = n;
		if (s == line)
			*toml_len += (size_t)sprintf(n + *toml_len, "%s\"", first ? "" : ", ");
		if (*s == '"' || *s == '\\')
			n[(*toml_len)++] = '\\';
		n[(*toml_len)++] = *s;
		if (!s[1])
			*toml_len += (size_t)sprintf(n + *toml_len, "\"");
		n[*toml_len] = 0;
	}
	return 0;
}

/* The SSH keys: a list "keys" of {key}, and keys_toml for custom.toml. */
static int vars_keys(PfTplCtx *ctx, const PfNodeConfig *c)
{
	_cleanup_(freep) char *toml = NULL;
	size_t toml_len = 0;
	int r = 0;

	r |= pf_tpl_set_bool(ctx, "has_keys", c->n_keys > 0);
	for (size_t i = 0; i < c->n_keys; i++) {
		_cleanup_(freep) char *line = pf_ssh_key_format(&c->keys[i]);
		PfTplCtx *item;

		if (!line)
			return -ENOMEM;
		r |= pf_tpl_list_append(ctx, "keys", &item);
		if (r < 0)
			return -ENOMEM;
		r |= pf_tpl_set(item, "key", line);
		if (toml_append(&toml, &toml_len, line, i == 0) < 0)
			return -ENOMEM;
	}
	if (toml)
		r |= pf_tpl_set_raw(ctx, "keys_toml", toml);
	return r < 0 ? -ENOMEM : 0;
}

/* Time zone, locale, the instance-id and whether host keys are written. */
static int vars_system(PfTplCtx *ctx, const PfPlanInput *in, const char *instance_id)
{
	int r = 0;

	r |= ctx_set(ctx, "timezone", in->cfg->timezone);
	r |= ctx_set(ctx, "locale", in->cfg->locale);
	r |= ctx_set(ctx, "instance_id", instance_id);
	r |= pf_tpl_set_bool(ctx, "host_keys", in->n_host_keys > 0);
	return r < 0 ? -ENOMEM : 0;
}

/* The interface, the static address and gateway, the DNS servers in the forms templates need. */
static int vars_address(PfTplCtx *ctx, const PfNodeConfig *c)
{
	char buf[256], addr[16], dnsbuf[8 * 17], dns_sp[8 * 17], dns_semi[8 * 17];
	int r = 0;

	r |= pf_tpl_set(ctx, "iface", pf_node_config_iface(c));
	r |= pf_tpl_set_bool(ctx, "static", c->static_ip);
	if (c->static_ip) {
		pf_ipv4_format(c->ip, addr);
		snprintf(buf, sizeof(buf), "%s/%u", addr, c->prefix);
		r |= pf_tpl_set(ctx, "address", addr);
		r |= pf_tpl_set(ctx, "address_cidr", buf);
		if (c->has_gateway) {
			pf_ipv4_format(c->gateway, addr);
			r |= pf_tpl_set(ctx, "gateway", addr);
		}
	}
	dnsbuf[0] = dns_sp[0] = dns_semi[0] = 0;
	for (size_t i = 0; i < c->n_dns; i++) {
		PfTplCtx *item;

		pf_ipv4_format(c->dns[i], addr);
		r |= pf_tpl_list_append(ctx, "dns", &item);
		if (r < 0)
			return -ENOMEM;
		r |= pf_tpl_set(item, "server", addr);
		snprintf(dnsbuf + strlen(dnsbuf), sizeof(dnsbuf) - strlen(dnsbuf), "%s%s",
			 i ? "," : "", addr);
		snprintf(dns_sp + strlen(dns_sp), sizeof(dns_sp) - strlen(dns_sp), "%s%s",
			 i ? " " : "", addr);
		snprintf(dns_semi + strlen(dns_semi), sizeof(dns_semi) - strlen(dns_semi), "%s%s",
			 i ? ";" : "", addr);
	}
	r |= pf_tpl_set_bool(ctx, "has_dns", c->n_dns > 0);
	if (c->n_dns) {
		r |= pf_tpl_set(ctx, "dns_list", dnsbuf);
		r |= pf_tpl_set(ctx, "dns_spaces", dns_sp);
		r |= pf_tpl_set(ctx, "dns_semicolons", dns_semi);
	}
	return r < 0 ? -ENOMEM : 0;
}

/* The SSID as a GKeyFile value: a backslash and leading/trailing spaces escaped. */
static void keyfile_escape(const char *ssid, char *out, size_t size)
{
	size_t k = 0;

	for (const char *s = ssid; *s && k + 3 < size; s++) {
		if (*s == '\\')
			out[k++] = '\\';
		if (*s == ' ' && (s == ssid || !s[1])) {
			out[k++] = '\\';
			out[k++] = 's';
			continue;
		}
		out[k++] = *s;
	}
	out[k] = 0;
}

/* The WiFi: SSID in the forms the stacks read, the key, the country. */
static int vars_wifi(PfTplCtx *ctx, const PfPlanInput *in)
{
	const PfNodeConfig *c = in->cfg;
	int r = 0;

	r |= pf_tpl_set_bool(ctx, "wifi", c->wifi_ssid != NULL);
	if (c->wifi_ssid) {
		char psk[65], ssid_hex[2 * 32 + 1], keyfile[4 * 32 + 1];

		if (wifi_psk_hex(c->wifi_ssid, c->wifi_psk ? c->wifi_psk : "", psk) < 0)
			return -EIO;
		hex((const unsigned char *)c->wifi_ssid, strlen(c->wifi_ssid), ssid_hex);
		keyfile_escape(c->wifi_ssid, keyfile, sizeof(keyfile));
		r |= pf_tpl_set(ctx, "wifi_ssid", c->wifi_ssid);
		r |= pf_tpl_set(ctx, "wifi_ssid_hex", ssid_hex);
		r |= pf_tpl_set(ctx, "wifi_ssid_keyfile", keyfile);
		r |= pf_tpl_set(ctx, "wifi_psk_hex", in->mask_secrets ? PF_PLAN_MASK : psk);
		r |= ctx_set(ctx, "wifi_country", c->wifi_country);
		explicit_bzero(psk, sizeof(psk));
	}
	/* cloud-init before 18 reads network-config version 1, which has no WiFi: the WiFi
	 * goes into user-data as files for ifupdown and wpa_supplicant (net-cloud-init.c). */
	r |= pf_tpl_set_bool(ctx, "wifi_eni",
			     c->wifi_ssid && in->flavor->net == PF_NET_CLOUD_INIT &&
				     in->flavor->network_config_version == 1);
	return r < 0 ? -ENOMEM : 0;
}

/* The operator's own variables (--set, inventory columns). */
static int vars_operator(PfTplCtx *ctx, const PfNodeConfig *c)
{
	int r = 0;

	for (size_t i = 0; i < c->n_vars; i++) {
		/* The operator's variables may not replace piflash's: a value that reaches a
		 * template unescaped, or a checked one, would no longer be what was checked. */
		if (pf_plan_var_reserved(c->vars[i].key))
			return pf_error_set(
				-EINVAL,
				"template variable '%s' (from --set or an inventory "
				"column) is one piflash sets itself; choose another name",
				c->vars[i].key);
		r |= pf_tpl_set(ctx, c->vars[i].key, c->vars[i].value);
	}
	return r < 0 ? -ENOMEM : 0;
}

/* A UUID named after the node and its interface: the same on every run. */
static int vars_uuid(PfTplCtx *ctx, const PfNodeConfig *c)
{
	char uuid[37], name[128];

	snprintf(name, sizeof(name), "piflash:%s:%s", c->hostname, pf_node_config_iface(c));
	name_uuid(name, uuid);
	return pf_tpl_set(ctx, "uuid", uuid);
}

/* wpa_supplicant.conf whole, for user-data's write_files (one YAML string): only where
 * cloud-init's network-config version 1 cannot carry the WiFi. */
static int vars_wpa_conf(PfTplCtx *ctx, const PfPlanInput *in)
{
	const PfFlavorInfo *f = in->flavor;
	_cleanup_(freep) char *wpa = NULL;
	size_t wpa_len = 0;
	int r;

	if (!in->cfg->wifi_ssid || f->net != PF_NET_CLOUD_INIT || f->network_config_version != 1)
		return 0;
	r = render(in, "wpa_supplicant.conf", NULL, ctx, PF_TPL_TEXT, &wpa, &wpa_len);
	if (r >= 0)
		r = pf_tpl_set(ctx, "wifi_wpa_conf", wpa);
	if (wpa)
		explicit_bzero(wpa, wpa_len);
	return r;
}

int pf_plan_vars(const PfPlanInput *in, const char *user, const char *instance_id, PfTplCtx **ret)
{
	_cleanup_(pf_tpl_ctx_freep) PfTplCtx *ctx = pf_tpl_ctx_new();
	int r;

	if (!ctx)
		return -ENOMEM;
	r = vars_account(ctx, in, user);
	if (r >= 0)
		r = vars_keys(ctx, in->cfg);
	if (r >= 0)
		r = vars_system(ctx, in, instance_id);
	if (r >= 0)
		r = vars_address(ctx, in->cfg);
	if (r >= 0)
		r = vars_wifi(ctx, in);
	if (r >= 0)
		r = vars_operator(ctx, in->cfg);
	if (r >= 0)
		r = vars_uuid(ctx, in->cfg);
	if (r >= 0)
		r = vars_wpa_conf(ctx, in);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(ctx);
	return 0;
}
