/* rollup: the report's counters, kept by the writer beside the events, added up in C and in SQL. */
/* SPDX-License-Identifier: MIT */
#include "rollup.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "merge.h"
#include "query.h"
#include "scratch.h"
#include "tally.h"

static const char *const dim_names[SP_ROLLUP_DIMS] = {
    [SP_ROLLUP_CLIENT] = "client",   [SP_ROLLUP_OS] = "os",     [SP_ROLLUP_DEVICE] = "device",
    [SP_ROLLUP_COUNTRY] = "country", [SP_ROLLUP_CITY] = "city", [SP_ROLLUP_VIA] = "via",
};

const char *sp_rollup_dim_name(int dim)
{
    return dim >= 0 && dim < SP_ROLLUP_DIMS ? dim_names[dim] : NULL;
}

/* What each dim counts: its value, and which events count (of the CTE "e"). */
#define COUNTED_OPEN  "(" SP_TALLY_OPEN_SQL " AND " SP_TALLY_COUNTED_SQL ")"
#define COUNTED_CLICK "(" SP_TALLY_CLICK_SQL " AND " SP_TALLY_COUNTED_SQL ")"
static const struct {
    const char *value, *when;
} dims[SP_ROLLUP_DIMS] = {
    [SP_ROLLUP_OPENER] = {SP_TALLY_WHO_SQL, COUNTED_OPEN},
    [SP_ROLLUP_CLIENT] = {SP_TALLY_READER_SQL("browser"), COUNTED_OPEN},
    [SP_ROLLUP_OS] = {SP_TALLY_READER_SQL("os"), COUNTED_OPEN},
    [SP_ROLLUP_DEVICE] = {SP_TALLY_READER_SQL("device"), COUNTED_OPEN},
    [SP_ROLLUP_COUNTRY] = {SP_TALLY_READER_SQL("country"), COUNTED_OPEN},
    [SP_ROLLUP_CITY] = {SP_TALLY_READER_SQL("city"), COUNTED_OPEN},
    [SP_ROLLUP_VIA] = {"via", COUNTED_OPEN},
    [SP_ROLLUP_CLICKER] = {SP_TALLY_WHO_SQL, COUNTED_CLICK},
};

/* The same rule in C, of a stored row: whom it counts unique by (SP_TALLY_WHO_SQL) into KEY,
 * and what it tells of its reader in column COL (SP_TALLY_READER_SQL). */
static const char *who(const sp_event_row_t *row, char *key)
{
    if (row->recipient[0])
        return row->recipient;
    snprintf(key, SP_ROLLUP_KEY_MAX, "v:%s", row->visitor);
    return key;
}

static const char *reader(const sp_event_row_t *row, const char *col)
{
    if (SP_CLASS_PROXY == row->klass)
        return row->via[0] ? row->via : "proxy";
    return col;
}

static int cmp_count(const void *pa, const void *pb)
{
    const sp_rollup_count_t *a = pa, *b = pb;
    int c = a->campaign == b->campaign ? 0 : strcmp(a->campaign, b->campaign);
    return c ? c : (a->quarter > b->quarter) - (a->quarter < b->quarter);
}

static int cmp_value(const void *pa, const void *pb)
{
    const sp_rollup_value_t *a = pa, *b = pb;
    int c = a->campaign == b->campaign ? 0 : strcmp(a->campaign, b->campaign);
    if (c)
        return c;
    if (a->dim != b->dim)
        return a->dim < b->dim ? -1 : 1;
    if (a->hour != b->hour)
        return a->hour < b->hour ? -1 : 1;
    return sp_text_cmp(a->value, a->head, b->value, b->head);
}

static uint64_t hash_count(const void *p)
{
    const sp_rollup_count_t *c = p;
    return sp_hash_int(sp_hash_str(SP_HASH_SEED, c->campaign), c->quarter);
}

static bool same_count(const void *pa, const void *pb)
{
    return 0 == cmp_count(pa, pb);
}

static void add_count(void *pa, void *pb)
{
    sp_rollup_count_t *a = pa;
    const sp_rollup_count_t *b = pb;
    for (int j = 0; j < SP_ROLLUP_COUNTS; j++)
        a->n[j] += b->n[j];
}

static uint64_t hash_value(const void *p)
{
    const sp_rollup_value_t *v = p;
    return sp_hash_int(sp_hash_int(v->hash, v->dim), v->hour);
}

static bool same_value(const void *pa, const void *pb)
{
    return 0 == cmp_value(pa, pb);
}

static void add_value(void *pa, void *pb)
{
    ((sp_rollup_value_t *)pa)->n += ((const sp_rollup_value_t *)pb)->n;
}

static int cmp_person(const void *pa, const void *pb)
{
    const sp_rollup_person_t *a = pa, *b = pb;
    int c = a->campaign == b->campaign ? 0 : strcmp(a->campaign, b->campaign);
    if (c)
        return c;
    if (a->dim != b->dim)
        return a->dim < b->dim ? -1 : 1;
    return sp_text_cmp(a->who, a->head, b->who, b->head);
}

static uint64_t hash_person(const void *p)
{
    const sp_rollup_person_t *v = p;
    return sp_hash_int(v->hash, v->dim);
}

static bool same_person(const void *pa, const void *pb)
{
    return 0 == cmp_person(pa, pb);
}

static void add_person(void *pa, void *pb)
{
    sp_rollup_person_t *a = pa;
    const sp_rollup_person_t *b = pb;
    if (b->first < a->first) {
        a->first = b->first;
        a->first_value = b->first_value;
    }
    if (b->last > a->last)
        a->last = b->last;
}

/* One event's row of dim DIM: VALUE in HOUR, of campaign ID (ID_HASH: its sp_hash_str). */
static sp_rollup_value_t value_of(const char *id, uint64_t id_hash, const char *value, int dim,
                                  int64_t hour, size_t row)
{
    sp_rollup_value_t v = {.campaign = id,
                           .value = value,
                           .head = sp_text_head(value),
                           .dim = dim,
                           .row = (uint32_t)row,
                           .hour = hour,
                           .n = 1};
    v.hash = sp_hash_str_len(id_hash, value, &v.len);
    return v;
}

void sp_rollup_batch(sp_rollup_t *r, const sp_event_row_t *const *rows, size_t n)
{
    sp_rollup_free(r);
    r->counts = sp_scratch_get(n * sizeof(*r->counts));
    r->values = sp_scratch_get(n * SP_ROLLUP_DIMS * sizeof(*r->values));
    r->keys = sp_scratch_get(n * SP_ROLLUP_KEY_MAX);
    /* Each campaign as one text, the first event's: the entries' sorting and merging then find
     * equal campaigns equal pointers, where the events' own texts, cold, were compared. */
    const char **campaigns = sp_scratch_get(n * sizeof(*campaigns));
    uint32_t *campaign_of = sp_scratch_get(n * sizeof(*campaign_of));
    for (size_t i = 0; i < n; i++)
        campaigns[i] = rows[i]->campaign;
    size_t n_campaigns = sp_distinct_texts(campaigns, n, campaign_of, campaigns);
    uint64_t *campaign_hash = sp_scratch_get(n_campaigns * sizeof(*campaign_hash));
    for (size_t k = 0; k < n_campaigns; k++)
        campaign_hash[k] = sp_hash_str(SP_HASH_SEED, campaigns[k]);
    for (size_t i = 0; i < n; i++) {
        const sp_event_row_t *row = rows[i];
        const char *id = campaigns[campaign_of[i]];
        uint64_t id_hash = campaign_hash[campaign_of[i]];
        bool open = SP_EVENT_OPEN == row->kind, click = SP_EVENT_CLICK == row->kind;
        bool counted = sp_tally_counted((int)row->klass);
        /* Every stored event has its quarter's row, as the SQL's grouping makes it, if only of
         * zeros (a print, a machine's click). */
        sp_rollup_count_t *c = &r->counts[r->n_counts++];
        *c = (sp_rollup_count_t){.campaign = id, .quarter = row->ts_ms / SP_ROLLUP_QUARTER_MS};
        if (open)
            c->n[row->klass] = 1;
        else if (click && counted)
            c->n[SP_ROLLUP_CLICKS] = 1;
        if (!counted || !(open || click))
            continue;
        const char *whom = who(row, r->keys + i * SP_ROLLUP_KEY_MAX);
        int64_t hour = row->ts_ms / SP_ROLLUP_HOUR_MS;
        if (click) {
            r->values[r->n_values++] = value_of(id, id_hash, whom, SP_ROLLUP_CLICKER, hour, i);
            continue;
        }
        const char *v[SP_ROLLUP_CLICKER] = {
            [SP_ROLLUP_OPENER] = whom,
            [SP_ROLLUP_CLIENT] = reader(row, row->browser),
            [SP_ROLLUP_OS] = reader(row, row->os),
            [SP_ROLLUP_DEVICE] = reader(row, row->device),
            [SP_ROLLUP_COUNTRY] = reader(row, row->country),
            [SP_ROLLUP_CITY] = reader(row, row->city),
            [SP_ROLLUP_VIA] = row->via,
        };
        for (int d = 0; d < SP_ROLLUP_CLICKER; d++)
            r->values[r->n_values++] = value_of(id, id_hash, v[d], d, hour, i);
    }
    sp_scratch_put(campaigns);
    sp_scratch_put(campaign_of);
    sp_scratch_put(campaign_hash);
    /* Each key once, by a hash of it (most of a batch's entries repeat a key: a client, a
     * country in an hour), then the distinct keys sorted. */
    r->n_counts =
        sp_merge(r->counts, r->n_counts, sizeof(*r->counts), hash_count, same_count, add_count);
    qsort(r->counts, r->n_counts, sizeof(*r->counts), cmp_count);
    r->n_values =
        sp_merge(r->values, r->n_values, sizeof(*r->values), hash_value, same_value, add_value);
    qsort(r->values, r->n_values, sizeof(*r->values), cmp_value);
}

void sp_rollup_derive(sp_rollup_t *r, int64_t folded)
{
    /* From the distinct hour rows: a batch over several hours adds to each day, total and person
     * row once. */
    r->days = sp_scratch_get(r->n_values * sizeof(*r->days));
    r->totals = sp_scratch_get(r->n_values * sizeof(*r->totals));
    r->people = sp_scratch_get(r->n_values * sizeof(*r->people));
    r->n_days = r->n_totals = r->n_people = 0;
    for (size_t i = 0; i < r->n_values; i++) {
        const sp_rollup_value_t *v = &r->values[i];
        if (SP_ROLLUP_OPENER == v->dim || SP_ROLLUP_CLICKER == v->dim) {
            r->people[r->n_people++] =
                (sp_rollup_person_t){v->campaign, v->value, v->head, v->hash, v->len,
                                     v->dim,      v->row,   v->hour, v->hour, i};
            continue;
        }
        if (v->hour >= folded)
            continue;
        r->days[r->n_days] = *v;
        r->days[r->n_days++].hour = v->hour / 24;
        r->totals[r->n_totals] = *v;
        r->totals[r->n_totals++].hour = 0;
    }
    r->n_days = sp_merge(r->days, r->n_days, sizeof(*r->days), hash_value, same_value, add_value);
    qsort(r->days, r->n_days, sizeof(*r->days), cmp_value);
    r->n_totals =
        sp_merge(r->totals, r->n_totals, sizeof(*r->totals), hash_value, same_value, add_value);
    qsort(r->totals, r->n_totals, sizeof(*r->totals), cmp_value);
    r->n_people =
        sp_merge(r->people, r->n_people, sizeof(*r->people), hash_person, same_person, add_person);
    qsort(r->people, r->n_people, sizeof(*r->people), cmp_person);
}

static int cmp_hour(const void *pa, const void *pb)
{
    const sp_rollup_hour_t *a = pa, *b = pb;
    int c = a->campaign == b->campaign ? 0 : strcmp(a->campaign, b->campaign);
    if (c)
        return c;
    if (a->dim != b->dim)
        return a->dim < b->dim ? -1 : 1;
    return a->hour == b->hour ? 0 : (a->hour < b->hour ? -1 : 1);
}

static uint64_t hash_hour(const void *p)
{
    const sp_rollup_hour_t *h = p;
    return sp_hash_int(sp_hash_int(sp_hash_str(SP_HASH_SEED, h->campaign), h->dim), h->hour);
}

static bool same_hour(const void *pa, const void *pb)
{
    return 0 == cmp_hour(pa, pb);
}

static void add_hour(void *pa, void *pb)
{
    sp_rollup_hour_t *a = pa;
    const sp_rollup_hour_t *b = pb;
    a->firsts += b->firsts;
    a->lasts += b->lasts;
}

void sp_rollup_people_hours(sp_rollup_t *r, const bool *found, const int64_t (*old)[2],
                            bool *changed)
{
    /* At most four rows a person: a first and a last hour left, and one each arrived at. */
    sp_scratch_put(r->hours);
    r->hours = sp_scratch_get((4 * r->n_people + 1) * sizeof(*r->hours));
    size_t n = 0;
    for (size_t i = 0; i < r->n_people; i++) {
        const sp_rollup_person_t *p = &r->people[i];
        int64_t first = p->first, last = p->last;
        if (found[i]) {
            first = old[i][0] < first ? old[i][0] : first;
            last = old[i][1] > last ? old[i][1] : last;
        }
        bool first_moved = !found[i] || first != old[i][0];
        bool last_moved = !found[i] || last != old[i][1];
        changed[i] = first_moved || last_moved;
        if (first_moved) {
            r->hours[n++] = (sp_rollup_hour_t){p->campaign, p->dim, first, 1, 0};
            if (found[i])
                r->hours[n++] = (sp_rollup_hour_t){p->campaign, p->dim, old[i][0], -1, 0};
        }
        if (last_moved) {
            r->hours[n++] = (sp_rollup_hour_t){p->campaign, p->dim, last, 0, 1};
            if (found[i])
                r->hours[n++] = (sp_rollup_hour_t){p->campaign, p->dim, old[i][1], 0, -1};
        }
    }
    n = sp_merge(r->hours, n, sizeof(*r->hours), hash_hour, same_hour, add_hour);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (r->hours[i].firsts || r->hours[i].lasts)
            r->hours[kept++] = r->hours[i];
    qsort(r->hours, kept, sizeof(*r->hours), cmp_hour);
    r->n_hours = kept;
}

void sp_rollup_first_hours(sp_rollup_t *r, const bool *found, const int64_t (*old)[2], bool *moved)
{
    bool *drop = sp_scratch_zero(r->n_values + 1, sizeof(*drop));
    int64_t *first =
        sp_scratch_get(r->n_people * sizeof(*first)); /* each person's after the batch */
    for (size_t i = 0; i < r->n_people; i++) {
        const sp_rollup_person_t *p = &r->people[i];
        moved[i] = false;
        /* The batch's rows of a person who had an earlier hour are all after its first. */
        bool earlier = found[i] && old[i][0] < p->first;
        first[i] = earlier ? old[i][0] : p->first;
        if (SP_ROLLUP_OPENER != p->dim || earlier)
            continue;
        drop[p->first_value] = true;
        moved[i] = found[i] && p->first < old[i][0]; /* an open of an earlier hour stored late */
    }
    /* Each row of dim 0 left names its opener's first hour: its person's, found by its key. */
    size_t kept = 0;
    for (size_t i = 0; i < r->n_values; i++) {
        if (drop[i])
            continue;
        sp_rollup_value_t *v = &r->values[kept++];
        *v = r->values[i];
        if (SP_ROLLUP_OPENER != v->dim)
            continue;
        sp_rollup_person_t key = {
            .campaign = v->campaign, .who = v->value, .head = v->head, .dim = v->dim};
        const sp_rollup_person_t *p =
            bsearch(&key, r->people, r->n_people, sizeof(*r->people), cmp_person);
        if (!p)
            abort(); /* every row's person is among the people it made (sp_rollup_derive) */
        v->first = first[p - r->people];
    }
    r->n_values = kept;
    sp_scratch_put(drop);
    sp_scratch_put(first);
}

bool sp_rollup_named(const char *who)
{
    return 0 != strncmp(who, "v:", 2);
}

void sp_rollup_free(sp_rollup_t *r)
{
    sp_scratch_put(r->hours);
    sp_scratch_put(r->counts);
    sp_scratch_put(r->values);
    sp_scratch_put(r->days);
    sp_scratch_put(r->totals);
    sp_scratch_put(r->people);
    sp_scratch_put(r->keys);
    *r = (sp_rollup_t){0};
}

/* The events' columns the rollups read. */
#define SOURCE_COLS                                                                                \
    "campaign, ts, kind, class, recipient, visitor, browser, os, device, country, city, via"

typedef struct {
    char *buf;
    size_t len, at;
} sql_t;

__attribute__((format(printf, 2, 3))) static void put(sql_t *q, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(q->buf + q->at, q->len - q->at, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= q->len - q->at)
        abort(); /* the statements are fixed: a buffer too small is a bug */
    q->at += (size_t)n;
}

/* Per quarter: opens by class, counted clicks; SIGN times each. Of "e", grouped. */
static void counts_select(sql_t *q, int sign)
{
    put(q, "SELECT campaign, ts / %lld AS quarter", SP_ROLLUP_QUARTER_MS);
    static const char *const names[4] = {"human", "proxy", "machine", "self"};
    for (int k = 0; k < 4; k++)
        put(q, ", %d * SUM(CASE WHEN %s AND class = %d THEN 1 ELSE 0 END) AS %s", sign,
            SP_TALLY_OPEN_SQL, k, names[k]);
    put(q,
        ", %d * SUM(CASE WHEN %s THEN 1 ELSE 0 END) AS clicks FROM e GROUP BY campaign, ts / %lld",
        sign, COUNTED_CLICK, SP_ROLLUP_QUARTER_MS);
}

/* Per dim from FIRST to LAST, unit (UNIT_MS: an hour, a day) and value: how many; SIGN times
 * each. Of "e", grouped. */
static void values_select_of(sql_t *q, int sign, bool pg, int first, int last, long long unit_ms)
{
    put(q, "SELECT campaign, dim, hour, value, %d * COUNT(*) AS n FROM (", sign);
    for (int d = first; d <= last; d++)
        put(q, "%sSELECT campaign, %d AS dim, ts / %lld AS hour, (%s)%s AS value FROM e WHERE %s",
            d > first ? " UNION ALL " : "", d, unit_ms, dims[d].value, pg ? " COLLATE \"C\"" : "",
            dims[d].when);
    put(q, ") x GROUP BY campaign, dim, hour, value");
}

/* Per dim, hour and value: how many; SIGN times each. Of "e", grouped. */
static void values_select(sql_t *q, int sign, bool pg)
{
    values_select_of(q, sign, pg, 0, SP_ROLLUP_DIMS - 1, SP_ROLLUP_HOUR_MS);
}

/* values_select without each opener's first hour (rollup.h, "Openers' first hours"): that of its
 * first counted open among "e", which must hold all of its events; each row of dim 0 names it
 * (first_hour). */
static void values_select_later(sql_t *q, int sign)
{
    put(q,
        "SELECT campaign, dim, hour, value, n, CASE WHEN dim = %d THEN first END AS first_hour"
        " FROM (SELECT campaign, dim, hour, value, n, MIN(hour) OVER (PARTITION BY campaign,"
        " dim, value) AS first FROM (",
        SP_ROLLUP_OPENER);
    values_select(q, sign, false);
    put(q, ") g) f WHERE dim <> %d OR hour <> first", SP_ROLLUP_OPENER);
}

void sp_rollup_add_sql(char *counts, char *values, size_t len, const char *where, int sign, bool pg,
                       bool first_hours)
{
    /* The rows are upserted in key order, so that writers on several servers lock them in one
     * order and wait for each other instead of deadlocking. */
    sql_t q = {counts, len, 0};
    put(&q, "WITH e AS MATERIALIZED (SELECT " SOURCE_COLS " FROM events WHERE %s)", where);
    put(&q, " INSERT INTO rollup_counts AS r(campaign, quarter, human, proxy, machine, self,"
            " clicks) SELECT * FROM (");
    counts_select(&q, sign);
    put(&q, ") c WHERE true ORDER BY campaign, quarter ON CONFLICT(campaign, quarter) DO UPDATE"
            " SET human = r.human + excluded.human, proxy = r.proxy + excluded.proxy,"
            " machine = r.machine + excluded.machine, self = r.self + excluded.self,"
            " clicks = r.clicks + excluded.clicks");
    q = (sql_t){values, len, 0};
    put(&q, "WITH e AS MATERIALIZED (SELECT " SOURCE_COLS " FROM events WHERE %s)", where);
    if (first_hours || pg) {
        put(&q, " INSERT INTO rollup_values AS r(campaign, dim, hour, value, n) SELECT * FROM (");
        values_select(&q, sign, pg);
    } else {
        put(&q, " INSERT INTO rollup_values AS r(campaign, dim, hour, value, n, first_hour)"
                " SELECT * FROM (");
        values_select_later(&q, sign);
    }
    put(&q, ") v WHERE true ORDER BY campaign, dim, hour, value"
            " ON CONFLICT(campaign, dim, hour, value) DO UPDATE SET n = r.n + excluded.n");
}

void sp_rollup_moved_first_sql(char *add, char *later, size_t len)
{
    char ids[1024];
    sp_query_ids_in_time(ids, sizeof(ids), "?1", "?2 * " SP_ROLLUP_HOUR_SQL,
                         "(?2 + 1) * " SP_ROLLUP_HOUR_SQL);
    sql_t q = {add, len, 0};
    /* At least 1: the person's row said it opened in that hour, even if retention has since
     * deleted those events. */
    put(&q,
        "INSERT INTO rollup_values AS r(campaign, dim, hour, value, n, first_hour) SELECT ?1, %d,"
        " ?2, ?3, MAX(COUNT(*), 1), ?5 FROM events WHERE campaign = ?1 AND %s"
        " AND ts >= ?2 * %lld AND ts < (?2 + 1) * %lld AND id < ?4 AND %s AND (%s) = ?3"
        " ON CONFLICT(campaign, dim, hour, value) DO UPDATE SET n = r.n + excluded.n,"
        " first_hour = excluded.first_hour",
        SP_ROLLUP_OPENER, ids, SP_ROLLUP_HOUR_MS, SP_ROLLUP_HOUR_MS, dims[SP_ROLLUP_OPENER].when,
        dims[SP_ROLLUP_OPENER].value);
    q = (sql_t){later, len, 0};
    put(&q,
        "UPDATE rollup_values SET first_hour = ?2 WHERE campaign = ?1 AND dim = %d AND hour > ?2"
        " AND value = ?3",
        SP_ROLLUP_OPENER);
}

void sp_rollup_days_sql(char *days, char *totals, size_t len, const char *where, int sign, bool pg)
{
    sql_t q = {days, len, 0};
    put(&q, "WITH e AS MATERIALIZED (SELECT " SOURCE_COLS " FROM events WHERE %s)", where);
    put(&q, " INSERT INTO rollup_days AS r(campaign, dim, day, value, n) SELECT * FROM (");
    values_select_of(&q, sign, pg, SP_ROLLUP_CLIENT, SP_ROLLUP_VIA, SP_ROLLUP_DAY_MS);
    put(&q, ") v WHERE true ORDER BY campaign, dim, hour, value"
            " ON CONFLICT(campaign, dim, day, value) DO UPDATE SET n = r.n + excluded.n");
    q = (sql_t){totals, len, 0};
    put(&q, "WITH e AS MATERIALIZED (SELECT " SOURCE_COLS " FROM events WHERE %s)", where);
    put(&q, " INSERT INTO rollup_totals AS r(campaign, dim, value, n) SELECT * FROM (SELECT"
            " campaign, dim, value, SUM(n) AS n FROM (");
    values_select_of(&q, sign, pg, SP_ROLLUP_CLIENT, SP_ROLLUP_VIA, SP_ROLLUP_DAY_MS);
    put(&q, ") x GROUP BY campaign, dim, value) v WHERE true ORDER BY campaign, dim, value"
            " ON CONFLICT(campaign, dim, value) DO UPDATE SET n = r.n + excluded.n");
}

bool sp_rollup_outside(int64_t from, int64_t to, int64_t day_from, int64_t day_to,
                       int64_t first_quarter, int64_t last_quarter, int64_t params[10])
{
    const int64_t H = SP_ROLLUP_HOUR_MS;
    if (day_from >= day_to || first_quarter > last_quarter)
        return false;
    /* The hours that hold the range's ends. */
    int64_t hb = from / H, hc = to / H + (to % H ? 1 : 0);
    int64_t d0 = hb / 24, d1 = hc / 24 + (hc % 24 ? 1 : 0);
    /* The days of the campaign's life read either way: inside, or before and after. */
    int64_t first_day = first_quarter / 96, last_day = last_quarter / 96;
    int64_t inside = day_to - day_from;
    int64_t before = d0 > first_day ? d0 - first_day : 0;
    int64_t after = last_day + 1 > d1 ? last_day + 1 - d1 : 0;
    if (before + after + 2 >= inside)
        return false;
    int64_t p[10] = {d0, d1, d0 * 24, hb, hc, d1 * 24, hb * H, from, to, hc * H};
    memcpy(params, p, sizeof(p));
    return true;
}

bool sp_rollup_people_exact(int64_t hour_from, int64_t hour_to, int64_t first, int64_t last)
{
    return hour_from >= hour_to || first >= hour_from || last < hour_to;
}

/* Dims 1-6 as a list: an IN list lets each be read by its hours from the index, where a range
 * of dims would read every hour of them. */
#define BREAKDOWN_DIMS "1, 2, 3, 4, 5, 6"
_Static_assert(1 == SP_ROLLUP_CLIENT && 6 == SP_ROLLUP_VIA, "BREAKDOWN_DIMS names them");

/* The CTE "e": the campaign's events of [?A, ?B) and [?C, ?D), by two range scans, not one
 * with OR, which may read the whole campaign: of events(campaign, ts) on PostgreSQL, of the
 * IDs of those times' quarter hours on SQLite (sp_query_ids_in_time). */
static void edges_cte(char *edges, size_t len, bool pg, int a, int b, int c, int d)
{
    char m = pg ? '$' : '?';
    const int ends[2][2] = {{a, b}, {c, d}};
    sql_t q = {edges, len, 0};
    put(&q, "WITH e AS MATERIALIZED (");
    for (int e = 0; e < 2; e++) {
        put(&q, "%sSELECT " SOURCE_COLS " FROM events WHERE campaign = %c1", e ? " UNION ALL " : "",
            m);
        if (!pg) {
            char ids[1024], from[16], to[16];
            snprintf(from, sizeof(from), "?%d", ends[e][0]);
            snprintf(to, sizeof(to), "?%d", ends[e][1]);
            sp_query_ids_in_time(ids, sizeof(ids), "?1", from, to);
            put(&q, " AND %s", ids);
        }
        put(&q, " AND ts >= %c%d AND ts < %c%d", m, ends[e][0], m, ends[e][1]);
    }
    put(&q, ") ");
}

void sp_rollup_report_sql(char *counts, char *values, char *distinct, char *people, char *outside,
                          size_t len, bool pg)
{
    char m = pg ? '$' : '?';
    char edges[2048];
    edges_cte(edges, sizeof(edges), pg, 4, 5, 6, 7);

    sql_t q = {counts, len, 0};
    put(&q,
        "%sSELECT quarter, human, proxy, machine, self, clicks FROM rollup_counts"
        " WHERE campaign = %c1 AND quarter >= CAST(%c2 AS BIGINT) * 4"
        " AND quarter < CAST(%c3 AS BIGINT) * 4"
        " UNION ALL SELECT quarter, human, proxy, machine, self, clicks FROM (",
        edges, m, m, m);
    counts_select(&q, 1);
    put(&q, ") c");

    /* Whole days from rollup_days, the hours around them from rollup_values, the rest from
     * the events. */
    q = (sql_t){values, len, 0};
    put(&q,
        "%sSELECT dim, value, SUM(n) FROM (SELECT dim, value, n FROM rollup_days"
        " WHERE campaign = %c1 AND dim IN (%s) AND day >= %c10 AND day < %c11"
        " UNION ALL SELECT dim, value, n FROM rollup_values"
        " WHERE campaign = %c1 AND dim IN (%s) AND hour >= " SP_ROLLUP_FOLDED_SQL
        " AND hour >= CAST(%c10 AS BIGINT) * 24 AND hour < CAST(%c11 AS BIGINT) * 24"
        " UNION ALL SELECT dim, value, n FROM rollup_values"
        " WHERE campaign = %c1 AND dim IN (%s) AND hour >= %c2 AND hour < %c8"
        " UNION ALL SELECT dim, value, n FROM rollup_values"
        " WHERE campaign = %c1 AND dim IN (%s) AND hour >= %c9 AND hour < %c3"
        " UNION ALL SELECT dim, value, n FROM (",
        edges, m, BREAKDOWN_DIMS, m, m, m, BREAKDOWN_DIMS, m, m, m, BREAKDOWN_DIMS, m, m, m,
        BREAKDOWN_DIMS, m, m);
    values_select(&q, 1, pg);
    put(&q, ") v WHERE dim IN (%s)) x GROUP BY dim, value HAVING SUM(n) > 0", BREAKDOWN_DIMS);

    /* SQLite's rows of dim 0 leave out each opener's first hour (rollup.h): the openers whose
     * first hour is in the hours are counted from rollup_people_hours, and those of the rows
     * (which name it) and of the edges (looked up) whose first hour is not. */
    char rows_first[256] = "", edges_first[1024] = "", firsts[1536] = "";
    if (!pg) {
        snprintf(rows_first, sizeof(rows_first),
                 " AND (dim <> 0 OR COALESCE(first_hour, -1) NOT BETWEEN ?2 AND ?3 - 1)");
        snprintf(edges_first, sizeof(edges_first),
                 " AND (dim <> 0 OR COALESCE(%s, -1) NOT BETWEEN ?2 AND ?3 - 1)",
                 SP_ROLLUP_OPENER_FIRST_SQL("?1", "v.value"));
        snprintf(firsts, sizeof(firsts),
                 " UNION ALL SELECT 0, (SELECT COALESCE(SUM(firsts), 0) FROM rollup_people_hours"
                 " WHERE campaign = ?1 AND dim = 0 AND hour >= ?2 AND hour < ?3),"
                 " (SELECT COUNT(*) FROM sent_to t WHERE t.campaign = ?1"
                 " AND %s BETWEEN ?2 AND ?3 - 1) WHERE ?8 = 0",
                 SP_ROLLUP_OPENER_FIRST_SQL("?1", "t.recipient"));
    }
    q = (sql_t){distinct, len, 0};
    put(&q,
        "%sSELECT dim, SUM(n), SUM(listed) FROM (SELECT dim, COUNT(*) AS n, SUM(CASE WHEN value"
        " IN (SELECT recipient FROM sent_to WHERE campaign = %c1) THEN 1 ELSE 0 END) AS listed"
        " FROM (SELECT dim, value FROM rollup_values"
        " WHERE campaign = %c1 AND dim IN (%c8, %d) AND hour >= %c2 AND hour < %c3 AND n > 0%s"
        " UNION SELECT dim, value FROM (",
        edges, m, m, m, SP_ROLLUP_CLICKER, m, m, rows_first);
    values_select(&q, 1, pg);
    put(&q, ") v WHERE dim IN (%c8, %d)%s) x GROUP BY dim%s) y GROUP BY dim", m, SP_ROLLUP_CLICKER,
        edges_first, firsts);

    /* Those with a row in the hours (first_hour < to, last_hour >= from: exact when no one's
     * rows begin before the hours or end after them, sp_rollup_people_exact), counted from
     * rollup_people_hours, the number of people whose first or last hour each hour is; and
     * those of the edges' events who are not among them. Openers (dim 0), whose number the
     * campaign's row keeps (unique_views), are counted from the nearer end: a range that ends
     * near the campaign's last hour adds up the hours after it and takes them from the
     * number, not every hour before it.
     * Inexact: n NULL. The list's people are read from sent_to (CROSS JOIN: SQLite keeps that
     * order), usually none, rather than each person looked up in it. */
    char inside_p[128];
    snprintf(inside_p, sizeof(inside_p), "p.first_hour < %c3 AND p.last_hour >= %c2", m, m);
    /* SQLite's named openers, in their recipients rows ("Named openers" in rollup.h): the same
     * two lookups there. */
    char named_listed[512] = "", named_not[512] = "";
    if (!pg) {
        const char *row =
            SP_ROLLUP_NAMED_OPENER_SQL("r.") " AND r.first_at / " SP_ROLLUP_HOUR_SQL
                                             " < ?3 AND r.last_at / " SP_ROLLUP_HOUR_SQL " >= ?2";
        snprintf(named_listed, sizeof(named_listed),
                 " + (SELECT COUNT(*) FROM sent_to t CROSS JOIN recipients r WHERE k.dim = 0"
                 " AND t.campaign = ?1 AND r.campaign = ?1 AND r.recipient = t.recipient AND %s)",
                 row);
        snprintf(named_not, sizeof(named_not),
                 " AND NOT EXISTS (SELECT 1 FROM recipients r WHERE o.dim = 0"
                 " AND r.campaign = ?1 AND r.recipient = o.value AND %s)",
                 row);
    }
    q = (sql_t){people, len, 0};
    put(&q,
        "%sSELECT x.dim, x.n + COALESCE(b.n, 0), x.listed + COALESCE(b.listed, 0), x.lo, x.hi"
        " FROM (SELECT dim, lo, hi,"
        " CASE WHEN CAST(%c2 AS BIGINT) >= CAST(%c3 AS BIGINT) THEN 0"
        " WHEN lo >= %c2 AND k.dim = 0 AND %c3 - lo > hi - %c3 THEN (SELECT unique_views"
        " FROM campaigns WHERE id = %c1) - (SELECT COALESCE(SUM(firsts), 0)"
        " FROM rollup_people_hours WHERE campaign = %c1 AND dim = 0 AND hour >= %c3)"
        " WHEN lo >= %c2 THEN (SELECT COALESCE(SUM(firsts), 0) FROM rollup_people_hours"
        " WHERE campaign = %c1 AND dim = k.dim AND hour < %c3)"
        " WHEN hi < %c3 AND k.dim = 0 AND hi - %c2 > %c2 - lo THEN (SELECT unique_views"
        " FROM campaigns WHERE id = %c1) - (SELECT COALESCE(SUM(lasts), 0)"
        " FROM rollup_people_hours WHERE campaign = %c1 AND dim = 0 AND hour < %c2)"
        " WHEN hi < %c3 THEN (SELECT COALESCE(SUM(lasts), 0) FROM rollup_people_hours"
        " WHERE campaign = %c1 AND dim = k.dim AND hour >= %c2) END AS n,"
        " CASE WHEN CAST(%c2 AS BIGINT) < CAST(%c3 AS BIGINT) AND (lo >= %c2 OR hi < %c3)"
        " THEN (SELECT COUNT(*) FROM sent_to t"
        " CROSS JOIN rollup_people p WHERE t.campaign = %c1 AND p.campaign = %c1"
        " AND p.dim = k.dim AND p.who = t.recipient AND %s)%s ELSE 0 END AS listed"
        " FROM (SELECT dim, (SELECT MIN(hour) FROM rollup_people_hours WHERE campaign = %c1"
        " AND dim = d.dim AND firsts > 0) AS lo, (SELECT MAX(hour) FROM rollup_people_hours"
        " WHERE campaign = %c1 AND dim = d.dim AND lasts > 0) AS hi"
        " FROM (SELECT CAST(%c8 AS INTEGER) AS dim"
        " UNION SELECT %d) d) k WHERE lo IS NOT NULL) x"
        " LEFT JOIN (SELECT dim, COUNT(*) AS n, SUM(CASE WHEN value IN (SELECT recipient"
        " FROM sent_to WHERE campaign = %c1) THEN 1 ELSE 0 END) AS listed"
        " FROM (SELECT DISTINCT dim, value FROM (",
        edges, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m, m,
        inside_p, named_listed, m, m, m, SP_ROLLUP_CLICKER, m);
    values_select(&q, 1, pg);
    put(&q,
        ") v WHERE dim IN (%c8, %d)) o WHERE NOT EXISTS (SELECT 1 FROM rollup_people p"
        " WHERE p.campaign = %c1 AND p.dim = o.dim AND p.who = o.value AND %s)%s"
        " GROUP BY dim) b ON b.dim = x.dim",
        m, SP_ROLLUP_CLICKER, m, inside_p, named_not);

    /* The campaign's totals less what lies before and after the range, not added up: the
     * totals are a row per value already, and the rest few. */
    edges_cte(edges, sizeof(edges), pg, 8, 9, 10, 11);
    q = (sql_t){outside, len, 0};
    put(&q,
        "%sSELECT dim, value, n FROM rollup_totals"
        " WHERE campaign = %c1 AND dim IN (%s)"
        " UNION ALL SELECT dim, value, n FROM rollup_values"
        " WHERE campaign = %c1 AND dim IN (%s) AND hour >= " SP_ROLLUP_FOLDED_SQL
        " AND hour >= %c4 AND hour < %c7"
        " UNION ALL SELECT dim, value, -n FROM rollup_days"
        " WHERE campaign = %c1 AND dim IN (%s) AND day < %c2"
        " UNION ALL SELECT dim, value, -n FROM rollup_days"
        " WHERE campaign = %c1 AND dim IN (%s) AND day >= %c3"
        " UNION ALL SELECT dim, value, -n FROM rollup_values"
        " WHERE campaign = %c1 AND dim IN (%s) AND hour >= %c4 AND hour < %c5"
        " UNION ALL SELECT dim, value, -n FROM rollup_values"
        " WHERE campaign = %c1 AND dim IN (%s) AND hour >= %c6 AND hour < %c7"
        " UNION ALL SELECT dim, value, -n FROM (",
        edges, m, BREAKDOWN_DIMS, m, BREAKDOWN_DIMS, m, m, m, BREAKDOWN_DIMS, m, m, BREAKDOWN_DIMS,
        m, m, BREAKDOWN_DIMS, m, m, m, BREAKDOWN_DIMS, m, m);
    values_select(&q, 1, pg);
    put(&q, ") v WHERE dim IN (%s)", BREAKDOWN_DIMS);
}
