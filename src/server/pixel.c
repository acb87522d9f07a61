/* pixel: the tracking endpoints (the seed's URL, /o/ pixels, /c/ links, /i/ images) and their
 * answers. */
/* SPDX-License-Identifier: MIT */
#include "pixel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "images.h"
#include "log.h"
#include "metrics.h"
#include "url.h"
#include "text.h"

#define IMAGE_CACHE_MAX ((size_t)64 << 20) /* uploaded images kept in memory */

/* GIF89a, 1x1, one transparent colour: the smallest valid image every client shows. */
const unsigned char sp_pixel_gif[43] = {
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00,
    0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
};

#define VISITOR_COOKIE "spv"

struct sp_pixel {
    sp_pixel_options_t opt;
    struct MHD_Response *gif; /* the shared answer of the GIF without a cookie */
    sp_images_t *images;      /* uploaded images being served */
};

/* What one tracking request knows of its answer (REQ->state). */
typedef struct pixel_request {
    bool set_visitor; /* the answer sets a new visitor cookie */
    char visitor[40];
    char *redirect;            /* a click's destination (malloc'd), or NULL */
    sp_image_t *image;         /* an uploaded image to answer with (a reference), or NULL */
    struct MHD_Response *held; /* the block's read-time image to answer with, or NULL */
} pixel_request_t;

/* An image answer with a Set-Cookie, with what it sets: held by the request thread's recent
 * answers and by the connection that sent it last, each with a reference. */
typedef struct cookie_answer {
    struct MHD_Response *resp;
    atomic_int refs;
    char visitor[40];
    bool https;
} cookie_answer_t;

/* The request thread's last RECENT_ANSWERS cookie answers, replaced in turn. */
#define RECENT_ANSWERS 16
typedef struct recent_answers {
    cookie_answer_t *at[RECENT_ANSWERS];
    unsigned next;
} recent_answers_t;

/* snprintf(DST, SIZE, "%s", SRC) without the formatting machinery: it runs several times
 * for every open. */
static void copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void add_image_headers(struct MHD_Response *resp, const char *mime)
{
    MHD_add_response_header(resp, "Content-Type", mime);
    /* Every open must reach us: no browser, proxy or CDN may keep a copy. */
    MHD_add_response_header(resp, "Cache-Control",
                            "no-store, no-cache, must-revalidate, max-age=0");
    MHD_add_response_header(resp, "Pragma", "no-cache");
    MHD_add_response_header(resp, "Expires", "0");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* Webmail shows the image inside its own page. */
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "cross-origin");
}

static struct MHD_Response *gif_response(void)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        sizeof(sp_pixel_gif), (void *)sp_pixel_gif, MHD_RESPMEM_PERSISTENT);
    if (resp)
        add_image_headers(resp, "image/gif");
    return resp;
}

/* A first-party visitor cookie ties repeated opens of one client together even when the
 * URL is shared by everybody. Cross-site image loads carry it only as SameSite=None,
 * which browsers accept only with Secure. */
static void add_visitor_cookie(struct MHD_Response *resp, const sp_request_t *req)
{
    const pixel_request_t *pr = req->state;
    if (!pr->set_visitor)
        return;
    /* Put together by hand: snprintf showed in profiles of the open path. */
    static const char head[] = VISITOR_COOKIE "=", attrs[] = "; Path=/; Max-Age=31536000; HttpOnly",
                      secure[] = "; Secure; SameSite=None", lax[] = "; SameSite=Lax";
    char cookie[sizeof(head) + sizeof(pr->visitor) + sizeof(attrs) + sizeof(secure)];
    size_t v = strnlen(pr->visitor, sizeof(pr->visitor) - 1);
    char *p = cookie;
    memcpy(p, head, sizeof(head) - 1);
    p += sizeof(head) - 1;
    memcpy(p, pr->visitor, v);
    p += v;
    memcpy(p, attrs, sizeof(attrs) - 1);
    p += sizeof(attrs) - 1;
    if (req->https)
        memcpy(p, secure, sizeof(secure));
    else
        memcpy(p, lax, sizeof(lax));
    MHD_add_response_header(resp, "Set-Cookie", cookie);
}

/* The image answer with this request's new visitor cookie. Building one costs two dozen
 * allocations, and the same cookie goes to the same client again and again: a keep-alive
 * connection's client (one address, usually one agent: a mail proxy fetching for many
 * readers, a browser loading several images) on every request, and a mail provider's image
 * proxy, whose opens from one address and agent share a visitor ID, on connection after
 * connection. So the connection keeps the answer it sent last, and the request thread its
 * last RECENT_ANSWERS, and either is sent again when it sets the same cookie. */
static void cookie_answer_drop(void *p)
{
    cookie_answer_t *c = p;
    if (c && 1 == atomic_fetch_sub(&c->refs, 1)) {
        MHD_destroy_response(c->resp);
        free(c);
    }
}

static pthread_key_t recent_key;
static pthread_once_t recent_once = PTHREAD_ONCE_INIT;

static void recent_free(void *p)
{
    recent_answers_t *r = p;
    for (unsigned i = 0; i < RECENT_ANSWERS; i++)
        cookie_answer_drop(r->at[i]);
    free(r);
}

static void recent_init(void)
{
    pthread_key_create(&recent_key, recent_free);
}

static bool sets(const cookie_answer_t *c, const sp_request_t *req)
{
    const pixel_request_t *pr = req->state;
    return c && c->https == req->https && 0 == strcmp(c->visitor, pr->visitor);
}

/* The thread's recent answer that sets REQ's cookie, made (and kept, replacing the oldest)
 * when there is none; borrowed. NULL when libmicrohttpd cannot make one. */
static cookie_answer_t *recent_answer(sp_request_t *req)
{
    pthread_once(&recent_once, recent_init);
    recent_answers_t *r = pthread_getspecific(recent_key);
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            abort();
        pthread_setspecific(recent_key, r);
    }
    for (unsigned i = 0; i < RECENT_ANSWERS; i++)
        if (sets(r->at[i], req))
            return r->at[i];
    struct MHD_Response *resp = gif_response();
    if (!resp)
        return NULL;
    add_visitor_cookie(resp, req);
    cookie_answer_t *c = malloc(sizeof(*c));
    if (!c)
        abort();
    c->resp = resp;
    atomic_init(&c->refs, 1); /* the thread's */
    c->https = req->https;
    copy_text(c->visitor, sizeof(c->visitor), ((const pixel_request_t *)req->state)->visitor);
    cookie_answer_drop(r->at[r->next]);
    r->at[r->next] = c;
    r->next = (r->next + 1) % RECENT_ANSWERS;
    return c;
}

static enum MHD_Result answer_cookie_pixel(sp_request_t *req)
{
    cookie_answer_t *c = sp_http_conn_data(req, cookie_answer_drop);
    if (sets(c, req))
        return MHD_queue_response(req->conn, 200, c->resp);
    c = recent_answer(req);
    if (!c)
        return MHD_NO;
    atomic_fetch_add(&c->refs, 1); /* the connection's, dropped at its close or next answer */
    sp_http_set_conn_data(req, c, cookie_answer_drop);
    return MHD_queue_response(req->conn, 200, c->resp);
}

static void release_image(void *image)
{
    sp_image_release(image);
}

static enum MHD_Result answer_image(sp_request_t *req)
{
    const sp_pixel_t *px = req->ctx;
    pixel_request_t *pr = req->state;
    if (pr->held) {
        struct MHD_Response *resp = pr->held;
        pr->held = NULL;
        add_image_headers(resp, "image/gif");
        add_visitor_cookie(resp, req);
        enum MHD_Result rc = MHD_queue_response(req->conn, 200, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (!pr->image)
        return pr->set_visitor ? answer_cookie_pixel(req)
                               : MHD_queue_response(req->conn, 200, px->gif);
    /* Every reader is sent the one shared copy; the answer holds a reference until
     * libmicrohttpd is done with it, however slowly its reader reads. */
    sp_image_t *im = sp_image_ref(pr->image);
    struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
        im->len, (void *)im->data, release_image, im);
    if (!resp) {
        sp_image_release(im);
        return MHD_NO;
    }
    add_image_headers(resp, im->mime);
    add_visitor_cookie(resp, req);
    enum MHD_Result rc = MHD_queue_response(req->conn, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result answer_redirect(sp_request_t *req)
{
    const pixel_request_t *pr = req->state;
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Location", pr->redirect);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    add_visitor_cookie(resp, req);
    enum MHD_Result rc = MHD_queue_response(req->conn, 302, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* The answer: at once, or once the record is where --sync-full or --answer-after store
 * wants it (the request parked meanwhile). */
static enum MHD_Result answer(sp_request_t *req)
{
    const pixel_request_t *pr = req->state;
    return pr->redirect ? answer_redirect(req) : answer_image(req);
}

struct header_walk {
    sp_event_t *ev;
    sp_auth_t *auth;
    bool anonymize;
    bool self_cookie; /* the first Cookie header holds a valid self-view cookie */
};

/* Each request thread builds its events in one scratch event and encodes them into one
 * buffer, both as large as an event can be: no allocation per open. */
typedef struct scratch {
    sp_event_t *ev;
    unsigned char record[SP_EVENT_ENCODED_MAX];
} scratch_t;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void scratch_free(void *p)
{
    scratch_t *sc = p;
    sp_event_free(sc->ev);
    free(sc);
}

static void scratch_init(void)
{
    pthread_key_create(&scratch_key, scratch_free);
}

static scratch_t *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_init);
    scratch_t *sc = pthread_getspecific(scratch_key);
    if (!sc) {
        sc = malloc(sizeof(*sc));
        if (!sc)
            abort();
        sc->ev = sp_event_new(SP_HEADERS_MAX * (SP_HEADER_NAME_MAX + SP_HEADER_MAX + 2) +
                              SP_TARGET_MAX + 1);
        pthread_setspecific(scratch_key, sc);
    }
    sp_event_reset(sc->ev);
    return sc;
}

/* Headers that carry client addresses: with --anonymize-ip their values are not kept. */
static const char *const address_headers[] = {
    "X-Forwarded-For",     "Forwarded",        "X-Real-IP",
    "True-Client-IP",      "X-Client-IP",      "CF-Connecting-IP",
    "X-Cluster-Client-IP", "Fastly-Client-IP", "X-Original-Forwarded-For",
};
#define ADDRESS_REMOVED "(removed: --anonymize-ip)"

static bool carries_address(const char *name)
{
    for (size_t i = 0; i < sizeof(address_headers) / sizeof(address_headers[0]); i++)
        if (0 == strcasecmp(name, address_headers[i]))
            return true;
    return false;
}

/* True when COOKIE (the request's first Cookie header) holds a valid self-view cookie, read
 * from what an event keeps of the header (its first SP_HEADER_MAX bytes). */
static bool self_cookie_valid(sp_auth_t *auth, const char *cookie)
{
    char value[128], cut[SP_HEADER_MAX + 1];
    if (!strstr(cookie, SP_COOKIE_SELF))
        return false;
    size_t n = strlen(cookie);
    if (n > SP_HEADER_MAX) {
        memcpy(cut, cookie, SP_HEADER_MAX);
        cut[SP_HEADER_MAX] = '\0';
        cookie = cut;
    }
    return 0 == sp_event_cookie(cookie, SP_COOKIE_SELF, value, sizeof(value)) &&
           sp_auth_self_cookie_valid(auth, value);
}

static enum MHD_Result copy_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct header_walk *w = cls;
    (void)kind;
    if (w->anonymize && carries_address(key))
        value = ADDRESS_REMOVED;
    bool had_cookie = NULL != w->ev->cookie;
    if (0 != sp_event_add_header(w->ev, key, strlen(key), value, value ? strlen(value) : 0))
        return MHD_NO;
    /* The event keeps the header without our cookies' values: the self-view cookie is
     * checked on the request's own. */
    if (!had_cookie && w->ev->cookie)
        w->self_cookie = value && self_cookie_valid(w->auth, value);
    return MHD_YES;
}

/* A visitor ID we issued: 32 hex digits. Anything else is replaced. */
static bool visitor_valid(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++)
        if (!strchr("0123456789abcdef", v[n]))
            return false;
    return 32 == n;
}

static bool referer_is_dashboard(sp_request_t *req, const char *referer)
{
    if (!referer)
        return false;
    char origin[320];
    sp_http_origin(req, origin, sizeof(origin));
    size_t n = strlen(origin);
    return 0 == strncasecmp(referer, origin, n) && ('/' == referer[n] || '\0' == referer[n]);
}

/* Records one open or click in the journal, then answers (with --sync-full once the
 * record is on disk). Bad input never stops the answer: the image (or the redirect) goes
 * out in every case. */
static enum MHD_Result record(sp_request_t *req, sp_event_kind_t kind, sp_event_engage_t engage,
                              const char *campaign, const char *recipient)
{
    const sp_pixel_t *px = req->ctx;
    const sp_config_t *cfg = px->opt.cfg;
    pixel_request_t *pr = req->state;
    if (0 != strcmp(req->method, "GET")) /* HEAD: link checkers, nothing to count */
        return answer(req);

    scratch_t *sc = scratch_get();
    sp_event_t *ev = sc->ev;
    struct header_walk w = {.ev = ev, .auth = px->opt.auth, .anonymize = cfg->anonymize_ip};
    MHD_get_connection_values(req->conn, MHD_HEADER_KIND, copy_header, &w);

    ev->ts_ms = sp_now_ms();
    ev->kind = kind;
    copy_text(ev->campaign, sizeof(ev->campaign), campaign);
    copy_text(ev->recipient, sizeof(ev->recipient), recipient ? recipient : "");
    sp_event_set_target(ev, pr->redirect ? pr->redirect : ""); /* room kept by scratch_get */
    ev->addr = req->client;
    if (cfg->anonymize_ip) {
        sp_net_anonymize(&ev->addr); /* before anything is stored or derived from it */
        sp_net_format(&ev->addr, ev->ip, sizeof(ev->ip));
    } else {
        copy_text(ev->ip, sizeof(ev->ip), req->client_ip); /* req->client, formatted */
    }

    char value[128];
    if (0 == sp_event_cookie(ev->cookie, VISITOR_COOKIE, value, sizeof(value)) &&
        visitor_valid(value)) {
        snprintf(ev->visitor, sizeof(ev->visitor), "%.32s", value);
    } else {
        /* The ID a cookieless client gets is derived from its address and agent, so
         * its opens count as one client before and after it keeps the cookie. */
        sp_auth_visitor_id(px->opt.auth, ev->ip, ev->user_agent, ev->visitor, sizeof(ev->visitor));
        pr->set_visitor = true;
    }
    copy_text(pr->visitor, sizeof(pr->visitor), ev->visitor);

    ev->self_referer = referer_is_dashboard(req, ev->referer);
    ev->self_cookie = w.self_cookie;
    ev->self_ip = sp_auth_recent_dashboard_ip(px->opt.auth, &req->client);

    /* The block's image is held to time the read, unless its client is a caching proxy or the
     * held ones are at the cap: then it is the plain image and the open unmeasured. */
    ev->engage = engage;
    if (SP_ENGAGE_PENDING == engage) {
        if (!sp_engage_measurable(ev->user_agent)) {
            ev->engage = SP_ENGAGE_UNMEASURED;
        } else if (sp_engage_reserve(px->opt.engage)) {
            pr->held = sp_engage_response(px->opt.engage, req, ev);
        } else {
            ev->engage = SP_ENGAGE_UNMEASURED;
            sp_metric_inc(reads_over_cap);
        }
    }

    size_t len = sp_event_encode(ev, sc->record);
    sp_journal_t *journal = px->opt.journal;
    if (!cfg->sync_full && !cfg->answer_after_store) {
        /* In the page cache now, so a crash of the process cannot lose it. (Refused only when
         * the disk refuses it and the journal's memory spill is full: the journal counts and
         * logs those.) */
        if (sp_journal_append(journal, sc->record, len, NULL) < 0)
            sp_metric_inc(opens_failed);
        else
            sp_metric_inc(opens_journaled);
        return answer(req);
    }

    /* The answer waits for the disk (--sync-full) or the store (--answer-after store): the
     * request is parked before the append, which may resume it at once. Shutting down, it is
     * not (the shutdown syncs and indexes the record). Degraded, the answer does not wait for
     * what cannot come: a record the journal holds in memory (its disk refuses it) is
     * answered at once (with --sync-full the journal tells the waiter itself), and so is one
     * the store will not take soon (faulted, or stalled: see sp_ingest_notify). Waiting for a
     * disk or a store that may not come back would hold every connection; /healthz says 503
     * meanwhile, and the open is kept all the same. */
    bool parked = sp_http_park(req, answer);
    void *sync_waiter = parked && !cfg->answer_after_store ? req : NULL;
    int64_t end = sp_journal_append(journal, sc->record, len, sync_waiter);
    if (end < 0) {
        sp_metric_inc(opens_failed);
        if (parked)
            sp_http_resume(NULL, req); /* answered from the next call */
    } else {
        sp_metric_inc(opens_journaled);
        if (parked && cfg->answer_after_store &&
            (end > sp_journal_end(journal) || !sp_ingest_notify(px->opt.ingest, end, 0, req)))
            sp_http_resume(NULL, req);
    }
    return parked ? MHD_YES : answer(req);
}

static enum MHD_Result seed(sp_request_t *req)
{
    sp_metric_inc(pixel_requests);
    const char *campaign = sp_http_arg(req, "campaign");
    const char *email = sp_http_arg(req, "email");
    if (email && !*email)
        email = NULL;
    if (!sp_event_id_valid(campaign) || (email && !sp_event_id_valid(email))) {
        sp_metric_inc(opens_invalid);
        return answer_image(req);
    }
    return record(req, SP_EVENT_OPEN, SP_ENGAGE_NONE, campaign, email);
}

/* Whether TEXT[0..LEN) is a token of ours, of KIND, naming IDs that are valid: *DATA. */
static bool token_holds(const sp_pixel_t *px, const char *text, size_t len, sp_token_kind_t kind,
                        sp_token_data_t *data)
{
    return 0 == sp_token_open(px->opt.tokens, text, len, data) && kind == data->kind &&
           sp_event_id_valid(data->campaign) &&
           (!data->recipient[0] || sp_event_id_valid(data->recipient));
}

static enum MHD_Result opaque(sp_request_t *req)
{
    const sp_pixel_t *px = req->ctx;
    const char *path = req->rest;
    sp_metric_inc(pixel_requests);
    size_t n = strlen(path);
    sp_token_data_t data;
    if (n < 4 || 0 != strcmp(path + n - 4, ".gif") ||
        0 != sp_token_open(px->opt.tokens, path, n - 4, &data) ||
        !sp_event_id_valid(data.campaign) ||
        (data.recipient[0] && !sp_event_id_valid(data.recipient))) {
        sp_metric_inc(opens_invalid);
        return answer_image(req);
    }
    /* The pixel and the tracking block's images share the route; the token says which. */
    switch (data.kind) {
    case SP_TOKEN_OPEN:
        return record(req, SP_EVENT_OPEN, SP_ENGAGE_NONE, data.campaign, data.recipient);
    case SP_TOKEN_READ:
        return record(req, SP_EVENT_OPEN, SP_ENGAGE_PENDING, data.campaign, data.recipient);
    case SP_TOKEN_PRINT:
        return record(req, SP_EVENT_PRINT, SP_ENGAGE_NONE, data.campaign, data.recipient);
    case SP_TOKEN_FORWARD:
        return record(req, SP_EVENT_FORWARD, SP_ENGAGE_NONE, data.campaign, data.recipient);
    default:
        sp_metric_inc(opens_invalid);
        return answer_image(req);
    }
}

static const char link_invalid[] = "This tracked link is not valid.\n";

static enum MHD_Result click(sp_request_t *req)
{
    const sp_pixel_t *px = req->ctx;
    pixel_request_t *pr = req->state;
    const char *path = req->rest;
    sp_metric_inc(click_requests);
    sp_token_data_t data;
    if (!token_holds(px, path, strlen(path), SP_TOKEN_CLICK, &data) ||
        (!sp_has_prefix(data.extra, "https://") && !sp_has_prefix(data.extra, "http://"))) {
        /* A forged link must not become an open redirect: no Location at all. */
        sp_metric_inc(opens_invalid);
        return sp_http_text(req, 404, link_invalid);
    }
    /* Links made before targets were checked may hold one that is no valid URL: it is
     * written as one, or, when it cannot be (a control character, no host), not sent. */
    char target[3 * sizeof(data.extra)], why[160]; /* escaping may triple it */
    if (0 != sp_url_target(data.extra, target, sizeof(target), why, sizeof(why))) {
        char quoted[200];
        sp_metric_inc(opens_invalid);
        sp_log_warn("a tracked link's target is not a valid URL: the click is not recorded",
                    "campaign=%s reason=%s", data.campaign,
                    sp_log_quote(why, quoted, sizeof(quoted)));
        return sp_http_text(req, 404, link_invalid);
    }
    pr->redirect = strdup(target);
    if (!pr->redirect)
        abort();
    return record(req, SP_EVENT_CLICK, SP_ENGAGE_NONE, data.campaign, data.recipient);
}

static enum MHD_Result image(sp_request_t *req)
{
    const sp_pixel_t *px = req->ctx;
    pixel_request_t *pr = req->state;
    const char *path = req->rest;
    sp_metric_inc(pixel_requests);
    const char *dot = strrchr(path, '.');
    sp_token_data_t data;
    if (!dot || !token_holds(px, path, (size_t)(dot - path), SP_TOKEN_IMAGE, &data)) {
        sp_metric_inc(opens_invalid);
        return answer_image(req);
    }
    char err[256];
    sp_store_t *store = sp_http_reader(req);
    int rc =
        store ? sp_images_get(px->images, store, data.extra, &pr->image, err, sizeof(err)) : -1;
    if (rc < 0)
        sp_log_error("cannot read a tracking image", "error=\"%s\"", store ? err : "no store");
    /* A lost image still answers: the 1x1 GIF stands in, and the load is recorded. */
    return record(req, SP_EVENT_OPEN, SP_ENGAGE_NONE, data.campaign, data.recipient);
}

/* At the request's end. */
static void done(sp_request_t *req)
{
    pixel_request_t *pr = req->state;
    sp_image_release(pr->image);
    if (pr->held) /* never queued: nothing was sent, so no read is journaled */
        MHD_destroy_response(pr->held);
    free(pr->redirect);
}

#define TRACKING(PATH, FLAGS, HANDLER)                                                             \
    {                                                                                              \
        .path = PATH, .methods = SP_HTTP_GET | SP_HTTP_HEAD, .flags = FLAGS, .handle = HANDLER,    \
        .state_size = sizeof(pixel_request_t), .done = done,                                       \
    }

static const sp_route_t routes[] = {
    TRACKING("/spy-pixel.gif", 0, seed),
    TRACKING("/o/", SP_ROUTE_PREFIX, opaque),
    TRACKING("/c/", SP_ROUTE_PREFIX, click),
    TRACKING("/i/", SP_ROUTE_PREFIX, image),
};

void sp_pixel_routes(sp_http_routes_t *table, sp_pixel_t *px)
{
    sp_http_routes_add(table, routes, sizeof(routes) / sizeof(routes[0]), px);
}

sp_pixel_t *sp_pixel_new(const sp_pixel_options_t *opt)
{
    sp_pixel_t *px = calloc(1, sizeof(*px));
    if (!px)
        abort();
    px->opt = *opt;
    px->gif = gif_response();
    if (!px->gif)
        abort();
    px->images = sp_images_new(IMAGE_CACHE_MAX);
    return px;
}

void sp_pixel_free(sp_pixel_t *px)
{
    if (!px)
        return;
    MHD_destroy_response(px->gif);
    sp_images_free(px->images);
    free(px);
}
