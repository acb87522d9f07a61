/* utf8: checking and repairing UTF-8 in text that came from requests. */
/* SPDX-License-Identifier: MIT */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

size_t sp_utf8_char(const unsigned char *s, size_t len, size_t *bad)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (0xE0 == c)
            lo = 0xA0; /* overlong */
        else if (0xED == c)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (0xF0 == c)
            lo = 0x90; /* overlong */
        else if (0xF4 == c)
            hi = 0x8F; /* above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    for (size_t i = 1; i <= need; i++) {
        if (i >= len || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

bool sp_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, bad;
    for (size_t i = 0; i < len; i += n)
        if (0 == (n = sp_utf8_char(p + i, len - i, &bad)))
            return false;
    return true;
}

char *sp_utf8_clean(const char *s)
{
    size_t len = strlen(s);
    if (sp_utf8_valid(s, len))
        return NULL;
    char *out = malloc(len * 3 + 1), *o = out; /* a replacement per byte at worst */
    if (!out)
        abort();
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        size_t n, bad;
        if ((n = sp_utf8_char(p, (size_t)(end - p), &bad))) {
            memcpy(o, p, n);
            o += n;
            p += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3);
            o += 3;
            p += bad;
        }
    }
    *o = '\0';
    return out;
}
