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

/* A known_hosts file is read whole; one of 4 MiB holds some 30000 keys. */
#define KNOWN_HOSTS_MAX (4u * 1024 * 1024)

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

const struct option node_long_options[] = {
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
	{ "domain", required_argument, NULL, OPT_SETTING_FIRST + 0 },
	{ "ssh-key", required_argument, NULL, OPT_SETTING_FIRST + 1 },
	{ "user", required_argument, NULL, OPT_SETTING_FIRST + 2 },
	{ "password-hash", required_argument, NULL, OPT_SETTING_FIRST + 3 },
	{ "ip", required_argument, NULL, OPT_SETTING_FIRST + 4 },
	{ "gateway", required_argument, NULL, OPT_SETTING_FIRST + 5 },
	{ "dns", required_argument, NULL, OPT_SETTING_FIRST + 6 },
	{ "iface", required_argument, NULL, OPT_SETTING_FIRST + 7 },
	{ "wifi-ssid", required_argument, NULL, OPT_SETTING_FIRST + 8 },
	{ "wifi-psk-file", required_argument, NULL, OPT_SETTING_FIRST + 9 },
	{ "wifi-country", required_argument, NULL, OPT_SETTING_FIRST + 10 },
	{ "timezone", required_argument, NULL, OPT_SETTING_FIRST + 11 },
	{ "locale", required_argument, NULL, OPT_SETTING_FIRST + 12 },
	{ "board", required_argument, NULL, OPT_SETTING_FIRST + 13 },
};
const size_t node_n_long_options = ELEMENTSOF(node_long_options);

const char node_options_help[] =
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
	return no->node || no->inventory || no->n_settings > 0 || no->flavor || no->network ||
	       no->template_dir || no->user_data || no->ssh_password || no->no_login ||
	       no->host_keys || no->seed_option;
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
	all = calloc(n + node_n_long_options + 1, sizeof(struct option));
	if (!all)
		return NULL;
	memcpy(all, own, n * sizeof(struct option));
	for (size_t i = 0; i < node_n_long_options; i++)
		if (!listed(except, node_long_options[i].name))
			all[n++] = node_long_options[i];
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
	if (no->instance_id_seed) {
		explicit_bzero(no->instance_id_seed, strlen(no->instance_id_seed));
		free(no->instance_id_seed);
	}
	no->instance_id_seed = seed;
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

/* Reads the seed from path: a regular file of the user's alone, one line (a final newline is
 * not part of the seed), no NUL byte. */
static int seed_read_file(const char *path, char **ret)
{
	_cleanup_(closep) int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	char buf[SEED_FILE_MAX + 1];
	size_t len = 0;
	struct stat st;
	ssize_t n;
	int r = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return pf_error_set(-errno, "'%s': %m", path);
	if (!S_ISREG(st.st_mode))
		return pf_error_set(-EINVAL, "'%s' is not a regular file", path);
	if (st.st_mode & (S_IRWXG | S_IRWXO))
		return pf_error_set(-EPERM,
				    "'%s' is open to group or others (mode %04o): the seed is a "
				    "secret like a private key; chmod 600 it",
				    path, (unsigned)(st.st_mode & 07777));
	while (len < sizeof(buf) && (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = pf_error_set(-errno, "'%s': %m", path);
			break;
		}
		len += (size_t)n;
	}
	if (r >= 0 && len > SEED_FILE_MAX)
		r = pf_error_set(-EFBIG, "'%s' is longer than a seed (%u bytes at most)", path,
				 SEED_FILE_MAX);
	if (r >= 0 && len > 0 && buf[len - 1] == '\n')
		len--;
	if (r >= 0 && len > 0 && buf[len - 1] == '\r')
		len--;
	if (r >= 0 && (len == 0 || memchr(buf, 0, len)))
		r = pf_error_set(-EINVAL, "'%s': the seed is empty or holds a NUL byte", path);
	if (r >= 0) {
		*ret = strndup(buf, len);
		if (!*ret)
			r = -ENOMEM;
	}
	explicit_bzero(buf, sizeof(buf));
	return r;
}

static int seed_from_file(NodeOptions *no, const char *path)
{
	char *seed = NULL;
	int r;

	if (no->seed_option)
		return usage_error(NULL, "the seed is given twice");
	r = seed_read_file(path, &seed);
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

int node_option_parse(NodeOptions *no, int c, const char *arg)
{
	switch (c) {
	case OPT_NODE:
		no->node = arg;
		return 0;
	case OPT_INVENTORY:
		no->inventory = arg;
		return 0;
	case OPT_FLAVOR:
		no->flavor = arg;
		return 0;
	case OPT_NETWORK:
		no->network = arg;
		return 0;
	case OPT_TEMPLATE_DIR:
		no->template_dir = arg;
		return 0;
	case OPT_USER_DATA:
		no->user_data = arg;
		return 0;
	case OPT_SSH_PASSWORD:
		no->ssh_password = true;
		return 0;
	case OPT_NO_LOGIN:
		no->no_login = true;
		return 0;
	case OPT_HOST_KEYS:
		no->host_keys = true;
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
	if (no->n_settings >= NODE_SETTINGS_MAX)
		return usage_error(NULL, "more than %u node options", NODE_SETTINGS_MAX);
	if (c == OPT_SET) {
		const char *eq = strchr(arg, '=');

		if (!eq || eq == arg)
			return usage_error(NULL, "--set '%s': expected KEY=VALUE", arg);
		/* Split in place is not possible on argv: keep the key as a copy. */
		no->settings[no->n_settings++] = (NodeSetting){
			.key = strndup(arg, (size_t)(eq - arg)),
			.value = eq + 1,
			.option = "--set",
			.owned = true,
		};
		if (!no->settings[no->n_settings - 1].key)
			return PF_EXIT_FAILURE;
		/* A misspelt setting is an error now, not a variable for every node later. */
		if (pf_node_config_key_check(no->settings[no->n_settings - 1].key) < 0)
			return usage_error(NULL, "--set: %s", pf_error_message(-EINVAL));
		return 0;
	}
	if (c >= OPT_SETTING_FIRST && c < OPT_SETTING_FIRST + (int)ELEMENTSOF(setting_keys)) {
		no->settings[no->n_settings++] = (NodeSetting){
			.key = setting_keys[c - OPT_SETTING_FIRST].key,
			.value = arg,
			.option = setting_keys[c - OPT_SETTING_FIRST].option,
		};
		return 0;
	}
	return usage_error(NULL, "unknown option");
}

/* Repeated --ssh-key options add up; the first replaces the inventory row's keys. */
static int append_keys(PfNodeConfig *cfg, const char *path, const char *option)
{
	PfSshKey *keys = NULL, *all;
	size_t n = 0;
	int r;

	r = pf_ssh_keys_load_file(path, &keys, &n);
	if (r < 0)
		return pf_error_prefix(r, "%s '%s'", option, path);
	all = reallocarray(cfg->keys, cfg->n_keys + n, sizeof(PfSshKey));
	if (!all) {
		pf_ssh_keys_free(keys, n);
		return -ENOMEM;
	}
	memcpy(all + cfg->n_keys, keys, n * sizeof(PfSshKey));
	free(keys);
	cfg->keys = all;
	cfg->n_keys += n;
	return 0;
}

int node_settings(const NodeOptions *no, const PfInventory *inv, const PfInventoryRow *row,
		  PfNodeConfig *cfg)
{
	bool keys_seen = false;
	int r;

	if (row) {
		if (row->error)
			return pf_error_set(-EINVAL, "%s", row->error);
		r = pf_inventory_apply(inv, row, cfg);
		if (r < 0)
			return r;
	} else {
		/* The message names --node already: no prefix here. */
		r = pf_node_config_set(cfg, "hostname", no->node, "--node");
		if (r < 0)
			return r;
	}

	/* Options given on the command line override the row, in the order given. */
	for (size_t i = 0; i < no->n_settings; i++) {
		const NodeSetting *s = &no->settings[i];
		char origin[96];

		/* "--ip"; "--set var_rack", since --set alone does not say which. */
		snprintf(origin, sizeof(origin), "%s%s%.64s", s->option,
			 streq(s->option, "--set") ? " " : "",
			 streq(s->option, "--set") ? s->key : "");
		if (streq(s->key, "ssh_key") && keys_seen)
			r = append_keys(cfg, s->value, "--ssh-key");
		else
			r = pf_node_config_set(cfg, s->key, s->value, origin);
		if (streq(s->key, "ssh_key"))
			keys_seen = true;
		if (r < 0)
			return pf_error_prefix(r, "invalid node settings");
	}
	if (no->ssh_password)
		cfg->ssh_password = true;
	if (no->no_login)
		cfg->no_login = true;
	return pf_node_config_check(cfg);
}

void node_build_done(NodeBuild *b)
{
	pf_node_config_done(&b->cfg);
	b->own_flavor = pf_flavor_info_free(b->own_flavor);
	b->flavor = NULL;
	b->plan = pf_plan_free(b->plan);
	for (size_t i = 0; i < b->n_host_keys; i++)
		pf_hostkey_done(&b->host_keys[i]);
	b->n_host_keys = 0;
}

int node_flavor(Image *img, const NodeOptions *no, PfFlavorInfo **ret)
{
	/* The flavor is a label: an image none of its rules names still has mechanisms. */
	PfDetectOptions o = { .allow_unknown = true };
	int r;

	if (no->flavor && pf_flavor_from_name(no->flavor, &o.flavor) < 0)
		return usage_error(NULL,
				   "--flavor '%s': expected hypriot, ubuntu, rpios-trixie, "
				   "rpios-bookworm, raspbian or debian",
				   no->flavor);
	if (no->network && pf_net_stack_from_name(no->network, &o.net) < 0)
		return usage_error(NULL,
				   "--network '%s': expected cloud-init, netplan, ifupdown, "
				   "networkmanager, networkd or dhcpcd",
				   no->network);
	r = pf_flavor_detect_with(img->tree, img->table, &o, ret);
	if (r == -EOPNOTSUPP) {
		log_error_errno(r, "'%s'", img->path);
		return PF_EXIT_FAILURE;
	}
	if (r >= 0 && !(*ret)->root) {
		*ret = pf_flavor_info_free(*ret);
		r = pf_error_set(-ENOENT, "no root filesystem (no partition with /etc)");
	}
	if (r < 0) {
		log_error_errno(r, "'%s': cannot read the image's system", img->path);
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

static int make_host_keys(const NodeOptions *no, NodeBuild *b)
{
	_cleanup_(freep) char *comment = NULL;
	uint8_t seed[PF_HOSTKEY_SEED_BYTES];
	int r;

	if (asprintf(&comment, "root@%s", b->cfg.hostname) < 0)
		return -ENOMEM;
	if (no->instance_id_seed) {
		r = pf_hostkey_derive_seed(no->instance_id_seed, b->cfg.hostname, "ssh-ed25519",
					   seed);
		if (r < 0)
			return r;
	}
	r = pf_hostkey_ed25519(no->instance_id_seed ? seed : NULL, comment, &b->host_keys[0]);
	explicit_bzero(seed, sizeof(seed));
	if (r < 0)
		return pf_error_prefix(r, "cannot make the SSH host key");
	b->n_host_keys = 1;
	return 0;
}

/* The host keys a card holds (verify without the seed): the plan writes them back. */
static int copy_host_keys(const PfRunValues *v, NodeBuild *b)
{
	for (size_t i = 0; i < v->n_host_keys && i < NODE_HOST_KEYS_MAX; i++) {
		PfHostKey *k = &b->host_keys[i];

		k->type = strdup(v->host_keys[i].type);
		k->private_key = strdup(v->host_keys[i].private_key);
		k->public_line = strdup(v->host_keys[i].public_line);
		k->fingerprint = strdup("");
		b->n_host_keys++;
		if (!k->type || !k->private_key || !k->public_line || !k->fingerprint)
			return -ENOMEM;
	}
	return 0;
}

int node_build(Image *img, const NodeOptions *no, const PfFlavorInfo *f, bool mask_secrets,
	       NodeBuild *b)
{
	_cleanup_(freep) char *instance_id = NULL;
	PfPlanHostKey keys[NODE_HOST_KEYS_MAX];
	PfPlanInput in;
	int r;

	b->flavor = f;
	if (b->cfg.board) {
		r = pf_board_arch_ok(b->cfg.board, f->arch);
		if (r < 0)
			return pf_error_prefix(r, "'%s' is a %s image", img->path, f->arch);
	}
	if (no->host_keys && no->run && no->run->n_host_keys > 0) {
		r = copy_host_keys(no->run, b);
		if (r < 0)
			return r;
	} else if (no->host_keys) {
		r = make_host_keys(no, b);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < b->n_host_keys; i++)
		keys[i] = (PfPlanHostKey){
			.name = b->host_keys[i].type + strlen("ssh-"),
			.private_key = b->host_keys[i].private_key,
			.public_line = b->host_keys[i].public_line,
		};
	if (no->run && no->run->instance_id) {
		instance_id = strdup(no->run->instance_id);
		if (!instance_id)
			return -ENOMEM;
	} else if (no->run_probe) {
		if (asprintf(&instance_id, "iid-piflash-%s-" PF_RUN_PROBE_SUFFIX, b->cfg.hostname) <
		    0)
			return -ENOMEM;
	} else if (no->instance_id_seed) {
		r = pf_plan_instance_id_from_seed(no->instance_id_seed, b->cfg.hostname,
						  &instance_id);
		if (r < 0)
			return r;
	}

	in = (PfPlanInput){
		.cfg = &b->cfg,
		.flavor = f,
		.template_dir = no->template_dir,
		.user_data_path = no->user_data,
		.instance_id = instance_id,
		.host_keys = keys,
		.n_host_keys = b->n_host_keys,
		.mask_secrets = mask_secrets,
	};
	r = pf_plan_build(img->tree, img->table, &in, &b->plan);
	if (r < 0)
		return pf_error_prefix(r, "'%s': cannot plan node '%s' (%s)", img->path,
				       b->cfg.hostname, pf_flavor_name(f->flavor));
	return 0;
}

int node_check(Image *img, const NodeOptions *no, const PfFlavorInfo *f, const PfInventory *inv,
	       const PfInventoryRow *row)
{
	_cleanup_(node_build_done) NodeBuild nb = { 0 };
	int r;

	r = node_settings(no, inv, row, &nb.cfg);
	if (r >= 0)
		r = node_build(img, no, f, true, &nb);
	return r;
}

int node_plan(Image *img, const NodeOptions *no, bool mask_secrets, NodeBuild *ret)
{
	_cleanup_(pf_inventory_freep) PfInventory *inv = NULL;
	const PfInventoryRow *row = NULL;
	int r;

	if (!no->node) {
		return usage_error(NULL, "--node NAME is needed to say which node this is");
	}
	if (no->inventory) {
		r = pf_inventory_load(no->inventory, &inv);
		if (r < 0) {
			/* Every message of the loader names the file (and line, column). */
			log_error_errno(r, "inventory");
			return PF_EXIT_FAILURE;
		}
		row = pf_inventory_find(inv, no->node);
		if (!row) {
			log_error_errno(-ENOENT, "inventory");
			return PF_EXIT_FAILURE;
		}
	}
	r = node_flavor(img, no, &ret->own_flavor);
	if (r != PF_EXIT_OK)
		return r;
	r = node_settings(no, inv, row, &ret->cfg);
	if (r >= 0)
		r = node_build(img, no, ret->own_flavor, mask_secrets, ret);
	if (r < 0) {
		log_error_errno(r, "node '%s'", ret->cfg.hostname ?: no->node);
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

/* The names a node answers to, for known_hosts: "worker3,worker3.example.com,10.0.0.13". */
static int node_names(const PfNodeConfig *c, char **ret)
{
	char fqdn[320] = "", addr[17] = "";

	if (c->domain)
		snprintf(fqdn, sizeof(fqdn), ",%s.%s", c->hostname, c->domain);
	if (c->static_ip) {
		addr[0] = ',';
		pf_ipv4_format(c->ip, addr + 1);
	}
	return asprintf(ret, "%s%s%s", c->hostname, fqdn, addr) < 0 ? -ENOMEM : 0;
}

/* Does the host field of a known_hosts line name any of names (comma-separated)? */
static bool names_any(const char *field, size_t len, const char *names)
{
	for (const char *p = field, *end = field + len; p < end;) {
		size_t n = MIN(strcspn(p, ","), (size_t)(end - p));

		if (pf_list_has(names, p, n))
			return true;
		p += n + 1;
	}
	return false;
}

static FILE *fclose_safe(FILE *f)
{
	if (f)
		fclose(f);
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(FILE *, fclose_safe);

int node_known_hosts_update(const char *path, const NodeBuild *b)
{
	_cleanup_(freep) char *old = NULL, *names = NULL, *tmp = NULL;
	_cleanup_(fclose_safep) FILE *f = NULL;
	size_t len = 0;
	int fd, r;

	r = node_names(&b->cfg, &names);
	if (r < 0)
		return r;
	r = pf_read_file_at(AT_FDCWD, path, KNOWN_HOSTS_MAX, &old, &len);
	if (r == -ENOENT) {
		old = strdup("");
		r = old ? 0 : -ENOMEM;
	}
	if (r < 0)
		return r;
	if (asprintf(&tmp, "%s.XXXXXX", path) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return pf_error_set(-errno, "'%s': %m", tmp);
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		unlink(tmp);
		return -ENOMEM;
	}
	for (const char *line = old; *line;) {
		const char *nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);
		size_t host_len = strcspn(line, " \t");

		/* Comments, markers (@cert-authority, @revoked) and hashed names stay. */
		if (!(l && line[0] != '#' && line[0] != '@' && line[0] != '|' &&
		      names_any(line, MIN(host_len, l), names)))
			fprintf(f, "%.*s\n", (int)l, line);
		line += l + (nl ? 1 : 0);
	}
	for (size_t i = 0; i < b->n_host_keys; i++) {
		const char *pub = b->host_keys[i].public_line;
		size_t l = strcspn(pub, " ");

		l += 1 + strcspn(pub + l + 1, " \n"); /* type and key, not the comment */
		fprintf(f, "%s %.*s\n", names, (int)l, pub);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) < 0 || rename(tmp, path) < 0) {
		r = pf_error_set(-errno, "'%s': %m", path);
		unlink(tmp);
		return r;
	}
	pf_fsync_dir_of(path);
	return 0;
}

void node_plan_print(const PfPlan *p, const PfFlavorInfo *f, const PfNodeConfig *cfg)
{
	/* The plan holds strings from the image (its user, its files' names and contents):
	 * out_line() escapes them. */
	out_line("Node %s on a %s image (%s), user '%s'%s%s", cfg->hostname,
		 pf_flavor_name(f->flavor), f->arch ? f->arch : "unknown arch", p->user,
		 p->instance_id ? ", instance-id " : "", p->instance_id ? p->instance_id : "");
	for (size_t i = 0; i < p->n_notes; i++)
		out_line("Note: %s", p->notes[i]);
	out_line("%s", "");
	for (size_t i = 0; i < p->n_ops; i++) {
		const PfOp *op = &p->ops[i];
		char where[32] = "";

		if (op->part)
			snprintf(where, sizeof(where), "%u:", op->part);
		switch (op->kind) {
		case PF_OP_WRITE:
			out_line("write   %s%s  (%04o %u:%u, %zu bytes%s)", where, op->path,
				 (unsigned)op->mode, (unsigned)op->uid, (unsigned)op->gid, op->size,
				 op->secret ? ", secret" : "");
			break;
		case PF_OP_MKDIR:
			out_line("mkdir   %s%s  (%04o %u:%u)", where, op->path, (unsigned)op->mode,
				 (unsigned)op->uid, (unsigned)op->gid);
			break;
		case PF_OP_SYMLINK:
			out_line("symlink %s%s -> %s", where, op->path, op->target);
			break;
		case PF_OP_REMOVE:
			out_line("remove  %s%s", where, op->path);
			break;
		}
		out_line("        why: %s", op->why);
		if (op->kind == PF_OP_WRITE && !op->secret && op->size > 0) {
			const char *s = (const char *)op->data, *e = s + op->size;

			/* The content, indented, so the plan says exactly what lands. */
			while (s < e) {
				const char *nl = memchr(s, '\n', (size_t)(e - s));
				size_t n = nl ? (size_t)(nl - s) : (size_t)(e - s);

				out_line("        | %.*s", (int)n, s);
				s += n + (nl ? 1 : 0);
			}
		}
	}
}

void node_options_done(NodeOptions *no)
{
	seed_set(no, NULL);
	for (size_t i = 0; i < no->n_settings; i++)
		if (no->settings[i].owned)
			free((char *)no->settings[i].key);
	no->n_settings = 0;
}
