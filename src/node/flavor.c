/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "node/config.h"
#include "node/flavor.h"
#include "node/mechanism.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/strutil.h"

/* Bounds of what detection reads (bytes). */
#define SMALL_MAX (4u * 1024u)	      /* machine-id, rpi-issue, cmdline.txt */
#define TEXT_MAX (64u * 1024u)	      /* os-release, version.py, units, seed files */
#define CLOUD_CFG_MAX (1024u * 1024u) /* each cloud.cfg file */
#define ELF_FILE_MAX (16u * 1024u * 1024u)
#define CLOUD_CFG_D_MAX_FILES 128u
#define DIR_MAX_ENTRIES 1024u
#define UNITS_MAX 512u

static const char *const flavor_names[_PF_FLAVOR_MAX] = {
	[PF_FLAVOR_UNKNOWN] = "unknown",
	[PF_FLAVOR_HYPRIOT] = "hypriot",
	[PF_FLAVOR_UBUNTU] = "ubuntu",
	[PF_FLAVOR_RPIOS_TRIXIE] = "rpios-trixie",
	[PF_FLAVOR_RPIOS_BOOKWORM] = "rpios-bookworm",
	[PF_FLAVOR_RASPBIAN] = "raspbian",
	[PF_FLAVOR_DEBIAN] = "debian",
};

static const char *const net_names[_PF_NET_MAX] = {
	[PF_NET_NONE] = "none",
	[PF_NET_CLOUD_INIT] = "cloud-init",
	[PF_NET_NETWORKMANAGER] = "networkmanager",
	[PF_NET_DHCPCD] = "dhcpcd",
	[PF_NET_NETWORKD] = "networkd",
	[PF_NET_IFUPDOWN] = "ifupdown",
	[PF_NET_NETPLAN] = "netplan",
};

const char *pf_flavor_name(PfFlavor f)
{
	return f >= 0 && f < _PF_FLAVOR_MAX ? flavor_names[f] : "unknown";
}

const char *pf_net_stack_name(PfNetStack n)
{
	return n >= 0 && n < _PF_NET_MAX ? net_names[n] : "none";
}

int pf_net_stack_from_name(const char *s, PfNetStack *ret)
{
	for (int n = PF_NET_NONE + 1; s && n < _PF_NET_MAX; n++)
		if (strcasecmp(s, net_names[n]) == 0) {
			*ret = (PfNetStack)n;
			return 0;
		}
	if (s && strcasecmp(s, "nm") == 0) {
		*ret = PF_NET_NETWORKMANAGER;
		return 0;
	}
	return pf_error_set(-EINVAL,
			    "unknown network service '%s' (known: cloud-init, netplan, ifupdown, "
			    "networkmanager, networkd, dhcpcd)",
			    s ? s : "");
}

int pf_flavor_from_name(const char *s, PfFlavor *ret)
{
	static const struct {
		const char *alias;
		PfFlavor f;
	} aliases[] = {
		{ "hypriotos", PF_FLAVOR_HYPRIOT },
		{ "raspbian-buster", PF_FLAVOR_RASPBIAN },
		{ "raspbian-bullseye", PF_FLAVOR_RASPBIAN },
		{ "plain", PF_FLAVOR_DEBIAN },
	};

	for (int f = PF_FLAVOR_UNKNOWN + 1; s && f < _PF_FLAVOR_MAX; f++)
		if (strcasecmp(s, flavor_names[f]) == 0) {
			*ret = (PfFlavor)f;
			return 0;
		}
	for (size_t i = 0; s && i < ELEMENTSOF(aliases); i++)
		if (strcasecmp(s, aliases[i].alias) == 0) {
			*ret = aliases[i].f;
			return 0;
		}
	return pf_error_set(-EINVAL,
			    "unknown flavor '%s' (known: hypriot, ubuntu, rpios-trixie, "
			    "rpios-bookworm, raspbian, debian)",
			    s ? s : "");
}

static void strv_free(char **v)
{
	pf_strv_free(v);
}

static void strv_freep(char ***v)
{
	pf_strv_free(*v);
}

/* A directory listing that frees itself. */
typedef struct Listing {
	PfDirent *d;
	size_t n;
} Listing;

static void listing_done(Listing *l)
{
	pf_dirents_free(l->d, l->n);
}

static int strv_push(char ***v, size_t *n, const char *s)
{
	char **nv = realloc(*v, (*n + 2) * sizeof(char *));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	nv[++*n] = NULL;
	return 0;
}

static size_t strv_len(char *const *v)
{
	size_t n = 0;

	while (v && v[n])
		n++;
	return n;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void cloud_user_done(PfCloudUser *u)
{
	free(u->name);
	free(u->gecos);
	free(u->groups);
	free(u->shell);
	free(u->sudo);
	free(u->from);
	*u = (PfCloudUser){ 0 };
}

PfFlavorInfo *pf_flavor_info_free(PfFlavorInfo *f)
{
	if (!f)
		return NULL;
	for (size_t i = 0; i < f->n_evidence; i++)
		free(f->evidence[i]);
	free(f->evidence);
	free(f->os_id);
	free(f->os_codename);
	free(f->os_pretty);
	free(f->os_version_id);
	free(f->rpi_issue);
	free(f->cloud_init_version);
	free(f->nocloud_fs_label);
	free(f->nocloud_seedfrom);
	strv_free(f->datasource_list);
	strv_free(f->cloud_users);
	free(f->cloud_default_user);
	free(f->arch);
	free(f->boot_mount);
	free(f->cmdline);
	free(f->seed_dir);
	free(f->seed_how);
	free(f->seed_instance_id);
	free(f->default_user);
	free(f->first_user);
	pf_passwd_entries_free(f->users, f->n_users);
	for (size_t i = 0; i < f->n_host_keys; i++)
		free(f->host_keys[i]);
	free(f->host_keys);
	free(f->keygen_unit_link);
	for (size_t i = 0; i < f->n_units; i++)
		pf_unit_done(&f->units[i]);
	free(f->units);
	strv_free(f->cloud_init_renderers);
	free(f->cloud_init_renderer);
	cloud_user_done(&f->cloud_user);
	free(f->seed_user_data);
	free(f->seed_meta_data);
	free(f->netplan_file);
	free(f->netplan_renderer);
	free(f->ifupdown_file);
	free(f->ssh_unit);
	free(f->ssh_switch_unit);
	free(f->ssh_switch_path);
	free(f->ssh_switch_condition);
	free(f->net_why);
	free(f->ssh_why);
	free(f->user_why);
	free(f);
	return NULL;
}

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

int pf_cloud_init_version_parse(const char *text, size_t len, char **ret_version, int *ret_major,
				int *ret_minor)
{
	size_t pos = 0;

	while (pos < len) {
		const char *line = text + pos, *nl = memchr(line, '\n', len - pos), *p, *e;
		size_t l = nl ? (size_t)(nl - line) : len - pos;
		char q, *v;
		int major = -1, minor = -1;

		pos += l + 1;
		if (l < 13 || memcmp(line, "__VERSION__", 11) != 0)
			continue;
		p = line + 11;
		while (p < line + l && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= line + l || *p++ != '=')
			continue;
		while (p < line + l && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= line + l || (*p != '"' && *p != '\''))
			continue;
		q = *p++;
		e = memchr(p, q, (size_t)(line + l - p));
		if (!e || e == p || (size_t)(e - p) > 64)
			continue;
		v = strndup(p, (size_t)(e - p));
		if (!v)
			return -ENOMEM;
		if (sscanf(v, "%d.%d", &major, &minor) < 1)
			major = minor = -1;
		*ret_version = v;
		*ret_major = major;
		*ret_minor = minor < 0 && major >= 0 ? 0 : minor;
		return 0;
	}
	return -ENOENT;
}

/* ---- reading the image ---- */

typedef struct CloudCfg {
	bool users_set;
	bool modules_set[3], modules_ssh[3];
	PfCloudUser default_user; /* system_info.default_user */
	PfCloudUser list_user;	  /* the first named entry of users: */
	PfCloudUser seed_user;	  /* the first named entry of the seed's users: */
} CloudCfg;

typedef struct Ctx {
	PfTree *tree;
	const PfPtable *t;
	PfFlavorInfo *f;
	char *os_like, *hypriot;
	bool has_os_release;
	char **shells; /* NULL without /etc/shells */
	PfPasswd *pw;
	char *shadow;
	size_t shadow_len;
	CloudCfg cc;
	const char *cur_file; /* the cloud.cfg file being applied */
} Ctx;

int pf_flavor_add_evidence(PfFlavorInfo *f, const char *fmt, ...)
{
	char **n, *s;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	n = realloc(f->evidence, (f->n_evidence + 1) * sizeof(char *));
	if (!n) {
		free(s);
		return -ENOMEM;
	}
	f->evidence = n;
	f->evidence[f->n_evidence++] = s;
	return 0;
}

#define evidence(c, ...) pf_flavor_add_evidence((c)->f, __VA_ARGS__)

/* Errors of a lookup that mean "not there" for detection; the rest is noted and ignored. */
static int absent(Ctx *c, int r, const char *path)
{
	if (r == -ENOMEM)
		return r;
	if (r != -ENOENT && r != -ENOTDIR &&
	    evidence(c, "%s: %s, ignoring", path, pf_error_message(r)) < 0)
		return -ENOMEM;
	pf_error_clear();
	return -ENOENT;
}

/* Where path of the booted system is (links followed, the last if follow): 0 or -ENOENT. */
static int locate(Ctx *c, const char *path, bool follow, const PfPartition **ret_part,
		  PfFs **ret_fs, char **ret_inner, PfStat *ret_st)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part;
	PfStat st;
	PfFs *fs;
	int r;

	r = pf_tree_resolve(c->tree, NULL, path, follow, &part, &inner);
	if (r >= 0)
		r = pf_tree_fs(c->tree, part, &fs);
	if (r >= 0)
		r = pf_fs_stat(fs, inner, &st);
	if (r < 0)
		return absent(c, r, path);
	if (ret_part)
		*ret_part = part;
	if (ret_fs)
		*ret_fs = fs;
	if (ret_st)
		*ret_st = st;
	if (ret_inner)
		*ret_inner = TAKE_PTR(inner);
	return 0;
}

static bool exists(Ctx *c, const char *path)
{
	return locate(c, path, true, NULL, NULL, NULL, NULL) >= 0;
}

static bool is_file(Ctx *c, const char *path)
{
	PfStat st;

	return locate(c, path, true, NULL, NULL, NULL, &st) >= 0 && S_ISREG(st.mode);
}

static bool is_dir(Ctx *c, const char *path)
{
	PfStat st;

	return locate(c, path, true, NULL, NULL, NULL, &st) >= 0 && S_ISDIR(st.mode);
}

/* Reads inner on fs into a NUL-terminated buffer: 0, -ENOENT or -ENOMEM. */
static int read_fs_text(Ctx *c, PfFs *fs, const char *inner, const char *what, size_t max,
			char **ret, size_t *ret_len)
{
	_cleanup_(freep) uint8_t *data = NULL;
	size_t size;
	char *text;
	int r;

	r = pf_fs_read_file(fs, inner, max, &data, &size);
	if (r < 0)
		return absent(c, r, what);
	text = malloc(size + 1);
	if (!text)
		return -ENOMEM;
	if (size)
		memcpy(text, data, size);
	text[size] = 0;
	*ret = text;
	if (ret_len)
		*ret_len = size;
	return 0;
}

/* Reads a regular file of the booted system: 0, -ENOENT (also: not a regular file), -ENOMEM. */
static int read_text(Ctx *c, const char *path, size_t max, char **ret, size_t *ret_len)
{
	_cleanup_(freep) char *inner = NULL;
	PfStat st;
	PfFs *fs;
	int r;

	r = locate(c, path, true, NULL, &fs, &inner, &st);
	if (r < 0)
		return r;
	if (!S_ISREG(st.mode))
		return -ENOENT;
	return read_fs_text(c, fs, inner, path, max, ret, ret_len);
}

/* Lists a directory of the booted system (links followed): 0 or -ENOENT/-ENOMEM. */
static int list_dir(Ctx *c, const char *path, PfDirent **ret, size_t *ret_n)
{
	_cleanup_(freep) char *inner = NULL;
	PfStat st;
	PfFs *fs;
	int r;

	r = locate(c, path, true, NULL, &fs, &inner, &st);
	if (r < 0)
		return r;
	if (!S_ISDIR(st.mode))
		return -ENOENT;
	r = pf_fs_list(fs, inner, ret, ret_n);
	if (r < 0)
		return absent(c, r, path);
	if (*ret_n > DIR_MAX_ENTRIES) {
		r = evidence(c, "%s: %zu entries, only the first %u looked at", path, *ret_n,
			     DIR_MAX_ENTRIES);
		for (size_t i = DIR_MAX_ENTRIES; i < *ret_n; i++)
			free((*ret)[i].name);
		*ret_n = DIR_MAX_ENTRIES;
		if (r < 0)
			return r;
	}
	return 0;
}

/* Names of a directory listing, sorted (a NULL-terminated strv, maybe empty). */
static int sorted_names(PfDirent *d, size_t n, char ***ret)
{
	char **v = calloc(n + 1, sizeof(char *));

	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = strdup(d[i].name);
		if (!v[i]) {
			strv_free(v);
			return -ENOMEM;
		}
	}
	qsort(v, n, sizeof(char *), cmp_str);
	*ret = v;
	return 0;
}

/* "2:/dir" for a location. */
static int format_location(const PfPartition *p, const char *dir, char **ret)
{
	return asprintf(ret, "%u:%s", p->number, dir) < 0 ? -ENOMEM : 0;
}

/* The directory part of an absolute path, "/" for a top-level name. */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash || slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* ---- steps ---- */

static int detect_layout(Ctx *c)
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
		r = read_fs_text(c, fs, "/cmdline.txt", "cmdline.txt", SMALL_MAX, &text, NULL);
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

static int detect_os(Ctx *c)
{
	_cleanup_(freep) char *text = NULL, *issue = NULL, *version = NULL;
	PfFlavorInfo *f = c->f;
	const char *path = "/etc/os-release";
	size_t len = 0;
	int r;

	r = read_text(c, path, TEXT_MAX, &text, &len);
	if (r == -ENOENT) {
		path = "/usr/lib/os-release";
		r = read_text(c, path, TEXT_MAX, &text, &len);
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

	r = read_text(c, "/etc/rpi-issue", SMALL_MAX, &issue, NULL);
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

static int detect_arch(Ctx *c)
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

		r = locate(c, candidates[i], true, &part, &fs, &inner, &st);
		if (r == -ENOMEM)
			return r;
		if (r < 0 || !S_ISREG(st.mode))
			continue;
		r = pf_fs_read_file(fs, inner, ELF_FILE_MAX, &data, &size);
		if (r < 0) {
			if (absent(c, r, candidates[i]) == -ENOMEM)
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

static int detect_cloud_init_version(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	_cleanup_(listing_done) Listing ls = { 0 };
	char **paths = NULL;
	size_t n_paths = 0;
	int r;

	/* Debian's path first, then /usr/lib/python3.X/{dist,site}-packages. */
	r = strv_push(&paths, &n_paths, "/usr/lib/python3/dist-packages/cloudinit/version.py");
	if (r < 0)
		goto out;
	r = list_dir(c, "/usr/lib", &ls.d, &ls.n);
	if (r == -ENOMEM)
		goto out;
	if (r >= 0) {
		_cleanup_(strv_freep) char **names = NULL;

		r = sorted_names(ls.d, ls.n, &names);
		if (r < 0)
			goto out;
		for (size_t i = 0; names[i] && n_paths < 64; i++) {
			char p[PF_PATH_MAX];

			if (!startswith(names[i], "python3") || streq(names[i], "python3"))
				continue;
			snprintf(p, sizeof(p), "/usr/lib/%s/dist-packages/cloudinit/version.py",
				 names[i]);
			r = strv_push(&paths, &n_paths, p);
			if (r >= 0) {
				snprintf(p, sizeof(p),
					 "/usr/lib/%s/site-packages/cloudinit/version.py",
					 names[i]);
				r = strv_push(&paths, &n_paths, p);
			}
			if (r < 0)
				goto out;
		}
	}
	r = 0;
	for (size_t i = 0; i < n_paths; i++) {
		_cleanup_(freep) char *text = NULL;
		size_t len;

		r = read_text(c, paths[i], TEXT_MAX, &text, &len);
		if (r == -ENOMEM)
			goto out;
		if (r < 0)
			continue;
		f->has_cloud_init = true;
		r = pf_cloud_init_version_parse(text, len, &f->cloud_init_version,
						&f->cloud_init_major, &f->cloud_init_minor);
		if (r == -ENOMEM)
			goto out;
		if (r >= 0) {
			r = evidence(c, "cloud-init %s (%s)", f->cloud_init_version, paths[i]);
			goto out;
		}
	}
	r = 0;
	if (!f->has_cloud_init &&
	    (is_file(c, "/usr/bin/cloud-init") || is_file(c, "/etc/cloud/cloud.cfg")))
		f->has_cloud_init = true;
	if (f->has_cloud_init)
		r = evidence(c, "cloud-init, version unknown (no cloudinit/version.py)");
out:
	strv_free(paths);
	return r;
}

/* ---- cloud-init configuration (libyaml document API: aliases are never expanded) ---- */

#define yscalar pf_yaml_scalar
#define ymap_get pf_yaml_map_get
#define ybool pf_yaml_bool
#define yaml_load pf_yaml_load

static int set_str(char **dst, const char *s)
{
	char *n = strdup(s);

	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

/* A `users:` entry: "default", a name, {name: ...}; strings may list several, comma-separated. */
static int cloud_user_string(PfFlavorInfo *f, const char *s, size_t *n)
{
	_cleanup_(freep) char *copy = strdup(s);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, ", \t", &save); w; w = strtok_r(NULL, ", \t", &save)) {
		if (streq(w, "default"))
			f->cloud_users_default = true;
		else if (pf_username_validate(w) < 0)
			pf_error_clear(); /* not a name the node's rules accept: not used */
		else if (strv_push(&f->cloud_users, n, w) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* A user's attributes from a users: entry or system_info.default_user; name may be NULL (then
 * the entry's own name: key). Later configuration files replace earlier ones whole. */
static int cloud_user_read(yaml_document_t *doc, yaml_node_t *map, const char *name,
			   const char *from, PfCloudUser *ret)
{
	PfCloudUser u = { 0 };
	int r = 0;

	if (!map || map->type != YAML_MAPPING_NODE)
		return 0;
	if (!name)
		name = yscalar(ymap_get(doc, map, "name"));
	if (!name)
		return 0;
	/* A name from the image reaches inventory.ini, known_hosts and terminals: it must be one
	 * the node's own rules accept, or it is no user piflash will use. */
	if (pf_username_validate(name) < 0) {
		pf_error_clear();
		return 0;
	}
	u.name = strdup(name);
	u.from = strdup(from);
	if (!u.name || !u.from)
		r = -ENOMEM;
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "gecos"), ",", true, &u.gecos);
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "groups"), ",", false, &u.groups);
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "shell"), ",", true, &u.shell);
	/* sudo: a string, or a list whose first rule is kept (cloud-init 22.4 wants a string). */
	if (r >= 0)
		r = pf_yaml_join(doc, ymap_get(doc, map, "sudo"), ",", true, &u.sudo);
	if (r < 0) {
		free(u.name), free(u.from), free(u.gecos), free(u.groups), free(u.shell),
			free(u.sudo);
		return -ENOMEM;
	}
	free(ret->name), free(ret->from), free(ret->gecos), free(ret->groups), free(ret->shell),
		free(ret->sudo);
	*ret = u;
	return 0;
}

/* The first named entry of a users: list (the user a node's keys go to). */
static int first_list_user(yaml_document_t *doc, yaml_node_t *users, const char *from,
			   PfCloudUser *ret)
{
	if (!users || users->type != YAML_SEQUENCE_NODE)
		return 0;
	for (yaml_node_item_t *i = users->data.sequence.items.start;
	     i < users->data.sequence.items.top; i++) {
		yaml_node_t *u = yaml_document_get_node(doc, *i);
		const char *name = yscalar(ymap_get(doc, u, "name"));

		if (name && !streq(name, "default"))
			return cloud_user_read(doc, u, NULL, from, ret);
	}
	return 0;
}

static int cloud_users(Ctx *c, yaml_document_t *doc, yaml_node_t *users)
{
	PfFlavorInfo *f = c->f;
	size_t n = 0;

	c->cc.users_set = true;
	strv_free(f->cloud_users);
	f->cloud_users = NULL;
	f->cloud_users_default = false;
	if (yscalar(users))
		return cloud_user_string(f, yscalar(users), &n);
	if (users->type == YAML_MAPPING_NODE) {
		/* The old form: {name: {options}}. */
		for (yaml_node_pair_t *p = users->data.mapping.pairs.start;
		     p < users->data.mapping.pairs.top; p++) {
			const char *k = yscalar(yaml_document_get_node(doc, p->key));

			if (k && cloud_user_string(f, k, &n) < 0)
				return -ENOMEM;
		}
		return 0;
	}
	if (users->type != YAML_SEQUENCE_NODE)
		return 0;
	for (yaml_node_item_t *i = users->data.sequence.items.start;
	     i < users->data.sequence.items.top; i++) {
		yaml_node_t *u = yaml_document_get_node(doc, *i);
		const char *name;

		if (!u)
			continue;
		if (yscalar(u)) {
			if (cloud_user_string(f, yscalar(u), &n) < 0)
				return -ENOMEM;
			continue;
		}
		name = yscalar(ymap_get(doc, u, "name"));
		if (name && streq(name, "default"))
			f->cloud_users_default = true;
		else if (name && pf_username_validate(name) < 0)
			pf_error_clear();
		else if (name && strv_push(&f->cloud_users, &n, name) < 0)
			return -ENOMEM;
	}
	return first_list_user(doc, users, c->cur_file, &c->cc.list_user);
}

static bool is_ssh_module(const char *s)
{
	return s && (streq(s, "ssh") || streq(s, "cc_ssh"));
}

static void cloud_modules(Ctx *c, yaml_document_t *doc, yaml_node_t *list, size_t stage)
{
	c->cc.modules_set[stage] = true;
	c->cc.modules_ssh[stage] = false;
	if (!list || list->type != YAML_SEQUENCE_NODE)
		return;
	for (yaml_node_item_t *i = list->data.sequence.items.start;
	     i < list->data.sequence.items.top; i++) {
		yaml_node_t *m = yaml_document_get_node(doc, *i);

		/* "ssh" or [ssh, frequency]. */
		if (m && m->type == YAML_SEQUENCE_NODE &&
		    m->data.sequence.items.start < m->data.sequence.items.top)
			m = yaml_document_get_node(doc, *m->data.sequence.items.start);
		if (is_ssh_module(yscalar(m)))
			c->cc.modules_ssh[stage] = true;
	}
}

/* Applies one configuration file, merged as cloud-init merges /etc/cloud: later files win,
 * dictionaries merge key by key, lists are replaced. */
static int cloud_apply(Ctx *c, yaml_document_t *doc)
{
	static const char *const stages[3] = { "cloud_init_modules", "cloud_config_modules",
					       "cloud_final_modules" };
	PfFlavorInfo *f = c->f;
	yaml_node_t *root = yaml_document_get_root_node(doc), *n, *nc;
	int r;

	if (!root || root->type != YAML_MAPPING_NODE)
		return 0;
	n = ymap_get(doc, root, "users");
	if (n && (r = cloud_users(c, doc, n)) < 0)
		return r;
	nc = ymap_get(doc, ymap_get(doc, root, "system_info"), "default_user");
	n = ymap_get(doc, nc, "name");
	if (yscalar(n) && pf_username_validate(yscalar(n)) < 0) {
		pf_error_clear();
		r = evidence(c,
			     "%s: system_info.default_user.name is not a valid user name, "
			     "ignoring",
			     c->cur_file);
		if (r < 0)
			return r;
		n = NULL;
	}
	if (yscalar(n) && (r = set_str(&f->cloud_default_user, yscalar(n))) < 0)
		return r;
	if (yscalar(n)) {
		char from[PF_PATH_MAX + 32];

		snprintf(from, sizeof(from), "%s (system_info.default_user)", c->cur_file);
		r = cloud_user_read(doc, nc, yscalar(n), from, &c->cc.default_user);
		if (r < 0)
			return r;
	}
	n = ymap_get(doc, ymap_get(doc, ymap_get(doc, root, "system_info"), "network"),
		     "renderers");
	if (n && n->type == YAML_SEQUENCE_NODE) {
		size_t k = 0;

		strv_free(f->cloud_init_renderers);
		f->cloud_init_renderers = calloc(1, sizeof(char *));
		if (!f->cloud_init_renderers)
			return -ENOMEM;
		for (yaml_node_item_t *i = n->data.sequence.items.start;
		     i < n->data.sequence.items.top; i++) {
			const char *s = yscalar(yaml_document_get_node(doc, *i));

			if (s && strv_push(&f->cloud_init_renderers, &k, s) < 0)
				return -ENOMEM;
		}
	}
	n = ymap_get(doc, root, "datasource_list");
	if (n) {
		size_t k = 0;

		strv_free(f->datasource_list);
		f->datasource_list = calloc(1, sizeof(char *));
		if (!f->datasource_list)
			return -ENOMEM;
		if (yscalar(n) && strv_push(&f->datasource_list, &k, yscalar(n)) < 0)
			return -ENOMEM;
		for (yaml_node_item_t *i =
			     n->type == YAML_SEQUENCE_NODE ? n->data.sequence.items.start : NULL;
		     i && i < n->data.sequence.items.top; i++) {
			const char *s = yscalar(yaml_document_get_node(doc, *i));

			if (s && strv_push(&f->datasource_list, &k, s) < 0)
				return -ENOMEM;
		}
	}
	nc = ymap_get(doc, ymap_get(doc, root, "datasource"), "NoCloud");
	n = ymap_get(doc, nc, "fs_label");
	if (yscalar(n) && (r = set_str(&f->nocloud_fs_label, yscalar(n))) < 0)
		return r;
	n = ymap_get(doc, nc, "seedfrom");
	if (yscalar(n) && (r = set_str(&f->nocloud_seedfrom, yscalar(n))) < 0)
		return r;
	n = ymap_get(doc, root, "ssh_deletekeys");
	if (n && ybool(n) >= 0)
		f->ssh_deletekeys = ybool(n);
	for (size_t s = 0; s < 3; s++) {
		n = ymap_get(doc, root, stages[s]);
		if (n)
			cloud_modules(c, doc, n, s);
	}
	n = ymap_get(doc, ymap_get(doc, root, "network"), "config");
	if (yscalar(n))
		f->cloud_init_network_disabled = streq(yscalar(n), "disabled");
	return 0;
}

static int cloud_cfg_file(Ctx *c, const char *path)
{
	_cleanup_(freep) char *text = NULL;
	yaml_document_t doc;
	size_t len;
	int r;

	r = read_text(c, path, CLOUD_CFG_MAX, &text, &len);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	r = yaml_load(text, len, &doc);
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		/* cloud-init skips such a file too (with a warning). */
		r = evidence(c, "%s: %s, ignoring", path, pf_error_message(r));
		pf_error_clear();
		return r;
	}
	c->cur_file = path;
	r = cloud_apply(c, &doc);
	c->cur_file = NULL;
	yaml_document_delete(&doc);
	return r;
}

static int detect_cloud_cfg(Ctx *c)
{
	_cleanup_(listing_done) Listing ls = { 0 };
	_cleanup_(strv_freep) char **names = NULL;
	PfFlavorInfo *f = c->f;
	size_t used = 0;
	int r;

	f->cloud_init_disabled = exists(c, "/etc/cloud/cloud-init.disabled");
	r = cloud_cfg_file(c, "/etc/cloud/cloud.cfg");
	if (r < 0)
		return r;
	r = list_dir(c, "/etc/cloud/cloud.cfg.d", &ls.d, &ls.n);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		r = sorted_names(ls.d, ls.n, &names);
		if (r < 0)
			return r;
		for (size_t i = 0; names[i]; i++) {
			char p[PF_PATH_MAX];

			if (!endswith(names[i], ".cfg"))
				continue;
			if (++used > CLOUD_CFG_D_MAX_FILES) {
				r = evidence(c,
					     "/etc/cloud/cloud.cfg.d: only the first %u files read",
					     CLOUD_CFG_D_MAX_FILES);
				if (r < 0)
					return r;
				break;
			}
			snprintf(p, sizeof(p), "/etc/cloud/cloud.cfg.d/%s", names[i]);
			r = cloud_cfg_file(c, p);
			if (r < 0)
				return r;
		}
	}
	f->cloud_init_ssh_module =
		c->cc.modules_ssh[0] || c->cc.modules_ssh[1] || c->cc.modules_ssh[2];
	if (!c->cc.users_set)
		f->cloud_users_default = true; /* cloud-init's own default: [default] */
	if (!f->cloud_users) {
		f->cloud_users = calloc(1, sizeof(char *));
		if (!f->cloud_users)
			return -ENOMEM;
	}

	{
		_cleanup_(freep) char *users = NULL, *ds = NULL;
		size_t nu = strv_len(f->cloud_users), nd = strv_len(f->datasource_list);
		FILE *m;
		size_t sz;

		m = open_memstream(&users, &sz);
		if (!m)
			return -ENOMEM;
		fputs(f->cloud_users_default ? "default" : "", m);
		for (size_t i = 0; i < nu; i++)
			fprintf(m, "%s%s", f->cloud_users_default || i ? ", " : "",
				f->cloud_users[i]);
		if (fclose(m) != 0)
			return -ENOMEM;
		m = open_memstream(&ds, &sz);
		if (!m)
			return -ENOMEM;
		for (size_t i = 0; i < nd; i++)
			fprintf(m, "%s%s", i ? ", " : "", f->datasource_list[i]);
		if (fclose(m) != 0)
			return -ENOMEM;
		r = evidence(c,
			     "cloud-init config: users [%s]%s%s%s, datasource_list %s%s%s%s%s, "
			     "ssh module %s, ssh_deletekeys %s%s",
			     users, f->cloud_default_user ? " (default_user " : "",
			     f->cloud_default_user ? f->cloud_default_user : "",
			     f->cloud_default_user ? ")" : "", f->datasource_list ? "[" : "",
			     f->datasource_list ? ds : "not set", f->datasource_list ? "]" : "",
			     f->nocloud_fs_label ? ", NoCloud fs_label " : "",
			     f->nocloud_fs_label ? f->nocloud_fs_label : "",
			     f->cloud_init_ssh_module ? "yes" : "no",
			     f->ssh_deletekeys < 0 ? "unset"
			     : f->ssh_deletekeys   ? "true"
						   : "false",
			     f->cloud_init_disabled ? "; disabled by /etc/cloud/cloud-init.disabled"
						    : "");
	}
	return r;
}

/* ---- seed ---- */

/* ds=nocloud;s=file:///path/ (or seedfrom=) on the kernel command line. */
static int cmdline_seedfrom(const char *cmdline, char **ret)
{
	_cleanup_(freep) char *copy = strdup(cmdline);
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		char *s2 = NULL;

		if (!startswith(w, "ds=nocloud"))
			continue;
		for (char *kv = strtok_r(w, ";", &s2); kv; kv = strtok_r(NULL, ";", &s2)) {
			const char *v = startswith(kv, "s=") ?: startswith(kv, "seedfrom=");

			if (v) {
				*ret = strdup(v);
				return *ret ? 1 : -ENOMEM;
			}
		}
	}
	return 0;
}

/* A seed directory "N:/dir" from a file:// or absolute seedfrom. */
static int seed_from_path(Ctx *c, const char *seedfrom, char **ret)
{
	_cleanup_(freep) char *path = NULL, *inner = NULL;
	const char *p = startswith(seedfrom, "file://") ?: seedfrom;
	const PfPartition *part;
	size_t l;
	int r;

	if (p[0] != '/' || !c->f->root)
		return -ENOENT;
	path = strdup(p);
	if (!path)
		return -ENOMEM;
	l = strlen(path);
	while (l > 1 && path[l - 1] == '/')
		path[--l] = 0;
	if (pf_path_validate(path) < 0) {
		pf_error_clear();
		return -ENOENT;
	}
	r = pf_tree_resolve(c->tree, NULL, path, true, &part, &inner);
	if (r < 0)
		return absent(c, r, path);
	return format_location(part, inner, ret);
}

/* datasource_list unset (every datasource) or naming NoCloud. */
static bool nocloud_listed(const PfFlavorInfo *f)
{
	if (!f->datasource_list)
		return true;
	for (size_t i = 0; f->datasource_list[i]; i++)
		if (strcasecmp(f->datasource_list[i], "NoCloud") == 0)
			return true;
	return false;
}

static int detect_seed(Ctx *c)
{
	static const char *const seed_dirs[] = { "/var/lib/cloud/seed/nocloud-net",
						 "/var/lib/cloud/seed/nocloud" };
	PfFlavorInfo *f = c->f;
	_cleanup_(freep) char *cmd_seed = NULL;
	const char *label;
	int r;

	if (!f->has_cloud_init || !f->root)
		return 0;

	/* 1. The seed directories of the root (HypriotOS: links to the FAT). */
	for (size_t i = 0; i < ELEMENTSOF(seed_dirs) && !f->seed_dir; i++) {
		_cleanup_(freep) char *lpath = NULL, *linner = NULL, *inner = NULL, *target = NULL,
				      *dir = NULL;
		const PfPartition *lpart, *part;
		PfStat st;
		PfFs *fs;

		if (asprintf(&lpath, "%s/user-data", seed_dirs[i]) < 0)
			return -ENOMEM;
		r = locate(c, lpath, false, &lpart, &fs, &linner, &st);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			continue;
		if (S_ISLNK(st.mode)) {
			r = pf_fs_readlink(fs, linner, &target);
			if (r < 0 && absent(c, r, lpath) == -ENOMEM)
				return -ENOMEM;
		}
		/* Where the link leads, even if the file is not there yet. */
		r = pf_tree_resolve(c->tree, NULL, lpath, true, &part, &inner);
		if (r < 0) {
			if (absent(c, r, lpath) == -ENOMEM)
				return -ENOMEM;
			continue;
		}
		dir = dir_of(inner);
		if (!dir || format_location(part, dir, &f->seed_dir) < 0)
			return -ENOMEM;
		if (target)
			r = asprintf(&f->seed_how, "link %s -> %s", lpath, target);
		else
			r = asprintf(&f->seed_how, "files in %s", seed_dirs[i]);
		if (r < 0)
			return -ENOMEM;
	}

	/* 2. ds=nocloud;s=... on the kernel command line, 3. seedfrom in the config. */
	if (!f->seed_dir && f->cmdline) {
		r = cmdline_seedfrom(f->cmdline, &cmd_seed);
		if (r < 0)
			return r;
		if (cmd_seed) {
			r = seed_from_path(c, cmd_seed, &f->seed_dir);
			if (r == -ENOMEM)
				return r;
			if (f->seed_dir &&
			    asprintf(&f->seed_how, "cmdline seedfrom %s", cmd_seed) < 0)
				return -ENOMEM;
			if (!f->nocloud_seedfrom && set_str(&f->nocloud_seedfrom, cmd_seed) < 0)
				return -ENOMEM;
		}
	}
	if (!f->seed_dir && f->nocloud_seedfrom) {
		r = seed_from_path(c, f->nocloud_seedfrom, &f->seed_dir);
		if (r == -ENOMEM)
			return r;
		if (f->seed_dir &&
		    asprintf(&f->seed_how, "NoCloud seedfrom %s", f->nocloud_seedfrom) < 0)
			return -ENOMEM;
	}

	/* 4. A filesystem labelled fs_label (cloud-init's default: cidata), any case. */
	label = f->nocloud_fs_label ? f->nocloud_fs_label : "cidata";
	for (size_t i = 0; i < c->t->n_parts && !f->seed_dir; i++) {
		const PfPartition *p = &c->t->parts[i];

		if (!p->label || strcasecmp(p->label, label) != 0)
			continue;
		if (format_location(p, "/", &f->seed_dir) < 0 ||
		    asprintf(&f->seed_how, "filesystem label %s", label) < 0)
			return -ENOMEM;
	}

	/* 5. NoCloud always looks in its seed directory on the root filesystem: where cloud-init
	 * runs, lists NoCloud and has no other seed, piflash puts the seed there. */
	if (!f->seed_dir && f->cloud_init_enabled && f->root && nocloud_listed(f)) {
		if (format_location(f->root, "/var/lib/cloud/seed/nocloud", &f->seed_dir) < 0 ||
		    asprintf(&f->seed_how, "NoCloud's seed directory on the root filesystem "
					   "(none there yet)") < 0)
			return -ENOMEM;
	}

	if (!f->seed_dir)
		return evidence(c,
				"cloud-init seed: none found (no seed links, seedfrom or "
				"filesystem labelled %s)",
				label);
	r = evidence(c, "cloud-init seed: %s (%s)", f->seed_dir, f->seed_how);
	if (r < 0)
		return r;

	/* What the seed holds now: the instance-id and the network-config version. */
	{
		_cleanup_(freep) char *meta = NULL, *net = NULL, *user = NULL, *p1 = NULL,
				      *p2 = NULL, *p3 = NULL;
		const char *colon = strchr(f->seed_dir, ':'), *dir = colon + 1;
		const PfPartition *part = NULL;
		yaml_document_t doc;
		size_t len;
		PfFs *fs;

		for (size_t i = 0; i < c->t->n_parts; i++)
			if ((unsigned)strtoul(f->seed_dir, NULL, 10) == c->t->parts[i].number)
				part = &c->t->parts[i];
		if (!part || pf_tree_fs(c->tree, part, &fs) < 0) {
			pf_error_clear();
			return 0;
		}
		if (asprintf(&p1, "%s%smeta-data", dir, streq(dir, "/") ? "" : "/") < 0 ||
		    asprintf(&p2, "%s%snetwork-config", dir, streq(dir, "/") ? "" : "/") < 0 ||
		    asprintf(&p3, "%s%suser-data", dir, streq(dir, "/") ? "" : "/") < 0)
			return -ENOMEM;
		r = read_fs_text(c, fs, p1, "seed meta-data", TEXT_MAX, &meta, &len);
		if (r == -ENOMEM)
			return r;
		if (r >= 0 && yaml_load(meta, len, &doc) >= 0) {
			const char *id = yscalar(
				ymap_get(&doc, yaml_document_get_root_node(&doc), "instance-id"));

			r = id ? set_str(&f->seed_instance_id, id) : 0;
			yaml_document_delete(&doc);
			if (r < 0)
				return r;
		}
		if (meta) {
			f->seed_meta_data = TAKE_PTR(meta);
			f->seed_meta_data_len = len;
		}
		pf_error_clear();

		/* The seed's user-data: kept when piflash edits it; its user is the node's. */
		r = read_fs_text(c, fs, p3, "seed user-data", TEXT_MAX, &user, &len);
		if (r == -ENOMEM)
			return r;
		if (r >= 0 && yaml_load(user, len, &doc) >= 0) {
			char from[PF_PATH_MAX + 32];

			snprintf(from, sizeof(from), "%u:%s (the seed)", part->number, p3);
			r = first_list_user(
				&doc, ymap_get(&doc, yaml_document_get_root_node(&doc), "users"),
				from, &c->cc.seed_user);
			yaml_document_delete(&doc);
			if (r < 0)
				return r;
		}
		if (user) {
			f->seed_user_data = TAKE_PTR(user);
			f->seed_user_data_len = len;
		}
		pf_error_clear();
		r = read_fs_text(c, fs, p2, "seed network-config", TEXT_MAX, &net, &len);
		if (r == -ENOMEM)
			return r;
		if (r >= 0 && yaml_load(net, len, &doc) >= 0) {
			yaml_node_t *root = yaml_document_get_root_node(&doc);
			const char *v = yscalar(ymap_get(&doc, root, "version"));

			if (!v)
				v = yscalar(
					ymap_get(&doc, ymap_get(&doc, root, "network"), "version"));
			if (v && (streq(v, "1") || streq(v, "2")))
				f->network_config_version = v[0] - '0';
			yaml_document_delete(&doc);
		}
		pf_error_clear();
	}
	return 0;
}

/* ---- network stacks ---- */

static bool masked(Ctx *c, const char *unit_path)
{
	_cleanup_(freep) char *inner = NULL, *target = NULL;
	PfStat st;
	PfFs *fs;

	if (locate(c, unit_path, false, NULL, &fs, &inner, &st) < 0 || !S_ISLNK(st.mode))
		return false;
	if (pf_fs_readlink(fs, inner, &target) < 0) {
		pf_error_clear();
		return false;
	}
	return streq(target, "/dev/null");
}

static bool has_file_in(Ctx *c, const char *dir, const char *suffix)
{
	_cleanup_(listing_done) Listing ls = { 0 };

	if (list_dir(c, dir, &ls.d, &ls.n) < 0)
		return false;
	for (size_t i = 0; i < ls.n; i++)
		if (endswith(ls.d[i].name, suffix))
			return true;
	return false;
}

static int detect_network(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	char buf[512];
	size_t l = 0;

	f->has_networkmanager =
		is_file(c, "/usr/sbin/NetworkManager") || is_file(c, "/usr/bin/NetworkManager");
	f->has_dhcpcd = is_file(c, "/usr/sbin/dhcpcd") || is_file(c, "/sbin/dhcpcd") ||
			is_file(c, "/etc/dhcpcd.conf");
	f->dhcpcd_masked = masked(c, "/etc/systemd/system/dhcpcd.service") ||
			   masked(c, "/etc/systemd/system/dhcpcd5.service");
	f->has_networkd = is_file(c, "/lib/systemd/systemd-networkd") ||
			  is_file(c, "/usr/lib/systemd/systemd-networkd");
	f->networkd_enabled =
		f->has_networkd &&
		(exists(c,
			"/etc/systemd/system/multi-user.target.wants/systemd-networkd.service") ||
		 has_file_in(c, "/etc/systemd/network", ".network"));
	f->has_ifupdown = is_file(c, "/etc/network/interfaces");
	f->netplan_to_networkmanager = is_file(c, "/lib/netplan/00-network-manager-all.yaml") ||
				       is_file(c, "/usr/lib/netplan/00-network-manager-all.yaml") ||
				       is_file(c, "/etc/netplan/00-network-manager-all.yaml");
	f->has_netplan = f->netplan_to_networkmanager || is_dir(c, "/etc/netplan") ||
			 is_file(c, "/usr/sbin/netplan") || is_dir(c, "/usr/share/netplan");
	f->has_userconf = is_file(c, "/usr/lib/userconf-pi/userconf");
	f->has_custom_toml = is_file(c, "/usr/lib/raspberrypi-sys-mods/init_config");

	buf[0] = 0;
#define ADD(cond, s)                                                                               \
	do {                                                                                       \
		if ((cond) && l < sizeof(buf))                                                     \
			l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%s", l ? ", " : "", s); \
	} while (0)
	ADD(f->has_networkmanager, "NetworkManager");
	ADD(f->has_netplan,
	    f->netplan_to_networkmanager ? "netplan (-> NetworkManager)" : "netplan");
	ADD(f->has_dhcpcd, f->dhcpcd_masked ? "dhcpcd (masked)" : "dhcpcd");
	ADD(f->has_networkd,
	    f->networkd_enabled ? "systemd-networkd (enabled)" : "systemd-networkd");
	ADD(f->has_ifupdown, "ifupdown");
#undef ADD
	if (evidence(c, "network: %s", l ? buf : "none found") < 0)
		return -ENOMEM;
	if (f->has_userconf && evidence(c, "userconf-pi (/usr/lib/userconf-pi/userconf)") < 0)
		return -ENOMEM;
	if (f->has_custom_toml &&
	    evidence(c, "custom.toml support (/usr/lib/raspberrypi-sys-mods/init_config)%s",
		     f->firstboot_in_cmdline ? ", firstboot in cmdline.txt" : "") < 0)
		return -ENOMEM;
	return 0;
}

/* ---- accounts ---- */

static int detect_accounts(Ctx *c)
{
	_cleanup_(freep) char *text = NULL, *shells = NULL;
	PfFlavorInfo *f = c->f;
	size_t len = 0;
	int r;

	r = read_text(c, "/etc/shells", PF_PASSWD_MAX_BYTES, &shells, &len);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		r = pf_shells_parse(shells, len, &c->shells);
		if (r < 0)
			return absent(c, r, "/etc/shells") == -ENOMEM ? -ENOMEM : 0;
	}

	r = read_text(c, "/etc/passwd", PF_PASSWD_MAX_BYTES, &text, &len);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return evidence(c, "no /etc/passwd");
	r = pf_passwd_parse(text, len, &c->pw);
	if (r < 0) {
		if (r == -ENOMEM)
			return r;
		r = evidence(c, "/etc/passwd: %s, ignoring", pf_error_message(r));
		pf_error_clear();
		return r;
	}
	if (c->pw->n_skipped &&
	    evidence(c, "/etc/passwd: %zu malformed lines skipped (the first: line %u)",
		     c->pw->n_skipped, c->pw->first_skipped_line) < 0)
		return -ENOMEM;
	r = pf_passwd_regular(c->pw, c->shells, &f->users, &f->n_users);
	if (r < 0)
		return r;
	/* Names from the image reach inventory.ini, known_hosts and terminals: only those the
	 * node's own rules accept are used. */
	for (size_t i = 0; i < f->n_users;) {
		if (pf_username_validate(f->users[i].name) >= 0) {
			i++;
			continue;
		}
		pf_error_clear();
		pf_passwd_entry_done(&f->users[i]);
		memmove(&f->users[i], &f->users[i + 1], (f->n_users - i - 1) * sizeof(f->users[0]));
		f->n_users--;
	}

	r = read_text(c, "/etc/shadow", PF_PASSWD_MAX_BYTES, &c->shadow, &c->shadow_len);
	if (r == -ENOMEM)
		return r;

	{
		const PfPasswdEntry *first = pf_passwd_find_uid(c->pw, 1000);

		f->first_user_password = PF_PASSWORD_DISABLED;
		if (first && pf_username_validate(first->name) < 0) {
			pf_error_clear();
			first = NULL;
		}
		if (first) {
			f->first_user = strdup(first->name);
			if (!f->first_user)
				return -ENOMEM;
			if (c->shadow && pf_shadow_state(c->shadow, c->shadow_len, first->name,
							 &f->first_user_password) == -ENOMEM)
				return -ENOMEM;
		}
	}

	if (f->n_users == 0)
		return evidence(c, "users: no regular user (uid %u..%u with a login shell)",
				PF_UID_REGULAR_MIN, PF_UID_REGULAR_MAX);
	{
		char buf[512];
		size_t l = 0;

		buf[0] = 0;
		for (size_t i = 0; i < f->n_users && l < sizeof(buf); i++) {
			PfPasswordState st = PF_PASSWORD_DISABLED;
			bool known = c->shadow && pf_shadow_state(c->shadow, c->shadow_len,
								  f->users[i].name, &st) >= 0;

			l += (size_t)snprintf(buf + l, sizeof(buf) - l, "%s%s (uid %u%s%s)",
					      i ? ", " : "", f->users[i].name,
					      (unsigned)f->users[i].uid, known ? ", password " : "",
					      known ? pf_password_state_name(st) : "");
		}
		return evidence(c, "users: %s", buf);
	}
}

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
	_cleanup_(listing_done) Listing ls = { 0 };
	size_t seen = 0;
	int r;

	r = list_dir(c, "/etc/systemd/system", &ls.d, &ls.n);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	for (size_t i = 0; i < ls.n; i++) {
		_cleanup_(listing_done) Listing wl = { 0 };
		PfDirent *w;
		char dir[PF_PATH_MAX];

		if (!endswith(ls.d[i].name, ".wants"))
			continue;
		snprintf(dir, sizeof(dir), "/etc/systemd/system/%s", ls.d[i].name);
		r = list_dir(c, dir, &wl.d, &wl.n);
		if (r == -ENOMEM)
			return r;
		w = wl.d;
		for (size_t k = 0; r >= 0 && k < wl.n && seen < UNITS_MAX; k++, seen++) {
			_cleanup_(freep) char *text = NULL;
			char p[PF_PATH_MAX];

			if (snprintf(p, sizeof(p), "%s/%s", dir, w[k].name) >= (int)sizeof(p))
				continue;
			if (streq(w[k].name, "regenerate_ssh_host_keys.service") && exists(c, p)) {
				*ret_unit = strdup(w[k].name);
				*ret_link = strdup(p);
				return *ret_unit && *ret_link ? 1 : -ENOMEM;
			}
			r = read_text(c, p, TEXT_MAX, &text, NULL);
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

static int detect_identity(Ctx *c)
{
	_cleanup_(listing_done) Listing ls = { 0 };
	_cleanup_(freep) char *mid = NULL, *unit = NULL;
	PfFlavorInfo *f = c->f;
	const char *regen;
	PfStat st;
	int r;

	r = read_text(c, "/etc/machine-id", SMALL_MAX, &mid, NULL);
	if (r == -ENOMEM)
		return r;
	if (r >= 0) {
		char *s = mid + strspn(mid, " \t\r\n");

		s[strcspn(s, " \t\r\n")] = 0;
		f->machine_id_baked = s[0] && !streq(s, "uninitialized");
	}
	r = locate(c, "/var/lib/dbus/machine-id", false, NULL, NULL, NULL, &st);
	if (r == -ENOMEM)
		return r;
	f->dbus_machine_id_copy = r >= 0 && S_ISREG(st.mode);

	r = list_dir(c, "/etc/ssh", &ls.d, &ls.n);
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
		qsort(f->host_keys, f->n_host_keys, sizeof(char *), cmp_str);

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

/* ---- the verdict ---- */

static bool codename_in(const char *codename, const char *const *list)
{
	for (size_t i = 0; codename && list[i]; i++)
		if (streq(codename, list[i]))
			return true;
	return false;
}

static bool like_debian(Ctx *c)
{
	const char *id = c->f->os_id;

	if (id && (streq(id, "debian") || streq(id, "raspbian")))
		return true;
	if (c->os_like) {
		_cleanup_(freep) char *copy = strdup(c->os_like);
		char *save = NULL;

		for (char *w = copy ? strtok_r(copy, " ", &save) : NULL; w;
		     w = strtok_r(NULL, " ", &save))
			if (streq(w, "debian"))
				return true;
	}
	return false;
}

static PfFlavor classify(Ctx *c)
{
	static const char *const old[] = {
		"wheezy", "jessie", "stretch", "buster", "bullseye", NULL
	};
	PfFlavorInfo *f = c->f;
	bool rpi = f->rpi_issue || (f->os_id && streq(f->os_id, "raspbian"));

	if (!c->has_os_release || !f->root)
		return PF_FLAVOR_UNKNOWN;
	if (c->hypriot)
		return PF_FLAVOR_HYPRIOT;
	if (f->os_id && streq(f->os_id, "ubuntu"))
		return PF_FLAVOR_UBUNTU;
	if (rpi) {
		if (f->os_codename && streq(f->os_codename, "bookworm"))
			return PF_FLAVOR_RPIOS_BOOKWORM;
		if (codename_in(f->os_codename, old))
			return PF_FLAVOR_RASPBIAN;
		if (f->has_cloud_init && !f->cloud_init_disabled)
			return PF_FLAVOR_RPIOS_TRIXIE;
		if (f->has_networkmanager)
			return PF_FLAVOR_RPIOS_BOOKWORM;
		if (f->has_dhcpcd)
			return PF_FLAVOR_RASPBIAN;
	}
	/* Only a label now: the mechanisms are decided from the image's files. */
	if (like_debian(c))
		return PF_FLAVOR_DEBIAN;
	return PF_FLAVOR_UNKNOWN;
}

/* The account cloud-init will make for the node: the seed's own users: entry first (it is what
 * cloud-init would apply), then the configuration's users: list, then its default user. */
static int pick_cloud_user(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	PfCloudUser *u = NULL;

	if (c->cc.seed_user.name)
		u = &c->cc.seed_user;
	else if (f->cloud_users_default && c->cc.default_user.name)
		u = &c->cc.default_user;
	else if (c->cc.list_user.name)
		u = &c->cc.list_user;
	else if (c->cc.default_user.name)
		u = &c->cc.default_user;
	if (!u)
		return 0;
	f->cloud_user = *u;
	*u = (PfCloudUser){ 0 };
	return evidence(c, "cloud-init user: %s (from %s)", f->cloud_user.name, f->cloud_user.from);
}

static int pick_default_user(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	const char *u = NULL;

	switch (f->user) {
	case PF_USER_CLOUD_INIT:
		u = f->cloud_user.name;
		break;
	case PF_USER_CUSTOM_TOML:
	case PF_USER_USERCONF:
		break; /* named at first boot: the uid-1000 account is renamed */
	case PF_USER_PASSWD:
	default:
		if (f->n_users == 1)
			u = f->users[0].name;
		for (size_t i = 0; !u && i < f->n_users; i++)
			if (streq(f->users[i].name, "pi"))
				u = "pi";
		break;
	}
	free(f->default_user);
	f->default_user = NULL;
	if (!u)
		return 0;
	f->default_user = strdup(u);
	if (!f->default_user)
		return -ENOMEM;
	f->default_user_in_passwd = pf_passwd_find(c->pw, u) != NULL;
	return 0;
}

static int unknown_detail(Ctx *c)
{
	PfFlavorInfo *f = c->f;
	char net[256];
	size_t l = 0;

	net[0] = 0;
#define ADD(cond, s)                                                                               \
	do {                                                                                       \
		if ((cond) && l < sizeof(net))                                                     \
			l += (size_t)snprintf(net + l, sizeof(net) - l, "%s%s", l ? ", " : "", s); \
	} while (0)
	ADD(f->has_networkmanager, "NetworkManager");
	ADD(f->has_dhcpcd, "dhcpcd");
	ADD(f->has_networkd, "systemd-networkd");
	ADD(f->has_ifupdown, "ifupdown");
	ADD(f->has_netplan, "netplan");
#undef ADD
	if (!f->root)
		return pf_error_set(-ENOENT,
				    "unknown flavor: no root filesystem (no partition with /etc)");
	return pf_error_set(-ENOENT, "unknown flavor: %s%s%s%s%s; network: %s; %s%s%s",
			    c->has_os_release ? "os-release ID=" : "no os-release",
			    c->has_os_release ? (f->os_id ? f->os_id : "(none)") : "",
			    c->has_os_release ? " VERSION_CODENAME=" : "",
			    c->has_os_release ? (f->os_codename ? f->os_codename : "(none)") : "",
			    f->rpi_issue ? ", /etc/rpi-issue" : "", l ? net : "none found",
			    f->has_cloud_init ? "cloud-init" : "no cloud-init",
			    f->cloud_init_version ? " " : "",
			    f->cloud_init_version ? f->cloud_init_version : "");
}

static void cloud_cfg_done(CloudCfg *cc)
{
	cloud_user_done(&cc->default_user);
	cloud_user_done(&cc->list_user);
	cloud_user_done(&cc->seed_user);
}

static int detect(PfTree *tree, const PfPtable *t, bool force, const PfDetectOptions *o,
		  PfFlavorInfo **ret)
{
	_cleanup_(pf_flavor_info_freep) PfFlavorInfo *f = calloc(1, sizeof(*f));
	Ctx c = { .tree = tree, .t = t, .f = f };
	PfFlavor forced = o ? o->flavor : PF_FLAVOR_UNKNOWN, detected;
	int r;

	if (!f)
		return -ENOMEM;
	f->cloud_init_major = f->cloud_init_minor = -1;
	f->ssh_deletekeys = -1;

	r = detect_layout(&c);
	if (r >= 0 && f->root)
		r = detect_os(&c);
	if (r >= 0 && f->root)
		r = detect_arch(&c);
	if (r >= 0 && f->root)
		r = detect_cloud_init_version(&c);
	if (r >= 0 && f->root && f->has_cloud_init)
		r = detect_cloud_cfg(&c);
	if (r >= 0 && f->root)
		r = detect_network(&c);
	if (r >= 0 && f->root)
		r = pf_mechanism_facts(tree, f);
	if (r >= 0 && f->root)
		r = detect_seed(&c);
	if (r >= 0 && f->root && f->has_cloud_init)
		r = pick_cloud_user(&c);
	if (r >= 0 && f->root)
		r = detect_accounts(&c);
	if (r >= 0 && f->root)
		r = detect_identity(&c);
	if (r >= 0 && !f->arch && !(f->arch = strdup("unknown")))
		r = -ENOMEM;
	if (r < 0)
		goto out;

	if (f->has_cloud_init && !f->network_config_version)
		f->network_config_version = f->has_netplan ? 2 : 1;
	/* cloud-init before 18 reads version 1 only. */
	if (f->cloud_init_major >= 0 && f->cloud_init_major < 18)
		f->network_config_version = 1;

	detected = classify(&c);
	f->flavor = force && forced != PF_FLAVOR_UNKNOWN ? forced : detected;
	if (!force && detected == PF_FLAVOR_UNKNOWN) {
		r = unknown_detail(&c);
		goto out;
	}
	if (force && forced != PF_FLAVOR_UNKNOWN && forced != detected)
		r = evidence(&c, "flavor: %s as given (the image looks like %s)",
			     pf_flavor_name(forced), pf_flavor_name(detected));
	else
		r = evidence(&c, "flavor: %s", pf_flavor_name(f->flavor));
	if (r >= 0 && f->root)
		r = pf_mechanism_decide(f, o);
	if (r >= 0)
		r = pick_default_user(&c);
	if (r < 0)
		goto out;
	*ret = TAKE_PTR(f);
	r = 0;
out:
	free(c.os_like);
	free(c.hypriot);
	pf_strv_free(c.shells);
	pf_passwd_free(c.pw);
	free(c.shadow);
	cloud_cfg_done(&c.cc);
	return r;
}

int pf_flavor_detect(PfTree *tree, const PfPtable *t, PfFlavorInfo **ret)
{
	return detect(tree, t, false, NULL, ret);
}

int pf_flavor_detect_as(PfTree *tree, const PfPtable *t, PfFlavor forced, PfFlavorInfo **ret)
{
	PfDetectOptions o = { .flavor = forced };

	return detect(tree, t, true, &o, ret);
}

int pf_flavor_detect_with(PfTree *tree, const PfPtable *t, const PfDetectOptions *o,
			  PfFlavorInfo **ret)
{
	return detect(tree, t, o && (o->allow_unknown || o->flavor != PF_FLAVOR_UNKNOWN), o, ret);
}
