/* slab: blocks carved one after another from large chunks, freed a chunk at a time. */
/* SPDX-License-Identifier: MIT */
#include "slab.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

/* A chunk is mapped for itself by malloc (main.c's M_MMAP_THRESHOLD is 256 KiB): kept once
 * freed, never unmapped while its slab is open. A batch of 16,384 realistic opens takes about
 * two hundred. */
#define CHUNK_SIZE (256 * 1024)
/* Larger blocks are malloc's: one would leave too much of a chunk's end unused. */
#define BLOCK_MAX (CHUNK_SIZE / 8)
#define ALIGN     16

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer every block is malloc's and free's, so that a use after sp_slab_free
 * is found as one after free. */
#define CARVE 0
#else
#define CARVE 1
#endif

typedef struct chunk chunk_t;

/* Each block begins with its chunk (NULL: malloc's own) and its size with this header; what
 * the caller gets follows, 16-byte aligned as malloc's. */
typedef struct block {
    chunk_t *chunk;
    size_t size;
} block_t;
_Static_assert(sizeof(block_t) == 2 * sizeof(void *), "sp_slab_prefetch: the header's size");

struct chunk {
    /* One for each block carved and not yet freed, and one while its slab carves from it. */
    atomic_size_t refs;
    sp_slab_t *slab;
    size_t used; /* bytes of MEM carved: written by the owner only, while it carves */
    chunk_t *next;
    _Alignas(ALIGN) unsigned char mem[];
};

struct sp_slab {
    pthread_t owner; /* set once, before the slab is shared */
    bool carving;    /* the owner's: until it closes the slab */
    chunk_t *current;
    pthread_mutex_t lock;
    bool open;     /* under LOCK: until sp_slab_close */
    chunk_t *kept; /* under LOCK: chunks whose blocks are all freed, for reuse */
    size_t holds;  /* under LOCK: chunks not freed, and one for the owner until it closes */
};

sp_slab_t *sp_slab_new(void)
{
    sp_slab_t *slab = calloc(1, sizeof(*slab));
    if (!slab)
        abort();
    slab->owner = pthread_self();
    slab->carving = true;
    pthread_mutex_init(&slab->lock, NULL);
    slab->open = true;
    slab->holds = 1;
    return slab;
}

static void destroy(sp_slab_t *slab)
{
    pthread_mutex_destroy(&slab->lock);
    free(slab);
}

/* SLAB's kept chunks (its lock held), unlinked and no longer counted, to free outside it. */
static chunk_t *take_kept(sp_slab_t *slab)
{
    chunk_t *list = slab->kept;
    slab->kept = NULL;
    for (chunk_t *c = list; c; c = c->next)
        slab->holds--;
    return list;
}

static void free_list(chunk_t *list)
{
    while (list) {
        chunk_t *next = list->next;
        free(list);
        list = next;
    }
}

/* Chunk C's last block is freed: kept for reuse while its slab is open, freed otherwise (and
 * the slab with its last chunk once its owner has closed it). */
static void chunk_done(chunk_t *c)
{
    sp_slab_t *slab = c->slab;
    pthread_mutex_lock(&slab->lock);
    bool keep = slab->open, gone = false;
    if (keep) {
        c->next = slab->kept;
        slab->kept = c;
    } else {
        gone = 0 == --slab->holds;
    }
    pthread_mutex_unlock(&slab->lock);
    if (!keep)
        free(c);
    if (gone)
        destroy(slab);
}

static void chunk_unref(chunk_t *c)
{
    if (1 == atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel))
        chunk_done(c);
}

/* A chunk for SLAB's owner to carve from: a kept one, or a new one. */
static chunk_t *chunk_take(sp_slab_t *slab)
{
    pthread_mutex_lock(&slab->lock);
    chunk_t *c = slab->kept;
    if (c)
        slab->kept = c->next;
    else
        slab->holds++;
    pthread_mutex_unlock(&slab->lock);
    if (!c && !(c = malloc(sizeof(*c) + CHUNK_SIZE)))
        abort();
    atomic_init(&c->refs, 1);
    c->slab = slab;
    c->used = 0;
    c->next = NULL;
    return c;
}

static size_t rounded(size_t size)
{
    return sizeof(block_t) + (size + ALIGN - 1) / ALIGN * ALIGN;
}

/* True when the calling thread is SLAB's owner and carves from it still. CARVING is the
 * owner's alone to read and write; another thread never reads it, OWNER set for good before. */
static bool carves(const sp_slab_t *slab)
{
    return CARVE && slab && pthread_equal(slab->owner, pthread_self()) && slab->carving;
}

void *sp_slab_alloc(sp_slab_t *slab, size_t size)
{
    if (size > SIZE_MAX - 2 * ALIGN - sizeof(block_t))
        abort();
    size_t need = rounded(size);
    if (size > BLOCK_MAX || !carves(slab)) {
        block_t *b = malloc(need);
        if (!b)
            abort();
        *b = (block_t){NULL, need};
        return b + 1;
    }
    chunk_t *c = slab->current;
    if (!c || CHUNK_SIZE - c->used < need) {
        if (c)
            chunk_unref(c);
        c = slab->current = chunk_take(slab);
    }
    block_t *b = (block_t *)(void *)(c->mem + c->used);
    c->used += need;
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    *b = (block_t){c, need};
    return b + 1;
}

/* True when block B of a chunk is the last its slab carved, and this is the slab's owner:
 * only the owner carves, and carving goes on where the last block ends. */
static bool last_carved(const block_t *b)
{
    const chunk_t *c = b->chunk;
    return carves(c->slab) && c == c->slab->current &&
           (const unsigned char *)b + b->size == c->mem + c->used;
}

void *sp_slab_shrink(void *p, size_t size)
{
    block_t *b = (block_t *)p - 1;
    size_t need = rounded(size);
    if (need >= b->size)
        return p;
    if (!b->chunk) {
        block_t *small = realloc(b, need);
        if (!small)
            return p; /* it keeps its room */
        small->size = need;
        return small + 1;
    }
    if (last_carved(b)) {
        b->chunk->used -= b->size - need;
        b->size = need;
    }
    return p;
}

void sp_slab_free(void *p)
{
    if (!p)
        return;
    block_t *b = (block_t *)p - 1;
    if (!b->chunk) {
        free(b);
        return;
    }
    if (last_carved(b)) /* its room carved again at once (an event that would not decode) */
        b->chunk->used -= b->size;
    chunk_unref(b->chunk);
}

size_t sp_slab_size(const void *p)
{
    return p ? ((const block_t *)p - 1)->size : 0;
}

void sp_slab_trim(sp_slab_t *slab)
{
    if (!slab)
        return;
    pthread_mutex_lock(&slab->lock);
    chunk_t *kept = take_kept(slab);
    pthread_mutex_unlock(&slab->lock);
    free_list(kept);
}

void sp_slab_close(sp_slab_t *slab)
{
    if (!slab)
        return;
    slab->carving = false;
    pthread_mutex_lock(&slab->lock);
    slab->open = false;
    chunk_t *kept = take_kept(slab);
    pthread_mutex_unlock(&slab->lock);
    free_list(kept);
    chunk_t *c = slab->current;
    slab->current = NULL;
    if (c)
        chunk_unref(c); /* freed now unless blocks of it are still held */
    pthread_mutex_lock(&slab->lock);
    bool gone = 0 == --slab->holds; /* the owner's own */
    pthread_mutex_unlock(&slab->lock);
    if (gone)
        destroy(slab);
}
