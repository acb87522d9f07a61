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
 * ".jnl"), a lock file, the journal's ID and the ID of the store it is indexed into.
 * Positions count bytes from the journal's creation and never repeat. A record is
 * [u32 magic "SPJ3"][u32 length][payload][u32 CRC32C of length and payload, XORed with a
 * hash of the record's position], so that a record read anywhere but where it was written
 * does not check (a released segment's file is reused for a new one: journal.c, recycled
 * segments); records of the earlier formats ("SPJ2", the checksum alone; "SPJ1", the
 * length again in place of the checksum) are still read. A
 * record cut short by a crash mid-append (it was never answered) is dropped on open; a
 * damaged one (its checksum does not match) is skipped by the reader, which logs it and
 * counts it (sp_journal_stats), and goes on at the next whole record.
 *
 * When the disk refuses a record (full, over quota, an I/O error, a file made immutable or
 * read-only), it is kept in memory, in a spill of at most spill_max bytes, and a thread of
 * the journal writes the spill out, oldest first, as soon as the disk takes records again
 * (retrying with back-off; a file that refuses writes for another reason than space is
 * left for a new segment). While records are held, later ones queue behind them, so the
 * journal's order is the order of the appends. Only when the spill is full is a record
 * refused, and counted. The journal logs each change of state (records held, written
 * again, dropped).
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
    size_t spill_max; /* most bytes held in memory while the disk refuses records (0: none) */
} sp_journal_options_t;

/* Opens (or creates) the journal in OPT->dir and locks it against a second server. Drops a
 * torn last record. A last segment that cannot be written (immutable, read-only) is left
 * as it is and a new one started after it; when none can be, the journal opens holding
 * its records in memory. NULL + ERR on failure. */
sp_journal_t *sp_journal_open(const sp_journal_options_t *opt, char *err, size_t errlen);

/* Flushes (with sync), stops the syncer and closes. Waiters still pending are told. Records
 * still held in memory are written if the disk takes them now, else lost (logged). */
void sp_journal_close(sp_journal_t *j);

/* The journal's ID: "<hex>", stable across restarts (names its position in the store). */
const char *sp_journal_id(const sp_journal_t *j);

/* Appends one record. Thread-safe. Returns the position just past it, or -1 when it was
 * refused (errno says why: the disk refused it and the spill is full, or it is too large;
 * nothing was appended). A record the disk refuses is held in memory: its position is the
 * one it will have, past sp_journal_end until it is written. With sync and a non-NULL
 * WAITER, synced(ctx, WAITER) follows once it is on disk, or at once when it is held in
 * memory (no durable record can be promised then); on -1 it never will. */
int64_t sp_journal_append(sp_journal_t *j, const void *payload, size_t len, void *waiter);

/* The oldest position still held, and the position past the last complete record written
 * (what readers see). */
int64_t sp_journal_start(sp_journal_t *j);
int64_t sp_journal_end(sp_journal_t *j);

/* The position past the last record appended, including those held in memory. */
int64_t sp_journal_accepted_end(sp_journal_t *j);

/* Writes the records held in memory, retrying for up to TIMEOUT_MS while the disk refuses
 * them. Returns how many are still held. */
size_t sp_journal_flush(sp_journal_t *j, int timeout_ms);

typedef struct sp_journal_stats {
    int error;           /* the errno of the write the disk last refused; 0 when it takes them */
    int64_t error_since; /* sp_now_ms() when it began refusing them, 0 */
    uint64_t held_bytes; /* records held in memory, as they will be written */
    uint64_t held;       /* how many */
    uint64_t held_max;   /* spill_max */
    uint64_t spilled;    /* records that went through memory since the journal was opened */
    uint64_t dropped;    /* records refused because the spill was full */
    uint64_t damaged;    /* damaged stretches skipped by readers, or found on open */
    uint64_t recycled;   /* segments started in a released one's file (journal.c) */
} sp_journal_stats_t;

/* The journal's state, for health checks and metrics. Thread-safe. */
void sp_journal_stats(sp_journal_t *j, sp_journal_stats_t *st);

/* The ID of the store this journal is indexed into, as recorded by sp_journal_bind; ""
 * when none is. */
const char *sp_journal_store_id(const sp_journal_t *j);

/* Records STORE_ID (1-64 letters and digits) as the store this journal is indexed into
 * (DIR/store, written whole and synced). */
int sp_journal_bind(sp_journal_t *j, const char *store_id, char *err, size_t errlen);

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
 * position past it; 0 when no complete record follows yet; -1 + ERR on a read error (the
 * cursor stays where it was). Damaged bytes are skipped (logged and counted). */
int sp_journal_next(sp_journal_cursor_t *c, const void **payload, size_t *len, int64_t *end,
                    char *err, size_t errlen);

/* Everything before POS is in the store: segments wholly before it are deleted. */
void sp_journal_release(sp_journal_t *j, int64_t pos);

#endif
