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

/* spypixel's one repair of request text: NULL when the LEN bytes at S are well-formed already,
 * else a malloc'd, NUL-terminated copy with each maximal ill-formed subpart replaced by one
 * U+FFFD (Unicode 15, section 3.9, "U+FFFD Substitution of Maximal Subparts"; the WHATWG
 * Encoding Standard's UTF-8 decoder does the same), its length in *OUT_LEN (may be NULL). The
 * caller frees it. */
char *sp_utf8_clean_n(const char *s, size_t len, size_t *out_len);

/* The same for the NUL-terminated S. */
char *sp_utf8_clean(const char *s);

#endif
