/* guard: open connections' registry: request-head deadline, per-address cap, shedding. */
/* SPDX-License-Identifier: MIT */
#ifndef SP_GUARD_H
#define SP_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

typedef struct sp_guard sp_guard_t;

/* One connection's entry, embedded in the connection's own state (which owns it). The
 * fields are the guard's. */
typedef struct sp_guard_conn {
    struct sp_guard_conn *prev, *next; /* in its thread's list of waiting connections */
    struct sp_guard_shard *shard;      /* the request thread that serves it */
    struct sp_guard_peer *peer;        /* its address's count */
    int fd;
    int64_t since_ms; /* when it began to wait for a request (accept, or its last answer) */
    bool waiting;     /* in the list: its request is not in yet */
    bool served;      /* it was answered before: an idle keep-alive connection */
    bool closing;     /* shut down by the guard; libmicrohttpd closes it on its own thread */
    bool quiet;       /* no answer may be written to it (TLS: bytes outside the session) */
    bool linger;      /* answered before its body was read: drained a while after the close */
} sp_guard_conn_t;

typedef struct sp_guard_options {
    int head_timeout_ms; /* the time a request has to arrive (0: no limit) */
    unsigned per_ip_max; /* most connections from one address (0: no cap) */
    /* The most connections one request thread takes (libmicrohttpd splits its connection
     * limit evenly between its threads); near it the oldest waiting ones are shed. */
    unsigned thread_max;
    const sp_net_cidr_t *exempt; /* addresses the cap does not apply to (trusted proxies) */
    size_t n_exempt;
    int sweep_ms; /* how often a thread looks for overdue requests and drains lingering
                   * closes (0: no thread; tests call sp_guard_sweep) */
} sp_guard_options_t;

/* Starts the sweeper thread. OPT->exempt is borrowed for the guard's life. */
sp_guard_t *sp_guard_new(const sp_guard_options_t *opt);

/* Stops the sweeper. Every connection must have been closed. */
void sp_guard_free(sp_guard_t *g);

/* Whether a new connection from ADDR may be taken: false when its address already holds
 * per_ip_max connections. Any thread. */
bool sp_guard_allow(sp_guard_t *g, const struct sockaddr *addr);

/* C (zeroed) on socket FD from ADDR was accepted by the calling thread, which serves it
 * from now on: it waits for its first request. When this thread's connections near
 * thread_max, its oldest waiting connections are shed. QUIET (a TLS connection): the
 * guard closes it without writing an answer. */
void sp_guard_opened(sp_guard_t *g, sp_guard_conn_t *c, int fd, const struct sockaddr *addr,
                     bool quiet);

/* C is about to be closed (its socket is still open). Any thread. */
void sp_guard_closed(sp_guard_t *g, sp_guard_conn_t *c);

/* C's request is in (http.c counts its head, and a body sent without credentials): no
 * deadline while it is served. */
void sp_guard_busy(sp_guard_t *g, sp_guard_conn_t *c);

/* C's answer went out; it waits for its next request. */
void sp_guard_idle(sp_guard_t *g, sp_guard_conn_t *c);

/* C was refused before its body was read, and libmicrohttpd closes it once the answer is
 * out: when it does, the rest of the body is read and dropped for a short while (a
 * lingering close, as nginx's lingering_close), so that a client still sending it reads
 * the answer rather than a reset. */
void sp_guard_linger(sp_guard_conn_t *c);

/* Closes every connection whose request is overdue at NOW_MS (a monotonic clock: see
 * sp_guard_now_ms), and drains the lingering closes. The sweeper thread calls it; tests
 * may. */
void sp_guard_sweep(sp_guard_t *g, int64_t now_ms);
int64_t sp_guard_now_ms(void);

#endif
