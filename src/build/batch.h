/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * One artifact per node of an inventory, into an out dir, with what the operator needs next to
 * them: SHA256SUMS, report.json, inventory.ini (Ansible), hosts and known_hosts
 * (build/result.h). The image is opened once; each node is an image forked from it, prepared
 * and written by one of several worker threads. A node that fails is recorded and the others
 * go on. report.json is also the record that lets a re-run skip the nodes whose artifact is
 * up to date: each entry holds a digest of the inputs that shaped the artifact, and the
 * artifact's size and modification time.
 *
 * The steps, in order: pf_batch_new() (the out dir, opened and locked, before the image is
 * read), pf_batch_set_image(), pf_batch_plan(), pf_batch_build(), pf_batch_write_listings().
 * Nothing prints: what a run has to say goes to PfBatchEvents.
 */

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "build/image.h"
#include "build/node.h"
#include "build/result.h"
#include "flash/artifact.h"

#define PF_BATCH_JOBS_MAX 64u

typedef struct PfBatchEvents {
	/* A node done (built, up to date, or failed: r->status); done counts the nodes built
	 * so far (for "[3/10]"). Called from the worker threads. */
	void (*node)(void *userdata, const PfNodeResult *r, size_t done);
	/* Something the operator should know that does not fail the run: a report that is not
	 * read, a stale artifact removed (error false) or not removed. */
	void (*message)(void *userdata, bool error, const char *text);
	void *userdata;
} PfBatchEvents;

typedef struct PfBatchOptions {
	const char *out_dir;
	PfArtifactFormat format;
	bool bmap;
	bool force;    /* rebuild what is up to date */
	unsigned jobs; /* nodes built at once; 0: the number of CPUs */
	int64_t now;
	const PfNodeSpec *spec;		     /* overrides every row */
	const volatile sig_atomic_t *cancel; /* non-zero: stop between nodes and chunks */
	PfBatchEvents events;
} PfBatchOptions;

typedef struct PfBatch PfBatch;

/*
 * Opens (creating it if missing) and locks o->out_dir; input is the image as the operator
 * named it (a path, a URL or "-"), which the run must never write over or remove. -EPERM
 * when the out dir holds the input.
 */
int pf_batch_new(const PfBatchOptions *o, const char *input, PfBatch **ret);
PfBatch *pf_batch_free(PfBatch *b);
DEFINE_TRIVIAL_CLEANUP_FUNC(PfBatch *, pf_batch_free);

/* The image opened from input (borrowed until pf_batch_free()). */
int pf_batch_set_image(PfBatch *b, const PfImage *base);

/*
 * The nodes: rows[0..n_rows) of inv (borrowed) are this run's, the image's flavor is f.
 * Digests the common inputs, checks that no file the run may write is the input (-EPERM),
 * and reads the last report.json, keeping the nodes not selected whose artifacts are intact.
 * Returns the number of worker threads it will use.
 */
int pf_batch_plan(PfBatch *b, const PfInventory *inv, const PfFlavorInfo *f, const size_t *rows,
		  size_t n_rows);

/* Builds every selected node that is not up to date; stops early when cancelled. */
void pf_batch_build(PfBatch *b);

/* SHA256SUMS, hosts, inventory.ini, known_hosts (with host keys) and report.json. */
int pf_batch_write_listings(PfBatch *b, double seconds);

/* Every row's result, in inventory order (PF_NODE_UNSELECTED for those not in the run). */
const PfNodeResult *pf_batch_results(const PfBatch *b, size_t *ret_n);
