/* fuzz_cookie: the Cookie header: sp_event_cookie, the visitor and self-view cookie checks,
 * and the cookies' JSON. */
/* SPDX-License-Identifier: MIT */
#include "../src/pipeline/event.c"
#include "../src/server/pixel.c"

#include <sodium.h>

#include "fuzz.h"

/*
 * The input is a Cookie header's value. It is read as the pixel reads it (the visitor
 * cookie "spv", checked by visitor_valid; the self-view cookie "sp_self", checked against
 * its signature) and as the API reads the session cookie, with the buffer sizes they use
 * and with tiny ones; then recorded as an event's cookies in JSON, which must be valid JSON
 * and, on the fast path, the bytes jansson writes.
 */

static const unsigned char key[SP_AUTH_KEY_BYTES] = "spypixel fuzz key, not a secret";

/* Looks NAME up with a LEN-byte buffer and checks the answer is a string that fits. */
static int lookup(const char *header, const char *name, char *buf, size_t len)
{
    memset(buf, 'x', len);
    int rc = sp_event_cookie(header, name, buf, len);
    FUZZ_CHECK(0 == rc || -1 == rc);
    if (0 == rc) {
        FUZZ_CHECK(fuzz_terminated(buf, len));
        FUZZ_CHECK(NULL == strchr(buf, ';')); /* a value ends at the next pair */
    }
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sp_auth_t *auth;
    if (!auth) {
        if (sodium_init() < 0)
            abort();
        auth = sp_auth_new(key, 0);
    }
    if (size > SP_HEADER_MAX)
        size = SP_HEADER_MAX; /* what an event keeps of one header */
    char *header = fuzz_text(data, size);

    char value[128], session[256], tiny[2];
    if (0 == lookup(header, VISITOR_COOKIE, value, sizeof(value)) && visitor_valid(value))
        FUZZ_CHECK(32 == strlen(value) && strspn(value, "0123456789abcdef") == 32);
    if (0 == lookup(header, SP_COOKIE_SELF, value, sizeof(value)))
        (void)sp_auth_self_cookie_valid(auth, value);
    lookup(header, "sp_session", session, sizeof(session));
    lookup(header, "", value, sizeof(value));
    lookup(header, VISITOR_COOKIE, tiny, sizeof(tiny));
    lookup(header, VISITOR_COOKIE, tiny, 1);
    FUZZ_CHECK(-1 == sp_event_cookie(header, VISITOR_COOKIE, tiny, 0));

    sp_event_t *ev = sp_event_new(2 * SP_HEADER_MAX);
    FUZZ_CHECK(0 == sp_event_add_header(ev, "Cookie", 6, header, strlen(header)));
    char *fast = sp_event_cookies_json(ev), *general = cookies_json_general(ev);
    json_t *j = json_loads(fast, 0, NULL);
    FUZZ_CHECK(j && json_is_object(j)); /* the API would show {} for anything else */
    json_decref(j);
    FUZZ_CHECK(0 == strcmp(fast, general));
    free(fast);
    free(general);
    sp_event_free(ev);
    free(header);
    return 0;
}
