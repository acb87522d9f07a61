/* login: POST /api/v1/login: same-origin JSON only, throttled, the password checked off the
 * request threads. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_LOGIN_H
#define SP_LOGIN_H

#include <jansson.h>

#include "http.h"

typedef struct sp_login sp_login_t;

/* What the request's head says of a login (the method, a JSON body, our own pages): 0, or
 * the status to refuse it with and *MSG, before its body is read. */
unsigned sp_login_admit(sp_request_t *req, const char **msg);

/* Answers POST /api/v1/login with STORE (REQ's thread's reader). While the password is
 * checked (sp_auth_check_submit) the request is parked, its connection suspended, and the
 * request thread goes on serving others; this is called again on its resumption and then
 * answers. */
enum MHD_Result sp_login_handle(sp_request_t *req, sp_store_t *store);

/* The fields of a login's body {"user", "password"} (borrowed from BODY): 0, or -1 when
 * BODY is not an object or a field is missing, not a string or too long (the user name
 * over SP_LOGIN_USER_MAX bytes, the password over SP_LOGIN_PASSWORD_MAX). */
#define SP_LOGIN_USER_MAX     128
#define SP_LOGIN_PASSWORD_MAX 1024
int sp_login_fields(json_t *body, const char **user, const char **password);

/* Frees what a login left in REQ; at the request's end (nothing when REQ made none). */
void sp_login_free(sp_request_t *req);

#endif
