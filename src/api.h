/* api: the JSON API under /api/v1 (campaigns, events, exports, login, creator). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_API_H
#define SP_API_H

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

#endif
