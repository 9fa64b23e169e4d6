/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * What a run made of one node, and the files that list the nodes for the operator: the
 * report (report.json), SHA256SUMS, hosts, known_hosts and an Ansible inventory. Every one of
 * them is written from an array of PfNodeResult, so a node reads the same in all of them;
 * the main job's --known-hosts uses the same lines.
 */

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "build/node.h"

typedef enum PfNodeStatus {
	PF_NODE_PENDING,
	PF_NODE_OK,
	PF_NODE_REUSED,
	PF_NODE_FAILED,
	PF_NODE_UNSELECTED, /* not in this run's --only/--exclude/--shard selection */
	PF_NODE_KEPT,	    /* not selected, but its artifact from an earlier run is intact */
	_PF_NODE_STATUS_MAX,
} PfNodeStatus;

typedef struct PfNodeResult {
	const char *hostname;
	PfNodeStatus status;
	char *error;
	char inputs[65]; /* digest of what shapes the artifact (node/digest.h) */
	/* The artifact of a node built or reused: */
	char *artifact; /* file name in the out dir */
	char *bmap;	/* file name, or NULL */
	char sha256[65];
	char bmap_sha256[65];
	uint64_t file_bytes, image_bytes;
	int64_t mtime_ns;
	/* The node: */
	char *address; /* "10.0.0.11/24", NULL for DHCP */
	char *fqdn;
	char *user;
	char *instance_id;
	char *group;	  /* Ansible groups, NULL for none */
	char **host_keys; /* public lines, "ssh-ed25519 AAAA... root@worker3" */
	char **fingerprints;
	size_t n_host_keys;
	double seconds;
} PfNodeResult;

/* Fills r's node fields (not its hostname) from the built node b (group may be NULL): what
 * was there goes. */
int pf_node_result_describe(PfNodeResult *r, const PfNodeBuild *b, const char *group);

/*
 * Everything of r that goes into inventory.ini, hosts and known_hosts — line formats that
 * have no escaping — is what it claims to be: a user name by the node's own rules, an
 * address, a domain name, a key. Returns 0 or -EINVAL with a detail naming the field.
 */
int pf_node_result_check(const PfNodeResult *r);

/* Frees the node fields (not the artifact's), and the host keys alone. */
void pf_node_result_forget(PfNodeResult *r);
void pf_node_result_forget_keys(PfNodeResult *r);
/* Frees all of r. */
void pf_node_result_done(PfNodeResult *r);

/* Is r in the listings (built, up to date or kept)? */
bool pf_node_result_listed(const PfNodeResult *r);

/* "ok", "up-to-date", "failed", "kept", "not-built". */
const char *pf_node_status_name(PfNodeStatus s);

/* The known_hosts lines of r: "worker3.example.com,worker3,10.0.0.13 ssh-ed25519 AAAA...". */
void pf_known_hosts_lines(FILE *f, const PfNodeResult *r);

/*
 * Puts r's host keys into the operator's known_hosts at path, under its names, replacing the
 * lines that named any of them before (as `ssh-keygen -R` would; hashed and @marker lines are
 * left alone). Through a temporary file and a rename.
 */
int pf_known_hosts_update(const char *path, const PfNodeResult *r);

/* pf_known_hosts_update() for the node just built. */
int pf_known_hosts_add(const char *path, const PfNodeBuild *b);

/* The listings, each from results[0..n) in order: "from" names the inventory in comments. */
int pf_listing_sums(FILE *f, const PfNodeResult *results, size_t n);
void pf_listing_hosts(FILE *f, const PfNodeResult *results, size_t n, const char *from);
void pf_listing_known_hosts(FILE *f, const PfNodeResult *results, size_t n, const char *from);
int pf_listing_ansible(FILE *f, const PfNodeResult *results, size_t n, const char *from);
