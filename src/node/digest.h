/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The digest of a node's settings, next to the settings it hashes (node/config.h): a field of
 * PfNodeConfig that shapes the image and is left out here would let `piflash batch` take an
 * artifact built with another value for up to date. Add each new field here.
 */

#include "node/config.h"

/* SHA-256 over common (the digest of what every node shares) and every setting of c. */
void pf_node_config_digest(const PfNodeConfig *c, const char *common, char out[65]);
