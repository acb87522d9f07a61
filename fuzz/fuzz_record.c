/* fuzz_record: a journal record's payload decoded (sp_event_decode) and shown as JSON. */
/* SPDX-License-Identifier: MIT */
#include "../src/pipeline/event.c"

#include "serialize.h"
#include "fuzz.h"

/*
 * The writer decodes each journal payload into an event, and what it stored is shown as
 * JSON (the API, the live stream, webhooks). For any bytes: sp_event_decode returns NULL or
 * an event whose journal form is those same bytes (flag bits it does not know aside), the
 * headers' and cookies' JSON are valid JSON, and their fast path writes what jansson writes.
 */

/* The byte of the flags in a record: after the time (8) and the kind (1). */
#define FLAGS_AT    9
#define FLAGS_KNOWN (FLAG_SELF_REFERER | FLAG_SELF_COOKIE | FLAG_SELF_IP | FLAG_V4 | FLAG_ADOPTED)

static void check_json(char *fast, char *general)
{
    FUZZ_CHECK(fast && general);
    json_error_t e;
    json_t *j = json_loads(fast, 0, &e);
    FUZZ_CHECK(j && json_is_object(j)); /* the API falls back to {} on anything else */
    json_decref(j);
    FUZZ_CHECK(0 == strcmp(fast, general));
    free(fast);
    free(general);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sp_event_t *ev = sp_event_decode(data, size);
    if (!ev)
        return 0;
    FUZZ_CHECK(ev->n_headers <= SP_HEADERS_MAX);
    FUZZ_CHECK(fuzz_terminated(ev->campaign, sizeof(ev->campaign)));
    FUZZ_CHECK(fuzz_terminated(ev->recipient, sizeof(ev->recipient)));
    FUZZ_CHECK(strnlen(ev->target, SP_TARGET_MAX + 1) <= SP_TARGET_MAX);
    FUZZ_CHECK(fuzz_terminated(ev->ip, sizeof(ev->ip)));
    FUZZ_CHECK(fuzz_terminated(ev->visitor, sizeof(ev->visitor)));

    unsigned char *again = malloc(SP_EVENT_ENCODED_MAX);
    if (!again)
        abort();
    size_t n = sp_event_encode(ev, again);
    FUZZ_CHECK(n == size);
    FUZZ_CHECK(0 == memcmp(again, data, FLAGS_AT));
    FUZZ_CHECK(again[FLAGS_AT] == (data[FLAGS_AT] & FLAGS_KNOWN));
    FUZZ_CHECK(0 == memcmp(again + FLAGS_AT + 1, data + FLAGS_AT + 1, size - FLAGS_AT - 1));
    free(again);

    char *headers = sp_event_headers_json(ev);
    check_json(headers, headers_json_general(ev));
    check_json(sp_event_cookies_json(ev), cookies_json_general(ev));

    /* As the live stream and webhooks show it. */
    json_t *j = sp_serialize_event(sp_event_row(ev));
    char *text = json_dumps(j, JSON_COMPACT);
    FUZZ_CHECK(text);
    free(text);
    json_decref(j);
    sp_event_free(ev);
    return 0;
}
