/* Unit tests for tally: what each stored open and click adds to which counter. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tally.h"

#define H     SP_CLASS_HUMAN
#define P     SP_CLASS_PROXY
#define M     SP_CLASS_MACHINE
#define S     SP_CLASS_SELF
#define OPEN  SP_EVENT_OPEN
#define CLICK SP_EVENT_CLICK

typedef struct spec {
    const char *campaign, *recipient, *visitor;
    int kind, klass;
    int64_t ts;
} spec_t;

static sp_event_t *make(const spec_t *sp)
{
    sp_event_t *ev = sp_event_new(64);
    snprintf(ev->campaign, sizeof(ev->campaign), "%s", sp->campaign);
    snprintf(ev->recipient, sizeof(ev->recipient), "%s", sp->recipient ? sp->recipient : "");
    snprintf(ev->visitor, sizeof(ev->visitor), "%s", sp->visitor ? sp->visitor : "v0");
    ev->kind = sp->kind;
    ev->klass = sp->klass;
    ev->ts_ms = sp->ts;
    return ev;
}

/* Counts SPECS into T; the events stay in EVS until free_all. */
static void count(sp_tally_t *t, const spec_t *specs, size_t n, sp_event_t **evs)
{
    for (size_t i = 0; i < n; i++)
        evs[i] = make(&specs[i]);
    sp_tally_count(t, evs, n);
}

static void free_all(sp_tally_t *t, sp_event_t **evs, size_t n)
{
    sp_tally_free(t);
    for (size_t i = 0; i < n; i++)
        sp_event_free(evs[i]);
}

static void test_counted(void **state)
{
    assert_true(sp_tally_counted(H));
    assert_true(sp_tally_counted(P));
    assert_false(sp_tally_counted(M));
    assert_false(sp_tally_counted(S));
    assert_false(sp_tally_counted(-1));
    assert_false(sp_tally_counted(SP_CLASS_COUNT));
    int64_t by_class[SP_CLASS_COUNT] = {[H] = 3, [P] = 4, [M] = 100, [S] = 1000};
    assert_int_equal(7, sp_tally_views(by_class));
    assert_string_equal("(r.human + r.proxy)", SP_TALLY_VIEWS_SQL("r."));
}

/* Every kind and class of event, with and without a recipient: what each counter gets. */
static void test_rule(void **state)
{
    const spec_t specs[] = {
        {"c", "ann", NULL, OPEN, H, 100},  {"c", "ann", NULL, OPEN, P, 50},
        {"c", "ann", NULL, OPEN, M, 10},   {"c", "ann", NULL, OPEN, S, 500},
        {"c", "ann", NULL, CLICK, H, 300}, {"c", "ann", NULL, CLICK, M, 900},
        {"c", "", "va", OPEN, H, 200},     {"c", "", "va", OPEN, P, 150},
        {"c", "", "vb", OPEN, M, 700},     {"c", "", "vc", CLICK, H, 800},
        {"c", "bob", NULL, OPEN, S, 600},
    };
    enum { N = sizeof(specs) / sizeof(specs[0]) };
    sp_event_t *evs[N];
    sp_tally_t t;
    count(&t, specs, N, evs);

    assert_int_equal(1, t.n_campaigns);
    const sp_tally_campaign_t *c = &t.campaigns[0];
    assert_string_equal("c", c->id);
    assert_int_equal(4, c->views); /* human and proxy opens, with a recipient or not */
    assert_int_equal(2, c->by_class[H]);
    assert_int_equal(2, c->by_class[P]);
    assert_int_equal(2, c->by_class[M]);
    assert_int_equal(2, c->by_class[S]);
    assert_int_equal(2, c->clicks);         /* the human clicks; the machine's does not count */
    assert_int_equal(800, c->last_view_at); /* the latest counted event, a click */
    assert_int_equal(0, c->unique);         /* the store's answers make those */

    assert_int_equal(2, t.n_recipients);
    const sp_tally_recipient_t *ann = &t.recipients[0], *bob = &t.recipients[1];
    assert_string_equal("ann", ann->recipient);
    assert_int_equal(0, ann->campaign);
    assert_int_equal(2, ann->views);
    assert_int_equal(1, ann->by_class[H]);
    assert_int_equal(1, ann->by_class[P]);
    assert_int_equal(1, ann->by_class[M]);
    assert_int_equal(1, ann->by_class[S]);
    assert_int_equal(1, ann->clicks);
    assert_int_equal(50, ann->first_at); /* counted opens only: not the machine's at 10 */
    assert_int_equal(100, ann->last_at);
    assert_ptr_equal(evs[1], ann->first);
    /* A recipient with only the sender's views is kept, with nothing counted. */
    assert_string_equal("bob", bob->recipient);
    assert_int_equal(0, bob->views);
    assert_int_equal(1, bob->by_class[S]);
    assert_int_equal(0, bob->first_at);
    assert_int_equal(0, bob->last_at);
    assert_null(bob->first);

    /* Clients: counted opens without a recipient, one per visitor; the earliest open first. */
    assert_int_equal(1, t.n_clients);
    assert_string_equal("v:va", t.clients[0].key);
    assert_ptr_equal(evs[7], t.clients[0].first);
    for (size_t i = 0; i < N; i++)
        assert_false(evs[i]->first_view);
    free_all(&t, evs, N);
}

/* Unique views: a recipient whose counted opens are all this batch's is new; a client the store
 * had not seen is new. Each new one's earliest counted open is its first view. */
static void test_seen(void **state)
{
    const spec_t specs[] = {
        {"c", "ann", NULL, OPEN, H, 300}, {"c", "ann", NULL, OPEN, H, 200},
        {"c", "ann", NULL, OPEN, H, 200}, /* the same time: batch order decides */
        {"c", "bob", NULL, OPEN, H, 100}, {"c", "", "va", OPEN, H, 400},
        {"c", "", "vb", OPEN, H, 50},     {"c", "cy", NULL, OPEN, M, 10},
    };
    enum { N = sizeof(specs) / sizeof(specs[0]) };
    sp_event_t *evs[N];
    sp_tally_t t;
    count(&t, specs, N, evs);
    assert_int_equal(3, t.n_recipients);
    assert_int_equal(3, t.recipients[0].views); /* ann */
    assert_ptr_equal(evs[1], t.recipients[0].first);

    sp_tally_recipient_seen(&t, 0, 3); /* ann: these three are all there are: new */
    sp_tally_recipient_seen(&t, 1, 2); /* bob had one before */
    sp_tally_recipient_seen(&t, 2, 0); /* cy: nothing counted, never a unique view */
    sp_tally_client_seen(&t, 0, true);
    sp_tally_client_seen(&t, 1, false);
    assert_int_equal(2, t.campaigns[0].unique);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(1 == i || 4 == i, evs[i]->first_view);
    free_all(&t, evs, N);
}

/* Each list in key order, whatever the batch's order: writers on several servers lock rows in
 * one order. */
static void test_sorted(void **state)
{
    const spec_t specs[] = {
        {"b", "zed", NULL, OPEN, H, 1}, {"a", "yan", NULL, CLICK, H, 2},
        {"b", "", "v2", OPEN, H, 3},    {"a", "", "v9", OPEN, P, 4},
        {"b", "amy", NULL, OPEN, M, 5}, {"a", "", "v1", OPEN, H, 6},
        {"a", "yan", NULL, OPEN, H, 7},
    };
    enum { N = sizeof(specs) / sizeof(specs[0]) };
    sp_event_t *evs[N];
    sp_tally_t t;
    count(&t, specs, N, evs);
    assert_int_equal(2, t.n_campaigns);
    assert_string_equal("a", t.campaigns[0].id);
    assert_string_equal("b", t.campaigns[1].id);
    assert_int_equal(3, t.n_recipients);
    const char *want[][2] = {{"a", "yan"}, {"b", "amy"}, {"b", "zed"}};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(want[i][0], t.campaigns[t.recipients[i].campaign].id);
        assert_string_equal(want[i][1], t.recipients[i].recipient);
    }
    assert_int_equal(3, t.n_clients);
    const char *clients[][2] = {{"a", "v:v1"}, {"a", "v:v9"}, {"b", "v:v2"}};
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(clients[i][0], t.campaigns[t.clients[i].campaign].id);
        assert_string_equal(clients[i][1], t.clients[i].key);
    }
    assert_int_equal(1, t.campaigns[0].clicks);
    assert_int_equal(3, t.campaigns[0].views);
    assert_int_equal(7, t.campaigns[0].last_view_at);
    free_all(&t, evs, N);

    /* An empty batch counts nothing, and is freed alike. */
    sp_tally_count(&t, NULL, 0);
    assert_int_equal(0, t.n_campaigns + t.n_recipients + t.n_clients);
    sp_tally_free(&t);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The order is strcmp's where the sort compares numbers first (a campaign's rank, a key's first
 * 8 bytes): keys that share those bytes, keys that are prefixes of others, bytes above 0x7f,
 * and more campaigns than a batch usually holds; a recipient's opens are one entry. */
static void test_sorted_heads(void **state)
{
    static const char *const recipients[] = {
        "person-a2@example.com", "person-a1@example.com",    "person-a", "person-",
        "person-a1@example.co",  "\xc3\xa9mile@example.com", "Zed@x",    "person-a1@example.com",
    };
    enum { R = sizeof(recipients) / sizeof(recipients[0]), C = 40, N = R * C };
    spec_t specs[N];
    char campaigns[C][16];
    for (size_t c = 0; c < C; c++)
        snprintf(campaigns[c], sizeof(campaigns[c]), "campaign-%zu", (c * 17) % C);
    for (size_t i = 0; i < N; i++)
        specs[i] =
            (spec_t){campaigns[i % C], recipients[(i / C) % R], NULL, OPEN, H, (int64_t)(N - i)};
    sp_event_t *evs[N];
    sp_tally_t t;
    count(&t, specs, N, evs);

    const char *ids[C];
    for (size_t c = 0; c < C; c++)
        ids[c] = campaigns[c];
    qsort(ids, C, sizeof(ids[0]), cmp_str);
    assert_int_equal(C, t.n_campaigns);
    for (size_t c = 0; c < C; c++)
        assert_string_equal(ids[c], t.campaigns[c].id);

    const char *keys[R];
    memcpy(keys, recipients, sizeof(keys));
    qsort(keys, R, sizeof(keys[0]), cmp_str);
    size_t distinct = 0;
    for (size_t k = 0; k < R; k++)
        distinct += !k || strcmp(keys[k - 1], keys[k]);
    assert_int_equal(C * distinct, t.n_recipients);
    for (size_t i = 0, at = 0; i < C; i++) {
        for (size_t k = 0; k < R; k++) {
            if (k && 0 == strcmp(keys[k - 1], keys[k]))
                continue;
            const sp_tally_recipient_t *r = &t.recipients[at++];
            assert_string_equal(ids[i], t.campaigns[r->campaign].id);
            assert_string_equal(keys[k], r->recipient);
            /* person-a1@example.com twice in each campaign: one entry, its earliest open first */
            int64_t views = 0 == strcmp(keys[k], "person-a1@example.com") ? 2 : 1;
            assert_int_equal(views, r->views);
            /* Its tag, made as the tally read it, is the one the writer's hints are keyed by. */
            assert_true(r->tag == sp_tally_recipient_tag(ids[i], keys[k]));
            assert_true(r->tag & 1);
        }
    }
    free_all(&t, evs, N);
    /* The campaign ends where the recipient begins. */
    assert_true(sp_tally_recipient_tag("ab", "c") != sp_tally_recipient_tag("a", "bc"));
    assert_true(sp_tally_recipient_tag("a", "b") != sp_tally_recipient_tag("b", "a"));
}

static void test_client_key(void **state)
{
    sp_event_t *ev = make(&(spec_t){"c", "", "0123456789abcdef0123456789abcdef", OPEN, H, 1});
    char key[SP_TALLY_CLIENT_MAX];
    sp_tally_client_key(ev, key, sizeof(key));
    assert_string_equal("v:0123456789abcdef0123456789abcdef", key);
    assert_true(strlen(key) + 1 <= SP_TALLY_CLIENT_MAX);
    sp_event_free(ev);
}

/* Litmus' steps: glanced under 2 s, skimmed 2 to 8 s, read from 8 s; never a read for a proxy
 * or a machine, nor from a time the server cut short. */
static void test_engagement(void **state)
{
    (void)state;
    assert_null(sp_tally_engagement(H, SP_ENGAGE_NONE, -1));
    assert_null(sp_tally_engagement(H, SP_ENGAGE_PENDING, -1));
    assert_string_equal("unmeasured", sp_tally_engagement(H, SP_ENGAGE_UNMEASURED, -1));
    assert_string_equal("glanced", sp_tally_engagement(H, SP_ENGAGE_MEASURED, 0));
    assert_string_equal("glanced", sp_tally_engagement(H, SP_ENGAGE_MEASURED, 1999));
    assert_string_equal("skimmed", sp_tally_engagement(H, SP_ENGAGE_MEASURED, 2000));
    assert_string_equal("skimmed", sp_tally_engagement(H, SP_ENGAGE_MEASURED, 7999));
    assert_string_equal("read", sp_tally_engagement(H, SP_ENGAGE_MEASURED, 8000));
    assert_string_equal("read", sp_tally_engagement(H, SP_ENGAGE_MEASURED, 20000));
    for (int k = P; k <= S; k++) {
        assert_string_equal("unmeasured", sp_tally_engagement(k, SP_ENGAGE_MEASURED, 20000));
        assert_string_equal("unmeasured", sp_tally_engagement(k, SP_ENGAGE_PENDING, -1));
    }
    assert_string_equal("unmeasured", sp_tally_engagement(H, SP_ENGAGE_CUT, 5000));
    assert_string_equal("read", sp_tally_engagement(H, SP_ENGAGE_CUT, 9000));
}

static void test_engagement_counted(void **state)
{
    (void)state;
    assert_true(sp_tally_engagement_counted(OPEN, H));
    assert_true(sp_tally_engagement_counted(OPEN, M));
    assert_false(sp_tally_engagement_counted(OPEN, S));
    assert_true(sp_tally_engagement_counted(SP_EVENT_PRINT, P));
    assert_false(sp_tally_engagement_counted(SP_EVENT_PRINT, M));
    assert_false(sp_tally_engagement_counted(SP_EVENT_FORWARD, S));
    assert_false(sp_tally_engagement_counted(CLICK, H));
}

/* A print and a forward are neither views nor clicks. */
static void test_print_forward(void **state)
{
    (void)state;
    const spec_t specs[] = {
        {"c", "ann", NULL, SP_EVENT_PRINT, H, 1},
        {"c", "ann", NULL, SP_EVENT_FORWARD, H, 2},
        {"c", "ann", NULL, CLICK, H, 3},
    };
    sp_event_t *evs[3];
    sp_tally_t t;
    count(&t, specs, 3, evs);
    assert_int_equal(1, t.n_campaigns);
    assert_int_equal(0, t.campaigns[0].views);
    assert_int_equal(1, t.campaigns[0].clicks);
    assert_int_equal(0, t.campaigns[0].by_class[H]);
    free_all(&t, evs, 3);
}

/* ---- likely forwards: a new client from another network, a while after the first ---------- */

#define MIN_MS (60 * 1000)
#define T0     INT64_C(1764000000000) /* minute 0 */

/* An open of "ann" by BROWSER on OS from IP at minute MIN, of class KLASS. */
static sp_event_t *reader_open(const char *browser, const char *os, const char *ip, int klass,
                               int64_t min)
{
    const spec_t sp = {"c", "ann", NULL, OPEN, klass, T0 + min * MIN_MS};
    sp_event_t *ev = make(&sp);
    snprintf(ev->browser, sizeof(ev->browser), "%s", browser);
    snprintf(ev->os, sizeof(ev->os), "%s", os);
    snprintf(ev->ip, sizeof(ev->ip), "%s", ip);
    return ev;
}

/* Counts EVS as one batch, as a store would with the row it read back (its first reader
 * CLIENT, NETWORK at AT, its forwarded clients FORWARDED), and returns how many likely
 * forwards it made; *LIST gets the recipient's new forward_clients ("" when unchanged). */
static size_t forwards_of(sp_event_t **evs, size_t n, const char *client, const char *network,
                          int64_t at, const char *forwarded, char *list, size_t len)
{
    sp_tally_t t;
    sp_tally_count(&t, evs, n);
    assert_int_equal(1, t.n_recipients);
    const sp_tally_recipient_t *r = &t.recipients[0];
    /* The row as the upsert leaves it: the batch's first human open when it had none. */
    if (!at && r->human_at) {
        client = r->client;
        network = r->network;
        at = r->human_at;
    }
    sp_tally_recipient_reader(&t, 0, client, network, at, forwarded);
    size_t got = t.n_forwards;
    for (size_t i = 0; i < got; i++) {
        sp_event_row_t row;
        sp_tally_forward_row(t.forwards[i], &row);
        assert_int_equal(SP_EVENT_FORWARD, row.kind);
        assert_string_equal(SP_TALLY_FORWARD_RULE, row.rule);
        assert_null(row.engagement);
        assert_int_equal(t.forwards[i]->ts_ms, row.ts_ms);
    }
    snprintf(list, len, "%s", r->forwarded ? r->forwarded : "");
    sp_tally_free(&t);
    return got;
}

static void free_evs(sp_event_t **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sp_event_free(evs[i]);
}

static void test_reader(void **state)
{
    (void)state;
    char client[SP_TALLY_READER_MAX], net[SP_TALLY_NETWORK_MAX];
    sp_event_t *a = reader_open("Chrome", "Windows", "203.0.113.77", H, 0);
    sp_tally_reader(a, client, net);
    assert_string_equal("Chrome/Windows", client);
    assert_string_equal("203.0.113.0/24", net);
    sp_event_t *b = reader_open("Mobile Safari", "iOS", "2001:db8:aa:bb::1", H, 0);
    sp_tally_reader(b, client, net);
    assert_string_equal("Mobile Safari/iOS", client);
    assert_string_equal("2001:db8:aa::/48", net);
    /* The longest names whole; none at all; the longest address. */
    char longest[SP_FIELD_MAX], want[SP_TALLY_READER_MAX];
    memset(longest, 'b', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    sp_event_t *c =
        reader_open(longest, longest, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", H, 0);
    sp_tally_reader(c, client, net);
    snprintf(want, sizeof(want), "%s/%s", longest, longest);
    assert_string_equal(want, client);
    assert_string_equal("ffff:ffff:ffff::/48", net);
    sp_event_t *d = reader_open("", "", "192.0.2.9", H, 0);
    sp_tally_reader(d, client, net);
    assert_string_equal("/", client);
    assert_string_equal("192.0.2.0/24", net);
    sp_event_free(a);
    sp_event_free(b);
    sp_event_free(c);
    sp_event_free(d);
}

static void test_likely_forward(void **state)
{
    (void)state;
    char list[SP_TALLY_FORWARDED_MAX + 1];
    /* The first open and, in the same batch, a new client on another network an hour later. */
    sp_event_t *b1[] = {reader_open("Chrome", "Windows", "203.0.113.7", H, 0),
                        reader_open("Firefox", "Linux", "198.51.100.9", H, 60)};
    assert_int_equal(1, forwards_of(b1, 2, "", "", 0, "", list, sizeof(list)));
    assert_string_equal("Firefox/Linux", list);
    free_evs(b1, 2);

    /* Later batches, against the row: the same client on another network is the reader
     * travelling; a new client on the same network is the reader's other device; a new client on
     * another network too soon is the reader's phone as the message arrives. */
    const char *first = "Chrome/Windows", *first_net = "203.0.113.0/24";
    sp_event_t *b2[] = {reader_open("Chrome", "Windows", "198.51.100.9", H, 100),
                        reader_open("Firefox", "Linux", "203.0.113.200", H, 110),
                        reader_open("Mobile Safari", "iOS", "192.0.2.1", H, 5)};
    assert_int_equal(0, forwards_of(b2, 3, first, first_net, T0, "", list, sizeof(list)));
    assert_string_equal("", list);
    free_evs(b2, 3);

    /* Proxies, machines and self views never. */
    sp_event_t *b3[] = {reader_open("Firefox", "Linux", "198.51.100.9", P, 100),
                        reader_open("Firefox", "Linux", "198.51.100.9", M, 100),
                        reader_open("Firefox", "Linux", "198.51.100.9", S, 100)};
    assert_int_equal(0, forwards_of(b3, 3, first, first_net, T0, "", list, sizeof(list)));
    free_evs(b3, 3);

    /* Once per new client: its second open, from yet another network, in this batch or a later
     * one, makes none; a third client makes its own. */
    sp_event_t *b4[] = {reader_open("Firefox", "Linux", "198.51.100.9", H, 100),
                        reader_open("Firefox", "Linux", "100.64.0.1", H, 120)};
    assert_int_equal(1, forwards_of(b4, 2, first, first_net, T0, "", list, sizeof(list)));
    assert_ptr_equal(NULL, strchr(list, '\n'));
    free_evs(b4, 2);
    sp_event_t *b5[] = {reader_open("Firefox", "Linux", "192.0.2.50", H, 200),
                        reader_open("Edge", "Mac OS X", "192.0.2.60", H, 210)};
    assert_int_equal(1,
                     forwards_of(b5, 2, first, first_net, T0, "Firefox/Linux", list, sizeof(list)));
    assert_string_equal("Firefox/Linux\nEdge/Mac OS X", list);
    free_evs(b5, 2);

    /* No more than SP_TALLY_FORWARD_CLIENTS_MAX clients. */
    char full[SP_TALLY_FORWARDED_MAX + 1] = "";
    for (int i = 0; i < SP_TALLY_FORWARD_CLIENTS_MAX; i++)
        snprintf(full + strlen(full), sizeof(full) - strlen(full), "%sB%d/X", i ? "\n" : "", i);
    sp_event_t *b6[] = {reader_open("Opera", "Linux", "192.0.2.50", H, 200)};
    assert_int_equal(0, forwards_of(b6, 1, first, first_net, T0, full, list, sizeof(list)));
    free_evs(b6, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counted),
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_seen),
        cmocka_unit_test(test_sorted),
        cmocka_unit_test(test_sorted_heads),
        cmocka_unit_test(test_client_key),
        cmocka_unit_test(test_engagement),
        cmocka_unit_test(test_print_forward),
        cmocka_unit_test(test_engagement_counted),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_likely_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
