/* journal: the open log. Request threads append each recorded request to it before they
 * answer; the writer indexes it into the store behind them. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_JOURNAL_H
#define SP_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Why a log in front of the store: an open must be on record before its image goes out,
 * and a store insert (indexes, counters, a transaction) costs several times what answering
 * does. An append is one copy into a shared mapping of the active segment, i.e. into the
 * page cache, which a crash of the process (kill -9) cannot take back, so the request
 * thread makes it itself and answers at once (journal.c: the mapping and its fallbacks).
 * The writer thread (ingest.c) reads the log behind the appends and indexes it into the
 * store in large transactions; the position it has indexed up to is committed in the same
 * transaction, so that after a restart it picks up exactly where the store ends. A burst
 * faster than the store can index is answered at full speed and indexed when the load
 * falls: the backlog is on disk, not in memory.
 *
 * With sync (--sync-full) an append is answered only after fdatasync(2) covers it: one
 * syncer thread syncs for every request that arrived meanwhile (group commit).
 *
 * Layout: DIR/ holds segments named by the position of their first byte (16 hex digits,
 * ".jnl"), a lock file and an ID. Positions count bytes from the journal's creation and
 * never repeat. A record is [u32 magic][u32 length][payload][u32 length]; a record cut
 * short by a crash mid-append (it was never answered) is dropped on open.
 */

#define SP_JOURNAL_RECORD_MAX (1u << 20) /* a payload's bytes */
#define SP_JOURNAL_ID_LEN     32

typedef struct sp_journal sp_journal_t;

/* With sync, called on the syncer thread once the record appended with WAITER is on disk. */
typedef void (*sp_journal_synced_fn)(void *ctx, void *waiter);

typedef struct sp_journal_options {
    const char *dir;             /* created if missing */
    size_t segment_bytes;        /* a new segment after this many (0: 64 MiB) */
    bool sync;                   /* fdatasync before an append counts as done */
    sp_journal_synced_fn synced; /* required with sync */
    void *synced_ctx;
} sp_journal_options_t;

/* Opens (or creates) the journal in OPT->dir and locks it against a second server. Drops a
 * torn last record. NULL + ERR on failure. */
sp_journal_t *sp_journal_open(const sp_journal_options_t *opt, char *err, size_t errlen);

/* Flushes (with sync), stops the syncer and closes. Waiters still pending are told. */
void sp_journal_close(sp_journal_t *j);

/* The journal's ID: "<hex>", stable across restarts (names its position in the store). */
const char *sp_journal_id(const sp_journal_t *j);

/* Appends one record. Thread-safe. Returns the position just past it, or -1 when the disk
 * refused it (errno says why; nothing was appended). With sync and a non-NULL WAITER,
 * synced(ctx, WAITER) follows once it is on disk; on -1 it never will. */
int64_t sp_journal_append(sp_journal_t *j, const void *payload, size_t len, void *waiter);

/* The oldest position still held, and the position past the last complete record. */
int64_t sp_journal_start(sp_journal_t *j);
int64_t sp_journal_end(sp_journal_t *j);

/* Records appended since the journal was opened. */
uint64_t sp_journal_appended(sp_journal_t *j);

/* Waits until the journal ends past POS, at most TIMEOUT_MS. True when it does. */
bool sp_journal_wait(sp_journal_t *j, int64_t pos, int timeout_ms);

/* Ends every sp_journal_wait now (at shutdown). */
void sp_journal_wake(sp_journal_t *j);

/* Reading, on one thread (the writer). A cursor reads the records from a position on. */
typedef struct sp_journal_cursor sp_journal_cursor_t;

/* A cursor at POS, which must be a record boundary in [start, end]. NULL + ERR when not. */
sp_journal_cursor_t *sp_journal_cursor_new(sp_journal_t *j, int64_t pos, char *err, size_t errlen);
void sp_journal_cursor_free(sp_journal_cursor_t *c);

/* The next record: 1 with *PAYLOAD (valid until the next call) and *LEN, and *END the
 * position past it; 0 when no complete record follows yet; -1 + ERR on a read error or a
 * damaged record (the cursor stays where it was). */
int sp_journal_next(sp_journal_cursor_t *c, const void **payload, size_t *len, int64_t *end,
                    char *err, size_t errlen);

/* Everything before POS is in the store: segments wholly before it are deleted. */
void sp_journal_release(sp_journal_t *j, int64_t pos);

#endif
