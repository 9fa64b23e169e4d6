/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build/batch.h"
#include "build/cluster.h"
#include "build/report.h"
#include "version.h"
#include "disk/fetch.h"
#include "node/digest.h"
#include "util/digest.h"
#include "flash/artifact.h"
#include "flash/ranges.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

/* A file that shapes every node (a template, --user-data) is hashed up to this size. */
#define INPUT_FILE_MAX (4u * 1024 * 1024)
/* report.json of an earlier run is read up to this size: some 10000 nodes. */
#define REPORT_MAX (32u * 1024 * 1024)
#define LOCK_NAME ".piflash-batch.lock"

/* A node of the run: its result, in the array of every row's results. */
typedef PfNodeResult Job;

struct PfBatch {
	PfBatchOptions o;
	const PfImage *base;
	const PfInventory *inv;
	const PfFlavorInfo *flavor;
	/* The out dir, opened once: every file of the run is a name relative to it, checked by
	 * out_guard(), never a path built from a string. */
	int dir_fd;
	int lock_fd; /* holds the out dir's lock */
	/* The input image and the file it is read from (its cache file, or itself when raw):
	 * nothing the run writes or removes may be either. */
	struct stat input_st, source_st;
	bool input_is_file;    /* named by a path: input_st known before the image is opened */
	char common[65];       /* digest of the inputs every node shares */
	json_object *previous; /* nodes of the last report.json, by hostname */
	Job *jobs;	       /* one per inventory row, in order */
	const PfInventoryRow **rows;
	size_t n_jobs;
	size_t n_selected;
	atomic_size_t next;
	atomic_size_t done;
	unsigned workers;
	unsigned threads; /* compressor threads per job */
};

static void say(const PfBatch *b, bool error, const char *fmt, ...) _printf_(3, 4);
static void say(const PfBatch *b, bool error, const char *fmt, ...)
{
	_cleanup_(freep) char *text = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n >= 0 && b->o.events.message)
		b->o.events.message(b->o.events.userdata, error, text);
}

/* An error's detail, said and forgotten. */
static void say_errno(const PfBatch *b, int r, const char *fmt, ...) _printf_(3, 4);
static void say_errno(const PfBatch *b, int r, const char *fmt, ...)
{
	_cleanup_(freep) char *what = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&what, fmt, ap);
	va_end(ap);
	if (n >= 0)
		say(b, true, "%s: %s", what, pf_error_message(r));
	pf_error_clear();
}

static void node_event(PfBatch *b, const PfNodeResult *r, size_t done)
{
	if (b->o.events.node)
		b->o.events.node(b->o.events.userdata, r, done);
}

static bool cancelled(const PfBatch *b)
{
	return b->o.cancel && *b->o.cancel;
}

/* ---- hashing the inputs ------------------------------------------------------------------ */

/* A file's content, up to INPUT_FILE_MAX bytes; a missing file hashes as missing. */
static void hash_file(PfDigest *h, const char *label, int dirfd, const char *path)
{
	_cleanup_(closep) int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	unsigned char buf[65536];
	size_t total = 0;
	ssize_t n;

	pf_digest_field(h, label, path);
	if (fd < 0) {
		pf_digest_field(h, "missing", path);
		return;
	}
	while (total < INPUT_FILE_MAX && (n = read(fd, buf, sizeof(buf))) > 0) {
		pf_digest_bytes(h, buf, (size_t)n);
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

/* Every regular file of a template directory, in name order. */
static void hash_dir(PfDigest *h, const char *dir)
{
	_cleanup_(closedir_safep) DIR *d = opendir(dir);
	_cleanup_(freep) char **names = NULL;
	size_t n = 0;
	struct dirent *de;

	pf_digest_field(h, "template-dir", dir);
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
	qsort(names, n, sizeof(char *), pf_strcmp_ptr);
	for (size_t i = 0; i < n; i++) {
		hash_file(h, "template", dirfd(d), names[i]);
		free(names[i]);
	}
}

/* What shapes every artifact alike: piflash, the image, the options. */
static int hash_common(PfBatch *b, const char *image_path)
{
	const PfNodeSpec *spec = b->o.spec;
	const char *sde = getenv("SOURCE_DATE_EPOCH");
	struct stat st;
	PfDigest h;

	if (image_path && stat(image_path, &st) < 0)
		return pf_error_set(-errno, "'%s': %m", image_path);
	if (pf_digest_begin(&h) < 0)
		return -ENOMEM;
	pf_digest_field(&h, "piflash", PACKAGE_VERSION);
	/* The image as a file: a new download or an edit rebuilds everything. Standard input
	 * has no file: its content's SHA-256 stands for it. */
	if (image_path)
		pf_digest_fieldf(&h, "image", "%" PRIu64 " %" PRId64 ".%09ld", (uint64_t)st.st_size,
				 (int64_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	else
		pf_digest_field(&h, "image-sha256", pf_source_sha256(pf_image_source(b->base)));
	pf_digest_field(&h, "flavor", pf_flavor_name(b->flavor->flavor));
	pf_digest_field(&h, "format", pf_artifact_suffix(b->o.format));
	pf_digest_fieldf(&h, "bmap", "%d", b->o.bmap);
	/* Without SOURCE_DATE_EPOCH the file times are the build's: not an input worth a
	 * rebuild. */
	pf_digest_field(&h, "source-date-epoch", sde && *sde ? sde : NULL);
	pf_digest_field(&h, "instance-id-seed", spec->instance_id_seed);
	pf_digest_fieldf(&h, "host-keys", "%d", spec->host_keys);
	pf_digest_field(&h, "flavor-forced", spec->flavor);
	pf_digest_field(&h, "network-forced", spec->network);
	if (spec->template_dir)
		hash_dir(&h, spec->template_dir);
	if (spec->user_data)
		hash_file(&h, "user-data", AT_FDCWD, spec->user_data);
	pf_digest_end(&h, b->common);
	return 0;
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
static int out_guard(const PfBatch *b, const char *name)
{
	struct stat st;

	if (!pf_out_name_ok(name))
		return pf_error_set(-EINVAL, "'%s' is not a file name in '%s'", name, b->o.out_dir);
	/* Following a link: a link to the input counts as the input. Nothing there: fine. */
	if (fstatat(b->dir_fd, name, &st, 0) < 0)
		return 0;
	if (same_inode(&st, &b->input_st))
		return pf_error_set(-EPERM,
				    "'%s/%s' is the input image; piflash batch never writes or "
				    "removes its input",
				    b->o.out_dir, name);
	if (same_inode(&st, &b->source_st))
		return pf_error_set(-EPERM,
				    "'%s/%s' is the input image's cache file; piflash batch never "
				    "writes or removes it",
				    b->o.out_dir, name);
	return 0;
}

/* Removes hostname+suffix from the out dir if it is there: an artifact that no longer is
 * one. Never the input, never anything named by an invalid hostname. */
static void remove_stale(const PfBatch *b, const char *hostname, const char *suffix)
{
	_cleanup_(freep) char *name = NULL;
	int r;

	if (out_name(hostname, suffix, &name) < 0) {
		pf_error_clear();
		return;
	}
	r = out_guard(b, name);
	if (r < 0) {
		say_errno(b, r, "not removing '%s/%s'", b->o.out_dir, name);
		return;
	}
	if (unlinkat(b->dir_fd, name, 0) == 0)
		say(b, false, "Removed %s/%s: it is from an earlier run, not from this one",
		    b->o.out_dir, name);
}

/* ---- one node ---------------------------------------------------------------------------- */

/* A failed node leaves no artifact: an older one would be taken for this run's. A row whose
 * hostname is not valid has no file names at all (out_name() refuses it): nothing of it is
 * removed. */
static void job_fail(PfBatch *b, Job *j, int r, double start)
{
	j->status = PF_NODE_FAILED;
	j->error = strdup(pf_error_message(r));
	pf_error_clear();
	j->seconds = pf_monotonic_seconds() - start;
	node_event(b, j, atomic_load(&b->done));
	remove_stale(b, j->hostname, pf_artifact_suffix(b->o.format));
	remove_stale(b, j->hostname, ".img.bmap");
}

/* The node's Ansible groups, from the inventory as it is now; NULL for none. */
static const char *row_group(const PfBatch *b, const Job *j)
{
	const char *group = pf_inventory_get(b->inv, b->rows[j - b->jobs], "group");

	return group && *group ? group : NULL;
}

/* What the report lists about a node, from its settings and plan. */
static int job_describe(PfBatch *b, Job *j, const PfNodeBuild *nb)
{
	/* A record read by job_reuse() may have filled these already: this run's win. */
	int r = pf_node_result_describe(j, nb, row_group(b, j));

	if (r < 0)
		return r;
	/* The user arrives from the plan, which may have taken it from the image (cloud.cfg's
	 * default_user, /etc/passwd): the node fails rather than list it. */
	r = pf_node_result_check(j);
	if (r < 0)
		return pf_error_prefix(r, "'%s': node '%s' cannot be listed",
				       pf_image_path(b->base), j->hostname);
	return 0;
}

/* *dst replaced by a copy of src (NULL stays NULL). */
static int set_str(char **dst, const char *src)
{
	free(*dst);
	*dst = pf_strdup_or_null(src);
	return src && !*dst ? -ENOMEM : 0;
}

/* A string field of a record that pf_report_record_check() passed; NULL when absent or null. */
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
static json_object *read_previous(const PfBatch *b)
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
		say_errno(b, r,
			  "'%s/report.json': cannot read the last run's report, so every node is "
			  "rebuilt",
			  b->o.out_dir);
		return NULL;
	}
	root = json_tokener_parse_verbose(text, &jerr);
	if (!root || !json_object_object_get_ex(root, "nodes", &nodes) ||
	    !json_object_is_type(nodes, json_type_array)) {
		say(b, true, "'%s/report.json': %s, so every node is rebuilt", b->o.out_dir,
		    root ? "no 'nodes' array" : json_tokener_error_desc(jerr));
		json_object_put(root);
		return NULL;
	}
	byname = json_object_new_object();
	for (size_t i = 0; byname && i < json_object_array_length(nodes); i++) {
		json_object *n = json_object_array_get_idx(nodes, i);
		const char *host = NULL, *status = NULL;

		r = pf_report_record_check(n, &host, &status);
		if (r < 0 && host)
			say_errno(b, r, "'%s/report.json': node '%s' is rebuilt", b->o.out_dir,
				  host);
		else if (r < 0)
			say_errno(b, r, "'%s/report.json': node %zu is not read", b->o.out_dir,
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
 * Fills j from its node's previous record (rec, checked by pf_report_record_check()) when the record
 * still describes the files in the out dir: the artifact with the recorded size and
 * modification time, the bmap if any.
 */
static bool job_from_record(PfBatch *b, Job *j, json_object *rec)
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
	if (bmap && pf_sha256_file_at(b->dir_fd, bmap, j->bmap_sha256) < 0)
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
	pf_node_result_forget_keys(j);
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
			/* counted before the check: pf_node_result_forget_keys() frees either */
			j->n_host_keys++;
			if (!j->host_keys[i] || !j->fingerprints[i])
				return false;
		}
	}
	/* What goes into hosts, known_hosts and inventory.ini is what it says it is. */
	r = pf_node_result_check(j);
	if (r < 0) {
		say_errno(b, r, "'%s/report.json': node '%s' is %s", b->o.out_dir, j->hostname,
			  j->status == PF_NODE_UNSELECTED ? "not kept" : "rebuilt");
		return false;
	}
	return true;
}

/* Is the previous record of j's node, for the same inputs, still true of the files? */
static bool job_reuse(PfBatch *b, Job *j)
{
	json_object *rec;
	const char *inputs, *bmap, *artifact;

	if (b->o.force || !b->previous ||
	    !json_object_object_get_ex(b->previous, j->hostname, &rec))
		return false;
	inputs = rec_str(rec, "inputs");
	artifact = rec_str(rec, "artifact");
	bmap = rec_str(rec, "bmap");
	if (!inputs || !streq(inputs, j->inputs) || !streq(artifact, j->artifact) ||
	    !!bmap != b->o.bmap)
		return false;
	return job_from_record(b, j, rec);
}

static int job_write(PfBatch *b, Job *j, PfImage *img)
{
	_cleanup_(pf_ranges_done) PfRanges ranges = { 0 };
	PfArtifactOptions ao = { .format = b->o.format,
				 .threads = b->threads,
				 .cancel = b->o.cancel };
	PfArtifactResult res = { 0 };
	struct stat st;
	int r;

	r = pf_ranges_compute(pf_image_overlay(img), pf_source_fd(pf_image_source(img)),
			      pf_image_table(img), pf_image_tree(img), &ranges);
	if (r < 0)
		return pf_error_prefix(r, "cannot list the ranges to write");
	r = pf_ranges_align(&ranges.all, PF_ARTIFACT_BLOCK_BYTES,
			    pf_overlay_size(pf_image_overlay(img)));
	if (r < 0)
		return r;
	free(j->bmap);
	j->bmap = NULL;
	if (b->o.bmap) {
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
	r = pf_artifact_write_at(b->dir_fd, j->artifact, pf_image_overlay(img), &ranges.all, &ao,
				 &res);
	if (r < 0)
		return pf_error_prefix(r, "'%s'", b->o.out_dir);
	if (!b->o.bmap)
		remove_stale(b, j->hostname, ".img.bmap");
	if (fstatat(b->dir_fd, j->artifact, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return pf_error_set(-errno, "'%s/%s': %m", b->o.out_dir, j->artifact);
	memcpy(j->sha256, res.sha256, sizeof(j->sha256));
	j->file_bytes = res.file_bytes;
	j->image_bytes = res.image_bytes;
	j->mtime_ns = file_mtime_ns(&st);
	if (j->bmap) {
		r = pf_sha256_file_at(b->dir_fd, j->bmap, j->bmap_sha256);
		if (r < 0)
			return pf_error_set(r, "'%s/%s': %s", b->o.out_dir, j->bmap, strerror(-r));
	}
	return 0;
}

/* The node's settings alone tell whether its artifact is up to date: no image work then. */
static bool job_up_to_date(PfBatch *b, Job *j, const PfNodeConfig *cfg, double start)
{
	pf_node_config_digest(cfg, b->common, j->inputs);
	if (!job_reuse(b, j))
		return false;
	j->status = PF_NODE_REUSED;
	j->seconds = pf_monotonic_seconds() - start;
	node_event(b, j, atomic_load(&b->done));
	return true;
}

static void job_run(PfBatch *b, Job *j)
{
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	const PfInventoryRow *row = b->rows[j - b->jobs];
	double start = pf_monotonic_seconds();
	int r;

	/* A row with a hostname that is no valid name fails here, before any file is named. */
	r = out_name(j->hostname, pf_artifact_suffix(b->o.format), &j->artifact);
	if (r < 0) {
		job_fail(b, j, row->error ? pf_error_set(-EINVAL, "%s", row->error) : r, start);
		return;
	}
	r = pf_node_settings(b->o.spec, b->inv, row, &nb.cfg);
	if (r < 0) {
		job_fail(b, j, r, start);
		return;
	}
	if (job_up_to_date(b, j, &nb.cfg, start))
		return;
	r = pf_node_image(b->base, b->o.spec, b->flavor, b->o.now, &img, &nb);
	if (r >= 0)
		r = job_describe(b, j, &nb);
	if (r >= 0)
		r = job_write(b, j, img);
	if (r < 0) {
		job_fail(b, j, r, start);
		return;
	}
	j->status = PF_NODE_OK;
	j->seconds = pf_monotonic_seconds() - start;
	node_event(b, j, atomic_fetch_add(&b->done, 1) + 1);
}

static void *worker(void *userdata)
{
	PfBatch *b = userdata;

	for (;;) {
		size_t i = atomic_fetch_add(&b->next, 1);

		if (i >= b->n_jobs || cancelled(b))
			break;
		if (b->jobs[i].status == PF_NODE_PENDING)
			job_run(b, &b->jobs[i]);
	}
	return NULL;
}

/* ---- the files next to the artifacts ----------------------------------------------------- */

/* Writes DIR/name from a memory stream's text, through a temporary file and a rename. */
static int write_out(const PfBatch *b, const char *name, const char *text, size_t len)
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
		return pf_error_prefix(fd, "'%s'", b->o.out_dir);
	r = pf_write_all(fd, text, len, 0);
	if (r >= 0 && (fchmod(fd, 0644) < 0 || fsync(fd) < 0 ||
		       renameat(b->dir_fd, tmp, b->dir_fd, name) < 0))
		r = pf_error_set(-errno, "%m");
	if (r < 0) {
		(void)unlinkat(b->dir_fd, tmp, 0);
		return pf_error_prefix(r, "'%s/%s'", b->o.out_dir, name);
	}
	return 0;
}

static int write_all(const PfBatch *b, double seconds)
{
	_cleanup_(freep) char *sums = NULL, *hosts = NULL, *known = NULL, *ini = NULL;
	_cleanup_(freep) char *report = NULL;
	size_t sl = 0, hl = 0, kl = 0, il = 0;
	FILE *sf, *hf, *kf, *inf;
	int r = 0;

	sf = open_memstream(&sums, &sl);
	hf = open_memstream(&hosts, &hl);
	kf = open_memstream(&known, &kl);
	inf = open_memstream(&ini, &il);
	if (sf && hf && kf && inf) {
		r = pf_listing_sums(sf, b->jobs, b->n_jobs);
		pf_listing_hosts(hf, b->jobs, b->n_jobs, b->inv->path);
		pf_listing_known_hosts(kf, b->jobs, b->n_jobs, b->inv->path);
		if (r >= 0)
			r = pf_listing_ansible(inf, b->jobs, b->n_jobs, b->inv->path);
	}
	if (sf)
		fclose(sf);
	if (hf)
		fclose(hf);
	if (kf)
		fclose(kf);
	if (inf)
		fclose(inf);
	report = pf_report_json(b->jobs, b->n_jobs, pf_image_path(b->base), b->inv->path,
				pf_flavor_name(b->flavor->flavor),
				pf_artifact_suffix(b->o.format) + 1, seconds);
	if (!sf || !hf || !kf || !inf || !report || r < 0)
		return -ENOMEM;
	r = write_out(b, "SHA256SUMS", sums, sl);
	if (r >= 0)
		r = write_out(b, "hosts", hosts, hl);
	if (r >= 0)
		r = write_out(b, "inventory.ini", ini, il);
	if (r >= 0 && b->o.spec->host_keys)
		r = write_out(b, "known_hosts", known, kl);
	if (r >= 0)
		r = write_out(b, "report.json", report, strlen(report));
	return r;
}

/* Nodes not chosen this time whose artifacts from an earlier run are intact stay listed. */
static void keep_unselected(PfBatch *b)
{
	json_object *rec;

	for (size_t i = 0; i < b->n_jobs; i++) {
		Job *j = &b->jobs[i];

		if (j->status != PF_NODE_UNSELECTED || !b->previous ||
		    !json_object_object_get_ex(b->previous, j->hostname, &rec))
			continue;
		if (job_from_record(b, j, rec))
			j->status = PF_NODE_KEPT;
	}
}

/* ---- the run ---------------------------------------------------------------------------- */

static unsigned cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > (long)PF_BATCH_JOBS_MAX ? PF_BATCH_JOBS_MAX : (unsigned)n;
}

void pf_batch_build(PfBatch *b)
{
	pthread_t threads[PF_BATCH_JOBS_MAX];
	unsigned started = 0;

	for (unsigned t = 0; t < b->workers; t++) {
		if (pthread_create(&threads[t], NULL, worker, b) != 0)
			break;
		started++;
	}
	if (started == 0)
		worker(b);
	for (unsigned t = 0; t < started; t++)
		pthread_join(threads[t], NULL);
}

/*
 * Takes the out dir's lock, so only one batch at a time works there: the report is the
 * record of its artifacts. The lock file is a name like any other of the run: refused when
 * it is the input image.
 */
static int out_dir_lock(PfBatch *b)
{
	int r = out_guard(b, LOCK_NAME);

	if (r < 0)
		return r;
	b->lock_fd = openat(b->dir_fd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (b->lock_fd < 0)
		return pf_error_set(-errno, "'%s/%s': %m", b->o.out_dir, LOCK_NAME);
	if (flock(b->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		b->lock_fd = safe_close(b->lock_fd);
		return pf_error_set(-EBUSY, "'%s' is in use by another piflash batch",
				    b->o.out_dir);
	}
	return 0;
}

/* The lock file goes with the lock, so the out dir holds only what the run made — if the
 * name is still the file locked. */
static void out_dir_close(PfBatch *b)
{
	struct stat held, there;

	if (b->lock_fd >= 0 && fstat(b->lock_fd, &held) == 0 &&
	    fstatat(b->dir_fd, LOCK_NAME, &there, AT_SYMLINK_NOFOLLOW) == 0 &&
	    same_inode(&held, &there))
		(void)unlinkat(b->dir_fd, LOCK_NAME, 0);
	b->lock_fd = safe_close(b->lock_fd);
	b->dir_fd = safe_close(b->dir_fd);
}

int pf_batch_new(const PfBatchOptions *o, const char *input, PfBatch **ret)
{
	_cleanup_(pf_batch_freep) PfBatch *b = calloc(1, sizeof(PfBatch));
	int r;

	if (!b)
		return -ENOMEM;
	b->o = *o;
	b->dir_fd = b->lock_fd = -1;
	/* The input as the user named it: what the run must never write over or remove. (A
	 * URL's or standard input's file is known once it is opened.) */
	b->input_is_file = !pf_fetch_is_url(input) && !streq(input, "-");
	if (b->input_is_file && stat(input, &b->input_st) < 0)
		return pf_error_set(-errno, "'%s': %m", input);
	b->source_st = b->input_st;
	if (mkdir(b->o.out_dir, 0755) < 0 && errno != EEXIST)
		return pf_error_set(-errno, "--out-dir: cannot create '%s': %m", b->o.out_dir);
	b->dir_fd = open(b->o.out_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->dir_fd < 0)
		return pf_error_set(-errno, "--out-dir: '%s': %m", b->o.out_dir);
	r = out_dir_lock(b);
	if (r < 0)
		return pf_error_prefix(r, "--out-dir");
	*ret = TAKE_PTR(b);
	return 0;
}

PfBatch *pf_batch_free(PfBatch *b)
{
	if (!b)
		return NULL;
	for (size_t i = 0; i < b->n_jobs; i++)
		pf_node_result_done(&b->jobs[i]);
	free(b->jobs);
	free(b->rows);
	json_object_put(b->previous);
	out_dir_close(b);
	free(b);
	return NULL;
}

int pf_batch_set_image(PfBatch *b, const PfImage *base)
{
	PfSource *src = pf_image_source(base);
	const char *input = pf_source_input_path(src);

	b->base = base;
	if (fstat(pf_source_fd(src), &b->source_st) < 0)
		return pf_error_set(-errno, "'%s': %m", pf_image_path(base));
	if (!b->input_is_file) {
		b->input_st = b->source_st;
		if (input && stat(input, &b->input_st) < 0)
			return pf_error_set(-errno, "'%s': %m", input);
	}
	return 0;
}

/*
 * Before any work: no file the run may write or remove — the fixed ones, and each selected
 * node's artifact and bmap — is the input image or its cache file.
 */
static int out_check_all(const PfBatch *b)
{
	static const char *const fixed[] = {
		"report.json", "SHA256SUMS", "hosts", "known_hosts", "inventory.ini",
	};
	const char *suffixes[] = { pf_artifact_suffix(b->o.format), ".img.bmap" };
	int r;

	for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
		if ((r = out_guard(b, fixed[i])) < 0)
			return r;
	for (size_t i = 0; i < b->n_jobs; i++) {
		if (b->jobs[i].status != PF_NODE_PENDING)
			continue;
		for (size_t k = 0; k < ELEMENTSOF(suffixes); k++) {
			_cleanup_(freep) char *name = NULL;

			/* A row without a valid hostname names no file: it fails on its own. */
			if (out_name(b->jobs[i].hostname, suffixes[k], &name) < 0) {
				pf_error_clear();
				continue;
			}
			if ((r = out_guard(b, name)) < 0)
				return r;
		}
	}
	return 0;
}

/* One result per row, selected ones pending. */
static int jobs_new(PfBatch *b, const size_t *rows, size_t n_rows)
{
	const PfInventory *inv = b->inv;

	b->jobs = calloc(inv->n_rows ?: 1, sizeof(Job));
	b->rows = calloc(inv->n_rows ?: 1, sizeof(PfInventoryRow *));
	if (!b->jobs || !b->rows)
		return -ENOMEM;
	b->n_jobs = inv->n_rows;
	b->n_selected = n_rows;
	for (size_t i = 0; i < inv->n_rows; i++) {
		b->rows[i] = &inv->rows[i];
		b->jobs[i].hostname = pf_row_hostname(inv, b->rows[i]);
		b->jobs[i].status = PF_NODE_UNSELECTED;
	}
	for (size_t i = 0; i < n_rows; i++)
		b->jobs[rows[i]].status = PF_NODE_PENDING;
	return 0;
}

int pf_batch_plan(PfBatch *b, const PfInventory *inv, const PfFlavorInfo *f, const size_t *rows,
		  size_t n_rows)
{
	unsigned jobs = b->o.jobs ?: cpus();
	int r;

	b->inv = inv;
	b->flavor = f;
	r = hash_common(b, pf_source_input_path(pf_image_source(b->base)));
	if (r < 0)
		return pf_error_prefix(r, "cannot hash the inputs");
	r = jobs_new(b, rows, n_rows);
	if (r < 0)
		return r;
	r = out_check_all(b);
	if (r < 0)
		return pf_error_prefix(r, "--out-dir");
	b->previous = read_previous(b);
	keep_unselected(b);
	b->workers = (unsigned)MAX(1u, MIN((size_t)jobs, n_rows));
	b->threads = MAX(1u, cpus() / b->workers);
	return (int)b->workers;
}

int pf_batch_write_listings(PfBatch *b, double seconds)
{
	return write_all(b, seconds);
}

const PfNodeResult *pf_batch_results(const PfBatch *b, size_t *ret_n)
{
	*ret_n = b->n_jobs;
	return b->jobs;
}
