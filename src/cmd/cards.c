/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * piflash --inventory X.csv --all|--only A,B IMAGE /dev/sdX [/dev/sdY ...]: the run itself is
 * build/cards.h's; here are its display (a line per reader, or JSON lines), its questions
 * (the confirmation, what now after a failed card), the writing of each card (cmd/output.h,
 * which prints its report), its messages and the summary.
 */
#include <assert.h>
#include <errno.h>
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

/* A reader, for its write's progress. */
typedef struct Reader {
	struct Cards *c;
	size_t i;
} Reader;

typedef struct Cards {
	const CardsOptions *o;
	PfImage *base;
	PfFlavorInfo *flavor;
	PfCards *q;
	PfBoard board; /* a line per reader */
	Reader readers[PF_CARDS_READERS_MAX];
} Cards;

static_assert(PF_CARDS_READERS_MAX <= PF_BOARD_LINES_MAX, "a board line for every reader");

/* ---- the display: one line per reader -------------------------------------------------- */

static void flash_progress(void *userdata, const char *phase, uint64_t done, uint64_t total)
{
	Reader *r = userdata;

	if (phase)
		pf_board_update(&r->c->board, r->i, phase, done, total);
}

/* The core's phase of a reader: the node it is on, and what it does (NULL: nothing new). */
static void on_phase(void *userdata, size_t reader, const char *node, const char *phase)
{
	Cards *c = userdata;

	pf_board_set_node(&c->board, reader, node);
	if (phase)
		pf_board_update(&c->board, reader, phase, 0, 0);
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
		pf_board_truncate(&c->board, n->reader);
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
	char answer[16] = "";

	if (c->o->on_error == ON_ERROR_SKIP)
		return PF_CARD_SKIP;
	if (c->o->on_error == ON_ERROR_STOP || !isatty(STDIN_FILENO))
		return PF_CARD_STOP;
	log_lock();
	pf_board_clear_locked(&c->board);
	fprintf(stderr,
		"%s: the card for %s failed. [r]etry it with another card, [s]kip %s, "
		"or [q]uit? ",
		c->o->targets[reader], node, node);
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
	const char *path = c->o->targets[reader];
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	const PfTargetInfo *info;
	int e;

	e = output_open(img, path, &c->o->out, &t);
	if (e != PF_EXIT_OK)
		return write_result(e);
	info = pf_target_info(t);
	output_describe(info);
	snprintf(ret->model, sizeof(ret->model), "%s", info->model ?: "");
	snprintf(ret->serial, sizeof(ret->serial), "%s", info->serial ?: "");
	log_info("%s: writing %s", path, node);
	ret->verified = !c->o->out.no_verify;
	return write_result(
		output_flash(img, t, &c->o->out, flash_progress, &c->readers[reader], &ret->bytes));
}

/* ---- the run ----------------------------------------------------------------------------- */

/* Every safety rule, before any card is written: for readers that hold a card now, all of
 * them; for empty readers, the device itself (a whole removable disk) when a card arrives. */
static int check_targets(Cards *c)
{
	for (size_t i = 0; i < c->o->n_targets; i++) {
		const char *p = c->o->targets[i];
		uint64_t size = 0;
		int e;

		e = pf_cards_check_reader(c->q, i, &size);
		if (e < 0) {
			log_error_detail(e);
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
	_cleanup_(freep) char *readers = NULL;
	size_t size = 0;
	FILE *f;
	bool yes;

	if (c->o->out.yes)
		return PF_EXIT_OK;
	if (!isatty(STDIN_FILENO)) {
		log_error("not asking for confirmation without a terminal; add --yes to write the "
			  "cards");
		return PF_EXIT_SAFETY;
	}
	f = open_memstream(&readers, &size);
	if (!f)
		return PF_EXIT_FAILURE;
	for (size_t i = 0; i < c->o->n_targets; i++)
		fprintf(f, "%s%s", i ? ", " : "", c->o->targets[i]);
	if (fclose(f) != 0)
		return PF_EXIT_FAILURE;
	yes = output_ask("Write %zu node%s to the cards put in %s? Everything on those cards will "
			 "be lost. [y/N] ",
			 todo, todo == 1 ? "" : "s", readers);
	if (!yes) {
		log_error("not confirmed, nothing written");
		return PF_EXIT_SAFETY;
	}
	return PF_EXIT_OK;
}

static int summary(Cards *c)
{
	size_t count[_PF_CARD_STATE_MAX] = { 0 }, done, recorded, failed, left, n_nodes;
	const PfCardNode *nodes = pf_cards_nodes(c->q, &n_nodes);

	for (size_t i = 0; i < n_nodes; i++)
		count[nodes[i].state]++;
	done = count[PF_CARD_DONE];
	recorded = count[PF_CARD_RECORDED];
	failed = count[PF_CARD_FAILED];
	left = count[PF_CARD_PENDING] + count[PF_CARD_TAKEN];
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
	if (r < 0)
		return log_error_detail(r), PF_EXIT_FAILURE;
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
	if (r < 0)
		return log_error_detail(r), PF_EXIT_FAILURE;
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
	size_t n = c->o->n_targets;

	pf_board_start(&c->board, c->o->out.progress);
	log_info("Writing %zu node%s of '%s' (%s image) to the cards put in %zu reader%s", todo,
		 todo == 1 ? "" : "s", pf_cards_inventory(c->q)->path,
		 pf_flavor_name(c->flavor->flavor), n, n == 1 ? "" : "s");
	pf_signals_catch();
	pf_cards_run(c->q);
	pf_signals_restore();
	pf_board_stop(&c->board);
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
	if (node_now(&co.now) != PF_EXIT_OK)
		return PF_EXIT_FAILURE;
	if (pf_cards_new(&co, &c->q) < 0)
		return PF_EXIT_FAILURE;
	pf_board_init(&c->board, o->targets, o->n_targets);
	for (size_t i = 0; i < o->n_targets; i++)
		c->readers[i] = (Reader){ .c = c, .i = i };
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
