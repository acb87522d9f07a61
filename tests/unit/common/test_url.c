/* test_url: link targets are refused or written as URLs valid by RFC 3986. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "url.h"

/* RFC 3986 appendix A: the characters a URI may hold, '%' only before two hex digits. */
static void assert_valid_uri(const char *u)
{
    for (const char *p = u; *p; p++) {
        unsigned char c = (unsigned char)*p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("-._~:/?#[]@!$&'()*+,;=%", c);
        if (!ok)
            fail_msg("'%s' holds byte 0x%02x, which no URI may", u, c);
        if ('%' == c && !(p[1] && p[2] && strchr("0123456789ABCDEFabcdef", p[1]) &&
                          strchr("0123456789ABCDEFabcdef", p[2])))
            fail_msg("'%s' has a '%%' that starts no escape", u);
    }
    const char *hash = strchr(u, '#');
    if (hash && strchr(hash + 1, '#'))
        fail_msg("'%s' has two '#'", u);
}

static void expect(const char *in, const char *want)
{
    char out[512], err[160] = "";
    if (0 != sp_url_target(in, out, sizeof(out), err, sizeof(err)))
        fail_msg("'%s' refused: %s", in, err);
    assert_string_equal(out, want);
    assert_valid_uri(out);
}

static void refused(const char *in, const char *why)
{
    char out[512], err[160] = "";
    if (0 == sp_url_target(in, out, sizeof(out), err, sizeof(err)))
        fail_msg("'%s' accepted as '%s'", in, out);
    if (!strstr(err, why))
        fail_msg("'%s': the reason '%s' does not say '%s'", in, err, why);
}

static void test_valid_urls_unchanged(void **state)
{
    (void)state;
    expect("https://example.com/", "https://example.com/");
    expect("https://example.com/x?y=1&z=%20", "https://example.com/x?y=1&z=%20");
    expect("http://example.com:8080/a/b;c=d?e=f/g?h#frag/x?y",
           "http://example.com:8080/a/b;c=d?e=f/g?h#frag/x?y");
    expect("https://user:pw@example.com/", "https://user:pw@example.com/");
    expect("https://[2001:db8::1]:443/x", "https://[2001:db8::1]:443/x");
    expect("https://192.0.2.1", "https://192.0.2.1");
    expect("https://example.com?q", "https://example.com?q");
    expect("https://xn--exmple-cua.com/", "https://xn--exmple-cua.com/");
}

static void test_scheme_lower_case(void **state)
{
    (void)state;
    expect("HTTPS://Example.com/Path", "https://Example.com/Path");
    expect("Http://example.com", "http://example.com");
}

static void test_non_ascii_encoded(void **state)
{
    (void)state;
    expect("https://example.com/caf\xc3\xa9?q=\xc3\xbc#\xc3\xb6",
           "https://example.com/caf%C3%A9?q=%C3%BC#%C3%B6");
    expect("https://example.com/\xff\xfe", "https://example.com/%FF%FE");
}

static void test_other_bytes_encoded(void **state)
{
    (void)state;
    expect("https://example.com/a{b}|c\\d^e`f", "https://example.com/a%7Bb%7D%7Cc%5Cd%5Ee%60f");
    expect("https://example.com/100%", "https://example.com/100%25");
    expect("https://example.com/%zz%4", "https://example.com/%25zz%254");
    expect("https://example.com/a#b#c", "https://example.com/a#b%23c");
    expect("https://example.com/[x]?[y]", "https://example.com/%5Bx%5D?%5By%5D");
    expect("https://us\xc3\xa9r@example.com/", "https://us%C3%A9r@example.com/");
}

static void test_refused(void **state)
{
    (void)state;
    refused("javascript:alert(1)", "http");
    refused("//example.com/", "http");
    refused("ftp://example.com/", "http");
    refused("", "http");
    refused("https://example.com/\x01x", "control");
    refused("https://example.com/\x7f", "control");
    refused("https://example.com/\r\nSet-Cookie: a=b", "control");
    refused("https://example.com/\tx", "control");
    refused("https://example.com/a b", "spaces");
    refused("https://example.com/\"><script>", "spaces");
    refused("https://", "no host");
    refused("https:///path", "no host");
    refused("https://?q", "no host");
    refused("http://:80/", "no host");
    refused("https://user@/", "no host");
    refused("https://ex\xc3\xa4mple.com/", "xn--");
    refused("https://exa{mple.com/", "host");
    refused("https://example.com:99999/", "port");
    refused("https://example.com:8o/", "port");
    refused("https://[::1/", "IP");
    refused("https://[]/", "IP");
}

static void test_too_long(void **state)
{
    (void)state;
    char in[300], out[64], err[160];
    snprintf(in, sizeof(in), "https://example.com/%0200d", 0);
    assert_int_equal(-1, sp_url_target(in, out, sizeof(out), err, sizeof(err)));
    assert_non_null(strstr(err, "too long"));
    /* Escaping may triple a target's length. */
    assert_int_equal(-1, sp_url_target("https://e.com/\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                                       "\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9",
                                       out, 40, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_urls_unchanged),
        cmocka_unit_test(test_scheme_lower_case),
        cmocka_unit_test(test_non_ascii_encoded),
        cmocka_unit_test(test_other_bytes_encoded),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
