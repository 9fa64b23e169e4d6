/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "node/plan.h"
#include "util/json.h"

static bool is_text(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (d[i] == 0 || (d[i] < 0x20 && d[i] != '\n' && d[i] != '\t' && d[i] != '\r'))
			return false;
	return true;
}

json_object *pf_plan_to_json(const PfPlan *p)
{
	json_object *root = json_object_new_object(), *ops = json_object_new_array(),
		    *notes = json_object_new_array();

	for (size_t i = 0; i < p->n_ops; i++) {
		const PfOp *op = &p->ops[i];
		json_object *o = json_object_new_object();
		char mode[8];

		json_object_object_add(o, "op", json_object_new_string(pf_op_kind_name(op->kind)));
		json_object_object_add(o, "partition",
				       op->part ? json_object_new_int((int)op->part) : NULL);
		json_object_object_add(o, "path", json_object_new_string(op->path));
		if (op->kind == PF_OP_WRITE || op->kind == PF_OP_MKDIR) {
			snprintf(mode, sizeof(mode), "%04o", (unsigned)op->mode);
			json_object_object_add(o, "mode", json_object_new_string(mode));
			json_object_object_add(o, "uid", json_object_new_int64(op->uid));
			json_object_object_add(o, "gid", json_object_new_int64(op->gid));
		}
		if (op->kind == PF_OP_WRITE) {
			json_object_object_add(o, "size", json_object_new_uint64(op->size));
			json_object_object_add(o, "secret", json_object_new_boolean(op->secret));
			if (!op->secret && is_text(op->data, op->size))
				json_object_object_add(
					o, "content",
					json_object_new_string_len((const char *)op->data,
								   (int)op->size));
		}
		if (op->kind == PF_OP_SYMLINK)
			json_object_object_add(o, "target", json_object_new_string(op->target));
		json_object_object_add(o, "why", json_object_new_string(op->why));
		json_object_array_add(ops, o);
	}
	for (size_t i = 0; i < p->n_notes; i++)
		json_object_array_add(notes, json_object_new_string(p->notes[i]));
	json_object_object_add(root, "user", json_object_new_string(p->user));
	json_object_object_add(root, "instance_id", pf_json_str(p->instance_id));
	{
		json_object *m = json_object_new_object();

		json_object_object_add(m, "network", pf_json_str(p->mech_net));
		json_object_object_add(m, "user", pf_json_str(p->mech_user));
		json_object_object_add(m, "ssh", pf_json_str(p->mech_ssh));
		json_object_object_add(root, "mechanisms", m);
	}
	json_object_object_add(root, "operations", ops);
	json_object_object_add(root, "notes", notes);
	return root;
}
