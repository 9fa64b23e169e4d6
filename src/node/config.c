/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "node/config.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/macros.h"
#include "util/strutil.h"

/* ---- names ---------------------------------------------------------------------------------- */

static bool is_lower_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static bool is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

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
		if (is_lower_alnum(s[i]) || s[i] == '-')
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

int pf_domain_validate(const char *s)
{
	size_t n;
	int r;
	const char *p;

	r = check_length(s, "domain", 253, &n);
	if (r < 0)
		return r;
	for (p = s;;) {
		const char *dot = strchr(p, '.');
		size_t l = dot ? (size_t)(dot - p) : strlen(p);

		r = label_validate(p, l, "domain", s);
		if (r < 0)
			return r;
		if (!dot)
			break;
		p = dot + 1;
	}
	return 0;
}

int pf_username_validate(const char *s)
{
	size_t n;
	int r;

	r = check_length(s, "user name", 32, &n);
	if (r < 0)
		return r;
	if (has_upper(s, n))
		return pf_error_set(-EINVAL, "user name '%s' has upper case (a-z, 0-9, '_', '-')",
				    s);
	if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return pf_error_set(-EINVAL, "user name '%.32s' must start with a-z or '_'", s);
	for (size_t i = 1; i < n; i++) {
		if (is_lower_alnum(s[i]) || s[i] == '_' || s[i] == '-')
			continue;
		if (s[i] == '$' && i == n - 1)
			continue;
		return pf_error_set(-EINVAL,
				    "user name has a character not allowed at byte %zu (a-z, 0-9, "
				    "'_', '-', and a final '$')",
				    i + 1);
	}
	return 0;
}

int pf_wifi_ssid_validate(const char *s)
{
	size_t n;
	int r;

	r = check_length(s, "WiFi SSID", 32, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return pf_error_set(-EINVAL,
					    "WiFi SSID has a control character at byte %zu", i + 1);
	return 0;
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
	if (!s || strlen(s) != 2 || !is_alpha(s[0]) || !is_alpha(s[1]))
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

int pf_timezone_validate(const char *s)
{
	size_t n;
	int r;
	const char *p;

	r = check_length(s, "time zone", 64, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && !strchr("_+-/", s[i]))
			return pf_error_set(
				-EINVAL,
				"time zone has a character not allowed at byte %zu "
				"(A-Z, a-z, 0-9, '_', '+', '-', '/'; like 'Europe/Berlin')",
				i + 1);
	for (p = s;;) {
		const char *slash = strchr(p, '/');
		size_t l = slash ? (size_t)(slash - p) : strlen(p);

		if (l == 0)
			return pf_error_set(
				-EINVAL, "time zone '%s' has an empty part (like 'Europe/Berlin')",
				s);
		if (!slash)
			break;
		p = slash + 1;
	}
	return 0;
}

int pf_locale_validate(const char *s)
{
	size_t n;
	int r;

	r = check_length(s, "locale", 64, &n);
	if (r < 0)
		return r;
	if (!is_alpha(s[0]))
		return pf_error_set(-EINVAL,
				    "locale must start with a letter (like 'en_US.UTF-8')");
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && !strchr("_.@-", s[i]))
			return pf_error_set(
				-EINVAL,
				"locale has a character not allowed at byte %zu "
				"(A-Z, a-z, 0-9, '_', '.', '@', '-'; like 'en_US.UTF-8')",
				i + 1);
	return 0;
}

int pf_iface_validate(const char *s)
{
	size_t n;
	int r;

	r = check_length(s, "interface name", 15, &n);
	if (r < 0)
		return r;
	if (streq(s, ".") || streq(s, ".."))
		return pf_error_set(-EINVAL, "interface name cannot be '%s'", s);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch <= 0x20 || ch == 0x7f || ch == '/' || ch == ':')
			return pf_error_set(
				-EINVAL,
				"interface name has a character not allowed at byte %zu "
				"(no '/', ':', spaces or control characters)",
				i + 1);
	}
	return 0;
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

/* ---- IPv4 ----------------------------------------------------------------------------------- */

/* A ':' is in no IPv4 address and in every IPv6 one: say so rather than that a number is
 * above 255 ("2001:db8::13") or that the dots are missing. */
static int ipv6_refused(const char *s)
{
	return pf_error_set(-EINVAL,
			    "'%.64s' is an IPv6 address: piflash sets IPv4 addresses only (IPv6 "
			    "is not supported here)",
			    s);
}

int pf_ipv4_parse(const char *s, uint32_t *ret_addr)
{
	uint32_t a = 0;
	const char *p = s;

	if (!s || !*s)
		return pf_error_set(-EINVAL, "empty IPv4 address");
	if (strchr(s, ':'))
		return ipv6_refused(s);
	for (int part = 0; part < 4; part++) {
		unsigned v = 0;
		const char *start = p;

		if (!is_digit(*p))
			return pf_error_set(-EINVAL,
					    "'%.64s' is not an IPv4 address (four numbers 0-255 "
					    "separated by dots)",
					    s);
		while (is_digit(*p)) {
			v = v * 10 + (unsigned)(*p - '0');
			if (v > 255)
				return pf_error_set(-EINVAL,
						    "'%.64s' is not an IPv4 address: a number is "
						    "above 255",
						    s);
			p++;
		}
		if (p - start > 1 && start[0] == '0')
			return pf_error_set(-EINVAL,
					    "'%.64s' has a number with a leading zero (ambiguous: "
					    "octal to some tools); write it without",
					    s);
		a = (a << 8) | v;
		if (part < 3) {
			if (*p != '.')
				return pf_error_set(-EINVAL,
						    "'%.64s' is not an IPv4 address (four numbers "
						    "0-255 separated by dots)",
						    s);
			p++;
		}
	}
	if (*p)
		return pf_error_set(-EINVAL,
				    "'%.64s' is not an IPv4 address (four numbers 0-255 separated "
				    "by dots)",
				    s);
	*ret_addr = a;
	return 0;
}

uint32_t pf_ipv4_netmask(unsigned prefix)
{
	if (prefix == 0)
		return 0;
	if (prefix >= 32)
		return UINT32_MAX;
	return UINT32_MAX << (32 - prefix);
}

bool pf_ipv4_in_subnet(uint32_t a, uint32_t net, unsigned prefix)
{
	uint32_t m = pf_ipv4_netmask(prefix);

	return (a & m) == (net & m);
}

void pf_ipv4_format(uint32_t a, char buf[static 16])
{
	snprintf(buf, 16, "%u.%u.%u.%u", (a >> 24) & 0xff, (a >> 16) & 0xff, (a >> 8) & 0xff,
		 a & 0xff);
}

/* A host may use a: not 0/8, loopback, multicast or reserved. */
static int host_addr_check(uint32_t a, const char *s)
{
	if ((a >> 24) == 0)
		return pf_error_set(-EINVAL, "'%s' is in 0.0.0.0/8, which no host can use", s);
	if ((a >> 24) == 127)
		return pf_error_set(-EINVAL, "'%s' is a loopback address", s);
	if (a >= 0xe0000000u)
		return pf_error_set(-EINVAL, "'%s' is a multicast or reserved address", s);
	return 0;
}

int pf_ipv4_parse_cidr(const char *s, uint32_t *ret_addr, unsigned *ret_prefix)
{
	char addr[16];
	const char *slash;
	uint32_t a, m;
	uint64_t prefix;
	char net[16];
	int r;

	if (!s || !*s)
		return pf_error_set(-EINVAL, "empty address");
	if (strchr(s, ':'))
		return ipv6_refused(s);
	slash = strchr(s, '/');
	if (!slash)
		return pf_error_set(-EINVAL,
				    "'%.64s' has no prefix length: write the address with its "
				    "subnet, like '10.0.0.13/24'",
				    s);
	if ((size_t)(slash - s) >= sizeof(addr))
		return pf_error_set(-EINVAL, "'%.64s' is not an IPv4 address", s);
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = 0;
	r = pf_ipv4_parse(addr, &a);
	if (r < 0)
		return r;
	if (!is_digit(slash[1]) || (slash[1] == '0' && slash[2]) ||
	    pf_parse_u64(slash + 1, &prefix) < 0 || prefix < 1 || prefix > 32)
		return pf_error_set(-EINVAL, "'%.64s': the prefix length must be 1 to 32", s);
	r = host_addr_check(a, addr);
	if (r < 0)
		return r;
	m = pf_ipv4_netmask((unsigned)prefix);
	pf_ipv4_format(a & m, net);
	if (prefix <= 30 && (a & ~m) == 0)
		return pf_error_set(-EINVAL,
				    "'%s' is the network address of %s/%u, not a host address", s,
				    net, (unsigned)prefix);
	if (prefix <= 30 && (a & ~m) == ~m)
		return pf_error_set(-EINVAL,
				    "'%s' is the broadcast address of %s/%u, not a host address", s,
				    net, (unsigned)prefix);
	*ret_addr = a;
	*ret_prefix = (unsigned)prefix;
	return 0;
}

/* ---- password hashes ------------------------------------------------------------------------ */

static bool is_crypt64(char ch)
{
	return is_alpha(ch) || is_digit(ch) || ch == '.' || ch == '/';
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

		while (is_digit(r[d]) && d < 10)
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
		if (!is_digit(p[0]) || !is_digit(p[1]) || p[2] != '$')
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
	if (!is_alpha(key[0]) && key[0] != '_')
		return pf_error_set(-EINVAL,
				    "variable name '%s' must start with a letter or '_' "
				    "([A-Za-z_][A-Za-z0-9_]*)",
				    key);
	for (size_t i = 1; i < n; i++)
		if (!is_alpha(key[i]) && !is_digit(key[i]) && key[i] != '_')
			return pf_error_set(-EINVAL,
					    "variable name '%s' has '%c' at byte %zu "
					    "([A-Za-z_][A-Za-z0-9_]*)",
					    key, (unsigned char)key[i] >= 0x20 ? key[i] : '?',
					    i + 1);
	return 0;
}

static int var_value_validate(const char *v)
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
	r = var_value_validate(eq + 1);
	if (r < 0)
		return pf_error_prefix(r, "%s", key);
	value = strdup(eq + 1);
	if (!value)
		return -ENOMEM;
	*ret_key = TAKE_PTR(key);
	*ret_value = TAKE_PTR(value);
	return 0;
}

/* ---- SSH keys ------------------------------------------------------------------------------- */

typedef enum KeyKind {
	KEY_ED25519,
	KEY_RSA,
	KEY_ECDSA,
	KEY_SK_ED25519,
	KEY_SK_ECDSA,
} KeyKind;

static const struct {
	const char *type;
	KeyKind kind;
	const char *curve;
	size_t point_bytes;
} key_types[] = {
	{ "ssh-ed25519", KEY_ED25519, NULL, 32 },
	{ "ssh-rsa", KEY_RSA, NULL, 0 },
	{ "ecdsa-sha2-nistp256", KEY_ECDSA, "nistp256", 65 },
	{ "ecdsa-sha2-nistp384", KEY_ECDSA, "nistp384", 97 },
	{ "ecdsa-sha2-nistp521", KEY_ECDSA, "nistp521", 133 },
	{ "sk-ssh-ed25519@openssh.com", KEY_SK_ED25519, NULL, 32 },
	{ "sk-ecdsa-sha2-nistp256@openssh.com", KEY_SK_ECDSA, "nistp256", 65 },
};

static int key_type_find(const char *s, size_t n)
{
	for (size_t i = 0; i < ELEMENTSOF(key_types); i++)
		if (strlen(key_types[i].type) == n && memcmp(key_types[i].type, s, n) == 0)
			return (int)i;
	return -1;
}

static int b64_value(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/*
 * Strict base64 (RFC 4648 §4): length a multiple of 4, '=' only as the padding of the last
 * quantum, the unused bits of the last character zero, nothing else. Returns the decoded
 * length, or -1.
 */
static ssize_t b64_decode(const char *s, size_t n, uint8_t *out)
{
	size_t o = 0;

	if (n == 0 || n % 4 != 0)
		return -1;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		bool last = i + 4 == n;

		for (int j = 0; j < 4; j++)
			v[j] = b64_value(s[i + j]);
		if (v[0] < 0 || v[1] < 0)
			return -1;
		if (v[2] < 0) {
			/* "xx==": only at the end, and the 4 unused bits must be zero. */
			if (!last || s[i + 2] != '=' || s[i + 3] != '=' || (v[1] & 0x0f))
				return -1;
			out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
			break;
		}
		if (v[3] < 0) {
			if (!last || s[i + 3] != '=' || (v[2] & 0x03))
				return -1;
			out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
			out[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
			break;
		}
		out[o++] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		out[o++] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		out[o++] = (uint8_t)(v[2] << 6 | v[3]);
	}
	return (ssize_t)o;
}

typedef struct Reader {
	const uint8_t *p;
	size_t n, pos;
} Reader;

/* Reads an SSH "string" (uint32 big-endian length, bytes). */
static bool rd_string(Reader *r, const uint8_t **ret, size_t *ret_n)
{
	uint32_t l;

	if (r->n - r->pos < 4)
		return false;
	l = (uint32_t)r->p[r->pos] << 24 | (uint32_t)r->p[r->pos + 1] << 16 |
	    (uint32_t)r->p[r->pos + 2] << 8 | r->p[r->pos + 3];
	r->pos += 4;
	if (l > r->n - r->pos)
		return false;
	*ret = r->p + r->pos;
	*ret_n = l;
	r->pos += l;
	return true;
}

static bool str_is(const uint8_t *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

/* A positive mpint in canonical form; returns its size in bits or 0 if malformed. */
static size_t mpint_bits(const uint8_t *p, size_t n)
{
	unsigned top;
	size_t bits;

	if (n == 0 || (p[0] & 0x80))
		return 0; /* zero or negative */
	if (p[0] == 0) {
		if (n == 1 || !(p[1] & 0x80))
			return 0; /* a leading zero that is not needed */
		p++;
		n--;
	}
	bits = (n - 1) * 8;
	for (top = p[0]; top; top >>= 1)
		bits++;
	return bits;
}

/* Checks the decoded blob against the type; returns NULL or what is wrong. */
static const char *blob_check(const uint8_t *blob, size_t n, int t)
{
	Reader r = { blob, n, 0 };
	const uint8_t *s;
	size_t l;

	if (!rd_string(&r, &s, &l))
		return "the key data is truncated";
	if (!str_is(s, l, key_types[t].type))
		return "the key data is of another type than the line says";
	switch (key_types[t].kind) {
	case KEY_ED25519:
	case KEY_SK_ED25519:
		if (!rd_string(&r, &s, &l))
			return "the key data is truncated";
		if (l != 32)
			return "the Ed25519 key is not 32 bytes";
		break;
	case KEY_RSA: {
		size_t bits;

		if (!rd_string(&r, &s, &l))
			return "the key data is truncated";
		if (mpint_bits(s, l) < 2)
			return "the RSA public exponent is malformed";
		if (!rd_string(&r, &s, &l))
			return "the key data is truncated";
		bits = mpint_bits(s, l);
		if (bits == 0)
			return "the RSA modulus is malformed";
		if (bits < 1024)
			return "the RSA key is shorter than 1024 bits (OpenSSH refuses it)";
		if (bits > 16384)
			return "the RSA key is longer than 16384 bits";
		break;
	}
	case KEY_ECDSA:
	case KEY_SK_ECDSA:
		if (!rd_string(&r, &s, &l))
			return "the key data is truncated";
		if (!str_is(s, l, key_types[t].curve))
			return "the curve named in the key data does not match the key type";
		if (!rd_string(&r, &s, &l))
			return "the key data is truncated";
		if (l != key_types[t].point_bytes || s[0] != 0x04)
			return "the ECDSA point has the wrong size or form";
		break;
	}
	if (key_types[t].kind == KEY_SK_ED25519 || key_types[t].kind == KEY_SK_ECDSA) {
		/* The FIDO application, "ssh:" by default. */
		if (!rd_string(&r, &s, &l))
			return "the key data is truncated";
		if (l == 0)
			return "the security key application is empty";
	}
	if (r.pos != r.n)
		return "the key data has trailing bytes";
	return NULL;
}

/* Where a line is, for messages. */
#define LOC_FMT "%s:%u"

/* Finds a private key marker in text; returns its line (1-based) and a name, or 0. */
static unsigned find_private_key(const char *text, size_t len, const char **ret_kind)
{
	static const struct {
		const char *marker;
		const char *kind;
	} markers[] = {
		{ "-----BEGIN OPENSSH PRIVATE KEY-----", "an OpenSSH private key" },
		{ "PRIVATE KEY-----", "a PEM private key" },
		{ "PuTTY-User-Key-File-", "a PuTTY private key" },
		{ "BEGIN SSH2 ENCRYPTED PRIVATE KEY", "an SSH2 private key" },
		/* "openssh-key-v1" in base64: the body of an OpenSSH key without its armour. */
		{ "b3BlbnNzaC1rZXktdjE", "an OpenSSH private key" },
	};
	const char *best = NULL;

	for (size_t i = 0; i < ELEMENTSOF(markers); i++) {
		const char *m = memmem(text, len, markers[i].marker, strlen(markers[i].marker));

		if (m && (!best || m < best)) {
			best = m;
			*ret_kind = markers[i].kind;
		}
	}
	if (!best)
		return 0;
	unsigned line = 1;
	for (const char *p = text; p < best; p++)
		if (*p == '\n')
			line++;
	return line;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Does the line hold a known key type after something else (options)? */
static bool has_type_later(const char *line, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (!is_blank(line[i - 1]) || is_blank(line[i]))
			continue;
		size_t e = i;
		while (e < n && !is_blank(line[e]))
			e++;
		if (key_type_find(line + i, e - i) >= 0)
			return true;
	}
	return false;
}

static void key_free_one(PfSshKey *k)
{
	free(k->type);
	free(k->blob_b64);
	free(k->comment);
}

void pf_ssh_keys_free(PfSshKey *k, size_t n)
{
	if (!k)
		return;
	for (size_t i = 0; i < n; i++)
		key_free_one(&k[i]);
	free(k);
}

/* Parses one non-blank, non-comment line into *k. */
static int key_line_parse(const char *line, size_t n, const char *origin, unsigned lineno,
			  PfSshKey *k)
{
	_cleanup_(freep) uint8_t *blob = NULL;
	const char *tok = line, *b64, *why;
	size_t tn, bn;
	ssize_t dn;
	int t;

	for (tn = 0; tn < n && !is_blank(tok[tn]); tn++)
		;
	t = key_type_find(tok, tn);
	if (t < 0) {
		if (startswith(line, "---- BEGIN SSH2 PUBLIC KEY"))
			return pf_error_set(-EINVAL,
					    LOC_FMT ": an RFC 4716 (SSH2) public key; convert it "
						    "with `ssh-keygen -i -f FILE`",
					    origin, lineno);
		if (startswith(line, "-----BEGIN"))
			return pf_error_set(-EINVAL,
					    LOC_FMT ": a PEM public key; convert it with "
						    "`ssh-keygen -i -m PKCS8 -f FILE`",
					    origin, lineno);
		if (has_type_later(line, n))
			return pf_error_set(-EINVAL,
					    LOC_FMT ": authorized_keys options before the key type "
						    "are not accepted; give the plain key "
						    "(\"type base64 comment\")",
					    origin, lineno);
		if (tn == 7 && memcmp(tok, "ssh-dss", 7) == 0)
			return pf_error_set(-EINVAL,
					    LOC_FMT ": DSA keys (ssh-dss) are refused by current "
						    "OpenSSH; use an Ed25519 key",
					    origin, lineno);
		/* Nothing of the line is quoted: a path given by mistake may name a file of
		 * secrets (a password, a token), and the message goes to logs and reports. */
		return pf_error_set(-EINVAL,
				    LOC_FMT
				    ": not a public key line: its first word is no known key "
				    "type (expected \"type base64 [comment]\" with type "
				    "ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256/384/521, "
				    "sk-ssh-ed25519@openssh.com or "
				    "sk-ecdsa-sha2-nistp256@openssh.com; the line is not shown)",
				    origin, lineno);
	}

	b64 = tok + tn;
	while (b64 < line + n && is_blank(*b64))
		b64++;
	for (bn = 0; b64 + bn < line + n && !is_blank(b64[bn]); bn++)
		;
	if (bn == 0)
		return pf_error_set(-EINVAL, LOC_FMT ": %s key without its base64 data", origin,
				    lineno, key_types[t].type);
	blob = malloc(bn / 4 * 3 + 3);
	if (!blob)
		return -ENOMEM;
	dn = b64_decode(b64, bn, blob);
	if (dn < 0)
		return pf_error_set(-EINVAL, LOC_FMT ": %s key data is not valid base64", origin,
				    lineno, key_types[t].type);
	why = blob_check(blob, (size_t)dn, t);
	if (why)
		return pf_error_set(-EINVAL, LOC_FMT ": %s key: %s", origin, lineno,
				    key_types[t].type, why);

	const char *c = b64 + bn;
	const char *ce = line + n;
	while (c < ce && is_blank(*c))
		c++;
	while (ce > c && is_blank(ce[-1]))
		ce--;

	*k = (PfSshKey){};
	k->type = strdup(key_types[t].type);
	k->blob_b64 = strndup(b64, bn);
	if (ce > c)
		k->comment = strndup(c, (size_t)(ce - c));
	if (!k->type || !k->blob_b64 || (ce > c && !k->comment)) {
		key_free_one(k);
		return -ENOMEM;
	}
	return 0;
}

int pf_ssh_keys_parse(const char *text, size_t len, const char *origin, PfSshKey **ret,
		      size_t *ret_n)
{
	PfSshKey *keys = NULL;
	size_t n_keys = 0, pos = 0;
	unsigned lineno = 0, pline;
	const char *kind = NULL;
	int r;

	if (!origin)
		origin = "key text";
	if (len > PF_SSH_KEYS_TEXT_MAX)
		return pf_error_set(-E2BIG,
				    "%s: %zu bytes, more than a key file holds (at most %u)",
				    origin, len, PF_SSH_KEYS_TEXT_MAX);
	/* Before anything else, so no message can quote a piece of a private key. */
	pline = find_private_key(text, len, &kind);
	if (pline)
		return pf_error_set(-EINVAL,
				    LOC_FMT ": this is %s, not a public key; give the public key "
					    "(the .pub file) — nothing of it is shown here",
				    origin, pline, kind);

	while (pos < len) {
		const char *line = text + pos, *nl;
		size_t n;

		nl = memchr(line, '\n', len - pos);
		n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n > PF_SSH_KEY_LINE_MAX) {
			r = pf_error_set(-E2BIG, LOC_FMT ": line of %zu bytes (at most %u)", origin,
					 lineno, n, PF_SSH_KEY_LINE_MAX);
			goto fail;
		}
		for (size_t i = 0; i < n; i++)
			if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f) {
				r = pf_error_set(-EINVAL,
						 LOC_FMT ": control character (0x%02x) at byte %zu",
						 origin, lineno, (unsigned char)line[i], i + 1);
				goto fail;
			}
		while (n > 0 && is_blank(*line)) {
			line++;
			n--;
		}
		while (n > 0 && is_blank(line[n - 1]))
			n--;
		if (n == 0 || line[0] == '#')
			continue;

		PfSshKey k;
		r = key_line_parse(line, n, origin, lineno, &k);
		if (r < 0)
			goto fail;

		bool dup = false;
		for (size_t i = 0; i < n_keys; i++)
			if (streq(keys[i].type, k.type) && streq(keys[i].blob_b64, k.blob_b64))
				dup = true;
		if (dup) {
			key_free_one(&k);
			continue;
		}
		if (n_keys >= PF_SSH_KEYS_MAX) {
			key_free_one(&k);
			r = pf_error_set(-E2BIG, LOC_FMT ": more than %u keys", origin, lineno,
					 PF_SSH_KEYS_MAX);
			goto fail;
		}
		PfSshKey *nk = realloc(keys, (n_keys + 1) * sizeof(*keys));
		if (!nk) {
			key_free_one(&k);
			r = -ENOMEM;
			goto fail;
		}
		keys = nk;
		keys[n_keys++] = k;
	}
	if (n_keys == 0)
		return pf_error_set(-EINVAL, "%s: no public key in it", origin);
	*ret = keys;
	*ret_n = n_keys;
	return 0;
fail:
	pf_ssh_keys_free(keys, n_keys);
	return r;
}

char *pf_ssh_key_format(const PfSshKey *k)
{
	char *s;

	if (asprintf(&s, "%s %s%s%s", k->type, k->blob_b64, k->comment ? " " : "",
		     k->comment ? k->comment : "") < 0)
		return NULL;
	return s;
}

int pf_ssh_keys_load_file(const char *path, PfSshKey **ret, size_t *ret_n)
{
	char *text = NULL;
	size_t len;
	int r;

	r = pf_read_file_at(AT_FDCWD, path, PF_SSH_KEYS_TEXT_MAX, &text, &len);
	if (r < 0)
		return r;
	r = pf_ssh_keys_parse(text, len, path, ret, ret_n);
	/* The file may have been a private key. */
	explicit_bzero(text, len);
	free(text);
	return r;
}

#define PSK_FILE_MAX 256u

int pf_wifi_psk_load_file(const char *path, char **ret)
{
	char *text = NULL;
	size_t len;
	int r;

	r = pf_read_file_at(AT_FDCWD, path, PSK_FILE_MAX, &text, &len);
	if (r < 0)
		return r;
	if (len > 0 && text[len - 1] == '\n')
		text[--len] = 0;
	if (len > 0 && text[len - 1] == '\r')
		text[--len] = 0;
	if (memchr(text, 0, len))
		r = pf_error_set(-EINVAL, "WiFi passphrase has a NUL byte");
	else
		r = pf_wifi_psk_validate(text);
	if (r < 0) {
		explicit_bzero(text, len);
		free(text);
		return pf_error_prefix(r, "'%s'", path);
	}
	*ret = text;
	return 0;
}

/* ---- the settings --------------------------------------------------------------------------- */

static void free_secret(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
		*p = NULL;
	}
}

void pf_node_config_done(PfNodeConfig *c)
{
	if (!c)
		return;
	free(c->hostname);
	free(c->domain);
	pf_ssh_keys_free(c->keys, c->n_keys);
	free(c->user);
	free_secret(&c->password_hash);
	free(c->iface);
	free(c->wifi_ssid);
	free_secret(&c->wifi_psk);
	free(c->wifi_country);
	free(c->timezone);
	free(c->locale);
	free(c->board);
	for (size_t i = 0; i < c->n_vars; i++) {
		free(c->vars[i].key);
		free(c->vars[i].value);
	}
	free(c->vars);
	*c = (PfNodeConfig){};
}

const char *pf_node_config_iface(const PfNodeConfig *c)
{
	return c->iface ? c->iface : "eth0";
}

const char *pf_node_config_var(const PfNodeConfig *c, const char *key)
{
	for (size_t i = 0; i < c->n_vars; i++)
		if (streq(c->vars[i].key, key))
			return c->vars[i].value;
	return NULL;
}

static int replace_str(char **field, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

static int set_var(PfNodeConfig *c, const char *key, const char *value)
{
	char *k, *v;
	PfVar *nv;
	int r;

	r = pf_var_key_validate(key);
	if (r < 0)
		return r;
	r = var_value_validate(value);
	if (r < 0)
		return r;
	for (size_t i = 0; i < c->n_vars; i++)
		if (streq(c->vars[i].key, key))
			return replace_str(&c->vars[i].value, value);
	if (c->n_vars >= PF_VARS_MAX)
		return pf_error_set(-E2BIG, "more than %u variables", PF_VARS_MAX);
	nv = realloc(c->vars, (c->n_vars + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	c->vars = nv;
	k = strdup(key);
	v = strdup(value);
	if (!k || !v) {
		free(k);
		free(v);
		return -ENOMEM;
	}
	c->vars[c->n_vars++] = (PfVar){ k, v };
	return 0;
}

static int parse_bool(const char *v, bool *ret)
{
	if (streq(v, "yes") || streq(v, "true") || streq(v, "1")) {
		*ret = true;
		return 0;
	}
	if (streq(v, "no") || streq(v, "false") || streq(v, "0")) {
		*ret = false;
		return 0;
	}
	return pf_error_set(-EINVAL, "'%.16s' is not yes/no, true/false or 1/0", v);
}

static int parse_dns(const char *v, uint32_t dns[static PF_DNS_MAX], size_t *ret_n)
{
	size_t n = 0;
	const char *p = v;

	for (;;) {
		char one[16];
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		uint32_t a;
		int r;

		while (l > 0 && is_blank(*p)) {
			p++;
			l--;
		}
		while (l > 0 && is_blank(p[l - 1]))
			l--;
		if (l == 0)
			return pf_error_set(-EINVAL, "'%.128s' has an empty entry", v);
		if (l >= sizeof(one))
			return pf_error_set(-EINVAL, "'%.*s' is not an IPv4 address",
					    (int)MIN(l, 64), p);
		memcpy(one, p, l);
		one[l] = 0;
		r = pf_ipv4_parse(one, &a);
		if (r < 0)
			return r;
		r = host_addr_check(a, one);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			if (dns[i] == a)
				return pf_error_set(-EINVAL, "%s is listed twice", one);
		if (n >= PF_DNS_MAX)
			return pf_error_set(-E2BIG, "more than %u servers", PF_DNS_MAX);
		dns[n++] = a;
		if (!comma)
			break;
		p = comma + 1;
	}
	*ret_n = n;
	return 0;
}

/* Joins base_dir and a relative path; returns a malloc'd path, or NULL on ENOMEM. */
static char *path_at(const char *base_dir, const char *path)
{
	char *s;

	if (path[0] == '/' || !base_dir || !*base_dir || streq(base_dir, "."))
		return strdup(path);
	if (asprintf(&s, "%s/%s", base_dir, path) < 0)
		return NULL;
	return s;
}

static int check_path(const char *v)
{
	if (v[0] == '~')
		return pf_error_set(-EINVAL,
				    "'%.128s': '~' is not expanded here; give an absolute path or "
				    "one relative to the file that names it",
				    v);
	return 0;
}

/* Does the value hold key text rather than a path? */
static bool is_key_text(const char *v)
{
	size_t tn = strcspn(v, " \t");

	return key_type_find(v, tn) >= 0 || strchr(v, '\n') || startswith(v, "-----") ||
	       startswith(v, "---- ") || startswith(v, "PuTTY-User-Key-File");
}

/* 40 bytes or more of the base64 alphabet and nothing else, not an absolute path. */
static bool looks_like_b64(const char *v)
{
	size_t n = strlen(v);

	if (n < 40 || v[0] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if (b64_value(v[i]) < 0 && v[i] != '=')
			return false;
	return true;
}

static int set_ssh_key(PfNodeConfig *c, const char *v, const char *base_dir)
{
	_cleanup_(freep) char *path = NULL;
	PfSshKey *keys = NULL;
	size_t n = 0;
	int r;

	if (is_key_text(v))
		r = pf_ssh_keys_parse(v, strlen(v), "key text", &keys, &n);
	else {
		r = check_path(v);
		if (r < 0)
			return r;
		path = path_at(base_dir, v);
		if (!path)
			return -ENOMEM;
		/* A missing "file" that looks like a line of key material is not echoed. */
		if (looks_like_b64(v) && access(path, F_OK) < 0)
			return pf_error_set(
				-EINVAL, "neither a file nor a public key line (the value is not "
					 "shown: it looks like key material)");
		r = pf_ssh_keys_load_file(path, &keys, &n);
	}
	if (r < 0)
		return r;
	pf_ssh_keys_free(c->keys, c->n_keys);
	c->keys = keys;
	c->n_keys = n;
	return 0;
}

static int set_psk_file(PfNodeConfig *c, const char *v, const char *base_dir)
{
	_cleanup_(freep) char *path = NULL;
	char *psk = NULL;
	int r;

	r = check_path(v);
	if (r < 0)
		return r;
	path = path_at(base_dir, v);
	if (!path)
		return -ENOMEM;
	r = pf_wifi_psk_load_file(path, &psk);
	if (r < 0)
		return r;
	free_secret(&c->wifi_psk);
	c->wifi_psk = psk;
	return 0;
}

/* Validates and stores one string setting. */
static int set_checked(char **field, const char *v, int (*check)(const char *))
{
	int r = check(v);

	if (r < 0)
		return r;
	return replace_str(field, v);
}

/* The settings pf_node_config_set_at() knows, in the order --help lists them. */
static const char *const setting_keys[] = {
	"hostname", "domain",	     "ip",	     "gateway",	      "dns",   "iface",
	"user",	    "password_hash", "ssh_password", "ssh_key",	      "board", "timezone",
	"locale",   "wifi_ssid",     "wifi_country", "wifi_psk_file",
};

/* Settings whose validator names its subject ("hostname 'X' has ..."): their messages need
 * no "key: " in front. */
static const char *const self_named_keys[] = {
	"hostname", "domain", "user",	   "board",	   "timezone",
	"locale",   "iface",  "wifi_ssid", "wifi_country", "password_hash",
};

static bool strv_has_n(const char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (streq(v[i], s))
			return true;
	return false;
}

const char *pf_node_config_key_suggest(const char *key)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, n = key ? strlen(key) : 0;

	if (!key)
		return NULL;
	for (size_t i = 0; i <= ELEMENTSOF(setting_keys); i++) {
		const char *k = i < ELEMENTSOF(setting_keys) ? setting_keys[i] : "group";
		size_t d = pf_edit_distance(key, k);

		if (d < best_d) {
			best_d = d;
			best = k;
		}
	}
	/* One typo in a short name, two or a third of the name in longer ones: close enough
	 * that the operator meant it, far enough that "role" does not become "user". */
	if (best_d <= MAX((size_t)1, MIN((size_t)2, n / 3)))
		return best;
	/* "sshkey" for "ssh_key", "wifissid" for "wifi_ssid": the same letters without '_'. */
	for (size_t i = 0; i < ELEMENTSOF(setting_keys); i++) {
		char bare[PF_VAR_KEY_MAX + 1];
		size_t l = 0;

		for (const char *s = setting_keys[i]; *s; s++)
			if (*s != '_')
				bare[l++] = *s;
		bare[l] = 0;
		if (strcasecmp(bare, key) == 0)
			return setting_keys[i];
	}
	return NULL;
}

int pf_node_config_key_check(const char *key)
{
	const char *hint;
	int r;

	r = pf_var_key_validate(key);
	if (r < 0)
		return r;
	if (strv_has_n(setting_keys, ELEMENTSOF(setting_keys), key) || streq(key, "group"))
		return 0;
	if (startswith(key, PF_VAR_PREFIX)) {
		if (!key[strlen(PF_VAR_PREFIX)])
			return pf_error_set(-EINVAL,
					    "'%s' names no variable: write the name after it "
					    "(" PF_VAR_PREFIX "rack)",
					    key);
		return 0;
	}
	if (streq(key, "wifi_psk") || streq(key, "password"))
		return pf_error_set(-EINVAL,
				    "secrets are not taken as values (they would show in shell "
				    "history and inventories): use %s",
				    streq(key, "wifi_psk")
					    ? "wifi_psk_file (a file holding the "
					      "passphrase)"
					    : "password_hash (`mkpasswd -m yescrypt`)");
	hint = pf_node_config_key_suggest(key);
	if (hint)
		return pf_error_set(-EINVAL, "unknown setting '%s' (did you mean %s?)", key, hint);
	return pf_error_set(
		-EINVAL, "unknown setting '%s' (a template variable is named " PF_VAR_PREFIX "%s)",
		key, key);
}

static int set_one(PfNodeConfig *c, const char *key, const char *v, const char *base_dir)
{
	int r;

	r = pf_node_config_key_check(key);
	if (r < 0)
		return r;
	if (!*v) {
		/* Only variables may be empty. */
		if (strv_has_n(setting_keys, ELEMENTSOF(setting_keys), key))
			return pf_error_set(-EINVAL, "empty value");
		return set_var(c, key, v);
	}

	if (streq(key, "hostname"))
		return set_checked(&c->hostname, v, pf_hostname_validate);
	if (streq(key, "domain"))
		return set_checked(&c->domain, v, pf_domain_validate);
	if (streq(key, "user"))
		return set_checked(&c->user, v, pf_username_validate);
	if (streq(key, "board"))
		return set_checked(&c->board, v, pf_board_validate);
	if (streq(key, "timezone"))
		return set_checked(&c->timezone, v, pf_timezone_validate);
	if (streq(key, "locale"))
		return set_checked(&c->locale, v, pf_locale_validate);
	if (streq(key, "iface"))
		return set_checked(&c->iface, v, pf_iface_validate);
	if (streq(key, "wifi_ssid"))
		return set_checked(&c->wifi_ssid, v, pf_wifi_ssid_validate);
	if (streq(key, "wifi_country"))
		return set_checked(&c->wifi_country, v, pf_wifi_country_validate);
	if (streq(key, "password_hash")) {
		char *h;

		r = pf_password_hash_validate(v);
		if (r < 0)
			return r;
		h = strdup(v);
		if (!h)
			return -ENOMEM;
		free_secret(&c->password_hash);
		c->password_hash = h;
		return 0;
	}
	if (streq(key, "ssh_password"))
		return parse_bool(v, &c->ssh_password);
	if (streq(key, "ip")) {
		uint32_t a;
		unsigned p;

		if (streq(v, "dhcp")) {
			c->static_ip = false;
			c->ip = 0;
			c->prefix = 0;
			c->has_gateway = false;
			c->gateway = 0;
			return 0;
		}
		r = pf_ipv4_parse_cidr(v, &a, &p);
		if (r < 0)
			return r;
		c->static_ip = true;
		c->ip = a;
		c->prefix = p;
		return 0;
	}
	if (streq(key, "gateway")) {
		uint32_t a;

		if (strchr(v, '/'))
			return pf_error_set(-EINVAL,
					    "'%.64s': give the gateway as a plain address, without "
					    "a prefix",
					    v);
		r = pf_ipv4_parse(v, &a);
		if (r < 0)
			return r;
		r = host_addr_check(a, v);
		if (r < 0)
			return r;
		c->gateway = a;
		c->has_gateway = true;
		return 0;
	}
	if (streq(key, "dns")) {
		uint32_t dns[PF_DNS_MAX] = {};
		size_t n = 0;

		r = parse_dns(v, dns, &n);
		if (r < 0)
			return r;
		memcpy(c->dns, dns, sizeof(dns));
		c->n_dns = n;
		return 0;
	}
	if (streq(key, "ssh_key"))
		return set_ssh_key(c, v, base_dir);
	if (streq(key, "wifi_psk_file"))
		return set_psk_file(c, v, base_dir);
	return set_var(c, key, v);
}

int pf_node_config_set_at(PfNodeConfig *c, const char *key, const char *value, const char *origin,
			  const char *base_dir)
{
	int r;

	if (!origin)
		origin = "setting";
	if (!key || !value)
		return pf_error_set(-EINVAL, "%s: no key or value", origin);
	r = set_one(c, key, value, base_dir);
	if (r == -ENOMEM)
		return r;
	/* An option ("--ip") names the setting already, and so do the messages of the
	 * validators that name their subject ("hostname 'X' ..."): the key is said once. */
	if (r < 0 && (startswith(origin, "--") ||
		      strv_has_n(self_named_keys, ELEMENTSOF(self_named_keys), key) ||
		      pf_node_config_key_check(key) < 0))
		return pf_error_prefix(r, "%s", origin);
	if (r < 0)
		return pf_error_prefix(r, "%s: %.64s", origin, key);
	return 0;
}

int pf_node_config_set(PfNodeConfig *c, const char *key, const char *value, const char *origin)
{
	return pf_node_config_set_at(c, key, value, origin, NULL);
}

int pf_node_config_check_network(const PfNodeConfig *c)
{
	char ip[16], gw[16];
	uint32_t m;

	if (!c->has_gateway)
		return 0;
	pf_ipv4_format(c->gateway, gw);
	if (!c->static_ip)
		return pf_error_set(-EINVAL,
				    "gateway %s is given without a static address (ip); with DHCP "
				    "the DHCP server gives the gateway",
				    gw);
	pf_ipv4_format(c->ip, ip);
	m = pf_ipv4_netmask(c->prefix);
	if (c->gateway == c->ip)
		return pf_error_set(-EINVAL, "gateway %s is the node's own address", gw);
	if (!pf_ipv4_in_subnet(c->gateway, c->ip, c->prefix))
		return pf_error_set(-EINVAL, "gateway %s is outside the node's subnet %s/%u", gw,
				    ip, c->prefix);
	if (c->prefix <= 30 && ((c->gateway & ~m) == 0 || (c->gateway & ~m) == ~m))
		return pf_error_set(-EINVAL,
				    "gateway %s is the network or broadcast address of %s/%u", gw,
				    ip, c->prefix);
	return 0;
}

int pf_node_config_check(const PfNodeConfig *c)
{
	int r;

	if (!c->hostname)
		return pf_error_set(-EINVAL, "no hostname: give one (--hostname, or an inventory "
					     "row with --node)");
	if (c->domain && strlen(c->hostname) + 1 + strlen(c->domain) > 253)
		return pf_error_set(-EINVAL, "'%s.%s' is longer than 253 bytes", c->hostname,
				    c->domain);
	r = pf_node_config_check_network(c);
	if (r < 0)
		return r;
	if (c->wifi_ssid && !c->wifi_psk)
		return pf_error_set(-EINVAL,
				    "WiFi SSID '%s' has no passphrase (wifi_psk_file); open "
				    "networks are not configured",
				    c->wifi_ssid);
	if (c->wifi_ssid && !c->wifi_country)
		return pf_error_set(-EINVAL,
				    "WiFi SSID '%s' has no country (wifi_country): the radio stays "
				    "off without a regulatory domain",
				    c->wifi_ssid);
	if (c->wifi_psk && !c->wifi_ssid)
		return pf_error_set(-EINVAL,
				    "a WiFi passphrase is given without an SSID (wifi_ssid)");
	/* Password login over SSH with a locked password is a contradiction, not a choice. */
	if (c->ssh_password && !c->password_hash)
		return pf_error_set(
			-EINVAL, "SSH password login (--ssh-password, ssh_password) is asked for, "
				 "but no password is set: give --password-hash HASH");
	if (c->no_login && (c->n_keys > 0 || c->password_hash))
		return pf_error_set(-EINVAL,
				    "--no-login asks for a node nobody can log into, but %s given",
				    c->n_keys > 0 ? "an SSH key is" : "a password hash is");
	return 0;
}
