/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The cluster inventory: one CSV file, one row per node.
 *
 *     hostname,ip,gateway,ssh_key,board,group
 *     master1,10.0.0.11/24,10.0.0.1,keys/admin.pub,pi4,masters
 *     worker1,10.0.0.21/24,10.0.0.1,keys/admin.pub,pi4,workers
 *
 * RFC 4180: a header row, quoted fields with "" escapes, commas and newlines inside quotes,
 * CRLF or LF, a UTF-8 byte-order mark and a trailing empty line tolerated. Where the RFC is
 * silent: empty lines are skipped, spaces and tabs around a field (outside quotes) are
 * dropped, a quote inside an unquoted field or text after a closing quote is an error (it is
 * nearly always a mistake). The file must be UTF-8 without NUL bytes.
 *
 * Header names are trimmed and lower-cased, must be valid variable names ([a-z_][a-z0-9_]*)
 * and unique, and must include "hostname". Known columns (hostname, domain, ip, gateway, dns,
 * iface, user, password_hash, ssh_password, ssh_key, board, timezone, locale, wifi_ssid,
 * wifi_country, wifi_psk_file) are settings (config.h); "group" is the Ansible group(s) of the
 * node (names separated by spaces or commas) and reaches the templates as a variable, as does
 * every column named var_NAME ({{var_NAME}}). Any other column is an error naming the header's
 * file:line:column and the known column it is closest to ("did you mean ssh_key?"): a
 * misspelt column would otherwise build every node without the setting. Columns "wifi_psk"
 * and "password" are refused: secrets do not belong in an inventory.
 *
 * The whole file is validated when loaded — every cell through pf_node_config_set_at(), each
 * row's network (gateway in subnet), hostnames and addresses unique — so a bad row stops
 * `piflash batch` before the first card. Positions in messages are "file:line:column", both
 * 1-based; the column is the byte column in that line where the field starts (what editors
 * and compilers show), and messages also name the CSV column. A record-level error (wrong
 * number of fields) gives the line the record starts on.
 *
 * Limits: file ≤ 16 MiB, ≤ 10000 rows, ≤ 256 columns, field ≤ 16 KiB.
 */

#include <stddef.h>

#include "node/config.h"
#include "util/macros.h"

#define PF_INVENTORY_FILE_MAX (16u * 1024 * 1024)
#define PF_INVENTORY_ROWS_MAX 10000u
#define PF_INVENTORY_COLUMNS_MAX 256u
#define PF_INVENTORY_FIELD_MAX (16u * 1024)

typedef struct PfInventoryPos {
	unsigned line;	 /* 1-based */
	unsigned column; /* 1-based byte column */
} PfInventoryPos;

typedef struct PfInventoryRow {
	unsigned line;	     /* where the record starts */
	char **fields;	     /* n_columns values, "" when empty */
	PfInventoryPos *pos; /* where each field starts */
	char *error;	     /* with PF_INVENTORY_KEEP_BAD_ROWS: why this row is unusable */
} PfInventoryRow;

typedef struct PfInventory {
	char *path;	/* as given, for messages */
	char *dir;	/* the file's directory: relative ssh_key/wifi_psk_file paths start here */
	char **columns; /* lower-cased names */
	size_t n_columns;
	size_t hostname_column;
	PfInventoryRow *rows;
	size_t n_rows;
} PfInventory;

/* Reads (regular file, ≤ 16 MiB), parses and validates path. Returns 0 or -errno with a
 * detail "path:line:column: ...". */
int pf_inventory_load(const char *path, PfInventory **ret);

/* The same on text in memory; name stands for the path in messages, and its directory is
 * where relative paths start. */
int pf_inventory_parse(const char *text, size_t len, const char *name, PfInventory **ret);

/*
 * With PF_INVENTORY_KEEP_BAD_ROWS, a row whose own fields are wrong (an address, a key, a
 * group) does not fail the whole file: its message ("path:line:column: ...") is kept in
 * row->error and the row takes no part in the uniqueness checks. The file's structure
 * (syntax, header, field counts, empty hostnames) and duplicate hostnames or addresses
 * among the good rows still fail it. For `piflash batch`, where one bad node must not
 * stop the others.
 */
#define PF_INVENTORY_KEEP_BAD_ROWS 1u
int pf_inventory_load_flags(const char *path, unsigned flags, PfInventory **ret);
int pf_inventory_parse_flags(const char *text, size_t len, const char *name, unsigned flags,
			     PfInventory **ret);

PfInventory *pf_inventory_free(PfInventory *inv);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfInventory *, pf_inventory_free);

/* The row of hostname, or NULL with a detail (-ENOENT) naming the file and a few of its
 * hostnames. */
const PfInventoryRow *pf_inventory_find(const PfInventory *inv, const char *hostname);

/* The value of column name in row, or NULL if there is no such column. */
const char *pf_inventory_get(const PfInventory *inv, const PfInventoryRow *row, const char *name);

/*
 * Applies a row to c: pf_node_config_set_at() for each non-empty field, in column order, with
 * origin "path:line:column" and relative paths taken from the CSV's directory. Apply the row
 * first and command-line options after, so that they override it. Returns 0 or -errno.
 */
int pf_inventory_apply(const PfInventory *inv, const PfInventoryRow *row, PfNodeConfig *c);
