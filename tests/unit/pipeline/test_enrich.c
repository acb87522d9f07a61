/* Unit tests for enrich: an event's browser, OS, device, architecture, place and class. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "classify.h"
#include "enrich.h"
#include "mmdb_writer.h"

static const char *const THUNDERBIRD =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101 Thunderbird/115.6.0";
static const char *const GMAIL =
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";
static const char *const CHROME =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36";

static char dir[64], db_path[128];
static sp_enrich_t *enrich;

/* One place in a tiny DB-IP-style database: 8.8.8.0/24. */
static int make_db(void)
{
    mw_db_t db;
    mw_init(&db, 4);
    uint32_t at = mw_here(&db);
    mw_buf_t *b = &db.data;
    const char *pairs[][2] = {{"city", "Mountain View"}, {"country_code", "US"},
                              {"postcode", ""},          {"state1", "California"},
                              {"state2", ""},            {"timezone", ""}};
    mw_map(b, 8);
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        mw_str(b, pairs[i][0]);
        mw_str(b, pairs[i][1]);
    }
    mw_str(b, "latitude");
    mw_float(b, 37.5f);
    mw_str(b, "longitude");
    mw_float(b, -122.25f);
    int rc = mw_insert(&db, "8.8.8.0/24", at);
    if (0 == rc)
        rc = mw_write(&db, db_path, "city ipv4");
    mw_free(&db);
    return rc;
}

static int group_setup(void **state)
{
    char err[256];
    snprintf(dir, sizeof(dir), "/tmp/test_enrich_XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(db_path, sizeof(db_path), "%s/city-ipv4.mmdb", dir);
    if (0 != make_db())
        return -1;
    sp_config_t cfg;
    sp_config_defaults(&cfg);
    cfg.geoip[0] = strdup(db_path);
    cfg.n_geoip = 1;
    enrich = sp_enrich_open(&cfg, err, sizeof(err));
    sp_config_free(&cfg);
    if (!enrich)
        print_error("enrich: %s\n", err);
    return enrich ? 0 : -1;
}

static int group_teardown(void **state)
{
    sp_enrich_close(enrich);
    unlink(db_path);
    rmdir(dir);
    return 0;
}

/* An event from address IP with user agent UA (NULL: none) and the headers after it (name,
 * value, ..., NULL). */
static sp_event_t *event(sp_event_kind_t kind, const char *ip, const char *ua, ...)
{
    sp_event_t *ev = sp_event_new(8192);
    ev->kind = kind;
    assert_int_equal(0, sp_net_parse(ip, &ev->addr));
    snprintf(ev->ip, sizeof(ev->ip), "%s", ip);
    if (ua)
        assert_int_equal(0, sp_event_add_header(ev, "User-Agent", 10, ua, strlen(ua)));
    va_list ap;
    va_start(ap, ua);
    for (const char *name; (name = va_arg(ap, const char *));) {
        const char *value = va_arg(ap, const char *);
        assert_int_equal(0, sp_event_add_header(ev, name, strlen(name), value, strlen(value)));
    }
    va_end(ap);
    sp_enrich_event(enrich, ev);
    return ev;
}

static void test_person(void **state)
{
    sp_event_t *ev = event(SP_EVENT_OPEN, "8.8.8.8", THUNDERBIRD, NULL);
    assert_string_equal("Thunderbird", ev->browser);
    assert_string_equal("115.6.0", ev->browser_version);
    assert_string_equal("Windows", ev->os);
    assert_string_equal("10", ev->os_version);
    assert_string_equal("x86_64", ev->arch);
    assert_string_equal("US", ev->country);
    assert_string_equal("California", ev->region);
    assert_string_equal("Mountain View", ev->city);
    assert_true(ev->has_coords);
    assert_true(37.5 == ev->latitude && -122.25 == ev->longitude);
    assert_int_equal(SP_CLASS_HUMAN, ev->klass);
    assert_string_equal("default-human", ev->rule);
    assert_string_equal("", ev->via);
    sp_event_free(ev);
}

/* Client hints say what the agent string hides: Windows 11, an ARM machine. */
static void test_client_hints(void **state)
{
    sp_event_t *ev = event(SP_EVENT_OPEN, "192.0.2.1", CHROME, "Sec-CH-UA-Platform", "\"Windows\"",
                           "Sec-CH-UA-Platform-Version", "\"15.0.0\"", "Sec-CH-UA-Arch", "\"arm\"",
                           "Sec-CH-UA-Bitness", "\"64\"", NULL);
    assert_string_equal("Chrome", ev->browser);
    assert_string_equal("Windows", ev->os);
    assert_string_equal("11", ev->os_version);
    assert_string_equal("arm64", ev->arch);
    /* An address outside the database: no place, no coordinates. */
    assert_string_equal("", ev->country);
    assert_false(ev->has_coords);
    sp_event_free(ev);
}

/* The class, its rule and what fetched it: a mail provider's proxy, a machine, the sender. */
static void test_classes(void **state)
{
    sp_event_t *ev = event(SP_EVENT_OPEN, "192.0.2.1", GMAIL, NULL);
    assert_int_equal(SP_CLASS_PROXY, ev->klass);
    assert_string_equal("GoogleImageProxy (Gmail)", ev->via);
    sp_event_free(ev);

    ev = event(SP_EVENT_CLICK, "192.0.2.1", "curl/8.5.0", NULL);
    assert_int_equal(SP_CLASS_MACHINE, ev->klass);
    assert_string_equal("http-library", ev->rule);
    sp_event_free(ev);

    ev = event(SP_EVENT_OPEN, "192.0.2.1", CHROME, "Sec-Purpose", "prefetch", NULL);
    assert_int_equal(SP_CLASS_MACHINE, ev->klass);
    assert_string_equal("browser prefetch", ev->via);
    sp_event_free(ev);

    ev = sp_event_new(1024);
    ev->kind = SP_EVENT_OPEN;
    ev->self_cookie = true; /* decided by the pixel handler */
    assert_int_equal(0, sp_net_parse("127.0.0.1", &ev->addr));
    snprintf(ev->ip, sizeof(ev->ip), "127.0.0.1");
    sp_enrich_event(enrich, ev);
    assert_int_equal(SP_CLASS_SELF, ev->klass);
    assert_string_equal("self-cookie", ev->rule);
    assert_string_equal("loopback", ev->geo_label);
    /* No agent at all: nothing parsed, but the fields are set, never left from before. */
    assert_string_equal("Other", ev->browser);
    assert_string_equal("", ev->arch);
    sp_event_free(ev);
}

/* An event enriched again (a reused buffer, a restart with new rules) keeps nothing of before. */
static void test_again(void **state)
{
    sp_event_t *ev = event(SP_EVENT_OPEN, "8.8.8.8", THUNDERBIRD, NULL);
    snprintf(ev->ip, sizeof(ev->ip), "192.0.2.7");
    sp_enrich_event(enrich, ev);
    assert_string_equal("", ev->city);
    assert_false(ev->has_coords);
    assert_string_equal("Thunderbird", ev->browser);
    uint64_t hits, misses;
    sp_enrich_ua_stats(enrich, &hits, &misses);
    assert_true(hits >= 1); /* the agent was parsed once, then found in the cache */
    char line[512];
    sp_enrich_describe(enrich, line, sizeof(line));
    assert_non_null(strstr(line, "city-ipv4.mmdb"));
    sp_event_free(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_person),
        cmocka_unit_test(test_client_hints),
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_again),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
