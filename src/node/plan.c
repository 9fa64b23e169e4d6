/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "node/edit.h"
#include "node/handler.h"
#include "node/units.h"
#include "node/passwd.h"
#include "node/plan.h"
#include "node/template.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

#define MASK "********"
#define TEXT_MAX_BYTES (1024u * 1024u)
#define TEMPLATE_MAX_BYTES (256u * 1024u)
#define SUDO_ALL "ALL=(ALL) NOPASSWD:ALL"

const char *pf_op_kind_name(PfOpKind k)
{
	static const char *const names[] = {
		[PF_OP_WRITE] = "write",
		[PF_OP_MKDIR] = "mkdir",
		[PF_OP_SYMLINK] = "symlink",
		[PF_OP_REMOVE] = "remove",
	};

	return k <= PF_OP_REMOVE ? names[k] : "?";
}

PfPlan *pf_plan_free(PfPlan *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_ops; i++) {
		PfOp *op = &p->ops[i];

		free(op->path);
		if (op->data && op->secret)
			explicit_bzero(op->data, op->size);
		free(op->data);
		free(op->target);
		free(op->why);
	}
	for (size_t i = 0; i < p->n_notes; i++)
		free(p->notes[i]);
	free(p->notes);
	free(p->ops);
	free(p->instance_id);
	free(p->user);
	free(p);
	return NULL;
}

static PfOp *add_op(PfPlan *p, PfOpKind kind, unsigned part, const char *path, const char *why)
{
	PfOp *ops = reallocarray(p->ops, p->n_ops + 1, sizeof(PfOp));
	PfOp *op;

	if (!ops)
		return NULL;
	p->ops = ops;
	op = &ops[p->n_ops];
	*op = (PfOp){ .kind = kind, .part = part, .mode = 0644 };
	op->path = strdup(path);
	op->why = strdup(why);
	if (!op->path || !op->why) {
		free(op->path);
		free(op->why);
		return NULL;
	}
	p->n_ops++;
	return op;
}

int pf_plan_add_write(PfPlan *p, unsigned part, const char *path, const char *data, size_t size,
		      mode_t mode, uid_t uid, gid_t gid, bool secret, const char *why)
{
	PfOp *op = add_op(p, PF_OP_WRITE, part, path, why);

	if (!op)
		return -ENOMEM;
	op->data = malloc(size + 1);
	if (!op->data)
		return -ENOMEM;
	memcpy(op->data, data, size);
	op->data[size] = 0;
	op->size = size;
	op->mode = mode;
	op->uid = uid;
	op->gid = gid;
	op->secret = secret;
	return 0;
}

int pf_plan_add_simple(PfPlan *p, PfOpKind kind, unsigned part, const char *path,
		       const char *target, mode_t mode, uid_t uid, gid_t gid, const char *why)
{
	PfOp *op = add_op(p, kind, part, path, why);

	if (!op)
		return -ENOMEM;
	op->mode = mode;
	op->uid = uid;
	op->gid = gid;
	if (target) {
		op->target = strdup(target);
		if (!op->target)
			return -ENOMEM;
	}
	return 0;
}

int pf_plan_add_note(PfPlan *p, const char *fmt, ...)
{
	char **n = reallocarray(p->notes, p->n_notes + 1, sizeof(char *));
	va_list ap;
	int r;

	if (!n)
		return -ENOMEM;
	p->notes = n;
	va_start(ap, fmt);
	r = vasprintf(&p->notes[p->n_notes], fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	p->n_notes++;
	return 0;
}

int pf_plan_read_text(PfTree *tree, const char *path, char **ret, size_t *ret_len)
{
	int r;

	*ret = NULL;
	*ret_len = 0;
	r = pf_tree_read_file(tree, path, TEXT_MAX_BYTES, ret, ret_len);
	if (r == -ENOENT) {
		pf_error_clear();
		return 0;
	}
	if (r < 0)
		return pf_error_prefix(r, "cannot read '%s'", path);
	return 0;
}

static int stat_path(PfTree *tree, unsigned part_no, const PfPtable *t, const char *path,
		     bool follow, PfStat *ret);
int pf_plan_stat(PfTree *tree, const PfPtable *t, const char *path, PfStat *ret)
{
	return stat_path(tree, 0, t, path, true, ret);
}

static int stat_path(PfTree *tree, unsigned part_no, const PfPtable *t, const char *path,
		     bool follow, PfStat *ret)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part = NULL, *where;
	PfFs *fs;
	int r;

	if (part_no) {
		char num[16];

		snprintf(num, sizeof(num), "%u", part_no);
		part = pf_ptable_find(t, num);
		if (!part)
			return -ENOENT;
	}
	r = pf_tree_resolve(tree, part, path, follow, &where, &inner);
	if (r < 0)
		return r;
	r = pf_tree_fs(tree, where, &fs);
	if (r < 0)
		return r;
	return pf_fs_stat(fs, inner, ret);
}

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

/* Everything templates may use, from the settings. */
static int build_ctx(const PfPlanInput *in, const char *user, const char *instance_id,
		     PfTplCtx **ret)
{
	const PfNodeConfig *c = in->cfg;
	_cleanup_(pf_tpl_ctx_freep) PfTplCtx *ctx = pf_tpl_ctx_new();
	UserDefaults ud = user_defaults(in->flavor->flavor);
	const PfCloudUser *cu = &in->flavor->cloud_user;
	/* The account as the image describes it (its seed or cloud.cfg), else the defaults. */
	bool same = cu->name && streq(cu->name, user);
	char buf[256], addr[16], dnsbuf[8 * 17], dns_sp[8 * 17], dns_semi[8 * 17];
	_cleanup_(freep) char *fqdn = NULL, *toml = NULL;
	size_t toml_len = 0;
	int r = 0;

	if (!ctx)
		return -ENOMEM;
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
		r |= pf_tpl_set(ctx, "password_hash", in->mask_secrets ? MASK : c->password_hash);
	/* Password login over SSH only with a password to log in with: never next to
	 * lock_passwd: true. */
	r |= pf_tpl_set_raw(ctx, "ssh_pwauth",
			    c->password_hash && (c->n_keys == 0 || c->ssh_password) ? "true"
										    : "false");
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

		/* A TOML array of basic strings: quotes and backslashes escaped. */
		for (const char *s = line; *s; s++) {
			char *n = realloc(toml, toml_len + 8);
			if (!n)
				return -ENOMEM;
			toml = n;
			if (s == line)
				toml_len += (size_t)sprintf(toml + toml_len, "%s\"", i ? ", " : "");
			if (*s == '"' || *s == '\\')
				toml[toml_len++] = '\\';
			toml[toml_len++] = *s;
			if (!s[1])
				toml_len += (size_t)sprintf(toml + toml_len, "\"");
			toml[toml_len] = 0;
		}
	}
	if (toml)
		r |= pf_tpl_set_raw(ctx, "keys_toml", toml);
	r |= ctx_set(ctx, "timezone", c->timezone);
	r |= ctx_set(ctx, "locale", c->locale);
	r |= ctx_set(ctx, "instance_id", instance_id);
	r |= pf_tpl_set_bool(ctx, "host_keys", in->n_host_keys > 0);
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

	r |= pf_tpl_set_bool(ctx, "wifi", c->wifi_ssid != NULL);
	if (c->wifi_ssid) {
		char psk[65], ssid_hex[2 * 32 + 1], keyfile[4 * 32 + 1];
		size_t k = 0;

		if (wifi_psk_hex(c->wifi_ssid, c->wifi_psk ? c->wifi_psk : "", psk) < 0)
			return -EIO;
		hex((const unsigned char *)c->wifi_ssid, strlen(c->wifi_ssid), ssid_hex);
		/* GKeyFile escapes: a backslash and leading/trailing spaces. */
		for (const char *s = c->wifi_ssid; *s && k + 3 < sizeof(keyfile); s++) {
			if (*s == '\\')
				keyfile[k++] = '\\';
			if (*s == ' ' && (s == c->wifi_ssid || !s[1])) {
				keyfile[k++] = '\\';
				keyfile[k++] = 's';
				continue;
			}
			keyfile[k++] = *s;
		}
		keyfile[k] = 0;
		r |= pf_tpl_set(ctx, "wifi_ssid", c->wifi_ssid);
		r |= pf_tpl_set(ctx, "wifi_ssid_hex", ssid_hex);
		r |= pf_tpl_set(ctx, "wifi_ssid_keyfile", keyfile);
		r |= pf_tpl_set(ctx, "wifi_psk_hex", in->mask_secrets ? MASK : psk);
		r |= ctx_set(ctx, "wifi_country", c->wifi_country);
		explicit_bzero(psk, sizeof(psk));
	}
	/* cloud-init before 18 reads network-config version 1, which has no WiFi: the WiFi
	 * goes into user-data as files for ifupdown and wpa_supplicant (net-cloud-init.c). */
	r |= pf_tpl_set_bool(ctx, "wifi_eni",
			     c->wifi_ssid && in->flavor->net == PF_NET_CLOUD_INIT &&
				     in->flavor->network_config_version == 1);
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
	if (r < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(ctx);
	return 0;
}

/* ---- shared by the handlers ---- */

int pf_plan_render(PfPlanCtx *c, const char *name, const char *override_path, PfTplMode mode,
		   char **ret, size_t *ret_len)
{
	return render(c->in, name, override_path, c->tpl, mode, ret, ret_len);
}

int pf_plan_write_rendered(PfPlanCtx *c, const char *tmpl, PfTplMode mode, unsigned part,
			   const char *path, mode_t m, bool secret, const char *why)
{
	_cleanup_(freep) char *text = NULL;
	size_t len = 0;
	int r;

	r = pf_plan_render(c, tmpl, NULL, mode, &text, &len);
	if (r < 0)
		return r;
	r = pf_plan_add_write(c->plan, part, path, text, len, m, 0, 0, secret, why);
	if (secret && text)
		explicit_bzero(text, len);
	return r;
}

int pf_plan_marked_block(PfPlanCtx *c, const char *tmpl, const char *path, const char *why)
{
	_cleanup_(freep) char *old = NULL, *block = NULL, *edited = NULL;
	size_t len = 0, blen = 0, elen = 0;
	int r;

	r = pf_plan_read_text(c->tree, path, &old, &len);
	if (r < 0)
		return r;
	r = pf_plan_render(c, tmpl, NULL, PF_TPL_TEXT, &block, &blen);
	if (r < 0)
		return r;
	r = pf_edit_replace_block(old ? old : "", len, block, &edited, &elen);
	if (r < 0)
		return pf_error_prefix(r, "%s", path);
	return pf_plan_add_write(c->plan, 0, path, edited, elen, 0644, 0, 0, false, why);
}

int pf_plan_enable_unit(PfPlanCtx *c, const char *unit, const char *why)
{
	const PfUnit *u = pf_flavor_unit(c->f, unit);
	_cleanup_(freep) char *text = NULL;
	_cleanup_(pf_strv_freep) char **links = NULL;
	size_t len = 0;
	int r;

	if (u->state == PF_UNIT_ENABLED)
		return 0;
	if (u->state == PF_UNIT_MASKED)
		return pf_error_set(-EPERM,
				    "%s is masked in the image (%s); piflash does not unmask it",
				    unit, u->link);
	if (!u->file)
		return pf_error_set(-ENOENT, "the image has no unit file for %s", unit);
	r = pf_plan_read_text(c->tree, u->file, &text, &len);
	if (r < 0)
		return r;
	if (!text)
		return pf_error_set(-ENOENT, "cannot read the unit file '%s'", u->file);
	r = pf_unit_enable_links(unit, text, &links);
	if (r < 0)
		return r;
	for (size_t i = 0; links[i]; i++) {
		r = pf_plan_add_simple(c->plan, PF_OP_SYMLINK, 0, links[i], u->file, 0777, 0, 0,
				       why);
		if (r < 0)
			return r;
	}
	return pf_plan_add_note(c->plan, "%s is enabled (%s)", unit, why);
}

int pf_plan_login_check(PfPlanCtx *c, const char *what)
{
	const PfNodeConfig *cfg = c->cfg;

	if (cfg->n_keys > 0 || cfg->password_hash)
		return 0;
	if (cfg->no_login)
		return pf_plan_add_note(c->plan,
					"--no-login: '%s' gets no SSH key and a locked password; "
					"nobody can log into this node",
					c->user);
	return pf_error_set(-EPERM,
			    "nobody could log into this node: %s, and neither an SSH key nor a "
			    "password hash is given; give --ssh-key FILE or --password-hash HASH "
			    "(an inventory's ssh_key or password_hash), or --no-login to mean it",
			    what);
}

/* ~user/.ssh/authorized_keys, owned as the image's passwd and group say. */
int pf_plan_keys(PfPlanCtx *ctx, const PfPasswdEntry *u)
{
	const PfNodeConfig *c = ctx->cfg;
	PfPlan *p = ctx->plan;
	_cleanup_(freep) char *dir = NULL, *file = NULL, *text = NULL;
	size_t len = 0;

	if (c->n_keys == 0)
		return 0;
	if (asprintf(&dir, "%s/.ssh", u->home) < 0 ||
	    asprintf(&file, "%s/.ssh/authorized_keys", u->home) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_keys; i++) {
		_cleanup_(freep) char *line = pf_ssh_key_format(&c->keys[i]);
		char *n;

		if (!line)
			return -ENOMEM;
		n = realloc(text, len + strlen(line) + 2);
		if (!n)
			return -ENOMEM;
		text = n;
		len += (size_t)sprintf(text + len, "%s\n", line);
	}
	if (pf_plan_add_simple(p, PF_OP_MKDIR, 0, dir, NULL, 0700, u->uid, u->gid,
			       "sshd wants the directory private to the user") < 0)
		return -ENOMEM;
	return pf_plan_add_write(p, 0, file, text, len, 0600, u->uid, u->gid, false,
				 "the operator's keys; owner from the image's /etc/passwd");
}

int pf_plan_wifi_country_cmdline(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *cmd = NULL, *edited = NULL;
	size_t len = 0, elen = 0;
	char path[PF_PATH_MAX];
	int r;

	/* The regulatory domain as a kernel argument, where the boot partition has cmdline.txt. */
	if (!f->boot || !f->cmdline)
		return 0;
	snprintf(path, sizeof(path), "%s/cmdline.txt",
		 f->boot_mount ? f->boot_mount : "/boot/firmware");
	r = pf_plan_read_text(c->tree, path, &cmd, &len);
	if (r < 0)
		return r;
	r = pf_edit_cmdline(cmd ? cmd : f->cmdline, cmd ? len : strlen(f->cmdline),
			    "cfg80211.ieee80211_regdom", c->cfg->wifi_country, &edited, &elen);
	if (r < 0)
		return r;
	return pf_plan_add_write(c->plan, f->boot->number, "/cmdline.txt", edited, elen, 0644, 0, 0,
				 false, "the WiFi country is a kernel argument");
}

int pf_plan_resolv_conf(PfPlanCtx *c, const char *why)
{
	_cleanup_(freep) char *text = NULL;
	char addr[16];
	size_t len = 0;
	PfStat st;
	FILE *m;
	int r;

	if (!c->cfg->static_ip || c->cfg->n_dns == 0)
		return 0;
	/* A link means something manages the file (resolved's stub, resolvconf): leave it. */
	r = pf_tree_stat(c->tree, "/etc/resolv.conf", false, NULL, NULL, &st);
	if (r >= 0 && S_ISLNK(st.mode))
		return pf_plan_add_note(c->plan,
					"/etc/resolv.conf is a link: the DNS servers reach it "
					"through what manages it");
	pf_error_clear();
	m = open_memstream(&text, &len);
	if (!m)
		return -ENOMEM;
	fprintf(m, "# Written by piflash for %s.\n", c->cfg->hostname);
	for (size_t i = 0; i < c->cfg->n_dns; i++) {
		pf_ipv4_format(c->cfg->dns[i], addr);
		fprintf(m, "nameserver %s\n", addr);
	}
	if (fclose(m) != 0)
		return -ENOMEM;
	return pf_plan_add_write(c->plan, 0, "/etc/resolv.conf", text, len, 0644, 0, 0, false, why);
}

/* ---- composing the plan from the mechanisms ---- */

static const PfHandler *const net_handlers[_PF_NET_MAX] = {
	[PF_NET_CLOUD_INIT] = &pf_handler_net_cloud_init,
	[PF_NET_NETWORKMANAGER] = &pf_handler_net_networkmanager,
	[PF_NET_DHCPCD] = &pf_handler_net_dhcpcd,
	[PF_NET_NETWORKD] = &pf_handler_net_networkd,
	[PF_NET_IFUPDOWN] = &pf_handler_net_ifupdown,
	[PF_NET_NETPLAN] = &pf_handler_net_netplan,
};

static const PfHandler *const user_handlers[_PF_USER_WAY_MAX] = {
	[PF_USER_PASSWD] = &pf_handler_user_passwd,
	[PF_USER_CLOUD_INIT] = &pf_handler_seed, /* users: in the seed's user-data */
	[PF_USER_CUSTOM_TOML] = &pf_handler_user_custom_toml,
	[PF_USER_USERCONF] = &pf_handler_user_userconf,
};

static const PfHandler *const ssh_handlers[_PF_SSH_WAY_MAX] = {
	[PF_SSH_SWITCH] = &pf_handler_ssh_switch,
	[PF_SSH_ENABLE_UNIT] = &pf_handler_ssh_enable_unit,
};

const char *pf_plan_net_handler(const PfFlavorInfo *f)
{
	return net_handlers[f->net] ? net_handlers[f->net]->name : "none";
}

/* The user the keys go to: --user, the image's default, or the name a first boot will give. */
static int pick_user(const PfPlanInput *in, const char **ret_user)
{
	const PfFlavorInfo *f = in->flavor;

	if (in->cfg->user) {
		*ret_user = in->cfg->user;
		return 0;
	}
	if (f->default_user) {
		*ret_user = f->default_user;
		return 0;
	}
	if (f->user == PF_USER_CUSTOM_TOML || f->user == PF_USER_USERCONF) {
		*ret_user = "pi";
		return 1;
	}
	return pf_error_set(-ENOENT, "the image has no default user (%s)%s; name one with --user",
			    f->user_why ? f->user_why : "",
			    f->n_users > 1 ? ", and several regular users" : "");
}

static int new_instance_id(const PfPlanInput *in, char **ret)
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

static int run(PfPlanCtx *c, const PfHandler *h)
{
	int r = h->plan(c);

	if (r < 0 && r != -ENOMEM)
		return pf_error_prefix(r, "%s", h->name);
	return r;
}

static int plan_network(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	const char *iface = pf_node_config_iface(c->cfg);
	int r;

	if (f->net == PF_NET_NONE) {
		if (!c->cfg->static_ip && !c->cfg->wifi_ssid)
			return 0;
		return pf_error_set(-EOPNOTSUPP,
				    "%s: %s; name the service that brings up %s with --network "
				    "cloud-init|netplan|ifupdown|networkmanager|networkd|dhcpcd",
				    c->cfg->static_ip ? "--ip" : "WiFi", f->net_why, iface);
	}
	r = run(c, net_handlers[f->net]);
	if (r < 0)
		return r;
	/* --network: the unit mechanism.c named must run at boot. */
	if (f->net_enable_unit)
		r = pf_plan_enable_unit(c, f->net_enable_unit,
					"--network: the service must run at boot");
	return r;
}

static int plan_ssh(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;

	switch (f->ssh) {
	case PF_SSH_MASKED:
		return pf_error_set(-EPERM,
				    "SSH: %s; the node could not be reached, and piflash does not "
				    "unmask what the image masked",
				    f->ssh_why);
	case PF_SSH_NO_SERVER:
		return pf_plan_add_note(c->plan, "the image has no SSH server: %s", f->ssh_why);
	default:
		return ssh_handlers[f->ssh] ? run(c, ssh_handlers[f->ssh]) : 0;
	}
}

int pf_plan_build(PfTree *tree, const PfPtable *t, const PfPlanInput *in, PfPlan **ret)
{
	_cleanup_(pf_plan_freep) PfPlan *p = calloc(1, sizeof(PfPlan));
	_cleanup_(pf_tpl_ctx_freep) PfTplCtx *tpl = NULL;
	_cleanup_(pf_passwd_freep) PfPasswd *pw = NULL;
	const PfFlavorInfo *f = in->flavor;
	bool cloud = f->user == PF_USER_CLOUD_INIT;
	const char *user = NULL;
	PfPlanCtx c;
	char uuid[37], name[128];
	int r;

	if (!p)
		return -ENOMEM;
	/* Only cloud-init reads user-data: elsewhere the file would be dropped unsaid. */
	if (in->user_data_path && !cloud)
		return pf_error_set(-EOPNOTSUPP,
				    "--user-data '%s': nothing on this image reads user-data (the "
				    "user is made by %s: %s)",
				    in->user_data_path, pf_user_way_name(f->user),
				    f->user_why ? f->user_why : "no cloud-init seed");
	r = pick_user(in, &user);
	if (r < 0)
		return r;
	if (r > 0 && pf_plan_add_note(p,
				      "the image has no default user: the first user is named '%s' "
				      "(choose another with --user)",
				      user) < 0)
		return -ENOMEM;
	p->user = strdup(user);
	if (!p->user)
		return -ENOMEM;
	if (cloud && new_instance_id(in, &p->instance_id) < 0)
		return -ENOMEM;

	r = build_ctx(in, user, p->instance_id, &tpl);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "piflash:%s:%s", in->cfg->hostname,
		 pf_node_config_iface(in->cfg));
	name_uuid(name, uuid);
	r = pf_tpl_set(tpl, "uuid", uuid);
	if (r < 0)
		return r;
	if (in->cfg->wifi_ssid && f->net == PF_NET_CLOUD_INIT && f->network_config_version == 1) {
		_cleanup_(freep) char *wpa = NULL;
		size_t wpa_len = 0;

		/* wpa_supplicant.conf whole, for user-data's write_files: one YAML string. */
		r = render(in, "wpa_supplicant.conf", NULL, tpl, PF_TPL_TEXT, &wpa, &wpa_len);
		if (r >= 0)
			r = pf_tpl_set(tpl, "wifi_wpa_conf", wpa);
		if (wpa)
			explicit_bzero(wpa, wpa_len);
		if (r < 0)
			return r;
	}
	r = pf_passwd_load(tree, &pw);
	if (r == -ENOENT)
		pf_error_clear(); /* cloud-init or a first boot makes the user */
	else if (r < 0)
		return r;

	c = (PfPlanCtx){ .plan = p,
			 .tree = tree,
			 .t = t,
			 .in = in,
			 .cfg = in->cfg,
			 .f = f,
			 .tpl = tpl,
			 .user = user,
			 .pw = pw,
			 .pw_user = pw ? pf_passwd_find(pw, user) : NULL };
	p->mech_net = pf_plan_net_handler(f);
	p->mech_user = pf_user_way_name(f->user);
	p->mech_ssh = pf_ssh_way_name(f->ssh);

	r = run(&c, &pf_handler_hostname);
	if (r >= 0)
		r = run(&c, user_handlers[f->user]);
	if (r >= 0)
		r = plan_network(&c);
	if (r >= 0)
		r = plan_ssh(&c);
	if (r >= 0 && !cloud)
		r = run(&c, &pf_handler_locale);
	if (r >= 0)
		r = run(&c, &pf_handler_identity);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(p);
	return 0;
}

int pf_plan_op_resolve(PfTree *tree, const PfPtable *t, const PfOp *op, PfFs **ret_fs,
		       char **ret_inner)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part = NULL, *where;
	int r;

	if (op->part) {
		char num[16];

		snprintf(num, sizeof(num), "%u", op->part);
		part = pf_ptable_find(t, num);
		if (!part)
			return -ENOENT;
	}
	r = pf_tree_resolve(tree, part, op->path, op->kind == PF_OP_WRITE, &where, &inner);
	if (r < 0)
		return r;
	r = pf_tree_fs(tree, where, ret_fs);
	if (r < 0)
		return r;
	*ret_inner = TAKE_PTR(inner);
	return 0;
}

static int apply_one(PfTree *tree, const PfPtable *t, const PfOp *op, int64_t now)
{
	_cleanup_(freep) char *inner = NULL;
	PfAttr attr = { .mode = op->mode, .uid = op->uid, .gid = op->gid, .mtime = now };
	PfAttr dir_attr = { .mode = 0755, .mtime = now };
	PfStat st;
	char *slash;
	PfFs *fs;
	int r;

	r = pf_plan_op_resolve(tree, t, op, &fs, &inner);
	if (r < 0)
		return r;

	/* Parents are made as root-owned 0755 directories, as a package would. */
	slash = strrchr(inner, '/');
	if (slash && slash != inner && op->kind != PF_OP_REMOVE) {
		*slash = 0;
		r = pf_fs_mkdir_p(fs, inner, &dir_attr);
		*slash = '/';
		if (r < 0)
			return r;
	}

	switch (op->kind) {
	case PF_OP_WRITE:
		return pf_fs_write_file(fs, inner, op->data, op->size, &attr);
	case PF_OP_MKDIR:
		r = pf_fs_stat(fs, inner, &st);
		if (r >= 0)
			return S_ISDIR(st.mode)
				       ? 0
				       : pf_error_set(-ENOTDIR, "exists and is not a directory");
		return r == -ENOENT ? pf_fs_mkdir(fs, inner, &attr) : r;
	case PF_OP_SYMLINK:
		r = pf_fs_stat(fs, inner, &st);
		if (r >= 0)
			r = pf_fs_remove(fs, inner);
		else if (r == -ENOENT)
			r = 0;
		pf_error_clear();
		return r < 0 ? r : pf_fs_symlink(fs, inner, op->target, &attr);
	case PF_OP_REMOVE:
		r = pf_fs_remove(fs, inner);
		if (r == -ENOENT) {
			pf_error_clear();
			return 0;
		}
		return r;
	}
	return -EINVAL;
}

int pf_plan_apply(PfTree *tree, const PfPtable *t, const PfPlan *p, int64_t now)
{
	for (size_t i = 0; i < p->n_ops; i++) {
		const PfOp *op = &p->ops[i];
		int r = apply_one(tree, t, op, now);

		if (r < 0) {
			if (op->part)
				return pf_error_prefix(r, "%s partition %u:%s",
						       pf_op_kind_name(op->kind), op->part,
						       op->path);
			return pf_error_prefix(r, "%s %s", pf_op_kind_name(op->kind), op->path);
		}
	}
	return 0;
}

static bool is_text(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (d[i] == 0 || (d[i] < 0x20 && d[i] != '\n' && d[i] != '\t' && d[i] != '\r'))
			return false;
	return true;
}

json_object *pf_plan_to_json(const PfPlan *p)
{
	json_object *root = json_object_new_object(), *ops = json_object_new_array(),
		    *notes = json_object_new_array();

	for (size_t i = 0; i < p->n_ops; i++) {
		const PfOp *op = &p->ops[i];
		json_object *o = json_object_new_object();
		char mode[8];

		json_object_object_add(o, "op", json_object_new_string(pf_op_kind_name(op->kind)));
		json_object_object_add(o, "partition",
				       op->part ? json_object_new_int((int)op->part) : NULL);
		json_object_object_add(o, "path", json_object_new_string(op->path));
		if (op->kind == PF_OP_WRITE || op->kind == PF_OP_MKDIR) {
			snprintf(mode, sizeof(mode), "%04o", (unsigned)op->mode);
			json_object_object_add(o, "mode", json_object_new_string(mode));
			json_object_object_add(o, "uid", json_object_new_int64(op->uid));
			json_object_object_add(o, "gid", json_object_new_int64(op->gid));
		}
		if (op->kind == PF_OP_WRITE) {
			json_object_object_add(o, "size", json_object_new_uint64(op->size));
			json_object_object_add(o, "secret", json_object_new_boolean(op->secret));
			if (!op->secret && is_text(op->data, op->size))
				json_object_object_add(
					o, "content",
					json_object_new_string_len((const char *)op->data,
								   (int)op->size));
		}
		if (op->kind == PF_OP_SYMLINK)
			json_object_object_add(o, "target", json_object_new_string(op->target));
		json_object_object_add(o, "why", json_object_new_string(op->why));
		json_object_array_add(ops, o);
	}
	for (size_t i = 0; i < p->n_notes; i++)
		json_object_array_add(notes, json_object_new_string(p->notes[i]));
	json_object_object_add(root, "user", json_object_new_string(p->user));
	json_object_object_add(root, "instance_id",
			       p->instance_id ? json_object_new_string(p->instance_id) : NULL);
	{
		json_object *m = json_object_new_object();

		json_object_object_add(m, "network",
				       p->mech_net ? json_object_new_string(p->mech_net) : NULL);
		json_object_object_add(m, "user",
				       p->mech_user ? json_object_new_string(p->mech_user) : NULL);
		json_object_object_add(m, "ssh",
				       p->mech_ssh ? json_object_new_string(p->mech_ssh) : NULL);
		json_object_object_add(root, "mechanisms", m);
	}
	json_object_object_add(root, "operations", ops);
	json_object_object_add(root, "notes", notes);
	return root;
}
