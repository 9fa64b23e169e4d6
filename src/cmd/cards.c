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
#include "build/cards.h"
#include "build/cluster.h"
#include "build/report.h"
#include "build/result.h"
#include "util/error.h"
#include "util/strutil.h"

#define READERS_MAX 32u

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
	PfCards *q; /* the nodes, taken by the readers, and the record */
	Reader readers[READERS_MAX];
	size_t n_readers;
	pthread_mutex_t lock; /* --known-hosts */
	PfProgressMode mode;
	size_t drawn; /* status lines on screen below the log */
} Cards;

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
			 pf_format_bytes(rate, sizeof(rate), pf_progress_rate(r->done, el)));
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
	if (c->mode == PF_PROGRESS_BAR) {
		display_clear(c);
		display_draw(c);
	} else if (c->mode == PF_PROGRESS_JSON && phase) {
		json_object *o = json_object_new_object();
		double el = pf_monotonic_seconds() - r->phase_start;

		json_object_object_add(o, "device", json_object_new_string(r->path));
		json_object_object_add(o, "node", r->node ? json_object_new_string(r->node) : NULL);
		json_object_object_add(o, "phase", json_object_new_string(phase));
		json_object_object_add(o, "done", json_object_new_int64((int64_t)done));
		json_object_object_add(o, "total", json_object_new_int64((int64_t)total));
		json_object_object_add(o, "rate",
				       json_object_new_int64((int64_t)pf_progress_rate(done, el)));
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

/* A card tried, as the record holds it: the strings of PfCardRecord kept here. */
typedef struct CardRecord {
	PfCardRecord rec;
	char model[128], serial[128]; /* "" when unknown */
	char host_key[256];	      /* with --host-keys: the public key line */
	char fingerprint[64];
	int exit_code;
} CardRecord;

static void record_write(Cards *c, CardRecord *cr)
{
	cr->rec.model = cr->model;
	cr->rec.serial = cr->serial;
	cr->rec.host_key = cr->host_key;
	cr->rec.fingerprint = cr->fingerprint;
	cr->rec.ok = cr->exit_code == PF_EXIT_OK;
	cr->rec.interrupted = cr->exit_code == PF_EXIT_INTERRUPTED;
	cr->rec.verify_differs = cr->exit_code == PF_EXIT_VERIFY;
	pf_cards_record_write(c->q, &cr->rec);
}

/* ---- one reader ------------------------------------------------------------------------- */

/* Waits for a card to be put in (present) or taken out; see pf_card_wait(). */
static int wait_media(Reader *r, bool present)
{
	return pf_card_wait(r->c->q, r->path, present, r->c->o->poll_seconds, pf_interrupt_flag());
}

static CardResult flash_node(Reader *r, PfCardNode *n, CardRecord *cr)
{
	Cards *c = r->c;
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	const PfTargetInfo *info;
	int e;

	e = pf_node_settings(&c->o->no->spec, c->inv, n->row, &nb.cfg);
	if (e >= 0)
		e = pf_node_image(c->base, &c->o->no->spec, c->flavor, c->now, &img, &nb);
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
	pf_card_time(cr->rec.start);
	cr->exit_code = output_open(img, r->path, &c->o->out, &t);
	if (cr->exit_code != PF_EXIT_OK)
		return CARD_FAILED;
	info = pf_target_info(t);
	output_describe(info);
	snprintf(cr->model, sizeof(cr->model), "%s", info->model ?: "");
	snprintf(cr->serial, sizeof(cr->serial), "%s", info->serial ?: "");
	log_info("%s: writing %s", r->path, n->hostname);
	cr->rec.verified = !c->o->out.no_verify;
	cr->exit_code = output_flash(img, t, &c->o->out, flash_progress, r, &cr->rec.bytes);
	if (cr->exit_code == PF_EXIT_OK && c->o->no->known_hosts && nb.n_host_keys > 0) {
		pthread_mutex_lock(&c->lock);
		e = pf_known_hosts_add(c->o->no->known_hosts, &nb);
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
static OnError decide(Reader *r, PfCardNode *n)
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

/* After a card: the node done or failed (and what now), the reader free again. Returns
 * false when the reader stops. */
static bool card_after(Reader *r, PfCardNode *n, CardResult res)
{
	Cards *c = r->c;
	const char *next;
	OnError d;

	if (res == CARD_INTERRUPTED) {
		pf_cards_finish(c->q, n, PF_CARD_PENDING, false);
		return false;
	}
	if (res == CARD_OK) {
		next = pf_cards_finish(c->q, n, PF_CARD_DONE, false);
		show(r, "done", 0, 0);
		if (next)
			log_info("%s done — take the card out of %s, put in the card for %s",
				 n->hostname, r->path, next);
		else
			log_info("%s done — take the card out of %s", n->hostname, r->path);
		return true;
	}
	show(r, "failed", 0, 0);
	d = decide(r, n);
	pf_cards_finish(c->q, n, d == ON_ERROR_ASK ? PF_CARD_PENDING : PF_CARD_FAILED,
			d == ON_ERROR_STOP);
	log_error("%s: %s%s", n->hostname,
		  d == ON_ERROR_SKIP   ? "failed, skipped"
		  : d == ON_ERROR_STOP ? "failed, stopping after the cards being written"
				       : "failed, will retry with another card",
		  d == ON_ERROR_SKIP || d == ON_ERROR_STOP
			  ? " (run again with the same --record to retry it)"
			  : "");
	return d != ON_ERROR_STOP;
}

static void *reader_main(void *userdata)
{
	Reader *r = userdata;
	Cards *c = r->c;

	for (;;) {
		CardRecord cr = { .rec.device = r->path };
		PfCardNode *n = pf_cards_take(c->q);
		CardResult res;

		if (!n || pf_interrupted())
			break;
		r->node = n->hostname;
		cr.rec.node = n->hostname;
		res = flash_node(r, n, &cr);
		/* Every card tried goes on record, whatever became of it. */
		if (cr.rec.start[0]) {
			pf_card_time(cr.rec.end);
			record_write(c, &cr);
		}
		if (!card_after(r, n, res))
			break;
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
		e = pf_card_media_bytes(p, &size);
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
	size_t done = 0, recorded = 0, failed = 0, left = 0, n_nodes;
	const PfCardNode *nodes = pf_cards_nodes(c->q, &n_nodes);

	for (size_t i = 0; i < n_nodes; i++)
		switch (nodes[i].state) {
		case PF_CARD_DONE:
			done++;
			break;
		case PF_CARD_RECORDED:
			recorded++;
			break;
		case PF_CARD_FAILED:
			failed++;
			break;
		default:
			left++;
		}
	if (!failed && !left) {
		/* Every node is done: the run is over, whatever a late Ctrl-C says. */
		fprintf(stderr,
			"piflash: all %zu node%s done: %zu written, %zu done before (record)\n",
			n_nodes, n_nodes == 1 ? "" : "s", done, recorded);
		return PF_EXIT_OK;
	}
	fprintf(stderr,
		"piflash: %zu node%s: %zu written, %zu done before (record), %zu failed, "
		"%zu not written\n",
		n_nodes, n_nodes == 1 ? "" : "s", done, recorded, failed, left);
	for (size_t i = 0; i < n_nodes; i++)
		if (nodes[i].state == PF_CARD_FAILED || nodes[i].state == PF_CARD_PENDING ||
		    nodes[i].state == PF_CARD_TAKEN)
			fprintf(stderr, "  %s: %s\n", nodes[i].hostname,
				nodes[i].state == PF_CARD_FAILED ? "failed" : "not written");
	if (pf_interrupted())
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
	if (pf_cards_new(c->inv, rows, n_rows, &c->q) < 0)
		return PF_EXIT_FAILURE;
	return PF_EXIT_OK;
}

/* Every node to write is planned first: one that would fail (nobody could log into it, a
 * bad key or template) stops the run before any card is written, not after the cards before
 * it. */
static int check_nodes(Cards *c)
{
	size_t bad = 0, n_nodes;
	const PfCardNode *nodes = pf_cards_nodes(c->q, &n_nodes);

	for (size_t i = 0; i < n_nodes; i++) {
		int e;

		if (nodes[i].state == PF_CARD_RECORDED)
			continue;
		e = pf_node_check(c->base, &c->o->no->spec, c->flavor, c->inv, nodes[i].row);
		if (e < 0) {
			log_error_errno(e, "%s", nodes[i].hostname);
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

/* The nodes this run writes, the record read: how many are left to write (0: none). */
static int nodes_todo(Cards *c, size_t *ret_todo)
{
	const CardsOptions *o = c->o;
	const PfCardNode *nodes;
	size_t todo = 0, n_nodes;
	int r;

	r = load_nodes(c);
	if (r != PF_EXIT_OK)
		return r;
	if (o->record) {
		r = pf_cards_record_read(c->q, o->record);
		if (r < 0) {
			log_error_errno(r, "--record");
			return PF_EXIT_FAILURE;
		}
	}
	nodes = pf_cards_nodes(c->q, &n_nodes);
	for (size_t i = 0; i < n_nodes; i++)
		if (nodes[i].state == PF_CARD_RECORDED)
			log_info("%s: done in an earlier run (%s), skipped", nodes[i].hostname,
				 o->record);
		else
			todo++;
	*ret_todo = todo;
	return PF_EXIT_OK;
}

/* Everything checked and confirmed before the first card: the image, every node's plan, the
 * readers; then the record is opened to append to. */
static int prepare(Cards *c, size_t todo)
{
	const CardsOptions *o = c->o;
	int r;

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
		r = pf_cards_record_open(c->q, o->record);
		if (r < 0) {
			log_error_errno(r, "--record '%s'", o->record);
			return PF_EXIT_FAILURE;
		}
	}
	return PF_EXIT_OK;
}

/* The readers, each a thread, with the display of their lines when it is a bar. */
static void readers_run(Cards *c, size_t todo)
{
	c->mode = c->o->out.progress;
	if (c->mode == PF_PROGRESS_AUTO)
		c->mode = isatty(STDERR_FILENO) ? PF_PROGRESS_BAR : PF_PROGRESS_NONE;
	if (c->mode == PF_PROGRESS_BAR && log_quiet)
		c->mode = PF_PROGRESS_NONE;
	if (c->mode == PF_PROGRESS_BAR)
		log_set_hook(display_hook, c);
	log_info("Writing %zu node%s of '%s' (%s image) to the cards put in %zu reader%s", todo,
		 todo == 1 ? "" : "s", c->inv->path, pf_flavor_name(c->flavor->flavor),
		 c->n_readers, c->n_readers == 1 ? "" : "s");
	pf_signals_catch();
	for (size_t i = 0; i < c->n_readers; i++)
		if (pthread_create(&c->readers[i].thread, NULL, reader_main, &c->readers[i]) != 0) {
			log_error("cannot start a thread for %s", c->readers[i].path);
			pf_cards_stop(c->q);
			c->n_readers = i;
			break;
		}
	for (size_t i = 0; i < c->n_readers; i++)
		pthread_join(c->readers[i].thread, NULL);
	pf_signals_restore();
	if (c->mode == PF_PROGRESS_BAR) {
		log_lock();
		display_clear(c);
		log_unlock();
		log_set_hook(NULL, NULL);
	}
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
	r = nodes_todo(c, &todo);
	if (r != PF_EXIT_OK)
		return r;
	if (todo == 0) {
		log_info("Every node is done already, says %s", o->record);
		return PF_EXIT_OK;
	}
	r = prepare(c, todo);
	if (r != PF_EXIT_OK)
		return r;
	readers_run(c, todo);
	return summary(c);
}

int cards_run(const CardsOptions *o)
{
	Cards c = { .o = o, .lock = PTHREAD_MUTEX_INITIALIZER };
	int r;

	r = run(&c);
	pf_cards_free(c.q);
	pf_image_free(c.base);
	pf_flavor_info_free(c.flavor);
	pf_inventory_free(c.inv);
	return r;
}
