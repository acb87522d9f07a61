/* ua_bench: user-agent parses per second, uncached and through the LRU cache. */
/* Usage: ua_bench [--agents FILE] [--once]
 *   --agents FILE  the agents of another uap-core test file (default: tests/test_ua.yaml)
 *   --once         parses every agent once, uncached, and prints only how many: a fixed
 *                  amount of work for `valgrind --tool=callgrind --toggle-collect=...` */
/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "ua.h"

#define TEST_UA_YAML "/usr/share/uap-core/tests/test_ua.yaml"
#define MAX_AGENTS   65536
#define THREADS      4

/* Used when uap-core's test file is not installed: what actually fetches tracking pixels. */
static const char *const builtin[] = {
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17126; Pro)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/119.0.0.0 Mobile Safari/537.36",
    "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
};

static char **agents;
static size_t nagents;

static void add_agent(const char *s)
{
    if (!agents)
        agents = malloc(MAX_AGENTS * sizeof *agents);
    if (!agents || !(agents[nagents++] = strdup(s)))
        abort();
}

/* Collects the user_agent_string values of uap-core's test file; 0 when it cannot be read. */
static size_t load_agents(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    yaml_parser_t yp;
    yaml_event_t ev;
    int want_value = 0, done = 0;
    yaml_parser_initialize(&yp);
    yaml_parser_set_input_file(&yp, f);
    while (!done && nagents < MAX_AGENTS && yaml_parser_parse(&yp, &ev)) {
        if (ev.type == YAML_SCALAR_EVENT) {
            const char *v = (const char *)ev.data.scalar.value;
            if (want_value)
                add_agent(v);
            /* Keys and values alternate; a value that reads "user_agent_string" is not a key,
             * but no agent in the file is spelt like that. */
            want_value = !want_value && strcmp(v, "user_agent_string") == 0;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&yp);
    fclose(f);
    return nagents;
}

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

typedef enum mode { CACHED, UNCACHED, EVERY_RULE } bench_mode_t;

static void parse(sp_ua_parser_t *p, bench_mode_t mode, const char *ua, sp_ua_t *out)
{
    if (mode == CACHED)
        sp_ua_parse(p, ua, out);
    else if (mode == UNCACHED)
        sp_ua_parse_uncached(p, ua, out);
    else
        sp_ua_parse_unfiltered(p, ua, out);
}

/* Parses until BUDGET seconds or MAX_PARSES parses, whichever comes first; returns parses/s.
 * CPU_RATE (may be NULL) gets parses per second of this thread's CPU time: what one core does,
 * even when other processes take turns on it. */
static double run(sp_ua_parser_t *p, bench_mode_t mode, double budget, size_t max_parses,
                  double *cpu_rate)
{
    sp_ua_t out;
    size_t n = 0;
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    double t0 = now(), t = t0;
    while (n < max_parses && t - t0 < budget) {
        for (size_t i = 0; i < 64 && n < max_parses; i++, n++)
            parse(p, mode, agents[n % nagents], &out);
        t = now();
    }
    if (cpu_rate)
        *cpu_rate = (double)n / (clock_s(CLOCK_THREAD_CPUTIME_ID) - c0);
    return (double)n / (t - t0);
}

typedef struct worker {
    sp_ua_parser_t *p;
    double rate;
} worker_t;

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    w->rate = run(w->p, CACHED, 0.5, 20000000, NULL);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *source = TEST_UA_YAML;
    int once = 0;
    bench_mode_t once_mode = UNCACHED;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--agents") == 0 && i + 1 < argc) {
            source = argv[++i];
        } else if (strcmp(argv[i], "--once") == 0) {
            once = 1;
        } else if (strcmp(argv[i], "--every-rule") == 0) {
            once_mode = EVERY_RULE;
        } else {
            fprintf(stderr, "usage: ua_bench [--agents FILE] [--once [--every-rule]]\n");
            return 2;
        }
    }

    char err[512];
    double t0 = now();
    sp_ua_parser_t *p = sp_ua_open(NULL, MAX_AGENTS, err, sizeof err);
    if (!p) {
        fprintf(stderr, "ua_bench: %s\n", err);
        return 1;
    }
    double open_ms = (now() - t0) * 1e3;

    if (load_agents(source) == 0) {
        source = "built-in list";
        for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
            add_agent(builtin[i]);
    }
    if (once) {
        sp_ua_t out;
        for (size_t i = 0; i < nagents; i++)
            parse(p, once_mode, agents[i], &out);
        printf("ua once: %zu agents from %s parsed uncached%s\n", nagents, source,
               once_mode == EVERY_RULE ? ", every rule tried" : "");
        goto done;
    }
    printf("ua open: %.1f ms; %zu agents from %s\n", open_ms, nagents, source);

    double cpu;
    double r = run(p, UNCACHED, 2.0, 100000, &cpu);
    printf("ua uncached: %.0f parses/s (%.1f us/parse); per CPU second %.0f (%.1f us)\n", r,
           1e6 / r, cpu, 1e6 / cpu);
    /* The baseline in the same run: what every uncached parse cost before the prefilter. */
    double base_cpu, base = run(p, EVERY_RULE, 2.0, 100000, &base_cpu);
    printf("ua uncached, every rule tried: %.0f parses/s (%.1f us/parse); per CPU second %.0f "
           "(%.1f us); the prefilter: %.1fx\n",
           base, 1e6 / base, base_cpu, 1e6 / base_cpu, cpu / base_cpu);

    for (size_t i = 0; i < nagents; i++) { /* warm: every agent fits the cache */
        sp_ua_t out;
        sp_ua_parse(p, agents[i], &out);
    }
    r = run(p, CACHED, 1.0, 20000000, NULL);
    printf("ua cached: %.0f parses/s (%.0f ns/parse)\n", r, 1e9 / r);

    pthread_t th[THREADS];
    worker_t w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker_t){.p = p};
        pthread_create(&th[i], NULL, worker_main, &w[i]);
    }
    double total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        total += w[i].rate;
    }
    printf("ua cached, %d threads: %.0f parses/s in total\n", THREADS, total);

    uint64_t hits, misses;
    sp_ua_stats(p, &hits, &misses);
    printf("ua cache: %llu hits, %llu misses\n", (unsigned long long)hits,
           (unsigned long long)misses);
done:
    for (size_t i = 0; i < nagents; i++)
        free(agents[i]);
    free(agents);
    sp_ua_close(p);
    return 0;
}
