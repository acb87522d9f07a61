/* guard: open connections' registry: request-head deadline, per-address cap, shedding. */
/* SPDX-License-Identifier: MIT */
#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

/*
 * Why this exists: libmicrohttpd 0.9.75 bounds a connection only by its idle time
 * (MHD_OPTION_CONNECTION_TIMEOUT), so a client that sends one header line every few
 * seconds holds its connection forever, and a few thousand of them fill the connection
 * limit; then libmicrohttpd stops accepting and real clients wait in the listen queue
 * (Slowloris). It has no total time for a request head (nginx's client_header_timeout),
 * and its MHD_OPTION_PER_IP_CONNECTION_LIMIT cannot spare a reverse proxy that carries
 * every client. So the server keeps its own registry of connections, fed by
 * libmicrohttpd's connection notifications (accept, close) and by the request handler
 * (request in, answer out), and acts on a connection from outside libmicrohttpd the one
 * way that is safe from another thread: it writes a minimal answer to the socket and
 * shuts it down (shutdown(2)); libmicrohttpd then reads the end of the stream and closes
 * the connection on its own thread, with its own bookkeeping. The socket cannot be closed
 * (and its number reused) under us: libmicrohttpd sends the close notification, which
 * takes the same lock, before it closes the socket.
 *
 * - A request must arrive whole (its head, and the body of one that needs no
 *   credentials) within head_timeout_ms of the connection's accept, or of its previous
 *   answer: else 408 (as nginx's client_header_timeout), or a silent close for an idle
 *   keep-alive connection.
 * - One address holds at most per_ip_max connections; more are refused at accept.
 * - Near the connection limit, each new connection sheds the oldest connection that is
 *   still waiting for its request (503): a trickling client is always the oldest, and a
 *   normal client's request arrives within a round trip, so room stays for it. nginx
 *   does the same with idle keep-alive connections when it runs out of connections.
 *
 * State is kept per request thread (a shard): each request thread is a libmicrohttpd daemon
 * of its own with its share of the connection limit, accepts on that thread and serves the
 * connection there, so a thread's lock is contended only by the sweeper.
 */

#define PEER_BUCKETS 4096
/* Lingering closes: at most this many at once (each holds a descriptor), each for this
 * long, reading at most this much per sweep. */
#define LINGER_MAX        64
#define LINGER_MS         2000
#define LINGER_SWEEP_READ (256 * 1024)

struct sp_guard_shard {
    pthread_mutex_t lock;
    sp_guard_conn_t *head, *tail; /* waiting connections, oldest first */
    unsigned count;               /* this thread's connections */
    unsigned closing;             /* of which shut down by us, not yet closed */
    struct sp_guard_shard *next;
};

typedef struct sp_guard_peer {
    sp_net_addr_t addr;
    unsigned count;   /* its connections */
    unsigned pending; /* admitted at accept, not yet opened (reserved_peer) */
    struct sp_guard_peer *next;
} peer_t;

typedef struct lingerer {
    int fd; /* our own descriptor of the socket, dup(2)ed before libmicrohttpd closed its */
    int64_t until_ms;
    struct lingerer *next;
} lingerer_t;

struct sp_guard {
    sp_guard_options_t opt;
    uint64_t id;
    unsigned high; /* a thread sheds above this many connections */
    pthread_mutex_t shards_lock;
    struct sp_guard_shard *shards;
    pthread_mutex_t peers_lock;
    peer_t *peers[PEER_BUCKETS];
    pthread_mutex_t linger_lock;
    lingerer_t *lingering;
    unsigned n_lingering;
    pthread_mutex_t stop_lock;
    pthread_cond_t stop_cond;
    bool stop;
    bool sweeping;
    pthread_t sweeper;
};

/* The calling thread's shard, and the guard it belongs to (by ID, not address: a guard
 * freed and another made at the same address must not inherit it). */
static _Thread_local struct sp_guard_shard *my_shard;
static _Thread_local uint64_t my_guard;
/* The connection this thread admitted last (sp_guard_allow) and has not yet seen opened
 * (sp_guard_opened), counted in its peer's pending: libmicrohttpd calls the two in a row on
 * the accepting thread, so two threads accepting at once cannot both take an address's last
 * place. One admitted but never opened (libmicrohttpd failed in between) is let go at this
 * thread's next admission. */
static _Thread_local peer_t *reserved_peer;
static _Thread_local uint64_t reserved_guard;
static atomic_uint_fast64_t next_id = 1;

static const char answer_408[] = "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
                                 "Content-Length: 0\r\n\r\n";
static const char answer_503[] = "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
                                 "Retry-After: 1\r\nContent-Length: 0\r\n\r\n";

int64_t sp_guard_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *sweeper_main(void *arg)
{
    sp_guard_t *g = arg;
    pthread_mutex_lock(&g->stop_lock);
    while (!g->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)g->opt.sweep_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&g->stop_cond, &g->stop_lock, &until);
        if (g->stop)
            break;
        pthread_mutex_unlock(&g->stop_lock);
        sp_guard_sweep(g, sp_guard_now_ms());
        pthread_mutex_lock(&g->stop_lock);
    }
    pthread_mutex_unlock(&g->stop_lock);
    return NULL;
}

sp_guard_t *sp_guard_new(const sp_guard_options_t *opt)
{
    sp_guard_t *g = calloc(1, sizeof(*g));
    if (!g)
        abort();
    g->opt = *opt;
    g->id = atomic_fetch_add(&next_id, 1);
    if (opt->thread_max) {
        unsigned headroom = opt->thread_max / 8;
        g->high = opt->thread_max - (headroom ? headroom : 1);
    }
    pthread_mutex_init(&g->shards_lock, NULL);
    pthread_mutex_init(&g->peers_lock, NULL);
    pthread_mutex_init(&g->linger_lock, NULL);
    pthread_mutex_init(&g->stop_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->stop_cond, &ca);
    pthread_condattr_destroy(&ca);
    if (opt->sweep_ms > 0)
        g->sweeping = 0 == pthread_create(&g->sweeper, NULL, sweeper_main, g);
    return g;
}

void sp_guard_free(sp_guard_t *g)
{
    if (!g)
        return;
    if (g->sweeping) {
        pthread_mutex_lock(&g->stop_lock);
        g->stop = true;
        pthread_cond_signal(&g->stop_cond);
        pthread_mutex_unlock(&g->stop_lock);
        pthread_join(g->sweeper, NULL);
    }
    for (struct sp_guard_shard *s = g->shards, *next; s; s = next) {
        next = s->next;
        pthread_mutex_destroy(&s->lock);
        free(s);
    }
    for (size_t i = 0; i < PEER_BUCKETS; i++)
        for (peer_t *p = g->peers[i], *next; p; p = next) {
            next = p->next;
            free(p);
        }
    pthread_mutex_destroy(&g->shards_lock);
    for (lingerer_t *l = g->lingering, *next; l; l = next) {
        next = l->next;
        close(l->fd);
        free(l);
    }
    pthread_mutex_destroy(&g->peers_lock);
    pthread_mutex_destroy(&g->linger_lock);
    pthread_mutex_destroy(&g->stop_lock);
    pthread_cond_destroy(&g->stop_cond);
    free(g);
}

static struct sp_guard_shard *shard_of_this_thread(sp_guard_t *g)
{
    if (my_guard == g->id)
        return my_shard;
    struct sp_guard_shard *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_lock(&g->shards_lock);
    s->next = g->shards;
    g->shards = s;
    pthread_mutex_unlock(&g->shards_lock);
    my_guard = g->id;
    my_shard = s;
    return s;
}

/* ---- addresses --------------------------------------------------------------------- */

static size_t bucket_of(const sp_net_addr_t *a)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < sizeof(a->b); i++)
        h = (h ^ a->b[i]) * 1099511628211ull;
    return (size_t)(h % PEER_BUCKETS);
}

static peer_t *find_peer(sp_guard_t *g, const sp_net_addr_t *a)
{
    for (peer_t *p = g->peers[bucket_of(a)]; p; p = p->next)
        if (0 == memcmp(p->addr.b, a->b, sizeof(a->b)))
            return p;
    return NULL;
}

/* A's peer, made when it has none. Under peers_lock. */
static peer_t *get_peer(sp_guard_t *g, const sp_net_addr_t *a)
{
    peer_t *p = find_peer(g, a);
    if (p)
        return p;
    p = calloc(1, sizeof(*p));
    if (!p)
        abort();
    p->addr = *a;
    size_t b = bucket_of(a);
    p->next = g->peers[b];
    g->peers[b] = p;
    return p;
}

/* P gone when nothing holds it any more. Under peers_lock. */
static void put_peer(sp_guard_t *g, peer_t *p)
{
    if (p->count || p->pending)
        return;
    peer_t **at = &g->peers[bucket_of(&p->addr)];
    while (*at != p)
        at = &(*at)->next;
    *at = p->next;
    free(p);
}

/* This thread's reservation in G let go (opened, or never to be), its peer with it when
 * nothing else holds it. Under peers_lock. */
static void let_go_reservation(sp_guard_t *g)
{
    peer_t *p = reserved_guard == g->id ? reserved_peer : NULL;
    reserved_peer = NULL;
    reserved_guard = 0;
    if (p) {
        p->pending--;
        put_peer(g, p);
    }
}

bool sp_guard_allow(sp_guard_t *g, const struct sockaddr *addr)
{
    if (!g->opt.per_ip_max)
        return true;
    sp_net_addr_t a;
    sp_net_from_sockaddr(addr, &a);
    for (size_t i = 0; i < g->opt.n_exempt; i++)
        if (sp_net_in_cidr(&a, &g->opt.exempt[i]))
            return true;
    pthread_mutex_lock(&g->peers_lock);
    let_go_reservation(g);
    peer_t *p = find_peer(g, &a);
    bool ok = !p || p->count + p->pending < g->opt.per_ip_max;
    if (ok) {
        p = get_peer(g, &a);
        p->pending++;
        reserved_peer = p;
        reserved_guard = g->id;
    }
    pthread_mutex_unlock(&g->peers_lock);
    if (!ok)
        sp_metric_inc(http_address_refusals);
    return ok;
}

/* ---- the waiting list ------------------------------------------------------------ */

static void unlink_waiting(struct sp_guard_shard *s, sp_guard_conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->tail = c->prev;
    c->prev = c->next = NULL;
    c->waiting = false;
}

static void append_waiting(struct sp_guard_shard *s, sp_guard_conn_t *c, int64_t now_ms)
{
    c->since_ms = now_ms;
    c->waiting = true;
    c->next = NULL;
    c->prev = s->tail;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
}

/* Ends C from outside libmicrohttpd (see the top of this file). With S locked. A
 * connection that was answered before gets no answer: it is an idle keep-alive one. */
static void drop(struct sp_guard_shard *s, sp_guard_conn_t *c, const char *answer, size_t len)
{
    unlink_waiting(s, c);
    c->closing = true;
    s->closing++;
    if (!c->served && !c->quiet)
        (void)send(c->fd, answer, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    shutdown(c->fd, SHUT_RDWR);
}

void sp_guard_opened(sp_guard_t *g, sp_guard_conn_t *c, int fd, const struct sockaddr *addr,
                     bool quiet)
{
    struct sp_guard_shard *s = shard_of_this_thread(g);
    sp_net_addr_t a;
    sp_net_from_sockaddr(addr, &a);
    pthread_mutex_lock(&g->peers_lock);
    peer_t *p = get_peer(g, &a);
    p->count++;
    let_go_reservation(g); /* counted now, or another accept's that was let go */
    pthread_mutex_unlock(&g->peers_lock);

    c->shard = s;
    c->peer = p;
    c->fd = fd;
    c->quiet = quiet;
    pthread_mutex_lock(&s->lock);
    s->count++;
    append_waiting(s, c, sp_guard_now_ms());
    while (g->high && s->count - s->closing > g->high && s->head != c) {
        drop(s, s->head, answer_503, sizeof(answer_503) - 1);
        sp_metric_inc(http_shed);
    }
    pthread_mutex_unlock(&s->lock);
}

void sp_guard_closed(sp_guard_t *g, sp_guard_conn_t *c)
{
    struct sp_guard_shard *s = c ? c->shard : NULL;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (c->waiting)
        unlink_waiting(s, c);
    if (c->closing)
        s->closing--;
    s->count--;
    pthread_mutex_unlock(&s->lock);
    c->shard = NULL;

    if (c->linger) {
        /* libmicrohttpd has sent the answer and closes its descriptor next: ours keeps the
         * socket open, says the answer is complete, and drains what still comes. */
        pthread_mutex_lock(&g->linger_lock);
        lingerer_t *l = g->n_lingering < LINGER_MAX ? malloc(sizeof(*l)) : NULL;
        if (l && (l->fd = dup(c->fd)) >= 0) {
            shutdown(l->fd, SHUT_WR);
            l->until_ms = sp_guard_now_ms() + LINGER_MS;
            l->next = g->lingering;
            g->lingering = l;
            g->n_lingering++;
        } else {
            free(l);
        }
        pthread_mutex_unlock(&g->linger_lock);
    }

    pthread_mutex_lock(&g->peers_lock);
    peer_t *p = c->peer;
    p->count--;
    put_peer(g, p);
    pthread_mutex_unlock(&g->peers_lock);
}

void sp_guard_busy(sp_guard_t *g, sp_guard_conn_t *c)
{
    struct sp_guard_shard *s = c ? c->shard : NULL;
    (void)g;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    if (c->waiting)
        unlink_waiting(s, c);
    pthread_mutex_unlock(&s->lock);
}

void sp_guard_idle(sp_guard_t *g, sp_guard_conn_t *c)
{
    struct sp_guard_shard *s = c ? c->shard : NULL;
    (void)g;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    c->served = true;
    if (!c->closing && !c->waiting)
        append_waiting(s, c, sp_guard_now_ms());
    pthread_mutex_unlock(&s->lock);
}

void sp_guard_linger(sp_guard_conn_t *c)
{
    if (c)
        c->linger = true;
}

/* Reads and drops what lingering sockets received; closes those whose client closed, or
 * whose time is up. */
static void drain(sp_guard_t *g, int64_t now_ms)
{
    static char sink[64 * 1024];
    pthread_mutex_lock(&g->linger_lock);
    for (lingerer_t **at = &g->lingering, *l; (l = *at);) {
        bool done = now_ms >= l->until_ms;
        for (size_t read = 0; !done && read < LINGER_SWEEP_READ;) {
            ssize_t n = recv(l->fd, sink, sizeof(sink), MSG_DONTWAIT);
            if (n > 0)
                read += (size_t)n;
            else
                done = n == 0 || (EAGAIN != errno && EWOULDBLOCK != errno && EINTR != errno);
            if (n < 0 && !done)
                break;
        }
        if (done) {
            close(l->fd);
            *at = l->next;
            free(l);
            g->n_lingering--;
        } else {
            at = &l->next;
        }
    }
    pthread_mutex_unlock(&g->linger_lock);
}

void sp_guard_sweep(sp_guard_t *g, int64_t now_ms)
{
    drain(g, now_ms);
    if (g->opt.head_timeout_ms <= 0)
        return;
    pthread_mutex_lock(&g->shards_lock);
    for (struct sp_guard_shard *s = g->shards; s; s = s->next) {
        pthread_mutex_lock(&s->lock);
        while (s->head && now_ms - s->head->since_ms >= g->opt.head_timeout_ms) {
            if (!s->head->served)
                sp_metric_inc(http_head_timeouts);
            drop(s, s->head, answer_408, sizeof(answer_408) - 1);
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&g->shards_lock);
}
