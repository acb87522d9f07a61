/* ingest: the writer thread, which indexes the journal into the store in batches. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_INGEST_H
#define SP_INGEST_H

#include <stdbool.h>

#include "enrich.h"
#include "event.h"
#include "journal.h"
#include "store.h"

typedef struct sp_ingest sp_ingest_t;

/* Commits that have failed this long (a full disk, a store held by another program or out of
 * reach) make the store count as stalled: what waits for it is answered without it (the opens
 * stay in the journal), and /healthz says 503. A shorter spell (a backup holding the lock a
 * moment) does not. */
#define SP_INGEST_STALL_MS 10000

/* Called on the writer thread after each commit with the events just stored. */
typedef void (*sp_ingest_commit_fn)(void *ctx, sp_event_t *const *evs, size_t n);

/* Called on the writer thread once the store holds what WAITER waited for. */
typedef void (*sp_ingest_indexed_fn)(void *ctx, void *waiter);

/* The bytes of opens read ahead, as they are held in memory (sp_event_held): a batch of
 * realistic opens (about 3.5 KB each) fits, so it is the batch's size that bounds them; opens
 * with headers as large as a request may bring (up to about 150 KB each, escaped in their JSON
 * and split) make smaller batches instead of gigabytes. */
#define SP_INGEST_AHEAD_BYTES ((size_t)64 << 20)

typedef struct sp_ingest_options {
    sp_journal_t *journal; /* borrowed: read from where the store says it ends */
    sp_store_t *store;     /* owned by the ingest from here on, used by the writer only */
    sp_enrich_t *enrich;   /* borrowed */
    size_t batch_max;      /* most events in one transaction (0: SP_CONFIG_BATCH_MAX) */
    /* Most bytes of opens the reader holds ahead of the writer (0: SP_INGEST_AHEAD_BYTES). */
    size_t ahead_bytes;
    sp_ingest_commit_fn committed; /* may be NULL */
    void *committed_ctx;
    sp_ingest_indexed_fn indexed; /* for sp_ingest_notify; may be NULL without it */
    void *indexed_ctx;
    /* Answers wait for the writer (--answer-after store): it runs at normal priority
     * instead of on idle time. */
    bool answers_wait;
    /* Before it writes anything, the writer checks the store for damage for this long
     * (0: not at all). */
    int check_ms;
} sp_ingest_options_t;

/* Starts the writer thread at the journal position the store holds. NULL + ERR on
 * failure. */
sp_ingest_t *sp_ingest_start(const sp_ingest_options_t *opt, char *err, size_t errlen);

/* The journal position the store holds everything before. */
int64_t sp_ingest_indexed(sp_ingest_t *in);

/* The rows waiting in PostgreSQL's events_default as the writer's upkeep last counted them (up
 * to SP_STORE_DEFAULT_ROWS_MAX), or -1 for a store without them (SQLite) or before a count.
 * Thread-safe. */
int64_t sp_ingest_default_rows(sp_ingest_t *in);

/* Journal bytes answered but not yet in the store (opens held in memory while the journal
 * cannot be written are part of it). Thread-safe. */
int64_t sp_ingest_backlog(sp_ingest_t *in);

/* Asks for indexed(ctx, WAITER) once the store holds everything before POS, or once
 * TIMEOUT_MS have passed (0: no limit; checked between commits, so it may run a commit's
 * time over), or once the store has stalled (SP_INGEST_STALL_MS). False when the store
 * already holds it, or is not to be waited for (the writer has stopped: sp_ingest_halted; or
 * the store has stalled); no call follows then. Thread-safe. */
bool sp_ingest_notify(sp_ingest_t *in, int64_t pos, int timeout_ms, void *waiter);

/* True once the writer has stopped for good because the store is faulted (damaged, or its
 * files cannot be written): nothing more is written to it, and the opens stay in the journal
 * for a restart on a repaired or restored store. WHY (may be NULL) says what happened.
 * Thread-safe. */
bool sp_ingest_halted(sp_ingest_t *in, char *why, size_t len);

/* True while the writer's commits fail for a reason that may pass (a full disk, a store
 * locked by another program or out of reach): *SINCE_MS gets when they began to (sp_now_ms),
 * WHY the last error. The opens wait in the journal. Thread-safe. */
bool sp_ingest_failing(sp_ingest_t *in, int64_t *since_ms, char *why, size_t len);

/* Indexes the rest of the journal (appends must have stopped), stops the writer and
 * closes its store. */
void sp_ingest_stop(sp_ingest_t *in);

#endif
