/* test_auth: passwords, secrets, the login limiter, the known-browser and self-view cookies,
 * the password-check pool and dashboard IPs. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"

static unsigned char key[SP_AUTH_KEY_BYTES], other_key[SP_AUTH_KEY_BYTES];

static const char base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int group_setup(void **state)
{
    if (sodium_init() < 0)
        return -1;
    for (int i = 0; i < SP_AUTH_KEY_BYTES; i++)
        key[i] = other_key[i] = (unsigned char)(0xa0 + i);
    other_key[0] ^= 0x80;
    return 0;
}

static sp_net_addr_t ip(const char *text)
{
    sp_net_addr_t a;
    if (0 != sp_net_parse(text, &a))
        fail_msg("bad address '%s'", text);
    return a;
}

/* The limiter's clock in these tests: any start, moved by hand. */
#define T0 1000000

/* One login attempt for USER from ADDR at NOW carrying DEVICE (may be NULL): -1 when it must
 * wait (*RETRY set), else FAILED ends it as a wrong password (0) or a right one (1). */
static int try_login(sp_auth_t *a, const char *addr, const char *user, const char *device,
                     int64_t now, bool failed, int *retry)
{
    sp_net_addr_t x = ip(addr);
    sp_auth_attempt_t att;
    int ignored;
    if (!sp_auth_login_begin(a, &x, user, device, now, &att, retry ? retry : &ignored))
        return -1;
    sp_auth_login_end(a, &att, failed, now);
    return failed ? 0 : 1;
}

static int fail_at(sp_auth_t *a, const char *addr, const char *user, int64_t now)
{
    return try_login(a, addr, user, NULL, now, true, NULL);
}

static void test_password(void **state)
{
    char hash[crypto_pwhash_STRBYTES], again[crypto_pwhash_STRBYTES];
    assert_int_equal(0, sp_auth_password_hash("correct horse battery staple", hash, sizeof(hash)));
    assert_memory_equal("$argon2id$", hash, 10);
    assert_null(strstr(hash, "correct"));
    assert_true(sp_auth_password_check(hash, "correct horse battery staple"));
    assert_false(sp_auth_password_check(hash, "correct horse battery stapl"));
    assert_false(sp_auth_password_check(hash, "correct horse battery staple "));
    assert_false(sp_auth_password_check(hash, "Correct horse battery staple"));
    assert_false(sp_auth_password_check(hash, ""));

    /* Salted: the same password hashes differently, and both verify. */
    assert_int_equal(0,
                     sp_auth_password_hash("correct horse battery staple", again, sizeof(again)));
    assert_string_not_equal(hash, again);
    assert_true(sp_auth_password_check(again, "correct horse battery staple"));

    /* A damaged hash verifies nothing. */
    char damaged[crypto_pwhash_STRBYTES];
    memcpy(damaged, hash, sizeof(damaged));
    damaged[strlen(damaged) - 1] ^= 1;
    assert_false(sp_auth_password_check(damaged, "correct horse battery staple"));
    assert_false(sp_auth_password_check("", "x"));
    assert_false(sp_auth_password_check("not a hash", "not a hash"));
    assert_false(sp_auth_password_check("$argon2id$", ""));

    /* A buffer too small for any hash is refused before any work. */
    char small[16];
    memset(small, 'Z', sizeof(small));
    assert_int_equal(-1, sp_auth_password_hash("pw", small, sizeof(small)));
    assert_int_equal(-1, sp_auth_password_hash("pw", small, crypto_pwhash_STRBYTES - 1));
}

static void test_new_secret(void **state)
{
    char a[SP_AUTH_SECRET_MAX], b[SP_AUTH_SECRET_MAX];
    sp_auth_new_secret("spt_", a, sizeof(a));
    sp_auth_new_secret("spt_", b, sizeof(b));
    assert_int_equal(4 + 43, strlen(a));
    assert_memory_equal("spt_", a, 4);
    assert_int_equal(43, strspn(a + 4, base64url));
    assert_string_not_equal(a, b);

    /* Many at once: no repeats and every character used somewhere (they are random). */
    enum { N = 200 };
    static char many[N][SP_AUTH_SECRET_MAX];
    bool seen[256] = {false};
    for (int i = 0; i < N; i++) {
        sp_auth_new_secret("", many[i], sizeof(many[i]));
        assert_int_equal(43, strlen(many[i]));
        assert_int_equal(43, strspn(many[i], base64url));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(many[i], many[j]);
        for (const char *p = many[i]; *p; p++)
            seen[(unsigned char)*p] = true;
    }
    for (const char *p = base64url; *p; p++)
        if (!seen[(unsigned char)*p])
            fail_msg("'%c' never appears in %d secrets", *p, N);

    /* Longest prefix that fits SP_AUTH_SECRET_MAX; a short buffer gets a terminated cut. */
    sp_auth_new_secret("spypixel_session_", a, sizeof(a));
    assert_int_equal(17 + 43, strlen(a));
    char cut[8];
    sp_auth_new_secret("sps_", cut, sizeof(cut));
    assert_int_equal(7, strlen(cut));
    assert_memory_equal("sps_", cut, 4);
}

static void test_secret_hash(void **state)
{
    char h1[SP_AUTH_HASH_MAX], h2[SP_AUTH_HASH_MAX];
    /* BLAKE2b-256, unkeyed: every server on one store computes the same. */
    sp_auth_secret_hash("abc", h1, sizeof(h1));
    assert_string_equal("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319", h1);

    sp_auth_secret_hash("spt_secret", h1, sizeof(h1));
    sp_auth_secret_hash("spt_secret", h2, sizeof(h2));
    assert_int_equal(64, strlen(h1));
    assert_int_equal(64, strspn(h1, "0123456789abcdef"));
    assert_string_equal(h1, h2);
    sp_auth_secret_hash("spt_secreT", h2, sizeof(h2));
    assert_string_not_equal(h1, h2);
    sp_auth_secret_hash("", h2, sizeof(h2));
    assert_string_equal("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8", h2);

    /* A buffer that cannot hold the hex gets "", never a cut hash. */
    char small[64];
    memset(small, 'Z', sizeof(small));
    sp_auth_secret_hash("abc", small, sizeof(small));
    assert_string_equal("", small);
    char none = 'Z';
    sp_auth_secret_hash("abc", &none, 0);
    assert_int_equal('Z', none);
}

/* A visitor ID is a keyed hash of address and agent: the same pair gets the same ID however
 * the calls before it went (the thread keeps the last one), any change of either byte or
 * length another, and another key another. */
static void test_visitor_id(void **state)
{
    (void)state;
    unsigned char key2[SP_AUTH_KEY_BYTES];
    memcpy(key2, key, sizeof(key2));
    key2[0] ^= 1;
    sp_auth_t *a = sp_auth_new(key, 0), *b = sp_auth_new(key2, 0);
    static char agent[5000];
    memset(agent, 'a', sizeof(agent) - 1);
    char first[33], id[33], again[33];
    sp_auth_visitor_id(a, "203.0.113.7", "Mozilla/5.0 (X11)", first, sizeof(first));
    assert_int_equal(32, strlen(first));
    assert_int_equal(32, strspn(first, "0123456789abcdef"));
    struct {
        const char *ip, *agent;
    } others[] = {
        {"203.0.113.8", "Mozilla/5.0 (X11)"},  /* the address's last byte */
        {"203.0.113.7", "Mozilla/5.0 (X11("},  /* the agent's last byte */
        {"203.0.113.7", "Mozilla/5.0 (X11) "}, /* one byte longer */
        {"203.0.113.7", "Mozilla/5.0 (X11"},   /* one shorter */
        {"203.0.113.7", ""},
        {"203.0.113.7", NULL},
        {"203.0.113.", "7Mozilla/5.0 (X11)"}, /* the same bytes, split elsewhere */
        {"203.0.113.7", agent},               /* cut at 4,096 bytes */
    };
    char seen[sizeof(others) / sizeof(others[0])][33];
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        sp_auth_visitor_id(a, others[i].ip, others[i].agent, seen[i], sizeof(seen[i]));
        if (0 == strcmp(seen[i], first))
            fail_msg("case %zu got the first pair's ID", i);
        for (size_t k = 0; k < i; k++)
            if (0 == strcmp(seen[i], seen[k]) && !(4 == k && 5 == i)) /* "" and none: alike */
                fail_msg("cases %zu and %zu got one ID", k, i);
        sp_auth_visitor_id(a, others[i].ip, others[i].agent, id, sizeof(id));
        assert_string_equal(seen[i], id); /* asked again at once */
        sp_auth_visitor_id(a, "203.0.113.7", "Mozilla/5.0 (X11)", again, sizeof(again));
        assert_string_equal(first, again); /* after another pair */
    }
    agent[4096] = 'b'; /* past what is hashed */
    sp_auth_visitor_id(a, "203.0.113.7", agent, id, sizeof(id));
    assert_string_equal(seen[7], id);
    /* Another key, right after the same pair under the first. */
    sp_auth_visitor_id(b, "203.0.113.7", "Mozilla/5.0 (X11)", id, sizeof(id));
    assert_string_not_equal(first, id);
    sp_auth_visitor_id(a, "203.0.113.7", "Mozilla/5.0 (X11)", id, sizeof(id));
    assert_string_equal(first, id);
    /* A freed auth's address taken by one with another key. */
    sp_auth_free(a);
    a = sp_auth_new(key2, 0);
    sp_auth_visitor_id(a, "203.0.113.7", "Mozilla/5.0 (X11)", id, sizeof(id));
    sp_auth_visitor_id(b, "203.0.113.7", "Mozilla/5.0 (X11)", again, sizeof(again));
    assert_string_equal(again, id);
    assert_string_not_equal(first, id);
    /* Too small a buffer gets "". */
    char small[8] = "x";
    sp_auth_visitor_id(a, "203.0.113.7", "Mozilla/5.0 (X11)", small, sizeof(small));
    assert_string_equal("", small);
    sp_auth_free(a);
    sp_auth_free(b);
}

static void test_limiter_backoff(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = -7;
    for (int i = 0; i < SP_AUTH_LOGIN_FREE; i++)
        assert_int_equal(0, fail_at(a, "198.51.100.1", "alice", T0));
    /* Then each failure doubles the wait, counted from that failure. */
    int64_t now = T0;
    int64_t want = SP_AUTH_BACKOFF_FIRST_S;
    for (int round = 0; round < 12; round++) {
        assert_int_equal(-1, try_login(a, "198.51.100.1", "alice", NULL, now, true, &retry));
        assert_int_equal(want, retry);
        assert_int_equal(-1,
                         try_login(a, "198.51.100.1", "alice", NULL, now + want - 1, true, &retry));
        assert_int_equal(1, retry);
        now += want;
        assert_int_equal(0, fail_at(a, "198.51.100.1", "alice", now));
        want = want * 2 > SP_AUTH_BACKOFF_MAX_S ? SP_AUTH_BACKOFF_MAX_S : want * 2;
    }
    assert_int_equal(SP_AUTH_BACKOFF_MAX_S, want);
    /* Refused attempts cost nothing and move nothing. */
    assert_int_equal(-1, try_login(a, "198.51.100.1", "alice", NULL, now + 10, true, &retry));
    assert_int_equal(SP_AUTH_BACKOFF_MAX_S - 10, retry);
    /* A count ends SP_AUTH_FORGET_S after its last failure: free tries again. */
    now += SP_AUTH_FORGET_S + 1;
    for (int i = 0; i < SP_AUTH_LOGIN_FREE; i++)
        assert_int_equal(0, fail_at(a, "198.51.100.1", "alice", now));
    assert_int_equal(-1, try_login(a, "198.51.100.1", "alice", NULL, now, true, &retry));
    assert_int_equal(SP_AUTH_BACKOFF_FIRST_S, retry);
    sp_auth_free(a);
    sp_auth_free(NULL);
}

static void test_limiter_one_address(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = 0;
    /* Guesses from one address, even for ever, slow that address only. */
    int64_t now = T0;
    for (int i = 0; i < 40; i++) {
        if (fail_at(a, "203.0.113.7", "alice", now) < 0)
            assert_int_equal(-1, try_login(a, "203.0.113.7", "alice", NULL, now, true, &retry));
        now += SP_AUTH_BACKOFF_MAX_S; /* the guesser waits as told, and guesses on */
    }
    assert_int_equal(-1, try_login(a, "203.0.113.7", "bob", NULL, now - 1, true, &retry));
    assert_int_equal(1, try_login(a, "192.0.2.200", "alice", NULL, now, false, &retry));
    assert_int_equal(1, try_login(a, "2001:db8::1", "alice", NULL, now, false, &retry));
    /* Anyone else at another address is unaffected. */
    assert_int_equal(0, fail_at(a, "203.0.113.8", "bob", now));
    sp_auth_free(a);
}

static void test_limiter_account(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = 0;
    char owner[128], other[128], addr[32];
    sp_auth_device_cookie(a, "alice", owner, sizeof(owner));
    sp_auth_device_cookie(a, "mallory", other, sizeof(other));
    /* Guesses from several addresses close the account to browsers it does not know. */
    for (int i = 1; i <= 3; i++) {
        snprintf(addr, sizeof(addr), "203.0.113.%d", i);
        for (int k = 0; k < SP_AUTH_LOGIN_FREE; k++)
            fail_at(a, addr, "alice", T0);
    }
    assert_int_equal(-1, try_login(a, "192.0.2.200", "alice", NULL, T0, false, &retry));
    assert_int_equal(SP_AUTH_BACKOFF_FIRST_S, retry);
    assert_int_equal(-1, try_login(a, "192.0.2.200", "alice", other, T0, false, &retry));
    assert_int_equal(-1, try_login(a, "192.0.2.200", "alice", "forged.cookie", T0, false, &retry));
    /* ...not to the owner's browser, wherever it is... */
    assert_int_equal(1, try_login(a, "192.0.2.200", "alice", owner, T0, false, &retry));
    assert_int_equal(1, try_login(a, "203.0.113.1", "alice", owner, T0, false, &retry));
    /* ...nor other accounts. */
    assert_int_equal(1, try_login(a, "192.0.2.200", "bob", NULL, T0, false, &retry));
    /* Users are told apart exactly. */
    assert_int_equal(1, try_login(a, "192.0.2.201", "Alice", NULL, T0, false, &retry));
    assert_int_equal(1, try_login(a, "192.0.2.201", "alice ", NULL, T0, false, &retry));
    /* After the wait, one more try. */
    assert_int_equal(
        1, try_login(a, "192.0.2.201", "alice", NULL, T0 + SP_AUTH_BACKOFF_FIRST_S, false, &retry));

    /* The known-browser cookie has its own count: a thief guessing with it waits too. */
    for (int k = 0; k < SP_AUTH_LOGIN_FREE; k++)
        assert_int_equal(0, try_login(a, "198.51.100.9", "alice", owner, T0, true, NULL));
    assert_int_equal(-1, try_login(a, "198.51.100.9", "alice", owner, T0, true, &retry));
    /* ...and that count is the cookie's, not the address's or the account's. */
    char second[128];
    sp_auth_device_cookie(a, "alice", second, sizeof(second));
    assert_int_equal(1, try_login(a, "198.51.100.9", "alice", second, T0, false, &retry));
    assert_int_equal(1, try_login(a, "198.51.100.9", "bob", NULL, T0, false, &retry));
    sp_auth_free(a);
}

static void test_limiter_success(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = 0;
    char own[128];
    sp_auth_device_cookie(a, "mallory", own, sizeof(own));
    /* One user guesses another's password and logs in as herself between the guesses, from
     * one address with her own cookie: her successes take back none of her failures. */
    int checked = 0;
    for (int i = 0; i < 20; i++) {
        if (0 == try_login(a, "192.0.2.50", "alice", own, T0, true, &retry))
            checked++;
        assert_int_equal(1, try_login(a, "192.0.2.50", "mallory", own, T0, false, &retry));
    }
    assert_int_equal(SP_AUTH_LOGIN_FREE, checked);
    /* The address now waits, for every browser it does not know. */
    assert_int_equal(-1, try_login(a, "192.0.2.50", "mallory", NULL, T0, false, &retry));
    /* A success gives back its own charge only: four typos, a success, one more typo, and
     * the address is at five. */
    for (int i = 0; i < SP_AUTH_LOGIN_FREE - 1; i++)
        fail_at(a, "192.0.2.60", "dave", T0);
    assert_int_equal(1, try_login(a, "192.0.2.60", "dave", NULL, T0, false, &retry));
    fail_at(a, "192.0.2.60", "dave", T0);
    assert_int_equal(-1, try_login(a, "192.0.2.60", "dave", NULL, T0, false, &retry));
    sp_auth_free(a);
}

static void test_limiter_parallel(void **state)
{
    /* Attempts still being checked count: a burst cannot slip through together. */
    sp_auth_t *a = sp_auth_new(key, 0);
    sp_net_addr_t x = ip("198.51.100.20");
    sp_auth_attempt_t att[10];
    int retry = 0, allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += sp_auth_login_begin(a, &x, "alice", NULL, T0, &att[i], &retry);
    assert_int_equal(SP_AUTH_LOGIN_FREE, allowed);
    /* Those that turn out right give their charge back. */
    for (int i = 0; i < SP_AUTH_LOGIN_FREE; i++)
        sp_auth_login_end(a, &att[i], false, T0);
    assert_true(sp_auth_login_begin(a, &x, "alice", NULL, T0, &att[0], &retry));
    sp_auth_free(a);
}

static void test_limiter_addresses(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = 0;
    char user[32];
    /* An IPv6 client is its /64: its many addresses share one count. */
    for (int i = 0; i < SP_AUTH_LOGIN_FREE; i++) {
        snprintf(user, sizeof(user), "user%d", i);
        char addr[48];
        snprintf(addr, sizeof(addr), "2001:db8:0:1::%x", i + 1);
        fail_at(a, addr, user, T0);
    }
    assert_int_equal(-1, try_login(a, "2001:db8:0:1:ffff::1", "new", NULL, T0, false, &retry));
    assert_int_equal(-1, try_login(a, "[2001:db8:0:1::66]", "new", NULL, T0, false, &retry));
    assert_int_equal(1, try_login(a, "2001:db8:0:2::1", "new", NULL, T0, false, &retry));
    /* IPv4 addresses are told apart by every bit, and one and its mapped form are one. */
    for (int i = 0; i < SP_AUTH_LOGIN_FREE; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        fail_at(a, "192.0.2.9", user, T0);
    }
    assert_int_equal(-1, try_login(a, "::ffff:192.0.2.9", "other", NULL, T0, false, &retry));
    assert_int_equal(1, try_login(a, "192.0.2.8", "other", NULL, T0, false, &retry));
    sp_auth_free(a);
}

static void test_limiter_many(void **state)
{
    /* Far more addresses than the table has slots: memory stays bounded, and a count under
     * way survives a flood of newer ones only as long as its slots are not all newer. */
    sp_auth_t *a = sp_auth_new(key, 0);
    char addr[48], user[32];
    int retry = 0;
    for (int i = 0; i < SP_AUTH_LOGIN_FREE; i++)
        fail_at(a, "198.51.100.77", "target", T0);
    for (int i = 0; i < 20000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        snprintf(user, sizeof(user), "u%d", i);
        fail_at(a, addr, user, T0 - 1); /* older: they give way first */
    }
    assert_int_equal(-1, try_login(a, "198.51.100.77", "x", NULL, T0, false, &retry));
    sp_auth_free(a);
}

static void test_device_cookie(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0), *other = sp_auth_new(other_key, 0);
    char c[128], bad[160];
    sp_auth_device_cookie(a, "alice", c, sizeof(c));
    assert_int_equal(22 + 1 + 43, strlen(c));
    assert_true(sp_auth_device_cookie_valid(a, "alice", c));
    assert_false(sp_auth_device_cookie_valid(a, "bob", c));
    assert_false(sp_auth_device_cookie_valid(a, "Alice", c));
    assert_false(sp_auth_device_cookie_valid(a, "alice ", c));
    assert_false(sp_auth_device_cookie_valid(a, "alic", c));
    assert_false(sp_auth_device_cookie_valid(a, "", c));
    assert_false(sp_auth_device_cookie_valid(other, "alice", c));
    /* Not a self-view cookie, and a self-view cookie is not one. */
    assert_false(sp_auth_self_cookie_valid(a, c));
    char self[128];
    sp_auth_self_cookie(a, self, sizeof(self));
    assert_false(sp_auth_device_cookie_valid(a, "alice", self));
    assert_false(sp_auth_device_cookie_valid(a, "", self));
    for (size_t pos = 0; pos < strlen(c); pos++) {
        memcpy(bad, c, strlen(c) + 1);
        bad[pos] = 'A' == bad[pos] ? 'B' : 'A';
        assert_false(sp_auth_device_cookie_valid(a, "alice", bad));
    }
    assert_false(sp_auth_device_cookie_valid(a, "alice", NULL));
    assert_false(sp_auth_device_cookie_valid(a, "alice", ""));
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(sp_auth_device_cookie_valid(a, longname, c));
    sp_auth_free(a);
    sp_auth_free(other);
}

/* ---- the password-check pool ------------------------------------------------------------ */

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
} waiter_t;

static void check_done(void *ctx)
{
    waiter_t *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->done++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void wait_done(waiter_t *w, int n)
{
    pthread_mutex_lock(&w->lock);
    while (w->done < n)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

static void test_check_pool(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    waiter_t w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    static sp_auth_check_t checks[64];
    char hash[crypto_pwhash_STRBYTES];
    assert_int_equal(0, sp_auth_password_hash("right password", hash, sizeof(hash)));
    const char *passwords[3] = {"right password", "wrong password", "right password"};
    const char *hashes[3] = {hash, hash, ""}; /* "": a user that does not exist */
    for (int i = 0; i < 3; i++) {
        memset(&checks[i], 0, sizeof(checks[i]));
        snprintf(checks[i].pwhash, sizeof(checks[i].pwhash), "%s", hashes[i]);
        snprintf(checks[i].password, sizeof(checks[i].password), "%s", passwords[i]);
        checks[i].done = check_done;
        checks[i].ctx = &w;
        checks[i].ok = !i; /* set by the check, whatever it was */
        assert_int_equal(0, sp_auth_check_submit(a, &checks[i]));
    }
    wait_done(&w, 3);
    assert_true(checks[0].ok);
    assert_false(checks[1].ok);
    assert_false(checks[2].ok);
    for (int i = 0; i < 3; i++)
        assert_int_equal('\0', checks[i].password[0]); /* wiped */

    /* The queue is bounded: past it, submissions are refused at once. */
    int queued = 0, refused = 0;
    for (int i = 0; i < 64; i++) {
        memset(&checks[i], 0, sizeof(checks[i]));
        snprintf(checks[i].pwhash, sizeof(checks[i].pwhash), "%s", hash);
        snprintf(checks[i].password, sizeof(checks[i].password), "guess %d", i);
        checks[i].done = check_done;
        checks[i].ctx = &w;
        if (0 == sp_auth_check_submit(a, &checks[i]))
            queued++;
        else
            refused++;
    }
    assert_true(queued >= SP_AUTH_CHECKS_PER_THREAD);
    assert_true(queued <= 4 * SP_AUTH_CHECKS_PER_THREAD);
    assert_int_equal(64 - queued, refused);
    /* Stopping runs what was queued, then refuses. */
    sp_auth_checks_stop(a);
    assert_int_equal(3 + queued, w.done);
    assert_int_equal(-1, sp_auth_check_submit(a, &checks[0]));
    sp_auth_checks_stop(a);
    sp_auth_free(a);

    /* A pool never used stops at once. */
    a = sp_auth_new(key, 0);
    sp_auth_free(a);
}

static void test_self_cookie(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0), *same = sp_auth_new(key, 0);
    sp_auth_t *other = sp_auth_new(other_key, 0);
    char c1[128], c2[128];
    sp_auth_self_cookie(a, c1, sizeof(c1));
    sp_auth_self_cookie(a, c2, sizeof(c2));
    assert_string_not_equal(c1, c2); /* a fresh nonce each time */
    assert_int_equal(22 + 1 + 43, strlen(c1));
    assert_int_equal('.', c1[22]);
    assert_int_equal(22, strspn(c1, base64url));
    assert_int_equal(43, strspn(c1 + 23, base64url));

    assert_true(sp_auth_self_cookie_valid(a, c1));
    assert_true(sp_auth_self_cookie_valid(a, c2));
    assert_true(sp_auth_self_cookie_valid(same, c1)); /* another server on the same key */
    assert_false(sp_auth_self_cookie_valid(other, c1));

    /* Every character changed, to every other character of the alphabet and to a few not in
     * it, including bytes with the high bit set. */
    char bad[160];
    size_t len = strlen(c1);
    const char others[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "
                          "\x80\xbf\xdf\xff";
    for (size_t pos = 0; pos < len; pos++)
        for (const char *c = others; *c; c++) {
            if (*c == c1[pos])
                continue;
            memcpy(bad, c1, len + 1);
            bad[pos] = *c;
            if (sp_auth_self_cookie_valid(a, bad))
                fail_msg("valid with position %zu changed to 0x%02x", pos, (unsigned char)*c);
        }

    /* Cut, extended, swapped halves, garbage. */
    for (size_t n = 0; n < len; n++) {
        memcpy(bad, c1, n);
        bad[n] = '\0';
        assert_false(sp_auth_self_cookie_valid(a, bad));
    }
    snprintf(bad, sizeof(bad), "%sA", c1);
    assert_false(sp_auth_self_cookie_valid(a, bad));
    snprintf(bad, sizeof(bad), "A%s", c1);
    assert_false(sp_auth_self_cookie_valid(a, bad));
    snprintf(bad, sizeof(bad), "%.*s.%.22s", 43, c1 + 23, c1);
    assert_false(sp_auth_self_cookie_valid(a, bad));
    /* The nonce of one cookie with the MAC of another. */
    snprintf(bad, sizeof(bad), "%.22s.%s", c2, c1 + 23);
    assert_false(sp_auth_self_cookie_valid(a, bad));

    const char *garbage[] = {
        "",        ".",
        "..",      "abc",
        "a.b",     "1",
        "deleted", "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        assert_false(sp_auth_self_cookie_valid(a, garbage[i]));
    assert_false(sp_auth_self_cookie_valid(a, NULL));
    char huge[4096];
    memset(huge, 'A', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    huge[100] = '.';
    assert_false(sp_auth_self_cookie_valid(a, huge));

    /* A short buffer gets a cut, terminated value that does not verify. */
    char small[10];
    sp_auth_self_cookie(a, small, sizeof(small));
    assert_int_equal(9, strlen(small));
    assert_false(sp_auth_self_cookie_valid(a, small));

    sp_auth_free(a);
    sp_auth_free(same);
    sp_auth_free(other);
}

static void test_self_ip(void **state)
{
    sp_net_addr_t me = ip("198.51.100.10"), neighbour = ip("198.51.100.11"),
                  v6 = ip("2001:db8::10");

    /* Window 0: the rule is off, noting does nothing. */
    sp_auth_t *off = sp_auth_new(key, 0);
    sp_auth_note_dashboard_ip(off, &me);
    assert_false(sp_auth_recent_dashboard_ip(off, &me));
    sp_auth_free(off);

    sp_auth_t *a = sp_auth_new(key, 30);
    assert_false(sp_auth_recent_dashboard_ip(a, &me));
    sp_auth_note_dashboard_ip(a, &me);
    assert_true(sp_auth_recent_dashboard_ip(a, &me));
    assert_false(sp_auth_recent_dashboard_ip(a, &neighbour));
    assert_false(sp_auth_recent_dashboard_ip(a, &v6));
    sp_net_addr_t mapped = ip("::ffff:198.51.100.10");
    assert_true(sp_auth_recent_dashboard_ip(a, &mapped));

    sp_auth_note_dashboard_ip(a, &v6);
    assert_true(sp_auth_recent_dashboard_ip(a, &v6));
    assert_true(sp_auth_recent_dashboard_ip(a, &me));

    /* The window is in minutes: two seconds later a one-minute window still holds. */
    sp_auth_t *minute = sp_auth_new(key, 1);
    sp_auth_note_dashboard_ip(minute, &me);
    sleep(2);
    assert_true(sp_auth_recent_dashboard_ip(minute, &me));
    sp_auth_free(minute);

    /* The all-zero address is an address like any other, not an empty slot. */
    sp_net_addr_t zero = ip("::");
    assert_false(sp_auth_recent_dashboard_ip(a, &zero));
    sp_auth_note_dashboard_ip(a, &zero);
    assert_true(sp_auth_recent_dashboard_ip(a, &zero));

    /* Many others noted since: the table is bounded, and never says yes for a stranger. */
    char text[48];
    for (int i = 0; i < 5000; i++) {
        snprintf(text, sizeof(text), "10.1.%d.%d", i >> 8, i & 0xff);
        sp_net_addr_t x = ip(text);
        sp_auth_note_dashboard_ip(a, &x);
    }
    sp_net_addr_t stranger = ip("10.2.0.1");
    assert_false(sp_auth_recent_dashboard_ip(a, &stranger));
    sp_net_addr_t last = ip("10.1.19.135"); /* i = 4999 */
    assert_true(sp_auth_recent_dashboard_ip(a, &last));
    sp_auth_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_password),         cmocka_unit_test(test_new_secret),
        cmocka_unit_test(test_secret_hash),      cmocka_unit_test(test_visitor_id),
        cmocka_unit_test(test_limiter_backoff),  cmocka_unit_test(test_limiter_one_address),
        cmocka_unit_test(test_limiter_account),  cmocka_unit_test(test_limiter_success),
        cmocka_unit_test(test_limiter_parallel), cmocka_unit_test(test_limiter_addresses),
        cmocka_unit_test(test_limiter_many),     cmocka_unit_test(test_device_cookie),
        cmocka_unit_test(test_check_pool),       cmocka_unit_test(test_self_cookie),
        cmocka_unit_test(test_self_ip),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
