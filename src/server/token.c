/* token: opaque, signed tracking URLs (/o/TOKEN.gif, /c/TOKEN, /i/TOKEN) with libsodium. */
/* SPDX-License-Identifier: MIT */
#include "token.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES   crypto_aead_xchacha20poly1305_ietf_ABYTES
#define PLAIN_MAX   (1 + 2 * (SP_ID_MAX + 1) + 2048)

struct sp_token {
    unsigned char enc_key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
    unsigned char nonce_key[crypto_generichash_KEYBYTES];
};

sp_token_t *sp_token_new(const unsigned char key[SP_AUTH_KEY_BYTES])
{
    sp_token_t *t = calloc(1, sizeof(*t));
    if (!t)
        abort();
    crypto_kdf_derive_from_key(t->enc_key, sizeof(t->enc_key), 3, "sptokenk", key);
    crypto_kdf_derive_from_key(t->nonce_key, sizeof(t->nonce_key), 4, "sptokenn", key);
    return t;
}

void sp_token_free(sp_token_t *t)
{
    if (t)
        sodium_memzero(t, sizeof(*t));
    free(t);
}

/* Layout: kind, campaign NUL recipient NUL extra (no NUL at the end). */
static size_t pack(const sp_token_data_t *d, unsigned char *out)
{
    size_t c = strlen(d->campaign), r = strlen(d->recipient), e = strlen(d->extra);
    out[0] = (unsigned char)d->kind;
    memcpy(out + 1, d->campaign, c + 1);
    memcpy(out + 2 + c, d->recipient, r + 1);
    memcpy(out + 3 + c + r, d->extra, e);
    return 3 + c + r + e;
}

int sp_token_seal(const sp_token_t *t, const sp_token_data_t *data, char *out, size_t len)
{
    unsigned char plain[PLAIN_MAX], sealed[NONCE_BYTES + PLAIN_MAX + TAG_BYTES];
    if (strlen(data->campaign) > SP_ID_MAX || strlen(data->recipient) > SP_ID_MAX ||
        strlen(data->extra) >= sizeof(data->extra))
        return -1;
    size_t n = pack(data, plain);
    /* A keyed hash of the content as nonce: deterministic (one URL per recipient) and
     * never reused for two different contents. */
    crypto_generichash(sealed, NONCE_BYTES, plain, n, t->nonce_key, sizeof(t->nonce_key));
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCE_BYTES, &clen, plain, n, NULL, 0, NULL,
                                               sealed, t->enc_key);
    size_t total = NONCE_BYTES + (size_t)clen;
    if (len < sodium_base64_ENCODED_LEN(total, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return -1;
    sodium_bin2base64(out, len, sealed, total, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return 0;
}

/* libsodium 1.0.18 decodes every byte >= 0x80 as '_': without this check one token would
 * open under many spellings. */
static bool base64url_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              '-' == c || '_' == c))
            return false;
    }
    return true;
}

int sp_token_open(const sp_token_t *t, const char *text, size_t text_len, sp_token_data_t *out)
{
    unsigned char sealed[NONCE_BYTES + PLAIN_MAX + TAG_BYTES], plain[PLAIN_MAX];
    size_t n = 0;
    if (text_len >= SP_TOKEN_MAX || !base64url_only(text, text_len) ||
        0 != sodium_base642bin(sealed, sizeof(sealed), text, text_len, NULL, &n, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        n < NONCE_BYTES + TAG_BYTES + 3)
        return -1;
    unsigned long long plen = 0;
    if (0 != crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, sealed + NONCE_BYTES,
                                                        n - NONCE_BYTES, NULL, 0, sealed,
                                                        t->enc_key))
        return -1;
    memset(out, 0, sizeof(*out));
    out->kind = (sp_token_kind_t)plain[0];
    const char *p = (const char *)plain + 1, *end = (const char *)plain + plen;
    const char *c_end = memchr(p, '\0', (size_t)(end - p));
    if (!c_end)
        return -1;
    const char *r = c_end + 1, *r_end = memchr(r, '\0', (size_t)(end - r));
    if (!r_end || (size_t)(c_end - p) > SP_ID_MAX || (size_t)(r_end - r) > SP_ID_MAX ||
        (size_t)(end - r_end - 1) >= sizeof(out->extra))
        return -1;
    memcpy(out->campaign, p, (size_t)(c_end - p));
    memcpy(out->recipient, r, (size_t)(r_end - r));
    memcpy(out->extra, r_end + 1, (size_t)(end - r_end - 1));
    return 0;
}
