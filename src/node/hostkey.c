/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "node/hostkey.h"
#include "util/error.h"
#include "util/macros.h"
#include "util/strutil.h"

#define ED25519_TYPE "ssh-ed25519"
#define ED25519_PUB_BYTES 32u

/* The armour and the body layout of OpenSSH's PROTOCOL.key. The magic includes its NUL. */
#define ARMOUR_BEGIN "-----BEGIN OPENSSH PRIVATE KEY-----\n"
#define ARMOUR_END "-----END OPENSSH PRIVATE KEY-----\n"
#define AUTH_MAGIC "openssh-key-v1"
#define AUTH_MAGIC_BYTES (sizeof(AUTH_MAGIC))
#define ARMOUR_COLUMNS 70u
/* Cipher "none" pads the private section to 8 bytes, as ssh-keygen does. */
#define PRIVATE_BLOCK_BYTES 8u

#define HKDF_SALT "piflash host key v1"
/* The checkint is a hash of the public blob under this label: deterministic for a seeded key,
 * and it says nothing about the private key. */
#define CHECKINT_LABEL "piflash checkint v1"

#define TYPE_MAX 64u
#define HOSTNAME_MAX 253u

/* ---- buffers holding secrets ---------------------------------------------------------------- */

/* A heap buffer that is wiped before it is freed. */
typedef struct Secret {
	uint8_t *data;
	size_t size;
} Secret;

static void secret_done(Secret *s)
{
	if (s->data) {
		explicit_bzero(s->data, s->size);
		free(s->data);
	}
	s->data = NULL;
	s->size = 0;
}

static int secret_alloc(Secret *s, size_t size)
{
	s->data = calloc(1, size);
	if (!s->data)
		return -ENOMEM;
	s->size = size;
	return 0;
}

static void erase_strp(char **p)
{
	if (*p) {
		explicit_bzero(*p, strlen(*p));
		free(*p);
	}
}

static void erase_seedp(uint8_t (*p)[PF_HOSTKEY_SEED_BYTES])
{
	explicit_bzero(*p, sizeof(*p));
}

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_PKEY *, EVP_PKEY_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_KDF *, EVP_KDF_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_KDF_CTX *, EVP_KDF_CTX_free);

/* Turns the libcrypto error queue into a detail, keeping the library's own reason. */
static int crypto_error(int err, const char *what)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_clear_error();
	if (e == 0)
		return pf_error_set(err, "%s failed", what);
	ERR_error_string_n(e, buf, sizeof(buf));
	return pf_error_set(err, "%s failed: %s", what, buf);
}

/* ---- SSH wire encoding (RFC 4251 §5) into a buffer of known size ---------------------------- */

typedef struct Writer {
	uint8_t *p;
	size_t len;
	size_t cap;
} Writer;

static void put_bytes(Writer *w, const void *p, size_t n)
{
	/* Every size is computed beforehand; running over is a bug here, not bad input. */
	assert(n <= w->cap - w->len);
	memcpy(w->p + w->len, p, n);
	w->len += n;
}

static void put_u32(Writer *w, uint32_t v)
{
	uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };

	put_bytes(w, b, sizeof(b));
}

static void put_string(Writer *w, const void *p, size_t n)
{
	put_u32(w, (uint32_t)n);
	put_bytes(w, p, n);
}

/* ---- base64 ---------------------------------------------------------------------------------- */

/* Length of the base64 of n bytes, without the NUL. */
#define B64_LEN(n) (DIV_ROUND_UP((n), 3) * 4)

/* Base64 of n bytes (n is small here: at most a few KiB) into out, B64_LEN(n) + 1 bytes. */
static void b64_encode(char *out, const uint8_t *in, size_t n)
{
	int l = EVP_EncodeBlock((unsigned char *)out, in, (int)n);

	assert(l >= 0 && (size_t)l == B64_LEN(n));
	(void)l;
}

/* ---- the key --------------------------------------------------------------------------------- */

static int comment_validate(const char *comment, size_t *ret_len)
{
	size_t n = comment ? strlen(comment) : 0;

	if (n > PF_HOSTKEY_COMMENT_MAX)
		return pf_error_set(-EINVAL, "host key comment is %zu bytes long (at most %u)", n,
				    PF_HOSTKEY_COMMENT_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)comment[i] < 0x20 || comment[i] == 0x7f)
			return pf_error_set(-EINVAL,
					    "host key comment has a control character at byte %zu",
					    i + 1);
	*ret_len = n;
	return 0;
}

/* The public key blob: string "ssh-ed25519", string pub. */
#define BLOB_BYTES (4 + sizeof(ED25519_TYPE) - 1 + 4 + ED25519_PUB_BYTES)

/*
 * The armoured openssh-key-v1 file for one ed25519 key: header (magic, cipher "none", kdf "none",
 * empty kdf options, one key), the public blob, then the private section (checkint twice, type,
 * pub, priv||pub, comment, padding 1, 2, 3... to PRIVATE_BLOCK_BYTES). Every intermediate
 * buffer is wiped.
 */
static int armour_private(const uint8_t seed[PF_HOSTKEY_SEED_BYTES],
			  const uint8_t pub[ED25519_PUB_BYTES], const uint8_t blob[BLOB_BYTES],
			  uint32_t checkint, const char *comment, size_t comment_len, char **ret)
{
	_cleanup_(secret_done) Secret body = {}, b64 = {};
	_cleanup_(erase_strp) char *text = NULL;
	size_t priv_len, pad, body_len, b64n, lines, text_len;
	Writer w;
	char *t;
	int r;

	priv_len = 4 + 4 + (4 + sizeof(ED25519_TYPE) - 1) + (4 + ED25519_PUB_BYTES) +
		   (4 + PF_HOSTKEY_SEED_BYTES + ED25519_PUB_BYTES) + (4 + comment_len);
	pad = ALIGN_UP(priv_len, PRIVATE_BLOCK_BYTES) - priv_len;
	body_len = AUTH_MAGIC_BYTES + (4 + 4) + (4 + 4) + 4 + 4 + (4 + BLOB_BYTES) +
		   (4 + priv_len + pad);

	r = secret_alloc(&body, body_len);
	if (r < 0)
		return pf_error_set(r, "out of memory for a host key");
	w = (Writer){ .p = body.data, .cap = body.size };
	put_bytes(&w, AUTH_MAGIC, AUTH_MAGIC_BYTES);
	put_string(&w, "none", 4); /* cipher */
	put_string(&w, "none", 4); /* kdf */
	put_string(&w, "", 0);	   /* kdf options */
	put_u32(&w, 1);		   /* number of keys */
	put_string(&w, blob, BLOB_BYTES);
	put_u32(&w, (uint32_t)(priv_len + pad));
	put_u32(&w, checkint);
	put_u32(&w, checkint);
	put_string(&w, ED25519_TYPE, sizeof(ED25519_TYPE) - 1);
	put_string(&w, pub, ED25519_PUB_BYTES);
	put_u32(&w, PF_HOSTKEY_SEED_BYTES + ED25519_PUB_BYTES);
	put_bytes(&w, seed, PF_HOSTKEY_SEED_BYTES);
	put_bytes(&w, pub, ED25519_PUB_BYTES);
	put_string(&w, comment, comment_len);
	for (size_t i = 1; i <= pad; i++)
		put_bytes(&w, &(uint8_t){ (uint8_t)i }, 1);
	assert(w.len == body_len);

	b64n = B64_LEN(body_len);
	r = secret_alloc(&b64, b64n + 1);
	if (r < 0)
		return pf_error_set(r, "out of memory for a host key");
	b64_encode((char *)b64.data, body.data, body_len);

	lines = DIV_ROUND_UP(b64n, ARMOUR_COLUMNS);
	text_len = strlen(ARMOUR_BEGIN) + b64n + lines + strlen(ARMOUR_END);
	text = calloc(1, text_len + 1);
	if (!text)
		return pf_error_set(-ENOMEM, "out of memory for a host key");
	t = stpcpy(text, ARMOUR_BEGIN);
	for (size_t off = 0; off < b64n; off += ARMOUR_COLUMNS) {
		size_t l = MIN(ARMOUR_COLUMNS, b64n - off);

		memcpy(t, b64.data + off, l);
		t += l;
		*t++ = '\n';
	}
	t = stpcpy(t, ARMOUR_END);
	assert((size_t)(t - text) == text_len);

	*ret = TAKE_PTR(text);
	return 0;
}

/* The ed25519 public key of a seed. */
static int ed25519_public(const uint8_t *seed, uint8_t pub[static ED25519_PUB_BYTES])
{
	_cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
	size_t pub_len = ED25519_PUB_BYTES;

	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, PF_HOSTKEY_SEED_BYTES);
	if (!pkey)
		return crypto_error(-EIO, "making an ed25519 host key");
	if (EVP_PKEY_get_raw_public_key(pkey, pub, &pub_len) != 1)
		return crypto_error(-EIO, "reading the ed25519 public key");
	if (pub_len != ED25519_PUB_BYTES)
		return pf_error_set(-EIO, "ed25519 public key is %zu bytes (expected %u)", pub_len,
				    ED25519_PUB_BYTES);
	return 0;
}

/* checkint: the first 4 bytes of SHA-256(label || blob). */
static int checkint_of(const uint8_t blob[static BLOB_BYTES], uint32_t *ret)
{
	uint8_t in[sizeof(CHECKINT_LABEL) - 1 + BLOB_BYTES], digest[EVP_MAX_MD_SIZE];
	unsigned digest_len = 0;

	memcpy(in, CHECKINT_LABEL, sizeof(CHECKINT_LABEL) - 1);
	memcpy(in + sizeof(CHECKINT_LABEL) - 1, blob, BLOB_BYTES);
	if (EVP_Digest(in, sizeof(in), digest, &digest_len, EVP_sha256(), NULL) != 1)
		return crypto_error(-EIO, "hashing the host key");
	*ret = (uint32_t)digest[0] << 24 | (uint32_t)digest[1] << 16 | (uint32_t)digest[2] << 8 |
	       digest[3];
	return 0;
}

/* "ssh-ed25519 BASE64 comment\n", as in an .pub file. */
static int public_line_of(const uint8_t blob[static BLOB_BYTES], const char *comment,
			  size_t comment_len, char **ret)
{
	char blob_b64[B64_LEN(BLOB_BYTES) + 1];

	b64_encode(blob_b64, blob, BLOB_BYTES);
	if (asprintf(ret, "%s %s%s%s\n", ED25519_TYPE, blob_b64, comment_len ? " " : "", comment) <
	    0) {
		*ret = NULL;
		return pf_error_set(-ENOMEM, "out of memory for a host key");
	}
	return 0;
}

/* "SHA256:...", as ssh-keygen -l shows it. */
static int fingerprint_of(const uint8_t blob[static BLOB_BYTES], char **ret)
{
	uint8_t digest[EVP_MAX_MD_SIZE];
	char fp_b64[B64_LEN(32) + 1], *eq;
	unsigned digest_len = 0;

	if (EVP_Digest(blob, BLOB_BYTES, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
	    digest_len != 32)
		return crypto_error(-EIO, "computing the host key fingerprint");
	b64_encode(fp_b64, digest, digest_len);
	eq = strchr(fp_b64, '=');
	if (eq)
		*eq = 0;
	if (asprintf(ret, "SHA256:%s", fp_b64) < 0) {
		*ret = NULL;
		return pf_error_set(-ENOMEM, "out of memory for a host key");
	}
	return 0;
}

int pf_hostkey_ed25519(const uint8_t *seed, const char *comment, PfHostKey *ret)
{
	_cleanup_(erase_seedp) uint8_t rnd[PF_HOSTKEY_SEED_BYTES] = {};
	_cleanup_(erase_strp) char *private_key = NULL;
	_cleanup_(freep) char *type = NULL, *public_line = NULL, *fingerprint = NULL;
	uint8_t pub[ED25519_PUB_BYTES], blob[BLOB_BYTES];
	size_t comment_len = 0;
	uint32_t checkint = 0;
	Writer w;
	int r;

	if (!ret)
		return pf_error_set(-EINVAL, "no place for the host key");
	r = comment_validate(comment, &comment_len);
	if (r < 0)
		return r;
	if (!comment)
		comment = "";
	if (!seed) {
		if (RAND_priv_bytes(rnd, sizeof(rnd)) != 1)
			return crypto_error(-EIO, "drawing a random host key");
		seed = rnd;
	}

	r = ed25519_public(seed, pub);
	if (r < 0)
		return r;
	w = (Writer){ .p = blob, .cap = sizeof(blob) };
	put_string(&w, ED25519_TYPE, sizeof(ED25519_TYPE) - 1);
	put_string(&w, pub, sizeof(pub));
	assert(w.len == sizeof(blob));

	r = checkint_of(blob, &checkint);
	if (r >= 0)
		r = armour_private(seed, pub, blob, checkint, comment, comment_len, &private_key);
	if (r >= 0)
		r = public_line_of(blob, comment, comment_len, &public_line);
	if (r >= 0)
		r = fingerprint_of(blob, &fingerprint);
	if (r < 0)
		return r;
	type = strdup(ED25519_TYPE);
	if (!type)
		return pf_error_set(-ENOMEM, "out of memory for a host key");

	*ret = (PfHostKey){
		.type = TAKE_PTR(type),
		.private_key = TAKE_PTR(private_key),
		.public_line = TAKE_PTR(public_line),
		.fingerprint = TAKE_PTR(fingerprint),
	};
	return 0;
}

/* ---- seeds ----------------------------------------------------------------------------------- */

static int name_validate(const char *s, const char *what, size_t max)
{
	size_t n;

	if (!s || !*s)
		return pf_error_set(-EINVAL, "%s for the host key is empty", what);
	n = strlen(s);
	if (n > max)
		return pf_error_set(-EINVAL, "%s for the host key is %zu bytes long (at most %zu)",
				    what, n, max);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return pf_error_set(-EINVAL,
					    "%s for the host key has a space or control character "
					    "at byte %zu",
					    what, i + 1);
	return 0;
}

int pf_hostkey_derive_seed(const char *secret, const char *hostname, const char *type,
			   uint8_t ret[PF_HOSTKEY_SEED_BYTES])
{
	_cleanup_(erase_seedp) uint8_t out[PF_HOSTKEY_SEED_BYTES] = {};
	_cleanup_(EVP_KDF_freep) EVP_KDF *kdf = NULL;
	_cleanup_(EVP_KDF_CTX_freep) EVP_KDF_CTX *ctx = NULL;
	char info[TYPE_MAX + 1 + HOSTNAME_MAX], digest[] = "SHA256", salt[] = HKDF_SALT;
	size_t secret_len, type_len, host_len;
	OSSL_PARAM params[5];
	int r;

	if (!ret)
		return pf_error_set(-EINVAL, "no place for the host key seed");
	/* The secret is never quoted: only its length. */
	if (!secret || !*secret)
		return pf_error_set(-EINVAL, "host key secret is empty");
	secret_len = strlen(secret);
	if (secret_len > PF_HOSTKEY_SECRET_MAX)
		return pf_error_set(-EINVAL, "host key secret is %zu bytes long (at most %u)",
				    secret_len, PF_HOSTKEY_SECRET_MAX);
	r = name_validate(hostname, "hostname", HOSTNAME_MAX);
	if (r < 0)
		return r;
	r = name_validate(type, "key type", TYPE_MAX);
	if (r < 0)
		return r;

	/* info = type '\0' hostname: the NUL keeps ("ab", "c") and ("a", "bc") apart. */
	type_len = strlen(type);
	host_len = strlen(hostname);
	memcpy(info, type, type_len);
	info[type_len] = 0;
	memcpy(info + type_len + 1, hostname, host_len);

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (!kdf)
		return crypto_error(-EIO, "loading HKDF");
	ctx = EVP_KDF_CTX_new(kdf);
	if (!ctx)
		return crypto_error(-ENOMEM, "setting up HKDF");

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
	params[1] =
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, strlen(salt));
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info,
						      type_len + 1 + host_len);
	params[4] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(ctx, out, sizeof(out), params) != 1)
		return crypto_error(-EIO, "deriving the host key seed");

	memcpy(ret, out, sizeof(out));
	return 0;
}

void pf_hostkey_done(PfHostKey *k)
{
	if (!k)
		return;
	erase_strp(&k->private_key);
	free(k->type);
	free(k->public_line);
	free(k->fingerprint);
	*k = (PfHostKey){};
}
