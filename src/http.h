/* http: the libmicrohttpd daemon, request state, routing, limits and security headers. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_HTTP_H
#define SP_HTTP_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "auth.h"
#include "config.h"
#include "engage.h"
#include "enrich.h"
#include "guard.h"
#include "images.h"
#include "ingest.h"
#include "journal.h"
#include "listen.h"
#include "live.h"
#include "store.h"
#include "tls.h"
#include "token.h"
#include "webhook.h"

#define SP_BODY_MAX        (1u << 20) /* JSON bodies */
#define SP_IMAGE_MAX       (8u << 20) /* uploaded tracking images */
#define SP_LOGIN_MAX       (8u << 10) /* the login's body, the one read before credentials */
#define SP_IMAGE_CACHE_MAX ((size_t)64 << 20) /* uploaded images kept in memory */

typedef struct sp_server {
    sp_config_t *cfg;
    sp_journal_t *journal;
    sp_ingest_t *ingest;
    sp_enrich_t *enrich;
    sp_auth_t *auth;
    sp_token_t *tokens;
    sp_live_t *live;
    sp_webhook_t *webhook;                          /* NULL without --webhook */
    sp_engage_t *engage;                            /* the block's held read-time images */
    sp_listen_t listen[SP_CONFIG_LIST_MAX];         /* the --listen addresses */
    struct MHD_Daemon *daemons[SP_CONFIG_LIST_MAX]; /* one each */
    size_t n_daemons;
    sp_tls_t *tls;              /* NULL without --tls-cert */
    sp_guard_t *guard;          /* head deadline, per-address cap, shedding */
    sp_images_t *images;        /* uploaded images being served */
    atomic_size_t body_bytes;   /* request bodies in flight, against cfg->body_memory */
    pthread_key_t reader_key;   /* each request thread's own store connection */
    struct MHD_Response *pixel; /* the shared 43-byte GIF answer */
    /* Parked requests: tracking requests until their record is on disk (--sync-full) or
     * in the store (--answer-after store), API reads until the store has caught up.
     * Shutdown: once closing is set, requests are no longer parked; the server waits until
     * no request is parked before it stops the daemon. */
    atomic_bool closing;
    atomic_int parked;
} sp_server_t;

/* Per-connection state, libmicrohttpd's socket context: from accept to close. */
typedef struct sp_connection {
    sp_guard_conn_t guard;
    struct MHD_Response *cookie_answer; /* the last image answer with a Set-Cookie, or NULL */
    char visitor[40];                   /* the visitor ID it sets */
    bool https;
    void *tls_hold; /* the certificate its TLS handshake took (tls.h), or NULL */
} sp_connection_t;

/* Per-request state, kept in libmicrohttpd's con_cls from the first call to completion. */
typedef struct sp_request {
    sp_server_t *srv;
    struct MHD_Connection *conn;
    sp_connection_t *connection; /* its socket context */
    const char *method, *url;
    bool waiting;         /* suspended until our journal record is on disk (--sync-full) */
    unsigned set_visitor; /* 1: the image answer sets a new visitor cookie */
    char visitor[40];
    char *redirect;    /* a click's destination (malloc'd), or NULL */
    sp_image_t *image; /* an uploaded tracking image to answer with (a reference), or NULL */
    struct MHD_Response *held; /* the block's read-time image to answer with (engage.c), or NULL */
    sp_net_addr_t client;      /* after trusted-proxy handling */
    char client_ip[SP_NET_ADDR_MAX];
    bool https; /* reached over TLS (through a trusted proxy) */
    /* The body: read into BODY (malloc'd, BODY_MAX + 1 bytes, counted in srv->body_bytes)
     * when its route takes one, else dropped as it comes (DISCARD). */
    char *body;
    size_t body_len, body_max;
    bool body_too_big;
    bool discard;
    bool unvouched; /* no credentials vouch for it: the guard's deadline holds until it is in */
    int64_t index_behind; /* journal bytes this read's answer may miss (0: none) */
    enum { READ_BARRIER_NONE, READ_BARRIER_PARKED, READ_BARRIER_DONE } barrier;
    int64_t barrier_pos;    /* the journal end a parked read waits for */
    struct sp_login *login; /* a login parked for its password check (login.c), or NULL */
} sp_request_t;

/* Journal bytes answered but not yet indexed into the store. */
int64_t sp_http_backlog(sp_server_t *srv);

/* Before a read of the store, so that it sees every open answered before it: true when
 * REQ was parked until the writer has indexed them (at most a second; the handler is
 * called again then, and this returns false). False to go on now; req->index_behind is
 * then the backlog the answer may miss (a burst's, which is not waited for). WHOLE (an
 * erasure): any backlog is waited for, up to 30 s. */
bool sp_http_read_barrier(sp_request_t *req, bool whole);

/* X-Index-Backlog-Bytes on RESP when REQ's read did not wait for the whole backlog. */
void sp_http_backlog_header(const sp_request_t *req, struct MHD_Response *resp);

/* Starts serving every CFG->listen address (HTTPS ones with CFG->tls_cert). 0, or -1 +
 * ERR. */
int sp_http_start(sp_server_t *srv, char *err, size_t errlen);

/* Re-reads the TLS certificate and key: 0 (new handshakes take them), 1 (no TLS), or -1
 * + ERR (the old pair stays). */
int sp_http_reload_tls(sp_server_t *srv, char *err, size_t errlen);

/* The listen addresses in words ("http://127.0.0.1:8080 https://[::]:8443"). */
void sp_http_describe(const sp_server_t *srv, char *buf, size_t len);

/* Stops accepting new connections on every address; those open go on. */
void sp_http_quiesce(sp_server_t *srv);

/* Stops taking connections, waits (bounded) for the ones in flight, then stops. */
void sp_http_stop(sp_server_t *srv);

/* This thread's store connection for reading (opened on first use). NULL + log on error. */
sp_store_t *sp_http_reader(sp_server_t *srv);

/* Answers with BODY (copied) and the common security headers. */
enum MHD_Result sp_http_respond(sp_request_t *req, unsigned status, const char *content_type,
                                const char *body, size_t len);

/* Answers {"error": MSG} with STATUS. */
enum MHD_Result sp_http_error(sp_request_t *req, unsigned status, const char *msg);

/* Adds the headers every answer carries (nosniff, frame-ancestors...). */
void sp_http_secure_headers(struct MHD_Response *resp, bool html);

/* Strict-Transport-Security on RESP when REQ came over HTTPS (RFC 6797). */
void sp_http_hsts(const sp_request_t *req, struct MHD_Response *resp);

/* The value of a request header / query argument (borrowed until the request ends). */
const char *sp_http_header(sp_request_t *req, const char *name);
const char *sp_http_arg(sp_request_t *req, const char *name);

/* "http://host:port" the request reached us as (CFG->public_url wins). */
void sp_http_origin(sp_request_t *req, char *buf, size_t len);

#endif
