/* utf8: checking and repairing UTF-8 in text that came from requests. */
/* SPDX-License-Identifier: MIT */
#include "utf8.h"

#include <stdint.h>
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
    size_t n, bad, i = 0;
    /* Request text is nearly all ASCII: eight bytes at a time while no byte has its top bit. */
    for (uint64_t w; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080u)
            break;
    }
    for (; i < len; i += n) {
        if (p[i] < 0x80) { /* the tail of plain text, without a call a byte */
            n = 1;
            continue;
        }
        if (0 == (n = sp_utf8_char(p + i, len - i, &bad)))
            return false;
    }
    return true;
}

char *sp_utf8_clean(const char *s)
{
    return sp_utf8_clean_n(s, strlen(s), NULL);
}

char *sp_utf8_clean_n(const char *s, size_t len, size_t *out_len)
{
    static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
    if (sp_utf8_valid(s, len))
        return NULL;
    /* A replacement per byte at worst. */
    char *out = malloc(len * (sizeof(replacement) - 1) + 1), *o = out;
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
            memcpy(o, replacement, sizeof(replacement) - 1);
            o += sizeof(replacement) - 1;
            p += bad;
        }
    }
    *o = '\0';
    if (out_len)
        *out_len = (size_t)(o - out);
    return out;
}
