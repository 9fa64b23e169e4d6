/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cards.h"
#include "cmd/cmd.h"
#include "build/cluster.h"
#include "build/report.h"
#include "build/result.h"
#include "util/error.h"
#include "util/strutil.h"

#define READERS_MAX 32u
#define RECORD_LINE_MAX (64u * 1024)

typedef enum NodeState {
	NODE_PENDING,
	NODE_TAKEN,    /* a reader is on it */
	NODE_DONE,     /* flashed and verified in this run */
	NODE_RECORDED, /* done in an earlier run, says the record */
	NODE_FAILED,   /* failed and skipped */
} NodeState;

typedef struct Node {
	const PfInventoryRow *row;
	const char *hostname;
	NodeState state;
} Node;

typedef enum CardResult {
	CARD_OK,
	CARD_FAILED,
	CARD_INTERRUPTED,
} CardResult;

struct Cards;

typedef struct Reader {
	struct Cards *c;
	const char *path;
	pthread_t thread;
	/* What the display shows, under the stderr lock: */
	const char *node;
	const char *phase;
	uint64_t done, total;
	double phase_start;
} Reader;

typedef struct Cards {
	const CardsOptions *o;
	PfImage *base;
	PfInventory *inv;
	PfFlavorInfo *flavor;
	int64_t now;
	Node *nodes;
	size_t n_nodes;
	Reader readers[READERS_MAX];
	size_t n_readers;
	pthread_mutex_t lock; /* nodes[].state, stop, the record */
	bool stop;
	FILE *record;
	ProgressMode mode;
	size_t drawn; /* status lines on screen below the log */
} Cards;

static void wall_time(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- the display: one line per reader -------------------------------------------------- */

static void reader_line(const Reader *r, char *buf, size_t size)
{
	char d[32], t[32], rate[32];
	double el = pf_monotonic_seconds() - r->phase_start;

	if (r->total && r->phase && (streq(r->phase, "write") || streq(r->phase, "verify")))
		snprintf(buf, size, "%-12s %-12s %-7s %5.1f%%  %s / %s  %s/s", r->path,
			 r->node ?: "", r->phase, 100.0 * (double)r->done / (double)r->total,
			 pf_format_bytes(d, sizeof(d), r->done),
			 pf_format_bytes(t, sizeof(t), r->total),
			 pf_format_bytes(rate, sizeof(rate), output_rate(r->done, el)));
	else
		snprintf(buf, size, "%-12s %-12s %s", r->path, r->node ?: "", r->phase ?: "");
}

/* With stderr locked. */
static void display_clear(Cards *c)
{
	if (c->drawn) {
		fprintf(stderr, "\033[%zuA\033[J", c->drawn);
		c->drawn = 0;
	}
}

static void display_draw(Cards *c)
{
	char line[256];

	for (size_t i = 0; i < c->n_readers; i++) {
		reader_line(&c->readers[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	c->drawn = c->n_readers;
	fflush(stderr);
}

static void display_hook(void *userdata, bool before)
{
	if (before)
		display_clear(userdata);
	else
		display_draw(userdata);
}

/* The reader's state changed: redraw, or one JSON line with the device. */
static void show(Reader *r, const char *phase, uint64_t done, uint64_t total)
{
	Cards *c = r->c;

	log_lock();
	if (!r->phase || !phase || !streq(r->phase, phase))
		r->phase_start = pf_monotonic_seconds();
	r->phase = phase;
	r->done = done;
	r->total = total;
	if (c->mode == PROGRESS_BAR) {
		display_clear(c);
		display_draw(c);
	} else if (c->mode == PROGRESS_JSON && phase) {
		json_object *o = json_object_new_object();
		double el = pf_monotonic_seconds() - r->phase_start;

		json_object_object_add(o, "device", json_object_new_string(r->path));
		json_object_object_add(o, "node", r->node ? json_object_new_string(r->node) : NULL);
		json_object_object_add(o, "phase", json_object_new_string(phase));
		json_object_object_add(o, "done", json_object_new_int64((int64_t)done));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)total));
		json_object_object_add(o, "rate",
				       json_object_new_int64((int64_t)output_rate(done, el)));
		fprintf(stderr, "%s\n",
			json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
		fflush(stderr);
		json_object_put(o);
	}
	log_unlock();
}

static void flash_progress(void *userdata, const char *phase, uint64_t done, uint64_t total)
{
	Reader *r = userdata;

	if (phase)
		show(r, phase, done, total);
}

/* ---- the record: JSON lines ------------------------------------------------------------- */

/* Marks the nodes a record (JSON lines, ours) says are done: "result": "ok". */
static int record_read(Cards *c, const char *path)
{
	_cleanup_(freep) char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : pf_error_set(-errno, "'%s': %m", path);
	while (r >= 0 && (n = getline(&line, &cap, f)) > 0) {
		const char *node = NULL, *result = NULL;
		json_object *o;

		lineno++;
		if ((size_t)n > RECORD_LINE_MAX)
			continue;
		o = json_tokener_parse(line);
		r = pf_report_record_line(o, path, lineno, &node, &result);
		if (r >= 0 && node && result && streq(result, "ok"))
			for (size_t i = 0; i < c->n_nodes; i++)
				if (streq(c->nodes[i].hostname, node))
					c->nodes[i].state = NODE_RECORDED;
		json_object_put(o);
	}
	fclose(f);
	return r;
}

typedef struct CardRecord {
	const char *node;
	const Reader *reader;
	char model[128], serial[128]; /* "" when unknown */
	char host_key[256];	      /* with --host-keys: the public key line */
	char fingerprint[64];
	char start[32], end[32];
	uint64_t bytes;
	int exit_code;
	bool verified;
} CardRecord;

static void record_write(Cards *c, const CardRecord *cr)
{
	json_object *o;
	const char *verify, *result;

	if (!c->record)
		return;
	result = cr->exit_code == PF_EXIT_OK		? "ok"
		 : cr->exit_code == PF_EXIT_INTERRUPTED ? "interrupted"
							: "failed";
	verify = cr->exit_code == PF_EXIT_OK	   ? (cr->verified ? "ok" : "not-verified")
		 : cr->exit_code == PF_EXIT_VERIFY ? "mismatch"
						   : NULL;
	o = json_object_new_object();
	json_object_object_add(o, "node", json_object_new_string(cr->node));
	json_object_object_add(o, "device", json_object_new_string(cr->reader->path));
	json_object_object_add(o, "model", cr->model[0] ? json_object_new_string(cr->model) : NULL);
	json_object_object_add(o, "serial",
			       cr->serial[0] ? json_object_new_string(cr->serial) : NULL);
	json_object_object_add(o, "start", json_object_new_string(cr->start));
	json_object_object_add(o, "end", json_object_new_string(cr->end));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)cr->bytes));
	json_object_object_add(o, "verify", verify ? json_object_new_string(verify) : NULL);
	if (cr->host_key[0]) {
		json_object_object_add(o, "host_key", json_object_new_string(cr->host_key));
		json_object_object_add(o, "host_key_fingerprint",
				       json_object_new_string(cr->fingerprint));
	}
	json_object_object_add(o, "result", json_object_new_string(result));
	pthread_mutex_lock(&c->lock);
	fprintf(c->record, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(c->record);
	fsync(fileno(c->record));
	pthread_mutex_unlock(&c->lock);
	json_object_put(o);
}

/* ---- one reader ------------------------------------------------------------------------- */

/* The size of the medium in path: 0 when there is none. */
static int media_bytes(const char *path, uint64_t *ret)
{
	uint64_t size = 0;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		if (e == ENOMEDIUM || e == ENXIO || e == ENOENT || e == ENODEV) {
			*ret = 0;
			return 0;
		}
		return pf_error_set(-e, "'%s': %s", path, strerror(e));
	}
	if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
		e = errno;
		close(fd);
		if (e == ENOMEDIUM || e == ENXIO) {
			*ret = 0;
			return 0;
		}
		return pf_error_set(-e, "'%s': cannot read its size: %s", path, strerror(e));
	}
	close(fd);
	*ret = size;
	return 0;
}

static bool stopping(Cards *c)
{
	bool s;

	pthread_mutex_lock(&c->lock);
	s = c->stop;
	pthread_mutex_unlock(&c->lock);
	return s || output_interrupted();
}

/* The first node no reader has, or NULL. With c->lock held. */
static Node *next_pending(Cards *c)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].state == NODE_PENDING)
			return &c->nodes[i];
	return NULL;
}

/* True while some node waits for a reader (its card may still be on the way). */
static bool work_pending(Cards *c)
{
	bool p;

	pthread_mutex_lock(&c->lock);
	p = !c->stop && next_pending(c);
	pthread_mutex_unlock(&c->lock);
	return p;
}

/*
 * Waits until the reader has a card (present) or has none (!present). Returns 0, -ECANCELED
 * when stopping, or 1 when waiting for a removal is pointless: no node waits for a card any
 * more (another reader took the last one, or the run stops), so the run need not wait for
 * this card to be taken out.
 */
static int wait_media(Reader *r, bool present)
{
	struct timespec ts;
	double poll = r->c->o->poll_seconds > 0 ? r->c->o->poll_seconds : 0.25;
	uint64_t size;
	int e;

	ts.tv_sec = (time_t)poll;
	ts.tv_nsec = (long)((poll - (double)ts.tv_sec) * 1e9);
	for (;;) {
		e = media_bytes(r->path, &size);
		if (e < 0)
			return e;
		if ((size > 0) == present)
			return 0;
		/* Removal is waited for even when stopping: the card is then safe to take. */
		if (present && stopping(r->c))
			return -ECANCELED;
		if (!present && output_interrupted())
			return -ECANCELED;
		if (!present && !work_pending(r->c))
			return 1;
		nanosleep(&ts, NULL);
	}
}

static CardResult flash_node(Reader *r, Node *n, CardRecord *cr)
{
	Cards *c = r->c;
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	_cleanup_(pf_node_result_done) PfNodeResult res = { .hostname = n->hostname };
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	const PfTargetInfo *info;
	int e;

	e = pf_node_settings(&c->o->no->spec, c->inv, n->row, &nb.cfg);
	if (e >= 0)
		e = pf_node_image(c->base, &c->o->no->spec, c->flavor, c->now, &img, &nb);
	if (e >= 0)
		e = pf_node_result_describe(&res, &nb, NULL);
	if (e < 0) {
		log_error_errno(e, "%s", n->hostname);
		cr->exit_code = PF_EXIT_FAILURE;
		return CARD_FAILED;
	}
	if (nb.n_host_keys > 0) {
		const PfHostKey *k = &nb.host_keys[0];

		snprintf(cr->host_key, sizeof(cr->host_key), "%.*s",
			 (int)strcspn(k->public_line, "\n"), k->public_line);
		snprintf(cr->fingerprint, sizeof(cr->fingerprint), "%s", k->fingerprint);
	}
	show(r, "wait-card", 0, 0);
	log_info("%s: put in the card for %s", r->path, n->hostname);
	e = wait_media(r, true);
	if (e == -ECANCELED)
		return CARD_INTERRUPTED;
	if (e < 0) {
		log_error_errno(e, "%s", r->path);
		cr->exit_code = PF_EXIT_FAILURE;
		return CARD_FAILED;
	}
	wall_time(cr->start);
	cr->exit_code = output_open(img, r->path, &c->o->out, &t);
	if (cr->exit_code != PF_EXIT_OK)
		return CARD_FAILED;
	info = pf_target_info(t);
	output_describe(info);
	snprintf(cr->model, sizeof(cr->model), "%s", info->model ?: "");
	snprintf(cr->serial, sizeof(cr->serial), "%s", info->serial ?: "");
	log_info("%s: writing %s", r->path, n->hostname);
	cr->verified = !c->o->out.no_verify;
	cr->exit_code = output_flash(img, t, &c->o->out, flash_progress, r, &cr->bytes);
	if (cr->exit_code == PF_EXIT_OK && c->o->no->known_hosts && nb.n_host_keys > 0) {
		pthread_mutex_lock(&c->lock);
		e = pf_known_hosts_update(c->o->no->known_hosts, &res);
		pthread_mutex_unlock(&c->lock);
		/* The card is good: its key is on record (--record) even if this failed. */
		if (e < 0)
			log_error_errno(e, "--known-hosts: %s's host key is not in it",
					n->hostname);
	}
	if (cr->exit_code == PF_EXIT_INTERRUPTED)
		return CARD_INTERRUPTED;
	return cr->exit_code == PF_EXIT_OK ? CARD_OK : CARD_FAILED;
}

/* What to do after a failed card: skip the node, retry it, or stop. */
static OnError decide(Reader *r, Node *n)
{
	const CardsOptions *o = r->c->o;
	char answer[16] = "";

	if (o->on_error != ON_ERROR_ASK)
		return o->on_error;
	if (!isatty(STDIN_FILENO))
		return ON_ERROR_STOP;
	log_lock();
	display_clear(r->c);
	fprintf(stderr,
		"%s: the card for %s failed. [r]etry it with another card, [s]kip %s, "
		"or [q]uit? ",
		r->path, n->hostname, n->hostname);
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin))
		answer[0] = 'q';
	log_unlock();
	if (answer[0] == 's')
		return ON_ERROR_SKIP;
	if (answer[0] == 'r')
		return ON_ERROR_ASK; /* retry */
	return ON_ERROR_STOP;
}

static void *reader_main(void *userdata)
{
	Reader *r = userdata;
	Cards *c = r->c;

	for (;;) {
		CardRecord cr = { .reader = r };
		CardResult res;
		Node *n, *next;

		pthread_mutex_lock(&c->lock);
		n = c->stop ? NULL : next_pending(c);
		if (n)
			n->state = NODE_TAKEN;
		pthread_mutex_unlock(&c->lock);
		if (!n || output_interrupted())
			break;

		r->node = n->hostname;
		cr.node = n->hostname;
		res = flash_node(r, n, &cr);
		/* Every card tried goes on record, whatever became of it. */
		if (cr.start[0]) {
			wall_time(cr.end);
			record_write(c, &cr);
		}
		if (res == CARD_INTERRUPTED) {
			pthread_mutex_lock(&c->lock);
			n->state = NODE_PENDING;
			pthread_mutex_unlock(&c->lock);
			break;
		}
		if (res == CARD_OK) {
			pthread_mutex_lock(&c->lock);
			n->state = NODE_DONE;
			next = next_pending(c);
			pthread_mutex_unlock(&c->lock);
			show(r, "done", 0, 0);
			if (next)
				log_info(
					"%s done — take the card out of %s, put in the card for %s",
					n->hostname, r->path, next->hostname);
			else
				log_info("%s done — take the card out of %s", n->hostname, r->path);
		} else {
			OnError d;

			show(r, "failed", 0, 0);
			d = decide(r, n);
			pthread_mutex_lock(&c->lock);
			n->state = d == ON_ERROR_ASK ? NODE_PENDING : NODE_FAILED;
			if (d == ON_ERROR_STOP)
				c->stop = true;
			pthread_mutex_unlock(&c->lock);
			log_error("%s: %s%s", n->hostname,
				  d == ON_ERROR_SKIP ? "failed, skipped"
				  : d == ON_ERROR_STOP
					  ? "failed, stopping after the cards being written"
					  : "failed, will retry with another card",
				  d == ON_ERROR_SKIP || d == ON_ERROR_STOP
					  ? " (run again with the same --record to retry it)"
					  : "");
			if (d == ON_ERROR_STOP)
				break;
		}
		show(r, "wait-removal", 0, 0);
		if (wait_media(r, false) != 0)
			break;
		r->node = NULL;
	}
	r->node = NULL;
	show(r, "finished", 0, 0);
	return NULL;
}

/* ---- the run ----------------------------------------------------------------------------- */

/* Every safety rule, before any card is written: for readers that hold a card now, all of
 * them; for empty readers, the device itself (a whole removable disk) when a card arrives. */
static int check_targets(Cards *c)
{
	struct stat st[READERS_MAX];

	for (size_t i = 0; i < c->n_readers; i++) {
		const char *p = c->readers[i].path;
		uint64_t size;
		int e;

		if (stat(p, &st[i]) < 0) {
			log_error("'%s': %m", p);
			return PF_EXIT_FAILURE;
		}
		if (!S_ISBLK(st[i].st_mode)) {
			log_error("'%s' is not a block device: --all writes cards in readers (use "
				  "'piflash batch' for image files)",
				  p);
			return PF_EXIT_USAGE;
		}
		for (size_t k = 0; k < i; k++)
			if (st[k].st_rdev == st[i].st_rdev) {
				log_error("'%s' and '%s' are the same device", c->readers[k].path,
					  p);
				return PF_EXIT_USAGE;
			}
		e = media_bytes(p, &size);
		if (e < 0) {
			log_error_errno(e, "'%s'", p);
			return PF_EXIT_FAILURE;
		}
		if (size > 0) {
			_cleanup_(pf_target_freep) PfTarget *t = NULL;
			e = output_open(c->base, p, &c->o->out, &t);

			if (e != PF_EXIT_OK)
				return e;
			output_describe(pf_target_info(t));
		} else
			log_info("%s: no card in it yet", p);
	}
	return PF_EXIT_OK;
}

static int confirm_all(Cards *c, size_t todo)
{
	char answer[16] = "";

	if (c->o->out.yes)
		return PF_EXIT_OK;
	if (!isatty(STDIN_FILENO)) {
		log_error("not asking for confirmation without a terminal; add --yes to write the "
			  "cards");
		return PF_EXIT_SAFETY;
	}
	fprintf(stderr, "Write %zu node%s to the cards put in ", todo, todo == 1 ? "" : "s");
	for (size_t i = 0; i < c->n_readers; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", c->readers[i].path);
	fprintf(stderr, "? Everything on those cards will be lost. [y/N] ");
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin) ||
	    !(streq(answer, "y\n") || streq(answer, "yes\n") || streq(answer, "Y\n"))) {
		log_error("not confirmed, nothing written");
		return PF_EXIT_SAFETY;
	}
	return PF_EXIT_OK;
}

static int summary(Cards *c)
{
	size_t done = 0, recorded = 0, failed = 0, left = 0;

	for (size_t i = 0; i < c->n_nodes; i++)
		switch (c->nodes[i].state) {
		case NODE_DONE:
			done++;
			break;
		case NODE_RECORDED:
			recorded++;
			break;
		case NODE_FAILED:
			failed++;
			break;
		default:
			left++;
		}
	if (!failed && !left) {
		/* Every node is done: the run is over, whatever a late Ctrl-C says. */
		fprintf(stderr,
			"piflash: all %zu node%s done: %zu written, %zu done before (record)\n",
			c->n_nodes, c->n_nodes == 1 ? "" : "s", done, recorded);
		return PF_EXIT_OK;
	}
	fprintf(stderr,
		"piflash: %zu node%s: %zu written, %zu done before (record), %zu failed, "
		"%zu not written\n",
		c->n_nodes, c->n_nodes == 1 ? "" : "s", done, recorded, failed, left);
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].state == NODE_FAILED || c->nodes[i].state == NODE_PENDING ||
		    c->nodes[i].state == NODE_TAKEN)
			fprintf(stderr, "  %s: %s\n", c->nodes[i].hostname,
				c->nodes[i].state == NODE_FAILED ? "failed" : "not written");
	if (output_interrupted())
		return PF_EXIT_INTERRUPTED;
	return failed || left ? PF_EXIT_FAILURE : PF_EXIT_OK;
}

static int load_nodes(Cards *c)
{
	_cleanup_(freep) size_t *rows = NULL;
	size_t n_rows = 0, bad = 0;
	int r;

	r = pf_inventory_load_flags(c->o->no->spec.inventory, PF_INVENTORY_KEEP_BAD_ROWS, &c->inv);
	if (r < 0) {
		log_error_errno(r, "inventory '%s'", c->o->no->spec.inventory);
		return PF_EXIT_FAILURE;
	}
	r = pf_selection_apply(c->inv, &c->o->sel, &rows, &n_rows);
	if (r == -EINVAL)
		return usage_error(NULL, "%s", pf_error_message(r));
	if (r < 0)
		return PF_EXIT_FAILURE;
	/* A bad row stops the run before any card is written: fix it, or leave it out. */
	for (size_t i = 0; i < n_rows; i++)
		if (c->inv->rows[rows[i]].error) {
			log_error("%s", c->inv->rows[rows[i]].error);
			bad++;
		}
	if (bad) {
		log_error("%zu node%s of '%s' cannot be built; nothing written (fix %s, or leave "
			  "%s out with --only)",
			  bad, bad == 1 ? "" : "s", c->inv->path, bad == 1 ? "it" : "them",
			  bad == 1 ? "it" : "them");
		return PF_EXIT_FAILURE;
	}
	if (n_rows == 0) {
		log_error("no node of '%s' is selected", c->inv->path);
		return PF_EXIT_FAILURE;
	}
	c->nodes = calloc(n_rows, sizeof(Node));
	if (!c->nodes)
		return PF_EXIT_FAILURE;
	for (size_t i = 0; i < n_rows; i++)
		c->nodes[i] = (Node){
			.row = &c->inv->rows[rows[i]],
			.hostname = pf_row_hostname(c->inv, &c->inv->rows[rows[i]]),
		};
	c->n_nodes = n_rows;
	return PF_EXIT_OK;
}

/* Every node to write is planned first: one that would fail (nobody could log into it, a
 * bad key or template) stops the run before any card is written, not after the cards before
 * it. */
static int check_nodes(Cards *c)
{
	size_t bad = 0;

	for (size_t i = 0; i < c->n_nodes; i++) {
		int e;

		if (c->nodes[i].state == NODE_RECORDED)
			continue;
		e = pf_node_check(c->base, &c->o->no->spec, c->flavor, c->inv, c->nodes[i].row);
		if (e < 0) {
			log_error_errno(e, "%s", c->nodes[i].hostname);
			bad++;
		}
	}
	if (bad) {
		log_error("%zu node%s of '%s' cannot be built; nothing written", bad,
			  bad == 1 ? "" : "s", c->inv->path);
		return PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

static int run(Cards *c)
{
	const CardsOptions *o = c->o;
	size_t todo = 0;
	int r;

	if (o->n_targets > READERS_MAX)
		return usage_error(NULL, "more than %u card readers", READERS_MAX);
	if (pf_timestamp(&c->now) < 0) {
		log_error("SOURCE_DATE_EPOCH='%s' is not a number of seconds",
			  getenv("SOURCE_DATE_EPOCH"));
		return PF_EXIT_FAILURE;
	}
	r = load_nodes(c);
	if (r != PF_EXIT_OK)
		return r;
	if (o->record) {
		r = record_read(c, o->record);
		if (r < 0) {
			log_error_errno(r, "--record");
			return PF_EXIT_FAILURE;
		}
	}
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].state == NODE_RECORDED)
			log_info("%s: done in an earlier run (%s), skipped", c->nodes[i].hostname,
				 o->record);
		else
			todo++;
	if (todo == 0) {
		log_info("Every node is done already, says %s", o->record);
		return PF_EXIT_OK;
	}

	if (image_load(o->image, &o->source, &c->base) < 0)
		return PF_EXIT_FAILURE;
	r = node_flavor(c->base, o->no, &c->flavor);
	if (r != PF_EXIT_OK)
		return r;
	r = check_nodes(c);
	if (r != PF_EXIT_OK)
		return r;

	c->n_readers = o->n_targets;
	for (size_t i = 0; i < c->n_readers; i++)
		c->readers[i] = (Reader){ .c = c, .path = o->targets[i], .phase = "idle" };
	r = check_targets(c);
	if (r != PF_EXIT_OK)
		return r;
	r = confirm_all(c, todo);
	if (r != PF_EXIT_OK)
		return r;
	if (o->record) {
		c->record = fopen(o->record, "ae");
		if (!c->record) {
			log_error("--record '%s': %m", o->record);
			return PF_EXIT_FAILURE;
		}
	}

	c->mode = o->out.progress;
	if (c->mode == PROGRESS_AUTO)
		c->mode = isatty(STDERR_FILENO) ? PROGRESS_BAR : PROGRESS_NONE;
	if (c->mode == PROGRESS_BAR && arg_quiet)
		c->mode = PROGRESS_NONE;
	if (c->mode == PROGRESS_BAR)
		log_set_hook(display_hook, c);

	log_info("Writing %zu node%s of '%s' (%s image) to the cards put in %zu reader%s", todo,
		 todo == 1 ? "" : "s", c->inv->path, pf_flavor_name(c->flavor->flavor),
		 c->n_readers, c->n_readers == 1 ? "" : "s");
	output_signals_catch();
	for (size_t i = 0; i < c->n_readers; i++)
		if (pthread_create(&c->readers[i].thread, NULL, reader_main, &c->readers[i]) != 0) {
			log_error("cannot start a thread for %s", c->readers[i].path);
			pthread_mutex_lock(&c->lock);
			c->stop = true;
			pthread_mutex_unlock(&c->lock);
			c->n_readers = i;
			break;
		}
	for (size_t i = 0; i < c->n_readers; i++)
		pthread_join(c->readers[i].thread, NULL);
	output_signals_restore();
	if (c->mode == PROGRESS_BAR) {
		log_lock();
		display_clear(c);
		log_unlock();
		log_set_hook(NULL, NULL);
	}
	return summary(c);
}

int cards_run(const CardsOptions *o)
{
	Cards c = { .o = o, .lock = PTHREAD_MUTEX_INITIALIZER };
	int r;

	r = run(&c);
	if (c.record)
		fclose(c.record);
	pf_image_free(c.base);
	pf_flavor_info_free(c.flavor);
	pf_inventory_free(c.inv);
	free(c.nodes);
	return r;
}
