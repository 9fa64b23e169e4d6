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
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "flash/ranges.h"
#include "flash/stream.h"
#include "flash/target.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/strutil.h"

/* Zero detection in a file target: blocks of this size that are all zero become holes. */
#define HOLE_BYTES 4096u
/*
 * The mark a finished file target carries ("SIZE MTIME_SEC.MTIME_NSEC", as it was when
 * committed): a later run may replace a file so marked and unchanged since, and nothing else
 * unless forced. A filesystem without user extended attributes keeps no mark.
 */
#define OUTPUT_XATTR "user.piflash.output"
/* Bounds on what is read from sysfs and /proc. */
#define MAX_PARTITIONS 256u
#define SYSFS_VALUE_MAX 4096u

static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}

struct PfTarget {
	PfTargetInfo info;
	int fd;
	char *tmp;	   /* a file target's temporary name until committed */
	PfExtents written; /* already holding the base image's bytes (pf_target_set_written()) */
};

typedef struct Sink {
	PfTarget *t;
	uint64_t written;
} Sink;

typedef struct Source {
	PfOverlay *ov;
} Source;

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

static void target_info_done(PfTargetInfo *i)
{
	free(i->path);
	free(i->name);
	free(i->disk);
	free(i->model);
	free(i->serial);
	*i = (PfTargetInfo){ 0 };
}

PfTarget *pf_target_free(PfTarget *t)
{
	if (!t)
		return NULL;
	if (t->fd > STDERR_FILENO)
		close(t->fd);
	if (t->tmp)
		unlink(t->tmp);
	free(t->tmp);
	pf_extents_done(&t->written);
	target_info_done(&t->info);
	free(t);
	return NULL;
}

const PfTargetInfo *pf_target_info(const PfTarget *t)
{
	return &t->info;
}

int pf_target_fd(const PfTarget *t)
{
	return t->fd;
}

uint64_t pf_target_align(const PfTarget *t)
{
	if (t->info.kind == PF_TARGET_BLOCK)
		return MAX(t->info.block_bytes, (uint64_t)512);
	return 4096;
}

static bool same_file(const struct stat *a, int fd)
{
	struct stat b;

	return fd >= 0 && fstat(fd, &b) == 0 && a->st_dev == b.st_dev && a->st_ino == b.st_ino;
}

static void output_mark_format(const struct stat *st, char *buf, size_t n)
{
	snprintf(buf, n, "%lld %lld.%09ld", (long long)st->st_size, (long long)st->st_mtim.tv_sec,
		 (long)st->st_mtim.tv_nsec);
}

/* True if path (whose stat is st) is an image piflash wrote, unchanged since. */
static bool output_marked(const char *path, const struct stat *st)
{
	char want[96], have[96];
	ssize_t n;

	n = getxattr(path, OUTPUT_XATTR, have, sizeof(have) - 1);
	if (n <= 0)
		return false;
	have[n] = 0;
	output_mark_format(st, want, sizeof(want));
	return streq(have, want);
}

/* Names that say "compressed": piflash writes raw images only (batch writes compressed
 * artifacts), so such a name is a mistake — most often IMAGE and TARGET swapped. */
static const char *compressed_suffix(const char *path)
{
	static const char *const suffixes[] = { ".xz", ".gz",  ".zst",	".bz2", ".zip",
						".7z", ".lz4", ".lzma", ".tar" };
	size_t n = strlen(path);

	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
		size_t k = strlen(suffixes[i]);

		if (n > k && strcasecmp(path + n - k, suffixes[i]) == 0)
			return suffixes[i];
	}
	return NULL;
}

/* The checks of a file target that is to be written (or replaced). */
static int check_file_target(const char *path, const struct stat *st, bool exists, bool force)
{
	const char *suffix = compressed_suffix(path);

	if (suffix)
		return pf_error_set(-EPERM,
				    "the name says compressed ('%s'), but piflash writes a raw "
				    "image; name it .img, or compress the stream: piflash IMAGE - "
				    "| zstd -o OUT.img.zst ('piflash batch --format img.zst' "
				    "writes compressed images)",
				    suffix);
	if (exists && !force && !output_marked(path, st))
		return pf_error_set(-EPERM,
				    "exists and is not an image piflash wrote (or was changed "
				    "since); add --force to replace it");
	return 0;
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

/*
 * Fills the block device part of info from sysfs and the device, and (unless read_only)
 * runs the safety checks. With probe (pf_target_probe()), also collects the mount points,
 * takes the size from sysfs when the device cannot be opened, and opens the device only
 * read-only, to see whether anything holds it.
 */
static int probe_block(PfTarget *t, const struct stat *st, bool read_only, bool force,
		       uint64_t need, int *ret_fd, PfTargetProbe *probe)
{
	_cleanup_(freep) char *link = NULL, *dev_dir = NULL, *disk_dir = NULL;
	_cleanup_(closep) int fd = -1;
	_cleanup_(devs_done) Devs devs = { 0 };
	PfTargetInfo *info = &t->info;
	dev_t disk_dev = st->st_rdev;
	uint64_t size = 0;
	int flags, in_use = 0, ssz = 512;
	char *slash;

	if (asprintf(&link, "%s/dev/block/%u:%u", sysfs_root(), major(st->st_rdev),
		     minor(st->st_rdev)) < 0)
		return -ENOMEM;
	dev_dir = realpath(link, NULL);
	if (!dev_dir)
		return pf_error_set(-ENODEV, "'%s' has no entry in sysfs: %m", link);
	slash = strrchr(dev_dir, '/');
	info->name = strdup(slash + 1);
	if (!info->name)
		return -ENOMEM;

	{
		_cleanup_(freep) char *part = read_value(dev_dir, "partition");

		info->partition = part != NULL;
	}
	disk_dir = strdup(dev_dir);
	if (!disk_dir)
		return -ENOMEM;
	if (info->partition) {
		_cleanup_(freep) char *dd = NULL;

		*strrchr(disk_dir, '/') = 0;
		dd = read_value(disk_dir, "dev");
		if (parse_devno(dd, &disk_dev) < 0)
			return pf_error_set(-ENODEV, "cannot find the disk of partition '%s'",
					    info->name);
	}
	info->disk = strdup(strrchr(disk_dir, '/') + 1);
	if (!info->disk)
		return -ENOMEM;

	if (startswith(info->disk, "loop"))
		info->transport = "loop";
	else if (strstr(disk_dir, "/usb"))
		info->transport = "usb";
	else if (value_is(disk_dir, "device/type", "SD"))
		info->transport = "sd";
	info->removable = info->transport || value_is(disk_dir, "removable", "1");
	info->model = describe_model(disk_dir);
	info->serial = read_value(disk_dir, "device/serial");
	if (!info->serial)
		info->serial = udev_serial(disk_dev);

	/* The safety checks, most serious first, before the device is even opened: the
	 * system disk is refused as such, whatever opening it would say. A probe goes on to
	 * learn the size. */
	if (!read_only) {
		in_use = check_in_use(disk_dir, info->disk, disk_dev, &devs, probe);
		if (in_use < 0 && (!probe || in_use != -EPERM))
			return in_use;
	}

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
	fd = safe_close(fd);

	if (read_only) {
		fd = open(info->path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return open_error();
		*ret_fd = TAKE_FD(fd);
		return 0;
	}
	if (in_use < 0)
		return in_use;

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
	if (size < need) {
		char a[32], b[32];

		return pf_error_set(-EPERM,
				    "is too small: %s (%" PRIu64
				    " bytes), the image needs %s (%" PRIu64 " bytes)",
				    pf_format_bytes(a, sizeof(a), size), size,
				    pf_format_bytes(b, sizeof(b), need), need);
	}

	if (probe && probe->open_error)
		return pf_error_set(probe->open_error == -EPERM ? -EACCES : probe->open_error,
				    "cannot open: %s", strerror(-probe->open_error));

	/* O_EXCL fails while anything (a mount, another writer, device-mapper) holds it. */
	flags = (probe ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_EXCL;
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
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int pf_target_open(const char *path, const PfTargetOptions *o, PfTarget **ret)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	struct stat st;
	bool exists;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = -1;
	t->info.path = strdup(path);
	if (!t->info.path)
		return -ENOMEM;

	if (streq(path, "-")) {
		t->info.kind = PF_TARGET_STDOUT;
		if (!o->read_only && isatty(STDOUT_FILENO))
			return pf_error_set(-EPERM, "standard output is a terminal; redirect it "
						    "to a file or a pipe");
		t->fd = STDOUT_FILENO;
		*ret = TAKE_PTR(t);
		return 0;
	}

	exists = stat(path, &st) == 0;
	if (!exists) {
		if (errno != ENOENT || o->read_only)
			return pf_error_set(-errno, "cannot stat: %m");
		/* A card that is not there is not a new image file in /dev (RAM, on most
		 * systems): the user typed the wrong name or the card is not plugged in. */
		if (startswith(path, "/dev/"))
			return pf_error_set(-EPERM, "no such device; is the card plugged in?");
		st.st_mode = S_IFREG; /* a new file */
		st.st_dev = 0;
		st.st_ino = 0;
	} else {
		if (same_file(&st, o->input_fd))
			return pf_error_set(-EPERM, "is the input image itself; piflash never "
						    "writes its input");
		if (same_file(&st, o->base_fd))
			return pf_error_set(-EPERM, "is the input image's cache file");
	}

	if (S_ISBLK(st.st_mode)) {
		t->info.kind = PF_TARGET_BLOCK;
		r = probe_block(t, &st, o->read_only, o->force, o->need_bytes, &t->fd, NULL);
		if (r < 0)
			return r;
		*ret = TAKE_PTR(t);
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return pf_error_set(-EISDIR, "is a directory");
	if (!S_ISREG(st.st_mode))
		return pf_error_set(-ENOTSUP,
				    "is neither a regular file nor a block device nor '-'");

	t->info.kind = PF_TARGET_FILE;
	if (o->read_only) {
		t->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (t->fd < 0)
			return pf_error_set(-errno, "cannot open: %m");
		*ret = TAKE_PTR(t);
		return 0;
	}
	r = check_file_target(path, &st, exists, o->force);
	if (r < 0)
		return r;
	if (asprintf(&t->tmp, "%s.piflash-partial", path) < 0) {
		t->tmp = NULL;
		return -ENOMEM;
	}
	/* 0600: the image may hold private host keys and password hashes. */
	t->fd = open(t->tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (t->fd < 0) {
		r = pf_error_set(-errno, "cannot create '%s': %m", t->tmp);
		free(TAKE_PTR(t->tmp));
		return r;
	}
	*ret = TAKE_PTR(t);
	return 0;
}

/* ---- listing the disks ---------------------------------------------------------------- */

void pf_target_probe_done(PfTargetProbe *p)
{
	target_info_done(&p->info);
	free(p->refusal);
	for (size_t i = 0; i < p->n_mounts; i++)
		free(p->mounts[i]);
	free(p->mounts);
	*p = (PfTargetProbe){ 0 };
}

int pf_target_probe(const char *path, PfTargetProbe *ret)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	PfTargetProbe p = { 0 };
	struct stat st;
	int fd = -1, r;

	if (stat(path, &st) < 0)
		return pf_error_set(-errno, "'%s': %m", path);
	if (!S_ISBLK(st.st_mode))
		return pf_error_set(-ENOTBLK, "'%s' is not a block device", path);
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = -1;
	t->info.kind = PF_TARGET_BLOCK;
	t->info.path = strdup(path);
	if (!t->info.path)
		return -ENOMEM;
	r = probe_block(t, &st, false, false, 0, &fd, &p);
	safe_close(fd);
	if (r == -EPERM || r == -EACCES || (r < 0 && p.open_error)) {
		p.refusal = strdup(pf_error_message(r));
		pf_error_clear();
		if (!p.refusal)
			r = -ENOMEM;
		else
			r = 0;
	}
	if (r < 0 || !t->info.name) {
		pf_target_probe_done(&p);
		return r < 0 ? r : pf_error_set(-ENODEV, "'%s' has no entry in sysfs", path);
	}
	p.info = t->info;
	t->info = (PfTargetInfo){ 0 };
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

/* ---- writing -------------------------------------------------------------------------- */

static int sink_write(void *userdata, uint64_t off, const uint8_t *buf, size_t len)
{
	Sink *s = userdata;
	int r;

	switch (s->t->info.kind) {
	case PF_TARGET_STDOUT:
		r = pf_write_all(s->t->fd, buf, len, off);
		break;
	case PF_TARGET_BLOCK:
		r = pf_pwrite_all(s->t->fd, buf, len, off);
		break;
	default:
		/* Runs of non-zero blocks are written; zero blocks stay holes. */
		return pf_pwrite_sparse(s->t->fd, buf, len, off, HOLE_BYTES, &s->written);
	}
	if (r >= 0)
		s->written += len;
	return r;
}

/* Reads the image; past its end (a block rounded up to the device's) reads zeros. */
static int source_read(void *userdata, uint64_t off, uint8_t *buf, size_t len)
{
	Source *src = userdata;
	uint64_t size = pf_overlay_size(src->ov);
	size_t n = off >= size ? 0 : (size_t)MIN((uint64_t)len, size - off);

	if (n < len)
		memset(buf + n, 0, len - n);
	return n ? pf_overlay_read(src->ov, off, buf, n) : 0;
}

static int flush(PfTarget *t)
{
	if (fdatasync(t->fd) < 0)
		return pf_error_set(-errno, "cannot flush: %m");
	return 0;
}

/* Writes each range of e with zeros (table zeroed first) or from ov (written last). */
static int write_small(PfTarget *t, PfOverlay *ov, PfExtents *e, bool zero)
{
	_cleanup_(freep) uint8_t *buf = pf_stream_alloc(PF_STREAM_CHUNK_BYTES);
	Source src = { .ov = ov };
	int r;

	if (!buf)
		return -ENOMEM;
	if (zero)
		memset(buf, 0, PF_STREAM_CHUNK_BYTES);
	for (size_t i = 0; i < e->n; i++) {
		uint64_t pos = e->items[i].start_bytes;
		uint64_t end = pos + e->items[i].length_bytes;

		while (pos < end) {
			size_t n = (size_t)MIN((uint64_t)PF_STREAM_CHUNK_BYTES, end - pos);

			if (!zero) {
				r = source_read(&src, pos, buf, n);
				if (r < 0)
					return r;
			}
			r = pf_pwrite_all(t->fd, buf, n, pos);
			if (r < 0)
				return r;
			pos += n;
		}
	}
	return 0;
}

/*
 * Takes out of body what the card already holds (written while the image was decoded,
 * cmd/cold.c): the base image's bytes, which stay right where the overlay did not change
 * them. What it changed is written again, in the card's whole blocks.
 */
static int skip_written(PfTarget *t, PfOverlay *ov, PfExtents *body)
{
	_cleanup_(pf_extents_done) PfExtents changed = { 0 }, keep = { 0 }, rest = { 0 };
	const PfExtents *c = pf_overlay_changed(ov);
	uint64_t align = pf_target_align(t);
	int r;

	if (t->written.n == 0)
		return 0;
	r = pf_extents_add_all(&changed, c, 0);
	if (r >= 0)
		r = pf_ranges_align(&changed, align, ALIGN_UP(pf_overlay_size(ov), align));
	if (r >= 0)
		r = pf_ranges_subtract(&t->written, &changed, &keep);
	if (r >= 0)
		r = pf_ranges_subtract(body, &keep, &rest);
	if (r < 0)
		return r;
	pf_extents_done(body);
	*body = rest;
	rest = (PfExtents){ 0 };
	return 0;
}

static int discard(PfTarget *t, PfExtents *ranges, PfWriteResult *res)
{
	_cleanup_(pf_extents_done) PfExtents free_space = { 0 };
	uint64_t align = pf_target_align(t);
	int r;

	r = pf_ranges_complement(ranges, t->info.size_bytes / align * align, &free_space);
	if (r < 0)
		return r;
	for (size_t i = 0; i < free_space.n; i++) {
		uint64_t range[2] = { free_space.items[i].start_bytes,
				      free_space.items[i].length_bytes };

		if (ioctl(t->fd, BLKDISCARD, range) < 0) {
			if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL) {
				res->discard_unsupported = true;
				return 0;
			}
			return pf_error_set(-errno, "discard at byte offset %" PRIu64 " failed: %m",
					    range[0]);
		}
		res->discarded_bytes += range[1];
	}
	return 0;
}

typedef struct Phase {
	const PfWriteOptions *o;
	const char *name;
} Phase;

static void phase_progress(void *userdata, uint64_t done, uint64_t total)
{
	const Phase *p = userdata;

	p->o->progress(p->o->progress_data, p->name, done, total);
}

int pf_target_write(PfTarget *t, PfOverlay *ov, PfExtents *ranges, PfExtents *table,
		    const PfWriteOptions *opts, PfWriteResult *ret)
{
	_cleanup_(pf_extents_done) PfExtents body = { 0 }, whole = { 0 };
	Sink sink = { .t = t };
	Source src = { .ov = ov };
	Phase phase = { .o = opts, .name = "write" };
	PfStream s = {
		.read = source_read,
		.read_data = &src,
		.write = sink_write,
		.write_data = &sink,
		.progress = opts->progress ? phase_progress : NULL,
		.progress_data = &phase,
		.cancel = opts->cancel,
	};
	int r;

	*ret = (PfWriteResult){ .total_bytes = pf_extents_total(ranges) };

	switch (t->info.kind) {
	case PF_TARGET_STDOUT:
		/* A stream has no holes and no going back: every byte, in order. */
		r = pf_extents_add(&whole, 0, pf_overlay_size(ov));
		if (r < 0)
			return r;
		ret->total_bytes = pf_overlay_size(ov);
		s.ranges = &whole;
		r = pf_stream_run(&s, &ret->done_bytes);
		break;

	case PF_TARGET_FILE:
		s.ranges = ranges;
		r = pf_stream_run(&s, &ret->done_bytes);
		if (r >= 0 && ftruncate(t->fd, (off_t)pf_overlay_size(ov)) < 0)
			r = pf_error_set(-errno, "cannot set the size: %m");
		if (r >= 0)
			r = flush(t);
		break;

	case PF_TARGET_BLOCK:
		pf_extents_normalize(table);
		r = write_small(t, ov, table, true);
		if (r >= 0)
			r = flush(t);
		if (r < 0)
			return r; /* the table may be half zeroed: it is no valid table either */
		ret->table_zeroed = true;
		if (opts->discard) {
			r = discard(t, ranges, ret);
			if (r < 0)
				return r;
		}
		r = pf_ranges_subtract(ranges, table, &body);
		if (r < 0)
			return r;
		r = skip_written(t, ov, &body);
		if (r < 0)
			return r;
		s.ranges = &body;
		r = pf_stream_run(&s, &ret->done_bytes);
		if (r >= 0)
			r = flush(t);
		if (r < 0)
			return r;
		/* Everything else is on the card: now, and only now, the table. */
		r = write_small(t, ov, table, false);
		if (r >= 0)
			r = flush(t);
		if (r >= 0) {
			/* The kernel sees the new partitions now (best effort: it refuses while
			 * something holds one of the old ones). */
			(void)ioctl(t->fd, BLKRRPART, 0);
			ret->table_zeroed = false;
			ret->done_bytes += pf_extents_total(table);
		}
		break;
	default:
		return -EINVAL;
	}
	ret->written_bytes = sink.written;
	if (t->info.kind == PF_TARGET_BLOCK && r >= 0)
		ret->written_bytes += pf_extents_total(table) + pf_extents_total(&t->written);
	return r;
}

int pf_target_set_written(PfTarget *t, PfExtents *written)
{
	if (t->info.kind != PF_TARGET_BLOCK)
		return -EINVAL;
	pf_extents_done(&t->written);
	return pf_extents_add_all(&t->written, written, 0);
}

int pf_target_zero(PfTarget *t, PfExtents *table)
{
	int r;

	if (t->info.kind != PF_TARGET_BLOCK)
		return 0;
	r = write_small(t, NULL, table, true);
	return r < 0 ? r : flush(t);
}

int pf_target_commit(PfTarget *t)
{
	struct stat st;
	char mark[96];

	if (t->info.kind != PF_TARGET_FILE || !t->tmp)
		return 0;
	/* Marked as piflash's, so that the next run may replace it; best effort. */
	if (fstat(t->fd, &st) == 0) {
		output_mark_format(&st, mark, sizeof(mark));
		(void)fsetxattr(t->fd, OUTPUT_XATTR, mark, strlen(mark), 0);
	}
	if (rename(t->tmp, t->info.path) < 0)
		return pf_error_set(-errno, "cannot rename '%s' to '%s': %m", t->tmp, t->info.path);
	free(TAKE_PTR(t->tmp));
	/* The rename itself is made durable too. */
	pf_fsync_dir_of(t->info.path);
	return 0;
}

int pf_target_write_file(const char *path, PfOverlay *ov, PfExtents *ranges,
			 uint64_t *ret_written_bytes)
{
	_cleanup_(pf_target_freep) PfTarget *t = NULL;
	PfTargetOptions o = { .input_fd = -1, .base_fd = -1 };
	PfWriteOptions wo = { 0 };
	PfWriteResult res;
	int r;

	r = pf_target_open(path, &o, &t);
	if (r < 0)
		return r;
	if (t->info.kind != PF_TARGET_FILE)
		return pf_error_set(-ENOTSUP, "is not a regular file");
	r = pf_target_write(t, ov, ranges, NULL, &wo, &res);
	if (r >= 0)
		r = pf_target_commit(t);
	if (r >= 0 && ret_written_bytes)
		*ret_written_bytes = res.written_bytes;
	return r;
}
