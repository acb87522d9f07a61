/* Unit tests for the store contract, run against SQLite and, given SPYPIXEL_TEST_PG, PostgreSQL. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "classify.h"
#include "event.h"
#include "intern.h"
#include "query.h"
#include "report.h"
#include "rollup.h"
#include "serialize.h"
#include "store.h"
#include "store_pg.h"
#include "store_sqlite.h"
#include "tally.h"
#include "utf8.h"

/* ---- fixtures: a fresh store per test -------------------------------------------------------- */

typedef struct backend {
    const char *name;
    bool pg;
} backend_t;

static const backend_t sqlite_backend = {"sqlite", false};
static const backend_t pg_backend = {"postgres", true};

/* SQLite gets a new folder; PostgreSQL a new schema, named by search_path in the conninfo, so
 * that the tests never touch other tables of the database SPYPIXEL_TEST_PG names. */
typedef struct fixture {
    const backend_t *be;
    char dir[64];
    char schema[64];
    char *conninfo; /* the store's, with search_path and application_name set */
    PGconn *admin;  /* PostgreSQL: the test's own connection */
} fixture_t;

static int pg_cmd(PGconn *c, const char *sql)
{
    PGresult *res = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = PGRES_COMMAND_OK == st || PGRES_TUPLES_OK == st;
    if (!ok)
        print_error("%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok ? 0 : -1;
}

static void append(char **s, size_t *len, const char *text)
{
    size_t n = strlen(text);
    *s = realloc(*s, *len + n + 1);
    assert_non_null(*s);
    memcpy(*s + *len, text, n + 1);
    *len += n;
}

/* KEY='VALUE ' with conninfo quoting. */
static void append_kv(char **s, size_t *len, const char *key, const char *value)
{
    append(s, len, key);
    append(s, len, "='");
    for (const char *c = value; *c; c++) {
        char one[3] = {'\\', *c, '\0'};
        append(s, len, '\'' == *c || '\\' == *c ? one : one + 1);
    }
    append(s, len, "' ");
}

/* SPYPIXEL_TEST_PG (keyword=value or URI) rebuilt with the fixture's schema and name. */
static char *pg_conninfo(const char *base, const char *schema)
{
    char *msg = NULL, *out = NULL, opts[512];
    size_t len = 0;
    PQconninfoOption *o = PQconninfoParse(base, &msg);
    if (!o) {
        print_error("SPYPIXEL_TEST_PG: %s", msg ? msg : "unreadable");
        PQfreemem(msg);
        return NULL;
    }
    const char *old_opts = "";
    append(&out, &len, "");
    for (PQconninfoOption *i = o; i->keyword; i++) {
        if (!i->val)
            continue;
        if (0 == strcmp(i->keyword, "options"))
            old_opts = i->val;
        else if (0 != strcmp(i->keyword, "application_name"))
            append_kv(&out, &len, i->keyword, i->val);
    }
    snprintf(opts, sizeof(opts), "%s -c search_path=%s", old_opts, schema);
    append_kv(&out, &len, "options", opts);
    append_kv(&out, &len, "application_name", schema);
    PQconninfoFree(o);
    return out;
}

static int setup(void **state)
{
    static int serial;
    fixture_t *fx = calloc(1, sizeof(*fx));
    assert_non_null(fx);
    fx->be = *state;
    *state = fx;
    if (!fx->be->pg) {
        snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_store_XXXXXX");
        return mkdtemp(fx->dir) ? 0 : -1;
    }
    const char *base = getenv("SPYPIXEL_TEST_PG");
    if (!base || !base[0])
        return 0; /* each test skips */
    snprintf(fx->schema, sizeof(fx->schema), "sp_test_%d_%d", (int)getpid(), ++serial);
    fx->admin = PQconnectdb(base);
    if (CONNECTION_OK != PQstatus(fx->admin)) {
        print_error("SPYPIXEL_TEST_PG=%s: %s", base, PQerrorMessage(fx->admin));
        return -1;
    }
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", fx->schema);
    if (0 != pg_cmd(fx->admin, "SET client_min_messages = warning") || 0 != pg_cmd(fx->admin, sql))
        return -1;
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", fx->schema);
    if (0 != pg_cmd(fx->admin, sql))
        return -1;
    fx->conninfo = pg_conninfo(base, fx->schema);
    return fx->conninfo ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx->dir[0]) {
        static const char *const files[] = {"spypixel.db", "spypixel.db-wal", "spypixel.db-shm"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
            char path[128];
            snprintf(path, sizeof(path), "%s/%s", fx->dir, files[i]);
            unlink(path);
        }
        rmdir(fx->dir);
    }
    if (fx->admin && fx->schema[0]) {
        char sql[160];
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", fx->schema);
        pg_cmd(fx->admin, sql);
    }
    PQfinish(fx->admin);
    free(fx->conninfo);
    free(fx);
    return 0;
}

/* A store on the fixture's place; PostgreSQL tests skip, saying why, without SPYPIXEL_TEST_PG. */
static sp_store_t *try_open(fixture_t *fx, char *err, size_t errlen)
{
    if (fx->be->pg)
        return sp_store_pg_open(fx->conninfo, err, errlen);
    return sp_store_sqlite_open(fx->dir, false, err, errlen);
}

static void need_backend(fixture_t *fx)
{
    if (fx->be->pg && !fx->conninfo) {
        print_message("[   SKIP   ] PostgreSQL half: SPYPIXEL_TEST_PG is unset (export "
                      "SPYPIXEL_TEST_PG=\"$(scripts/pg-test-server start)\" to run it)\n");
        skip();
    }
}

static sp_store_t *open_store(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    need_backend(fx);
    sp_store_t *s = try_open(fx, err, sizeof(err));
    if (!s)
        print_error("%s: open: %s\n", fx->be->name, err);
    assert_non_null(s);
    assert_string_equal(fx->be->pg ? "postgres" : "sqlite", s->ops->name);
    return s;
}

/* ---- events and readers ---------------------------------------------------------------------- */

typedef struct spec {
    const char *campaign, *recipient;
    int kind, klass;
    int64_t ts;
    const char *ip, *ua, *visitor;
} spec_t;

static sp_event_t *make_event(const spec_t *sp)
{
    sp_event_t *ev = sp_event_new(16384);
    ev->ts_ms = sp->ts;
    ev->kind = sp->kind;
    ev->klass = sp->klass;
    snprintf(ev->campaign, sizeof(ev->campaign), "%s", sp->campaign);
    snprintf(ev->recipient, sizeof(ev->recipient), "%s", sp->recipient ? sp->recipient : "");
    snprintf(ev->ip, sizeof(ev->ip), "%s", sp->ip ? sp->ip : "192.0.2.1");
    snprintf(ev->visitor, sizeof(ev->visitor), "%s", sp->visitor ? sp->visitor : "");
    const char *ua = sp->ua ? sp->ua : "Mozilla/5.0 (test)";
    /* No cmocka assert here: writer threads call this too. 16 KB holds both headers. */
    if (0 != sp_event_add_header(ev, "Host", 4, "px.example", 10) ||
        0 != sp_event_add_header(ev, "User-Agent", 10, ua, strlen(ua)))
        abort();
    snprintf(ev->rule, sizeof(ev->rule), "test");
    snprintf(ev->browser, sizeof(ev->browser), "Firefox");
    if (SP_EVENT_CLICK == sp->kind)
        if (0 != sp_event_set_target(ev, "https://example.com/landing"))
            abort();
    return ev;
}

/* Writes EVS (not freed) as one batch, checking that it succeeds. */
static void write_events(sp_store_t *s, sp_event_t **evs, size_t n)
{
    char err[512] = "";
    int rc = s->ops->write_batch(s, evs, n, NULL, err, sizeof(err));
    if (rc)
        print_error("write_batch: %s\n", err);
    assert_int_equal(0, rc);
}

/* Writes SPECS as one batch, checking that it succeeds; EVS (may be NULL) keeps the events. */
static void write_specs(sp_store_t *s, const spec_t *specs, size_t n, sp_event_t **keep)
{
    sp_event_t **evs = calloc(n, sizeof(*evs));
    assert_non_null(evs);
    for (size_t i = 0; i < n; i++)
        evs[i] = make_event(&specs[i]);
    write_events(s, evs, n);
    for (size_t i = 0; i < n; i++) {
        if (keep)
            keep[i] = evs[i];
        else
            sp_event_free(evs[i]);
    }
    free(evs);
}

static void create(sp_store_t *s, const char *id, int64_t now)
{
    char err[512] = "";
    int rc = s->ops->campaign_create(s, id, now, err, sizeof(err));
    if (rc < 0)
        print_error("campaign_create: %s\n", err);
    assert_int_equal(0, rc);
}

static sp_campaign_t get_campaign(sp_store_t *s, const char *id)
{
    sp_campaign_t c;
    char err[512] = "";
    memset(&c, 0xAB, sizeof(c));
    int rc = s->ops->campaign_get(s, id, &c, err, sizeof(err));
    if (rc)
        print_error("campaign_get %s: %d %s\n", id, rc, err);
    assert_int_equal(0, rc);
    return c;
}

typedef struct got_event {
    int64_t id, ts;
    int kind, klass;
    char *campaign, *recipient, *ip, *user_agent, *referer, *cookies, *headers, *visitor, *browser,
        *rule, *target;
    bool has_coords;
    double latitude, longitude;
} got_event_t;

typedef struct got_events {
    got_event_t e[4200];
    size_t n, stop_after;
} got_events_t;

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static int on_event(void *ctx, const sp_event_row_t *r)
{
    got_events_t *g = ctx;
    assert_true(g->n < sizeof(g->e) / sizeof(g->e[0]));
    got_event_t *e = &g->e[g->n++];
    e->id = r->id;
    e->ts = r->ts_ms;
    e->kind = r->kind;
    e->klass = r->klass;
    e->campaign = strdup(r->campaign);
    e->recipient = strdup(r->recipient);
    e->ip = strdup(r->ip);
    e->user_agent = dup_or_null(r->user_agent);
    e->referer = dup_or_null(r->referer);
    e->cookies = strdup(r->cookies_json);
    e->headers = strdup(r->headers_json);
    e->visitor = strdup(r->visitor);
    e->browser = strdup(r->browser);
    e->rule = strdup(r->rule);
    e->target = strdup(r->target);
    e->has_coords = !isnan(r->latitude);
    e->latitude = r->latitude;
    e->longitude = r->longitude;
    return g->stop_after && g->n >= g->stop_after;
}

static void got_events_free(got_events_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        got_event_t *e = &g->e[i];
        char *strs[] = {e->campaign, e->recipient, e->ip,      e->user_agent,
                        e->referer,  e->cookies,   e->headers, e->visitor,
                        e->browser,  e->rule,      e->target};
        for (size_t j = 0; j < sizeof(strs) / sizeof(strs[0]); j++)
            free(strs[j]);
    }
    free(g);
}

/* Nonzero when both are NULL or both the same text. */
static bool same_text(const char *a, const char *b)
{
    return a == b || (a && b && 0 == strcmp(a, b));
}

/* Every field of B is A's (a reading's row against events()'s). */
static void assert_same_event(const got_event_t *a, const got_event_t *b)
{
    assert_int_equal(a->id, b->id);
    assert_int_equal(a->ts, b->ts);
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->klass, b->klass);
    const char *const as[] = {a->campaign, a->recipient, a->ip,      a->user_agent,
                              a->referer,  a->cookies,   a->headers, a->visitor,
                              a->browser,  a->rule,      a->target};
    const char *const bs[] = {b->campaign, b->recipient, b->ip,      b->user_agent,
                              b->referer,  b->cookies,   b->headers, b->visitor,
                              b->browser,  b->rule,      b->target};
    for (size_t k = 0; k < sizeof(as) / sizeof(as[0]); k++)
        if (!same_text(as[k], bs[k]))
            fail_msg("event %lld, text %zu: \"%s\" where events() has \"%s\"", (long long)a->id, k,
                     bs[k] ? bs[k] : "(null)", as[k] ? as[k] : "(null)");
    assert_int_equal(a->has_coords, b->has_coords);
    if (a->has_coords) {
        assert_true(a->latitude == b->latitude);
        assert_true(a->longitude == b->longitude);
    }
}

/* The events of CAMPAIGN below BEFORE, at most LIMIT; the caller frees with got_events_free. */
static got_events_t *list_events(sp_store_t *s, const char *campaign, int64_t before, int64_t limit)
{
    got_events_t *g = calloc(1, sizeof(*g));
    char err[512] = "";
    assert_non_null(g);
    int rc = s->ops->events(s, campaign, before, limit, on_event, g, err, sizeof(err));
    if (rc)
        print_error("events: %s\n", err);
    assert_int_equal(0, rc);
    return g;
}

typedef struct got_recipients {
    char name[32][SP_ID_MAX + 1];
    sp_recipient_t r[32]; /* each one's recipient points into NAME of the struct filled (a copy
                           * returned by list_recipients: read NAME) */
    size_t n;
} got_recipients_t;

static int on_recipient(void *ctx, const sp_recipient_t *r)
{
    got_recipients_t *g = ctx;
    assert_true(g->n < 32);
    snprintf(g->name[g->n], sizeof(g->name[0]), "%s", r->recipient);
    g->r[g->n] = *r;
    g->r[g->n].recipient = g->name[g->n];
    g->n++;
    return 0;
}

static got_recipients_t list_recipients(sp_store_t *s, const char *campaign, const char *after,
                                        int64_t limit)
{
    got_recipients_t g;
    char err[512] = "";
    g.n = 0;
    int rc = s->ops->recipients(s, campaign, after, limit, on_recipient, &g, err, sizeof(err));
    if (rc)
        print_error("recipients: %s\n", err);
    assert_int_equal(0, rc);
    return g;
}

static const sp_recipient_t *find_recipient(const got_recipients_t *g, const char *name)
{
    for (size_t i = 0; i < g->n; i++)
        if (0 == strcmp(g->name[i], name))
            return &g->r[i];
    return NULL;
}

typedef struct got_campaigns {
    sp_campaign_t c[16];
    size_t n, stop_after;
} got_campaigns_t;

static int on_campaign(void *ctx, const sp_campaign_t *c)
{
    got_campaigns_t *g = ctx;
    assert_true(g->n < 16);
    g->c[g->n++] = *c;
    return g->stop_after && g->n >= g->stop_after;
}

#define H     SP_CLASS_HUMAN
#define P     SP_CLASS_PROXY
#define M     SP_CLASS_MACHINE
#define S     SP_CLASS_SELF
#define OPEN  SP_EVENT_OPEN
#define CLICK SP_EVENT_CLICK

/* ---- schema and campaigns -------------------------------------------------------------------- */

static void test_open_twice(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *s = open_store(state);
    create(s, "spring", 1000);
    sp_store_close(s);

    /* The second open finds the schema at its version and leaves the data alone. */
    s = open_store(state);
    sp_campaign_t c = get_campaign(s, "spring");
    assert_string_equal("spring", c.id);
    assert_int_equal(1000, c.created_at);
    assert_int_equal(1, s->ops->campaign_create(s, "spring", 2000, err, sizeof(err)));
    sp_store_t *third = try_open(fx, err, sizeof(err));
    assert_non_null(third);
    assert_int_equal(0, third->ops->campaign_get(third, "spring", &c, err, sizeof(err)));
    sp_store_close(third);
    sp_store_close(s);
}

typedef struct opener {
    fixture_t *fx;
    sp_store_t *s;
    char err[512];
} opener_t;

static void *open_thread(void *arg)
{
    opener_t *o = arg;
    o->s = try_open(o->fx, o->err, sizeof(o->err));
    return NULL;
}

/* Servers starting at once on an empty database: one creates the schema, the others wait. */
static void test_open_concurrent(void **state)
{
    fixture_t *fx = *state;
    need_backend(fx);
    opener_t o[6];
    pthread_t t[6];
    for (int i = 0; i < 6; i++) {
        o[i] = (opener_t){.fx = fx};
        assert_int_equal(0, pthread_create(&t[i], NULL, open_thread, &o[i]));
    }
    for (int i = 0; i < 6; i++)
        assert_int_equal(0, pthread_join(t[i], NULL));
    for (int i = 0; i < 6; i++) {
        if (!o[i].s)
            print_error("open %d: %s\n", i, o[i].err);
        assert_non_null(o[i].s);
    }
    char err[512] = "";
    assert_int_equal(0, o[0].s->ops->campaign_create(o[0].s, "c", 1, err, sizeof(err)));
    for (int i = 1; i < 6; i++)
        assert_int_equal(1, o[i].s->ops->campaign_create(o[i].s, "c", 1, err, sizeof(err)));
    for (int i = 0; i < 6; i++)
        sp_store_close(o[i].s);
}

static void test_campaign_create(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    sp_campaign_t c;
    assert_int_equal(1, s->ops->campaign_get(s, "launch", &c, err, sizeof(err)));
    assert_int_equal(0, s->ops->campaign_create(s, "launch", 1700000000123, err, sizeof(err)));
    assert_int_equal(1, s->ops->campaign_create(s, "launch", 1700000009999, err, sizeof(err)));
    c = get_campaign(s, "launch");
    assert_string_equal("launch", c.id);
    assert_int_equal(1700000000123, c.created_at);
    assert_int_equal(0, c.last_view_at);
    assert_int_equal(0, c.total_views);
    assert_int_equal(0, c.unique_views);
    assert_int_equal(0, c.clicks);
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        assert_int_equal(0, c.by_class[i]);
    sp_store_close(s);
}

/* ---- writing --------------------------------------------------------------------------------- */

static void test_batch_outcomes(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "known", 1);
    const spec_t specs[] = {
        {"known", "ann", OPEN, H, 1000, NULL, NULL, NULL},
        {"nowhere", "ann", OPEN, H, 1001, NULL, NULL, NULL},
        {"known", "", CLICK, H, 1002, NULL, NULL, NULL},
        {"nowhere", "", OPEN, H, 1003, NULL, NULL, NULL},
        {"known", "bob", OPEN, P, 1004, NULL, NULL, NULL},
    };
    sp_event_t *evs[5];
    write_specs(s, specs, 5, evs);
    assert_int_equal(SP_OUTCOME_STORED, evs[0]->outcome);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[1]->outcome);
    assert_int_equal(SP_OUTCOME_STORED, evs[2]->outcome);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[3]->outcome);
    assert_int_equal(SP_OUTCOME_STORED, evs[4]->outcome);
    assert_true(evs[0]->id > 0);
    assert_true(evs[2]->id > evs[0]->id);
    assert_true(evs[4]->id > evs[2]->id);

    /* Only the known campaign's events are there, newest first, with the IDs handed out. */
    got_events_t *g = list_events(s, "known", 0, 100);
    assert_int_equal(3, g->n);
    assert_int_equal(evs[4]->id, g->e[0].id);
    assert_int_equal(evs[2]->id, g->e[1].id);
    assert_int_equal(evs[0]->id, g->e[2].id);
    assert_int_equal(1004, g->e[0].ts);
    assert_int_equal(P, g->e[0].klass);
    assert_int_equal(CLICK, g->e[1].kind);
    assert_string_equal("https://example.com/landing", g->e[1].target);
    assert_string_equal("bob", g->e[0].recipient);
    assert_string_equal("", g->e[1].recipient);
    assert_string_equal("Mozilla/5.0 (test)", g->e[0].user_agent);
    assert_null(g->e[0].referer);
    assert_string_equal("192.0.2.1", g->e[0].ip);
    assert_string_equal("Firefox", g->e[0].browser);
    assert_string_equal("test", g->e[0].rule);
    assert_false(g->e[0].has_coords);
    json_t *h = json_loads(g->e[0].headers, 0, NULL);
    assert_non_null(h);
    assert_string_equal("px.example", json_string_value(json_object_get(h, "Host")));
    json_decref(h);
    assert_string_equal("{}", g->e[0].cookies);
    got_events_free(g);
    g = list_events(s, "nowhere", 0, 100);
    assert_int_equal(0, g->n);
    got_events_free(g);
    sp_campaign_t c;
    assert_int_equal(1, s->ops->campaign_get(s, "nowhere", &c, err, sizeof(err)));

    /* A later batch's IDs follow. */
    int64_t last = evs[4]->id;
    for (int i = 0; i < 5; i++)
        sp_event_free(evs[i]);
    const spec_t more[] = {{"known", "cy", OPEN, H, 2000, NULL, NULL, NULL}};
    write_specs(s, more, 1, evs);
    assert_int_equal(SP_OUTCOME_STORED, evs[0]->outcome);
    assert_true(evs[0]->id > last);
    sp_event_free(evs[0]);

    /* An empty batch is no error. */
    assert_int_equal(0, s->ops->write_batch(s, evs, 0, NULL, err, sizeof(err)));
    sp_store_close(s);
}

/* A batch larger than a pipeline window, with an unknown campaign here and there. */
static void test_big_batch(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "big", 1);
    enum { N = 1100 };
    spec_t *specs = calloc(N, sizeof(*specs));
    sp_event_t **evs = calloc(N, sizeof(*evs));
    char names[N][16];
    assert_non_null(specs);
    assert_non_null(evs);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof(names[i]), "r%d", i % 37);
        specs[i] =
            (spec_t){0 == i % 7 ? "absent" : "big", names[i], OPEN, H, 10000 + i, NULL, NULL, NULL};
    }
    write_specs(s, specs, N, evs);
    int64_t last = 0, stored = 0, last_ts = 0;
    for (int i = 0; i < N; i++) {
        if (0 == i % 7) {
            assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[i]->outcome);
            continue;
        }
        assert_int_equal(SP_OUTCOME_STORED, evs[i]->outcome);
        assert_true(evs[i]->id > last);
        last = evs[i]->id;
        last_ts = evs[i]->ts_ms;
        stored++;
    }
    got_events_t *g = list_events(s, "big", 0, INT64_MAX);
    assert_int_equal(stored, g->n);
    assert_int_equal(last, g->e[0].id);
    got_events_free(g);
    sp_campaign_t c = get_campaign(s, "big");
    assert_int_equal(stored, c.total_views);
    assert_int_equal(37, c.unique_views);
    assert_int_equal(last_ts, c.last_view_at);
    for (int i = 0; i < N; i++)
        sp_event_free(evs[i]);
    free(evs);
    free(specs);
    sp_store_close(s);
}

static void test_counters(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "news", 1);
    const spec_t first[] = {
        {"news", "alice", OPEN, H, 1000, NULL, NULL, NULL},
        {"news", "alice", OPEN, P, 2000, NULL, NULL, NULL},
        {"news", "alice", OPEN, M, 500, NULL, NULL, NULL}, /* early, but not counted */
        {"news", "alice", OPEN, S, 3000, NULL, NULL, NULL},
        {"news", "alice", CLICK, H, 2500, NULL, NULL, NULL},
        {"news", "bob", OPEN, M, 1500, NULL, NULL, NULL},
        {"news", "bob", CLICK, M, 1600, NULL, NULL, NULL},
    };
    /* Without a recipient, the visitor ID tells clients apart: the cookie, or the keyed hash of
     * address and agent that the pixel handler puts there when there is none. The store looks
     * at nothing else. */
    const spec_t second[] = {
        {"news", "", OPEN, H, 4000, "198.51.100.1", "UA-A", "cookie1"},
        {"news", "", OPEN, H, 4001, "198.51.100.2", "UA-B", "cookie1"},
        {"news", "", OPEN, H, 4002, "198.51.100.3", "UA-A", "hash-3-A"},
        {"news", "", OPEN, P, 4003, "198.51.100.3", "UA-A", "hash-3-A"},
        {"news", "", OPEN, H, 4004, "198.51.100.3", "UA-B", "hash-3-B"},
        {"news", "", OPEN, M, 4005, "198.51.100.9", "UA-A", "hash-9-A"},
        {"news", "", OPEN, S, 4006, "198.51.100.8", "UA-A", "hash-8-A"},
        {"news", "alice", OPEN, H, 1200, NULL, NULL, NULL},
    };
    write_specs(s, first, sizeof(first) / sizeof(first[0]), NULL);
    sp_campaign_t c = get_campaign(s, "news");
    assert_int_equal(2, c.total_views);
    assert_int_equal(1, c.unique_views);
    assert_int_equal(1, c.clicks);
    assert_int_equal(2500, c.last_view_at); /* a counted click is activity too */

    write_specs(s, second, sizeof(second) / sizeof(second[0]), NULL);
    c = get_campaign(s, "news");
    assert_int_equal(3 + 5, c.total_views);
    assert_int_equal(1 + 3, c.unique_views); /* alice, cookie1, hash-3-A, hash-3-B */
    assert_int_equal(2 + 4, c.by_class[H]);
    assert_int_equal(1 + 1, c.by_class[P]);
    assert_int_equal(2 + 1, c.by_class[M]);
    assert_int_equal(1 + 1, c.by_class[S]);
    assert_int_equal(1, c.clicks);
    assert_int_equal(4004, c.last_view_at);

    got_recipients_t r = list_recipients(s, "news", "", 100);
    assert_int_equal(2, r.n);
    const sp_recipient_t *a = find_recipient(&r, "alice"), *b = find_recipient(&r, "bob");
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(3, a->views);
    assert_int_equal(2, a->by_class[H]);
    assert_int_equal(1, a->by_class[P]);
    assert_int_equal(1, a->by_class[M]);
    assert_int_equal(1, a->by_class[S]);
    assert_int_equal(1, a->clicks);
    assert_int_equal(1000, a->first_at);
    assert_int_equal(2000, a->last_at);
    assert_int_equal(0, b->views);
    assert_int_equal(1, b->by_class[M]);
    assert_int_equal(0, b->clicks);
    assert_int_equal(0, b->first_at);
    assert_int_equal(0, b->last_at);

    /* Repeats within one batch count once as unique. */
    create(s, "repeat", 1);
    const spec_t third[] = {
        {"repeat", "dan", OPEN, H, 10, NULL, NULL, NULL},
        {"repeat", "dan", OPEN, H, 11, NULL, NULL, NULL},
        {"repeat", "", OPEN, H, 12, "203.0.113.5", "UA", "same"},
        {"repeat", "", OPEN, H, 13, "203.0.113.6", "UA", "same"},
        {"repeat", "eve", OPEN, M, 14, NULL, NULL, NULL},
        {"repeat", "eve", OPEN, P, 15, NULL, NULL, NULL},
    };
    write_specs(s, third, sizeof(third) / sizeof(third[0]), NULL);
    c = get_campaign(s, "repeat");
    assert_int_equal(5, c.total_views);
    assert_int_equal(3, c.unique_views);
    sp_store_close(s);
}

/* ---- reading and paging ---------------------------------------------------------------------- */

static void test_events_paging(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "a", 1);
    create(s, "b", 1);
    spec_t specs[20];
    sp_event_t *evs[20];
    for (int i = 0; i < 20; i++)
        specs[i] = (spec_t){i % 2 ? "b" : "a", "", OPEN, H, 100 + i, NULL, NULL, NULL};
    write_specs(s, specs, 20, evs);

    /* Campaign a's ten, newest first, four at a time, each page below the last ID seen. */
    int64_t before = 0;
    int want = 18;
    for (int page = 0; page < 4; page++) {
        got_events_t *g = list_events(s, "a", before, 4);
        assert_int_equal(page < 2 ? 4 : page == 2 ? 2 : 0, g->n);
        for (size_t i = 0; i < g->n; i++, want -= 2) {
            assert_string_equal("a", g->e[i].campaign);
            assert_int_equal(evs[want]->id, g->e[i].id);
            assert_int_equal(100 + want, g->e[i].ts);
        }
        if (g->n)
            before = g->e[g->n - 1].id;
        got_events_free(g);
    }
    assert_int_equal(-2, want);

    /* A callback that says stop gets no more rows, and the store is fine afterwards. */
    got_events_t *g = calloc(1, sizeof(*g));
    char err[512] = "";
    g->stop_after = 3;
    assert_int_equal(0, s->ops->events(s, "b", 0, 100, on_event, g, err, sizeof(err)));
    assert_int_equal(3, g->n);
    got_events_free(g);
    g = list_events(s, "b", evs[19]->id, 100);
    assert_int_equal(9, g->n);
    got_events_free(g);
    for (int i = 0; i < 20; i++)
        sp_event_free(evs[i]);
    sp_store_close(s);
}

static void test_recipients_paging(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "c", 1);
    /* Byte order, as SQLite compares: digits, upper case, '_', lower case. */
    static const char *const order[] = {"0zed", "Bob", "Carl", "_under", "amy", "bea", "zoe"};
    const spec_t specs[] = {
        {"c", "zoe", OPEN, H, 1, NULL, NULL, NULL},    {"c", "amy", OPEN, H, 2, NULL, NULL, NULL},
        {"c", "_under", OPEN, H, 3, NULL, NULL, NULL}, {"c", "Bob", OPEN, H, 4, NULL, NULL, NULL},
        {"c", "bea", CLICK, H, 5, NULL, NULL, NULL},   {"c", "0zed", OPEN, M, 6, NULL, NULL, NULL},
        {"c", "Carl", OPEN, H, 7, NULL, NULL, NULL},   {"c", "amy", OPEN, H, 8, NULL, NULL, NULL},
    };
    write_specs(s, specs, sizeof(specs) / sizeof(specs[0]), NULL);
    char after[SP_ID_MAX + 1] = "";
    size_t seen = 0;
    for (int page = 0; page < 4; page++) {
        got_recipients_t r = list_recipients(s, "c", after, 3);
        assert_int_equal(page < 2 ? 3 : page == 2 ? 1 : 0, r.n);
        for (size_t i = 0; i < r.n; i++, seen++)
            assert_string_equal(order[seen], r.name[i]);
        if (r.n)
            snprintf(after, sizeof(after), "%s", r.name[r.n - 1]);
    }
    assert_int_equal(7, seen);
    got_recipients_t r = list_recipients(s, "c", "amy", 1);
    assert_int_equal(1, r.n);
    assert_string_equal("bea", r.name[0]);
    assert_int_equal(1, r.r[0].clicks);
    r = list_recipients(s, "c", "", 100);
    assert_int_equal(2, find_recipient(&r, "amy")->views);
    assert_int_equal(0, list_recipients(s, "other", "", 100).n);
    sp_store_close(s);
}

static void test_campaign_list(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "old", 1000);
    create(s, "mid", 2000);
    create(s, "new-b", 3000);
    create(s, "new-a", 3000);
    create(s, "quiet", 2500);
    const spec_t specs[] = {
        {"old", "x", OPEN, H, 5000, NULL, NULL, NULL},
        {"quiet", "x", OPEN, M, 9000, NULL, NULL, NULL}, /* machines are no activity */
    };
    write_specs(s, specs, 2, NULL);
    got_campaigns_t g = {.n = 0};
    assert_int_equal(0, s->ops->campaign_list(s, on_campaign, &g, err, sizeof(err)));
    static const char *const want[] = {"old", "new-a", "new-b", "quiet", "mid"};
    assert_int_equal(5, g.n);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(want[i], g.c[i].id);
    assert_int_equal(5000, g.c[0].last_view_at);
    assert_int_equal(1, g.c[0].total_views);
    assert_int_equal(1, g.c[3].by_class[M]);

    got_campaigns_t two = {.n = 0, .stop_after = 2};
    assert_int_equal(0, s->ops->campaign_list(s, on_campaign, &two, err, sizeof(err)));
    assert_int_equal(2, two.n);
    sp_store_close(s);
}

/* ---- privacy --------------------------------------------------------------------------------- */

static void test_purge_before(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "p", 1);
    const spec_t specs[] = {
        {"p", "ann", OPEN, H, 1000, NULL, NULL, NULL},
        {"p", "", OPEN, H, 2000, NULL, NULL, NULL},
        {"p", "ann", CLICK, H, 3000, NULL, NULL, NULL},
    };
    write_specs(s, specs, 3, NULL);
    int64_t deleted = -1;
    assert_int_equal(0, s->ops->purge_before(s, 2500, &deleted, err, sizeof(err)));
    assert_int_equal(2, deleted);
    got_events_t *g = list_events(s, "p", 0, 100);
    assert_int_equal(1, g->n);
    assert_int_equal(3000, g->e[0].ts);
    got_events_free(g);
    sp_campaign_t c = get_campaign(s, "p");
    assert_int_equal(2, c.total_views);
    assert_int_equal(2, c.unique_views);
    assert_int_equal(1, c.clicks);
    got_recipients_t r = list_recipients(s, "p", "", 10);
    assert_int_equal(1, r.n);
    assert_int_equal(1, r.r[0].views);
    assert_int_equal(0, s->ops->purge_before(s, 2500, &deleted, err, sizeof(err)));
    assert_int_equal(0, deleted);
    sp_store_close(s);
}

static void test_forget(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "one", 1);
    create(s, "two", 1);
    const spec_t specs[] = {
        {"one", "gone@example.com", OPEN, H, 100, NULL, NULL, NULL},
        {"one", "gone@example.com", OPEN, P, 101, NULL, NULL, NULL},
        {"one", "gone@example.com", OPEN, M, 102, NULL, NULL, NULL},
        {"one", "gone@example.com", CLICK, H, 103, NULL, NULL, NULL},
        {"one", "stays", OPEN, H, 104, NULL, NULL, NULL},
        {"one", "", OPEN, H, 105, NULL, NULL, NULL},
        {"two", "gone@example.com", OPEN, S, 106, NULL, NULL, NULL},
        {"two", "stays", OPEN, P, 107, NULL, NULL, NULL},
    };
    write_specs(s, specs, sizeof(specs) / sizeof(specs[0]), NULL);
    int64_t deleted = -1;
    assert_int_equal(0, s->ops->forget(s, "gone@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(5, deleted);

    sp_campaign_t c = get_campaign(s, "one");
    assert_int_equal(2, c.total_views);
    assert_int_equal(2, c.unique_views);
    assert_int_equal(2, c.by_class[H]);
    assert_int_equal(0, c.by_class[P]);
    assert_int_equal(0, c.by_class[M]);
    assert_int_equal(0, c.clicks);
    c = get_campaign(s, "two");
    assert_int_equal(1, c.total_views);
    assert_int_equal(1, c.unique_views);
    assert_int_equal(0, c.by_class[S]);
    assert_int_equal(1, c.by_class[P]);

    got_recipients_t r = list_recipients(s, "one", "", 10);
    assert_int_equal(1, r.n);
    assert_string_equal("stays", r.name[0]);
    got_events_t *g = list_events(s, "one", 0, 100);
    assert_int_equal(2, g->n);
    for (size_t i = 0; i < g->n; i++)
        assert_string_not_equal("gone@example.com", g->e[i].recipient);
    got_events_free(g);
    g = list_events(s, "two", 0, 100);
    assert_int_equal(1, g->n);
    got_events_free(g);

    /* Nobody by that name (any more): nothing changes. */
    assert_int_equal(0, s->ops->forget(s, "gone@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(0, deleted);
    assert_int_equal(2, get_campaign(s, "one").total_views);

    /* A forgotten recipient who opens again starts from nothing. */
    const spec_t again[] = {{"one", "gone@example.com", OPEN, H, 200, NULL, NULL, NULL}};
    write_specs(s, again, 1, NULL);
    c = get_campaign(s, "one");
    assert_int_equal(3, c.total_views);
    assert_int_equal(3, c.unique_views);
    r = list_recipients(s, "one", "", 10);
    assert_int_equal(200, find_recipient(&r, "gone@example.com")->first_at);
    sp_store_close(s);
}

/* ---- reports ------------------------------------------------------------------------------ */

/* A campaign over three days and a bit, written in batches of varied sizes: opens of every
 * class and clicks, with and without recipients, clients and places that vary. */
#define REPORT_T0  1774656000000LL /* 2026-03-28T00:00:00Z: Europe/Berlin moves on the 29th */
#define REPORT_N   900
#define REPORT_WHO 37

static void report_event(int i, spec_t *sp, char *who, size_t len)
{
    static const int classes[] = {H, H, H, P, M, S, H, P};
    uint64_t x = (uint64_t)i * 2654435761u + 12345;
    snprintf(who, len, "r%d", (int)(x % REPORT_WHO));
    *sp = (spec_t){"rep",
                   0 == x % 9 ? "" : who,
                   0 == i % 7 ? CLICK : OPEN,
                   classes[(x >> 8) % 8],
                   REPORT_T0 + (int64_t)(x % (76 * 3600)) * 1000 + i % 1000,
                   NULL,
                   NULL,
                   NULL};
}

static void write_report_events(sp_store_t *s, int from, int to)
{
    char who[16];
    size_t n = (size_t)(to - from);
    sp_event_t **evs = calloc(n, sizeof(*evs));
    assert_non_null(evs);
    static const char *const browsers[] = {"Firefox", "Chrome", "Thunderbird", "Outlook"};
    static const char *const countries[] = {"DE", "FR", "US"};
    for (int i = from; i < to; i++) {
        spec_t sp;
        report_event(i, &sp, who, sizeof(who));
        char visitor[16];
        snprintf(visitor, sizeof(visitor), "v%d", i % 5);
        sp.visitor = visitor;
        sp_event_t *ev = evs[i - from] = make_event(&sp);
        snprintf(ev->browser, sizeof(ev->browser), "%s", browsers[i % 4]);
        snprintf(ev->os, sizeof(ev->os), "%s", i % 3 ? "Windows" : "Linux");
        snprintf(ev->country, sizeof(ev->country), "%s", countries[i % 3]);
        /* A quote and a backslash, which PostgreSQL's array literals escape. */
        snprintf(ev->city, sizeof(ev->city), "%s",
                 i % 2         ? "Berlin"
                 : 0 == i % 10 ? "S\\\"o\\"
                               : "");
        if (P == sp.klass)
            snprintf(ev->via, sizeof(ev->via), "%s", i % 2 ? "GoogleImageProxy (Gmail)" : "");
    }
    write_events(s, evs, n);
    for (size_t i = 0; i < n; i++)
        sp_event_free(evs[i]);
    free(evs);
}

static sp_report_t run_report(sp_store_t *s, int64_t from, int64_t to, const char *tz,
                              sp_report_bucket_t bucket, bool scan)
{
    char err[512] = "";
    sp_report_t r = {.from = from, .to = to, .bucket = bucket, .scan = scan};
    assert_int_equal(0, sp_tz_load(&r.tz, tz, err, sizeof(err)));
    int rc = sp_report_run(s, "rep", &r, err, sizeof(err));
    if (rc)
        print_error("report: %s\n", err);
    assert_int_equal(0, rc);
    return r;
}

/* The figures the rollups give are those read from the events themselves, and those counted
 * here from what was written (the counting rule by hand: human and proxy count; unique by
 * recipient, else visitor). SKIP_WHO: a recipient forgotten. */
static void check_report(sp_store_t *s, int64_t from, int64_t to, const char *tz,
                         sp_report_bucket_t bucket, const char *skip_who)
{
    sp_report_t a = run_report(s, from, to, tz, bucket, false);
    sp_report_t b = run_report(s, from, to, tz, bucket, true);
    int64_t by_class[4] = {0}, clicks = 0;
    char openers[REPORT_N][16], clickers[REPORT_N][16];
    int n_open = 0, n_click = 0;
    for (int i = 0; i < REPORT_N; i++) {
        spec_t sp;
        char who[16], key[16];
        report_event(i, &sp, who, sizeof(who));
        if (sp.ts < from || sp.ts >= to || (skip_who && 0 == strcmp(sp.recipient, skip_who)))
            continue;
        bool counted = H == sp.klass || P == sp.klass;
        snprintf(key, sizeof(key), "%s%s", sp.recipient[0] ? "" : "v:",
                 sp.recipient[0] ? sp.recipient : (char[]){'v', (char)('0' + i % 5), 0});
        char(*set)[16] = OPEN == sp.kind ? openers : clickers;
        int *n = OPEN == sp.kind ? &n_open : &n_click;
        if (OPEN == sp.kind)
            by_class[sp.klass]++;
        else if (counted)
            clicks++;
        if (!counted)
            continue;
        bool seen = false;
        for (int k = 0; k < *n && !seen; k++)
            seen = 0 == strcmp(set[k], key);
        if (!seen)
            snprintf(set[(*n)++], 16, "%s", key);
    }
    for (int k = 0; k < 4; k++) {
        assert_int_equal(by_class[k], a.by_class[k]);
        assert_int_equal(by_class[k], b.by_class[k]);
    }
    assert_int_equal(clicks, a.clicks);
    assert_int_equal(clicks, b.clicks);
    assert_int_equal(n_open, a.unique_views);
    assert_int_equal(n_open, b.unique_views);
    assert_int_equal(n_click, a.unique_clickers);
    assert_int_equal(n_click, b.unique_clickers);
    assert_int_equal(b.n_series, a.n_series);
    int64_t in_series = 0;
    for (size_t i = 0; i < a.n_series; i++) {
        assert_int_equal(b.series[i].t, a.series[i].t);
        assert_int_equal(b.series[i].counted, a.series[i].counted);
        assert_int_equal(b.series[i].machine, a.series[i].machine);
        assert_int_equal(b.series[i].self, a.series[i].self);
        assert_int_equal(b.series[i].clicks, a.series[i].clicks);
        in_series += a.series[i].counted;
    }
    assert_int_equal(by_class[H] + by_class[P], in_series);
    int64_t hours = 0, days = 0;
    for (int h = 0; h < 24; h++) {
        assert_int_equal(b.hour_of_day[h], a.hour_of_day[h]);
        hours += a.hour_of_day[h];
    }
    for (int d = 0; d < 7; d++) {
        assert_int_equal(b.day_of_week[d], a.day_of_week[d]);
        days += a.day_of_week[d];
    }
    assert_int_equal(by_class[H] + by_class[P], hours);
    assert_int_equal(by_class[H] + by_class[P], days);
    for (int d = SP_ROLLUP_CLIENT; d <= SP_ROLLUP_VIA; d++) {
        int64_t sum = 0;
        assert_int_equal(b.breakdowns[d].n, a.breakdowns[d].n);
        for (size_t i = 0; i < a.breakdowns[d].n; i++) {
            assert_string_equal(b.breakdowns[d].names[i].name, a.breakdowns[d].names[i].name);
            assert_int_equal(b.breakdowns[d].names[i].count, a.breakdowns[d].names[i].count);
            sum += a.breakdowns[d].names[i].count;
        }
        assert_int_equal(by_class[H] + by_class[P], sum); /* every counted open, once */
    }
    sp_report_free(&a);
    sp_report_free(&b);
}

static void raw_sql(fixture_t *fx, const char *sqlite_sql, const char *pg_sql);
static int64_t raw_int(fixture_t *fx, const char *sql);

/* The rollups the writer added batch by batch are, row for row, what the migration's SQL makes
 * of every stored event. */
static void check_rollup_rows(void **state)
{
    fixture_t *fx = *state;
    static char counts[2][8192], values[2][8192], sql[2][20000];
    for (int pg = 0; pg < 2; pg++)
        sp_rollup_add_sql(counts[pg], values[pg], sizeof(counts[0]), "1 = 1", 1, pg, pg);
    static const char *const snap = "CREATE TABLE snap_counts AS SELECT * FROM rollup_counts;"
                                    " CREATE TABLE snap_values AS SELECT * FROM rollup_values;"
                                    " DELETE FROM rollup_counts; DELETE FROM rollup_values;";
    /* Any row of one not in the other fails the CHECK. */
    static const char *const diff =
        "CREATE TABLE snap_diff(n INTEGER CHECK (n = 0));"
        " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM snap_counts EXCEPT"
        " SELECT * FROM rollup_counts) x;"
        " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM rollup_counts EXCEPT"
        " SELECT * FROM snap_counts) x;"
        " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM snap_values EXCEPT"
        " SELECT * FROM rollup_values) x;"
        " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM rollup_values EXCEPT"
        " SELECT * FROM snap_values) x;"
        " DROP TABLE snap_diff; DROP TABLE snap_counts; DROP TABLE snap_values;";
    for (int pg = 0; pg < 2; pg++)
        snprintf(sql[pg], sizeof(sql[0]), "%s %s; %s; %s", snap, counts[pg], values[pg], diff);
    raw_sql(fx, sql[0], sql[1]);
}

/* The day and all-time rollups and the people's hours are what the hours' rollups add up to, and
 * the number of people by first and by last hour what the people's rows say (hours where no one
 * begins or ends count zero, or have no row). */
#define PEOPLE_HOURS(people)                                                                       \
    "SELECT campaign, dim, hour, SUM(f), SUM(l) FROM (SELECT campaign, dim, first_hour AS hour,"   \
    " 1 AS f, 0 AS l FROM " people " p UNION ALL SELECT campaign, dim, last_hour, 0, 1"            \
    " FROM " people " q) y GROUP BY campaign, dim, hour"

/* The hours' rows folded into the days and totals (rollup.h): on PostgreSQL, every one. */
#define FOLDED_VALUES                                                                              \
    "(SELECT * FROM rollup_values WHERE hour < COALESCE(" SP_ROLLUP_FOLDED_SQL                     \
    ", 9223372036854775807)) f"

/* No hour's row below zero (forget takes out only what was added), and the days and totals (as
 * FOLDED_VALUES) and the people (PEOPLE: every person's row, as rollup_people's) against the
 * hours (HOURS: every person's, rows as rollup_values's). */
#define ROLLUP_DERIVED(people, hours)                                                              \
    "CREATE TABLE snap_diff(n INTEGER CHECK (n = 0));"                                             \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM rollup_values WHERE n < 0;"                       \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT campaign, dim, hour / 24, value,"         \
    " SUM(n) FROM " FOLDED_VALUES " WHERE dim BETWEEN 1 AND 6 GROUP BY campaign, dim,"             \
    " hour / 24, value EXCEPT SELECT * FROM rollup_days) x;"                                       \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM rollup_days EXCEPT"                \
    " SELECT campaign, dim, hour / 24, value, SUM(n) FROM " FOLDED_VALUES                          \
    " WHERE dim BETWEEN 1 AND 6 GROUP BY campaign, dim, hour / 24, value) x;"                      \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT campaign, dim, value, SUM(n)"             \
    " FROM " FOLDED_VALUES " WHERE dim BETWEEN 1 AND 6 GROUP BY campaign, dim, value"              \
    " EXCEPT SELECT * FROM rollup_totals) x;"                                                      \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM rollup_totals EXCEPT"              \
    " SELECT campaign, dim, value, SUM(n) FROM " FOLDED_VALUES " WHERE dim BETWEEN 1 AND 6"        \
    " GROUP BY campaign, dim, value) x;"                                                           \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT campaign, dim, value, MIN(hour),"         \
    " MAX(hour) FROM " hours " h WHERE dim IN (0, 7) AND n > 0 GROUP BY campaign, dim,"            \
    " value EXCEPT SELECT * FROM " people " p) x;"                                                 \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM " people " p EXCEPT"               \
    " SELECT campaign, dim, value, MIN(hour), MAX(hour) FROM " hours " h"                          \
    " WHERE dim IN (0, 7) AND n > 0 GROUP BY campaign, dim, value) x;"                             \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM (" PEOPLE_HOURS(                                  \
        people) " EXCEPT SELECT * FROM"                                                            \
                " rollup_people_hours WHERE firsts <> 0 OR lasts <> 0) x;"                         \
                " INSERT INTO snap_diff SELECT COUNT(*) FROM (SELECT * FROM rollup_people_hours"   \
                " WHERE firsts <> 0 OR lasts <> 0 EXCEPT " PEOPLE_HOURS(people) ") x;"

/* SQLite keeps a named recipient's hours as an opener in its recipients row only (rollup.h,
 * "Named openers"): rollup_people has no such row, and each person has one row (EXCEPT alone
 * would not see one twice). */
#define NAMED_OPENERS_APART                                                                        \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM rollup_people WHERE dim = 0 "                     \
    "AND " SP_ROLLUP_NAMED_SQL("who") ";"                                                          \
                                      " INSERT INTO snap_diff SELECT COUNT(*) - COUNT(DISTINCT "   \
                                      "campaign || ' ' || dim || ' ' || who)"                      \
                                      " FROM " SP_ROLLUP_PEOPLE_SQL " p;"

/* SQLite's hours of people: rollup_values's, and each opener's first hour from its row
 * (rollup.h, "Openers' first hours"), which rollup_values has no row of. */
#define FIRST_HOURS_APART                                                                          \
    "(SELECT campaign, dim, hour, value, n FROM rollup_values UNION ALL SELECT campaign, 0,"       \
    " first_hour, who, 1 FROM " SP_ROLLUP_PEOPLE_SQL " f WHERE dim = 0)"
#define NO_FIRST_HOURS                                                                             \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM rollup_values v JOIN " SP_ROLLUP_PEOPLE_SQL       \
    " p ON p.campaign = v.campaign AND p.dim = 0 AND p.who = v.value AND p.first_hour = v.hour"    \
    " WHERE v.dim = 0;"                                                                            \
    " INSERT INTO snap_diff SELECT COUNT(*) FROM rollup_values v WHERE v.dim = 0 AND v.n > 0"      \
    " AND v.first_hour IS NOT (SELECT first_hour FROM " SP_ROLLUP_PEOPLE_SQL " p"                  \
    " WHERE p.campaign = v.campaign AND p.dim = 0 AND p.who = v.value);"

static void check_rollup_derived(void **state)
{
    raw_sql(*state,
            ROLLUP_DERIVED(SP_ROLLUP_PEOPLE_SQL, FIRST_HOURS_APART)
                NAMED_OPENERS_APART NO_FIRST_HOURS " DROP TABLE snap_diff;",
            ROLLUP_DERIVED("rollup_people", "rollup_values") " DROP TABLE snap_diff;");
}

/* SQLite: every event's ID is in its campaign's quarter hour's range of IDs (events_quarters),
 * which is what finds it by time. */
static void check_event_quarters(void **state)
{
    fixture_t *fx = *state;
    if (fx->be->pg)
        return;
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1"
                                    " FROM events_quarters q WHERE q.campaign = e.campaign"
                                    " AND q.quarter = e.ts / " SP_QUERY_QUARTER_SQL
                                    " AND e.id BETWEEN q.first_id AND q.last_id)"));
}

/* SQLite: every event with a recipient is among the IDs its recipient's row lists, which is what
 * finds it for a recipient's page, a read and forget (schema 24), and every ID listed is of an
 * event of that recipient, or of none. */
static void check_recipient_events(void **state)
{
    fixture_t *fx = *state;
    if (fx->be->pg)
        return;
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM events e WHERE e.recipient <> ''"
                                    " AND e.id NOT IN " SP_QUERY_RECIPIENT_EVENT_IDS(
                                        "e.campaign", "e.recipient")));
    assert_int_equal(
        0,
        raw_int(
            fx,
            "SELECT count(*) FROM (SELECT r.campaign, r.recipient, j.value"
            " FROM recipients r, " SP_QUERY_EVENT_IDS(
                "r.event_ids") " j"
                               " UNION ALL SELECT r.campaign, r.recipient, j.value FROM"
                               " recipient_events r, " SP_QUERY_EVENT_IDS(
                                   "r.ids") " j) l"
                                            " JOIN events e ON e.id = l.value WHERE e.campaign <>"
                                            " l.campaign OR e.recipient <> l.recipient"));
    /* Each event listed once. */
    assert_int_equal(
        0, raw_int(fx, "SELECT count(*) - count(DISTINCT value) FROM (SELECT j.value"
                       " FROM recipients r, " SP_QUERY_EVENT_IDS(
                           "r.event_ids") " j"
                                          " UNION ALL SELECT j.value FROM recipient_events "
                                          "r, " SP_QUERY_EVENT_IDS("r.ids") " j)"));
}

/* A breakdown of more values than the report lists, with ties: the first
 * SP_REPORT_BREAKDOWN_MAX by count, descending, then by their bytes, and the rest summed in
 * others, the same from the rollups (all time: the totals; a range: days and hours) and from the
 * events. */
#define RANK_CITIES 150

static int cmp_rank(const void *pa, const void *pb)
{
    const sp_report_name_t *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return strcmp(a->name, b->name);
}

static void test_report_ranking(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "rank", 1);
    char err[512] = "";
    sp_report_name_t want[RANK_CITIES];
    char names[RANK_CITIES][16];
    size_t n = 0;
    for (int i = 0; i < RANK_CITIES; i++)
        n += 1 + (size_t)(i * 37 % 7);
    sp_event_t **evs = calloc(n, sizeof(*evs));
    assert_non_null(evs);
    size_t k = 0;
    for (int i = 0; i < RANK_CITIES; i++) {
        /* Upper case, lower case and a byte past ASCII: bytes order them, not a locale. */
        static const char *const first[] = {"a", "B", "\xc3\x9c", "b"};
        snprintf(names[i], sizeof(names[i]), "%s%03d", first[i % 4], (i * 53) % RANK_CITIES);
        want[i] = (sp_report_name_t){names[i], 1 + i * 37 % 7};
        for (int j = 0; j < want[i].count; j++) {
            char who[16];
            snprintf(who, sizeof(who), "r%d", i);
            /* The first 60 cities within the first hours, the rest over 18 days after. */
            int64_t ts = i < 60 ? REPORT_T0 + (int64_t)k * 60000
                                : REPORT_T0 + 2 * 86400000LL + (int64_t)k * 40 * 60000;
            spec_t sp = {"rank", who, OPEN, H, ts, NULL, NULL, NULL};
            evs[k] = make_event(&sp);
            snprintf(evs[k]->city, sizeof(evs[k]->city), "%.15s", names[i]);
            k++;
        }
    }
    assert_int_equal(0, s->ops->write_batch(s, evs, n, NULL, err, sizeof(err)));
    for (size_t i = 0; i < n; i++)
        sp_event_free(evs[i]);
    free(evs);
    qsort(want, RANK_CITIES, sizeof(want[0]), cmp_rank);
    int64_t others = 0;
    for (int i = SP_REPORT_BREAKDOWN_MAX; i < RANK_CITIES; i++)
        others += want[i].count;
    /* The events span 19 days: these ranges hold them all. */
    const int64_t DAY = 86400000, HOUR = 3600000;
    const int64_t ranges[][2] = {{0, SP_REPORT_TIME_MAX},
                                 {REPORT_T0 - 3 * DAY + 1234, REPORT_T0 + 24 * DAY + 5678}};
    for (size_t r = 0; r < 2; r++)
        for (int scan = 0; scan < 2; scan++) {
            sp_report_t rep = {.from = ranges[r][0], .to = ranges[r][1], .scan = scan};
            assert_int_equal(0, sp_tz_load(&rep.tz, "UTC", err, sizeof(err)));
            assert_int_equal(0, sp_report_run(s, "rank", &rep, err, sizeof(err)));
            const sp_report_breakdown_t *b = &rep.breakdowns[SP_ROLLUP_CITY];
            assert_int_equal(SP_REPORT_BREAKDOWN_MAX, b->n);
            for (int i = 0; i < SP_REPORT_BREAKDOWN_MAX; i++) {
                assert_string_equal(want[i].name, b->names[i].name);
                assert_int_equal(want[i].count, b->names[i].count);
            }
            assert_int_equal(others, b->others);
            sp_report_free(&rep);
        }
    /* All but the first day: the campaign's totals less the day, hours and events outside
     * (sp_rollup_outside); the first 60 cities are none, as from the events. */
    sp_report_t rep[2];
    for (int scan = 0; scan < 2; scan++) {
        rep[scan] = (sp_report_t){.from = REPORT_T0 + DAY + 5 * HOUR + 17000,
                                  .to = REPORT_T0 + 21 * DAY + 3 * HOUR,
                                  .scan = scan};
        assert_int_equal(0, sp_tz_load(&rep[scan].tz, "UTC", err, sizeof(err)));
        assert_int_equal(0, sp_report_run(s, "rank", &rep[scan], err, sizeof(err)));
    }
    const sp_report_breakdown_t *a = &rep[0].breakdowns[SP_ROLLUP_CITY],
                                *b = &rep[1].breakdowns[SP_ROLLUP_CITY];
    assert_int_equal(RANK_CITIES - 60, a->n);
    assert_int_equal(b->n, a->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(b->names[i].name, a->names[i].name);
        assert_int_equal(b->names[i].count, a->names[i].count);
    }
    assert_int_equal(b->others, a->others);
    for (int scan = 0; scan < 2; scan++)
        sp_report_free(&rep[scan]);
    sp_store_close(s);
}

/* The report of [FROM, TO) from the rollups is the report from the events (breakdowns, opens,
 * unique openers). */
static void same_report(sp_store_t *s, const char *campaign, int64_t from, int64_t to)
{
    char err[512] = "";
    sp_report_t rep[2];
    for (int scan = 0; scan < 2; scan++) {
        rep[scan] = (sp_report_t){.from = from, .to = to, .scan = scan};
        assert_int_equal(0, sp_tz_load(&rep[scan].tz, "UTC", err, sizeof(err)));
        if (0 != sp_report_run(s, campaign, &rep[scan], err, sizeof(err)))
            fail_msg("report: %s", err);
    }
    for (int c = 0; c < SP_CLASS_COUNT; c++)
        assert_int_equal(rep[1].by_class[c], rep[0].by_class[c]);
    assert_int_equal(rep[1].unique_views, rep[0].unique_views);
    for (int d = SP_ROLLUP_CLIENT; d <= SP_ROLLUP_VIA; d++) {
        const sp_report_breakdown_t *a = &rep[0].breakdowns[d], *b = &rep[1].breakdowns[d];
        if (b->n != a->n)
            fail_msg("[%lld, %lld) dim %d: %zu names, from the events %zu", (long long)from,
                     (long long)to, d, a->n, b->n);
        for (size_t i = 0; i < a->n; i++) {
            assert_string_equal(b->names[i].name, a->names[i].name);
            assert_int_equal(b->names[i].count, a->names[i].count);
        }
        assert_int_equal(b->others, a->others);
    }
    for (int scan = 0; scan < 2; scan++)
        sp_report_free(&rep[scan]);
}

/* SQLite: a recipient whose row the batch inserts has no rollup_people row yet, so the writer
 * inserts theirs (as a clicker: an opener's hours are its recipient's row's) without reading
 * it; one left there by hand (its recipient's row deleted) is read after all: the batch is
 * stored, the person's hours move, and the people's hours add up. */
static void test_sqlite_people_left(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    create(s, "left", 1);
    const int64_t HOUR = 3600000, T = REPORT_T0;
    const spec_t first[] = {{"left", "kim", CLICK, H, T, NULL, NULL, NULL},
                            {"left", "lee", CLICK, H, T + 60000, NULL, NULL, NULL}};
    write_specs(s, first, 2, NULL);
    check_rollup_derived(state);
    raw_sql(fx, "DELETE FROM recipients WHERE recipient = 'kim'", "");
    /* A writer that has not stored kim's row itself (its hint would have it updated first). */
    sp_store_close(s);
    s = open_store(state);
    /* kim again, hours later, among new people before and after (one statement holds them). */
    const spec_t again[] = {{"left", "amy", CLICK, H, T + 5 * HOUR, NULL, NULL, NULL},
                            {"left", "kim", CLICK, H, T + 5 * HOUR + 1, NULL, NULL, NULL},
                            {"left", "zed", CLICK, H, T + 5 * HOUR + 2, NULL, NULL, NULL}};
    write_specs(s, again, 3, NULL);
    assert_int_equal(T / HOUR, raw_int(fx, "SELECT first_hour FROM rollup_people"
                                           " WHERE campaign = 'left' AND dim = 7 AND who = 'kim'"));
    assert_int_equal(T / HOUR + 5,
                     raw_int(fx, "SELECT last_hour FROM rollup_people"
                                 " WHERE campaign = 'left' AND dim = 7 AND who = 'kim'"));
    assert_int_equal(
        4, raw_int(fx, "SELECT COUNT(*) FROM rollup_people WHERE campaign = 'left' AND dim = 7"));
    check_rollup_derived(state);
    sp_store_close(s);
}

/* Opens of hours the writer has folded into the days and totals, of hours it has not yet (the
 * batch's last), and late ones of folded hours (added at once), then forgotten: the days and
 * totals are the hours folded, and every report reads as from the events, whole days, the
 * campaign less what lies outside, and the hour not folded among them. */
static void test_report_folded_hours(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    create(s, "fold", 1);
    const int64_t DAY = 86400000, HOUR = 3600000, T = REPORT_T0 + 10 * DAY;
    static const char *const cities[] = {"Oslo", "Lima", "Kyiv", "Pune", "Baku"};
    static const char *const who[] = {"ann", "bob", "cy", "dee", "gone"};
    /* Batches: days 0-2; day 5, hour 7; late ones of days 1 and 5; day 5, hour 7 again. */
    static const int64_t first[] = {0, 5 * 24 + 7, 24 + 3, 5 * 24 + 7}, hours[] = {60, 1, 3, 1};
    int64_t folded_before = -1;
    for (size_t b = 0; b < 4; b++) {
        spec_t specs[60];
        sp_event_t *evs[60];
        size_t n = 0;
        int64_t newest = 0; /* the batch's newest hour */
        for (int64_t h = 0; h<hours[b]; h += hours[b]> 3 ? 7 : 1)
            for (int k = 0; k < 3; k++, n++) {
                newest = first[b] + h > newest ? first[b] + h : newest;
                int i = (int)((first[b] + h) * 3 + k + (int64_t)b);
                specs[n] = (spec_t){
                    "fold", who[i % 5], OPEN, H, T + (first[b] + h) * HOUR + k * 60000 + (int64_t)b,
                    NULL,   NULL,       NULL};
            }
        for (size_t i = 0; i < n; i++) {
            evs[i] = make_event(&specs[i]);
            snprintf(evs[i]->city, sizeof(evs[i]->city), "%s", cities[(i + b) % 5]);
        }
        char err[512] = "";
        assert_int_equal(0, s->ops->write_batch(s, evs, n, NULL, err, sizeof(err)));
        for (size_t i = 0; i < n; i++)
            sp_event_free(evs[i]);
        check_rollup_derived(state);
        if (!fx->be->pg) {
            /* The hours up to the batch's newest are folded, and only those. */
            int64_t folded = raw_int(fx, "SELECT " SP_ROLLUP_FOLDED_SQL);
            assert_int_equal(T / HOUR + (b < 2 ? newest : 5 * 24 + 7), folded);
            assert_true(folded >= folded_before);
            folded_before = folded;
            assert_true(raw_int(fx, "SELECT COUNT(*) FROM rollup_values WHERE dim = 5"
                                    " AND hour >= " SP_ROLLUP_FOLDED_SQL) > 0);
        }
        same_report(s, "fold", 0, SP_REPORT_TIME_MAX);
        same_report(s, "fold", T, T + 6 * DAY);                  /* whole days */
        same_report(s, "fold", T + 5 * DAY, T + 6 * DAY);        /* the day not folded */
        same_report(s, "fold", T + DAY + 5 * HOUR, T + 9 * DAY); /* outside */
        same_report(s, "fold", T + 2 * HOUR, T + 5 * DAY + 8 * HOUR);
    }
    int64_t deleted = -1;
    char err[512] = "";
    assert_int_equal(0, s->ops->forget(s, "gone", &deleted, err, sizeof(err)));
    assert_true(deleted > 0);
    check_rollup_derived(state);
    same_report(s, "fold", 0, SP_REPORT_TIME_MAX);
    same_report(s, "fold", T, T + 6 * DAY);
    same_report(s, "fold", T + DAY + 5 * HOUR, T + 9 * DAY);
    sp_store_close(s);
}

/* The unique openers of a range that starts before a campaign's first hour or ends after its
 * last, where the report counts them from the nearer end (those after the range, or before it,
 * taken from the campaign's number): a person whose first or last hour is the range's edge
 * hour is on the right side of it. */
static void test_report_openers_ends(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "ends", 1);
    const int64_t HOUR = 3600000, T = REPORT_T0;
    /* a: hour 0; e: hours 0 and 2; b: hour 5; c: hour 10; d: hours 2 and 12. */
    write_specs(s,
                (const spec_t[]){{"ends", "a", OPEN, H, T + 60000, NULL, NULL, NULL},
                                 {"ends", "e", OPEN, H, T + 120000, NULL, NULL, NULL},
                                 {"ends", "e", OPEN, H, T + 2 * HOUR + 5000, NULL, NULL, NULL},
                                 {"ends", "d", OPEN, H, T + 2 * HOUR + 9000, NULL, NULL, NULL},
                                 {"ends", "b", OPEN, H, T + 5 * HOUR + 7000, NULL, NULL, NULL},
                                 {"ends", "c", OPEN, H, T + 10 * HOUR, NULL, NULL, NULL},
                                 {"ends", "d", OPEN, H, T + 12 * HOUR + 3000, NULL, NULL, NULL}},
                7, NULL);
    char err[512] = "";
    const struct {
        int64_t from, to, openers;
    } ranges[] = {
        {T - 3 * HOUR, T + 10 * HOUR, 4},       /* to at c's first hour: a, e, d, b */
        {T - 3 * HOUR, T + 10 * HOUR + 1, 5},   /* c's open at the edge's first millisecond */
        {T + 2 * HOUR, T + 20 * HOUR, 4},       /* from at e's last hour: e, d, b, c */
        {T + 2 * HOUR + 5001, T + 20 * HOUR, 3} /* e's open just before: d, b, c */
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        for (int scan = 0; scan < 2; scan++) {
            sp_report_t rep = {.from = ranges[i].from, .to = ranges[i].to, .scan = scan};
            assert_int_equal(0, sp_tz_load(&rep.tz, "UTC", err, sizeof(err)));
            assert_int_equal(0, sp_report_run(s, "ends", &rep, err, sizeof(err)));
            if (ranges[i].openers != rep.unique_views)
                fail_msg("range %zu (scan %d): %lld openers, want %lld", i, scan,
                         (long long)rep.unique_views, (long long)ranges[i].openers);
            sp_report_free(&rep);
        }
    sp_store_close(s);
}

static void test_report(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "rep", 1);
    create(s, "other", 1);
    write_specs(s, (const spec_t[]){{"other", "r1", OPEN, H, REPORT_T0 + 5000, NULL, NULL, NULL}},
                1, NULL);
    for (int at = 0; at < REPORT_N;) {
        int n = 1 + (at * 7) % 250;
        n = at + n > REPORT_N ? REPORT_N - at : n;
        write_report_events(s, at, at + n);
        at += n;
    }
    const int64_t HOUR = 3600000, DAY = 24 * HOUR;
    const int64_t ranges[][2] = {
        {0, SP_REPORT_TIME_MAX},                                          /* all time */
        {REPORT_T0 + 17 * 60000 + 3, REPORT_T0 + 29 * HOUR + 13 * 60000}, /* edges in hours */
        {REPORT_T0 + 5 * HOUR + 1000, REPORT_T0 + 5 * HOUR + 2500000},    /* within an hour */
        {REPORT_T0 + DAY, REPORT_T0 + 2 * DAY},                           /* whole hours */
        {REPORT_T0 + 50 * HOUR + 123, SP_REPORT_TIME_MAX},
        /* From before the first open: the unique ones from each one's first hour. */
        {REPORT_T0 - HOUR + 77, REPORT_T0 + 30 * HOUR + 5 * 60000},
        {0, REPORT_T0 + 2 * DAY + 40 * 60000},
        /* To after the last one: from each one's last hour. */
        {REPORT_T0 + 25 * HOUR + 999, REPORT_T0 + 5 * DAY},
    };
    check_rollup_rows(state);
    check_rollup_derived(state);
    check_event_quarters(state);
    check_recipient_events(state);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        check_report(s, ranges[i][0], ranges[i][1], "UTC", SP_REPORT_HOUR, NULL);
        check_report(s, ranges[i][0], ranges[i][1], "Europe/Berlin", SP_REPORT_DAY, NULL);
        check_report(s, ranges[i][0], ranges[i][1], "Asia/Kathmandu", SP_REPORT_WEEK, NULL);
        check_report(s, ranges[i][0], ranges[i][1], "America/St_Johns", SP_REPORT_HOUR, NULL);
    }

    /* Days in Berlin across the change to summer time: midnight is 23:00Z, then 22:00Z. */
    sp_report_t r = run_report(s, 0, SP_REPORT_TIME_MAX, "Europe/Berlin", SP_REPORT_DAY, false);
    assert_true(r.n_series >= 4);
    assert_int_equal(REPORT_T0 - HOUR, r.series[0].t);
    assert_int_equal(REPORT_T0 + 23 * HOUR, r.series[1].t);
    assert_int_equal(REPORT_T0 + 46 * HOUR, r.series[2].t); /* a 23-hour day */
    assert_int_equal(REPORT_T0 + 70 * HOUR, r.series[3].t);
    sp_report_free(&r);

    /* Forgetting a recipient takes their share out of the rollups too. */
    char err[512] = "";
    int64_t deleted = 0;
    assert_int_equal(0, s->ops->forget(s, "r3", &deleted, err, sizeof(err)));
    assert_true(deleted > 0);
    check_rollup_derived(state);
    check_event_quarters(state);
    check_recipient_events(state);
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++)
        check_report(s, ranges[i][0], ranges[i][1], "UTC", SP_REPORT_DAY, "r3");

    /* Deleting the campaign drops its rollups: a new one of the same name starts empty. */
    assert_int_equal(0, s->ops->campaign_delete(s, "rep", &deleted, err, sizeof(err)));
    create(s, "rep", 1);
    r = run_report(s, 0, SP_REPORT_TIME_MAX, "UTC", SP_REPORT_DAY, false);
    assert_int_equal(0, r.by_class[H] + r.by_class[P] + r.by_class[M] + r.by_class[S]);
    assert_int_equal(0, r.unique_views);
    assert_int_equal(0, r.n_series);
    sp_report_free(&r);
    sp_store_close(s);
}

typedef struct {
    int64_t from, to, last_id;
    int n, wrong;
} in_time_t;

static int on_in_time(void *ctx, const sp_event_row_t *r)
{
    in_time_t *t = ctx;
    t->wrong += r->ts_ms < t->from || r->ts_ms >= t->to || (t->last_id && r->id >= t->last_id);
    t->last_id = r->id;
    t->n++;
    return 0;
}

/* The events of "rep" in [FROM, TO) that REPORT_N opens at times in no order of their IDs left
 * (before retention at KEPT_FROM: from it on), by hand. */
static int report_in_time(int64_t from, int64_t to, int64_t kept_from)
{
    int n = 0;
    for (int i = 0; i < REPORT_N; i++) {
        spec_t sp;
        char who[16];
        report_event(i, &sp, who, sizeof(who));
        n += sp.ts >= from && sp.ts < to && sp.ts >= kept_from;
    }
    return n;
}

/* A campaign's events of a time range, whole and paged, where the IDs follow no order of time
 * (each batch's opens at times all over three days), before and after retention; on SQLite
 * found by the IDs of their quarter hours, which must hold every event. */
static void test_events_by_time(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "rep", 1);
    create(s, "other", 1);
    for (int at = 0; at < REPORT_N;) {
        int n = 1 + (at * 7) % 250;
        n = at + n > REPORT_N ? REPORT_N - at : n;
        write_report_events(s, at, at + n);
        /* Another campaign's opens between, in the same quarter hours. */
        write_specs(
            s,
            (const spec_t[]){{"other", "r1", OPEN, H, REPORT_T0 + at * 300000LL, NULL, NULL, NULL}},
            1, NULL);
        at += n;
    }
    check_event_quarters(state);
    check_recipient_events(state);
    const int64_t Q = SP_QUERY_QUARTER_MS, HOUR = 3600000;
    const int64_t ranges[][2] = {
        {REPORT_T0, INT64_MAX},
        {1, REPORT_T0 + 20 * HOUR + 7},
        {REPORT_T0 + 3 * Q, REPORT_T0 + 4 * Q},              /* one quarter hour */
        {REPORT_T0 + 3 * Q + 1, REPORT_T0 + 3 * Q + 600000}, /* within one */
        {REPORT_T0 + 17 * HOUR + 123, REPORT_T0 + 41 * HOUR + 4567},
        {REPORT_T0 + 75 * HOUR + 1, INT64_MAX},
        {REPORT_T0 - 2 * HOUR, REPORT_T0 - HOUR}, /* before every open */
        {REPORT_T0 + 80 * HOUR, INT64_MAX},       /* after every open */
    };
    int64_t kept_from = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
            sp_query_events_t q = {.campaign = "rep",
                                   .klass = -1,
                                   .kind = -1,
                                   .from = ranges[i][0],
                                   .to = ranges[i][1],
                                   .limit = -1};
            int expect = report_in_time(q.from, q.to, kept_from);
            in_time_t all = {.from = q.from, .to = q.to};
            assert_int_equal(0, s->ops->events_query(s, &q, on_in_time, &all, err, sizeof(err)));
            if (expect != all.n || all.wrong)
                fail_msg("[%lld, %lld) pass %d: %d events (%d out of range or order), %d written",
                         (long long)q.from, (long long)q.to, pass, all.n, all.wrong, expect);
            /* Pages of 37 by the last ID give the same. */
            q.limit = 37;
            in_time_t paged = {.from = q.from, .to = q.to};
            for (;;) {
                int before = paged.n;
                assert_int_equal(0,
                                 s->ops->events_query(s, &q, on_in_time, &paged, err, sizeof(err)));
                if (paged.n - before < 37)
                    break;
                q.before = paged.last_id;
            }
            assert_int_equal(expect, paged.n);
            assert_int_equal(0, paged.wrong);
        }
        /* Retention in the middle of a quarter hour. */
        kept_from = REPORT_T0 + 30 * HOUR + 5 * 60000 + 17;
        int64_t deleted = -1;
        assert_int_equal(0, s->ops->purge_before(s, kept_from, &deleted, err, sizeof(err)));
        if (0 == pass) {
            int other = 0;
            for (int at = 0; at < REPORT_N;) {
                other += REPORT_T0 + at * 300000LL < kept_from;
                int n = 1 + (at * 7) % 250;
                at += at + n > REPORT_N ? REPORT_N - at : n;
            }
            assert_int_equal(report_in_time(0, kept_from, 0) + other, deleted);
        } else {
            assert_int_equal(0, deleted);
        }
        check_event_quarters(state);
        check_recipient_events(state);
        if (!((fixture_t *)*state)->be->pg) {
            char sql[256];
            snprintf(sql, sizeof(sql), "SELECT count(*) FROM events_quarters WHERE quarter < %lld",
                     (long long)(kept_from / Q));
            assert_int_equal(0, raw_int(*state, sql));
        }
    }
    sp_store_close(s);
}

/* Checks that WHO's row of rollup_people in campaign "w" for DIM holds hours FIRST and LAST. */
static void check_person(void **state, const char *who, int dim, int64_t first, int64_t last)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE person_chk(n INTEGER CHECK (n = 1));"
             " INSERT INTO person_chk SELECT COUNT(*) FROM %s p WHERE campaign = 'w'"
             " AND dim = %d AND who = '%s' AND first_hour = %lld AND last_hour = %lld;"
             " DROP TABLE person_chk;",
             ((fixture_t *)*state)->be->pg ? "rollup_people" : SP_ROLLUP_PEOPLE_SQL, dim, who,
             (long long)first, (long long)last);
    raw_sql(*state, sql, sql);
}

/* Writes SPECS as one batch into S and checks which of them were first views (FIRST: a 1 each). */
static void write_firsts(sp_store_t *s, const spec_t *specs, size_t n, const int *first)
{
    sp_event_t *evs[16];
    assert_true(n <= 16);
    write_specs(s, specs, n, evs);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(first[i], evs[i]->first_view);
        sp_event_free(evs[i]);
    }
}

/* The writer's counts over batches: one person in several hours and days of one batch, a row
 * that existed without views, a recipient another server stored first, one forgotten between
 * batches, and one whose events retention took, each opening again. */
static void test_writer_counts(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "w", 1);
    const int64_t T = REPORT_T0, HR = 3600000, h0 = REPORT_T0 / 3600000;
    const spec_t one[] = {
        {"w", "amy", OPEN, H, T + 600000, NULL, NULL, NULL},
        {"w", "amy", OPEN, H, T + 5 * HR, NULL, NULL, NULL},
        {"w", "amy", OPEN, P, T + 30 * HR, NULL, NULL, NULL},
        {"w", "bob", OPEN, M, T + HR, NULL, NULL, NULL},
        {"w", "", OPEN, H, T + 2 * HR, NULL, NULL, "v1"},
        {"w", "", OPEN, H, T + 26 * HR, NULL, NULL, "v1"},
        {"w", "amy", CLICK, H, T + 6 * HR, NULL, NULL, NULL},
    };
    write_firsts(s, one, 7, (const int[]){1, 0, 0, 0, 1, 0, 0});
    sp_campaign_t c = get_campaign(s, "w");
    assert_int_equal(5, c.total_views);
    assert_int_equal(2, c.unique_views); /* amy, v1 */
    got_recipients_t r = list_recipients(s, "w", "", 10);
    assert_int_equal(2, r.n);
    assert_int_equal(3, find_recipient(&r, "amy")->views);
    assert_int_equal(T + 600000, find_recipient(&r, "amy")->first_at);
    assert_int_equal(T + 30 * HR, find_recipient(&r, "amy")->last_at);
    assert_int_equal(0, find_recipient(&r, "bob")->views);
    check_person(state, "amy", SP_ROLLUP_OPENER, h0, h0 + 30);
    check_person(state, "amy", SP_ROLLUP_CLICKER, h0 + 6, h0 + 6);
    check_person(state, "v:v1", SP_ROLLUP_OPENER, h0 + 2, h0 + 26);
    check_rollup_rows(state);
    check_rollup_derived(state);
    check_event_quarters(state);
    check_recipient_events(state);

    /* Bob's row had no views: his first counted open is a unique view. Amy's hours move back
     * (an open older than her first) and not forward (one inside them). */
    const spec_t two[] = {
        {"w", "bob", OPEN, H, T + 40 * HR, NULL, NULL, NULL},
        {"w", "amy", OPEN, H, T + 3 * HR, NULL, NULL, NULL},
        {"w", "amy", OPEN, H, T - 2 * HR, NULL, NULL, NULL},
    };
    write_firsts(s, two, 3, (const int[]){1, 0, 0});
    c = get_campaign(s, "w");
    assert_int_equal(3, c.unique_views);
    r = list_recipients(s, "w", "", 10);
    assert_int_equal(5, find_recipient(&r, "amy")->views);
    assert_int_equal(T - 2 * HR, find_recipient(&r, "amy")->first_at);
    assert_int_equal(T + 30 * HR, find_recipient(&r, "amy")->last_at);
    check_person(state, "amy", SP_ROLLUP_OPENER, h0 - 2, h0 + 30);
    check_person(state, "bob", SP_ROLLUP_OPENER, h0 + 40, h0 + 40);
    check_rollup_rows(state);
    check_rollup_derived(state);
    check_event_quarters(state);
    check_recipient_events(state);

    /* Another server stores cy first: this writer's open of cy is no unique view. */
    sp_store_t *other = open_store(state);
    write_firsts(other, (const spec_t[]){{"w", "cy", OPEN, H, T + 41 * HR, NULL, NULL, NULL}}, 1,
                 (const int[]){1});
    sp_store_close(other);
    write_firsts(s, (const spec_t[]){{"w", "cy", OPEN, H, T + 42 * HR, NULL, NULL, NULL}}, 1,
                 (const int[]){0});
    c = get_campaign(s, "w");
    assert_int_equal(4, c.unique_views);
    r = list_recipients(s, "w", "", 10);
    assert_int_equal(2, find_recipient(&r, "cy")->views);
    assert_int_equal(T + 41 * HR, find_recipient(&r, "cy")->first_at);
    check_person(state, "cy", SP_ROLLUP_OPENER, h0 + 41, h0 + 42);

    /* Among recipients new to this writer, one the other server stored first. */
    other = open_store(state);
    write_firsts(other, (const spec_t[]){{"w", "dee", OPEN, H, T + 43 * HR, NULL, NULL, NULL}}, 1,
                 (const int[]){1});
    sp_store_close(other);
    const spec_t three[] = {
        {"w", "dan", OPEN, H, T + 44 * HR, NULL, NULL, NULL},
        {"w", "dee", OPEN, H, T + 44 * HR, NULL, NULL, NULL},
        {"w", "dot", OPEN, H, T + 44 * HR, NULL, NULL, NULL},
        {"w", "dug", OPEN, H, T + 44 * HR, NULL, NULL, NULL},
    };
    write_firsts(s, three, 4, (const int[]){1, 0, 1, 1});
    c = get_campaign(s, "w");
    assert_int_equal(8, c.unique_views);
    r = list_recipients(s, "w", "", 10);
    assert_int_equal(1, find_recipient(&r, "dan")->views);
    assert_int_equal(2, find_recipient(&r, "dee")->views);
    assert_int_equal(1, find_recipient(&r, "dot")->views);

    /* Amy forgotten, then opening again: a new reader, from nothing. */
    int64_t deleted = 0;
    assert_int_equal(0, s->ops->forget(s, "amy", &deleted, err, sizeof(err)));
    assert_int_equal(6, deleted);
    assert_int_equal(7, get_campaign(s, "w").unique_views);
    write_firsts(s, (const spec_t[]){{"w", "amy", OPEN, P, T + 50 * HR, NULL, NULL, NULL}}, 1,
                 (const int[]){1});
    c = get_campaign(s, "w");
    assert_int_equal(8, c.unique_views);
    r = list_recipients(s, "w", "", 10);
    assert_int_equal(1, find_recipient(&r, "amy")->views);
    assert_int_equal(T + 50 * HR, find_recipient(&r, "amy")->first_at);
    check_person(state, "amy", SP_ROLLUP_OPENER, h0 + 50, h0 + 50);
    check_rollup_derived(state); /* not the rows: forget leaves its hours' rows at zero */

    /* Retention takes the events, not the counts: amy and bob again are no unique views. */
    assert_int_equal(0, s->ops->purge_before(s, T + 60 * HR, &deleted, err, sizeof(err)));
    assert_true(deleted > 0);
    const spec_t again[] = {
        {"w", "amy", OPEN, H, T + 61 * HR, NULL, NULL, NULL},
        {"w", "bob", OPEN, H, T + 62 * HR, NULL, NULL, NULL},
    };
    write_firsts(s, again, 2, (const int[]){0, 0});
    c = get_campaign(s, "w");
    assert_int_equal(8, c.unique_views);
    r = list_recipients(s, "w", "", 10);
    assert_int_equal(2, find_recipient(&r, "amy")->views);
    assert_int_equal(2, find_recipient(&r, "bob")->views);
    assert_int_equal(T + 62 * HR, find_recipient(&r, "bob")->last_at);
    check_person(state, "amy", SP_ROLLUP_OPENER, h0 + 50, h0 + 61);
    check_person(state, "bob", SP_ROLLUP_OPENER, h0 + 40, h0 + 62);
    check_rollup_derived(state);
    check_event_quarters(state);
    check_recipient_events(state);
    sp_store_close(s);
}

/* Two recipient IDs that are one once made valid UTF-8 (the pixel takes neither; a journal
 * may hold anything) in one batch: PostgreSQL stores them as one, which a single statement for
 * the batch's recipients could not touch twice. */
static void test_recipients_unclean(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "u", 1);
    const spec_t specs[] = {
        {"u", "r\xff", OPEN, H, 1000, NULL, NULL, NULL},
        {"u", "r\xfe", OPEN, H, 2000, NULL, NULL, NULL},
        {"u", "ok", OPEN, H, 3000, NULL, NULL, NULL},
    };
    write_specs(s, specs, 3, NULL);
    sp_campaign_t c = get_campaign(s, "u");
    assert_int_equal(3, c.total_views);
    assert_true(c.unique_views >= 2);
    sp_store_close(s);
}

typedef struct {
    int n;
    char names[8][32];
} got_names_t;

static int on_name(void *ctx, const char *name)
{
    got_names_t *g = ctx;
    if (g->n < 8)
        snprintf(g->names[g->n], sizeof(g->names[0]), "%s", name);
    g->n++;
    return 0;
}

/* The list of the people a campaign was sent to: replaced whole, repeats once, against the
 * counters (counted opens and clicks only), in the report's range, and who has not opened. */
static void test_sent_list(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    int64_t stored = 0;
    create(s, "news", 1);
    create(s, "other", 1);
    const char *first[] = {"zed", "amy", "bob"};
    assert_int_equal(0, s->ops->sent_put(s, "news", first, 3, &stored, err, sizeof(err)));
    assert_int_equal(3, stored);
    const char *list[] = {"amy", "bob", "cat", "dan", "amy", "NULL", "eve"};
    assert_int_equal(0, s->ops->sent_put(s, "news", list, 7, &stored, err, sizeof(err)));
    assert_int_equal(6, stored);
    const spec_t specs[] = {
        {"news", "amy", OPEN, H, REPORT_T0 + 1000, NULL, NULL, NULL},
        {"news", "amy", CLICK, H, REPORT_T0 + 2000, NULL, NULL, NULL},
        {"news", "bob", OPEN, P, REPORT_T0 + 3 * 3600000, NULL, NULL, NULL},
        {"news", "cat", OPEN, M, REPORT_T0 + 4000, NULL, NULL, NULL},  /* not counted */
        {"news", "dan", CLICK, H, REPORT_T0 + 5000, NULL, NULL, NULL}, /* clicked, no open */
        {"news", "zed", OPEN, H, REPORT_T0 + 6000, NULL, NULL, NULL},  /* not on the list */
        {"other", "eve", OPEN, H, REPORT_T0 + 7000, NULL, NULL, NULL}, /* another campaign */
    };
    write_specs(s, specs, sizeof(specs) / sizeof(specs[0]), NULL);
    sp_store_sent_t st;
    assert_int_equal(0, s->ops->sent_stats(s, "news", &st, err, sizeof(err)));
    assert_int_equal(6, st.sent);
    assert_int_equal(2, st.openers);  /* amy, bob */
    assert_int_equal(2, st.clickers); /* amy, dan */
    assert_int_equal(0, s->ops->sent_stats(s, "other", &st, err, sizeof(err)));
    assert_int_equal(0, st.sent);

    got_names_t g = {0};
    assert_int_equal(0, s->ops->not_opened(s, "news", "", -1, on_name, &g, err, sizeof(err)));
    assert_int_equal(4, g.n);
    assert_string_equal("NULL", g.names[0]);
    assert_string_equal("cat", g.names[1]);
    assert_string_equal("dan", g.names[2]);
    assert_string_equal("eve", g.names[3]);
    g = (got_names_t){0};
    assert_int_equal(0, s->ops->not_opened(s, "news", "cat", 1, on_name, &g, err, sizeof(err)));
    assert_int_equal(1, g.n);
    assert_string_equal("dan", g.names[0]);

    /* In the report: over all time as the counters say; over the first hour, bob's open (at
     * three hours) is outside. */
    sp_report_t r = {.to = SP_REPORT_TIME_MAX, .bucket = SP_REPORT_DAY};
    assert_int_equal(0, sp_tz_load(&r.tz, "UTC", err, sizeof(err)));
    assert_int_equal(0, sp_report_run(s, "news", &r, err, sizeof(err)));
    assert_int_equal(6, r.sent);
    assert_int_equal(2, r.sent_openers);
    assert_int_equal(2, r.sent_clickers);
    sp_report_free(&r);
    r = (sp_report_t){.from = REPORT_T0, .to = REPORT_T0 + 3600000, .bucket = SP_REPORT_HOUR};
    assert_int_equal(0, sp_tz_load(&r.tz, "UTC", err, sizeof(err)));
    assert_int_equal(0, sp_report_run(s, "news", &r, err, sizeof(err)));
    assert_int_equal(6, r.sent);
    assert_int_equal(1, r.sent_openers);
    assert_int_equal(2, r.sent_clickers);
    assert_int_equal(2, r.unique_views); /* amy, zed */
    sp_report_free(&r);

    /* An hour between amy's first and last: not exact (sp_rollup_people_exact). bob's first hour
     * is in it, and so is that of a recipient named as a visitor's key (rollup_people's, on
     * SQLite), each on the list; amy is not. */
    const char *more[] = {"amy", "bob", "cat", "dan", "NULL", "eve", "v:listed"};
    assert_int_equal(0, s->ops->sent_put(s, "news", more, 7, &stored, err, sizeof(err)));
    assert_int_equal(7, stored);
    const spec_t later[] = {
        {"news", "amy", OPEN, H, REPORT_T0 + 5 * 3600000, NULL, NULL, NULL},
        {"news", "v:listed", OPEN, H, REPORT_T0 + 3 * 3600000 + 9000, NULL, NULL, NULL},
    };
    write_specs(s, later, sizeof(later) / sizeof(later[0]), NULL);
    r = (sp_report_t){
        .from = REPORT_T0 + 3 * 3600000, .to = REPORT_T0 + 4 * 3600000, .bucket = SP_REPORT_HOUR};
    assert_int_equal(0, sp_tz_load(&r.tz, "UTC", err, sizeof(err)));
    assert_int_equal(0, sp_report_run(s, "news", &r, err, sizeof(err)));
    assert_int_equal(2, r.unique_views); /* bob, v:listed */
    assert_int_equal(2, r.sent_openers);
    assert_int_equal(0, r.sent_clickers);
    sp_report_free(&r);

    /* An empty list is no list; deleting the campaign drops it. */
    int64_t deleted;
    assert_int_equal(0, s->ops->campaign_delete(s, "news", &deleted, err, sizeof(err)));
    create(s, "news", 1);
    assert_int_equal(0, s->ops->sent_stats(s, "news", &st, err, sizeof(err)));
    assert_int_equal(0, st.sent);
    sp_store_close(s);
}

/* Archiving sets a campaign aside and back; an unknown one is absent. */
static void test_campaign_archive(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "old", 1);
    create(s, "new", 2);
    assert_false(get_campaign(s, "old").archived);
    assert_int_equal(0, s->ops->campaign_archive(s, "old", true, err, sizeof(err)));
    assert_true(get_campaign(s, "old").archived);
    assert_false(get_campaign(s, "new").archived);
    got_campaigns_t g = {0};
    assert_int_equal(0, s->ops->campaign_list(s, on_campaign, &g, err, sizeof(err)));
    assert_int_equal(2, g.n);
    assert_string_equal("new", g.c[0].id);
    assert_false(g.c[0].archived);
    assert_true(g.c[1].archived);
    assert_int_equal(0, s->ops->campaign_archive(s, "old", false, err, sizeof(err)));
    assert_false(get_campaign(s, "old").archived);
    assert_int_equal(1, s->ops->campaign_archive(s, "nope", true, err, sizeof(err)));
    sp_store_close(s);
}

typedef struct {
    int n;
    sp_store_link_t l[8];
    char target[8][64];
    int64_t tracker_ids[8];
    char kinds[8][8];
} got_made_t;

static int on_link(void *ctx, const sp_store_link_t *l)
{
    got_made_t *g = ctx;
    if (g->n < 8) {
        g->l[g->n] = *l;
        snprintf(g->target[g->n], sizeof(g->target[0]), "%s", l->target);
    }
    g->n++;
    return 0;
}

static int on_tracker(void *ctx, const sp_store_tracker_t *t)
{
    got_made_t *g = ctx;
    if (g->n < 8) {
        g->tracker_ids[g->n] = t->id;
        snprintf(g->kinds[g->n], sizeof(g->kinds[0]), "%s", t->kind);
    }
    g->n++;
    return 0;
}

/* What was made for a campaign is kept once per URL; links count their counted clicks by
 * destination, also those made before trackers were kept. */
static void test_trackers_links(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "news", 1);
    const sp_store_tracker_t made[] = {
        {0, "news", "amy", "pixel", "", "https://t.example/o/1.gif", 10},
        {0, "news", "amy", "link", "https://example.com/landing", "https://t.example/c/2", 11},
        {0, "news", "bob", "link", "https://example.com/landing", "https://t.example/c/3", 12},
        {0, "news", "", "link", "https://example.com/never", "https://t.example/c/4", 13},
        {0, "news", "amy", "pixel", "", "https://t.example/o/1.gif", 14}, /* again */
        {0, "news", "", "image", "", "https://t.example/i/5.png", 15},
    };
    for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++)
        assert_int_equal(0, s->ops->tracker_put(s, &made[i], err, sizeof(err)));
    got_made_t g = {0};
    assert_int_equal(0, s->ops->trackers(s, "news", 0, 100, on_tracker, &g, err, sizeof(err)));
    assert_int_equal(5, g.n);
    assert_string_equal("image", g.kinds[0]);
    got_made_t page = {0};
    assert_int_equal(
        0, s->ops->trackers(s, "news", g.tracker_ids[1], 2, on_tracker, &page, err, sizeof(err)));
    assert_int_equal(2, page.n);
    assert_int_equal(g.tracker_ids[2], page.tracker_ids[0]);

    /* make_event gives clicks the target https://example.com/landing. */
    const spec_t clicks[] = {
        {"news", "amy", CLICK, H, 5000, NULL, NULL, NULL},
        {"news", "amy", CLICK, P, 7000, NULL, NULL, NULL},
        {"news", "bob", CLICK, H, 6000, NULL, NULL, NULL},
        {"news", "cat", CLICK, M, 1000, NULL, NULL, NULL}, /* a scanner: not counted */
        {"news", "amy", OPEN, H, 9000, NULL, NULL, NULL},
    };
    write_specs(s, clicks, sizeof(clicks) / sizeof(clicks[0]), NULL);
    g = (got_made_t){0};
    assert_int_equal(0, s->ops->links(s, "news", on_link, &g, err, sizeof(err)));
    assert_int_equal(2, g.n);
    assert_string_equal("https://example.com/landing", g.target[0]);
    assert_int_equal(2, g.l[0].made);
    assert_int_equal(3, g.l[0].clicks);
    assert_int_equal(2, g.l[0].clickers);
    assert_int_equal(5000, g.l[0].first_at);
    assert_int_equal(7000, g.l[0].last_at);
    assert_string_equal("https://example.com/never", g.target[1]);
    assert_int_equal(1, g.l[1].made);
    assert_int_equal(0, g.l[1].clicks);
    assert_int_equal(0, g.l[1].first_at);

    int64_t deleted;
    assert_int_equal(0, s->ops->campaign_delete(s, "news", &deleted, err, sizeof(err)));
    g = (got_made_t){0};
    assert_int_equal(0, s->ops->trackers(s, "news", 0, 100, on_tracker, &g, err, sizeof(err)));
    assert_int_equal(0, g.n);
    sp_store_close(s);
}

typedef struct {
    int n;
    int64_t ids[64];
    char who[64][16];
} got_ids_t;

static int on_id(void *ctx, const sp_event_row_t *r)
{
    got_ids_t *g = ctx;
    if (g->n < 64) {
        g->ids[g->n] = r->id;
        snprintf(g->who[g->n], sizeof(g->who[0]), "%s", r->recipient);
    }
    g->n++;
    return 0;
}

static int on_table_row(void *ctx, const sp_recipient_t *r)
{
    got_ids_t *g = ctx;
    if (g->n < 64)
        snprintf(g->who[g->n], sizeof(g->who[0]), "%s", r->recipient);
    g->n++;
    return 0;
}

/* Filters, each alone and together, and keyset pages that add up to the whole; a recipient's
 * events across campaigns; the recipients table sorted by each column, paged by keyset. */
static void test_queries(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "q1", 1);
    create(s, "q2", 1);
    spec_t specs[40];
    for (int i = 0; i < 40; i++) {
        static const char *const who[] = {"amy", "bob", "cat", ""};
        specs[i] = (spec_t){i % 5 ? "q1" : "q2",
                            who[i % 4],
                            i % 3 ? OPEN : CLICK,
                            i % 7 ? H : M,
                            1000 * (i + 1),
                            NULL,
                            NULL,
                            "v"};
    }
    write_specs(s, specs, 40, NULL);
    struct {
        sp_query_events_t q;
        int expect;
    } cases[] = {
        {{.campaign = "q1", .klass = -1, .kind = -1, .to = INT64_MAX, .limit = -1}, 32},
        {{.campaign = "q1",
          .recipient = "amy",
          .klass = -1,
          .kind = -1,
          .to = INT64_MAX,
          .limit = -1},
         8},
        {{.campaign = "q1", .klass = M, .kind = -1, .to = INT64_MAX, .limit = -1}, 5},
        {{.campaign = "q1", .klass = -1, .kind = CLICK, .to = INT64_MAX, .limit = -1}, 11},
        {{.campaign = "q1",
          .klass = -1,
          .kind = -1,
          .client = "Firefox",
          .to = INT64_MAX,
          .limit = -1},
         32},
        {{.campaign = "q1", .klass = -1, .kind = -1, .country = "DE", .to = INT64_MAX, .limit = -1},
         0},
        {{.campaign = "q1", .klass = -1, .kind = -1, .from = 10000, .to = 20000, .limit = -1}, 8},
        {{.recipient = "amy", .klass = -1, .kind = -1, .to = INT64_MAX, .limit = -1}, 10},
        {{.recipient = "amy", .klass = H, .kind = OPEN, .to = INT64_MAX, .limit = -1}, 5},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        /* The count by hand, from the specs. */
        const sp_query_events_t *q = &cases[c].q;
        int expect = 0;
        for (int i = 0; i < 40; i++) {
            const spec_t *sp = &specs[i];
            expect += (!q->campaign || 0 == strcmp(q->campaign, sp->campaign)) &&
                      (!q->recipient || 0 == strcmp(q->recipient, sp->recipient)) &&
                      (q->klass < 0 || q->klass == sp->klass) &&
                      (q->kind < 0 || q->kind == sp->kind) && !q->country && sp->ts >= q->from &&
                      sp->ts < q->to;
        }
        assert_true(expect > 0 || q->country); /* no case passes for nothing */
        got_ids_t all = {0};
        assert_int_equal(0, s->ops->events_query(s, q, on_id, &all, err, sizeof(err)));
        assert_int_equal(expect, all.n);
        for (int i = 1; i < all.n; i++)
            assert_true(all.ids[i] < all.ids[i - 1]);
        /* Pages of 3, by the last ID, give the same. */
        sp_query_events_t paged = *q;
        paged.limit = 3;
        int seen = 0;
        for (;;) {
            got_ids_t page = {0};
            assert_int_equal(0, s->ops->events_query(s, &paged, on_id, &page, err, sizeof(err)));
            for (int i = 0; i < page.n; i++)
                assert_int_equal(all.ids[seen + i], page.ids[i]);
            seen += page.n;
            if (page.n < 3)
                break;
            paged.before = page.ids[page.n - 1];
        }
        assert_int_equal(expect, seen);
    }

    /* amy: 8 events of q1 (opens 5 human... by hand below); sorted by views, descending. */
    static const sp_query_sort_t sorts[] = {SP_SORT_RECIPIENT, SP_SORT_VIEWS, SP_SORT_CLICKS,
                                            SP_SORT_FIRST, SP_SORT_LAST};
    for (size_t k = 0; k < sizeof(sorts) / sizeof(sorts[0]); k++) {
        for (int desc = 0; desc < 2; desc++) {
            sp_query_recipients_t q = {
                .campaign = "q1", .sort = sorts[k], .desc = desc, .limit = 100};
            got_ids_t all = {0};
            int rc = s->ops->recipients_sorted(s, &q, on_table_row, &all, err, sizeof(err));
            if (rc)
                print_error("recipients_sorted: %s\n", err);
            assert_int_equal(0, rc);
            assert_int_equal(3, all.n);
            if (SP_SORT_RECIPIENT == sorts[k])
                assert_string_equal(desc ? "cat" : "amy", all.who[0]);
            /* Pages of one, by the keyset, give the same order. */
            got_recipients_t rows = list_recipients(s, "q1", "", 100);
            q.limit = 1;
            for (int i = 0; i < all.n; i++) {
                got_ids_t page = {0};
                assert_int_equal(
                    0, s->ops->recipients_sorted(s, &q, on_table_row, &page, err, sizeof(err)));
                assert_int_equal(1, page.n);
                assert_string_equal(all.who[i], page.who[0]);
                const sp_recipient_t *r = find_recipient(&rows, page.who[0]);
                static char after[16];
                snprintf(after, sizeof(after), "%s", page.who[0]);
                q.after = after;
                q.after_value = SP_SORT_VIEWS == sorts[k]    ? r->views
                                : SP_SORT_CLICKS == sorts[k] ? r->clicks
                                : SP_SORT_FIRST == sorts[k]  ? r->first_at
                                : SP_SORT_LAST == sorts[k]   ? r->last_at
                                                             : 0;
            }
            got_ids_t end = {0};
            assert_int_equal(
                0, s->ops->recipients_sorted(s, &q, on_table_row, &end, err, sizeof(err)));
            assert_int_equal(0, end.n);
        }
    }
    sp_store_close(s);
}

static void test_campaign_delete(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "", mime[64];
    create(s, "doomed", 1);
    create(s, "kept", 1);
    const spec_t specs[] = {
        {"doomed", "ann@example.com", OPEN, H, 100, NULL, NULL, NULL},
        {"doomed", "ann@example.com", CLICK, H, 101, NULL, NULL, NULL},
        {"doomed", "", OPEN, P, 102, "192.0.2.7", NULL, "visitor-1"},
        {"kept", "ann@example.com", OPEN, H, 103, NULL, NULL, NULL},
    };
    write_specs(s, specs, sizeof(specs) / sizeof(specs[0]), NULL);
    assert_int_equal(0, s->ops->image_put(s, "img-doomed", "doomed", "image/gif", "GIF89a", 6, err,
                                          sizeof(err)));
    int64_t deleted = -1;
    int rc = s->ops->campaign_delete(s, "doomed", &deleted, err, sizeof(err));
    if (rc)
        print_error("campaign_delete: %d %s\n", rc, err);
    assert_int_equal(0, rc);
    assert_int_equal(3, deleted);

    sp_campaign_t c;
    assert_int_equal(1, s->ops->campaign_get(s, "doomed", &c, err, sizeof(err)));
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(
        1, s->ops->image_get(s, "img-doomed", mime, sizeof(mime), &data, &len, err, sizeof(err)));
    assert_int_equal(0, list_recipients(s, "doomed", "", 10).n);
    got_events_t *g = list_events(s, "doomed", 0, 100);
    assert_int_equal(0, g->n);
    got_events_free(g);
    /* The other campaign keeps everything, the same recipient included. */
    assert_int_equal(1, get_campaign(s, "kept").total_views);
    g = list_events(s, "kept", 0, 100);
    assert_int_equal(1, g->n);
    got_events_free(g);

    /* Gone: an open of it is an unknown campaign's, and a second delete finds nothing. */
    const spec_t late[] = {{"doomed", "ann@example.com", OPEN, H, 200, NULL, NULL, NULL}};
    sp_event_t *ev = NULL;
    write_specs(s, late, 1, &ev);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, ev->outcome);
    sp_event_free(ev);
    assert_int_equal(1, s->ops->campaign_delete(s, "doomed", &deleted, err, sizeof(err)));
    assert_int_equal(0, deleted);

    /* Made again, it starts from nothing: the anonymous client counts as new, and so does
     * the recipient this writer stored before (its row is made again, not added to). */
    create(s, "doomed", 300);
    const spec_t again[] = {{"doomed", "", OPEN, P, 301, "192.0.2.7", NULL, "visitor-1"},
                            {"doomed", "ann@example.com", OPEN, H, 302, NULL, NULL, NULL}};
    write_specs(s, again, 2, NULL);
    c = get_campaign(s, "doomed");
    assert_int_equal(2, c.total_views);
    assert_int_equal(2, c.unique_views);
    assert_int_equal(0, c.clicks);
    got_recipients_t r = list_recipients(s, "doomed", "", 10);
    assert_int_equal(1, r.n);
    const sp_recipient_t *ann = find_recipient(&r, "ann@example.com");
    assert_non_null(ann);
    assert_int_equal(1, ann->views);
    assert_int_equal(0, ann->clicks);
    assert_int_equal(302, ann->first_at);
    assert_int_equal(302, ann->last_at);
    sp_store_close(s);
}

/* ---- auth and meta --------------------------------------------------------------------------- */

static void test_auth_and_meta(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "", a[256], b[256];
    const sp_store_ops_t *o = s->ops;

    assert_int_equal(1, o->user_get(s, "admin", a, sizeof(a), err, sizeof(err)));
    assert_int_equal(0, o->user_put(s, "admin", "$argon2id$v=19$first", true, err, sizeof(err)));
    assert_int_equal(0, o->user_get(s, "admin", a, sizeof(a), err, sizeof(err)));
    assert_string_equal("$argon2id$v=19$first", a);
    assert_int_equal(0, o->user_put(s, "admin", "$argon2id$v=19$second", true, err, sizeof(err)));
    assert_int_equal(0, o->user_get(s, "admin", a, sizeof(a), err, sizeof(err)));
    assert_string_equal("$argon2id$v=19$second", a);

    assert_int_equal(1, o->token_get(s, "tokhash", a, sizeof(a), err, sizeof(err)));
    assert_int_equal(0, o->token_put(s, "tokhash", "ci deploys", NULL, err, sizeof(err)));
    assert_int_equal(0, o->token_get(s, "tokhash", a, sizeof(a), err, sizeof(err)));
    assert_string_equal("ci deploys", a);

    int64_t now = sp_now_ms();
    assert_int_equal(0,
                     o->session_put(s, "sess1", "admin", "csrf1", now + 3600000, err, sizeof(err)));
    assert_int_equal(0,
                     o->session_get(s, "sess1", now, a, sizeof(a), b, sizeof(b), err, sizeof(err)));
    assert_string_equal("admin", a);
    assert_string_equal("csrf1", b);
    /* Expiry is the reader's clock against the stored deadline. */
    assert_int_equal(
        1, o->session_get(s, "sess1", now + 3600000, a, sizeof(a), b, sizeof(b), err, sizeof(err)));
    assert_int_equal(0, o->session_delete(s, "sess1", err, sizeof(err)));
    assert_int_equal(1,
                     o->session_get(s, "sess1", now, a, sizeof(a), b, sizeof(b), err, sizeof(err)));
    assert_int_equal(0, o->session_delete(s, "sess1", err, sizeof(err)));

    /* An expired session is gone for good once another session is made. */
    assert_int_equal(0, o->session_put(s, "old", "admin", "c", now - 1000, err, sizeof(err)));
    assert_int_equal(
        0, o->session_get(s, "old", now - 2000, a, sizeof(a), b, sizeof(b), err, sizeof(err)));
    assert_int_equal(1,
                     o->session_get(s, "old", now, a, sizeof(a), b, sizeof(b), err, sizeof(err)));
    assert_int_equal(0, o->session_put(s, "new", "admin", "c2", now + 60000, err, sizeof(err)));
    assert_int_equal(
        1, o->session_get(s, "old", now - 2000, a, sizeof(a), b, sizeof(b), err, sizeof(err)));
    assert_int_equal(0,
                     o->session_get(s, "new", now, a, sizeof(a), b, sizeof(b), err, sizeof(err)));

    assert_int_equal(1, o->meta_get(s, "signing_key", a, sizeof(a), err, sizeof(err)));
    assert_int_equal(0, o->meta_put_new(s, "signing_key", "k1", err, sizeof(err)));
    assert_int_equal(0, o->meta_put_new(s, "signing_key", "k2", err, sizeof(err)));
    assert_int_equal(0, o->meta_get(s, "signing_key", a, sizeof(a), err, sizeof(err)));
    assert_string_equal("k1", a);
    /* A short buffer gets a cut, terminated value. */
    char small[2];
    assert_int_equal(0, o->meta_get(s, "signing_key", small, sizeof(small), err, sizeof(err)));
    assert_string_equal("k", small);
    sp_store_close(s);
}

/* ---- hostile text ---------------------------------------------------------------------------- */

#define FFFD "\xEF\xBF\xBD"

static void test_hostile_strings(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "", a[256];
    const char *camp = "x'); DROP TABLE campaigns; --";
    const char *rcpt = "o'brien\"\\%_*";
    /* Ill-formed UTF-8 of every kind: stray continuation, overlong, surrogate, cut short,
     * beyond U+10FFFF, five-byte, around good characters. */
    const char *bad_ua = "ok \xff\xfe \xc0\xaf \xed\xa0\x80 \xe2\x82x \xf4\x90\x80\x80"
                         " \xf8\x88\x80\x80\x80 \xf0\x9f\x98\x80 caf\xc3\xa9 \xe2\x82";
    const char *clean_ua = "ok " FFFD FFFD " " FFFD FFFD " " FFFD FFFD FFFD " " FFFD
                           "x " FFFD FFFD FFFD FFFD " " FFFD FFFD FFFD FFFD FFFD " \xf0\x9f\x98\x80"
                           " caf\xc3\xa9 " FFFD;
    create(s, camp, 1);
    sp_event_t *ev = make_event(&(spec_t){camp, rcpt, OPEN, H, 42, "2001:db8::1", bad_ua, NULL});
    const char *referer = "https://e.example/?q='; DELETE FROM events; --&x=\"{}\"\\";
    const char *cookie = "sp_v=\"quoted\"; evil='; DROP TABLE users; --";
    const char *odd = "value \xff\xfe with bytes";
    assert_int_equal(0, sp_event_add_header(ev, "Referer", 7, referer, strlen(referer)));
    assert_int_equal(0, sp_event_add_header(ev, "Cookie", 6, cookie, strlen(cookie)));
    assert_int_equal(0, sp_event_add_header(ev, "X-Odd", 5, odd, strlen(odd)));
    snprintf(ev->region, sizeof(ev->region), "\xc3"); /* a field cut inside a character */
    snprintf(ev->city, sizeof(ev->city), "Z\xc3\xbcrich 'n' \"\\\"");
    assert_int_equal(0, sp_event_set_target(ev, "https://t.example/a\tb\nc?x=%00'\xff"));
    ev->latitude = 47.376887;
    ev->longitude = -8.541694;
    ev->has_coords = true;
    assert_int_equal(0, s->ops->write_batch(s, &ev, 1, NULL, err, sizeof(err)));
    assert_int_equal(SP_OUTCOME_STORED, ev->outcome);

    got_events_t *g = list_events(s, camp, 0, 10);
    assert_int_equal(1, g->n);
    got_event_t *e = &g->e[0];
    assert_string_equal(camp, e->campaign);
    assert_string_equal(rcpt, e->recipient);
    assert_string_equal(referer, e->referer);
    assert_string_equal("2001:db8::1", e->ip);
    assert_true(e->has_coords);
    assert_true(47.376887 == e->latitude);
    assert_true(-8.541694 == e->longitude);
    /* Both stores hold the text repaired the one way (sp_event_row): each ill-formed part one
     * U+FFFD, the rest intact. */
    assert_string_equal(clean_ua, e->user_agent);
    assert_string_equal("https://t.example/a\tb\nc?x=%00'" FFFD, e->target);
    /* The event module's JSON is valid whatever the request held, and repaired alike. */
    json_error_t jerr;
    json_t *h = json_loads(e->headers, 0, &jerr);
    assert_non_null(h);
    assert_string_equal(referer, json_string_value(json_object_get(h, "Referer")));
    assert_string_equal("value " FFFD FFFD " with bytes",
                        json_string_value(json_object_get(h, "X-Odd")));
    assert_string_equal(clean_ua, json_string_value(json_object_get(h, "User-Agent")));
    json_decref(h);
    json_t *ck = json_loads(e->cookies, 0, &jerr);
    assert_non_null(ck);
    assert_string_equal("quoted", json_string_value(json_object_get(ck, "sp_v")));
    assert_string_equal("'", json_string_value(json_object_get(ck, "evil")));
    json_decref(ck);
    got_events_free(g);
    sp_event_free(ev);

    /* Everything is still there and counted. */
    sp_campaign_t c = get_campaign(s, camp);
    assert_int_equal(1, c.total_views);
    got_recipients_t r = list_recipients(s, camp, "", 10);
    assert_int_equal(1, r.n);
    assert_string_equal(rcpt, r.name[0]);
    assert_int_equal(
        0, s->ops->user_put(s, "robert'); DROP TABLE users;--", "h'\\", true, err, sizeof(err)));
    assert_int_equal(
        0, s->ops->user_get(s, "robert'); DROP TABLE users;--", a, sizeof(a), err, sizeof(err)));
    assert_string_equal("h'\\", a);
    assert_int_equal(0,
                     s->ops->meta_put_new(s, "k'\"", "caf\xc3\xa9 \xe2\x9c\x93", err, sizeof(err)));
    assert_int_equal(0, s->ops->meta_get(s, "k'\"", a, sizeof(a), err, sizeof(err)));
    assert_string_equal("caf\xc3\xa9 \xe2\x9c\x93", a);
    int64_t deleted;
    assert_int_equal(0, s->ops->forget(s, rcpt, &deleted, err, sizeof(err)));
    assert_int_equal(1, deleted);
    assert_int_equal(0, get_campaign(s, camp).total_views);
    sp_store_close(s);
}

/* The server's shape: the writer's store records batches while a reading thread's store
 * writes too (a campaign created, a session made) between them. */
static void test_writer_and_reader(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *w = open_store(state), *r = NULL;
    char err[512] = "";
    create(w, "first", 1);
    r = try_open(fx, err, sizeof(err));
    assert_non_null(r);
    for (int round = 0; round < 3; round++) {
        char id[24];
        const spec_t specs[] = {{"first", "ann", OPEN, H, 10 + round, NULL, NULL, NULL},
                                {"first", "", OPEN, H, 20 + round, NULL, NULL, "cookie"}};
        write_specs(w, specs, 2, NULL);
        snprintf(id, sizeof(id), "made-%d", round);
        assert_int_equal(0, r->ops->campaign_create(r, id, 100 + round, err, sizeof(err)));
        assert_int_equal(
            0, r->ops->session_put(r, id, "admin", "csrf", sp_now_ms() + 1000, err, sizeof(err)));
    }
    const spec_t last[] = {{"made-2", "bo", OPEN, P, 50, NULL, NULL, NULL}};
    write_specs(w, last, 1, NULL);
    assert_int_equal(6, get_campaign(r, "first").total_views);
    assert_int_equal(2, get_campaign(r, "first").unique_views);
    assert_int_equal(1, get_campaign(r, "made-2").total_views);
    sp_store_close(r);
    sp_store_close(w);
}

/* ---- several writers at once ----------------------------------------------------------------- */

enum { WRITERS = 4, ROUNDS = 12, PER_BATCH = 60, CAMPAIGNS = 3, RECIPIENTS = 8 };

typedef struct writer {
    fixture_t *fx;
    int id;
    int failures;
    char err[512];
} writer_t;

static const char *const camp_ids[CAMPAIGNS] = {"alpha", "beta", "gamma"};
static const char *const rcpt_ids[RECIPIENTS] = {"r0", "r1", "r2", "r3", "r4", "r5", "r6", ""};
static const char *const visitors[3] = {"va", "vb", "vc"};

/* The same pseudo-random events in every run: writer W's event I of round R. */
static spec_t writer_spec(int w, int r, int i)
{
    unsigned x = (unsigned)(w * 7919 + r * 104729 + i * 1299709) * 2654435761u;
    spec_t sp = {camp_ids[(x >> 3) % CAMPAIGNS],
                 rcpt_ids[(x >> 7) % RECIPIENTS],
                 (x >> 11) % 5 ? OPEN : CLICK,
                 (int)((x >> 13) % SP_CLASS_COUNT),
                 1000 + (int64_t)((x >> 17) % 100000),
                 (x >> 23) % 2 ? "203.0.113.1" : "203.0.113.2",
                 NULL,
                 visitors[(x >> 25) % 3]};
    return sp;
}

static void *writer_main(void *arg)
{
    writer_t *w = arg;
    int id = w->id;
    sp_store_t *s = try_open(w->fx, w->err, sizeof(w->err));
    if (!s) {
        w->failures++;
        return NULL;
    }
    for (int r = 0; r < ROUNDS; r++) {
        sp_event_t *evs[PER_BATCH];
        for (int i = 0; i < PER_BATCH; i++) {
            spec_t sp = writer_spec(id, r, i);
            evs[i] = make_event(&sp);
        }
        if (0 != s->ops->write_batch(s, evs, PER_BATCH, NULL, w->err, sizeof(w->err)))
            w->failures++;
        for (int i = 0; i < PER_BATCH; i++)
            sp_event_free(evs[i]);
    }
    sp_store_close(s);
    return NULL;
}

/* Servers writing the same campaigns and recipients at once: no batch fails (no deadlock), and
 * the counters are those of the events, whatever the interleaving. */
static void test_concurrent_writers(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    for (int c = 0; c < CAMPAIGNS; c++)
        create(s, camp_ids[c], 1);

    writer_t w[WRITERS];
    pthread_t t[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (writer_t){.fx = fx, .id = i};
        assert_int_equal(0, pthread_create(&t[i], NULL, writer_main, &w[i]));
    }
    for (int i = 0; i < WRITERS; i++) {
        assert_int_equal(0, pthread_join(t[i], NULL));
        if (w[i].failures)
            print_error("writer %d: %d failures, last: %s\n", i, w[i].failures, w[i].err);
        assert_int_equal(0, w[i].failures);
    }

    /* The expected counts, straight from the definitions. */
    sp_campaign_t want[CAMPAIGNS];
    bool seen_rcpt[CAMPAIGNS][RECIPIENTS] = {{false}};
    char clients[CAMPAIGNS][16][80];
    int n_clients[CAMPAIGNS] = {0};
    memset(want, 0, sizeof(want));
    for (int wi = 0; wi < WRITERS; wi++)
        for (int r = 0; r < ROUNDS; r++)
            for (int i = 0; i < PER_BATCH; i++) {
                spec_t sp = writer_spec(wi, r, i);
                int c = 0, k = 0;
                while (0 != strcmp(camp_ids[c], sp.campaign))
                    c++;
                while (0 != strcmp(rcpt_ids[k], sp.recipient))
                    k++;
                bool open = OPEN == sp.kind, counted = H == sp.klass || P == sp.klass;
                sp_campaign_t *cw = &want[c];
                if (open)
                    cw->by_class[sp.klass]++;
                if (open && counted)
                    cw->total_views++;
                if (!open && counted)
                    cw->clicks++;
                if (counted && sp.ts > cw->last_view_at)
                    cw->last_view_at = sp.ts;
                if (!(open && counted))
                    continue;
                if (sp.recipient[0]) {
                    cw->unique_views += !seen_rcpt[c][k];
                    seen_rcpt[c][k] = true;
                    continue;
                }
                sp_event_t *ev = make_event(&sp);
                char key[80];
                sp_tally_client_key(ev, key, sizeof(key));
                sp_event_free(ev);
                int j = 0;
                while (j < n_clients[c] && 0 != strcmp(clients[c][j], key))
                    j++;
                if (j == n_clients[c]) {
                    snprintf(clients[c][n_clients[c]++], 80, "%s", key);
                    cw->unique_views++;
                }
            }
    for (int c = 0; c < CAMPAIGNS; c++) {
        sp_campaign_t got = get_campaign(s, camp_ids[c]);
        assert_int_equal(want[c].total_views, got.total_views);
        assert_int_equal(want[c].unique_views, got.unique_views);
        assert_int_equal(want[c].clicks, got.clicks);
        assert_int_equal(want[c].last_view_at, got.last_view_at);
        for (int k = 0; k < SP_CLASS_COUNT; k++)
            assert_int_equal(want[c].by_class[k], got.by_class[k]);
        got_events_t *g = list_events(s, camp_ids[c], 0, INT64_MAX);
        int64_t all = 0;
        for (int k = 0; k < SP_CLASS_COUNT; k++)
            all += want[c].by_class[k];
        assert_true(g->n >= (size_t)all);
        got_events_free(g);
    }
    sp_store_close(s);
}

/* ---- the field table and the schema -----------------------------------------------------------
 */

/* Each kind's column type in each store (event_fields.h): a field without its column, of its
 * kind's type, is a migration forgotten. */
static const struct {
    const char *sqlite, *pg;
    bool nullable;
} column_of[] = {
    [SP_FIELD_ID] = {"INTEGER", "bigint", false},
    [SP_FIELD_TIME] = {"INTEGER", "bigint", false},
    [SP_FIELD_KIND] = {"INTEGER", "integer", false},
    [SP_FIELD_CLASS] = {"INTEGER", "integer", false},
    [SP_FIELD_TEXT] = {"TEXT", "text", false},
    [SP_FIELD_TEXT_OR_NULL] = {"TEXT", "text", true},
    [SP_FIELD_OBJECT] = {"TEXT", "text", false},
    [SP_FIELD_COORD] = {"REAL", "double precision", true},
    [SP_FIELD_DURATION] = {"INTEGER", "bigint", true},
};

/* The columns of interned texts (intern.h), which no field has. */
static bool intern_column(const char *name)
{
    return 0 == strcmp(name, "agent") || 0 == strcmp(name, "header_set") ||
           0 == strcmp(name, "header_addrs");
}

static void test_event_columns(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    sp_store_close(s);
    size_t seen = 0;
    if (fx->be->pg) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                 " WHERE table_schema = '%s' AND table_name = 'events'",
                 fx->schema);
        PGresult *res = PQexec(fx->admin, sql);
        assert_int_equal(PGRES_TUPLES_OK, PQresultStatus(res));
        for (int row = 0; row < PQntuples(res); row++, seen++) {
            const char *name = PQgetvalue(res, row, 0);
            size_t i = 0;
            while (i < SP_EVENT_N_FIELDS && 0 != strcmp(name, sp_event_fields[i].name))
                i++;
            if (i == SP_EVENT_N_FIELDS && intern_column(name)) {
                seen--;
                continue;
            }
            if (i == SP_EVENT_N_FIELDS)
                fail_msg("column %s of events is no field of event_fields.h", name);
            sp_field_kind_t k = sp_event_fields[i].kind;
            assert_string_equal(column_of[k].pg, PQgetvalue(res, row, 1));
            assert_string_equal(column_of[k].nullable ? "YES" : "NO", PQgetvalue(res, row, 2));
        }
        PQclear(res);
    } else {
        char path[128];
        sqlite3 *db;
        sqlite3_stmt *st;
        snprintf(path, sizeof(path), "%s/spypixel.db", fx->dir);
        assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
        assert_int_equal(SQLITE_OK,
                         sqlite3_prepare_v2(db, "PRAGMA table_info(events)", -1, &st, NULL));
        for (; SQLITE_ROW == sqlite3_step(st); seen++) {
            const char *name = (const char *)sqlite3_column_text(st, 1);
            size_t i = 0;
            while (i < SP_EVENT_N_FIELDS && 0 != strcmp(name, sp_event_fields[i].name))
                i++;
            if (i == SP_EVENT_N_FIELDS && intern_column(name)) {
                seen--;
                continue;
            }
            if (i == SP_EVENT_N_FIELDS)
                fail_msg("column %s of events is no field of event_fields.h", name);
            sp_field_kind_t k = sp_event_fields[i].kind;
            assert_string_equal(column_of[k].sqlite, (const char *)sqlite3_column_text(st, 2));
            /* The ID, SQLite's rowid, is never NULL though not declared so. */
            if (SP_FIELD_ID != k)
                assert_int_equal(!column_of[k].nullable, sqlite3_column_int(st, 3));
        }
        sqlite3_finalize(st);
        sqlite3_close(db);
    }
    assert_int_equal(SP_EVENT_N_FIELDS, seen);
}

/* One event whose request held ill-formed UTF-8 reads the same from the store (the API's JSON
 * and CSV) as from the event the writer hands to the live streams and webhooks. */
typedef struct {
    char *json, *csv;
} read_back_t;

static int read_back(void *ctx, const sp_event_row_t *row)
{
    read_back_t *rb = ctx;
    size_t len = 0;
    FILE *f = open_memstream(&rb->csv, &len);
    sp_serialize_csv_row(f, row);
    fclose(f);
    json_t *j = sp_serialize_event(row);
    rb->json = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return 0;
}

static void test_one_text(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    const char *ua = "agent \xff\xfe \xe2\x82x";
    const char *referer = "https://e.example/\xc3";
    const char *odd = "\xed\xa0\x80 surrogate";
    create(s, "text", 1);
    sp_event_t *ev = make_event(&(spec_t){"text", "ann", OPEN, H, 42, NULL, ua, NULL});
    assert_int_equal(0, sp_event_add_header(ev, "Referer", 7, referer, strlen(referer)));
    assert_int_equal(0, sp_event_add_header(ev, "X-Odd", 5, odd, strlen(odd)));
    assert_int_equal(0, sp_event_add_header(ev, "Cookie", 6, "k=\xf8", 3));
    snprintf(ev->city, sizeof(ev->city), "Z\xc3\xbcrich \xc3");
    assert_int_equal(0, s->ops->write_batch(s, &ev, 1, NULL, err, sizeof(err)));

    read_back_t stored = {0}, sent = {0};
    assert_int_equal(0, s->ops->events(s, "text", 0, 10, read_back, &stored, err, sizeof(err)));
    assert_non_null(stored.json);
    read_back(&sent, sp_event_row(ev));
    assert_string_equal(sent.json, stored.json);
    assert_string_equal(sent.csv, stored.csv);

    json_t *j = json_loads(stored.json, 0, NULL);
    assert_string_equal("agent " FFFD FFFD " " FFFD "x",
                        json_string_value(json_object_get(j, "user_agent")));
    assert_string_equal("https://e.example/" FFFD,
                        json_string_value(json_object_get(j, "referer")));
    assert_string_equal("Z\xc3\xbcrich " FFFD, json_string_value(json_object_get(j, "city")));
    json_t *h = json_object_get(j, "headers");
    assert_string_equal("agent " FFFD FFFD " " FFFD "x",
                        json_string_value(json_object_get(h, "User-Agent")));
    assert_string_equal(FFFD FFFD FFFD " surrogate",
                        json_string_value(json_object_get(h, "X-Odd")));
    assert_string_equal(FFFD,
                        json_string_value(json_object_get(json_object_get(j, "cookies"), "k")));
    json_decref(j);
    assert_non_null(strstr(stored.csv, "\"agent " FFFD FFFD " " FFFD "x\""));
    free(stored.json);
    free(stored.csv);
    free(sent.json);
    free(sent.csv);
    sp_event_free(ev);
    sp_store_close(s);
}

/* ---- exports: the bytes of the CSV and the JSON ---------------------------------------------- */

/* The CSV line of ROW made here, a character at a time, as RFC 4180 and OWASP's advice on CSV
 * injection say: the reference the export's own writer is compared with. */
static void reference_csv(FILE *f, const sp_event_row_t *row)
{
    int columns = 0;
    for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
        columns += sp_event_fields[i].csv > 0;
    for (int column = 1; column <= columns; column++) {
        const sp_event_field_t *fd = NULL;
        for (size_t i = 0; i < SP_EVENT_N_FIELDS; i++)
            if (sp_event_fields[i].csv == column)
                fd = &sp_event_fields[i];
        assert_non_null(fd);
        char buf[64] = "";
        const char *text = buf;
        bool text_cell = false;
        switch (fd->kind) {
        case SP_FIELD_ID:
            snprintf(buf, sizeof(buf), "%lld", (long long)sp_event_row_int(row, fd));
            break;
        case SP_FIELD_TIME:
            sp_format_ts(sp_event_row_int(row, fd), buf, sizeof(buf));
            break;
        case SP_FIELD_KIND:
            text = sp_event_kind_name(sp_event_row_int(row, fd));
            break;
        case SP_FIELD_CLASS:
            text = sp_class_name((sp_class_t)sp_event_row_int(row, fd));
            break;
        case SP_FIELD_TEXT:
        case SP_FIELD_TEXT_OR_NULL:
        case SP_FIELD_OBJECT:
            text = sp_event_row_text(row, fd) ? sp_event_row_text(row, fd) : "";
            text_cell = true;
            break;
        case SP_FIELD_COORD:
            if (!isnan(sp_event_row_coord(row, fd)))
                snprintf(buf, sizeof(buf), "%.4f", sp_event_row_coord(row, fd));
            break;
        case SP_FIELD_DURATION:
            if (sp_event_row_int(row, fd) >= 0)
                snprintf(buf, sizeof(buf), "%lld", (long long)sp_event_row_int(row, fd));
            break;
        }
        char *clean = sp_utf8_clean(text);
        fputc('"', f);
        if (text_cell && ('=' == text[0] || '+' == text[0] || '-' == text[0] || '@' == text[0] ||
                          '\t' == text[0] || '\r' == text[0]))
            fputc('\'', f);
        for (const char *c = clean ? clean : text; *c; c++) {
            if ('"' == *c)
                fputc('"', f);
            fputc(*c, f);
        }
        fputc('"', f);
        fputc(column == columns ? '\n' : ',', f);
        free(clean);
    }
}

typedef struct {
    int64_t n, last_id;
    sp_outbuf_t csv, json;
} export_check_t;

/* Each row as the export writes it against the references: the CSV above, and jansson's own
 * dump of the event's objects (an element of an indented array, one level in). */
static int export_check(void *ctx, const sp_event_row_t *row)
{
    export_check_t *x = ctx;
    x->csv.len = x->json.len = 0;
    sp_serialize_csv_row_buf(&x->csv, row);
    sp_serialize_event_buf(&x->json, row, 1);

    char *want = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    assert_non_null(f);
    reference_csv(f, row);
    fclose(f);
    if (x->csv.len != len || 0 != memcmp(x->csv.data, want, len))
        fail_msg("event %lld: CSV\n%.*s\nwant\n%s", (long long)row->id, (int)x->csv.len,
                 x->csv.data, want);
    free(want);

    json_t *j = sp_serialize_event(row);
    char *dump = json_dumps(j, JSON_INDENT(1));
    json_decref(j);
    assert_non_null(dump);
    f = open_memstream(&want, &len);
    assert_non_null(f);
    for (const char *c = dump; *c; c++) {
        fputc(*c, f);
        if ('\n' == *c)
            fputc(' ', f);
    }
    fclose(f);
    if (x->json.len != len || 0 != memcmp(x->json.data, want, len))
        fail_msg("event %lld: JSON\n%.*s\nwant\n%s", (long long)row->id, (int)x->json.len,
                 x->json.data, want);
    free(want);
    free(dump);
    x->n++;
    x->last_id = row->id;
    return 0;
}

/* A campaign of hostile events exported a page at a time, as the API does, through each store:
 * quotes, tabs, newlines, control characters, formula-like cells, ill-formed UTF-8 (repaired on
 * the way in, and in SQLite also stored as such by hand, as an older version could have), agents
 * at the header limit, repeated headers (arrays), objects stored escaped otherwise than the
 * writer escapes them or not JSON at all, no coordinates and negative ones, times at the edges.
 * Every CSV line and JSON element is byte for byte its reference. */
static void test_export_bytes(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    char err[512] = "";
    static const char *const agents[] = {
        "Mozilla/5.0 \"quoted\" agent, with a comma",
        "tab\there, newline\nthere\r\nand a CRLF",
        "=HYPERLINK(\"http://evil.example\")",
        "+1+1",
        "-2 minus",
        "@SUM(A1)",
        "\tlead tab",
        "\rlead CR",
        "bad \xff\xfe \xc3 end \xed\xa0\x80",
        "controls \x01\x1f\x7f\x08\x0c back\\slash /slash",
        "Z\xc3\xbcrich \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x98\x80",
        "",
    };
    static char huge[SP_HEADER_MAX + 1];
    for (size_t i = 0; i < SP_HEADER_MAX; i++)
        huge[i] = "ab\"c\\d\xc3\xa9 "[i % 10];
    huge[SP_HEADER_MAX - 1] = 'z'; /* not a cut character */
    create(s, "hostile", 1);
    enum { N = 2345, BATCH = 500 };
    for (int from = 0; from < N; from += BATCH) {
        sp_event_t *evs[BATCH];
        int n = N - from < BATCH ? N - from : BATCH;
        for (int k = 0; k < n; k++) {
            int i = from + k;
            const char *ua = i % 13 == 12 ? huge : agents[i % 12];
            int64_t ts = 0 == i ? 0 : 1 == i ? INT64_C(253402300799999) : 1764000000000 + i * 7919;
            sp_event_t *ev = make_event(
                &(spec_t){"hostile", i % 5 ? "a\"b@example.com" : "=x@example.com",
                          i % 7 ? OPEN : CLICK, (int)(i % SP_CLASS_COUNT), ts, NULL, ua, NULL});
            assert_int_equal(0, sp_event_add_header(ev, "X-Dup", 5, "one", 3));
            if (i % 2)
                assert_int_equal(0, sp_event_add_header(ev, "X-Dup", 5, "two\t\"2\"", 7));
            assert_int_equal(0, sp_event_add_header(ev, "Referer", 7, ua, strlen(ua)));
            assert_int_equal(0, sp_event_add_header(ev, "Cookie", 6, "k=\"v\"; =odd; j=\xc3", 16));
            snprintf(ev->city, sizeof(ev->city), "%s", i % 3 ? "S\xc3\xa3o \"Paulo\"" : "-City");
            ev->has_coords = i % 4 != 0;
            ev->latitude = -23.5505 - i * 1e-3;
            ev->longitude = i % 8 ? -46.6333 : 151.0 + i;
            evs[k] = ev;
        }
        write_events(s, evs, n);
        for (int k = 0; k < n; k++)
            sp_event_free(evs[k]);
    }
    /* Rows as an older version (or a hand) could have left them. */
    static const char *const odd_rows[] = {
        "UPDATE events SET headers = '{\"A\":\"\\u00e9\\/x\\u001f\",\"B\":[\"1\",\"\\u0041\"]}'"
        " WHERE campaign = 'hostile' AND id % 10 = 1",
        "UPDATE events SET cookies = 'not json', headers = '{\"a\":1}'"
        " WHERE campaign = 'hostile' AND id % 10 = 2",
        "UPDATE events SET headers = ' { \"k\" : [ ] , \"l\" : \"v\" } ', cookies = '{}'"
        " WHERE campaign = 'hostile' AND id % 10 = 3",
        "UPDATE events SET headers = '{\"A\":\"a\\/b\"}' WHERE campaign = 'hostile' AND id % 10 = "
        "5",
        "UPDATE events SET headers = '{\"A\":\"\\u001f\"}', cookies = '{\"c\":\"\\u0041\"}'"
        " WHERE campaign = 'hostile' AND id % 10 = 6",
        "UPDATE events SET headers = '{\"A\":\"\\u001F\\t\\\"q\\\"\\\\\",\"B\":[\"x\",\"y\"]}'"
        " WHERE campaign = 'hostile' AND id % 10 = 7",
        "UPDATE events SET headers = '{\"A\":\"1\",\"A\":\"2\"}' WHERE campaign = 'hostile' AND id "
        "% 10 = 8",
    };
    if (fx->be->pg) {
        char sql[512];
        for (size_t i = 0; i < sizeof(odd_rows) / sizeof(odd_rows[0]); i++) {
            snprintf(sql, sizeof(sql), "SET search_path = %s; %s", fx->schema, odd_rows[i]);
            assert_int_equal(0, pg_cmd(fx->admin, sql));
        }
    } else {
        char path[128];
        sqlite3 *db;
        snprintf(path, sizeof(path), "%s/spypixel.db", fx->dir);
        assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
        sqlite3_busy_timeout(db, 10000);
        for (size_t i = 0; i < sizeof(odd_rows) / sizeof(odd_rows[0]); i++)
            assert_int_equal(SQLITE_OK, sqlite3_exec(db, odd_rows[i], NULL, NULL, NULL));
        /* Ill-formed text and an agent far above the header limit, as stored long ago. */
        sqlite3_stmt *st;
        assert_int_equal(SQLITE_OK, sqlite3_prepare_v2(
                                        db,
                                        "UPDATE events SET user_agent = ?1, city = ?2,"
                                        " headers = ?3 WHERE campaign = 'hostile' AND id % 10 = 4",
                                        -1, &st, NULL));
        size_t big = 200000;
        char *agent = malloc(big + 1);
        assert_non_null(agent);
        for (size_t i = 0; i < big; i++)
            agent[i] = "x\xff\"\xc3"[i % 4];
        agent[big] = '\0';
        sqlite3_bind_text(st, 1, agent, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, "\xc3(\xa0\xa1 \xf4\x90\x80\x80", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, "{\"U\":\"\xff\"}", -1, SQLITE_STATIC);
        assert_int_equal(SQLITE_DONE, sqlite3_step(st));
        sqlite3_finalize(st);
        free(agent);
        sqlite3_close(db);
    }

    export_check_t x = {0};
    int64_t before = 0, n0;
    do {
        n0 = x.n;
        assert_int_equal(
            0, s->ops->events(s, "hostile", before, 1000, export_check, &x, err, sizeof(err)));
        before = x.last_id;
    } while (x.n - n0 == 1000);
    assert_int_equal(N, x.n);
    sp_outbuf_free(&x.csv);
    sp_outbuf_free(&x.json);
    sp_store_close(s);
}

/* Each field's value or its absence changes from one event to the next, unaligned with the
 * writer's statements of many rows (SQLite keeps a parameter's value from a statement's last run
 * when it is bound the same constant again: an empty text, "{}", NULL): every event reads back
 * as it was written, its coordinates, referer, cookies, browser and target included. */
static void test_event_fields_vary(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "vary", 1);
    enum { N = 300, BATCH = 75 };
    /* A field's pattern: on for event I when bit B of a scramble of I is set. */
#define VARY_ON(i, b) ((((unsigned)(i)*2654435761u) >> (7 + (b))) & 1u)
    for (int from = 0; from < N; from += BATCH) {
        sp_event_t *evs[BATCH];
        for (int k = 0; k < BATCH; k++) {
            int i = from + k;
            sp_event_t *ev =
                make_event(&(spec_t){"vary", "v@example.com", VARY_ON(i, 0) ? CLICK : OPEN, H,
                                     1764000000000 + i, NULL, NULL, NULL});
            ev->has_coords = VARY_ON(i, 1);
            ev->latitude = 10.0 + i;
            ev->longitude = -20.0 - i;
            char text[32];
            snprintf(text, sizeof(text), "r%d", i);
            if (VARY_ON(i, 2))
                assert_int_equal(0, sp_event_add_header(ev, "Referer", 7, text, strlen(text)));
            if (VARY_ON(i, 3))
                assert_int_equal(0, sp_event_add_header(ev, "Cookie", 6, "k=v", 3));
            snprintf(ev->browser, sizeof(ev->browser), "%s", VARY_ON(i, 4) ? text : "");
            evs[k] = ev;
        }
        write_events(s, evs, BATCH);
        for (int k = 0; k < BATCH; k++)
            sp_event_free(evs[k]);
    }
    got_events_t *g = list_events(s, "vary", 0, N);
    assert_int_equal(N, g->n);
    for (size_t j = 0; j < g->n; j++) {
        const got_event_t *e = &g->e[j];
        int i = (int)(e->ts - 1764000000000);
        char text[32];
        snprintf(text, sizeof(text), "r%d", i);
        assert_int_equal(VARY_ON(i, 0) ? CLICK : OPEN, e->kind);
        assert_string_equal(VARY_ON(i, 0) ? "https://example.com/landing" : "", e->target);
        assert_int_equal(VARY_ON(i, 1), e->has_coords);
        if (e->has_coords) {
            assert_true(10.0 + i == e->latitude);
            assert_true(-20.0 - i == e->longitude);
        }
        if (VARY_ON(i, 2))
            assert_string_equal(text, e->referer);
        else
            assert_null(e->referer);
        assert_string_equal(VARY_ON(i, 3) ? "{\"k\":\"v\"}" : "{}", e->cookies);
        assert_string_equal(VARY_ON(i, 4) ? text : "", e->browser);
    }
#undef VARY_ON
    got_events_free(g);
    sp_store_close(s);
}

/* A recipient forgotten, then another stored: SQLite gives the second the rowid the first had
 * (the largest again), which the writer still remembers for the first. The first's next open
 * makes a row of its own, and the second's row is left as it was. */
static void test_recipient_rowid_again(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *w = open_store(state), *d = open_store(state);
    char err[512] = "";
    create(w, "again", 1);
    write_specs(w, &(spec_t){"again", "first@example.com", OPEN, H, 1000, NULL, NULL, NULL}, 1,
                NULL);
    int64_t first_rowid =
        fx->be->pg
            ? 0
            : raw_int(fx, "SELECT rowid FROM recipients WHERE recipient = 'first@example.com'");
    int64_t deleted = -1;
    assert_int_equal(0, d->ops->forget(d, "first@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(1, deleted);
    write_specs(w, &(spec_t){"again", "second@example.com", OPEN, H, 2000, NULL, NULL, NULL}, 1,
                NULL);
    if (!fx->be->pg)
        assert_int_equal(first_rowid, raw_int(fx, "SELECT rowid FROM recipients"
                                                  " WHERE recipient = 'second@example.com'"));
    write_specs(w, &(spec_t){"again", "first@example.com", OPEN, H, 3000, NULL, NULL, NULL}, 1,
                NULL);
    write_specs(w, &(spec_t){"again", "first@example.com", OPEN, P, 4000, NULL, NULL, NULL}, 1,
                NULL);
    got_recipients_t g = list_recipients(w, "again", "", 10);
    assert_int_equal(2, g.n);
    assert_string_equal("first@example.com", g.name[0]);
    assert_int_equal(2, g.r[0].views);
    assert_int_equal(1, g.r[0].by_class[H]);
    assert_int_equal(1, g.r[0].by_class[P]);
    assert_int_equal(3000, g.r[0].first_at);
    assert_int_equal(4000, g.r[0].last_at);
    assert_string_equal("second@example.com", g.name[1]);
    assert_int_equal(1, g.r[1].views);
    assert_int_equal(2000, g.r[1].first_at);
    assert_int_equal(2000, g.r[1].last_at);
    sp_campaign_t c = get_campaign(w, "again");
    assert_int_equal(2, c.unique_views);
    sp_store_close(d);
    sp_store_close(w);
}

/* ---- PostgreSQL: a lost connection ----------------------------------------------------------- */

static void kill_backends(fixture_t *fx)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
             " WHERE application_name = '%s'",
             fx->schema);
    assert_int_equal(0, pg_cmd(fx->admin, sql));
}

/* The call that finds the connection gone fails; the next one reconnects. */
static void test_reconnect(void **state)
{
    fixture_t *fx = *state;
    if (!fx->be->pg) {
        print_message("[   SKIP   ] reconnecting is the PostgreSQL backend's\n");
        skip();
    }
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "r", 1);

    kill_backends(fx);
    sp_event_t *ev = make_event(&(spec_t){"r", "ann", OPEN, H, 5, NULL, NULL, NULL});
    assert_int_equal(-1, s->ops->write_batch(s, &ev, 1, NULL, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
    assert_int_equal(SP_STORE_FAIL_RETRY, s->ops->failure(s, NULL, 0)); /* a lost connection */
    assert_int_equal(SP_OUTCOME_PENDING, ev->outcome);
    assert_int_equal(0, s->ops->write_batch(s, &ev, 1, NULL, err, sizeof(err)));
    assert_int_equal(SP_OUTCOME_STORED, ev->outcome);
    sp_event_free(ev);

    kill_backends(fx);
    sp_campaign_t c;
    assert_int_equal(-1, s->ops->campaign_get(s, "r", &c, err, sizeof(err)));
    assert_int_equal(0, s->ops->campaign_get(s, "r", &c, err, sizeof(err)));
    assert_int_equal(1, c.total_views);
    assert_int_equal(1, c.unique_views);

    /* The writer's retry without an error buffer works too. */
    kill_backends(fx);
    ev = make_event(&(spec_t){"r", "bo", OPEN, H, 6, NULL, NULL, NULL});
    assert_int_equal(-1, s->ops->write_batch(s, &ev, 1, NULL, NULL, 0));
    assert_int_equal(0, s->ops->write_batch(s, &ev, 1, NULL, NULL, 0));
    sp_event_free(ev);
    assert_int_equal(2, get_campaign(s, "r").total_views);

    /* A statement error inside a batch rolls all of it back and leaves the store usable. */
    char sql[160];
    snprintf(sql, sizeof(sql), "ALTER TABLE %s.events ADD CHECK (ts <> 7)", fx->schema);
    assert_int_equal(0, pg_cmd(fx->admin, sql));
    sp_event_t *two[2] = {make_event(&(spec_t){"r", "cy", OPEN, H, 8, NULL, NULL, NULL}),
                          make_event(&(spec_t){"r", "di", OPEN, H, 7, NULL, NULL, NULL})};
    assert_int_equal(-1, s->ops->write_batch(s, two, 2, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "check"));
    assert_int_equal(SP_STORE_FAIL_DATA, s->ops->failure(s, NULL, 0)); /* about one event */
    assert_int_equal(SP_OUTCOME_PENDING, two[0]->outcome);
    assert_int_equal(2, get_campaign(s, "r").total_views);
    assert_int_equal(0, s->ops->write_batch(s, two, 1, NULL, err, sizeof(err)));
    assert_int_equal(3, get_campaign(s, "r").total_views);
    sp_event_free(two[0]);
    sp_event_free(two[1]);
    sp_store_close(s);
}

/* The journal position rides in the batch's transaction: set with its events (also by an
 * empty batch), overwritten by the next, and not set when the batch fails. */
static void test_journal_mark(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "", value[64];
    const sp_store_ops_t *o = s->ops;
    create(s, "m", 1);
    assert_int_equal(1, o->meta_get(s, "journal:abc", value, sizeof(value), err, sizeof(err)));

    sp_event_t *ev = make_event(&(spec_t){"m", "ann", OPEN, H, 5, NULL, NULL, NULL});
    assert_int_equal(
        0, o->write_batch(s, &ev, 1, &(sp_store_mark_t){"journal:abc", "1200"}, err, sizeof(err)));
    assert_int_equal(SP_OUTCOME_STORED, ev->outcome);
    sp_event_free(ev);
    assert_int_equal(0, o->meta_get(s, "journal:abc", value, sizeof(value), err, sizeof(err)));
    assert_string_equal("1200", value);

    /* Only undecodable records read: no events, the position still moves. */
    assert_int_equal(
        0, o->write_batch(s, NULL, 0, &(sp_store_mark_t){"journal:abc", "1500"}, err, sizeof(err)));
    assert_int_equal(0, o->meta_get(s, "journal:abc", value, sizeof(value), err, sizeof(err)));
    assert_string_equal("1500", value);

    /* Each journal has its own key. */
    assert_int_equal(
        0, o->write_batch(s, NULL, 0, &(sp_store_mark_t){"journal:def", "7"}, err, sizeof(err)));
    assert_int_equal(0, o->meta_get(s, "journal:abc", value, sizeof(value), err, sizeof(err)));
    assert_string_equal("1500", value);

    /* A batch the store refuses leaves both the events and the position as they were. */
    fixture_t *fx = *state;
    if (fx->be->pg) {
        char sql[160];
        snprintf(sql, sizeof(sql), "ALTER TABLE %s.events ADD CHECK (ts <> 9)", fx->schema);
        assert_int_equal(0, pg_cmd(fx->admin, sql));
    } else {
        sqlite3 *db;
        char path[600], *msg = NULL;
        snprintf(path, sizeof(path), "%s/spypixel.db", fx->dir);
        assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
        sqlite3_busy_timeout(db, 5000);
        assert_int_equal(SQLITE_OK,
                         sqlite3_exec(db,
                                      "CREATE TRIGGER no9 BEFORE INSERT ON events WHEN NEW.ts = 9"
                                      " BEGIN SELECT RAISE(ABORT, 'ts 9 refused'); END",
                                      NULL, NULL, &msg));
        sqlite3_close(db);
    }
    ev = make_event(&(spec_t){"m", "bo", OPEN, H, 9, NULL, NULL, NULL});
    assert_int_equal(
        -1, o->write_batch(s, &ev, 1, &(sp_store_mark_t){"journal:abc", "2000"}, err, sizeof(err)));
    sp_event_free(ev);
    assert_int_equal(SP_STORE_FAIL_DATA, o->failure(s, NULL, 0));
    assert_int_equal(0, o->meta_get(s, "journal:abc", value, sizeof(value), err, sizeof(err)));
    assert_string_equal("1500", value);
    assert_int_equal(1, get_campaign(s, "m").total_views);
    sp_store_close(s);
}

/* ---- campaigns that do not exist ------------------------------------------------------------- */

typedef struct got_unknown {
    sp_unknown_campaign_t u[16];
    size_t n;
} got_unknown_t;

static int on_unknown(void *ctx, const sp_unknown_campaign_t *u)
{
    got_unknown_t *g = ctx;
    assert_true(g->n < 16);
    g->u[g->n++] = *u;
    return 0;
}

static got_unknown_t list_unknown(sp_store_t *s)
{
    got_unknown_t g = {.n = 0};
    char err[512] = "";
    int rc = s->ops->unknown_list(s, on_unknown, &g, err, sizeof(err));
    if (rc)
        print_error("unknown_list: %s\n", err);
    assert_int_equal(0, rc);
    return g;
}

static const sp_unknown_campaign_t *find_unknown(const got_unknown_t *g, const char *id)
{
    for (size_t i = 0; i < g->n; i++)
        if (0 == strcmp(g->u[i].id, id))
            return &g->u[i];
    return NULL;
}

/* The kept opens of an unknown campaign, decoded from their journal form, with their rows. */
typedef struct got_kept {
    sp_event_t *ev[64];
    size_t n;
} got_kept_t;

static int on_kept(void *ctx, int64_t row, const void *record, size_t len)
{
    got_kept_t *g = ctx;
    assert_true(g->n < 64);
    sp_event_t *ev = sp_event_decode(record, len);
    assert_non_null(ev);
    assert_true(row > 0);
    ev->adopt_row = row;
    g->ev[g->n++] = ev;
    return 0;
}

static got_kept_t *list_kept(sp_store_t *s, const char *id)
{
    got_kept_t *g = calloc(1, sizeof(*g));
    char err[512] = "";
    assert_non_null(g);
    int rc = s->ops->unknown_opens(s, id, on_kept, g, err, sizeof(err));
    if (rc)
        print_error("unknown_opens: %s\n", err);
    assert_int_equal(0, rc);
    return g;
}

static void got_kept_free(got_kept_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        sp_event_free(g->ev[i]);
    free(g);
}

static void test_unknown_kept(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "known", 1);
    const spec_t specs[] = {
        {"newsleter-11", "ann", OPEN, H, 1000, "198.51.100.7", "Thunderbird/115", NULL},
        {"known", "ann", OPEN, H, 1001, NULL, NULL, NULL},
        {"newsleter-11", "", OPEN, P, 1002, NULL, NULL, "v-1"},
        {"other-typo", "bob", CLICK, H, 900, NULL, NULL, NULL},
    };
    sp_event_t *evs[4];
    write_specs(s, specs, 4, evs);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[0]->outcome);
    assert_int_equal(SP_OUTCOME_STORED, evs[1]->outcome);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[2]->outcome);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[3]->outcome);
    /* The first open of each new unknown ID says so, once. */
    assert_true(evs[0]->campaign_new);
    assert_false(evs[1]->campaign_new);
    assert_false(evs[2]->campaign_new);
    assert_true(evs[3]->campaign_new);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(0, evs[i]->dropped);
        sp_event_free(evs[i]);
    }

    /* Newest last open first; neither became a campaign. */
    got_unknown_t u = list_unknown(s);
    assert_int_equal(2, u.n);
    assert_string_equal("newsleter-11", u.u[0].id);
    assert_int_equal(2, u.u[0].opens);
    assert_int_equal(1000, u.u[0].first_at);
    assert_int_equal(1002, u.u[0].last_at);
    assert_string_equal("other-typo", u.u[1].id);
    assert_int_equal(1, u.u[1].opens);
    sp_campaign_t c;
    assert_int_equal(1, s->ops->campaign_get(s, "newsleter-11", &c, err, sizeof(err)));
    assert_int_equal(1, get_campaign(s, "known").total_views);

    /* Each open is kept whole, as the request thread recorded it, oldest first. */
    got_kept_t *k = list_kept(s, "newsleter-11");
    assert_int_equal(2, k->n);
    assert_true(k->ev[0]->adopt_row < k->ev[1]->adopt_row);
    assert_int_equal(1000, k->ev[0]->ts_ms);
    assert_string_equal("newsleter-11", k->ev[0]->campaign);
    assert_string_equal("ann", k->ev[0]->recipient);
    assert_string_equal("198.51.100.7", k->ev[0]->ip);
    assert_string_equal("Thunderbird/115", k->ev[0]->user_agent);
    assert_string_equal("px.example", sp_event_header(k->ev[0], "Host"));
    assert_string_equal("", k->ev[1]->recipient);
    assert_string_equal("v-1", k->ev[1]->visitor);
    got_kept_free(k);
    k = list_kept(s, "nothing-here");
    assert_int_equal(0, k->n);
    got_kept_free(k);

    /* A later open of a kept ID is no longer new. */
    const spec_t more[] = {{"newsleter-11", "cy", OPEN, H, 1500, NULL, NULL, NULL}};
    write_specs(s, more, 1, evs);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[0]->outcome);
    assert_false(evs[0]->campaign_new);
    sp_event_free(evs[0]);
    u = list_unknown(s);
    assert_int_equal(3, find_unknown(&u, "newsleter-11")->opens);
    assert_int_equal(1500, find_unknown(&u, "newsleter-11")->last_at);

    /* They are still there after a restart. */
    sp_store_close(s);
    s = open_store(state);
    u = list_unknown(s);
    assert_int_equal(2, u.n);
    k = list_kept(s, "newsleter-11");
    assert_int_equal(3, k->n);
    got_kept_free(k);

    /* Discarded: gone, and a second time there is nothing to discard. */
    assert_int_equal(0, s->ops->unknown_delete(s, "other-typo", err, sizeof(err)));
    assert_int_equal(1, s->ops->unknown_delete(s, "other-typo", err, sizeof(err)));
    u = list_unknown(s);
    assert_int_equal(1, u.n);
    assert_null(find_unknown(&u, "other-typo"));
    sp_store_close(s);
}

/* A scanner spraying IDs fills at most max_campaigns IDs, and one ID at most max_opens. */
static void test_unknown_limits(void **state)
{
    sp_store_t *s = open_store(state);
    s->unknown.max_campaigns = 2;
    s->unknown.max_opens = 3;
    const spec_t first[] = {
        {"u1", "a", OPEN, H, 100, NULL, NULL, NULL},
        {"u2", "a", OPEN, H, 101, NULL, NULL, NULL},
    };
    write_specs(s, first, 2, NULL);
    sp_event_t *evs[8];
    const spec_t third[] = {
        {"u3", "a", OPEN, H, 102, NULL, NULL, NULL},
        {"u1", "b", OPEN, H, 103, NULL, NULL, NULL},
        {"u3", "b", OPEN, H, 104, NULL, NULL, NULL},
    };
    write_specs(s, third, 3, evs);
    assert_int_equal(SP_OUTCOME_UNKNOWN_REFUSED, evs[0]->outcome);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[1]->outcome);
    assert_int_equal(SP_OUTCOME_UNKNOWN_REFUSED, evs[2]->outcome);
    assert_false(evs[0]->campaign_new);
    for (int i = 0; i < 3; i++)
        sp_event_free(evs[i]);
    got_unknown_t u = list_unknown(s);
    assert_int_equal(2, u.n);
    assert_null(find_unknown(&u, "u3"));
    assert_int_equal(2, find_unknown(&u, "u1")->opens);

    /* u1 has two kept; five more keep the newest three, and the newest of the batch says how
     * many older ones made way. The count goes on. */
    spec_t burst[5];
    char names[5][16];
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof(names[i]), "r%d", i);
        burst[i] = (spec_t){"u1", names[i], OPEN, H, 200 + i, NULL, NULL, NULL};
    }
    write_specs(s, burst, 5, evs);
    uint32_t dropped = 0;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[i]->outcome);
        dropped += evs[i]->dropped;
    }
    assert_int_equal(4, dropped);
    assert_int_equal(4, evs[4]->dropped);
    for (int i = 0; i < 5; i++)
        sp_event_free(evs[i]);
    got_kept_t *k = list_kept(s, "u1");
    assert_int_equal(3, k->n);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(202 + (int)i, k->ev[i]->ts_ms);
    got_kept_free(k);
    u = list_unknown(s);
    assert_int_equal(7, find_unknown(&u, "u1")->opens);
    assert_int_equal(100, find_unknown(&u, "u1")->first_at);

    /* Room again once one is discarded; max_opens 0 keeps the count only. */
    char err[512] = "";
    assert_int_equal(0, s->ops->unknown_delete(s, "u2", err, sizeof(err)));
    s->unknown.max_opens = 0;
    write_specs(s, third, 1, evs);
    assert_int_equal(SP_OUTCOME_UNKNOWN_CAMPAIGN, evs[0]->outcome);
    assert_true(evs[0]->campaign_new);
    sp_event_free(evs[0]);
    u = list_unknown(s);
    assert_int_equal(1, find_unknown(&u, "u3")->opens);
    k = list_kept(s, "u3");
    assert_int_equal(0, k->n);
    got_kept_free(k);
    sp_store_close(s);
}

/* Adopted opens count as if the campaign had existed, and only once. */
static void test_unknown_adopt(void **state)
{
    sp_store_t *s = open_store(state);
    const spec_t opens[] = {
        {"typo", "ann", OPEN, H, 1000, NULL, NULL, NULL},
        {"typo", "ann", OPEN, P, 1100, NULL, NULL, NULL},
        {"typo", "bob", OPEN, M, 1200, NULL, NULL, NULL},
        {"typo", "", OPEN, H, 1300, "203.0.113.9", "UA", "v-9"},
        {"typo", "cy", OPEN, S, 1400, NULL, NULL, NULL},
    };
    const size_t n = sizeof(opens) / sizeof(opens[0]);
    write_specs(s, opens, n, NULL);
    /* What the same opens make of a campaign that existed. */
    create(s, "control", 1);
    spec_t same[sizeof(opens) / sizeof(opens[0])];
    for (size_t i = 0; i < n; i++) {
        same[i] = opens[i];
        same[i].campaign = "control";
    }
    write_specs(s, same, n, NULL);

    create(s, "typo", 5000);
    got_kept_t *k = list_kept(s, "typo");
    assert_int_equal(n, k->n);
    /* The writer enriches what it reads; here each gets the class it had. */
    for (size_t i = 0; i < n; i++)
        k->ev[i]->klass = opens[i].klass;

    /* Two batches, with a duplicate of the first batch's last open in the second (a record
     * read twice): it is not stored again. */
    write_events(s, k->ev, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(SP_OUTCOME_STORED, k->ev[i]->outcome);
        assert_true(k->ev[i]->id > 0);
    }
    got_unknown_t u = list_unknown(s);
    assert_int_equal(1, u.n); /* two kept opens left to adopt */
    unsigned char *buf = malloc(SP_EVENT_ENCODED_MAX);
    assert_non_null(buf);
    sp_event_t *dup = sp_event_decode(buf, sp_event_encode(k->ev[2], buf));
    free(buf);
    assert_non_null(dup);
    assert_int_equal(k->ev[2]->adopt_row, dup->adopt_row);
    dup->klass = k->ev[2]->klass;
    sp_event_t *second[3] = {k->ev[3], dup, k->ev[4]};
    write_events(s, second, 3);
    assert_int_equal(SP_OUTCOME_STORED, second[0]->outcome);
    assert_int_equal(SP_OUTCOME_ADOPTED_ALREADY, second[1]->outcome);
    assert_int_equal(SP_OUTCOME_STORED, second[2]->outcome);
    sp_event_free(dup);

    /* The unknown campaign is done with, and the adopted one counts as the control does. */
    u = list_unknown(s);
    assert_int_equal(0, u.n);
    sp_campaign_t a = get_campaign(s, "typo"), b = get_campaign(s, "control");
    assert_int_equal(b.total_views, a.total_views);
    assert_int_equal(3, a.total_views);
    assert_int_equal(b.unique_views, a.unique_views);
    assert_int_equal(2, a.unique_views);
    for (int i = 0; i < SP_CLASS_COUNT; i++)
        assert_int_equal(b.by_class[i], a.by_class[i]);
    assert_int_equal(b.last_view_at, a.last_view_at);
    assert_int_equal(5000, a.created_at);
    got_recipients_t ra = list_recipients(s, "typo", "", 10),
                     rb = list_recipients(s, "control", "", 10);
    assert_int_equal(rb.n, ra.n);
    for (size_t i = 0; i < ra.n; i++) {
        assert_string_equal(rb.name[i], ra.name[i]);
        assert_int_equal(rb.r[i].views, ra.r[i].views);
        assert_int_equal(rb.r[i].first_at, ra.r[i].first_at);
        assert_int_equal(rb.r[i].last_at, ra.r[i].last_at);
        for (int c = 0; c < SP_CLASS_COUNT; c++)
            assert_int_equal(rb.r[i].by_class[c], ra.r[i].by_class[c]);
    }
    got_events_t *g = list_events(s, "typo", 0, 100);
    assert_int_equal(n, g->n);
    assert_int_equal(1400, g->e[0].ts);
    assert_int_equal(1000, g->e[n - 1].ts);
    assert_string_equal("v-9", g->e[1].visitor);
    got_events_free(g);

    /* All of it again (an adoption run twice): nothing changes. */
    write_events(s, k->ev, n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(SP_OUTCOME_ADOPTED_ALREADY, k->ev[i]->outcome);
    assert_int_equal(3, get_campaign(s, "typo").total_views);
    g = list_events(s, "typo", 0, 100);
    assert_int_equal(n, g->n);
    got_events_free(g);
    got_kept_free(k);
    sp_store_close(s);
}

/* --auto-create-campaigns: the first open creates its campaign, dated by that open. */
static void test_unknown_auto_create(void **state)
{
    sp_store_t *s = open_store(state);
    s->unknown.auto_create = true;
    const spec_t specs[] = {
        {"fresh", "ann", OPEN, H, 7000, NULL, NULL, NULL},
        {"fresh", "bob", OPEN, P, 7100, NULL, NULL, NULL},
        {"fresh", "ann", OPEN, M, 7200, NULL, NULL, NULL},
    };
    sp_event_t *evs[3];
    write_specs(s, specs, 3, evs);
    for (int i = 0; i < 3; i++)
        assert_int_equal(SP_OUTCOME_STORED, evs[i]->outcome);
    assert_true(evs[0]->campaign_new);
    assert_false(evs[1]->campaign_new);
    assert_false(evs[2]->campaign_new);
    for (int i = 0; i < 3; i++)
        sp_event_free(evs[i]);
    sp_campaign_t c = get_campaign(s, "fresh");
    assert_int_equal(7000, c.created_at);
    assert_int_equal(2, c.total_views);
    assert_int_equal(2, c.unique_views);
    assert_int_equal(1, c.by_class[M]);
    assert_int_equal(0, list_unknown(s).n);
    write_specs(s, specs, 1, evs);
    assert_false(evs[0]->campaign_new);
    sp_event_free(evs[0]);
    assert_int_equal(3, get_campaign(s, "fresh").total_views);
    sp_store_close(s);
}

/* Retention and forget reach the kept opens too. */
static void test_unknown_privacy(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    const spec_t specs[] = {
        {"old-typo", "ann", OPEN, H, 1000, NULL, NULL, NULL},
        {"typo", "gone@example.com", OPEN, H, 1000, NULL, NULL, NULL},
        {"typo", "gone@example.com", OPEN, H, 3000, NULL, NULL, NULL},
        {"typo", "stays", OPEN, H, 3000, NULL, NULL, NULL},
        {"only-gone", "gone@example.com", OPEN, H, 3000, NULL, NULL, NULL},
    };
    write_specs(s, specs, 5, NULL);
    int64_t deleted = -1;
    assert_int_equal(0, s->ops->purge_before(s, 2000, &deleted, err, sizeof(err)));
    assert_int_equal(2, deleted);
    got_unknown_t u = list_unknown(s);
    assert_int_equal(2, u.n);
    assert_null(find_unknown(&u, "old-typo"));            /* its last open was older */
    assert_int_equal(3, find_unknown(&u, "typo")->opens); /* the count stays */
    got_kept_t *k = list_kept(s, "typo");
    assert_int_equal(2, k->n);
    got_kept_free(k);

    assert_int_equal(0, s->ops->forget(s, "gone@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(2, deleted);
    u = list_unknown(s);
    assert_int_equal(1, u.n);
    assert_int_equal(2, find_unknown(&u, "typo")->opens);
    k = list_kept(s, "typo");
    assert_int_equal(1, k->n);
    assert_string_equal("stays", k->ev[0]->recipient);
    got_kept_free(k);
    sp_store_close(s);
}

/* ---- faults ---------------------------------------------------------------------------------- */

/* A sound store passes its check, whole, well within the budget. */
static void test_check_clean(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "ok", 1);
    for (int i = 0; i < 50; i++) {
        sp_event_t *ev = make_event(&(spec_t){"ok", "ann", OPEN, H, 10 + i, NULL, NULL, NULL});
        assert_int_equal(0, s->ops->write_batch(s, &ev, 1, NULL, err, sizeof(err)));
        sp_event_free(ev);
    }
    bool complete = false;
    assert_int_equal(0, s->ops->check(s, 5000, &complete, err, sizeof(err)));
    assert_true(complete);
    sp_store_close(s);
}

static void db_path(fixture_t *fx, const char *suffix, char *buf, size_t len)
{
    snprintf(buf, len, "%s/spypixel.db%s", fx->dir, suffix);
}

/* The bytes of a file, for comparing before and after; the caller frees. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len ? *len : 1);
    assert_non_null(buf);
    assert_int_equal(*len, fread(buf, 1, *len, f));
    fclose(f);
    return buf;
}

/* Garbage on two pages in the middle of the file: the check finds it, the store is faulted,
 * and nothing more is written into the file, by this connection or another. */
static void test_sqlite_damaged(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    char err[512] = "", path[128], why[512] = "";
    create(s, "d", 1);
    for (int b = 0; b < 10; b++) {
        sp_event_t *evs[100];
        for (int i = 0; i < 100; i++)
            evs[i] = make_event(&(spec_t){"d", "ann", OPEN, H, 10 + b * 100 + i, NULL, NULL, NULL});
        assert_int_equal(0, s->ops->write_batch(s, evs, 100, NULL, err, sizeof(err)));
        for (int i = 0; i < 100; i++)
            sp_event_free(evs[i]);
    }
    sp_store_close(s); /* checkpointed: the whole store is in the file */
    db_path(fx, "", path, sizeof(path));
    size_t len;
    free(slurp(path, &len));
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    /* Three places, so that one is a B-tree's page whatever the layout (an overflow page's
     * bytes, a long list of IDs, are not checked). */
    for (int at = 1; at <= 3; at++) {
        fseek(f, (long)(len * (size_t)at / 4 / 4096 * 4096), SEEK_SET);
        for (int i = 0; i < 8192; i++)
            fputc((i * 131 + 17) & 0xff, f);
    }
    fclose(f);

    s = open_store(state);
    sp_store_t *other = open_store(state);
    bool complete = true;
    assert_int_equal(1, s->ops->check(s, 5000, &complete, err, sizeof(err)));
    if (!strstr(err, "damaged"))
        fail_msg("check: '%s'", err);
    assert_int_equal(SP_STORE_FAIL_FAULT, s->ops->failure(s, why, sizeof(why)));
    assert_non_null(strstr(why, "quick_check"));
    /* Every connection of this process to it is faulted, and none writes. */
    assert_int_equal(SP_STORE_FAIL_FAULT, other->ops->failure(other, NULL, 0));
    unsigned char *before = slurp(path, &len);
    size_t len2;
    sp_event_t *ev = make_event(&(spec_t){"d", "bo", OPEN, H, 5000, NULL, NULL, NULL});
    assert_int_equal(-1, s->ops->write_batch(s, &ev, 1, NULL, err, sizeof(err)));
    assert_int_equal(-1, other->ops->write_batch(other, &ev, 1, NULL, err, sizeof(err)));
    assert_int_equal(-1, other->ops->campaign_create(other, "new", 2, err, sizeof(err)));
    sp_event_free(ev);
    sp_store_close(s);
    sp_store_close(other);
    unsigned char *after = slurp(path, &len2);
    assert_int_equal(len, len2);
    assert_memory_equal(before, after, len);
    free(before);
    free(after);
}

/* A new store is made with 16 KiB pages; one made before keeps its 4 KiB pages (only VACUUM
 * could change them) and is written and read as before. */
static void test_sqlite_page_size(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    create(s, "c", 1);
    sp_store_close(s);
    assert_int_equal(16384, raw_int(fx, "PRAGMA page_size"));

    char path[128];
    const char *suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        db_path(fx, suffixes[i], path, sizeof(path));
        unlink(path);
    }
    db_path(fx, "", path, sizeof(path));
    sqlite3 *db = NULL;
    assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
    assert_int_equal(SQLITE_OK, sqlite3_exec(db,
                                             "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;"
                                             " CREATE TABLE made_before(x)",
                                             NULL, NULL, NULL));
    sqlite3_close(db);
    s = open_store(state);
    create(s, "c", 1);
    const spec_t specs[] = {{"c", "ann@example.com", OPEN, H, 100, NULL, NULL, NULL},
                            {"c", "bo@example.com", OPEN, H, 101, NULL, NULL, NULL}};
    write_specs(s, specs, 2, NULL);
    assert_int_equal(2, get_campaign(s, "c").total_views);
    sp_store_close(s);
    assert_int_equal(4096, raw_int(fx, "PRAGMA page_size"));
    assert_int_equal(2, raw_int(fx, "SELECT COUNT(*) FROM events"));
}

/* The WAL is checkpointed by its bytes, not by SQLite's 1,000 pages (16 MiB with 16 KiB pages):
 * live traffic's small commits, each writing the same hot pages again, keep it near 4 MiB, and
 * its file (reused from the start after a checkpoint, never cut) never grows past that and a
 * commit. With the 1,000 pages, 150 commits of one open left a WAL of several times that. */
static void test_sqlite_wal_bound(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    create(s, "w", 1);
    for (int i = 0; i < 150; i++) {
        char who[32];
        snprintf(who, sizeof(who), "r%d@example.com", i);
        const spec_t spec = {"w", who, OPEN, H, 1000 + i, NULL, NULL, NULL};
        write_specs(s, &spec, 1, NULL);
    }
    char path[128];
    struct stat st;
    db_path(fx, "-wal", path, sizeof(path));
    assert_int_equal(0, stat(path, &st));
    assert_true(st.st_size > 1024 * 1024); /* it did grow */
    assert_true(st.st_size < 6 * 1024 * 1024);
    assert_int_equal(150, get_campaign(s, "w").total_views);
    sp_store_close(s);
}

/* A backlog's large commits, each passing the bound by itself: the one after a checkpoint is
 * checkpointed at the next batch's start but one, so the WAL file grows to about two such
 * commits (the pages both rewrote copied back once), and no further however many follow. */
static void test_sqlite_wal_large_commits(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    create(s, "big", 1);
    enum { BATCH = 24000, BATCHES = 4 };
    spec_t *specs = calloc(BATCH, sizeof(*specs));
    char(*who)[32] = calloc(BATCH, sizeof(*who));
    assert_non_null(specs);
    assert_non_null(who);
    char path[128];
    db_path(fx, "-wal", path, sizeof(path));
    off_t size[BATCHES];
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < BATCH; i++) {
            snprintf(who[i], sizeof(who[i]), "r%d@example.com", b * BATCH + i);
            specs[i] = (spec_t){"big", who[i], OPEN, H, 1000 + b * BATCH + i, NULL, NULL, NULL};
        }
        write_specs(s, specs, BATCH, NULL);
        struct stat st;
        assert_int_equal(0, stat(path, &st));
        size[b] = st.st_size;
    }
    off_t one = size[0];
    assert_true(one > 4 * 1024 * 1024); /* each commit passes the bound by itself */
    /* The second commit went on after the first, not over it from the start. */
    assert_true(size[1] > one + one / 2);
    for (int b = 2; b < BATCHES; b++)
        assert_true(size[b] < 3 * one);
    assert_int_equal(BATCH * BATCHES, get_campaign(s, "big").total_views);
    free(specs);
    free(who);
    sp_store_close(s);
}

/* The WAL index cut short under two connections (what made the server die of SIGBUS): the
 * process lives on, the store is faulted for both, reads still answer, and a store opened
 * afresh once every connection is closed writes again. */
static void test_sqlite_shm_fault(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *w = open_store(state), *r = open_store(state);
    char err[512] = "", why[512] = "", path[128];
    create(w, "s", 1);
    sp_event_t *ev = make_event(&(spec_t){"s", "ann", OPEN, H, 5, NULL, NULL, NULL});
    assert_int_equal(0, w->ops->write_batch(w, &ev, 1, NULL, err, sizeof(err)));
    sp_event_free(ev);
    assert_int_equal(1, get_campaign(r, "s").total_views);

    db_path(fx, "-shm", path, sizeof(path));
    assert_int_equal(0, truncate(path, 0));
    ev = make_event(&(spec_t){"s", "bo", OPEN, H, 6, NULL, NULL, NULL});
    w->ops->write_batch(w, &ev, 1, NULL, err, sizeof(err)); /* faults inside; may commit */
    sp_event_free(ev);
    assert_int_equal(SP_STORE_FAIL_FAULT, w->ops->failure(w, why, sizeof(why)));
    assert_non_null(strstr(why, "WAL index"));
    assert_int_equal(SP_STORE_FAIL_FAULT, r->ops->failure(r, NULL, 0));
    sp_campaign_t c;
    assert_int_equal(0, r->ops->campaign_get(r, "s", &c, err, sizeof(err)));
    ev = make_event(&(spec_t){"s", "cy", OPEN, H, 7, NULL, NULL, NULL});
    assert_int_equal(-1, w->ops->write_batch(w, &ev, 1, NULL, err, sizeof(err)));
    sp_store_close(w);
    sp_store_close(r);

    w = open_store(state);
    assert_int_equal(0, w->ops->write_batch(w, &ev, 1, NULL, err, sizeof(err)));
    sp_event_free(ev);
    assert_true(get_campaign(w, "s").total_views >= 2);
    sp_store_close(w);
}

/* ---- main ------------------------------------------------------------------------------------ */

/* Each test runs on both backends, named after the backend. */
#define BOTH(fn)                                                                                   \
    {#fn "/sqlite", fn, setup, teardown, (void *)&sqlite_backend},                                 \
    {                                                                                              \
#fn "/postgres", fn, setup, teardown, (void *)&pg_backend                                  \
    }

/* ---- users and API tokens -------------------------------------------------------------------- */

typedef struct got_users {
    int n;
    char name[8][64];
    int64_t created_at[8], sessions[8], tokens[8];
} got_users_t;

static int collect_user(void *ctx, const sp_user_row_t *u)
{
    got_users_t *g = ctx;
    if (g->n < 8) {
        snprintf(g->name[g->n], sizeof(g->name[0]), "%s", u->name);
        g->created_at[g->n] = u->created_at;
        g->sessions[g->n] = u->sessions;
        g->tokens[g->n] = u->tokens;
    }
    g->n++;
    return 0;
}

static got_users_t list_users(sp_store_t *s)
{
    got_users_t g = {0};
    char err[512] = "";
    assert_int_equal(0, s->ops->user_list(s, collect_user, &g, err, sizeof(err)));
    return g;
}

typedef struct got_tokens {
    int n;
    char id[8][SP_STORE_TOKEN_ID_LEN + 1], name[8][64], owner[8][64];
    int64_t created_at[8];
} got_tokens_t;

static int collect_token(void *ctx, const sp_token_row_t *t)
{
    got_tokens_t *g = ctx;
    if (g->n < 8) {
        snprintf(g->id[g->n], sizeof(g->id[0]), "%s", t->id);
        snprintf(g->name[g->n], sizeof(g->name[0]), "%s", t->name);
        snprintf(g->owner[g->n], sizeof(g->owner[0]), "%s", t->owner ? t->owner : "(none)");
        g->created_at[g->n] = t->created_at;
    }
    g->n++;
    return 0;
}

static got_tokens_t list_tokens(sp_store_t *s)
{
    got_tokens_t g = {0};
    char err[512] = "";
    assert_int_equal(0, s->ops->token_list(s, collect_token, &g, err, sizeof(err)));
    return g;
}

/* 0 when the session HASH still opens the dashboard, 1 when it does not. */
static int session_state(sp_store_t *s, const char *hash)
{
    char err[512] = "", user[64], csrf[64];
    return s->ops->session_get(s, hash, sp_now_ms(), user, sizeof(user), csrf, sizeof(csrf), err,
                               sizeof(err));
}

static int token_state(sp_store_t *s, const char *hash)
{
    char err[512] = "", name[64];
    return s->ops->token_get(s, hash, name, sizeof(name), err, sizeof(err));
}

static void test_users_and_tokens(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "", a[256];
    const sp_store_ops_t *o = s->ops;
    int64_t t0 = sp_now_ms(), far = t0 + 3600000;

    /* A new password for nobody creates nobody. */
    assert_int_equal(1, o->user_put(s, "ann", "$h0", false, err, sizeof(err)));
    assert_int_equal(1, o->user_get(s, "ann", a, sizeof(a), err, sizeof(err)));
    assert_int_equal(0, o->user_put(s, "ann", "$h1", true, err, sizeof(err)));
    assert_int_equal(0, o->user_put(s, "bob", "$b1", true, err, sizeof(err)));
    assert_int_equal(0, list_users(s).n - 2);

    assert_int_equal(0, o->session_put(s, "ann-s1", "ann", "c", far, err, sizeof(err)));
    assert_int_equal(0, o->session_put(s, "ann-s2", "ann", "c", far, err, sizeof(err)));
    assert_int_equal(0, o->session_put(s, "ann-old", "ann", "c", t0 - 1, err, sizeof(err)));
    assert_int_equal(0, o->session_put(s, "bob-s1", "bob", "c", far, err, sizeof(err)));
    assert_int_equal(
        0, o->token_put(s, "aaaa11112222333344445555", "ann-ci", "ann", err, sizeof(err)));
    assert_int_equal(
        0, o->token_put(s, "bbbb11112222333344445555", "bob-ci", "bob", err, sizeof(err)));
    assert_int_equal(0,
                     o->token_put(s, "cccc11112222333344445555", "shared", NULL, err, sizeof(err)));

    got_users_t u = list_users(s);
    assert_int_equal(2, u.n);
    assert_string_equal("ann", u.name[0]);
    assert_string_equal("bob", u.name[1]);
    assert_int_equal(2, u.sessions[0]); /* the expired one is not counted */
    assert_int_equal(1, u.tokens[0]);
    assert_int_equal(1, u.sessions[1]);
    assert_true(u.created_at[0] >= t0 - 1000 && u.created_at[0] <= sp_now_ms() + 1000);

    got_tokens_t t = list_tokens(s);
    assert_int_equal(3, t.n);
    assert_string_equal("aaaa11112222", t.id[0]); /* the hash's first digits, never all */
    assert_string_equal("ann-ci", t.name[0]);
    assert_string_equal("ann", t.owner[0]);
    assert_string_equal("(none)", t.owner[2]);

    /* A new password ends the user's sessions and tokens, no one else's. */
    assert_int_equal(0, o->user_put(s, "ann", "$h2", false, err, sizeof(err)));
    assert_int_equal(0, o->user_get(s, "ann", a, sizeof(a), err, sizeof(err)));
    assert_string_equal("$h2", a);
    assert_int_equal(1, session_state(s, "ann-s1"));
    assert_int_equal(1, session_state(s, "ann-s2"));
    assert_int_equal(1, token_state(s, "aaaa11112222333344445555"));
    assert_int_equal(0, session_state(s, "bob-s1"));
    assert_int_equal(0, token_state(s, "bbbb11112222333344445555"));
    assert_int_equal(0, token_state(s, "cccc11112222333344445555"));
    /* So does user add over an existing user (the upsert). */
    assert_int_equal(0, o->session_put(s, "ann-s3", "ann", "c", far, err, sizeof(err)));
    assert_int_equal(0, o->user_put(s, "ann", "$h3", true, err, sizeof(err)));
    assert_int_equal(1, session_state(s, "ann-s3"));

    /* Deleting a user ends its sessions and tokens with it. */
    assert_int_equal(1, o->user_delete(s, "nobody", err, sizeof(err)));
    assert_int_equal(0, o->user_delete(s, "bob", err, sizeof(err)));
    assert_int_equal(1, o->user_delete(s, "bob", err, sizeof(err)));
    assert_int_equal(1, o->user_get(s, "bob", a, sizeof(a), err, sizeof(err)));
    assert_int_equal(1, session_state(s, "bob-s1"));
    assert_int_equal(1, token_state(s, "bbbb11112222333344445555"));
    assert_int_equal(0, token_state(s, "cccc11112222333344445555"));
    u = list_users(s);
    assert_int_equal(1, u.n);
    assert_int_equal(0, u.sessions[0]);

    /* Revoking: by ID, or every token of a name; nothing matched is 0, not an error. */
    int64_t revoked = -1;
    assert_int_equal(0,
                     o->token_put(s, "dddd11112222333344445555", "shared", NULL, err, sizeof(err)));
    assert_int_equal(0,
                     o->token_put(s, "eeee11112222333344445555", "other", NULL, err, sizeof(err)));
    assert_int_equal(0, o->token_revoke(s, "eeee11112222", &revoked, err, sizeof(err)));
    assert_int_equal(1, revoked);
    assert_int_equal(1, token_state(s, "eeee11112222333344445555"));
    assert_int_equal(0, o->token_revoke(s, "eeee1111", &revoked, err, sizeof(err)));
    assert_int_equal(0, revoked); /* a shorter prefix names nothing */
    assert_int_equal(0, o->token_revoke(s, "shared", &revoked, err, sizeof(err)));
    assert_int_equal(2, revoked);
    assert_int_equal(0, list_tokens(s).n);
    assert_int_equal(0, o->token_revoke(s, "x' OR '1'='1", &revoked, err, sizeof(err)));
    assert_int_equal(0, revoked);
    sp_store_close(s);
}

/* ---- interned user agents and header sets (intern.h) ------------------------------------------
 */

/* One integer that SQL (SQLite's or PostgreSQL's) answers about the fixture's store. */
static int64_t raw_int(fixture_t *fx, const char *sql)
{
    int64_t v = -1;
    if (fx->be->pg) {
        char q[1024];
        snprintf(q, sizeof(q), "SET search_path = %s", fx->schema);
        assert_int_equal(0, pg_cmd(fx->admin, q));
        PGresult *res = PQexec(fx->admin, sql);
        assert_int_equal(PGRES_TUPLES_OK, PQresultStatus(res));
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        assert_int_equal(0, pg_cmd(fx->admin, "SET search_path = public"));
        return v;
    }
    char path[128];
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    snprintf(path, sizeof(path), "%s/spypixel.db", fx->dir);
    assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
    assert_int_equal(SQLITE_OK, sqlite3_prepare_v2(db, sql, -1, &st, NULL));
    assert_int_equal(SQLITE_ROW, sqlite3_step(st));
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* A recipient's page, in a campaign and everywhere, is read by the IDs its rows list (schema 24;
 * everywhere: the campaigns they are in by the recipients' key), each event by its ID, as SQLite
 * plans the statement with its parameters unbound (reading the campaign by time instead took
 * seconds for a campaign of a million events). */
/* SQLite's plan of SQL on the store at PATH into PLAN, a line per step. */
static void query_plan(const char *path, const char *sql, char *plan, size_t len)
{
    char explain[4200];
    snprintf(explain, sizeof(explain), "EXPLAIN QUERY PLAN %s", sql);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
    assert_int_equal(SQLITE_OK, sqlite3_prepare_v2(db, explain, -1, &st, NULL));
    size_t at = 0;
    plan[0] = '\0';
    while (SQLITE_ROW == sqlite3_step(st) && at < len - 256)
        at +=
            (size_t)snprintf(plan + at, len - at, "%s\n", (const char *)sqlite3_column_text(st, 3));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_recipient_page_plan(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    char path[128], cols[1024], sql[4096], plan[8192];
    sp_query_param_t params[SP_QUERY_PARAMS];
    int n;
    sp_intern_select_sql(cols, sizeof(cols));
    snprintf(path, sizeof(path), "%s/spypixel.db", fx->dir);
    for (int everywhere = 0; everywhere < 2; everywhere++) {
        sp_query_events_t q = {.campaign = everywhere ? NULL : "c",
                               .recipient = "ann@example.com",
                               .klass = -1,
                               .kind = -1,
                               .to = INT64_MAX,
                               .limit = 100};
        sp_query_events_sql(&q, cols, '?', sql, sizeof(sql), params, &n);
        query_plan(path, sql, plan, sizeof(plan));
        if (!strstr(plan, "SEARCH events USING INTEGER PRIMARY KEY (rowid=?)") ||
            strstr(plan, "SCAN events") || strstr(plan, "TEMP B-TREE"))
            fail_msg("a recipient's page (%s) is not read by the IDs its row lists:\n%s",
                     everywhere ? "everywhere" : "in a campaign", plan);
        /* Their rows and their lists moved out (everywhere: of each of their campaigns): a
         * seek of the key, never a scan of every recipient. */
        if (!strstr(plan, "SEARCH x USING PRIMARY KEY (campaign=? AND recipient=?)") ||
            (!everywhere &&
             !strstr(plan, "SEARCH recipients USING INDEX sqlite_autoindex_recipients_1"
                           " (campaign=? AND recipient=?)")) ||
            strstr(plan, "SCAN x") || strstr(plan, "SCAN recipients"))
            fail_msg("a recipient's rows are not sought by their key:\n%s", plan);
    }
    /* A campaign's page of a time range: its IDs of those quarter hours (no index by time). */
    sp_query_events_t q = {
        .campaign = "c", .klass = -1, .kind = -1, .from = 5000, .to = 90000000, .limit = 100};
    sp_query_events_sql(&q, cols, '?', sql, sizeof(sql), params, &n);
    query_plan(path, sql, plan, sizeof(plan));
    if (!strstr(plan, "SEARCH events USING INDEX events_campaign (campaign=? AND id>? AND id<?)") ||
        !strstr(plan, "SEARCH events_quarters USING PRIMARY KEY (campaign=? AND quarter>? AND"
                      " quarter<?)"))
        fail_msg("a time range's page is not read by its IDs:\n%s", plan);
    sp_store_close(s);
}

#define INTERN_AGENTS 4
#define INTERN_EVENTS 48

/* Event I of a batch: one of four agents (none for a fifth of them), each agent's client
 * headers, and headers of the request's own that differ every time, hostile text among them. */
static sp_event_t *intern_event(int batch, int i)
{
    static const char *const agents[INTERN_AGENTS] = {
        "Mozilla/5.0", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0",
        "Mozilla/5.0 (via ggpht.com GoogleImageProxy)", "Outlook \"quoted\" \\ @ {} ,:"};
    sp_event_t *ev = sp_event_new(16384);
    char ip[64], cookie[64];
    ev->ts_ms = 1000 + batch * 1000 + i;
    ev->kind = SP_EVENT_OPEN;
    ev->klass = SP_CLASS_HUMAN;
    snprintf(ev->campaign, sizeof(ev->campaign), "in");
    snprintf(ev->recipient, sizeof(ev->recipient), "r%d", i % 7);
    snprintf(ip, sizeof(ip), "198.51.100.%d, 10.0.%d.1", i, batch);
    snprintf(ev->ip, sizeof(ev->ip), "198.51.100.%d", i);
    snprintf(cookie, sizeof(cookie), "theme=\"d@rk\"; v=%d-%d", batch, i);
    const char *ua = i % 5 ? agents[i % INTERN_AGENTS] : NULL;
    int ok = 0 == sp_event_add_header(ev, "Host", 4, "px.example", 10);
    if (ua)
        ok = ok && 0 == sp_event_add_header(ev, "User-Agent", 10, ua, strlen(ua));
    ok = ok && 0 == sp_event_add_header(ev, "X-Forwarded-For", 15, ip, strlen(ip));
    ok = ok && 0 == sp_event_add_header(ev, "Accept", 6, "image/*", 7);
    if (i % 3)
        ok = ok && 0 == sp_event_add_header(ev, "Cookie", 6, cookie, strlen(cookie));
    if (0 == i % 4) /* a repeated header, joined into one value */
        ok = ok && 0 == sp_event_add_header(ev, "x-forwarded-for", 15, "@", 1);
    if (0 == i % 6)
        ok = ok && 0 == sp_event_add_header(ev, "Forwarded", 9, "for=\"[2001:db8::1]\"", 19);
    assert_true(ok);
    snprintf(ev->rule, sizeof(ev->rule), "test");
    return ev;
}

typedef struct {
    sp_event_t **evs;
    size_t n, matched;
} intern_read_t;

static int check_interned(void *ctx, const sp_event_row_t *r)
{
    intern_read_t *g = ctx;
    for (size_t i = 0; i < g->n; i++) {
        const sp_event_row_t *want = sp_event_row(g->evs[i]);
        if (want->id != r->id)
            continue;
        if (want->user_agent)
            assert_string_equal(want->user_agent, r->user_agent);
        else
            assert_null(r->user_agent);
        assert_string_equal(want->headers_json, r->headers_json);
        assert_string_equal(want->cookies_json, r->cookies_json);
        g->matched++;
    }
    return 0;
}

/* Reads every event of "in" back through both reads and checks them against EVS. */
static void read_interned(sp_store_t *s, sp_event_t **evs, size_t n)
{
    char err[512] = "";
    intern_read_t g = {.evs = evs, .n = n};
    assert_int_equal(0, s->ops->events(s, "in", 0, -1, check_interned, &g, err, sizeof(err)));
    assert_int_equal(n, g.matched);
    /* A page (an export's): PostgreSQL reads it as one result, each row's own columns. */
    g.matched = 0;
    assert_int_equal(0,
                     s->ops->events(s, "in", 0, (int64_t)n, check_interned, &g, err, sizeof(err)));
    assert_int_equal(n, g.matched);
    g.matched = 0;
    sp_query_events_t q = {.campaign = "in", .klass = -1, .kind = -1, .to = INT64_MAX, .limit = -1};
    assert_int_equal(0, s->ops->events_query(s, &q, check_interned, &g, err, sizeof(err)));
    assert_int_equal(n, g.matched);
}

/* ---- a store written before events were scrubbed ----------------------------------------------
 */

/* The schema version just before the step that scrubs stored credentials. */
#define VERSION_BEFORE_SCRUB 4
#define OLD_EVENTS           1234 /* more than one scrub batch */

/* Runs SQL on the fixture's store from outside spypixel, as an older version would have. */
static void raw_sql(fixture_t *fx, const char *sqlite_sql, const char *pg_sql)
{
    if (fx->be->pg) {
        char sql[32768];
        snprintf(sql, sizeof(sql), "SET search_path = %s; %s", fx->schema, pg_sql);
        assert_int_equal(0, pg_cmd(fx->admin, sql));
        return;
    }
    char path[128], *msg = NULL;
    sqlite3 *db = NULL;
    snprintf(path, sizeof(path), "%s/spypixel.db", fx->dir);
    assert_int_equal(SQLITE_OK, sqlite3_open(path, &db));
    sqlite3_busy_timeout(db, 10000);
    int rc = sqlite3_exec(db, sqlite_sql, NULL, NULL, &msg);
    if (SQLITE_OK != rc)
        print_error("%s (in: %.120s)\n", msg ? msg : "?", sqlite_sql);
    sqlite3_free(msg);
    sqlite3_close(db);
    assert_int_equal(SQLITE_OK, rc);
}

typedef struct old_events {
    int n, with_secret, with_removed, other_kept;
} old_events_t;

static int check_old_event(void *ctx, const sp_event_row_t *r)
{
    old_events_t *g = ctx;
    g->n++;
    if (strstr(r->cookies_json, "SECRET") || strstr(r->headers_json, "SECRET"))
        g->with_secret++;
    if (strstr(r->cookies_json, "\"sp_session\":\"" SP_EVENT_REMOVED "\"") &&
        strstr(r->headers_json, "\"Authorization\":\"" SP_EVENT_REMOVED "\""))
        g->with_removed++;
    if (strstr(r->cookies_json, "\"theme\":\"dark\"") && strstr(r->headers_json, "theme=dark"))
        g->other_kept++;
    return 0;
}

typedef struct kept {
    int n, with_secret;
} kept_t;

/* The kept record's own bytes: decoding would scrub them whatever was stored. */
static int check_kept(void *ctx, int64_t row, const void *record, size_t len)
{
    kept_t *k = ctx;
    (void)row;
    k->n++;
    if (memmem(record, len, "SECRET", 6))
        k->with_secret++;
    return 0;
}

/* ---- the tracking block: reads folded into their opens, prints and forwards ---------- */

static sp_event_t *block_open(const char *visitor, int klass, int64_t ts)
{
    const spec_t sp = {"blk", "ann", OPEN, klass, ts, NULL, NULL, visitor};
    sp_event_t *ev = make_event(&sp);
    ev->engage = SP_ENGAGE_PENDING;
    const char *e = sp_tally_engagement(klass, ev->engage, -1);
    snprintf(ev->engagement, sizeof(ev->engagement), "%s", e ? e : "");
    return ev;
}

static sp_event_t *block_read(const char *visitor, int64_t ts, int64_t ms)
{
    sp_event_t *ev = sp_event_new(0);
    ev->kind = SP_EVENT_READ;
    ev->ts_ms = ts;
    snprintf(ev->campaign, sizeof(ev->campaign), "blk");
    snprintf(ev->recipient, sizeof(ev->recipient), "ann");
    snprintf(ev->visitor, sizeof(ev->visitor), "%s", visitor);
    ev->engage = SP_ENGAGE_MEASURED;
    ev->read_ms = ms;
    return ev;
}

typedef struct {
    int n;
    int64_t id[8], read_ms[8], kind[8];
    char engagement[8][16];
} block_rows_t;

static int block_row(void *ctx, const sp_event_row_t *row)
{
    block_rows_t *b = ctx;
    if (b->n < 8) {
        b->id[b->n] = row->id;
        b->read_ms[b->n] = row->read_ms;
        b->kind[b->n] = row->kind;
        snprintf(b->engagement[b->n], 16, "%s", row->engagement ? row->engagement : "(null)");
        b->n++;
    }
    return 0;
}

/* Rows of pages read one after the other: how many, the last ID, whether IDs only fell. */
typedef struct {
    int64_t n, last;
    bool ordered;
} paged_t;

static int on_paged(void *ctx, const sp_event_row_t *r)
{
    paged_t *p = ctx;
    p->ordered = p->ordered && r->id < p->last;
    p->last = r->id;
    p->n++;
    return 0;
}

/* A recipient opened again and again: SQLite moves its row's list of events out once it is
 * long, so that the row each batch rewrites stays short; its page, a read of an early open and
 * forget still find every one of its events. */
static void test_recipient_many_events(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "blk", 1);
    enum { BATCHES = 24, PER = 100 };
    for (int b = 0; b < BATCHES; b++) {
        sp_event_t *evs[PER + 1];
        for (int i = 0; i < PER; i++)
            evs[i] = block_open("v1", (b < 2 || b == BATCHES - 1) && i % 40 == 0 ? P : H,
                                1000 + (b * PER + i) * 1000);
        evs[PER] = make_event(&(spec_t){"blk", "bob", OPEN, H, 999, NULL, NULL, NULL});
        write_events(s, evs, PER + 1);
        for (int i = 0; i <= PER; i++)
            sp_event_free(evs[i]);
    }
    if (!fx->be->pg) {
        /* 300-500 bytes of IDs a batch: out every other batch, more lists than a page's
         * window reads at a time (WINDOW_LISTS). */
        assert_true(raw_int(fx, "SELECT count(*) FROM recipient_events WHERE recipient = 'ann'") >=
                    10);
        assert_true(raw_int(fx, "SELECT length(event_ids) FROM recipients"
                                " WHERE recipient = 'ann'") < 2048);
    }
    check_recipient_events(state);
    sp_query_events_t q = {.campaign = "blk",
                           .recipient = "ann",
                           .klass = -1,
                           .kind = -1,
                           .to = INT64_MAX,
                           .limit = -1};
    got_ids_t all = {0};
    assert_int_equal(0, s->ops->events_query(s, &q, on_id, &all, err, sizeof(err)));
    assert_int_equal(BATCHES * PER, all.n);
    q.campaign = NULL; /* everywhere */
    all = (got_ids_t){0};
    assert_int_equal(0, s->ops->events_query(s, &q, on_id, &all, err, sizeof(err)));
    assert_int_equal(BATCHES * PER, all.n);
    /* Pages of 7 and of 250 (more than a window of lists holds), and of 4 of the proxy's opens
     * (nine: three in the row's list, six in the oldest lists, so that a page takes several
     * windows), in a campaign and everywhere, by the last ID: every event once, newest first. */
    for (int k = 0; k < 6; k++) {
        static const int64_t limits[] = {7, 250, 4};
        sp_query_events_t p = {.campaign = k & 1 ? NULL : "blk",
                               .recipient = "ann",
                               .klass = k >= 4 ? P : -1,
                               .kind = -1,
                               .to = INT64_MAX,
                               .limit = limits[k / 2]};
        paged_t pages = {.last = INT64_MAX, .ordered = true};
        for (int page = 0; page < BATCHES * PER; page++) {
            int64_t before = pages.n;
            assert_int_equal(0, s->ops->events_query(s, &p, on_paged, &pages, err, sizeof(err)));
            assert_true(pages.n - before <= p.limit);
            if (pages.n - before < p.limit)
                break;
            p.before = pages.last;
        }
        assert_true(pages.ordered);
        assert_int_equal(k >= 4 ? 9 : BATCHES * PER, pages.n);
    }
    /* The read of the first open, whose ID left the row's list long ago. */
    sp_event_t *rd[1] = {block_read("v1", 1000, 7000)};
    write_events(s, rd, 1);
    assert_int_equal(SP_OUTCOME_STORED, rd[0]->outcome);
    assert_int_equal(1, raw_int(fx, "SELECT count(*) FROM events WHERE read_ms = 7000"));
    sp_event_free(rd[0]);
    int64_t deleted = 0;
    assert_int_equal(0, s->ops->forget(s, "ann", &deleted, err, sizeof(err)));
    assert_int_equal(BATCHES * PER, deleted);
    assert_int_equal(BATCHES, raw_int(fx, "SELECT count(*) FROM events"));
    if (!fx->be->pg)
        assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM recipient_events"));
    check_recipient_events(state);
    sp_store_close(s);
}

static void test_read_fold(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "blk", 1);
    /* An open and its read in one batch (a restart reads both at once). */
    sp_event_t *b1[2] = {block_open("v1", H, 1000), block_read("v1", 1000, 9000)};
    write_events(s, b1, 2);
    assert_int_equal(SP_OUTCOME_STORED, b1[1]->outcome);
    assert_int_equal(b1[0]->id, b1[1]->id);
    assert_string_equal("read", b1[1]->engagement);
    /* A proxy's open and its read in later batches: never a read. */
    sp_event_t *b2[1] = {block_open("v2", P, 2000)};
    write_events(s, b2, 1);
    sp_event_t *b3[1] = {block_read("v2", 2000, 15000)};
    sp_event_row(b3[0]); /* made before the batch, as the ingest's reader makes it */
    write_events(s, b3, 1);
    assert_int_equal(SP_OUTCOME_STORED, b3[0]->outcome);
    assert_string_equal("unmeasured", b3[0]->engagement);
    /* The row (what the webhook and the live view send) is the folded read's, its open's. */
    assert_string_equal("unmeasured", sp_event_row(b3[0])->engagement);
    assert_int_equal(P, sp_event_row(b3[0])->klass);
    assert_int_equal(b2[0]->id, sp_event_row(b3[0])->id);
    /* A glance; a read of no stored open and a second read of the first: nothing to fold. A
     * print and a forward count as neither views nor clicks. */
    const spec_t pf[] = {{"blk", "ann", SP_EVENT_PRINT, H, 3001, NULL, NULL, "v3"},
                         {"blk", "ann", SP_EVENT_FORWARD, H, 3002, NULL, NULL, "v9"}};
    sp_event_t *b4[6] = {block_open("v3", H, 3000),    block_read("v3", 3000, 1500),
                         block_read("v8", 3000, 4000), block_read("v1", 1000, 3000),
                         make_event(&pf[0]),           make_event(&pf[1])};
    write_events(s, b4, 6);
    assert_string_equal("glanced", b4[1]->engagement);
    assert_int_equal(SP_OUTCOME_UNMATCHED, b4[2]->outcome);
    assert_int_equal(SP_OUTCOME_UNMATCHED, b4[3]->outcome);
    assert_int_equal(SP_OUTCOME_STORED, b4[4]->outcome);

    block_rows_t rows = {0};
    assert_int_equal(0, s->ops->events(s, "blk", 0, -1, block_row, &rows, err, sizeof(err)));
    assert_int_equal(5, rows.n); /* newest first: forward, print, v3, v2, v1 */
    assert_int_equal(SP_EVENT_FORWARD, rows.kind[0]);
    assert_int_equal(SP_EVENT_PRINT, rows.kind[1]);
    assert_string_equal("(null)", rows.engagement[0]);
    assert_int_equal(-1, rows.read_ms[0]);
    assert_string_equal("glanced", rows.engagement[2]);
    assert_int_equal(1500, rows.read_ms[2]);
    assert_string_equal("unmeasured", rows.engagement[3]);
    assert_int_equal(15000, rows.read_ms[3]);
    assert_string_equal("read", rows.engagement[4]);
    assert_int_equal(9000, rows.read_ms[4]);

    sp_campaign_t c;
    assert_int_equal(0, s->ops->campaign_get(s, "blk", &c, err, sizeof(err)));
    assert_int_equal(3, c.total_views);
    assert_int_equal(0, c.clicks);
    sp_engagement_t e;
    assert_int_equal(0, s->ops->engagement(s, "blk", &e, err, sizeof(err)));
    assert_int_equal(1, e.read);
    assert_int_equal(0, e.skimmed);
    assert_int_equal(1, e.glanced);
    assert_int_equal(1, e.unmeasured);
    assert_int_equal(1, e.prints);
    assert_int_equal(1, e.forwards);
    /* An open with no recipient, read in a later batch: found among its quarter hour's IDs (on
     * SQLite); a read of a time with no open is not. */
    sp_event_t *b5[2] = {block_open("va", H, 4 * 3600000 + 17), block_open("vb", H, 1000)};
    b5[0]->recipient[0] = b5[1]->recipient[0] = '\0';
    write_events(s, b5, 2);
    sp_event_t *b6[2] = {block_read("va", 4 * 3600000 + 17, 12000),
                         block_read("va", 4 * 3600000 + 18, 12000)};
    b6[0]->recipient[0] = b6[1]->recipient[0] = '\0';
    write_events(s, b6, 2);
    assert_int_equal(SP_OUTCOME_STORED, b6[0]->outcome);
    assert_int_equal(b5[0]->id, b6[0]->id);
    assert_string_equal("read", b6[0]->engagement);
    assert_int_equal(SP_OUTCOME_UNMATCHED, b6[1]->outcome);
    /* And an open with no recipient and its read in one batch. */
    sp_event_t *b7[2] = {block_open("vc", H, 5 * 3600000 + 3),
                         block_read("vc", 5 * 3600000 + 3, 8000)};
    b7[0]->recipient[0] = b7[1]->recipient[0] = '\0';
    write_events(s, b7, 2);
    assert_int_equal(SP_OUTCOME_STORED, b7[1]->outcome);
    assert_int_equal(b7[0]->id, b7[1]->id);
    assert_string_equal("read", b7[1]->engagement);
    sp_event_t **all[] = {b1, b2, b3, b4, b5, b6, b7};
    size_t ns[] = {2, 1, 1, 6, 2, 2, 2};
    for (size_t i = 0; i < 7; i++)
        for (size_t j = 0; j < ns[i]; j++)
            sp_event_free(all[i][j]);
    sp_store_close(s);
}

/* N opens of campaign "ids" by recipients PREFIX0..., written as one batch by S, their IDs into
 * IDS: each stored, in the batch's order. */
static void ids_batch(sp_store_t *s, const char *prefix, size_t n, int64_t *ids)
{
    sp_event_t **evs = calloc(n, sizeof(*evs));
    assert_non_null(evs);
    for (size_t i = 0; i < n; i++) {
        char who[32];
        snprintf(who, sizeof(who), "%s%zu", prefix, i);
        const spec_t sp = {"ids", who, OPEN, H, 1000 + (int64_t)i, NULL, i % 3 ? "A/1" : "B/2",
                           NULL};
        evs[i] = make_event(&sp);
    }
    write_events(s, evs, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(SP_OUTCOME_STORED, evs[i]->outcome);
        ids[i] = evs[i]->id;
        if (i)
            assert_true(ids[i] > ids[i - 1]);
        sp_event_free(evs[i]);
    }
    free(evs);
}

/* A batch's events are written many rows a statement: each event is told the ID of its own row,
 * IDs grow in the batch's order and from batch to batch, also between two connections writing
 * in turn, and batches of any size (a statement's rows and a part of them) are stored whole. */
static void test_event_ids_in_order(void **state)
{
    char err[512] = "";
    sp_store_t *w1 = open_store(state), *w2 = open_store(state);
    create(w1, "ids", 1);
    enum { A = 75, B = 3, C = 40 };
    int64_t ids[A + B + C];
    ids_batch(w1, "a", A, ids);
    ids_batch(w2, "b", B, ids + A);
    ids_batch(w1, "c", C, ids + A + B);
    assert_true(ids[A] > ids[A - 1]);
    assert_true(ids[A + B] > ids[A + B - 1]);
    got_events_t *g = list_events(w2, "ids", 0, 1000);
    assert_int_equal(A + B + C, g->n);
    for (size_t i = 0; i < g->n; i++) {
        const char *r = g->e[i].recipient;
        size_t at = strtoul(r + 1, NULL, 10) + ('a' == r[0] ? 0 : 'b' == r[0] ? A : A + B);
        assert_true(at < A + B + C);
        assert_int_equal(ids[at], g->e[i].id);
        assert_int_equal(1000 + (int64_t)strtoul(r + 1, NULL, 10), g->e[i].ts);
        assert_string_equal(strtoul(r + 1, NULL, 10) % 3 ? "A/1" : "B/2", g->e[i].user_agent);
    }
    got_events_free(g);
    sp_campaign_t c;
    assert_int_equal(0, w1->ops->campaign_get(w1, "ids", &c, err, sizeof(err)));
    assert_int_equal(A + B + C, c.total_views);
    sp_store_close(w2);
    sp_store_close(w1);
}

static int64_t refs_wrong(fixture_t *fx);

/* A row that fails in the middle of a batch's multi-row insert (here a trigger's RAISE(FAIL),
 * which keeps the statement's rows before it) fails the batch whole: nothing of it is stored or
 * counted, and the batch written again is stored once. */
static void test_sqlite_batch_fails_whole(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *s = open_store(state);
    create(s, "ids", 1);
    int64_t ids[3];
    ids_batch(s, "a", 3, ids);
    raw_sql(fx,
            "CREATE TRIGGER no_bad BEFORE INSERT ON events WHEN NEW.recipient = 'b37'"
            " BEGIN SELECT RAISE(FAIL, 'refused'); END;",
            "");
    sp_event_t *evs[40];
    for (size_t i = 0; i < 40; i++) {
        char who[32];
        snprintf(who, sizeof(who), "b%zu", i);
        const spec_t sp = {"ids", who, OPEN, H, 2000 + (int64_t)i, NULL, "A/1", NULL};
        evs[i] = make_event(&sp);
    }
    assert_int_equal(-1, s->ops->write_batch(s, evs, 40, NULL, err, sizeof(err)));
    assert_int_equal(3, raw_int(fx, "SELECT count(*) FROM events"));
    sp_campaign_t c;
    assert_int_equal(0, s->ops->campaign_get(s, "ids", &c, err, sizeof(err)));
    assert_int_equal(3, c.total_views);
    assert_int_equal(2, raw_int(fx, "SELECT refs FROM agents WHERE text = 'A/1'"));
    raw_sql(fx, "DROP TRIGGER no_bad;", "");
    write_events(s, evs, 40);
    for (size_t i = 0; i < 40; i++) {
        assert_int_equal(SP_OUTCOME_STORED, evs[i]->outcome);
        assert_int_equal(ids[2] + 1 + (int64_t)i, evs[i]->id);
        sp_event_free(evs[i]);
    }
    assert_int_equal(43, raw_int(fx, "SELECT count(*) FROM events"));
    assert_int_equal(43, raw_int(fx, "SELECT count(DISTINCT recipient) FROM events"));
    assert_int_equal(0, s->ops->campaign_get(s, "ids", &c, err, sizeof(err)));
    assert_int_equal(43, c.total_views);
    assert_int_equal(0, refs_wrong(fx));
    sp_store_close(s);
}

/* An open of "ann" in campaign "fwd" by BROWSER on OS from IP at minute MIN of class KLASS. */
static sp_event_t *reader_open(const char *browser, const char *os, const char *ip, int klass,
                               int64_t min)
{
    const spec_t sp = {"fwd", "ann", OPEN, klass, 1764000000000 + min * 60000, ip, NULL, "v"};
    sp_event_t *ev = make_event(&sp);
    snprintf(ev->browser, sizeof(ev->browser), "%s", browser);
    snprintf(ev->os, sizeof(ev->os), "%s", os);
    return ev;
}

typedef struct {
    int n, forwards;
    int64_t ts[16];
    char rule[16][64], ip[16][48];
} forward_rows_t;

static int forward_row(void *ctx, const sp_event_row_t *row)
{
    forward_rows_t *f = ctx;
    f->n++;
    if (SP_EVENT_FORWARD == row->kind && f->forwards < 16) {
        f->ts[f->forwards] = row->ts_ms;
        snprintf(f->rule[f->forwards], 64, "%s", row->rule);
        snprintf(f->ip[f->forwards], 48, "%s", row->ip);
        f->forwards++;
    }
    return 0;
}

static void test_likely_forward(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "fwd", 1);
    /* The first human open (after a proxy's, which is no reader), and a CSS forward. */
    const spec_t css = {"fwd", "ann", SP_EVENT_FORWARD, H, 1764000000000 + 5 * 60000, NULL,
                        NULL,  "v"};
    sp_event_t *b1[] = {reader_open("Gmail", "Other", "66.249.84.1", P, -1),
                        reader_open("Chrome", "Windows", "203.0.113.7", H, 0), make_event(&css)};
    write_events(s, b1, 3);
    /* An hour later: the same client elsewhere, a new client on the same network, a proxy, a
     * machine and a self view, none a forward; a new client from another network is. */
    sp_event_t *b2[] = {reader_open("Chrome", "Windows", "198.51.100.1", H, 60),
                        reader_open("Firefox", "Linux", "203.0.113.99", H, 61),
                        reader_open("Edge", "Windows", "192.0.2.1", P, 62),
                        reader_open("Edge", "Windows", "192.0.2.1", M, 62),
                        reader_open("Edge", "Windows", "192.0.2.1", S, 62),
                        reader_open("Firefox", "Linux", "198.51.100.9", H, 63)};
    write_events(s, b2, 6);
    /* The new client again from yet another network: none; a third client: one. */
    sp_event_t *b3[] = {reader_open("Firefox", "Linux", "100.64.0.1", H, 120),
                        reader_open("Mobile Safari", "iOS", "2001:db8:1::5", H, 121)};
    write_events(s, b3, 2);

    forward_rows_t rows = {0};
    assert_int_equal(0, s->ops->events(s, "fwd", 0, -1, forward_row, &rows, err, sizeof(err)));
    assert_int_equal(11 + 2, rows.n);   /* the opens stay opens, besides */
    assert_int_equal(3, rows.forwards); /* newest first */
    assert_string_equal(SP_TALLY_FORWARD_RULE, rows.rule[0]);
    assert_string_equal("2001:db8:1::5", rows.ip[0]);
    assert_int_equal(1764000000000 + 121 * 60000, rows.ts[0]);
    assert_string_equal(SP_TALLY_FORWARD_RULE, rows.rule[1]);
    assert_string_equal("198.51.100.9", rows.ip[1]);
    assert_string_equal("test", rows.rule[2]);

    sp_engagement_t e;
    assert_int_equal(0, s->ops->engagement(s, "fwd", &e, err, sizeof(err)));
    assert_int_equal(1, e.forwards);
    assert_int_equal(2, e.likely_forwards);
    sp_campaign_t c;
    assert_int_equal(0, s->ops->campaign_get(s, "fwd", &c, err, sizeof(err)));
    assert_int_equal(6, c.by_class[H]); /* a likely forward is no open */
    assert_int_equal(8, c.total_views);
    /* The likely forwards, written after their recipient's row, are its events too: forget
     * erases them with the others. */
    check_recipient_events(state);
    int64_t deleted = 0;
    assert_int_equal(0, s->ops->forget(s, "ann", &deleted, err, sizeof(err)));
    assert_int_equal(13, deleted);
    rows = (forward_rows_t){0};
    assert_int_equal(0, s->ops->events(s, "fwd", 0, -1, forward_row, &rows, err, sizeof(err)));
    assert_int_equal(0, rows.n);
    sp_event_t **all[] = {b1, b2, b3};
    size_t ns[] = {3, 6, 2};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < ns[i]; j++)
            sp_event_free(all[i][j]);
    sp_store_close(s);
}

/* Batches one after the other on one connection, nothing else committing between them: the
 * writer updates the recipients' rows it wrote without reading them back, so what it keeps of
 * them must be what they hold. Ann's first counted open comes in her second batch (a unique
 * view then, not after); in the third her reader moves to an open older than it, so that her
 * first reader's client, from another network an hour after, is a likely forward; in the
 * fourth that client, listed since, is none from yet another network. Bob's row changes through
 * another connection between two of this writer's batches: what it kept of him is let go. */
static void test_writer_kept_rows(void **state)
{
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "fwd", 1);
    sp_event_t *b1[] = {reader_open("Chrome", "Windows", "203.0.113.7", M, 0)};
    write_events(s, b1, 1);
    assert_false(b1[0]->first_view);
    sp_event_t *b2[] = {reader_open("Chrome", "Windows", "203.0.113.7", H, 60)};
    write_events(s, b2, 1);
    assert_true(b2[0]->first_view);
    sp_event_t *b3[] = {reader_open("Chrome", "Windows", "203.0.113.7", H, 61),
                        reader_open("Firefox", "Linux", "198.51.100.9", H, 30)};
    write_events(s, b3, 2);
    assert_false(b3[0]->first_view);
    assert_false(b3[1]->first_view);
    sp_event_t *b4[] = {reader_open("Chrome", "Windows", "192.0.2.44", H, 240)};
    write_events(s, b4, 1);
    assert_false(b4[0]->first_view);

    sp_campaign_t c;
    assert_int_equal(0, s->ops->campaign_get(s, "fwd", &c, err, sizeof(err)));
    assert_int_equal(1, c.unique_views);
    got_recipients_t r = list_recipients(s, "fwd", "", 10);
    assert_int_equal(4, find_recipient(&r, "ann")->views);
    forward_rows_t rows = {0};
    assert_int_equal(0, s->ops->events(s, "fwd", 0, -1, forward_row, &rows, err, sizeof(err)));
    assert_int_equal(1, rows.forwards);
    assert_string_equal("203.0.113.7", rows.ip[0]);
    assert_int_equal(1764000000000 + 61 * 60000, rows.ts[0]);

    const spec_t bob[] = {{"fwd", "bob", OPEN, M, 1764000000000, NULL, NULL, NULL},
                          {"fwd", "bob", OPEN, H, 1764000000000 + 60000, NULL, NULL, NULL}};
    write_firsts(s, &bob[0], 1, (const int[]){0});
    sp_store_t *other = open_store(state);
    write_firsts(other, &bob[1], 1, (const int[]){1});
    sp_store_close(other);
    write_firsts(s, &bob[1], 1, (const int[]){0});
    assert_int_equal(0, s->ops->campaign_get(s, "fwd", &c, err, sizeof(err)));
    assert_int_equal(2, c.unique_views);
    sp_event_t **all[] = {b1, b2, b3, b4};
    size_t ns[] = {1, 1, 2, 1};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < ns[i]; j++)
            sp_event_free(all[i][j]);
    sp_store_close(s);
}

static void test_scrub_old_store(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *s = open_store(state);
    create(s, "old", 1);
    sp_store_close(s);

    /* Back to the schema before the scrub, with events as older versions stored them:
     * every third one from a logged-in browser. */
    static const char cols[] =
        "INSERT INTO events(ts, campaign, kind, recipient, ip, user_agent, referer, cookies,"
        " headers, visitor, browser, browser_version, os, os_version, device, device_brand,"
        " device_model, arch, country, region, city, latitude, longitude, geo_label, class,"
        " rule, via, target) SELECT 1000 + i, 'old', 0, 'r' || i, '192.0.2.1', 'UA', NULL,"
        " CASE WHEN i % 3 = 0 THEN '{\"theme\":\"dark\",\"sp_session\":\"SECRET' || i ||"
        " '\",\"sp_self\":\"SECRET.SELF\"}' ELSE '{\"theme\":\"dark\"}' END,"
        " CASE WHEN i % 3 = 0 THEN '{\"Host\":\"h\",\"Cookie\":\"theme=dark; sp_session=SECRET'"
        " || i || '; sp_self=SECRET.SELF\",\"Authorization\":\"Bearer spt_SECRET\","
        " \"x-csrf-token\":\"SECRETCSRF\"}' ELSE '{\"Host\":\"h\",\"Cookie\":\"theme=dark\"}' END,"
        " 'v', '', '', '', '', '', '', '', '', '', '', '', NULL, NULL, '', 3, 'self-cookie', '',"
        " ''";
    char sqlite_sql[4096], pg_sql[4096];
    snprintf(sqlite_sql, sizeof(sqlite_sql),
             "ALTER TABLE api_tokens DROP COLUMN owner;"
             "ALTER TABLE events DROP COLUMN engagement; ALTER TABLE events DROP COLUMN read_ms;"
             "INSERT INTO api_tokens(hash, name, created_at) VALUES('ffff0000', 'kept', 1);"
             "DROP TABLE rollup_counts; DROP TABLE rollup_values; DROP TABLE events_quarters;"
             "DROP TABLE rollup_days; DROP TABLE rollup_totals; DROP TABLE rollup_people;"
             "DROP TABLE rollup_people_hours;"
             "DROP TABLE sent_to; ALTER TABLE campaigns DROP COLUMN archived;"
             "DROP TABLE trackers; DROP INDEX events_clicks;"
             "ALTER TABLE recipients DROP COLUMN event_ids; DROP TABLE recipient_events;"
             "ALTER TABLE recipients DROP COLUMN first_client;"
             "ALTER TABLE recipients DROP COLUMN first_network;"
             "ALTER TABLE recipients DROP COLUMN first_human_at;"
             "ALTER TABLE recipients DROP COLUMN forward_clients;"
             "DROP TABLE agents; DROP TABLE header_sets; ALTER TABLE events DROP COLUMN agent;"
             "ALTER TABLE events DROP COLUMN header_set;"
             "ALTER TABLE events DROP COLUMN header_addrs; CREATE INDEX events_ts ON events(ts);"
             "PRAGMA user_version = %d;"
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) %s"
             " FROM n;",
             VERSION_BEFORE_SCRUB, OLD_EVENTS, cols);
    snprintf(pg_sql, sizeof(pg_sql),
             "ALTER TABLE api_tokens DROP COLUMN owner;"
             "ALTER TABLE events DROP COLUMN engagement, DROP COLUMN read_ms;"
             "INSERT INTO api_tokens(hash, name, created_at) VALUES('ffff0000', 'kept', 1);"
             "DROP TABLE rollup_counts; DROP TABLE rollup_values; DROP INDEX events_campaign_ts;"
             "DROP TABLE rollup_days; DROP TABLE rollup_totals; DROP TABLE rollup_people;"
             "DROP TABLE rollup_people_hours;"
             "DROP TABLE sent_to; ALTER TABLE campaigns DROP COLUMN archived;"
             "DROP TABLE trackers; DROP INDEX events_clicks; DROP INDEX events_campaign_recipient;"
             "ALTER TABLE recipients DROP COLUMN first_client, DROP COLUMN first_network,"
             " DROP COLUMN first_human_at, DROP COLUMN forward_clients;"
             "DROP TABLE agents; DROP TABLE header_sets; ALTER TABLE events DROP COLUMN agent,"
             " DROP COLUMN header_set, DROP COLUMN header_addrs;"
             "UPDATE spypixel_schema SET version = %d;"
             "%s FROM generate_series(1, %d) AS i;",
             VERSION_BEFORE_SCRUB, cols, OLD_EVENTS);
    raw_sql(fx, sqlite_sql, pg_sql);
    /* And an open kept apart under an unknown campaign, its journal record as an older
     * version wrote it: look-alike header names renamed in the bytes. */
    sp_event_t *old = sp_event_new(16384);
    old->ts_ms = 5000;
    snprintf(old->campaign, sizeof(old->campaign), "ghost");
    assert_int_equal(0, sp_event_add_header(old, "Xookie", 6, "sp_session=SECRETKEPT; a=b", 26));
    assert_int_equal(0, sp_event_add_header(old, "Xuthorization", 13, "Bearer SECRETKEPT", 17));
    unsigned char *record = malloc(SP_EVENT_ENCODED_MAX);
    assert_non_null(record);
    size_t len = sp_event_encode(old, record);
    sp_event_free(old);
    char hex[2048];
    assert_true(2 * len < sizeof(hex));
    for (size_t i = 0; i < len; i++) {
        if (i + 6 <= len && 0 == memcmp(record + i, "Xookie", 6))
            record[i] = 'C';
        if (i + 13 <= len && 0 == memcmp(record + i, "Xuthorization", 13))
            record[i] = 'A';
    }
    for (size_t i = 0; i < len; i++)
        snprintf(hex + 2 * i, 3, "%02x", record[i]);
    free(record);
    snprintf(sqlite_sql, sizeof(sqlite_sql),
             "INSERT INTO unknown_campaigns(id, opens, first_at, last_at) VALUES('ghost', 1, 5000,"
             " 5000); INSERT INTO unknown_events(campaign, ts, recipient, record)"
             " VALUES('ghost', 5000, '', X'%s');",
             hex);
    snprintf(pg_sql, sizeof(pg_sql),
             "INSERT INTO unknown_campaigns(id, opens, first_at, last_at) VALUES('ghost', 1, 5000,"
             " 5000); INSERT INTO unknown_events(campaign, ts, recipient, record)"
             " VALUES('ghost', 5000, '', decode('%s', 'hex'));",
             hex);
    raw_sql(fx, sqlite_sql, pg_sql);

    /* Opening it migrates it. */
    s = try_open(fx, err, sizeof(err));
    if (!s)
        print_error("open: %s\n", err);
    assert_non_null(s);
    old_events_t g = {0};
    assert_int_equal(0, s->ops->events(s, "old", 0, -1, check_old_event, &g, err, sizeof(err)));
    assert_int_equal(OLD_EVENTS, g.n);
    assert_int_equal(0, g.with_secret);
    assert_int_equal(OLD_EVENTS / 3, g.with_removed);
    assert_int_equal(OLD_EVENTS, g.other_kept);
    /* Events stored after the migration are interned, and read back beside the old ones. */
    create(s, "in", 1);
    sp_event_t *fresh[INTERN_EVENTS];
    for (int i = 0; i < INTERN_EVENTS; i++)
        fresh[i] = intern_event(0, i);
    assert_int_equal(0, s->ops->write_batch(s, fresh, INTERN_EVENTS, NULL, err, sizeof(err)));
    read_interned(s, fresh, INTERN_EVENTS);
    for (int i = 0; i < INTERN_EVENTS; i++)
        sp_event_free(fresh[i]);
    g = (old_events_t){0};
    assert_int_equal(0, s->ops->events(s, "old", 0, -1, check_old_event, &g, err, sizeof(err)));
    assert_int_equal(OLD_EVENTS, g.other_kept);
    /* The events stored before the rollups are in them (schema 7): the report's figures. */
    sp_report_t r = {.to = SP_REPORT_TIME_MAX, .bucket = SP_REPORT_DAY};
    assert_int_equal(0, sp_tz_load(&r.tz, "UTC", err, sizeof(err)));
    assert_int_equal(0, sp_report_run(s, "old", &r, err, sizeof(err)));
    assert_int_equal(OLD_EVENTS, r.by_class[S]);
    assert_int_equal(0, r.by_class[H] + r.by_class[P] + r.by_class[M]);
    assert_int_equal(1, r.n_series);
    assert_int_equal(OLD_EVENTS, r.series[0].self);
    sp_report_free(&r);
    /* The tokens an older version made stay, owned by nobody. */
    kept_t k = {0};
    assert_int_equal(0, s->ops->unknown_opens(s, "ghost", check_kept, &k, err, sizeof(err)));
    assert_int_equal(1, k.n);
    assert_int_equal(0, k.with_secret);
    got_tokens_t t = list_tokens(s);
    assert_int_equal(1, t.n);
    assert_string_equal("kept", t.name[0]);
    assert_string_equal("(none)", t.owner[0]);
    sp_store_close(s);
}

/* Agents and header sets are stored once each, the events read back byte for byte, and a
 * writer that starts again (an empty cache) finds the IDs stored before. */
static void test_interned(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_event_t *evs[2 * INTERN_EVENTS];
    sp_store_t *s = open_store(state);
    create(s, "in", 1);
    for (int i = 0; i < INTERN_EVENTS; i++)
        evs[i] = intern_event(0, i);
    assert_int_equal(0, s->ops->write_batch(s, evs, INTERN_EVENTS, NULL, err, sizeof(err)));
    read_interned(s, evs, INTERN_EVENTS);
    assert_int_equal(INTERN_AGENTS, raw_int(fx, "SELECT count(*) FROM agents"));
    int64_t sets = raw_int(fx, "SELECT count(*) FROM header_sets");
    /* Per agent (or none): with or without Cookie, a repeated X-Forwarded-For, Forwarded. */
    assert_true(sets > INTERN_AGENTS && sets <= 40);
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM events WHERE user_agent IS NOT NULL"
                                    " OR headers <> '' OR header_set IS NULL"));
    sp_store_close(s);

    s = open_store(state);
    for (int i = 0; i < INTERN_EVENTS; i++)
        evs[INTERN_EVENTS + i] = intern_event(1, i);
    assert_int_equal(
        0, s->ops->write_batch(s, evs + INTERN_EVENTS, INTERN_EVENTS, NULL, err, sizeof(err)));
    read_interned(s, evs, 2 * INTERN_EVENTS);
    assert_int_equal(INTERN_AGENTS, raw_int(fx, "SELECT count(*) FROM agents"));
    assert_int_equal(sets, raw_int(fx, "SELECT count(*) FROM header_sets"));
    /* The request's own values stay in the row, and go with it. */
    assert_int_equal(2 * INTERN_EVENTS, raw_int(fx, "SELECT count(*) FROM events WHERE"
                                                    " header_addrs LIKE '%198.51.100.%'"));
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM header_sets WHERE text LIKE '%198.51%'"
                                    " OR text LIKE '%v=%'"));
    sp_store_close(s);
    for (int i = 0; i < 2 * INTERN_EVENTS; i++)
        sp_event_free(evs[i]);
}

/* ---- PostgreSQL: events partitioned by week ------------------------------------------------ */

#define DAY_MS  INT64_C(86400000)
#define WEEK_MS (7 * DAY_MS)

/* The first ms of TS's week (UTC, from Monday 00:00) and its partition's name. */
static int64_t week_of(int64_t ts)
{
    int64_t d = ts - 4 * DAY_MS, k = d / WEEK_MS;
    if (d % WEEK_MS < 0)
        k--;
    return k * WEEK_MS + 4 * DAY_MS;
}

static void week_name(int64_t ts, char *buf, size_t len)
{
    time_t t = (time_t)(week_of(ts) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(buf, len, "events_w%04d%02d%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100);
}

/* The first value of the first row of the SQL made from FORMAT, on the fixture's schema, as text
 * ("" for no row or NULL); the caller frees it. */
static char *pg_value(fixture_t *fx, const char *format, ...)
{
    char sql[4096], set[160];
    va_list ap;
    va_start(ap, format);
    vsnprintf(sql, sizeof(sql), format, ap);
    va_end(ap);
    snprintf(set, sizeof(set), "SET search_path = %s", fx->schema);
    assert_int_equal(0, pg_cmd(fx->admin, set));
    PGresult *res = PQexec(fx->admin, sql);
    if (PGRES_TUPLES_OK != PQresultStatus(res))
        print_error("%s: %s", sql, PQresultErrorMessage(res));
    assert_int_equal(PGRES_TUPLES_OK, PQresultStatus(res));
    char *v = strdup(PQntuples(res) > 0 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : "");
    assert_non_null(v);
    PQclear(res);
    return v;
}

/* Asserts that the events at TS are N rows, all in partition WANT. */
static void assert_partition(fixture_t *fx, int64_t ts, const char *want, int n)
{
    char *got = pg_value(fx,
                         "SELECT string_agg(DISTINCT tableoid::regclass::text, ',')"
                         " || ':' || count(*) FROM events WHERE ts = %lld",
                         (long long)ts);
    char expect[96];
    snprintf(expect, sizeof(expect), "%s:%d", want, n);
    if (0 != strcmp(expect, got))
        print_error("ts %lld: want %s, got %s\n", (long long)ts, expect, got);
    assert_string_equal(expect, got);
    free(got);
}

static bool pg_true(fixture_t *fx, const char *format, const char *arg)
{
    char *v = pg_value(fx, format, arg);
    bool t = 0 == strcmp("t", v);
    free(v);
    return t;
}

#define PARTITION_OF                                                                               \
    "SELECT EXISTS(SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass('%s')"                   \
    " AND inhparent = 'events'::regclass)"

/* The writer makes the partition of each week it writes to (and of the next week ahead of
 * need); a row too far back or ahead goes to the default partition, and moves out of it into
 * its week's partition when a later batch makes that. */
static void test_pg_partitions(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    create(s, "w", 1);
    int64_t now = sp_now_ms(), back = now - 100 * DAY_MS, far = now + 20 * 365 * DAY_MS;
    const spec_t specs[] = {
        {"w", "ann", OPEN, H, now, NULL, NULL, NULL},
        {"w", "bob", OPEN, H, back, NULL, NULL, NULL},
        {"w", "cat", OPEN, H, far, NULL, NULL, NULL},
        {"w", "dan", OPEN, H, 1000, NULL, NULL, NULL},
    };
    write_specs(s, specs, 4, NULL);
    char name[64];
    week_name(now, name, sizeof(name));
    assert_partition(fx, now, name, 1);
    week_name(back, name, sizeof(name));
    assert_partition(fx, back, name, 1);
    assert_partition(fx, far, "events_default", 1);
    assert_partition(fx, 1000, "events_default", 1);
    week_name(now + WEEK_MS, name, sizeof(name));
    assert_true(pg_true(fx, PARTITION_OF, name));
    /* Every row is read back, newest ID first, the IDs in the batch's order. */
    got_events_t *g = list_events(s, "w", 0, 100);
    assert_int_equal(4, g->n);
    assert_string_equal("dan", g->e[0].recipient);
    assert_string_equal("ann", g->e[3].recipient);
    assert_true(g->e[0].id > g->e[1].id && g->e[1].id > g->e[2].id && g->e[2].id > g->e[3].id);
    got_events_free(g);

    /* A row in the default partition for a week that has none yet (written while its partition
     * could not be made), then a batch that reaches that week. */
    int64_t later = week_of(now) + 3 * WEEK_MS + 3600000;
    char sql[512];
    snprintf(sql, sizeof(sql),
             "CREATE TEMP TABLE t AS SELECT * FROM events WHERE ts = %lld;"
             "UPDATE t SET id = nextval('events_id_seq'), ts = %lld;"
             "INSERT INTO events SELECT * FROM t; DROP TABLE t",
             (long long)now, (long long)later);
    raw_sql(fx, "", sql);
    assert_partition(fx, later, "events_default", 1);
    const spec_t more = {"w", "eve", OPEN, H, later + 1, NULL, NULL, NULL};
    write_specs(s, &more, 1, NULL);
    week_name(later, name, sizeof(name));
    assert_partition(fx, later, name, 1);
    assert_partition(fx, later + 1, name, 1);
    char *n = pg_value(fx, "SELECT count(*) FROM events_default");
    assert_string_equal("2", n);
    free(n);
    g = list_events(s, "w", 0, 100);
    assert_int_equal(6, g->n);
    got_events_free(g);
    sp_store_close(s);
}

/* Retention drops the partitions wholly before the cut and deletes only the rows before it in
 * the rest: the week that straddles it and the default partition. */
static void test_pg_partition_retention(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "r", 1);
    int64_t w = week_of(sp_now_ms()), hour = 3600000;
    const spec_t specs[] = {
        {"r", "a", OPEN, H, w - 3 * WEEK_MS + hour, NULL, NULL, NULL},
        {"r", "b", OPEN, H, w - 2 * WEEK_MS + hour, NULL, NULL, NULL},
        {"r", "c", OPEN, H, w - WEEK_MS + hour, NULL, NULL, NULL},
        {"r", "d", OPEN, H, w - WEEK_MS + 3 * DAY_MS, NULL, NULL, NULL},
        {"r", "e", OPEN, H, w + hour, NULL, NULL, NULL},
        {"r", "f", OPEN, H, 1000, NULL, NULL, NULL},
    };
    write_specs(s, specs, 6, NULL);
    char gone[2][64], straddles[64];
    week_name(w - 3 * WEEK_MS, gone[0], sizeof(gone[0]));
    week_name(w - 2 * WEEK_MS, gone[1], sizeof(gone[1]));
    week_name(w - WEEK_MS, straddles, sizeof(straddles));
    for (int i = 0; i < 2; i++)
        assert_true(pg_true(fx, PARTITION_OF, gone[i]));
    int64_t deleted = -1;
    assert_int_equal(0,
                     s->ops->purge_before(s, w - WEEK_MS + 2 * DAY_MS, &deleted, err, sizeof(err)));
    assert_int_equal(4, deleted);
    for (int i = 0; i < 2; i++) {
        assert_false(pg_true(fx, PARTITION_OF, gone[i]));
        assert_false(pg_true(fx, "SELECT to_regclass('%s') IS NOT NULL", gone[i]));
    }
    assert_true(pg_true(fx, PARTITION_OF, straddles));
    got_events_t *g = list_events(s, "r", 0, 100);
    assert_int_equal(2, g->n);
    assert_string_equal("e", g->e[0].recipient);
    assert_string_equal("d", g->e[1].recipient);
    got_events_free(g);
    /* The counters keep what retention deleted. */
    assert_int_equal(6, get_campaign(s, "r").total_views);
    assert_int_equal(0,
                     s->ops->purge_before(s, w - WEEK_MS + 2 * DAY_MS, &deleted, err, sizeof(err)));
    assert_int_equal(0, deleted);
    sp_store_close(s);
}

/* ---- an export's reading ------------------------------------------------------------------ */

/* The next page of reading X into G; returns export_next's answer, checked not to be -1. */
static int export_page(sp_store_t *s, sp_store_export_t *x, got_events_t *g)
{
    char err[512] = "";
    int rc = s->ops->export_next(s, x, on_event, g, err, sizeof(err));
    if (rc < 0)
        print_error("export_next: %s\n", err);
    assert_true(rc >= 0);
    return rc;
}

/* Campaign x's events read by pages of every size through a reading, while the same store serves
 * other calls and another reading between its pages: each page is full but the last, the rows are
 * those events() lists, in its order, with their interned texts (40 agents, 13 header sets), none
 * repeated or skipped at a page's end; before and limit as events() takes them; a callback that
 * stops ends the reading. */
static void test_export_reading(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "x", 1);
    create(s, "y", 1);
    enum { N = 150, X = 100 };
    sp_event_t *evs[N];
    for (int i = 0; i < N; i++) {
        char ua[32], rcpt[32], tag[16];
        snprintf(ua, sizeof(ua), "agent %d", i % 40);
        snprintf(rcpt, sizeof(rcpt), "r%d@example.com", i % 9);
        snprintf(tag, sizeof(tag), "t%d", i % 13);
        evs[i] = make_event(&(spec_t){i % 3 ? "x" : "y", rcpt, OPEN, i % SP_CLASS_COUNT,
                                      1764000000000 + i, NULL, ua, NULL});
        assert_int_equal(0, sp_event_add_header(evs[i], "X-Client-Tag", 12, tag, strlen(tag)));
        /* A referer on some (NULL on the others, "" on a few: a page keeps them apart) */
        evs[i]->referer = i % 5 ? NULL : i % 10 ? "" : "https://mail.example/inbox";
    }
    write_events(s, evs, N);
    for (int i = 0; i < N; i++)
        sp_event_free(evs[i]);
    got_events_t *all = list_events(s, "x", 0, -1);
    assert_int_equal(X, all->n);

    static const int64_t pages[] = {1, 7, 20, 25, 99, 100, 1000};
    for (size_t k = 0; k < sizeof(pages) / sizeof(pages[0]); k++) {
        int64_t page = pages[k];
        sp_store_export_t *x = s->ops->export_open(s, "x", 0, -1, page);
        sp_store_export_t *y = s->ops->export_open(s, "y", 0, -1, 3);
        got_events_t *g = calloc(1, sizeof(*g)), *gy = calloc(1, sizeof(*gy));
        assert_non_null(g);
        assert_non_null(gy);
        int rc, calls = 0;
        for (;;) {
            size_t n0 = g->n;
            rc = export_page(s, x, g);
            calls++;
            if (!rc)
                assert_int_equal(page, g->n - n0);
            else
                assert_true((int64_t)(g->n - n0) <= page);
            if (rc)
                break;
            /* The connection is the caller's between pages. */
            got_events_t *other = list_events(s, "y", 0, 4);
            assert_int_equal(4, other->n);
            got_events_free(other);
            assert_int_equal(1, get_campaign(s, "y").created_at);
            if (gy->n < 50)
                export_page(s, y, gy);
        }
        /* The last page may be empty when the one before ended the events. */
        int full = (int)((X + page - 1) / page);
        assert_true(calls == full || calls == full + 1);
        assert_int_equal(1, export_page(s, x, g)); /* and at every later call */
        assert_int_equal(X, g->n);
        for (size_t i = 0; i < X; i++)
            assert_same_event(&all->e[i], &g->e[i]);
        s->ops->export_close(s, x);
        s->ops->export_close(s, y);
        got_events_free(g);
        got_events_free(gy);
    }

    /* Below an ID, at most LIMIT, across pages. */
    sp_store_export_t *x = s->ops->export_open(s, "x", all->e[10].id, 37, 7);
    got_events_t *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    while (!export_page(s, x, g))
        ;
    assert_int_equal(37, g->n);
    for (size_t i = 0; i < 37; i++)
        assert_int_equal(all->e[11 + i].id, g->e[i].id);
    s->ops->export_close(s, x);
    got_events_free(g);
    x = s->ops->export_open(s, "x", 0, 0, 7);
    g = calloc(1, sizeof(*g));
    assert_non_null(g);
    assert_int_equal(1, export_page(s, x, g));
    assert_int_equal(0, g->n);
    s->ops->export_close(s, x);
    got_events_free(g);

    /* A callback that stops ends the reading; the store is fine afterwards, and a reading closed
     * before its end leaves nothing behind. */
    x = s->ops->export_open(s, "x", 0, -1, 7);
    g = calloc(1, sizeof(*g));
    assert_non_null(g);
    assert_int_equal(0, export_page(s, x, g));
    g->stop_after = 10;
    assert_int_equal(1, export_page(s, x, g));
    assert_int_equal(10, g->n);
    assert_int_equal(1, export_page(s, x, g));
    s->ops->export_close(s, x);
    s->ops->export_close(s, s->ops->export_open(s, "x", 0, -1, 7)); /* never read */
    x = s->ops->export_open(s, "x", 0, -1, 7);
    g->stop_after = 0;
    assert_int_equal(0, export_page(s, x, g));
    s->ops->export_close(s, x);
    got_events_free(g);
    g = list_events(s, "x", 0, -1);
    assert_int_equal(X, g->n);
    got_events_free(g);
    s->ops->export_close(s, NULL);
    got_events_free(all);
    sp_store_close(s);
}

/* A campaign of more distinct user agents than a reading keeps (PostgreSQL's looks each up once
 * and keeps at most 4,096): every row still has its own, at any page size. */
static void test_export_many_texts(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "t", 1);
    enum { N = 5000, BATCH = 500 };
    for (int from = 0; from < N; from += BATCH) {
        sp_event_t *evs[BATCH];
        for (int k = 0; k < BATCH; k++) {
            char ua[32];
            snprintf(ua, sizeof(ua), "agent %d", from + k);
            evs[k] = make_event(
                &(spec_t){"t", "r@example.com", OPEN, H, 1764000000000 + from + k, NULL, ua, NULL});
        }
        write_events(s, evs, BATCH);
        for (int k = 0; k < BATCH; k++)
            sp_event_free(evs[k]);
    }
    static const int64_t pages[] = {1000, 4096};
    for (size_t k = 0; k < 2; k++) {
        sp_store_export_t *x = s->ops->export_open(s, "t", 0, -1, pages[k]);
        int64_t want = N - 1;
        for (int rc = 0; !rc;) {
            got_events_t *g = calloc(1, sizeof(*g));
            assert_non_null(g);
            rc = export_page(s, x, g);
            for (size_t i = 0; i < g->n; i++, want--) {
                char ua[32];
                snprintf(ua, sizeof(ua), "agent %lld", (long long)want);
                assert_string_equal(ua, g->e[i].user_agent);
            }
            got_events_free(g);
        }
        assert_int_equal(-1, want);
        s->ops->export_close(s, x);
    }
    sp_store_close(s);
}

/* SQLite reads an export's pages after the first ahead, on a connection of the reading's own:
 * when that connection cannot be opened (here: the data folder made open to others after the
 * store was opened, which a new connection refuses), the next page fails and says why, as does
 * every later call; nothing is handed out as if the events had ended, and the store's own
 * connection goes on. */
static void test_export_ahead_fails(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    char err[512] = "";
    create(s, "a", 1);
    enum { N = 30, PAGE = 10 };
    spec_t specs[N];
    for (int i = 0; i < N; i++)
        specs[i] = (spec_t){"a", "r@example.com", OPEN, H, 1764000000000 + i, NULL, NULL, NULL};
    write_specs(s, specs, N, NULL);

    assert_int_equal(0, chmod(fx->dir, 0755));
    sp_store_export_t *x = s->ops->export_open(s, "a", 0, -1, PAGE);
    got_events_t *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    assert_int_equal(0, export_page(s, x, g)); /* the first page, on the store's connection */
    assert_int_equal(PAGE, g->n);
    assert_int_equal(-1, s->ops->export_next(s, x, on_event, g, err, sizeof(err)));
    assert_non_null(strstr(err, "open to other users"));
    assert_int_equal(PAGE, g->n);
    err[0] = '\0';
    assert_int_equal(-1, s->ops->export_next(s, x, on_event, g, err, sizeof(err)));
    assert_true(err[0]);
    s->ops->export_close(s, x);
    assert_int_equal(0, chmod(fx->dir, 0700));
    got_events_free(g);
    g = list_events(s, "a", 0, -1);
    assert_int_equal(N, g->n);
    got_events_free(g);
    sp_store_close(s);
}

/* A number from /proc/self/status ("Threads"). */
static long proc_status(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof(line), f))
        if (0 == strncmp(line, key, n) && ':' == line[n])
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

/* pthread_create as the tests see it: the library's calls come here (this program's own
 * definition comes first), and fail with EAGAIN while threads_refused is set, as when the
 * process is at its limit of threads. */
static atomic_bool threads_refused;

int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*start)(void *), void *arg)
{
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (atomic_load(&threads_refused))
        return EAGAIN;
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
    return real(thread, attr, start, arg);
}

/* When no thread can be started for a SQLite reading, the export goes on without one, each
 * page read when asked for: every event, in order, and no crash. */
static void test_export_no_thread(void **state)
{
    sp_store_t *s = open_store(state);
    create(s, "n", 1);
    enum { N = 25, PAGE = 10 };
    spec_t specs[N];
    for (int i = 0; i < N; i++)
        specs[i] = (spec_t){"n", "r@example.com", OPEN, H, 1764000000000 + i, NULL, NULL, NULL};
    write_specs(s, specs, N, NULL);
    got_events_t *all = list_events(s, "n", 0, -1), *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    long threads = proc_status("Threads");
    assert_true(threads > 0);
    atomic_store(&threads_refused, true);
    sp_store_export_t *x = s->ops->export_open(s, "n", 0, -1, PAGE);
    int rc = export_page(s, x, g), pages = 1;
    assert_int_equal(threads, proc_status("Threads")); /* none was started */
    while (!rc) {
        rc = export_page(s, x, g);
        pages++;
    }
    s->ops->export_close(s, x);
    atomic_store(&threads_refused, false);
    assert_int_equal(3, pages);
    assert_int_equal(N, g->n);
    for (size_t i = 0; i < N; i++)
        assert_same_event(&all->e[i], &g->e[i]);
    got_events_free(g);
    got_events_free(all);
    sp_store_close(s);
}

/* A forget and retention made (by another connection, as the server's writer and API do) while
 * a campaign is read by pages: both go through at once (a reading holds no statement, lock or
 * snapshot between its calls: PostgreSQL's DROP of a week would wait for one), and what they took
 * out is in none of the pages after those read ahead (SP_STORE_EXPORT_AHEAD), while every event
 * that stays is there once, in order. */
static void test_export_meanwhile(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state), *other = open_store(state);
    char err[512] = "";
    create(s, "m", 1);
    enum { N = 300, OLD = 100, PAGE = 5 };
    int64_t w = week_of(sp_now_ms()), cut = w - 2 * WEEK_MS;
    spec_t *specs = calloc(N, sizeof(*specs));
    char(*rcpt)[32] = calloc(N, 32);
    assert_non_null(specs);
    assert_non_null(rcpt);
    for (int i = 0; i < N; i++) {
        snprintf(rcpt[i], 32, i % 4 ? "r%d@example.com" : "gone@example.com", i % 7);
        /* The oldest OLD a week before the cut, the rest in the last week and this one. */
        int64_t ts = i < OLD ? w - 3 * WEEK_MS + 3600000 + i : w - WEEK_MS + (int64_t)i * 60000;
        specs[i] = (spec_t){"m", rcpt[i], OPEN, H, ts, NULL, NULL, NULL};
    }
    sp_event_t **evs = calloc(N, sizeof(*evs));
    assert_non_null(evs);
    write_specs(s, specs, N, evs);
    got_events_t *all = list_events(s, "m", 0, -1);
    assert_int_equal(N, all->n);

    sp_store_export_t *x = s->ops->export_open(s, "m", 0, -1, PAGE);
    got_events_t *g = calloc(1, sizeof(*g));
    assert_non_null(g);
    assert_int_equal(0, export_page(s, x, g));
    assert_int_equal(PAGE, g->n);
    int64_t deleted = -1;
    assert_int_equal(0, other->ops->forget(other, "gone@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(N / 4, deleted);
    assert_int_equal(0, other->ops->purge_before(other, cut, &deleted, err, sizeof(err)));
    assert_int_equal(OLD - OLD / 4, deleted);
    if (fx->be->pg) {
        char old[64];
        week_name(w - 3 * WEEK_MS, old, sizeof(old));
        assert_false(pg_true(fx, "SELECT to_regclass('%s') IS NOT NULL", old));
    }
    /* Where each row came: the page after the forget it was handed out in. */
    int page_of[1200] = {0};
    int page = 0, rc;
    do {
        size_t n0 = g->n;
        rc = export_page(s, x, g);
        page++;
        for (size_t i = n0; i < g->n; i++)
            page_of[i] = page;
    } while (!rc);
    s->ops->export_close(s, x);

    size_t at = 0, kept = 0;
    for (size_t i = 0; i < all->n; i++) {
        bool out = 0 == strcmp("gone@example.com", all->e[i].recipient) || all->e[i].ts < cut;
        kept += !out;
        if (at < g->n && g->e[at].id == all->e[i].id) {
            if (out && page_of[at] > SP_STORE_EXPORT_AHEAD)
                fail_msg("event %lld taken out before page %d was read", (long long)all->e[i].id,
                         page_of[at]);
            at++;
        } else if (!out) {
            fail_msg("event %lld missing", (long long)all->e[i].id);
        }
    }
    assert_int_equal(g->n, at); /* nothing else, nothing twice, in order */
    assert_true(g->n < kept + (size_t)(SP_STORE_EXPORT_AHEAD + 1) * PAGE);
    got_events_free(g);
    got_events_free(all);
    for (int i = 0; i < N; i++)
        sp_event_free(evs[i]);
    free(evs);
    free(specs);
    free(rcpt);
    sp_store_close(other);
    sp_store_close(s);
}

/* ---- interned texts go with the last event that names them ------------------------------------
 */

/* An open of CAMPAIGN by RECIPIENT at TS with user agent UA and a header its client always sends,
 * X-Client-Tag: TAG (a part of the header set, not of the row). */
static void gc_write(sp_store_t *s, const char *campaign, const char *const *recipients,
                     const int64_t *ts, const char *const *uas, const char *const *tags, size_t n)
{
    sp_event_t *evs[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        const spec_t sp = {campaign, recipients[i], OPEN, H, ts[i], NULL, uas[i], NULL};
        evs[i] = make_event(&sp);
        assert_int_equal(0,
                         sp_event_add_header(evs[i], "X-Client-Tag", 12, tags[i], strlen(tags[i])));
    }
    write_events(s, evs, n);
    for (size_t i = 0; i < n; i++)
        sp_event_free(evs[i]);
}

/* How many agents have TEXT, and how many header sets hold TAG. */
static int64_t gc_agents(fixture_t *fx, const char *text)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM agents WHERE text = '%s'", text);
    return raw_int(fx, sql);
}

static int64_t gc_sets(fixture_t *fx, const char *tag)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM header_sets WHERE text LIKE '%%%s%%'", tag);
    return raw_int(fx, sql);
}

/* Events that name an agent or a header set that is not there. */
static int64_t gc_dangling(fixture_t *fx)
{
    return raw_int(fx, "SELECT count(*) FROM events e WHERE (agent IS NOT NULL AND NOT EXISTS"
                       " (SELECT 1 FROM agents a WHERE a.id = e.agent)) OR (header_set IS NOT NULL"
                       " AND NOT EXISTS (SELECT 1 FROM header_sets h WHERE h.id = e.header_set))");
}

/* Campaign "g"'s event of RECIPIENT reads back with agent UA and a header set holding TAG. */
static void gc_reads(sp_store_t *s, const char *recipient, const char *ua, const char *tag)
{
    got_events_t *g = list_events(s, "g", 0, 100);
    size_t found = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (0 != strcmp(recipient, g->e[i].recipient))
            continue;
        found++;
        assert_non_null(g->e[i].user_agent);
        assert_string_equal(ua, g->e[i].user_agent);
        assert_non_null(strstr(g->e[i].headers, tag));
    }
    assert_int_equal(1, found);
    got_events_free(g);
}

/* After the texts of "gone" were deleted by another connection (the API's, the CLI's, the
 * retention thread's), the writer, whose cache still holds their old IDs, stores that agent and
 * header set again, after a new agent that SQLite may give the freed ID: both read back right. */
static void gc_write_again(fixture_t *fx, sp_store_t *w)
{
    const char *rcpt[] = {"fresh", "back"}, *uas[] = {"Fresh/4.0", "Solo/1.0"},
               *tags[] = {"fresh-tag", "solo-tag"};
    const int64_t ts[] = {90000, 90001};
    gc_write(w, "g", rcpt, ts, uas, tags, 2);
    assert_int_equal(0, gc_dangling(fx));
    gc_reads(w, "fresh", "Fresh/4.0", "fresh-tag");
    gc_reads(w, "back", "Solo/1.0", "solo-tag");
    gc_reads(w, "stays", "Shared/2.0", "shared-tag");
    assert_int_equal(1, gc_agents(fx, "Solo/1.0"));
    assert_int_equal(1, gc_sets(fx, "solo-tag"));
}

/* The shared agent and set first: the person's are then the newest IDs, which SQLite gives out
 * again once they are deleted. */
static void gc_setup(sp_store_t *w, int64_t gone_ts, int64_t stays_ts)
{
    create(w, "g", 1);
    const char *rcpt[] = {"stays", "gone@example.com", "gone@example.com"},
               *uas[] = {"Shared/2.0", "Shared/2.0", "Solo/1.0"},
               *tags[] = {"shared-tag", "shared-tag", "solo-tag"};
    const int64_t ts[] = {stays_ts, gone_ts, gone_ts + 1};
    gc_write(w, "g", rcpt, ts, uas, tags, 3);
}

static void test_forget_texts(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *w = open_store(state), *d = open_store(state);
    gc_setup(w, 100, 102);
    assert_int_equal(1, gc_agents(fx, "Solo/1.0"));
    assert_int_equal(1, gc_sets(fx, "solo-tag"));
    int64_t deleted = -1;
    assert_int_equal(0, d->ops->forget(d, "gone@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(2, deleted);
    /* Nobody else's: gone with the person. Shared: kept. */
    assert_int_equal(0, gc_agents(fx, "Solo/1.0"));
    assert_int_equal(0, gc_sets(fx, "solo-tag"));
    assert_int_equal(1, gc_agents(fx, "Shared/2.0"));
    assert_int_equal(1, gc_sets(fx, "shared-tag"));
    assert_int_equal(0, gc_dangling(fx));
    gc_write_again(fx, w);
    sp_store_close(d);
    sp_store_close(w);
}

static void test_retention_texts(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *w = open_store(state), *d = open_store(state);
    gc_setup(w, 100, 5000);
    int64_t deleted = -1;
    assert_int_equal(0, d->ops->purge_before(d, 1000, &deleted, err, sizeof(err)));
    assert_int_equal(2, deleted);
    assert_int_equal(0, gc_agents(fx, "Solo/1.0"));
    assert_int_equal(0, gc_sets(fx, "solo-tag"));
    assert_int_equal(1, gc_agents(fx, "Shared/2.0"));
    assert_int_equal(1, gc_sets(fx, "shared-tag"));
    assert_int_equal(0, gc_dangling(fx));
    gc_write_again(fx, w);
    sp_store_close(d);
    sp_store_close(w);
}

/* Texts whose refs (schema 18) are not the number of events that name them. */
static int64_t refs_wrong(fixture_t *fx)
{
    return raw_int(fx, "SELECT (SELECT count(*) FROM agents a WHERE refs <>"
                       " (SELECT count(*) FROM events WHERE agent = a.id)) + (SELECT count(*)"
                       " FROM header_sets h WHERE refs <> (SELECT count(*) FROM events"
                       " WHERE header_set = h.id))");
}

/* SQLite counts each text's events instead of indexing events by text: the counts follow
 * every write (texts repeated within a batch and across batches, likely forwards written after
 * the batch's events) and every deletion, and the last deletion takes the text. */
static void test_sqlite_text_refs(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *w = open_store(state), *d = open_store(state);
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM sqlite_master WHERE type = 'index'"
                                    " AND tbl_name = 'events' AND (sql LIKE '%(agent)%'"
                                    " OR sql LIKE '%(header_set)%')"));
    gc_setup(w, 100, 102);
    const char *rcpt[] = {"stays", "other", "gone@example.com"},
               *uas[] = {"Shared/2.0", "Shared/2.0", "Solo/1.0"},
               *tags[] = {"shared-tag", "shared-tag", "solo-tag"};
    const int64_t ts[] = {200, 201, 202};
    gc_write(w, "g", rcpt, ts, uas, tags, 3);
    create(w, "fwd", 1);
    sp_event_t *b1[] = {reader_open("Chrome", "Windows", "203.0.113.7", H, 0)};
    write_events(w, b1, 1);
    sp_event_t *b2[] = {reader_open("Firefox", "Linux", "198.51.100.9", H, 63),
                        reader_open("Mobile Safari", "iOS", "2001:db8:1::5", H, 64)};
    write_events(w, b2, 2);
    char sql[128];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM events WHERE kind = %d", SP_EVENT_FORWARD);
    assert_true(raw_int(fx, sql) >= 1);
    sp_event_free(b1[0]);
    sp_event_free(b2[0]);
    sp_event_free(b2[1]);
    assert_int_equal(4, raw_int(fx, "SELECT refs FROM agents WHERE text = 'Shared/2.0'"));
    assert_int_equal(2, raw_int(fx, "SELECT refs FROM agents WHERE text = 'Solo/1.0'"));
    assert_int_equal(0, refs_wrong(fx));
    assert_int_equal(raw_int(fx, "SELECT count(*) FROM events"),
                     raw_int(fx, "SELECT sum(refs) FROM header_sets"));

    int64_t deleted = -1;
    assert_int_equal(0, d->ops->forget(d, "gone@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(3, deleted);
    assert_int_equal(0, gc_agents(fx, "Solo/1.0"));
    assert_int_equal(0, gc_sets(fx, "solo-tag"));
    assert_int_equal(0, refs_wrong(fx));
    assert_int_equal(0, d->ops->purge_before(d, 150, &deleted, err, sizeof(err)));
    assert_int_equal(1, deleted);
    assert_int_equal(2, raw_int(fx, "SELECT refs FROM agents WHERE text = 'Shared/2.0'"));
    assert_int_equal(0, refs_wrong(fx));
    gc_write_again(fx, w);
    assert_int_equal(0, refs_wrong(fx));
    assert_int_equal(1, d->ops->campaign_delete(d, "nothing", &deleted, err, sizeof(err)));
    assert_int_equal(0, d->ops->campaign_delete(d, "fwd", &deleted, err, sizeof(err)));
    assert_int_equal(0, refs_wrong(fx));
    assert_int_equal(0, d->ops->campaign_delete(d, "g", &deleted, err, sizeof(err)));
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM events"));
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM agents"));
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM header_sets"));
    sp_store_close(d);
    sp_store_close(w);
}

/* The recipients' rows keyed by campaign and recipient, WITHOUT ROWID, as schema 26 had them
 * (the migrations run again). */
#define UNDO_SCHEMA_27                                                                             \
    "CREATE TABLE recipients_keyed(campaign TEXT NOT NULL, recipient TEXT NOT NULL,"               \
    " human INTEGER NOT NULL DEFAULT 0, proxy INTEGER NOT NULL DEFAULT 0,"                         \
    " machine INTEGER NOT NULL DEFAULT 0, self INTEGER NOT NULL DEFAULT 0,"                        \
    " clicks INTEGER NOT NULL DEFAULT 0, first_at INTEGER NOT NULL DEFAULT 0,"                     \
    " last_at INTEGER NOT NULL DEFAULT 0, first_client TEXT NOT NULL DEFAULT '',"                  \
    " first_network TEXT NOT NULL DEFAULT '', first_human_at INTEGER NOT NULL DEFAULT 0,"          \
    " forward_clients TEXT NOT NULL DEFAULT '', event_ids TEXT NOT NULL DEFAULT '',"               \
    " PRIMARY KEY(campaign, recipient)) WITHOUT ROWID;"                                            \
    "INSERT INTO recipients_keyed SELECT campaign, recipient, human, proxy, machine, self, "       \
    "clicks,"                                                                                      \
    " first_at, last_at, first_client, first_network, first_human_at, forward_clients, event_ids"  \
    " FROM recipients;"                                                                            \
    "DROP TABLE recipients; ALTER TABLE recipients_keyed RENAME TO recipients;"

/* The rows of dim 0 without their opener's first hour, as schema 25 had them. */
#define UNDO_SCHEMA_26 "ALTER TABLE rollup_values DROP COLUMN first_hour;"

/* Each opener's first hour in rollup_values again, as schema 24 had it (the migrations run
 * again), counted from its events. First: the people's rows are still where schema 25 has them. */
#define UNDO_SCHEMA_25                                                                             \
    "INSERT INTO rollup_values(campaign, dim, hour, value, n) SELECT p.campaign, 0, p.first_hour," \
    " p.who, (SELECT COUNT(*) FROM events e WHERE e.campaign = p.campaign AND " SP_TALLY_OPEN_SQL  \
    " AND " SP_TALLY_COUNTED_SQL " AND e.ts / 3600000 = p.first_hour AND (" SP_TALLY_WHO_SQL       \
    ") = p.who) FROM " SP_ROLLUP_PEOPLE_SQL " p WHERE dim = 0;"

#define UNDO_SCHEMA_24                                                                             \
    "ALTER TABLE recipients DROP COLUMN event_ids; DROP TABLE recipient_events;"                   \
    "CREATE INDEX events_campaign_recipient ON events(campaign, recipient, id)"                    \
    " WHERE recipient <> '';"

/* The named openers' rows of rollup_people as schema 22 had them (the migrations run again),
 * and their hours counted again from them: the recipients' rows count as theirs. */
#define UNDO_SCHEMA_23                                                                             \
    "INSERT INTO rollup_people(campaign, dim, who, first_hour, last_hour)"                         \
    " SELECT campaign, 0, recipient, first_at / 3600000, last_at / 3600000 FROM recipients"        \
    " WHERE first_at > 0 AND " SP_ROLLUP_NAMED_SQL(                                                \
        "recipient") ";"                                                                           \
                     "DELETE FROM rollup_people_hours; " SP_ROLLUP_PEOPLE_HOURS_FILL

/* Every hour in the days and totals as they were written, as schema 21 had them (the
 * migrations run again): the hours not folded yet added to them. */
#define UNDO_SCHEMA_22                                                                             \
    "INSERT INTO rollup_days AS r(campaign, dim, day, value, n) SELECT campaign, dim, hour / 24,"  \
    " value, SUM(n) FROM rollup_values WHERE dim BETWEEN 1 AND 6"                                  \
    " AND hour >= " SP_ROLLUP_FOLDED_SQL " GROUP BY campaign, dim, hour / 24, value"               \
    " ON CONFLICT(campaign, dim, day, value) DO UPDATE SET n = r.n + excluded.n;"                  \
    "INSERT INTO rollup_totals AS r(campaign, dim, value, n) SELECT campaign, dim, value, SUM(n)"  \
    " FROM rollup_values WHERE dim BETWEEN 1 AND 6 AND hour >= " SP_ROLLUP_FOLDED_SQL              \
    " GROUP BY campaign, dim, value"                                                               \
    " ON CONFLICT(campaign, dim, value) DO UPDATE SET n = r.n + excluded.n;"                       \
    "DELETE FROM meta WHERE key = '" SP_ROLLUP_FOLDED_KEY "';"

/* SQLite's events by campaign and time as schema 20 had them (the migrations run again). */
#define UNDO_SCHEMA_21                                                                             \
    "DROP TABLE events_quarters;"                                                                  \
    "CREATE INDEX events_campaign_ts ON events(campaign, ts);"

/* The people by hour as schema 19 had them (the migrations run again from an older version). */
#define UNDO_SCHEMA_20                                                                             \
    "DROP TABLE rollup_people_hours;"                                                              \
    "CREATE INDEX rollup_people_first ON rollup_people(campaign, dim, first_hour);"                \
    "CREATE INDEX rollup_people_last ON rollup_people(campaign, dim, last_hour);"

/* A store of schema 17 (texts found through events_agent and events_header_set) counts the
 * events of each text as it moves to 18, and deletes texts with their last event from then on. */
static void test_sqlite_text_refs_migrated(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *w = open_store(state);
    gc_setup(w, 100, 102);
    const char *rcpt[] = {"other"}, *uas[] = {"Shared/2.0"}, *tags[] = {"shared-tag"};
    const int64_t ts[] = {200};
    gc_write(w, "g", rcpt, ts, uas, tags, 1);
    /* And an open of a later hour: a row of dim 0 that schema 26 names the first hour of. */
    const char *later_uas[] = {"Later/1.0"}, *later_tags[] = {"later-tag"};
    const int64_t later[] = {200 + 2 * 3600000};
    gc_write(w, "g", rcpt, later, later_uas, later_tags, 1);
    sp_store_close(w);
    raw_sql(
        fx,
        "ALTER TABLE agents DROP COLUMN refs; ALTER TABLE header_sets DROP COLUMN refs;"
        "CREATE INDEX events_agent ON events(agent) WHERE agent IS NOT NULL;"
        "CREATE INDEX events_header_set ON events(header_set) WHERE header_set IS NOT "
        "NULL;" UNDO_SCHEMA_27
        "CREATE INDEX recipients_recipient ON recipients(recipient);" UNDO_SCHEMA_26 UNDO_SCHEMA_25
            UNDO_SCHEMA_24 UNDO_SCHEMA_23 UNDO_SCHEMA_20 UNDO_SCHEMA_21 UNDO_SCHEMA_22
        "PRAGMA user_version = 17;",
        "");
    w = open_store(state);
    sp_store_t *d = open_store(state);
    assert_int_equal(27, raw_int(fx, "PRAGMA user_version"));
    /* Schema 27: the recipients' rows by rowid, unique by their key. */
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM sqlite_master WHERE name = 'recipients'"
                                    " AND sql LIKE '%WITHOUT ROWID%'"));
    assert_true(raw_int(fx, "SELECT count(*) FROM recipients WHERE rowid > 0") > 0);
    assert_int_equal(1, raw_int(fx, "SELECT count(*) FROM pragma_index_list('recipients')"
                                    " WHERE \"unique\" = 1"));
    /* Schema 26: every row of dim 0 names its opener's first hour (check_rollup_derived). */
    assert_true(raw_int(fx, "SELECT count(*) FROM rollup_values WHERE dim = 0") > 0);
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM rollup_values WHERE dim = 0"
                                    " AND first_hour IS NULL"));
    /* Schema 25: no opener's first hour among the hours' rows (check_rollup_derived, below). */
    assert_int_equal(0,
                     raw_int(fx, "SELECT count(*) FROM rollup_values v JOIN " SP_ROLLUP_PEOPLE_SQL
                                 " p ON p.campaign = v.campaign"
                                 " AND p.dim = 0 AND p.who = v.value"
                                 " AND p.first_hour = v.hour WHERE v.dim = 0"));
    /* Schema 24: each recipient's events listed in its row, the index gone. */
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM sqlite_master"
                                    " WHERE name = 'events_campaign_recipient'"));
    check_recipient_events(state);
    /* Schema 23: the named openers' hours in their recipients' rows only. */
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM rollup_people WHERE dim = 0"
                                    " AND " SP_ROLLUP_NAMED_SQL("who")));
    /* Schema 22: every hour stored so far folded into the days and totals. */
    assert_int_equal(raw_int(fx, "SELECT MAX(hour) + 1 FROM rollup_values"),
                     raw_int(fx, "SELECT " SP_ROLLUP_FOLDED_SQL));
    /* Schema 21: the events' quarter hours from their rows, the index by time gone. */
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM sqlite_master"
                                    " WHERE name = 'events_campaign_ts'"));
    assert_true(raw_int(fx, "SELECT count(*) FROM events_quarters") > 0);
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM sqlite_master"
                                    " WHERE name = 'recipients_recipient'"));
    /* Schema 20: the people counted by hour from their rows, the indexes gone. */
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                    " ('rollup_people_first', 'rollup_people_last')"));
    assert_true(raw_int(fx, "SELECT count(*) FROM rollup_people_hours") > 0);
    check_rollup_derived(state);
    check_event_quarters(state);
    check_recipient_events(state);
    assert_int_equal(3, raw_int(fx, "SELECT refs FROM agents WHERE text = 'Shared/2.0'"));
    assert_int_equal(1, raw_int(fx, "SELECT refs FROM agents WHERE text = 'Solo/1.0'"));
    assert_int_equal(0, refs_wrong(fx));
    assert_int_equal(0, raw_int(fx, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                    " ('events_agent', 'events_header_set')"));
    int64_t deleted = -1;
    assert_int_equal(0, d->ops->forget(d, "gone@example.com", &deleted, err, sizeof(err)));
    assert_int_equal(2, deleted);
    assert_int_equal(0, gc_agents(fx, "Solo/1.0"));
    assert_int_equal(0, gc_sets(fx, "solo-tag"));
    assert_int_equal(1, gc_agents(fx, "Shared/2.0"));
    assert_int_equal(1, gc_sets(fx, "shared-tag"));
    assert_int_equal(0, gc_dangling(fx));
    assert_int_equal(0, refs_wrong(fx));
    gc_write_again(fx, w);
    assert_int_equal(0, refs_wrong(fx));
    sp_store_close(d);
    sp_store_close(w);
}

/* PostgreSQL drops a week's partition whole: the texts only its rows named go with it. */
static void test_pg_partition_texts(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *w = open_store(state), *d = open_store(state);
    int64_t wk = week_of(sp_now_ms());
    gc_setup(w, wk - 3 * WEEK_MS + 3600000, wk + 3600000);
    char gone[64];
    week_name(wk - 3 * WEEK_MS, gone, sizeof(gone));
    assert_true(pg_true(fx, PARTITION_OF, gone));
    int64_t deleted = -1;
    assert_int_equal(0, d->ops->purge_before(d, wk - WEEK_MS, &deleted, err, sizeof(err)));
    assert_int_equal(2, deleted);
    assert_false(pg_true(fx, PARTITION_OF, gone));
    assert_int_equal(0, gc_agents(fx, "Solo/1.0"));
    assert_int_equal(0, gc_sets(fx, "solo-tag"));
    assert_int_equal(1, gc_agents(fx, "Shared/2.0"));
    assert_int_equal(1, gc_sets(fx, "shared-tag"));
    gc_write_again(fx, w);
    sp_store_close(d);
    sp_store_close(w);
}

typedef struct {
    sp_store_t *s;
    int rc;
    char err[512];
} gc_racer_t;

static void *gc_racer(void *arg)
{
    gc_racer_t *r = arg;
    const spec_t sp = {"g", "late", OPEN, H, 90002, NULL, "Solo/1.0", NULL};
    sp_event_t *ev = make_event(&sp);
    if (0 != sp_event_add_header(ev, "X-Client-Tag", 12, "solo-tag", 8))
        abort();
    r->rc = r->s->ops->write_batch(r->s, &ev, 1, NULL, r->err, sizeof(r->err));
    sp_event_free(ev);
    return NULL;
}

/* A deletion that commits while a writer's batch names a text by the ID its cache holds: the
 * writer waits for it before its commit, sees the texts' deletions moved on, and writes the
 * batch again with the text stored anew. Done by hand here (the lock taken as a deletion takes
 * it, the rows deleted, the number moved on) to be in the middle of the batch for sure. */
static void test_pg_intern_race(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *w = open_store(state);
    gc_setup(w, 100, 102);
    int64_t old = raw_int(fx, "SELECT id FROM agents WHERE text = 'Solo/1.0'");
    char sql[512];
    snprintf(sql, sizeof(sql), "SET search_path = %s", fx->schema);
    assert_int_equal(0, pg_cmd(fx->admin, sql));
    assert_int_equal(0, pg_cmd(fx->admin, "BEGIN"));
    assert_int_equal(0, pg_cmd(fx->admin, "SELECT pg_advisory_xact_lock(8318282035466102126)"));
    gc_racer_t r = {.s = w};
    pthread_t t;
    assert_int_equal(0, pthread_create(&t, NULL, gc_racer, &r));
    /* Until the writer waits for the lock (a writer that does not would have committed). */
    for (int i = 0; i < 100; i++) {
        PGresult *res = PQexec(fx->admin, "SELECT count(*) FROM pg_locks WHERE locktype ="
                                          " 'advisory' AND NOT granted");
        bool waits =
            PGRES_TUPLES_OK == PQresultStatus(res) && 0 != strcmp("0", PQgetvalue(res, 0, 0));
        PQclear(res);
        if (waits)
            break;
        usleep(20000);
    }
    snprintf(sql, sizeof(sql),
             "DELETE FROM events WHERE agent = %lld; DELETE FROM agents WHERE id = %lld;"
             "UPDATE meta SET value = (value::bigint + 1)::text WHERE key = 'intern_gen'",
             (long long)old, (long long)old);
    assert_int_equal(0, pg_cmd(fx->admin, sql));
    assert_int_equal(0, pg_cmd(fx->admin, "COMMIT"));
    assert_int_equal(0, pthread_join(t, NULL));
    if (r.rc)
        print_error("write_batch: %s\n", r.err);
    assert_int_equal(0, r.rc);
    assert_int_equal(0, pg_cmd(fx->admin, "SET search_path = public"));
    assert_int_equal(0, gc_dangling(fx));
    gc_reads(w, "late", "Solo/1.0", "solo-tag");
    sp_store_close(w);
}

enum { RACERS = 2, RACE_ROUNDS = 4, RACE_EVENTS = 20 };

typedef struct racer {
    fixture_t *fx;
    pthread_barrier_t *start;
    int failures;
    char err[512];
} racer_t;

/* Each round, every racer writes a batch into a week that has no partition yet, at once. */
static int64_t race_ts(int round, int i)
{
    return week_of(sp_now_ms()) - (int64_t)(40 + round) * WEEK_MS + i * 1000;
}

static void *racer_main(void *arg)
{
    racer_t *r = arg;
    sp_store_t *s = try_open(r->fx, r->err, sizeof(r->err));
    for (int round = 0; round < RACE_ROUNDS; round++) {
        sp_event_t *evs[RACE_EVENTS];
        for (int i = 0; i < RACE_EVENTS; i++) {
            spec_t sp = {"race", "r", OPEN, H, race_ts(round, i), NULL, NULL, NULL};
            evs[i] = make_event(&sp);
        }
        pthread_barrier_wait(r->start);
        if (!s || 0 != s->ops->write_batch(s, evs, RACE_EVENTS, NULL, r->err, sizeof(r->err)))
            r->failures++;
        for (int i = 0; i < RACE_EVENTS; i++)
            sp_event_free(evs[i]);
    }
    if (s)
        sp_store_close(s);
    return NULL;
}

/* Two servers making the same partition at once: both batches are stored, one partition. */
static void test_pg_partition_race(void **state)
{
    fixture_t *fx = *state;
    sp_store_t *s = open_store(state);
    create(s, "race", 1);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, RACERS);
    racer_t r[RACERS];
    pthread_t t[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (racer_t){.fx = fx, .start = &start};
        assert_int_equal(0, pthread_create(&t[i], NULL, racer_main, &r[i]));
    }
    for (int i = 0; i < RACERS; i++) {
        assert_int_equal(0, pthread_join(t[i], NULL));
        if (r[i].failures)
            print_error("racer %d: %d failures, last: %s\n", i, r[i].failures, r[i].err);
        assert_int_equal(0, r[i].failures);
    }
    pthread_barrier_destroy(&start);
    for (int round = 0; round < RACE_ROUNDS; round++) {
        char name[64];
        week_name(race_ts(round, 0), name, sizeof(name));
        for (int i = 0; i < RACE_EVENTS; i++)
            assert_partition(fx, race_ts(round, i), name, RACERS);
    }
    assert_int_equal(RACERS * RACE_ROUNDS * RACE_EVENTS, get_campaign(s, "race").total_views);
    sp_store_close(s);
}

/* A store of the schema before partitions (events one table, its key the ID alone) is
 * partitioned when the new code opens it: its rows stay where they are, in events_legacy, a
 * future-dated one moves to the default partition, the IDs go on, and retention drops the old
 * table once all of it is past the cut. */
static void test_pg_migrate_partitions(void **state)
{
    fixture_t *fx = *state;
    char err[512] = "";
    sp_store_t *s = open_store(state);
    create(s, "m", 1);
    int64_t now = sp_now_ms(), ahead = now + 60 * DAY_MS;
    const spec_t specs[] = {
        {"m", "a", OPEN, H, now - 60 * DAY_MS, NULL, NULL, NULL},
        {"m", "b", CLICK, H, now - DAY_MS, NULL, NULL, NULL},
        {"m", "c", OPEN, H, now, NULL, NULL, NULL},
        {"m", "d", OPEN, H, ahead, NULL, NULL, NULL},
    };
    write_specs(s, specs, 4, NULL);
    got_events_t *before = list_events(s, "m", 0, 100);
    assert_int_equal(4, before->n);
    sp_store_close(s);

    /* The events table as schema 15 had it, with the same columns and rows. */
    raw_sql(fx, "",
            "ALTER TABLE events RENAME TO events_p;"
            "CREATE TABLE events (LIKE events_p INCLUDING DEFAULTS);"
            "INSERT INTO events SELECT * FROM events_p;"
            "ALTER SEQUENCE events_id_seq OWNED BY NONE; DROP TABLE events_p;"
            "ALTER SEQUENCE events_id_seq OWNED BY events.id;"
            "ALTER TABLE events ADD PRIMARY KEY (id);"
            "CREATE INDEX events_campaign ON events(campaign, id);"
            "CREATE INDEX events_ts ON events(ts);"
            "CREATE INDEX events_campaign_ts ON events(campaign, ts);"
            "CREATE INDEX events_clicks ON events(campaign, target) WHERE kind = 1;"
            "CREATE INDEX events_campaign_recipient ON events(campaign, recipient, id)"
            " WHERE recipient <> '';" UNDO_SCHEMA_20
            "DROP TRIGGER rollup_people_added ON rollup_people;"
            "DROP TRIGGER rollup_people_moved ON rollup_people;"
            "UPDATE spypixel_schema SET version = 15;");
    assert_true(
        pg_true(fx, "SELECT relkind = '%s' FROM pg_class WHERE oid = 'events'::regclass", "r"));

    s = try_open(fx, err, sizeof(err));
    if (!s)
        print_error("open: %s\n", err);
    assert_non_null(s);
    assert_true(
        pg_true(fx, "SELECT relkind = '%s' FROM pg_class WHERE oid = 'events'::regclass", "p"));
    assert_true(pg_true(fx, PARTITION_OF, "events_legacy"));
    for (int i = 0; i < 3; i++)
        assert_partition(fx, specs[i].ts, "events_legacy", 1);
    assert_partition(fx, ahead, "events_default", 1);
    /* Each index of the old table serves its partition of the new one's. */
    char *n = pg_value(fx, "SELECT count(*) FROM pg_inherits i JOIN pg_class c"
                           " ON c.oid = i.inhrelid WHERE c.relname LIKE '%%legacy'"
                           " AND i.inhparent IN ('events_campaign'::regclass,"
                           " 'events_ts'::regclass, 'events_campaign_ts'::regclass,"
                           " 'events_clicks'::regclass, 'events_campaign_recipient'::regclass)");
    assert_string_equal("5", n);
    free(n);
    /* Schema 20 from the people's rows, its triggers there and the indexes gone. */
    check_rollup_derived(state);
    check_event_quarters(state);
    check_recipient_events(state);
    assert_true(pg_true(fx,
                        "SELECT count(*) = 2 AND bool_and(tgname LIKE '%s') FROM pg_trigger"
                        " WHERE tgrelid = 'rollup_people'::regclass",
                        "rollup_people_%"));
    assert_true(pg_true(fx, "SELECT to_regclass('%s') IS NULL", "rollup_people_first"));
    got_events_t *after = list_events(s, "m", 0, 100);
    assert_int_equal(before->n, after->n);
    for (size_t i = 0; i < after->n; i++) {
        assert_int_equal(before->e[i].id, after->e[i].id);
        assert_int_equal(before->e[i].ts, after->e[i].ts);
    }
    got_events_free(after);

    /* An event of this week goes to the old table, which covers the week: the writer, finding
     * the week covered, goes on to make the next week's partition. */
    const spec_t now_again = {"m", "c", OPEN, H, now + 1, NULL, NULL, NULL};
    write_specs(s, &now_again, 1, NULL);
    assert_partition(fx, now + 1, "events_legacy", 1);
    char name[64];
    week_name(now + WEEK_MS, name, sizeof(name));
    assert_true(pg_true(fx, PARTITION_OF, name));

    /* New events go to their weeks' partitions, their IDs after the old ones. */
    int64_t next = week_of(now) + WEEK_MS + 3600000;
    const spec_t more = {"m", "e", OPEN, H, next, NULL, NULL, NULL};
    write_specs(s, &more, 1, NULL);
    week_name(next, name, sizeof(name));
    assert_partition(fx, next, name, 1);
    after = list_events(s, "m", 0, 1);
    assert_true(after->e[0].id > before->e[0].id);
    got_events_free(after);

    /* Once all of it is past the cut, the old table goes whole; the sequence stays. */
    int64_t deleted = -1;
    assert_int_equal(0,
                     s->ops->purge_before(s, week_of(now) + WEEK_MS, &deleted, err, sizeof(err)));
    assert_int_equal(4, deleted);
    assert_false(pg_true(fx, "SELECT to_regclass('%s') IS NOT NULL", "events_legacy"));
    const spec_t last = {"m", "f", OPEN, H, next + 1, NULL, NULL, NULL};
    write_specs(s, &last, 1, NULL);
    after = list_events(s, "m", 0, 100);
    assert_int_equal(3, after->n);
    assert_string_equal("f", after->e[0].recipient);
    got_events_free(after);
    got_events_free(before);
    sp_store_close(s);
}

#define SQLITE_ONLY(fn)                                                                            \
    {                                                                                              \
#fn "/sqlite", fn, setup, teardown, (void *)&sqlite_backend                                \
    }

#define PG_ONLY(fn)                                                                                \
    {                                                                                              \
#fn "/postgres", fn, setup, teardown, (void *)&pg_backend                                  \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        BOTH(test_check_clean),
        SQLITE_ONLY(test_sqlite_damaged),
        SQLITE_ONLY(test_sqlite_shm_fault),
        SQLITE_ONLY(test_sqlite_page_size),
        SQLITE_ONLY(test_sqlite_wal_bound),
        SQLITE_ONLY(test_sqlite_wal_large_commits),
        SQLITE_ONLY(test_recipient_page_plan),
        BOTH(test_open_twice),
        BOTH(test_open_concurrent),
        BOTH(test_campaign_create),
        BOTH(test_batch_outcomes),
        BOTH(test_read_fold),
        BOTH(test_likely_forward),
        BOTH(test_recipient_many_events),
        BOTH(test_writer_kept_rows),
        BOTH(test_event_ids_in_order),
        SQLITE_ONLY(test_sqlite_batch_fails_whole),
        BOTH(test_big_batch),
        BOTH(test_counters),
        BOTH(test_events_paging),
        BOTH(test_recipients_paging),
        BOTH(test_campaign_list),
        BOTH(test_purge_before),
        BOTH(test_forget),
        BOTH(test_campaign_delete),
        BOTH(test_report),
        BOTH(test_events_by_time),
        BOTH(test_report_ranking),
        BOTH(test_report_folded_hours),
        SQLITE_ONLY(test_sqlite_people_left),
        BOTH(test_report_openers_ends),
        BOTH(test_writer_counts),
        BOTH(test_recipients_unclean),
        BOTH(test_sent_list),
        BOTH(test_campaign_archive),
        BOTH(test_trackers_links),
        BOTH(test_queries),
        BOTH(test_auth_and_meta),
        BOTH(test_hostile_strings),
        BOTH(test_event_columns),
        BOTH(test_one_text),
        BOTH(test_export_bytes),
        BOTH(test_event_fields_vary),
        BOTH(test_recipient_rowid_again),
        BOTH(test_export_reading),
        BOTH(test_export_many_texts),
        BOTH(test_export_meanwhile),
        SQLITE_ONLY(test_export_ahead_fails),
        SQLITE_ONLY(test_export_no_thread),
        BOTH(test_writer_and_reader),
        BOTH(test_concurrent_writers),
        BOTH(test_reconnect),
        BOTH(test_journal_mark),
        BOTH(test_unknown_kept),
        BOTH(test_unknown_limits),
        BOTH(test_unknown_adopt),
        BOTH(test_unknown_auto_create),
        BOTH(test_unknown_privacy),
        BOTH(test_users_and_tokens),
        BOTH(test_scrub_old_store),
        BOTH(test_interned),
        BOTH(test_forget_texts),
        BOTH(test_retention_texts),
        SQLITE_ONLY(test_sqlite_text_refs),
        SQLITE_ONLY(test_sqlite_text_refs_migrated),
        PG_ONLY(test_pg_partitions),
        PG_ONLY(test_pg_partition_retention),
        PG_ONLY(test_pg_partition_texts),
        PG_ONLY(test_pg_intern_race),
        PG_ONLY(test_pg_partition_race),
        PG_ONLY(test_pg_migrate_partitions),
    };
    if (!getenv("SPYPIXEL_TEST_PG"))
        print_message("test_store: SPYPIXEL_TEST_PG is unset, so the PostgreSQL half skips\n");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
