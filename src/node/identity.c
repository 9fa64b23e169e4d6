/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * What every image gets, whatever its mechanisms: the hostname in /etc/hostname and the
 * 127.0.1.1 line of /etc/hosts; no identity shared between cards (a baked machine-id emptied,
 * D-Bus's copy of it made a link, baked SSH host keys removed or replaced by the node's own);
 * the time zone and locale where cloud-init does not set them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/edit.h"
#include "node/handler.h"
#include "util/error.h"
#include "util/strutil.h"

/* /etc/hostname and the 127.0.1.1 line of /etc/hosts: every flavor. */
static int plan_hostname(PfPlanCtx *ctx)
{
	const PfNodeConfig *c = ctx->cfg;
	PfPlan *p = ctx->plan;
	_cleanup_(freep) char *line = NULL, *hosts = NULL, *edited = NULL, *names = NULL;
	size_t len = 0, elen = 0;
	int r;

	if (asprintf(&line, "%s\n", c->hostname) < 0)
		return -ENOMEM;
	r = pf_plan_add_write(p, 0, "/etc/hostname", line, strlen(line), 0644, 0, 0, false,
			      "the hostname, in place before anything else runs at boot");
	if (r < 0)
		return r;

	r = pf_plan_read_text(ctx->tree, "/etc/hosts", &hosts, &len);
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
	return pf_plan_add_write(p, 0, "/etc/hosts", edited, elen, 0644, 0, 0, false,
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
		r = pf_plan_add_write(
			p, 0, path, k->private_key, strlen(k->private_key), 0600, 0, 0, true,
			"this node's own SSH host key, made by piflash (--host-keys)");
		if (r < 0)
			return r;
		strcat(path, ".pub");
		r = pf_plan_add_write(p, 0, path, k->public_line, strlen(k->public_line), 0644, 0,
				      0, false,
				      "its public half, listed in the operator's known_hosts");
		if (r < 0)
			return r;
	}
	if (f->keygen_unit_link) {
		r = pf_plan_add_simple(
			p, PF_OP_REMOVE, 0, f->keygen_unit_link, NULL, 0, 0, 0,
			"this unit would replace the pre-generated host keys at first boot");
		if (r < 0)
			return r;
	}
	return 0;
}

/* A baked machine-id, D-Bus's copy of it and baked SSH host keys: every flavor. */
static int plan_identity(PfPlanCtx *c)
{
	const PfPlanInput *in = c->in;
	PfPlan *p = c->plan;
	const PfFlavorInfo *f = in->flavor;
	size_t removed = 0;
	int r;

	if (f->machine_id_baked) {
		r = pf_plan_add_write(p, 0, "/etc/machine-id", "", 0, 0444, 0, 0, false,
				      "emptied: systemd makes this node's own id at first boot");
		if (r < 0)
			return r;
	}
	if (f->dbus_machine_id_copy) {
		r = pf_plan_add_simple(p, PF_OP_REMOVE, 0, "/var/lib/dbus/machine-id", NULL, 0, 0,
				       0, "a copy would give every card the same D-Bus id");
		if (r >= 0)
			r = pf_plan_add_simple(p, PF_OP_SYMLINK, 0, "/var/lib/dbus/machine-id",
					       "/etc/machine-id", 0777, 0, 0,
					       "D-Bus reads the node's own machine-id");
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < f->n_host_keys; i++) {
		if (writes_host_key(in, f->host_keys[i]))
			continue; /* replaced below */
		r = pf_plan_add_simple(p, PF_OP_REMOVE, 0, f->host_keys[i], NULL, 0, 0, 0,
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
		r = pf_plan_add_write(
			p, 0, "/etc/systemd/system/piflash-ssh-keygen.service", unit, len, 0644, 0,
			0, false, "nothing in this image makes missing host keys; sshd needs them");
		if (r >= 0)
			r = pf_plan_add_simple(
				p, PF_OP_SYMLINK, 0,
				"/etc/systemd/system/ssh.service.wants/piflash-ssh-keygen.service",
				"/etc/systemd/system/piflash-ssh-keygen.service", 0777, 0, 0,
				"runs before ssh.service");
		if (r < 0)
			return r;
	}
	return 0;
}

static int plan_locale(PfPlanCtx *ctx)
{
	const PfNodeConfig *c = ctx->cfg;
	PfPlan *p = ctx->plan;
	_cleanup_(freep) char *tz = NULL, *zone = NULL, *loc = NULL;
	int r;

	if (c->timezone) {
		if (asprintf(&tz, "%s\n", c->timezone) < 0 ||
		    asprintf(&zone, "/usr/share/zoneinfo/%s", c->timezone) < 0)
			return -ENOMEM;
		r = pf_plan_add_write(p, 0, "/etc/timezone", tz, strlen(tz), 0644, 0, 0, false,
				      "--timezone");
		if (r >= 0)
			r = pf_plan_add_simple(p, PF_OP_REMOVE, 0, "/etc/localtime", NULL, 0, 0, 0,
					       "replaced by a link to the zone");
		if (r >= 0)
			r = pf_plan_add_simple(p, PF_OP_SYMLINK, 0, "/etc/localtime", zone, 0777, 0,
					       0, "--timezone");
		if (r < 0)
			return r;
	}
	if (c->locale) {
		if (asprintf(&loc, "LANG=%s\n", c->locale) < 0)
			return -ENOMEM;
		r = pf_plan_add_write(p, 0, "/etc/default/locale", loc, strlen(loc), 0644, 0, 0,
				      false, "--locale (the locale must exist in the image)");
		if (r < 0)
			return r;
	}
	return 0;
}

const PfHandler pf_handler_hostname = { "hostname", plan_hostname };
const PfHandler pf_handler_identity = { "identity", plan_identity };
const PfHandler pf_handler_locale = { "locale", plan_locale };
