/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/cold.h"
#include "disk/xz.h"
#include "flash/cold.h"
#include "flash/stream.h"
#include "util/error.h"
#include "util/strutil.h"

struct Cold {
	PfTarget *t; /* until handed to output_write() */
	PfColdWriter *w;
	const char *target;
	bool signals;
};

static Cold *cold_free(Cold *c)
{
	if (!c)
		return NULL;
	pf_cold_free(c->w);
	pf_target_free(c->t);
	if (c->signals)
		output_signals_restore();
	free(c);
	return NULL;
}

/* The hook of the decoder: every byte below done is in fd. */
static int on_decoded(int fd, uint64_t done, void *userdata)
{
	Cold *c = userdata;

	if (output_interrupted())
		return pf_error_set(-ECANCELED, "interrupted after %" PRIu64 " bytes of image",
				    done);
	return pf_cold_decoded(c->w, fd, done);
}

/* The decoded size of image if it is an .xz whose index says so, else 0. */
static uint64_t xz_size(const char *image)
{
	_cleanup_(closep) int fd = -1;
	uint8_t head[6];
	PfXzInfo info;

	fd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || pread(fd, head, sizeof(head), 0) != (ssize_t)sizeof(head) ||
	    pf_source_detect(head, sizeof(head)) != PF_SOURCE_XZ)
		return 0;
	if (pf_xz_info(fd, &info) < 0 || info.size_bytes > PF_SOURCE_MAX_BYTES)
		return 0;
	return info.size_bytes;
}

int cold_begin(const char *image, const char *target, const OutputOptions *o, PfSourceOptions *so,
	       Cold **ret)
{
	_cleanup_(closep) int in_fd = -1;
	PfTargetOptions to = { .force = o->force, .base_fd = -1 };
	Cold *c;
	struct stat st;
	uint64_t size;
	int r;

	*ret = NULL;
	if (so->no_cache || streq(target, "-") || stat(target, &st) < 0 || !S_ISBLK(st.st_mode))
		return PF_EXIT_OK;
	size = xz_size(image);
	if (size == 0 || pf_source_cached(image, so) != 0)
		return PF_EXIT_OK;

	c = calloc(1, sizeof(*c));
	if (!c)
		return PF_EXIT_FAILURE;
	c->target = target;
	in_fd = open(image, O_RDONLY | O_CLOEXEC);
	to.input_fd = in_fd;
	r = pf_target_open(target, &to, &c->t);
	if (r < 0) {
		cold_free(c);
		log_error_errno(r, "'%s'", target);
		return r == -EPERM ? PF_EXIT_SAFETY : PF_EXIT_FAILURE;
	}
	/* Smaller than the image, a card may still hold what the image uses: the ordinary way
	 * tells, once the image is open. */
	if (ALIGN_UP(size, MAX(pf_target_align(c->t), (uint64_t)PF_STREAM_ALIGN)) >
	    pf_target_info(c->t)->size_bytes) {
		cold_free(c);
		return PF_EXIT_OK;
	}
	output_describe(pf_target_info(c->t));
	r = output_confirm(image, pf_target_info(c->t), o);
	if (r != PF_EXIT_OK) {
		cold_free(c);
		return r;
	}
	r = pf_cold_new(c->t, size, &c->w);
	if (r < 0) {
		cold_free(c);
		log_error_errno(r, "'%s'", target);
		return PF_EXIT_FAILURE;
	}
	output_signals_catch();
	c->signals = true;
	so->decoded = on_decoded;
	so->decoded_data = c;
	log_info("Writing %s while '%s' is decoded (%" PRIu64 " MiB, %u threads)", target, image,
		 size / MIB, pf_xz_threads());
	*ret = c;
	return PF_EXIT_OK;
}

int cold_handover(Cold *c, const char *target)
{
	_cleanup_(pf_extents_done) PfExtents written = { 0 };
	int r;

	r = pf_cold_finish(c->w, &written);
	if (r >= 0)
		r = pf_target_set_written(c->t, &written);
	if (r < 0)
		return log_error_errno(r, "'%s'", target), PF_EXIT_FAILURE;
	output_adopt(TAKE_PTR(c->t), target);
	return PF_EXIT_OK;
}

int cold_end(Cold **cp, int ret)
{
	Cold *c = *cp;
	bool started;

	if (!c)
		return ret;
	*cp = NULL;
	/* The writer stops before anything else is said about the card. */
	started = pf_cold_started(c->w);
	c->w = pf_cold_free(c->w);
	if (ret != PF_EXIT_OK && output_interrupted())
		ret = PF_EXIT_INTERRUPTED;
	/* Once handed over, output_write() reports the card's state itself. */
	if (ret != PF_EXIT_OK && started && c->t)
		log_error("'%s': its partition table is left zeroed: it holds no valid image",
			  c->target);
	cold_free(c);
	return ret;
}
