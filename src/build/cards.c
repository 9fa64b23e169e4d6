/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build/cards.h"
#include "build/cluster.h"
#include "build/report.h"
#include "build/result.h"
#include "util/error.h"
#include "util/strutil.h"
#include "util/json.h"

#define RECORD_LINE_MAX (64u * 1024)

typedef struct Reader {
	PfCards *c;
	size_t index;
	const char *path;
	pthread_t thread;
	dev_t rdev; /* for "the same device" */
} Reader;

struct PfCards {
	PfCardsOptions o;
	PfInventory *inv;
	PfImage *base; /* borrowed: each node's image is forked from it, by several readers */
	const PfFlavorInfo *flavor;
	PfCardNode *nodes;
	size_t n_nodes;
	pthread_mutex_t lock; /* nodes[].state, stop, the record */
	bool stop;
	FILE *record;
	pthread_mutex_t known_hosts_lock; /* rewritten whole: one reader at a time */
	Reader readers[PF_CARDS_READERS_MAX];
	size_t n_readers;
};

static void note(PfCards *c, const PfCardsNote *n)
{
	if (c->o.events.note)
		c->o.events.note(c->o.events.userdata, n);
}

static void phase(Reader *r, const char *node, const char *ph)
{
	PfCards *c = r->c;

	if (c->o.events.phase)
		c->o.events.phase(c->o.events.userdata, r->index, node, ph);
}

int pf_cards_new(const PfCardsOptions *o, PfCards **ret)
{
	PfCards *c;

	if (o->n_readers > PF_CARDS_READERS_MAX)
		return pf_error_set(-E2BIG, "more than %u card readers", PF_CARDS_READERS_MAX);
	c = calloc(1, sizeof(PfCards));
	if (!c)
		return -ENOMEM;
	c->o = *o;
	c->n_readers = o->n_readers;
	for (size_t i = 0; i < c->n_readers; i++)
		c->readers[i] = (Reader){ .c = c, .index = i, .path = o->readers[i] };
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->known_hosts_lock, NULL);
	*ret = c;
	return 0;
}

PfCards *pf_cards_free(PfCards *c)
{
	if (!c)
		return NULL;
	if (c->record)
		fclose(c->record);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->known_hosts_lock);
	free(c->nodes);
	pf_inventory_free(c->inv);
	free(c);
	return NULL;
}

const PfInventory *pf_cards_inventory(const PfCards *c)
{
	return c->inv;
}

const PfCardNode *pf_cards_nodes(const PfCards *c, size_t *ret_n)
{
	*ret_n = c->n_nodes;
	return c->nodes;
}

/* ---- the nodes to write ------------------------------------------------------------------ */

int pf_cards_load(PfCards *c)
{
	return pf_inventory_load_flags(c->o.spec->inventory, PF_INVENTORY_KEEP_BAD_ROWS, &c->inv);
}

int pf_cards_select(PfCards *c)
{
	_cleanup_(freep) size_t *rows = NULL;
	size_t n_rows = 0;
	int r;

	r = pf_selection_apply(c->inv, &c->o.sel, &rows, &n_rows);
	if (r < 0)
		return r;
	c->nodes = calloc(n_rows ?: 1, sizeof(PfCardNode));
	if (!c->nodes)
		return -ENOMEM;
	for (size_t i = 0; i < n_rows; i++)
		c->nodes[i] = (PfCardNode){
			.row = &c->inv->rows[rows[i]],
			.hostname = pf_row_hostname(c->inv, &c->inv->rows[rows[i]]),
		};
	c->n_nodes = n_rows;
	return 0;
}

/* A bad row stops the run before any card is written: fix it, or leave it out. */
int pf_cards_check_rows(PfCards *c)
{
	size_t bad = 0;

	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].row->error) {
			note(c, &(PfCardsNote){ .kind = PF_CARDS_BAD_ROW,
						.node = c->nodes[i].hostname,
						.text = c->nodes[i].row->error });
			bad++;
		}
	if (bad)
		return pf_error_set(-EINVAL,
				    "%zu node%s of '%s' cannot be built; nothing written (fix %s, "
				    "or leave %s out with --only)",
				    bad, bad == 1 ? "" : "s", c->inv->path,
				    bad == 1 ? "it" : "them", bad == 1 ? "it" : "them");
	if (c->n_nodes == 0)
		return pf_error_set(-EINVAL, "no node of '%s' is selected", c->inv->path);
	return 0;
}

/* One card tried, for the record. */
typedef struct RecordLine {
	const char *node;
	const char *device;
	const char *model, *serial; /* NULL or "" when unknown */
	const char *host_key;	    /* with --host-keys: the public key line, else NULL */
	const char *fingerprint;
	char start[32], end[32]; /* ISO 8601 UTC (card_time()) */
	uint64_t bytes;
	bool ok;
	bool interrupted;
	bool verified;	     /* read back and identical */
	bool verify_differs; /* read back and different */
} RecordLine;

/* ---- the record: JSON lines ------------------------------------------------------------- */

/* Marks the nodes the record at path says are done ("result": "ok"); no file: none. */
static int record_read(PfCards *c, const char *path)
{
	_cleanup_(freep) char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : pf_error_set(-errno, "'%s': %m", path);
	while (r >= 0 && (n = getline(&line, &cap, f)) > 0) {
		const char *node = NULL, *result = NULL;
		json_object *o;

		lineno++;
		if ((size_t)n > RECORD_LINE_MAX)
			continue;
		o = json_tokener_parse(line);
		r = pf_report_record_line(o, path, lineno, &node, &result);
		if (r >= 0 && node && result && streq(result, "ok"))
			for (size_t i = 0; i < c->n_nodes; i++)
				if (streq(c->nodes[i].hostname, node))
					c->nodes[i].state = PF_CARD_RECORDED;
		json_object_put(o);
	}
	fclose(f);
	return r;
}

int pf_cards_resume(PfCards *c, size_t *ret_todo)
{
	size_t todo = 0;
	int r;

	if (c->o.record) {
		r = record_read(c, c->o.record);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].state == PF_CARD_RECORDED)
			note(c, &(PfCardsNote){ .kind = PF_CARDS_RECORDED,
						.node = c->nodes[i].hostname });
		else
			todo++;
	*ret_todo = todo;
	return 0;
}

int pf_cards_record_open(PfCards *c)
{
	if (!c->o.record)
		return 0;
	c->record = fopen(c->o.record, "ae");
	return c->record ? 0 : pf_error_set(-errno, "%m");
}

/* The wall clock as the record writes it: "2026-12-06T19:00:00Z". */
static void card_time(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "" (unknown) is null too. */
static json_object *str_or_null(const char *s)
{
	return pf_json_str(s && *s ? s : NULL);
}

static json_object *record_json(const RecordLine *cr)
{
	json_object *o = json_object_new_object();
	const char *verify = cr->ok		  ? (cr->verified ? "ok" : "not-verified")
			     : cr->verify_differs ? "mismatch"
						  : NULL;

	json_object_object_add(o, "node", json_object_new_string(cr->node));
	json_object_object_add(o, "device", json_object_new_string(cr->device));
	json_object_object_add(o, "model", str_or_null(cr->model));
	json_object_object_add(o, "serial", str_or_null(cr->serial));
	json_object_object_add(o, "start", json_object_new_string(cr->start));
	json_object_object_add(o, "end", json_object_new_string(cr->end));
	json_object_object_add(o, "bytes", json_object_new_int64((int64_t)cr->bytes));
	json_object_object_add(o, "verify", str_or_null(verify));
	if (cr->host_key && *cr->host_key) {
		json_object_object_add(o, "host_key", json_object_new_string(cr->host_key));
		json_object_object_add(o, "host_key_fingerprint",
				       json_object_new_string(cr->fingerprint));
	}
	json_object_object_add(o, "result",
			       json_object_new_string(cr->ok		? "ok"
						      : cr->interrupted ? "interrupted"
									: "failed"));
	return o;
}

/* Appends cr to the record, if one is open, and syncs it. */
static void record_write(PfCards *c, const RecordLine *cr)
{
	json_object *o;

	if (!c->record)
		return;
	o = record_json(cr);
	pthread_mutex_lock(&c->lock);
	fprintf(c->record, "%s\n",
		json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(c->record);
	fsync(fileno(c->record));
	pthread_mutex_unlock(&c->lock);
	json_object_put(o);
}

/* ---- the nodes -------------------------------------------------------------------------- */

/* The first node no reader has, or NULL. With c->lock held. */
static PfCardNode *next_pending(PfCards *c)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].state == PF_CARD_PENDING)
			return &c->nodes[i];
	return NULL;
}

/* The next pending node, now taken; NULL when none is left or the run stops. */
static PfCardNode *take(PfCards *c)
{
	PfCardNode *n;

	pthread_mutex_lock(&c->lock);
	n = c->stop ? NULL : next_pending(c);
	if (n)
		n->state = PF_CARD_TAKEN;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Puts n in state; stop ends the run for every reader. Returns the next pending node's
 * hostname (for "put in the card for ..."), or NULL. */
static const char *finish(PfCards *c, PfCardNode *n, PfCardState state, bool stop)
{
	PfCardNode *next;

	pthread_mutex_lock(&c->lock);
	n->state = state;
	if (stop)
		c->stop = true;
	next = next_pending(c);
	pthread_mutex_unlock(&c->lock);
	return next ? next->hostname : NULL;
}

/* Stops the run: no reader takes another node. */
static void stop_all(PfCards *c)
{
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_mutex_unlock(&c->lock);
}

static bool stopping(PfCards *c)
{
	bool s;

	pthread_mutex_lock(&c->lock);
	s = c->stop;
	pthread_mutex_unlock(&c->lock);
	return s;
}

/* True while some node waits for a reader (its card may still be on the way). */
static bool work_pending(PfCards *c)
{
	bool p;

	pthread_mutex_lock(&c->lock);
	p = !c->stop && next_pending(c);
	pthread_mutex_unlock(&c->lock);
	return p;
}

/* ---- a reader's medium ------------------------------------------------------------------ */

static bool no_medium(int e)
{
	return e == ENOMEDIUM || e == ENXIO;
}

/* The size of the medium in the reader at path: 0 when there is none. */
static int media_bytes(const char *path, uint64_t *ret)
{
	uint64_t size = 0;
	int fd, e;

	*ret = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		e = errno;
		if (no_medium(e) || e == ENOENT || e == ENODEV)
			return 0;
		return pf_error_set(-e, "'%s': %s", path, strerror(e));
	}
	if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
		e = errno;
		close(fd);
		if (no_medium(e))
			return 0;
		return pf_error_set(-e, "'%s': cannot read its size: %s", path, strerror(e));
	}
	close(fd);
	*ret = size;
	return 0;
}

/*
 * Waits until the reader at path has a card (present) or has none (!present), polling every
 * poll_seconds. Returns 0; -ECANCELED when *cancel is set, or, waiting for a card, when the
 * run stops; or 1 when waiting for a removal is pointless: no node waits for a card any more
 * (another reader took the last one, or the run stops).
 */
static int card_wait(PfCards *c, const char *path, bool present, double poll_seconds,
		     const volatile sig_atomic_t *cancel)
{
	double poll = poll_seconds > 0 ? poll_seconds : 0.25;
	struct timespec ts;
	uint64_t size;
	int e;

	ts.tv_sec = (time_t)poll;
	ts.tv_nsec = (long)((poll - (double)ts.tv_sec) * 1e9);
	for (;;) {
		e = media_bytes(path, &size);
		if (e < 0)
			return e;
		if ((size > 0) == present)
			return 0;
		/* Removal is waited for even when stopping: the card is then safe to take. */
		if (present && (stopping(c) || *cancel))
			return -ECANCELED;
		if (!present && *cancel)
			return -ECANCELED;
		if (!present && !work_pending(c))
			return 1;
		nanosleep(&ts, NULL);
	}
}

/* ---- before the first card ------------------------------------------------------------- */

void pf_cards_set_image(PfCards *c, PfImage *base, const PfFlavorInfo *f)
{
	c->base = base;
	c->flavor = f;
}

int pf_cards_check_nodes(PfCards *c)
{
	size_t bad = 0;

	for (size_t i = 0; i < c->n_nodes; i++) {
		int e;

		if (c->nodes[i].state == PF_CARD_RECORDED)
			continue;
		e = pf_node_check(c->base, c->o.spec, c->flavor, c->inv, c->nodes[i].row);
		if (e < 0) {
			note(c, &(PfCardsNote){ .kind = PF_CARDS_UNBUILDABLE,
						.node = c->nodes[i].hostname,
						.err = e });
			bad++;
		}
	}
	if (bad)
		return pf_error_set(-EINVAL, "%zu node%s of '%s' cannot be built; nothing written",
				    bad, bad == 1 ? "" : "s", c->inv->path);
	return 0;
}

int pf_cards_check_reader(PfCards *c, size_t i, uint64_t *ret_media_bytes)
{
	Reader *r = &c->readers[i];
	struct stat st;
	uint64_t size;
	int e;

	if (stat(r->path, &st) < 0)
		return pf_error_set(-errno, "'%s': %m", r->path);
	if (!S_ISBLK(st.st_mode))
		return pf_error_set(
			-ENOTBLK,
			"'%s' is not a block device: --all writes cards in readers (use "
			"'piflash batch' for image files)",
			r->path);
	for (size_t k = 0; k < i; k++)
		if (c->readers[k].rdev == st.st_rdev)
			return pf_error_set(-EEXIST, "'%s' and '%s' are the same device",
					    c->readers[k].path, r->path);
	r->rdev = st.st_rdev;
	e = media_bytes(r->path, &size);
	if (e < 0)
		return pf_error_prefix(e, "'%s'", r->path);
	*ret_media_bytes = size;
	return 0;
}

/* ---- one reader ------------------------------------------------------------------------- */

/* A card tried, as the record holds it: the strings of its RecordLine kept here. */
typedef struct CardRecord {
	RecordLine rec;
	PfCardWritten w;
	char host_key[256]; /* with --host-keys: the public key line */
	char fingerprint[64];
	PfCardWriteResult result;
} CardRecord;

static const volatile sig_atomic_t never;

static const volatile sig_atomic_t *cancel_flag(const PfCards *c)
{
	return c->o.cancel ?: &never;
}

/* Waits for a card to be put in (present) or taken out; see card_wait(). */
static int wait_media(Reader *r, bool present)
{
	return card_wait(r->c, r->path, present, r->c->o.poll_seconds, cancel_flag(r->c));
}

/* The node's image, and its host key for the record. */
static int node_image(Reader *r, PfCardNode *n, PfNodeBuild *nb, PfImage **ret_img, CardRecord *cr)
{
	PfCards *c = r->c;
	int e;

	e = pf_node_settings(c->o.spec, c->inv, n->row, &nb->cfg);
	if (e >= 0)
		e = pf_node_image(c->base, c->o.spec, c->flavor, c->o.now, ret_img, nb);
	if (e < 0) {
		note(c,
		     &(PfCardsNote){ .kind = PF_CARDS_BUILD_ERROR, .node = n->hostname, .err = e });
		return e;
	}
	if (nb->n_host_keys > 0) {
		const PfHostKey *k = &nb->host_keys[0];

		snprintf(cr->host_key, sizeof(cr->host_key), "%.*s",
			 (int)strcspn(k->public_line, "\n"), k->public_line);
		snprintf(cr->fingerprint, sizeof(cr->fingerprint), "%s", k->fingerprint);
	}
	return 0;
}

/* A good card's host key into --known-hosts, one reader at a time. */
static void known_hosts_add(Reader *r, PfCardNode *n, const PfNodeBuild *nb)
{
	PfCards *c = r->c;
	int e;

	if (!c->o.known_hosts || nb->n_host_keys == 0)
		return;
	pthread_mutex_lock(&c->known_hosts_lock);
	e = pf_known_hosts_add(c->o.known_hosts, nb);
	pthread_mutex_unlock(&c->known_hosts_lock);
	/* The card is good: its key is on record (--record) even if this failed. */
	if (e < 0)
		note(c, &(PfCardsNote){ .kind = PF_CARDS_KNOWN_HOSTS_ERROR,
					.reader = r->index,
					.device = r->path,
					.node = n->hostname,
					.err = e });
}

/* Builds the node's image, waits for its card, has it written. cr->result says how it went;
 * cr->rec.start is set when a card was tried. */
static void flash_node(Reader *r, PfCardNode *n, CardRecord *cr)
{
	PfCards *c = r->c;
	_cleanup_(pf_node_build_done) PfNodeBuild nb = { 0 };
	_cleanup_(pf_image_freep) PfImage *img = NULL;
	int e;

	cr->result = PF_CARD_WRITE_FAILED;
	if (node_image(r, n, &nb, &img, cr) < 0)
		return;
	phase(r, n->hostname, "wait-card");
	note(c, &(PfCardsNote){ .kind = PF_CARDS_PUT_IN,
				.reader = r->index,
				.device = r->path,
				.node = n->hostname });
	e = wait_media(r, true);
	if (e == -ECANCELED) {
		cr->result = PF_CARD_WRITE_INTERRUPTED;
		return;
	}
	if (e < 0) {
		note(c, &(PfCardsNote){ .kind = PF_CARDS_READER_ERROR,
					.reader = r->index,
					.device = r->path,
					.node = n->hostname,
					.err = e });
		return;
	}
	card_time(cr->rec.start);
	cr->result = c->o.events.write(c->o.events.userdata, r->index, n->hostname, img, &cr->w);
	if (cr->result == PF_CARD_WRITE_OK)
		known_hosts_add(r, n, &nb);
}

static void card_record(PfCards *c, CardRecord *cr)
{
	cr->rec.model = cr->w.model;
	cr->rec.serial = cr->w.serial;
	cr->rec.host_key = cr->host_key;
	cr->rec.fingerprint = cr->fingerprint;
	cr->rec.bytes = cr->w.bytes;
	cr->rec.verified = cr->w.verified;
	cr->rec.ok = cr->result == PF_CARD_WRITE_OK;
	cr->rec.interrupted = cr->result == PF_CARD_WRITE_INTERRUPTED;
	cr->rec.verify_differs = cr->result == PF_CARD_WRITE_MISMATCH;
	record_write(c, &cr->rec);
}

/* What to do after a failed card: the caller's answer, or stop when nobody asks. */
static PfCardDecision decide(Reader *r, PfCardNode *n)
{
	PfCards *c = r->c;

	if (!c->o.events.decide)
		return PF_CARD_STOP;
	return c->o.events.decide(c->o.events.userdata, r->index, n->hostname);
}

/* After a card: the node done or failed (and what now), the reader free again. Returns
 * false when the reader stops. */
static bool card_after(Reader *r, PfCardNode *n, PfCardWriteResult res)
{
	PfCards *c = r->c;
	PfCardDecision d;
	const char *next;

	if (res == PF_CARD_WRITE_INTERRUPTED) {
		finish(c, n, PF_CARD_PENDING, false);
		return false;
	}
	if (res == PF_CARD_WRITE_OK) {
		next = finish(c, n, PF_CARD_DONE, false);
		phase(r, n->hostname, "done");
		note(c, &(PfCardsNote){ .kind = PF_CARDS_NODE_DONE,
					.reader = r->index,
					.device = r->path,
					.node = n->hostname,
					.next = next });
		return true;
	}
	phase(r, n->hostname, "failed");
	d = decide(r, n);
	finish(c, n, d == PF_CARD_RETRY ? PF_CARD_PENDING : PF_CARD_FAILED, d == PF_CARD_STOP);
	note(c, &(PfCardsNote){ .kind = PF_CARDS_NODE_FAILED,
				.reader = r->index,
				.device = r->path,
				.node = n->hostname,
				.decision = d });
	return d != PF_CARD_STOP;
}

static void *reader_main(void *userdata)
{
	Reader *r = userdata;
	PfCards *c = r->c;

	for (;;) {
		CardRecord cr = { .rec.device = r->path };
		PfCardNode *n = take(c);

		if (!n || *cancel_flag(c))
			break;
		phase(r, n->hostname, NULL);
		cr.rec.node = n->hostname;
		flash_node(r, n, &cr);
		/* Every card tried goes on record, whatever became of it. */
		if (cr.rec.start[0]) {
			card_time(cr.rec.end);
			card_record(c, &cr);
		}
		if (!card_after(r, n, cr.result))
			break;
		phase(r, n->hostname, "wait-removal");
		if (wait_media(r, false) != 0)
			break;
		phase(r, NULL, NULL);
	}
	phase(r, NULL, "finished");
	return NULL;
}

void pf_cards_run(PfCards *c)
{
	size_t n = c->n_readers;

	for (size_t i = 0; i < c->n_readers; i++)
		if (pthread_create(&c->readers[i].thread, NULL, reader_main, &c->readers[i]) != 0) {
			note(c, &(PfCardsNote){ .kind = PF_CARDS_NO_THREAD,
						.reader = i,
						.device = c->readers[i].path });
			stop_all(c);
			n = i;
			break;
		}
	for (size_t i = 0; i < n; i++)
		pthread_join(c->readers[i].thread, NULL);
}
