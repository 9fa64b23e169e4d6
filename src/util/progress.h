/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The progress of a long phase ("download", "write", "verify") on stderr, for people (a bar
 * redrawn in place, with rate and time left) or for programs (one JSON line per update:
 * phase, done, total, rate). Like util/log.h, only the command line uses it; the core reports
 * progress through callbacks of this shape.
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum PfProgressMode {
	PF_PROGRESS_AUTO, /* a bar on a TTY, nothing otherwise */
	PF_PROGRESS_BAR,
	PF_PROGRESS_JSON, /* one JSON line per update on stderr */
	PF_PROGRESS_NONE,
} PfProgressMode;

typedef struct PfProgress {
	PfProgressMode mode; /* resolved: BAR, JSON or NONE */
	const char *phase;
	double start;
	bool bar_open; /* a bar line is on screen without its newline */
} PfProgress;

/* Bytes per second of done_bytes in elapsed_seconds (0 when nothing is done yet). */
uint64_t pf_progress_rate(uint64_t done_bytes, double elapsed_seconds);

/* One JSON progress line on stderr, as --progress json writes them; o is put. */
void pf_progress_json_line(json_object *o);

/* AUTO becomes a bar on a terminal; -q (log_quiet) silences a bar, never JSON. */
void pf_progress_init(PfProgress *p, PfProgressMode mode);
/* done_bytes of total_bytes (0: unknown) of phase; a new phase starts its clock. */
void pf_progress_update(PfProgress *p, const char *phase, uint64_t done_bytes,
			uint64_t total_bytes);
/* Ends the bar's line, if one is on screen. */
void pf_progress_end(PfProgress *p);
/* The callback the core takes (userdata a PfProgress): phase NULL ends the line. */
void pf_progress_cb(void *userdata, const char *phase, uint64_t done_bytes, uint64_t total_bytes);

/*
 * The last JSON line of a run (JSON mode only; ends a bar otherwise): {"phase": "end",
 * "target": ..., "result": result ("ok", "failed", "verify-failed", "interrupted"), "exit":
 * exit_code, "written": BYTES}, so a program reading the lines knows the outcome without
 * parsing messages.
 */
void pf_progress_finish(PfProgress *p, const char *target, const char *result, int exit_code,
			uint64_t written);
