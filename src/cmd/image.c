/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cmd/cmd.h"
#include "cmd/image.h"
#include "cmd/output.h"
#include "disk/fetch.h"

int image_option_sha256(PfSourceOptions *so, const char *cmd, const char *arg)
{
	static char hex[65]; /* one image per command */

	if (pf_sha256_parse(arg, hex) < 0)
		return usage_error(cmd, "--sha256 '%s': expected 64 hexadecimal digits", arg);
	so->sha256 = hex;
	return PF_EXIT_OK;
}

static void download_progress(uint64_t done, uint64_t total, void *userdata)
{
	output_progress_phase("download", done, total == UINT64_MAX ? 0 : total);
}

int image_load(const char *path, const PfSourceOptions *so, PfImage **ret)
{
	PfSourceOptions o = so ? *so : (PfSourceOptions){ 0 };
	int r;

	if (!o.fetch_progress)
		o.fetch_progress = download_progress;
	if (pf_fetch_is_url(path))
		log_info("Downloading '%s'%s", path, o.no_cache ? " (not cached)" : "");
	r = pf_image_open(path, &o, ret);
	output_progress_phase(NULL, 0, 0);
	if (r < 0)
		return log_error_errno(r, "'%s'", path);
	return 0;
}
