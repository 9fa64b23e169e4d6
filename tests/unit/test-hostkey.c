/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for node/hostkey.c: SSH host keys made before first boot, judged by ssh-keygen. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "node/hostkey.h"
#include "util/error.h"
#include "util/macros.h"

#include "test-util.h"

static char tmp[] = "/tmp/piflash-test-hostkey-XXXXXX";

/* RFC 8032 §7.1, TEST 1. */
#define RFC_SECRET "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
#define RFC_PUBLIC "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
/* The blob and fingerprint of that key, computed apart from piflash (Python's base64 and
 * hashlib over string "ssh-ed25519", string pub). */
#define RFC_BLOB_B64 "AAAAC3NzaC1lZDI1NTE5AAAAINdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea"
#define RFC_FINGERPRINT "SHA256:bbXpuKG6zhzdmnxq256TlqzFBzRl2f6OOg722cYNbU8"
/* HKDF-SHA256(ikm "correct horse battery staple", salt "piflash host key v1",
 * info "ssh-ed25519\0worker3"), computed with Python's hmac. Pinned: a change here changes every
 * reproducible build's host keys. */
#define HKDF_SECRET "correct horse battery staple"
#define HKDF_WANT "9e8e57024bf30157829e2e124c97aa0d05157ff4b11e28e73dbde8d36cb51eea"

/* ---- helpers ---- */

static void hex_decode(const char *hex, uint8_t *out, size_t n)
{
	assert_int_equal(strlen(hex), 2 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static void hex_encode(const uint8_t *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", in[i]);
}

/* Strict base64 decode of a NUL-terminated string; returns the decoded length. */
static size_t b64_decode(const char *s, uint8_t *out, size_t cap)
{
	size_t n = strlen(s), pad = 0;
	int l;

	assert_int_equal(n % 4, 0);
	assert_true(n / 4 * 3 <= cap);
	if (n > 0 && s[n - 1] == '=')
		pad++;
	if (n > 1 && s[n - 2] == '=')
		pad++;
	l = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);
	assert_true(l >= 0);
	return (size_t)l - pad;
}

typedef struct Reader {
	const uint8_t *p;
	size_t len;
	size_t off;
} Reader;

static uint32_t get_u32(Reader *r)
{
	const uint8_t *b;

	assert_true(r->len - r->off >= 4);
	b = r->p + r->off;
	r->off += 4;
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* An SSH string: returns a pointer into the buffer and its length. */
static const uint8_t *get_string(Reader *r, size_t *ret_len)
{
	uint32_t n = get_u32(r);
	const uint8_t *p;

	assert_true(r->len - r->off >= n);
	p = r->p + r->off;
	r->off += n;
	*ret_len = n;
	return p;
}

static void want_ssh_string(Reader *r, const void *want, size_t want_len)
{
	size_t n;
	const uint8_t *p = get_string(r, &n);

	assert_int_equal(n, want_len);
	assert_memory_equal(p, want, n);
}

/* The base64 blob of a .pub line "type blob [comment]\n", decoded into blob. */
static size_t public_blob(const char *line, uint8_t *blob, size_t cap)
{
	char b64[256];
	const char *sp = strchr(line, ' '), *end;

	assert_non_null(sp);
	end = sp + 1 + strcspn(sp + 1, " \n");
	assert_true((size_t)(end - sp - 1) < sizeof(b64));
	memcpy(b64, sp + 1, (size_t)(end - sp - 1));
	b64[end - sp - 1] = 0;
	return b64_decode(b64, blob, cap);
}

/* What a private key file holds, as parsed here independently of hostkey.c. */
typedef struct Parsed {
	uint8_t pub[32];
	uint8_t priv[32];
	char comment[PF_HOSTKEY_COMMENT_MAX + 1];
	uint32_t checkint;
} Parsed;

/*
 * Parses an armoured openssh-key-v1 file the way PROTOCOL.key describes it and checks every
 * field: armour, 70-column lines, magic, cipher and kdf "none", one key whose public blob is
 * pub_blob, equal checkints, priv||pub matching pub, comment, padding 1, 2, 3... to 8 bytes,
 * nothing after.
 */
static void parse_private(const char *text, const uint8_t *pub_blob, size_t pub_blob_len,
			  Parsed *ret)
{
	static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n";
	static const char end[] = "-----END OPENSSH PRIVATE KEY-----\n";
	_cleanup_(freep) char *b64 = NULL;
	_cleanup_(freep) uint8_t *body = NULL;
	const char *p, *stop;
	size_t n = 0, body_len, l, priv_len, pad_start;
	const uint8_t *s;
	Reader r, pr;

	assert_true(strncmp(text, begin, strlen(begin)) == 0);
	assert_true(strlen(text) > strlen(begin) + strlen(end));
	stop = text + strlen(text) - strlen(end);
	assert_string_equal(stop, end);

	b64 = calloc(1, strlen(text) + 1);
	assert_non_null(b64);
	for (p = text + strlen(begin); p < stop;) {
		const char *nl = strchr(p, '\n');

		assert_non_null(nl);
		assert_true(nl < stop);
		l = (size_t)(nl - p);
		/* ssh-keygen's wrapping: 70 columns, only the last line shorter. */
		if (nl + 1 < stop)
			assert_int_equal(l, 70);
		else
			assert_true(l >= 1 && l <= 70);
		memcpy(b64 + n, p, l);
		n += l;
		p = nl + 1;
	}
	body = calloc(1, n);
	assert_non_null(body);
	body_len = b64_decode(b64, body, n);

	r = (Reader){ .p = body, .len = body_len };
	assert_true(body_len > 15);
	assert_memory_equal(body, "openssh-key-v1\0", 15);
	r.off = 15;
	want_ssh_string(&r, "none", 4);
	want_ssh_string(&r, "none", 4);
	want_ssh_string(&r, "", 0);
	assert_int_equal(get_u32(&r), 1);
	want_ssh_string(&r, pub_blob, pub_blob_len);

	s = get_string(&r, &priv_len);
	assert_int_equal(r.off, body_len);
	assert_int_equal(priv_len % 8, 0);
	pr = (Reader){ .p = s, .len = priv_len };
	ret->checkint = get_u32(&pr);
	assert_int_equal(get_u32(&pr), ret->checkint);
	want_ssh_string(&pr, "ssh-ed25519", 11);
	s = get_string(&pr, &l);
	assert_int_equal(l, 32);
	memcpy(ret->pub, s, 32);
	s = get_string(&pr, &l);
	assert_int_equal(l, 64);
	memcpy(ret->priv, s, 32);
	assert_memory_equal(s + 32, ret->pub, 32);
	s = get_string(&pr, &l);
	assert_true(l <= PF_HOSTKEY_COMMENT_MAX);
	memcpy(ret->comment, s, l);
	ret->comment[l] = 0;
	pad_start = pr.off;
	assert_true(priv_len - pad_start < 8);
	for (size_t i = pad_start; i < priv_len; i++)
		assert_int_equal(pr.p[i], i - pad_start + 1);
	explicit_bzero(body, n);
	explicit_bzero(b64, strlen(b64));
}

static bool have_ssh_keygen(void)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		size_t l = strcspn(path, ":");

		snprintf(buf, sizeof(buf), "%.*s/ssh-keygen", (int)l, path);
		if (l > 0 && access(buf, X_OK) == 0)
			return true;
		path += l;
		if (*path == ':')
			path++;
	}
	return false;
}

#define NEED_SSH_KEYGEN()                                                                          \
	do {                                                                                       \
		if (!have_ssh_keygen()) {                                                          \
			print_message("ssh-keygen is not installed (package openssh-client): "     \
				      "cannot check the key files with it, skipping\n");           \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

/* The first two fields "type base64" of a line. */
static void type_and_blob(const char *line, char *out, size_t cap)
{
	const char *sp = strchr(line, ' ');
	size_t l;

	assert_non_null(sp);
	l = (size_t)(sp - line) + 1 + strcspn(sp + 1, " \n");
	assert_true(l < cap);
	memcpy(out, line, l);
	out[l] = 0;
}

/* Writes the key files and lets ssh-keygen judge them. */
static void check_with_ssh_keygen(const PfHostKey *k, const char *name, const char *comment)
{
	char key_path[256], pub_path[256], cmd[600], out[4096], got[256], want[256];

	snprintf(key_path, sizeof(key_path), "%s/%s", tmp, name);
	snprintf(pub_path, sizeof(pub_path), "%s/%s.pub", tmp, name);
	write_file_mode(key_path, k->private_key, strlen(k->private_key), 0600);
	write_file_mode(pub_path, k->public_line, strlen(k->public_line), 0644);

	/* -y reads the private file and prints the public key it derives. */
	snprintf(cmd, sizeof(cmd), "ssh-keygen -y -f '%s' 2>&1", key_path);
	run_capture(out, sizeof(out), "%s", cmd);
	type_and_blob(out, got, sizeof(got));
	type_and_blob(k->public_line, want, sizeof(want));
	assert_string_equal(got, want);

	/* -l prints "256 SHA256:... comment (ED25519)". */
	snprintf(cmd, sizeof(cmd), "ssh-keygen -l -f '%s' 2>&1", pub_path);
	run_capture(out, sizeof(out), "%s", cmd);
	if (!strstr(out, k->fingerprint))
		fail_msg("ssh-keygen -l printed '%s', without '%s'", out, k->fingerprint);
	snprintf(want, sizeof(want), "%s %s (ED25519)", k->fingerprint, comment);
	if (comment[0] && !strstr(out, want))
		fail_msg("ssh-keygen -l printed '%s', without '%s'", out, want);
	assert_true(strncmp(out, "256 ", 4) == 0);

	/* And the private file for -l too: same fingerprint, so the comment inside agrees. */
	snprintf(cmd, sizeof(cmd), "ssh-keygen -l -f '%s' 2>&1", key_path);
	run_capture(out, sizeof(out), "%s", cmd);
	if (!strstr(out, k->fingerprint))
		fail_msg("ssh-keygen -l on the private file printed '%s', without '%s'", out,
			 k->fingerprint);
	if (comment[0] && !strstr(out, comment))
		fail_msg("ssh-keygen -l on the private file printed '%s', without '%s'", out,
			 comment);
}

/* The base64 (and hex) of the private bytes appear in neither public output. */
static void check_no_leak(const PfHostKey *k, const uint8_t priv[32])
{
	char b64[64], hex[65];

	assert_int_equal(EVP_EncodeBlock((unsigned char *)b64, priv, 32), 44);
	hex_encode(priv, 32, hex);
	/* Without the padding, and a shorter cut, so an offset copy is caught as well. */
	b64[43] = 0;
	assert_null(strstr(k->public_line, b64));
	assert_null(strstr(k->fingerprint, b64));
	b64[20] = 0;
	assert_null(strstr(k->public_line, b64));
	assert_null(strstr(k->fingerprint, b64));
	assert_null(strstr(k->public_line, hex));
	assert_null(strstr(k->fingerprint, hex));
}

static int setup(void **state)
{
	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	return 0;
}

/* Without rm(1): the skip test runs with a PATH lacking ssh-keygen, and maybe everything else. */
static int teardown(void **state)
{
	(void)state;
	return remove_tree(tmp);
}

/* ---- tests ---- */

static void test_rfc8032_vector(void **state)
{
	_cleanup_(pf_hostkey_done) PfHostKey k = {};
	uint8_t seed[32], want_pub[32], blob[128];
	size_t n;
	Parsed parsed;

	(void)state;
	hex_decode(RFC_SECRET, seed, sizeof(seed));
	hex_decode(RFC_PUBLIC, want_pub, sizeof(want_pub));
	assert_int_equal(pf_hostkey_ed25519(seed, "root@worker3", &k), 0);

	assert_string_equal(k.type, "ssh-ed25519");
	assert_string_equal(k.public_line, "ssh-ed25519 " RFC_BLOB_B64 " root@worker3\n");
	assert_string_equal(k.fingerprint, RFC_FINGERPRINT);

	/* The raw public key, read back from the .pub line's blob. */
	n = public_blob(k.public_line, blob, sizeof(blob));
	assert_int_equal(n, 4 + 11 + 4 + 32);
	assert_memory_equal(blob, "\0\0\0\x0bssh-ed25519\0\0\0\x20", 19);
	assert_memory_equal(blob + 19, want_pub, 32);

	/* The private file, parsed field by field. */
	parse_private(k.private_key, blob, n, &parsed);
	assert_memory_equal(parsed.pub, want_pub, 32);
	assert_memory_equal(parsed.priv, seed, 32);
	assert_string_equal(parsed.comment, "root@worker3");
}

static void test_ssh_keygen_seeded(void **state)
{
	_cleanup_(pf_hostkey_done) PfHostKey k = {};
	uint8_t seed[32];

	(void)state;
	NEED_SSH_KEYGEN();
	hex_decode(RFC_SECRET, seed, sizeof(seed));
	assert_int_equal(pf_hostkey_ed25519(seed, "root@worker3", &k), 0);
	check_with_ssh_keygen(&k, "seeded", "root@worker3");
}

static void test_ssh_keygen_random(void **state)
{
	_cleanup_(pf_hostkey_done) PfHostKey k = {};

	(void)state;
	NEED_SSH_KEYGEN();
	assert_int_equal(pf_hostkey_ed25519(NULL, "root@node-17", &k), 0);
	check_with_ssh_keygen(&k, "random", "root@node-17");
}

static void test_ssh_keygen_no_comment(void **state)
{
	_cleanup_(pf_hostkey_done) PfHostKey k = {}, k2 = {};
	uint8_t seed[32];

	(void)state;
	hex_decode(RFC_SECRET, seed, sizeof(seed));
	assert_int_equal(pf_hostkey_ed25519(seed, NULL, &k), 0);
	assert_string_equal(k.public_line, "ssh-ed25519 " RFC_BLOB_B64 "\n");
	assert_int_equal(pf_hostkey_ed25519(seed, "", &k2), 0);
	assert_string_equal(k2.private_key, k.private_key);
	NEED_SSH_KEYGEN();
	check_with_ssh_keygen(&k, "nocomment", "");
}

/* Comments of 0..8 bytes give every padding length 0..7; ssh-keygen reads each. */
static void test_padding_lengths(void **state)
{
	char comment[16];
	bool keygen = have_ssh_keygen();

	(void)state;
	for (size_t len = 0; len <= 8; len++) {
		_cleanup_(pf_hostkey_done) PfHostKey k = {};
		uint8_t blob[128];
		Parsed parsed;
		size_t n;
		char name[32];

		memset(comment, 'c', len);
		comment[len] = 0;
		assert_int_equal(pf_hostkey_ed25519(NULL, comment, &k), 0);
		n = public_blob(k.public_line, blob, sizeof(blob));
		parse_private(k.private_key, blob, n, &parsed);
		assert_string_equal(parsed.comment, comment);
		if (keygen) {
			snprintf(name, sizeof(name), "pad%zu", len);
			check_with_ssh_keygen(&k, name, comment);
		}
	}
}

static void test_deterministic(void **state)
{
	_cleanup_(pf_hostkey_done) PfHostKey a = {}, b = {}, c = {};
	uint8_t seed[32], other[32];

	(void)state;
	hex_decode(RFC_SECRET, seed, sizeof(seed));
	memcpy(other, seed, sizeof(other));
	other[31] ^= 1;
	assert_int_equal(pf_hostkey_ed25519(seed, "root@worker3", &a), 0);
	assert_int_equal(pf_hostkey_ed25519(seed, "root@worker3", &b), 0);
	assert_string_equal(a.private_key, b.private_key);
	assert_string_equal(a.public_line, b.public_line);
	assert_string_equal(a.fingerprint, b.fingerprint);

	/* One bit of seed changes everything. */
	assert_int_equal(pf_hostkey_ed25519(other, "root@worker3", &c), 0);
	assert_string_not_equal(a.private_key, c.private_key);
	assert_string_not_equal(a.public_line, c.public_line);
	assert_string_not_equal(a.fingerprint, c.fingerprint);
}

static void test_random_differ(void **state)
{
	_cleanup_(pf_hostkey_done) PfHostKey a = {}, b = {};
	uint8_t blob_a[128], blob_b[128];
	Parsed pa, pb;
	size_t na, nb;

	(void)state;
	assert_int_equal(pf_hostkey_ed25519(NULL, "root@w", &a), 0);
	assert_int_equal(pf_hostkey_ed25519(NULL, "root@w", &b), 0);
	assert_string_not_equal(a.private_key, b.private_key);
	assert_string_not_equal(a.public_line, b.public_line);
	assert_string_not_equal(a.fingerprint, b.fingerprint);
	na = public_blob(a.public_line, blob_a, sizeof(blob_a));
	nb = public_blob(b.public_line, blob_b, sizeof(blob_b));
	parse_private(a.private_key, blob_a, na, &pa);
	parse_private(b.private_key, blob_b, nb, &pb);
	assert_memory_not_equal(pa.priv, pb.priv, 32);
	/* A random seed of all zeros would mean RAND was never called. */
	assert_memory_not_equal(pa.priv, (uint8_t[32]){}, 32);
	check_no_leak(&a, pa.priv);
	check_no_leak(&b, pb.priv);
}

static void test_no_leak_seeded(void **state)
{
	_cleanup_(pf_hostkey_done) PfHostKey k = {};
	uint8_t seed[32];

	(void)state;
	hex_decode(RFC_SECRET, seed, sizeof(seed));
	assert_int_equal(pf_hostkey_ed25519(seed, "root@worker3", &k), 0);
	check_no_leak(&k, seed);
}

static void test_derive_seed(void **state)
{
	uint8_t a[PF_HOSTKEY_SEED_BYTES], b[PF_HOSTKEY_SEED_BYTES], want[PF_HOSTKEY_SEED_BYTES];
	_cleanup_(pf_hostkey_done) PfHostKey ka = {}, kb = {};

	(void)state;
	hex_decode(HKDF_WANT, want, sizeof(want));
	assert_int_equal(pf_hostkey_derive_seed(HKDF_SECRET, "worker3", "ssh-ed25519", a), 0);
	assert_memory_equal(a, want, sizeof(a));
	assert_int_equal(pf_hostkey_derive_seed(HKDF_SECRET, "worker3", "ssh-ed25519", b), 0);
	assert_memory_equal(a, b, sizeof(a));

	assert_int_equal(pf_hostkey_derive_seed(HKDF_SECRET, "worker4", "ssh-ed25519", b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(pf_hostkey_derive_seed(HKDF_SECRET, "worker3", "ssh-rsa", b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_int_equal(pf_hostkey_derive_seed(HKDF_SECRET "!", "worker3", "ssh-ed25519", b), 0);
	assert_memory_not_equal(a, b, sizeof(a));
	/* The separator keeps the type and hostname apart. */
	assert_int_equal(pf_hostkey_derive_seed(HKDF_SECRET, "3", "ssh-ed25519worker", b), 0);
	assert_memory_not_equal(a, b, sizeof(a));

	/* The whole chain is reproducible: secret → seed → identical key files. */
	assert_int_equal(pf_hostkey_derive_seed(HKDF_SECRET, "worker3", "ssh-ed25519", b), 0);
	assert_int_equal(pf_hostkey_ed25519(a, "root@worker3", &ka), 0);
	assert_int_equal(pf_hostkey_ed25519(b, "root@worker3", &kb), 0);
	assert_string_equal(ka.private_key, kb.private_key);
	assert_string_equal(ka.public_line, kb.public_line);
}

static void test_errors(void **state)
{
	PfHostKey k = { .type = (char *)"untouched" };
	uint8_t seed[PF_HOSTKEY_SEED_BYTES], out[PF_HOSTKEY_SEED_BYTES];
	char long_comment[PF_HOSTKEY_COMMENT_MAX + 2];
	_cleanup_(freep) char *long_secret = NULL;

	(void)state;
	memset(seed, 7, sizeof(seed));

	pf_error_clear();
	assert_int_equal(pf_hostkey_ed25519(seed, "root@w\nssh-rsa AAAA", &k), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "control character"));
	assert_string_equal(k.type, "untouched");
	assert_null(k.private_key);

	memset(long_comment, 'x', sizeof(long_comment) - 1);
	long_comment[sizeof(long_comment) - 1] = 0;
	assert_int_equal(pf_hostkey_ed25519(seed, long_comment, &k), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "at most"));
	long_comment[PF_HOSTKEY_COMMENT_MAX] = 0;
	{
		_cleanup_(pf_hostkey_done) PfHostKey ok = {};

		assert_int_equal(pf_hostkey_ed25519(seed, long_comment, &ok), 0);
	}
	assert_int_equal(pf_hostkey_ed25519(seed, "c", NULL), -EINVAL);

	memset(out, 0xaa, sizeof(out));
	assert_int_equal(pf_hostkey_derive_seed("", "worker3", "ssh-ed25519", out), -EINVAL);
	assert_int_equal(pf_hostkey_derive_seed(NULL, "worker3", "ssh-ed25519", out), -EINVAL);
	assert_int_equal(pf_hostkey_derive_seed("s", "", "ssh-ed25519", out), -EINVAL);
	assert_int_equal(pf_hostkey_derive_seed("s", NULL, "ssh-ed25519", out), -EINVAL);
	assert_int_equal(pf_hostkey_derive_seed("s", "worker 3", "ssh-ed25519", out), -EINVAL);
	assert_int_equal(pf_hostkey_derive_seed("s", "worker3", "", out), -EINVAL);
	assert_int_equal(pf_hostkey_derive_seed("s", "worker3", NULL, out), -EINVAL);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0xaa);

	/* A secret too long is refused without being quoted. */
	long_secret = malloc(PF_HOSTKEY_SECRET_MAX + 2);
	assert_non_null(long_secret);
	memset(long_secret, 'S', PF_HOSTKEY_SECRET_MAX + 1);
	long_secret[PF_HOSTKEY_SECRET_MAX + 1] = 0;
	pf_error_clear();
	assert_int_equal(pf_hostkey_derive_seed(long_secret, "worker3", "ssh-ed25519", out),
			 -EINVAL);
	assert_null(strstr(pf_error_message(-EINVAL), "SSSS"));
	long_secret[PF_HOSTKEY_SECRET_MAX] = 0;
	assert_int_equal(pf_hostkey_derive_seed(long_secret, "worker3", "ssh-ed25519", out), 0);
}

static void test_done(void **state)
{
	PfHostKey zero = {}, k = {};

	(void)state;
	pf_hostkey_done(&zero);
	pf_hostkey_done(&zero);
	pf_hostkey_done(NULL);
	assert_null(zero.private_key);

	assert_int_equal(pf_hostkey_ed25519(NULL, "root@w", &k), 0);
	pf_hostkey_done(&k);
	assert_null(k.type);
	assert_null(k.private_key);
	assert_null(k.public_line);
	assert_null(k.fingerprint);
	pf_hostkey_done(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc8032_vector),
		cmocka_unit_test(test_ssh_keygen_seeded),
		cmocka_unit_test(test_ssh_keygen_random),
		cmocka_unit_test(test_ssh_keygen_no_comment),
		cmocka_unit_test(test_padding_lengths),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_random_differ),
		cmocka_unit_test(test_no_leak_seeded),
		cmocka_unit_test(test_derive_seed),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_done),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
