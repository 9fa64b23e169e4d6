/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-inventory: the CSV inventory (node/inventory.h) from text to node settings.
 *
 * The input is the CSV file. It is parsed twice, strictly and with
 * PF_INVENTORY_KEEP_BAD_ROWS; every good row is applied to a fresh PfNodeConfig
 * (node/config.h) and the result checked with pf_node_config_check(), as `piflash batch` does.
 * Checks: no crash, leak or undefined behaviour, a parsed inventory is consistent (a hostname
 * column, fields per row as columns, each row findable by its hostname), and every failure is
 * a negative errno. The file is named /nonexistent/fuzz.csv so relative ssh_key and
 * wifi_psk_file paths lead nowhere.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "node/config.h"
#include "node/inventory.h"
#include "util/error.h"

#define CSV_NAME "/nonexistent/fuzz.csv"

static void check_inventory(const PfInventory *inv, bool keep_bad)
{
	if (inv->n_columns == 0 || inv->hostname_column >= inv->n_columns)
		abort();
	for (size_t i = 0; i < inv->n_rows; i++) {
		const PfInventoryRow *row = &inv->rows[i];
		const char *host = row->fields[inv->hostname_column];
		const PfInventoryRow *found;
		PfNodeConfig c = {};
		int r;

		for (size_t k = 0; k < inv->n_columns; k++)
			if (!row->fields[k] || !pf_inventory_get(inv, row, inv->columns[k]))
				abort();
		/* Hostnames are unique among the good rows: find() gives this row, or a bad row
		 * of the same name. */
		found = pf_inventory_find(inv, host);
		if (!row->error &&
		    (!found || strcmp(found->fields[inv->hostname_column], host) != 0 ||
		     (!found->error && found != row)))
			abort();
		if (row->error) {
			if (!keep_bad)
				abort();
			continue;
		}
		r = pf_inventory_apply(inv, row, &c);
		if (r > 0)
			abort();
		if (r == 0) {
			r = pf_node_config_check(&c);
			if (r > 0)
				abort();
			(void)pf_node_config_iface(&c);
		}
		pf_node_config_done(&c);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned flags[] = { 0, PF_INVENTORY_KEEP_BAD_ROWS };

	/* The parser's own limit is 16 MiB; a few KiB find what is to be found, faster. */
	if (size > 64 * 1024)
		return 0;
	for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++) {
		PfInventory *inv = NULL;
		int r = pf_inventory_parse_flags((const char *)data, size, CSV_NAME, flags[f],
						 &inv);

		if (r > 0 || (r < 0) != !inv)
			abort();
		if (inv)
			check_inventory(inv, flags[f] & PF_INVENTORY_KEEP_BAD_ROWS);
		pf_inventory_free(inv);
		pf_error_clear();
	}
	return 0;
}
