/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/config.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/macros.h"
#include "util/strutil.h"

#define PSK_FILE_MAX 256u

int pf_wifi_psk_load_file(const char *path, char **ret)
{
	char *text = NULL;
	size_t len;
	int r;

	r = pf_read_file_at(AT_FDCWD, path, PSK_FILE_MAX, &text, &len);
	if (r < 0)
		return r;
	if (len > 0 && text[len - 1] == '\n')
		text[--len] = 0;
	if (len > 0 && text[len - 1] == '\r')
		text[--len] = 0;
	if (memchr(text, 0, len))
		r = pf_error_set(-EINVAL, "WiFi passphrase has a NUL byte");
	else
		r = pf_wifi_psk_validate(text);
	if (r < 0) {
		explicit_bzero(text, len);
		free(text);
		return pf_error_prefix(r, "'%s'", path);
	}
	*ret = text;
	return 0;
}

/* ---- the settings --------------------------------------------------------------------------- */

static void free_secret(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void pf_node_config_done(PfNodeConfig *c)
{
	if (!c)
		return;
	free(c->hostname);
	free(c->domain);
	pf_ssh_keys_free(c->keys, c->n_keys);
	free(c->user);
	free_secret(&c->password_hash);
	free(c->iface);
	free(c->wifi_ssid);
	free_secret(&c->wifi_psk);
	free(c->wifi_country);
	free(c->timezone);
	free(c->locale);
	free(c->board);
	for (size_t i = 0; i < c->n_vars; i++) {
		free(c->vars[i].key);
		free(c->vars[i].value);
	}
	free(c->vars);
	*c = (PfNodeConfig){};
}

const char *pf_node_config_iface(const PfNodeConfig *c)
{
	return c->iface ? c->iface : "eth0";
}

const char *pf_node_config_var(const PfNodeConfig *c, const char *key)
{
	for (size_t i = 0; i < c->n_vars; i++)
		if (streq(c->vars[i].key, key))
			return c->vars[i].value;
	return NULL;
}

static int replace_str(char **field, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

static int set_var(PfNodeConfig *c, const char *key, const char *value)
{
	char *k, *v;
	PfVar *nv;
	int r;

	r = pf_var_key_validate(key);
	if (r < 0)
		return r;
	r = pf_var_value_validate(value);
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->n_vars; i++)
		if (streq(c->vars[i].key, key))
			return replace_str(&c->vars[i].value, value);
	if (c->n_vars >= PF_VARS_MAX)
		return pf_error_set(-E2BIG, "more than %u variables", PF_VARS_MAX);
	nv = realloc(c->vars, (c->n_vars + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	c->vars = nv;
	k = strdup(key);
	v = strdup(value);
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	c->vars[c->n_vars++] = (PfVar){ k, v };
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	if (streq(v, "yes") || streq(v, "true") || streq(v, "1")) {
		*ret = true;
		return 0;
	}
	if (streq(v, "no") || streq(v, "false") || streq(v, "0")) {
		*ret = false;
		return 0;
	}
	return pf_error_set(-EINVAL, "'%.16s' is not yes/no, true/false or 1/0", v);
}

static int parse_dns(const char *v, uint32_t dns[static PF_DNS_MAX], size_t *ret_n)
{
	size_t n = 0;
	const char *p = v;

	for (;;) {
		char one[16];
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		uint32_t a;
		int r;

		while (l > 0 && pf_is_blank(*p)) {
			p++;
			l--;
		}
		while (l > 0 && pf_is_blank(p[l - 1]))
			l--;
		if (l == 0)
			return pf_error_set(-EINVAL, "'%.128s' has an empty entry", v);
		if (l >= sizeof(one))
			return pf_error_set(-EINVAL, "'%.*s' is not an IPv4 address",
					    (int)MIN(l, 64), p);
		memcpy(one, p, l);
		one[l] = 0;
		r = pf_ipv4_parse(one, &a);
		if (r < 0)
			return r;
		r = pf_ipv4_host_check(a, one);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			if (dns[i] == a)
				return pf_error_set(-EINVAL, "%s is listed twice", one);
		if (n >= PF_DNS_MAX)
			return pf_error_set(-E2BIG, "more than %u servers", PF_DNS_MAX);
		dns[n++] = a;
		if (!comma)
			break;
		p = comma + 1;
	}
	*ret_n = n;
	return 0;
}

/* Joins base_dir and a relative path; returns a malloc'd path, or NULL on ENOMEM. */
static char *path_at(const char *base_dir, const char *path)
{
	char *s;

	if (path[0] == '/' || !base_dir || !*base_dir || streq(base_dir, "."))
		return strdup(path);
	if (asprintf(&s, "%s/%s", base_dir, path) < 0)
		return NULL;
	return s;
}

static int check_path(const char *v)
{
	if (v[0] == '~')
		return pf_error_set(-EINVAL,
				    "'%.128s': '~' is not expanded here; give an absolute path or "
				    "one relative to the file that names it",
				    v);
	return 0;
}

static int set_ssh_key(PfNodeConfig *c, const char *v, const char *base_dir)
{
	_cleanup_(freep) char *path = NULL;
	PfSshKey *keys = NULL;
	size_t n = 0;
	int r;

	if (pf_ssh_key_text_like(v))
		r = pf_ssh_keys_parse(v, strlen(v), "key text", &keys, &n);
	else {
		r = check_path(v);
		if (r < 0)
			return r;
		path = path_at(base_dir, v);
		if (!path)
			return -ENOMEM;
		/* A missing "file" that looks like a line of key material is not echoed. */
		if (pf_ssh_key_b64_like(v) && access(path, F_OK) < 0)
			return pf_error_set(
				-EINVAL, "neither a file nor a public key line (the value is not "
					 "shown: it looks like key material)");
		r = pf_ssh_keys_load_file(path, &keys, &n);
	}
	if (r < 0)
		return r;
	pf_ssh_keys_free(c->keys, c->n_keys);
	c->keys = keys;
	c->n_keys = n;
	return 0;
}

static int set_psk_file(PfNodeConfig *c, const char *v, const char *base_dir)
{
	_cleanup_(freep) char *path = NULL;
	char *psk = NULL;
	int r;

	r = check_path(v);
	if (r < 0)
		return r;
	path = path_at(base_dir, v);
	if (!path)
		return -ENOMEM;
	r = pf_wifi_psk_load_file(path, &psk);
	if (r < 0)
		return r;
	free_secret(&c->wifi_psk);
	c->wifi_psk = psk;
	return 0;
}

/* Validates and stores one string setting. */
static int set_checked(char **field, const char *v, int (*check)(const char *))
{
	int r = check(v);

	if (r < 0)
		return r;
	return replace_str(field, v);
}

static int set_password_hash(PfNodeConfig *c, const char *v, const char *base_dir)
{
	char *h;
	int r;

	r = pf_password_hash_validate(v);
	if (r < 0)
		return r;
	h = strdup(v);
	if (!h)
		return -ENOMEM;
	free_secret(&c->password_hash);
	c->password_hash = h;
	return 0;
}

static int set_ssh_password(PfNodeConfig *c, const char *v, const char *base_dir)
{
	return parse_bool(v, &c->ssh_password);
}

static int set_ip(PfNodeConfig *c, const char *v, const char *base_dir)
{
	uint32_t a;
	unsigned p;
	int r;

	if (streq(v, "dhcp")) {
		c->static_ip = false;
		c->ip = 0;
		c->prefix = 0;
		c->has_gateway = false;
		c->gateway = 0;
		return 0;
	}
	r = pf_ipv4_parse_cidr(v, &a, &p);
	if (r < 0)
		return r;
	c->static_ip = true;
	c->ip = a;
	c->prefix = p;
	return 0;
}

static int set_gateway(PfNodeConfig *c, const char *v, const char *base_dir)
{
	uint32_t a;
	int r;

	if (strchr(v, '/'))
		return pf_error_set(
			-EINVAL, "'%.64s': give the gateway as a plain address, without a prefix",
			v);
	r = pf_ipv4_parse(v, &a);
	if (r < 0)
		return r;
	r = pf_ipv4_host_check(a, v);
	if (r < 0)
		return r;
	c->gateway = a;
	c->has_gateway = true;
	return 0;
}

static int set_dns(PfNodeConfig *c, const char *v, const char *base_dir)
{
	uint32_t dns[PF_DNS_MAX] = {};
	size_t n = 0;
	int r;

	r = parse_dns(v, dns, &n);
	if (r < 0)
		return r;
	memcpy(c->dns, dns, sizeof(dns));
	c->n_dns = n;
	return 0;
}

/*
 * The settings pf_node_config_set_at() knows, in the order --help lists them: a string field
 * with its validator, or a setter of its own. self_named: the validator names its subject
 * ("hostname 'X' has ..."), so its messages need no "key: " in front.
 */
typedef struct Setting {
	const char *key;
	bool self_named;
	size_t field; /* offsetof() a char * of PfNodeConfig, with check */
	int (*check)(const char *v);
	int (*set)(PfNodeConfig *c, const char *v, const char *base_dir);
} Setting;

#define STR(k, f, chk)                                                                             \
	{                                                                                          \
		.key = k, .self_named = true, .field = offsetof(PfNodeConfig, f), .check = chk     \
	}
#define SET(k, named, fn)                                                                          \
	{                                                                                          \
		.key = k, .self_named = named, .set = fn                                           \
	}
static const Setting settings[] = {
	STR("hostname", hostname, pf_hostname_validate),
	STR("domain", domain, pf_domain_validate),
	SET("ip", false, set_ip),
	SET("gateway", false, set_gateway),
	SET("dns", false, set_dns),
	STR("iface", iface, pf_iface_validate),
	STR("user", user, pf_username_validate),
	SET("password_hash", true, set_password_hash),
	SET("ssh_password", false, set_ssh_password),
	SET("ssh_key", false, set_ssh_key),
	STR("board", board, pf_board_validate),
	STR("timezone", timezone, pf_timezone_validate),
	STR("locale", locale, pf_locale_validate),
	STR("wifi_ssid", wifi_ssid, pf_wifi_ssid_validate),
	STR("wifi_country", wifi_country, pf_wifi_country_validate),
	SET("wifi_psk_file", false, set_psk_file),
};
#undef STR
#undef SET

static const Setting *setting_find(const char *key)
{
	for (size_t i = 0; i < ELEMENTSOF(settings); i++)
		if (streq(settings[i].key, key))
			return &settings[i];
	return NULL;
}

const char *pf_node_config_key_suggest(const char *key)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, n = key ? strlen(key) : 0;

	if (!key)
		return NULL;
	for (size_t i = 0; i <= ELEMENTSOF(settings); i++) {
		const char *k = i < ELEMENTSOF(settings) ? settings[i].key : "group";
		size_t d = pf_edit_distance(key, k);

		if (d < best_d) {
			best_d = d;
			best = k;
		}
	}
	/* One typo in a short name, two or a third of the name in longer ones: close enough
	 * that the operator meant it, far enough that "role" does not become "user". */
	if (best_d <= MAX((size_t)1, MIN((size_t)2, n / 3)))
		return best;
	/* "sshkey" for "ssh_key", "wifissid" for "wifi_ssid": the same letters without '_'. */
	for (size_t i = 0; i < ELEMENTSOF(settings); i++) {
		char bare[PF_VAR_KEY_MAX + 1];
		size_t l = 0;

		for (const char *s = settings[i].key; *s; s++)
			if (*s != '_')
				bare[l++] = *s;
		bare[l] = 0;
		if (strcasecmp(bare, key) == 0)
			return settings[i].key;
	}
	return NULL;
}

int pf_node_config_key_check(const char *key)
{
	const char *hint;
	int r;

	r = pf_var_key_validate(key);
	if (r < 0)
		return r;
	if (setting_find(key) || streq(key, "group"))
		return 0;
	if (startswith(key, PF_VAR_PREFIX)) {
		if (!key[strlen(PF_VAR_PREFIX)])
			return pf_error_set(-EINVAL,
					    "'%s' names no variable: write the name after it "
					    "(" PF_VAR_PREFIX "rack)",
					    key);
		return 0;
	}
	if (streq(key, "wifi_psk") || streq(key, "password"))
		return pf_error_set(-EINVAL,
				    "secrets are not taken as values (they would show in shell "
				    "history and inventories): use %s",
				    streq(key, "wifi_psk")
					    ? "wifi_psk_file (a file holding the "
					      "passphrase)"
					    : "password_hash (`mkpasswd -m yescrypt`)");
	hint = pf_node_config_key_suggest(key);
	if (hint)
		return pf_error_set(-EINVAL, "unknown setting '%s' (did you mean %s?)", key, hint);
	return pf_error_set(
		-EINVAL, "unknown setting '%s' (a template variable is named " PF_VAR_PREFIX "%s)",
		key, key);
}

static int set_one(PfNodeConfig *c, const char *key, const char *v, const char *base_dir)
{
	const Setting *s;
	int r;

	r = pf_node_config_key_check(key);
	if (r < 0)
		return r;
	s = setting_find(key);
	/* Only variables may be empty. */
	if (!*v && s)
		return pf_error_set(-EINVAL, "empty value");
	if (!s)
		return set_var(c, key, v);
	if (s->set)
		return s->set(c, v, base_dir);
	return set_checked((char **)((char *)c + s->field), v, s->check);
}

int pf_node_config_set_at(PfNodeConfig *c, const char *key, const char *value, const char *origin,
			  const char *base_dir)
{
	int r;

	if (!origin)
		origin = "setting";
	if (!key || !value)
		return pf_error_set(-EINVAL, "%s: no key or value", origin);
	r = set_one(c, key, value, base_dir);
	if (r == -ENOMEM)
		return r;
	/* An option ("--ip") names the setting already, and so do the messages of the
	 * validators that name their subject ("hostname 'X' ..."): the key is said once. */
	if (r < 0 &&
	    (startswith(origin, "--") || (setting_find(key) && setting_find(key)->self_named) ||
	     pf_node_config_key_check(key) < 0))
		return pf_error_prefix(r, "%s", origin);
	if (r < 0)
		return pf_error_prefix(r, "%s: %.64s", origin, key);
	return 0;
}

int pf_node_config_set(PfNodeConfig *c, const char *key, const char *value, const char *origin)
{
	return pf_node_config_set_at(c, key, value, origin, NULL);
}

int pf_node_config_check_network(const PfNodeConfig *c)
{
	char ip[16], gw[16];
	uint32_t m;

	if (!c->has_gateway)
		return 0;
	pf_ipv4_format(c->gateway, gw);
	if (!c->static_ip)
		return pf_error_set(-EINVAL,
				    "gateway %s is given without a static address (ip); with DHCP "
				    "the DHCP server gives the gateway",
				    gw);
	pf_ipv4_format(c->ip, ip);
	m = pf_ipv4_netmask(c->prefix);
	if (c->gateway == c->ip)
		return pf_error_set(-EINVAL, "gateway %s is the node's own address", gw);
	if (!pf_ipv4_in_subnet(c->gateway, c->ip, c->prefix))
		return pf_error_set(-EINVAL, "gateway %s is outside the node's subnet %s/%u", gw,
				    ip, c->prefix);
	if (c->prefix <= 30 && ((c->gateway & ~m) == 0 || (c->gateway & ~m) == ~m))
		return pf_error_set(-EINVAL,
				    "gateway %s is the network or broadcast address of %s/%u", gw,
				    ip, c->prefix);
	return 0;
}

int pf_node_config_check(const PfNodeConfig *c)
{
	int r;

	if (!c->hostname)
		return pf_error_set(-EINVAL, "no hostname: give one (--hostname, or an inventory "
					     "row with --node)");
	if (c->domain && strlen(c->hostname) + 1 + strlen(c->domain) > 253)
		return pf_error_set(-EINVAL, "'%s.%s' is longer than 253 bytes", c->hostname,
				    c->domain);
	r = pf_node_config_check_network(c);
	if (r < 0)
		return r;
	if (c->wifi_ssid && !c->wifi_psk)
		return pf_error_set(-EINVAL,
				    "WiFi SSID '%s' has no passphrase (wifi_psk_file); open "
				    "networks are not configured",
				    c->wifi_ssid);
	if (c->wifi_ssid && !c->wifi_country)
		return pf_error_set(-EINVAL,
				    "WiFi SSID '%s' has no country (wifi_country): the radio stays "
				    "off without a regulatory domain",
				    c->wifi_ssid);
	if (c->wifi_psk && !c->wifi_ssid)
		return pf_error_set(-EINVAL,
				    "a WiFi passphrase is given without an SSID (wifi_ssid)");
	/* Password login over SSH with a locked password is a contradiction, not a choice. */
	if (c->ssh_password && !c->password_hash)
		return pf_error_set(
			-EINVAL, "SSH password login (--ssh-password, ssh_password) is asked for, "
				 "but no password is set: give --password-hash HASH");
	if (c->no_login && (c->n_keys > 0 || c->password_hash))
		return pf_error_set(-EINVAL,
				    "--no-login asks for a node nobody can log into, but %s given",
				    c->n_keys > 0 ? "an SSH key is" : "a password hash is");
	return 0;
}
