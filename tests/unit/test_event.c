/* test_event: IDs, header storage and lookup, cookies, the headers/cookies JSON, timestamps. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"

static int add(sp_event_t *ev, const char *name, const char *value)
{
    return sp_event_add_header(ev, name, strlen(name), value, value ? strlen(value) : 0);
}

/* Parses TEXT as a JSON object or fails the test. The caller decrefs. */
static json_t *parse_object(const char *text)
{
    json_error_t e;
    assert_non_null(text);
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, text);
    assert_true(json_is_object(j));
    return j;
}

static const char *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        fail_msg("no member '%s'", key);
    assert_true(json_is_string(v));
    return json_string_value(v);
}

static void test_id_valid(void **state)
{
    const char *allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_@+.";
    assert_true(sp_event_id_valid(allowed));
    assert_true(sp_event_id_valid("spring-2026"));
    assert_true(sp_event_id_valid("alice+news@example.com"));
    assert_true(sp_event_id_valid("a"));
    assert_true(sp_event_id_valid("."));

    /* Every byte alone: exactly the allowed set passes. */
    for (int c = 1; c < 256; c++) {
        char s[4] = {'x', (char)c, 'y', '\0'};
        bool want = NULL != strchr(allowed, c);
        if (want != sp_event_id_valid(s))
            fail_msg("byte 0x%02x: valid=%d, want %d", c, !want, want);
    }

    /* 128 bytes is the most. */
    char id[SP_ID_MAX + 2];
    memset(id, 'a', sizeof(id));
    id[SP_ID_MAX] = '\0';
    assert_true(sp_event_id_valid(id));
    id[SP_ID_MAX] = 'a';
    id[SP_ID_MAX + 1] = '\0';
    assert_false(sp_event_id_valid(id));
    id[SP_ID_MAX] = '<'; /* a bad byte past the limit is refused too */
    assert_false(sp_event_id_valid(id));

    assert_false(sp_event_id_valid(""));
    assert_false(sp_event_id_valid(NULL));
    assert_false(sp_event_id_valid("<script>"));
    assert_false(sp_event_id_valid("a<b"));
    assert_false(sp_event_id_valid("a b"));
    assert_false(sp_event_id_valid(" a"));
    assert_false(sp_event_id_valid("a\n"));
    assert_false(sp_event_id_valid("caf\xc3\xa9"));
    assert_false(sp_event_id_valid("\xff"));
    assert_false(sp_event_id_valid("a/b"));
    assert_false(sp_event_id_valid("../etc"));
    assert_false(sp_event_id_valid("a%20b"));
    assert_false(sp_event_id_valid("a,b"));
    assert_false(sp_event_id_valid("a'b"));
    assert_false(sp_event_id_valid("a\"b"));
}

static void test_add_header(void **state)
{
    sp_event_t *ev = sp_event_new(1 << 20);
    assert_int_equal(0, ev->n_headers);
    assert_null(ev->user_agent);

    /* Lengths are the caller's, not strlen's. */
    assert_int_equal(0, sp_event_add_header(ev, "Hostile", 4, "abcdef", 3));
    assert_string_equal("Host", ev->headers[0].name);
    assert_string_equal("abc", ev->headers[0].value);

    /* A NULL value is an empty one. */
    assert_int_equal(0, sp_event_add_header(ev, "X-Empty", 7, NULL, 10));
    assert_string_equal("", ev->headers[1].value);

    /* Names are cut to 128 bytes, values to 4096. */
    char name[300], value[5000];
    memset(name, 'N', sizeof(name));
    memset(value, 'v', sizeof(value));
    assert_int_equal(0, sp_event_add_header(ev, name, sizeof(name), value, sizeof(value)));
    assert_int_equal(SP_HEADER_NAME_MAX, strlen(ev->headers[2].name));
    assert_int_equal(SP_HEADER_MAX, strlen(ev->headers[2].value));
    assert_int_equal(0, sp_event_add_header(ev, name, SP_HEADER_NAME_MAX, value, SP_HEADER_MAX));
    assert_int_equal(SP_HEADER_NAME_MAX, strlen(ev->headers[3].name));
    assert_int_equal(SP_HEADER_MAX, strlen(ev->headers[3].value));
    assert_int_equal(
        0, sp_event_add_header(ev, name, SP_HEADER_NAME_MAX - 1, value, SP_HEADER_MAX - 1));
    assert_int_equal(SP_HEADER_NAME_MAX - 1, strlen(ev->headers[4].name));
    assert_int_equal(SP_HEADER_MAX - 1, strlen(ev->headers[4].value));

    /* The strings are copies. */
    char src[] = "original";
    assert_int_equal(0, add(ev, "X-Copy", src));
    src[0] = 'X';
    assert_string_equal("original", sp_event_header(ev, "X-Copy"));

    /* Up to SP_HEADERS_MAX headers, then -1 and nothing changes. */
    while (ev->n_headers < SP_HEADERS_MAX)
        assert_int_equal(0, add(ev, "X-Fill", "1"));
    size_t used = ev->buf_used;
    assert_int_equal(-1, add(ev, "User-Agent", "late"));
    assert_int_equal(SP_HEADERS_MAX, ev->n_headers);
    assert_int_equal(used, ev->buf_used);
    assert_null(ev->user_agent);
    sp_event_free(ev);

    /* A full buffer refuses the header instead of writing past it. */
    ev = sp_event_new(16);
    assert_int_equal(0, add(ev, "A", "1234567")); /* 2 + 8 bytes */
    assert_int_equal(-1, add(ev, "B", "123456")); /* needs 2 + 7 */
    assert_int_equal(1, ev->n_headers);
    assert_int_equal(10, ev->buf_used);       /* the refused header's name took no room */
    assert_int_equal(0, add(ev, "C", "123")); /* 2 + 4: exactly full */
    assert_int_equal(16, ev->buf_used);
    assert_int_equal(-1, add(ev, "", ""));
    assert_int_equal(2, ev->n_headers);
    sp_event_free(ev);
    sp_event_free(NULL);
}

static void test_header_lookup(void **state)
{
    sp_event_t *ev = sp_event_new(4096);
    assert_null(sp_event_header(ev, "Accept"));
    assert_int_equal(0, add(ev, "Accept", "image/*"));
    assert_int_equal(0, add(ev, "X-Forwarded-For", "203.0.113.1"));
    assert_int_equal(0, add(ev, "accept", "text/html"));

    assert_string_equal("image/*", sp_event_header(ev, "Accept"));
    assert_string_equal("image/*", sp_event_header(ev, "ACCEPT"));
    assert_string_equal("image/*", sp_event_header(ev, "aCcEpT"));
    assert_string_equal("203.0.113.1", sp_event_header(ev, "x-forwarded-for"));
    assert_string_equal("203.0.113.1", sp_event_header_cb(ev, "X-FORWARDED-FOR"));
    assert_null(sp_event_header(ev, "Accep"));
    assert_null(sp_event_header(ev, "Accept "));
    assert_null(sp_event_header(ev, "X-Forwarded"));
    assert_null(sp_event_header_cb(ev, "Host"));
    sp_event_free(ev);
}

static void test_remembered_headers(void **state)
{
    sp_event_t *ev = sp_event_new(4096);
    assert_int_equal(0, add(ev, "Accept", "*/*"));
    assert_null(ev->user_agent);
    assert_null(ev->referer);
    assert_null(ev->cookie);

    assert_int_equal(0, add(ev, "user-agent", "Mozilla/5.0 (first)"));
    assert_int_equal(0, add(ev, "REFERER", "https://mail.example.com/"));
    assert_int_equal(0, add(ev, "Cookie", "spv=abc"));
    assert_int_equal(0, add(ev, "User-Agent", "second"));
    assert_int_equal(0, add(ev, "Referer", "second"));
    assert_int_equal(0, add(ev, "cookie", "second=1"));
    assert_int_equal(0, add(ev, "User-Agents", "no"));

    assert_string_equal("Mozilla/5.0 (first)", ev->user_agent);
    assert_string_equal("https://mail.example.com/", ev->referer);
    assert_string_equal("spv=abc", ev->cookie);
    /* They point at the stored headers, not at the caller's strings. */
    assert_ptr_equal(ev->headers[1].value, ev->user_agent);
    assert_ptr_equal(ev->headers[2].value, ev->referer);
    assert_ptr_equal(ev->headers[3].value, ev->cookie);
    sp_event_free(ev);

    /* "Referrer" (the usual misspelling, corrected) is not the Referer header. */
    ev = sp_event_new(4096);
    assert_int_equal(0, add(ev, "Referrer", "x"));
    assert_int_equal(0, add(ev, "Set-Cookie", "a=1"));
    assert_null(ev->referer);
    assert_null(ev->cookie);
    sp_event_free(ev);
}

static void cookie_is(const char *header, const char *name, const char *want)
{
    char buf[256];
    memset(buf, 'Z', sizeof(buf));
    int rc = sp_event_cookie(header, name, buf, sizeof(buf));
    if (!want) {
        if (0 == rc)
            fail_msg("cookie '%s' found in '%s' as '%s'", name, header, buf);
        return;
    }
    if (0 != rc)
        fail_msg("cookie '%s' not found in '%s'", name, header);
    if (0 != strcmp(want, buf))
        fail_msg("cookie '%s' in '%s' is '%s', want '%s'", name, header, buf, want);
}

static void test_cookie(void **state)
{
    cookie_is("spv=abc", "spv", "abc");
    cookie_is("a=1; spv=abc; b=2", "spv", "abc");
    cookie_is("a=1;spv=abc;b=2", "spv", "abc");
    cookie_is("a=1;  \tspv=abc  ;b=2", "spv", "abc");
    cookie_is("a=1; b=2", "b", "2");
    cookie_is("a=1; b=2", "a", "1");

    /* Names must match exactly: not a prefix, a suffix or another case. */
    cookie_is("xspv=1; spv=2", "spv", "2");
    cookie_is("spvx=1; spv=2", "spv", "2");
    cookie_is("xspv=1", "spv", NULL);
    cookie_is("spvx=1", "spv", NULL);
    cookie_is("sp=1", "spv", NULL);
    cookie_is("SPV=1", "spv", NULL);
    cookie_is("a=spv=1", "spv", NULL);

    /* Quotes around a value are not part of it. */
    cookie_is("spv=\"abc\"", "spv", "abc");
    cookie_is("spv=\"a b\"; x=1", "spv", "a b");
    cookie_is("spv=\"\"", "spv", "");
    cookie_is("spv=\"", "spv", "\"");
    cookie_is("spv=\"abc", "spv", "\"abc");

    /* Values keep '=' and inner spaces; the first of a repeated name wins. */
    cookie_is("spv=a=b==", "spv", "a=b==");
    cookie_is("spv=1; spv=2", "spv", "1");
    cookie_is("spv=; b=2", "spv", "");
    cookie_is("flag; spv=3", "spv", "3");
    cookie_is("flag; spv=3", "flag", "");
    cookie_is(";;; spv=4 ;;", "spv", "4");
    cookie_is("=x; spv=5", "spv", "5");

    cookie_is("a=1", "spv", NULL);
    cookie_is("", "spv", NULL);
    cookie_is(";", "spv", NULL);
    cookie_is(NULL, "spv", NULL);

    /* Cut to the buffer, terminated. */
    char small[4];
    assert_int_equal(0, sp_event_cookie("spv=abcdef", "spv", small, sizeof(small)));
    assert_string_equal("abc", small);
    char none[1] = {'Q'};
    assert_int_equal(-1, sp_event_cookie("spv=abcdef", "spv", none, 0));
    assert_int_equal('Q', none[0]);
    assert_int_equal(0, sp_event_cookie("spv=abcdef", "spv", none, 1));
    assert_int_equal('\0', none[0]);
}

static void test_headers_json(void **state)
{
    sp_event_t *ev = sp_event_new(1 << 16);
    char *text = sp_event_headers_json(ev);
    assert_string_equal("{}", text);
    free(text);

    assert_int_equal(0, add(ev, "Host", "t.example.com"));
    assert_int_equal(0, add(ev, "X-Quote", "say \"hi\" \\ now"));
    assert_int_equal(0, add(ev, "X-Control", "a\x01\tb\nc\x1f\x7f"));
    assert_int_equal(0, add(ev, "X-Bad-UTF8",
                            "a\xff\xfe"
                            "b\xc3"));
    assert_int_equal(0, add(ev, "X-UTF8", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
    assert_int_equal(0, add(ev, "Accept", "image/png"));
    assert_int_equal(0, add(ev, "Accept", "image/*"));
    assert_int_equal(0, add(ev, "Accept", "*/*"));
    assert_int_equal(0, add(ev, "X-Twice", "ok"));
    assert_int_equal(0, add(ev, "X-Twice", "bad\x80"));
    assert_int_equal(0, add(ev, "X-Name-\xff", "v"));
    assert_int_equal(0, add(ev, "X-\"Quoted\"", "q"));
    assert_int_equal(0, add(ev, "X-Empty", ""));

    text = sp_event_headers_json(ev);
    json_t *obj = parse_object(text);
    assert_int_equal(10, json_object_size(obj));
    assert_string_equal("t.example.com", member(obj, "Host"));
    assert_string_equal("say \"hi\" \\ now", member(obj, "X-Quote"));
    assert_string_equal("a\x01\tb\nc\x1f\x7f", member(obj, "X-Control"));
    /* Invalid UTF-8 becomes '?': the JSON stays valid and the ASCII stays readable. */
    assert_string_equal("a??b?", member(obj, "X-Bad-UTF8"));
    assert_string_equal("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", member(obj, "X-UTF8"));
    assert_string_equal("image/png, image/*, */*", member(obj, "Accept"));
    assert_string_equal("ok, bad?", member(obj, "X-Twice"));
    assert_string_equal("v", member(obj, "X-Name-?"));
    assert_string_equal("q", member(obj, "X-\"Quoted\""));
    assert_string_equal("", member(obj, "X-Empty"));
    /* Raw control bytes never reach the text. */
    for (const char *p = text; *p; p++)
        assert_true((unsigned char)*p >= 0x20);
    json_decref(obj);
    free(text);
    sp_event_free(ev);
}

static void test_headers_json_full(void **state)
{
    /* Every header at its longest, all with the same name: still one valid object. */
    sp_event_t *ev = sp_event_new((SP_HEADER_NAME_MAX + SP_HEADER_MAX + 2) * SP_HEADERS_MAX);
    char value[SP_HEADER_MAX];
    for (size_t i = 0; i < sizeof(value); i++)
        value[i] = (char)(0x01 + i % 0xff); /* every byte but NUL */
    for (int i = 0; i < SP_HEADERS_MAX; i++)
        assert_int_equal(0, sp_event_add_header(ev, "X-Long", 6, value, sizeof(value)));
    char *text = sp_event_headers_json(ev);
    json_t *obj = parse_object(text);
    const char *joined = member(obj, "X-Long");
    assert_int_equal(SP_HEADERS_MAX * SP_HEADER_MAX + (SP_HEADERS_MAX - 1) * 2, strlen(joined));
    json_decref(obj);
    free(text);
    sp_event_free(ev);
}

static void test_cookies_json(void **state)
{
    sp_event_t *ev = sp_event_new(4096);
    char *text = sp_event_cookies_json(ev);
    assert_string_equal("{}", text);
    free(text);

    assert_int_equal(0, add(ev, "Cookie",
                            "spv=abc123; theme=\"dark mode\"; q=\"a\\\"b\"; bin=\xff\xfe; "
                            "ctl=\x01x; flag; empty=; utf=caf\xc3\xa9"));
    text = sp_event_cookies_json(ev);
    json_t *obj = parse_object(text);
    assert_string_equal("abc123", member(obj, "spv"));
    assert_string_equal("dark mode", member(obj, "theme"));
    assert_string_equal("a\\\"b", member(obj, "q"));
    assert_string_equal("??", member(obj, "bin"));
    assert_string_equal("\x01x", member(obj, "ctl"));
    assert_string_equal("", member(obj, "flag"));
    assert_string_equal("", member(obj, "empty"));
    assert_string_equal("caf\xc3\xa9", member(obj, "utf"));
    assert_int_equal(8, json_object_size(obj));
    json_decref(obj);
    free(text);
    sp_event_free(ev);

    /* Only the Cookie header counts. */
    ev = sp_event_new(4096);
    assert_int_equal(0, add(ev, "Set-Cookie", "a=1"));
    text = sp_event_cookies_json(ev);
    assert_string_equal("{}", text);
    free(text);
    sp_event_free(ev);
}

static void ts_is(int64_t ms, const char *want)
{
    char buf[32];
    memset(buf, 'X', sizeof(buf));
    sp_format_ts(ms, buf, sizeof(buf));
    if (0 != strcmp(want, buf))
        fail_msg("%lld formats as '%s', want '%s'", (long long)ms, buf, want);
}

static void test_format_ts(void **state)
{
    ts_is(0, "1970-01-01T00:00:00.000Z");
    ts_is(1, "1970-01-01T00:00:00.001Z");
    ts_is(999, "1970-01-01T00:00:00.999Z");
    ts_is(1000, "1970-01-01T00:00:01.000Z");
    ts_is(1795622400123LL, "2026-11-25T16:00:00.123Z");
    ts_is(1709251199999LL, "2024-02-29T23:59:59.999Z");
    ts_is(1709251200000LL, "2024-03-01T00:00:00.000Z");
    ts_is(4102444799000LL, "2099-12-31T23:59:59.000Z");

    /* 25 bytes is enough; less is cut and terminated. */
    char buf[25];
    sp_format_ts(1795622400123LL, buf, sizeof(buf));
    assert_string_equal("2026-11-25T16:00:00.123Z", buf);
    char small[11];
    sp_format_ts(1795622400123LL, small, sizeof(small));
    assert_string_equal("2026-11-25", small);

    /* sp_now_ms is the wall clock in milliseconds. */
    int64_t before = (int64_t)time(NULL) * 1000, now = sp_now_ms();
    int64_t after = ((int64_t)time(NULL) + 1) * 1000;
    assert_true(now >= before);
    assert_true(now <= after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_add_header),
        cmocka_unit_test(test_header_lookup),
        cmocka_unit_test(test_remembered_headers),
        cmocka_unit_test(test_cookie),
        cmocka_unit_test(test_headers_json),
        cmocka_unit_test(test_headers_json_full),
        cmocka_unit_test(test_cookies_json),
        cmocka_unit_test(test_format_ts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
