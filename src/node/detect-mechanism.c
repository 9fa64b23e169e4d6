/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sys/stat.h"
#include "node/detect.h"
#include "node/passwd.h"
#include "node/units.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/strutil.h"

#define TEXT_MAX (64u * 1024u)
#define DIR_FILES_MAX 64u

/* The units the decisions look at; inspect lists those the image has. */
static const char *const watched_units[] = {
	"ssh.service",
	"sshd.service",
	"ssh.socket",
	"NetworkManager.service",
	"systemd-networkd.service",
	"dhcpcd.service",
	"dhcpcd5.service",
	"networking.service",
	"cloud-init-local.service",
	"cloud-init.service",
	"userconfig.service",
	"systemd-resolved.service",
};

static bool tree_exists(PfTree *tree, const char *path)
{
	int r = pf_tree_stat(tree, path, true, NULL, NULL, NULL);

	if (r < 0)
		pf_error_clear();
	return r >= 0;
}

static int read_small(PfTree *tree, const char *path, char **ret)
{
	size_t len = 0;
	int r = pf_tree_read_file(tree, path, TEXT_MAX, ret, &len);

	if (r < 0 && r != -ENOMEM) {
		pf_error_clear();
		return -ENOENT;
	}
	return r;
}

/* Sorted names of a directory of the booted view (links followed), at most DIR_FILES_MAX. */
static int list_names(PfTree *tree, const char *dir, char ***ret)
{
	PfDirent *d = NULL;
	size_t n = 0, k = 0;
	char **v;
	int r;

	*ret = NULL;
	r = pf_tree_list(tree, dir, &d, &n);
	if (r < 0) {
		if (r == -ENOMEM)
			return r;
		pf_error_clear();
		return 0;
	}
	v = calloc(MIN(n, DIR_FILES_MAX) + 1, sizeof(char *));
	for (size_t i = 0; v && i < n && k < DIR_FILES_MAX; i++)
		if (!(v[k++] = strdup(d[i].name))) {
			pf_strv_free(v);
			v = NULL;
		}
	pf_dirents_free(d, n);
	if (!v)
		return -ENOMEM;
	for (size_t i = 1; i < k; i++) /* insertion sort: a few names */
		for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
			char *t = v[j];
			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	*ret = v;
	return 0;
}

/* ---- units ---- */

static int facts_units(PfTree *tree, PfFlavorInfo *f, PfUnits *units)
{
	f->units = calloc(ELEMENTSOF(watched_units), sizeof(PfUnit));
	if (!f->units)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(watched_units); i++) {
		PfUnit *u = &f->units[f->n_units];
		int r = pf_units_get(units, watched_units[i], u);

		if (r < 0)
			return r;
		f->n_units++;
		if (u->state == PF_UNIT_ABSENT)
			continue;
		r = pf_flavor_add_evidence(f, "unit %s: %s (%s)", u->name,
					   pf_unit_state_name(u->state),
					   u->state == PF_UNIT_PRESENT ? u->file : u->link);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- cloud-init ---- */

static bool cmdline_disables_cloud_init(const char *cmdline)
{
	const char *p = cmdline;

	while (p && (p = strstr(p, "cloud-init=disabled"))) {
		char after = p[strlen("cloud-init=disabled")];

		if ((p == cmdline || p[-1] == ' ' || p[-1] == '\t') &&
		    (!after || after == ' ' || after == '\t'))
			return true;
		p++;
	}
	return false;
}

/* What cloud-init would render the network for: the first available of its priority list. */
static int facts_cloud_renderer(PfTree *tree, PfFlavorInfo *f)
{
	static const char *const old_prio[] = { "eni", "sysconfig", "netplan", "networkd", NULL };
	static const char *const new_prio[] = { "eni",	    "sysconfig",
						"netplan",  "network-manager",
						"networkd", NULL };
	const char *const *prio = f->cloud_init_renderers
					  ? (const char *const *)f->cloud_init_renderers
				  : f->cloud_init_major >= 23 ? new_prio
							      : old_prio;

	for (size_t i = 0; prio[i]; i++) {
		const char *r = prio[i];
		bool ok = false;

		if (streq(r, "eni"))
			ok = tree_exists(tree, "/sbin/ifup") || tree_exists(tree, "/usr/sbin/ifup");
		else if (streq(r, "sysconfig"))
			ok = tree_exists(tree, "/etc/sysconfig/network-scripts");
		else if (streq(r, "netplan"))
			ok = tree_exists(tree, "/usr/sbin/netplan") ||
			     tree_exists(tree, "/sbin/netplan");
		else if (streq(r, "network-manager"))
			ok = f->has_networkmanager;
		else if (streq(r, "networkd"))
			ok = f->has_networkd;
		if (ok)
			return pf_set_str(&f->cloud_init_renderer, r);
	}
	return 0;
}

static int facts_cloud_init(PfTree *tree, PfFlavorInfo *f)
{
	const char *why = NULL;
	int r;

	if (!f->has_cloud_init)
		return 0;
	if (f->cloud_init_disabled)
		why = "disabled by /etc/cloud/cloud-init.disabled";
	else if (f->cmdline && cmdline_disables_cloud_init(f->cmdline))
		why = "disabled by cloud-init=disabled in cmdline.txt";
	else if (pf_flavor_unit_is(f, "cloud-init.service", PF_UNIT_MASKED) ||
		 pf_flavor_unit_is(f, "cloud-init-local.service", PF_UNIT_MASKED))
		why = "its units are masked";
	else if (!pf_flavor_unit_is(f, "cloud-init.service", PF_UNIT_ENABLED) &&
		 !pf_flavor_unit_is(f, "cloud-init-local.service", PF_UNIT_ENABLED))
		why = "installed, but neither cloud-init.service nor cloud-init-local.service "
		      "is enabled";
	f->cloud_init_enabled = !why;
	if (f->cloud_init_enabled) {
		r = facts_cloud_renderer(tree, f);
		if (r < 0)
			return r;
	}
	if (why)
		return pf_flavor_add_evidence(f, "cloud-init: does not run at boot: %s", why);
	return pf_flavor_add_evidence(f, "cloud-init: runs at boot%s%s%s",
				      f->cloud_init_network_disabled ? "; network config disabled"
				      : f->cloud_init_renderer
					      ? "; renders the network for "
					      : "; finds no network renderer it can use",
				      f->cloud_init_network_disabled ? ""
				      : f->cloud_init_renderer	     ? f->cloud_init_renderer
								     : "",
				      "");
}

/* ---- netplan ---- */

static int netplan_file(PfTree *tree, PfFlavorInfo *f, const char *path)
{
	_cleanup_(freep) char *text = NULL;
	yaml_document_t doc;
	yaml_node_t *net, *eth;
	const char *renderer;
	int r;

	r = read_small(tree, path, &text);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	r = pf_yaml_load(text, strlen(text), &doc);
	if (r < 0) {
		if (r == -ENOMEM)
			return r;
		r = pf_flavor_add_evidence(f, "%s: %s, ignoring (netplan refuses it too)", path,
					   pf_error_message(r));
		pf_error_clear();
		return r;
	}
	net = pf_yaml_map_get(&doc, yaml_document_get_root_node(&doc), "network");
	renderer = pf_yaml_scalar(pf_yaml_map_get(&doc, net, "renderer"));
	eth = pf_yaml_map_get(&doc, net, "ethernets");
	r = 0;
	if (renderer)
		r = pf_set_str(&f->netplan_renderer, renderer);
	if (r >= 0 && eth && eth->type == YAML_MAPPING_NODE &&
	    eth->data.mapping.pairs.top > eth->data.mapping.pairs.start) {
		f->netplan_ethernets = true;
		r = pf_set_str(&f->netplan_file, path);
	}
	yaml_document_delete(&doc);
	return r;
}

static int facts_netplan(PfTree *tree, PfFlavorInfo *f)
{
	/* netplan reads these in the order of their file names; /etc shadows /lib. */
	static const char *const dirs[] = { "/lib/netplan", "/usr/lib/netplan", "/etc/netplan" };
	int r;

	if (!f->has_netplan)
		return 0;
	for (size_t d = 0; d < ELEMENTSOF(dirs); d++) {
		_cleanup_(pf_strv_freep) char **names = NULL;

		r = list_names(tree, dirs[d], &names);
		if (r < 0)
			return r;
		for (size_t i = 0; names && names[i]; i++) {
			char p[PF_PATH_MAX];

			if (!endswith(names[i], ".yaml"))
				continue;
			snprintf(p, sizeof(p), "%s/%s", dirs[d], names[i]);
			r = netplan_file(tree, f, p);
			if (r < 0)
				return r;
		}
	}
	if (!f->netplan_renderer && pf_set_str(&f->netplan_renderer, "networkd") < 0)
		return -ENOMEM;
	return pf_flavor_add_evidence(f, "netplan: renderer %s%s%s", f->netplan_renderer,
				      f->netplan_ethernets ? ", ethernets defined in "
							   : ", no ethernets defined",
				      f->netplan_ethernets ? f->netplan_file : "");
}

/* ---- ifupdown ---- */

void pf_ifupdown_parse(const char *text, bool *ret_configures, bool *ret_sources_d)
{
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t l = nl ? (size_t)(nl - line) : strlen(line);
		char buf[512], w1[64] = "", w2[256] = "";

		if (l >= sizeof(buf))
			l = sizeof(buf) - 1;
		memcpy(buf, line, l);
		buf[l] = 0;
		line = nl ? nl + 1 : NULL;
		if (sscanf(buf, " %63s %255s", w1, w2) < 2 || w1[0] == '#')
			continue;
		if (streq(w1, "iface") && !streq(w2, "lo"))
			*ret_configures = true;
		if ((streq(w1, "source") && startswith(w2, "/etc/network/interfaces.d/")) ||
		    (streq(w1, "source") && startswith(w2, "interfaces.d/")) ||
		    (streq(w1, "source-directory") &&
		     (streq(w2, "/etc/network/interfaces.d") ||
		      streq(w2, "/etc/network/interfaces.d/") || streq(w2, "interfaces.d"))))
			*ret_sources_d = true;
	}
}

static int facts_ifupdown(PfTree *tree, PfFlavorInfo *f)
{
	_cleanup_(freep) char *text = NULL;
	bool configures = false;
	int r;

	f->has_resolvconf =
		tree_exists(tree, "/sbin/resolvconf") || tree_exists(tree, "/usr/sbin/resolvconf");
	r = read_small(tree, "/etc/network/interfaces", &text);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	pf_ifupdown_parse(text, &configures, &f->ifupdown_sources_d);
	if (configures && pf_set_str(&f->ifupdown_file, "/etc/network/interfaces") < 0)
		return -ENOMEM;
	if (!configures && f->ifupdown_sources_d) {
		_cleanup_(pf_strv_freep) char **names = NULL;

		r = list_names(tree, "/etc/network/interfaces.d", &names);
		if (r < 0)
			return r;
		for (size_t i = 0; names && names[i] && !configures; i++) {
			_cleanup_(freep) char *t = NULL;
			char p[PF_PATH_MAX];
			bool ignored = false;

			snprintf(p, sizeof(p), "/etc/network/interfaces.d/%s", names[i]);
			r = read_small(tree, p, &t);
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				continue;
			pf_ifupdown_parse(t, &configures, &ignored);
			if (configures && pf_set_str(&f->ifupdown_file, p) < 0)
				return -ENOMEM;
		}
	}
	f->ifupdown_configures = configures;
	return pf_flavor_add_evidence(f, "ifupdown: %s%s",
				      configures ? "an interface is configured in "
						 : "no interface but lo configured",
				      configures ? f->ifupdown_file : "");
}

/* ---- SSH ---- */

int pf_condition_path(const char *value, char **ret)
{
	const char *v = value;
	char *out, *o;

	*ret = NULL;
	if (*v == '|')
		v++;
	if (*v == '!' || *v != '/')
		return 0;
	out = malloc(strlen(v) + 1);
	if (!out)
		return -ENOMEM;
	o = out;
	for (const char *p = v; *p; p++) {
		if (*p == '{') {
			/* The first alternative of {a,b}: "ssh{,.txt}" is "ssh". */
			const char *e = strchr(p, '}'), *comma = strchr(p, ',');

			if (!e) {
				free(out);
				return 0;
			}
			if (!comma || comma > e)
				comma = e;
			memcpy(o, p + 1, (size_t)(comma - p - 1));
			o += comma - p - 1;
			p = e;
			continue;
		}
		if (strchr("*?[]\\", *p)) {
			free(out);
			return 0;
		}
		*o++ = *p;
	}
	*o = 0;
	*ret = out;
	return 0;
}

typedef struct SwitchSearch {
	PfFlavorInfo *f;
} SwitchSearch;

/* A unit that runs something enabling or starting ssh, conditioned on a file: the switch. */
static int switch_unit(const char *name, const char *link, const char *text, void *userdata)
{
	static const char *const conds[] = { "ConditionPathExists", "ConditionPathExistsGlob",
					     "ConditionFileNotEmpty" };
	static const char *const execs[] = { "ExecStart", "ExecStartPre", "ExecStartPost" };
	SwitchSearch *s = userdata;
	bool runs_ssh = false;
	int r;

	if (streq(name, "ssh.service") || streq(name, "sshd.service"))
		return 0;
	for (size_t i = 0; i < ELEMENTSOF(execs) && !runs_ssh; i++) {
		_cleanup_(pf_strv_freep) char **v = NULL;

		r = pf_unit_file_values(text, "Service", execs[i], &v);
		if (r < 0)
			return r;
		for (size_t k = 0; v[k] && !runs_ssh; k++)
			runs_ssh = strstr(v[k], "ssh") &&
				   (strstr(v[k], "enable") || strstr(v[k], "start")) &&
				   !strstr(v[k], "ssh-keygen");
	}
	if (!runs_ssh)
		return 0;
	for (size_t i = 0; i < ELEMENTSOF(conds); i++) {
		_cleanup_(pf_strv_freep) char **v = NULL;

		r = pf_unit_file_values(text, "Unit", conds[i], &v);
		if (r < 0)
			return r;
		for (size_t k = 0; v[k]; k++) {
			_cleanup_(freep) char *path = NULL;

			r = pf_condition_path(v[k], &path);
			if (r < 0)
				return r;
			if (!path || pf_path_validate(path) < 0) {
				pf_error_clear();
				continue;
			}
			if (pf_set_str(&s->f->ssh_switch_unit, name) < 0 ||
			    asprintf(&s->f->ssh_switch_condition, "%s=%s (%s)", conds[i], v[k],
				     link) < 0)
				return -ENOMEM;
			s->f->ssh_switch_path = TAKE_PTR(path);
			return 1;
		}
	}
	return 0;
}

static int facts_ssh(PfTree *tree, PfFlavorInfo *f, PfUnits *units)
{
	SwitchSearch s = { .f = f };
	int r;

	f->has_sshd = tree_exists(tree, "/usr/sbin/sshd") || tree_exists(tree, "/sbin/sshd");
	if (!pf_flavor_unit_is(f, "ssh.service", PF_UNIT_ABSENT))
		r = pf_set_str(&f->ssh_unit, "ssh.service");
	else if (!pf_flavor_unit_is(f, "sshd.service", PF_UNIT_ABSENT))
		r = pf_set_str(&f->ssh_unit, "sshd.service");
	else
		r = 0;
	if (r < 0)
		return r;
	r = pf_units_foreach_enabled(units, switch_unit, &s);
	if (r < 0)
		return r;
	if (f->ssh_switch_unit &&
	    pf_flavor_add_evidence(f, "ssh switch: %s turns sshd on when %s exists: %s",
				   f->ssh_switch_unit, f->ssh_switch_path,
				   f->ssh_switch_condition) < 0)
		return -ENOMEM;
	return pf_flavor_add_evidence(f, "sshd: %s%s%s",
				      f->has_sshd ? "installed" : "not installed",
				      f->ssh_unit ? ", unit " : "", f->ssh_unit ? f->ssh_unit : "");
}

int pf_mechanism_facts(PfTree *tree, PfFlavorInfo *f)
{
	_cleanup_(pf_units_freep) PfUnits *units = NULL;
	int r;

	r = pf_units_load(tree, &units);
	if (r >= 0)
		r = facts_units(tree, f, units);
	if (r >= 0)
		r = facts_cloud_init(tree, f);
	if (r >= 0)
		r = facts_netplan(tree, f);
	if (r >= 0)
		r = facts_ifupdown(tree, f);
	if (r >= 0)
		r = facts_ssh(tree, f, units);
	return r;
}
