/* Unit tests for serialize and the field table: an event's JSON and CSV, campaigns, recipients. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serialize.h"

#define FFFD "\xEF\xBF\xBD"

/* A stored event with every field set. */
static sp_event_row_t full_row(void)
{
    return (sp_event_row_t){
        .id = 42,
        .ts_ms = 1700000000123,
        .kind = SP_EVENT_OPEN,
        .campaign = "spring",
        .recipient = "ann@example.com",
        .ip = "192.0.2.0",
        .user_agent = "Mozilla/5.0 (test)",
        .browser = "Firefox",
        .browser_version = "120.0",
        .os = "Windows",
        .os_version = "10",
        .device = "Other",
        .device_brand = "",
        .device_model = "",
        .arch = "x86_64",
        .country = "DE",
        .region = "Bavaria",
        .city = "M\xc3\xbcnchen",
        .latitude = 48.25,
        .longitude = -11.5,
        .geo_label = "",
        .via = "",
        .klass = SP_CLASS_HUMAN,
        .rule = "default-human",
        .cookies_json = "{\"a\":\"1\"}",
        .headers_json = "{\"Host\":\"px.example\"}",
        .referer = NULL,
        .target = "",
        .visitor = "0123456789abcdef0123456789abcdef",
        .engagement = NULL,
        .read_ms = -1,
    };
}

static char *dump(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    assert_non_null(text);
    return text;
}

static void text_is(char *got, const char *want)
{
    if (0 != strcmp(got, want))
        fail_msg("got\n%s\nwant\n%s", got, want);
    free(got);
}

/* The API's JSON of an event, as it was written out by hand before the field table: the same
 * keys in the same order, the same values. */
static void test_event_json(void **state)
{
    sp_event_row_t r = full_row();
    text_is(dump(sp_serialize_event(&r)),
            "{\"id\":42,\"ts\":\"2023-11-14T22:13:20.123Z\",\"kind\":\"open\",\"campaign\":"
            "\"spring\",\"recipient\":\"ann@example.com\",\"ip\":\"192.0.2.0\",\"user_agent\":"
            "\"Mozilla/5.0 (test)\",\"browser\":\"Firefox\",\"browser_version\":\"120.0\","
            "\"os\":\"Windows\",\"os_version\":\"10\",\"device\":\"Other\",\"device_brand\":"
            "\"\",\"device_model\":\"\",\"arch\":\"x86_64\",\"country\":\"DE\",\"region\":"
            "\"Bavaria\",\"city\":\"M\xc3\xbcnchen\",\"latitude\":48.25,\"longitude\":-11.5,"
            "\"geo_label\":\"\",\"via\":\"\",\"class\":\"human\",\"rule\":\"default-human\","
            "\"cookies\":{\"a\":\"1\"},\"headers\":{\"Host\":\"px.example\"},\"referer\":null,"
            "\"target\":\"\",\"visitor\":\"0123456789abcdef0123456789abcdef\","
            "\"engagement\":null,\"read_ms\":null}");
    /* The tracking block's fields: a read open, a print. */
    r.engagement = "read";
    r.read_ms = 12345;
    json_t *jr = sp_serialize_event(&r);
    assert_string_equal("read", json_string_value(json_object_get(jr, "engagement")));
    assert_int_equal(12345, json_integer_value(json_object_get(jr, "read_ms")));
    json_decref(jr);
    r.kind = SP_EVENT_PRINT;
    jr = sp_serialize_event(&r);
    assert_string_equal("print", json_string_value(json_object_get(jr, "kind")));
    json_decref(jr);
    r.kind = SP_EVENT_FORWARD;
    jr = sp_serialize_event(&r);
    assert_string_equal("forward", json_string_value(json_object_get(jr, "kind")));
    json_decref(jr);
    r = full_row();

    /* What may be missing: no agent, no coordinates, no time; a click; a class out of range;
     * stored JSON that does not parse. */
    r.user_agent = NULL;
    r.referer = "https://mail.example/";
    r.latitude = r.longitude = NAN;
    r.ts_ms = 0;
    r.kind = SP_EVENT_CLICK;
    r.klass = 9;
    r.cookies_json = "not json";
    r.headers_json = NULL;
    json_t *j = sp_serialize_event(&r);
    assert_true(json_is_null(json_object_get(j, "user_agent")));
    assert_string_equal("https://mail.example/", json_string_value(json_object_get(j, "referer")));
    assert_true(json_is_null(json_object_get(j, "latitude")));
    assert_true(json_is_null(json_object_get(j, "longitude")));
    assert_true(json_is_null(json_object_get(j, "ts")));
    assert_string_equal("click", json_string_value(json_object_get(j, "kind")));
    assert_string_equal("unknown", json_string_value(json_object_get(j, "class")));
    assert_int_equal(0, json_object_size(json_object_get(j, "cookies")));
    assert_int_equal(0, json_object_size(json_object_get(j, "headers")));
    assert_int_equal(SP_EVENT_N_FIELDS, json_object_size(j));
    json_decref(j);
}

/* Text a store kept from before the repair on the way in reads repaired, as new text does. */
static void test_event_json_repairs(void **state)
{
    sp_event_row_t r = full_row();
    r.user_agent = "ok \xff\xfe \xe2\x82x caf\xc3\xa9";
    r.city = "\xc3";
    json_t *j = sp_serialize_event(&r);
    assert_string_equal("ok " FFFD FFFD " " FFFD "x caf\xc3\xa9",
                        json_string_value(json_object_get(j, "user_agent")));
    assert_string_equal(FFFD, json_string_value(json_object_get(j, "city")));
    json_decref(j);
}

static char *csv(const sp_event_row_t *r, bool header)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    if (header)
        sp_serialize_csv_header(f);
    if (r)
        sp_serialize_csv_row(f, r);
    fclose(f);
    return text;
}

/* The CSV export: the header and the columns as they were written out by hand. */
/* The export's text form is json_dumps(sp_serialize_event(row), JSON_INDENT(1)) byte for byte,
 * at any depth, for rows of every shape: stored objects with escapes, surrogate pairs, arrays,
 * repeated keys, NULs, numbers, broken text and invalid UTF-8 (those go through jansson);
 * reals of every size; text needing repair and control characters. */
static void text_form_is_jansson(const sp_event_row_t *r)
{
    for (int depth = 0; depth < 3; depth++) {
        json_t *j = sp_serialize_event(r);
        char *want = json_dumps(j, JSON_INDENT(1));
        json_decref(j);
        assert_non_null(want);
        /* jansson's dump at DEPTH: each line after the first DEPTH spaces further in. */
        char *nested = malloc(strlen(want) * 4 + 1), *o = nested;
        assert_non_null(nested);
        for (const char *c = want; *c; c++) {
            *o++ = *c;
            if ('\n' == *c)
                for (int d = 0; d < depth; d++)
                    *o++ = ' ';
        }
        *o = '\0';
        char *got = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&got, &len);
        assert_non_null(f);
        sp_serialize_event_text(f, r, depth);
        fclose(f);
        if (0 != strcmp(got, nested))
            fail_msg("depth %d: got\n%s\nwant\n%s", depth, got, nested);
        free(got);
        free(nested);
        free(want);
    }
}

static void test_event_text_form(void **state)
{
    static const char *const objects[] = {
        "{}",
        " { } ",
        "{\"Host\":\"px.example\",\"User-Agent\":\"Mozilla/5.0\"}",
        "{\"a\":\"q\\\"uote\\\\back\\/slash\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"}",
        "{\"e\":\"\\u00e9\\u20ac\\ud83d\\ude00 \xc3\xa9\"}",
        "{\"X-Forwarded-For\":[\"1.2.3.4\",\"5.6.7.8\"],\"Accept\":\"*/*\"}",
        "{\"empty\":[],\"v\":\"\"}",
        "{\"dup\":\"1\",\"dup\":\"2\"}",
        "{\"nul\":\"a\\u0000b\"}",
        "{\"n\":1,\"t\":true,\"z\":null,\"o\":{\"x\":[1,2.5]}}",
        "[\"array\",\"on top\"]",
        "{\"lone\":\"\\ud83d\"}",
        "{\"low\":\"\\ude00\"}",
        "{\"bad\":\"\\x\"}",
        "{\"ctl\":\"a\tb\"}",
        "{\"bad utf8\":\"\xff\"}",
        "{\"a\":\"1\"} trailing",
        "{\"a\":\"1\",}",
        "not json",
        "",
        "{\"k\\u00e9y\":\"v\", \"K2\" : [ \"a\" , \"b\" ] }",
    };
    static const double coords[] = {
        48.25, -11.5, 0.0, 1e-5, -2.5e-7, 1e22, 51.514200000000002, 3.0, 123456789.0, NAN};
    static const char *const texts[] = {"",
                                        "plain",
                                        "tab\there",
                                        "nl\nthere",
                                        "\x01\x1f\x7f",
                                        "quote\"back\\",
                                        "bad \xff\xfe utf8",
                                        "\xc3\xa9\xe2\x82\xac",
                                        "=cmd|calc"};
    sp_event_row_t r = full_row();
    for (size_t i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
        r.headers_json = objects[i];
        r.cookies_json = objects[(i + 3) % (sizeof(objects) / sizeof(objects[0]))];
        r.latitude = coords[i % (sizeof(coords) / sizeof(coords[0]))];
        r.longitude = coords[(i + 4) % (sizeof(coords) / sizeof(coords[0]))];
        r.user_agent = i % 4 ? texts[i % (sizeof(texts) / sizeof(texts[0]))] : NULL;
        r.city = texts[(i + 2) % (sizeof(texts) / sizeof(texts[0]))];
        r.ts_ms = i % 5 ? 1700000000123 + (int64_t)i : 0;
        r.kind = i % 2 ? SP_EVENT_CLICK : SP_EVENT_OPEN;
        r.klass = (int64_t)(i % 6);
        r.id = (int64_t)i * 1000003;
        text_form_is_jansson(&r);
    }
    r.headers_json = NULL;
    text_form_is_jansson(&r);
}

static void test_csv(void **state)
{
    text_is(csv(NULL, true),
            "id,ts,kind,campaign,recipient,class,rule,via,ip,country,region,city,latitude,"
            "longitude,browser,browser_version,os,os_version,device,arch,user_agent,referer,"
            "target,cookies,headers,engagement,read_ms\n");
    sp_event_row_t r = full_row();
    r.user_agent = "=cmd|' /C calc'!A0";
    r.referer = "say \"hi\"";
    r.rule = "@rule";
    r.latitude = 47.376887;
    r.longitude = -8.541694;
    r.city = "Z\xc3\xbcrich \xff";
    text_is(csv(&r, false),
            "\"42\",\"2023-11-14T22:13:20.123Z\",\"open\",\"spring\",\"ann@example.com\","
            "\"human\",\"'@rule\",\"\",\"192.0.2.0\",\"DE\",\"Bavaria\",\"Z\xc3\xbcrich " FFFD
            "\",\"47.3769\",\"-8.5417\",\"Firefox\",\"120.0\",\"Windows\",\"10\",\"Other\","
            "\"x86_64\",\"'=cmd|' /C calc'!A0\",\"say \"\"hi\"\"\",\"\",\"{\"\"a\"\":\"\"1\"\"}\","
            "\"{\"\"Host\"\":\"\"px.example\"\"}\",\"\",\"\"\n");
    r.engagement = "skimmed";
    r.read_ms = 4000;
    char *tail = csv(&r, false);
    assert_non_null(strstr(tail, ",\"skimmed\",\"4000\"\n"));
    free(tail);
    r.engagement = NULL;
    r.read_ms = -1;
    r.user_agent = NULL;
    r.latitude = r.longitude = NAN;
    char *line = csv(&r, false);
    assert_non_null(strstr(line, ",\"Bavaria\",\"Z\xc3\xbcrich " FFFD "\",\"\",\"\",\"Firefox\""));
    assert_non_null(strstr(line, ",\"x86_64\",\"\",\"say"));
    free(line);
}

/* The table itself: names unique, CSV columns 1..N without a gap, the ID first and the only one
 * of its kind, and the row's members where the table says. */
static void test_field_table(void **state)
{
    int csv_columns = 0, ids = 0;
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++) {
        const sp_event_field_t *f = &sp_event_fields[i];
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(f->name, sp_event_fields[j].name);
        csv_columns += f->csv > 0;
        ids += SP_FIELD_ID == f->kind;
        assert_true(f->offset < sizeof(sp_event_row_t));
    }
    assert_int_equal(1, ids);
    assert_int_equal(SP_FIELD_ID, sp_event_fields[0].kind);
    assert_int_equal(27, csv_columns);
    for (int c = 1; c <= csv_columns; c++) {
        int found = 0;
        for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
            found += sp_event_fields[i].csv == c;
        assert_int_equal(1, found);
    }
    assert_int_equal(offsetof(sp_event_row_t, visitor),
                     sp_event_fields[SP_EVENT_FIELD_visitor].offset);
    assert_string_equal("class", sp_event_fields[SP_EVENT_FIELD_klass].name);

    char cols[1024], params[512];
    sp_event_fields_sql(cols, sizeof(cols), false, params, sizeof(params), '$');
    assert_int_equal(0, strncmp(cols, "ts, kind, campaign, ", 20));
    assert_non_null(strstr(cols, ", cookies, headers, referer, target, visitor"));
    assert_int_equal(0, strncmp(params, "$1, $2, $3, ", 12));
    char last[16];
    snprintf(last, sizeof(last), ", $%d", SP_EVENT_N_FIELDS - 1);
    assert_string_equal(last, params + strlen(params) - strlen(last));
    sp_event_fields_sql(cols, sizeof(cols), true, NULL, 0, '?');
    assert_int_equal(0, strncmp(cols, "id, ts, kind, ", 14));
}

/* sp_event_row: the event's fields, its text repaired once, its JSON made and kept, its texts
 * copies the row holds (test_event checks how). */
static void test_row_of_event(void **state)
{
    sp_event_t *ev = sp_event_new(4096);
    ev->id = 7;
    ev->ts_ms = 1000;
    ev->kind = SP_EVENT_CLICK;
    ev->klass = SP_CLASS_PROXY;
    snprintf(ev->campaign, sizeof(ev->campaign), "c");
    snprintf(ev->region, sizeof(ev->region), "\xc3");
    assert_int_equal(0, sp_event_set_target(ev, "https://t.example/"));
    const char *ua = "agent \xff";
    assert_int_equal(0, sp_event_add_header(ev, "User-Agent", 10, ua, strlen(ua)));
    assert_int_equal(0, sp_event_add_header(ev, "Cookie", 6, "k=v", 3));
    const sp_event_row_t *r = sp_event_row(ev);
    assert_int_equal(7, r->id);
    assert_int_equal(1000, r->ts_ms);
    assert_int_equal(SP_EVENT_CLICK, r->kind);
    assert_int_equal(SP_CLASS_PROXY, r->klass);
    assert_string_equal("agent " FFFD, r->user_agent);
    assert_string_equal(FFFD, r->region);
    assert_string_equal("https://t.example/", r->target);
    assert_ptr_not_equal(ev->target, r->target); /* a copy */
    assert_null(r->referer);
    assert_true(isnan(r->latitude));
    assert_string_equal("{\"k\":\"v\"}", r->cookies_json);
    assert_string_equal("{\"User-Agent\":\"agent " FFFD "\",\"Cookie\":\"k=v\"}", r->headers_json);
    /* Made once: later calls give the same row, with the ID the store set since. */
    ev->id = 8;
    assert_ptr_equal(r, sp_event_row(ev));
    assert_int_equal(8, r->id);
    ev->has_coords = true;
    ev->latitude = 1.5;
    assert_true(isnan(sp_event_row(ev)->latitude));
    sp_event_reset(ev); /* a reused event starts over */
    ev->has_coords = true;
    assert_true(1.5 == sp_event_row(ev)->latitude);
    sp_event_free(ev);
}

static void test_campaign_json(void **state)
{
    sp_campaign_t c = {.id = "spring",
                       .created_at = 1700000000123,
                       .last_view_at = 0,
                       .total_views = 5,
                       .unique_views = 3,
                       .by_class = {4, 1, 7, 2},
                       .clicks = 6};
    text_is(dump(sp_serialize_campaign(&c)),
            "{\"id\":\"spring\",\"total_views\":5,\"unique_views\":3,\"last_view_at\":null,"
            "\"created_at\":\"2023-11-14T22:13:20.123Z\",\"by_class\":{\"human\":4,\"proxy\":1,"
            "\"machine\":7,\"self\":2},\"clicks\":6,\"archived\":false}");
    c.archived = true;
    json_t *j = sp_serialize_campaign(&c);
    sp_serialize_rates(j, &(sp_store_sent_t){.sent = 4, .openers = 2, .clickers = 1});
    text_is(dump(j),
            "{\"id\":\"spring\",\"total_views\":5,\"unique_views\":3,\"last_view_at\":null,"
            "\"created_at\":\"2023-11-14T22:13:20.123Z\",\"by_class\":{\"human\":4,"
            "\"proxy\":1,\"machine\":7,\"self\":2},\"clicks\":6,\"archived\":true,"
            "\"sent\":4,\"sent_opened\":2,\"sent_clicked\":1,\"open_rate\":0.5,"
            "\"click_rate\":0.25,\"click_to_open_rate\":0.5}");
    j = json_object();
    sp_serialize_rates(j, &(sp_store_sent_t){0});
    text_is(dump(j), "{\"sent\":null,\"sent_opened\":null,\"sent_clicked\":null,"
                     "\"open_rate\":null,\"click_rate\":null,\"click_to_open_rate\":null}");
    sp_recipient_t r = {.recipient = "ann",
                        .views = 2,
                        .by_class = {1, 1, 3, 4},
                        .clicks = 1,
                        .first_at = 1700000000123,
                        .last_at = 0};
    text_is(dump(sp_serialize_recipient(&r)),
            "{\"recipient\":\"ann\",\"views\":2,\"machine\":3,\"self\":4,\"clicks\":1,"
            "\"first_view_at\":\"2023-11-14T22:13:20.123Z\",\"last_view_at\":null}");
    sp_unknown_campaign_t u = {.id = "gone", .opens = 9, .first_at = 0, .last_at = 1700000000123};
    text_is(dump(sp_serialize_unknown(&u)),
            "{\"id\":\"gone\",\"opens\":9,\"first_at\":null,\"last_at\":"
            "\"2023-11-14T22:13:20.123Z\"}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_json),      cmocka_unit_test(test_event_json_repairs),
        cmocka_unit_test(test_event_text_form), cmocka_unit_test(test_csv),
        cmocka_unit_test(test_field_table),     cmocka_unit_test(test_row_of_event),
        cmocka_unit_test(test_campaign_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
