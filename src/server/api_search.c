/* api_search: the event log filtered, the recipients table sorted, a recipient's timeline. */
/* SPDX-License-Identifier: MIT */
#include "api_search.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_report.h"
#include "classify.h"
#include "event.h"
#include "log.h"
#include "serialize.h"

#define PAGE_DEFAULT 100
#define PAGE_MAX     100000
#define TEXT_ARG_MAX 128 /* a country or client name */

static enum MHD_Result store_error(sp_request_t *req, const char *err)
{
    sp_log_error("store error", "error=\"%s\"", err);
    return sp_http_error(req, 500, "the store failed; see the server log");
}

static int positive(const char *s, int64_t max, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The filters and page of an events request into Q; 0, or -1 with the reason in MSG. */
static int parse_events(sp_request_t *req, sp_query_events_t *q, char *msg, size_t len)
{
    const char *recipient = sp_http_arg(req, "recipient"), *klass = sp_http_arg(req, "class"),
               *kind = sp_http_arg(req, "kind"), *country = sp_http_arg(req, "country"),
               *client = sp_http_arg(req, "client"), *from = sp_http_arg(req, "from"),
               *to = sp_http_arg(req, "to"), *before = sp_http_arg(req, "before"),
               *limit = sp_http_arg(req, "limit");
    q->klass = q->kind = -1;
    q->to = INT64_MAX;
    q->limit = PAGE_DEFAULT;
    if (limit && positive(limit, PAGE_MAX, &q->limit))
        return snprintf(msg, len, "limit must be 1-100000"), -1;
    if (before && positive(before, INT64_MAX, &q->before))
        return snprintf(msg, len, "before must be an event ID"), -1;
    if (recipient && !sp_event_id_valid(recipient))
        return snprintf(msg, len, "recipient must be 1-128 letters, digits or - _ @ + ."), -1;
    q->recipient = recipient;
    if (klass) {
        sp_class_t c;
        if (0 != sp_class_from_name(klass, &c))
            return snprintf(msg, len, "class must be human, proxy, machine or self"), -1;
        q->klass = (int)c;
    }
    if (kind) {
        static const int stored[] = {SP_EVENT_OPEN, SP_EVENT_CLICK, SP_EVENT_PRINT,
                                     SP_EVENT_FORWARD};
        for (size_t i = 0; i < sizeof(stored) / sizeof(stored[0]) && q->kind < 0; i++)
            if (0 == strcmp(kind, sp_event_kind_name(stored[i])))
                q->kind = stored[i];
        if (q->kind < 0)
            return snprintf(msg, len, "kind must be open, click, print or forward"), -1;
    }
    if ((country && strlen(country) > TEXT_ARG_MAX) || (client && strlen(client) > TEXT_ARG_MAX))
        return snprintf(msg, len, "country and client are at most %d bytes", TEXT_ARG_MAX), -1;
    q->country = country;
    q->client = client;
    sp_tz_t utc = {0};
    int64_t t;
    if (from) {
        if (strlen(from) > 40 || 0 != sp_api_report_time(from, &utc, &t))
            return snprintf(msg, len, "from and to must be ISO 8601 times (UTC without an offset)"),
                   -1;
        q->from = t;
    }
    if (to) {
        if (strlen(to) > 40 || 0 != sp_api_report_time(to, &utc, &t))
            return snprintf(msg, len, "from and to must be ISO 8601 times (UTC without an offset)"),
                   -1;
        q->to = t;
    }
    return 0;
}

typedef struct {
    json_t *arr;
    int64_t last, n;
} page_t;

static int add_event(void *ctx, const sp_event_row_t *r)
{
    page_t *p = ctx;
    json_array_append_new(p->arr, sp_serialize_event(r));
    p->last = r->id;
    p->n++;
    return 0;
}

static int campaign_known(sp_request_t *req, sp_store_t *store, const char *id,
                          enum MHD_Result *answer)
{
    char err[512];
    sp_campaign_t camp;
    int found = store->ops->campaign_get(store, id, &camp, err, sizeof(err));
    if (found < 0)
        *answer = store_error(req, err);
    else if (found > 0)
        *answer = sp_http_error(req, 404, "no such campaign");
    return found;
}

enum MHD_Result sp_api_events(sp_request_t *req, sp_store_t *store, const char *id)
{
    char err[512], msg[160];
    sp_query_events_t q = {.campaign = id};
    if (0 != parse_events(req, &q, msg, sizeof(msg)))
        return sp_http_error(req, 400, msg);
    enum MHD_Result answer;
    if (campaign_known(req, store, id, &answer))
        return answer;
    page_t p = {.arr = json_array()};
    if (0 != store->ops->events_query(store, &q, add_event, &p, err, sizeof(err))) {
        json_decref(p.arr);
        return store_error(req, err);
    }
    return sp_http_json(req, 200, p.arr);
}

enum MHD_Result sp_api_recipient(sp_request_t *req, sp_store_t *store, const char *recipient)
{
    char err[512], msg[160];
    if (!sp_event_id_valid(recipient))
        return sp_http_error(req, 400, "not a recipient ID");
    sp_query_events_t q = {0};
    if (0 != parse_events(req, &q, msg, sizeof(msg)))
        return sp_http_error(req, 400, msg);
    q.recipient = recipient;
    page_t p = {.arr = json_array()};
    if (0 != store->ops->events_query(store, &q, add_event, &p, err, sizeof(err))) {
        json_decref(p.arr);
        return store_error(req, err);
    }
    return sp_http_json(req, 200,
                        json_pack("{s:s, s:o, s:o}", "recipient", recipient, "events", p.arr,
                                  "next_before",
                                  p.n == q.limit ? json_integer(p.last) : json_null()));
}

/* ---- the recipients table ------------------------------------------------------------------ */

static const char *const sorts[] = {
    [SP_SORT_RECIPIENT] = "recipient", [SP_SORT_VIEWS] = "views",       [SP_SORT_CLICKS] = "clicks",
    [SP_SORT_FIRST] = "first_view_at", [SP_SORT_LAST] = "last_view_at",
};

static int64_t sort_value(sp_query_sort_t sort, const sp_recipient_t *r)
{
    switch (sort) {
    case SP_SORT_VIEWS:
        return r->views;
    case SP_SORT_CLICKS:
        return r->clicks;
    case SP_SORT_FIRST:
        return r->first_at;
    case SP_SORT_LAST:
        return r->last_at;
    default:
        return 0;
    }
}

typedef struct {
    json_t *arr;
    sp_query_sort_t sort;
    char last[SP_ID_MAX + 1];
    int64_t last_value, n;
} table_t;

static int add_row(void *ctx, const sp_recipient_t *r)
{
    table_t *t = ctx;
    json_array_append_new(t->arr, sp_serialize_recipient(r));
    snprintf(t->last, sizeof(t->last), "%s", r->recipient);
    t->last_value = sort_value(t->sort, r);
    t->n++;
    return 0;
}

/* The cursor: "VALUE.RECIPIENT" in URL-safe base64, opaque to the client. */
#define CURSOR_MAX 256

static void cursor_make(int64_t value, const char *recipient, char *out, size_t len)
{
    char raw[SP_ID_MAX + 32];
    int n = snprintf(raw, sizeof(raw), "%lld.%s", (long long)value, recipient);
    sodium_bin2base64(out, len, (const unsigned char *)raw, (size_t)n,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

static int cursor_read(const char *s, int64_t *value, char *recipient, size_t len)
{
    unsigned char raw[SP_ID_MAX + 32];
    size_t n;
    if (strlen(s) > CURSOR_MAX ||
        0 != sodium_base642bin(raw, sizeof(raw) - 1, s, strlen(s), NULL, &n, NULL,
                               sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return -1;
    raw[n] = '\0';
    char *dot = memchr(raw, '.', n), *end;
    if (!dot || strlen((char *)raw) != n)
        return -1;
    *dot = '\0';
    errno = 0;
    *value = strtoll((char *)raw, &end, 10);
    if (errno || end == (char *)raw || *end || !sp_event_id_valid(dot + 1) ||
        strlen(dot + 1) >= len)
        return -1;
    snprintf(recipient, len, "%s", dot + 1);
    return 0;
}

enum MHD_Result sp_api_recipients_table(sp_request_t *req, sp_store_t *store, const char *id)
{
    char err[512], after[SP_ID_MAX + 1];
    const char *sort = sp_http_arg(req, "sort"), *order = sp_http_arg(req, "order"),
               *limit = sp_http_arg(req, "limit"), *next = sp_http_arg(req, "next");
    sp_query_recipients_t q = {.campaign = id, .limit = PAGE_DEFAULT};
    bool known = !sort;
    for (size_t i = 0; sort && i < sizeof(sorts) / sizeof(sorts[0]); i++)
        if (0 == strcmp(sort, sorts[i])) {
            q.sort = (sp_query_sort_t)i;
            known = true;
        }
    if (!known)
        return sp_http_error(
            req, 400, "sort must be recipient, views, clicks, first_view_at or last_view_at");
    if (order && 0 != strcmp(order, "asc") && 0 != strcmp(order, "desc"))
        return sp_http_error(req, 400, "order must be asc or desc");
    q.desc = order ? 0 == strcmp(order, "desc") : SP_SORT_RECIPIENT != q.sort;
    if (limit && positive(limit, PAGE_MAX, &q.limit))
        return sp_http_error(req, 400, "limit must be 1-100000");
    if (next) {
        if (0 != cursor_read(next, &q.after_value, after, sizeof(after)))
            return sp_http_error(req, 400, "next must be a cursor this route gave");
        q.after = after;
    }
    enum MHD_Result answer;
    if (campaign_known(req, store, id, &answer))
        return answer;
    table_t t = {.arr = json_array(), .sort = q.sort};
    if (0 != store->ops->recipients_sorted(store, &q, add_row, &t, err, sizeof(err))) {
        json_decref(t.arr);
        return store_error(req, err);
    }
    char cursor[CURSOR_MAX + 1];
    if (t.n == q.limit)
        cursor_make(t.last_value, t.last, cursor, sizeof(cursor));
    return sp_http_json(req, 200,
                        json_pack("{s:s, s:s, s:s, s:o, s:o}", "id", id, "sort", sorts[q.sort],
                                  "order", q.desc ? "desc" : "asc", "recipients", t.arr, "next",
                                  t.n == q.limit ? json_string(cursor) : json_null()));
}
