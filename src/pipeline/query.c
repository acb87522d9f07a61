/* query: a filtered page of events and a sorted page of recipients, as SQL both stores run. */
/* SPDX-License-Identifier: MIT */
#include "query.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tally.h"

typedef struct {
    char *buf;
    size_t len, at;
    char mark;
    sp_query_param_t *params;
    int n;
} build_t;

__attribute__((format(printf, 2, 3))) static void put(build_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->buf + b->at, b->len - b->at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= b->len - b->at)
        abort(); /* the statements are of a known size: a buffer too small is a bug */
    b->at += (size_t)n;
}

/* Adds a parameter, and returns its number: the SQL names it where it has to. */
static int add_param(build_t *b, bool text, const char *s, int64_t n)
{
    if (b->n == SP_QUERY_PARAMS)
        abort();
    b->params[b->n++] = (sp_query_param_t){text, s, n};
    return b->n;
}

/* Appends the mark of a new parameter, and returns its number. */
static int param(build_t *b, bool text, const char *s, int64_t n)
{
    add_param(b, text, s, n);
    put(b, "%c%d", b->mark, b->n);
    return b->n;
}

void sp_query_ids_in_time(char *out, size_t len, const char *campaign, const char *from,
                          const char *to)
{
    build_t b = {out, len, 0, 0, NULL, 0};
    char in[512]; /* the quarters of the range */
    build_t r = {in, sizeof(in), 0, 0, NULL, 0};
    put(&r, "campaign = %s", campaign);
    if (from)
        put(&r, " AND quarter >= (%s) / %lld", from, SP_QUERY_QUARTER_MS);
    if (to)
        put(&r, " AND quarter <= (%s - 1) / %lld", to, SP_QUERY_QUARTER_MS);
    if (!from && !to)
        abort(); /* no range: the callers bound one end at least */
    if (from)
        put(&b, "id >= (SELECT min(first_id) FROM events_quarters WHERE %s)", in);
    if (to)
        put(&b, "%sid <= (SELECT max(last_id) FROM events_quarters WHERE %s)", from ? " AND " : "",
            in);
}

/* SQLite: the condition on a recipient's lists moved out that Q asks for (the bounds are
 * numbers, written into the SQL: a page's statement is prepared for it alone). */
static const char *lists_sql(const sp_query_events_t *q, char *buf, size_t len)
{
    int at = 0;
    buf[0] = '\0';
    if (q->lists_from > 0)
        at = snprintf(buf, len, " AND x.first_id >= %lld", (long long)q->lists_from);
    if (q->lists_to > 0)
        snprintf(buf + at, len - (size_t)at, " AND x.first_id < %lld", (long long)q->lists_to);
    return buf;
}

void sp_query_events_sql(const sp_query_events_t *q, const char *cols, char mark, char *sql,
                         size_t len, sp_query_param_t *params, int *n_params)
{
    build_t b = {sql, len, 0, mark, params, 0};
    bool pg = '$' == mark;
    char lists[96];
    /* PostgreSQL: events_campaign_recipient only holds rows with a recipient, and a planner
     * cannot see that a bound parameter is not empty (not in a generic plan): without the term
     * said out loud it reads the whole campaign by time instead. */
    const char *named = pg && q->recipient && q->recipient[0] ? " AND recipient <> ''" : "";
    put(&b, "SELECT %s FROM events WHERE ", cols);
    int campaign = 0, from = 0, to = 0;
    if (q->campaign) {
        /* SQLite: the IDs the recipient's row lists (SP_QUERY_EVENT_IDS), each row found by its
         * ID ("+": not through events_campaign, a seek more each). */
        bool listed = q->recipient && !pg;
        if (listed)
            put(&b, "id IN " SP_QUERY_RECIPIENT_EVENT_IDS_IN("?%1$d", "?%2$d", "%3$s") " AND ",
                b.n + 1, b.n + 2, lists_sql(q, lists, sizeof(lists)));
        put(&b, "%scampaign = ", listed ? "+" : "");
        campaign = param(&b, true, q->campaign, 0);
        if (q->recipient) {
            put(&b, " AND recipient = ");
            param(&b, true, q->recipient, 0);
            put(&b, "%s", named);
        }
    } else if (!pg) {
        /* A recipient's events everywhere: the IDs its rows in their campaigns list. */
        int r = add_param(&b, true, q->recipient ? q->recipient : "", 0);
        put(&b,
            "id IN " SP_QUERY_RECIPIENT_ALL_EVENT_IDS_IN("?%1$d", "%2$s") " AND recipient = ?%1$d",
            r, lists_sql(q, lists, sizeof(lists)));
    } else {
        /* A recipient's events everywhere: through the campaigns they are in, each read by
         * events_campaign_recipient. */
        put(&b,
            "campaign IN (SELECT campaign FROM recipients WHERE " SP_QUERY_RECIPIENT_CAMPAIGNS(""));
        int r = param(&b, true, q->recipient ? q->recipient : "", 0);
        put(&b, ") AND recipient = %c%d%s", mark, r, named);
    }
    if (q->klass >= 0) {
        put(&b, " AND class = ");
        param(&b, false, NULL, q->klass);
    }
    if (q->kind >= 0) {
        put(&b, " AND kind = ");
        param(&b, false, NULL, q->kind);
    }
    if (q->country) {
        put(&b, " AND country = ");
        param(&b, true, q->country, 0);
    }
    if (q->client) {
        put(&b, " AND browser = ");
        param(&b, true, q->client, 0);
    }
    if (q->from > 0) {
        put(&b, " AND ts >= ");
        from = param(&b, false, NULL, q->from);
    }
    if (q->to < INT64_MAX) {
        put(&b, " AND ts < ");
        to = param(&b, false, NULL, q->to);
    }
    if ('?' == mark && campaign && (from || to)) {
        /* SQLite: the range's IDs, read through events_campaign (no index by time). */
        char c[16], f[16], t[16], span[1024];
        snprintf(c, sizeof(c), "?%d", campaign);
        snprintf(f, sizeof(f), "?%d", from);
        snprintf(t, sizeof(t), "?%d", to);
        sp_query_ids_in_time(span, sizeof(span), c, from ? f : NULL, to ? t : NULL);
        put(&b, " AND %s", span);
    }
    if (q->before > 0) {
        put(&b, " AND id < ");
        param(&b, false, NULL, q->before);
    }
    put(&b, " ORDER BY id DESC");
    if (q->limit >= 0) {
        put(&b, " LIMIT ");
        param(&b, false, NULL, q->limit);
    }
    *n_params = b.n;
}

void sp_query_recipients_sql(const sp_query_recipients_t *q, char mark, char *sql, size_t len,
                             sp_query_param_t *params, int *n_params)
{
    static const char *const values[] = {
        [SP_SORT_RECIPIENT] = "(0 * clicks)", /* 0, but not a column number in ORDER BY */
        [SP_SORT_VIEWS] = SP_TALLY_VIEWS_SQL(""),
        [SP_SORT_CLICKS] = "clicks",
        [SP_SORT_FIRST] = "first_at",
        [SP_SORT_LAST] = "last_at",
    };
    const char *v = values[q->sort], *dir = q->desc ? "DESC" : "ASC", *cmp = q->desc ? "<" : ">";
    build_t b = {sql, len, 0, mark, params, 0};
    put(&b,
        "SELECT recipient, human, proxy, machine, self, clicks, first_at, last_at, %s"
        " FROM recipients WHERE campaign = ",
        v);
    param(&b, true, q->campaign, 0);
    if (q->after) {
        /* The keyset: past the last row in the order (value, recipient). */
        put(&b, " AND (%s %s ", v, cmp);
        int value = param(&b, false, NULL, q->after_value);
        put(&b, " OR (%s = %c%d AND recipient %s ", v, mark, value, cmp);
        param(&b, true, q->after, 0);
        put(&b, "))");
    }
    put(&b, " ORDER BY %s %s, recipient %s LIMIT ", v, dir, dir);
    param(&b, false, NULL, q->limit);
    *n_params = b.n;
}
