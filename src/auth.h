/* auth: passwords, API tokens, sessions, the login limiter and self-view recognition. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_AUTH_H
#define SP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define SP_AUTH_KEY_BYTES      32
#define SP_AUTH_SECRET_MAX     64  /* a session or API token as handed out, NUL included */
#define SP_AUTH_HASH_MAX       65  /* hex of a 32-byte hash, NUL included */
#define SP_AUTH_LOGIN_TRIES    5   /* failures allowed per address and per user ... */
#define SP_AUTH_LOGIN_WINDOW_S 900 /* ... within this many seconds */

typedef struct sp_auth sp_auth_t;

/* KEY is the server's secret (shared by every server on one store); SELF_IP_WINDOW_MIN
 * enables the recent-dashboard-IP self-view rule (0: off). */
sp_auth_t *sp_auth_new(const unsigned char key[SP_AUTH_KEY_BYTES], int self_ip_window_min);
void sp_auth_free(sp_auth_t *a);

/* argon2id (libsodium's interactive limits). 0 or -1 (out of memory). */
int sp_auth_password_hash(const char *password, char *out, size_t len);
bool sp_auth_password_check(const char *hash, const char *password);

/* A fresh random secret "PREFIX" + 43 base64url characters. */
void sp_auth_new_secret(const char *prefix, char *out, size_t len);
/* The hex hash a secret is stored as (secrets are never stored in clear). */
void sp_auth_secret_hash(const char *secret, char *out, size_t len);

/* Login limiter: false (and the seconds to wait) when IP or USER failed too often. A
 * KNOWN_BROWSER (one that carries our self-view cookie, so it logged in before) is held
 * to its address's limit only: failures from elsewhere cannot lock the owner out. */
bool sp_auth_login_allowed(sp_auth_t *a, const sp_net_addr_t *ip, const char *user,
                           bool known_browser, int *retry_after);
void sp_auth_login_failed(sp_auth_t *a, const sp_net_addr_t *ip, const char *user);
void sp_auth_login_succeeded(sp_auth_t *a, const sp_net_addr_t *ip, const char *user);

/* The self-view cookie value: signed, so that a pixel request can check it without the
 * store. */
void sp_auth_self_cookie(sp_auth_t *a, char *out, size_t len);
bool sp_auth_self_cookie_valid(sp_auth_t *a, const char *value);

/* The visitor ID of a client seen without the visitor cookie: a keyed hash of its
 * address and user agent (32 hex digits into OUT, at least 33 bytes). The same client
 * gets the same ID whether or not it keeps the cookie, so unique views never count a
 * client twice. */
void sp_auth_visitor_id(sp_auth_t *a, const char *ip, const char *user_agent, char *out,
                        size_t len);

/* Remembers that IP used the dashboard now / asks whether it did within the window. */
void sp_auth_note_dashboard_ip(sp_auth_t *a, const sp_net_addr_t *ip);
bool sp_auth_recent_dashboard_ip(sp_auth_t *a, const sp_net_addr_t *ip);

#endif
