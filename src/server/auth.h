/* auth: passwords, API tokens, sessions, the login limiter and self-view recognition. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_AUTH_H
#define SP_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define SP_AUTH_KEY_BYTES  32
#define SP_AUTH_SECRET_MAX 64 /* a session or API token as handed out, NUL included */
#define SP_AUTH_HASH_MAX   65 /* hex of a 32-byte hash, NUL included */
/* Login throttling (OWASP's "Blocking Brute Force Attacks" and device cookies): each
 * client address (an IPv6 /64), each account and each known browser has its own count of
 * failures. Past its free tries each further attempt waits 1, 2, 4, 8 minutes, then up to
 * SP_AUTH_BACKOFF_MAX_S after the last failure; a count is forgotten SP_AUTH_FORGET_S after
 * its last failure. */
#define SP_AUTH_LOGIN_FREE      5    /* failures of one address, or of one known browser */
#define SP_AUTH_ACCOUNT_FREE    10   /* failures of one account from browsers it does not know */
#define SP_AUTH_BACKOFF_FIRST_S 60   /* the first wait, doubled with each failure */
#define SP_AUTH_BACKOFF_MAX_S   900  /* the longest wait */
#define SP_AUTH_FORGET_S        3600 /* counts end this long after their last failure */

typedef struct sp_auth sp_auth_t;

struct sp_store;

/* The server's secret, which seals tokens and keys cookies and visitor IDs: made once and kept
 * in store S's meta, so that every server and command on one store signs and checks the same;
 * never changed once made. *MADE (may be NULL) says this call made it. 0, or -1 + ERR (the
 * store failed, or holds a damaged key). */
int sp_auth_secret_key(struct sp_store *s, unsigned char key[SP_AUTH_KEY_BYTES], bool *made,
                       char *err, size_t errlen);

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

/* The limiter's clock: seconds on CLOCK_MONOTONIC. */
int64_t sp_auth_now(void);

/* What a login attempt was charged with, given back if it was not a failure. */
typedef struct sp_auth_attempt {
    uint64_t keys[2];
    int n;
} sp_auth_attempt_t;

/* Whether a login for USER from IP may have its password checked at NOW (sp_auth_now).
 * DEVICE is the known-browser cookie the request carried (NULL when none); one issued to
 * USER's browser (sp_auth_device_cookie) holds the attempt to that browser's own count, so
 * that failures from elsewhere never lock the owner out. Any other attempt is held to its
 * address's count and its account's; the account counts at most SP_AUTH_LOGIN_FREE failures
 * from one address, so that a guesser at one address slows only that address. An allowed
 * attempt is counted as a failure at once (parallel attempts cannot slip through together)
 * in *ATT; sp_auth_login_end gives it back unless it failed. False, and the seconds to wait
 * in *RETRY_AFTER, when it must wait. */
bool sp_auth_login_begin(sp_auth_t *a, const sp_net_addr_t *ip, const char *user,
                         const char *device, int64_t now, sp_auth_attempt_t *att, int *retry_after);
/* At NOW, the end of the attempt ATT. FAILED: the password was wrong, and the wait starts
 * now. Otherwise (right, or never checked) ATT's own charge is given back: nobody's success
 * takes back anyone else's failures. */
void sp_auth_login_end(sp_auth_t *a, const sp_auth_attempt_t *att, bool failed, int64_t now);

/* The known-browser cookie for USER's browser, set at a successful login: a random nonce
 * and a MAC binding it to USER ("NONCE.MAC" in base64url), so it vouches for no other
 * account. */
void sp_auth_device_cookie(sp_auth_t *a, const char *user, char *out, size_t len);
bool sp_auth_device_cookie_valid(sp_auth_t *a, const char *user, const char *value);

/* Password checks off the request threads: argon2id takes tens of milliseconds of a core
 * and 64 MiB, so a small pool of low-priority threads runs them, with a bounded queue. */
typedef struct sp_auth_check {
    char pwhash[256];        /* "" for a user that does not exist: a dummy hash is checked */
    char password[1025];     /* wiped once checked */
    bool ok;                 /* the answer, set before DONE is called */
    void (*done)(void *ctx); /* called on a pool thread; CTX is the caller's */
    void *ctx;
    struct sp_auth_check *next;
} sp_auth_check_t;

/* Queues CHECK, which the caller owns and keeps until DONE runs. The threads start on first
 * use. 0, or -1 (nothing queued) when SP_AUTH_CHECKS_PER_THREAD checks per thread are
 * already running or waiting, or the pool is stopping. */
#define SP_AUTH_CHECKS_PER_THREAD 4
int sp_auth_check_submit(sp_auth_t *a, sp_auth_check_t *check);

/* Runs every queued check (each DONE is called) and stops the threads; later submissions
 * fail. Idempotent; sp_auth_free calls it too. */
void sp_auth_checks_stop(sp_auth_t *a);

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
