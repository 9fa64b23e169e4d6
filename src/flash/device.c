/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "flash/device.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

/* Bounds on what is read from sysfs and /proc. */
#define MAX_PARTITIONS 256u
#define SYSFS_VALUE_MAX 4096u

static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

static const char *sysfs_root(void)
{
	const char *r = getenv("PIFLASH_SYSFS_ROOT");

	return r && *r ? r : "/sys";
}

/* Reads a small text file, trimmed of surrounding white space. NULL if missing or empty. */
static char *read_value(const char *dir, const char *name)
{
	_cleanup_(freep) char *path = NULL;
	char buf[SYSFS_VALUE_MAX];
	size_t n, s = 0;
	FILE *f;

	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return NULL;
	f = fopen(path, "re");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = 0;
	while (s < n && isspace((unsigned char)buf[s]))
		s++;
	return s < n ? strdup(buf + s) : NULL;
}

static bool value_is(const char *dir, const char *name, const char *want)
{
	_cleanup_(freep) char *v = read_value(dir, name);

	return v && streq(v, want);
}

static int parse_devno(const char *s, dev_t *ret)
{
	unsigned ma, mi;
	char c;

	if (!s || sscanf(s, "%u:%u%c", &ma, &mi, &c) != 2)
		return -EINVAL;
	*ret = makedev(ma, mi);
	return 0;
}

void pf_device_info_done(PfTargetInfo *i)
{
	free(i->path);
	free(i->name);
	free(i->disk);
	free(i->model);
	free(i->serial);
	*i = (PfTargetInfo){ 0 };
}

/* ---- block devices: what sysfs says -------------------------------------------------- */

typedef struct Devs {
	dev_t devs[MAX_PARTITIONS + 1]; /* the disk, then its partitions */
	char *names[MAX_PARTITIONS + 1];
	size_t n;
} Devs;

static void devs_done(Devs *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->names[i]);
	d->n = 0;
}

static int devs_add(Devs *d, dev_t dev, const char *name)
{
	if (d->n >= ELEMENTSOF(d->devs))
		return 0;
	d->names[d->n] = strdup(name);
	if (!d->names[d->n])
		return -ENOMEM;
	d->devs[d->n++] = dev;
	return 0;
}

/* The disk (whole) and all its partitions as sysfs lists them. */
static int list_devs(const char *disk_dir, const char *disk_name, dev_t disk_dev, Devs *ret)
{
	_cleanup_(closedirp) DIR *d = NULL;
	struct dirent *de;
	int r;

	r = devs_add(ret, disk_dev, disk_name);
	if (r < 0)
		return r;
	d = opendir(disk_dir);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		_cleanup_(freep) char *sub = NULL, *dev = NULL;
		dev_t devno;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&sub, "%s/%s", disk_dir, de->d_name) < 0)
			return -ENOMEM;
		dev = read_value(sub, "partition");
		if (!dev)
			continue;
		free(dev);
		dev = read_value(sub, "dev");
		if (parse_devno(dev, &devno) < 0)
			continue;
		r = devs_add(ret, devno, de->d_name);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the safety checks ---------------------------------------------------------------- */

/* Mount points the running system cannot lose. */
static bool vital_mount(const char *where)
{
	return streq(where, "/") || streq(where, "/boot") || streq(where, "/boot/firmware") ||
	       streq(where, "/boot/efi") || streq(where, "/usr") || streq(where, "/var");
}

/*
 * Calls found(userdata, name, where) for each mount of one of devs (name: its kernel name);
 * stops at the first call that returns non-zero and returns that. Returns 0 or -errno.
 */
static int scan_mounts(const Devs *devs,
		       int (*found)(void *userdata, const char *name, const char *where),
		       void *userdata)
{
	_cleanup_(freep) char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int r = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return pf_error_set(-errno, "cannot read /proc/self/mountinfo: %m");
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char devno[32], where[PATH_MAX], src[PATH_MAX] = "";
		const char *sep = strstr(line, " - ");
		struct stat st;
		dev_t dev = 0;
		bool by_src = false;

		if (sscanf(line, "%*s %*s %31s %*s %4095s", devno, where) != 2)
			continue;
		if (sep)
			sscanf(sep + 3, "%*s %4095s", src);
		/* The device of a mount is its major:minor, or its source node (btrfs and
		 * others report an anonymous device number). */
		if (startswith(src, "/dev/") && stat(src, &st) == 0 && S_ISBLK(st.st_mode)) {
			dev = st.st_rdev;
			by_src = true;
		}
		for (size_t i = 0; i < devs->n; i++) {
			dev_t md;

			if (!(parse_devno(devno, &md) == 0 && md == devs->devs[i]) &&
			    !(by_src && dev == devs->devs[i]))
				continue;
			r = found(userdata, devs->names[i], where);
			break;
		}
	}
	fclose(f);
	return r;
}

static int refuse_mount(void *userdata, const char *name, const char *where)
{
	if (vital_mount(where))
		return pf_error_set(
			-EPERM, "holds the running system's %s filesystem ('%s' is mounted at %s)",
			streq(where, "/") ? "root" : where, name, where);
	return pf_error_set(-EPERM, "'%s' is mounted at %s; unmount it first", name, where);
}

static int check_mounts(const Devs *devs)
{
	return scan_mounts(devs, refuse_mount, NULL);
}

/* For pf_target_probe(): every mount point, once. */
static int collect_mount(void *userdata, const char *name, const char *where)
{
	PfTargetProbe *p = userdata;
	char **m;

	for (size_t i = 0; i < p->n_mounts; i++)
		if (streq(p->mounts[i], where))
			return 0;
	if (p->n_mounts >= MAX_PARTITIONS)
		return 0;
	m = reallocarray(p->mounts, p->n_mounts + 1, sizeof(char *));
	if (!m)
		return -ENOMEM;
	p->mounts = m;
	m[p->n_mounts] = strdup(where);
	if (!m[p->n_mounts])
		return -ENOMEM;
	p->n_mounts++;
	return 0;
}

static int check_swaps(const Devs *devs)
{
	_cleanup_(freep) char *line = NULL;
	size_t cap = 0;
	FILE *f;
	int r = 0;

	f = fopen("/proc/swaps", "re");
	if (!f)
		return 0; /* no swap support: nothing swaps on the target */
	while (r == 0 && getline(&line, &cap, f) > 0) {
		char path[PATH_MAX];
		struct stat st;

		if (sscanf(line, "%4095s", path) != 1 || path[0] != '/' || stat(path, &st) < 0 ||
		    !S_ISBLK(st.st_mode))
			continue;
		for (size_t i = 0; i < devs->n; i++)
			if (st.st_rdev == devs->devs[i]) {
				r = pf_error_set(-EPERM,
						 "holds the running system's swap ('%s' is "
						 "swap space in use)",
						 devs->names[i]);
				break;
			}
	}
	fclose(f);
	return r;
}

static int check_holders(const char *disk_dir, const Devs *devs)
{
	for (size_t i = 0; i < devs->n; i++) {
		_cleanup_(freep) char *dir = NULL;
		_cleanup_(closedirp) DIR *d = NULL;
		struct dirent *de;

		/* The disk's holders, then each partition's (a subdirectory of the disk). */
		if ((i == 0 ? asprintf(&dir, "%s/holders", disk_dir)
			    : asprintf(&dir, "%s/%s/holders", disk_dir, devs->names[i])) < 0)
			return -ENOMEM;
		d = opendir(dir);
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.')
				return pf_error_set(-EPERM,
						    "'%s' is in use by '%s' (device-mapper, LVM "
						    "or RAID)",
						    devs->names[i], de->d_name);
	}
	return 0;
}

/*
 * The device holding the running system's root directory, whatever /proc/self/mountinfo
 * says of it (a container shows an overlay there): refused like a mounted root.
 */
static int check_root(const Devs *devs)
{
	struct stat st;

	if (stat("/", &st) < 0)
		return 0;
	for (size_t i = 0; i < devs->n; i++)
		if (st.st_dev == devs->devs[i])
			return pf_error_set(-EPERM,
					    "holds the running system's root filesystem ('%s' "
					    "is /)",
					    devs->names[i]);
	return 0;
}

/*
 * The disk and its partitions: not the running system's, not mounted, not swap, not held by
 * device-mapper or RAID. With probe, the mount points are collected too. Returns 0, -EPERM
 * with the reason, or -errno.
 */
static int check_in_use(const char *disk_dir, const char *disk, dev_t disk_dev, Devs *devs,
			PfTargetProbe *probe)
{
	int r;

	r = list_devs(disk_dir, disk, disk_dev, devs);
	if (r < 0)
		return r;
	if (probe) {
		r = scan_mounts(devs, collect_mount, probe);
		if (r < 0)
			return r;
	}
	r = check_root(devs);
	if (r < 0)
		return r;
	r = check_mounts(devs);
	if (r < 0)
		return r;
	r = check_swaps(devs);
	if (r < 0)
		return r;
	return check_holders(disk_dir, devs);
}

/* ---- opening a disk ------------------------------------------------------------------- */

/* The error of a failed open() of a device, with what to do when it is a permission. */
static int open_error(void)
{
	if (errno == EACCES || errno == EPERM)
		return pf_error_set(-EACCES,
				    "cannot open: %m; opening a card needs root (sudo piflash "
				    "...) or membership of the device's group (often 'disk')");
	return pf_error_set(-errno, "cannot open: %m");
}

static char *udev_serial(dev_t dev)
{
	_cleanup_(freep) char *path = NULL, *line = NULL;
	char *serial = NULL;
	size_t cap = 0;
	FILE *f;

	if (asprintf(&path, "/run/udev/data/b%u:%u", major(dev), minor(dev)) < 0)
		return NULL;
	f = fopen(path, "re");
	if (!f)
		return NULL;
	while (!serial && getline(&line, &cap, f) > 0) {
		const char *v = startswith(line, "E:ID_SERIAL_SHORT=");

		if (v) {
			serial = strndup(v, strcspn(v, "\n"));
		}
	}
	fclose(f);
	return serial;
}

static char *describe_model(const char *disk_dir)
{
	_cleanup_(freep) char *vendor = read_value(disk_dir, "device/vendor");
	_cleanup_(freep) char *model = read_value(disk_dir, "device/model");
	char *s = NULL;

	if (!model)
		model = read_value(disk_dir, "device/name"); /* mmc */
	if (!model)
		return read_value(disk_dir, "loop/backing_file");
	if (vendor && asprintf(&s, "%s %s", vendor, model) >= 0)
		return s;
	return TAKE_PTR(model);
}

/* Where a block device is in sysfs. */
typedef struct BlockDirs {
	char *dev_dir;	/* the device's directory: a partition's or the disk's */
	char *disk_dir; /* the whole disk's */
	dev_t disk_dev;
} BlockDirs;

static void block_dirs_done(BlockDirs *d)
{
	free(d->dev_dir);
	free(d->disk_dir);
}

/* The device's and its disk's sysfs directories, and info's name, disk and partition. */
static int find_in_sysfs(PfTargetInfo *info, const struct stat *st, BlockDirs *ret)
{
	_cleanup_(freep) char *link = NULL, *part = NULL;
	char *slash;

	ret->disk_dev = st->st_rdev;
	if (asprintf(&link, "%s/dev/block/%u:%u", sysfs_root(), major(st->st_rdev),
		     minor(st->st_rdev)) < 0)
		return -ENOMEM;
	ret->dev_dir = realpath(link, NULL);
	if (!ret->dev_dir)
		return pf_error_set(-ENODEV, "'%s' has no entry in sysfs: %m", link);
	slash = strrchr(ret->dev_dir, '/');
	info->name = strdup(slash + 1);
	if (!info->name)
		return -ENOMEM;

	part = read_value(ret->dev_dir, "partition");
	info->partition = part != NULL;
	ret->disk_dir = strdup(ret->dev_dir);
	if (!ret->disk_dir)
		return -ENOMEM;
	if (info->partition) {
		_cleanup_(freep) char *dd = NULL;

		*strrchr(ret->disk_dir, '/') = 0;
		dd = read_value(ret->disk_dir, "dev");
		if (parse_devno(dd, &ret->disk_dev) < 0)
			return pf_error_set(-ENODEV, "cannot find the disk of partition '%s'",
					    info->name);
	}
	info->disk = strdup(strrchr(ret->disk_dir, '/') + 1);
	if (!info->disk)
		return -ENOMEM;
	return 0;
}

/* What kind of disk: transport, removable, model and serial. */
static void describe_disk(PfTargetInfo *info, const BlockDirs *dirs)
{
	if (startswith(info->disk, "loop"))
		info->transport = "loop";
	else if (strstr(dirs->disk_dir, "/usb"))
		info->transport = "usb";
	else if (value_is(dirs->disk_dir, "device/type", "SD"))
		info->transport = "sd";
	info->removable = info->transport || value_is(dirs->disk_dir, "removable", "1");
	info->model = describe_model(dirs->disk_dir);
	info->serial = read_value(dirs->disk_dir, "device/serial");
	if (!info->serial)
		info->serial = udev_serial(dirs->disk_dev);
}

/*
 * The size and logical block size, from the device opened for a moment. With probe, a device
 * that cannot be opened (not root) is not an error: its size comes from sysfs and the error
 * is kept in probe->open_error.
 */
static int read_size(PfTargetInfo *info, const char *dev_dir, PfTargetProbe *probe)
{
	_cleanup_(closep) int fd = -1;
	uint64_t size = 0;
	int ssz = 512;

	fd = open(info->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && probe) {
		/* Not root: sysfs still tells the size, in 512-byte sectors. */
		_cleanup_(freep) char *sectors = NULL;
		uint64_t n;

		probe->open_error = -errno;
		sectors = read_value(dev_dir, "size");
		if (sectors && pf_parse_u64(sectors, &n) == 0 && n <= UINT64_MAX / 512)
			size = n * 512;
	} else if (fd < 0)
		return open_error();
	else if (ioctl(fd, BLKGETSIZE64, &size) < 0 || ioctl(fd, BLKSSZGET, &ssz) < 0)
		return pf_error_set(errno == EPERM ? -EACCES : -errno,
				    "cannot read the device's size: %m");
	info->size_bytes = size;
	info->block_bytes = ssz > 0 ? (uint64_t)ssz : 512;
	return 0;
}

/* For verification: the device as it is, read-only, without checks. */
static int open_read_only(const PfTargetInfo *info, int *ret_fd)
{
	int fd = open(info->path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return open_error();
	*ret_fd = fd;
	return 0;
}

/* A whole disk (unless force), removable (unless force), and large enough for need bytes. */
static int check_fits(const PfTargetInfo *info, bool force, uint64_t need)
{
	if (info->partition && !force)
		return pf_error_set(-EPERM,
				    "is partition '%s' of disk '%s', not a whole disk; give the "
				    "disk (/dev/%s), or --force to write into the partition",
				    info->name, info->disk, info->disk);
	if (!info->removable && !force)
		return pf_error_set(-EPERM,
				    "'%s'%s%s%s is not a removable disk (not USB, not an SD "
				    "card); add --force if it really is the card",
				    info->disk, info->model ? " (" : "", info->model ?: "",
				    info->model ? ")" : "");
	if (info->size_bytes < need) {
		char a[32], b[32];

		return pf_error_set(-EPERM,
				    "is too small: %s (%" PRIu64
				    " bytes), the image needs %s (%" PRIu64 " bytes)",
				    pf_format_bytes(a, sizeof(a), info->size_bytes),
				    info->size_bytes, pf_format_bytes(b, sizeof(b), need), need);
	}
	return 0;
}

/*
 * Opens the device exclusively: read-write for writing, read-only for a probe (which only
 * wants to know whether anything holds it). O_EXCL fails while anything (a mount, another
 * writer, device-mapper) holds it.
 */
static int open_exclusive(PfTargetInfo *info, bool writable, int *ret_fd)
{
	int flags = (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_EXCL;
	int fd;

	fd = open(info->path, flags | O_DIRECT);
	if (fd >= 0)
		info->direct = true;
	else if (errno == EINVAL)
		fd = open(info->path, flags);
	if (fd < 0) {
		if (errno == EBUSY)
			return pf_error_set(-EPERM,
					    "cannot be opened exclusively: it is in use (mounted, "
					    "or held by another program)");
		return open_error();
	}
	*ret_fd = fd;
	return 0;
}

/*
 * Fills the block device part of info from sysfs and the device, and (unless read_only)
 * runs the safety checks. With probe (pf_target_probe()), also collects the mount points,
 * takes the size from sysfs when the device cannot be opened, and opens the device only
 * read-only, to see whether anything holds it.
 */
static int probe_block(PfTargetInfo *info, const struct stat *st, bool read_only, bool force,
		       uint64_t need, int *ret_fd, PfTargetProbe *probe)
{
	_cleanup_(block_dirs_done) BlockDirs dirs = { 0 };
	_cleanup_(devs_done) Devs devs = { 0 };
	int r, in_use = 0;

	r = find_in_sysfs(info, st, &dirs);
	if (r < 0)
		return r;
	describe_disk(info, &dirs);

	/* The safety checks, most serious first, before the device is even opened: the
	 * system disk is refused as such, whatever opening it would say. A probe goes on to
	 * learn the size. */
	if (!read_only) {
		in_use = check_in_use(dirs.disk_dir, info->disk, dirs.disk_dev, &devs, probe);
		if (in_use < 0 && (!probe || in_use != -EPERM))
			return in_use;
	}
	r = read_size(info, dirs.dev_dir, probe);
	if (r < 0)
		return r;
	if (read_only)
		return open_read_only(info, ret_fd);
	if (in_use < 0)
		return in_use;
	r = check_fits(info, force, need);
	if (r < 0)
		return r;
	if (probe && probe->open_error)
		return pf_error_set(probe->open_error == -EPERM ? -EACCES : probe->open_error,
				    "cannot open: %s", strerror(-probe->open_error));
	return open_exclusive(info, !probe, ret_fd);
}

int pf_device_open(PfTargetInfo *info, const struct stat *st, bool read_only, bool force,
		   uint64_t need_bytes, int *ret_fd)
{
	return probe_block(info, st, read_only, force, need_bytes, ret_fd, NULL);
}

/* ---- listing the disks ---------------------------------------------------------------- */

void pf_target_probe_done(PfTargetProbe *p)
{
	pf_device_info_done(&p->info);
	free(p->refusal);
	for (size_t i = 0; i < p->n_mounts; i++)
		free(p->mounts[i]);
	free(p->mounts);
	*p = (PfTargetProbe){ 0 };
}

int pf_target_probe(const char *path, PfTargetProbe *ret)
{
	_cleanup_(pf_device_info_done) PfTargetInfo info = { .kind = PF_TARGET_BLOCK };
	PfTargetProbe p = { 0 };
	struct stat st;
	int fd = -1, r;

	if (stat(path, &st) < 0)
		return pf_error_set(-errno, "'%s': %m", path);
	if (!S_ISBLK(st.st_mode))
		return pf_error_set(-ENOTBLK, "'%s' is not a block device", path);
	info.path = strdup(path);
	if (!info.path)
		return -ENOMEM;
	r = probe_block(&info, &st, false, false, 0, &fd, &p);
	safe_close(fd);
	if (r == -EPERM || r == -EACCES || (r < 0 && p.open_error)) {
		p.refusal = strdup(pf_error_message(r));
		pf_error_clear();
		if (!p.refusal)
			r = -ENOMEM;
		else
			r = 0;
	}
	if (r < 0 || !info.name) {
		pf_target_probe_done(&p);
		return r < 0 ? r : pf_error_set(-ENODEV, "'%s' has no entry in sysfs", path);
	}
	p.info = info;
	info = (PfTargetInfo){ 0 };
	*ret = p;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int pf_target_list_disks(char ***ret_paths)
{
	_cleanup_(freep) char *dir = NULL;
	_cleanup_(closedirp) DIR *d = NULL;
	char **paths = NULL;
	struct dirent *de;
	size_t n = 0;

	if (asprintf(&dir, "%s/block", sysfs_root()) < 0)
		return -ENOMEM;
	d = opendir(dir);
	if (!d)
		return pf_error_set(-errno, "'%s': %m", dir);
	while ((de = readdir(d))) {
		_cleanup_(freep) char *sub = NULL, *real = NULL, *size = NULL;
		char **more;
		uint64_t sectors;

		if (de->d_name[0] == '.')
			continue;
		if (asprintf(&sub, "%s/%s", dir, de->d_name) < 0)
			goto nomem;
		real = realpath(sub, NULL);
		if (!real)
			continue;
		if (strstr(real, "/devices/virtual/") && !startswith(de->d_name, "loop"))
			continue;
		size = read_value(sub, "size");
		if (!size || pf_parse_u64(size, &sectors) < 0 || sectors == 0)
			continue; /* an empty reader, a detached loop device */
		if (n >= MAX_PARTITIONS)
			break;
		more = reallocarray(paths, n + 1, sizeof(char *));
		if (!more)
			goto nomem;
		paths = more;
		if (asprintf(&paths[n], "/dev/%s", de->d_name) < 0)
			goto nomem;
		n++;
	}
	if (n > 0)
		qsort(paths, n, sizeof(char *), cmp_str);
	*ret_paths = paths;
	return (int)n;
nomem:
	for (size_t i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return -ENOMEM;
}
