/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build/node.h"
#include "util/error.h"
#include "util/strutil.h"

bool pf_node_spec_given(const PfNodeSpec *s)
{
	return s->node || s->inventory || s->n_settings > 0 || s->flavor || s->network ||
	       s->template_dir || s->user_data || s->ssh_password || s->no_login || s->host_keys;
}

/* Repeated --ssh-key options add up; the first replaces the inventory row's keys. */
static int append_keys(PfNodeConfig *cfg, const char *path, const char *option)
{
	PfSshKey *keys = NULL, *all;
	size_t n = 0;
	int r;

	r = pf_ssh_keys_load_file(path, &keys, &n);
	if (r < 0)
		return pf_error_prefix(r, "%s '%s'", option, path);
	all = reallocarray(cfg->keys, cfg->n_keys + n, sizeof(PfSshKey));
	if (!all) {
		pf_ssh_keys_free(keys, n);
		return -ENOMEM;
	}
	memcpy(all + cfg->n_keys, keys, n * sizeof(PfSshKey));
	free(keys);
	cfg->keys = all;
	cfg->n_keys += n;
	return 0;
}

/* The settings of spec over cfg, in the order given. */
static int settings_override(const PfNodeSpec *spec, PfNodeConfig *cfg)
{
	bool keys_seen = false;
	int r;

	for (size_t i = 0; i < spec->n_settings; i++) {
		const PfNodeSetting *s = &spec->settings[i];
		char origin[96];

		/* "--ip"; "--set var_rack", since --set alone does not say which. */
		snprintf(origin, sizeof(origin), "%s%s%.64s", s->option,
			 streq(s->option, "--set") ? " " : "",
			 streq(s->option, "--set") ? s->key : "");
		if (streq(s->key, "ssh_key") && keys_seen)
			r = append_keys(cfg, s->value, "--ssh-key");
		else
			r = pf_node_config_set(cfg, s->key, s->value, origin);
		if (streq(s->key, "ssh_key"))
			keys_seen = true;
		if (r < 0)
			return pf_error_prefix(r, "invalid node settings");
	}
	return 0;
}

int pf_node_settings(const PfNodeSpec *spec, const PfInventory *inv, const PfInventoryRow *row,
		     PfNodeConfig *cfg)
{
	int r;

	if (row) {
		if (row->error)
			return pf_error_set(-EINVAL, "%s", row->error);
		r = pf_inventory_apply(inv, row, cfg);
	} else
		/* The message names --node already: no prefix here. */
		r = pf_node_config_set(cfg, "hostname", spec->node, "--node");
	if (r < 0)
		return r;
	r = settings_override(spec, cfg);
	if (r < 0)
		return r;
	if (spec->ssh_password)
		cfg->ssh_password = true;
	if (spec->no_login)
		cfg->no_login = true;
	return pf_node_config_check(cfg);
}

void pf_node_build_done(PfNodeBuild *b)
{
	pf_node_config_done(&b->cfg);
	b->own_flavor = pf_flavor_info_free(b->own_flavor);
	b->flavor = NULL;
	b->plan = pf_plan_free(b->plan);
	for (size_t i = 0; i < b->n_host_keys; i++)
		pf_hostkey_done(&b->host_keys[i]);
	b->n_host_keys = 0;
}

int pf_node_flavor(PfImage *img, const PfNodeSpec *spec, PfFlavorInfo **ret)
{
	/* The flavor is a label: an image none of its rules names still has mechanisms. */
	PfDetectOptions o = { .allow_unknown = true };
	int r;

	if (spec->flavor && pf_flavor_from_name(spec->flavor, &o.flavor) < 0)
		return pf_error_set(-EINVAL, "unknown flavor '%s'", spec->flavor);
	if (spec->network && pf_net_stack_from_name(spec->network, &o.net) < 0)
		return pf_error_set(-EINVAL, "unknown network '%s'", spec->network);
	r = pf_flavor_detect_with(pf_image_tree(img), pf_image_table(img), &o, ret);
	if (r == -EOPNOTSUPP)
		return pf_error_prefix(r, "'%s'", pf_image_path(img));
	if (r >= 0 && !(*ret)->root) {
		*ret = pf_flavor_info_free(*ret);
		r = pf_error_set(-ENOENT, "no root filesystem (no partition with /etc)");
	}
	if (r < 0)
		return pf_error_prefix(r, "'%s': cannot read the image's system",
				       pf_image_path(img));
	return 0;
}

static int make_host_keys(const PfNodeSpec *spec, PfNodeBuild *b)
{
	_cleanup_(freep) char *comment = NULL;
	uint8_t seed[PF_HOSTKEY_SEED_BYTES];
	int r;

	if (asprintf(&comment, "root@%s", b->cfg.hostname) < 0)
		return -ENOMEM;
	if (spec->instance_id_seed) {
		r = pf_hostkey_derive_seed(spec->instance_id_seed, b->cfg.hostname, "ssh-ed25519",
					   seed);
		if (r < 0)
			return r;
	}
	r = pf_hostkey_ed25519(spec->instance_id_seed ? seed : NULL, comment, &b->host_keys[0]);
	explicit_bzero(seed, sizeof(seed));
	if (r < 0)
		return pf_error_prefix(r, "cannot make the SSH host key");
	b->n_host_keys = 1;
	return 0;
}

/* The host keys a card holds (verify without the seed): the plan writes them back. */
static int copy_host_keys(const PfRunValues *v, PfNodeBuild *b)
{
	for (size_t i = 0; i < v->n_host_keys && i < PF_NODE_HOST_KEYS_MAX; i++) {
		PfHostKey *k = &b->host_keys[i];

		k->type = strdup(v->host_keys[i].type);
		k->private_key = strdup(v->host_keys[i].private_key);
		k->public_line = strdup(v->host_keys[i].public_line);
		k->fingerprint = strdup("");
		b->n_host_keys++;
		if (!k->type || !k->private_key || !k->public_line || !k->fingerprint)
			return -ENOMEM;
	}
	return 0;
}

static int host_keys(const PfNodeSpec *spec, PfNodeBuild *b)
{
	if (!spec->host_keys)
		return 0;
	if (spec->run && spec->run->n_host_keys > 0)
		return copy_host_keys(spec->run, b);
	return make_host_keys(spec, b);
}

/* The instance-id: read back from a card, the probe's, from the seed, or NULL (the plan
 * makes a random one). */
static int instance_id(const PfNodeSpec *spec, const char *hostname, char **ret)
{
	if (spec->run && spec->run->instance_id)
		return (*ret = strdup(spec->run->instance_id)) ? 0 : -ENOMEM;
	if (spec->run_probe)
		return asprintf(ret, "iid-piflash-%s-" PF_RUN_PROBE_SUFFIX, hostname) < 0 ? -ENOMEM
											  : 0;
	if (spec->instance_id_seed)
		return pf_plan_instance_id_from_seed(spec->instance_id_seed, hostname, ret);
	return 0;
}

int pf_node_build(PfImage *img, const PfNodeSpec *spec, const PfFlavorInfo *f, bool mask_secrets,
		  PfNodeBuild *b)
{
	_cleanup_(freep) char *iid = NULL;
	PfPlanHostKey keys[PF_NODE_HOST_KEYS_MAX];
	PfPlanInput in;
	int r;

	b->flavor = f;
	if (b->cfg.board) {
		r = pf_board_arch_ok(b->cfg.board, f->arch);
		if (r < 0)
			return pf_error_prefix(r, "'%s' is a %s image", pf_image_path(img),
					       f->arch);
	}
	r = host_keys(spec, b);
	if (r < 0)
		return r;
	for (size_t i = 0; i < b->n_host_keys; i++)
		keys[i] = (PfPlanHostKey){
			.name = b->host_keys[i].type + strlen("ssh-"),
			.private_key = b->host_keys[i].private_key,
			.public_line = b->host_keys[i].public_line,
		};
	r = instance_id(spec, b->cfg.hostname, &iid);
	if (r < 0)
		return r;

	in = (PfPlanInput){
		.cfg = &b->cfg,
		.flavor = f,
		.template_dir = spec->template_dir,
		.user_data_path = spec->user_data,
		.instance_id = iid,
		.host_keys = keys,
		.n_host_keys = b->n_host_keys,
		.mask_secrets = mask_secrets,
	};
	r = pf_plan_build(pf_image_tree(img), pf_image_table(img), &in, &b->plan);
	if (r < 0)
		return pf_error_prefix(r, "'%s': cannot plan node '%s' (%s)", pf_image_path(img),
				       b->cfg.hostname, pf_flavor_name(f->flavor));
	return 0;
}

int pf_node_check(PfImage *img, const PfNodeSpec *spec, const PfFlavorInfo *f,
		  const PfInventory *inv, const PfInventoryRow *row)
{
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	int r;

	r = pf_node_settings(spec, inv, row, &nb.cfg);
	if (r >= 0)
		r = pf_node_build(img, spec, f, true, &nb);
	return r;
}

int pf_node_row(const PfNodeSpec *spec, PfInventory **ret_inv, const PfInventoryRow **ret_row)
{
	_cleanup_(pf_inventory_freep) PfInventory *inv = NULL;
	const PfInventoryRow *row;
	int r;

	*ret_row = NULL;
	if (!spec->inventory)
		return 0;
	r = pf_inventory_load(spec->inventory, &inv);
	if (r < 0)
		return r;
	row = pf_inventory_find(inv, spec->node);
	if (!row)
		return -ENOENT; /* pf_inventory_find() said which names there are */
	*ret_row = row;
	*ret_inv = TAKE_PTR(inv);
	return 0;
}

int pf_node_apply(PfImage *img, const PfNodeBuild *b, int64_t now)
{
	return pf_plan_apply(pf_image_tree(img), pf_image_table(img), b->plan, now);
}

int pf_node_read_run_values(PfImage *card, const PfNodeBuild *probe, bool seeded, PfRunValues *ret)
{
	int r;

	r = pf_run_values_read(pf_image_tree(card), pf_image_table(card), probe->plan,
			       probe->cfg.hostname, ret);
	if (r < 0 || !seeded)
		return r;
	/* The seed decides the instance-id and host keys: only the time is read. */
	free(ret->instance_id);
	ret->instance_id = NULL;
	for (size_t i = 0; i < ret->n_host_keys; i++)
		pf_hostkey_done(&ret->host_keys[i]);
	ret->n_host_keys = 0;
	return 0;
}

int pf_run_values_from_file(PfImage *card, const char *spec, PfRunValues *ret)
{
	_cleanup_(freep) char *path = NULL;
	const PfPartition *part;
	PfStat st;
	PfFs *fs;
	int r;

	r = pf_image_lookup(card, spec, true, &part, &fs, &path);
	if (r < 0)
		return r;
	if (pf_fs_stat(fs, path, &st) < 0) {
		pf_error_clear(); /* not there: no time from it */
		return 0;
	}
	ret->now = st.mtime;
	ret->have_now = true;
	return 0;
}
