/* Unit tests for webhook: the JSON it POSTs for a stored event, its signature, which events
 * it leaves out, its retries and giving up; against a loopback HTTP receiver in the test. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "webhook.h"

/* ---- a receiver: one request per connection, answered with the status it is told ------ */

#define POSTS_MAX 16

typedef struct receiver {
    int fd;
    unsigned port;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t got;
    int statuses[POSTS_MAX]; /* the answer to the Nth POST (0: 200) */
    int n_posts;
    char *bodies[POSTS_MAX];
    char signature[POSTS_MAX][128];
    char content_type[POSTS_MAX][64];
    char path[POSTS_MAX][64];
} receiver_t;

/* The value of header NAME in HEAD (the request's head) into BUF, or "". */
static void header(const char *head, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    for (const char *line = strstr(head, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
        const char *p = line + 2;
        size_t n = strlen(name);
        if (0 == strncasecmp(p, name, n) && ':' == p[n]) {
            p += n + 1;
            while (' ' == *p)
                p++;
            size_t v = strcspn(p, "\r");
            snprintf(buf, len, "%.*s", (int)v, p);
            return;
        }
    }
}

static void serve_one(receiver_t *r, int c)
{
    char buf[65536];
    size_t len = 0;
    char *end = NULL;
    while (!end && len < sizeof(buf) - 1) {
        ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    if (!end)
        return;
    *end = '\0';
    char value[128];
    header(buf, "Content-Length", value, sizeof(value));
    size_t want = (size_t)strtoul(value, NULL, 10), have = len - (size_t)(end + 4 - buf);
    header(buf, "Expect", value, sizeof(value));
    if (0 == strcasecmp(value, "100-continue")) {
        static const char go_on[] = "HTTP/1.1 100 Continue\r\n\r\n";
        if (write(c, go_on, sizeof(go_on) - 1) < 0)
            return;
    }
    char *body = malloc(want + 1);
    assert_non_null(body);
    memcpy(body, end + 4, have < want ? have : want);
    while (have < want) {
        ssize_t n = read(c, body + have, want - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    body[have] = '\0';

    pthread_mutex_lock(&r->lock);
    int i = r->n_posts;
    int status = i < POSTS_MAX && r->statuses[i] ? r->statuses[i] : 200;
    if (i < POSTS_MAX) {
        r->bodies[i] = body;
        header(buf, "X-Spypixel-Signature", r->signature[i], sizeof(r->signature[i]));
        header(buf, "Content-Type", r->content_type[i], sizeof(r->content_type[i]));
        snprintf(r->path[i], sizeof(r->path[i]), "%.*s", (int)strcspn(buf, "\r"), buf);
        r->n_posts++;
    } else {
        free(body);
    }
    pthread_cond_broadcast(&r->got);
    pthread_mutex_unlock(&r->lock);

    char answer[128];
    int n = snprintf(answer, sizeof(answer),
                     "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status);
    if (write(c, answer, (size_t)n) < 0)
        return;
}

static void *receiver_main(void *arg)
{
    receiver_t *r = arg;
    for (;;) {
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            return NULL; /* the listening socket was shut down */
        serve_one(r, c);
        close(c);
    }
}

static receiver_t *receiver_start(void)
{
    receiver_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(0, bind(r->fd, (struct sockaddr *)&a, sizeof(a)));
    assert_int_equal(0, listen(r->fd, 16));
    assert_int_equal(0, getsockname(r->fd, (struct sockaddr *)&a, &alen));
    r->port = ntohs(a.sin_port);
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->got, NULL);
    assert_int_equal(0, pthread_create(&r->thread, NULL, receiver_main, r));
    return r;
}

/* Waits (at most 20 s, far past any retry schedule) until N POSTs came; how many did. */
static int receiver_wait(receiver_t *r, int n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&r->lock);
    while (r->n_posts < n && 0 == pthread_cond_timedwait(&r->got, &r->lock, &until))
        ;
    int got = r->n_posts;
    pthread_mutex_unlock(&r->lock);
    return got;
}

static void receiver_stop(receiver_t *r)
{
    shutdown(r->fd, SHUT_RDWR);
    pthread_join(r->thread, NULL);
    close(r->fd);
    for (int i = 0; i < r->n_posts; i++)
        free(r->bodies[i]);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->got);
    free(r);
}

/* ---- the hook ---------------------------------------------------------------------------- */

static sp_webhook_t *hook_start(receiver_t *r, bool first_only, const char *secret, char *url,
                                size_t len)
{
    static char *urls[1];
    snprintf(url, len, "http://127.0.0.1:%u/hook", r->port);
    urls[0] = url;
    sp_webhook_options_t opt = {
        .urls = urls,
        .n_urls = 1,
        .first_only = first_only,
        .secret = secret,
        .timeout_ms = 5000,
    };
    char err[256];
    sp_webhook_t *w = sp_webhook_start(&opt, err, sizeof(err));
    assert_non_null(w);
    return w;
}

static sp_event_t *stored(const char *recipient, sp_event_kind_t kind, bool first)
{
    sp_event_t *ev = sp_event_new(1024);
    ev->id = 7;
    ev->ts_ms = 1767225600000; /* 2026-01-01 */
    ev->kind = kind;
    snprintf(ev->campaign, sizeof(ev->campaign), "news");
    snprintf(ev->recipient, sizeof(ev->recipient), "%s", recipient);
    ev->first_view = first;
    ev->outcome = SP_OUTCOME_STORED;
    return ev;
}

static void test_posts_json_signed(void **state)
{
    (void)state;
    receiver_t *r = receiver_start();
    char url[64];
    const char *secret = "s3cret";
    sp_webhook_t *w = hook_start(r, false, secret, url, sizeof(url));
    sp_event_t *evs[] = {stored("ann@example.com", SP_EVENT_OPEN, true),
                         stored("bob@example.com", SP_EVENT_CLICK, false),
                         stored("eve@example.com", SP_EVENT_OPEN, true)};
    evs[2]->outcome = SP_OUTCOME_UNKNOWN_CAMPAIGN; /* kept apart: no notification */
    sp_webhook_on_commit(w, evs, 3);
    assert_int_equal(2, receiver_wait(r, 2));
    sp_webhook_stop(w, 1000);

    assert_string_equal(r->path[0], "POST /hook HTTP/1.1");
    assert_string_equal(r->content_type[0], "application/json");
    json_t *j = json_loads(r->bodies[0], 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "open");
    assert_true(json_is_true(json_object_get(j, "first_view")));
    json_t *ev = json_object_get(j, "event");
    assert_string_equal(json_string_value(json_object_get(ev, "campaign")), "news");
    assert_string_equal(json_string_value(json_object_get(ev, "recipient")), "ann@example.com");
    assert_int_equal(json_integer_value(json_object_get(ev, "id")), 7);
    json_decref(j);
    j = json_loads(r->bodies[1], 0, NULL);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "click");
    assert_true(json_is_false(json_object_get(j, "first_view")));
    json_decref(j);

    /* X-Spypixel-Signature: sha256= the HMAC-SHA256 of the body with the secret. */
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char want[16 + 2 * sizeof(mac)] = "sha256=";
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)secret, strlen(secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)r->bodies[0], strlen(r->bodies[0]));
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(want + 7, sizeof(want) - 7, mac, sizeof(mac));
    assert_string_equal(r->signature[0], want);

    for (size_t i = 0; i < 3; i++)
        sp_event_free(evs[i]);
    receiver_stop(r);
}

static void test_first_only_unsigned(void **state)
{
    (void)state;
    receiver_t *r = receiver_start();
    char url[64];
    sp_webhook_t *w = hook_start(r, true, "", url, sizeof(url));
    sp_event_t *evs[] = {stored("ann@example.com", SP_EVENT_OPEN, false),
                         stored("bob@example.com", SP_EVENT_OPEN, true)};
    sp_webhook_on_commit(w, evs, 2);
    assert_int_equal(1, receiver_wait(r, 1));
    sp_webhook_stop(w, 1000); /* delivers what is queued first */
    assert_int_equal(1, r->n_posts);
    assert_non_null(strstr(r->bodies[0], "bob@example.com"));
    assert_string_equal(r->signature[0], ""); /* no secret, no signature */
    for (size_t i = 0; i < 2; i++)
        sp_event_free(evs[i]);
    receiver_stop(r);
}

/* A receiver that fails twice, then takes it: the same body three times, counted as sent. */
static void test_retries(void **state)
{
    (void)state;
    receiver_t *r = receiver_start();
    r->statuses[0] = 500;
    r->statuses[1] = 503;
    char url[64];
    uint64_t sent = sp_metrics.webhooks_sent, failed = sp_metrics.webhooks_failed;
    sp_webhook_t *w = hook_start(r, false, "", url, sizeof(url));
    sp_event_t *ev = stored("ann@example.com", SP_EVENT_OPEN, true);
    sp_webhook_on_commit(w, &ev, 1);
    assert_int_equal(3, receiver_wait(r, 3));
    sp_webhook_stop(w, 5000);
    assert_int_equal(3, r->n_posts);
    assert_string_equal(r->bodies[0], r->bodies[1]);
    assert_string_equal(r->bodies[0], r->bodies[2]);
    assert_int_equal(sp_metrics.webhooks_sent, sent + 1);
    assert_int_equal(sp_metrics.webhooks_failed, failed);
    sp_event_free(ev);
    receiver_stop(r);
}

/* A receiver that always fails: SP_WEBHOOK_TRIES deliveries, then the notification is given
 * up and counted. */
static void test_gives_up(void **state)
{
    (void)state;
    receiver_t *r = receiver_start();
    for (int i = 0; i < POSTS_MAX; i++)
        r->statuses[i] = 500;
    char url[64];
    uint64_t sent = sp_metrics.webhooks_sent, failed = sp_metrics.webhooks_failed;
    sp_webhook_t *w = hook_start(r, false, "", url, sizeof(url));
    sp_event_t *ev = stored("ann@example.com", SP_EVENT_OPEN, true);
    sp_webhook_on_commit(w, &ev, 1);
    assert_int_equal(SP_WEBHOOK_TRIES, receiver_wait(r, SP_WEBHOOK_TRIES));
    sp_webhook_stop(w, 10000); /* the last try's answer is taken in before it stops */
    assert_int_equal(SP_WEBHOOK_TRIES, r->n_posts);
    assert_int_equal(sp_metrics.webhooks_failed, failed + 1);
    assert_int_equal(sp_metrics.webhooks_sent, sent);
    sp_event_free(ev);
    receiver_stop(r);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_posts_json_signed),
        cmocka_unit_test(test_first_only_unsigned),
        cmocka_unit_test(test_retries),
        cmocka_unit_test(test_gives_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
