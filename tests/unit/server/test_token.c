/* test_token: sealed tracking tokens: round trips, determinism, forgery, damage, limits. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "token.h"

static unsigned char key_a[SP_AUTH_KEY_BYTES], key_b[SP_AUTH_KEY_BYTES];
static sp_token_t *tok_a, *tok_b;

static const char base64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int group_setup(void **state)
{
    if (sodium_init() < 0)
        return -1;
    for (int i = 0; i < SP_AUTH_KEY_BYTES; i++) {
        key_a[i] = (unsigned char)i;
        key_b[i] = (unsigned char)i;
    }
    key_b[SP_AUTH_KEY_BYTES - 1] ^= 1; /* one bit apart */
    tok_a = sp_token_new(key_a);
    tok_b = sp_token_new(key_b);
    return 0;
}

static int group_teardown(void **state)
{
    sp_token_free(tok_a);
    sp_token_free(tok_b);
    sp_token_free(NULL);
    return 0;
}

static sp_token_data_t data(sp_token_kind_t kind, const char *campaign, const char *recipient,
                            const char *extra)
{
    sp_token_data_t d;
    memset(&d, 0, sizeof(d));
    d.kind = kind;
    snprintf(d.campaign, sizeof(d.campaign), "%s", campaign);
    snprintf(d.recipient, sizeof(d.recipient), "%s", recipient);
    snprintf(d.extra, sizeof(d.extra), "%s", extra);
    return d;
}

static void seal(const sp_token_t *t, const sp_token_data_t *d, char out[SP_TOKEN_MAX])
{
    memset(out, 0, SP_TOKEN_MAX);
    assert_int_equal(0, sp_token_seal(t, d, out, SP_TOKEN_MAX));
    assert_true(strlen(out) > 0);
    assert_true(strlen(out) < SP_TOKEN_MAX);
    assert_int_equal(strlen(out), strspn(out, base64url)); /* fits a URL path as it is */
}

static int open_text(const sp_token_t *t, const char *text, sp_token_data_t *out)
{
    return sp_token_open(t, text, strlen(text), out);
}

static void assert_same(const sp_token_data_t *want, const sp_token_data_t *got)
{
    assert_int_equal(want->kind, got->kind);
    assert_string_equal(want->campaign, got->campaign);
    assert_string_equal(want->recipient, got->recipient);
    assert_string_equal(want->extra, got->extra);
}

static void test_round_trip(void **state)
{
    const sp_token_data_t cases[] = {
        data(SP_TOKEN_OPEN, "spring-2026", "alice@example.com", ""),
        data(SP_TOKEN_CLICK, "spring-2026", "alice@example.com",
             "https://example.com/offer?utm=x&id=1#top"),
        data(SP_TOKEN_IMAGE, "spring-2026", "bob+news@example.org", "img_0042"),
        data(SP_TOKEN_OPEN, "c", "", ""),
        data(SP_TOKEN_CLICK, "c", "", "https://example.com/caf\xc3\xa9 \"quoted\""),
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[SP_TOKEN_MAX];
        sp_token_data_t out;
        seal(tok_a, &cases[i], text);
        memset(&out, 0x7a, sizeof(out));
        assert_int_equal(0, open_text(tok_a, text, &out));
        assert_same(&cases[i], &out);
    }
}

static void test_deterministic(void **state)
{
    sp_token_data_t d = data(SP_TOKEN_OPEN, "spring", "alice@example.com", "");
    char one[SP_TOKEN_MAX], two[SP_TOKEN_MAX], other[SP_TOKEN_MAX];
    seal(tok_a, &d, one);
    seal(tok_a, &d, two);
    assert_string_equal(one, two);

    /* A second object made from the same key seals the same, and opens the first's. */
    sp_token_t *again = sp_token_new(key_a);
    seal(again, &d, two);
    assert_string_equal(one, two);
    sp_token_data_t out;
    assert_int_equal(0, open_text(again, one, &out));
    assert_same(&d, &out);
    sp_token_free(again);

    /* Bytes after a field's end do not count. */
    sp_token_data_t junk = d;
    memset(junk.recipient + strlen(junk.recipient) + 1, 'j', 10);
    memset(junk.extra + 1, 'j', 10);
    seal(tok_a, &junk, two);
    assert_string_equal(one, two);

    /* Any difference in any field gives another token. */
    sp_token_data_t changed[] = {
        data(SP_TOKEN_CLICK, "spring", "alice@example.com", ""),
        data(SP_TOKEN_IMAGE, "spring", "alice@example.com", ""),
        data(SP_TOKEN_OPEN, "sprinG", "alice@example.com", ""),
        data(SP_TOKEN_OPEN, "spring", "alice@example.co", ""),
        data(SP_TOKEN_OPEN, "spring", "alice@example.com", "x"),
        /* The separators are part of the content: moving a byte across one is a change. */
        data(SP_TOKEN_OPEN, "springa", "lice@example.com", ""),
        data(SP_TOKEN_OPEN, "spring", "alice@example.co", "m"),
    };
    for (size_t i = 0; i < sizeof(changed) / sizeof(changed[0]); i++) {
        seal(tok_a, &changed[i], other);
        if (0 == strcmp(one, other))
            fail_msg("case %zu seals to the same token", i);
        assert_int_equal(0, open_text(tok_a, other, &out));
        assert_same(&changed[i], &out);
    }

    /* Another key, another token. */
    seal(tok_b, &d, other);
    assert_string_not_equal(one, other);
}

static void test_foreign_key(void **state)
{
    sp_token_data_t d = data(SP_TOKEN_CLICK, "spring", "alice@example.com", "https://x/");
    char by_a[SP_TOKEN_MAX], by_b[SP_TOKEN_MAX];
    sp_token_data_t out;
    seal(tok_a, &d, by_a);
    seal(tok_b, &d, by_b);
    assert_int_equal(-1, open_text(tok_b, by_a, &out));
    assert_int_equal(-1, open_text(tok_a, by_b, &out));
    assert_int_equal(0, open_text(tok_a, by_a, &out));
    assert_int_equal(0, open_text(tok_b, by_b, &out));
    assert_same(&d, &out);

    /* A token sealed by no key at all: random bytes of a plausible length. */
    unsigned char raw[96];
    char text[200];
    for (int i = 0; i < 50; i++) {
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2base64(text, sizeof(text), raw, sizeof(raw),
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        assert_int_equal(-1, open_text(tok_a, text, &out));
    }
}

static void test_every_mutation_fails(void **state)
{
    sp_token_data_t d = data(SP_TOKEN_CLICK, "spring", "alice@example.com", "https://x.example/");
    char text[SP_TOKEN_MAX], bad[SP_TOKEN_MAX];
    sp_token_data_t out;
    seal(tok_a, &d, text);
    size_t len = strlen(text);
    assert_true(len > 60);

    /* Each position changed to every other base64url character, and to a few that are not,
     * bytes with the high bit set among them (libsodium 1.0.18 reads those as '_'). */
    const char *others = base64url;
    const char invalid[] = "=+/.~ !%\x80\xbf\xdf\xff";
    int tried = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (const char *c = others; *c; c++) {
            if (*c == text[pos])
                continue;
            memcpy(bad, text, len + 1);
            bad[pos] = *c;
            if (0 == open_text(tok_a, bad, &out))
                fail_msg("opened with position %zu changed to '%c'", pos, *c);
            tried++;
        }
        for (const char *c = invalid; *c; c++) {
            memcpy(bad, text, len + 1);
            bad[pos] = *c;
            assert_int_equal(-1, open_text(tok_a, bad, &out));
        }
    }
    assert_int_equal(len * 63, tried);

    /* The original still opens: the loop above did not pass for some other reason. */
    assert_int_equal(0, open_text(tok_a, text, &out));
    assert_same(&d, &out);
}

static void test_truncated_and_extended(void **state)
{
    sp_token_data_t d = data(SP_TOKEN_OPEN, "spring", "alice@example.com", "");
    char text[SP_TOKEN_MAX], longer[SP_TOKEN_MAX + 8];
    sp_token_data_t out;
    seal(tok_a, &d, text);
    size_t len = strlen(text);

    /* Every prefix, including the empty one. */
    for (size_t n = 0; n < len; n++)
        if (0 == sp_token_open(tok_a, text, n, &out))
            fail_msg("opened from its first %zu of %zu characters", n, len);
    assert_int_equal(-1, sp_token_open(tok_a, "", 0, &out));
    /* The first character dropped. */
    assert_int_equal(-1, sp_token_open(tok_a, text + 1, len - 1, &out));

    /* A character appended. */
    for (const char *c = "Aa0-_="; *c; c++) {
        snprintf(longer, sizeof(longer), "%s%c", text, *c);
        assert_int_equal(-1, open_text(tok_a, longer, &out));
    }

    /* TEXT_LEN is what counts, not a NUL: a token inside a longer URL opens. */
    snprintf(longer, sizeof(longer), "%s.gif", text);
    assert_int_equal(0, sp_token_open(tok_a, longer, len, &out));
    assert_same(&d, &out);
}

/* True when NEEDLE's bytes appear in HAY. */
static bool contains(const void *hay, size_t hay_len, const char *needle)
{
    return NULL != memmem(hay, hay_len, needle, strlen(needle));
}

static void test_recipient_hidden(void **state)
{
    const char *email = "alice.secret@example.com";
    sp_token_data_t d = data(SP_TOKEN_CLICK, "spring", email, "https://shop.example/");
    char text[SP_TOKEN_MAX];
    seal(tok_a, &d, text);

    /* Not in the text, in any case. */
    assert_null(strcasestr(text, email));
    assert_null(strcasestr(text, "alice"));
    assert_null(strcasestr(text, "example"));
    assert_null(strcasestr(text, "spring"));

    /* Nor in the decoded bytes: the token is not just an encoding of the content. */
    unsigned char bin[SP_TOKEN_MAX];
    size_t n = 0;
    assert_int_equal(0, sodium_base642bin(bin, sizeof(bin), text, strlen(text), NULL, &n, NULL,
                                          sodium_base64_VARIANT_URLSAFE_NO_PADDING));
    assert_false(contains(bin, n, email));
    assert_false(contains(bin, n, "alice"));
    assert_false(contains(bin, n, "spring"));
    assert_false(contains(bin, n, "shop.example"));

    /* Nor the address's own base64url, at any of the three alignments. */
    for (size_t skip = 0; skip < 3; skip++) {
        char enc[128];
        sodium_bin2base64(enc, sizeof(enc), (const unsigned char *)email + skip,
                          strlen(email) - skip, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        enc[strlen(enc) - 2] = '\0'; /* the last characters depend on what follows */
        assert_null(strstr(text, enc + 2));
    }

    /* Two recipients of one campaign share no long run of text either. */
    sp_token_data_t d2 = data(SP_TOKEN_CLICK, "spring", "bob@example.com", "https://shop.example/");
    char text2[SP_TOKEN_MAX];
    seal(tok_a, &d2, text2);
    char run[9] = {0};
    for (size_t i = 0; i + 8 <= strlen(text); i++) {
        memcpy(run, text + i, 8);
        assert_null(strstr(text2, run));
    }
}

static void test_limits(void **state)
{
    /* Every field at its longest fits in SP_TOKEN_MAX and comes back whole. */
    sp_token_data_t d;
    memset(&d, 0, sizeof(d));
    d.kind = SP_TOKEN_CLICK;
    memset(d.campaign, 'c', SP_ID_MAX);
    memset(d.recipient, 'r', SP_ID_MAX);
    memset(d.extra, 'e', sizeof(d.extra) - 1);
    char text[SP_TOKEN_MAX];
    sp_token_data_t out;
    seal(tok_a, &d, text);
    assert_int_equal(0, open_text(tok_a, text, &out));
    assert_same(&d, &out);
    assert_int_equal(SP_ID_MAX, strlen(out.campaign));
    assert_int_equal(SP_ID_MAX, strlen(out.recipient));
    assert_int_equal(sizeof(d.extra) - 1, strlen(out.extra));

    /* The output buffer: exactly enough works, one byte less is refused. */
    sp_token_data_t small = data(SP_TOKEN_OPEN, "spring", "alice@example.com", "");
    seal(tok_a, &small, text);
    size_t need = strlen(text) + 1;
    char exact[SP_TOKEN_MAX];
    memset(exact, 'Z', sizeof(exact));
    assert_int_equal(0, sp_token_seal(tok_a, &small, exact, need));
    assert_string_equal(text, exact);
    assert_int_equal('Z', exact[need]);
    memset(exact, 'Z', sizeof(exact));
    assert_int_equal(-1, sp_token_seal(tok_a, &small, exact, need - 1));
    assert_int_equal('Z', exact[need - 1]);
    assert_int_equal(-1, sp_token_seal(tok_a, &small, exact, 0));

    /* Text of SP_TOKEN_MAX or more characters is refused before decoding. */
    char huge[SP_TOKEN_MAX * 2];
    memset(huge, 'A', sizeof(huge));
    huge[sizeof(huge) - 1] = '\0';
    assert_int_equal(-1, sp_token_open(tok_a, huge, SP_TOKEN_MAX, &out));
    assert_int_equal(-1, sp_token_open(tok_a, huge, sizeof(huge) - 1, &out));
    /* Long enough to decode past the largest sealed size, but under SP_TOKEN_MAX. */
    assert_int_equal(-1, sp_token_open(tok_a, huge, SP_TOKEN_MAX - 1, &out));

    /* Too short to hold a nonce, a tag and the three fixed bytes. */
    assert_int_equal(-1, open_text(tok_a, "AAAA", &out));
    assert_int_equal(-1, open_text(tok_a, "A", &out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_foreign_key),
        cmocka_unit_test(test_every_mutation_fails),
        cmocka_unit_test(test_truncated_and_extended),
        cmocka_unit_test(test_recipient_hidden),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
