/* token: opaque, signed tracking URLs (/o/TOKEN.gif, /c/TOKEN, /i/TOKEN) with libsodium. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_TOKEN_H
#define SP_TOKEN_H

#include <stddef.h>

#include "auth.h"
#include "event.h"

#define SP_TOKEN_MAX 4096 /* longest token text, NUL included */

typedef enum sp_token_kind {
    SP_TOKEN_OPEN = 'o',  /* a pixel */
    SP_TOKEN_CLICK = 'c', /* a tracked link: carries its target */
    SP_TOKEN_IMAGE = 'i', /* an uploaded image: carries the image's ID */
    /* The tracking block's parts (sp_snippet_block_html), each its own URL: */
    SP_TOKEN_READ = 'r',    /* its image, an open held to measure its read time */
    SP_TOKEN_PRINT = 'p',   /* the background its print style loads */
    SP_TOKEN_FORWARD = 'f', /* the background its forward style loads */
} sp_token_kind_t;

typedef struct sp_token_data {
    sp_token_kind_t kind;
    char campaign[SP_ID_MAX + 1];
    char recipient[SP_ID_MAX + 1];
    char extra[2048]; /* a click's target URL, an image's ID */
} sp_token_data_t;

typedef struct sp_token sp_token_t;

sp_token_t *sp_token_new(const unsigned char key[SP_AUTH_KEY_BYTES]);
void sp_token_free(sp_token_t *t);

/* Seals DATA into base64url text: encrypted (no readable address) and authenticated (no
 * forging). The same DATA gives the same token. 0, or -1 when it does not fit. */
int sp_token_seal(const sp_token_t *t, const sp_token_data_t *data, char *out, size_t len);

/* Opens TEXT; 0, or -1 for a forged, damaged or foreign token. */
int sp_token_open(const sp_token_t *t, const char *text, size_t text_len, sp_token_data_t *out);

#endif
