/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The main job: piflash [--add LOCAL=PART:/path[:MODE[:UID:GID]]]... IMAGE OUT.img
 * opens the image, applies the changes in an overlay, and writes the resulting whole image to
 * OUT.img (sparse). The input is never written.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cards.h"
#include "cmd/cmd.h"
#include "cmd/cold.h"
#include "cmd/help.h"
#include "build/result.h"
#include "cmd/image.h"
#include "cmd/node.h"
#include "cmd/output.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

#define MAX_ADDS 1024
/* A file added with --add is held in memory while it is written. */
#define ADD_MAX_BYTES (256u * 1024u * 1024u)

typedef struct Add {
	const char *arg; /* as given, for messages */
	char *local;
	char *dest; /* PART:/path or /path */
	mode_t mode;
	uid_t uid;
	gid_t gid;
} Add;

/* The main job's own options; the node options are appended (node_merge_options()). */
static const struct option write_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{ "add", required_argument, NULL, 'a' },
	{ "no-cache", no_argument, NULL, 'N' },
	{ "sha256", required_argument, NULL, IMAGE_OPTION_SHA256 },
	{ "quiet", no_argument, NULL, 'q' },
	{ "yes", no_argument, NULL, 'y' },
	{ "force", no_argument, NULL, 'F' },
	{ "discard", no_argument, NULL, 'D' },
	{ "no-verify", no_argument, NULL, 'V' },
	{ "progress", required_argument, NULL, 'P' },
	{ "all", no_argument, NULL, 'A' },
	{ "only", required_argument, NULL, 'O' },
	{ "exclude", required_argument, NULL, 'X' },
	{ "record", required_argument, NULL, 'R' },
	{ "on-error", required_argument, NULL, 'E' },
	{},
};

static const char write_options_help[] =
	"  -h --help           Show this help\n"
	"     --add LOCAL=PART:/path[:MODE[:UID:GID]]\n"
	"                      Put the local file LOCAL at /path on partition PART\n"
	"                      (a number or a label; or /path as the booted system sees\n"
	"                      it). Missing directories are created (0755, root). MODE\n"
	"                      is octal (default 0644), owner root unless UID:GID given.\n"
	"                      Repeatable.\n"
	"     --no-cache       Decompress to a temporary file instead of the cache\n"
	"     --sha256 HEX     Fail unless the image (file, download) has this SHA-256\n"
	"  -q --quiet          Print nothing but errors\n";

static const char write_card_options_help[] =
	"Writing a card:\n"
	"  -y --yes            Do not ask for confirmation (needed without a TTY)\n"
	"     --force          Allow a partition node or a non-removable disk; replace\n"
	"                      a file piflash did not write\n"
	"     --discard        Discard (BLKDISCARD) what is not written\n"
	"     --no-verify      Do not read the written ranges back\n"
	"     --progress MODE  auto (a bar on a TTY), bar, json (lines on stderr), none\n"
	"\n"
	"A whole cluster, card after card, in one or more readers:\n"
	"     --all            Every node of --inventory, in order\n"
	"     --only A,B       These nodes\n"
	"     --exclude A,B    Not these nodes\n"
	"     --record FILE    JSON lines, one per card; nodes done are skipped when\n"
	"                      the run is started again with the same FILE\n"
	"     --on-error MODE  After a failed card: ask (on a TTY; else stop), skip the\n"
	"                      node, or stop\n";

static void cmd_write_options_help(void)
{
	_cleanup_(freep) struct option *table = node_merge_options(write_options);

	if (!table)
		return;
	help_print_options(write_options_help, table);
	printf("\n");
	node_options_help_print(table);
	printf("\n");
	help_print_options(write_card_options_help, table);
}

void main_help(void)
{
	printf("Usage: piflash [OPTIONS] IMAGE TARGET\n"
	       "       piflash --inventory FILE.csv --all|--only A,B [OPTIONS] IMAGE DEVICE...\n"
	       "       piflash COMMAND [OPTIONS] ...\n"
	       "\n"
	       "Prepare SD cards for Raspberry Pi clusters: open an OS image (raw, .zip, .xz,\n"
	       ".gz, .zst, .bz2; a file, an http(s) URL, or - for standard input), change\n"
	       "files inside it without mounting, and write the result to TARGET: an image\n"
	       "file (written sparse), a block device (a card), or - for standard output.\n"
	       "IMAGE is never modified.\n"
	       "\n"
	       "Commands:\n"
	       "  inspect IMAGE        Show the image's source, partition table and filesystems\n"
	       "  cache [clean]        List or remove decompressed images in the cache\n"
	       "  ls [-l] IMAGE PART:/path   List a directory inside the image\n"
	       "  cat IMAGE PART:/path       Print a file from inside the image\n"
	       "  plan --node NAME [NODE OPTIONS] IMAGE   Show what would change; write nothing\n"
	       "  verify [OPTIONS] IMAGE TARGET   Check a card or file against the image\n"
	       "  batch --inventory FILE.csv --out-dir DIR IMAGE   One image per node (CI)\n"
	       "  devices [--json]     List the disks a card could be, and which piflash refuses\n"
	       "\n"
	       "Options of the main job (piflash [OPTIONS] IMAGE TARGET):\n");
	cmd_write_options_help();
	printf("\n"
	       "  -V --version        Show the version (anywhere on the command line)\n"
	       "\n"
	       "Exit codes: 0 success, 1 failure, 2 usage error, 3 verification mismatch,\n"
	       "4 refused for safety, 130 interrupted.\n"
	       "Run 'piflash COMMAND --help' for a command's options; man piflash for more.\n");
}

static void help_verify(void)
{
	printf("Usage: piflash verify [OPTIONS] IMAGE TARGET\n"
	       "\n"
	       "Check that TARGET (a card or an image file) holds what 'piflash [OPTIONS] IMAGE\n"
	       "TARGET' writes: the same image, node options and --add files. Exit 3 on a\n"
	       "difference, naming the first differing byte offset. Node identity is rebuilt,\n"
	       "so give SOURCE_DATE_EPOCH and the instance id the write used (cloud-init\n"
	       "flavors get a new instance-id each run otherwise).\n"
	       "\n"
	       "The options are the main job's, so a write's command line can be checked\n"
	       "as it is: those about writing (--yes, --force, --discard, --no-verify,\n"
	       "--known-hosts, --on-error) change nothing here, and --all, --only,\n"
	       "--exclude and --record are refused.\n"
	       "\n");
	cmd_write_options_help();
}

static int parse_octal(const char *s, mode_t *ret)
{
	char *end;
	unsigned long v;

	if (!*s || strspn(s, "01234567") != strlen(s))
		return -EINVAL;
	v = strtoul(s, &end, 8);
	if (v > 07777)
		return -ERANGE;
	*ret = (mode_t)v;
	return 0;
}

static int parse_id(const char *s, uint32_t *ret)
{
	uint64_t v;

	if (pf_parse_u64(s, &v) < 0 || v >= UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* LOCAL=DEST[:MODE[:UID:GID]], the optional fields taken from the right. */
static int parse_add(const char *arg, Add *ret)
{
	_cleanup_(freep) char *copy = strdup(arg);
	char *eq, *dest, *f[3] = { NULL };
	size_t nf = 0;

	if (!copy)
		return -ENOMEM;
	eq = strchr(copy, '=');
	if (!eq || eq == copy || !eq[1])
		return -EINVAL;
	*eq = 0;
	dest = eq + 1;

	/* Splits off up to three trailing ':' fields that look numeric. */
	for (char *c; nf < 3 && (c = strrchr(dest, ':')) &&
		      strspn(c + 1, "0123456789") == strlen(c + 1) && c[1];) {
		f[nf++] = c + 1;
		*c = 0;
	}
	*ret = (Add){ .arg = arg, .mode = 0644 };
	if (nf == 2)
		return -EINVAL; /* MODE:UID without GID, or UID:GID without MODE */
	if (nf == 1 && parse_octal(f[0], &ret->mode) < 0)
		return -EINVAL;
	if (nf == 3 && (parse_octal(f[2], &ret->mode) < 0 || parse_id(f[1], &ret->uid) < 0 ||
			parse_id(f[0], &ret->gid) < 0))
		return -EINVAL;
	if (dest[0] != '/' && !strstr(dest, ":/"))
		return -EINVAL;
	ret->local = strdup(copy);
	ret->dest = strdup(dest);
	if (!ret->local || !ret->dest)
		return -ENOMEM;
	return 0;
}

static int apply_add(PfImage *img, const Add *a, int64_t now)
{
	_cleanup_(freep) char *data = NULL;
	_cleanup_(freep) char *path = NULL;
	const PfPartition *part;
	PfAttr attr = { .mode = a->mode, .uid = a->uid, .gid = a->gid, .mtime = now };
	size_t size = 0;
	int r;

	r = pf_read_file_at(AT_FDCWD, a->local, ADD_MAX_BYTES, &data, &size);
	if (r < 0)
		return log_error_errno(r, "--add: cannot read the local file");
	r = pf_image_put_file(img, a->dest, data, size, &attr, &part, &path);
	if (r < 0)
		return log_error_detail(r);
	log_info("Added %s -> partition %u%s%s%s:%s (%zu bytes, mode %04o, %u:%u)", a->local,
		 part->number, part->label ? " '" : "", part->label ?: "", part->label ? "'" : "",
		 path, size, (unsigned)a->mode, (unsigned)a->uid, (unsigned)a->gid);
	return 0;
}

/*
 * verify without the seed or SOURCE_DATE_EPOCH of the write: reads what that run chose by
 * itself — time stamp, instance-id, host keys (node/runvalues.h; the time from an --add file
 * when no node is given) — from the target, so the rebuilt image can match it.
 * SOURCE_DATE_EPOCH is then set to the card's time, and img reopened, so that the
 * filesystems' own time stamps follow it too. Returns an exit code.
 */
static int verify_run_values(PfImage **img, const char *image, const char *target,
			     const PfSourceOptions *so, NodeOptions *no, const Add *adds,
			     size_t n_adds, int64_t *now, PfRunValues *rv)
{
	_cleanup_(pf_node_build_done) PfNodeBuild probe_build = { 0 };
	_cleanup_(pf_image_freep) PfImage *card = NULL;
	PfSourceOptions card_so = { .no_cache = true };
	NodeOptions probe = *no;
	bool want_now = !getenv("SOURCE_DATE_EPOCH"), node = node_options_given(no);
	char when[32] = "";
	int r;

	if (!want_now && (!node || no->seed))
		return PF_EXIT_OK; /* the write's own values are given */
	if (node) {
		probe.spec.run_probe = true;
		r = node_plan(*img, &probe, false, &probe_build);
		if (r != PF_EXIT_OK)
			return r;
	}
	if (image_load(target, &card_so, &card) < 0)
		return PF_EXIT_FAILURE;
	r = node ? pf_node_read_run_values(card, &probe_build, no->seed, rv) : 0;
	if (r < 0) {
		log_error_errno(r, "'%s'", target);
		return PF_EXIT_FAILURE;
	}
	/* A file that cannot be found is said, and the comparison then fails. */
	if (!rv->have_now && n_adds > 0 &&
	    (r = pf_run_values_from_file(card, adds[0].dest, rv)) < 0)
		log_error_detail(r);
	if (want_now && rv->have_now) {
		char epoch[32];
		struct tm tm;
		time_t t = (time_t)rv->now;

		snprintf(epoch, sizeof(epoch), "%" PRId64, rv->now);
		if (setenv("SOURCE_DATE_EPOCH", epoch, 1) < 0)
			return PF_EXIT_FAILURE;
		*now = rv->now;
		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
		*img = pf_image_free(*img);
		if (image_load(image, so, img) < 0)
			return PF_EXIT_FAILURE;
	}
	log_info("Read back from %s: time stamp %s, instance-id %s, %zu host key%s", target,
		 when[0] ? when : "(given)", rv->instance_id ?: "(none or given)", rv->n_host_keys,
		 rv->n_host_keys == 1 ? "" : "s");
	no->spec.run = rv;
	return PF_EXIT_OK;
}

/* --known-hosts FILE: the node's host keys into the operator's known_hosts. */
static int known_hosts_update(const char *path, const PfNodeBuild *nb)
{
	int r = pf_known_hosts_add(path, nb);

	if (r < 0) {
		log_error_errno(r, "--known-hosts");
		return PF_EXIT_FAILURE;
	}
	log_info("%s's host key is in %s", nb->cfg.hostname, path);
	return PF_EXIT_OK;
}

/* What the main job (or verify) was asked to do. */
typedef struct Job {
	bool verify;
	NodeOptions no;
	OutputOptions oo;
	PfSourceOptions so;
	CardsOptions co;
	bool all;
	Add *adds;
	size_t n_adds;
	const char *image, *target;
} Job;

static void job_done(Job *j)
{
	node_options_done(&j->no);
	for (size_t i = 0; i < j->n_adds; i++) {
		free(j->adds[i].local);
		free(j->adds[i].dest);
	}
	free(j->adds);
}

/* Card after card: --all or --only, one node per card, one or more readers. */
static int cards(Job *j, int n_args, char **args)
{
	CardsOptions *co = &j->co;
	int r;

	if (j->verify)
		return usage_error("verify", "--all, --only and --record are for writing cards");
	if (!j->all && !co->sel.only)
		return usage_error(NULL, "--exclude and --record go with --all or --only");
	if (j->all && co->sel.only)
		return usage_error(NULL, "--all and --only: choose one");
	if (!j->no.spec.inventory)
		return usage_error(NULL, "--all and --only need --inventory FILE.csv");
	r = node_options_check_cluster(&j->no, NULL);
	if (r != PF_EXIT_OK)
		return r;
	if (j->n_adds)
		return usage_error(NULL, "--add is not used with --all or --only");
	if (n_args < 2)
		return usage_error(NULL, "missing IMAGE or the card reader");
	co->image = args[0];
	co->targets = args + 1;
	co->n_targets = (size_t)n_args - 1;
	co->out = j->oo;
	co->source = j->so;
	co->no = &j->no;
	return cards_run(co);
}

static int parse_progress(const char *arg, PfProgressMode *ret)
{
	static const char *const names[] = {
		[PF_PROGRESS_AUTO] = "auto",
		[PF_PROGRESS_BAR] = "bar",
		[PF_PROGRESS_JSON] = "json",
		[PF_PROGRESS_NONE] = "none",
	};

	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		if (streq(arg, names[i])) {
			*ret = (PfProgressMode)i;
			return PF_EXIT_OK;
		}
	return usage_error(NULL, "--progress '%s': expected auto, bar, json or none", arg);
}

static int parse_on_error(const char *arg, OnError *ret)
{
	if (streq(arg, "skip"))
		*ret = ON_ERROR_SKIP;
	else if (streq(arg, "stop"))
		*ret = ON_ERROR_STOP;
	else if (streq(arg, "ask"))
		*ret = ON_ERROR_ASK;
	else
		return usage_error(NULL, "--on-error '%s': expected skip, stop or ask", arg);
	return PF_EXIT_OK;
}

static int parse_add_option(Job *j, const char *arg)
{
	if (j->n_adds >= MAX_ADDS)
		return usage_error(NULL, "more than %u --add options", MAX_ADDS);
	if (parse_add(arg, &j->adds[j->n_adds]) < 0)
		return usage_error(NULL, "--add '%s': expected LOCAL=PART:/path[:MODE[:UID:GID]]",
				   arg);
	j->n_adds++;
	return PF_EXIT_OK;
}

/* One option c of the main job; returns PF_EXIT_OK or the exit code to stop with. */
static int parse_one(Job *j, int c, const char *arg, char **argv)
{
	switch (c) {
	case 'h':
		if (j->verify)
			help_verify();
		else
			main_help();
		return -1; /* done, exit 0 */
	case 'a':
		return parse_add_option(j, arg);
	case 'N':
		j->so.no_cache = true;
		return PF_EXIT_OK;
	case IMAGE_OPTION_SHA256:
		return image_option_sha256(&j->so, j->verify ? "verify" : NULL, arg);
	case 'q':
		log_quiet = true;
		return PF_EXIT_OK;
	case 'y':
		j->oo.yes = true;
		return PF_EXIT_OK;
	case 'F':
		j->oo.force = true;
		return PF_EXIT_OK;
	case 'D':
		j->oo.discard = true;
		return PF_EXIT_OK;
	case 'V':
		j->oo.no_verify = true;
		return PF_EXIT_OK;
	case 'P':
		return parse_progress(arg, &j->oo.progress);
	case 'A':
		j->all = true;
		return PF_EXIT_OK;
	case 'O':
		j->co.sel.only = arg;
		return PF_EXIT_OK;
	case 'X':
		j->co.sel.exclude = arg;
		return PF_EXIT_OK;
	case 'R':
		j->co.record = arg;
		return PF_EXIT_OK;
	case 'E':
		return parse_on_error(arg, &j->co.on_error);
	default:
		if (c >= NODE_OPTION_BASE)
			return node_option_parse(&j->no, c, arg);
		return usage_error(j->verify ? "verify" : NULL, "unknown option '%s'",
				   argv[optind - 1]);
	}
}

/* The options; -1 when --help was answered, else PF_EXIT_OK or the exit code. */
static int parse(Job *j, int argc, char **argv)
{
	_cleanup_(freep) struct option *options = node_merge_options(write_options);
	int c, r;

	j->adds = calloc(MAX_ADDS, sizeof(Add));
	if (!j->adds || !options)
		return PF_EXIT_FAILURE;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hqy", options, NULL)) >= 0) {
		r = parse_one(j, c, optarg, argv);
		if (r != PF_EXIT_OK)
			return r;
	}
	r = node_options_finish(&j->no);
	if (r != PF_EXIT_OK)
		return r;
	output_progress_mode = j->oo.progress;
	if (j->no.known_hosts && !j->no.spec.host_keys)
		return usage_error(NULL, "--known-hosts goes with --host-keys");
	return PF_EXIT_OK;
}

/* The node, planned and applied to img. Prints; returns an exit code. */
static int apply_node(Job *j, PfImage *img, int64_t now, PfNodeBuild *nb)
{
	int r = node_plan(img, &j->no, false, nb);

	if (r != PF_EXIT_OK)
		return r;
	r = pf_node_apply(img, nb, now);
	if (r < 0) {
		log_error_errno(r, "'%s': node '%s'", pf_image_path(img), nb->cfg.hostname);
		return PF_EXIT_FAILURE;
	}
	log_info("Node %s (%s image, user '%s'%s%s): %zu changes", nb->cfg.hostname,
		 pf_flavor_name(nb->flavor->flavor), nb->plan->user,
		 nb->plan->instance_id ? ", instance-id " : "",
		 nb->plan->instance_id ? nb->plan->instance_id : "", nb->plan->n_ops);
	for (size_t i = 0; i < nb->n_host_keys; i++)
		log_info("Host key %s %s", nb->host_keys[i].type, nb->host_keys[i].fingerprint);
	return PF_EXIT_OK;
}

/* The --add files, then every filesystem synced. Prints; returns an exit code. */
static int apply_adds(Job *j, PfImage *img, int64_t now)
{
	int r;

	for (size_t i = 0; i < j->n_adds; i++)
		if (apply_add(img, &j->adds[i], now) < 0)
			return PF_EXIT_FAILURE;
	r = pf_image_sync(img);
	if (r < 0) {
		log_error_errno(r, "'%s'", pf_image_path(img));
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

/*
 * One image to one target, step by step: the target checked before anything is done, the
 * image prepared (node, --add files), then written and verified — or, for verify, rebuilt
 * and compared. A card from an .xz not in the cache yet is written while it is decoded.
 */
static int write_one(Job *j, Cold **cold)
{
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	_cleanup_(pf_run_values_done) PfRunValues rv = { 0 };
	_cleanup_(pf_target_freep) PfTarget *t = NULL; /* checked first, written last */
	bool node = node_options_given(&j->no);
	int64_t now;
	int r;

	if (node_now(&now) != PF_EXIT_OK)
		return PF_EXIT_FAILURE;
	if (!j->verify && (r = cold_begin(j->image, j->target, &j->oo, &j->so, cold)) != PF_EXIT_OK)
		return r;
	if (image_load(j->image, &j->so, &img) < 0)
		return PF_EXIT_FAILURE;
	if (!j->verify && !*cold && (r = output_check(img, j->target, &j->oo, &t)) != PF_EXIT_OK)
		return r;
	if (j->verify && (node || j->n_adds > 0) &&
	    (r = verify_run_values(&img, j->image, j->target, &j->so, &j->no, j->adds, j->n_adds,
				   &now, &rv)) != PF_EXIT_OK)
		return r;
	if (node && (r = apply_node(j, img, now, &nb)) != PF_EXIT_OK)
		return r;
	if ((r = apply_adds(j, img, now)) != PF_EXIT_OK)
		return r;
	if (*cold && cold_handover(*cold, j->target, &t) != PF_EXIT_OK)
		return PF_EXIT_FAILURE;
	if (j->verify)
		return output_verify(img, j->target, &j->oo);
	r = output_write(img, t, j->target, &j->oo);
	if (r == PF_EXIT_OK && j->no.known_hosts && nb.n_host_keys > 0)
		r = known_hosts_update(j->no.known_hosts, &nb);
	return r;
}

/* The main job and `piflash verify` share their options: verify rebuilds the same image. */
static int main_job(int argc, char **argv, bool verify)
{
	_cleanup_(job_done) Job j = { .verify = verify };
	Cold *cold = NULL;
	int r;

	r = parse(&j, argc, argv);
	if (r != PF_EXIT_OK)
		return r < 0 ? PF_EXIT_OK : r;
	if (j.all || j.co.sel.only || j.co.sel.exclude || j.co.record)
		return cards(&j, argc - optind, argv + optind);
	if (argc - optind != 2)
		return usage_error(NULL, argc - optind < 2 ? "missing IMAGE or OUT.img"
							   : "too many arguments");
	j.image = argv[optind];
	j.target = argv[optind + 1];
	r = write_one(&j, &cold);
	return cold_end(&cold, r);
}

int cmd_write(int argc, char **argv)
{
	return main_job(argc, argv, false);
}

int cmd_verify(int argc, char **argv)
{
	return main_job(argc, argv, true);
}
