/* ingest: the reader thread, which reads the journal ahead and makes its opens ready to store,
 * and the writer thread, which stores them in batches. */
/* SPDX-License-Identifier: MIT */
#include "ingest.h"

#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "intern.h"
#include "log.h"
#include "metrics.h"
#include "scratch.h"

/* A commit the store cannot take for now (a full disk, a database locked by another
 * program, a server out of reach) is retried this many times, then the writer waits and
 * tries again from the same place: the journal still holds every open. One the store refuses
 * for its data is tried by halves down to single events (salvage), so that one bad event
 * cannot hold up the rest. A fault (a damaged store, files that cannot be written) stops the
 * writer for good. */
#define COMMIT_TRIES    5
#define GIVE_BACK_OPENS 4096 /* opens indexed since the writer last gave memory back */
/* The reader queues what it reads this many opens at a time: the writer sees a batch grow as
 * it is read, and a rewind drops at most this much reading in progress. */
#define READ_CHUNK 256
/* A failing store is logged at its first failure, then at most this often. */
#define FAIL_LOG_MS 10000

enum { COMMIT_OK = 0, COMMIT_RETRY = -1, COMMIT_DATA = -2, COMMIT_FAULT = -3 };

/* Opens read from the journal, decoded, enriched and made into rows by the reader, in journal
 * order, for the writer to take (under their own lock). The reader stays at most a batch ahead,
 * of at most batch_max opens and ahead_bytes of memory: two such batches are held at once, the
 * one being stored and the next (and until the reader frees them, the last one stored). */
struct ahead {
    pthread_mutex_t lock;
    pthread_cond_t ready; /* the reader has queued opens, or has stopped */
    pthread_cond_t room;  /* the writer has taken opens, rewound, or stopped */
    sp_event_t **ring;    /* batch_max slots; N from HEAD */
    size_t head, n;
    size_t bytes;       /* the memory the N hold (their held) */
    int64_t end;        /* the journal position past everything queued or skipped */
    uint64_t rewinds;   /* bumped by the writer's rewind: what was read before is stale */
    int64_t rewind_pos; /* where the reader starts again */
    bool at_end;        /* the reader has queued all that the journal held when it last looked */
    bool reader_done;   /* the reader has stopped: the appends had stopped and it read them all */
    bool writer_done;   /* the writer has stopped: the reader stops too */
    /* Opens the writer is done with, for the reader to free (hand_back), and the writer's
     * wish that the memory be given back to the system once they are (give_back). */
    sp_event_t **spent;
    size_t n_spent, cap_spent;
    bool trim;
};

struct sp_ingest {
    sp_ingest_options_t opt;
    pthread_t writer, reader;
    struct ahead ahead;
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
    atomic_bool halted; /* the store is faulted: the writer has stopped (halt_why, under lock) */
    char halt_why[512];
    int64_t failing_since; /* commits fail, for now (under lock; 0: they do not) */
    char failing_why[512];
    /* On the writer only: the failing streak, for the log. */
    int64_t fail_logged_ms;
    uint64_t fails, fails_logged;
    atomic_int_fast64_t default_rows; /* the store's upkeep's count; -1: none */
    int64_t upkeep_at;                /* on the writer: when the store's upkeep is next due */
    size_t since_give_back;           /* on the writer: opens indexed since give_back */
    bool upkeep_logged;               /* its failure or the rows it found were logged */
};

/* The store's key for the position of journal ID: "journal:<ID>". */
static void mark_key(const char *journal_id, char *buf, size_t len)
{
    snprintf(buf, len, "journal:%s", journal_id);
}

int64_t sp_ingest_default_rows(sp_ingest_t *in)
{
    return atomic_load(&in->default_rows);
}

/* The store's upkeep (store_ops.h), when it is due: at the writer's start, then every
 * SP_STORE_UPKEEP_MS between batches. Logged when it fails and when rows stay in
 * events_default, once until that changes. */
static void upkeep(sp_ingest_t *in)
{
    sp_store_t *store = in->opt.store;
    int64_t now = sp_now_ms(), rows = -1;
    if (!store->ops->upkeep || now < in->upkeep_at)
        return;
    in->upkeep_at = now + SP_STORE_UPKEEP_MS;
    char err[512], quoted[600];
    if (0 != store->ops->upkeep(store, &rows, err, sizeof(err))) {
        if (!in->upkeep_logged)
            sp_log_warn("the store's upkeep failed; it runs again later", "error=%s",
                        sp_log_quote(err, quoted, sizeof(quoted)));
        in->upkeep_logged = true;
        return;
    }
    int64_t before = atomic_exchange(&in->default_rows, rows);
    if (rows > 0 && before <= 0)
        sp_log_warn("rows wait in events_default (their week's partition could not be made, or "
                    "they are dated outside the weeks partitions hold)",
                    "rows=%" PRId64 "%s", rows, rows >= SP_STORE_DEFAULT_ROWS_MAX ? "+" : "");
    else if (0 == rows && before > 0)
        sp_log_info("events_default is empty again", "rows_before=%" PRId64, before);
    in->upkeep_logged = false;
}

int64_t sp_ingest_indexed(sp_ingest_t *in)
{
    return atomic_load(&in->indexed);
}

int64_t sp_ingest_backlog(sp_ingest_t *in)
{
    return sp_journal_accepted_end(in->opt.journal) - atomic_load(&in->indexed);
}

bool sp_ingest_notify(sp_ingest_t *in, int64_t pos, int timeout_ms, void *waiter)
{
    pthread_mutex_lock(&in->lock);
    bool stalled = in->failing_since && sp_now_ms() - in->failing_since >= SP_INGEST_STALL_MS;
    bool pending = atomic_load(&in->indexed) < pos && !atomic_load(&in->halted) && !stalled;
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

bool sp_ingest_halted(sp_ingest_t *in, char *why, size_t len)
{
    if (!atomic_load(&in->halted))
        return false;
    if (why) {
        pthread_mutex_lock(&in->lock);
        snprintf(why, len, "%s", in->halt_why);
        pthread_mutex_unlock(&in->lock);
    }
    return true;
}

bool sp_ingest_failing(sp_ingest_t *in, int64_t *since_ms, char *why, size_t len)
{
    pthread_mutex_lock(&in->lock);
    bool failing = in->failing_since > 0;
    if (since_ms)
        *since_ms = in->failing_since;
    if (why)
        snprintf(why, len, "%s", in->failing_why);
    pthread_mutex_unlock(&in->lock);
    return failing;
}

static void set_failing(sp_ingest_t *in, const char *why)
{
    pthread_mutex_lock(&in->lock);
    if (why && !in->failing_since)
        in->failing_since = sp_now_ms();
    else if (!why)
        in->failing_since = 0;
    snprintf(in->failing_why, sizeof(in->failing_why), "%s", why ? why : "");
    pthread_mutex_unlock(&in->lock);
}

/* The store is faulted: the writer stops for good, and whoever waits for it is answered. */
static void halt(sp_ingest_t *in, const char *why, int64_t pos)
{
    pthread_mutex_lock(&in->lock);
    bool first = !atomic_load(&in->halted);
    if (first)
        snprintf(in->halt_why, sizeof(in->halt_why), "%s", why);
    atomic_store(&in->halted, true);
    tell_waiters(in, pos, true);
    pthread_mutex_unlock(&in->lock);
    if (first) {
        char quoted[600];
        sp_log_error("the store cannot be written: indexing stops; opens are kept in the journal "
                     "and indexed by a restart on a repaired or restored store",
                     "error=%s position=%" PRId64 " backlog_bytes=%" PRId64,
                     sp_log_quote(why, quoted, sizeof(quoted)), pos,
                     sp_journal_accepted_end(in->opt.journal) - pos);
    }
}

/* A failed commit, logged at the first of a streak and then at most every FAIL_LOG_MS. */
static void log_failure(sp_ingest_t *in, size_t n, int attempt, const char *err,
                        sp_store_failure_t kind)
{
    static const char *const kinds[] = {"data", "retry", "fault"};
    in->fails++;
    int64_t now = sp_now_ms();
    if (in->fails_logged && now - in->fail_logged_ms < FAIL_LOG_MS && SP_STORE_FAIL_FAULT != kind)
        return;
    char quoted[600];
    sp_log_error("commit failed", "events=%zu attempt=%d kind=%s failures=%llu error=%s", n,
                 attempt + 1, kinds[kind], (unsigned long long)(in->fails - in->fails_logged),
                 sp_log_quote(err, quoted, sizeof(quoted)));
    in->fails_logged = in->fails;
    in->fail_logged_ms = now;
}

static int commit(sp_ingest_t *in, sp_event_t **evs, size_t n, int64_t mark, int tries)
{
    char err[512], value[24];
    snprintf(value, sizeof(value), "%" PRId64, mark);
    sp_store_mark_t m = {in->mark_key, value};
    sp_store_t *store = in->opt.store;
    for (int attempt = 0; attempt < tries; attempt++) {
        if (0 == store->ops->write_batch(store, evs, n, &m, err, sizeof(err))) {
            if (in->fails_logged) {
                sp_log_info("commits succeed again", "failures=%llu",
                            (unsigned long long)in->fails);
                in->fails = in->fails_logged = 0;
                set_failing(in, NULL);
            }
            return COMMIT_OK;
        }
        sp_metric_inc(store_errors);
        char why[512];
        sp_store_failure_t kind = store->ops->failure(store, why, sizeof(why));
        log_failure(in, n, attempt, err, kind);
        if (SP_STORE_FAIL_FAULT == kind) {
            halt(in, why, atomic_load(&in->indexed));
            return COMMIT_FAULT;
        }
        if (SP_STORE_FAIL_DATA == kind)
            return COMMIT_DATA;
        set_failing(in, err);
        struct timespec pause = {0, 50000000L << attempt};
        nanosleep(&pause, NULL);
    }
    return COMMIT_RETRY;
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

/* How many opens ahead free_events asks memory for what it reads of each (sp_event_prefetch_free):
 * a batch's opens were made a batch before, and each free waited on its blocks' headers. */
#define FREE_AHEAD 8

static void free_events(sp_event_t **evs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i + 2 * FREE_AHEAD < n)
            sp_event_prefetch_free(evs[i + 2 * FREE_AHEAD], false);
        if (i + FREE_AHEAD < n)
            sp_event_prefetch_free(evs[i + FREE_AHEAD], true);
        sp_event_free(evs[i]);
    }
}

/* Hands the N opens at EVS, which the writer is done with, to the reader to free: the thread
 * that made them frees them, into its own malloc arena and off the writer's core. Freed by
 * the writer, each free read its event's header again, cold a batch after it was made (a fifth
 * of the writer's last-level cache misses), and took the reader's arena's lock from it. Once
 * the reader has stopped, the writer frees them itself. */
static void hand_back(sp_ingest_t *in, sp_event_t **evs, size_t n)
{
    struct ahead *a = &in->ahead;
    pthread_mutex_lock(&a->lock);
    if (a->reader_done || a->writer_done) {
        pthread_mutex_unlock(&a->lock);
        free_events(evs, n);
        return;
    }
    if (a->n_spent + n > a->cap_spent) {
        size_t cap = a->cap_spent ? a->cap_spent : 1024;
        while (cap < a->n_spent + n)
            cap *= 2;
        if (!(a->spent = realloc(a->spent, cap * sizeof(*a->spent))))
            abort();
        a->cap_spent = cap;
    }
    memcpy(a->spent + a->n_spent, evs, n * sizeof(*evs));
    a->n_spent += n;
    pthread_mutex_unlock(&a->lock);
}

/* On the reader, under the ahead lock: takes the opens handed back (into *MINE, swapped with
 * the list, *CAP its room) and says how many there are, to be freed once the lock is let go. */
static size_t take_spent(struct ahead *a, sp_event_t ***mine, size_t *cap)
{
    size_t n = a->n_spent;
    sp_event_t **list = a->spent;
    size_t list_cap = a->cap_spent;
    a->spent = *mine;
    a->cap_spent = *cap;
    a->n_spent = 0;
    *mine = list;
    *cap = list_cap;
    return n;
}

static void finish(sp_ingest_t *in, sp_event_t **evs, size_t n)
{
    if (in->opt.committed)
        in->opt.committed(in->opt.committed_ctx, evs, n);
    for (size_t i = 0; i < n; i++) {
        sp_event_t *ev = evs[i];
        switch (ev->outcome) {
        case SP_OUTCOME_STORED:
            if (SP_EVENT_READ == ev->kind) {
                sp_metric_inc(reads_recorded);
                break;
            }
            sp_metric_inc(opens_recorded);
            if (ev->klass >= 0 && ev->klass < SP_CLASS_COUNT)
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
        case SP_OUTCOME_UNMATCHED:
            break;
        default:
            sp_metric_inc(opens_failed);
        }
    }
    hand_back(in, evs, n);
    log_unkept(in, false);
}

/* How long the reader, woken at the journal's end by an append, lets more come before it
 * reads on (see reader_main). */
#define GATHER_MS 1

/* The ingest's time slice when it runs behind the answers: the kernel's least (0.1 ms). */
#define INGEST_SLICE_NS 100000

/* Nice 19 with the shortest slice: Linux's scheduler since 6.6 (EEVDF) lets the task on the core
 * finish the slice it was given before a task that wakes takes the core, and a nice-19 task's
 * slice is as long as any other's (1.4 ms on two cores: /proc/PID/task/TID/sched, se.slice), so
 * an answer whose request came in as the writer began one waited for it. A request thread that
 * wakes now waits 0.1 ms at most (BENCHMARKS.md, "The writer's slice"). Kernels before 6.12
 * ignore the slice; one that refuses the call gets nice 19 alone. */
static void run_behind(void)
{
    /* sched_setattr(2)'s argument, which glibc 2.36 does not declare (and the kernel's header
     * declares with a struct sched_param of its own). */
    struct {
        uint32_t size, sched_policy;
        uint64_t sched_flags;
        int32_t sched_nice;
        uint32_t sched_priority;
        uint64_t sched_runtime, sched_deadline, sched_period;
    } attr = {
        .size = sizeof(attr),
        .sched_policy = SCHED_OTHER,
        .sched_nice = 19,
        .sched_runtime = INGEST_SLICE_NS,
    };
    if (0 != syscall(SYS_sched_setattr, 0, &attr, 0))
        setpriority(PRIO_PROCESS, (id_t)gettid(), 19);
}

/* The scheduling of the ingest's threads, the writer's and the reader's. */
static void set_priority(sp_ingest_t *in)
{
    /* Nice 19: indexing runs on what the request threads leave (a weight of 15 against
     * their 1024), and a request thread that wakes takes the core from it within its short
     * slice (run_behind). A burst is answered at full speed and indexed as it eases, the
     * backlog on disk; on a core that stays busy the ingest still gets its small share, so
     * the index never stops. (Not SCHED_IDLE: it can starve for good, and a request thread
     * waiting on a lock the writer holds, such as a malloc arena's, would wait as long.) When
     * answers wait for the store, the ingest is on their path: SCHED_BATCH at nice 0, as the
     * request threads (see sp_http_start). */
    struct sched_param param = {0};
    if (in->opt.answers_wait)
        pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    else
        run_behind();
}

/* Reads up to CAP events from the cursor into OUT, each decoded, enriched and made into its row
 * (what the store writes) with its headers split for the store's interning, so that the writer
 * only stores; one at least, and no more once they hold BYTES of memory, their sum into *HELD.
 * *END is the position past the last record read (undecodable ones are logged and skipped). 1
 * when it reached the journal's end, 0 when it read CAP (or BYTES), -1 on a read error. */
static int read_some(sp_ingest_t *in, sp_journal_cursor_t *cur, sp_slab_t *slab,
                     sp_intern_seen_t *seen, sp_event_t **out, size_t cap, size_t bytes, size_t *n,
                     size_t *held, int64_t *end)
{
    char err[256];
    *n = *held = 0;
    while (*n < cap && (!*n || *held < bytes)) {
        const void *payload;
        size_t len;
        int64_t next;
        int rc = sp_journal_next(cur, &payload, &len, &next, err, sizeof(err));
        if (0 == rc)
            return 1;
        if (rc < 0) {
            sp_log_error("cannot read the journal", "error=\"%s\"", err);
            return -1;
        }
        sp_event_t *ev = sp_event_decode_in(slab, payload, len);
        *end = next;
        if (!ev) {
            sp_metric_inc(opens_failed);
            sp_log_error("journal record not understood, skipped", "position=%" PRId64, next);
            continue;
        }
        ev->journal_end = next;
        sp_enrich_event(in->opt.enrich, ev);
        sp_event_row(ev);
        sp_intern_event_tokens(ev, seen);
        *held += ev->held = sp_event_held(ev);
        out[(*n)++] = ev;
    }
    return 0;
}

/* The reader stops: the writer takes what is queued and stops too. */
static void reader_stops(struct ahead *a)
{
    pthread_mutex_lock(&a->lock);
    a->reader_done = true;
    pthread_cond_signal(&a->ready);
    pthread_mutex_unlock(&a->lock);
}

/* The writer stops (or never started): the reader stops too. */
static void writer_stops(struct ahead *a)
{
    pthread_mutex_lock(&a->lock);
    a->writer_done = true;
    pthread_cond_signal(&a->room);
    pthread_mutex_unlock(&a->lock);
}

/* The reader thread: reads the journal ahead of the writer, from where the store ends, and
 * queues its opens ready to store. Decoding, enrichment and the rows' making (a sixth to a
 * quarter of the work an open costs the ingest) run beside the store's work, on the other
 * core when one is free. Started again from the writer's position when the writer rewinds. */
static void *reader_main(void *arg)
{
    sp_ingest_t *in = arg;
    struct ahead *a = &in->ahead;
    set_priority(in);
    sp_event_t *chunk[READ_CHUNK];
    sp_event_t **spent = NULL; /* the opens given back, swapped out of the list */
    size_t cap_spent = 0;
    char err[256];
    sp_journal_cursor_t *cur = NULL;
    /* The opens are made in a slab of the reader's own: made one after another and freed a
     * batch at a time, they take a few chunks, not four mallocs and frees each (7% of the
     * ingest's time on one core, malloc's arena growing and shrinking as batches came and
     * went), and lie in the writer's path in the order it reads them. */
    sp_slab_t *slab = sp_slab_new();
    sp_intern_seen_t *seen = sp_intern_seen_new();
    pthread_mutex_lock(&a->lock);
    int64_t pos = a->end;
    uint64_t rewinds = a->rewinds;
    pthread_mutex_unlock(&a->lock);
    for (;;) {
        pthread_mutex_lock(&a->lock);
        size_t n_spent = take_spent(a, &spent, &cap_spent);
        bool trim = a->trim;
        a->trim = false;
        if (n_spent || trim) {
            pthread_mutex_unlock(&a->lock);
            free_events(spent, n_spent);
            if (trim) {
                sp_slab_trim(slab);
                malloc_trim(0);
            }
            pthread_mutex_lock(&a->lock);
        }
        while (!a->writer_done && rewinds == a->rewinds &&
               (a->n == in->opt.batch_max || a->bytes >= in->opt.ahead_bytes))
            pthread_cond_wait(&a->room, &a->lock);
        bool writer_done = a->writer_done;
        size_t room = in->opt.batch_max - a->n, bytes_room = in->opt.ahead_bytes - a->bytes;
        if (rewinds != a->rewinds) {
            rewinds = a->rewinds;
            pos = a->rewind_pos;
            room = in->opt.batch_max;
            bytes_room = in->opt.ahead_bytes;
            sp_journal_cursor_free(cur);
            cur = NULL;
        }
        pthread_mutex_unlock(&a->lock);
        if (writer_done)
            break;
        if (!cur && !(cur = sp_journal_cursor_new(in->opt.journal, pos, err, sizeof(err)))) {
            sp_log_error("cannot read the journal", "error=\"%s\"", err);
            if (atomic_load(&in->stopping)) {
                reader_stops(a);
                break;
            }
            sleep(1);
            continue;
        }
        size_t n = 0, held = 0;
        int64_t end = pos;
        int rc = read_some(in, cur, slab, seen, chunk, room < READ_CHUNK ? room : READ_CHUNK,
                           bytes_room, &n, &held, &end);
        if (0 == n && end == pos) {
            pthread_mutex_lock(&a->lock);
            if (!a->at_end && rewinds == a->rewinds) { /* the writer need not wait for more */
                a->at_end = true;
                pthread_cond_signal(&a->ready);
            }
            pthread_mutex_unlock(&a->lock);
            if (rc < 0) { /* a read error: nothing can be read past it for now */
                sp_journal_cursor_free(cur);
                cur = NULL;
                if (atomic_load(&in->stopping)) {
                    reader_stops(a);
                    break;
                }
                sleep(1);
            } else if (atomic_load(&in->stopping)) {
                reader_stops(a); /* the appends have stopped: everything is in */
                break;
            } else if (sp_journal_wait(in->opt.journal, pos, 200) && !in->opt.answers_wait) {
                /* Woken by an append: the opens of the next GATHER_MS are read together. Each
                 * wake took the core from the request thread that appended (the reader's short
                 * slice, run_behind), and at half the peak rate the reader was woken for nearly
                 * every open. When answers wait for the store, they wait for no gathering. */
                struct timespec gather = {0, GATHER_MS * 1000000L};
                nanosleep(&gather, NULL);
            }
            continue;
        }
        pthread_mutex_lock(&a->lock);
        bool stale = rewinds != a->rewinds;
        if (!stale) {
            for (size_t i = 0; i < n; i++)
                a->ring[(a->head + a->n++) % in->opt.batch_max] = chunk[i];
            a->bytes += held;
            a->end = end;
            a->at_end = 0 != rc;
            pthread_cond_signal(&a->ready);
        }
        pthread_mutex_unlock(&a->lock);
        if (stale) /* the writer went back while these were read: read again from there */
            for (size_t i = 0; i < n; i++)
                sp_event_free(chunk[i]);
        else
            pos = end;
    }
    sp_journal_cursor_free(cur);
    free(spent);
    sp_slab_close(slab);
    sp_intern_seen_free(seen);
    return NULL;
}

/* Takes up to CAP of the opens the reader has queued into BATCH: CAP of them, all that the
 * journal held when the reader last looked (a batch is what the writer would have read itself),
 * or all that the reader may hold ahead (ahead_bytes), waiting up to 200 ms for the first. *END is
 * the position past the last one taken (past the records skipped after it when it takes them all);
 * *DONE says the reader has stopped and nothing is left to take. */
static void take(sp_ingest_t *in, sp_event_t **batch, size_t cap, size_t *n, int64_t *end,
                 int64_t pos, bool *done)
{
    struct ahead *a = &in->ahead;
    struct timespec deadline;
    sp_deadline(&deadline, 200);
    pthread_mutex_lock(&a->lock);
    /* Once some are queued the reader is reading on (it waits only at the journal's end or
     * for room), so the writer waits for the rest however long that takes: a batch of
     * 16,384 can take the reader longer than 200 ms on a busy machine. */
    bool timed = true;
    while (!a->reader_done && a->n < cap && a->bytes < in->opt.ahead_bytes &&
           !(a->at_end && (a->n || a->end != pos))) {
        if (!timed)
            pthread_cond_wait(&a->ready, &a->lock);
        else if (0 != pthread_cond_timedwait(&a->ready, &a->lock, &deadline) && !a->n)
            break;
        else
            timed = !a->n;
    }
    *n = a->n < cap ? a->n : cap;
    for (size_t i = 0; i < *n; i++) {
        batch[i] = a->ring[(a->head + i) % in->opt.batch_max];
        a->bytes -= batch[i]->held;
    }
    a->head = (a->head + *n) % in->opt.batch_max;
    a->n -= *n;
    *end = a->n ? batch[*n - 1]->journal_end : a->end;
    *done = a->reader_done && !a->n && a->end == *end;
    if (*n)
        pthread_cond_signal(&a->room);
    pthread_mutex_unlock(&a->lock);
}

/* Frees the opens the reader has queued (under the lock, or once the threads have stopped). */
static void drop_queued(sp_ingest_t *in)
{
    struct ahead *a = &in->ahead;
    for (size_t i = 0; i < a->n; i++)
        sp_event_free(a->ring[(a->head + i) % in->opt.batch_max]);
    a->head = a->n = a->bytes = 0;
}

/* What the reader has queued is dropped, and it reads again from POS: the events past POS
 * that the store did not take are read from the journal again. */
static void rewind_reader(sp_ingest_t *in, int64_t pos)
{
    struct ahead *a = &in->ahead;
    pthread_mutex_lock(&a->lock);
    drop_queued(in);
    a->end = a->rewind_pos = pos;
    a->at_end = false;
    a->rewinds++;
    pthread_cond_signal(&a->room);
    pthread_mutex_unlock(&a->lock);
}

/* What salvage has done of a batch the store refused: events stored, events settled (stored or
 * refused alone) from the batch's start, and whether the store holds the position past the
 * last settled one. */
typedef struct salvaged {
    size_t stored, done;
    bool marked;
} salvaged_t;

/* Stores BATCH[LO, HI), which the store refused as a whole for its data, by halves, each half
 * it refuses halved again down to the events it refuses alone (marked failed), in order: one
 * refused event among a batch of N costs about 2 log2(N) commits, not N (a batch is up to
 * 16,384 opens). COMMIT_OK, or the first other failure (S says what was done before it). */
static int salvage(sp_ingest_t *in, sp_event_t **batch, size_t lo, size_t hi, int tries,
                   salvaged_t *s)
{
    size_t mid = lo + (hi - lo) / 2;
    size_t parts[2][2] = {{lo, mid}, {mid, hi}};
    for (int k = 0; k < 2; k++) {
        size_t a = parts[k][0], b = parts[k][1];
        if (a == b)
            continue;
        int rc = commit(in, &batch[a], b - a, batch[b - 1]->journal_end, tries);
        if (COMMIT_OK == rc) {
            s->stored += b - a;
            s->done = b;
            s->marked = true;
        } else if (COMMIT_DATA != rc) {
            return rc;
        } else if (1 == b - a) {
            batch[a]->outcome = SP_OUTCOME_FAILED;
            s->done = b;
            s->marked = false;
        } else if (COMMIT_OK != (rc = salvage(in, batch, a, b, tries, s))) {
            return rc;
        }
    }
    return COMMIT_OK;
}

/* Stores N events read up to END. COMMIT_OK when all are done (stored, or refused for their
 * data alone: those are marked failed and counted); otherwise *DONE says how many of the
 * first ones are (their journal position is in the store), and the rest stay in the journal:
 * COMMIT_RETRY (read them again later) or COMMIT_FAULT (the writer stops). */
static int store_batch(sp_ingest_t *in, sp_event_t **batch, size_t n, int64_t end, size_t *done)
{
    *done = 0;
    bool stopping = atomic_load(&in->stopping);
    int rc = commit(in, batch, n, end, stopping ? 1 : COMMIT_TRIES);
    if (COMMIT_OK == rc) {
        sp_metric_inc(store_batches);
        sp_metric_add(store_batch_events, n);
        *done = n;
        return COMMIT_OK;
    }
    if (COMMIT_DATA != rc)
        return rc;
    /* One event may be what the store refuses: save the others, in order. When it takes
     * none of them, it is the store that is wrong (its schema, its permissions), not the
     * events: they stay in the journal and are tried again. */
    salvaged_t s = {0, 0, true};
    rc = salvage(in, batch, 0, n, stopping ? 1 : COMMIT_TRIES, &s);
    *done = s.done;
    if (COMMIT_OK != rc)
        return rc;
    if (!s.stored) {
        *done = 0;
        return COMMIT_RETRY;
    }
    for (size_t i = 0; i < n; i++)
        if (SP_OUTCOME_FAILED == batch[i]->outcome)
            sp_log_error("an open the store refuses is left out (counted in opens_failed)",
                         "position=%" PRId64 " campaign=\"%s\"", batch[i]->journal_end,
                         batch[i]->campaign);
    /* The last ones refused: the store learns that it holds everything up to END all the
     * same, or they would be tried again at the next start. */
    if (!s.marked || batch[n - 1]->journal_end != end) {
        rc = commit(in, NULL, 0, end, stopping ? 1 : COMMIT_TRIES);
        if (COMMIT_OK != rc)
            return rc;
    }
    return COMMIT_OK;
}

/* Before anything is written: a store found damaged stops the writer at once, so that
 * nothing is written into it. */
static void check_store(sp_ingest_t *in, int64_t pos)
{
    if (in->opt.check_ms <= 0)
        return;
    sp_store_t *store = in->opt.store;
    char err[512], quoted[600];
    bool complete = false;
    int64_t t0 = sp_now_ms();
    int rc = store->ops->check(store, in->opt.check_ms, &complete, err, sizeof(err));
    if (1 == rc) {
        halt(in, err, pos);
    } else if (rc < 0) {
        char why[512];
        if (SP_STORE_FAIL_FAULT == store->ops->failure(store, why, sizeof(why)))
            halt(in, why, pos);
        else
            sp_log_warn("cannot check the store", "error=%s",
                        sp_log_quote(err, quoted, sizeof(quoted)));
    } else if (!complete) {
        sp_log_warn("the store's check ran out of time; no damage in what it covered",
                    "seconds=%.1f", (double)(sp_now_ms() - t0) / 1000);
    } else {
        sp_log_info("the store was checked: no damage found", "seconds=%.1f",
                    (double)(sp_now_ms() - t0) / 1000);
    }
}

/* Once a backlog is indexed: the memory its batches' events took (about 4 KB an open, two
 * batches of up to --batch-max at once: the one stored, the one read ahead) is given back to
 * the system. Freed events leave free pages
 * between the blocks still in use (the store's page cache, made in the same batches), which
 * malloc keeps for reuse; malloc_trim returns every whole free page of every arena. Without
 * it a server kept 189 MiB resident after indexing a backlog in commits of 16,384 opens
 * instead of 81 MiB (BENCHMARKS.md, "The writer's commits"). */
static void give_back(sp_ingest_t *in)
{
    if (in->since_give_back < GIVE_BACK_OPENS)
        return;
    in->since_give_back = 0;
    sp_scratch_release(); /* the blocks the batches' tallies and rollups worked in */
    /* The reader frees the last batch's events (hand_back): it trims once it has. */
    struct ahead *a = &in->ahead;
    pthread_mutex_lock(&a->lock);
    bool reader_gone = a->reader_done || a->writer_done;
    a->trim = !reader_gone;
    pthread_mutex_unlock(&a->lock);
    if (reader_gone)
        malloc_trim(0);
}

static void *writer_main(void *arg)
{
    sp_ingest_t *in = arg;
    set_priority(in);
    size_t cap = in->opt.batch_max;
    sp_event_t **batch = calloc(cap, sizeof(*batch));
    if (!batch)
        abort();
    int64_t pos = atomic_load(&in->indexed);

    check_store(in, pos);
    for (;;) {
        if (!atomic_load(&in->halted)) {
            /* Another connection may have found the store faulted (a damaged page read for
             * the API, its WAL index faulting): stop before writing into it. */
            char why[512];
            if (SP_STORE_FAIL_FAULT == in->opt.store->ops->failure(in->opt.store, why, sizeof(why)))
                halt(in, why, pos);
        }
        if (atomic_load(&in->halted)) {
            if (atomic_load(&in->stopping)) {
                sp_log_error("the store is faulted: opens stay in the journal for the next start",
                             "bytes=%" PRId64, sp_journal_accepted_end(in->opt.journal) - pos);
                break;
            }
            struct timespec pause = {0, 100000000L};
            nanosleep(&pause, NULL);
            continue;
        }
        size_t n = 0;
        int64_t end = pos;
        bool reader_done = false;
        take(in, batch, cap, &n, &end, pos, &reader_done);
        if (0 == n && end == pos) {
            if (reader_done)
                break; /* the appends have stopped and everything is in (or cannot be read) */
            log_unkept(in, false);
            upkeep(in);
            give_back(in);
            continue;
        }
        size_t done = 0;
        int stored = n ? store_batch(in, batch, n, end, &done) : commit(in, NULL, 0, end, 1);
        if (COMMIT_OK == stored) {
            in->since_give_back += n;
            finish(in, batch, n);
            pos = end;
            set_indexed(in, pos, false);
            sp_journal_release(in->opt.journal, pos);
            upkeep(in);
            continue;
        }
        /* What the store took is done; the rest stays in the journal, read again from POS. */
        if (done) {
            pos = batch[done - 1]->journal_end;
            finish(in, batch, done);
            set_indexed(in, pos, false);
            sp_journal_release(in->opt.journal, pos);
        }
        free_events(batch + done, n - done);
        rewind_reader(in, pos);
        if (COMMIT_FAULT == stored)
            continue;
        if (atomic_load(&in->stopping)) {
            sp_log_error("the store is down: opens stay in the journal for the next start",
                         "bytes=%" PRId64, sp_journal_accepted_end(in->opt.journal) - pos);
            break;
        }
        /* Stalled: whoever waits for the store is answered without it. */
        pthread_mutex_lock(&in->lock);
        if (in->failing_since && sp_now_ms() - in->failing_since >= SP_INGEST_STALL_MS)
            tell_waiters(in, pos, true);
        pthread_mutex_unlock(&in->lock);
        sleep(1);
    }
    writer_stops(&in->ahead);
    free(batch);
    sp_scratch_release();
    log_unkept(in, true);
    /* Anyone still waiting (the store went down at shutdown) is answered: the journal keeps
     * their opens for the next start. */
    set_indexed(in, pos, true);
    return NULL;
}

/* Frees IN once its threads have stopped, with the opens the reader read that the writer did
 * not take. */
static void free_ingest(sp_ingest_t *in)
{
    struct ahead *a = &in->ahead;
    drop_queued(in);
    free_events(a->spent, a->n_spent);
    free(a->spent);
    free(a->ring);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->ready);
    pthread_cond_destroy(&a->room);
    pthread_mutex_destroy(&in->lock);
    pthread_cond_destroy(&in->expiry_wake);
    free(in->waiters);
    free(in);
}

sp_ingest_t *sp_ingest_start(const sp_ingest_options_t *opt, char *err, size_t errlen)
{
    sp_ingest_t *in = calloc(1, sizeof(*in));
    if (!in)
        abort();
    in->opt = *opt;
    atomic_init(&in->default_rows, -1);
    if (0 == in->opt.batch_max)
        in->opt.batch_max = SP_CONFIG_BATCH_MAX;
    if (0 == in->opt.ahead_bytes)
        in->opt.ahead_bytes = SP_INGEST_AHEAD_BYTES;
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
    struct ahead *a = &in->ahead;
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->ready, &ca);
    pthread_cond_init(&a->room, NULL);
    pthread_condattr_destroy(&ca);
    if (!(a->ring = calloc(in->opt.batch_max, sizeof(*a->ring))))
        abort();
    a->end = pos;
    if (0 != pthread_create(&in->reader, NULL, reader_main, in)) {
        snprintf(err, errlen, "cannot start the reader thread");
        free_ingest(in);
        return NULL;
    }
    if (0 != pthread_create(&in->writer, NULL, writer_main, in)) {
        snprintf(err, errlen, "cannot start the writer thread");
        writer_stops(a);
        sp_journal_wake(in->opt.journal);
        pthread_join(in->reader, NULL);
        free_ingest(in);
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
    sp_journal_wake(in->opt.journal); /* the reader, if the writer stopped first */
    pthread_join(in->reader, NULL);
    if (in->expiry_started)
        pthread_join(in->expiry, NULL);
    sp_store_close(in->opt.store);
    free_ingest(in);
}
