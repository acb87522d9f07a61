/* login: POST /api/v1/login: same-origin JSON only, throttled, the password checked off the
 * request threads. */
/* SPDX-License-Identifier: MIT */
#include "login.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "event.h"
#include "log.h"
#include "metrics.h"

#define BODY_MAX     (8u << 10) /* the login's body, the one read before credentials */
#define USER_MAX     SP_LOGIN_USER_MAX
#define PASSWORD_MAX SP_LOGIN_PASSWORD_MAX
/* How long each cookie a login sets lives; a session lives as long in the store. */
#define SESSION_S (14 * 24 * 3600)
#define SELF_S    (10 * 365 * 24 * 3600)
#define DEVICE_S  (365 * 24 * 3600)

/* A login (REQ->state), parked while its password is checked. */
typedef struct login {
    sp_auth_check_t check;
    sp_auth_attempt_t attempt;
    char user[USER_MAX + 1];
    bool refused; /* the pool was full: never checked */
} login_t;

/* J (its reference is taken) as the answer's body, with the headers every answer carries. */
static struct MHD_Response *json_response(sp_request_t *req, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp)
        abort();
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    sp_http_secure_headers(resp, false);
    sp_http_hsts(req, resp);
    return resp;
}

static enum MHD_Result queue(sp_request_t *req, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* Refused for a while: {"error", "retry_after"} and Retry-After. */
static enum MHD_Result wait_answer(sp_request_t *req, unsigned status, const char *msg,
                                   int retry_after)
{
    char seconds[16];
    sp_metric_inc(api_errors);
    struct MHD_Response *resp =
        json_response(req, json_pack("{s:s, s:i}", "error", msg, "retry_after", retry_after));
    if (retry_after > 0) {
        snprintf(seconds, sizeof(seconds), "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", seconds);
    }
    return queue(req, status, resp);
}

/* ---- what a login request must be ------------------------------------------------------ */

/* "application/json", with parameters or not (RFC 9110 8.3.1). A form or text/plain body is
 * what another site can make a browser send without asking (a "simple" request): login CSRF
 * (OWASP's Cross-Site Request Forgery Prevention Cheat Sheet). */
static bool json_content_type(const char *ct)
{
    static const char want[] = "application/json";
    if (!ct)
        return false;
    while (' ' == *ct || '\t' == *ct)
        ct++;
    if (0 != strncasecmp(ct, want, sizeof(want) - 1))
        return false;
    ct += sizeof(want) - 1;
    while (' ' == *ct || '\t' == *ct)
        ct++;
    return '\0' == *ct || ';' == *ct;
}

/* A browser says where a request comes from: Fetch Metadata's Sec-Fetch-Site, which it
 * computes itself (so a proxy that rewrites Host cannot spoil it), else Origin, sent with
 * every POST, which must then be ours (the Host the request came with, or --public-url). A
 * login must come from our own pages. Clients that are not browsers send neither, and
 * cannot be made to log a victim in. */
static bool same_origin(sp_request_t *req)
{
    const char *site = sp_http_header(req, "Sec-Fetch-Site");
    if (site)
        return 0 == strcasecmp(site, "same-origin") || 0 == strcasecmp(site, "none");
    const char *origin = sp_http_header(req, "Origin");
    if (!origin)
        return true;
    char ours[320];
    sp_http_origin(req, ours, sizeof(ours));
    return 0 == strcasecmp(origin, ours);
}

/* What the head of a login must say (the route table has its method), before its body is
 * read. */
static unsigned admit(sp_request_t *req, const char **msg)
{
    if (!json_content_type(sp_http_header(req, "Content-Type"))) {
        *msg = "login takes a JSON body (Content-Type: application/json)";
        return 415;
    }
    if (!same_origin(req)) {
        *msg = "login is taken from this server's own pages only";
        return 403;
    }
    return 0;
}

int sp_login_fields(json_t *body, const char **user, const char **password)
{
    *user = json_string_value(json_object_get(body, "user"));
    *password = json_string_value(json_object_get(body, "password"));
    if (!json_is_object(body) || !*user || !*password || strlen(*user) > USER_MAX ||
        strlen(*password) > PASSWORD_MAX)
        return -1;
    return 0;
}

/* ---- the answer once the password is checked ---------------------------------------------- */

static enum MHD_Result succeed(sp_request_t *req, sp_store_t *store, const char *user)
{
    char err[256], session[SP_AUTH_SECRET_MAX], csrf[SP_AUTH_SECRET_MAX], hash[SP_AUTH_HASH_MAX];
    char self[128], device[128], attrs[128];
    sp_auth_t *auth = req->ctx;
    sp_auth_new_secret("", session, sizeof(session));
    sp_auth_new_secret("", csrf, sizeof(csrf));
    sp_auth_secret_hash(session, hash, sizeof(hash));
    if (0 != store->ops->session_put(store, hash, user, csrf,
                                     sp_now_ms() + (int64_t)SESSION_S * 1000, err, sizeof(err))) {
        sp_log_error("store error", "error=\"%s\"", err);
        return sp_http_error(req, 500, "the store failed; see the server log");
    }
    sp_auth_note_dashboard_ip(auth, &req->client);
    sp_auth_self_cookie(auth, self, sizeof(self));
    sp_auth_device_cookie(auth, user, device, sizeof(device));

    struct MHD_Response *resp =
        json_response(req, json_pack("{s:s, s:s}", "user", user, "csrf", csrf));
    snprintf(attrs, sizeof(attrs), "Path=/; Max-Age=%d; HttpOnly; SameSite=Strict", SESSION_S);
    sp_http_set_cookie(req, resp, SP_COOKIE_SESSION, session, attrs);
    /* The self-view cookie must ride along with image loads inside webmail pages, which
     * are cross-site: SameSite=None there (it needs Secure), Lax over plain HTTP. */
    snprintf(attrs, sizeof(attrs), "Path=/; Max-Age=%d; HttpOnly; SameSite=%s", SELF_S,
             req->https ? "None" : "Lax");
    sp_http_set_cookie(req, resp, SP_COOKIE_SELF, self, attrs);
    /* The known-browser cookie goes to the login alone. */
    snprintf(attrs, sizeof(attrs), "Path=/api/v1/login; Max-Age=%d; HttpOnly; SameSite=Strict",
             DEVICE_S);
    sp_http_set_cookie(req, resp, SP_COOKIE_DEVICE, device, attrs);
    enum MHD_Result r = queue(req, 200, resp);
    sodium_memzero(session, sizeof(session));
    sp_log_info("login", "ip=%s", req->client_ip);
    return r;
}

/* Called again once the password is checked (or the pool refused it). */
static enum MHD_Result finish(sp_request_t *req)
{
    login_t *l = req->state;
    sp_auth_t *auth = req->ctx;
    if (l->refused) {
        sp_auth_login_end(auth, &l->attempt, false, sp_auth_now());
        return wait_answer(req, 503, "too many logins at once; try again in a second", 1);
    }
    bool ok = l->check.ok;
    sp_auth_login_end(auth, &l->attempt, !ok, sp_auth_now());
    if (!ok) {
        sp_metric_inc(login_failures);
        sp_log_warn("login failed", "ip=%s", req->client_ip);
        return sp_http_error(req, 401, "wrong user name or password");
    }
    sp_store_t *store = sp_http_reader(req);
    if (!store)
        return sp_http_error(req, 503, "the store is not available");
    return succeed(req, store, l->user);
}

/* On a pool thread: the password is checked; a request thread answers. */
static void checked(void *req)
{
    sp_http_resume(NULL, req);
}

/* ---- the first call -------------------------------------------------------------------------- */

static enum MHD_Result login(sp_request_t *req)
{
    login_t *l = req->state;
    sp_auth_t *auth = req->ctx;
    sp_store_t *store = sp_http_reader(req);
    if (!store)
        return sp_http_error(req, 503, "the store is not available");

    char msg[256];
    json_t *body = sp_http_body_json(req, msg, sizeof(msg));
    if (!body)
        return sp_http_error(req, 400, msg);
    const char *user, *password;
    if (0 != sp_login_fields(body, &user, &password)) {
        json_decref(body);
        return sp_http_error(req, 400, "expected {\"user\": \"...\", \"password\": \"...\"}");
    }

    char device[128], err[256];
    bool has_device = sp_http_cookie(req, SP_COOKIE_DEVICE, device, sizeof(device));
    int retry_after = 0;
    if (!sp_auth_login_begin(auth, &req->client, user, has_device ? device : NULL, sp_auth_now(),
                             &l->attempt, &retry_after)) {
        json_decref(body);
        return wait_answer(req, 429, "too many failed logins; try again later", retry_after);
    }
    int rc = store->ops->user_get(store, user, l->check.pwhash, sizeof(l->check.pwhash), err,
                                  sizeof(err));
    if (rc < 0) {
        sp_auth_login_end(auth, &l->attempt, false, sp_auth_now());
        json_decref(body);
        sp_log_error("store error", "error=\"%s\"", err);
        return sp_http_error(req, 500, "the store failed; see the server log");
    }
    if (rc > 0)
        l->check.pwhash[0] = '\0'; /* checked against a dummy all the same */
    snprintf(l->user, sizeof(l->user), "%s", user);
    snprintf(l->check.password, sizeof(l->check.password), "%s", password);
    json_decref(body);
    sodium_memzero(req->body, req->body_len);
    l->check.done = checked;
    l->check.ctx = req;

    /* Parked before it is queued, for the check may end at once. */
    if (!sp_http_park(req, finish)) {
        sp_auth_login_end(auth, &l->attempt, false, sp_auth_now());
        return wait_answer(req, 503, "the server is shutting down", 1);
    }
    if (0 != sp_auth_check_submit(auth, &l->check)) {
        l->refused = true;
        sp_http_resume(NULL, req); /* answered from the next call */
    }
    return MHD_YES;
}

/* At the request's end: no password or hash outlives it. */
static void wipe(sp_request_t *req)
{
    sodium_memzero(req->state, sizeof(login_t));
}

static const sp_route_t routes[] = {
    {
        .path = "/api/v1/login",
        .methods = SP_HTTP_POST,
        .body_max = BODY_MAX,
        .admit = admit,
        .handle = login,
        .state_size = sizeof(login_t),
        .done = wipe,
    },
};

void sp_login_routes(sp_http_routes_t *table, sp_auth_t *auth)
{
    sp_http_routes_add(table, routes, sizeof(routes) / sizeof(routes[0]), auth);
}
