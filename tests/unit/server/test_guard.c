/* test_guard: request-head deadline, per-address cap, shedding and lingering close on sockets. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "guard.h"

/* One connection: the server's end (the guard's fd, as libmicrohttpd's would be) and the
 * client's end, which the test reads. */
typedef struct {
    sp_guard_conn_t c;
    int server, client;
} conn_t;

static struct sockaddr_in peer(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(40000)};
    assert_int_equal(1, inet_pton(AF_INET, ip, &a.sin_addr));
    return a;
}

static void open_conn_as(sp_guard_t *g, conn_t *k, const char *ip, bool quiet)
{
    int sv[2];
    assert_int_equal(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    memset(k, 0, sizeof(*k));
    k->server = sv[0];
    k->client = sv[1];
    fcntl(k->client, F_SETFL, O_NONBLOCK);
    struct sockaddr_in a = peer(ip);
    sp_guard_opened(g, &k->c, k->server, (struct sockaddr *)&a, quiet);
}

static void open_conn(sp_guard_t *g, conn_t *k, const char *ip)
{
    open_conn_as(g, k, ip, false);
}

/* libmicrohttpd's part: the close notification, then the close. */
static void close_conn(sp_guard_t *g, conn_t *k)
{
    sp_guard_closed(g, &k->c);
    close(k->server);
    close(k->client);
}

/* What the client end holds now; *EOF when the server end was shut down. */
static size_t client_read(conn_t *k, char *buf, size_t len, bool *eof)
{
    size_t n = 0;
    *eof = false;
    for (;;) {
        ssize_t r = recv(k->client, buf + n, len - 1 - n, 0);
        if (r > 0) {
            n += (size_t)r;
            continue;
        }
        *eof = 0 == r;
        break;
    }
    buf[n] = '\0';
    return n;
}

static void test_overdue_head_gets_408(void **state)
{
    (void)state;
    sp_guard_options_t opt = {.head_timeout_ms = 1000};
    sp_guard_t *g = sp_guard_new(&opt);
    conn_t slow, quick;
    open_conn(g, &slow, "192.0.2.1");
    open_conn(g, &quick, "192.0.2.2");
    sp_guard_busy(g, &quick.c); /* its request came in */
    int64_t now = sp_guard_now_ms();
    char buf[256];
    bool eof;

    sp_guard_sweep(g, now + 500);
    assert_int_equal(0, client_read(&slow, buf, sizeof(buf), &eof));
    assert_false(eof);

    sp_guard_sweep(g, now + 1100);
    client_read(&slow, buf, sizeof(buf), &eof);
    assert_non_null(strstr(buf, "HTTP/1.1 408 "));
    assert_non_null(strstr(buf, "Connection: close"));
    assert_true(eof);
    assert_true(slow.c.closing);
    /* A connection being served has no deadline. */
    assert_int_equal(0, client_read(&quick, buf, sizeof(buf), &eof));
    assert_false(eof);

    close_conn(g, &slow);
    close_conn(g, &quick);
    sp_guard_free(g);
}

static void test_tls_connection_closed_without_answer(void **state)
{
    (void)state;
    sp_guard_options_t opt = {.head_timeout_ms = 1000};
    sp_guard_t *g = sp_guard_new(&opt);
    conn_t k;
    open_conn_as(g, &k, "192.0.2.1", true);
    char buf[256];
    bool eof;
    sp_guard_sweep(g, sp_guard_now_ms() + 1100);
    assert_int_equal(0, client_read(&k, buf, sizeof(buf), &eof)); /* no bytes outside TLS */
    assert_true(eof);
    close_conn(g, &k);
    sp_guard_free(g);
}

static void test_idle_keepalive_closed_silently(void **state)
{
    (void)state;
    sp_guard_options_t opt = {.head_timeout_ms = 1000};
    sp_guard_t *g = sp_guard_new(&opt);
    conn_t k;
    open_conn(g, &k, "192.0.2.1");
    sp_guard_busy(g, &k.c);
    sp_guard_idle(g, &k.c); /* answered; waits for its next request */
    int64_t now = sp_guard_now_ms();
    char buf[256];
    bool eof;
    sp_guard_sweep(g, now + 500);
    assert_int_equal(0, client_read(&k, buf, sizeof(buf), &eof));
    assert_false(eof);
    sp_guard_sweep(g, now + 1100);
    assert_int_equal(0, client_read(&k, buf, sizeof(buf), &eof)); /* no 408 on a reused one */
    assert_true(eof);
    close_conn(g, &k);
    sp_guard_free(g);
}

static void test_per_address_cap(void **state)
{
    (void)state;
    sp_net_cidr_t proxy;
    assert_int_equal(0, sp_net_parse_cidr("198.51.100.0/24", &proxy));
    sp_guard_options_t opt = {.per_ip_max = 2, .exempt = &proxy, .n_exempt = 1};
    sp_guard_t *g = sp_guard_new(&opt);
    struct sockaddr_in a = peer("192.0.2.1"), b = peer("192.0.2.2"), p = peer("198.51.100.7");
    conn_t k[5];
    assert_true(sp_guard_allow(g, (struct sockaddr *)&a));
    open_conn(g, &k[0], "192.0.2.1");
    assert_true(sp_guard_allow(g, (struct sockaddr *)&a));
    open_conn(g, &k[1], "192.0.2.1");
    assert_false(sp_guard_allow(g, (struct sockaddr *)&a));
    assert_true(sp_guard_allow(g, (struct sockaddr *)&b));
    /* A trusted proxy carries everybody's connections. */
    open_conn(g, &k[2], "198.51.100.7");
    open_conn(g, &k[3], "198.51.100.7");
    open_conn(g, &k[4], "198.51.100.7");
    assert_true(sp_guard_allow(g, (struct sockaddr *)&p));
    close_conn(g, &k[0]);
    assert_true(sp_guard_allow(g, (struct sockaddr *)&a));
    for (int i = 1; i < 5; i++)
        close_conn(g, &k[i]);
    sp_guard_free(g);
}

typedef struct {
    sp_guard_t *g;
    struct sockaddr_in addr;
    bool allowed;
} admit_t;

static void *admit_main(void *arg)
{
    admit_t *a = arg;
    a->allowed = sp_guard_allow(a->g, (struct sockaddr *)&a->addr);
    return NULL;
}

/* sp_guard_allow on another thread (as a second request thread accepting at once). */
static bool allow_elsewhere(sp_guard_t *g, const char *ip)
{
    admit_t a = {g, peer(ip), false};
    pthread_t t;
    assert_int_equal(0, pthread_create(&t, NULL, admit_main, &a));
    assert_int_equal(0, pthread_join(t, NULL));
    return a.allowed;
}

/* Two request threads accepting from one address at once cannot both take its last place:
 * an admission holds the place until its connection is opened, and a place admitted but
 * never opened is let go at that thread's next admission. */
static void test_per_address_cap_between_threads(void **state)
{
    (void)state;
    sp_guard_options_t opt = {.per_ip_max = 1};
    sp_guard_t *g = sp_guard_new(&opt);
    struct sockaddr_in a = peer("192.0.2.1"), b = peer("192.0.2.2");
    conn_t k;
    assert_true(sp_guard_allow(g, (struct sockaddr *)&a)); /* this thread, not yet opened */
    assert_false(allow_elsewhere(g, "192.0.2.1"));         /* another thread at the same time */
    open_conn(g, &k, "192.0.2.1");
    assert_false(allow_elsewhere(g, "192.0.2.1"));
    close_conn(g, &k);
    assert_true(sp_guard_allow(g, (struct sockaddr *)&a)); /* admitted, never opened */
    assert_false(allow_elsewhere(g, "192.0.2.1"));
    assert_true(sp_guard_allow(g, (struct sockaddr *)&b)); /* this thread's next admission */
    assert_true(allow_elsewhere(g, "192.0.2.1"));
    sp_guard_free(g);
}

static void test_oldest_waiting_shed_near_the_limit(void **state)
{
    (void)state;
    /* 8 per thread: shedding starts above 7. */
    sp_guard_options_t opt = {.thread_max = 8};
    sp_guard_t *g = sp_guard_new(&opt);
    conn_t k[10];
    char buf[256];
    bool eof;
    for (int i = 0; i < 7; i++)
        open_conn(g, &k[i], "192.0.2.1");
    sp_guard_busy(g, &k[0].c); /* being served: never shed */
    for (int i = 0; i < 7; i++) {
        assert_int_equal(0, client_read(&k[i], buf, sizeof(buf), &eof));
        assert_false(eof);
    }
    open_conn(g, &k[7], "192.0.2.9"); /* the 8th: the oldest waiting one (k[1]) goes */
    client_read(&k[1], buf, sizeof(buf), &eof);
    assert_non_null(strstr(buf, "HTTP/1.1 503 "));
    assert_non_null(strstr(buf, "Retry-After:"));
    assert_true(eof);
    for (int i = 2; i < 8; i++) {
        assert_int_equal(0, client_read(&k[i], buf, sizeof(buf), &eof));
        assert_false(eof);
    }
    /* k[1] is shut down but not closed yet: it no longer counts, so the 9th sheds one more
     * (k[2]) and no other. */
    open_conn(g, &k[8], "192.0.2.9");
    client_read(&k[2], buf, sizeof(buf), &eof);
    assert_true(eof);
    assert_int_equal(0, client_read(&k[3], buf, sizeof(buf), &eof));
    assert_false(eof);
    assert_int_equal(0, client_read(&k[8], buf, sizeof(buf), &eof));
    assert_false(eof);
    for (int i = 0; i < 9; i++)
        close_conn(g, &k[i]);
    /* With every other connection busy, a new one is never shed to make room for itself. */
    for (int i = 0; i < 8; i++) {
        open_conn(g, &k[i], "192.0.2.1");
        sp_guard_busy(g, &k[i].c);
    }
    open_conn(g, &k[8], "192.0.2.1");
    assert_int_equal(0, client_read(&k[8], buf, sizeof(buf), &eof));
    assert_false(eof);
    for (int i = 0; i < 9; i++)
        close_conn(g, &k[i]);
    sp_guard_free(g);
}

static void test_lingering_close_drains(void **state)
{
    (void)state;
    sp_guard_options_t opt = {0};
    sp_guard_t *g = sp_guard_new(&opt);
    conn_t k;
    open_conn(g, &k, "192.0.2.1");
    assert_int_equal(5, send(k.server, "HTTP!", 5, 0)); /* the early answer */
    sp_guard_linger(&k.c);
    sp_guard_closed(g, &k.c);
    close(k.server); /* libmicrohttpd's close: the guard's own descriptor keeps it open */

    char body[32 * 1024], buf[64];
    memset(body, 'x', sizeof(body));
    assert_int_equal((ssize_t)sizeof(body), send(k.client, body, sizeof(body), MSG_NOSIGNAL));
    bool eof;
    client_read(&k, buf, sizeof(buf), &eof);
    assert_string_equal(buf, "HTTP!");
    assert_true(eof); /* the answer is complete */
    sp_guard_sweep(g, sp_guard_now_ms());
    assert_int_equal((ssize_t)sizeof(body), send(k.client, body, sizeof(body), MSG_NOSIGNAL));
    sp_guard_sweep(g, sp_guard_now_ms() + 60000); /* its time is up: closed */
    errno = 0;
    assert_int_equal(-1, send(k.client, body, sizeof(body), MSG_NOSIGNAL));
    assert_int_equal(EPIPE, errno);
    close(k.client);
    sp_guard_free(g);
}

static void test_sweeper_thread(void **state)
{
    (void)state;
    sp_guard_options_t opt = {.head_timeout_ms = 200, .sweep_ms = 20};
    sp_guard_t *g = sp_guard_new(&opt);
    conn_t k;
    open_conn(g, &k, "192.0.2.1");
    char buf[256];
    bool eof = false;
    for (int i = 0; i < 300 && !eof; i++) {
        usleep(10000);
        client_read(&k, buf, sizeof(buf), &eof);
    }
    assert_true(eof);
    close_conn(g, &k);
    sp_guard_free(g);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overdue_head_gets_408),
        cmocka_unit_test(test_tls_connection_closed_without_answer),
        cmocka_unit_test(test_idle_keepalive_closed_silently),
        cmocka_unit_test(test_per_address_cap),
        cmocka_unit_test(test_per_address_cap_between_threads),
        cmocka_unit_test(test_oldest_waiting_shed_near_the_limit),
        cmocka_unit_test(test_lingering_close_drains),
        cmocka_unit_test(test_sweeper_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
