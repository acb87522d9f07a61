/* merge: the entries of an array that hold one key made one, by a hash of the key. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_MERGE_H
#define SP_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* FNV-1a: where a hash starts, and a string's or a number's bytes added to hash H. */
#define SP_HASH_SEED 14695981039346656037ULL
uint64_t sp_hash_str(uint64_t h, const char *s);
/* The same, and S's length into *LEN: one pass over a cold text for both. */
uint64_t sp_hash_str_len(uint64_t h, const char *s, size_t *len);
uint64_t sp_hash_int(uint64_t h, int64_t v);
/* A hash of the LEN bytes at S, FNV-1a's constants a word at a time and each word's bits mixed
 * down: for long texts (a user agent, a header set), which FNV-1a hashes at a multiply's
 * latency a byte. */
uint64_t sp_hash_words(const char *s, size_t len);

/* S's first 8 bytes as a big-endian number, 0s past its end: two texts whose heads differ
 * compare as their heads do (strcmp's order: unsigned bytes, a prefix first). */
static inline uint64_t sp_text_head(const char *s)
{
    uint64_t h = 0;
    for (int i = 0; i < 8 && s[i]; i++)
        h |= (uint64_t)(unsigned char)s[i] << (56 - 8 * i);
    return h;
}

/* Texts A and B, HA and HB their heads (sp_text_head), in strcmp's order: their bytes are read
 * only when the heads are equal and hold no end (a batch's texts are cold, their heads not). */
static inline int sp_text_cmp(const char *a, uint64_t ha, const char *b, uint64_t hb)
{
    if (ha != hb)
        return ha < hb ? -1 : 1;
    return a == b || !(ha & 0xff) ? 0 : strcmp(a + 8, b + 8);
}

/* Merges the N entries of SIZE bytes at BASE that SAME says are one key (HASH equal) into the
 * first of each: ADD(into, from) adds FROM to INTO, after which FROM is dropped (ADD releases
 * what FROM owns). The entries kept are moved to the front in first-seen order; returns how
 * many. Linear in N, where sorting to find the repeats is N log N comparisons. */
size_t sp_merge(void *base, size_t n, size_t size, uint64_t (*hash)(const void *),
                bool (*same)(const void *, const void *), void (*add)(void *into, void *from));

/* The N TEXTS numbered by their value: INDEX[i] is the place of TEXTS[i] among the distinct
 * ones in first-seen order, and DISTINCT (room for N) gets the first pointer seen of each.
 * Returns how many are distinct; DISTINCT may be TEXTS itself. Each text is read once, for its
 * hash (and where hashes meet, compared): a batch's texts, cold, are then compared as numbers
 * or pointers. */
size_t sp_distinct_texts(const char *const *texts, size_t n, uint32_t *index,
                         const char **distinct);

#endif
