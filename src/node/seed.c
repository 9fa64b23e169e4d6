/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * cloud-init's NoCloud seed, where the image's cloud-init reads it: user-data (hostname, the
 * user whole with its keys, SSH settings) and meta-data (a new instance-id, so cloud-init sets
 * this node up instead of treating it as the image it was cloned from).
 *
 * The image's seed is edited, not replaced: every top-level key piflash does not own stays as
 * the image wrote it (dsmode in meta-data, package and runcmd settings in user-data). Logins
 * are piflash's: the image's users:, passwords and SSH settings go, so a known default
 * password shipped in the seed (HypriotOS's plain_text_passwd) never survives.
 *
 * The operator's --user-data FILE (#cloud-config) comes first: piflash's keys are added where
 * it sets none, and a key of it that would break a promise (host keys, the user carrying the
 * keys, the node's name) is an error naming it. A jinja template ("## template: jinja") is
 * cloud-init's to render: written as given, with the options it cannot carry refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/handler.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

/* --user-data FILE is read whole, bounded like the built-in templates. */
#define USER_DATA_MAX_BYTES (256u * 1024u)

/* user-data keys piflash owns: identity and logins. The image's are dropped, ours written. */
static const char *const user_data_owned[] = {
	"hostname",
	"fqdn",
	"manage_etc_hosts",
	"preserve_hostname",
	"prefer_fqdn_over_hostname",
	"users",
	"user",
	"password",
	"chpasswd",
	"ssh_pwauth",
	"ssh_authorized_keys",
	"ssh_deletekeys",
	"ssh_genkeytypes",
	"ssh_keys",
	NULL,
};

static const char *const meta_data_owned[] = { "instance-id", "local-hostname", NULL };

int pf_plan_seed_path(const PfFlavorInfo *f, const char *file, unsigned *ret_part, char *path,
		      size_t size)
{
	const char *colon, *dir;
	uint64_t n;
	char num[16];

	if (!f->seed_dir || !(colon = strchr(f->seed_dir, ':')) ||
	    (size_t)(colon - f->seed_dir) >= sizeof(num))
		return pf_error_set(-ENOENT, "the image's cloud-init seed location is unknown");
	memcpy(num, f->seed_dir, (size_t)(colon - f->seed_dir));
	num[colon - f->seed_dir] = 0;
	if (pf_parse_u64(num, &n) < 0 || n == 0 || n > 128)
		return pf_error_set(-EINVAL, "bad seed location '%s'", f->seed_dir);
	dir = colon + 1;
	*ret_part = (unsigned)n;
	if ((size_t)snprintf(path, size, "%s%s%s", dir, streq(dir, "/") ? "" : "/", file) >= size)
		return pf_error_set(-ENAMETOOLONG, "seed path too long");
	return 0;
}

/* A #cloud-config document piflash can edit key by key (not a script, not a jinja template). */
static bool is_cloud_config(const char *text)
{
	if (!text)
		return false;
	if (startswith(text, "\xef\xbb\xbf"))
		text += 3;
	return startswith(text, "#cloud-config") != NULL;
}

/* "a, b, c", malloc'd; NULL on ENOMEM. */
static char *strv_join(char *const *v)
{
	char *list = NULL;
	size_t l = 0;
	FILE *m = open_memstream(&list, &l);

	if (!m)
		return NULL;
	for (size_t i = 0; v[i]; i++)
		fprintf(m, "%s%s", i ? ", " : "", v[i]);
	if (fclose(m) != 0) {
		free(list);
		return NULL;
	}
	return list;
}

/* Whether a YAML mapping document has key at the top level. */
static bool has_top_key(const char *text, size_t len, const char *key)
{
	yaml_document_t doc;
	bool found;

	if (!text || pf_yaml_load(text, len, &doc) < 0) {
		pf_error_clear();
		return false;
	}
	found = pf_yaml_map_get(&doc, yaml_document_get_root_node(&doc), key) != NULL;
	yaml_document_delete(&doc);
	return found;
}

/* Ours (rendered), then the image's other keys; says in a note what was kept or replaced. */
static int write_merged(PfPlanCtx *c, const char *ours, size_t ours_len, const char *base,
			size_t base_len, bool base_editable, const char *const *owned,
			unsigned part, const char *path, bool secret, const char *what,
			const char *why)
{
	_cleanup_(freep) char *merged = NULL;
	_cleanup_(pf_strv_freep) char **kept = NULL;
	size_t merged_len = 0;
	int r;

	if (!base)
		return pf_plan_add_write(c->plan, part, path, ours, ours_len, 0644, 0, 0, secret,
					 why);
	/* write_files is a list of independent files: ours (WiFi) would drop the image's. */
	if (base_editable && has_top_key(ours, ours_len, "write_files") &&
	    has_top_key(base, base_len, "write_files"))
		return pf_error_set(-EOPNOTSUPP,
				    "the image's %s has write_files, which piflash's own (WiFi) "
				    "would replace: remove it from the image's seed, or set WiFi "
				    "up in it",
				    what);
	r = pf_yaml_merge_top(ours, ours_len, base_editable ? base : NULL, base_len, owned, &merged,
			      &merged_len, &kept);
	if (r < 0)
		return pf_error_prefix(r, "cannot keep the settings of the image's %s", what);
	if (!kept)
		r = pf_plan_add_note(c->plan,
				     "the image's %s is not a YAML mapping piflash can edit; it is "
				     "replaced",
				     what);
	else if (kept[0]) {
		_cleanup_(freep) char *list = strv_join(kept);

		r = list ? pf_plan_add_note(c->plan, "kept from the image's %s: %s", what, list)
			 : -ENOMEM;
	}
	if (r < 0)
		return r;
	r = pf_yaml_check(path, merged, merged_len);
	if (r < 0)
		return r;
	return pf_plan_add_write(c->plan, part, path, merged, merged_len, 0644, 0, 0, secret, why);
}

/* Whether user-data carries the WiFi (the derived key: a secret), see net-cloud-init.c. */
static bool wifi_in_user_data(const PfPlanCtx *c)
{
	return c->cfg->wifi_ssid && c->f->net == PF_NET_CLOUD_INIT &&
	       c->f->network_config_version == 1;
}

/* cloud-init's own template format: a first line "## template: jinja" (spaces optional, any
 * case), which cloud-init renders with jinja at boot. */
static bool is_jinja(const char *text)
{
	const char *p = text;

	if (startswith(p, "\xef\xbb\xbf"))
		p += 3;
	if (!(p = startswith(p, "##")))
		return false;
	p += strspn(p, " \t");
	if (strncasecmp(p, "template:", 9) != 0)
		return false;
	p += 9;
	p += strspn(p, " \t");
	return strncasecmp(p, "jinja", 5) == 0;
}

/* What piflash would put into user-data besides the hostname (which meta-data carries too),
 * for the jinja case; NULL when nothing. */
static const char *needs_merge(const PfPlanCtx *c)
{
	const PfNodeConfig *cfg = c->cfg;

	if (cfg->n_keys > 0)
		return "--ssh-key";
	if (cfg->password_hash)
		return "--password-hash";
	if (c->in->n_host_keys > 0)
		return "--host-keys";
	if (wifi_in_user_data(c))
		return "WiFi";
	if (cfg->user)
		return "--user";
	if (cfg->domain)
		return "--domain";
	if (cfg->timezone)
		return "--timezone";
	if (cfg->locale)
		return "--locale";
	return NULL;
}

/*
 * --user-data FILE that is a jinja template: cloud-init's to render, so piflash neither
 * renders it (its {{ }} are jinja's) nor parses it (it is YAML only once rendered) nor merges
 * it. It is written as given; options that would go into user-data are refused rather than
 * lost, and so is a cloud-init too old to render it (jinja user-data came with 18.4).
 */
static int user_data_jinja(PfPlanCtx *c, const char *file, const char *text, size_t len,
			   unsigned part, const char *path, const char *why)
{
	const PfFlavorInfo *f = c->f;
	const char *lost = needs_merge(c);
	int r;

	if (lost)
		return pf_error_set(-EOPNOTSUPP,
				    "--user-data '%s' is a jinja template ('## template: jinja'), "
				    "which cloud-init renders and piflash passes on unread, so it "
				    "cannot carry %s: put that in the template, or drop its first "
				    "line to have piflash merge it as #cloud-config",
				    file, lost);
	if (f->cloud_init_major >= 0 &&
	    (f->cloud_init_major < 18 || (f->cloud_init_major == 18 && f->cloud_init_minor < 4)))
		return pf_error_set(
			-EOPNOTSUPP,
			"--user-data '%s' is a jinja template, which cloud-init renders "
			"from 18.4 on; the image's cloud-init %s would not run it",
			file, f->cloud_init_version);
	r = pf_plan_add_note(c->plan,
			     "user-data is --user-data '%s' as given, a jinja template cloud-init "
			     "renders at boot: piflash adds nothing to it, and its logins are its "
			     "own",
			     file);
	if (r < 0)
		return r;
	return pf_plan_add_write(c->plan, part, path, text, len, 0644, 0, 0, false, why);
}

/* --host-keys: user-data must not delete or replace the host key in known_hosts. */
static int conflicts_host_keys(PfPlanCtx *c, const char *file, yaml_document_t *doc,
			       yaml_node_t *root)
{
	yaml_node_t *n;

	if (c->in->n_host_keys == 0)
		return 0;
	n = pf_yaml_map_get(doc, root, "ssh_deletekeys");
	if (n && pf_yaml_bool(n) != 0)
		return pf_error_set(-EINVAL,
				    "--user-data '%s' sets ssh_deletekeys: cloud-init would delete "
				    "the host key piflash made (--host-keys) and put in "
				    "known_hosts; leave it out or set it false",
				    file);
	if (pf_yaml_map_get(doc, root, "ssh_keys"))
		return pf_error_set(-EINVAL,
				    "--user-data '%s' sets ssh_keys, which would replace the host "
				    "key piflash made (--host-keys) and put in known_hosts",
				    file);
	return 0;
}

/* A users: of the file's own would replace the user piflash gives keys or a hash. */
static int conflicts_users(PfPlanCtx *c, const char *file, const char *users_key)
{
	const PfNodeConfig *cfg = c->cfg;

	if (!users_key || !(cfg->n_keys > 0 || cfg->password_hash))
		return 0;
	return pf_error_set(-EINVAL,
			    "--user-data '%s' sets %s, which would replace the user '%s' piflash "
			    "gives %s: put %s in the file's %s, or leave it out",
			    file, users_key, c->user,
			    cfg->n_keys > 0 ? "the keys of --ssh-key" : "--password-hash",
			    cfg->n_keys > 0 ? "the keys" : "the hash", users_key);
}

/* hostname and fqdn, where the file sets them, must be the node's. */
static int conflicts_names(PfPlanCtx *c, const char *file, yaml_document_t *doc, yaml_node_t *root)
{
	const PfNodeConfig *cfg = c->cfg;
	_cleanup_(freep) char *fqdn = NULL;
	yaml_node_t *n;
	const char *s;

	n = pf_yaml_map_get(doc, root, "hostname");
	if (n && (!(s = pf_yaml_scalar(n)) || !streq(s, cfg->hostname)))
		return pf_error_set(-EINVAL,
				    "--user-data '%s' sets hostname '%.64s', but the node is '%s' "
				    "(its /etc/hostname, meta-data, known_hosts): leave it out, or "
				    "write {{hostname}}",
				    file, s ? s : "(not a string)", cfg->hostname);
	n = pf_yaml_map_get(doc, root, "fqdn");
	if (!n)
		return 0;
	s = pf_yaml_scalar(n);
	if (cfg->domain && asprintf(&fqdn, "%s.%s", cfg->hostname, cfg->domain) < 0)
		return -ENOMEM;
	if (!s || !fqdn || !streq(s, fqdn))
		return pf_error_set(-EINVAL,
				    "--user-data '%s' sets fqdn '%.64s', but the node's is %s%s%s: "
				    "leave it out, or write {{fqdn}} with --domain",
				    file, s ? s : "(not a string)", fqdn ? "'" : "",
				    fqdn ? fqdn : "none (no --domain)", fqdn ? "'" : "");
	return 0;
}

/* Where the WiFi goes into user-data's write_files, the file's own would replace it. */
static int conflicts_wifi(PfPlanCtx *c, const char *file, yaml_document_t *doc, yaml_node_t *root)
{
	if (!wifi_in_user_data(c) || !pf_yaml_map_get(doc, root, "write_files"))
		return 0;
	return pf_error_set(-EINVAL,
			    "--user-data '%s' sets write_files, which would replace the files "
			    "that set WiFi up on this image (cloud-init %s has it nowhere else): "
			    "leave the WiFi options out and write them yourself, or drop "
			    "write_files",
			    file, c->f->cloud_init_version ? c->f->cloud_init_version : "0.7");
}

/* ssh_pwauth: true needs a password to log in with. */
static int conflicts_pwauth(PfPlanCtx *c, const char *file, yaml_document_t *doc, yaml_node_t *root,
			    const char *users_key)
{
	yaml_node_t *n = pf_yaml_map_get(doc, root, "ssh_pwauth");

	if (!n || pf_yaml_bool(n) != 1 || c->cfg->password_hash || users_key ||
	    pf_yaml_map_get(doc, root, "password") || pf_yaml_map_get(doc, root, "chpasswd"))
		return 0;
	return pf_error_set(-EINVAL,
			    "--user-data '%s' sets ssh_pwauth: true, but no password is set "
			    "(--password-hash, or the file's own users:, password or chpasswd): "
			    "password login with a locked password",
			    file);
}

/*
 * --user-data FILE as #cloud-config: rendered as a template, then piflash's settings are
 * added where the file does not set the same key (the file wins). A key of the file that
 * would break what piflash promised is an error naming it: host keys made with --host-keys
 * (ssh_deletekeys not false, ssh_keys), the user carrying --ssh-key or --password-hash
 * (users:), the node's name (hostname, fqdn), WiFi's write_files, and password login with no
 * password (ssh_pwauth). *ret_users: the file makes its own users.
 */
static int user_data_conflicts(PfPlanCtx *c, const char *file, const char *text, size_t len,
			       bool *ret_users)
{
	yaml_document_t doc;
	yaml_node_t *root;
	const char *users_key;
	int r;

	r = pf_yaml_load(text, len, &doc);
	if (r < 0)
		return pf_error_prefix(r, "--user-data '%s'", file);
	root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_MAPPING_NODE) {
		r = pf_error_set(-EINVAL, "--user-data '%s' is not a mapping of cloud-config keys",
				 file);
		goto out;
	}
	users_key = pf_yaml_map_get(&doc, root, "users")  ? "users"
		    : pf_yaml_map_get(&doc, root, "user") ? "user"
							  : NULL;
	*ret_users = users_key != NULL;
	r = conflicts_host_keys(c, file, &doc, root);
	if (r >= 0)
		r = conflicts_users(c, file, users_key);
	if (r >= 0)
		r = conflicts_names(c, file, &doc, root);
	if (r >= 0)
		r = conflicts_wifi(c, file, &doc, root);
	if (r >= 0)
		r = conflicts_pwauth(c, file, &doc, root, users_key);
out:
	yaml_document_delete(&doc);
	return r;
}

/* The node's user-data: piflash's (or the operator's merged with it, or a jinja template as
 * given), then the image's other keys. */
static int plan_user_data(PfPlanCtx *c, unsigned part, const char *path, const char *why)
{
	const PfFlavorInfo *f = c->f;
	const char *file = c->in->user_data_path;
	_cleanup_(freep) char *ours = NULL, *raw = NULL, *theirs = NULL, *merged = NULL,
			      *login_why = NULL;
	_cleanup_(pf_strv_freep) char **added = NULL;
	size_t ours_len = 0, raw_len = 0, theirs_len = 0, merged_len = 0;
	bool secret = c->cfg->password_hash != NULL || wifi_in_user_data(c), users = false;
	int r;

	if (asprintf(&login_why,
		     "the user-data replaces the image's logins (its users:, passwords and SSH "
		     "settings) with '%s' whole",
		     c->user) < 0)
		return -ENOMEM;
	r = pf_plan_render(c, "user-data.yaml", NULL, PF_TPL_YAML, &ours, &ours_len);
	if (r < 0)
		return r;
	if (!file) {
		r = pf_plan_login_check(c, login_why);
		if (r < 0)
			return r;
		return write_merged(c, ours, ours_len, f->seed_user_data, f->seed_user_data_len,
				    is_cloud_config(f->seed_user_data), user_data_owned, part, path,
				    secret, "user-data", why);
	}

	r = pf_read_file_at(AT_FDCWD, file, USER_DATA_MAX_BYTES, &raw, &raw_len);
	if (r < 0)
		return pf_error_prefix(r, "--user-data");
	if (is_jinja(raw))
		return user_data_jinja(c, file, raw, raw_len, part, path, why);
	if (!is_cloud_config(raw))
		return pf_error_set(
			-EINVAL,
			"--user-data '%s' is not #cloud-config (its first line): piflash "
			"merges its settings into a cloud-config only (a jinja template "
			"starts with '## template: jinja' and is passed on as it is)",
			file);
	r = pf_plan_render(c, "user-data.yaml", file, PF_TPL_YAML, &theirs, &theirs_len);
	if (r < 0)
		return r;
	r = user_data_conflicts(c, file, theirs, theirs_len, &users);
	if (r < 0)
		return r;
	if (users)
		r = pf_plan_add_note(
			c->plan, "--user-data '%s' makes its own users: the logins are the file's",
			file);
	else
		r = pf_plan_login_check(c, login_why);
	if (r < 0)
		return r;
	r = pf_yaml_merge_top_with(theirs, theirs_len, ours, ours_len, NULL,
				   "# Added by piflash (the keys above are --user-data's):",
				   &merged, &merged_len, &added);
	if (r < 0)
		return pf_error_prefix(r, "--user-data '%s'", file);
	if (added && added[0]) {
		_cleanup_(freep) char *list = strv_join(added);

		if (!list)
			return -ENOMEM;
		r = pf_plan_add_note(c->plan,
				     "--user-data '%s' merged with piflash's %s (where both set a "
				     "key, the file's is kept)",
				     file, list);
		if (r < 0)
			return r;
	}
	return write_merged(c, merged, merged_len, f->seed_user_data, f->seed_user_data_len,
			    is_cloud_config(f->seed_user_data), user_data_owned, part, path, secret,
			    "user-data", why);
}

static int plan_seed(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *meta = NULL;
	char path[PF_PATH_MAX], why[256];
	size_t meta_len = 0;
	unsigned part = 0;
	int r;

	snprintf(why, sizeof(why), "cloud-init %s reads the NoCloud seed here (%s)",
		 f->cloud_init_version ? f->cloud_init_version : "", f->seed_how);
	r = pf_plan_seed_path(f, "user-data", &part, path, sizeof(path));
	if (r >= 0)
		r = plan_user_data(c, part, path, why);
	if (r >= 0)
		r = pf_plan_seed_path(f, "meta-data", &part, path, sizeof(path));
	if (r >= 0)
		r = pf_plan_render(c, "meta-data.yaml", NULL, PF_TPL_YAML, &meta, &meta_len);
	if (r >= 0)
		r = write_merged(c, meta, meta_len, f->seed_meta_data, f->seed_meta_data_len, true,
				 meta_data_owned, part, path, false, "meta-data",
				 "a new instance-id makes cloud-init set this node up");
	return r;
}

const PfHandler pf_handler_seed = { "cloud-init-seed", plan_seed };
