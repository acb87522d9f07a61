/* intern: user agents and header sets stored once and referenced by ID, and the writer's cache. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_INTERN_H
#define SP_INTERN_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

/*
 * An event's user agent (one of a few in real traffic) and its headers object are stored once
 * each, in tables of their own (agents, header_sets), and an event row holds their IDs. A
 * headers object differs from request to request only by the headers that carry the request's
 * own addresses, IDs and cookies (X-Forwarded-For, Forwarded, Cookie...: sp_intern_apart): those
 * values stay in the row (header_addrs) and the rest of the object, which repeats per client, is
 * the set that is interned. Rows written before interning keep their own user_agent and
 * headers; the stores read both through sp_intern_select_sql.
 */

/* A bounded cache of interned texts by their ID in one store, for the writer: SLOTS entries
 * (one slot per hash, the newest kept), texts longer than MAX_LEN never kept. Not thread-safe:
 * one writer owns it. */
typedef struct sp_intern sp_intern_t;

/* The writer's cache sizes: distinct agents are few, header sets one per client
 * configuration; at most SLOTS * TEXT_MAX bytes each (about 4.5 MB in all). */
#define SP_INTERN_AGENTS   256
#define SP_INTERN_SETS     2048
#define SP_INTERN_TEXT_MAX 2048

/* The store's meta key whose number grows by one in each transaction that deletes texts (the
 * last event naming them went: retention, forget, a campaign's deletion). A writer's cached IDs
 * hold only while it reads the number it filled them under: it empties its cache when the number
 * moved, and PostgreSQL's writer checks it again, under a lock that a deletion waits for, just
 * before each commit (docs/ARCHITECTURE.md, Storage). */
#define SP_INTERN_GEN_KEY "intern_gen"

/* Aborts when out of memory. */
sp_intern_t *sp_intern_new(size_t slots, size_t max_len);
void sp_intern_free(sp_intern_t *c);

/* A text as a cache looks it up: its bytes, how many, and their hash; and its token, 0 or a
 * number that no other text's key carries (sp_intern_seen_token). */
typedef struct sp_intern_key {
    const char *text;
    size_t len;
    uint64_t hash, token;
} sp_intern_key_t;

/* TEXT's key. */
sp_intern_key_t sp_intern_key(const char *text);

/* KEY's ID when the cache holds its text, else 0. A slot that holds the text under another
 * token takes KEY's. */
int64_t sp_intern_find(sp_intern_t *c, const sp_intern_key_t *key);

/* The texts the ingest's reader saw last, each with a token, so that the writer's cache knows a
 * text it holds by the token rather than by comparing the texts: the reader compares each with
 * the one it saw last of its hash while the text is fresh in its caches, where the writer's
 * comparison, a batch later, read it back from memory. Not thread-safe: one reader owns it. */
typedef struct sp_intern_seen sp_intern_seen_t;

/* Aborts when out of memory. */
sp_intern_seen_t *sp_intern_seen_new(void);
void sp_intern_seen_free(sp_intern_seen_t *seen);

/* TEXT's token (LEN bytes, their hash HASH): the token of the text last seen in its slot when it
 * is the same text, else a new one, never handed out before in this process. 0 (no token) for a
 * text longer than SP_INTERN_TEXT_MAX. */
uint64_t sp_intern_seen_token(sp_intern_seen_t *seen, const char *text, size_t len, uint64_t hash);

/* Remembers KEY's text as ID, in place of what its slot held. */
void sp_intern_keep(sp_intern_t *c, const sp_intern_key_t *key, int64_t id);

/* Forgets every entry: after a rolled back transaction, whose IDs may not exist. */
void sp_intern_clear(sp_intern_t *c);

/* How many entries it holds (at most its slots). */
size_t sp_intern_count(const sp_intern_t *c);

/* True when header NAME (LEN bytes, any case) is kept in the row, apart from the set. */
int sp_intern_apart(const char *name, size_t len);

/* Splits a headers object JSON (as sp_event_headers_json writes it) into *SET, the object with
 * each apart header's value replaced by @, and *APART, those values' JSON strings one after the
 * other: malloc'd, the caller frees both. Returns 0, or -1 (nothing allocated) when JSON is not
 * an object of strings, which is then stored whole. sp_intern_join makes JSON back, byte for
 * byte. The stores split an event's headers through sp_intern_split_event, the same split. */
int sp_intern_split(const char *json, char **set, char **apart);

/* EV's row's headers split as sp_intern_split splits them into *SET and *APART (borrowed from
 * EV until its row is forgotten or it is freed), made once and kept in EV: the ingest's reader
 * makes it as it makes the row, so that the writer, the slower of the two threads, does not.
 * Returns 0, or -1 (*SET and *APART NULL) when the headers are stored whole. SET and APART may be
 * NULL. Aborts when out of memory. */
int sp_intern_split_event(sp_event_t *ev, const char **set, const char **apart);

/* EV's row's user agent as *AGENT (its text NULL when the row has none) and the text its header
 * set is interned as, *SET: the split set (sp_intern_split_event), its apart values into *APART,
 * or the whole headers when they are not split (*APART NULL). The keys are made once and kept in
 * EV with the split: the ingest's reader makes them. AGENT, SET and APART may be NULL. Aborts
 * when out of memory. */
void sp_intern_event_keys(sp_event_t *ev, sp_intern_key_t *agent, sp_intern_key_t *set,
                          const char **apart);

/* Makes EV's keys (sp_intern_event_keys) with their tokens from SEEN: the ingest's reader's. */
void sp_intern_event_tokens(sp_event_t *ev, sp_intern_seen_t *seen);

/* SET with each @ outside its strings replaced by the next JSON string of APART, into *BUF
 * (*CAP bytes, grown with realloc as needed; aborts when out of memory). Returns *BUF, or NULL
 * when APART runs out or is not a list of JSON strings. */
char *sp_intern_join(const char *set, const char *apart, char **buf, size_t *cap);

/* The events' columns to SELECT (LEN bytes into COLS): the fields of event_fields.h, the ID
 * first, user_agent and headers read through their IDs when interned, then one more column:
 * the apart headers' values (NULL for a row stored before interning). Aborts when it does not
 * fit. */
void sp_intern_select_sql(char *cols, size_t len);

/* The column after the fields in sp_intern_select_sql's list. */
#define SP_INTERN_APART_COLUMN SP_EVENT_N_FIELDS

#endif
