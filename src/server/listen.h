/* listen: the addresses the server listens on, parsed and bound with errors in words. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_LISTEN_H
#define SP_LISTEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct sp_listen {
    char text[128]; /* as given */
    bool tls;       /* serves HTTPS */
    bool any;       /* an empty HOST: every address, IPv6 and IPv4 */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host[112]; /* as a URL writes it: "127.0.0.1", "[::1]", "" when any */
    unsigned port;
} sp_listen_t;

/* Parses TEXT: HOST:PORT, http://HOST:PORT or https://HOST:PORT, HOST being a numeric
 * IPv4 address, an IPv6 address in brackets, "localhost" or nothing (every address). A bare
 * HOST:PORT serves HTTPS when TLS_DEFAULT is true. 0, or -1 with a message in ERR. */
int sp_listen_parse(const char *text, bool tls_default, sp_listen_t *out, char *err, size_t errlen);

/* Binds L and listens: returns the socket (non-blocking, close-on-exec), or -1 with ERR
 * saying why in words ("address already in use"). An empty HOST binds [::] for IPv6 and
 * IPv4 at once, or 0.0.0.0 where the machine has no IPv6. */
int sp_listen_open(const sp_listen_t *l, int backlog, char *err, size_t errlen);

/* Binds L N times (N >= 1), the sockets into FDS (the caller's to close): each a listening
 * socket of its own on the same address and port (SO_REUSEPORT when N > 1), among which the
 * kernel spreads new connections, so that each of N threads accepts only from its own and a
 * connection wakes one thread. The address must be free (a server already on it, sharing it
 * or not, is "address already in use"); port 0 is one port chosen for all N. 0, or -1 with
 * ERR as sp_listen_open's. */
int sp_listen_open_group(const sp_listen_t *l, int backlog, int *fds, size_t n, char *err,
                         size_t errlen);

/* "http://HOST:PORT" or "https://HOST:PORT" (the port left out when it is the scheme's
 * own; HOST "localhost" when L is every address), for links made without --public-url. */
void sp_listen_url(const sp_listen_t *l, char *buf, size_t len);

#endif
