/* utf8: checking and repairing UTF-8 in text that came from requests. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_UTF8_H
#define SP_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the well-formed character at S (at most LEN bytes are looked at; Unicode
 * table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF), or 0 when there is
 * none and *BAD gets the length of the ill-formed subpart that one U+FFFD replaces. */
size_t sp_utf8_char(const unsigned char *s, size_t len, size_t *bad);

/* True when the LEN bytes at S are well-formed UTF-8. */
bool sp_utf8_valid(const char *s, size_t len);

/* NULL when S is well-formed already, else a malloc'd copy with each ill-formed subpart
 * replaced by U+FFFD; the caller frees it. */
char *sp_utf8_clean(const char *s);

#endif
