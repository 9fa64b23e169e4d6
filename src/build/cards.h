/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Card after card (piflash --all): the nodes to write, each taken by one card reader at a
 * time; the record of every card tried (--record FILE, JSON lines) that makes a run
 * resumable, nodes done being skipped; and a reader's medium, waited for until a card is put
 * in or taken out. Safe to use from the readers' threads at once. Nothing prints.
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "node/inventory.h"

typedef enum PfCardState {
	PF_CARD_PENDING,
	PF_CARD_TAKEN,	  /* a reader is on it */
	PF_CARD_DONE,	  /* flashed and verified in this run */
	PF_CARD_RECORDED, /* done in an earlier run, says the record */
	PF_CARD_FAILED,	  /* failed and skipped */
} PfCardState;

typedef struct PfCardNode {
	const PfInventoryRow *row;
	const char *hostname;
	PfCardState state;
} PfCardNode;

typedef struct PfCards PfCards;

/* The nodes of rows[0..n_rows) of inv (borrowed), in that order, all pending. */
int pf_cards_new(const PfInventory *inv, const size_t *rows, size_t n_rows, PfCards **ret);
PfCards *pf_cards_free(PfCards *c);

/* The nodes, in order (read their state while no reader runs, or under the readers' rules). */
PfCardNode *pf_cards_nodes(PfCards *c, size_t *ret_n);

/* Marks the nodes the record at path says are done ("result": "ok"); no file: none. */
int pf_cards_record_read(PfCards *c, const char *path);
/* Opens path to append this run's cards to (the detail of a failure does not name it). */
int pf_cards_record_open(PfCards *c, const char *path);

/* One card tried, for the record. */
typedef struct PfCardRecord {
	const char *node;
	const char *device;
	const char *model, *serial; /* NULL when unknown */
	const char *host_key;	    /* with --host-keys: the public key line, else NULL */
	const char *fingerprint;
	char start[32], end[32]; /* ISO 8601 UTC (pf_card_time()) */
	uint64_t bytes;
	bool ok;
	bool interrupted;
	bool verified;	     /* read back and identical */
	bool verify_differs; /* read back and different */
} PfCardRecord;

/* Appends r to the record, if one is open, and syncs it. */
void pf_cards_record_write(PfCards *c, const PfCardRecord *r);

/* The wall clock as the record writes it: "2026-12-06T19:00:00Z". */
void pf_card_time(char out[32]);

/* The next pending node, now taken; NULL when none is left or the run stops. */
PfCardNode *pf_cards_take(PfCards *c);
/* Puts n in state; stop ends the run for every reader. Returns the next pending node's
 * hostname (for "put in the card for ..."), or NULL. */
const char *pf_cards_finish(PfCards *c, PfCardNode *n, PfCardState state, bool stop);
/* Stops the run: no reader takes another node. */
void pf_cards_stop(PfCards *c);

/*
 * The size of the medium in the reader at path: 0 when there is none.
 */
int pf_card_media_bytes(const char *path, uint64_t *ret);

/*
 * Waits until the reader at path has a card (present) or has none (!present), polling every
 * poll_seconds. Returns 0; -ECANCELED when *cancel is set, or, waiting for a card, when the
 * run stops; or 1 when waiting for a removal is pointless: no node waits for a card any more
 * (another reader took the last one, or the run stops).
 */
int pf_card_wait(PfCards *c, const char *path, bool present, double poll_seconds,
		 const volatile sig_atomic_t *cancel);
