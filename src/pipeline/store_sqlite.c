/* store_sqlite: the embedded backend, one SQLite file in WAL mode in the data folder. */
/* SPDX-License-Identifier: MIT */
#include "store_sqlite.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "datadir.h"
#include "intern.h"
#include "merge.h"
#include "sigbus.h"
#include "tally.h"

typedef struct sqlite_store sqlite_store_t;

static int scrub_credentials(sqlite_store_t *s, char *err, size_t errlen);
static int backfill_rollups(sqlite_store_t *s, char *err, size_t errlen);
static int rollup_step(sqlite_store_t *s, const char *sql, const char *arg, char *err,
                       size_t errlen);

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
    /* 5: no credentials of spypixel's own in stored events: older versions kept the
     * session, self-view and Authorization values of the requests they recorded. */
    "", /* migration_code */
    /* 6: API tokens may belong to a user, and end with the user's password. */
    "ALTER TABLE api_tokens ADD COLUMN owner TEXT;",
    /* 7: the tracking block's read time of an open. */
    "ALTER TABLE events ADD COLUMN engagement TEXT;"
    "ALTER TABLE events ADD COLUMN read_ms INTEGER;",
    /* 8: the report's rollups (rollup.h), filled from the events stored so far
     * (migration_code), and events by time within a campaign, for the edges of a report's
     * range that do not fill an hour. */
    "CREATE TABLE rollup_counts(campaign TEXT NOT NULL, quarter INTEGER NOT NULL,"
    " human INTEGER NOT NULL, proxy INTEGER NOT NULL, machine INTEGER NOT NULL,"
    " self INTEGER NOT NULL, clicks INTEGER NOT NULL,"
    " PRIMARY KEY(campaign, quarter)) WITHOUT ROWID;"
    "CREATE TABLE rollup_values(campaign TEXT NOT NULL, dim INTEGER NOT NULL,"
    " hour INTEGER NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY(campaign, dim, hour, value)) WITHOUT ROWID;"
    "CREATE INDEX events_campaign_ts ON events(campaign, ts);",
    /* 9: the people a campaign was sent to, for its rates. */
    "CREATE TABLE sent_to(campaign TEXT NOT NULL, recipient TEXT NOT NULL,"
    " PRIMARY KEY(campaign, recipient)) WITHOUT ROWID;",
    /* 10: archived campaigns, listed apart. */
    "ALTER TABLE campaigns ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;",
    /* 11: the pixels, links and images made for each campaign, and its clicks by destination
     * (an index of clicks only: opens, the most of the events, do not touch it). */
    "CREATE TABLE trackers(id INTEGER PRIMARY KEY, campaign TEXT NOT NULL,"
    " recipient TEXT NOT NULL, kind TEXT NOT NULL, target TEXT NOT NULL, url TEXT NOT NULL,"
    " created_at INTEGER NOT NULL);"
    "CREATE UNIQUE INDEX trackers_url ON trackers(url);"
    "CREATE INDEX trackers_campaign ON trackers(campaign, id);"
    "CREATE INDEX events_clicks ON events(campaign, target) WHERE kind = 1;",
    /* 12: a recipient's events within a campaign, newest first: the log filtered by recipient,
     * a recipient's page, and forget read them here instead of every event of the campaign. */
    "CREATE INDEX events_campaign_recipient ON events(campaign, recipient, id)"
    " WHERE recipient <> '';",
    /* 13: the reader of a recipient's first human open and the clients of its likely forwards
     * (tally.h), so that the writer decides a forward from the row it upserts. */
    "ALTER TABLE recipients ADD COLUMN first_client TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE recipients ADD COLUMN first_network TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE recipients ADD COLUMN first_human_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE recipients ADD COLUMN forward_clients TEXT NOT NULL DEFAULT '';",
    /* 14: user agents and header sets stored once, an event naming them by ID, the values of
     * its apart headers in its row (intern.h). Rows stored before keep their own text. */
    "CREATE TABLE agents(id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);"
    "CREATE TABLE header_sets(id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);"
    "ALTER TABLE events ADD COLUMN agent INTEGER;"
    "ALTER TABLE events ADD COLUMN header_set INTEGER;"
    "ALTER TABLE events ADD COLUMN header_addrs TEXT;",
    /* 15: no index of events by time alone: only retention read it, which now finds each
     * campaign's old events through events_campaign_ts. One B-tree insert fewer per event. */
    "DROP INDEX events_ts;",
    /* 16: the report's day and all-time rollups and each opener's and clicker's first and last hour
     * (rollup.h), made from the hours' rollups. */
    "CREATE TABLE rollup_days(campaign TEXT NOT NULL, dim INTEGER NOT NULL,"
    " day INTEGER NOT NULL, value TEXT NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY(campaign, dim, day, value)) WITHOUT ROWID;"
    "INSERT INTO rollup_days(campaign, dim, day, value, n) SELECT campaign, dim, hour / 24,"
    " value, SUM(n) FROM rollup_values WHERE dim BETWEEN 1 AND 6"
    " GROUP BY campaign, dim, hour / 24, value;"
    "CREATE TABLE rollup_totals(campaign TEXT NOT NULL, dim INTEGER NOT NULL,"
    " value TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(campaign, dim, value)) WITHOUT ROWID;"
    "INSERT INTO rollup_totals(campaign, dim, value, n) SELECT campaign, dim, value, SUM(n)"
    " FROM rollup_values WHERE dim BETWEEN 1 AND 6 GROUP BY campaign, dim, value;"
    "CREATE TABLE rollup_people(campaign TEXT NOT NULL, dim INTEGER NOT NULL,"
    " who TEXT NOT NULL, first_hour INTEGER NOT NULL, last_hour INTEGER NOT NULL,"
    " PRIMARY KEY(campaign, dim, who)) WITHOUT ROWID;"
    "INSERT INTO rollup_people(campaign, dim, who, first_hour, last_hour) SELECT campaign, dim,"
    " value, MIN(hour), MAX(hour) FROM rollup_values WHERE dim IN (0, 7) AND n > 0"
    " GROUP BY campaign, dim, value;"
    "CREATE INDEX rollup_people_first ON rollup_people(campaign, dim, first_hour);"
    "CREATE INDEX rollup_people_last ON rollup_people(campaign, dim, last_hour);",
    /* 17: events by the texts they name, so that deleting events deletes the texts no event
     * names any more by looking up the IDs the deleted rows named (intern.h); and the number
     * each such deletion adds one to, which tells the writer its cache may name texts that are
     * gone. */
    "CREATE INDEX IF NOT EXISTS events_agent ON events(agent) WHERE agent IS NOT NULL;"
    "CREATE INDEX IF NOT EXISTS events_header_set ON events(header_set)"
    " WHERE header_set IS NOT NULL;"
    "INSERT OR IGNORE INTO meta(key, value) VALUES('" SP_INTERN_GEN_KEY "', '0');",
    /* 18: each text counts the events that name it (refs), kept by the writer once per distinct
     * text and batch and by the deletions, in place of events_agent and events_header_set: two
     * B-tree inserts fewer per event. Counted here through those indexes before they go. */
    "ALTER TABLE agents ADD COLUMN refs INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE header_sets ADD COLUMN refs INTEGER NOT NULL DEFAULT 0;"
    "UPDATE agents SET refs = (SELECT count(*) FROM events"
    " WHERE agent IS NOT NULL AND agent = agents.id);"
    "UPDATE header_sets SET refs = (SELECT count(*) FROM events"
    " WHERE header_set IS NOT NULL AND header_set = header_sets.id);"
    "DROP INDEX IF EXISTS events_agent;"
    "DROP INDEX IF EXISTS events_header_set;",
    /* 19: no index of recipients by address: only forget and a recipient's page read it, and
     * they now seek each campaign's key instead (SP_QUERY_RECIPIENT_CAMPAIGNS). A random
     * B-tree entry fewer per new recipient: at a million opens, 15% more of them indexed a
     * second and an eighth less written. */
    "DROP INDEX IF EXISTS recipients_recipient;",
    /* 20: the number of people whose first and last hour each hour is, in place of the indexes
     * of people by first and by last hour (rollup.h): the writer adds a batch's people to a
     * row per hour instead of two random B-tree entries per new person. */
    "CREATE TABLE rollup_people_hours(campaign TEXT NOT NULL, dim INTEGER NOT NULL,"
    " hour INTEGER NOT NULL, firsts INTEGER NOT NULL, lasts INTEGER NOT NULL,"
    " PRIMARY KEY(campaign, dim, hour)) WITHOUT ROWID;" SP_ROLLUP_PEOPLE_HOURS_FILL
    "DROP INDEX rollup_people_first;"
    "DROP INDEX rollup_people_last;",
    /* 21: no index of events by campaign and time: a campaign's events of a time range are
     * those of its IDs between the least and the greatest of the quarter hours the range
     * touches, kept by the writer a row per campaign, quarter and batch (sp_query_ids_in_time) and
     * read through events_campaign. One B-tree entry fewer per event, at a random place
     * among the campaigns. */
    "CREATE TABLE events_quarters(campaign TEXT NOT NULL, quarter INTEGER NOT NULL,"
    " first_id INTEGER NOT NULL, last_id INTEGER NOT NULL,"
    " PRIMARY KEY(campaign, quarter)) WITHOUT ROWID;"
    "INSERT INTO events_quarters(campaign, quarter, first_id, last_id)"
    " SELECT campaign, ts / " SP_QUERY_QUARTER_SQL ", MIN(id), MAX(id) FROM events"
    " GROUP BY campaign, ts / " SP_QUERY_QUARTER_SQL ";"
    "DROP INDEX events_campaign_ts;",
    /* 22: rollup_days and rollup_totals hold the hours before meta's SP_ROLLUP_FOLDED_KEY, the
     * writer folding later hours into them once it has passed them (rollup.h); every hour
     * stored so far was added to them as it was written. */
    "INSERT INTO meta(key, value) SELECT '" SP_ROLLUP_FOLDED_KEY "',"
    " COALESCE(MAX(hour) + 1, 0) FROM rollup_values WHERE true"
    " ON CONFLICT(key) DO NOTHING;",
    /* 23: a named recipient's hours as an opener are its recipients row's (rollup.h, "Named
     * openers"): its row of rollup_people goes, and the openers are counted by hour again from
     * the rows that hold them now. One random B-tree entry fewer per new person. */
    "DELETE FROM rollup_people WHERE dim = 0 AND " SP_ROLLUP_NAMED_SQL(
        "who") ";"
               "DELETE FROM rollup_people_hours WHERE dim = 0;"
               "INSERT INTO rollup_people_hours(campaign, dim, hour, firsts, lasts)"
               " SELECT campaign, 0, hour, SUM(f), SUM(l) FROM (SELECT campaign, first_hour AS "
               "hour,"
               " 1 AS f, 0 AS l FROM " SP_ROLLUP_PEOPLE_SQL " p WHERE dim = 0 UNION ALL"
               " SELECT campaign, last_hour, 0, 1 FROM " SP_ROLLUP_PEOPLE_SQL " q WHERE dim = 0) x"
               " GROUP BY campaign, hour;",
    /* 24: no index of events by campaign and recipient: a recipient's row lists its events' IDs
     * (SP_QUERY_EVENT_IDS), which the writer adds to in the update it makes of that row for
     * each batch anyway. One random B-tree entry fewer per event, and about 40 bytes. */
    "ALTER TABLE recipients ADD COLUMN event_ids TEXT NOT NULL DEFAULT '';"
    "CREATE TABLE recipient_events(campaign TEXT NOT NULL, recipient TEXT NOT NULL,"
    " first_id INTEGER NOT NULL, ids TEXT NOT NULL,"
    " PRIMARY KEY(campaign, recipient, first_id)) WITHOUT ROWID;"
    /* A recipient's events with no row (none the writer made: a store edited by hand) get one,
     * so that forget finds them. */
    "INSERT INTO recipients(campaign, recipient) SELECT DISTINCT campaign, recipient FROM events"
    " WHERE recipient <> '' ON CONFLICT DO NOTHING;"
    "UPDATE recipients SET event_ids = COALESCE((SELECT group_concat(id, ',') FROM"
    " (SELECT id FROM events WHERE events.campaign = recipients.campaign"
    " AND events.recipient = recipients.recipient AND events.recipient <> '' ORDER BY id)), '');"
    "DROP INDEX events_campaign_recipient;",
    /* 25: no row of dim 0 for an opener's first hour, which its row of people holds (rollup.h,
     * "Openers' first hours"). One random B-tree entry fewer per new opener. */
    "DELETE FROM rollup_values WHERE dim = 0 AND (campaign, hour, value) IN"
    " (SELECT campaign, first_hour, who FROM " SP_ROLLUP_PEOPLE_SQL " p WHERE dim = 0);",
    /* 26: each row of dim 0 names its opener's first hour, so that a range's unique openers
     * tell from the row whether its first hour is in the range (rollup.h, "Openers' first
     * hours") instead of looking each up. */
    "ALTER TABLE rollup_values ADD COLUMN first_hour INTEGER;"
    "UPDATE rollup_values SET first_hour = " SP_ROLLUP_OPENER_FIRST_SQL(
        "rollup_values.campaign", "rollup_values.value") " WHERE dim = 0;",
    /* 27: the recipients' rows by rowid, unique by campaign and recipient. The writer remembers
     * the rowid of each recipient it has written and updates a row seen before through it (its
     * key checked too: a rowid may be given again after a deletion, or moved by VACUUM): one
     * seek by an integer where a WITHOUT ROWID row took two down a tree keyed by two texts (the
     * row found, then the new entry's insert seeking it again), 12% of the writer's
     * instructions on realistic opens. The key's index is written only when a row is new: no
     * update changes its columns. */
    "CREATE TABLE recipients_by_rowid(campaign TEXT NOT NULL, recipient TEXT NOT NULL,"
    " human INTEGER NOT NULL DEFAULT 0, proxy INTEGER NOT NULL DEFAULT 0,"
    " machine INTEGER NOT NULL DEFAULT 0, self INTEGER NOT NULL DEFAULT 0,"
    " clicks INTEGER NOT NULL DEFAULT 0, first_at INTEGER NOT NULL DEFAULT 0,"
    " last_at INTEGER NOT NULL DEFAULT 0, first_client TEXT NOT NULL DEFAULT '',"
    " first_network TEXT NOT NULL DEFAULT '', first_human_at INTEGER NOT NULL DEFAULT 0,"
    " forward_clients TEXT NOT NULL DEFAULT '', event_ids TEXT NOT NULL DEFAULT '',"
    " UNIQUE(campaign, recipient));"
    "INSERT INTO recipients_by_rowid(campaign, recipient, human, proxy, machine, self, clicks,"
    " first_at, last_at, first_client, first_network, first_human_at, forward_clients, event_ids)"
    " SELECT campaign, recipient, human, proxy, machine, self, clicks, first_at, last_at,"
    " first_client, first_network, first_human_at, forward_clients, event_ids FROM recipients"
    " ORDER BY campaign, recipient;"
    "DROP TABLE recipients;"
    "ALTER TABLE recipients_by_rowid RENAME TO recipients;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The steps that SQL alone cannot do, run for their version in place of its (empty) SQL. */
static const struct {
    int version;
    int (*run)(sqlite_store_t *s, char *err, size_t errlen);
} migration_code[] = {
    {5, scrub_credentials},
    {8, backfill_rollups},
};

enum {
    Q_CAMPAIGN_EXISTS,
    Q_RECIPIENT_ADD,
    Q_RECIPIENT_ADD_ROWID,
    Q_RECIPIENT_INSERT,
    Q_RECIPIENT_FORWARDED,
    Q_RECIPIENT_EVENT,
    Q_RECIPIENT_EVENTS_OUT,
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
    Q_READ_FOLD,
    Q_READ_FOLD_ANONYMOUS,
    Q_AGENT_FIND,
    Q_AGENT_ADD,
    Q_SET_FIND,
    Q_SET_ADD,
    Q_INTERN_GEN,
    Q_AGENT_REFS,
    Q_SET_REFS,
    Q_EVENT_MAX,
    Q_QUARTER_IDS,
    Q_FOLDED,
    Q_FOLD_DAYS,
    Q_FOLD_TOTALS,
    Q_FOLDED_SET,
    Q_COUNT
};

/* The reader of a recipient's first human open: the earliest the row or the batch (?12, its
 * time; PARAM, its value of COL) knows. */
#define FIRST_HUMAN_SET(col, param)                                                                \
    " " col " = CASE WHEN ?12 <> 0 AND (first_human_at = 0 OR ?12 < first_human_at) THEN " param   \
    " ELSE " col " END"
/* A recipient's event_ids (SP_QUERY_EVENT_IDS) with the IDs listed in P added. */
#define EVENT_IDS_ADD(p)                                                                           \
    "CASE WHEN event_ids = '' THEN " p " WHEN " p " = '' THEN event_ids"                           \
    " ELSE event_ids || ',' || " p " END"

/* A row's list of event IDs longer than this many bytes (about 70 IDs) is moved out into
 * recipient_events by the next batch that adds to it (add_to_recipient), which starts the row's
 * list anew. */
#define EVENT_IDS_ROW_MAX "512"
#define EVENT_IDS_LONG    "length(event_ids) > " EVENT_IDS_ROW_MAX

#define FIRST_HUMAN_SETS                                                                           \
    FIRST_HUMAN_SET("first_client", "?10")                                                         \
    "," FIRST_HUMAN_SET("first_network", "?11") "," FIRST_HUMAN_SET("first_human_at", "?12")

#define READ_FOLD_ANONYMOUS                                                                        \
    "UPDATE events SET read_ms = ?5, engagement = CASE WHEN class = ?6 THEN ?7 ELSE ?8 END"        \
    " WHERE id = (SELECT id FROM events WHERE campaign = ?2 AND %s AND ts = ?1 AND recipient = ?3" \
    " AND visitor = ?4 AND kind = 0 AND read_ms IS NULL ORDER BY id LIMIT 1) RETURNING id, class"

/* What a batch adds to a recipient's row: its counts, its span, and its first human reader
 * when the batch's is earlier (the WHERE follows: Q_RECIPIENT_ADD, Q_RECIPIENT_ADD_ROWID).
 * An UPDATE and, only when it found no row, the insert (Q_RECIPIENT_INSERT): INSERT ... ON
 * CONFLICT DO UPDATE looked the row up three times where it was there (the conflict, the row
 * found again, the new one put), 1.5% of the writer's instructions. The writer needs the row
 * as it was too (add_to_recipient): sp_recipient_was hands it over, with its rowid, from the row
 * the UPDATE has found (recipient_was), and gives forward_clients back unchanged. A SELECT
 * before the UPDATE found the same row a second time (a seek and a statement's end: 9% of
 * the writer's instructions on realistic opens); RETURNING gives the row as it becomes, and
 * gathers it in a temporary b-tree made and zeroed each run. A long list of events goes out
 * whole (to recipient_events, by the writer) and the row's starts again with the batch's. */
#define RECIPIENT_ADD                                                                              \
    "UPDATE recipients SET human = human + ?3, proxy = proxy + ?4, machine = machine + ?5,"        \
    " self = self + ?6, clicks = clicks + ?7,"                                                     \
    " first_at = CASE WHEN first_at = 0 THEN ?8 WHEN ?8 = 0 THEN first_at"                         \
    " ELSE MIN(first_at, ?8) END, last_at = MAX(last_at, ?9)," FIRST_HUMAN_SETS                    \
    ", event_ids = CASE WHEN " EVENT_IDS_LONG " THEN ?13 ELSE " EVENT_IDS_ADD(                     \
        "?13") " END,"                                                                             \
               " forward_clients = sp_recipient_was(" SP_TALLY_VIEWS_SQL(                          \
                   "") ", first_client,"                                                           \
                       " first_network, first_human_at, first_at, last_at,"                        \
                       " CASE WHEN " EVENT_IDS_LONG " THEN event_ids END, forward_clients, rowid)"

static const char *const batch_sql[Q_COUNT] = {
    [Q_CAMPAIGN_EXISTS] = "SELECT 1 FROM campaigns WHERE id = ?1",
    /* A batch's additions to a recipient's row found by its key (RECIPIENT_ADD). */
    [Q_RECIPIENT_ADD] = RECIPIENT_ADD " WHERE campaign = ?1 AND recipient = ?2",
    /* The same through the row's rowid (?14), as this writer last saw it: its key checked. */
    [Q_RECIPIENT_ADD_ROWID] = RECIPIENT_ADD " WHERE rowid = ?14 AND campaign = ?1"
                                            " AND recipient = ?2",
    /* A recipient's row when it is new. */
    [Q_RECIPIENT_INSERT] =
        "INSERT INTO recipients(campaign, recipient, human, proxy, machine, self, clicks,"
        " first_at, last_at, first_client, first_network, first_human_at, event_ids)"
        " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) ON CONFLICT DO NOTHING",
    /* A row's list moved out whole (EVENT_IDS_ROW_MAX), keyed by its first ID (the same again
     * only if retention let a later event have an ID again: then added to). */
    [Q_RECIPIENT_EVENTS_OUT] = "INSERT INTO recipient_events(campaign, recipient, first_id, ids)"
                               " VALUES(?1, ?2, CAST(substr(?3, 1, instr(?3 || ',', ',') - 1)"
                               " AS INTEGER), ?3) ON CONFLICT DO UPDATE SET"
                               " ids = ids || ',' || excluded.ids",
    /* A likely forward's ID, stored after its recipient's row was written. */
    [Q_RECIPIENT_EVENT] = "UPDATE recipients SET event_ids = " EVENT_IDS_ADD(
        "?3") " WHERE campaign = ?1 AND recipient = ?2",
    [Q_RECIPIENT_FORWARDED] = "UPDATE recipients SET forward_clients = ?3"
                              " WHERE campaign = ?1 AND recipient = ?2",
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
    /* A read into its open (sp_tally_read_params), the earliest of its key not yet read:
     * found among its recipient's event IDs or, for an open with no recipient, among its
     * campaign's IDs of the open's quarter hour. */
    [Q_READ_FOLD] =
        "UPDATE events SET read_ms = ?5,"
        " engagement = CASE WHEN class = ?6 THEN ?7 ELSE ?8 END"
        " WHERE id = (SELECT id FROM events WHERE id IN " SP_QUERY_RECIPIENT_EVENT_IDS(
            "?2",
            "?3") " AND ts = ?1 AND campaign = ?2 AND recipient = ?3 AND visitor = ?4"
                  " AND kind = 0 AND read_ms IS NULL ORDER BY id LIMIT 1) RETURNING id, class",
    [Q_READ_FOLD_ANONYMOUS] = READ_FOLD_ANONYMOUS, /* made with the IDs of time ?1 (sqlite_open) */
    /* What a batch's rows add to their campaign's quarter hours (write_quarters). */
    [Q_QUARTER_IDS] = "INSERT INTO events_quarters(campaign, quarter, first_id, last_id)"
                      " VALUES(?1, ?2, ?3, ?4) ON CONFLICT(campaign, quarter) DO UPDATE SET"
                      " first_id = MIN(first_id, excluded.first_id),"
                      " last_id = MAX(last_id, excluded.last_id)",
    /* Interned texts (intern.h), looked up when the writer's cache misses. */
    [Q_AGENT_FIND] = "SELECT id FROM agents WHERE text = ?1",
    [Q_AGENT_ADD] = "INSERT INTO agents(text) VALUES(?1)",
    [Q_SET_FIND] = "SELECT id FROM header_sets WHERE text = ?1",
    [Q_SET_ADD] = "INSERT INTO header_sets(text) VALUES(?1)",
    /* How many times texts were deleted (intern_gc_sql): the writer's cached IDs are those of
     * the number it last read. */
    [Q_INTERN_GEN] = "SELECT value FROM meta WHERE key = '" SP_INTERN_GEN_KEY "'",
    /* What the batch's rows add to the count of events naming text ?1 (write_refs). */
    [Q_AGENT_REFS] = "UPDATE agents SET refs = refs + ?2 WHERE id = ?1",
    [Q_SET_REFS] = "UPDATE header_sets SET refs = refs + ?2 WHERE id = ?1",
    [Q_EVENT_MAX] = "SELECT coalesce(max(id), 0) FROM events",
    /* The hours folded into rollup_days and rollup_totals (rollup.h), and the fold of the hours
     * [?1, ?2) of dims 1-6: each campaign's read by its key, not the whole table. */
    [Q_FOLDED] = "SELECT " SP_ROLLUP_FOLDED_SQL,
    [Q_FOLD_DAYS] = "INSERT INTO rollup_days AS r(campaign, dim, day, value, n)"
                    " SELECT v.campaign, v.dim, v.hour / 24, v.value, SUM(v.n) FROM campaigns c"
                    " CROSS JOIN (VALUES(1), (2), (3), (4), (5), (6)) d CROSS JOIN rollup_values v"
                    " WHERE v.campaign = c.id AND v.dim = d.column1 AND v.hour >= ?1"
                    " AND v.hour < ?2 GROUP BY v.campaign, v.dim, v.hour / 24, v.value"
                    " ON CONFLICT(campaign, dim, day, value) DO UPDATE SET n = r.n + excluded.n",
    [Q_FOLD_TOTALS] = "INSERT INTO rollup_totals AS r(campaign, dim, value, n)"
                      " SELECT v.campaign, v.dim, v.value, SUM(v.n) FROM campaigns c"
                      " CROSS JOIN (VALUES(1), (2), (3), (4), (5), (6)) d"
                      " CROSS JOIN rollup_values v WHERE v.campaign = c.id AND v.dim = d.column1"
                      " AND v.hour >= ?1 AND v.hour < ?2 GROUP BY v.campaign, v.dim, v.value"
                      " ON CONFLICT(campaign, dim, value) DO UPDATE SET n = r.n + excluded.n",
    [Q_FOLDED_SET] = "INSERT INTO meta(key, value) VALUES('" SP_ROLLUP_FOLDED_KEY "', ?1)"
                     " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
};

/* The rows a batch adds to the rollups (sp_rollup_batch), upserted up to ROLLUP_ROWS a statement:
 * a statement's own work (its start, its statement journal, its cursors, its end) once for many
 * rows. Each is prepared on first use for 1, 2, 4... ROLLUP_ROWS rows. The batch's people are
 * read first (M_PEOPLE_OLD, a row of VALUES each: its place in the statement and its key), so
 * that only the rows that are new or whose hours move are written (write_people). */
#define ROLLUP_ROWS  64
#define ROLLUP_SIZES 7 /* 1 to ROLLUP_ROWS rows */
enum {
    M_COUNTS,
    M_VALUES,
    M_DAYS,
    M_TOTALS,
    M_PEOPLE,
    M_PEOPLE_NEW,
    M_PEOPLE_OLD,
    M_HOURS,
    M_TABLES
};
static const struct {
    const char *head, *row, *tail;
} rollup_rows_sql[M_TABLES] = {
    [M_COUNTS] = {"INSERT INTO rollup_counts AS r(campaign, quarter, human, proxy, machine, self,"
                  " clicks) VALUES",
                  "(?, ?, ?, ?, ?, ?, ?)",
                  " ON CONFLICT(campaign, quarter) DO UPDATE SET human = r.human + excluded.human,"
                  " proxy = r.proxy + excluded.proxy, machine = r.machine + excluded.machine,"
                  " self = r.self + excluded.self, clicks = r.clicks + excluded.clicks"},
    [M_VALUES] = {"INSERT INTO rollup_values AS r(campaign, dim, hour, value, n, first_hour)"
                  " VALUES",
                  "(?, ?, ?, ?, ?, ?)",
                  " ON CONFLICT(campaign, dim, hour, value) DO UPDATE SET n = r.n + excluded.n,"
                  " first_hour = excluded.first_hour"},
    [M_DAYS] = {"INSERT INTO rollup_days AS r(campaign, dim, day, value, n) VALUES",
                "(?, ?, ?, ?, ?)",
                " ON CONFLICT(campaign, dim, day, value) DO UPDATE SET n = r.n + excluded.n"},
    [M_TOTALS] = {"INSERT INTO rollup_totals AS r(campaign, dim, value, n) VALUES", "(?, ?, ?, ?)",
                  " ON CONFLICT(campaign, dim, value) DO UPDATE SET n = r.n + excluded.n"},
    [M_PEOPLE] =
        {"INSERT INTO rollup_people AS r(campaign, dim, who, first_hour, last_hour) VALUES",
         "(?, ?, ?, ?, ?)",
         " ON CONFLICT(campaign, dim, who) DO UPDATE"
         " SET first_hour = MIN(r.first_hour, excluded.first_hour),"
         " last_hour = MAX(r.last_hour, excluded.last_hour)"
         " WHERE excluded.first_hour < r.first_hour OR excluded.last_hour > r.last_hour"},
    /* People who cannot have a row yet (write_people): inserted, none read first. A row there
     * after all fails the statement, which SQLite undoes alone. */
    [M_PEOPLE_NEW] = {"INSERT INTO rollup_people(campaign, dim, who, first_hour, last_hour) VALUES",
                      "(?, ?, ?, ?, ?)", ""},
    [M_PEOPLE_OLD] = {"SELECT b.column1, p.first_hour, p.last_hour FROM (VALUES", "(?, ?, ?, ?)",
                      ") AS b CROSS JOIN rollup_people p ON p.campaign = b.column2"
                      " AND p.dim = b.column3 AND p.who = b.column4"},
    [M_HOURS] =
        {"INSERT INTO rollup_people_hours AS r(campaign, dim, hour, firsts, lasts) VALUES",
         "(?, ?, ?, ?, ?)",
         " ON CONFLICT(campaign, dim, hour) DO UPDATE SET firsts = r.firsts + excluded.firsts,"
         " lasts = r.lasts + excluded.lasts"},
};

/* The statements above name the four class columns. */
_Static_assert(4 == SP_CLASS_COUNT, "a class needs its columns (a migration) and its place here");

/* The head of the events' INSERT (write_rows adds its rows) and their SELECT, made once from the
 * field table (sqlite_once). */
static char insert_sql[2048], events_sql[2048];

/* Recipient ?1's rows of recipients, and their events in every campaign, by the IDs those rows
 * and their lists moved out list (SP_QUERY_RECIPIENT_ALL_EVENT_IDS). */
#define FORGET_ROWS   "recipients WHERE " SP_QUERY_RECIPIENT_CAMPAIGNS("?1")
#define FORGET_EVENTS "id IN " SP_QUERY_RECIPIENT_ALL_EVENT_IDS("?1") " AND recipient = ?1"

/* Recipient ?1's rows of rollup_people, and what they count in rollup_people_hours, taken out
 * before them (COLUMN: first_hour or last_hour, counted in COUNT). */
#define FORGET_PEOPLE                                                                              \
    "campaign IN (SELECT campaign FROM " FORGET_ROWS ") AND dim IN (0, 7) AND who = ?1"
#define FORGET_PEOPLE_HOURS(column, count)                                                         \
    "UPDATE rollup_people_hours SET " count " = " count " - 1 WHERE (campaign, dim, hour) IN"      \
    " (SELECT campaign, dim, " column " FROM rollup_people WHERE " FORGET_PEOPLE ")"

/* The same of their hours as an opener, which their recipients rows hold (rollup.h, "Named
 * openers"; COLUMN: first_at or last_at). */
#define FORGET_OPENER_HOURS(column, count)                                                         \
    "UPDATE rollup_people_hours SET " count " = " count " - 1 WHERE (campaign, dim, hour) IN"      \
    " (SELECT campaign, 0, " column " / " SP_ROLLUP_HOUR_SQL " FROM " FORGET_ROWS                  \
    " AND " SP_ROLLUP_NAMED_OPENER_SQL("") ")"

/* The rollups' statements (rollup.h), made once: what forget takes out (of recipient ?1: counts,
 * values, days, totals), what the migration adds (of every event), and the report's queries. */
#define ROLLUP_SQL_MAX 8192
enum { R_FORGET, R_BACKFILL, R_REPORT, R_KINDS };
static char rollup_sql[R_KINDS][5][ROLLUP_SQL_MAX];
static char moved_first_sql[2][2048]; /* sp_rollup_moved_first_sql */

/* What becomes of one campaign's events within a batch; the counts are the tally's. */
typedef struct {
    const char *id; /* borrowed from the batch's first event of this campaign */
    bool exists;
    /* A campaign that does not exist: its opens kept apart, or refused. */
    enum { UNKNOWN_UNDECIDED, UNKNOWN_KEEP, UNKNOWN_REFUSE } unknown;
    int64_t unknown_opens, unknown_first, unknown_last;
    sp_event_t *unknown_newest; /* told how many kept opens made way */
    bool adopted;               /* some of its kept opens were adopted in this batch */
    size_t quarter_at; /* 1 + its latest entry among the batch's quarters (note_quarter); 0: none */
} campaign_delta_t;

/* A batch's events are inserted up to EVENT_ROWS a statement (write_rows), like its rollups:
 * a statement's own work (its start, its cursors on the table and each index, its end) once
 * for many rows. Each is prepared on first use for 1, 2, 4... EVENT_ROWS rows. OR FAIL: a row
 * that breaks a constraint stops the statement without undoing the rows before it, so SQLite
 * keeps no statement journal (a copy of each page the statement changes); the batch that fails
 * is rolled back whole. */
#define EVENT_ROWS  32
#define EVENT_SIZES 6 /* 1 to EVENT_ROWS rows */
/* A row's parameters: the fields (the ID among them), agent, header set, apart headers. */
#define EVENT_PARAMS (SP_EVENT_N_FIELDS + 3)

/* An event row waiting for its statement: the row and the values of its apart headers (NULL:
 * none), borrowed from its event, which outlives the batch's writing; its ID and its texts'
 * IDs. */
typedef struct pending_row {
    sp_event_row_t row;
    const char *apart;
    int64_t id, agent, set;
} pending_row_t;

struct fault_group;

struct sqlite_store {
    sp_store_t base;
    sqlite3 *db;
    /* The WAL's frames after this connection's last commit (wal_committed), those that commit
     * added, and its bound in frames (WAL_CHECKPOINT_BYTES). BATCH_COMMIT: a batch's COMMIT
     * runs, whose checkpoint waits for the next batch's start (batch_checkpoint). */
    int wal_frames, wal_last, wal_bound;
    bool batch_commit;
    char *data_dir; /* where it was opened: an export's reading opens its own connection there */
    sqlite3_stmt *q[Q_COUNT];
    campaign_delta_t *deltas; /* the campaigns of the batch being written */
    size_t n_deltas, cap_deltas;
    sp_event_t **stored; /* the batch's events stored, for the tally */
    size_t n_stored, cap_stored;
    int64_t n_unknown;     /* unknown campaigns in the store during a batch; -1: not looked up */
    unsigned char *record; /* SP_EVENT_ENCODED_MAX bytes for kept opens, allocated on first use */
    struct fault_group *group; /* the database's fault state, shared by its connections */
    sp_store_failure_t last;   /* what the last failed call met */
    char why[512];             /* a fault's reason, when the database has no group */
    /* The writer's interned texts by ID (intern.h), made on its first batch, and the number
     * of text deletions they are as of (Q_INTERN_GEN). */
    sp_intern_t *agents, *sets;
    int64_t intern_gen;
    /* The texts each of the batch's rows names, agents ([0]) and header sets ([1]), one entry
     * a row: merged per text (sp_merge) and added to the texts' refs before the batch commits
     * (write_refs). */
    struct named {
        int64_t id, n;
    } * named[2];
    size_t n_named[2], cap_named[2];
    sqlite3_stmt *rollup_rows[M_TABLES][ROLLUP_SIZES]; /* prepared on first use */
    /* The batch's event rows not yet inserted (insert_row, write_rows), each with the ID SQLite
     * gives it: one past the largest in the table as the batch began (next_id, 0 until read),
     * then in order. */
    pending_row_t pending[EVENT_ROWS];
    size_t n_pending;
    int64_t next_id;
    sqlite3_stmt *event_rows[EVENT_SIZES]; /* prepared on first use */
    /* The constant each parameter of event_rows holds from its last run (bind_kept), or NULL. */
    const char *event_kept[EVENT_SIZES][EVENT_ROWS * EVENT_PARAMS];
    /* The least and greatest ID of the batch's rows in each campaign and quarter hour, one
     * entry per run of rows in one (note_quarter), merged and added to events_quarters before the
     * batch commits (write_quarters). */
    struct quarter_ids {
        const char *campaign; /* borrowed from the row, whose strings outlive the batch */
        int64_t quarter, first, last;
    } * quarters;
    size_t n_quarters, cap_quarters;
    /* Recipients' rows this writer stored or updated, by a hash of campaign and recipient
     * (KNOWN_SLOTS in sets of KNOWN_WAYS, made on first use), with the rowid it last saw each at
     * (0: none): a hint only, choosing which statements count a recipient (write_counts); either
     * way gives the same row. KNOWN_MEM is the allocation, KNOWN its first whole cache line. */
    struct known_row {
        uint64_t tag;
        int64_t rowid;
    } * known, *known_mem;
    /* The tags (sp_tally_recipient_tag) of the recipients whose rows the batch inserted
     * (write_counts): people with no rollup_people row yet (write_people). */
    uint64_t *new_rows;
    size_t n_new_rows, cap_new_rows;
    /* Of each of the batch's recipients (the tally's, in its order): its tag, and its row's first
     * and last counted open before the batch (0: none), which are its hours as an opener
     * (rollup.h, "Named openers"): write_counts reads them, write_people counts them by hour. */
    struct recipient_was {
        uint64_t tag;
        int64_t first_at, last_at;
    } * was;
    size_t cap_was;
    /* The row of a recipient as Q_RECIPIENT_ADD found it, before its update (recipient_was):
     * FOUND false when it found none. LONG_IDS holds the row's list of events when it was
     * long (EVENT_IDS_ROW_MAX), to go out whole; empty otherwise. */
    struct recipient_row_was {
        bool found;
        int64_t views, human_at, first_at, last_at, rowid;
        char client[SP_TALLY_READER_MAX], network[SP_TALLY_NETWORK_MAX];
        char forwarded[SP_TALLY_FORWARDED_MAX + 1];
        char *long_ids;
        size_t cap_long_ids;
    } row_was;
    char *ids; /* a recipient's IDs of the batch, as event_ids lists them (batch_ids) */
    size_t cap_ids;
    /* The batch's reads, folded into their opens once every row of the batch is in and its
     * recipients' rows list them (fold_reads). */
    sp_event_t **reads;
    size_t n_reads, cap_reads;
    bool batch_cache; /* its page cache grown for batches (sq_write_batch) */
};

/* ---- faults: a store that must not be written, and the WAL index's SIGBUS ------------------ */

/*
 * A store is faulted when SQLite finds it damaged (SQLITE_CORRUPT, SQLITE_NOTADB), when its
 * files cannot be written (SQLITE_IOERR, SQLITE_READONLY, SQLITE_CANTOPEN, but not a full
 * disk), or when its WAL index faults (below). From then on nothing more is written to it by
 * this process: every connection's writes, truncations and deletions of its files are refused
 * by the VFS below, so that a damaged file is not made worse and stays as it was found for a
 * recovery. The journal keeps the opens; a restart on a repaired or restored store indexes
 * them.
 *
 * The WAL index (spypixel.db-shm) is a file that SQLite maps into memory and shares with the
 * other processes that open the database (the command line, sqlite3, a backup). When that
 * file is cut short, or made immutable (ext4 and xfs refuse the first write to a clean page of
 * it with SIGBUS), or its disk fails, an access to the mapping raises SIGBUS, which ends the
 * process unless it is handled. The ways to handle it:
 *  - the WAL index in heap memory (PRAGMA locking_mode=EXCLUSIVE, or the unix-excl VFS): no
 *    mapping, so no SIGBUS, but no other process could open the store while the server runs:
 *    no `spypixel user add` or `campaign create` beside a running server, no online backup
 *    with sqlite3, which the tests and the documented operations rely on;
 *  - a guard that jumps out of SQLite on SIGBUS, as the journal does around its own copy:
 *    SQLite would be left in the middle of an operation, holding its mutexes and locks, with
 *    its structures half updated; unsafe;
 *  - make the faulting access succeed and stop writing: chosen. The VFS below notes each
 *    region of the WAL index SQLite maps. On SIGBUS in one, the handler maps every region of
 *    that database again, privately (MAP_PRIVATE of the same file where it still has the
 *    bytes, zeros where it does not), in place (MAP_FIXED), and returns; the access is made
 *    again on memory that cannot fault. SQLite goes on unaware; the connections of this
 *    process share the private copy, so they stay consistent with each other, and a WAL index
 *    of zeros makes SQLite rebuild it from the WAL. Since the other processes no longer see
 *    this process's WAL index, the store is faulted at once: nothing more is written to it
 *    from here, so no other process can be misled by a write it cannot see. Reads go on. The
 *    handler uses only atomics, open, fstat, mmap and close (all async-signal-safe).
 */

#define GROUPS_MAX  32 /* databases open at once in this process, faults noted */
#define REGIONS_MAX 64 /* WAL index regions (32 KiB, 4096 WAL frames each) watched per database */

enum { REGION_SHARED, REGION_BUSY, REGION_PRIVATE, REGION_ZEROS };

typedef struct fault_group {
    char path[PATH_MAX];    /* the database's, as SQLite names it; "" when the slot is free */
    char shm[PATH_MAX + 8]; /* its WAL index */
    int refs;               /* files open on it, and connections mapping its WAL index (vfs_lock) */
    int shm_users;
    atomic_int faulted; /* 1 once faulted; why says why, written before */
    atomic_int sigbus;  /* the WAL index faulted: why is made when asked */
    char why[512];
    struct region {
        _Atomic(uintptr_t) addr;
        size_t len;
        off_t off;
        atomic_int state;
    } regions[REGIONS_MAX];
    atomic_int n_regions;
} fault_group_t;

static fault_group_t groups[GROUPS_MAX];
static pthread_mutex_t vfs_lock = PTHREAD_MUTEX_INITIALIZER;
static sqlite3_vfs *real_vfs;

/* Marks G faulted for WHY (the first reason stays). */
static void group_fault(fault_group_t *g, const char *why)
{
    pthread_mutex_lock(&vfs_lock);
    if (!atomic_load(&g->faulted)) {
        snprintf(g->why, sizeof(g->why), "%s", why);
        atomic_store(&g->faulted, 1);
    }
    pthread_mutex_unlock(&vfs_lock);
}

static bool group_faulted(fault_group_t *g)
{
    return g && (atomic_load(&g->faulted) || atomic_load(&g->sigbus));
}

static void group_why(fault_group_t *g, char *buf, size_t len)
{
    pthread_mutex_lock(&vfs_lock);
    if (atomic_load(&g->faulted))
        snprintf(buf, len, "%s", g->why);
    else
        snprintf(buf, len,
                 "the WAL index (%s) faulted: the file was cut short, made immutable or its disk "
                 "failed",
                 strrchr(g->shm, '/') ? strrchr(g->shm, '/') + 1 : g->shm);
    pthread_mutex_unlock(&vfs_lock);
}

/* The group of database PATH (LEN bytes), made if need be; NULL when every slot is taken.
 * Under vfs_lock. */
static fault_group_t *group_get(const char *path, size_t len)
{
    fault_group_t *g = NULL;
    for (int i = 0; i < GROUPS_MAX && !g; i++)
        if (groups[i].path[0] && strlen(groups[i].path) == len &&
            0 == strncmp(groups[i].path, path, len))
            g = &groups[i];
    if (g && g->refs)
        return g;
    /* A database no file of this process holds any more starts afresh: a store is faulted
     * until every connection to it has been closed. */
    for (int i = 0; i < GROUPS_MAX && !g; i++)
        if (!groups[i].refs)
            g = &groups[i];
    if (!g || len + 5 > sizeof(g->path))
        return NULL;
    /* A slot no file holds: its regions were cleared when the last connection unmapped them. */
    memcpy(g->path, path, len);
    g->path[len] = '\0';
    snprintf(g->shm, sizeof(g->shm), "%s-shm", g->path);
    atomic_store(&g->faulted, 0);
    atomic_store(&g->sigbus, 0);
    atomic_store(&g->n_regions, 0);
    g->why[0] = '\0';
    g->shm_users = 0;
    return g;
}

/* Maps region R of G's WAL index privately, in place: the file's bytes where it still has
 * them, else zeros. From the signal handler. */
static void region_private(fault_group_t *g, struct region *r, int fd, off_t size)
{
    int from = REGION_SHARED;
    if (!atomic_compare_exchange_strong(&r->state, &from, REGION_BUSY))
        return;
    void *at = (void *)atomic_load(&r->addr);
    bool file = fd >= 0 && r->off + (off_t)r->len <= size;
    void *m = file ? mmap(at, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, r->off)
                   : MAP_FAILED;
    if (MAP_FAILED == m) {
        file = false;
        m = mmap(at, r->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1,
                 0);
    }
    atomic_store(&r->state, MAP_FAILED == m ? REGION_SHARED : file ? REGION_PRIVATE : REGION_ZEROS);
    (void)g;
}

static bool shm_fault(void *addr)
{
    uintptr_t a = (uintptr_t)addr;
    for (int i = 0; i < GROUPS_MAX; i++) {
        fault_group_t *g = &groups[i];
        int n = atomic_load(&g->n_regions);
        for (int k = 0; k < n; k++) {
            struct region *r = &g->regions[k];
            uintptr_t base = atomic_load(&r->addr);
            if (!base || a < base || a >= base + r->len)
                continue;
            int state = atomic_load(&r->state);
            if (REGION_ZEROS == state)
                return false; /* cannot fault: not ours to explain */
            if (REGION_PRIVATE == state) {
                /* A private copy of the file faults where the file was cut since: zeros. */
                int from = REGION_PRIVATE;
                if (atomic_compare_exchange_strong(&r->state, &from, REGION_BUSY)) {
                    void *m = mmap((void *)base, r->len, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS, -1, 0);
                    atomic_store(&r->state, MAP_FAILED == m ? REGION_PRIVATE : REGION_ZEROS);
                }
                return true;
            }
            /* Every region of this database at once, so that what SQLite reads after this is
             * one snapshot; a region another thread is mapping (BUSY) is made again once it
             * is done. */
            atomic_store(&g->sigbus, 1);
            int fd = open(g->shm, O_RDONLY | O_CLOEXEC);
            struct stat st;
            off_t size = fd >= 0 && 0 == fstat(fd, &st) ? st.st_size : 0;
            for (int m = 0; m < n; m++)
                region_private(g, &g->regions[m], fd, size);
            if (fd >= 0)
                close(fd);
            return true;
        }
    }
    return false;
}

/* Notes region ADDR (LEN bytes at OFF of the WAL index) of G, once. */
static void region_note(fault_group_t *g, void *addr, size_t len, off_t off)
{
    pthread_mutex_lock(&vfs_lock);
    int n = atomic_load(&g->n_regions);
    bool known = false;
    for (int k = 0; k < n && !known; k++)
        known = atomic_load(&g->regions[k].addr) == (uintptr_t)addr;
    if (!known && n < REGIONS_MAX) {
        struct region *r = &g->regions[n];
        r->len = len;
        r->off = off;
        atomic_store(&r->state, REGION_SHARED);
        atomic_store(&r->addr, (uintptr_t)addr);
        atomic_store(&g->n_regions, n + 1);
    }
    pthread_mutex_unlock(&vfs_lock);
    if (!known)
        sp_sigbus_watch(shm_fault);
}

/* A file SQLite opened through the VFS: the unix VFS's file after our header. */
typedef struct vfile {
    sqlite3_file base;
    fault_group_t *group; /* the database the file belongs to, or NULL (a temporary file) */
    bool shm;             /* this connection maps the WAL index */
    sqlite3_file *real;
} vfile_t;

#define REAL(f) (((vfile_t *)(f))->real)

static int vf_close(sqlite3_file *f)
{
    vfile_t *v = (vfile_t *)f;
    int rc = REAL(f)->pMethods->xClose(REAL(f));
    if (v->group) {
        pthread_mutex_lock(&vfs_lock);
        v->group->refs--;
        pthread_mutex_unlock(&vfs_lock);
    }
    return rc;
}

static int vf_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int vf_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (group_faulted(((vfile_t *)f)->group))
        return SQLITE_IOERR_WRITE;
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int vf_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    if (group_faulted(((vfile_t *)f)->group))
        return SQLITE_IOERR_TRUNCATE;
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int vf_sync(sqlite3_file *f, int flags)
{
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int vf_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int vf_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int vf_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int vf_check_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int vf_file_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int vf_sector_size(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int vf_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int vf_shm_map(sqlite3_file *f, int region, int size, int extend, void volatile **pp)
{
    vfile_t *v = (vfile_t *)f;
    int rc = REAL(f)->pMethods->xShmMap(REAL(f), region, size, extend, pp);
    if (v->group && *pp && (SQLITE_OK == rc || SQLITE_READONLY == rc)) {
        if (!v->shm) {
            pthread_mutex_lock(&vfs_lock);
            v->group->shm_users++;
            pthread_mutex_unlock(&vfs_lock);
            v->shm = true;
        }
        region_note(v->group, (void *)*pp, (size_t)size, (off_t)region * size);
    }
    return rc;
}

static int vf_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}

static void vf_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int vf_shm_unmap(sqlite3_file *f, int delete_flag)
{
    vfile_t *v = (vfile_t *)f;
    if (v->shm) {
        v->shm = false;
        pthread_mutex_lock(&vfs_lock);
        /* The last connection of the process: the regions are unmapped after this. */
        if (0 == --v->group->shm_users) {
            int n = atomic_load(&v->group->n_regions);
            atomic_store(&v->group->n_regions, 0);
            for (int k = 0; k < n; k++)
                atomic_store(&v->group->regions[k].addr, 0);
        }
        pthread_mutex_unlock(&vfs_lock);
        if (group_faulted(v->group))
            delete_flag = 0;
    }
    return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int vf_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}

static int vf_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods vfile_methods = {
    .iVersion = 3,
    .xClose = vf_close,
    .xRead = vf_read,
    .xWrite = vf_write,
    .xTruncate = vf_truncate,
    .xSync = vf_sync,
    .xFileSize = vf_file_size,
    .xLock = vf_lock,
    .xUnlock = vf_unlock,
    .xCheckReservedLock = vf_check_reserved,
    .xFileControl = vf_file_control,
    .xSectorSize = vf_sector_size,
    .xDeviceCharacteristics = vf_device,
    .xShmMap = vf_shm_map,
    .xShmLock = vf_shm_lock,
    .xShmBarrier = vf_shm_barrier,
    .xShmUnmap = vf_shm_unmap,
    .xFetch = vf_fetch,
    .xUnfetch = vf_unfetch,
};

/* The database a file of NAME belongs to: its own name for the database, the name without
 * "-wal" or "-journal" for those; its length in *LEN, or NULL for other files. */
static const char *database_of(const char *name, int flags, size_t *len)
{
    if (!name)
        return NULL;
    size_t n = strlen(name);
    const char *suffix = flags & SQLITE_OPEN_WAL            ? "-wal"
                         : flags & SQLITE_OPEN_MAIN_JOURNAL ? "-journal"
                         : flags & SQLITE_OPEN_MAIN_DB      ? ""
                                                            : NULL;
    if (!suffix || n < strlen(suffix) || 0 != strcmp(name + n - strlen(suffix), suffix))
        return NULL;
    *len = n - strlen(suffix);
    return name;
}

static int vfs_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
    vfile_t *v = (vfile_t *)f;
    v->real = (sqlite3_file *)(v + 1);
    v->group = NULL;
    v->shm = false;
    int rc = real_vfs->xOpen(real_vfs, name, v->real, flags, out);
    if (SQLITE_OK != rc) {
        f->pMethods = NULL;
        if (v->real->pMethods)
            v->real->pMethods->xClose(v->real);
        return rc;
    }
    size_t len;
    const char *db = database_of(name, flags, &len);
    if (db) {
        pthread_mutex_lock(&vfs_lock);
        if ((v->group = group_get(db, len)))
            v->group->refs++;
        pthread_mutex_unlock(&vfs_lock);
    }
    f->pMethods = &vfile_methods;
    (void)vfs;
    return SQLITE_OK;
}

static int vfs_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    /* The WAL of a faulted database stays: it may hold commits a recovery wants. */
    size_t n = strlen(name);
    if (n > 4 && 0 == strcmp(name + n - 4, "-wal")) {
        bool faulted = false;
        pthread_mutex_lock(&vfs_lock);
        for (int i = 0; i < GROUPS_MAX && !faulted; i++)
            faulted = groups[i].path[0] && strlen(groups[i].path) == n - 4 &&
                      0 == strncmp(groups[i].path, name, n - 4) && group_faulted(&groups[i]);
        pthread_mutex_unlock(&vfs_lock);
        if (faulted)
            return SQLITE_IOERR_DELETE;
    }
    (void)vfs;
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int vfs_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int vfs_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *vfs_dlopen(sqlite3_vfs *vfs, const char *name)
{
    (void)vfs;
    return real_vfs->xDlOpen(real_vfs, name);
}

static void vfs_dlerror(sqlite3_vfs *vfs, int n, char *msg)
{
    (void)vfs;
    real_vfs->xDlError(real_vfs, n, msg);
}

static void (*vfs_dlsym(sqlite3_vfs *vfs, void *h, const char *sym))(void)
{
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, h, sym);
}

static void vfs_dlclose(sqlite3_vfs *vfs, void *h)
{
    (void)vfs;
    real_vfs->xDlClose(real_vfs, h);
}

static int vfs_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xRandomness(real_vfs, n, out);
}

static int vfs_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return real_vfs->xSleep(real_vfs, us);
}

static int vfs_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return real_vfs->xCurrentTime(real_vfs, out);
}

static int vfs_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return real_vfs->xGetLastError(real_vfs, n, out);
}

static int vfs_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

static sqlite3_vfs fenced_vfs = {
    .iVersion = 2,
    .zName = "spypixel",
    .xOpen = vfs_open,
    .xDelete = vfs_delete,
    .xAccess = vfs_access,
    .xFullPathname = vfs_full_pathname,
    .xDlOpen = vfs_dlopen,
    .xDlError = vfs_dlerror,
    .xDlSym = vfs_dlsym,
    .xDlClose = vfs_dlclose,
    .xRandomness = vfs_randomness,
    .xSleep = vfs_sleep,
    .xCurrentTime = vfs_current_time,
    .xGetLastError = vfs_last_error,
    .xCurrentTimeInt64 = vfs_current_time64,
};

/* Classifies the failure the connection just met, and faults the store on damage or a file
 * that cannot be written. */
static void note_failure(sqlite_store_t *s)
{
    int rc = sqlite3_extended_errcode(s->db), sys = sqlite3_system_errno(s->db);
    char why[400];
    switch (rc & 0xff) {
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        snprintf(why, sizeof(why), "the store is damaged: %s", sqlite3_errmsg(s->db));
        break;
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
        if (ENOSPC == sys || EDQUOT == sys || SQLITE_IOERR_NOMEM == rc) {
            s->last = SP_STORE_FAIL_RETRY;
            return;
        }
        if (sys)
            snprintf(why, sizeof(why), "the store's files cannot be written: %s (%s)",
                     sqlite3_errmsg(s->db), strerror(sys));
        else
            snprintf(why, sizeof(why), "the store's files cannot be written: %s",
                     sqlite3_errmsg(s->db));
        break;
    case SQLITE_FULL:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
        s->last = SP_STORE_FAIL_RETRY;
        return;
    default:
        s->last = SP_STORE_FAIL_DATA;
        return;
    }
    s->last = SP_STORE_FAIL_FAULT;
    if (group_faulted(s->group))
        return; /* the first reason stays */
    if (s->group)
        group_fault(s->group, why);
    else if (!s->why[0])
        snprintf(s->why, sizeof(s->why), "%s", why);
}

static sp_store_failure_t sq_failure(sp_store_t *base, char *why, size_t len)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (group_faulted(s->group)) {
        if (why)
            group_why(s->group, why, len);
        return SP_STORE_FAIL_FAULT;
    }
    if (SP_STORE_FAIL_FAULT == s->last && why)
        snprintf(why, len, "%s", s->why);
    return s->last;
}

static int fail(sqlite_store_t *s, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "sqlite: %s: %s", what, sqlite3_errmsg(s->db));
    note_failure(s);
    return -1;
}

static int exec(sqlite_store_t *s, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (SQLITE_OK == sqlite3_exec(s->db, sql, NULL, NULL, &msg))
        return 0;
    snprintf(err, errlen, "sqlite: %s", msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    note_failure(s);
    return -1;
}

/* After a failure inside a transaction. Not through exec: what the failure met is kept, not
 * that of a ROLLBACK with no transaction left (SQLite ends some on its own). */
static void rollback(sqlite_store_t *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
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

/* Binds field F of ROW as parameter I. */
static void bind_field(sqlite3_stmt *st, int i, const sp_event_row_t *row,
                       const sp_event_field_t *f)
{
    switch (f->kind) {
    case SP_FIELD_ID:
    case SP_FIELD_TIME:
    case SP_FIELD_KIND:
    case SP_FIELD_CLASS:
        sqlite3_bind_int64(st, i, sp_event_row_int(row, f));
        return;
    case SP_FIELD_TEXT:
    case SP_FIELD_TEXT_OR_NULL:
    case SP_FIELD_OBJECT:
        if (sp_event_row_text(row, f))
            bind_text(st, i, sp_event_row_text(row, f));
        else
            sqlite3_bind_null(st, i);
        return;
    case SP_FIELD_COORD:
        if (isnan(sp_event_row_coord(row, f)))
            sqlite3_bind_null(st, i);
        else
            sqlite3_bind_double(st, i, sp_event_row_coord(row, f));
        return;
    case SP_FIELD_DURATION:
        if (sp_event_row_int(row, f) < 0)
            sqlite3_bind_null(st, i);
        else
            sqlite3_bind_int64(st, i, sp_event_row_int(row, f));
        return;
    }
}

/* Reads column I into field F of ROW (text borrowed from the statement's row). */
static void read_field(sqlite3_stmt *st, int i, sp_event_row_t *row, const sp_event_field_t *f)
{
    /* Only the kinds that may be NULL ask: a column's type costs as much as its value. */
    bool null = (SP_FIELD_TEXT_OR_NULL == f->kind || SP_FIELD_COORD == f->kind ||
                 SP_FIELD_DURATION == f->kind) &&
                SQLITE_NULL == sqlite3_column_type(st, i);
    switch (f->kind) {
    case SP_FIELD_ID:
    case SP_FIELD_TIME:
    case SP_FIELD_KIND:
    case SP_FIELD_CLASS:
        sp_event_row_set_int(row, f, sqlite3_column_int64(st, i));
        return;
    case SP_FIELD_TEXT:
    case SP_FIELD_OBJECT:
        sp_event_row_set_text(row, f, col_text(st, i));
        return;
    case SP_FIELD_TEXT_OR_NULL:
        sp_event_row_set_text(row, f, null ? NULL : col_text(st, i));
        return;
    case SP_FIELD_COORD:
        sp_event_row_set_coord(row, f, null ? NAN : sqlite3_column_double(st, i));
        return;
    case SP_FIELD_DURATION:
        sp_event_row_set_int(row, f, null ? -1 : sqlite3_column_int64(st, i));
        return;
    }
}

/* TEXT's ID in the table of FIND and ADD (agents or header_sets), added when new: from the
 * writer's cache C when it holds it, else from the table. */
static int intern(sqlite_store_t *s, sp_intern_t *c, int find, int add, const sp_intern_key_t *key,
                  int64_t *id, char *err, size_t errlen)
{
    const char *text = key->text;
    size_t len = key->len;
    if (0 != (*id = sp_intern_find(c, key)))
        return 0;
    sqlite3_stmt *st = s->q[find];
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (SQLITE_ROW == rc)
        *id = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (SQLITE_ROW != rc && SQLITE_DONE != rc)
        return fail(s, err, errlen, "interned text");
    if (SQLITE_DONE == rc) {
        st = s->q[add];
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, text, (int)len, SQLITE_STATIC);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "intern text");
        *id = sqlite3_last_insert_rowid(s->db);
    }
    sp_intern_keep(c, key, *id);
    return 0;
}

/* Empties the writer's cache when texts were deleted since it was filled: an ID it holds may be
 * gone, or given to another text since (SQLite gives the largest ID again once it is deleted).
 * Read inside the batch's write transaction, which no deletion can commit in the middle of. */
static int intern_fresh(sqlite_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->q[Q_INTERN_GEN];
    sqlite3_reset(st);
    int rc = sqlite3_step(st);
    int64_t gen = SQLITE_ROW == rc ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    if (SQLITE_ROW != rc && SQLITE_DONE != rc)
        return fail(s, err, errlen, "interned texts");
    if (gen != s->intern_gen && s->agents) {
        sp_intern_clear(s->agents);
        sp_intern_clear(s->sets);
    }
    s->intern_gen = gen;
    return 0;
}

/* Notes that a row of the batch names text ID (never 0) of kind T (0 agent, 1 header set). */
static void note_named(sqlite_store_t *s, int t, int64_t id)
{
    if (s->n_named[t] == s->cap_named[t]) {
        s->cap_named[t] = s->cap_named[t] ? 2 * s->cap_named[t] : 256;
        s->named[t] = realloc(s->named[t], s->cap_named[t] * sizeof(*s->named[t]));
        if (!s->named[t])
            abort();
    }
    s->named[t][s->n_named[t]++] = (struct named){id, 1};
}

static uint64_t hash_named(const void *p)
{
    return sp_hash_int(SP_HASH_SEED, ((const struct named *)p)->id);
}

static bool same_named(const void *a, const void *b)
{
    return ((const struct named *)a)->id == ((const struct named *)b)->id;
}

static void add_named(void *into, void *from)
{
    ((struct named *)into)->n += ((const struct named *)from)->n;
}

/* The constants a parameter of the events' statements may keep from one run to the next:
 * SQLite keeps a parameter's value across sqlite3_reset, so one that holds the constant already
 * is not bound again. A row of realistic opens binds about ten of them (empty versions, brand,
 * model, via, target; no referer, engagement, ID or agent's text; cookies "{}"), each
 * sqlite3_bind_* about 200 instructions, 3% of the writer's. */
static const char kept_null[] = "", kept_empty[] = "", kept_braces[] = "{}";

/* Binds TEXT (NULL: SQL NULL) to parameter I of ST unless *KEPT says it holds that constant
 * already; *KEPT becomes the constant bound, or NULL for any other text. */
static void bind_kept(sqlite3_stmt *st, int i, const char **kept, const char *text)
{
    const char *c = !text                            ? kept_null
                    : !text[0]                       ? kept_empty
                    : 0 == strcmp(text, kept_braces) ? kept_braces
                                                     : NULL;
    if (c && *kept == c)
        return;
    *kept = c;
    if (kept_null == c)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, c ? c : text, -1, SQLITE_STATIC);
}

/* Binds field F of ROW to parameter I of ST, of the events' statements (KEPT: bind_kept). */
static void bind_row_field(sqlite3_stmt *st, int i, const char **kept, const sp_event_row_t *row,
                           const sp_event_field_t *f)
{
    switch (f->kind) {
    case SP_FIELD_TEXT:
    case SP_FIELD_TEXT_OR_NULL:
    case SP_FIELD_OBJECT:
        bind_kept(st, i, kept, sp_event_row_text(row, f));
        return;
    case SP_FIELD_COORD:
        if (isnan(sp_event_row_coord(row, f))) {
            bind_kept(st, i, kept, NULL);
            return;
        }
        break;
    case SP_FIELD_DURATION:
        if (sp_event_row_int(row, f) < 0) {
            bind_kept(st, i, kept, NULL);
            return;
        }
        break;
    default:
        break;
    }
    *kept = NULL; /* a number: bound each run */
    bind_field(st, i, row, f);
}

/* Inserts the batch's pending rows (insert_row) and forgets them. */
static int write_rows(sqlite_store_t *s, char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; i < s->n_pending && !rc;) {
        int k = EVENT_SIZES - 1;
        while ((size_t)1 << k > s->n_pending - i)
            k--;
        size_t rows = (size_t)1 << k;
        sqlite3_stmt **st = &s->event_rows[k];
        if (!*st) {
            size_t len = strlen(insert_sql) + rows * (4 * EVENT_PARAMS + 4) + 1, at;
            char *sql = malloc(len);
            if (!sql)
                abort();
            at = (size_t)snprintf(sql, len, "%s VALUES", insert_sql);
            for (size_t j = 0; j < rows; j++) {
                at += (size_t)snprintf(sql + at, len - at, "%s(?", j ? ", " : " ");
                for (int p = 1; p < EVENT_PARAMS; p++)
                    at += (size_t)snprintf(sql + at, len - at, ", ?");
                at += (size_t)snprintf(sql + at, len - at, ")");
            }
            rc = prepare(s, st, sql, err, errlen);
            free(sql);
            if (rc)
                break;
            memset(s->event_kept[k], 0, sizeof(s->event_kept[k])); /* nothing bound yet */
        }
        sqlite3_reset(*st);
        const char **kept = s->event_kept[k];
        int param = 0;
        for (size_t j = 0; j < rows; j++) {
            const pending_row_t *r = &s->pending[i + j];
            for (size_t f = 0; f < SP_EVENT_N_FIELDS; f++) {
                ++param;
                /* No ID: SQLite gives the next one, which is the row's (checked below), without
                 * looking for the ID given among the table's (a seek a row). */
                if (SP_FIELD_ID == sp_event_fields[f].kind)
                    bind_kept(*st, param, &kept[param - 1], NULL);
                else if (SP_EVENT_FIELD_user_agent == f)
                    bind_kept(*st, param, &kept[param - 1], NULL);
                else if (SP_EVENT_FIELD_headers_json == f)
                    bind_kept(*st, param, &kept[param - 1], "");
                else
                    bind_row_field(*st, param, &kept[param - 1], &r->row, &sp_event_fields[f]);
            }
            ++param;
            if (r->agent) {
                kept[param - 1] = NULL;
                sqlite3_bind_int64(*st, param, r->agent);
            } else {
                bind_kept(*st, param, &kept[param - 1], NULL);
            }
            ++param;
            kept[param - 1] = NULL;
            sqlite3_bind_int64(*st, param, r->set);
            ++param;
            bind_kept(*st, param, &kept[param - 1], r->apart);
        }
        if (SQLITE_DONE != sqlite3_step(*st)) {
            rc = fail(s, err, errlen, "insert event");
        } else if (sqlite3_last_insert_rowid(s->db) != s->pending[i + rows - 1].id) {
            snprintf(err, errlen, "sqlite: event IDs out of step (%lld given, %lld expected)",
                     (long long)sqlite3_last_insert_rowid(s->db),
                     (long long)s->pending[i + rows - 1].id);
            rc = -1;
        }
        /* The texts bound are the events' (SQLITE_STATIC), freed once the batch is stored: the
         * next run binds every parameter again but those holding a constant (bind_kept), which
         * point at static storage. */
        sqlite3_reset(*st);
        i += rows;
    }
    s->n_pending = 0;
    return rc;
}

/* Notes that the batch's row ID is of CAMPAIGN at time TS; D, when not NULL, is CAMPAIGN's delta.
 * A campaign's rows come in runs of its quarter hour (a batch is an instant's opens): a run makes
 * one entry. With D, the run goes on from the campaign's own latest entry: the opens of campaigns
 * sent at once come interleaved, and each made an entry (16,000 a batch of twenty campaigns, each
 * hashed and compared by its cold text as they were merged). Without, from the batch's latest
 * entry. */
static void note_quarter(sqlite_store_t *s, campaign_delta_t *d, const char *campaign, int64_t ts,
                         int64_t id)
{
    int64_t quarter = ts / SP_QUERY_QUARTER_MS;
    struct quarter_ids *last = NULL;
    if (d) {
        if (d->quarter_at)
            last = &s->quarters[d->quarter_at - 1];
    } else if (s->n_quarters) {
        last = &s->quarters[s->n_quarters - 1];
    }
    if (last && last->quarter == quarter && (d || 0 == strcmp(last->campaign, campaign))) {
        last->last = id; /* IDs grow through the batch */
        return;
    }
    if (s->n_quarters == s->cap_quarters) {
        s->cap_quarters = s->cap_quarters ? 2 * s->cap_quarters : 64;
        s->quarters = realloc(s->quarters, s->cap_quarters * sizeof(*s->quarters));
        if (!s->quarters)
            abort();
    }
    s->quarters[s->n_quarters++] = (struct quarter_ids){campaign, quarter, id, id};
    if (d)
        d->quarter_at = s->n_quarters;
}

static uint64_t hash_quarter(const void *p)
{
    const struct quarter_ids *e = p;
    return sp_hash_int(sp_hash_str(SP_HASH_SEED, e->campaign), e->quarter);
}

static bool same_quarter(const void *a, const void *b)
{
    const struct quarter_ids *x = a, *y = b;
    return x->quarter == y->quarter && 0 == strcmp(x->campaign, y->campaign);
}

static void add_quarter(void *into, void *from)
{
    struct quarter_ids *x = into;
    const struct quarter_ids *y = from;
    if (y->first < x->first)
        x->first = y->first;
    if (y->last > x->last)
        x->last = y->last;
}

/* Adds the batch's rows to events_quarters: one upsert per campaign and quarter hour. */
static int write_quarters(sqlite_store_t *s, char *err, size_t errlen)
{
    s->n_quarters = sp_merge(s->quarters, s->n_quarters, sizeof(*s->quarters), hash_quarter,
                             same_quarter, add_quarter);
    for (size_t i = 0; i < s->n_quarters; i++) {
        const struct quarter_ids *e = &s->quarters[i];
        sqlite3_stmt *st = s->q[Q_QUARTER_IDS];
        sqlite3_reset(st);
        bind_text(st, 1, e->campaign);
        sqlite3_bind_int64(st, 2, e->quarter);
        sqlite3_bind_int64(st, 3, e->first);
        sqlite3_bind_int64(st, 4, e->last);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "events' quarter hours");
    }
    return 0;
}

/* Queues ROW (EV's, or made from EV's; D its campaign's delta, or NULL), its ID into *ID: its
 * user agent and header set by their IDs. Its statement runs when EVENT_ROWS are queued, or with
 * the others at write_rows. */
static int insert_row(sqlite_store_t *s, sp_event_t *ev, campaign_delta_t *d,
                      const sp_event_row_t *row, int64_t *id, char *err, size_t errlen)
{
    if (!s->agents) {
        s->agents = sp_intern_new(SP_INTERN_AGENTS, SP_INTERN_TEXT_MAX);
        s->sets = sp_intern_new(SP_INTERN_SETS, SP_INTERN_TEXT_MAX);
    }
    if (!s->next_id) {
        sqlite3_stmt *st = s->q[Q_EVENT_MAX];
        sqlite3_reset(st);
        if (SQLITE_ROW != sqlite3_step(st))
            return fail(s, err, errlen, "event IDs");
        s->next_id = sqlite3_column_int64(st, 0) + 1;
        sqlite3_reset(st);
    }
    int64_t agent = 0, set = 0;
    sp_intern_key_t agent_key, set_key; /* ROW's: EV's own, or its copy's (a likely forward's) */
    const char *apart;
    sp_intern_event_keys(ev, &agent_key, &set_key, &apart);
    if ((agent_key.text &&
         0 != intern(s, s->agents, Q_AGENT_FIND, Q_AGENT_ADD, &agent_key, &agent, err, errlen)) ||
        0 != intern(s, s->sets, Q_SET_FIND, Q_SET_ADD, &set_key, &set, err, errlen))
        return -1;
    pending_row_t *r = &s->pending[s->n_pending++];
    *r = (pending_row_t){
        .row = *row, .id = s->next_id++, .agent = agent, .set = set, .apart = apart};
    *id = r->id;
    note_quarter(s, d, row->campaign, row->ts_ms, r->id);
    if (agent)
        note_named(s, 0, agent);
    note_named(s, 1, set);
    return EVENT_ROWS == s->n_pending ? write_rows(s, err, errlen) : 0;
}

/* Adds to each text's refs the batch's rows that name it: one UPDATE per distinct text. A text
 * that is not there fails the batch (its rows would name nothing): the retry, with the cache
 * emptied, stores it anew. */
static int write_refs(sqlite_store_t *s, char *err, size_t errlen)
{
    static const int stmt[2] = {Q_AGENT_REFS, Q_SET_REFS};
    for (int t = 0; t < 2; t++) {
        s->n_named[t] = sp_merge(s->named[t], s->n_named[t], sizeof(*s->named[t]), hash_named,
                                 same_named, add_named);
        for (size_t i = 0; i < s->n_named[t]; i++) {
            const struct named *e = &s->named[t][i];
            sqlite3_stmt *st = s->q[stmt[t]];
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, e->id);
            sqlite3_bind_int64(st, 2, e->n);
            if (SQLITE_DONE != sqlite3_step(st))
                return fail(s, err, errlen, "count interned texts");
            if (1 != sqlite3_changes(s->db)) {
                snprintf(err, errlen, "sqlite: interned text %lld is gone", (long long)e->id);
                return -1;
            }
        }
    }
    return 0;
}

/* Folds each of the batch's reads into its open, in the batch's order, once the batch's rows are
 * in, its recipients' rows list them and its quarter hours hold their IDs: its open may be
 * among them, with a recipient or without. */
static int fold_reads(sqlite_store_t *s, char *err, size_t errlen)
{
    for (size_t i = 0; i < s->n_reads; i++) {
        sp_event_t *ev = s->reads[i];
        sp_tally_read_t r;
        sp_tally_read_params(ev, &r);
        sqlite3_stmt *st = s->q[ev->recipient[0] ? Q_READ_FOLD : Q_READ_FOLD_ANONYMOUS];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, ev->ts_ms);
        bind_text(st, 2, ev->campaign);
        bind_text(st, 3, ev->recipient);
        bind_text(st, 4, ev->visitor);
        sqlite3_bind_int64(st, 5, r.read_ms);
        sqlite3_bind_int64(st, 6, r.human);
        bind_text(st, 7, r.if_human);
        bind_text(st, 8, r.otherwise);
        int rc = sqlite3_step(st);
        ev->outcome = SP_OUTCOME_UNMATCHED;
        if (SQLITE_ROW == rc) {
            sp_tally_read_folded(ev, sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1));
            rc = sqlite3_step(st);
        }
        sqlite3_reset(st);
        if (SQLITE_DONE != rc)
            return fail(s, err, errlen, "read time");
    }
    return 0;
}

/* Appends EV to the list *LIST of *N events (room for *CAP, grown as needed). */
static void push_event(sp_event_t ***list, size_t *n, size_t *cap, sp_event_t *ev)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        if (!(*list = realloc(*list, *cap * sizeof(**list))))
            abort();
    }
    (*list)[(*n)++] = ev;
}

/* Settles what becomes of EV (adopted before, kept apart, refused, stored) and stores it when
 * it is to be: its row, with the ID handed out. The counts come after, from the tally. */
static int write_one(sqlite_store_t *s, sp_event_t *ev, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (SP_EVENT_READ == ev->kind) {
        push_event(&s->reads, &s->n_reads, &s->cap_reads, ev);
        return 0;
    }
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

    if (0 != insert_row(s, ev, d, sp_event_row(ev), &ev->id, err, errlen))
        return -1;
    ev->outcome = SP_OUTCOME_STORED;
    push_event(&s->stored, &s->n_stored, &s->cap_stored, ev);
    return 0;
}

/* Adds what the tally counted: each recipient's counts (the store says whether it is new), each
 * client (likewise), then each campaign's, with the unique views those made: one UPDATE per
 * campaign and batch, which also moves the row's campaigns_last_view index entry once instead
 * of once per open. */
/* The IDs of recipient R's events in the batch (of T), as event_ids lists them, in S's ids:
 * written digit by digit (snprintf's were 4% of the writer's instructions). */
static const char *batch_ids(sqlite_store_t *s, const sp_tally_t *t, const sp_tally_recipient_t *r)
{
    size_t need = r->n_members * 21 + 1, at = 0; /* an ID's 19 digits at most, and a comma */
    if (need > s->cap_ids) {
        s->cap_ids = need < 4096 ? 4096 : need;
        free(s->ids);
        if (!(s->ids = malloc(s->cap_ids)))
            abort();
    }
    for (size_t k = 0; k < r->n_members; k++) {
        uint64_t id = (uint64_t)t->member_ids[r->members + k]; /* > 0: given by the writer */
        char digits[20];
        int n = 0;
        do
            digits[n++] = (char)('0' + id % 10);
        while ((id /= 10));
        if (k)
            s->ids[at++] = ',';
        while (n)
            s->ids[at++] = digits[--n];
    }
    s->ids[at] = '\0';
    return s->ids;
}

/* Binds what the batch adds to recipient R (of T) to recipient statement ST. */
static void bind_recipient(sqlite_store_t *s, sqlite3_stmt *st, const sp_tally_t *t,
                           const sp_tally_recipient_t *r)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 13, batch_ids(s, t, r), -1, SQLITE_TRANSIENT);
    bind_text(st, 1, t->campaigns[r->campaign].id);
    bind_text(st, 2, r->recipient);
    for (int k = 0; k < SP_CLASS_COUNT; k++)
        sqlite3_bind_int64(st, 3 + k, r->by_class[k]);
    sqlite3_bind_int64(st, 7, r->clicks);
    sqlite3_bind_int64(st, 8, r->first_at);
    sqlite3_bind_int64(st, 9, r->last_at);
    bind_text(st, 10, r->client);
    bind_text(st, 11, r->network);
    sqlite3_bind_int64(st, 12, r->human_at);
}

/* Runs statement Q (the recipient's update or insert) for R. */
static int step_recipient(sqlite_store_t *s, int q, const sp_tally_t *t,
                          const sp_tally_recipient_t *r, char *err, size_t errlen)
{
    bind_recipient(s, s->q[q], t, r);
    return SQLITE_DONE == sqlite3_step(s->q[q]) ? 0 : fail(s, err, errlen, "count recipient");
}

/* 8 MB: with 16,384 slots, realistic opens of 100,000 recipients found nearly every recipient
 * seen before gone from its slot, and tried to insert its row first (a seek at a random place,
 * 3% of the writer's instructions). Pages of slots never used are never touched. */
#define KNOWN_SLOTS (1u << 19)
/* Four-way, a set in one cache line, the most lately used first: with one slot a key, 100,000
 * recipients in 524,288 slots left 16.5% of them sharing a slot with another (as random keys
 * do: 1 - e^(-100,000 / 524,288)), each of which found the other in it nearly every time and
 * paid a failed insert and a lookup by key for its update; in sets of four, a set overflows for
 * under 1% of them. */
#define KNOWN_WAYS 4

/* The set of S's known rows where the recipient whose tag (sp_tally_recipient_tag) is TAG
 * has its slot if it has one. */
static struct known_row *known_set(sqlite_store_t *s, uint64_t tag)
{
    if (!s->known) {
        /* calloc's pages come zeroed as they are first touched; aligned by hand to a line. */
        s->known_mem = calloc(KNOWN_SLOTS + KNOWN_WAYS, sizeof(*s->known));
        if (!s->known_mem)
            abort();
        uintptr_t line = KNOWN_WAYS * sizeof(*s->known);
        s->known = (struct known_row *)(((uintptr_t)s->known_mem + line - 1) / line * line);
    }
    /* The tag is FNV-1a's, whose low bits keep little of the text's end: mixed (the finalizer
     * of MurmurHash3's 64-bit hash) before its set is taken. */
    uint64_t h = tag;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return &s->known[(h & (KNOWN_SLOTS / KNOWN_WAYS - 1)) * KNOWN_WAYS];
}

/* The hint slot of the recipient whose tag is TAG in S's known rows: its own, moved to the
 * front of its set, or when it has none the front emptied for it (tag 0, which no recipient's
 * is), the set's least lately used slot given up. Valid until the next call. */
static struct known_row *known_slot(sqlite_store_t *s, uint64_t tag)
{
    struct known_row *set = known_set(s, tag);
    int w = 0;
    while (w < KNOWN_WAYS - 1 && set[w].tag != tag)
        w++;
    struct known_row slot = set[w].tag == tag ? set[w] : (struct known_row){0, 0};
    memmove(&set[1], &set[0], (size_t)w * sizeof(*set));
    set[0] = slot;
    return &set[0];
}

/* Copies text value V into DST (CAP bytes), cut short if longer, as snprintf would. */
static void copy_value(char *dst, size_t cap, sqlite3_value *v)
{
    const unsigned char *text = sqlite3_value_text(v);
    size_t n = text ? (size_t)sqlite3_value_bytes(v) : 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, text ? (const char *)text : "", n);
    dst[n] = '\0';
}

/* sp_recipient_was(views, first_client, first_network, first_human_at, first_at, last_at,
 * long_ids, forward_clients, rowid), in RECIPIENT_ADD's SET: the row's values before the update
 * (a SET's columns are the row's old values) and its rowid into the store's row_was, and
 * FORWARD_CLIENTS back unchanged. Registered on the store's own connection only, and only for
 * direct use (not from the schema: a trigger or view cannot call it). */
static void recipient_was(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    struct recipient_row_was *w = &((sqlite_store_t *)sqlite3_user_data(ctx))->row_was;
    (void)argc;
    w->found = true;
    w->views = sqlite3_value_int64(argv[0]);
    copy_value(w->client, sizeof(w->client), argv[1]);
    copy_value(w->network, sizeof(w->network), argv[2]);
    w->human_at = sqlite3_value_int64(argv[3]);
    w->first_at = sqlite3_value_int64(argv[4]);
    w->last_at = sqlite3_value_int64(argv[5]);
    if (SQLITE_NULL != sqlite3_value_type(argv[6])) {
        size_t n = (size_t)sqlite3_value_bytes(argv[6]) + 1;
        if (n > w->cap_long_ids) {
            free(w->long_ids);
            w->cap_long_ids = n;
            if (!(w->long_ids = malloc(n)))
                abort();
        }
        copy_value(w->long_ids, n, argv[6]);
    }
    copy_value(w->forwarded, sizeof(w->forwarded), argv[7]);
    w->rowid = sqlite3_value_int64(argv[8]);
    sqlite3_result_value(ctx, argv[7]);
}

/* Adds the batch to recipient R's row (of T), through the rowid its hint slot KNOWN holds if
 * the row is still there, and by its key otherwise; KNOWN then holds the row's rowid. S's
 * WAS[I] gets the row's span before it, and T what the row became: its views, and its first
 * human reader (FIRST_HUMAN_SETS in C). *GONE when there was no row after all (its campaign
 * made again since this writer stored it): nothing is written then. */
static int add_to_recipient(sqlite_store_t *s, sp_tally_t *t, size_t i, struct known_row *known,
                            bool *gone, char *err, size_t errlen)
{
    const sp_tally_recipient_t *r = &t->recipients[i];
    struct recipient_row_was *w = &s->row_was;
    w->found = false;
    if (w->long_ids)
        w->long_ids[0] = '\0';
    if (known->rowid > 0) {
        sqlite3_stmt *st = s->q[Q_RECIPIENT_ADD_ROWID];
        bind_recipient(s, st, t, r);
        sqlite3_bind_int64(st, 14, known->rowid);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "count recipient");
    }
    if (!w->found && 0 != step_recipient(s, Q_RECIPIENT_ADD, t, r, err, errlen))
        return -1;
    *gone = !w->found;
    known->rowid = w->found ? w->rowid : 0;
    if (*gone)
        return 0;
    s->was[i].first_at = w->first_at;
    s->was[i].last_at = w->last_at;
    if (w->long_ids && w->long_ids[0]) {
        sqlite3_stmt *o = s->q[Q_RECIPIENT_EVENTS_OUT];
        sqlite3_reset(o);
        bind_text(o, 1, t->campaigns[r->campaign].id);
        bind_text(o, 2, r->recipient);
        bind_text(o, 3, w->long_ids);
        if (SQLITE_DONE != sqlite3_step(o))
            return fail(s, err, errlen, "move a recipient's events out");
        sqlite3_reset(o);
    }
    sp_tally_recipient_seen(t, i, w->views + sp_tally_views(r->by_class));
    if (r->n_humans) {
        if (r->human_at && (!w->human_at || r->human_at < w->human_at))
            sp_tally_recipient_reader(t, i, r->client, r->network, r->human_at, w->forwarded);
        else
            sp_tally_recipient_reader(t, i, w->client, w->network, w->human_at, w->forwarded);
    }
    return 0;
}

#define RECIPIENTS_AHEAD 4

static int write_counts(sqlite_store_t *s, sp_tally_t *t, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    if (t->n_recipients > s->cap_was) {
        s->cap_was = t->n_recipients;
        free(s->was);
        if (!(s->was = malloc(s->cap_was * sizeof(*s->was))))
            abort();
    }
    for (size_t i = 0; i < t->n_recipients; i++) {
        const sp_tally_recipient_t *r = &t->recipients[i];
        /* What a recipient a few ahead will read first, asked of memory now: its text, long out
         * of the caches since the reader made it, and its hint set, at random in 8 MB. Each was
         * a cache miss on the writer's path (strlen in its binding: 1.8% of one core's replay;
         * known_slot: 2%); a recipient's statements take microseconds, time enough. */
        if (i + RECIPIENTS_AHEAD < t->n_recipients) {
            const sp_tally_recipient_t *ahead = &t->recipients[i + RECIPIENTS_AHEAD];
            __builtin_prefetch(ahead->recipient);
            __builtin_prefetch(known_set(s, ahead->tag));
        }
        /* A recipient this writer has not stored yet is most likely new: its row inserted,
         * its views and first reader are the batch's own, and nothing is read back (one
         * statement instead of two). Otherwise, or when it was there after all, the row is
         * added to, and handed over as it was by the update. */
        uint64_t tag = r->tag;
        struct known_row *known = known_slot(s, tag);
        bool inserted = false, gone = false;
        s->was[i] = (struct recipient_was){tag, 0, 0};
        if (known->tag != tag) {
            if (0 != step_recipient(s, Q_RECIPIENT_INSERT, t, r, err, errlen))
                return -1;
            inserted = 1 == sqlite3_changes(s->db);
            *known = (struct known_row){tag, inserted ? sqlite3_last_insert_rowid(s->db) : 0};
        }
        if (!inserted && 0 != add_to_recipient(s, t, i, known, &gone, err, errlen))
            return -1;
        if (gone) {
            if (0 != step_recipient(s, Q_RECIPIENT_INSERT, t, r, err, errlen))
                return -1;
            inserted = true;
            known->rowid = sqlite3_last_insert_rowid(s->db);
        }
        if (inserted) {
            if (s->n_new_rows == s->cap_new_rows) {
                s->cap_new_rows = s->cap_new_rows ? 2 * s->cap_new_rows : 1024;
                s->new_rows = realloc(s->new_rows, s->cap_new_rows * sizeof(*s->new_rows));
                if (!s->new_rows)
                    abort();
            }
            s->new_rows[s->n_new_rows++] = tag;
            sp_tally_recipient_seen(t, i, sp_tally_views(r->by_class));
            if (r->n_humans)
                sp_tally_recipient_reader(t, i, r->client, r->network, r->human_at, "");
        }
        if (!r->forwarded)
            continue;
        st = s->q[Q_RECIPIENT_FORWARDED];
        sqlite3_reset(st);
        bind_text(st, 1, t->campaigns[r->campaign].id);
        bind_text(st, 2, r->recipient);
        bind_text(st, 3, r->forwarded);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "count recipient");
    }
    /* The likely forwards, after the batch's events: the rollups' range of rowids ends before
     * them (they count in none). */
    for (size_t i = 0; i < t->n_forwards; i++) {
        sp_event_row_t row;
        int64_t id;
        sp_tally_forward_row(t->forwards[i], &row);
        if (0 != insert_row(s, t->forwards[i], NULL, &row, &id, err, errlen))
            return -1;
        char ids[24];
        snprintf(ids, sizeof(ids), "%lld", (long long)id);
        st = s->q[Q_RECIPIENT_EVENT];
        sqlite3_reset(st);
        bind_text(st, 1, row.campaign);
        bind_text(st, 2, row.recipient);
        bind_text(st, 3, ids);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "list a forward");
        if (1 != sqlite3_changes(s->db)) {
            snprintf(err, errlen, "sqlite: the recipient of forward %lld has no row",
                     (long long)id);
            return -1;
        }
    }
    for (size_t i = 0; i < t->n_clients; i++) {
        st = s->q[Q_CLIENT_INSERT];
        sqlite3_reset(st);
        bind_text(st, 1, t->campaigns[t->clients[i].campaign].id);
        bind_text(st, 2, t->clients[i].key);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "count client");
        sp_tally_client_seen(t, i, 1 == sqlite3_changes(s->db));
    }
    for (size_t i = 0; i < t->n_campaigns; i++) {
        const sp_tally_campaign_t *c = &t->campaigns[i];
        st = s->q[Q_CAMPAIGN_COUNT];
        sqlite3_reset(st);
        bind_text(st, 1, c->id);
        sqlite3_bind_int64(st, 2, c->views);
        sqlite3_bind_int64(st, 3, c->unique);
        for (int k = 0; k < SP_CLASS_COUNT; k++)
            sqlite3_bind_int64(st, 4 + k, c->by_class[k]);
        sqlite3_bind_int64(st, 8, c->clicks);
        sqlite3_bind_int64(st, 9, c->last_view_at);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "count campaign");
    }
    /* Adoptions: an unknown campaign goes once its last kept open is adopted. */
    for (size_t i = 0; i < s->n_deltas; i++) {
        const campaign_delta_t *d = &s->deltas[i];
        if (!d->exists || !d->adopted)
            continue;
        st = s->q[Q_ADOPT_DONE];
        sqlite3_reset(st);
        bind_text(st, 1, d->id);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "adopt");
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

/* Binds row I of a rollup list from parameter AT; returns the next parameter. */
static int bind_count(sqlite3_stmt *st, int at, const sp_rollup_t *r, size_t i)
{
    const sp_rollup_count_t *c = &r->counts[i];
    bind_text(st, at++, c->campaign);
    sqlite3_bind_int64(st, at++, c->quarter);
    for (int k = 0; k < SP_ROLLUP_COUNTS; k++)
        sqlite3_bind_int64(st, at++, c->n[k]);
    return at;
}

static int bind_value_of(sqlite3_stmt *st, int at, const sp_rollup_value_t *v, bool hour)
{
    bind_text(st, at++, v->campaign);
    sqlite3_bind_int(st, at++, v->dim);
    if (hour)
        sqlite3_bind_int64(st, at++, v->hour);
    sqlite3_bind_text(st, at++, v->value, (int)v->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, at++, v->n);
    return at;
}

/* An hour's row, and of dim 0 its opener's first hour (rollup.h, "Openers' first hours"). */
static int bind_value(sqlite3_stmt *st, int at, const sp_rollup_t *r, size_t i)
{
    const sp_rollup_value_t *v = &r->values[i];
    at = bind_value_of(st, at, v, true);
    if (SP_ROLLUP_OPENER == v->dim)
        sqlite3_bind_int64(st, at++, v->first);
    else
        sqlite3_bind_null(st, at++);
    return at;
}

static int bind_day(sqlite3_stmt *st, int at, const sp_rollup_t *r, size_t i)
{
    return bind_value_of(st, at, &r->days[i], true);
}

static int bind_total(sqlite3_stmt *st, int at, const sp_rollup_t *r, size_t i)
{
    return bind_value_of(st, at, &r->totals[i], false);
}

static int bind_person_key(sqlite3_stmt *st, int at, const sp_rollup_person_t *p)
{
    bind_text(st, at++, p->campaign);
    sqlite3_bind_int(st, at++, p->dim);
    sqlite3_bind_text(st, at++, p->who, (int)p->len, SQLITE_STATIC);
    return at;
}

static int bind_person(sqlite3_stmt *st, int at, const sp_rollup_t *r, size_t i)
{
    const sp_rollup_person_t *p = &r->people[i];
    at = bind_person_key(st, at, p);
    sqlite3_bind_int64(st, at++, p->first);
    sqlite3_bind_int64(st, at++, p->last);
    return at;
}

static int bind_hour(sqlite3_stmt *st, int at, const sp_rollup_t *r, size_t i)
{
    const sp_rollup_hour_t *h = &r->hours[i];
    bind_text(st, at++, h->campaign);
    sqlite3_bind_int(st, at++, h->dim);
    sqlite3_bind_int64(st, at++, h->hour);
    sqlite3_bind_int64(st, at++, h->firsts);
    sqlite3_bind_int64(st, at++, h->lasts);
    return at;
}

/* The largest of TABLE's statements for at most N rows, prepared on first use, and its rows. */
static sqlite3_stmt *rows_statement(sqlite_store_t *s, int table, size_t n, size_t *rows, char *err,
                                    size_t errlen)
{
    int k = ROLLUP_SIZES - 1;
    while ((size_t)1 << k > n)
        k--;
    *rows = (size_t)1 << k;
    sqlite3_stmt **st = &s->rollup_rows[table][k];
    if (!*st) {
        char sql[4096];
        size_t at = (size_t)snprintf(sql, sizeof(sql), "%s", rollup_rows_sql[table].head);
        for (size_t j = 0; j < *rows; j++)
            at += (size_t)snprintf(sql + at, sizeof(sql) - at, "%s%s", j ? ", " : " ",
                                   rollup_rows_sql[table].row);
        if (at + strlen(rollup_rows_sql[table].tail) >= sizeof(sql))
            abort(); /* the statements are fixed: a buffer too small is a bug */
        strcat(sql, rollup_rows_sql[table].tail);
        if (0 != prepare(s, st, sql, err, errlen))
            return NULL;
    }
    sqlite3_reset(*st);
    return *st;
}

/* Upserts the N rows of one of R's lists into TABLE, BIND binding each, in their order. */
static int rollup_rows(sqlite_store_t *s, int table, const sp_rollup_t *r, size_t n,
                       int (*bind)(sqlite3_stmt *, int, const sp_rollup_t *, size_t), char *err,
                       size_t errlen)
{
    for (size_t i = 0; i < n;) {
        size_t rows;
        sqlite3_stmt *st = rows_statement(s, table, n - i, &rows, err, errlen);
        if (!st)
            return -1;
        int at = 1;
        for (size_t j = 0; j < rows; j++)
            at = bind(st, at, r, i + j);
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "rollups");
        i += rows;
    }
    return 0;
}

static int cmp_tag(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, b = *(const uint64_t *)pb;
    return a < b ? -1 : a > b;
}

/* Inserts the people of R that FRESH marks, ROLLUP_ROWS a statement; those of a statement that
 * met a row after all are unmarked, to be read as the others. */
static int insert_fresh(sqlite_store_t *s, const sp_rollup_t *r, bool *fresh, char *err,
                        size_t errlen)
{
    size_t n = 0, *at = malloc((r->n_people + 1) * sizeof(*at));
    if (!at)
        abort();
    for (size_t i = 0; i < r->n_people; i++)
        if (fresh[i])
            at[n++] = i;
    int rc = 0;
    for (size_t i = 0; i < n && !rc;) {
        size_t rows;
        sqlite3_stmt *st = rows_statement(s, M_PEOPLE_NEW, n - i, &rows, err, errlen);
        if (!st) {
            rc = -1;
            break;
        }
        int param = 1;
        for (size_t j = 0; j < rows; j++)
            param = bind_person(st, param, r, at[i + j]);
        int step = sqlite3_step(st);
        if (SQLITE_CONSTRAINT == (step & 0xff)) {
            sqlite3_reset(st);
            for (size_t j = 0; j < rows; j++)
                fresh[at[i + j]] = false;
        } else if (SQLITE_DONE != step) {
            rc = fail(s, err, errlen, "rollups");
        }
        i += rows;
    }
    free(at);
    return rc;
}

/* The named openers among R's people (rollup.h, "Named openers"): NAMED[i] set for each, and its
 * hours before the batch, which its recipient's row held (write_counts read them into S's was),
 * into FOUND[i] and OLD[i]. Every such person is one of T's recipients: the rollups were made
 * of the rows the tally counted, in the same order. */
static int named_openers(sqlite_store_t *s, const sp_tally_t *t, const sp_rollup_t *r, bool *named,
                         bool *found, int64_t (*old)[2], char *err, size_t errlen)
{
    /* A person names its recipient through one of its rows (the rollups' row index, the tally's
     * recipient of that row), not by its text: hashing and finding each opener's text again
     * among the batch's recipients was 2.6% of one core's realistic replay, its reads at random
     * in the tally's entries and their texts. */
    for (size_t i = 0; i < r->n_people; i++) {
        const sp_rollup_person_t *p = &r->people[i];
        if (SP_ROLLUP_OPENER != p->dim || !sp_rollup_named(p->who))
            continue;
        uint32_t k = p->row < t->n_counted ? t->recipient_of[p->row] : SP_TALLY_NONE;
        const sp_tally_recipient_t *e = SP_TALLY_NONE == k ? NULL : &t->recipients[k];
        if (!e || (e->recipient != p->who && 0 != strcmp(e->recipient, p->who))) {
            snprintf(err, errlen, "sqlite: opener %s of %s is none of the batch's recipients",
                     p->who, p->campaign);
            return -1;
        }
        const struct recipient_was *w = &s->was[k];
        named[i] = true;
        found[i] = w->first_at > 0;
        old[i][0] = w->first_at / SP_ROLLUP_HOUR_MS;
        old[i][1] = w->last_at / SP_ROLLUP_HOUR_MS;
    }
    return 0;
}

/* Gives opener P's hour FIRST, which was its first until the batch, its row of dim 0, and its
 * rows after its first hour now (P's, the batch's first) that hour as theirs
 * (sp_rollup_first_hours). Rare: only an open stored later than an earlier hour's moves it. */
static int moved_first(sqlite_store_t *s, const sp_rollup_person_t *p, int64_t first, char *err,
                       size_t errlen)
{
    for (int k = 0; k < 2; k++) {
        sqlite3_stmt *st = NULL;
        if (prepare(s, &st, moved_first_sql[k], err, errlen))
            return -1;
        bind_text(st, 1, p->campaign);
        sqlite3_bind_int64(st, 2, k ? p->first : first);
        bind_text(st, 3, p->who);
        if (!k) {
            sqlite3_bind_int64(st, 4, s->n_stored ? s->stored[0]->id : INT64_MAX);
            sqlite3_bind_int64(st, 5, p->first);
        }
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (SQLITE_DONE != rc)
            return fail(s, err, errlen, "rollups: an opener's first hour moved");
    }
    return 0;
}

/* The batch's people (T its tally): a named opener's hours are its recipient's row's, updated
 * by write_counts, and only counted by hour here. Of the others, those whose recipients' rows
 * the batch inserted have no row yet, and are inserted as they are (a person is a recipient, or
 * a visitor's key that names no recipient); the others' rows are read as they are, ROLLUP_ROWS
 * a statement, then the rows that are new or whose hours move are written, and what that
 * changes in rollup_people_hours (rollup.h). A person the batch adds nothing to costs a read
 * where it cost an upsert's seek; a new one, an insert. The writer's transaction holds the
 * write lock, so the rows read are the rows written over. The recipient's row only hints: a
 * person found there after all (a row left by hand) is read as the others. */
static int write_people(sqlite_store_t *s, const sp_tally_t *t, sp_rollup_t *r, char *err,
                        size_t errlen)
{
    size_t n = r->n_people;
    bool *found = calloc(n + 1, sizeof(*found)), *changed = calloc(n + 1, sizeof(*changed)),
         *fresh = calloc(n + 1, sizeof(*fresh)), *named = calloc(n + 1, sizeof(*named));
    int64_t(*old)[2] = calloc(n + 1, sizeof(*old));
    size_t *read = malloc((n + 1) * sizeof(*read)), n_read = 0;
    sp_rollup_t written = {.people = malloc((n + 1) * sizeof(*written.people))};
    if (!found || !changed || !fresh || !named || !old || !read || !written.people)
        abort();
    int rc = named_openers(s, t, r, named, found, old, err, errlen);
    if (s->n_new_rows) /* none: new_rows may be NULL, which qsort must not be given */
        qsort(s->new_rows, s->n_new_rows, sizeof(*s->new_rows), cmp_tag);
    for (size_t i = 0; i < n && s->n_new_rows; i++) {
        if (named[i])
            continue;
        uint64_t tag = sp_tally_recipient_tag(r->people[i].campaign, r->people[i].who);
        fresh[i] = bsearch(&tag, s->new_rows, s->n_new_rows, sizeof(tag), cmp_tag);
    }
    if (!rc)
        rc = insert_fresh(s, r, fresh, err, errlen);
    for (size_t i = 0; i < n; i++)
        if (!fresh[i] && !named[i])
            read[n_read++] = i;
    for (size_t i = 0; i < n_read && !rc;) {
        size_t rows;
        sqlite3_stmt *st = rows_statement(s, M_PEOPLE_OLD, n_read - i, &rows, err, errlen);
        if (!st) {
            rc = -1;
            break;
        }
        int at = 1;
        for (size_t j = 0; j < rows; j++) {
            sqlite3_bind_int64(st, at++, (sqlite3_int64)j);
            at = bind_person_key(st, at, &r->people[read[i + j]]);
        }
        int step;
        while (SQLITE_ROW == (step = sqlite3_step(st))) {
            sqlite3_int64 j = sqlite3_column_int64(st, 0);
            if (j < 0 || (size_t)j >= rows)
                continue;
            size_t k = read[i + (size_t)j];
            found[k] = true;
            old[k][0] = sqlite3_column_int64(st, 1);
            old[k][1] = sqlite3_column_int64(st, 2);
        }
        if (SQLITE_DONE != step)
            rc = fail(s, err, errlen, "rollups");
        sqlite3_reset(st);
        i += rows;
    }
    if (!rc) {
        sp_rollup_people_hours(r, found, (const int64_t(*)[2])old, changed);
        for (size_t i = 0; i < n; i++)
            if (changed[i] && !fresh[i] && !named[i])
                written.people[written.n_people++] = r->people[i];
        if (0 != rollup_rows(s, M_PEOPLE, &written, written.n_people, bind_person, err, errlen) ||
            0 != rollup_rows(s, M_HOURS, r, r->n_hours, bind_hour, err, errlen))
            rc = -1;
    }
    if (!rc) {
        bool *moved = calloc(n + 1, sizeof(*moved));
        if (!moved)
            abort();
        sp_rollup_first_hours(r, found, (const int64_t(*)[2])old, moved);
        for (size_t i = 0; i < n && !rc; i++)
            if (moved[i])
                rc = moved_first(s, &r->people[i], old[i][0], err, errlen);
        free(moved);
    }
    free(found);
    free(changed);
    free(fresh);
    free(named);
    free(old);
    free(read);
    free(written.people);
    return rc;
}

/* What the batch's stored events add to the rollups: each distinct row once. */
static int write_rollups(sqlite_store_t *s, const sp_tally_t *t, sp_rollup_t *r, char *err,
                         size_t errlen)
{
    /* The people first: what their rows held before decides which rows of dim 0 the values
     * keep (sp_rollup_first_hours). */
    return write_people(s, t, r, err, errlen) ||
                   rollup_rows(s, M_COUNTS, r, r->n_counts, bind_count, err, errlen) ||
                   rollup_rows(s, M_VALUES, r, r->n_values, bind_value, err, errlen) ||
                   rollup_rows(s, M_DAYS, r, r->n_days, bind_day, err, errlen) ||
                   rollup_rows(s, M_TOTALS, r, r->n_totals, bind_total, err, errlen)
               ? -1
               : 0;
}

/* The first hour not folded into rollup_days and rollup_totals (rollup.h); INT64_MAX when the
 * store names none: every hour is added to them as it is written, none folded. */
static int read_folded(sqlite_store_t *s, int64_t *folded, char *err, size_t errlen)
{
    sqlite3_stmt *st = s->q[Q_FOLDED];
    sqlite3_reset(st);
    if (SQLITE_ROW != sqlite3_step(st))
        return fail(s, err, errlen, "folded hours");
    *folded = SQLITE_NULL == sqlite3_column_type(st, 0) ? INT64_MAX : sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return 0;
}

/* Folds the hours from FOLDED to the batch's last (R's values, written) into rollup_days and
 * rollup_totals, and names that hour the first not folded: those before it are passed, or
 * nearly (a late open of one is added at once). */
static int fold_hours(sqlite_store_t *s, const sp_rollup_t *r, int64_t folded, char *err,
                      size_t errlen)
{
    int64_t last = INT64_MIN;
    for (size_t i = 0; i < r->n_values; i++)
        if (r->values[i].hour > last)
            last = r->values[i].hour;
    if (INT64_MAX == folded || last <= folded)
        return 0;
    for (int q = Q_FOLD_DAYS; q <= Q_FOLDED_SET; q++) {
        sqlite3_stmt *st = s->q[q];
        sqlite3_reset(st);
        if (Q_FOLDED_SET == q) {
            sqlite3_bind_int64(st, 1, last);
        } else {
            sqlite3_bind_int64(st, 1, folded);
            sqlite3_bind_int64(st, 2, last);
        }
        if (SQLITE_DONE != sqlite3_step(st))
            return fail(s, err, errlen, "fold hours");
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

/* What a batch's stored rows add to the rollups (sp_rollup_batch, then sp_rollup_derive given the
 * first hour not folded), worked out apart from the writer's statements. */
struct rollup_job {
    sp_rollup_t *r;
    const sp_event_row_t **rows;
    size_t n;
    int64_t folded;
};

/* A batch this small is worked out at once: a thread's start costs more than it saves. */
#define ROLLUP_JOB_MIN 512

static void *rollup_job(void *arg)
{
    struct rollup_job *job = arg;
    sp_rollup_batch(job->r, job->rows, job->n);
    sp_rollup_derive(job->r, job->folded);
    return NULL;
}

/* How many events ahead the writer's short passes over a batch fetch (sp_event_prefetch), and
 * its inserts their rows (sp_event_prefetch_row: an insert takes microseconds). */
#define EVENTS_AHEAD 16
#define ROWS_AHEAD   2

/* The WAL's frames copied back into the database, as SQLite's own checkpoint after a commit
 * does (PASSIVE: what no reader still needs; errors left for the next one, as SQLite leaves
 * them). */
static void checkpoint(sqlite_store_t *s)
{
    sqlite3_wal_checkpoint_v2(s->db, "main", SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    s->wal_frames = s->wal_last = 0;
}

/* At a batch's start: the WAL checkpointed when the last batches left it at its bound, but not
 * when it holds one large commit alone, a backlog's batch (it passes the bound by itself): that
 * one waits for the next, so that a page both commit (a recipient's row, an index's inner pages:
 * a backlog's commits of 16,384 realistic opens rewrite most of the recipients' pages) is copied
 * back once for the two, and the WAL holds at most about two such commits. Small commits (live
 * traffic) are checkpointed at the bound as SQLite's own checkpoint did: a nearly full disk
 * holds a WAL of that bound, not of two batches of them. */
static void batch_checkpoint(sqlite_store_t *s)
{
    bool large_alone = s->wal_last >= s->wal_bound && s->wal_frames < 2 * s->wal_last;
    if (s->wal_frames >= s->wal_bound && !large_alone)
        checkpoint(s);
}

/* A batch's COMMIT, its checkpoint left for the next batch's start (wal_committed). */
static int batch_commit(sqlite_store_t *s, char *err, size_t errlen)
{
    s->batch_commit = true;
    int rc = exec(s, "COMMIT", err, errlen);
    s->batch_commit = false;
    return rc;
}

static int sq_write_batch(sp_store_t *base, sp_event_t **evs, size_t n, const sp_store_mark_t *mark,
                          char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sp_tally_t tally = {0};
    sp_rollup_t rollup = {0};
    for (size_t i = 0; i < n; i++) { /* a retried batch starts clean */
        if (i + EVENTS_AHEAD < n)
            sp_event_prefetch(evs[i + EVENTS_AHEAD]);
        evs[i]->outcome = SP_OUTCOME_PENDING;
        evs[i]->id = 0;
        evs[i]->first_view = evs[i]->campaign_new = false;
        evs[i]->dropped = 0;
    }
    /* The connection that writes batches keeps 16 MiB of pages, not SQLite's 2 MiB: a batch
     * dirties a page of each of several indexes for most of its opens, and a full cache spills
     * dirty pages in the middle of a statement, each first copied into the statement's
     * sub-journal (a temporary file) and written into the WAL again at the commit, and reads
     * again (pread: the database is never mapped) the pages it let go. 100,000 opens: 1,120 MB
     * written with 2 MiB, 838 MB with 16 MiB, and a third less of the writer's system time. */
    if (!s->batch_cache && 0 != exec(s, "PRAGMA cache_size = -16384", err, errlen))
        return -1;
    s->batch_cache = true;
    batch_checkpoint(s);
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    if (0 != intern_fresh(s, err, errlen))
        goto fail;
    s->n_deltas = s->n_stored = 0;
    s->n_named[0] = s->n_named[1] = 0;
    s->n_quarters = 0;
    s->n_new_rows = 0;
    s->n_reads = 0;
    s->n_unknown = -1;
    s->next_id = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 2 * ROWS_AHEAD < n)
            sp_event_prefetch_row(evs[i + 2 * ROWS_AHEAD], false);
        if (i + ROWS_AHEAD < n)
            sp_event_prefetch_row(evs[i + ROWS_AHEAD], true);
        if (0 != write_one(s, evs[i], err, errlen))
            goto fail;
    }
    if (0 != write_rows(s, err, errlen))
        goto fail;
    struct rollup_job job = {.r = &rollup, .n = s->n_stored};
    if (0 != read_folded(s, &job.folded, err, errlen))
        goto fail;
    job.rows = malloc((s->n_stored + 1) * sizeof(*job.rows));
    if (!job.rows)
        abort();
    for (size_t i = 0; i < s->n_stored; i++) {
        if (i + EVENTS_AHEAD < s->n_stored)
            sp_event_prefetch(s->stored[i + EVENTS_AHEAD]);
        job.rows[i] = sp_event_row(s->stored[i]);
    }
    /* The rollups' rows are worked out in C on a thread of their own while this one tallies
     * the batch and writes its counters (8% of the writer's instructions off its path, where
     * another core is free); a small batch at once. */
    pthread_t helper;
    bool helped =
        s->n_stored >= ROLLUP_JOB_MIN && 0 == pthread_create(&helper, NULL, rollup_job, &job);
    if (!helped)
        rollup_job(&job);
    sp_tally_count(&tally, s->stored, s->n_stored);
    tally.forward_after_ms = base->likely_forward_ms;
    int rc = write_counts(s, &tally, err, errlen) || write_rows(s, err, errlen) ||
             write_refs(s, err, errlen) || write_quarters(s, err, errlen) ||
             fold_reads(s, err, errlen);
    if (helped)
        pthread_join(helper, NULL);
    free(job.rows);
    if (rc || 0 != write_rollups(s, &tally, &rollup, err, errlen) ||
        0 != fold_hours(s, &rollup, job.folded, err, errlen) ||
        0 != write_unknown_counts(s, err, errlen) ||
        (mark && 0 != write_mark(s, mark, err, errlen)) || 0 != batch_commit(s, err, errlen))
        goto fail;
    sp_tally_free(&tally);
    sp_rollup_free(&rollup);
    return 0;
fail:;
    rollback(s);
    s->n_pending = 0;
    /* IDs interned in the rolled back transaction are no more. */
    if (s->agents) {
        sp_intern_clear(s->agents);
        sp_intern_clear(s->sets);
    }
    sp_tally_free(&tally);
    sp_rollup_free(&rollup);
    for (size_t j = 0; j < n; j++) {
        evs[j]->outcome = SP_OUTCOME_PENDING;
        evs[j]->id = 0;
        evs[j]->first_view = evs[j]->campaign_new = false;
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
    " clicks, archived"

static void read_campaign(sqlite3_stmt *st, sp_campaign_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->id, sizeof(c->id), "%s", col_text(st, 0));
    c->created_at = sqlite3_column_int64(st, 1);
    c->last_view_at = sqlite3_column_int64(st, 2);
    c->total_views = sqlite3_column_int64(st, 3);
    c->unique_views = sqlite3_column_int64(st, 4);
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        c->by_class[i] = sqlite3_column_int64(st, 5 + i);
    c->clicks = sqlite3_column_int64(st, 9);
    c->archived = 0 != sqlite3_column_int64(st, 10);
}

static int sq_campaign_archive(sp_store_t *base, const char *id, bool archived, char *err,
                               size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "UPDATE campaigns SET archived = ?2 WHERE id = ?1", err, errlen))
        return -1;
    bind_text(st, 1, id);
    sqlite3_bind_int(st, 2, archived);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (SQLITE_DONE != rc)
        return fail(s, err, errlen, "archive campaign");
    return sqlite3_changes(s->db) > 0 ? 0 : 1;
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

static int sq_engagement(sp_store_t *base, const char *id, sp_engagement_t *out, char *err,
                         size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    *out = (sp_engagement_t){0};
    if (prepare(s, &st, SP_STORE_ENGAGEMENT_SQL("?"), err, errlen))
        return -1;
    bind_text(st, 1, id);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st)))
        sp_store_engagement_add(out, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                                (const char *)sqlite3_column_text(st, 2),
                                sqlite3_column_int64(st, 3));
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "read engagement");
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
        for (int i = 0; i < SP_CLASS_COUNT; i++)
            r.by_class[i] = sqlite3_column_int64(st, 1 + i);
        r.views = sp_tally_views(r.by_class);
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

/* Calls CB with each row of ST (sp_intern_select_sql's columns), its headers joined back
 * from their set and apart values; finalizes ST. */
static int read_events(sqlite_store_t *s, sqlite3_stmt *st, sp_store_event_cb cb, void *ctx,
                       char *err, size_t errlen)
{
    char *headers = NULL;
    size_t cap = 0;
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_event_row_t r;
        for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
            read_field(st, (int)i, &r, &sp_event_fields[i]);
        if (SQLITE_NULL != sqlite3_column_type(st, SP_INTERN_APART_COLUMN)) {
            const char *joined = sp_intern_join(
                r.headers_json, col_text(st, SP_INTERN_APART_COLUMN), &headers, &cap);
            if (joined)
                r.headers_json = joined;
        }
        if (cb(ctx, &r)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    free(headers);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list events");
}

static int sq_events(sp_store_t *base, const char *campaign, int64_t before, int64_t limit,
                     sp_store_event_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, events_sql, err, errlen))
        return -1;
    bind_text(st, 1, campaign);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int64(st, 3, limit);
    return read_events(s, st, cb, ctx, err, errlen);
}

/* An export's reading. Its first page is read on S's connection as the call asks for it; from
 * then on each next page is read ahead by a thread of the reading's own, on a connection of its
 * own (opened on its first page, closed with the reading), while the caller formats the page it
 * was handed: reading and formatting a page cost about the same, so on a machine of two cores an
 * export goes at the pace of the slower of the two instead of their sum. A page read ahead is
 * copied out of SQLite's rows into one block of text (page_t), as its statement ends before the
 * caller sees it. Each page is a statement of its own: between them no transaction is open on
 * either connection. */
typedef struct {
    sp_event_row_t *rows; /* text fields hold offsets into text until the page is complete */
    size_t n, cap;
    char *text;
    size_t len, text_cap;
} page_t;

struct sp_store_export {
    char *campaign;
    int64_t before, left, page; /* the next page's keyset, events still to read, page size */
    bool done, failed;
    /* Reading ahead: the page the thread fills (ahead) and the one handed out (current). The
     * thread waits for a job (ahead_limit > 0), fills ahead, and sets ready; quit ends it. */
    char *data_dir;
    page_t pages[2];
    int ahead; /* index of the page the thread fills */
    pthread_t thread;
    bool started, quit, ready;
    bool inline_only; /* no thread could be started: every page read when asked for */
    int64_t ahead_before, ahead_limit;
    int ahead_rc;
    char ahead_err[512];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    sp_store_t *conn; /* the thread's own connection */
};

/* Text fields of a row: copied into the page's text, their offsets kept until the page is
 * complete (the text may move as it grows); an offset of 0 stands for NULL. */
static bool field_is_text(const sp_event_field_t *f)
{
    return SP_FIELD_TEXT == f->kind || SP_FIELD_TEXT_OR_NULL == f->kind ||
           SP_FIELD_OBJECT == f->kind;
}

static int page_add(void *ctx, const sp_event_row_t *r)
{
    page_t *p = ctx;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 256;
        if (!(p->rows = realloc(p->rows, p->cap * sizeof(*p->rows))))
            abort();
    }
    sp_event_row_t *row = &p->rows[p->n++];
    *row = *r;
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        const sp_event_field_t *f = &sp_event_fields[i];
        if (!field_is_text(f))
            continue;
        const char *t = sp_event_row_text(r, f);
        uintptr_t at = 0;
        if (t) {
            size_t n = strlen(t) + 1;
            if (p->len + n + 1 > p->text_cap) { /* by half again: a page's text is megabytes */
                p->text_cap = p->text_cap ? p->text_cap + p->text_cap / 2 : 64 * 1024;
                while (p->len + n + 1 > p->text_cap)
                    p->text_cap += p->text_cap / 2;
                if (!(p->text = realloc(p->text, p->text_cap)))
                    abort();
            }
            if (!p->len)
                p->text[p->len++] = '\0'; /* offset 0 is NULL's */
            at = p->len;
            memcpy(p->text + p->len, t, n);
            p->len += n;
        }
        sp_event_row_set_text(row, f, (const char *)at);
    }
    return 0;
}

/* The page's offsets made pointers into its text, once it holds every row. */
static void page_complete(page_t *p)
{
    for (size_t k = 0; k < p->n; k++)
        for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
            const sp_event_field_t *f = &sp_event_fields[i];
            if (!field_is_text(f))
                continue;
            uintptr_t at = (uintptr_t)sp_event_row_text(&p->rows[k], f);
            sp_event_row_set_text(&p->rows[k], f, at ? p->text + at : NULL);
        }
}

static void sq_close(sp_store_t *base);

static void *read_ahead(void *arg)
{
    sp_store_export_t *x = arg;
    pthread_mutex_lock(&x->lock);
    for (;;) {
        while (!x->quit && !x->ahead_limit)
            pthread_cond_wait(&x->cond, &x->lock);
        if (x->quit)
            break;
        page_t *p = &x->pages[x->ahead];
        int64_t before = x->ahead_before, limit = x->ahead_limit;
        pthread_mutex_unlock(&x->lock);
        char err[512] = "";
        int rc = -1;
        p->n = p->len = 0;
        /* Its page cache 256 KiB, not 2 MiB: it reads each page of the table once, and as fast
         * with the smaller cache (c0 at ten million events); twelve exports at once peaked 23
         * MiB lower. */
        if (!x->conn && (x->conn = sp_store_sqlite_open(x->data_dir, false, err, sizeof(err))) &&
            0 != exec((sqlite_store_t *)x->conn, "PRAGMA cache_size = -256", err, sizeof(err))) {
            sq_close(x->conn);
            x->conn = NULL;
        }
        if (x->conn) {
            rc = sq_events(x->conn, x->campaign, before, limit, page_add, p, err, sizeof(err));
            page_complete(p);
        }
        pthread_mutex_lock(&x->lock);
        x->ahead_rc = rc;
        snprintf(x->ahead_err, sizeof(x->ahead_err), "%s", err);
        x->ahead_limit = 0;
        x->ready = true;
        pthread_cond_broadcast(&x->cond);
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

static sp_store_export_t *sq_export_open(sp_store_t *base, const char *campaign, int64_t before,
                                         int64_t limit, int64_t page)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sp_store_export_t *x = calloc(1, sizeof(*x));
    if (!x || !(x->campaign = strdup(campaign)) || !(x->data_dir = strdup(s->data_dir)))
        abort();
    x->before = before;
    x->left = limit < 0 ? INT64_MAX : limit;
    x->page = page > 0 ? page : 1;
    x->done = !x->left;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->cond, NULL);
    return x;
}

/* Asks the thread (started on the first ask) for the next LIMIT events below BEFORE, into the
 * page not handed out. When no thread can be started (the process at its limit of threads or
 * memory), the reading goes on without one, each page read when it is asked for. */
static void ask_ahead(sp_store_export_t *x, int64_t before, int64_t limit)
{
    if (!x->started) {
        if (x->inline_only || 0 != pthread_create(&x->thread, NULL, read_ahead, x)) {
            x->inline_only = true;
            return;
        }
        x->started = true;
    }
    pthread_mutex_lock(&x->lock);
    x->ahead_before = before;
    x->ahead_limit = limit;
    x->ready = false;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->lock);
}

static int sq_export_next(sp_store_t *base, sp_store_export_t *x, sp_store_event_cb cb, void *ctx,
                          char *err, size_t errlen)
{
    if (x->failed) {
        snprintf(err, errlen, "export: an earlier page failed");
        return -1;
    }
    if (x->done)
        return 1;
    int64_t limit = x->left < x->page ? x->left : x->page;
    page_t *p;
    if (x->started) { /* the page asked for when the last one was handed out */
        pthread_mutex_lock(&x->lock);
        while (!x->ready)
            pthread_cond_wait(&x->cond, &x->lock);
        int rc = x->ahead_rc;
        if (rc)
            snprintf(err, errlen, "%s", x->ahead_err);
        pthread_mutex_unlock(&x->lock);
        if (rc) {
            x->failed = true;
            return -1;
        }
        p = &x->pages[x->ahead];
        x->ahead ^= 1;
    } else {
        p = &x->pages[x->ahead ^ 1];
        p->n = p->len = 0;
        if (0 != sq_events(base, x->campaign, x->before, limit, page_add, p, err, errlen)) {
            x->failed = true;
            return -1;
        }
        page_complete(p);
    }
    x->left -= (int64_t)p->n;
    x->done = (int64_t)p->n < limit || !x->left;
    if (p->n)
        x->before = p->rows[p->n - 1].id;
    if (!x->done)
        ask_ahead(x, x->before, x->left < x->page ? x->left : x->page);
    for (size_t i = 0; i < p->n; i++)
        if (cb(ctx, &p->rows[i])) {
            x->done = true; /* the caller stops the reading */
            break;
        }
    return x->done;
}

static void sq_export_close(sp_store_t *base, sp_store_export_t *x)
{
    (void)base;
    if (!x)
        return;
    if (x->started) {
        pthread_mutex_lock(&x->lock);
        x->quit = true;
        pthread_cond_broadcast(&x->cond);
        pthread_mutex_unlock(&x->lock);
        pthread_join(x->thread, NULL);
    }
    if (x->conn)
        sq_close(x->conn);
    pthread_mutex_destroy(&x->lock);
    pthread_cond_destroy(&x->cond);
    for (int i = 0; i < 2; i++) {
        free(x->pages[i].rows);
        free(x->pages[i].text);
    }
    free(x->campaign);
    free(x->data_dir);
    free(x);
}

/* ---- reports ----------------------------------------------------------------- */

static int sq_report(sp_store_t *base, const char *campaign, const sp_store_span_t *span,
                     const sp_store_report_cb_t *cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    /* The hours [hour_from, hour_to) read from rollup_values: those before and after the whole
     * days, or all of them when there are none. */
    bool days = span->day_from < span->day_to;
    int64_t hours_end = days ? span->day_from * 24 : span->hour_to;
    int64_t hours_start = days ? span->day_to * 24 : span->hour_to;
    /* Counts, values, then the distinct people from rollup_people, and from rollup_values only
     * when those are not exact (rollup.h). */
    static const int order[] = {0, 1, 3, 2};
    bool inexact = false, outside = false;
    int64_t out[10];
    /* One read transaction: the queries see the same commits. */
    if (0 != exec(s, "BEGIN", err, errlen))
        return -1;
    /* The campaign's first and last quarter: which way its breakdowns read less, and whether
     * its people can be exact (their hours lie within these). */
    if (prepare(s, &st,
                "SELECT (SELECT MIN(quarter) FROM rollup_counts WHERE campaign = ?1),"
                " (SELECT MAX(quarter) FROM rollup_counts WHERE campaign = ?1)",
                err, errlen))
        goto fail;
    bind_text(st, 1, campaign);
    if (SQLITE_ROW == sqlite3_step(st) && SQLITE_NULL != sqlite3_column_type(st, 0)) {
        int64_t first = sqlite3_column_int64(st, 0), last = sqlite3_column_int64(st, 1);
        outside = sp_rollup_outside(span->edge_from[0], span->edge_to[1], span->day_from,
                                    span->day_to, first, last, out);
        inexact = !sp_rollup_people_exact(span->hour_from, span->hour_to, first / 4, last / 4);
    }
    sqlite3_finalize(st);
    st = NULL;
    for (int i = 0; i < 4; i++) {
        int k = order[i];
        if ((2 == k && !inexact) || (3 == k && inexact))
            continue;
        if (prepare(s, &st, rollup_sql[R_REPORT][1 == k && outside ? 4 : k], err, errlen))
            goto fail;
        bind_text(st, 1, campaign);
        if (1 == k && outside) {
            for (int j = 0; j < 10; j++)
                sqlite3_bind_int64(st, 2 + j, out[j]);
        } else {
            sqlite3_bind_int64(st, 2, span->hour_from);
            sqlite3_bind_int64(st, 3, span->hour_to);
            for (int e = 0; e < 2; e++) {
                sqlite3_bind_int64(st, 4 + 2 * e, span->edge_from[e]);
                sqlite3_bind_int64(st, 5 + 2 * e, span->edge_to[e]);
            }
        }
        if (k >= 2)
            sqlite3_bind_int(st, 8, span->no_openers ? SP_ROLLUP_CLICKER : SP_ROLLUP_OPENER);
        if (1 == k && !outside) {
            sqlite3_bind_int64(st, 8, hours_end);
            sqlite3_bind_int64(st, 9, hours_start);
            sqlite3_bind_int64(st, 10, span->day_from);
            sqlite3_bind_int64(st, 11, span->day_to);
        }
        int rc = SQLITE_DONE;
        bool stop = false;
        /* The people rows are held until all are known exact. */
        int64_t got[2][3];
        int n_got = 0;
        while (!stop && SQLITE_ROW == (rc = sqlite3_step(st))) {
            if (0 == k) {
                int64_t c[SP_ROLLUP_COUNTS];
                for (int j = 0; j < SP_ROLLUP_COUNTS; j++)
                    c[j] = sqlite3_column_int64(st, 1 + j);
                stop = cb->counts(ctx, sqlite3_column_int64(st, 0), c);
            } else if (1 == k) {
                stop = cb->value(ctx, sqlite3_column_int(st, 0), col_text(st, 1),
                                 sqlite3_column_int64(st, 2));
            } else if (3 == k) {
                if (!sp_rollup_people_exact(span->hour_from, span->hour_to,
                                            sqlite3_column_int64(st, 3),
                                            sqlite3_column_int64(st, 4)))
                    inexact = true;
                else if (n_got < 2)
                    for (int j = 0; j < 3; j++)
                        got[n_got][j] = sqlite3_column_int64(st, j);
                n_got++;
            } else {
                stop = cb->distinct(ctx, sqlite3_column_int(st, 0), sqlite3_column_int64(st, 1),
                                    sqlite3_column_int64(st, 2));
            }
        }
        sqlite3_finalize(st);
        st = NULL;
        if (!stop && SQLITE_DONE != rc) {
            fail(s, err, errlen, "report");
            goto fail;
        }
        if (3 == k && !inexact)
            for (int j = 0; j < n_got && j < 2 && !stop; j++)
                stop = cb->distinct(ctx, (int)got[j][0], got[j][1], got[j][2]);
    }
    return exec(s, "COMMIT", err, errlen);
fail:
    rollback(s);
    return -1;
}

/* ---- filtered and sorted pages ------------------------------------------------- */

static void bind_params(sqlite3_stmt *st, const sp_query_param_t *p, int n)
{
    for (int i = 0; i < n; i++)
        if (p[i].text)
            bind_text(st, i + 1, p[i].s);
        else
            sqlite3_bind_int64(st, i + 1, p[i].n);
}

/* Runs the page Q once, every row to CB. */
static int events_query_once(sqlite_store_t *s, const sp_query_events_t *q, sp_store_event_cb cb,
                             void *ctx, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    char cols[1024], sql[4096];
    sp_query_param_t params[SP_QUERY_PARAMS];
    int n;
    sp_intern_select_sql(cols, sizeof(cols));
    sp_query_events_sql(q, cols, '?', sql, sizeof(sql), params, &n);
    if (prepare(s, &st, sql, err, errlen))
        return -1;
    bind_params(st, params, n);
    return read_events(s, st, cb, ctx, err, errlen);
}

/* A recipient's page is read a window of its lists at a time, newest first: the lists moved out
 * whose first IDs are the WINDOW_LISTS greatest below the last window's least (each list's
 * IDs lie below the next one's first), and the row's own list each time (its IDs the newest).
 * A page of a recipient opened a hundred thousand times read every one of its IDs: 47 ms,
 * where a window of eight lists holds about 560. */
#define WINDOW_LISTS 8

struct window_count {
    sp_store_event_cb cb;
    void *ctx;
    int64_t rows;
    bool stopped; /* the callback asked for no more */
};

static int count_row(void *ctx, const sp_event_row_t *r)
{
    struct window_count *w = ctx;
    w->rows++;
    w->stopped = 0 != w->cb(w->ctx, r);
    return w->stopped;
}

/* The first ID of the list moved out WINDOW_LISTS below TO (0: none that far) among Q's
 * recipient's lists (in Q's campaign, or every one), into *FROM. */
static int window_from(sqlite_store_t *s, const sp_query_events_t *q, int64_t to, int64_t *from,
                       char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                q->campaign
                    ? "SELECT first_id FROM recipient_events WHERE campaign = ?1"
                      " AND recipient = ?2 AND first_id < ?3 ORDER BY first_id DESC"
                      " LIMIT 1 OFFSET ?4"
                    : "SELECT first_id FROM recipient_events WHERE " SP_QUERY_RECIPIENT_CAMPAIGNS(
                          "?2") " AND first_id < ?3 ORDER BY first_id DESC LIMIT 1 OFFSET ?4",
                err, errlen))
        return -1;
    if (q->campaign)
        bind_text(st, 1, q->campaign);
    bind_text(st, 2, q->recipient);
    sqlite3_bind_int64(st, 3, to);
    sqlite3_bind_int(st, 4, WINDOW_LISTS - 1);
    int rc = sqlite3_step(st);
    *from = SQLITE_ROW == rc ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    return SQLITE_ROW == rc || SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list events");
}

static int sq_events_query(sp_store_t *base, const sp_query_events_t *q, sp_store_event_cb cb,
                           void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (!q->recipient || !q->recipient[0] || q->limit < 0)
        return events_query_once(s, q, cb, ctx, err, errlen);
    sp_query_events_t w = *q;
    struct window_count count = {cb, ctx, 0, false};
    int64_t to = q->before > 0 ? q->before : INT64_MAX;
    for (;;) {
        int64_t from;
        if (0 != window_from(s, q, to, &from, err, errlen))
            return -1;
        w.lists_from = from;
        w.lists_to = INT64_MAX == to ? 0 : to;
        w.limit = q->limit - count.rows;
        if (0 != events_query_once(s, &w, count_row, &count, err, errlen))
            return -1;
        /* Done: the page full, the callback stopped it, or every list read. */
        if (count.rows >= q->limit || count.stopped || !from)
            return 0;
        /* The row's own list is read with each window: the next takes only older IDs. */
        w.before = from;
        to = from;
    }
}

static int sq_recipients_sorted(sp_store_t *base, const sp_query_recipients_t *q,
                                sp_store_recipient_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    char sql[2048];
    sp_query_param_t params[SP_QUERY_PARAMS];
    int n;
    sp_query_recipients_sql(q, '?', sql, sizeof(sql), params, &n);
    if (prepare(s, &st, sql, err, errlen))
        return -1;
    bind_params(st, params, n);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_recipient_t r = {.recipient = col_text(st, 0)};
        for (int i = 0; i < SP_CLASS_COUNT; i++)
            r.by_class[i] = sqlite3_column_int64(st, 1 + i);
        r.views = sp_tally_views(r.by_class);
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

/* ---- trackers and links ------------------------------------------------------ */

static int sq_tracker_put(sp_store_t *base, const sp_store_tracker_t *t, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "INSERT INTO trackers(campaign, recipient, kind, target, url, created_at)"
                " VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
                err, errlen))
        return -1;
    bind_text(st, 1, t->campaign);
    bind_text(st, 2, t->recipient);
    bind_text(st, 3, t->kind);
    bind_text(st, 4, t->target);
    bind_text(st, 5, t->url);
    sqlite3_bind_int64(st, 6, t->created_at);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "record tracker");
}

static int sq_trackers(sp_store_t *base, const char *campaign, int64_t before, int64_t limit,
                       sp_store_tracker_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT id, campaign, recipient, kind, target, url, created_at FROM trackers"
                " WHERE campaign = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
                err, errlen))
        return -1;
    bind_text(st, 1, campaign);
    sqlite3_bind_int64(st, 2, before > 0 ? before : INT64_MAX);
    sqlite3_bind_int64(st, 3, limit);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_store_tracker_t t = {sqlite3_column_int64(st, 0),
                                col_text(st, 1),
                                col_text(st, 2),
                                col_text(st, 3),
                                col_text(st, 4),
                                col_text(st, 5),
                                sqlite3_column_int64(st, 6)};
        if (cb(ctx, &t)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list trackers");
}

static int sq_links(sp_store_t *base, const char *campaign, sp_store_link_cb cb, void *ctx,
                    char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    char sql[2048];
    sp_tally_links_sql(sql, sizeof(sql), '?');
    if (prepare(s, &st, sql, err, errlen))
        return -1;
    bind_text(st, 1, campaign);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_store_link_t l = {col_text(st, 0),
                             sqlite3_column_int64(st, 1),
                             sqlite3_column_int64(st, 2),
                             sqlite3_column_int64(st, 3),
                             sqlite3_column_int64(st, 4),
                             sqlite3_column_int64(st, 5)};
        if (cb(ctx, &l)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list links");
}

/* ---- the people a campaign was sent to ----------------------------------------- */

static int sq_sent_put(sp_store_t *base, const char *campaign, const char *const *addrs, size_t n,
                       int64_t *stored, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    *stored = 0;
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    if (0 != rollup_step(s, "DELETE FROM sent_to WHERE campaign = ?1", campaign, err, errlen) ||
        prepare(s, &st,
                "INSERT INTO sent_to(campaign, recipient) VALUES(?1, ?2)"
                " ON CONFLICT DO NOTHING",
                err, errlen))
        goto fail;
    bind_text(st, 1, campaign);
    for (size_t i = 0; i < n; i++) {
        sqlite3_reset(st);
        bind_text(st, 2, addrs[i]);
        if (SQLITE_DONE != sqlite3_step(st)) {
            fail(s, err, errlen, "sent list");
            goto fail;
        }
        *stored += sqlite3_changes(s->db);
    }
    sqlite3_finalize(st);
    return exec(s, "COMMIT", err, errlen);
fail:
    sqlite3_finalize(st);
    rollback(s);
    return -1;
}

static int sq_sent_stats(sp_store_t *base, const char *campaign, sp_store_sent_t *out, char *err,
                         size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    *out = (sp_store_sent_t){0};
    if (prepare(s, &st,
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN " SP_TALLY_VIEWS_SQL(
                    "r.") " > 0 THEN 1 ELSE 0 END), 0),"
                          " COALESCE(SUM(CASE WHEN r.clicks > 0 THEN 1 ELSE 0 END), 0)"
                          " FROM sent_to t LEFT JOIN recipients r"
                          " ON r.campaign = t.campaign AND r.recipient = t.recipient"
                          " WHERE t.campaign = ?1",
                err, errlen))
        return -1;
    bind_text(st, 1, campaign);
    int rc = sqlite3_step(st);
    if (SQLITE_ROW == rc)
        *out = (sp_store_sent_t){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                                 sqlite3_column_int64(st, 2)};
    sqlite3_finalize(st);
    return SQLITE_ROW == rc ? 0 : fail(s, err, errlen, "sent list");
}

static int sq_not_opened(sp_store_t *base, const char *campaign, const char *after, int64_t limit,
                         sp_store_name_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT t.recipient FROM sent_to t LEFT JOIN recipients r"
                " ON r.campaign = t.campaign AND r.recipient = t.recipient"
                " WHERE t.campaign = ?1 AND t.recipient > ?2"
                " AND COALESCE(" SP_TALLY_VIEWS_SQL("r.") ", 0) = 0"
                                                          " ORDER BY t.recipient LIMIT ?3",
                err, errlen))
        return -1;
    bind_text(st, 1, campaign);
    bind_text(st, 2, after ? after : "");
    sqlite3_bind_int64(st, 3, limit);
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st)))
        if (cb(ctx, col_text(st, 0))) {
            rc = SQLITE_DONE;
            break;
        }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "not opened");
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
    rollback(s);
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

/* Each connection counts the events it deletes per text they named (a temporary trigger of the
 * connection into two temporary tables, in its transaction: a rollback takes the counts back
 * too), so that any deletion of events ends with INTERN_GC_STEPS, which takes those from the
 * texts' refs and deletes the texts no event names any more: only the texts the deleted rows
 * named are looked at. */
static const char intern_gc_setup[] =
    "CREATE TEMP TABLE IF NOT EXISTS gone_agents(id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
    "CREATE TEMP TABLE IF NOT EXISTS gone_sets(id INTEGER PRIMARY KEY, n INTEGER NOT NULL);"
    "CREATE TEMP TRIGGER IF NOT EXISTS events_gone AFTER DELETE ON main.events BEGIN"
    " INSERT INTO gone_agents(id, n) SELECT old.agent, 1 WHERE old.agent IS NOT NULL"
    " ON CONFLICT(id) DO UPDATE SET n = n + 1;"
    " INSERT INTO gone_sets(id, n) SELECT old.header_set, 1 WHERE old.header_set IS NOT NULL"
    " ON CONFLICT(id) DO UPDATE SET n = n + 1;"
    " END;";

/* The last steps of a transaction that deletes events. The number of deletions grows when a
 * text went (intern.h: the writer's cache then empties; SQLite may give a deleted ID again). */
#define INTERN_GC_STEPS                                                                            \
    "UPDATE agents SET refs = refs - g.n FROM gone_agents AS g WHERE agents.id = g.id",            \
        "UPDATE header_sets SET refs = refs - g.n FROM gone_sets AS g"                             \
        " WHERE header_sets.id = g.id",                                                            \
        "DELETE FROM agents WHERE id IN (SELECT id FROM gone_agents) AND refs <= 0",               \
        "DELETE FROM header_sets WHERE id IN (SELECT id FROM gone_sets) AND refs <= 0",            \
        "INSERT INTO meta(key, value) SELECT '" SP_INTERN_GEN_KEY "', 1"                           \
        " WHERE EXISTS (SELECT 1 FROM gone_agents g WHERE g.id NOT IN (SELECT id FROM agents))"    \
        " OR EXISTS (SELECT 1 FROM gone_sets g WHERE g.id NOT IN (SELECT id FROM header_sets))"    \
        " ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",                      \
        "DELETE FROM gone_agents", "DELETE FROM gone_sets"
#define INTERN_GC_N 7

static int sq_purge_before(sp_store_t *base, int64_t before_ms, int64_t *deleted, char *err,
                           size_t errlen)
{
    /* An unknown campaign goes with its last open: every kept one is older. */
    /* Campaign by campaign (each distinct one found through events_quarters' key, a step
     * each), its events up to the last ID of its quarter hours before ?1 read through
     * events_campaign: no index of events by time (schemas 15 and 21). Then the quarter hours
     * that held only deleted events. */
    static const char *const steps[] = {
        "WITH RECURSIVE c(id) AS (SELECT (SELECT min(campaign) FROM events_quarters) UNION ALL"
        " SELECT (SELECT min(campaign) FROM events_quarters WHERE campaign > c.id) FROM c"
        " WHERE c.id IS NOT NULL)"
        " DELETE FROM events WHERE id IN (SELECT e.id FROM c, events e WHERE e.campaign = c.id"
        " AND e.id <= (SELECT max(last_id) FROM events_quarters q WHERE q.campaign = c.id"
        " AND q.quarter <= (?1 - 1) / " SP_QUERY_QUARTER_SQL ") AND e.ts < ?1)",
        "DELETE FROM events_quarters WHERE quarter < ?1 / " SP_QUERY_QUARTER_SQL,
        "DELETE FROM unknown_events WHERE ts < ?1",
        "DELETE FROM unknown_campaigns WHERE last_at < ?1",
        INTERN_GC_STEPS,
    };
    int64_t changes[4 + INTERN_GC_N];
    if (0 != run_steps((sqlite_store_t *)base, steps, 4 + INTERN_GC_N, NULL, before_ms, changes,
                       err, errlen))
        return -1;
    *deleted = changes[0] + changes[2];
    return 0;
}

/* Runs rollup statement SQL with ARG (may be NULL) as ?1. */
static int rollup_step(sqlite_store_t *s, const char *sql, const char *arg, char *err,
                       size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, sql, err, errlen))
        return -1;
    if (arg)
        bind_text(st, 1, arg);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "rollups");
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
    const char *const steps[] = {
        /* Take the recipient's counts out of each campaign, then erase them. */
        "UPDATE campaigns SET"
        " total_views = total_views - " SP_TALLY_VIEWS_SQL(
            "r.") ","
                  " unique_views = unique_views - (" SP_TALLY_VIEWS_SQL(
                      "r.") " > 0),"
                            " human = campaigns.human - r.human, proxy = campaigns.proxy - r.proxy,"
                            " machine = campaigns.machine - r.machine, self = campaigns.self - "
                            "r.self,"
                            " clicks = campaigns.clicks - r.clicks"
                            " FROM (SELECT * FROM " FORGET_ROWS ") AS r"
                            " WHERE campaigns.id = r.campaign",
        /* By the IDs their rows list, before those go. */
        "DELETE FROM events WHERE " FORGET_EVENTS,
        "DELETE FROM " FORGET_ROWS,
        /* Their kept opens of unknown campaigns (a scan, but of a bounded table): out of the
         * counts, then erased. */
        "UPDATE unknown_campaigns SET opens = opens - (SELECT COUNT(*) FROM unknown_events"
        " WHERE campaign = unknown_campaigns.id AND recipient = ?1)"
        " WHERE id IN (SELECT campaign FROM unknown_events WHERE recipient = ?1)",
        "DELETE FROM unknown_events WHERE recipient = ?1",
        "DELETE FROM unknown_campaigns WHERE opens <= 0",
        "DELETE FROM recipient_events WHERE " SP_QUERY_RECIPIENT_CAMPAIGNS("?1"),
        INTERN_GC_STEPS,
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
        /* Their share of the rollups, from their events before those go. */
        if (0 == i &&
            (0 != rollup_step(s, rollup_sql[R_FORGET][0], recipient, err, errlen) ||
             0 != rollup_step(s, rollup_sql[R_FORGET][1], recipient, err, errlen) ||
             0 != rollup_step(s, rollup_sql[R_FORGET][2], recipient, err, errlen) ||
             0 != rollup_step(s, rollup_sql[R_FORGET][3], recipient, err, errlen) ||
             0 != rollup_step(s, FORGET_PEOPLE_HOURS("first_hour", "firsts"), recipient, err,
                              errlen) ||
             0 != rollup_step(s, FORGET_PEOPLE_HOURS("last_hour", "lasts"), recipient, err,
                              errlen) ||
             0 != rollup_step(s, FORGET_OPENER_HOURS("first_at", "firsts"), recipient, err,
                              errlen) ||
             0 != rollup_step(s, FORGET_OPENER_HOURS("last_at", "lasts"), recipient, err, errlen) ||
             0 != rollup_step(s, "DELETE FROM rollup_people WHERE " FORGET_PEOPLE, recipient, err,
                              errlen)))
            goto fail;
    }
    if (0 == exec(s, "COMMIT", err, errlen))
        return 0;
fail:;
    rollback(s);
    return -1;
}

static int sq_campaign_delete(sp_store_t *base, const char *id, int64_t *deleted, char *err,
                              size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    static const char *const steps[] = {
        "DELETE FROM events WHERE campaign = ?1",
        "DELETE FROM recipients WHERE campaign = ?1",
        "DELETE FROM clients WHERE campaign = ?1",
        "DELETE FROM images WHERE campaign = ?1",
        "DELETE FROM campaigns WHERE id = ?1",
        "DELETE FROM rollup_counts WHERE campaign = ?1",
        "DELETE FROM rollup_values WHERE campaign = ?1",
        "DELETE FROM rollup_days WHERE campaign = ?1",
        "DELETE FROM rollup_totals WHERE campaign = ?1",
        "DELETE FROM rollup_people WHERE campaign = ?1",
        "DELETE FROM rollup_people_hours WHERE campaign = ?1",
        "DELETE FROM recipient_events WHERE campaign = ?1",
        "DELETE FROM events_quarters WHERE campaign = ?1",
        "DELETE FROM sent_to WHERE campaign = ?1",
        "DELETE FROM trackers WHERE campaign = ?1",
        INTERN_GC_STEPS,
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
    rollback(s);
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

static int sq_user_get(sp_store_t *b, const char *name, char *pwhash, size_t pwlen, char *err,
                       size_t errlen)
{
    const char *args[] = {name, NULL};
    return run((sqlite_store_t *)b, "SELECT pwhash FROM users WHERE name = ?1", args, 0, pwhash,
               pwlen, NULL, 0, err, errlen);
}

static int sq_token_put(sp_store_t *b, const char *hash, const char *name, const char *owner,
                        char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "INSERT INTO api_tokens(hash, name, owner, created_at) VALUES(?1, ?2, ?3, ?4)", err,
                errlen))
        return -1;
    bind_text(st, 1, hash);
    bind_text(st, 2, name);
    if (owner)
        bind_text(st, 3, owner);
    else
        sqlite3_bind_null(st, 3);
    sqlite3_bind_int64(st, 4, sp_now_ms());
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "save token");
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

/* ---- users and API tokens ----------------------------------------------------- */

/* Runs the statements of STEPS, each bound to ARG, in one write transaction; *CHANGES (may be
 * NULL) gets the rows the first one changed. */
static int in_transaction(sqlite_store_t *s, const char *const *steps, size_t n, const char *arg,
                          const char *arg2, int64_t *changes, char *err, size_t errlen)
{
    if (0 != exec(s, "BEGIN IMMEDIATE", err, errlen))
        return -1;
    for (size_t i = 0; i < n; i++) {
        sqlite3_stmt *st = NULL;
        if (prepare(s, &st, steps[i], err, errlen))
            goto fail;
        bind_text(st, 1, arg);
        if (sqlite3_bind_parameter_count(st) > 1)
            bind_text(st, 2, arg2);
        if (sqlite3_bind_parameter_count(st) > 2)
            sqlite3_bind_int64(st, 3, sp_now_ms());
        int rc = sqlite3_step(st);
        sqlite3_finalize(st);
        if (SQLITE_DONE != rc) {
            fail(s, err, errlen, "write");
            goto fail;
        }
        if (0 == i && changes)
            *changes = sqlite3_changes(s->db);
    }
    return exec(s, "COMMIT", err, errlen);
fail:;
    char ignored[64];
    exec(s, "ROLLBACK", ignored, sizeof(ignored));
    return -1;
}

static int sq_user_put(sp_store_t *b, const char *name, const char *pwhash, bool create, char *err,
                       size_t errlen)
{
    const char *const steps[] = {
        create ? "INSERT INTO users(name, pwhash, created_at) VALUES(?1, ?2, ?3)"
                 " ON CONFLICT(name) DO UPDATE SET pwhash = excluded.pwhash"
               : "UPDATE users SET pwhash = ?2 WHERE name = ?1",
        "DELETE FROM sessions WHERE user = ?1",
        "DELETE FROM api_tokens WHERE owner = ?1",
    };
    int64_t changed = 0;
    if (0 != in_transaction((sqlite_store_t *)b, steps, 3, name, pwhash, &changed, err, errlen))
        return -1;
    return changed ? 0 : 1;
}

static int sq_user_delete(sp_store_t *b, const char *name, char *err, size_t errlen)
{
    static const char *const steps[] = {
        "DELETE FROM users WHERE name = ?1",
        "DELETE FROM sessions WHERE user = ?1",
        "DELETE FROM api_tokens WHERE owner = ?1",
    };
    int64_t deleted = 0;
    if (0 != in_transaction((sqlite_store_t *)b, steps, 3, name, NULL, &deleted, err, errlen))
        return -1;
    return deleted ? 0 : 1;
}

static int sq_user_list(sp_store_t *b, sp_store_user_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT name, created_at,"
                " (SELECT count(*) FROM sessions WHERE user = u.name AND expires_at > ?1),"
                " (SELECT count(*) FROM api_tokens WHERE owner = u.name)"
                " FROM users u ORDER BY name",
                err, errlen))
        return -1;
    sqlite3_bind_int64(st, 1, sp_now_ms());
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_user_row_t r = {
            .name = col_text(st, 0),
            .created_at = sqlite3_column_int64(st, 1),
            .sessions = sqlite3_column_int64(st, 2),
            .tokens = sqlite3_column_int64(st, 3),
        };
        if (cb(ctx, &r)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list users");
}

static int sq_token_list(sp_store_t *b, sp_store_token_cb cb, void *ctx, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)b;
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st,
                "SELECT substr(hash, 1, " SP_STORE_TOKEN_ID_TEXT "), name, owner, created_at"
                " FROM api_tokens ORDER BY created_at, hash",
                err, errlen))
        return -1;
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        sp_token_row_t r = {
            .name = col_text(st, 1),
            .owner = SQLITE_NULL == sqlite3_column_type(st, 2) ? NULL : col_text(st, 2),
            .created_at = sqlite3_column_int64(st, 3),
        };
        snprintf(r.id, sizeof(r.id), "%s", col_text(st, 0));
        if (cb(ctx, &r)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(st);
    return SQLITE_DONE == rc ? 0 : fail(s, err, errlen, "list tokens");
}

static int sq_token_revoke(sp_store_t *b, const char *id_or_name, int64_t *revoked, char *err,
                           size_t errlen)
{
    static const char *const steps[] = {
        "DELETE FROM api_tokens WHERE substr(hash, 1, " SP_STORE_TOKEN_ID_TEXT ") = ?1"
        " OR name = ?1",
    };
    return in_transaction((sqlite_store_t *)b, steps, 1, id_or_name, NULL, revoked, err, errlen);
}

/* ---- migrations that SQL alone cannot do -------------------------------------- */

#define SCRUB_BATCH 500

/* Events with spypixel's own credentials lose them (sp_event_scrub_json), SCRUB_BATCH rows
 * at a time in ID order: memory stays bounded whatever the table holds. LIKE (ASCII case-
 * insensitive in SQLite) only picks the rows worth parsing; the parser decides. */
static int scrub_events(sqlite_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int64_t ids[SCRUB_BATCH];
    char *cookies[SCRUB_BATCH], *headers[SCRUB_BATCH];
    int ret = -1;
    if (prepare(s, &sel,
                "SELECT id, cookies, headers FROM events WHERE id > ?1 AND"
                " (cookies LIKE '%sp\\_%' ESCAPE '\\' OR headers LIKE '%sp\\_%' ESCAPE '\\'"
                " OR headers LIKE '%authorization%' OR headers LIKE '%x-csrf-token%')"
                " ORDER BY id LIMIT ?2",
                err, errlen) ||
        prepare(s, &upd,
                "UPDATE events SET cookies = coalesce(?2, cookies),"
                " headers = coalesce(?3, headers) WHERE id = ?1",
                err, errlen))
        goto done;
    for (int64_t last = 0;;) {
        size_t n = 0, rows = 0;
        int rc;
        sqlite3_bind_int64(sel, 1, last);
        sqlite3_bind_int(sel, 2, SCRUB_BATCH);
        while (SQLITE_ROW == (rc = sqlite3_step(sel))) {
            rows++;
            last = sqlite3_column_int64(sel, 0);
            cookies[n] = sp_event_scrub_json(col_text(sel, 1), true);
            headers[n] = sp_event_scrub_json(col_text(sel, 2), false);
            if (cookies[n] || headers[n])
                ids[n++] = last;
        }
        if (SQLITE_DONE != rc)
            fail(s, err, errlen, "scrub events");
        sqlite3_reset(sel);
        /* Written once the batch is read, not under the running SELECT. */
        for (size_t i = 0; i < n; i++) {
            if (SQLITE_DONE == rc) {
                sqlite3_reset(upd);
                sqlite3_bind_int64(upd, 1, ids[i]);
                bind_text(upd, 2, cookies[i]);
                bind_text(upd, 3, headers[i]);
                if (!cookies[i])
                    sqlite3_bind_null(upd, 2);
                if (!headers[i])
                    sqlite3_bind_null(upd, 3);
                if (SQLITE_DONE != (rc = sqlite3_step(upd)))
                    fail(s, err, errlen, "scrub events");
            }
            free(cookies[i]);
            free(headers[i]);
        }
        if (SQLITE_DONE != rc)
            goto done;
        if (rows < SCRUB_BATCH)
            break;
    }
    ret = 0;
done:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    return ret;
}

/* The opens kept apart under unknown campaigns are journal records: decoding scrubs them
 * (sp_event_add_header), and a record that encodes differently afterwards is written back.
 * The table is bounded (--unknown-*-max); it is read SCRUB_BATCH rows at a time all the
 * same. */
static int scrub_kept(sqlite_store_t *s, char *err, size_t errlen)
{
    sqlite3_stmt *sel = NULL, *upd = NULL;
    int64_t ids[SCRUB_BATCH];
    unsigned char *records[SCRUB_BATCH];
    size_t lens[SCRUB_BATCH];
    unsigned char *buf = malloc(SP_EVENT_ENCODED_MAX);
    int ret = -1;
    if (!buf)
        abort();
    if (prepare(s, &sel, "SELECT id, record FROM unknown_events WHERE id > ?1 ORDER BY id LIMIT ?2",
                err, errlen) ||
        prepare(s, &upd, "UPDATE unknown_events SET record = ?2 WHERE id = ?1", err, errlen))
        goto done;
    for (int64_t last = 0;;) {
        size_t n = 0, rows = 0;
        int rc;
        sqlite3_bind_int64(sel, 1, last);
        sqlite3_bind_int(sel, 2, SCRUB_BATCH);
        while (SQLITE_ROW == (rc = sqlite3_step(sel))) {
            rows++;
            last = sqlite3_column_int64(sel, 0);
            const void *old = sqlite3_column_blob(sel, 1);
            size_t old_len = (size_t)sqlite3_column_bytes(sel, 1);
            sp_event_t *ev = old ? sp_event_decode(old, old_len) : NULL;
            if (!ev)
                continue; /* not a record: nothing of it is ever read */
            size_t len = sp_event_encode(ev, buf);
            sp_event_free(ev);
            if (len == old_len && 0 == memcmp(buf, old, len))
                continue;
            records[n] = malloc(len);
            if (!records[n])
                abort();
            memcpy(records[n], buf, len);
            lens[n] = len;
            ids[n++] = last;
        }
        if (SQLITE_DONE != rc)
            fail(s, err, errlen, "scrub kept opens");
        sqlite3_reset(sel);
        for (size_t i = 0; i < n; i++) {
            if (SQLITE_DONE == rc) {
                sqlite3_reset(upd);
                sqlite3_bind_int64(upd, 1, ids[i]);
                sqlite3_bind_blob64(upd, 2, records[i], lens[i], SQLITE_STATIC);
                if (SQLITE_DONE != (rc = sqlite3_step(upd)))
                    fail(s, err, errlen, "scrub kept opens");
            }
            free(records[i]);
        }
        if (SQLITE_DONE != rc)
            goto done;
        if (rows < SCRUB_BATCH)
            break;
    }
    ret = 0;
done:
    sqlite3_finalize(sel);
    sqlite3_finalize(upd);
    free(buf);
    return ret;
}

static int scrub_credentials(sqlite_store_t *s, char *err, size_t errlen)
{
    return scrub_events(s, err, errlen) || scrub_kept(s, err, errlen) ? -1 : 0;
}

/* ---- open and close --------------------------------------------------------- */

/* Schema 7: the rollups of every event stored before them. */
static int backfill_rollups(sqlite_store_t *s, char *err, size_t errlen)
{
    if (0 != exec(s, rollup_sql[R_BACKFILL][0], err, errlen))
        return -1;
    return exec(s, rollup_sql[R_BACKFILL][1], err, errlen);
}

static void sq_close(sp_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    for (int t = 0; t < M_TABLES; t++)
        for (int k = 0; k < ROLLUP_SIZES; k++)
            sqlite3_finalize(s->rollup_rows[t][k]);
    for (int k = 0; k < EVENT_SIZES; k++)
        sqlite3_finalize(s->event_rows[k]);
    free(s->known_mem);
    free(s->row_was.long_ids);
    free(s->new_rows);
    free(s->was);
    free(s->ids);
    free(s->reads);
    sp_intern_free(s->agents);
    sp_intern_free(s->sets);
    free(s->named[0]);
    free(s->named[1]);
    free(s->quarters);
    sqlite3_close(s->db);
    free(s->deltas);
    free(s->stored);
    free(s->record);
    free(s->data_dir);
    free(s);
}

static int sq_check(sp_store_t *base, int budget_ms, bool *complete, char *err, size_t errlen);

static const sp_store_ops_t sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .write_batch = sq_write_batch,
    .campaign_create = sq_campaign_create,
    .campaign_get = sq_campaign_get,
    .engagement = sq_engagement,
    .campaign_list = sq_campaign_list,
    .recipients = sq_recipients,
    .events = sq_events,
    .export_open = sq_export_open,
    .export_next = sq_export_next,
    .export_close = sq_export_close,
    .report = sq_report,
    .campaign_archive = sq_campaign_archive,
    .events_query = sq_events_query,
    .recipients_sorted = sq_recipients_sorted,
    .tracker_put = sq_tracker_put,
    .trackers = sq_trackers,
    .links = sq_links,
    .sent_put = sq_sent_put,
    .sent_stats = sq_sent_stats,
    .not_opened = sq_not_opened,
    .unknown_list = sq_unknown_list,
    .unknown_opens = sq_unknown_opens,
    .unknown_delete = sq_unknown_delete,
    .purge_before = sq_purge_before,
    .forget = sq_forget,
    .campaign_delete = sq_campaign_delete,
    .user_put = sq_user_put,
    .user_get = sq_user_get,
    .user_delete = sq_user_delete,
    .user_list = sq_user_list,
    .token_put = sq_token_put,
    .token_get = sq_token_get,
    .token_list = sq_token_list,
    .token_revoke = sq_token_revoke,
    .session_put = sq_session_put,
    .session_get = sq_session_get,
    .session_delete = sq_session_delete,
    .meta_get = sq_meta_get,
    .meta_put_new = sq_meta_put_new,
    .image_put = sq_image_put,
    .image_get = sq_image_get,
    .failure = sq_failure,
    .check = sq_check,
};

/* The number a PRAGMA that reads one says (-1 when it cannot be read). */
static int pragma_int(sqlite_store_t *s, const char *pragma, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, pragma, err, errlen))
        return -1;
    int value = SQLITE_ROW == sqlite3_step(st) ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return value;
}

static int schema_version(sqlite_store_t *s, char *err, size_t errlen)
{
    return pragma_int(s, "PRAGMA user_version", err, errlen);
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
        for (size_t c = 0; c < sizeof(migration_code) / sizeof(migration_code[0]); c++)
            if (v + 1 == migration_code[c].version && 0 != migration_code[c].run(s, err, errlen))
                goto fail;
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
        if (0 != exec(s, sql, err, errlen))
            goto fail;
    }
    return exec(s, "COMMIT", err, errlen);
fail:;
    rollback(s);
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

/* The WAL checkpointed once it holds WAL_CHECKPOINT_BYTES, whatever the store's page size.
 * SQLite counts the bound in pages (1,000): with 16 KiB pages that let the WAL grow to 16 MiB
 * between checkpoints where it was 4 MiB with 4 KiB pages, and live traffic, many small commits
 * each writing the same hot pages again, reaches it: on a disk with 10 MiB left the WAL filled
 * it, and with no commit going through, no checkpoint came to empty it. A backlog's commit of
 * 16,384 opens passes either bound by itself. */
#define WAL_CHECKPOINT_BYTES (4 * 1024 * 1024)

/* SQLite's hook after each commit (sqlite3_wal_hook), in place of its own checkpoint at a
 * bound (wal_autocheckpoint, which installs the same hook): at the bound the WAL is
 * checkpointed at once, but after a batch's COMMIT only at the next batch's start
 * (sq_write_batch). The checkpoint waits for two fdatasyncs (13 ms a batch of 16,384 realistic
 * opens on the bench machine, 8% of one core's replay by the clock); at the next batch's start
 * the ingest's reader has its room again (the writer has taken the batch), and fills it while
 * the writer waits. */
static int wal_committed(void *ctx, sqlite3 *db, const char *name, int frames)
{
    sqlite_store_t *s = ctx;
    (void)db;
    (void)name;
    /* Fewer frames than before: the commit began the WAL again, after a checkpoint. */
    s->wal_last = frames >= s->wal_frames ? frames - s->wal_frames : frames;
    s->wal_frames = frames;
    if (!s->batch_commit && frames >= s->wal_bound)
        checkpoint(s);
    return SQLITE_OK;
}

static int set_wal_bound(sqlite_store_t *s, char *err, size_t errlen)
{
    int page = pragma_int(s, "PRAGMA page_size", err, errlen);
    if (page <= 0)
        return fail(s, err, errlen, "page size");
    s->wal_bound = WAL_CHECKPOINT_BYTES / page;
    sqlite3_wal_hook(s->db, wal_committed, s);
    return 0;
}

/* Once per process: the events' statements from the field table; the fenced VFS; and no
 * allocation statistics. SQLite keeps those under one global mutex unless told not to: a lock
 * and an unlock around every allocation and every free, several per row (about 8% of
 * write_batch). Nothing here reads them (sqlite3_memory_used and the like). It must be set
 * before SQLite initialises; if something in the process already used SQLite, the call
 * fails harmlessly. */
static void sqlite_once(void)
{
    char cols[1024];
    sp_event_fields_sql(cols, sizeof(cols), true, NULL, 0, '?');
    snprintf(insert_sql, sizeof(insert_sql),
             "INSERT OR FAIL INTO events(%s, agent, header_set, header_addrs)", cols);
    sp_intern_select_sql(cols, sizeof(cols));
    snprintf(events_sql, sizeof(events_sql),
             "SELECT %s FROM events WHERE campaign = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
             cols);
    /* Forget's events are all of its recipient's, as the rule of first hours needs; the backfill
     * (the rollups' first schema) makes every hour's row, as that schema had them. */
    sp_rollup_add_sql(rollup_sql[R_FORGET][0], rollup_sql[R_FORGET][1], ROLLUP_SQL_MAX,
                      FORGET_EVENTS, -1, false, false);
    sp_rollup_add_sql(rollup_sql[R_BACKFILL][0], rollup_sql[R_BACKFILL][1], ROLLUP_SQL_MAX, "1 = 1",
                      1, false, true);
    sp_rollup_moved_first_sql(moved_first_sql[0], moved_first_sql[1], sizeof(moved_first_sql[0]));
    sp_rollup_days_sql(rollup_sql[R_FORGET][2], rollup_sql[R_FORGET][3], ROLLUP_SQL_MAX,
                       FORGET_EVENTS " AND " SP_ROLLUP_EVENT_FOLDED_SQL, -1, false);
    sp_rollup_report_sql(rollup_sql[R_REPORT][0], rollup_sql[R_REPORT][1], rollup_sql[R_REPORT][2],
                         rollup_sql[R_REPORT][3], rollup_sql[R_REPORT][4], ROLLUP_SQL_MAX, false);
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs) {
        fenced_vfs.szOsFile = (int)sizeof(vfile_t) + real_vfs->szOsFile;
        fenced_vfs.mxPathname = real_vfs->mxPathname;
        if (SQLITE_OK != sqlite3_vfs_register(&fenced_vfs, 0))
            real_vfs = NULL;
    }
}

static int check_progress(void *arg)
{
    const struct timespec *deadline = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

/* PRAGMA quick_check: every page's structure (b-tree pages, free list, overflow chains) and
 * every row's format and constraints, but not whether each index matches its table, which
 * is what makes integrity_check several times slower. Stopped by a progress handler once
 * BUDGET_MS have passed, so that a large store is checked in part rather than holding the
 * writer for minutes. */
static int sq_check(sp_store_t *base, int budget_ms, bool *complete, char *err, size_t errlen)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    *complete = false;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += budget_ms / 1000;
    deadline.tv_nsec += (long)(budget_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    sqlite3_stmt *st = NULL;
    if (prepare(s, &st, "PRAGMA quick_check(10)", err, errlen))
        return SP_STORE_FAIL_FAULT == s->last ? 1 : -1;
    sqlite3_progress_handler(s->db, 1000, check_progress, &deadline);
    char found[400] = "";
    size_t used = 0;
    int rc;
    while (SQLITE_ROW == (rc = sqlite3_step(st))) {
        const char *line = col_text(st, 0);
        if (0 == strcmp(line, "ok") || used + 3 >= sizeof(found))
            continue;
        int n = snprintf(found + used, sizeof(found) - used, "%s%s", used ? "; " : "", line);
        used = n < 0 ? used : used + (size_t)n >= sizeof(found) ? sizeof(found) - 1 : used + n;
    }
    sqlite3_progress_handler(s->db, 0, NULL, NULL);
    int ret = 0;
    if (found[0]) {
        for (char *c = found; *c; c++)
            if ('\n' == *c || '\r' == *c)
                *c = ' ';
        char why[512];
        snprintf(why, sizeof(why), "the store is damaged: quick_check found: %s", found);
        snprintf(err, errlen, "%s", why);
        s->last = SP_STORE_FAIL_FAULT;
        if (s->group)
            group_fault(s->group, why);
        else
            snprintf(s->why, sizeof(s->why), "%s", why);
        ret = 1;
    } else if (SQLITE_DONE == rc) {
        *complete = true;
    } else if (SQLITE_INTERRUPT != rc) {
        fail(s, err, errlen, "check");
        ret = SP_STORE_FAIL_FAULT == s->last ? 1 : -1;
    }
    sqlite3_finalize(st);
    return ret;
}

sp_store_t *sp_store_sqlite_open(const char *data_dir, bool sync_full, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_once);
    char path[1024];
    if (0 != sp_datadir_private(data_dir, err, errlen))
        return NULL;
    snprintf(path, sizeof(path), "%s/spypixel.db", data_dir);

    sqlite_store_t *s = calloc(1, sizeof(*s));
    if (!s || !(s->data_dir = strdup(data_dir)))
        abort();
    s->base.ops = &sqlite_ops;
    s->base.unknown = (sp_store_unknown_t){.max_campaigns = SP_CONFIG_UNKNOWN_CAMPAIGNS,
                                           .max_opens = SP_CONFIG_UNKNOWN_OPENS};
    s->base.likely_forward_ms = SP_TALLY_FORWARD_AFTER_MS;
    if (SQLITE_OK !=
        sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        real_vfs ? fenced_vfs.zName : NULL)) {
        snprintf(err, errlen, "sqlite: %s: %s", path,
                 s->db ? sqlite3_errmsg(s->db) : "out of memory");
        goto fail;
    }
    sqlite3_file *file = NULL;
    if (SQLITE_OK == sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER, &file) &&
        file && &vfile_methods == file->pMethods)
        s->group = ((vfile_t *)file)->group;
    /* SQLite gives the -wal and -shm files the database's mode when it makes them: 0600,
     * whatever the umask. Those an older version left looser are tightened too. */
    static const char *const files[] = {"spypixel.db", "spypixel.db-wal", "spypixel.db-shm"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        char path_buf[1100];
        snprintf(path_buf, sizeof(path_buf), "%s/%s", data_dir, files[i]);
        if (0 != sp_datadir_private_file(path_buf, err, errlen))
            goto fail;
    }
    sqlite3_busy_timeout(s->db, 10000);
    /* WAL: readers never block the writer. synchronous=NORMAL survives a process crash
     * (kill -9) with every commit; FULL also survives power loss. */
    /* 16 KiB pages for a new store (one made before keeps its own: only VACUUM changes it).
     * A commit dirties pages all over the indexes, and SQLite writes them to the WAL and back
     * a page per system call or two: with 4 KiB pages, 0.75 pwrite and 0.36 pread per open
     * indexed, a fifth of the writer's time in the kernel; with 16 KiB, 0.20 and 0.08, the
     * kernel's time a third less, and 2% fewer instructions (shallower trees). The caches are
     * set in KiB, so they hold as much. Set before the WAL mode, which writes the header. */
    if (0 != exec(s, "PRAGMA page_size = 16384", err, errlen) || 0 != set_wal(s, err, errlen) ||
        0 != set_wal_bound(s, err, errlen) ||
        0 != exec(s, sync_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL", err,
                  errlen) ||
        /* Pages are read with read(2), never through a mapping of the database, which would
         * fault (SIGBUS) where read returns an error: a file cut short, a failing disk. */
        0 != exec(s, "PRAGMA mmap_size = 0", err, errlen) ||
        0 != exec(s, "PRAGMA foreign_keys = OFF", err, errlen) || 0 != migrate(s, err, errlen) ||
        0 != exec(s, intern_gc_setup, err, errlen))
        goto fail;
    if (SQLITE_OK != sqlite3_create_function_v2(s->db, "sp_recipient_was", 9,
                                                SQLITE_UTF8 | SQLITE_DIRECTONLY, s, recipient_was,
                                                NULL, NULL, NULL)) {
        fail(s, err, errlen, "register sp_recipient_was");
        goto fail;
    }
    for (int i = 0; i < Q_COUNT; i++) {
        char sql[2048], ids[1024];
        if (Q_READ_FOLD_ANONYMOUS == i) {
            sp_query_ids_in_time(ids, sizeof(ids), "?2", "?1", "?1 + 1");
            snprintf(sql, sizeof(sql), READ_FOLD_ANONYMOUS, ids);
        }
        if (0 != prepare(s, &s->q[i], Q_READ_FOLD_ANONYMOUS == i ? sql : batch_sql[i], err, errlen))
            goto fail;
    }
    return &s->base;
fail:
    sq_close(&s->base);
    return NULL;
}
