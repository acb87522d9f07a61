/* api: the JSON API under /api/v1 (campaigns, events, exports, login, creator). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_H
#define SP_API_H

#include <jansson.h>

#include "http.h"

/* Answers every request under /api/. */
enum MHD_Result sp_api_handle(sp_request_t *req);

/* The first look at a request under /api/ that carries a body, once its head is in and
 * before any of the body is read: 0 with *BODY_MAX, the most it may send (0: it is read
 * and dropped, as for a GET) and *VOUCHED (credentials came with it), or the status to
 * refuse it with and *MSG. Only the login takes a body without credentials. */
unsigned sp_api_admit(sp_request_t *req, size_t *body_max, bool *vouched, const char **msg);

/* Whether REQ carries a valid API token (Authorization: Bearer). */
bool sp_api_bearer_valid(sp_request_t *req);

/* REQ's body as a JSON object (a new reference), or NULL with a message for a 400 answer in
 * MSG (UTF-8 whatever the body held). */
json_t *sp_api_body_json(sp_request_t *req, char *msg, size_t len);

#endif
