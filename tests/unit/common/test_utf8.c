/* test_utf8: well-formedness and repair of request text. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static void test_valid_and_not(void **state)
{
    (void)state;
    static const char *const good[] = {"",
                                       "plain ascii",
                                       "caf\xc3\xa9",
                                       "\xe2\x82\xac",
                                       "\xf0\x9f\x93\xa7",
                                       "\xf4\x8f\xbf\xbf",
                                       "\xed\x9f\xbf"};
    static const char *const bad[] = {
        "\xc3",             /* cut short */
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong, three bytes */
        "\xed\xa0\x80",     /* a surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xff",             /* never in UTF-8 */
        "ok\x80",           /* a stray continuation byte */
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(sp_utf8_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(sp_utf8_valid(bad[i], strlen(bad[i])));
    /* The length bounds the look: a character cut by it is not well-formed. */
    assert_false(sp_utf8_valid("\xe2\x82\xac", 2));
    assert_true(sp_utf8_valid("\xe2\x82\xac"
                              "x",
                              3));
}

static void test_char_lengths(void **state)
{
    (void)state;
    size_t bad = 0;
    assert_int_equal(1, sp_utf8_char((const unsigned char *)"a", 1, &bad));
    assert_int_equal(2, sp_utf8_char((const unsigned char *)"\xc3\xa9", 2, &bad));
    assert_int_equal(4, sp_utf8_char((const unsigned char *)"\xf0\x9f\x93\xa7", 4, &bad));
    assert_int_equal(0, sp_utf8_char((const unsigned char *)"\xe2\x82x", 3, &bad));
    assert_int_equal(2, bad); /* the maximal ill-formed subpart: E2 82 */
    assert_int_equal(0, sp_utf8_char((const unsigned char *)"\xff", 1, &bad));
    assert_int_equal(1, bad);
}

static void test_clean(void **state)
{
    (void)state;
    assert_null(sp_utf8_clean("already fine \xc3\xa9"));
    char *c = sp_utf8_clean("a\xffz\xe2\x82!");
    assert_non_null(c);
    assert_string_equal("a\xef\xbf\xbdz\xef\xbf\xbd!", c);
    assert_true(sp_utf8_valid(c, strlen(c)));
    free(c);
    c = sp_utf8_clean("\xc3");
    assert_string_equal("\xef\xbf\xbd", c);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_not),
        cmocka_unit_test(test_char_lengths),
        cmocka_unit_test(test_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
