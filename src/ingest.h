/* ingest: the queue of recorded requests and the writer thread that commits them in batches. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_INGEST_H
#define SP_INGEST_H

#include "enrich.h"
#include "event.h"
#include "store.h"

typedef struct sp_ingest sp_ingest_t;

/* Called on the writer thread for each event once its batch is committed (or has failed
 * for good: EV->outcome says which). The callback must not keep EV: it is freed after. */
typedef void (*sp_ingest_done_fn)(void *ctx, sp_event_t *ev);

/* Called on the writer thread after each commit with the events just stored. */
typedef void (*sp_ingest_commit_fn)(void *ctx, sp_event_t *const *evs, size_t n);

typedef struct sp_ingest_options {
    sp_store_t *store;   /* owned by the ingest from here on, used by the writer only */
    sp_enrich_t *enrich; /* borrowed */
    size_t batch_max;    /* most events in one transaction */
    sp_ingest_done_fn done;
    void *done_ctx;
    sp_ingest_commit_fn committed; /* may be NULL */
    void *committed_ctx;
} sp_ingest_options_t;

/* Starts the writer thread. NULL + ERR on failure. */
sp_ingest_t *sp_ingest_start(const sp_ingest_options_t *opt, char *err, size_t errlen);

/* Queues EV (ownership passes to the ingest). Its done callback runs after the commit
 * that holds it. Thread-safe. */
void sp_ingest_submit(sp_ingest_t *in, sp_event_t *ev);

/* Commits everything queued, stops the writer and closes its store. */
void sp_ingest_stop(sp_ingest_t *in);

#endif
