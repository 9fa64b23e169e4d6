/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Card after card: piflash --inventory cluster.csv --all IMAGE /dev/sdX [/dev/sdY ...]
 *
 * Each reader waits for a card (the device reports media), takes the next node, flashes and
 * verifies it, says which card to put in next, waits for the card to be taken out and goes
 * on. Several readers work at once, each a writer of its own over one prepared base. A record
 * (--record FILE, JSON lines) makes the run resumable: nodes done are skipped.
 */

#include "build/cluster.h"
#include "cmd/node.h"
#include "cmd/output.h"

typedef enum OnError {
	ON_ERROR_ASK, /* on a TTY: ask; otherwise stop */
	ON_ERROR_SKIP,
	ON_ERROR_STOP,
} OnError;

typedef struct CardsOptions {
	const char *image;
	char **targets;
	size_t n_targets;
	PfSelection sel; /* --all: nothing set */
	const char *record;
	OnError on_error;
	OutputOptions out;
	PfSourceOptions source;
	NodeOptions *no;
	/* Test seam: seconds between polls of a reader for a card (default 0.25). */
	double poll_seconds;
} CardsOptions;

/* Runs the whole thing; returns an exit code. */
int cards_run(const CardsOptions *o);
