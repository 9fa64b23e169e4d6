/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The plan's handlers: one per mechanism a node's settings can reach the image by — a network
 * service, a way to turn sshd on, a way the user is made, cloud-init's seed, the identity every
 * image gets. plan.c picks each from the decisions in PfFlavorInfo (mechanism.c) and runs it;
 * a handler only adds operations and notes to the plan. Adding a network service is one file
 * here plus its template.
 *
 * The helpers below are what handlers share: adding operations, rendering templates, reading
 * the image, enabling a unit the way `systemctl enable` would.
 */

#include "node/config.h"
#include "node/flavor.h"
#include "node/passwd.h"
#include "node/plan.h"
#include "node/template.h"

typedef struct PfPlanCtx {
	PfPlan *plan;
	PfTree *tree;
	const PfPtable *t;
	const PfPlanInput *in;
	const PfNodeConfig *cfg;
	const PfFlavorInfo *f;
	PfTplCtx *tpl;
	const char *user;	      /* the node's user */
	const PfPasswdEntry *pw_user; /* its /etc/passwd entry, NULL if made at first boot */
	PfPasswd *pw;		      /* the image's /etc/passwd, NULL without one */
} PfPlanCtx;

typedef struct PfHandler {
	const char *name; /* as inspect names the mechanism */
	int (*plan)(PfPlanCtx *c);
} PfHandler;

/* Network services (net-*.c), indexed by PfNetStack. */
extern const PfHandler pf_handler_net_cloud_init, pf_handler_net_networkmanager,
	pf_handler_net_dhcpcd, pf_handler_net_networkd, pf_handler_net_ifupdown,
	pf_handler_net_netplan;
/* SSH (ssh.c), the user (user-*.c), cloud-init's seed (seed.c), identity (identity.c). */
extern const PfHandler pf_handler_ssh_switch, pf_handler_ssh_enable_unit;
extern const PfHandler pf_handler_user_passwd, pf_handler_user_custom_toml,
	pf_handler_user_userconf;
extern const PfHandler pf_handler_seed;
extern const PfHandler pf_handler_hostname, pf_handler_identity, pf_handler_locale;

/* What `plan` prints instead of a secret (--mask-secrets). */
#define PF_PLAN_MASK "********"

/* ---- the variables templates see (plan-vars.c) ---- */

/* Every variable of the node's templates, from the settings, the user and the instance-id:
 * 0, -EINVAL (with a detail) for an operator variable piflash sets itself, -EIO, -ENOMEM. */
int pf_plan_vars(const PfPlanInput *in, const char *user, const char *instance_id, PfTplCtx **ret);

/* The instance-id: in->instance_id when set, else a random one. 0, -EIO or -ENOMEM. */
int pf_plan_new_instance_id(const PfPlanInput *in, char **ret);

/* ---- shared by the handlers (plan.c) ---- */

int pf_plan_add_write(PfPlan *p, unsigned part, const char *path, const char *data, size_t size,
		      mode_t mode, uid_t uid, gid_t gid, bool secret, const char *why);
/* mkdir, symlink (target) or remove. */
int pf_plan_add_simple(PfPlan *p, PfOpKind kind, unsigned part, const char *path,
		       const char *target, mode_t mode, uid_t uid, gid_t gid, const char *why);
int pf_plan_add_note(PfPlan *p, const char *fmt, ...) _printf_(2, 3);

/* Renders template name (or the file override_path) with c's variables; YAML is checked. */
int pf_plan_render(PfPlanCtx *c, const char *name, const char *override_path, PfTplMode mode,
		   char **ret, size_t *ret_len);
/* Renders and adds a write of the result. */
int pf_plan_write_rendered(PfPlanCtx *c, const char *tmpl, PfTplMode mode, unsigned part,
			   const char *path, mode_t m, bool secret, const char *why);

/* A text file of the image (booted view); *ret NULL with 0 when it does not exist. */
int pf_plan_read_text(PfTree *tree, const char *path, char **ret, size_t *ret_len);

/* A marked block (# piflash begin/end) rendered from tmpl into the image's file at path. */
int pf_plan_marked_block(PfPlanCtx *c, const char *tmpl, const char *path, const char *why);

/* The links `systemctl enable` makes for unit (its file found in the image). */
int pf_plan_enable_unit(PfPlanCtx *c, const char *unit, const char *why);

/* ~user/.ssh/authorized_keys with the node's keys, owned as the passwd entry says. */
int pf_plan_keys(PfPlanCtx *c, const PfPasswdEntry *u);

/*
 * A mechanism that replaces the user's login (cloud-init's users:, custom.toml, userconf)
 * calls this first: without an SSH key or a password hash it would make a node nobody can
 * log into, which is refused unless the operator said --no-login (then a note says so). what
 * says what the mechanism does to the login ("cloud-init's user-data replaces ..."). Returns
 * 0 or -EPERM with a detail.
 */
int pf_plan_login_check(PfPlanCtx *c, const char *what);

/* The WiFi country as a kernel argument in the boot partition's cmdline.txt. */
int pf_plan_wifi_country_cmdline(PfPlanCtx *c);

/* The path of file in cloud-init's seed directory, and its partition. */
int pf_plan_seed_path(const PfFlavorInfo *f, const char *file, unsigned *ret_part, char *path,
		      size_t size);

/* stat of path in the booted view, links followed. */
int pf_plan_stat(PfTree *tree, const PfPtable *t, const char *path, PfStat *ret);

/* With a static address and DNS servers, /etc/resolv.conf lists them — unless it is a link
 * (systemd-resolved's stub, resolvconf), whose manager gets them from the service. */
int pf_plan_resolv_conf(PfPlanCtx *c, const char *why);
