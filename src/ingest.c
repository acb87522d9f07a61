/* ingest: the writer thread, which indexes the journal into the store in batches. */
/* SPDX-License-Identifier: MIT */
#include "ingest.h"

#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "log.h"
#include "metrics.h"

/* A failing commit (disk full, database locked by another program) is retried this many
 * times, then each event alone. When every one fails the store is down: the writer waits
 * and tries again from the same place, since the journal still holds them all. */
#define COMMIT_TRIES 5

struct sp_ingest {
    sp_ingest_options_t opt;
    pthread_t writer;
    char mark_key[64];
    pthread_mutex_t lock;
    atomic_int_fast64_t indexed; /* the journal position the store holds up to */
    atomic_bool stopping;
    struct waiter {
        int64_t pos;
        int64_t deadline_ms; /* sp_now_ms() after which it is told anyway; 0: none */
        void *waiter;
    } * waiters; /* under lock */
    size_t n_waiters, cap_waiters;
    pthread_t expiry; /* tells waiters whose time is up, whatever the writer is doing */
    pthread_cond_t expiry_wake;
    bool expiry_started;
    struct unkept { /* opens of unknown campaigns not kept since the last log line about them */
        uint64_t refused, dropped;
        int64_t logged_ms;
    } unkept;
};

/* The store's key for the position of journal ID: "journal:<ID>". */
static void mark_key(const char *journal_id, char *buf, size_t len)
{
    snprintf(buf, len, "journal:%s", journal_id);
}

int64_t sp_ingest_indexed(sp_ingest_t *in)
{
    return atomic_load(&in->indexed);
}

bool sp_ingest_notify(sp_ingest_t *in, int64_t pos, int timeout_ms, void *waiter)
{
    pthread_mutex_lock(&in->lock);
    bool pending = atomic_load(&in->indexed) < pos;
    if (pending) {
        if (in->n_waiters == in->cap_waiters) {
            in->cap_waiters = in->cap_waiters ? 2 * in->cap_waiters : 256;
            in->waiters = realloc(in->waiters, in->cap_waiters * sizeof(*in->waiters));
            if (!in->waiters)
                abort();
        }
        int64_t deadline = timeout_ms > 0 ? sp_now_ms() + timeout_ms : 0;
        in->waiters[in->n_waiters++] = (struct waiter){pos, deadline, waiter};
        if (deadline)
            pthread_cond_signal(&in->expiry_wake);
    }
    pthread_mutex_unlock(&in->lock);
    return pending;
}

/* Tells the waiters that POS covers or whose time is up (all of them with ALL). Under the
 * lock. */
static void tell_waiters(sp_ingest_t *in, int64_t pos, bool all)
{
    int64_t now = in->n_waiters ? sp_now_ms() : 0;
    size_t kept = 0;
    for (size_t i = 0; i < in->n_waiters; i++) {
        const struct waiter *w = &in->waiters[i];
        if (all || w->pos <= pos || (w->deadline_ms && now >= w->deadline_ms))
            in->opt.indexed(in->opt.indexed_ctx, w->waiter);
        else
            in->waiters[kept++] = *w;
    }
    in->n_waiters = kept;
}

/* Publishes POS and tells the waiters it covers (all of them with ALL). */
static void set_indexed(sp_ingest_t *in, int64_t pos, bool all)
{
    pthread_mutex_lock(&in->lock);
    atomic_store(&in->indexed, pos);
    tell_waiters(in, pos, all);
    pthread_mutex_unlock(&in->lock);
}

/* The waiters whose time is up are told from here: the writer may be stuck for seconds
 * in a commit (a store locked by another program, a PostgreSQL server gone), and a parked
 * read must still get its answer about on time. */
static void *expiry_main(void *arg)
{
    sp_ingest_t *in = arg;
    pthread_mutex_lock(&in->lock);
    while (!atomic_load(&in->stopping)) {
        bool timed = false;
        for (size_t i = 0; i < in->n_waiters && !timed; i++)
            timed = 0 != in->waiters[i].deadline_ms;
        if (timed) {
            struct timespec deadline;
            sp_deadline(&deadline, 50);
            pthread_cond_timedwait(&in->expiry_wake, &in->lock, &deadline);
        } else {
            pthread_cond_wait(&in->expiry_wake, &in->lock);
        }
        if (in->n_waiters)
            tell_waiters(in, atomic_load(&in->indexed), false);
    }
    pthread_mutex_unlock(&in->lock);
    return NULL;
}

static int commit(sp_ingest_t *in, sp_event_t **evs, size_t n, int64_t mark, int tries)
{
    char err[512], value[24];
    snprintf(value, sizeof(value), "%" PRId64, mark);
    sp_store_mark_t m = {in->mark_key, value};
    for (int attempt = 0; attempt < tries; attempt++) {
        if (0 == in->opt.store->ops->write_batch(in->opt.store, evs, n, &m, err, sizeof(err)))
            return 0;
        sp_metric_inc(store_errors);
        sp_log_error("commit failed", "events=%zu attempt=%d error=\"%s\"", n, attempt + 1, err);
        struct timespec pause = {0, 50000000L << attempt};
        nanosleep(&pause, NULL);
    }
    return -1;
}

/* Opens of campaigns that do not exist and not kept (beyond the store's limits) are counted
 * at once and logged at most once a minute (ALL: now), so that a scanner spraying IDs cannot
 * flood the log either. */
static void log_unkept(sp_ingest_t *in, bool all)
{
    const sp_store_unknown_t *lim = &in->opt.store->unknown;
    int64_t now = sp_now_ms();
    if ((in->unkept.refused || in->unkept.dropped) &&
        (all || now - in->unkept.logged_ms >= 60000)) {
        sp_log_warn("opens of campaigns that do not exist were not kept (beyond the limits)",
                    "refused=%" PRIu64 " dropped=%" PRIu64 " max_campaigns=%" PRId64
                    " max_opens=%" PRId64,
                    in->unkept.refused, in->unkept.dropped, lim->max_campaigns, lim->max_opens);
        in->unkept = (struct unkept){.logged_ms = now};
    }
}

/* Opens of campaigns that do not exist: each new ID is logged once. */
static void note_unknown(sp_ingest_t *in, const sp_event_t *ev)
{
    char quoted[2 * SP_ID_MAX + 8];
    if (SP_OUTCOME_UNKNOWN_REFUSED == ev->outcome) {
        sp_metric_inc(opens_unknown_refused);
        in->unkept.refused++;
    } else if (SP_OUTCOME_UNKNOWN_CAMPAIGN == ev->outcome) {
        sp_metric_inc(opens_unknown_campaign);
        sp_metric_add(opens_unknown_dropped, ev->dropped);
        in->unkept.dropped += ev->dropped;
        if (ev->campaign_new)
            sp_log_warn("opens of a campaign that does not exist are kept apart until it is "
                        "created",
                        "campaign=%s", sp_log_quote(ev->campaign, quoted, sizeof(quoted)));
    } else if (ev->campaign_new) {
        sp_metric_inc(campaigns_auto_created);
        sp_log_info("campaign created by its first open", "campaign=%s",
                    sp_log_quote(ev->campaign, quoted, sizeof(quoted)));
    }
}

static void finish(sp_ingest_t *in, sp_event_t **evs, size_t n)
{
    if (in->opt.committed)
        in->opt.committed(in->opt.committed_ctx, evs, n);
    for (size_t i = 0; i < n; i++) {
        sp_event_t *ev = evs[i];
        switch (ev->outcome) {
        case SP_OUTCOME_STORED:
            sp_metric_inc(opens_recorded);
            if (ev->klass >= 0 && ev->klass < 4)
                atomic_fetch_add(&sp_metrics.class_events[ev->klass], 1);
            if (ev->adopt_row > 0)
                sp_metric_inc(opens_adopted);
            if (ev->campaign_new)
                note_unknown(in, ev);
            break;
        case SP_OUTCOME_UNKNOWN_CAMPAIGN:
        case SP_OUTCOME_UNKNOWN_REFUSED:
            note_unknown(in, ev);
            break;
        case SP_OUTCOME_ADOPTED_ALREADY:
            break;
        default:
            sp_metric_inc(opens_failed);
        }
        sp_event_free(ev);
    }
    log_unkept(in, false);
}

/* Reads up to CAP events from the cursor into BATCH. *END is the position past the last
 * record read (undecodable ones are logged and skipped). -1 on a read error. */
static int read_batch(sp_ingest_t *in, sp_journal_cursor_t *cur, sp_event_t **batch, size_t cap,
                      size_t *n, int64_t *end)
{
    char err[256];
    *n = 0;
    while (*n < cap) {
        const void *payload;
        size_t len;
        int64_t next;
        int rc = sp_journal_next(cur, &payload, &len, &next, err, sizeof(err));
        if (0 == rc)
            return 0;
        if (rc < 0) {
            sp_log_error("cannot read the journal", "error=\"%s\"", err);
            return -1;
        }
        sp_event_t *ev = sp_event_decode(payload, len);
        *end = next;
        if (!ev) {
            sp_metric_inc(opens_failed);
            sp_log_error("journal record not understood, skipped", "position=%" PRId64, next);
            continue;
        }
        batch[(*n)++] = ev;
        ev->journal_end = next;
    }
    return 0;
}

/* Stores N events read up to END. 0 when done (some may have failed alone), -1 when the
 * store took none of them: the caller keeps them in the journal and tries again. */
static int store_batch(sp_ingest_t *in, sp_event_t **batch, size_t n, int64_t end)
{
    for (size_t i = 0; i < n; i++)
        sp_enrich_event(in->opt.enrich, batch[i]);
    bool stopping = atomic_load(&in->stopping);
    if (0 == commit(in, batch, n, end, stopping ? 1 : COMMIT_TRIES)) {
        sp_metric_inc(store_batches);
        sp_metric_add(store_batch_events, n);
        return 0;
    }
    if (n <= 1)
        return -1;
    /* One event may be what the store refuses: save the others. */
    size_t stored = 0;
    for (size_t i = 0; i < n; i++) {
        if (0 == commit(in, &batch[i], 1, batch[i]->journal_end, 1))
            stored++;
        else
            batch[i]->outcome = SP_OUTCOME_FAILED;
    }
    return stored ? 0 : -1;
}

static void *writer_main(void *arg)
{
    sp_ingest_t *in = arg;
    /* Nice 19: indexing runs on what the request threads leave (a weight of 15 against
     * their 1024), and a request thread that wakes takes the core from it at once. A burst
     * is answered at full speed and indexed as it eases, the backlog on disk; on a core
     * that stays busy the writer still gets its small share, so the index never stops.
     * (SCHED_IDLE answered as fast but can starve for good, and a request thread that
     * waited on a lock it held, such as a malloc arena's, waited as long: a keep-alive
     * bench once left 128 answers hanging.) When answers wait for the store, the writer
     * is on their path: SCHED_BATCH at nice 0, as the request threads (see sp_http_start). */
    struct sched_param param = {0};
    if (in->opt.answers_wait)
        pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    else
        setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
    size_t cap = in->opt.batch_max;
    sp_event_t **batch = calloc(cap, sizeof(*batch));
    if (!batch)
        abort();
    char err[256];
    int64_t pos = atomic_load(&in->indexed);
    sp_journal_cursor_t *cur = NULL;

    for (;;) {
        if (!cur && !(cur = sp_journal_cursor_new(in->opt.journal, pos, err, sizeof(err)))) {
            sp_log_error("cannot read the journal", "error=\"%s\"", err);
            if (atomic_load(&in->stopping))
                break;
            sleep(1);
            continue;
        }
        size_t n = 0;
        int64_t end = pos;
        int rc = read_batch(in, cur, batch, cap, &n, &end);
        if (0 == n && end == pos) {
            if (rc < 0) { /* a damaged record: nothing can be read past it */
                sp_journal_cursor_free(cur);
                cur = NULL;
                if (atomic_load(&in->stopping))
                    break;
                sleep(1);
            } else if (atomic_load(&in->stopping)) {
                break; /* the appends have stopped: everything is in */
            } else {
                log_unkept(in, false);
                sp_journal_wait(in->opt.journal, pos, 200);
            }
            continue;
        }
        if (0 != (n ? store_batch(in, batch, n, end) : commit(in, NULL, 0, end, 1))) {
            /* The store is down: these stay in the journal, read again from POS. */
            for (size_t i = 0; i < n; i++)
                sp_event_free(batch[i]);
            sp_journal_cursor_free(cur);
            cur = NULL;
            if (atomic_load(&in->stopping)) {
                sp_log_error("the store is down: opens stay in the journal for the next start",
                             "bytes=%" PRId64, sp_journal_end(in->opt.journal) - pos);
                break;
            }
            sleep(1);
            continue;
        }
        finish(in, batch, n);
        pos = end;
        set_indexed(in, pos, false);
        sp_journal_release(in->opt.journal, pos);
    }
    sp_journal_cursor_free(cur);
    free(batch);
    log_unkept(in, true);
    /* Anyone still waiting (the store went down at shutdown) is answered: the journal keeps
     * their opens for the next start. */
    set_indexed(in, pos, true);
    return NULL;
}

sp_ingest_t *sp_ingest_start(const sp_ingest_options_t *opt, char *err, size_t errlen)
{
    sp_ingest_t *in = calloc(1, sizeof(*in));
    if (!in)
        abort();
    in->opt = *opt;
    if (0 == in->opt.batch_max)
        in->opt.batch_max = 4096;
    mark_key(sp_journal_id(opt->journal), in->mark_key, sizeof(in->mark_key));

    /* Where the store ends in this journal: nothing yet means from its start. */
    char value[32], why[256];
    int64_t start = sp_journal_start(opt->journal), end = sp_journal_end(opt->journal);
    int64_t pos = start;
    int rc =
        opt->store->ops->meta_get(opt->store, in->mark_key, value, sizeof(value), why, sizeof(why));
    if (rc < 0) {
        snprintf(err, errlen, "cannot read the journal position: %s", why);
        free(in);
        return NULL;
    }
    if (0 == rc) {
        char *stop;
        long long v = strtoll(value, &stop, 10);
        if (*stop || v < start) {
            sp_log_error("the store's journal position is before the journal; indexing all of it",
                         "position=\"%s\" start=%" PRId64, value, start);
        } else if (v > end) {
            /* The store holds more than the journal: its end was lost (a power loss without
             * --sync-full) after the store had indexed it. Nothing there is missing. */
            sp_log_warn("the journal ends before the store's position; going on from its end",
                        "position=%lld end=%" PRId64, v, end);
            pos = end;
        } else {
            pos = v;
        }
    }
    if (pos < end)
        sp_log_info("indexing the journal's backlog", "bytes=%" PRId64, end - pos);
    atomic_store(&in->indexed, pos);

    pthread_mutex_init(&in->lock, NULL);

    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&in->expiry_wake, &ca);
    pthread_condattr_destroy(&ca);
    if (0 != pthread_create(&in->writer, NULL, writer_main, in)) {
        snprintf(err, errlen, "cannot start the writer thread");
        free(in);
        return NULL;
    }
    in->expiry_started = 0 == pthread_create(&in->expiry, NULL, expiry_main, in);
    return in;
}

void sp_ingest_stop(sp_ingest_t *in)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->lock);
    atomic_store(&in->stopping, true);
    pthread_cond_signal(&in->expiry_wake);
    pthread_mutex_unlock(&in->lock);
    sp_journal_wake(in->opt.journal);
    pthread_join(in->writer, NULL);
    if (in->expiry_started)
        pthread_join(in->expiry, NULL);
    sp_store_close(in->opt.store);
    pthread_mutex_destroy(&in->lock);
    pthread_cond_destroy(&in->expiry_wake);
    free(in->waiters);
    free(in);
}
