/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Card after card (piflash --all): the nodes of an inventory, each written to a card by one of
 * several card readers, a thread each, over one prepared base image. A reader waits for a card
 * (the device reports media), takes the next node, builds its image and has the caller write
 * it, waits for the card to be taken out and goes on. The record of every card tried
 * (--record FILE, JSON lines) makes a run resumable: nodes done are skipped.
 *
 * The steps, in order, each stopping the run before any card is written when it fails:
 * pf_cards_new(), pf_cards_load(), pf_cards_select(), pf_cards_check_rows(),
 * pf_cards_resume(), pf_cards_set_image(), pf_cards_check_nodes(), pf_cards_check_reader()
 * for each reader, pf_cards_record_open(), then pf_cards_run(). Nothing prints: what the
 * operator should see goes to PfCardsEvents, and asking (what now after a failed card) and
 * writing a card (which prints its own report) are the caller's, through the same callbacks.
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "build/cluster.h"
#include "build/image.h"
#include "build/node.h"
#include "node/inventory.h"

/* Card readers written at once, at most. */
#define PF_CARDS_READERS_MAX 32u

typedef enum PfCardState {
	PF_CARD_PENDING,
	PF_CARD_TAKEN,	  /* a reader is on it */
	PF_CARD_DONE,	  /* flashed and verified in this run */
	PF_CARD_RECORDED, /* done in an earlier run, says the record */
	PF_CARD_FAILED,	  /* failed and skipped */
	_PF_CARD_STATE_MAX,
} PfCardState;

typedef struct PfCardNode {
	const PfInventoryRow *row;
	const char *hostname;
	PfCardState state;
} PfCardNode;

/* What becomes of a node whose card failed. */
typedef enum PfCardDecision {
	PF_CARD_RETRY, /* the node waits for another card */
	PF_CARD_SKIP,  /* the node failed; the others go on */
	PF_CARD_STOP,  /* the node failed; no reader takes another node */
} PfCardDecision;

/* How writing a card went. */
typedef enum PfCardWriteResult {
	PF_CARD_WRITE_OK,
	PF_CARD_WRITE_FAILED,
	PF_CARD_WRITE_MISMATCH, /* read back and different */
	PF_CARD_WRITE_INTERRUPTED,
} PfCardWriteResult;

/* What the writer of a card found out, for the record. */
typedef struct PfCardWritten {
	char model[128], serial[128]; /* the card reader's, "" when unknown */
	uint64_t bytes;		      /* written */
	bool verified;		      /* to be read back (not --no-verify) */
} PfCardWritten;

typedef enum PfCardsNoteKind {
	PF_CARDS_BAD_ROW,	    /* a selected row cannot be used: text says why */
	PF_CARDS_RECORDED,	    /* node is done, says the record of an earlier run */
	PF_CARDS_UNBUILDABLE,	    /* err: node's plan fails (pf_cards_check_nodes()) */
	PF_CARDS_NO_THREAD,	    /* device's reader thread cannot start; the run stops */
	PF_CARDS_BUILD_ERROR,	    /* err: node's image cannot be made */
	PF_CARDS_PUT_IN,	    /* device waits for node's card */
	PF_CARDS_READER_ERROR,	    /* err: device cannot be watched for a card */
	PF_CARDS_KNOWN_HOSTS_ERROR, /* err: node's card is good, its key not in known_hosts */
	PF_CARDS_NODE_DONE,	    /* node's card in device is done; next goes in next */
	PF_CARDS_NODE_FAILED,	    /* node's card in device failed; decision is what now */
} PfCardsNoteKind;

/* Something the operator should know; the fields that kind does not name are NULL or 0. */
typedef struct PfCardsNote {
	PfCardsNoteKind kind;
	size_t reader; /* with device: its index in PfCardsOptions.readers */
	const char *device;
	const char *node;
	const char *next; /* the next pending node, NULL when none */
	const char *text;
	PfCardDecision decision;
	int err; /* -errno, its detail in pf_error_message() of the calling thread */
} PfCardsNote;

typedef struct PfCardsEvents {
	/* Reader (an index of PfCardsOptions.readers) is on node (NULL: on none) in phase:
	 * "wait-card", "done", "failed", "wait-removal", "finished"; phase NULL: only the node
	 * changed, nothing to show yet. From the reader's thread. */
	void (*phase)(void *userdata, size_t reader, const char *node, const char *phase);
	/* From the thread of the step or of the reader that has something to say. */
	void (*note)(void *userdata, const PfCardsNote *n);
	/* node's card in reader failed: what now? From the reader's thread. */
	PfCardDecision (*decide)(void *userdata, size_t reader, const char *node);
	/* Writes img, node's prepared image, to the card in reader, verifies it and fills ret;
	 * from the reader's thread, several at once. Returns how it went. Required; the others
	 * may be NULL (decide: stop after a failed card). */
	PfCardWriteResult (*write)(void *userdata, size_t reader, const char *node, PfImage *img,
				   PfCardWritten *ret);
	void *userdata;
} PfCardsEvents;

typedef struct PfCardsOptions {
	const PfNodeSpec *spec; /* spec->inventory is the CSV; the rest overrides every row */
	PfSelection sel;	/* --all: nothing set */
	const char *record;	/* --record FILE, or NULL */
	const char *known_hosts;
	char *const *readers; /* the card readers' devices */
	size_t n_readers;
	double poll_seconds;		     /* between looks for a card; 0: 0.25 */
	int64_t now;			     /* the time stamp of every node's files */
	const volatile sig_atomic_t *cancel; /* non-zero: stop, leaving no card half-written */
	PfCardsEvents events;
} PfCardsOptions;

typedef struct PfCards PfCards;

/* A run as o (copied; what it points to borrowed) says: -E2BIG for too many readers. */
int pf_cards_new(const PfCardsOptions *o, PfCards **ret);
PfCards *pf_cards_free(PfCards *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfCards *, pf_cards_free);

/* Loads the inventory, keeping its bad rows aside (pf_inventory_load_flags()). */
int pf_cards_load(PfCards *c);
/* The nodes the selection names, in inventory order: -EINVAL with a detail when it names one
 * the inventory does not have. */
int pf_cards_select(PfCards *c);
/* A selected row that is bad, or no row at all, stops the run: a PF_CARDS_BAD_ROW note for
 * each bad row, then -EINVAL with a detail. */
int pf_cards_check_rows(PfCards *c);
/* Reads the record, if any: a PF_CARDS_RECORDED note for each node done before, and the
 * number of nodes left to write in *ret_todo. 0 or -errno with a detail. */
int pf_cards_resume(PfCards *c, size_t *ret_todo);

/* The base image and its flavor (borrowed until pf_cards_free()). */
void pf_cards_set_image(PfCards *c, PfImage *base, const PfFlavorInfo *f);
/* Plans every node left to write: a PF_CARDS_UNBUILDABLE note for each that fails, then
 * -EINVAL with a detail, before any card is written rather than after the cards before it. */
int pf_cards_check_nodes(PfCards *c);
/*
 * The safety rules for reader i (readers in order, from 0) that hold whether it has a card
 * or not (the caller checks a card in it): the device exists and is a block device, not one
 * of the readers before it. *ret_media_bytes gets the size of the card in it, 0 for none.
 * Returns 0, or -errno with a detail: -ENOTBLK not a block device, -EEXIST the same device
 * as an earlier reader.
 */
int pf_cards_check_reader(PfCards *c, size_t i, uint64_t *ret_media_bytes);
/* Opens the record to append this run's cards to (the detail does not name it). */
int pf_cards_record_open(PfCards *c);

/* The readers at work, each a thread, until no node is left, the run stops or is cancelled. */
void pf_cards_run(PfCards *c);

/* The inventory (after pf_cards_load()). */
const PfInventory *pf_cards_inventory(const PfCards *c);
/* The nodes, in order (read their state while no reader runs). */
const PfCardNode *pf_cards_nodes(const PfCards *c, size_t *ret_n);
