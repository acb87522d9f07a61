/* enrich: derives browser, OS, device, architecture, location and class of an event. */
/* SPDX-License-Identifier: MIT */
#include "enrich.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "geo.h"
#include "merge.h"
#include "tally.h"
#include "ua.h"

#define UA_CACHE_ENTRIES 4096

/* The architecture of an agent sent without Client Hints, remembered: finding it is a dozen
 * case-insensitive searches of the agent (8% of the writer's time), and a mailing's opens come
 * from a few agents. Direct-mapped, agents up to ARCH_UA_MAX bytes: bounded (about 150 KB). */
#define ARCH_SLOTS  512
#define ARCH_UA_MAX 255

struct sp_enrich {
    sp_ua_parser_t *ua;
    sp_geo_t *geo;
    sp_classifier_t *classifier;
    pthread_mutex_t arch_lock;
    struct arch_slot {
        char ua[ARCH_UA_MAX + 1]; /* "" : empty */
        char arch[32];
    } * arch;
};

sp_enrich_t *sp_enrich_open(const sp_config_t *cfg, char *err, size_t errlen)
{
    sp_enrich_t *e = calloc(1, sizeof(*e));
    if (!e || !(e->arch = calloc(ARCH_SLOTS, sizeof(*e->arch))))
        abort();
    pthread_mutex_init(&e->arch_lock, NULL);
    e->ua = sp_ua_open(NULL, UA_CACHE_ENTRIES, err, errlen);
    if (!e->ua)
        goto fail;
    const char *paths[SP_CONFIG_LIST_MAX];
    size_t n = 0;
    if (cfg->no_geoip)
        n = 0;
    else if (cfg->n_geoip)
        for (; n < cfg->n_geoip; n++)
            paths[n] = cfg->geoip[n];
    else
        n = sp_geo_default_paths(paths, SP_CONFIG_LIST_MAX);
    e->geo = sp_geo_open(paths, n, err, errlen);
    if (!e->geo)
        goto fail;
    e->classifier = sp_classify_open(cfg->apple_egress[0] ? cfg->apple_egress : NULL, err, errlen);
    if (!e->classifier)
        goto fail;
    return e;
fail:
    sp_enrich_close(e);
    return NULL;
}

void sp_enrich_close(sp_enrich_t *e)
{
    if (!e)
        return;
    sp_ua_close(e->ua);
    sp_geo_close(e->geo);
    sp_classify_close(e->classifier);
    pthread_mutex_destroy(&e->arch_lock);
    free(e->arch);
    free(e);
}

void sp_enrich_describe(const sp_enrich_t *e, char *buf, size_t len)
{
    char geo[256];
    sp_geo_describe(e->geo, geo, sizeof(geo));
    snprintf(buf, len, "geoip=%s apple_egress_ranges=%zu", geo,
             sp_classify_egress_count(e->classifier));
}

void sp_enrich_ua_stats(sp_enrich_t *e, uint64_t *hits, uint64_t *misses)
{
    sp_ua_stats(e->ua, hits, misses);
}

/* A bounded copy; per event this runs a dozen times, where snprintf's cost shows. */
static void set(char *dst, size_t len, const char *src)
{
    size_t n = src ? strnlen(src, len - 1) : 0;
    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static void arch(sp_enrich_t *e, sp_event_t *ev)
{
    const char *ch_arch = sp_event_header(ev, "Sec-CH-UA-Arch");
    const char *ch_bits = sp_event_header(ev, "Sec-CH-UA-Bitness");
    const char *ch_platform = sp_event_header(ev, "Sec-CH-UA-Platform");
    size_t n = ev->user_agent ? strlen(ev->user_agent) : 0;
    if (ch_arch || ch_bits || ch_platform || !n || n > ARCH_UA_MAX) {
        sp_ua_arch(ev->user_agent, ch_arch, ch_bits, ch_platform, ev->arch, sizeof(ev->arch));
        return;
    }
    /* A word at a time: FNV-1a's byte at a time was most of enrichment's own time. */
    uint64_t h = sp_hash_words(ev->user_agent, n);
    struct arch_slot *sl = &e->arch[h & (ARCH_SLOTS - 1)];
    pthread_mutex_lock(&e->arch_lock);
    if (0 == strcmp(sl->ua, ev->user_agent)) {
        set(ev->arch, sizeof(ev->arch), sl->arch);
        pthread_mutex_unlock(&e->arch_lock);
        return;
    }
    pthread_mutex_unlock(&e->arch_lock);
    sp_ua_arch(ev->user_agent, NULL, NULL, NULL, ev->arch, sizeof(ev->arch));
    pthread_mutex_lock(&e->arch_lock);
    memcpy(sl->ua, ev->user_agent, n + 1);
    set(sl->arch, sizeof(sl->arch), ev->arch);
    pthread_mutex_unlock(&e->arch_lock);
}

void sp_enrich_event(sp_enrich_t *e, sp_event_t *ev)
{
    if (SP_EVENT_READ == ev->kind) /* the store gives it its open's class */
        return;
    sp_ua_t ua;
    sp_ua_parse(e->ua, ev->user_agent, &ua);
    sp_ua_apply_client_hints(&ua, sp_event_header(ev, "Sec-CH-UA-Model"),
                             sp_event_header(ev, "Sec-CH-UA-Platform"),
                             sp_event_header(ev, "Sec-CH-UA-Platform-Version"));
    set(ev->browser, sizeof(ev->browser), ua.browser.family);
    sp_ua_version(&ua.browser, ev->browser_version, sizeof(ev->browser_version));
    set(ev->os, sizeof(ev->os), ua.os.family);
    sp_ua_version(&ua.os, ev->os_version, sizeof(ev->os_version));
    set(ev->device, sizeof(ev->device), ua.device.family);
    set(ev->device_brand, sizeof(ev->device_brand), ua.device.brand);
    set(ev->device_model, sizeof(ev->device_model), ua.device.model);
    arch(e, ev);

    sp_geo_result_t geo;
    sp_geo_lookup(e->geo, ev->ip, &geo);
    set(ev->country, sizeof(ev->country), geo.country);
    set(ev->region, sizeof(ev->region), geo.region);
    set(ev->city, sizeof(ev->city), geo.city);
    set(ev->geo_label, sizeof(ev->geo_label), geo.label);
    ev->has_coords = geo.has_coords;
    ev->latitude = geo.latitude;
    ev->longitude = geo.longitude;

    sp_classify_input_t in = {
        .is_click = SP_EVENT_CLICK == ev->kind,
        .user_agent = ev->user_agent,
        .peer = &ev->addr,
        .header = sp_event_header_cb,
        .header_ctx = ev,
        .self_referer = ev->self_referer,
        .self_cookie = ev->self_cookie,
        .self_ip = ev->self_ip,
    };
    sp_classify_result_t res;
    sp_classify(e->classifier, &in, &res);
    ev->klass = (int)res.klass;
    set(ev->rule, sizeof(ev->rule), res.rule);
    set(ev->via, sizeof(ev->via), res.via);
    const char *engagement = sp_tally_engagement(ev->klass, ev->engage, ev->read_ms);
    set(ev->engagement, sizeof(ev->engagement), engagement ? engagement : "");
}
