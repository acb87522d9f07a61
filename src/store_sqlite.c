/* store_sqlite: the embedded backend, one SQLite file in WAL mode in the data folder. */
/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classify.h"

/* Each entry moves the schema from version i to i + 1; never edit a shipped one. */
static const char *const migrations[] = {
    /* 1: campaigns with their counters, recipients, clients, events, auth. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE campaigns("
    " id TEXT PRIMARY KEY, created_at INTEGER NOT NULL,"
    " total_views INTEGER NOT NULL DEFAULT 0, unique_views INTEGER NOT NULL DEFAULT 0,"
    " human INTEGER NOT NULL DEFAULT 0, proxy INTEGER NOT NULL DEFAULT 0,"
    " machine INTEGER NOT NULL DEFAULT 0, self INTEGER NOT NULL DEFAULT 0,"
    " clicks INTEGER NOT NULL DEFAULT 0, last_view_at INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX campaigns_last_view ON campaigns(last_view_at);"
    "CREATE TABLE recipients("
    " campaign TEXT NOT NULL, recipient TEXT NOT NULL,"
    " human INTEGER NOT NULL DEFAULT 0, proxy INTEGER NOT NULL DEFAULT 0,"
    " machine INTEGER NOT NULL DEFAULT 0, self INTEGER NOT NULL DEFAULT 0,"
    " clicks INTEGER NOT NULL DEFAULT 0, first_at INTEGER NOT NULL DEFAULT 0,"
    " last_at INTEGER NOT NULL DEFAULT 0,"
    " PRIMARY KEY(campaign, recipient)) WITHOUT ROWID;"
    "CREATE INDEX recipients_recipient ON recipients(recipient);"
    "CREATE TABLE clients(campaign TEXT NOT NULL, client TEXT NOT NULL,"
    " PRIMARY KEY(campaign, client)) WITHOUT ROWID;"
    "CREATE TABLE events("
    " id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, campaign TEXT NOT NULL,"
    " kind INTEGER NOT NULL, recipient TEXT NOT NULL, ip TEXT NOT NULL,"
    " user_agent TEXT, referer TEXT, cookies TEXT NOT NULL, headers TEXT NOT NULL,"
    " visitor TEXT NOT NULL, browser TEXT NOT NULL, browser_version TEXT NOT NULL,"
    " os TEXT NOT NULL, os_version TEXT NOT NULL, device TEXT NOT NULL,"
    " device_brand TEXT NOT NULL, device_model TEXT NOT NULL, arch TEXT NOT NULL,"
    " country TEXT NOT NULL, region TEXT NOT NULL, city TEXT NOT NULL,"
    " latitude REAL, longitude REAL, geo_label TEXT NOT NULL,"
    " class INTEGER NOT NULL, rule TEXT NOT NULL, via TEXT NOT NULL, target TEXT NOT NULL);"
    "CREATE INDEX events_campaign ON events(campaign, id);"
    "CREATE INDEX events_recipient ON events(recipient) WHERE recipient <> '';"
    "CREATE INDEX events_ts ON events(ts);"
    "CREATE TABLE users(name TEXT PRIMARY KEY, pwhash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE api_tokens(hash TEXT PRIMARY KEY, name TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE sessions(hash TEXT PRIMARY KEY, user TEXT NOT NULL, csrf TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL);",
    /* 2: uploaded images that track every load. */
    "CREATE TABLE images(id TEXT PRIMARY KEY, campaign TEXT NOT NULL, mime TEXT NOT NULL,"
    " data BLOB NOT NULL, created_at INTEGER NOT NULL);",
    /* 3: no index of events by recipient. Each insert touched it at a random place (one
     * page per recipient per batch, each written to the WAL whole): dropping it took
     * indexing from 51k to 91k events/s. forget finds a recipient's events through the
     * campaigns they are in instead. */
    "DROP INDEX events_recipient;",
    /* 4: opens of campaigns that do not exist, kept apart in their journal form (bounded:
     * see sp_store_unknown_t) until the campaign is created and adopts them. AUTOINCREMENT:
     * an adopted open names its row, which must never be handed out again. */
    "CREATE TABLE unknown_campaigns(id TEXT PRIMARY KEY, opens INTEGER NOT NULL,"
    " first_at INTEGER NOT NULL, last_at INTEGER NOT NULL);"
    "CREATE TABLE unknown_events(id INTEGER PRIMARY KEY AUTOINCREMENT, campaign TEXT NOT NULL,"
    " ts INTEGER NOT NULL, recipient TEXT NOT NULL, record BLOB NOT NULL);"
    "CREATE INDEX unknown_events_campaign ON unknown_events(campaign, id);"
    "CREATE INDEX unknown_events_ts ON unknown_events(ts);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum {
    Q_CAMPAIGN_EXISTS,
    Q_EVENT_INSERT,
    Q_RECIPIENT_UPSERT,
    Q_CLIENT_INSERT,
    Q_CAMPAIGN_COUNT,
    Q_MARK,
    Q_CAMPAIGN_AUTO,
    Q_UNKNOWN_EXISTS,
    Q_UNKNOWN_COUNT,
    Q_UNKNOWN_KEEP,
    Q_UNKNOWN_UPSERT,
    Q_UNKNOWN_TRIM,
    Q_ADOPT_TAKE,
    Q_ADOPT_DONE,
    Q_COUNT
};

static const char *const batch_sql[Q_COUNT] = {
    [Q_CAMPAIGN_EXISTS] = "SELECT 1 FROM campaigns WHERE id = ?1",
    [Q_EVENT_INSERT] =
        "INSERT INTO events(ts, campaign, kind, recipient, ip, user_agent, referer, cookies,"
        " headers, visitor, browser, browser_version, os, os_version, device, device_brand,"
        " device_model, arch, country, region, city, latitude, longitude, geo_label, class,"
        " rule, via, target) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13,"
        " ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)",
    [Q_RECIPIENT_UPSERT] =
        "INSERT INTO recipients(campaign, recipient, human, proxy, machine, self, clicks,"
        " first_at, last_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)"
        " ON CONFLICT(campaign, recipient) DO UPDATE SET human = human + excluded.human,"
        " proxy = proxy + excluded.proxy, machine = machine + excluded.machine,"
        " self = self + excluded.self, clicks = clicks + excluded.clicks,"
        " first_at = CASE WHEN first_at = 0 THEN excluded.first_at"
        " WHEN excluded.first_at = 0 THEN first_at ELSE MIN(first_at, excluded.first_at) END,"
        " last_at = MAX(last_at, excluded.last_at)"
        " RETURNING human + proxy",
    [Q_CLIENT_INSERT] = "INSERT INTO clients(campaign, client) VALUES(?1, ?2)"
                        " ON CONFLICT DO NOTHING",
    [Q_CAMPAIGN_COUNT] =
        "UPDATE campaigns SET total_views = total_views + ?2,"
        " unique_views = unique_views + ?3, human = human + ?4, proxy = proxy + ?5,"
        " machine = machine + ?6, self = self + ?7, clicks = clicks + ?8,"
        " last_view_at = MAX(last_view_at, ?9) WHERE id = ?1",
    [Q_MARK] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
               " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [Q_CAMPAIGN_AUTO] = "INSERT INTO campaigns(id, created_at) VALUES(?1, ?2)"
                        " ON CONFLICT DO NOTHING",
    [Q_UNKNOWN_EXISTS] = "SELECT 1 FROM unknown_campaigns WHERE id = ?1",
    [Q_UNKNOWN_COUNT] = "SELECT COUNT(*) FROM unknown_campaigns",
    [Q_UNKNOWN_KEEP] = "INSERT INTO unknown_events(campaign, ts, recipient, record)"
                       " VALUES(?1, ?2, ?3, ?4)",
    [Q_UNKNOWN_UPSERT] =
        "INSERT INTO unknown_campaigns(id, opens, first_at, last_at) VALUES(?1, ?2, ?3, ?4)"
        " ON CONFLICT(id) DO UPDATE SET opens = opens + excluded.opens,"
        " first_at = MIN(first_at, excluded.first_at), last_at = MAX(last_at, excluded.last_at)",
    /* The newest ?2 stay. */
    [Q_UNKNOWN_TRIM] = "DELETE FROM unknown_events WHERE id IN (SELECT id FROM unknown_events"
                       " WHERE campaign = ?1 ORDER BY id DESC LIMIT -1 OFFSET ?2)",
    [Q_ADOPT_TAKE] = "DELETE FROM unknown_events WHERE id = ?1 AND campaign = ?2",
    /* Once the last of its kept opens is adopted. */
    [Q_ADOPT_DONE] = "DELETE FROM unknown_campaigns WHERE id = ?1"
                     " AND NOT EXISTS (SELECT 1 FROM unknown_events WHERE campaign = ?1)",
};

/* One campaign's counter changes within a batch, written with one UPDATE at its end. */
typedef struct {
    const char *id; /* borrowed from the batch's first event of this campaign */
    bool exists;
    int64_t views, unique, by_class[SP_STORE_CLASSES], clicks, last_view_at;
    /* A campaign that does not exist: its opens kept apart, or refused. */
    enum { UNKNOWN_UNDECIDED, UNKNOWN_KEEP, UNKNOWN_REFUSE } unknown;
    int64_t unknown_opens, unknown_first, unknown_last;
    sp_event_t *unknown_newest; /* told how many kept opens made way */
    bool adopted;               /* some of its kept opens were adopted in this batch */
} campaign_delta_t;

typedef struct {
    sp_store_t base;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
    campaign_delta_t *deltas; /* the campaigns of the batch being written */
    size_t n_deltas, cap_deltas;
    int64_t n_unknown;     /* unknown campaigns in the store during a batch; -1: not looked up */
    unsigned char *record; /* SP_EVENT_ENCODED_MAX bytes for kept opens, allocated on first use */
} sqlite_store_t;

static int fail(sqlite_store_t *s, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
    return -1;
}

static int exec(sqlite_store_t *s, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (SQLITE_OK == sqlite3_exec(s->db, sql, NULL, NULL, &msg))
        return 0;
    snprintf(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return -1;
}

static int prepare(sqlite_store_t *s, sqlite3_stmt **st, const char *sql, char *err, size_t errlen)
{
    if (SQLITE_OK != sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL))
        return fail(s, err, errlen, "prepare");
    return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* ---- writing ---------------------------------------------------------------- */

/* The batch's entry for EV's campaign. The campaign is looked up on its first event only:
 * a batch mostly holds one campaign, so this is one SELECT per batch, not one per open.
 * NULL with ERR set when the lookup fails. */
static campaign_delta_t *campaign_delta(sqlite_store_t *s, sp_event_t *ev, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_deltas; i++)
        if (0 == strcmp(s->deltas[i].id, ev->campaign))
            return &s->deltas[i];
    sqlite3_stmt *st = s->q[Q_CAMPAIGN_EXISTS];
    sqlite3_reset(st);
    bind_text(st, 1, ev->campaign);
    int rc = sqlite3_step(st);
    /* Left on its row, the lookup would hold a read transaction open past COMMIT: once another
     * connection writes, every later BEGIN IMMEDIATE fails at once with SQLITE_BUSY. */
    sqlite3_reset(st);
    if (SQLITE_ROW != rc && SQLITE_DONE != rc) {
        fail(s, err, errlen, "campaign lookup");
        return NULL;
    }
    if (s->n_deltas == s->cap_deltas) {
        s->cap_deltas = s->cap_deltas ? 2 * s->cap_deltas : 8;
        s->deltas = realloc(s->deltas, s->cap_deltas * sizeof(*s->deltas));
        if (!s->deltas)
            abort();
    }
    bool exists = SQLITE_ROW == rc;
    if (!exists && s->base.unknown.auto_create) {
        st = s->q[Q_CAMPAIGN_AUTO];
        sqlite3_reset(st);
        bind_text(st, 1, ev->campaign);
        sqlite3_bind_int64(st, 2, ev->ts_ms);
        if (SQLITE_DONE != sqlite3_step(st)) {
            fail(s, err, errlen, "create campaign");
            return NULL;
        }
        exists = ev->campaign_new = true;
    }
    campaign_delta_t *d = &s->deltas[s->n_deltas++];
    *d = (campaign_delta_t){.id = ev->campaign, .exists = exists};
    return d;
}

/* Keeps EV (of a campaign that does not exist) apart, unless its ID would be one unknown
 * campaign too many. */
static int keep_unknown(sqlite_store_t *s, campaign_delta_t *d, sp_event_t *ev, char *err,
                        size_t errlen)
{
    const sp_store_unknown_t *lim = &s->base.unknown;
    sqlite3_stmt *st;
    if (UNKNOWN_UNDECIDED == d->unknown) {
        st = s->q[Q_UNKNOWN_EXISTS];
        sqlite3_reset(st);
        bind_text(st, 1, ev->campaign);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (SQLITE_ROW != rc && SQLITE_DONE != rc)
            return fail(s, err, errlen, "unknown campaign lookup");
        if (SQLITE_ROW == rc) {
            d->unknown = UNKNOWN_KEEP;
        } else {
            if (s->n_unknown < 0) {
                st = s->q[Q_UNKNOWN_COUNT];
                sqlite3_reset(st);
                if (SQLITE_ROW != sqlite3_step(st))
                    return fail(s, err, errlen, "count unknown campaigns");
                s->n_unknown = sqlite3_column_int64(st, 0);
                sqlite3_reset(st);
            }
            d->unknown = s->n_unknown < lim->max_campaigns ? UNKNOWN_KEEP : UNKNOWN_REFUSE;
            if (UNKNOWN_KEEP == d->unknown) {
                s->n_unknown++;
                ev->campaign_new = true;
            }
        }
    }
    if (UNKNOWN_REFUSE == d->unknown) {
        ev->outcome = SP_OUTCOME_UNKNOWN_REFUSED;
        return 0;
    }
    if (lim->max_opens > 0) {
        if (!s->record && !(s->record = malloc(SP_EVENT_ENCODED_MAX)))
            abort();
        size_t len = sp_event_encode(ev, s->record);
        st = s->q[Q_UNKNOWN_KEEP];
        sqlite3_reset(st);
        bind_text(st, 1, ev->campaign);
        sqlite3_bind_int64(st, 2, ev->ts_ms);
        bind_text(st, 3, ev->recipient);
        sqlite3_bind_blob64(st, 4, s->record, len, SQLITE_STATIC);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "keep open of unknown campaign");
    }
    if (!d->unknown_opens || ev->ts_ms < d->unknown_first)
        d->unknown_first = ev->ts_ms;
    if (!d->unknown_opens || ev->ts_ms > d->unknown_last)
        d->unknown_last = ev->ts_ms;
    d->unknown_opens++;
    d->unknown_newest = ev;
    ev->outcome = SP_OUTCOME_UNKNOWN_CAMPAIGN;
    return 0;
}

static int write_one(sqlite_store_t *s, sp_event_t *ev, char *err, size_t errlen)
{
    int rc;
    sqlite3_stmt *st;
    if (ev->adopt_row > 0) {
        st = s->q[Q_ADOPT_TAKE];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ev->adopt_row);
        bind_text(st, 2, ev->campaign);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "adopt");
        if (0 == sqlite3_changes(s->db)) {
            ev->outcome = SP_OUTCOME_ADOPTED_ALREADY;
            return 0;
        }
    }
    campaign_delta_t *d = campaign_delta(s, ev, err, errlen);
    if (!d)
        return -1;
    d->adopted = d->adopted || ev->adopt_row > 0;
    if (!d->exists)
        return keep_unknown(s, d, ev, err, errlen);

    char *headers = sp_event_headers_json(ev), *cookies = sp_event_cookies_json(ev);
    st = s->q[Q_EVENT_INSERT];
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, ev->ts_ms);
    bind_text(st, 2, ev->campaign);
    sqlite3_bind_int(st, 3, ev->kind);
    bind_text(st, 4, ev->recipient);
    bind_text(st, 5, ev->ip);
    if (ev->user_agent)
        bind_text(st, 6, ev->user_agent);
    else
        sqlite3_bind_null(st, 6);
    if (ev->referer)
        bind_text(st, 7, ev->referer);
    else
        sqlite3_bind_null(st, 7);
    bind_text(st, 8, cookies);
    bind_text(st, 9, headers);
    bind_text(st, 10, ev->visitor);
    bind_text(st, 11, ev->browser);
    bind_text(st, 12, ev->browser_version);
    bind_text(st, 13, ev->os);
    bind_text(st, 14, ev->os_version);
    bind_text(st, 15, ev->device);
    bind_text(st, 16, ev->device_brand);
    bind_text(st, 17, ev->device_model);
    bind_text(st, 18, ev->arch);
    bind_text(st, 19, ev->country);
    bind_text(st, 20, ev->region);
    bind_text(st, 21, ev->city);
    if (ev->has_coords) {
        sqlite3_bind_double(st, 22, ev->latitude);
        sqlite3_bind_double(st, 23, ev->longitude);
    } else {
        sqlite3_bind_null(st, 22);
        sqlite3_bind_null(st, 23);
    }
    bind_text(st, 24, ev->geo_label);
    sqlite3_bind_int(st, 25, ev->klass);
    bind_text(st, 26, ev->rule);
    bind_text(st, 27, ev->via);
    bind_text(st, 28, ev->target);
    rc = sqlite3_step(st);
    free(headers);
    free(cookies);
    if (SQLITE_DONE != rc)
        return fail(s, err, errlen, "insert event");
    ev->id = sqlite3_last_insert_rowid(s->db);

    bool open = SP_EVENT_OPEN == ev->kind;
    bool counted = SP_CLASS_HUMAN == ev->klass || SP_CLASS_PROXY == ev->klass;
    int cls[SP_STORE_CLASSES] = {0};
    if (open && ev->klass >= 0 && ev->klass < SP_STORE_CLASSES)
        cls[ev->klass] = 1;
    int click = !open && counted;
    int new_unique = 0;

    if (ev->recipient[0]) {
        st = s->q[Q_RECIPIENT_UPSERT];
        sqlite3_reset(st);
        bind_text(st, 1, ev->campaign);
        bind_text(st, 2, ev->recipient);
        for (int i = 0; i < SP_STORE_CLASSES; i++)
            sqlite3_bind_int(st, 3 + i, cls[i]);
        sqlite3_bind_int(st, 7, click);
        sqlite3_bind_int64(st, 8, open && counted ? ev->ts_ms : 0);
        if (SQLITE_ROW != sqlite3_step(st))
            return fail(s, err, errlen, "count recipient");
        new_unique = open && counted && 1 == sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
    } else if (open && counted) {
        char client[80];
        sp_store_client_key(ev, client, sizeof(client));
        st = s->q[Q_CLIENT_INSERT];
        sqlite3_reset(st);
        bind_text(st, 1, ev->campaign);
        bind_text(st, 2, client);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "count client");
        new_unique = 1 == sqlite3_changes(s->db);
    }

    ev->first_view = new_unique;
    d->views += open && counted;
    d->unique += new_unique;
    for (int i = 0; i < SP_STORE_CLASSES; i++)
        d->by_class[i] += cls[i];
    d->clicks += click;
    if (counted && ev->ts_ms > d->last_view_at)
        d->last_view_at = ev->ts_ms;
    ev->outcome = SP_OUTCOME_STORED;
    return 0;
}

/* Adds the batch's counts to each campaign's row: one UPDATE per campaign and batch, which
 * also moves the row's campaigns_last_view index entry once instead of once per open. */
static int write_campaign_counts(sqlite_store_t *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_deltas; i++) {
        const campaign_delta_t *d = &s->deltas[i];
        if (!d->exists)
            continue;
        if (d->adopted) {
            sqlite3_stmt *st = s->q[Q_ADOPT_DONE];
            sqlite3_reset(st);
            bind_text(st, 1, d->id);
            if (SQLITE_DONE != sqlite3_step(st))
                return fail(s, err, errlen, "adopt");
        }
        sqlite3_stmt *st = s->q[Q_CAMPAIGN_COUNT];
        sqlite3_reset(st);
        bind_text(st, 1, d->id);
        sqlite3_bind_int64(st, 2, d->views);
        sqlite3_bind_int64(st, 3, d->unique);
        for (int c = 0; c < SP_STORE_CLASSES; c++)
            sqlite3_bind_int64(st, 4 + c, d->by_class[c]);
        sqlite3_bind_int64(st, 8, d->clicks);
        sqlite3_bind_int64(st, 9, d->last_view_at);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "count campaign");
    }
    return 0;
}

/* Counts the batch's opens of each unknown campaign it keeps, and lets the oldest kept ones
 * make way for the newest beyond max_opens. */
static int write_unknown_counts(sqlite_store_t *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_deltas; i++) {
        const campaign_delta_t *d = &s->deltas[i];
        if (UNKNOWN_KEEP != d->unknown || !d->unknown_opens)
            continue;
        sqlite3_stmt *st = s->q[Q_UNKNOWN_UPSERT];
        sqlite3_reset(st);
        bind_text(st, 1, d->id);
        sqlite3_bind_int64(st, 2, d->unknown_opens);
        sqlite3_bind_int64(st, 3, d->unknown_first);
        sqlite3_bind_int64(st, 4, d->unknown_last);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "count unknown campaign");
        st = s->q[Q_UNKNOWN_TRIM];
        sqlite3_reset(st);
        bind_text(st, 1, d->id);
        sqlite3_bind_int64(st, 2, s->base.unknown.max_opens > 0 ? s->base.unknown.max_opens : 0);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "trim unknown campaign");
        d->unknown_newest->dropped = (uint32_t)sqlite3_changes(s->db);
    }
    return 0;
}

static int write_mark(sqlite_store_t *s, const sp_store_mark_t *mark, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->q[Q_MARK];
    sqlite3_reset(st);
    bind_text(st, 1, mark->key);
    bind_text(st, 2, mark->value);
    return SQLITE_DONE == sqlite3_step(st) ? 0 : fail(s, err, errlen, "journal position");
}

static int sq_write_batch(sp_store_t *base, sp_event_t **evs, size_t n, const sp_store_mark_t *mark,
                          char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    s->n_deltas = 0;
    s->n_unknown = -1;
    for (size_t i = 0; i < n; i++) {
        evs[i]->campaign_new = false;
        evs[i]->dropped = 0;
    }
    for (size_t i = 0; i < n; i++)
        if (0 != write_one(s, evs[i], err, errlen))
            goto fail;
    if (0 != write_campaign_counts(s, err, errlen) || 0 != write_unknown_counts(s, err, errlen) ||
        (mark && 0 != write_mark(s, mark, err, errlen)) || 0 != exec(s, "COMMIT", err, errlen))
        goto fail;
    return 0;
fail:;
    char ignored[64];
    exec(s, "ROLLBACK", ignored, sizeof(ignored));
    for (size_t j = 0; j < n; j++) {
        evs[j]->outcome = SP_OUTCOME_PENDING;
        evs[j]->campaign_new = false;
        evs[j]->dropped = 0;
    }
    return -1;
}

/* ---- campaigns -------------------------------------------------------------- */

static int sq_campaign_create(sp_store_t *base, const char *id, int64_t now_ms, char *err,
                              size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "INSERT INTO campaigns(id, created_at) VALUES(?1, ?2)"
                " ON CONFLICT DO NOTHING",
                err, errlen))
        return -1;
    bind_text(st, 1, id);
    sqlite3_bind_int64(st, 2, now_ms);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (SQLITE_DONE != rc)
        return fail(s, err, errlen, "create campaign");
    return 1 == sqlite3_changes(s->db) ? 0 : 1;
}

#define CAMPAIGN_COLS                                                                              \
    "id, created_at, last_view_at, total_views, unique_views, human, proxy, machine, self,"        \
    " clicks"

static void read_campaign(sqlite3_stmt *st, sp_campaign_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", col_text(st, 0));
    c->created_at = sqlite3_column_int64(st, 1);
    c->last_view_at = sqlite3_column_int64(st, 2);
    c->total_views = sqlite3_column_int64(st, 3);
    c->unique_views = sqlite3_column_int64(st, 4);
    for (int i = 0; i < SP_STORE_CLASSES; i++)
        c->by_class[i] = sqlite3_column_int64(st, 5 + i);
    c->clicks = sqlite3_column_int64(st, 9);
}

static int sq_campaign_get(sp_store_t *base, const char *id, sp_campaign_t *out, char *err,
                           size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "SELECT " CAMPAIGN_COLS " FROM campaigns WHERE id = ?1", err, errlen))
        return -1;
    bind_text(st, 1, id);
    int rc = sqlite3_step(st), ret = -1;
    if (SQLITE_ROW == rc) {
        read_campaign(st, out);
        ret = 0;
    } else if (SQLITE_DONE == rc) {
        ret = 1;
    } else {
        fail(s, err, errlen, "read campaign");
    }
    sqlite3_finalize(st);
    return ret;
}

static int sq_campaign_list(sp_store_t *base, sp_store_campaign_cb cb, void *ctx, char *err,
                            size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT " CAMPAIGN_COLS " FROM campaigns"
                " ORDER BY MAX(last_view_at, created_at) DESC, id",
                err, errlen))
        return -1;
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_campaign_t c;
        read_campaign(st, &c);
        if (cb(ctx, &c)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list campaigns");
}

static int sq_recipients(sp_store_t *base, const char *campaign, const char *after, int64_t limit,
                         sp_store_recipient_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT recipient, human, proxy, machine, self, clicks, first_at, last_at"
                " FROM recipients WHERE campaign = ?1 AND recipient > ?2"
                " ORDER BY recipient LIMIT ?3",
                err, errlen))
        return -1;
    bind_text(st, 1, campaign);
    bind_text(st, 2, after ? after : "");
    sqlite3_bind_int64(st, 3, limit);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_recipient_t r = {.recipient = col_text(st, 0)};
        for (int i = 0; i < SP_STORE_CLASSES; i++)
            r.by_class[i] = sqlite3_column_int64(st, 1 + i);
        r.views = r.by_class[SP_CLASS_HUMAN] + r.by_class[SP_CLASS_PROXY];
        r.clicks = sqlite3_column_int64(st, 5);
        r.first_at = sqlite3_column_int64(st, 6);
        r.last_at = sqlite3_column_int64(st, 7);
        if (cb(ctx, &r)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list recipients");
}

static int sq_events(sp_store_t *base, const char *campaign, int64_t before, int64_t limit,
                     sp_store_event_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT id, ts, kind, campaign, recipient, ip, user_agent, referer, cookies,"
                " headers, visitor, browser, browser_version, os, os_version, device,"
                " device_brand, device_model, arch, country, region, city, geo_label, rule,"
                " via, target, latitude, longitude, class FROM events"
                " WHERE campaign = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                err, errlen))
        return -1;
    bind_text(st, 1, campaign);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int64(st, 3, limit);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_event_row_t r = {
            .id = sqlite3_column_int64(st, 0),
            .ts_ms = sqlite3_column_int64(st, 1),
            .kind = sqlite3_column_int(st, 2),
        };
        const char **text[] = {
            &r.campaign,     &r.recipient,    &r.ip,      &r.user_agent,   &r.referer,
            &r.cookies_json, &r.headers_json, &r.visitor, &r.browser,      &r.browser_version,
            &r.os,           &r.os_version,   &r.device,  &r.device_brand, &r.device_model,
            &r.arch,         &r.country,      &r.region,  &r.city,         &r.geo_label,
            &r.rule,         &r.via,          &r.target};
        for (size_t i = 0; i < sizeof(text) / sizeof(text[0]); i++)
            *text[i] = col_text(st, 3 + (int)i);
        if (SQLITE_NULL == sqlite3_column_type(st, 6))
            r.user_agent = NULL;
        if (SQLITE_NULL == sqlite3_column_type(st, 7))
            r.referer = NULL;
        r.has_coords = SQLITE_NULL != sqlite3_column_type(st, 26);
        r.latitude = sqlite3_column_double(st, 26);
        r.longitude = sqlite3_column_double(st, 27);
        r.klass = sqlite3_column_int(st, 28);
        if (cb(ctx, &r)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list events");
}

/* ---- unknown campaigns ------------------------------------------------------ */

static int sq_unknown_list(sp_store_t *base, sp_store_unknown_cb cb, void *ctx, char *err,
                           size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT id, opens, first_at, last_at FROM unknown_campaigns"
                " ORDER BY last_at DESC, id",
                err, errlen))
        return -1;
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_unknown_campaign_t u = {
            .opens = sqlite3_column_int64(st, 1),
            .first_at = sqlite3_column_int64(st, 2),
            .last_at = sqlite3_column_int64(st, 3),
        };
        snprintf(u.id, sizeof(u.id), "%s", col_text(st, 0));
        if (cb(ctx, &u)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list unknown campaigns");
}

static int sq_unknown_opens(sp_store_t *base, const char *id, sp_store_kept_cb cb, void *ctx,
                            char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "SELECT id, record FROM unknown_events WHERE campaign = ?1 ORDER BY id",
                err, errlen))
        return -1;
    bind_text(st, 1, id);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        const void *record = sqlite3_column_blob(st, 1);
        size_t len = (size_t)sqlite3_column_bytes(st, 1);
        if (cb(ctx, sqlite3_column_int64(st, 0), record ? record : "", len)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "read kept opens");
}

/* Runs STEPS (each binding ?1 to ARG) in one write transaction; *CHANGES (may be NULL) gets
 * the rows each changed, in order. */
static int run_steps(sqlite_store_t *s, const char *const *steps, size_t n, const char *arg,
                     int64_t num, int64_t *changes, char *err, size_t errlen)
{
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = NULL;
        if (prepare(s, &st, steps[i], err, errlen))
            goto fail;
        if (arg)
            bind_text(st, 1, arg);
        else
            sqlite3_bind_int64(st, 1, num);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (SQLITE_DONE != rc) {
            fail(s, err, errlen, "write");
            goto fail;
        }
        if (changes)
            changes[i] = sqlite3_changes(s->db);
    }
    if (0 == exec(s, "COMMIT", err, errlen))
        return 0;
fail:;
    char ignored[64];
    exec(s, "ROLLBACK", ignored, sizeof(ignored));
    return -1;
}

static int sq_unknown_delete(sp_store_t *base, const char *id, char *err, size_t errlen)
{
    static const char *const steps[] = {
        "DELETE FROM unknown_events WHERE campaign = ?1",
        "DELETE FROM unknown_campaigns WHERE id = ?1",
    };
    int64_t changes[2];
    if (0 != run_steps((sqlite_store_t *)base, steps, 2, id, 0, changes, err, errlen))
        return -1;
    return changes[0] || changes[1] ? 0 : 1;
}

/* ---- privacy ---------------------------------------------------------------- */

static int sq_purge_before(sp_store_t *base, int64_t before_ms, int64_t *deleted, char *err,
                           size_t errlen)
{
    /* An unknown campaign goes with its last open: every kept one is older. */
    static const char *const steps[] = {
        "DELETE FROM events WHERE ts < ?1",
        "DELETE FROM unknown_events WHERE ts < ?1",
        "DELETE FROM unknown_campaigns WHERE last_at < ?1",
    };
    int64_t changes[3];
    if (0 != run_steps((sqlite_store_t *)base, steps, 3, NULL, before_ms, changes, err, errlen))
        return -1;
    *deleted = changes[0] + changes[1];
    return 0;
}

static int sq_forget(sp_store_t *base, const char *recipient, int64_t *deleted, char *err,
                     size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (!recipient || !*recipient) {
        /* "" is how events without a recipient are stored: never erase those. */
        snprintf(err, errlen, "forget: no recipient given");
        return -1;
    }
    static const char *const steps[] = {
        /* Take the recipient's counts out of each campaign, then erase them. */
        "UPDATE campaigns SET"
        " total_views = total_views - r.human - r.proxy,"
        " unique_views = unique_views - (r.human + r.proxy > 0),"
        " human = campaigns.human - r.human, proxy = campaigns.proxy - r.proxy,"
        " machine = campaigns.machine - r.machine, self = campaigns.self - r.self,"
        " clicks = campaigns.clicks - r.clicks"
        " FROM (SELECT * FROM recipients WHERE recipient = ?1) AS r"
        " WHERE campaigns.id = r.campaign",
        /* Through events_campaign: the recipient's campaigns, before their rows go. */
        "DELETE FROM events WHERE campaign IN (SELECT campaign FROM recipients"
        " WHERE recipient = ?1) AND recipient = ?1",
        "DELETE FROM recipients WHERE recipient = ?1",
        /* Their kept opens of unknown campaigns (a scan, but of a bounded table): out of the
         * counts, then erased. */
        "UPDATE unknown_campaigns SET opens = opens - (SELECT COUNT(*) FROM unknown_events"
        " WHERE campaign = unknown_campaigns.id AND recipient = ?1)"
        " WHERE id IN (SELECT campaign FROM unknown_events WHERE recipient = ?1)",
        "DELETE FROM unknown_events WHERE recipient = ?1",
        "DELETE FROM unknown_campaigns WHERE opens <= 0",
    };
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        sqlite3_stmt *st = NULL;
        if (prepare(s, &st, steps[i], err, errlen))
            goto fail;
        bind_text(st, 1, recipient);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (SQLITE_DONE != rc) {
            fail(s, err, errlen, "forget");
            goto fail;
        }
        if (1 == i)
            *deleted = sqlite3_changes(s->db);
        else if (4 == i)
            *deleted += sqlite3_changes(s->db);
    }
    if (0 == exec(s, "COMMIT", err, errlen))
        return 0;
fail:;
    char ignored[64];
    exec(s, "ROLLBACK", ignored, sizeof(ignored));
    return -1;
}

static int sq_campaign_delete(sp_store_t *base, const char *id, int64_t *deleted, char *err,
                              size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    static const char *const steps[] = {
        "DELETE FROM events WHERE campaign = ?1",  "DELETE FROM recipients WHERE campaign = ?1",
        "DELETE FROM clients WHERE campaign = ?1", "DELETE FROM images WHERE campaign = ?1",
        "DELETE FROM campaigns WHERE id = ?1",
    };
    int found = 0;
    *deleted = 0;
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        sqlite3_stmt *st = NULL;
        if (prepare(s, &st, steps[i], err, errlen))
            goto fail;
        bind_text(st, 1, id);
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (SQLITE_DONE != rc) {
            fail(s, err, errlen, "delete campaign");
            goto fail;
        }
        if (0 == i)
            *deleted = sqlite3_changes(s->db);
        else if (4 == i)
            found = sqlite3_changes(s->db) > 0;
    }
    if (0 == exec(s, "COMMIT", err, errlen))
        return found ? 0 : 1;
fail:;
    char ignored[64];
    exec(s, "ROLLBACK", ignored, sizeof(ignored));
    return -1;
}

/* ---- auth and meta: small key/value lookups ---------------------------------- */

/* Runs SQL binding ARGS (NULL-terminated) and then NUM if SQL has a parameter left for
 * it, copying the first column of the first row
 * into OUT (and the second into OUT2). 0 found or done, 1 no row, -1 error. */
static int run(sqlite_store_t *s, const char *sql, const char *const *args, int64_t num, char *out,
               size_t outlen, char *out2, size_t out2len, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, sql, err, errlen))
        return -1;
    int i = 0;
    for (; args[i]; i++)
        bind_text(st, i + 1, args[i]);
    if (sqlite3_bind_parameter_count(st) > i)
        sqlite3_bind_int64(st, i + 1, num);
    int rc = sqlite3_step(st), ret;
    if (SQLITE_ROW == rc) {
        if (out)
            snprintf(out, outlen, "%s", col_text(st, 0));
        if (out2)
            snprintf(out2, out2len, "%s", col_text(st, 1));
        ret = 0;
    } else if (SQLITE_DONE == rc) {
        ret = out ? 1 : 0;
    } else {
        ret = fail(s, err, errlen, "query");
    }
    sqlite3_finalize(st);
    return ret;
}

static int sq_user_put(sp_store_t *b, const char *name, const char *pwhash, char *err,
                       size_t errlen)
{
    const char *args[] = {name, pwhash, NULL};
    return run((sqlite_store_t *)b,
               "INSERT INTO users(name, pwhash, created_at) VALUES(?1, ?2, ?3)"
               " ON CONFLICT(name) DO UPDATE SET pwhash = excluded.pwhash",
               args, sp_now_ms(), NULL, 0, NULL, 0, err, errlen);
}

static int sq_user_get(sp_store_t *b, const char *name, char *pwhash, size_t pwlen, char *err,
                       size_t errlen)
{
    const char *args[] = {name, NULL};
    return run((sqlite_store_t *)b, "SELECT pwhash FROM users WHERE name = ?1", args, 0, pwhash,
               pwlen, NULL, 0, err, errlen);
}

static int sq_token_put(sp_store_t *b, const char *hash, const char *name, char *err, size_t errlen)
{
    const char *args[] = {hash, name, NULL};
    return run((sqlite_store_t *)b,
               "INSERT INTO api_tokens(hash, name, created_at) VALUES(?1, ?2, ?3)", args,
               sp_now_ms(), NULL, 0, NULL, 0, err, errlen);
}

static int sq_token_get(sp_store_t *b, const char *hash, char *name, size_t namelen, char *err,
                        size_t errlen)
{
    const char *args[] = {hash, NULL};
    return run((sqlite_store_t *)b, "SELECT name FROM api_tokens WHERE hash = ?1", args, 0, name,
               namelen, NULL, 0, err, errlen);
}

static int sq_session_put(sp_store_t *b, const char *hash, const char *user, const char *csrf,
                          int64_t expires_ms, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    const char *purge[] = {NULL};
    /* Expired sessions go whenever a new one comes. */
    if (0 > run(s, "DELETE FROM sessions WHERE expires_at < ?1", purge, sp_now_ms(), NULL, 0, NULL,
                0, err, errlen))
        return -1;
    const char *args[] = {hash, user, csrf, NULL};
    return run(s, "INSERT INTO sessions(hash, user, csrf, expires_at) VALUES(?1, ?2, ?3, ?4)", args,
               expires_ms, NULL, 0, NULL, 0, err, errlen);
}

static int sq_session_get(sp_store_t *b, const char *hash, int64_t now_ms, char *user,
                          size_t userlen, char *csrf, size_t csrflen, char *err, size_t errlen)
{
    const char *args[] = {hash, NULL};
    return run((sqlite_store_t *)b,
               "SELECT user, csrf FROM sessions WHERE hash = ?1 AND expires_at > ?2", args, now_ms,
               user, userlen, csrf, csrflen, err, errlen);
}

static int sq_session_delete(sp_store_t *b, const char *hash, char *err, size_t errlen)
{
    const char *args[] = {hash, NULL};
    return run((sqlite_store_t *)b, "DELETE FROM sessions WHERE hash = ?1", args, 0, NULL, 0, NULL,
               0, err, errlen);
}

static int sq_meta_get(sp_store_t *b, const char *key, char *value, size_t len, char *err,
                       size_t errlen)
{
    const char *args[] = {key, NULL};
    return run((sqlite_store_t *)b, "SELECT value FROM meta WHERE key = ?1", args, 0, value, len,
               NULL, 0, err, errlen);
}

static int sq_meta_put_new(sp_store_t *b, const char *key, const char *value, char *err,
                           size_t errlen)
{
    const char *args[] = {key, value, NULL};
    return run((sqlite_store_t *)b,
               "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT DO NOTHING", args, 0, NULL,
               0, NULL, 0, err, errlen);
}

static int sq_image_put(sp_store_t *b, const char *id, const char *campaign, const char *mime,
                        const void *data, size_t len, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "INSERT INTO images(id, campaign, mime, data, created_at)"
                " VALUES(?1, ?2, ?3, ?4, ?5)",
                err, errlen))
        return -1;
    bind_text(st, 1, id);
    bind_text(st, 2, campaign);
    bind_text(st, 3, mime);
    sqlite3_bind_blob64(st, 4, data, len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, sp_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "save image");
}

static int sq_image_get(sp_store_t *b, const char *id, char *mime, size_t mimelen, void **data,
                        size_t *len, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "SELECT mime, data FROM images WHERE id = ?1", err, errlen))
        return -1;
    bind_text(st, 1, id);
    int rc = sqlite3_step(st), ret;
    if (SQLITE_ROW == rc) {
        snprintf(mime, mimelen, "%s", col_text(st, 0));
        *len = (size_t)sqlite3_column_bytes(st, 1);
        *data = malloc(*len ? *len : 1);
        if (!*data)
            abort();
        if (*len)
            memcpy(*data, sqlite3_column_blob(st, 1), *len);
        ret = 0;
    } else {
        ret = SQLITE_DONE == rc ? 1 : fail(s, err, errlen, "read image");
    }
    sqlite3_finalize(st);
    return ret;
}

/* ---- open and close --------------------------------------------------------- */

static void sq_close(sp_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    free(s->deltas);
    free(s->record);
    free(s);
}

static const sp_store_ops_t sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .write_batch = sq_write_batch,
    .campaign_create = sq_campaign_create,
    .campaign_get = sq_campaign_get,
    .campaign_list = sq_campaign_list,
    .recipients = sq_recipients,
    .events = sq_events,
    .unknown_list = sq_unknown_list,
    .unknown_opens = sq_unknown_opens,
    .unknown_delete = sq_unknown_delete,
    .purge_before = sq_purge_before,
    .forget = sq_forget,
    .campaign_delete = sq_campaign_delete,
    .user_put = sq_user_put,
    .user_get = sq_user_get,
    .token_put = sq_token_put,
    .token_get = sq_token_get,
    .session_put = sq_session_put,
    .session_get = sq_session_get,
    .session_delete = sq_session_delete,
    .meta_get = sq_meta_get,
    .meta_put_new = sq_meta_put_new,
    .image_put = sq_image_put,
    .image_get = sq_image_get,
};

static int schema_version(sqlite_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "PRAGMA user_version", err, errlen))
        return -1;
    int version = SQLITE_ROW == sqlite3_step(st) ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return version;
}

static int migrate(sqlite_store_t *s, char *err, size_t errlen)
{
    /* A current schema needs no write lock: a reader opened while another program holds
     * the database (or the writer a long transaction) must not wait for it. */
    if (SCHEMA_VERSION == schema_version(s, err, errlen))
        return 0;
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    int version = schema_version(s, err, errlen);
    if (version < 0 || version > SCHEMA_VERSION) {
        snprintf(err, errlen, "sqlite: schema version %d is newer than this spypixel (%d)", version,
                 SCHEMA_VERSION);
        goto fail;
    }
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char sql[64];
        if (0 != exec(s, migrations[v], err, errlen))
            goto fail;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if (0 != exec(s, sql, err, errlen))
            goto fail;
    }
    return exec(s, "COMMIT", err, errlen);
fail:;
    char ignored[64];
    exec(s, "ROLLBACK", ignored, sizeof(ignored));
    return -1;
}

/* Turning a new file to WAL takes an exclusive lock that SQLite does not wait for through the
 * busy handler: stores opened at once on a new data folder retry here for up to ten seconds. */
static int set_wal(sqlite_store_t *s, char *err, size_t errlen)
{
    for (int tries = 0;; tries++) {
        if (0 == exec(s, "PRAGMA journal_mode = WAL", err, errlen))
            return 0;
        if (SQLITE_BUSY != sqlite3_errcode(s->db) || tries >= 1000)
            return -1;
        sqlite3_sleep(10);
    }
}

/* SQLite keeps allocation statistics under one global mutex unless told not to: a lock
 * and an unlock around every allocation and every free, several per row (about 8% of
 * write_batch). Nothing here reads them (sqlite3_memory_used and the like). It must be set
 * before SQLite initialises; if something in the process already used SQLite, the call
 * fails harmlessly. */
static void sqlite_once(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

sp_store_t *sp_store_sqlite_open(const char *data_dir, bool sync_full, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_once);
    char path[1024];
    if (0 != mkdir(data_dir, 0700) && EEXIST != errno) {
        snprintf(err, errlen, "data folder %s: %s", data_dir, strerror(errno));
        return NULL;
    }
    snprintf(path, sizeof(path), "%s/spypixel.db", data_dir);

    sqlite_store_t *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->base.ops = &sqlite_ops;
    s->base.unknown = (sp_store_unknown_t){.max_campaigns = SP_CONFIG_UNKNOWN_CAMPAIGNS,
                                           .max_opens = SP_CONFIG_UNKNOWN_OPENS};
    if (SQLITE_OK !=
        sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL)) {
        snprintf(err, errlen, "sqlite: %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL: readers never block the writer. synchronous=NORMAL survives a process crash
     * (kill -9) with every commit; FULL also survives power loss. */
    if (0 != set_wal(s, err, errlen) ||
        0 != exec(s, sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", err,
                  errlen) ||
        0 != exec(s, "PRAGMA foreign_keys = OFF", err, errlen) || 0 != migrate(s, err, errlen))
        goto fail;
    for (int i = 0; i < Q_COUNT; i++)
        if (0 != prepare(s, &s->q[i], batch_sql[i], err, errlen))
            goto fail;
    return &s->base;
fail:
    sq_close(&s->base);
    return NULL;
}
