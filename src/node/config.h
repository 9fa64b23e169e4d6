/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * A node's settings, validated where they enter.
 *
 * Every value that gives a card its identity — hostname, addresses, users, SSH keys, WiFi,
 * board — comes from a command-line option, an inventory CSV cell (inventory.h) or a
 * --set KEY=VALUE, and goes through pf_node_config_set(), which checks it and replaces any
 * earlier value, so options applied after a CSV row override it. Each validator here is also
 * exported so other modules can check what they read from an image. Errors are -errno with a
 * detail (pf_error_set) that names the origin ("--ip", "cluster.csv:4:12") and what is wrong.
 * Secrets (the WiFi passphrase, password hashes, anything that looks like a private key) are
 * never copied into a message.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/macros.h"

/* Limits on what a key text may hold (bytes, keys, bytes per line). */
#define PF_SSH_KEYS_TEXT_MAX (64u * 1024)
#define PF_SSH_KEYS_MAX 100u
#define PF_SSH_KEY_LINE_MAX (16u * 1024)

#define PF_DNS_MAX 8u
#define PF_VAR_KEY_MAX 64u
#define PF_VAR_VALUE_MAX (4u * 1024)
#define PF_VARS_MAX 512u

/* RFC 1123 label: [a-z0-9-], 1..63 bytes, no hyphen at either end. Upper case is refused
 * (with a hint giving the lower-case spelling): hostnames are case-insensitive, but the
 * tools that read /etc/hosts, Ansible inventories and certificates compare them as strings.
 * A dot is refused with a hint to use the domain. Returns 0 or -EINVAL with a detail. */
int pf_hostname_validate(const char *s);

/* Dot-separated labels as above, at most 253 bytes, no leading/trailing dot. */
int pf_domain_validate(const char *s);

/* An SSH public key, as in one line of authorized_keys (without options). */
typedef struct PfSshKey {
	char *type;	/* "ssh-ed25519", ... */
	char *blob_b64; /* the base64 blob, canonical (strictly decoded and checked) */
	char *comment;	/* may be NULL */
} PfSshKey;

/*
 * Parses public keys: several lines "type base64 [comment]", blank lines and '#' comments,
 * LF or CRLF. Accepted types: ssh-ed25519, ssh-rsa (≥ 1024 bits), ecdsa-sha2-nistp256/384/521,
 * sk-ssh-ed25519@openssh.com, sk-ecdsa-sha2-nistp256@openssh.com. The blob is decoded and its
 * structure checked against the type (lengths, curve name, point size; not the math).
 * authorized_keys options before the type are refused: a key given to piflash must be plain,
 * piflash writes the options itself where needed. A private key (PEM "-----BEGIN ... PRIVATE
 * KEY-----", OpenSSH, PuTTY) anywhere in the text refuses the whole text, and the message quotes
 * none of it. Duplicate keys are dropped (first one kept). Limits: PF_SSH_KEYS_TEXT_MAX bytes,
 * PF_SSH_KEYS_MAX keys, PF_SSH_KEY_LINE_MAX bytes a line. A text without a key is an error.
 * Errors name "origin:line". Returns 0 or -EINVAL/-E2BIG/-ENOMEM; on success *ret, *ret_n.
 */
int pf_ssh_keys_parse(const char *text, size_t len, const char *origin, PfSshKey **ret,
		      size_t *ret_n);

/* Reads a regular file of at most PF_SSH_KEYS_TEXT_MAX bytes and parses it as above; errors
 * name the path. */
int pf_ssh_keys_load_file(const char *path, PfSshKey **ret, size_t *ret_n);

/* "type base64 comment" (no comment: "type base64"), malloc'd; NULL on ENOMEM. */
char *pf_ssh_key_format(const PfSshKey *k);

void pf_ssh_keys_free(PfSshKey *k, size_t n);

/* Whether a setting's value is key text (a key type first, a PEM or PuTTY header, several
 * lines) rather than a path. */
bool pf_ssh_key_text_like(const char *v);

/* Whether a value looks like key material: 40 bytes or more of the base64 alphabet and
 * nothing else, not an absolute path. */
bool pf_ssh_key_b64_like(const char *v);

/*
 * IPv4 in host byte order. Strict dotted quad: four decimal numbers 0..255, no sign, no
 * whitespace, and no leading zero ("010" is octal 8 to inet_aton() and decimal 10 to
 * humans, so it is refused rather than guessed). Returns 0 or -EINVAL with a detail.
 */
int pf_ipv4_parse(const char *s, uint32_t *ret_addr);

/*
 * "a.b.c.d/prefix" as a host address: the prefix (1..32) is required, and the address must be
 * usable by a host: not 0.0.0.0/8, loopback, multicast or reserved (224.0.0.0/3), and for
 * prefixes up to 30 neither the network nor the broadcast address of its subnet.
 */
int pf_ipv4_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix);

void pf_ipv4_format(uint32_t a, char buf[static 16]);

/* The netmask of a prefix 0..32 in host byte order (0 → 0, 24 → 0xffffff00). */
uint32_t pf_ipv4_netmask(unsigned prefix);

/* True if a is inside net/prefix. */
bool pf_ipv4_in_subnet(uint32_t a, uint32_t net, unsigned prefix);

/* Whether a host may use a (not 0/8, loopback, multicast or reserved); s names it in the
 * message. 0 or -EINVAL. */
int pf_ipv4_host_check(uint32_t a, const char *s);

/* Debian's useradd rule: [a-z_][a-z0-9_-]*[$]?, 1..32 bytes. */
int pf_username_validate(const char *s);

/*
 * A crypt(3) hash for /etc/shadow: $y$ (yescrypt), $gy$, $7$ (scrypt), $2b$/$2y$ (bcrypt),
 * $6$/$5$ (SHA-crypt), each with its structure checked. $1$ (MD5), DES and anything else are
 * refused — a card is easy to read, and such hashes are cracked in minutes. A plain password is
 * refused with a message telling how to make a hash. The value never appears in a message.
 */
int pf_password_hash_validate(const char *s);

/* WiFi SSID: 1..32 bytes, no control characters. */
int pf_wifi_ssid_validate(const char *s);

/* WPA passphrase: 8..63 printable ASCII, or exactly 64 hex digits. Never echoed. */
int pf_wifi_psk_validate(const char *s);

/* Reads a passphrase from a regular file (at most 256 bytes), strips one trailing newline
 * (LF or CRLF), validates it. The buffer read is wiped. Returns 0 and *ret (malloc'd; wipe
 * with explicit_bzero before free) or -errno with a detail naming the path only. */
int pf_wifi_psk_load_file(const char *path, char **ret);

/* ISO 3166-1 alpha-2, upper case, an assigned code ("GB", not "UK"). */
int pf_wifi_country_validate(const char *s);

/* Area/City: [A-Za-z0-9_+-/], no "." or ".." component, no empty component, ≤ 64 bytes. */
int pf_timezone_validate(const char *s);

/* en_US.UTF-8, C.UTF-8: [A-Za-z0-9_.@-], starts with a letter, ≤ 64 bytes. */
int pf_locale_validate(const char *s);

/* Kernel's dev_valid_name(): 1..15 bytes, not "." or "..", no '/', ':', whitespace or control
 * characters. */
int pf_iface_validate(const char *s);

/* pi1 pi2 pi3 pi4 pi5 zero zero2 cm1 cm3 cm4 cm5 pi400 pi500. */
int pf_board_validate(const char *board);

/*
 * Whether an image for arch ("armhf", "arm64", "armel") can run on board. ARMv6 boards (pi1,
 * zero, cm1) and the pi2 (the v1.1 is ARMv7; its v1.2 is ARMv8 but no arm64 image supports
 * it) refuse arm64. armhf is accepted everywhere: Raspbian/Raspberry Pi OS armhf is built for
 * ARMv6, which the flavor check refines (Debian's own armhf is ARMv7 and will not run on a
 * pi1/zero). armel (ARMv5) runs everywhere. Returns 0, or -EINVAL (unknown board/arch) /
 * -ENOEXEC (cannot run) with a detail.
 */
int pf_board_arch_ok(const char *board, const char *arch);

/* A template variable name: [A-Za-z_][A-Za-z0-9_]*, 1..64 bytes. */
int pf_var_key_validate(const char *key);

/*
 * Template variables set from --set or an inventory column are declared by this prefix
 * (var_rack, used as {{var_rack}} in templates), so that a misspelt setting ("sshkey",
 * "gatway") is an error rather than a variable nothing reads.
 */
#define PF_VAR_PREFIX "var_"

/*
 * Whether key may be given to pf_node_config_set_at(): one of its settings, "group" (the
 * Ansible groups of an inventory row), or a variable named PF_VAR_PREFIX + name. Returns 0 or
 * -EINVAL with a detail "unknown setting 'sshkey' (did you mean ssh_key?)".
 */
int pf_node_config_key_check(const char *key);

/* The setting (or "group") closest to a misspelt key, or NULL when none is close. */
const char *pf_node_config_key_suggest(const char *key);

/* Splits "KEY=VALUE" (--set): key checked as above, value at most 4 KiB. */
int pf_var_parse(const char *arg, char **ret_key, char **ret_value);

/* A template variable's value: at most PF_VAR_VALUE_MAX bytes. 0 or -E2BIG. */
int pf_var_value_validate(const char *v);

typedef struct PfVar {
	char *key;
	char *value;
} PfVar;

/* A zero-initialised struct is an empty config. */
typedef struct PfNodeConfig {
	char *hostname; /* required */
	char *domain;	/* optional */
	PfSshKey *keys;
	size_t n_keys;
	char *user;	     /* NULL: the flavor's default */
	char *password_hash; /* NULL: none */
	bool ssh_password;   /* allow password login even when keys are given */
	bool no_login;	     /* --no-login: the operator means a node with no key and no password */
	bool static_ip;	     /* false: DHCP */
	uint32_t ip;
	unsigned prefix;
	uint32_t gateway;
	bool has_gateway;
	uint32_t dns[PF_DNS_MAX]; /* used with DHCP too: they replace the DHCP server's */
	size_t n_dns;
	char *iface; /* NULL: "eth0", see pf_node_config_iface() */
	char *wifi_ssid;
	char *wifi_psk; /* secret: never printed; wiped when freed */
	char *wifi_country;
	char *timezone;
	char *locale;
	char *board;
	PfVar *vars; /* everything else, for templates; keys unique */
	size_t n_vars;
} PfNodeConfig;

/* Frees the members (the passphrase and the password hash wiped first) and zeroes *c. */
void pf_node_config_done(PfNodeConfig *c);

/* c->iface or "eth0". */
const char *pf_node_config_iface(const PfNodeConfig *c);

/*
 * Sets one setting from a string, for the CLI and the CSV alike. Keys:
 *   hostname domain user board timezone locale iface wifi_ssid wifi_country  (validated as above)
 *   ip            CIDR "10.0.0.13/24" (static address), or "dhcp" (back to DHCP: also forgets
 *                 the gateway)
 *   gateway       a plain address
 *   dns           comma-separated addresses (spaces allowed after commas), ≤ 8, no duplicates
 *   password_hash a crypt(3) hash
 *   ssh_password  yes/no, true/false, 1/0
 *   ssh_key       the key text itself when it starts with a key type (or looks like a private
 *                 key, so that it is refused without echo), else a path to a file of keys:
 *                 absolute, or relative to base_dir (NULL: the working directory). The keys
 *                 replace earlier ones. "~" is not expanded (the shell's job); it is refused.
 *   wifi_psk_file a path (relative as above) to a file holding the passphrase
 *   group         the Ansible groups of an inventory row, also a template variable
 *   var_NAME      a template variable ({{var_NAME}})
 * The keys "wifi_psk" and "password" are refused (a secret must come from a file or a hash);
 * any other key is an error naming the setting it is closest to (pf_node_config_key_check()).
 * Empty values are refused except for variables. Replaces any earlier value. origin is where
 * the value came from, for messages ("--ip", "--set var_rack", "cluster.csv:4:12"). Returns 0
 * or -errno with a detail "origin: what is wrong"; the key is said after the origin
 * ("cluster.csv:4:12: ip: ...") only where neither the origin (an option, "--...") nor the
 * message names it.
 */
int pf_node_config_set_at(PfNodeConfig *c, const char *key, const char *value, const char *origin,
			  const char *base_dir);

/* pf_node_config_set_at() with relative paths taken from the working directory. */
int pf_node_config_set(PfNodeConfig *c, const char *key, const char *value, const char *origin);

/* The value of a template variable, or NULL. */
const char *pf_node_config_var(const PfNodeConfig *c, const char *key);

/*
 * The network settings agree: a gateway only with a static address, inside its subnet, not the
 * address itself nor (prefix ≤ 30) the network or broadcast address; for a /32 no gateway can be
 * on-link, so one is refused. DNS servers are allowed with DHCP (they override the DHCP
 * server's). Used by pf_node_config_check() and by the inventory on each row.
 */
int pf_node_config_check_network(const PfNodeConfig *c);

/*
 * Checks the settings as a whole, once every source has been applied: a hostname is present,
 * hostname.domain fits in 253 bytes, the network agrees (above), a WiFi SSID has a passphrase
 * and a country, and a passphrase has an SSID; SSH password login (ssh_password) has a
 * password hash to log in with, and no_login comes with neither keys nor a hash. Whether a
 * node without keys or hash can be logged into depends on the image: the plan checks that.
 * Returns 0 or -EINVAL with a detail.
 */
int pf_node_config_check(const PfNodeConfig *c);
