/* Unit tests for pixel, the tracking endpoints: each handler reached as the core hands it a
 * request (the http module serving pixel's routes alone on a loopback port), its answer, and
 * the journal record it writes (or not). */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "enrich.h"
#include "http.h"
#include "ingest.h"
#include "journal.h"
#include "metrics.h"
#include "pixel.h"

static const unsigned char secret_key[SP_AUTH_KEY_BYTES] = "spypixel test key, not a secret";

/* One server: pixel's routes in the http core, its journal in a folder of its own. */
typedef struct server {
    sp_config_t cfg;
    char dir[64];
    sp_journal_t *journal;
    sp_auth_t *auth;
    sp_token_t *tokens;
    sp_pixel_t *pixel;
    sp_http_t *http;
    unsigned port;
} server_t;

/* The journal and the keys; then server_serve. AFTER_STORE: --answer-after store. */
static void server_open(server_t *s, bool anonymize, bool sync_full, bool after_store)
{
    char err[512];
    memset(s, 0, sizeof(*s));
    sp_config_defaults(&s->cfg);
    free(s->cfg.listen[0]);
    s->cfg.listen[0] = strdup("127.0.0.1:0");
    s->cfg.threads = 1;
    s->cfg.anonymize_ip = anonymize;
    s->cfg.sync_full = sync_full;
    s->cfg.answer_after_store = after_store;
    snprintf(s->dir, sizeof(s->dir), "/tmp/spypixel-test-pixel-XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    snprintf(s->cfg.data_dir, sizeof(s->cfg.data_dir), "%s", s->dir);
    sp_journal_options_t jopt = {
        .dir = s->dir,
        .sync = sync_full,
        .synced = sp_http_resume, /* parked answers, as the server has it */
    };
    s->journal = sp_journal_open(&jopt, err, sizeof(err));
    assert_non_null(s->journal);
    s->auth = sp_auth_new(secret_key, 0);
    s->tokens = sp_token_new(secret_key);
}

/* Serves pixel's routes, with INGEST (NULL without --answer-after store). */
static void server_serve(server_t *s, sp_ingest_t *ingest)
{
    char err[512];
    sp_pixel_options_t opt = {
        .cfg = &s->cfg,
        .journal = s->journal,
        .ingest = ingest,
        .auth = s->auth,
        .tokens = s->tokens,
    };
    s->pixel = sp_pixel_new(&opt);
    sp_http_routes_t routes = {0};
    sp_pixel_routes(&routes, s->pixel);
    s->http = sp_http_start(&s->cfg, &routes, err, sizeof(err));
    assert_non_null(s->http);
    s->port = sp_http_port(s->http, 0);
    assert_true(s->port > 0);
}

static void server_start(server_t *s, bool anonymize, bool sync_full)
{
    server_open(s, anonymize, sync_full, false);
    server_serve(s, NULL);
}

/* Stops serving, then INGEST (NULL: none), which reads the journal, then closes the rest. */
static void server_stop(server_t *s, sp_ingest_t *ingest)
{
    sp_http_quiesce(s->http);
    assert_int_equal(0, sp_http_drain(s->http, 5000));
    sp_http_stop(s->http);
    sp_pixel_free(s->pixel);
    sp_ingest_stop(ingest);
    sp_journal_close(s->journal);
    sp_token_free(s->tokens);
    sp_auth_free(s->auth);
    sp_config_free(&s->cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
    assert_int_equal(0, system(cmd));
}

/* One answer: its status, its head and its body. */
typedef struct answer {
    int status;
    char head[4096];
    unsigned char body[4096];
    size_t body_len;
} answer_t;

/* Sends METHOD PATH with the lines of HEADERS ("Name: value\r\n"...) over a new connection
 * and reads the whole answer into A. */
static void request(const server_t *s, const char *method, const char *path, const char *headers,
                    answer_t *a)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)s->port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(0, connect(fd, (struct sockaddr *)&addr, sizeof(addr)));
    /* An answer that never comes (a parked request nobody resumes) fails the test. */
    struct timeval wait = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
    char req[4096];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test-agent/1.0\r\n"
                     "%sConnection: close\r\n\r\n",
                     method, path, headers ? headers : "");
    assert_int_equal(n, write(fd, req, (size_t)n));
    static unsigned char buf[16384];
    size_t len = 0;
    ssize_t got;
    while ((got = read(fd, buf + len, sizeof(buf) - len)) > 0)
        len += (size_t)got;
    close(fd);
    memset(a, 0, sizeof(*a));
    unsigned char *end = memmem(buf, len, "\r\n\r\n", 4);
    assert_non_null(end);
    size_t head = (size_t)(end - buf);
    assert_true(head < sizeof(a->head));
    memcpy(a->head, buf, head);
    a->status = atoi(a->head + 9);
    a->body_len = len - head - 4;
    assert_true(a->body_len <= sizeof(a->body));
    memcpy(a->body, end + 4, a->body_len);
}

/* The value of header NAME in A's head into BUF; false when there is none. */
static bool answer_header(const answer_t *a, const char *name, char *buf, size_t len)
{
    for (const char *line = strstr(a->head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        size_t n = strlen(name);
        if (0 == strncasecmp(p, name, n) && ':' == p[n]) {
            p += n + 1;
            while (' ' == *p)
                p++;
            snprintf(buf, len, "%.*s", (int)strcspn(p, "\r"), p);
            return true;
        }
    }
    return false;
}

/* Every record in the journal, decoded, into EVS (at most MAX): how many. */
static size_t journal_events(server_t *s, sp_event_t **evs, size_t max)
{
    char err[256];
    sp_journal_cursor_t *c =
        sp_journal_cursor_new(s->journal, sp_journal_start(s->journal), err, sizeof(err));
    assert_non_null(c);
    size_t n = 0;
    const void *payload;
    size_t len;
    int64_t end;
    while (1 == sp_journal_next(c, &payload, &len, &end, err, sizeof(err))) {
        assert_true(n < max);
        evs[n] = sp_event_decode(payload, len);
        assert_non_null(evs[n]);
        n++;
    }
    sp_journal_cursor_free(c);
    return n;
}

static void free_events(sp_event_t **evs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sp_event_free(evs[i]);
}

static void assert_gif(const answer_t *a)
{
    char type[64];
    assert_int_equal(a->status, 200);
    assert_true(answer_header(a, "Content-Type", type, sizeof(type)));
    assert_string_equal(type, "image/gif");
    assert_int_equal(a->body_len, sizeof(sp_pixel_gif));
    assert_memory_equal(a->body, sp_pixel_gif, sizeof(sp_pixel_gif));
}

static void test_seed_records_then_answers(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, false, false);
    answer_t a;
    request(&s, "GET", "/spy-pixel.gif?campaign=news&email=ann%40example.com",
            "Referer: https://mail.example/\r\n", &a);
    assert_gif(&a);
    char cookie[256], visitor[64] = "";
    assert_true(answer_header(&a, "Set-Cookie", cookie, sizeof(cookie)));
    assert_int_equal(0, strncmp(cookie, "spv=", 4));
    snprintf(visitor, sizeof(visitor), "%.*s", (int)strcspn(cookie + 4, ";"), cookie + 4);
    assert_int_equal(strlen(visitor), 32);

    sp_event_t *evs[4];
    size_t n = journal_events(&s, evs, 4);
    assert_int_equal(n, 1);
    assert_int_equal(evs[0]->kind, SP_EVENT_OPEN);
    assert_string_equal(evs[0]->campaign, "news");
    assert_string_equal(evs[0]->recipient, "ann@example.com");
    assert_string_equal(evs[0]->ip, "127.0.0.1");
    assert_string_equal(evs[0]->user_agent, "test-agent/1.0");
    assert_string_equal(evs[0]->referer, "https://mail.example/");
    assert_string_equal(evs[0]->visitor, visitor); /* the cookie it was given */
    assert_true(evs[0]->ts_ms > 0);
    free_events(evs, n);

    /* The visitor cookie it sends back names the same visitor, and none is set again. */
    char sent[128];
    snprintf(sent, sizeof(sent), "Cookie: spv=%s\r\n", visitor);
    request(&s, "GET", "/spy-pixel.gif?campaign=news", sent, &a);
    assert_gif(&a);
    assert_false(answer_header(&a, "Set-Cookie", cookie, sizeof(cookie)));
    n = journal_events(&s, evs, 4);
    assert_int_equal(n, 2);
    assert_string_equal(evs[1]->visitor, visitor);
    assert_string_equal(evs[1]->recipient, "");
    free_events(evs, n);
    server_stop(&s, NULL);
}

/* Bad IDs, HEAD: the image all the same, and nothing recorded. */
static void test_nothing_recorded(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, false, false);
    uint64_t invalid = sp_metrics.opens_invalid;
    answer_t a;
    const char *paths[] = {"/spy-pixel.gif", "/spy-pixel.gif?campaign=bad%20id",
                           "/spy-pixel.gif?campaign=news&email=%3Cscript%3E", "/o/forged.gif",
                           "/o/"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        request(&s, "GET", paths[i], NULL, &a);
        assert_gif(&a);
    }
    assert_int_equal(sp_metrics.opens_invalid, invalid + 5);
    request(&s, "HEAD", "/spy-pixel.gif?campaign=news", NULL, &a);
    assert_int_equal(a.status, 200);
    sp_event_t *evs[4];
    assert_int_equal(0, journal_events(&s, evs, 4));
    server_stop(&s, NULL);
}

static void test_opaque_and_click(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, false, false);
    char token[SP_TOKEN_MAX], path[SP_TOKEN_MAX + 16];
    sp_token_data_t open = {.kind = SP_TOKEN_OPEN, .campaign = "spring", .recipient = "bob"};
    assert_int_equal(0, sp_token_seal(s.tokens, &open, token, sizeof(token)));
    snprintf(path, sizeof(path), "/o/%s.gif", token);
    answer_t a;
    request(&s, "GET", path, NULL, &a);
    assert_gif(&a);

    sp_token_data_t click = {.kind = SP_TOKEN_CLICK,
                             .campaign = "spring",
                             .recipient = "bob",
                             .extra = "https://example.com/offer?a=1"};
    assert_int_equal(0, sp_token_seal(s.tokens, &click, token, sizeof(token)));
    snprintf(path, sizeof(path), "/c/%s", token);
    request(&s, "GET", path, NULL, &a);
    char location[256];
    assert_int_equal(a.status, 302);
    assert_true(answer_header(&a, "Location", location, sizeof(location)));
    assert_string_equal(location, "https://example.com/offer?a=1");

    /* An open token is no link, and a forged link gets no Location. */
    assert_int_equal(0, sp_token_seal(s.tokens, &open, token, sizeof(token)));
    snprintf(path, sizeof(path), "/c/%s", token);
    request(&s, "GET", path, NULL, &a);
    assert_int_equal(a.status, 404);
    assert_false(answer_header(&a, "Location", location, sizeof(location)));

    sp_event_t *evs[4];
    size_t n = journal_events(&s, evs, 4);
    assert_int_equal(n, 2);
    assert_int_equal(evs[0]->kind, SP_EVENT_OPEN);
    assert_string_equal(evs[0]->campaign, "spring");
    assert_string_equal(evs[0]->recipient, "bob");
    assert_int_equal(evs[1]->kind, SP_EVENT_CLICK);
    assert_string_equal(evs[1]->target, "https://example.com/offer?a=1");
    free_events(evs, n);
    server_stop(&s, NULL);
}

/* --anonymize-ip: neither the address nor a header that carries one is kept. */
static void test_anonymize(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, true, false);
    answer_t a;
    request(&s, "GET", "/spy-pixel.gif?campaign=news", "X-Forwarded-For: 198.51.100.23\r\n", &a);
    assert_gif(&a);
    sp_event_t *evs[4];
    size_t n = journal_events(&s, evs, 4);
    assert_int_equal(n, 1);
    assert_string_equal(evs[0]->ip, "127.0.0.0");
    bool seen = false;
    for (size_t i = 0; i < evs[0]->n_headers; i++)
        if (0 == strcasecmp(evs[0]->headers[i].name, "X-Forwarded-For")) {
            seen = true;
            assert_null(strstr(evs[0]->headers[i].value, "198.51.100.23"));
        }
    assert_true(seen);
    free_events(evs, n);
    server_stop(&s, NULL);
}

/* --sync-full: the answer is parked until the journal's syncer has the record on disk, then
 * resumed (sp_http_resume) and sent. */
static void test_sync_full_parks(void **state)
{
    (void)state;
    server_t s;
    server_start(&s, false, true);
    answer_t a;
    for (int i = 0; i < 3; i++) {
        request(&s, "GET", "/spy-pixel.gif?campaign=news&email=ann%40example.com", NULL, &a);
        assert_gif(&a);
    }
    sp_event_t *evs[4];
    size_t n = journal_events(&s, evs, 4);
    assert_int_equal(n, 3);
    free_events(evs, n);
    server_stop(&s, NULL);
}

/* ---- --answer-after store: a fake store behind the store interface, held shut ---------- */

typedef struct gate_store {
    sp_store_t base;
    pthread_mutex_t lock;
    pthread_cond_t open;
    bool is_open;
    size_t stored;
    char mark[64];
} gate_store_t;

static int gate_write(sp_store_t *b, sp_event_t **evs, size_t n, const sp_store_mark_t *mark,
                      char *err, size_t errlen)
{
    gate_store_t *g = (gate_store_t *)b;
    pthread_mutex_lock(&g->lock);
    while (!g->is_open && n)
        pthread_cond_wait(&g->open, &g->lock);
    for (size_t i = 0; i < n; i++) {
        evs[i]->outcome = SP_OUTCOME_STORED;
        evs[i]->id = (int64_t)++g->stored;
    }
    if (mark)
        snprintf(g->mark, sizeof(g->mark), "%s", mark->value);
    pthread_mutex_unlock(&g->lock);
    return 0;
}

static int gate_meta_get(sp_store_t *b, const char *key, char *value, size_t len, char *err,
                         size_t errlen)
{
    gate_store_t *g = (gate_store_t *)b;
    pthread_mutex_lock(&g->lock);
    int rc = g->mark[0] ? 0 : 1;
    snprintf(value, len, "%s", g->mark);
    pthread_mutex_unlock(&g->lock);
    return rc;
}

static sp_store_failure_t gate_failure(sp_store_t *b, char *why, size_t len)
{
    if (why)
        snprintf(why, len, "no fault");
    return SP_STORE_FAIL_DATA; /* never asked: no call fails */
}

static void gate_close(sp_store_t *b)
{
}

static const sp_store_ops_t gate_ops = {
    .name = "gate",
    .close = gate_close,
    .write_batch = gate_write,
    .meta_get = gate_meta_get,
    .failure = gate_failure,
};

typedef struct pending {
    const server_t *s;
    answer_t a;
    pthread_t thread;
} pending_t;

static void *pending_main(void *arg)
{
    pending_t *p = arg;
    request(p->s, "GET", "/spy-pixel.gif?campaign=news&email=ann%40example.com", NULL, &p->a);
    return NULL;
}

/* --answer-after store: the answer is parked until the writer has the open in the store,
 * then resumed (sp_ingest_notify, sp_http_resume) and sent. */
static void test_answer_after_store_parks(void **state)
{
    (void)state;
    char err[256];
    sp_config_t ecfg;
    sp_config_defaults(&ecfg);
    ecfg.no_geoip = true;
    sp_enrich_t *enrich = sp_enrich_open(&ecfg, err, sizeof(err));
    sp_config_free(&ecfg);
    assert_non_null(enrich);
    gate_store_t gate = {.base.ops = &gate_ops};
    pthread_mutex_init(&gate.lock, NULL);
    pthread_cond_init(&gate.open, NULL);

    server_t s;
    server_open(&s, false, false, true);
    sp_ingest_options_t iopt = {
        .journal = s.journal,
        .store = &gate.base,
        .enrich = enrich,
        .indexed = sp_http_resume,
        .answers_wait = true,
    };
    sp_ingest_t *in = sp_ingest_start(&iopt, err, sizeof(err));
    assert_non_null(in);
    server_serve(&s, in);

    pending_t p = {.s = &s};
    assert_int_equal(0, pthread_create(&p.thread, NULL, pending_main, &p));
    /* Recorded in the journal, not answered: the store holds nothing yet. */
    for (int i = 0; i < 1000 && sp_journal_end(s.journal) == sp_journal_start(s.journal); i++)
        usleep(10000);
    usleep(200000);
    assert_int_equal(p.a.status, 0);
    pthread_mutex_lock(&gate.lock);
    gate.is_open = true;
    pthread_cond_broadcast(&gate.open);
    pthread_mutex_unlock(&gate.lock);
    pthread_join(p.thread, NULL);
    assert_gif(&p.a);
    assert_int_equal(gate.stored, 1);

    server_stop(&s, in);
    sp_enrich_close(enrich);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seed_records_then_answers),
        cmocka_unit_test(test_nothing_recorded),
        cmocka_unit_test(test_opaque_and_click),
        cmocka_unit_test(test_anonymize),
        cmocka_unit_test(test_sync_full_parks),
        cmocka_unit_test(test_answer_after_store_parks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
