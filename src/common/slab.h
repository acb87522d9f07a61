/* slab: blocks carved one after another from large chunks, for memory made and freed in
 * runs (a batch's events): a chunk goes back for reuse once its last block is freed. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SLAB_H
#define SP_SLAB_H

#include <stddef.h>

/* A slab's blocks are carved by the thread that made it, and freed by any thread. */
typedef struct sp_slab sp_slab_t;

/* A slab owned by the calling thread. Aborts when out of memory. */
sp_slab_t *sp_slab_new(void);

/* The owner is done with SLAB (NULL: nothing): the chunks it keeps are freed, and the slab
 * itself once its last block is. Blocks asked of it from then on are malloc's. */
void sp_slab_close(sp_slab_t *slab);

/* A block of SIZE bytes, 16-byte aligned, its contents undefined: from SLAB when this is its
 * owner's thread and SIZE is small beside a chunk, otherwise malloc's own (SLAB may be NULL).
 * Either way freed with sp_slab_free. Aborts when out of memory. */
void *sp_slab_alloc(sp_slab_t *slab, size_t size);

/* Block P (sp_slab_alloc's) cut to SIZE bytes, at most its size: the same block, its tail
 * given back when it is the last its chunk carved (or malloc's realloc). */
void *sp_slab_shrink(void *p, size_t size);

/* Frees block P (sp_slab_alloc's, or NULL), from any thread. */
void sp_slab_free(void *p);

/* Asks memory for block P's header (P may be NULL), which sp_slab_free reads and writes: for
 * a pass that frees blocks made long before, some blocks ahead. */
static inline void sp_slab_prefetch(const void *p)
{
    if (p)
        __builtin_prefetch((const char *)p - 2 * sizeof(void *), 1);
}

/* The bytes block P (or NULL: 0) holds, its header with it. */
size_t sp_slab_size(const void *p);

/* Frees the chunks SLAB keeps for reuse, from its owner's thread: once a backlog is in. */
void sp_slab_trim(sp_slab_t *slab);

#endif
