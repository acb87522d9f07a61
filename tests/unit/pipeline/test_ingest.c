/* Unit tests for ingest, the reader and the writer: batches in journal order, retries (the opens
 * read ahead dropped and read again), the one-by-one salvage of a batch the store refuses, a
 * faulted store, the drain at stop; behind it a fake store. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ingest.h"
#include "metrics.h"

/* ---- a fake store: records what it is given, fails as it is told ------------------------------
 */

#define FAKE_MAX 600

typedef struct fake {
    sp_store_t base;
    pthread_mutex_t lock;
    /* What it is told. */
    int fail_calls;               /* the next this many write_batch calls fail ... */
    sp_store_failure_t fail_kind; /* ... so */
    char refuse[SP_ID_MAX + 1];   /* a batch holding an event of this campaign fails (DATA) */
    bool refuse_all;              /* every batch with events fails (DATA) */
    /* What it did. */
    sp_store_failure_t last;
    int calls, batches_stored;
    size_t biggest;                       /* events in the largest batch it was given */
    char stored[FAKE_MAX][SP_ID_MAX + 1]; /* recipients, in the order stored */
    size_t n_stored;
    char mark[64]; /* the journal position it holds ("" none) */
    bool closed;
} fake_t;

static int fake_write(sp_store_t *b, sp_event_t **evs, size_t n, const sp_store_mark_t *mark,
                      char *err, size_t errlen)
{
    fake_t *f = (fake_t *)b;
    pthread_mutex_lock(&f->lock);
    f->calls++;
    f->biggest = n > f->biggest ? n : f->biggest;
    bool refused = f->refuse_all && n > 0;
    for (size_t i = 0; i < n && f->refuse[0]; i++)
        refused = refused || 0 == strcmp(f->refuse, evs[i]->campaign);
    int rc = 0;
    if (f->fail_calls > 0) {
        f->fail_calls--;
        f->last = f->fail_kind;
        snprintf(err, errlen, "fake: told to fail");
        rc = -1;
    } else if (refused) {
        f->last = SP_STORE_FAIL_DATA;
        snprintf(err, errlen, "fake: refused");
        rc = -1;
    } else {
        for (size_t i = 0; i < n; i++) {
            assert_true(f->n_stored < FAKE_MAX);
            snprintf(f->stored[f->n_stored++], sizeof(f->stored[0]), "%s", evs[i]->recipient);
            evs[i]->outcome = SP_OUTCOME_STORED;
            evs[i]->id = (int64_t)f->n_stored;
        }
        if (mark)
            snprintf(f->mark, sizeof(f->mark), "%s", mark->value);
        f->batches_stored++;
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int fake_meta_get(sp_store_t *b, const char *key, char *value, size_t len, char *err,
                         size_t errlen)
{
    fake_t *f = (fake_t *)b;
    pthread_mutex_lock(&f->lock);
    int rc = f->mark[0] ? 0 : 1;
    snprintf(value, len, "%s", f->mark);
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static sp_store_failure_t fake_failure(sp_store_t *b, char *why, size_t len)
{
    fake_t *f = (fake_t *)b;
    pthread_mutex_lock(&f->lock);
    sp_store_failure_t last = f->last;
    pthread_mutex_unlock(&f->lock);
    if (why)
        snprintf(why, len, "fake: %s", SP_STORE_FAIL_FAULT == last ? "damaged" : "no fault");
    return last;
}

static void fake_close(sp_store_t *b)
{
    ((fake_t *)b)->closed = true;
}

static const sp_store_ops_t fake_ops = {
    .name = "fake",
    .close = fake_close,
    .write_batch = fake_write,
    .meta_get = fake_meta_get,
    .failure = fake_failure,
};

/* ---- fixture: a journal in a fresh folder, enrichment, the fake -------------------------------
 */

typedef struct fixture {
    char dir[64], jdir[80];
    sp_journal_t *journal;
    sp_enrich_t *enrich;
    fake_t fake;
    sp_ingest_t *in;
    pthread_mutex_t lock;
    size_t committed, committed_stored; /* events the commit callback saw, and of those stored */
} fixture_t;

static sp_enrich_t *shared_enrich;

static int group_setup(void **state)
{
    char err[256];
    sp_config_t cfg;
    sp_config_defaults(&cfg);
    cfg.no_geoip = true;
    shared_enrich = sp_enrich_open(&cfg, err, sizeof(err));
    sp_config_free(&cfg);
    if (!shared_enrich)
        print_error("enrich: %s\n", err);
    return shared_enrich ? 0 : -1;
}

static int group_teardown(void **state)
{
    sp_enrich_close(shared_enrich);
    return 0;
}

static int setup(void **state)
{
    char err[256];
    fixture_t *fx = calloc(1, sizeof(*fx));
    if (!fx)
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_ingest_XXXXXX");
    if (!mkdtemp(fx->dir))
        return -1;
    snprintf(fx->jdir, sizeof(fx->jdir), "%s/journal", fx->dir);
    sp_journal_options_t jo = {.dir = fx->jdir};
    fx->journal = sp_journal_open(&jo, err, sizeof(err));
    if (!fx->journal) {
        print_error("journal: %s\n", err);
        return -1;
    }
    fx->enrich = shared_enrich;
    fx->fake.base.ops = &fake_ops;
    pthread_mutex_init(&fx->fake.lock, NULL);
    pthread_mutex_init(&fx->lock, NULL);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    sp_ingest_stop(fx->in);
    sp_journal_close(fx->journal);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    if (0 != system(cmd))
        print_error("could not remove %s\n", fx->dir);
    pthread_mutex_destroy(&fx->fake.lock);
    pthread_mutex_destroy(&fx->lock);
    free(fx);
    return 0;
}

static void on_commit(void *ctx, sp_event_t *const *evs, size_t n)
{
    fixture_t *fx = ctx;
    pthread_mutex_lock(&fx->lock);
    for (size_t i = 0; i < n; i++) {
        fx->committed++;
        fx->committed_stored += SP_OUTCOME_STORED == evs[i]->outcome;
    }
    pthread_mutex_unlock(&fx->lock);
}

/* Journals an open of CAMPAIGN by RECIPIENT, with a header of EXTRA bytes. */
static void append_large(fixture_t *fx, const char *campaign, const char *recipient, size_t extra)
{
    static unsigned char record[SP_EVENT_ENCODED_MAX];
    sp_event_t *ev = sp_event_new(1024 + extra);
    ev->ts_ms = sp_now_ms();
    ev->kind = SP_EVENT_OPEN;
    snprintf(ev->campaign, sizeof(ev->campaign), "%s", campaign);
    snprintf(ev->recipient, sizeof(ev->recipient), "%s", recipient);
    snprintf(ev->ip, sizeof(ev->ip), "192.0.2.1");
    const char *ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 "
                     "Thunderbird/115.6.0";
    assert_int_equal(0, sp_event_add_header(ev, "User-Agent", 10, ua, strlen(ua)));
    if (extra) {
        char *value = malloc(extra);
        assert_non_null(value);
        memset(value, 'x', extra);
        assert_int_equal(0, sp_event_add_header(ev, "X-Large", 7, value, extra));
        free(value);
    }
    size_t len = sp_event_encode(ev, record);
    assert_true(sp_journal_append(fx->journal, record, len, NULL) > 0);
    sp_event_free(ev);
}

static void append(fixture_t *fx, const char *campaign, const char *recipient)
{
    append_large(fx, campaign, recipient, 0);
}

/* Starts the ingest, holding at most AHEAD_BYTES of opens read ahead (0: the default). */
static void start_ahead(fixture_t *fx, size_t batch_max, size_t ahead_bytes)
{
    char err[256];
    sp_ingest_options_t opt = {
        .journal = fx->journal,
        .store = &fx->fake.base,
        .enrich = fx->enrich,
        .batch_max = batch_max,
        .ahead_bytes = ahead_bytes,
        .committed = on_commit,
        .committed_ctx = fx,
    };
    fx->in = sp_ingest_start(&opt, err, sizeof(err));
    if (!fx->in)
        print_error("ingest: %s\n", err);
    assert_non_null(fx->in);
}

static void start(fixture_t *fx, size_t batch_max)
{
    start_ahead(fx, batch_max, 0);
}

/* Waits (at most 10 s) until the store holds the whole journal. */
static void wait_indexed(fixture_t *fx)
{
    int64_t end = sp_journal_end(fx->journal);
    for (int i = 0; i < 1000 && sp_ingest_indexed(fx->in) < end; i++)
        usleep(10000);
    assert_int_equal(end, sp_ingest_indexed(fx->in));
}

static void stored_are(fixture_t *fx, const char *const *want, size_t n)
{
    pthread_mutex_lock(&fx->fake.lock);
    assert_int_equal(n, fx->fake.n_stored);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(want[i], fx->fake.stored[i]);
    pthread_mutex_unlock(&fx->fake.lock);
}

static void mark_is_end(fixture_t *fx)
{
    char end[32];
    snprintf(end, sizeof(end), "%lld", (long long)sp_journal_end(fx->journal));
    pthread_mutex_lock(&fx->fake.lock);
    assert_string_equal(end, fx->fake.mark);
    pthread_mutex_unlock(&fx->fake.lock);
}

/* ---- tests ---------------------------------------------------------------------------------- */

/* Every open, in journal order, in batches of at most batch_max, each with the position it
 * reached; the commit callback sees each stored one. */
static void test_in_order(void **state)
{
    fixture_t *fx = *state;
    const char *want[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"};
    for (size_t i = 0; i < 10; i++)
        append(fx, i % 2 ? "odd" : "even", want[i]);
    start(fx, 4);
    wait_indexed(fx);
    stored_are(fx, want, 10);
    mark_is_end(fx);
    assert_true(fx->fake.biggest <= 4);
    assert_true(fx->fake.batches_stored >= 3);
    assert_int_equal(10, fx->committed_stored);

    /* What comes later follows. */
    append(fx, "even", "later");
    wait_indexed(fx);
    assert_string_equal("later", fx->fake.stored[10]);
    assert_false(sp_ingest_failing(fx->in, NULL, NULL, 0));
}

/* A backlog is stored in full batches: the writer takes what the reader has read ahead once it
 * is a batch or all that the journal holds, never the reader's first part of it alone. */
static void test_backlog_full_batches(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 600; i++) {
        char r[16];
        snprintf(r, sizeof(r), "b%d", i);
        append(fx, "c", r);
    }
    start(fx, 300);
    wait_indexed(fx);
    pthread_mutex_lock(&fx->fake.lock);
    assert_int_equal(600, fx->fake.n_stored);
    assert_string_equal("b599", fx->fake.stored[599]);
    assert_int_equal(300, fx->fake.biggest);
    assert_int_equal(2, fx->fake.calls);
    pthread_mutex_unlock(&fx->fake.lock);
    mark_is_end(fx);
}

/* Opens that hold much memory (here a 4 KB header each, in the event, its row's JSON and its
 * split) are read ahead up to ahead_bytes, not up to a batch: the batches are smaller, and every
 * open is stored in order. */
static void test_read_ahead_bytes(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 300; i++) {
        char r[16];
        snprintf(r, sizeof(r), "b%d", i);
        append_large(fx, "c", r, 4000);
    }
    start_ahead(fx, 300, 64 << 10);
    wait_indexed(fx);
    pthread_mutex_lock(&fx->fake.lock);
    assert_int_equal(300, fx->fake.n_stored);
    assert_string_equal("b0", fx->fake.stored[0]);
    assert_string_equal("b299", fx->fake.stored[299]);
    /* An open holds more than 8 KB: 64 KiB is at most 8 of them, and one more read past it. */
    assert_true(fx->fake.biggest >= 1 && fx->fake.biggest <= 9);
    assert_true(fx->fake.calls >= 300 / 9);
    pthread_mutex_unlock(&fx->fake.lock);
    mark_is_end(fx);
}

/* A store that cannot take a commit for now (busy, full, out of reach) gets the same batch
 * again, until it takes it: nothing lost, nothing twice. */
static void test_retry(void **state)
{
    fixture_t *fx = *state;
    uint64_t errors = atomic_load(&sp_metrics.store_errors);
    fx->fake.fail_calls = 2;
    fx->fake.fail_kind = SP_STORE_FAIL_RETRY;
    const char *want[] = {"a", "b", "c"};
    for (size_t i = 0; i < 3; i++)
        append(fx, "c", want[i]);
    start(fx, 0);
    wait_indexed(fx);
    stored_are(fx, want, 3);
    mark_is_end(fx);
    assert_int_equal(3, fx->fake.calls);
    assert_int_equal(errors + 2, atomic_load(&sp_metrics.store_errors));
    assert_false(sp_ingest_failing(fx->in, NULL, NULL, 0)); /* succeeding again */
    assert_int_equal(3, fx->committed_stored);
}

/* A store that fails every try of a commit makes the writer go back to where the store ends:
 * the opens the reader had read ahead in the meantime are dropped and read again, so that each
 * is stored once, in order. */
static void test_rewind_read_ahead(void **state)
{
    fixture_t *fx = *state;
    fx->fake.fail_calls = 5; /* every try of the first commit */
    fx->fake.fail_kind = SP_STORE_FAIL_RETRY;
    const char *want[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"};
    for (size_t i = 0; i < 10; i++)
        append(fx, "c", want[i]);
    start(fx, 2);
    for (int i = 0; i < 500 && !sp_ingest_failing(fx->in, NULL, NULL, 0); i++)
        usleep(10000);
    assert_true(sp_ingest_failing(fx->in, NULL, NULL, 0));
    append(fx, "c", "r10"); /* read after the writer went back */
    wait_indexed(fx);
    const char *all[] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10"};
    stored_are(fx, all, 11);
    mark_is_end(fx);
    assert_true(fx->fake.biggest <= 2);
    assert_int_equal(11, fx->committed_stored);
    assert_int_equal(11, fx->committed);
}

/* A batch the store refuses for its data is stored event by event: the one refused is left out
 * (counted, and failed for the commit callback), the others are kept in order, and the store
 * learns that it holds the journal up to the end, the refused one included. */
static void test_salvage(void **state)
{
    fixture_t *fx = *state;
    uint64_t failed = atomic_load(&sp_metrics.opens_failed);
    snprintf(fx->fake.refuse, sizeof(fx->fake.refuse), "bad");
    append(fx, "good", "a1");
    append(fx, "good", "a2");
    append(fx, "bad", "b1");
    append(fx, "good", "a3");
    append(fx, "bad", "b2"); /* the last one refused: the position still goes past it */
    start(fx, 0);
    wait_indexed(fx);
    const char *want[] = {"a1", "a2", "a3"};
    stored_are(fx, want, 3);
    mark_is_end(fx);
    assert_int_equal(failed + 2, atomic_load(&sp_metrics.opens_failed));
    assert_int_equal(5, fx->committed);
    assert_int_equal(3, fx->committed_stored);
}

/* One refused open in a large batch: the others are stored in order by halves, in a few
 * commits, not one commit per open. */
static void test_salvage_halves(void **state)
{
    fixture_t *fx = *state;
    snprintf(fx->fake.refuse, sizeof(fx->fake.refuse), "bad");
    char want_buf[63][16];
    const char *want[63];
    for (int i = 0, w = 0; i < 64; i++) {
        if (40 == i) {
            append(fx, "bad", "b");
            continue;
        }
        snprintf(want_buf[w], sizeof(want_buf[w]), "g%d", i);
        append(fx, "good", want_buf[w]);
        want[w] = want_buf[w];
        w++;
    }
    start(fx, 0);
    wait_indexed(fx);
    stored_are(fx, want, 63);
    mark_is_end(fx);
    pthread_mutex_lock(&fx->fake.lock);
    int calls = fx->fake.calls;
    size_t biggest = fx->fake.biggest;
    pthread_mutex_unlock(&fx->fake.lock);
    assert_int_equal(64, biggest); /* one batch first */
    /* The batch, then two halves at each of six levels at most, and the end's mark. */
    if (calls > 1 + 2 * 6 + 1)
        fail_msg("%d commits for one refused open among 64", calls);
}

/* When the store refuses every event alone too, it is the store that is wrong (its schema, its
 * permissions), not the events: they stay in the journal, and are stored once it takes them. */
static void test_store_refuses_all(void **state)
{
    fixture_t *fx = *state;
    uint64_t failed = atomic_load(&sp_metrics.opens_failed);
    fx->fake.refuse_all = true;
    append(fx, "c", "x1");
    append(fx, "c", "x2");
    int64_t start_pos = sp_journal_start(fx->journal);
    start(fx, 0);
    for (int i = 0; i < 100; i++) {
        pthread_mutex_lock(&fx->fake.lock);
        int calls = fx->fake.calls;
        pthread_mutex_unlock(&fx->fake.lock);
        if (calls >= 3) /* the batch, then each event alone */
            break;
        usleep(10000);
    }
    assert_int_equal(start_pos, sp_ingest_indexed(fx->in));
    assert_int_equal(failed, atomic_load(&sp_metrics.opens_failed));
    pthread_mutex_lock(&fx->fake.lock);
    fx->fake.refuse_all = false;
    pthread_mutex_unlock(&fx->fake.lock);
    wait_indexed(fx); /* the writer tries again a second later */
    const char *want[] = {"x1", "x2"};
    stored_are(fx, want, 2);
}

/* A faulted store (damaged, its files unwritable) stops the writer for good: nothing more is
 * written, waiters are not kept waiting, and the opens stay in the journal. */
static void test_fault(void **state)
{
    fixture_t *fx = *state;
    fx->fake.fail_calls = 1000;
    fx->fake.fail_kind = SP_STORE_FAIL_FAULT;
    append(fx, "c", "f1");
    start(fx, 0);
    for (int i = 0; i < 500 && !sp_ingest_halted(fx->in, NULL, 0); i++)
        usleep(10000);
    char why[128];
    assert_true(sp_ingest_halted(fx->in, why, sizeof(why)));
    assert_string_equal("fake: damaged", why);
    append(fx, "c", "f2");
    assert_false(sp_ingest_notify(fx->in, sp_journal_end(fx->journal), 0, NULL));
    usleep(300000);
    pthread_mutex_lock(&fx->fake.lock);
    assert_int_equal(1, fx->fake.calls);
    assert_int_equal(0, fx->fake.n_stored);
    pthread_mutex_unlock(&fx->fake.lock);
    assert_int_equal(sp_journal_start(fx->journal), sp_ingest_indexed(fx->in));
}

/* Stopping indexes what the journal holds first, and closes the store. */
static void test_stop_drains(void **state)
{
    fixture_t *fx = *state;
    start(fx, 2);
    for (int i = 0; i < 7; i++) {
        char r[16];
        snprintf(r, sizeof(r), "s%d", i);
        append(fx, "c", r);
    }
    sp_ingest_stop(fx->in);
    fx->in = NULL;
    assert_true(fx->fake.closed);
    assert_int_equal(7, fx->fake.n_stored);
    mark_is_end(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_full_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_ahead_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rewind_read_ahead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salvage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_salvage_halves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store_refuses_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
