/* test_auth: passwords, secrets, the login limiter, the self-view cookie and dashboard IPs. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

static bool allowed(sp_auth_t *a, const char *addr, const char *user, int *retry_after)
{
    sp_net_addr_t x = ip(addr);
    return sp_auth_login_allowed(a, &x, user, false, retry_after);
}

static bool allowed_known(sp_auth_t *a, const char *addr, const char *user, int *retry_after)
{
    sp_net_addr_t x = ip(addr);
    return sp_auth_login_allowed(a, &x, user, true, retry_after);
}

static void failed(sp_auth_t *a, const char *addr, const char *user)
{
    sp_net_addr_t x = ip(addr);
    sp_auth_login_failed(a, &x, user);
}

static void succeeded(sp_auth_t *a, const char *addr, const char *user)
{
    sp_net_addr_t x = ip(addr);
    sp_auth_login_succeeded(a, &x, user);
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

static void test_limiter_counts(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = -7;
    assert_true(allowed(a, "198.51.100.1", "alice", &retry));
    assert_int_equal(-7, retry); /* untouched when allowed */

    for (int i = 0; i < SP_AUTH_LOGIN_TRIES - 1; i++) {
        failed(a, "198.51.100.1", "alice");
        assert_true(allowed(a, "198.51.100.1", "alice", &retry));
    }
    failed(a, "198.51.100.1", "alice");
    retry = -7;
    assert_false(allowed(a, "198.51.100.1", "alice", &retry));
    assert_true(retry > 0);
    assert_true(retry <= SP_AUTH_LOGIN_WINDOW_S + 1);
    assert_true(retry >= SP_AUTH_LOGIN_WINDOW_S - 60);

    /* More failures keep it closed. */
    failed(a, "198.51.100.1", "alice");
    assert_false(allowed(a, "198.51.100.1", "alice", &retry));

    /* Someone else from somewhere else is not affected. */
    retry = -7;
    assert_true(allowed(a, "198.51.100.2", "bob", &retry));
    assert_int_equal(-7, retry);
    sp_auth_free(a);
    sp_auth_free(NULL);
}

static void test_limiter_per_user(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = 0;
    char addr[32];
    /* One user guessed from five addresses: the user is closed everywhere... */
    for (int i = 1; i <= SP_AUTH_LOGIN_TRIES; i++) {
        snprintf(addr, sizeof(addr), "203.0.113.%d", i);
        failed(a, addr, "alice");
    }
    assert_false(allowed(a, "192.0.2.200", "alice", &retry));
    assert_true(retry > 0);
    assert_false(allowed(a, "2001:db8::1", "alice", &retry));
    /* ...except for a browser that logged in before: its address's own count decides. */
    assert_true(allowed_known(a, "192.0.2.200", "alice", &retry));
    /* A known browser is still held to its own address's limit. */
    for (int i = 0; i < SP_AUTH_LOGIN_TRIES; i++)
        failed(a, "198.51.100.77", "carol");
    assert_false(allowed_known(a, "198.51.100.77", "carol", &retry));
    assert_true(allowed_known(a, "192.0.2.5", "carol", &retry));
    /* ...while each address, with one failure, still serves other users. */
    assert_true(allowed(a, "203.0.113.1", "bob", &retry));
    assert_true(allowed(a, "192.0.2.200", "bob", &retry));
    /* Users are told apart exactly. */
    assert_true(allowed(a, "192.0.2.200", "Alice", &retry));
    assert_true(allowed(a, "192.0.2.200", "alice ", &retry));
    assert_true(allowed(a, "192.0.2.200", "alic", &retry));
    sp_auth_free(a);
}

static void test_limiter_per_ip(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = 0;
    char user[32];
    /* One address trying five users: the address is closed for everyone... */
    for (int i = 0; i < SP_AUTH_LOGIN_TRIES; i++) {
        snprintf(user, sizeof(user), "user%d", i);
        failed(a, "2001:db8::66", user);
    }
    assert_false(allowed(a, "2001:db8::66", "somebody-new", &retry));
    assert_true(retry > 0);
    assert_false(allowed(a, "[2001:db8::66]", "user0", &retry));
    /* ...while those users, with one failure each, can log in from elsewhere. */
    assert_true(allowed(a, "2001:db8::67", "user0", &retry));
    assert_true(allowed(a, "2001:db8:1::66", "user1", &retry));
    /* Addresses are told apart by every bit. */
    assert_true(allowed(a, "2001:db8::64", "x", &retry));
    sp_auth_free(a);

    /* An IPv4 address and its mapped form are one address. */
    a = sp_auth_new(key, 0);
    for (int i = 0; i < SP_AUTH_LOGIN_TRIES; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        failed(a, "192.0.2.9", user);
    }
    assert_false(allowed(a, "::ffff:192.0.2.9", "other", &retry));
    sp_auth_free(a);
}

static void test_limiter_success(void **state)
{
    sp_auth_t *a = sp_auth_new(key, 0);
    int retry = 0;
    char user[32];
    /* Four failures from an address, then a success: the address starts over. */
    for (int i = 0; i < SP_AUTH_LOGIN_TRIES - 1; i++) {
        snprintf(user, sizeof(user), "typo%d", i);
        failed(a, "192.0.2.50", user);
    }
    succeeded(a, "192.0.2.50", "carol");
    for (int i = 0; i < SP_AUTH_LOGIN_TRIES - 1; i++) {
        snprintf(user, sizeof(user), "again%d", i);
        failed(a, "192.0.2.50", user);
    }
    assert_true(allowed(a, "192.0.2.50", "carol", &retry)); /* 4, not 8 */
    failed(a, "192.0.2.50", "again-last");
    assert_false(allowed(a, "192.0.2.50", "carol", &retry));
    sp_auth_free(a);

    /* A success does not clear the user's own count: a guesser may share the address. */
    a = sp_auth_new(key, 0);
    for (int i = 0; i < SP_AUTH_LOGIN_TRIES - 1; i++)
        failed(a, "192.0.2.60", "dave");
    succeeded(a, "192.0.2.60", "dave");
    assert_true(allowed(a, "192.0.2.60", "dave", &retry));
    failed(a, "192.0.2.61", "dave");
    assert_false(allowed(a, "192.0.2.62", "dave", &retry));
    assert_true(allowed(a, "192.0.2.60", "erin", &retry));

    /* A success from an address that never failed changes nothing. */
    succeeded(a, "192.0.2.99", "frank");
    assert_true(allowed(a, "192.0.2.99", "frank", &retry));
    sp_auth_free(a);
}

static void test_limiter_many(void **state)
{
    /* Far more addresses than the table has slots: memory stays bounded, the newest count. */
    sp_auth_t *a = sp_auth_new(key, 0);
    char addr[48], user[32];
    for (int i = 0; i < 20000; i++) {
        snprintf(addr, sizeof(addr), "10.%d.%d.%d", (i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
        snprintf(user, sizeof(user), "u%d", i);
        failed(a, addr, user);
    }
    int retry = 0;
    for (int i = 0; i < SP_AUTH_LOGIN_TRIES; i++)
        failed(a, "198.51.100.77", "target");
    assert_false(allowed(a, "198.51.100.77", "x", &retry));
    assert_false(allowed(a, "198.51.100.78", "target", &retry));
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
        cmocka_unit_test(test_secret_hash),      cmocka_unit_test(test_limiter_counts),
        cmocka_unit_test(test_limiter_per_user), cmocka_unit_test(test_limiter_per_ip),
        cmocka_unit_test(test_limiter_success),  cmocka_unit_test(test_limiter_many),
        cmocka_unit_test(test_self_cookie),      cmocka_unit_test(test_self_ip),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
