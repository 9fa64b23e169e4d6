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

void cmd_write_options_help(void)
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

/* A failure whose detail names the image already. */
static int say_error(int r)
{
	log_error("%s", pf_error_message(r));
	pf_error_clear();
	return r;
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
		return say_error(r);
	log_info("Added %s -> partition %u%s%s%s:%s (%zu bytes, mode %04o, %u:%u)", a->local,
		 part->number, part->label ? " '" : "", part->label ?: "", part->label ? "'" : "",
		 path, size, (unsigned)a->mode, (unsigned)a->uid, (unsigned)a->gid);
	return 0;
}

/* The mtime the card's copy of an --add file has: the write's time stamp. */
static void add_mtime(PfImage *card, const Add *a, PfRunValues *rv)
{
	_cleanup_(freep) char *path = NULL;
	const PfPartition *part;
	PfStat st;
	PfFs *fs;
	int r;

	r = pf_image_lookup(card, a->dest, true, &part, &fs, &path);
	if (r < 0) {
		say_error(r); /* the comparison then fails */
		return;
	}
	if (pf_fs_stat(fs, path, &st) < 0) {
		pf_error_clear();
		return;
	}
	rv->now = st.mtime;
	rv->have_now = true;
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
	r = node ? pf_run_values_read(pf_image_tree(card), pf_image_table(card), probe_build.plan,
				      probe_build.cfg.hostname, rv)
		 : 0;
	if (r < 0) {
		log_error_errno(r, "'%s'", target);
		return PF_EXIT_FAILURE;
	}
	if (!rv->have_now && n_adds > 0)
		add_mtime(card, &adds[0], rv);
	if (no->seed) {
		/* The seed decides the instance-id and host keys: only the time is read. */
		free(rv->instance_id);
		rv->instance_id = NULL;
		for (size_t i = 0; i < rv->n_host_keys; i++)
			pf_hostkey_done(&rv->host_keys[i]);
		rv->n_host_keys = 0;
	}
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
	_cleanup_(pf_node_result_done) PfNodeResult res = { .hostname = nb->cfg.hostname };
	int r;

	r = pf_node_result_describe(&res, nb, NULL);
	if (r >= 0)
		r = pf_known_hosts_update(path, &res);
	if (r < 0) {
		log_error_errno(r, "--known-hosts");
		return PF_EXIT_FAILURE;
	}
	log_info("%s's host key is in %s", nb->cfg.hostname, path);
	return PF_EXIT_OK;
}

/* Card after card: --all or --only, one node per card, one or more readers. */
static int cards(CardsOptions *co, bool all, bool verify, size_t n_adds, NodeOptions *no,
		 const OutputOptions *oo, const PfSourceOptions *so, int n_args, char **args)
{
	int r;

	if (verify)
		return usage_error("verify", "--all, --only and --record are for writing cards");
	if (!all && !co->sel.only)
		return usage_error(NULL, "--exclude and --record go with --all or --only");
	if (all && co->sel.only)
		return usage_error(NULL, "--all and --only: choose one");
	if (!no->spec.inventory)
		return usage_error(NULL, "--all and --only need --inventory FILE.csv");
	r = node_options_check_cluster(no, NULL);
	if (r != PF_EXIT_OK)
		return r;
	if (n_adds)
		return usage_error(NULL, "--add is not used with --all or --only");
	if (n_args < 2)
		return usage_error(NULL, "missing IMAGE or the card reader");
	co->image = args[0];
	co->targets = args + 1;
	co->n_targets = (size_t)n_args - 1;
	co->out = *oo;
	co->source = *so;
	co->no = no;
	return cards_run(co);
}

/* The main job and `piflash verify` share their options: verify rebuilds the same image. */
static int run(int argc, char **argv, bool verify)
{
	_cleanup_(freep) struct option *options = node_merge_options(write_options);
	_cleanup_(node_options_done) NodeOptions no = { 0 };
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	_cleanup_(pf_run_values_done) PfRunValues rv = { 0 };
	_cleanup_(freep) Add *adds = NULL;
	PfSourceOptions so = { 0 };
	const char *out;
	size_t n_adds = 0;
	OutputOptions oo = { 0 };
	CardsOptions co = { 0 };
	Cold *cold = NULL;
	bool all = false;
	int64_t now;
	int c, r, ret = PF_EXIT_FAILURE;

	adds = calloc(MAX_ADDS, sizeof(Add));
	if (!adds || !options)
		return PF_EXIT_FAILURE;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hqy", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			if (verify)
				help_verify();
			else
				main_help();
			ret = PF_EXIT_OK;
			goto out;
		case 'a':
			if (n_adds >= MAX_ADDS) {
				ret = usage_error(NULL, "more than %u --add options", MAX_ADDS);
				goto out;
			}
			r = parse_add(optarg, &adds[n_adds]);
			if (r < 0) {
				ret = usage_error(
					NULL,
					"--add '%s': expected LOCAL=PART:/path[:MODE[:UID:GID]]",
					optarg);
				goto out;
			}
			n_adds++;
			break;
		case 'N':
			so.no_cache = true;
			break;
		case IMAGE_OPTION_SHA256:
			ret = image_option_sha256(&so, verify ? "verify" : NULL, optarg);
			if (ret != PF_EXIT_OK)
				goto out;
			ret = PF_EXIT_FAILURE;
			break;
		case 'q':
			arg_quiet = true;
			break;
		case 'y':
			oo.yes = true;
			break;
		case 'F':
			oo.force = true;
			break;
		case 'D':
			oo.discard = true;
			break;
		case 'V':
			oo.no_verify = true;
			break;
		case 'P':
			if (streq(optarg, "auto"))
				oo.progress = PROGRESS_AUTO;
			else if (streq(optarg, "bar"))
				oo.progress = PROGRESS_BAR;
			else if (streq(optarg, "json"))
				oo.progress = PROGRESS_JSON;
			else if (streq(optarg, "none"))
				oo.progress = PROGRESS_NONE;
			else {
				ret = usage_error(
					NULL, "--progress '%s': expected auto, bar, json or none",
					optarg);
				goto out;
			}
			break;
		case 'A':
			all = true;
			break;
		case 'O':
			co.sel.only = optarg;
			break;
		case 'X':
			co.sel.exclude = optarg;
			break;
		case 'R':
			co.record = optarg;
			break;
		case 'E':
			if (streq(optarg, "skip"))
				co.on_error = ON_ERROR_SKIP;
			else if (streq(optarg, "stop"))
				co.on_error = ON_ERROR_STOP;
			else if (streq(optarg, "ask"))
				co.on_error = ON_ERROR_ASK;
			else {
				ret = usage_error(NULL,
						  "--on-error '%s': expected skip, stop or ask",
						  optarg);
				goto out;
			}
			break;
		default:
			if (c >= NODE_OPTION_BASE) {
				ret = node_option_parse(&no, c, optarg);
				if (ret != 0)
					goto out;
				ret = PF_EXIT_FAILURE;
				break;
			}
			ret = usage_error(verify ? "verify" : NULL, "unknown option '%s'",
					  argv[optind - 1]);
			goto out;
		}
	}
	ret = node_options_finish(&no);
	if (ret != PF_EXIT_OK)
		goto out;
	ret = PF_EXIT_FAILURE;
	output_progress_mode = oo.progress;
	if (no.known_hosts && !no.spec.host_keys) {
		ret = usage_error(NULL, "--known-hosts goes with --host-keys");
		goto out;
	}
	if (all || co.sel.only || co.sel.exclude || co.record) {
		ret = cards(&co, all, verify, n_adds, &no, &oo, &so, argc - optind, argv + optind);
		goto out;
	}
	if (argc - optind != 2) {
		ret = usage_error(NULL, argc - optind < 2 ? "missing IMAGE or OUT.img"
							  : "too many arguments");
		goto out;
	}
	out = argv[optind + 1];

	r = pf_timestamp(&now);
	if (r < 0) {
		log_error("SOURCE_DATE_EPOCH='%s' is not a number of seconds",
			  getenv("SOURCE_DATE_EPOCH"));
		goto out;
	}

	/* Cold: a card from an .xz not in the cache yet is written while it is decoded. */
	if (!verify) {
		ret = cold_begin(argv[optind], out, &oo, &so, &cold);
		if (ret != PF_EXIT_OK)
			goto out;
		ret = PF_EXIT_FAILURE;
	}

	if (image_load(argv[optind], &so, &img) < 0)
		goto out;

	/* The target is checked before anything is done, let alone written. */
	if (!verify && !cold) {
		ret = output_check(img, out, &oo);
		if (ret != PF_EXIT_OK)
			goto out;
		ret = PF_EXIT_FAILURE;
	}

	if (verify && (node_options_given(&no) || n_adds > 0)) {
		ret = verify_run_values(&img, argv[optind], out, &so, &no, adds, n_adds, &now, &rv);
		if (ret != PF_EXIT_OK)
			goto out;
		ret = PF_EXIT_FAILURE;
	}
	if (node_options_given(&no)) {
		ret = node_plan(img, &no, false, &nb);
		if (ret != PF_EXIT_OK)
			goto out;
		ret = PF_EXIT_FAILURE;
		r = pf_node_apply(img, &nb, now);
		if (r < 0) {
			log_error_errno(r, "'%s': node '%s'", pf_image_path(img), nb.cfg.hostname);
			goto out;
		}
		log_info("Node %s (%s image, user '%s'%s%s): %zu changes", nb.cfg.hostname,
			 pf_flavor_name(nb.flavor->flavor), nb.plan->user,
			 nb.plan->instance_id ? ", instance-id " : "",
			 nb.plan->instance_id ? nb.plan->instance_id : "", nb.plan->n_ops);
		for (size_t i = 0; i < nb.n_host_keys; i++)
			log_info("Host key %s %s", nb.host_keys[i].type,
				 nb.host_keys[i].fingerprint);
	}

	for (size_t i = 0; i < n_adds; i++)
		if (apply_add(img, &adds[i], now) < 0)
			goto out;
	r = pf_image_sync(img);
	if (r < 0) {
		log_error_errno(r, "'%s'", pf_image_path(img));
		goto out;
	}

	if (cold && cold_handover(cold, out) != PF_EXIT_OK)
		goto out;
	ret = verify ? output_verify(img, out, &oo) : output_write(img, out, &oo);
	if (ret == PF_EXIT_OK && !verify && no.known_hosts && nb.n_host_keys > 0)
		ret = known_hosts_update(no.known_hosts, &nb);
out:
	ret = cold_end(&cold, ret);
	for (size_t i = 0; i < n_adds; i++) {
		free(adds[i].local);
		free(adds[i].dest);
	}
	return ret;
}

int cmd_write(int argc, char **argv)
{
	return run(argc, argv, false);
}

int cmd_verify(int argc, char **argv)
{
	return run(argc, argv, true);
}
