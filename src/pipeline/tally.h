/* tally: what each stored open and click adds to the counters, decided once for every store. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_TALLY_H
#define SP_TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "classify.h"
#include "config.h"
#include "event.h"

/*
 * The counting rule, in one place above the store's backends (as GoAccess keeps what each log
 * line adds to each metric in one table above its storage). What one stored event adds:
 *
 *   counter                  kept per              an event adds
 *   by class (human...self)  campaign, recipient   1 to its class, for an open
 *   views (total_views)      campaign, recipient   1 for a counted open
 *   clicks                   campaign, recipient   1 for a counted click
 *   last_view_at             campaign              its time, for a counted open or click (latest)
 *   first_at, last_at        recipient             its time, for a counted open (earliest, latest)
 *   unique_views             campaign              1 for a counted open whose recipient (without
 *                                                  one: whose client) had none before
 *
 * Counted means a person's: human or proxy (sp_tally_counted). Machine and self events are
 * kept and shown, and counted by class only: spypixel counts only people's opens. Whether a
 * recipient or a client had a counted open before is the store's to answer; the tally turns
 * the answer into unique views (sp_tally_recipient_seen, sp_tally_client_seen).
 *
 * Prints and forwards are events of their own, counted by neither views nor clicks. An open of
 * the tracking block gets its engagement from how long its client kept the slow image (Litmus
 * Email Analytics' steps): glanced under 2 s, skimmed 2 to 8 s, read 8 s or more; unmeasured
 * when it was not a person's own client that held it (sp_tally_engagement).
 */

#define SP_TALLY_SKIMMED_MS 2000 /* from here an open is skimmed */
#define SP_TALLY_READ_MS    8000 /* from here it is read */

/* The engagement of an open of class KLASS whose read time is known as HOW, READ_MS long:
 * "glanced", "skimmed", "read", "unmeasured" (a class other than human, an image answered at
 * once, a time cut short under SP_TALLY_READ_MS), or NULL (no block, or its read is still to
 * come). */
const char *sp_tally_engagement(int klass, sp_event_engage_t how, int64_t read_ms);

/* Whether an event of KIND and class KLASS counts in a campaign's engagement: an open of any
 * class but self (a proxy's and a machine's are its unmeasured ones), a print or a forward only
 * when counted (a person's: a machine that fetches every image is no print). */
bool sp_tally_engagement_counted(int kind, int klass);

/* What the stores' fold of a read into its open binds: the read time, and the engagement of a
 * human open (the class HUMAN) and of any other. Strings are static. */
typedef struct sp_tally_read {
    int64_t read_ms;
    int human;
    const char *if_human, *otherwise;
} sp_tally_read_t;
void sp_tally_read_params(const sp_event_t *read, sp_tally_read_t *out);

/* The store folded READ into its open, stored as ID with class KLASS: READ now stands for it
 * (its id, class and engagement), for the live streams and webhooks. */
void sp_tally_read_folded(sp_event_t *read, int64_t id, int klass);

/* Whether an event of class KLASS counts (human or proxy). */
bool sp_tally_counted(int klass);

/* The counted opens among opens BY_CLASS (a recipient's, read back from a store). */
int64_t sp_tally_views(const int64_t by_class[SP_CLASS_COUNT]);

/* The same in SQL, of the class columns of the row named ROW ("" or "r."). */
#define SP_TALLY_VIEWS_SQL(row) "(" row "human + " row "proxy)"

/* The rule again in SQL, of the events table's columns, for the report's rollups (rollup.h):
 * a counted event, an open, a click, and whom an event counts unique by (its recipient, else
 * its client, as sp_tally_client_key makes it). */
#define SP_TALLY_COUNTED_SQL "class IN (0, 1)"
#define SP_TALLY_OPEN_SQL    "kind = 0"
#define SP_TALLY_CLICK_SQL   "kind = 1"
#define SP_TALLY_WHO_SQL     "CASE WHEN recipient <> '' THEN recipient ELSE 'v:' || visitor END"

/* What a counted open tells of its reader, in a breakdown by COL (browser, os, device, country,
 * city): a proxy's open describes the proxy, not the reader, so it counts under its proxy's
 * name (its via, else "proxy"). */
#define SP_TALLY_READER_SQL(col)                                                                   \
    "CASE WHEN class = 1 THEN CASE WHEN via <> '' THEN via ELSE 'proxy' END ELSE " col " END"

#define SP_TALLY_CLIENT_MAX 64 /* a client key's bytes, NUL included */

/* The client an open without a recipient is counted unique by: its visitor ID (the pixel
 * handler always sets one: the visitor cookie, else a keyed hash of address and agent). */
void sp_tally_client_key(const sp_event_t *ev, char *buf, size_t len);

/* What a batch adds to one campaign. */
typedef struct sp_tally_campaign {
    const char *id; /* borrowed from the batch's events, as every string here */
    int64_t views, unique, by_class[SP_CLASS_COUNT], clicks;
    int64_t last_view_at; /* 0: no counted event */
} sp_tally_campaign_t;

/*
 * A likely forward: a human open of a recipient by a client (browser and OS family) and from a
 * network (the /24 of an IPv4 address, the /48 of an IPv6 one) both other than those of the
 * recipient's first human open, at least SP_TALLY_FORWARD_AFTER_MS after it. The writer stores
 * an event of kind forward with rule SP_TALLY_FORWARD_RULE besides the open, at most once per
 * recipient and new client, and for at most SP_TALLY_FORWARD_CLIENTS_MAX clients.
 *
 * The network is the address's prefix, not a GeoIP country or ASN: it needs no database, so
 * the rule holds the same on every server, and the /24 and /48 are the smallest prefixes
 * announced between networks (the longest that BGP peers commonly accept) and what an ISP gives
 * a site (RFC 6177), so one home or office keeps its prefix. The wait keeps out the devices of
 * one reader that show the message together as it arrives (a phone and a desktop, one on Wi-Fi,
 * one on a mobile network): a forward is read, sent and opened again, which takes longer.
 */
#define SP_TALLY_FORWARD_RULE        "likely-forward:new-client-new-network"
#define SP_TALLY_FORWARD_AFTER_MS    (SP_CONFIG_LIKELY_FORWARD_AFTER_S * 1000)
#define SP_TALLY_FORWARD_CLIENTS_MAX 8 /* more new clients: a list or a shared mailbox */
#define SP_TALLY_READER_MAX          (2 * SP_FIELD_MAX + 2) /* a client key's bytes, NUL included */
#define SP_TALLY_NETWORK_MAX         (SP_NET_ADDR_MAX + 4)
#define SP_TALLY_FORWARDED_MAX       (SP_TALLY_FORWARD_CLIENTS_MAX * SP_TALLY_READER_MAX)

/* The client ("browser/os", families) and network ("203.0.113.0/24") of EV into CLIENT and
 * NETWORK (SP_TALLY_READER_MAX and SP_TALLY_NETWORK_MAX bytes). */
void sp_tally_reader(const sp_event_t *ev, char *client, char *network);

/* What a batch adds to one recipient of one campaign. */
/* A hash of CAMPAIGN's RECIPIENT (FNV-1a of both, the campaign's NUL between), never 0: the
 * SQLite writer's hint of where the recipient's row is (and of the people its rollups name). */
uint64_t sp_tally_recipient_tag(const char *campaign, const char *recipient);

typedef struct sp_tally_recipient {
    size_t campaign; /* in campaigns */
    const char *recipient;
    uint64_t tag; /* sp_tally_recipient_tag's, made as the tally reads the recipient first */
    int64_t views, by_class[SP_CLASS_COUNT], clicks;
    int64_t first_at, last_at; /* of its counted opens; 0: none */
    sp_event_t *first;         /* its earliest counted open (NULL: none), the first view if new */
    /* Its human opens in the batch, by time (in the tally's humans); the reader of the first
     * (for the row's first_client, first_network, first_human_at: "", "", 0 when none). */
    size_t humans, n_humans;
    /* All its events in the batch, by time (in the tally's member_ids). */
    size_t members, n_members;
    char client[SP_TALLY_READER_MAX], network[SP_TALLY_NETWORK_MAX];
    int64_t human_at;
    /* Set by sp_tally_recipient_reader when the batch made likely forwards: the clients that
     * made the recipient's likely forwards, one a line, for the row's forward_clients. */
    char *forwarded;
} sp_tally_recipient_t;

/* A client of one campaign with counted opens in the batch, and none with a recipient. */
typedef struct sp_tally_client {
    size_t campaign;
    char key[SP_TALLY_CLIENT_MAX];
    sp_event_t *first; /* its earliest counted open */
} sp_tally_client_t;

/* No recipient (sp_tally_t's recipient_of). */
#define SP_TALLY_NONE UINT32_MAX

/* A batch's counts, each list sorted by its keys (campaign ID, then recipient or client key),
 * so that every writer locks rows in one order. */
typedef struct sp_tally {
    sp_tally_campaign_t *campaigns;
    size_t n_campaigns;
    sp_tally_recipient_t *recipients;
    size_t n_recipients;
    /* For each of the counted events, in their order, the index of its recipient in recipients
     * (SP_TALLY_NONE: it has none), where a row's recipient is found without its text. */
    uint32_t *recipient_of;
    size_t n_counted; /* the events counted */
    sp_tally_client_t *clients;
    size_t n_clients;
    sp_event_t **humans; /* the recipients' human opens (sp_tally_recipient_t.humans) */
    size_t n_humans;
    /* The IDs of the recipients' events (sp_tally_recipient_t.members), as they were when
     * counted: the writer lists them in each recipient's row without reading the events. */
    int64_t *member_ids;
    size_t n_members;
    /* The opens that are likely forwards (sp_tally_recipient_reader): for each, the store
     * stores a copy of kind forward with rule SP_TALLY_FORWARD_RULE (sp_tally_forward_row). */
    sp_event_t **forwards;
    size_t n_forwards;
    int64_t forward_after_ms; /* SP_TALLY_FORWARD_AFTER_MS unless the store sets another */
} sp_tally_t;

/* Counts the N events EVS that a store is storing into T (emptied first), setting no event's
 * first_view yet. The earliest counted open of a recipient or client goes first (by time, then
 * in batch order). Aborts when out of memory. */
void sp_tally_count(sp_tally_t *t, sp_event_t *const *evs, size_t n);

/* The store found that recipient I (of T's recipients) now has VIEWS counted opens, this
 * batch's included: when those are all this batch's, it is a unique view of its campaign, and
 * its first open a first view. */
void sp_tally_recipient_seen(sp_tally_t *t, size_t i, int64_t views);

/* The store read back recipient I's row: the reader of its first human open (CLIENT and
 * NETWORK at AT; "", "" and 0: none) and the clients of its likely forwards so far
 * (FORWARDED, one a line; "" or NULL: none). Appends the batch's likely forwards to T's
 * forwards, and sets the recipient's forwarded when there are any. */
void sp_tally_recipient_reader(sp_tally_t *t, size_t i, const char *client, const char *network,
                               int64_t at, const char *forwarded);

/* The stored form of the likely forward made of open EV into ROW (its strings borrowed from
 * EV). */
void sp_tally_forward_row(sp_event_t *ev, sp_event_row_t *row);

/* The store found client I (of T's clients) new to its campaign (NEW) or not. */
void sp_tally_client_seen(sp_tally_t *t, size_t i, bool is_new);

/* Frees T's lists; T may then be counted again. */
void sp_tally_free(sp_tally_t *t);

/* Into BUF: the query of a campaign's links by destination (made, counted clicks, unique
 * clickers, first and last counted click), the campaign its first parameter, written with
 * PARAM ('?' for SQLite, '$' for PostgreSQL). Both stores run it. */
void sp_tally_links_sql(char *buf, size_t len, char param);

#endif
