/* scratch: the large blocks a batch works in, kept for the next batch. */
/* SPDX-License-Identifier: MIT */
#include "scratch.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A batch's tally and rollups hold about twenty blocks at once (the rollups on a thread of their
 * own beside the writer's tally): the cache keeps as many as that for the next. */
#define KEPT_MAX 32
/* Smaller blocks are malloc's own, which keeps its arenas' free memory for reuse. */
#define KEEP_MIN (256 * 1024)
/* A kept block's size is rounded up to this many bytes, so that batches of a few opens more or
 * less find the blocks the last one gave back large enough. */
#define ROUND (64 * 1024)

/* Each block begins with its size (0: one of malloc's own, below KEEP_MIN); what the caller
 * gets follows, 16-byte aligned as malloc's. */
typedef struct block {
    size_t size;
    size_t pad;
} block_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block_t *kept[KEPT_MAX];
static size_t n_kept;

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer every block is malloc's and free's, so that a use after sp_scratch_put
 * is found as one after free. */
#define KEEP 0
#else
#define KEEP 1
#endif

void *sp_scratch_get(size_t size)
{
    if (size > SIZE_MAX - sizeof(block_t) - ROUND)
        abort();
    if (size < KEEP_MIN) {
        block_t *b = malloc(sizeof(*b) + size);
        if (!b)
            abort();
        b->size = 0;
        return b + 1;
    }
    size = (size + ROUND - 1) / ROUND * ROUND;
    block_t *b = NULL;
    pthread_mutex_lock(&lock);
    size_t best = n_kept;
    for (size_t i = 0; i < n_kept; i++) /* the smallest large enough */
        if (kept[i]->size >= size && (best == n_kept || kept[i]->size < kept[best]->size))
            best = i;
    if (best < n_kept) {
        b = kept[best];
        kept[best] = kept[--n_kept];
    }
    pthread_mutex_unlock(&lock);
    if (!b) {
        b = malloc(sizeof(*b) + size);
        if (!b)
            abort();
        b->size = size;
    }
    return b + 1;
}

void *sp_scratch_zero(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        abort();
    void *p = sp_scratch_get(n * size);
    memset(p, 0, n * size);
    return p;
}

void sp_scratch_put(void *p)
{
    if (!p)
        return;
    block_t *b = (block_t *)p - 1, *drop = b;
    if (KEEP && b->size) {
        pthread_mutex_lock(&lock);
        if (n_kept < KEPT_MAX) {
            kept[n_kept++] = b;
            drop = NULL;
        } else {
            size_t least = 0; /* full: the smallest of them and B goes */
            for (size_t i = 1; i < n_kept; i++)
                if (kept[i]->size < kept[least]->size)
                    least = i;
            if (kept[least]->size < b->size) {
                drop = kept[least];
                kept[least] = b;
            }
        }
        pthread_mutex_unlock(&lock);
    }
    free(drop);
}

void sp_scratch_release(void)
{
    pthread_mutex_lock(&lock);
    while (n_kept)
        free(kept[--n_kept]);
    pthread_mutex_unlock(&lock);
}
