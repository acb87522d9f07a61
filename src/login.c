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

#include "api.h"
#include "log.h"
#include "metrics.h"

#define SESSION_TTL_MS (14LL * 24 * 3600 * 1000)
#define USER_MAX       SP_LOGIN_USER_MAX
#define PASSWORD_MAX   SP_LOGIN_PASSWORD_MAX

/* A login parked while its password is checked: REQ->login from the first call to the end. */
struct sp_login {
    sp_auth_check_t check;
    sp_auth_attempt_t attempt;
    sp_request_t *req;
    char user[USER_MAX + 1];
    bool parked;  /* counted in srv->parked */
    bool refused; /* the pool was full: never checked */
};

static enum MHD_Result answer(sp_request_t *req, unsigned status, json_t *j, int retry_after)
{
    char *text = json_dumps(j, JSON_COMPACT), seconds[16];
    json_decref(j);
    if (!text)
        abort();
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (retry_after > 0) {
        snprintf(seconds, sizeof(seconds), "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", seconds);
    }
    sp_http_secure_headers(resp, false);
    sp_http_hsts(req, resp);
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result wait_answer(sp_request_t *req, unsigned status, const char *msg,
                                   int retry_after)
{
    sp_metric_inc(api_errors);
    return answer(req, status, json_pack("{s:s, s:i}", "error", msg, "retry_after", retry_after),
                  retry_after);
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

static bool cookie_value(sp_request_t *req, const char *name, char *buf, size_t len)
{
    return 0 == sp_event_cookie(sp_http_header(req, "Cookie"), name, buf, len);
}

static void add_cookie(struct MHD_Response *resp, sp_request_t *req, const char *name,
                       const char *value, const char *attrs)
{
    char cookie[512];
    snprintf(cookie, sizeof(cookie), "%s=%s; %s%s", name, value, attrs,
             req->https ? "; Secure" : "");
    MHD_add_response_header(resp, "Set-Cookie", cookie);
}

/* ---- the answer once the password is checked ---------------------------------------------- */

static enum MHD_Result succeed(sp_request_t *req, sp_store_t *store, const char *user)
{
    char err[256], session[SP_AUTH_SECRET_MAX], csrf[SP_AUTH_SECRET_MAX], hash[SP_AUTH_HASH_MAX];
    char self[128], device[128];
    sp_auth_t *auth = req->srv->auth;
    sp_auth_new_secret("", session, sizeof(session));
    sp_auth_new_secret("", csrf, sizeof(csrf));
    sp_auth_secret_hash(session, hash, sizeof(hash));
    if (0 != store->ops->session_put(store, hash, user, csrf, sp_now_ms() + SESSION_TTL_MS, err,
                                     sizeof(err))) {
        sp_log_error("store error", "error=\"%s\"", err);
        return sp_http_error(req, 500, "the store failed; see the server log");
    }
    sp_auth_note_dashboard_ip(auth, &req->client);
    sp_auth_self_cookie(auth, self, sizeof(self));
    sp_auth_device_cookie(auth, user, device, sizeof(device));

    json_t *j = json_pack("{s:s, s:s}", "user", user, "csrf", csrf);
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
    add_cookie(resp, req, SP_COOKIE_SESSION, session,
               "Path=/; Max-Age=1209600; HttpOnly; SameSite=Strict");
    /* The self-view cookie must ride along with image loads inside webmail pages, which
     * are cross-site: SameSite=None there (it needs Secure), Lax over plain HTTP. */
    add_cookie(resp, req, SP_COOKIE_SELF, self,
               req->https ? "Path=/; Max-Age=315360000; HttpOnly; SameSite=None"
                          : "Path=/; Max-Age=315360000; HttpOnly; SameSite=Lax");
    /* The known-browser cookie goes to the login alone. */
    add_cookie(resp, req, SP_COOKIE_DEVICE, device,
               "Path=/api/v1/login; Max-Age=31536000; HttpOnly; SameSite=Strict");
    enum MHD_Result r = MHD_queue_response(req->conn, 200, resp);
    MHD_destroy_response(resp);
    sodium_memzero(session, sizeof(session));
    sp_log_info("login", "ip=%s", req->client_ip);
    return r;
}

static void unpark(sp_login_t *l)
{
    if (l->parked) {
        l->parked = false;
        atomic_fetch_sub(&l->req->srv->parked, 1);
    }
}

static enum MHD_Result finish(sp_request_t *req, sp_store_t *store)
{
    sp_login_t *l = req->login;
    sp_auth_t *auth = req->srv->auth;
    unpark(l);
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
    return succeed(req, store, l->user);
}

/* On a pool thread: the password is checked; the request thread answers. */
static void checked(void *ctx)
{
    sp_login_t *l = ctx;
    MHD_resume_connection(l->req->conn);
}

/* ---- the first call -------------------------------------------------------------------------- */

unsigned sp_login_admit(sp_request_t *req, const char **msg)
{
    if (0 != strcmp(req->method, "POST")) {
        *msg = "use POST";
        return 405;
    }
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

enum MHD_Result sp_login_handle(sp_request_t *req, sp_store_t *store)
{
    if (req->login)
        return finish(req, store);
    const char *refusal = NULL;
    unsigned status = sp_login_admit(req, &refusal);
    if (status)
        return sp_http_error(req, status, refusal);

    char msg[256];
    json_t *body = sp_api_body_json(req, msg, sizeof(msg));
    if (!body)
        return sp_http_error(req, 400, msg);
    const char *user, *password;
    if (0 != sp_login_fields(body, &user, &password)) {
        json_decref(body);
        return sp_http_error(req, 400, "expected {\"user\": \"...\", \"password\": \"...\"}");
    }

    char device[128], err[256];
    bool has_device = cookie_value(req, SP_COOKIE_DEVICE, device, sizeof(device));
    sp_auth_t *auth = req->srv->auth;
    sp_login_t *l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    int retry_after = 0;
    if (!sp_auth_login_begin(auth, &req->client, user, has_device ? device : NULL, sp_auth_now(),
                             &l->attempt, &retry_after)) {
        free(l);
        json_decref(body);
        return wait_answer(req, 429, "too many failed logins; try again later", retry_after);
    }
    int rc = store->ops->user_get(store, user, l->check.pwhash, sizeof(l->check.pwhash), err,
                                  sizeof(err));
    if (rc < 0) {
        sp_auth_login_end(auth, &l->attempt, false, sp_auth_now());
        free(l);
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
    l->check.ctx = l;
    l->req = req;

    /* Parked: counted before closing is looked at, as in pixel.c, so that a shutdown waits
     * for it; suspended before it is queued, for the check may end at once. */
    atomic_fetch_add(&req->srv->parked, 1);
    if (atomic_load(&req->srv->closing)) {
        atomic_fetch_sub(&req->srv->parked, 1);
        sp_auth_login_end(auth, &l->attempt, false, sp_auth_now());
        sodium_memzero(l, sizeof(*l));
        free(l);
        return wait_answer(req, 503, "the server is shutting down", 1);
    }
    l->parked = true;
    req->login = l;
    MHD_suspend_connection(req->conn);
    if (0 != sp_auth_check_submit(auth, &l->check)) {
        l->refused = true;
        MHD_resume_connection(req->conn); /* answered from the next call */
    }
    return MHD_YES;
}

void sp_login_free(sp_request_t *req)
{
    sp_login_t *l = req->login;
    if (!l)
        return;
    unpark(l);
    sodium_memzero(l, sizeof(*l));
    free(l);
    req->login = NULL;
}
