/* status: how the server is: GET /healthz for load balancers, GET /metrics for Prometheus. */
/* SPDX-License-Identifier: MIT */
#include "status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "metrics.h"
#include "utf8.h"

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
    const sp_status_t *s = req->ctx;
    sp_journal_stats_t st;
    sp_journal_stats(s->journal, &st);
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
    if (sp_ingest_failing(s->ingest, &since, why, sizeof(why)) &&
        sp_now_ms() - since >= SP_INGEST_STALL_MS) {
        snprintf(text, sizeof(text),
                 "store: commits have failed for %lld s (%s); the journal keeps the opens",
                 (long long)(sp_now_ms() - since) / 1000, why);
        add_problem(problems, text);
    }
    if (sp_ingest_halted(s->ingest, why, sizeof(why))) {
        snprintf(text, sizeof(text),
                 "store: %s; indexing has stopped, the journal keeps the opens until a restart "
                 "on a repaired or restored store",
                 why);
        add_problem(problems, text);
    }
    /* Rows in PostgreSQL's events_default are kept and read like any other: worth an operator's
     * look (a partition the role may not make, a client's wrong clock), not a reason to send
     * the opens elsewhere, and every server on the store would say the same. */
    json_t *warnings = json_array();
    int64_t in_default = sp_ingest_default_rows(s->ingest);
    if (in_default > 0) {
        snprintf(text, sizeof(text),
                 "store: %s%lld rows wait in events_default (their week's partition could not "
                 "be made, or they are dated more than two years back or four weeks ahead); "
                 "the writer moves them into their week's partition as soon as it can be made",
                 in_default >= SP_STORE_DEFAULT_ROWS_MAX ? "at least " : "", (long long)in_default);
        add_problem(warnings, text);
    }
    bool ok = 0 == json_array_size(problems);
    json_t *body =
        json_pack("{s:s, s:o, s:o, s:I, s:{s:I, s:I, s:I, s:I}}", "status", ok ? "ok" : "degraded",
                  "problems", problems, "warnings", warnings, "index_backlog_bytes",
                  (json_int_t)sp_ingest_backlog(s->ingest), "journal", "held", (json_int_t)st.held,
                  "held_bytes", (json_int_t)st.held_bytes, "dropped", (json_int_t)st.dropped,
                  "damaged", (json_int_t)st.damaged);
    if (!body)
        abort();
    if (in_default >= 0)
        json_object_set_new(body, "events_default_rows", json_integer(in_default));
    return sp_http_json(req, ok ? 200 : 503, body);
}

/* /metrics shows only counts, but what an operator's server does is theirs to show:
 * by default to clients on this machine and to API tokens (Prometheus's
 * authorization: bearer), with --metrics-public to anyone. */
static const char metrics_refusal[] =
    "{\"error\":\"/metrics is for loopback clients and API tokens (Authorization: Bearer "
    "TOKEN); --metrics-public opens it\"}";

static enum MHD_Result refuse_metrics(sp_request_t *req)
{
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

static enum MHD_Result metrics(sp_request_t *req)
{
    const sp_status_t *s = req->ctx;
    if (!s->cfg->metrics_public && !sp_http_local(req) && !sp_api_bearer_valid(req))
        return refuse_metrics(req);
    char extra[4096];
    uint64_t hits = 0, misses = 0;
    sp_enrich_ua_stats(s->enrich, &hits, &misses);
    sp_journal_stats_t st;
    sp_journal_stats(s->journal, &st);
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
        "# TYPE spypixel_journal_held_records gauge\nspypixel_journal_held_records %" PRIu64 "\n"
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
        "# HELP spypixel_journal_segments_recycled_total journal segments started in a "
        "released segment's file, its pages still in memory\n"
        "# TYPE spypixel_journal_segments_recycled_total counter\n"
        "spypixel_journal_segments_recycled_total %" PRIu64 "\n"
        "# HELP spypixel_store_faulted 1 once the store is damaged or its files cannot be "
        "written (indexing stopped)\n"
        "# TYPE spypixel_store_faulted gauge\nspypixel_store_faulted %d\n"
        "# HELP spypixel_http_body_bytes request bodies in flight, bytes (--body-memory)\n"
        "# TYPE spypixel_http_body_bytes gauge\nspypixel_http_body_bytes %zu\n",
        (unsigned long long)hits, (unsigned long long)misses,
        (long long)sp_ingest_backlog(s->ingest), st.error ? 1 : 0, st.held, st.held_bytes,
        st.held_max, st.spilled, st.dropped, st.damaged, st.recycled,
        sp_ingest_halted(s->ingest, NULL, 0) ? 1 : 0, sp_http_body_bytes(req));
    int64_t in_default = sp_ingest_default_rows(s->ingest);
    if (in_default >= 0) {
        size_t at = strlen(extra);
        snprintf(extra + at, sizeof(extra) - at,
                 "# HELP spypixel_store_events_default_rows rows in PostgreSQL's events_default "
                 "(counted up to %d every %d s)\n"
                 "# TYPE spypixel_store_events_default_rows gauge\n"
                 "spypixel_store_events_default_rows %lld\n",
                 SP_STORE_DEFAULT_ROWS_MAX, SP_STORE_UPKEEP_MS / 1000, (long long)in_default);
    }
    char *text = sp_metrics_render(extra);
    enum MHD_Result rc = sp_http_respond(req, 200, "text/plain; version=0.0.4", text, strlen(text));
    free(text);
    return rc;
}

static const sp_route_t routes[] = {
    {.path = "/healthz", .methods = SP_HTTP_GET | SP_HTTP_HEAD, .handle = healthz},
    {.path = "/metrics", .methods = SP_HTTP_GET | SP_HTTP_HEAD, .handle = metrics},
};

void sp_status_routes(sp_http_routes_t *table, sp_status_t *status)
{
    sp_http_routes_add(table, routes, sizeof(routes) / sizeof(routes[0]), status);
}
