/* api: the JSON API under /api/v1 (campaigns, events, exports, the creator). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_H
#define SP_API_H

#include <jansson.h>

#include "auth.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"
#include "live.h"
#include "token.h"

/* What the API works with, borrowed for the server's life. */
typedef struct sp_api {
    sp_auth_t *auth;       /* sessions, dashboard addresses */
    sp_token_t *tokens;    /* seals the creator's URLs */
    sp_journal_t *journal; /* adoptions append to it; reads wait until it is indexed */
    sp_ingest_t *ingest;
    sp_live_t *live; /* the event streams */
} sp_api_t;

/* Adds every route under /api/ but the login (login.h). Each needs credentials (401: an API
 * token, or a session and, for a request that changes something, its CSRF token: 403); the
 * routes that take a body take at most 1 MiB (8 MiB for POST /api/v1/images). A read waits
 * (parked, at most a second) until the store holds every open answered before it. */
void sp_api_routes(sp_http_routes_t *routes, sp_api_t *api);

/* Whether REQ carries a valid API token (Authorization: Bearer); false also when the store
 * cannot be read. */
bool sp_api_bearer_valid(sp_request_t *req);

#endif
