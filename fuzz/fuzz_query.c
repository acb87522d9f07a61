/* fuzz_query: the pixel's query string: percent-decoding (http.c's unescape) and ID checks. */
/* SPDX-License-Identifier: MIT */
#include "../src/server/http.c"

#include "fuzz.h"

/*
 * The input is a query string as a client sends it ("campaign=news&email=ann%40example.com").
 * libmicrohttpd splits it at '&' and '=', turns '+' into ' ' and hands each name and value to
 * the unescape callback; the pixel then checks campaign and email with sp_event_id_valid.
 * This does the same, then checks what the decoder and the validator promise.
 */

static bool id_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("-_@+.", c);
}

static void check_id(const char *s)
{
    bool valid = sp_event_id_valid(s);
    size_t n = strlen(s);
    bool expect = n >= 1 && n <= SP_ID_MAX;
    for (size_t i = 0; expect && i < n; i++)
        expect = id_char((unsigned char)s[i]);
    FUZZ_CHECK(valid == expect);
}

/* Decodes S in place as libmicrohttpd would have it decoded; returns its new length. */
static size_t decode(char *s)
{
    size_t before = strlen(s), plus = 0;
    for (char *p = s; *p; p++)
        if ('+' == *p) {
            *p = ' ';
            plus++;
        }
    size_t n = unescape(NULL, NULL, s);
    /* Each '+' the client sent is a '+' again (a "%20" is the only way to a space). */
    size_t plus_after = 0;
    for (const char *p = s; *p; p++)
        plus_after += '+' == *p;
    FUZZ_CHECK(plus_after >= plus);
    FUZZ_CHECK(n == strlen(s)); /* a %00 never cuts the value short */
    FUZZ_CHECK(n <= before);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *query = fuzz_text(data, size);
    const char *campaign = NULL, *email = NULL;
    char *save = NULL;
    for (char *pair = strtok_r(query, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        char *value = eq ? eq + 1 : pair + strlen(pair);
        if (eq)
            *eq = '\0';
        decode(pair);
        decode(value);
        check_id(value);
        if (!campaign && 0 == strcmp(pair, "campaign"))
            campaign = value;
        else if (!email && 0 == strcmp(pair, "email"))
            email = value;
    }
    /* What sp_pixel_seed decides: an open is recorded only for valid IDs. */
    if (email && !*email)
        email = NULL;
    bool record = sp_event_id_valid(campaign) && (!email || sp_event_id_valid(email));
    FUZZ_CHECK(!record ||
               (strlen(campaign) <= SP_ID_MAX && (!email || strlen(email) <= SP_ID_MAX)));
    free(query);
    return 0;
}
