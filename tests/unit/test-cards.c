/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for build/cards.c, the steps of a card-after-card run before any card: the
 * selection and its bad rows, the record of an earlier run, and the checks of a reader that
 * need no card. What the run says is collected from its note callback, as cmd/cards.c would
 * print it. Writing cards needs block devices: tests/integration/cards.sh does that.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "build/cards.h"
#include "test-util.h"
#include "util/error.h"

typedef struct Fixture {
	char dir[64];
	char csv[128];
	char record[128];
	char said[1024]; /* the notes, one "kind node text" a line */
} Fixture;

static void on_note(void *userdata, const PfCardsNote *n)
{
	Fixture *f = userdata;
	size_t l = strlen(f->said);

	snprintf(f->said + l, sizeof(f->said) - l, "%d %s %s\n", (int)n->kind, n->node ?: "-",
		 n->text ?: "-");
}

static int setup(void **state)
{
	Fixture *f = calloc(1, sizeof(Fixture));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/pf-test-cards-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->csv, sizeof(f->csv), "%s/cluster.csv", f->dir);
	snprintf(f->record, sizeof(f->record), "%s/run.jsonl", f->dir);
	/* node2's address is wrong: a bad row, kept aside. */
	write_text(f->csv, "hostname,ip\nnode1,10.0.9.1/24\nnode2,10.0.9.300/24\n"
			   "node3,10.0.9.3/24\n");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	Fixture *f = *state;

	remove_tree(f->dir);
	free(f);
	return 0;
}

/* A run of the inventory as sel selects it, up to its selection (r: what that returned). */
static PfCards *cards_selected(Fixture *f, const PfNodeSpec *spec, PfSelection sel,
			       const char *record, char *const *readers, size_t n_readers, int *r)
{
	PfCardsOptions o = {
		.spec = spec,
		.sel = sel,
		.record = record,
		.readers = readers,
		.n_readers = n_readers,
		.events = { .note = on_note, .userdata = f },
	};
	PfCards *c = NULL;

	assert_int_equal(pf_cards_new(&o, &c), 0);
	assert_int_equal(pf_cards_load(c), 0);
	pf_error_clear();
	*r = pf_cards_select(c);
	return c;
}

static void test_bad_row(void **state)
{
	Fixture *f = *state;
	PfNodeSpec spec = { .inventory = f->csv };
	_cleanup_(pf_cards_freep) PfCards *c = NULL;
	int r;

	c = cards_selected(f, &spec, (PfSelection){ 0 }, NULL, NULL, 0, &r);
	assert_int_equal(r, 0);
	pf_error_clear();
	check_err(pf_cards_check_rows(c), -EINVAL, "1 node of '",
		  "cannot be built; nothing written (fix it, or leave it out with "
		  "--only)",
		  NULL);
	assert_non_null(strstr(f->said, "node2 "));
	assert_non_null(strstr(f->said, "10.0.9.300"));
	assert_null(strstr(f->said, "node1"));
}

static void test_selection(void **state)
{
	Fixture *f = *state;
	PfNodeSpec spec = { .inventory = f->csv };
	PfCards *c;
	int r;

	c = cards_selected(f, &spec, (PfSelection){ .only = "node1,nodeX" }, NULL, NULL, 0, &r);
	check_err(r, -EINVAL, "'nodeX' is not a hostname", NULL);
	pf_cards_free(c);

	c = cards_selected(f, &spec, (PfSelection){ .only = "node1", .exclude = "node1" }, NULL,
			   NULL, 0, &r);
	assert_int_equal(r, 0);
	pf_error_clear();
	check_err(pf_cards_check_rows(c), -EINVAL, "no node of '", "' is selected", NULL);
	pf_cards_free(c);
}

/* Nodes done in an earlier run are skipped; a failed card is not done. */
static void test_resume(void **state)
{
	Fixture *f = *state;
	PfNodeSpec spec = { .inventory = f->csv };
	_cleanup_(pf_cards_freep) PfCards *c = NULL;
	const PfCardNode *nodes;
	char want[64];
	size_t todo = 99, n;
	int r;

	write_text(f->record, "{\"node\":\"node1\",\"result\":\"ok\"}\n"
			      "{\"node\":\"node3\",\"result\":\"failed\"}\n");
	c = cards_selected(f, &spec, (PfSelection){ .only = "node1,node3" }, f->record, NULL, 0,
			   &r);
	assert_int_equal(r, 0);
	assert_int_equal(pf_cards_check_rows(c), 0);
	assert_int_equal(pf_cards_resume(c, &todo), 0);
	assert_int_equal(todo, 1);
	nodes = pf_cards_nodes(c, &n);
	assert_int_equal(n, 2);
	assert_int_equal(nodes[0].state, PF_CARD_RECORDED);
	assert_int_equal(nodes[1].state, PF_CARD_PENDING);
	snprintf(want, sizeof(want), "%d node1 -\n", (int)PF_CARDS_RECORDED);
	assert_string_equal(f->said, want);
}

static void test_bad_record(void **state)
{
	Fixture *f = *state;
	PfNodeSpec spec = { .inventory = f->csv };
	_cleanup_(pf_cards_freep) PfCards *c = NULL;
	size_t todo = 99;
	int r;

	write_text(f->record, "{\"node\":\"node1\",\"result\":\"ok\"}\n[1, 2]\n");
	c = cards_selected(f, &spec, (PfSelection){ .only = "node1,node3" }, f->record, NULL, 0,
			   &r);
	assert_int_equal(r, 0);
	pf_error_clear();
	check_err(pf_cards_resume(c, &todo), -EINVAL, "run.jsonl:2:", NULL);
	assert_int_equal(todo, 99);
}

/* The readers' checks that need no card: a file is not a reader, nor is what is missing. */
static void test_readers(void **state)
{
	Fixture *f = *state;
	PfNodeSpec spec = { .inventory = f->csv };
	char missing[160];
	char *readers[] = { f->csv, missing };
	_cleanup_(pf_cards_freep) PfCards *c = NULL;
	uint64_t size = 7;
	int r;

	snprintf(missing, sizeof(missing), "%s/no-such-reader", f->dir);
	c = cards_selected(f, &spec, (PfSelection){ 0 }, NULL, readers, 2, &r);
	assert_int_equal(r, 0);
	pf_error_clear();
	check_err(pf_cards_check_reader(c, 0, &size), -ENOTBLK,
		  "' is not a block device: --all writes cards in readers", NULL);
	pf_error_clear();
	check_err(pf_cards_check_reader(c, 1, &size), -ENOENT, "no-such-reader': No such file",
		  NULL);
	assert_int_equal(size, 7);
}

static void test_too_many_readers(void **state)
{
	char *readers[PF_CARDS_READERS_MAX + 1] = { 0 };
	PfCardsOptions o = { .readers = readers, .n_readers = PF_CARDS_READERS_MAX + 1 };
	PfCards *c = NULL;

	(void)state;
	pf_error_clear();
	check_err(pf_cards_new(&o, &c), -E2BIG, "more than 32 card readers", NULL);
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bad_row, setup, teardown),
		cmocka_unit_test_setup_teardown(test_selection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_resume, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_record, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readers, setup, teardown),
		cmocka_unit_test(test_too_many_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
