/* api: the JSON API under /api/v1 (campaigns, events, exports, the creator). */
/* SPDX-License-Identifier: MIT */
#include "api.h"

#include <errno.h>
#include <malloc.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_manage.h"
#include "api_report.h"
#include "api_search.h"
#include "classify.h"
#include "log.h"
#include "metrics.h"
#include "serialize.h"
#include "snippet.h"
#include "url.h"
#include "text.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX     100000
#define BODY_MAX     (1u << 20) /* JSON bodies */
#define IMAGE_MAX    (8u << 20) /* uploaded tracking images */

/* The most a read waits for the writer, and the backlog it waits for at most. */
#define INDEX_WAIT_MAX_MS    1000
#define INDEX_WAIT_MAX_BYTES ((int64_t)4 << 20)
/* An erasure waits for the whole backlog, however large, this long at most: what it
 * leaves in the journal would be stored after it. */
#define ERASE_WAIT_MAX_MS 30000

/* One API request (REQ->state): who sent it, and how far its reads wait for the index. */
typedef struct {
    sp_request_t *req;
    const sp_api_t *api;
    sp_store_t *store; /* the request thread's reader */
    char user[128];
    char csrf[SP_AUTH_SECRET_MAX];
    bool by_session; /* authenticated by the cookie (so CSRF applies), not a bearer token */
    enum { INDEX_UNSEEN, INDEX_WAITING, INDEX_SEEN } index;
    int64_t index_pos;    /* the journal end a parked read waits for */
    int64_t index_behind; /* journal bytes this read's answer may miss (0: none) */
} api_ctx_t;

/* ---- reads see every open answered before them ------------------------------------ */

/* X-Index-Backlog-Bytes on an answer whose read did not wait for the whole backlog: the
 * route's headers, on every answer of an API request. */
static void backlog_header(sp_request_t *req, struct MHD_Response *resp)
{
    const api_ctx_t *c = req->state;
    if (c->index_behind <= 0)
        return;
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)c->index_behind);
    MHD_add_response_header(resp, "X-Index-Backlog-Bytes", v);
}

/* Before a read of the store, so that it sees every open answered before it: true when the
 * request was parked until the writer has indexed them (at most a second; its handler is
 * called again then, and this returns false). False to go on now; c->index_behind is then
 * the backlog the answer may miss (a burst's, which is not waited for). WHOLE (an erasure):
 * any backlog is waited for, up to 30 s. */
static bool wait_for_index(api_ctx_t *c, bool whole)
{
    sp_ingest_t *ingest = c->api->ingest;
    if (INDEX_WAITING == c->index) {
        /* Resumed: the store caught up to index_pos, or the time ran out. */
        c->index = INDEX_SEEN;
        if (sp_ingest_indexed(ingest) < c->index_pos)
            c->index_behind = sp_ingest_backlog(ingest);
        return false;
    }
    if (INDEX_SEEN == c->index)
        return false;
    c->index = INDEX_SEEN;
    int64_t end = sp_journal_accepted_end(c->api->journal);
    int64_t behind = end - sp_ingest_indexed(ingest);
    if (behind <= 0)
        return false;
    /* A small backlog is a commit or two away: the request is parked until the writer has
     * indexed it, so that an open answered before this read is in its answer. A burst's
     * backlog is not waited for; the answer says how far behind it is. Parked, not blocked:
     * the thread goes on answering pixels meanwhile. */
    if ((!whole && behind > INDEX_WAIT_MAX_BYTES) || !sp_http_park(c->req, NULL)) {
        c->index_behind = behind;
        return false;
    }
    c->index = INDEX_WAITING;
    c->index_pos = end;
    if (!sp_ingest_notify(ingest, end, whole ? ERASE_WAIT_MAX_MS : INDEX_WAIT_MAX_MS, c->req))
        sp_http_resume(NULL, c->req); /* indexed meanwhile */
    return true;
}

/* ---- answers -------------------------------------------------------------------- */

static enum MHD_Result send_json(sp_request_t *req, unsigned status, json_t *j)
{
    return sp_http_json(req, status, j);
}

static enum MHD_Result store_error(sp_request_t *req, const char *err)
{
    sp_log_error("store error", "error=\"%s\"", err);
    return sp_http_error(req, 500, "the store failed; see the server log");
}

/* ---- request parts -------------------------------------------------------------- */

/* A string member, NULL when absent; -1 when present but not a string. */
static int member(json_t *o, const char *key, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return -1;
    *out = json_string_value(v);
    return 0;
}

static int parse_limit(sp_request_t *req, int64_t *limit)
{
    const char *s = sp_http_arg(req, "limit");
    *limit = PAGE_DEFAULT;
    if (!s)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll(s, &end, 10);
    if (errno || end == s || *end || n < 1 || n > PAGE_MAX)
        return -1;
    *limit = n;
    return 0;
}

/* ---- authentication ---------------------------------------------------------------- */

/* 0 authenticated, 1 not. */
static int authenticate(api_ctx_t *c)
{
    sp_request_t *req = c->req;
    char hash[SP_AUTH_HASH_MAX], err[256], secret[256];
    const char *authz = sp_http_header(req, "Authorization");
    if (authz && sp_has_prefix_ci(authz, "Bearer ")) {
        sp_auth_secret_hash(authz + SP_LIT_LEN("Bearer "), hash, sizeof(hash));
        int rc =
            c->store->ops->token_get(c->store, hash, c->user, sizeof(c->user), err, sizeof(err));
        return 0 == rc ? 0 : 1;
    }
    if (!sp_http_cookie(req, SP_COOKIE_SESSION, secret, sizeof(secret)))
        return 1;
    sp_auth_secret_hash(secret, hash, sizeof(hash));
    if (0 != c->store->ops->session_get(c->store, hash, sp_now_ms(), c->user, sizeof(c->user),
                                        c->csrf, sizeof(c->csrf), err, sizeof(err)))
        return 1;
    c->by_session = true;
    sp_auth_note_dashboard_ip(c->api->auth, &req->client);
    return 0;
}

bool sp_api_bearer_valid(sp_request_t *req)
{
    char hash[SP_AUTH_HASH_MAX], err[256], user[128];
    const char *authz = sp_http_header(req, "Authorization");
    sp_store_t *store = sp_http_reader(req);
    if (!store || !authz || !sp_has_prefix_ci(authz, "Bearer "))
        return false;
    sp_auth_secret_hash(authz + SP_LIT_LEN("Bearer "), hash, sizeof(hash));
    return 0 == store->ops->token_get(store, hash, user, sizeof(user), err, sizeof(err));
}

static bool csrf_ok(api_ctx_t *c)
{
    if (!c->by_session)
        return true;
    const char *sent = sp_http_header(c->req, "X-CSRF-Token");
    size_t n = strlen(c->csrf);
    return sent && strlen(sent) == n && 0 == sodium_memcmp(sent, c->csrf, n);
}

static enum MHD_Result logout(api_ctx_t *c)
{
    char secret[256], hash[SP_AUTH_HASH_MAX], err[256];
    if (sp_http_cookie(c->req, SP_COOKIE_SESSION, secret, sizeof(secret))) {
        sp_auth_secret_hash(secret, hash, sizeof(hash));
        c->store->ops->session_delete(c->store, hash, err, sizeof(err));
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    sp_http_secure_headers(resp, false);
    /* The self-view cookie stays: the sender's browser is still the sender's. */
    sp_http_set_cookie(c->req, resp, SP_COOKIE_SESSION, "",
                       "Path=/; Max-Age=0; HttpOnly; SameSite=Strict");
    enum MHD_Result rc = MHD_queue_response(c->req->conn, 204, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- campaigns -------------------------------------------------------------------- */

typedef struct {
    json_t *arr;
    int archived; /* -1: every campaign; 0, 1: those not archived, those archived */
} campaigns_t;

static int add_campaign(void *ctx, const sp_campaign_t *c)
{
    campaigns_t *l = ctx;
    if (l->archived < 0 || l->archived == c->archived)
        json_array_append_new(l->arr, sp_serialize_campaign(c));
    return 0;
}

static enum MHD_Result list_campaigns(api_ctx_t *c)
{
    char err[512];
    const char *archived = sp_http_arg(c->req, "archived");
    if (archived && 0 != strcmp(archived, "0") && 0 != strcmp(archived, "1"))
        return sp_http_error(c->req, 400, "archived must be 0 or 1");
    json_t *arr = json_array();
    campaigns_t l = {arr, archived ? '1' == archived[0] : -1};
    if (0 != c->store->ops->campaign_list(c->store, add_campaign, &l, err, sizeof(err))) {
        json_decref(arr);
        return store_error(c->req, err);
    }
    return send_json(c->req, 200, arr);
}

/* The ID in a new campaign's body (borrowed from BODY): 0, or -1 when it is not a valid ID. */
static int campaign_fields(json_t *body, const char **id)
{
    return member(body, "id", id) || !sp_event_id_valid(*id) ? -1 : 0;
}

static enum MHD_Result create_campaign(api_ctx_t *c)
{
    char msg[256], err[512];
    json_t *body = sp_http_body_json(c->req, msg, sizeof(msg));
    if (!body)
        return sp_http_error(c->req, 400, msg);
    const char *id;
    if (0 != campaign_fields(body, &id)) {
        json_decref(body);
        return sp_http_error(c->req, 400,
                             "\"id\" must be 1-128 letters, digits or - _ @ + . characters");
    }
    int rc = c->store->ops->campaign_create(c->store, id, sp_now_ms(), err, sizeof(err));
    json_t *j = json_pack("{s:s, s:b}", "id", id, "created", 0 == rc);
    json_decref(body);
    if (rc < 0) {
        json_decref(j);
        return store_error(c->req, err);
    }
    return send_json(c->req, 0 == rc ? 201 : 200, j);
}

typedef struct {
    json_t *arr;
    char last[SP_ID_MAX + 1];
    int64_t n;
} page_t;

static int add_recipient(void *ctx, const sp_recipient_t *r)
{
    page_t *p = ctx;
    json_array_append_new(p->arr, sp_serialize_recipient(r));
    snprintf(p->last, sizeof(p->last), "%s", r->recipient);
    p->n++;
    return 0;
}

static enum MHD_Result get_campaign(api_ctx_t *c, const char *id)
{
    char err[512];
    sp_campaign_t camp;
    int64_t limit;
    const char *after = sp_http_arg(c->req, "after");
    if (parse_limit(c->req, &limit) || (after && strlen(after) > SP_ID_MAX))
        return sp_http_error(c->req, 400, "limit must be 1-100000; after a recipient ID");
    int rc = c->store->ops->campaign_get(c->store, id, &camp, err, sizeof(err));
    if (rc < 0)
        return store_error(c->req, err);
    if (rc > 0)
        return sp_http_error(c->req, 404, "no such campaign");
    page_t p = {.arr = json_array()};
    if (0 != c->store->ops->recipients(c->store, id, after ? after : "", limit, add_recipient, &p,
                                       err, sizeof(err))) {
        json_decref(p.arr);
        return store_error(c->req, err);
    }
    sp_engagement_t eng;
    if (0 != c->store->ops->engagement(c->store, id, &eng, err, sizeof(err))) {
        json_decref(p.arr);
        return store_error(c->req, err);
    }
    json_t *j = sp_serialize_campaign(&camp);
    json_object_set_new(j, "engagement", sp_serialize_engagement(&eng));
    if (0 != sp_api_campaign_rates(c->store, id, j, err, sizeof(err))) {
        json_decref(j);
        json_decref(p.arr);
        return store_error(c->req, err);
    }
    json_object_set_new(j, "per_recipient", p.arr);
    json_object_set_new(j, "next_after", p.n == limit ? json_string(p.last) : json_null());
    return send_json(c->req, 200, j);
}

/*
 * An export streams: it is read from the store a page at a time (EXPORT_PAGE events, each page
 * its own statement, the next by keyset: IDs below the last one read, through events_campaign)
 * as libmicrohttpd asks for more, so its memory stays about two pages whatever the campaign's
 * size; a page is big so that PostgreSQL plans its statement (1-3 ms) once per thousands of
 * rows. Its events are those of the campaign when it began (later events have higher IDs) less
 * any that retention or forget takes out before the page that holds them is read: the stores
 * read a page ahead (store_ops.h, export_next), so an event taken out while one page is being
 * sent can still be in the next, never in a later one. The bytes are those of the whole
 * document built at once: the CSV rows one after the other, and the JSON array as
 * json_dumps(JSON_INDENT(1)) writes it.
 */
#define EXPORT_PAGE 4000

typedef struct export
{
    /* STORE is the connection of the thread that serves the request, the one the reading is
     * asked for every page through (sp_http_reader: a connection stays on its thread); the
     * reading is closed with the answer, before the thread closes its store. */
    sp_store_t *store;
    sp_store_export_t *reading;
    char campaign[SP_ID_MAX + 1];
    bool csv;
    int64_t sent; /* events sent */
    bool started, done;
    sp_outbuf_t page; /* the page being sent, from PAGE_AT; its memory kept for the next */
    size_t page_at;
}
export_t;

typedef struct {
    export_t *x;
    int64_t n;
} export_page_t;

static int export_row(void *ctx, const sp_event_row_t *r)
{
    export_page_t *p = ctx;
    if (p->x->csv) {
        sp_serialize_csv_row_buf(&p->x->page, r);
    } else {
        /* An element of json_dumps's indented array. */
        sp_outbuf_put(&p->x->page, p->x->sent + p->n ? ",\n " : "[\n ", 3);
        sp_serialize_event_buf(&p->x->page, r, 1);
    }
    p->n++;
    return 0;
}

/* Makes X's next page. -1 when the store failed. */
static int export_page(export_t *x)
{
    x->page.len = x->page_at = 0;
    export_page_t p = {.x = x};
    if (x->csv && !x->started)
        sp_serialize_csv_header_buf(&x->page);
    x->started = true;
    char err[512];
    int rc = x->store->ops->export_next(x->store, x->reading, export_row, &p, err, sizeof(err));
    if (rc < 0) {
        sp_log_error("export stopped: the store failed", "campaign=\"%s\" error=\"%s\"",
                     x->campaign, err);
        return -1;
    }
    x->sent += p.n;
    if (rc > 0) {
        x->done = true;
        if (!x->csv)
            sp_outbuf_put(&x->page, x->sent ? "\n]" : "[]", 2);
    }
    return 0;
}

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    export_t *x = cls;
    (void)pos;
    while (x->page_at == x->page.len) {
        if (x->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        if (0 != export_page(x))
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = x->page.len - x->page_at;
    if (n > max)
        n = max;
    memcpy(buf, x->page.data + x->page_at, n);
    x->page_at += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    export_t *x = cls;
    x->store->ops->export_close(x->store, x->reading);
    sp_outbuf_free(&x->page);
    free(x);
    /* An export's pages (megabytes of rows and their text) are freed into the arena of the
     * thread that sent them, which malloc keeps: without this the server stayed at twice its
     * idle size after exports on each of its threads. */
    malloc_trim(0);
}

static enum MHD_Result export_events(api_ctx_t *c, const char *id, bool csv, int64_t before,
                                     int64_t limit)
{
    export_t *x = calloc(1, sizeof(*x));
    if (!x)
        abort();
    x->store = c->store;
    x->reading = c->store->ops->export_open(c->store, id, before, limit, EXPORT_PAGE);
    snprintf(x->campaign, sizeof(x->campaign), "%s", id);
    x->csv = csv;
    /* The first page is made at once: a store that fails at the start still gets its error
     * answer, where later the connection can only be cut. */
    if (0 != export_page(x)) {
        export_free(x);
        return store_error(c->req, "the store failed");
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, export_read, x, export_free);
    if (!resp)
        abort();
    char disposition[256];
    MHD_add_response_header(resp, "Content-Type",
                            csv ? "text/csv; charset=utf-8" : "application/json");
    snprintf(disposition, sizeof(disposition), "attachment; filename=\"%s-events.%s\"", id,
             csv ? "csv" : "json");
    MHD_add_response_header(resp, "Content-Disposition", disposition);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    sp_http_secure_headers(resp, false);
    backlog_header(c->req, resp);
    enum MHD_Result rc = MHD_queue_response(c->req->conn, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* The campaign's events as a download, CSV or JSON: the whole campaign unless limit or before
 * says otherwise. */
static enum MHD_Result export_campaign(api_ctx_t *c, const char *id, bool csv)
{
    char err[512];
    int64_t limit, before = 0;
    const char *b = sp_http_arg(c->req, "before");
    if (parse_limit(c->req, &limit))
        return sp_http_error(c->req, 400, "limit must be 1-100000");
    if (!sp_http_arg(c->req, "limit"))
        limit = INT64_MAX; /* an export is the whole campaign unless asked otherwise */
    if (b) {
        char *end;
        errno = 0;
        before = strtoll(b, &end, 10);
        if (errno || end == b || *end || before < 1)
            return sp_http_error(c->req, 400, "before must be an event ID");
    }
    sp_campaign_t camp;
    int rc = c->store->ops->campaign_get(c->store, id, &camp, err, sizeof(err));
    if (rc < 0)
        return store_error(c->req, err);
    if (rc > 0)
        return sp_http_error(c->req, 404, "no such campaign");
    return export_events(c, id, csv, before, limit);
}

/* ---- campaigns that do not exist ------------------------------------------------------ */

static int add_unknown(void *arr, const sp_unknown_campaign_t *u)
{
    json_array_append_new(arr, sp_serialize_unknown(u));
    return 0;
}

static enum MHD_Result list_unknown(api_ctx_t *c)
{
    char err[512];
    json_t *arr = json_array();
    if (0 != c->store->ops->unknown_list(c->store, add_unknown, arr, err, sizeof(err))) {
        json_decref(arr);
        return store_error(c->req, err);
    }
    return send_json(c->req, 200, arr);
}

typedef struct {
    const char *id;
    bool found;
} unknown_find_t;

static int find_unknown(void *ctx, const sp_unknown_campaign_t *u)
{
    unknown_find_t *f = ctx;
    f->found = 0 == strcmp(f->id, u->id);
    return f->found;
}

typedef struct {
    sp_journal_t *journal;
    unsigned char *record;
    int64_t adopted, unreadable;
    bool refused; /* the journal refused an append */
} adoption_t;

static int adopt_one(void *ctx, int64_t row, const void *record, size_t len)
{
    adoption_t *a = ctx;
    sp_event_t *ev = sp_event_decode(record, len);
    if (!ev) {
        a->unreadable++;
        return 0;
    }
    ev->adopt_row = row;
    size_t n = sp_event_encode(ev, a->record);
    sp_event_free(ev);
    if (sp_journal_append(a->journal, a->record, n, NULL) < 0) {
        a->refused = true;
        return 1;
    }
    a->adopted++;
    return 0;
}

/* Creates campaign ID and hands the opens kept under it to the writer through the journal,
 * as it does every open: enriched, classed and counted in one place. Each names its kept row,
 * which the writer takes out in the transaction that stores the open, so an open is adopted
 * once however often this runs (a double click, two servers, a crash halfway). */
static enum MHD_Result adopt_unknown(api_ctx_t *c, const char *id)
{
    char err[512], quoted[2 * SP_ID_MAX + 8];
    unknown_find_t find = {.id = id};
    if (0 != c->store->ops->unknown_list(c->store, find_unknown, &find, err, sizeof(err)))
        return store_error(c->req, err);
    if (!find.found)
        return sp_http_error(c->req, 404, "no opens are kept for that campaign ID");
    int created = c->store->ops->campaign_create(c->store, id, sp_now_ms(), err, sizeof(err));
    if (created < 0)
        return store_error(c->req, err);
    adoption_t a = {.journal = c->api->journal, .record = malloc(SP_EVENT_ENCODED_MAX)};
    if (!a.record)
        abort();
    int rc = c->store->ops->unknown_opens(c->store, id, adopt_one, &a, err, sizeof(err));
    free(a.record);
    if (rc)
        return store_error(c->req, err);
    if (a.unreadable)
        sp_log_error("kept opens not understood, left where they are", "campaign=%s opens=%lld",
                     sp_log_quote(id, quoted, sizeof(quoted)), (long long)a.unreadable);
    if (a.refused) {
        sp_log_error("the journal refused adopted opens", "campaign=%s adopted=%lld",
                     sp_log_quote(id, quoted, sizeof(quoted)), (long long)a.adopted);
        return sp_http_error(c->req, 503,
                             "the journal refused some of the opens; those not adopted are "
                             "still kept: try again");
    }
    /* Nothing kept (only counted): nothing will come to close it. */
    if (0 == a.adopted && 0 == a.unreadable &&
        c->store->ops->unknown_delete(c->store, id, err, sizeof(err)) < 0)
        return store_error(c->req, err);
    sp_log_info("campaign created for its kept opens", "campaign=%s created=%s adopted=%lld",
                sp_log_quote(id, quoted, sizeof(quoted)), 0 == created ? "true" : "false",
                (long long)a.adopted);
    return send_json(c->req, 200,
                     json_pack("{s:s, s:b, s:I, s:I}", "id", id, "created", 0 == created, "adopted",
                               (json_int_t)a.adopted, "unreadable", (json_int_t)a.unreadable));
}

static enum MHD_Result discard_unknown(api_ctx_t *c, const char *id)
{
    char err[512], quoted[2 * SP_ID_MAX + 8];
    int rc = c->store->ops->unknown_delete(c->store, id, err, sizeof(err));
    if (rc < 0)
        return store_error(c->req, err);
    if (rc > 0)
        return sp_http_error(c->req, 404, "no opens are kept for that campaign ID");
    sp_log_info("kept opens of a campaign that does not exist discarded", "campaign=%s",
                sp_log_quote(id, quoted, sizeof(quoted)));
    return send_json(c->req, 200, json_pack("{s:s, s:b}", "id", id, "deleted", 1));
}

/* ---- the creator: pixels and links ------------------------------------------------- */

/* The fields of a pixel's or link's body into DATA, whose kind is set: 0, or -1 with what is
 * wrong with them in MSG. */
static int url_fields(json_t *body, sp_token_data_t *data, char *msg, size_t len)
{
    const char *campaign = NULL, *recipient = NULL, *target = NULL;
    if (member(body, "campaign", &campaign) || member(body, "recipient", &recipient) ||
        member(body, "target", &target) || !sp_event_id_valid(campaign) ||
        (recipient && *recipient && !sp_event_id_valid(recipient))) {
        snprintf(msg, len,
                 "\"campaign\" (required) and \"recipient\" (optional) must be "
                 "1-128 letters, digits or - _ @ + . characters");
        return -1;
    }
    /* Stored as the Location it will be sent as: a valid URL, or refused with the reason. */
    if (SP_TOKEN_CLICK == data->kind) {
        if (!target) {
            snprintf(msg, len, "\"target\" must be an http:// or https:// URL");
            return -1;
        }
        if (0 != sp_url_target(target, data->extra, sizeof(data->extra), msg, len))
            return -1;
    }
    snprintf(data->campaign, sizeof(data->campaign), "%s", campaign);
    snprintf(data->recipient, sizeof(data->recipient), "%s", recipient ? recipient : "");
    return 0;
}

static enum MHD_Result make_url(api_ctx_t *c, sp_token_kind_t kind)
{
    char msg[256], err[512];
    json_t *body = sp_http_body_json(c->req, msg, sizeof(msg));
    if (!body)
        return sp_http_error(c->req, 400, msg);
    sp_token_data_t data = {.kind = kind};
    enum MHD_Result result;
    if (0 != url_fields(body, &data, msg, sizeof(msg))) {
        result = sp_http_error(c->req, 400, msg);
        goto done;
    }
    /* "block": true asks a pixel for the tracking block in place of the lone image. */
    json_t *b = json_object_get(body, "block");
    if (b && (!json_is_boolean(b) || (SP_TOKEN_OPEN != kind && json_is_true(b)))) {
        result = sp_http_error(c->req, 400, "\"block\" must be true or false, on a pixel");
        goto done;
    }
    bool block = b && json_is_true(b);
    if (c->store->ops->campaign_create(c->store, data.campaign, sp_now_ms(), err, sizeof(err)) <
        0) {
        result = store_error(c->req, err);
        goto done;
    }
    char origin[320], url[SP_SNIPPET_URL_MAX];
    char *html = NULL;
    sp_http_origin(c->req, origin, sizeof(origin));
    if (block) {
        html = malloc(SP_SNIPPET_BLOCK_MAX);
        if (!html)
            abort();
    }
    if (block ? 0 != sp_snippet_block_html(c->api->tokens, origin, &data, url, sizeof(url), html,
                                           SP_SNIPPET_BLOCK_MAX)
              : 0 != sp_snippet_url(c->api->tokens, origin, &data, url, sizeof(url))) {
        free(html);
        result = sp_http_error(c->req, 400, "the link is too long");
        goto done;
    }
    const char *made = block ? "block" : SP_TOKEN_OPEN == kind ? "pixel" : "link";
    if (0 != sp_api_record_tracker(c->store, made, data.campaign, data.recipient,
                                   SP_TOKEN_CLICK == kind ? data.extra : "", url, err,
                                   sizeof(err))) {
        free(html);
        result = store_error(c->req, err);
        goto done;
    }
    if (block) {
        result = send_json(c->req, 200, json_pack("{s:s, s:s}", "url", url, "html", html));
        free(html);
        goto done;
    }
    json_t *j = json_pack("{s:s}", "url", url);
    if (SP_TOKEN_OPEN == kind) {
        char pixel[SP_SNIPPET_HTML_MAX];
        sp_snippet_pixel_html(url, pixel, sizeof(pixel));
        json_object_set_new(j, "html", json_string(pixel));
    }
    result = send_json(c->req, 200, j);
done:
    json_decref(body);
    return result;
}

/* The kinds of image a mail client shows; anything else (SVG can carry script) is refused. */
static const char *image_kind(const unsigned char *b, size_t n, const char **ext)
{
    static const struct {
        const char *magic;
        size_t len, offset;
        const char *mime, *ext;
    } kinds[] = {
        {"\x89PNG\r\n\x1a\n", 8, 0, "image/png", "png"},
        {"GIF87a", 6, 0, "image/gif", "gif"},
        {"GIF89a", 6, 0, "image/gif", "gif"},
        {"\xff\xd8\xff", 3, 0, "image/jpeg", "jpg"},
        {"WEBP", 4, 8, "image/webp", "webp"},
    };
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (n >= kinds[i].offset + kinds[i].len + 4 &&
            0 == memcmp(b + kinds[i].offset, kinds[i].magic, kinds[i].len) &&
            (8 != kinds[i].offset || 0 == memcmp(b, "RIFF", 4))) {
            *ext = kinds[i].ext;
            return kinds[i].mime;
        }
    return NULL;
}

static enum MHD_Result upload_image(api_ctx_t *c)
{
    char err[512], token[SP_TOKEN_MAX], origin[320], url[SP_TOKEN_MAX + 400];
    const char *campaign = sp_http_arg(c->req, "campaign");
    const char *recipient = sp_http_arg(c->req, "recipient");
    const char *ext = NULL, *mime;
    if (!sp_event_id_valid(campaign) || (recipient && *recipient && !sp_event_id_valid(recipient)))
        return sp_http_error(c->req, 400,
                             "?campaign=ID (required) and &recipient=ID (optional): 1-128 "
                             "letters, digits or - _ @ + . characters");
    mime = image_kind((const unsigned char *)c->req->body, c->req->body_len, &ext);
    if (!mime)
        return sp_http_error(c->req, 400, "the body must be a PNG, GIF, JPEG or WebP image");
    sp_token_data_t data = {.kind = SP_TOKEN_IMAGE};
    unsigned char raw[16];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(data.extra, sizeof(data.extra), raw, sizeof(raw));
    snprintf(data.campaign, sizeof(data.campaign), "%s", campaign);
    snprintf(data.recipient, sizeof(data.recipient), "%s", recipient ? recipient : "");
    if (c->store->ops->campaign_create(c->store, campaign, sp_now_ms(), err, sizeof(err)) < 0 ||
        0 != c->store->ops->image_put(c->store, data.extra, campaign, mime, c->req->body,
                                      c->req->body_len, err, sizeof(err)))
        return store_error(c->req, err);
    if (0 != sp_token_seal(c->api->tokens, &data, token, sizeof(token)))
        return sp_http_error(c->req, 400, "the image link would be too long");
    sp_http_origin(c->req, origin, sizeof(origin));
    snprintf(url, sizeof(url), "%s/i/%s.%s", origin, token, ext);
    if (0 != sp_api_record_tracker(c->store, "image", campaign, data.recipient, "", url, err,
                                   sizeof(err)))
        return store_error(c->req, err);
    json_t *j = json_pack("{s:s, s:s, s:I}", "url", url, "type", mime, "bytes",
                          (json_int_t)c->req->body_len);
    return send_json(c->req, 201, j);
}

static enum MHD_Result list_rules(api_ctx_t *c)
{
    size_t n;
    const sp_classify_rule_info_t *rules = sp_classify_rules(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s}", "name", rules[i].name, "class",
                                             sp_class_name(rules[i].klass), "reason",
                                             rules[i].reason, "source", rules[i].source));
    return send_json(c->req, 200, arr);
}

static enum MHD_Result forget_recipient(api_ctx_t *c, const char *recipient)
{
    char err[512];
    int64_t deleted = 0;
    if (!sp_event_id_valid(recipient))
        return sp_http_error(c->req, 400, "not a recipient ID");
    /* Opens answered before this request but not yet stored would come back after it. */
    if (c->index_behind > 0)
        return sp_http_error(c->req, 503,
                             "the store is still indexing opens answered before this request; "
                             "nothing was erased: try again shortly");
    if (0 != c->store->ops->forget(c->store, recipient, &deleted, err, sizeof(err)))
        return store_error(c->req, err);
    sp_log_info("recipient forgotten", "events=%lld", (long long)deleted);
    return send_json(c->req, 200, json_pack("{s:I}", "deleted_events", (json_int_t)deleted));
}

static enum MHD_Result stream(api_ctx_t *c, const char *campaign)
{
    struct MHD_Response *resp = sp_live_stream(c->api->live, c->req->conn, campaign);
    if (!resp)
        return sp_http_error(c->req, 503, "too many live streams");
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    sp_http_secure_headers(resp, false);
    /* A stream is idle between events; the pings keep it alive, not a timeout. */
    MHD_set_connection_option(c->req->conn, MHD_CONNECTION_OPTION_TIMEOUT, 0u);
    enum MHD_Result rc = MHD_queue_response(c->req->conn, 200, resp);
    MHD_destroy_response(resp);
    return rc;
}

/* ---- the routes ---------------------------------------------------------------------- */

/* Credentials for every route but the login: an API token, or a session and, for a request
 * that changes something, its CSRF token. */
static unsigned admit(sp_request_t *req, const char **msg)
{
    api_ctx_t *c = req->state;
    c->req = req;
    c->api = req->ctx;
    c->store = sp_http_reader(req);
    if (!c->store) {
        *msg = "the store is not available";
        return 503;
    }
    if (authenticate(c)) {
        *msg = "log in or send Authorization: Bearer TOKEN";
        return 401;
    }
    bool safe = 0 == strcmp(req->method, "GET") || 0 == strcmp(req->method, "HEAD");
    if (!safe && !csrf_ok(c)) {
        *msg = "missing or wrong X-CSRF-Token header";
        return 403;
    }
    return 0;
}

/* The campaign ID a route's path names ('*'), into ID (SP_ID_MAX + 1 bytes): false, with the
 * answer queued, when it is not one. */
static bool campaign_id(api_ctx_t *c, char *id, size_t len, enum MHD_Result *answer)
{
    if (sp_http_param(c->req, 0, id, len) && sp_event_id_valid(id))
        return true;
    *answer = sp_http_error(c->req, 400, "not a campaign ID");
    return false;
}

/* The handlers of the table below: each is called with the request's credentials checked.
 * Reads, erasures and adoptions first wait for the index (wait_for_index). */

static enum MHD_Result me(sp_request_t *req)
{
    api_ctx_t *c = req->state;
    if (wait_for_index(c, false))
        return MHD_YES;
    return send_json(
        req, 200,
        json_pack("{s:s, s:s?}", "user", c->user, "csrf", c->by_session ? c->csrf : NULL));
}

static enum MHD_Result route_logout(sp_request_t *req)
{
    return logout(req->state);
}

static enum MHD_Result campaigns_get(sp_request_t *req)
{
    if (wait_for_index(req->state, false))
        return MHD_YES;
    return list_campaigns(req->state);
}

static enum MHD_Result campaigns_post(sp_request_t *req)
{
    return create_campaign(req->state);
}

static enum MHD_Result campaign_get(sp_request_t *req)
{
    char id[SP_ID_MAX + 1];
    enum MHD_Result answer;
    if (wait_for_index(req->state, false))
        return MHD_YES;
    return campaign_id(req->state, id, sizeof(id), &answer) ? get_campaign(req->state, id) : answer;
}

/* The whole campaign as a download: CSV, else JSON. */
static enum MHD_Result events_as(sp_request_t *req, bool csv)
{
    char id[SP_ID_MAX + 1];
    enum MHD_Result answer;
    if (wait_for_index(req->state, false))
        return MHD_YES;
    return campaign_id(req->state, id, sizeof(id), &answer) ? export_campaign(req->state, id, csv)
                                                            : answer;
}

static enum MHD_Result events_page(sp_request_t *req)
{
    char id[SP_ID_MAX + 1];
    enum MHD_Result answer;
    api_ctx_t *c = req->state;
    if (wait_for_index(c, false))
        return MHD_YES;
    return campaign_id(c, id, sizeof(id), &answer) ? sp_api_events(req, c->store, id) : answer;
}

static enum MHD_Result events_csv(sp_request_t *req)
{
    return events_as(req, true);
}

static enum MHD_Result events_json(sp_request_t *req)
{
    return events_as(req, false);
}

static enum MHD_Result campaign_stream(sp_request_t *req)
{
    char id[SP_ID_MAX + 1];
    enum MHD_Result answer;
    return campaign_id(req->state, id, sizeof(id), &answer) ? stream(req->state, id) : answer;
}

static enum MHD_Result all_stream(sp_request_t *req)
{
    return stream(req->state, "");
}

static enum MHD_Result unknown_get(sp_request_t *req)
{
    if (wait_for_index(req->state, false))
        return MHD_YES;
    return list_unknown(req->state);
}

static enum MHD_Result unknown_adopt(sp_request_t *req)
{
    char id[SP_ID_MAX + 1];
    enum MHD_Result answer;
    if (wait_for_index(req->state, false))
        return MHD_YES;
    return campaign_id(req->state, id, sizeof(id), &answer) ? adopt_unknown(req->state, id)
                                                            : answer;
}

static enum MHD_Result unknown_delete(sp_request_t *req)
{
    char id[SP_ID_MAX + 1];
    enum MHD_Result answer;
    if (wait_for_index(req->state, true))
        return MHD_YES;
    return campaign_id(req->state, id, sizeof(id), &answer) ? discard_unknown(req->state, id)
                                                            : answer;
}

static enum MHD_Result pixels_post(sp_request_t *req)
{
    return make_url(req->state, SP_TOKEN_OPEN);
}

static enum MHD_Result links_post(sp_request_t *req)
{
    return make_url(req->state, SP_TOKEN_CLICK);
}

static enum MHD_Result images_post(sp_request_t *req)
{
    return upload_image(req->state);
}

static enum MHD_Result rules_get(sp_request_t *req)
{
    if (wait_for_index(req->state, false))
        return MHD_YES;
    return list_rules(req->state);
}

static enum MHD_Result recipient_delete(sp_request_t *req)
{
    if (wait_for_index(req->state, true))
        return MHD_YES;
    return forget_recipient(req->state, req->rest);
}

/* The campaign routes of api_report, api_search and api_manage: a campaign's ID, then its
 * handler with the store this request reads. */
typedef enum MHD_Result (*campaign_fn)(sp_request_t *req, sp_store_t *store, const char *id);

static enum MHD_Result on_campaign(sp_request_t *req, bool wait, bool erase, campaign_fn fn)
{
    char id[SP_ID_MAX + 1];
    enum MHD_Result answer;
    api_ctx_t *c = req->state;
    if (wait && wait_for_index(c, erase))
        return MHD_YES;
    return campaign_id(c, id, sizeof(id), &answer) ? fn(req, c->store, id) : answer;
}

static enum MHD_Result campaign_patch(sp_request_t *req)
{
    return on_campaign(req, false, false, sp_api_campaign_manage);
}

static enum MHD_Result campaign_delete(sp_request_t *req)
{
    return on_campaign(req, true, true, sp_api_campaign_manage);
}

static enum MHD_Result recipients_put(sp_request_t *req)
{
    return on_campaign(req, false, false, sp_api_put_recipients);
}

static enum MHD_Result report_get(sp_request_t *req)
{
    return on_campaign(req, true, false, sp_api_report);
}

static enum MHD_Result links_get(sp_request_t *req)
{
    return on_campaign(req, true, false, sp_api_links);
}

static enum MHD_Result trackers_get(sp_request_t *req)
{
    return on_campaign(req, true, false, sp_api_trackers);
}

static enum MHD_Result recipients_table_get(sp_request_t *req)
{
    return on_campaign(req, true, false, sp_api_recipients_table);
}

static enum MHD_Result not_opened_json(sp_request_t *req, sp_store_t *store, const char *id)
{
    return sp_api_not_opened(req, store, id, false);
}

static enum MHD_Result not_opened_csv(sp_request_t *req, sp_store_t *store, const char *id)
{
    return sp_api_not_opened(req, store, id, true);
}

static enum MHD_Result not_opened_get(sp_request_t *req)
{
    return on_campaign(req, true, false, not_opened_json);
}

static enum MHD_Result not_opened_csv_get(sp_request_t *req)
{
    return on_campaign(req, true, false, not_opened_csv);
}

static enum MHD_Result recipient_get(sp_request_t *req)
{
    api_ctx_t *c = req->state;
    if (wait_for_index(c, false))
        return MHD_YES;
    return sp_api_recipient(req, c->store, req->rest);
}

#define V1 "/api/v1/"
#define ROUTE(METHODS, PATH, FLAGS, BODY, HANDLER)                                                 \
    {                                                                                              \
        .path = V1 PATH, .methods = METHODS, .flags = FLAGS, .body_max = BODY,                     \
        .authenticate = admit, .handle = HANDLER, .state_size = sizeof(api_ctx_t),                 \
        .headers = backlog_header,                                                                 \
    }

/* Every route of the API (the login is login.c's): its method, path, the body it takes. */
static const sp_route_t routes[] = {
    ROUTE(SP_HTTP_GET, "me", 0, 0, me),
    ROUTE(SP_HTTP_POST, "logout", 0, BODY_MAX, route_logout),
    ROUTE(SP_HTTP_GET, "campaigns", 0, 0, campaigns_get),
    ROUTE(SP_HTTP_POST, "campaigns", 0, BODY_MAX, campaigns_post),
    ROUTE(SP_HTTP_GET, "campaigns/*", 0, 0, campaign_get),
    ROUTE(SP_HTTP_PATCH, "campaigns/*", 0, BODY_MAX, campaign_patch),
    ROUTE(SP_HTTP_DELETE, "campaigns/*", 0, BODY_MAX, campaign_delete),
    ROUTE(SP_HTTP_PUT, "campaigns/*/recipients", 0, IMAGE_MAX, recipients_put),
    ROUTE(SP_HTTP_GET, "campaigns/*/report", 0, 0, report_get),
    ROUTE(SP_HTTP_GET, "campaigns/*/links", 0, 0, links_get),
    ROUTE(SP_HTTP_GET, "campaigns/*/trackers", 0, 0, trackers_get),
    ROUTE(SP_HTTP_GET, "campaigns/*/not-opened", 0, 0, not_opened_get),
    ROUTE(SP_HTTP_GET, "campaigns/*/not-opened.csv", 0, 0, not_opened_csv_get),
    ROUTE(SP_HTTP_GET, "campaigns/*/recipients-table", 0, 0, recipients_table_get),
    ROUTE(SP_HTTP_GET, "campaigns/*/events", 0, 0, events_page),
    ROUTE(SP_HTTP_GET, "campaigns/*/events.csv", 0, 0, events_csv),
    ROUTE(SP_HTTP_GET, "campaigns/*/events.json", 0, 0, events_json),
    ROUTE(SP_HTTP_GET, "campaigns/*/stream", 0, 0, campaign_stream),
    ROUTE(SP_HTTP_GET, "stream", 0, 0, all_stream),
    ROUTE(SP_HTTP_GET, "unknown-campaigns", 0, 0, unknown_get),
    ROUTE(SP_HTTP_POST, "unknown-campaigns/*/adopt", 0, BODY_MAX, unknown_adopt),
    ROUTE(SP_HTTP_DELETE, "unknown-campaigns/*", 0, BODY_MAX, unknown_delete),
    ROUTE(SP_HTTP_POST, "pixels", 0, BODY_MAX, pixels_post),
    ROUTE(SP_HTTP_POST, "links", 0, BODY_MAX, links_post),
    ROUTE(SP_HTTP_POST, "images", 0, IMAGE_MAX, images_post),
    ROUTE(SP_HTTP_GET, "rules", 0, 0, rules_get),
    ROUTE(SP_HTTP_GET, "recipients/", SP_ROUTE_PREFIX, 0, recipient_get),
    ROUTE(SP_HTTP_DELETE, "recipients/", SP_ROUTE_PREFIX, BODY_MAX, recipient_delete),
    /* What no route above knows, with credentials or without. */
    {.path = V1,
     .methods = SP_HTTP_ANY,
     .flags = SP_ROUTE_PREFIX | SP_ROUTE_FALLBACK,
     .authenticate = admit,
     .status = 404,
     .message = "no such API endpoint",
     .state_size = sizeof(api_ctx_t)},
    {.path = "/api/",
     .methods = SP_HTTP_ANY,
     .flags = SP_ROUTE_PREFIX | SP_ROUTE_FALLBACK,
     .status = 404,
     .message = "unknown API version"},
};

void sp_api_routes(sp_http_routes_t *table, sp_api_t *api)
{
    sp_http_routes_add(table, routes, sizeof(routes) / sizeof(routes[0]), api);
}
