/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * An image described as data, for `piflash inspect --json` (README.md documents the fields):
 * its source, partition table, partitions and flavor — the facts read from its files, the
 * decisions the plan follows (node/mechanism.h) with their reasons, and the evidence. And a
 * disk a card could be, for `piflash devices --json`.
 */

#include <json-c/json.h>

#include "build/image.h"
#include "flash/target.h"
#include "node/flavor.h"

/* f may be NULL (no flavor read); error, when set, says why the flavor is unknown. */
json_object *pf_image_describe_json(PfImage *img, const PfFlavorInfo *f, const char *error);

/* A disk as pf_target_probe() saw it: path, size, model, mount points, and why piflash would
 * refuse it (null when it would not). */
json_object *pf_device_describe_json(const PfTargetProbe *p);
