/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "cmd/help.h"
#include "cmd/node.h"
#include "node/inventory.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

enum {
	OPT_NODE = NODE_OPTION_BASE,
	OPT_INVENTORY,
	OPT_FLAVOR,
	OPT_NETWORK,
	OPT_TEMPLATE_DIR,
	OPT_USER_DATA,
	OPT_SSH_PASSWORD,
	OPT_NO_LOGIN,
	OPT_HOST_KEYS,
	OPT_KNOWN_HOSTS,
	OPT_INSTANCE_ID_SEED,
	OPT_INSTANCE_ID_SEED_FILE,
	OPT_SET,
	/* Settings passed to pf_node_config_set() under the key in setting_keys[]. */
	OPT_SETTING_FIRST,
};

static const struct {
	const char *option;
	const char *key;
} setting_keys[] = {
	{ "--domain", "domain" },
	{ "--ssh-key", "ssh_key" },
	{ "--user", "user" },
	{ "--password-hash", "password_hash" },
	{ "--ip", "ip" },
	{ "--gateway", "gateway" },
	{ "--dns", "dns" },
	{ "--iface", "iface" },
	{ "--wifi-ssid", "wifi_ssid" },
	{ "--wifi-psk-file", "wifi_psk_file" },
	{ "--wifi-country", "wifi_country" },
	{ "--timezone", "timezone" },
	{ "--locale", "locale" },
	{ "--board", "board" },
};

/* The node options that are not settings; each setting above is an option too. */
static const struct option node_long_options[] = {
	{ "node", required_argument, NULL, OPT_NODE },
	{ "inventory", required_argument, NULL, OPT_INVENTORY },
	{ "flavor", required_argument, NULL, OPT_FLAVOR },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "template-dir", required_argument, NULL, OPT_TEMPLATE_DIR },
	{ "user-data", required_argument, NULL, OPT_USER_DATA },
	{ "ssh-password", no_argument, NULL, OPT_SSH_PASSWORD },
	{ "no-login", no_argument, NULL, OPT_NO_LOGIN },
	{ "host-keys", no_argument, NULL, OPT_HOST_KEYS },
	{ "known-hosts", required_argument, NULL, OPT_KNOWN_HOSTS },
	{ "instance-id-seed", required_argument, NULL, OPT_INSTANCE_ID_SEED },
	{ "instance-id-seed-file", required_argument, NULL, OPT_INSTANCE_ID_SEED_FILE },
	{ "set", required_argument, NULL, OPT_SET },
};

static const char node_options_help[] =
	"Node identity:\n"
	"     --node NAME            The node: its hostname, or its row of --inventory\n"
	"     --inventory FILE.csv   Cluster inventory (hostname, ip, gateway, dns, user,\n"
	"                            ssh_key, board, ...); options below override the row\n"
	"     --domain DOMAIN        Domain for the FQDN\n"
	"     --ssh-key FILE         Authorized public key(s); repeatable\n"
	"     --user NAME            The user who gets the keys (default: the image's)\n"
	"     --password-hash HASH   A crypt(3) hash (openssl passwd -6); never a password\n"
	"     --ssh-password         Keep SSH password login on although keys are given\n"
	"                            (with --password-hash: a password to log in with)\n"
	"     --no-login             A node nobody can log into: no key, no password (without\n"
	"                            a key or a hash, piflash refuses to lock the login)\n"
	"     --ip ADDR/PREFIX       Static IPv4 address (default: DHCP)\n"
	"     --gateway ADDR         Default gateway, inside the --ip subnet\n"
	"     --dns ADDR[,ADDR...]   DNS servers\n"
	"     --iface NAME           Wired interface (default eth0)\n"
	"     --wifi-ssid SSID       WiFi network name\n"
	"     --wifi-psk-file FILE   WiFi passphrase, read from FILE (never printed)\n"
	"     --wifi-country CC      WiFi regulatory country (DE, US, ...)\n"
	"     --timezone AREA/CITY   Time zone (Europe/Berlin)\n"
	"     --locale LOCALE        Locale (en_US.UTF-8)\n"
	"     --board BOARD          pi3, pi4, pi5, zero, zero2, ...: checked against the image\n"
	"     --set KEY=VALUE        A setting by its CSV column name, or a template\n"
	"                            variable var_NAME ({{var_NAME}}); repeatable\n"
	"     --flavor NAME          Override the detected flavor (hypriot, ubuntu,\n"
	"                            rpios-trixie, rpios-bookworm, raspbian, debian):\n"
	"                            a label and the defaults the image cannot tell\n"
	"     --network NAME         The service that brings up the wired interface, where\n"
	"                            the image cannot tell (cloud-init, netplan, ifupdown,\n"
	"                            networkmanager, networkd, dhcpcd)\n"
	"     --template-dir DIR     Templates that replace the built-in ones by name\n"
	"     --user-data FILE       The node's cloud-init user-data template\n"
	"     --host-keys            Make the node's SSH host key (ed25519) now, so\n"
	"                            known_hosts is right before its first boot\n"
	"     --known-hosts FILE     With --host-keys, on writing a card or a file:\n"
	"                            put the node's key in FILE (replacing its old one)\n"
	"     --instance-id-seed-file FILE\n"
	"                            Derive the cloud-init instance-id (and, with\n"
	"                            --host-keys, the host key) from the secret seed in\n"
	"                            FILE (mode 0600 or stricter; or set\n"
	"                            PIFLASH_INSTANCE_ID_SEED): the same inputs then\n"
	"                            give byte-identical images\n"
	"     --instance-id-seed S   The same with the seed on the command line, where\n"
	"                            every local user can read it (a warning)\n";

bool node_options_given(const NodeOptions *no)
{
	return pf_node_spec_given(&no->spec) || no->seed_option;
}

struct option *node_merge_options(const struct option *own)
{
	return node_merge_options_except(own, NULL);
}

static bool listed(const char *const *names, const char *name)
{
	for (; names && *names; names++)
		if (streq(*names, name))
			return true;
	return false;
}

struct option *node_merge_options_except(const struct option *own, const char *const *except)
{
	size_t n = 0;
	struct option *all;

	while (own[n].name)
		n++;
	all = calloc(n + ELEMENTSOF(node_long_options) + ELEMENTSOF(setting_keys) + 1,
		     sizeof(struct option));
	if (!all)
		return NULL;
	memcpy(all, own, n * sizeof(struct option));
	for (size_t i = 0; i < ELEMENTSOF(node_long_options); i++)
		if (!listed(except, node_long_options[i].name))
			all[n++] = node_long_options[i];
	for (size_t i = 0; i < ELEMENTSOF(setting_keys); i++)
		if (!listed(except, setting_keys[i].option + 2))
			all[n++] = (struct option){ setting_keys[i].option + 2, required_argument,
						    NULL, OPT_SETTING_FIRST + (int)i };
	return all;
}

void node_options_help_print(const struct option *table)
{
	help_print_options(node_options_help, table);
}

/* The seed is a secret as a private key is: a file holding it is readable by its owner
 * only, and at most this long. */
#define SEED_FILE_MAX 4096u
#define SEED_ENV "PIFLASH_INSTANCE_ID_SEED"

static void seed_set(NodeOptions *no, char *seed)
{
	if (no->seed) {
		explicit_bzero(no->seed, strlen(no->seed));
		free(no->seed);
	}
	no->seed = seed;
	no->spec.instance_id_seed = seed;
}

/*
 * --instance-id-seed S: kept for old scripts, with a warning, as /proc/PID/cmdline shows S
 * to every local user. The argument is overwritten once copied, which shortens that window
 * but cannot close it (it was visible from exec on).
 */
static int seed_from_arg(NodeOptions *no, char *arg)
{
	char *seed;

	if (no->seed_option)
		return usage_error(NULL, "the seed is given twice");
	if (!*arg)
		return usage_error(NULL, "--instance-id-seed: the seed is empty");
	seed = strdup(arg);
	if (!seed)
		return PF_EXIT_FAILURE;
	memset(arg, '*', strlen(arg));
	seed_set(no, seed);
	no->seed_option = true;
	log_notice("piflash: warning: --instance-id-seed shows the seed to every local user (in "
		   "the process list), and with it anyone can derive every node's host key; use "
		   "--instance-id-seed-file FILE or " SEED_ENV);
	return 0;
}

static int seed_from_file(NodeOptions *no, const char *path)
{
	char *seed = NULL;
	int r;

	if (no->seed_option)
		return usage_error(NULL, "the seed is given twice");
	r = pf_read_secret_file(path, SEED_FILE_MAX, "seed", &seed);
	if (r < 0) {
		log_error_errno(r, "--instance-id-seed-file");
		return PF_EXIT_FAILURE;
	}
	seed_set(no, seed);
	no->seed_option = true;
	return 0;
}

int node_options_finish(NodeOptions *no)
{
	const char *env = getenv(SEED_ENV);
	char *seed;

	if (no->seed_option || !env || !*env)
		return PF_EXIT_OK;
	seed = strdup(env);
	if (!seed)
		return PF_EXIT_FAILURE;
	seed_set(no, seed);
	return PF_EXIT_OK;
}

int node_now(int64_t *ret)
{
	if (pf_timestamp(ret) < 0) {
		log_error("SOURCE_DATE_EPOCH='%s' is not a number of seconds",
			  getenv("SOURCE_DATE_EPOCH"));
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

int node_option_parse(NodeOptions *no, int c, const char *arg)
{
	switch (c) {
	case OPT_NODE:
		no->spec.node = arg;
		return 0;
	case OPT_INVENTORY:
		no->spec.inventory = arg;
		return 0;
	case OPT_FLAVOR:
		no->spec.flavor = arg;
		return 0;
	case OPT_NETWORK:
		no->spec.network = arg;
		return 0;
	case OPT_TEMPLATE_DIR:
		no->spec.template_dir = arg;
		return 0;
	case OPT_USER_DATA:
		no->spec.user_data = arg;
		return 0;
	case OPT_SSH_PASSWORD:
		no->spec.ssh_password = true;
		return 0;
	case OPT_NO_LOGIN:
		no->spec.no_login = true;
		return 0;
	case OPT_HOST_KEYS:
		no->spec.host_keys = true;
		return 0;
	case OPT_KNOWN_HOSTS:
		no->known_hosts = arg;
		return 0;
	case OPT_INSTANCE_ID_SEED:
		return seed_from_arg(no, (char *)arg);
	case OPT_INSTANCE_ID_SEED_FILE:
		return seed_from_file(no, arg);
	default:
		break;
	}
	no->spec.settings = no->settings;
	if (no->spec.n_settings >= NODE_SETTINGS_MAX)
		return usage_error(NULL, "more than %u node options", NODE_SETTINGS_MAX);
	if (c == OPT_SET) {
		const char *eq = strchr(arg, '=');

		if (!eq || eq == arg)
			return usage_error(NULL, "--set '%s': expected KEY=VALUE", arg);
		/* Split in place is not possible on argv: keep the key as a copy. */
		/* The key is owned (node_options_done() frees the keys of "--set"). */
		no->settings[no->spec.n_settings++] = (PfNodeSetting){
			.key = strndup(arg, (size_t)(eq - arg)),
			.value = eq + 1,
			.option = "--set",
		};
		if (!no->settings[no->spec.n_settings - 1].key)
			return PF_EXIT_FAILURE;
		/* A misspelt setting is an error now, not a variable for every node later. */
		if (pf_node_config_key_check(no->settings[no->spec.n_settings - 1].key) < 0)
			return usage_error(NULL, "--set: %s", pf_error_message(-EINVAL));
		return 0;
	}
	if (c >= OPT_SETTING_FIRST && c < OPT_SETTING_FIRST + (int)ELEMENTSOF(setting_keys)) {
		no->settings[no->spec.n_settings++] = (PfNodeSetting){
			.key = setting_keys[c - OPT_SETTING_FIRST].key,
			.value = arg,
			.option = setting_keys[c - OPT_SETTING_FIRST].option,
		};
		return 0;
	}
	return usage_error(NULL, "unknown option");
}

int node_flavor(PfImage *img, const NodeOptions *no, PfFlavorInfo **ret)
{
	PfFlavor flavor;
	PfNetStack net;
	int r;

	if (no->spec.flavor && pf_flavor_from_name(no->spec.flavor, &flavor) < 0)
		return usage_error(NULL,
				   "--flavor '%s': expected hypriot, ubuntu, rpios-trixie, "
				   "rpios-bookworm, raspbian or debian",
				   no->spec.flavor);
	if (no->spec.network && pf_net_stack_from_name(no->spec.network, &net) < 0)
		return usage_error(NULL,
				   "--network '%s': expected cloud-init, netplan, ifupdown, "
				   "networkmanager, networkd or dhcpcd",
				   no->spec.network);
	r = pf_node_flavor(img, &no->spec, ret);
	if (r < 0)
		return log_error_detail(r), PF_EXIT_FAILURE;
	return PF_EXIT_OK;
}

int node_plan(PfImage *img, const NodeOptions *no, bool mask_secrets, PfNodeBuild *ret)
{
	_cleanup_(pf_inventory_freep) PfInventory *inv = NULL;
	const PfInventoryRow *row = NULL;
	int r;

	if (!no->spec.node)
		return usage_error(NULL, "--node NAME is needed to say which node this is");
	r = pf_node_row(&no->spec, &inv, &row);
	if (r < 0) {
		/* Every message of the loader names the file (and line, column). */
		log_error_errno(r, "inventory");
		return PF_EXIT_FAILURE;
	}
	r = node_flavor(img, no, &ret->own_flavor);
	if (r != PF_EXIT_OK)
		return r;
	r = pf_node_settings(&no->spec, inv, row, &ret->cfg);
	if (r >= 0)
		r = pf_node_build(img, &no->spec, ret->own_flavor, mask_secrets, ret);
	if (r < 0) {
		log_error_errno(r, "node '%s'", ret->cfg.hostname ?: no->spec.node);
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

int node_options_check_cluster(const NodeOptions *no, const char *cmd)
{
	for (size_t i = 0; i < no->spec.n_settings; i++)
		if (streq(no->settings[i].key, "ip"))
			return usage_error(cmd,
					   "--ip would give every node the same address: put the "
					   "addresses in the inventory's ip column");
	if (no->spec.node)
		return usage_error(cmd, "--node is one node: choose nodes with --only");
	return PF_EXIT_OK;
}

void node_options_done(NodeOptions *no)
{
	seed_set(no, NULL);
	for (size_t i = 0; i < no->spec.n_settings; i++)
		if (streq(no->settings[i].option, "--set"))
			free((char *)no->settings[i].key);
	no->spec.n_settings = 0;
}
