/* report_bench: a campaign's report from the rollups against the same figures read from events. */
/* Usage: report_bench (--sqlite DIR | --pg CONNINFO) [--events N] [--recipients N] [--days N]
 *                     [--runs N]
 *   --sqlite DIR    a new SQLite store in DIR (made; must not hold one)
 *   --pg CONNINFO   a PostgreSQL store (its campaign "report-bench" is replaced)
 *   --events N      events written (200000): opens of every class and clicks
 *   --recipients N  distinct recipients (20000)
 *   --days N        the days the events spread over (30)
 *   --runs N        each report timed N times, the median printed (5)
 * It writes the events through the store interface (write_batch, 1000 a batch, as the writer
 * does, so the rollups are kept as in a server), then times sp_report_run on three ranges (all
 * time; 7 days with edges inside hours; one day) in Europe/Berlin by day, from the rollups and
 * with every figure read from the events (the report's scan mode), checks that both agree,
 * and prints the times. */
/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classify.h"
#include "event.h"
#include "report.h"
#include "store_pg.h"
#include "store_sqlite.h"

#define CAMPAIGN "report-bench"
#define T0       1764547200000LL /* 2025-12-01T00:00:00Z */

static double clock_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
    fprintf(stderr, "report_bench: %s: %s\n", what, err);
    exit(1);
}

static void load(sp_store_t *s, long n, long recipients, long days)
{
    static const char *const browsers[] = {"Chrome", "Firefox", "Thunderbird", "Apple Mail",
                                           "Outlook"};
    static const char *const countries[] = {"DE", "FR", "US", "GB", "NL", "ES", "IT"};
    static const int classes[] = {SP_CLASS_HUMAN, SP_CLASS_HUMAN,   SP_CLASS_HUMAN, SP_CLASS_PROXY,
                                  SP_CLASS_PROXY, SP_CLASS_MACHINE, SP_CLASS_SELF,  SP_CLASS_HUMAN};
    enum { BATCH = 1000 };
    sp_event_t *evs[BATCH];
    char err[512];
    for (int i = 0; i < BATCH; i++)
        evs[i] = sp_event_new(16384);
    int64_t span = days * 86400000LL;
    double t = now_s(), cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (long at = 0; at < n; at += BATCH) {
        int k = n - at < BATCH ? (int)(n - at) : BATCH;
        for (int i = 0; i < k; i++) {
            long e = at + i;
            uint64_t x = (uint64_t)e * 2654435761u;
            sp_event_t *ev = evs[i];
            sp_event_reset(ev);
            ev->ts_ms = T0 + span * e / n; /* in time order, as a writer stores them */
            ev->kind = 0 == e % 10 ? SP_EVENT_CLICK : SP_EVENT_OPEN;
            ev->klass = classes[x % 8];
            snprintf(ev->campaign, sizeof(ev->campaign), CAMPAIGN);
            snprintf(ev->recipient, sizeof(ev->recipient), "r%ld@example.com",
                     (long)(x >> 8) % recipients);
            snprintf(ev->ip, sizeof(ev->ip), "192.0.2.%d", (int)(x % 250));
            snprintf(ev->visitor, sizeof(ev->visitor), "v%ld", e % 977);
            snprintf(ev->browser, sizeof(ev->browser), "%s", browsers[x % 5]);
            snprintf(ev->os, sizeof(ev->os), "%s", x % 3 ? "Windows" : "iOS");
            snprintf(ev->device, sizeof(ev->device), "%s", x % 3 ? "Other" : "iPhone");
            snprintf(ev->country, sizeof(ev->country), "%s", countries[x % 7]);
            snprintf(ev->city, sizeof(ev->city), "City %d", (int)(x % 300));
            snprintf(ev->rule, sizeof(ev->rule), "bench");
            if (SP_CLASS_PROXY == ev->klass)
                snprintf(ev->via, sizeof(ev->via), "GoogleImageProxy (Gmail)");
            if (SP_EVENT_CLICK == ev->kind) {
                char target[64];
                snprintf(target, sizeof(target), "https://example.com/%d", (int)(x % 5));
                if (0 != sp_event_set_target(ev, target))
                    abort();
            }
            if (0 != sp_event_add_header(ev, "Host", 4, "px.example", 10))
                abort();
        }
        if (0 != s->ops->write_batch(s, evs, (size_t)k, NULL, err, sizeof(err)))
            die("write_batch", err);
    }
    /* CPU time: a busy machine disturbs it less than the wall clock's. */
    printf("loaded %ld events in %.1f s, %.1f CPU us per event (rollups included)\n", n,
           now_s() - t, (clock_s(CLOCK_PROCESS_CPUTIME_ID) - cpu) * 1e6 / (double)n);
    if (getenv("REPORT_BENCH_LOAD_ONLY"))
        exit(0);
    for (int i = 0; i < BATCH; i++)
        sp_event_free(evs[i]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median time of RUNS reports over [FROM, TO), into *OUT (the last run's). */
static double timed(sp_store_t *s, int64_t from, int64_t to, bool scan, int runs, sp_report_t *out)
{
    double t[64];
    char err[512];
    runs = runs > 64 ? 64 : runs;
    for (int i = 0; i < runs; i++) {
        sp_report_t r = {.from = from, .to = to, .bucket = SP_REPORT_DAY, .scan = scan};
        if (0 != sp_tz_load(&r.tz, "Europe/Berlin", err, sizeof(err)))
            die("tz", err);
        double start = now_s();
        if (0 != sp_report_run(s, CAMPAIGN, &r, err, sizeof(err)))
            die("report", err);
        t[i] = now_s() - start;
        if (i + 1 < runs)
            sp_report_free(&r);
        else
            *out = r;
    }
    qsort(t, (size_t)runs, sizeof(t[0]), cmp_double);
    return t[runs / 2];
}

static void same(const sp_report_t *a, const sp_report_t *b)
{
    bool ok = a->unique_views == b->unique_views && a->unique_clickers == b->unique_clickers &&
              a->clicks == b->clicks && a->n_series == b->n_series &&
              0 == memcmp(a->by_class, b->by_class, sizeof(a->by_class)) &&
              0 == memcmp(a->hour_of_day, b->hour_of_day, sizeof(a->hour_of_day));
    for (size_t i = 0; ok && i < a->n_series; i++)
        ok = a->series[i].counted == b->series[i].counted &&
             a->series[i].clicks == b->series[i].clicks;
    for (int d = SP_ROLLUP_CLIENT; ok && d <= SP_ROLLUP_VIA; d++)
        ok = a->breakdowns[d].n == b->breakdowns[d].n &&
             a->breakdowns[d].others == b->breakdowns[d].others;
    if (!ok)
        die("check", "the rollups and the events disagree");
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *pg = NULL;
    long n = 200000, recipients = 20000, days = 30;
    int runs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (0 == strcmp(argv[i], "--sqlite"))
            dir = argv[i + 1];
        else if (0 == strcmp(argv[i], "--pg"))
            pg = argv[i + 1];
        else if (0 == strcmp(argv[i], "--events"))
            n = atol(argv[i + 1]);
        else if (0 == strcmp(argv[i], "--recipients"))
            recipients = atol(argv[i + 1]);
        else if (0 == strcmp(argv[i], "--days"))
            days = atol(argv[i + 1]);
        else if (0 == strcmp(argv[i], "--runs"))
            runs = atoi(argv[i + 1]);
    }
    if (!dir == !pg || n < 1 || recipients < 1 || days < 1 || runs < 1) {
        fprintf(stderr, "usage: report_bench (--sqlite DIR | --pg CONNINFO) [--events N] "
                        "[--recipients N] [--days N] [--runs N]\n");
        return 2;
    }
    char err[512];
    sp_store_t *s = dir ? sp_store_sqlite_open(dir, false, err, sizeof(err))
                        : sp_store_pg_open(pg, err, sizeof(err));
    if (!s)
        die("open", err);
    int64_t deleted;
    if (s->ops->campaign_delete(s, CAMPAIGN, &deleted, err, sizeof(err)) < 0 ||
        s->ops->campaign_create(s, CAMPAIGN, 1, err, sizeof(err)) < 0)
        die("campaign", err);
    load(s, n, recipients, days);
    const int64_t H = 3600000;
    const struct {
        const char *name;
        int64_t from, to;
    } ranges[] = {
        {"all time", 0, SP_REPORT_TIME_MAX},
        {"7 days, edges inside hours", T0 + 10 * 24 * H + 1234567, T0 + 17 * 24 * H + 2345678},
        {"1 day", T0 + 20 * 24 * H, T0 + 21 * 24 * H},
    };
    printf("%s, %ld events, %ld recipients, %ld days; median of %d runs\n", s->ops->name, n,
           recipients, days, runs);
    printf("%-28s %12s %12s %8s\n", "range", "rollups ms", "events ms", "x");
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        sp_report_t a, b;
        double ta = timed(s, ranges[i].from, ranges[i].to, false, runs, &a);
        double tb = timed(s, ranges[i].from, ranges[i].to, true, runs, &b);
        same(&a, &b);
        printf("%-28s %12.1f %12.1f %8.1f   (views %lld, unique %lld)\n", ranges[i].name, ta * 1e3,
               tb * 1e3, tb / ta,
               (long long)(a.by_class[SP_CLASS_HUMAN] + a.by_class[SP_CLASS_PROXY]),
               (long long)a.unique_views);
        sp_report_free(&a);
        sp_report_free(&b);
    }
    s->ops->close(s);
    return 0;
}
