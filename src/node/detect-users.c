/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/config.h"
#include "node/detect-ctx.h"
#include "node/passwd.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- accounts ---- */

/*
 * /etc/shells, when the image has one: which login shells count. One that cannot be read or
 * parsed is said in the evidence and left out, the built-in rule judging the shells instead
 * (pf_shell_is_login()): a bad /etc/shells must not hide the image's users. 0 or -ENOMEM.
 */
static int read_shells(Ctx *c)
{
	_cleanup_(freep) char *shells = NULL;
	size_t len = 0;
	int r;

	r = pf_detect_read_text(c, "/etc/shells", PF_PASSWD_MAX_BYTES, &shells, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return 0;
	r = pf_shells_parse(shells, len, &c->shells);
	if (r < 0)
		return pf_detect_absent(c, r, "/etc/shells") == -ENOMEM ? -ENOMEM : 0;
	return 0;
}

/* /etc/passwd into c->pw: 1 when read, 0 when missing or unusable (with evidence), -ENOMEM. */
static int read_passwd(Ctx *c)
{
	_cleanup_(freep) char *text = NULL;
	size_t len = 0;
	int r;

	r = pf_detect_read_text(c, "/etc/passwd", PF_PASSWD_MAX_BYTES, &text, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return evidence(c, "no /etc/passwd");
	r = pf_passwd_parse(text, len, &c->pw);
	if (r < 0) {
		if (r == -ENOMEM)
			return r;
		r = evidence(c, "/etc/passwd: %s, ignoring", pf_error_message(r));
		pf_error_clear();
		return r;
	}
	if (c->pw->n_skipped &&
	    evidence(c, "/etc/passwd: %zu malformed lines skipped (the first: line %u)",
		     c->pw->n_skipped, c->pw->first_skipped_line) < 0)
		return -ENOMEM;
	return 1;
}

/* The regular users of /etc/passwd. Names from the image reach inventory.ini, known_hosts and
 * terminals: only those the node's own rules accept are kept. */
static int regular_users(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	int r;

	r = pf_passwd_regular(c->pw, c->shells, &f->users, &f->n_users);
	if (r < 0)
		return r;
	for (size_t i = 0; i < f->n_users;) {
		if (pf_username_validate(f->users[i].name) >= 0) {
			i++;
			continue;
		}
		pf_error_clear();
		pf_passwd_entry_done(&f->users[i]);
		memmove(&f->users[i], &f->users[i + 1], (f->n_users - i - 1) * sizeof(f->users[0]));
		f->n_users--;
	}
	return 0;
}

/* The uid-1000 account (the one userconf renames) and the state of its password. */
static int first_user(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	const PfPasswdEntry *first = pf_passwd_find_uid(c->pw, 1000);

	f->first_user_password = PF_PASSWORD_DISABLED;
	if (first && pf_username_validate(first->name) < 0) {
		pf_error_clear();
		first = NULL;
	}
	if (!first)
		return 0;
	f->first_user = strdup(first->name);
	if (!f->first_user)
		return -ENOMEM;
	if (c->shadow && pf_shadow_state(c->shadow, c->shadow_len, first->name,
					 &f->first_user_password) == -ENOMEM)
		return -ENOMEM;
	return 0;
}

/* One line of evidence naming the regular users, their uids and password states. */
static int users_evidence(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	char buf[512];
	size_t l = 0;

	if (f->n_users == 0)
		return evidence(c, "users: no regular user (uid %u..%u with a login shell)",
				PF_UID_REGULAR_MIN, PF_UID_REGULAR_MAX);
	buf[0] = 0;
	for (size_t i = 0; i < f->n_users && l < sizeof(buf); i++) {
		PfPasswordState st = PF_PASSWORD_DISABLED;
		bool known = c->shadow &&
			     pf_shadow_state(c->shadow, c->shadow_len, f->users[i].name, &st) >= 0;

		l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%s (uid %u%s%s)", i ? ", " : "",
				      f->users[i].name, (unsigned)f->users[i].uid,
				      known ? ", password " : "",
				      known ? pf_password_state_name(st) : "");
	}
	return evidence(c, "users: %s", buf);
}

int pf_detect_accounts(Ctx *c)
{
	int r;

	r = read_shells(c);
	if (r < 0)
		return r;
	r = read_passwd(c);
	if (r <= 0)
		return r;
	r = regular_users(c);
	if (r < 0)
		return r;
	r = pf_detect_read_text(c, "/etc/shadow", PF_PASSWD_MAX_BYTES, &c->shadow, &c->shadow_len);
	if (r == -ENOMEM)
		return r;
	r = first_user(c);
	if (r < 0)
		return r;
	return users_evidence(c);
}
