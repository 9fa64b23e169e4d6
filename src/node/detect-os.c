/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sys/stat.h"
#include "node/detect-ctx.h"
#include "util/error.h"
#include "util/strutil.h"

/* ---- parsers ---- */

/* Removes the quoting of an os-release value (a shell-like assignment) in place. */
static void os_release_unquote(char *v)
{
	char *w = v, q = 0;

	for (char *r = v; *r; r++) {
		if (!q && (*r == '"' || *r == '\'')) {
			q = *r;
			continue;
		}
		if (q && *r == q) {
			q = 0;
			continue;
		}
		if (q == '"' && r[0] == '\\' && r[1] && strchr("\"\\$`", r[1]))
			r++;
		else if (!q && r[0] == '\\' && r[1])
			r++;
		*w++ = *r;
	}
	*w = 0;
}

int pf_os_release_get(const char *text, size_t len, const char *key, char **ret)
{
	size_t klen = strlen(key), pos = 0;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - line) : len - pos;
		char *v;

		pos += l + 1;
		while (l && (*line == ' ' || *line == '\t'))
			line++, l--;
		if (l <= klen || memcmp(line, key, klen) != 0 || line[klen] != '=')
			continue;
		v = strndup(line + klen + 1, l - klen - 1);
		if (!v)
			return -ENOMEM;
		/* Trailing blanks and a CR are not part of the value. */
		for (size_t e = strlen(v); e && strchr(" \t\r", v[e - 1]); e--)
			v[e - 1] = 0;
		os_release_unquote(v);
		*ret = v;
		return 0;
	}
	return -ENOENT;
}

int pf_elf_arch(const uint8_t *d, size_t size, const char **ret_arch)
{
	unsigned machine;
	bool le;

	if (size < 52 || memcmp(d, "\177ELF", 4) != 0)
		return pf_error_set(-EINVAL, "not an ELF file");
	if ((d[4] != 1 && d[4] != 2) || (d[5] != 1 && d[5] != 2))
		return pf_error_set(-EINVAL, "ELF header with bad class or byte order");
	if (d[4] == 2 && size < 64)
		return pf_error_set(-EINVAL, "ELF64 header cut short");
	le = d[5] == 1;
	machine = le ? (unsigned)(d[18] | d[19] << 8) : (unsigned)(d[18] << 8 | d[19]);

	switch (machine) {
	case 40: /* EM_ARM */
		if (d[4] != 1)
			break;
		{
			/* e_flags of ELF32 at offset 36; EF_ARM_ABI_FLOAT_HARD marks armhf. */
			uint32_t flags =
				le ? (uint32_t)d[36] | (uint32_t)d[37] << 8 |
						(uint32_t)d[38] << 16 | (uint32_t)d[39] << 24
				   : (uint32_t)d[39] | (uint32_t)d[38] << 8 |
						(uint32_t)d[37] << 16 | (uint32_t)d[36] << 24;

			*ret_arch = flags & 0x400 ? "armhf" : "armel";
			return 0;
		}
	case 183: /* EM_AARCH64 */
		*ret_arch = d[4] == 2 ? "arm64" : "arm64ilp32";
		return 0;
	case 62: /* EM_X86_64 */
		*ret_arch = d[4] == 2 ? "amd64" : "x32";
		return 0;
	case 3: /* EM_386 */
		*ret_arch = "i386";
		return 0;
	case 243: /* EM_RISCV */
		*ret_arch = d[4] == 2 ? "riscv64" : "riscv32";
		return 0;
	}
	*ret_arch = "unknown";
	return 0;
}

/* ---- steps ---- */

int pf_detect_layout(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	const PfMount *mounts;
	size_t n;
	int r;

	r = pf_tree_mounts(c->tree, &f->root, &mounts, &n);
	if (r < 0)
		return r;
	for (const char *where = "/boot/firmware"; where;
	     where = streq(where, "/boot/firmware") ? "/boot" : NULL)
		for (size_t i = 0; i < n && !f->boot; i++)
			if (streq(mounts[i].where, where) && mounts[i].part->fstype &&
			    streq(mounts[i].part->fstype, "vfat")) {
				f->boot = mounts[i].part;
				f->boot_mount = strdup(where);
				if (!f->boot_mount)
					return -ENOMEM;
			}
	for (size_t i = 0; i < c->t->n_parts && !f->boot; i++)
		if (c->t->parts[i].fstype && streq(c->t->parts[i].fstype, "vfat"))
			f->boot = &c->t->parts[i];

	if (!f->root)
		r = evidence(c, "no root filesystem (no partition with /etc)");
	else
		r = evidence(c, "root: partition %u (%s%s%s)", f->root->number,
			     f->root->fstype ? f->root->fstype : "?", f->root->label ? " " : "",
			     f->root->label ? f->root->label : "");
	if (r >= 0 && f->boot)
		r = evidence(c, "boot: partition %u (vfat%s%s)%s%s", f->boot->number,
			     f->boot->label ? " " : "", f->boot->label ? f->boot->label : "",
			     f->boot_mount ? " at " : ", not in fstab",
			     f->boot_mount ? f->boot_mount : "");
	if (r < 0)
		return r;

	/* cmdline.txt: the first line, on the boot FAT. */
	if (f->boot) {
		_cleanup_(freep) char *text = NULL;
		PfFs *fs;

		if (pf_tree_fs(c->tree, f->boot, &fs) < 0) {
			pf_error_clear();
			return 0;
		}
		r = pf_detect_read_fs_text(c, fs, "/cmdline.txt", "cmdline.txt", SMALL_MAX, &text,
					   NULL);
		if (r == -ENOMEM)
			return r;
		if (r >= 0) {
			text[strcspn(text, "\r\n")] = 0;
			f->cmdline = TAKE_PTR(text);
			f->firstboot_in_cmdline =
				strstr(f->cmdline, "init=/usr/lib/raspberrypi-sys-mods/firstboot");
		}
	}
	return 0;
}

static int os_get(const char *text, size_t len, const char *key, char **ret)
{
	int r = pf_os_release_get(text, len, key, ret);

	/* An empty value says no more than a missing one. */
	if (r >= 0 && !(*ret)[0]) {
		free(*ret);
		*ret = NULL;
	}
	return r == -ENOENT ? 0 : r;
}

int pf_detect_os(Ctx *c)
{
	_cleanup_(freep) char *text = NULL, *issue = NULL, *version = NULL;
	PfFlavorInfo *f = c->f;
	const char *path = "/etc/os-release";
	size_t len = 0;
	int r;

	r = pf_detect_read_text(c, path, TEXT_MAX, &text, &len);
	if (r == -ENOENT) {
		path = "/usr/lib/os-release";
		r = pf_detect_read_text(c, path, TEXT_MAX, &text, &len);
	}
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		c->has_os_release = true;
		if (os_get(text, len, "ID", &f->os_id) < 0 ||
		    os_get(text, len, "VERSION_CODENAME", &f->os_codename) < 0 ||
		    os_get(text, len, "PRETTY_NAME", &f->os_pretty) < 0 ||
		    os_get(text, len, "VERSION_ID", &f->os_version_id) < 0 ||
		    os_get(text, len, "ID_LIKE", &c->os_like) < 0 ||
		    os_get(text, len, "HYPRIOT_OS", &c->hypriot) < 0 ||
		    (!c->hypriot && os_get(text, len, "HYPRIOT_OS_VERSION", &c->hypriot) < 0) ||
		    (!f->os_codename &&
		     os_get(text, len, "UBUNTU_CODENAME", &f->os_codename) < 0) ||
		    (!f->os_codename && os_get(text, len, "VERSION", &version) < 0))
			return -ENOMEM;
		/* Debian 8 and older: VERSION="8 (jessie)". */
		if (!f->os_codename && version) {
			char *o = strchr(version, '('), *e = o ? strchr(o, ')') : NULL;

			if (o && e && e > o + 1) {
				f->os_codename = strndup(o + 1, (size_t)(e - o - 1));
				if (!f->os_codename)
					return -ENOMEM;
			}
		}
		r = evidence(c, "os-release: ID=%s VERSION_CODENAME=%s%s%s",
			     f->os_id ? f->os_id : "", f->os_codename ? f->os_codename : "",
			     c->hypriot ? " HYPRIOT_OS=" : "", c->hypriot ? c->hypriot : "");
	} else
		r = evidence(c, "no os-release (/etc/os-release, /usr/lib/os-release)");
	if (r < 0)
		return r;

	r = pf_detect_read_text(c, "/etc/rpi-issue", SMALL_MAX, &issue, NULL);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		issue[strcspn(issue, "\r\n")] = 0;
		f->rpi_issue = TAKE_PTR(issue);
		r = evidence(c, "rpi-issue: %s", f->rpi_issue);
		if (r < 0)
			return r;
	}
	return 0;
}

int pf_detect_arch(Ctx *c)
{
	static const char *const candidates[] = { "/bin/sh", "/usr/bin/env", "/bin/bash" };
	PfFlavorInfo *f = c->f;

	for (size_t i = 0; i < ELEMENTSOF(candidates); i++) {
		_cleanup_(freep) char *inner = NULL;
		_cleanup_(freep) uint8_t *data = NULL;
		const PfPartition *part;
		const char *arch;
		size_t size;
		PfStat st;
		PfFs *fs;
		int r;

		r = pf_detect_locate(c, candidates[i], true, &part, &fs, &inner, &st);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || !S_ISREG(st.mode))
			continue;
		r = pf_fs_read_file(fs, inner, ELF_FILE_MAX, &data, &size);
		if (r < 0) {
			if (pf_detect_absent(c, r, candidates[i]) == -ENOMEM)
				return -ENOMEM;
			continue;
		}
		if (pf_elf_arch(data, size, &arch) < 0) {
			pf_error_clear();
			continue;
		}
		f->arch = strdup(arch);
		if (!f->arch)
			return -ENOMEM;
		return evidence(c, "arch: %s (ELF header of %s = %u:%s)", arch, candidates[i],
				part->number, inner);
	}
	f->arch = strdup("unknown");
	if (!f->arch)
		return -ENOMEM;
	return evidence(c, "arch: unknown (no ELF /bin/sh, /usr/bin/env or /bin/bash)");
}
