/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Raspberry Pi OS's first-boot user set-up: custom.toml on the boot partition, read once by
 * raspberrypi-sys-mods' init_config (hostname, user, password, keys, SSH); or, where the image
 * has no init_config, userconf.txt for userconf-pi, which renames the uid-1000 user (home and
 * all) — the keys then go into that user's home, which keeps its uid.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/handler.h"
#include "util/error.h"
#include "util/strutil.h"

static int boot_part(PfPlanCtx *c, unsigned *ret)
{
	if (!c->f->boot)
		return pf_error_set(-ENOENT, "no boot partition for the first-boot files");
	*ret = c->f->boot->number;
	return 0;
}

static int plan_custom_toml(PfPlanCtx *c)
{
	unsigned part = 0;
	int r = boot_part(c, &part);

	if (r < 0)
		return r;
	r = pf_plan_login_check(c, "custom.toml makes the user at first boot, with the keys and "
				   "password piflash gives it");
	if (r < 0)
		return r;
	return pf_plan_write_rendered(c, "custom.toml", PF_TPL_TEXT, part, "/custom.toml", 0644,
				      c->cfg->password_hash != NULL,
				      "init_config makes the user, its keys and the hostname at "
				      "first boot");
}

static int plan_userconf(PfPlanCtx *c)
{
	_cleanup_(freep) char *uc = NULL;
	const PfPasswdEntry *first = c->pw ? pf_passwd_find_uid(c->pw, 1000) : NULL;
	const char *hash = c->cfg->password_hash;
	unsigned part = 0;
	int r = boot_part(c, &part);

	if (r < 0)
		return r;
	r = pf_plan_login_check(c, "userconf.txt names the first user at first boot, with the "
				   "password piflash gives it (none: locked)");
	if (r < 0)
		return r;
	if (asprintf(&uc, "%s:%s\n", c->user,
		     hash ? (c->in->mask_secrets ? PF_PLAN_MASK : hash) : "!") < 0)
		return -ENOMEM;
	r = pf_plan_add_write(c->plan, part, "/userconf.txt", uc, strlen(uc), 0644, 0, 0,
			      hash != NULL, "userconf-pi names the first user at first boot");
	explicit_bzero(uc, strlen(uc));
	if (r < 0)
		return r;
	if (!first)
		return pf_error_set(-ENOENT,
				    "the image has no user with uid 1000 for userconf to rename to "
				    "'%s'",
				    c->user);
	return pf_plan_keys(c, first); /* renamed, home and all, at first boot */
}

const PfHandler pf_handler_user_custom_toml = { "custom.toml", plan_custom_toml };
const PfHandler pf_handler_user_userconf = { "userconf", plan_userconf };
