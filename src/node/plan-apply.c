/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "node/plan.h"
#include "util/error.h"
#include "util/strutil.h"

int pf_plan_op_resolve(PfTree *tree, const PfPtable *t, const PfOp *op, PfFs **ret_fs,
		       char **ret_inner)
{
	_cleanup_(freep) char *inner = NULL;
	const PfPartition *part = NULL, *where;
	int r;

	if (op->part) {
		char num[16];

		snprintf(num, sizeof(num), "%u", op->part);
		part = pf_ptable_find(t, num);
		if (!part)
			return -ENOENT;
	}
	r = pf_tree_resolve(tree, part, op->path, op->kind == PF_OP_WRITE, &where, &inner);
	if (r < 0)
		return r;
	r = pf_tree_fs(tree, where, ret_fs);
	if (r < 0)
		return r;
	*ret_inner = TAKE_PTR(inner);
	return 0;
}

static int apply_one(PfTree *tree, const PfPtable *t, const PfOp *op, int64_t now)
{
	_cleanup_(freep) char *inner = NULL;
	PfAttr attr = { .mode = op->mode, .uid = op->uid, .gid = op->gid, .mtime = now };
	PfAttr dir_attr = { .mode = 0755, .mtime = now };
	PfStat st;
	char *slash;
	PfFs *fs;
	int r;

	r = pf_plan_op_resolve(tree, t, op, &fs, &inner);
	if (r < 0)
		return r;

	/* Parents are made as root-owned 0755 directories, as a package would. */
	slash = strrchr(inner, '/');
	if (slash && slash != inner && op->kind != PF_OP_REMOVE) {
		*slash = 0;
		r = pf_fs_mkdir_p(fs, inner, &dir_attr);
		*slash = '/';
		if (r < 0)
			return r;
	}

	switch (op->kind) {
	case PF_OP_WRITE:
		return pf_fs_write_file(fs, inner, op->data, op->size, &attr);
	case PF_OP_MKDIR:
		r = pf_fs_stat(fs, inner, &st);
		if (r >= 0)
			return S_ISDIR(st.mode)
				       ? 0
				       : pf_error_set(-ENOTDIR, "exists and is not a directory");
		return r == -ENOENT ? pf_fs_mkdir(fs, inner, &attr) : r;
	case PF_OP_SYMLINK:
		r = pf_fs_stat(fs, inner, &st);
		if (r >= 0)
			r = pf_fs_remove(fs, inner);
		else if (r == -ENOENT)
			r = 0;
		pf_error_clear();
		return r < 0 ? r : pf_fs_symlink(fs, inner, op->target, &attr);
	case PF_OP_REMOVE:
		r = pf_fs_remove(fs, inner);
		if (r == -ENOENT) {
			pf_error_clear();
			return 0;
		}
		return r;
	}
	return -EINVAL;
}

int pf_plan_apply(PfTree *tree, const PfPtable *t, const PfPlan *p, int64_t now)
{
	for (size_t i = 0; i < p->n_ops; i++) {
		const PfOp *op = &p->ops[i];
		int r = apply_one(tree, t, op, now);

		if (r < 0) {
			if (op->part)
				return pf_error_prefix(r, "%s partition %u:%s",
						       pf_op_kind_name(op->kind), op->part,
						       op->path);
			return pf_error_prefix(r, "%s %s", pf_op_kind_name(op->kind), op->path);
		}
	}
	return 0;
}
