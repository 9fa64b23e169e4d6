/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flash/stream.h"
#include "util/error.h"

typedef struct Slot {
	uint8_t *buf;
	uint64_t offset;
	size_t len;
	bool full;
} Slot;

typedef struct Ring {
	const PfStream *s;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	Slot slots[PF_STREAM_BUFFERS];
	unsigned head; /* next slot the reader fills */
	unsigned tail; /* next slot the writer drains */
	bool reader_done;
	bool writer_done;
	bool stop;
	uint64_t done;
	int error;
	char message[512]; /* the error's detail: pf_error is per thread */
} Ring;

void *pf_stream_alloc(size_t len)
{
	void *p = NULL;

	if (posix_memalign(&p, PF_STREAM_ALIGN, ALIGN_UP(len, PF_STREAM_ALIGN)) != 0)
		return NULL;
	return p;
}

/* Records the first error of either side and stops both. Called with the lock held. */
static void fail_locked(Ring *ring, int r)
{
	if (!ring->error) {
		ring->error = r;
		snprintf(ring->message, sizeof(ring->message), "%s", pf_error_message(r));
	}
	ring->stop = true;
	pthread_cond_broadcast(&ring->changed);
}

static void *reader(void *userdata)
{
	Ring *ring = userdata;
	const PfStream *s = ring->s;
	int r = 0;

	for (size_t i = 0; i < s->ranges->n && r >= 0; i++) {
		uint64_t pos = s->ranges->items[i].start_bytes;
		uint64_t end = pos + s->ranges->items[i].length_bytes;

		while (pos < end) {
			Slot *slot;

			pthread_mutex_lock(&ring->lock);
			while (!ring->stop && ring->slots[ring->head].full)
				pthread_cond_wait(&ring->changed, &ring->lock);
			if (ring->stop) {
				pthread_mutex_unlock(&ring->lock);
				goto out;
			}
			slot = &ring->slots[ring->head];
			pthread_mutex_unlock(&ring->lock);

			/* The slot is the reader's until it is marked full. */
			slot->offset = pos;
			slot->len = (size_t)MIN((uint64_t)PF_STREAM_CHUNK_BYTES, end - pos);
			r = s->read(s->read_data, pos, slot->buf, slot->len);

			pthread_mutex_lock(&ring->lock);
			if (r < 0) {
				fail_locked(ring, r);
				pthread_mutex_unlock(&ring->lock);
				goto out;
			}
			slot->full = true;
			ring->head = (ring->head + 1) % PF_STREAM_BUFFERS;
			pthread_cond_broadcast(&ring->changed);
			pthread_mutex_unlock(&ring->lock);
			pos += slot->len;
		}
	}
out:
	pthread_mutex_lock(&ring->lock);
	ring->reader_done = true;
	pthread_cond_broadcast(&ring->changed);
	pthread_mutex_unlock(&ring->lock);
	return NULL;
}

static void *writer(void *userdata)
{
	Ring *ring = userdata;
	const PfStream *s = ring->s;

	for (;;) {
		Slot *slot;
		int r;

		pthread_mutex_lock(&ring->lock);
		while (!ring->stop && !ring->slots[ring->tail].full && !ring->reader_done)
			pthread_cond_wait(&ring->changed, &ring->lock);
		if (ring->stop || !ring->slots[ring->tail].full) {
			pthread_mutex_unlock(&ring->lock);
			break;
		}
		slot = &ring->slots[ring->tail];
		pthread_mutex_unlock(&ring->lock);

		r = s->write(s->write_data, slot->offset, slot->buf, slot->len);

		pthread_mutex_lock(&ring->lock);
		if (r < 0) {
			fail_locked(ring, r);
			pthread_mutex_unlock(&ring->lock);
			break;
		}
		ring->done += slot->len;
		slot->full = false;
		ring->tail = (ring->tail + 1) % PF_STREAM_BUFFERS;
		pthread_cond_broadcast(&ring->changed);
		pthread_mutex_unlock(&ring->lock);
	}

	pthread_mutex_lock(&ring->lock);
	ring->writer_done = true;
	/* The reader may be waiting for a slot the writer will never drain. */
	ring->stop = true;
	pthread_cond_broadcast(&ring->changed);
	pthread_mutex_unlock(&ring->lock);
	return NULL;
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	ts->tv_sec += ms / 1000 + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

int pf_stream_run(const PfStream *s, uint64_t *ret_done_bytes)
{
	unsigned interval = s->progress_interval_ms ?: 200;
	Ring ring = { .s = s };
	pthread_t rt, wt;
	uint64_t total;
	bool cancelled = false;
	int r = 0;

	total = pf_extents_total(s->ranges);
	for (unsigned i = 0; i < PF_STREAM_BUFFERS; i++) {
		ring.slots[i].buf = pf_stream_alloc(PF_STREAM_CHUNK_BYTES);
		if (!ring.slots[i].buf) {
			r = -ENOMEM;
			goto out;
		}
	}
	pthread_mutex_init(&ring.lock, NULL);
	pthread_cond_init(&ring.changed, NULL);

	r = -pthread_create(&rt, NULL, reader, &ring);
	if (r < 0)
		goto destroy;
	r = -pthread_create(&wt, NULL, writer, &ring);
	if (r < 0) {
		pthread_mutex_lock(&ring.lock);
		ring.stop = true;
		pthread_cond_broadcast(&ring.changed);
		pthread_mutex_unlock(&ring.lock);
		pthread_join(rt, NULL);
		goto destroy;
	}

	pthread_mutex_lock(&ring.lock);
	while (!(ring.writer_done && ring.reader_done)) {
		struct timespec ts;
		uint64_t done = ring.done;

		if (s->cancel && *s->cancel && !ring.stop) {
			cancelled = true;
			ring.stop = true;
			pthread_cond_broadcast(&ring.changed);
		}
		if (s->progress) {
			pthread_mutex_unlock(&ring.lock);
			s->progress(s->progress_data, done, total);
			pthread_mutex_lock(&ring.lock);
		}
		deadline_in(&ts, interval);
		pthread_cond_timedwait(&ring.changed, &ring.lock, &ts);
	}
	pthread_mutex_unlock(&ring.lock);
	pthread_join(rt, NULL);
	pthread_join(wt, NULL);

	if (s->progress && !ring.error && !cancelled)
		s->progress(s->progress_data, ring.done, total);
	if (ring.error)
		r = pf_error_set(ring.error, "%s", ring.message);
	else if (cancelled)
		r = -ECANCELED;
	if (ret_done_bytes)
		*ret_done_bytes = ring.done;
destroy:
	pthread_cond_destroy(&ring.changed);
	pthread_mutex_destroy(&ring.lock);
out:
	for (unsigned i = 0; i < PF_STREAM_BUFFERS; i++)
		free(ring.slots[i].buf);
	return r;
}
