/* fuzz_ua: user agents with Client Hints, as the writer enriches an event (ua.c, enrich.c). */
/* SPDX-License-Identifier: MIT */
#include "classify.h"
#include "config.h"
#include "enrich.h"
#include "event.h"
#include "fuzz.h"
#include "ua.h"

/*
 * The input's first line is the User-Agent; each further line is a "Name: value" header,
 * such as Sec-CH-UA-Platform, -Platform-Version, -Model, -Arch or -Bitness, Via or From.
 * The event is enriched as the writer does it (uap-core's rules, Client Hints, architecture,
 * class rules; no GeoIP), and every derived field must be a string of its field. A parser
 * with a tiny cache must give the same answer from its cache as without it.
 */

static sp_enrich_t *enrich;
static sp_ua_parser_t *small;

static void setup(void)
{
    static sp_config_t cfg; /* kept: it holds lists the enrichment may point into */
    char err[512];
    sp_config_defaults(&cfg);
    cfg.no_geoip = true;
    enrich = sp_enrich_open(&cfg, err, sizeof(err));
    small = sp_ua_open(NULL, 4, err, sizeof(err));
    if (!enrich || !small) {
        fprintf(stderr, "fuzz_ua: %s\n", err);
        abort();
    }
}

#define TERMINATED(f) FUZZ_CHECK(fuzz_terminated(f, sizeof(f)))

static void check_agent(const sp_ua_agent_t *a)
{
    TERMINATED(a->family);
    TERMINATED(a->major);
    TERMINATED(a->minor);
    TERMINATED(a->patch);
    TERMINATED(a->patch_minor);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!enrich)
        setup();
    char *text = fuzz_text(data, size);
    sp_event_t *ev = sp_event_new(SP_HEADERS_MAX * (SP_HEADER_NAME_MAX + SP_HEADER_MAX + 2));
    snprintf(ev->campaign, sizeof(ev->campaign), "fuzz");
    snprintf(ev->ip, sizeof(ev->ip), "203.0.113.7");
    sp_net_parse(ev->ip, &ev->addr);
    char *save = NULL, *line = strtok_r(text, "\n", &save);
    if (line)
        sp_event_add_header(ev, "User-Agent", 10, line, strlen(line));
    while ((line = strtok_r(NULL, "\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        const char *value = colon + 1;
        while (' ' == *value)
            value++;
        sp_event_add_header(ev, line, (size_t)(colon - line), value, strlen(value));
    }

    sp_enrich_event(enrich, ev);
    TERMINATED(ev->browser);
    TERMINATED(ev->browser_version);
    TERMINATED(ev->os);
    TERMINATED(ev->os_version);
    TERMINATED(ev->device);
    TERMINATED(ev->device_brand);
    TERMINATED(ev->device_model);
    TERMINATED(ev->arch);
    TERMINATED(ev->rule);
    TERMINATED(ev->via);
    FUZZ_CHECK(ev->klass >= 0 && ev->klass < SP_CLASS_COUNT);

    sp_ua_t cached, again, uncached;
    sp_ua_parse(small, ev->user_agent, &cached);
    sp_ua_parse(small, ev->user_agent, &again);
    sp_ua_parse_uncached(small, ev->user_agent, &uncached);
    check_agent(&uncached.browser);
    check_agent(&uncached.os);
    TERMINATED(uncached.device.family);
    TERMINATED(uncached.device.brand);
    TERMINATED(uncached.device.model);
    FUZZ_CHECK(0 == memcmp(&cached, &uncached, sizeof(cached)));
    FUZZ_CHECK(0 == memcmp(&again, &uncached, sizeof(again)));

    sp_event_free(ev);
    free(text);
    return 0;
}
