/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "node/config.h"
#include "util/error.h"
#include "util/macros.h"
#include "util/strutil.h"

/* ---- names ---------------------------------------------------------------------------------- */

static bool has_upper(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			return true;
	return false;
}

/* Checks one label s[0..n); what names it in messages ("hostname", "domain"). */
static int label_validate(const char *s, size_t n, const char *what, const char *whole)
{
	if (n == 0)
		return pf_error_set(-EINVAL, "%s '%s' has an empty label", what, whole);
	if (n > 63)
		return pf_error_set(-EINVAL, "%s '%s' has a label of %zu bytes (at most 63)", what,
				    whole, n);
	if (s[0] == '-' || s[n - 1] == '-')
		return pf_error_set(-EINVAL, "%s '%s' has a label starting or ending in '-'", what,
				    whole);
	for (size_t i = 0; i < n; i++) {
		if (pf_is_lower_alnum(s[i]) || s[i] == '-')
			continue;
		if (s[i] >= 'A' && s[i] <= 'Z') {
			char low[254];
			size_t l = strlen(whole);

			if (l >= sizeof(low))
				l = sizeof(low) - 1;
			for (size_t j = 0; j < l; j++)
				low[j] = (whole[j] >= 'A' && whole[j] <= 'Z') ? whole[j] - 'A' + 'a'
									      : whole[j];
			low[l] = 0;
			return pf_error_set(-EINVAL, "%s '%s' has upper case; write it '%s'", what,
					    whole, low);
		}
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return pf_error_set(-EINVAL,
					    "%s has a byte 0x%02x not allowed (a-z, 0-9, '-')",
					    what, (unsigned char)s[i]);
		return pf_error_set(-EINVAL, "%s '%s' has '%c' (only a-z, 0-9 and '-' are allowed)",
				    what, whole, s[i]);
	}
	return 0;
}

/* The checks every name opens with: not empty, not longer than max bytes. */
static int check_length(const char *s, const char *what, size_t max, size_t *ret_n)
{
	if (!s || !*s)
		return pf_error_set(-EINVAL, "%s is empty", what);
	*ret_n = strlen(s);
	if (*ret_n > max)
		return pf_error_set(-EINVAL, "%s is %zu bytes long (at most %zu)", what, *ret_n,
				    max);
	return 0;
}

/* Character predicates of the fields below: may s[i] stand at byte i of the n bytes of s? */
static bool user_char(const char *s, size_t i, size_t n)
{
	return pf_is_lower_alnum(s[i]) || s[i] == '_' || s[i] == '-' || (s[i] == '$' && i == n - 1);
}

static bool ssid_char(const char *s, size_t i, size_t n)
{
	return !((unsigned char)s[i] < 0x20 || s[i] == 0x7f);
}

static bool timezone_char(const char *s, size_t i, size_t n)
{
	return pf_is_alpha(s[i]) || pf_is_digit(s[i]) || strchr("_+-/", s[i]);
}

static bool locale_char(const char *s, size_t i, size_t n)
{
	return pf_is_alpha(s[i]) || pf_is_digit(s[i]) || strchr("_.@-", s[i]);
}

static bool iface_char(const char *s, size_t i, size_t n)
{
	unsigned char ch = (unsigned char)s[i];

	return !(ch <= 0x20 || ch == 0x7f || ch == '/' || ch == ':');
}

/* A field checked "length, then each character": its name in messages, its limit, which
 * characters it takes, and what the message says of one it does not. */
typedef struct CharRule {
	const char *what;
	size_t max; /* bytes */
	bool (*ok)(const char *s, size_t i, size_t n);
	const char *bad;     /* "has %s at byte N" */
	const char *allowed; /* after the byte number */
} CharRule;

enum { RULE_USER, RULE_SSID, RULE_TIMEZONE, RULE_LOCALE, RULE_IFACE };

static const CharRule rules[] = {
	[RULE_USER] = { "user name", 32, user_char, "a character not allowed",
			" (a-z, 0-9, '_', '-', and a final '$')" },
	[RULE_SSID] = { "WiFi SSID", 32, ssid_char, "a control character", "" },
	[RULE_TIMEZONE] = { "time zone", 64, timezone_char, "a character not allowed",
			    " (A-Z, a-z, 0-9, '_', '+', '-', '/'; like 'Europe/Berlin')" },
	[RULE_LOCALE] = { "locale", 64, locale_char, "a character not allowed",
			  " (A-Z, a-z, 0-9, '_', '.', '@', '-'; like 'en_US.UTF-8')" },
	[RULE_IFACE] = { "interface name", 15, iface_char, "a character not allowed",
			 " (no '/', ':', spaces or control characters)" },
};

static int rule_length(const CharRule *rule, const char *s, size_t *ret_n)
{
	return check_length(s, rule->what, rule->max, ret_n);
}

static int rule_chars(const CharRule *rule, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!rule->ok(s, i, n))
			return pf_error_set(-EINVAL, "%s has %s at byte %zu%s", rule->what,
					    rule->bad, i + 1, rule->allowed);
	return 0;
}

int pf_hostname_validate(const char *s)
{
	size_t n;
	int r;

	r = check_length(s, "hostname", 63, &n);
	if (r < 0)
		return r;
	if (memchr(s, '.', n))
		return pf_error_set(
			-EINVAL,
			"hostname '%s' has a '.'; give one label here and the rest as the "
			"domain",
			s);
	return label_validate(s, n, "hostname", s);
}

/* Calls part() on each part of s between the separators sep; stops at the first error. */
static int each_part(const char *s, char sep, int (*part)(const char *p, size_t n, const char *s))
{
	for (const char *p = s;;) {
		const char *end = strchr(p, sep);
		size_t l = end ? (size_t)(end - p) : strlen(p);
		int r = part(p, l, s);

		if (r < 0)
			return r;
		if (!end)
			return 0;
		p = end + 1;
	}
}

static int domain_label(const char *p, size_t n, const char *s)
{
	return label_validate(p, n, "domain", s);
}

int pf_domain_validate(const char *s)
{
	size_t n;
	int r;

	r = check_length(s, "domain", 253, &n);
	if (r < 0)
		return r;
	return each_part(s, '.', domain_label);
}

int pf_username_validate(const char *s)
{
	const CharRule *rule = &rules[RULE_USER];
	size_t n = 0;
	int r;

	r = rule_length(rule, s, &n);
	if (r < 0)
		return r;
	if (has_upper(s, n))
		return pf_error_set(-EINVAL, "user name '%s' has upper case (a-z, 0-9, '_', '-')",
				    s);
	if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return pf_error_set(-EINVAL, "user name '%.32s' must start with a-z or '_'", s);
	return rule_chars(rule, s, n);
}

int pf_wifi_ssid_validate(const char *s)
{
	const CharRule *rule = &rules[RULE_SSID];
	size_t n = 0;
	int r;

	r = rule_length(rule, s, &n);
	if (r < 0)
		return r;
	return rule_chars(rule, s, n);
}

int pf_wifi_psk_validate(const char *s)
{
	size_t n;

	if (!s)
		return pf_error_set(-EINVAL, "WiFi passphrase is empty");
	n = strlen(s);
	if (n == 64) {
		size_t i;

		for (i = 0; i < n; i++)
			if (!strchr("0123456789abcdefABCDEF", s[i]))
				break;
		if (i == n)
			return 0;
	}
	if (n < 8 || n > 63)
		return pf_error_set(-EINVAL,
				    "WiFi passphrase is %zu bytes long: it must be 8 to 63 "
				    "characters, or 64 hex digits",
				    n);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return pf_error_set(
				-EINVAL,
				"WiFi passphrase has a byte that is not printable ASCII "
				"(at byte %zu)",
				i + 1);
	return 0;
}

/* Assigned ISO 3166-1 alpha-2 codes. */
static const char iso3166[] =
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO "
	"BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ "
	"DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP "
	"GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG "
	"KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML "
	"MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE "
	"PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL "
	"SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM "
	"US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

int pf_wifi_country_validate(const char *s)
{
	if (!s || strlen(s) != 2 || !pf_is_alpha(s[0]) || !pf_is_alpha(s[1]))
		return pf_error_set(-EINVAL,
				    "WiFi country '%.8s' is not an ISO 3166 alpha-2 code (such as "
				    "'US', 'GB', 'DE')",
				    s ? s : "");
	if ((s[0] >= 'a' && s[0] <= 'z') || (s[1] >= 'a' && s[1] <= 'z')) {
		char up[3] = { s[0] & ~0x20, s[1] & ~0x20, 0 };

		return pf_error_set(-EINVAL, "WiFi country '%s' must be upper case: '%s'", s, up);
	}
	if (streq(s, "UK"))
		return pf_error_set(-EINVAL,
				    "WiFi country 'UK' is not an ISO 3166 code: the United Kingdom "
				    "is 'GB'");
	for (const char *p = iso3166; *p; p += p[2] ? 3 : 2)
		if (p[0] == s[0] && p[1] == s[1])
			return 0;
	return pf_error_set(-EINVAL, "WiFi country '%s' is not an assigned ISO 3166 code", s);
}

static int timezone_part(const char *p, size_t n, const char *s)
{
	if (n == 0)
		return pf_error_set(-EINVAL,
				    "time zone '%s' has an empty part (like 'Europe/Berlin')", s);
	return 0;
}

int pf_timezone_validate(const char *s)
{
	const CharRule *rule = &rules[RULE_TIMEZONE];
	size_t n = 0;
	int r;

	r = rule_length(rule, s, &n);
	if (r >= 0)
		r = rule_chars(rule, s, n);
	if (r < 0)
		return r;
	return each_part(s, '/', timezone_part);
}

int pf_locale_validate(const char *s)
{
	const CharRule *rule = &rules[RULE_LOCALE];
	size_t n = 0;
	int r;

	r = rule_length(rule, s, &n);
	if (r < 0)
		return r;
	if (!pf_is_alpha(s[0]))
		return pf_error_set(-EINVAL,
				    "locale must start with a letter (like 'en_US.UTF-8')");
	return rule_chars(rule, s, n);
}

int pf_iface_validate(const char *s)
{
	const CharRule *rule = &rules[RULE_IFACE];
	size_t n = 0;
	int r;

	r = rule_length(rule, s, &n);
	if (r < 0)
		return r;
	if (streq(s, ".") || streq(s, ".."))
		return pf_error_set(-EINVAL, "interface name cannot be '%s'", s);
	return rule_chars(rule, s, n);
}

/* ---- boards --------------------------------------------------------------------------------- */

typedef enum BoardCpu {
	CPU_ARMV6,
	CPU_ARMV7,
	CPU_ARMV8,
} BoardCpu;

static const struct {
	const char *name;
	BoardCpu cpu;
} boards[] = {
	{ "pi1", CPU_ARMV6 },	{ "zero", CPU_ARMV6 },	{ "cm1", CPU_ARMV6 }, { "pi2", CPU_ARMV7 },
	{ "pi3", CPU_ARMV8 },	{ "zero2", CPU_ARMV8 }, { "cm3", CPU_ARMV8 }, { "pi4", CPU_ARMV8 },
	{ "cm4", CPU_ARMV8 },	{ "pi400", CPU_ARMV8 }, { "pi5", CPU_ARMV8 }, { "cm5", CPU_ARMV8 },
	{ "pi500", CPU_ARMV8 },
};

static int board_find(const char *board)
{
	for (size_t i = 0; i < ELEMENTSOF(boards); i++)
		if (board && streq(board, boards[i].name))
			return (int)i;
	return pf_error_set(
		-EINVAL,
		"unknown board '%.32s' (pi1, pi2, pi3, pi4, pi5, zero, zero2, cm1, cm3, "
		"cm4, cm5, pi400, pi500)",
		board ? board : "");
}

int pf_board_validate(const char *board)
{
	int r = board_find(board);

	return r < 0 ? r : 0;
}

int pf_board_arch_ok(const char *board, const char *arch)
{
	int i = board_find(board);

	if (i < 0)
		return i;
	if (!arch || (!streq(arch, "armhf") && !streq(arch, "arm64") && !streq(arch, "armel")))
		return pf_error_set(-EINVAL, "unknown architecture '%.32s' (armhf, arm64, armel)",
				    arch ? arch : "");
	if (streq(arch, "arm64") && boards[i].cpu != CPU_ARMV8)
		return pf_error_set(-ENOEXEC,
				    "board '%s' cannot run an arm64 image (its CPU is %s); use an "
				    "armhf image",
				    board, boards[i].cpu == CPU_ARMV6 ? "ARMv6" : "ARMv7");
	return 0;
}

/* ---- password hashes ------------------------------------------------------------------------ */

static bool is_crypt64(char ch)
{
	return pf_is_alpha(ch) || pf_is_digit(ch) || ch == '.' || ch == '/';
}

/* Length of the run of crypt64 characters at s. */
static size_t crypt64_span(const char *s)
{
	size_t n = 0;

	while (is_crypt64(s[n]))
		n++;
	return n;
}

#define HASH_HINT "make one with `mkpasswd -m yescrypt` or `openssl passwd -6`"

static int hash_bad(const char *kind)
{
	return pf_error_set(-EINVAL,
			    "password hash looks like %s but its structure is wrong; " HASH_HINT
			    " (the value is not shown)",
			    kind);
}

/* $6$[rounds=N$]salt$hash, salt 1..16, hash of hash_len. */
static int sha_crypt_check(const char *p, size_t hash_len, const char *kind)
{
	const char *r = startswith(p, "rounds=");
	size_t salt;

	if (r) {
		size_t d = 0;
		uint64_t v = 0;

		while (pf_is_digit(r[d]) && d < 10)
			v = v * 10 + (uint64_t)(r[d++] - '0');
		if (d == 0 || r[d] != '$' || v < 1000 || v > 999999999)
			return hash_bad(kind);
		p = r + d + 1;
	}
	salt = crypt64_span(p);
	if (salt < 1 || salt > 16 || p[salt] != '$')
		return hash_bad(kind);
	p += salt + 1;
	if (crypt64_span(p) != hash_len || p[hash_len])
		return hash_bad(kind);
	return 0;
}

/* yescrypt and gost-yescrypt: params$salt$hash43. */
static int yescrypt_check(const char *p, const char *kind)
{
	size_t n = crypt64_span(p);

	if (n < 1 || p[n] != '$')
		return hash_bad(kind);
	p += n + 1;
	n = crypt64_span(p);
	if (n < 1 || p[n] != '$')
		return hash_bad(kind);
	p += n + 1;
	if (crypt64_span(p) != 43 || p[43])
		return hash_bad(kind);
	return 0;
}

int pf_password_hash_validate(const char *s)
{
	const char *p;

	if (!s || !*s)
		return pf_error_set(-EINVAL, "password hash is empty; " HASH_HINT);
	if (s[0] != '$')
		return pf_error_set(-EINVAL,
				    "password hash is not a crypt(3) hash (a plain password is not "
				    "accepted, and DES hashes are too weak); " HASH_HINT
				    " (the value is not shown)");
	if ((p = startswith(s, "$y$")))
		return yescrypt_check(p, "yescrypt ($y$)");
	if ((p = startswith(s, "$gy$")))
		return yescrypt_check(p, "gost-yescrypt ($gy$)");
	if ((p = startswith(s, "$6$")))
		return sha_crypt_check(p, 86, "SHA-512 crypt ($6$)");
	if ((p = startswith(s, "$5$")))
		return sha_crypt_check(p, 43, "SHA-256 crypt ($5$)");
	if ((p = startswith(s, "$7$"))) {
		/* N (1), r (5), p (5) in crypt64, then salt, '$', hash of 43. */
		size_t n = crypt64_span(p);

		if (n < 12 || p[n] != '$' || crypt64_span(p + n + 1) != 43 || p[n + 44])
			return hash_bad("scrypt ($7$)");
		return 0;
	}
	if ((p = startswith(s, "$2b$")) || (p = startswith(s, "$2y$"))) {
		/* cost 04..31, '$', 22 salt + 31 hash. */
		if (!pf_is_digit(p[0]) || !pf_is_digit(p[1]) || p[2] != '$')
			return hash_bad("bcrypt");
		int cost = (p[0] - '0') * 10 + (p[1] - '0');
		if (cost < 4 || cost > 31 || crypt64_span(p + 3) != 53 || p[56])
			return hash_bad("bcrypt");
		return 0;
	}
	if (startswith(s, "$1$"))
		return pf_error_set(-EINVAL,
				    "password hash is MD5 crypt ($1$), which is cracked in minutes "
				    "from a card anyone can read; " HASH_HINT);
	return pf_error_set(-EINVAL,
			    "password hash is not a supported crypt(3) hash ($y$, $gy$, $7$, $2b$, "
			    "$2y$, $6$, $5$); " HASH_HINT " (the value is not shown)");
}

/* ---- variables ------------------------------------------------------------------------------ */

int pf_var_key_validate(const char *key)
{
	size_t n;

	if (!key || !*key)
		return pf_error_set(-EINVAL, "empty variable name");
	n = strlen(key);
	if (n > PF_VAR_KEY_MAX)
		return pf_error_set(-EINVAL, "variable name is %zu bytes long (at most %u)", n,
				    PF_VAR_KEY_MAX);
	if (!pf_is_alpha(key[0]) && key[0] != '_')
		return pf_error_set(-EINVAL,
				    "variable name '%s' must start with a letter or '_' "
				    "([A-Za-z_][A-Za-z0-9_]*)",
				    key);
	for (size_t i = 1; i < n; i++)
		if (!pf_is_alpha(key[i]) && !pf_is_digit(key[i]) && key[i] != '_')
			return pf_error_set(-EINVAL,
					    "variable name '%s' has '%c' at byte %zu "
					    "([A-Za-z_][A-Za-z0-9_]*)",
					    key, (unsigned char)key[i] >= 0x20 ? key[i] : '?',
					    i + 1);
	return 0;
}

int pf_var_value_validate(const char *v)
{
	size_t n = strlen(v);

	if (n > PF_VAR_VALUE_MAX)
		return pf_error_set(-E2BIG, "value is %zu bytes long (at most %u)", n,
				    PF_VAR_VALUE_MAX);
	return 0;
}

int pf_var_parse(const char *arg, char **ret_key, char **ret_value)
{
	_cleanup_(freep) char *key = NULL;
	_cleanup_(freep) char *value = NULL;
	const char *eq = arg ? strchr(arg, '=') : NULL;
	int r;

	if (!eq)
		return pf_error_set(-EINVAL, "'%.64s' is not KEY=VALUE", arg ? arg : "");
	if ((size_t)(eq - arg) > PF_VAR_KEY_MAX)
		return pf_error_set(-EINVAL, "variable name is longer than %u bytes",
				    PF_VAR_KEY_MAX);
	key = strndup(arg, (size_t)(eq - arg));
	if (!key)
		return -ENOMEM;
	r = pf_var_key_validate(key);
	if (r < 0)
		return r;
	r = pf_var_value_validate(eq + 1);
	if (r < 0)
		return pf_error_prefix(r, "%s", key);
	value = strdup(eq + 1);
	if (!value)
		return -ENOMEM;
	*ret_key = TAKE_PTR(key);
	*ret_value = TAKE_PTR(value);
	return 0;
}
