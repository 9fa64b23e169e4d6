/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "node/edit.h"
#include "node/handler.h"
#include "node/passwd.h"
#include "node/plan.h"
#include "node/template.h"
#include "node/units.h"
#include "util/error.h"
#include "util/strutil.h"

#define TEXT_MAX_BYTES (1024u * 1024u)

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

int pf_plan_stat(PfTree *tree, const PfPtable *t, const char *path, PfStat *ret)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *where;
	PfFs *fs;
	int r;

	r = pf_tree_resolve(tree, NULL, path, true, &where, &inner);
	if (r < 0)
		return r;
	r = pf_tree_fs(tree, where, &fs);
	if (r < 0)
		return r;
	return pf_fs_stat(fs, inner, ret);
}

/* ---- shared by the handlers ---- */

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

/* Only cloud-init reads user-data: elsewhere the file would be dropped unsaid. */
static int check_user_data(const PfPlanInput *in)
{
	const PfFlavorInfo *f = in->flavor;

	if (!in->user_data_path || f->user == PF_USER_CLOUD_INIT)
		return 0;
	return pf_error_set(-EOPNOTSUPP,
			    "--user-data '%s': nothing on this image reads user-data (the user is "
			    "made by %s: %s)",
			    in->user_data_path, pf_user_way_name(f->user),
			    f->user_why ? f->user_why : "no cloud-init seed");
}

/* The node's user into p->user (with a note when a first boot names it), and with cloud-init
 * the instance-id. */
static int plan_user_and_id(PfPlan *p, const PfPlanInput *in)
{
	const char *user = NULL;
	int r;

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
	if (in->flavor->user == PF_USER_CLOUD_INIT &&
	    pf_plan_new_instance_id(in, &p->instance_id) < 0)
		return -ENOMEM;
	return 0;
}

/* The handlers of the mechanisms inspect named, in the order their files depend on. */
static int run_handlers(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	int r;

	c->plan->mech_net = pf_plan_net_handler(f);
	c->plan->mech_user = pf_user_way_name(f->user);
	c->plan->mech_ssh = pf_ssh_way_name(f->ssh);

	r = run(c, &pf_handler_hostname);
	if (r >= 0)
		r = run(c, user_handlers[f->user]);
	if (r >= 0)
		r = plan_network(c);
	if (r >= 0)
		r = plan_ssh(c);
	if (r >= 0 && f->user != PF_USER_CLOUD_INIT)
		r = run(c, &pf_handler_locale);
	if (r >= 0)
		r = run(c, &pf_handler_identity);
	return r;
}

int pf_plan_build(PfTree *tree, const PfPtable *t, const PfPlanInput *in, PfPlan **ret)
{
	_cleanup_(pf_plan_freep) PfPlan *p = calloc(1, sizeof(PfPlan));
	_cleanup_(pf_tpl_ctx_freep) PfTplCtx *tpl = NULL;
	_cleanup_(pf_passwd_freep) PfPasswd *pw = NULL;
	PfPlanCtx c;
	int r;

	if (!p)
		return -ENOMEM;
	r = check_user_data(in);
	if (r >= 0)
		r = plan_user_and_id(p, in);
	if (r >= 0)
		r = pf_plan_vars(in, p->user, p->instance_id, &tpl);
	if (r < 0)
		return r;
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
			 .f = in->flavor,
			 .tpl = tpl,
			 .user = p->user,
			 .pw = pw,
			 .pw_user = pw ? pf_passwd_find(pw, p->user) : NULL };
	r = run_handlers(&c);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(p);
	return 0;
}
