/* http: the libmicrohttpd daemons, the route table, request state, parking and limits. */
/* SPDX-License-Identifier: MIT */
#include "http.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "event.h"
#include "guard.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "tls.h"
#include "utf8.h"
#include "text.h"

/* libmicrohttpd's memory per connection: the request's headers, its parsed fields and the
 * answer's headers live in it. It zeroes all of it between the requests of a keep-alive
 * connection, which showed as 5-8% of a core's time at 32 KiB. 16 KiB still takes header
 * blocks twice as large as nginx's 8 KiB per line; larger ones get 431. */
#define SP_CONNECTION_MEMORY ((size_t)16 * 1024)

struct sp_http {
    const sp_config_t *cfg;
    sp_http_routes_t routes;
    sp_listen_t listen[SP_CONFIG_LIST_MAX]; /* the --listen addresses */
    /* THREADS daemons for each address, each with one thread and a listening socket of its
     * own (sp_listen_open_group): address I's are at [I * THREADS, (I + 1) * THREADS). */
    struct MHD_Daemon **daemons;
    size_t n_daemons;
    unsigned threads;
    sp_tls_t *tls;            /* NULL without --tls-cert */
    sp_guard_t *guard;        /* head deadline, per-address cap, shedding */
    atomic_size_t body_bytes; /* request bodies in flight, against cfg->body_memory */
    pthread_key_t reader_key; /* each request thread's own store connection */
    bool reader_key_made;
    /* Parked requests (sp_http_park). Shutdown: once closing is set, no request is parked;
     * sp_http_drain waits until none is before the daemons stop. */
    atomic_bool closing;
    atomic_int parked;
};

/* Per-connection state, libmicrohttpd's socket context: from accept to close. */
typedef struct connection {
    sp_guard_conn_t guard;
    void *tls_hold; /* the certificate its TLS handshake took (tls.h), or NULL */
    void *data;     /* one handler's (sp_http_set_conn_data), freed with data_free */
    void (*data_free)(void *);
} connection_t;

typedef struct param {
    size_t off, len; /* in the path */
} param_t;

/* Per-request state, libmicrohttpd's con_cls from the first call to completion: what the
 * handler sees (PUB, first), what the core keeps, and the route's own state. */
typedef struct request {
    sp_request_t pub;
    sp_http_t *http;
    connection_t *connection;
    /* The route that takes it. When none does, ALLOWED is the methods its path takes (405)
     * and ROUTE the first whose path matches; or ALLOWED is 0 and ROUTE NULL (404). */
    const sp_route_t *route;
    unsigned allowed;
    param_t params[SP_HTTP_PARAMS_MAX];
    size_t body_max; /* BODY's room (counted in http->body_bytes); 0: no body kept */
    bool body_too_big;
    bool discard;   /* the body is dropped as it comes */
    bool unvouched; /* no credentials vouch for it: the guard's deadline holds until it is in */
    bool judged;    /* its head was judged (from the first call when it has a body) */
    bool parked;    /* counted in http->parked until it is called again */
    sp_http_handler_fn then; /* what answers it once resumed (NULL: the route's handler) */
    alignas(max_align_t) unsigned char state[];
} request_t;

static request_t *request_of(const sp_request_t *req)
{
    return (request_t *)req; /* PUB is its first member */
}

/* ---- the route table ----------------------------------------------------------------- */

void sp_http_routes_add(sp_http_routes_t *table, const sp_route_t *routes, size_t n, void *ctx)
{
    assert(table->n + n <= SP_HTTP_ROUTES_MAX);
    for (size_t i = 0; i < n; i++) {
        assert(routes[i].path && '/' == routes[i].path[0] && routes[i].methods);
        assert(routes[i].handle || routes[i].status);
        table->at[table->n].route = &routes[i];
        table->at[table->n].ctx = ctx;
        table->n++;
    }
}

/* Whether PATH matches ROUTE's path: character by character, a '*' standing for one
 * segment (up to the next '/', maybe empty), and with SP_ROUTE_PREFIX anything after it.
 * *REST is where what follows begins; PARAMS where each '*' segment is. */
static bool path_matches(const sp_route_t *route, const char *path, param_t *params, size_t *rest)
{
    const char *p = route->path, *s = path;
    size_t n = 0;
    while (*p) {
        if ('*' == *p) {
            const char *end = strchrnul(s, '/');
            assert(n < SP_HTTP_PARAMS_MAX);
            params[n].off = (size_t)(s - path);
            params[n].len = (size_t)(end - s);
            n++;
            s = end;
            p++;
        } else if (*p++ != *s++) {
            return false;
        }
    }
    if (*s && !(route->flags & SP_ROUTE_PREFIX))
        return false;
    *rest = (size_t)(s - path);
    return true;
}

static unsigned method_bit(const char *method)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (0 == strcmp(method, names[i]))
            return 1u << i;
    return SP_HTTP_OTHER;
}

/* "use GET or POST": the methods of ALLOWED, into BUF. */
static const char *allowed_text(unsigned allowed, char *buf, size_t len)
{
    static const char *const names[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    unsigned n = (unsigned)__builtin_popcount(allowed & (SP_HTTP_ANY & ~SP_HTTP_OTHER)), k = 0;
    size_t used = (size_t)snprintf(buf, len, "use");
    for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]) && used < len; i++)
        if (allowed & (1u << i))
            used += (size_t)snprintf(buf + used, len - used, "%s%s",
                                     0 == k++ ? " "
                                     : k == n ? " or "
                                              : ", ",
                                     names[i]);
    return buf;
}

#define NONE ((size_t)-1)

/* Where a request's path and method lead in the route table. */
typedef struct match {
    size_t route;     /* the route that takes it, or NONE */
    size_t named;     /* the first route whose path matches, or NONE */
    unsigned allowed; /* the methods of the routes whose path matches, when none takes it */
    param_t params[SP_HTTP_PARAMS_MAX];
    size_t rest;
} match_t;

/* The route that takes METHOD on PATH: the first that matches both among the routes that
 * are not fallbacks, else among the fallbacks. When none does, *M says which route the path
 * names (its credentials come before the 405) and the methods that would do. */
static void find_route(const sp_http_t *h, const char *path, unsigned method, match_t *m)
{
    match_t fallback = {.route = NONE, .named = NONE};
    *m = (match_t){.route = NONE, .named = NONE};
    for (size_t i = 0; i < h->routes.n; i++) {
        const sp_route_t *r = h->routes.at[i].route;
        bool is_fallback = r->flags & SP_ROUTE_FALLBACK;
        match_t *into = is_fallback ? &fallback : m;
        param_t params[SP_HTTP_PARAMS_MAX];
        size_t rest;
        if (NONE != into->route || !path_matches(r, path, params, &rest))
            continue;
        if (NONE == into->named)
            into->named = i;
        if (!(r->methods & method)) {
            into->allowed |= r->methods;
            continue;
        }
        into->route = i;
        into->allowed = 0;
        memcpy(into->params, params, sizeof(params));
        into->rest = rest;
        if (!is_fallback)
            return;
    }
    if (NONE == m->named)
        *m = fallback;
}

bool sp_http_param(const sp_request_t *req, unsigned i, char *buf, size_t len)
{
    const request_t *r = request_of(req);
    assert(i < SP_HTTP_PARAMS_MAX);
    const param_t *p = &r->params[i];
    if (p->len >= len)
        return false;
    memcpy(buf, req->url + p->off, p->len);
    buf[p->len] = '\0';
    return true;
}

/* ---- answers ------------------------------------------------------------------------- */

static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
                          "base-uri 'none'; form-action 'self'";

void sp_http_secure_headers(struct MHD_Response *resp, bool html)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    if (html) {
        MHD_add_response_header(resp, "Content-Security-Policy", csp);
        MHD_add_response_header(resp, "X-Frame-Options", "DENY");
        MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
    } else {
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; frame-ancestors 'none'");
    }
}

void sp_http_hsts(const sp_request_t *req, struct MHD_Response *resp)
{
    /* A year, the value OWASP's HTTP Strict Transport Security cheat sheet gives; no
     * includeSubDomains: the tracker's host says nothing about its neighbours. */
    if (req->https)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
}

void sp_http_set_cookie(const sp_request_t *req, struct MHD_Response *resp, const char *name,
                        const char *value, const char *attrs)
{
    char cookie[512];
    snprintf(cookie, sizeof(cookie), "%s=%s; %s%s", name, value, attrs,
             req->https ? "; Secure" : "");
    MHD_add_response_header(resp, "Set-Cookie", cookie);
}

enum MHD_Result sp_http_respond(sp_request_t *req, unsigned status, const char *content_type,
                                const char *body, size_t len)
{
    const sp_route_t *route = request_of(req)->route;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    sp_http_secure_headers(resp, false);
    sp_http_hsts(req, resp);
    if (route && route->headers)
        route->headers(req, resp);
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result sp_http_text(sp_request_t *req, unsigned status, const char *text)
{
    return sp_http_respond(req, status, "text/plain; charset=utf-8", text, strlen(text));
}

enum MHD_Result sp_http_json(sp_request_t *req, unsigned status, json_t *j)
{
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!body)
        return sp_http_error(req, 500, "cannot encode the answer");
    enum MHD_Result rc = sp_http_respond(req, status, "application/json", body, strlen(body));
    free(body);
    return rc;
}

/* {"error": MSG}, malloc'd. */
static char *error_text(const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) /* MSG was not UTF-8: the answer still goes out, and says so */
        body = strdup("{\"error\":\"(an error message that was not UTF-8)\"}");
    if (!body)
        abort();
    return body;
}

enum MHD_Result sp_http_error(sp_request_t *req, unsigned status, const char *msg)
{
    char *body = error_text(msg);
    sp_metric_inc(api_errors);
    enum MHD_Result rc = sp_http_respond(req, status, "application/json", body, strlen(body));
    free(body);
    return rc;
}

/* ---- request parts ------------------------------------------------------------------- */

/* TEXT into MSG (LEN bytes) as UTF-8: the one repair of request text (utf8.h), then cut at
 * a character boundary. */
static void copy_utf8(char *msg, size_t len, const char *text)
{
    char *clean = sp_utf8_clean(text);
    const char *from = clean ? clean : text;
    size_t n = strlen(from);
    if (n >= len) {
        n = len - 1;
        while (n && ((unsigned char)from[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(msg, from, n);
    msg[n] = 0;
    free(clean);
}

json_t *sp_http_body_json(sp_request_t *req, char *msg, size_t len)
{
    json_error_t e;
    if (!req->body_len) {
        snprintf(msg, len, "expected a JSON object in the request body");
        return NULL;
    }
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        /* jansson's text quotes the body up to the error, which may fall inside a character:
         * the message goes into a JSON answer, which must be UTF-8. */
        char raw[256];
        snprintf(raw, sizeof(raw), "malformed JSON at line %d: %s", e.line, e.text);
        copy_utf8(msg, len, raw);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(msg, len, "expected a JSON object");
        return NULL;
    }
    return j;
}

const char *sp_http_header(sp_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *sp_http_arg(sp_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool sp_http_cookie(sp_request_t *req, const char *name, char *buf, size_t len)
{
    return 0 == sp_event_cookie(sp_http_header(req, "Cookie"), name, buf, len);
}

void *sp_http_conn_data(sp_request_t *req, void (*free_fn)(void *))
{
    const connection_t *c = request_of(req)->connection;
    return c && c->data_free == free_fn ? c->data : NULL;
}

void sp_http_set_conn_data(sp_request_t *req, void *data, void (*free_fn)(void *))
{
    connection_t *c = request_of(req)->connection;
    if (!c) {
        free_fn(data);
        return;
    }
    if (c->data && c->data != data)
        c->data_free(c->data);
    c->data = data;
    c->data_free = free_fn;
}

void sp_http_origin(sp_request_t *req, char *buf, size_t len)
{
    const sp_config_t *cfg = request_of(req)->http->cfg;
    if (cfg->public_url[0]) {
        snprintf(buf, len, "%s", cfg->public_url);
        size_t n = strlen(buf);
        if (n && '/' == buf[n - 1])
            buf[n - 1] = '\0';
        return;
    }
    /* The Host header is the client's word: keep it only if it looks like a host. */
    const char *host = sp_http_header(req, "Host");
    bool ok = host && *host && strlen(host) < 256;
    for (const char *p = host; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
             strchr(".-:[]", *p);
    snprintf(buf, len, "%s://%s", req->https ? "https" : "http", ok ? host : "localhost");
}

/* ---- the client address ------------------------------------------------------ */

/* ---- the client address ------------------------------------------------------------ */

static bool over_tls(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return ci && ci->tls_session;
}

static bool trusted(const sp_config_t *cfg, const sp_net_addr_t *a)
{
    for (size_t i = 0; i < cfg->n_trusted_proxy; i++)
        if (sp_net_in_cidr(a, &cfg->trusted_proxy[i]))
            return true;
    return false;
}

/* Walks a list of addresses from the right (the nearest hop) and takes the first that
 * is not one of our proxies: entries further left were written by the client and may
 * be lies, so the walk starts at the right end however long the list is, and looks at
 * 64 hops at most. Returns 0 when one was found. */
static int pick_forwarded(const sp_config_t *cfg, char *list, bool forwarded_syntax,
                          sp_net_addr_t *out)
{
    int n = 0;
    for (char *stop = list + strlen(list); stop && n < 64;) {
        char *comma = memrchr(list, ',', (size_t)(stop - list));
        char *t = comma ? comma + 1 : list, *addr = t;
        *stop = '\0';
        stop = comma;
        if (!*t)
            continue; /* "a,,b" */
        n++;
        if (forwarded_syntax) {
            /* for=192.0.2.60;proto=http or for="[2001:db8::1]:4711" */
            addr = NULL;
            char *psave = NULL;
            for (char *p = strtok_r(t, ";", &psave); p; p = strtok_r(NULL, ";", &psave)) {
                while (' ' == *p)
                    p++;
                if (sp_has_prefix_ci(p, "for="))
                    addr = p + SP_LIT_LEN("for=");
            }
            if (!addr)
                return -1;
        }
        while (' ' == *addr || '"' == *addr)
            addr++;
        char *end = addr + strlen(addr);
        while (end > addr && (' ' == end[-1] || '"' == end[-1]))
            *--end = '\0';
        /* Strip a port: "[v6]:port" or "v4:port". */
        if ('[' == *addr) {
            char *close = strchr(addr, ']');
            if (close)
                close[1] = '\0';
        } else if (strchr(addr, '.') && strchr(addr, ':')) {
            *strchr(addr, ':') = '\0';
        }
        sp_net_addr_t a;
        if (0 != sp_net_parse(addr, &a))
            return -1; /* "unknown", an obfuscated name: stop believing here */
        *out = a;
        if (!trusted(cfg, &a))
            return 0;
    }
    return n ? 0 : -1;
}

static void resolve_client(sp_request_t *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    memset(&req->client, 0, sizeof(req->client));
    if (ci && ci->client_addr)
        sp_net_from_sockaddr(ci->client_addr, &req->client);
    const sp_config_t *cfg = request_of(req)->http->cfg;
    if (trusted(cfg, &req->client)) {
        const char *fwd = sp_http_header(req, "Forwarded");
        const char *xff = sp_http_header(req, "X-Forwarded-For");
        char buf[2048];
        sp_net_addr_t a;
        if (fwd && strlen(fwd) < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%s", fwd);
            if (0 == pick_forwarded(cfg, buf, true, &a))
                req->client = a;
            req->https = NULL != strcasestr(fwd, "proto=https");
        } else if (xff && strlen(xff) < sizeof(buf)) {
            snprintf(buf, sizeof(buf), "%s", xff);
            if (0 == pick_forwarded(cfg, buf, false, &a))
                req->client = a;
            const char *proto = sp_http_header(req, "X-Forwarded-Proto");
            req->https = proto && 0 == strcasecmp(proto, "https");
        }
    }
    if (sp_has_prefix(cfg->public_url, "https:") || over_tls(req->conn))
        req->https = true;
    sp_net_format(&req->client, req->client_ip, sizeof(req->client_ip));
}

bool sp_http_local(sp_request_t *req)
{
    const sp_config_t *cfg = request_of(req)->http->cfg;
    sp_net_addr_t peer;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    memset(&peer, 0, sizeof(peer));
    if (ci && ci->client_addr)
        sp_net_from_sockaddr(ci->client_addr, &peer);
    bool forwarded = !trusted(cfg, &peer) &&
                     (sp_http_header(req, "Forwarded") || sp_http_header(req, "X-Forwarded-For") ||
                      sp_http_header(req, "X-Real-IP"));
    return SP_NET_LOOPBACK == sp_net_kind(&req->client) && !forwarded;
}

/* ---- store connections for reading ------------------------------------------------- */

static void close_reader(void *store)
{
    sp_store_close(store);
}

sp_store_t *sp_http_reader(sp_request_t *req)
{
    sp_http_t *h = request_of(req)->http;
    sp_store_t *s = pthread_getspecific(h->reader_key);
    if (s)
        return s;
    char err[512];
    s = sp_store_open(h->cfg, err, sizeof(err));
    if (!s) {
        sp_log_error("cannot open the store for reading", "error=\"%s\"", err);
        return NULL;
    }
    pthread_setspecific(h->reader_key, s);
    return s;
}

/* ---- parking ------------------------------------------------------------------------- */

bool sp_http_park(sp_request_t *req, sp_http_handler_fn then)
{
    request_t *r = request_of(req);
    sp_http_t *h = r->http;
    assert(!r->parked);
    /* Counted before closing is looked at: the shutdown sets closing and then waits for
     * parked to reach 0, so no request parks after that wait ends. */
    atomic_fetch_add(&h->parked, 1);
    if (atomic_load(&h->closing)) {
        atomic_fetch_sub(&h->parked, 1);
        return false;
    }
    r->parked = true;
    r->then = then;
    MHD_suspend_connection(req->conn);
    return true;
}

void sp_http_resume(void *ctx, void *waiter)
{
    (void)ctx;
    MHD_resume_connection(((sp_request_t *)waiter)->conn);
}

/* ---- held answers ------------------------------------------------------------------- */

struct sp_http_held {
    struct MHD_Connection *conn;
    int fd;
    sp_http_held_read_fn read;
    void (*free_fn)(void *cls);
    void *cls;
};

static ssize_t held_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    sp_http_held_t *held = cls;
    (void)pos;
    return held->read(held->cls, buf, max);
}

static void held_free(void *cls)
{
    sp_http_held_t *held = cls;
    held->free_fn(held->cls);
    free(held);
}

struct MHD_Response *sp_http_held_response(sp_request_t *req, sp_http_held_read_fn read,
                                           void (*free_fn)(void *cls), void *cls,
                                           sp_http_held_t **out)
{
    sp_http_held_t *held = calloc(1, sizeof(*held));
    if (!held)
        abort();
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    *held = (sp_http_held_t){
        .conn = req->conn,
        .fd = ci ? ci->connect_fd : -1,
        .read = read,
        .free_fn = free_fn,
        .cls = cls,
    };
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, held_read, held, held_free);
    if (!resp)
        abort();
    *out = held;
    return resp;
}

void sp_http_held_wait(sp_http_held_t *held)
{
    MHD_suspend_connection(held->conn);
}

void sp_http_held_resume(sp_http_held_t *held)
{
    MHD_resume_connection(held->conn);
}

int sp_http_held_fd(const sp_http_held_t *held)
{
    return held->fd;
}

static void unpark(request_t *r)
{
    if (r->parked) {
        r->parked = false;
        atomic_fetch_sub(&r->http->parked, 1);
    }
}

int sp_http_drain(sp_http_t *h, int max_ms)
{
    if (!h)
        return 0;
    atomic_store(&h->closing, true);
    for (int waited = 0; atomic_load(&h->parked) > 0 && waited < max_ms; waited += 10) {
        struct timespec pause = {0, 10000000L};
        nanosleep(&pause, NULL);
    }
    return atomic_load(&h->parked);
}

/* ---- the request's life ---------------------------------------------------------------- */

/* Answers from the first call, when only the head is in. libmicrohttpd then reads no
 * body and closes the connection once the answer is out: the client cannot go on
 * sending a body nobody reads. */
static enum MHD_Result refuse(request_t *r, unsigned status, const char *msg)
{
    sp_metric_inc(http_early_refusals);
    if (r->connection)
        sp_guard_linger(&r->connection->guard);
    char *body = error_text(msg);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Connection", "close");
    if (503 == status)
        MHD_add_response_header(resp, "Retry-After", "5");
    sp_http_secure_headers(resp, false);
    sp_http_hsts(&r->pub, resp);
    enum MHD_Result rc = MHD_queue_response(r->pub.conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

typedef struct {
    unsigned hosts, lengths, codings;
    bool lengths_differ, bad_length, chunked_last, chunked_twice, unknown_coding;
    unsigned long long length;
} framing_t;

static bool token_is(const char *s, size_t n, const char *word)
{
    return strlen(word) == n && 0 == strncasecmp(s, word, n);
}

static enum MHD_Result look_at_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    framing_t *f = cls;
    (void)kind;
    if (!value)
        value = "";
    if (0 == strcasecmp(key, "Host")) {
        f->hosts++;
    } else if (0 == strcasecmp(key, "Content-Length")) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(value, &end, 10);
        if (errno || end == value || *end || !(value[0] >= '0' && value[0] <= '9'))
            f->bad_length = true;
        else if (f->lengths++ && n != f->length)
            f->lengths_differ = true;
        f->length = n;
    } else if (0 == strcasecmp(key, "Transfer-Encoding")) {
        /* A list of codings, possibly over several lines; chunked must come last, once. */
        for (const char *p = value; *p;) {
            p += strspn(p, " \t,");
            size_t n = strcspn(p, ",;");
            size_t trimmed = n;
            while (trimmed && (' ' == p[trimmed - 1] || '\t' == p[trimmed - 1]))
                trimmed--;
            if (trimmed) {
                f->codings++;
                if (token_is(p, trimmed, "chunked")) {
                    f->chunked_twice |= f->chunked_last;
                    f->chunked_last = true;
                } else {
                    f->unknown_coding = true;
                    f->chunked_last = false;
                }
            }
            p += n;
            p += strcspn(p, ","); /* past any parameters */
        }
    }
    return MHD_YES;
}

/* What RFC 9112 requires of a request's framing before its body can be trusted. 0, or the
 * status to refuse it with and MSG. libmicrohttpd 0.9.75 believes Transfer-Encoding over
 * Content-Length, reads a body of unknown coding until the connection closes, takes the
 * first of several Content-Length lines and, unless MHD_OPTION_STRICT_FOR_CLIENT is set
 * (which also drops, with no answer at all, a request whose target holds a space), serves
 * HTTP/1.1 without Host: so the rest is checked here. */
static unsigned check_framing(sp_request_t *req, const char *version, framing_t *f,
                              const char **msg)
{
    memset(f, 0, sizeof(*f));
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, look_at_header, f);
    bool http11 = 0 == strcmp(version, MHD_HTTP_VERSION_1_1);
    /* Section 3.2: exactly one Host in HTTP/1.1, never two. */
    if ((http11 && 0 == f->hosts) || f->hosts > 1) {
        *msg = "an HTTP/1.1 request needs one Host header";
        return 400;
    }
    if (f->bad_length || f->lengths_differ) {
        *msg = "malformed or conflicting Content-Length";
        return 400;
    }
    if (f->codings) {
        /* Section 6.1: both framings at once is how requests are smuggled past a proxy. */
        if (f->lengths) {
            *msg = "Content-Length and Transfer-Encoding together";
            return 400;
        }
        if (!http11) {
            *msg = "Transfer-Encoding in an HTTP/1.0 request";
            return 400;
        }
        if (f->unknown_coding) {
            *msg = "the only transfer coding understood is chunked";
            return 501;
        }
        if (f->chunked_twice || !f->chunked_last) {
            *msg = "chunked must be the last transfer coding, once";
            return 400;
        }
    }
    return 0;
}

size_t sp_http_body_bytes(sp_request_t *req)
{
    return atomic_load(&request_of(req)->http->body_bytes);
}

/* Takes N bytes of the body memory budget; false when it would go over. */
static bool reserve_body(sp_http_t *h, size_t n)
{
    size_t budget = (size_t)h->cfg->body_memory << 20;
    size_t used = atomic_load(&h->body_bytes);
    do {
        if (used + n > budget || used + n < used)
            return false;
    } while (!atomic_compare_exchange_weak(&h->body_bytes, &used, used + n));
    return true;
}

/* What the route table says of R's head: 0, or the status to refuse it with and *MSG
 * (BUF holds it when it is made here). The credentials of the route its path names come
 * first, so that a client without them learns nothing of the routes; then the method; then
 * the route's other checks. */
static unsigned judge(request_t *r, char *buf, size_t len, const char **msg)
{
    r->judged = true;
    const sp_route_t *route = r->route;
    unsigned status = 0;
    if (route && route->authenticate && (status = route->authenticate(&r->pub, msg)))
        return status;
    if (r->allowed) {
        *msg = allowed_text(r->allowed, buf, len);
        return 405;
    }
    if (!route) {
        *msg = "not found";
        return 404;
    }
    if (route->admit && (status = route->admit(&r->pub, msg)))
        return status;
    if (!route->handle) {
        *msg = route->message;
        return route->status;
    }
    return 0;
}

/* The first call, with the head in and none of the body read: framing, and for a request
 * with a body, whether it may send one (the route's method, credentials and checks, its
 * size, memory), so that a body is read only when it will be used. A request without a
 * body is judged and answered from the second call, as libmicrohttpd keeps the connection
 * open only then. */
static enum MHD_Result admit(request_t *r, const char *version)
{
    const char *msg = NULL;
    char buf[64];
    framing_t f;
    unsigned status = check_framing(&r->pub, version, &f, &msg);
    if (status)
        return refuse(r, status, msg);
    bool chunked = f.codings > 0;
    if (!chunked && 0 == f.length) {
        sp_guard_busy(r->http->guard, &r->connection->guard);
        return MHD_YES;
    }
    status = judge(r, buf, sizeof(buf), &msg);
    if (status)
        return refuse(r, status, msg);
    if (!r->route->authenticate)
        r->unvouched = true; /* a slow body holds a connection like a slow head */
    else
        sp_guard_busy(r->http->guard, &r->connection->guard);
    size_t max = r->route->body_max;
    if (0 == max) {
        r->discard = true; /* GET with a body: it has no meaning here (RFC 9110 9.3.1) */
        return MHD_YES;
    }
    if (!chunked && f.length > max)
        return refuse(r, 413, "request body too large");
    size_t want = chunked ? max : (size_t)f.length;
    if (!reserve_body(r->http, want)) {
        sp_metric_inc(http_body_budget_refusals);
        return refuse(r, 503, "the server is receiving too many uploads; try again shortly");
    }
    /* The whole body's room at once: untouched pages cost nothing until the bytes come. */
    r->pub.body = malloc(want + 1);
    if (!r->pub.body)
        abort();
    r->pub.body[0] = '\0';
    r->body_max = want;
    return MHD_YES;
}

static connection_t *connection_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The first call: the route, the request's state, its client. */
static enum MHD_Result begin(sp_http_t *h, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, void **con_cls)
{
    match_t m;
    find_route(h, url, method_bit(method), &m);
    size_t at = NONE != m.route ? m.route : m.named;
    const sp_route_t *route = NONE != at ? h->routes.at[at].route : NULL;
    request_t *r = calloc(1, sizeof(*r) + (route ? route->state_size : 0));
    if (!r)
        abort();
    memcpy(r->params, m.params, sizeof(r->params));
    r->pub.rest = url + (NONE != m.route ? m.rest : strlen(url));
    r->pub.conn = conn;
    r->pub.method = method;
    r->pub.url = url;
    r->pub.ctx = route ? h->routes.at[at].ctx : NULL;
    r->pub.state = r->state;
    r->http = h;
    r->connection = connection_of(conn);
    r->route = route;
    r->allowed = NONE != m.route ? 0 : m.allowed;
    *con_cls = r;
    resolve_client(&r->pub);
    return admit(r, version);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    request_t *r = *con_cls;
    if (!r)
        return begin(cls, conn, url, method, version, con_cls);
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->discard)
            return MHD_YES;
        if (r->body_too_big || r->pub.body_len + n > r->body_max) {
            r->body_too_big = true; /* a chunked body longer than its route takes */
            return MHD_YES;
        }
        memcpy(r->pub.body + r->pub.body_len, upload_data, n);
        r->pub.body_len += n;
        r->pub.body[r->pub.body_len] = '\0';
        return MHD_YES;
    }
    if (r->unvouched) {
        r->unvouched = false;
        sp_guard_busy(r->http->guard, &r->connection->guard);
    }
    if (r->parked) { /* resumed */
        sp_http_handler_fn then = r->then ? r->then : r->route->handle;
        unpark(r);
        r->then = NULL;
        return then(&r->pub);
    }
    sp_metric_inc(http_requests);
    if (r->body_too_big)
        return sp_http_error(&r->pub, 413, "request body too large");
    if (!r->judged) {
        const char *msg = NULL;
        char buf[64];
        unsigned status = judge(r, buf, sizeof(buf), &msg);
        if (status)
            return sp_http_error(&r->pub, status, msg);
    }
    return r->route->handle(&r->pub);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    sp_http_t *h = cls;
    request_t *r = *con_cls;
    connection_t *c = connection_of(conn);
    if (c && MHD_REQUEST_TERMINATED_COMPLETED_OK == toe)
        sp_guard_idle(h->guard, &c->guard);
    if (!r)
        return;
    unpark(r); /* its connection closed while it was parked */
    if (r->route && r->route->done)
        r->route->done(&r->pub);
    if (r->pub.body) {
        atomic_fetch_sub(&h->body_bytes, r->body_max);
        free(r->pub.body);
    }
    free(r);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    sp_http_t *h = cls;
    if (MHD_CONNECTION_NOTIFY_STARTED == toe) {
        connection_t *c = calloc(1, sizeof(*c));
        if (!c)
            abort();
        *socket_context = c;
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (fd && addr && addr->client_addr)
            sp_guard_opened(h->guard, &c->guard, fd->connect_fd, addr->client_addr, over_tls(conn));
    } else if (*socket_context) {
        connection_t *c = *socket_context;
        sp_guard_closed(h->guard, &c->guard);
        if (c->data)
            c->data_free(c->data);
        sp_tls_release(c->tls_hold);
        free(c);
        *socket_context = NULL;
    }
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    sp_http_t *h = cls;
    (void)addrlen;
    return sp_guard_allow(h->guard, addr) ? MHD_YES : MHD_NO;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes a path or a query value in place. Two departures from form decoding,
 * both for IDs: a '+' stays a '+' (libmicrohttpd has turned it into a space by now, and
 * addresses like ann+news@example.com are common while spaces are never valid), and a
 * %00 becomes DEL, so that a NUL can never cut "news%00evil" down to a valid "news". */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *out = s;
    (void)cls;
    (void)conn;
    for (const char *in = s; *in; in++) {
        int hi, lo;
        if ('%' == in[0] && (hi = hex_value(in[1])) >= 0 && (lo = hex_value(in[2])) >= 0) {
            char c = (char)(hi * 16 + lo);
            *out++ = '\0' == c ? '\x7f' : c;
            in += 2;
        } else {
            *out++ = ' ' == *in ? '+' : *in;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
}

static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    char msg[512], quoted[600];
    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && '\n' == msg[n - 1])
        msg[--n] = '\0';
    /* A client that goes away mid-answer (a dashboard tab closed on its live stream, a
     * mail reader that stops loading) is everyday life, not a warning. */
    static const char *const peer_gone[] = {"no longer available", "reset by peer",
                                            "forcibly closed", "Broken pipe"};
    sp_log_level_t level = SP_LOG_WARN;
    for (size_t i = 0; i < sizeof(peer_gone) / sizeof(peer_gone[0]); i++)
        if (strstr(msg, peer_gone[i]))
            level = SP_LOG_DEBUG;
    sp_log(level, "libmicrohttpd", "detail=%s", sp_log_quote(msg, quoted, sizeof(quoted)));
}

/* Where the TLS module keeps the certificate a connection's handshake took. */
static void **tls_slot(struct MHD_Connection *conn)
{
    connection_t *c = connection_of(conn);
    return c ? &c->tls_hold : NULL;
}

/* One daemon with one thread on FD, its share of the connection limit. A connection wakes
 * only the thread whose socket the kernel queued it on: with libmicrohttpd's thread pool every
 * thread polled the one listening socket, and each new connection woke them all (two threads
 * on one core: 1.0-1.3 context switches per Connection: close answer, 0.6 with a socket
 * each). */
static struct MHD_Daemon *start_daemon(sp_http_t *h, const sp_listen_t *l, int fd)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    /* HTTPS daemons poll(2). In libmicrohttpd 0.9.75's epoll mode a connection that waits
     * for the client's next handshake flight stays on the ready list, and its thread spins
     * (recvfrom EAGAIN, epoll_wait with a zero timeout: 34 turns in 4 ms for one loopback
     * handshake under strace) for a round trip per handshake, which from the internet is
     * tens of milliseconds of a core each. With poll, a new HTTPS connection cost 610-740 us
     * of CPU against 1160-1230 us (wrk -c50 with Connection: close, three runs each). */
    if (l->tls)
        flags = (flags & ~(unsigned)MHD_USE_EPOLL_INTERNAL_THREAD) | MHD_USE_POLL_INTERNAL_THREAD |
                MHD_USE_TLS;
    struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    unsigned limit = (unsigned)h->cfg->max_connections / h->threads;
    return MHD_start_daemon(
        flags, 0, on_accept, h, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, h,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT, limit ? limit : 1,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)h->cfg->timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)SP_CONNECTION_MEMORY,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        h, MHD_OPTION_UNESCAPE_CALLBACK, unescape, h, MHD_OPTION_ARRAY,
        l->tls ? sp_tls_options(h->tls) : none, MHD_OPTION_END);
}

/* Parses every --listen address, loads the certificate when one is HTTPS and binds them
 * all, THREADS sockets each, so that a mistake stops the start before anything serves. */
static int open_listeners(sp_http_t *h, int *fds, char *err, size_t errlen)
{
    const sp_config_t *cfg = h->cfg;
    bool any_tls = false;
    for (size_t i = 0; i < cfg->n_listen * h->threads; i++)
        fds[i] = -1;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        if (0 != sp_listen_parse(cfg->listen[i], cfg->tls_cert[0], &h->listen[i], err, errlen))
            return -1;
        if (h->listen[i].tls && !cfg->tls_cert[0]) {
            snprintf(err, errlen, "--listen %s serves HTTPS: it needs --tls-cert and --tls-key",
                     cfg->listen[i]);
            return -1;
        }
        any_tls |= h->listen[i].tls;
    }
    if (cfg->tls_cert[0] && !any_tls) {
        snprintf(err, errlen,
                 "--tls-cert is set but every --listen address is http://: give one as "
                 "https://HOST:PORT or HOST:PORT");
        return -1;
    }
    if (any_tls) {
        h->tls = sp_tls_new(cfg->tls_cert, cfg->tls_key, tls_slot, err, errlen);
        if (!h->tls)
            return -1;
    }
    for (size_t i = 0; i < cfg->n_listen; i++)
        if (0 != sp_listen_open_group(&h->listen[i], 1024, fds + i * h->threads, h->threads, err,
                                      errlen))
            return -1;
    return 0;
}

unsigned sp_http_cores(void)
{
    /* The cores this process may run on (taskset, a cpuset), not the machine's: more request
     * threads than cores only take turns on them, each turn a context switch. */
    cpu_set_t set;
    if (0 == sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (unsigned)cores : 1;
}

sp_http_t *sp_http_start(const sp_config_t *cfg, const sp_http_routes_t *routes, char *err,
                         size_t errlen)
{
    sp_http_t *h = calloc(1, sizeof(*h));
    if (!h)
        abort();
    h->cfg = cfg;
    h->routes = *routes;
    unsigned threads = cfg->threads > 0 ? (unsigned)cfg->threads : sp_http_cores();
    h->threads = threads;
    size_t n = cfg->n_listen * threads; /* daemons, and sockets */
    int *fds = calloc(n ? n : 1, sizeof(*fds));
    h->daemons = calloc(n ? n : 1, sizeof(*h->daemons));
    if (!fds || !h->daemons)
        abort();
    if (0 != open_listeners(h, fds, err, errlen)) {
        for (size_t i = 0; i < n; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        free(fds);
        sp_tls_free(h->tls);
        free(h->daemons);
        free(h);
        return NULL;
    }
    pthread_key_create(&h->reader_key, close_reader);
    h->reader_key_made = true;

    sp_guard_options_t guard = {
        .head_timeout_ms = cfg->header_timeout * 1000,
        .per_ip_max = (unsigned)cfg->max_connections_per_ip,
        .thread_max = (unsigned)cfg->max_connections / threads,
        .exempt = cfg->trusted_proxy,
        .n_exempt = cfg->n_trusted_proxy,
        .sweep_ms = 250,
    };
    h->guard = sp_guard_new(&guard);
    /* When answers wait (--sync-full, --answer-after store), the request threads run as
     * SCHED_BATCH, and so does whoever resumes them (the journal's syncer, the writer). It
     * resumes a whole batch of parked requests at once, and each MHD_resume_connection wakes
     * a request thread; as normal threads on a busy core, the woken thread preempted the
     * resumer once per open, and the resumer, woken by the first request, preempted the
     * request thread that was reading the next ones. Batch threads do not preempt each other
     * on wakeup: the resumer ends its batch, then the request threads answer all of it in
     * one pass (under wrk on one core: 0.64 -> 0.21 context switches per open, 10-15% more
     * throughput). When answers wait for nobody, the request threads stay normal: the
     * writer then runs at nice 19 (ingest.c), and a request thread that wakes must take the
     * core from it at once, which batch threads never do. New threads inherit the policy of
     * the thread that creates them, so it is set around MHD_start_daemon only. */
    int policy;
    struct sched_param saved, param = {0};
    bool batch = cfg->sync_full || cfg->answer_after_store;
    bool restore = batch && 0 == pthread_getschedparam(pthread_self(), &policy, &saved) &&
                   0 == pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        const sp_listen_t *l = &h->listen[i / threads];
        h->daemons[i] = start_daemon(h, l, fds[i]);
        if (!h->daemons[i]) {
            snprintf(err, errlen, "cannot serve %s (libmicrohttpd refused to start)", l->text);
            for (size_t k = i; k < n; k++)
                close(fds[k]);
            rc = -1;
            break;
        }
        h->n_daemons++;
    }
    free(fds);
    if (restore)
        pthread_setschedparam(pthread_self(), policy, &saved);
    if (rc) {
        sp_http_stop(h);
        return NULL;
    }
    return h;
}

int sp_http_reload_tls(sp_http_t *h, char *err, size_t errlen)
{
    if (!h->tls)
        return 1;
    return sp_tls_reload(h->tls, err, errlen);
}

void sp_http_describe(const sp_http_t *h, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < h->cfg->n_listen && used < len; i++) {
        const sp_listen_t *l = &h->listen[i];
        used += (size_t)snprintf(buf + used, len - used, "%s%s://%s:%u", i ? " " : "",
                                 l->tls ? "https" : "http", l->any ? "*" : l->host, l->port);
    }
}

bool sp_http_describe_tls(const sp_http_t *h, char *buf, size_t len)
{
    if (!h->tls)
        return false;
    sp_tls_describe(h->tls, buf, len);
    return true;
}

size_t sp_http_addresses(const sp_http_t *h)
{
    return h->n_daemons / h->threads; /* the addresses whose daemons all started */
}

unsigned sp_http_port(const sp_http_t *h, size_t i)
{
    if (i >= sp_http_addresses(h))
        return 0;
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(h->daemons[i * h->threads], MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : 0;
}

void sp_http_quiesce(sp_http_t *h)
{
    for (size_t i = 0; i < h->n_daemons; i++) {
        MHD_socket fd = MHD_quiesce_daemon(h->daemons[i]);
        if (MHD_INVALID_SOCKET != fd)
            close(fd);
    }
}

void sp_http_stop(sp_http_t *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_daemons; i++)
        MHD_stop_daemon(h->daemons[i]);
    h->n_daemons = 0;
    sp_tls_free(h->tls);     /* after the daemons: no handshake can be under way */
    sp_guard_free(h->guard); /* after the daemons: every connection is closed */
    if (h->reader_key_made)
        pthread_key_delete(h->reader_key);
    free(h->daemons);
    free(h);
}
