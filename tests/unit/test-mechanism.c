/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for the parsers behind the mechanism decisions (node/units.c, node/mechanism.c),
 * the ifupdown edit (node/edit.c) and the seed merge (node/yamlutil.c), on in-memory text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/edit.h"
#include "node/facts.h"
#include "node/mechanism.h"
#include "node/passwd.h"
#include "node/units.h"
#include "node/yamlutil.h"
#include "util/error.h"
#include "util/macros.h"

static const char sshswitch[] = "[Unit]\n"
				"Description=Turn on SSH if /boot/ssh is present\n"
				"ConditionPathExistsGlob=/boot/firmware/ssh{,.txt}\n"
				"After=regenerate_ssh_host_keys.service\n"
				"\n"
				"[Service]\n"
				"Type=oneshot\n"
				"ExecStart=/bin/sh -c \"systemctl enable --now ssh && \\\n"
				"   rm -f /boot/firmware/ssh ; rm -f /boot/firmware/ssh.txt\"\n"
				"\n"
				"[Install]\n"
				"WantedBy=multi-user.target graphical.target\n"
				"# a comment\n"
				"Alias=ssh-switch.service\n";

static void test_unit_values(void **state)
{
	char **v = NULL;

	assert_int_equal(pf_unit_file_values(sshswitch, "Unit", "ConditionPathExistsGlob", &v), 0);
	assert_non_null(v[0]);
	assert_string_equal(v[0], "/boot/firmware/ssh{,.txt}");
	assert_null(v[1]);
	pf_strv_free(v);

	/* A continuation line is joined to the one before. */
	assert_int_equal(pf_unit_file_values(sshswitch, "Service", "ExecStart", &v), 0);
	assert_non_null(strstr(v[0], "enable --now ssh"));	       /* first line */
	assert_non_null(strstr(v[0], "rm -f /boot/firmware/ssh.txt")); /* continuation */
	pf_strv_free(v);

	/* [Install] lists are words. */
	assert_int_equal(pf_unit_file_values(sshswitch, "Install", "WantedBy", &v), 0);
	assert_string_equal(v[0], "multi-user.target");
	assert_string_equal(v[1], "graphical.target");
	assert_null(v[2]);
	pf_strv_free(v);

	/* A key of another section is not seen; an empty assignment resets the list. */
	assert_int_equal(pf_unit_file_values(sshswitch, "Service", "WantedBy", &v), 0);
	assert_null(v[0]);
	pf_strv_free(v);
	assert_int_equal(pf_unit_file_values("[Install]\nWantedBy=a.target\nWantedBy=\n"
					     "WantedBy=b.target\n",
					     "Install", "WantedBy", &v),
			 0);
	assert_string_equal(v[0], "b.target");
	assert_null(v[1]);
	pf_strv_free(v);
}

static void test_unit_enable_links(void **state)
{
	char **v = NULL;

	assert_int_equal(pf_unit_enable_links("sshswitch.service", sshswitch, &v), 0);
	assert_string_equal(v[0], "/etc/systemd/system/multi-user.target.wants/sshswitch.service");
	assert_string_equal(v[1], "/etc/systemd/system/graphical.target.wants/sshswitch.service");
	assert_string_equal(v[2], "/etc/systemd/system/ssh-switch.service");
	assert_null(v[3]);
	pf_strv_free(v);

	/* RequiredBy makes .requires links. */
	assert_int_equal(pf_unit_enable_links("x.service", "[Install]\nRequiredBy=y.target\n", &v),
			 0);
	assert_string_equal(v[0], "/etc/systemd/system/y.target.requires/x.service");
	pf_strv_free(v);

	/* A static unit cannot be enabled; a target with a '/' is not a link to make. */
	v = NULL;
	assert_int_equal(pf_unit_enable_links("s.service", "[Service]\nExecStart=/bin/true\n", &v),
			 -ENOENT);
	assert_null(v);
	pf_error_clear();
	assert_int_equal(pf_unit_enable_links("s.service", "[Install]\nWantedBy=../../x\n", &v),
			 -ENOENT);
	pf_error_clear();
}

static void test_condition_path(void **state)
{
	char *p = NULL;

	assert_int_equal(pf_condition_path("/boot/firmware/ssh{,.txt}", &p), 0);
	assert_string_equal(p, "/boot/firmware/ssh");
	free(p);
	assert_int_equal(pf_condition_path("|/boot/ssh", &p), 0);
	assert_string_equal(p, "/boot/ssh");
	free(p);
	assert_int_equal(pf_condition_path("/boot/{ssh,ssh.txt}", &p), 0);
	assert_string_equal(p, "/boot/ssh");
	free(p);
	/* Negated, relative, and glob conditions name no file piflash could create. */
	p = (char *)1;
	assert_int_equal(pf_condition_path("!/etc/ssh/sshd_not_to_be_run", &p), 0);
	assert_null(p);
	assert_int_equal(pf_condition_path("ssh", &p), 0);
	assert_null(p);
	assert_int_equal(pf_condition_path("/boot/ssh*", &p), 0);
	assert_null(p);
	assert_int_equal(pf_condition_path("/boot/ssh{", &p), 0);
	assert_null(p);
}

static void test_ifupdown_parse(void **state)
{
	bool conf = false, src = false;

	pf_ifupdown_parse("auto lo\niface lo inet loopback\n", &conf, &src);
	assert_false(conf);
	assert_false(src);
	pf_ifupdown_parse("source /etc/network/interfaces.d/*\n# iface eth0 inet dhcp\n", &conf,
			  &src);
	assert_false(conf);
	assert_true(src);
	src = false;
	pf_ifupdown_parse("source-directory interfaces.d\nallow-hotplug eth0\n"
			  "iface eth0 inet dhcp\n",
			  &conf, &src);
	assert_true(conf);
	assert_true(src);
}

static void test_ifupdown_drop(void **state)
{
	static const char eni[] = "# interfaces(5)\n"
				  "source /etc/network/interfaces.d/*\n"
				  "auto lo eth0\n"
				  "iface lo inet loopback\n"
				  "\n"
				  "allow-hotplug eth0\n"
				  "iface eth0 inet dhcp\n"
				  "    hostname node\n"
				  "iface eth0 inet6 auto\n"
				  "\n"
				  "iface eth1 inet dhcp\n"
				  "iface eth0x inet dhcp\n";
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(pf_edit_ifupdown_drop(eni, strlen(eni), "eth0", &out, &len), 0);
	assert_string_equal(out, "# interfaces(5)\n"
				 "source /etc/network/interfaces.d/*\n"
				 "auto lo\n"
				 "iface lo inet loopback\n"
				 "\n"
				 "iface eth1 inet dhcp\n"
				 "iface eth0x inet dhcp\n");
	assert_int_equal(len, strlen(out));
	free(out);

	/* piflash's own block survives the drop, so the next edit replaces it. */
	{
		static const char mine[] = "auto lo\n# piflash begin: x\nauto eth0\n"
					   "iface eth0 inet static\n    address 10.0.0.2/24\n"
					   "# piflash end\n";
		char *block_out = NULL;
		size_t blen = 0;

		assert_int_equal(pf_edit_ifupdown_drop(mine, strlen(mine), "eth0", &out, &len), 0);
		assert_string_equal(out, "auto lo\n# piflash begin: x\n# piflash end\n");
		assert_int_equal(pf_edit_replace_block(out, len,
						       "# piflash begin: y\niface eth0 inet dhcp\n"
						       "# piflash end\n",
						       &block_out, &blen),
				 0);
		assert_string_equal(block_out, "auto lo\n# piflash begin: y\n"
					       "iface eth0 inet dhcp\n# piflash end\n");
		free(block_out);
		free(out);
	}
}

static void test_yaml_merge(void **state)
{
	static const char ours[] = "#cloud-config\nhostname: \"worker3\"\nusers:\n  - name: pi\n";
	static const char base[] = "#cloud-config\n"
				   "# header comment\n"
				   "hostname: black-pearl\n"
				   "users:\n"
				   "  - name: pirate\n"
				   "    plain_text_passwd: hypriot\n"
				   "chpasswd: { expire: false }\n"
				   "\n"
				   "# keep this\n"
				   "package_upgrade: false\n"
				   "runcmd:\n"
				   "  - 'systemctl restart avahi-daemon'\n";
	static const char *const drop[] = { "chpasswd", NULL };
	char *out = NULL, **kept = NULL;
	size_t len = 0;

	assert_int_equal(
		pf_yaml_merge_top(ours, strlen(ours), base, strlen(base), drop, &out, &len, &kept),
		0);
	assert_non_null(kept);
	assert_string_equal(kept[0], "package_upgrade");
	assert_string_equal(kept[1], "runcmd");
	assert_null(kept[2]);
	assert_non_null(strstr(out, "hostname: \"worker3\""));
	assert_null(strstr(out, "black-pearl"));
	assert_null(strstr(out, "hypriot"));
	assert_null(strstr(out, "expire"));
	assert_non_null(strstr(out, "package_upgrade: false\nruncmd:\n  - 'systemctl restart "
				    "avahi-daemon'\n"));
	assert_int_equal(strncmp(out, ours, strlen(ours)), 0); /* ours first, unchanged */
	free(out);
	pf_strv_free(kept);

	/* Not a block mapping (a script, a flow mapping): nothing kept, kept is NULL. */
	assert_int_equal(pf_yaml_merge_top(ours, strlen(ours), "#!/bin/sh\necho hi\n", 18, drop,
					   &out, &len, &kept),
			 0);
	assert_null(kept);
	assert_string_equal(out, ours);
	free(out);
	assert_int_equal(pf_yaml_merge_top(ours, strlen(ours), "{dsmode: local}", 15, drop, &out,
					   &len, &kept),
			 0);
	assert_null(kept);
	free(out);

	/* A kept key that needs an anchor piflash dropped: the result is refused, not wrong. */
	{
		static const char anchored[] = "users: &u\n  - name: x\nother: *u\n";

		assert_int_equal(pf_yaml_merge_top(ours, strlen(ours), anchored, strlen(anchored),
						   drop, &out, &len, &kept),
				 -EBADMSG);
		pf_error_clear();
	}
}

/* An image's dhcpcd units as detection leaves them: name, state, unit file. */
static PfFlavorInfo *dhcpcd_image(PfUnitState dhcpcd, PfUnitState dhcpcd5)
{
	PfFlavorInfo *f = calloc(1, sizeof(*f));
	const struct {
		const char *name;
		PfUnitState state;
	} u[] = { { "dhcpcd.service", dhcpcd }, { "dhcpcd5.service", dhcpcd5 } };

	assert_non_null(f);
	f->units = calloc(ELEMENTSOF(u), sizeof(PfUnit));
	assert_non_null(f->units);
	for (size_t i = 0; i < ELEMENTSOF(u); i++) {
		char file[64];

		snprintf(file, sizeof(file), "/lib/systemd/system/%s", u[i].name);
		f->units[i] = (PfUnit){ .name = strdup(u[i].name), .state = u[i].state };
		if (u[i].state != PF_UNIT_ABSENT)
			f->units[i].file = strdup(file);
		if (u[i].state == PF_UNIT_ENABLED)
			f->units[i].link = strdup("/etc/systemd/system/multi-user.target.wants/x");
	}
	f->n_units = ELEMENTSOF(u);
	f->has_dhcpcd = true;
	return f;
}

/* One rule says which dhcpcd unit an image has: the one detected is the one named and the one
 * --network dhcpcd enables. */
static void test_dhcpcd_unit(void **state)
{
	static const struct {
		PfUnitState dhcpcd, dhcpcd5;
		const char *unit;
	} cases[] = {
		{ PF_UNIT_ENABLED, PF_UNIT_PRESENT, "dhcpcd.service" },
		{ PF_UNIT_PRESENT, PF_UNIT_ENABLED, "dhcpcd5.service" },
		{ PF_UNIT_ABSENT, PF_UNIT_ENABLED, "dhcpcd5.service" },
		{ PF_UNIT_ABSENT, PF_UNIT_PRESENT, "dhcpcd5.service" },
		{ PF_UNIT_PRESENT, PF_UNIT_PRESENT, "dhcpcd.service" },
		{ PF_UNIT_PRESENT, PF_UNIT_ABSENT, "dhcpcd.service" },
	};

	(void)state;
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_(pf_flavor_info_freep) PfFlavorInfo *detected =
			dhcpcd_image(cases[i].dhcpcd, cases[i].dhcpcd5);
		_cleanup_(pf_flavor_info_freep) PfFlavorInfo *forced =
			dhcpcd_image(cases[i].dhcpcd, cases[i].dhcpcd5);
		bool on = cases[i].dhcpcd == PF_UNIT_ENABLED || cases[i].dhcpcd5 == PF_UNIT_ENABLED;

		assert_int_equal(pf_mechanism_decide(detected, NULL), 0);
		if (on) {
			assert_int_equal(detected->net, PF_NET_DHCPCD);
			assert_non_null(strstr(detected->net_why, cases[i].unit));
		} else {
			char named[64];

			assert_int_equal(detected->net, PF_NET_NONE);
			snprintf(named, sizeof(named), "%s: ", cases[i].unit);
			if (!strstr(detected->net_why, named))
				fail_msg("case %zu: '%s' does not name %s", i, detected->net_why,
					 cases[i].unit);
		}
		assert_int_equal(
			pf_mechanism_decide(forced, &(PfDetectOptions){ .net = PF_NET_DHCPCD }), 0);
		assert_string_equal(forced->net_enable_unit, cases[i].unit);
		/* "X is not enabled: the plan enables it" names the unit it enables. */
		if (!on && !strstr(forced->net_why, cases[i].unit))
			fail_msg("case %zu: '%s' does not name %s", i, forced->net_why,
				 cases[i].unit);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unit_values),    cmocka_unit_test(test_unit_enable_links),
		cmocka_unit_test(test_condition_path), cmocka_unit_test(test_ifupdown_parse),
		cmocka_unit_test(test_ifupdown_drop),  cmocka_unit_test(test_yaml_merge),
		cmocka_unit_test(test_dhcpcd_unit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
