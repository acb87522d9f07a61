/* test_snippet: the pixel's URL and HTML, and quoted-printable (RFC 2045 section 6.7). */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "snippet.h"

/* Decodes quoted-printable: soft breaks go, =XX become their byte. */
static char *decode(const char *qp)
{
    char *out = malloc(strlen(qp) + 1);
    assert_non_null(out);
    size_t o = 0;
    for (const char *p = qp; *p; p++) {
        if ('=' == p[0] && '\r' == p[1] && '\n' == p[2]) {
            p += 2;
        } else if ('=' == p[0]) {
            char hex[3] = {p[1], p[2], 0};
            out[o++] = (char)strtol(hex, NULL, 16);
            p += 2;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
    return out;
}

/* Every line at most 76 characters; only printable ASCII and CRLF. */
static void check_lines(const char *qp)
{
    size_t col = 0;
    for (const char *p = qp; *p; p++) {
        if ('\r' == *p) {
            assert_int_equal('\n', p[1]);
            assert_int_equal('=', p[-1]);
            p++;
            col = 0;
            continue;
        }
        assert_true(*p >= 32 && *p <= 126);
        col++;
        assert_true(col <= 76);
    }
}

static void qp_round_trip(const char *text)
{
    char *qp = sp_snippet_qp(text);
    check_lines(qp);
    char *back = decode(qp);
    assert_string_equal(text, back);
    free(back);
    free(qp);
}

static void test_qp(void **state)
{
    char *qp = sp_snippet_qp("<img src=\"a\">");
    assert_string_equal("<img src=3D\"a\">", qp);
    free(qp);
    qp = sp_snippet_qp("ends with a space ");
    assert_string_equal("ends with a space=20", qp);
    free(qp);
    qp = sp_snippet_qp("caf\xc3\xa9\ttab");
    assert_string_equal("caf=C3=A9\ttab", qp);
    free(qp);

    char long_text[400];
    for (size_t i = 0; i < sizeof(long_text) - 1; i++)
        long_text[i] = "a=b \xff"[i % 5];
    long_text[sizeof(long_text) - 1] = '\0';
    qp_round_trip(long_text);
    qp_round_trip("");
    qp_round_trip(
        "=================================================================================");
}

static void test_pixel(void **state)
{
    unsigned char key[SP_AUTH_KEY_BYTES] = {7};
    sp_token_t *t = sp_token_new(key);
    sp_token_data_t d = {.kind = SP_TOKEN_OPEN};
    snprintf(d.campaign, sizeof(d.campaign), "spring");
    snprintf(d.recipient, sizeof(d.recipient), "ann@example.com");
    char a[SP_SNIPPET_URL_MAX], b[SP_SNIPPET_URL_MAX], html[SP_SNIPPET_HTML_MAX];
    assert_int_equal(0, sp_snippet_url(t, "https://t.example.com/", &d, a, sizeof(a)));
    assert_int_equal(0, sp_snippet_url(t, "https://t.example.com", &d, b, sizeof(b)));
    assert_string_equal(a, b); /* a trailing '/' is ignored, and sealing is deterministic */
    assert_int_equal(0, strncmp(a, "https://t.example.com/o/", 24));
    assert_non_null(strstr(a, ".gif"));
    assert_null(strstr(a, "ann"));
    sp_token_data_t back;
    const char *tok = a + 24;
    assert_int_equal(0, sp_token_open(t, tok, strlen(tok) - 4, &back));
    assert_string_equal("ann@example.com", back.recipient);
    sp_snippet_pixel_html(a, html, sizeof(html));
    assert_int_equal(0, strncmp(html, "<img src=\"https://t.example.com/o/", 34));
    assert_non_null(strstr(html, "width=\"1\" height=\"1\" alt=\"\""));
    assert_int_equal(-1, sp_snippet_url(t, "https://t.example.com", &d, a, 40));
    sp_token_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_qp),
        cmocka_unit_test(test_pixel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
