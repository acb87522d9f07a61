/* query: a filtered page of events and a sorted page of recipients, as SQL both stores run. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_QUERY_H
#define SP_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A page of events, newest first (by ID). Strings are borrowed; NULL is no filter. */
typedef struct sp_query_events {
    const char *campaign;  /* NULL: every campaign the recipient is in (recipient required) */
    const char *recipient; /* exactly */
    int klass, kind;       /* -1: any */
    const char *country;   /* exactly (its ISO code as stored) */
    const char *client;    /* the browser's family, exactly */
    int64_t from, to;      /* ts in [from, to): 0 and INT64_MAX for none */
    int64_t before;        /* IDs below it; 0: from the newest */
    int64_t limit;         /* negative: no limit */
    /* SQLite, a recipient's events: of its lists moved out (recipient_events), only those whose
     * first ID is in [lists_from, lists_to) (lists_to 0: no bound; both 0: every list). */
    int64_t lists_from, lists_to;
} sp_query_events_t;

/* The campaigns recipient P is in, as a condition on recipients: a seek of each campaign's key
 * (campaign, recipient), as no index holds recipients by address alone (a random B-tree entry
 * per new recipient that the writer no longer makes: BENCHMARKS.md, "The writer's commits").
 * A seek per campaign: 5.5 ms for a recipient's page over 1,000 campaigns. Every recipient's
 * row has its campaign's (deleting a campaign deletes its rows). */
#define SP_QUERY_RECIPIENT_CAMPAIGNS(p) "campaign IN (SELECT id FROM campaigns) AND recipient = " p

/* SQLite has no index of events by campaign and recipient (schema 24): a recipient's row lists
 * the IDs of its newest events in its campaign (recipients.event_ids: decimal IDs joined by
 * commas, '' for none), which the writer adds to as it stores them, and once that list is long
 * the writer moves it whole into a row of recipient_events(campaign, recipient, first_id, ids),
 * so that a recipient opened without end (a bot, an attack) never makes its row long: each
 * batch rewrites the row. SP_QUERY_EVENT_IDS is the table of the IDs a list (SQL) holds, as its
 * column "value"; SP_QUERY_RECIPIENT_EVENT_IDS those of campaign C's recipient R (SQL), and
 * SP_QUERY_RECIPIENT_ALL_EVENT_IDS those of recipient R in every campaign, as subqueries. A list
 * keeps the IDs of events deleted since (retention), which a later event may have again:
 * readers join the IDs to events and test the campaign and recipient. */
#define SP_QUERY_EVENT_IDS(list)            "json_each('[' || " list " || ']')"
#define SP_QUERY_RECIPIENT_EVENT_IDS(c, r)  SP_QUERY_RECIPIENT_EVENT_IDS_IN(c, r, "")
#define SP_QUERY_RECIPIENT_ALL_EVENT_IDS(r) SP_QUERY_RECIPIENT_ALL_EVENT_IDS_IN(r, "")
/* The same with a condition LISTS (SQL beginning with " AND ") on the lists moved out, x. */
#define SP_QUERY_RECIPIENT_EVENT_IDS_IN(c, r, lists)                                               \
    "(SELECT value FROM " SP_QUERY_EVENT_IDS(                                                      \
        "(SELECT event_ids FROM recipients WHERE campaign = " c                                    \
        " AND recipient = " r ")") " UNION ALL SELECT l.value FROM recipient_events "              \
                                   "x, " SP_QUERY_EVENT_IDS("x.ids") " l WHERE x.campaign = " c    \
                                                                     " AND x.recipient = " r lists \
                                                                     ")"
#define SP_QUERY_RECIPIENT_ALL_EVENT_IDS_IN(r, lists)                                                                                            \
    "(SELECT l.value FROM recipients x, " SP_QUERY_EVENT_IDS(                                                                                    \
        "x.event_ids") " l WHERE x." SP_QUERY_RECIPIENT_CAMPAIGNS(r) " UNION ALL SELECT l.value "                                                \
                                                                     "FROM recipient_events "                                                    \
                                                                     "x, " SP_QUERY_EVENT_IDS("x."                                               \
                                                                                              "id"                                               \
                                                                                              "s") " l WHERE x." SP_QUERY_RECIPIENT_CAMPAIGNS(r) \
                                                                         lists ")"

/* SQLite's events have no index by time (schema 21): a campaign's events of a time range are
 * found among its IDs from the least to the greatest of the quarter hours (UTC) the range
 * touches, which the writer keeps in events_quarters(campaign, quarter, first_id, last_id) and
 * never narrows (a deletion leaves them as they were: a bound, not an exact range). IDs follow
 * time but for late rows (an adopted open, a batch's forwards), which only widen a quarter's
 * range. */
#define SP_QUERY_QUARTER_MS  900000LL
#define SP_QUERY_QUARTER_SQL "900000"

/* The condition on id into OUT (LEN bytes) that holds for every event of CAMPAIGN whose time is
 * in [FROM, TO), each an SQL expression (a parameter's mark, a column), FROM or TO NULL for an
 * open end (not both). Every stored event is in its quarter's range, so no event of
 * the time range fails it; a range with no quarter of the campaign's makes it NULL (none).
 * Aborts when OUT is too small. */
void sp_query_ids_in_time(char *out, size_t len, const char *campaign, const char *from,
                          const char *to);

/* A parameter of the statement, in the order of its marks. */
typedef struct sp_query_param {
    bool text;
    const char *s;
    int64_t n;
} sp_query_param_t;

#define SP_QUERY_PARAMS 12

/* The statement for Q into SQL (LEN bytes) selecting COLS (the events' columns, in the field
 * table's order), with MARK the parameters' sign ('?': SQLite, whose time range is also one of
 * IDs, sp_query_ids_in_time; '$': PostgreSQL) and their values in PARAMS
 * (*N_PARAMS of them, at most SP_QUERY_PARAMS); a negative limit is left out. Aborts when SQL
 * is too small. */
void sp_query_events_sql(const sp_query_events_t *q, const char *cols, char mark, char *sql,
                         size_t len, sp_query_param_t *params, int *n_params);

/* What a campaign's recipients are sorted by. */
typedef enum sp_query_sort {
    SP_SORT_RECIPIENT,
    SP_SORT_VIEWS,
    SP_SORT_CLICKS,
    SP_SORT_FIRST,
    SP_SORT_LAST,
} sp_query_sort_t;

/* A page of a campaign's recipients sorted by SORT (DESC: descending), then by recipient in the
 * same direction, after the row (AFTER_VALUE, AFTER) when AFTER is not NULL (keyset paging). */
typedef struct sp_query_recipients {
    const char *campaign;
    sp_query_sort_t sort;
    bool desc;
    const char *after; /* the last row's recipient, or NULL for the first page */
    int64_t after_value;
    int64_t limit;
} sp_query_recipients_t;

/* The statement for Q into SQL, selecting (recipient, human, proxy, machine, self, clicks,
 * first_at, last_at, the sort value); as sp_query_events_sql. */
void sp_query_recipients_sql(const sp_query_recipients_t *q, char mark, char *sql, size_t len,
                             sp_query_param_t *params, int *n_params);

#endif
