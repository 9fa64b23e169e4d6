/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash batch --inventory cluster.csv IMAGE --out-dir DIR: one image per node of the
 * inventory, as build artifacts, and what the operator needs next to them: SHA256SUMS,
 * report.json, inventory.ini (Ansible), hosts and known_hosts.
 *
 * The image is opened (and decompressed) once; each node is an overlay of its own on that
 * base, prepared and written by one of -j worker threads. A node that fails (a bad row, a bad
 * key, a full disk) is reported and the others go on. report.json is also the record that
 * lets a re-run skip the nodes whose artifact is up to date: each entry holds a hash of the
 * inputs that shaped the artifact, and the artifact's size and modification time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cluster.h"
#include "cmd/cmd.h"
#include "cmd/report.h"
#include "config.h"
#include "disk/fetch.h"
#include "flash/artifact.h"
#include "flash/ranges.h"
#include "util/error.h"
#include "util/escape.h"
#include "util/fileio.h"
#include "util/strutil.h"

#define JOBS_MAX 64u
/* A file that shapes every node (a template, --user-data) is hashed up to this size. */
#define INPUT_FILE_MAX (4u * 1024 * 1024)
/* report.json of an earlier run is read up to this size: some 10000 nodes. */
#define REPORT_MAX (32u * 1024 * 1024)
#define LOCK_NAME ".piflash-batch.lock"

typedef enum JobStatus {
	JOB_PENDING,
	JOB_OK,
	JOB_REUSED,
	JOB_FAILED,
	JOB_UNSELECTED, /* not in this run's --only/--exclude/--shard selection */
	JOB_KEPT,	/* not selected, but its artifact from an earlier run is intact */
} JobStatus;

typedef struct Job {
	const PfInventoryRow *row;
	const char *hostname;
	JobStatus status;
	char *error;
	char inputs[65]; /* hash of what shapes the artifact */
	/* What the report says about a node built or reused: */
	char *artifact; /* file name in the out dir */
	char *bmap;	/* file name, or NULL */
	char sha256[65];
	char bmap_sha256[65];
	uint64_t file_bytes, image_bytes;
	int64_t mtime_ns;
	char *address; /* "10.0.0.11/24", NULL for DHCP */
	char *fqdn;
	char *user;
	char *instance_id;
	char *group;
	char **host_keys; /* public lines, "ssh-ed25519 AAAA... root@worker3" */
	char **fingerprints;
	size_t n_host_keys;
	double seconds;
} Job;

typedef struct Batch {
	Image base;
	PfInventory *inv;
	const PfFlavorInfo *flavor;
	NodeOptions *no;
	const char *out_dir;
	/* The out dir, opened once: every file of the run is a name relative to it, checked by
	 * out_guard(), never a path built from a string. */
	int dir_fd;
	/* The input image and the file it is read from (its cache file, or itself when raw):
	 * nothing the run writes or removes may be either. */
	struct stat input_st, source_st;
	PfArtifactFormat format;
	bool bmap, force;
	int64_t now;
	char common[65];       /* hash of the inputs every node shares */
	json_object *previous; /* nodes of the last report.json, by hostname */
	Job *jobs;	       /* one per inventory row, in order */
	size_t n_jobs;
	size_t n_selected;
	atomic_size_t next;
	atomic_size_t done;
	unsigned threads; /* compressor threads per job */
	pthread_mutex_t lock;
} Batch;

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Node options batch leaves out of its table (and so of its --help), each with what to do
 * instead: they name one node, and batch makes many.
 */
static const char *const not_for_batch[] = { "node", "ip", "known-hosts", NULL };

static int not_for_batch_error(const char *arg)
{
	if (streq(arg, "--node") || startswith(arg, "--node="))
		return usage_error("batch",
				   "unknown option '--node' (one node: choose nodes with --only)");
	if (streq(arg, "--ip") || startswith(arg, "--ip="))
		return usage_error("batch", "unknown option '--ip' (it would give every node the "
					    "same address: put the addresses in the inventory's "
					    "ip column)");
	if (streq(arg, "--known-hosts") || startswith(arg, "--known-hosts="))
		return usage_error("batch", "unknown option '--known-hosts' (batch writes "
					    "DIR/known_hosts itself)");
	return usage_error("batch", "unknown option '%s'", arg);
}

static void help(const struct option *table)
{
	printf("Usage: piflash batch --inventory FILE.csv --out-dir DIR [OPTIONS] IMAGE\n"
	       "\n"
	       "Write one prepared image per node of the inventory to DIR, with SHA256SUMS,\n"
	       "report.json, inventory.ini (Ansible), hosts and, with --host-keys,\n"
	       "known_hosts. A node that fails does not stop the others (exit 1 at the end).\n"
	       "Re-running skips nodes whose artifact is up to date.\n"
	       "\n"
	       "  -h --help              Show this help\n"
	       "     --out-dir DIR       Where the artifacts go (created if missing)\n"
	       "     --format FMT        img (sparse, default), img.zst, img.xz or img.gz\n"
	       "     --bmap              Also write HOSTNAME.img.bmap for bmaptool\n"
	       "  -j --jobs N            Nodes built at once (default: the number of CPUs)\n"
	       "     --only A,B          Only these nodes\n"
	       "     --exclude A,B       Not these nodes\n"
	       "     --shard K/N         The K-th of N stable slices of the inventory (CI\n"
	       "                         matrix); the slices together are the whole run\n"
	       "     --force             Rebuild nodes that are up to date\n"
	       "     --no-cache          Decompress to a temporary file instead of the cache\n"
	       "     --sha256 HEX        Fail unless the image (file, download) has this SHA-256\n"
	       "  -q --quiet             Print nothing but errors and the summary\n"
	       "\n"
	       "The node options below override every row (--node, --ip and --known-hosts\n"
	       "are not taken: see --only, the inventory's ip column and DIR/known_hosts).\n"
	       "\n");
	node_options_help_print(table);
}

/* ---- hashing the inputs ------------------------------------------------------------------ */

typedef struct Hash {
	EVP_MD_CTX *ctx;
} Hash;

static int hash_begin(Hash *h)
{
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1)
		return -ENOMEM;
	return 0;
}

/* A labelled field: "label=value\n", with NULL distinct from "". */
static void hash_field(Hash *h, const char *label, const char *value)
{
	EVP_DigestUpdate(h->ctx, label, strlen(label) + 1);
	if (value)
		EVP_DigestUpdate(h->ctx, value, strlen(value) + 1);
	else
		EVP_DigestUpdate(h->ctx, "\377", 1);
}

static void hash_fieldf(Hash *h, const char *label, const char *fmt, ...) _printf_(3, 4);
static void hash_fieldf(Hash *h, const char *label, const char *fmt, ...)
{
	_cleanup_(freep) char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	hash_field(h, label, n < 0 ? NULL : s);
}

static void hash_end(Hash *h, char out[65])
{
	unsigned char md[32];
	unsigned len = 0;

	if (EVP_DigestFinal_ex(h->ctx, md, &len) != 1)
		memset(md, 0, sizeof(md));
	for (size_t i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

/* A file's content, up to INPUT_FILE_MAX bytes; a missing file hashes as missing. */
static void hash_file(Hash *h, const char *label, int dirfd, const char *path)
{
	_cleanup_(closep) int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	unsigned char buf[65536];
	size_t total = 0;
	ssize_t n;

	hash_field(h, label, path);
	if (fd < 0) {
		hash_field(h, "missing", path);
		return;
	}
	while (total < INPUT_FILE_MAX && (n = read(fd, buf, sizeof(buf))) > 0) {
		EVP_DigestUpdate(h->ctx, buf, (size_t)n);
		total += (size_t)n;
	}
}

static DIR *closedir_safe(DIR *d)
{
	if (d)
		closedir(d);
	return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir_safe);

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of a template directory, in name order. */
static void hash_dir(Hash *h, const char *dir)
{
	_cleanup_(closedir_safep) DIR *d = opendir(dir);
	_cleanup_(freep) char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	hash_field(h, "template-dir", dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		char **nn;

		if (de->d_name[0] == '.')
			continue;
		nn = realloc(names, (n + 1) * sizeof(char *));
		if (!nn)
			break;
		names = nn;
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	qsort(names, n, sizeof(char *), cmp_strp);
	for (size_t i = 0; i < n; i++) {
		hash_file(h, "template", dirfd(d), names[i]);
		free(names[i]);
	}
}

/* What shapes every artifact alike: piflash, the image, the options. */
static int hash_common(Batch *b, const char *image_path)
{
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	struct stat st;
	Hash h;

	if (image_path && stat(image_path, &st) < 0)
		return pf_error_set(-errno, "'%s': %m", image_path);
	if (hash_begin(&h) < 0)
		return -ENOMEM;
	hash_field(&h, "piflash", PACKAGE_VERSION);
	/* The image as a file: a new download or an edit rebuilds everything. Standard input
	 * has no file: its content's SHA-256 stands for it. */
	if (image_path)
		hash_fieldf(&h, "image", "%" PRIu64 " %" PRId64 ".%09ld", (uint64_t)st.st_size,
			    (int64_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	else
		hash_field(&h, "image-sha256", pf_source_sha256(b->base.src));
	hash_field(&h, "flavor", pf_flavor_name(b->flavor->flavor));
	hash_field(&h, "format", pf_artifact_suffix(b->format));
	hash_fieldf(&h, "bmap", "%d", b->bmap);
	/* Without SOURCE_DATE_EPOCH the file times are the build's: not an input worth a
	 * rebuild. */
	hash_field(&h, "source-date-epoch", sde && *sde ? sde : NULL);
	hash_field(&h, "instance-id-seed", b->no->instance_id_seed);
	hash_fieldf(&h, "host-keys", "%d", b->no->host_keys);
	hash_field(&h, "flavor-forced", b->no->flavor);
	hash_field(&h, "network-forced", b->no->network);
	if (b->no->template_dir)
		hash_dir(&h, b->no->template_dir);
	if (b->no->user_data)
		hash_file(&h, "user-data", AT_FDCWD, b->no->user_data);
	hash_end(&h, b->common);
	return 0;
}

/* What shapes one node's artifact: the common inputs and its settings. */
static void hash_node(const Batch *b, const PfNodeConfig *c, char out[65])
{
	char a[16];
	Hash h;

	if (hash_begin(&h) < 0) {
		memset(out, '0', 64);
		out[64] = 0;
		return;
	}
	hash_field(&h, "common", b->common);
	hash_field(&h, "hostname", c->hostname);
	hash_field(&h, "domain", c->domain);
	for (size_t i = 0; i < c->n_keys; i++) {
		_cleanup_(freep) char *line = pf_ssh_key_format(&c->keys[i]);

		hash_field(&h, "key", line);
	}
	hash_field(&h, "user", c->user);
	hash_field(&h, "password-hash", c->password_hash);
	hash_fieldf(&h, "ssh-password", "%d", c->ssh_password);
	if (c->static_ip) {
		pf_ipv4_format(c->ip, a);
		hash_fieldf(&h, "ip", "%s/%u", a, c->prefix);
	}
	if (c->has_gateway) {
		pf_ipv4_format(c->gateway, a);
		hash_field(&h, "gateway", a);
	}
	for (size_t i = 0; i < c->n_dns; i++) {
		pf_ipv4_format(c->dns[i], a);
		hash_field(&h, "dns", a);
	}
	hash_field(&h, "iface", c->iface);
	hash_field(&h, "wifi-ssid", c->wifi_ssid);
	hash_field(&h, "wifi-psk", c->wifi_psk);
	hash_field(&h, "wifi-country", c->wifi_country);
	hash_field(&h, "timezone", c->timezone);
	hash_field(&h, "locale", c->locale);
	hash_field(&h, "board", c->board);
	for (size_t i = 0; i < c->n_vars; i++)
		hash_fieldf(&h, "var", "%s=%s", c->vars[i].key, c->vars[i].value);
	hash_end(&h, out);
}

/* ---- the out dir ------------------------------------------------------------------------- */

/* One name in the out dir: not empty, no '/', not "." or "..". */
/*
 * A node's file name: hostname and suffix (".img.zst", ".img.bmap"). Only a valid RFC 1123
 * label makes one, so no row of a CSV can name a path ("../victim") or a dot file. Returns 0
 * or -EINVAL with the hostname's detail.
 */
static int out_name(const char *hostname, const char *suffix, char **ret)
{
	int r = pf_hostname_validate(hostname);

	if (r < 0)
		return r;
	return asprintf(ret, "%s%s", hostname, suffix) < 0 ? -ENOMEM : 0;
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/*
 * May the run write or remove name in the out dir? Not when it is, or links to, the input
 * image or the file it is read from (the main job refuses its input as its target alike):
 * a rename would drop the input's name, an unlink the input. Returns 0 or -EINVAL/-EPERM
 * with a detail.
 */
static int out_guard(const Batch *b, const char *name)
{
	struct stat st;

	if (!out_name_ok(name))
		return pf_error_set(-EINVAL, "'%s' is not a file name in '%s'", name, b->out_dir);
	/* Following a link: a link to the input counts as the input. Nothing there: fine. */
	if (fstatat(b->dir_fd, name, &st, 0) < 0)
		return 0;
	if (same_inode(&st, &b->input_st))
		return pf_error_set(-EPERM,
				    "'%s/%s' is the input image; piflash batch never writes or "
				    "removes its input",
				    b->out_dir, name);
	if (same_inode(&st, &b->source_st))
		return pf_error_set(-EPERM,
				    "'%s/%s' is the input image's cache file; piflash batch never "
				    "writes or removes it",
				    b->out_dir, name);
	return 0;
}

/* Removes hostname+suffix from the out dir if it is there: an artifact that no longer is
 * one. Never the input, never anything named by an invalid hostname. */
static void remove_stale(const Batch *b, const char *hostname, const char *suffix)
{
	_cleanup_(freep) char *name = NULL;
	int r;

	if (out_name(hostname, suffix, &name) < 0) {
		pf_error_clear();
		return;
	}
	r = out_guard(b, name);
	if (r < 0) {
		log_error_errno(r, "not removing '%s/%s'", b->out_dir, name);
		return;
	}
	if (unlinkat(b->dir_fd, name, 0) == 0)
		log_info("Removed %s/%s: it is from an earlier run, not from this one", b->out_dir,
			 name);
}

/* ---- one node ---------------------------------------------------------------------------- */

/* A failed node leaves no artifact: an older one would be taken for this run's. A row whose
 * hostname is not valid has no file names at all (out_name() refuses it): nothing of it is
 * removed. */
static void job_fail(Batch *b, Job *j, int r, double start)
{
	j->status = JOB_FAILED;
	j->error = strdup(pf_error_message(r));
	j->seconds = now_seconds() - start;
	log_error("%s: %s", j->hostname, j->error ?: "failed");
	remove_stale(b, j->hostname, pf_artifact_suffix(b->format));
	remove_stale(b, j->hostname, ".img.bmap");
}

static int dup_str(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -ENOMEM;
}

static void job_forget(Job *j);

static void job_forget_keys(Job *j)
{
	for (size_t i = 0; i < j->n_host_keys; i++) {
		free(j->host_keys[i]);
		free(j->fingerprints[i]);
	}
	free(j->host_keys);
	free(j->fingerprints);
	j->host_keys = j->fingerprints = NULL;
	j->n_host_keys = 0;
}

/* The node's Ansible groups, from the inventory as it is now; NULL for none. */
static const char *row_group(const Batch *b, const Job *j)
{
	const char *group = pf_inventory_get(b->inv, j->row, "group");

	return group && *group ? group : NULL;
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

/*
 * Everything of j that goes into inventory.ini, hosts and known_hosts — line formats that
 * have no escaping — is what it claims to be: a user name by the node's own rules, an
 * address, a domain name, a key. A string from an image or from an earlier report.json that
 * is not (a user name with a newline and an [all:vars] section after it) is refused here, as
 * the per-node result becomes a listing. Returns 0 or -EINVAL with a detail naming the field.
 */
static int job_check_listing(const Job *j)
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

/* What the report lists about a node, from its settings and plan. */
static int job_describe(Batch *b, Job *j, const NodeBuild *nb)
{
	const char *group = row_group(b, j);
	char a[16];
	int r = 0;

	/* A record read by job_reuse() may have filled these already: this run's win. */
	job_forget(j);
	if (nb->cfg.static_ip) {
		pf_ipv4_format(nb->cfg.ip, a);
		if (asprintf(&j->address, "%s/%u", a, nb->cfg.prefix) < 0)
			return -ENOMEM;
	}
	if (nb->cfg.domain && asprintf(&j->fqdn, "%s.%s", nb->cfg.hostname, nb->cfg.domain) < 0)
		return -ENOMEM;
	r |= dup_str(&j->user, nb->plan->user);
	r |= dup_str(&j->instance_id, nb->plan->instance_id);
	r |= dup_str(&j->group, group);
	if (r < 0)
		return -ENOMEM;
	j->host_keys = calloc(nb->n_host_keys + 1, sizeof(char *));
	j->fingerprints = calloc(nb->n_host_keys + 1, sizeof(char *));
	if (!j->host_keys || !j->fingerprints)
		return -ENOMEM;
	for (size_t i = 0; i < nb->n_host_keys; i++) {
		const char *pub = nb->host_keys[i].public_line;

		j->host_keys[i] = strndup(pub, strcspn(pub, "\n"));
		j->fingerprints[i] = strdup(nb->host_keys[i].fingerprint);
		if (!j->host_keys[i] || !j->fingerprints[i])
			return -ENOMEM;
		j->n_host_keys++;
	}
	/* The user arrives from the plan, which may have taken it from the image (cloud.cfg's
	 * default_user, /etc/passwd): the node fails rather than list it. */
	r = job_check_listing(j);
	if (r < 0)
		return pf_error_prefix(r, "'%s': node '%s' cannot be listed", b->base.path,
				       j->hostname);
	return 0;
}

static int file_sha256(int dirfd, const char *name, char out[65])
{
	_cleanup_(closep) int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unsigned char buf[65536];
	ssize_t n;
	Hash h;

	if (fd < 0)
		return -errno;
	if (hash_begin(&h) < 0)
		return -ENOMEM;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(h.ctx, buf, (size_t)n);
	hash_end(&h, out);
	return n < 0 ? -errno : 0;
}

static int set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = NULL;
	return dup_str(dst, src);
}

/* A string field of a record that report_record_check() passed; NULL when absent or null. */
static const char *rec_str(json_object *rec, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(rec, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t file_mtime_ns(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

/* ---- report.json of an earlier run ------------------------------------------------------- */

/*
 * The nodes of the last report.json in the out dir that have an artifact, by hostname. A
 * file that cannot be read as a report rebuilds every node; a record that is not right
 * rebuilds its node; both are said, naming the file and what is wrong.
 */
static json_object *read_previous(const Batch *b)
{
	_cleanup_(freep) char *text = NULL;
	json_object *root, *nodes, *byname;
	enum json_tokener_error jerr;
	size_t len = 0;
	int r;

	r = pf_read_file_at(b->dir_fd, "report.json", REPORT_MAX, &text, &len);
	if (r == -ENOENT)
		return NULL;
	if (r < 0) {
		log_error_errno(r,
				"'%s/report.json': cannot read the last run's report, so every "
				"node is rebuilt",
				b->out_dir);
		return NULL;
	}
	root = json_tokener_parse_verbose(text, &jerr);
	if (!root || !json_object_object_get_ex(root, "nodes", &nodes) ||
	    !json_object_is_type(nodes, json_type_array)) {
		log_error("'%s/report.json': %s, so every node is rebuilt", b->out_dir,
			  root ? "no 'nodes' array" : json_tokener_error_desc(jerr));
		json_object_put(root);
		return NULL;
	}
	byname = json_object_new_object();
	for (size_t i = 0; byname && i < json_object_array_length(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i);
		const char *host = NULL, *status = NULL;

		r = report_record_check(n, &host, &status);
		if (r < 0 && host)
			log_error_errno(r, "'%s/report.json': node '%s' is rebuilt", b->out_dir,
					host);
		else if (r < 0)
			log_error_errno(r, "'%s/report.json': node %zu is not read", b->out_dir,
					i + 1);
		if (r < 0)
			continue;
		if (streq(status, "ok") || streq(status, "up-to-date") || streq(status, "kept"))
			json_object_object_add(byname, host, json_object_get(n));
	}
	json_object_put(root);
	return byname;
}

/*
 * Fills j from its node's previous record (rec, checked by report_record_check()) when the record
 * still describes the files in the out dir: the artifact with the recorded size and
 * modification time, the bmap if any.
 */
static bool job_from_record(Batch *b, Job *j, json_object *rec)
{
	const char *artifact = rec_str(rec, "artifact"), *sha = rec_str(rec, "sha256");
	const char *mtime = rec_str(rec, "mtime_ns"), *bmap = rec_str(rec, "bmap");
	const char *inputs = rec_str(rec, "inputs");
	json_object *v, *keys;
	struct stat st;
	size_t n_keys;
	int r;

	if (fstatat(b->dir_fd, artifact, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return false;
	if (!json_object_object_get_ex(rec, "size", &v) ||
	    (uint64_t)json_object_get_int64(v) != (uint64_t)st.st_size)
		return false;
	if (strtoll(mtime, NULL, 10) != file_mtime_ns(&st))
		return false;
	if (bmap && file_sha256(b->dir_fd, bmap, j->bmap_sha256) < 0)
		return false;
	if (set_str(&j->artifact, artifact) < 0 || set_str(&j->bmap, bmap) < 0 ||
	    set_str(&j->instance_id, rec_str(rec, "instance_id")) < 0 ||
	    set_str(&j->address, rec_str(rec, "address")) < 0 ||
	    set_str(&j->fqdn, rec_str(rec, "fqdn")) < 0 ||
	    set_str(&j->group, row_group(b, j)) < 0 || set_str(&j->user, rec_str(rec, "user")) < 0)
		return false;
	memcpy(j->sha256, sha, 65);
	snprintf(j->inputs, sizeof(j->inputs), "%s", inputs ?: "");
	j->file_bytes = (uint64_t)st.st_size;
	j->mtime_ns = file_mtime_ns(&st);
	if (json_object_object_get_ex(rec, "image_size", &v))
		j->image_bytes = (uint64_t)json_object_get_int64(v);

	/* The host keys are those on the artifact, not this run's. */
	job_forget_keys(j);
	if (json_object_object_get_ex(rec, "host_keys", &keys) &&
	    json_object_is_type(keys, json_type_array)) {
		n_keys = json_object_array_length(keys);
		j->host_keys = calloc(n_keys + 1, sizeof(char *));
		j->fingerprints = calloc(n_keys + 1, sizeof(char *));
		if (!j->host_keys || !j->fingerprints)
			return false;
		for (size_t i = 0; i < n_keys; i++) {
			json_object *k = json_object_array_get_idx(keys, i);

			j->host_keys[i] = strdup(rec_str(k, "public"));
			j->fingerprints[i] = strdup(rec_str(k, "fingerprint"));
			/* counted before the check: job_forget_keys() frees either */
			j->n_host_keys++;
			if (!j->host_keys[i] || !j->fingerprints[i])
				return false;
		}
	}
	/* What goes into hosts, known_hosts and inventory.ini is what it says it is. */
	r = job_check_listing(j);
	if (r < 0) {
		log_error_errno(r, "'%s/report.json': node '%s' is %s", b->out_dir, j->hostname,
				j->status == JOB_UNSELECTED ? "not kept" : "rebuilt");
		return false;
	}
	return true;
}

/* Is the previous record of j's node, for the same inputs, still true of the files? */
static bool job_reuse(Batch *b, Job *j)
{
	json_object *rec;
	const char *inputs, *bmap, *artifact;

	if (b->force || !b->previous || !json_object_object_get_ex(b->previous, j->hostname, &rec))
		return false;
	inputs = rec_str(rec, "inputs");
	artifact = rec_str(rec, "artifact");
	bmap = rec_str(rec, "bmap");
	if (!inputs || !streq(inputs, j->inputs) || !streq(artifact, j->artifact) ||
	    !!bmap != b->bmap)
		return false;
	return job_from_record(b, j, rec);
}

static int job_write(Batch *b, Job *j, NodeImage *ni)
{
	_cleanup_(pf_ranges_done) PfRanges ranges = { 0 };
	PfArtifactOptions ao = { .format = b->format,
				 .threads = b->threads,
				 .cancel = &interrupted };
	PfArtifactResult res = { 0 };
	struct stat st;
	int r;

	r = pf_ranges_compute(ni->img.ov, pf_source_fd(b->base.src), b->base.table, ni->img.tree,
			      &ranges);
	if (r < 0)
		return pf_error_prefix(r, "cannot list the ranges to write");
	r = pf_ranges_align(&ranges.all, PF_ARTIFACT_BLOCK_BYTES, pf_overlay_size(ni->img.ov));
	if (r < 0)
		return r;
	free(j->bmap);
	j->bmap = NULL;
	if (b->bmap) {
		r = out_name(j->hostname, ".img.bmap", &j->bmap);
		if (r < 0)
			return r;
		r = out_guard(b, j->bmap);
		if (r < 0)
			return r;
		ao.bmap_path = j->bmap;
	}
	r = out_guard(b, j->artifact);
	if (r < 0)
		return r;
	r = pf_artifact_write_at(b->dir_fd, j->artifact, ni->img.ov, &ranges.all, &ao, &res);
	if (r < 0)
		return pf_error_prefix(r, "'%s'", b->out_dir);
	if (!b->bmap)
		remove_stale(b, j->hostname, ".img.bmap");
	if (fstatat(b->dir_fd, j->artifact, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return pf_error_set(-errno, "'%s/%s': %m", b->out_dir, j->artifact);
	memcpy(j->sha256, res.sha256, sizeof(j->sha256));
	j->file_bytes = res.file_bytes;
	j->image_bytes = res.image_bytes;
	j->mtime_ns = file_mtime_ns(&st);
	if (j->bmap) {
		r = file_sha256(b->dir_fd, j->bmap, j->bmap_sha256);
		if (r < 0)
			return pf_error_set(r, "'%s/%s': %s", b->out_dir, j->bmap, strerror(-r));
	}
	return 0;
}

static void job_run(Batch *b, Job *j)
{
	_cleanup_(node_image_done) NodeImage ni = { 0 };
	double start = now_seconds();
	char a[32], s[32];
	int r;

	/* A row with a hostname that is no valid name fails here, before any file is named. */
	r = out_name(j->hostname, pf_artifact_suffix(b->format), &j->artifact);
	if (r < 0) {
		job_fail(b, j, j->row->error ? pf_error_set(-EINVAL, "%s", j->row->error) : r,
			 start);
		return;
	}
	/* The settings alone tell whether the artifact is up to date: no image work then. */
	r = node_settings(b->no, b->inv, j->row, &ni.nb.cfg);
	if (r < 0) {
		job_fail(b, j, r, start);
		return;
	}
	hash_node(b, &ni.nb.cfg, j->inputs);
	if (job_reuse(b, j)) {
		j->status = JOB_REUSED;
		j->seconds = now_seconds() - start;
		log_info("%s: %s is up to date", j->hostname, j->artifact);
		return;
	}
	r = node_image_prepare(&b->base, b->no, b->flavor, b->now, &ni);
	if (r >= 0)
		r = job_describe(b, j, &ni.nb);
	if (r >= 0)
		r = job_write(b, j, &ni);
	if (r < 0) {
		job_fail(b, j, r, start);
		return;
	}
	j->status = JOB_OK;
	j->seconds = now_seconds() - start;
	log_info("%s: wrote %s (%s, %s image) in %.2f s [%zu/%zu]", j->hostname, j->artifact,
		 pf_format_bytes(a, sizeof(a), j->file_bytes),
		 pf_format_bytes(s, sizeof(s), j->image_bytes), j->seconds,
		 atomic_fetch_add(&b->done, 1) + 1, b->n_selected);
}

static void *worker(void *userdata)
{
	Batch *b = userdata;

	for (;;) {
		size_t i = atomic_fetch_add(&b->next, 1);

		if (i >= b->n_jobs || interrupted)
			break;
		if (b->jobs[i].status == JOB_PENDING)
			job_run(b, &b->jobs[i]);
	}
	return NULL;
}

/* Frees what describes the node (not its artifact): address, names, keys. */
static void job_forget(Job *j)
{
	free(j->address);
	free(j->fqdn);
	free(j->user);
	free(j->instance_id);
	free(j->group);
	j->address = j->fqdn = j->user = j->instance_id = j->group = NULL;
	job_forget_keys(j);
}

static void job_done(Job *j)
{
	free(j->error);
	free(j->artifact);
	free(j->bmap);
	job_forget(j);
}

/* ---- the files next to the artifacts ----------------------------------------------------- */

/* Writes DIR/name from a memory stream's text, through a temporary file and a rename. */
static int write_out(const Batch *b, const char *name, const char *text, size_t len)
{
	_cleanup_(freep) char *prefix = NULL, *tmp = NULL;
	_cleanup_(closep) int fd = -1;
	int r;

	r = out_guard(b, name);
	if (r < 0)
		return r;
	if (asprintf(&prefix, ".%s.", name) < 0)
		return -ENOMEM;
	fd = pf_tmpfile_at(b->dir_fd, prefix, name, &tmp);
	if (fd < 0)
		return pf_error_prefix(fd, "'%s'", b->out_dir);
	r = pf_write_all(fd, text, len, 0);
	if (r >= 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 ||
		       renameat(b->dir_fd, tmp, b->dir_fd, name) < 0))
		r = pf_error_set(-errno, "%m");
	if (r < 0) {
		(void)unlinkat(b->dir_fd, tmp, 0);
		return pf_error_prefix(r, "'%s/%s'", b->out_dir, name);
	}
	return 0;
}

static bool job_listed(const Job *j)
{
	return j->status == JOB_OK || j->status == JOB_REUSED || j->status == JOB_KEPT;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const char *const *)a)[0], ((const char *const *)b)[0]);
}

/* "HASH  NAME" for every artifact and bmap, in name order: `sha256sum -c` reads it. */
static int write_sums(const Batch *b)
{
	_cleanup_(freep) const char **lines = calloc(2 * b->n_jobs + 1, 2 * sizeof(char *));
	_cleanup_(freep) char *text = NULL;
	size_t n = 0, len = 0;
	FILE *f;
	int r;

	if (!lines)
		return -ENOMEM;
	for (size_t i = 0; i < b->n_jobs; i++) {
		const Job *j = &b->jobs[i];

		if (!job_listed(j))
			continue;
		lines[2 * n] = j->artifact;
		lines[2 * n++ + 1] = j->sha256;
		if (j->bmap) {
			lines[2 * n] = j->bmap;
			lines[2 * n++ + 1] = j->bmap_sha256;
		}
	}
	qsort(lines, n, 2 * sizeof(char *), cmp_name);
	f = open_memstream(&text, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s  %s\n", lines[2 * i + 1], lines[2 * i]);
	if (fclose(f) != 0)
		return -ENOMEM;
	r = write_out(b, "SHA256SUMS", text, len);
	return r;
}

static void addr_only(const Job *j, char out[16])
{
	size_t n = strcspn(j->address, "/");

	memcpy(out, j->address, MIN(n, (size_t)15));
	out[MIN(n, (size_t)15)] = 0;
}

/* The names a node answers to: "worker3.example.com,worker3,10.0.0.13". */
static void names_of(const Job *j, char *out, size_t size, const char *sep)
{
	char a[16];
	size_t o = 0;

	out[0] = 0;
	if (j->fqdn)
		o += (size_t)snprintf(out + o, size - MIN(o, size), "%s%s", j->fqdn, sep);
	o += (size_t)snprintf(out + o, size - MIN(o, size), "%s", j->hostname);
	if (j->address) {
		addr_only(j, a);
		snprintf(out + o, size - MIN(o, size), "%s%s", sep, a);
	}
}

static int write_hosts(const Batch *b, FILE *hosts, FILE *known)
{
	_cleanup_(freep) char *from = pf_escape(b->inv->path);

	/* A comment is one line: the path is escaped like any shown string. */
	fprintf(hosts, "# Written by piflash batch from %s\n", from ?: "the inventory");
	fprintf(known, "# Written by piflash batch from %s: the host keys on the cards\n",
		from ?: "the inventory");
	for (size_t i = 0; i < b->n_jobs; i++) {
		const Job *j = &b->jobs[i];
		char names[512], a[16];

		if (!job_listed(j))
			continue;
		if (j->address) {
			addr_only(j, a);
			fprintf(hosts, "%s\t%s%s%s\n", a, j->fqdn ?: "", j->fqdn ? " " : "",
				j->hostname);
		} else
			fprintf(hosts, "# %s: DHCP, no fixed address\n", j->hostname);
		names_of(j, names, sizeof(names), ",");
		for (size_t k = 0; k < j->n_host_keys; k++) {
			const char *pub = j->host_keys[k];
			size_t l = strcspn(pub, " ");

			/* type and key, without the comment */
			l += 1 + strcspn(pub + l + 1, " ");
			fprintf(known, "%s %.*s\n", names, (int)l, pub);
		}
	}
	return 0;
}

/* Does j belong to Ansible group g ("ungrouped": no group column value)? */
static bool in_group(const Job *j, const char *g)
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

/*
 * Ansible: a section per group in order of first appearance, nodes without a group under an
 * explicit [ungrouped], so that the files of several shards can simply be concatenated.
 */
static int write_ansible(const Batch *b, FILE *f)
{
	_cleanup_(freep) char *from = pf_escape(b->inv->path);
	char **groups = NULL;
	size_t n_groups = 0;
	int r = 0;

	for (size_t i = 0; i < b->n_jobs && r >= 0; i++) {
		const Job *j = &b->jobs[i];

		if (!job_listed(j))
			continue;
		if (!j->group)
			r = add_group(&groups, &n_groups, "ungrouped", strlen("ungrouped"));
		for (const char *p = j->group; p && *p && r >= 0;) {
			size_t n = strcspn(p, " ,\t");

			r = add_group(&groups, &n_groups, p, n);
			p += n;
			p += strspn(p, " ,\t");
		}
	}
	fprintf(f, "# Written by piflash batch from %s\n", from ?: "the inventory");
	for (size_t g = 0; g < n_groups && r >= 0; g++) {
		fprintf(f, "\n[%s]\n", groups[g]);
		for (size_t i = 0; i < b->n_jobs; i++) {
			const Job *j = &b->jobs[i];
			char a[16];

			if (!job_listed(j) || !in_group(j, groups[g]))
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

static const char *status_name(JobStatus s)
{
	switch (s) {
	case JOB_OK:
		return "ok";
	case JOB_REUSED:
		return "up-to-date";
	case JOB_FAILED:
		return "failed";
	case JOB_KEPT:
		return "kept";
	case JOB_PENDING:
	case JOB_UNSELECTED:
		break;
	}
	return "not-built";
}

static json_object *str_or_null(const char *s)
{
	return s ? json_object_new_string(s) : NULL;
}

static json_object *job_json(const Batch *b, const Job *j)
{
	json_object *o = json_object_new_object(), *keys = json_object_new_array();

	json_object_object_add(o, "hostname", json_object_new_string(j->hostname));
	json_object_object_add(o, "status", json_object_new_string(status_name(j->status)));
	json_object_object_add(o, "error", str_or_null(j->error));
	json_object_object_add(o, "address", str_or_null(j->address));
	json_object_object_add(o, "fqdn", str_or_null(j->fqdn));
	json_object_object_add(o, "group", str_or_null(j->group));
	json_object_object_add(o, "user", str_or_null(j->user));
	json_object_object_add(o, "flavor",
			       json_object_new_string(pf_flavor_name(b->flavor->flavor)));
	json_object_object_add(o, "artifact", job_listed(j) ? str_or_null(j->artifact) : NULL);
	json_object_object_add(o, "bmap", job_listed(j) ? str_or_null(j->bmap) : NULL);
	json_object_object_add(o, "size", json_object_new_int64((int64_t)j->file_bytes));
	json_object_object_add(o, "image_size", json_object_new_int64((int64_t)j->image_bytes));
	json_object_object_add(o, "sha256",
			       job_listed(j) ? json_object_new_string(j->sha256) : NULL);
	json_object_object_add(o, "instance_id", str_or_null(j->instance_id));
	for (size_t k = 0; k < j->n_host_keys; k++) {
		json_object *hk = json_object_new_object();
		const char *pub = j->host_keys[k];

		json_object_object_add(hk, "type",
				       json_object_new_string_len(pub, (int)strcspn(pub, " ")));
		json_object_object_add(hk, "fingerprint",
				       json_object_new_string(j->fingerprints[k]));
		json_object_object_add(hk, "public", json_object_new_string(pub));
		json_object_array_add(keys, hk);
	}
	json_object_object_add(o, "host_keys", keys);
	json_object_object_add(o, "seconds", json_object_new_double(j->seconds));
	json_object_object_add(o, "inputs",
			       j->inputs[0] ? json_object_new_string(j->inputs) : NULL);
	{
		char mt[32];

		/* A string: more digits than a double (jq's numbers) holds. */
		snprintf(mt, sizeof(mt), "%" PRId64, j->mtime_ns);
		json_object_object_add(o, "mtime_ns", json_object_new_string(mt));
	}
	return o;
}

static int write_report(const Batch *b, double seconds)
{
	json_object *root = json_object_new_object(), *nodes = json_object_new_array();
	const char *text;
	int r;

	json_object_object_add(root, "piflash", json_object_new_string(PACKAGE_VERSION));
	json_object_object_add(root, "image", json_object_new_string(b->base.path));
	json_object_object_add(root, "inventory", json_object_new_string(b->inv->path));
	json_object_object_add(root, "flavor",
			       json_object_new_string(pf_flavor_name(b->flavor->flavor)));
	json_object_object_add(root, "format",
			       json_object_new_string(pf_artifact_suffix(b->format) + 1));
	json_object_object_add(root, "seconds", json_object_new_double(seconds));
	for (size_t i = 0; i < b->n_jobs; i++)
		if (b->jobs[i].status != JOB_UNSELECTED)
			json_object_array_add(nodes, job_json(b, &b->jobs[i]));
	json_object_object_add(root, "nodes", nodes);
	text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	r = write_out(b, "report.json", text, strlen(text));
	json_object_put(root);
	return r;
}

static int write_all(const Batch *b, double seconds)
{
	_cleanup_(freep) char *hosts = NULL, *known = NULL, *ini = NULL;
	size_t hl = 0, kl = 0, il = 0;
	FILE *hf, *kf, *inf;
	int r;

	r = write_sums(b);
	if (r < 0)
		return r;
	hf = open_memstream(&hosts, &hl);
	kf = open_memstream(&known, &kl);
	inf = open_memstream(&ini, &il);
	if (hf && kf && inf) {
		write_hosts(b, hf, kf);
		r = write_ansible(b, inf);
	}
	if (hf)
		fclose(hf);
	if (kf)
		fclose(kf);
	if (inf)
		fclose(inf);
	if (!hf || !kf || !inf || r < 0)
		return -ENOMEM;
	r = write_out(b, "hosts", hosts, hl);
	if (r >= 0)
		r = write_out(b, "inventory.ini", ini, il);
	if (r >= 0 && b->no->host_keys)
		r = write_out(b, "known_hosts", known, kl);
	if (r >= 0)
		r = write_report(b, seconds);
	return r;
}

/* Nodes not chosen this time whose artifacts from an earlier run are intact stay listed. */
static void keep_unselected(Batch *b)
{
	json_object *rec;

	for (size_t i = 0; i < b->n_jobs; i++) {
		Job *j = &b->jobs[i];

		if (j->status != JOB_UNSELECTED || !b->previous ||
		    !json_object_object_get_ex(b->previous, j->hostname, &rec))
			continue;
		if (job_from_record(b, j, rec))
			j->status = JOB_KEPT;
	}
}

/* ---- the command ------------------------------------------------------------------------- */

static unsigned cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > (long)JOBS_MAX ? JOBS_MAX : (unsigned)n;
}

static int run_jobs(Batch *b, unsigned n_threads)
{
	pthread_t threads[JOBS_MAX];
	unsigned started = 0;
	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	for (unsigned t = 0; t < n_threads; t++) {
		if (pthread_create(&threads[t], NULL, worker, b) != 0)
			break;
		started++;
	}
	if (started == 0)
		worker(b);
	for (unsigned t = 0; t < started; t++)
		pthread_join(threads[t], NULL);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return 0;
}

static void summary(const Batch *b, double seconds, size_t *ret_failed)
{
	size_t ok = 0, reused = 0, failed = 0, pending = 0, kept = 0;
	char more[128] = "";
	size_t o = 0;

	for (size_t i = 0; i < b->n_jobs; i++)
		switch (b->jobs[i].status) {
		case JOB_UNSELECTED:
			break;
		case JOB_KEPT:
			kept++;
			break;
		case JOB_OK:
			ok++;
			break;
		case JOB_REUSED:
			reused++;
			break;
		case JOB_FAILED:
			failed++;
			break;
		case JOB_PENDING:
			pending++;
			break;
		}
	/* The summary is printed even with -q: it is the answer to the run. Errors may quote
	 * the image: log_notice() escapes them. */
	if (pending)
		o = (size_t)snprintf(more, sizeof(more), ", %zu not built (interrupted)", pending);
	if (kept)
		snprintf(more + o, sizeof(more) - o, "; %zu more kept from earlier runs", kept);
	log_notice("piflash batch: %zu node%s in %s: %zu built, %zu up to date, %zu failed%s "
		   "(%.1f s)",
		   b->n_selected, b->n_selected == 1 ? "" : "s", b->out_dir, ok, reused, failed,
		   more, seconds);
	for (size_t i = 0; i < b->n_jobs; i++)
		if (b->jobs[i].status == JOB_FAILED)
			log_notice("  failed: %s: %s", b->jobs[i].hostname,
				   b->jobs[i].error ?: "unknown error");
	*ret_failed = failed;
}

/* What a run holds besides what its cleanups free: the jobs and the last report. base is
 * the command's (b borrows it), dir_fd the OutDir's. */
static void batch_done(Batch *b)
{
	for (size_t i = 0; i < b->n_jobs; i++)
		job_done(&b->jobs[i]);
	free(b->jobs);
	b->jobs = NULL;
	b->n_jobs = 0;
	b->previous = (json_object_put(b->previous), NULL);
}

/* The out dir, open, and the lock that makes a run its only writer. */
typedef struct OutDir {
	int dir_fd;
	int lock_fd;
} OutDir;

/*
 * Creates (if missing) and opens the out dir and takes its lock, so only one batch at a time
 * works there: the report is the record of its artifacts. The lock file is a name like any
 * other of the run: refused when it is the input image.
 */
static int out_dir_open(Batch *b, OutDir *od)
{
	int r;

	if (mkdir(b->out_dir, 0755) < 0 && errno != EEXIST)
		return pf_error_set(-errno, "cannot create '%s': %m", b->out_dir);
	od->dir_fd = open(b->out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (od->dir_fd < 0)
		return pf_error_set(-errno, "'%s': %m", b->out_dir);
	b->dir_fd = od->dir_fd;
	r = out_guard(b, LOCK_NAME);
	if (r < 0)
		return r;
	od->lock_fd =
		openat(od->dir_fd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (od->lock_fd < 0)
		return pf_error_set(-errno, "'%s/%s': %m", b->out_dir, LOCK_NAME);
	if (flock(od->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		od->lock_fd = safe_close(od->lock_fd);
		return pf_error_set(-EBUSY, "'%s' is in use by another piflash batch", b->out_dir);
	}
	return 0;
}

/* The lock file goes with the lock, so the out dir holds only what the run made — if the
 * name is still the file locked. */
static void out_dir_close(OutDir *od)
{
	struct stat held, there;

	if (od->lock_fd >= 0 && fstat(od->lock_fd, &held) == 0 &&
	    fstatat(od->dir_fd, LOCK_NAME, &there, AT_SYMLINK_NOFOLLOW) == 0 &&
	    same_inode(&held, &there))
		(void)unlinkat(od->dir_fd, LOCK_NAME, 0);
	od->lock_fd = safe_close(od->lock_fd);
	od->dir_fd = safe_close(od->dir_fd);
}

/*
 * Before any work: no file the run may write or remove — the fixed ones, and each selected
 * node's artifact and bmap — is the input image or its cache file. Prints the refusal;
 * returns an exit code.
 */
static int out_check_all(const Batch *b)
{
	static const char *const fixed[] = {
		"report.json", "SHA256SUMS", "hosts", "known_hosts", "inventory.ini",
	};
	int r;

	for (size_t i = 0; i < ELEMENTSOF(fixed); i++) {
		r = out_guard(b, fixed[i]);
		if (r < 0)
			goto refused;
	}
	for (size_t i = 0; i < b->n_jobs; i++) {
		const char *suffixes[] = { pf_artifact_suffix(b->format), ".img.bmap" };

		if (b->jobs[i].status != JOB_PENDING)
			continue;
		for (size_t k = 0; k < ELEMENTSOF(suffixes); k++) {
			_cleanup_(freep) char *name = NULL;

			/* A row without a valid hostname names no file: it fails on its own. */
			if (out_name(b->jobs[i].hostname, suffixes[k], &name) < 0) {
				pf_error_clear();
				continue;
			}
			r = out_guard(b, name);
			if (r < 0)
				goto refused;
		}
	}
	return PF_EXIT_OK;
refused:
	log_error_errno(r, "--out-dir");
	return r == -EPERM ? PF_EXIT_SAFETY : PF_EXIT_FAILURE;
}

int cmd_batch(int argc, char **argv)
{
	static const struct option own[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "out-dir", required_argument, NULL, 'o' },
		{ "format", required_argument, NULL, 'f' },
		{ "bmap", no_argument, NULL, 'b' },
		{ "jobs", required_argument, NULL, 'j' },
		{ "only", required_argument, NULL, 'O' },
		{ "exclude", required_argument, NULL, 'X' },
		{ "shard", required_argument, NULL, 'S' },
		{ "force", no_argument, NULL, 'F' },
		{ "no-cache", no_argument, NULL, 'N' },
		{ "sha256", required_argument, NULL, IMAGE_OPTION_SHA256 },
		{ "quiet", no_argument, NULL, 'q' },
		{},
	};
	_cleanup_(freep) struct option *options = node_merge_options_except(own, not_for_batch);
	_cleanup_(node_options_done) NodeOptions no = { 0 };
	_cleanup_(image_close) Image base = { 0 };
	_cleanup_(pf_inventory_freep) PfInventory *inv = NULL;
	_cleanup_(pf_flavor_info_freep) PfFlavorInfo *flavor = NULL;
	_cleanup_(freep) size_t *rows = NULL;
	_cleanup_(out_dir_close) OutDir od = { .dir_fd = -1, .lock_fd = -1 };
	_cleanup_(batch_done) Batch b = { .format = PF_ARTIFACT_IMG, .dir_fd = -1 };
	Selection sel = { 0 };
	PfSourceOptions so = { 0 };
	unsigned jobs = 0;
	size_t n_rows = 0, failed = 0;
	double start;
	uint64_t v;
	int c, r, ret = PF_EXIT_FAILURE;

	if (!options)
		return PF_EXIT_FAILURE;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:q", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help(options);
			return PF_EXIT_OK;
		case 'o':
			b.out_dir = optarg;
			break;
		case 'f':
			if (pf_artifact_format_from_name(optarg, &b.format) < 0)
				return usage_error(
					"batch",
					"--format '%s': expected img, img.zst, img.xz or "
					"img.gz",
					optarg);
			break;
		case 'b':
			b.bmap = true;
			break;
		case 'j':
			if (pf_parse_u64(optarg, &v) < 0 || v < 1 || v > JOBS_MAX)
				return usage_error("batch", "--jobs '%s': expected 1 to %u", optarg,
						   JOBS_MAX);
			jobs = (unsigned)v;
			break;
		case 'O':
			sel.only = optarg;
			break;
		case 'X':
			sel.exclude = optarg;
			break;
		case 'S':
			if (selection_parse_shard(optarg, &sel) < 0)
				return usage_error("batch",
						   "--shard '%s': expected K/N with 1 <= K <= N",
						   optarg);
			break;
		case 'F':
			b.force = true;
			break;
		case 'N':
			so.no_cache = true;
			break;
		case IMAGE_OPTION_SHA256:
			r = image_option_sha256(&so, "batch", optarg);
			if (r != PF_EXIT_OK)
				return r;
			break;
		case 'q':
			arg_quiet = true;
			break;
		default:
			if (c >= NODE_OPTION_BASE) {
				r = node_option_parse(&no, c, optarg);
				if (r != 0)
					return r;
				break;
			}
			return not_for_batch_error(argv[optind - 1]);
		}
	}
	r = node_options_finish(&no);
	if (r != PF_EXIT_OK)
		return r;
	if (argc - optind != 1)
		return usage_error("batch",
				   argc - optind < 1 ? "missing IMAGE" : "too many arguments");
	if (!no.inventory)
		return usage_error("batch", "--inventory FILE.csv is needed");
	if (!b.out_dir)
		return usage_error("batch", "--out-dir DIR is needed");
	r = cluster_check_overrides(&no, "batch");
	if (r != PF_EXIT_OK)
		return r;
	if (pf_timestamp(&b.now) < 0) {
		log_error("SOURCE_DATE_EPOCH='%s' is not a number of seconds",
			  getenv("SOURCE_DATE_EPOCH"));
		return PF_EXIT_FAILURE;
	}

	r = pf_inventory_load_flags(no.inventory, PF_INVENTORY_KEEP_BAD_ROWS, &inv);
	if (r < 0) {
		log_error_errno(r, "inventory '%s'", no.inventory);
		return PF_EXIT_FAILURE;
	}
	ret = selection_apply(inv, &sel, &rows, &n_rows);
	if (ret != PF_EXIT_OK)
		return ret;
	/* An empty slice is a normal outcome of --shard when there are more runners than
	 * nodes; an empty --only/--exclude choice is a mistake. */
	if (n_rows == 0 && !sel.shard_n) {
		log_error("no node of '%s' is selected", no.inventory);
		return PF_EXIT_FAILURE;
	}

	/* The input as the user named it: what the run must never write over or remove. */
	/* (A URL's or standard input's file is known once it is opened, below.) */
	if (!pf_fetch_is_url(argv[optind]) && !streq(argv[optind], "-") &&
	    stat(argv[optind], &b.input_st) < 0) {
		log_error("'%s': %m", argv[optind]);
		return PF_EXIT_FAILURE;
	}
	b.source_st = b.input_st;
	r = out_dir_open(&b, &od);
	if (r < 0) {
		log_error_errno(r, "--out-dir");
		return r == -EPERM ? PF_EXIT_SAFETY : PF_EXIT_FAILURE;
	}
	if (image_open(&base, argv[optind], &so) < 0)
		return PF_EXIT_FAILURE;
	if (fstat(pf_source_fd(base.src), &b.source_st) < 0) {
		log_error("'%s': %m", base.path);
		return PF_EXIT_FAILURE;
	}
	if (pf_fetch_is_url(argv[optind]) || streq(argv[optind], "-")) {
		b.input_st = b.source_st;
		if (pf_source_input_path(base.src) &&
		    stat(pf_source_input_path(base.src), &b.input_st) < 0) {
			log_error("'%s': %m", pf_source_input_path(base.src));
			return PF_EXIT_FAILURE;
		}
	}
	ret = node_flavor(&base, &no, &flavor);
	if (ret != PF_EXIT_OK)
		return ret;

	b.base = base;
	b.inv = inv;
	b.flavor = flavor;
	b.no = &no;
	r = hash_common(&b, pf_source_input_path(base.src));
	if (r < 0) {
		log_error_errno(r, "cannot hash the inputs");
		return PF_EXIT_FAILURE;
	}
	b.jobs = calloc(inv->n_rows, sizeof(Job));
	if (!b.jobs)
		return PF_EXIT_FAILURE;
	b.n_jobs = inv->n_rows;
	b.n_selected = n_rows;
	for (size_t i = 0; i < inv->n_rows; i++) {
		b.jobs[i].row = &inv->rows[i];
		b.jobs[i].hostname = row_hostname(inv, b.jobs[i].row);
		b.jobs[i].status = JOB_UNSELECTED;
	}
	for (size_t i = 0; i < n_rows; i++)
		b.jobs[rows[i]].status = JOB_PENDING;
	ret = out_check_all(&b);
	if (ret != PF_EXIT_OK)
		return ret;
	b.previous = read_previous(&b);
	keep_unselected(&b);
	if (!jobs)
		jobs = cpus();
	jobs = (unsigned)MAX(1u, MIN((size_t)jobs, n_rows));
	b.threads = MAX(1u, cpus() / jobs);

	log_info("Building %zu node%s of '%s' from '%s' (%s image) into %s, %u at a time", n_rows,
		 n_rows == 1 ? "" : "s", no.inventory, base.path, pf_flavor_name(flavor->flavor),
		 b.out_dir, jobs);
	start = now_seconds();
	run_jobs(&b, jobs);

	r = write_all(&b, now_seconds() - start);
	if (r < 0)
		log_error_errno(r, "'%s': cannot write the report files", b.out_dir);
	summary(&b, now_seconds() - start, &failed);
	return interrupted ? PF_EXIT_INTERRUPTED : r < 0 || failed ? PF_EXIT_FAILURE : PF_EXIT_OK;
}
