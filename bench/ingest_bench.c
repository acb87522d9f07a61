/* ingest_bench: how fast the writer indexes a journal into a store (decode, enrich, count, store).
 */
/* Usage: ingest_bench [--events N] [--campaigns N] [--recipients N] [--rounds N] [--pg CONNINFO]
 *   --events N      opens journaled before each round's writer starts (200000)
 *   --campaigns N   campaigns the opens are spread over (20)
 *   --recipients N  recipients each campaign mailed (100000)
 *   --rounds N      fresh data folders (and stores), one after the other (3)
 *   --pg CONNINFO   index into PostgreSQL (a database spypixel_ingest_bench made afresh on that
 *                   server each round) instead of SQLite
 * Each round fills a new journal with realistic opens (bench/traffic.h: Apple's relays, Gmail's
 * proxy, desktop and phone clients, a public address each, through a trusted proxy), then starts
 * the writer (sp_ingest_start) and times it until the store holds them all: the same work as
 * bench/run's index replay, without the HTTP half or a second process. It prints opens per
 * second of wall-clock time and CPU microseconds per open (the process's, nearly all the
 * writer's: the main thread sleeps while it waits; PostgreSQL's own server is not in it), which
 * a busy machine disturbs less. */
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
#include "traffic.h"

#include <libpq-fe.h>

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

/* Journals N opens (bench/traffic.h) into J, a millisecond apart. */
static void fill(sp_journal_t *j, long n, long campaigns, long recipients)
{
    sp_event_t *ev = sp_event_new(16384);
    unsigned char *record = malloc(SP_EVENT_ENCODED_MAX);
    if (!record)
        abort();
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (long i = 0; i < n; i++) {
        sp_event_reset(ev);
        bench_open(ev, &seed, (long)(bench_rand(&seed) % (uint64_t)campaigns), recipients,
                   1700000000000 + i);
        size_t len = sp_event_encode(ev, record);
        if (sp_journal_append(j, record, len, NULL) < 0)
            die("append", "the journal refused a record");
    }
    sp_journal_flush(j, 10000);
    free(record);
    sp_event_free(ev);
}

/* A fresh database DB on the PostgreSQL server of CONNINFO; its conninfo into OUT. */
static void pg_fresh(const char *conninfo, char *out, size_t len)
{
    PGconn *c = PQconnectdb(conninfo);
    if (CONNECTION_OK != PQstatus(c))
        die("postgres", PQerrorMessage(c));
    PQclear(PQexec(c, "DROP DATABASE IF EXISTS spypixel_ingest_bench"));
    PGresult *r = PQexec(c, "CREATE DATABASE spypixel_ingest_bench");
    if (PGRES_COMMAND_OK != PQresultStatus(r))
        die("postgres", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    snprintf(out, len, "%s dbname=spypixel_ingest_bench", conninfo);
}

int main(int argc, char **argv)
{
    long events = 200000, recipients = 100000, campaigns = 20, rounds = 3;
    const char *pg = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (0 == strcmp(argv[i], "--pg"))
            pg = argv[i + 1];
        else if (0 == strcmp(argv[i], "--campaigns"))
            campaigns = v;
        else if (0 == strcmp(argv[i], "--events"))
            events = v;
        else if (0 == strcmp(argv[i], "--recipients"))
            recipients = v;
        else if (0 == strcmp(argv[i], "--rounds"))
            rounds = v;
    }
    if (events < 1 || recipients < 1 || campaigns < 1 || rounds < 1) {
        fprintf(stderr, "usage: ingest_bench [--events N] [--campaigns N] [--recipients N] "
                        "[--rounds N] [--pg CONNINFO]\n");
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
        if (pg) {
            snprintf(cfg.store, sizeof(cfg.store), "postgres");
            pg_fresh(pg, cfg.pg, sizeof(cfg.pg));
        }
        sp_store_t *store = sp_store_open(&cfg, err, sizeof(err));
        if (!store)
            die("store", err);
        for (long c = 0; c < campaigns; c++) {
            char id[32];
            snprintf(id, sizeof(id), "c%ld", c);
            if (store->ops->campaign_create(store, id, 1, err, sizeof(err)) < 0)
                die("store", err);
        }
        sp_journal_options_t jo = {.dir = jdir};
        sp_journal_t *j = sp_journal_open(&jo, err, sizeof(err));
        if (!j)
            die("journal", err);
        fill(j, events, campaigns, recipients);
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
