/* fuzz_api: the bodies and IDs the JSON API parses (api.c), without a server. */
/* SPDX-License-Identifier: MIT */
#include "../src/server/api.c"

#include "fuzz.h"
#include "login.h"

/*
 * The first byte picks the route, the rest is what the client sent:
 *  0 POST /api/v1/login       a JSON body: {"user", "password"}
 *  1 POST /api/v1/campaigns   a JSON body: {"id"}
 *  2 POST /api/v1/pixels      a JSON body: {"campaign", "recipient"}
 *  3 POST /api/v1/links       a JSON body: {"campaign", "recipient", "target"}
 *  4 POST /api/v1/images      "campaign\nrecipient\n" (the query's values) then the image
 * Each goes through the same functions as the route (body_json, then the route's fields),
 * and what a route accepts must be what it goes on to use: IDs that pass sp_event_id_valid,
 * a token that opens to the same fields, an image kind its magic bytes say.
 */

static const unsigned char key[SP_AUTH_KEY_BYTES] = "spypixel fuzz key, not a secret";

static void check_token(const sp_token_data_t *d)
{
    static sp_token_t *tokens;
    if (!tokens)
        tokens = sp_token_new(key);
    char text[SP_TOKEN_MAX];
    sp_token_data_t back;
    FUZZ_CHECK(0 == sp_token_seal(tokens, d, text, sizeof(text)));
    FUZZ_CHECK(0 == sp_token_open(tokens, text, strlen(text), &back));
    FUZZ_CHECK(back.kind == d->kind && 0 == strcmp(back.campaign, d->campaign) &&
               0 == strcmp(back.recipient, d->recipient) && 0 == strcmp(back.extra, d->extra));
}

static void json_route(int route, const char *body, size_t len)
{
    sp_request_t req = {.body = (char *)body, .body_len = len};
    char msg[256];
    json_t *j = sp_http_body_json(&req, msg, sizeof(msg));
    if (!j) {
        /* The 400 answer sp_http_error builds around it: JSON needs the message in UTF-8. */
        FUZZ_CHECK(fuzz_terminated(msg, sizeof(msg)) && msg[0]);
        json_t *answer = json_pack("{s:s}", "error", msg);
        FUZZ_CHECK(answer);
        json_decref(answer);
        return;
    }
    FUZZ_CHECK(json_is_object(j));
    const char *user = NULL, *password = NULL, *id = NULL;
    sp_token_data_t data = {.kind = 3 == route ? SP_TOKEN_CLICK : SP_TOKEN_OPEN};
    switch (route) {
    case 0:
        if (0 == sp_login_fields(j, &user, &password))
            FUZZ_CHECK(user && password && strlen(user) <= SP_LOGIN_USER_MAX &&
                       strlen(password) <= SP_LOGIN_PASSWORD_MAX);
        break;
    case 1:
        if (0 == campaign_fields(j, &id))
            FUZZ_CHECK(sp_event_id_valid(id));
        break;
    default:
        if (0 == url_fields(j, &data, msg, sizeof(msg))) {
            FUZZ_CHECK(sp_event_id_valid(data.campaign));
            FUZZ_CHECK(!data.recipient[0] || sp_event_id_valid(data.recipient));
            /* What sp_pixel_click demands of the token's target before it redirects. */
            FUZZ_CHECK(SP_TOKEN_CLICK != data.kind || 0 == strncmp(data.extra, "http://", 7) ||
                       0 == strncmp(data.extra, "https://", 8));
            check_token(&data);
        } else {
            FUZZ_CHECK(msg[0] && fuzz_terminated(msg, sizeof(msg)));
        }
    }
    json_decref(j);
}

static void image_route(const uint8_t *data, size_t size)
{
    /* The query's values, then the body. */
    char campaign[256] = "", recipient[256] = "";
    char *fields[] = {campaign, recipient};
    for (size_t f = 0; f < 2; f++) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t)(nl - data) : 0;
        if (!nl)
            break;
        if (n < 256) {
            memcpy(fields[f], data, n);
            fields[f][n] = '\0';
        }
        data = nl + 1;
        size -= n + 1;
    }
    bool ids = sp_event_id_valid(campaign) && (!*recipient || sp_event_id_valid(recipient));
    const char *ext = NULL;
    const char *mime = image_kind(data, size, &ext);
    if (!mime)
        return;
    FUZZ_CHECK(ext && (0 == strncmp(mime, "image/", 6)));
    FUZZ_CHECK(size >= 7); /* the shortest magic (JPEG's) and 4 bytes more */
    if (ids) {
        sp_token_data_t d = {.kind = SP_TOKEN_IMAGE};
        /* Valid IDs are at most SP_ID_MAX bytes (sp_event_id_valid): the precision says so to
         * the compiler. */
        snprintf(d.campaign, sizeof(d.campaign), "%.*s", SP_ID_MAX, campaign);
        snprintf(d.recipient, sizeof(d.recipient), "%.*s", SP_ID_MAX, recipient);
        snprintf(d.extra, sizeof(d.extra), "00112233445566778899aabbccddeeff");
        check_token(&d);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (0 == size)
        return 0;
    int route = data[0] % 5; /* the paths of the API's routes: fuzz_route */
    data++;
    size--;
    if (route <= 3) {
        if (size > BODY_MAX)
            return 0;
        /* A body as http.c gathers it: its bytes, then a NUL past them. */
        char *body = fuzz_text(data, size);
        json_route(route, body, size);
        free(body);
    } else {
        image_route(data, size);
    }
    return 0;
}
