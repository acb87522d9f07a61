/* webhook: notifications of stored opens and clicks, POSTed as JSON by a delivery thread. */
/* SPDX-License-Identifier: MIT */
#include "webhook.h"

#include <curl/curl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "serialize.h"

#ifndef SP_VERSION
#define SP_VERSION "0.1.0"
#endif

typedef struct note {
    char *body;
    struct note *next;
} note_t;

struct sp_webhook {
    sp_webhook_options_t opt;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    note_t *head, *tail;
    size_t queued;
    bool stopping;
    int64_t drain_until_ms; /* after a stop: give up on what is left at this time */
    CURL *curl;
};

static size_t discard(char *ptr, size_t size, size_t n, void *ctx)
{
    (void)ptr;
    (void)ctx;
    return size * n;
}

static bool deliver_once(sp_webhook_t *w, const char *url, const char *body, long *status)
{
    struct curl_slist *headers = NULL;
    char signature[32 + 2 * crypto_auth_hmacsha256_BYTES];
    headers = curl_slist_append(headers, "Content-Type: application/json");
    if (w->opt.secret && *w->opt.secret) {
        unsigned char mac[crypto_auth_hmacsha256_BYTES];
        char hex[2 * sizeof(mac) + 1];
        crypto_auth_hmacsha256_state st;
        crypto_auth_hmacsha256_init(&st, (const unsigned char *)w->opt.secret,
                                    strlen(w->opt.secret));
        crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, strlen(body));
        crypto_auth_hmacsha256_final(&st, mac);
        sodium_bin2hex(hex, sizeof(hex), mac, sizeof(mac));
        snprintf(signature, sizeof(signature), "X-Spypixel-Signature: sha256=%s", hex);
        headers = curl_slist_append(headers, signature);
    }
    curl_easy_setopt(w->curl, CURLOPT_URL, url);
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(w->curl, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(w->curl);
    curl_slist_free_all(headers);
    *status = 0;
    if (CURLE_OK == rc)
        curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, status);
    return CURLE_OK == rc && *status >= 200 && *status < 300;
}

static void deliver(sp_webhook_t *w, const char *body)
{
    for (size_t u = 0; u < w->opt.n_urls; u++) {
        long status = 0;
        bool ok = false;
        for (int attempt = 0; attempt < SP_WEBHOOK_TRIES && !ok; attempt++) {
            if (attempt) {
                /* 0.5 s, 1 s, 2 s: a receiver that restarts gets a moment. */
                struct timespec pause = {0, 0};
                long ms = 500L << (attempt - 1);
                pthread_mutex_lock(&w->lock);
                bool giving_up = w->stopping && sp_now_ms() + ms > w->drain_until_ms;
                pthread_mutex_unlock(&w->lock);
                if (giving_up)
                    break;
                pause.tv_sec = ms / 1000;
                pause.tv_nsec = (ms % 1000) * 1000000L;
                nanosleep(&pause, NULL);
            }
            ok = deliver_once(w, w->opt.urls[u], body, &status);
        }
        if (ok) {
            sp_metric_inc(webhooks_sent);
        } else {
            char quoted[300];
            sp_metric_inc(webhooks_failed);
            sp_log_warn("webhook delivery failed", "url=%s status=%ld",
                        sp_log_quote(w->opt.urls[u], quoted, sizeof(quoted)), status);
        }
    }
}

static void *delivery_main(void *arg)
{
    sp_webhook_t *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->wake, &w->lock);
        if (!w->head || (w->stopping && sp_now_ms() > w->drain_until_ms))
            break;
        note_t *n = w->head;
        w->head = n->next;
        if (!w->head)
            w->tail = NULL;
        w->queued--;
        pthread_mutex_unlock(&w->lock);
        deliver(w, n->body);
        free(n->body);
        free(n);
        pthread_mutex_lock(&w->lock);
    }
    /* Whatever could not be sent in the drain time is dropped, and counted. */
    while (w->head) {
        note_t *n = w->head;
        w->head = n->next;
        free(n->body);
        free(n);
        sp_metric_inc(webhooks_dropped);
    }
    w->tail = NULL;
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

sp_webhook_t *sp_webhook_start(const sp_webhook_options_t *opt, char *err, size_t errlen)
{
    for (size_t i = 0; i < opt->n_urls; i++)
        if (0 != strncmp(opt->urls[i], "http://", strlen("http://")) &&
            0 != strncmp(opt->urls[i], "https://", strlen("https://"))) {
            snprintf(err, errlen, "--webhook: expected an http:// or https:// URL, got '%s'",
                     opt->urls[i]);
            return NULL;
        }
    sp_webhook_t *w = calloc(1, sizeof(*w));
    if (!w)
        abort();
    w->opt = *opt;
    if (w->opt.timeout_ms <= 0)
        w->opt.timeout_ms = 5000;
    if (CURLE_OK != curl_global_init(CURL_GLOBAL_DEFAULT) || !(w->curl = curl_easy_init())) {
        snprintf(err, errlen, "libcurl failed to start");
        free(w);
        return NULL;
    }
    curl_easy_setopt(w->curl, CURLOPT_TIMEOUT_MS, (long)w->opt.timeout_ms);
    curl_easy_setopt(w->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(w->curl, CURLOPT_USERAGENT, "spypixel/" SP_VERSION);
    curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(w->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(w->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    if (0 != pthread_create(&w->thread, NULL, delivery_main, w)) {
        snprintf(err, errlen, "cannot start the webhook thread");
        curl_easy_cleanup(w->curl);
        free(w);
        return NULL;
    }
    return w;
}

void sp_webhook_on_commit(void *ctx, sp_event_t *const *evs, size_t n)
{
    sp_webhook_t *w = ctx;
    for (size_t i = 0; i < n; i++) {
        sp_event_t *ev = evs[i];
        if (SP_OUTCOME_STORED != ev->outcome || (w->opt.first_only && !ev->first_view))
            continue;
        json_t *j = json_pack("{s:s, s:b, s:o}", "type", sp_event_kind_name(ev->kind), "first_view",
                              ev->first_view, "event", sp_serialize_event(sp_event_row(ev)));
        note_t *note = calloc(1, sizeof(*note));
        if (!note)
            abort();
        note->body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        pthread_mutex_lock(&w->lock);
        if (w->queued >= SP_WEBHOOK_QUEUE_MAX) {
            /* A receiver that is down must not eat the server's memory: drop the oldest. */
            note_t *old = w->head;
            w->head = old->next;
            if (!w->head)
                w->tail = NULL;
            w->queued--;
            free(old->body);
            free(old);
            sp_metric_inc(webhooks_dropped);
        }
        if (w->tail)
            w->tail->next = note;
        else
            w->head = note;
        w->tail = note;
        w->queued++;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
    }
}

void sp_webhook_stop(sp_webhook_t *w, int drain_ms)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    w->drain_until_ms = sp_now_ms() + drain_ms;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    curl_easy_cleanup(w->curl);
    curl_global_cleanup();
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
