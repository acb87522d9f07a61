/* ingest_bench: how fast the writer indexes a journal into SQLite (decode, enrich, count, store).
 */
/* Usage: ingest_bench [--events N] [--recipients N] [--rounds N]
 *   --events N      opens journaled before each round's writer starts (200000)
 *   --recipients N  distinct recipients the opens cycle through (10000), as bench/run's
 *   --rounds N      fresh data folders, one after the other (3)
 * Each round fills a new journal with opens shaped like bench/run's requests, then starts the
 * writer (sp_ingest_start) on an SQLite store and times it until the store holds them all: the
 * same work as bench/run's index replay, without the HTTP half or a second process. It prints
 * opens per second of wall-clock time and CPU microseconds per open (the process's, nearly all
 * the writer's: the main thread sleeps while it waits), which a busy machine disturbs less. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "enrich.h"
#include "event.h"
#include "ingest.h"
#include "journal.h"
#include "store.h"

static const char *const headers[][2] = {
    {"Host", "127.0.0.1:8080"},
    {"User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like "
                   "Gecko) Chrome/120.0.0.0 Safari/537.36"},
    {"Accept", "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"},
    {"Accept-Encoding", "gzip, deflate, br"},
    {"Accept-Language", "en-GB,en;q=0.9"},
    {"Connection", "keep-alive"},
};

static double seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "ingest_bench: %s: %s\n", what, err);
    exit(1);
}

/* Journals N opens into DIR/journal. */
static void fill(sp_journal_t *j, long n, long recipients)
{
    sp_event_t *ev = sp_event_new(16384);
    unsigned char *record = malloc(SP_EVENT_ENCODED_MAX);
    if (!record)
        abort();
    for (long i = 0; i < n; i++) {
        sp_event_reset(ev);
        ev->ts_ms = 1700000000000 + i;
        ev->kind = SP_EVENT_OPEN;
        snprintf(ev->campaign, sizeof(ev->campaign), "bench");
        snprintf(ev->recipient, sizeof(ev->recipient), "r%ld@example.com", i % recipients);
        if (0 != sp_net_parse("192.0.2.0", &ev->addr))
            abort();
        snprintf(ev->ip, sizeof(ev->ip), "192.0.2.0");
        snprintf(ev->visitor, sizeof(ev->visitor), "%032lx", i % recipients);
        for (size_t h = 0; h < sizeof(headers) / sizeof(headers[0]); h++)
            if (0 != sp_event_add_header(ev, headers[h][0], strlen(headers[h][0]), headers[h][1],
                                         strlen(headers[h][1])))
                abort();
        size_t len = sp_event_encode(ev, record);
        if (sp_journal_append(j, record, len, NULL) < 0)
            die("append", "the journal refused a record");
    }
    sp_journal_flush(j, 10000);
    free(record);
    sp_event_free(ev);
}

int main(int argc, char **argv)
{
    long events = 200000, recipients = 10000, rounds = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (0 == strcmp(argv[i], "--events"))
            events = v;
        else if (0 == strcmp(argv[i], "--recipients"))
            recipients = v;
        else if (0 == strcmp(argv[i], "--rounds"))
            rounds = v;
    }
    if (events < 1 || recipients < 1 || rounds < 1) {
        fprintf(stderr, "usage: ingest_bench [--events N] [--recipients N] [--rounds N]\n");
        return 2;
    }
    char err[512];
    sp_config_t cfg;
    sp_config_defaults(&cfg);
    sp_enrich_t *enrich = sp_enrich_open(&cfg, err, sizeof(err));
    if (!enrich)
        die("enrich", err);
    for (long r = 0; r < rounds; r++) {
        char dir[] = "/tmp/ingest_bench.XXXXXX", jdir[64], cmd[128];
        if (!mkdtemp(dir))
            die("mkdtemp", "failed");
        snprintf(jdir, sizeof(jdir), "%s/journal", dir);
        snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
        sp_store_t *store = sp_store_open(&cfg, err, sizeof(err));
        if (!store || store->ops->campaign_create(store, "bench", 1, err, sizeof(err)) < 0)
            die("store", err);
        sp_journal_options_t jo = {.dir = jdir};
        sp_journal_t *j = sp_journal_open(&jo, err, sizeof(err));
        if (!j)
            die("journal", err);
        fill(j, events, recipients);
        int64_t end = sp_journal_end(j);

        double wall = seconds(CLOCK_MONOTONIC), cpu = seconds(CLOCK_PROCESS_CPUTIME_ID);
        sp_ingest_options_t io = {.journal = j, .store = store, .enrich = enrich};
        sp_ingest_t *in = sp_ingest_start(&io, err, sizeof(err));
        if (!in)
            die("ingest", err);
        while (sp_ingest_indexed(in) < end) {
            struct timespec pause = {0, 1000000L};
            nanosleep(&pause, NULL);
        }
        wall = seconds(CLOCK_MONOTONIC) - wall;
        cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu;
        sp_ingest_stop(in);
        sp_journal_close(j);
        printf("round %ld: %ld opens indexed in %.2f s: %.0f opens/s, %.2f us CPU per open\n",
               r + 1, events, wall, (double)events / wall, cpu * 1e6 / (double)events);
        fflush(stdout);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (0 != system(cmd))
            fprintf(stderr, "ingest_bench: could not remove %s\n", dir);
    }
    sp_enrich_close(enrich);
    sp_config_free(&cfg);
    return 0;
}
