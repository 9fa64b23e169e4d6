/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Mechanisms: which service of the image will apply the node's address, what turns its SSH
 * server on, who makes its user — decided once, here, from facts read in the image, never from
 * the distribution's name. `inspect` prints these decisions and the plan's handlers follow
 * them, so the two cannot disagree.
 *
 * The network service in charge of the wired interface at boot, the first that holds:
 *   1. --network NAME (it must be installed; a unit not enabled is enabled by the plan)
 *   2. cloud-init: installed, its units enabled, not disabled (cloud-init.disabled, the kernel
 *      command line), its network config not disabled, a seed found and a renderer it can
 *      use — it applies network-config from the seed
 *   3. netplan: a netplan file defines ethernets (netplan generates the config at boot)
 *   4. ifupdown: networking.service enabled and /etc/network/interfaces (or a file it sources)
 *      configures an interface other than lo
 *   5. NetworkManager.service enabled
 *   6. systemd-networkd.service enabled
 *   7. dhcpcd.service (or dhcpcd5.service) enabled
 * Otherwise none: a static address is refused, with this evidence.
 *
 * SSH: sshd's unit (ssh.service, sshd.service or ssh.socket) enabled → nothing to do; masked →
 * refused; an enabled unit whose Condition*= names a file and whose Exec*= enables ssh → that
 * file (Raspberry Pi OS's sshswitch); custom.toml at first boot → its [ssh] section; otherwise
 * the links `systemctl enable` would make.
 *
 * The user: cloud-init when it reads a seed; raspberrypi-sys-mods' init_config (custom.toml)
 * when firstboot runs from cmdline.txt; userconf-pi when its service is enabled; otherwise the
 * image's /etc/passwd.
 */

#include "node/detect.h"
#include "node/facts.h"

/* Makes the decisions above from f's facts (and o's overrides), with a line of evidence each.
 * -EOPNOTSUPP (with a detail) for an override the image cannot honour; -ENOMEM. */
int pf_mechanism_decide(PfFlavorInfo *f, const PfDetectOptions *o);
