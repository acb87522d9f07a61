/* Unit tests for live, the event streams: what a subscriber is sent after a commit, by
 * campaign; waking one that waits; the bound on a slow one; the hub's close. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live.h"

/* A subscriber as the test holds it: how often it was put to sleep and woken. */
typedef struct sub {
    sp_live_sub_t *s;
    int sleeps, wakes;
} sub_t;

static void on_sleep(void *ctx)
{
    ((sub_t *)ctx)->sleeps++;
}

static void on_wake(void *ctx)
{
    ((sub_t *)ctx)->wakes++;
}

static void subscribe(sp_live_t *live, sub_t *sub, const char *campaign)
{
    memset(sub, 0, sizeof(*sub));
    sub->s = sp_live_subscribe(live, campaign, on_sleep, on_wake, sub);
    assert_non_null(sub->s);
}

/* Everything SUB holds now, as a malloc'd string (the caller frees); *ENDED when the stream
 * said it is over. */
static char *drain(sub_t *sub, bool *ended)
{
    size_t len = 0, cap = 1 << 20;
    char *text = malloc(cap + 1);
    assert_non_null(text);
    *ended = false;
    for (;;) {
        ssize_t n = sp_live_read(sub->s, text + len, cap - len > 4096 ? 4096 : cap - len);
        if (n < 0)
            *ended = true;
        if (n <= 0)
            break;
        len += (size_t)n;
        assert_true(len < cap);
    }
    text[len] = '\0';
    return text;
}

static sp_event_t *stored(const char *campaign, const char *recipient, sp_event_kind_t kind)
{
    sp_event_t *ev = sp_event_new(1024);
    ev->id = 42;
    ev->ts_ms = 1767225600000; /* 2026-01-01 */
    ev->kind = kind;
    snprintf(ev->campaign, sizeof(ev->campaign), "%s", campaign);
    snprintf(ev->recipient, sizeof(ev->recipient), "%s", recipient);
    snprintf(ev->ip, sizeof(ev->ip), "192.0.2.7");
    ev->outcome = SP_OUTCOME_STORED;
    return ev;
}

static const char opening[] = "retry: 2000\n: open\n\n";

static void test_opening_then_events(void **state)
{
    (void)state;
    sp_live_t *live = sp_live_new(3600);
    sub_t sub;
    subscribe(live, &sub, "news");
    bool ended;
    char *text = drain(&sub, &ended);
    assert_string_equal(text, opening);
    assert_false(ended);
    assert_int_equal(sub.sleeps, 1); /* nothing more: asleep */
    free(text);

    sp_event_t *evs[] = {stored("news", "ann@example.com", SP_EVENT_OPEN),
                         stored("news", "bob@example.com", SP_EVENT_CLICK)};
    evs[1]->outcome = SP_OUTCOME_FAILED; /* not stored: not shown */
    sp_live_on_commit(live, evs, 2);
    assert_int_equal(sub.wakes, 1);
    text = drain(&sub, &ended);
    const char head[] = "event: open\ndata: ";
    assert_memory_equal(text, head, sizeof(head) - 1);
    size_t len = strlen(text);
    assert_true(len > sizeof(head) + 2);
    assert_memory_equal(text + len - 2, "\n\n", 2);
    text[len - 2] = '\0';
    /* The event as the API shows it. */
    json_t *j = json_loads(text + sizeof(head) - 1, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "campaign")), "news");
    assert_string_equal(json_string_value(json_object_get(j, "recipient")), "ann@example.com");
    assert_string_equal(json_string_value(json_object_get(j, "kind")), "open");
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 42);
    json_decref(j);
    free(text);

    evs[1]->outcome = SP_OUTCOME_STORED;
    sp_live_on_commit(live, evs + 1, 1);
    text = drain(&sub, &ended);
    assert_non_null(strstr(text, "event: click\n"));
    free(text);
    sp_event_free(evs[0]);
    sp_event_free(evs[1]);
    sp_live_unsubscribe(sub.s);
    sp_live_free(live);
}

static void test_campaign_filter(void **state)
{
    (void)state;
    sp_live_t *live = sp_live_new(3600);
    sub_t news, other, all;
    subscribe(live, &news, "news");
    subscribe(live, &other, "other");
    subscribe(live, &all, "");
    bool ended;
    sub_t *subs[] = {&news, &other, &all};
    for (size_t i = 0; i < 3; i++)
        free(drain(subs[i], &ended));

    sp_event_t *ev = stored("news", "", SP_EVENT_OPEN);
    sp_live_on_commit(live, &ev, 1);
    char *a = drain(&news, &ended), *b = drain(&other, &ended), *c = drain(&all, &ended);
    assert_non_null(strstr(a, "\"campaign\":\"news\""));
    assert_string_equal(b, ""); /* another campaign's stream */
    assert_string_equal(a, c);  /* the all-campaigns stream gets the same message */
    assert_int_equal(other.wakes, 0);
    free(a);
    free(b);
    free(c);

    /* A campaign whose name starts with another's is another campaign. */
    sp_event_t *longer = stored("newsletter", "", SP_EVENT_OPEN);
    sp_live_on_commit(live, &longer, 1);
    a = drain(&news, &ended);
    assert_string_equal(a, "");
    free(a);
    sp_event_free(longer);
    sp_event_free(ev);
    for (size_t i = 0; i < 3; i++)
        sp_live_unsubscribe(subs[i]->s);
    sp_live_free(live);
}

/* A subscriber that does not read is cut off at its bound with an "event: overflow", and the
 * others go on. */
static void test_slow_subscriber(void **state)
{
    (void)state;
    sp_live_t *live = sp_live_new(3600);
    sub_t slow, quick;
    subscribe(live, &slow, "");
    subscribe(live, &quick, "");
    bool ended;
    free(drain(&quick, &ended));

    char msg[1024];
    memset(msg, 'x', sizeof(msg));
    memcpy(msg, "event: open\ndata: ", 18);
    memcpy(msg + sizeof(msg) - 2, "\n\n", 2);
    size_t sent = 0;
    for (int i = 0; i < 1000; i++) { /* 1000 KiB, four times the bound */
        sp_live_publish(live, "news", msg, sizeof(msg));
        sent += sizeof(msg);
        char *q = drain(&quick, &ended);
        assert_int_equal(strlen(q), sizeof(msg));
        assert_false(ended);
        free(q);
    }
    char *text = drain(&slow, &ended);
    size_t len = strlen(text);
    static const char overflow[] = "event: overflow\ndata: {}\n\n";
    assert_true(len <= (256u << 10) + sizeof(overflow));
    assert_true(len < sent);
    assert_string_equal(text + len - (sizeof(overflow) - 1), overflow);
    assert_true(ended); /* the page reloads */
    free(text);
    sp_live_unsubscribe(slow.s);
    sp_live_unsubscribe(quick.s);
    sp_live_free(live);
}

static void test_close_wakes_and_ends(void **state)
{
    (void)state;
    sp_live_t *live = sp_live_new(3600);
    sub_t sub;
    subscribe(live, &sub, "news");
    bool ended;
    free(drain(&sub, &ended));
    assert_int_equal(sub.wakes, 0);
    sp_live_close(live);
    assert_int_equal(sub.wakes, 1);
    free(drain(&sub, &ended));
    assert_true(ended);
    /* Closing: no one subscribes any more. */
    sub_t late = {0};
    assert_null(sp_live_subscribe(live, "", on_sleep, on_wake, &late));
    sp_live_unsubscribe(sub.s);
    sp_live_free(live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opening_then_events),
        cmocka_unit_test(test_campaign_filter),
        cmocka_unit_test(test_slow_subscriber),
        cmocka_unit_test(test_close_wakes_and_ends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
