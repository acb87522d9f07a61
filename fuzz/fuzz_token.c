/* fuzz_token: opaque tokens (/o/TOKEN.gif, /c/TOKEN, /i/TOKEN.ext) as token.c opens them. */
/* SPDX-License-Identifier: MIT */
#include "../src/server/token.c"

#include "fuzz.h"

/*
 * The first byte picks what the rest is:
 *  - even: token text from a URL, opened as the pixel and the link do (a forged or damaged
 *    one must be refused; the seeds are real tokens sealed with the key below, so mutations
 *    start from tokens that open);
 *  - odd: the plaintext inside a token, sealed here with the same key and nonce rule as
 *    sp_token_seal, so that the unpacking after decryption is reached with any bytes.
 * A token that opens must hold what the pixel expects, and sealing what it held must give a
 * token that opens to the same.
 */

static const unsigned char key[SP_AUTH_KEY_BYTES] = "spypixel fuzz key, not a secret";

static void check_opened(const sp_token_t *t, const sp_token_data_t *d)
{
    FUZZ_CHECK(fuzz_terminated(d->campaign, sizeof(d->campaign)));
    FUZZ_CHECK(fuzz_terminated(d->recipient, sizeof(d->recipient)));
    FUZZ_CHECK(fuzz_terminated(d->extra, sizeof(d->extra)));
    /* What sp_pixel_opaque, sp_pixel_click and sp_pixel_image check next. */
    (void)(sp_event_id_valid(d->campaign) && (!d->recipient[0] || sp_event_id_valid(d->recipient)));

    char text[SP_TOKEN_MAX];
    FUZZ_CHECK(0 == sp_token_seal(t, d, text, sizeof(text)));
    sp_token_data_t again;
    FUZZ_CHECK(0 == sp_token_open(t, text, strlen(text), &again));
    FUZZ_CHECK(again.kind == d->kind);
    FUZZ_CHECK(0 == strcmp(again.campaign, d->campaign));
    FUZZ_CHECK(0 == strcmp(again.recipient, d->recipient));
    FUZZ_CHECK(0 == strcmp(again.extra, d->extra));
}

/* Seals PLAIN as it is into token text (TEXT holds SP_TOKEN_MAX bytes): 0, or -1 when too
 * long for a token. */
static int seal_raw(const sp_token_t *t, const unsigned char *plain, size_t n, char *text)
{
    unsigned char sealed[NONCE_BYTES + PLAIN_MAX + TAG_BYTES];
    if (n > PLAIN_MAX)
        return -1;
    crypto_generichash(sealed, NONCE_BYTES, plain, n, t->nonce_key, sizeof(t->nonce_key));
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCE_BYTES, &clen, plain, n, NULL, 0, NULL,
                                               sealed, t->enc_key);
    size_t total = NONCE_BYTES + (size_t)clen;
    if (sodium_base64_ENCODED_LEN(total, sodium_base64_VARIANT_URLSAFE_NO_PADDING) > SP_TOKEN_MAX)
        return -1;
    sodium_bin2base64(text, SP_TOKEN_MAX, sealed, total, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sp_token_t *t;
    if (!t) {
        if (sodium_init() < 0)
            abort();
        t = sp_token_new(key);
    }
    if (0 == size)
        return 0;
    sp_token_data_t d;
    if (0 == data[0] % 2) {
        /* As a URL path carries it: the part before ".gif" or an image's extension. */
        const char *text = (const char *)data + 1;
        size_t n = size - 1;
        if (0 == sp_token_open(t, text, n, &d))
            check_opened(t, &d);
        return 0;
    }
    char text[SP_TOKEN_MAX];
    if (0 == seal_raw(t, data + 1, size - 1, text) && 0 == sp_token_open(t, text, strlen(text), &d))
        check_opened(t, &d);
    return 0;
}
