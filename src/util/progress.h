/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The progress of a long phase ("download", "write", "verify") on stderr, for people (a bar
 * redrawn in place, with rate and time left) or for programs (one JSON line per update:
 * phase, done, total, rate). Like util/log.h, only the command line uses it; the core reports
 * progress through callbacks of this shape.
 */

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

/* ---- a line per device: card readers writing at once ---------------------------------------- */

#define PF_BOARD_LINES_MAX 32

typedef struct PfBoardLine {
	const char *device;
	const char *node; /* what it works on; NULL for nothing */
	const char *phase;
	uint64_t done, total;
	double phase_start;
} PfBoardLine;

/*
 * As a bar: the lines redrawn under the messages ("/dev/sdb  worker3  write  42.0%  1.2 GiB /
 * 2.9 GiB  30 MiB/s"), which scroll above them. As JSON: the usual line with "device" and
 * "node" added, on every change. Safe to update from several threads: every call takes
 * log_lock().
 */
typedef struct PfBoard {
	PfProgressMode mode; /* resolved, as pf_progress_init() does */
	PfBoardLine lines[PF_BOARD_LINES_MAX];
	size_t n;
	size_t drawn; /* lines on screen below the log */
} PfBoard;

/* n lines (at most PF_BOARD_LINES_MAX), each in phase "idle"; nothing is shown yet. */
void pf_board_init(PfBoard *b, char *const *devices, size_t n);
/* From now on the board is shown as mode says (a bar is drawn under every message). */
void pf_board_start(PfBoard *b, PfProgressMode mode);
/* Line i's node (NULL: none), shown with the next update. */
void pf_board_set_node(PfBoard *b, size_t i, const char *node);
/* Line i's phase and bytes, shown now. */
void pf_board_update(PfBoard *b, size_t i, const char *phase, uint64_t done, uint64_t total);
/* Only the first n lines are shown from now on. */
void pf_board_truncate(PfBoard *b, size_t n);
/* With log_lock() held: the lines off the screen, for a question below the messages. */
void pf_board_clear_locked(PfBoard *b);
/* The lines off the screen, for good. */
void pf_board_stop(PfBoard *b);
