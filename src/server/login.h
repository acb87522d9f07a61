/* login: POST /api/v1/login: same-origin JSON only, throttled, the password checked off the
 * request threads. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_LOGIN_H
#define SP_LOGIN_H

#include <jansson.h>

#include "auth.h"
#include "http.h"

/* Adds POST /api/v1/login, with AUTH (borrowed for the server's life). Its head is judged
 * before its body (at most 8 KiB) is read: JSON only (415), from this server's own pages only
 * (403). While the password is checked (sp_auth_check_submit) the request is parked and the
 * request thread goes on serving others; a full pool answers 503, as does a shutdown. */
void sp_login_routes(sp_http_routes_t *routes, sp_auth_t *auth);

/* The fields of a login's body {"user", "password"} (borrowed from BODY): 0, or -1 when
 * BODY is not an object or a field is missing, not a string or too long (the user name
 * over SP_LOGIN_USER_MAX bytes, the password over SP_LOGIN_PASSWORD_MAX). */
#define SP_LOGIN_USER_MAX     128
#define SP_LOGIN_PASSWORD_MAX 1024
int sp_login_fields(json_t *body, const char **user, const char **password);

#endif
