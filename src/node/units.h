/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * systemd units as the booted image will see them, read from the unit files and the links
 * `systemctl enable` and `systemctl mask` leave behind — without running anything.
 *
 * A unit is masked when /etc/systemd/system/NAME is a link to /dev/null; enabled when a link
 * named NAME (or one of its aliases) sits in a *.wants or *.requires directory of
 * /etc/systemd/system (the administrator's enablement) or of /lib/systemd/system and
 * /usr/lib/systemd/system (enabled statically by its package); present when only its file
 * exists. A unit merely present does not run at boot. Every state comes with the path that
 * proves it, for `inspect`.
 *
 * The small unit-file parser here reads what piflash's decisions need: [Install] WantedBy= and
 * Alias= (to enable a unit the way systemctl would), Condition*= and Exec*= lines (to see what a
 * unit reads and runs).
 */

#include <stdbool.h>
#include <stddef.h>

#include "fs/tree.h"
#include "util/macros.h"

typedef enum PfUnitState {
	PF_UNIT_ABSENT,	 /* no unit file */
	PF_UNIT_PRESENT, /* a unit file, nothing enables it */
	PF_UNIT_ENABLED,
	PF_UNIT_MASKED,
	_PF_UNIT_STATE_MAX,
} PfUnitState;

/* "absent", "present", "enabled", "masked". */
const char *pf_unit_state_name(PfUnitState s);

typedef struct PfUnit {
	char *name;	   /* "ssh.service" */
	PfUnitState state; /* as above */
	char *file;	   /* the unit file ("/lib/systemd/system/ssh.service"), NULL if absent */
	char *link;	   /* the link that enables or masks it, NULL otherwise */
} PfUnit;

void pf_unit_done(PfUnit *u);

typedef struct PfUnits PfUnits;

/*
 * Reads the enablement links of the image once: every link in /etc/systemd/system, in its
 * *.wants and *.requires directories, and in the packages' *.wants directories. Bounded (at
 * most 4096 links). 0, or -ENOMEM; directories that are missing are simply empty.
 */
int pf_units_load(PfTree *tree, PfUnits **ret);
PfUnits *pf_units_free(PfUnits *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfUnits *, pf_units_free);

/* The state of unit name (aliases named in its [Install] section are followed): 0 or -ENOMEM. */
int pf_units_get(PfUnits *u, const char *name, PfUnit *ret);

/*
 * Calls fn for every enabled unit whose file can be read (each once, by its link's name), with
 * the unit's text; stops at the first fn that returns non-zero and returns that. Bounded to
 * 512 units of at most 64 KiB each.
 */
int pf_units_foreach_enabled(PfUnits *u,
			     int (*fn)(const char *name, const char *link, const char *text,
				       void *userdata),
			     void *userdata);

/* ---- unit files ---- */

/*
 * The values of key in section of a unit file's text, in order (continuation lines joined,
 * an empty assignment resets the list as systemd does). A NULL-terminated strv (maybe empty)
 * in *ret: 0 or -ENOMEM.
 */
int pf_unit_file_values(const char *text, const char *section, const char *key, char ***ret);

/*
 * The links `systemctl enable` would make for unit name whose file is file_path and text is
 * text: "/etc/systemd/system/T.wants/NAME" for each WantedBy=T (and .requires for RequiredBy=),
 * "/etc/systemd/system/ALIAS" for each Alias=. NULL-terminated strv in *ret; -ENOENT (with a
 * detail) when the unit has no [Install] section to enable it by.
 */
int pf_unit_enable_links(const char *name, const char *text, char ***ret);
