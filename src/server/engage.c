/* engage: the tracking block's read-time image, held open a frame a second to time the read. */
/* SPDX-License-Identifier: MIT */
#include "engage.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

/* How often the thread looks for clients that hung up: the read time's resolution. */
#define POLL_MS 100

/* A GIF89a of one transparent pixel, without a loop extension (it plays once), and its first
 * frame: what the client gets at once. */
static const unsigned char gif_head[] = {
    'G',  'I',  'F',  '8',  '9',  'a',  0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, /* screen */
    0x00, 0x00, 0x00, 0xff, 0xff, 0xff,                                           /* two colours */
};
/* One frame: a graphic control extension (restore to background, transparent colour 0, shown
 * for a second), the image and its data. */
static const unsigned char gif_frame[] = {
    0x21, 0xf9, 0x04, 0x05, 0x64, 0x00, 0x00, 0x00,             /* 1 s, transparent */
    0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, /* 1x1 at 0,0 */
    0x02, 0x02, 0x44, 0x01, 0x00,                               /* its pixel */
};
static const unsigned char gif_trailer[] = {0x3b};

typedef struct held held_t;

struct sp_engage {
    sp_engage_options_t opt;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    bool closing, stop;
    atomic_int held; /* places taken */
    held_t *head;    /* the suspended ones, by the time their next frame is due */
    held_t *tail;
    size_t n_queued;
    struct pollfd *fds; /* the thread's, max_held of each */
    held_t **fd_held;
    held_t **resume;
};

struct held {
    sp_engage_t *e;
    sp_http_held_t *answer;    /* http's handle of its answer */
    int64_t start, due, ended; /* CLOCK_MONOTONIC ms; ended: the client hung up, or the end */
    bool queued;               /* suspended, in the queue */
    bool frame_due;            /* resumed for its next frame */
    bool hung_up, finished, cut;
    size_t sent; /* bytes of the answer sent */
    unsigned char out[sizeof(gif_head) + sizeof(gif_frame)];
    size_t out_len, out_off; /* the piece being sent */
    held_t *prev, *next;
    /* The open it times. */
    int64_t ts_ms;
    sp_net_addr_t addr;
    char campaign[SP_ID_MAX + 1], recipient[SP_ID_MAX + 1], visitor[40], ip[SP_NET_ADDR_MAX];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the queue of suspended connections (under the lock) ------------------------------ */

static void enqueue(sp_engage_t *e, held_t *h)
{
    /* Nearly always the latest: every due time is a frame after the previous one. */
    held_t *after = e->tail;
    while (after && after->due > h->due)
        after = after->prev;
    h->prev = after;
    h->next = after ? after->next : e->head;
    if (h->next)
        h->next->prev = h;
    else
        e->tail = h;
    if (after)
        after->next = h;
    else
        e->head = h;
    h->queued = true;
    e->n_queued++;
}

static void dequeue(sp_engage_t *e, held_t *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        e->head = h->next;
    if (h->next)
        h->next->prev = h->prev;
    else
        e->tail = h->prev;
    h->prev = h->next = NULL;
    h->queued = false;
    e->n_queued--;
}

/* ---- the thread ----------------------------------------------------------------------- */

static void *engage_main(void *arg)
{
    sp_engage_t *e = arg;
    pthread_mutex_lock(&e->lock);
    while (!e->stop) {
        int64_t now = mono_ms();
        size_t n_resume = 0, n_fds = 0;
        /* Frames due, and everything once closing: their readers end them. */
        while (e->head && (e->closing || e->head->due <= now)) {
            held_t *h = e->head;
            dequeue(e, h);
            h->frame_due = true;
            e->resume[n_resume++] = h;
        }
        for (held_t *h = e->head; h; h = h->next) {
            e->fds[n_fds] = (struct pollfd){.fd = sp_http_held_fd(h->answer), .events = POLLRDHUP};
            e->fd_held[n_fds++] = h;
        }
        pthread_mutex_unlock(&e->lock);

        /* Only this thread resumes, so each of these stays suspended (its socket open) until it
         * does. */
        for (size_t i = 0; i < n_resume; i++)
            sp_http_held_resume(e->resume[i]->answer);
        if (n_fds && poll(e->fds, n_fds, 0) > 0) {
            now = mono_ms();
            for (size_t i = 0; i < n_fds; i++) {
                if (!(e->fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
                    continue;
                held_t *h = e->fd_held[i];
                pthread_mutex_lock(&e->lock);
                bool mine = h->queued;
                if (mine) {
                    dequeue(e, h);
                    h->hung_up = true;
                    h->ended = now;
                }
                pthread_mutex_unlock(&e->lock);
                if (mine)
                    sp_http_held_resume(h->answer);
            }
        }

        pthread_mutex_lock(&e->lock);
        if (e->stop)
            break;
        /* One tick for every frame due in it: libmicrohttpd walks its list of suspended
         * connections on each wake that resumes any, so resuming them one by one as each falls
         * due would cost a walk per frame. A frame is at most a tick late. */
        if (!(e->closing && e->head)) {
            struct timespec deadline;
            sp_deadline(&deadline, POLL_MS);
            pthread_cond_timedwait(&e->wake, &e->lock, &deadline);
        }
    }
    pthread_mutex_unlock(&e->lock);
    return NULL;
}

sp_engage_t *sp_engage_new(const sp_engage_options_t *opt, char *err, size_t errlen)
{
    sp_engage_t *e = calloc(1, sizeof(*e));
    if (!e)
        abort();
    e->opt = *opt;
    if (e->opt.frame_ms <= 0)
        e->opt.frame_ms = 1000;
    if (e->opt.end_ms <= 0)
        e->opt.end_ms = 20000;
    size_t n = opt->max_held > 0 ? (size_t)opt->max_held : 1;
    e->fds = calloc(n, sizeof(*e->fds));
    e->fd_held = calloc(n, sizeof(*e->fd_held));
    e->resume = calloc(n, sizeof(*e->resume));
    if (!e->fds || !e->fd_held || !e->resume)
        abort();
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&e->wake, &attr);
    pthread_condattr_destroy(&attr);
    if (0 != pthread_create(&e->thread, NULL, engage_main, e)) {
        snprintf(err, errlen, "cannot start the read-time thread");
        pthread_mutex_destroy(&e->lock);
        pthread_cond_destroy(&e->wake);
        free(e->fds);
        free(e->fd_held);
        free(e->resume);
        free(e);
        return NULL;
    }
    return e;
}

void sp_engage_close(sp_engage_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->closing = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void sp_engage_free(sp_engage_t *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->lock);
    e->closing = e->stop = true;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e->fds);
    free(e->fd_held);
    free(e->resume);
    free(e);
}

bool sp_engage_measurable(const char *user_agent)
{
    /* The mail providers' image proxies (the classes' rules gmail-image-proxy,
     * yahoo-mail-proxy, outlook-image-proxy) fetch the image whole to cache it. */
    static const char *const proxies[] = {"GoogleImageProxy", "YahooMailProxy",
                                          "OutlookImageProxy"};
    for (size_t i = 0; user_agent && i < sizeof(proxies) / sizeof(proxies[0]); i++)
        if (strcasestr(user_agent, proxies[i]))
            return false;
    return true;
}

bool sp_engage_reserve(sp_engage_t *e)
{
    if (!e)
        return false;
    pthread_mutex_lock(&e->lock);
    bool closing = e->closing;
    pthread_mutex_unlock(&e->lock);
    if (closing)
        return false;
    int n = atomic_fetch_add(&e->held, 1);
    if (n >= e->opt.max_held) {
        atomic_fetch_sub(&e->held, 1);
        return false;
    }
    return true;
}

int sp_engage_held(sp_engage_t *e)
{
    return e ? atomic_load(&e->held) : 0;
}

/* ---- the answer ----------------------------------------------------------------------- */

static void set_out(held_t *h, const unsigned char *a, size_t alen, const unsigned char *b,
                    size_t blen)
{
    memcpy(h->out, a, alen);
    if (blen)
        memcpy(h->out + alen, b, blen);
    h->out_len = alen + blen;
    h->out_off = 0;
}

/* http asks for more of the answer. Between frames the answer waits (sp_http_held_wait) and 0
 * is returned: it is asked again once the thread resumes it. */
static ssize_t reader(void *cls, char *buf, size_t max)
{
    held_t *h = cls;
    sp_engage_t *e = h->e;
    ssize_t n = 0;
    pthread_mutex_lock(&e->lock);
    if (h->out_off == h->out_len) {
        int64_t now = mono_ms();
        /* A client that hung up gets the end too: the write fails and the connection closes,
         * without the error libmicrohttpd logs for an answer that ends in one. */
        if (h->finished || h->hung_up) {
            pthread_mutex_unlock(&e->lock);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (0 == h->sent) {
            set_out(h, gif_head, sizeof(gif_head), gif_frame, sizeof(gif_frame));
        } else if (e->closing || now - h->start >= e->opt.end_ms) {
            h->cut = now - h->start < e->opt.end_ms;
            h->ended = h->cut ? now : h->start + e->opt.end_ms;
            h->finished = true;
            set_out(h, gif_trailer, sizeof(gif_trailer), NULL, 0);
        } else if (h->frame_due) {
            h->frame_due = false;
            set_out(h, gif_frame, sizeof(gif_frame), NULL, 0);
        } else {
            int64_t due = now + e->opt.frame_ms - (now - h->start) % e->opt.frame_ms;
            h->due = due < h->start + e->opt.end_ms ? due : h->start + e->opt.end_ms;
            sp_http_held_wait(h->answer);
            enqueue(e, h);
            pthread_mutex_unlock(&e->lock);
            return 0;
        }
    }
    n = (ssize_t)(h->out_len - h->out_off < max ? h->out_len - h->out_off : max);
    memcpy(buf, h->out + h->out_off, (size_t)n);
    h->out_off += (size_t)n;
    h->sent += (size_t)n;
    pthread_mutex_unlock(&e->lock);
    return n;
}

/* The answer is done with (ended, the client gone, or the daemon stopping): its read goes to
 * the journal, unless nothing was sent (the open then stays without one). */
static void reader_free(void *cls)
{
    held_t *h = cls;
    sp_engage_t *e = h->e;
    pthread_mutex_lock(&e->lock);
    if (h->queued)
        dequeue(e, h);
    int64_t now = mono_ms();
    if (!h->ended) {
        /* Gone between frames without the thread seeing it (a failed write), or stopped. */
        h->ended = now;
        h->cut = e->closing && !h->hung_up;
    }
    pthread_mutex_unlock(&e->lock);

    if (h->sent) {
        sp_event_t *ev = sp_event_new(0);
        ev->kind = SP_EVENT_READ;
        ev->ts_ms = h->ts_ms;
        ev->addr = h->addr;
        memcpy(ev->campaign, h->campaign, sizeof(ev->campaign));
        memcpy(ev->recipient, h->recipient, sizeof(ev->recipient));
        memcpy(ev->visitor, h->visitor, sizeof(ev->visitor));
        memcpy(ev->ip, h->ip, sizeof(ev->ip));
        ev->engage = h->cut ? SP_ENGAGE_CUT : SP_ENGAGE_MEASURED;
        int64_t ms = h->ended - h->start;
        ev->read_ms = ms < 0 ? 0 : ms > e->opt.end_ms ? e->opt.end_ms : ms;
        unsigned char record[1024]; /* no headers: a few hundred bytes */
        size_t len = sp_event_encode(ev, record);
        if (sp_journal_append(e->opt.journal, record, len, NULL) < 0) {
            char quoted[2 * SP_ID_MAX + 8];
            sp_log_warn("a read time could not be journaled", "campaign=%s",
                        sp_log_quote(h->campaign, quoted, sizeof(quoted)));
        }
        sp_event_free(ev);
    }
    atomic_fetch_sub(&e->held, 1);
    free(h);
}

struct MHD_Response *sp_engage_response(sp_engage_t *e, sp_request_t *req, const sp_event_t *open)
{
    held_t *h = calloc(1, sizeof(*h));
    if (!h)
        abort();
    h->e = e;
    h->start = mono_ms();
    h->ts_ms = open->ts_ms;
    h->addr = open->addr;
    memcpy(h->campaign, open->campaign, sizeof(h->campaign));
    memcpy(h->recipient, open->recipient, sizeof(h->recipient));
    memcpy(h->visitor, open->visitor, sizeof(h->visitor));
    memcpy(h->ip, open->ip, sizeof(h->ip));
    return sp_http_held_response(req, reader, reader_free, h, &h->answer);
}
