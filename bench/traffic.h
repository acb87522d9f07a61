/* traffic: realistic opens for the benchmarks (clients, proxies, addresses, recipients). */
/* SPDX-License-Identifier: MIT */
#ifndef SP_BENCH_TRAFFIC_H
#define SP_BENCH_TRAFFIC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "net.h"

/*
 * The mix of a mailing's opens as senders' published statistics show it (Litmus's email client
 * market share, 2024: Apple Mail with Privacy Protection about half, Gmail about a quarter,
 * Outlook a tenth): each client with the agent and the headers it sends, and the address it
 * comes from (Apple's relays in 17.0.0.0/8, Google's proxies in 66.249.80.0/20, readers
 * anywhere). The weights add up to 100.
 */
typedef struct bench_client {
    int weight;
    const char *agent;
    const char *accept;
    const char *lang;      /* NULL: not sent */
    uint32_t net, netmask; /* the address: net | random & ~netmask; 0/0: any public address */
} bench_client_t;

static const bench_client_t bench_clients[] = {
    {45, "Mozilla/5.0", "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", NULL, 0x11000000u,
     0xff000000u},
    {22,
     "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
     "*/*", NULL, 0x42f95000u, 0xfffff000u},
    {8,
     "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36",
     "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "en-US,en;q=0.9", 0, 0},
    {7, "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)", "*/*",
     "en-GB", 0, 0},
    {6,
     "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Mobile/15E148",
     "image/webp,image/avif,video/*;q=0.8,image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5",
     "fr-FR,fr;q=0.9", 0, 0},
    {4, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
     "image/avif,image/webp,*/*", "de,en-US;q=0.7,en;q=0.3", 0, 0},
    {3,
     "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.144 Mobile Safari/537.36",
     "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8", "es-ES,es;q=0.9", 0, 0},
    {2, "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0",
     "image/avif,image/webp,*/*", "en-US,en;q=0.5", 0, 0},
    {2,
     "Mozilla/5.0 (compatible; YahooMailProxy; "
     "https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html)",
     "*/*", NULL, 0x4a06d000u, 0xffffff00u},
    {1, "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", "*/*", NULL, 0, 0},
};

/* xorshift64*: the same opens for the same seed on every run and every build. */
static inline uint64_t bench_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* A public IPv4 address (not 0/8, 10/8, 100.64/10, 127/8, 169.254/16, 172.16/12, 192.168/16,
 * 224/3), as real readers' opens come from. */
static inline uint32_t bench_public_v4(uint64_t *s)
{
    for (;;) {
        uint32_t a = (uint32_t)(bench_rand(s) >> 32);
        uint32_t o = a >> 24;
        if (0 == o || 10 == o || 127 == o || o >= 224 || (100 == o && 64 == ((a >> 16) & 0xc0)) ||
            (169 == o && 254 == ((a >> 16) & 0xff)) || (172 == o && 16 == ((a >> 16) & 0xf0)) ||
            (192 == o && 168 == ((a >> 16) & 0xff)))
            continue;
        return a;
    }
}

/* Fills EV (reset) with an open: its client by weight, its address, campaign "cCAMPAIGN", a
 * recipient of RECIPIENTS (each campaign mailing all of them) and its time TS_MS. The request
 * came through a trusted proxy, as bench/run's through nginx. */
static inline void bench_open(sp_event_t *ev, uint64_t *s, long campaign, long recipients,
                              int64_t ts_ms)
{
    int w = (int)(bench_rand(s) % 100);
    const bench_client_t *c = bench_clients;
    while (w >= c->weight) {
        w -= c->weight;
        c++;
    }
    uint32_t a = c->netmask ? (c->net | ((uint32_t)(bench_rand(s) >> 32) & ~c->netmask))
                            : bench_public_v4(s);
    ev->ts_ms = ts_ms;
    ev->kind = SP_EVENT_OPEN;
    snprintf(ev->campaign, sizeof(ev->campaign), "c%ld", campaign);
    snprintf(ev->recipient, sizeof(ev->recipient), "r%ld@example.com",
             (long)(bench_rand(s) % (uint64_t)recipients));
    snprintf(ev->ip, sizeof(ev->ip), "%u.%u.%u.%u", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff,
             a & 0xff);
    if (0 != sp_net_parse(ev->ip, &ev->addr))
        abort();
    snprintf(ev->visitor, sizeof(ev->visitor), "%016llx%016llx", (unsigned long long)bench_rand(s),
             (unsigned long long)bench_rand(s));
    const char *h[][2] = {
        {"Host", "t.example.com"},    {"User-Agent", c->agent},
        {"Accept", c->accept},        {"Accept-Encoding", "gzip, deflate, br"},
        {"Accept-Language", c->lang}, {"X-Forwarded-For", ev->ip},
        {"Connection", "close"},
    };
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (h[i][1] &&
            0 != sp_event_add_header(ev, h[i][0], strlen(h[i][0]), h[i][1], strlen(h[i][1])))
            abort();
}

#endif
