/* text: literal prefixes, compared without counting their bytes by hand. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_TEXT_H
#define SP_TEXT_H

#include <string.h>
#include <strings.h>

/* The length of a string literal LIT, NUL excluded (a compile-time constant). */
#define SP_LIT_LEN(lit) (sizeof("" lit) - 1)

/* Whether S begins with the string literal LIT (exactly, or ignoring ASCII case). */
#define sp_has_prefix(s, lit)    (0 == strncmp((s), "" lit, SP_LIT_LEN(lit)))
#define sp_has_prefix_ci(s, lit) (0 == strncasecmp((s), "" lit, SP_LIT_LEN(lit)))

#endif
