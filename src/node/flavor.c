/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/detect-ctx.h"
#include "node/flavor.h"
#include "node/mechanism.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- the verdict ---- */

static bool codename_in(const char *codename, const char *const *list)
{
	for (size_t i = 0; codename && list[i]; i++)
		if (streq(codename, list[i]))
			return true;
	return false;
}

static bool like_debian(Ctx *c)
{
	const char *id = c->f->os_id;

	if (id && (streq(id, "debian") || streq(id, "raspbian")))
		return true;
	if (c->os_like) {
		_cleanup_(freep) char *copy = strdup(c->os_like);
		char *save = NULL;

		for (char *w = copy ? strtok_r(copy, " ", &save) : NULL; w;
		     w = strtok_r(NULL, " ", &save))
			if (streq(w, "debian"))
				return true;
	}
	return false;
}

static PfFlavor classify(Ctx *c)
{
	static const char *const old[] = {
		"wheezy", "jessie", "stretch", "buster", "bullseye", NULL
	};
	PfFlavorInfo *f = c->f;
	bool rpi = f->rpi_issue || (f->os_id && streq(f->os_id, "raspbian"));

	if (!c->has_os_release || !f->root)
		return PF_FLAVOR_UNKNOWN;
	if (c->hypriot)
		return PF_FLAVOR_HYPRIOT;
	if (f->os_id && streq(f->os_id, "ubuntu"))
		return PF_FLAVOR_UBUNTU;
	if (rpi) {
		if (f->os_codename && streq(f->os_codename, "bookworm"))
			return PF_FLAVOR_RPIOS_BOOKWORM;
		if (codename_in(f->os_codename, old))
			return PF_FLAVOR_RASPBIAN;
		if (f->has_cloud_init && !f->cloud_init_disabled)
			return PF_FLAVOR_RPIOS_TRIXIE;
		if (f->has_networkmanager)
			return PF_FLAVOR_RPIOS_BOOKWORM;
		if (f->has_dhcpcd)
			return PF_FLAVOR_RASPBIAN;
	}
	/* Only a label now: the mechanisms are decided from the image's files. */
	if (like_debian(c))
		return PF_FLAVOR_DEBIAN;
	return PF_FLAVOR_UNKNOWN;
}

static int pick_default_user(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	const char *u = NULL;

	switch (f->user) {
	case PF_USER_CLOUD_INIT:
		u = f->cloud_user.name;
		break;
	case PF_USER_CUSTOM_TOML:
	case PF_USER_USERCONF:
		break; /* named at first boot: the uid-1000 account is renamed */
	case PF_USER_PASSWD:
	default:
		if (f->n_users == 1)
			u = f->users[0].name;
		for (size_t i = 0; !u && i < f->n_users; i++)
			if (streq(f->users[i].name, "pi"))
				u = "pi";
		break;
	}
	free(f->default_user);
	f->default_user = NULL;
	if (!u)
		return 0;
	f->default_user = strdup(u);
	if (!f->default_user)
		return -ENOMEM;
	f->default_user_in_passwd = pf_passwd_find(c->pw, u) != NULL;
	return 0;
}

static int unknown_detail(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	char net[256];
	size_t l = 0;

	net[0] = 0;
#define ADD(cond, s)                                                                               \
	do {                                                                                       \
		if ((cond) && l < sizeof(net))                                                     \
			l += (size_t)snprintf(net + l, sizeof(net) - l, "%s%s", l ? ", " : "", s); \
	} while (0)
	ADD(f->has_networkmanager, "NetworkManager");
	ADD(f->has_dhcpcd, "dhcpcd");
	ADD(f->has_networkd, "systemd-networkd");
	ADD(f->has_ifupdown, "ifupdown");
	ADD(f->has_netplan, "netplan");
#undef ADD
	if (!f->root)
		return pf_error_set(-ENOENT,
				    "unknown flavor: no root filesystem (no partition with /etc)");
	return pf_error_set(-ENOENT, "unknown flavor: %s%s%s%s%s; network: %s; %s%s%s",
			    c->has_os_release ? "os-release ID=" : "no os-release",
			    c->has_os_release ? (f->os_id ? f->os_id : "(none)") : "",
			    c->has_os_release ? " VERSION_CODENAME=" : "",
			    c->has_os_release ? (f->os_codename ? f->os_codename : "(none)") : "",
			    f->rpi_issue ? ", /etc/rpi-issue" : "", l ? net : "none found",
			    f->has_cloud_init ? "cloud-init" : "no cloud-init",
			    f->cloud_init_version ? " " : "",
			    f->cloud_init_version ? f->cloud_init_version : "");
}

static int detect(PfTree *tree, const PfPtable *t, bool force, const PfDetectOptions *o,
		  PfFlavorInfo **ret)
{
	_cleanup_(pf_flavor_info_freep) PfFlavorInfo *f = calloc(1, sizeof(*f));
	Ctx c = { .tree = tree, .t = t, .f = f };
	PfFlavor forced = o ? o->flavor : PF_FLAVOR_UNKNOWN, detected;
	int r;

	if (!f)
		return -ENOMEM;
	f->cloud_init_major = f->cloud_init_minor = -1;
	f->ssh_deletekeys = -1;

	r = pf_detect_layout(&c);
	if (r >= 0 && f->root)
		r = pf_detect_os(&c);
	if (r >= 0 && f->root)
		r = pf_detect_arch(&c);
	if (r >= 0 && f->root)
		r = pf_detect_cloud_init_version(&c);
	if (r >= 0 && f->root && f->has_cloud_init)
		r = pf_detect_cloud_cfg(&c);
	if (r >= 0 && f->root)
		r = pf_detect_network(&c);
	if (r >= 0 && f->root)
		r = pf_mechanism_facts(tree, f);
	if (r >= 0 && f->root)
		r = pf_detect_seed(&c);
	if (r >= 0 && f->root && f->has_cloud_init)
		r = pf_detect_cloud_user(&c);
	if (r >= 0 && f->root)
		r = pf_detect_accounts(&c);
	if (r >= 0 && f->root)
		r = pf_detect_identity(&c);
	if (r >= 0 && !f->arch && !(f->arch = strdup("unknown")))
		r = -ENOMEM;
	if (r < 0)
		goto out;

	if (f->has_cloud_init && !f->network_config_version)
		f->network_config_version = f->has_netplan ? 2 : 1;
	/* cloud-init before 18 reads version 1 only. */
	if (f->cloud_init_major >= 0 && f->cloud_init_major < 18)
		f->network_config_version = 1;

	detected = classify(&c);
	f->flavor = force && forced != PF_FLAVOR_UNKNOWN ? forced : detected;
	if (!force && detected == PF_FLAVOR_UNKNOWN) {
		r = unknown_detail(&c);
		goto out;
	}
	if (force && forced != PF_FLAVOR_UNKNOWN && forced != detected)
		r = evidence(&c, "flavor: %s as given (the image looks like %s)",
			     pf_flavor_name(forced), pf_flavor_name(detected));
	else
		r = evidence(&c, "flavor: %s", pf_flavor_name(f->flavor));
	if (r >= 0 && f->root)
		r = pf_mechanism_decide(f, o);
	if (r >= 0)
		r = pick_default_user(&c);
	if (r < 0)
		goto out;
	*ret = TAKE_PTR(f);
	r = 0;
out:
	free(c.os_like);
	free(c.hypriot);
	pf_strv_free(c.shells);
	pf_passwd_free(c.pw);
	free(c.shadow);
	pf_detect_cloud_cfg_done(&c.cc);
	return r;
}

int pf_flavor_detect(PfTree *tree, const PfPtable *t, PfFlavorInfo **ret)
{
	return detect(tree, t, false, NULL, ret);
}

int pf_flavor_detect_as(PfTree *tree, const PfPtable *t, PfFlavor forced, PfFlavorInfo **ret)
{
	PfDetectOptions o = { .flavor = forced };

	return detect(tree, t, true, &o, ret);
}

int pf_flavor_detect_with(PfTree *tree, const PfPtable *t, const PfDetectOptions *o,
			  PfFlavorInfo **ret)
{
	return detect(tree, t, o && (o->allow_unknown || o->flavor != PF_FLAVOR_UNKNOWN), o, ret);
}
