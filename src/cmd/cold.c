/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <inttypes.h>
#include <stdlib.h>

#include "cmd/cmd.h"
#include "build/flash.h"
#include "cmd/cold.h"
#include "disk/xz.h"
#include "util/error.h"
#include "util/strutil.h"

struct Cold {
	PfColdRun *run;
	const char *target;
	bool signals;
};

static Cold *cold_free(Cold *c)
{
	if (!c)
		return NULL;
	pf_cold_run_free(c->run);
	if (c->signals)
		pf_signals_restore();
	free(c);
	return NULL;
}

int cold_begin(const char *image, const char *target, const OutputOptions *o, PfSourceOptions *so,
	       Cold **ret)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	Cold *c;
	uint64_t size;
	int r;

	*ret = NULL;
	r = pf_cold_target_open(image, target, so, o->force, &t, &size);
	if (r < 0) {
		log_error_errno(r, "'%s'", target);
		return r == -EPERM ? PF_EXIT_SAFETY : PF_EXIT_FAILURE;
	}
	if (!t)
		return PF_EXIT_OK;
	output_describe(pf_target_info(t));
	r = output_confirm(image, pf_target_info(t), o);
	if (r != PF_EXIT_OK)
		return r;
	c = calloc(1, sizeof(*c));
	if (!c)
		return PF_EXIT_FAILURE;
	c->target = target;
	r = pf_cold_run_start(TAKE_PTR(t), size, so, pf_interrupt_flag(), &c->run);
	if (r < 0) {
		cold_free(c);
		log_error_errno(r, "'%s'", target);
		return PF_EXIT_FAILURE;
	}
	pf_signals_catch();
	c->signals = true;
	log_info("Writing %s while '%s' is decoded (%" PRIu64 " MiB, %u threads)", target, image,
		 size / MIB, pf_xz_threads());
	*ret = c;
	return PF_EXIT_OK;
}

int cold_handover(Cold *c, const char *target, PfTarget **ret)
{
	int r = pf_cold_run_finish(c->run, ret);

	if (r < 0)
		return log_error_errno(r, "'%s'", target), PF_EXIT_FAILURE;
	return PF_EXIT_OK;
}

int cold_end(Cold **cp, int ret)
{
	Cold *c = *cp;
	bool zeroed;

	if (!c)
		return ret;
	*cp = NULL;
	/* The writer stops before anything else is said about the card. */
	zeroed = pf_cold_run_abandon(c->run);
	if (ret != PF_EXIT_OK && pf_interrupted())
		ret = PF_EXIT_INTERRUPTED;
	/* Once handed over, output_write() reports the card's state itself. */
	if (ret != PF_EXIT_OK && zeroed)
		log_error("'%s': its partition table is left zeroed: it holds no valid image",
			  c->target);
	cold_free(c);
	return ret;
}
