/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for node/inventory.c: the cluster CSV. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/config.h"
#include "node/inventory.h"
#include "util/error.h"
#include "util/macros.h"

#include "test-util.h"

#define ED25519_LINE                                                                               \
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDdWzoOUgFtZvNTk51NoNQan132+VDWLvv+KD0hRbGqt "        \
	"test@piflash"

static char tmp[] = "/tmp/piflash-test-inventory-XXXXXX";

static PfInventory *parse_ok(const char *text)
{
	PfInventory *inv = NULL;
	int r;

	pf_error_clear();
	r = pf_inventory_parse(text, strlen(text), "cluster.csv", &inv);
	if (r < 0)
		fail_msg("parse failed: %s", pf_error_message(r));
	return inv;
}

static int parse(const char *text)
{
	PfInventory *inv = NULL;
	int r;

	pf_error_clear();
	r = pf_inventory_parse(text, strlen(text), "cluster.csv", &inv);
	pf_inventory_free(inv);
	return r;
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return remove_tree(tmp);
}

static void test_basic(void **state)
{
	PfInventory *inv;
	const PfInventoryRow *row;

	(void)state;
	inv = parse_ok("hostname,ip,gateway,board,group,var_rack\n"
		       "master1,10.0.0.11/24,10.0.0.1,pi4,masters,A1\n"
		       "worker1,10.0.0.21/24,10.0.0.1,pi4,workers,A2\n"
		       "worker2,,,pi3,\"workers, arm64\",\n");
	assert_int_equal(inv->n_columns, 6);
	assert_int_equal(inv->n_rows, 3);
	assert_string_equal(inv->columns[5], "var_rack");
	assert_int_equal(inv->hostname_column, 0);
	assert_string_equal(inv->dir, ".");
	row = pf_inventory_find(inv, "worker1");
	assert_non_null(row);
	assert_int_equal(row->line, 3);
	assert_string_equal(pf_inventory_get(inv, row, "ip"), "10.0.0.21/24");
	assert_int_equal(row->pos[1].line, 3);
	assert_int_equal(row->pos[1].column, 9);
	assert_null(pf_inventory_get(inv, row, "nothing"));
	row = pf_inventory_find(inv, "worker2");
	assert_non_null(row);
	assert_string_equal(pf_inventory_get(inv, row, "group"), "workers, arm64");
	assert_string_equal(pf_inventory_get(inv, row, "ip"), "");
	pf_inventory_free(inv);
}

static void test_quoting(void **state)
{
	PfInventory *inv;
	const PfInventoryRow *row;

	(void)state;
	inv = parse_ok("hostname,var_motd,var_note\n"
		       "w1,\"Hello, world\",\"She said \"\"hi\"\"\"\n"
		       "w2,\"line one\nline two\",\"\"\n"
		       "w3, spaced , \"kept  \" \n");
	row = pf_inventory_find(inv, "w1");
	assert_string_equal(pf_inventory_get(inv, row, "var_motd"), "Hello, world");
	assert_string_equal(pf_inventory_get(inv, row, "var_note"), "She said \"hi\"");
	row = pf_inventory_find(inv, "w2");
	assert_int_equal(row->line, 3);
	assert_string_equal(pf_inventory_get(inv, row, "var_motd"), "line one\nline two");
	assert_string_equal(pf_inventory_get(inv, row, "var_note"), "");
	/* The record after a field spanning two lines starts on line 5. */
	row = pf_inventory_find(inv, "w3");
	assert_int_equal(row->line, 5);
	assert_string_equal(pf_inventory_get(inv, row, "var_motd"), "spaced");
	assert_string_equal(pf_inventory_get(inv, row, "var_note"), "kept  ");
	pf_inventory_free(inv);
}

static void test_crlf_bom_blank(void **state)
{
	PfInventory *inv;
	const PfInventoryRow *row;
	PfNodeConfig c = {};

	(void)state;
	inv = parse_ok("\xef\xbb\xbf"
		       "Hostname , IP,Var_Note\r\n"
		       "w1,10.0.0.11/24,\r\n"
		       "\r\n"
		       "w2,\"10.0.0.12/24\",x\r\n"
		       "w3,,\"a\r\nb\"\r\n"
		       "\r\n");
	/* Header names trimmed and lower-cased; the BOM is not part of the first name. */
	assert_string_equal(inv->columns[0], "hostname");
	assert_string_equal(inv->columns[1], "ip");
	assert_int_equal(inv->n_rows, 3);
	row = pf_inventory_find(inv, "w2");
	assert_non_null(row);
	assert_int_equal(row->line, 4);
	assert_int_equal(pf_inventory_apply(inv, row, &c), 0);
	assert_int_equal(c.ip, 0x0a00000c);
	/* CRLF inside quotes becomes LF. */
	assert_string_equal(pf_inventory_get(inv, pf_inventory_find(inv, "w3"), "var_note"),
			    "a\nb");
	pf_node_config_done(&c);
	pf_inventory_free(inv);

	/* The BOM does not count as columns. */
	ERR(parse("\xef\xbb\xbfhostname,ip\nw1,10.0.0.300/24\n"), -EINVAL, "cluster.csv:2:4: ip");
	/* LF only, no trailing newline. */
	inv = parse_ok("hostname\nw1\nw2");
	assert_int_equal(inv->n_rows, 2);
	pf_inventory_free(inv);
}

static void test_syntax_errors(void **state)
{
	(void)state;
	/* Where the quote opened, not where the file ended. */
	ERR(parse("hostname,var_note\nw1,ok\nw2,\"never\nclosed,\nw3,x\n"), -EINVAL,
	    "cluster.csv:3:4:", "never closed");
	ERR(parse("hostname,var_note\nw1,a\"b\n"), -EINVAL, "cluster.csv:2:5:", "quote inside");
	ERR(parse("hostname,var_note\nw1,\"ab\"c\n"), -EINVAL,
	    "cluster.csv:2:8:", "after the closing quote");
	ERR(parse("hostname,ip\nw1,10.0.0.1/24\nw2\nw3,10.0.0.3/24\n"), -EINVAL,
	    "cluster.csv:3:", "1 field,", "2 columns");
	ERR(parse("hostname,ip\nw1,10.0.0.1/24,extra\n"), -EINVAL, "cluster.csv:2:", "3 fields");
	/* A record spanning lines is named by its first line. */
	ERR(parse("hostname,ip\nw1,10.0.0.1/24\n\"w2\",\"x\ny\",z\n"), -EINVAL,
	    "cluster.csv:3:", "3 fields");
	ERR(parse(""), -EINVAL, "cluster.csv", "empty file");
	ERR(parse("\n\n"), -EINVAL, "empty file");
	ERR(parse("hostname,var_note\nw1,a\xff\n"), -EINVAL, "cluster.csv:2:5:", "UTF-8");
	{
		static const char nul[] = "hostname,var_note\nw1,a\0b\n";

		PfInventory *inv = NULL;
		pf_error_clear();
		check_err(pf_inventory_parse(nul, sizeof(nul) - 1, "cluster.csv", &inv), -EINVAL,
			  "cluster.csv:2:5:", "NUL", NULL);
	}
	ERR(parse("hostname,var_note\nw1,a\rb\n"), -EINVAL, "cluster.csv:2:5:", "carriage return");
}

static void test_header_errors(void **state)
{
	(void)state;
	ERR(parse("var_name,ip\nw1,10.0.0.1/24\n"), -EINVAL,
	    "cluster.csv:1:", "no 'hostname' column");
	ERR(parse("hostname,ip,IP\nw1,10.0.0.1/24,10.0.0.1/24\n"), -EINVAL,
	    "cluster.csv:1:13:", "'ip' appears twice", "column 10");
	ERR(parse("hostname,,ip\n"), -EINVAL, "cluster.csv:1:10:", "no name");
	ERR(parse("hostname,var_rack no\n"), -EINVAL, "cluster.csv:1:10:", "'var_rack no'");
	ERR(parse("hostname,wifi_psk\nw1,secret99\n"), -EINVAL,
	    "cluster.csv:1:10:", "wifi_psk_file");
	ERR(parse("hostname,password\n"), -EINVAL, "password_hash");

	/* A misspelt column is an error naming where it is and what was meant: it would
	 * otherwise be a template variable nothing reads, and every node built without it. */
	ERR(parse("hostname,ip,sshkey\nw1,10.0.0.1/24,id.pub\n"), -EINVAL, "sshkey");
	assert_string_equal(pf_error_message(-EINVAL),
			    "cluster.csv:1:13: unknown column 'sshkey' (did you mean ssh_key?)");
	ERR(parse("hostname,ip,gatway\nw1,10.0.0.2/24,10.0.0.1\n"), -EINVAL, "gatway");
	assert_string_equal(pf_error_message(-EINVAL),
			    "cluster.csv:1:13: unknown column 'gatway' (did you mean gateway?)");
	ERR(parse("hostname, Wifi_SSID,dsn\n"), -EINVAL,
	    "cluster.csv:1:21: unknown column 'dsn' "
	    "(did you mean dns?)");
	ERR(parse("hostname,hostnmae\n"), -EINVAL, "(did you mean hostname?)");
	ERR(parse("hostname,groups\n"), -EINVAL, "(did you mean group?)");
	ERR(parse("hostname,wifissid\n"), -EINVAL, "(did you mean wifi_ssid?)");
	/* Far from every setting: the way to declare a variable. */
	ERR(parse("hostname,role\nw1,worker\n"), -EINVAL, "role");
	assert_string_equal(pf_error_message(-EINVAL),
			    "cluster.csv:1:10: unknown column 'role' (a template variable's column "
			    "is named var_role)");
	ERR(parse("hostname,var_\n"), -EINVAL, "cluster.csv:1:10: column 'var_'",
	    "names no variable");
}

static void test_row_errors(void **state)
{
	(void)state;
	ERR(parse("ip,hostname\n10.0.0.1/24,\n"), -EINVAL, "cluster.csv:2:13:", "empty hostname");
	ERR(parse("hostname\nw1\nWorker2\n"), -EINVAL,
	    "cluster.csv:3:1: hostname 'Worker2' has upper case", "'worker2'");
	ERR(parse("hostname,ip\nw1,10.0.0.1/24\nw2,  10.0.0.256/24\n"), -EINVAL,
	    "cluster.csv:3:6: ip:", "'10.0.0.256'");
	ERR(parse("hostname,ip\nw1,10.0.0.0/24\n"), -EINVAL,
	    "cluster.csv:2:4: ip:", "network address");
	ERR(parse("hostname,ip,gateway\nw1,10.0.0.5/24,10.0.1.1\n"), -EINVAL,
	    "cluster.csv:2:", "gateway 10.0.1.1", "outside");
	ERR(parse("hostname,gateway\nw1,10.0.1.1\n"), -EINVAL,
	    "cluster.csv:2:", "without a static address");
	ERR(parse("hostname,dns\nw1,\"1.1.1.1,x\"\n"), -EINVAL, "cluster.csv:2:4: dns:");
	ERR(parse("hostname,board\nw1,pi9\n"), -EINVAL, "cluster.csv:2:4: unknown board 'pi9'");
	ERR(parse("hostname,user\nw1,Admin\n"), -EINVAL, "cluster.csv:2:4: user name 'Admin'");
	ERR(parse("hostname,group\nw1,k8s-workers\n"), -EINVAL, "cluster.csv:2:4: group",
	    "'k8s-workers'");
	ERR(parse("hostname,group\nw1,9lives\n"), -EINVAL, "cluster.csv:2:4: group");
	ERR(parse("hostname,ssh_key\nw1,nope.pub\n"), -ENOENT,
	    "cluster.csv:2:4: ssh_key:", "nope.pub");
}

/* For batch: a row's own errors stay on the row; the file's errors still fail it. */
static void test_keep_bad_rows(void **state)
{
	const char *csv = "hostname,ip,group\n"
			  "w1,10.0.0.1/24,workers\n"
			  "w2,  10.0.0.256/24,workers\n"
			  "w3,10.0.0.3/24,k8s-workers\n"
			  "w4,10.0.0.1/24,workers\n";
	PfInventory *inv = NULL;
	int r;

	(void)state;
	/* Strict, the first bad row fails the file. */
	ERR(parse(csv), -EINVAL, "cluster.csv:3:6: ip:");

	/* w4 repeats w1's address: a duplicate among good rows still fails the file. */
	r = pf_inventory_parse_flags(csv, strlen(csv), "cluster.csv", PF_INVENTORY_KEEP_BAD_ROWS,
				     &inv);
	check_err(r, -EEXIST, "cluster.csv:5:", "10.0.0.1", NULL);

	/* Without it, the bad rows carry their messages and the good ones none. */
	csv = "hostname,ip,group\n"
	      "w1,10.0.0.1/24,workers\n"
	      "w2,  10.0.0.256/24,workers\n"
	      "w3,10.0.0.3/24,k8s-workers\n"
	      "w4,10.0.0.256/24,workers\n";
	r = pf_inventory_parse_flags(csv, strlen(csv), "cluster.csv", PF_INVENTORY_KEEP_BAD_ROWS,
				     &inv);
	assert_int_equal(r, 0);
	assert_int_equal(inv->n_rows, 4);
	assert_null(inv->rows[0].error);
	assert_non_null(inv->rows[1].error);
	assert_non_null(strstr(inv->rows[1].error, "cluster.csv:3:6: ip:"));
	assert_non_null(inv->rows[2].error);
	assert_non_null(strstr(inv->rows[2].error, "cluster.csv:4:"));
	assert_non_null(strstr(inv->rows[2].error, "'k8s-workers'"));
	/* Two rows with the same bad address are not duplicates of each other: both are bad. */
	assert_non_null(inv->rows[3].error);
	pf_inventory_free(inv);

	/* A structural error is never a row's: a wrong field count fails the file. */
	csv = "hostname,ip\nw1,10.0.0.1/24\nw2\n";
	inv = NULL;
	r = pf_inventory_parse_flags(csv, strlen(csv), "cluster.csv", PF_INVENTORY_KEEP_BAD_ROWS,
				     &inv);
	check_err(r, -EINVAL, "cluster.csv:3:", "1 field", NULL);
	assert_null(inv);
}

static void test_duplicates(void **state)
{
	(void)state;
	ERR(parse("hostname,ip\nw1,10.0.0.1/24\nw2,10.0.0.2/24\nw1,10.0.0.3/24\n"), -EEXIST,
	    "cluster.csv:4:", "'w1'", "line 2");
	/* The same address with another prefix is still the same address. */
	ERR(parse("hostname,ip\nw1,10.0.0.1/24\nw2,10.0.0.2/24\nw3,10.0.0.2/16\n"), -EEXIST,
	    "cluster.csv:4:", "10.0.0.2", "'w3'", "'w2'", "line 3");
	/* The first duplicate a reader meets is the one reported. */
	ERR(parse("hostname\nb\na\nz\nb\na\n"), -EEXIST, "cluster.csv:5:", "'b'", "line 2");
	/* DHCP nodes have no address to collide. */
	PfInventory *inv = parse_ok("hostname,ip\nw1,\nw2,\nw3,10.0.0.3/24\n");
	pf_inventory_free(inv);
}

static void test_unknown_node(void **state)
{
	PfInventory *inv;

	(void)state;
	inv = parse_ok("hostname\nw1\nw2\nw3\nw4\nw5\nw6\nw7\n");
	pf_error_clear();
	assert_null(pf_inventory_find(inv, "w9"));
	check_err(-ENOENT, -ENOENT, "no node 'w9'", "cluster.csv", "7 nodes", "w1, w2", "w5", "...",
		  NULL);
	assert_null(strstr(pf_error_message(-ENOENT), "w6"));
	pf_inventory_free(inv);
	inv = parse_ok("hostname\n");
	assert_int_equal(inv->n_rows, 0);
	assert_null(pf_inventory_find(inv, "w1"));
	check_err(-ENOENT, -ENOENT, "no node 'w1'", "no rows", NULL);
	pf_inventory_free(inv);
}

static void test_override_order(void **state)
{
	PfInventory *inv;
	PfNodeConfig c = {};
	char ip[16];

	(void)state;
	inv = parse_ok("hostname,ip,gateway,dns,board,user,var_rack\n"
		       "w1,10.0.0.11/24,10.0.0.1,\"1.1.1.1, 9.9.9.9\",pi4,pirate,A1\n");
	/* A default first, then the row, then the command line. */
	assert_int_equal(pf_node_config_set(&c, "user", "pi", "default"), 0);
	assert_int_equal(pf_inventory_apply(inv, pf_inventory_find(inv, "w1"), &c), 0);
	assert_string_equal(c.user, "pirate");
	assert_int_equal(c.n_dns, 2);
	assert_string_equal(pf_node_config_var(&c, "var_rack"), "A1");
	assert_int_equal(pf_node_config_set(&c, "ip", "10.0.0.99/24", "--ip"), 0);
	assert_int_equal(pf_node_config_set(&c, "board", "pi5", "--board"), 0);
	assert_int_equal(pf_node_config_set(&c, "var_rack", "B7", "--set"), 0);
	pf_ipv4_format(c.ip, ip);
	assert_string_equal(ip, "10.0.0.99");
	assert_string_equal(c.board, "pi5");
	assert_string_equal(pf_node_config_var(&c, "var_rack"), "B7");
	assert_string_equal(c.hostname, "w1");
	assert_int_equal(pf_node_config_check(&c), 0);
	/* --ip dhcp drops the row's static address and gateway. */
	assert_int_equal(pf_node_config_set(&c, "ip", "dhcp", "--ip"), 0);
	assert_int_equal(pf_node_config_check(&c), 0);
	pf_node_config_done(&c);
	pf_inventory_free(inv);
}

static void test_load_relative_paths(void **state)
{
	char dir[256], path[512];
	PfInventory *inv = NULL;
	PfNodeConfig c = {};

	(void)state;
	snprintf(dir, sizeof(dir), "%s/site", tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/keys", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/keys/admin.pub", dir);
	write_text(path, "# admins\n" ED25519_LINE "\n");
	snprintf(path, sizeof(path), "%s/lab.psk", dir);
	write_text(path, "correct horse battery\n");
	snprintf(path, sizeof(path), "%s/cluster.csv", dir);
	write_text(path, "hostname,ssh_key,wifi_ssid,wifi_psk_file,wifi_country\n"
			 "w1,keys/admin.pub,lab,lab.psk,DE\n"
			 "w2,\"" ED25519_LINE "\",,,\n");

	/* Loaded from elsewhere: paths start at the CSV's directory, not the working one. */
	assert_int_equal(pf_inventory_load(path, &inv), 0);
	assert_string_equal(inv->dir, dir);
	assert_int_equal(pf_inventory_apply(inv, pf_inventory_find(inv, "w1"), &c), 0);
	assert_int_equal(c.n_keys, 1);
	assert_string_equal(c.keys[0].comment, "test@piflash");
	assert_string_equal(c.wifi_psk, "correct horse battery");
	assert_int_equal(pf_node_config_check(&c), 0);
	pf_node_config_done(&c);
	/* Key text in the cell itself. */
	assert_int_equal(pf_inventory_apply(inv, pf_inventory_find(inv, "w2"), &c), 0);
	assert_int_equal(c.n_keys, 1);
	pf_node_config_done(&c);
	pf_inventory_free(inv);

	/* A missing key file is found at load time, with the cell's position. */
	write_text(path, "hostname,ssh_key\nw1,keys/admin.pub\nw2,keys/w2.pub\n");
	inv = NULL;
	pf_error_clear();
	check_err(pf_inventory_load(path, &inv), -ENOENT,
		  "cluster.csv:3:4: ssh_key:", "keys/w2.pub", NULL);
	assert_null(inv);

	ERR(pf_inventory_load(dir, &inv), -EINVAL, "not a regular file");
	snprintf(path, sizeof(path), "%s/none.csv", dir);
	ERR(pf_inventory_load(path, &inv), -ENOENT, "none.csv");
}

static void test_limits(void **state)
{
	char *text;
	size_t o = 0;

	(void)state;
	text = malloc(PF_INVENTORY_FIELD_MAX + 4096);
	assert_non_null(text);
	o = (size_t)sprintf(text, "hostname,var_note\nw1,");
	memset(text + o, 'x', PF_INVENTORY_FIELD_MAX + 1);
	o += PF_INVENTORY_FIELD_MAX + 1;
	text[o] = 0;
	ERR(parse(text), -E2BIG, "cluster.csv:2:4:", "16384");
	free(text);

	text = malloc(PF_INVENTORY_COLUMNS_MAX * 8 + 64);
	assert_non_null(text);
	o = (size_t)sprintf(text, "hostname");
	for (unsigned i = 0; i < PF_INVENTORY_COLUMNS_MAX; i++)
		o += (size_t)sprintf(text + o, ",c%u", i);
	text[o] = 0;
	ERR(parse(text), -E2BIG, "cluster.csv:1:", "256");
	free(text);

	text = malloc((PF_INVENTORY_ROWS_MAX + 2) * 16);
	assert_non_null(text);
	o = (size_t)sprintf(text, "hostname\n");
	for (unsigned i = 0; i <= PF_INVENTORY_ROWS_MAX; i++)
		o += (size_t)sprintf(text + o, "n%u\n", i);
	ERR(parse(text), -E2BIG, "cluster.csv:10002:", "10000 rows");
	/* 10000 rows are fine. */
	*strrchr(text, 'n') = 0;
	PfInventory *inv = parse_ok(text);
	assert_int_equal(inv->n_rows, PF_INVENTORY_ROWS_MAX);
	pf_inventory_free(inv);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),	       cmocka_unit_test(test_quoting),
		cmocka_unit_test(test_crlf_bom_blank), cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_header_errors),  cmocka_unit_test(test_row_errors),
		cmocka_unit_test(test_duplicates),     cmocka_unit_test(test_unknown_node),
		cmocka_unit_test(test_override_order), cmocka_unit_test(test_load_relative_paths),
		cmocka_unit_test(test_limits),	       cmocka_unit_test(test_keep_bad_rows),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
