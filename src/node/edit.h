/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Edits of configuration files that piflash changes rather than replaces: its own marked
 * block in a file such as dhcpcd.conf, and the 127.0.1.1 line of /etc/hosts. Each edit is
 * idempotent: running piflash again on an image it already customised replaces its own
 * changes instead of adding more.
 */

#include <stddef.h>

#define PF_EDIT_BEGIN "# piflash begin"
#define PF_EDIT_END "# piflash end"

/*
 * Returns text with the block between lines starting with PF_EDIT_BEGIN and PF_EDIT_END
 * (inclusive) replaced by block — or, when there is none, block appended (after a newline if
 * text does not end in one). block must itself start with PF_EDIT_BEGIN and end with a line
 * PF_EDIT_END. Returns 0 or -errno (-EINVAL for an unterminated block, with a detail).
 */
int pf_edit_replace_block(const char *text, size_t len, const char *block, char **ret,
			  size_t *ret_len);

/*
 * Returns /etc/hosts text with every 127.0.1.1 line replaced by one line
 * "127.0.1.1\t<names>" (the first one's position kept; appended if there was none).
 */
int pf_edit_hosts(const char *text, size_t len, const char *names, char **ret, size_t *ret_len);

/*
 * Returns text with the kernel command line (one line) carrying key=value: an existing
 * key=... word is replaced, else the word appended.
 */
int pf_edit_cmdline(const char *text, size_t len, const char *key, const char *value, char **ret,
		    size_t *ret_len);

/* Replaces the password field of user's line in /etc/shadow text. -ENOENT if no such line. */
int pf_edit_shadow(const char *text, size_t len, const char *user, const char *hash, char **ret,
		   size_t *ret_len);

/*
 * Returns /etc/network/interfaces text without what configures iface: its `iface IFACE ...`
 * stanzas (with their option lines) and its name on `auto`/`allow-*` lines (a line naming
 * only it goes). Comments stay; piflash's marked block is left for pf_edit_replace_block().
 */
int pf_edit_ifupdown_drop(const char *text, size_t len, const char *iface, char **ret,
			  size_t *ret_len);
