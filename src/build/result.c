/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build/result.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/strutil.h"

/* A known_hosts file is read whole; one of 4 MiB holds some 30000 keys. */
#define KNOWN_HOSTS_MAX (4u * 1024 * 1024)

/* *dst a copy of src (NULL stays NULL). */
static int dup_str(char **dst, const char *src)
{
	*dst = pf_strdup_or_null(src);
	return src && !*dst ? -ENOMEM : 0;
}

void pf_node_result_forget_keys(PfNodeResult *r)
{
	for (size_t i = 0; i < r->n_host_keys; i++) {
		free(r->host_keys[i]);
		free(r->fingerprints[i]);
	}
	free(r->host_keys);
	free(r->fingerprints);
	r->host_keys = r->fingerprints = NULL;
	r->n_host_keys = 0;
}

void pf_node_result_forget(PfNodeResult *r)
{
	free(r->address);
	free(r->fqdn);
	free(r->user);
	free(r->instance_id);
	free(r->group);
	r->address = r->fqdn = r->user = r->instance_id = r->group = NULL;
	pf_node_result_forget_keys(r);
}

void pf_node_result_done(PfNodeResult *r)
{
	free(r->error);
	free(r->artifact);
	free(r->bmap);
	r->error = r->artifact = r->bmap = NULL;
	pf_node_result_forget(r);
}

static int describe_keys(PfNodeResult *r, const PfNodeBuild *b)
{
	r->host_keys = calloc(b->n_host_keys + 1, sizeof(char *));
	r->fingerprints = calloc(b->n_host_keys + 1, sizeof(char *));
	if (!r->host_keys || !r->fingerprints)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_host_keys; i++) {
		const char *pub = b->host_keys[i].public_line;

		r->host_keys[i] = strndup(pub, strcspn(pub, "\n"));
		r->fingerprints[i] = strdup(b->host_keys[i].fingerprint);
		/* counted before the check: pf_node_result_forget_keys() frees either */
		r->n_host_keys++;
		if (!r->host_keys[i] || !r->fingerprints[i])
			return -ENOMEM;
	}
	return 0;
}

int pf_node_result_describe(PfNodeResult *r, const PfNodeBuild *b, const char *group)
{
	char a[16];
	int e = 0;

	pf_node_result_forget(r);
	if (b->cfg.static_ip) {
		pf_ipv4_format(b->cfg.ip, a);
		if (asprintf(&r->address, "%s/%u", a, b->cfg.prefix) < 0)
			return -ENOMEM;
	}
	if (b->cfg.domain && asprintf(&r->fqdn, "%s.%s", b->cfg.hostname, b->cfg.domain) < 0)
		return -ENOMEM;
	e |= dup_str(&r->user, b->plan->user);
	e |= dup_str(&r->instance_id, b->plan->instance_id);
	e |= dup_str(&r->group, group);
	if (e < 0)
		return -ENOMEM;
	return describe_keys(r, b);
}

/* An instance-id as piflash makes them ("iid-piflash-worker3-0123abcd..."), or as an image
 * may carry them: [A-Za-z0-9._-], at most 128 bytes. */
static int instance_id_check(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128 ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789._-") != n)
		return pf_error_set(-EINVAL,
				    "instance-id is not 1 to 128 of a-z, A-Z, 0-9, '.', '_', '-'");
	return 0;
}

/* One public key line ("ssh-ed25519 AAAA... comment") and its "SHA256:" fingerprint. */
static int host_key_check(const char *pub, const char *fingerprint)
{
	const char *fp = startswith(fingerprint, "SHA256:");
	PfSshKey *keys = NULL;
	size_t n = 0;
	int r;

	if (strpbrk(pub, "\r\n") || !pf_escape_clean(pub))
		return pf_error_set(-EINVAL, "host key has a control character");
	r = pf_ssh_keys_parse(pub, strlen(pub), "host key", &keys, &n);
	pf_ssh_keys_free(keys, n);
	if (r < 0)
		return r;
	if (n != 1)
		return pf_error_set(-EINVAL, "host key: not one key");
	if (!fp || strlen(fp) != 43 ||
	    strspn(fp, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/") != 43)
		return pf_error_set(-EINVAL, "host key fingerprint is not SHA256: and 43 base64 "
					     "characters");
	return 0;
}

int pf_node_result_check(const PfNodeResult *j)
{
	uint32_t a;
	unsigned prefix;
	int r = 0;

	if (j->user && (r = pf_username_validate(j->user)) < 0)
		return pf_error_prefix(r, "user '%s' is refused", j->user);
	if (j->address && (r = pf_ipv4_parse_cidr(j->address, &a, &prefix)) < 0)
		return pf_error_prefix(r, "address");
	if (j->fqdn) {
		const char *dot = startswith(j->fqdn, j->hostname);

		if (!dot || *dot != '.')
			return pf_error_set(-EINVAL, "fqdn is not under the hostname '%s'",
					    j->hostname);
		if ((r = pf_domain_validate(dot + 1)) < 0)
			return pf_error_prefix(r, "fqdn");
	}
	if (j->instance_id && (r = instance_id_check(j->instance_id)) < 0)
		return r;
	for (size_t i = 0; i < j->n_host_keys; i++)
		if ((r = host_key_check(j->host_keys[i], j->fingerprints[i])) < 0)
			return r;
	return 0;
}

bool pf_node_result_listed(const PfNodeResult *r)
{
	return r->status == PF_NODE_OK || r->status == PF_NODE_REUSED || r->status == PF_NODE_KEPT;
}

const char *pf_node_status_name(PfNodeStatus s)
{
	switch (s) {
	case PF_NODE_OK:
		return "ok";
	case PF_NODE_REUSED:
		return "up-to-date";
	case PF_NODE_FAILED:
		return "failed";
	case PF_NODE_KEPT:
		return "kept";
	case PF_NODE_PENDING:
	case PF_NODE_UNSELECTED:
	case _PF_NODE_STATUS_MAX:
		break;
	}
	return "not-built";
}

/* "10.0.0.13" of "10.0.0.13/24". */
static void addr_only(const PfNodeResult *r, char out[16])
{
	size_t n = strcspn(r->address, "/");

	memcpy(out, r->address, MIN(n, (size_t)15));
	out[MIN(n, (size_t)15)] = 0;
}

/* The names a node answers to: "worker3.example.com,worker3,10.0.0.13". */
static void names_of(const PfNodeResult *r, char *out, size_t size)
{
	char a[16];
	size_t o = 0;

	out[0] = 0;
	if (r->fqdn)
		o += (size_t)snprintf(out + o, size - MIN(o, size), "%s,", r->fqdn);
	o += (size_t)snprintf(out + o, size - MIN(o, size), "%s", r->hostname);
	if (r->address) {
		addr_only(r, a);
		snprintf(out + o, size - MIN(o, size), ",%s", a);
	}
}

void pf_known_hosts_lines(FILE *f, const PfNodeResult *r)
{
	char names[512];

	names_of(r, names, sizeof(names));
	for (size_t k = 0; k < r->n_host_keys; k++) {
		const char *pub = r->host_keys[k];
		size_t l = strcspn(pub, " ");

		/* type and key, without the comment */
		l += 1 + strcspn(pub + l + 1, " ");
		fprintf(f, "%s %.*s\n", names, (int)l, pub);
	}
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

/* The lines of old that name none of names: comments, markers (@cert-authority, @revoked)
 * and hashed names stay. */
static void known_hosts_keep(FILE *f, const char *old, const char *names)
{
	for (const char *line = old; *line;) {
		const char *nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);
		size_t host_len = strcspn(line, " \t");

		if (!(l && line[0] != '#' && line[0] != '@' && line[0] != '|' &&
		      names_any(line, MIN(host_len, l), names)))
			fprintf(f, "%.*s\n", (int)l, line);
		line += l + (nl ? 1 : 0);
	}
}

int pf_known_hosts_update(const char *path, const PfNodeResult *res)
{
	_cleanup_(freep) char *old = NULL, *tmp = NULL;
	_cleanup_(fclose_safep) FILE *f = NULL;
	char names[512];
	size_t len = 0;
	int fd, r;

	names_of(res, names, sizeof(names));
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
	known_hosts_keep(f, old, names);
	pf_known_hosts_lines(f, res);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0 || rename(tmp, path) < 0) {
		r = pf_error_set(-errno, "'%s': %m", path);
		unlink(tmp);
		return r;
	}
	pf_fsync_dir_of(path);
	return 0;
}

int pf_known_hosts_add(const char *path, const PfNodeBuild *b)
{
	_cleanup_(pf_node_result_done) PfNodeResult r = { .hostname = b->cfg.hostname };
	int e = pf_node_result_describe(&r, b, NULL);

	return e < 0 ? e : pf_known_hosts_update(path, &r);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const char *const *)a)[0], ((const char *const *)b)[0]);
}

int pf_listing_sums(FILE *f, const PfNodeResult *results, size_t n_results)
{
	_cleanup_(freep) const char **lines = calloc(2 * n_results + 1, 2 * sizeof(char *));
	size_t n = 0;

	if (!lines)
		return -ENOMEM;
	for (size_t i = 0; i < n_results; i++) {
		const PfNodeResult *j = &results[i];

		if (!pf_node_result_listed(j))
			continue;
		lines[2 * n] = j->artifact;
		lines[2 * n++ + 1] = j->sha256;
		if (j->bmap) {
			lines[2 * n] = j->bmap;
			lines[2 * n++ + 1] = j->bmap_sha256;
		}
	}
	/* "HASH  NAME" in name order: `sha256sum -c` reads it. */
	qsort(lines, n, 2 * sizeof(char *), cmp_name);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s  %s\n", lines[2 * i + 1], lines[2 * i]);
	return 0;
}

void pf_listing_hosts(FILE *f, const PfNodeResult *results, size_t n, const char *from)
{
	_cleanup_(freep) char *esc = pf_escape(from);

	/* A comment is one line: the path is escaped like any shown string. */
	fprintf(f, "# Written by piflash batch from %s\n", esc ?: "the inventory");
	for (size_t i = 0; i < n; i++) {
		const PfNodeResult *j = &results[i];
		char a[16];

		if (!pf_node_result_listed(j))
			continue;
		if (j->address) {
			addr_only(j, a);
			fprintf(f, "%s\t%s%s%s\n", a, j->fqdn ?: "", j->fqdn ? " " : "",
				j->hostname);
		} else
			fprintf(f, "# %s: DHCP, no fixed address\n", j->hostname);
	}
}

void pf_listing_known_hosts(FILE *f, const PfNodeResult *results, size_t n, const char *from)
{
	_cleanup_(freep) char *esc = pf_escape(from);

	fprintf(f, "# Written by piflash batch from %s: the host keys on the cards\n",
		esc ?: "the inventory");
	for (size_t i = 0; i < n; i++)
		if (pf_node_result_listed(&results[i]))
			pf_known_hosts_lines(f, &results[i]);
}

/* Does j belong to Ansible group g ("ungrouped": no group column value)? */
static bool in_group(const PfNodeResult *j, const char *g)
{
	if (!j->group)
		return streq(g, "ungrouped");
	for (const char *p = j->group; *p;) {
		size_t n = strcspn(p, " ,\t");

		if (n == strlen(g) && strncmp(p, g, n) == 0)
			return true;
		p += n;
		p += strspn(p, " ,\t");
	}
	return false;
}

static int add_group(char ***groups, size_t *n, const char *g, size_t len)
{
	char **ng;

	for (size_t i = 0; i < *n; i++)
		if (strlen((*groups)[i]) == len && strncmp((*groups)[i], g, len) == 0)
			return 0;
	ng = reallocarray(*groups, *n + 1, sizeof(char *));
	if (!ng)
		return -ENOMEM;
	*groups = ng;
	ng[*n] = strndup(g, len);
	if (!ng[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* The groups of the listed nodes, in order of first appearance. */
static int groups_of(const PfNodeResult *results, size_t n, char ***groups, size_t *n_groups)
{
	int r = 0;

	for (size_t i = 0; i < n && r >= 0; i++) {
		const PfNodeResult *j = &results[i];

		if (!pf_node_result_listed(j))
			continue;
		if (!j->group)
			r = add_group(groups, n_groups, "ungrouped", strlen("ungrouped"));
		for (const char *p = j->group; p && *p && r >= 0;) {
			size_t l = strcspn(p, " ,\t");

			r = add_group(groups, n_groups, p, l);
			p += l;
			p += strspn(p, " ,\t");
		}
	}
	return r;
}

/*
 * Ansible: a section per group in order of first appearance, nodes without a group under an
 * explicit [ungrouped], so that the files of several shards can simply be concatenated.
 */
int pf_listing_ansible(FILE *f, const PfNodeResult *results, size_t n, const char *from)
{
	_cleanup_(freep) char *esc = pf_escape(from);
	char **groups = NULL;
	size_t n_groups = 0;
	int r;

	r = groups_of(results, n, &groups, &n_groups);
	fprintf(f, "# Written by piflash batch from %s\n", esc ?: "the inventory");
	for (size_t g = 0; g < n_groups && r >= 0; g++) {
		fprintf(f, "\n[%s]\n", groups[g]);
		for (size_t i = 0; i < n; i++) {
			const PfNodeResult *j = &results[i];
			char a[16];

			if (!pf_node_result_listed(j) || !in_group(j, groups[g]))
				continue;
			if (j->address)
				addr_only(j, a);
			fprintf(f, "%s ansible_host=%s ansible_user=%s\n", j->hostname,
				j->address ? a : j->fqdn ?: j->hostname, j->user);
		}
	}
	for (size_t g = 0; g < n_groups; g++)
		free(groups[g]);
	free(groups);
	return r;
}
