/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash batch --inventory cluster.csv IMAGE --out-dir DIR: one image per node of the
 * inventory, as build artifacts, and what the operator needs next to them: SHA256SUMS,
 * report.json, inventory.ini (Ansible), hosts and known_hosts.
 *
 * The run itself is build/batch.h's; here are its options, its messages and the summary.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build/batch.h"
#include "build/cluster.h"
#include "cmd/cmd.h"
#include "cmd/node.h"
#include "cmd/output.h"
#include "util/error.h"
#include "util/strutil.h"

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

/* ---- what the run says ------------------------------------------------------------------ */

typedef struct Say {
	size_t n_selected;
} Say;

static void on_node(void *userdata, const PfNodeResult *j, size_t done)
{
	const Say *say = userdata;
	char a[32], s[32];

	switch (j->status) {
	case PF_NODE_FAILED:
		log_error("%s: %s", j->hostname, j->error ?: "failed");
		break;
	case PF_NODE_REUSED:
		log_info("%s: %s is up to date", j->hostname, j->artifact);
		break;
	default:
		log_info("%s: wrote %s (%s, %s image) in %.2f s [%zu/%zu]", j->hostname,
			 j->artifact, pf_format_bytes(a, sizeof(a), j->file_bytes),
			 pf_format_bytes(s, sizeof(s), j->image_bytes), j->seconds, done,
			 say->n_selected);
		break;
	}
}

static void on_message(void *userdata, bool error, const char *text)
{
	if (error)
		log_error("%s", text);
	else
		log_info("%s", text);
}

static void summary(const PfNodeResult *res, size_t n, size_t n_selected, const char *out_dir,
		    double seconds, size_t *ret_failed)
{
	size_t count[_PF_NODE_STATUS_MAX] = { 0 }, o = 0;
	char more[128] = "";

	for (size_t i = 0; i < n; i++)
		count[res[i].status]++;
	/* The summary is printed even with -q: it is the answer to the run. Errors may quote
	 * the image: log_notice() escapes them. */
	if (count[PF_NODE_PENDING])
		o = (size_t)snprintf(more, sizeof(more), ", %zu not built (interrupted)",
				     count[PF_NODE_PENDING]);
	if (count[PF_NODE_KEPT])
		snprintf(more + o, sizeof(more) - o, "; %zu more kept from earlier runs",
			 count[PF_NODE_KEPT]);
	log_notice("piflash batch: %zu node%s in %s: %zu built, %zu up to date, %zu failed%s "
		   "(%.1f s)",
		   n_selected, n_selected == 1 ? "" : "s", out_dir, count[PF_NODE_OK],
		   count[PF_NODE_REUSED], count[PF_NODE_FAILED], more, seconds);
	for (size_t i = 0; i < n; i++)
		if (res[i].status == PF_NODE_FAILED)
			log_notice("  failed: %s: %s", res[i].hostname,
				   res[i].error ?: "unknown error");
	*ret_failed = count[PF_NODE_FAILED];
}

/* A failure of the run (not of one node): its detail; refusals to touch the input are 4. */
static int fail(int r)
{
	log_error_detail(r);
	return r == -EPERM ? PF_EXIT_SAFETY : PF_EXIT_FAILURE;
}

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

/* The options of batch; returns PF_EXIT_OK, or the exit code to stop with (*done for --help). */
static int parse(int argc, char **argv, const struct option *options, PfBatchOptions *bo,
		 PfSelection *sel, PfSourceOptions *so, NodeOptions *no, bool *done)
{
	uint64_t v;
	int c, r;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:q", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help(options);
			*done = true;
			return PF_EXIT_OK;
		case 'o':
			bo->out_dir = optarg;
			break;
		case 'f':
			if (pf_artifact_format_from_name(optarg, &bo->format) < 0)
				return usage_error(
					"batch",
					"--format '%s': expected img, img.zst, img.xz or "
					"img.gz",
					optarg);
			break;
		case 'b':
			bo->bmap = true;
			break;
		case 'j':
			if (pf_parse_u64(optarg, &v) < 0 || v < 1 || v > PF_BATCH_JOBS_MAX)
				return usage_error("batch", "--jobs '%s': expected 1 to %u", optarg,
						   PF_BATCH_JOBS_MAX);
			bo->jobs = (unsigned)v;
			break;
		case 'O':
			sel->only = optarg;
			break;
		case 'X':
			sel->exclude = optarg;
			break;
		case 'S':
			if (pf_selection_parse_shard(optarg, sel) < 0)
				return usage_error("batch",
						   "--shard '%s': expected K/N with 1 <= K <= N",
						   optarg);
			break;
		case 'F':
			bo->force = true;
			break;
		case 'N':
			so->no_cache = true;
			break;
		case IMAGE_OPTION_SHA256:
			r = image_option_sha256(so, "batch", optarg);
			if (r != PF_EXIT_OK)
				return r;
			break;
		case 'q':
			log_quiet = true;
			break;
		default:
			if (c >= NODE_OPTION_BASE) {
				r = node_option_parse(no, c, optarg);
				if (r != 0)
					return r;
				break;
			}
			return not_for_batch_error(argv[optind - 1]);
		}
	}
	r = node_options_finish(no);
	if (r != PF_EXIT_OK)
		return r;
	if (argc - optind != 1)
		return usage_error("batch",
				   argc - optind < 1 ? "missing IMAGE" : "too many arguments");
	if (!no->spec.inventory)
		return usage_error("batch", "--inventory FILE.csv is needed");
	if (!bo->out_dir)
		return usage_error("batch", "--out-dir DIR is needed");
	return node_options_check_cluster(no, "batch");
}

/* The inventory and the rows this run builds. Prints; returns an exit code. */
static int select_rows(const NodeOptions *no, const PfSelection *sel, PfInventory **inv,
		       size_t **rows, size_t *n_rows)
{
	int r;

	r = pf_inventory_load_flags(no->spec.inventory, PF_INVENTORY_KEEP_BAD_ROWS, inv);
	if (r < 0) {
		log_error_errno(r, "inventory '%s'", no->spec.inventory);
		return PF_EXIT_FAILURE;
	}
	r = pf_selection_apply(*inv, sel, rows, n_rows);
	if (r == -EINVAL)
		return usage_error(NULL, "%s", pf_error_message(r));
	if (r < 0)
		return PF_EXIT_FAILURE;
	/* An empty slice is a normal outcome of --shard when there are more runners than
	 * nodes; an empty --only/--exclude choice is a mistake. */
	if (*n_rows == 0 && !sel->shard_n) {
		log_error("no node of '%s' is selected", no->spec.inventory);
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

int cmd_batch(int argc, char **argv)
{
	_cleanup_(freep) struct option *options = node_merge_options_except(own, not_for_batch);
	_cleanup_(node_options_done) NodeOptions no = { 0 };
	_cleanup_(pf_image_freep) PfImage *base = NULL;
	_cleanup_(pf_inventory_freep) PfInventory *inv = NULL;
	_cleanup_(pf_flavor_info_freep) PfFlavorInfo *flavor = NULL;
	_cleanup_(freep) size_t *rows = NULL;
	_cleanup_(pf_batch_freep) PfBatch *b = NULL;
	PfBatchOptions bo = { .format = PF_ARTIFACT_IMG };
	PfSelection sel = { 0 };
	PfSourceOptions so = { 0 };
	const PfNodeResult *res;
	size_t n_rows = 0, n_res, failed = 0;
	Say say = { 0 };
	bool done = false;
	double start;
	int r, ret;

	if (!options)
		return PF_EXIT_FAILURE;
	ret = parse(argc, argv, options, &bo, &sel, &so, &no, &done);
	if (ret != PF_EXIT_OK || done)
		return ret;
	if (node_now(&bo.now) != PF_EXIT_OK)
		return PF_EXIT_FAILURE;
	ret = select_rows(&no, &sel, &inv, &rows, &n_rows);
	if (ret != PF_EXIT_OK)
		return ret;

	say.n_selected = n_rows;
	bo.spec = &no.spec;
	bo.cancel = pf_interrupt_flag();
	bo.events = (PfBatchEvents){ .node = on_node, .message = on_message, .userdata = &say };
	r = pf_batch_new(&bo, argv[optind], &b);
	if (r < 0)
		return fail(r);
	if (image_load(argv[optind], &so, &base) < 0)
		return PF_EXIT_FAILURE;
	r = pf_batch_set_image(b, base);
	if (r < 0)
		return fail(r);
	ret = node_flavor(base, &no, &flavor);
	if (ret != PF_EXIT_OK)
		return ret;
	r = pf_batch_plan(b, inv, flavor, rows, n_rows);
	if (r < 0)
		return fail(r);

	log_info("Building %zu node%s of '%s' from '%s' (%s image) into %s, %d at a time", n_rows,
		 n_rows == 1 ? "" : "s", no.spec.inventory, pf_image_path(base),
		 pf_flavor_name(flavor->flavor), bo.out_dir, r);
	start = pf_monotonic_seconds();
	pf_signals_catch();
	pf_batch_build(b);
	pf_signals_restore();

	r = pf_batch_write_listings(b, pf_monotonic_seconds() - start);
	if (r < 0)
		log_error_errno(r, "'%s': cannot write the report files", bo.out_dir);
	res = pf_batch_results(b, &n_res);
	summary(res, n_res, n_rows, bo.out_dir, pf_monotonic_seconds() - start, &failed);
	return pf_interrupted()	 ? PF_EXIT_INTERRUPTED
	       : r < 0 || failed ? PF_EXIT_FAILURE
				 : PF_EXIT_OK;
}
