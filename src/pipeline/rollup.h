/* rollup: the report's counters, kept by the writer beside the events, added up in C and in SQL. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_ROLLUP_H
#define SP_ROLLUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

/*
 * Tables added to in the transaction that stores the events (and taken from by forget), so
 * that a report over any range reads counters, not events:
 *
 *   rollup_counts(campaign, quarter, human, proxy, machine, self, clicks)
 *       opens by class and counted clicks per quarter hour (UTC): every time zone's offset
 *       is a whole number of quarter hours, so local hours, days and weeks are sums of them;
 *   rollup_values(campaign, dim, hour, value, n; on SQLite first_hour, below)
 *       per hour (UTC), the counted opens by client, OS, device, country, city and via (dims
 *       1-6), and who had counted opens (dim 0; on SQLite, but in an opener's first hour:
 *       below) or counted clicks (dim 7) in that hour, with how many: a range's unique openers
 *       are the distinct values of dim 0 over its hours;
 *   rollup_days(campaign, dim, day, value, n)
 *       dims 1-6 of rollup_values summed per day (UTC): a report reads the whole days of its
 *       range here, the hours around them in rollup_values, the rest in the events;
 *   rollup_totals(campaign, dim, value, n)
 *       dims 1-6 of rollup_values summed over all time: a range that holds most of a
 *       campaign's days reads these less the days, hours and events outside it;
 *   rollup_people(campaign, dim, who, first_hour, last_hour)
 *       for dims 0 and 7 of rollup_values, each value's first and last hour (on SQLite, but
 *       a named recipient's as an opener, below): the unique
 *       openers and clickers of a range are counted from one row each instead of one per
 *       hour, exactly when nobody's rows begin before the range's hours or end after them
 *       (a range from before a campaign's first open, or to after its last: all time, the
 *       last N days, the days since it was sent), and from rollup_values otherwise;
 *   rollup_people_hours(campaign, dim, hour, firsts, lasts)
 *       of rollup_people's rows, how many have each hour as first_hour (firsts) and as
 *       last_hour (lasts): those of a range are counted by adding up hours (a row per hour
 *       of the campaign's life) where an index of people by hour took two B-tree entries for
 *       each new person (schema 20).
 *
 * The writer adds each row of rollup_values of dims 1-6 to its day's row of rollup_days and
 * to its value's row of rollup_totals (on SQLite, only once its hour is folded: below), and
 * each of dims 0 and 7 to its value's rollup_people
 * row, and what that row's hours were and became to rollup_people_hours (in C on SQLite,
 * sp_rollup_people_hours; by statement triggers on PostgreSQL, whose writers on several
 * servers may move the same person at once); forget and a campaign's deletion take theirs
 * out with the rows. Migration 14 made the three from the rollup_values of its time.
 *
 * Folded hours (SQLite): rollup_days and rollup_totals hold the hours before the one meta's
 * SP_ROLLUP_FOLDED_KEY names (SP_ROLLUP_FOLDED_SQL), the later hours being in rollup_values
 * only. The writer moves that hour up to its batch's last hour and adds the hours it passes to
 * the days and totals at once, in one statement each (fold), instead of the batch's rows of
 * dims 1-6 again and again: with realistic opens (a city a few opens) those upserts were a
 * tenth of the writer's work. An event of an hour already folded is added at once, as before.
 * The report adds the hours not folded yet to the days and totals it reads; forget takes an
 * event out of the days and totals only when its hour is folded. PostgreSQL, whose writers
 * on several servers would race to fold, has no such key: every hour is folded there.
 *
 * Named openers (SQLite): a recipient's first and last hour as an opener (dim 0) are those of
 * its recipients row's first_at and last_at, which are its first and last counted open; that
 * row is the person's, and rollup_people holds dim 0 only for the visitors' keys ("v:", which
 * a recipient named so shares: SP_ROLLUP_NAMED_SQL tells them apart). The writer updates that
 * row for every batch anyway, so a new opener costs no B-tree entry of its own (a tenth of the
 * writer's instructions on realistic opens). SP_ROLLUP_PEOPLE_SQL is every person's row as
 * rollup_people had them. PostgreSQL keeps them all in rollup_people, its triggers counting
 * them by hour.
 *
 * Openers' first hours (SQLite): rollup_values has no row of dim 0 for an opener's first hour,
 * which its row of people holds already (first_hour, or its recipients row's first_at). Most
 * openers open in one hour only, so most new openers cost no entry of rollup_values (a seventh
 * of the writer's instructions on realistic opens). Each row of dim 0 names its opener's first
 * hour (first_hour, schema 26). The report's unique openers of hours that are not exact
 * (sp_rollup_people_exact) are those whose first hour is in them, counted from
 * rollup_people_hours, and those of the hours' rows and of the edges whose first hour is not:
 * the rows say it, each of the edges' people is looked up (SP_ROLLUP_OPENER_FIRST_SQL). An open
 * of an hour before its opener's first, stored late, moves that first hour: the hour that was
 * first gets its row, counted from the events stored before, and the opener's later rows the
 * new first hour (sp_rollup_moved_first_sql). PostgreSQL keeps every hour.
 *
 * What an event adds is written here twice, from the counting rule (tally.h): in C, which the
 * writer runs on a batch's stored events to upsert each distinct row once (sp_rollup_batch),
 * and in SQL over the events table, which the migration runs on every stored event, forget
 * (negated) on the events it erases, and the report on the events at the edges of a range
 * that do not fill an hour. The store tests hold the two to the same rows.
 */

enum {
    SP_ROLLUP_OPENER = 0, /* who opened (counted) */
    SP_ROLLUP_CLIENT,
    SP_ROLLUP_OS,
    SP_ROLLUP_DEVICE,
    SP_ROLLUP_COUNTRY,
    SP_ROLLUP_CITY,
    SP_ROLLUP_VIA,
    SP_ROLLUP_CLICKER, /* who clicked (counted) */
    SP_ROLLUP_DIMS
};

/* The key in meta of the first hour not folded (above), and the SQL that reads it (NULL when
 * there is none: every hour folded). */
#define SP_ROLLUP_FOLDED_KEY "rollup_folded_hour"
#define SP_ROLLUP_FOLDED_SQL                                                                       \
    "(SELECT CAST(value AS BIGINT) FROM meta WHERE key = '" SP_ROLLUP_FOLDED_KEY "')"

#define SP_ROLLUP_QUARTER_MS 900000LL
#define SP_ROLLUP_HOUR_MS    3600000LL
#define SP_ROLLUP_HOUR_SQL   "3600000" /* SP_ROLLUP_HOUR_MS in SQL */

/* Whether the event of the row in scope (its ts) is in the days and totals: its hour is folded,
 * or the store names no hour (every hour folded). */
#define SP_ROLLUP_EVENT_FOLDED_SQL                                                                 \
    "ts / " SP_ROLLUP_HOUR_SQL " < COALESCE(" SP_ROLLUP_FOLDED_SQL ", ts / " SP_ROLLUP_HOUR_SQL    \
    " + 1)"
#define SP_ROLLUP_DAY_MS 86400000LL

/* Whether person WHO (SQL) of dim 0 is a named recipient's, kept in its recipients row on SQLite
 * (above); sp_rollup_named in C. */
#define SP_ROLLUP_NAMED_SQL(who) "substr(" who ", 1, 2) <> 'v:'"

/* Whether the recipients row in scope (its columns prefixed with ROW: "" or "r.") holds a named
 * opener's hours: it has counted opens, and its name is not a visitor's key. */
#define SP_ROLLUP_NAMED_OPENER_SQL(row) row "first_at > 0 AND " SP_ROLLUP_NAMED_SQL(row "recipient")

/* SQLite: the first hour of opener WHO of CAMPAIGN (SQL expressions), looked up in its row of
 * people (SP_ROLLUP_PEOPLE_SQL's two sources, each by its key); NULL when it has none. */
#define SP_ROLLUP_OPENER_FIRST_SQL(campaign, who)                                                  \
    "COALESCE((SELECT f.first_at / " SP_ROLLUP_HOUR_SQL " FROM recipients f"                       \
    " WHERE f.campaign = " campaign " AND f.recipient = " who " AND " SP_ROLLUP_NAMED_OPENER_SQL(  \
        "f.") "), (SELECT f.first_hour FROM rollup_people f WHERE f.campaign = " campaign          \
              " AND f.dim = 0 AND f.who = " who "))"

/* SQLite's people as rows of rollup_people: its own, and the named openers' from recipients. */
#define SP_ROLLUP_PEOPLE_SQL                                                                       \
    "(SELECT campaign, dim, who, first_hour, last_hour FROM rollup_people UNION ALL"               \
    " SELECT campaign, 0, recipient, first_at / " SP_ROLLUP_HOUR_SQL                               \
    ", last_at / " SP_ROLLUP_HOUR_SQL " FROM recipients WHERE " SP_ROLLUP_NAMED_OPENER_SQL("") ")"

/* The columns of rollup_counts after campaign and quarter, in order. */
enum {
    SP_ROLLUP_HUMAN,
    SP_ROLLUP_PROXY,
    SP_ROLLUP_MACHINE,
    SP_ROLLUP_SELF,
    SP_ROLLUP_CLICKS,
    SP_ROLLUP_COUNTS
};

#define SP_ROLLUP_KEY_MAX 48 /* "v:", a visitor (event.h: 39 bytes at most), NUL */

/* One row of rollup_counts a batch adds to. */
typedef struct sp_rollup_count {
    const char *campaign; /* borrowed from the batch's events */
    int64_t quarter;
    int64_t n[SP_ROLLUP_COUNTS];
} sp_rollup_count_t;

/* One row of rollup_values a batch adds to. */
typedef struct sp_rollup_value {
    const char *campaign, *value; /* borrowed from the batch's events, or from the batch's own */
    /* VALUE's head (sp_text_head), and the hash of CAMPAIGN and VALUE (sp_hash_str): made once,
     * where the entries' merging and sorting (and the days', totals' and people's made of them)
     * would read the texts again and again. */
    uint64_t head, hash;
    size_t len; /* VALUE's, made with its hash: a bind need not read the text for it */
    int dim;
    uint32_t row; /* the index among the batch's rows of one it counts (of a person's: any) */
    int64_t hour, n;
    int64_t first; /* of dim 0 on SQLite, its opener's first hour (sp_rollup_first_hours) */
} sp_rollup_value_t;

/* rollup_people_hours made from rollup_people (schema 20, both stores). */
#define SP_ROLLUP_PEOPLE_HOURS_FILL                                                                \
    "INSERT INTO rollup_people_hours(campaign, dim, hour, firsts, lasts)"                          \
    " SELECT campaign, dim, hour, SUM(f), SUM(l) FROM (SELECT campaign, dim, first_hour AS hour,"  \
    " 1 AS f, 0 AS l FROM rollup_people UNION ALL SELECT campaign, dim, last_hour, 0, 1"           \
    " FROM rollup_people) x GROUP BY campaign, dim, hour;"

/* One row of rollup_people a batch adds to: a person's first and last hour in the batch. */
typedef struct sp_rollup_person {
    const char *campaign, *who; /* borrowed as sp_rollup_value_t's */
    uint64_t head, hash;        /* its value's (WHO's head; the hash of CAMPAIGN and WHO) */
    size_t len;                 /* WHO's */
    int dim;
    uint32_t row; /* the index among the batch's rows of one of the person's (its value's) */
    int64_t first, last;
    size_t first_value; /* the index of the row of its first hour among the batch's values */
} sp_rollup_person_t;

/* What a batch adds to one row of rollup_people_hours: people whose first hour (FIRSTS) and last
 * hour (LASTS) HOUR became, less those whose it was. */
typedef struct sp_rollup_hour {
    const char *campaign; /* borrowed as sp_rollup_person_t's */
    int dim;
    int64_t hour, firsts, lasts;
} sp_rollup_hour_t;

/* What a batch adds to the rollups: each list sorted by its key (campaign, then quarter; campaign,
 * dim, hour, value; strings by their bytes, as both stores compare them) and distinct, so that
 * writers on several servers lock the rows in one order. DAYS and TOTALS (sp_rollup_derive) are
 * VALUES' rows of dims 1-6 summed by day (hour holds the day) and over the batch (hour 0), PEOPLE
 * its rows of dims 0 and 7 by person, each sorted and distinct in the same way (people by
 * campaign, dim, who). */
typedef struct sp_rollup {
    sp_rollup_count_t *counts;
    size_t n_counts;
    sp_rollup_value_t *values, *days, *totals;
    size_t n_values, n_days, n_totals;
    sp_rollup_person_t *people;
    size_t n_people;
    sp_rollup_hour_t *hours; /* sp_rollup_people_hours's */
    size_t n_hours;
    char *keys; /* the values made here: "v:" and a visitor, SP_ROLLUP_KEY_MAX bytes each */
} sp_rollup_t;

/* What the N events as stored (their rows ROWS, sp_event_row's) add to the rollups, into R
 * (emptied first). Reads the rows only, so that it may run on another thread while the tally
 * runs over their events (which sets their rows' IDs). Aborts when out of memory. */
void sp_rollup_batch(sp_rollup_t *r, const sp_event_row_t *const *rows, size_t n);

/* Fills R's days and totals from its values (sp_rollup_batch's) of the hours before FOLDED
 * (INT64_MAX: all), and its people from all of them. Aborts when out of memory. */
void sp_rollup_derive(sp_rollup_t *r, int64_t folded);

/* What R's people (sp_rollup_derive's) do to rollup_people: each one's row before the batch is
 * OLD[i] (first and last hour), or none when FOUND[i] is false. Sets CHANGED[i] when person i's
 * row is new or its hours move, and fills R's hours with what that adds to
 * rollup_people_hours, sorted by campaign, dim and hour, distinct, none all zero. The writer
 * that runs this must be the only one changing those people's rows until it commits: SQLite's,
 * which holds the database's write lock. Aborts when out of memory. */
void sp_rollup_people_hours(sp_rollup_t *r, const bool *found, const int64_t (*old)[2],
                            bool *changed);

/* SQLite's rows of dim 0 leave out each opener's first hour ("Openers' first hours", above):
 * drops from R's values (as sp_rollup_derive found them) the row of the hour that is each
 * opener's first after the batch, given its hours before as sp_rollup_people_hours is. Sets
 * MOVED[i] when the batch moved opener i's
 * first hour earlier (an open of an earlier hour stored late): the hour that was first then
 * needs its row, which only the events stored before can count (sp_rollup_moved_first_sql). */
void sp_rollup_first_hours(sp_rollup_t *r, const bool *found, const int64_t (*old)[2], bool *moved);

/* SQLite's statements for an opener whose first hour the batch moved (MOVED of
 * sp_rollup_first_hours), into ADD and LATER (LEN bytes each). ADD gives the hour that was first
 * its row of dim 0: parameters 1 the campaign, 2 that hour, 3 the opener, 4 the batch's first
 * event ID (the batch's own opens of that hour are in its values), 5 the first hour now. LATER
 * gives its rows after the first hour now (?2) that hour as theirs (first_hour): parameters 1-3
 * the same. Only the rows of the hours after it are read: a move comes of an open stored late,
 * most often an open answered an instant before the hour turned. */
void sp_rollup_moved_first_sql(char *add, char *later, size_t len);

/* Whether WHO, a person of dim 0, is a named recipient's (SP_ROLLUP_NAMED_SQL). */
bool sp_rollup_named(const char *who);

/* Frees R's lists; R may then be filled again. */
void sp_rollup_free(sp_rollup_t *r);

/* The breakdown name of dims 1-6 ("client", "os", ...); NULL for the others. */
const char *sp_rollup_dim_name(int dim);

/* Statements that add SIGN (1 or -1) times what the events of SOURCE add to the rollups:
 * SOURCE is SQL selecting from events (its WHERE may name parameters); into COUNTS and VALUES
 * (LEN bytes each). PG: PostgreSQL's dialect. FIRST_HOURS: the rows of dim 0 of each opener's
 * first hour too, as PostgreSQL keeps them always and SQLite did before schema 25; without, the
 * events of SOURCE must be all of their openers' (their first hour is found among them).
 * Aborts when a buffer is too small (a fixed SOURCE: a bug). */
void sp_rollup_add_sql(char *counts, char *values, size_t len, const char *where, int sign, bool pg,
                       bool first_hours);

/* Statements that add SIGN times what the events of SOURCE add to rollup_days and
 * rollup_totals, as sp_rollup_add_sql, into DAYS and TOTALS (LEN bytes each). */
void sp_rollup_days_sql(char *days, char *totals, size_t len, const char *where, int sign, bool pg);

/* The report's queries, into COUNTS, VALUES, DISTINCT and PEOPLE (LEN bytes each), MARK the
 * parameters' sign ('?' or '$'). Parameters: 1 the campaign, 2 and 3 the hours [from, to) read
 * from the rollups, 4-5 and 6-7 the edges [from, to) in ms read from the events; of DISTINCT
 * and PEOPLE, 8 the dim counted with the clickers (0: the openers too; 7: not them); of VALUES,
 * 8 and 9 where the hours before the whole days end and those after them begin, 10 and 11 the
 * whole days [from, to) read from rollup_days. Rows:
 * COUNTS (quarter, human, proxy, machine, self, clicks), a quarter possibly twice; VALUES (dim,
 * value, n) of dims 1-6, each value once with n > 0, in no order; DISTINCT (dim, n, listed) of dims
 * 0 and 7, listed: those in the campaign's list of people it was sent to (sent_to); PEOPLE (dim, n,
 * listed, first, last) the same from rollup_people, with the first and last hour of anyone's rows:
 * its n and listed are DISTINCT's when sp_rollup_people_exact says so; OUTSIDE (dim, value, n) of
 * dims 1-6 not added up: a value's rows sum to its n (none when not positive); parameter 1 the
 * campaign and 2-11 those sp_rollup_outside gives. */
void sp_rollup_report_sql(char *counts, char *values, char *distinct, char *people, char *outside,
                          size_t len, bool pg);

/* Whether the breakdowns of the range [FROM, TO) (ms), whose whole days are [DAY_FROM, DAY_TO),
 * read fewer rows as its campaign's totals less what lies outside the range (the query OUTSIDE
 * of sp_rollup_report_sql), given the first and last quarter of the campaign's rows; if so,
 * OUTSIDE's parameters 2-11 into PARAMS: the days before ?2 and from ?3, the hours [?4, ?5) and
 * [?6, ?7), the events of [?8, ?9) and [?10, ?11). */
bool sp_rollup_outside(int64_t from, int64_t to, int64_t day_from, int64_t day_to,
                       int64_t first_quarter, int64_t last_quarter, int64_t params[10]);

/* Whether PEOPLE's counts of a dim are exact, of the hours [HOUR_FROM, HOUR_TO) and the FIRST
 * and LAST hour of its rows. */
bool sp_rollup_people_exact(int64_t hour_from, int64_t hour_to, int64_t first, int64_t last);

#endif
