/* merge: the entries of an array that hold one key made one, by a hash of the key. */
/* SPDX-License-Identifier: MIT */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

#include "scratch.h"

uint64_t sp_hash_str_len(uint64_t h, const char *s, size_t *len)
{
    const char *p = s;
    for (; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    *len = (size_t)(p - s);
    return h;
}

uint64_t sp_hash_str(uint64_t h, const char *s)
{
    size_t len;
    return sp_hash_str_len(h, s, &len);
}

uint64_t sp_hash_int(uint64_t h, int64_t v)
{
    return (h ^ (uint64_t)v) * 1099511628211ULL;
}

uint64_t sp_hash_words(const char *s, size_t len)
{
    uint64_t h = SP_HASH_SEED ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 1099511628211ULL;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 32);
}

size_t sp_distinct_texts(const char *const *texts, size_t n, uint32_t *index, const char **distinct)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *slots =
        sp_scratch_zero(cap, sizeof(*slots)); /* a distinct text's place + 1; 0: free */
    uint32_t n_distinct = 0;
    for (size_t i = 0; i < n; i++) {
        size_t at = (size_t)sp_hash_str(SP_HASH_SEED, texts[i]) & (cap - 1);
        while (slots[at] && 0 != strcmp(distinct[slots[at] - 1], texts[i]))
            at = (at + 1) & (cap - 1);
        if (!slots[at]) {
            distinct[n_distinct] = texts[i];
            slots[at] = ++n_distinct;
        }
        index[i] = slots[at] - 1;
    }
    sp_scratch_put(slots);
    return n_distinct;
}

size_t sp_merge(void *base, size_t n, size_t size, uint64_t (*hash)(const void *),
                bool (*same)(const void *, const void *), void (*add)(void *into, void *from))
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    /* An entry's index + 1; 0: free. 32 bits: half the table to zero and to miss in. */
    uint32_t *slots = sp_scratch_zero(cap, sizeof(*slots));
    if (n >= UINT32_MAX)
        abort();
    char *e = base;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        void *it = e + i * size;
        size_t at = (size_t)hash(it) & (cap - 1);
        while (slots[at] && !same(e + (slots[at] - 1) * size, it))
            at = (at + 1) & (cap - 1);
        if (slots[at]) {
            add(e + (slots[at] - 1) * size, it);
            continue;
        }
        if (k != i)
            memcpy(e + k * size, it, size);
        slots[at] = (uint32_t)++k;
    }
    sp_scratch_put(slots);
    return k;
}
