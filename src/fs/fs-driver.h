/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* The drivers behind fs.h. Only fs.c and the drivers' own tests include this. */

#include "fs/fs.h"

extern const PfFsOps pf_fat_ops;
extern const PfFsOps pf_ext_ops;
