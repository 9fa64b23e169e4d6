/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The values one run of piflash chooses by itself, read back from an image it wrote.
 *
 * Without a seed and SOURCE_DATE_EPOCH, two runs with the same options differ in three things
 * only: the time stamp of everything written (one value, the run's start), a cloud-init
 * node's instance-id (random) and, with --host-keys, the host keys (random). `piflash verify`
 * rebuilds the image to compare it with a card; to do so for a card written without a seed it
 * reads these three from the card and uses them, so every other byte is compared as usual.
 *
 * Where to look comes from a probe plan: the node's plan built with PF_RUN_PROBE_SUFFIX as the
 * instance-id's random part. The instance-id is taken at the offset the probe's id has in a
 * file the plan writes (the same length, so the same offset when nothing else differs) and
 * accepted only in piflash's own form "iid-piflash-HOSTNAME-<16 hex digits>"; the time stamp
 * is the mtime of a file the plan writes (on ext, exact, when there is one; else FAT's, which
 * FAT rounds the same way when rebuilt); the host keys are the files the plan writes.
 *
 * What this cannot tell: a card whose instance-id, time stamps or host key pair were replaced
 * by others of the same form verifies. With the seed and SOURCE_DATE_EPOCH of the write,
 * verify uses those instead and every byte is as the options say.
 */

#include <stdbool.h>
#include <stdint.h>

#include "disk/ptable.h"
#include "fs/tree.h"
#include "node/hostkey.h"
#include "node/plan.h"

/* The random part of the probe plan's instance-id: as long as a real one. */
#define PF_RUN_PROBE_SUFFIX "0000000000000000"

typedef struct PfRunValues {
	bool have_now;
	int64_t now;	   /* the time stamp of what the run wrote */
	char *instance_id; /* NULL: none found (the plan has none, or the card holds no id) */
	/* Host keys found where the probe plan writes them: type, private_key, public_line
	 * (fingerprint NULL). */
	PfHostKey host_keys[4];
	size_t n_host_keys;
} PfRunValues;

/*
 * Reads the run values of hostname's image in tree (table t: what the run wrote), at the
 * places probe (the plan built with the probe instance-id) writes. A value not found is left
 * out (have_now false, instance_id NULL, fewer host keys). Returns 0 or -ENOMEM.
 */
int pf_run_values_read(PfTree *tree, const PfPtable *t, const PfPlan *probe, const char *hostname,
		       PfRunValues *ret);

/* Frees the members (the private keys wiped) and zeroes *v. */
void pf_run_values_done(PfRunValues *v);
