/* auth: passwords, API tokens, sessions, the login limiter and self-view recognition. */
/* SPDX-License-Identifier: MIT */
#include "auth.h"

#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "store_ops.h"

int sp_auth_secret_key(sp_store_t *s, unsigned char key[SP_AUTH_KEY_BYTES], bool *made, char *err,
                       size_t errlen)
{
    char hex[2 * SP_AUTH_KEY_BYTES + 1];
    int rc = s->ops->meta_get(s, "secret_key", hex, sizeof(hex), err, errlen);
    if (rc < 0)
        return -1;
    if (made)
        *made = rc > 0;
    if (rc > 0) {
        unsigned char fresh[SP_AUTH_KEY_BYTES];
        char fresh_hex[sizeof(hex)];
        randombytes_buf(fresh, sizeof(fresh));
        sodium_bin2hex(fresh_hex, sizeof(fresh_hex), fresh, sizeof(fresh));
        sodium_memzero(fresh, sizeof(fresh));
        /* Kept when another server made one first: then that one is read back. */
        if (0 != s->ops->meta_put_new(s, "secret_key", fresh_hex, err, errlen) ||
            0 != s->ops->meta_get(s, "secret_key", hex, sizeof(hex), err, errlen))
            return -1;
    }
    if (0 != sodium_hex2bin(key, SP_AUTH_KEY_BYTES, hex, strlen(hex), NULL, NULL, NULL)) {
        snprintf(err, errlen, "the stored secret key is damaged");
        return -1;
    }
    return 0;
}

/* Small open-addressing tables: bounded memory whatever the traffic. When every slot a key
 * may take is in use, the one whose last failure is oldest gives way. */
#define LIMITER_SLOTS  16384
#define LIMITER_PROBES 8
#define SELF_IP_SLOTS  1024

/* The pool's threads run below the request threads (a weight of 110 against 1024): the
 * pixel's answers go first, and a login still gets a tenth of a busy core. */
#define CHECK_NICE        10
#define CHECK_THREADS_MAX 4

typedef struct {
    uint64_t key; /* keyed hash of the address, account or known browser; 0 = empty */
    int64_t last; /* time of the last failure */
    int failures;
} limiter_slot_t;

typedef struct {
    sp_net_addr_t addr;
    int64_t seen;
} self_ip_slot_t;

struct sp_auth {
    unsigned char cookie_key[crypto_auth_KEYBYTES];
    unsigned char device_key[crypto_auth_KEYBYTES];
    unsigned char hash_key[crypto_shorthash_KEYBYTES];
    unsigned char visitor_key[crypto_shorthash_siphashx24_KEYBYTES];
    uint64_t serial; /* this auth's own number in the process: see last_visitor */
    int self_ip_window_s;
    pthread_mutex_t lock;
    limiter_slot_t limiter[LIMITER_SLOTS];
    self_ip_slot_t self_ips[SELF_IP_SLOTS];

    /* The password-check pool. */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_wake;
    sp_auth_check_t *queue_head, *queue_tail;
    int pending; /* queued or running */
    int n_threads;
    bool started, stopping;
    pthread_t threads[CHECK_THREADS_MAX];
};

int64_t sp_auth_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static int64_t now_s(void)
{
    return sp_auth_now();
}

sp_auth_t *sp_auth_new(const unsigned char key[SP_AUTH_KEY_BYTES], int self_ip_window_min)
{
    sp_auth_t *a = calloc(1, sizeof(*a));
    if (!a)
        abort();
    crypto_kdf_derive_from_key(a->cookie_key, sizeof(a->cookie_key), 1, "spselfck", key);
    crypto_kdf_derive_from_key(a->hash_key, sizeof(a->hash_key), 2, "splimitr", key);
    crypto_kdf_derive_from_key(a->visitor_key, sizeof(a->visitor_key), 5, "spvisitr", key);
    static atomic_uint_fast64_t serials;
    a->serial = atomic_fetch_add(&serials, 1) + 1;
    crypto_kdf_derive_from_key(a->device_key, sizeof(a->device_key), 6, "spdevice", key);
    a->self_ip_window_s = self_ip_window_min * 60;
    pthread_mutex_init(&a->lock, NULL);
    pthread_mutex_init(&a->pool_lock, NULL);
    pthread_cond_init(&a->pool_wake, NULL);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    a->n_threads = cores >= 2 ? (int)(cores / 2) : 1;
    if (a->n_threads > CHECK_THREADS_MAX)
        a->n_threads = CHECK_THREADS_MAX;
    return a;
}

void sp_auth_free(sp_auth_t *a)
{
    if (!a)
        return;
    sp_auth_checks_stop(a);
    pthread_cond_destroy(&a->pool_wake);
    pthread_mutex_destroy(&a->pool_lock);
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

/* ---- the login limiter ------------------------------------------------------------ */

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

/* One client: an IPv4 address, or an IPv6 /64 (what one subscriber is usually given). */
static uint64_t address_key(sp_auth_t *a, const sp_net_addr_t *ip)
{
    uint8_t b[sizeof(ip->b)];
    memcpy(b, ip->b, sizeof(b));
    if (!ip->v4)
        memset(b + 8, 0, 8);
    return limiter_key(a, 'i', b, sizeof(b));
}

static bool stale(const limiter_slot_t *s, int64_t now)
{
    return 0 == s->key || now - s->last > SP_AUTH_FORGET_S;
}

/* KEY's slot, or NULL when it has none (CREATE makes one). */
static limiter_slot_t *limiter_slot(sp_auth_t *a, uint64_t key, bool create, int64_t now)
{
    limiter_slot_t *victim = NULL;
    for (int probe = 0; probe < LIMITER_PROBES; probe++) {
        limiter_slot_t *s = &a->limiter[(key + (uint64_t)probe) % LIMITER_SLOTS];
        if (s->key == key)
            return stale(s, now) ? (create ? (s->failures = 0, s) : NULL) : s;
        if (!victim || (!stale(victim, now) && (stale(s, now) || s->last < victim->last)))
            victim = s;
    }
    if (!create)
        return NULL;
    *victim = (limiter_slot_t){.key = key, .last = now, .failures = 0};
    return victim;
}

/* Seconds S must still wait at NOW with FREE free failures (0: none). */
static int64_t wait_for(const limiter_slot_t *s, int free_tries, int64_t now)
{
    if (!s || s->failures < free_tries)
        return 0;
    int over = s->failures - free_tries;
    int64_t backoff = over >= 10 ? SP_AUTH_BACKOFF_MAX_S : (int64_t)SP_AUTH_BACKOFF_FIRST_S << over;
    if (backoff > SP_AUTH_BACKOFF_MAX_S)
        backoff = SP_AUTH_BACKOFF_MAX_S;
    int64_t left = s->last + backoff - now;
    return left > 0 ? left : 0;
}

static void charge(limiter_slot_t *s, int64_t now)
{
    s->failures++;
    s->last = now;
}

bool sp_auth_login_begin(sp_auth_t *a, const sp_net_addr_t *ip, const char *user,
                         const char *device, int64_t now, sp_auth_attempt_t *att, int *retry_after)
{
    bool known = device && sp_auth_device_cookie_valid(a, user, device);
    uint64_t first = known ? limiter_key(a, 'd', device, strcspn(device, ".")) : address_key(a, ip);
    uint64_t account = limiter_key(a, 'u', user, strlen(user));
    int64_t wait;
    *att = (sp_auth_attempt_t){.n = 0};
    pthread_mutex_lock(&a->lock);
    limiter_slot_t *s = limiter_slot(a, first, false, now);
    if (known) {
        wait = wait_for(s, SP_AUTH_LOGIN_FREE, now);
    } else {
        int64_t w2 = wait_for(limiter_slot(a, account, false, now), SP_AUTH_ACCOUNT_FREE, now);
        wait = wait_for(s, SP_AUTH_LOGIN_FREE, now);
        if (w2 > wait)
            wait = w2;
    }
    if (!wait) {
        s = limiter_slot(a, first, true, now);
        /* An address counts against the account only within its own free tries. */
        bool count_account = !known && s->failures < SP_AUTH_LOGIN_FREE;
        charge(s, now);
        att->keys[att->n++] = first;
        if (count_account) {
            charge(limiter_slot(a, account, true, now), now);
            att->keys[att->n++] = account;
        }
    }
    pthread_mutex_unlock(&a->lock);
    if (wait)
        *retry_after = (int)wait;
    return 0 == wait;
}

void sp_auth_login_end(sp_auth_t *a, const sp_auth_attempt_t *att, bool failed, int64_t now)
{
    pthread_mutex_lock(&a->lock);
    for (int i = 0; i < att->n; i++) {
        limiter_slot_t *s = limiter_slot(a, att->keys[i], false, now);
        if (!s)
            continue;
        if (failed)
            s->last = now; /* the wait counts from the answer, not from the question */
        else if (s->failures > 0)
            s->failures--;
    }
    pthread_mutex_unlock(&a->lock);
}

/* "NONCE.MAC" in base64url over MAC(KEY, PREFIX || NONCE): PREFIX ("" or a user name and a
 * NUL) binds the cookie to what it vouches for. */
static void signed_cookie(const unsigned char *key, const char *prefix, size_t prefix_len,
                          char *out, size_t len)
{
    unsigned char nonce[16], mac[crypto_auth_BYTES], msg[16 + 160];
    char n64[32], m64[64];
    if (prefix_len > sizeof(msg) - sizeof(nonce))
        prefix_len = sizeof(msg) - sizeof(nonce);
    randombytes_buf(nonce, sizeof(nonce));
    memcpy(msg, prefix, prefix_len);
    memcpy(msg + prefix_len, nonce, sizeof(nonce));
    crypto_auth(mac, msg, prefix_len + sizeof(nonce), key);
    sodium_bin2base64(n64, sizeof(n64), nonce, sizeof(nonce),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_bin2base64(m64, sizeof(m64), mac, sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, len, "%s.%s", n64, m64);
}

static bool signed_cookie_valid(const unsigned char *key, const char *prefix, size_t prefix_len,
                                const char *value)
{
    const char *dot = value ? strchr(value, '.') : NULL;
    unsigned char msg[16 + 160], mac[crypto_auth_BYTES];
    size_t n_len = 0, m_len = 0;
    if (!dot || (size_t)(dot - value) > 32 || strlen(dot + 1) > 64 || prefix_len > sizeof(msg) - 16)
        return false;
    /* libsodium 1.0.18 decodes every byte >= 0x80 as '_'; only the alphabet may pass. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (strspn(value, alphabet) != (size_t)(dot - value) ||
        strspn(dot + 1, alphabet) != strlen(dot + 1))
        return false;
    memcpy(msg, prefix, prefix_len);
    if (0 != sodium_base642bin(msg + prefix_len, 16, value, (size_t)(dot - value), NULL, &n_len,
                               NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        16 != n_len)
        return false;
    if (0 != sodium_base642bin(mac, sizeof(mac), dot + 1, strlen(dot + 1), NULL, &m_len, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING) ||
        sizeof(mac) != m_len)
        return false;
    return 0 == crypto_auth_verify(mac, msg, prefix_len + 16, key);
}

void sp_auth_device_cookie(sp_auth_t *a, const char *user, char *out, size_t len)
{
    signed_cookie(a->device_key, user, strlen(user) + 1, out, len);
}

bool sp_auth_device_cookie_valid(sp_auth_t *a, const char *user, const char *value)
{
    size_t n = strlen(user) + 1;
    return n <= 160 && signed_cookie_valid(a->device_key, user, n, value);
}

/* ---- the password-check pool ------------------------------------------------------- */

static void *check_main(void *arg)
{
    sp_auth_t *a = arg;
    /* An argon2id hash of "" under the same limits: an unknown user costs what a known one
     * does, so timing does not tell which names exist. */
    static const char dummy[] = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$"
                                "pNuwjVJHRVL0IQ3fVfYbl+Gc8Ug2T2yCbF3I3IQ7CSE";
    setpriority(PRIO_PROCESS, (id_t)gettid(), CHECK_NICE);
    pthread_mutex_lock(&a->pool_lock);
    for (;;) {
        while (!a->queue_head && !a->stopping)
            pthread_cond_wait(&a->pool_wake, &a->pool_lock);
        sp_auth_check_t *c = a->queue_head;
        if (!c)
            break; /* stopping, and nothing left */
        a->queue_head = c->next;
        if (!a->queue_head)
            a->queue_tail = NULL;
        pthread_mutex_unlock(&a->pool_lock);
        bool known = '\0' != c->pwhash[0];
        bool ok = sp_auth_password_check(known ? c->pwhash : dummy, c->password);
        c->ok = known && ok;
        sodium_memzero(c->password, sizeof(c->password));
        pthread_mutex_lock(&a->pool_lock);
        a->pending--;
        pthread_mutex_unlock(&a->pool_lock);
        c->done(c->ctx); /* the last touch: C may be freed from here on */
        pthread_mutex_lock(&a->pool_lock);
    }
    pthread_mutex_unlock(&a->pool_lock);
    return NULL;
}

int sp_auth_check_submit(sp_auth_t *a, sp_auth_check_t *check)
{
    int rc = -1;
    pthread_mutex_lock(&a->pool_lock);
    if (!a->started && !a->stopping) {
        a->started = true;
        int n = 0;
        for (; n < a->n_threads; n++)
            if (0 != pthread_create(&a->threads[n], NULL, check_main, a))
                break;
        a->n_threads = n;
    }
    if (!a->stopping && a->n_threads > 0 && a->pending < a->n_threads * SP_AUTH_CHECKS_PER_THREAD) {
        check->next = NULL;
        if (a->queue_tail)
            a->queue_tail->next = check;
        else
            a->queue_head = check;
        a->queue_tail = check;
        a->pending++;
        pthread_cond_signal(&a->pool_wake);
        rc = 0;
    }
    pthread_mutex_unlock(&a->pool_lock);
    return rc;
}

void sp_auth_checks_stop(sp_auth_t *a)
{
    pthread_mutex_lock(&a->pool_lock);
    bool join = a->started && !a->stopping;
    a->stopping = true;
    pthread_cond_broadcast(&a->pool_wake);
    pthread_mutex_unlock(&a->pool_lock);
    for (int i = 0; join && i < a->n_threads; i++)
        pthread_join(a->threads[i], NULL);
}

/* The self-view cookie says nothing, only that this server issued it. */
void sp_auth_self_cookie(sp_auth_t *a, char *out, size_t len)
{
    signed_cookie(a->cookie_key, "", 0, out, len);
}

bool sp_auth_self_cookie_valid(sp_auth_t *a, const char *value)
{
    return signed_cookie_valid(a->cookie_key, "", 0, value);
}

/* The input and ID of the last visitor ID this thread derived, and the auth (its serial: an
 * address can be another auth's after a free) whose key made it. A mail provider's image
 * proxy sends its opens from a few addresses with one agent, and a keep-alive connection all
 * of its own with one, so the next open mostly asks for the same ID again: the comparison
 * costs a tenth of the SipHash and hex (0.6-0.9% of the request thread under keep-alive load). */
static _Thread_local struct {
    uint64_t serial; /* 0: none yet */
    size_t ni, nu;
    unsigned char in[SP_NET_ADDR_MAX + 1 + 4096]; /* address, NUL, agent: SipHash's input */
    char id[2 * crypto_shorthash_siphashx24_BYTES + 1];
} last_visitor;

void sp_auth_visitor_id(sp_auth_t *a, const char *ip, const char *user_agent, char *out, size_t len)
{
    /* SipHash with a 128-bit output: a keyed pseudorandom function, which is all an ID
     * that must not be guessable from the address needs, at a fraction of BLAKE2b's cost
     * on inputs this short (it runs for every open without a cookie). */
    size_t ni = strnlen(ip, SP_NET_ADDR_MAX), nu = user_agent ? strnlen(user_agent, 4096) : 0;
    unsigned char *in = last_visitor.in;
    if (last_visitor.serial != a->serial || last_visitor.ni != ni || last_visitor.nu != nu ||
        0 != memcmp(in, ip, ni) || (nu && 0 != memcmp(in + ni + 1, user_agent, nu))) {
        unsigned char h[crypto_shorthash_siphashx24_BYTES];
        memcpy(in, ip, ni);
        in[ni] = '\0';
        if (nu)
            memcpy(in + ni + 1, user_agent, nu);
        crypto_shorthash_siphashx24(h, in, ni + 1 + nu, a->visitor_key);
        sodium_bin2hex(last_visitor.id, sizeof(last_visitor.id), h, sizeof(h));
        last_visitor.serial = a->serial;
        last_visitor.ni = ni;
        last_visitor.nu = nu;
    }
    if (len >= sizeof(last_visitor.id))
        memcpy(out, last_visitor.id, sizeof(last_visitor.id));
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
