/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys/stat.h"
#include "node/detect-ctx.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- identity baked into the image ---- */

static bool unit_runs_keygen(const char *text)
{
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);

		while (l && (*line == ' ' || *line == '\t'))
			line++, l--;
		if (startswith(line, "ExecStart")) {
			_cleanup_(freep) char *s = strndup(line, l);

			if (s && strstr(s, "ssh-keygen") && strstr(s, " -A"))
				return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}

static int detect_keygen_units(Ctx *c, char **ret_unit, char **ret_link)
{
	_cleanup_(pf_detect_listing_done) Listing ls = { 0 };
	size_t seen = 0;
	int r;

	r = pf_detect_list_dir(c, "/etc/systemd/system", &ls.d, &ls.n);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	for (size_t i = 0; i < ls.n; i++) {
		_cleanup_(pf_detect_listing_done) Listing wl = { 0 };
		PfDirent *w;
		char dir[PF_PATH_MAX];

		if (!endswith(ls.d[i].name, ".wants"))
			continue;
		snprintf(dir, sizeof(dir), "/etc/systemd/system/%s", ls.d[i].name);
		r = pf_detect_list_dir(c, dir, &wl.d, &wl.n);
		if (r == -ENOMEM)
			return r;
		w = wl.d;
		for (size_t k = 0; r >= 0 && k < wl.n && seen < UNITS_MAX; k++, seen++) {
			_cleanup_(freep) char *text = NULL;
			char p[PF_PATH_MAX];

			if (snprintf(p, sizeof(p), "%s/%s", dir, w[k].name) >= (int)sizeof(p))
				continue;
			if (streq(w[k].name, "regenerate_ssh_host_keys.service") &&
			    pf_detect_exists(c, p)) {
				*ret_unit = strdup(w[k].name);
				*ret_link = strdup(p);
				return *ret_unit && *ret_link ? 1 : -ENOMEM;
			}
			r = pf_detect_read_text(c, p, TEXT_MAX, &text, NULL);
			if (r == -ENOMEM)
				return r;
			if (r >= 0 && unit_runs_keygen(text)) {
				*ret_unit = strdup(w[k].name);
				*ret_link = strdup(p);
				return *ret_unit && *ret_link ? 1 : -ENOMEM;
			}
			r = 0;
		}
	}
	return 0;
}

int pf_detect_identity(Ctx *c)
{
	_cleanup_(pf_detect_listing_done) Listing ls = { 0 };
	_cleanup_(freep) char *mid = NULL, *unit = NULL;
	PfFlavorInfo *f = c->f;
	const char *regen;
	PfStat st;
	int r;

	r = pf_detect_read_text(c, "/etc/machine-id", SMALL_MAX, &mid, NULL);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		char *s = mid + strspn(mid, " \t\r\n");

		s[strcspn(s, " \t\r\n")] = 0;
		f->machine_id_baked = s[0] && !streq(s, "uninitialized");
	}
	r = pf_detect_locate(c, "/var/lib/dbus/machine-id", false, NULL, NULL, NULL, &st);
	if (r == -ENOMEM)
		return r;
	f->dbus_machine_id_copy = r >= 0 && S_ISREG(st.mode);

	r = pf_detect_list_dir(c, "/etc/ssh", &ls.d, &ls.n);
	if (r == -ENOMEM)
		return r;
	for (size_t i = 0; r >= 0 && i < ls.n; i++) {
		const char *name = ls.d[i].name;
		char **nk;

		if (!startswith(name, "ssh_host_") ||
		    !(endswith(name, "_key") || endswith(name, "_key.pub")))
			continue;
		nk = realloc(f->host_keys, (f->n_host_keys + 1) * sizeof(char *));
		if (!nk)
			return -ENOMEM;
		f->host_keys = nk;
		if (asprintf(&f->host_keys[f->n_host_keys], "/etc/ssh/%s", name) < 0)
			return -ENOMEM;
		f->n_host_keys++;
	}
	if (f->n_host_keys)
		qsort(f->host_keys, f->n_host_keys, sizeof(char *), pf_strcmp_ptr);

	r = detect_keygen_units(c, &unit, &f->keygen_unit_link);
	if (r < 0)
		return r;
	if (unit)
		f->regenerates_host_keys = true;
	else if (f->has_cloud_init && !f->cloud_init_disabled && f->cloud_init_ssh_module)
		f->regenerates_host_keys = true;

	if (unit && f->has_cloud_init && f->cloud_init_ssh_module)
		regen = " and cloud-init's ssh module";
	else if (!unit)
		regen = f->regenerates_host_keys ? "cloud-init's ssh module" : "nothing";
	else
		regen = "";
	return evidence(c,
			"identity: machine-id %s, D-Bus machine-id %s, %zu SSH host key files, "
			"missing host keys made by %s%s",
			f->machine_id_baked ? "baked" : "empty",
			f->dbus_machine_id_copy ? "a copy" : "a link or absent", f->n_host_keys,
			unit ? unit : "", regen);
}
