/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <blkid.h>
#include <errno.h>
#include <inttypes.h>
#include <libfdisk.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "disk/ptable.h"
#include "util/error.h"
#include "util/strutil.h"

static void partition_done(PfPartition *p)
{
	free(p->type);
	free(p->type_name);
	free(p->fstype);
	free(p->label);
	free(p->uuid);
	free(p->partuuid);
}

PfPtable *pf_ptable_free(PfPtable *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_parts; i++)
		partition_done(&t->parts[i]);
	free(t->parts);
	free(t->label_type);
	free(t->id);
	free(t);
	return NULL;
}

static int cmp_start(const void *a, const void *b)
{
	const PfPartition *x = *(const PfPartition *const *)a, *y = *(const PfPartition *const *)b;

	if (x->start_bytes != y->start_bytes)
		return x->start_bytes < y->start_bytes ? -1 : 1;
	return 0;
}

int pf_ptable_validate(const PfPartition *parts, size_t n, uint64_t image_bytes)
{
	_cleanup_(freep) const PfPartition **sorted = NULL;

	for (size_t i = 0; i < n; i++) {
		const PfPartition *p = &parts[i];
		uint64_t end;

		if (p->size_bytes == 0)
			return pf_error_set(-EINVAL, "partition %u is empty", p->number);
		if (ADD_OVERFLOW(p->start_bytes, p->size_bytes, &end))
			return pf_error_set(-EINVAL,
					    "partition %u (start byte %" PRIu64 ", %" PRIu64
					    " bytes) extends past the end of any possible image: "
					    "its table is corrupt",
					    p->number, p->start_bytes, p->size_bytes);
		if (end > image_bytes)
			return pf_error_set(-EINVAL,
					    "partition %u (bytes %" PRIu64 "..%" PRIu64
					    ") extends past the end of the image (%" PRIu64
					    " bytes): the image is truncated or its table is wrong",
					    p->number, p->start_bytes, end, image_bytes);
	}

	if (n < 2)
		return 0;
	sorted = malloc(n * sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		sorted[i] = &parts[i];
	qsort(sorted, n, sizeof(*sorted), cmp_start);
	for (size_t i = 1; i < n; i++) {
		const PfPartition *a = sorted[i - 1], *b = sorted[i];

		if (a->start_bytes + a->size_bytes > b->start_bytes)
			return pf_error_set(-EINVAL,
					    "partitions %u (bytes %" PRIu64 "..%" PRIu64
					    ") and %u (bytes %" PRIu64 "..%" PRIu64 ") overlap",
					    a->number, a->start_bytes,
					    a->start_bytes + a->size_bytes, b->number,
					    b->start_bytes, b->start_bytes + b->size_bytes);
	}
	return 0;
}

static char *probe_value(blkid_probe pr, const char *name)
{
	const char *v = NULL;

	if (blkid_probe_lookup_value(pr, name, &v, NULL) < 0 || !v || !*v)
		return NULL;
	return strdup(v);
}

/* Fills fstype/label/uuid of p; a partition with no recognisable filesystem keeps NULLs. */
static int probe_fs(int fd, PfPartition *p)
{
	blkid_probe pr = blkid_new_probe();
	int r;

	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, (blkid_loff_t)p->start_bytes,
				   (blkid_loff_t)p->size_bytes) < 0) {
		blkid_free_probe(pr);
		return pf_error_set(-EIO, "cannot probe partition %u", p->number);
	}
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_LABEL | BLKID_SUBLKS_UUID |
						      BLKID_SUBLKS_TYPE);
	blkid_probe_enable_partitions(pr, 0);
	r = blkid_do_safeprobe(pr);
	if (r == 0) {
		p->fstype = probe_value(pr, "TYPE");
		p->label = probe_value(pr, "LABEL");
		p->uuid = probe_value(pr, "UUID");
	}
	/* r == 1: nothing found; r == -2: ambiguous (leave unknown); r == -1: I/O error. */
	blkid_free_probe(pr);
	return r == -1 ? pf_error_set(-EIO, "cannot probe partition %u: read error", p->number) : 0;
}

/*
 * The byte range of a partition from its sectors. The table's fields are up to 64 bits
 * wide (GPT), so the product can wrap: an entry at LBA 2^55 + S would otherwise be taken
 * to start at byte S * 512, inside the image, where sfdisk and the kernel put it far past
 * its end. Such an entry is refused here; pf_ptable_validate() checks the end.
 */
static int partition_bytes(struct fdisk_partition *pa, uint64_t sector_bytes, PfPartition *p)
{
	uint64_t start = (uint64_t)fdisk_partition_get_start(pa);
	uint64_t size = (uint64_t)fdisk_partition_get_size(pa);

	if (MUL_OVERFLOW(start, sector_bytes, &p->start_bytes) ||
	    MUL_OVERFLOW(size, sector_bytes, &p->size_bytes))
		return pf_error_set(-EINVAL,
				    "partition %u (start sector %" PRIu64 ", %" PRIu64
				    " sectors of %" PRIu64
				    " bytes) lies beyond any possible image: its table is corrupt",
				    p->number, start, size, sector_bytes);
	return 0;
}

static int type_string(struct fdisk_context *cxt, struct fdisk_partition *pa, PfPartition *p)
{
	struct fdisk_parttype *t = fdisk_partition_get_type(pa);

	if (!t)
		return 0;
	if (fdisk_is_label(cxt, DOS)) {
		if (asprintf(&p->type, "%x", fdisk_parttype_get_code(t)) < 0)
			return -ENOMEM;
	} else if (fdisk_parttype_get_string(t)) {
		p->type = strdup(fdisk_parttype_get_string(t));
		if (!p->type)
			return -ENOMEM;
		for (char *c = p->type; *c; c++)
			if (*c >= 'a' && *c <= 'f')
				*c = (char)(*c - 'a' + 'A');
	}
	if (fdisk_parttype_get_name(t))
		p->type_name = strdup(fdisk_parttype_get_name(t));
	return 0;
}

/* Opens the table of the image on fd through libfdisk: MBR or GPT, else an error. Fills the
 * table's type, id and sector size. */
static int label_open(int fd, PfPtable *t, struct fdisk_context **ret_cxt)
{
	struct fdisk_context *cxt;
	char path[64];
	int r;

	cxt = fdisk_new_context();
	if (!cxt)
		return -ENOMEM;
	*ret_cxt = cxt;
	/* libfdisk opens the path itself, read-only; /proc/self/fd keeps it the same file. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = fdisk_assign_device(cxt, path, 1);
	if (r < 0)
		return pf_error_set(r, "cannot read partition table: %s", strerror(-r));
	if (!fdisk_has_label(cxt))
		return pf_error_set(-EINVAL, "no partition table (MBR or GPT) found");

	t->label_type = strdup(fdisk_label_get_name(fdisk_get_label(cxt, NULL)));
	if (!t->label_type)
		return -ENOMEM;
	if (!fdisk_is_label(cxt, DOS) && !fdisk_is_label(cxt, GPT))
		return pf_error_set(-EPROTONOSUPPORT, "unsupported partition table type '%s'",
				    t->label_type);
	fdisk_get_disklabel_id(cxt, &t->id);
	t->sector_bytes = fdisk_get_sector_size(cxt);
	return 0;
}

/* The PARTUUID: the GPT entry's, or for MBR the kernel's and blkid's "<disk id>-<number>";
 * lower case. */
static void partition_uuid(struct fdisk_context *cxt, struct fdisk_partition *pa, const PfPtable *t,
			   PfPartition *p)
{
	if (fdisk_is_label(cxt, GPT)) {
		if (fdisk_partition_get_uuid(pa))
			p->partuuid = strdup(fdisk_partition_get_uuid(pa));
	} else if (t->id && startswith(t->id, "0x")) {
		/* The kernel's and blkid's PARTUUID of an MBR partition. */
		if (asprintf(&p->partuuid, "%s-%02x", t->id + 2, p->number) < 0)
			p->partuuid = NULL;
	}
	if (p->partuuid)
		for (char *c = p->partuuid; *c; c++)
			if (*c >= 'A' && *c <= 'F')
				*c = (char)(*c - 'A' + 'a');
}

/* Adds one table entry to t->parts: number, bytes, flags, type, PARTUUID. */
static int partition_add(struct fdisk_context *cxt, struct fdisk_partition *pa, PfPtable *t)
{
	PfPartition *p = &t->parts[t->n_parts++];
	int r;

	p->number = (unsigned)fdisk_partition_get_partno(pa) + 1;
	r = partition_bytes(pa, t->sector_bytes, p);
	if (r < 0)
		return r;
	p->bootable = fdisk_partition_is_bootable(pa);
	r = type_string(cxt, pa, p);
	if (r < 0)
		return r;
	/* libfdisk falls back to the protective MBR when the GPT is unreadable, e.g.
	 * when the image is cut short; that MBR describes no real partition. */
	if (fdisk_is_label(cxt, DOS) && p->type && streq(p->type, "ee"))
		return pf_error_set(-EINVAL,
				    "partition %u is a GPT protective entry (type ee), but no "
				    "valid GPT was found: the image is truncated or its GPT "
				    "is corrupt",
				    p->number);
	partition_uuid(cxt, pa, t, p);
	return 0;
}

/* Reads every partition with a start and a size into t->parts; the extended partition only
 * contains the logical ones and is left out. */
static int partitions_read(struct fdisk_context *cxt, PfPtable *t)
{
	struct fdisk_table *tb = NULL;
	struct fdisk_iter *itr = NULL;
	struct fdisk_partition *pa;
	int r;

	r = fdisk_get_partitions(cxt, &tb);
	if (r < 0) {
		r = pf_error_set(r, "cannot read partitions: %s", strerror(-r));
		goto out;
	}
	itr = fdisk_new_iter(FDISK_ITER_FORWARD);
	if (!itr) {
		r = -ENOMEM;
		goto out;
	}
	t->parts = calloc((size_t)fdisk_table_get_nents(tb) + 1, sizeof(PfPartition));
	if (!t->parts) {
		r = -ENOMEM;
		goto out;
	}
	r = 0;
	while (r == 0 && fdisk_table_next_partition(tb, itr, &pa) == 0) {
		/* The extended partition only contains the logical ones. */
		if (fdisk_partition_is_container(pa) || !fdisk_partition_has_start(pa) ||
		    !fdisk_partition_has_size(pa))
			continue;
		r = partition_add(cxt, pa, t);
	}
out:
	fdisk_free_iter(itr);
	fdisk_unref_table(tb);
	return r;
}

int pf_ptable_read(int fd, uint64_t image_bytes, PfPtable **ret)
{
	_cleanup_(pf_ptable_freep) PfPtable *t = NULL;
	struct fdisk_context *cxt = NULL;
	int r;

	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->image_bytes = image_bytes;

	r = label_open(fd, t, &cxt);
	if (r >= 0)
		r = partitions_read(cxt, t);
	if (r >= 0)
		r = pf_ptable_validate(t->parts, t->n_parts, image_bytes);
	for (size_t i = 0; r >= 0 && i < t->n_parts; i++)
		r = probe_fs(fd, &t->parts[i]);
	fdisk_unref_context(cxt);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(t);
	return 0;
}

const PfPartition *pf_ptable_find(const PfPtable *t, const char *spec)
{
	const PfPartition *found = NULL;
	uint64_t num;
	unsigned n_ci = 0;
	char labels[512] = "";

	if (pf_parse_u64(spec, &num) >= 0) {
		for (size_t i = 0; i < t->n_parts; i++)
			if (t->parts[i].number == num)
				return &t->parts[i];
	}
	for (size_t i = 0; i < t->n_parts; i++)
		if (t->parts[i].label && streq(t->parts[i].label, spec))
			return &t->parts[i];
	for (size_t i = 0; i < t->n_parts; i++)
		if (t->parts[i].label && strcasecmp(t->parts[i].label, spec) == 0) {
			found = &t->parts[i];
			n_ci++;
		}
	if (n_ci == 1)
		return found;

	for (size_t i = 0; i < t->n_parts; i++) {
		size_t l = strlen(labels);
		snprintf(labels + l, sizeof(labels) - l, "%s%u%s%s%s", l ? ", " : "",
			 t->parts[i].number, t->parts[i].label ? " ('" : "",
			 t->parts[i].label ? t->parts[i].label : "", t->parts[i].label ? "')" : "");
	}
	if (n_ci > 1)
		pf_error_set(-ENOENT,
			     "partition label '%s' is ambiguous: it matches %u labels when case "
			     "is ignored (the image has %s)",
			     spec, n_ci, labels);
	else
		pf_error_set(-ENOENT, "no partition '%s' (the image has %s)", spec,
			     t->n_parts ? labels : "none");
	return NULL;
}
