/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * SSH host keys made before first boot.
 *
 * `piflash batch --host-keys` gives each node its host keys on the card, so the operator can
 * write known_hosts before the node ever boots instead of trusting whatever key answers the
 * first connection. Keys are made with libcrypto and written in OpenSSH's own private key
 * format ("openssh-key-v1", cipher "none", as `ssh-keygen -t ed25519 -N ''` writes it), with
 * the matching .pub line and the SHA-256 fingerprint that `ssh-keygen -l` prints. For
 * reproducible builds a key can be made from a seed, itself derived from a user secret and the
 * hostname; the same seed then gives byte-identical files. The private key text is a secret:
 * it never goes into a message and is wiped when freed.
 */

#include <stddef.h>
#include <stdint.h>

#define PF_HOSTKEY_SEED_BYTES 32
/* Longest key comment accepted (bytes). */
#define PF_HOSTKEY_COMMENT_MAX 1024u
/* Longest secret pf_hostkey_derive_seed() accepts (bytes). */
#define PF_HOSTKEY_SECRET_MAX (4u * 1024)

typedef struct PfHostKey {
	char *type; /* "ssh-ed25519" */
	/* The OpenSSH private key file, "-----BEGIN OPENSSH PRIVATE KEY-----\n...-----END OPENSSH
	 * PRIVATE KEY-----\n", base64 wrapped at 70 columns like ssh-keygen. Secret. */
	char *private_key;
	char *public_line; /* "ssh-ed25519 AAAA... COMMENT\n", the .pub file */
	/* "SHA256:<base64 of sha256(public blob), no '=' padding>", as ssh-keygen -l prints. */
	char *fingerprint;
} PfHostKey;

/*
 * Makes an ed25519 host key. seed: PF_HOSTKEY_SEED_BYTES bytes of private key seed (RFC 8032),
 * or NULL for a random key (RAND_priv_bytes). comment: e.g. "root@worker3", at most
 * PF_HOSTKEY_COMMENT_MAX bytes without control characters; NULL or "" for none. The private
 * file's "checkint" is derived from the key, so a seeded key gives a byte-identical file, and
 * its cipher is "none" (host keys are not passphrase-protected). Returns 0 and *ret (free with
 * pf_hostkey_done()), or -EINVAL/-ENOMEM/-EIO with a detail; *ret is untouched on failure.
 */
int pf_hostkey_ed25519(const uint8_t *seed, const char *comment, PfHostKey *ret);

/*
 * Derives a key seed from a secret (--instance-id-seed, 1..PF_HOSTKEY_SECRET_MAX bytes), the
 * hostname and the key type ("ssh-ed25519"), with HKDF-SHA256 (salt "piflash host key v1",
 * info = type + '\0' + hostname). Different hostnames or types give unrelated seeds. The secret
 * never appears in a message. Returns 0 and ret, or -EINVAL/-EIO with a detail.
 */
int pf_hostkey_derive_seed(const char *secret, const char *hostname, const char *type,
			   uint8_t ret[PF_HOSTKEY_SEED_BYTES]);

/* Frees the members, wiping the private key text first, and zeroes *k. Accepts a zeroed
 * struct and NULL. */
void pf_hostkey_done(PfHostKey *k);
