/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fs/fs-driver.h"
#include "util/error.h"

struct PfFs {
	const PfFsOps *ops;
	void *priv;
	PfVolume vol;
};

static const PfFsOps *const drivers[] = {
	&pf_fat_ops,
	&pf_ext_ops,
};

int pf_volume_read(const PfVolume *v, uint64_t offset_bytes, void *buf, size_t len)
{
	uint64_t end;

	if (ADD_OVERFLOW(offset_bytes, (uint64_t)len, &end) || end > v->size_bytes)
		return pf_error_set(-EIO,
				    "read of %zu bytes at offset %" PRIu64
				    " is past the end of the partition (%" PRIu64 " bytes)",
				    len, offset_bytes, v->size_bytes);
	return pf_overlay_read(v->overlay, v->start_bytes + offset_bytes, buf, len);
}

int pf_volume_write(const PfVolume *v, uint64_t offset_bytes, const void *buf, size_t len)
{
	uint64_t end;

	if (ADD_OVERFLOW(offset_bytes, (uint64_t)len, &end) || end > v->size_bytes)
		return pf_error_set(-EIO,
				    "write of %zu bytes at offset %" PRIu64
				    " is past the end of the partition (%" PRIu64 " bytes)",
				    len, offset_bytes, v->size_bytes);
	return pf_overlay_write(v->overlay, v->start_bytes + offset_bytes, buf, len);
}

void pf_dirents_free(PfDirent *d, size_t n)
{
	if (!d)
		return;
	for (size_t i = 0; i < n; i++)
		free(d[i].name);
	free(d);
}

int pf_path_validate(const char *path)
{
	size_t len;
	const char *p;

	if (!path || path[0] != '/')
		return pf_error_set(-EINVAL, "path '%s' is not absolute", path ? path : "");
	len = strlen(path);
	if (len > PF_PATH_MAX)
		return pf_error_set(-ENAMETOOLONG, "path is longer than %u bytes", PF_PATH_MAX);

	p = path + 1;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 0) {
			if (!slash || slash[1] == 0) /* a trailing '/' */
				break;
			return pf_error_set(-EINVAL, "path '%s' has an empty component", path);
		}
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return pf_error_set(-EINVAL, "path '%s' contains '.' or '..'", path);
		if (n > PF_NAME_MAX)
			return pf_error_set(-ENAMETOOLONG,
					    "a name in path '%s' is longer than %u bytes", path,
					    PF_NAME_MAX);
		if (!slash)
			break;
		p = slash + 1;
	}
	return 0;
}

int pf_fs_open(const PfVolume *vol, const char *blkid_type, PfFs **ret)
{
	PfFs *fs;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(drivers); i++) {
		if (!blkid_type || !drivers[i]->handles(blkid_type))
			continue;

		fs = calloc(1, sizeof(*fs));
		if (!fs)
			return -ENOMEM;
		fs->ops = drivers[i];
		fs->vol = *vol;
		r = fs->ops->open(&fs->vol, &fs->priv);
		if (r < 0) {
			free(fs);
			return r;
		}
		*ret = fs;
		return 0;
	}
	return pf_error_set(-EPROTONOSUPPORT, "no driver for filesystem type '%s'",
			    blkid_type ? blkid_type : "unknown");
}

PfFs *pf_fs_close(PfFs *fs)
{
	if (!fs)
		return NULL;
	fs->ops->close(fs->priv);
	free(fs);
	return NULL;
}

const char *pf_fs_driver_name(const PfFs *fs)
{
	return fs->ops->name;
}

int pf_fs_sync(PfFs *fs)
{
	return fs->ops->sync(fs->priv);
}

int pf_fs_stat(PfFs *fs, const char *path, PfStat *ret)
{
	int r = pf_path_validate(path);

	return r < 0 ? r : fs->ops->stat(fs->priv, path, ret);
}

int pf_fs_read_file(PfFs *fs, const char *path, size_t max_bytes, uint8_t **ret_data,
		    size_t *ret_size)
{
	int r = pf_path_validate(path);

	return r < 0 ? r : fs->ops->read_file(fs->priv, path, max_bytes, ret_data, ret_size);
}

int pf_fs_write_file(PfFs *fs, const char *path, const void *data, size_t size, const PfAttr *attr)
{
	int r = pf_path_validate(path);

	return r < 0 ? r : fs->ops->write_file(fs->priv, path, data, size, attr);
}

int pf_fs_mkdir(PfFs *fs, const char *path, const PfAttr *attr)
{
	int r = pf_path_validate(path);

	return r < 0 ? r : fs->ops->mkdir(fs->priv, path, attr);
}

int pf_fs_mkdir_p(PfFs *fs, const char *path, const PfAttr *attr)
{
	char buf[PF_PATH_MAX + 1];
	size_t len;
	int r;

	r = pf_path_validate(path);
	if (r < 0)
		return r;

	len = strlen(path);
	while (len > 1 && path[len - 1] == '/')
		len--;
	memcpy(buf, path, len);
	buf[len] = 0;

	/* Walks the components left to right, creating what is missing. */
	for (char *p = buf + 1;; p++) {
		char saved = *p;
		PfStat st;

		if (saved != '/' && saved != 0)
			continue;
		*p = 0;
		r = fs->ops->stat(fs->priv, buf, &st);
		if (r == -ENOENT)
			r = fs->ops->mkdir(fs->priv, buf, attr);
		else if (r >= 0 && !S_ISDIR(st.mode))
			r = pf_error_set(-ENOTDIR, "'%s' exists and is not a directory", buf);
		*p = saved;
		if (r < 0)
			return r;
		if (saved == 0)
			break;
	}
	return 0;
}

int pf_fs_symlink(PfFs *fs, const char *path, const char *target, const PfAttr *attr)
{
	int r = pf_path_validate(path);

	if (r < 0)
		return r;
	if (!target || !*target || strlen(target) > PF_PATH_MAX)
		return pf_error_set(-EINVAL, "bad symlink target for '%s'", path);
	return fs->ops->symlink(fs->priv, path, target, attr);
}

int pf_fs_readlink(PfFs *fs, const char *path, char **ret_target)
{
	int r = pf_path_validate(path);

	return r < 0 ? r : fs->ops->readlink(fs->priv, path, ret_target);
}

int pf_fs_remove(PfFs *fs, const char *path)
{
	int r = pf_path_validate(path);

	if (r < 0)
		return r;
	if (strspn(path, "/") == strlen(path))
		return pf_error_set(-EBUSY, "cannot remove the root directory");
	return fs->ops->remove(fs->priv, path);
}

int pf_fs_list(PfFs *fs, const char *path, PfDirent **ret, size_t *ret_n)
{
	int r = pf_path_validate(path);

	return r < 0 ? r : fs->ops->list(fs->priv, path, ret, ret_n);
}

int pf_fs_used(PfFs *fs, PfExtents *ret)
{
	return fs->ops->used(fs->priv, ret);
}
