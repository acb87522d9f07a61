/* live: Server-Sent Events to dashboards, fed by the writer after each commit. */
/* SPDX-License-Identifier: MIT */
#include "live.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serialize.h"

#define STREAM_BUFFER (256u << 10) /* bytes a slow stream may fall behind */
#define STREAMS_MAX   256

/* What every stream is sent besides events: its opening (how soon the browser reconnects),
 * the pings, and the word that it fell behind. */
static const char opening[] = "retry: 2000\n: open\n\n";
static const char ping[] = ": ping\n\n";
static const char overflow[] = "event: overflow\ndata: {}\n\n";

struct sp_live_sub {
    sp_live_t *live;
    sp_live_wake_fn sleep, wake;
    void *ctx;
    char campaign[SP_ID_MAX + 1];
    char *buf;
    size_t len;
    bool asleep; /* sp_live_read found nothing: WAKE it when something comes */
    bool closed; /* the hub is going away: end the stream */
    bool overflowed;
    struct sp_live_sub *prev, *next;
};
typedef sp_live_sub_t stream_t;

struct sp_live {
    pthread_mutex_t lock; /* guards the list and every stream's fields */
    pthread_cond_t tick;
    stream_t *streams;
    size_t n_streams;
    bool stopping;
    int ping_s;
    pthread_t pinger;
};

/* Appends under the lock and wakes a stream that waits. */
static void push(stream_t *s, const char *text, size_t len)
{
    if (s->overflowed)
        return;
    if (s->len + len > STREAM_BUFFER) {
        s->overflowed = true;
        text = overflow;
        len = sizeof(overflow) - 1;
        if (s->len + len > STREAM_BUFFER + 64)
            return;
    }
    char *grown = realloc(s->buf, s->len + len);
    if (!grown)
        abort();
    s->buf = grown;
    memcpy(s->buf + s->len, text, len);
    s->len += len;
    if (s->asleep) {
        s->asleep = false;
        s->wake(s->ctx);
    }
}

static void *pinger_main(void *arg)
{
    sp_live_t *live = arg;
    pthread_mutex_lock(&live->lock);
    while (!live->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += live->ping_s;
        pthread_cond_timedwait(&live->tick, &live->lock, &until);
        if (live->stopping)
            break;
        for (stream_t *s = live->streams; s; s = s->next)
            push(s, ping, sizeof(ping) - 1);
    }
    pthread_mutex_unlock(&live->lock);
    return NULL;
}

sp_live_t *sp_live_new(int ping_s)
{
    sp_live_t *live = calloc(1, sizeof(*live));
    if (!live)
        abort();
    pthread_mutex_init(&live->lock, NULL);
    pthread_cond_init(&live->tick, NULL);
    live->ping_s = ping_s > 0 ? ping_s : 15;
    if (0 != pthread_create(&live->pinger, NULL, pinger_main, live))
        abort();
    return live;
}

void sp_live_close(sp_live_t *live)
{
    pthread_mutex_lock(&live->lock);
    if (live->stopping) {
        pthread_mutex_unlock(&live->lock);
        return;
    }
    live->stopping = true;
    for (stream_t *s = live->streams; s; s = s->next) {
        s->closed = true;
        if (s->asleep) {
            s->asleep = false;
            s->wake(s->ctx);
        }
    }
    pthread_cond_signal(&live->tick);
    pthread_mutex_unlock(&live->lock);
    pthread_join(live->pinger, NULL);
}

void sp_live_free(sp_live_t *live)
{
    if (!live)
        return;
    sp_live_close(live);
    pthread_mutex_destroy(&live->lock);
    pthread_cond_destroy(&live->tick);
    free(live);
}

/* True when someone listens: the writer builds no message otherwise. */
static bool has_subscribers(sp_live_t *live)
{
    pthread_mutex_lock(&live->lock);
    bool any = live->n_streams > 0;
    pthread_mutex_unlock(&live->lock);
    return any;
}

void sp_live_publish(sp_live_t *live, const char *campaign, const char *text, size_t len)
{
    pthread_mutex_lock(&live->lock);
    for (stream_t *s = live->streams; s; s = s->next)
        if ('\0' == s->campaign[0] || 0 == strcmp(s->campaign, campaign))
            push(s, text, len);
    pthread_mutex_unlock(&live->lock);
}

void sp_live_on_commit(void *ctx, sp_event_t *const *evs, size_t n)
{
    sp_live_t *live = ctx;
    if (!has_subscribers(live))
        return;
    for (size_t i = 0; i < n; i++) {
        sp_event_t *ev = evs[i];
        if (SP_OUTCOME_STORED != ev->outcome)
            continue;
        json_t *j = sp_serialize_event(sp_event_row(ev));
        char *data = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!data)
            abort();
        size_t len = strlen(data) + 32;
        char *msg = malloc(len);
        if (!msg)
            abort();
        int m = snprintf(msg, len, "event: %s\ndata: %s\n\n", sp_event_kind_name(ev->kind), data);
        sp_live_publish(live, ev->campaign, msg, (size_t)m);
        free(msg);
        free(data);
    }
}

sp_live_sub_t *sp_live_subscribe(sp_live_t *live, const char *campaign, sp_live_wake_fn sleep,
                                 sp_live_wake_fn wake, void *ctx)
{
    stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        abort();
    s->live = live;
    s->sleep = sleep;
    s->wake = wake;
    s->ctx = ctx;
    snprintf(s->campaign, sizeof(s->campaign), "%s", campaign);
    pthread_mutex_lock(&live->lock);
    if (live->stopping || live->n_streams >= STREAMS_MAX) {
        pthread_mutex_unlock(&live->lock);
        free(s);
        return NULL;
    }
    s->next = live->streams;
    if (live->streams)
        live->streams->prev = s;
    live->streams = s;
    live->n_streams++;
    push(s, opening, sizeof(opening) - 1); /* sent at once: the stream is open */
    pthread_mutex_unlock(&live->lock);
    return s;
}

ssize_t sp_live_read(sp_live_sub_t *s, char *buf, size_t max)
{
    sp_live_t *live = s->live;
    pthread_mutex_lock(&live->lock);
    ssize_t n;
    if (s->len) {
        n = (ssize_t)(s->len < max ? s->len : max);
        memcpy(buf, s->buf, (size_t)n);
        memmove(s->buf, s->buf + n, s->len - (size_t)n);
        s->len -= (size_t)n;
    } else if (s->closed || s->overflowed) {
        n = -1;
    } else {
        /* Nothing to send: asleep until push() wakes it, under the lock so that no push
         * comes between. */
        s->asleep = true;
        s->sleep(s->ctx);
        n = 0;
    }
    pthread_mutex_unlock(&live->lock);
    return n;
}

void sp_live_unsubscribe(sp_live_sub_t *s)
{
    if (!s)
        return;
    sp_live_t *live = s->live;
    pthread_mutex_lock(&live->lock);
    if (s->prev)
        s->prev->next = s->next;
    else
        live->streams = s->next;
    if (s->next)
        s->next->prev = s->prev;
    live->n_streams--;
    pthread_mutex_unlock(&live->lock);
    free(s->buf);
    free(s);
}

/* ---- a stream as libmicrohttpd sends it ------------------------------------------------ */

static void suspend(void *conn)
{
    MHD_suspend_connection(conn);
}

static void resume(void *conn)
{
    MHD_resume_connection(conn);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    ssize_t n = sp_live_read(cls, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void stream_free(void *cls)
{
    sp_live_unsubscribe(cls);
}

struct MHD_Response *sp_live_stream(sp_live_t *live, struct MHD_Connection *conn,
                                    const char *campaign)
{
    stream_t *s = sp_live_subscribe(live, campaign, suspend, resume, conn);
    if (!s)
        return NULL;
    return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s, stream_free);
}
