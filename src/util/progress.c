/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/log.h"
#include "util/progress.h"
#include "util/strutil.h"
#include "util/json.h"

uint64_t pf_progress_rate(uint64_t done_bytes, double elapsed_seconds)
{
	/* A phase a few microseconds old still has a rate: the bound keeps it finite. */
	return done_bytes ? (uint64_t)((double)done_bytes / MAX(elapsed_seconds, 0.001)) : 0;
}

/* One JSON progress line on stderr, as --progress json writes them; o is put. */
static void json_line(json_object *o)
{
	fprintf(stderr, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(stderr);
	json_object_put(o);
}

/* The progress of a phase, added to o (which may name the device first), as one line. */
static void json_progress(json_object *o, const char *phase, uint64_t done, uint64_t total,
			  uint64_t rate)
{
	json_object_object_add(o, "phase", json_object_new_string(phase));
	json_object_object_add(o, "done", json_object_new_int64((int64_t)done));
	json_object_object_add(o, "total", json_object_new_int64((int64_t)total));
	json_object_object_add(o, "rate", json_object_new_int64((int64_t)rate));
	json_line(o);
}

static PfProgressMode resolve(PfProgressMode mode)
{
	if (mode == PF_PROGRESS_AUTO)
		mode = isatty(STDERR_FILENO) ? PF_PROGRESS_BAR : PF_PROGRESS_NONE;
	/* -q silences the bar; JSON asked for by name is for a program, not a person. */
	if (mode == PF_PROGRESS_BAR && log_quiet)
		mode = PF_PROGRESS_NONE;
	return mode;
}

void pf_progress_init(PfProgress *p, PfProgressMode mode)
{
	*p = (PfProgress){ .mode = resolve(mode) };
}

void pf_progress_end(PfProgress *p)
{
	if (p->bar_open)
		fputc('\n', stderr);
	p->bar_open = false;
	p->phase = NULL;
}

void pf_progress_update(PfProgress *p, const char *phase, uint64_t done, uint64_t total)
{
	double elapsed, rate;

	if (p->mode == PF_PROGRESS_NONE)
		return;
	if (!p->phase || !streq(p->phase, phase)) {
		pf_progress_end(p);
		p->phase = phase;
		p->start = pf_monotonic_seconds();
	}
	elapsed = pf_monotonic_seconds() - p->start;
	rate = (double)pf_progress_rate(done, elapsed);

	if (p->mode == PF_PROGRESS_JSON) {
		json_progress(json_object_new_object(), phase, done, total, (uint64_t)rate);
	} else {
		char d[32], t[32], r[32], eta[32] = "--:--";
		unsigned width = 24, fill = total ? (unsigned)(width * done / total) : width;
		char bar[32];

		if (rate > 0 && total > done) {
			uint64_t s = (uint64_t)((double)(total - done) / rate);

			snprintf(eta, sizeof(eta), "%" PRIu64 ":%02" PRIu64, s / 60, s % 60);
		}
		memset(bar, '#', fill);
		memset(bar + fill, '.', width - fill);
		bar[width] = 0;
		fprintf(stderr, "\r%-7s [%s] %s / %s  %s/s  ETA %s   ", phase, bar,
			pf_format_bytes(d, sizeof(d), done), pf_format_bytes(t, sizeof(t), total),
			pf_format_bytes(r, sizeof(r), (uint64_t)rate), eta);
		p->bar_open = true;
	}
	fflush(stderr);
}

void pf_progress_cb(void *userdata, const char *phase, uint64_t done_bytes, uint64_t total_bytes)
{
	if (phase)
		pf_progress_update(userdata, phase, done_bytes, total_bytes);
	else
		pf_progress_end(userdata);
}

void pf_progress_finish(PfProgress *p, const char *target, const char *result, int exit_code,
			uint64_t written)
{
	json_object *o;

	pf_progress_end(p);
	if (p->mode != PF_PROGRESS_JSON)
		return;
	o = json_object_new_object();
	json_object_object_add(o, "phase", json_object_new_string("end"));
	json_object_object_add(o, "target", json_object_new_string(target));
	json_object_object_add(o, "result", json_object_new_string(result));
	json_object_object_add(o, "exit", json_object_new_int(exit_code));
	json_object_object_add(o, "written", json_object_new_int64((int64_t)written));
	json_line(o);
}

/* ---- a line per device ------------------------------------------------------------------ */

void pf_board_init(PfBoard *b, char *const *devices, size_t n)
{
	*b = (PfBoard){ .mode = PF_PROGRESS_NONE, .n = MIN(n, (size_t)PF_BOARD_LINES_MAX) };
	for (size_t i = 0; i < b->n; i++)
		b->lines[i] = (PfBoardLine){ .device = devices[i], .phase = "idle" };
}

static void board_line(const PfBoardLine *l, char *buf, size_t size)
{
	char d[32], t[32], rate[32];
	double el = pf_monotonic_seconds() - l->phase_start;

	if (l->total && l->phase && (streq(l->phase, "write") || streq(l->phase, "verify")))
		snprintf(buf, size, "%-12s %-12s %-7s %5.1f%%  %s / %s  %s/s", l->device,
			 l->node ?: "", l->phase, 100.0 * (double)l->done / (double)l->total,
			 pf_format_bytes(d, sizeof(d), l->done),
			 pf_format_bytes(t, sizeof(t), l->total),
			 pf_format_bytes(rate, sizeof(rate), pf_progress_rate(l->done, el)));
	else
		snprintf(buf, size, "%-12s %-12s %s", l->device, l->node ?: "", l->phase ?: "");
}

void pf_board_clear_locked(PfBoard *b)
{
	if (b->drawn) {
		fprintf(stderr, "\033[%zuA\033[J", b->drawn);
		b->drawn = 0;
	}
}

static void board_draw(PfBoard *b)
{
	char line[256];

	for (size_t i = 0; i < b->n; i++) {
		board_line(&b->lines[i], line, sizeof(line));
		fprintf(stderr, "%s\n", line);
	}
	b->drawn = b->n;
	fflush(stderr);
}

/* Around every message: the lines off before it, and drawn again after it. */
static void board_hook(void *userdata, bool before)
{
	if (before)
		pf_board_clear_locked(userdata);
	else
		board_draw(userdata);
}

void pf_board_start(PfBoard *b, PfProgressMode mode)
{
	b->mode = resolve(mode);
	if (b->mode == PF_PROGRESS_BAR)
		log_set_hook(board_hook, b);
}

static void board_json(const PfBoardLine *l)
{
	json_object *o = json_object_new_object();
	double el = pf_monotonic_seconds() - l->phase_start;

	json_object_object_add(o, "device", json_object_new_string(l->device));
	json_object_object_add(o, "node", pf_json_str(l->node));
	json_progress(o, l->phase, l->done, l->total, pf_progress_rate(l->done, el));
}

void pf_board_set_node(PfBoard *b, size_t i, const char *node)
{
	log_lock();
	b->lines[i].node = node;
	log_unlock();
}

void pf_board_update(PfBoard *b, size_t i, const char *phase, uint64_t done, uint64_t total)
{
	PfBoardLine *l = &b->lines[i];

	log_lock();
	if (!l->phase || !streq(l->phase, phase))
		l->phase_start = pf_monotonic_seconds();
	l->phase = phase;
	l->done = done;
	l->total = total;
	if (b->mode == PF_PROGRESS_BAR) {
		pf_board_clear_locked(b);
		board_draw(b);
	} else if (b->mode == PF_PROGRESS_JSON)
		board_json(l);
	log_unlock();
}

void pf_board_truncate(PfBoard *b, size_t n)
{
	log_lock();
	b->n = MIN(b->n, n);
	log_unlock();
}

void pf_board_stop(PfBoard *b)
{
	if (b->mode != PF_PROGRESS_BAR)
		return;
	log_lock();
	pf_board_clear_locked(b);
	log_unlock();
	log_set_hook(NULL, NULL);
}
