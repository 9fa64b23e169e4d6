/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for node/edit.c: idempotent edits of configuration files. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/edit.h"
#include "util/error.h"

static char *edit_block(const char *text, const char *block)
{
	char *out = NULL;
	size_t len = 0;

	assert_int_equal(pf_edit_replace_block(text, strlen(text), block, &out, &len), 0);
	assert_int_equal(strlen(out), len);
	return out;
}

static void test_block_appended_then_replaced(void **state)
{
	const char *b1 =
		"# piflash begin\ninterface eth0\nstatic ip_address=10.0.0.3/24\n# piflash end\n";
	const char *b2 =
		"# piflash begin\ninterface eth0\nstatic ip_address=10.0.0.4/24\n# piflash end\n";
	char *once, *twice, *again;

	(void)state;
	once = edit_block("hostname\nclientid\n", b1);
	assert_string_equal(once, "hostname\nclientid\n# piflash begin\ninterface eth0\n"
				  "static ip_address=10.0.0.3/24\n# piflash end\n");
	/* Running again replaces the block: no duplicate. */
	twice = edit_block(once, b2);
	assert_string_equal(twice, "hostname\nclientid\n# piflash begin\ninterface eth0\n"
				   "static ip_address=10.0.0.4/24\n# piflash end\n");
	again = edit_block(twice, b2);
	assert_string_equal(again, twice);
	free(once);
	free(twice);
	free(again);
}

static void test_block_no_trailing_newline(void **state)
{
	char *out;

	(void)state;
	out = edit_block("a\nb", "# piflash begin\nx\n# piflash end\n");
	assert_string_equal(out, "a\nb\n# piflash begin\nx\n# piflash end\n");
	free(out);
	out = edit_block("", "# piflash begin\nx\n# piflash end\n");
	assert_string_equal(out, "# piflash begin\nx\n# piflash end\n");
	free(out);
}

static void test_block_in_the_middle_keeps_the_rest(void **state)
{
	char *out;

	(void)state;
	out = edit_block("a\n# piflash begin\nold\n# piflash end\nz\n",
			 "# piflash begin\nnew\n# piflash end\n");
	assert_string_equal(out, "a\n# piflash begin\nnew\n# piflash end\nz\n");
	free(out);
}

static void test_block_unterminated(void **state)
{
	const char *t = "a\n# piflash begin\nold\n";
	char *out = NULL;
	size_t len;

	(void)state;
	pf_error_clear();
	assert_int_equal(
		pf_edit_replace_block(t, strlen(t), "# piflash begin\n# piflash end\n", &out, &len),
		-EINVAL);
	assert_null(out);
	assert_non_null(strstr(pf_error_message(-EINVAL), "line 2"));
}

static void test_hosts(void **state)
{
	const char *t = "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tblack-pearl\n"
			"127.0.1.1 old-dup\n";
	char *out, *again;
	size_t len;

	(void)state;
	assert_int_equal(pf_edit_hosts(t, strlen(t), "worker3.lan worker3", &out, &len), 0);
	assert_string_equal(
		out, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\tworker3.lan worker3\n");
	assert_int_equal(pf_edit_hosts(out, len, "worker3.lan worker3", &again, &len), 0);
	assert_string_equal(again, out);
	free(out);
	free(again);

	/* No such line: appended; a 127.0.1.10 line is another address and stays. */
	t = "127.0.0.1 localhost\n127.0.1.10 other";
	assert_int_equal(pf_edit_hosts(t, strlen(t), "w1", &out, &len), 0);
	assert_string_equal(out, "127.0.0.1 localhost\n127.0.1.10 other\n127.0.1.1\tw1\n");
	free(out);
}

static void test_cmdline(void **state)
{
	const char *t = "console=serial0,115200 root=PARTUUID=50494603-02 rootwait "
			"cfg80211.ieee80211_regdom=GB quiet cfg80211.ieee80211_regdom=US\n";
	char *out;
	size_t len;

	(void)state;
	assert_int_equal(
		pf_edit_cmdline(t, strlen(t), "cfg80211.ieee80211_regdom", "DE", &out, &len), 0);
	assert_string_equal(out, "console=serial0,115200 root=PARTUUID=50494603-02 rootwait "
				 "cfg80211.ieee80211_regdom=DE quiet\n");
	free(out);

	t = "root=/dev/mmcblk0p2 rootwait";
	assert_int_equal(pf_edit_cmdline(t, strlen(t), "k", "v", &out, &len), 0);
	assert_string_equal(out, "root=/dev/mmcblk0p2 rootwait k=v\n");
	free(out);
}

static void test_shadow(void **state)
{
	const char *t = "root:*:19000:0:99999:7:::\npi:!:19000:0:99999:7:::\n";
	char *out = NULL;
	size_t len;

	(void)state;
	assert_int_equal(pf_edit_shadow(t, strlen(t), "pi", "$6$salt$hash", &out, &len), 0);
	assert_string_equal(out, "root:*:19000:0:99999:7:::\npi:$6$salt$hash:19000:0:99999:7:::\n");
	free(out);
	out = NULL;
	assert_int_equal(pf_edit_shadow(t, strlen(t), "p", "$6$x$y", &out, &len), -ENOENT);
	assert_null(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_block_appended_then_replaced),
		cmocka_unit_test(test_block_no_trailing_newline),
		cmocka_unit_test(test_block_in_the_middle_keeps_the_rest),
		cmocka_unit_test(test_block_unterminated),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_shadow),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
