/* http: the libmicrohttpd daemon, request state, routing, limits and security headers. */
/* SPDX-License-Identifier: MIT */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "assets.h"
#include "log.h"
#include "login.h"
#include "metrics.h"
#include "pixel.h"
#include "utf8.h"

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

/* libmicrohttpd's memory per connection: the request's headers, its parsed fields and the
 * answer's headers live in it. It zeroes all of it between the requests of a keep-alive
 * connection, which showed as 5-8% of a core's time at 32 KiB. 16 KiB still takes header
 * blocks twice as large as nginx's 8 KiB per line; larger ones get 431. */
#define SP_CONNECTION_MEMORY ((size_t)16 * 1024)

/* The most a read waits for the writer, and the backlog it waits for at most. */
#define READ_BARRIER_MAX_MS    1000
#define READ_BARRIER_MAX_BYTES ((int64_t)4 << 20)
/* An erasure waits for the whole backlog, however large, this long at most: what it
 * leaves in the journal would be stored after it. */
#define ERASE_BARRIER_MAX_MS 30000

enum MHD_Result sp_http_respond(sp_request_t *req, unsigned status, const char *content_type,
                                const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", content_type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    sp_http_secure_headers(resp, false);
    sp_http_hsts(req, resp);
    sp_http_backlog_header(req, resp);
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result sp_http_error(sp_request_t *req, unsigned status, const char *msg)
{
    json_t *j = json_pack("{s:s}", "error", msg);
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) /* MSG was not UTF-8: the answer still goes out, and says so */
        body = strdup("{\"error\":\"(an error message that was not UTF-8)\"}");
    if (!body)
        abort();
    sp_metric_inc(api_errors);
    enum MHD_Result rc = sp_http_respond(req, status, "application/json", body, strlen(body));
    free(body);
    return rc;
}

const char *sp_http_header(sp_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *sp_http_arg(sp_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

void sp_http_origin(sp_request_t *req, char *buf, size_t len)
{
    const sp_config_t *cfg = req->srv->cfg;
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
                if (0 == strncasecmp(p, "for=", 4))
                    addr = p + 4;
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
    const sp_config_t *cfg = req->srv->cfg;
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
    if (0 == strncmp(cfg->public_url, "https:", 6) || over_tls(req->conn))
        req->https = true;
    sp_net_format(&req->client, req->client_ip, sizeof(req->client_ip));
}

/* ---- store connections for reading -------------------------------------------- */

static void close_reader(void *store)
{
    sp_store_close(store);
}

sp_store_t *sp_http_reader(sp_server_t *srv)
{
    sp_store_t *s = pthread_getspecific(srv->reader_key);
    if (s)
        return s;
    char err[512];
    s = sp_store_open(srv->cfg, err, sizeof(err));
    if (!s) {
        sp_log_error("cannot open the store for reading", "error=\"%s\"", err);
        return NULL;
    }
    pthread_setspecific(srv->reader_key, s);
    return s;
}

/* ---- routing ------------------------------------------------------------------ */

int64_t sp_http_backlog(sp_server_t *srv)
{
    /* Opens held in memory while the journal cannot be written are part of it. */
    return sp_journal_accepted_end(srv->journal) - sp_ingest_indexed(srv->ingest);
}

void sp_http_backlog_header(const sp_request_t *req, struct MHD_Response *resp)
{
    if (req->index_behind <= 0)
        return;
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)req->index_behind);
    MHD_add_response_header(resp, "X-Index-Backlog-Bytes", v);
}

bool sp_http_read_barrier(sp_request_t *req, bool whole)
{
    sp_server_t *srv = req->srv;
    if (READ_BARRIER_PARKED == req->barrier) {
        /* Resumed: the store caught up to barrier_pos, or the time ran out. */
        req->barrier = READ_BARRIER_DONE;
        atomic_fetch_sub(&srv->parked, 1);
        if (sp_ingest_indexed(srv->ingest) < req->barrier_pos)
            req->index_behind = sp_http_backlog(srv);
        return false;
    }
    if (READ_BARRIER_DONE == req->barrier)
        return false;
    req->barrier = READ_BARRIER_DONE;
    int64_t end = sp_journal_accepted_end(srv->journal);
    int64_t behind = end - sp_ingest_indexed(srv->ingest);
    if (behind <= 0)
        return false;
    /* A small backlog is a commit or two away: the request is parked until the writer has
     * indexed it, so that an open answered before this read is in its answer. A burst's
     * backlog is not waited for; the answer says how far behind it is. Parked, not blocked:
     * the thread goes on answering pixels meanwhile. */
    atomic_fetch_add(&srv->parked, 1); /* before closing is looked at, as in pixel.c */
    if ((!whole && behind > READ_BARRIER_MAX_BYTES) || atomic_load(&srv->closing)) {
        atomic_fetch_sub(&srv->parked, 1);
        req->index_behind = behind;
        return false;
    }
    req->barrier = READ_BARRIER_PARKED;
    req->barrier_pos = end;
    MHD_suspend_connection(req->conn);
    if (!sp_ingest_notify(srv->ingest, end, whole ? ERASE_BARRIER_MAX_MS : READ_BARRIER_MAX_MS,
                          req->conn))
        MHD_resume_connection(req->conn); /* indexed meanwhile */
    return true;
}

static enum MHD_Result serve_asset(sp_request_t *req)
{
    const sp_asset_t *a = sp_assets_find(req->url);
    const char *slash = strrchr(req->url, '/');
    /* A missing file is a 404; any other path gets the page, which routes itself. */
    if (!a && !strchr(slash ? slash : req->url, '.'))
        a = sp_assets_find("/index.html");
    if (!a)
        return sp_http_respond(req, 404, "text/plain; charset=utf-8", "not found\n", 10);
    const char *inm = sp_http_header(req, "If-None-Match");
    bool fresh = inm && 0 == strcmp(inm, a->etag);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        fresh ? 0 : a->len, fresh ? NULL : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", a->mime);
    MHD_add_response_header(resp, "ETag", a->etag);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    sp_http_secure_headers(resp, true);
    sp_http_hsts(req, resp);
    enum MHD_Result rc = MHD_queue_response(req->conn, fresh ? 304 : 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void add_problem(json_t *problems, const char *text)
{
    char *clean = sp_utf8_clean(text); /* a path or a store's message may be anything */
    json_array_append_new(problems, json_string(clean ? clean : text));
    free(clean);
}

/* 200 while every answered open is kept on disk and indexed; 503, with what is wrong, while
 * the journal cannot be written (opens are held in memory, and dropped once that is full) or
 * the store is faulted (indexing has stopped; the journal keeps the opens): a load balancer
 * sends the opens to another server meanwhile. */
static enum MHD_Result healthz(sp_request_t *req)
{
    sp_server_t *srv = req->srv;
    sp_journal_stats_t st;
    sp_journal_stats(srv->journal, &st);
    char why[512], text[1024];
    json_t *problems = json_array();
    if (st.error) {
        snprintf(text, sizeof(text),
                 "journal: cannot be written (%s) for %lld s: %" PRIu64 " opens held in memory "
                 "(%" PRIu64 " of %" PRIu64 " bytes), %" PRIu64 " dropped",
                 strerror(st.error), (long long)(sp_now_ms() - st.error_since) / 1000, st.held,
                 st.held_bytes, st.held_max, st.dropped);
        add_problem(problems, text);
    }
    int64_t since = 0;
    if (sp_ingest_failing(srv->ingest, &since, why, sizeof(why)) &&
        sp_now_ms() - since >= SP_INGEST_STALL_MS) {
        snprintf(text, sizeof(text),
                 "store: commits have failed for %lld s (%s); the journal keeps the opens",
                 (long long)(sp_now_ms() - since) / 1000, why);
        add_problem(problems, text);
    }
    if (sp_ingest_halted(srv->ingest, why, sizeof(why))) {
        snprintf(text, sizeof(text),
                 "store: %s; indexing has stopped, the journal keeps the opens until a restart "
                 "on a repaired or restored store",
                 why);
        add_problem(problems, text);
    }
    bool ok = 0 == json_array_size(problems);
    json_t *body =
        json_pack("{s:s, s:o, s:I, s:{s:I, s:I, s:I, s:I}}", "status", ok ? "ok" : "degraded",
                  "problems", problems, "index_backlog_bytes", (json_int_t)sp_http_backlog(srv),
                  "journal", "held", (json_int_t)st.held, "held_bytes", (json_int_t)st.held_bytes,
                  "dropped", (json_int_t)st.dropped, "damaged", (json_int_t)st.damaged);
    char *out = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!out)
        abort();
    enum MHD_Result rc = sp_http_respond(req, ok ? 200 : 503, "application/json", out, strlen(out));
    free(out);
    return rc;
}

/* /metrics shows only counts, but what an operator's server does is theirs to show:
 * by default to clients on this machine and to API tokens (Prometheus's
 * authorization: bearer), with --metrics-public to anyone. A loopback peer that forwards
 * for someone else (a reverse proxy not named with --trusted-proxy) is not local. */
static const char metrics_refusal[] =
    "{\"error\":\"/metrics is for loopback clients and API tokens (Authorization: Bearer "
    "TOKEN); --metrics-public opens it\"}";

static bool metrics_allowed(sp_request_t *req)
{
    if (req->srv->cfg->metrics_public)
        return true;
    sp_net_addr_t peer;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    memset(&peer, 0, sizeof(peer));
    if (ci && ci->client_addr)
        sp_net_from_sockaddr(ci->client_addr, &peer);
    bool forwarded = !trusted(req->srv->cfg, &peer) &&
                     (sp_http_header(req, "Forwarded") || sp_http_header(req, "X-Forwarded-For") ||
                      sp_http_header(req, "X-Real-IP"));
    if (SP_NET_LOOPBACK == sp_net_kind(&req->client) && !forwarded)
        return true;
    return sp_api_bearer_valid(req);
}

static enum MHD_Result route(sp_request_t *req)
{
    const char *url = req->url;
    bool get = 0 == strcmp(req->method, "GET") || 0 == strcmp(req->method, "HEAD");

    if (get && 0 == strcmp(url, "/spy-pixel.gif"))
        return sp_pixel_seed(req);
    if (get && 0 == strncmp(url, "/o/", 3))
        return sp_pixel_opaque(req, url + 3);
    if (get && 0 == strncmp(url, "/c/", 3))
        return sp_pixel_click(req, url + 3);
    if (get && 0 == strncmp(url, "/i/", 3))
        return sp_pixel_image(req, url + 3);
    if (0 == strncmp(url, "/api/", 5))
        return sp_api_handle(req);
    if (get && 0 == strcmp(url, "/healthz"))
        return healthz(req);
    if (get && 0 == strcmp(url, "/metrics")) {
        if (!metrics_allowed(req)) {
            struct MHD_Response *resp = MHD_create_response_from_buffer(
                sizeof(metrics_refusal) - 1, (void *)metrics_refusal, MHD_RESPMEM_PERSISTENT);
            if (!resp)
                return MHD_NO;
            MHD_add_response_header(resp, "Content-Type", "application/json");
            MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
            sp_http_secure_headers(resp, false);
            sp_http_hsts(req, resp);
            enum MHD_Result rc = MHD_queue_response(req->conn, 401, resp);
            MHD_destroy_response(resp);
            return rc;
        }
        char extra[4096];
        uint64_t hits = 0, misses = 0;
        sp_enrich_ua_stats(req->srv->enrich, &hits, &misses);
        sp_journal_stats_t st;
        sp_journal_stats(req->srv->journal, &st);
        snprintf(
            extra, sizeof(extra),
            "# HELP spypixel_ua_cache_hits_total user-agent parses served from the cache\n"
            "# TYPE spypixel_ua_cache_hits_total counter\nspypixel_ua_cache_hits_total %llu\n"
            "# HELP spypixel_ua_cache_misses_total user-agent parses that ran the rules\n"
            "# TYPE spypixel_ua_cache_misses_total counter\n"
            "spypixel_ua_cache_misses_total %llu\n"
            "# HELP spypixel_index_backlog_bytes journal bytes answered but not yet in the store\n"
            "# TYPE spypixel_index_backlog_bytes gauge\nspypixel_index_backlog_bytes %lld\n"
            "# HELP spypixel_journal_degraded 1 while the journal cannot be written (opens are "
            "held in memory)\n"
            "# TYPE spypixel_journal_degraded gauge\nspypixel_journal_degraded %d\n"
            "# HELP spypixel_journal_held_records opens held in memory until the journal can be "
            "written\n"
            "# TYPE spypixel_journal_held_records gauge\nspypixel_journal_held_records %" PRIu64
            "\n"
            "# HELP spypixel_journal_held_bytes bytes of those opens\n"
            "# TYPE spypixel_journal_held_bytes gauge\nspypixel_journal_held_bytes %" PRIu64 "\n"
            "# HELP spypixel_journal_held_max_bytes most bytes held in memory "
            "(--journal-spill)\n"
            "# TYPE spypixel_journal_held_max_bytes gauge\nspypixel_journal_held_max_bytes %" PRIu64
            "\n"
            "# HELP spypixel_journal_spilled_total opens that were held in memory before the "
            "journal took them\n"
            "# TYPE spypixel_journal_spilled_total counter\nspypixel_journal_spilled_total %" PRIu64
            "\n"
            "# HELP spypixel_journal_dropped_total opens dropped: the journal could not be written "
            "and the memory spill was full\n"
            "# TYPE spypixel_journal_dropped_total counter\nspypixel_journal_dropped_total %" PRIu64
            "\n"
            "# HELP spypixel_journal_damaged_total damaged stretches of the journal skipped, not "
            "indexed\n"
            "# TYPE spypixel_journal_damaged_total counter\nspypixel_journal_damaged_total %" PRIu64
            "\n"
            "# HELP spypixel_store_faulted 1 once the store is damaged or its files cannot be "
            "written (indexing stopped)\n"
            "# TYPE spypixel_store_faulted gauge\nspypixel_store_faulted %d\n",
            (unsigned long long)hits, (unsigned long long)misses,
            (long long)sp_http_backlog(req->srv), st.error ? 1 : 0, st.held, st.held_bytes,
            st.held_max, st.spilled, st.dropped, st.damaged,
            sp_ingest_halted(req->srv->ingest, NULL, 0) ? 1 : 0);
        char *text = sp_metrics_render(extra);
        enum MHD_Result rc =
            sp_http_respond(req, 200, "text/plain; version=0.0.4", text, strlen(text));
        free(text);
        return rc;
    }
    if (get)
        return serve_asset(req);
    return sp_http_respond(req, 405, "text/plain", "method not allowed\n", 19);
}

/* ---- the request's life ---------------------------------------------------------- */

/* Answers from the first call, when only the head is in. libmicrohttpd then reads no
 * body and closes the connection once the answer is out: the client cannot go on
 * sending a body nobody reads. */
static enum MHD_Result refuse(sp_request_t *req, unsigned status, const char *msg)
{
    sp_metric_inc(http_early_refusals);
    if (req->connection)
        sp_guard_linger(&req->connection->guard);
    json_t *j = json_pack("{s:s}", "error", msg);
    char *body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Connection", "close");
    if (503 == status)
        MHD_add_response_header(resp, "Retry-After", "5");
    sp_http_secure_headers(resp, false);
    sp_http_hsts(req, resp);
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
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

static bool is_get(const char *method)
{
    return 0 == strcmp(method, "GET") || 0 == strcmp(method, "HEAD");
}

/* Takes N bytes of the body memory budget; false when it would go over. */
static bool reserve_body(sp_server_t *srv, size_t n)
{
    size_t budget = (size_t)srv->cfg->body_memory << 20;
    size_t used = atomic_load(&srv->body_bytes);
    do {
        if (used + n > budget || used + n < used)
            return false;
    } while (!atomic_compare_exchange_weak(&srv->body_bytes, &used, used + n));
    return true;
}

/* The first call, with the head in and none of the body read: framing, and for a request
 * with a body, whether it may send one (credentials, method, size, memory), so that a
 * body is read only when it will be used. A request without a body is answered from the
 * second call, as libmicrohttpd keeps the connection open only then. */
static enum MHD_Result admit(sp_request_t *req, const char *version)
{
    const char *msg = NULL;
    framing_t f;
    unsigned status = check_framing(req, version, &f, &msg);
    if (status)
        return refuse(req, status, msg);
    bool chunked = f.codings > 0;
    if (!chunked && 0 == f.length) {
        sp_guard_busy(req->srv->guard, &req->connection->guard);
        return MHD_YES;
    }
    size_t max = 0;
    bool vouched = false;
    if (0 == strncmp(req->url, "/api/", 5))
        status = sp_api_admit(req, &max, &vouched, &msg);
    else if (!is_get(req->method))
        status = 405, msg = "method not allowed";
    if (status)
        return refuse(req, status, msg);
    if (!vouched)
        req->unvouched = true; /* a slow body holds a connection like a slow head */
    else
        sp_guard_busy(req->srv->guard, &req->connection->guard);
    if (0 == max) {
        req->discard = true; /* GET with a body: it has no meaning here (RFC 9110 9.3.1) */
        return MHD_YES;
    }
    if (!chunked && f.length > max)
        return refuse(req, 413, "request body too large");
    size_t want = chunked ? max : (size_t)f.length;
    if (!reserve_body(req->srv, want)) {
        sp_metric_inc(http_body_budget_refusals);
        return refuse(req, 503, "the server is receiving too many uploads; try again shortly");
    }
    /* The whole body's room at once: untouched pages cost nothing until the bytes come. */
    req->body = malloc(want + 1);
    if (!req->body)
        abort();
    req->body[0] = '\0';
    req->body_max = want;
    return MHD_YES;
}

static sp_connection_t *connection_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    sp_server_t *srv = cls;
    sp_request_t *req = *con_cls;

    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            abort();
        req->srv = srv;
        req->conn = conn;
        req->connection = connection_of(conn);
        req->method = method;
        req->url = url;
        *con_cls = req;
        resolve_client(req);
        return admit(req, version);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (req->discard)
            return MHD_YES;
        if (req->body_too_big || req->body_len + n > req->body_max) {
            req->body_too_big = true; /* a chunked body longer than its route takes */
            return MHD_YES;
        }
        memcpy(req->body + req->body_len, upload_data, n);
        req->body_len += n;
        req->body[req->body_len] = '\0';
        return MHD_YES;
    }
    if (req->unvouched) {
        req->unvouched = false;
        sp_guard_busy(srv->guard, &req->connection->guard);
    }
    if (req->waiting)
        return sp_pixel_finish(req);
    if (READ_BARRIER_PARKED != req->barrier && !req->login) /* once, not when resumed */
        sp_metric_inc(http_requests);
    if (req->body_too_big)
        return sp_http_error(req, 413, "request body too large");
    return route(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    sp_server_t *srv = cls;
    sp_request_t *req = *con_cls;
    sp_connection_t *c = connection_of(conn);
    if (c && MHD_REQUEST_TERMINATED_COMPLETED_OK == toe)
        sp_guard_idle(srv->guard, &c->guard);
    if (!req)
        return;
    sp_login_free(req);
    if (req->body) {
        atomic_fetch_sub(&srv->body_bytes, req->body_max);
        free(req->body);
    }
    sp_image_release(req->image);
    if (req->held) /* never queued: nothing was sent, so no read is journaled */
        MHD_destroy_response(req->held);
    free(req->redirect);
    free(req);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    sp_server_t *srv = cls;
    if (MHD_CONNECTION_NOTIFY_STARTED == toe) {
        sp_connection_t *c = calloc(1, sizeof(*c));
        if (!c)
            abort();
        *socket_context = c;
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (fd && addr && addr->client_addr)
            sp_guard_opened(srv->guard, &c->guard, fd->connect_fd, addr->client_addr,
                            over_tls(conn));
    } else if (*socket_context) {
        sp_connection_t *c = *socket_context;
        sp_guard_closed(srv->guard, &c->guard);
        if (c->cookie_answer)
            MHD_destroy_response(c->cookie_answer);
        sp_tls_release(c->tls_hold);
        free(c);
        *socket_context = NULL;
    }
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    sp_server_t *srv = cls;
    (void)addrlen;
    return sp_guard_allow(srv->guard, addr) ? MHD_YES : MHD_NO;
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
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    sp_connection_t *c = ci ? ci->socket_context : NULL;
    return c ? &c->tls_hold : NULL;
}

void sp_http_hsts(const sp_request_t *req, struct MHD_Response *resp)
{
    /* A year, the value OWASP's HTTP Strict Transport Security cheat sheet gives; no
     * includeSubDomains: the tracker's host says nothing about its neighbours. */
    if (req->https)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
}

static struct MHD_Daemon *start_daemon(sp_server_t *srv, const sp_listen_t *l, int fd,
                                       unsigned threads)
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
    return MHD_start_daemon(
        flags, 0, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)srv->cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)srv->cfg->timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)SP_CONNECTION_MEMORY, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv, MHD_OPTION_UNESCAPE_CALLBACK, unescape,
        srv, MHD_OPTION_ARRAY, l->tls ? sp_tls_options(srv->tls) : none,
        /* Last, so that one thread (no pool: libmicrohttpd warns at a size of 0 or 1) can end
         * the list before it. */
        threads > 1 ? MHD_OPTION_THREAD_POOL_SIZE : MHD_OPTION_END, threads, MHD_OPTION_END);
}

/* Parses every --listen address, loads the certificate when one is HTTPS and binds them
 * all, so that a mistake stops the start before anything serves. */
static int open_listeners(sp_server_t *srv, int *fds, char *err, size_t errlen)
{
    const sp_config_t *cfg = srv->cfg;
    bool any_tls = false;
    for (size_t i = 0; i < cfg->n_listen; i++) {
        fds[i] = -1;
        if (0 != sp_listen_parse(cfg->listen[i], cfg->tls_cert[0], &srv->listen[i], err, errlen))
            return -1;
        if (srv->listen[i].tls && !cfg->tls_cert[0]) {
            snprintf(err, errlen, "--listen %s serves HTTPS: it needs --tls-cert and --tls-key",
                     cfg->listen[i]);
            return -1;
        }
        any_tls |= srv->listen[i].tls;
    }
    if (cfg->tls_cert[0] && !any_tls) {
        snprintf(err, errlen,
                 "--tls-cert is set but every --listen address is http://: give one as "
                 "https://HOST:PORT or HOST:PORT");
        return -1;
    }
    if (any_tls) {
        srv->tls = sp_tls_new(cfg->tls_cert, cfg->tls_key, tls_slot, err, errlen);
        if (!srv->tls)
            return -1;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        fds[i] = sp_listen_open(&srv->listen[i], 1024, err, errlen);
        if (fds[i] < 0)
            return -1;
    }
    return 0;
}

int sp_http_start(sp_server_t *srv, char *err, size_t errlen)
{
    int fds[SP_CONFIG_LIST_MAX];
    size_t n = srv->cfg->n_listen;
    if (0 != open_listeners(srv, fds, err, errlen)) {
        for (size_t i = 0; i < n; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        sp_tls_free(srv->tls);
        srv->tls = NULL;
        return -1;
    }
    pthread_key_create(&srv->reader_key, close_reader);
    srv->pixel = sp_pixel_response_new();
    srv->images = sp_images_new(SP_IMAGE_CACHE_MAX);

    unsigned threads = srv->cfg->threads > 0 ? (unsigned)srv->cfg->threads
                                             : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1)
        threads = 1;
    sp_guard_options_t guard = {
        .head_timeout_ms = srv->cfg->header_timeout * 1000,
        .per_ip_max = (unsigned)srv->cfg->max_connections_per_ip,
        .thread_max = (unsigned)srv->cfg->max_connections / threads,
        .exempt = srv->cfg->trusted_proxy,
        .n_exempt = srv->cfg->n_trusted_proxy,
        .sweep_ms = 250,
    };
    srv->guard = sp_guard_new(&guard);
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
    bool batch = srv->cfg->sync_full || srv->cfg->answer_after_store;
    bool restore = batch && 0 == pthread_getschedparam(pthread_self(), &policy, &saved) &&
                   0 == pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        srv->daemons[i] = start_daemon(srv, &srv->listen[i], fds[i], threads);
        if (!srv->daemons[i]) {
            snprintf(err, errlen, "cannot serve %s (libmicrohttpd refused to start)",
                     srv->listen[i].text);
            for (size_t k = i; k < n; k++)
                close(fds[k]);
            rc = -1;
            break;
        }
        srv->n_daemons++;
    }
    if (restore)
        pthread_setschedparam(pthread_self(), policy, &saved);
    return rc;
}

int sp_http_reload_tls(sp_server_t *srv, char *err, size_t errlen)
{
    if (!srv->tls)
        return 1;
    return sp_tls_reload(srv->tls, err, errlen);
}

void sp_http_describe(const sp_server_t *srv, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < srv->cfg->n_listen && used < len; i++) {
        const sp_listen_t *l = &srv->listen[i];
        used += (size_t)snprintf(buf + used, len - used, "%s%s://%s:%u", i ? " " : "",
                                 l->tls ? "https" : "http", l->any ? "*" : l->host, l->port);
    }
}

void sp_http_quiesce(sp_server_t *srv)
{
    for (size_t i = 0; i < srv->n_daemons; i++) {
        MHD_socket fd = MHD_quiesce_daemon(srv->daemons[i]);
        if (MHD_INVALID_SOCKET != fd)
            close(fd);
    }
}

void sp_http_stop(sp_server_t *srv)
{
    if (srv->auth)
        sp_auth_checks_stop(srv->auth); /* parked logins are answered while the daemons run */
    for (size_t i = 0; i < srv->n_daemons; i++)
        MHD_stop_daemon(srv->daemons[i]);
    srv->n_daemons = 0;
    if (srv->pixel)
        MHD_destroy_response(srv->pixel);
    srv->pixel = NULL;
    sp_tls_free(srv->tls); /* after the daemons: no handshake can be under way */
    srv->tls = NULL;
    sp_guard_free(srv->guard); /* after the daemons: every connection is closed */
    srv->guard = NULL;
    sp_images_free(srv->images); /* after the daemons: no answer sends an image */
    srv->images = NULL;
}
