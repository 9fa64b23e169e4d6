/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/fs.h"
#include "node/runvalues.h"
#include "util/error.h"
#include "util/strutil.h"

/* Files read back are small text files: the seed, network files, host keys. */
#define RUN_FILE_MAX (256u * 1024)

void pf_run_values_done(PfRunValues *v)
{
	free(v->instance_id);
	for (size_t i = 0; i < v->n_host_keys; i++)
		pf_hostkey_done(&v->host_keys[i]);
	*v = (PfRunValues){ 0 };
}

/* n bytes of p as a NUL-terminated string; p holds file bytes, not a string (no strndup()). */
static char *text_dup(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

/* The bytes of the file op writes, as tree holds it; -errno if it cannot be read. */
static int read_op_file(PfTree *tree, const PfPtable *t, const PfOp *op, uint8_t **ret,
			size_t *ret_size)
{
	_cleanup_(freep) char *inner = NULL;
	PfFs *fs;
	int r;

	r = pf_plan_op_resolve(tree, t, op, &fs, &inner);
	if (r < 0)
		return r;
	return pf_fs_read_file(fs, inner, RUN_FILE_MAX, ret, ret_size);
}

/* "iid-piflash-HOSTNAME-" and 16 lowercase hex digits: the only ids piflash makes. */
static bool instance_id_valid(const char *id, const char *hostname)
{
	const char *rest = startswith(id, "iid-piflash-");
	size_t n = strlen(hostname);

	if (!rest || strncmp(rest, hostname, n) != 0 || rest[n] != '-')
		return false;
	rest += n + 1;
	return strlen(rest) == 16 && strspn(rest, "0123456789abcdef") == 16;
}

static int find_instance_id(PfTree *tree, const PfPtable *t, const PfPlan *probe,
			    const char *hostname, char **ret)
{
	size_t len;

	if (!probe->instance_id)
		return 0;
	len = strlen(probe->instance_id);
	for (size_t i = 0; i < probe->n_ops && !*ret; i++) {
		const PfOp *op = &probe->ops[i];
		_cleanup_(freep) uint8_t *data = NULL;
		_cleanup_(freep) char *id = NULL;
		const uint8_t *at;
		size_t size = 0;

		if (op->kind != PF_OP_WRITE || op->secret || !op->data)
			continue;
		at = memmem(op->data, op->size, probe->instance_id, len);
		if (!at)
			continue;
		if (read_op_file(tree, t, op, &data, &size) < 0) {
			pf_error_clear();
			continue;
		}
		if (size != op->size)
			continue;
		id = text_dup(data + (at - op->data), len);
		if (!id)
			return -ENOMEM;
		if (instance_id_valid(id, hostname))
			*ret = TAKE_PTR(id);
	}
	return 0;
}

/* The mtime of a file the plan writes: from ext when there is one (whole seconds). */
static void find_now(PfTree *tree, const PfPtable *t, const PfPlan *probe, PfRunValues *v)
{
	bool on_ext = false;

	for (size_t i = 0; i < probe->n_ops && !on_ext; i++) {
		const PfOp *op = &probe->ops[i];
		_cleanup_(freep) char *inner = NULL;
		PfStat st;
		PfFs *fs;

		if (op->kind != PF_OP_WRITE)
			continue;
		if (pf_plan_op_resolve(tree, t, op, &fs, &inner) < 0 ||
		    pf_fs_stat(fs, inner, &st) < 0) {
			pf_error_clear();
			continue;
		}
		on_ext = streq(pf_fs_driver_name(fs), "ext");
		if (on_ext || !v->have_now) {
			v->now = st.mtime;
			v->have_now = true;
		}
	}
}

/* A host key file pair the probe writes: "/etc/ssh/ssh_host_<name>_key" and ".pub". */
static int find_host_keys(PfTree *tree, const PfPtable *t, const PfPlan *probe, PfRunValues *v)
{
	for (size_t i = 0; i + 1 < probe->n_ops && v->n_host_keys < ELEMENTSOF(v->host_keys); i++) {
		const PfOp *key = &probe->ops[i], *pub = &probe->ops[i + 1];
		const char *name = startswith(key->path, "/etc/ssh/ssh_host_");
		_cleanup_(freep) uint8_t *priv = NULL, *line = NULL;
		size_t priv_size = 0, line_size = 0;
		PfHostKey *k;

		if (key->kind != PF_OP_WRITE || !key->secret || !name || !endswith(name, "_key") ||
		    pub->kind != PF_OP_WRITE || !endswith(pub->path, ".pub"))
			continue;
		if (read_op_file(tree, t, key, &priv, &priv_size) < 0 ||
		    read_op_file(tree, t, pub, &line, &line_size) < 0) {
			pf_error_clear();
			continue;
		}
		k = &v->host_keys[v->n_host_keys];
		k->type = malloc(strlen("ssh-") + strlen(name) - strlen("_key") + 1);
		k->private_key = text_dup(priv, priv_size);
		k->public_line = text_dup(line, line_size);
		explicit_bzero(priv, priv_size);
		v->n_host_keys++;
		if (!k->type || !k->private_key || !k->public_line)
			return -ENOMEM;
		sprintf(k->type, "ssh-%.*s", (int)(strlen(name) - strlen("_key")), name);
	}
	return 0;
}

int pf_run_values_read(PfTree *tree, const PfPtable *t, const PfPlan *probe, const char *hostname,
		       PfRunValues *ret)
{
	PfRunValues v = { 0 };
	int r;

	find_now(tree, t, probe, &v);
	r = find_instance_id(tree, t, probe, hostname, &v.instance_id);
	if (r >= 0)
		r = find_host_keys(tree, t, probe, &v);
	if (r < 0) {
		pf_run_values_done(&v);
		return r;
	}
	*ret = v;
	return 0;
}
