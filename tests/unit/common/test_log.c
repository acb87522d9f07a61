/* test_log: logfmt quoting of request text, levels, and the line sp_log writes. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static void quote_is(const char *s, const char *want)
{
    char buf[256];
    memset(buf, 'Z', sizeof(buf));
    const char *got = sp_log_quote(s, buf, sizeof(buf));
    assert_ptr_equal(buf, got);
    if (0 != strcmp(want, buf))
        fail_msg("'%s' quotes as '%s', want '%s'", s ? s : "(null)", buf, want);
}

static void test_quote(void **state)
{
    quote_is("hello", "\"hello\"");
    quote_is("", "\"\"");
    quote_is(NULL, "\"\"");
    quote_is("say \"hi\"", "\"say \\\"hi\\\"\"");
    quote_is("C:\\path\\", "\"C:\\\\path\\\\\"");
    quote_is("a=b c", "\"a=b c\"");
    quote_is("line1\nline2", "\"line1\\x0aline2\"");
    quote_is("\r\t\x01\x1f\x7f", "\"\\x0d\\x09\\x01\\x1f\\x7f\"");
    quote_is("\x1b[31mred", "\"\\x1b[31mred\"");
    /* Bytes from 0x80 up pass as they are: UTF-8 stays readable. */
    quote_is("caf\xc3\xa9 \xe2\x82\xac", "\"caf\xc3\xa9 \xe2\x82\xac\"");
    quote_is("\xff\x80", "\"\xff\x80\"");
    quote_is(" ", "\" \"");
    quote_is("~", "\"~\"");
}

/* Checks that Q, of at most LEN bytes with its NUL, is a quoted string whose escapes are all
 * whole and whose meaning is a prefix of S. Returns how many bytes of S it holds. */
static size_t check_quoted(const char *s, const char *q, size_t len)
{
    size_t n = strlen(q);
    assert_true(n < len);
    assert_true(n >= 2);
    assert_int_equal('"', q[0]);
    assert_int_equal('"', q[n - 1]);
    size_t used = 0;
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char want = (unsigned char)s[used], c = (unsigned char)q[i];
        assert_true(c >= 0x20 && c != 0x7f); /* nothing raw that a terminal would act on */
        if ('\\' == c) {
            assert_true(i + 1 < n - 1);
            char next = q[i + 1];
            if ('"' == next || '\\' == next) {
                assert_int_equal(want, next);
                i++;
            } else {
                assert_int_equal('x', next);
                assert_true(i + 3 < n - 1);
                char hex[3] = {q[i + 2], q[i + 3], '\0'};
                assert_int_equal(want, strtoul(hex, NULL, 16));
                assert_true(want < 0x20 || 0x7f == want);
                i += 3;
            }
        } else {
            assert_true('"' != c);
            assert_int_equal(want, c);
        }
        used++;
    }
    return used;
}

static void test_quote_cut(void **state)
{
    /* Every buffer size, with plain text, escapes of two and of four bytes. */
    const char *inputs[] = {
        "abcdefghijklmnopqrstuvwxyz0123456789",
        "\"\"\"\"\"\"\"\"\"\"\\\\\\\\\\\\\\\\\\\\",
        "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c",
        "a\"b\\c\nd\x7f"
        "e\"f\\g\x01h",
    };
    for (size_t k = 0; k < sizeof(inputs) / sizeof(inputs[0]); k++) {
        const char *s = inputs[k];
        size_t prev = 0;
        for (size_t len = 3; len < 80; len++) {
            char buf[96];
            memset(buf, 'Z', sizeof(buf));
            sp_log_quote(s, buf, len);
            for (size_t i = len; i < sizeof(buf); i++)
                assert_int_equal('Z', buf[i]); /* nothing written past LEN */
            size_t used = check_quoted(s, buf, len);
            assert_true(used >= prev); /* more room never holds less */
            prev = used;
        }
        assert_int_equal(strlen(s), prev); /* and enough room holds it all */
    }

    /* A long value is cut but still one quoted, terminated string. */
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char buf[64];
    sp_log_quote(big, buf, sizeof(buf));
    size_t used = check_quoted(big, buf, sizeof(buf));
    assert_true(used >= sizeof(buf) - 8);

    /* Too small to quote anything: an empty string, or nothing at all for 0. */
    char tiny[3] = {'Z', 'Z', 'Z'};
    sp_log_quote("abc", tiny, 2);
    assert_int_equal('\0', tiny[0]);
    assert_int_equal('Z', tiny[1]);
    tiny[0] = 'Z';
    sp_log_quote("abc", tiny, 1);
    assert_int_equal('\0', tiny[0]);
    tiny[0] = 'Z';
    sp_log_quote("abc", tiny, 0);
    assert_int_equal('Z', tiny[0]);
    sp_log_quote("abc", tiny, 3);
    assert_string_equal("\"\"", tiny);
}

static void test_set_level(void **state)
{
    assert_int_equal(0, sp_log_set_level("debug"));
    assert_int_equal(0, sp_log_set_level("info"));
    assert_int_equal(0, sp_log_set_level("warn"));
    assert_int_equal(0, sp_log_set_level("error"));
    assert_int_equal(-1, sp_log_set_level(""));
    assert_int_equal(-1, sp_log_set_level("INFO"));
    assert_int_equal(-1, sp_log_set_level("warning"));
    assert_int_equal(-1, sp_log_set_level("inf"));
    assert_int_equal(-1, sp_log_set_level("info "));
    assert_int_equal(0, sp_log_set_level("info"));
}

/* Runs FN with standard error sent to a pipe and returns what it wrote (malloc'd). */
static char *capture(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(0, pipe(fds));
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fds[1], STDERR_FILENO) >= 0);
    close(fds[1]);
    fn();
    dup2(saved, STDERR_FILENO);
    close(saved);

    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    ssize_t r;
    while ((r = read(fds[0], out + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    out[n] = '\0';
    return out;
}

static void log_levels(void)
{
    sp_log_set_level("warn");
    sp_log_debug("debug line", "k=%d", 1);
    sp_log_info("info line", "k=%d", 2);
    sp_log_warn("warn line", "k=%d", 3);
    sp_log_error("error line", "k=%d", 4);
    sp_log_set_level("debug");
    sp_log_debug("debug again", "k=%d", 5);
    sp_log_set_level("info");
}

static void test_levels(void **state)
{
    char *out = capture(log_levels);
    assert_null(strstr(out, "debug line"));
    assert_null(strstr(out, "info line"));
    assert_non_null(strstr(out, "level=warn msg=\"warn line\" k=3\n"));
    assert_non_null(strstr(out, "level=error msg=\"error line\" k=4\n"));
    assert_non_null(strstr(out, "level=debug msg=\"debug again\" k=5\n"));
    int lines = 0;
    for (const char *p = out; *p; p++)
        lines += '\n' == *p;
    assert_int_equal(3, lines);
    free(out);
}

static void log_one(void)
{
    char q[64];
    sp_log_info("request \"done\"\n", "ua=%s n=%d", sp_log_quote("Evil\nUA", q, sizeof(q)), 7);
}

static void test_line(void **state)
{
    char *out = capture(log_one);
    /* ts=YYYY-MM-DDTHH:MM:SS.mmmZ level=info msg="..." fields, one line. */
    assert_int_equal(0, strncmp(out, "ts=", 3));
    const char *ts = out + 3;
    for (int i = 0; i < 24; i++) {
        const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ";
        if ('d' == shape[i])
            assert_true(ts[i] >= '0' && ts[i] <= '9');
        else
            assert_int_equal(shape[i], ts[i]);
    }
    assert_string_equal(" level=info msg=\"request \\\"done\\\"\\x0a\" ua=\"Evil\\x0aUA\" n=7\n",
                        ts + 24);
    free(out);
}

static void log_long(void)
{
    char big[4000];
    memset(big, 'f', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sp_log_error("long", "x=%s", big);
    sp_log_error(big, "y=1");
}

static void test_long_line(void **state)
{
    char *out = capture(log_long);
    /* Two lines, each cut to the line buffer and ended by a newline. */
    char *second = strchr(out, '\n');
    assert_non_null(second);
    second++;
    assert_true((size_t)(second - out) <= 2048);
    assert_int_equal(0, strncmp(out, "ts=", 3));
    assert_int_equal(0, strncmp(second, "ts=", 3));
    char *end = strchr(second, '\n');
    assert_non_null(end);
    assert_int_equal('\0', end[1]);
    assert_true((size_t)(end + 1 - second) <= 2048);
    /* A message longer than its quoting buffer is cut but stays one quoted value. */
    char *msg = strstr(second, "msg=\"");
    assert_non_null(msg);
    char *close = strchr(msg + 5, '"');
    assert_non_null(close);
    assert_int_equal(0, strcmp(close, "\" y=1\n"));
    free(out);
}

static void log_json(void)
{
    char q[64];
    assert_int_equal(0, sp_log_set_format("json"));
    sp_log_warn("bad \"thing\"\n", "ua=%s n=%d neg=%d ip=%s big=%s flag",
                sp_log_quote("Evil\nUA \"x\"\\", q, sizeof(q)), 7, -3, "127.0.0.1",
                "12345678901234567890");
    assert_int_equal(0, sp_log_set_format("logfmt"));
    assert_int_equal(-1, sp_log_set_format("xml"));
}

static void test_json(void **state)
{
    char *out = capture(log_json);
    assert_int_equal(0, strncmp(out, "{\"ts\":\"", 7));
    const char *rest = strstr(out, "\",\"level\"");
    assert_non_null(rest);
    assert_string_equal(
        "\",\"level\":\"warn\",\"msg\":\"bad \\\"thing\\\"\\u000a\",\"ua\":\"Evil\\u000aUA "
        "\\\"x\\\"\\\\\",\"n\":7,\"neg\":-3,\"ip\":\"127.0.0.1\",\"big\":"
        "\"12345678901234567890\",\"flag\":\"\"}\n",
        rest);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quote),     cmocka_unit_test(test_quote_cut),
        cmocka_unit_test(test_set_level), cmocka_unit_test(test_levels),
        cmocka_unit_test(test_line),      cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
