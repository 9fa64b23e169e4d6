/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Reading facts from the image, below the decisions: the parsers of the files detection reads
 * (exported for the tests) and the facts the mechanism decisions need that the rest of
 * detection does not (detect-mechanism.c). pf_flavor_detect() (flavor.h) runs it all.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fs/tree.h"
#include "node/facts.h"

/*
 * Reads the facts the decisions need that the rest of detection does not: unit states, the
 * netplan and ifupdown configuration, the SSH server and its switches, whether cloud-init is
 * enabled and what it renders the network for. Needs the layout, os, cloud-init and network
 * facts read before. 0 or -ENOMEM.
 */
int pf_mechanism_facts(PfTree *tree, PfFlavorInfo *f);

/* ---- parsers, exported for the tests ---- */

/* The value of key in os-release text (quotes and escapes removed): 0 or -ENOENT. */
int pf_os_release_get(const char *text, size_t len, const char *key, char **ret);

/* The Debian architecture of an ELF header ("arm64", ...; "unknown" for another machine):
 * 0, or -EINVAL (with a detail) when data is no ELF header. */
int pf_elf_arch(const uint8_t *data, size_t size, const char **ret_arch);

/* `__VERSION__ = "X.Y..."` of cloudinit/version.py: 0 or -ENOENT. */
int pf_cloud_init_version_parse(const char *text, size_t len, char **ret_version, int *ret_major,
				int *ret_minor);

/*
 * /etc/network/interfaces text: whether it configures an interface other than lo
 * (*ret_configures), and whether it sources /etc/network/interfaces.d (*ret_sources_d).
 */
void pf_ifupdown_parse(const char *text, bool *ret_configures, bool *ret_sources_d);

/*
 * The file a ConditionPathExists=/ConditionPathExistsGlob= value names, as piflash would create
 * it: a leading '|' dropped, the first alternative of a {a,b} brace taken, glob characters
 * refused. NULL for a negated ('!') or unusable condition; -ENOMEM.
 */
int pf_condition_path(const char *value, char **ret);
