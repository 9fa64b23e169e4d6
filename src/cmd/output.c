/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/output.h"
#include "flash/ranges.h"
#include "flash/target.h"
#include "util/error.h"
#include "util/strutil.h"

int output_check(Image *img, const char *target, const OutputOptions *o)
{
	_cleanup_(closep) int in_fd = -1;
	int r;

	in_fd = open(img->path, O_RDONLY | O_CLOEXEC);
	r = pf_target_check_file(target, &(PfTargetCheck){ .input_fd = in_fd,
							    .base_fd = pf_source_fd(img->src) });
	if (r < 0) {
		log_error_errno(r, "'%s'", target);
		return r == -EEXIST ? PF_EXIT_SAFETY : PF_EXIT_FAILURE;
	}
	return PF_EXIT_OK;
}

int output_write(Image *img, const char *target, const OutputOptions *o)
{
	_cleanup_(pf_extents_done) PfExtents ranges = { 0 };
	uint64_t written = 0;
	char a[32], b[32];
	int r;

	r = pf_ranges_image_data(pf_source_fd(img->src), pf_source_size(img->src), img->ov,
				 &ranges);
	if (r >= 0)
		r = pf_target_write_file(target, img->ov, &ranges, &written);
	if (r < 0) {
		log_error_errno(r, "'%s'", target);
		return PF_EXIT_FAILURE;
	}
	log_info("Wrote %s: %s image, %s of data", target,
		 pf_format_bytes(a, sizeof(a), pf_overlay_size(img->ov)),
		 pf_format_bytes(b, sizeof(b), written));
	return PF_EXIT_OK;
}
