/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <unistd.h>

#include "flash/ranges.h"
#include "util/error.h"

int pf_ranges_image_data(int base_fd, uint64_t size_bytes, PfOverlay *ov, PfExtents *ret)
{
	uint64_t pos = 0;
	int r;

	while (pos < size_bytes) {
		off_t data = lseek(base_fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO) /* only a hole from here on */
				break;
			if (errno == EINVAL) {
				/* No SEEK_DATA on this filesystem: everything is data. */
				r = pf_extents_add(ret, pos, size_bytes - pos);
				if (r < 0)
					return r;
				break;
			}
			return pf_error_set(-errno, "cannot map the image's data: %m");
		}
		hole = lseek(base_fd, data, SEEK_HOLE);
		if (hole < 0)
			return pf_error_set(-errno, "cannot map the image's data: %m");
		if ((uint64_t)hole > size_bytes)
			hole = (off_t)size_bytes;
		if (hole <= data)
			break;
		r = pf_extents_add(ret, (uint64_t)data, (uint64_t)(hole - data));
		if (r < 0)
			return r;
		pos = (uint64_t)hole;
	}

	r = pf_extents_add_all(ret, pf_overlay_changed(ov), 0);
	if (r < 0)
		return r;
	pf_extents_normalize(ret);
	return 0;
}
