/* listen: the addresses the server listens on, parsed and bound with errors in words. */
/* SPDX-License-Identifier: MIT */
#include "listen.h"
#include "text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sp_listen_parse(const char *text, bool tls_default, sp_listen_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (strlen(text) >= sizeof(out->text)) {
        snprintf(err, errlen, "--listen: address too long: '%.40s...'", text);
        return -1;
    }
    snprintf(out->text, sizeof(out->text), "%s", text);
    const char *p = text;
    out->tls = tls_default;
    if (sp_has_prefix(p, "https://")) {
        out->tls = true;
        p += SP_LIT_LEN("https://");
    } else if (sp_has_prefix(p, "http://")) {
        out->tls = false;
        p += SP_LIT_LEN("http://");
    }
    const char *colon = strrchr(p, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon[1] < '0' || colon[1] > '9' || *end || port < 0 || port > 65535 ||
        strchr(colon, '/')) {
        snprintf(err, errlen,
                 "--listen: expected HOST:PORT, http://HOST:PORT or https://HOST:PORT, got '%s'",
                 text);
        return -1;
    }
    out->port = (unsigned)port;
    char host[sizeof(out->host)];
    size_t hl = (size_t)(colon - p);
    if (hl >= sizeof(host))
        hl = sizeof(host) - 1;
    memcpy(host, p, hl);
    host[hl] = '\0';

    memset(&out->addr, 0, sizeof(out->addr));
    if (0 == hl) {
        out->any = true;
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_any;
        out->addr_len = sizeof(*a);
        return 0;
    }
    snprintf(out->host, sizeof(out->host), "%s", host);
    if (hl > 2 && '[' == host[0] && ']' == host[hl - 1]) {
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        out->addr_len = sizeof(*a);
        if (1 == inet_pton(AF_INET6, host + 1, &a->sin6_addr)) {
            out->any = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
            return 0;
        }
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&out->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        out->addr_len = sizeof(*a);
        if (0 == strcmp(host, "localhost"))
            snprintf(host, sizeof(host), "127.0.0.1");
        if (1 == inet_pton(AF_INET, host, &a->sin_addr))
            return 0;
    }
    snprintf(err, errlen,
             "--listen: '%s' is not a numeric address (IPv4, [IPv6], localhost or nothing for "
             "every address) in '%s'",
             out->host, text);
    return -1;
}

static int bind_one(const struct sockaddr_storage *ss, socklen_t len, bool dual, bool shared,
                    int backlog)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1, off = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (shared && 0 != setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on))) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (AF_INET6 == ss->ss_family)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual ? &off : &on, sizeof(on));
    if (0 != bind(fd, (const struct sockaddr *)ss, len) ||
        (backlog > 0 && 0 != listen(fd, backlog))) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Binds SS (LEN bytes) N times, each socket into FDS: one alone, or N sharing the address
 * (SO_REUSEPORT) after a socket that does not share it has found the address free and,
 * for port 0, taken the port they all bind. */
static int bind_group(struct sockaddr_storage *ss, socklen_t len, bool dual, int backlog, int *fds,
                      size_t n)
{
    if (1 == n)
        return (fds[0] = bind_one(ss, len, dual, false, backlog)) < 0 ? -1 : 0;
    /* Sockets that share an address take whoever else binds it with SO_REUSEPORT as one of
     * them: a second server on the port would be handed part of the connections where it
     * must be told that the port is in use. A socket that does not share it fails when
     * anybody holds it, shared or not. */
    int probe = bind_one(ss, len, dual, false, 0);
    if (probe < 0)
        return -1;
    socklen_t got = len;
    int rc = getsockname(probe, (struct sockaddr *)ss, &got);
    int e = errno;
    close(probe);
    if (0 != rc) {
        errno = e;
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        fds[i] = bind_one(ss, len, dual, true, backlog);
        if (fds[i] < 0) {
            e = errno;
            for (size_t k = 0; k < i; k++) {
                close(fds[k]);
                fds[k] = -1;
            }
            errno = e;
            return -1;
        }
    }
    return 0;
}

int sp_listen_open_group(const sp_listen_t *l, int backlog, int *fds, size_t n, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss = l->addr;
    bool any6 = AF_INET6 == l->addr.ss_family &&
                IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&l->addr)->sin6_addr);
    int rc = bind_group(&ss, l->addr_len, any6, backlog, fds, n);
    if (rc < 0 && any6 && (EAFNOSUPPORT == errno || EADDRNOTAVAIL == errno)) {
        /* No IPv6 on this machine: every IPv4 address, then. */
        memset(&ss, 0, sizeof(ss));
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)l->port);
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        rc = bind_group(&ss, sizeof(*a), false, backlog, fds, n);
    }
    if (0 == rc)
        return 0;
    const char *why = strerror(errno);
    if (EADDRINUSE == errno)
        why = "address already in use (is another server on this port?)";
    else if (EACCES == errno && l->port < 1024)
        why = "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)";
    else if (EADDRNOTAVAIL == errno)
        why = "this machine has no such address";
    snprintf(err, errlen, "cannot listen on %s: %s", l->text, why);
    return -1;
}

int sp_listen_open(const sp_listen_t *l, int backlog, char *err, size_t errlen)
{
    int fd;
    return 0 == sp_listen_open_group(l, backlog, &fd, 1, err, errlen) ? fd : -1;
}

void sp_listen_url(const sp_listen_t *l, char *buf, size_t len)
{
    const char *scheme = l->tls ? "https" : "http";
    const char *host = l->any ? "localhost" : l->host;
    if ((l->tls && 443 == l->port) || (!l->tls && 80 == l->port))
        snprintf(buf, len, "%s://%s", scheme, host);
    else
        snprintf(buf, len, "%s://%s:%u", scheme, host, l->port);
}
