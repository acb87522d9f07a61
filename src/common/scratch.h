/* scratch: the large blocks a batch works in, kept for the next batch. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_SCRATCH_H
#define SP_SCRATCH_H

#include <stddef.h>

/* A block of at least SIZE bytes, its contents undefined: of 256 KiB and more, a block given
 * back (sp_scratch_put) before when one is large enough. Aborts when out of memory. Blocks that
 * large are mapped for themselves by malloc (main.c's M_MMAP_THRESHOLD) and unmapped when freed:
 * a batch of 16,384 opens took some 5,000 new pages in such blocks (its tally's, its rollups'),
 * each faulted in, zeroed by the kernel and unmapped again. */
void *sp_scratch_get(size_t size);

/* The same, N blocks of SIZE bytes zeroed (calloc's). */
void *sp_scratch_zero(size_t n, size_t size);

/* Gives P (sp_scratch_get's, or NULL) back for reuse: a few blocks are kept, the largest. */
void sp_scratch_put(void *p);

/* Frees the blocks kept: once a backlog is indexed, as the ingest gives back the rest. */
void sp_scratch_release(void);

#endif
