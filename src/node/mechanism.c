/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "node/mechanism.h"
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

static const char *const ssh_way_names[_PF_SSH_WAY_MAX] = {
	[PF_SSH_NO_SERVER] = "no-server",     [PF_SSH_ENABLED] = "enabled",
	[PF_SSH_SWITCH] = "switch-file",      [PF_SSH_FIRSTBOOT] = "custom.toml",
	[PF_SSH_ENABLE_UNIT] = "enable-unit", [PF_SSH_MASKED] = "masked",
};

static const char *const user_way_names[_PF_USER_WAY_MAX] = {
	[PF_USER_PASSWD] = "passwd",
	[PF_USER_CLOUD_INIT] = "cloud-init",
	[PF_USER_CUSTOM_TOML] = "custom.toml",
	[PF_USER_USERCONF] = "userconf",
};

const char *pf_ssh_way_name(PfSshWay w)
{
	return w >= 0 && w < _PF_SSH_WAY_MAX ? ssh_way_names[w] : "?";
}

const char *pf_user_way_name(PfUserWay w)
{
	return w >= 0 && w < _PF_USER_WAY_MAX ? user_way_names[w] : "?";
}

const PfUnit *pf_flavor_unit(const PfFlavorInfo *f, const char *name)
{
	static const PfUnit absent = { .state = PF_UNIT_ABSENT };

	for (size_t i = 0; i < f->n_units; i++)
		if (streq(f->units[i].name, name))
			return &f->units[i];
	return &absent;
}

static bool unit_is(const PfFlavorInfo *f, const char *name, PfUnitState s)
{
	return pf_flavor_unit(f, name)->state == s;
}

/* ---- reading ---- */

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

static int set_str(char **dst, const char *s)
{
	char *n = strdup(s);

	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
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
			return set_str(&f->cloud_init_renderer, r);
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
	else if (unit_is(f, "cloud-init.service", PF_UNIT_MASKED) ||
		 unit_is(f, "cloud-init-local.service", PF_UNIT_MASKED))
		why = "its units are masked";
	else if (!unit_is(f, "cloud-init.service", PF_UNIT_ENABLED) &&
		 !unit_is(f, "cloud-init-local.service", PF_UNIT_ENABLED))
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
		r = set_str(&f->netplan_renderer, renderer);
	if (r >= 0 && eth && eth->type == YAML_MAPPING_NODE &&
	    eth->data.mapping.pairs.top > eth->data.mapping.pairs.start) {
		f->netplan_ethernets = true;
		r = set_str(&f->netplan_file, path);
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
	if (!f->netplan_renderer && set_str(&f->netplan_renderer, "networkd") < 0)
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
	if (configures && set_str(&f->ifupdown_file, "/etc/network/interfaces") < 0)
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
			if (configures && set_str(&f->ifupdown_file, p) < 0)
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
			if (set_str(&s->f->ssh_switch_unit, name) < 0 ||
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
	if (!unit_is(f, "ssh.service", PF_UNIT_ABSENT))
		r = set_str(&f->ssh_unit, "ssh.service");
	else if (!unit_is(f, "sshd.service", PF_UNIT_ABSENT))
		r = set_str(&f->ssh_unit, "sshd.service");
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

/* ---- decisions ---- */

static int why(char **dst, const char *fmt, ...) _printf_(2, 3);
static int why(char **dst, const char *fmt, ...)
{
	va_list ap;
	int r;

	free(*dst);
	*dst = NULL;
	va_start(ap, fmt);
	r = vasprintf(dst, fmt, ap);
	va_end(ap);
	if (r < 0) {
		*dst = NULL;
		return -ENOMEM;
	}
	return 0;
}

static bool enabled(const PfFlavorInfo *f, const char *unit)
{
	return unit_is(f, unit, PF_UNIT_ENABLED);
}

static const char *dhcpcd_unit(const PfFlavorInfo *f)
{
	if (enabled(f, "dhcpcd.service") || !enabled(f, "dhcpcd5.service"))
		return "dhcpcd.service";
	return "dhcpcd5.service";
}

/* The unit of a network service, NULL for those without one of their own. */
static const char *net_unit(const PfFlavorInfo *f, PfNetStack n)
{
	switch (n) {
	case PF_NET_NETWORKMANAGER:
		return "NetworkManager.service";
	case PF_NET_NETWORKD:
		return "systemd-networkd.service";
	case PF_NET_DHCPCD:
		return dhcpcd_unit(f);
	case PF_NET_IFUPDOWN:
		return "networking.service";
	default:
		return NULL;
	}
}

static bool cloud_init_reads_seed(const PfFlavorInfo *f)
{
	return f->cloud_init_enabled && f->seed_dir;
}

static bool net_installed(const PfFlavorInfo *f, PfNetStack n)
{
	switch (n) {
	case PF_NET_CLOUD_INIT:
		return cloud_init_reads_seed(f) && !f->cloud_init_network_disabled;
	case PF_NET_NETWORKMANAGER:
		return f->has_networkmanager;
	case PF_NET_NETWORKD:
		return f->has_networkd;
	case PF_NET_DHCPCD:
		return f->has_dhcpcd;
	case PF_NET_IFUPDOWN:
		return f->has_ifupdown || !unit_is(f, "networking.service", PF_UNIT_ABSENT);
	case PF_NET_NETPLAN:
		return f->has_netplan;
	default:
		return false;
	}
}

/* The other services enabled too: worth a word, as two of them would fight over eth0. */
static void also_enabled(const PfFlavorInfo *f, PfNetStack chosen, char *buf, size_t size)
{
	static const PfNetStack all[] = { PF_NET_NETWORKMANAGER, PF_NET_NETWORKD, PF_NET_DHCPCD,
					  PF_NET_IFUPDOWN };
	size_t l = 0;

	buf[0] = 0;
	for (size_t i = 0; i < ELEMENTSOF(all); i++)
		if (all[i] != chosen && enabled(f, net_unit(f, all[i])) && l < size)
			l += (size_t)snprintf(buf + l, size - l, "%s%s",
					      l ? ", " : "; also enabled: ", net_unit(f, all[i]));
}

static int decide_net_forced(PfFlavorInfo *f, PfNetStack n)
{
	const char *unit = net_unit(f, n);

	if (!net_installed(f, n)) {
		if (n == PF_NET_CLOUD_INIT)
			return pf_error_set(-EOPNOTSUPP,
					    "--network cloud-init: cloud-init does not read a seed "
					    "on this image (%s)",
					    !f->has_cloud_init	     ? "not installed"
					    : !f->cloud_init_enabled ? "it does not run at boot"
					    : f->cloud_init_network_disabled
						    ? "its network config is disabled"
						    : "no seed found");
		return pf_error_set(-EOPNOTSUPP, "--network %s: it is not installed in the image",
				    pf_net_stack_name(n));
	}
	if (unit && unit_is(f, unit, PF_UNIT_MASKED))
		return pf_error_set(-EOPNOTSUPP,
				    "--network %s: %s is masked in the image (%s); piflash does "
				    "not unmask it",
				    pf_net_stack_name(n), unit, pf_flavor_unit(f, unit)->link);
	f->net = n;
	f->net_forced = true;
	return why(&f->net_why, "%s, as given with --network%s%s%s", pf_net_stack_name(n),
		   unit && !enabled(f, unit) ? " (" : "", unit && !enabled(f, unit) ? unit : "",
		   unit && !enabled(f, unit) ? " is not enabled: the plan enables it)" : "");
}

static int decide_net(PfFlavorInfo *f, const PfDetectOptions *o)
{
	/* Services that only need their unit enabled, in the order of mechanism.h. */
	static const PfNetStack service_order[] = { PF_NET_NETWORKMANAGER, PF_NET_NETWORKD,
						    PF_NET_DHCPCD };
	char also[256];

	if (o && o->net != PF_NET_NONE)
		return decide_net_forced(f, o->net);

	if (cloud_init_reads_seed(f) && !f->cloud_init_network_disabled && f->cloud_init_renderer) {
		f->net = PF_NET_CLOUD_INIT;
		return why(&f->net_why,
			   "cloud-init %s runs at boot, reads its seed at %s (%s) and renders "
			   "network-config for %s",
			   f->cloud_init_version ? f->cloud_init_version : "", f->seed_dir,
			   f->seed_how, f->cloud_init_renderer);
	}
	if (f->netplan_ethernets) {
		f->net = PF_NET_NETPLAN;
		return why(&f->net_why, "netplan defines ethernets in %s (renderer %s)",
			   f->netplan_file, f->netplan_renderer);
	}
	if (enabled(f, "networking.service") && f->ifupdown_configures) {
		f->net = PF_NET_IFUPDOWN;
		also_enabled(f, f->net, also, sizeof(also));
		return why(&f->net_why,
			   "networking.service is enabled (%s) and %s configures an interface%s",
			   pf_flavor_unit(f, "networking.service")->link, f->ifupdown_file, also);
	}
	for (size_t i = 0; i < ELEMENTSOF(service_order); i++) {
		PfNetStack s = service_order[i];
		const char *unit = net_unit(f, s);

		if (!enabled(f, unit))
			continue;
		f->net = s;
		also_enabled(f, f->net, also, sizeof(also));
		return why(&f->net_why, "%s is enabled (%s)%s", unit, pf_flavor_unit(f, unit)->link,
			   also);
	}
	f->net = PF_NET_NONE;
	return why(&f->net_why,
		   "no network service is in charge at boot (cloud-init: %s; netplan: %s; "
		   "ifupdown: %s; NetworkManager.service, systemd-networkd.service, "
		   "dhcpcd.service: %s, %s, %s)",
		   !f->has_cloud_init		    ? "not installed"
		   : !f->cloud_init_enabled	    ? "does not run"
		   : !f->seed_dir		    ? "no seed"
		   : f->cloud_init_network_disabled ? "network disabled"
						    : "no renderer",
		   f->netplan_ethernets ? "yes"
		   : f->has_netplan	? "no ethernets"
					: "not installed",
		   enabled(f, "networking.service") ? "no interface configured"
		   : f->has_ifupdown		    ? "networking.service not enabled"
						    : "not installed",
		   pf_unit_state_name(pf_flavor_unit(f, "NetworkManager.service")->state),
		   pf_unit_state_name(pf_flavor_unit(f, "systemd-networkd.service")->state),
		   pf_unit_state_name(pf_flavor_unit(f, dhcpcd_unit(f))->state));
}

static int decide_user(PfFlavorInfo *f)
{
	if (cloud_init_reads_seed(f)) {
		f->user = PF_USER_CLOUD_INIT;
		return why(&f->user_why, "cloud-init makes the user from the seed's user-data");
	}
	if (f->has_custom_toml && f->firstboot_in_cmdline) {
		f->user = PF_USER_CUSTOM_TOML;
		return why(&f->user_why,
			   "cmdline.txt runs raspberrypi-sys-mods' firstboot, whose init_config "
			   "applies custom.toml");
	}
	if (f->has_userconf && enabled(f, "userconfig.service")) {
		f->user = PF_USER_USERCONF;
		return why(&f->user_why,
			   "userconfig.service (%s) renames the uid-1000 user from "
			   "userconf.txt",
			   pf_flavor_unit(f, "userconfig.service")->link);
	}
	f->user = PF_USER_PASSWD;
	return why(&f->user_why, "the users of the image's /etc/passwd");
}

static int decide_ssh(PfFlavorInfo *f)
{
	static const char *const units[] = { "ssh.service", "sshd.service", "ssh.socket" };

	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (unit_is(f, units[i], PF_UNIT_MASKED)) {
			f->ssh = PF_SSH_MASKED;
			return why(&f->ssh_why, "%s is masked (%s)", units[i],
				   pf_flavor_unit(f, units[i])->link);
		}
	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (enabled(f, units[i])) {
			f->ssh = PF_SSH_ENABLED;
			return why(&f->ssh_why, "%s is enabled (%s)", units[i],
				   pf_flavor_unit(f, units[i])->link);
		}
	if (!f->has_sshd && !f->ssh_unit) {
		f->ssh = PF_SSH_NO_SERVER;
		return why(&f->ssh_why, "no SSH server (no /usr/sbin/sshd, no ssh.service)");
	}
	if (f->ssh_switch_path) {
		f->ssh = PF_SSH_SWITCH;
		return why(&f->ssh_why, "%s turns it on when %s exists", f->ssh_switch_unit,
			   f->ssh_switch_path);
	}
	if (f->user == PF_USER_CUSTOM_TOML) {
		f->ssh = PF_SSH_FIRSTBOOT;
		return why(&f->ssh_why, "custom.toml's [ssh] enabled, applied by init_config");
	}
	f->ssh = PF_SSH_ENABLE_UNIT;
	return why(&f->ssh_why, "nothing turns %s on at boot: piflash enables it",
		   f->ssh_unit ? f->ssh_unit : "the SSH server");
}

int pf_mechanism_decide(PfFlavorInfo *f, const PfDetectOptions *o)
{
	int r;

	r = decide_user(f);
	if (r >= 0)
		r = decide_net(f, o);
	if (r >= 0)
		r = decide_ssh(f);
	if (r < 0)
		return r;
	if (pf_flavor_add_evidence(f, "network: %s (%s)", pf_net_stack_name(f->net), f->net_why) <
		    0 ||
	    pf_flavor_add_evidence(f, "user: %s (%s)", pf_user_way_name(f->user), f->user_why) <
		    0 ||
	    pf_flavor_add_evidence(f, "ssh: %s (%s)", pf_ssh_way_name(f->ssh), f->ssh_why) < 0)
		return -ENOMEM;
	return 0;
}
