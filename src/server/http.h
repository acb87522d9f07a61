/* http: the libmicrohttpd daemons, the route table, request state, parking and limits. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"
#include "net.h"
#include "store.h"

/*
 * The core serves requests and knows no handler: each handler module (pixel, login, api,
 * status, assets) describes its routes in a table, main hands every table to
 * sp_http_start, and the core judges each request's head against the route it finds there
 * (its method, its credentials, whether it may send a body and how large) before any of
 * its body is read, then calls the route's handler.
 */

typedef struct sp_http sp_http_t;

/* One request as its handler sees it, from the arrival of its head to the end of its
 * answer. The fields are set by the core; a handler reads them and keeps its own in STATE. */
typedef struct sp_request {
    struct MHD_Connection *conn;
    const char *method, *url; /* the path, percent-decoded; borrowed until the request ends */
    const char *rest;         /* the path past a prefix route's (SP_ROUTE_PREFIX), else "" */
    sp_net_addr_t client;     /* after trusted-proxy handling */
    char client_ip[SP_NET_ADDR_MAX];
    bool https; /* reached over TLS (through a trusted proxy) */
    char *body; /* NUL-terminated when the route takes one (body_max), else NULL */
    size_t body_len;
    void *ctx;   /* the route's context, as given to sp_http_routes_add (borrowed) */
    void *state; /* the route's state_size bytes, zeroed when the request starts */
} sp_request_t;

/* A handler: queues the answer (MHD_queue_response) or parks the request (sp_http_park).
 * MHD_NO closes the connection. */
typedef enum MHD_Result (*sp_http_handler_fn)(sp_request_t *req);

/* A check of a request's head: 0, or the status to refuse it with and *MSG (static text). */
typedef unsigned (*sp_http_check_fn)(sp_request_t *req, const char **msg);

/* Methods, as a set. */
enum {
    SP_HTTP_GET = 1u << 0,
    SP_HTTP_HEAD = 1u << 1,
    SP_HTTP_POST = 1u << 2,
    SP_HTTP_PUT = 1u << 3,
    SP_HTTP_PATCH = 1u << 4,
    SP_HTTP_DELETE = 1u << 5,
    SP_HTTP_OTHER = 1u << 6, /* any method not named above */
    SP_HTTP_ANY = (1u << 7) - 1,
};

enum {
    /* PATH is what the request's path starts with; the rest is the request's REST. */
    SP_ROUTE_PREFIX = 1u << 0,
    /* Tried only when no other route knows the path: what a prefix serves that its
     * neighbours do not (an API's "no such endpoint", the dashboard's files). */
    SP_ROUTE_FALLBACK = 1u << 1,
};

/* One route. The first route whose path and method match a request takes it; when a
 * route's path matches but none takes the method, the answer is 405 with the methods
 * that would do (and no other check is made); when no path matches, 404. */
typedef struct sp_route {
    /* "/healthz"; a '*' stands for one path segment (sp_http_param). */
    const char *path;
    unsigned methods; /* SP_HTTP_* */
    unsigned flags;   /* SP_ROUTE_* */
    /* The longest body it reads (a longer one gets 413). 0: a body has no meaning on it
     * (RFC 9110 9.3.1) and is dropped as it comes. */
    size_t body_max;
    /* Credentials (401, 403, 503): NULL for a route open to anyone. A request that passes is
     * vouched for: a slow body no longer counts against the head's deadline. */
    sp_http_check_fn authenticate;
    /* Other checks of the head (a content type, an origin), after authenticate, or NULL. */
    sp_http_check_fn admit;
    /* Answers; NULL: every request the route takes is refused with STATUS and MESSAGE. */
    sp_http_handler_fn handle;
    unsigned status;
    const char *message;
    size_t state_size;               /* the handler's own state per request (REQ->state) */
    void (*done)(sp_request_t *req); /* at the request's end (frees what STATE holds), or NULL */
    void (*headers)(sp_request_t *req, struct MHD_Response *resp); /* for sp_http_respond */
} sp_route_t;

#define SP_HTTP_ROUTES_MAX 64
#define SP_HTTP_PARAMS_MAX 2 /* '*' segments in one route's path */

/* Every route of the server, in the order they are tried. */
typedef struct sp_http_routes {
    struct {
        const sp_route_t *route;
        void *ctx;
    } at[SP_HTTP_ROUTES_MAX];
    size_t n;
} sp_http_routes_t;

/* Appends ROUTES[0..N), each with CTX (REQ->ctx in its handlers). The routes and CTX are
 * borrowed until the server stops. More than SP_HTTP_ROUTES_MAX in all is a programming
 * error (assert). */
void sp_http_routes_add(sp_http_routes_t *table, const sp_route_t *routes, size_t n, void *ctx);

/* ---- the server --------------------------------------------------------------------- */

/* The cores this process may run on (its CPU affinity: taskset, a cpuset), at least 1: the
 * request threads per address when --threads is 0. */
unsigned sp_http_cores(void);

/* Serves every CFG->listen address (HTTPS ones with CFG->tls_cert) with ROUTES (copied; CFG
 * is borrowed until sp_http_stop): each with its request threads (--threads, or one per
 * core), each thread with a listening socket of its own. NULL + ERR when an address cannot
 * be served: nothing serves then. */
sp_http_t *sp_http_start(const sp_config_t *cfg, const sp_http_routes_t *routes, char *err,
                         size_t errlen);

/* Re-reads the TLS certificate and key: 0 (new handshakes take them), 1 (no TLS), or -1
 * + ERR (the old pair stays). */
int sp_http_reload_tls(sp_http_t *h, char *err, size_t errlen);

/* The listen addresses in words ("http://127.0.0.1:8080 https://[::]:8443"). */
void sp_http_describe(const sp_http_t *h, char *buf, size_t len);

/* The certificate in use, in words; false (BUF untouched) without TLS. */
bool sp_http_describe_tls(const sp_http_t *h, char *buf, size_t len);

/* How many addresses it serves; the port the Ith is bound to (0 when there is none). */
size_t sp_http_addresses(const sp_http_t *h);
unsigned sp_http_port(const sp_http_t *h, size_t i);

/* Stops accepting new connections on every address; those open go on. */
void sp_http_quiesce(sp_http_t *h);

/* From now on no request is parked (sp_http_park refuses: handlers answer at once); waits
 * up to MAX_MS for the parked ones to be answered. Returns how many are still parked. */
int sp_http_drain(sp_http_t *h, int max_ms);

/* Stops the daemons (waiting, bounded, for the connections in flight) and frees H. NULL is
 * a no-op. */
void sp_http_stop(sp_http_t *h);

/* ---- parking: an answer that waits for another thread ------------------------------- */

/* Parks REQ: its connection is suspended and the request thread goes on serving others
 * until some thread calls sp_http_resume with REQ; then THEN (NULL: the route's handler
 * again) is called on a request thread and answers. Call it before handing REQ to the
 * thread that will resume it, which may do so at once. False when the server is shutting
 * down (sp_http_drain): nothing is parked, and the handler answers now. */
bool sp_http_park(sp_request_t *req, sp_http_handler_fn then);

/* Resumes WAITER, a parked sp_request_t, from any thread, once. Shaped as the journal's and
 * the ingest's callbacks (CTX is not used). */
void sp_http_resume(void *ctx, void *waiter);

/* ---- held answers: a streamed answer that waits between its pieces ------------------- */

/* The answer to one request that a reader sends a piece at a time, its connection parked
 * between pieces (no request thread waits) and resumed by another thread when the next piece
 * is due. */
typedef struct sp_http_held sp_http_held_t;

/* Gives the next piece: how many bytes it wrote in BUF (at most MAX), 0 after
 * sp_http_held_wait (the answer waits), or MHD_CONTENT_READER_END_OF_STREAM. On a request
 * thread. */
typedef ssize_t (*sp_http_held_read_fn)(void *cls, char *buf, size_t max);

/* The held answer to REQ (of unknown length) that READ gives; FREE_FN(CLS) at its end, however
 * it ends (sent, the client gone, the server stopping), also when it is never queued. *HELD
 * is its handle, valid until FREE_FN is called. The caller adds headers, queues it and
 * destroys its reference, as for any response. Aborts when out of memory. */
struct MHD_Response *sp_http_held_response(sp_request_t *req, sp_http_held_read_fn read,
                                           void (*free_fn)(void *cls), void *cls,
                                           sp_http_held_t **held);

/* From READ only: the answer waits until sp_http_held_resume (READ then returns 0). */
void sp_http_held_wait(sp_http_held_t *held);

/* From any thread, once per wait: READ is asked for the next piece. */
void sp_http_held_resume(sp_http_held_t *held);

/* The socket of the held answer's connection (for another thread to see its client hang up
 * while it waits: libmicrohttpd does not watch a parked connection), or -1. */
int sp_http_held_fd(const sp_http_held_t *held);

/* ---- request parts -------------------------------------------------------------------- */

/* The value of a request header / query argument, or NULL (borrowed until the request
 * ends). */
const char *sp_http_header(sp_request_t *req, const char *name);
const char *sp_http_arg(sp_request_t *req, const char *name);

/* Copies the value of the request's cookie NAME into BUF: false when it has none, or one
 * that does not fit. */
bool sp_http_cookie(sp_request_t *req, const char *name, char *buf, size_t len);

/* REQ's body as a JSON object (a new reference), or NULL with a message for a 400 answer in
 * MSG (UTF-8 whatever the body held). */
json_t *sp_http_body_json(sp_request_t *req, char *msg, size_t len);

/* Copies the Ith '*' segment of the route's path into BUF: false when it does not fit. */
bool sp_http_param(const sp_request_t *req, unsigned i, char *buf, size_t len);

/* "http://host:port" the request reached us as (CFG->public_url wins). */
void sp_http_origin(sp_request_t *req, char *buf, size_t len);

/* True when the client is this machine, speaking for itself: a loopback peer that forwards
 * for someone else (a reverse proxy not named with --trusted-proxy) is not local. */
bool sp_http_local(sp_request_t *req);

/* Bytes of request bodies in flight (held against --body-memory) on REQ's server. */
size_t sp_http_body_bytes(sp_request_t *req);

/* This thread's store connection for reading (opened on first use; closed when the thread
 * ends). NULL + log when the store cannot be opened. */
sp_store_t *sp_http_reader(sp_request_t *req);

/* One handler's data kept with REQ's connection until it closes, across the requests of a
 * keep-alive connection. FREE_FN frees it and is its key: sp_http_conn_data returns NULL
 * but to the handler that set it. Setting it frees what was there. */
void *sp_http_conn_data(sp_request_t *req, void (*free_fn)(void *));
void sp_http_set_conn_data(sp_request_t *req, void *data, void (*free_fn)(void *));

/* ---- answers (each returns what MHD_queue_response does; MHD_NO also when libmicrohttpd
 * cannot make the answer, which closes the connection) ------------------------------------ */

/* Answers with BODY (copied), no-store, the common security headers, HSTS and the route's
 * own headers. */
enum MHD_Result sp_http_respond(sp_request_t *req, unsigned status, const char *content_type,
                                const char *body, size_t len);

/* Answers TEXT as text/plain. */
enum MHD_Result sp_http_text(sp_request_t *req, unsigned status, const char *text);

/* Answers J (its reference is taken) as compact JSON; a J that cannot be encoded gets 500. */
enum MHD_Result sp_http_json(sp_request_t *req, unsigned status, json_t *j);

/* Answers {"error": MSG} with STATUS; counted in api_errors. */
enum MHD_Result sp_http_error(sp_request_t *req, unsigned status, const char *msg);

/* Adds the headers every answer carries (nosniff, frame-ancestors...). */
void sp_http_secure_headers(struct MHD_Response *resp, bool html);

/* Strict-Transport-Security on RESP when REQ came over HTTPS (RFC 6797). */
void sp_http_hsts(const sp_request_t *req, struct MHD_Response *resp);

/* Set-Cookie NAME=VALUE; ATTRS, Secure when REQ came over HTTPS. */
void sp_http_set_cookie(const sp_request_t *req, struct MHD_Response *resp, const char *name,
                        const char *value, const char *attrs);

#endif
