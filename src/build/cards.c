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
#include <time.h>
#include <unistd.h>

#include "build/cards.h"
#include "build/cluster.h"
#include "build/report.h"
#include "util/error.h"
#include "util/strutil.h"

#define RECORD_LINE_MAX (64u * 1024)

struct PfCards {
	PfCardNode *nodes;
	size_t n_nodes;
	pthread_mutex_t lock; /* nodes[].state, stop, the record */
	bool stop;
	FILE *record;
};

int pf_cards_new(const PfInventory *inv, const size_t *rows, size_t n_rows, PfCards **ret)
{
	PfCards *c = calloc(1, sizeof(PfCards));

	if (!c)
		return -ENOMEM;
	c->nodes = calloc(n_rows ?: 1, sizeof(PfCardNode));
	if (!c->nodes) {
		free(c);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n_rows; i++)
		c->nodes[i] = (PfCardNode){
			.row = &inv->rows[rows[i]],
			.hostname = pf_row_hostname(inv, &inv->rows[rows[i]]),
		};
	c->n_nodes = n_rows;
	pthread_mutex_init(&c->lock, NULL);
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
	free(c->nodes);
	free(c);
	return NULL;
}

PfCardNode *pf_cards_nodes(PfCards *c, size_t *ret_n)
{
	*ret_n = c->n_nodes;
	return c->nodes;
}

/* ---- the record: JSON lines ------------------------------------------------------------- */

int pf_cards_record_read(PfCards *c, const char *path)
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

int pf_cards_record_open(PfCards *c, const char *path)
{
	c->record = fopen(path, "ae");
	return c->record ? 0 : pf_error_set(-errno, "%m");
}

void pf_card_time(char out[32])
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_object *str_or_null(const char *s)
{
	return s && *s ? json_object_new_string(s) : NULL;
}

static json_object *record_json(const PfCardRecord *cr)
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

void pf_cards_record_write(PfCards *c, const PfCardRecord *cr)
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

PfCardNode *pf_cards_take(PfCards *c)
{
	PfCardNode *n;

	pthread_mutex_lock(&c->lock);
	n = c->stop ? NULL : next_pending(c);
	if (n)
		n->state = PF_CARD_TAKEN;
	pthread_mutex_unlock(&c->lock);
	return n;
}

const char *pf_cards_finish(PfCards *c, PfCardNode *n, PfCardState state, bool stop)
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

void pf_cards_stop(PfCards *c)
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

int pf_card_media_bytes(const char *path, uint64_t *ret)
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

int pf_card_wait(PfCards *c, const char *path, bool present, double poll_seconds,
		 const volatile sig_atomic_t *cancel)
{
	double poll = poll_seconds > 0 ? poll_seconds : 0.25;
	struct timespec ts;
	uint64_t size;
	int e;

	ts.tv_sec = (time_t)poll;
	ts.tv_nsec = (long)((poll - (double)ts.tv_sec) * 1e9);
	for (;;) {
		e = pf_card_media_bytes(path, &size);
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
