/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for node/config.c: validation of a node's settings where they enter. */
#include <errno.h>
#include <fcntl.h>
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
#include <openssl/evp.h>

#include "node/config.h"
#include "util/error.h"
#include "util/macros.h"

#include "test-util.h"

static char tmp[] = "/tmp/piflash-test-config-XXXXXX";

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return remove_tree(tmp);
}

/* ---- names ---- */

static void test_hostname(void **state)
{
	char long_label[70];

	(void)state;
	assert_int_equal(pf_hostname_validate("worker3"), 0);
	assert_int_equal(pf_hostname_validate("a"), 0);
	assert_int_equal(pf_hostname_validate("0pi-4"), 0);
	memset(long_label, 'a', 63);
	long_label[63] = 0;
	assert_int_equal(pf_hostname_validate(long_label), 0);
	long_label[63] = 'a';
	long_label[64] = 0;
	ERR(pf_hostname_validate(long_label), -EINVAL, "64 bytes", "at most 63");
	ERR(pf_hostname_validate(""), -EINVAL, "empty");
	ERR(pf_hostname_validate("Worker3"), -EINVAL, "upper case", "'worker3'");
	ERR(pf_hostname_validate("-worker"), -EINVAL, "'-worker'", "'-'");
	ERR(pf_hostname_validate("worker-"), -EINVAL, "'worker-'");
	ERR(pf_hostname_validate("worker_3"), -EINVAL, "'worker_3'", "'_'");
	ERR(pf_hostname_validate("worker3.lan"), -EINVAL, "'worker3.lan'", "domain");
	ERR(pf_hostname_validate("wörker"), -EINVAL, "0xc3");
}

static void test_domain(void **state)
{
	char big[300];

	(void)state;
	assert_int_equal(pf_domain_validate("lan"), 0);
	assert_int_equal(pf_domain_validate("cluster.example.org"), 0);
	ERR(pf_domain_validate("a..b"), -EINVAL, "'a..b'", "empty label");
	ERR(pf_domain_validate(".lan"), -EINVAL, "empty label");
	ERR(pf_domain_validate("lan."), -EINVAL, "empty label");
	ERR(pf_domain_validate("Example.org"), -EINVAL, "'example.org'");
	ERR(pf_domain_validate("ex-.org"), -EINVAL, "'-'");
	/* 4 x 63 + 3 dots = 255 bytes */
	memset(big, 'a', sizeof(big));
	for (int i = 63; i < 255; i += 64)
		big[i] = '.';
	big[255] = 0;
	ERR(pf_domain_validate(big), -EINVAL, "255 bytes", "253");
}

static void test_username(void **state)
{
	(void)state;
	assert_int_equal(pf_username_validate("pi"), 0);
	assert_int_equal(pf_username_validate("_svc-ansible1"), 0);
	assert_int_equal(pf_username_validate("machine$"), 0);
	ERR(pf_username_validate(""), -EINVAL, "empty");
	ERR(pf_username_validate("Pi"), -EINVAL, "upper case");
	ERR(pf_username_validate("1pi"), -EINVAL, "start with");
	ERR(pf_username_validate("-pi"), -EINVAL, "start with");
	ERR(pf_username_validate("pi$x"), -EINVAL, "byte 3");
	ERR(pf_username_validate("p i"), -EINVAL, "byte 2");
	ERR(pf_username_validate("abcdefghijklmnopqrstuvwxyzabcdefg"), -EINVAL, "33 bytes");
}

static void test_password_hash(void **state)
{
	static const char *const good[] = {
		"$y$j9T$F5Jx5fExrKuPp53xLKQ..1$xK.TYNPZxd2NOjHXzAMNhXrXfCKspvwTX/rlD1mlcg.",
		"$gy$j9T$F5Jx5fExrKuPp53xLKQ..1$D13LFK71qAIvNsrpCVDFvuR1wzLx75Z75MzCLReO2t0",
		"$7$CU..../....abcdefgh$U7CqeYyBGyv/ccjBu45PnztY/iRfHRYXz.CJZkHqdy8",
		"$2b$10$abcdefghijklmnopqrstuuPPiX6KgYcpLwUoa3DjPDaP2nfJYqxWe",
		"$2y$10$abcdefghijklmnopqrstuuPPiX6KgYcpLwUoa3DjPDaP2nfJYqxWe",
		"$6$abcdefgh$oGoxMtczJ0/xYkNKQnGuC3pOdNoGsZRZNs7n5JzX8KfMJWEmD2Bx4wBt/"
		"tMCPvjE87aPyrlQP"
		"EKxEcxV6d4J6.",
		"$6$rounds=5000$abcdefgh$oGoxMtczJ0/xYkNKQnGuC3pOdNoGsZRZNs7n5JzX8KfMJWEmD2Bx4wBt/"
		"tMCP"
		"vjE87aPyrlQPEKxEcxV6d4J6.",
		"$5$abcdefgh$0SD0b8d1dsfQumXtowD6Y5j7mqe1I1e8XY/GQopAyn4",
	};
	static const char *const bad[] = {
		"$6$abcdefgh$oGoxMtczJ0/xYkNKQnGuC3pOdNoGsZRZNs7n5JzX8KfMJWEmD2Bx4wBt/"
		"tMCPvjE87aPyrlQP",
		"$6$rounds=10$abcdefgh$oGoxMtczJ0/xYkNKQnGuC3pOdNoGsZRZNs7n5JzX8KfMJWEmD2Bx4wBt/"
		"tMCPv"
		"jE87aPyrlQPEKxEcxV6d4J6.",
		"$5$abcdefgh$0SD0b8d1dsfQumXtowD6Y5j7mqe1I1e8XY/GQopAyn4!",
		"$y$j9T$$xK.TYNPZxd2NOjHXzAMNhXrXfCKspvwTX/rlD1mlcg.",
		"$2b$99$abcdefghijklmnopqrstuuPPiX6KgYcpLwUoa3DjPDaP2nfJYqxWe",
		"$7$CU$U7CqeYyBGyv/ccjBu45PnztY/iRfHRYXz.CJZkHqdy8",
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(good); i++)
		if (pf_password_hash_validate(good[i]) != 0)
			fail_msg("refused %s: %s", good[i], pf_error_message(-EINVAL));
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		pf_error_clear();
		assert_int_equal(pf_password_hash_validate(bad[i]), -EINVAL);
		assert_non_null(strstr(pf_error_message(-EINVAL), "structure"));
		/* The value is never shown: not even its salt. */
		assert_null(strstr(pf_error_message(-EINVAL), "abcdefgh"));
	}
	ERR(pf_password_hash_validate("hunter2secret"), -EINVAL, "plain password",
	    "mkpasswd -m yescrypt", "openssl passwd -6");
	assert_null(strstr(pf_error_message(-EINVAL), "hunter2"));
	ERR(pf_password_hash_validate("$1$abcdefgh$ywpTNDTYPzAT3Ohgseebp/"), -EINVAL, "MD5");
	assert_null(strstr(pf_error_message(-EINVAL), "ywpT"));
	ERR(pf_password_hash_validate("$pass$zqxj"), -EINVAL, "not a supported");
	assert_null(strstr(pf_error_message(-EINVAL), "zqxj"));
	ERR(pf_password_hash_validate("abJnggxhB/yWI"), -EINVAL, "DES");
}

static void test_wifi(void **state)
{
	(void)state;
	assert_int_equal(pf_wifi_ssid_validate("home net"), 0);
	assert_int_equal(pf_wifi_ssid_validate("Café ☕"), 0);
	assert_int_equal(pf_wifi_ssid_validate("12345678901234567890123456789012"), 0);
	ERR(pf_wifi_ssid_validate(""), -EINVAL, "empty");
	ERR(pf_wifi_ssid_validate("123456789012345678901234567890123"), -EINVAL, "33 bytes");
	ERR(pf_wifi_ssid_validate("a\tb"), -EINVAL, "control", "byte 2");

	assert_int_equal(pf_wifi_psk_validate("correct horse"), 0);
	assert_int_equal(pf_wifi_psk_validate("12345678"), 0);
	assert_int_equal(
		pf_wifi_psk_validate(
			"0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"),
		0);
	ERR(pf_wifi_psk_validate("short12"), -EINVAL, "7 bytes", "8 to 63");
	assert_null(strstr(pf_error_message(-EINVAL), "short12"));
	/* 64 characters that are not all hex. */
	ERR(pf_wifi_psk_validate(
		    "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdeg"),
	    -EINVAL, "64 bytes", "64 hex");
	ERR(pf_wifi_psk_validate("pass\x01word"), -EINVAL, "printable", "byte 5");

	assert_int_equal(pf_wifi_country_validate("US"), 0);
	assert_int_equal(pf_wifi_country_validate("GB"), 0);
	assert_int_equal(pf_wifi_country_validate("ZW"), 0);
	ERR(pf_wifi_country_validate("de"), -EINVAL, "upper case", "'DE'");
	ERR(pf_wifi_country_validate("UK"), -EINVAL, "'GB'");
	ERR(pf_wifi_country_validate("XX"), -EINVAL, "'XX'", "assigned");
	ERR(pf_wifi_country_validate("USA"), -EINVAL, "alpha-2");
	ERR(pf_wifi_country_validate("1A"), -EINVAL, "alpha-2");
}

static void test_psk_file(void **state)
{
	char path[256], *psk = NULL;

	(void)state;
	snprintf(path, sizeof(path), "%s/psk", tmp);
	write_text(path, "correct horse battery\n");
	assert_int_equal(pf_wifi_psk_load_file(path, &psk), 0);
	assert_string_equal(psk, "correct horse battery");
	free(psk);
	write_text(path, "correct horse battery\r\n");
	assert_int_equal(pf_wifi_psk_load_file(path, &psk), 0);
	assert_string_equal(psk, "correct horse battery");
	free(psk);
	write_text(path, "tiny\n");
	ERR(pf_wifi_psk_load_file(path, &psk), -EINVAL, path, "8 to 63");
	assert_null(strstr(pf_error_message(-EINVAL), "tiny"));
	write_text(path, "two lines here\nsecond\n");
	ERR(pf_wifi_psk_load_file(path, &psk), -EINVAL, path, "printable");
	assert_null(strstr(pf_error_message(-EINVAL), "second"));
	ERR(pf_wifi_psk_load_file(tmp, &psk), -EINVAL, "not a regular file");
	snprintf(path, sizeof(path), "%s/nope", tmp);
	ERR(pf_wifi_psk_load_file(path, &psk), -ENOENT, "nope");
}

static void test_timezone_locale_iface(void **state)
{
	(void)state;
	assert_int_equal(pf_timezone_validate("Europe/Berlin"), 0);
	assert_int_equal(pf_timezone_validate("America/Argentina/Buenos_Aires"), 0);
	assert_int_equal(pf_timezone_validate("Etc/GMT+5"), 0);
	assert_int_equal(pf_timezone_validate("UTC"), 0);
	ERR(pf_timezone_validate("Europe/../etc"), -EINVAL, "byte 8");
	ERR(pf_timezone_validate("/etc/passwd"), -EINVAL, "empty part");
	ERR(pf_timezone_validate("Europe//Berlin"), -EINVAL, "empty part");
	ERR(pf_timezone_validate("Europe/Berlin "), -EINVAL, "byte 14");
	ERR(pf_timezone_validate(""), -EINVAL, "empty");

	assert_int_equal(pf_locale_validate("en_US.UTF-8"), 0);
	assert_int_equal(pf_locale_validate("C.UTF-8"), 0);
	assert_int_equal(pf_locale_validate("sr_RS@latin"), 0);
	ERR(pf_locale_validate("en US"), -EINVAL, "byte 3");
	ERR(pf_locale_validate(".UTF-8"), -EINVAL, "start with a letter");

	assert_int_equal(pf_iface_validate("eth0"), 0);
	assert_int_equal(pf_iface_validate("wlan0"), 0);
	assert_int_equal(pf_iface_validate("enx0123456789ab"), 0);
	ERR(pf_iface_validate("enx0123456789abc"), -EINVAL, "16 bytes", "15");
	ERR(pf_iface_validate("."), -EINVAL, "'.'");
	ERR(pf_iface_validate(".."), -EINVAL, "'..'");
	ERR(pf_iface_validate("eth/0"), -EINVAL, "byte 4");
	ERR(pf_iface_validate("eth 0"), -EINVAL, "byte 4");
	ERR(pf_iface_validate("eth0:1"), -EINVAL, "byte 5");
	ERR(pf_iface_validate(""), -EINVAL, "empty");
}

static void test_board(void **state)
{
	(void)state;
	assert_int_equal(pf_board_validate("pi4"), 0);
	assert_int_equal(pf_board_validate("zero2"), 0);
	ERR(pf_board_validate("pi6"), -EINVAL, "'pi6'", "pi500");
	ERR(pf_board_validate("Pi4"), -EINVAL, "'Pi4'");

	assert_int_equal(pf_board_arch_ok("pi4", "arm64"), 0);
	assert_int_equal(pf_board_arch_ok("pi3", "arm64"), 0);
	assert_int_equal(pf_board_arch_ok("zero2", "arm64"), 0);
	assert_int_equal(pf_board_arch_ok("cm5", "arm64"), 0);
	/* Raspbian's armhf is ARMv6: accepted on the ARMv6 boards. */
	assert_int_equal(pf_board_arch_ok("pi1", "armhf"), 0);
	assert_int_equal(pf_board_arch_ok("zero", "armhf"), 0);
	assert_int_equal(pf_board_arch_ok("zero", "armel"), 0);
	assert_int_equal(pf_board_arch_ok("pi5", "armhf"), 0);
	ERR(pf_board_arch_ok("pi1", "arm64"), -ENOEXEC, "'pi1'", "ARMv6", "armhf");
	ERR(pf_board_arch_ok("zero", "arm64"), -ENOEXEC, "'zero'", "ARMv6");
	ERR(pf_board_arch_ok("cm1", "arm64"), -ENOEXEC, "'cm1'");
	ERR(pf_board_arch_ok("pi2", "arm64"), -ENOEXEC, "'pi2'", "ARMv7");
	ERR(pf_board_arch_ok("pi4", "x86_64"), -EINVAL, "'x86_64'");
	ERR(pf_board_arch_ok("pi9", "arm64"), -EINVAL, "'pi9'");
}

/* ---- IPv4 ---- */

static void test_ipv4_parse(void **state)
{
	uint32_t a = 0;
	char buf[16];

	(void)state;
	assert_int_equal(pf_ipv4_parse("10.0.0.13", &a), 0);
	assert_int_equal(a, 0x0a00000d);
	assert_int_equal(pf_ipv4_parse("0.0.0.0", &a), 0);
	assert_int_equal(a, 0);
	assert_int_equal(pf_ipv4_parse("255.255.255.255", &a), 0);
	assert_int_equal(a, UINT32_MAX);
	pf_ipv4_format(0xc0a80101, buf);
	assert_string_equal(buf, "192.168.1.1");
	pf_ipv4_format(UINT32_MAX, buf);
	assert_string_equal(buf, "255.255.255.255");

	a = 42;
	ERR(pf_ipv4_parse("10.0.0.256", &a), -EINVAL, "'10.0.0.256'", "above 255");
	assert_int_equal(a, 42); /* untouched on failure */
	ERR(pf_ipv4_parse("10.0.0.010", &a), -EINVAL, "leading zero");
	ERR(pf_ipv4_parse("010.0.0.1", &a), -EINVAL, "leading zero");
	ERR(pf_ipv4_parse("10.0.0", &a), -EINVAL, "'10.0.0'", "four numbers");
	ERR(pf_ipv4_parse("10.0.0.1.2", &a), -EINVAL, "four numbers");
	ERR(pf_ipv4_parse("10.0..1", &a), -EINVAL, "four numbers");
	ERR(pf_ipv4_parse("10.0.0.1 ", &a), -EINVAL, "four numbers");
	ERR(pf_ipv4_parse(" 10.0.0.1", &a), -EINVAL, "four numbers");
	ERR(pf_ipv4_parse("+10.0.0.1", &a), -EINVAL, "four numbers");
	ERR(pf_ipv4_parse("0x0a.0.0.1", &a), -EINVAL, "four numbers");
	ERR(pf_ipv4_parse("", &a), -EINVAL, "empty");
	ERR(pf_ipv4_parse("10.0.0.99999999999999999999", &a), -EINVAL, "above 255");
}

static void test_ipv4_cidr(void **state)
{
	uint32_t a = 0;
	unsigned p = 0;

	(void)state;
	assert_int_equal(pf_ipv4_parse_cidr("10.0.0.13/24", &a, &p), 0);
	assert_int_equal(a, 0x0a00000d);
	assert_int_equal(p, 24);
	assert_int_equal(pf_ipv4_parse_cidr("10.0.0.1/8", &a, &p), 0);
	assert_int_equal(pf_ipv4_parse_cidr("192.168.1.254/24", &a, &p), 0);
	assert_int_equal(pf_ipv4_parse_cidr("10.0.0.1/30", &a, &p), 0);
	assert_int_equal(pf_ipv4_parse_cidr("10.0.0.2/30", &a, &p), 0);
	/* /31 (RFC 3021) and /32 have no network or broadcast address. */
	assert_int_equal(pf_ipv4_parse_cidr("10.0.0.0/31", &a, &p), 0);
	assert_int_equal(pf_ipv4_parse_cidr("10.0.0.1/31", &a, &p), 0);
	assert_int_equal(pf_ipv4_parse_cidr("10.0.0.255/32", &a, &p), 0);
	assert_int_equal(p, 32);
	assert_int_equal(pf_ipv4_parse_cidr("1.2.3.4/1", &a, &p), 0);

	a = 7;
	p = 7;
	ERR(pf_ipv4_parse_cidr("10.0.0.13", &a, &p), -EINVAL, "no prefix", "10.0.0.13/24");
	assert_int_equal(a, 7);
	assert_int_equal(p, 7);
	ERR(pf_ipv4_parse_cidr("10.0.0.13/0", &a, &p), -EINVAL, "1 to 32");
	ERR(pf_ipv4_parse_cidr("10.0.0.13/33", &a, &p), -EINVAL, "1 to 32");
	ERR(pf_ipv4_parse_cidr("10.0.0.13/024", &a, &p), -EINVAL, "1 to 32");
	ERR(pf_ipv4_parse_cidr("10.0.0.13/", &a, &p), -EINVAL, "1 to 32");
	ERR(pf_ipv4_parse_cidr("10.0.0.13/24x", &a, &p), -EINVAL, "1 to 32");
	ERR(pf_ipv4_parse_cidr("10.0.0.13/+24", &a, &p), -EINVAL, "1 to 32");
	ERR(pf_ipv4_parse_cidr("10.0.0.0/24", &a, &p), -EINVAL, "network address", "10.0.0.0/24");
	ERR(pf_ipv4_parse_cidr("10.0.0.255/24", &a, &p), -EINVAL, "broadcast", "10.0.0.0/24");
	ERR(pf_ipv4_parse_cidr("10.0.0.3/30", &a, &p), -EINVAL, "broadcast", "10.0.0.0/30");
	ERR(pf_ipv4_parse_cidr("10.0.0.4/30", &a, &p), -EINVAL, "network address");
	ERR(pf_ipv4_parse_cidr("127.0.0.2/8", &a, &p), -EINVAL, "loopback");
	ERR(pf_ipv4_parse_cidr("224.0.0.5/24", &a, &p), -EINVAL, "multicast");
	ERR(pf_ipv4_parse_cidr("0.1.2.3/8", &a, &p), -EINVAL, "0.0.0.0/8");
	ERR(pf_ipv4_parse_cidr("10.0.0.300/24", &a, &p), -EINVAL, "above 255");

	assert_int_equal(pf_ipv4_netmask(0), 0);
	assert_int_equal(pf_ipv4_netmask(24), 0xffffff00);
	assert_int_equal(pf_ipv4_netmask(32), 0xffffffff);
	assert_int_equal(pf_ipv4_netmask(1), 0x80000000);
	assert_true(pf_ipv4_in_subnet(0x0a000001, 0x0a0000ff, 24));
	assert_false(pf_ipv4_in_subnet(0x0a000101, 0x0a0000ff, 24));
}

/* ---- variables ---- */

static void test_vars(void **state)
{
	char *k = NULL, *v = NULL, big[5000];

	(void)state;
	assert_int_equal(pf_var_key_validate("rack"), 0);
	assert_int_equal(pf_var_key_validate("_Rack_2"), 0);
	ERR(pf_var_key_validate("2rack"), -EINVAL, "'2rack'", "start with");
	ERR(pf_var_key_validate("rack-no"), -EINVAL, "'rack-no'", "'-'");
	ERR(pf_var_key_validate(""), -EINVAL, "empty");
	ERR(pf_var_key_validate("a234567890123456789012345678901234567890123456789012345678901234"
				"5"),
	    -EINVAL, "65 bytes");

	assert_int_equal(pf_var_parse("rack=B2=x", &k, &v), 0);
	assert_string_equal(k, "rack");
	assert_string_equal(v, "B2=x");
	free(k);
	free(v);
	assert_int_equal(pf_var_parse("note=", &k, &v), 0);
	assert_string_equal(v, "");
	free(k);
	free(v);
	ERR(pf_var_parse("rack", &k, &v), -EINVAL, "KEY=VALUE");
	ERR(pf_var_parse("=x", &k, &v), -EINVAL, "empty variable name");
	ERR(pf_var_parse("a b=x", &k, &v), -EINVAL, "'a b'");
	memset(big, 'x', sizeof(big));
	memcpy(big, "k=", 2);
	big[sizeof(big) - 1] = 0;
	ERR(pf_var_parse(big, &k, &v), -E2BIG, "k: value", "at most 4096");
}

/* ---- SSH keys ---- */

/* A real key, made with ssh-keygen -t ed25519. */
#define ED25519_B64 "AAAAC3NzaC1lZDI1NTE5AAAAIDdWzoOUgFtZvNTk51NoNQan132+VDWLvv+KD0hRbGqt"
#define ED25519_LINE "ssh-ed25519 " ED25519_B64 " test@piflash"

/* Its private half: must be refused, and no piece of its body may appear in a message. */
static const char private_key[] =
	"-----BEGIN OPENSSH PRIVATE KEY-----\n"
	"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
	"QyNTUxOQAAACA3Vs6DlIBbWbzU5OdTaDUGp9d9vlQ1i77/ig9IUWxqrQAAAJC6r2t3uq9r\n"
	"dwAAAAtzc2gtZWQyNTUxOQAAACA3Vs6DlIBbWbzU5OdTaDUGp9d9vlQ1i77/ig9IUWxqrQ\n"
	"AAAEDCUVvb4p5gujueysuBCuOcGmNWjcsH59+VT0WPCUWTSjdWzoOUgFtZvNTk51NoNQan\n"
	"132+VDWLvv+KD0hRbGqtAAAADHRlc3RAcGlmbGFzaAE=\n"
	"-----END OPENSSH PRIVATE KEY-----\n";

/*
 * Fails if the message holds any 8-byte run of the key's body lines. Eight, not fewer: the
 * body of a freshly made key is random base64, and a run of four turns up by chance in a
 * message's own words ("priv") often enough to fail a run now and then.
 */
#define KEY_RUN 8

static void assert_no_key_material(const char *msg, const char *key)
{
	const char *line = key;

	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);

		/* Body lines: not the armour, not PuTTY's "Name: value" headers. */
		if (strncmp(line, "-----", 5) != 0 && !memchr(line, ':', n))
			for (size_t i = 0; i + KEY_RUN <= n; i++) {
				char w[KEY_RUN + 1];

				memcpy(w, line + i, KEY_RUN);
				w[KEY_RUN] = 0;
				if (strstr(msg, w))
					fail_msg("message '%s' holds '%s' from the key", msg, w);
			}
		line += n + (nl ? 1 : 0);
	}
}

static void keys_parse_ok(const char *text, size_t want_n, PfSshKey **ret)
{
	size_t n = 0;
	int r;

	pf_error_clear();
	r = pf_ssh_keys_parse(text, strlen(text), "keys.pub", ret, &n);
	if (r < 0)
		fail_msg("parse failed: %s", pf_error_message(r));
	assert_int_equal(n, want_n);
}

static void test_ssh_key_ed25519(void **state)
{
	PfSshKey *k = NULL;
	char *s;

	(void)state;
	keys_parse_ok(ED25519_LINE "\n", 1, &k);
	assert_string_equal(k[0].type, "ssh-ed25519");
	assert_string_equal(k[0].blob_b64, ED25519_B64);
	assert_string_equal(k[0].comment, "test@piflash");
	s = pf_ssh_key_format(&k[0]);
	assert_string_equal(s, ED25519_LINE);
	free(s);
	pf_ssh_keys_free(k, 1);

	/* No comment, no newline, surrounding blanks; a comment with spaces. */
	keys_parse_ok("  ssh-ed25519\t" ED25519_B64 "  ", 1, &k);
	assert_null(k[0].comment);
	s = pf_ssh_key_format(&k[0]);
	assert_string_equal(s, "ssh-ed25519 " ED25519_B64);
	free(s);
	pf_ssh_keys_free(k, 1);
	keys_parse_ok("ssh-ed25519 " ED25519_B64 " admin laptop 2024 \n", 1, &k);
	assert_string_equal(k[0].comment, "admin laptop 2024");
	pf_ssh_keys_free(k, 1);
}

static void b64(const uint8_t *blob, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, blob, (int)n);
}

/* Appends an SSH string to a blob. */
static size_t put_str(uint8_t *b, size_t o, const void *s, size_t n)
{
	b[o] = (uint8_t)(n >> 24);
	b[o + 1] = (uint8_t)(n >> 16);
	b[o + 2] = (uint8_t)(n >> 8);
	b[o + 3] = (uint8_t)n;
	memcpy(b + o + 4, s, n);
	return o + 4 + n;
}

static size_t put_cstr(uint8_t *b, size_t o, const char *s)
{
	return put_str(b, o, s, strlen(s));
}

/* Parses "type <b64 of blob>" and returns the result (detail set on failure). */
static int parse_blob(const char *type, const uint8_t *blob, size_t n)
{
	char line[4096], enc[2048];
	PfSshKey *k = NULL;
	size_t nk = 0;
	int r;

	b64(blob, n, enc);
	snprintf(line, sizeof(line), "# made by hand\n%s %s hand\n", type, enc);
	pf_error_clear();
	r = pf_ssh_keys_parse(line, strlen(line), "hand.pub", &k, &nk);
	if (r >= 0)
		pf_ssh_keys_free(k, nk);
	return r;
}

static void test_ssh_key_structure(void **state)
{
	uint8_t b[1024], pt[133], pk[32], n_rsa[257];
	size_t o;

	(void)state;
	memset(pk, 0x11, sizeof(pk));
	memset(pt, 0x22, sizeof(pt));
	pt[0] = 0x04;

	/* Security-key types, built by hand (no token here to make real ones). */
	o = put_cstr(b, 0, "sk-ssh-ed25519@openssh.com");
	o = put_str(b, o, pk, 32);
	o = put_cstr(b, o, "ssh:");
	assert_int_equal(parse_blob("sk-ssh-ed25519@openssh.com", b, o), 0);
	o = put_cstr(b, 0, "sk-ecdsa-sha2-nistp256@openssh.com");
	o = put_cstr(b, o, "nistp256");
	o = put_str(b, o, pt, 65);
	o = put_cstr(b, o, "ssh:");
	assert_int_equal(parse_blob("sk-ecdsa-sha2-nistp256@openssh.com", b, o), 0);
	/* ... without the application string: truncated. */
	o = put_cstr(b, 0, "sk-ssh-ed25519@openssh.com");
	o = put_str(b, o, pk, 32);
	ERR(parse_blob("sk-ssh-ed25519@openssh.com", b, o), -EINVAL, "hand.pub:2", "truncated");

	/* ECDSA: the curve must match the type, the point its size. */
	o = put_cstr(b, 0, "ecdsa-sha2-nistp384");
	o = put_cstr(b, o, "nistp384");
	o = put_str(b, o, pt, 97);
	assert_int_equal(parse_blob("ecdsa-sha2-nistp384", b, o), 0);
	o = put_cstr(b, 0, "ecdsa-sha2-nistp384");
	o = put_cstr(b, o, "nistp256");
	o = put_str(b, o, pt, 97);
	ERR(parse_blob("ecdsa-sha2-nistp384", b, o), -EINVAL, "hand.pub:2", "curve");
	o = put_cstr(b, 0, "ecdsa-sha2-nistp521");
	o = put_cstr(b, o, "nistp521");
	o = put_str(b, o, pt, 97);
	ERR(parse_blob("ecdsa-sha2-nistp521", b, o), -EINVAL, "point");

	/* Ed25519 of the wrong length, trailing bytes. */
	o = put_cstr(b, 0, "ssh-ed25519");
	o = put_str(b, o, pk, 31);
	ERR(parse_blob("ssh-ed25519", b, o), -EINVAL, "hand.pub:2", "32 bytes");
	o = put_cstr(b, 0, "ssh-ed25519");
	o = put_str(b, o, pk, 32);
	b[o++] = 0;
	ERR(parse_blob("ssh-ed25519", b, o), -EINVAL, "trailing");

	/* Type on the line and in the blob disagree. */
	o = put_cstr(b, 0, "ssh-ed25519");
	o = put_str(b, o, pk, 32);
	ERR(parse_blob("ssh-rsa", b, o), -EINVAL, "hand.pub:2", "ssh-rsa", "another type");

	/* Truncated: a string length past the end. */
	o = put_cstr(b, 0, "ssh-ed25519");
	o = put_str(b, o, pk, 32);
	ERR(parse_blob("ssh-ed25519", b, o - 5), -EINVAL, "truncated");
	ERR(parse_blob("ssh-ed25519", b, 3), -EINVAL, "truncated");

	/* RSA: e and n as canonical positive mpints, n of 1024 bits or more. */
	n_rsa[0] = 0;
	memset(n_rsa + 1, 0xc5, 256);
	o = put_cstr(b, 0, "ssh-rsa");
	o = put_str(b, o, "\x01\x00\x01", 3);
	o = put_str(b, o, n_rsa, 257);
	assert_int_equal(parse_blob("ssh-rsa", b, o), 0);
	o = put_cstr(b, 0, "ssh-rsa");
	o = put_str(b, o, "\x01\x00\x01", 3);
	o = put_str(b, o, n_rsa + 1, 256); /* high bit set, no leading zero: negative */
	ERR(parse_blob("ssh-rsa", b, o), -EINVAL, "modulus");
	o = put_cstr(b, 0, "ssh-rsa");
	o = put_str(b, o, "\x01\x00\x01", 3);
	o = put_str(b, o, n_rsa, 65); /* 512 bits */
	ERR(parse_blob("ssh-rsa", b, o), -EINVAL, "1024 bits");
	o = put_cstr(b, 0, "ssh-rsa");
	o = put_str(b, o, "\x00\x01\x00\x01", 4); /* needless leading zero */
	o = put_str(b, o, n_rsa, 257);
	ERR(parse_blob("ssh-rsa", b, o), -EINVAL, "exponent");
	o = put_cstr(b, 0, "ssh-rsa");
	o = put_str(b, o, "\x01\x00\x01", 3);
	ERR(parse_blob("ssh-rsa", b, o), -EINVAL, "truncated");
}

static void test_ssh_key_base64(void **state)
{
	PfSshKey *k = NULL;
	size_t n = 0;
	const char *t;
	char line[512];

	(void)state;
	t = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDdWzoOUgFtZvNTk51NoNQan132+VDWLvv+KD0hRbGq!";
	ERR(pf_ssh_keys_parse(t, strlen(t), "k.pub", &k, &n), -EINVAL, "k.pub:1", "base64");
	/* Missing a character (not a multiple of 4). */
	t = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDdWzoOUgFtZvNTk51NoNQan132+VDWLvv+KD0hRbGq";
	ERR(pf_ssh_keys_parse(t, strlen(t), "k.pub", &k, &n), -EINVAL, "k.pub:1", "base64");
	/* Padding in the middle. */
	t = "ssh-ed25519 AA==AAC3NzaC1lZDI1NTE5AAAAIDdWzoOUgFtZvNTk51NoNQan132+VDWLvv+KD0hRbGqt";
	ERR(pf_ssh_keys_parse(t, strlen(t), "k.pub", &k, &n), -EINVAL, "base64");
	/* Non-zero unused bits in the padded last quantum ("AB==" instead of "AA=="). */
	t = "ssh-ed25519 AB==";
	ERR(pf_ssh_keys_parse(t, strlen(t), "k.pub", &k, &n), -EINVAL, "base64");
	/* Valid base64 of a blob cut short (the last quantum dropped). */
	snprintf(line, sizeof(line), "ssh-ed25519 %.*s", (int)strlen(ED25519_B64) - 4, ED25519_B64);
	ERR(pf_ssh_keys_parse(line, strlen(line), "k.pub", &k, &n), -EINVAL, "k.pub:1",
	    "truncated");
	t = "ssh-ed25519\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "k.pub", &k, &n), -EINVAL, "k.pub:1",
	    "without its base64");
}

static void test_ssh_private_key_refused(void **state)
{
	static const char putty[] = "PuTTY-User-Key-File-3: ssh-ed25519\n"
				    "Encryption: none\n"
				    "Comment: eddsa-key-20240101\n"
				    "Public-Lines: 2\n"
				    "AAAAC3NzaC1lZDI1NTE5AAAAIPy2rXgsKFh7kKq8sFBH0W1o\n"
				    "Private-Lines: 1\n"
				    "AAAAIGcVaHNqXz3PeYQmKqLUtZcJx8wLq5vD2nmFbTe8RXAq\n"
				    "Private-MAC: 6d4e3b2f8a9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e\n";
	static const char pem[] = "-----BEGIN RSA PRIVATE KEY-----\n"
				  "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt\n"
				  "-----END RSA PRIVATE KEY-----\n";
	char text[2048], path[256];
	PfSshKey *k = NULL;
	size_t n = 0;
	PfNodeConfig c = {};

	(void)state;
	ERR(pf_ssh_keys_parse(private_key, strlen(private_key), "id_ed25519", &k, &n), -EINVAL,
	    "id_ed25519:1", "private key", "public key");
	assert_no_key_material(pf_error_message(-EINVAL), private_key);

	/* A public key before it does not make it acceptable; the line is named. */
	snprintf(text, sizeof(text), "%s\n\n%s", ED25519_LINE, private_key);
	ERR(pf_ssh_keys_parse(text, strlen(text), "mixed", &k, &n), -EINVAL, "mixed:3",
	    "private key");
	assert_no_key_material(pf_error_message(-EINVAL), private_key);

	ERR(pf_ssh_keys_parse(putty, strlen(putty), "key.ppk", &k, &n), -EINVAL, "key.ppk:1",
	    "PuTTY private key");
	assert_no_key_material(pf_error_message(-EINVAL), putty);
	assert_null(strstr(pf_error_message(-EINVAL), "eddsa-key"));

	ERR(pf_ssh_keys_parse(pem, strlen(pem), "id_rsa", &k, &n), -EINVAL, "id_rsa:1",
	    "private key");
	assert_no_key_material(pf_error_message(-EINVAL), pem);

	/* From a file (the usual mistake: the key without .pub) and from --ssh-key text. */
	snprintf(path, sizeof(path), "%s/id_ed25519", tmp);
	write_text(path, private_key);
	ERR(pf_ssh_keys_load_file(path, &k, &n), -EINVAL, path, "private key");
	assert_no_key_material(pf_error_message(-EINVAL), private_key);
	ERR(pf_node_config_set(&c, "ssh_key", private_key, "--ssh-key"), -EINVAL, "--ssh-key",
	    "private key");
	assert_no_key_material(pf_error_message(-EINVAL), private_key);
	/* Only the body, pasted without its armour: recognised by its magic, never echoed. */
	{
		const char *body = private_key + 36;
		char *cut = strndup(body, strstr(body, "-----END") - body);

		assert_non_null(cut);
		ERR(pf_node_config_set(&c, "ssh_key", cut, "--ssh-key"), -EINVAL,
		    "--ssh-key: key text:1", "private key");
		assert_no_key_material(pf_error_message(-EINVAL), private_key);
		/* A later body line alone (no magic there): not a key line, not echoed. */
		{
			char *second = strchr(cut, '\n') + 1;

			second[strcspn(second, "\n")] = 0;
			ERR(pf_node_config_set(&c, "ssh_key", second, "--ssh-key"), -EINVAL,
			    "--ssh-key: ", "not shown");
			assert_no_key_material(pf_error_message(-EINVAL), private_key);
		}
		free(cut);
	}
	assert_int_equal(c.n_keys, 0);
	pf_node_config_done(&c);
}

static void test_ssh_keys_many(void **state)
{
	PfSshKey *k = NULL;
	const char *t =
		"# cluster admins\r\n"
		"\r\n"
		"   # indented comment\r\n" ED25519_LINE "\r\n"
		"\t\r\n"
		"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDdWzoOUgFtZvNTk51NoNQan132+VDWLvv+KD0h"
		"RbGqt duplicate\r\n"
		"ecdsa-sha2-nistp256 "
		"AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBCIiIiIiIiIiIiIiIiIiIiIi"
		"IiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiIiI= "
		"ops\r\n";
	size_t n = 0;

	(void)state;
	/* The duplicate (same blob, other comment) is dropped. */
	keys_parse_ok(t, 2, &k);
	assert_string_equal(k[0].comment, "test@piflash");
	assert_string_equal(k[1].type, "ecdsa-sha2-nistp256");
	assert_string_equal(k[1].comment, "ops");
	pf_ssh_keys_free(k, 2);

	t = "# only comments\n\n   \n# nothing else\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "empty.pub", &k, &n), -EINVAL, "empty.pub",
	    "no public key");
	ERR(pf_ssh_keys_parse("", 0, "zero.pub", &k, &n), -EINVAL, "zero.pub", "no public key");

	t = "# x\nno-pty,from=\"10.0.0.0/8\" " ED25519_LINE "\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "ak", &k, &n), -EINVAL, "ak:2", "options");
	t = "command=\"echo hi there\" " ED25519_LINE "\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "ak", &k, &n), -EINVAL, "ak:1", "options");
	t = "ssh-dss AAAAB3NzaC1kc3MAAACBAP\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "ak", &k, &n), -EINVAL, "ak:1", "DSA");
	t = "\n\nssh-foo AAAA\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "ak", &k, &n), -EINVAL, "ak:3", "no known key type");
	assert_null(strstr(pf_error_message(-EINVAL), "ssh-foo"));
	t = "hello world\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "ak", &k, &n), -EINVAL, "ak:1",
	    "not a public key line");
	assert_null(strstr(pf_error_message(-EINVAL), "hello"));
	t = "---- BEGIN SSH2 PUBLIC KEY ----\nAAAA\n---- END SSH2 PUBLIC KEY ----\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "ak", &k, &n), -EINVAL, "ak:1", "ssh-keygen -i");
	t = ED25519_LINE "\x01\n";
	ERR(pf_ssh_keys_parse(t, strlen(t), "ak", &k, &n), -EINVAL, "ak:1", "control");
}

static void test_ssh_keys_limits(void **state)
{
	PfSshKey *k = NULL;
	size_t n = 0, o = 0;
	uint8_t b[64], pk[32];
	char *text, enc[128];

	(void)state;
	/* 101 different keys. */
	text = malloc(PF_SSH_KEYS_TEXT_MAX + 2);
	assert_non_null(text);
	for (unsigned i = 0; i < 101; i++) {
		size_t bl;

		memset(pk, (int)i, sizeof(pk));
		bl = put_cstr(b, 0, "ssh-ed25519");
		bl = put_str(b, bl, pk, 32);
		b64(b, bl, enc);
		o += (size_t)sprintf(text + o, "ssh-ed25519 %s k%u\n", enc, i);
	}
	ERR(pf_ssh_keys_parse(text, o, "many", &k, &n), -E2BIG, "many:101", "more than 100");
	/* 100 is fine. */
	{
		char *last = text + o - 1;

		while (last > text && last[-1] != '\n')
			last--;
		assert_int_equal(pf_ssh_keys_parse(text, (size_t)(last - text), "many", &k, &n), 0);
		assert_int_equal(n, 100);
		pf_ssh_keys_free(k, n);
	}

	/* A line over 16 KiB, a text over 64 KiB. */
	memset(text, 'A', PF_SSH_KEYS_TEXT_MAX + 1);
	memcpy(text, "ssh-ed25519 ", 12);
	text[PF_SSH_KEY_LINE_MAX + 12] = '\n';
	ERR(pf_ssh_keys_parse(text, PF_SSH_KEY_LINE_MAX + 13, "long", &k, &n), -E2BIG, "long:1",
	    "16384");
	ERR(pf_ssh_keys_parse(text, PF_SSH_KEYS_TEXT_MAX + 1, "huge", &k, &n), -E2BIG, "huge",
	    "65536");
	free(text);
}

/* Keys made by the real ssh-keygen, when it is there. */
static void test_ssh_keygen_keys(void **state)
{
	static const char *const types[][2] = {
		{ "ed25519", "ssh-ed25519" },
		{ "rsa -b 2048", "ssh-rsa" },
		{ "rsa -b 4096", "ssh-rsa" },
		{ "ecdsa -b 256", "ecdsa-sha2-nistp256" },
		{ "ecdsa -b 384", "ecdsa-sha2-nistp384" },
		{ "ecdsa -b 521", "ecdsa-sha2-nistp521" },
	};
	char cmd[1024], path[256], all[256];

	(void)state;
	if (system("command -v ssh-keygen >/dev/null 2>&1") != 0)
		skip();
	snprintf(all, sizeof(all), "%s/all.pub", tmp);
	for (size_t i = 0; i < ELEMENTSOF(types); i++) {
		PfSshKey *k = NULL;
		size_t n = 0;
		char *line, buf[8192];
		FILE *f;

		snprintf(path, sizeof(path), "%s/gen%zu", tmp, i);
		snprintf(
			cmd, sizeof(cmd),
			"ssh-keygen -q -t %s -N '' -C 'gen %zu' -f '%s' </dev/null && cat '%s.pub' "
			">> '%s'",
			types[i][0], i, path, path, all);
		assert_int_equal(system(cmd), 0);
		strcat(path, ".pub");
		if (pf_ssh_keys_load_file(path, &k, &n) < 0)
			fail_msg("%s: %s", types[i][0], pf_error_message(-EINVAL));
		assert_int_equal(n, 1);
		assert_string_equal(k[0].type, types[i][1]);
		snprintf(cmd, sizeof(cmd), "gen %zu", i);
		assert_string_equal(k[0].comment, cmd);
		/* Formatting gives back the file's line. */
		f = fopen(path, "re");
		assert_non_null(f);
		assert_non_null(fgets(buf, sizeof(buf), f));
		fclose(f);
		buf[strcspn(buf, "\n")] = 0;
		line = pf_ssh_key_format(&k[0]);
		assert_string_equal(line, buf);
		free(line);
		pf_ssh_keys_free(k, n);

		/* The private half next to it is refused, without echo. */
		path[strlen(path) - 4] = 0;
		ERR(pf_ssh_keys_load_file(path, &k, &n), -EINVAL, "private key");
		f = fopen(path, "re");
		assert_non_null(f);
		{
			char priv[8192];
			size_t l = fread(priv, 1, sizeof(priv) - 1, f);

			priv[l] = 0;
			assert_no_key_material(pf_error_message(-EINVAL), priv);
		}
		fclose(f);
	}
	{
		PfSshKey *k = NULL;
		size_t n = 0;

		assert_int_equal(pf_ssh_keys_load_file(all, &k, &n), 0);
		assert_int_equal(n, ELEMENTSOF(types));
		pf_ssh_keys_free(k, n);
	}
}

static void test_ssh_keys_load_file(void **state)
{
	PfSshKey *k = NULL;
	size_t n = 0;
	char path[256];

	(void)state;
	ERR(pf_ssh_keys_load_file(tmp, &k, &n), -EINVAL, tmp, "not a regular file");
	snprintf(path, sizeof(path), "%s/missing.pub", tmp);
	ERR(pf_ssh_keys_load_file(path, &k, &n), -ENOENT, "missing.pub");
	snprintf(path, sizeof(path), "%s/bad.pub", tmp);
	write_text(path, "# ok\n" ED25519_LINE "\nssh-ed25519 AAAA!\n");
	ERR(pf_ssh_keys_load_file(path, &k, &n), -EINVAL, "bad.pub:3", "base64");
	{
		char *big = malloc(PF_SSH_KEYS_TEXT_MAX + 100);
		FILE *f;

		assert_non_null(big);
		memset(big, '#', PF_SSH_KEYS_TEXT_MAX + 100);
		f = fopen(path, "we");
		assert_non_null(f);
		fwrite(big, 1, PF_SSH_KEYS_TEXT_MAX + 100, f);
		fclose(f);
		free(big);
		ERR(pf_ssh_keys_load_file(path, &k, &n), -EFBIG, "bad.pub", "at most 65536");
	}
}

/* ---- the settings ---- */

static void test_config_set(void **state)
{
	PfNodeConfig c = {};
	char ip[16];

	(void)state;
	assert_string_equal(pf_node_config_iface(&c), "eth0");
	assert_int_equal(pf_node_config_set(&c, "hostname", "worker3", "--hostname"), 0);
	assert_int_equal(pf_node_config_set(&c, "domain", "cluster.lan", "--domain"), 0);
	assert_int_equal(pf_node_config_set(&c, "ip", "10.0.0.13/24", "--ip"), 0);
	assert_int_equal(pf_node_config_set(&c, "gateway", "10.0.0.1", "--gateway"), 0);
	assert_int_equal(pf_node_config_set(&c, "dns", "10.0.0.1, 1.1.1.1,9.9.9.9", "--dns"), 0);
	assert_int_equal(pf_node_config_set(&c, "iface", "eth1", "--iface"), 0);
	assert_int_equal(pf_node_config_set(&c, "user", "ops", "--user"), 0);
	assert_int_equal(pf_node_config_set(&c, "board", "pi4", "--board"), 0);
	assert_int_equal(pf_node_config_set(&c, "timezone", "Europe/Berlin", "--timezone"), 0);
	assert_int_equal(pf_node_config_set(&c, "locale", "en_GB.UTF-8", "--locale"), 0);
	assert_int_equal(pf_node_config_set(&c, "wifi_ssid", "lab", "--wifi-ssid"), 0);
	assert_int_equal(pf_node_config_set(&c, "wifi_country", "DE", "--wifi-country"), 0);
	assert_int_equal(pf_node_config_set(&c, "ssh_password", "yes", "--set"), 0);
	assert_int_equal(
		pf_node_config_set(&c, "password_hash",
				   "$5$abcdefgh$0SD0b8d1dsfQumXtowD6Y5j7mqe1I1e8XY/GQopAyn4",
				   "--password-hash"),
		0);
	assert_int_equal(pf_node_config_set(&c, "ssh_key", ED25519_LINE, "--ssh-key"), 0);
	assert_int_equal(pf_node_config_set(&c, "var_rack", "B2", "--set var_rack"), 0);
	assert_int_equal(pf_node_config_set(&c, "var_note", "", "--set var_note"), 0);

	assert_string_equal(c.hostname, "worker3");
	assert_string_equal(c.domain, "cluster.lan");
	assert_true(c.static_ip);
	assert_int_equal(c.ip, 0x0a00000d);
	assert_int_equal(c.prefix, 24);
	assert_true(c.has_gateway);
	assert_int_equal(c.gateway, 0x0a000001);
	assert_int_equal(c.n_dns, 3);
	pf_ipv4_format(c.dns[1], ip);
	assert_string_equal(ip, "1.1.1.1");
	assert_string_equal(pf_node_config_iface(&c), "eth1");
	assert_string_equal(c.user, "ops");
	assert_string_equal(c.board, "pi4");
	assert_true(c.ssh_password);
	assert_int_equal(c.n_keys, 1);
	assert_string_equal(pf_node_config_var(&c, "var_rack"), "B2");
	assert_string_equal(pf_node_config_var(&c, "var_note"), "");
	assert_null(pf_node_config_var(&c, "nothing"));

	/* A later value replaces an earlier one. */
	assert_int_equal(pf_node_config_set(&c, "hostname", "worker4", "--hostname"), 0);
	assert_string_equal(c.hostname, "worker4");
	assert_int_equal(pf_node_config_set(&c, "var_rack", "C1", "--set var_rack"), 0);
	assert_string_equal(pf_node_config_var(&c, "var_rack"), "C1");
	assert_int_equal(c.n_vars, 2);
	assert_int_equal(pf_node_config_set(&c, "dns", "8.8.8.8", "--dns"), 0);
	assert_int_equal(c.n_dns, 1);
	assert_int_equal(pf_node_config_set(&c, "ssh_password", "false", "--set"), 0);
	assert_false(c.ssh_password);
	/* "dhcp" goes back to DHCP and forgets the gateway. */
	assert_int_equal(pf_node_config_set(&c, "ip", "dhcp", "--ip"), 0);
	assert_false(c.static_ip);
	assert_false(c.has_gateway);

	/* A bad value leaves the earlier one and names origin and key. */
	ERR(pf_node_config_set(&c, "hostname", "Worker_4", "cluster.csv:4:1"), -EINVAL,
	    "cluster.csv:4:1: hostname ", "upper case");
	/* Each says the setting once: the option or the validator names it, never both. */
	assert_string_equal(
		pf_error_message(-EINVAL),
		"cluster.csv:4:1: hostname 'Worker_4' has upper case; write it 'worker_4'");
	ERR(pf_node_config_set(&c, "hostname", "Worker_4", "--node"), -EINVAL, "upper case");
	assert_string_equal(pf_error_message(-EINVAL),
			    "--node: hostname 'Worker_4' has upper case; write it 'worker_4'");
	ERR(pf_node_config_set(&c, "ip", "10.0.0.300/24", "cluster.csv:4:9"), -EINVAL, "above");
	assert_string_equal(pf_error_message(-EINVAL),
			    "cluster.csv:4:9: ip: '10.0.0.300' is not an IPv4 address: a number is "
			    "above 255");
	/* IPv6 is said to be IPv6, not a number above 255 ("2001") or a missing dot. */
	ERR(pf_node_config_set(&c, "ip", "2001:db8::13/64", "--ip"), -EINVAL, "IPv6");
	assert_string_equal(pf_error_message(-EINVAL),
			    "--ip: '2001:db8::13/64' is an IPv6 address: piflash sets IPv4 "
			    "addresses only (IPv6 is not supported here)");
	ERR(pf_node_config_set(&c, "ip", "fe80::1/64", "--ip"), -EINVAL, "IPv6");
	ERR(pf_node_config_set(&c, "ip", "2001:0db8:0000:0000:0000:ff00:0042:8329/64", "--ip"),
	    -EINVAL, "IPv6");
	ERR(pf_node_config_set(&c, "gateway", "fe80::1", "--gateway"), -EINVAL,
	    "--gateway: 'fe80::1' is an IPv6 address");
	ERR(pf_node_config_set(&c, "dns", "1.1.1.1,2606:4700::1111", "--dns"), -EINVAL,
	    "--dns: '2606:4700::1111' is an IPv6 address");
	ERR(pf_node_config_set(&c, "password_hash", "plain", "--password-hash"), -EINVAL,
	    "mkpasswd");
	assert_string_equal(pf_error_message(-EINVAL),
			    "--password-hash: password hash is not a crypt(3) hash (a plain "
			    "password is not accepted, and DES hashes are too weak); make one with "
			    "`mkpasswd -m yescrypt` or `openssl passwd -6` (the value is not "
			    "shown)");
	assert_string_equal(c.hostname, "worker4");
	ERR(pf_node_config_set(&c, "ip", "10.0.0.300/24", "--ip"), -EINVAL, "--ip: '10.0.0.300'",
	    "above 255");
	ERR(pf_node_config_set(&c, "gateway", "10.0.0.1/24", "--gateway"), -EINVAL,
	    "--gateway: '10.0.0.1/24'", "without a prefix");
	ERR(pf_node_config_set(&c, "gateway", "127.0.0.1", "--gateway"), -EINVAL, "loopback");
	ERR(pf_node_config_set(&c, "dns", "1.1.1.1,,8.8.8.8", "--dns"), -EINVAL, "--dns: '",
	    "empty entry");
	ERR(pf_node_config_set(&c, "dns", "1.1.1.1,1.1.1.1", "--dns"), -EINVAL, "twice");
	ERR(pf_node_config_set(&c, "dns",
			       "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5,6.6.6.6,"
			       "7.7.7.7,8.8.8.8,9.9.9.9",
			       "--dns"),
	    -E2BIG, "more than 8");
	ERR(pf_node_config_set(&c, "dns", "1.1.1.1 8.8.8.8", "--dns"), -EINVAL,
	    "not an IPv4 address");
	assert_int_equal(c.n_dns, 1);
	ERR(pf_node_config_set(&c, "ssh_password", "maybe", "--set"), -EINVAL, "yes/no");
	ERR(pf_node_config_set(&c, "domain", "", "--domain"), -EINVAL, "--domain: empty value");
	ERR(pf_node_config_set(&c, "wifi_psk", "hunter2hunter2", "--set"), -EINVAL,
	    "wifi_psk_file");
	assert_null(strstr(pf_error_message(-EINVAL), "hunter2"));
	ERR(pf_node_config_set(&c, "password", "hunter2hunter2", "--set"), -EINVAL,
	    "password_hash");
	assert_null(strstr(pf_error_message(-EINVAL), "hunter2"));
	ERR(pf_node_config_set(&c, "password_hash", "hunter2hunter2", "--password-hash"), -EINVAL,
	    "--password-hash: password hash ", "mkpasswd");
	assert_null(strstr(pf_error_message(-EINVAL), "hunter2"));
	ERR(pf_node_config_set(&c, "var_rack-no", "1", "--set var_rack-no"), -EINVAL,
	    "'var_rack-no'");
	ERR(pf_node_config_set(&c, "wifi_country", "uk", "--wifi-country"), -EINVAL, "'UK'");
	ERR(pf_node_config_set(&c, "board", "pi6", "--board"), -EINVAL,
	    "--board: unknown board 'pi6'");

	/* Only var_NAME is a variable: a misspelt setting is an error saying what was meant. */
	ERR(pf_node_config_set(&c, "sshkey", ED25519_LINE, "--set sshkey"), -EINVAL, "sshkey");
	assert_string_equal(pf_error_message(-EINVAL),
			    "--set sshkey: unknown setting 'sshkey' (did you mean ssh_key?)");
	ERR(pf_node_config_set(&c, "gatway", "10.0.0.1", "x.csv:2:5"), -EINVAL,
	    "x.csv:2:5: unknown setting 'gatway' (did you mean gateway?)");
	ERR(pf_node_config_set(&c, "rack", "B2", "--set rack"), -EINVAL,
	    "--set rack: unknown setting 'rack' (a template variable is named var_rack)");
	assert_int_equal(pf_node_config_key_check("var_rack"), 0);
	assert_int_equal(pf_node_config_key_check("group"), 0);
	assert_int_equal(pf_node_config_key_check("wifi_psk_file"), 0);
	ERR(pf_node_config_key_check("var_"), -EINVAL, "names no variable");
	ERR(pf_node_config_key_check("wifi_psk"), -EINVAL, "wifi_psk_file");
	assert_string_equal(pf_node_config_key_suggest("Gateway"), "gateway");
	assert_string_equal(pf_node_config_key_suggest("ssh_keys"), "ssh_key");
	assert_string_equal(pf_node_config_key_suggest("passwordhash"), "password_hash");
	assert_string_equal(pf_node_config_key_suggest("timezon"), "timezone");
	assert_null(pf_node_config_key_suggest("role"));
	assert_null(pf_node_config_key_suggest("rack"));
	assert_null(pf_node_config_key_suggest("motd"));
	assert_int_equal(c.n_vars, 2);

	pf_node_config_done(&c);
	assert_null(c.hostname);
	assert_int_equal(c.n_vars, 0);
	pf_node_config_done(&c); /* twice is fine */
}

static void test_config_paths(void **state)
{
	PfNodeConfig c = {};
	char dir[256], path[300];

	(void)state;
	snprintf(dir, sizeof(dir), "%s/inv", tmp);
	assert_int_equal(mkdir(dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/admin.pub", dir);
	write_text(path, ED25519_LINE "\n");
	snprintf(path, sizeof(path), "%s/psk", dir);
	write_text(path, "correct horse battery\n");

	/* Relative to base_dir; the keys replace earlier ones. */
	assert_int_equal(pf_node_config_set_at(&c, "ssh_key", "admin.pub", "x.csv:2:3", dir), 0);
	assert_int_equal(c.n_keys, 1);
	assert_int_equal(pf_node_config_set_at(&c, "ssh_key", "admin.pub", "x.csv:2:3", dir), 0);
	assert_int_equal(c.n_keys, 1);
	assert_int_equal(pf_node_config_set_at(&c, "wifi_psk_file", "psk", "x.csv:2:9", dir), 0);
	assert_string_equal(c.wifi_psk, "correct horse battery");
	/* Absolute paths ignore base_dir. */
	snprintf(path, sizeof(path), "%s/admin.pub", dir);
	assert_int_equal(pf_node_config_set_at(&c, "ssh_key", path, "--ssh-key", "/nonexistent"),
			 0);
	/* A key path that names a file of secrets: the error names the file and line, and
	 * quotes nothing of it (it goes to logs and report.json). The password looks like a
	 * key type on purpose: lower case with a '-'. */
	snprintf(path, sizeof(path), "%s/password.txt", dir);
	write_text(path, "correct-horse-battery staple\n");
	ERR(pf_node_config_set_at(&c, "ssh_key", "password.txt", "x.csv:4:3", dir), -EINVAL,
	    "x.csv:4:3: ssh_key: ", "password.txt:1", "not a public key line");
	assert_null(strstr(pf_error_message(-EINVAL), "horse"));
	assert_null(strstr(pf_error_message(-EINVAL), "staple"));
	write_text(path, "# tokens\n\nghp_16C7e42F292c6912E7710c838347Ae178B4a\n");
	ERR(pf_node_config_set_at(&c, "ssh_key", "password.txt", "x.csv:4:3", dir), -EINVAL,
	    "password.txt:3");
	assert_null(strstr(pf_error_message(-EINVAL), "ghp_"));
	/* Relative to the working directory without base_dir: not found here. */
	ERR(pf_node_config_set(&c, "ssh_key", "admin.pub", "--ssh-key"), -ENOENT,
	    "--ssh-key: 'admin.pub'");
	ERR(pf_node_config_set_at(&c, "ssh_key", "nope.pub", "x.csv:3:3", dir), -ENOENT,
	    "x.csv:3:3: ssh_key: ", "inv/nope.pub");
	ERR(pf_node_config_set_at(&c, "ssh_key", "~/.ssh/id_ed25519.pub", "x.csv:3:3", dir),
	    -EINVAL, "'~' is not expanded");
	ERR(pf_node_config_set_at(&c, "wifi_psk_file", "admin.pub", "x.csv:3:9", dir), -EINVAL,
	    "x.csv:3:9: wifi_psk_file: ", "admin.pub");
	/* Key text errors name the origin. */
	ERR(pf_node_config_set(&c, "ssh_key", "ssh-ed25519 AAAA", "--ssh-key"), -EINVAL,
	    "--ssh-key: key text:1: ", "truncated");
	assert_int_equal(c.n_keys, 1);
	pf_node_config_done(&c);
}

static void test_config_check(void **state)
{
	PfNodeConfig c = {};
	char path[256];

	(void)state;
	ERR(pf_node_config_check(&c), -EINVAL, "no hostname");
	assert_int_equal(pf_node_config_set(&c, "hostname", "w1", "t"), 0);
	assert_int_equal(pf_node_config_check(&c), 0);

	/* DNS servers with DHCP are allowed. */
	assert_int_equal(pf_node_config_set(&c, "dns", "1.1.1.1", "t"), 0);
	assert_int_equal(pf_node_config_check(&c), 0);

	assert_int_equal(pf_node_config_set(&c, "gateway", "10.0.0.1", "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "gateway 10.0.0.1", "without a static address");
	assert_int_equal(pf_node_config_set(&c, "ip", "10.0.0.13/24", "t"), 0);
	assert_int_equal(pf_node_config_check(&c), 0);
	assert_int_equal(pf_node_config_set(&c, "gateway", "10.0.1.1", "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "gateway 10.0.1.1", "outside", "10.0.0.13/24");
	assert_int_equal(pf_node_config_set(&c, "gateway", "10.0.0.13", "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "own address");
	assert_int_equal(pf_node_config_set(&c, "gateway", "10.0.0.255", "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "broadcast");
	assert_int_equal(pf_node_config_set(&c, "ip", "10.0.0.13/16", "t"), 0);
	assert_int_equal(pf_node_config_check(&c), 0); /* inside the /16 now */
	assert_int_equal(pf_node_config_set(&c, "ip", "10.0.0.13/32", "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "outside", "10.0.0.13/32");
	assert_int_equal(pf_node_config_set(&c, "ip", "10.0.0.0/31", "t"), 0);
	assert_int_equal(pf_node_config_set(&c, "gateway", "10.0.0.1", "t"), 0);
	assert_int_equal(pf_node_config_check(&c), 0);

	assert_int_equal(pf_node_config_set(&c, "wifi_ssid", "lab", "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "'lab'", "passphrase");
	snprintf(path, sizeof(path), "%s/psk2", tmp);
	write_text(path, "correct horse battery");
	assert_int_equal(pf_node_config_set(&c, "wifi_psk_file", path, "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "'lab'", "country");
	assert_int_equal(pf_node_config_set(&c, "wifi_country", "FR", "t"), 0);
	assert_int_equal(pf_node_config_check(&c), 0);
	pf_node_config_done(&c);

	assert_int_equal(pf_node_config_set(&c, "hostname", "w1", "t"), 0);
	assert_int_equal(pf_node_config_set(&c, "wifi_psk_file", path, "t"), 0);
	ERR(pf_node_config_check(&c), -EINVAL, "without an SSID");
	pf_node_config_done(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostname),
		cmocka_unit_test(test_domain),
		cmocka_unit_test(test_username),
		cmocka_unit_test(test_password_hash),
		cmocka_unit_test(test_wifi),
		cmocka_unit_test(test_psk_file),
		cmocka_unit_test(test_timezone_locale_iface),
		cmocka_unit_test(test_board),
		cmocka_unit_test(test_ipv4_parse),
		cmocka_unit_test(test_ipv4_cidr),
		cmocka_unit_test(test_vars),
		cmocka_unit_test(test_ssh_key_ed25519),
		cmocka_unit_test(test_ssh_key_structure),
		cmocka_unit_test(test_ssh_key_base64),
		cmocka_unit_test(test_ssh_private_key_refused),
		cmocka_unit_test(test_ssh_keys_many),
		cmocka_unit_test(test_ssh_keys_limits),
		cmocka_unit_test(test_ssh_keygen_keys),
		cmocka_unit_test(test_ssh_keys_load_file),
		cmocka_unit_test(test_config_set),
		cmocka_unit_test(test_config_paths),
		cmocka_unit_test(test_config_check),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
