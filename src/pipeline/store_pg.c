/* store_pg: the PostgreSQL backend, for several servers sharing one database. */
/* SPDX-License-Identifier: MIT */
#include "store_pg.h"

#include <assert.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classify.h"
#include "intern.h"
#include "tally.h"
#include "utf8.h"

/* The rollups' autovacuum settings (schema 17): a visit after 1,000 rows changed or added. */
#define ROLLUP_VACUUM                                                                              \
    "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,"                      \
    " autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 1000"

/* Each entry moves the schema from version i to i + 1; never edit a shipped one. The tables
 * are store_sqlite.c's. IDs use the "C" collation so that ordering and paging compare bytes as
 * SQLite does, whatever the database's locale. The counter tables have no index on a counter and
 * leave room in their pages: every batch rewrites those rows, and that keeps the updates HOT
 * (in place, no new index entries). The report's rollup_counts, rollup_days and rollup_totals
 * are the exception since schema 17: their keys carry the counts, for reads from the index
 * alone, and an update adds an index entry. */
/* Taken alone by a transaction that deletes interned texts, shared by each writer's check
 * before its commit (intern_gc): "spyintern". */
#define INTERN_LOCK "8318282035466102126"

static const char *const migrations[] = {
    /* 1: campaigns with their counters, recipients, clients, events, auth. */
    "CREATE TABLE meta(key TEXT COLLATE \"C\" PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE campaigns("
    " id TEXT COLLATE \"C\" PRIMARY KEY, created_at BIGINT NOT NULL,"
    " total_views BIGINT NOT NULL DEFAULT 0, unique_views BIGINT NOT NULL DEFAULT 0,"
    " human BIGINT NOT NULL DEFAULT 0, proxy BIGINT NOT NULL DEFAULT 0,"
    " machine BIGINT NOT NULL DEFAULT 0, self BIGINT NOT NULL DEFAULT 0,"
    " clicks BIGINT NOT NULL DEFAULT 0, last_view_at BIGINT NOT NULL DEFAULT 0)"
    " WITH (fillfactor = 50);"
    "CREATE TABLE recipients("
    " campaign TEXT COLLATE \"C\" NOT NULL, recipient TEXT COLLATE \"C\" NOT NULL,"
    " human BIGINT NOT NULL DEFAULT 0, proxy BIGINT NOT NULL DEFAULT 0,"
    " machine BIGINT NOT NULL DEFAULT 0, self BIGINT NOT NULL DEFAULT 0,"
    " clicks BIGINT NOT NULL DEFAULT 0, first_at BIGINT NOT NULL DEFAULT 0,"
    " last_at BIGINT NOT NULL DEFAULT 0,"
    " PRIMARY KEY(campaign, recipient)) WITH (fillfactor = 80);"
    "CREATE INDEX recipients_recipient ON recipients(recipient);"
    "CREATE TABLE clients(campaign TEXT COLLATE \"C\" NOT NULL, client TEXT COLLATE \"C\" NOT NULL,"
    " PRIMARY KEY(campaign, client));"
    "CREATE TABLE events("
    " id BIGSERIAL PRIMARY KEY, ts BIGINT NOT NULL, campaign TEXT COLLATE \"C\" NOT NULL,"
    " kind INTEGER NOT NULL, recipient TEXT COLLATE \"C\" NOT NULL, ip TEXT NOT NULL,"
    " user_agent TEXT, referer TEXT, cookies TEXT NOT NULL, headers TEXT NOT NULL,"
    " visitor TEXT NOT NULL, browser TEXT NOT NULL, browser_version TEXT NOT NULL,"
    " os TEXT NOT NULL, os_version TEXT NOT NULL, device TEXT NOT NULL,"
    " device_brand TEXT NOT NULL, device_model TEXT NOT NULL, arch TEXT NOT NULL,"
    " country TEXT NOT NULL, region TEXT NOT NULL, city TEXT NOT NULL,"
    " latitude DOUBLE PRECISION, longitude DOUBLE PRECISION, geo_label TEXT NOT NULL,"
    " class INTEGER NOT NULL, rule TEXT NOT NULL, via TEXT NOT NULL, target TEXT NOT NULL);"
    "CREATE INDEX events_campaign ON events(campaign, id);"
    "CREATE INDEX events_recipient ON events(recipient) WHERE recipient <> '';"
    "CREATE INDEX events_ts ON events(ts);"
    "CREATE TABLE users(name TEXT COLLATE \"C\" PRIMARY KEY, pwhash TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE api_tokens(hash TEXT COLLATE \"C\" PRIMARY KEY, name TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE sessions(hash TEXT COLLATE \"C\" PRIMARY KEY, \"user\" TEXT NOT NULL,"
    " csrf TEXT NOT NULL, expires_at BIGINT NOT NULL);",
    /* 2: uploaded images that track every load. */
    "CREATE TABLE images(id TEXT COLLATE \"C\" PRIMARY KEY, campaign TEXT NOT NULL,"
    " mime TEXT NOT NULL, data BYTEA NOT NULL, created_at BIGINT NOT NULL);",
    /* 3: no index of events by recipient (every insert touched it at a random place);
     * forget finds a recipient's events through their campaigns. */
    "DROP INDEX IF EXISTS events_recipient;",
    /* 4: opens of campaigns that do not exist, kept apart in their journal form (bounded:
     * see sp_store_unknown_t) until the campaign is created and adopts them. */
    "CREATE TABLE unknown_campaigns(id TEXT COLLATE \"C\" PRIMARY KEY, opens BIGINT NOT NULL,"
    " first_at BIGINT NOT NULL, last_at BIGINT NOT NULL);"
    "CREATE TABLE unknown_events(id BIGSERIAL PRIMARY KEY, campaign TEXT COLLATE \"C\" NOT NULL,"
    " ts BIGINT NOT NULL, recipient TEXT COLLATE \"C\" NOT NULL, record BYTEA NOT NULL);"
    "CREATE INDEX unknown_events_campaign ON unknown_events(campaign, id);"
    "CREATE INDEX unknown_events_ts ON unknown_events(ts);",
    /* 5: no credentials of spypixel's own in stored events: older versions kept the
     * session, self-view and Authorization values of the requests they recorded. */
    "", /* migration_code */
    /* 6: API tokens may belong to a user, and end with the user's password. */
    "ALTER TABLE api_tokens ADD COLUMN owner TEXT;",
    /* 7: the tracking block's read time of an open. */
    "ALTER TABLE events ADD COLUMN engagement TEXT, ADD COLUMN read_ms bigint;",
    /* 8: the report's rollups (rollup.h), filled from the events stored so far
     * (migration_code), and events by time within a campaign, for the edges of a report's
     * range that do not fill an hour. */
    "CREATE TABLE rollup_counts(campaign TEXT COLLATE \"C\" NOT NULL, quarter BIGINT NOT NULL,"
    " human BIGINT NOT NULL, proxy BIGINT NOT NULL, machine BIGINT NOT NULL,"
    " self BIGINT NOT NULL, clicks BIGINT NOT NULL, PRIMARY KEY(campaign, quarter))"
    " WITH (fillfactor = 80);"
    "CREATE TABLE rollup_values(campaign TEXT COLLATE \"C\" NOT NULL, dim INTEGER NOT NULL,"
    " hour BIGINT NOT NULL, value TEXT COLLATE \"C\" NOT NULL, n BIGINT NOT NULL,"
    " PRIMARY KEY(campaign, dim, hour, value)) WITH (fillfactor = 80);"
    "CREATE INDEX events_campaign_ts ON events(campaign, ts);",
    /* 9: the people a campaign was sent to, for its rates. */
    "CREATE TABLE sent_to(campaign TEXT COLLATE \"C\" NOT NULL,"
    " recipient TEXT COLLATE \"C\" NOT NULL, PRIMARY KEY(campaign, recipient));",
    /* 10: archived campaigns, listed apart. */
    "ALTER TABLE campaigns ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;",
    /* 11: the pixels, links and images made for each campaign, and its clicks by destination
     * (an index of clicks only: opens, the most of the events, do not touch it). */
    "CREATE TABLE trackers(id BIGSERIAL PRIMARY KEY, campaign TEXT COLLATE \"C\" NOT NULL,"
    " recipient TEXT COLLATE \"C\" NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL,"
    " url TEXT NOT NULL, created_at BIGINT NOT NULL);"
    "CREATE UNIQUE INDEX trackers_url ON trackers(url);"
    "CREATE INDEX trackers_campaign ON trackers(campaign, id);"
    "CREATE INDEX events_clicks ON events(campaign, target) WHERE kind = 1;",
    /* 12: a recipient's events within a campaign, newest first: the log filtered by recipient,
     * a recipient's page, and forget read them here instead of every event of the campaign. */
    "CREATE INDEX events_campaign_recipient ON events(campaign, recipient, id)"
    " WHERE recipient <> '';",
    /* 13: the reader of a recipient's first human open and the clients of its likely forwards
     * (tally.h), so that the writer decides a forward from the row it upserts. */
    "ALTER TABLE recipients ADD COLUMN first_client TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN first_network TEXT NOT NULL DEFAULT '',"
    " ADD COLUMN first_human_at BIGINT NOT NULL DEFAULT 0,"
    " ADD COLUMN forward_clients TEXT NOT NULL DEFAULT '';",
    /* 14: user agents and header sets stored once, an event naming them by ID, the values of
     * its apart headers in its row (intern.h). Rows stored before keep their own text. Hash
     * indexes: a header set may be longer than a B-tree entry may be; not unique, as two
     * writers may add one text at once, which is then stored twice and read the same. */
    "CREATE TABLE agents(id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL);"
    "CREATE INDEX agents_text ON agents USING hash(text);"
    "CREATE TABLE header_sets(id BIGSERIAL PRIMARY KEY, text TEXT NOT NULL);"
    "CREATE INDEX header_sets_text ON header_sets USING hash(text);"
    "ALTER TABLE events ADD COLUMN agent BIGINT, ADD COLUMN header_set BIGINT,"
    " ADD COLUMN header_addrs TEXT;",
    /* 15: the report's day and all-time rollups and each opener's and clicker's first and last hour
     * (rollup.h), made from the hours' rollups. */
    "CREATE TABLE rollup_days(campaign TEXT COLLATE \"C\" NOT NULL, dim INTEGER NOT NULL,"
    " day BIGINT NOT NULL, value TEXT COLLATE \"C\" NOT NULL, n BIGINT NOT NULL,"
    " PRIMARY KEY(campaign, dim, day, value)) WITH (fillfactor = 80);"
    "INSERT INTO rollup_days(campaign, dim, day, value, n) SELECT campaign, dim, hour / 24,"
    " value, SUM(n) FROM rollup_values WHERE dim BETWEEN 1 AND 6"
    " GROUP BY campaign, dim, hour / 24, value;"
    "CREATE TABLE rollup_totals(campaign TEXT COLLATE \"C\" NOT NULL, dim INTEGER NOT NULL,"
    " value TEXT COLLATE \"C\" NOT NULL, n BIGINT NOT NULL, PRIMARY KEY(campaign, dim, value))"
    " WITH (fillfactor = 80);"
    "INSERT INTO rollup_totals(campaign, dim, value, n) SELECT campaign, dim, value, SUM(n)"
    " FROM rollup_values WHERE dim BETWEEN 1 AND 6 GROUP BY campaign, dim, value;"
    "CREATE TABLE rollup_people(campaign TEXT COLLATE \"C\" NOT NULL, dim INTEGER NOT NULL,"
    " who TEXT COLLATE \"C\" NOT NULL, first_hour BIGINT NOT NULL, last_hour BIGINT NOT NULL,"
    " PRIMARY KEY(campaign, dim, who)) WITH (fillfactor = 80);"
    "INSERT INTO rollup_people(campaign, dim, who, first_hour, last_hour) SELECT campaign, dim,"
    " value, MIN(hour), MAX(hour) FROM rollup_values WHERE dim IN (0, 7) AND n > 0"
    " GROUP BY campaign, dim, value;"
    "CREATE INDEX rollup_people_first ON rollup_people(campaign, dim, first_hour);"
    "CREATE INDEX rollup_people_last ON rollup_people(campaign, dim, last_hour);",
    /* 16: events partitioned by week of ts (migration_code: partition_events). */
    "",
    /* 17: the report's series and breakdowns read from the keys alone (index-only scans):
     * the counts are carried in the keys (INCLUDE), as a campaign's rows are scattered over
     * the heap (a heap page per row read). An index-only scan skips the heap only for the
     * pages the visibility map marks all-visible: autovacuum visits a rollup table after 1,000
     * rows changed or added (about once a minute while opens come in, each visit reading only
     * the pages changed since), not after a fifth of the table. */
    "ALTER TABLE rollup_counts DROP CONSTRAINT rollup_counts_pkey,"
    " ADD PRIMARY KEY(campaign, quarter) INCLUDE(human, proxy, machine, self, clicks);"
    "ALTER TABLE rollup_days DROP CONSTRAINT rollup_days_pkey,"
    " ADD PRIMARY KEY(campaign, dim, day, value) INCLUDE(n);"
    "ALTER TABLE rollup_totals DROP CONSTRAINT rollup_totals_pkey,"
    " ADD PRIMARY KEY(campaign, dim, value) INCLUDE(n);"
    "ALTER TABLE rollup_counts SET (" ROLLUP_VACUUM ");"
    "ALTER TABLE rollup_values SET (" ROLLUP_VACUUM ");"
    "ALTER TABLE rollup_days SET (" ROLLUP_VACUUM ");"
    "ALTER TABLE rollup_totals SET (" ROLLUP_VACUUM ");"
    "ALTER TABLE rollup_people SET (" ROLLUP_VACUUM ");",
    /* 18: events by the texts they name, so that deleting events deletes the texts no event
     * names any more by looking up the IDs the deleted rows named (intern.h); the number of
     * such deletions, and the writer's check of it before each commit, under a lock shared
     * with other writers that a deletion takes alone (intern_gc). In a function: its second
     * statement sees what committed while the first waited for the lock. */
    "CREATE INDEX IF NOT EXISTS events_agent ON events(agent) WHERE agent IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS events_header_set ON events(header_set)"
    " WHERE header_set IS NOT NULL;"
    "INSERT INTO meta(key, value) VALUES('" SP_INTERN_GEN_KEY "', '0') ON CONFLICT DO NOTHING;"
    "CREATE OR REPLACE FUNCTION spypixel_intern_check(gen TEXT) RETURNS void LANGUAGE plpgsql AS "
    "$f$"
    " DECLARE now_gen TEXT; BEGIN"
    " PERFORM pg_advisory_xact_lock_shared(" INTERN_LOCK ");"
    " SELECT value INTO now_gen FROM meta WHERE key = '" SP_INTERN_GEN_KEY "';"
    " IF coalesce(now_gen, '') <> gen THEN"
    " RAISE EXCEPTION 'interned texts were deleted during the batch'"
    " USING ERRCODE = 'serialization_failure'; END IF; END $f$;",
    /* 19: no index of recipients by address: forget and a recipient's page seek each
     * campaign's key instead (SP_QUERY_RECIPIENT_CAMPAIGNS), and the writer makes one B-tree
     * entry fewer per new recipient. */
    "DROP INDEX IF EXISTS recipients_recipient;",
    /* 20: the number of people whose first and last hour each hour is, in place of the indexes
     * of people by first and by last hour (rollup.h), kept by statement triggers from the rows
     * each statement inserted and moved, as they were and became: a writer on another server
     * may move the same person at the same time, and a trigger sees the row versions its own
     * statement replaced. */
    "CREATE TABLE rollup_people_hours(campaign TEXT COLLATE \"C\" NOT NULL, dim INTEGER NOT NULL,"
    " hour BIGINT NOT NULL, firsts BIGINT NOT NULL, lasts BIGINT NOT NULL,"
    " PRIMARY KEY(campaign, dim, hour) INCLUDE(firsts, lasts))"
    " WITH (fillfactor = 80, " ROLLUP_VACUUM ");" SP_ROLLUP_PEOPLE_HOURS_FILL
    "CREATE OR REPLACE FUNCTION spypixel_people_hours() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " BEGIN IF TG_OP = 'INSERT' THEN"
    " INSERT INTO rollup_people_hours AS r(campaign, dim, hour, firsts, lasts)"
    " SELECT campaign, dim, hour, SUM(f), SUM(l) FROM (SELECT campaign, dim, first_hour AS hour,"
    " 1 AS f, 0 AS l FROM added UNION ALL SELECT campaign, dim, last_hour, 0, 1 FROM added) x"
    " GROUP BY campaign, dim, hour ORDER BY campaign, dim, hour"
    " ON CONFLICT(campaign, dim, hour) DO UPDATE"
    " SET firsts = r.firsts + excluded.firsts, lasts = r.lasts + excluded.lasts;"
    " ELSE"
    " INSERT INTO rollup_people_hours AS r(campaign, dim, hour, firsts, lasts)"
    " SELECT campaign, dim, hour, SUM(f), SUM(l) FROM (SELECT campaign, dim, first_hour AS hour,"
    " 1 AS f, 0 AS l FROM moved_to UNION ALL SELECT campaign, dim, first_hour, -1, 0"
    " FROM moved_from UNION ALL SELECT campaign, dim, last_hour, 0, 1 FROM moved_to"
    " UNION ALL SELECT campaign, dim, last_hour, 0, -1 FROM moved_from) x"
    " GROUP BY campaign, dim, hour HAVING SUM(f) <> 0 OR SUM(l) <> 0"
    " ORDER BY campaign, dim, hour ON CONFLICT(campaign, dim, hour) DO UPDATE"
    " SET firsts = r.firsts + excluded.firsts, lasts = r.lasts + excluded.lasts;"
    " END IF; RETURN NULL; END $f$;"
    "CREATE TRIGGER rollup_people_added AFTER INSERT ON rollup_people"
    " REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION spypixel_people_hours();"
    "CREATE TRIGGER rollup_people_moved AFTER UPDATE ON rollup_people"
    " REFERENCING OLD TABLE AS moved_from NEW TABLE AS moved_to"
    " FOR EACH STATEMENT EXECUTE FUNCTION spypixel_people_hours();"
    "DROP INDEX rollup_people_first;"
    "DROP INDEX rollup_people_last;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

typedef struct pg_store pg_store_t;
static int scrub_credentials(pg_store_t *s, char *err, size_t errlen);
static int backfill_rollups(pg_store_t *s, char *err, size_t errlen);
static int partition_events(pg_store_t *s, char *err, size_t errlen);

/* The steps that SQL alone cannot do, run for their version in place of its (empty) SQL. */
static const struct {
    int version;
    int (*run)(pg_store_t *s, char *err, size_t errlen);
} migration_code[] = {
    {5, scrub_credentials},
    {8, backfill_rollups},
    {16, partition_events},
};

/* Held for the migration's transaction by every server that opens the store: "spypixel". */
#define MIGRATION_LOCK "8318282035466102124"
/* Held while partitions of events are made or dropped, by any server: "spypart". */
#define PARTITION_LOCK "8318282035466102125"

/* Events are partitioned by week (UTC, from Monday 00:00): a week is what retention drops
 * whole, the weeks of a 90-day store are 13 partitions (each index scan of a page over every
 * partition is one descent per partition), and a week of heavy traffic (millions of rows) keeps
 * each partition's indexes in memory while it is written. Partitions are made by the writer for
 * the weeks its batches reach (and the week after the current one, ahead of need) within
 * PARTITION_PAST_MS before and PARTITION_AHEAD_MS after now; a row outside those, or written
 * while its partition could not be made, goes to events_default, whose rows of a week move to
 * the week's partition when it is made. */
#define DAY_MS             INT64_C(86400000)
#define WEEK_MS            (7 * DAY_MS)
#define MONDAY_MS          (4 * DAY_MS) /* 1970-01-05, the epoch's first Monday */
#define PARTITION_PAST_MS  (731 * DAY_MS)
#define PARTITION_AHEAD_MS (28 * DAY_MS)
/* How long DDL on events waits for a lock (a long export holds one) before it gives up and
 * tries again later: other queries queue behind a waiting DDL lock. */
#define PARTITION_LOCK_TIMEOUT "SET LOCAL lock_timeout = '1s'"
#define PARTITION_RETRY_MS     INT64_C(30000)
#define PARTITIONS_KNOWN       16 /* weeks a connection remembers having made */

/* Prepared once per connection, named "sp<index>". */
enum {
    Q_CAMPAIGN_EXISTS,
    Q_EVENT_INSERT,
    Q_EVENT_IDS,
    Q_EVENTS_INSERT,
    Q_RECIPIENT_UPSERT,
    Q_RECIPIENTS_UPSERT,
    Q_RECIPIENT_FORWARDED,
    Q_CLIENT_INSERT,
    Q_CAMPAIGN_COUNT,
    Q_CAMPAIGN_CREATE,
    Q_CAMPAIGN_GET,
    Q_CAMPAIGN_LIST,
    Q_RECIPIENTS,
    Q_EVENTS,
    Q_EXPORT,
    Q_EXPORT_AGENTS,
    Q_EXPORT_SETS,
    Q_PURGE,
    Q_FORGET_LOCK,
    Q_FORGET_COUNTS,
    Q_FORGET_EVENTS,
    Q_CAMPAIGN_LOCK,
    Q_CAMPAIGN_DELETE_EVENTS,
    Q_CAMPAIGN_DELETE,
    Q_USER_PUT,
    Q_USER_UPDATE,
    Q_USER_GET,
    Q_USER_DELETE,
    Q_USER_LIST,
    Q_USER_SESSIONS_END,
    Q_USER_TOKENS_END,
    Q_TOKEN_PUT,
    Q_TOKEN_GET,
    Q_TOKEN_LIST,
    Q_TOKEN_REVOKE,
    Q_SESSION_PURGE,
    Q_SESSION_PUT,
    Q_SESSION_GET,
    Q_SESSION_DELETE,
    Q_META_GET,
    Q_META_PUT_NEW,
    Q_MARK,
    Q_UNKNOWN_COUNT,
    Q_UNKNOWN_KEEP,
    Q_UNKNOWN_UPSERT,
    Q_UNKNOWN_TRIM,
    Q_ADOPT_TAKE,
    Q_ADOPT_DONE,
    Q_UNKNOWN_LIST,
    Q_UNKNOWN_OPENS,
    Q_UNKNOWN_DELETE,
    Q_UNKNOWN_PURGE,
    Q_FORGET_UNKNOWN,
    Q_FORGET_UNKNOWN_EMPTY,
    Q_READ_FOLD,
    Q_ENGAGEMENT,
    Q_ROLLUP_COUNTS,
    Q_ROLLUP_VALUES,
    Q_AGENT_INTERN,
    Q_SET_INTERN,
    Q_INTERN_GEN,
    Q_INTERN_CHECK,
    Q_INTERN_GC,
    Q_FORGET_ROLLUP_COUNTS,
    Q_FORGET_ROLLUP_VALUES,
    Q_FORGET_ROLLUP_DAYS,
    Q_FORGET_ROLLUP_TOTALS,
    Q_FORGET_ROLLUP_PEOPLE,
    Q_REPORT_LIFE,
    Q_REPORT_COUNTS,
    Q_REPORT_VALUES,
    Q_REPORT_OUTSIDE,
    Q_REPORT_PEOPLE,
    Q_REPORT_DISTINCT,
    Q_SENT_DELETE,
    Q_SENT_INSERT,
    Q_SENT_STATS,
    Q_NOT_OPENED,
    Q_CAMPAIGN_ARCHIVE,
    Q_TRACKER_PUT,
    Q_TRACKERS,
    Q_LINKS,
    Q_COUNT
};

#define CAMPAIGN_COLS                                                                              \
    "id, created_at, last_view_at, total_views, unique_views, human, proxy, machine, self,"        \
    " clicks, archived"

/* The reader of a recipient's first human open: the earliest the row or the batch knows. */
#define FIRST_HUMAN_SET(col)                                                                       \
    " " col " = CASE WHEN excluded.first_human_at <> 0 AND (r.first_human_at = 0"                  \
    " OR excluded.first_human_at < r.first_human_at) THEN excluded." col " ELSE r." col " END"

#define RECIPIENT_COLS                                                                             \
    "campaign, recipient, human, proxy, machine, self, clicks, first_at, last_at, first_client,"   \
    " first_network, first_human_at"
#define RECIPIENT_CONFLICT                                                                         \
    " ON CONFLICT(campaign, recipient) DO UPDATE SET human = r.human + excluded.human,"            \
    " proxy = r.proxy + excluded.proxy, machine = r.machine + excluded.machine,"                   \
    " self = r.self + excluded.self, clicks = r.clicks + excluded.clicks,"                         \
    " first_at = CASE WHEN r.first_at = 0 THEN excluded.first_at"                                  \
    " WHEN excluded.first_at = 0 THEN r.first_at"                                                  \
    " ELSE LEAST(r.first_at, excluded.first_at) END,"                                              \
    " last_at = GREATEST(r.last_at, excluded.last_at)," FIRST_HUMAN_SET(                           \
        "first_client") "," FIRST_HUMAN_SET("first_network") "," FIRST_HUMAN_SET("first_human_at")
#define RECIPIENT_RETURNING                                                                        \
    SP_TALLY_VIEWS_SQL("r.")                                                                       \
    " AS views, r.first_client, r.first_network, r.first_human_at,"                                \
    " r.forward_clients"

#define INTERN_SQL(table)                                                                          \
    "WITH f AS (SELECT id FROM " table " WHERE text = $1 LIMIT 1),"                                \
    " i AS (INSERT INTO " table "(text) SELECT $1 WHERE NOT EXISTS (SELECT 1 FROM f)"              \
    " RETURNING id) SELECT id FROM f UNION ALL SELECT id FROM i"

/* The distinct agents and header sets of deleted rows D, as two arrays (NULL for none). */
#define GONE_IDS                                                                                   \
    "array_agg(DISTINCT agent) FILTER (WHERE agent IS NOT NULL),"                                  \
    " array_agg(DISTINCT header_set) FILTER (WHERE header_set IS NOT NULL)"

static const char *const query_sql[Q_COUNT] = {
    /* Whether the campaign exists, and whether its opens are kept apart already. KEY SHARE:
     * a campaign being deleted (campaign_delete) is waited for, then seen gone, so that no
     * event of it is written after its erasure. */
    [Q_CAMPAIGN_EXISTS] = "SELECT EXISTS(SELECT 1 FROM campaigns WHERE id = $1 FOR KEY SHARE),"
                          " EXISTS(SELECT 1 FROM unknown_campaigns WHERE id = $1)",
    [Q_EVENT_INSERT] = NULL, /* made from the field table: made_sql */
    /* The IDs of a batch's events, in order, taken before they are inserted all at once. */
    [Q_EVENT_IDS] = "SELECT nextval('events_id_seq') FROM generate_series(1, $1)",
    [Q_EVENTS_INSERT] = NULL, /* made_sql: a column an array */
    /* first_at is the earliest counted open even when batches from several servers commit
     * out of order; 0 means none yet. */
    [Q_RECIPIENT_UPSERT] =
        "INSERT INTO recipients AS r(" RECIPIENT_COLS ")"
        " VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)" RECIPIENT_CONFLICT
        " RETURNING " RECIPIENT_RETURNING,
    /* The same for all of a batch's recipients, a column an array each, in their order: each
     * row returned with its place in the arrays (ord, from 1). */
    [Q_RECIPIENTS_UPSERT] =
        "WITH v AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[],"
        " $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::text[],"
        " $11::text[], $12::bigint[]) WITH ORDINALITY AS v(" RECIPIENT_COLS ", ord)),"
        " u AS (INSERT INTO recipients AS r(" RECIPIENT_COLS ") SELECT " RECIPIENT_COLS
        " FROM v ORDER BY ord" RECIPIENT_CONFLICT
        " RETURNING r.campaign, r.recipient, " RECIPIENT_RETURNING
        ") SELECT v.ord, u.views, u.first_client, u.first_network,"
        " u.first_human_at, u.forward_clients FROM u JOIN v ON v.campaign COLLATE \"C\" ="
        " u.campaign AND v.recipient COLLATE \"C\" = u.recipient",
    [Q_RECIPIENT_FORWARDED] = "UPDATE recipients SET forward_clients = $3"
                              " WHERE campaign = $1 AND recipient = $2",
    [Q_CLIENT_INSERT] = "INSERT INTO clients(campaign, client) VALUES($1, $2)"
                        " ON CONFLICT DO NOTHING RETURNING 1",
    [Q_CAMPAIGN_COUNT] =
        "UPDATE campaigns SET total_views = total_views + $2,"
        " unique_views = unique_views + $3, human = human + $4, proxy = proxy + $5,"
        " machine = machine + $6, self = self + $7, clicks = clicks + $8,"
        " last_view_at = GREATEST(last_view_at, $9) WHERE id = $1",
    [Q_CAMPAIGN_CREATE] = "INSERT INTO campaigns(id, created_at) VALUES($1, $2)"
                          " ON CONFLICT DO NOTHING",
    [Q_CAMPAIGN_GET] = "SELECT " CAMPAIGN_COLS " FROM campaigns WHERE id = $1",
    [Q_ENGAGEMENT] = SP_STORE_ENGAGEMENT_SQL("$"),
    [Q_CAMPAIGN_LIST] = "SELECT " CAMPAIGN_COLS " FROM campaigns"
                        " ORDER BY GREATEST(last_view_at, created_at) DESC, id",
    /* A NULL limit is no limit, as SQLite reads a negative one. */
    [Q_RECIPIENTS] = "SELECT recipient, human, proxy, machine, self, clicks, first_at, last_at"
                     " FROM recipients WHERE campaign = $1 AND recipient > $2"
                     " ORDER BY recipient LIMIT $3",
    [Q_EVENTS] = NULL, /* made from the field table: made_sql */
    [Q_EXPORT] = NULL,
    [Q_EXPORT_AGENTS] = "SELECT id, text FROM agents WHERE id = ANY($1::bigint[])",
    [Q_EXPORT_SETS] = "SELECT id, text FROM header_sets WHERE id = ANY($1::bigint[])",
    [Q_PURGE] = "WITH d AS (DELETE FROM events WHERE ts < $1 RETURNING agent, header_set)"
                " SELECT count(*), " GONE_IDS " FROM d",
    /* forget locks rows in the writer's order (recipients by campaign and recipient, then
     * campaigns by ID), so that it and the writers of several servers never deadlock. */
    [Q_FORGET_LOCK] = "SELECT campaign FROM recipients WHERE " SP_QUERY_RECIPIENT_CAMPAIGNS(
        "$1") " ORDER BY campaign FOR UPDATE",
    /* One statement, one snapshot: the counts taken out are those of the row deleted. */
    [Q_FORGET_COUNTS] =
        "WITH r AS (DELETE FROM recipients WHERE campaign = $1 AND recipient = $2 RETURNING *)"
        " UPDATE campaigns c SET total_views = c.total_views - " SP_TALLY_VIEWS_SQL(
            "r.") ","
                  " unique_views = c.unique_views - CASE WHEN " SP_TALLY_VIEWS_SQL(
                      "r.") " > 0"
                            " THEN 1 ELSE 0 END,"
                            " human = c.human - r.human, proxy = c.proxy - r.proxy,"
                            " machine = c.machine - r.machine, self = c.self - r.self, clicks "
                            "= "
                            "c.clicks - r.clicks"
                            " FROM r WHERE c.id = r.campaign",
    /* recipient <> '' (forget refuses "") lets a generic plan, which cannot see $2, use the
     * partial index events_campaign_recipient. */
    [Q_FORGET_EVENTS] = "WITH d AS (DELETE FROM events WHERE campaign = $1 AND recipient = $2"
                        " AND recipient <> '' RETURNING agent, header_set)"
                        " SELECT count(*), " GONE_IDS " FROM d",
    /* The campaign's row first, before anything a writer locks after its KEY SHARE of it. */
    [Q_CAMPAIGN_LOCK] = "SELECT 1 FROM campaigns WHERE id = $1 FOR UPDATE",
    [Q_CAMPAIGN_DELETE_EVENTS] =
        "WITH d AS (DELETE FROM events WHERE campaign = $1"
        " RETURNING agent, header_set) SELECT count(*), " GONE_IDS " FROM d",
    [Q_CAMPAIGN_DELETE] = "WITH r AS (DELETE FROM recipients WHERE campaign = $1),"
                          " c AS (DELETE FROM clients WHERE campaign = $1),"
                          " i AS (DELETE FROM images WHERE campaign = $1),"
                          " rc AS (DELETE FROM rollup_counts WHERE campaign = $1),"
                          " rv AS (DELETE FROM rollup_values WHERE campaign = $1),"
                          " rd AS (DELETE FROM rollup_days WHERE campaign = $1),"
                          " rt AS (DELETE FROM rollup_totals WHERE campaign = $1),"
                          " rp AS (DELETE FROM rollup_people WHERE campaign = $1),"
                          " rh AS (DELETE FROM rollup_people_hours WHERE campaign = $1),"
                          " st AS (DELETE FROM sent_to WHERE campaign = $1),"
                          " tr AS (DELETE FROM trackers WHERE campaign = $1)"
                          " DELETE FROM campaigns WHERE id = $1",
    [Q_USER_PUT] = "INSERT INTO users(name, pwhash, created_at) VALUES($1, $2, $3)"
                   " ON CONFLICT(name) DO UPDATE SET pwhash = excluded.pwhash",
    [Q_USER_UPDATE] = "UPDATE users SET pwhash = $2 WHERE name = $1",
    [Q_USER_GET] = "SELECT pwhash FROM users WHERE name = $1",
    [Q_USER_DELETE] = "DELETE FROM users WHERE name = $1",
    [Q_USER_LIST] = "SELECT name, created_at,"
                    " (SELECT count(*) FROM sessions WHERE \"user\" = u.name AND expires_at > $1),"
                    " (SELECT count(*) FROM api_tokens WHERE owner = u.name)"
                    " FROM users u ORDER BY name",
    [Q_USER_SESSIONS_END] = "DELETE FROM sessions WHERE \"user\" = $1",
    [Q_USER_TOKENS_END] = "DELETE FROM api_tokens WHERE owner = $1",
    [Q_TOKEN_PUT] = "INSERT INTO api_tokens(hash, name, owner, created_at) VALUES($1, $2, $3, $4)",
    [Q_TOKEN_GET] = "SELECT name FROM api_tokens WHERE hash = $1",
    [Q_TOKEN_LIST] = "SELECT substr(hash, 1, " SP_STORE_TOKEN_ID_TEXT "), name, owner, created_at"
                     " FROM api_tokens ORDER BY created_at, hash",
    [Q_TOKEN_REVOKE] = "DELETE FROM api_tokens WHERE substr(hash, 1, " SP_STORE_TOKEN_ID_TEXT
                       ") = $1 OR name = $1",
    [Q_SESSION_PURGE] = "DELETE FROM sessions WHERE expires_at < $1",
    [Q_SESSION_PUT] = "INSERT INTO sessions(hash, \"user\", csrf, expires_at)"
                      " VALUES($1, $2, $3, $4)",
    [Q_SESSION_GET] = "SELECT \"user\", csrf FROM sessions WHERE hash = $1 AND expires_at > $2",
    [Q_SESSION_DELETE] = "DELETE FROM sessions WHERE hash = $1",
    [Q_META_GET] = "SELECT value FROM meta WHERE key = $1",
    [Q_META_PUT_NEW] = "INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT DO NOTHING",
    [Q_MARK] = "INSERT INTO meta(key, value) VALUES($1, $2)"
               " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [Q_UNKNOWN_COUNT] = "SELECT COUNT(*) FROM unknown_campaigns",
    [Q_UNKNOWN_KEEP] = "INSERT INTO unknown_events(campaign, ts, recipient, record)"
                       " VALUES($1, $2, $3, $4)",
    [Q_UNKNOWN_UPSERT] = "INSERT INTO unknown_campaigns AS u(id, opens, first_at, last_at) "
                         "VALUES($1, $2, $3, $4)"
                         " ON CONFLICT(id) DO UPDATE SET opens = u.opens + excluded.opens,"
                         " first_at = LEAST(u.first_at, excluded.first_at),"
                         " last_at = GREATEST(u.last_at, excluded.last_at)",
    /* The newest $2 stay. */
    [Q_UNKNOWN_TRIM] = "DELETE FROM unknown_events WHERE id IN (SELECT id FROM unknown_events"
                       " WHERE campaign = $1 ORDER BY id DESC OFFSET $2)",
    [Q_ADOPT_TAKE] = "DELETE FROM unknown_events WHERE id = $1 AND campaign = $2 RETURNING 1",
    /* Once the last of its kept opens is adopted. */
    [Q_ADOPT_DONE] = "DELETE FROM unknown_campaigns WHERE id = $1"
                     " AND NOT EXISTS (SELECT 1 FROM unknown_events WHERE campaign = $1)",
    /* A read into its open (sp_tally_read_params), the earliest of its key not yet read. */
    [Q_READ_FOLD] = "UPDATE events SET read_ms = $5,"
                    " engagement = CASE WHEN class = $6 THEN $7 ELSE $8 END"
                    " WHERE ts = $1 AND id = (SELECT id FROM events WHERE ts = $1"
                    " AND campaign = $2 AND recipient = $3 AND visitor = $4 AND kind = 0"
                    " AND read_ms IS NULL"
                    " ORDER BY id LIMIT 1) RETURNING id, class",
    [Q_UNKNOWN_LIST] = "SELECT id, opens, first_at, last_at FROM unknown_campaigns"
                       " ORDER BY last_at DESC, id",
    [Q_UNKNOWN_OPENS] = "SELECT id, record FROM unknown_events WHERE campaign = $1 ORDER BY id",
    [Q_UNKNOWN_DELETE] = "WITH e AS (DELETE FROM unknown_events WHERE campaign = $1 RETURNING 1),"
                         " u AS (DELETE FROM unknown_campaigns WHERE id = $1 RETURNING 1)"
                         " SELECT (SELECT COUNT(*) FROM e) + (SELECT COUNT(*) FROM u)",
    /* An unknown campaign goes with its last open: every kept one is older. */
    [Q_UNKNOWN_PURGE] = "WITH e AS (DELETE FROM unknown_events WHERE ts < $1 RETURNING 1),"
                        " u AS (DELETE FROM unknown_campaigns WHERE last_at < $1)"
                        " SELECT COUNT(*) FROM e",
    /* A recipient's kept opens of unknown campaigns (a scan, but of a bounded table): out of
     * the counts, then erased. */
    [Q_FORGET_UNKNOWN] =
        "WITH e AS (DELETE FROM unknown_events WHERE recipient = $1 RETURNING campaign),"
        " n AS (SELECT campaign, COUNT(*) AS opens FROM e GROUP BY campaign),"
        " u AS (UPDATE unknown_campaigns c SET opens = c.opens - n.opens FROM n"
        " WHERE c.id = n.campaign)"
        " SELECT COUNT(*) FROM e",
    /* Apart: a statement cannot delete a row it updates. */
    [Q_FORGET_UNKNOWN_EMPTY] = "DELETE FROM unknown_campaigns WHERE opens <= 0",
    [Q_TRACKER_PUT] = "INSERT INTO trackers(campaign, recipient, kind, target, url, created_at)"
                      " VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    [Q_TRACKERS] = "SELECT id, campaign, recipient, kind, target, url, created_at FROM trackers"
                   " WHERE campaign = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
    [Q_LINKS] = NULL, /* made_sql: the counting rule's SQL */
    [Q_CAMPAIGN_ARCHIVE] = "UPDATE campaigns SET archived = $2 WHERE id = $1",
    [Q_SENT_DELETE] = "DELETE FROM sent_to WHERE campaign = $1",
    /* The rows a batch adds to the rollups (sp_rollup_batch), a column an array each, in key
     * order. */
    [Q_ROLLUP_COUNTS] = "INSERT INTO rollup_counts AS r(campaign, quarter, human, proxy, machine,"
                        " self, clicks) SELECT * FROM unnest($1::text[], $2::bigint[],"
                        " $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])"
                        " ON CONFLICT(campaign, quarter) DO UPDATE SET human = r.human +"
                        " excluded.human, proxy = r.proxy + excluded.proxy, machine = r.machine +"
                        " excluded.machine, self = r.self + excluded.self,"
                        " clicks = r.clicks + excluded.clicks",
    /* A text's ID (intern.h), added when new. */
    [Q_AGENT_INTERN] = INTERN_SQL("agents"),
    [Q_SET_INTERN] = INTERN_SQL("header_sets"),
    /* The number of text deletions the writer's cache is as of, read as a batch begins, and
     * checked before it commits (intern.h). */
    [Q_INTERN_GEN] = "SELECT value FROM meta WHERE key = '" SP_INTERN_GEN_KEY "'",
    [Q_INTERN_CHECK] = "SELECT spypixel_intern_check($1)",
    /* The texts of IDs $1 (agents) and $2 (header sets) that no event names, with the number
     * of deletions moved on when any went. Through events_agent and events_header_set: a
     * lookup per ID and partition. */
    [Q_INTERN_GC] =
        "WITH a AS (DELETE FROM agents WHERE id = ANY($1::bigint[]) AND NOT EXISTS"
        " (SELECT 1 FROM events WHERE agent IS NOT NULL AND agent = agents.id) RETURNING 1),"
        " h AS (DELETE FROM header_sets WHERE id = ANY($2::bigint[]) AND NOT EXISTS"
        " (SELECT 1 FROM events WHERE header_set IS NOT NULL AND header_set = header_sets.id)"
        " RETURNING 1)"
        " INSERT INTO meta(key, value) SELECT '" SP_INTERN_GEN_KEY "', '1'"
        " WHERE EXISTS (SELECT 1 FROM a) OR EXISTS (SELECT 1 FROM h)"
        " ON CONFLICT(key) DO UPDATE SET value = (meta.value::bigint + 1)::text",
    /* With them, dims 1-6 to their days' and totals' rows and dims 0 and 7 to their people's
     * hours (rollup.h), each in key order too; a person's row is updated only when the batch
     * moves its hours, and rollup_people's triggers add what was inserted and moved to
     * rollup_people_hours (schema 20). */
    [Q_ROLLUP_VALUES] =
        "WITH v AS (SELECT * FROM unnest($1::text[], $2::integer[], $3::bigint[], $4::text[],"
        " $5::bigint[]) AS v(campaign, dim, hour, value, n)),"
        " d AS (INSERT INTO rollup_days AS r(campaign, dim, day, value, n)"
        " SELECT campaign, dim, hour / 24, value, SUM(n) FROM v WHERE dim BETWEEN 1 AND 6"
        " GROUP BY campaign, dim, hour / 24, value"
        " ORDER BY campaign COLLATE \"C\", dim, hour / 24, value COLLATE \"C\""
        " ON CONFLICT(campaign, dim, day, value) DO UPDATE SET n = r.n + excluded.n),"
        " t AS (INSERT INTO rollup_totals AS r(campaign, dim, value, n)"
        " SELECT campaign, dim, value, SUM(n) FROM v WHERE dim BETWEEN 1 AND 6"
        " GROUP BY campaign, dim, value ORDER BY campaign COLLATE \"C\", dim, value COLLATE \"C\""
        " ON CONFLICT(campaign, dim, value) DO UPDATE SET n = r.n + excluded.n),"
        " p AS (INSERT INTO rollup_people AS r(campaign, dim, who, first_hour, last_hour)"
        " SELECT campaign, dim, value, MIN(hour), MAX(hour) FROM v WHERE dim IN (0, 7)"
        " GROUP BY campaign, dim, value ORDER BY campaign COLLATE \"C\", dim,"
        " value COLLATE \"C\" ON CONFLICT(campaign, dim, who) DO UPDATE"
        " SET first_hour = LEAST(r.first_hour, excluded.first_hour),"
        " last_hour = GREATEST(r.last_hour, excluded.last_hour)"
        " WHERE excluded.first_hour < r.first_hour OR excluded.last_hour > r.last_hour)"
        " INSERT INTO rollup_values AS r(campaign, dim, hour, value, n) SELECT * FROM v"
        " ON CONFLICT(campaign, dim, hour, value) DO UPDATE SET n = r.n + excluded.n",
    [Q_REPORT_LIFE] = "SELECT (SELECT MIN(quarter) FROM rollup_counts WHERE campaign = $1),"
                      " (SELECT MAX(quarter) FROM rollup_counts WHERE campaign = $1)",
    /* What the rows counted in rollup_people_hours goes with them (one UPDATE: a first and a
     * last hour may be one row). */
    [Q_FORGET_ROLLUP_PEOPLE] =
        "WITH p AS (DELETE FROM rollup_people WHERE campaign = $1 AND dim IN (0, 7) AND who = $2"
        " RETURNING dim, first_hour, last_hour)"
        " UPDATE rollup_people_hours h SET firsts = h.firsts - d.f, lasts = h.lasts - d.l"
        " FROM (SELECT dim, hour, SUM(f) AS f, SUM(l) AS l FROM (SELECT dim, first_hour AS hour,"
        " 1 AS f, 0 AS l FROM p UNION ALL SELECT dim, last_hour, 0, 1 FROM p) x"
        " GROUP BY dim, hour) d WHERE h.campaign = $1 AND h.dim = d.dim AND h.hour = d.hour",
    /* The IDs in one array: one statement for a list of any length. */
    [Q_SENT_INSERT] = "INSERT INTO sent_to(campaign, recipient) SELECT $1, unnest($2::text[])"
                      " ON CONFLICT DO NOTHING",
    [Q_SENT_STATS] = "SELECT COUNT(*), COALESCE(SUM(CASE WHEN " SP_TALLY_VIEWS_SQL(
        "r.") " > 0 THEN 1 ELSE 0 END), 0),"
              " COALESCE(SUM(CASE WHEN r.clicks > 0 THEN 1 ELSE 0 END), 0)"
              " FROM sent_to t LEFT JOIN recipients r"
              " ON r.campaign = t.campaign AND r.recipient = t.recipient WHERE t.campaign = $1",
    [Q_NOT_OPENED] = "SELECT t.recipient FROM sent_to t LEFT JOIN recipients r"
                     " ON r.campaign = t.campaign AND r.recipient = t.recipient"
                     " WHERE t.campaign = $1 AND t.recipient > $2"
                     " AND COALESCE(" SP_TALLY_VIEWS_SQL("r.") ", 0) = 0"
                                                               " ORDER BY t.recipient LIMIT $3",
};

/* The statements above name the four class columns. */
_Static_assert(4 == SP_CLASS_COUNT, "a class needs its columns (a migration) and its place here");

/* The events' INSERT and SELECT, made once from the field table. */
static char made_sql[Q_COUNT][8192];
static char backfill_sql[2][8192]; /* schema 7: the rollups of every event stored before */
static pthread_once_t made_once = PTHREAD_ONCE_INIT;

/* A field's column type (event_fields.h). */
static const char *pg_type(sp_field_kind_t kind)
{
    switch (kind) {
    case SP_FIELD_KIND:
    case SP_FIELD_CLASS:
        return "integer";
    case SP_FIELD_ID:
    case SP_FIELD_TIME:
    case SP_FIELD_DURATION:
        return "bigint";
    case SP_FIELD_COORD:
        return "double precision";
    case SP_FIELD_TEXT:
    case SP_FIELD_TEXT_OR_NULL:
    case SP_FIELD_OBJECT:
        break;
    }
    return "text";
}

static void make_sql(void)
{
    char cols[1024], params[512];
    sp_event_fields_sql(cols, sizeof(cols), false, params, sizeof(params), '$');
    snprintf(made_sql[Q_EVENT_INSERT], sizeof(made_sql[0]),
             "INSERT INTO events(%s, agent, header_set, header_addrs) VALUES(%s, $%d, $%d, $%d)"
             " RETURNING id",
             cols, params, SP_EVENT_N_FIELDS, SP_EVENT_N_FIELDS + 1, SP_EVENT_N_FIELDS + 2);
    sp_event_fields_sql(cols, sizeof(cols), true, NULL, 0, '$');
    /* Every field of a batch's events, a column an array (unnest reads them side by side). */
    char arrays[2048];
    size_t at = 0;
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
        at += (size_t)snprintf(arrays + at, sizeof(arrays) - at, "%s$%zu::%s[]", i ? ", " : "",
                               i + 1, pg_type(sp_event_fields[i].kind));
    /* And the interned texts' IDs and the apart values (intern.h), as Q_EVENT_INSERT's. */
    at += (size_t)snprintf(arrays + at, sizeof(arrays) - at,
                           ", $%d::bigint[], $%d::bigint[], $%d::text[]", SP_EVENT_N_FIELDS + 1,
                           SP_EVENT_N_FIELDS + 2, SP_EVENT_N_FIELDS + 3);
    assert(at < sizeof(arrays));
    snprintf(made_sql[Q_EVENTS_INSERT], sizeof(made_sql[0]),
             "INSERT INTO events(%s, agent, header_set, header_addrs) SELECT * FROM unnest(%s)",
             cols, arrays);
    sp_intern_select_sql(cols, sizeof(cols));
    /* A NULL limit is no limit, as SQLite reads a negative one. */
    snprintf(made_sql[Q_EVENTS], sizeof(made_sql[0]),
             "SELECT %s FROM events WHERE campaign = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
             cols);
    /* An export's pages: the interned texts' IDs, which the reading looks up once each. */
    sp_event_fields_sql(cols, sizeof(cols), true, NULL, 0, '$');
    snprintf(made_sql[Q_EXPORT], sizeof(made_sql[0]),
             "SELECT %s, header_addrs, agent, header_set FROM events WHERE campaign = $1 AND"
             " id < $2 ORDER BY id DESC LIMIT $3",
             cols);
    /* The rollups (rollup.h): what forget takes out (recipient $2 of campaign $1), and the
     * report's queries. */
    sp_rollup_add_sql(made_sql[Q_FORGET_ROLLUP_COUNTS], made_sql[Q_FORGET_ROLLUP_VALUES],
                      sizeof(made_sql[0]), "campaign = $1 AND recipient = $2 AND recipient <> ''",
                      -1, true, true);
    sp_rollup_days_sql(made_sql[Q_FORGET_ROLLUP_DAYS], made_sql[Q_FORGET_ROLLUP_TOTALS],
                       sizeof(made_sql[0]), "campaign = $1 AND recipient = $2 AND recipient <> ''",
                       -1, true);
    sp_rollup_report_sql(made_sql[Q_REPORT_COUNTS], made_sql[Q_REPORT_VALUES],
                         made_sql[Q_REPORT_DISTINCT], made_sql[Q_REPORT_PEOPLE],
                         made_sql[Q_REPORT_OUTSIDE], sizeof(made_sql[0]), true);
    sp_tally_links_sql(made_sql[Q_LINKS], sizeof(made_sql[0]), '$');
    sp_rollup_add_sql(backfill_sql[0], backfill_sql[1], sizeof(backfill_sql[0]), "true", 1, true,
                      true);
}

static const char *statement_sql(int q)
{
    return query_sql[q] ? query_sql[q] : made_sql[q];
}

struct pg_store {
    sp_store_t base;
    PGconn *conn;
    bool prepared;           /* the statements exist on this connection */
    sp_store_failure_t last; /* what the last failed call met */
    char sqlstate[6];        /* and its SQLSTATE, "" when the server sent none */
    bool faulted;            /* the database reported damage: this connection writes no more */
    char why[256];
    /* The writer's interned texts by ID (intern.h), made on its first batch, and the number of
     * text deletions they are as of (Q_INTERN_GEN). */
    sp_intern_t *agents, *sets;
    char intern_gen[24];
    int64_t weeks[PARTITIONS_KNOWN]; /* weeks (their first ms) whose partition exists */
    size_t n_weeks, next_week;
    int64_t partition_retry_at; /* making one failed: not again before then */
    /* Coordinates as the events' insert writes them (COORDS_SLOTS, made on first use): a
     * batch's come from a few places, and %.17g is most of a row's formatting. */
    struct coord_text {
        double v;
        char text[32];
    } * coords;
};

/* What a failure with SQLSTATE (NULL when the server sent none: the connection is gone or
 * broken) means for the caller. Damage (XX001 data_corrupted, XX002 index_corrupted) is a
 * fault; a lost connection, a conflict, the server out of resources or shutting down, an
 * I/O error of its own, a lock not available are retried; the rest is about the data. */
static sp_store_failure_t classify_failure(const char *sqlstate)
{
    if (!sqlstate || !sqlstate[0])
        return SP_STORE_FAIL_RETRY;
    if (0 == strcmp(sqlstate, "XX001") || 0 == strcmp(sqlstate, "XX002"))
        return SP_STORE_FAIL_FAULT;
    static const char *const retry_classes[] = {"08", "40", "53", "57", "58"};
    for (size_t i = 0; i < sizeof(retry_classes) / sizeof(retry_classes[0]); i++)
        if (0 == strncmp(sqlstate, retry_classes[i], 2))
            return SP_STORE_FAIL_RETRY;
    return 0 == strcmp(sqlstate, "55P03") ? SP_STORE_FAIL_RETRY : SP_STORE_FAIL_DATA;
}

/* ---- errors, parameters, statements -------------------------------------------------------- */

/* Fills ERR from RES, else from the connection, as one line; returns -1. */
static int set_err(pg_store_t *s, char *err, size_t errlen, const char *what, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    s->last = classify_failure(state);
    snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", state ? state : "");
    if (!msg[0])
        msg = PQerrorMessage(s->conn);
    if (!msg[0])
        msg = "unknown error";
    if (SP_STORE_FAIL_FAULT == s->last && !s->faulted) {
        s->faulted = true;
        snprintf(s->why, sizeof(s->why), "the store is damaged: postgres: %s: %s", what, msg);
        for (char *c = s->why; *c; c++)
            if ('\n' == *c || '\r' == *c || '\t' == *c)
                *c = ' ';
    }
    snprintf(err, errlen, "postgres: %s: %s", what, msg);
    if (!err || !errlen)
        return -1;
    /* libpq's messages end in a newline and may span lines; a log line wants one. */
    char *o = err;
    for (const char *c = err; *c; c++) {
        char ch = '\n' == *c || '\r' == *c || '\t' == *c ? ' ' : *c;
        if (' ' != ch || (o > err && ' ' != o[-1]))
            *o++ = ch;
    }
    if (o > err && ' ' == o[-1])
        o--;
    *o = '\0';
    return -1;
}

/* The events' INSERT has the most: every field but the ID, and the interned IDs and apart values
 * (intern.h). */
#define MAX_PARAMS (SP_EVENT_N_FIELDS + 3)

/* A statement's parameters, all in text form; text is made valid UTF-8 on the way in. */
typedef struct {
    const char *v[MAX_PARAMS];
    char *owned[MAX_PARAMS];
    char num[MAX_PARAMS][32];
    int n;
} params_t;

/* V in decimal into OUT (21 bytes at least) with its NUL, as "%lld" writes it (without printf,
 * a tenth of its cost: the writer formats a few numbers per event); returns its length. */
static size_t int_text(char *out, int64_t v)
{
    char num[24], *at = num + sizeof(num);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do
        *--at = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--at = '-';
    size_t n = (size_t)(num + sizeof(num) - at);
    memcpy(out, at, n);
    out[n] = '\0';
    return n;
}

static void p_text(params_t *p, const char *s) /* NULL binds SQL NULL */
{
    p->owned[p->n] = s ? sp_utf8_clean(s) : NULL;
    p->v[p->n] = p->owned[p->n] ? p->owned[p->n] : s;
    p->n++;
}

static void p_int(params_t *p, int64_t v)
{
    int_text(p->num[p->n], v);
    p->owned[p->n] = NULL;
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void p_double(params_t *p, double v)
{
    snprintf(p->num[p->n], sizeof(p->num[0]), "%.17g", v);
    p->owned[p->n] = NULL;
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void p_null(params_t *p)
{
    p_text(p, NULL);
}

static void p_clear(params_t *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->owned[i]);
    p->n = 0;
}

static void stmt_name(int q, char *buf, size_t len)
{
    if (len < 8 || q < 0 || q > 99999)
        abort(); /* the statements and the callers' buffers are fixed: a bug */
    buf[0] = 's';
    buf[1] = 'p';
    int_text(buf + 2, q);
}

static int64_t get_i64(const PGresult *res, int row, int col)
{
    return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* Runs SQL (no parameters); 0 or -1 with ERR. */
static int exec_sql(pg_store_t *s, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int ret =
        PGRES_COMMAND_OK == st || PGRES_TUPLES_OK == st ? 0 : set_err(s, err, errlen, what, res);
    PQclear(res);
    return ret;
}

static void rollback(pg_store_t *s)
{
    if (CONNECTION_OK == PQstatus(s->conn) && PQTRANS_IDLE != PQtransactionStatus(s->conn))
        PQclear(PQexec(s->conn, "ROLLBACK"));
}

/* Runs prepared statement Q with P (then cleared). Its result when it succeeded, else NULL and
 * ERR. */
static PGresult *exec_q(pg_store_t *s, int q, params_t *p, const char *what, char *err,
                        size_t errlen)
{
    char name[16];
    stmt_name(q, name, sizeof(name));
    PGresult *res = PQexecPrepared(s->conn, name, p->n, p->v, NULL, NULL, 0);
    p_clear(p);
    ExecStatusType st = PQresultStatus(res);
    if (PGRES_COMMAND_OK == st || PGRES_TUPLES_OK == st)
        return res;
    set_err(s, err, errlen, what, res);
    PQclear(res);
    return NULL;
}

/* exec_q, the statement's text sent as an unnamed statement: planned for these parameters. */
static PGresult *exec_q_planned(pg_store_t *s, int q, params_t *p, const char *what, char *err,
                                size_t errlen)
{
    PGresult *res = PQexecParams(s->conn, statement_sql(q), p->n, NULL, p->v, NULL, NULL, 0);
    p_clear(p);
    ExecStatusType st = PQresultStatus(res);
    if (PGRES_COMMAND_OK == st || PGRES_TUPLES_OK == st)
        return res;
    set_err(s, err, errlen, what, res);
    PQclear(res);
    return NULL;
}

static int prepare_all(pg_store_t *s, char *err, size_t errlen)
{
    /* A half-done earlier attempt on this connection would make the names clash. */
    if (0 != exec_sql(s, "DEALLOCATE ALL", "prepare", err, errlen))
        return -1;
    for (int q = 0; q < Q_COUNT; q++) {
        char name[16];
        stmt_name(q, name, sizeof(name));
        PGresult *res = PQprepare(s->conn, name, statement_sql(q), 0, NULL);
        int bad = PGRES_COMMAND_OK != PQresultStatus(res);
        if (bad)
            set_err(s, err, errlen, "prepare", res);
        PQclear(res);
        if (bad)
            return -1;
    }
    s->prepared = true;
    return 0;
}

/* Every call starts here. A connection lost during the last call is reset once; the call fails
 * when that fails too, and the next one tries again (the writer retries its batches). */
static int ready(pg_store_t *s, char *err, size_t errlen)
{
    /* A pipeline that could not be ended leaves results nobody will read: start afresh. */
    bool stuck = CONNECTION_OK == PQstatus(s->conn) &&
                 PQ_PIPELINE_OFF != PQpipelineStatus(s->conn) && !PQexitPipelineMode(s->conn);
    if (stuck || CONNECTION_OK != PQstatus(s->conn)) {
        s->prepared = false;
        PQreset(s->conn);
        if (CONNECTION_OK != PQstatus(s->conn))
            return set_err(s, err, errlen, "reconnect", NULL);
    }
    rollback(s); /* left open by a call that failed before its own rollback could run */
    if (!s->prepared)
        return prepare_all(s, err, errlen);
    return 0;
}

/* ---- partitions of events ------------------------------------------------------------------ */

static int64_t week_of(int64_t ts)
{
    int64_t d = ts - MONDAY_MS, k = d / WEEK_MS;
    if (d % WEEK_MS < 0)
        k--;
    return k * WEEK_MS + MONDAY_MS;
}

/* events_wYYYYMMDD, by the date of the week's Monday. */
static void week_name(int64_t week, char *buf, size_t len)
{
    time_t t = (time_t)(week / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "events_w%04d%02d%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100);
}

/* Runs SQL and tells whether its first value is true; -1 with ERR. */
static int query_bool(pg_store_t *s, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexec(s->conn, sql);
    int ret = PGRES_TUPLES_OK == PQresultStatus(res)
                  ? PQntuples(res) > 0 && 't' == PQgetvalue(res, 0, 0)[0]
                  : set_err(s, err, errlen, what, res);
    PQclear(res);
    return ret;
}

/* Makes WEEK's partition unless one exists or another partition covers it (events_legacy),
 * in a transaction of its own: a batch's transaction never waits on DDL. The week's rows kept
 * in events_default meanwhile move into it. 0 made or there, 1 a failure that may pass (a lock
 * that did not come in time: a long read of events holds one), -1 another, with ERR. */
static int make_partition(pg_store_t *s, int64_t week, char *err, size_t errlen)
{
    char name[64], sql[1024];
    week_name(week, name, sizeof(name));
    if (0 != exec_sql(s, "BEGIN", "partition", err, errlen))
        return -1;
    snprintf(sql, sizeof(sql), "SELECT to_regclass('%s') IS NOT NULL", name);
    int there;
    if (0 != exec_sql(s, PARTITION_LOCK_TIMEOUT, "partition", err, errlen) ||
        0 != exec_sql(s, "SELECT pg_advisory_xact_lock(" PARTITION_LOCK ")", "partition", err,
                      errlen) ||
        0 > (there = query_bool(s, sql, "partition", err, errlen)))
        goto fail;
    if (!there) {
        /* ATTACH takes a lock on events that lets its reads and writes go on (SHARE UPDATE
         * EXCLUSIVE), where CREATE TABLE ... PARTITION OF would stop them. */
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE %s (LIKE events INCLUDING DEFAULTS);"
                 "WITH m AS (DELETE FROM events_default WHERE ts >= %lld AND ts < %lld"
                 " RETURNING *) INSERT INTO %s SELECT * FROM m;"
                 "ALTER TABLE events ATTACH PARTITION %s FOR VALUES FROM (%lld) TO (%lld)",
                 name, (long long)week, (long long)(week + WEEK_MS), name, name, (long long)week,
                 (long long)(week + WEEK_MS));
        if (0 != exec_sql(s, sql, "partition", err, errlen))
            goto fail;
    }
    if (0 != exec_sql(s, "COMMIT", "partition", err, errlen))
        goto fail;
    return 0;
fail:
    rollback(s);
    /* Another partition covers the week (it would overlap: invalid_object_definition). */
    if (0 == strcmp(s->sqlstate, "42P17"))
        return 0;
    return SP_STORE_FAIL_RETRY == s->last ? 1 : -1;
}

static bool week_known(const pg_store_t *s, int64_t week)
{
    for (size_t i = 0; i < s->n_weeks; i++)
        if (s->weeks[i] == week)
            return true;
    return false;
}

/* Remembers that WEEK's partition exists. */
static void week_made(pg_store_t *s, int64_t week)
{
    if (week_known(s, week))
        return;
    s->weeks[s->next_week] = week;
    s->next_week = (s->next_week + 1) % PARTITIONS_KNOWN;
    if (s->n_weeks < PARTITIONS_KNOWN)
        s->n_weeks++;
}

/* The partitions of the weeks the batch's events fall in, and of the week after this one,
 * made where this connection has not seen them yet. One that cannot be made now (its lock did
 * not come in time, or the role may not create tables) leaves the rows to events_default, and
 * is tried again PARTITION_RETRY_MS later: the batch goes on, as its insert cannot fail for
 * want of a partition. Only a lost connection fails it (the batch would fail on it anyway). */
static int ensure_partitions(pg_store_t *s, sp_event_t *const *evs, size_t n, char *err,
                             size_t errlen)
{
    int64_t now = sp_now_ms(), this_week = week_of(now);
    if (now < s->partition_retry_at)
        return 0;
    for (size_t i = 0; i <= n + 1; i++) {
        int64_t week;
        if (i < n) {
            int64_t ts = evs[i]->ts_ms;
            if (SP_EVENT_READ == evs[i]->kind || ts < now - PARTITION_PAST_MS ||
                ts >= now + PARTITION_AHEAD_MS)
                continue;
            week = week_of(ts);
        } else {
            week = i == n ? this_week : this_week + WEEK_MS;
        }
        if (week_known(s, week))
            continue;
        int made = make_partition(s, week, err, errlen);
        if (made != 0 && CONNECTION_OK != PQstatus(s->conn))
            return -1;
        if (made != 0) {
            s->partition_retry_at = now + PARTITION_RETRY_MS;
            return 0;
        }
        week_made(s, week);
    }
    return 0;
}

/*
 * Rows wait in events_default while their week's partition cannot be made (its lock not granted
 * in time, the role may not create tables), and until a batch reaches that week again. The
 * writer's upkeep finds one such row a week at a time (a read that stops at the first row of
 * the weeks a partition may hold) and makes its week's partition, which moves the week's rows
 * into it; then it counts what stays, rows dated outside those weeks among them, stopping at
 * SP_STORE_DEFAULT_ROWS_MAX.
 */
#define UPKEEP_WEEKS 16 /* weeks made by one upkeep at most */

static int pg_upkeep(sp_store_t *base, int64_t *default_rows, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    char sql[256];
    *default_rows = -1;
    if (s->faulted || 0 != ready(s, err, errlen))
        return s->faulted ? 0 : -1;
    int64_t now = sp_now_ms(), last = INT64_MIN;
    for (int i = 0; i < UPKEEP_WEEKS && now >= s->partition_retry_at; i++) {
        snprintf(sql, sizeof(sql),
                 "SELECT ts FROM events_default WHERE ts >= %lld AND ts < %lld"
                 " LIMIT 1",
                 (long long)(now - PARTITION_PAST_MS), (long long)(now + PARTITION_AHEAD_MS));
        PGresult *res = PQexec(s->conn, sql);
        if (PGRES_TUPLES_OK != PQresultStatus(res)) {
            set_err(s, err, errlen, "upkeep", res);
            PQclear(res);
            return -1;
        }
        int64_t week = PQntuples(res) > 0 ? week_of(get_i64(res, 0, 0)) : last;
        PQclear(res);
        if (week == last) /* none left, or one another partition covers */
            break;
        last = week;
        int made = make_partition(s, week, err, errlen);
        if (made < 0 && CONNECTION_OK != PQstatus(s->conn))
            return -1;
        if (made != 0) {
            s->partition_retry_at = now + PARTITION_RETRY_MS;
            break;
        }
        week_made(s, week);
    }
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM (SELECT 1 FROM events_default LIMIT %d) d",
             SP_STORE_DEFAULT_ROWS_MAX);
    PGresult *res = PQexec(s->conn, sql);
    if (PGRES_TUPLES_OK != PQresultStatus(res)) {
        set_err(s, err, errlen, "upkeep", res);
        PQclear(res);
        return -1;
    }
    *default_rows = get_i64(res, 0, 0);
    PQclear(res);
    return 0;
}

/* The upper bound of a partition from its bound's text ("FOR VALUES FROM (...) TO ('N')"):
 * false for the default partition and an unbounded one. */
static bool partition_upper(const char *bound, int64_t *upper)
{
    const char *p = strstr(bound, " TO (");
    if (!p)
        return false;
    p += 5;
    if ('\'' == *p)
        p++;
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p)
        return false;
    *upper = v;
    return true;
}

/* The IDs of the texts deleted rows named, gathered across a transaction's statements: two
 * lists of numbers, as a PostgreSQL array's text without its braces. */
typedef struct {
    char *list[2]; /* agents, header sets */
    size_t len[2];
} gone_t;

/* Adds the arrays in columns COL and COL + 1 of RES's first row (GONE_IDS). */
static void gone_add(gone_t *g, const PGresult *res, int col)
{
    for (int k = 0; k < 2; k++) {
        if (PQntuples(res) < 1 || PQgetisnull(res, 0, col + k))
            continue;
        const char *a = PQgetvalue(res, 0, col + k);
        size_t n = strlen(a);
        if (n < 3 || '{' != a[0] || '}' != a[n - 1])
            continue;
        g->list[k] = realloc(g->list[k], g->len[k] + n);
        if (!g->list[k])
            abort();
        if (g->len[k])
            g->list[k][g->len[k]++] = ',';
        memcpy(g->list[k] + g->len[k], a + 1, n - 2);
        g->len[k] += n - 2;
        g->list[k][g->len[k]] = '\0';
    }
}

static void gone_free(gone_t *g)
{
    free(g->list[0]);
    free(g->list[1]);
}

/*
 * Deletes the texts of G that no event names any more, in the caller's transaction, which has
 * deleted the events. A writer may hold any of them in its cache and be about to commit events
 * naming it: each writer checks, as the last statement before its COMMIT and under INTERN_LOCK
 * shared, that the number of deletions is still the one its cache is as of (spypixel_intern_check),
 * and this takes the lock alone before it looks. So a writer either commits before this looks
 * (its events are seen: the text stays) or checks after this commits (the number moved: it rolls
 * back, empties its cache and writes the batch again). The wait is for commits in flight only:
 * a writer takes the lock after every other lock of its batch, so it never waits on this
 * transaction's rows while holding it.
 */
static int intern_gc(pg_store_t *s, const gone_t *g, const char *what, char *err, size_t errlen)
{
    if (!g->len[0] && !g->len[1])
        return 0;
    /* A probe of each ID's index in each partition (about 5 us each on the bench machine), never
     * the hash join of every event that the planner may take for a partitioned table it has no
     * statistics of (0.7 s at 300,000 events for ten agents): the transaction's last
     * statement, so the settings go with it. */
    if (0 != exec_sql(s,
                      "SELECT pg_advisory_xact_lock(" INTERN_LOCK ");"
                      "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off",
                      what, err, errlen))
        return -1;
    params_t p = {.n = 0};
    for (int k = 0; k < 2; k++) {
        size_t n = g->len[k];
        char *a = malloc(n + 3);
        if (!a)
            abort();
        a[0] = '{';
        if (n)
            memcpy(a + 1, g->list[k], n);
        a[n + 1] = '}';
        a[n + 2] = '\0';
        p.owned[p.n] = a;
        p.v[p.n++] = a;
    }
    PGresult *res = exec_q(s, Q_INTERN_GC, &p, what, err, errlen);
    PQclear(res);
    return res ? 0 : -1;
}

/* Drops the partitions of events that lie wholly before BEFORE_MS, adding their rows to
 * *DELETED. One whose lock does not come in time (a long read holds it) stays: the rows of
 * every partition that remains are deleted by the caller's DELETE. */
static int drop_partitions(pg_store_t *s, int64_t before_ms, int64_t *deleted, char *err,
                           size_t errlen)
{
    PGresult *rows = NULL;
    gone_t gone = {{NULL, NULL}, {0, 0}};
    if (0 != exec_sql(s, "BEGIN", "purge", err, errlen))
        return -1;
    /* The advisory lock first: a writer holds it for a moment, and retention runs hourly. */
    if (0 !=
            exec_sql(s, "SELECT pg_advisory_xact_lock(" PARTITION_LOCK ")", "purge", err, errlen) ||
        0 != exec_sql(s, PARTITION_LOCK_TIMEOUT, "purge", err, errlen))
        goto fail;
    rows = PQexec(s->conn, "SELECT quote_ident(c.relname), pg_get_expr(c.relpartbound, c.oid)"
                           " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                           " WHERE i.inhparent = 'events'::regclass");
    if (PGRES_TUPLES_OK != PQresultStatus(rows)) {
        set_err(s, err, errlen, "purge", rows);
        goto fail;
    }
    for (int i = 0; i < PQntuples(rows); i++) {
        int64_t upper;
        if (!partition_upper(PQgetvalue(rows, i, 1), &upper) || upper > before_ms)
            continue;
        char sql[256];
        if (0 != exec_sql(s, "SAVEPOINT p", "purge", err, errlen))
            goto fail;
        /* Its rows and the texts they name, in one scan that holds no lock on events. */
        snprintf(sql, sizeof(sql), "SELECT count(*), " GONE_IDS " FROM %s", PQgetvalue(rows, i, 0));
        PGresult *res = PQexec(s->conn, sql);
        int64_t n = PGRES_TUPLES_OK == PQresultStatus(res) ? get_i64(res, 0, 0) : -1;
        if (n < 0)
            set_err(s, err, errlen, "purge", res);
        snprintf(sql, sizeof(sql), "DROP TABLE %s", PQgetvalue(rows, i, 0));
        if (n >= 0 && 0 == exec_sql(s, sql, "purge", err, errlen)) {
            *deleted += n;
            gone_add(&gone, res, 1);
            PQclear(res);
            continue;
        }
        PQclear(res);
        if (SP_STORE_FAIL_RETRY != s->last ||
            0 != exec_sql(s, "ROLLBACK TO SAVEPOINT p", "purge", err, errlen))
            goto fail;
    }
    PQclear(rows);
    rows = NULL;
    /* Writers wait on the dropped partitions' lock on events meanwhile: none is checking. */
    if (0 != intern_gc(s, &gone, "purge", err, errlen))
        goto fail;
    gone_free(&gone);
    return exec_sql(s, "COMMIT", "purge", err, errlen);
fail:
    PQclear(rows);
    gone_free(&gone);
    rollback(s);
    return -1;
}

/* ---- writing -------------------------------------------------------------------------------- */

/* What becomes of one campaign's events in a batch; the counts are the tally's. */
typedef struct {
    const char *id;
    bool known;
    /* A campaign that does not exist: created (auto_create), or its opens kept apart (a new
     * unknown ID when none was kept before) or refused. */
    bool kept_before, create, fresh;
    enum { UNKNOWN_UNDECIDED, UNKNOWN_KEEP, UNKNOWN_REFUSE } unknown;
    int64_t unknown_opens, unknown_first, unknown_last;
    sp_event_t *first;          /* its batch's first event: told that it is new (fresh, create) */
    sp_event_t *unknown_newest; /* told how many kept opens made way */
    bool adopted;               /* some of its kept opens were adopted in this batch */
    const sp_tally_campaign_t *counts; /* what its stored events add, or NULL */
} camp_t;

/* A statement of the last phase, on one campaign. */
typedef struct {
    int q;
    camp_t *camp;
} camp_op_t;

typedef struct {
    sp_event_t **evs;
    size_t n;
    const sp_store_unknown_t *unknown;
    int64_t likely_forward_ms;
    camp_t *camps, **ev_camp;
    size_t n_camps;
    size_t *adopts; /* the adopted events, by row */
    size_t n_adopts;
    int64_t n_unknown; /* unknown campaigns in the store; -1: not asked */
    camp_t **creates;
    size_t n_creates;
    sp_event_t **stored, **kept, **reads;
    size_t n_stored, n_kept, n_reads;
    sp_tally_t tally; /* what the stored events add */
    camp_op_t *ops;
    size_t n_ops;
    const sp_store_mark_t *mark;        /* or NULL */
    unsigned char *record;              /* a kept open's journal form, being sent */
    sp_rollup_t rollup;                 /* what the stored events add to the rollups */
    char *arrays[SP_ROLLUP_COUNTS + 2]; /* a rollup statement's parameters, being sent */
    size_t *forwarded;                  /* the recipients (in tally) whose likely forwards grew */
    size_t n_forwarded;
    sp_intern_t *agents, *sets; /* the store's */
    struct {
        sp_intern_t *cache;
        const char *text; /* borrowed from an event's row, or owned (a header set) */
        char *owned;
    } * interns; /* texts of the batch's rows that the caches do not hold */
    size_t n_interns, cap_interns;
    char gen[24]; /* the number of text deletions as the batch began (phase 1) */
    int64_t *ids; /* taken for the events to insert (phase 1), in order */
    size_t n_want_ids, n_ids;
    char *columns[SP_EVENT_N_FIELDS + 3]; /* the events' insert's parameters, being sent */
    /* The recipients' counts as one statement (Q_RECIPIENTS_UPSERT; batch_recipient_stmts),
     * its parameters being sent. */
    bool recipients_bulk;
    char *recipient_arrays[12];
    int phase;
} batch_t;

/* The phase between 2 and 3 that interns the texts the caches miss (intern.h). */
#define PHASE_INTERN 6

/* The phase between 3 and 4 that stores the likely forwards (tally.h), when there are any. */
#define PHASE_FORWARDS 5

static int cmp_camp(const void *a, const void *b)
{
    return strcmp(((const camp_t *)a)->id, ((const camp_t *)b)->id);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p)
        abort();
    return p;
}

/* The batch's campaigns, sorted and distinct, and each event's; its adopted events by row, the
 * order in which concurrent writers then take them. */
static void batch_campaigns(batch_t *b)
{
    b->camps = xcalloc(b->n, sizeof(*b->camps));
    for (size_t i = 0; i < b->n; i++)
        b->camps[i].id = b->evs[i]->campaign;
    qsort(b->camps, b->n, sizeof(*b->camps), cmp_camp);
    for (size_t i = 0; i < b->n; i++)
        if (!b->n_camps || 0 != strcmp(b->camps[b->n_camps - 1].id, b->camps[i].id))
            b->camps[b->n_camps++] = b->camps[i];
    b->ev_camp = xcalloc(b->n, sizeof(*b->ev_camp));
    b->adopts = xcalloc(b->n, sizeof(*b->adopts));
    for (size_t i = 0; i < b->n; i++) {
        camp_t key = {.id = b->evs[i]->campaign};
        b->ev_camp[i] = bsearch(&key, b->camps, b->n_camps, sizeof(*b->camps), cmp_camp);
        if (b->evs[i]->adopt_row > 0)
            b->adopts[b->n_adopts++] = i;
    }
    for (size_t i = 1; i < b->n_adopts; i++) /* mostly in order already: journal order */
        for (size_t j = i;
             j > 0 && b->evs[b->adopts[j - 1]]->adopt_row > b->evs[b->adopts[j]]->adopt_row; j--) {
            size_t t = b->adopts[j];
            b->adopts[j] = b->adopts[j - 1];
            b->adopts[j - 1] = t;
        }
}

/* What becomes of each campaign that does not exist, once phase 1 has told which exist and
 * which are kept apart already. True when the number of unknown campaigns must be asked for
 * (phase 2) to decide about new ones. */
static bool batch_unknown(batch_t *b)
{
    bool ask = false;
    for (size_t i = 0; i < b->n_camps; i++) {
        camp_t *c = &b->camps[i];
        if (c->known)
            continue;
        if (b->unknown->auto_create) {
            c->known = c->create = true;
        } else if (c->kept_before) {
            c->unknown = UNKNOWN_KEEP;
        } else {
            ask = true;
        }
    }
    return ask;
}

/* New unknown IDs are kept while there is room, in ID order. */
static void batch_new_unknown(batch_t *b)
{
    for (size_t i = 0; i < b->n_camps; i++) {
        camp_t *c = &b->camps[i];
        if (c->known || UNKNOWN_UNDECIDED != c->unknown)
            continue;
        c->unknown = b->n_unknown < b->unknown->max_campaigns ? UNKNOWN_KEEP : UNKNOWN_REFUSE;
        if (UNKNOWN_KEEP == c->unknown) {
            c->fresh = true;
            b->n_unknown++;
        }
    }
}

/* Sorts the events into those stored (their counts from the tally, sorted: each transaction
 * then locks rows in one order, recipients, clients, campaigns, each by key, and concurrent
 * writers on several servers wait for each other instead of deadlocking) and the opens kept
 * apart. */
static void batch_fates(batch_t *b)
{
    b->stored = xcalloc(b->n, sizeof(*b->stored));
    b->kept = xcalloc(b->n, sizeof(*b->kept));
    b->reads = xcalloc(b->n, sizeof(*b->reads));
    for (size_t i = 0; i < b->n; i++) {
        sp_event_t *ev = b->evs[i];
        camp_t *c = b->ev_camp[i];
        if (SP_OUTCOME_ADOPTED_ALREADY == ev->outcome)
            continue;
        if (SP_EVENT_READ == ev->kind) { /* folded into its open, after the inserts */
            ev->outcome = SP_OUTCOME_UNMATCHED;
            b->reads[b->n_reads++] = ev;
            continue;
        }
        if (!c->first)
            c->first = ev;
        if (c->known) {
            b->stored[b->n_stored++] = ev;
            continue;
        }
        if (UNKNOWN_KEEP != c->unknown)
            continue;
        if (b->unknown->max_opens > 0)
            b->kept[b->n_kept++] = ev;
        if (!c->unknown_opens || ev->ts_ms < c->unknown_first)
            c->unknown_first = ev->ts_ms;
        if (!c->unknown_opens || ev->ts_ms > c->unknown_last)
            c->unknown_last = ev->ts_ms;
        c->unknown_opens++;
        c->unknown_newest = ev;
    }
    /* Created with their first open's time; an unknown ID's first open is told it is new. */
    b->creates = xcalloc(b->n_camps, sizeof(*b->creates));
    for (size_t i = 0; i < b->n_camps; i++) {
        camp_t *c = &b->camps[i];
        if (c->create && c->first)
            b->creates[b->n_creates++] = c;
        if (c->fresh && c->first)
            c->first->campaign_new = true;
    }
    sp_tally_count(&b->tally, b->stored, b->n_stored);
    b->tally.forward_after_ms = b->likely_forward_ms;
    const sp_event_row_t **rows = malloc((b->n_stored + 1) * sizeof(*rows));
    if (!rows)
        abort();
    for (size_t i = 0; i < b->n_stored; i++)
        rows[i] = sp_event_row(b->stored[i]);
    sp_rollup_batch(&b->rollup, rows, b->n_stored);
    free(rows);
    /* Both lists are in ID order: each tallied campaign is a known one of the batch. */
    size_t k = 0;
    for (size_t i = 0; i < b->n_camps && k < b->tally.n_campaigns; i++)
        if (0 == strcmp(b->camps[i].id, b->tally.campaigns[k].id))
            b->camps[i].counts = &b->tally.campaigns[k++];
    assert(k == b->tally.n_campaigns);
}

/* The last phase's statements, campaign by campaign in ID order: the counters that move
 * (unique views are known after phase 3), adoptions done, opens kept apart. */
static void batch_ops(batch_t *b)
{
    b->ops = xcalloc(2 * b->n_camps, sizeof(*b->ops)); /* known: count, adopted; or unknown: two */
    for (size_t i = 0; i < b->n_camps; i++) {
        camp_t *c = &b->camps[i];
        const sp_tally_campaign_t *t = c->counts;
        bool moved = t && (t->views || t->clicks || t->last_view_at);
        for (int k = 0; t && k < SP_CLASS_COUNT; k++)
            moved = moved || t->by_class[k];
        if (c->known && moved)
            b->ops[b->n_ops++] = (camp_op_t){Q_CAMPAIGN_COUNT, c};
        if (c->known && c->adopted)
            b->ops[b->n_ops++] = (camp_op_t){Q_ADOPT_DONE, c};
        if (UNKNOWN_KEEP == c->unknown && c->unknown_opens) {
            b->ops[b->n_ops++] = (camp_op_t){Q_UNKNOWN_UPSERT, c};
            b->ops[b->n_ops++] = (camp_op_t){Q_UNKNOWN_TRIM, c};
        }
    }
}

static void batch_free(batch_t *b)
{
    free(b->camps);
    free(b->ev_camp);
    free(b->adopts);
    free(b->creates);
    free(b->stored);
    free(b->reads);
    free(b->kept);
    sp_tally_free(&b->tally);
    free(b->ops);
    free(b->record);
    sp_rollup_free(&b->rollup);
    for (size_t i = 0; i < sizeof(b->arrays) / sizeof(b->arrays[0]); i++)
        free(b->arrays[i]);
    free(b->forwarded);
    for (size_t i = 0; i < b->n_interns; i++)
        free(b->interns[i].owned);
    free(b->interns);
    free(b->ids);
    for (size_t i = 0; i < sizeof(b->columns) / sizeof(b->columns[0]); i++)
        free(b->columns[i]);
    for (size_t i = 0; i < sizeof(b->recipient_arrays) / sizeof(b->recipient_arrays[0]); i++)
        free(b->recipient_arrays[i]);
}

/* TEXT for the intern phase when CACHE misses it (OWNED: the batch frees it). */
static void batch_intern(batch_t *b, sp_intern_t *cache, const sp_intern_key_t *key, char *owned)
{
    const char *text = key->text;
    bool seen = key->len > SP_INTERN_TEXT_MAX || sp_intern_find(cache, key);
    for (size_t i = 0; !seen && i < b->n_interns; i++)
        seen = b->interns[i].cache == cache && 0 == strcmp(b->interns[i].text, text);
    if (seen) {
        free(owned);
        return;
    }
    if (b->n_interns == b->cap_interns) {
        b->cap_interns = b->cap_interns ? 2 * b->cap_interns : 16;
        b->interns = realloc(b->interns, b->cap_interns * sizeof(*b->interns));
        if (!b->interns)
            abort();
    }
    b->interns[b->n_interns].cache = cache;
    b->interns[b->n_interns].text = text;
    b->interns[b->n_interns++].owned = owned;
}

/* The texts of the stored events' rows that the caches miss: their user agents and header
 * sets (a likely forward's row has its open's). */
static void batch_interns(batch_t *b)
{
    for (size_t i = 0; i < b->n_stored; i++) {
        sp_intern_key_t agent, set;
        sp_intern_event_keys(b->stored[i], &agent, &set, NULL);
        if (agent.text)
            batch_intern(b, b->agents, &agent, NULL);
        batch_intern(b, b->sets, &set, NULL);
    }
}

/* The statement that inserts the batch's stored events: one, or none. */
static size_t batch_inserts(const batch_t *b)
{
    return b->n_stored ? 1 : 0;
}

/* The statements that add the batch's stored events to the rollups: two, or none. */
static size_t batch_rollups(const batch_t *b)
{
    return b->n_stored ? 2 : 0;
}

/* Whether the recipients' counts go as one statement: unless a campaign or recipient ID is not
 * valid UTF-8 (the pixel takes only IDs of letters, digits and -_@+.), whose cleaning could make
 * two of the batch's keys one, which a single INSERT ... ON CONFLICT DO UPDATE may not touch
 * twice. */
static bool recipients_bulk(const sp_tally_t *t)
{
    for (size_t i = 0; i < t->n_recipients; i++) {
        const char *c = t->campaigns[t->recipients[i].campaign].id, *r = t->recipients[i].recipient;
        if (!sp_utf8_valid(c, strlen(c)) || !sp_utf8_valid(r, strlen(r)))
            return false;
    }
    return true;
}

/* The statements that count the batch's recipients: one per recipient, or one for all. */
static size_t batch_recipient_stmts(const batch_t *b)
{
    return b->recipients_bulk ? (b->tally.n_recipients ? 1 : 0) : b->tally.n_recipients;
}

/* A PostgreSQL array literal being made. */
typedef struct {
    char *buf;
    size_t len, cap;
} array_t;

static void array_put(array_t *a, const char *s, size_t n)
{
    if (a->len + n + 2 > a->cap) {
        a->cap = 2 * (a->len + n + 2) + 64;
        if (!(a->buf = realloc(a->buf, a->cap)))
            abort();
    }
    memcpy(a->buf + a->len, s, n);
    a->len += n;
    a->buf[a->len] = '\0';
}

static void array_next(array_t *a)
{
    array_put(a, a->len ? "," : "{", 1);
}

static void array_int(array_t *a, int64_t v)
{
    char num[24];
    size_t n = int_text(num, v);
    array_next(a);
    array_put(a, num, n);
}

static void array_null(array_t *a)
{
    array_next(a);
    array_put(a, "NULL", 4);
}

#define COORDS_SLOTS 1024

/* V (not NaN) as %.17g writes it, through S's cache of coordinates. */
static void array_double(pg_store_t *s, array_t *a, double v)
{
    if (!s->coords)
        s->coords = xcalloc(COORDS_SLOTS, sizeof(*s->coords));
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    struct coord_text *c = &s->coords[(bits * 0x9e3779b97f4a7c15ULL) >> 54];
    if (!c->text[0] || memcmp(&c->v, &v, sizeof(v))) {
        c->v = v;
        snprintf(c->text, sizeof(c->text), "%.17g", v);
    }
    array_next(a);
    array_put(a, c->text, strlen(c->text));
}

/* Quoted, so that no text reads as NULL; a quote or a backslash escaped. */
static void array_text(array_t *a, const char *s)
{
    array_next(a);
    array_put(a, "\"", 1);
    for (;;) {
        size_t run = strcspn(s, "\"\\");
        array_put(a, s, run);
        if (!s[run])
            break;
        array_put(a, "\\", 1);
        array_put(a, s + run, 1);
        s += run + 1;
    }
    array_put(a, "\"", 1);
}

/* The array's text, closed: malloc'd, A emptied. */
static char *array_end(array_t *a)
{
    array_put(a, a->len ? "}" : "{}", a->len ? 1 : 2);
    char *out = a->buf;
    *a = (array_t){0};
    return out;
}

/* The parameters of rollup statement Q (Q_ROLLUP_COUNTS or Q_ROLLUP_VALUES) into B's arrays. */
static int rollup_arrays(batch_t *b, int q)
{
    const sp_rollup_t *r = &b->rollup;
    array_t a[SP_ROLLUP_COUNTS + 2] = {{0}};
    int n;
    if (Q_ROLLUP_COUNTS == q) {
        n = SP_ROLLUP_COUNTS + 2;
        for (size_t i = 0; i < r->n_counts; i++) {
            array_text(&a[0], r->counts[i].campaign);
            array_int(&a[1], r->counts[i].quarter);
            for (int k = 0; k < SP_ROLLUP_COUNTS; k++)
                array_int(&a[2 + k], r->counts[i].n[k]);
        }
    } else {
        n = 5;
        for (size_t i = 0; i < r->n_values; i++) {
            array_text(&a[0], r->values[i].campaign);
            array_int(&a[1], r->values[i].dim);
            array_int(&a[2], r->values[i].hour);
            array_text(&a[3], r->values[i].value);
            array_int(&a[4], r->values[i].n);
        }
    }
    for (int k = 0; k < n; k++) {
        free(b->arrays[k]);
        b->arrays[k] = array_end(&a[k]);
    }
    return n;
}

/* Adds field F of ROW to P. The row's text is well-formed UTF-8 already (sp_event_row). */
static void p_field(params_t *p, const sp_event_row_t *row, const sp_event_field_t *f)
{
    switch (f->kind) {
    case SP_FIELD_ID:
    case SP_FIELD_TIME:
    case SP_FIELD_KIND:
    case SP_FIELD_CLASS:
        p_int(p, sp_event_row_int(row, f));
        return;
    case SP_FIELD_TEXT:
    case SP_FIELD_TEXT_OR_NULL:
    case SP_FIELD_OBJECT:
        p->owned[p->n] = NULL;
        p->v[p->n++] = sp_event_row_text(row, f);
        return;
    case SP_FIELD_COORD:
        if (isnan(sp_event_row_coord(row, f)))
            p_null(p);
        else
            p_double(p, sp_event_row_coord(row, f));
        return;
    case SP_FIELD_DURATION:
        if (sp_event_row_int(row, f) < 0)
            p_null(p);
        else
            p_int(p, sp_event_row_int(row, f));
        return;
    }
}

/* EV's row's user agent and header set (a likely forward's row has its open's) by their IDs, 0
 * when the caches do
 * not hold them (the intern phase put them there; else, a text too long to cache or a slot
 * taken by another of the batch's texts, the row keeps its own text, read the same), and the
 * apart values that go with the set, borrowed from EV, NULL when there is no set (the row's
 * headers are then whole). */
static void row_interned(pg_store_t *s, sp_event_t *ev, int64_t *agent, int64_t *set,
                         const char **apart)
{
    sp_intern_key_t agent_key, set_key; /* EV's row's, which a likely forward's copies */
    sp_intern_event_keys(ev, &agent_key, &set_key, apart);
    *agent = agent_key.text ? sp_intern_find(s->agents, &agent_key) : 0;
    *set = sp_intern_find(s->sets, &set_key);
    if (!*set)
        *apart = NULL;
}

/* ROW's insert (EV's, or made from EV's), its texts by ID where row_interned finds them. */
static int send_row(pg_store_t *s, sp_event_t *ev, const sp_event_row_t *row)
{
    char name[16];
    params_t p = {.n = 0};
    int64_t agent, set;
    const char *apart;
    row_interned(s, ev, &agent, &set, &apart);
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        if (SP_FIELD_ID == sp_event_fields[i].kind)
            continue;
        if (SP_EVENT_FIELD_user_agent == i && agent)
            p_null(&p);
        else if (SP_EVENT_FIELD_headers_json == i && set)
            p_text(&p, "");
        else
            p_field(&p, row, &sp_event_fields[i]);
    }
    if (agent)
        p_int(&p, agent);
    else
        p_null(&p);
    if (set)
        p_int(&p, set);
    else
        p_null(&p);
    if (apart) { /* well-formed: cut from the row's headers */
        p.owned[p.n] = NULL;
        p.v[p.n++] = apart;
    } else {
        p_null(&p);
    }
    stmt_name(Q_EVENT_INSERT, name, sizeof(name));
    /* libpq copies the parameters into its output buffer before it returns. */
    int ok = PQsendQueryPrepared(s->conn, name, p.n, p.v, NULL, NULL, 0);
    p_clear(&p);
    return ok ? 0 : -1;
}

/* The stored events as one INSERT: each gets the next ID taken in phase 1, and each field is
 * an array of the events' values, in B's columns; then the arrays of their agents' and header
 * sets' IDs and apart values, as send_row sends one event's. */
/* Sends statement Q with the N arrays A as its parameters, in the pipeline; their texts are kept
 * in KEPT (the batch's, freed by the next call or the batch's end) until the result is read. */
static int send_arrays(pg_store_t *s, int q, array_t *a, char **kept, size_t n)
{
    char name[16];
    params_t p = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        free(kept[i]);
        kept[i] = array_end(&a[i]);
        p.owned[p.n] = NULL;
        p.v[p.n++] = kept[i];
    }
    stmt_name(q, name, sizeof(name));
    int ok = PQsendQueryPrepared(s->conn, name, p.n, p.v, NULL, NULL, 0);
    p_clear(&p);
    return ok ? 0 : -1;
}

static int send_events(pg_store_t *s, batch_t *b)
{
    array_t a[SP_EVENT_N_FIELDS + 3] = {{0}};
    array_t *agents = &a[SP_EVENT_N_FIELDS], *sets = agents + 1, *aparts = agents + 2;
    if (b->n_ids < b->n_stored) /* phase 1 took one for every event but the reads */
        return -1;
    for (size_t e = 0; e < b->n_stored; e++) {
        b->stored[e]->id = b->ids[e];
        const sp_event_row_t *row = sp_event_row(b->stored[e]);
        int64_t agent, set;
        const char *apart;
        row_interned(s, b->stored[e], &agent, &set, &apart);
        if (agent)
            array_int(agents, agent);
        else
            array_null(agents);
        if (set)
            array_int(sets, set);
        else
            array_null(sets);
        if (apart)
            array_text(aparts, apart);
        else
            array_null(aparts);
        for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
            const sp_event_field_t *f = &sp_event_fields[i];
            if (SP_EVENT_FIELD_user_agent == i && agent) {
                array_null(&a[i]);
                continue;
            }
            if (SP_EVENT_FIELD_headers_json == i && set) {
                array_text(&a[i], "");
                continue;
            }
            switch (f->kind) {
            case SP_FIELD_ID:
            case SP_FIELD_TIME:
            case SP_FIELD_KIND:
            case SP_FIELD_CLASS:
                array_int(&a[i], sp_event_row_int(row, f));
                break;
            case SP_FIELD_TEXT:
            case SP_FIELD_TEXT_OR_NULL:
            case SP_FIELD_OBJECT:
                if (sp_event_row_text(row, f))
                    array_text(&a[i], sp_event_row_text(row, f));
                else
                    array_null(&a[i]);
                break;
            case SP_FIELD_COORD:
                if (isnan(sp_event_row_coord(row, f)))
                    array_null(&a[i]);
                else
                    array_double(s, &a[i], sp_event_row_coord(row, f));
                break;
            case SP_FIELD_DURATION:
                if (sp_event_row_int(row, f) < 0)
                    array_null(&a[i]);
                else
                    array_int(&a[i], sp_event_row_int(row, f));
                break;
            }
        }
    }
    return send_arrays(s, Q_EVENTS_INSERT, a, b->columns, SP_EVENT_N_FIELDS + 3);
}

/* The batch's recipients' counts as one statement (Q_RECIPIENTS_UPSERT), in the tally's order. */
static int send_recipients(pg_store_t *s, batch_t *b)
{
    array_t a[12] = {{0}};
    const sp_tally_t *t = &b->tally;
    for (size_t i = 0; i < t->n_recipients; i++) {
        const sp_tally_recipient_t *r = &t->recipients[i];
        array_text(&a[0], t->campaigns[r->campaign].id);
        array_text(&a[1], r->recipient);
        for (int k = 0; k < SP_CLASS_COUNT; k++)
            array_int(&a[2 + k], r->by_class[k]);
        array_int(&a[6], r->clicks);
        array_int(&a[7], r->first_at);
        array_int(&a[8], r->last_at);
        /* A client's or network's text as p_text binds it: made valid UTF-8. */
        for (int k = 0; k < 2; k++) {
            const char *v = k ? r->network : r->client;
            char *clean = sp_utf8_clean(v);
            array_text(&a[9 + k], clean ? clean : v);
            free(clean);
        }
        array_int(&a[11], r->human_at);
    }
    return send_arrays(s, Q_RECIPIENTS_UPSERT, a, b->recipient_arrays, 12);
}

/* What Q_RECIPIENTS_UPSERT returned, RES, told to the tally recipient by recipient in its order
 * (the likely forwards it finds are stored in that order). */
static void recv_recipients(batch_t *b, PGresult *res)
{
    sp_tally_t *t = &b->tally;
    int *at = xcalloc(t->n_recipients, sizeof(*at)); /* a recipient's result row + 1; 0: none */
    for (int k = 0; k < PQntuples(res); k++) {
        int64_t ord = get_i64(res, k, 0);
        if (ord >= 1 && (uint64_t)ord <= t->n_recipients)
            at[ord - 1] = k + 1;
    }
    for (size_t i = 0; i < t->n_recipients; i++) {
        int k = at[i] - 1;
        if (k < 0)
            continue;
        sp_tally_recipient_seen(t, i, get_i64(res, k, 1));
        if (t->recipients[i].n_humans)
            sp_tally_recipient_reader(t, i, PQgetvalue(res, k, 2), PQgetvalue(res, k, 3),
                                      get_i64(res, k, 4), PQgetvalue(res, k, 5));
    }
    free(at);
}

/* An open kept apart: its journal form goes as a binary parameter. */
static int send_kept(pg_store_t *s, batch_t *b, const sp_event_t *ev)
{
    char name[16];
    params_t p = {.n = 0};
    if (!b->record && !(b->record = malloc(SP_EVENT_ENCODED_MAX)))
        abort();
    size_t len = sp_event_encode(ev, b->record);
    p_text(&p, ev->campaign);
    p_int(&p, ev->ts_ms);
    p_text(&p, ev->recipient);
    p.v[p.n] = (const char *)b->record;
    p.owned[p.n++] = NULL;
    int lengths[4] = {0, 0, 0, (int)len}, formats[4] = {0, 0, 0, 1};
    stmt_name(Q_UNKNOWN_KEEP, name, sizeof(name));
    int ok = PQsendQueryPrepared(s->conn, name, p.n, p.v, lengths, formats, 0);
    p_clear(&p);
    return ok ? 0 : -1;
}

/* Sends the batch's statement I of the current phase:
 *   1: BEGIN, then whether each campaign exists (or is kept apart), then each adopted open's
 *      kept row taken out;
 *   2: how many unknown campaigns the store keeps (only when a new one may be kept);
 *   3: the campaigns created (auto_create), the events of known campaigns, the recipient
 *      upserts, the client inserts, the opens kept apart;
 *   4: the campaign counters, adoptions done and unknown campaigns' counts (batch_ops), the
 *      journal position, COMMIT. */
static int batch_send(pg_store_t *s, batch_t *b, size_t i)
{
    char name[16];
    params_t p = {.n = 0};
    const sp_tally_t *t = &b->tally;
    int q;
    if (1 == b->phase) {
        if (0 == i)
            return PQsendQueryParams(s->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -1;
        if (i - 1 < b->n_camps) {
            q = Q_CAMPAIGN_EXISTS;
            p_text(&p, b->camps[i - 1].id);
        } else if (i - 1 - b->n_camps == b->n_adopts + (b->n_want_ids ? 1 : 0)) {
            q = Q_INTERN_GEN;
        } else if (i - 1 - b->n_camps == b->n_adopts) {
            q = Q_EVENT_IDS;
            p_int(&p, (int64_t)b->n_want_ids);
        } else {
            const sp_event_t *ev = b->evs[b->adopts[i - 1 - b->n_camps]];
            q = Q_ADOPT_TAKE;
            p_int(&p, ev->adopt_row);
            p_text(&p, ev->campaign);
        }
    } else if (2 == b->phase) {
        q = Q_UNKNOWN_COUNT;
    } else if (3 == b->phase) {
        if (i < b->n_creates) {
            q = Q_CAMPAIGN_CREATE;
            p_text(&p, b->creates[i]->id);
            p_int(&p, b->creates[i]->first->ts_ms);
            goto send;
        }
        i -= b->n_creates;
        if (i < batch_inserts(b))
            return send_events(s, b);
        i -= batch_inserts(b);
        if (b->recipients_bulk && i < batch_recipient_stmts(b))
            return send_recipients(s, b);
        if (i < batch_recipient_stmts(b)) {
            const sp_tally_recipient_t *r = &t->recipients[i];
            q = Q_RECIPIENT_UPSERT;
            p_text(&p, t->campaigns[r->campaign].id);
            p_text(&p, r->recipient);
            for (int k = 0; k < SP_CLASS_COUNT; k++)
                p_int(&p, r->by_class[k]);
            p_int(&p, r->clicks);
            p_int(&p, r->first_at);
            p_int(&p, r->last_at);
            p_text(&p, r->client);
            p_text(&p, r->network);
            p_int(&p, r->human_at);
            goto send;
        }
        i -= batch_recipient_stmts(b);
        if (i >= t->n_clients + b->n_kept) {
            const sp_event_t *ev = b->reads[i - t->n_clients - b->n_kept];
            sp_tally_read_t r;
            sp_tally_read_params(ev, &r);
            q = Q_READ_FOLD;
            p_int(&p, ev->ts_ms);
            p_text(&p, ev->campaign);
            p_text(&p, ev->recipient);
            p_text(&p, ev->visitor);
            p_int(&p, r.read_ms);
            p_int(&p, r.human);
            p_text(&p, r.if_human);
            p_text(&p, r.otherwise);
            goto send;
        }
        if (i >= t->n_clients)
            return send_kept(s, b, b->kept[i - t->n_clients]);
        q = Q_CLIENT_INSERT;
        p_text(&p, t->campaigns[t->clients[i].campaign].id);
        p_text(&p, t->clients[i].key);
    } else if (PHASE_INTERN == b->phase) {
        q = b->interns[i].cache == b->agents ? Q_AGENT_INTERN : Q_SET_INTERN;
        p_text(&p, b->interns[i].text);
    } else if (PHASE_FORWARDS == b->phase) {
        if (i < t->n_forwards) {
            sp_event_row_t row;
            sp_tally_forward_row(t->forwards[i], &row);
            return send_row(s, t->forwards[i], &row);
        }
        const sp_tally_recipient_t *r = &t->recipients[b->forwarded[i - t->n_forwards]];
        q = Q_RECIPIENT_FORWARDED;
        p_text(&p, t->campaigns[r->campaign].id);
        p_text(&p, r->recipient);
        p_text(&p, r->forwarded);
    } else if (i >= b->n_ops + batch_rollups(b)) {
        size_t k = i - b->n_ops - batch_rollups(b) - (b->mark ? 1 : 0);
        if (i == b->n_ops + batch_rollups(b) && b->mark) {
            q = Q_MARK;
            p_text(&p, b->mark->key);
            p_text(&p, b->mark->value);
        } else if (0 == k) {
            /* No text the batch named by a cached ID was deleted meanwhile, and none can be
             * until it commits (intern_gc). */
            q = Q_INTERN_CHECK;
            p_text(&p, b->gen);
        } else {
            return PQsendQueryParams(s->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0) ? 0 : -1;
        }
    } else if (i >= b->n_ops) {
        /* What the stored events add to the rollups. Their text is valid UTF-8 already (the
         * events' rows). */
        q = 0 == i - b->n_ops ? Q_ROLLUP_COUNTS : Q_ROLLUP_VALUES;
        int n = rollup_arrays(b, q);
        for (int k = 0; k < n; k++) {
            p.owned[p.n] = NULL;
            p.v[p.n++] = b->arrays[k];
        }
    } else {
        const camp_t *c = b->ops[i].camp;
        q = b->ops[i].q;
        p_text(&p, c->id);
        if (Q_CAMPAIGN_COUNT == q) {
            const sp_tally_campaign_t *n = c->counts;
            p_int(&p, n->views);
            p_int(&p, n->unique);
            for (int k = 0; k < SP_CLASS_COUNT; k++)
                p_int(&p, n->by_class[k]);
            p_int(&p, n->clicks);
            p_int(&p, n->last_view_at);
        } else if (Q_UNKNOWN_UPSERT == q) {
            p_int(&p, c->unknown_opens);
            p_int(&p, c->unknown_first);
            p_int(&p, c->unknown_last);
        } else if (Q_UNKNOWN_TRIM == q) {
            p_int(&p, b->unknown->max_opens > 0 ? b->unknown->max_opens : 0);
        }
    }
send:
    stmt_name(q, name, sizeof(name));
    int ok = PQsendQueryPrepared(s->conn, name, p.n, p.v, NULL, NULL, 0);
    p_clear(&p);
    return ok ? 0 : -1;
}

/* Takes in the result of statement I of the current phase. */
static void batch_recv(batch_t *b, size_t i, PGresult *res)
{
    bool row = PQntuples(res) > 0;
    sp_tally_t *t = &b->tally;
    if (1 == b->phase) {
        if (0 == i) {
            return;
        } else if (i - 1 < b->n_camps) {
            b->camps[i - 1].known = row && 't' == PQgetvalue(res, 0, 0)[0];
            b->camps[i - 1].kept_before = row && 't' == PQgetvalue(res, 0, 1)[0];
        } else if (i - 1 - b->n_camps == b->n_adopts + (b->n_want_ids ? 1 : 0)) {
            snprintf(b->gen, sizeof(b->gen), "%s", row ? PQgetvalue(res, 0, 0) : "");
        } else if (i - 1 - b->n_camps == b->n_adopts) {
            b->ids = xcalloc((size_t)PQntuples(res), sizeof(*b->ids));
            for (int k = 0; k < PQntuples(res); k++)
                b->ids[b->n_ids++] = get_i64(res, k, 0);
        } else {
            size_t e = b->adopts[i - 1 - b->n_camps];
            if (row)
                b->ev_camp[e]->adopted = true;
            else
                b->evs[e]->outcome = SP_OUTCOME_ADOPTED_ALREADY;
        }
    } else if (2 == b->phase) {
        b->n_unknown = row ? get_i64(res, 0, 0) : 0;
    } else if (PHASE_INTERN == b->phase) {
        if (row) {
            sp_intern_key_t key = sp_intern_key(b->interns[i].text);
            sp_intern_keep(b->interns[i].cache, &key, get_i64(res, 0, 0));
        }
    } else if (3 == b->phase) {
        if (i < b->n_creates) {
            /* Nothing inserted: another server created it meanwhile. */
            if (0 == strcmp(PQcmdTuples(res), "1"))
                b->creates[i]->first->campaign_new = true;
            return;
        }
        i -= b->n_creates;
        if (i < batch_inserts(b))
            return;
        i -= batch_inserts(b);
        size_t n_rs = batch_recipient_stmts(b);
        if (b->recipients_bulk && i < n_rs) {
            recv_recipients(b, res);
        } else if (i < n_rs) {
            if (row) {
                sp_tally_recipient_seen(t, i, get_i64(res, 0, 0));
                if (t->recipients[i].n_humans)
                    sp_tally_recipient_reader(t, i, PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                                              get_i64(res, 0, 3), PQgetvalue(res, 0, 4));
            }
        } else if (i - n_rs < t->n_clients) {
            sp_tally_client_seen(t, i - n_rs, row);
        } else if (i - n_rs - t->n_clients >= b->n_kept && row) {
            sp_event_t *ev = b->reads[i - n_rs - t->n_clients - b->n_kept];
            sp_tally_read_folded(ev, get_i64(res, 0, 0), (int)get_i64(res, 0, 1));
        }
    } else if (PHASE_FORWARDS == b->phase) {
        return;
    } else if (i < b->n_ops && Q_UNKNOWN_TRIM == b->ops[i].q) {
        b->ops[i].camp->unknown_newest->dropped = (uint32_t)strtoul(PQcmdTuples(res), NULL, 10);
    }
}

/* Sends the current phase's COUNT statements down the pipeline, a window at a time with a flush
 * request, and reads each window's results before sending more: neither side then ever blocks
 * writing into a full socket while the other does too. */
#define PIPE_WINDOW 256

static int pipe_run(pg_store_t *s, batch_t *b, size_t count, char *err, size_t errlen)
{
    size_t sent = 0, got = 0;
    while (got < count) {
        for (; sent < count && sent - got < PIPE_WINDOW; sent++)
            if (0 != batch_send(s, b, sent))
                return set_err(s, err, errlen, "send batch", NULL);
        if (!PQsendFlushRequest(s->conn) || 0 != PQflush(s->conn))
            return set_err(s, err, errlen, "send batch", NULL);
        for (; got < sent; got++) {
            PGresult *res = PQgetResult(s->conn);
            ExecStatusType st = PQresultStatus(res);
            if (PGRES_COMMAND_OK != st && PGRES_TUPLES_OK != st) {
                set_err(s, err, errlen, "write batch", res);
                PQclear(res);
                return -1;
            }
            batch_recv(b, got, res);
            PQclear(res);
            /* Each statement's results end with a NULL in pipeline mode. */
            if ((res = PQgetResult(s->conn))) {
                PQclear(res);
                return set_err(s, err, errlen, "write batch", NULL);
            }
        }
    }
    return 0;
}

/* After a failure in pipeline mode: ends the pipeline so that the connection is usable again,
 * or leaves it to ready()'s reset when the connection is gone. */
static void pipe_abort(pg_store_t *s, bool synced)
{
    if (CONNECTION_OK == PQstatus(s->conn) && (synced || PQpipelineSync(s->conn))) {
        int nulls = 0;
        while (nulls < 2 && CONNECTION_OK == PQstatus(s->conn)) {
            PGresult *res = PQgetResult(s->conn);
            if (!res) {
                nulls++; /* one between statements; two in a row: nothing more will come */
                continue;
            }
            nulls = 0;
            ExecStatusType st = PQresultStatus(res);
            PQclear(res);
            if (PGRES_PIPELINE_SYNC == st)
                break;
        }
    }
    PQexitPipelineMode(s->conn);
    rollback(s);
}

static int write_batch_once(sp_store_t *base, sp_event_t **evs, size_t n,
                            const sp_store_mark_t *mark, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    batch_t b = {.evs = evs,
                 .n = n,
                 .mark = mark,
                 .unknown = &base->unknown,
                 .likely_forward_ms = base->likely_forward_ms,
                 .n_unknown = -1};
    bool synced = false;
    if (0 == n && !mark)
        return 0;
    if (s->faulted) {
        snprintf(err, errlen, "%s", s->why);
        s->last = SP_STORE_FAIL_FAULT;
        return -1;
    }
    for (size_t i = 0; i < n; i++) { /* a retried batch starts clean */
        evs[i]->first_view = evs[i]->campaign_new = false;
        evs[i]->dropped = 0;
        evs[i]->outcome = SP_OUTCOME_PENDING;
    }
    if (0 != ready(s, err, errlen) || 0 != ensure_partitions(s, evs, n, err, errlen))
        goto fail;
    if (!PQenterPipelineMode(s->conn)) {
        set_err(s, err, errlen, "pipeline", NULL);
        goto fail;
    }
    batch_campaigns(&b);
    for (size_t i = 0; i < n; i++)
        b.n_want_ids += SP_EVENT_READ != evs[i]->kind;
    b.phase = 1;
    if (0 != pipe_run(s, &b, 1 + b.n_camps + b.n_adopts + (b.n_want_ids ? 1 : 0) + 1, err, errlen))
        goto fail_pipe;
    if (batch_unknown(&b)) {
        b.phase = 2;
        if (0 != pipe_run(s, &b, 1, err, errlen))
            goto fail_pipe;
        batch_new_unknown(&b);
    }
    batch_fates(&b);
    b.recipients_bulk = recipients_bulk(&b.tally);
    if (!s->agents) {
        s->agents = sp_intern_new(SP_INTERN_AGENTS, SP_INTERN_TEXT_MAX);
        s->sets = sp_intern_new(SP_INTERN_SETS, SP_INTERN_TEXT_MAX);
    }
    /* Texts were deleted since the cache was filled: an ID it holds may be gone. */
    if (0 != strcmp(b.gen, s->intern_gen)) {
        sp_intern_clear(s->agents);
        sp_intern_clear(s->sets);
        snprintf(s->intern_gen, sizeof(s->intern_gen), "%s", b.gen);
    }
    b.agents = s->agents;
    b.sets = s->sets;
    batch_interns(&b);
    if (b.n_interns) {
        b.phase = PHASE_INTERN;
        if (0 != pipe_run(s, &b, b.n_interns, err, errlen))
            goto fail_pipe;
    }
    b.phase = 3;
    if (0 != pipe_run(s, &b,
                      b.n_creates + batch_inserts(&b) + batch_recipient_stmts(&b) +
                          b.tally.n_clients + b.n_kept + b.n_reads,
                      err, errlen))
        goto fail_pipe;
    if (b.tally.n_forwards) {
        b.forwarded = xcalloc(b.tally.n_recipients, sizeof(*b.forwarded));
        for (size_t i = 0; i < b.tally.n_recipients; i++)
            if (b.tally.recipients[i].forwarded)
                b.forwarded[b.n_forwarded++] = i;
        b.phase = PHASE_FORWARDS;
        if (0 != pipe_run(s, &b, b.tally.n_forwards + b.n_forwarded, err, errlen))
            goto fail_pipe;
    }
    batch_ops(&b);
    b.phase = 4;
    if (0 != pipe_run(s, &b, b.n_ops + batch_rollups(&b) + (mark ? 3 : 2), err, errlen))
        goto fail_pipe;
    if (!PQpipelineSync(s->conn)) {
        set_err(s, err, errlen, "commit", NULL);
        goto fail_pipe;
    }
    synced = true;
    PGresult *res = PQgetResult(s->conn);
    bool ok = PGRES_PIPELINE_SYNC == PQresultStatus(res);
    PQclear(res);
    if (!ok || !PQexitPipelineMode(s->conn)) {
        set_err(s, err, errlen, "commit", NULL);
        goto fail_pipe;
    }
    for (size_t i = 0; i < n; i++) {
        const camp_t *c = b.ev_camp[i];
        if (SP_OUTCOME_ADOPTED_ALREADY == evs[i]->outcome || SP_EVENT_READ == evs[i]->kind)
            continue; /* a read's outcome is its fold's */
        evs[i]->outcome = c->known                     ? SP_OUTCOME_STORED
                          : UNKNOWN_KEEP == c->unknown ? SP_OUTCOME_UNKNOWN_CAMPAIGN
                                                       : SP_OUTCOME_UNKNOWN_REFUSED;
    }
    batch_free(&b);
    return 0;

fail_pipe:
    pipe_abort(s, synced);
fail:
    /* IDs interned in the rolled back transaction are no more. */
    if (s->agents) {
        sp_intern_clear(s->agents);
        sp_intern_clear(s->sets);
    }
    for (size_t i = 0; i < n; i++) {
        evs[i]->outcome = SP_OUTCOME_PENDING;
        evs[i]->id = 0;
        evs[i]->first_view = evs[i]->campaign_new = false;
        evs[i]->dropped = 0;
    }
    batch_free(&b);
    return -1;
}

/* A batch whose check found texts deleted during it (serialization_failure: nothing else raises
 * it at READ COMMITTED) is written again at once, with the cache emptied. */
static int pg_write_batch(sp_store_t *base, sp_event_t **evs, size_t n, const sp_store_mark_t *mark,
                          char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    s->sqlstate[0] = '\0';
    int rc = write_batch_once(base, evs, n, mark, err, errlen);
    if (0 != rc && 0 == strcmp(s->sqlstate, "40001"))
        rc = write_batch_once(base, evs, n, mark, err, errlen);
    return rc;
}

/* ---- campaigns ------------------------------------------------------------------------------ */

static int pg_campaign_create(sp_store_t *base, const char *id, int64_t now_ms, char *err,
                              size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, id);
    p_int(&p, now_ms);
    PGresult *res = exec_q(s, Q_CAMPAIGN_CREATE, &p, "create campaign", err, errlen);
    if (!res)
        return -1;
    int ret = 0 == strcmp(PQcmdTuples(res), "1") ? 0 : 1;
    PQclear(res);
    return ret;
}

static void read_campaign(const PGresult *res, int row, sp_campaign_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", PQgetvalue(res, row, 0));
    c->created_at = get_i64(res, row, 1);
    c->last_view_at = get_i64(res, row, 2);
    c->total_views = get_i64(res, row, 3);
    c->unique_views = get_i64(res, row, 4);
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        c->by_class[i] = get_i64(res, row, 5 + i);
    c->clicks = get_i64(res, row, 9);
    c->archived = 0 != get_i64(res, row, 10);
}

static int pg_campaign_archive(sp_store_t *base, const char *id, bool archived, char *err,
                               size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, id);
    p_int(&p, archived);
    PGresult *res = exec_q(s, Q_CAMPAIGN_ARCHIVE, &p, "archive campaign", err, errlen);
    if (!res)
        return -1;
    int ret = 0 == strcmp(PQcmdTuples(res), "0") ? 1 : 0;
    PQclear(res);
    return ret;
}

static int pg_campaign_get(sp_store_t *base, const char *id, sp_campaign_t *out, char *err,
                           size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, id);
    PGresult *res = exec_q(s, Q_CAMPAIGN_GET, &p, "read campaign", err, errlen);
    if (!res)
        return -1;
    int ret = 1;
    if (PQntuples(res) > 0) {
        read_campaign(res, 0, out);
        ret = 0;
    }
    PQclear(res);
    return ret;
}

static int pg_engagement(sp_store_t *base, const char *id, sp_engagement_t *out, char *err,
                         size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    *out = (sp_engagement_t){0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, id);
    PGresult *res = exec_q(s, Q_ENGAGEMENT, &p, "read engagement", err, errlen);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        sp_store_engagement_add(out, get_i64(res, i, 0), get_i64(res, i, 1),
                                PQgetisnull(res, i, 2) ? NULL : PQgetvalue(res, i, 2),
                                get_i64(res, i, 3));
    PQclear(res);
    return 0;
}

/* Runs Q and calls FN on each row as it arrives, so that a long listing (an export) never sits
 * in memory whole. After FN stops, the rest is read and dropped: the connection is then ready
 * for the next call, where a cancel request could still be on its way. */
typedef int (*row_fn)(void *ctx, const PGresult *res);

static int each_row(pg_store_t *s, int q, params_t *p, row_fn fn, void *ctx, const char *what,
                    char *err, size_t errlen)
{
    char name[16];
    bool stopped = false, failed = false, done = false;
    stmt_name(q, name, sizeof(name));
    int sent = PQsendQueryPrepared(s->conn, name, p->n, p->v, NULL, NULL, 0);
    p_clear(p);
    if (!sent)
        return set_err(s, err, errlen, what, NULL);
    if (!PQsetSingleRowMode(s->conn)) {
        set_err(s, err, errlen, what, NULL);
        failed = true;
    }
    PGresult *res;
    while ((res = PQgetResult(s->conn))) {
        switch (PQresultStatus(res)) {
        case PGRES_SINGLE_TUPLE:
            if (!stopped && !failed && fn(ctx, res))
                stopped = true;
            break;
        case PGRES_TUPLES_OK:
            done = true;
            break;
        default:
            if (!failed)
                set_err(s, err, errlen, what, res);
            failed = true;
        }
        PQclear(res);
    }
    if (!failed && !done)
        return set_err(s, err, errlen, what, NULL);
    return failed ? -1 : 0;
}

typedef struct {
    void *ctx;
    sp_store_campaign_cb campaign;
    sp_store_recipient_cb recipient;
    sp_store_event_cb event;
    sp_store_user_cb user;
    sp_store_token_cb token;
    char *headers; /* an event's headers joined back (intern.h) */
    size_t cap;
    sp_store_export_t *texts; /* an export's reading: its rows' interned texts by ID */
} row_ctx_t;

static bool export_texts(sp_store_export_t *x, const PGresult *res, int row, sp_event_row_t *r);

static int campaign_row(void *ctx, const PGresult *res)
{
    row_ctx_t *rc = ctx;
    sp_campaign_t c;
    read_campaign(res, 0, &c);
    return rc->campaign(rc->ctx, &c);
}

static int pg_campaign_list(sp_store_t *base, sp_store_campaign_cb cb, void *ctx, char *err,
                            size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    row_ctx_t rc = {.ctx = ctx, .campaign = cb};
    if (0 != ready(s, err, errlen))
        return -1;
    return each_row(s, Q_CAMPAIGN_LIST, &p, campaign_row, &rc, "list campaigns", err, errlen);
}

static int recipient_row(void *ctx, const PGresult *res)
{
    row_ctx_t *rc = ctx;
    sp_recipient_t r = {.recipient = PQgetvalue(res, 0, 0)};
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        r.by_class[i] = get_i64(res, 0, 1 + i);
    r.views = sp_tally_views(r.by_class);
    r.clicks = get_i64(res, 0, 5);
    r.first_at = get_i64(res, 0, 6);
    r.last_at = get_i64(res, 0, 7);
    return rc->recipient(rc->ctx, &r);
}

static int pg_recipients(sp_store_t *base, const char *campaign, const char *after, int64_t limit,
                         sp_store_recipient_cb cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    row_ctx_t rc = {.ctx = ctx, .recipient = cb};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, campaign);
    p_text(&p, after ? after : "");
    if (limit >= 0)
        p_int(&p, limit);
    else
        p_null(&p);
    return each_row(s, Q_RECIPIENTS, &p, recipient_row, &rc, "list recipients", err, errlen);
}

/* Row I of RES as an event to RC's callback. */
static int event_at(row_ctx_t *rc, const PGresult *res, int row)
{
    sp_event_row_t r;
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        const sp_event_field_t *f = &sp_event_fields[i];
        const char *v = PQgetvalue(res, row, (int)i);
        switch (f->kind) {
        case SP_FIELD_ID:
        case SP_FIELD_TIME:
        case SP_FIELD_KIND:
        case SP_FIELD_CLASS:
            sp_event_row_set_int(&r, f, strtoll(v, NULL, 10));
            break;
        case SP_FIELD_TEXT:
        case SP_FIELD_OBJECT:
            sp_event_row_set_text(&r, f, v);
            break;
        case SP_FIELD_TEXT_OR_NULL:
            sp_event_row_set_text(&r, f, PQgetisnull(res, row, (int)i) ? NULL : v);
            break;
        case SP_FIELD_COORD:
            sp_event_row_set_coord(&r, f, PQgetisnull(res, row, (int)i) ? NAN : strtod(v, NULL));
            break;
        case SP_FIELD_DURATION:
            sp_event_row_set_int(&r, f, PQgetisnull(res, row, (int)i) ? -1 : strtoll(v, NULL, 10));
            break;
        }
    }
    if (rc->texts && !export_texts(rc->texts, res, row, &r))
        return 0; /* its texts went with it: taken out meanwhile */
    if (!PQgetisnull(res, row, SP_INTERN_APART_COLUMN)) {
        const char *joined = sp_intern_join(
            r.headers_json, PQgetvalue(res, row, SP_INTERN_APART_COLUMN), &rc->headers, &rc->cap);
        if (joined)
            r.headers_json = joined;
    }
    return rc->event(rc->ctx, &r);
}

static int event_row(void *ctx, const PGresult *res)
{
    return event_at(ctx, res, 0);
}

/* Up to this many events are read as one result: an export's page. Single-row mode makes a
 * PGresult (an allocation and a copy) per row, most of the cost of a page; a bigger listing
 * still arrives a row at a time so that it never sits in memory whole. */
#define EVENTS_WHOLE_MAX 1000

static int pg_events(sp_store_t *base, const char *campaign, int64_t before, int64_t limit,
                     sp_store_event_cb cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    row_ctx_t rc = {.ctx = ctx, .event = cb};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, campaign);
    p_int(&p, before > 0 ? before : INT64_MAX);
    if (limit >= 0)
        p_int(&p, limit);
    else
        p_null(&p);
    int ret;
    if (limit < 0 || limit > EVENTS_WHOLE_MAX) {
        ret = each_row(s, Q_EVENTS, &p, event_row, &rc, "list events", err, errlen);
    } else {
        /* Planned for its campaign each time, not by the prepared statement's generic plan:
         * that one assumes every campaign has its share of each week's events, and in a week
         * one big campaign filled it walks the week's primary key backwards for a small
         * campaign, past every event of the big one (22 ms for 100 events of a campaign of
         * 9,000 at ten million events, 1-3 ms planned for it). */
        PGresult *res = exec_q_planned(s, Q_EVENTS, &p, "list events", err, errlen);
        ret = res ? 0 : -1;
        for (int i = 0, n = res ? PQntuples(res) : 0; i < n; i++)
            if (event_at(&rc, res, i))
                break;
        PQclear(res);
    }
    free(rc.headers);
    return ret;
}

/* An export's reading. Each page is a statement, planned for its campaign as pg_events' pages
 * are (1-3 ms over the partitions: an export asks for big pages, so that it is paid once per
 * thousands of rows). When a page's rows arrive, their last ID is the next page's keyset: the
 * next statement is sent before the page is handed out, so that the server plans and reads it
 * while the caller formats, and its rows are taken in before that export_next returns. Nothing
 * is left running on the connection between calls: a statement that waited there for a slow
 * downloader would keep its locks on the partitions (retention's DROP would wait, and the
 * writer's inserts behind it). One page per statement: the whole of the server's work on the
 * next page then runs beside the caller's on this one (with four pages of 1,000 per statement,
 * three were formatted with the server idle: c0's export at ten million events ran at 50-79k
 * rows/s where one page of 4,000 ran at 71-102k alternately). The rows carry the IDs of their
 * interned texts (intern.h), looked up once each per reading, not a copy of the text on every
 * row. */
_Static_assert(1 <= SP_STORE_EXPORT_AHEAD, "a reading holds a page and the next one");
/* Texts of each kind a reading keeps (at most half as many as slots): a page's at least. */
#define EXPORT_TEXTS 8192

typedef struct {
    int64_t id[EXPORT_TEXTS]; /* 0: a free slot */
    char *text[EXPORT_TEXTS]; /* NULL: looked up and not found */
    size_t n;
} export_texts_t;

struct sp_store_export {
    char *campaign;
    int64_t before, left, page; /* the next page's keyset, events it may still read, page size */
    int64_t asked;              /* the limit of the statement last sent */
    PGresult *next;             /* the next page, read ahead */
    bool next_last;             /* no rows after it */
    bool done, failed;
    char why[512]; /* what failed, for the next call */
    export_texts_t agents, sets;
};

/* Rows handed out between two looks at the socket: the next statement's rows are taken in as
 * they come, so the server is not kept waiting on a full socket. */
#define EXPORT_CONSUME_ROWS 128

static sp_store_export_t *pg_export_open(sp_store_t *base, const char *campaign, int64_t before,
                                         int64_t limit, int64_t page)
{
    (void)base;
    sp_store_export_t *x = calloc(1, sizeof(*x));
    if (!x || !(x->campaign = strdup(campaign)))
        abort();
    x->before = before;
    x->left = limit < 0 ? INT64_MAX : limit;
    x->page = page < 1 ? 1 : page > EXPORT_TEXTS / 2 ? EXPORT_TEXTS / 2 : page;
    x->done = !x->left;
    return x;
}

static size_t texts_slot(const export_texts_t *t, int64_t id)
{
    size_t i = (size_t)((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15) >> 40);
    while (t->id[i % EXPORT_TEXTS] && t->id[i % EXPORT_TEXTS] != id)
        i++;
    return i % EXPORT_TEXTS;
}

static void texts_clear(export_texts_t *t)
{
    for (size_t i = 0; i < EXPORT_TEXTS; i++) {
        free(t->text[i]);
        t->text[i] = NULL;
        t->id[i] = 0;
    }
    t->n = 0;
}

/* Fills the texts of row ROW of RES that X has looked up. False when one is gone: the event went
 * with it (the last event that names a text takes it out). */
static bool export_texts(sp_store_export_t *x, const PGresult *res, int row, sp_event_row_t *r)
{
    const int agent = SP_EVENT_N_FIELDS + 1, set = SP_EVENT_N_FIELDS + 2;
    if (!PQgetisnull(res, row, agent)) {
        size_t i = texts_slot(&x->agents, strtoll(PQgetvalue(res, row, agent), NULL, 10));
        if (!x->agents.text[i])
            return false;
        sp_event_row_set_text(r, &sp_event_fields[SP_EVENT_FIELD_user_agent], x->agents.text[i]);
    }
    if (!PQgetisnull(res, row, set)) {
        size_t i = texts_slot(&x->sets, strtoll(PQgetvalue(res, row, set), NULL, 10));
        if (!x->sets.text[i])
            return false;
        sp_event_row_set_text(r, &sp_event_fields[SP_EVENT_FIELD_headers_json], x->sets.text[i]);
    }
    return true;
}

/* Looks up, by statement Q, the texts named in column COL of RES's rows [FROM, TO) that T has
 * not looked up yet. 0, or -1 + ERR. */
static int texts_fetch(pg_store_t *s, export_texts_t *t, int q, const PGresult *res, int from,
                       int to, int col, char *err, size_t errlen)
{
    array_t a = {0};
    size_t want = 0;
    for (int i = from; i < to; i++) {
        if (PQgetisnull(res, i, col))
            continue;
        int64_t id = strtoll(PQgetvalue(res, i, col), NULL, 10);
        size_t k = texts_slot(t, id);
        if (t->id[k])
            continue;
        if (t->n == EXPORT_TEXTS / 2) {
            /* Full: emptied, and the page's texts (at most a page of them) asked again. */
            texts_clear(t);
            free(array_end(&a));
            want = 0;
            i = from - 1;
            continue;
        }
        t->id[k] = id; /* asked once; its text NULL until found */
        t->n++;
        want++;
        array_int(&a, id);
    }
    char *ids = array_end(&a);
    if (!want) {
        free(ids);
        return 0;
    }
    params_t p = {.n = 1, .v = {ids}, .owned = {ids}};
    PGresult *got = exec_q(s, q, &p, "export texts", err, errlen);
    if (!got)
        return -1;
    for (int j = 0; j < PQntuples(got); j++) {
        size_t k = texts_slot(t, get_i64(got, j, 0));
        if (t->id[k] && !t->text[k] && !(t->text[k] = strdup(PQgetvalue(got, j, 1))))
            abort();
    }
    PQclear(got);
    return 0;
}

/* Sends X's next statement, planned for its campaign as pg_events' pages are. */
static int export_send(pg_store_t *s, sp_store_export_t *x, char *err, size_t errlen)
{
    params_t p = {.n = 0};
    x->asked = x->left < x->page ? x->left : x->page;
    p_text(&p, x->campaign);
    p_int(&p, x->before > 0 ? x->before : INT64_MAX);
    p_int(&p, x->asked);
    int sent = PQsendQueryParams(s->conn, statement_sql(Q_EXPORT), p.n, NULL, p.v, NULL, NULL, 0);
    p_clear(&p);
    return sent ? 0 : set_err(s, err, errlen, "export events", NULL);
}

/* The rows of the statement export_send sent, read to their end (the next keyset taken from
 * them; *LAST when none follow): NULL + ERR when it failed. */
static PGresult *export_recv(pg_store_t *s, sp_store_export_t *x, bool *last, char *err,
                             size_t errlen)
{
    PGresult *res, *got = NULL;
    bool failed = false;
    while ((res = PQgetResult(s->conn))) {
        if (!got && !failed && PGRES_TUPLES_OK == PQresultStatus(res)) {
            got = res;
            continue;
        }
        if (!failed)
            set_err(s, err, errlen, "export events", res);
        failed = true;
        PQclear(res);
    }
    if (!failed && !got)
        set_err(s, err, errlen, "export events", NULL);
    if (failed || !got) {
        PQclear(got);
        return NULL;
    }
    int n = PQntuples(got);
    x->left -= n;
    if (n)
        x->before = get_i64(got, n - 1, SP_EVENT_FIELD_id);
    *last = n < x->asked || !x->left;
    return got;
}

static int pg_export_next(sp_store_t *base, sp_store_export_t *x, sp_store_event_cb cb, void *ctx,
                          char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    if (x->done)
        return 1;
    if (x->failed) {
        snprintf(err, errlen, "%s", x->why[0] ? x->why : "export: an earlier page failed");
        x->why[0] = '\0';
        return -1;
    }
    PGresult *page = x->next;
    bool last = x->next_last;
    x->next = NULL;
    if (!page && (0 != ready(s, err, errlen) || 0 != export_send(s, x, err, errlen) ||
                  !(page = export_recv(s, x, &last, err, errlen)))) {
        x->failed = true;
        return -1;
    }
    int n = PQntuples(page);
    if (0 != ready(s, err, errlen) ||
        0 != texts_fetch(s, &x->agents, Q_EXPORT_AGENTS, page, 0, n, SP_EVENT_N_FIELDS + 1, err,
                         errlen) ||
        0 != texts_fetch(s, &x->sets, Q_EXPORT_SETS, page, 0, n, SP_EVENT_N_FIELDS + 2, err,
                         errlen)) {
        PQclear(page);
        x->failed = true;
        return -1;
    }
    bool ahead = false;
    if (!last) {
        if (0 != export_send(s, x, x->why, sizeof(x->why)))
            x->failed = true; /* this page is whole: the next call says it */
        else
            ahead = true;
    }
    row_ctx_t rc = {.ctx = ctx, .event = cb, .texts = x};
    bool stopped = false;
    for (int i = 0; i < n && !stopped; i++) {
        if (ahead && i % EXPORT_CONSUME_ROWS == EXPORT_CONSUME_ROWS - 1)
            PQconsumeInput(s->conn); /* a failure is export_recv's to report */
        stopped = event_at(&rc, page, i);
    }
    free(rc.headers);
    PQclear(page);
    if (ahead && !(x->next = export_recv(s, x, &x->next_last, x->why, sizeof(x->why))))
        x->failed = true;
    x->done = last;
    if (stopped) {
        x->done = true;
        x->failed = false;
    }
    return x->done;
}

static void pg_export_close(sp_store_t *base, sp_store_export_t *x)
{
    (void)base;
    if (!x)
        return;
    PQclear(x->next);
    texts_clear(&x->agents);
    texts_clear(&x->sets);
    free(x->campaign);
    free(x);
}

/* ---- reports -------------------------------------------------------------------------------- */

typedef struct {
    const sp_store_report_cb_t *cb;
    void *ctx;
    const sp_store_span_t *span;
    bool inexact;      /* the people rows are not exact: the distinct query's instead */
    int64_t got[2][3]; /* the people rows, held until all are known exact */
    int n_got;
} report_ctx_t;

/* Row ROW of statement Q's result RES. */
static int report_row(report_ctx_t *rc, int q, const PGresult *res, int row)
{
    if (Q_REPORT_COUNTS == q) {
        int64_t c[SP_ROLLUP_COUNTS];
        for (int i = 0; i < SP_ROLLUP_COUNTS; i++)
            c[i] = get_i64(res, row, 1 + i);
        return rc->cb->counts(rc->ctx, get_i64(res, row, 0), c);
    }
    if (Q_REPORT_VALUES == q || Q_REPORT_OUTSIDE == q)
        return rc->cb->value(rc->ctx, (int)get_i64(res, row, 0), PQgetvalue(res, row, 1),
                             get_i64(res, row, 2));
    if (Q_REPORT_PEOPLE == q) {
        if (!sp_rollup_people_exact(rc->span->hour_from, rc->span->hour_to, get_i64(res, row, 3),
                                    get_i64(res, row, 4)))
            rc->inexact = true;
        else if (rc->n_got < 2)
            for (int j = 0; j < 3; j++)
                rc->got[rc->n_got][j] = get_i64(res, row, j);
        rc->n_got++;
        return 0;
    }
    return rc->cb->distinct(rc->ctx, (int)get_i64(res, row, 0), get_i64(res, row, 1),
                            get_i64(res, row, 2));
}

/* Statements QS[0..N) with their parameters PS (cleared) in one pipeline, each result read
 * whole (a report's rows are bounded by its quarters and values) and given to report_row in
 * order. 0, or -1 + ERR with the transaction rolled back. */
static int report_pipe(pg_store_t *s, report_ctx_t *rc, const int *qs, params_t *ps, int n,
                       char *err, size_t errlen)
{
    bool synced = false;
    if (!PQenterPipelineMode(s->conn)) {
        for (int i = 0; i < n; i++)
            p_clear(&ps[i]);
        set_err(s, err, errlen, "report", NULL);
        rollback(s);
        return -1;
    }
    int sent = 0;
    for (; sent < n; sent++) {
        char name[16];
        stmt_name(qs[sent], name, sizeof(name));
        int ok = PQsendQueryPrepared(s->conn, name, ps[sent].n, ps[sent].v, NULL, NULL, 0);
        p_clear(&ps[sent]);
        if (!ok)
            break;
    }
    for (int i = sent; i < n; i++)
        p_clear(&ps[i]);
    if (sent < n || !PQpipelineSync(s->conn))
        goto fail;
    synced = true;
    for (int i = 0; i < n; i++) {
        PGresult *res = PQgetResult(s->conn);
        if (PGRES_TUPLES_OK != PQresultStatus(res)) {
            set_err(s, err, errlen, "report", res);
            PQclear(res);
            pipe_abort(s, synced);
            return -1;
        }
        for (int row = 0, rows = PQntuples(res); row < rows; row++)
            if (report_row(rc, qs[i], res, row))
                break;
        PQclear(res);
        /* Each statement's results end with a NULL in pipeline mode. */
        if ((res = PQgetResult(s->conn))) {
            PQclear(res);
            goto fail;
        }
    }
    PGresult *res = PQgetResult(s->conn);
    bool sync = PGRES_PIPELINE_SYNC == PQresultStatus(res);
    PQclear(res);
    if (sync && PQexitPipelineMode(s->conn))
        return 0;
    synced = sync;
fail:
    set_err(s, err, errlen, "report", NULL);
    pipe_abort(s, synced);
    return -1;
}

static int pg_report(sp_store_t *base, const char *campaign, const sp_store_span_t *span,
                     const sp_store_report_cb_t *cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    report_ctx_t rc = {.cb = cb, .ctx = ctx, .span = span};
    /* The hours read from rollup_values: those before and after the whole days, or all of
     * them when there are none. */
    bool days = span->day_from < span->day_to, outside = false;
    int64_t out[10];
    /* One snapshot: the queries see the same commits. */
    if (0 != ready(s, err, errlen) ||
        0 != exec_sql(s, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "report", err, errlen))
        return -1;
    /* The campaign's first and last quarter: which way its breakdowns read less, and whether
     * its people can be exact (their hours lie within these). */
    p_text(&p, campaign);
    PGresult *res = exec_q(s, Q_REPORT_LIFE, &p, "report", err, errlen);
    if (!res) {
        rollback(s);
        return -1;
    }
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0)) {
        int64_t first = get_i64(res, 0, 0), last = get_i64(res, 0, 1);
        outside = sp_rollup_outside(span->edge_from[0], span->edge_to[1], span->day_from,
                                    span->day_to, first, last, out);
        rc.inexact = !sp_rollup_people_exact(span->hour_from, span->hour_to, first / 4, last / 4);
    }
    PQclear(res);
    /* Counts, values, and the distinct people from rollup_people, or from rollup_values when
     * those are not exact (rollup.h), in one round trip. */
    int qs[3];
    params_t ps[3] = {{.n = 0}};
    for (int i = 0; i < 3; i++) {
        qs[i] = 0 == i   ? Q_REPORT_COUNTS
                : 1 == i ? (outside ? Q_REPORT_OUTSIDE : Q_REPORT_VALUES)
                         : (rc.inexact ? Q_REPORT_DISTINCT : Q_REPORT_PEOPLE);
        params_t *q = &ps[i];
        p_text(q, campaign);
        if (Q_REPORT_OUTSIDE == qs[i]) {
            for (int j = 0; j < 10; j++)
                p_int(q, out[j]);
            continue;
        }
        p_int(q, span->hour_from);
        p_int(q, span->hour_to);
        for (int e = 0; e < 2; e++) {
            p_int(q, span->edge_from[e]);
            p_int(q, span->edge_to[e]);
        }
        if (Q_REPORT_VALUES == qs[i]) {
            p_int(q, days ? span->day_from * 24 : span->hour_to);
            p_int(q, days ? span->day_to * 24 : span->hour_to);
            p_int(q, span->day_from);
            p_int(q, span->day_to);
        }
        if (2 == i)
            p_int(q, span->no_openers ? SP_ROLLUP_CLICKER : SP_ROLLUP_OPENER);
    }
    if (0 != report_pipe(s, &rc, qs, ps, 3, err, errlen))
        return -1;
    if (Q_REPORT_PEOPLE == qs[2] && rc.inexact) {
        /* A person's rows begin before the hours or end after them: the distinct count. */
        int q = Q_REPORT_DISTINCT;
        p_text(&ps[0], campaign);
        p_int(&ps[0], span->hour_from);
        p_int(&ps[0], span->hour_to);
        for (int e = 0; e < 2; e++) {
            p_int(&ps[0], span->edge_from[e]);
            p_int(&ps[0], span->edge_to[e]);
        }
        p_int(&ps[0], span->no_openers ? SP_ROLLUP_CLICKER : SP_ROLLUP_OPENER);
        if (0 != report_pipe(s, &rc, &q, ps, 1, err, errlen))
            return -1;
    } else if (Q_REPORT_PEOPLE == qs[2]) {
        for (int j = 0; j < rc.n_got && j < 2; j++)
            if (cb->distinct(ctx, (int)rc.got[j][0], rc.got[j][1], rc.got[j][2]))
                break;
    }
    return exec_sql(s, "COMMIT", "report", err, errlen);
}

/* ---- filtered and sorted pages -------------------------------------------------------------- */

/* Runs SQL (not prepared: its shape depends on the filters) with PARAMS, each row to FN. */
static int each_row_sql(pg_store_t *s, const char *sql, const sp_query_param_t *params, int n,
                        row_fn fn, void *ctx, const char *what, char *err, size_t errlen)
{
    params_t p = {.n = 0};
    for (int i = 0; i < n; i++)
        if (params[i].text)
            p_text(&p, params[i].s);
        else
            p_int(&p, params[i].n);
    bool stopped = false, failed = false;
    int sent = PQsendQueryParams(s->conn, sql, p.n, NULL, p.v, NULL, NULL, 0);
    p_clear(&p);
    if (!sent)
        return set_err(s, err, errlen, what, NULL);
    if (!PQsetSingleRowMode(s->conn)) {
        set_err(s, err, errlen, what, NULL);
        failed = true;
    }
    PGresult *res;
    while ((res = PQgetResult(s->conn))) {
        switch (PQresultStatus(res)) {
        case PGRES_SINGLE_TUPLE:
            if (!stopped && !failed && fn(ctx, res))
                stopped = true;
            break;
        case PGRES_TUPLES_OK:
            break;
        default:
            if (!failed)
                set_err(s, err, errlen, what, res);
            failed = true;
        }
        PQclear(res);
    }
    return failed ? -1 : 0;
}

static int pg_events_query(sp_store_t *base, const sp_query_events_t *q, sp_store_event_cb cb,
                           void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    row_ctx_t rc = {.ctx = ctx, .event = cb};
    char cols[1024], sql[4096];
    sp_query_param_t params[SP_QUERY_PARAMS];
    int n;
    if (0 != ready(s, err, errlen))
        return -1;
    sp_intern_select_sql(cols, sizeof(cols));
    sp_query_events_sql(q, cols, '$', sql, sizeof(sql), params, &n);
    int ret = each_row_sql(s, sql, params, n, event_row, &rc, "list events", err, errlen);
    free(rc.headers);
    return ret;
}

static int pg_recipients_sorted(sp_store_t *base, const sp_query_recipients_t *q,
                                sp_store_recipient_cb cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    row_ctx_t rc = {.ctx = ctx, .recipient = cb};
    char sql[2048];
    sp_query_param_t params[SP_QUERY_PARAMS];
    int n;
    if (0 != ready(s, err, errlen))
        return -1;
    sp_query_recipients_sql(q, '$', sql, sizeof(sql), params, &n);
    return each_row_sql(s, sql, params, n, recipient_row, &rc, "list recipients", err, errlen);
}

/* ---- trackers and links --------------------------------------------------------------------- */

static int pg_tracker_put(sp_store_t *base, const sp_store_tracker_t *t, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, t->campaign);
    p_text(&p, t->recipient);
    p_text(&p, t->kind);
    p_text(&p, t->target);
    p_text(&p, t->url);
    p_int(&p, t->created_at);
    PGresult *res = exec_q(s, Q_TRACKER_PUT, &p, "record tracker", err, errlen);
    PQclear(res);
    return res ? 0 : -1;
}

typedef struct {
    sp_store_tracker_cb tracker;
    sp_store_link_cb link;
    void *ctx;
} made_ctx_t;

static int tracker_row(void *ctx, const PGresult *res)
{
    made_ctx_t *mc = ctx;
    sp_store_tracker_t t = {get_i64(res, 0, 0),    PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                            PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5),
                            get_i64(res, 0, 6)};
    return mc->tracker(mc->ctx, &t);
}

static int pg_trackers(sp_store_t *base, const char *campaign, int64_t before, int64_t limit,
                       sp_store_tracker_cb cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    made_ctx_t mc = {.tracker = cb, .ctx = ctx};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, campaign);
    p_int(&p, before > 0 ? before : INT64_MAX);
    p_int(&p, limit);
    return each_row(s, Q_TRACKERS, &p, tracker_row, &mc, "list trackers", err, errlen);
}

static int link_row(void *ctx, const PGresult *res)
{
    made_ctx_t *mc = ctx;
    sp_store_link_t l = {PQgetvalue(res, 0, 0), get_i64(res, 0, 1), get_i64(res, 0, 2),
                         get_i64(res, 0, 3),    get_i64(res, 0, 4), get_i64(res, 0, 5)};
    return mc->link(mc->ctx, &l);
}

static int pg_links(sp_store_t *base, const char *campaign, sp_store_link_cb cb, void *ctx,
                    char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    made_ctx_t mc = {.link = cb, .ctx = ctx};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, campaign);
    return each_row(s, Q_LINKS, &p, link_row, &mc, "list links", err, errlen);
}

/* ---- the people a campaign was sent to ------------------------------------------------------- */

static int pg_sent_put(sp_store_t *base, const char *campaign, const char *const *addrs, size_t n,
                       int64_t *stored, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    PGresult *res = NULL;
    *stored = 0;
    /* The IDs hold no quote, backslash or comma (sp_event_id_valid): each is quoted, so that
     * none reads as NULL. */
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += strlen(addrs[i]) + 3;
    char *arr = xcalloc(len, 1), *o = arr;
    *o++ = '{';
    for (size_t i = 0; i < n; i++)
        o += sprintf(o, "%s\"%s\"", i ? "," : "", addrs[i]);
    *o++ = '}';
    if (0 != ready(s, err, errlen) || 0 != exec_sql(s, "BEGIN", "sent list", err, errlen)) {
        free(arr);
        return -1;
    }
    p_text(&p, campaign);
    if (!(res = exec_q(s, Q_SENT_DELETE, &p, "sent list", err, errlen)))
        goto fail;
    PQclear(res);
    p_text(&p, campaign);
    p_text(&p, arr);
    if (!(res = exec_q(s, Q_SENT_INSERT, &p, "sent list", err, errlen)))
        goto fail;
    *stored = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    free(arr);
    return exec_sql(s, "COMMIT", "sent list", err, errlen);
fail:
    free(arr);
    rollback(s);
    return -1;
}

static int pg_sent_stats(sp_store_t *base, const char *campaign, sp_store_sent_t *out, char *err,
                         size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    *out = (sp_store_sent_t){0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, campaign);
    PGresult *res = exec_q(s, Q_SENT_STATS, &p, "sent list", err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) > 0)
        *out = (sp_store_sent_t){get_i64(res, 0, 0), get_i64(res, 0, 1), get_i64(res, 0, 2)};
    PQclear(res);
    return 0;
}

typedef struct {
    sp_store_name_cb cb;
    void *ctx;
} name_ctx_t;

static int name_row(void *ctx, const PGresult *res)
{
    name_ctx_t *nc = ctx;
    return nc->cb(nc->ctx, PQgetvalue(res, 0, 0));
}

static int pg_not_opened(sp_store_t *base, const char *campaign, const char *after, int64_t limit,
                         sp_store_name_cb cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    name_ctx_t nc = {cb, ctx};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, campaign);
    p_text(&p, after ? after : "");
    if (limit >= 0)
        p_int(&p, limit);
    else
        p_null(&p);
    return each_row(s, Q_NOT_OPENED, &p, name_row, &nc, "not opened", err, errlen);
}

/* ---- unknown campaigns ---------------------------------------------------------------------- */

typedef struct {
    void *ctx;
    sp_store_unknown_cb unknown;
    sp_store_kept_cb kept;
} unknown_ctx_t;

static int unknown_row(void *ctx, const PGresult *res)
{
    unknown_ctx_t *uc = ctx;
    sp_unknown_campaign_t u = {
        .opens = get_i64(res, 0, 1),
        .first_at = get_i64(res, 0, 2),
        .last_at = get_i64(res, 0, 3),
    };
    snprintf(u.id, sizeof(u.id), "%s", PQgetvalue(res, 0, 0));
    return uc->unknown(uc->ctx, &u);
}

static int pg_unknown_list(sp_store_t *base, sp_store_unknown_cb cb, void *ctx, char *err,
                           size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    unknown_ctx_t uc = {.ctx = ctx, .unknown = cb};
    if (0 != ready(s, err, errlen))
        return -1;
    return each_row(s, Q_UNKNOWN_LIST, &p, unknown_row, &uc, "list unknown campaigns", err, errlen);
}

static int kept_row(void *ctx, const PGresult *res)
{
    unknown_ctx_t *uc = ctx;
    size_t len = 0;
    unsigned char *record = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 1), &len);
    if (!record)
        abort();
    int rc = uc->kept(uc->ctx, get_i64(res, 0, 0), record, len);
    PQfreemem(record);
    return rc;
}

static int pg_unknown_opens(sp_store_t *base, const char *id, sp_store_kept_cb cb, void *ctx,
                            char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    unknown_ctx_t uc = {.ctx = ctx, .kept = cb};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, id);
    return each_row(s, Q_UNKNOWN_OPENS, &p, kept_row, &uc, "read kept opens", err, errlen);
}

static int pg_unknown_delete(sp_store_t *base, const char *id, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, id);
    PGresult *res = exec_q(s, Q_UNKNOWN_DELETE, &p, "forget unknown campaign", err, errlen);
    if (!res)
        return -1;
    int ret = PQntuples(res) > 0 && get_i64(res, 0, 0) > 0 ? 0 : 1;
    PQclear(res);
    return ret;
}

/* ---- privacy -------------------------------------------------------------------------------- */

static int pg_purge_before(sp_store_t *base, int64_t before_ms, int64_t *deleted, char *err,
                           size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    *deleted = 0;
    if (0 != ready(s, err, errlen) || 0 != drop_partitions(s, before_ms, deleted, err, errlen))
        return -1;
    /* What remains before the cut: the week that straddles it, events_default, and a partition
     * whose lock did not come in time. */
    gone_t gone = {{NULL, NULL}, {0, 0}};
    if (0 != exec_sql(s, "BEGIN", "purge", err, errlen))
        return -1;
    p_int(&p, before_ms);
    PGresult *res = exec_q(s, Q_PURGE, &p, "purge", err, errlen);
    if (!res)
        goto fail;
    *deleted += get_i64(res, 0, 0);
    gone_add(&gone, res, 1);
    PQclear(res);
    p_int(&p, before_ms);
    if (!(res = exec_q(s, Q_UNKNOWN_PURGE, &p, "purge", err, errlen)))
        goto fail;
    *deleted += PQntuples(res) > 0 ? get_i64(res, 0, 0) : 0;
    PQclear(res);
    if (0 != intern_gc(s, &gone, "purge", err, errlen))
        goto fail;
    gone_free(&gone);
    return exec_sql(s, "COMMIT", "purge", err, errlen);
fail:
    gone_free(&gone);
    rollback(s);
    return -1;
}

/* The recipient's rows are locked first, then each is deleted and its counts taken out of its
 * campaign, campaign by campaign: the order in which writers lock. A row a writer creates
 * meanwhile is left as it is (an open that came as the recipient was being forgotten); its
 * events go with the others. */
static int pg_forget(sp_store_t *base, const char *recipient, int64_t *deleted, char *err,
                     size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    PGresult *rows = NULL, *res = NULL;
    gone_t gone = {{NULL, NULL}, {0, 0}};
    if (!recipient || !*recipient) {
        /* "" is how events without a recipient are stored: never erase those. */
        snprintf(err, errlen, "forget: no recipient given");
        return -1;
    }
    if (0 != ready(s, err, errlen) || 0 != exec_sql(s, "BEGIN", "forget", err, errlen))
        return -1;
    p_text(&p, recipient);
    if (!(rows = exec_q(s, Q_FORGET_LOCK, &p, "forget", err, errlen)))
        goto fail;
    *deleted = 0;
    for (int i = 0; i < PQntuples(rows); i++) {
        p_text(&p, PQgetvalue(rows, i, 0));
        p_text(&p, recipient);
        if (!(res = exec_q(s, Q_FORGET_COUNTS, &p, "forget", err, errlen)))
            goto fail;
        PQclear(res);
        /* Their share of the rollups, from their events before those go. */
        for (int q = Q_FORGET_ROLLUP_COUNTS; q <= Q_FORGET_ROLLUP_PEOPLE; q++) {
            p_text(&p, PQgetvalue(rows, i, 0));
            p_text(&p, recipient);
            if (!(res = exec_q(s, q, &p, "forget", err, errlen)))
                goto fail;
            PQclear(res);
        }
        /* Through events_campaign: there is no index of events by recipient. */
        p_text(&p, PQgetvalue(rows, i, 0));
        p_text(&p, recipient);
        if (!(res = exec_q(s, Q_FORGET_EVENTS, &p, "forget", err, errlen)))
            goto fail;
        *deleted += get_i64(res, 0, 0);
        gone_add(&gone, res, 1);
        PQclear(res);
    }
    PQclear(rows);
    rows = NULL;
    p_text(&p, recipient);
    if (!(res = exec_q(s, Q_FORGET_UNKNOWN, &p, "forget", err, errlen)))
        goto fail;
    *deleted += PQntuples(res) > 0 ? get_i64(res, 0, 0) : 0;
    PQclear(res);
    if (!(res = exec_q(s, Q_FORGET_UNKNOWN_EMPTY, &p, "forget", err, errlen)))
        goto fail;
    PQclear(res);
    if (0 != intern_gc(s, &gone, "forget", err, errlen))
        goto fail;
    gone_free(&gone);
    return exec_sql(s, "COMMIT", "forget", err, errlen);
fail:
    PQclear(rows);
    gone_free(&gone);
    rollback(s);
    return -1;
}

static int pg_campaign_delete(sp_store_t *base, const char *id, int64_t *deleted, char *err,
                              size_t errlen)
{
    pg_store_t *s = (pg_store_t *)base;
    params_t p = {.n = 0};
    PGresult *res = NULL;
    gone_t gone = {{NULL, NULL}, {0, 0}};
    *deleted = 0;
    if (0 != ready(s, err, errlen) || 0 != exec_sql(s, "BEGIN", "delete campaign", err, errlen))
        return -1;
    p_text(&p, id);
    if (!(res = exec_q(s, Q_CAMPAIGN_LOCK, &p, "delete campaign", err, errlen)))
        goto fail;
    bool found = PQntuples(res) > 0;
    PQclear(res);
    if (!found) {
        rollback(s);
        return 1;
    }
    p_text(&p, id);
    if (!(res = exec_q(s, Q_CAMPAIGN_DELETE_EVENTS, &p, "delete campaign", err, errlen)))
        goto fail;
    *deleted = get_i64(res, 0, 0);
    gone_add(&gone, res, 1);
    PQclear(res);
    p_text(&p, id);
    if (!(res = exec_q(s, Q_CAMPAIGN_DELETE, &p, "delete campaign", err, errlen)))
        goto fail;
    PQclear(res);
    if (0 != intern_gc(s, &gone, "delete campaign", err, errlen))
        goto fail;
    gone_free(&gone);
    return exec_sql(s, "COMMIT", "delete campaign", err, errlen);
fail:
    gone_free(&gone);
    rollback(s);
    return -1;
}

/* ---- auth and meta: small key/value lookups ------------------------------------------------- */

/* Runs Q with P, copying the first row's first column into OUT (and its second into OUT2).
 * 0 found or done, 1 no row when OUT asks for one, -1 error. */
static int lookup(pg_store_t *s, int q, params_t *p, char *out, size_t outlen, char *out2,
                  size_t out2len, char *err, size_t errlen)
{
    if (0 != ready(s, err, errlen)) {
        p_clear(p);
        return -1;
    }
    PGresult *res = exec_q(s, q, p, "query", err, errlen);
    if (!res)
        return -1;
    int ret = out ? 1 : 0;
    if (PQntuples(res) > 0) {
        if (out)
            snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
        if (out2)
            snprintf(out2, out2len, "%s", PQgetvalue(res, 0, 1));
        ret = 0;
    }
    PQclear(res);
    return ret;
}

/* Runs Q (with NAME and, when the query takes it, ARG) then ends NAME's sessions and tokens,
 * in one transaction; *CHANGED gets the rows Q changed. */
static int user_change(pg_store_t *s, int q, const char *name, const char *arg, bool with_time,
                       int64_t *changed, char *err, size_t errlen)
{
    params_t p = {.n = 0};
    PGresult *res;
    if (0 != ready(s, err, errlen) || 0 != exec_sql(s, "BEGIN", "user", err, errlen))
        return -1;
    p_text(&p, name);
    if (arg)
        p_text(&p, arg);
    if (with_time)
        p_int(&p, sp_now_ms());
    if (!(res = exec_q(s, q, &p, "user", err, errlen)))
        goto fail;
    *changed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    const int ends[] = {Q_USER_SESSIONS_END, Q_USER_TOKENS_END};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
        p_text(&p, name);
        if (!(res = exec_q(s, ends[i], &p, "user", err, errlen)))
            goto fail;
        PQclear(res);
    }
    return exec_sql(s, "COMMIT", "user", err, errlen);
fail:
    rollback(s);
    return -1;
}

static int pg_user_put(sp_store_t *b, const char *name, const char *pwhash, bool create, char *err,
                       size_t errlen)
{
    int64_t changed = 0;
    if (0 != user_change((pg_store_t *)b, create ? Q_USER_PUT : Q_USER_UPDATE, name, pwhash, create,
                         &changed, err, errlen))
        return -1;
    return changed ? 0 : 1;
}

static int pg_user_delete(sp_store_t *b, const char *name, char *err, size_t errlen)
{
    int64_t changed = 0;
    if (0 != user_change((pg_store_t *)b, Q_USER_DELETE, name, NULL, false, &changed, err, errlen))
        return -1;
    return changed ? 0 : 1;
}

static int user_row(void *ctx, const PGresult *res)
{
    row_ctx_t *rc = ctx;
    sp_user_row_t r = {
        .name = PQgetvalue(res, 0, 0),
        .created_at = get_i64(res, 0, 1),
        .sessions = get_i64(res, 0, 2),
        .tokens = get_i64(res, 0, 3),
    };
    return rc->user(rc->ctx, &r);
}

static int pg_user_list(sp_store_t *b, sp_store_user_cb cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)b;
    params_t p = {.n = 0};
    row_ctx_t rc = {.ctx = ctx, .user = cb};
    if (0 != ready(s, err, errlen))
        return -1;
    p_int(&p, sp_now_ms());
    return each_row(s, Q_USER_LIST, &p, user_row, &rc, "list users", err, errlen);
}

static int pg_user_get(sp_store_t *b, const char *name, char *pwhash, size_t pwlen, char *err,
                       size_t errlen)
{
    params_t p = {.n = 0};
    p_text(&p, name);
    return lookup((pg_store_t *)b, Q_USER_GET, &p, pwhash, pwlen, NULL, 0, err, errlen);
}

static int pg_token_put(sp_store_t *b, const char *hash, const char *name, const char *owner,
                        char *err, size_t errlen)
{
    params_t p = {.n = 0};
    p_text(&p, hash);
    p_text(&p, name);
    p_text(&p, owner);
    p_int(&p, sp_now_ms());
    return lookup((pg_store_t *)b, Q_TOKEN_PUT, &p, NULL, 0, NULL, 0, err, errlen);
}

static int token_row(void *ctx, const PGresult *res)
{
    row_ctx_t *rc = ctx;
    sp_token_row_t r = {
        .name = PQgetvalue(res, 0, 1),
        .owner = PQgetisnull(res, 0, 2) ? NULL : PQgetvalue(res, 0, 2),
        .created_at = get_i64(res, 0, 3),
    };
    snprintf(r.id, sizeof(r.id), "%s", PQgetvalue(res, 0, 0));
    return rc->token(rc->ctx, &r);
}

static int pg_token_list(sp_store_t *b, sp_store_token_cb cb, void *ctx, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)b;
    params_t p = {.n = 0};
    row_ctx_t rc = {.ctx = ctx, .token = cb};
    if (0 != ready(s, err, errlen))
        return -1;
    return each_row(s, Q_TOKEN_LIST, &p, token_row, &rc, "list tokens", err, errlen);
}

static int pg_token_revoke(sp_store_t *b, const char *id_or_name, int64_t *revoked, char *err,
                           size_t errlen)
{
    pg_store_t *s = (pg_store_t *)b;
    params_t p = {.n = 0};
    if (0 != ready(s, err, errlen))
        return -1;
    p_text(&p, id_or_name);
    PGresult *res = exec_q(s, Q_TOKEN_REVOKE, &p, "revoke token", err, errlen);
    if (!res)
        return -1;
    *revoked = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return 0;
}

static int pg_token_get(sp_store_t *b, const char *hash, char *name, size_t namelen, char *err,
                        size_t errlen)
{
    params_t p = {.n = 0};
    p_text(&p, hash);
    return lookup((pg_store_t *)b, Q_TOKEN_GET, &p, name, namelen, NULL, 0, err, errlen);
}

static int pg_session_put(sp_store_t *b, const char *hash, const char *user, const char *csrf,
                          int64_t expires_ms, char *err, size_t errlen)
{
    params_t p = {.n = 0};
    /* Expired sessions go whenever a new one comes. */
    p_int(&p, sp_now_ms());
    if (0 > lookup((pg_store_t *)b, Q_SESSION_PURGE, &p, NULL, 0, NULL, 0, err, errlen))
        return -1;
    p_text(&p, hash);
    p_text(&p, user);
    p_text(&p, csrf);
    p_int(&p, expires_ms);
    return lookup((pg_store_t *)b, Q_SESSION_PUT, &p, NULL, 0, NULL, 0, err, errlen);
}

static int pg_session_get(sp_store_t *b, const char *hash, int64_t now_ms, char *user,
                          size_t userlen, char *csrf, size_t csrflen, char *err, size_t errlen)
{
    params_t p = {.n = 0};
    p_text(&p, hash);
    p_int(&p, now_ms);
    return lookup((pg_store_t *)b, Q_SESSION_GET, &p, user, userlen, csrf, csrflen, err, errlen);
}

static int pg_session_delete(sp_store_t *b, const char *hash, char *err, size_t errlen)
{
    params_t p = {.n = 0};
    p_text(&p, hash);
    return lookup((pg_store_t *)b, Q_SESSION_DELETE, &p, NULL, 0, NULL, 0, err, errlen);
}

static int pg_meta_get(sp_store_t *b, const char *key, char *value, size_t len, char *err,
                       size_t errlen)
{
    params_t p = {.n = 0};
    p_text(&p, key);
    return lookup((pg_store_t *)b, Q_META_GET, &p, value, len, NULL, 0, err, errlen);
}

static int pg_meta_put_new(sp_store_t *b, const char *key, const char *value, char *err,
                           size_t errlen)
{
    params_t p = {.n = 0};
    p_text(&p, key);
    p_text(&p, value);
    return lookup((pg_store_t *)b, Q_META_PUT_NEW, &p, NULL, 0, NULL, 0, err, errlen);
}

/* Images travel as binary parameters and results: no escaping of megabytes of bytes. */
static int pg_image_put(sp_store_t *b, const char *id, const char *campaign, const char *mime,
                        const void *data, size_t len, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)b;
    char now[32];
    snprintf(now, sizeof(now), "%lld", (long long)sp_now_ms());
    const char *values[5] = {id, campaign, mime, data, now};
    int lengths[5] = {0, 0, 0, (int)len, 0}, formats[5] = {0, 0, 0, 1, 0};
    if (0 != ready(s, err, errlen))
        return -1;
    PGresult *res = PQexecParams(s->conn,
                                 "INSERT INTO images(id, campaign, mime, data, created_at)"
                                 " VALUES($1, $2, $3, $4, $5)",
                                 5, NULL, values, lengths, formats, 0);
    int ret =
        PGRES_COMMAND_OK == PQresultStatus(res) ? 0 : set_err(s, err, errlen, "save image", res);
    PQclear(res);
    return ret;
}

static int pg_image_get(sp_store_t *b, const char *id, char *mime, size_t mimelen, void **data,
                        size_t *len, char *err, size_t errlen)
{
    pg_store_t *s = (pg_store_t *)b;
    const char *values[1] = {id};
    if (0 != ready(s, err, errlen))
        return -1;
    PGresult *res = PQexecParams(s->conn, "SELECT mime, data FROM images WHERE id = $1", 1, NULL,
                                 values, NULL, NULL, 1);
    int ret;
    if (PGRES_TUPLES_OK != PQresultStatus(res)) {
        ret = set_err(s, err, errlen, "read image", res);
    } else if (0 == PQntuples(res)) {
        ret = 1;
    } else {
        snprintf(mime, mimelen, "%.*s", PQgetlength(res, 0, 0), PQgetvalue(res, 0, 0));
        *len = (size_t)PQgetlength(res, 0, 1);
        *data = malloc(*len ? *len : 1);
        if (!*data)
            abort();
        memcpy(*data, PQgetvalue(res, 0, 1), *len);
        ret = 0;
    }
    PQclear(res);
    return ret;
}

/* ---- open and close ------------------------------------------------------------------------- */

static void pg_close(sp_store_t *base)
{
    pg_store_t *s = (pg_store_t *)base;
    PQfinish(s->conn);
    free(s->coords);
    sp_intern_free(s->agents);
    sp_intern_free(s->sets);
    free(s);
}

/* A fault is this connection's: the writer's connection stops the writer. */
static sp_store_failure_t pg_failure(sp_store_t *base, char *why, size_t len)
{
    pg_store_t *s = (pg_store_t *)base;
    if (s->faulted) {
        if (why)
            snprintf(why, len, "%s", s->why);
        return SP_STORE_FAIL_FAULT;
    }
    return s->last;
}

/* PostgreSQL checks its pages itself as it reads them (with data checksums on), and reports
 * damage as XX001, which faults the store (classify_failure): nothing bounded to run here. */
static int pg_check(sp_store_t *base, int budget_ms, bool *complete, char *err, size_t errlen)
{
    (void)base;
    (void)budget_ms;
    (void)err;
    (void)errlen;
    *complete = true;
    return 0;
}

static const sp_store_ops_t pg_ops = {
    .name = "postgres",
    .close = pg_close,
    .write_batch = pg_write_batch,
    .campaign_create = pg_campaign_create,
    .campaign_get = pg_campaign_get,
    .engagement = pg_engagement,
    .campaign_list = pg_campaign_list,
    .recipients = pg_recipients,
    .events = pg_events,
    .export_open = pg_export_open,
    .export_next = pg_export_next,
    .export_close = pg_export_close,
    .report = pg_report,
    .campaign_archive = pg_campaign_archive,
    .events_query = pg_events_query,
    .recipients_sorted = pg_recipients_sorted,
    .tracker_put = pg_tracker_put,
    .trackers = pg_trackers,
    .links = pg_links,
    .sent_put = pg_sent_put,
    .sent_stats = pg_sent_stats,
    .not_opened = pg_not_opened,
    .unknown_list = pg_unknown_list,
    .unknown_opens = pg_unknown_opens,
    .unknown_delete = pg_unknown_delete,
    .purge_before = pg_purge_before,
    .forget = pg_forget,
    .campaign_delete = pg_campaign_delete,
    .user_put = pg_user_put,
    .user_get = pg_user_get,
    .user_delete = pg_user_delete,
    .user_list = pg_user_list,
    .token_put = pg_token_put,
    .token_get = pg_token_get,
    .token_list = pg_token_list,
    .token_revoke = pg_token_revoke,
    .session_put = pg_session_put,
    .session_get = pg_session_get,
    .session_delete = pg_session_delete,
    .meta_get = pg_meta_get,
    .meta_put_new = pg_meta_put_new,
    .image_put = pg_image_put,
    .image_get = pg_image_get,
    .failure = pg_failure,
    .check = pg_check,
    .upkeep = pg_upkeep,
};

/* ---- migrations that SQL alone cannot do ---------------------------------------------------- */

#define SCRUB_BATCH 500

/* Events with spypixel's own credentials lose them (sp_event_scrub_json), SCRUB_BATCH rows at a
 * time in ID order: memory stays bounded whatever the table holds. ILIKE only picks the rows
 * worth parsing; the parser decides. Runs inside the migration's transaction. */
static int scrub_events(pg_store_t *s, char *err, size_t errlen)
{
    char last[32] = "0", limit[16];
    snprintf(limit, sizeof(limit), "%d", SCRUB_BATCH);
    for (;;) {
        const char *args[] = {last, limit};
        PGresult *rows =
            PQexecParams(s->conn,
                         "SELECT id, cookies, headers FROM events WHERE id > $1 AND"
                         " (cookies ILIKE '%sp\\_%' OR headers ILIKE '%sp\\_%'"
                         " OR headers ILIKE '%authorization%' OR headers ILIKE '%x-csrf-token%')"
                         " ORDER BY id LIMIT $2",
                         2, NULL, args, NULL, NULL, 0);
        if (PGRES_TUPLES_OK != PQresultStatus(rows)) {
            set_err(s, err, errlen, "scrub events", rows);
            PQclear(rows);
            return -1;
        }
        int n = PQntuples(rows);
        for (int i = 0; i < n; i++) {
            char *cookies = sp_event_scrub_json(PQgetvalue(rows, i, 1), true);
            char *headers = sp_event_scrub_json(PQgetvalue(rows, i, 2), false);
            int bad = 0;
            if (cookies || headers) {
                const char *values[] = {PQgetvalue(rows, i, 0), cookies, headers};
                PGresult *res = PQexecParams(s->conn,
                                             "UPDATE events SET cookies = coalesce($2, cookies),"
                                             " headers = coalesce($3, headers) WHERE id = $1",
                                             3, NULL, values, NULL, NULL, 0);
                bad = PGRES_COMMAND_OK != PQresultStatus(res);
                if (bad)
                    set_err(s, err, errlen, "scrub events", res);
                PQclear(res);
            }
            free(cookies);
            free(headers);
            if (bad) {
                PQclear(rows);
                return -1;
            }
        }
        if (n)
            snprintf(last, sizeof(last), "%s", PQgetvalue(rows, n - 1, 0));
        PQclear(rows);
        if (n < SCRUB_BATCH)
            return 0;
    }
}

/* The opens kept apart under unknown campaigns are journal records: decoding scrubs them
 * (sp_event_add_header), and a record that encodes differently afterwards is written back,
 * SCRUB_BATCH rows at a time. */
static int scrub_kept(pg_store_t *s, char *err, size_t errlen)
{
    char last[32] = "0", limit[16];
    unsigned char *buf = malloc(SP_EVENT_ENCODED_MAX);
    int ret = -1;
    if (!buf)
        abort();
    snprintf(limit, sizeof(limit), "%d", SCRUB_BATCH);
    for (;;) {
        const char *args[] = {last, limit};
        PGresult *rows = PQexecParams(
            s->conn, "SELECT id, record FROM unknown_events WHERE id > $1 ORDER BY id LIMIT $2", 2,
            NULL, args, NULL, NULL, 0);
        if (PGRES_TUPLES_OK != PQresultStatus(rows)) {
            set_err(s, err, errlen, "scrub kept opens", rows);
            PQclear(rows);
            goto done;
        }
        int n = PQntuples(rows), bad = 0;
        for (int i = 0; i < n && !bad; i++) {
            size_t old_len = 0;
            unsigned char *old =
                PQunescapeBytea((const unsigned char *)PQgetvalue(rows, i, 1), &old_len);
            if (!old)
                abort();
            sp_event_t *ev = sp_event_decode(old, old_len);
            size_t len = ev ? sp_event_encode(ev, buf) : 0;
            sp_event_free(ev);
            if (ev && (len != old_len || 0 != memcmp(buf, old, len))) {
                const char *values[] = {PQgetvalue(rows, i, 0), (const char *)buf};
                int lengths[] = {0, (int)len}, formats[] = {0, 1};
                PGresult *res =
                    PQexecParams(s->conn, "UPDATE unknown_events SET record = $2 WHERE id = $1", 2,
                                 NULL, values, lengths, formats, 0);
                bad = PGRES_COMMAND_OK != PQresultStatus(res);
                if (bad)
                    set_err(s, err, errlen, "scrub kept opens", res);
                PQclear(res);
            }
            PQfreemem(old);
        }
        if (n)
            snprintf(last, sizeof(last), "%s", PQgetvalue(rows, n - 1, 0));
        PQclear(rows);
        if (bad)
            goto done;
        if (n < SCRUB_BATCH)
            break;
    }
    ret = 0;
done:
    free(buf);
    return ret;
}

static int backfill_rollups(pg_store_t *s, char *err, size_t errlen)
{
    if (0 != exec_sql(s, backfill_sql[0], "migrate", err, errlen))
        return -1;
    return exec_sql(s, backfill_sql[1], "migrate", err, errlen);
}

/* Runs SQL, made with printf's FORMAT, in the migration. */
static int exec_fmt(pg_store_t *s, char *err, size_t errlen, const char *format, ...)
    __attribute__((format(printf, 4, 5)));
static int exec_fmt(pg_store_t *s, char *err, size_t errlen, const char *format, ...)
{
    char sql[4096];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(sql, sizeof(sql), format, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(sql)) {
        snprintf(err, errlen, "postgres: migrate: a statement too long to make");
        return -1;
    }
    return exec_sql(s, sql, "migrate", err, errlen);
}

/* Schema 14: events becomes a table partitioned by week of ts (PARTITION_LOCK's comment).
 * What it holds stays where it is: the old table, renamed events_legacy, becomes the
 * partition of every time up to the end of its newest row's week (its newest rows after
 * this week move out first), so that the migration rewrites no row; retention drops it once
 * all of it is past the cut. Its columns and indexes are copied from what the table has, not
 * named here, so that migrations before and after this one may change them. */
static int partition_events(pg_store_t *s, char *err, size_t errlen)
{
    PGresult *idx = NULL, *res = NULL;
    char seq[256], pkey[128];
    int ret = -1;
    /* A store that an older version's schema number was given back to by hand. */
    int done = query_bool(s, "SELECT relkind = 'p' FROM pg_class WHERE oid = 'events'::regclass",
                          "migrate", err, errlen);
    if (done)
        return done < 0 ? -1 : 0;
    idx = PQexec(s->conn, "SELECT quote_ident(c.relname), pg_get_indexdef(i.indexrelid)"
                          " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                          " WHERE i.indrelid = 'events'::regclass AND NOT i.indisprimary");
    res = PQexec(s->conn, "SELECT pg_get_serial_sequence('events', 'id'),"
                          " (SELECT quote_ident(conname) FROM pg_constraint"
                          " WHERE conrelid = 'events'::regclass AND contype = 'p'),"
                          " (SELECT max(ts) FROM events)");
    if (PGRES_TUPLES_OK != PQresultStatus(idx) || PGRES_TUPLES_OK != PQresultStatus(res)) {
        set_err(s, err, errlen, "migrate", PGRES_TUPLES_OK != PQresultStatus(idx) ? idx : res);
        goto done;
    }
    snprintf(seq, sizeof(seq), "%s", PQgetvalue(res, 0, 0));
    snprintf(pkey, sizeof(pkey), "%s", PQgetvalue(res, 0, 1));
    bool empty = PQgetisnull(res, 0, 2);
    int64_t newest = empty ? 0 : get_i64(res, 0, 2), now = sp_now_ms();
    /* A row dated in the future does not make the old table every week's partition. */
    int64_t upper = week_of(newest < now ? newest : now) + WEEK_MS;
    if (0 != exec_fmt(s, err, errlen, "ALTER TABLE events RENAME TO events_legacy") ||
        (pkey[0] &&
         0 != exec_fmt(s, err, errlen, "ALTER TABLE events_legacy DROP CONSTRAINT %s", pkey)))
        goto done;
    for (int i = 0; i < PQntuples(idx); i++)
        if (0 != exec_fmt(s, err, errlen, "ALTER INDEX %s RENAME TO %.40s_legacy",
                          PQgetvalue(idx, i, 0), PQgetvalue(idx, i, 0)))
            goto done;
    /* The sequence belongs to the new table, so that dropping the old one keeps it. */
    if ((seq[0] && 0 != exec_fmt(s, err, errlen, "ALTER SEQUENCE %s OWNED BY NONE", seq)) ||
        0 != exec_fmt(s, err, errlen,
                      "CREATE TABLE events (LIKE events_legacy INCLUDING DEFAULTS)"
                      " PARTITION BY RANGE (ts);"
                      "ALTER TABLE events ADD PRIMARY KEY (id, ts);"
                      "CREATE TABLE events_default PARTITION OF events DEFAULT") ||
        (seq[0] && 0 != exec_fmt(s, err, errlen, "ALTER SEQUENCE %s OWNED BY events.id", seq)))
        goto done;
    /* Each index again, on the new table: its definition names the table, not the old one. */
    for (int i = 0; i < PQntuples(idx); i++)
        if (0 != exec_sql(s, PQgetvalue(idx, i, 1), "migrate", err, errlen))
            goto done;
    if (empty) {
        ret = exec_fmt(s, err, errlen, "DROP TABLE events_legacy");
        goto done;
    }
    ret = exec_fmt(s, err, errlen,
                   "WITH m AS (DELETE FROM events_legacy WHERE ts >= %lld RETURNING *)"
                   " INSERT INTO events SELECT * FROM m;"
                   "ALTER TABLE events ATTACH PARTITION events_legacy"
                   " FOR VALUES FROM (MINVALUE) TO (%lld)",
                   (long long)upper, (long long)upper);
done:
    PQclear(idx);
    PQclear(res);
    return ret;
}

static int scrub_credentials(pg_store_t *s, char *err, size_t errlen)
{
    return scrub_events(s, err, errlen) || scrub_kept(s, err, errlen) ? -1 : 0;
}

static int migrate(pg_store_t *s, char *err, size_t errlen)
{
    PGresult *res = NULL;
    if (0 != exec_sql(s, "BEGIN", "migrate", err, errlen))
        return -1;
    /* Servers starting together take turns here; the lock ends with the transaction. */
    if (0 != exec_sql(s, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", "migrate", err,
                      errlen) ||
        0 != exec_sql(s, "CREATE TABLE IF NOT EXISTS spypixel_schema(version INTEGER NOT NULL)",
                      "migrate", err, errlen))
        goto fail;
    res = PQexec(s->conn, "SELECT version FROM spypixel_schema");
    if (PGRES_TUPLES_OK != PQresultStatus(res)) {
        set_err(s, err, errlen, "migrate", res);
        goto fail;
    }
    bool fresh = 0 == PQntuples(res);
    int version = fresh ? 0 : atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    res = NULL;
    if (version < 0 || version > SCHEMA_VERSION) {
        snprintf(err, errlen, "postgres: schema version %d is newer than this spypixel (%d)",
                 version, SCHEMA_VERSION);
        goto fail;
    }
    if (fresh &&
        0 != exec_sql(s, "INSERT INTO spypixel_schema(version) VALUES(0)", "migrate", err, errlen))
        goto fail;
    for (int v = version; v < SCHEMA_VERSION; v++) {
        char num[16];
        const char *arg[] = {num};
        snprintf(num, sizeof(num), "%d", v + 1);
        if (migrations[v][0] && 0 != exec_sql(s, migrations[v], "migrate", err, errlen))
            goto fail;
        for (size_t c = 0; c < sizeof(migration_code) / sizeof(migration_code[0]); c++)
            if (v + 1 == migration_code[c].version && 0 != migration_code[c].run(s, err, errlen))
                goto fail;
        res = PQexecParams(s->conn, "UPDATE spypixel_schema SET version = $1", 1, NULL, arg, NULL,
                           NULL, 0);
        if (PGRES_COMMAND_OK != PQresultStatus(res)) {
            set_err(s, err, errlen, "migrate", res);
            goto fail;
        }
        PQclear(res);
        res = NULL;
    }
    return exec_sql(s, "COMMIT", "migrate", err, errlen);
fail:
    PQclear(res);
    rollback(s);
    return -1;
}

/* Library code never prints: the notices (an existing table, a rollback with nothing to roll
 * back) would otherwise go to stderr. */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

sp_store_t *sp_store_pg_open(const char *conninfo, char *err, size_t errlen)
{
    pthread_once(&made_once, make_sql);
    /* CONNINFO is expanded in place of dbname: what it sets wins over the keywords before it (a
     * connect timeout, so that a reconnection cannot hang the writer for minutes) and loses to
     * those after it (every string travels as UTF-8). */
    const char *keys[] = {"connect_timeout", "dbname", "client_encoding",
                          "fallback_application_name", NULL};
    const char *values[] = {"10", conninfo, "UTF8", "spypixel", NULL};
    pg_store_t *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->base.ops = &pg_ops;
    s->base.unknown = (sp_store_unknown_t){.max_campaigns = SP_CONFIG_UNKNOWN_CAMPAIGNS,
                                           .max_opens = SP_CONFIG_UNKNOWN_OPENS};
    s->base.likely_forward_ms = SP_TALLY_FORWARD_AFTER_MS;
    s->conn = PQconnectdbParams(keys, values, 1);
    if (!s->conn)
        abort();
    PQsetNoticeProcessor(s->conn, quiet, NULL);
    if (CONNECTION_OK != PQstatus(s->conn)) {
        set_err(s, err, errlen, "connect", NULL);
        goto fail;
    }
    const char *enc = PQparameterStatus(s->conn, "server_encoding");
    if (!enc || (0 != strcmp(enc, "UTF8") && 0 != strcmp(enc, "SQL_ASCII"))) {
        snprintf(err, errlen, "postgres: the database's encoding is %s; spypixel needs UTF8",
                 enc ? enc : "unknown");
        goto fail;
    }
    if (0 != migrate(s, err, errlen) || 0 != prepare_all(s, err, errlen))
        goto fail;
    return &s->base;
fail:
    pg_close(&s->base);
    return NULL;
}
