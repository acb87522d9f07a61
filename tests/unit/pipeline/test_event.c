/* test_event: IDs, header storage and lookup, cookies, the headers/cookies JSON, timestamps, the
 * journal form (encode, decode, reset). */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "intern.h"
#include "net.h"
#include "slab.h"
#include "utf8.h"

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

#define FFFD "\xEF\xBF\xBD"

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
    /* Each ill-formed part of the UTF-8 becomes one U+FFFD (sp_utf8_clean_n): the JSON stays
     * valid and the rest of the text as it was. */
    assert_string_equal("a" FFFD FFFD "b" FFFD, member(obj, "X-Bad-UTF8"));
    assert_string_equal("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", member(obj, "X-UTF8"));
    assert_string_equal("image/png, image/*, */*", member(obj, "Accept"));
    assert_string_equal("ok, bad" FFFD, member(obj, "X-Twice"));
    assert_string_equal("v", member(obj, "X-Name-" FFFD));
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
    /* Each byte from 0x80 on stands alone here, ill-formed: one U+FFFD, two bytes more. */
    size_t high = 0;
    for (size_t i = 0; i < sizeof(value); i++)
        high += (unsigned char)value[i] >= 0x80;
    assert_int_equal(SP_HEADERS_MAX * (SP_HEADER_MAX + 2 * high) + (SP_HEADERS_MAX - 1) * 2,
                     strlen(joined));
    json_decref(obj);
    free(text);
    sp_event_free(ev);
}

/* Adds header NAME with the LEN bytes of VALUE to EV, and to WANT as jansson would hold it
 * (ill-formed UTF-8 repaired). */
static void add_both(sp_event_t *ev, json_t *want, const char *name, const char *value, size_t len)
{
    assert_int_equal(0, sp_event_add_header(ev, name, strlen(name), value, len));
    size_t clean_len;
    char *clean = sp_utf8_clean_n(value, len, &clean_len);
    json_object_set_new(want, name,
                        clean ? json_stringn(clean, clean_len) : json_stringn(value, len));
    free(clean);
}

/* EV's headers' JSON is WANT's json_dumps, byte for byte; frees both. */
static void check_both(sp_event_t *ev, json_t *want)
{
    char *got = sp_event_headers_json(ev), *expect = json_dumps(want, JSON_COMPACT);
    assert_string_equal(expect, got);
    free(got);
    free(expect);
    json_decref(want);
    sp_event_free(ev);
}

/* The headers' JSON made a word at a time is jansson's, byte for byte, whatever the values hold
 * and wherever it falls against the words: quotes, backslashes, control bytes, well-formed
 * UTF-8 of every length and ill-formed bytes (repaired), at every offset. */
static void test_headers_json_bytes(void **state)
{
    /* Ill-formed UTF-8 last: most rounds leave it out, as it sends the whole object down
     * jansson's path. */
    static const char *const pieces[] = {
        "a",  "Z",       " ",           "/",    "\"",       "\\",           "\x01",
        "\t", "\n",      "\x1f",        "\x7f", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
        "~",  "0123456", "abcdefghijk", "\x80", "\xff",     "\xe2\x82",     "\xed\xa0\x80",
    };
    const size_t well_formed = 17;
    /* Each special piece alone at every offset of a plain run, against the words. */
    for (size_t k = 4; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
        if (k >= 14 && k < well_formed)
            continue; /* plain */
        for (size_t at = 0; at < 17; at++) {
            char value[64];
            memset(value, 'a', 24);
            size_t pl = strlen(pieces[k]);
            memcpy(value + at, pieces[k], pl);
            memset(value + at + pl, 'b', 24 - at);
            sp_event_t *ev = sp_event_new(1 << 12);
            json_t *want = json_object();
            add_both(ev, want, "X-One", value, 24 + pl);
            check_both(ev, want);
        }
    }
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int round = 0; round < 3000; round++) {
        sp_event_t *ev = sp_event_new(1 << 14);
        json_t *want = json_object();
        int n = 1 + round % 5;
        for (int h = 0; h < n; h++) {
            char name[16], value[256];
            size_t len = 0;
            snprintf(name, sizeof(name), "X-H%d", h);
            int parts = (int)(seed % 40);
            for (int k = 0; k < parts; k++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                size_t kinds = round % 8 ? well_formed : sizeof(pieces) / sizeof(pieces[0]);
                const char *piece = pieces[(seed >> 33) % kinds];
                size_t pl = strlen(piece);
                if (len + pl >= sizeof(value))
                    break;
                memcpy(value + len, piece, pl);
                len += pl;
            }
            add_both(ev, want, name, value, len);
        }
        check_both(ev, want);
    }
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
    assert_string_equal(FFFD FFFD, member(obj, "bin"));
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

    /* sp_now_ms is the wall clock in milliseconds. Read around it from the same clock: time()
     * reads a coarser one, a tick behind just after a second begins, which failed this once. */
    struct timespec a, b;
    clock_gettime(CLOCK_REALTIME, &a);
    int64_t now = sp_now_ms();
    clock_gettime(CLOCK_REALTIME, &b);
    assert_true(now >= (int64_t)a.tv_sec * 1000 + a.tv_nsec / 1000000);
    assert_true(now <= (int64_t)b.tv_sec * 1000 + b.tv_nsec / 1000000);
}

/* ---- the journal form ---------------------------------------------------------------------- */

#define EV_BUF       (SP_HEADERS_MAX * (SP_HEADER_NAME_MAX + SP_HEADER_MAX + 2) + SP_TARGET_MAX + 1)
#define EV_BUF_SCRUB 16384

/* Encodes EV into a malloc'd buffer of exactly SP_EVENT_ENCODED_MAX bytes (so that the
 * sanitizers see a write past it) and returns it; *LEN is the encoding's length. */
static unsigned char *encode(const sp_event_t *ev, size_t *len)
{
    unsigned char *buf = malloc(SP_EVENT_ENCODED_MAX);
    assert_non_null(buf);
    *len = sp_event_encode(ev, buf);
    assert_true(*len > 0);
    assert_true(*len <= SP_EVENT_ENCODED_MAX);
    return buf;
}

/* Decodes LEN bytes copied into a buffer of exactly that size. */
static sp_event_t *decode_exact(const unsigned char *buf, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, buf, len);
    sp_event_t *ev = sp_event_decode(copy, len);
    free(copy);
    return ev;
}

/* Checks that GOT holds what the journal form carries of WANT. */
static void same_event(const sp_event_t *want, const sp_event_t *got)
{
    assert_int_equal(want->kind, got->kind);
    assert_int_equal(want->ts_ms, got->ts_ms);
    assert_string_equal(want->campaign, got->campaign);
    assert_string_equal(want->recipient, got->recipient);
    assert_string_equal(want->target, got->target);
    assert_memory_equal(want->addr.b, got->addr.b, sizeof(want->addr.b));
    assert_int_equal(want->addr.v4, got->addr.v4);
    assert_string_equal(want->ip, got->ip);
    assert_string_equal(want->visitor, got->visitor);
    assert_int_equal(want->self_referer, got->self_referer);
    assert_int_equal(want->self_cookie, got->self_cookie);
    assert_int_equal(want->self_ip, got->self_ip);
    assert_int_equal(want->adopt_row, got->adopt_row);
    assert_int_equal(want->n_headers, got->n_headers);
    /* A decoded event keeps no room it does not use. */
    assert_int_equal(got->buf_used, got->buf_size);
    for (size_t i = 0; i < want->n_headers; i++) {
        assert_string_equal(want->headers[i].name, got->headers[i].name);
        assert_string_equal(want->headers[i].value, got->headers[i].value);
        /* The decoded event's own copies. */
        assert_true(got->headers[i].name >= got->buf &&
                    got->headers[i].name < got->buf + got->buf_size);
        assert_true(got->headers[i].value >= got->buf &&
                    got->headers[i].value < got->buf + got->buf_size);
    }
    const char *const *ptrs[3][2] = {{&want->user_agent, &got->user_agent},
                                     {&want->referer, &got->referer},
                                     {&want->cookie, &got->cookie}};
    for (int k = 0; k < 3; k++) {
        const char *w = *ptrs[k][0], *g = *ptrs[k][1];
        if (!w) {
            assert_null(g);
            continue;
        }
        assert_non_null(g);
        assert_string_equal(w, g);
        /* Pointing at the decoded header of the same index. */
        size_t i = 0;
        while (i < want->n_headers && want->headers[i].value != w)
            i++;
        assert_true(i < want->n_headers);
        assert_ptr_equal(got->headers[i].value, g);
    }
}

/* A request as the pixel records it, with some of everything. */
static sp_event_t *rich_event(void)
{
    sp_event_t *ev = sp_event_new(EV_BUF);
    ev->kind = SP_EVENT_CLICK;
    ev->ts_ms = 1795622400123LL;
    strcpy(ev->campaign, "spring-2026");
    strcpy(ev->recipient, "alice+news@example.com");
    assert_int_equal(
        0, sp_event_set_target(ev, "https://example.com/landing?a=1&b=%20caf\xc3\xa9#top"));
    assert_int_equal(0, sp_net_parse("203.0.113.7", &ev->addr));
    assert_true(ev->addr.v4);
    strcpy(ev->ip, "203.0.113.7");
    strcpy(ev->visitor, "0123456789abcdef0123456789abcdef");
    ev->self_referer = true;
    ev->self_cookie = false;
    ev->self_ip = true;
    assert_int_equal(0, add(ev, "Host", "t.example.com"));
    assert_int_equal(0, add(ev, "User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"));
    assert_int_equal(0, add(ev, "Accept", "image/avif,image/webp,*/*"));
    assert_int_equal(0, add(ev, "Referer", "https://mail.example.com/inbox"));
    assert_int_equal(0, add(ev, "Cookie", "spv=abc; theme=dark"));
    assert_int_equal(0, add(ev, "Accept", "second"));
    assert_int_equal(0, add(ev, "user-agent", "a later one"));
    assert_int_equal(0, add(ev, "X-Empty", ""));
    assert_int_equal(0, add(ev, "X-Bytes", "\x01\x7f\xff\xfe \"q\" \\"));
    /* A name and a value over the limits: cut as sp_event_add_header cuts them. */
    static char name[300], value[5000];
    memset(name, 'N', sizeof(name));
    memset(value, 'v', sizeof(value));
    assert_int_equal(0, sp_event_add_header(ev, name, sizeof(name), value, sizeof(value)));
    assert_int_equal(0, add(ev, "Accept-Language", "en-GB,en;q=0.9"));
    return ev;
}

static void test_encode_decode(void **state)
{
    sp_event_t *ev = rich_event();
    size_t len;
    unsigned char *buf = encode(ev, &len);
    sp_event_t *got = decode_exact(buf, len);
    assert_non_null(got);
    same_event(ev, got);
    assert_int_equal(11, got->n_headers);
    assert_string_equal("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", got->user_agent);
    assert_ptr_equal(got->headers[1].value, got->user_agent);
    assert_ptr_equal(got->headers[3].value, got->referer);
    assert_ptr_equal(got->headers[4].value, got->cookie);
    assert_string_equal("a later one", got->headers[6].value);
    assert_string_equal("", got->headers[7].value);
    assert_string_equal("\x01\x7f\xff\xfe \"q\" \\", got->headers[8].value);
    assert_int_equal(SP_HEADER_NAME_MAX, strlen(got->headers[9].name));
    assert_int_equal(SP_HEADER_MAX, strlen(got->headers[9].value));
    assert_string_equal("en-GB,en;q=0.9", sp_event_header(got, "accept-language"));
    assert_string_equal("image/avif,image/webp,*/*", sp_event_header(got, "Accept"));
    /* What the journal form does not carry starts empty. */
    assert_int_equal(0, got->id);
    assert_int_equal(SP_OUTCOME_PENDING, got->outcome);
    assert_int_equal(0, got->journal_end);
    assert_string_equal("", got->browser);
    assert_string_equal("", got->country);
    assert_false(got->first_view);

    /* Encoding the decoded event gives the same bytes. */
    size_t len2;
    unsigned char *buf2 = encode(got, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(buf, buf2, len);
    free(buf2);
    sp_event_free(got);
    free(buf);

    /* IPv6, an open, no recipient, no target, no visitor; every flag combination. */
    assert_int_equal(0, sp_net_parse("2001:db8::8a2e:370:7334", &ev->addr));
    assert_false(ev->addr.v4);
    strcpy(ev->ip, "2001:db8::8a2e:370:7334");
    ev->kind = SP_EVENT_OPEN;
    ev->ts_ms = 0;
    ev->recipient[0] = ev->visitor[0] = '\0';
    assert_int_equal(0, sp_event_set_target(ev, ""));
    for (int flags = 0; flags < 16; flags++) {
        ev->self_referer = flags & 1;
        ev->self_cookie = flags & 2;
        ev->self_ip = flags & 4;
        if (flags & 8) {
            assert_int_equal(0, sp_net_parse("10.1.2.3", &ev->addr));
            strcpy(ev->ip, "10.1.2.3");
        } else {
            assert_int_equal(0, sp_net_parse("::1", &ev->addr));
            strcpy(ev->ip, "::1");
        }
        ev->ts_ms = flags % 2 ? -1 : INT64_MAX - flags;
        buf = encode(ev, &len);
        got = decode_exact(buf, len);
        assert_non_null(got);
        same_event(ev, got);
        sp_event_free(got);
        free(buf);
    }
    sp_event_free(ev);

    /* An event with nothing in it. */
    ev = sp_event_new(0);
    buf = encode(ev, &len);
    got = decode_exact(buf, len);
    assert_non_null(got);
    same_event(ev, got);
    assert_int_equal(0, got->n_headers);
    assert_null(got->user_agent);
    assert_null(got->referer);
    assert_null(got->cookie);
    sp_event_free(got);
    free(buf);
    sp_event_free(ev);
}

/* Every field at its longest and SP_HEADERS_MAX headers at theirs: within
 * SP_EVENT_ENCODED_MAX, and back whole. */
/* A decoded event keeps as many header slots as it holds headers, and no room: a header added
 * later is refused, never written past them. */
static void test_decoded_header_slots(void **state)
{
    sp_event_t *ev = sp_event_new(EV_BUF);
    assert_int_equal(0, sp_event_add_header(ev, "Host", 4, "px.example", 10));
    assert_int_equal(0, sp_event_add_header(ev, "Accept", 6, "image/*", 7));
    size_t len;
    unsigned char *buf = encode(ev, &len);
    sp_event_t *got = decode_exact(buf, len);
    assert_non_null(got);
    assert_int_equal(2, got->n_headers);
    assert_int_equal(2, got->header_slots);
    assert_int_equal(-1, sp_event_add_header(got, "X", 1, "", 0));
    assert_int_equal(2, got->n_headers);
    assert_string_equal("image/*", sp_event_header(got, "accept"));
    sp_event_free(got);
    free(buf);
    sp_event_free(ev);
}

static void test_encode_largest(void **state)
{
    sp_event_t *ev = sp_event_new(EV_BUF);
    ev->kind = SP_EVENT_CLICK;
    memset(ev->campaign, 'c', SP_ID_MAX);
    memset(ev->recipient, 'r', SP_ID_MAX);
    char target[SP_TARGET_MAX + 2];
    memset(target, 't', sizeof(target) - 1); /* a byte too long: cut to SP_TARGET_MAX */
    target[sizeof(target) - 1] = '\0';
    assert_int_equal(0, sp_event_set_target(ev, target));
    memset(ev->ip, '1', sizeof(ev->ip) - 1);
    memset(ev->visitor, 'v', sizeof(ev->visitor) - 1);
    memset(ev->addr.b, 0xff, sizeof(ev->addr.b));
    ev->adopt_row = INT64_MAX;
    char name[SP_HEADER_NAME_MAX], value[SP_HEADER_MAX];
    memset(name, 'n', sizeof(name));
    for (size_t i = 0; i < sizeof(value); i++)
        value[i] = (char)(1 + i % 255);
    for (int i = 0; i < SP_HEADERS_MAX; i++) {
        name[0] = (char)('A' + i % 26);
        assert_int_equal(0, sp_event_add_header(ev, name, sizeof(name), value, sizeof(value)));
    }
    size_t len;
    unsigned char *buf = encode(ev, &len);
    sp_event_t *got = decode_exact(buf, len);
    assert_non_null(got);
    same_event(ev, got);
    assert_int_equal(SP_ID_MAX, strlen(got->campaign));
    assert_int_equal(SP_TARGET_MAX, strlen(got->target));
    assert_int_equal(SP_HEADERS_MAX, got->n_headers);
    sp_event_free(got);
    free(buf);
    sp_event_free(ev);
}

/* An adopted open carries its kept row; without one the record is as before. */
static void test_encode_adopted(void **state)
{
    sp_event_t *ev = rich_event();
    size_t plain_len, len;
    unsigned char *plain = encode(ev, &plain_len);
    ev->adopt_row = 1234567;
    unsigned char *buf = encode(ev, &len);
    assert_int_equal(plain_len + sizeof(int64_t), len);
    assert_memory_equal(plain + 10, buf + 10, plain_len - 10); /* after time, kind and flags */
    sp_event_t *got = decode_exact(buf, len);
    assert_non_null(got);
    same_event(ev, got);
    assert_int_equal(1234567, got->adopt_row);
    sp_event_free(got);
    got = decode_exact(plain, plain_len);
    assert_non_null(got);
    assert_int_equal(0, got->adopt_row);
    sp_event_free(got);
    /* The flag without its row, or a row that names none, is not a record. */
    plain[9] |= 16;
    assert_null(decode_exact(plain, plain_len));
    int64_t zero = 0;
    memcpy(buf + len - sizeof(zero), &zero, sizeof(zero));
    assert_null(decode_exact(buf, len));
    /* A scratch event reused for the next request starts without one. */
    sp_event_reset(ev);
    assert_int_equal(0, ev->adopt_row);
    free(plain);
    free(buf);
    sp_event_free(ev);
}

static void test_decode_truncated(void **state)
{
    sp_event_t *ev = rich_event();
    size_t len;
    unsigned char *buf = encode(ev, &len);
    /* Every prefix is refused. */
    for (size_t n = 0; n < len; n++) {
        sp_event_t *got = decode_exact(buf, n);
        if (got)
            fail_msg("a %zu-byte prefix of %zu decoded", n, len);
    }
    /* So are the whole with anything after it. */
    unsigned char *longer = malloc(len + 100);
    assert_non_null(longer);
    memcpy(longer, buf, len);
    memset(longer + len, 0, 100);
    for (size_t extra = 1; extra <= 100; extra += (extra < 10 ? 1 : 30))
        assert_null(decode_exact(longer, len + extra));
    memset(longer + len, 'x', 100);
    assert_null(decode_exact(longer, len + 1));
    sp_event_t *whole = decode_exact(longer, len);
    assert_non_null(whole);
    sp_event_free(whole);
    free(longer);
    free(buf);

    /* The same for an event without headers (where the header count is last). */
    ev->n_headers = 0;
    ev->user_agent = ev->referer = ev->cookie = NULL;
    buf = encode(ev, &len);
    for (size_t n = 0; n < len; n++)
        assert_null(decode_exact(buf, n));
    sp_event_t *got = decode_exact(buf, len);
    assert_non_null(got);
    sp_event_free(got);
    free(buf);
    sp_event_free(ev);
}

/* Appends a length-prefixed text as the journal form writes it. */
static size_t put_text(unsigned char *p, const char *s, size_t n)
{
    uint16_t n16 = (uint16_t)n;
    memcpy(p, &n16, 2);
    memcpy(p + 2, s, n);
    return 2 + n;
}

static void test_decode_malformed(void **state)
{
    /* The fixed part of an event without headers ends with the header count (a u16). */
    sp_event_t *ev = sp_event_new(0);
    strcpy(ev->campaign, "c");
    size_t fixed;
    unsigned char *base = encode(ev, &fixed);
    sp_event_free(ev);
    unsigned char *buf = malloc(fixed + 70 * 8);
    assert_non_null(buf);

    /* SP_HEADERS_MAX headers are taken; one more is refused, though all are there. */
    for (uint16_t n = SP_HEADERS_MAX - 1; n <= SP_HEADERS_MAX + 2; n++) {
        memcpy(buf, base, fixed);
        memcpy(buf + fixed - 2, &n, 2);
        size_t len = fixed;
        for (uint16_t i = 0; i < n; i++) {
            len += put_text(buf + len, "A", 1);
            len += put_text(buf + len, "1", 1);
        }
        sp_event_t *got = decode_exact(buf, len);
        if (n <= SP_HEADERS_MAX) {
            assert_non_null(got);
            assert_int_equal(n, got->n_headers);
            assert_string_equal("c", got->campaign);
            sp_event_free(got);
        } else {
            assert_null(got);
        }
    }
    uint16_t many = UINT16_MAX;
    memcpy(buf, base, fixed);
    memcpy(buf + fixed - 2, &many, 2);
    assert_null(decode_exact(buf, fixed));

    /* A header name or value over its limit, or with a NUL inside. */
    static char big[SP_HEADER_MAX + 2];
    memset(big, 'b', sizeof(big));
    unsigned char *hbuf = malloc(fixed + 2 * (2 + sizeof(big)));
    assert_non_null(hbuf);
    struct {
        size_t name_len, value_len;
        const char *name, *value;
        bool ok;
    } hcases[] = {
        {SP_HEADER_NAME_MAX, 1, big, "v", true},
        {SP_HEADER_NAME_MAX + 1, 1, big, "v", false},
        {1, SP_HEADER_MAX, "n", big, true},
        {1, SP_HEADER_MAX + 1, "n", big, false},
        {3, 1, "a\0b", "v", false},
        {1, 3, "n", "v\0w", false},
        {0, 0, "", "", true},
    };
    for (size_t k = 0; k < sizeof(hcases) / sizeof(hcases[0]); k++) {
        memcpy(hbuf, base, fixed);
        uint16_t one = 1;
        memcpy(hbuf + fixed - 2, &one, 2);
        size_t len = fixed;
        len += put_text(hbuf + len, hcases[k].name, hcases[k].name_len);
        len += put_text(hbuf + len, hcases[k].value, hcases[k].value_len);
        sp_event_t *got = decode_exact(hbuf, len);
        if (hcases[k].ok != (NULL != got))
            fail_msg("header case %zu: decoded=%d", k, NULL != got);
        sp_event_free(got);
    }
    free(hbuf);

    /* A kind that is neither an open nor a click (the byte after the time). */
    memcpy(buf, base, fixed);
    sp_event_t *got = decode_exact(buf, fixed);
    assert_non_null(got);
    sp_event_free(got);
    buf[8] = 1;
    got = decode_exact(buf, fixed);
    assert_non_null(got);
    assert_int_equal(SP_EVENT_CLICK, got->kind);
    sp_event_free(got);
    buf[8] = 2;
    got = decode_exact(buf, fixed);
    assert_non_null(got);
    assert_int_equal(SP_EVENT_PRINT, got->kind);
    sp_event_free(got);
    buf[8] = 3;
    got = decode_exact(buf, fixed);
    assert_non_null(got);
    assert_int_equal(SP_EVENT_FORWARD, got->kind);
    sp_event_free(got);
    buf[8] = SP_EVENT_READ; /* a read says how long: without its engage part it is none */
    assert_null(decode_exact(buf, fixed));
    buf[8] = 5;
    assert_null(decode_exact(buf, fixed));
    buf[8] = 0xff;
    assert_null(decode_exact(buf, fixed));

    /* A text longer than its field: a 129-byte campaign, or one with a NUL in it. The
     * campaign's length is right after time, kind, flags and the 16 address bytes. */
    const size_t at = 8 + 1 + 1 + 16;
    uint16_t clen;
    memcpy(&clen, base + at, 2);
    assert_int_equal(1, clen);
    unsigned char *tbuf = malloc(fixed + SP_ID_MAX + 10);
    assert_non_null(tbuf);
    for (size_t n = SP_ID_MAX; n <= SP_ID_MAX + 1; n++) {
        memcpy(tbuf, base, at);
        size_t len = at;
        char id[SP_ID_MAX + 1];
        memset(id, 'i', sizeof(id));
        len += put_text(tbuf + len, id, n);
        memcpy(tbuf + len, base + at + 3, fixed - at - 3);
        len += fixed - at - 3;
        got = decode_exact(tbuf, len);
        if (n == SP_ID_MAX) {
            assert_non_null(got);
            assert_int_equal(SP_ID_MAX, strlen(got->campaign));
            sp_event_free(got);
        } else {
            assert_null(got);
        }
    }
    memcpy(tbuf, base, fixed);
    tbuf[at + 2] = '\0';
    assert_null(decode_exact(tbuf, fixed));
    free(tbuf);
    free(buf);
    free(base);
}

/* Bytes that are not an encoding (random ones, or one with a byte changed) are refused or
 * decoded, never read past. */
static void test_decode_noise(void **state)
{
    sp_event_t *ev = rich_event();
    size_t len;
    unsigned char *buf = encode(ev, &len);
    sp_event_free(ev);
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        unsigned char saved = buf[i];
        for (int k = 0; k < 3; k++) {
            x = x * 1103515245u + 12345u;
            buf[i] = k == 0 ? (unsigned char)~saved : (unsigned char)(x >> 16);
            sp_event_t *got = decode_exact(buf, len);
            if (got) {
                assert_true(got->n_headers <= SP_HEADERS_MAX);
                for (size_t h = 0; h < got->n_headers; h++)
                    assert_true(strlen(got->headers[h].value) <= SP_HEADER_MAX);
                sp_event_free(got);
            }
        }
        buf[i] = saved;
    }
    free(buf);

    unsigned char noise[512];
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 512);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            noise[i] = (unsigned char)(x >> 16);
        }
        if (round % 3 == 0 && n > 28)
            memset(noise + 8, 0, 20); /* a plausible head: kind 0, no flags, short texts */
        sp_event_free(decode_exact(noise, n));
    }
}

static void test_reset(void **state)
{
    sp_event_t *ev = rich_event();
    sp_event_reset(ev);
    assert_int_equal(0, ev->n_headers);
    assert_int_equal(0, ev->buf_used);
    assert_null(ev->user_agent);
    assert_null(ev->referer);
    assert_null(ev->cookie);
    assert_false(ev->self_referer);
    assert_false(ev->self_cookie);
    assert_false(ev->self_ip);
    assert_string_equal("", ev->campaign);
    assert_string_equal("", ev->recipient);
    assert_string_equal("", ev->target);
    assert_string_equal("", ev->ip);
    assert_string_equal("", ev->visitor);
    assert_null(sp_event_header(ev, "Host"));
    assert_int_equal(EV_BUF, ev->buf_size);

    /* Filled again: only the new request is in it. */
    ev->kind = SP_EVENT_OPEN;
    ev->ts_ms = 42;
    strcpy(ev->campaign, "autumn");
    assert_int_equal(0, sp_net_parse("198.51.100.9", &ev->addr));
    strcpy(ev->ip, "198.51.100.9");
    ev->self_cookie = true;
    assert_int_equal(0, add(ev, "Cookie", "b=2"));
    assert_int_equal(0, add(ev, "User-Agent", "curl/8"));
    assert_string_equal("curl/8", ev->user_agent);
    assert_string_equal("b=2", ev->cookie);
    assert_null(ev->referer);
    assert_null(sp_event_header(ev, "Host"));
    assert_int_equal(2, ev->n_headers);
    /* The buffer is reused from its start. */
    assert_ptr_equal(ev->buf, ev->headers[0].name);

    size_t len;
    unsigned char *buf = encode(ev, &len);
    sp_event_t *got = decode_exact(buf, len);
    assert_non_null(got);
    same_event(ev, got);
    assert_string_equal("", got->recipient);
    assert_string_equal("", got->target);
    assert_string_equal("", got->visitor);
    assert_false(got->self_referer);
    assert_true(got->self_cookie);
    assert_false(got->self_ip);
    sp_event_free(got);
    free(buf);

    /* As a scratch event: many reuses, each filled to the header limit, never more room. */
    for (int round = 0; round < 5; round++) {
        sp_event_reset(ev);
        for (int i = 0; i < SP_HEADERS_MAX; i++) {
            char value[SP_HEADER_MAX];
            memset(value, 'a' + round, sizeof(value));
            assert_int_equal(0, sp_event_add_header(ev, "X-Fill", 6, value, sizeof(value)));
        }
        assert_int_equal(-1, add(ev, "X-More", "1"));
        assert_int_equal(SP_HEADERS_MAX, ev->n_headers);
        assert_int_equal('a' + round, ev->headers[SP_HEADERS_MAX - 1].value[0]);
    }
    sp_event_free(ev);
}

/* The row's texts are what the event holds (repaired where ill-formed), packed into one block
 * the row owns: none points into the event's arrays, empty ones are "", and a row made again
 * after sp_event_row_forget says the same (ASan: the copies made for it are freed). */
static void test_row_packed(void **state)
{
    sp_event_t *ev = rich_event();
    strcpy(ev->browser, "Chrome");
    strcpy(ev->city, "caf\xe9"); /* ill-formed: repaired into a copy */
    ev->region[0] = '\0';
    ev->read_ms = -1;
    const sp_event_row_t *row = sp_event_row(ev);
    assert_string_equal("spring-2026", row->campaign);
    assert_string_equal("alice+news@example.com", row->recipient);
    assert_string_equal("Chrome", row->browser);
    assert_string_equal("caf\xef\xbf\xbd", row->city);
    assert_string_equal("", row->region);
    assert_string_equal("Mozilla/5.0 (Windows NT 10.0; Win64; x64)", row->user_agent);
    assert_null(row->engagement);
    json_t *headers = parse_object(row->headers_json);
    assert_string_equal("t.example.com", member(headers, "Host"));
    json_decref(headers);

    const char *lo = ev->row_texts, *hi = lo;
    for (size_t f = 0; f < SP_EVENT_N_FIELDS; f++) {
        const sp_event_field_t *fd = &sp_event_fields[f];
        if (SP_FIELD_TEXT != fd->kind && SP_FIELD_TEXT_OR_NULL != fd->kind &&
            SP_FIELD_OBJECT != fd->kind)
            continue;
        const char *t = sp_event_row_text(row, fd);
        if (!t || !t[0])
            continue;
        /* Each text follows the one before it in the block. */
        assert_ptr_equal(hi, t);
        hi = t + strlen(t) + 1;
    }
    assert_true(hi - lo > 200);
    assert_true((const char *)row->region < (const char *)ev ||
                (const char *)row->region >= (const char *)ev + sizeof(*ev) + ev->buf_size);

    char before[4096];
    snprintf(before, sizeof(before), "%s|%s|%s|%s", row->campaign, row->city, row->target,
             row->cookies_json);
    sp_event_row_forget(ev);
    assert_null(ev->row_texts);
    row = sp_event_row(ev);
    char after[4096];
    snprintf(after, sizeof(after), "%s|%s|%s|%s", row->campaign, row->city, row->target,
             row->cookies_json);
    assert_string_equal(before, after);
    sp_event_free(ev);
}

#if defined(__SANITIZE_ADDRESS__) /* slabs carve nothing: every block is malloc's */
#define CARVED 0
#else
#define CARVED 1
#endif

/* Makes the row of event ARG again and frees it, on a thread not its slab's owner. */
static void *row_elsewhere(void *arg)
{
    sp_event_t *ev = arg;
    sp_event_row_forget(ev);
    const sp_event_row_t *row = sp_event_row(ev);
    assert_string_equal("alice+news@example.com", row->recipient);
    /* Not carved: the slab is its owner's alone. */
    if (CARVED)
        assert_ptr_not_equal((const char *)ev + sp_slab_size(ev), ev->row_texts);
    sp_event_free(ev);
    return NULL;
}

/* An event decoded in a slab is the one decoded alone; made on the slab's thread, its row's
 * texts and split headers are carved after it, and its memory told from their blocks; freed
 * on another thread, its row made there again, after the slab has closed. */
static void test_decode_in_slab(void **state)
{
    sp_event_t *ev = rich_event();
    size_t len;
    unsigned char *buf = encode(ev, &len);
    sp_slab_t *slab = sp_slab_new();
    sp_event_t *got = sp_event_decode_in(slab, buf, len);
    assert_non_null(got);
    same_event(ev, got);
    assert_int_equal(got->n_headers, got->header_slots);
    sp_event_t *alone = decode_exact(buf, len);
    assert_string_equal(sp_event_row(alone)->headers_json, sp_event_row(got)->headers_json);
    const char *set, *apart;
    assert_int_equal(0, sp_intern_split_event(got, &set, &apart));
    if (CARVED) {
        assert_ptr_equal((const char *)got + sp_slab_size(got), got->row_texts);
        assert_ptr_equal(got->row_texts + sp_slab_size(got->row_texts), got->headers_set);
        /* Shrunk in place to what it holds: its record's size and the struct's, not the room
         * decoding kept for scrubbing. */
        assert_true(sp_slab_size(got) < sizeof(*got) + len + 16 * got->n_headers + 64);
    }
    assert_int_equal(sp_slab_size(got) + sp_slab_size(got->row_texts) +
                         sp_slab_size(got->headers_set),
                     sp_event_held(got));
    assert_true(sp_event_held(got) > sizeof(*got) + strlen(sp_event_row(got)->headers_json));
    /* A record that is not one: nothing made, the slab's room given back. */
    assert_null(sp_event_decode_in(slab, buf, len - 1));
    sp_event_t *next = sp_event_decode_in(slab, buf, len);
    if (CARVED)
        assert_ptr_equal(got->headers_set + sp_slab_size(got->headers_set), next);
    sp_event_free(next);
    sp_slab_close(slab);
    pthread_t t;
    assert_int_equal(0, pthread_create(&t, NULL, row_elsewhere, got));
    assert_int_equal(0, pthread_join(t, NULL));
    sp_event_free(alone);
    sp_event_free(ev);
    free(buf);
}

/* ---- spypixel's own credentials -------------------------------------------------------------- */

/* sp_event_scrub_header on NAME: VALUE as a string, or NULL when kept as it is. */
static const char *scrub(const char *name, const char *value)
{
    static char out[SP_HEADER_MAX + 1];
    long n = sp_event_scrub_header(name, strlen(name), value, strlen(value), out, sizeof(out));
    if (n < 0)
        return NULL;
    assert_int_equal((size_t)n, strlen(out));
    return out;
}

static void test_scrub_header(void **state)
{
    (void)state;
    /* Whole-value credentials, whatever the case of the name. */
    assert_string_equal(SP_EVENT_REMOVED, scrub("Authorization", "Bearer spt_secret"));
    assert_string_equal(SP_EVENT_REMOVED, scrub("authorization", "Basic YWRtaW46cHc="));
    assert_string_equal(SP_EVENT_REMOVED, scrub("Proxy-Authorization", "Basic cHJveHk6cHc="));
    assert_string_equal(SP_EVENT_REMOVED, scrub("X-CSRF-Token", "csrfsecret"));
    assert_null(scrub("Authorization", "")); /* nothing to remove */
    /* Other headers, and names that only look alike, are kept. */
    assert_null(scrub("User-Agent", "sp_session=x"));
    assert_null(scrub("Authorization-Info", "x"));
    assert_null(scrub("Cookies", "sp_session=x"));
    assert_null(scrub("X-Authorization", "x"));
    assert_null(scrub("", "x"));

    /* Cookies: ours lose their values, the others stay byte for byte. */
    assert_string_equal("a=1; sp_session=" SP_EVENT_REMOVED "; b=\"two\"",
                        scrub("Cookie", "a=1; sp_session=S3CR3T; b=\"two\""));
    assert_string_equal("sp_self=" SP_EVENT_REMOVED ";spv=0123",
                        scrub("cookie", "sp_self=AAAA.BBBB;spv=0123"));
    assert_string_equal("sp_device=" SP_EVENT_REMOVED, scrub("Cookie", "sp_device=N.M"));
    assert_null(scrub("Cookie", "a=1; spv=0123; sp_sessionx=1; xsp_self=2"));
    assert_null(scrub("Cookie", "sp_session; a=1")); /* a name without a value */
    assert_null(scrub("Cookie", ""));
    /* Every spelling the API's own cookie reader takes, and quoted values. */
    assert_string_equal(" \tsp_session \t=" SP_EVENT_REMOVED,
                        scrub("Cookie", " \tsp_session \t=S3CR3T"));
    assert_string_equal("sp_session=" SP_EVENT_REMOVED, scrub("Cookie", "sp_session=\"S3CR3T\""));
    assert_string_equal("SP_SESSION=" SP_EVENT_REMOVED, scrub("Cookie", "SP_SESSION=S3CR3T"));
    assert_string_equal("sp_session=" SP_EVENT_REMOVED, scrub("Cookie", "sp_session="));
    assert_string_equal("sp_session=" SP_EVENT_REMOVED, scrub("Cookie", "sp_session=a=b"));
    /* Repeats of one of ours are dropped: the first stands for all. */
    assert_string_equal("sp_self=" SP_EVENT_REMOVED "; x=1; y=2",
                        scrub("Cookie", "sp_self=one; x=1; sp_self=two; y=2"));
    assert_string_equal("sp_self=" SP_EVENT_REMOVED ";sp_session=" SP_EVENT_REMOVED,
                        scrub("Cookie", "sp_self=;sp_self=;sp_session=;sp_self=;sp_session="));
    /* Scrubbing what was scrubbed changes nothing. */
    const char *once = "a=1; sp_session=" SP_EVENT_REMOVED;
    assert_string_equal(once, scrub("Cookie", once));

    /* The copy is cut to the buffer, never past it, and still holds no secret. */
    char small[12];
    long n = sp_event_scrub_header("Cookie", 6, "sp_session=S3CR3T", 17, small, sizeof(small));
    assert_int_equal(11, n);
    assert_string_equal("sp_session=", small);
    n = sp_event_scrub_header("Authorization", 13, "Bearer x", 8, small, 4);
    assert_int_equal(3, n);
    assert_string_equal("[re", small);
}

static void test_scrub_event(void **state)
{
    (void)state;
    sp_event_t *ev = sp_event_new(EV_BUF_SCRUB);
    assert_int_equal(0, add(ev, "Authorization", "Bearer spt_secret"));
    assert_int_equal(0, add(ev, "Cookie", "sp_session=S3CR3T; sp_self=N.M; spv=0123; a=b"));
    assert_int_equal(0, add(ev, "Proxy-Authorization", "Basic cHJveHk="));
    assert_int_equal(0, add(ev, "X-CSRF-Token", "csrfsecret"));
    assert_int_equal(0, add(ev, "User-Agent", "UA"));
    for (size_t i = 0; i < ev->n_headers; i++)
        assert_null(strstr(ev->headers[i].value, "secret"));
    assert_string_equal(SP_EVENT_REMOVED, sp_event_header(ev, "authorization"));
    assert_string_equal(
        "sp_session=" SP_EVENT_REMOVED "; sp_self=" SP_EVENT_REMOVED "; spv=0123; a=b", ev->cookie);
    char value[64];
    assert_int_equal(0, sp_event_cookie(ev->cookie, "spv", value, sizeof(value)));
    assert_string_equal("0123", value);

    char *cookies = sp_event_cookies_json(ev), *headers = sp_event_headers_json(ev);
    assert_string_equal("{\"sp_session\":\"" SP_EVENT_REMOVED "\",\"sp_self\":\"" SP_EVENT_REMOVED
                        "\",\"spv\":\"0123\",\"a\":\"b\"}",
                        cookies);
    assert_null(strstr(headers, "S3CR3T"));
    assert_null(strstr(headers, "secret"));
    assert_null(strstr(headers, "cHJveHk"));
    free(cookies);
    free(headers);

    /* A Cookie header at the length limit: the copy is cut there too. */
    sp_event_reset(ev);
    char big[SP_HEADER_MAX + 100];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "a=", 2);
    memcpy(big + SP_HEADER_MAX - 12, "; sp_self=", 10); /* its value cut to 2 bytes */
    assert_int_equal(0, add(ev, "Cookie", big));
    assert_int_equal(SP_HEADER_MAX, strlen(ev->cookie));
    assert_null(strstr(ev->cookie, "sp_self=xx"));
    assert_string_equal("; sp_self=[r", ev->cookie + SP_HEADER_MAX - 12);
    sp_event_free(ev);
}

/* A journal written before events were scrubbed holds credentials: decoding scrubs them, and
 * keeps the self-view evidence the request thread recorded. The old record is made by writing
 * an event whose headers have look-alike names of the same lengths, then renaming them in
 * the bytes. */
static void test_scrub_old_record(void **state)
{
    (void)state;
    sp_event_t *ev = sp_event_new(EV_BUF);
    ev->ts_ms = 1700000000000;
    ev->self_cookie = true;
    snprintf(ev->campaign, sizeof(ev->campaign), "c");
    assert_int_equal(0, add(ev, "Xookie", "sp_session=S3CR3T; sp_self=N.M; a=b"));
    assert_int_equal(0, add(ev, "Xuthorization", "Bearer spt_secret"));
    size_t len;
    unsigned char *buf = encode(ev, &len);
    for (size_t i = 0; i + 13 <= len; i++) {
        if (0 == memcmp(buf + i, "Xookie", 6))
            buf[i] = 'C';
        if (0 == memcmp(buf + i, "Xuthorization", 13))
            buf[i] = 'A';
    }
    assert_non_null(memmem(buf, len, "S3CR3T", 6)); /* the old record holds them */
    sp_event_t *got = decode_exact(buf, len);
    assert_non_null(got);
    assert_true(got->self_cookie);
    assert_string_equal("sp_session=" SP_EVENT_REMOVED "; sp_self=" SP_EVENT_REMOVED "; a=b",
                        sp_event_header(got, "Cookie"));
    assert_string_equal(SP_EVENT_REMOVED, sp_event_header(got, "Authorization"));

    /* The largest old record: every header a Cookie made of the shortest cookies of ours. */
    sp_event_reset(ev);
    char value[SP_HEADER_MAX + 1];
    size_t at = 0;
    while (at + 20 <= SP_HEADER_MAX)
        at += (size_t)sprintf(value + at, "sp_self=;sp_device=;");
    value[at] = '\0';
    for (int i = 0; i < SP_HEADERS_MAX; i++)
        assert_int_equal(0, add(ev, "Xookie", value));
    free(buf);
    buf = encode(ev, &len);
    for (size_t i = 0; i + 6 <= len; i++)
        if (0 == memcmp(buf + i, "Xookie", 6))
            buf[i] = 'C';
    sp_event_free(got);
    got = decode_exact(buf, len);
    assert_non_null(got);
    assert_int_equal(SP_HEADERS_MAX, got->n_headers);
    assert_string_equal("sp_self=" SP_EVENT_REMOVED ";sp_device=" SP_EVENT_REMOVED ";",
                        got->headers[SP_HEADERS_MAX - 1].value);
    sp_event_free(got);
    sp_event_free(ev);
    free(buf);
}

static void test_scrub_json(void **state)
{
    (void)state;
    char *out = sp_event_scrub_json("{\"Host\":\"h\",\"Authorization\":\"Bearer spt_x\","
                                    "\"Cookie\":\"sp_session=S; a=1\",\"X-Odd\":\"\\u00e9\"}",
                                    false);
    assert_string_equal("{\"Host\":\"h\",\"Authorization\":\"" SP_EVENT_REMOVED
                        "\",\"Cookie\":\"sp_session=" SP_EVENT_REMOVED
                        "; a=1\",\"X-Odd\":\"\xc3\xa9\"}",
                        out);
    /* Once scrubbed, or never holding any, it stays. */
    assert_null(sp_event_scrub_json(out, false));
    free(out);
    assert_null(sp_event_scrub_json("{\"Host\":\"h\",\"Cookie\":\"a=1\"}", false));
    out = sp_event_scrub_json("{\"a\":\"1\",\"sp_session\":\"S\",\"SP_SELF\":\"F\"}", true);
    assert_string_equal("{\"a\":\"1\",\"sp_session\":\"" SP_EVENT_REMOVED
                        "\",\"SP_SELF\":\"" SP_EVENT_REMOVED "\"}",
                        out);
    assert_null(sp_event_scrub_json(out, true));
    free(out);
    /* Not an object, not JSON: left alone. */
    assert_null(sp_event_scrub_json("[\"Authorization\"]", false));
    assert_null(sp_event_scrub_json("{\"Authorization\":", false));
    assert_null(sp_event_scrub_json("", true));
    assert_null(sp_event_scrub_json(NULL, true));
    /* A header value longer than an event keeps (repeated headers joined). */
    size_t n = 3 * SP_HEADER_MAX;
    char *json = malloc(n + 64);
    assert_non_null(json);
    int k = sprintf(json, "{\"Cookie\":\"");
    memset(json + k, 'x', n);
    memcpy(json + k, "a=", 2);
    memcpy(json + k + n - 20, "; sp_self=0123456789", 20);
    strcpy(json + k + n, "\"}");
    out = sp_event_scrub_json(json, false);
    assert_non_null(out);
    assert_null(strstr(out, "0123456789"));
    assert_non_null(strstr(out, "sp_self=" SP_EVENT_REMOVED "\"}"));
    free(out);
    free(json);
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
        cmocka_unit_test(test_headers_json_bytes),
        cmocka_unit_test(test_cookies_json),
        cmocka_unit_test(test_format_ts),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_decoded_header_slots),
        cmocka_unit_test(test_encode_largest),
        cmocka_unit_test(test_encode_adopted),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_malformed),
        cmocka_unit_test(test_decode_noise),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_row_packed),
        cmocka_unit_test(test_decode_in_slab),
        cmocka_unit_test(test_scrub_header),
        cmocka_unit_test(test_scrub_event),
        cmocka_unit_test(test_scrub_old_record),
        cmocka_unit_test(test_scrub_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
