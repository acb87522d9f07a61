/* ingest: the queue of recorded requests and the writer thread that commits them in batches. */
/* SPDX-License-Identifier: MIT */
#include "ingest.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classify.h"
#include "log.h"
#include "metrics.h"

/* A failing commit (disk full, database locked by another program) is retried this many
 * times, then each event alone, before its opens are given up as failed. */
#define COMMIT_TRIES 5

struct sp_ingest {
    sp_ingest_options_t opt;
    pthread_t writer;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    sp_event_t *head, *tail; /* FIFO of submitted events */
    size_t queued;
    bool stopping;
};

void sp_ingest_submit(sp_ingest_t *in, sp_event_t *ev)
{
    ev->next = NULL;
    pthread_mutex_lock(&in->lock);
    if (in->tail)
        in->tail->next = ev;
    else
        in->head = ev;
    in->tail = ev;
    in->queued++;
    /* Only the first event of an idle queue needs to wake the writer. */
    if (1 == in->queued)
        pthread_cond_signal(&in->wake);
    pthread_mutex_unlock(&in->lock);
    atomic_fetch_add(&sp_metrics.queue_depth, 1);
}

static void prepare_event(sp_ingest_t *in, sp_event_t *ev)
{
    sp_enrich_event(in->opt.enrich, ev);
}

static int commit(sp_ingest_t *in, sp_event_t **evs, size_t n)
{
    char err[512];
    for (int attempt = 0; attempt < COMMIT_TRIES; attempt++) {
        if (0 == in->opt.store->ops->write_batch(in->opt.store, evs, n, err, sizeof(err)))
            return 0;
        sp_metric_inc(store_errors);
        sp_log_error("commit failed", "events=%zu attempt=%d error=\"%s\"", n, attempt + 1, err);
        struct timespec pause = {0, 50000000L << attempt};
        nanosleep(&pause, NULL);
    }
    return -1;
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
            break;
        case SP_OUTCOME_UNKNOWN_CAMPAIGN:
            sp_metric_inc(opens_unknown_campaign);
            break;
        default:
            ev->outcome = SP_OUTCOME_FAILED;
            sp_metric_inc(opens_failed);
        }
        in->opt.done(in->opt.done_ctx, ev);
        sp_event_free(ev);
    }
    atomic_fetch_sub(&sp_metrics.queue_depth, (int_fast64_t)n);
}

static void *writer_main(void *arg)
{
    sp_ingest_t *in = arg;
    /* SCHED_BATCH: the request threads' wakeups do not preempt the writer (nor, with
     * theirs set the same way in http.c, the writer's wakeups them): see sp_http_start. */
    struct sched_param param = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &param);
    size_t cap = in->opt.batch_max;
    sp_event_t **batch = calloc(cap, sizeof(*batch));
    if (!batch)
        abort();

    pthread_mutex_lock(&in->lock);
    for (;;) {
        while (!in->head && !in->stopping)
            pthread_cond_wait(&in->wake, &in->lock);
        if (!in->head && in->stopping)
            break;
        size_t n = 0;
        while (in->head && n < cap) {
            batch[n++] = in->head;
            in->head = in->head->next;
        }
        if (!in->head)
            in->tail = NULL;
        in->queued -= n;
        pthread_mutex_unlock(&in->lock);

        for (size_t i = 0; i < n; i++)
            prepare_event(in, batch[i]);
        if (0 == commit(in, batch, n)) {
            sp_metric_inc(store_batches);
            sp_metric_add(store_batch_events, n);
        } else if (n > 1) {
            /* One event may be what the store refuses: save the others. */
            for (size_t i = 0; i < n; i++)
                if (0 != in->opt.store->ops->write_batch(in->opt.store, &batch[i], 1, NULL, 0))
                    batch[i]->outcome = SP_OUTCOME_FAILED;
        }
        finish(in, batch, n);
        pthread_mutex_lock(&in->lock);
    }
    pthread_mutex_unlock(&in->lock);
    free(batch);
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
    pthread_mutex_init(&in->lock, NULL);
    pthread_cond_init(&in->wake, NULL);
    if (0 != pthread_create(&in->writer, NULL, writer_main, in)) {
        snprintf(err, errlen, "cannot start the writer thread");
        free(in);
        return NULL;
    }
    return in;
}

void sp_ingest_stop(sp_ingest_t *in)
{
    if (!in)
        return;
    pthread_mutex_lock(&in->lock);
    in->stopping = true;
    pthread_cond_signal(&in->wake);
    pthread_mutex_unlock(&in->lock);
    pthread_join(in->writer, NULL);
    sp_store_close(in->opt.store);
    pthread_mutex_destroy(&in->lock);
    pthread_cond_destroy(&in->wake);
    free(in);
}
