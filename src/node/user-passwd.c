/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The user as the image's /etc/passwd has it: the node's keys in ~user/.ssh/authorized_keys
 * (owner and group from passwd, never assumed), a password hash in /etc/shadow.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "node/edit.h"
#include "node/handler.h"
#include "util/error.h"
#include "util/strutil.h"

static int plan_shadow(PfPlan *p, PfTree *tree, const PfPtable *t, const PfNodeConfig *c,
		       const char *user)
{
	_cleanup_(freep) char *old = NULL, *edited = NULL;
	size_t len = 0, elen = 0;
	PfStat st;
	int r;

	if (!c->password_hash)
		return 0;
	r = pf_plan_read_text(tree, "/etc/shadow", &old, &len);
	if (r < 0)
		return r;
	if (!old)
		return pf_error_set(-ENOENT, "the image has no /etc/shadow for --password-hash");
	r = pf_plan_stat(tree, t, "/etc/shadow", &st);
	if (r < 0)
		return r;
	r = pf_edit_shadow(old, len, user, c->password_hash, &edited, &elen);
	if (r < 0)
		return r;
	r = pf_plan_add_write(p, 0, "/etc/shadow", edited, elen, st.mode & 07777, st.uid, st.gid,
			      true, "the password hash given with --password-hash");
	explicit_bzero(edited, elen);
	return r;
}

static int plan_user_passwd(PfPlanCtx *c)
{
	int r;

	if (!c->pw_user)
		return pf_error_set(-ENOENT, "no user '%s' in the image's /etc/passwd", c->user);
	/* piflash changes no login here but the ones it is given: the image's stays. */
	if (c->cfg->n_keys == 0 && !c->cfg->password_hash) {
		r = pf_plan_add_note(c->plan,
				     "no SSH key or password hash given: the login of '%s' stays "
				     "as the image has it (its /etc/shadow, its authorized_keys)",
				     c->user);
		if (r < 0)
			return r;
	}
	r = pf_plan_keys(c, c->pw_user);
	if (r < 0)
		return r;
	return plan_shadow(c->plan, c->tree, c->t, c->cfg, c->user);
}

const PfHandler pf_handler_user_passwd = { "passwd", plan_user_passwd };
