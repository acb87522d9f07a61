/* auth: passwords, API tokens, sessions, the login limiter and self-view recognition. */
/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Small open-addressing tables: bounded memory whatever the traffic. An old entry is
 * simply overwritten when its slot is wanted. */
#define LIMITER_SLOTS 4096
#define SELF_IP_SLOTS 1024

typedef struct {
    uint64_t key; /* hash of the address or user; 0 = empty */
    int64_t window_start;
    int failures;
} limiter_slot_t;

typedef struct {
    sp_net_addr_t addr;
    int64_t seen;
} self_ip_slot_t;

struct sp_auth {
    unsigned char cookie_key[crypto_auth_KEYBYTES];
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    unsigned char visitor_key[crypto_shorthash_siphashx24_KEYBYTES];
    int self_ip_window_s;
    pthread_mutex_t lock;
    limiter_slot_t limiter[LIMITER_SLOTS];
    self_ip_slot_t self_ips[SELF_IP_SLOTS];
};

static int64_t now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

sp_auth_t *sp_auth_new(const unsigned char key[SP_AUTH_KEY_BYTES], int self_ip_window_min)
{
    sp_auth_t *a = calloc(1, sizeof(*a));
    if (!a)
        abort();
    crypto_kdf_derive_from_key(a->cookie_key, sizeof(a->cookie_key), 1, "spselfck", key);
    crypto_kdf_derive_from_key(a->hash_key, sizeof(a->hash_key), 2, "splimitr", key);
    crypto_kdf_derive_from_key(a->visitor_key, sizeof(a->visitor_key), 5, "spvisitr", key);
    a->self_ip_window_s = self_ip_window_min * 60;
    pthread_mutex_init(&a->lock, NULL);
    return a;
}

void sp_auth_free(sp_auth_t *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    sodium_memzero(a, sizeof(*a));
    free(a);
}

int sp_auth_password_hash(const char *password, char *out, size_t len)
{
    if (len < crypto_pwhash_STRBYTES)
        return -1;
    return crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

bool sp_auth_password_check(const char *hash, const char *password)
{
    return 0 == crypto_pwhash_str_verify(hash, password, strlen(password));
}

void sp_auth_new_secret(const char *prefix, char *out, size_t len)
{
    unsigned char raw[32];
    char b64[64];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2base64(b64, sizeof(b64), raw, sizeof(raw), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, len, "%s%s", prefix, b64);
}

void sp_auth_secret_hash(const char *secret, char *out, size_t len)
{
    unsigned char h[32];
    crypto_generichash(h, sizeof(h), (const unsigned char *)secret, strlen(secret), NULL, 0);
    if (len >= 2 * sizeof(h) + 1)
        sodium_bin2hex(out, len, h, sizeof(h));
    else if (len)
        out[0] = '\0';
}

static uint64_t limiter_key(sp_auth_t *a, char tag, const void *data, size_t n)
{
    unsigned char buf[160];
    uint64_t k;
    buf[0] = (unsigned char)tag;
    if (n > sizeof(buf) - 1)
        n = sizeof(buf) - 1;
    memcpy(buf + 1, data, n);
    crypto_shorthash((unsigned char *)&k, buf, n + 1, a->hash_key);
    return k ? k : 1;
}

static limiter_slot_t *limiter_slot(sp_auth_t *a, uint64_t key, bool create)
{
    int64_t now = now_s();
    for (int probe = 0; probe < 8; probe++) {
        limiter_slot_t *s = &a->limiter[(key + (uint64_t)probe) % LIMITER_SLOTS];
        bool stale = now - s->window_start > SP_AUTH_LOGIN_WINDOW_S;
        if (s->key == key && !stale)
            return s;
        if (create && (0 == s->key || stale)) {
            s->key = key;
            s->window_start = now;
            s->failures = 0;
            return s;
        }
    }
    if (!create)
        return NULL;
    limiter_slot_t *s = &a->limiter[key % LIMITER_SLOTS];
    s->key = key;
    s->window_start = now;
    s->failures = 0;
    return s;
}

bool sp_auth_login_allowed(sp_auth_t *a, const sp_net_addr_t *ip, const char *user,
                           bool known_browser, int *retry_after)
{
    uint64_t keys[2] = {limiter_key(a, 'i', ip->b, sizeof(ip->b)),
                        limiter_key(a, 'u', user, strlen(user))};
    bool allowed = true;
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < (known_browser ? 1 : 2); i++) {
        limiter_slot_t *s = limiter_slot(a, keys[i], false);
        if (s && s->failures >= SP_AUTH_LOGIN_TRIES) {
            allowed = false;
            *retry_after = (int)(SP_AUTH_LOGIN_WINDOW_S - (now_s() - s->window_start)) + 1;
        }
    }
    pthread_mutex_unlock(&a->lock);
    return allowed;
}

void sp_auth_login_failed(sp_auth_t *a, const sp_net_addr_t *ip, const char *user)
{
    uint64_t keys[2] = {limiter_key(a, 'i', ip->b, sizeof(ip->b)),
                        limiter_key(a, 'u', user, strlen(user))};
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < 2; i++)
        limiter_slot(a, keys[i], true)->failures++;
    pthread_mutex_unlock(&a->lock);
}

void sp_auth_login_succeeded(sp_auth_t *a, const sp_net_addr_t *ip, const char *user)
{
    uint64_t key = limiter_key(a, 'i', ip->b, sizeof(ip->b));
    pthread_mutex_lock(&a->lock);
    limiter_slot_t *s = limiter_slot(a, key, false);
    if (s)
        s->failures = 0;
    (void)user; /* the user's own count stays: a guesser may share the address */
    pthread_mutex_unlock(&a->lock);
}

/* "NONCE.MAC" in base64url: the cookie says nothing, only that this server issued it. */
void sp_auth_self_cookie(sp_auth_t *a, char *out, size_t len)
{
    unsigned char nonce[16], mac[crypto_auth_BYTES];
    char n64[32], m64[64];
    randombytes_buf(nonce, sizeof(nonce));
    crypto_auth(mac, nonce, sizeof(nonce), a->cookie_key);
    sodium_bin2base64(n64, sizeof(n64), nonce, sizeof(nonce),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2base64(m64, sizeof(m64), mac, sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, len, "%s.%s", n64, m64);
}

bool sp_auth_self_cookie_valid(sp_auth_t *a, const char *value)
{
    const char *dot = value ? strchr(value, '.') : NULL;
    unsigned char nonce[16], mac[crypto_auth_BYTES];
    size_t n_len = 0, m_len = 0;
    if (!dot || (size_t)(dot - value) > 32 || strlen(dot + 1) > 64)
        return false;
    /* libsodium 1.0.18 decodes every byte >= 0x80 as '_'; only the alphabet may pass. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (strspn(value, alphabet) != (size_t)(dot - value) ||
        strspn(dot + 1, alphabet) != strlen(dot + 1))
        return false;
    if (0 != sodium_base642bin(nonce, sizeof(nonce), value, (size_t)(dot - value), NULL, &n_len,
                               NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        sizeof(nonce) != n_len)
        return false;
    if (0 != sodium_base642bin(mac, sizeof(mac), dot + 1, strlen(dot + 1), NULL, &m_len, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        sizeof(mac) != m_len)
        return false;
    return 0 == crypto_auth_verify(mac, nonce, sizeof(nonce), a->cookie_key);
}

void sp_auth_visitor_id(sp_auth_t *a, const char *ip, const char *user_agent, char *out, size_t len)
{
    /* SipHash with a 128-bit output: a keyed pseudorandom function, which is all an ID
     * that must not be guessable from the address needs, at a fraction of BLAKE2b's cost
     * on inputs this short (it runs for every open without a cookie). */
    unsigned char h[crypto_shorthash_siphashx24_BYTES];
    unsigned char in[SP_NET_ADDR_MAX + 1 + 4096];
    size_t ni = strnlen(ip, SP_NET_ADDR_MAX), nu = user_agent ? strnlen(user_agent, 4096) : 0;
    memcpy(in, ip, ni);
    in[ni] = '\0';
    if (nu)
        memcpy(in + ni + 1, user_agent, nu);
    crypto_shorthash_siphashx24(h, in, ni + 1 + nu, a->visitor_key);
    if (len >= 2 * sizeof(h) + 1)
        sodium_bin2hex(out, len, h, sizeof(h));
    else if (len)
        out[0] = '\0';
}

static size_t self_ip_index(sp_auth_t *a, const sp_net_addr_t *ip)
{
    uint64_t k;
    crypto_shorthash((unsigned char *)&k, ip->b, sizeof(ip->b), a->hash_key);
    return (size_t)(k % SELF_IP_SLOTS);
}

void sp_auth_note_dashboard_ip(sp_auth_t *a, const sp_net_addr_t *ip)
{
    if (!a->self_ip_window_s)
        return;
    pthread_mutex_lock(&a->lock);
    self_ip_slot_t *s = &a->self_ips[self_ip_index(a, ip)];
    s->addr = *ip;
    s->seen = now_s();
    pthread_mutex_unlock(&a->lock);
}

bool sp_auth_recent_dashboard_ip(sp_auth_t *a, const sp_net_addr_t *ip)
{
    if (!a->self_ip_window_s)
        return false;
    pthread_mutex_lock(&a->lock);
    self_ip_slot_t *s = &a->self_ips[self_ip_index(a, ip)];
    bool recent = s->seen && 0 == memcmp(s->addr.b, ip->b, sizeof(ip->b)) &&
                  now_s() - s->seen <= a->self_ip_window_s;
    pthread_mutex_unlock(&a->lock);
    return recent;
}
