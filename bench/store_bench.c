/* store_bench: loads a store with realistic events and times what the dashboard and API read. */
/* Usage: store_bench load|read [--data DIR] [--pg CONNINFO] [--events N] [--campaigns N]
 *                              [--recipients N] [--days N]
 *   load   writes N events (10,000,000) through the store interface (write_batch, batches of
 *          1,000, every event enriched as the writer does), campaigns c0..c(N-1) (1,000), each
 *          mailed to recipients r0..r(N-1)@example.com (100,000), over DAYS (90) ending now.
 *          Campaigns go out one after the other through the period and are opened over the
 *          days after (most of a campaign's opens come in its first two days); c0, the
 *          newsletter, gets a tenth of every day's opens. The clients are bench/traffic.h's.
 *   read   times, on that store: the campaign list; a campaign's summary; an events page (100)
 *          at the start and deep (keyset before=, 90% into the campaign); a recipients page
 *          (100) at the start and deep (after=); a recipient's page (100 of their events,
 *          over every campaign and in the largest); the CSV and JSON export of the largest
 *          campaign, read a page at a time and serialised as the API does, in rows/s; and
 *          the store's bytes per event on disk. Each timing is the median of 5 runs (the list
 *          and pages) after one run to warm the cache.
 * --data DIR is an SQLite data folder (made by load); --pg CONNINFO a PostgreSQL store instead
 * (load empties its spypixel tables first). */
/* SPDX-License-Identifier: MIT */
#include <inttypes.h>
#include <stdbool.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "config.h"
#include "enrich.h"
#include "event.h"
#include "query.h"
#include "report.h"
#include "serialize.h"
#include "store.h"
#include "traffic.h"

#define PAGE 100
#define RUNS 5

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
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
    fprintf(stderr, "store_bench: %s: %s\n", what, err);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ---- load ---------------------------------------------------------------------------- */

static void load(sp_store_t *st, const sp_config_t *cfg, long n, long campaigns, long recipients,
                 long days)
{
    char err[512];
    sp_enrich_t *enrich = sp_enrich_open(cfg, err, sizeof(err));
    if (!enrich)
        die("enrich", err);
    int64_t end = (int64_t)time(NULL) * 1000, span = (int64_t)days * 86400000;
    int64_t start = end - span;
    for (long c = 0; c < campaigns; c++) {
        char id[32];
        snprintf(id, sizeof(id), "c%ld", c);
        /* Each campaign is created the day it is sent; c0 at the start. */
        if (st->ops->campaign_create(st, id, start + span * c / campaigns, err, sizeof(err)) < 0)
            die("campaign", err);
    }
    enum { BATCH = 1000 };
    sp_event_t *evs[BATCH];
    uint64_t seed = 0x2545f4914f6cdd1dull;
    double t0 = now_s(), last = t0;
    for (long i = 0; i < n;) {
        size_t k = 0;
        for (; k < BATCH && i < n; k++, i++) {
            int64_t ts = start + span * i / n;
            /* The campaigns sent by then; this open is of one of the last few (a campaign's
             * opens come mostly in its first days), or the newsletter's. */
            long sent = 1 + (long)((int64_t)campaigns * (ts - start) / span);
            long c;
            uint64_t r = bench_rand(&seed);
            if (r % 10 == 0)
                c = 0;
            else {
                long back = (long)((r >> 8) % 64);
                back = back * back / 64; /* mostly the newest */
                c = sent - 1 - back;
                if (c < 1)
                    c = sent > 1 ? 1 + (long)((r >> 20) % (uint64_t)(sent - 1)) : 0;
            }
            evs[k] = sp_event_new(16384);
            bench_open(evs[k], &seed, c, recipients, ts);
            sp_enrich_event(enrich, evs[k]);
        }
        if (0 != st->ops->write_batch(st, evs, k, NULL, err, sizeof(err)))
            die("write_batch", err);
        for (size_t j = 0; j < k; j++)
            sp_event_free(evs[j]);
        if (now_s() - last > 10 || i == n) {
            last = now_s();
            printf("loaded %ld events in %.0f s (%.0f events/s)\n", i, last - t0,
                   (double)i / (last - t0));
            fflush(stdout);
        }
    }
    sp_enrich_close(enrich);
}

/* ---- read ---------------------------------------------------------------------------- */

typedef struct {
    int64_t n, last_id;
    char last[SP_ID_MAX + 1];
    sp_outbuf_t *out; /* an export's page */
    int json;
    bool collect;
    int64_t *ids; /* every ID, when collecting */
    size_t n_ids, cap_ids;
} reader_t;

static int count_campaign(void *ctx, const sp_campaign_t *c)
{
    reader_t *r = ctx;
    (void)c;
    r->n++;
    return 0;
}

static int count_recipient(void *ctx, const sp_recipient_t *rc)
{
    reader_t *r = ctx;
    snprintf(r->last, sizeof(r->last), "%s", rc->recipient);
    r->n++;
    return 0;
}

static int count_event(void *ctx, const sp_event_row_t *row)
{
    reader_t *r = ctx;
    r->n++;
    r->last_id = row->id;
    if (r->out && !r->json)
        sp_serialize_csv_row_buf(r->out, row);
    if (r->out && r->json)
        sp_serialize_event_buf(r->out, row, 1);
    if (r->collect) {
        if (r->n_ids == r->cap_ids) {
            r->cap_ids = r->cap_ids ? 2 * r->cap_ids : 4096;
            r->ids = realloc(r->ids, r->cap_ids * sizeof(*r->ids));
            if (!r->ids)
                abort();
        }
        r->ids[r->n_ids++] = row->id;
    }
    return 0;
}

/* The PostgreSQL backend that serves the store's connection (0: none, or not found), whose
 * CPU time /proc tells in nanoseconds (schedstat): on a shared machine the CPU a read cost says
 * more than its time by the clock. */
static int backend_pid;

static double backend_cpu_ms(void)
{
    if (!backend_pid)
        return 0;
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/schedstat", backend_pid);
    FILE *f = fopen(path, "r");
    unsigned long long ns = 0;
    if (f) {
        if (1 != fscanf(f, "%llu", &ns))
            ns = 0;
        fclose(f);
    }
    return (double)ns / 1e6;
}

static void find_backend(const char *conninfo)
{
    PGconn *c = PQconnectdb(conninfo);
    if (CONNECTION_OK != PQstatus(c))
        die("postgres", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND application_name = 'spypixel' AND pid <> pg_backend_pid()");
    if (PGRES_TUPLES_OK == PQresultStatus(r) && 1 == PQntuples(r))
        backend_pid = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
}

/* The medians of RUNS runs of WHAT (one more run first, not counted): its time in ms into
 * RESULT, its CPU in ms (this thread's, the backend's) into cpu_client and cpu_server. */
static double cpu_client, cpu_server;
#define TIME_MS(result, what)                                                                      \
    do {                                                                                           \
        double t_[RUNS], c_[RUNS], b_[RUNS];                                                       \
        for (int run_ = -1; run_ < RUNS; run_++) {                                                 \
            double s_ = now_s(), cs_ = cpu_s(), bs_ = backend_cpu_ms();                            \
            what;                                                                                  \
            if (run_ >= 0) {                                                                       \
                t_[run_] = (now_s() - s_) * 1e3;                                                   \
                c_[run_] = (cpu_s() - cs_) * 1e3;                                                  \
                b_[run_] = backend_cpu_ms() - bs_;                                                 \
            }                                                                                      \
        }                                                                                          \
        qsort(t_, RUNS, sizeof(double), cmp_double);                                               \
        qsort(c_, RUNS, sizeof(double), cmp_double);                                               \
        qsort(b_, RUNS, sizeof(double), cmp_double);                                               \
        result = t_[RUNS / 2];                                                                     \
        cpu_client = c_[RUNS / 2];                                                                 \
        cpu_server = b_[RUNS / 2];                                                                 \
    } while (0)

/* The CPU of the last TIME_MS, for its line. */
static void print_cpu(void)
{
    if (backend_pid)
        printf(" (CPU: client %.2f ms, server %.2f ms)\n", cpu_client, cpu_server);
    else
        printf(" (CPU %.2f ms)\n", cpu_client);
}

static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof(line), f))
        if (0 == strncmp(line, "VmHWM:", 6))
            v = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* An export as the API makes it: a reading by pages of 1,000 (export_open), each row serialised. */
static void export_rate(sp_store_t *st, const char *campaign, int json)
{
    char err[512];
    FILE *out = fopen("/dev/null", "w");
    sp_outbuf_t page = {0};
    reader_t r = {.out = &page, .json = json};
    long rss0 = peak_rss_kib();
    double s = now_s(), cpu = cpu_s();
    sp_store_export_t *x = st->ops->export_open(st, campaign, 0, -1, 1000);
    int rc;
    do {
        page.len = 0;
        if ((rc = st->ops->export_next(st, x, count_event, &r, err, sizeof(err))) < 0)
            die("export", err);
        fwrite(page.data, 1, page.len, out);
    } while (!rc);
    st->ops->export_close(st, x);
    double t = now_s() - s;
    cpu = cpu_s() - cpu;
    sp_outbuf_free(&page);
    fclose(out);
    printf("%s export of %s: %" PRId64
           " rows in %.2f s, %.0f rows/s; %.0f rows per CPU second (peak RSS %ld -> %ld KiB)\n",
           json ? "JSON" : "CSV", campaign, r.n, t, (double)r.n / t, (double)r.n / cpu, rss0,
           peak_rss_kib());
}

static int64_t sqlite_bytes(const char *dir)
{
    static const char *const files[] = {"spypixel.db", "spypixel.db-wal"};
    int64_t total = 0;
    for (size_t i = 0; i < 2; i++) {
        char path[4200];
        struct stat sb;
        snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        if (0 == stat(path, &sb))
            total += (int64_t)sb.st_blocks * 512;
    }
    return total;
}

static int64_t pg_bytes(const char *conninfo, int64_t *events)
{
    PGconn *c = PQconnectdb(conninfo);
    if (CONNECTION_OK != PQstatus(c))
        die("postgres", PQerrorMessage(c));
    PGresult *r = PQexec(c, "SELECT pg_database_size(current_database()),"
                            " (SELECT count(*) FROM events)");
    if (PGRES_TUPLES_OK != PQresultStatus(r))
        die("postgres", PQerrorMessage(c));
    int64_t bytes = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    *events = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return bytes;
}

/* Runs R's report of CAMPAIGN afresh: its figures of any run before freed, its zone kept. */
static void report_once(sp_store_t *st, const char *campaign, sp_report_t *r)
{
    sp_report_t ask = {.from = r->from, .to = r->to, .tz = r->tz, .bucket = r->bucket};
    r->tz = (sp_tz_t){0};
    sp_report_free(r);
    *r = ask;
    char err[512];
    if (0 != sp_report_run(st, campaign, r, err, sizeof(err)))
        die("report", err);
}

static void read_timings(sp_store_t *st, const sp_config_t *cfg, long campaigns)
{
    char err[512];
    double ms;
    reader_t r = {0};
    if (cfg->pg[0])
        find_backend(cfg->pg);
    TIME_MS(ms, r.n = 0;
            if (st->ops->campaign_list(st, count_campaign, &r, err, sizeof(err))) die("list", err));
    printf("campaign list (%" PRId64 " campaigns): %.2f ms", r.n, ms);
    print_cpu();
    sp_campaign_t camp;
    const char *big = "c0";
    char mid[32];
    snprintf(mid, sizeof(mid), "c%ld", campaigns / 2);
    TIME_MS(ms,
            if (0 != st->ops->campaign_get(st, big, &camp, err, sizeof(err))) die("summary", err));
    printf("campaign summary (%s, %" PRId64 " opens counted): %.3f ms", big, camp.total_views, ms);
    print_cpu();

    /* The largest campaign's report, by day in Europe/Berlin: over the 90 days before today's
     * local midnight (a range that starts and ends inside UTC days), and over all time. */
    for (int all = 0; all < 2; all++) {
        sp_report_t rep = {.bucket = SP_REPORT_DAY};
        if (0 != sp_tz_load(&rep.tz, "Europe/Berlin", err, sizeof(err)))
            die("zone", err);
        int64_t now = (int64_t)time(NULL), local = now + sp_tz_offset(&rep.tz, now);
        rep.to = all ? SP_REPORT_TIME_MAX : sp_tz_from_local(&rep.tz, local / 86400 * 86400) * 1000;
        rep.from = all ? 0 : rep.to - 90 * 86400000LL;
        TIME_MS(ms, report_once(st, big, &rep));
        report_once(st, big, &rep);
        printf("report of %s, %s (%" PRId64 " human opens, %" PRId64 " unique views, %zu days): "
               "%.2f ms",
               big, all ? "all time" : "90 days", rep.by_class[SP_CLASS_HUMAN], rep.unique_views,
               rep.n_series, ms);
        print_cpu();
        sp_report_free(&rep);
    }

    /* A week of the largest campaign's report whose ends fall inside hours (17 and 43 minutes
     * past: the edges read from the events), and its events of a day, both ending 45 days ago:
     * the middle of its life. */
    int64_t mid_hour = ((int64_t)time(NULL) - 45 * 86400) / 3600 * 3600000;
    {
        sp_report_t rep = {.bucket = SP_REPORT_DAY};
        if (0 != sp_tz_load(&rep.tz, "UTC", err, sizeof(err)))
            die("zone", err);
        rep.to = mid_hour + 43 * 60000;
        rep.from = mid_hour - 7 * 86400000LL + 17 * 60000;
        TIME_MS(ms, report_once(st, big, &rep));
        report_once(st, big, &rep);
        printf("report of %s, a week ending 45 days ago, ends inside hours (%" PRId64
               " human opens): %.2f ms",
               big, rep.by_class[SP_CLASS_HUMAN], ms);
        print_cpu();
        sp_report_free(&rep);
    }
    {
        sp_query_events_t q = {.campaign = big,
                               .klass = -1,
                               .kind = -1,
                               .from = mid_hour - 86400000LL + 17 * 60000,
                               .to = mid_hour + 17 * 60000,
                               .limit = PAGE};
        reader_t rp = {0};
        TIME_MS(ms, rp.n = 0; if (st->ops->events_query(st, &q, count_event, &rp, err, sizeof(err)))
                    die("events of a day", err));
        printf("events page of %s, a day ending 45 days ago, first %d (%" PRId64
               " events): %.2f ms",
               big, PAGE, rp.n, ms);
        print_cpu();
    }

    /* Every ID of the largest campaign, to know where deep is. */
    reader_t collect = {.collect = true};
    for (int64_t before = 0;;) {
        int64_t n0 = collect.n;
        if (0 != st->ops->events(st, big, before, 10000, count_event, &collect, err, sizeof(err)))
            die("events", err);
        if (collect.n - n0 < 10000)
            break;
        before = collect.last_id;
    }
    const char *names[] = {big, mid};
    for (int k = 0; k < 2; k++) {
        const char *c = names[k];
        int64_t deep = 0, n = 0;
        if (0 == k) {
            n = (int64_t)collect.n_ids;
            deep = n ? collect.ids[n * 9 / 10] : 0;
        } else {
            reader_t m = {0};
            if (0 != st->ops->events(st, c, 0, -1, count_event, &m, err, sizeof(err)))
                die("events", err);
            n = m.n;
            reader_t d = {0};
            if (0 != st->ops->events(st, c, 0, n * 9 / 10 + 1, count_event, &d, err, sizeof(err)))
                die("events", err);
            deep = d.last_id;
        }
        reader_t p = {0};
        TIME_MS(ms, p.n = 0; if (st->ops->events(st, c, 0, PAGE, count_event, &p, err, sizeof(err)))
                    die("page", err));
        printf("events page of %s (%" PRId64 " events), first %d: %.2f ms", c, n, PAGE, ms);
        print_cpu();
        TIME_MS(ms, p.n = 0; if (st->ops->events(st, c, deep, PAGE, count_event, &p, err,
                                                 sizeof(err))) die("page", err));
        printf("events page of %s, %d before ID %" PRId64 " (90%% deep): %.2f ms", c, PAGE, deep,
               ms);
        print_cpu();
        reader_t rp = {0};
        TIME_MS(ms, rp.n = 0; if (st->ops->recipients(st, c, "", PAGE, count_recipient, &rp, err,
                                                      sizeof(err))) die("recipients", err));
        printf("recipients page of %s, first %d: %.2f ms", c, PAGE, ms);
        print_cpu();
        TIME_MS(ms, rp.n = 0;
                if (st->ops->recipients(st, c, "r90000@example.com", PAGE, count_recipient, &rp,
                                        err, sizeof(err))) die("recipients", err));
        printf("recipients page of %s, %d after r90000@example.com: %.2f ms", c, PAGE, ms);
        print_cpu();
    }
    /* A recipient's page: their events over every campaign (their timeline), and in c0; the
     * first of c0's recipients. */
    reader_t first = {0};
    if (st->ops->recipients(st, big, "", 1, count_recipient, &first, err, sizeof(err)))
        die("recipients", err);
    for (int k = 0; k < 2; k++) {
        sp_query_events_t q = {.campaign = k ? big : NULL,
                               .recipient = first.last,
                               .klass = -1,
                               .kind = -1,
                               .to = INT64_MAX,
                               .limit = PAGE};
        reader_t rp = {0};
        TIME_MS(ms, rp.n = 0; if (st->ops->events_query(st, &q, count_event, &rp, err, sizeof(err)))
                    die("recipient", err));
        printf("recipient's page of %s, %s (%" PRId64 " events): %.2f ms", first.last,
               k ? big : "every campaign", rp.n, ms);
        print_cpu();
    }
    free(collect.ids);
    export_rate(st, big, 0);
    export_rate(st, big, 1);

    int64_t events = 0, bytes;
    if (cfg->pg[0]) {
        bytes = pg_bytes(cfg->pg, &events);
        printf("store: %" PRId64 " bytes (the database), %" PRId64
               " events, %.0f bytes per event\n",
               bytes, events, events ? (double)bytes / (double)events : 0.0);
    } else {
        bytes = sqlite_bytes(cfg->data_dir);
        printf("store: %" PRId64 " bytes (spypixel.db and its WAL)\n", bytes);
    }
    (void)r;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "load") && strcmp(argv[1], "read"))) {
        fprintf(stderr, "usage: store_bench load|read [--data DIR] [--pg CONNINFO] [--events N] "
                        "[--campaigns N] [--recipients N] [--days N]\n");
        return 2;
    }
    long events = 10000000, campaigns = 1000, recipients = 100000, days = 90;
    sp_config_t cfg;
    sp_config_defaults(&cfg);
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *v = argv[i + 1];
        if (0 == strcmp(argv[i], "--data"))
            snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", v);
        else if (0 == strcmp(argv[i], "--pg")) {
            snprintf(cfg.store, sizeof(cfg.store), "postgres");
            snprintf(cfg.pg, sizeof(cfg.pg), "%s", v);
        } else if (0 == strcmp(argv[i], "--events"))
            events = strtol(v, NULL, 10);
        else if (0 == strcmp(argv[i], "--campaigns"))
            campaigns = strtol(v, NULL, 10);
        else if (0 == strcmp(argv[i], "--recipients"))
            recipients = strtol(v, NULL, 10);
        else if (0 == strcmp(argv[i], "--days"))
            days = strtol(v, NULL, 10);
    }
    if (events < 1 || campaigns < 2 || recipients < 1 || days < 1)
        die("usage", "--events, --recipients, --days at least 1, --campaigns at least 2");
    char err[512];
    if (0 == strcmp(argv[1], "load")) {
        if (!cfg.pg[0]) {
            mkdir(cfg.data_dir, 0700);
        } else {
            PGconn *c = PQconnectdb(cfg.pg);
            if (CONNECTION_OK != PQstatus(c))
                die("postgres", PQerrorMessage(c));
            PQclear(PQexec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"));
            PQfinish(c);
        }
    }
    sp_store_t *st = sp_store_open(&cfg, err, sizeof(err));
    if (!st)
        die("store", err);
    if (0 == strcmp(argv[1], "load"))
        load(st, &cfg, events, campaigns, recipients, days);
    else
        read_timings(st, &cfg, campaigns);
    sp_store_close(st);
    sp_config_free(&cfg);
    return 0;
}
