/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash --inventory X.csv --all|--only A,B IMAGE /dev/sdX [/dev/sdY ...]: the run itself is
 * build/cards.h's; here are its display (a line per reader, or JSON lines), its questions
 * (the confirmation, what now after a failed card), the writing of each card (cmd/output.h,
 * which prints its report), its messages and the summary.
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cards.h"
#include "cmd/cmd.h"
#include "build/cards.h"
#include "util/error.h"
#include "util/strutil.h"

struct Cards;

typedef struct Reader {
	struct Cards *c;
	const char *path;
	/* What the display shows, under the stderr lock: */
	const char *node;
	const char *phase;
	uint64_t done, total;
	double phase_start;
} Reader;

typedef struct Cards {
	const CardsOptions *o;
	PfImage *base;
	PfFlavorInfo *flavor;
	PfCards *q;
	Reader readers[PF_CARDS_READERS_MAX];
	size_t n_readers;
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

/* One JSON line with the reader's device and node, with stderr locked. */
static void show_json(Reader *r, const char *phase, uint64_t done, uint64_t total)
{
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
	} else if (c->mode == PF_PROGRESS_JSON && phase)
		show_json(r, phase, done, total);
	log_unlock();
}

static void flash_progress(void *userdata, const char *phase, uint64_t done, uint64_t total)
{
	Reader *r = userdata;

	if (phase)
		show(r, phase, done, total);
}

/* The core's phase of a reader: the node it is on, and what it does (NULL: nothing new). */
static void on_phase(void *userdata, size_t reader, const char *node, const char *phase)
{
	Reader *r = &((Cards *)userdata)->readers[reader];

	log_lock();
	r->node = node;
	log_unlock();
	if (phase)
		show(r, phase, 0, 0);
}

/* ---- what the run says ------------------------------------------------------------------ */

static void say_failed(const PfCardsNote *n)
{
	PfCardDecision d = n->decision;

	log_error("%s: %s%s", n->node,
		  d == PF_CARD_SKIP   ? "failed, skipped"
		  : d == PF_CARD_STOP ? "failed, stopping after the cards being written"
				      : "failed, will retry with another card",
		  d == PF_CARD_SKIP || d == PF_CARD_STOP
			  ? " (run again with the same --record to retry it)"
			  : "");
}

static void on_note(void *userdata, const PfCardsNote *n)
{
	Cards *c = userdata;

	switch (n->kind) {
	case PF_CARDS_BAD_ROW:
		log_error("%s", n->text);
		break;
	case PF_CARDS_RECORDED:
		log_info("%s: done in an earlier run (%s), skipped", n->node, c->o->record);
		break;
	case PF_CARDS_UNBUILDABLE:
	case PF_CARDS_BUILD_ERROR:
		log_error_errno(n->err, "%s", n->node);
		break;
	case PF_CARDS_NO_THREAD:
		log_error("cannot start a thread for %s", n->device);
		/* The display shows the readers at work. */
		log_lock();
		c->n_readers = n->reader;
		log_unlock();
		break;
	case PF_CARDS_PUT_IN:
		log_info("%s: put in the card for %s", n->device, n->node);
		break;
	case PF_CARDS_READER_ERROR:
		log_error_errno(n->err, "%s", n->device);
		break;
	case PF_CARDS_KNOWN_HOSTS_ERROR:
		log_error_errno(n->err, "--known-hosts: %s's host key is not in it", n->node);
		break;
	case PF_CARDS_NODE_DONE:
		if (n->next)
			log_info("%s done — take the card out of %s, put in the card for %s",
				 n->node, n->device, n->next);
		else
			log_info("%s done — take the card out of %s", n->node, n->device);
		break;
	case PF_CARDS_NODE_FAILED:
		say_failed(n);
		break;
	}
}

/* What to do after a failed card: skip the node, retry it, or stop. */
static PfCardDecision decide(void *userdata, size_t reader, const char *node)
{
	Cards *c = userdata;
	const Reader *r = &c->readers[reader];
	char answer[16] = "";

	if (c->o->on_error == ON_ERROR_SKIP)
		return PF_CARD_SKIP;
	if (c->o->on_error == ON_ERROR_STOP || !isatty(STDIN_FILENO))
		return PF_CARD_STOP;
	log_lock();
	display_clear(c);
	fprintf(stderr,
		"%s: the card for %s failed. [r]etry it with another card, [s]kip %s, "
		"or [q]uit? ",
		r->path, node, node);
	fflush(stderr);
	if (!fgets(answer, sizeof(answer), stdin))
		answer[0] = 'q';
	log_unlock();
	if (answer[0] == 's')
		return PF_CARD_SKIP;
	if (answer[0] == 'r')
		return PF_CARD_RETRY;
	return PF_CARD_STOP;
}

static PfCardWriteResult write_result(int exit_code)
{
	switch (exit_code) {
	case PF_EXIT_OK:
		return PF_CARD_WRITE_OK;
	case PF_EXIT_VERIFY:
		return PF_CARD_WRITE_MISMATCH;
	case PF_EXIT_INTERRUPTED:
		return PF_CARD_WRITE_INTERRUPTED;
	default:
		return PF_CARD_WRITE_FAILED;
	}
}

/* Opens the card in the reader, describes it, writes and verifies node's image on it. */
static PfCardWriteResult write_card(void *userdata, size_t reader, const char *node, PfImage *img,
				    PfCardWritten *ret)
{
	Cards *c = userdata;
	Reader *r = &c->readers[reader];
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	const PfTargetInfo *info;
	int e;

	e = output_open(img, r->path, &c->o->out, &t);
	if (e != PF_EXIT_OK)
		return write_result(e);
	info = pf_target_info(t);
	output_describe(info);
	snprintf(ret->model, sizeof(ret->model), "%s", info->model ?: "");
	snprintf(ret->serial, sizeof(ret->serial), "%s", info->serial ?: "");
	log_info("%s: writing %s", r->path, node);
	ret->verified = !c->o->out.no_verify;
	return write_result(output_flash(img, t, &c->o->out, flash_progress, r, &ret->bytes));
}

/* ---- the run ----------------------------------------------------------------------------- */

/* Every safety rule, before any card is written: for readers that hold a card now, all of
 * them; for empty readers, the device itself (a whole removable disk) when a card arrives. */
static int check_targets(Cards *c)
{
	for (size_t i = 0; i < c->n_readers; i++) {
		const char *p = c->readers[i].path;
		uint64_t size = 0;
		int e;

		e = pf_cards_check_reader(c->q, i, &size);
		if (e < 0) {
			log_error("%s", pf_error_message(e));
			pf_error_clear();
			return e == -ENOTBLK || e == -EEXIST ? PF_EXIT_USAGE : PF_EXIT_FAILURE;
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

/* The nodes this run writes, the record read: how many are left to write (0: none). */
static int nodes_todo(Cards *c, size_t *ret_todo)
{
	int r;

	r = pf_cards_load(c->q);
	if (r < 0) {
		log_error_errno(r, "inventory '%s'", c->o->no->spec.inventory);
		return PF_EXIT_FAILURE;
	}
	r = pf_cards_select(c->q);
	if (r == -EINVAL)
		return usage_error(NULL, "%s", pf_error_message(r));
	if (r < 0)
		return PF_EXIT_FAILURE;
	r = pf_cards_check_rows(c->q);
	if (r < 0) {
		log_error("%s", pf_error_message(r));
		pf_error_clear();
		return PF_EXIT_FAILURE;
	}
	r = pf_cards_resume(c->q, ret_todo);
	if (r < 0) {
		log_error_errno(r, "--record");
		return PF_EXIT_FAILURE;
	}
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
	pf_cards_set_image(c->q, c->base, c->flavor);
	r = pf_cards_check_nodes(c->q);
	if (r < 0) {
		log_error("%s", pf_error_message(r));
		pf_error_clear();
		return PF_EXIT_FAILURE;
	}
	r = check_targets(c);
	if (r != PF_EXIT_OK)
		return r;
	r = confirm_all(c, todo);
	if (r != PF_EXIT_OK)
		return r;
	r = pf_cards_record_open(c->q);
	if (r < 0) {
		log_error_errno(r, "--record '%s'", o->record);
		return PF_EXIT_FAILURE;
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
		 todo == 1 ? "" : "s", pf_cards_inventory(c->q)->path,
		 pf_flavor_name(c->flavor->flavor), c->n_readers, c->n_readers == 1 ? "" : "s");
	pf_signals_catch();
	pf_cards_run(c->q);
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
	PfCardsOptions co = {
		.spec = &o->no->spec,
		.sel = o->sel,
		.record = o->record,
		.known_hosts = o->no->known_hosts,
		.readers = o->targets,
		.n_readers = o->n_targets,
		.poll_seconds = o->poll_seconds,
		.cancel = pf_interrupt_flag(),
		.events = { .phase = on_phase,
			    .note = on_note,
			    .decide = decide,
			    .write = write_card,
			    .userdata = c },
	};
	size_t todo = 0;
	int r;

	if (o->n_targets > PF_CARDS_READERS_MAX)
		return usage_error(NULL, "more than %u card readers", PF_CARDS_READERS_MAX);
	if (pf_timestamp(&co.now) < 0) {
		log_error("SOURCE_DATE_EPOCH='%s' is not a number of seconds",
			  getenv("SOURCE_DATE_EPOCH"));
		return PF_EXIT_FAILURE;
	}
	if (pf_cards_new(&co, &c->q) < 0)
		return PF_EXIT_FAILURE;
	c->n_readers = o->n_targets;
	for (size_t i = 0; i < c->n_readers; i++)
		c->readers[i] = (Reader){ .c = c, .path = o->targets[i], .phase = "idle" };
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
	Cards c = { .o = o };
	int r;

	r = run(&c);
	pf_cards_free(c.q);
	pf_image_free(c.base);
	pf_flavor_info_free(c.flavor);
	return r;
}
