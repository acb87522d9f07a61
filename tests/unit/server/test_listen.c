/* test_listen: --listen addresses: their forms, their errors, the URLs made from them. */
/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "listen.h"

static sp_listen_t parsed(const char *text, bool tls_default)
{
    sp_listen_t l;
    char err[256] = "";
    if (0 != sp_listen_parse(text, tls_default, &l, err, sizeof(err)))
        fail_msg("'%s' did not parse: %s", text, err);
    return l;
}

static void url_is(const char *text, bool tls_default, const char *want)
{
    sp_listen_t l = parsed(text, tls_default);
    char url[160];
    sp_listen_url(&l, url, sizeof(url));
    if (0 != strcmp(want, url))
        fail_msg("'%s' makes '%s', want '%s'", text, url, want);
}

static void test_forms(void **state)
{
    sp_listen_t l = parsed("127.0.0.1:8080", false);
    assert_false(l.tls);
    assert_false(l.any);
    assert_int_equal(8080, l.port);
    assert_int_equal(AF_INET, l.addr.ss_family);
    assert_true(parsed("127.0.0.1:8443", true).tls);
    assert_false(parsed("http://127.0.0.1:80", true).tls);
    assert_true(parsed("https://127.0.0.1:443", false).tls);
    l = parsed(":443", false);
    assert_true(l.any);
    assert_int_equal(AF_INET6, l.addr.ss_family);
    l = parsed("https://[::1]:8443", false);
    assert_true(l.tls);
    assert_false(l.any);
    assert_int_equal(AF_INET6, l.addr.ss_family);
    assert_true(parsed("[::]:80", false).any);
    assert_int_equal(AF_INET, parsed("localhost:1", false).addr.ss_family);

    url_is("127.0.0.1:8080", false, "http://127.0.0.1:8080");
    url_is("https://127.0.0.1:443", false, "https://127.0.0.1");
    url_is("http://:80", true, "http://localhost");
    url_is(":8443", true, "https://localhost:8443");
    url_is("[::1]:8080", false, "http://[::1]:8080");
}

static void test_errors(void **state)
{
    const char *bad[] = {"nowhere",        "127.0.0.1",          "127.0.0.1:",
                         "127.0.0.1:http", "127.0.0.1:65536",    "127.0.0.1:-1",
                         "example.com:80", "ftp://127.0.0.1:21", "https://127.0.0.1:443/path",
                         "[::1:80",        "1.2.3:80",           ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sp_listen_t l;
        char err[256] = "";
        if (0 == sp_listen_parse(bad[i], false, &l, err, sizeof(err)))
            fail_msg("'%s' parsed", bad[i]);
        assert_non_null(strstr(err, "--listen"));
    }
    char big[300];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sp_listen_t l;
    char err[256];
    assert_int_equal(-1, sp_listen_parse(big, false, &l, err, sizeof(err)));
}

static void test_open(void **state)
{
    char err[256] = "";
    sp_listen_t l = parsed("127.0.0.1:0", false);
    int fd = sp_listen_open(&l, 16, err, sizeof(err));
    assert_true(fd >= 0);
    struct sockaddr_in got;
    socklen_t len = sizeof(got);
    assert_int_equal(0, getsockname(fd, (struct sockaddr *)&got, &len));

    /* The same port again: in use, said in words. */
    char text[64];
    snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(got.sin_port));
    sp_listen_t again = parsed(text, false);
    assert_int_equal(-1, sp_listen_open(&again, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "address already in use"));
    assert_non_null(strstr(err, text));
    close(fd);

    /* An address this machine does not have. */
    sp_listen_t foreign = parsed("192.0.2.1:8080", false);
    assert_int_equal(-1, sp_listen_open(&foreign, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "192.0.2.1:8080"));
}

static unsigned port_of(int fd)
{
    struct sockaddr_in got;
    socklen_t len = sizeof(got);
    assert_int_equal(0, getsockname(fd, (struct sockaddr *)&got, &len));
    return ntohs(got.sin_port);
}

/* Connects to 127.0.0.1:PORT (blocking), or -1. */
static int connect_to(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && 0 != connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One listening socket per request thread: all on one port, each accepting its share, and
 * the port as much in use for anybody else as one socket makes it. */
static void test_open_group(void **state)
{
    (void)state;
    char err[256] = "";
    enum { N = 4, CLIENTS = 64 };
    int fds[N];
    sp_listen_t l = parsed("127.0.0.1:0", false);
    assert_int_equal(0, sp_listen_open_group(&l, 128, fds, N, err, sizeof(err)));
    unsigned port = port_of(fds[0]);
    assert_true(port > 0);
    for (int i = 1; i < N; i++)
        assert_int_equal(port, port_of(fds[i]));

    /* Every connection is queued on exactly one of them. */
    int clients[CLIENTS], accepted = 0, used = 0;
    for (int i = 0; i < CLIENTS; i++)
        assert_true((clients[i] = connect_to(port)) >= 0);
    for (int i = 0; i < N; i++) {
        int n = 0, c;
        while ((c = accept(fds[i], NULL, NULL)) >= 0) { /* non-blocking: until EAGAIN */
            close(c);
            n++;
        }
        assert_int_equal(EAGAIN, errno);
        accepted += n;
        used += n > 0;
    }
    assert_int_equal(CLIENTS, accepted);
    assert_true(used > 1); /* spread, not all on one (64 connections over 4: never) */
    for (int i = 0; i < CLIENTS; i++)
        close(clients[i]);

    /* Another server on the port, with one socket or a group of its own, is refused. */
    char text[64];
    snprintf(text, sizeof(text), "127.0.0.1:%u", port);
    sp_listen_t again = parsed(text, false);
    assert_int_equal(-1, sp_listen_open(&again, 16, err, sizeof(err)));
    assert_non_null(strstr(err, "address already in use"));
    int other[N];
    assert_int_equal(-1, sp_listen_open_group(&again, 16, other, N, err, sizeof(err)));
    assert_non_null(strstr(err, "address already in use"));
    assert_non_null(strstr(err, text));
    for (int i = 0; i < N; i++)
        close(fds[i]);

    /* And a group does not start on a port somebody else holds. */
    int one = sp_listen_open(&l, 16, err, sizeof(err));
    assert_true(one >= 0);
    snprintf(text, sizeof(text), "127.0.0.1:%u", port_of(one));
    sp_listen_t held = parsed(text, false);
    assert_int_equal(-1, sp_listen_open_group(&held, 16, other, N, err, sizeof(err)));
    assert_non_null(strstr(err, "address already in use"));
    close(one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_open),
        cmocka_unit_test(test_open_group),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
