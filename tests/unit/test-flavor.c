/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for node/passwd.c and the parsers of node/flavor.c, on in-memory text. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/flavor.h"
#include "node/passwd.h"
#include "util/error.h"

#define S(x) (x), strlen(x)

static const char passwd_text[] = "root:x:0:0:root:/root:/bin/bash\n"
				  "# a comment\n"
				  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
				  "sync:x:4:65534:sync:/bin:/bin/sync\n"
				  "broken line without fields\n"
				  "bad:x:notanumber:1::/:/bin/sh\n"
				  "toofew:x:1:1:/:/bin/sh\n"
				  ":x:5:5::/:/bin/sh\n"
				  "+nisuser\n"
				  "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n"
				  "pi:x:1001:1001:second pi:/home/pi2:/bin/bash\n"
				  "ops:x:1500:1500:Operations:/home/ops:/usr/bin/zsh\n"
				  "svc:x:1600:1600::/srv/svc:/usr/sbin/nologin\n"
				  "noshell:x:1700:1700::/home/noshell:\n"
				  "falsy:x:1800:1800::/home/falsy:/bin/false\n"
				  "big:x:60000:60000::/home/big:/bin/bash\n"
				  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\r\n"
				  "last:x:2000:2000::/home/last:/bin/sh";

static void test_passwd_parse(void **state)
{
	PfPasswd *pw = NULL;
	const PfPasswdEntry *e;

	assert_int_equal(pf_passwd_parse(S(passwd_text), &pw), 0);
	/* "broken", "bad", "toofew" and the empty name; comments and "+" silently. */
	assert_int_equal(pw->n_skipped, 4);
	assert_int_equal(pw->first_skipped_line, 5);
	e = pf_passwd_find(pw, "pi");
	assert_non_null(e);
	assert_int_equal(e->uid, 1000); /* the first of two lines wins */
	assert_int_equal(e->gid, 1000);
	assert_string_equal(e->home, "/home/pi");
	assert_string_equal(e->shell, "/bin/bash");
	assert_string_equal(e->gecos, ",,,");
	e = pf_passwd_find_uid(pw, 1500);
	assert_non_null(e);
	assert_string_equal(e->name, "ops");
	e = pf_passwd_find(pw, "nobody");
	assert_non_null(e);
	assert_string_equal(e->shell, "/usr/sbin/nologin"); /* CR removed */
	e = pf_passwd_find(pw, "last");
	assert_non_null(e); /* no final newline */
	assert_null(pf_passwd_find(pw, "nisuser"));
	assert_null(pf_passwd_find(pw, "bad"));
	assert_null(pf_passwd_find(NULL, "pi"));
	assert_null(pf_passwd_find_uid(pw, 4242));
	pf_passwd_free(pw);
}

static void test_passwd_regular(void **state)
{
	PfPasswd *pw = NULL;
	PfPasswdEntry *u = NULL;
	char **shells = NULL;
	size_t n = 0;

	assert_int_equal(pf_passwd_parse(S(passwd_text), &pw), 0);

	/* Without /etc/shells: nologin, false, sync are not login shells; empty is /bin/sh. */
	assert_int_equal(pf_passwd_regular(pw, NULL, &u, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(u[0].name, "pi");
	assert_string_equal(u[1].name, "ops");
	assert_string_equal(u[2].name, "noshell");
	assert_string_equal(u[3].name, "last");
	pf_passwd_entries_free(u, n);

	/* With /etc/shells: only what it lists, /bin and /usr/bin being the same. */
	assert_int_equal(pf_shells_parse(S("# /etc/shells: valid login shells\n"
					   "/bin/sh\n/usr/bin/bash\n  /bin/dash # comment\n"
					   "not-absolute\n\n"),
					 &shells),
			 3);
	assert_string_equal(shells[0], "/bin/sh");
	assert_string_equal(shells[1], "/usr/bin/bash");
	assert_string_equal(shells[2], "/bin/dash");
	assert_null(shells[3]);
	assert_int_equal(pf_passwd_regular(pw, shells, &u, &n), 0);
	assert_int_equal(n, 3); /* ops has zsh, not listed */
	assert_string_equal(u[0].name, "pi");
	assert_string_equal(u[1].name, "noshell");
	assert_string_equal(u[2].name, "last");
	pf_passwd_entries_free(u, n);

	assert_true(pf_shell_is_login("/usr/bin/sh", shells));
	assert_false(pf_shell_is_login("/usr/bin/zsh", shells));
	assert_true(pf_shell_is_login("", NULL));
	assert_false(pf_shell_is_login("/usr/sbin/nologin", NULL));
	assert_false(pf_shell_is_login("/sbin/halt", NULL));
	assert_false(pf_shell_is_login("bash", NULL));
	pf_strv_free(shells);
	pf_passwd_free(pw);
}

static void test_passwd_limits(void **state)
{
	static const char nul_text[] = "a:x:1:1::/:/bin/sh\0junk\nb:x:2:2::/:/bin/sh\n";
	size_t len = PF_PASSWD_MAX_LINES + 1;
	char *text = malloc(len);
	PfPasswd *pw = NULL;

	assert_non_null(text);
	memset(text, '\n', len);
	assert_int_equal(pf_passwd_parse(text, len, &pw), -E2BIG);
	assert_null(pw);
	assert_non_null(strstr(pf_error_message(-E2BIG), "lines"));
	free(text);

	len = PF_PASSWD_MAX_BYTES + 1;
	text = malloc(len);
	assert_non_null(text);
	memset(text, 'a', len);
	assert_int_equal(pf_passwd_parse(text, len, &pw), -EFBIG);
	free(text);

	/* A NUL inside a line makes it malformed, not shorter. */
	assert_int_equal(pf_passwd_parse(nul_text, sizeof(nul_text) - 1, &pw), 0);
	assert_int_equal(pw->n, 1);
	assert_string_equal(pw->entries[0].name, "b");
	assert_int_equal(pw->n_skipped, 1);
	pf_passwd_free(pw);

	assert_int_equal(pf_passwd_parse("", 0, &pw), 0);
	assert_int_equal(pw->n, 0);
	pf_passwd_free(pw);
}

static void test_group(void **state)
{
	PfGroup *g = NULL;
	const PfGroupEntry *e;
	gid_t gid = 0;

	assert_int_equal(pf_group_parse(S("root:x:0:\nsudo:x:27:pi,ops\nbad:x:y:\n"
					  "users:x:100:\nsudo:x:99:\nshort:x:1\n"),
					&g),
			 0);
	assert_int_equal(g->n, 3);
	assert_int_equal(g->n_skipped, 2);
	assert_int_equal(pf_group_gid(g, "sudo", &gid), 0);
	assert_int_equal(gid, 27);
	e = pf_group_find(g, "sudo");
	assert_int_equal(e->n_members, 2);
	assert_string_equal(e->members[1], "ops");
	assert_int_equal(pf_group_find(g, "root")->n_members, 0);
	assert_int_equal(pf_group_gid(g, "nosuch", &gid), -ENOENT);
	pf_group_free(g);
}

static void test_shadow(void **state)
{
	const char *t = "root:*:19000:0:99999:7:::\n"
			"pi:*:19000:0:99999:7:::\n"
			"ops:$6$salt$hash:19000:0:99999:7:::\n"
			"lck:!$6$salt$hash:19000::::::\n"
			"open::19000::::::\n"
			"bang:!:19000::::::\n"
			"des:abJnggxhB/yWI:19000::::::\n";
	PfPasswordState s;

	assert_int_equal(pf_shadow_state(S(t), "pi", &s), 0);
	assert_int_equal(s, PF_PASSWORD_DISABLED);
	assert_int_equal(pf_shadow_state(S(t), "ops", &s), 0);
	assert_int_equal(s, PF_PASSWORD_SET);
	assert_int_equal(pf_shadow_state(S(t), "lck", &s), 0);
	assert_int_equal(s, PF_PASSWORD_LOCKED);
	assert_int_equal(pf_shadow_state(S(t), "open", &s), 0);
	assert_int_equal(s, PF_PASSWORD_EMPTY);
	assert_int_equal(pf_shadow_state(S(t), "bang", &s), 0);
	assert_int_equal(s, PF_PASSWORD_DISABLED);
	assert_int_equal(pf_shadow_state(S(t), "des", &s), 0);
	assert_int_equal(s, PF_PASSWORD_SET);
	assert_int_equal(pf_shadow_state(S(t), "nosuch", &s), -ENOENT);
	assert_string_equal(pf_password_state_name(PF_PASSWORD_LOCKED), "locked");
}

static void test_os_release(void **state)
{
	const char *t = "PRETTY_NAME=\"Raspbian GNU/Linux 10 (buster)\"\n"
			"ID=raspbian\n"
			"  VERSION_CODENAME=buster  \n"
			"IDX=nope\n"
			"HYPRIOT_OS='HypriotOS/armhf'\n"
			"ESC=\"a \\\"quoted\\\" \\$word\"\r\n"
			"EMPTY=\n";
	char *v = NULL;

	assert_int_equal(pf_os_release_get(S(t), "ID", &v), 0);
	assert_string_equal(v, "raspbian");
	free(v);
	assert_int_equal(pf_os_release_get(S(t), "PRETTY_NAME", &v), 0);
	assert_string_equal(v, "Raspbian GNU/Linux 10 (buster)");
	free(v);
	assert_int_equal(pf_os_release_get(S(t), "VERSION_CODENAME", &v), 0);
	assert_string_equal(v, "buster");
	free(v);
	assert_int_equal(pf_os_release_get(S(t), "HYPRIOT_OS", &v), 0);
	assert_string_equal(v, "HypriotOS/armhf");
	free(v);
	assert_int_equal(pf_os_release_get(S(t), "ESC", &v), 0);
	assert_string_equal(v, "a \"quoted\" $word");
	free(v);
	assert_int_equal(pf_os_release_get(S(t), "EMPTY", &v), 0);
	assert_string_equal(v, "");
	free(v);
	assert_int_equal(pf_os_release_get(S(t), "VERSION_ID", &v), -ENOENT);
}

/* An ELF header: class, data, machine, and (ELF32) e_flags. */
static void make_elf(uint8_t *h, uint8_t cls, uint8_t data, uint16_t machine, uint32_t flags)
{
	memset(h, 0, 64);
	memcpy(h, "\177ELF", 4);
	h[4] = cls;
	h[5] = data;
	h[6] = 1;
	if (data == 1) {
		h[18] = (uint8_t)machine;
		h[19] = (uint8_t)(machine >> 8);
		h[36] = (uint8_t)flags;
		h[37] = (uint8_t)(flags >> 8);
		h[38] = (uint8_t)(flags >> 16);
		h[39] = (uint8_t)(flags >> 24);
	} else {
		h[19] = (uint8_t)machine;
		h[18] = (uint8_t)(machine >> 8);
	}
}

static void test_elf_arch(void **state)
{
	uint8_t h[64];
	const char *a = NULL;

	make_elf(h, 1, 1, 40, 0x05000400);
	assert_int_equal(pf_elf_arch(h, sizeof(h), &a), 0);
	assert_string_equal(a, "armhf");
	make_elf(h, 1, 1, 40, 0x05000200);
	assert_int_equal(pf_elf_arch(h, sizeof(h), &a), 0);
	assert_string_equal(a, "armel");
	make_elf(h, 2, 1, 183, 0);
	assert_int_equal(pf_elf_arch(h, sizeof(h), &a), 0);
	assert_string_equal(a, "arm64");
	make_elf(h, 2, 1, 62, 0);
	assert_int_equal(pf_elf_arch(h, sizeof(h), &a), 0);
	assert_string_equal(a, "amd64");
	make_elf(h, 1, 1, 3, 0);
	assert_int_equal(pf_elf_arch(h, sizeof(h), &a), 0);
	assert_string_equal(a, "i386");
	make_elf(h, 2, 2, 21, 0); /* big-endian PPC64 */
	assert_int_equal(pf_elf_arch(h, sizeof(h), &a), 0);
	assert_string_equal(a, "unknown");

	make_elf(h, 2, 1, 183, 0);
	assert_int_equal(pf_elf_arch(h, 60, &a), -EINVAL); /* ELF64 cut short */
	assert_int_equal(pf_elf_arch((const uint8_t *)"#!/bin/sh\n", 10, &a), -EINVAL);
	h[4] = 3;
	assert_int_equal(pf_elf_arch(h, sizeof(h), &a), -EINVAL);
}

static void test_cloud_init_version(void **state)
{
	char *v = NULL;
	int major = 0, minor = 0;

	assert_int_equal(pf_cloud_init_version_parse(S("# vi: ts=4\n\n__VERSION__ = \"0.7.9\"\n"
						       "FEATURES = []\n"),
						     &v, &major, &minor),
			 0);
	assert_string_equal(v, "0.7.9");
	assert_int_equal(major, 0);
	assert_int_equal(minor, 7);
	free(v);
	assert_int_equal(pf_cloud_init_version_parse(S("__VERSION__='25.1.4'\n"
						       "_PACKAGED_VERSION = \"25.1.4-1\"\n"),
						     &v, &major, &minor),
			 0);
	assert_string_equal(v, "25.1.4");
	assert_int_equal(major, 25);
	assert_int_equal(minor, 1);
	free(v);
	assert_int_equal(
		pf_cloud_init_version_parse(S("__VERSION__ = \"26\"\n"), &v, &major, &minor), 0);
	assert_int_equal(major, 26);
	assert_int_equal(minor, 0);
	free(v);
	assert_int_equal(pf_cloud_init_version_parse(S("__VERSION__ = get()\n"
						       "# __VERSION__ = \"1.0\"\n"
						       "__VERSION__ = \"unterminated\n"),
						     &v, &major, &minor),
			 -ENOENT);
}

static void test_flavor_names(void **state)
{
	PfFlavor f = PF_FLAVOR_UNKNOWN;

	for (int i = PF_FLAVOR_UNKNOWN + 1; i < _PF_FLAVOR_MAX; i++) {
		assert_int_equal(pf_flavor_from_name(pf_flavor_name((PfFlavor)i), &f), 0);
		assert_int_equal(f, i);
	}
	assert_int_equal(pf_flavor_from_name("RPIOS-Trixie", &f), 0);
	assert_int_equal(f, PF_FLAVOR_RPIOS_TRIXIE);
	assert_int_equal(pf_flavor_from_name("raspbian-buster", &f), 0);
	assert_int_equal(f, PF_FLAVOR_RASPBIAN);
	assert_int_equal(pf_flavor_from_name("plain", &f), 0);
	assert_int_equal(f, PF_FLAVOR_DEBIAN);
	assert_int_equal(pf_flavor_from_name("unknown", &f), -EINVAL);
	assert_int_equal(pf_flavor_from_name("windows", &f), -EINVAL);
	assert_non_null(strstr(pf_error_message(-EINVAL), "'windows'"));
	assert_string_equal(pf_flavor_name(_PF_FLAVOR_MAX), "unknown");
	assert_string_equal(pf_net_stack_name(PF_NET_CLOUD_INIT), "cloud-init");
	assert_string_equal(pf_net_stack_name(PF_NET_NETWORKMANAGER), "networkmanager");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passwd_parse),  cmocka_unit_test(test_passwd_regular),
		cmocka_unit_test(test_passwd_limits), cmocka_unit_test(test_group),
		cmocka_unit_test(test_shadow),	      cmocka_unit_test(test_os_release),
		cmocka_unit_test(test_elf_arch),      cmocka_unit_test(test_cloud_init_version),
		cmocka_unit_test(test_flavor_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
