/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "node/edit.h"
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

static int add_write(PfPlan *p, unsigned part, const char *path, const char *data, size_t size,
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

static int add_simple(PfPlan *p, PfOpKind kind, unsigned part, const char *path, const char *target,
		      mode_t mode, uid_t uid, gid_t gid, const char *why)
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

static int add_note(PfPlan *p, const char *fmt, ...) _printf_(2, 3);
static int add_note(PfPlan *p, const char *fmt, ...)
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

/* Reads a text file of the image (the booted view); *ret NULL with 0 if it does not exist. */
static int read_text(PfTree *tree, const char *path, char **ret, size_t *ret_len)
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

/* Everything templates may use, from the settings. */
static int build_ctx(const PfPlanInput *in, const char *user, const char *instance_id,
		     PfTplCtx **ret)
{
	const PfNodeConfig *c = in->cfg;
	_cleanup_(pf_tpl_ctx_freep) PfTplCtx *ctx = pf_tpl_ctx_new();
	UserDefaults ud = user_defaults(in->flavor->flavor);
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
	r |= pf_tpl_set(ctx, "gecos", ud.gecos);
	r |= pf_tpl_set(ctx, "groups", ud.groups);
	r |= pf_tpl_set(ctx, "shell", ud.shell);
	r |= pf_tpl_set(ctx, "sudo", SUDO_ALL);
	r |= pf_tpl_set(ctx, "lock_passwd", c->password_hash ? "false" : "true");
	if (c->password_hash)
		r |= pf_tpl_set(ctx, "password_hash", in->mask_secrets ? MASK : c->password_hash);
	r |= pf_tpl_set(ctx, "ssh_pwauth", c->n_keys == 0 || c->ssh_password ? "true" : "false");
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
		r |= pf_tpl_set(ctx, "keys_toml", toml);
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
	for (size_t i = 0; i < c->n_vars; i++)
		r |= pf_tpl_set(ctx, c->vars[i].key, c->vars[i].value);
	if (r < 0)
		return -ENOMEM;
	*ret = TAKE_PTR(ctx);
	return 0;
}

static int write_rendered(PfPlan *p, const PfPlanInput *in, const PfTplCtx *ctx, const char *tmpl,
			  const char *override_path, PfTplMode mode, unsigned part,
			  const char *path, mode_t m, uid_t uid, gid_t gid, bool secret,
			  const char *why)
{
	_cleanup_(freep) char *text = NULL;
	size_t len = 0;
	int r;

	r = render(in, tmpl, override_path, ctx, mode, &text, &len);
	if (r < 0)
		return r;
	r = add_write(p, part, path, text, len, m, uid, gid, secret, why);
	if (secret && text)
		explicit_bzero(text, len);
	return r;
}

/* /etc/hostname and the 127.0.1.1 line of /etc/hosts: every flavor. */
static int plan_hostname(PfPlan *p, PfTree *tree, const PfNodeConfig *c)
{
	_cleanup_(freep) char *line = NULL, *hosts = NULL, *edited = NULL, *names = NULL;
	size_t len = 0, elen = 0;
	int r;

	if (asprintf(&line, "%s\n", c->hostname) < 0)
		return -ENOMEM;
	r = add_write(p, 0, "/etc/hostname", line, strlen(line), 0644, 0, 0, false,
		      "the hostname, in place before anything else runs at boot");
	if (r < 0)
		return r;

	r = read_text(tree, "/etc/hosts", &hosts, &len);
	if (r < 0)
		return r;
	if (c->domain)
		r = asprintf(&names, "%s.%s %s", c->hostname, c->domain, c->hostname);
	else
		r = asprintf(&names, "%s", c->hostname);
	if (r < 0)
		return -ENOMEM;
	r = pf_edit_hosts(hosts ? hosts : "", len, names, &edited, &elen);
	if (r < 0)
		return pf_error_prefix(r, "/etc/hosts");
	return add_write(p, 0, "/etc/hosts", edited, elen, 0644, 0, 0, false,
			 "the 127.0.1.1 line names this node");
}

static bool writes_host_key(const PfPlanInput *in, const char *path)
{
	char own[PF_PATH_MAX];

	for (size_t i = 0; i < in->n_host_keys; i++) {
		snprintf(own, sizeof(own), "/etc/ssh/ssh_host_%s_key", in->host_keys[i].name);
		if (streq(path, own))
			return true;
		strcat(own, ".pub");
		if (streq(path, own))
			return true;
	}
	return false;
}

/* Host keys made by piflash: the operator's known_hosts is right before the first boot. */
static int plan_host_keys(PfPlan *p, const PfPlanInput *in)
{
	const PfFlavorInfo *f = in->flavor;
	char path[PF_PATH_MAX];
	int r;

	for (size_t i = 0; i < in->n_host_keys; i++) {
		const PfPlanHostKey *k = &in->host_keys[i];

		snprintf(path, sizeof(path), "/etc/ssh/ssh_host_%s_key", k->name);
		r = add_write(p, 0, path, k->private_key, strlen(k->private_key), 0600, 0, 0, true,
			      "this node's own SSH host key, made by piflash (--host-keys)");
		if (r < 0)
			return r;
		strcat(path, ".pub");
		r = add_write(p, 0, path, k->public_line, strlen(k->public_line), 0644, 0, 0, false,
			      "its public half, listed in the operator's known_hosts");
		if (r < 0)
			return r;
	}
	if (f->keygen_unit_link) {
		r = add_simple(p, PF_OP_REMOVE, 0, f->keygen_unit_link, NULL, 0, 0, 0,
			       "this unit would replace the pre-generated host keys at first boot");
		if (r < 0)
			return r;
	}
	return 0;
}

/* A baked machine-id, D-Bus's copy of it and baked SSH host keys: every flavor. */
static int plan_identity(PfPlan *p, const PfPlanInput *in)
{
	const PfFlavorInfo *f = in->flavor;
	size_t removed = 0;
	int r;

	if (f->machine_id_baked) {
		r = add_write(p, 0, "/etc/machine-id", "", 0, 0444, 0, 0, false,
			      "emptied: systemd makes this node's own id at first boot");
		if (r < 0)
			return r;
	}
	if (f->dbus_machine_id_copy) {
		r = add_simple(p, PF_OP_REMOVE, 0, "/var/lib/dbus/machine-id", NULL, 0, 0, 0,
			       "a copy would give every card the same D-Bus id");
		if (r >= 0)
			r = add_simple(p, PF_OP_SYMLINK, 0, "/var/lib/dbus/machine-id",
				       "/etc/machine-id", 0777, 0, 0,
				       "D-Bus reads the node's own machine-id");
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < f->n_host_keys; i++) {
		if (writes_host_key(in, f->host_keys[i]))
			continue; /* replaced below */
		r = add_simple(p, PF_OP_REMOVE, 0, f->host_keys[i], NULL, 0, 0, 0,
			       "baked SSH host key: each node must have its own");
		if (r < 0)
			return r;
		removed++;
	}
	if (in->n_host_keys > 0)
		return plan_host_keys(p, in);
	if (removed > 0 && !f->regenerates_host_keys) {
		_cleanup_(freep) char *unit = NULL, *origin = NULL;
		size_t len = 0;

		r = pf_template_get(NULL, "piflash-ssh-keygen.service", &unit, &len, &origin);
		if (r < 0)
			return r;
		r = add_write(p, 0, "/etc/systemd/system/piflash-ssh-keygen.service", unit, len,
			      0644, 0, 0, false,
			      "nothing in this image makes missing host keys; sshd needs them");
		if (r >= 0)
			r = add_simple(
				p, PF_OP_SYMLINK, 0,
				"/etc/systemd/system/ssh.service.wants/piflash-ssh-keygen.service",
				"/etc/systemd/system/piflash-ssh-keygen.service", 0777, 0, 0,
				"runs before ssh.service");
		if (r < 0)
			return r;
	}
	return 0;
}

/* The seed directory "N:/dir" of a cloud-init flavor. */
static int seed_location(const PfFlavorInfo *f, unsigned *ret_part, const char **ret_dir)
{
	const char *colon;
	uint64_t n;
	char num[16];

	if (!f->seed_dir || !(colon = strchr(f->seed_dir, ':')) ||
	    (size_t)(colon - f->seed_dir) >= sizeof(num))
		return pf_error_set(-ENOENT, "the image's cloud-init seed location is unknown");
	memcpy(num, f->seed_dir, (size_t)(colon - f->seed_dir));
	num[colon - f->seed_dir] = 0;
	if (pf_parse_u64(num, &n) < 0 || n == 0 || n > 128)
		return pf_error_set(-EINVAL, "bad seed location '%s'", f->seed_dir);
	*ret_part = (unsigned)n;
	*ret_dir = colon + 1;
	return 0;
}

static int plan_cloud_init(PfPlan *p, const PfPlanInput *in, const PfTplCtx *ctx)
{
	const PfFlavorInfo *f = in->flavor;
	char path[PF_PATH_MAX], why[256];
	const char *dir = "/";
	unsigned part = 0;
	bool v1 = f->network_config_version == 1;
	int r;

	r = seed_location(f, &part, &dir);
	if (r < 0)
		return r;
	if (in->cfg->wifi_ssid && v1)
		return pf_error_set(-EOPNOTSUPP,
				    "WiFi: cloud-init %s reads network-config version 1, which has "
				    "no WiFi; piflash cannot configure WiFi on this image",
				    f->cloud_init_version ? f->cloud_init_version : "0.7");

	snprintf(why, sizeof(why), "cloud-init %s reads the NoCloud seed here",
		 f->cloud_init_version ? f->cloud_init_version : "");
	snprintf(path, sizeof(path), "%s%suser-data", dir, streq(dir, "/") ? "" : "/");
	r = write_rendered(p, in, ctx, "user-data.yaml", in->user_data_path, PF_TPL_YAML, part,
			   path, 0644, 0, 0, in->cfg->password_hash != NULL, why);
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s%smeta-data", dir, streq(dir, "/") ? "" : "/");
	r = write_rendered(p, in, ctx, "meta-data.yaml", NULL, PF_TPL_YAML, part, path, 0644, 0, 0,
			   false, "a new instance-id makes cloud-init set this node up");
	if (r < 0)
		return r;
	snprintf(path, sizeof(path), "%s%snetwork-config", dir, streq(dir, "/") ? "" : "/");
	snprintf(why, sizeof(why), "network-config version %d, the one cloud-init %s reads",
		 v1 ? 1 : 2, f->cloud_init_version ? f->cloud_init_version : "");
	return write_rendered(p, in, ctx, v1 ? "network-config-v1.yaml" : "network-config-v2.yaml",
			      NULL, PF_TPL_YAML, part, path, 0600, 0, 0, in->cfg->wifi_ssid != NULL,
			      why);
}

/* ~user/.ssh/authorized_keys, owned as the image's passwd and group say. */
static int plan_keys(PfPlan *p, const PfNodeConfig *c, const PfPasswdEntry *u)
{
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
	if (add_simple(p, PF_OP_MKDIR, 0, dir, NULL, 0700, u->uid, u->gid,
		       "sshd wants the directory private to the user") < 0)
		return -ENOMEM;
	return add_write(p, 0, file, text, len, 0600, u->uid, u->gid, false,
			 "the operator's keys; owner from the image's /etc/passwd");
}

static int plan_marked_block(PfPlan *p, PfTree *tree, const PfPlanInput *in, const PfTplCtx *ctx,
			     const char *tmpl, const char *path, const char *why)
{
	_cleanup_(freep) char *old = NULL, *block = NULL, *edited = NULL;
	size_t len = 0, blen = 0, elen = 0;
	int r;

	r = read_text(tree, path, &old, &len);
	if (r < 0)
		return r;
	r = render(in, tmpl, NULL, ctx, PF_TPL_TEXT, &block, &blen);
	if (r < 0)
		return r;
	r = pf_edit_replace_block(old ? old : "", len, block, &edited, &elen);
	if (r < 0)
		return pf_error_prefix(r, "%s", path);
	return add_write(p, 0, path, edited, elen, 0644, 0, 0, false, why);
}

static int plan_shadow(PfPlan *p, PfTree *tree, const PfPtable *t, const PfNodeConfig *c,
		       const char *user)
{
	_cleanup_(freep) char *old = NULL, *edited = NULL;
	size_t len = 0, elen = 0;
	PfStat st;
	int r;

	if (!c->password_hash)
		return 0;
	r = read_text(tree, "/etc/shadow", &old, &len);
	if (r < 0)
		return r;
	if (!old)
		return pf_error_set(-ENOENT, "the image has no /etc/shadow for --password-hash");
	r = stat_path(tree, 0, t, "/etc/shadow", true, &st);
	if (r < 0)
		return r;
	r = pf_edit_shadow(old, len, user, c->password_hash, &edited, &elen);
	if (r < 0)
		return r;
	r = add_write(p, 0, "/etc/shadow", edited, elen, st.mode & 07777, st.uid, st.gid, true,
		      "the password hash given with --password-hash");
	explicit_bzero(edited, elen);
	return r;
}

static int plan_timezone(PfPlan *p, const PfNodeConfig *c)
{
	_cleanup_(freep) char *tz = NULL, *zone = NULL, *loc = NULL;
	int r;

	if (c->timezone) {
		if (asprintf(&tz, "%s\n", c->timezone) < 0 ||
		    asprintf(&zone, "/usr/share/zoneinfo/%s", c->timezone) < 0)
			return -ENOMEM;
		r = add_write(p, 0, "/etc/timezone", tz, strlen(tz), 0644, 0, 0, false,
			      "--timezone");
		if (r >= 0)
			r = add_simple(p, PF_OP_REMOVE, 0, "/etc/localtime", NULL, 0, 0, 0,
				       "replaced by a link to the zone");
		if (r >= 0)
			r = add_simple(p, PF_OP_SYMLINK, 0, "/etc/localtime", zone, 0777, 0, 0,
				       "--timezone");
		if (r < 0)
			return r;
	}
	if (c->locale) {
		if (asprintf(&loc, "LANG=%s\n", c->locale) < 0)
			return -ENOMEM;
		r = add_write(p, 0, "/etc/default/locale", loc, strlen(loc), 0644, 0, 0, false,
			      "--locale (the locale must exist in the image)");
		if (r < 0)
			return r;
	}
	return 0;
}

static int plan_nm(PfPlan *p, const PfPlanInput *in, const PfTplCtx *ctx)
{
	int r = 0;

	if (in->cfg->static_ip)
		r = write_rendered(
			p, in, ctx, "nm-ethernet.nmconnection", NULL, PF_TPL_TEXT, 0,
			"/etc/NetworkManager/system-connections/piflash-eth.nmconnection", 0600, 0,
			0, false, "NetworkManager keyfile: read only when 0600 and owned by root");
	if (r >= 0 && in->cfg->wifi_ssid)
		r = write_rendered(
			p, in, ctx, "nm-wifi.nmconnection", NULL, PF_TPL_TEXT, 0,
			"/etc/NetworkManager/system-connections/piflash-wifi.nmconnection", 0600, 0,
			0, true, "WiFi for NetworkManager (a secret: 0600)");
	return r;
}

/* The user the keys go to, and their passwd entry where the image has one. */
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
	if (f->flavor == PF_FLAVOR_RPIOS_BOOKWORM) {
		/* No default user: the one made at first boot is named here. */
		*ret_user = "pi";
		return 1;
	}
	return pf_error_set(-ENOENT, "the image has no default user%s; name one with --user",
			    f->n_users > 1 ? " and several regular users" : "");
}

static int plan_ssh_file(PfPlan *p, const PfFlavorInfo *f)
{
	if (!f->boot)
		return pf_error_set(-ENOENT, "no boot partition to put the 'ssh' file on");
	return add_write(p, f->boot->number, "/ssh", "", 0, 0644, 0, 0, false,
			 "Raspberry Pi OS turns the SSH server on when this file is on the boot "
			 "partition");
}

int pf_plan_build(PfTree *tree, const PfPtable *t, const PfPlanInput *in, PfPlan **ret)
{
	_cleanup_(pf_plan_freep) PfPlan *p = calloc(1, sizeof(PfPlan));
	_cleanup_(pf_tpl_ctx_freep) PfTplCtx *ctx = NULL;
	_cleanup_(pf_passwd_freep) PfPasswd *pw = NULL;
	const PfNodeConfig *c = in->cfg;
	const PfFlavorInfo *f = in->flavor;
	const PfPasswdEntry *u = NULL;
	const char *user = NULL;
	bool cloud = f->flavor == PF_FLAVOR_HYPRIOT || f->flavor == PF_FLAVOR_UBUNTU ||
		     f->flavor == PF_FLAVOR_RPIOS_TRIXIE;
	int r;

	if (!p)
		return -ENOMEM;
	r = pick_user(in, &user);
	if (r < 0)
		return r;
	if (r > 0 && add_note(p,
			      "the image has no default user: the first user is named '%s' "
			      "(choose another with --user)",
			      user) < 0)
		return -ENOMEM;
	p->user = strdup(user);
	if (!p->user)
		return -ENOMEM;

	if (cloud) {
		if (in->instance_id)
			p->instance_id = strdup(in->instance_id);
		else {
			unsigned char rnd[8];
			char h[17];

			if (RAND_bytes(rnd, sizeof(rnd)) != 1)
				return pf_error_set(-EIO, "no random bytes for the instance-id");
			hex(rnd, sizeof(rnd), h);
			if (asprintf(&p->instance_id, "iid-piflash-%s-%s", c->hostname, h) < 0)
				p->instance_id = NULL;
		}
		if (!p->instance_id)
			return -ENOMEM;
	}

	r = build_ctx(in, user, p->instance_id, &ctx);
	if (r < 0)
		return r;
	{
		char uuid[37], name[128];

		snprintf(name, sizeof(name), "piflash:%s:%s", c->hostname, pf_node_config_iface(c));
		name_uuid(name, uuid);
		r = pf_tpl_set(ctx, "uuid", uuid);
		if (r < 0)
			return r;
	}

	r = plan_hostname(p, tree, c);
	if (r < 0)
		return r;

	if (cloud) {
		r = plan_cloud_init(p, in, ctx);
		if (r < 0)
			return r;
		if (f->flavor == PF_FLAVOR_RPIOS_TRIXIE) {
			r = plan_ssh_file(p, f);
			if (r < 0)
				return r;
		}
	} else {
		r = pf_passwd_load(tree, &pw);
		if (r < 0)
			return r;
		u = pf_passwd_find(pw, user);

		switch (f->flavor) {
		case PF_FLAVOR_RPIOS_BOOKWORM:
			r = plan_ssh_file(p, f);
			if (r < 0)
				return r;
			if (f->has_custom_toml) {
				r = write_rendered(p, in, ctx, "custom.toml", NULL, PF_TPL_TEXT,
						   f->boot->number, "/custom.toml", 0644, 0, 0,
						   c->password_hash != NULL,
						   "init_config makes the user, its keys and the "
						   "hostname at first boot");
				if (r < 0)
					return r;
			} else {
				_cleanup_(freep) char *uc = NULL;
				const PfPasswdEntry *first = pf_passwd_find_uid(pw, 1000);

				if (asprintf(&uc, "%s:%s\n", user,
					     c->password_hash
						     ? (in->mask_secrets ? MASK : c->password_hash)
						     : "!") < 0)
					return -ENOMEM;
				r = add_write(p, f->boot->number, "/userconf.txt", uc, strlen(uc),
					      0644, 0, 0, c->password_hash != NULL,
					      "userconf-pi names the first user at first boot");
				if (r < 0)
					return r;
				if (first)
					u = first; /* renamed, home and all, at first boot */
				if (!u)
					return pf_error_set(
						-ENOENT,
						"the image has no user with uid 1000 for "
						"userconf to rename to '%s'",
						user);
				r = plan_keys(p, c, u);
				if (r < 0)
					return r;
			}
			r = plan_nm(p, in, ctx);
			if (r < 0)
				return r;
			if (c->wifi_country) {
				_cleanup_(freep) char *cmd = NULL, *edited = NULL;
				size_t len = 0, elen = 0;
				char path[PF_PATH_MAX];

				/* The regulatory domain is a kernel argument on bookworm. */
				snprintf(path, sizeof(path), "%s/cmdline.txt",
					 f->boot_mount ? f->boot_mount : "/boot/firmware");
				r = read_text(tree, path, &cmd, &len);
				if (r < 0)
					return r;
				r = pf_edit_cmdline(cmd ? cmd : "", len,
						    "cfg80211.ieee80211_regdom", c->wifi_country,
						    &edited, &elen);
				if (r >= 0)
					r = add_write(p, f->boot->number, "/cmdline.txt", edited,
						      elen, 0644, 0, 0, false,
						      "the WiFi country is a kernel argument here");
				if (r < 0)
					return r;
			}
			break;

		case PF_FLAVOR_RASPBIAN:
			r = plan_ssh_file(p, f);
			if (r < 0)
				return r;
			if (!u)
				return pf_error_set(
					-ENOENT, "no user '%s' in the image's /etc/passwd", user);
			r = plan_keys(p, c, u);
			if (r >= 0 && c->static_ip)
				r = plan_marked_block(
					p, tree, in, ctx, "dhcpcd.conf", "/etc/dhcpcd.conf",
					"dhcpcd applies static lines under 'interface'");
			if (r >= 0 && c->wifi_ssid)
				r = write_rendered(
					p, in, ctx, "wpa_supplicant.conf", NULL, PF_TPL_TEXT, 0,
					"/etc/wpa_supplicant/wpa_supplicant.conf", 0600, 0, 0, true,
					"WiFi for wpa_supplicant (a secret: 0600)");
			if (r >= 0)
				r = plan_shadow(p, tree, t, c, user);
			if (r < 0)
				return r;
			break;

		default: /* plain Debian-style */
			if (!u)
				return pf_error_set(
					-ENOENT, "no user '%s' in the image's /etc/passwd", user);
			r = plan_keys(p, c, u);
			if (r < 0)
				return r;
			if (c->static_ip) {
				if (f->has_networkd)
					r = write_rendered(
						p, in, ctx, "networkd.network", NULL, PF_TPL_TEXT,
						0, "/etc/systemd/network/10-piflash.network", 0644,
						0, 0, false,
						"systemd-networkd reads it; 10- sorts before "
						"the image's own");
				else if (f->has_networkmanager)
					r = plan_nm(p, in, ctx);
				else if (f->has_ifupdown)
					r = write_rendered(
						p, in, ctx, "ifupdown.interfaces", NULL,
						PF_TPL_TEXT, 0, "/etc/network/interfaces.d/piflash",
						0644, 0, 0, false, "ifupdown reads interfaces.d");
				else
					r = pf_error_set(
						-EOPNOTSUPP,
						"--ip: the image has no network stack piflash "
						"knows (networkd, NetworkManager, ifupdown)");
				if (r < 0)
					return r;
			}
			if (c->wifi_ssid) {
				if (!f->has_networkmanager)
					return pf_error_set(
						-EOPNOTSUPP,
						"WiFi: piflash configures WiFi on plain "
						"Debian images through NetworkManager, which "
						"this image lacks");
				r = write_rendered(p, in, ctx, "nm-wifi.nmconnection", NULL,
						   PF_TPL_TEXT, 0,
						   "/etc/NetworkManager/system-connections/"
						   "piflash-wifi.nmconnection",
						   0600, 0, 0, true,
						   "WiFi for NetworkManager (a secret: 0600)");
				if (r < 0)
					return r;
			}
			r = plan_shadow(p, tree, t, c, user);
			if (r < 0)
				return r;
			break;
		}
		r = plan_timezone(p, c);
		if (r < 0)
			return r;
	}

	r = plan_identity(p, in);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(p);
	return 0;
}

static int apply_one(PfTree *tree, const PfPtable *t, const PfOp *op, int64_t now)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part = NULL, *where;
	PfAttr attr = { .mode = op->mode, .uid = op->uid, .gid = op->gid, .mtime = now };
	PfAttr dir_attr = { .mode = 0755, .mtime = now };
	PfStat st;
	char *slash;
	PfFs *fs;
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
	r = pf_tree_fs(tree, where, &fs);
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
	json_object_object_add(root, "operations", ops);
	json_object_object_add(root, "notes", notes);
	return root;
}
