/* Unit tests for scratch: a batch's large blocks kept for the next batch. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "scratch.h"

#define LARGE (300 * 1024) /* kept: 256 KiB and more */

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* A large block given back is handed out again for a request it can hold, and a zeroed one is
 * zeroed whatever the block held before; a block too small is not reused. */
static void test_reuse(void **state)
{
    (void)state;
    sp_scratch_release();
    unsigned char *a = sp_scratch_get(LARGE);
    memset(a, 0xab, LARGE);
    sp_scratch_put(a);
    unsigned char *b = sp_scratch_zero(LARGE / 8, 8);
#if !defined(__SANITIZE_ADDRESS__) /* under AddressSanitizer nothing is kept */
    assert_ptr_equal(a, b);
#endif
    assert_true(all_zero(b, LARGE));
    memset(b, 0xcd, LARGE);
    sp_scratch_put(b);
    /* Larger than any kept: a new block, all of it writable. */
    unsigned char *c = sp_scratch_zero(4, LARGE);
    assert_true(all_zero(c, 4 * (size_t)LARGE));
    memset(c, 1, 4 * (size_t)LARGE);
    /* The smaller kept one serves a smaller request while the larger is out. */
    unsigned char *d = sp_scratch_get(LARGE - 1000);
#if !defined(__SANITIZE_ADDRESS__)
    assert_ptr_equal(b, d);
#endif
    sp_scratch_put(c);
    sp_scratch_put(d);
    sp_scratch_put(NULL);
    sp_scratch_release();
}

/* Small blocks are malloc's own; many blocks at once, more than are kept, all distinct and
 * whole, and all given back. */
static void test_many(void **state)
{
    (void)state;
    enum { N = 40 };
    unsigned char *p[N];
    for (size_t i = 0; i < N; i++) {
        size_t size = i % 2 ? 100 + i : LARGE + i * 4096;
        p[i] = sp_scratch_zero(1, size);
        assert_true(all_zero(p[i], size));
        memset(p[i], (int)i + 1, size);
    }
    for (size_t i = 0; i < N; i++) {
        size_t size = i % 2 ? 100 + i : LARGE + i * 4096;
        for (size_t j = 0; j < size; j += 997)
            assert_int_equal((unsigned char)(i + 1), p[i][j]);
        assert_int_equal((unsigned char)(i + 1), p[i][size - 1]);
    }
    for (size_t i = 0; i < N; i++)
        sp_scratch_put(p[i]);
    for (size_t i = 0; i < N; i++) { /* again, from what was kept */
        size_t size = LARGE + i * 4096;
        p[i] = sp_scratch_zero(1, size);
        assert_true(all_zero(p[i], size));
    }
    for (size_t i = 0; i < N; i++)
        sp_scratch_put(p[i]);
    sp_scratch_release();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
