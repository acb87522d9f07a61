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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distinct_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
