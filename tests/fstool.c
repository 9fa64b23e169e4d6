/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fstool: a test-only program that runs one filesystem operation of piflash's fs layer on an
 * image file, so the integration tests can judge the result with fsck.fat, e2fsck, mtools
 * and debugfs. The image is opened read-only as the base of an overlay, exactly as piflash
 * does; only after the operation succeeded and the filesystem was synced are the overlay's
 * changed ranges written back into the file, in place.
 *
 *   fstool [--offset BYTES] [--size BYTES] IMAGE FSTYPE COMMAND ARGS...
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "disk/overlay.h"
#include "fs/fs.h"
#include "util/error.h"
#include "util/strutil.h"

static int fail(const char *cmd, const char *path, int r)
{
	fprintf(stderr, "fstool: %s %s: %s (%s)\n", cmd, path ? path : "", pf_error_message(r),
		strerrorname_np(-r) ? strerrorname_np(-r) : "?");
	return 1;
}

static void print_stat(const PfStat *st, const char *name)
{
	printf("%o %u %u %" PRIu64 " %" PRId64 " %s\n", (unsigned)st->mode, (unsigned)st->uid,
	       (unsigned)st->gid, st->size_bytes, st->mtime, name);
}

static int read_local(const char *path, uint8_t **ret, size_t *ret_size)
{
	FILE *f = fopen(path, "re");
	uint8_t *buf = NULL;
	size_t n = 0, alloc = 0;

	if (!f)
		return -errno;
	for (;;) {
		size_t k;

		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 65536;
			uint8_t *p = realloc(buf, alloc);
			if (!p) {
				free(buf);
				fclose(f);
				return -ENOMEM;
			}
			buf = p;
		}
		k = fread(buf + n, 1, alloc - n, f);
		n += k;
		if (k == 0)
			break;
	}
	fclose(f);
	*ret = buf;
	*ret_size = n;
	return 0;
}

static int write_back(PfOverlay *ov, const char *image)
{
	const PfExtents *ch = pf_overlay_changed(ov);
	_cleanup_(closep) int fd = -1;
	uint8_t *buf = NULL;

	fd = open(image, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < ch->n; i++) {
		uint64_t len = ch->items[i].length_bytes;
		uint8_t *p = realloc(buf, len);
		int r;

		if (!p) {
			free(buf);
			return -ENOMEM;
		}
		buf = p;
		r = pf_overlay_read(ov, ch->items[i].start_bytes, buf, len);
		if (r < 0 ||
		    pwrite(fd, buf, len, (off_t)ch->items[i].start_bytes) != (ssize_t)len) {
			free(buf);
			return r < 0 ? r : -EIO;
		}
	}
	free(buf);
	return fsync(fd) < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	_cleanup_(pf_overlay_freep) PfOverlay *ov = NULL;
	_cleanup_(pf_fs_closep) PfFs *fs = NULL;
	_cleanup_(closep) int fd = -1;
	uint64_t offset = 0, size = 0;
	const char *image, *fstype, *cmd, *path;
	PfAttr attr = { .mode = 0644 };
	struct stat st;
	bool writes = false;
	PfVolume vol;
	int i = 1, r;

	while (i + 1 < argc && argv[i][0] == '-' && argv[i][1] == '-') {
		if (streq(argv[i], "--offset") && pf_parse_u64(argv[i + 1], &offset) >= 0)
			i += 2;
		else if (streq(argv[i], "--size") && pf_parse_u64(argv[i + 1], &size) >= 0)
			i += 2;
		else
			break;
	}
	if (argc - i < 3) {
		fprintf(stderr,
			"usage: fstool [--offset B] [--size B] IMAGE FSTYPE COMMAND ARGS...\n");
		return 2;
	}
	image = argv[i];
	fstype = argv[i + 1];
	cmd = argv[i + 2];
	path = argc - i > 3 ? argv[i + 3] : "/";

	fd = open(image, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return fail("open", image, -errno);
	if (size == 0)
		size = (uint64_t)st.st_size - offset;

	r = pf_timestamp(&attr.mtime);
	if (r < 0)
		return fail("time", NULL, r);

	r = pf_overlay_new(fd, (uint64_t)st.st_size, &ov);
	if (r < 0)
		return fail("overlay", image, r);
	vol = (PfVolume){ .overlay = ov, .start_bytes = offset, .size_bytes = size };
	r = pf_fs_open(&vol, fstype, &fs);
	if (r < 0)
		return fail("open", image, r);

	if (streq(cmd, "write") && argc - i >= 5) {
		uint8_t *data = NULL;
		size_t n = 0;

		if (argc - i >= 8) {
			attr.mode = (mode_t)strtoul(argv[i + 5], NULL, 8);
			attr.uid = (uid_t)strtoul(argv[i + 6], NULL, 10);
			attr.gid = (gid_t)strtoul(argv[i + 7], NULL, 10);
		}
		r = read_local(argv[i + 4], &data, &n);
		if (r < 0)
			return fail(cmd, argv[i + 4], r);
		r = pf_fs_write_file(fs, path, data, n, &attr);
		free(data);
		writes = true;
	} else if (streq(cmd, "mkdir")) {
		attr.mode = 0755;
		r = pf_fs_mkdir(fs, path, &attr);
		writes = true;
	} else if (streq(cmd, "mkdir-p")) {
		attr.mode = 0755;
		r = pf_fs_mkdir_p(fs, path, &attr);
		writes = true;
	} else if (streq(cmd, "symlink") && argc - i >= 5) {
		attr.mode = 0777;
		r = pf_fs_symlink(fs, path, argv[i + 4], &attr);
		writes = true;
	} else if (streq(cmd, "rm")) {
		r = pf_fs_remove(fs, path);
		writes = true;
	} else if (streq(cmd, "readlink")) {
		char *t;

		r = pf_fs_readlink(fs, path, &t);
		if (r >= 0) {
			printf("%s\n", t);
			free(t);
		}
	} else if (streq(cmd, "cat")) {
		uint8_t *data;
		size_t n;

		r = pf_fs_read_file(fs, path, PF_FS_READ_MAX_BYTES, &data, &n);
		if (r >= 0) {
			fwrite(data, 1, n, stdout);
			free(data);
		}
	} else if (streq(cmd, "stat")) {
		PfStat s;

		r = pf_fs_stat(fs, path, &s);
		if (r >= 0)
			print_stat(&s, path);
	} else if (streq(cmd, "ls")) {
		PfDirent *d;
		size_t n;

		r = pf_fs_list(fs, path, &d, &n);
		if (r >= 0) {
			for (size_t k = 0; k < n; k++)
				print_stat(&d[k].st, d[k].name);
			pf_dirents_free(d, n);
		}
	} else if (streq(cmd, "used")) {
		PfExtents e = { 0 };

		r = pf_fs_used(fs, &e);
		if (r >= 0) {
			pf_extents_normalize(&e);
			for (size_t k = 0; k < e.n; k++)
				printf("%" PRIu64 " %" PRIu64 "\n", e.items[k].start_bytes,
				       e.items[k].length_bytes);
		}
		pf_extents_done(&e);
	} else {
		fprintf(stderr, "fstool: unknown command or missing arguments: %s\n", cmd);
		return 2;
	}
	if (r < 0)
		return fail(cmd, path, r);

	if (writes) {
		r = pf_fs_sync(fs);
		if (r < 0)
			return fail("sync", image, r);
		r = write_back(ov, image);
		if (r < 0)
			return fail("write-back", image, r);
	}
	return 0;
}
