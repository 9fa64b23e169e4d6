/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for build/result.c: the listings a cluster run writes from its per-node results
 * (SHA256SUMS, hosts, known_hosts, the Ansible inventory), the main job's --known-hosts
 * update, and the check that keeps a hostile string out of those line formats.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "build/result.h"
#include "util/error.h"
#include "util/fileio.h"

#define KEY1 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFSu6OOUcHmssSUZKFqzEu5Iu40Qe0qcjMmvOMok115F"
#define KEY2 "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILeenZQ2I+DsgBwNWWwclBOpnW3gBIrx0DcfoJGrQAwf"
#define FP "SHA256:abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ"

/* The fields are not const (a result owns them); these are never freed. */
#define S(x) ((char *)(x))

static char *keys1[] = { S(KEY1 " root@w1") };
static char *keys2[] = { S(KEY2 " root@w2") };
static char *fps[] = { S(FP) };

/* Three nodes: w1 static with a domain and a group, w2 DHCP, w3 failed. */
static void nodes(PfNodeResult r[3])
{
	r[0] = (PfNodeResult){
		.hostname = "w1",
		.status = PF_NODE_OK,
		.artifact = S("w1.img"),
		.sha256 = "11",
		.address = S("10.0.0.11/24"),
		.fqdn = S("w1.lab"),
		.user = S("pi"),
		.group = S("workers, arm"),
		.host_keys = keys1,
		.fingerprints = fps,
		.n_host_keys = 1,
	};
	r[1] = (PfNodeResult){
		.hostname = "w2",
		.status = PF_NODE_REUSED,
		.artifact = S("w2.img"),
		.bmap = S("w2.img.bmap"),
		.sha256 = "22",
		.bmap_sha256 = "2b",
		.user = S("pi"),
		.host_keys = keys2,
		.fingerprints = fps,
		.n_host_keys = 1,
	};
	r[2] = (PfNodeResult){ .hostname = "w3", .status = PF_NODE_FAILED, .error = S("bad key") };
}

/* What fn writes to a memory stream. */
static char *listing(void (*fn)(FILE *f, const PfNodeResult *r))
{
	PfNodeResult r[3];
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	nodes(r);
	fn(f, r);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void sums(FILE *f, const PfNodeResult *r)
{
	assert_int_equal(pf_listing_sums(f, r, 3), 0);
}

static void hosts(FILE *f, const PfNodeResult *r)
{
	pf_listing_hosts(f, r, 3, "cluster.csv");
}

static void known(FILE *f, const PfNodeResult *r)
{
	pf_listing_known_hosts(f, r, 3, "cluster.csv");
}

static void ansible(FILE *f, const PfNodeResult *r)
{
	assert_int_equal(pf_listing_ansible(f, r, 3, "cluster.csv"), 0);
}

static void test_listings(void **state)
{
	char *text;

	(void)state;
	/* Name order, bmaps too, failed nodes left out: `sha256sum -c` reads it. */
	text = listing(sums);
	assert_string_equal(text, "11  w1.img\n22  w2.img\n2b  w2.img.bmap\n");
	free(text);

	text = listing(hosts);
	assert_string_equal(text, "# Written by piflash batch from cluster.csv\n"
				  "10.0.0.11\tw1.lab w1\n"
				  "# w2: DHCP, no fixed address\n");
	free(text);

	/* Every name a node answers to, the key without its comment. */
	text = listing(known);
	assert_string_equal(
		text, "# Written by piflash batch from cluster.csv: the host keys on the cards\n"
		      "w1.lab,w1,10.0.0.11 " KEY1 "\n"
		      "w2 " KEY2 "\n");
	free(text);

	/* A section per group in order of first appearance; no group: [ungrouped]. */
	text = listing(ansible);
	assert_string_equal(text, "# Written by piflash batch from cluster.csv\n"
				  "\n[workers]\nw1 ansible_host=10.0.0.11 ansible_user=pi\n"
				  "\n[arm]\nw1 ansible_host=10.0.0.11 ansible_user=pi\n"
				  "\n[ungrouped]\nw2 ansible_host=w2 ansible_user=pi\n");
	free(text);
}

/* --known-hosts: the node's old lines go, every other line stays, the new ones are added. */
static void test_known_hosts_update(void **state)
{
	char path[] = "/tmp/test-result-XXXXXX";
	const char *old = "# mine\n"
			  "w1 ssh-rsa AAAAold\n"
			  "other,10.0.0.11 ssh-rsa AAAAaddr\n"
			  "|1|hashed= ssh-rsa AAAAhash\n"
			  "@revoked w1 ssh-rsa AAAArev\n"
			  "w10 ssh-rsa AAAAkeep\n";
	PfNodeResult r[3];
	char *text = NULL;
	size_t len = 0;
	int fd;

	(void)state;
	nodes(r);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(pf_write_all(fd, old, strlen(old), 0), 0);
	close(fd);
	assert_int_equal(pf_known_hosts_update(path, &r[0]), 0);
	assert_int_equal(pf_read_file_at(AT_FDCWD, path, 1 << 20, &text, &len), 0);
	assert_string_equal(text, "# mine\n"
				  "|1|hashed= ssh-rsa AAAAhash\n"
				  "@revoked w1 ssh-rsa AAAArev\n"
				  "w10 ssh-rsa AAAAkeep\n"
				  "w1.lab,w1,10.0.0.11 " KEY1 "\n");
	free(text);
	unlink(path);
}

/* What would break a line format is refused, naming the field. */
static void test_check(void **state)
{
	PfNodeResult r[3];

	(void)state;
	nodes(r);
	assert_int_equal(pf_node_result_check(&r[0]), 0);
	r[0].user = S("pi\n[all:vars]");
	assert_int_equal(pf_node_result_check(&r[0]), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "user"));
	nodes(r);
	r[0].fqdn = S("evil.lab");
	assert_int_equal(pf_node_result_check(&r[0]), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "fqdn"));
	nodes(r);
	r[0].address = S("10.0.0.11/24 extra");
	assert_int_equal(pf_node_result_check(&r[0]), -EINVAL);
	nodes(r);
	keys1[0] = S(KEY1 " root@w1\nw9 ssh-rsa AAAA");
	assert_int_equal(pf_node_result_check(&r[0]), -EINVAL);
	keys1[0] = S(KEY1 " root@w1");
	pf_error_clear();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listings),
		cmocka_unit_test(test_known_hosts_update),
		cmocka_unit_test(test_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
