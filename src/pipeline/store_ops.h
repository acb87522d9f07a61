/* store_ops: what a storage backend implements, and the records it reads and writes. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_STORE_OPS_H
#define SP_STORE_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "classify.h"
#include "config.h"
#include "event.h"
#include "query.h"
#include "rollup.h"

typedef struct sp_campaign {
    char id[SP_ID_MAX + 1];
    int64_t created_at;
    int64_t last_view_at; /* 0 when never viewed */
    int64_t total_views;  /* human + proxy opens */
    int64_t unique_views;
    int64_t by_class[SP_CLASS_COUNT];
    int64_t clicks; /* human + proxy clicks */
    bool archived;  /* set aside by its owner: listed apart */
} sp_campaign_t;

/* How a campaign's opens of the tracking block were read (tally.h), and its prints and
 * forwards (loads of the forward CSS) and likely forwards (tally.h's rule): counted from its
 * events. */
typedef struct sp_engagement {
    int64_t glanced, skimmed, read, unmeasured;
    int64_t prints, forwards, likely_forwards;
} sp_engagement_t;

/* Adds COUNT events of KIND and class KLASS with ENGAGEMENT (may be NULL; a forward's: its
 * rule) to E, as the tally counts them (sp_tally_engagement_counted): the stores' rows, one
 * way. */
void sp_store_engagement_add(sp_engagement_t *e, int64_t kind, int64_t klass,
                             const char *engagement, int64_t count);

/* The same query in both stores, with the campaign as parameter 1 (MARK '?' or '$'). */
#define SP_STORE_ENGAGEMENT_SQL(mark)                                                              \
    "SELECT kind, class, CASE WHEN kind = 3 THEN rule ELSE engagement END, COUNT(*)"               \
    " FROM events WHERE campaign = " mark "1 AND kind <> 1 GROUP BY 1, 2, 3"

typedef struct sp_recipient {
    const char *recipient;
    int64_t views; /* human + proxy opens */
    int64_t by_class[SP_CLASS_COUNT];
    int64_t clicks;
    int64_t first_at, last_at; /* of counted opens; 0 when none */
} sp_recipient_t;

/* A campaign that does not exist but was opened: its opens are kept apart (the newest of
 * them, in their journal form) until it is created and adopts them. */
typedef struct sp_unknown_campaign {
    char id[SP_ID_MAX + 1];
    int64_t opens; /* every open seen, also those no longer kept */
    int64_t first_at, last_at;
} sp_unknown_campaign_t;

/* What write_batch does with the opens of a campaign that does not exist. */
typedef struct sp_store_unknown {
    bool auto_create;      /* create the campaign (dated by that open) and store them */
    int64_t max_campaigns; /* most unknown IDs kept; the opens of further ones are refused */
    int64_t max_opens;     /* newest opens kept per unknown ID; older ones make way */
} sp_store_unknown_t;

/* A dashboard user as listed: never its password hash. Strings borrowed for the callback. */
typedef struct sp_user_row {
    const char *name;
    int64_t created_at;
    int64_t sessions; /* unexpired sessions */
    int64_t tokens;   /* API tokens it owns */
} sp_user_row_t;

/* An API token's ID: the first hex digits of its stored hash. It names the token without
 * telling anything of the secret. */
/* How often the writer runs the store's upkeep, and where its count of rows in events_default
 * stops (a bounded read, whatever that table holds). */
#define SP_STORE_UPKEEP_MS        30000
#define SP_STORE_DEFAULT_ROWS_MAX 10000

#define SP_STORE_TOKEN_ID_LEN  12
#define SP_STORE_TOKEN_ID_TEXT "12" /* the same, for SQL text */

/* An API token as listed: never its hash. */
typedef struct sp_token_row {
    char id[SP_STORE_TOKEN_ID_LEN + 1];
    const char *name;
    const char *owner; /* NULL when no user owns it */
    int64_t created_at;
} sp_token_row_t;

/* What a report reads (rollup.h): the hours [hour_from, hour_to) from the rollups, and the events
 * of the edges [edge_from[i], edge_to[i]) (ms; empty when from >= to) from the events. */
typedef struct sp_store_span {
    int64_t hour_from, hour_to;
    int64_t day_from, day_to; /* the whole days within the hours (none: equal) */
    int64_t edge_from[2], edge_to[2];
    bool no_openers; /* the distinct openers are not wanted (known otherwise) */
} sp_store_span_t;

/* A report's rows, as they come (strings borrowed for the call; return nonzero to stop):
 * opens by class and counted clicks of a quarter hour (a quarter may come more than once: add
 * them), a breakdown's value (dims 1-6, in no order: report.c ranks them; a value may come more
 * than once: add them; a value whose sum is not positive has no opens), the distinct openers (dim
 * 0) and clickers (dim 7). */
typedef struct sp_store_report_cb {
    int (*counts)(void *ctx, int64_t quarter, const int64_t counts[SP_ROLLUP_COUNTS]);
    int (*value)(void *ctx, int dim, const char *value, int64_t n);
    int (*distinct)(void *ctx, int dim, int64_t n, int64_t listed);
} sp_store_report_cb_t;

/* A campaign's list of the people it was sent to, against its counters (all time): how many,
 * how many of them had a counted open, a counted click. */
typedef struct sp_store_sent {
    int64_t sent, openers, clickers;
} sp_store_sent_t;

typedef int (*sp_store_name_cb)(void *ctx, const char *name);

/* A pixel, link or image made for a campaign (strings borrowed). */
typedef struct sp_store_tracker {
    int64_t id; /* set by the store */
    const char *campaign, *recipient;
    const char *kind;   /* "pixel", "link", "image" */
    const char *target; /* a link's destination; "" for the others */
    const char *url;
    int64_t created_at;
} sp_store_tracker_t;

/* A link's destination with what it got: tracked links made for it, counted clicks, distinct
 * clickers, the first and last counted click (0: none). */
typedef struct sp_store_link {
    const char *target;
    int64_t made, clicks, clickers, first_at, last_at;
} sp_store_link_t;

typedef int (*sp_store_tracker_cb)(void *ctx, const sp_store_tracker_t *t);
typedef int (*sp_store_link_cb)(void *ctx, const sp_store_link_t *l);

typedef struct sp_store sp_store_t;

/* An export's reading of a campaign's events (sp_store_ops_t.export_open). */
typedef struct sp_store_export sp_store_export_t;
/* Pages a reading may have read beyond those it has handed out (both stores read ahead). */
#define SP_STORE_EXPORT_AHEAD 1

/* A meta key/value written in the same transaction as a batch: the journal position the
 * store then holds everything before. */
typedef struct sp_store_mark {
    const char *key, *value;
} sp_store_mark_t;

/* What a failed call met (see sp_store_ops_t.failure). */
typedef enum sp_store_failure {
    SP_STORE_FAIL_DATA,  /* something in what it was given: another call may succeed */
    SP_STORE_FAIL_RETRY, /* the store is busy, full or out of reach: the same call may succeed later
                          */
    SP_STORE_FAIL_FAULT, /* the store is damaged or its files cannot be written: nothing more is
                          * written to it by this process until it is opened anew */
} sp_store_failure_t;

typedef int (*sp_store_campaign_cb)(void *ctx, const sp_campaign_t *c);
typedef int (*sp_store_recipient_cb)(void *ctx, const sp_recipient_t *r);
typedef int (*sp_store_event_cb)(void *ctx, const sp_event_row_t *row);
typedef int (*sp_store_unknown_cb)(void *ctx, const sp_unknown_campaign_t *u);
/* A kept open of an unknown campaign: its row and its journal form (borrowed). */
typedef int (*sp_store_kept_cb)(void *ctx, int64_t row, const void *record, size_t len);
typedef int (*sp_store_user_cb)(void *ctx, const sp_user_row_t *row);
typedef int (*sp_store_token_cb)(void *ctx, const sp_token_row_t *row);

/* The backend's functions. Each says what it returns: 0 when it did it; 1 for "absent" where
 * it says so (nothing is changed then); -1 with a message in ERR (ERRLEN bytes) when it failed,
 * nothing written (a transaction is rolled back), and failure() then says what it met. A store
 * is used by one thread at a time (the server opens one for the writer and one per reading
 * thread). Strings handed to a callback are borrowed for the call; a callback returns 0 to go
 * on, nonzero to stop (the call still returns 0). */
typedef struct sp_store_ops {
    const char *name;
    /* Closes the connection and frees S. Cannot fail. */
    void (*close)(sp_store_t *s);
    /* Records a batch in one transaction: every event's outcome is set and a stored one's id
     * filled in; what the stored ones add to the counters is the tally's (tally.h), and their
     * first_view is set when they were one; MARK (may be NULL) is set in meta with them, also
     * when N is 0. An event of a campaign that does not exist is handled as s->unknown says:
     * created (STORED, campaign_new on the first), kept apart (UNKNOWN_CAMPAIGN; campaign_new
     * on the first of a new unknown ID, dropped set when older kept opens made way) or, beyond
     * max_campaigns, REFUSED. An event with an adopt_row takes that kept open out and is
     * stored, or is ADOPTED_ALREADY when the row is gone: an adoption is stored once however
     * often its records are read. 0, or -1 + ERR with nothing recorded and every event as it
     * came (PENDING, no id). */
    int (*write_batch)(sp_store_t *s, sp_event_t **evs, size_t n, const sp_store_mark_t *mark,
                       char *err, size_t errlen);
    /* Creates campaign ID dated NOW_MS. 0 created, 1 it existed (unchanged), -1 + ERR. */
    int (*campaign_create)(sp_store_t *s, const char *id, int64_t now_ms, char *err, size_t errlen);
    /* Campaign ID's engagement into *OUT (zeros for no such campaign). 0, or -1 + ERR. */
    int (*engagement)(sp_store_t *s, const char *id, sp_engagement_t *out, char *err,
                      size_t errlen);
    /* Campaign ID into *OUT. 0 found, 1 no such campaign, -1 + ERR. */
    int (*campaign_get)(sp_store_t *s, const char *id, sp_campaign_t *out, char *err,
                        size_t errlen);
    /* Every campaign, newest activity first. 0, or -1 + ERR. */
    int (*campaign_list)(sp_store_t *s, sp_store_campaign_cb cb, void *ctx, char *err,
                         size_t errlen);
    /* CAMPAIGN's recipients in ID order after AFTER ("" from the start), at most LIMIT
     * (negative: no limit). 0 (also for no such campaign), or -1 + ERR. */
    int (*recipients)(sp_store_t *s, const char *campaign, const char *after, int64_t limit,
                      sp_store_recipient_cb cb, void *ctx, char *err, size_t errlen);
    /* CAMPAIGN's events, newest first, IDs below BEFORE (0: from the newest), at most LIMIT
     * (negative: no limit); each row's text as stored. 0 (also for no such campaign), or -1 +
     * ERR. */
    int (*events)(sp_store_t *s, const char *campaign, int64_t before, int64_t limit,
                  sp_store_event_cb cb, void *ctx, char *err, size_t errlen);
    /* Starts reading CAMPAIGN's events as events() lists them (IDs below BEFORE, at most LIMIT,
     * negative: no limit), PAGE of them per export_next. No transaction or cursor is held
     * between calls, so a slow reader holds back neither retention nor the writer, and a page
     * holds the events there when it was read: both stores read ahead (the next page while the
     * caller formats one; SQLite on a thread and connection of the reading's own), so an event
     * taken out after export_next returned page N can still be in the SP_STORE_EXPORT_AHEAD pages
     * after it, never in a later one. The reading uses S only within export_next and
     * export_close; S may serve other calls (and other readings) in between. Never NULL
     * (allocation aborts). */
    sp_store_export_t *(*export_open)(sp_store_t *s, const char *campaign, int64_t before,
                                      int64_t limit, int64_t page);
    /* Calls CB on X's next page of events (borrowed for the call). 0 with more to read, 1 when
     * that page was the last (maybe empty; and at every later call), -1 + ERR: the reading
     * cannot go on (later calls fail too). A CB that returns nonzero ends the reading: 1. */
    int (*export_next)(sp_store_t *s, sp_store_export_t *x, sp_store_event_cb cb, void *ctx,
                       char *err, size_t errlen);
    /* Ends and frees X (NULL is a no-op), before S is closed. Cannot fail. */
    void (*export_close)(sp_store_t *s, sp_store_export_t *x);
    /* CAMPAIGN's report rows over SPAN (see sp_store_report_cb_t), read in one snapshot. 0
     * (also for no such campaign), or -1 + ERR. */
    int (*report)(sp_store_t *s, const char *campaign, const sp_store_span_t *span,
                  const sp_store_report_cb_t *cb, void *ctx, char *err, size_t errlen);
    /* The page of events Q asks for (query.h), each row's text as stored. 0, or -1 + ERR. */
    int (*events_query)(sp_store_t *s, const sp_query_events_t *q, sp_store_event_cb cb, void *ctx,
                        char *err, size_t errlen);
    /* The page of a campaign's recipients Q asks for (query.h). 0, or -1 + ERR. */
    int (*recipients_sorted)(sp_store_t *s, const sp_query_recipients_t *q,
                             sp_store_recipient_cb cb, void *ctx, char *err, size_t errlen);
    /* Records tracker T (made now); the same URL twice is kept once. 0, or -1 + ERR. */
    int (*tracker_put)(sp_store_t *s, const sp_store_tracker_t *t, char *err, size_t errlen);
    /* CAMPAIGN's trackers, newest first, IDs below BEFORE (0: from the newest), at most LIMIT.
     * 0, or -1 + ERR. */
    int (*trackers)(sp_store_t *s, const char *campaign, int64_t before, int64_t limit,
                    sp_store_tracker_cb cb, void *ctx, char *err, size_t errlen);
    /* CAMPAIGN's link destinations, those made for it and those clicked (links made before
     * trackers were kept count by their clicks), most clicked first. 0, or -1 + ERR. */
    int (*links)(sp_store_t *s, const char *campaign, sp_store_link_cb cb, void *ctx, char *err,
                 size_t errlen);
    /* Archives campaign ID (ARCHIVED) or brings it back. 0, 1 no such campaign, -1 + ERR. */
    int (*campaign_archive)(sp_store_t *s, const char *id, bool archived, char *err, size_t errlen);
    /* Replaces CAMPAIGN's list of the people it was sent to with the N valid IDs ADDRS
     * (repeats count once), in one transaction. 0 with *STORED (distinct), or -1 + ERR. */
    int (*sent_put)(sp_store_t *s, const char *campaign, const char *const *addrs, size_t n,
                    int64_t *stored, char *err, size_t errlen);
    /* CAMPAIGN's list against its counters into *OUT (all 0 without a list). 0, or -1 + ERR. */
    int (*sent_stats)(sp_store_t *s, const char *campaign, sp_store_sent_t *out, char *err,
                      size_t errlen);
    /* The people of CAMPAIGN's list with no counted open, by ID after AFTER ("" from the
     * start), at most LIMIT (negative: no limit). 0, or -1 + ERR. */
    int (*not_opened)(sp_store_t *s, const char *campaign, const char *after, int64_t limit,
                      sp_store_name_cb cb, void *ctx, char *err, size_t errlen);
    /* Unknown campaigns, newest last open first. 0, or -1 + ERR. */
    int (*unknown_list)(sp_store_t *s, sp_store_unknown_cb cb, void *ctx, char *err, size_t errlen);
    /* The kept opens of unknown campaign ID, oldest first. 0 (also for none), or -1 + ERR. */
    int (*unknown_opens)(sp_store_t *s, const char *id, sp_store_kept_cb cb, void *ctx, char *err,
                         size_t errlen);
    /* Forgets unknown campaign ID and its kept opens. 0 done, 1 there was none, -1 + ERR. */
    int (*unknown_delete)(sp_store_t *s, const char *id, char *err, size_t errlen);
    /* Deletes events (and kept opens of unknown campaigns) older than BEFORE_MS; counters
     * stay. 0 with *DELETED, or -1 + ERR. */
    int (*purge_before)(sp_store_t *s, int64_t before_ms, int64_t *deleted, char *err,
                        size_t errlen);
    /* Erases one recipient everywhere (kept opens of unknown campaigns too) and takes their
     * opens out of the counters. 0 with *DELETED (events and kept opens), or -1 + ERR; an
     * empty RECIPIENT is refused so (it would match every event without one). */
    int (*forget)(sp_store_t *s, const char *recipient, int64_t *deleted, char *err, size_t errlen);
    /* Erases campaign ID with its events, recipients, clients and images. 0 done with
     * *DELETED events, 1 no such campaign, -1 + ERR. */
    int (*campaign_delete)(sp_store_t *s, const char *id, int64_t *deleted, char *err,
                           size_t errlen);
    /* Users, API tokens, sessions: secrets arrive hashed. */
    /* Sets NAME's password hash, creating the user when CREATE. Every session of the user and
     * every API token it owns ends in the same transaction: whoever held the old password holds
     * nothing any more. 0, 1 no such user (without CREATE), -1 + ERR. */
    int (*user_put)(sp_store_t *s, const char *name, const char *pwhash, bool create, char *err,
                    size_t errlen);
    /* NAME's password hash into PWHASH (PWLEN bytes). 0, 1 no such user, -1 + ERR. */
    int (*user_get)(sp_store_t *s, const char *name, char *pwhash, size_t pwlen, char *err,
                    size_t errlen);
    /* Deletes NAME with its sessions and the API tokens it owns. 0, 1 no such user, -1 +
     * ERR. */
    int (*user_delete)(sp_store_t *s, const char *name, char *err, size_t errlen);
    /* Every user, by name. 0, or -1 + ERR. */
    int (*user_list)(sp_store_t *s, sp_store_user_cb cb, void *ctx, char *err, size_t errlen);
    /* Keeps API token HASH named NAME; OWNER: the user whose password change or deletion ends
     * it, or NULL. 0, or -1 + ERR (also when HASH is kept already). */
    int (*token_put)(sp_store_t *s, const char *hash, const char *name, const char *owner,
                     char *err, size_t errlen);
    /* The name of API token HASH into NAME (NAMELEN bytes). 0, 1 no such token, -1 + ERR. */
    int (*token_get)(sp_store_t *s, const char *hash, char *name, size_t namelen, char *err,
                     size_t errlen);
    /* Every API token, oldest first. 0, or -1 + ERR. */
    int (*token_list)(sp_store_t *s, sp_store_token_cb cb, void *ctx, char *err, size_t errlen);
    /* Deletes the token whose ID is ID_OR_NAME and every token named ID_OR_NAME. 0 with
     * *REVOKED (0 when none matched), or -1 + ERR. */
    int (*token_revoke)(sp_store_t *s, const char *id_or_name, int64_t *revoked, char *err,
                        size_t errlen);
    /* Keeps session HASH of USER with its CSRF token until EXPIRES_MS, and drops expired
     * sessions. 0, or -1 + ERR. */
    int (*session_put)(sp_store_t *s, const char *hash, const char *user, const char *csrf,
                       int64_t expires_ms, char *err, size_t errlen);
    /* Session HASH, unexpired at NOW_MS: its user and CSRF token. 0, 1 no such session (or
     * expired), -1 + ERR. */
    int (*session_get)(sp_store_t *s, const char *hash, int64_t now_ms, char *user, size_t userlen,
                       char *csrf, size_t csrflen, char *err, size_t errlen);
    /* Ends session HASH. 0 (also when there was none), or -1 + ERR. */
    int (*session_delete)(sp_store_t *s, const char *hash, char *err, size_t errlen);
    /* Keeps uploaded tracking image ID (LEN bytes of DATA, of type MIME) for CAMPAIGN. 0, or
     * -1 + ERR. */
    int (*image_put)(sp_store_t *s, const char *id, const char *campaign, const char *mime,
                     const void *data, size_t len, char *err, size_t errlen);
    /* Image ID: 0 found (*DATA is malloc'd, the caller frees it), 1 absent, -1 + ERR. */
    int (*image_get)(sp_store_t *s, const char *id, char *mime, size_t mimelen, void **data,
                     size_t *len, char *err, size_t errlen);
    /* Settings shared by every server on this store (the signing key, the store's ID, each
     * journal's position). meta_get: KEY's value into VALUE (LEN bytes); 0, 1 no such key, -1 +
     * ERR. meta_put_new: sets KEY unless it has a value (kept: 0 all the same), 0 or -1 +
     * ERR. */
    int (*meta_get)(sp_store_t *s, const char *key, char *value, size_t len, char *err,
                    size_t errlen);
    int (*meta_put_new)(sp_store_t *s, const char *key, const char *value, char *err,
                        size_t errlen);
    /* What the last failed call met, with WHY (may be NULL) saying what happened when it is a
     * fault. A fault is for good: once a store is faulted (by any connection of this process
     * to it) every call answers FAULT, and its writes are refused. Cannot fail. */
    sp_store_failure_t (*failure)(sp_store_t *s, char *why, size_t len);
    /* The writer's upkeep between batches (sp_ingest calls it every SP_STORE_UPKEEP_MS): NULL
     * for a store that has none (SQLite). PostgreSQL moves the rows waiting in events_default
     * into their week's partition where it can be made now, and counts the rows that stay
     * there into *DEFAULT_ROWS (at most SP_STORE_DEFAULT_ROWS_MAX: the count stops there).
     * 0, or -1 + ERR. */
    int (*upkeep)(sp_store_t *s, int64_t *default_rows, char *err, size_t errlen);
    /* Looks for damage in the store's structure for at most BUDGET_MS: 0 when none was found,
     * with *COMPLETE false when the budget ran out first; 1 when the store is damaged (ERR
     * says where, and the store is faulted); -1 + ERR when the check could not run. */
    int (*check)(sp_store_t *s, int budget_ms, bool *complete, char *err, size_t errlen);
} sp_store_ops_t;

struct sp_store {
    const sp_store_ops_t *ops;
    sp_store_unknown_t unknown; /* the backends start with the defaults; sp_store_open sets the
                                 * configured ones */
    int64_t likely_forward_ms;  /* the wait of a likely forward (tally.h), likewise */
};

#endif
