/* Unit tests for intern: the writer's bounded cache, and header sets split and joined back. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"

/* The cache holds at most its slots, never a text longer than its bound, finds what it holds
 * and forgets all on clear. */
static int64_t find(sp_intern_t *c, const char *text)
{
    sp_intern_key_t key = sp_intern_key(text);
    return sp_intern_find(c, &key);
}

static void keep(sp_intern_t *c, const char *text, int64_t id)
{
    sp_intern_key_t key = sp_intern_key(text);
    sp_intern_keep(c, &key, id);
}

static void test_cache_bounds(void **state)
{
    (void)state;
    sp_intern_t *c = sp_intern_new(8, 16);
    char text[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(text, sizeof(text), "agent %d", i);
        keep(c, text, i + 1);
        assert_int_equal(i + 1, find(c, text));
        assert_true(sp_intern_count(c) <= 8);
    }
    assert_int_equal(8, sp_intern_count(c));
    int held = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(text, sizeof(text), "agent %d", i);
        int64_t id = find(c, text);
        assert_true(0 == id || i + 1 == id);
        held += id != 0;
    }
    assert_int_equal(8, held);
    keep(c, "a text longer than sixteen", 5000);
    assert_int_equal(0, find(c, "a text longer than sixteen"));
    /* A prefix is another text. */
    keep(c, "abc", 7);
    assert_int_equal(0, find(c, "ab"));
    assert_int_equal(7, find(c, "abc"));
    /* A key found is compared by its bytes, not only its hash. */
    sp_intern_key_t forged = sp_intern_key("abd");
    forged.hash = sp_intern_key("abc").hash;
    assert_int_equal(0, sp_intern_find(c, &forged));
    sp_intern_clear(c);
    assert_int_equal(0, sp_intern_count(c));
    assert_int_equal(0, find(c, "abc"));
    sp_intern_free(c);
}

/* The reader's tokens: one text keeps its token while its slot holds it; a text never gets a
 * token another had, and a long one gets none. */
static uint64_t seen_token(sp_intern_seen_t *seen, const char *text, uint64_t hash)
{
    return sp_intern_seen_token(seen, text, strlen(text), hash);
}

static void test_seen_tokens(void **state)
{
    (void)state;
    sp_intern_seen_t *seen = sp_intern_seen_new();
    uint64_t a = seen_token(seen, "agent a", 1);
    assert_true(a != 0);
    assert_int_equal(a, seen_token(seen, "agent a", 1));
    /* Another text of the same hash takes the slot with a token of its own. */
    uint64_t b = seen_token(seen, "agent b", 1);
    assert_true(b != 0 && b != a);
    /* The first again: a token never handed out before, not its old one (which, should a
     * writer's cache still hold it, names the first text only). */
    uint64_t a2 = seen_token(seen, "agent a", 1);
    assert_true(a2 != a && a2 != b && a2 != 0);
    /* A prefix, or the same length with other bytes, is another text. */
    assert_true(a2 != seen_token(seen, "agent ", 1));
    assert_true(seen_token(seen, "agent c", 2) != seen_token(seen, "agent d", 2));
    /* Other slots keep theirs. */
    uint64_t e = seen_token(seen, "agent e", 3);
    assert_int_equal(e, seen_token(seen, "agent e", 3));
    char *lng = malloc(SP_INTERN_TEXT_MAX + 2);
    assert_non_null(lng);
    memset(lng, 'x', SP_INTERN_TEXT_MAX + 1);
    lng[SP_INTERN_TEXT_MAX + 1] = '\0';
    assert_int_equal(0, seen_token(seen, lng, 4));
    free(lng);
    /* Tokens are the process's: another reader's never repeat this one's. */
    sp_intern_seen_t *other = sp_intern_seen_new();
    uint64_t f = seen_token(other, "agent e", 3);
    assert_true(f != e && f != 0);
    sp_intern_seen_free(other);
    sp_intern_seen_free(seen);
}

/* The writer's cache finds a text by its token without comparing it, and by its bytes when the
 * token is another or none; a token it found the text with is the slot's from then on. */
static void test_find_by_token(void **state)
{
    (void)state;
    sp_intern_t *c = sp_intern_new(8, 64);
    sp_intern_key_t key = sp_intern_key("Mozilla/5.0");
    key.token = 41;
    sp_intern_keep(c, &key, 9);
    assert_int_equal(9, sp_intern_find(c, &key));
    /* The token alone decides: a key of the text's hash and token is the text (tokens are
     * never shared by two texts), its bytes not read. */
    sp_intern_key_t same = key;
    same.text = "not read";
    assert_int_equal(9, sp_intern_find(c, &same));
    /* Another text in the slot under another token: compared, not found. */
    sp_intern_key_t other = sp_intern_key("Mozilla/4.0");
    other.hash = key.hash;
    other.token = 42;
    assert_int_equal(0, sp_intern_find(c, &other));
    /* No token is no match by token: two tokenless keys are compared by their bytes. */
    sp_intern_key_t plain = sp_intern_key("agent x"), forged = sp_intern_key("agent y");
    sp_intern_keep(c, &plain, 11);
    forged.hash = plain.hash;
    assert_int_equal(0, sp_intern_find(c, &forged));
    assert_int_equal(11, sp_intern_find(c, &plain));
    /* The text found by its bytes under a new token takes that token. */
    sp_intern_key_t renamed = plain;
    renamed.token = 43;
    assert_int_equal(11, sp_intern_find(c, &renamed));
    renamed.text = "not read";
    assert_int_equal(11, sp_intern_find(c, &renamed));
    sp_intern_free(c);
}

static void round_trip(const char *json, const char *want_set, const char *want_apart)
{
    char *set = NULL, *apart = NULL, *buf = NULL;
    size_t cap = 0;
    assert_int_equal(0, sp_intern_split(json, &set, &apart));
    assert_string_equal(want_set, set);
    assert_string_equal(want_apart, apart);
    const char *back = sp_intern_join(set, apart, &buf, &cap);
    assert_non_null(back);
    assert_string_equal(json, back);
    free(set);
    free(apart);
    free(buf);
}

/* The address headers' values leave the set, whatever their case, and come back in place. */
static void test_split_join(void **state)
{
    (void)state;
    round_trip("{}", "{}", "");
    round_trip("{\"Host\":\"h\"}", "{\"Host\":\"h\"}", "");
    round_trip("{\"Host\":\"h\",\"X-Forwarded-For\":\"192.0.2.1, 10.0.0.1\",\"Accept\":\"*/*\"}",
               "{\"Host\":\"h\",\"X-Forwarded-For\":@,\"Accept\":\"*/*\"}",
               "\"192.0.2.1, 10.0.0.1\"");
    round_trip(
        "{\"x-real-ip\":\"a\",\"FORWARDED\":\"for=\\\"[2001:db8::1]\\\"\",\"Cookie\":\"v=1\"}",
        "{\"x-real-ip\":@,\"FORWARDED\":@,\"Cookie\":@}",
        "\"a\"\"for=\\\"[2001:db8::1]\\\"\"\"v=1\"");
    /* @, quotes, escapes and braces inside strings are text, in the set and apart. */
    round_trip("{\"A@\":\"@ \\\"@\\\" {}:,\\\\\",\"Referer\":\"https://x/@\\\\\"}",
               "{\"A@\":\"@ \\\"@\\\" {}:,\\\\\",\"Referer\":@}", "\"https://x/@\\\\\"");
    round_trip("{\"X-Forwarded-For\":\"\"}", "{\"X-Forwarded-For\":@}", "\"\"");
    /* From names the person (an email address): it goes with the event, not into the set. */
    round_trip("{\"Host\":\"h\",\"from\":\"reader@example.com\"}", "{\"Host\":\"h\",\"from\":@}",
               "\"reader@example.com\"");
}

/* What is not an object of strings is not split (stored whole); a join with too few or too
 * many values fails. */
static void test_split_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "[]",
        "{\"a\":1}",
        "{\"a\":\"b\"",
        "{\"a\":\"b\"}x",
        "{\"a\" : \"b\"}",
        "{\"a\":\"b}",
        "{\"a\":\"b\",}",
        "null",
        "{\"X-Forwarded-For\":{\"a\":\"b\"}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *set = (char *)"unchanged", *apart = (char *)"unchanged";
        assert_int_equal(-1, sp_intern_split(bad[i], &set, &apart));
        assert_string_equal("unchanged", set);
    }
    char *buf = NULL;
    size_t cap = 0;
    assert_null(sp_intern_join("{\"X-Real-IP\":@}", "", &buf, &cap));
    assert_null(sp_intern_join("{\"X-Real-IP\":@}", "\"a\"\"b\"", &buf, &cap));
    assert_null(sp_intern_join("{\"X-Real-IP\":@}", "\"a", &buf, &cap));
    assert_string_equal("{\"X-Real-IP\":\"a\"}",
                        sp_intern_join("{\"X-Real-IP\":@}", "\"a\"", &buf, &cap));
    free(buf);
}

static void add_header(sp_event_t *ev, const char *name, const char *value)
{
    assert_int_equal(0, sp_event_add_header(ev, name, strlen(name), value, strlen(value)));
}

/* An event's split (made by the ingest's reader, used by the stores' writers) is
 * sp_intern_split's, made once and kept until the event's row is made again; headers that are
 * not an object of strings are kept whole. */
static void test_split_event(void **state)
{
    (void)state;
    sp_event_t *ev = sp_event_new(4096);
    add_header(ev, "Host", "h");
    add_header(ev, "X-Forwarded-For", "192.0.2.1, 10.0.0.1");
    add_header(ev, "Accept", "*/*");
    char *set, *apart;
    assert_int_equal(0, sp_intern_split(sp_event_row(ev)->headers_json, &set, &apart));
    assert_non_null(strstr(apart, "192.0.2.1"));
    const char *set1, *apart1, *set2, *apart2;
    assert_int_equal(0, sp_intern_split_event(ev, &set1, &apart1));
    assert_string_equal(set, set1);
    assert_string_equal(apart, apart1);
    assert_int_equal(0, sp_intern_split_event(ev, &set2, &apart2));
    assert_ptr_equal(set1, set2);
    assert_ptr_equal(apart1, apart2);
    assert_int_equal(0, sp_intern_split_event(ev, NULL, NULL));
    free(set);
    free(apart);

    /* Headers larger than the split's room on the stack. */
    sp_event_t *large = sp_event_new(16384);
    char value[3000];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    add_header(large, "Accept", value);
    add_header(large, "X-Real-IP", value);
    assert_int_equal(0, sp_intern_split(sp_event_row(large)->headers_json, &set, &apart));
    assert_int_equal(0, sp_intern_split_event(large, &set1, &apart1));
    assert_true(strlen(set1) > sizeof(value) && strlen(apart1) > sizeof(value));
    assert_string_equal(set, set1);
    assert_string_equal(apart, apart1);
    free(set);
    free(apart);
    sp_event_free(large);

    /* The keys the stores' caches look the texts up by: the agent's and the set's, made once. */
    add_header(ev, "User-Agent", "Agent/1.0");
    sp_event_row_forget(ev);
    sp_intern_key_t agent, set_key, want;
    const char *apart_key = NULL;
    sp_intern_event_keys(ev, &agent, &set_key, &apart_key);
    assert_int_equal(0, sp_intern_split_event(ev, &set1, &apart1));
    assert_ptr_equal(set1, set_key.text);
    assert_ptr_equal(apart1, apart_key);
    want = sp_intern_key(set1);
    assert_int_equal(want.len, set_key.len);
    assert_true(want.hash == set_key.hash);
    assert_string_equal("Agent/1.0", agent.text);
    want = sp_intern_key("Agent/1.0");
    assert_int_equal(want.len, agent.len);
    assert_true(want.hash == agent.hash);
    ev->set_hash ^= 1; /* kept: not made again */
    sp_intern_event_keys(ev, NULL, &set_key, NULL);
    assert_true(sp_intern_key(set1).hash == (set_key.hash ^ 1));

    /* Made again with the row: here from headers that are not split, kept whole, and no agent. */
    sp_event_row_forget(ev);
    sp_event_row(ev);
    ev->row.headers_json = "{\"a\":1}";
    ev->row.user_agent = NULL;
    set1 = apart1 = "unchanged";
    assert_int_equal(-1, sp_intern_split_event(ev, &set1, &apart1));
    assert_null(set1);
    assert_null(apart1);
    apart_key = "unchanged";
    sp_intern_event_keys(ev, &agent, &set_key, &apart_key);
    assert_null(agent.text);
    assert_null(apart_key);
    assert_string_equal("{\"a\":1}", set_key.text);
    want = sp_intern_key("{\"a\":1}");
    assert_int_equal(want.len, set_key.len);
    assert_true(want.hash == set_key.hash);
    sp_event_free(ev);
}

/* A headers object as the writer makes it, with the most headers, each at its longest: the
 * join's buffer grows to hold it. */
static void test_large(void **state)
{
    (void)state;
    sp_event_t *ev = sp_event_new(SP_HEADERS_MAX * (SP_HEADER_NAME_MAX + SP_HEADER_MAX + 2));
    char *value = malloc(SP_HEADER_MAX);
    assert_non_null(value);
    memset(value, 'v', SP_HEADER_MAX);
    for (int i = 0; i < SP_HEADERS_MAX; i++) {
        char name[32];
        snprintf(name, sizeof(name), i % 2 ? "X-Real-IP" : "H%d", i);
        assert_int_equal(0, sp_event_add_header(ev, name, strlen(name), value, SP_HEADER_MAX));
    }
    char *json = sp_event_headers_json(ev), *set, *apart, *buf = NULL;
    size_t cap = 0;
    assert_int_equal(0, sp_intern_split(json, &set, &apart));
    assert_string_equal(json, sp_intern_join(set, apart, &buf, &cap));
    free(json);
    free(set);
    free(apart);
    free(buf);
    free(value);
    sp_event_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_bounds),  cmocka_unit_test(test_split_join),
        cmocka_unit_test(test_split_refused), cmocka_unit_test(test_split_event),
        cmocka_unit_test(test_large),         cmocka_unit_test(test_seen_tokens),
        cmocka_unit_test(test_find_by_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
