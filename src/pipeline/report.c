/* report: a campaign's figures over a time range and zone, from the store's rollups. */
/* SPDX-License-Identifier: MIT */
#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "tally.h"

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return q * b > a ? q - 1 : q;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return -floor_div(-a, b);
}

static const int64_t bucket_len[] = {
    [SP_REPORT_HOUR] = 3600, [SP_REPORT_DAY] = 86400, [SP_REPORT_WEEK] = 7 * 86400};

int64_t sp_report_bucket_start(const sp_report_t *r, int64_t t)
{
    int64_t s = floor_div(t, 1000);
    int32_t off = sp_tz_offset(&r->tz, s);
    int64_t local = s + off, start;
    if (SP_REPORT_HOUR == r->bucket) {
        start = floor_div(local, 3600) * 3600;
        /* The instant's own offset: both readings of an hour that clocks repeat are kept. */
        if (sp_tz_offset(&r->tz, start - off) == off)
            return (start - off) * 1000;
        return sp_tz_from_local(&r->tz, start) * 1000;
    }
    int64_t days = floor_div(local, 86400);
    if (SP_REPORT_WEEK == r->bucket)
        days -= ((days + 3) % 7 + 7) % 7; /* back to Monday: 1970-01-01 was a Thursday */
    start = days * 86400;
    return sp_tz_from_local(&r->tz, start) * 1000;
}

typedef struct {
    int64_t quarter;
    int64_t c[SP_ROLLUP_COUNTS];
} quarter_t;

typedef struct {
    sp_report_t *r;
    quarter_t *q;
    size_t n, cap;
    sp_report_name_t *vals[SP_ROLLUP_DIMS]; /* every value of each breakdown, unranked */
    size_t n_vals[SP_ROLLUP_DIMS], cap_vals[SP_ROLLUP_DIMS];
} collect_t;

static int on_counts(void *ctx, int64_t quarter, const int64_t counts[SP_ROLLUP_COUNTS])
{
    collect_t *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        c->q = realloc(c->q, c->cap * sizeof(*c->q));
        if (!c->q)
            abort();
    }
    quarter_t *q = &c->q[c->n++];
    q->quarter = quarter;
    memcpy(q->c, counts, sizeof(q->c));
    for (int k = 0; k < SP_CLASS_COUNT; k++)
        c->r->by_class[k] += counts[SP_ROLLUP_HUMAN + k];
    c->r->clicks += counts[SP_ROLLUP_CLICKS];
    return 0;
}

static int on_value(void *ctx, int dim, const char *value, int64_t n)
{
    collect_t *c = ctx;
    if (dim < SP_ROLLUP_CLIENT || dim > SP_ROLLUP_VIA)
        return 0;
    if (c->n_vals[dim] == c->cap_vals[dim]) {
        c->cap_vals[dim] = c->cap_vals[dim] ? 2 * c->cap_vals[dim] : 64;
        c->vals[dim] = realloc(c->vals[dim], c->cap_vals[dim] * sizeof(*c->vals[dim]));
        if (!c->vals[dim])
            abort();
    }
    char *copy = strdup(value);
    if (!copy)
        abort();
    c->vals[dim][c->n_vals[dim]++] = (sp_report_name_t){copy, n};
    return 0;
}

static uint64_t hash_name(const void *p)
{
    return sp_hash_str(SP_HASH_SEED, ((const sp_report_name_t *)p)->name);
}

static bool same_name(const void *pa, const void *pb)
{
    return 0 == strcmp(((const sp_report_name_t *)pa)->name, ((const sp_report_name_t *)pb)->name);
}

static void add_name(void *pa, void *pb)
{
    sp_report_name_t *a = pa, *b = pb;
    a->count += b->count;
    free(b->name);
}

/* By count, descending, then by the name's bytes: the stores' order (COLLATE "C", BINARY). */
static int cmp_name(const void *pa, const void *pb)
{
    const sp_report_name_t *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->name, b->name);
}

/* HEAP's N names, the last ranked at the top (a heap by cmp_name reversed), with the one at AT
 * moved down to its place. */
static void sift_down(sp_report_name_t *heap, size_t n, size_t at)
{
    for (;;) {
        size_t last = at, l = 2 * at + 1, r = l + 1;
        if (l < n && cmp_name(&heap[l], &heap[last]) > 0)
            last = l;
        if (r < n && cmp_name(&heap[r], &heap[last]) > 0)
            last = r;
        if (last == at)
            return;
        sp_report_name_t t = heap[at];
        heap[at] = heap[last];
        heap[last] = t;
        at = last;
    }
}

/* Each breakdown's values added up (a value's rows: its total less what lies outside the
 * range), those with opens ranked, the first SP_REPORT_BREAKDOWN_MAX kept and the rest summed:
 * done here rather than by the store, whose grouping and sort of every value (thousands of
 * cities) cost more than reading them. The rows are merged by a hash of their names and the
 * first are chosen through a heap of SP_REPORT_BREAKDOWN_MAX: at ten million events a campaign
 * has some 27,000 cities, which sorting whole took a third of the report's CPU. */
static void rank_values(collect_t *c)
{
    for (int d = SP_ROLLUP_CLIENT; d <= SP_ROLLUP_VIA; d++) {
        sp_report_breakdown_t *b = &c->r->breakdowns[d];
        sp_report_name_t *v = c->vals[d];
        if (!c->n_vals[d])
            continue;
        size_t n = sp_merge(v, c->n_vals[d], sizeof(*v), hash_name, same_name, add_name);
        /* The first SP_REPORT_BREAKDOWN_MAX with opens kept in V's front as a heap. */
        size_t kept = 0;
        for (size_t i = 0; i < n; i++) {
            sp_report_name_t it = v[i];
            if (it.count <= 0) {
                free(it.name);
                continue;
            }
            if (kept < SP_REPORT_BREAKDOWN_MAX) {
                v[kept++] = it;
                for (size_t at = kept - 1; at > 0 && cmp_name(&v[(at - 1) / 2], &v[at]) < 0;
                     at = (at - 1) / 2) {
                    sp_report_name_t t = v[at];
                    v[at] = v[(at - 1) / 2];
                    v[(at - 1) / 2] = t;
                }
                continue;
            }
            if (cmp_name(&it, &v[0]) < 0) {
                sp_report_name_t out = v[0];
                v[0] = it;
                sift_down(v, kept, 0);
                it = out;
            }
            b->others += it.count;
            free(it.name);
        }
        qsort(v, kept, sizeof(*v), cmp_name);
        b->names = v;
        b->n = kept;
        c->vals[d] = NULL;
        c->n_vals[d] = 0;
    }
}

static int on_distinct(void *ctx, int dim, int64_t n, int64_t listed)
{
    collect_t *c = ctx;
    if (SP_ROLLUP_OPENER == dim) {
        c->r->unique_views = n;
        c->r->sent_openers = listed;
    } else if (SP_ROLLUP_CLICKER == dim) {
        c->r->unique_clickers = n;
        c->r->sent_clickers = listed;
    }
    return 0;
}

/* The series' buckets from the one that holds FIRST to the one that holds LAST. 1 when there
 * would be too many. */
static int make_series(sp_report_t *r, int64_t first, int64_t last, char *err, size_t errlen)
{
    size_t cap = 64;
    r->series = calloc(cap, sizeof(*r->series));
    if (!r->series)
        abort();
    int64_t step = bucket_len[r->bucket] * 1000 * 3 / 2; /* lands within the next bucket */
    for (int64_t b = sp_report_bucket_start(r, first); b <= last;
         b = sp_report_bucket_start(r, b + step)) {
        if (r->n_series == SP_REPORT_SERIES_MAX) {
            snprintf(err, errlen,
                     "the range holds more than %d buckets: choose a larger bucket or a shorter "
                     "range",
                     SP_REPORT_SERIES_MAX);
            return 1;
        }
        if (r->n_series == cap) {
            cap *= 2;
            r->series = realloc(r->series, cap * sizeof(*r->series));
            if (!r->series)
                abort();
        }
        r->series[r->n_series++] = (sp_report_point_t){.t = b};
    }
    return 0;
}

static sp_report_point_t *find_point(sp_report_t *r, int64_t t)
{
    int64_t b = sp_report_bucket_start(r, t);
    size_t lo = 0, hi = r->n_series;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->series[mid].t == b)
            return &r->series[mid];
        if (r->series[mid].t < b)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int sp_report_run(sp_store_t *s, const char *campaign, sp_report_t *r, char *err, size_t errlen)
{
    const int64_t H = SP_ROLLUP_HOUR_MS, Q = SP_ROLLUP_QUARTER_MS;
    sp_store_span_t span = {0};
    int64_t h0 = ceil_div(r->from, H), h1 = floor_div(r->to, H);
    if (r->scan || h0 >= h1) {
        span.edge_from[0] = r->from;
        span.edge_to[0] = r->to;
    } else {
        int64_t d0 = ceil_div(h0, 24), d1 = floor_div(h1, 24);
        span = (sp_store_span_t){.hour_from = h0,
                                 .hour_to = h1,
                                 .day_from = d0 < d1 ? d0 : 0,
                                 .day_to = d0 < d1 ? d1 : 0,
                                 .edge_from = {r->from, h1 * H},
                                 .edge_to = {h0 * H, r->to}};
    }
    collect_t c = {.r = r};
    const sp_store_report_cb_t cb = {on_counts, on_value, on_distinct};
    int ret = -1;
    sp_store_sent_t sent;
    if (0 != s->ops->sent_stats(s, campaign, &sent, err, errlen))
        goto done;
    /* Over all time, the campaign's counters have its unique views and those of its list: no
     * distinct count of every opener's hours. */
    bool all_time = !r->scan && 0 == r->from && SP_REPORT_TIME_MAX == r->to;
    if (all_time) {
        sp_campaign_t camp;
        int got = s->ops->campaign_get(s, campaign, &camp, err, errlen);
        if (got < 0)
            goto done;
        span.no_openers = 0 == got;
        r->unique_views = 0 == got ? camp.unique_views : 0;
    }
    if (0 != s->ops->report(s, campaign, &span, &cb, &c, err, errlen))
        goto done;
    rank_values(&c);
    r->sent = sent.sent;
    if (all_time) {
        r->sent_openers = sent.openers;
        r->sent_clickers = sent.clickers;
    }

    int64_t first = r->from, last = r->to - 1;
    if (c.n && (0 == r->from || SP_REPORT_TIME_MAX == r->to)) {
        int64_t lo = c.q[0].quarter, hi = c.q[0].quarter;
        for (size_t i = 1; i < c.n; i++) {
            lo = c.q[i].quarter < lo ? c.q[i].quarter : lo;
            hi = c.q[i].quarter > hi ? c.q[i].quarter : hi;
        }
        if (0 == r->from)
            first = lo * Q;
        if (SP_REPORT_TIME_MAX == r->to)
            last = hi * Q + Q - 1;
    }
    bool empty = !c.n && (0 == r->from || SP_REPORT_TIME_MAX == r->to);
    if (!empty && (ret = make_series(r, first, last, err, errlen)))
        goto done;
    for (size_t i = 0; i < c.n; i++) {
        const quarter_t *q = &c.q[i];
        int64_t counted = q->c[SP_ROLLUP_HUMAN] + q->c[SP_ROLLUP_PROXY];
        sp_report_point_t *p = find_point(r, q->quarter * Q);
        if (p) {
            p->counted += counted;
            p->machine += q->c[SP_ROLLUP_MACHINE];
            p->self += q->c[SP_ROLLUP_SELF];
            p->clicks += q->c[SP_ROLLUP_CLICKS];
        }
        int64_t t = q->quarter * (Q / 1000), local = t + sp_tz_offset(&r->tz, t);
        int64_t days = floor_div(local, 86400);
        r->hour_of_day[(local - days * 86400) / 3600] += counted;
        r->day_of_week[((days + 3) % 7 + 7) % 7] += counted;
    }
    ret = 0;
done:
    free(c.q);
    for (int d = 0; d < SP_ROLLUP_DIMS; d++) {
        for (size_t i = 0; i < c.n_vals[d]; i++)
            free(c.vals[d][i].name);
        free(c.vals[d]);
    }
    return ret;
}

void sp_report_free(sp_report_t *r)
{
    free(r->series);
    r->series = NULL;
    r->n_series = 0;
    for (int d = 0; d < SP_ROLLUP_DIMS; d++) {
        for (size_t i = 0; i < r->breakdowns[d].n; i++)
            free(r->breakdowns[d].names[i].name);
        free(r->breakdowns[d].names);
        r->breakdowns[d].names = NULL;
        r->breakdowns[d].n = 0;
    }
    sp_tz_free(&r->tz);
}
