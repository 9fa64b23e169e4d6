/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "node/config.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/macros.h"
#include "util/strutil.h"

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

/* Does the line hold a known key type after something else (options)? */
static bool has_type_later(const char *line, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (!pf_is_blank(line[i - 1]) || pf_is_blank(line[i]))
			continue;
		size_t e = i;
		while (e < n && !pf_is_blank(line[e]))
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

	for (tn = 0; tn < n && !pf_is_blank(tok[tn]); tn++)
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
	while (b64 < line + n && pf_is_blank(*b64))
		b64++;
	for (bn = 0; b64 + bn < line + n && !pf_is_blank(b64[bn]); bn++)
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
	while (c < ce && pf_is_blank(*c))
		c++;
	while (ce > c && pf_is_blank(ce[-1]))
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

/* The keys of a text so far. */
typedef struct KeyList {
	PfSshKey *keys;
	size_t n;
} KeyList;

/* Refuses a line too long or with a control character, then trims its blanks. */
static int key_line_check(const char *origin, unsigned lineno, const char **line, size_t *n)
{
	if (*n > PF_SSH_KEY_LINE_MAX)
		return pf_error_set(-E2BIG, LOC_FMT ": line of %zu bytes (at most %u)", origin,
				    lineno, *n, PF_SSH_KEY_LINE_MAX);
	for (size_t i = 0; i < *n; i++)
		if (((unsigned char)(*line)[i] < 0x20 && (*line)[i] != '\t') || (*line)[i] == 0x7f)
			return pf_error_set(-EINVAL,
					    LOC_FMT ": control character (0x%02x) at byte %zu",
					    origin, lineno, (unsigned char)(*line)[i], i + 1);
	while (*n > 0 && pf_is_blank(**line)) {
		(*line)++;
		(*n)--;
	}
	while (*n > 0 && pf_is_blank((*line)[*n - 1]))
		(*n)--;
	return 0;
}

/* Adds *k to l (which then owns it) unless l has the same key already (then *k is freed):
 * 0, -E2BIG past PF_SSH_KEYS_MAX, -ENOMEM. */
static int key_list_add(KeyList *l, PfSshKey *k, const char *origin, unsigned lineno)
{
	PfSshKey *nk;

	for (size_t i = 0; i < l->n; i++)
		if (streq(l->keys[i].type, k->type) && streq(l->keys[i].blob_b64, k->blob_b64)) {
			key_free_one(k);
			return 0;
		}
	if (l->n >= PF_SSH_KEYS_MAX) {
		key_free_one(k);
		return pf_error_set(-E2BIG, LOC_FMT ": more than %u keys", origin, lineno,
				    PF_SSH_KEYS_MAX);
	}
	nk = realloc(l->keys, (l->n + 1) * sizeof(*l->keys));
	if (!nk) {
		key_free_one(k);
		return -ENOMEM;
	}
	l->keys = nk;
	l->keys[l->n++] = *k;
	return 0;
}

int pf_ssh_keys_parse(const char *text, size_t len, const char *origin, PfSshKey **ret,
		      size_t *ret_n)
{
	KeyList l = {};
	size_t pos = 0;
	unsigned lineno = 0, pline;
	const char *kind = NULL;
	int r = 0;

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

	while (pos < len && r >= 0) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		PfSshKey k;

		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > 0 && line[n - 1] == '\r')
			n--;
		r = key_line_check(origin, lineno, &line, &n);
		if (r < 0 || n == 0 || line[0] == '#')
			continue;
		r = key_line_parse(line, n, origin, lineno, &k);
		if (r >= 0)
			r = key_list_add(&l, &k, origin, lineno);
	}
	if (r < 0) {
		pf_ssh_keys_free(l.keys, l.n);
		return r;
	}
	if (l.n == 0)
		return pf_error_set(-EINVAL, "%s: no public key in it", origin);
	*ret = l.keys;
	*ret_n = l.n;
	return 0;
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

bool pf_ssh_key_text_like(const char *v)
{
	size_t tn = strcspn(v, " \t");

	return key_type_find(v, tn) >= 0 || strchr(v, '\n') || startswith(v, "-----") ||
	       startswith(v, "---- ") || startswith(v, "PuTTY-User-Key-File");
}

bool pf_ssh_key_b64_like(const char *v)
{
	size_t n = strlen(v);

	if (n < 40 || v[0] == '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if (b64_value(v[i]) < 0 && v[i] != '=')
			return false;
	return true;
}
