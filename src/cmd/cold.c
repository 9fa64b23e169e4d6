/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "build/flash.h"
#include "cmd/cold.h"
#include "disk/xz.h"
#include "flash/cold.h"
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
		pf_signals_restore();
	free(c);
	return NULL;
}

/* The hook of the decoder: every byte below done is in fd. */
static int on_decoded(int fd, uint64_t done, void *userdata)
{
	Cold *c = userdata;

	if (pf_interrupted())
		return pf_error_set(-ECANCELED, "interrupted after %" PRIu64 " bytes of image",
				    done);
	return pf_cold_decoded(c->w, fd, done);
}

int cold_begin(const char *image, const char *target, const OutputOptions *o, PfSourceOptions *so,
	       Cold **ret)
{
	Cold *c;
	uint64_t size;
	int r;

	*ret = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return PF_EXIT_FAILURE;
	c->target = target;
	r = pf_cold_target_open(image, target, so, o->force, &c->t, &size);
	if (r < 0 || !c->t) {
		cold_free(c);
		if (r < 0)
			log_error_errno(r, "'%s'", target);
		return r == -EPERM ? PF_EXIT_SAFETY : r < 0 ? PF_EXIT_FAILURE : PF_EXIT_OK;
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
	pf_signals_catch();
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
	if (ret != PF_EXIT_OK && pf_interrupted())
		ret = PF_EXIT_INTERRUPTED;
	/* Once handed over, output_write() reports the card's state itself. */
	if (ret != PF_EXIT_OK && started && c->t)
		log_error("'%s': its partition table is left zeroed: it holds no valid image",
			  c->target);
	cold_free(c);
	return ret;
}
