/* Unit tests for merge: entries of one key made one, and texts numbered by their value. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "merge.h"

/* Equal texts get one number, in first-seen order, and the first pointer of each is kept;
 * the list of distinct texts may be written over the texts themselves. */
static void test_distinct_texts(void **state)
{
    (void)state;
    char a1[] = "campaign-a", a2[] = "campaign-a", b1[] = "campaign-b", b2[] = "campaign-b";
    char e[] = "", c[] = "campaign-c";
    const char *texts[] = {b1, a1, b2, e, a2, c, e};
    enum { N = sizeof(texts) / sizeof(texts[0]) };
    uint32_t index[N];
    const char *distinct[N];
    assert_int_equal(4, sp_distinct_texts(texts, N, index, distinct));
    const uint32_t want[N] = {0, 1, 0, 2, 1, 3, 2};
    for (size_t i = 0; i < N; i++)
        assert_int_equal(want[i], index[i]);
    assert_ptr_equal(b1, distinct[0]);
    assert_ptr_equal(a1, distinct[1]);
    assert_ptr_equal(e, distinct[2]);
    assert_ptr_equal(c, distinct[3]);

    /* In place: the distinct ones over the texts, each text's still its index's. */
    const char *texts2[N];
    memcpy(texts2, texts, sizeof(texts));
    assert_int_equal(4, sp_distinct_texts(texts2, N, index, texts2));
    for (size_t i = 0; i < N; i++)
        assert_string_equal(texts[i], texts2[index[i]]);
    assert_ptr_equal(a1, texts2[1]);

    /* Many texts, few of them distinct, and none. */
    static char many[2000][8];
    const char *ptrs[2000];
    uint32_t idx[2000];
    const char *dist[2000];
    for (size_t i = 0; i < 2000; i++) {
        snprintf(many[i], sizeof(many[i]), "t%zu", i % 37);
        ptrs[i] = many[i];
    }
    assert_int_equal(37, sp_distinct_texts(ptrs, 2000, idx, dist));
    for (size_t i = 0; i < 2000; i++) {
        assert_int_equal(i % 37, idx[i]);
        assert_string_equal(many[i], dist[idx[i]]);
    }
    assert_int_equal(0, sp_distinct_texts(ptrs, 0, idx, dist));
}

static int sign(int v)
{
    return (v > 0) - (v < 0);
}

/* Texts compared by their heads first order as strcmp orders them: every pair of a set with
 * texts shorter than, as long as and longer than a head, one a prefix of another, equal texts
 * at other addresses, and bytes above 0x7f (unsigned, as strcmp compares them). */
static void test_text_cmp(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "",
        "a",
        "ab",
        "abcdefg",
        "abcdefgh",
        "abcdefgh",
        "abcdefghi",
        "abcdefghi",
        "abcdefgz",
        "abcdefh",
        "abcdefghij",
        "abcdefgh\x7f",
        "abcdefgh\xc3\xa9",
        "\xc3\xa9",
        "b",
        "r12345@example.com",
        "r12345@example.org",
        "r12346@example.com",
        "v:abc",
        "v:abcdefghijk",
        "Chrome",
        "Chrome Mobile",
        "Chrome Mobile iOS",
    };
    enum { N = sizeof(texts) / sizeof(texts[0]) };
    char copies[N][32];
    for (size_t i = 0; i < N; i++)
        snprintf(copies[i], sizeof(copies[i]), "%s", texts[i]);
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
            const char *a = texts[i], *b = copies[j];
            int want = sign(strcmp(a, b));
            assert_int_equal(want, sign(sp_text_cmp(a, sp_text_head(a), b, sp_text_head(b))));
            assert_int_equal(want, sign(sp_text_cmp(b, sp_text_head(b), a, sp_text_head(a))) * -1);
        }
    assert_true(sp_text_head("abcdefgh") == sp_text_head("abcdefghi"));
    assert_true(sp_text_head("ab") < sp_text_head("abc"));
}

/* A text's hash and length in one pass: the hash sp_hash_str makes, the length strlen's. */
static void test_hash_str_len(void **state)
{
    (void)state;
    static const char *const texts[] = {"", "a", "r12345@example.com", "v:0123456789abcdef",
                                        "\xc3\xa9t\xc3\xa9"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t len = 12345;
        uint64_t h = sp_hash_str_len(SP_HASH_SEED, texts[i], &len);
        assert_int_equal(strlen(texts[i]), len);
        assert_true(h == sp_hash_str(SP_HASH_SEED, texts[i]));
        assert_true(sp_hash_str_len(7, texts[i], &len) == sp_hash_str(7, texts[i]));
    }
    assert_true(sp_hash_str(SP_HASH_SEED, "ab") != sp_hash_str(SP_HASH_SEED, "ba"));
}

/* The word-at-a-time hash of LEN bytes: a text's, wherever it lies in memory (its words read
 * unaligned); its length, each of its bytes, a word's and the tail's, count. */
static void test_hash_words(void **state)
{
    (void)state;
    static const char ua[] = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36";
    size_t n = sizeof(ua) - 1;
    uint64_t h = sp_hash_words(ua, n);
    char buf[sizeof(ua) + 8];
    for (size_t at = 1; at < 8; at++) {
        memcpy(buf + at, ua, n);
        assert_true(h == sp_hash_words(buf + at, n));
    }
    char changed[sizeof(ua)];
    for (size_t i = 0; i < n; i++) { /* in a word, or in the tail (N is not a multiple of 8) */
        memcpy(changed, ua, n);
        changed[i] ^= 1;
        assert_true(h != sp_hash_words(changed, n));
    }
    assert_true(h != sp_hash_words(ua, n - 1));
    assert_true(sp_hash_words("", 0) != sp_hash_words("\0", 1));
    assert_true(sp_hash_words("abcdefgh", 8) != sp_hash_words("abcdefgh\0", 9));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_texts),
        cmocka_unit_test(test_text_cmp),
        cmocka_unit_test(test_hash_str_len),
        cmocka_unit_test(test_hash_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
