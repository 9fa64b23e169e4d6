/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The image's flavor: which OS it is and what its first boot reads, found from the image's
 * own files — never assumed from a name or a label alone.
 *
 * Detection reads, through the tree (the booted system's view: root filesystem plus fstab
 * mounts, links followed inside the image), os-release, /etc/rpi-issue, the cloud-init
 * version and configuration, the network stacks installed, Raspberry Pi OS's first-boot
 * tools, the NoCloud seed links, /etc/passwd, the baked machine-id and SSH host keys, and
 * the ELF header of /bin/sh. Every file is read with a small bound. The result says what
 * the plan needs (where the seed is, which stack applies a static address, which user gets
 * the keys, what must not be shared between cards) and, as evidence lines, why.
 *
 * The rules, in order (the first that matches wins):
 *   hypriot         os-release has HYPRIOT_OS or HYPRIOT_OS_VERSION
 *   ubuntu          os-release ID=ubuntu
 *   rpios-bookworm  Raspberry Pi OS (/etc/rpi-issue or ID=raspbian) with codename bookworm
 *   raspbian        Raspberry Pi OS with codename wheezy..bullseye
 *   rpios-trixie    Raspberry Pi OS, another codename (trixie and later), with cloud-init
 *   rpios-bookworm  Raspberry Pi OS, another codename, no cloud-init, NetworkManager
 *   raspbian        Raspberry Pi OS, another codename, dhcpcd
 *   debian          ID=debian, ID=raspbian or ID_LIKE with debian, and a network stack
 *                   (systemd-networkd, NetworkManager, ifupdown or dhcpcd)
 * Anything else (no os-release at all, for one) is unknown.
 */

#include "disk/ptable.h"
#include "fs/tree.h"
#include "node/detect.h"
#include "node/facts.h"

/*
 * Detects the flavor of the image. On success *ret holds everything found. An image whose
 * flavor matches no rule is -ENOENT with a detail listing what was found (os-release ID and
 * codename, network stacks, cloud-init); other errors are -ENOMEM or -errno of a read that
 * failed beyond "not there".
 *
 * default_user: with cloud-init, system_info.default_user.name when `users:` has "default",
 * else the first named user of `users:`; on rpios-bookworm none (the uid-1000 account is
 * renamed at first boot: first_user); otherwise the single regular user of /etc/passwd, or
 * "pi" among several; else NULL.
 */
int pf_flavor_detect(PfTree *tree, const PfPtable *t, PfFlavorInfo **ret);

/*
 * Like pf_flavor_detect() but takes the flavor as given (--flavor NAME) and does not fail
 * when the image matches no rule: everything else is filled from the image, and the
 * network stack and default user follow the forced flavor. forced PF_FLAVOR_UNKNOWN keeps
 * what was detected (or unknown). Fails only on -ENOMEM and broken reads.
 */
int pf_flavor_detect_as(PfTree *tree, const PfPtable *t, PfFlavor forced, PfFlavorInfo **ret);

/* pf_flavor_detect_as() with PfDetectOptions (facts.h); a forced network service must be installed
 * (-EOPNOTSUPP with a detail otherwise). */
int pf_flavor_detect_with(PfTree *tree, const PfPtable *t, const PfDetectOptions *o,
			  PfFlavorInfo **ret);
