/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Turning sshd on the way the image does. Where an enabled unit turns it on when a file
 * exists (Raspberry Pi OS's sshswitch reads /boot/firmware/ssh), that file is written where
 * the unit looks — on the partition mounted there, never in the directory the mount hides.
 * Where nothing would, the links `systemctl enable` makes are added.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/handler.h"
#include "util/error.h"
#include "util/strutil.h"

static int plan_ssh_switch(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part;
	char why[512];
	int r;

	r = pf_tree_resolve(c->tree, NULL, f->ssh_switch_path, true, &part, &inner);
	if (r < 0)
		return pf_error_prefix(r, "ssh switch '%s'", f->ssh_switch_path);
	/* A /boot path that stays on the root means the boot partition is not mounted there:
	 * the file would be hidden under the mount at boot and do nothing. */
	if (f->boot && part == f->root && startswith(f->ssh_switch_path, "/boot") && !f->boot_mount)
		return pf_error_set(-ENOENT,
				    "ssh switch '%s': /etc/fstab mounts no partition there, so "
				    "the file would be hidden under the boot partition's mount",
				    f->ssh_switch_path);
	snprintf(why, sizeof(why), "%s turns the SSH server on when this file exists",
		 f->ssh_switch_unit);
	return pf_plan_add_write(c->plan, part->number, inner, "", 0, 0644, 0, 0, false, why);
}

static int plan_ssh_enable_unit(PfPlanCtx *c)
{
	const PfFlavorInfo *f = c->f;

	if (!f->ssh_unit)
		return pf_error_set(-ENOENT,
				    "the image has sshd but no ssh.service or sshd.service unit "
				    "to enable");
	return pf_plan_enable_unit(c, f->ssh_unit,
				   "nothing in the image turns the SSH server on at boot");
}

const PfHandler pf_handler_ssh_switch = { "switch-file", plan_ssh_switch };
const PfHandler pf_handler_ssh_enable_unit = { "enable-unit", plan_ssh_enable_unit };
