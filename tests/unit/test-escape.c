/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Unit tests for util/escape.c: what may reach a terminal or a line-based file as it is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util/escape.h"

static void check(const char *in, const char *want)
{
	char *got = pf_escape(in);

	assert_non_null(got);
	assert_string_equal(got, want);
	assert_int_equal(pf_escape_clean(in), strcmp(in, want) == 0);
	free(got);
}

static void test_controls(void **state)
{
	(void)state;
	check("Debian GNU/Linux 12", "Debian GNU/Linux 12");
	/* ESC ] 0 ; title BEL: a window title; CSI 2 J: clears the screen. */
	check("a\033]0;owned\007b", "a\\x1b]0;owned\\x07b");
	check("\033[2Jx", "\\x1b[2Jx");
	check("one\ntwo\tthree\r", "one\\x0atwo\\x09three\\x0d");
	check("del\177", "del\\x7f");
	/* C1 CSI as UTF-8 (U+009B) and as a raw byte. */
	check("c1\xc2\x9b"
	      "2J",
	      "c1\\xc2\\x9b2J");
	check("raw\x9b"
	      "2J",
	      "raw\\x9b2J");
	/* A right-to-left override reorders what follows it on screen. */
	check("evil\xe2\x80\xaegnp.exe", "evil\\xe2\\x80\\xaegnp.exe");
	/* Backslashes are for people to read, kept. */
	check("C:\\path", "C:\\path");
}

static void test_utf8(void **state)
{
	(void)state;
	check("gr\xc3\xbc\xc3\x9f dich \xe2\x82\xac \xf0\x9f\x8d\x93",
	      "gr\xc3\xbc\xc3\x9f dich \xe2\x82\xac \xf0\x9f\x8d\x93");
	check("\xc0\xaf", "\\xc0\\xaf");		   /* overlong '/' */
	check("\xe0\x80\xaf", "\\xe0\\x80\\xaf");	   /* overlong, three bytes */
	check("\xed\xa0\x80", "\\xed\\xa0\\x80");	   /* a surrogate */
	check("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* past U+10FFFF */
	check("\xe2\x82", "\\xe2\\x82");		   /* truncated at the end */
	check("\xe2\x82x", "\\xe2\\x82x");		   /* truncated in the middle */
	check("\xff", "\\xff");
}

static void test_bytes_and_tokens(void **state)
{
	char *s;

	(void)state;
	s = pf_escape_n("a\0b", 3);
	assert_string_equal(s, "a\\x00b");
	free(s);
	assert_null(pf_escape(NULL));

	assert_true(pf_token_ok("ssh-ed25519", NULL));
	assert_false(pf_token_ok("", NULL));
	assert_false(pf_token_ok("a b", NULL));
	assert_false(pf_token_ok("a\nb", NULL));
	assert_false(pf_token_ok("caf\xc3\xa9", NULL));
	assert_false(pf_token_ok("a,b", ","));
	assert_true(pf_token_ok("a,b", "#"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_controls),
		cmocka_unit_test(test_utf8),
		cmocka_unit_test(test_bytes_and_tokens),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
