/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Pieces of the ext2/3/4 driver (ext.c) that its unit test reaches directly. Everything
 * else goes through fs.h and pf_ext_ops.
 */

#include <et/com_err.h>

/* Maps a libext2fs error code to a negative errno: the single place where libext2fs codes
 * become errno values. Codes in the errno range pass through; unknown codes are -EIO. */
int pf_ext_errno(errcode_t code);
