/* Unit tests for slab: blocks carved from large chunks, freed a chunk at a time. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "slab.h"

#if defined(__SANITIZE_ADDRESS__) /* every block is malloc's: nothing is carved */
#define CARVED 0
#else
#define CARVED 1
#endif

#define HEADER 16 /* a block's own header */

static bool filled(const unsigned char *p, size_t n, unsigned char with)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != with)
            return false;
    return true;
}

/* Blocks follow one another in a chunk, each aligned, whole and its own; their sizes are
 * told with their headers; a freed chunk is carved again from its start. */
static void test_carve(void **state)
{
    (void)state;
    sp_slab_t *slab = sp_slab_new();
    enum { N = 200 };
    unsigned char *p[N];
    for (size_t i = 0; i < N; i++) {
        size_t size = 1 + i * 7;
        p[i] = sp_slab_alloc(slab, size);
        assert_int_equal(0, (uintptr_t)p[i] % 16);
        assert_int_equal(HEADER + (size + 15) / 16 * 16, sp_slab_size(p[i]));
        memset(p[i], (int)i + 1, size);
        if (CARVED && i)
            assert_ptr_equal(p[i - 1] + sp_slab_size(p[i - 1]), p[i]);
    }
    for (size_t i = 0; i < N; i++)
        assert_true(filled(p[i], 1 + i * 7, (unsigned char)(i + 1)));
    unsigned char *first = p[0];
    for (size_t i = 0; i < N; i++)
        sp_slab_free(p[i]);
    /* The chunk still being carved goes on from where it was: the last block's room given
     * back as it was freed, the others' only with their chunk. */
    unsigned char *next = sp_slab_alloc(slab, 32);
    if (CARVED)
        assert_ptr_equal(p[N - 1], next);
    unsigned char *after = sp_slab_alloc(slab, 32);
    if (CARVED)
        assert_ptr_equal(next + sp_slab_size(next), after);
    sp_slab_free(next); /* not the last: its room stays carved */
    unsigned char *third = sp_slab_alloc(slab, 32);
    if (CARVED)
        assert_ptr_equal(after + sp_slab_size(after), third);
    sp_slab_free(third);
    sp_slab_free(after);
    /* Past a chunk's end, a new one; chunks whose blocks are all freed are kept and carved
     * anew from their start. */
    enum { M = 300 }; /* over two chunks */
    unsigned char *q[M], *r[M];
    for (size_t i = 0; i < M; i++)
        q[i] = sp_slab_alloc(slab, 2000);
    for (size_t i = 0; i < M; i++)
        sp_slab_free(q[i]);
    bool reused = false;
    for (size_t i = 0; i < M; i++) {
        r[i] = sp_slab_alloc(slab, 2000);
        for (size_t j = 0; j < M; j++)
            reused = reused || r[i] == q[j] || r[i] == first;
    }
    assert_int_equal(CARVED, reused);
    for (size_t i = 0; i < M; i++)
        sp_slab_free(r[i]);
    sp_slab_free(NULL);
    assert_int_equal(0, sp_slab_size(NULL));
    sp_slab_close(slab);
}

/* The last block carved gives its tail back; another keeps its size; a block too large for a
 * chunk, and one asked of no slab, are malloc's and shrink as realloc does. */
static void test_shrink(void **state)
{
    (void)state;
    sp_slab_t *slab = sp_slab_new();
    unsigned char *a = sp_slab_alloc(slab, 1000);
    unsigned char *b = sp_slab_alloc(slab, 1000);
    memset(b, 7, 1000);
    unsigned char *shrunk = sp_slab_shrink(b, 100);
    if (CARVED) /* in place; malloc's may move */
        assert_ptr_equal(b, shrunk);
    b = shrunk;
    assert_true(filled(b, 100, 7));
    unsigned char *c = sp_slab_alloc(slab, 10);
    if (CARVED) {
        assert_int_equal(HEADER + 112, sp_slab_size(b));
        assert_ptr_equal(b + HEADER + 112, c);
    }
    shrunk = sp_slab_shrink(a, 10);
    if (CARVED) { /* not the last: it keeps its room */
        assert_ptr_equal(a, shrunk);
        assert_int_equal(HEADER + 1008, sp_slab_size(a));
    }
    a = shrunk;
    unsigned char *big = sp_slab_alloc(slab, 1 << 20);
    memset(big, 3, 1 << 20);
    unsigned char *small = sp_slab_shrink(big, 64);
    assert_true(filled(small, 64, 3));
    assert_int_equal(HEADER + 64, sp_slab_size(small));
    unsigned char *own = sp_slab_alloc(NULL, 500);
    memset(own, 9, 500);
    own = sp_slab_shrink(own, 20);
    assert_true(filled(own, 20, 9));
    sp_slab_free(own);
    sp_slab_free(small);
    sp_slab_free(a);
    sp_slab_free(b);
    sp_slab_free(c);
    sp_slab_close(slab);
}

struct other {
    sp_slab_t *slab;
    unsigned char **blocks;
    size_t n;
    unsigned char *asked; /* a block asked of the slab from this thread */
};

/* Frees the blocks handed over, and asks the slab for one, from a thread not its owner. */
static void *other_thread(void *arg)
{
    struct other *o = arg;
    for (size_t i = 0; i < o->n; i++)
        sp_slab_free(o->blocks[i]);
    o->asked = sp_slab_alloc(o->slab, 64);
    memset(o->asked, 5, 64);
    return NULL;
}

/* Blocks are freed from any thread, and their chunks come back to the owner for reuse; a block
 * asked from another thread is malloc's, carved from no chunk. */
static void test_other_thread(void **state)
{
    (void)state;
    sp_slab_t *slab = sp_slab_new();
    enum { N = 1000 };
    unsigned char *blocks[N];
    for (size_t i = 0; i < N; i++) {
        blocks[i] = sp_slab_alloc(slab, 1000); /* four chunks */
        memset(blocks[i], 1, 1000);
    }
    unsigned char *first = blocks[0];
    struct other o = {slab, blocks, N, NULL};
    pthread_t t;
    assert_int_equal(0, pthread_create(&t, NULL, other_thread, &o));
    assert_int_equal(0, pthread_join(t, NULL));
    unsigned char *mine = sp_slab_alloc(slab, 1000);
    if (CARVED) {
        assert_ptr_not_equal(mine + sp_slab_size(mine), o.asked);
        bool outside = true;
        for (size_t i = 0; i < N; i++)
            outside = outside && o.asked != blocks[i];
        assert_true(outside);
    }
    assert_true(filled(o.asked, 64, 5));
    sp_slab_free(o.asked);
    /* The chunks the other thread emptied are carved again. */
    bool reused = false;
    unsigned char *again[N];
    for (size_t i = 0; i < N; i++) {
        again[i] = sp_slab_alloc(slab, 1000);
        reused = reused || again[i] == first;
    }
    assert_int_equal(CARVED, reused);
    for (size_t i = 0; i < N; i++)
        sp_slab_free(again[i]);
    sp_slab_free(mine);
    sp_slab_trim(slab);
    sp_slab_close(slab);
}

/* Closed with blocks still held, a slab lives on until the last is freed, from another
 * thread; blocks asked of it once closed are malloc's. (Under AddressSanitizer, whatever is
 * not freed at the end is reported as a leak.) */
static void test_close_held(void **state)
{
    (void)state;
    sp_slab_t *slab = sp_slab_new();
    enum { N = 600 };
    unsigned char *blocks[N];
    for (size_t i = 0; i < N; i++) {
        blocks[i] = sp_slab_alloc(slab, 700);
        memset(blocks[i], (int)(i % 200) + 1, 700);
    }
    for (size_t i = 0; i < N; i += 2) /* some freed before the close, into kept chunks */
        sp_slab_free(blocks[i]);
    sp_slab_close(slab);
    for (size_t i = 1; i < N; i += 2)
        assert_true(filled(blocks[i], 700, (unsigned char)(i % 200) + 1));
    unsigned char *late = sp_slab_alloc(slab, 100);
    memset(late, 2, 100);
    sp_slab_free(late);
    /* Another thread frees all the blocks but one and asks for a block (malloc's: it is not the
     * owner); the last block's free frees the slab. */
    unsigned char *odd[N / 2];
    for (size_t i = 1; i < N; i += 2)
        odd[i / 2] = blocks[i];
    struct other o = {slab, odd, N / 2 - 1, NULL};
    pthread_t t;
    assert_int_equal(0, pthread_create(&t, NULL, other_thread, &o));
    assert_int_equal(0, pthread_join(t, NULL));
    sp_slab_free(o.asked);
    sp_slab_free(odd[N / 2 - 1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_carve),
        cmocka_unit_test(test_shrink),
        cmocka_unit_test(test_other_thread),
        cmocka_unit_test(test_close_held),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
