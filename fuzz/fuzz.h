/* fuzz: what the fuzz targets share: libFuzzer's entry point and small checks. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_FUZZ_H
#define SP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Called once per input, by libFuzzer (make fuzz) or by fuzz/replay.c (make test). DATA is
 * SIZE bytes, not NUL-terminated; returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property a target checks on what the code under test gave back: when it does not hold,
 * the run stops like a crash, so the input is kept. */
#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, #cond);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* DATA as a malloc'd NUL-terminated string (a NUL inside ends it early, as in a C string
 * from a request). The caller frees. */
static inline char *fuzz_text(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    if (size)
        memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* True when the SIZE-byte buffer S holds a NUL: a fixed-size field was terminated. */
static inline int fuzz_terminated(const char *s, size_t size)
{
    return NULL != memchr(s, '\0', size);
}

#endif
