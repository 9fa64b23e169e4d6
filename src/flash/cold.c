/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flash/cold.h"
#include "flash/stream.h"
#include "util/error.h"
#include "util/fileio.h"

/* The writer waits for this much newly decoded image before it writes (fewer, larger
 * writes), unless the image is complete. */
#define STEP_BYTES (UINT64_C(8) * 1024 * 1024)

struct PfColdWriter {
	PfTarget *t;
	uint64_t size_bytes;
	uint64_t align;
	uint8_t *buf; /* PF_STREAM_CHUNK_BYTES, aligned for O_DIRECT */

	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	/* Under lock: */
	int src_fd;	  /* the cache file being filled (dup), -1 before the first report */
	uint64_t decoded; /* every byte below this can be read from src_fd */
	bool stop;	  /* pf_cold_free(): stop after the current chunk */
	bool finished;	  /* pf_cold_finish(): no more reports; write up to decoded */
	bool done;	  /* the writer thread has returned */
	bool started;	  /* the card's table area is zeroed: the card is being written */
	int error;
	char message[512];
	/* The writer's own: */
	uint64_t pos; /* everything below it that is not zero is on the card */
	PfExtents written;
};

/* Copies the data ranges of the cache file in [start, end) to the card. */
static int copy_data(PfColdWriter *w, int fd, uint64_t start, uint64_t end)
{
	int card = pf_target_fd(w->t);
	uint64_t off = start;
	int r;

	while (off < end) {
		off_t d = lseek(fd, (off_t)off, SEEK_DATA), h;
		uint64_t s, e;

		if (d < 0) {
			if (errno == ENXIO) /* nothing but a hole up to the end of the file */
				return 0;
			return pf_error_set(-errno, "cannot read the image being decoded: %m");
		}
		if ((uint64_t)d >= end)
			return 0;
		h = lseek(fd, d, SEEK_HOLE);
		if (h < 0)
			return pf_error_set(-errno, "cannot read the image being decoded: %m");
		/* Whole blocks of the card; past the end of the image, zeros. */
		s = (uint64_t)d / w->align * w->align;
		e = MIN(ALIGN_UP((uint64_t)h, w->align), ALIGN_UP(end, w->align));
		for (uint64_t p = MAX(s, off); p < e;) {
			size_t n = (size_t)MIN((uint64_t)PF_STREAM_CHUNK_BYTES, e - p);
			ssize_t got = pread(fd, w->buf, n, (off_t)p);

			if (got < 0)
				return pf_error_set(-errno,
						    "cannot read the image being decoded at byte "
						    "offset %" PRIu64 ": %m",
						    p);
			/* A run of zeros at the end is not in the file yet. */
			memset(w->buf + got, 0, n - (size_t)got);
			r = pf_pwrite_all(card, w->buf, n, p);
			if (r < 0)
				return r;
			r = pf_extents_add(&w->written, p, n);
			if (r < 0)
				return r;
			p += n;
		}
		off = e;
	}
	return 0;
}

/* Zeroes the card's table area (and flushes) before the first byte of image lands. */
static int zero_head(PfColdWriter *w)
{
	int card = pf_target_fd(w->t);
	uint64_t n = MIN(PF_COLD_HOLD_BYTES, ALIGN_UP(w->size_bytes, w->align));
	int r;

	memset(w->buf, 0, PF_STREAM_CHUNK_BYTES);
	r = pf_pwrite_all(card, w->buf, (size_t)n, 0);
	if (r < 0)
		return r;
	if (fdatasync(card) < 0)
		return pf_error_set(-errno, "cannot flush: %m");
	return 0;
}

static void *writer(void *userdata)
{
	PfColdWriter *w = userdata;
	int r = 0;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		uint64_t limit;
		bool last;
		int fd;

		while (!w->stop && !w->finished && w->decoded < w->size_bytes &&
		       (w->src_fd < 0 || w->decoded < w->pos + STEP_BYTES))
			pthread_cond_wait(&w->changed, &w->lock);
		if (w->stop || w->src_fd < 0)
			break;
		last = w->finished || w->decoded >= w->size_bytes;
		/* Below the last report, only whole blocks: the rest of a block is to come. */
		limit = last ? w->decoded : w->decoded / w->align * w->align;
		fd = w->src_fd;
		if (!w->started) {
			pthread_mutex_unlock(&w->lock);
			r = zero_head(w);
			pthread_mutex_lock(&w->lock);
			if (r < 0)
				break;
			w->started = true;
			pthread_cond_broadcast(&w->changed);
		}
		if (limit > w->pos) {
			pthread_mutex_unlock(&w->lock);
			r = copy_data(w, fd, w->pos, limit);
			pthread_mutex_lock(&w->lock);
			if (r < 0)
				break;
			w->pos = limit;
		}
		if (last && w->pos >= w->decoded)
			break;
	}
	if (r < 0 && !w->error) {
		w->error = r;
		snprintf(w->message, sizeof(w->message), "%s", pf_error_message(r));
	}
	w->done = true;
	pthread_cond_broadcast(&w->changed);
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int pf_cold_new(PfTarget *t, uint64_t size_bytes, PfColdWriter **ret)
{
	_cleanup_(pf_cold_freep) PfColdWriter *w = NULL;
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->t = t;
	w->size_bytes = size_bytes;
	w->src_fd = -1;
	/* Data ranges of the cache file come in 4 KiB blocks; a card may want larger. */
	w->align = MAX(pf_target_align(t), (uint64_t)PF_STREAM_ALIGN);
	w->pos = PF_COLD_HOLD_BYTES;
	w->buf = pf_stream_alloc(PF_STREAM_CHUNK_BYTES);
	if (!w->buf)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->changed, NULL);
	r = -pthread_create(&w->thread, NULL, writer, w);
	if (r < 0) {
		pthread_cond_destroy(&w->changed);
		pthread_mutex_destroy(&w->lock);
		free(TAKE_PTR(w->buf));
		free(TAKE_PTR(w));
		return r;
	}
	w->running = true;
	*ret = TAKE_PTR(w);
	return 0;
}

int pf_cold_decoded(PfColdWriter *w, int fd, uint64_t done_bytes)
{
	pthread_mutex_lock(&w->lock);
	if (w->src_fd < 0)
		w->src_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	/* A descriptor that cannot be had: the writer stays idle, the final write does it all. */
	if (w->src_fd >= 0 && done_bytes > w->decoded) {
		w->decoded = MIN(done_bytes, w->size_bytes);
		pthread_cond_broadcast(&w->changed);
	}
	pthread_mutex_unlock(&w->lock);
	return 0;
}

bool pf_cold_started(PfColdWriter *w)
{
	bool started;

	pthread_mutex_lock(&w->lock);
	started = w->started;
	pthread_mutex_unlock(&w->lock);
	return started;
}

int pf_cold_finish(PfColdWriter *w, PfExtents *ret_written)
{
	int r;

	pthread_mutex_lock(&w->lock);
	w->finished = true;
	pthread_cond_broadcast(&w->changed);
	while (!w->done)
		pthread_cond_wait(&w->changed, &w->lock);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	w->running = false;
	if (w->error)
		return pf_error_set(w->error, "%s", w->message);
	r = pf_extents_add_all(ret_written, &w->written, 0);
	if (r < 0)
		return r;
	/* Make the data durable before the table that makes it a valid image is written. */
	if (w->written.n > 0 && fdatasync(pf_target_fd(w->t)) < 0)
		return pf_error_set(-errno, "cannot flush: %m");
	return 0;
}

PfColdWriter *pf_cold_free(PfColdWriter *w)
{
	if (!w)
		return NULL;
	if (w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		pthread_cond_broadcast(&w->changed);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	pthread_cond_destroy(&w->changed);
	pthread_mutex_destroy(&w->lock);
	safe_close(w->src_fd);
	pf_extents_done(&w->written);
	free(w->buf);
	free(w);
	return NULL;
}
