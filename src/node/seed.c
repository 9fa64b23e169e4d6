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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/handler.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/strutil.h"

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

/* Renders ours, keeps the image's other keys; says in a note what was kept or replaced. */
static int write_merged(PfPlanCtx *c, const char *tmpl, const char *override, const char *base,
			size_t base_len, bool base_editable, const char *const *owned,
			unsigned part, const char *path, bool secret, const char *what,
			const char *why)
{
	_cleanup_(freep) char *ours = NULL, *merged = NULL;
	_cleanup_(pf_strv_freep) char **kept = NULL;
	size_t ours_len = 0, merged_len = 0;
	int r;

	r = pf_plan_render(c, tmpl, override, PF_TPL_YAML, &ours, &ours_len);
	if (r < 0)
		return r;
	if (!base || override)
		return pf_plan_add_write(c->plan, part, path, ours, ours_len, 0644, 0, 0, secret,
					 why);
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
		_cleanup_(freep) char *list = NULL;
		size_t l = 0;
		FILE *m = open_memstream(&list, &l);

		if (!m)
			return -ENOMEM;
		for (size_t i = 0; kept[i]; i++)
			fprintf(m, "%s%s", i ? ", " : "", kept[i]);
		if (fclose(m) != 0)
			return -ENOMEM;
		r = pf_plan_add_note(c->plan, "kept from the image's %s: %s", what, list);
	}
	if (r < 0)
		return r;
	r = pf_yaml_check(path, merged, merged_len);
	if (r < 0)
		return r;
	return pf_plan_add_write(c->plan, part, path, merged, merged_len, 0644, 0, 0, secret, why);
}

static int plan_seed(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	char path[PF_PATH_MAX], why[256];
	unsigned part = 0;
	int r;

	snprintf(why, sizeof(why),
		 "the user-data replaces the image's logins (its users:, passwords and SSH "
		 "settings) with '%s' whole",
		 c->user);
	r = pf_plan_login_check(c, why);
	if (r < 0)
		return r;
	snprintf(why, sizeof(why), "cloud-init %s reads the NoCloud seed here (%s)",
		 f->cloud_init_version ? f->cloud_init_version : "", f->seed_how);
	r = pf_plan_seed_path(f, "user-data", &part, path, sizeof(path));
	if (r >= 0)
		r = write_merged(c, "user-data.yaml", c->in->user_data_path, f->seed_user_data,
				 f->seed_user_data_len, is_cloud_config(f->seed_user_data),
				 user_data_owned, part, path, c->cfg->password_hash != NULL,
				 "user-data", why);
	if (r >= 0)
		r = pf_plan_seed_path(f, "meta-data", &part, path, sizeof(path));
	if (r >= 0)
		r = write_merged(c, "meta-data.yaml", NULL, f->seed_meta_data,
				 f->seed_meta_data_len, true, meta_data_owned, part, path, false,
				 "meta-data",
				 "a new instance-id makes cloud-init set this node up");
	return r;
}

const PfHandler pf_handler_seed = { "cloud-init-seed", plan_seed };
